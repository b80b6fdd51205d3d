//! `plan backups`: the backups kept of one database, newest first: snapshot
//! databases on the server (found by their comment, `db::kept`) and dump
//! folders in the state dir's run folders (`runs/<id>/dump-<step>/`, with
//! `backup-<step>.json` beside it), each with the copies of its `paths`.
//! `--prune --keep N` removes all but the newest N, and never a backup of a
//! run that `plan_runner.runs` says is still running (or whose runner died:
//! its backups are what a recovery needs). `plan status` lists the same.
//!
//! A database's comment or a `plan_runner.runs` row can be written by
//! anyone who may write to the server: pruning removes only what a run
//! folder of the state folder records (`backup-<step>.json`), and only once
//! the state folder, its run folders and those records are the user's
//! alone (`private::check`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use postgres::Client;
use serde::Serialize;

use crate::cli::{BackupsArgs, OutputFormat};
use crate::commands::{UsageError, connect, print, resolve_target};
use crate::db::{kept, runs};
use crate::exec::backup::Taken;
use crate::exec::paths;
use crate::exit::Ending;
use crate::plan::BackupMethod;
use crate::target::ResolvedTarget;

/// A copy of one of a backup's `paths`.
#[derive(Clone, Debug, Serialize)]
pub struct KeptFiles {
    pub path: PathBuf,
    /// All files under it counted.
    pub bytes: u64,
}

/// What a kept copy is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Snapshot,
    Dump,
    /// `<db>_failed_<run id>`, kept by `--keep-failed`.
    FailedDatabase,
    /// `.<name>.failed-<run id>`, kept by `--keep-failed`.
    FailedTree,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Snapshot => "snapshot",
            Kind::Dump => "dump",
            Kind::FailedDatabase => "failed database",
            Kind::FailedTree => "failed tree",
        }
    }
}

/// One kept backup, or one failed copy a rolled-back run kept.
#[derive(Clone, Debug, Serialize)]
pub struct Kept {
    pub kind: Kind,
    /// `snapshot` or `dump`; none for a failed copy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<BackupMethod>,
    /// The snapshot or failed database's name, or the dump folder or
    /// failed tree.
    pub name: String,
    /// The database it is a backup of.
    pub database: String,
    pub run_id: Option<String>,
    /// The backup step that took it (from its `backup-<step>.json`).
    pub step: Option<String>,
    pub plan: Option<String>,
    /// RFC 3339, UTC.
    pub taken_at: Option<String>,
    /// Seconds since it was taken (or, for a failed copy, since its run
    /// ended).
    pub age_s: Option<u64>,
    /// The size of the database copy: the snapshot database, or the files
    /// of the dump folder.
    pub bytes: u64,
    /// The copies of the backup's `paths` that still exist.
    pub paths: Vec<KeptFiles>,
    /// The run's state in `plan_runner.runs` (`running`, `succeeded`,
    /// `rolled_back`...), when it has a row there.
    pub run_state: Option<String>,
    /// Its run never ended (`running` with no end): not removable.
    pub in_use: bool,
    /// A run folder of this state folder recorded it as its backup: only
    /// such a backup is ever pruned (a snapshot found by its comment alone
    /// is not).
    pub recorded: bool,
    #[serde(skip)]
    sort_key: Option<SystemTime>,
}

impl Kept {
    /// `12 MB, run 2405..., plan "x", taken 2024-...`.
    fn describe(&self) -> String {
        let mut out = format!("{} {}", self.kind.as_str(), self.name);
        let _ = write!(out, " ({}", crate::units::bytes(self.bytes));
        if let Some(age) = self.age_s {
            let _ = write!(
                out,
                ", {} old",
                crate::units::duration(std::time::Duration::from_secs(age))
            );
        }
        if let Some(run) = &self.run_id {
            let _ = write!(out, ", run {run}");
        }
        if let Some(plan) = &self.plan {
            let _ = write!(out, ", plan \"{plan}\"");
        }
        if let Some(step) = &self.step {
            let _ = write!(out, ", step {step}");
        }
        if let Some(at) = &self.taken_at {
            let _ = write!(out, ", taken {at}");
        }
        out.push(')');
        out
    }

