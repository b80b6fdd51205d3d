//! `plan recover`: find the target's unfinished run (plan_runner.runs),
//! its journal and its plan, check the plan is unchanged, take the lock,
//! and hand the run to `exec::run::recover`. Everything that can be
//! refused is refused before anything changes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::analysis::analyse_path;
use crate::cli::RecoverArgs;
use crate::commands::apply::{describe, target_flags};
use crate::commands::default_state_dir;
use crate::commands::{UsageError, eprint, report};
use crate::db::connect::Connector;
use crate::db::lock;
use crate::db::runs::{self, RunRow};
use crate::exec::backup::SessionPolicy;
use crate::exec::journal::{self, Story};
use crate::exec::run::recover::{Dead, recover};
use crate::exec::run::{self, Options};
use crate::exit::Exit;
use crate::target::{self, Env};

pub fn run(args: &RecoverArgs) -> Result<Exit, UsageError> {
    let resolved = target::resolve_wanted(&args.target.wanted(), &Env::from_process())
        .map_err(UsageError::from)?;
    let database = resolved.target.database.clone();
    if database == resolved.maintenance_db {
        return Err(UsageError::TargetIsMaintenance {
            database: resolved.maintenance_db.clone(),
        });
    }
    for warning in &resolved.warnings {
        eprint(&format!("warning: {warning}\n"));
    }
    // This process's connections carry an id of their own: the run it
    // takes over is not its own.
    let own_id = format!("recover-{}", run::new_run_id());
    let connector = Connector::new(resolved.target.clone(), &own_id, Vec::new());
    let say = |exit: Exit, text: String| {
        eprint(&format!("{text}\n"));
        Ok(exit)
    };
    let db_error = |what: &str, e: postgres::Error| {
        say(
            Exit::Usage,
            format!("{what}: {}", crate::exec::sql::SqlError::from(e).describe()),
        )
    };
    let mut maintenance = match connector.connect(&resolved.maintenance_db) {
        Ok(c) => c,
        Err(e) => return db_error("cannot connect to the maintenance database", e),
    };
    let nothing =
        || format!("nothing to recover on `{database}`: no unfinished run in plan_runner.runs");
    match runs::unfinished(&mut maintenance, &database) {
        Ok(rows) if rows.is_empty() => return say(Exit::Success, nothing()),
        Ok(_) => {}
        Err(e) => return db_error("cannot read plan_runner.runs", e),
    }
    let mut lock_client = match connector.connect(&resolved.maintenance_db) {
        Ok(c) => c,
        Err(e) => return db_error("cannot connect to the maintenance database", e),
    };
    let _ = lock_client.batch_execute("set idle_session_timeout = 0; set statement_timeout = 0");
    match lock::acquire(&mut lock_client, &database, Duration::ZERO) {
        Ok(lock::Acquired::Yes) => {}
        Ok(lock::Acquired::HeldBy(holder)) => {
            let mut m = format!(
                "a plan-runner is working on `{database}` right now: recover only takes over a run whose runner is gone"
            );
            if let Some(h) = holder {
                m.push_str(&format!(
                    "\n  holder: server pid {}, {}, connected since {}",
                    h.pid, h.application, h.since
                ));
            }
            return say(Exit::Refused, m);
        }
        Err(e) => return db_error("cannot take the lock", e),
    }
    // With the lock held, the rows cannot change under us.
    let rows = match runs::unfinished(&mut maintenance, &database) {
        Ok(rows) => rows,
        Err(e) => return db_error("cannot read plan_runner.runs", e),
    };
    let Some(row) = rows.last() else {
        return say(Exit::Success, nothing());
    };
    if rows.len() > 1 {
        eprint(&format!(
            "{} older unfinished run(s) of `{database}` remain after this one: run plan recover again for them\n",
            rows.len() - 1
        ));
    }
    if let Some(why) = runner_alive(row) {
        return say(Exit::Refused, why);
    }
    let Some(folder) = run_folder(row, args.state_dir.as_deref()) else {
        let mut m = format!(
            "run {} of `{database}` is unfinished, but its journal is not on this machine",
            row.run_id
        );
        if row.host != runs::hostname() {
            m.push_str(&format!(
                "\n  it ran on host {}{}: run plan recover there, or copy its run folder here and give --state-dir",
                row.host,
                row.run_folder
                    .as_deref()
                    .map(|f| format!(", run folder {f}"))
                    .unwrap_or_default()
            ));
        } else {
            m.push_str(&format!(
                "\n  looked in {}; give --state-dir if the run folder moved",
                row.run_folder
                    .as_deref()
                    .unwrap_or("the default state folder")
            ));
        }
        return say(Exit::Refused, m);
    };
    let contents = match journal::read(&folder) {
        Ok(c) => c,
        Err(e) => {
            return say(
                Exit::Refused,
                format!("cannot read the journal in {}: {e}", folder.display()),
            );
        }
    };
    if contents.torn_tail {
        eprint(
            "note: the journal's last record was cut short (the machine stopped while writing it); it is ignored\n",
        );
    }
    if !contents.damaged.is_empty() {
        eprint(&format!(
            "warning: the journal has damaged lines ({:?}); they are skipped\n",
            contents.damaged
        ));
    }
    let story = Story::of(&contents.entries);
    let Some((journal_plan, journal_sha)) = story.plan.clone() else {
        return say(
            Exit::Refused,
            format!(
                "the journal in {} has no start record: restore by hand from the backups it lists",
                folder.display()
            ),
        );
    };
    if let Some(outcome) = story.ended.clone().filter(|o| o != "stopped") {
        // The run ended (its journal says so) but could not close its row.
        if let Err(e) = runs::finish(&mut maintenance, &row.run_id, &outcome) {
            return db_error("cannot close the run in plan_runner.runs", e);
        }
        return say(
            Exit::Success,
            format!(
                "run {} had ended ({outcome}) but was still open in plan_runner.runs: closed it; nothing to recover",
                row.run_id
            ),
        );
    }
    let plan_path = args.plan.clone().unwrap_or(journal_plan);
    let bytes = std::fs::read(&plan_path).map_err(|source| UsageError::Io {
        path: plan_path.clone(),
        source,
    })?;
    let sha = hex::encode(Sha256::digest(&bytes));
    if sha != journal_sha {
        return say(
            Exit::Refused,
            format!(
                "{} changed since run {} (SHA-256 {} then, {} now): recover runs the plan's on_failure as the run had it\n  give the plan file as it was when the run started",
                plan_path.display(),
                row.run_id,
                short(&journal_sha),
                short(&sha)
            ),
        );
    }
    let ctx = crate::commands::apply::live_context(&args.vars, &resolved);
    let analysis = analyse_path(&plan_path, &ctx).map_err(|source| UsageError::Io {
        path: plan_path.clone(),
        source,
    })?;
    if analysis.has_errors() {
        let errors: Vec<_> = analysis
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .cloned()
            .collect();
        report(&errors, &analysis.source);
        return Ok(Exit::Failed);
    }
    if !analysis.missing.is_empty() {
        return Err(UsageError::Missing {
            what: analysis.missing.join(", "),
        });
    }
    let (Some(plan), Some((_, failure))) = (&analysis.plan, &analysis.graphs) else {
        return Ok(Exit::Failed);
    };
    let child_env = crate::db::env_for_child(&resolved.target, &folder)
        .map_err(|e| UsageError::from(target::TargetError::from(e)))?;
    let options = Options {
        run_id: row.run_id.clone(),
        run_folder: folder.clone(),
        connector: Connector::new(resolved.target.clone(), &own_id, child_env),
        target: describe(&resolved),
        database: database.clone(),
        maintenance_db: resolved.maintenance_db.clone(),
        lock_timeout: Duration::ZERO,
        sessions: SessionPolicy {
            terminate: false,
            wait: Duration::from_secs(10),
        },
        keep_failed: false,
        assume_release: None,
        plan_path: std::path::absolute(&plan_path).unwrap_or(plan_path),
        plan_sha256: sha,
        step_user: resolved.step_user.clone(),
        grace: args.grace,
        target_flags: target_flags(&args.target, &resolved),
        no_rollback: false,
        // on_failure steps run one at a time (docs/apply.md).
        jobs: 1,
    };
    drop(maintenance);
    let dead = Dead {
        row,
        folder: &folder,
        story,
        lock: lock_client,
    };
    let (report, exit) = recover(plan, &failure.order, &options, dead);
    eprint(&report.human());
    Ok(exit)
}

