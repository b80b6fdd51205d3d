//! plan-runner: ERP version migrations as reviewed, linted, declarative
//! plans. `run` is the whole program; `main.rs` only calls it.

pub mod analysis;
pub mod ast;
pub mod chain;
pub mod cli;
pub mod cluster;
pub mod commands;
pub mod db;
pub mod diagnostic;
pub mod erp_config;
pub mod exec;
pub mod exit;
pub mod fleet;
pub mod fmt;
pub mod graph;
pub mod lint;
pub mod names;
pub mod parse;
pub mod pg_programs;
pub mod plan;
pub mod private;
pub mod quote;
pub mod resolve;
pub mod source;
pub mod target;
pub mod units;
pub mod version;

use clap::Parser as _;

use crate::cli::{Cli, Command};
use crate::exit::{Ending, Exit};

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
            // `--help` and `--version` end here too, successfully.
            return exit::status(if error.use_stderr() {
                Ending::Usage
            } else {
                Ending::checked(false)
            });
        }
    };
    let result = match &cli.command {
        Command::Lint(args) => commands::lint::run(args),
        Command::Fmt(args) => commands::fmt::run(args),
        Command::Show(args) => commands::show::run(args),
        Command::Graph(args) => commands::graph::run(args),
        Command::Apply(args) => commands::apply::run(args),
        Command::Rehearse(args) => commands::rehearse::run(args),
        Command::Status(args) => commands::status::run(args),
        Command::Backups(args) => commands::backups::run(args),
        Command::Recover(args) => commands::recover::run(args),
        Command::New(args) => commands::new::run(args),
        Command::Explain(args) => commands::explain::run(args),
        Command::Completions(args) => commands::completions::run(args),
        Command::Man(args) => commands::man::run(args),
    };
    let ending = result.unwrap_or_else(|error| {
        // Not eprintln!: a closed terminal must not turn into a panic.
        commands::eprint(&format!("{:?}\n", miette::Report::new(error)));
        Ending::Usage
    });
    exit::status(ending)
}
