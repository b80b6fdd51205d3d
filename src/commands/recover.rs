//! `plan recover`: find the target's unfinished run (plan_runner.runs),
//! its journal and its plan, check the plan is unchanged, take the lock,
//! and hand the run to `exec::run::recover`. Everything that can be
//! refused is refused before anything changes.

use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::analysis::analyse_path;
use crate::cli::RecoverArgs;
use crate::commands::unfinished::{run_folder, runner_alive};
use crate::commands::{UsageError, eprint, report};
use crate::commands::{describe, target_flags};
use crate::db::connect::Connector;
use crate::db::lock;
use crate::db::runs;
use crate::exec::backup::SessionPolicy;
use crate::exec::journal::{self, Story};
use crate::exec::run::recover::{Dead, recover};
use crate::exec::run::{self, Options};
use crate::exit::{Ending, Outcome};
use crate::target::{self, Env};

pub fn run(args: &RecoverArgs) -> Result<Ending, UsageError> {
    let resolved = target::resolve_wanted(&args.target.wanted(), &Env::from_process())
        .map_err(UsageError::from)?;
    let database = resolved.target.database.clone();
    crate::commands::refuse_unusable_target(args.target.database.as_deref(), &resolved)?;
    for warning in &resolved.warnings {
        eprint(&format!("warning: {warning}\n"));
    }
    // This process's connections carry an id of their own: the run it
    // takes over is not its own.
    let own_id = format!("recover-{}", run::new_run_id());
    let connector = Connector::new(resolved.target.clone(), &own_id, Vec::new());
    let say = |ending: Ending, text: String| {
        eprint(&format!("{text}\n"));
        Ok(ending)
    };
    let db_error = |what: &str, e: postgres::Error| {
        say(
            Ending::Usage,
            format!("{what}: {}", crate::exec::sql::SqlError::from(e).describe()),
        )
    };
    let mut maintenance = match connector.connect(&resolved.maintenance_db) {
        Ok(c) => c,
        Err(e) => {
            return db_error(
                &format!(
                    "cannot connect to {}",
                    connector.at(&resolved.maintenance_db)
                ),
                e,
            );
        }
    };
    // A rehearsal that died left only its copy: dropped here.
    for line in crate::exec::rehearsal::dead::drop_dead(
        &mut maintenance,
        &database,
        args.state_dir.as_deref(),
        &crate::commands::default_state_dir(),
    ) {
        eprint(&format!("{line}\n"));
    }
    let nothing =
        || format!("nothing to recover on `{database}`: no unfinished run in plan_runner.runs");
    match runs::unfinished(&mut maintenance, &database) {
        Ok(rows) if rows.is_empty() => return say(Ending::run(Outcome::NothingToDo), nothing()),
        Ok(_) => {}
        Err(e) => return db_error("cannot read plan_runner.runs", e),
    }
    let session = match connector.connect(&resolved.maintenance_db) {
        Ok(c) => c,
        Err(e) => {
            return db_error(
                &format!(
                    "cannot connect to {}",
                    connector.at(&resolved.maintenance_db)
                ),
                e,
            );
        }
    };
    let lock_client = match lock::take(session, &database, Duration::ZERO) {
        Ok(session) => session,
        Err(lock::NotTaken::Database(e)) => return db_error("cannot take the lock", e),
        Err(held) => {
            return say(
                Ending::run(Outcome::Refused),
                format!(
                    "a plan-runner is working on `{database}` right now: recover only takes over a run whose runner is gone{}",
                    held.holder_lines()
                ),
            );
        }
    };
    // With the lock held, the rows cannot change under us.
    let rows = match runs::unfinished(&mut maintenance, &database) {
        Ok(rows) => rows,
        Err(e) => return db_error("cannot read plan_runner.runs", e),
    };
    let Some(row) = rows.last() else {
        return say(Ending::run(Outcome::NothingToDo), nothing());
    };
    if rows.len() > 1 {
        eprint(&format!(
            "{} older unfinished run(s) of `{database}` remain after this one: run plan recover again for them\n",
            rows.len() - 1
        ));
    }
    if let Some(why) = runner_alive(row) {
        return say(Ending::run(Outcome::Refused), why);
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
        return say(Ending::run(Outcome::Refused), m);
    };
    if let Err(untrusted) =
        crate::private::check_all([folder.as_path(), &folder.join(journal::FILE_NAME)])
    {
        return say(
            Ending::run(Outcome::Refused),
            format!("run {} is not recovered: {untrusted}", row.run_id),
        );
    }
    let contents = match journal::read(&folder) {
        Ok(c) => c,
        Err(e) => {
            return say(
                Ending::run(Outcome::Refused),
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
            Ending::run(Outcome::Refused),
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
            Ending::run(Outcome::NothingToDo),
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
            Ending::run(Outcome::Refused),
            format!(
                "{} changed since run {} (SHA-256 {} then, {} now): recover runs the plan's on_failure as the run had it\n  give the plan file as it was when the run started",
                plan_path.display(),
                row.run_id,
                short(&journal_sha),
                short(&sha)
            ),
        );
    }
    let mut ctx = crate::commands::live_context(&args.vars, &resolved);
    if let Some(live) = &mut ctx.live {
        let derived = folder.join(crate::erp_config::DERIVED_FILE);
        live.erp_config = Some(derived.display().to_string());
    }
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
        return Ok(Ending::checked(true));
    }
    if !analysis.missing.is_empty() {
        return Err(UsageError::Missing {
            what: analysis.missing.join(", "),
        });
    }
    let (Some(plan), Some((_, failure))) = (&analysis.plan, &analysis.graphs) else {
        return Ok(Ending::checked(true));
    };
    let child_env = crate::db::env_for_child(&resolved.target, &folder)
        .map_err(|e| UsageError::from(target::TargetError::from(e)))?;
    // on_failure's server reads the derived file as the run's did; the
    // run itself was not refused, so the file is not compared again. The
    // restore comes first whatever became of the file: it only warns.
    let erp_config = match crate::commands::erp::setting(plan, &resolved, None, &folder, true) {
        Ok(setting) => setting,
        Err(e) => {
            eprint(&format!(
                "warning: {e}: on_failure's `${{erp_config}}` will not exist\n"
            ));
            None
        }
    };
    if let Some(setting) = &erp_config
        && let Err(e) = setting.write()
    {
        eprint(&format!(
            "warning: cannot write {}: {e}\n",
            setting.derived.display()
        ));
    }
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
        reconnect_wait: crate::db::connect::RECONNECT_WAIT,
        on_failure_timeout: crate::exec::run::DEFAULT_ON_FAILURE_TIMEOUT,
        target_flags: target_flags(&args.target, &resolved),
        no_rollback: false,
        // on_failure steps run one at a time (docs/apply.md).
        jobs: 1,
        erp_config,
        revision: None,
        allow_same_revision: false,
        rehearsal: false,
    };
    drop(maintenance);
    let dead = Dead {
        row,
        folder: &folder,
        story,
        lock: lock_client,
    };
    let report = recover(plan, &failure.order, &options, dead);
    eprint(&report.human());
    Ok(report.ending())
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}
