//! The integration tests: one binary, so the crate links once.

mod cli;
mod docs;
mod process;
mod inventory;
mod cli_basic;
mod fmt_props;
mod parse_fixtures;
