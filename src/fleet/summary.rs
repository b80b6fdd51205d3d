//! The end of a fleet run: one row per selected target (outcome, from,
//! to, duration, run id, where its report is), the totals, and the
//! fleet's ending. Printed as a table for people and as one JSON document
//! for tools (`--format json`), and written as `summary.json` into the
//! fleet's folder.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::exit::{self, Ending, Fleet, Member, Outcome};
use crate::fleet::{Options, Selected};

/// Every outcome a report may hold, to read one back by its name.
const OUTCOMES: [Outcome; 9] = [
    Outcome::Running,
    Outcome::Succeeded,
    Outcome::NothingToDo,
    Outcome::Refused,
    Outcome::Error,
    Outcome::RolledBack,
    Outcome::Stopped,
    Outcome::RollbackFailed,
    Outcome::Recovered,
];

/// One target's row.
#[derive(Clone, Debug, Serialize)]
pub struct TargetSummary {
    pub name: String,
    /// `host:port`.
    pub server: String,
    /// The report's outcome (`succeeded`, `nothing_to_do`, `rolled_back`,
    /// `refused`, `error`, `rollback_failed`, `stopped`...), `not_started`
    /// (after `--max-failures` or a signal), or `error` for a run that
    /// left no report (its `cause` says why).
    pub outcome: String,
    /// Whether the fleet counts it as `done`, `failed`, `refused`,
    /// `needs_person` or `not_started`.
    pub verdict: &'static str,
    pub from: Option<String>,
    pub to: Option<String>,
    /// The run's own start and end (its report's), RFC 3339.
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    pub seconds: Option<f64>,
    pub run_id: Option<String>,
    pub report: Option<PathBuf>,
    /// The child's output.
    pub log: Option<PathBuf>,
    pub exit_code: Option<i32>,
    /// The report's message, or the last lines the run printed.
    pub cause: Option<String>,
    #[serde(skip)]
    member: Member,
}

/// The whole fleet run.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub format_version: u32,
    pub fleet_id: String,
    pub plan: String,
    pub inventory: PathBuf,
    /// The folder with each target's output and this summary.
    pub folder: PathBuf,
    pub started_at: String,
    pub ended_at: String,
    pub seconds: f64,
    pub ending: Fleet,
    pub interrupted: bool,
    /// Nothing was changed: each target only said what it would do.
    pub dry_run: bool,
    pub exit_code: u8,
    pub totals: Totals,
    pub targets: Vec<TargetSummary>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Totals {
    pub selected: usize,
    pub done: usize,
    pub failed: usize,
    pub refused: usize,
    pub needs_person: usize,
    pub not_started: usize,
}

fn verdict(member: Member) -> &'static str {
    match member {
        Member::Done => "done",
        Member::Failed => "failed",
        Member::Refused => "refused",
        Member::NeedsPerson => "needs_person",
        Member::NotStarted => "not_started",
    }
}

fn text(value: &Value, key: &str) -> Option<String> {
    value.get(key).and_then(Value::as_str).map(str::to_string)
}

impl TargetSummary {
    pub fn member(&self) -> Member {
        self.member
    }

    fn bare(member: &Selected, outcome: &str, kind: Member) -> TargetSummary {
        TargetSummary {
            name: member.name.clone(),
            server: member.server.clone(),
            outcome: outcome.to_string(),
            verdict: verdict(kind),
            from: None,
            to: None,
            started_at: None,
            ended_at: None,
            seconds: None,
            run_id: None,
            report: None,
            log: None,
            exit_code: None,
            cause: None,
            member: kind,
        }
    }

    /// A target no run was started for (`--max-failures`, a signal).
    pub fn not_started(member: &Selected) -> TargetSummary {
        TargetSummary::bare(member, "not_started", Member::NotStarted)
    }

    /// A target whose run could not be started.
    pub fn not_run(
        member: &Selected,
        outcome: &str,
        log: Option<PathBuf>,
        cause: String,
    ) -> TargetSummary {
        TargetSummary {
            log,
            cause: Some(cause),
            ..TargetSummary::bare(member, outcome, Member::Failed)
        }
    }

