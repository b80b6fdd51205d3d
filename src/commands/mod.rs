//! One module per subcommand; this one holds what they share: finding plan
//! files, printing diagnostics, and the errors that stop a command early.

pub mod apply;
pub mod backups;
pub mod chain;
pub mod completions;
pub mod erp;
pub mod explain;
pub mod fleet;
pub mod fleet_status;
pub mod fmt;
pub mod graph;
pub mod lint;
pub mod man;
pub mod new;
pub mod recover;
pub mod rehearsal_record;
pub mod rehearse;
pub mod resume;
pub mod run_options;
pub mod sandbox;
pub mod show;
pub mod show_folder;
pub mod status;
pub mod unfinished;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use miette::Diagnostic as MietteDiagnostic;
use thiserror::Error;

use crate::cli::TargetArgs;
use crate::diagnostic::Diagnostic;
use crate::diagnostic::human::{self, Style};
use crate::resolve::{Context, Live};
use crate::source::Source;
use crate::target::ResolvedTarget;

/// Why a command could not do its work at all (exit 2).
#[derive(Debug, Error, MietteDiagnostic)]
pub enum UsageError {
    #[error("`{}` does not exist", path.display())]
    #[diagnostic(
        code(plan::no_such_path),
        help("give a plan file or a folder holding `*.plan` files")
    )]
    NoSuchPath { path: PathBuf },

    #[error("no `.plan` files in `{}`", path.display())]
    #[diagnostic(
        code(plan::no_plan_files),
        help(
            "plan files end in `.plan`; give a plan file, or a folder with `*.plan` files in it or below it"
        )
    )]
    NoPlanFiles { path: PathBuf },

    #[error("cannot read `{}`", path.display())]
    #[diagnostic(code(plan::io))]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("`--var {name}`: the plan declares no variable `{name}`")]
    #[diagnostic(code(plan::unknown_var), help("the plan declares: {declared}"))]
    UnknownVar { name: String, declared: String },

    #[error("the target database `{database}` is also the maintenance database")]
    #[diagnostic(
        code(plan::target_is_maintenance),
        help(
            "the lock lives in the maintenance database and a rollback renames the target: give another one with --maintenance-db"
        )
    )]
    TargetIsMaintenance { database: String },

    #[error("the target database name is empty")]
    #[diagnostic(
        code(plan::blank_database),
        help(
            "libpq would fall back to the user's name and run the plan on another database: name the database with -d/--database, the inventory's `database` or PGDATABASE"
        )
    )]
    BlankDatabase,

    #[error("the target database `{database}` is a template database")]
    #[diagnostic(
        code(plan::target_is_template),
        help(
            "template0 and template1 are copied into every new database: a plan runs on an ERP database, never on them"
        )
    )]
    TargetIsTemplate { database: String },

    #[error("the plan needs values that are not set: {what}")]
    #[diagnostic(
        code(plan::missing_value),
        help("set them in the environment, or give them with --var NAME=VALUE")
    )]
    Missing { what: String },

    #[error(transparent)]
    #[diagnostic(transparent)]
    Target(#[from] crate::target::TargetError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Sandbox(#[from] sandbox::SandboxError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    ErpConfig(#[from] crate::erp_config::ErpConfigError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    New(#[from] new::NewError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Explain(#[from] explain::ExplainError),

    #[error("cannot {what}: {detail}")]
    #[diagnostic(
        code(plan::database),
        help("check the connection settings (docs/connection.md) and that the server is up")
    )]
    Database { what: String, detail: String },

    #[error("--no-rollback is refused on `{target}`: the inventory marks it `production: true`")]
    #[diagnostic(
        code(plan::no_rollback_on_production),
        help(
            "--no-rollback leaves a failed database as it is; use it on a throwaway copy (or --sandbox), never on production"
        )
    )]
    NoRollbackOnProduction { target: String },

    #[error(transparent)]
    #[diagnostic(transparent)]
    Select(#[from] crate::fleet::select::SelectError),

    #[error("--shard picks a slice of an inventory's targets, and no --inventory is given")]
    #[diagnostic(
        code(plan::fleet_without_inventory),
        help("add `--inventory FILE --all` (or --select, or --target a,b)")
    )]
    FleetWithoutInventory,

    #[error("{flag} only concerns a fleet run, and this run has one target")]
    #[diagnostic(
        code(plan::fleet_only),
        help(
            "select several targets (`--inventory FILE --all`, --select, or --target a,b), or leave {flag} out; a single run's steps follow --jobs"
        )
    )]
    FleetOnly { flag: &'static str },

    #[error("`--to {to}` needs a folder of plans, and `{}` is a file", path.display())]
    #[diagnostic(
        code(plan::chain::to_without_folder),
        help(
            "give the folder that holds the plans to chain (docs/chains.md); a plan file alone goes to its own `to`"
        )
    )]
    ToWithoutFolder { path: PathBuf, to: String },

    #[error("`{}` is a folder: say which release to reach with --to", path.display())]
    #[diagnostic(
        code(plan::chain::needs_to),
        help(
            "`plan apply DIR --to X` chains the folder's plans from the target's release to X (docs/chains.md)"
        )
    )]
    ChainNeedsTo { path: PathBuf },

    #[error("{flag} does not work with a folder of plans yet")]
    #[diagnostic(
        code(plan::chain::unsupported),
        help(
            "a chain that died is taken back to its start by `plan recover`; otherwise apply the folder's plans one at a time (docs/chains.md, \"Not (yet) for chains\")"
        )
    )]
    ChainUnsupported { flag: &'static str },

    #[error("the copy of the target for the rehearsal could not be made: {detail}")]
    #[diagnostic(
        code(plan::rehearse::copy),
        help(
            "nothing of the target was changed, and whatever was copied is dropped; see the rehearsal folder's copies.json"
        )
    )]
    RehearsalCopy { detail: String },

    #[error("cannot write `{}`", path.display())]
    #[diagnostic(code(plan::io))]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The target of `status`, `backups` (and `apply` without `--sandbox`),
