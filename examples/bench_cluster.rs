//! A throwaway cluster for the shell benchmarks under `benches/apply/`:
//! started with the crate's own `Cluster` (which knows how to run the
//! server as `plan-runner-pg` when we are root), it prints shell
//! assignments (`PGHOST=...`) on stdout and lives until its stdin reaches
//! end-of-file, so a script keeps it by holding a pipe open and it goes
//! away with the script however the script ends.
//!
//! Usage: `bench_cluster [--no-fsync] [--bindir DIR] [--set name=value]...`

use std::io::{self, BufRead, Write};
use std::process::ExitCode;

use plan_runner::cluster::{Cluster, Options};

fn main() -> ExitCode {
    let mut options = Options::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--no-fsync" => options.fsync = false,
            "--bindir" => match args.next() {
                Some(dir) => options.bindir = Some(dir.into()),
                None => return usage("--bindir needs a folder"),
            },
            "--set" => match args.next().as_deref().and_then(|s| s.split_once('=')) {
                Some((name, value)) => options.settings.push((name.into(), value.into())),
                None => return usage("--set needs name=value"),
            },
            other => return usage(&format!("unknown argument `{other}`")),
        }
    }
    let cluster = match Cluster::start(options) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{:?}", miette::Report::new(e));
            return ExitCode::FAILURE;
        }
    };
    let mut out = io::stdout().lock();
    let printed = writeln!(
        out,
        "PGHOST='{}'\nPGPORT={}\nPGUSER={}\nCLUSTER_DATA='{}'\nCLUSTER_BIN='{}'",
        cluster.host(),
        cluster.port(),
        cluster.user(),
        cluster.folder().join("data").display(),
        cluster
            .bin("postgres")
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
    )
    .and_then(|()| out.flush());
    drop(out);
    if printed.is_ok() {
        // Nothing is expected on stdin: end-of-file is the signal to go.
        let mut sink = String::new();
        let stdin = io::stdin();
        while stdin.lock().read_line(&mut sink).is_ok_and(|n| n > 0) {
            sink.clear();
        }
    }
    match cluster.stop() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{:?}", miette::Report::new(e));
            ExitCode::FAILURE
        }
    }
}

fn usage(message: &str) -> ExitCode {
    eprintln!(
        "bench_cluster: {message}\nusage: bench_cluster [--no-fsync] [--bindir DIR] [--set name=value]..."
    );
    ExitCode::from(2)
}
