//! `plan status`: what plan-runner knows about one database, read only:
//! the release its history records, its last runs, runs that never ended
//! (from `plan_runner.runs` in the maintenance database, with whether the
//! lock is still held), and the backups kept of it.

use std::fmt::Write as _;

use serde::Serialize;

use crate::cli::{OutputFormat, StatusArgs};
use crate::commands::backups::{self, Kept};
use crate::commands::{UsageError, connect, print, resolve_target};
use crate::db::{history, lock, runs};
use crate::exec::sql::describe_error;
use crate::exit::Ending;

/// How many runs of the history are shown.
const LAST_RUNS: i64 = 10;

#[derive(Serialize)]
struct Run {
    #[serde(flatten)]
    entry: history::Entry,
    /// From start to end.
    seconds: Option<f64>,
}

#[derive(Serialize)]
struct Unfinished {
    #[serde(flatten)]
    run: runs::RunRow,
    /// Whether a session still holds the target's lock: the run is going
    /// on. When not, its runner died and its backups are what is left.
    lock_held: bool,
    /// `plan-runner/<run id>` of the lock's holder, when held.
    lock_holder: Option<String>,
}

#[derive(Serialize)]
struct Document {
    format_version: u32,
    target: String,
    database: String,
    /// The release the last successful run recorded; null with no history.
    release: Option<String>,
    /// Newest first.
    runs: Vec<Run>,
    unfinished: Vec<Unfinished>,
    /// Newest first.
    backups: Vec<Kept>,
    /// The last rehearsal of the database that ended (`plan rehearse`).
    last_rehearsal: Option<runs::RunRow>,
}

pub fn run(args: &StatusArgs) -> Result<Ending, UsageError> {
    if let Some(selection) = args.target.fleet() {
        return crate::commands::fleet_status::run(args, selection);
    }
    let resolved = resolve_target(&args.target)?;
    let state_dir = crate::commands::state_dir(args.state_dir.as_deref());
    let database = resolved.target.database.clone();
    let failed = |what: &str| {
        let what = what.to_string();
        move |e: postgres::Error| UsageError::Database {
            what,
            detail: describe_error(&e),
        }
    };
    let mut client = connect(&resolved, &database)?;
    let release = history::recorded_release(&mut client).map_err(failed("read the history"))?;
    let last = history::last(&mut client, LAST_RUNS).map_err(failed("read the history"))?;
    drop(client);
    let mut maintenance = connect(&resolved, &resolved.maintenance_db)?;
    let holder = lock::holder(&mut maintenance, &database).map_err(failed("read the lock"))?;
    let unfinished = runs::unfinished(&mut maintenance, &database)
        .map_err(failed("read plan_runner.runs"))?
        .into_iter()
        .map(|run| {
            let application = format!("plan-runner/{}", run.run_id);
            let lock_holder = holder.as_ref().map(|h| h.application.clone());
            Unfinished {
                lock_held: lock_holder.as_deref() == Some(application.as_str()),
                lock_holder,
                run,
            }
        })
        .collect();
    let kept = backups::list(&mut maintenance, &resolved, &state_dir)
        .map_err(failed("list the kept backups"))?;
    let last_rehearsal = runs::last_rehearsal(&mut maintenance, &database, None)
        .map_err(failed("read plan_runner.runs"))?;
    let doc = Document {
        format_version: 1,
        target: crate::commands::describe(&resolved),
        database,
        release,
        runs: last
            .into_iter()
            .map(|entry| Run {
                seconds: duration(&entry.started_at, &entry.ended_at),
                entry,
            })
            .collect(),
        unfinished,
        backups: kept,
        last_rehearsal,
    };
    match args.format {
        OutputFormat::Json => {
            let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
            text.push('\n');
            print(&text);
        }
        OutputFormat::Human => print(&human(&doc)),
    }
    Ok(Ending::checked(false))
}

fn duration(start: &str, end: &str) -> Option<f64> {
    let start = humantime::parse_rfc3339(start).ok()?;
    let end = humantime::parse_rfc3339(end).ok()?;
    Some(end.duration_since(start).ok()?.as_secs_f64())
}

/// `2024-05-01T12:34:56.789Z` -> `2024-05-01 12:34:56Z`.
fn short_time(t: &str) -> String {
    match humantime::parse_rfc3339(t) {
        Ok(time) => humantime::format_rfc3339_seconds(time)
            .to_string()
            .replacen('T', " ", 1),
        Err(_) => t.to_string(),
    }
}

fn seconds(s: Option<f64>) -> String {
    s.map_or_else(|| "?".into(), crate::units::seconds)
}

