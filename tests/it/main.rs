//! The integration tests: one binary, so the crate links once.

mod apply_failures;
mod cli;
mod cli_basic;
mod cluster;
mod docs;
mod failure_support;
mod fmt_props;
mod inventory;
mod parse_fixtures;
mod process;
mod support;
