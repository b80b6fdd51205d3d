//! The command line (clap derive): commands, their flags and formats.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::version::Version;

/// Run ERP version migrations (OpenERP / Odoo) as reviewed, linted,
/// declarative plans.
///
/// A plan file describes one version pair (say 5.0.0 -> 6.0.0): stop the old
/// server, back up the database, run the pair's scripts, update the modules,
/// check, start the new server. `plan lint` reviews it, `plan fmt` lays it
/// out, `plan show` and `plan graph` show what will run, in which order.
///
/// `plan apply` runs a plan against a database and rolls it back on any
/// failure; `plan recover` finishes a run whose runner died; `plan status`
/// and `plan backups` show what runs left. `plan new` writes a plan to
/// start from, `plan explain CODE` explains a diagnostic, and `plan
/// completions` and `plan man` serve the shell and the manual.
#[derive(Debug, Parser)]
#[command(
    name = "plan",
    version,
    max_term_width = 100,
    after_help = crate::exit::help()
)]
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
    /// docs/lints.md. Exit 1 on whatever `plan apply` would refuse (an
    /// error, or "changes data without a backup" not allowed by a `# lint:
    /// allow` comment), and on any warning with --deny warnings; 0
    /// otherwise; 2 when a path does not exist or holds no plan.
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
    /// Run a plan against a database, rolling back to the backup on any
    /// failure.
    ///
    /// Checks the plan (any lint error, or an unsuppressed W101, stops it),
    /// takes a lock on the target, checks its release, runs the steps in
    /// order, and on a failure restores the run's backups, proves the
    /// restore with a fingerprint, and runs `on_failure`. Writes a report
    /// into the run folder. With --resume, goes on with the target's
    /// unfinished run (its runner died, or --no-rollback stopped it)
    /// instead of starting a new one. Given a folder and --to, runs the
    /// chain of the folder's plans from the target's release to that one,
    /// with one backup and one way back (docs/chains.md).
    ///
    /// Exit codes: 0 success or nothing to do, 1 the plan failed and was
    /// rolled back (or has errors), 2 usage error, 3 the rollback failed,
    /// 4 refused with nothing changed (lock held, wrong release, sessions
    /// connected, an unfinished run; with --resume, nothing to resume or
    /// a run that cannot be resumed), 130 interrupted (Ctrl-C, SIGTERM) and
    /// rolled back.
    Apply(Box<ApplyArgs>),
    /// Run a plan (or a chain) on a throwaway copy of the target, to learn
    /// whether it passes and how long its window must be.
    ///
    /// Copies the database (a snapshot, taking the target's lock only for
    /// the copy; or, with --from-dump, a restore of a dump) and the plan's
    /// `paths` trees and filestore, points every step at the copy, skips
    /// `stop` and `start` steps (unless marked `rehearse = "run"`), runs
    /// the rest for real, rolls the copy back to its backup to time and
    /// prove the rollback, and drops the copy (--keep keeps it). The
    /// target's rows, history and files are never changed. The result is
    /// recorded in plan_runner.runs: `plan status` shows it, and `plan
    /// apply` prints it before it starts (docs/rehearse.md).
    ///
    /// Exit codes: 0 the rehearsal passed, 1 a step failed (or the plan
    /// has errors), 2 usage error, 4 refused with no copy made (sessions
    /// on the target, no room, lock held, wrong release), 130 interrupted;
    /// the copy is dropped in every case.
    Rehearse(Box<RehearseArgs>),
    /// Show a database's release, last runs, unfinished runs and kept
    /// backups.
    ///
    /// Reads the history table in the database, `plan_runner.runs` in the
    /// maintenance database, the snapshots on the server and the dumps in
    /// the state dir's run folders. Changes nothing. Exit 0, or 2 when the
    /// server cannot be reached.
    Status(StatusArgs),
    /// List the backups kept of a database, or prune them.
    ///
    /// Newest first; with --prune --keep N, remove all but the newest N.
    /// A backup is a snapshot database on the server or a dump folder in a
    /// run folder, with the copies of its `paths`. A backup of a run that
    /// is still running (or whose runner died), or that no run folder of
    /// the state dir recorded, is never removed. Exit 0, 1 when a backup
    /// could not be removed, 2 on a usage or connection error, 4 when a
    /// run folder or record is not the user's alone (nothing removed).
    Backups(BackupsArgs),
    /// Take over a run whose runner died (or that --no-rollback stopped):
    /// restore its backups, prove it, run on_failure.
    ///
    /// Finds the target's unfinished run in the maintenance database, reads
    /// its journal (in its run folder, on the machine that ran it), ends the
    /// process groups it left, restores the earliest backup of each
    /// database and of its files, proves the restore with the fingerprint,
    /// runs the plan's on_failure steps and records the run as recovered.
    /// Running it again, or with nothing to recover, changes nothing.
    ///
    /// Exit codes: 0 recovered or nothing to recover, 2 usage error, 3 the
    /// restore could not be proved, 4 refused (another runner holds the
    /// lock, the plan changed since the run, the journal is elsewhere).
    Recover(Box<RecoverArgs>),
    /// Write a plan for a version pair to start from, with comments saying
    /// what to fill in.
    ///
    /// The plan is the published procedure for a version migration: stop
    /// the old server, back up the database and its filestore, run the
    /// pair's pre script, update every module, run the post script, check
    /// that no module is left half-updated, start the new server; restart
    /// the old one if anything fails. It lints clean as written; make its
    /// paths and service names the customer's. Exit 0, or 2 for a bad
    /// release, or a file that exists (without --force).
    New(NewArgs),
    /// Print the documentation of a diagnostic code, as `rustc --explain`
    /// does.
    ///
    /// CODE as plan shows it: `E004`, `W101`, `missing-backup`,
    /// `plan::unknown_var` or `unknown_var`. The text is
    /// docs/diagnostics.md's section for the code (for a lint rule,
    /// docs/lints.md's), as the binary was built with it. Exit 0, or 2 for
    /// a code that does not exist.
    Explain(ExplainArgs),
    /// Print a shell completion script for plan.
    ///
    /// bash: `plan completions bash > /etc/bash_completion.d/plan` (or
    /// `~/.local/share/bash-completion/completions/plan`); zsh: into a
    /// folder of `$fpath` as `_plan`; fish: into
    /// `~/.config/fish/completions/plan.fish`.
    Completions(CompletionsArgs),
    /// Print plan's manual page (roff), or write every page into a folder.
    ///
    /// `plan man | man -l -` reads it now. With a command, its own page
    /// (plan-lint(1) and so on); with --dir, plan.1 and one page per
    /// command.
    Man(ManArgs),
}