fn human(doc: &Document) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "target: {}", doc.target);
    match &doc.release {
        Some(release) => {
            let _ = writeln!(out, "release: {release} (recorded by plan-runner)");
        }
        None => {
            let _ = writeln!(
                out,
                "release: unknown: no plan-runner history (no plan has been applied here yet)"
            );
            let _ = writeln!(
                out,
                "  `plan apply` will read it with the plan's release_query, or take --assume-release"
            );
        }
    }
    if let Some(row) = &doc.last_rehearsal {
        let _ = writeln!(
            out,
            "{} ({})",
            crate::commands::rehearsal_record::describe_row(row, false),
            row.plan
        );
    }

    out.push('\n');
    if doc.runs.is_empty() {
        let _ = writeln!(out, "runs: none recorded");
    } else {
        let _ = writeln!(out, "last runs, newest first:");
        let plan_width = doc
            .runs
            .iter()
            .map(|r| r.entry.plan.chars().count())
            .max()
            .unwrap_or(0)
            .clamp(4, 40);
        let _ = writeln!(
            out,
            "  {:<16}  {:<plan_width$}  {:<14}  {:<15}  {:<20}  took",
            "run", "plan", "from -> to", "outcome", "started"
        );
        for r in &doc.runs {
            let e = &r.entry;
            let _ = writeln!(
                out,
                "  {:<16}  {:<plan_width$}  {:<14}  {:<15}  {:<20}  {}",
                e.run_id,
                e.plan,
                format!("{} -> {}", e.from_release, e.to_release),
                e.outcome.replace('_', " "),
                short_time(&e.started_at),
                seconds(r.seconds),
            );
        }
        if let Some(last) = doc.runs.first() {
            last_run_changes(&mut out, &last.entry);
        }
    }

    out.push('\n');
    if doc.unfinished.is_empty() {
        let _ = writeln!(out, "unfinished runs: none");
    } else {
        let _ = writeln!(out, "unfinished runs:");
        for u in &doc.unfinished {
            let r = &u.run;
            let _ = writeln!(
                out,
                "  run {}: plan {}, on host {} (pid {}), started {}",
                r.run_id,
                r.plan,
                r.host,
                r.pid,
                short_time(&r.started_at)
            );
            let _ = writeln!(
                out,
                "    {}",
                if u.lock_held {
                    "running now: it holds the target's lock".to_string()
                } else {
                    match &u.lock_holder {
                        Some(other) => format!(
                            "not holding the lock ({other} holds it): its runner has died; its backups are kept"
                        ),
                        None => "its runner has died (the lock is free): the database may be half-migrated; its backups are kept (docs/apply.md)".to_string(),
                    }
                }
            );
        }
    }

    out.push('\n');
    let kept: Vec<&Kept> = doc.backups.iter().collect();
    out.push_str(&backups::human_list(&kept, &format!("`{}`", doc.database)));
    out
}

/// The revision the newest run deployed and the installed modules whose
/// version it changed, as the history recorded them.
fn last_run_changes(out: &mut String, e: &history::Entry) {
    if let Some(revision) = &e.revision {
        let _ = writeln!(out, "  revision of run {}: {revision}", e.run_id);
    }
    let changed = e.modules.as_array().map(Vec::as_slice).unwrap_or_default();
    if changed.is_empty() {
        return;
    }
    let _ = writeln!(out, "  modules whose version run {} changed:", e.run_id);
    let side = |v: &serde_json::Value| v.as_str().unwrap_or("not installed").to_string();
    let width = changed
        .iter()
        .map(|m| m["name"].as_str().unwrap_or("").chars().count())
        .max()
        .unwrap_or(0)
        .min(40);
    for m in changed {
        let _ = writeln!(
            out,
            "    {:<width$}  {} -> {}",
            m["name"].as_str().unwrap_or("?"),
            side(&m["from"]),
            side(&m["to"]),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::{duration, seconds, short_time};

    #[test]
    fn a_run_lasts_from_start_to_end() {
        let s = duration("2024-05-01T12:00:00.000Z", "2024-05-01T12:01:30.500Z");
        assert_eq!(s, Some(90.5));
        assert_eq!(duration("yesterday", "2024-05-01T12:01:30.500Z"), None);
    }

    #[test]
    fn times_and_durations_read_short() {
        assert_eq!(
            short_time("2024-05-01T12:34:56.789Z"),
            "2024-05-01 12:34:56Z"
        );
        assert_eq!(seconds(Some(3.25)), "3.2 s");
        assert_eq!(seconds(Some(95.0)), "1 min 35 s");
        assert_eq!(seconds(Some(7300.0)), "2 h 01 min");
        assert_eq!(seconds(None), "?");
    }
}
