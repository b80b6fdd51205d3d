//! What a run did, for people (a summary on the terminal) and for tools
//! (`report.json` in the run folder). Every text here is already redacted.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;

pub use crate::exec::strays::StrayReport;
use crate::exit::{Ending, Outcome};

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub format_version: u32,
    pub run_id: String,
    pub plan: String,
    pub plan_path: PathBuf,
    pub plan_sha256: String,
    pub target: String,
    pub database: String,
    pub from: String,
    pub to: String,
    pub started_at: String,
    pub ended_at: String,
    pub outcome: Outcome,
    /// Whether Ctrl-C or SIGTERM ended the run (exit 130 once rolled back).
    pub interrupted: bool,
    pub exit_code: u8,
    pub message: Option<String>,
    pub run_folder: PathBuf,
    /// Whether `plan apply --resume` went on with this run after its
    /// runner died or `--no-rollback` stopped it.
    pub resumed: bool,
    /// When it was last resumed.
    pub resumed_at: Option<String>,
    /// The steps that had ended successfully before the resume and were
    /// not run again (at the user's word). They are in `steps` too.
    pub done_before_resume: Vec<String>,
    pub steps: Vec<StepReport>,
    pub backups: Vec<BackupReport>,
    pub rollback: Option<RollbackReport>,
    pub on_failure: Vec<StepReport>,
    /// Processes the steps left running that the runner ended (or could
    /// not end): see docs/apply.md.
    pub strays: Vec<StrayReport>,
}

