//! Starting one target's `plan apply` child, and reading how it ended
//! (its exit status and `report.json`) and where it is (its journal).

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs::File;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use crate::exec::journal::{self, Record};
use crate::fleet::summary::TargetSummary;
use crate::fleet::{Options, Selected};

/// How many of the last lines of a child's output become the cause of a
/// target that ended without a report.
const CAUSE_LINES: usize = 3;

pub struct Launcher<'a> {
    opts: &'a Options,
    /// The run ids given so far: two children started in the same second
    /// must not share one.
    given: RefCell<BTreeSet<String>>,
    count: RefCell<usize>,
}

/// A target's child that has not been seen to end.
pub struct Running {
    pub member: Selected,
    pub run_id: String,
    pub started: Instant,
    pub started_at: String,
    child: Child,
    log: PathBuf,
    run_folder: PathBuf,
    dry_run: bool,
}

impl<'a> Launcher<'a> {
    pub fn new(opts: &'a Options) -> Launcher<'a> {
        Launcher {
            opts,
            given: RefCell::new(BTreeSet::new()),
            count: RefCell::new(0),
        }
    }

    /// Starts `member`'s run, or says why it could not start (a failed
    /// target, with the cause).
    pub fn start(&self, member: Selected) -> Result<Running, Box<TargetSummary>> {
        let run_id = self.run_id();
        let run_folder = self.opts.state_dir.join("runs").join(&run_id);
        let log = self.log_path(&member.name);
        let started_at = crate::units::now_millis();
        let refuse = |cause: String| {
            Err(Box::new(TargetSummary::not_run(
                &member,
                "error",
                Some(log.clone()),
                cause,
            )))
        };
        // The child reads `--target a,b` as a fleet of two.
        if member.name.contains(',') {
            return refuse(format!(
                "the target's name `{}` has a comma, which --target reads as a list: rename it",
                member.name
            ));
        }
        let output = match crate::private::write(&log, b"").and_then(|()| {
            let out = File::options().append(true).open(&log)?;
            Ok((out.try_clone()?, out))
        }) {
            Ok(files) => files,
            Err(error) => return refuse(format!("cannot write `{}`: {error}", log.display())),
        };
        let mut target = OsString::from("--target=");
        target.push(&member.name);
        let mut id = OsString::from("--run-id=");
        id.push(&run_id);
        let spawned = Command::new(&self.opts.program)
            .args(&self.opts.args)
            .arg(target)
            .arg(id)
            .stdin(Stdio::null())
            .stdout(output.0)
            .stderr(output.1)
            // Its own process group: the terminal's Ctrl-C reaches the
            // fleet, which passes it on once (see `fleet::run`).
            .process_group(0)
            .spawn();
        match spawned {
            Ok(child) => Ok(Running {
                member,
                run_id,
                started: Instant::now(),
                started_at,
                child,
                log,
                run_folder,
                dry_run: self.opts.dry_run,
            }),
            Err(error) => refuse(format!(
                "cannot start `{}`: {error}",
                self.opts.program.display()
            )),
        }
    }

    /// A run id no run folder and no other child of this fleet has.
    fn run_id(&self) -> String {
        let mut given = self.given.borrow_mut();
        loop {
            let id = crate::exec::run::new_run_id();
            if !given.contains(&id) && !self.opts.state_dir.join("runs").join(&id).exists() {
                given.insert(id.clone());
                return id;
            }
        }
    }

    /// `NNN-name.log` in the fleet's folder: the number keeps two names
    /// that differ only in characters a file name cannot hold apart.
    fn log_path(&self, name: &str) -> PathBuf {
        let mut count = self.count.borrow_mut();
        *count += 1;
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                    c
                } else {
                    '_'
                }
            })
            .take(80)
            .collect();
        self.opts.folder.join(format!("{:03}-{safe}.log", *count))
    }
}

impl Running {
    /// The child's summary once it has ended, else `None`.
    pub fn try_end(&mut self) -> Option<TargetSummary> {
        let status = match self.child.try_wait() {
            Ok(Some(status)) => status,
            Ok(None) => return None,
            Err(_) => return None,
        };
        let seconds = self.started.elapsed().as_secs_f64();
        // A chain's child leaves `chain.json`, its report as one run.
        let report_path = ["report.json", "chain.json"]
            .iter()
            .map(|name| self.run_folder.join(name))
            .find(|path| path.is_file())
            .unwrap_or_else(|| self.run_folder.join("report.json"));
        let report = std::fs::read(&report_path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok());
        let cause = || last_lines(&self.log);
        let row = TargetSummary::ended(
            &self.member,
            &self.run_id,
            &self.started_at,
            seconds,
            status.code(),
            status.signal(),
            report.map(|r| (r, report_path.clone())),
            self.log.clone(),
            cause,
        );
        Some(if self.dry_run { row.dry_run() } else { row })
    }

    /// Passes a signal on to the child (its process only: the run ends
    /// its own steps' groups).
    pub fn signal(&self, signal: i32) {
        if let (Ok(pid), Ok(signal)) = (
            i32::try_from(self.child.id()),
            nix::sys::signal::Signal::try_from(signal),
        ) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
        }
    }

    /// What the run is doing, as its journal says: the steps running, or
    /// its rollback.
    pub fn doing(&self) -> String {
        let Ok(contents) = journal::read(&self.run_folder) else {
            return "starting".into();
        };
        let mut running: Vec<String> = Vec::new();
        let mut phase = None;
        for entry in contents.entries {
            match entry.record {
                Record::StepStarted { step, .. } => running.push(step),
                Record::StepEnded { step, .. } => running.retain(|s| *s != step),
                Record::BackupStarted { step, .. } => phase = Some(format!("backup {step}")),
                Record::BackupTaken { .. } => phase = None,
                Record::RollbackStarted { .. } => phase = Some("rolling back".into()),
                Record::RollbackEnded { proved, .. } => {
                    phase = Some(if proved {
                        "rolled back, proved".into()
                    } else {
                        "rollback not proved".into()
                    });
                }
                Record::RunEnded { outcome, .. } => phase = Some(outcome),
                _ => {}
            }
        }
        match phase {
            Some(phase) => phase,
            None if running.is_empty() => "between steps".into(),
            None => running.join(", "),
        }
    }
}

/// The last non-blank lines of a child's output, for the summary.
fn last_lines(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let from = lines.len().saturating_sub(CAUSE_LINES);
    let joined = lines.get(from..)?.join(" / ");
    (!joined.is_empty()).then_some(joined)
}
