//! The journal's cost per step: the three records a process step writes
//! (started, its process, ended), as the runner writes them (one fsync:
//! the process and the end are made durable by the next step's start), and
//! for comparison with each record fsynced. Wall-clock time, since the cost
//! is the disk's, not the CPU's.
//! The journal goes where `--state-dir` would put it on this machine
//! (`JOURNAL_BENCH_DIR`, default the system's temporary folder): an fsync
//! costs what that folder's filesystem makes it cost. Figures and command:
//! docs/performance.md.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use plan_runner::exec::journal::{Journal, Record};
use plan_runner::exec::process::Spawned;

fn folder() -> tempfile::TempDir {
    let base = std::env::var_os("JOURNAL_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    tempfile::Builder::new()
        .prefix("journal-bench")
        .tempdir_in(base)
        .expect("a temporary folder for the journal")
}

/// One step's records; `sync_all` fsyncs each of them.
fn step(journal: &Journal, i: u64, sync_all: bool) {
    let name = format!("step_{i}");
    journal
        .append(&Record::StepStarted {
            step: name.clone(),
            kind: "script".into(),
            on_failure: false,
        })
        .expect("journal write");
    journal.process_started(
        &name,
        &Spawned {
            attempt: 1,
            pid: 4242,
            pgid: 4242,
            start_time: Some(123_456),
        },
    );
    let ended = Record::StepEnded {
        step: name,
        status: "succeeded".into(),
        seconds: 0.012,
        error: None,
        on_failure: false,
    };
    if sync_all {
        journal.append(&ended).expect("journal write");
    } else {
        journal.note(&ended).expect("journal write");
    }
    assert!(!journal.is_broken(), "a journal write failed");
}

fn journal(c: &mut Criterion) {
    let dir = folder();
    let run = dir.path().join("run");
    std::fs::create_dir(&run).expect("run folder");
    let journal = Journal::create(&run).expect("journal");
    let mut i = 0u64;
    c.bench_function("journal_step", |b| {
        b.iter(|| {
            i += 1;
            step(black_box(&journal), i, false);
        })
    });
    c.bench_function("journal_step_every_record_fsynced", |b| {
        b.iter(|| {
            i += 1;
            step(black_box(&journal), i, true);
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50);
    targets = journal
}
criterion_main!(benches);