#[derive(Debug, clap::Args)]
pub struct NewArgs {
    /// The release the database is at, such as 5.0.0 or 16.0.
    #[arg(value_name = "FROM", value_parser = parse_release)]
    pub from: Version,
    /// The release the plan takes it to; after FROM.
    #[arg(value_name = "TO", value_parser = parse_release)]
    pub to: Version,
    /// Whose server runs the update [default: openerp up to 7.0, odoo from
    /// 8.0 on].
    #[arg(long, value_enum)]
    pub flavor: Option<Flavor>,
    /// Where to write the plan, `-` for stdout [default:
    /// FLAVOR-FROM-to-TO.plan in the current folder].
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Replace the file if it exists.
    #[arg(long)]
    pub force: bool,
}

/// The server lineage a new plan is written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Flavor {
    /// OpenERP up to 7.0: `openerp-server`.
    Openerp,
    /// Odoo from 8.0 on: `odoo-bin -c odoo.conf`.
    Odoo,
    /// Odoo with OCA's OpenUpgrade: `--upgrade-path`, `--load=...openupgrade_framework`.
    Openupgrade,
}

#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// The code, as a diagnostic shows it.
    #[arg(value_name = "CODE")]
    pub code: String,
}

#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: CompletionShell,
}

/// The shells `plan completions` writes for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// The command whose page to print [default: plan(1)].
    #[arg(value_name = "COMMAND", conflicts_with = "dir", value_parser = parse_command_name)]
    pub command: Option<String>,
    /// Write plan.1 and a plan-COMMAND.1 for each command into DIR (which
    /// must exist) instead of printing.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct RecoverArgs {
    /// The plan file the run applied [default: the path its journal
    /// records]; it must be unchanged since the run.
    pub plan: Option<PathBuf>,
    #[command(flatten)]
    pub target: TargetArgs,
    /// Where run folders are, if the run folder recorded in the runs table
    /// has moved.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Set a variable the plan declares, as the run had it (for
    /// on_failure): `--var NAME=VALUE`, once per variable, repeatable. It
    /// wins over the inventory's `vars`, the environment `env()` reads and
    /// `env()`'s default.
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_var)]
    pub vars: Vec<(String, String)>,
    /// Time the dead run's processes, and on_failure steps, get between
    /// SIGTERM and SIGKILL.
    #[arg(long, value_name = "DUR", default_value = "10s", value_parser = parse_duration)]
    pub grace: std::time::Duration,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Where the run folders are [default: as for apply].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// How to print the status.
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    pub format: OutputFormat,
    /// With several targets: read up to N at once.
    #[arg(long, value_name = "N", default_value = "4", value_parser = parse_jobs)]
    pub jobs: usize,
    /// With several targets: read up to M at once on one server (host and
    /// port).
    #[arg(long, value_name = "M", default_value = "1", value_parser = parse_jobs)]
    pub per_server: usize,
}