    /// The lines `plan status` and `plan backups` print for it.
    pub fn human(&self) -> String {
        let mut out = format!("  {}", self.describe());
        if self.in_use {
            out.push_str(" [its run is unfinished]");
        }
        out.push('\n');
        for p in &self.paths {
            let _ = writeln!(
                out,
                "    with files {} ({})",
                p.path.display(),
                crate::units::bytes(p.bytes)
            );
        }
        out
    }
}

/// The backups kept of the target's database, newest first.
pub fn list(
    maintenance: &mut Client,
    resolved: &ResolvedTarget,
    state_dir: &Path,
) -> Result<Vec<Kept>, postgres::Error> {
    let database = &resolved.target.database;
    let records = records(state_dir);
    let mut found = Vec::new();
    for snap in kept::list(maintenance, database)? {
        let label = kept::parse_label(&snap.label);
        let record = records.iter().find(|r| {
            r.taken.method == BackupMethod::Snapshot
                && r.taken.copy == snap.name
                && &r.taken.database == database
        });
        let taken_at = label.taken.clone();
        let mut kept = Kept {
            kind: Kind::Snapshot,
            method: Some(BackupMethod::Snapshot),
            name: snap.name.clone(),
            database: database.clone(),
            run_id: record
                .map(|r| r.run_id.clone())
                .or_else(|| label.run_id.clone()),
            step: record.map(|r| r.taken.step.clone()),
            plan: label.plan.clone(),
            sort_key: taken_at
                .as_deref()
                .and_then(|t| humantime::parse_rfc3339(t).ok())
                .or(record.and_then(|r| r.written)),
            taken_at,
            bytes: u64::try_from(snap.bytes).unwrap_or(0),
            age_s: None,
            paths: Vec::new(),
            run_state: None,
            in_use: false,
            recorded: record.is_some(),
        };
        if let Some(r) = record {
            add_paths(&mut kept, r);
        }
        found.push(kept);
    }
    let place = format!("{}:{}/", resolved.target.host, resolved.target.port);
    for r in &records {
        if r.taken.method != BackupMethod::Dump || &r.taken.database != database {
            continue;
        }
        // The dump is where the run folder is now, whatever the state dir
        // was called when it was written.
        let folder = r.run_folder.join(format!("dump-{}", r.taken.step));
        if !folder.is_dir() {
            continue;
        }
        let run = runs::get(maintenance, &r.run_id)?;
        let this_server = match &run {
            Some(row) => &row.target == database,
            None => r
                .report_target
                .as_deref()
                .is_some_and(|t| t.contains(&place)),
        };
        if !this_server {
            continue;
        }
        let mut kept = Kept {
            kind: Kind::Dump,
            method: Some(BackupMethod::Dump),
            name: folder.display().to_string(),
            database: database.clone(),
            run_id: Some(r.run_id.clone()),
            step: Some(r.taken.step.clone()),
            plan: r
                .plan
                .clone()
                .or_else(|| run.as_ref().map(|row| row.plan.clone())),
            taken_at: r
                .written
                .map(|t| humantime::format_rfc3339_millis(t).to_string()),
            sort_key: r.written,
            bytes: crate::exec::space::tree_size(&folder).unwrap_or(0),
            age_s: None,
            paths: Vec::new(),
            run_state: None,
            in_use: false,
            recorded: true,
        };
        add_paths(&mut kept, r);
        found.push(kept);
    }
    failed_copies(maintenance, resolved, state_dir, &mut found)?;
    let now = SystemTime::now();
    for k in &mut found {
        k.age_s = k
            .sort_key
            .and_then(|t| now.duration_since(t).ok())
            .map(|d| d.as_secs());
        let row = match &k.run_id {
            Some(run_id) => runs::get(maintenance, run_id)?,
            None => None,
        };
        if let Some(row) = row {
            k.in_use = row.state == "running" && row.ended_at.is_none();
            k.run_state = Some(row.state);
        }
    }
    found.sort_by(|a, b| {
        b.sort_key
            .cmp(&a.sort_key)
            .then_with(|| b.run_id.cmp(&a.run_id))
            .then_with(|| b.name.cmp(&a.name))
    });
    Ok(found)
}

