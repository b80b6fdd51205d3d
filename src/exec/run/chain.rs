//! A chain (`plan apply DIR --to X`): its hops run one after the other,
//! each a run of its own plan (its steps, its checks, its history row,
//! its report in `hop-N/`), inside one maintenance window: one lock, one
//! row in `plan_runner.runs` and one journal for the whole chain, handed
//! from hop to hop. The backups the first hop takes are the chain's: a
//! later hop's backup of what they already hold is not copied again, and a
//! failed hop rolls the whole chain back to them (the per-run rollback and
//! its proof). With `--keep-reached`, every hop takes its own backups and
//! a failed hop is undone alone.

use std::path::Path;

use super::*;
use crate::exec::paths::TreeBackup;
use crate::exec::strays::Tracker;

/// Where a run stands in its chain.
#[derive(Clone, Debug)]
pub(super) struct Place {
    /// From 1.
    pub(super) hop: usize,
    pub(super) hops: usize,
    pub(super) keep_reached: bool,
    /// The hop passed and the next one follows: its journal gets no end.
    pub(super) continues: bool,
}

/// One hop: its plan, in order, and the options of its run (its own plan
/// file, run folder `hop-N` of the chain's; the chain's run id).
pub struct Hop<'a> {
    pub plan: &'a Plan,
    pub order: &'a [usize],
    pub failure_order: &'a [usize],
    pub opts: Options,
}

/// What a chain did: each hop's report, in order (hops not started have
/// none).
pub struct ChainReport {
    pub chain_id: String,
    pub keep_reached: bool,
    pub hops: Vec<Report>,
    /// Hops in the chain, run or not.
    pub planned: usize,
    /// Hops that had passed before a `--resume` (not in `hops`).
    pub passed_before: usize,
}

/// What one hop hands the next: the window's lock and sessions, the
/// journal, and the chain's backups.
struct Carried {
    lock: Option<Client>,
    maintenance: Option<Client>,
    journal: Option<Arc<Journal>>,
    taken: Vec<Taken>,
    backups: Vec<BackupReport>,
    /// The chain's cgroup and what its hops' steps left (a `start`
    /// step's server is kept until the chain ends or rolls back).
    strays: Tracker,
}

enum HopEnd {
    /// Refused or an error before its first step (only the first hop).
    Early,
    Failed,
    Passed,
}

/// A chain taken over at one of its hops (`--resume`): the unfinished
/// run, and how many hops had passed before the one it stopped in.
pub struct Resumed {
    pub unfinished: super::resume::Unfinished,
    pub passed: usize,
}