    /// A target whose child ended with `code` (or was killed by `signal`),
    /// leaving `report` or not.
    #[allow(clippy::too_many_arguments)]
    pub fn ended(
        member: &Selected,
        run_id: &str,
        started_at: &str,
        seconds: f64,
        code: Option<i32>,
        signal: Option<i32>,
        report: Option<(Value, PathBuf)>,
        log: PathBuf,
        cause: impl FnOnce() -> Option<String>,
    ) -> TargetSummary {
        let mut row = TargetSummary::bare(member, "error", Member::Failed);
        row.seconds = Some(seconds);
        row.exit_code = code;
        row.log = Some(log);
        match report {
            Some((report, path)) => {
                let outcome = text(&report, "outcome").unwrap_or_default();
                let kind = OUTCOMES
                    .iter()
                    .find(|o| o.as_str() == outcome)
                    .map_or(Member::NeedsPerson, |o| Member::of(*o));
                row.member = kind;
                row.verdict = verdict(kind);
                row.outcome = outcome;
                row.from = text(&report, "from");
                row.to = text(&report, "to");
                row.started_at = text(&report, "started_at");
                row.ended_at = text(&report, "ended_at");
                row.run_id = text(&report, "run_id");
                row.report = Some(path);
                row.cause = text(&report, "message");
                if row.cause.is_none() && kind != Member::Done {
                    row.cause = cause();
                }
            }
            None => {
                // No report: the run stopped before its run folder (a bad
                // target, a plan that does not lint), or its runner died.
                let kind = match (code, signal) {
                    (Some(0), _) => Member::Done,
                    (Some(4), _) => Member::Refused,
                    (Some(1 | 2), _) => Member::Failed,
                    _ => Member::NeedsPerson,
                };
                row.member = kind;
                row.verdict = verdict(kind);
                row.outcome = match kind {
                    Member::Done => "succeeded",
                    Member::Refused => "refused",
                    _ => "error",
                }
                .into();
                row.started_at = Some(started_at.to_string());
                row.cause = match signal {
                    Some(signal) => Some(format!(
                        "its runner was killed by signal {signal}: see `plan status --target {}`",
                        member.name
                    )),
                    None => cause(),
                };
                if kind == Member::NeedsPerson {
                    row.run_id = Some(run_id.to_string());
                }
            }
        }
        row
    }

    /// A dry run leaves no report, and its exit says what it found: 0
    /// when the run would start, 4 when it would be refused (the log
    /// holds its WOULD REFUSE lines). Anything else stays an error.
    pub fn dry_run(mut self) -> TargetSummary {
        if self.report.is_none() {
            match self.member {
                Member::Done => self.outcome = "would_run".into(),
                Member::Refused => self.outcome = "would_refuse".into(),
                _ => {}
            }
        }
        self
    }
}

impl Summary {
    pub fn new(
        opts: &Options,
        started_at: String,
        elapsed: Duration,
        ending: Fleet,
        interrupted: bool,
        targets: Vec<TargetSummary>,
    ) -> Summary {
        let mut totals = Totals {
            selected: targets.len(),
            ..Totals::default()
        };
        for target in &targets {
            match target.member {
                Member::Done => totals.done += 1,
                Member::Failed => totals.failed += 1,
                Member::Refused => totals.refused += 1,
                Member::NeedsPerson => totals.needs_person += 1,
                Member::NotStarted => totals.not_started += 1,
            }
        }
        Summary {
            format_version: 1,
            fleet_id: opts.fleet_id.clone(),
            plan: opts.plan.clone(),
            inventory: opts.inventory.clone(),
            folder: opts.folder.clone(),
            started_at,
            ended_at: crate::units::now_millis(),
            seconds: elapsed.as_secs_f64(),
            ending,
            interrupted,
            dry_run: opts.dry_run,
            exit_code: exit::status(Ending::Fleet(ending)).code(),
            totals,
            targets,
        }
    }