/// The failed copies that rolled-back runs kept (`--keep-failed`) of the
/// target's database and trees, as their run folder's `report.json` lists
/// them (`rollback.failed_copies`), and only those named as a rollback of
/// that run names them: a name on the server alone is never trusted.
fn failed_copies(
    maintenance: &mut Client,
    resolved: &ResolvedTarget,
    state_dir: &Path,
    found: &mut Vec<Kept>,
) -> Result<(), postgres::Error> {
    let database = &resolved.target.database;
    let place = format!("{}:{}/", resolved.target.host, resolved.target.port);
    let Ok(runs) = std::fs::read_dir(state_dir.join("runs")) else {
        return Ok(());
    };
    for run in runs.flatten() {
        let run_id = run.file_name().to_string_lossy().into_owned();
        let file = run.path().join("report.json");
        let Some(report) = std::fs::read(&file)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        else {
            continue;
        };
        let text = |name: &str| report.get(name).and_then(|v| v.as_str());
        if text("database") != Some(database.as_str())
            || !text("target").is_some_and(|t| t.contains(&place))
        {
            continue;
        }
        let copies = report
            .pointer("/rollback/failed_copies")
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str());
        let written = file.metadata().and_then(|m| m.modified()).ok();
        let failed_db = crate::exec::backup::failed_name(database, &run_id);
        for copy in copies {
            let (kind, bytes) = if copy == failed_db {
                let size = maintenance.query_opt(
                    "select pg_database_size(oid) from pg_database where datname = $1",
                    &[&copy],
                )?;
                match size {
                    Some(row) => (
                        Kind::FailedDatabase,
                        u64::try_from(row.get::<_, i64>(0)).unwrap_or(0),
                    ),
                    None => continue,
                }
            } else if is_failed_tree(Path::new(copy), &run_id)
                && std::fs::symlink_metadata(copy).is_ok()
            {
                let size = crate::exec::space::tree_size(Path::new(copy)).unwrap_or(0);
                (Kind::FailedTree, size)
            } else {
                continue;
            };
            found.push(Kept {
                kind,
                method: None,
                name: copy.to_string(),
                database: database.clone(),
                run_id: Some(run_id.clone()),
                step: None,
                plan: text("plan").map(str::to_string),
                taken_at: text("ended_at").map(str::to_string),
                age_s: None,
                bytes,
                paths: Vec::new(),
                run_state: None,
                in_use: false,
                recorded: true,
                sort_key: written,
            });
        }
    }
    Ok(())
}

/// Whether `path` is named as a rollback of run `run_id` names the tree
/// it moved aside (`.<name>.failed-<run id>`, absolute).
fn is_failed_tree(path: &Path, run_id: &str) -> bool {
    path.is_absolute()
        && path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix('.'))
            .and_then(|n| n.strip_suffix(&format!(".failed-{run_id}")))
            .is_some_and(|name| !name.is_empty() && name != "." && !name.contains('/'))
}

fn add_paths(kept: &mut Kept, record: &Record) {
    for tree in &record.taken.trees {
        // A relative copy path was relative to a folder we no longer know.
        if tree.copy.is_absolute()
            && is_copy_of(&tree.copy, &tree.original, &record.run_id)
            && std::fs::symlink_metadata(&tree.copy).is_ok()
        {
            kept.paths.push(KeptFiles {
                bytes: crate::exec::space::tree_size(&tree.copy).unwrap_or(0),
                path: tree.copy.clone(),
            });
        }
    }
}

