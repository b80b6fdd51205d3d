//! How long the stages that need no database take on a large plan: a
//! generated 5,000-step migration. docs/performance.md records the figures
//! and the command; the aim is parse + resolve under 100 ms.
//!
//! Each stage is measured twice: in wall-clock time (criterion's default,
//! what a user waits, and the figure the aim is about), and in the CPU time
//! of the benchmark's process, which on a machine shared with other work
//! leaves out the time spent waiting for a free core.
//!
//! Each routine returns what it built, and criterion drops it outside the
//! timed region (`iter_with_large_drop`): freeing a 5,000-step AST and plan
//! is the allocator's work, not reading the plan, and would otherwise be a
//! third of every figure.

#[path = "support/cpu.rs"]
mod cpu_time;
mod support;

use std::hint::black_box;

use cpu_time::CpuTime;
use criterion::measurement::Measurement;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use plan_runner::resolve::{self, Context};
use plan_runner::source::Source;
use plan_runner::{analysis, fmt, parse};

const STEPS: usize = 5_000;

fn wall(c: &mut Criterion) {
    stages(c, "");
}

fn cpu(c: &mut Criterion<CpuTime>) {
    stages(c, "_cpu");
}

fn stages<M: Measurement>(c: &mut Criterion<M>, suffix: &str) {
    let source = Source::new("generated.plan", support::plan(STEPS));
    let ctx = Context::default();
    check(&source, &ctx);

    let mut group = c.benchmark_group(format!("{STEPS}_steps{suffix}"));
    group.throughput(Throughput::Bytes(source.text().len() as u64));
    group.bench_function("parse", |b| {
        b.iter_with_large_drop(|| parse::parse(black_box(&source)))
    });
    // Resolving alone, from an AST already built.
    let parsed = parse::parse(&source);
    group.bench_function("resolve", |b| {
        b.iter_with_large_drop(|| resolve::resolve(black_box(&parsed.file), &source, &ctx))
    });
    group.bench_function("parse+resolve", |b| {
        b.iter_with_large_drop(|| {
            let parsed = parse::parse(black_box(&source));
            let resolved = resolve::resolve(&parsed.file, &source, &ctx);
            (parsed, resolved)
        })
    });
    group.bench_function("parse+resolve+graph", |b| {
        b.iter_with_large_drop(|| analysis::analyse(black_box(source.clone()), &ctx))
    });
    group.bench_function("fmt", |b| {
        b.iter_with_large_drop(|| fmt::format(black_box(&parsed.file), &source))
    });
    group.finish();
}

/// A benchmark of an input that fails early would measure the wrong thing.
fn check(source: &Source, ctx: &Context) {
    let analysis = analysis::analyse(source.clone(), ctx);
    let errors: Vec<_> = analysis
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .collect();
    assert!(
        errors.is_empty(),
        "the generated plan has errors: {errors:#?}"
    );
    let steps = analysis.plan.as_ref().map_or(0, |p| p.steps.len());
    assert_eq!(steps, STEPS, "the generated plan lost steps");
    eprintln!(
        "input: {} bytes, {} lines, {steps} steps",
        source.text().len(),
        source.text().lines().count()
    );
}

criterion_group!(wall_clock, wall);
criterion_group! {
    name = cpu_time;
    config = Criterion::default().with_measurement(CpuTime);
    targets = cpu
}
criterion_main!(wall_clock, cpu_time);
