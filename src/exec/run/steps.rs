//! The steps in order (`schedule` decides which run at once), and one step
//! that is not a backup, run by a `Worker` that several steps can share.

use super::*;
use crate::exec::erp;
use crate::plan::StepKind;

/// Why a step failed, as its report and the summary say.
#[derive(Debug, thiserror::Error)]
pub(super) enum StepError {
    /// A statement or a connection of the step: the server's message.
    #[error("{}", .0.describe())]
    Sql(#[from] sql::SqlError),
    #[error("cannot read {}: {source}", path.display())]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The command failed: its exit status, its timeout, or output that
    /// matched `fail_on_output`.
    #[error("{0}")]
    Command(String),
    #[error(transparent)]
    Backup(#[from] BackupError),
    /// The backup's copies do not fit: the figures.
    #[error("{0}")]
    NoRoom(String),
    #[error("the journal cannot be written: the backup was not started")]
    JournalBeforeBackup,
    #[error("the journal cannot record the backup: the run does not go on")]
    JournalAfterBackup,
    #[error("no connection to the maintenance database")]
    NoMaintenance,
    #[error("interrupted")]
    Interrupted,
    #[error("internal error: a backup runs on the run itself")]
    BackupOnWorker,
    /// After an `update`: modules left unsettled, or the registry unread.
    #[error("{0}")]
    Modules(String),
    /// After a `start` with `ready`: the server did not answer in time.
    #[error("{0}")]
    NotReady(String),
}

impl From<postgres::Error> for StepError {
    fn from(e: postgres::Error) -> StepError {
        StepError::Sql(sql::SqlError::from(e))
    }
}

impl<'a> Run<'a> {
    /// What the steps other than backups need, owned, so that several of
    /// them can run at once while the run goes on.
    pub(super) fn worker(&self) -> Worker<'a> {
        Worker {
            plan: self.plan,
            opts: self.opts,
            journal: self.journal.clone(),
            redactor: self.redactor.clone(),
            stopper: self.stopper.clone(),
            strays: self.strays.clone(),
            statements: self.signals.statements(),
            progress: self.progress.clone(),
        }
    }

    /// Runs the steps in order, up to `--jobs` at once (`schedule`);
    /// returns whether one failed.
    pub(super) fn steps(&mut self, order: &[usize]) -> bool {
        let failed = schedule::run(self, order);
        // The last step's end was only noted: on disk before the run
        // drops backups, rolls back or stops.
        if let Some(journal) = &self.journal
            && journal.sync().is_err()
        {
            return true;
        }
        failed
    }

    pub(super) fn step(&mut self, step: &Step, prefix: &str) -> StepReport {
        match &step.action {
            // A backup changes the run's own state (the backups taken):
            // it runs here, alone (`schedule`).
            Action::Backup(b) => {
                let started = Instant::now();
                let result = self.backup(step, b);
                conclude(fresh_report(step), started, result, &self.redactor)
            }
            _ => self.worker().step(step, prefix),
        }
    }
}

/// Runs a step that is not a backup; shared by the steps running at once.
pub(super) struct Worker<'a> {
    pub(super) plan: &'a Plan,
    pub(super) opts: &'a Options,
    pub(super) journal: Option<Arc<Journal>>,
    pub(super) redactor: Redactor,
    pub(super) stopper: Stopper,
    pub(super) strays: Tracker,
    pub(super) statements: Statements,
    pub(super) progress: Progress,
}

