//! The integration tests: one binary, so the crate links once.

mod bench_plan;
mod cli;
