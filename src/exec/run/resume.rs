//! `plan apply --resume`: going on with a run whose runner died, or that
//! `--no-rollback` stopped, from its first step that did not end
//! successfully. The run keeps its id, its run folder and its journal
//! (which gets a `run_resumed` record), and above all its backups: a
//! failure after the resume rolls back to what was taken before the first
//! step, proved against the fingerprints taken then. The steps the journal
//! shows ended successfully are not run again: that their work is still
//! there is the user's word. The command around it (`commands::resume`)
//! finds the run and refuses what cannot be resumed.

use std::path::PathBuf;

use postgres::Client;

use super::Run;
use super::dead::{done, end_group, taken_report};
use crate::db::runs::{self, RunRow};
use crate::exec::journal::{Journal, Record, Story};
use crate::exec::report::{Report, StepReport};
use crate::exec::run::Options;
use crate::exit::Outcome;
use crate::plan::Plan;

/// A run to resume, found and checked by the caller.
pub struct Unfinished {
    pub row: RunRow,
    /// Its run folder on this machine.
    pub folder: PathBuf,
    pub story: Story,
    /// The session holding the target's lock (taken by the caller).
    pub lock: Client,
}

/// Resumes `unfinished`: `opts` must carry its run id and folder.
pub fn resume(
    plan: &Plan,
    order: &[usize],
    failure_order: &[usize],
    opts: &Options,
    unfinished: Unfinished,
) -> Report {
    let mut run = Run::new(plan, opts, super::Signals::Watched);
    match run.go_on(order, failure_order, unfinished) {
        Ok(()) => run.finish(),
        Err(message) => {
            // Nothing was changed: the run stays as it was, to be resumed
            // or recovered later, and its folder keeps its own report.
            run.lock = None;
            crate::db::pgpass::remove(&opts.run_folder);
            crate::erp_config::derive::remove(&opts.run_folder);
            run.report.outcome = Outcome::Error;
            run.report.message = Some(message);
            run.report.ended_at = crate::units::now_millis();
            run.report.exit_code = crate::exit::status(run.report.ending()).code();
            run.report
        }
    }
}