/// Whether `copy` is named as `paths::back_up` names a copy of `original`
/// in run `run_id` (`.<name>.pr-<run>`, `.<name>.pr2-<run>`...) beside it:
/// pruning removes nothing else, whatever a record says.
fn is_copy_of(copy: &Path, original: &Path, run_id: &str) -> bool {
    let (Some(name), Some(copy_name)) = (original.file_name(), copy.file_name()) else {
        return false;
    };
    let Some(rest) = copy_name
        .to_str()
        .and_then(|c| c.strip_prefix(&format!(".{}.pr", name.to_string_lossy())))
        .and_then(|c| c.strip_suffix(&format!("-{run_id}")))
    else {
        return false;
    };
    copy.parent() == original.parent() && rest.chars().all(|c| c.is_ascii_digit())
}

/// Checks the state folder, its `runs` folder, each run folder and the
/// records in it (`private::check`) before pruning acts on what they say.
fn check_state(state_dir: &Path) -> Result<(), crate::private::Untrusted> {
    if std::fs::symlink_metadata(state_dir).is_err() {
        return Ok(());
    }
    crate::private::check(state_dir)?;
    let runs = state_dir.join("runs");
    let Ok(entries) = std::fs::read_dir(&runs) else {
        return Ok(());
    };
    crate::private::check(&runs)?;
    let mut folders: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    folders.sort();
    for folder in folders {
        crate::private::check(&folder)?;
        let Ok(files) = std::fs::read_dir(&folder) else {
            continue;
        };
        for file in files.flatten() {
            let name = file.file_name().to_string_lossy().into_owned();
            if name.starts_with("backup-") && name.ends_with(".json") || name == "report.json" {
                crate::private::check(&file.path())?;
            }
        }
    }
    Ok(())
}

/// A `backup-<step>.json` found in a run folder.
struct Record {
    run_id: String,
    run_folder: PathBuf,
    taken: Taken,
    /// When the file was written, right after the backup was taken.
    written: Option<SystemTime>,
    /// The run's plan and target, from its `report.json` (written when
    /// the run ends).
    plan: Option<String>,
    report_target: Option<String>,
}

/// Every backup record under `<state dir>/runs/`. Unreadable ones are
/// skipped: a listing must not fail on one damaged run folder.
fn records(state_dir: &Path) -> Vec<Record> {
    let mut out = Vec::new();
    let Ok(runs) = std::fs::read_dir(state_dir.join("runs")) else {
        return out;
    };
    for run in runs.flatten() {
        let run_folder = run.path();
        let run_id = run.file_name().to_string_lossy().into_owned();
        let Ok(files) = std::fs::read_dir(&run_folder) else {
            continue;
        };
        let report: Option<serde_json::Value> = std::fs::read(run_folder.join("report.json"))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok());
        let field = |name: &str| {
            report
                .as_ref()
                .and_then(|r| r.get(name))
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        for file in files.flatten() {
            let name = file.file_name().to_string_lossy().into_owned();
            if !(name.starts_with("backup-") && name.ends_with(".json")) {
                continue;
            }
            let Ok(bytes) = std::fs::read(file.path()) else {
                continue;
            };
            let Ok(taken) = serde_json::from_slice::<Taken>(&bytes) else {
                continue;
            };
            out.push(Record {
                run_id: run_id.clone(),
                run_folder: run_folder.clone(),
                taken,
                written: file.metadata().and_then(|m| m.modified()).ok(),
                plan: field("plan"),
                report_target: field("target"),
            });
        }
    }
    out
}

/// What pruning did to one backup.
#[derive(Clone, Debug, Serialize)]
pub struct Removal {
    #[serde(flatten)]
    pub backup: Kept,
    /// `removed`, `failed`, or left alone: `in_use`, `not_recorded`.
    pub outcome: String,
    pub error: Option<String>,
}

