//! One `plan apply`: lock, release gate, steps in order, rollback on any
//! failure with its proof, `on_failure`, history and report. The steps run
//! in the order of the graph, up to `--jobs` at once (`schedule`). Each
//! event is written to the run's journal (`exec::journal`) before the run
//! goes on.

mod backup;
pub mod chain;
pub mod dead;
pub mod dry;
mod finish;
pub mod gate;
mod needs;
mod prepare;
pub mod recover;
pub mod resume;
mod rollback;
pub mod schedule;
mod steps;

pub use dry::dry_run;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use postgres::Client;

use crate::db::connect::{self, Connector};
use crate::db::server::ServerVersion;
use crate::db::{history, lock, runs};
use crate::exec::backup::{BackupError, SessionPolicy, Taken};
use crate::exec::journal::{ChainMark, Journal, Record};
use crate::exec::process::Stopper;
use crate::exec::progress::Progress;
use crate::exec::redact::Redactor;
use crate::exec::report::{BackupReport, Report, RollbackReport, StepReport};
use crate::exec::signals::{Statements, Watch};
use crate::exec::strays::Tracker;
use crate::exec::{paths, space, sql};
use crate::exit::{self, Outcome};
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
    /// How long a lost server is waited for (`--reconnect-wait`).
    pub reconnect_wait: Duration,
    /// The timeout of an `on_failure` step that sets none
    /// (`--on-failure-timeout`).
    pub on_failure_timeout: Duration,
    /// The flags that name this target on the command line (`--database
    /// acme`), for the commands a message tells the user to run.
    pub target_flags: String,
    /// On a failure, stop and leave everything as it is (`--no-rollback`).
    pub no_rollback: bool,
    /// How many steps may run at once (`--jobs`, at least 1).
    pub jobs: usize,
    /// The ERP server's configuration, when the plan names one: its
    /// filestore joins every backup of the target, and a file naming
    /// another server refuses the run.
    pub erp_config: Option<crate::erp_config::Setting>,
    /// `--revision`: the code this run deploys, over the plan's `revision`.
    pub revision: Option<String>,
    /// `--allow-same-revision`: a refresh may run a revision again.
    pub allow_same_revision: bool,
    /// The run is a rehearsal's, on its copy (`plan rehearse`): `stop`
    /// and `start` steps are skipped unless marked `rehearse = "run"`,
    /// and a run that passes is rolled back all the same, to time and
    /// prove its rollback.
    pub rehearsal: bool,
}

/// Runs the plan; returns the report (already written to the run folder),
/// whose `ending` gives the exit status.
pub fn apply(plan: &Plan, order: &[usize], failure_order: &[usize], opts: &Options) -> Report {
    let mut run = Run::new(plan, opts, Signals::Watched);
    run.go(order, failure_order);
    run.finish()
}

impl<'a> Run<'a> {
    fn new(plan: &'a Plan, opts: &'a Options, signals: Signals) -> Run<'a> {
        let run_id = opts.run_id.clone();
        let run_folder = opts.run_folder.clone();
        let mut redactor = Redactor::new();
        for secret in crate::exec::steps::secrets(plan) {
            redactor.learn(&secret);
        }
        // The connection's password reaches the steps only in a 0600 file,
        // but a step may print it all the same.
        if let Some(password) = opts.connector.password() {
            redactor.learn(password);
        }
        for secret in opts.erp_config.iter().flat_map(|s| s.secrets()) {
            redactor.learn(secret);
        }
        let stopper = Stopper::new();
        let progress = Progress::start(&redactor);
        let signals = match signals {
            Signals::Watched => Watch::start(stopper.clone(), progress.clone()),
            Signals::Ignored => Watch::none(),
        };
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
                started_at: crate::units::now_millis(),
                ended_at: String::new(),
                outcome: Outcome::Running,
                interrupted: false,
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
                strays: Vec::new(),
            },
            run_id,
            run_folder,
            taken: Vec::new(),
            maintenance: None,
            stopper,
            strays: Tracker::new(),
            signals,
            journal: None,
            lock: None,
            space_refused: false,
            awaiting_recovery: false,
            modules_before: None,
            progress,
            redactor,
            chain: None,
        }
    }

    /// Redacts the logs, writes the report and the journal's last record.
    fn finish(mut self) -> Report {
        // The summary comes next, on a terminal without spinners.
        self.progress.finish();
        self.report.strays = self.strays.reports();
        // A chain's cgroup goes on to its next hop.
        if !self.chain.as_ref().is_some_and(|c| c.continues) {
            self.strays
                .close_cgroup(self.awaiting_recovery || self.report.outcome == Outcome::Stopped);
        }
        self.redact_logs();
        self.redact_report();
        // The steps' password file lives as long as the run: whatever the
        // outcome, it is gone once the run ends (a recovery writes its own).
        crate::db::pgpass::remove(&self.run_folder);
        crate::erp_config::derive::remove(&self.run_folder);
        self.report.ended_at = crate::units::now_millis();
        let code = exit::status(self.report.ending()).code();
        self.report.exit_code = code;
        self.write_report();
        // A run left for `plan recover` has not ended: its journal must
        // say so to the recovery; nor has a chain whose next hop follows.
        if !self.awaiting_recovery && !self.chain.as_ref().is_some_and(|c| c.continues) {
            self.journal(&Record::RunEnded {
                outcome: self.report.outcome.as_str().into(),
                exit_code: code,
            });
        }
        self.report
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
    /// The processes steps left behind (`exec::strays`).
    strays: Tracker,
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
    /// The rollback could not start (the server unreachable, the lock
    /// taken by another): the run is left unfinished for `plan recover`.
    awaiting_recovery: bool,
    /// The session holding the target's lock: released only after the
    /// runs row is closed, so that no other runner ever sees this run as
    /// unfinished while it ends.
    lock: Option<Client>,
    /// The installed modules' versions at the gate, for the history's
    /// record of what the run changed; `None` for a database with no
    /// module registry, or before the gate.
    modules_before: Option<std::collections::BTreeMap<String, String>>,
    /// Set when the run is one hop of a chain (`chain`).
    chain: Option<chain::Place>,
}