#[derive(Debug, clap::Args)]
pub struct BackupsArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Where the run folders are [default: as for apply].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Remove the kept backups beyond the newest --keep N.
    #[arg(long, requires = "keep")]
    pub prune: bool,
    /// How many of the newest backups --prune keeps.
    #[arg(long, value_name = "N", requires = "prune")]
    pub keep: Option<usize>,
    /// How to print the backups.
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    pub format: OutputFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Text for people.
    Human,
    /// One JSON document (format_version 1, see docs/cli.md).
    Json,
}

#[derive(Debug, clap::Args)]
pub struct RehearseArgs {
    /// The plan file, or a folder of plans to chain (with --to).
    #[arg(value_name = "PLAN|DIR")]
    pub plan: PathBuf,
    /// With a folder: the release to reach (as `plan apply DIR --to X`).
    #[arg(long, value_name = "X", value_parser = parse_release)]
    pub to: Option<Version>,
    /// With a folder: go through release X (repeatable, in order).
    #[arg(long, value_name = "X", value_parser = parse_release, requires = "to")]
    pub via: Vec<Version>,
    #[command(flatten)]
    pub target: TargetArgs,
    /// Make the copy from this dump (pg_dump's custom, directory or tar
    /// format) instead of a snapshot of the target: for rehearsing off the
    /// production server, or while sessions are connected to it.
    #[arg(long, value_name = "FILE")]
    pub from_dump: Option<PathBuf>,
    /// Keep the copy (database and files) for inspection, and say how to
    /// drop it.
    #[arg(long)]
    pub keep: bool,
    /// Rehearse on a throwaway PostgreSQL cluster seeded from the plan's
    /// `fixture/` folder, as `plan apply --sandbox` does; never a real
    /// server.
    #[arg(
        long,
        conflicts_with_all = ["target", "inventory", "database", "host", "port", "username", "from_dump"]
    )]
    pub sandbox: bool,
    /// How long to wait for another run's lock on the target before
    /// giving up.
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub lock_timeout: Option<std::time::Duration>,
    /// How long the copy waits for other sessions to leave the target
    /// before it refuses (they are never ended).
    #[arg(long, value_name = "DUR", default_value = "10s", value_parser = parse_duration)]
    pub wait_for_sessions: std::time::Duration,
    /// Where run folders go (as `plan apply`).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Set a variable the plan declares (as `plan apply`).
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_var)]
    pub vars: Vec<(String, String)>,
    /// Take the database to be at this release (as `plan apply`).
    #[arg(long, value_name = "X", value_parser = parse_release)]
    pub assume_release: Option<crate::version::Version>,
    /// The code a refresh plan deploys (as `plan apply`).
    #[arg(long, value_name = "REV")]
    pub revision: Option<String>,
    /// Let a refresh plan run a revision the history already records.
    #[arg(long)]
    pub allow_same_revision: bool,
    /// Time a step's processes get between SIGTERM and SIGKILL.
    #[arg(long, value_name = "DUR", default_value = "10s", value_parser = parse_duration)]
    pub grace: std::time::Duration,
    /// Run up to N independent steps at once (as `plan apply`).
    #[arg(long, value_name = "N", value_parser = parse_jobs)]
    pub jobs: Option<usize>,
    /// Rehearse even though the plan's `erp_config` names another database
    /// server or user than the target (as `plan apply`).
    #[arg(long)]
    pub erp_config_override: bool,
    /// How to print the result: `human` on stderr; `json` prints
    /// rehearsal.json on stdout as well.
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    pub format: OutputFormat,
}

