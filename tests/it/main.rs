//! The integration tests: one binary, so the crate links once.

mod cli;
mod cli_basic;
mod fmt_props;
mod parse_fixtures;
