//! The integration tests: one binary, so the crate links once.

mod cli;
mod fuzz_regressions;
