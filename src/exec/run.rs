//! One `plan apply`: lock, release gate, steps in order, rollback on any
//! failure with its proof, `on_failure`, history and report. The steps run
//! in the order of the graph, up to `--jobs` at once (`schedule`). Each
//! event is written to the run's journal (`exec::journal`) before the run
//! goes on.

pub mod dry;
pub mod recover;
pub mod resume;
pub mod schedule;

pub use dry::dry_run;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use postgres::Client;

use crate::db::connect::Connector;
use crate::db::{history, lock, runs};
use crate::exec::backup::{self, BackupError, SessionPolicy, Taken};
use crate::exec::journal::{Journal, Record};
use crate::exec::process::Stopper;
use crate::exec::progress::Progress;
use crate::exec::redact::Redactor;
use crate::exec::report::{BackupReport, Report, RollbackReport, StepReport};
use crate::exec::signals::{Statements, Watch};
use crate::exec::{paths, rollback, space, sql, steps};
use crate::exit::Exit;
use crate::plan::{Action, Check, Plan, Sql, Step};
use crate::version::Version;

/// How to run: everything that is not in the plan.
pub struct Options {
    pub run_id: String,
    /// `<state dir>/runs/<run id>`, already created (the target's password
    /// file for children lives there).
    pub run_folder: PathBuf,
    pub connector: Connector,
    /// How the target is shown: `acme (127.0.0.1:5432/acme)`.
    pub target: String,
    pub database: String,
    pub maintenance_db: String,
    pub lock_timeout: Duration,
    pub sessions: SessionPolicy,
    pub keep_failed: bool,
    pub assume_release: Option<Version>,
    pub plan_path: PathBuf,
    pub plan_sha256: String,
    /// The user steps run as when they do not say (inventory).
    pub step_user: Option<String>,
    /// Between SIGTERM and SIGKILL of a step's process group.
    pub grace: Duration,
    /// The flags that name this target on the command line (`--database
    /// acme`), for the commands a message tells the user to run.
    pub target_flags: String,
    /// On a failure, stop and leave everything as it is (`--no-rollback`).
    pub no_rollback: bool,
    /// How many steps may run at once (`--jobs`, at least 1).
    pub jobs: usize,
}

/// Runs the plan; returns the report (already written to the run folder)
/// and the exit status.
pub fn apply(
    plan: &Plan,
    order: &[usize],
    failure_order: &[usize],
    opts: &Options,
) -> (Report, Exit) {
    let stopper = Stopper::new();
    let signals = Watch::start(stopper.clone());
    let mut run = Run::new(plan, opts, stopper, signals);
    let exit = run.go(order, failure_order);
    run.finish(exit)
}

impl<'a> Run<'a> {
    fn new(plan: &'a Plan, opts: &'a Options, stopper: Stopper, signals: Watch) -> Run<'a> {
        let run_id = opts.run_id.clone();
        let run_folder = opts.run_folder.clone();
        let mut redactor = Redactor::new();
        for secret in steps::secrets(plan) {
            redactor.learn(&secret);
        }
        Run {
            plan,
            opts,
            report: Report {
                format_version: 1,
                run_id: run_id.clone(),
                plan: plan.name.clone(),
                plan_path: opts.plan_path.clone(),
                plan_sha256: opts.plan_sha256.clone(),
                target: opts.target.clone(),
                database: opts.database.clone(),
                from: plan.from.to_string(),
                to: plan.to.to_string(),
                started_at: now(),
                ended_at: String::new(),
                outcome: String::new(),
                exit_code: 0,
                message: None,
                run_folder: run_folder.clone(),
                resumed: false,
                resumed_at: None,
                done_before_resume: Vec::new(),
                steps: Vec::new(),
                backups: Vec::new(),
                rollback: None,
                on_failure: Vec::new(),
            },
            run_id,
            run_folder,
            taken: Vec::new(),
            maintenance: None,
            stopper,
            signals,
            journal: None,
            lock: None,
            space_refused: false,
            progress: Progress::start(&redactor),
            redactor,
        }
    }

    /// What the steps other than backups need, owned, so that several of
    /// them can run at once while the run goes on.
    fn worker(&self) -> Worker<'a> {
        Worker {
            plan: self.plan,
            opts: self.opts,
            journal: self.journal.clone(),
            redactor: self.redactor.clone(),
            stopper: self.stopper.clone(),
            statements: self.signals.statements(),
            progress: self.progress.clone(),
        }
    }

    /// Redacts the logs, writes the report and the journal's last record.
    fn finish(mut self, exit: Exit) -> (Report, Exit) {
        // The summary comes next, on a terminal without spinners.
        self.progress.finish();
        self.redact_logs();
        self.redact_report();
        self.report.ended_at = now();
        self.report.exit_code = exit.code();
        self.write_report();
        self.journal(&Record::RunEnded {
            outcome: self.report.outcome.clone(),
            exit_code: exit.code(),
        });
        (self.report, exit)
    }
}

