//! Taking over a run whose runner died (or that `--no-rollback` stopped):
//! end the process groups it left, restore its backups and prove it, run
//! `on_failure`, record the run as recovered. What the run did comes from
//! its journal; that it is unfinished comes from `plan_runner.runs`. The
//! command around it (`commands::recover`) finds the run and the plan.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use postgres::Client;

use super::Run;
use super::dead::{end_group, taken_report};
use crate::db::runs::{self, RunRow};
use crate::exec::journal::{self, Journal, Record, Story};
use crate::exec::report::Report;
use crate::exec::run::Options;
use crate::exec::{backup, paths};
use crate::exit::Outcome;
use crate::plan::Plan;

/// The few lines a refused `plan apply` prints about an unfinished run:
/// which run, what it was doing, which backup exists, and the way on.
pub fn unfinished_message(row: &RunRow, target_flags: &str) -> String {
    let mut m = if row.state == "stopped" {
        format!(
            "`{}` has an unfinished run: --no-rollback stopped it at a failure, and the database was left as the failure left it",
            row.target
        )
    } else {
        format!(
            "`{}` has an unfinished run: its runner died (the run is still open in plan_runner.runs and nobody holds its lock)",
            row.target
        )
    };
    m.push_str(&format!(
        "\n  run {}: plan {} on host {} (pid {}), started {}",
        row.run_id, row.plan, row.host, row.pid, row.started_at
    ));
    let here = row.host == runs::hostname();
    // The step a resume would start with, when the run can be resumed.
    let mut resumable_from = None;
    match row.run_folder.as_deref() {
        Some(folder) if here => match journal::read(Path::new(folder)) {
            Ok(contents) => {
                let story = Story::of(&contents.entries);
                for line in story_lines(&story) {
                    m.push_str(&format!("\n  {line}"));
                }
                m.push_str(&format!("\n  run folder: {folder}"));
                if super::dead::refusal(&story, &row.run_id).is_none()
                    && contents.damaged.is_empty()
                {
                    resumable_from = Some(
                        super::dead::next_step(&story)
                            .map(|s| format!("step `{s}`"))
                            .unwrap_or_else(|| "the first step that did not end".into()),
                    );
                }
            }
            Err(e) => m.push_str(&format!("\n  its journal cannot be read in {folder}: {e}")),
        },
        Some(folder) => m.push_str(&format!(
            "\n  its run folder (journal, logs) is on host {}: {folder}",
            row.host
        )),
        None => {}
    }
    let recover = format!("plan recover {} {target_flags}", row.plan);
    match resumable_from {
        Some(from) => m.push_str(&format!(
            "\nnothing was changed. Two ways on:\n  restore the run's backups and run its on_failure steps:\n    {recover}\n  or, if you know the steps that ended did their work, go on from {from} (those steps are not run again; a failure then rolls back to the run's backups):\n    plan apply {} {target_flags} --resume",
            row.plan
        )),
        None => {
            m.push_str(&format!(
                "\nnothing was changed. To go on, restore the run's backups and run its on_failure steps:\n  {recover}"
            ));
            if !here {
                m.push_str(&format!(" (on host {})", row.host));
            }
        }
    }
    m
}

/// What the journal says the run was doing, one line each.
fn story_lines(story: &Story) -> Vec<String> {
    let mut lines = Vec::new();
    for (step, kind, at) in &story.running {
        lines.push(format!(
            "it was running {kind} step `{step}` (started {at})"
        ));
    }
    for (step, error) in &story.failed {
        lines.push(format!("step `{step}` failed: {error}"));
    }
    if story.running.is_empty() && story.ended.is_none() {
        lines.push("no step was running".into());
    }
    if story.rollback_started && story.rollback_ended.is_none() {
        lines.push("it was rolling back".into());
    }
    for t in &story.taken {
        let mut line = format!(
            "backup `{}`: {} {} of `{}`",
            t.step,
            t.method.as_str(),
            t.copy,
            t.database
        );
        for tree in &t.trees {
            line.push_str(&format!(", files {}", tree.original.display()));
        }
        lines.push(line);
    }
    if story.taken.is_empty() {
        lines.push("no backup had been taken".into());
    }
    for (step, method, copy) in &story.unfinished_backups {
        lines.push(format!(
            "backup `{step}` ({method}) was being taken: a partial copy {copy} may be left"
        ));
    }
    lines
}

