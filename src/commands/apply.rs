//! `plan apply`: resolve the target, check the plan, run it (exec::run),
//! print the report. `--sandbox` does the same against a throwaway cluster
//! seeded from the plan's `fixture/` folder.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::analysis::{Analysis, analyse_path};
use crate::cli::ApplyArgs;
use crate::cli::TargetArgs;
use crate::commands::{UsageError, eprint, print, report};
use crate::db::connect::Connector;
use crate::db::target::{self, Env, ResolvedTarget};
use crate::exec::backup::SessionPolicy;
use crate::exec::run::{self, Options};
use crate::exit::Exit;
use crate::resolve::{Context, Live};
use crate::sandbox::Sandbox;
use crate::version::Version;

pub fn run(args: &ApplyArgs) -> Result<Exit, UsageError> {
    // The sandbox (cluster and copied plan folder) lives until the end.
    let sandbox;
    let (plan_path, resolved) = if args.sandbox {
        sandbox = Sandbox::start(&args.plan)?;
        (sandbox.plan_path().to_path_buf(), sandbox.target()?)
    } else {
        let resolved =
            target::resolve_args(&args.target, &Env::from_process()).map_err(UsageError::from)?;
        (args.plan.clone(), resolved)
    };
    if resolved.target.database == resolved.maintenance_db {
        return Err(UsageError::TargetIsMaintenance {
            database: resolved.maintenance_db.clone(),
        });
    }
    if args.no_rollback && resolved.production {
        return Err(UsageError::NoRollbackOnProduction {
            target: resolved
                .name
                .clone()
                .unwrap_or_else(|| resolved.target.database.clone()),
        });
    }
    for warning in &resolved.warnings {
        eprint(&format!("warning: {warning}\n"));
    }
    let bytes = std::fs::read(&plan_path).map_err(|source| UsageError::Io {
        path: plan_path.clone(),
        source,
    })?;
    let plan_sha256 = hex::encode(Sha256::digest(&bytes));

    let ctx = crate::commands::apply::live_context(&args.vars, &resolved);
    let analysis = analyse_path(&plan_path, &ctx).map_err(|source| UsageError::Io {
        path: plan_path.clone(),
        source,
    })?;
    if let Some(exit) = refuse_to_run(&analysis, args)? {
        return Ok(exit);
    }
    let (Some(plan), Some((main, failure))) = (&analysis.plan, &analysis.graphs) else {
        return Ok(Exit::Failed);
    };
    let state_dir = state_dir(args.state_dir.as_deref());
    // A resumed run keeps its id and its run folder.
    let resuming = if args.resume {
        match crate::commands::resume::find(args, &resolved, &plan_sha256, |w| {
            eprint(&format!("{w}\n"))
        }) {
            Ok(unfinished) => Some(unfinished),
            Err(crate::commands::resume::Refused(exit, text)) => {
                eprint(&format!("{text}\n"));
                return Ok(exit);
            }
        }
    } else {
        None
    };
    let (run_id, run_folder) = match &resuming {
        Some(u) => (u.row.run_id.clone(), u.folder.clone()),
        None => {
            let run_id = run::new_run_id();
            let run_folder = state_dir.join("runs").join(&run_id);
            (run_id, run_folder)
        }
    };
    // A dry run writes nothing, not even its run folder: no child runs.
    let child_env = if args.dry_run {
        Vec::new()
    } else {
        std::fs::create_dir_all(run_folder.join("logs")).map_err(|source| UsageError::Write {
            path: run_folder.clone(),
            source,
        })?;
        target::env_for_child(&resolved.target, &run_folder).map_err(UsageError::from)?
    };
    let options = Options {
        run_id: run_id.clone(),
        run_folder,
        connector: Connector::new(resolved.target.clone(), &run_id, child_env),
        target: describe(&resolved),
        database: resolved.target.database.clone(),
        maintenance_db: resolved.maintenance_db.clone(),
        lock_timeout: args.lock_timeout.unwrap_or(Duration::ZERO),
        sessions: SessionPolicy {
            terminate: args.terminate_connections,
            wait: args.wait_for_sessions,
        },
        keep_failed: args.keep_failed,
        assume_release: args.assume_release.clone(),
        // Absolute, so that `plan recover` finds it from any folder.
        plan_path: std::path::absolute(&args.plan).unwrap_or_else(|_| args.plan.clone()),
        plan_sha256,
        step_user: resolved.step_user.clone(),
        grace: args.grace,
        target_flags: target_flags(&args.target, &resolved),
        no_rollback: args.no_rollback,
        jobs: args.jobs,
    };
    if args.dry_run {
        let local = run::dry::is_local(&resolved.target.host);
        let (text, exit) = run::dry_run(plan, &main.order, &failure.order, &options, local);
        print(&text);
        return Ok(exit);
    }
    let (report, exit) = match resuming {
        Some(unfinished) => {
            run::resume::resume(plan, &main.order, &failure.order, &options, unfinished)
        }
        None => run::apply(plan, &main.order, &failure.order, &options),
    };
    eprint(&report.human());
    Ok(exit)
}

/// The flags that name this target again in a command the user is told
/// to run (`plan recover ...`).
pub fn target_flags(args: &TargetArgs, resolved: &ResolvedTarget) -> String {
    let mut flags = match (&args.target, &args.inventory) {
        (Some(name), Some(inventory)) => {
            format!("--target {name} --inventory {}", inventory.display())
        }
        _ => format!("--database {}", resolved.target.database),
    };
    if let Some(m) = &args.maintenance_db {
        flags.push_str(&format!(" --maintenance-db {m}"));
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
        }),
    }
}

/// Errors in the plan, values missing at apply time, `--var` for names the
/// plan does not declare, or an unsuppressed "changes data without a
/// backup": nothing runs.
fn refuse_to_run(analysis: &Analysis, args: &ApplyArgs) -> Result<Option<Exit>, UsageError> {
    // Lint as in review: errors stop the run, and so does "changes data
    // without a backup" unless a `# lint: allow` a reviewer can see says so.
    let linted = crate::lint::lint(analysis);
    if linted.apply_refuses() {
        let blocking: Vec<_> = linted.blocking().cloned().collect();
        report(&blocking, &analysis.source);
        eprint(&format!(
            "nothing was run: fix the plan first (`plan lint {}`)\n",
            args.plan.display()
        ));
        return Ok(Some(Exit::Failed));
    }
    if let Some(plan) = &analysis.plan {
        let declared: Vec<&str> = plan
            .vars
            .iter()
            .map(|(n, _)| n.as_str())
            .chain(["db"])
            .collect();
        if let Some((name, _)) = args
            .vars
            .iter()
            .find(|(n, _)| !declared.contains(&n.as_str()))
        {
            return Err(UsageError::UnknownVar {
                name: name.clone(),
                declared: declared.join(", "),
            });
        }
    }
    if !analysis.missing.is_empty() {
        return Err(UsageError::Missing {
            what: analysis.missing.join(", "),
        });
    }
    Ok(None)
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
    let max = run::schedule::MAX_JOBS;
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

/// Parses a release for `--assume-release`.
pub fn parse_release(text: &str) -> Result<Version, String> {
    Version::parse(text).ok_or_else(|| format!("`{text}` is not a release such as 6.0.0"))
}
