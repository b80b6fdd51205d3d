//! What a rehearsal left on record (its row in plan_runner.runs, its
//! `rehearsal.json`), as `plan status` and `plan apply` show it, and
//! what identifies the plan (or chain) it rehearsed.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use crate::commands::{UsageError, eprint};
use crate::db::connect::Connector;
use crate::db::runs;
use crate::exec::run::Options;

/// The SHA-256 of a plan file, as its runs record it.
pub fn file_sha256(path: &Path) -> Result<String, UsageError> {
    let bytes = std::fs::read(path).map_err(|source| UsageError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(hex::encode(Sha256::digest(&bytes)))
}

/// What identifies a chain for its rehearsals: its plans' contents and
/// the release it goes to.
pub fn chain_identity(files: &[PathBuf], to: &crate::version::Version) -> String {
    let mut hasher = Sha256::new();
    let mut shas: Vec<String> = files
        .iter()
        .map(|f| file_sha256(f).unwrap_or_default())
        .collect();
    shas.sort();
    for sha in shas {
        hasher.update(sha.as_bytes());
        hasher.update(b"\n");
    }
    hasher.update(format!("to {to}").as_bytes());
    hex::encode(hasher.finalize())
}

/// Before an apply: the last rehearsal of the same plan (or chain) on
/// the same target, in one line. Nothing when none is recorded or the
/// record cannot be read (the apply goes on).
pub fn tell_last(opts: &Options, plan_sha256: &str) {
    if let Some(line) = last_line(
        &opts.connector,
        &opts.maintenance_db,
        &opts.database,
        Some(plan_sha256),
    ) {
        eprint(&format!("{line}\n"));
    }
}

/// `last rehearsal of this plan: passed 3 days ago (2026-12-03T10:00:00.000Z) in
/// 41 min 12 s; window 38 min 02 s (with a rollback 39 min 30 s) [run ...]`.
pub fn last_line(
    connector: &Connector,
    maintenance_db: &str,
    database: &str,
    plan_sha256: Option<&str>,
) -> Option<String> {
    let mut maintenance = connector.connect(maintenance_db).ok()?;
    let row = runs::last_rehearsal(&mut maintenance, database, plan_sha256).ok()??;
    Some(describe_row(&row, plan_sha256.is_some()))
}

/// A rehearsal's row, with its report's window when its folder is here.
pub fn describe_row(row: &runs::RunRow, same_plan: bool) -> String {
    let outcome = row.state.strip_prefix("rehearsal_").unwrap_or(&row.state);
    let ago = humantime::parse_rfc3339(&row.started_at)
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .map(|d| match d.as_secs() / 86_400 {
            0 => format!(
                " {} ago",
                crate::units::duration(Duration::from_secs(d.as_secs()))
            ),
            1 => " 1 day ago".into(),
            days => format!(" {days} days ago"),
        })
        .unwrap_or_default();
    let took = match (
        row.ended_at
            .as_deref()
            .and_then(|e| humantime::parse_rfc3339(e).ok()),
        humantime::parse_rfc3339(&row.started_at).ok(),
    ) {
        (Some(end), Some(start)) => end
            .duration_since(start)
            .map(|d| format!(" in {}", crate::units::seconds(d.as_secs_f64())))
            .unwrap_or_default(),
        _ => String::new(),
    };
    let window = row
        .run_folder
        .as_deref()
        .and_then(|f| std::fs::read(Path::new(f).join("rehearsal.json")).ok())
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| {
            let w = v.get("window")?;
            let seconds = w.get("seconds")?.as_f64()?;
            let rollback = w.get("rollback_seconds").and_then(|r| r.as_f64());
            Some(match rollback {
                Some(r) => format!(
                    "; window {} (with a rollback {})",
                    crate::units::seconds(seconds),
                    crate::units::seconds(seconds + r)
                ),
                None => format!("; window {}", crate::units::seconds(seconds)),
            })
        })
        .unwrap_or_default();
    format!(
        "last rehearsal{}: {outcome}{ago} ({}){took}{window} [run {}]",
        if same_plan { " of this plan" } else { "" },
        row.started_at,
        row.run_id
    )
}