impl RehearseArgs {
    /// The `plan apply` the rehearsal runs on its copy: its own flags, and
    /// apply's defaults for the rest (a rehearsal never ends a session,
    /// never stops without rolling back, never resumes).
    pub fn as_apply(&self) -> ApplyArgs {
        ApplyArgs {
            plan: self.plan.clone(),
            to: self.to.clone(),
            via: self.via.clone(),
            keep_reached: false,
            target: self.target.clone(),
            sandbox: false,
            lock_timeout: self.lock_timeout,
            terminate_connections: false,
            wait_for_sessions: self.wait_for_sessions,
            keep_failed: false,
            state_dir: self.state_dir.clone(),
            vars: self.vars.clone(),
            assume_release: self.assume_release.clone(),
            revision: self.revision.clone(),
            allow_same_revision: self.allow_same_revision,
            grace: self.grace,
            reconnect_wait: std::time::Duration::from_secs(60),
            on_failure_timeout: std::time::Duration::from_secs(600),
            jobs: self.jobs,
            step_jobs: None,
            per_server: None,
            max_failures: None,
            shard: None,
            format: OutputFormat::Human,
            run_id: None,
            dry_run: false,
            no_rollback: false,
            resume: false,
            erp_config_override: self.erp_config_override,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// The plan file, or a folder of plans to chain (with --to).
    #[arg(value_name = "PLAN|DIR")]
    pub plan: PathBuf,
    /// With a folder: the release to reach, through the fewest plans of
    /// the folder from the target's release (docs/chains.md).
    #[arg(long, value_name = "X", value_parser = parse_release)]
    pub to: Option<Version>,
    /// With a folder: go through release X (repeatable, in order), to
    /// choose between two paths of as many hops.
    #[arg(long, value_name = "X", value_parser = parse_release, requires = "to")]
    pub via: Vec<Version>,
    /// With a folder: when a hop fails, undo that hop only and stop at the
    /// last release reached, instead of rolling the whole chain back (each
    /// hop then takes its own backups).
    #[arg(long, requires = "to", conflicts_with = "no_rollback")]
    pub keep_reached: bool,
    #[command(flatten)]
    pub target: TargetArgs,
    /// Run against a throwaway PostgreSQL cluster seeded from the plan's
    /// `fixture/` folder, on a copy of the plan's folder; never a real
    /// server.
    #[arg(
        long,
        conflicts_with_all = ["target", "inventory", "database", "host", "port", "username"]
    )]
    pub sandbox: bool,
    /// How long to wait for another run's lock before giving up.
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub lock_timeout: Option<std::time::Duration>,
    /// End other sessions connected to the database before a snapshot
    /// (new connections are blocked while it is copied).
    #[arg(long)]
    pub terminate_connections: bool,
    /// How long a snapshot waits for other sessions to leave before it
    /// refuses.
    #[arg(long, value_name = "DUR", default_value = "10s", value_parser = parse_duration)]
    pub wait_for_sessions: std::time::Duration,
    /// After a rollback, keep the failed database and files (renamed
    /// aside) for a post-mortem instead of dropping them.
    #[arg(long)]
    pub keep_failed: bool,
    /// Where run folders (logs, report, dumps) go [default: /var/lib/plan-runner
    /// as root, else ~/.local/share/plan-runner].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Set a variable the plan declares: `--var NAME=VALUE`, once per
    /// variable, repeatable. It wins over the inventory's `vars`, the
    /// environment `env()` reads and `env()`'s default.
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_var)]
    pub vars: Vec<(String, String)>,
    /// Take the database to be at this release, whatever its history or
    /// release_query say.
    #[arg(long, value_name = "X", value_parser = parse_release)]
    pub assume_release: Option<crate::version::Version>,
    /// The code a refresh plan deploys (a git commit of the addons, say),
    /// recorded in the history; wins over the plan's `revision`.
    #[arg(long, value_name = "REV")]
    pub revision: Option<String>,
    /// Let a refresh plan run a revision the history already records as
    /// applied.
    #[arg(long)]
    pub allow_same_revision: bool,
    /// Time a step's processes get between SIGTERM and SIGKILL.
    #[arg(long, value_name = "DUR", default_value = "10s", value_parser = parse_duration)]
    pub grace: std::time::Duration,
    /// How long a run whose server went away (a restart, a failover, a cut
    /// network) waits for it to come back before it gives up and leaves
    /// the run to `plan recover`.
    #[arg(long, value_name = "DUR", default_value = "60s", value_parser = parse_duration)]
    pub reconnect_wait: std::time::Duration,
    /// The timeout of an on_failure step that sets none: a restart that
    /// hangs must not hold the target's lock for ever.
    #[arg(long, value_name = "DUR", default_value = "10m", value_parser = parse_duration)]
    pub on_failure_timeout: std::time::Duration,
    /// Run up to N independent steps at once (1 to 64) [default: 1]; a
    /// backup still runs alone, and the first failure ends the others. In
    /// a fleet run: up to N targets at once [default: 4].
    #[arg(long, value_name = "N", value_parser = parse_jobs)]
    pub jobs: Option<usize>,
    /// In a fleet run: the --jobs of each target's run (its steps)
    /// [default: 1].
    // No clap default: a single run refuses the flag when it is given.
    #[arg(long, value_name = "N", value_parser = parse_jobs)]
    pub step_jobs: Option<usize>,
    /// In a fleet run: at most M targets at once on one server (host and
    /// port) [default: 1].
    #[arg(long, value_name = "M", value_parser = parse_jobs)]
    pub per_server: Option<usize>,
    /// In a fleet run: once K targets did not end well (failed, refused,
    /// unreachable), start no other; the running ones end as usual.
    #[arg(long, value_name = "K", value_parser = parse_max_failures)]
    pub max_failures: Option<usize>,
    /// In a fleet run: only the I-th (from 0) of N stable slices of the
    /// selected targets, by a hash of their names, so that N machines
    /// share a fleet.
    #[arg(long, value_name = "I/N", value_parser = crate::fleet::select::parse_shard)]
    pub shard: Option<crate::fleet::select::Shard>,
    /// How to print the report (a fleet run: its summary) on stdout:
    /// `human` prints it on stderr, `json` prints report.json (the
    /// fleet's summary.json) on stdout as well.
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    pub format: OutputFormat,
    /// The run id to use (a fleet gives each target's run its own).
    #[arg(long, hide = true, value_parser = parse_run_id)]
    pub run_id: Option<String>,
    /// Change nothing: show the steps with their commands, the backups
    /// with their sizes and the free space for them, and what the run
    /// would find on the target (lock, release, sessions).
    #[arg(long, conflicts_with = "sandbox")]
    pub dry_run: bool,
    /// On a failure, stop and leave the database as the failure left it
    /// (for debugging a plan on a throwaway copy); refused on a target the
    /// inventory marks `production: true`.
    #[arg(long)]
    pub no_rollback: bool,
    /// Go on with the target's unfinished run (its runner died, or
    /// --no-rollback stopped it) from its first step that did not end
    /// successfully, with the same plan; the steps that did are not run
    /// again, and a failure rolls back to that run's backups.
    #[arg(long, conflicts_with_all = ["sandbox", "dry_run"])]
    pub resume: bool,
    /// Run even though the plan's `erp_config` names another database
    /// server, user or database than the target: the server is given the
    /// target's connection.
    #[arg(long)]
    pub erp_config_override: bool,
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
    /// The plan file, or a folder of plans (its graph of releases).
    #[arg(value_name = "PLAN|DIR")]
    pub plan: PathBuf,
    /// With a folder: the path a chain to release X takes from each
    /// release that leads to it.
    #[arg(long, value_name = "X", value_parser = parse_release)]
    pub to: Option<Version>,
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
    /// The plan file, or a folder of plans (its graph of releases).
    #[arg(value_name = "PLAN|DIR")]
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

