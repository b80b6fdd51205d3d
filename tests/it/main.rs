//! The integration tests: one binary, so the crate links once.

mod cli;
mod cli_basic;
mod cluster;
mod crash;
mod docs;
mod fmt_props;
mod inventory;
mod parse_fixtures;
mod process;
mod support;
