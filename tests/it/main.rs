//! The integration tests: one binary, so the crate links once.

mod cli;
mod cli_basic;
mod parse_fixtures;