/// Which database a command works on, with psql's flags: `-h`, `-p`,
/// `-U`, `-d` (a database name, a `postgresql://` URI or a `key=value`
/// connection string), over an inventory target, over a service
/// (`PGSERVICE`), over libpq's environment (`PGHOST`, `PGPORT`, `PGUSER`,
/// `PGDATABASE`, `PGPASSWORD`, `PGPASSFILE`, `PGSSLMODE`...). Flattened
/// into `apply`, `recover`, `status` and `backups`; resolved by
/// `crate::target::resolve_wanted`.
///
/// As in psql, `-h` is the host there, so these commands take `-?` (and
/// `--help`) for help.
#[derive(Clone, Debug, Default, clap::Args)]
#[command(
    disable_help_flag = true,
    group = clap::ArgGroup::new("selection").args(["target", "all", "select"]).multiple(false)
)]
pub struct TargetArgs {
    /// The inventory target to work on (needs --inventory); several,
    /// comma-separated, make a fleet run (`plan apply` and `plan
    /// status` only, docs/fleet.md).
    #[arg(
        long,
        value_name = "NAME,...",
        requires = "inventory",
        conflicts_with = "database"
    )]
    pub target: Option<String>,
    /// The YAML inventory that defines --target.
    #[arg(
        long,
        value_name = "FILE",
        requires = "selection",
        conflicts_with = "database"
    )]
    pub inventory: Option<PathBuf>,
    /// Every target of the inventory (a fleet run: `plan apply` and
    /// `plan status` only, docs/fleet.md).
    #[arg(long, requires = "inventory", conflicts_with = "database")]
    pub all: bool,
    /// The inventory targets whose `labels` have KEY=VALUE; repeated, a
    /// target must have every one (a fleet run: `plan apply` and `plan
    /// status` only, docs/fleet.md).
    #[arg(
        long,
        value_name = "KEY=VALUE",
        requires = "inventory",
        conflicts_with = "database",
        value_parser = crate::fleet::select::parse_label
    )]
    pub select: Vec<(String, String)>,
    /// The database to work on, or a connection string as psql takes it:
    /// `postgresql://USER@HOST:PORT/DB?sslmode=verify-full` or `host=HOST
    /// dbname=DB sslmode=require`. What it leaves out comes from -h, -p,
    /// -U, PGSERVICE and libpq's environment (PGHOST, PGPORT, PGUSER...).
    #[arg(
        short = 'd',
        long = "dbname",
        visible_alias = "database",
        value_name = "DB"
    )]
    pub database: Option<String>,
    /// The database server's host name or address, or the folder of its
    /// Unix socket [default: PGHOST, else the local socket, else localhost].
    #[arg(short = 'h', long, value_name = "HOST")]
    pub host: Option<String>,
    /// The database server's port [default: PGPORT, else 5432].
    #[arg(short = 'p', long, value_name = "PORT")]
    pub port: Option<String>,
    /// The database role to connect as [default: PGUSER, else the system
    /// user's name].
    #[arg(short = 'U', long, value_name = "USER")]
    pub username: Option<String>,
    /// The database holding the runner's lock and runs table; the same for
    /// every runner on the server [default: postgres].
    #[arg(long, value_name = "NAME")]
    pub maintenance_db: Option<String>,
    /// Print help (`-?` for a summary).
    #[arg(short = '?', long, action = clap::ArgAction::Help, display_order = 1000)]
    pub help: Option<bool>,
}