/// A dead run to take over.
pub struct Dead<'a> {
    pub row: &'a RunRow,
    /// Its run folder on this machine.
    pub folder: &'a Path,
    pub story: Story,
    /// The session holding the target's lock (taken by the caller).
    pub lock: Client,
}

/// Recovers `dead`: `opts` must carry the dead run's id and folder.
pub fn recover(plan: &Plan, failure_order: &[usize], opts: &Options, dead: Dead<'_>) -> Report {
    let mut run = Run::new(plan, opts, super::Signals::Watched);
    // Recovering is restoring from the start: a signal must not abandon it.
    run.signals.rolling_back();
    run.report.started_at = crate::units::now_millis();
    run.take_over(failure_order, dead);
    run.finish()
}

impl Run<'_> {
    fn take_over(&mut self, failure_order: &[usize], dead: Dead<'_>) {
        self.lock = Some(dead.lock);
        // A run stopped by --no-rollback wrote its report: keep it beside
        // the recovery's.
        let report = dead.folder.join("report.json");
        if report.is_file() {
            let _ = std::fs::rename(&report, dead.folder.join("report-before-recovery.json"));
        }
        match Journal::open(dead.folder) {
            Ok(journal) => self.journal = Some(Arc::new(journal)),
            Err(e) => {
                self.report.outcome = Outcome::Error;
                self.report.message = Some(format!(
                    "cannot write the journal in {}: {e}",
                    dead.folder.display()
                ));
                return;
            }
        }
        let _ = self.journal(&Record::RecoveryStarted {
            host: runs::hostname(),
            pid: std::process::id(),
        });
        self.progress.message(&format!(
            "recovering run {} of \"{}\" on {} (state `{}`, started {})",
            dead.row.run_id, self.plan.name, self.opts.target, dead.row.state, dead.row.started_at
        ));
        for line in story_lines(&dead.story) {
            self.progress.message(&format!("  {line}"));
        }
        if !self.end_dead_cgroups(&dead.story, &|_| false) {
            self.report.outcome = Outcome::Error;
            self.add_message(
                "processes the dead run left are still running after SIGKILL: the backup cannot be restored nor proved while they may write; end them (check `ps -o pid,stat,wchan,args`) and run plan recover again",
            );
            return;
        }
        for group in &dead.story.groups {
            if let Some(note) = end_group(group, self.opts.grace) {
                self.progress.message(&note);
                self.add_message(&note);
            }
        }
        if let Err(e) = self.maintenance() {
            self.report.outcome = Outcome::Error;
            self.add_message(&format!(
                "cannot connect to {}: {}",
                self.opts.connector.at(&self.opts.maintenance_db),
                crate::exec::sql::SqlError::from(e).describe()
            ));
            return;
        }
        self.clear_leftovers(&dead.story);
        self.taken = dead.story.taken.clone();
        // A run that `--resume` went on with stays a resumed run in its
        // history row, whoever ends it.
        self.report.resumed = dead.story.resumed > 0;
        self.report
            .backups
            .extend(self.taken.iter().map(taken_report));
        if self.restore_and_prove(&format!(
            "recovering run {} whose runner {}",
            dead.row.run_id,
            if dead.row.state == "stopped" {
                "stopped with --no-rollback"
            } else {
                "died"
            }
        )) {
            self.report.outcome = Outcome::Recovered;
            self.record(Outcome::Recovered);
            self.on_failure(failure_order);
        }
        let state = self.report.outcome.as_str();
        if let Some(m) = self.maintenance.as_mut()
            && let Err(e) = runs::finish(m, &dead.row.run_id, state)
        {
            let note = format!("the run could not be closed in plan_runner.runs: {e}");
            self.add_message(&note);
        }
        self.lock = None;
    }
}

