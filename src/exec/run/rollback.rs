//! After a failure: restore the run's backups and prove it, then run
//! `on_failure`; or, with `--no-rollback`, stop and leave everything.

use super::*;

/// How many times a rollback is run when the server is lost during it: a
/// server that restarts again and again needs a person, not a loop.
const ROLLBACK_ATTEMPTS: usize = 3;

impl Run<'_> {
    pub(super) fn roll_back_and_recover(&mut self, failure_order: &[usize]) {
        let sessions_refused = self.taken.is_empty()
            && self
                .report
                .message
                .as_deref()
                .is_some_and(|m| m.contains("other session(s) are connected"));
        let interrupted = self.signals.interrupted();
        let reason = match interrupted {
            Some(signal) => format!("interrupted by {signal}"),
            None => "a step failed".into(),
        };
        self.report.interrupted = interrupted.is_some();
        if !self.restore_and_prove(&reason) {
            return;
        }
        // Sessions connected, or no room for the first backup: nothing
        // was done at all.
        self.report.outcome = if interrupted.is_none() && (sessions_refused || self.space_refused) {
            Outcome::Refused
        } else {
            Outcome::RolledBack
        };
        self.record(self.report.outcome);
        self.on_failure(failure_order);
        if interrupted.is_some() {
            self.add_message(&format!("the run was {reason}"));
        }
    }

    /// A rehearsal whose steps passed: its copy is rolled back to its
    /// backups all the same, so that the rehearsal times and proves the
    /// rollback a failure at the end of the window would need. A
    /// rollback that cannot be proved fails the rehearsal.
    pub(super) fn rehearse_rollback(&mut self) {
        if self.taken.is_empty() {
            self.report.outcome = Outcome::Succeeded;
            self.report.message =
                Some("passed; nothing was backed up, so no rollback was rehearsed".into());
            return;
        }
        if self.restore_and_prove("rehearsal: timing the rollback a failure would need") {
            self.report.outcome = Outcome::Succeeded;
            let proved = self.report.message.take().unwrap_or_default();
            self.report.message = Some(format!(
                "every step passed on the copy; then its rollback was rehearsed: {proved}"
            ));
        }
    }

    /// Restores the backups taken and proves it. When the proof fails, the
    /// report says so loudly (outcome `rollback_failed`) and this returns
    /// `false`: nothing else may run.
    pub(super) fn restore_and_prove(&mut self, reason: &str) -> bool {
        // From here a signal does not interrupt: a half-restored database
        // is worse than a wait.
        self.signals.rolling_back();
        let _ = self.journal(&Record::RollbackStarted {
            reason: reason.into(),
        });
        self.progress.message(&format!("rolling back ({reason})"));
        if let Err(why) = self.end_strays_before_rollback() {
            self.await_recovery(&why, false);
            return false;
        }
        if !self.taken.is_empty()
            && let Err(why) = self.hold_lock()
        {
            self.await_recovery(&why, false);
            return false;
        }
        // A restore takes as long as a big step: it must not look frozen.
        self.progress.activity_started("(rollback)", "rolling back");
        let rollback = self.roll_back();
        self.progress.activity_ended("(rollback)");
        let rollback = match rollback {
            Ok(rollback) => rollback,
            Err(why) => {
                self.await_recovery(&why, true);
                return false;
            }
        };
        let _ = self.journal(&Record::RollbackEnded {
            proved: rollback.proved,
            restored: rollback.restored.clone(),
            differences: rollback.differences.clone(),
            error: rollback.error.clone(),
        });
        let proved = rollback.proved;
        let summary = if proved {
            if rollback.restored.is_empty() {
                "nothing had been backed up yet, so nothing was restored".to_string()
            } else {
                format!(
                    "restored {} and proved the restore (fingerprints equal)",
                    rollback.restored.join(", ")
                )
            }
        } else {
            String::new()
        };
        self.report.rollback = Some(rollback);
        if !proved {
            self.report.outcome = Outcome::RollbackFailed;
            let r = self.report.rollback.as_ref().expect("set above");
            let mut m = String::from(
                "THE ROLLBACK COULD NOT BE PROVED: the database may not be as it was before the run.\n",
            );
            if let Some(e) = &r.error {
                m.push_str(&format!("error: {e}\n"));
            }
            for d in &r.differences {
                m.push_str(&format!("  differs: {d}\n"));
            }
            m.push_str(&format!(
                "where things are: {}\non_failure was NOT run. Do not start the ERP server on this database: compare it with the backup and the failed copy (kept), restore by hand if needed, and keep the run folder {}.",
                self.where_things_are(),
                self.run_folder.display()
            ));
            self.report.message = Some(m);
            return false;
        }
        self.add_message(&summary);
        true
    }

    /// The rollback cannot start, or cannot go on once the server was
    /// lost during it (`started`): the server is unreachable, or another
    /// runner took the lock. The run is left for `plan recover`: its runs
    /// row stays open and its journal ends at the rollback's start, which
    /// `recover` takes up (it finishes a restore left half done).
    fn await_recovery(&mut self, why: &str, started: bool) {
        self.awaiting_recovery = true;
        self.report.outcome = Outcome::RollbackFailed;
        self.report.rollback = Some(RollbackReport {
            error: Some(why.to_string()),
            ..RollbackReport::default()
        });
        let state = if started {
            "THE ROLLBACK WAS CUT SHORT: the server was lost while it restored, and"
        } else {
            "NOTHING WAS RESTORED:"
        };
        let left = if started {
            "may be half restored"
        } else {
            "may be as the failed step left it"
        };
        self.report.message = Some(format!(
            "{state} {why}.\n`{db}` {left}, and on_failure was NOT run.\nthe run stays unfinished: once the server is back, `plan recover {plan} {flags}` restores the backups and proves it (other runs on `{db}` are refused until then)\nwhere things are: {where_}",
            db = self.opts.database,
            plan = self.opts.plan_path.display(),
            flags = self.opts.target_flags,
            where_ = self.where_things_are(),
        ));
        self.progress
            .message("✗ the rollback cannot start: see the summary below");
    }

    /// Ends every process the steps left behind, `start` steps' servers
    /// included (`exec::strays`): the restore and its proof must not race
    /// a daemon still writing. `Err` says what could not be ended.
    fn end_strays_before_rollback(&mut self) -> Result<(), String> {
        let ended = self.strays.before_rollback(self.opts.grace);
        let shown = |list: &[crate::exec::strays::StrayReport]| {
            list.iter()
                .map(|s| format!("{} `{}`", s.pid, self.redactor.redact(&s.command)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match ended {
            Ok(ended) => {
                if !ended.is_empty() {
                    self.progress.message(&format!(
                        "! ended {} process(es) the steps left running: {}",
                        ended.len(),
                        shown(&ended)
                    ));
                }
                Ok(())
            }
            Err(left) => Err(format!(
                "process(es) the steps started are still running after SIGKILL: {}; the backup cannot be restored nor proved while they may write; end them (check `ps -o pid,stat,wchan,args`)",
                shown(&left)
            )),
        }
    }

    pub(super) fn where_things_are(&self) -> String {
        let mut parts = vec![format!("target `{}`", self.opts.database)];
        for b in &self.report.backups {
            parts.push(format!("backup {} ({})", b.copy, b.state));
        }
        if let Some(r) = &self.report.rollback {
            for f in &r.failed_copies {
                parts.push(format!("failed copy {f}"));
            }
        }
        parts.join("; ")
    }

    /// Restores the earliest backup of each database and of each tree,
    /// then proves it. When the server's sessions were lost on the way (it
    /// restarted mid-rollback), the lock and the sessions are taken again
    /// and the rollback runs again: each restore takes up where the last
    /// one stopped (`exec::rollback`). `Err` says why the server could not
    /// be reached again: the run is then left for `plan recover`.
    pub(super) fn roll_back(&mut self) -> Result<RollbackReport, String> {
        let taken = std::mem::take(&mut self.taken);
        if taken.is_empty() {
            return Ok(RollbackReport {
                proved: true,
                ..RollbackReport::default()
            });
        }
        let keep_failed = self.opts.keep_failed;
        let mut attempt = 1;
        loop {
            let rolled = match self.backup_context() {
                Ok(mut ctx) => crate::exec::rollback::roll_back(&mut ctx, &taken, keep_failed),
                Err(e) => crate::exec::rollback::Rolled {
                    report: RollbackReport {
                        error: Some(e.to_string()),
                        ..RollbackReport::default()
                    },
                    states: Vec::new(),
                },
            };
            let lost =
                !rolled.report.proved && !self.maintenance.as_mut().is_some_and(connect::is_alive);
            if !lost || attempt == ROLLBACK_ATTEMPTS {
                for (copy, state) in &rolled.states {
                    self.set_backup_state(copy, state);
                }
                return Ok(rolled.report);
            }
            attempt += 1;
            self.progress.message(&format!(
                "the server was lost during the rollback ({}): reconnecting to finish it",
                rolled
                    .report
                    .error
                    .as_deref()
                    .unwrap_or("its session ended")
            ));
            if let Err(why) = self.hold_lock() {
                self.taken = taken;
                return Err(why);
            }
        }
    }

    pub(super) fn on_failure(&mut self, order: &[usize]) {
        // The steps' stopper may have been used by a signal; on_failure
        // steps must run all the same, and a signal now ends them.
        self.stopper = Stopper::new();
        self.signals.on_failure(self.stopper.clone());
        for &i in order {
            if self.stopper.is_stopped() {
                break;
            }
            // An on_failure step without a timeout gets one: a restart
            // that hangs must not hold the target's lock for ever.
            let mut step = self.plan.on_failure[i].clone();
            step.timeout = step.timeout.or(Some(self.opts.on_failure_timeout));
            let step = &step;
            self.progress
                .step_started(&step.name, &format!("on_failure {}", step.kind));
            let _ = self.journal(&Record::StepStarted {
                step: step.name.clone(),
                kind: step.kind.to_string(),
                on_failure: true,
            });
            let report = self.step(step, crate::exec::steps::ON_FAILURE_PREFIX);
            let _ = self.journal(&Record::StepEnded {
                step: step.name.clone(),
                status: report.status.clone(),
                seconds: report.seconds,
                error: report.error.clone(),
                on_failure: true,
            });
            self.progress.step_ended(
                &step.name,
                &report.status,
                report.seconds,
                report.error.as_deref(),
            );
            self.report.on_failure.push(report);
        }
    }

    /// `--no-rollback`: the database and files stay as the failure left
    /// them, and so do the backups; the run stays unfinished in the runs
    /// table until `plan recover` restores it.
    pub(super) fn stop_without_rollback(&mut self) {
        let copies: Vec<String> = self.taken.iter().map(|t| t.copy.clone()).collect();
        for copy in &copies {
            self.set_backup_state(copy, "kept");
        }
        self.report.outcome = Outcome::Stopped;
        self.report.interrupted = self.signals.interrupted().is_some();
        self.record(Outcome::Stopped);
        let mut m = format!(
            "NO ROLLBACK (--no-rollback): `{}` is left as the failed step left it; nothing was restored and on_failure did not run",
            self.opts.database
        );
        if copies.is_empty() {
            m.push_str("\nno backup had been taken yet");
        } else {
            m.push_str(&format!("\nbackups kept: {}", copies.join(", ")));
        }
        m.push_str(&format!(
            "\nthe run stays unfinished: other runs on `{}` are refused until `plan recover {plan} {flags}` restores the backups, or `plan apply {plan} {flags} --resume` goes on from the failed step",
            self.opts.database,
            plan = self.opts.plan_path.display(),
            flags = self.opts.target_flags
        ));
        self.progress
            .message("✗ stopping without a rollback (--no-rollback): see the summary below");
        self.add_message(&m);
    }
}