/// Removes every backup after the first `keep` (the list is newest
/// first), except those of unfinished runs and those no run folder
/// records.
fn prune(maintenance: &mut Client, backups: &[Kept], keep: usize) -> Vec<Removal> {
    let mut out = Vec::new();
    for b in backups.iter().skip(keep) {
        let left = if b.in_use {
            Some("in_use")
        } else if !b.recorded {
            Some("not_recorded")
        } else {
            None
        };
        if let Some(outcome) = left {
            out.push(Removal {
                backup: b.clone(),
                outcome: outcome.into(),
                error: None,
            });
            continue;
        }
        let mut errors = Vec::new();
        let removed = match b.kind {
            Kind::Snapshot | Kind::FailedDatabase => kept::drop_snapshot(maintenance, &b.name)
                .map_err(|e| crate::exec::sql::describe_error(&e)),
            Kind::Dump | Kind::FailedTree => {
                paths::remove(Path::new(&b.name)).map_err(|e| e.to_string())
            }
        };
        if let Err(e) = removed {
            errors.push(format!("{}: {e}", b.name));
        }
        // The files go only with their database copy: half a backup is of
        // no use, but a database copy without its files is better than none.
        if errors.is_empty() {
            for p in &b.paths {
                if let Err(e) = paths::remove(&p.path) {
                    errors.push(format!("{}: {e}", p.path.display()));
                }
            }
        }
        out.push(Removal {
            backup: b.clone(),
            outcome: if errors.is_empty() {
                "removed"
            } else {
                "failed"
            }
            .into(),
            error: (!errors.is_empty()).then(|| errors.join("; ")),
        });
    }
    out
}

#[derive(Serialize)]
struct Document<'a> {
    format_version: u32,
    target: String,
    database: &'a str,
    /// What is kept now (after pruning, when --prune was given).
    backups: Vec<&'a Kept>,
    /// With --prune: what was removed, failed, or left alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pruned: Option<&'a [Removal]>,
}

pub fn run(args: &BackupsArgs) -> Result<Ending, UsageError> {
    let resolved = resolve_target(&args.target)?;
    let state_dir = crate::commands::state_dir(args.state_dir.as_deref());
    if args.prune
        && let Err(untrusted) = check_state(&state_dir)
    {
        crate::commands::eprint(&format!("nothing was pruned: {untrusted}\n"));
        return Ok(Ending::run(crate::exit::Outcome::Refused));
    }
    let mut maintenance = connect(&resolved, &resolved.maintenance_db)?;
    let backups =
        list(&mut maintenance, &resolved, &state_dir).map_err(|e| UsageError::Database {
            what: "list the kept backups".into(),
            detail: crate::exec::sql::describe_error(&e),
        })?;
    let pruned = args
        .prune
        .then(|| prune(&mut maintenance, &backups, args.keep.unwrap_or(usize::MAX)));
    let removed: Vec<&str> = pruned
        .iter()
        .flatten()
        .filter(|r| r.outcome == "removed")
        .map(|r| r.backup.name.as_str())
        .collect();
    let remaining: Vec<&Kept> = backups
        .iter()
        .filter(|b| !removed.contains(&b.name.as_str()))
        .collect();
    let target = crate::commands::describe(&resolved);
    let failed = pruned.iter().flatten().any(|r| r.outcome == "failed");
    match args.format {
        OutputFormat::Json => {
            let doc = Document {
                format_version: 1,
                target,
                database: &resolved.target.database,
                backups: remaining,
                pruned: pruned.as_deref(),
            };
            let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
            text.push('\n');
            print(&text);
        }
        OutputFormat::Human => {
            let mut out = String::new();
            if let Some(pruned) = &pruned {
                for r in pruned {
                    match r.outcome.as_str() {
                        "removed" => {
                            let _ = writeln!(out, "removed {}", r.backup.describe());
                            for p in &r.backup.paths {
                                let _ = writeln!(out, "  and files {}", p.path.display());
                            }
                        }
                        "in_use" => {
                            let _ = writeln!(
                                out,
                                "left {}: its run is unfinished (running, or its runner died)",
                                r.backup.describe()
                            );
                        }
                        "not_recorded" => {
                            let _ = writeln!(
                                out,
                                "left {}: no run folder in {} records it (plan removes only the backups its runs recorded)",
                                r.backup.describe(),
                                state_dir.display()
                            );
                        }
                        _ => {
                            let _ = writeln!(
                                out,
                                "could not remove {}: {}",
                                r.backup.describe(),
                                r.error.as_deref().unwrap_or("?")
                            );
                        }
                    }
                }
                if pruned.is_empty() {
                    let _ = writeln!(out, "nothing to remove");
                }
                out.push('\n');
            }
            out.push_str(&human_list(&remaining, &target));
            print(&out);
        }
    }
    Ok(Ending::checked(failed))
}

