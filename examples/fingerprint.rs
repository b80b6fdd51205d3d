//! Times plan-runner's own fingerprint (`db::fingerprint::take`, the proof
//! of a restore) on a database, for `benches/apply/backup.sh`.
//!
//! Usage: `fingerprint [--times N] [--cpu] [--serial] [CONNECTION STRING]`. Without a
//! connection string, PGHOST, PGPORT, PGUSER, PGPASSWORD and PGDATABASE
//! say where. Prints one line per run: `seconds bytes MB/s`, where bytes is
//! `pg_database_size` as the fingerprint reports it. With `--cpu`, a fourth
//! column: the CPU seconds the server's backend spent (read from
//! `/proc/<pid>/stat`, so only on the server's machine; `-` if unreadable),
//! which is what the fingerprint costs whatever else the machine runs.
//! Parallel workers' CPU is not in it: use it with `--serial`, which turns
//! parallel query off for the session.

use std::process::ExitCode;
use std::str::FromStr;

use plan_runner::db::fingerprint;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("fingerprint: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let mut times = 1usize;
    let mut cpu = false;
    let mut serial = false;
    let mut conninfo = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--cpu" {
            cpu = true;
        } else if arg == "--serial" {
            serial = true;
        } else if arg == "--times" {
            times = args
                .next()
                .and_then(|n| n.parse().ok())
                .filter(|n| *n > 0)
                .ok_or("--times needs a positive number")?;
        } else if conninfo.is_none() {
            conninfo = Some(arg);
        } else {
            return Err(format!("unexpected argument `{arg}`"));
        }
    }
    let config = match conninfo {
        Some(text) => postgres::Config::from_str(&text).map_err(|e| e.to_string())?,
        None => from_env(),
    };
    let mut client = config.connect(postgres::NoTls).map_err(|e| e.to_string())?;
    let database: String = client
        .query_one("select current_database()::text", &[])
        .map_err(|e| e.to_string())?
        .get(0);
    if serial {
        client
            .batch_execute("set max_parallel_workers_per_gather = 0")
            .map_err(|e| e.to_string())?;
    }
    let backend: i32 = client
        .query_one("select pg_backend_pid()", &[])
        .map_err(|e| e.to_string())?
        .get(0);
    for _ in 0..times {
        let cpu_before = cpu_seconds(backend);
        let props = fingerprint::database_props(&mut client, &database)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("database `{database}` vanished"))?;
        let (_, cost) = fingerprint::take(&mut client, props).map_err(|e| e.to_string())?;
        let seconds = cost.elapsed.as_secs_f64();
        let used = match (cpu_before, cpu_seconds(backend)) {
            (Some(a), Some(b)) if cpu => format!(" {:.2}", b - a),
            _ if cpu => " -".to_string(),
            _ => String::new(),
        };
        println!(
            "{seconds:.6} {} {:.1}{used}",
            cost.bytes,
            cost.bytes as f64 / 1e6 / seconds
        );
    }
    Ok(())
}

/// User and system CPU time of a process, in seconds; Linux only.
fn cpu_seconds(pid: i32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold
    // spaces: state is the first, utime the 12th, stime the 13th.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // /proc reports in USER_HZ, which is 100 on every Linux architecture's
    // ABI (sysconf(_SC_CLK_TCK)).
    Some(ticks / 100.0)
}

/// The libpq variables the benchmarks set; a socket folder or a host name.
fn from_env() -> postgres::Config {
    let mut config = postgres::Config::new();
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    match var("PGHOST") {
        Some(host) if host.starts_with('/') => config.host_path(host),
        Some(host) => config.host(&host),
        None => config.host_path("/var/run/postgresql"),
    };
    if let Some(port) = var("PGPORT").and_then(|p| p.parse().ok()) {
        config.port(port);
    }
    let user = var("PGUSER").unwrap_or_else(|| whoami::username().unwrap_or_default());
    config.user(&user);
    if let Some(password) = var("PGPASSWORD") {
        config.password(password);
    }
    config.dbname(&var("PGDATABASE").unwrap_or(user));
    config
}