impl Run<'_> {
    /// Ends every process in the dead run's cgroups (`exec::cgroup`): what
    /// its steps left however they detached, even after its runner was
    /// killed, each named in the progress and the report; but the steps'
    /// cgroups `keep` names, which become this runner's. Then makes this
    /// runner's own. A recorded path is taken only if it is one this
    /// program makes for that run (`cgroup::trusted`). `false` when one of
    /// them outlived SIGKILL.
    pub(super) fn end_dead_cgroups(&mut self, story: &Story, keep: &dyn Fn(&str) -> bool) -> bool {
        let mut all_ended = true;
        for recorded in &story.cgroups {
            let path = match crate::exec::cgroup::trusted(recorded, &self.run_id) {
                Ok(path) => path,
                Err(why) => {
                    let note = format!(
                        "the journal's cgroup was not used ({why}): the dead run's processes there were not ended"
                    );
                    self.progress.message(&note);
                    self.add_message(&note);
                    continue;
                }
            };
            if !path.exists() {
                continue;
            }
            let (ended, removed) = self.strays.end_dead_run(&path, self.opts.grace, keep);
            all_ended &= ended.iter().all(|s| s.ended);
            for stray in &ended {
                let command = self.redactor.redact(&stray.command);
                self.progress.message(&stray.line("the dead run", &command));
            }
            if let Err(why) = removed {
                let note = format!("the dead run's cgroup is left: {why}");
                self.progress.message(&note);
                self.add_message(&note);
            }
        }
        self.open_cgroup();
        all_ended
    }

    /// Ends what the dead runner itself left working, beside its steps'
    /// groups (the tools it ran, its sessions on the server), then removes
    /// the half-made copies of a backup it did not finish. Each thing done
    /// is said in the progress and the report.
    fn clear_leftovers(&mut self, story: &Story) {
        let run_id = self.run_id.clone();
        let half_made = half_made_copies(self.plan, story, &run_id);
        // pg_dump, cp and pg_restore ran in the runner's own process group
        // and outlive it; each names in its arguments a copy that carries
        // the run id, which nothing else does.
        let mut names: Vec<String> = half_made.iter().map(|h| h.name.clone()).collect();
        // A rollback's pg_restore loads into `<db>_rs_<run id>`.
        for t in &story.taken {
            if t.method == crate::plan::BackupMethod::Dump {
                names.push(backup::restore_name(&t.database, &run_id));
            }
        }
        let mut notes = Vec::new();
        let ended = end_writers(&names);
        if !ended.is_empty() {
            notes.push(format!(
                "ended the dead run's processes {ended:?} (pg_dump, pg_restore or cp working on its copies)"
            ));
        }
        let application = format!("{}/{run_id}", crate::db::conninfo::APPLICATION_NAME);
        match self.maintenance() {
            Ok(m) => match end_sessions(m, &application) {
                Ok(0) => {}
                Ok(n) => notes.push(format!(
                    "ended {n} server session(s) of the dead run ({application}: a statement or a copy still running)"
                )),
                Err(e) => notes.push(format!(
                    "could not end the dead run's server sessions ({application}): {e}"
                )),
            },
            Err(e) => notes.push(format!("could not end the dead run's server sessions: {e}")),
        }
        for (step, database) in &story.blocking {
            let Ok(m) = self.maintenance() else { break };
            if crate::db::sessions::allows_connections(m, database).ok() == Some(false) {
                match crate::db::sessions::set_allow_connections(m, database, true) {
                    Ok(()) => notes.push(format!(
                        "`{database}` accepts connections again (backup `{step}` had blocked them to end the other sessions)"
                    )),
                    Err(e) => notes.push(format!(
                        "`{database}` still refuses connections (backup `{step}` blocked them) and they could not be allowed again: {}",
                        crate::exec::sql::describe_error(&e)
                    )),
                }
            }
        }
        for h in &half_made {
            let removed = match h.kind {
                HalfMade::Snapshot => self.maintenance().map_err(|e| e.to_string()).and_then(|m| {
                    let existed = crate::db::fingerprint::database_props(m, &h.name)
                        .map_err(|e| e.to_string())?
                        .is_some();
                    if existed {
                        m.batch_execute(&format!(
                            "drop database if exists {}",
                            crate::quote::quote_ident(&h.name)
                        ))
                        .map_err(|e| crate::exec::sql::describe_error(&e))?;
                    }
                    Ok(existed)
                }),
                HalfMade::Files => {
                    let path = Path::new(&h.name);
                    let existed = std::fs::symlink_metadata(path).is_ok();
                    paths::remove(path)
                        .map(|()| existed)
                        .map_err(|e| e.to_string())
                }
            };
            match removed {
                Ok(true) => notes.push(format!(
                    "removed the half-made copy {} of backup `{}` (its runner died while taking it)",
                    h.name, h.step
                )),
                Ok(false) => {}
                Err(e) => notes.push(format!(
                    "the half-made copy {} of backup `{}` could not be removed ({e}): remove it by hand",
                    h.name, h.step
                )),
            }
        }
        for note in notes {
            self.progress.message(&note);
            self.add_message(&note);
        }
    }
}

