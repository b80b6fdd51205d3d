//! `plan apply --inventory FILE (--all | --select K=V | --target a,b)`:
//! select the targets, find each one's server, and run the fleet
//! (`crate::fleet`) with a `plan apply --target NAME` child per target,
//! which gets every flag of this command that concerns one run.

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use crate::cli::{ApplyArgs, OutputFormat};
use crate::commands::{UsageError, eprint, print};
use crate::exit::Ending;
use crate::fleet::select::{self, Selection};
use crate::fleet::{self, Selected};
use crate::target::inventory::Inventory;
use crate::target::{Env, TargetError};

/// `--jobs` of a fleet run when it is not given: a few targets at once,
/// bounded further by `--per-server`.
pub const DEFAULT_FLEET_JOBS: usize = 4;

pub fn run(args: &ApplyArgs, selection: Selection) -> Result<Ending, UsageError> {
    let Some(inventory_path) = args.target.inventory.as_deref() else {
        return Err(UsageError::FleetWithoutInventory);
    };
    let inventory = Inventory::load(inventory_path).map_err(TargetError::from)?;
    let mut names = select::select(&inventory, &selection)?;
    if let Some(shard) = args.shard {
        names = select::in_shard(&names, shard);
    }
    let env = Env::from_process();
    let members: Vec<Selected> = names
        .into_iter()
        .map(|name| {
            let server = crate::commands::resolve_member(&inventory, &name, &args.target, &env)
                // A target that does not resolve fails in its own run,
                // which says why; until then it counts as a server alone.
                .map_or_else(
                    |_| format!("? {name}"),
                    |r| format!("{}:{}", r.target.host, r.target.port),
                );
            Selected { name, server }
        })
        .collect();

    let state_dir = crate::commands::state_dir(args.state_dir.as_deref());
    let fleet_id = crate::exec::run::new_run_id();
    let folder = state_dir.join("fleets").join(&fleet_id);
    crate::commands::private_folders(&state_dir, &folder)?;
    let program = std::env::current_exe().map_err(|source| UsageError::Io {
        path: "/proc/self/exe".into(),
        source,
    })?;
    let opts = fleet::Options {
        program,
        args: child_args(args, inventory_path, &state_dir),
        state_dir: state_dir.clone(),
        folder,
        fleet_id,
        plan: args.plan.display().to_string(),
        inventory: std::path::absolute(inventory_path)
            .unwrap_or_else(|_| inventory_path.to_path_buf()),
        jobs: args.jobs.unwrap_or(DEFAULT_FLEET_JOBS),
        per_server: args.per_server.unwrap_or(1),
        max_failures: args.max_failures,
        dry_run: args.dry_run,
    };
    if members.is_empty() {
        eprint("nothing to do: this slice of the selection holds no target\n");
    }
    let summary = fleet::run(members, &opts);
    match args.format {
        OutputFormat::Human => print(&summary.human()),
        OutputFormat::Json => print(&summary.json()),
    }
    Ok(summary.ending())
}

/// The arguments of one target's `plan apply`, before `--target NAME
/// --run-id ID`: every flag given here that concerns a single run.
fn child_args(args: &ApplyArgs, inventory: &Path, state_dir: &Path) -> Vec<OsString> {
    // Absolute: the child's run records where the plan is, and a path
    // that starts with `/` is never read as a flag.
    let plan = std::path::absolute(&args.plan).unwrap_or_else(|_| args.plan.clone());
    let mut out: Vec<OsString> = vec!["apply".into(), plan.into_os_string()];
    let mut flag = |name: &str, value: Option<OsString>| {
        out.push(name.into());
        if let Some(value) = value {
            out.push(value);
        }
    };
    let duration = |d: Duration| OsString::from(format!("{}ms", d.as_millis()));
    flag("--inventory", Some(inventory.into()));
    flag("--state-dir", Some(state_dir.into()));
    flag(
        "--jobs",
        Some(args.step_jobs.unwrap_or(1).to_string().into()),
    );
    flag(
        "--wait-for-sessions",
        Some(duration(args.wait_for_sessions)),
    );
    flag("--grace", Some(duration(args.grace)));
    flag("--reconnect-wait", Some(duration(args.reconnect_wait)));
    flag(
        "--on-failure-timeout",
        Some(duration(args.on_failure_timeout)),
    );
    if let Some(wait) = args.lock_timeout {
        flag("--lock-timeout", Some(duration(wait)));
    }
    if let Some(release) = &args.assume_release {
        flag("--assume-release", Some(release.to_string().into()));
    }
    // A fleet of chains: each target walks its own path to the same `--to`.
    if let Some(to) = &args.to {
        flag("--to", Some(to.to_string().into()));
    }
    if let Some(revision) = &args.revision {
        flag("--revision", Some(revision.into()));
    }
    for via in &args.via {
        flag("--via", Some(via.to_string().into()));
    }
    for (name, value) in &args.vars {
        flag("--var", Some(format!("{name}={value}").into()));
    }
    let switches = [
        (args.terminate_connections, "--terminate-connections"),
        (args.keep_failed, "--keep-failed"),
        (args.dry_run, "--dry-run"),
        (args.no_rollback, "--no-rollback"),
        (args.resume, "--resume"),
        (args.erp_config_override, "--erp-config-override"),
        (args.keep_reached, "--keep-reached"),
        (args.allow_same_revision, "--allow-same-revision"),
    ];
    for (on, name) in switches {
        if on {
            flag(name, None);
        }
    }
    let target = &args.target;
    for (name, value) in [
        ("--host", &target.host),
        ("--port", &target.port),
        ("--username", &target.username),
        ("--maintenance-db", &target.maintenance_db),
    ] {
        if let Some(value) = value {
            flag(name, Some(value.into()));
        }
    }
    out
}
