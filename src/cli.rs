//! The command line (clap derive): commands, their flags and formats.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Run ERP version migrations (OpenERP / Odoo) as reviewed, linted,
/// declarative plans.
///
/// A plan file describes one version pair (say 5.0.0 -> 6.0.0): stop the old
/// server, back up the database, run the pair's scripts, update the modules,
/// check, start the new server. `plan lint` reviews it, `plan fmt` lays it
/// out, `plan show` and `plan graph` show what will run, in which order.
///
/// Exit codes: 0 success, 1 the plan has errors, 2 usage error.
#[derive(Debug, Parser)]
#[command(name = "plan", version, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check plans for mistakes before they run.
    ///
    /// Reads each file, and every `*.plan` below each folder, and reports
    /// syntax errors, broken references and the risky patterns of
    /// docs/lints.md. Exit 0 when there is no error (warnings allowed),
    /// 1 when there is one, 2 when a path does not exist.
    Lint(LintArgs),
    /// Lay plans out the canonical way (in place), keeping every comment.
    ///
    /// With --check, change nothing: print a diff for each file that would
    /// change and exit 1 if there is one.
    Fmt(FmtArgs),
    /// Show the resolved steps in execution order, with the commands they
    /// will run.
    ///
    /// Needs no database and reads no environment: `env("X", "d")` shows
    /// `d`, `env("X")` shows `<env.X>`, secrets show `***` and `target.*`
    /// shows `<target.database>` and the like.
    Show(ShowArgs),
    /// Draw the dependency graph of a plan as Graphviz dot or Mermaid.
    Graph(GraphArgs),
}

#[derive(Debug, clap::Args)]
pub struct LintArgs {
    /// Plan files, or folders to search for `*.plan` files.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// How to print the findings.
    #[arg(long, value_enum, default_value_t = LintFormat::Human)]
    pub format: LintFormat,
    /// Treat warnings as errors (exit 1 when there is any).
    #[arg(long, value_enum, value_name = "warnings")]
    pub deny: Option<Deny>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Deny {
    Warnings,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LintFormat {
    /// Diagnostics with the source line underlined.
    Human,
    /// A JSON array with one object per finding.
    Json,
    /// SARIF 2.1.0, for code-review tools.
    Sarif,
}

#[derive(Debug, clap::Args)]
pub struct FmtArgs {
    /// Plan files, or folders to search for `*.plan` files.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Change nothing; print a diff and exit 1 if a file is not formatted.
    #[arg(long)]
    pub check: bool,
}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// The plan file.
    pub plan: PathBuf,
    /// How to print the plan.
    #[arg(long, value_enum, default_value_t = ShowFormat::Human)]
    pub format: ShowFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ShowFormat {
    /// A numbered list for people.
    Human,
    /// JSON (format_version 1, see docs/cli.md).
    Json,
    /// The same document as YAML.
    Yaml,
}

#[derive(Debug, clap::Args)]
pub struct GraphArgs {
    /// The plan file.
    pub plan: PathBuf,
    /// The graph language.
    #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
    pub format: GraphFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    /// Graphviz: pipe into `dot -Tsvg`.
    Dot,
    /// Mermaid: paste into a Markdown file.
    Mermaid,
}
