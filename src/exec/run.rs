//! One `plan apply`: lock, release gate, steps in order, rollback on any
//! failure with its proof, `on_failure`, history and report. Steps run one
//! at a time here; the order comes from the graph.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use postgres::Client;

use crate::db::connect::Connector;
use crate::db::{fingerprint, history, lock, runs};
use crate::exec::backup::{self, BackupError, SessionPolicy, Taken};
use crate::exec::process::Stopper;
use crate::exec::redact::Redactor;
use crate::exec::report::{BackupReport, Report, RollbackReport, StepReport};
use crate::exec::{paths, sql, steps};
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
}

/// Runs the plan; returns the report (already written to the run folder)
/// and the exit status.
pub fn apply(
    plan: &Plan,
    order: &[usize],
    failure_order: &[usize],
    opts: &Options,
) -> (Report, Exit) {
    let run_id = opts.run_id.clone();
    let run_folder = opts.run_folder.clone();
    let mut run = Run {
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
            steps: Vec::new(),
            backups: Vec::new(),
            rollback: None,
            on_failure: Vec::new(),
        },
        run_id,
        run_folder,
        taken: Vec::new(),
        maintenance: None,
        stopper: Stopper::new(),
        redactor: Redactor::new(),
    };
    for secret in steps::secrets(plan) {
        run.redactor.learn(&secret);
    }
    let exit = run.go(order, failure_order);
    run.redact_logs();
    run.redact_report();
    run.report.ended_at = now();
    run.report.exit_code = exit.code();
    run.write_report();
    (run.report, exit)
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
        progress(&format!(
            "run {} of \"{}\" ({} -> {}) on {}; run folder {}",
            self.run_id,
            self.plan.name,
            self.plan.from,
            self.plan.to,
            self.opts.target,
            self.run_folder.display()
        ));
        for (name, value) in &self.plan.vars {
            progress(&format!("  var {name} = {value}"));
        }
        let mut lock_client = match self.prepare() {
            Ok(lock) => lock,
            Err(Early(exit, message)) => return self.early(exit, message),
        };
        let failed = self.steps(order, &mut lock_client);
        let exit = if failed {
            self.roll_back_and_recover(failure_order)
        } else {
            self.succeed()
        };
        let state = self.report.outcome.clone();
        if let Some(m) = self.maintenance.as_mut() {
            let _ = runs::finish(m, &self.run_id, &state);
        }
        drop(lock_client);
        exit
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

    /// Version check, lock, runs table, release gate, history table.
    fn prepare(&mut self) -> Result<Client, Early> {
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
        {
            let (run_id, plan_path, sha) = (
                self.run_id.clone(),
                opts.plan_path.display().to_string(),
                opts.plan_sha256.clone(),
            );
            let m = self
                .maintenance()
                .map_err(|e| db_error("cannot connect", e))?;
            runs::start(m, &run_id, &opts.database, &plan_path, &sha)
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
        Ok(lock_client)
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
            progress(&format!(
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

    /// Runs the steps in order; returns whether one failed.
    fn steps(&mut self, order: &[usize], lock_client: &mut Client) -> bool {
        let mut failed = false;
        for &i in order {
            let step = &self.plan.steps[i];
            if failed {
                self.report.steps.push(not_run(step));
                continue;
            }
            if !lock::still_held(lock_client) {
                let mut r = not_run(step);
                r.status = "failed".into();
                r.error = Some(
                    "the connection holding the lock was lost: no more steps are launched".into(),
                );
                self.report.steps.push(r);
                failed = true;
                continue;
            }
            progress(&format!("▶ {} {}", step.kind, step.name));
            let report = self.step(step, "");
            progress(&format!(
                "{} {} {} ({:.1} s){}",
                if report.status == "succeeded" {
                    "✓"
                } else {
                    "✗"
                },
                step.kind,
                step.name,
                report.seconds,
                report
                    .error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ));
            failed = report.status != "succeeded";
            self.report.steps.push(report);
        }
        failed
    }

    fn step(&mut self, step: &Step, prefix: &str) -> StepReport {
        let started = Instant::now();
        let mut report = StepReport {
            name: step.name.clone(),
            kind: step.kind.to_string(),
            status: "succeeded".into(),
            seconds: 0.0,
            attempts: 1,
            log: None,
            error: None,
            last_lines: Vec::new(),
        };
        let result: Result<(), String> = match &step.action {
            Action::Backup(b) => self.backup(step, b),
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
                let target_env = self.step_env();
                let setting = steps::Setting {
                    plan: self.plan,
                    target_env: &target_env,
                    run_folder: &self.run_folder,
                    step_user: self.opts.step_user.as_deref(),
                    grace: self.opts.grace,
                    stopper: &self.stopper,
                };
                let outcome = steps::run_command(&setting, step, command, prefix);
                report.attempts = outcome.attempts;
                report.log = Some(outcome.log.clone());
                report.last_lines = outcome.last_lines.clone();
                outcome.error.map_or(Ok(()), Err)
            }
        };
        report.seconds = started.elapsed().as_secs_f64();
        if let Err(e) = result {
            report.status = "failed".into();
            report.error = Some(self.redactor.redact(&e).into_owned());
        }
        report
    }

    fn step_env(&self) -> Vec<(String, String)> {
        self.opts.connector.env_for(&self.opts.database)
    }

    fn with_target<T>(
        &mut self,
        f: impl FnOnce(&mut Client) -> Result<T, String>,
    ) -> Result<T, String> {
        let mut client = self
            .opts
            .connector
            .connect(&self.opts.database)
            .map_err(|e| sql::SqlError::from(e).describe())?;
        f(&mut client)
    }

    fn sql_step(&mut self, step: &Step, source: &Sql) -> Result<(), String> {
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
                self.taken.push(taken);
                Ok(())
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

    fn set_backup_state(&mut self, copy: &str, state: &str) {
        if let Some(b) = self.report.backups.iter_mut().find(|b| b.copy == copy) {
            b.state = state.into();
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
            resumed: false,
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
        progress("rolling back");
        let rollback = self.roll_back();
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
            return Exit::RollbackFailed;
        }
        self.report.message = Some(match self.report.message.take() {
            Some(m) => format!("{m}\n{summary}"),
            None => summary,
        });
        self.record("rolled_back");
        self.report.outcome = "rolled_back".into();
        self.on_failure(failure_order);
        if sessions_refused {
            Exit::Refused
        } else {
            Exit::Failed
        }
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
        let mut report = RollbackReport::default();
        let taken = std::mem::take(&mut self.taken);
        let mut seen_db = BTreeSet::new();
        let mut seen_tree = BTreeSet::new();
        let mut restored_dbs: Vec<&Taken> = Vec::new();
        let mut restored_trees = Vec::new();
        let mut failed_dbs = Vec::new();
        let mut failed_trees = Vec::new();
        let mut times = backup::RestoreTimes::default();
        for t in &taken {
            if seen_db.insert(t.database.clone()) {
                let result = self.backup_context().and_then(|mut ctx| {
                    backup::restore(&mut ctx, t, &mut times).map_err(|e| e.to_string())
                });
                match result {
                    Ok(failed) => {
                        report.restored.push(format!(
                            "database `{}` from {} {}",
                            t.database,
                            t.method.as_str(),
                            t.copy
                        ));
                        failed_dbs.extend(failed);
                        restored_dbs.push(t);
                        self.set_backup_state(&t.copy, "restored");
                    }
                    Err(e) => {
                        report.error =
                            Some(format!("restoring `{}` from {}: {e}", t.database, t.copy));
                        break;
                    }
                }
            }
            let started = Instant::now();
            for tree in &t.trees {
                if seen_tree.insert(tree.original.clone()) {
                    match paths::restore(tree, &self.run_id) {
                        Ok(aside) => {
                            report
                                .restored
                                .push(format!("files {}", tree.original.display()));
                            failed_trees.extend(aside);
                            restored_trees.push(tree);
                        }
                        Err(e) => report.error = Some(e.to_string()),
                    }
                }
            }
            report.paths_s += started.elapsed().as_secs_f64();
        }
        report.blocking_s = times.blocking_s;
        report.terminating_s = times.terminating_s;
        report.renaming_s = times.renaming_s;
        report.loading_s = times.loading_s;
        report.failed_copies = failed_dbs
            .iter()
            .cloned()
            .chain(failed_trees.iter().map(|p| p.display().to_string()))
            .collect();
        // The proof.
        let started = Instant::now();
        for t in &restored_dbs {
            let now = self.backup_context().and_then(|mut ctx| {
                backup::fingerprint_now(&mut ctx, &t.database).map_err(|e| e.to_string())
            });
            match now {
                Ok(now) => report.differences.extend(
                    fingerprint::differences(&t.fingerprint, &now)
                        .into_iter()
                        .map(|d| format!("`{}`: {d}", t.database)),
                ),
                Err(e) => {
                    report.error = Some(format!(
                        "fingerprinting `{}` after the restore: {e}",
                        t.database
                    ))
                }
            }
        }
        for tree in &restored_trees {
            match paths::manifest(&tree.original) {
                Ok(now) => report.differences.extend(
                    paths::differences(&tree.manifest, &now)
                        .into_iter()
                        .map(|d| format!("{}: {d}", tree.original.display())),
                ),
                Err(e) => report.error = Some(e.to_string()),
            }
        }
        report.proof_s = started.elapsed().as_secs_f64();
        report.proved = report.error.is_none() && report.differences.is_empty();
        if report.proved {
            if !self.opts.keep_failed {
                if let Some(m) = self.maintenance.as_mut() {
                    for f in &failed_dbs {
                        let _ = m.batch_execute(&format!(
                            "drop database if exists {}",
                            crate::db::quote::quote_ident(f)
                        ));
                    }
                }
                for f in &failed_trees {
                    let _ = paths::remove(f);
                }
                report.failed_copies.clear();
            }
            // Later backups of this failed run are not needed any more
            // unless they are to be kept.
            for t in &taken {
                if !restored_dbs.iter().any(|r| r.copy == t.copy) && !t.keep {
                    if let Some(m) = self.maintenance.as_mut() {
                        backup::discard_copy(m, t.method, &t.copy);
                    }
                    // Their file copies too: without the database copy no
                    // listing would show them, and they would stay forever.
                    // (A copy that was restored has been renamed away.)
                    for tree in &t.trees {
                        let _ = paths::remove(&tree.copy);
                    }
                    self.set_backup_state(&t.copy, "dropped");
                }
            }
        }
        report
    }

    fn on_failure(&mut self, order: &[usize]) {
        for &i in order {
            let step = &self.plan.on_failure[i];
            progress(&format!("▶ on_failure {} {}", step.kind, step.name));
            let report = self.step(step, "on_failure-");
            progress(&format!(
                "{} on_failure {} ({})",
                if report.status == "succeeded" {
                    "✓"
                } else {
                    "✗"
                },
                step.name,
                report.status
            ));
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
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// Progress on stderr, one timestamped line per event.
pub fn progress(line: &str) {
    use std::io::Write;
    let stamp = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let time = stamp.get(11..19).unwrap_or("");
    // A closed terminal (SIGHUP) must not stop the run.
    let _ = writeln!(std::io::stderr(), "[{time}] {line}");
}

/// Run folders hold logs and dumps: readable by their owner only.
fn restrict(folder: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(folder, std::fs::Permissions::from_mode(0o700));
}