impl Run<'_> {
    /// Takes the run over and runs what is left. `Err` when it could not
    /// be taken over: nothing was run.
    fn go_on(
        &mut self,
        order: &[usize],
        failure_order: &[usize],
        u: Unfinished,
    ) -> Result<(), String> {
        let remaining = self.take_up(order, u)?;
        let failed = self.steps(&remaining);
        self.conclude(failed, failure_order);
        Ok(())
    }

    /// Takes the run over: its lock, journal, row and backups, the steps
    /// it had done reported as done; returns the steps left to run, in
    /// order. `Err` when it could not be taken over: nothing was run.
    pub(super) fn take_up(&mut self, order: &[usize], u: Unfinished) -> Result<Vec<usize>, String> {
        self.lock = Some(u.lock);
        if let Err(e) = self.maintenance() {
            return Err(format!(
                "cannot connect to {}: {}",
                self.opts.connector.at(&self.opts.maintenance_db),
                crate::exec::sql::SqlError::from(e).describe()
            ));
        }
        let journal = Journal::open(&u.folder)
            .map_err(|e| format!("cannot write the journal in {}: {e}", u.folder.display()))?;
        self.journal = Some(std::sync::Arc::new(journal));
        self.progress.message(&format!(
            "resuming run {} of \"{}\" on {} (state `{}`, started {}); run folder {}",
            u.row.run_id,
            self.plan.name,
            self.opts.target,
            u.row.state,
            u.row.started_at,
            u.folder.display()
        ));
        // A step the dead runner was running may still be running: it must
        // be gone before it runs again.
        // The servers of the `start` steps that are not run again are
        // kept, as the dead run kept them.
        let done_before = done(&u.story);
        let plan = self.plan;
        let kept_server = |name: &str| {
            done_before.iter().any(|(d, _)| d == name)
                && plan
                    .steps
                    .iter()
                    .any(|s| s.name == name && s.kind == crate::plan::StepKind::Start)
        };
        if !self.end_dead_cgroups(&u.story, &kept_server) {
            return Err(
                "processes the dead run left are still running after SIGKILL: they must be gone before its steps run again".into(),
            );
        }
        for group in &u.story.groups {
            if let Some(note) = end_group(group, self.opts.grace) {
                self.progress.message(&note);
                self.add_message(&note);
            }
        }
        let done = done(&u.story);
        let is_done = |name: &str| done.iter().find(|(d, _)| d == name).map(|(_, s)| *s);
        let done_in_order: Vec<String> = order
            .iter()
            .map(|&i| &self.plan.steps[i].name)
            .filter(|name| is_done(name).is_some())
            .cloned()
            .collect();
        if !self.journal(&Record::RunResumed {
            host: runs::hostname(),
            pid: std::process::id(),
            done: done_in_order.clone(),
        }) {
            return Err(format!(
                "cannot write the journal in {}: the run was not resumed",
                u.folder.display()
            ));
        }
        let run_id = self.run_id.clone();
        let m = self
            .maintenance
            .as_mut()
            .ok_or("no maintenance connection")?;
        match runs::reopen(m, &run_id, &u.folder.display().to_string()) {
            Ok(true) => {}
            Ok(false) => {
                return Err(format!(
                    "run {run_id} is no longer unfinished in plan_runner.runs: it was not resumed"
                ));
            }
            Err(e) => {
                return Err(format!(
                    "cannot reopen run {run_id} in plan_runner.runs: {}",
                    crate::exec::sql::SqlError::from(e).describe()
                ));
            }
        }
        // The report the run wrote when it stopped stays beside this one.
        let earlier = u.folder.join("report.json");
        if earlier.is_file() {
            let _ = std::fs::rename(
                &earlier,
                u.folder
                    .join(format!("report-before-resume-{}.json", u.story.resumed + 1)),
            );
        }
        self.report.started_at = u.row.started_at.clone();
        self.report.resumed = true;
        self.report.resumed_at = Some(crate::units::now_millis());
        self.report.done_before_resume = done_in_order;
        self.taken = u.story.taken.clone();
        self.report
            .backups
            .extend(self.taken.iter().map(taken_report));
        let mut remaining = Vec::new();
        for &i in order {
            let step = &self.plan.steps[i];
            match is_done(&step.name) {
                Some(seconds) => {
                    let log = self
                        .run_folder
                        .join("logs")
                        .join(format!("{}.log", step.name));
                    self.report.steps.push(StepReport {
                        name: step.name.clone(),
                        kind: step.kind.to_string(),
                        status: "succeeded".into(),
                        seconds,
                        attempts: 0,
                        log: log.is_file().then_some(log),
                        error: None,
                        first_error: None,
                        last_lines: Vec::new(),
                    });
                }
                None => remaining.push(i),
            }
        }
        match remaining.first() {
            Some(&i) => self.progress.message(&format!(
                "{} step(s) done before are not run again; going on from {} {}",
                self.report.done_before_resume.len(),
                self.plan.steps[i].kind,
                self.plan.steps[i].name
            )),
            None => self
                .progress
                .message("every step had ended successfully: finishing the run"),
        }
        Ok(remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::journal::{Entry, Record};
    use crate::exec::run::dead::{next_step, refusal};

    fn entry(record: Record) -> Entry {
        Entry {
            at: "2024-05-01T12:00:00.000Z".into(),
            record,
        }
    }

    fn started(step: &str) -> Entry {
        entry(Record::StepStarted {
            step: step.into(),
            kind: "script".into(),
            on_failure: false,
        })
    }

    fn ended(step: &str, status: &str, on_failure: bool) -> Entry {
        entry(Record::StepEnded {
            step: step.into(),
            status: status.into(),
            seconds: 1.0,
            error: (status == "failed").then(|| "exit 1".into()),
            on_failure,
        })
    }

    #[test]
    fn done_is_what_last_ended_successfully_in_the_main_graph() {
        let story = Story::of(&[
            started("one"),
            ended("one", "succeeded", false),
            started("two"),
            ended("two", "failed", false),
            entry(Record::RunEnded {
                outcome: "stopped".into(),
                exit_code: 1,
            }),
            entry(Record::RunResumed {
                host: "h".into(),
                pid: 2,
                done: vec!["one".into()],
            }),
            started("two"),
            ended("two", "succeeded", false),
            started("three"),
            // An on_failure step of the same name never counts.
            ended("four", "succeeded", true),
        ]);
        let names: Vec<String> = done(&story).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, vec!["one", "two"]);
        assert_eq!(next_step(&story), Some("three"));
        assert_eq!(story.runner, Some(("h".into(), 2)));
        assert_eq!(story.resumed, 1);
        assert!(
            story.failed.is_empty(),
            "the failure before the resume is behind"
        );
        assert_eq!(refusal(&story, "r"), None);
    }

    #[test]
    fn a_run_that_was_rolled_back_is_refused() {
        let story = Story::of(&[
            started("one"),
            ended("one", "failed", false),
            entry(Record::RollbackStarted {
                reason: "a step failed".into(),
            }),
            entry(Record::RollbackEnded {
                proved: true,
                restored: vec![],
                differences: vec![],
                error: None,
            }),
        ]);
        let why = refusal(&story, "r").unwrap();
        assert!(why.contains("undone by the rollback"), "{why}");
        assert!(why.contains("without --resume"), "{why}");
    }

    #[test]
    fn a_run_that_died_rolling_back_or_backing_up_is_refused() {
        let rolling = Story::of(&[entry(Record::RollbackStarted {
            reason: "SIGTERM".into(),
        })]);
        assert!(refusal(&rolling, "r").unwrap().contains("plan recover"));
        let backing_up = Story::of(&[entry(Record::BackupStarted {
            step: "before".into(),
            method: "snapshot".into(),
            database: "acme".into(),
            copy: "acme_pr_r".into(),
            blocks_connections: false,
        })]);
        assert!(refusal(&backing_up, "r").unwrap().contains("acme_pr_r"));
    }
}