/// How many copies of a database `plan apply` lets pile up before it
/// says how to prune them: nothing is ever removed unasked (what is old
/// enough to go is the partner's call), but nothing grows unseen either.
pub const HINT_ABOVE: usize = 3;

/// After a run: one line when more than [`HINT_ABOVE`] copies of the
/// target are kept, saying what to run. Best effort: a listing that fails
/// says nothing (the run's own outcome is what matters here).
pub fn hint(resolved: &ResolvedTarget, state_dir: &Path) -> Option<String> {
    let mut maintenance = connect(resolved, &resolved.maintenance_db).ok()?;
    let kept = list(&mut maintenance, resolved, state_dir).ok()?;
    (kept.len() > HINT_ABOVE).then(|| {
        let bytes: u64 = kept
            .iter()
            .map(|k| k.bytes + k.paths.iter().map(|p| p.bytes).sum::<u64>())
            .sum();
        format!(
            "note: {} copies of `{}` are kept ({} in all); `plan backups --prune --keep {HINT_ABOVE}` with this target and state dir removes all but the newest {HINT_ABOVE}\n",
            kept.len(),
            resolved.target.database,
            crate::units::bytes(bytes)
        )
    })
}

/// The kept backups as `plan status` and `plan backups` print them.
pub fn human_list(backups: &[&Kept], target: &str) -> String {
    if backups.is_empty() {
        return format!("no backups kept of {target}\n");
    }
    let mut out = format!("backups kept of {target}, newest first:\n");
    for b in backups {
        out.push_str(&b.human());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_sibling_named_as_back_up_names_it_is_a_copy() {
        let original = Path::new("/srv/filestore/acme");
        let copy = |p: &str| is_copy_of(Path::new(p), original, "2405011200ab12");
        assert!(copy("/srv/filestore/.acme.pr-2405011200ab12"));
        assert!(copy("/srv/filestore/.acme.pr2-2405011200ab12"));
        assert!(!copy("/srv/filestore/acme"));
        assert!(!copy("/srv/filestore/.acme.pr-2405011200ab13"));
        assert!(!copy("/srv/other/.acme.pr-2405011200ab12"));
        assert!(!copy("/srv/filestore/.acme.prx-2405011200ab12"));
        assert!(!copy("/"));
    }

    #[test]
    fn only_a_tree_named_as_a_rollback_names_it_is_a_failed_tree() {
        let run = "2405011200ab12";
        assert!(is_failed_tree(
            Path::new("/srv/.acme.failed-2405011200ab12"),
            run
        ));
        assert!(!is_failed_tree(
            Path::new("srv/.acme.failed-2405011200ab12"),
            run
        ));
        assert!(!is_failed_tree(
            Path::new("/srv/.acme.failed-2405011200ab13"),
            run
        ));
        assert!(!is_failed_tree(
            Path::new("/srv/acme.failed-2405011200ab12"),
            run
        ));
        assert!(!is_failed_tree(
            Path::new("/srv/..failed-2405011200ab12"),
            run
        ));
        assert!(!is_failed_tree(Path::new("/srv/acme"), run));
    }
}