/// its warnings printed.
pub fn resolve_target(
    args: &crate::cli::TargetArgs,
) -> Result<crate::target::ResolvedTarget, UsageError> {
    let resolved =
        crate::target::resolve_wanted(&args.wanted(), &crate::target::Env::from_process())?;
    for warning in &resolved.warnings {
        eprintln!("warning: {warning}");
    }
    Ok(resolved)
}

/// A connection to `database` on the target's server, outside any run.
pub fn connect(
    resolved: &crate::target::ResolvedTarget,
    database: &str,
) -> Result<postgres::Client, UsageError> {
    crate::db::connect::open(&resolved.target, database).map_err(|e| UsageError::Database {
        what: format!("connect to {}", resolved.target.at(database)),
        detail: crate::exec::sql::describe_error(&e),
    })
}

/// The flags that name this target again in a command the user is told
/// to run (`plan recover ...`), as they were given.
pub fn target_flags(args: &TargetArgs, resolved: &ResolvedTarget) -> String {
    let word = |text: &str| crate::quote::shell_word(text);
    let mut flags = match (&args.target, &args.inventory) {
        (Some(name), Some(inventory)) => format!(
            "--target {} --inventory {}",
            word(name),
            word(&inventory.to_string_lossy())
        ),
        _ => format!(
            "-d {}",
            word(
                args.database
                    .as_deref()
                    .unwrap_or(&resolved.target.database)
            )
        ),
    };
    for (flag, value) in [
        ("-h", &args.host),
        ("-p", &args.port),
        ("-U", &args.username),
        ("--maintenance-db", &args.maintenance_db),
    ] {
        if let Some(value) = value {
            flags.push_str(&format!(" {flag} {}", word(value)));
        }
    }
    flags
}

/// What a real run resolves the plan with: `--var`, the inventory's vars,
/// the environment and the target (apply and recover alike).
pub fn live_context(vars: &[(String, String)], resolved: &ResolvedTarget) -> Context {
    Context {
        overrides: vars.iter().cloned().collect(),
        inventory: resolved.vars.clone(),
        live: Some(Live {
            env: std::env::vars().collect(),
            target: resolved.target.plan_fields().into_iter().collect(),
            erp_config: None,
        }),
    }
}

/// The inventory's target `name` as a fleet member resolves it: the
/// inventory's settings under the command line's `-h`, `-p`, `-U` and
/// `--maintenance-db`; `Err` says why not.
pub fn resolve_member(
    inventory: &crate::target::inventory::Inventory,
    name: &str,
    args: &TargetArgs,
    env: &crate::target::Env,
) -> Result<ResolvedTarget, String> {
    let target = inventory.target(name).map_err(|e| e.to_string())?;
    crate::target::resolve(
        &crate::target::Selection {
            database: None,
            host: args.host.as_deref(),
            port: args.port.as_deref(),
            user: args.username.as_deref(),
            inventory: Some((name, target)),
            maintenance_db: args.maintenance_db.as_deref(),
        },
        env,
    )
    .map_err(|e| e.to_string())
}

/// How a target is shown: `acme (127.0.0.1:5432/acme)`.
pub fn describe(resolved: &ResolvedTarget) -> String {
    let t = &resolved.target;
    let place = format!("{}:{}/{}", t.host, t.port, t.database);
    match &resolved.name {
        Some(name) => format!("{name} ({place})"),
        None => place,
    }
}