impl TargetArgs {
    /// The fleet these flags select (`--all`, `--select`, `--target a,b`),
    /// or `None` for one target.
    pub fn fleet(&self) -> Option<crate::fleet::select::Selection> {
        use crate::fleet::select::Selection;
        if self.all {
            Some(Selection::All)
        } else if !self.select.is_empty() {
            Some(Selection::Labels(self.select.clone()))
        } else {
            match &self.target {
                Some(names) if names.contains(',') => Some(Selection::Names(
                    names
                        .split(',')
                        .map(str::trim)
                        .filter(|n| !n.is_empty())
                        .map(str::to_string)
                        .collect(),
                )),
                _ => None,
            }
        }
    }

    /// What these flags ask the target resolver for.
    pub fn wanted(&self) -> crate::target::Wanted<'_> {
        crate::target::Wanted {
            fleet: self.fleet().is_some(),
            inventory: self.inventory.as_deref(),
            target: self.target.as_deref(),
            database: self.database.as_deref(),
            host: self.host.as_deref(),
            port: self.port.as_deref(),
            user: self.username.as_deref(),
            maintenance_db: self.maintenance_db.as_deref(),
        }
    }
}

/// Parses `NAME=VALUE` for `--var`.
pub fn parse_var(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if crate::parse::is_var_name(name) => {
            Ok((name.to_string(), value.to_string()))
        }
        Some((name, _)) => Err(format!(
            "`{name}` is not a variable name (lower-case letters, digits, `_`)"
        )),
        None => Err("write --var NAME=VALUE".into()),
    }
}