#[derive(Clone, Debug, Serialize)]
pub struct StepReport {
    pub name: String,
    pub kind: String,
    /// `succeeded`, `failed`, `not_run`; `interrupted` for a step ended
    /// because another one running beside it failed (`--jobs`).
    pub status: String,
    pub seconds: f64,
    pub attempts: u32,
    pub log: Option<PathBuf>,
    pub error: Option<String>,
    /// The first line of its output that matched `fail_on_output` (or an
    /// ERP server's first `ERROR`/`CRITICAL` line), when it failed.
    pub first_error: Option<String>,
    pub last_lines: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct BackupReport {
    pub step: String,
    pub method: String,
    pub database: String,
    /// The snapshot database, or the dump folder.
    pub copy: String,
    pub paths: Vec<PathBuf>,
    pub seconds: f64,
    pub fingerprint_seconds: f64,
    pub bytes: i64,
    /// `kept`, `dropped`, `restored` (it became the target again).
    pub state: String,
    /// The `pg_dump` that wrote a dump, and its release.
    pub program: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct RollbackReport {
    /// Databases and trees put back.
    pub restored: Vec<String>,
    /// Where each failed database or tree went (dropped after the proof
    /// unless --keep-failed).
    pub failed_copies: Vec<String>,
    pub blocking_s: f64,
    pub terminating_s: f64,
    pub renaming_s: f64,
    pub loading_s: f64,
    pub paths_s: f64,
    pub proof_s: f64,
    pub proved: bool,
    pub differences: Vec<String>,
    pub error: Option<String>,
}

impl Report {
    /// How the run ended, for its exit status.
    pub fn ending(&self) -> Ending {
        Ending::Run {
            outcome: self.outcome,
            interrupted: self.interrupted,
        }
    }

    /// The summary printed at the end of a run.
    pub fn human(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\nrun {} of \"{}\" on {}: {}",
            self.run_id,
            self.plan,
            self.target,
            self.outcome.as_str().replace('_', " ")
        );
        if let Some(m) = &self.message {
            let _ = writeln!(out, "{m}");
        }
        if let Some(at) = &self.resumed_at {
            let _ = writeln!(
                out,
                "resumed at {at}: {} step(s) done before were not run again",
                self.done_before_resume.len()
            );
        }
        if !self.steps.is_empty() {
            let _ = writeln!(out, "\nsteps:");
            // `interrupted` (a sibling of a failed step, --jobs) is wider.
            let width = self
                .steps
                .iter()
                .map(|s| s.status.len())
                .max()
                .unwrap_or(0)
                .max(9);
            for s in &self.steps {
                let _ = writeln!(
                    out,
                    "  {:<width$} {:<8} {:<28} {:>9}{}",
                    s.status,
                    s.kind,
                    s.name,
                    if s.status == "not_run" {
                        String::new()
                    } else {
                        crate::units::seconds(s.seconds)
                    },
                    if self.done_before_resume.contains(&s.name) {
                        "  (before the resume)"
                    } else {
                        ""
                    }
                );
            }
        }
        for b in &self.backups {
            let _ = writeln!(
                out,
                "backup {}: {} of `{}` -> {} ({}, fingerprint {}, {} MB){}",
                b.step,
                b.method,
                b.database,
                b.copy,
                crate::units::seconds(b.seconds),
                crate::units::seconds(b.fingerprint_seconds),
                b.bytes / 1_000_000,
                match b.state.as_str() {
                    "kept" => ", kept",
                    "dropped" => ", dropped after success",
                    "restored" => ", restored",
                    _ => "",
                }
            );
            if let Some(program) = &b.program {
                let _ = writeln!(out, "  dumped with {program}");
            }
            for p in &b.paths {
                let _ = writeln!(out, "  with files {}", p.display());
            }
        }
        if let Some(failed) = self.steps.iter().find(|s| s.status == "failed") {
            let _ = writeln!(
                out,
                "\nstep `{}` failed: {}",
                failed.name,
                failed.error.as_deref().unwrap_or("?")
            );
            if let Some(line) = &failed.first_error {
                let _ = writeln!(out, "its first error line:\n  | {line}");
            }
            if !failed.last_lines.is_empty() {
                let _ = writeln!(out, "its last lines of output:");
                for line in &failed.last_lines {
                    let _ = writeln!(out, "  | {line}");
                }
            }
            if let Some(log) = &failed.log {
                let _ = writeln!(out, "full log: {}", log.display());
            }
        }
        if let Some(r) = &self.rollback {
            let _ = writeln!(
                out,
                "\nrollback: restored {}; blocking {}, terminating {}, renaming {}{}{}; proof {}: {}",
                if r.restored.is_empty() {
                    "nothing (no backup had been taken)".into()
                } else {
                    r.restored.join(", ")
                },
                crate::units::seconds(r.blocking_s),
                crate::units::seconds(r.terminating_s),
                crate::units::seconds(r.renaming_s),
                if r.loading_s > 0.0 {
                    format!(", pg_restore {}", crate::units::seconds(r.loading_s))
                } else {
                    String::new()
                },
                if r.paths_s > 0.0 {
                    format!(", files {}", crate::units::seconds(r.paths_s))
                } else {
                    String::new()
                },
                crate::units::seconds(r.proof_s),
                if r.proved {
                    "fingerprints equal"
                } else {
                    "FINGERPRINTS DIFFER"
                }
            );
            for d in &r.differences {
                let _ = writeln!(out, "  - {d}");
            }
        }
        if !self.strays.is_empty() {
            let _ = writeln!(out, "\nprocesses the steps left running:");
            for s in &self.strays {
                let _ = writeln!(
                    out,
                    "  {} {}{}: {}",
                    if s.ended { "ended" } else { "NOT ENDED" },
                    s.pid,
                    match (&s.step, s.when.as_str()) {
                        (Some(step), "rollback") =>
                            format!(" (step `{step}`, before the rollback)"),
                        (None, "rollback") => " (before the rollback)".to_string(),
                        (_, "recovery") => " (after its runner died)".to_string(),
                        (Some(step), _) => format!(" (when step `{step}` ended)"),
                        (None, _) => String::new(),
                    },
                    s.command
                );
            }
        }
        for s in &self.on_failure {
            if s.status == "failed" {
                // After a failed run this is the step that was to put the
                // old server back: a person must hear that it did not.
                let _ = writeln!(
                    out,
                    "ON_FAILURE STEP `{}` FAILED: {}",
                    s.name,
                    s.error.as_deref().unwrap_or("no reason given")
                );
                for line in &s.last_lines {
                    let _ = writeln!(out, "  | {line}");
                }
                if let Some(log) = &s.log {
                    let _ = writeln!(out, "  log: {}", log.display());
                }
            } else {
                let _ = writeln!(out, "on_failure {}: {}", s.name, s.status);
            }
        }
        let _ = writeln!(
            out,
            "report: {}",
            self.run_folder.join("report.json").display()
        );
        out
    }
}
