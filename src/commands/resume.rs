//! `plan apply --resume`: find the target's unfinished run
//! (plan_runner.runs), take the lock, read its journal, check that it can
//! be resumed with this very plan, and hand it to `exec::run::resume`.
//! Everything that can be refused is refused here, before anything
//! changes (exit 4).

use std::time::Duration;

use crate::cli::ApplyArgs;
use crate::commands::unfinished::{run_folder, runner_alive};
use crate::db::connect::Connector;
use crate::db::lock;
use crate::db::runs::{self, RunRow};
use crate::exec::journal::{self, Record, Story};
use crate::exec::run::dead::refusal;
use crate::exec::run::resume::Unfinished;
use crate::exit::{Ending, Outcome};
use crate::target::ResolvedTarget;

/// Why `--resume` does not go on: the exit status and what to tell.
pub struct Refused(pub Ending, pub String);

/// What the run to resume must be.
pub enum Expected<'a> {
    /// A run of the plan with this SHA-256 (`plan apply PLAN --resume`).
    Plan(&'a str),
    /// A chain's (`plan apply DIR --to X --resume`): the caller checks the
    /// hop's plan against the folder's.
    Chain,
}

/// Finds the run to resume and takes the target's lock for it.
pub fn find(
    args: &ApplyArgs,
    resolved: &ResolvedTarget,
    expected: Expected<'_>,
    warn: impl Fn(&str),
) -> Result<Unfinished, Refused> {
    let database = &resolved.target.database;
    let refuse = |text: String| Refused(Ending::run(Outcome::Refused), text);
    let db_error = |what: &str, e: postgres::Error| {
        Refused(
            Ending::Usage,
            format!("{what}: {}", crate::exec::sql::SqlError::from(e).describe()),
        )
    };
    // Until the run is known, connections carry an id of their own.
    let looking = Connector::new(
        resolved.target.clone(),
        &format!("resume-{}", crate::exec::run::new_run_id()),
        Vec::new(),
    );
    let mut maintenance = looking.connect(&resolved.maintenance_db).map_err(|e| {
        db_error(
            &format!(
                "cannot connect to {}",
                resolved.target.at(&resolved.maintenance_db)
            ),
            e,
        )
    })?;
    let rows = runs::unfinished(&mut maintenance, database)
        .map_err(|e| db_error("cannot read plan_runner.runs", e))?;
    let Some(candidate) = rows.last() else {
        return Err(nothing_to_resume(&mut maintenance, database));
    };
    // The lock's session names the run it resumes, as the run's own did:
    // a runner refused by it can tell whose it is.
    let session = Connector::new(resolved.target.clone(), &candidate.run_id, Vec::new())
        .connect(&resolved.maintenance_db)
        .map_err(|e| {
            db_error(
                &format!(
                    "cannot connect to {}",
                    resolved.target.at(&resolved.maintenance_db)
                ),
                e,
            )
        })?;
    let wait = args.lock_timeout.unwrap_or(Duration::ZERO);
    let lock_client = match lock::take(session, database, wait) {
        Ok(session) => session,
        Err(lock::NotTaken::Database(e)) => return Err(db_error("cannot take the lock", e)),
        Err(held) => {
            return Err(refuse(format!(
                "a plan-runner is working on `{database}` right now: --resume only goes on with a run whose runner is gone{}",
                held.holder_lines()
            )));
        }
    };
    // With the lock held, the rows cannot change under us.
    let rows = runs::unfinished(&mut maintenance, database)
        .map_err(|e| db_error("cannot read plan_runner.runs", e))?;
    let Some(row) = rows.last().cloned() else {
        return Err(nothing_to_resume(&mut maintenance, database));
    };
    if row.run_id != candidate.run_id {
        return Err(refuse(format!(
            "the unfinished runs of `{database}` changed while --resume looked at them: run it again"
        )));
    }
    if rows.len() > 1 {
        return Err(refuse(format!(
            "`{database}` has {} unfinished runs: only the one of a single unfinished run can be resumed\n  `plan recover` takes them over one by one",
            rows.len()
        )));
    }
    if let Some(why) = runner_alive(&row) {
        return Err(refuse(why));
    }
    if row.host != runs::hostname() {
        // Its steps' processes, its dumps and its copies of files are on
        // that host.
        return Err(refuse(format!(
            "run {} of `{database}` ran on host {}: resume it there (plan apply ... --resume on {})",
            row.run_id, row.host, row.host
        )));
    }
    let Some(folder) = run_folder(&row, args.state_dir.as_deref()) else {
        return Err(refuse(format!(
            "run {} of `{database}` cannot be resumed here: its journal cannot be read (looked in {}{})\n  give --state-dir if its run folder moved; or `plan recover` restores its backups",
            row.run_id,
            row.run_folder
                .as_deref()
                .unwrap_or("the default state folder"),
            args.state_dir
                .as_deref()
                .map(|d| format!(" and {}", d.join("runs").join(&row.run_id).display()))
                .unwrap_or_default()
        )));
    };
    crate::private::check_all([folder.as_path(), &folder.join(journal::FILE_NAME)])
        .map_err(|untrusted| refuse(format!("run {} is not resumed: {untrusted}", row.run_id)))?;
    let contents = journal::read(&folder).map_err(|e| {
        refuse(format!(
            "run {} cannot be resumed: its journal cannot be read in {}: {e}",
            row.run_id,
            folder.display()
        ))
    })?;
    if contents.torn_tail {
        warn(
            "note: the journal's last record was cut short (the machine stopped while writing it); it is ignored",
        );
    }
    if !contents.damaged.is_empty() {
        // A damaged line may be a backup taken or a step ended: resuming
        // without it could run a step twice or forget a backup.
        return Err(refuse(format!(
            "run {} cannot be resumed: its journal in {} has damaged lines ({:?}), so what ran and what was backed up is not known for sure\n  `plan recover` restores the backups it can read",
            row.run_id,
            folder.display(),
            contents.damaged
        )));
    }
    let story = Story::of(&contents.entries);
    let mark = match &story.started {
        Some(Record::RunStarted { chain, .. }) => chain.clone(),
        _ => None,
    };
    match (&expected, &mark) {
        (Expected::Plan(_), Some(mark)) => {
            return Err(refuse(format!(
                "run {} is hop {} of a chain of {}: resume it with the chain's folder and --to (`plan apply DIR --to X --resume`); `plan recover` takes it back to the chain's start",
                row.run_id, mark.hop, mark.hops
            )));
        }
        (Expected::Chain, None) => {
            return Err(refuse(format!(
                "run {} is not a chain's: resume it with its plan file (`plan apply PLAN --resume`)",
                row.run_id
            )));
        }
        (Expected::Chain, Some(mark)) if mark.keep_reached => {
            return Err(refuse(format!(
                "run {} is hop {} of a chain run with --keep-reached, whose passed hops' backups are gone: it is not resumed; `plan recover` undoes hop {} alone",
                row.run_id, mark.hop, mark.hop
            )));
        }
        // The story's steps are the stopped hop's (`Story::of`).
        (Expected::Chain, Some(_)) | (Expected::Plan(_), None) => {}
    }
    let Some((_, journal_sha)) = story.plan.clone() else {
        return Err(refuse(format!(
            "run {} cannot be resumed: the journal in {} has no start record",
            row.run_id,
            folder.display()
        )));
    };
    if let Expected::Plan(plan_sha256) = expected
        && journal_sha != plan_sha256
    {
        return Err(refuse(format!(
            "{} changed since run {} started (SHA-256 {} then, {} now): --resume goes on with the plan the run started with\n  give the plan file as it was, or `plan recover` the run and start again",
            args.plan.display(),
            row.run_id,
            short(&journal_sha),
            short(plan_sha256)
        )));
    }
    if let Some(why) = refusal(&story, &row.run_id) {
        return Err(refuse(why));
    }
    Ok(Unfinished {
        row,
        folder,
        story,
        lock: lock_client,
    })
}

/// What `--resume` says when the target has no unfinished run, by what
/// became of its last one.
fn nothing_to_resume(maintenance: &mut postgres::Client, database: &str) -> Refused {
    let last: Option<RunRow> = runs::last_run(maintenance, database).ok().flatten();
    let text = match last {
        Some(r) if matches!(r.state.as_str(), "rolled_back" | "recovered") => format!(
            "the last run of `{database}`, {} ({}), cannot be resumed: its earlier steps' work was undone by the rollback; start again without --resume",
            r.run_id,
            r.state.replace('_', " ")
        ),
        Some(r) if r.state == "rollback_failed" => format!(
            "nothing to resume on `{database}`: the rollback of its last run, {}, could not be proved; see its report{}",
            r.run_id,
            r.run_folder
                .as_deref()
                .map(|f| format!(" in {f}"))
                .unwrap_or_default()
        ),
        Some(r) => format!(
            "nothing to resume on `{database}`: its last run, {}, ended ({}); no run is unfinished",
            r.run_id,
            r.state.replace('_', " ")
        ),
        None => format!(
            "nothing to resume on `{database}`: no unfinished run in plan_runner.runs; run without --resume to start one"
        ),
    };
    Refused(Ending::run(Outcome::Refused), text)
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}
