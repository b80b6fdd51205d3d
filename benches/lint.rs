//! `plan lint` speed: a realistic plan of about 200 lines and one generated
//! 5,000-step plan (read from memory, parse included), and a folder of 200
//! plans of 50 steps (read from disk, as `plan lint plans/` does). Figures
//! and commands: docs/performance.md.
//!
//! Each is measured twice: in wall-clock time (criterion's default), and
//! with the `_cpu` suffix in the CPU time of the benchmark's process, which
//! on a shared machine counts the work and not the wait for a free core.

#[path = "support/clean.rs"]
mod clean;
#[path = "support/cpu.rs"]
mod cpu;
mod support;

use std::hint::black_box;
use std::path::PathBuf;

use criterion::measurement::Measurement;
use criterion::{Criterion, criterion_group, criterion_main};
use plan_runner::analysis::{analyse, analyse_path};
use plan_runner::commands::plan_files;
use plan_runner::lint::lint;
use plan_runner::resolve::Context;
use plan_runner::source::Source;

fn lint_text(text: &str) -> usize {
    let analysis = analyse(Source::new("generated.plan", text), &Context::default());
    lint(&analysis).diagnostics.len()
}

fn lint_folder(paths: &[PathBuf]) -> usize {
    let files = plan_files(paths).unwrap_or_default();
    files
        .iter()
        .filter_map(|f| analyse_path(f, &Context::default()).ok())
        .map(|a| lint(&a).diagnostics.len())
        .sum()
}

fn wall(c: &mut Criterion) {
    bench(c, "");
}

fn cpu(c: &mut Criterion<cpu::CpuTime>) {
    bench(c, "_cpu");
}

/// Steps of `support::plan` that make a plan of about 200 lines, the size
/// of a real migration's plan.
const SMALL_STEPS: usize = 25;

fn bench<M: Measurement + 'static>(c: &mut Criterion<M>, suffix: &str) {
    let small = support::plan(SMALL_STEPS);
    let lines = small.lines().count();
    assert!((190..=220).contains(&lines), "{lines} lines");
    c.bench_function(&format!("lint {lines}-line plan{suffix}"), |b| {
        b.iter(|| lint_text(black_box(&small)))
    });

    let big = clean::plan(5_000);
    assert_eq!(lint_text(&big), 0, "the generated plan lints clean");
    // The whole of `plan lint` on one file, then its two halves: the
    // stages before lint (parse, resolve, graph), and the rules alone.
    c.bench_function(&format!("lint 5,000-step plan{suffix}"), |b| {
        b.iter(|| lint_text(black_box(&big)))
    });
    c.bench_function(
        &format!("analyse 5,000-step plan (parse, resolve, graph){suffix}"),
        |b| {
            b.iter(|| {
                analyse(
                    Source::new("generated.plan", black_box(big.as_str())),
                    &Context::default(),
                )
                .diagnostics
                .len()
            })
        },
    );
    let analysis = analyse(
        Source::new("generated.plan", big.as_str()),
        &Context::default(),
    );
    c.bench_function(
        &format!("lint rules on an analysed 5,000-step plan{suffix}"),
        |b| b.iter(|| lint(black_box(&analysis)).diagnostics.len()),
    );

    let dir = tempfile::tempdir().expect("a temporary folder");
    for i in 0..200 {
        std::fs::write(
            dir.path().join(format!("plan_{i:03}.plan")),
            clean::plan(50),
        )
        .expect("write a plan");
    }
    let paths = vec![dir.path().to_path_buf()];
    assert_eq!(lint_folder(&paths), 0);
    c.bench_function(
        &format!("lint folder of 200 plans x 50 steps{suffix}"),
        |b| b.iter(|| lint_folder(black_box(&paths))),
    );
}

criterion_group!(wall_clock, wall);
criterion_group! {
    name = cpu_time;
    config = Criterion::default().with_measurement(cpu::CpuTime);
    targets = cpu
}
criterion_main!(wall_clock, cpu_time);