/// Runs the hops in order; the chain's journal goes in `chain_folder`
/// (the folder its runs row names, where `plan recover` looks). With
/// `resumed`, `hops` are the chain's from the hop it stopped in, which
/// goes on from its first step that did not end successfully.
pub fn apply_chain(
    hops: &[Hop<'_>],
    chain_folder: &Path,
    keep_reached: bool,
    resumed: Option<Resumed>,
) -> ChainReport {
    let chain_id = hops
        .first()
        .map(|h| h.opts.run_id.clone())
        .unwrap_or_default();
    let passed = resumed.as_ref().map_or(0, |r| r.passed);
    let mut resumed = resumed.map(|r| r.unfinished);
    let mut reports = Vec::new();
    let mut carried: Option<Carried> = None;
    for (k, hop) in hops.iter().enumerate() {
        let mut run = Run::new(hop.plan, &hop.opts, Signals::Watched);
        run.chain = Some(Place {
            hop: passed + k + 1,
            hops: passed + hops.len(),
            keep_reached,
            continues: false,
        });
        let end = match (carried.take(), resumed.take()) {
            (Some(carried), _) => run.next_hop(carried, hop.order),
            (None, Some(unfinished)) => run.resume_hop(unfinished, hop.order),
            (None, None) => run.first_hop(chain_folder, hop.order),
        };
        match end {
            HopEnd::Early => {
                reports.push(run.finish());
                break;
            }
            HopEnd::Failed => {
                run.conclude(true, hop.failure_order);
                reports.push(run.finish());
                break;
            }
            HopEnd::Passed if k + 1 == hops.len() => {
                run.conclude(false, hop.failure_order);
                reports.push(run.finish());
            }
            HopEnd::Passed => {
                carried = Some(run.pass_on());
                reports.push(run.finish());
            }
        }
    }
    crate::db::pgpass::remove(chain_folder);
    crate::erp_config::derive::remove(chain_folder);
    let report = ChainReport {
        chain_id,
        keep_reached,
        hops: reports,
        planned: passed + hops.len(),
        passed_before: passed,
    };
    let _ = crate::private::write(
        &chain_folder.join("chain.json"),
        &serde_json::to_vec_pretty(&report.json()).unwrap_or_default(),
    );
    report
}

impl Run<'_> {
    /// The first hop: the chain's journal, then the run's own checks
    /// (lock, runs row, release gate) and its steps.
    fn first_hop(&mut self, chain_folder: &Path, order: &[usize]) -> HopEnd {
        let folders = [
            chain_folder.to_path_buf(),
            chain_folder.join("logs"),
            self.run_folder.clone(),
            self.run_folder.join("logs"),
        ];
        if let Err(source) = folders.iter().try_for_each(|f| crate::private::make_dir(f)) {
            self.early(Early::RunFolder {
                folder: chain_folder.to_path_buf(),
                source,
            });
            return HopEnd::Early;
        }
        let journal = Journal::create(chain_folder).and_then(|j| {
            j.append(&self.start_record())?;
            Ok(j)
        });
        match journal {
            Ok(j) => {
                self.journal = Some(Arc::new(j));
                // One cgroup for the whole chain, handed from hop to hop.
                self.open_cgroup();
            }
            Err(source) => {
                self.early(Early::Journal {
                    folder: chain_folder.to_path_buf(),
                    source,
                });
                return HopEnd::Early;
            }
        }
        self.announce();
        if let Err(early) = self.write_erp_config() {
            self.early(*early);
            return HopEnd::Early;
        }
        // The runs row names the chain's folder, where its journal is.
        let hop_folder = std::mem::replace(&mut self.run_folder, chain_folder.to_path_buf());
        let prepared = self.prepare();
        self.run_folder = hop_folder;
        if let Err(early) = prepared {
            self.early(early);
            self.lock = None;
            return HopEnd::Early;
        }
        self.run_steps(order)
    }

    /// The hop a chain stopped in (`--resume`): the chain's lock, row,
    /// journal and backups taken over, and its steps that had not ended
    /// successfully run.
    fn resume_hop(&mut self, unfinished: super::resume::Unfinished, order: &[usize]) -> HopEnd {
        let folders = [self.run_folder.clone(), self.run_folder.join("logs")];
        if let Err(source) = folders.iter().try_for_each(|f| crate::private::make_dir(f)) {
            self.early(Early::RunFolder {
                folder: self.run_folder.clone(),
                source,
            });
            return HopEnd::Early;
        }
        self.announce();
        if let Err(early) = self.write_erp_config() {
            self.early(*early);
            self.awaiting_recovery = true;
            return HopEnd::Early;
        }
        match self.take_up(order, unfinished) {
            Ok(remaining) => self.run_steps(&remaining),
            Err(message) => {
                // Nothing was run: the chain stays unfinished as it was,
                // its journal without an end, for a later --resume or
                // `plan recover`.
                self.lock = None;
                self.awaiting_recovery = true;
                self.report.outcome = Outcome::Error;
                self.report.message = Some(message);
                HopEnd::Early
            }
        }
    }

    /// A later hop: takes over the window from the hop before, checks the
    /// release the history now records, and runs its steps.
    fn next_hop(&mut self, carried: Carried, order: &[usize]) -> HopEnd {
        self.lock = carried.lock;
        self.maintenance = carried.maintenance;
        self.journal = carried.journal;
        self.taken = carried.taken;
        self.report.backups = carried.backups;
        self.strays = carried.strays;
        let folders = [self.run_folder.clone(), self.run_folder.join("logs")];
        if let Err(e) = folders.iter().try_for_each(|f| crate::private::make_dir(f)) {
            self.report.message = Some(format!(
                "cannot create the hop's folder {}: {e}",
                self.run_folder.display()
            ));
            return HopEnd::Failed;
        }
        if !self.journal(&self.start_record()) {
            self.report.message = Some("the journal cannot be written: the chain stops".into());
            return HopEnd::Failed;
        }
        self.announce();
        if let Err(early) = self.write_erp_config() {
            self.report.message = Some(early.to_string());
            return HopEnd::Failed;
        }
        let gate = match self.opts.connector.connect(&self.opts.database) {
            Ok(mut target) => self.gate(&mut target).map_err(|early| early.to_string()),
            Err(e) => Err(format!(
                "cannot connect to {}: {}",
                self.opts.connector.at(&self.opts.database),
                sql::describe_error(&e)
            )),
        };
        if let Err(why) = gate {
            self.report.message = Some(why);
            return HopEnd::Failed;
        }
        self.run_steps(order)
    }

    /// The hop's server configuration, written where `${erp_config}`
    /// names it, in the chain's folder: each hop writes its own.
    fn write_erp_config(&self) -> Result<(), Box<Early>> {
        match &self.opts.erp_config {
            Some(setting) => setting.write().map_err(|source| {
                Box::new(Early::RunFolder {
                    folder: setting.derived.clone(),
                    source,
                })
            }),
            None => Ok(()),
        }
    }

    fn run_steps(&mut self, order: &[usize]) -> HopEnd {
        if self.steps(order) {
            HopEnd::Failed
        } else {
            HopEnd::Passed
        }
    }

    fn announce(&self) {
        let place = self.chain.as_ref().map_or((1, 1), |c| (c.hop, c.hops));
        self.progress.message(&format!(
            "chain {}, hop {} of {}: \"{}\" ({} -> {}) on {}; hop folder {}",
            self.run_id,
            place.0,
            place.1,
            self.plan.name,
            self.plan.from,
            self.plan.to,
            self.opts.target,
            self.run_folder.display()
        ));
    }

    /// A hop that passed with another to follow: its history row, then
    /// the window handed on. Under `--keep-reached` the hop ends as a run
    /// of its own does (its backups kept or dropped as `keep` says), so
    /// that the next hop's failure comes back here; otherwise the chain's
    /// backups go on to the next hop.
    fn pass_on(&mut self) -> Carried {
        let keep_reached = self.chain.as_ref().is_some_and(|c| c.keep_reached);
        if keep_reached {
            self.succeed();
        } else {
            self.report.outcome = Outcome::Succeeded;
            self.record(Outcome::Succeeded);
            self.add_message(&format!(
                "`{}` is at {}; the chain goes on (its backups are kept for the chain)",
                self.opts.database, self.plan.to
            ));
        }
        if let Some(place) = self.chain.as_mut() {
            place.continues = true;
        }
        Carried {
            lock: self.lock.take(),
            maintenance: self.maintenance.take(),
            journal: self.journal.clone(),
            taken: std::mem::take(&mut self.taken),
            backups: if keep_reached {
                Vec::new()
            } else {
                self.report.backups.clone()
            },
            strays: self.strays.clone(),
        }
    }

    /// The chain's backup that already holds what a hop's `backup` step
    /// would copy: the same database, and every one of its paths. `None`
    /// outside a chain, under `--keep-reached`, or when something is not
    /// held yet (then the step copies it, as in a run of its own).
    pub(super) fn chain_backup_covering(
        &self,
        database: &str,
        trees: &[PathBuf],
    ) -> Option<String> {
        let place = self.chain.as_ref()?;
        if place.keep_reached || place.hop == 1 {
            return None;
        }
        let held = self.taken.iter().find(|t| t.database == database)?;
        let holds_tree = |tree: &PathBuf| {
            self.taken
                .iter()
                .flat_map(|t| t.trees.iter())
                .any(|b: &TreeBackup| &b.original == tree)
        };
        trees.iter().all(holds_tree).then(|| held.copy.clone())
    }
}