impl Worker<'_> {
    pub(super) fn step(&self, step: &Step, prefix: &str) -> StepReport {
        let started = Instant::now();
        let mut report = fresh_report(step);
        // A rehearsal must not stop or start the production server.
        if self.opts.rehearsal && step.skipped_in_rehearsal() {
            self.progress.message(&format!(
                "  a rehearsal does not stop or start the server: `{}` is skipped (rehearse = \"run\" would run it)",
                step.name
            ));
            report.status = "skipped".into();
            return report;
        }
        let result: Result<(), StepError> = match &step.action {
            Action::Backup(_) => Err(StepError::BackupOnWorker),
            Action::Sql(source) => self.sql_step(step, source),
            Action::Check(Check::Sql { sql: query, expect }) => self.with_target(|c| {
                sql::check(
                    c,
                    &query.expose().unwrap_or_default(),
                    &expect.expose().unwrap_or_default(),
                    step.timeout,
                )
                .map_err(StepError::from)
            }),
            Action::Command(command)
            | Action::Check(Check::Command(command))
            | Action::Update { command, .. } => {
                self.progress.step_log(
                    &step.name,
                    &crate::exec::steps::log_path(&self.opts.run_folder, step, prefix),
                );
                let target_env = self.step_env();
                let journal = self.journal.as_deref();
                let on_spawn = |spawned: &crate::exec::process::Spawned| {
                    self.strays.spawned(spawned.start_time);
                    if let Some(journal) = journal {
                        journal.process_started(&step.name, spawned);
                    }
                };
                let cgroup = self.strays.begin(&step.name);
                let setting = crate::exec::steps::Setting {
                    plan: self.plan,
                    target_env: &target_env,
                    run_folder: &self.opts.run_folder,
                    step_user: self.opts.step_user.as_deref(),
                    grace: self.opts.grace,
                    stopper: &self.stopper,
                    on_spawn: &on_spawn,
                    cgroup: cgroup.as_deref(),
                };
                let outcome = crate::exec::steps::run_command(&setting, step, command, prefix);
                self.end_strays(step, &outcome.left_in_group, cgroup.as_deref());
                report.attempts = outcome.attempts;
                report.log = Some(outcome.log.clone());
                report.last_lines = outcome.last_lines.clone();
                report.first_error = outcome.first_error.clone();
                match outcome.error {
                    Some(e) => Err(StepError::Command(e)),
                    None => self.after_command(step, started),
                }
            }
        };
        conclude(report, started, result, &self.redactor)
    }

    /// Ends what the step's command left running, unless it is a `start`
    /// step's server (`exec::strays`), and says so, with what a failed
    /// attempt left in its group (killed with it).
    fn end_strays(
        &self,
        step: &Step,
        left_in_group: &[(u32, String)],
        cgroup: Option<&std::path::Path>,
    ) {
        let start = step.kind == crate::plan::StepKind::Start;
        let mut left = self.strays.killed_with_group(&step.name, left_in_group);
        if let Some(path) = cgroup {
            left.extend(
                self.strays
                    .end_cgroup(&step.name, start, self.opts.grace, path),
            );
        }
        left.extend(self.strays.end(&step.name, start, self.opts.grace));
        for stray in left {
            let who = format!("step `{}`", stray.step.as_deref().unwrap_or(&step.name));
            self.progress
                .message(&stray.line(&who, &self.redactor.redact(&stray.command)));
        }
    }

    /// What an ERP step waits for or checks once its command succeeded
    /// (`exec::erp`).
    fn after_command(&self, step: &Step, started: Instant) -> Result<(), StepError> {
        match (&step.action, step.kind) {
            (
                Action::Update {
                    modules,
                    install,
                    check_modules: true,
                    ..
                },
                _,
            ) => {
                let named = erp::named_modules(modules, install);
                self.with_target(|c| erp::modules_settled(c, &named).map_err(StepError::Modules))
            }
            (_, StepKind::Start) => match &step.ready {
                Some(ready) => {
                    let deadline = started + step.timeout.unwrap_or(erp::DEFAULT_READY_WAIT);
                    self.progress
                        .message(&format!("`{}`: waiting for {ready}", step.name));
                    erp::wait_ready(ready, deadline, &self.stopper).map_err(|e| match e {
                        erp::ReadyError::NotReady(why) => StepError::NotReady(why),
                        erp::ReadyError::Interrupted => StepError::Interrupted,
                    })
                }
                None => Ok(()),
            },
            // A snapshot cannot copy a database the old server is still
            // connected to: the stop is over when its sessions are gone.
            // Those that stay are left to the backup's own policy
            // (--terminate-connections), which names them.
            (_, StepKind::Stop) => {
                let mut maintenance = self.opts.connector.connect(&self.opts.maintenance_db)?;
                let left = erp::wait_sessions_gone(
                    &mut maintenance,
                    &self.opts.database,
                    self.opts.sessions.wait,
                    &self.stopper,
                )?;
                if !left.is_empty() {
                    self.progress.message(&format!(
                        "`{}`: {} session{} still on `{}` after {}",
                        step.name,
                        left.len(),
                        if left.len() == 1 { "" } else { "s" },
                        self.opts.database,
                        crate::units::duration(self.opts.sessions.wait)
                    ));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    pub(super) fn step_env(&self) -> Vec<(String, String)> {
        self.opts.connector.env_for(&self.opts.database)
    }

    /// Runs `f` on a connection of its own to the target: steps running
    /// at once never share one.
    pub(super) fn with_target<T>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, StepError>,
    ) -> Result<T, StepError> {
        let mut client = self.opts.connector.connect(&self.opts.database)?;
        // A signal, or a sibling's failure, cancels the statement, as it
        // ends a command's group.
        let registered = self
            .statements
            .add(self.opts.connector.cancel_token(&client));
        let result = if self.stopper.is_stopped() {
            Err(StepError::Interrupted)
        } else {
            f(&mut client)
        };
        self.statements.remove(registered);
        result
    }

    pub(super) fn sql_step(&self, step: &Step, source: &Sql) -> Result<(), StepError> {
        let text = match source {
            Sql::Inline(text) => text.expose().unwrap_or_default(),
            Sql::File(path) => {
                let path = self.plan.folder.join(path.expose().unwrap_or_default());
                std::fs::read_to_string(&path)
                    .map_err(|source| StepError::ReadFile { path, source })?
            }
        };
        self.with_target(|c| Ok(sql::run(c, &text, step.timeout)?))
    }
}

/// Whether a step that ended so lets the run go on: it succeeded, or a
/// rehearsal skipped it.
pub(super) fn passed(status: &str) -> bool {
    matches!(status, "succeeded" | "skipped")
}

pub(super) fn fresh_report(step: &Step) -> StepReport {
    StepReport {
        name: step.name.clone(),
        kind: step.kind.to_string(),
        status: "succeeded".into(),
        seconds: 0.0,
        attempts: 1,
        log: None,
        error: None,
        first_error: None,
        last_lines: Vec::new(),
    }
}

/// The step's time, and its error (redacted) when it failed.
pub(super) fn conclude(
    mut report: StepReport,
    started: Instant,
    result: Result<(), StepError>,
    redactor: &Redactor,
) -> StepReport {
    report.seconds = started.elapsed().as_secs_f64();
    if let Err(e) = result {
        report.status = "failed".into();
        report.error = Some(redactor.redact(&e.to_string()).into_owned());
    }
    report
}

pub(super) fn not_run(step: &Step) -> StepReport {
    StepReport {
        name: step.name.clone(),
        kind: step.kind.to_string(),
        status: "not_run".into(),
        seconds: 0.0,
        attempts: 0,
        log: None,
        error: None,
        first_error: None,
        last_lines: Vec::new(),
    }
}
