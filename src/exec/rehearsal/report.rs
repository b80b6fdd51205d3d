//! What a rehearsal found: its outcome, each step's time, the window it
//! predicts, what its copies cost; for people and as `rehearsal.json`.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;

use super::{Dropped, Made};
use crate::exec::report::Report;
use crate::exit::Rehearsed;

#[derive(Clone, Debug, Serialize)]
pub struct RehearsalReport {
    pub format_version: u32,
    pub kind: &'static str,
    pub run_id: String,
    /// The plan file, or the folder of a chain.
    pub plan: PathBuf,
    /// What `plan apply` compares to find this rehearsal of the same plan.
    pub plan_sha256: String,
    pub target: String,
    pub database: String,
    pub copy: String,
    /// `snapshot`, or `dump` (`--from-dump`).
    pub method: String,
    pub from_dump: Option<PathBuf>,
    pub started_at: String,
    pub ended_at: String,
    pub outcome: Rehearsed,
    pub exit_code: u8,
    pub message: Option<String>,
    pub seconds: f64,
    pub made: Made,
    pub window: Option<Window>,
    /// The copies, the backups the plan took of them and their trees: the
    /// disk the rehearsal used at its fullest.
    pub disk_bytes: u64,
    /// The steps skipped (`stop` and `start`, unless `rehearse = "run"`).
    pub skipped: Vec<String>,
    /// Whether `--keep` kept the copy.
    pub kept: bool,
    pub dropped: Dropped,
    pub run_folder: PathBuf,
    /// The run on the copy (each hop's, for a chain).
    pub runs: Vec<Report>,
}

/// The maintenance window the rehearsal predicts: the steps from the
/// first `stop` to the last `start` (all of them when the plan has
/// neither), with what the backup and a rollback cost at this size.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Window {
    pub first_step: String,
    pub last_step: String,
    /// The sum of those steps' times (an upper bound when `--jobs` ran
    /// some at once).
    pub seconds: f64,
    /// Of which the backups took.
    pub backup_seconds: f64,
    /// The rollback of the copy to its backups, as rehearsed after the
    /// steps (or after the failure): what a failure at the end adds.
    pub rollback_seconds: Option<f64>,
}

/// The window of the steps the runs ended, in order (hop after hop).
pub fn window(runs: &[Report]) -> Option<Window> {
    let steps: Vec<_> = runs.iter().flat_map(|r| r.steps.iter()).collect();
    let first = steps.iter().position(|s| s.kind == "stop").unwrap_or(0);
    let last = steps
        .iter()
        .rposition(|s| s.kind == "start")
        .unwrap_or(steps.len().checked_sub(1)?);
    if first > last {
        return None;
    }
    let inside = &steps[first..=last];
    let rollback = runs
        .iter()
        .rev()
        .find_map(|r| r.rollback.as_ref())
        .map(|r| {
            r.blocking_s + r.terminating_s + r.renaming_s + r.loading_s + r.paths_s + r.proof_s
        });
    Some(Window {
        first_step: inside[0].name.clone(),
        last_step: inside[inside.len() - 1].name.clone(),
        seconds: inside.iter().map(|s| s.seconds).sum(),
        backup_seconds: inside
            .iter()
            .filter(|s| s.kind == "backup")
            .map(|s| s.seconds)
            .sum(),
        rollback_seconds: rollback,
    })
}

impl RehearsalReport {
    /// The summary printed at the end.
    pub fn human(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\nrehearsal {} of {} on {} (copy {}): {} in {}",
            self.run_id,
            self.plan.display(),
            self.target,
            self.copy,
            self.outcome.as_str(),
            crate::units::seconds(self.seconds)
        );
        if let Some(m) = &self.message {
            let _ = writeln!(out, "{m}");
        }
        let _ = writeln!(
            out,
            "copy: {} of `{}`, {} in {}; trees {} in {}",
            self.method,
            self.database,
            crate::units::bytes(self.made.database_bytes.max(0) as u64),
            crate::units::seconds(self.made.database_seconds),
            crate::units::bytes(self.made.trees_bytes),
            crate::units::seconds(self.made.trees_seconds)
        );
        if !self.skipped.is_empty() {
            let _ = writeln!(
                out,
                "skipped (they would stop or start the server): {}",
                self.skipped.join(", ")
            );
        }
        if let Some(w) = &self.window {
            // A failed rehearsal's steps stopped at the failure: its sum
            // is no window, only what came before.
            let what = if self.outcome == Rehearsed::Passed {
                "window"
            } else {
                "until it stopped, the window's steps took"
            };
            let _ = writeln!(
                out,
                "{what}: {} from `{}` to `{}` (backups {})",
                crate::units::seconds(w.seconds),
                w.first_step,
                w.last_step,
                crate::units::seconds(w.backup_seconds)
            );
            if let Some(r) = w.rollback_seconds {
                let _ = writeln!(
                    out,
                    "rollback: {}; a failure at the end of the window makes it {}",
                    crate::units::seconds(r),
                    crate::units::seconds(w.seconds + r)
                );
            }
            let _ = writeln!(
                out,
                "add the time the server takes to stop and start: the rehearsal did not stop or start it"
            );
        }
        let _ = writeln!(
            out,
            "disk used by the copies at most: {}",
            crate::units::bytes(self.disk_bytes)
        );
        if self.kept {
            let _ = writeln!(
                out,
                "the copy is kept (--keep): database `{}`; drop it with `psql -c 'drop database \"{}\"'` and remove the trees listed in {}",
                self.copy,
                self.copy,
                self.run_folder.join(super::FILE_NAME).display()
            );
        } else if self.dropped.left.is_empty() {
            let _ = writeln!(
                out,
                "the copy was dropped ({} item(s))",
                self.dropped.dropped.len()
            );
        } else {
            let _ = writeln!(out, "NOT DROPPED (remove by hand):");
            for left in &self.dropped.left {
                let _ = writeln!(out, "  {left}");
            }
        }
        let _ = writeln!(out, "rehearsal folder: {}", self.run_folder.display());
        out
    }
}