impl ChainReport {
    /// The report that decides the exit: the last hop run.
    pub fn ending(&self) -> crate::exit::Ending {
        self.hops
            .last()
            .map_or(crate::exit::Ending::run(Outcome::Error), Report::ending)
    }

    /// The hop that failed, if one did: its number (from 1) and report.
    fn failed(&self) -> Option<(usize, &Report)> {
        self.hops
            .iter()
            .enumerate()
            .find(|(_, r)| r.outcome != Outcome::Succeeded)
            .map(|(i, r)| (self.passed_before + i + 1, r))
    }

    /// The last hop's summary, then the chain's: each hop and what became
    /// of it.
    pub fn human(&self) -> String {
        let mut out = self.hops.last().map(Report::human).unwrap_or_default();
        let (Some(first), Some(last)) = (self.hops.first(), self.hops.last()) else {
            return out;
        };
        let failed = self.failed();
        let passed_undone = failed
            .is_some_and(|(_, r)| !self.keep_reached && matches!(r.outcome, Outcome::RolledBack));
        out.push_str(&format!(
            "\nchain {} ({} hop(s) planned) on {}:\n",
            self.chain_id, self.planned, first.target
        ));
        for (i, r) in self.hops.iter().enumerate() {
            let what = match (r.outcome, failed) {
                (Outcome::Succeeded, Some(_)) if passed_undone => "passed, undone by the rollback",
                (Outcome::Succeeded, Some(_)) => "passed, kept (--keep-reached)",
                (Outcome::Succeeded, None) => "passed",
                _ => r.outcome.as_str(),
            };
            let step = r
                .steps
                .iter()
                .find(|s| s.status == "failed")
                .map(|s| format!(", at step `{}`", s.name))
                .unwrap_or_default();
            out.push_str(&format!(
                "  hop {}: {} -> {} ({}): {what}{step}\n",
                self.passed_before + i + 1,
                r.from,
                r.to,
                r.plan_path.display()
            ));
        }
        if self.passed_before > 0 {
            out.push_str(&format!(
                "  (hops 1 to {} had passed before the chain was resumed)\n",
                self.passed_before
            ));
        }
        for i in (self.passed_before + self.hops.len())..self.planned {
            out.push_str(&format!("  hop {}: not run\n", i + 1));
        }
        match failed {
            None => out.push_str(&format!("the chain reached {}\n", last.to)),
            Some((hop, _)) if passed_undone && self.passed_before > 0 => out.push_str(&format!(
                "hop {hop} failed: the whole chain was rolled back to where it started (before hop 1), proved by the fingerprints of its first backup\n"
            )),
            Some((hop, _)) if passed_undone => out.push_str(&format!(
                "hop {hop} failed: the whole chain was rolled back to where it started ({}), proved by the fingerprints of its first backup\n",
                first.from
            )),
            Some((hop, r)) if self.keep_reached && r.outcome == Outcome::RolledBack => out
                .push_str(&format!(
                    "hop {hop} failed and was undone: the chain stopped at {} (--keep-reached)\n",
                    r.from
                )),
            Some(_) => {}
        }
        out
    }

