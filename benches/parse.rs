//! How long the stages that need no database take on a large plan: a
//! generated 5,000-step migration. docs/performance.md records the figures
//! and the command; the aim is parse + resolve under 10 ms.
//!
//! Each stage is measured twice: in wall-clock time (criterion's default),
//! and in the CPU time of the benchmark's thread, which on a shared machine
//! counts the work and not the wait for a free core.
//!
//! Each routine returns what it built, and criterion drops it outside the
//! timed region (`iter_with_large_drop`): freeing a 5,000-step AST and plan
//! is the allocator's work, not reading the plan, and would otherwise be a
//! third of every figure.

mod support;

use std::hint::black_box;

use criterion::measurement::{Measurement, ValueFormatter};
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
    let parsed = parse::parse(&source);
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

/// The CPU time of the calling thread, in nanoseconds.
struct CpuTime;

fn thread_cpu_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec for the duration of the
    // call, and CLOCK_THREAD_CPUTIME_ID is supported on Linux.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    assert_eq!(status, 0, "the thread's CPU clock cannot be read");
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

impl Measurement for CpuTime {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        thread_cpu_ns()
    }

    fn end(&self, start: u64) -> u64 {
        thread_cpu_ns().saturating_sub(start)
    }

    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }

    fn zero(&self) -> u64 {
        0
    }

    fn to_f64(&self, value: &u64) -> f64 {
        *value as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        &Millis
    }
}

/// Shows nanoseconds as milliseconds, and bytes per iteration as MiB/s.
struct Millis;

impl ValueFormatter for Millis {
    fn scale_values(&self, _typical: f64, values: &mut [f64]) -> &'static str {
        for v in values {
            *v /= 1e6;
        }
        "ms"
    }

    fn scale_throughputs(
        &self,
        _typical: f64,
        throughput: &Throughput,
        values: &mut [f64],
    ) -> &'static str {
        let (per_iteration, unit) = match throughput {
            Throughput::Bytes(n) | Throughput::BytesDecimal(n) => {
                (*n as f64 / 1_048_576.0, "MiB/s")
            }
            Throughput::Elements(n) | Throughput::Bits(n) => (*n as f64, "elem/s"),
            Throughput::ElementsAndBytes { elements, .. } => (*elements as f64, "elem/s"),
        };
        for v in values {
            *v = per_iteration / (*v / 1e9);
        }
        unit
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

criterion_group!(wall_clock, wall);
criterion_group! {
    name = cpu_time;
    config = Criterion::default().with_measurement(CpuTime);
    targets = cpu
}
criterion_main!(wall_clock, cpu_time);