/// The run's folder on this machine: under `--state-dir`, where the runs
/// table says, or under the default state folder; the first that holds a
/// journal.
pub(crate) fn run_folder(row: &RunRow, state_dir: Option<&Path>) -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(dir) = state_dir {
        candidates.push(dir.join("runs").join(&row.run_id));
    }
    if let Some(folder) = &row.run_folder {
        candidates.push(PathBuf::from(folder));
    }
    candidates.push(default_state_dir().join("runs").join(&row.run_id));
    candidates
        .into_iter()
        .find(|c| c.join(journal::FILE_NAME).is_file())
}

/// Why the run's runner may still be alive (same host, its pid a `plan`
/// process that the journal names as the run's last runner, the one that
/// started it or the last to resume it): a runner that lost its
/// lock connection is still rolling back, and must not be raced.
pub(crate) fn runner_alive(row: &RunRow) -> Option<String> {
    if row.host != runs::hostname() {
        return None;
    }
    let pid = u32::try_from(row.pid).ok()?;
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    let ours = std::env::current_exe().ok()?;
    if exe != ours || pid == std::process::id() {
        return None;
    }
    let folder = PathBuf::from(row.run_folder.as_deref()?);
    let story = Story::of(&journal::read(&folder).ok()?.entries);
    // The runner that last drove the run: the one that started it, or the
    // last `--resume`.
    match story.runner {
        Some((_, runner)) if runner == pid => Some(format!(
            "the runner of run {} (pid {pid}) is still alive but lost its lock: it is ending the run itself; wait for it",
            row.run_id
        )),
        _ => None,
    }
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}
