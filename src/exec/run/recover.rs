//! Taking over a run whose runner died (or that `--no-rollback` stopped):
//! end the process groups it left, restore its backups and prove it, run
//! `on_failure`, record the run as recovered. What the run did comes from
//! its journal; that it is unfinished comes from `plan_runner.runs`. The
//! command around it (`commands::recover`) finds the run and the plan.

use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use postgres::Client;

use super::{Run, now};
use crate::db::runs::{self, RunRow};
use crate::exec::journal::{self, Group, Journal, Record, Story};
use crate::exec::process::{self, Stopper};
use crate::exec::report::{BackupReport, Report};
use crate::exec::run::Options;
use crate::exec::signals::Watch;
use crate::exit::Exit;
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
    match row.run_folder.as_deref() {
        Some(folder) if here => match journal::read(Path::new(folder)) {
            Ok(contents) => {
                let story = Story::of(&contents.entries);
                for line in story_lines(&story) {
                    m.push_str(&format!("\n  {line}"));
                }
                m.push_str(&format!("\n  run folder: {folder}"));
            }
            Err(e) => m.push_str(&format!("\n  its journal cannot be read in {folder}: {e}")),
        },
        Some(folder) => m.push_str(&format!(
            "\n  its run folder (journal, logs) is on host {}: {folder}",
            row.host
        )),
        None => {}
    }
    m.push_str(&format!(
        "\nnothing was changed. To go on, restore the run's backups and run its on_failure steps:\n  plan recover {} {target_flags}",
        row.plan
    ));
    if !here {
        m.push_str(&format!(" (on host {})", row.host));
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
pub fn recover(
    plan: &Plan,
    failure_order: &[usize],
    opts: &Options,
    dead: Dead<'_>,
) -> (Report, Exit) {
    let stopper = Stopper::new();
    let signals = Watch::start(stopper.clone());
    // Recovering is restoring from the start: a signal must not abandon it.
    signals.rolling_back();
    let mut run = Run::new(plan, opts, stopper, signals);
    run.report.started_at = now();
    let exit = run.take_over(failure_order, dead);
    run.finish(exit)
}

impl Run<'_> {
    fn take_over(&mut self, failure_order: &[usize], dead: Dead<'_>) -> Exit {
        self.lock = Some(dead.lock);
        // A run stopped by --no-rollback wrote its report: keep it beside
        // the recovery's.
        let report = dead.folder.join("report.json");
        if report.is_file() {
            let _ = std::fs::rename(&report, dead.folder.join("report-before-recovery.json"));
        }
        match Journal::open(dead.folder) {
            Ok(journal) => self.journal = Some(journal),
            Err(e) => {
                self.report.outcome = "error".into();
                self.report.message = Some(format!(
                    "cannot write the journal in {}: {e}",
                    dead.folder.display()
                ));
                return Exit::Usage;
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
        for group in &dead.story.groups {
            if let Some(note) = end_group(group, self.opts.grace) {
                self.progress.message(&note);
                self.add_message(&note);
            }
        }
        if let Err(e) = self.maintenance() {
            self.report.outcome = "error".into();
            self.add_message(&format!(
                "cannot connect to the maintenance database: {}",
                crate::exec::sql::SqlError::from(e).describe()
            ));
            return Exit::Usage;
        }
        self.taken = dead.story.taken.clone();
        for t in &self.taken {
            self.report.backups.push(BackupReport {
                step: t.step.clone(),
                method: t.method.as_str().into(),
                database: t.database.clone(),
                copy: t.copy.clone(),
                paths: t.trees.iter().map(|tree| tree.original.clone()).collect(),
                seconds: t.seconds,
                fingerprint_seconds: t.fingerprint_seconds,
                bytes: t.bytes,
                state: "taken".into(),
            });
        }
        let exit = if !self.restore_and_prove(&format!(
            "recovering run {} whose runner {}",
            dead.row.run_id,
            if dead.row.state == "stopped" {
                "stopped with --no-rollback"
            } else {
                "died"
            }
        )) {
            Exit::RollbackFailed
        } else {
            self.record("recovered");
            self.report.outcome = "recovered".into();
            self.on_failure(failure_order);
            Exit::Success
        };
        let state = self.report.outcome.clone();
        if let Some(m) = self.maintenance.as_mut()
            && let Err(e) = runs::finish(m, &dead.row.run_id, &state)
        {
            let note = format!("the run could not be closed in plan_runner.runs: {e}");
            self.add_message(&note);
        }
        self.lock = None;
        exit
    }
}

/// Ends a process group the dead run left, if it is still the run's: its
/// leader must be alive with the recorded start time, so that a pid the
/// system has since given to another process is never signalled. Returns
/// what was done, or `None` when nothing was left.
fn end_group(group: &Group, grace: Duration) -> Option<String> {
    let leader = process::start_time(group.pid);
    let what = format!(
        "process group {} of step `{}` (pid {})",
        group.pgid, group.step, group.pid
    );
    match (leader, group.start_time) {
        (Some(now), Some(recorded)) if now == recorded => {}
        (Some(_), _) => {
            // The pid now names another process: not ours to signal.
            return None;
        }
        (None, _) => {
            let left = members(group.pgid);
            if left.is_empty() {
                return None;
            }
            return Some(format!(
                "{what}: its leader is gone but processes {left:?} remain in the group; they were not ended, since nothing proves they are the run's (end them by hand if they are)"
            ));
        }
    }
    let pgid = Pid::from_raw(i32::try_from(group.pgid).unwrap_or(0));
    if pgid.as_raw() <= 1 {
        return None;
    }
    let _ = killpg(pgid, Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while !members(group.pgid).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if members(group.pgid).is_empty() {
        return Some(format!("ended {what} (SIGTERM)"));
    }
    let _ = killpg(pgid, Signal::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !members(group.pgid).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(format!(
        "ended {what} (SIGKILL after {:.0} s)",
        grace.as_secs_f64()
    ))
}

/// The live processes (not zombies) of process group `pgid`.
fn members(pgid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    let after = stat.get(stat.rfind(')')? + 1..)?.to_string();
                    let mut fields = after.split_whitespace();
                    let state = fields.next()?;
                    let group: u32 = fields.nth(1)?.parse().ok()?;
                    Some(group == pgid && !matches!(state, "Z" | "X"))
                })
                .unwrap_or(false)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_whose_leader_started_at_another_time_is_left_alone() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = child.id();
        let real = process::start_time(pid).unwrap();
        let wrong = Group {
            step: "s".into(),
            pid,
            pgid: pid,
            start_time: Some(real + 1),
        };
        assert_eq!(end_group(&wrong, Duration::from_secs(1)), None);
        assert_eq!(members(pid), vec![pid]);
        let right = Group {
            start_time: Some(real),
            ..wrong
        };
        let note = end_group(&right, Duration::from_secs(5)).unwrap();
        assert!(note.starts_with("ended process group"), "{note}");
        let status = child.wait().unwrap();
        assert!(!status.success());
    }

    use std::os::unix::process::CommandExt;
}
