//! The end of a run: drop or keep the backups, record the history row,
//! hide the secrets in the logs and the report, write the report.

use super::*;

impl Run<'_> {
    pub(super) fn succeed(&mut self) {
        for taken in std::mem::take(&mut self.taken) {
            let state = if taken.keep {
                "kept"
            } else {
                let dropped = self.maintenance.as_mut().is_some_and(|m| {
                    crate::exec::backup::discard_copy(m, taken.method, &taken.copy)
                });
                for tree in &taken.trees {
                    let _ = paths::remove(&tree.copy);
                }
                if dropped { "dropped" } else { "kept" }
            };
            self.set_backup_state(&taken.copy, state);
        }
        self.report.outcome = Outcome::Succeeded;
        self.record(Outcome::Succeeded);
        self.report.message = Some(format!(
            "`{}` is now at {}",
            self.opts.database, self.plan.to
        ));
    }

    /// Records the run in the target's history (best effort: the report
    /// says so when it cannot).
    pub(super) fn record(&mut self, outcome: Outcome) {
        let revision = self.revision();
        let entry = history::Entry {
            run_id: match &self.chain {
                Some(place) => format!("{}-{}", self.run_id, place.hop),
                None => self.run_id.clone(),
            },
            plan: self.plan.name.clone(),
            plan_sha256: self.opts.plan_sha256.clone(),
            from_release: self.plan.from.to_string(),
            to_release: self.plan.to.to_string(),
            started_at: self.report.started_at.clone(),
            ended_at: crate::units::now_millis(),
            outcome: outcome.as_str().into(),
            resumed: self.report.resumed,
            steps: serde_json::json!(self
                .report
                .steps
                .iter()
                .map(|s| serde_json::json!({"name": s.name, "kind": s.kind, "status": s.status, "seconds": s.seconds}))
                .collect::<Vec<_>>()),
            revision,
            modules: serde_json::json!([]),
            chain_id: self.chain.as_ref().map(|_| self.run_id.clone()),
        };
        let before = self
            .modules_before
            .as_ref()
            .filter(|_| outcome == Outcome::Succeeded);
        let result = self
            .opts
            .connector
            .connect(&self.opts.database)
            .and_then(|mut c| {
                let mut entry = entry;
                // What the run changed, read after it: a rolled-back run
                // changed nothing.
                if let Some(before) = before {
                    let after = crate::db::odoo::installed_versions(&mut c)?;
                    entry.modules = serde_json::json!(crate::db::odoo::changed_versions(before, &after)
                        .into_iter()
                        .map(|(name, from, to)| serde_json::json!({"name": name, "from": from, "to": to}))
                        .collect::<Vec<_>>());
                }
                history::record(&mut c, &entry)
            });
        if let Err(e) = result {
            let note = format!(
                "the run could not be recorded in the history table: {}",
                sql::describe_error(&e)
            );
            self.report.message = Some(match self.report.message.take() {
                Some(m) => format!("{m}\n{note}"),
                None => note,
            });
        }
    }

    pub(super) fn add_message(&mut self, line: &str) {
        self.report.message = Some(match self.report.message.take() {
            Some(m) => format!("{m}\n{line}"),
            None => line.to_string(),
        });
    }

    /// Children write their logs themselves; a secret they printed is
    /// replaced by `***` once they are gone.
    pub(super) fn redact_logs(&self) {
        if self.redactor.is_empty() {
            return;
        }
        if let Ok(entries) = std::fs::read_dir(self.run_folder.join("logs")) {
            for entry in entries.flatten() {
                let _ = self.redactor.redact_file(&entry.path());
            }
        }
    }

    /// The report's free texts (messages from the server, release values)
    /// with every secret hidden, before it is written or shown.
    pub(super) fn redact_report(&mut self) {
        if self.redactor.is_empty() {
            return;
        }
        let redactor = &self.redactor;
        let hide = |text: &mut String| {
            if let std::borrow::Cow::Owned(hidden) = redactor.redact(text) {
                *text = hidden;
            }
        };
        if let Some(m) = self.report.message.as_mut() {
            hide(m);
        }
        for step in self
            .report
            .steps
            .iter_mut()
            .chain(self.report.on_failure.iter_mut())
        {
            step.error.iter_mut().for_each(hide);
            step.first_error.iter_mut().for_each(hide);
            step.last_lines.iter_mut().for_each(hide);
        }
        for stray in &mut self.report.strays {
            hide(&mut stray.command);
        }
        if let Some(r) = self.report.rollback.as_mut() {
            r.error.iter_mut().for_each(hide);
            r.differences.iter_mut().for_each(hide);
        }
    }

    pub(super) fn write_report(&mut self) {
        let path = self.run_folder.join("report.json");
        if let Ok(json) = serde_json::to_vec_pretty(&self.report)
            && let Err(e) = crate::private::write(&path, &json)
        {
            // The summary on stderr is then the only report: it says so (a
            // full disk must not leave an empty file to be trusted).
            let _ = std::fs::remove_file(&path);
            self.add_message(&format!(
                "could not write {}: {e}; this summary is the run's only report",
                path.display()
            ));
        }
    }
}
