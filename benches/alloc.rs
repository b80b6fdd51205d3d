//! Heap allocations per stage on the generated 5,000-step plan: a counting
//! global allocator around the system one. Counts do not depend on the
//! machine's load, so they show a change's effect where timings on a shared
//! machine blur it. `cargo bench --bench alloc` prints them
//! (docs/performance.md has the command).

#[path = "support/clean.rs"]
mod clean;
mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use plan_runner::analysis;
use plan_runner::graph::Graph;
use plan_runner::lint::lint;
use plan_runner::parse;
use plan_runner::resolve::{self, Context};
use plan_runner::source::Source;

const STEPS: usize = 5_000;

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);
/// Bytes allocated and not yet freed, and the most there ever were: what
/// a stage keeps, and how much memory it touches at its peak (fresh memory
/// costs a page fault and the kernel's zeroing on first touch).
static LIVE: AtomicU64 = AtomicU64::new(0);
static PEAK: AtomicU64 = AtomicU64::new(0);

fn grow(by: u64) {
    let live = LIVE.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// counters are only read, never used to decide anything.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        grow(layout.size() as u64);
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size() as u64, Ordering::Relaxed);
        grow(new_size as u64);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `f` and prints the allocations (and reallocations) it made.
fn count<T>(stage: &str, f: impl FnOnce() -> T) -> T {
    let (a0, b0, live0) = (
        ALLOCS.load(Ordering::Relaxed),
        BYTES.load(Ordering::Relaxed),
        LIVE.load(Ordering::Relaxed),
    );
    PEAK.store(live0, Ordering::Relaxed);
    let out = f();
    let allocs = ALLOCS.load(Ordering::Relaxed) - a0;
    let bytes = BYTES.load(Ordering::Relaxed) - b0;
    let kept = LIVE.load(Ordering::Relaxed).saturating_sub(live0);
    let peak = PEAK.load(Ordering::Relaxed) - live0;
    println!(
        "{stage:<26} {allocs:>9} allocations {:>7.1} per step {:>10} bytes, {:>10} kept, {:>10} at peak",
        allocs as f64 / STEPS as f64,
        bytes,
        kept,
        peak
    );
    out
}

fn main() {
    println!("benches/parse.rs's plan (support::plan):");
    stages(support::plan(STEPS));
    println!("benches/lint.rs's plan (clean::plan):");
    stages(clean::plan(STEPS));
}

/// Each stage in turn on one plan text, then the whole of `plan lint`.
fn stages(text: String) {
    let source = Source::new("generated.plan", text);
    let ctx = Context::default();
    let parsed = count("  parse", || parse::parse(&source));
    let resolved = count("  resolve", || {
        resolve::resolve(&parsed.file, &source, &ctx)
    });
    let plan = resolved.plan.as_ref().expect("the generated plan resolves");
    assert_eq!(plan.steps.len(), STEPS, "the generated plan lost steps");
    count("  graph", || {
        (Graph::build(&plan.steps), Graph::build(&plan.on_failure))
    });
    let analysis = count("  analyse (parse..graph)", || {
        analysis::analyse(source.clone(), &ctx)
    });
    assert!(!analysis.has_errors(), "the generated plan has errors");
    let report = count("  lint rules", || lint(&analysis));
    println!("  ({} lint findings)", report.diagnostics.len());
}
