//! plan-runner: ERP version migrations as reviewed, linted, declarative
//! plans. `run` is the whole program; `main.rs` only calls it.

pub mod analysis;
pub mod ast;
pub mod cli;
pub mod cluster;
pub mod commands;
pub mod db;
pub mod diagnostic;
pub mod exec;
pub mod exit;
pub mod fmt;
pub mod graph;
pub mod inventory;
pub mod lint;
pub mod names;
pub mod parse;
pub mod plan;
pub mod resolve;
pub mod sandbox;
pub mod source;
pub mod version;

use clap::Parser as _;

use crate::cli::{Cli, Command};
use crate::exit::Exit;

/// Parses the command line, runs the command, and says how to exit.
pub fn run<I, T>(args: I) -> Exit
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() {
                Exit::Usage
            } else {
                Exit::Success
            };
        }
    };
    let result = match &cli.command {
        Command::Lint(args) => commands::lint::run(args),
        Command::Fmt(args) => commands::fmt::run(args),
        Command::Show(args) => commands::show::run(args),
        Command::Graph(args) => commands::graph::run(args),
        Command::Apply(args) => commands::apply::run(args),
        Command::Status(args) => commands::status::run(args),
        Command::Backups(args) => commands::backups::run(args),
        Command::Recover(args) => commands::recover::run(args),
    };
    match result {
        Ok(exit) => exit,
        Err(error) => {
            // Not eprintln!: a closed terminal must not turn into a panic.
            commands::eprint(&format!("{:?}\n", miette::Report::new(error)));
            Exit::Usage
        }
    }
}
