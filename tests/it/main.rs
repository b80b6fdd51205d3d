//! The integration tests: one binary, so the crate links once.

mod apply;
mod apply_failures;
mod bench_plan;
mod cli;
mod cli_basic;
mod cli_docs;
mod cluster;
mod crash;
mod crash_kinds;
mod docs;
mod error_codes;
mod fmt_props;
mod free_space;
mod fuzz_regressions;
mod inventory;
mod jobs;
mod lint;
mod lint_docs;
mod parse_fixtures;
mod process;
mod progress;
mod psql_flags;
mod resume;
mod status;
mod support;
mod tls;
