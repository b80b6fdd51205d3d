//! The integration tests: one binary, so the crate links once.

mod cli;
mod cli_basic;
mod cluster;
mod docs;
mod fmt_props;
mod inventory;
mod parse_fixtures;
mod process;
mod status;
mod support;