/// Parses a duration such as `90s` or `15m` for a flag.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    crate::resolve::parse_duration(text)
        .ok_or_else(|| format!("`{text}` is not a duration such as 30s, 5m or 1h"))
}

/// Parses `--jobs N`: 1 to `MAX_JOBS`.
pub fn parse_jobs(text: &str) -> Result<usize, String> {
    let max = crate::exec::run::schedule::MAX_JOBS;
    match text.trim().parse::<usize>() {
        Ok(0) => Err(format!(
            "0 would run nothing: --jobs 1 (the default) runs one step at a time, up to --jobs {max} run independent steps at once"
        )),
        Ok(n) if n <= max => Ok(n),
        Ok(_) => Err(format!(
            "at most {max} steps run at once (each holds a connection or a process group)"
        )),
        Err(_) => Err(format!("`{text}` is not a number of steps from 1 to {max}")),
    }
}

/// Parses `--max-failures K`: at least 1.
pub fn parse_max_failures(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(0) => Err("0 would start nothing: give at least 1, or leave it out".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("`{text}` is not a number of targets")),
    }
}

/// Parses the hidden `--run-id`: the shape `new_run_id` makes, since it
/// becomes part of a folder and a database name.
pub fn parse_run_id(text: &str) -> Result<String, String> {
    if text.len() == 16
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(text.to_string())
    } else {
        Err(format!("`{text}` is not a run id (16 digits and a-f)"))
    }
}

/// Parses the name of one of plan's commands (`plan man COMMAND`).
pub fn parse_command_name(text: &str) -> Result<String, String> {
    use clap::CommandFactory;
    let cli = Cli::command();
    let names: Vec<&str> = cli.get_subcommands().map(|c| c.get_name()).collect();
    if names.contains(&text) {
        return Ok(text.to_string());
    }
    let hint = match crate::diagnostic::suggest(text, names.iter().copied()) {
        Some(near) => format!("did you mean `{near}`? "),
        None => String::new(),
    };
    Err(format!(
        "`{text}` is not a command of plan: {hint}the commands are {}",
        names.join(", ")
    ))
}

/// Parses a release for `--assume-release`.
pub fn parse_release(text: &str) -> Result<Version, String> {
    Version::parse(text).ok_or_else(|| format!("`{text}` is not a release such as 6.0.0"))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::TargetArgs;

    #[derive(Debug, Parser)]
    struct Probe {
        #[command(flatten)]
        target: TargetArgs,
    }

    fn parse(args: &[&str]) -> Result<TargetArgs, clap::error::ErrorKind> {
        Probe::try_parse_from(std::iter::once("probe").chain(args.iter().copied()))
            .map(|p| p.target)
            .map_err(|e| e.kind())
    }

    #[test]
    fn target_and_inventory_go_together() {
        let args = parse(&["--target", "acme", "--inventory", "inv.yaml"]).unwrap();
        assert_eq!(args.target.as_deref(), Some("acme"));
        assert_eq!(
            args.inventory.as_deref(),
            Some(std::path::Path::new("inv.yaml"))
        );
        assert!(parse(&["--target", "acme"]).is_err());
        assert!(parse(&["--inventory", "inv.yaml"]).is_err());
    }

    #[test]
    fn database_conflicts_with_an_inventory_target() {
        assert_eq!(
            parse(&["--target", "a", "--inventory", "i", "--database", "d"]).err(),
            Some(clap::error::ErrorKind::ArgumentConflict)
        );
        let args = parse(&["--database", "d", "--maintenance-db", "template1"]).unwrap();
        assert_eq!(args.database.as_deref(), Some("d"));
        assert_eq!(args.maintenance_db.as_deref(), Some("template1"));
        let none = parse(&[]).unwrap();
        assert!(none.target.is_none() && none.database.is_none());
    }
}