/// What a backup the runner did not finish may have left.
enum HalfMade {
    /// A database (the server may still have been creating it).
    Snapshot,
    /// A dump folder or a tree's copy.
    Files,
}

struct HalfMadeCopy {
    step: String,
    kind: HalfMade,
    name: String,
}

/// The copies a backup started and never taken may have left: the
/// snapshot by the name the journal recorded, the dump folder and its
/// `.partial`, the copies of its trees. Never one a taken backup uses.
fn half_made_copies(plan: &Plan, story: &Story, run_id: &str) -> Vec<HalfMadeCopy> {
    let taken_dbs: Vec<&str> = story
        .taken
        .iter()
        .flat_map(|t| [t.copy.as_str(), t.database.as_str()])
        .collect();
    let taken_trees: Vec<&Path> = story
        .taken
        .iter()
        .flat_map(|t| t.trees.iter().map(|tree| tree.copy.as_path()))
        .collect();
    let mut out = Vec::new();
    for (step, method, copy) in &story.unfinished_backups {
        let mut push = |kind, name: String| {
            out.push(HalfMadeCopy {
                step: step.clone(),
                kind,
                name,
            });
        };
        match method.as_str() {
            "snapshot" if !taken_dbs.contains(&copy.as_str()) => {
                push(HalfMade::Snapshot, copy.clone());
            }
            "dump" => {
                push(HalfMade::Files, format!("{copy}.partial"));
                if !story.taken.iter().any(|t| &t.copy == copy) {
                    push(HalfMade::Files, copy.clone());
                }
            }
            _ => {}
        }
        let Some(backup) = plan.steps.iter().find_map(|s| match &s.action {
            crate::plan::Action::Backup(b) if &s.name == step => Some(b),
            _ => None,
        }) else {
            continue;
        };
        for p in &backup.paths {
            let path = plan.folder.join(p.expose().unwrap_or_default());
            let path = std::path::absolute(&path).unwrap_or(path);
            // `paths::back_up` takes the first free of `pr`, `pr2`, ...
            for n in 1..10 {
                let what = if n == 1 {
                    "pr".to_string()
                } else {
                    format!("pr{n}")
                };
                let candidate = paths::copy_path(&path, run_id, &what);
                if taken_trees.contains(&candidate.as_path()) {
                    continue;
                }
                if std::fs::symlink_metadata(&candidate).is_err() {
                    break;
                }
                push(HalfMade::Files, candidate.display().to_string());
            }
        }
    }
    out
}

/// Kills (SIGKILL) the live processes one of whose arguments is exactly
/// one of `names`, and waits for them to be gone; returns their pids.
fn end_writers(names: &[String]) -> Vec<u32> {
    if names.is_empty() {
        return Vec::new();
    }
    let own = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let found: Vec<u32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != own)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|bytes| {
                bytes
                    .split(|&b| b == 0)
                    .any(|arg| names.iter().any(|n| n.as_bytes() == arg))
            })
        })
        .collect();
    for &pid in &found {
        if let Ok(raw) = i32::try_from(pid) {
            let _ = nix::sys::signal::kill(Pid::from_raw(raw), Signal::SIGKILL);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while found.iter().any(|&pid| alive(pid)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    found
}

/// Whether `pid` is a live process (a zombie is not).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rfind(')')
            .and_then(|i| stat.get(i + 1..))
            .and_then(|rest| rest.split_whitespace().next())
            .is_some_and(|state| !matches!(state, "Z" | "X"))
    })
}

/// Ends the server sessions named `application` (the dead run's: a
/// `CREATE DATABASE` of a snapshot, a sql step's statement, pg_dump's
/// connections) and waits up to 10 s for them to go; returns how many
/// there were.
fn end_sessions(maintenance: &mut Client, application: &str) -> Result<u64, postgres::Error> {
    let n = maintenance.execute(
        "select pg_terminate_backend(pid) from pg_stat_activity
         where application_name = $1 and pid <> pg_backend_pid()",
        &[&application],
    )?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let left: i64 = maintenance
            .query_one(
                "select count(*) from pg_stat_activity where application_name = $1 and pid <> pg_backend_pid()",
                &[&application],
            )?
            .get(0);
        if left == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(n)
}