impl Run<'_> {
    /// The code this run deploys: `--revision`, else the plan's
    /// `revision` (a secret in it is recorded as `***`).
    fn revision(&self) -> Option<String> {
        self.opts.revision.clone().or_else(|| {
            self.plan.revision.as_ref().map(|t| {
                if t.has_secret() {
                    t.to_string()
                } else {
                    t.expose().unwrap_or_else(|| t.to_string())
                }
            })
        })
    }
}

use prepare::Early;

/// The timeout of an `on_failure` step that sets none, unless
/// `--on-failure-timeout` says otherwise (`plan recover` uses this one).
pub const DEFAULT_ON_FAILURE_TIMEOUT: Duration = Duration::from_secs(600);

/// Whether a run hears SIGINT and SIGTERM (a dry run does not: it changes
/// nothing, and the default action ends it).
enum Signals {
    Watched,
    Ignored,
}

impl Run<'_> {
    fn go(&mut self, order: &[usize], failure_order: &[usize]) {
        if let Err(source) = crate::private::make_dir(&self.run_folder.join("logs"))
            .and_then(|()| crate::private::make_dir(&self.run_folder))
        {
            return self.early(Early::RunFolder {
                folder: self.run_folder.clone(),
                source,
            });
        }
        if let Err(source) = self.open_journal() {
            return self.early(Early::Journal {
                folder: self.run_folder.clone(),
                source,
            });
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
        if let Err(early) = self.prepare() {
            self.early(early);
            self.lock = None;
            return;
        }
        let failed = self.steps(order);
        self.conclude(failed, failure_order)
    }

    /// After the steps: stop, roll back or succeed; close the runs row,
    /// then free the lock.
    fn conclude(&mut self, failed: bool, failure_order: &[usize]) {
        if failed && self.opts.no_rollback {
            self.stop_without_rollback();
        } else if !failed
            && self.opts.rehearsal
            && self.chain.as_ref().is_none_or(|c| c.hop == c.hops)
        {
            self.rehearse_rollback();
        } else if failed {
            self.roll_back_and_recover(failure_order);
        } else {
            self.succeed();
        }
        // A run waiting for `plan recover` keeps its row open: that is how
        // every runner sees it is unfinished.
        if !self.awaiting_recovery {
            let state = self.report.outcome.as_str();
            let run_id = self.run_id.clone();
            if let Ok(m) = self.maintenance() {
                let _ = runs::finish(m, &run_id, state);
            }
        }
        self.lock = None;
    }

    fn open_journal(&mut self) -> std::io::Result<()> {
        let journal = Journal::create(&self.run_folder)?;
        journal.append(&self.start_record())?;
        self.journal = Some(Arc::new(journal));
        self.open_cgroup();
        Ok(())
    }

    /// The journal's first record of this run (of each hop, in a chain).
    fn start_record(&self) -> Record {
        Record::RunStarted {
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
            chain: self.chain.as_ref().map(|c| ChainMark {
                chain_id: self.run_id.clone(),
                hop: c.hop,
                hops: c.hops,
                keep_reached: c.keep_reached,
            }),
        }
    }

    /// Makes the run's cgroup, where the machine allows one, and records
    /// it so that a recovery finds what is in it (`exec::cgroup`).
    fn open_cgroup(&mut self) {
        if let Some(path) = self.strays.open_cgroup(&self.run_id) {
            self.journal(&Record::Cgroup { path });
        }
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

    fn early(&mut self, early: Early) {
        let outcome = early.outcome();
        self.report.outcome = outcome;
        self.report.message = Some(early.to_string());
        if let Some(m) = self.maintenance.as_mut() {
            let _ = runs::finish(m, &self.run_id, outcome.as_str());
        }
    }
}

/// The server's version; the supported range is `db::server`'s.
pub fn server_version(client: &mut Client) -> Result<ServerVersion, postgres::Error> {
    crate::db::server::version(client)
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