    /// `chain.json` in the chain's folder.
    fn json(&self) -> serde_json::Value {
        let failed = self.failed().map(|(hop, r)| {
            serde_json::json!({
                "hop": hop,
                "step": r.steps.iter().find(|s| s.status == "failed").map(|s| s.name.clone()),
            })
        });
        // Hops that passed before a resume are not in this report.
        let before = self.passed_before;
        let (first, last) = (self.hops.first(), self.hops.last());
        serde_json::json!({
            "format_version": 1,
            "chain_id": self.chain_id,
            // The chain as one run, with the fields of a run's report a
            // fleet's summary reads.
            "run_id": self.chain_id,
            "outcome": last.map(|r| r.outcome.as_str()),
            "from": first.map(|r| r.from.clone()),
            "to": last.map(|r| r.to.clone()),
            "started_at": first.map(|r| r.started_at.clone()),
            "ended_at": last.map(|r| r.ended_at.clone()),
            "message": last.and_then(|r| r.message.clone()),
            "keep_reached": self.keep_reached,
            "hops_planned": self.planned,
            "exit_code": self.hops.last().map(|r| r.exit_code),
            "failed": failed,
            "hops": self.hops.iter().enumerate().map(|(i, r)| serde_json::json!({
                "hop": before + i + 1,
                "plan_path": r.plan_path,
                "from": r.from,
                "to": r.to,
                "outcome": r.outcome.as_str(),
                "run_folder": r.run_folder,
            })).collect::<Vec<_>>(),
        })
    }
}