    pub fn ending(&self) -> Ending {
        Ending::Fleet(self.ending)
    }

    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }

    /// Writes `summary.json` (0600) into the fleet's folder; a failure
    /// only costs the copy on disk (the summary is printed as well).
    pub fn write(&self, folder: &Path) {
        let _ = crate::private::write(&folder.join("summary.json"), self.json().as_bytes());
    }

    /// The table for people.
    pub fn human(&self) -> String {
        let header = [
            "target", "outcome", "from", "to", "time", "run id", "report",
        ];
        let rows: Vec<[String; 7]> = self
            .targets
            .iter()
            .map(|t| {
                [
                    t.name.clone(),
                    t.outcome.replace('_', " "),
                    t.from.clone().unwrap_or_else(|| "-".into()),
                    t.to.clone().unwrap_or_else(|| "-".into()),
                    t.seconds.map_or_else(|| "-".into(), crate::units::seconds),
                    t.run_id.clone().unwrap_or_else(|| "-".into()),
                    t.report
                        .as_ref()
                        .or(t.log.as_ref())
                        .map_or_else(|| "-".into(), |p| p.display().to_string()),
                ]
            })
            .collect();
        let mut widths = header.map(str::len);
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let line = |out: &mut String, cells: &[String]| {
            let mut text = String::new();
            for (i, cell) in cells.iter().enumerate() {
                if i + 1 == cells.len() {
                    text.push_str(cell);
                } else {
                    let _ = write!(text, "{cell:<width$}  ", width = widths[i]);
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        };
        let _ = writeln!(
            out,
            "\nfleet {} of \"{}\": {} target(s) in {}",
            self.fleet_id,
            self.plan,
            self.totals.selected,
            crate::units::seconds(self.seconds)
        );
        line(&mut out, &header.map(str::to_string));
        for row in &rows {
            line(&mut out, row);
        }
        let causes: Vec<&TargetSummary> = self
            .targets
            .iter()
            .filter(|t| t.member != Member::Done && t.cause.is_some())
            .collect();
        if !causes.is_empty() {
            out.push('\n');
            for t in causes {
                let _ = writeln!(
                    out,
                    "{} ({}): {}",
                    t.name,
                    t.verdict.replace('_', " "),
                    t.cause.as_deref().unwrap_or_default()
                );
            }
        }
        let t = &self.totals;
        let _ = writeln!(
            out,
            "\n{} done, {} failed, {} refused, {} need a person, {} not started",
            t.done, t.failed, t.refused, t.needs_person, t.not_started
        );
        let ending = if self.dry_run {
            dry_ending_text(self.ending)
        } else {
            ending_text(self.ending)
        };
        let _ = writeln!(out, "exit {}: {}", self.exit_code, ending);
        let _ = writeln!(
            out,
            "summary: {}",
            self.folder.join("summary.json").display()
        );
        out
    }
}

/// What the fleet's exit status says, in the summary's words.
fn ending_text(ending: Fleet) -> &'static str {
    match ending {
        Fleet::AllDone => "every target is at `to` (succeeded, or nothing to do)",
        Fleet::SomeFailed => {
            "some targets are not at `to`; each failed one was rolled back and proved, or \
             nothing was changed on it (refused, unreachable, not started): run the fleet \
             again to retry them"
        }
        Fleet::NeedsPerson => {
            "a target needs a person: its rollback was not proved or its run did not end \
             (see its report; `plan recover --target NAME`)"
        }
        Fleet::AllRefused => "every target was refused, nothing was changed",
        Fleet::Interrupted => {
            "interrupted: no target started after the signal, and every running one was \
             rolled back and proved"
        }
    }
}

/// The same for `--dry-run`, where no target was touched.
fn dry_ending_text(ending: Fleet) -> &'static str {
    match ending {
        Fleet::AllDone => "dry run: every target would run; nothing was changed",
        Fleet::AllRefused => "dry run: every target would be refused; nothing was changed",
        Fleet::Interrupted => "dry run interrupted; nothing was changed",
        Fleet::SomeFailed | Fleet::NeedsPerson => {
            "dry run: some targets would be refused or could not be checked (see each one's \
             log); nothing was changed"
        }
    }
}
