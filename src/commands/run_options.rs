//! What a run of one plan on one target is given, from `plan apply`'s
//! arguments: the target refusals and the run's options. Shared by a
//! single plan's run (`apply`) and each hop of a chain (`chain`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::ApplyArgs;
use crate::commands::UsageError;
use crate::db::connect::Connector;
use crate::exec::backup::SessionPolicy;
use crate::exec::run::Options;
use crate::exit::Ending;
use crate::target::{self, ResolvedTarget};

/// The options of a run of `plan` (with its SHA-256) as `args` ask, with
/// the run's id and folder (a chain's hops each have their own plan and
/// folder).
pub(crate) fn options(
    args: &ApplyArgs,
    resolved: &target::ResolvedTarget,
    (run_id, run_folder): (String, std::path::PathBuf),
    (plan, plan_sha256): (&Path, String),
    child_env: Vec<(String, String)>,
    erp_config: Option<crate::erp_config::Setting>,
) -> Options {
    Options {
        connector: Connector::new(resolved.target.clone(), &run_id, child_env),
        run_id,
        run_folder,
        target: crate::commands::describe(resolved),
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
        plan_path: std::path::absolute(plan).unwrap_or_else(|_| plan.to_path_buf()),
        plan_sha256,
        step_user: resolved.step_user.clone(),
        grace: args.grace,
        reconnect_wait: args.reconnect_wait,
        on_failure_timeout: args.on_failure_timeout,
        target_flags: crate::commands::target_flags(&args.target, resolved),
        no_rollback: args.no_rollback,
        jobs: args.jobs.unwrap_or(1),
        erp_config,
        revision: args.revision.clone(),
        allow_same_revision: args.allow_same_revision,
        rehearsal: false,
    }
}

/// A target no plan may run on, or `--no-rollback` on production.
pub(crate) fn refuse_target(
    args: &ApplyArgs,
    resolved: &target::ResolvedTarget,
) -> Result<(), UsageError> {
    crate::commands::refuse_unusable_target(args.target.database.as_deref(), resolved)?;
    if args.no_rollback && resolved.production {
        return Err(UsageError::NoRollbackOnProduction {
            target: resolved
                .name
                .clone()
                .unwrap_or_else(|| resolved.target.database.clone()),
        });
    }
    Ok(())
}

/// What a run on a rehearsal's copy is given (`plan rehearse`).
pub(crate) struct Rehearsing<'a> {
    pub run_id: String,
    /// The run's folder, inside the rehearsal's.
    pub run_folder: PathBuf,
    /// The target before it was pointed at the copy: the ERP
    /// configuration is compared with it.
    pub original: &'a ResolvedTarget,
    /// The trees named without `${db}`: (original, copy).
    pub trees: &'a [(PathBuf, PathBuf)],
}

/// How a plan's run (or a chain's) ended: before any run, or with the
/// reports of the runs (one, or one per hop).
pub(crate) enum Done {
    Ended(Ending),
    Ran(Vec<crate::exec::report::Report>, Ending),
}

impl Done {
    pub(crate) fn ending(&self) -> Ending {
        match self {
            Done::Ended(ending) | Done::Ran(_, ending) => *ending,
        }
    }
}