/// Makes `folder`, private whatever the umask (0700), and when it is
/// below the state folder, the state folder and each folder between them
/// too (`runs/`, `fleets/`): what a run keeps there (its journal, the
/// steps' password file) is the user's alone.
pub fn private_folders(state_dir: &Path, folder: &Path) -> Result<(), UsageError> {
    let mut folders = Vec::new();
    match folder.strip_prefix(state_dir) {
        Ok(below) => {
            let mut at = state_dir.to_path_buf();
            folders.push(at.clone());
            for part in below.components() {
                at.push(part);
                folders.push(at.clone());
            }
        }
        Err(_) => folders.push(folder.to_path_buf()),
    }
    folders
        .iter()
        .try_for_each(|f| crate::private::make_dir(f))
        .map_err(|source| UsageError::Write {
            path: folder.to_path_buf(),
            source,
        })
}

/// The state dir given, or the default; absolute, because the paths
/// recorded in a run folder (dumps) are read later from elsewhere.
pub fn state_dir(given: Option<&Path>) -> PathBuf {
    let dir = given
        .map(Path::to_path_buf)
        .unwrap_or_else(default_state_dir);
    std::path::absolute(&dir).unwrap_or(dir)
}

/// Where run folders go: `/var/lib/plan-runner` as root, else the user's
/// data folder (`$XDG_DATA_HOME/plan-runner` or
/// `~/.local/share/plan-runner`).
pub fn default_state_dir() -> PathBuf {
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from("/var/lib/plan-runner");
    }
    if let Some(data) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return Path::new(&data).join("plan-runner");
    }
    match std::env::var_os("HOME") {
        Some(home) => Path::new(&home).join(".local/share/plan-runner"),
        None => std::env::temp_dir().join("plan-runner"),
    }
}

/// Refuses a target no plan may run on, before anything is done: a blank
/// database name (given empty, or a variable that made it empty), the
/// maintenance database (which holds the lock), a template database.
pub fn refuse_unusable_target(
    given: Option<&str>,
    resolved: &ResolvedTarget,
) -> Result<(), UsageError> {
    let database = &resolved.target.database;
    if given.is_some_and(|d| d.trim().is_empty()) || database.trim().is_empty() {
        return Err(UsageError::BlankDatabase);
    }
    if *database == resolved.maintenance_db {
        return Err(UsageError::TargetIsMaintenance {
            database: database.clone(),
        });
    }
    if matches!(database.as_str(), "template0" | "template1") {
        return Err(UsageError::TargetIsTemplate {
            database: database.clone(),
        });
    }
    Ok(())
}

/// The plan files named by `paths`: files as given, folders searched for
/// `*.plan` (sorted, so output is stable). A folder with none is a usage
/// error: a green `plan lint plans/` must mean plans were checked. In a
/// folder only regular files are read (a FIFO named `x.plan` would hang
/// the read); a file given by name is read whatever it is, so that
/// `plan lint <(generate)` works.
pub fn plan_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, UsageError> {
    let mut files = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => UsageError::NoSuchPath { path: path.clone() },
            _ => UsageError::Io {
                path: path.clone(),
                source,
            },
        })?;
        if meta.is_dir() {
            let mut found = Vec::new();
            walk(path, &mut found)?;
            if found.is_empty() {
                return Err(UsageError::NoPlanFiles { path: path.clone() });
            }
            found.sort();
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

fn walk(dir: &Path, found: &mut Vec<PathBuf>) -> Result<(), UsageError> {
    let entries = std::fs::read_dir(dir).map_err(|source| UsageError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| UsageError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = entry.path();
        let kind = entry.file_type().map_err(|source| UsageError::Io {
            path: path.clone(),
            source,
        })?;
        if kind.is_dir() {
            walk(&path, found)?;
        } else if path.extension().is_some_and(|e| e == "plan") {
            // Through a symbolic link, what it points at; one that points
            // nowhere is kept, and reading it says why it cannot be read.
            let regular = kind.is_file()
                || (kind.is_symlink() && std::fs::metadata(&path).map_or(true, |m| m.is_file()));
            if regular {
                found.push(path);
            } else {
                eprint(&format!(
                    "warning: skipping `{}`: not a regular file (a FIFO, socket or device is never read)\n",
                    path.display()
                ));
            }
        }
    }
    Ok(())
}

/// Whether output to stderr may use colour.
pub fn stderr_style() -> Style {
    Style {
        color: std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        width: 100,
    }
}

/// Whether output to stdout may use colour.
pub fn stdout_style() -> Style {
    Style {
        color: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        width: 100,
    }
}

/// Prints diagnostics to stderr.
pub fn report(diagnostics: &[Diagnostic], source: &Source) {
    let style = stderr_style();
    let mut err = std::io::stderr().lock();
    for d in diagnostics {
        let _ = err.write_all(human::render(d, source, style, false).as_bytes());
    }
}

/// Writes to stderr; a closed terminal (SIGHUP during a long run) is not
/// an error, where `eprintln!` would panic.
pub fn eprint(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    let _ = err.flush();
}

/// Writes to stdout; a closed pipe (`plan show | head`) is not an error.
pub fn print(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}
