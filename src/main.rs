//! The `plan` binary: everything is in the library.

/// mimalloc: reading a large plan is mostly small allocations (names,
/// texts, tokens), which glibc's malloc made over a quarter of the work;
/// see docs/performance.md. The benchmarks use the same allocator, so
/// their figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    plan_runner::run(std::env::args_os()).into()
}
