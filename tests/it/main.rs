//! The integration tests: one binary, so the crate links once.

mod cli;
mod lint;
mod lint_docs;