struct Run<'a> {
    plan: &'a Plan,
    opts: &'a Options,
    report: Report,
    run_id: String,
    run_folder: PathBuf,
    taken: Vec<Taken>,
    maintenance: Option<Client>,
    stopper: Stopper,
    /// Every secret of the plan: a server's error or a check's mismatch
    /// quotes the SQL's values, secrets included.
    redactor: Redactor,
    /// What stderr shows while the run goes.
    progress: Progress,
    signals: Watch,
    /// `None` until the run folder has one (a dry run never does). Shared
    /// with the steps running at once, which record their processes.
    journal: Option<Arc<Journal>>,
    /// The first step, a backup, found no room for its copies: nothing
    /// changed, and the run is refused (exit 4) rather than failed.
    space_refused: bool,
    /// The session holding the target's lock: released only after the
    /// runs row is closed, so that no other runner ever sees this run as
    /// unfinished while it ends.
    lock: Option<Client>,
}

/// A run that ends before its first step: refused with nothing changed
/// (exit 4), nothing to do (exit 0), or a configuration error (exit 2).
struct Early(Exit, String);

impl Run<'_> {
    fn go(&mut self, order: &[usize], failure_order: &[usize]) -> Exit {
        if let Err(e) = std::fs::create_dir_all(self.run_folder.join("logs")) {
            return self.early(
                Exit::Usage,
                format!(
                    "cannot create the run folder {}: {e}",
                    self.run_folder.display()
                ),
            );
        }
        restrict(&self.run_folder);
        if let Err(e) = self.open_journal() {
            return self.early(
                Exit::Usage,
                format!(
                    "cannot write the journal in {}: {e}",
                    self.run_folder.display()
                ),
            );
        }
        self.progress.message(&format!(
            "run {} of \"{}\" ({} -> {}) on {}; run folder {}",
            self.run_id,
            self.plan.name,
            self.plan.from,
            self.plan.to,
            self.opts.target,
            self.run_folder.display()
        ));
        for (name, value) in &self.plan.vars {
            self.progress.message(&format!("  var {name} = {value}"));
        }
        if let Err(Early(exit, message)) = self.prepare() {
            let exit = self.early(exit, message);
            self.lock = None;
            return exit;
        }
        let failed = self.steps(order);
        self.conclude(failed, failure_order)
    }

    /// After the steps: stop, roll back or succeed; close the runs row,
    /// then free the lock.
    fn conclude(&mut self, failed: bool, failure_order: &[usize]) -> Exit {
        let exit = if failed && self.opts.no_rollback {
            self.stop_without_rollback()
        } else if failed {
            self.roll_back_and_recover(failure_order)
        } else {
            self.succeed()
        };
        let state = self.report.outcome.clone();
        if let Some(m) = self.maintenance.as_mut() {
            let _ = runs::finish(m, &self.run_id, &state);
        }
        self.lock = None;
        exit
    }

    fn open_journal(&mut self) -> std::io::Result<()> {
        let journal = Journal::create(&self.run_folder)?;
        journal.append(&Record::RunStarted {
            run_id: self.run_id.clone(),
            plan: self.plan.name.clone(),
            plan_path: self.opts.plan_path.clone(),
            plan_sha256: self.opts.plan_sha256.clone(),
            target: self.opts.target.clone(),
            database: self.opts.database.clone(),
            maintenance_db: self.opts.maintenance_db.clone(),
            from: self.plan.from.to_string(),
            to: self.plan.to.to_string(),
            host: runs::hostname(),
            pid: std::process::id(),
            runner_version: env!("CARGO_PKG_VERSION").into(),
        })?;
        self.journal = Some(Arc::new(journal));
        Ok(())
    }

    /// Appends a record; `false` when it could not be made durable.
    fn journal(&self, record: &Record) -> bool {
        self.journal
            .as_ref()
            .is_some_and(|j| j.append(record).is_ok())
    }

    /// Writes a record that the next `journal` call makes durable (a
    /// step's end: the next step's start follows it before anything runs).
    fn note(&self, record: &Record) -> bool {
        self.journal
            .as_ref()
            .is_some_and(|j| j.note(record).is_ok())
    }

    fn early(&mut self, exit: Exit, message: String) -> Exit {
        self.report.outcome = match exit {
            Exit::Success => "nothing_to_do",
            Exit::Refused => "refused",
            _ => "error",
        }
        .into();
        self.report.message = Some(message);
        if let Some(m) = self.maintenance.as_mut() {
            let _ = runs::finish(m, &self.run_id, &self.report.outcome);
        }
        exit
    }

    fn maintenance(&mut self) -> Result<&mut Client, postgres::Error> {
        if self.maintenance.is_none() {
            self.maintenance = Some(self.opts.connector.connect(&self.opts.maintenance_db)?);
        }
        Ok(self.maintenance.as_mut().expect("connected above"))
    }

    /// Version check, lock, unfinished runs, runs table, release gate,
    /// history table. The lock, once taken, is in `self.lock`.
    fn prepare(&mut self) -> Result<(), Early> {
        let opts = self.opts;
        let refuse = |m: String| Early(Exit::Refused, m);
        let usage = |m: String| Early(Exit::Usage, m);
        let db_error = |what: &str, e: postgres::Error| {
            usage(format!("{what}: {}", sql::SqlError::from(e).describe()))
        };
        let version = {
            let m = self
                .maintenance()
                .map_err(|e| db_error("cannot connect to the server", e))?;
            server_version(m).map_err(|e| db_error("cannot read the server version", e))?
        };
        if !(SUPPORTED_MIN..=SUPPORTED_MAX).contains(&version) {
            return Err(refuse(format!(
                "the server is PostgreSQL {}.{}: plan-runner supports PostgreSQL 12 to 17 (docs/apply.md)",
                version / 10000,
                version % 10000 / 100
            )));
        }
        let mut lock_client = opts
            .connector
            .connect(&opts.maintenance_db)
            .map_err(|e| db_error("cannot connect to the maintenance database", e))?;
        // The lock lives as long as this session: no idle timeout may end it.
        let _ =
            lock_client.batch_execute("set idle_session_timeout = 0; set statement_timeout = 0");
        match lock::acquire(&mut lock_client, &opts.database, opts.lock_timeout) {
            Ok(lock::Acquired::Yes) => {}
            Ok(lock::Acquired::HeldBy(holder)) => {
                let m = self
                    .maintenance()
                    .map_err(|e| db_error("cannot connect", e))?;
                let run = holder
                    .as_ref()
                    .and_then(|h| h.application.strip_prefix("plan-runner/"))
                    .and_then(|id| runs::get(m, id).ok().flatten());
                let mut message = format!(
                    "another plan-runner is applying a plan to `{}`",
                    opts.database
                );
                if let Some(h) = &holder {
                    message.push_str(&format!(
                        "\n  holder: server pid {}, {}, from {}, connected since {}",
                        h.pid,
                        h.application,
                        h.client.as_deref().unwrap_or("local socket"),
                        h.since
                    ));
                }
                if let Some(r) = run {
                    message.push_str(&format!(
                        "\n  run {}: plan {} on host {} (pid {}), started {}",
                        r.run_id, r.plan, r.host, r.pid, r.started_at
                    ));
                }
                message.push_str("\nwait for it to finish, or use --lock-timeout to wait for it");
                return Err(refuse(message));
            }
            Err(e) => return Err(db_error("cannot take the lock", e)),
        }
        self.lock = Some(lock_client);
        {
            let (run_id, plan_path, sha, folder) = (
                self.run_id.clone(),
                opts.plan_path.display().to_string(),
                opts.plan_sha256.clone(),
                self.run_folder.display().to_string(),
            );
            let m = self
                .maintenance()
                .map_err(|e| db_error("cannot connect", e))?;
            // A live run holds the lock from before its row is written
            // until after it is closed: with the lock ours, a row still
            // open is a run whose runner died (or that --no-rollback
            // stopped).
            let unfinished = runs::unfinished(m, &opts.database)
                .map_err(|e| db_error("cannot read plan_runner.runs", e))?;
            if let Some(row) = unfinished.last() {
                return Err(refuse(recover::unfinished_message(row, &opts.target_flags)));
            }
            runs::start(m, &run_id, &opts.database, &plan_path, &sha, &folder)
                .map_err(|e| db_error("cannot record the run in plan_runner.runs", e))?;
        }
        let mut target = opts
            .connector
            .connect(&opts.database)
            .map_err(|e| db_error(&format!("cannot connect to `{}`", opts.database), e))?;
        self.gate(&mut target)?;
        history::ensure(&mut target).map_err(|e| db_error("cannot create the history table", e))?;
        // The runner's own connections to the target must be gone before a
        // snapshot copies it or a rollback renames it.
        drop(target);
        Ok(())
    }

    /// The release gate: already at `to`, at `from`, or refused.
    fn gate(&mut self, target: &mut Client) -> Result<(), Early> {
        let (from, to) = (&self.plan.from, &self.plan.to);
        let (release, source) = if let Some(assumed) = &self.opts.assume_release {
            (Some(assumed.to_string()), "--assume-release")
        } else {
            match history::recorded_release(target) {
                Ok(Some(r)) => (Some(r), "the history table"),
                Ok(None) => match &self.plan.release_query {
                    Some(query) => {
                        let query = query.expose().unwrap_or_default();
                        match target.simple_query(&query) {
                            Ok(messages) => (
                                messages.iter().find_map(|m| match m {
                                    postgres::SimpleQueryMessage::Row(row) => {
                                        row.get(0).map(str::to_string)
                                    }
                                    _ => None,
                                }),
                                "the plan's release_query",
                            ),
                            Err(e) => {
                                return Err(Early(
                                    Exit::Refused,
                                    format!(
                                        "the plan's release_query failed: {}",
                                        sql::SqlError::from(e).describe()
                                    ),
                                ));
                            }
                        }
                    }
                    None => (None, ""),
                },
                Err(e) => {
                    return Err(Early(
                        Exit::Usage,
                        format!("cannot read the history: {}", sql::describe_error(&e)),
                    ));
                }
            }
        };
        let Some(release) = release else {
            return Err(Early(
                Exit::Refused,
                format!(
                    "cannot tell which release `{}` is at: it has no plan-runner history and the plan has no release_query\nif you know it is at {from}, run again with --assume-release {from}",
                    self.opts.database
                ),
            ));
        };
        if to.is_prefix_of(&release) || Version::parse(release.trim()).is_some_and(|v| &v == to) {
            return Err(Early(
                Exit::Success,
                format!(
                    "`{}` is already at {to} (by {source}): nothing to do",
                    self.opts.database
                ),
            ));
        }
        if from.is_prefix_of(&release) || Version::parse(release.trim()).is_some_and(|v| &v == from)
        {
            self.progress.message(&format!(
                "`{}` is at {release} (by {source}): migrating {from} -> {to}",
                self.opts.database
            ));
            return Ok(());
        }
        Err(Early(
            Exit::Refused,
            format!(
                "`{}` is at release {release} (by {source}), but this plan migrates from {from} to {to}\nnothing was changed; if {source} is wrong, --assume-release {from} overrides it",
                self.opts.database
            ),
        ))
    }

    /// Runs the steps in order, up to `--jobs` at once (`schedule`);
    /// returns whether one failed.
    fn steps(&mut self, order: &[usize]) -> bool {
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

    fn step(&mut self, step: &Step, prefix: &str) -> StepReport {
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

    fn backup_context(&mut self) -> Result<backup::Context<'_>, String> {
        let label = crate::db::kept::label(
            &self.opts.database,
            &self.run_id,
            &self.plan.name,
            &self.opts.target,
        );
        let opts = self.opts;
        let maintenance = self
            .maintenance
            .as_mut()
            .ok_or("no connection to the maintenance database")?;
        let server_version = server_version(maintenance).map_err(|e| e.to_string())?;
        Ok(backup::Context {
            connector: &opts.connector,
            maintenance,
            run_id: &self.run_id,
            run_folder: &self.run_folder,
            label,
            sessions: opts.sessions,
            server_version,
            jobs: 2,
        })
    }

    fn backup(&mut self, step: &Step, b: &crate::plan::Backup) -> Result<(), String> {
        let database = b.database.expose().unwrap_or_default();
        let trees: Vec<PathBuf> = b
            .paths
            .iter()
            .map(|p| {
                // Recorded absolute: `plan backups` and `plan recover` may run
                // from another folder than this run.
                let path = self.plan.folder.join(p.expose().unwrap_or_default());
                std::path::absolute(&path).unwrap_or(path)
            })
            .collect();
        let copy = match b.method {
            // The name `backup::take` will use (a second snapshot of the
            // same database gets `_pr2_`): `plan recover` drops a half-made
            // copy by the name recorded here, never a taken one.
            crate::plan::BackupMethod::Snapshot => {
                let run_id = self.run_id.clone();
                let maintenance = self.maintenance().map_err(|e| e.to_string())?;
                backup::free_snapshot_name(maintenance, &database, &run_id)
                    .map_err(|e| e.to_string())?
            }
            crate::plan::BackupMethod::Dump => self
                .run_folder
                .join(format!("dump-{}", step.name))
                .display()
                .to_string(),
        };
        if let Err(refusal) = self.room_for(b, &database, &trees) {
            // Nothing was copied yet: when no backup was taken before,
            // no step that changes data has run (W101), so nothing changed
            // at all, and the run is refused rather than failed. (Step
            // reports are only gathered when the scheduler ends: they
            // cannot tell.)
            self.space_refused = self.taken.is_empty();
            self.report.message = Some(refusal.clone());
            return Err(refusal);
        }
        let blocks_connections = b.method == crate::plan::BackupMethod::Snapshot
            && self.opts.sessions.terminate
            && self
                .maintenance()
                .ok()
                .and_then(|m| crate::db::sessions::allows_connections(m, &database).ok())
                .unwrap_or(false);
        if !self.journal(&Record::BackupStarted {
            step: step.name.clone(),
            method: b.method.as_str().into(),
            database: database.clone(),
            copy,
            blocks_connections,
        }) {
            return Err("the journal cannot be written: the backup was not started".into());
        }
        let mut ctx = self.backup_context()?;
        match backup::take(&mut ctx, &step.name, b.method, &database, &trees, b.keep) {
            Ok(taken) => {
                self.report.backups.push(BackupReport {
                    step: step.name.clone(),
                    method: b.method.as_str().into(),
                    database: database.clone(),
                    copy: taken.copy.clone(),
                    paths: trees.clone(),
                    seconds: taken.seconds,
                    fingerprint_seconds: taken.fingerprint_seconds,
                    bytes: taken.bytes,
                    state: "taken".into(),
                });
                let _ = std::fs::write(
                    self.run_folder.join(format!("backup-{}.json", step.name)),
                    serde_json::to_vec_pretty(&taken).unwrap_or_default(),
                );
                let recorded = self.journal(&Record::BackupTaken {
                    taken: taken.clone(),
                });
                self.taken.push(taken);
                if recorded {
                    Ok(())
                } else {
                    Err("the journal cannot record the backup: the run does not go on".into())
                }
            }
            Err(e @ BackupError::Sessions { .. }) => {
                self.report.message = Some(format!(
                    "{e}\n{}",
                    "stop these clients, or run again with --terminate-connections"
                ));
                Err(e.to_string())
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// Compares the sizes of the copies this backup will make with the
    /// free space where they go (`exec::space`); says the figures in the
    /// progress, and `Err` with them when they cannot fit.
    fn room_for(
        &mut self,
        b: &crate::plan::Backup,
        database: &str,
        trees: &[PathBuf],
    ) -> Result<(), String> {
        let local = dry::is_local(self.opts.connector.host());
        let run_folder = self.run_folder.clone();
        let maintenance = self.maintenance().map_err(|e| e.to_string())?;
        // Without the privilege to read the size (CONNECT on it, or
        // pg_read_all_stats), the copy is "not checked" rather than refused.
        let size = maintenance
            .query_opt("select pg_database_size($1)", &[&database])
            .map(|row| row.map_or(0, |row| row.get::<_, i64>(0)))
            .map_err(|e| format!("its size cannot be read: {}", sql::describe_error(&e)));
        let mut copies = vec![space::Copy {
            what: format!("{} of `{database}`", b.method.as_str()),
            size: size
                .as_ref()
                .map_or(0, |size| u64::try_from(*size).unwrap_or(0)),
            to: match size {
                Err(why) => Err(why),
                Ok(_) => match b.method {
                    crate::plan::BackupMethod::Snapshot => {
                        match space::data_directory(maintenance, local) {
                            space::DataDirectory::Here(dir) => Ok(dir),
                            space::DataDirectory::NotChecked(why) => Err(why),
                        }
                    }
                    crate::plan::BackupMethod::Dump => Ok(run_folder),
                },
            },
        }];
        for tree in trees {
            if let Some(size) = space::tree_size(tree) {
                copies.push(space::Copy {
                    what: format!("files {}", tree.display()),
                    size,
                    to: Ok(tree.parent().unwrap_or(Path::new("/")).to_path_buf()),
                });
            }
        }
        let verdict = space::check(&copies);
        for line in &verdict.lines {
            self.progress.message(&format!("  free space: {line}"));
        }
        verdict.refusal.map_or(Ok(()), Err)
    }

    fn set_backup_state(&mut self, copy: &str, state: &str) {
        if let Some(b) = self.report.backups.iter_mut().find(|b| b.copy == copy) {
            b.state = state.into();
        }
    }

    /// `--no-rollback`: the database and files stay as the failure left
    /// them, and so do the backups; the run stays unfinished in the runs
    /// table until `plan recover` restores it.
    fn stop_without_rollback(&mut self) -> Exit {
        let copies: Vec<String> = self.taken.iter().map(|t| t.copy.clone()).collect();
        for copy in &copies {
            self.set_backup_state(copy, "kept");
        }
        self.record("stopped");
        self.report.outcome = "stopped".into();
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
        if self.signals.interrupted().is_some() {
            Exit::Interrupted
        } else {
            Exit::Failed
        }
    }

    fn succeed(&mut self) -> Exit {
        for taken in std::mem::take(&mut self.taken) {
            let state = if taken.keep {
                "kept"
            } else {
                let dropped = self
                    .maintenance
                    .as_mut()
                    .is_some_and(|m| backup::discard_copy(m, taken.method, &taken.copy));
                for tree in &taken.trees {
                    let _ = paths::remove(&tree.copy);
                }
                if dropped { "dropped" } else { "kept" }
            };
            self.set_backup_state(&taken.copy, state);
        }
        self.record("succeeded");
        self.report.outcome = "succeeded".into();
        self.report.message = Some(format!(
            "`{}` is now at {}",
            self.opts.database, self.plan.to
        ));
        Exit::Success
    }

    /// Records the run in the target's history (best effort: the report
    /// says so when it cannot).
    fn record(&mut self, outcome: &str) {
        let entry = history::Entry {
            run_id: self.run_id.clone(),
            plan: self.plan.name.clone(),
            plan_sha256: self.opts.plan_sha256.clone(),
            from_release: self.plan.from.to_string(),
            to_release: self.plan.to.to_string(),
            started_at: self.report.started_at.clone(),
            ended_at: now(),
            outcome: outcome.into(),
            resumed: self.report.resumed,
            steps: serde_json::json!(self
                .report
                .steps
                .iter()
                .map(|s| serde_json::json!({"name": s.name, "kind": s.kind, "status": s.status, "seconds": s.seconds}))
                .collect::<Vec<_>>()),
        };
        let result = self
            .opts
            .connector
            .connect(&self.opts.database)
            .and_then(|mut c| history::record(&mut c, &entry));
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

    fn roll_back_and_recover(&mut self, failure_order: &[usize]) -> Exit {
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
        if !self.restore_and_prove(&reason) {
            return Exit::RollbackFailed;
        }
        self.record("rolled_back");
        // A first backup without room: nothing was done at all.
        self.report.outcome = if self.space_refused {
            "refused"
        } else {
            "rolled_back"
        }
        .into();
        self.on_failure(failure_order);
        if interrupted.is_some() {
            self.add_message(&format!("the run was {reason}"));
            Exit::Interrupted
        } else if sessions_refused || self.space_refused {
            Exit::Refused
        } else {
            Exit::Failed
        }
    }

    fn add_message(&mut self, line: &str) {
        self.report.message = Some(match self.report.message.take() {
            Some(m) => format!("{m}\n{line}"),
            None => line.to_string(),
        });
    }

    /// Restores the backups taken and proves it. When the proof fails, the
    /// report says so loudly (outcome `rollback_failed`) and this returns
    /// `false`: nothing else may run.
    fn restore_and_prove(&mut self, reason: &str) -> bool {
        // From here a signal does not interrupt: a half-restored database
        // is worse than a wait.
        self.signals.rolling_back();
        let _ = self.journal(&Record::RollbackStarted {
            reason: reason.into(),
        });
        self.progress.message(&format!("rolling back ({reason})"));
        // A restore takes as long as a big step: it must not look frozen.
        self.progress.activity_started("(rollback)", "rolling back");
        let rollback = self.roll_back();
        self.progress.activity_ended("(rollback)");
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
            self.report.outcome = "rollback_failed".into();
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

    fn where_things_are(&self) -> String {
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
    /// then proves it.
    fn roll_back(&mut self) -> RollbackReport {
        let taken = std::mem::take(&mut self.taken);
        if taken.is_empty() {
            return RollbackReport {
                proved: true,
                ..RollbackReport::default()
            };
        }
        let keep_failed = self.opts.keep_failed;
        let rolled = match self.backup_context() {
            Ok(mut ctx) => rollback::roll_back(&mut ctx, &taken, keep_failed),
            Err(e) => rollback::Rolled {
                report: RollbackReport {
                    error: Some(e),
                    ..RollbackReport::default()
                },
                states: Vec::new(),
            },
        };
        for (copy, state) in &rolled.states {
            self.set_backup_state(copy, state);
        }
        rolled.report
    }

    fn on_failure(&mut self, order: &[usize]) {
        // The steps' stopper may have been used by a signal; on_failure
        // steps must run all the same.
        self.stopper = Stopper::new();
        for &i in order {
            let step = &self.plan.on_failure[i];
            self.progress
                .step_started(&step.name, &format!("on_failure {}", step.kind));
            let _ = self.journal(&Record::StepStarted {
                step: step.name.clone(),
                kind: step.kind.to_string(),
                on_failure: true,
            });
            let report = self.step(step, "on_failure-");
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

    /// Children write their logs themselves; a secret they printed is
    /// replaced by `***` once they are gone.
    fn redact_logs(&self) {
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
    fn redact_report(&mut self) {
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
            step.last_lines.iter_mut().for_each(hide);
        }
        if let Some(r) = self.report.rollback.as_mut() {
            r.error.iter_mut().for_each(hide);
            r.differences.iter_mut().for_each(hide);
        }
    }

    fn write_report(&self) {
        let path = self.run_folder.join("report.json");
        if let Ok(json) = serde_json::to_vec_pretty(&self.report) {
            let _ = std::fs::write(path, json);
        }
    }
}

/// Runs a step that is not a backup; shared by the steps running at once.
struct Worker<'a> {
    plan: &'a Plan,
    opts: &'a Options,
    journal: Option<Arc<Journal>>,
    redactor: Redactor,
    stopper: Stopper,
    statements: Statements,
    progress: Progress,
}

impl Worker<'_> {
    fn step(&self, step: &Step, prefix: &str) -> StepReport {
        let started = Instant::now();
        let mut report = fresh_report(step);
        let result: Result<(), String> = match &step.action {
            Action::Backup(_) => Err("internal error: a backup runs on the run itself".into()),
            Action::Sql(source) => self.sql_step(step, source),
            Action::Check(Check::Sql { sql: query, expect }) => self.with_target(|c| {
                sql::check(
                    c,
                    &query.expose().unwrap_or_default(),
                    &expect.expose().unwrap_or_default(),
                    step.timeout,
                )
                .map_err(|e| e.describe())
            }),
            Action::Command(command)
            | Action::Check(Check::Command(command))
            | Action::Update { command, .. } => {
                self.progress.step_log(
                    &step.name,
                    &steps::log_path(&self.opts.run_folder, step, prefix),
                );
                let target_env = self.step_env();
                let journal = self.journal.as_deref();
                let on_spawn = |spawned: &crate::exec::process::Spawned| {
                    if let Some(journal) = journal {
                        journal.process_started(&step.name, spawned);
                    }
                };
                let setting = steps::Setting {
                    plan: self.plan,
                    target_env: &target_env,
                    run_folder: &self.opts.run_folder,
                    step_user: self.opts.step_user.as_deref(),
                    grace: self.opts.grace,
                    stopper: &self.stopper,
                    on_spawn: &on_spawn,
                };
                let outcome = steps::run_command(&setting, step, command, prefix);
                report.attempts = outcome.attempts;
                report.log = Some(outcome.log.clone());
                report.last_lines = outcome.last_lines.clone();
                outcome.error.map_or(Ok(()), Err)
            }
        };
        conclude(report, started, result, &self.redactor)
    }

    fn step_env(&self) -> Vec<(String, String)> {
        self.opts.connector.env_for(&self.opts.database)
    }

    /// Runs `f` on a connection of its own to the target: steps running
    /// at once never share one.
    fn with_target<T>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, String>,
    ) -> Result<T, String> {
        let mut client = self
            .opts
            .connector
            .connect(&self.opts.database)
            .map_err(|e| sql::SqlError::from(e).describe())?;
        // A signal, or a sibling's failure, cancels the statement, as it
        // ends a command's group.
        let registered = self.statements.add(client.cancel_token());
        let result = if self.stopper.is_stopped() {
            Err("interrupted".to_string())
        } else {
            f(&mut client)
        };
        self.statements.remove(registered);
        result
    }

    fn sql_step(&self, step: &Step, source: &Sql) -> Result<(), String> {
        let text = match source {
            Sql::Inline(text) => text.expose().unwrap_or_default(),
            Sql::File(path) => {
                let path = self.plan.folder.join(path.expose().unwrap_or_default());
                std::fs::read_to_string(&path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?
            }
        };
        self.with_target(|c| sql::run(c, &text, step.timeout).map_err(|e| e.describe()))
    }
}

fn fresh_report(step: &Step) -> StepReport {
    StepReport {
        name: step.name.clone(),
        kind: step.kind.to_string(),
        status: "succeeded".into(),
        seconds: 0.0,
        attempts: 1,
        log: None,
        error: None,
        last_lines: Vec::new(),
    }
}

/// The step's time, and its error (redacted) when it failed.
fn conclude(
    mut report: StepReport,
    started: Instant,
    result: Result<(), String>,
    redactor: &Redactor,
) -> StepReport {
    report.seconds = started.elapsed().as_secs_f64();
    if let Err(e) = result {
        report.status = "failed".into();
        report.error = Some(redactor.redact(&e).into_owned());
    }
    report
}

/// Oldest and newest servers the runner supports (server_version_num).
pub const SUPPORTED_MIN: i32 = 120000;
pub const SUPPORTED_MAX: i32 = 179999;

pub fn server_version(client: &mut Client) -> Result<i32, postgres::Error> {
    let text: String = client.query_one("show server_version_num", &[])?.get(0);
    Ok(text.trim().parse().unwrap_or(0))
}

fn not_run(step: &Step) -> StepReport {
    StepReport {
        name: step.name.clone(),
        kind: step.kind.to_string(),
        status: "not_run".into(),
        seconds: 0.0,
        attempts: 0,
        log: None,
        error: None,
        last_lines: Vec::new(),
    }
}

/// A run id: the UTC time to the second and four random hex digits;
/// short, because it ends up in database names (63 bytes at most).
pub fn new_run_id() -> String {
    let stamp: String = humantime::format_rfc3339_seconds(SystemTime::now())
        .to_string()
        .chars()
        .filter(char::is_ascii_digit)
        .skip(2)
        .collect();
    let mut bytes = [0u8; 2];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut bytes);
    }
    format!("{stamp}{}", hex::encode(bytes))
}

pub fn now() -> String {
    crate::units::now_millis()
}

/// Run folders hold logs and dumps: readable by their owner only.
fn restrict(folder: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(folder, std::fs::Permissions::from_mode(0o700));
}
