//! Putting a failed run's backups back and proving it: the earliest backup
//! of each database and of each tree is restored, then each is compared
//! with the fingerprint (or file manifest) taken when it was backed up.
//! Shared by a run that fails (`exec::run`) and by `plan recover` for a
//! run whose runner died. It restores what it is given; which backups
//! those are, and what follows, is the caller's.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::db::fingerprint;
use crate::exec::backup::{self, Context, Taken};
use crate::exec::paths::{self, TreeBackup};
use crate::exec::report::RollbackReport;
use crate::plan::BackupMethod;
use crate::quote::quote_ident;

/// What a rollback did, with the new state of each backup copy
/// (`restored`, `dropped`) for the report.
pub struct Rolled {
    pub report: RollbackReport,
    pub states: Vec<(String, &'static str)>,
}

/// Restores the earliest backup of each database and of each tree in
/// `taken` (in the order they were taken), then proves it. Failed copies
/// are dropped after a proof unless `keep_failed`.
pub fn roll_back(ctx: &mut Context<'_>, taken: &[Taken], keep_failed: bool) -> Rolled {
    let mut report = RollbackReport::default();
    let mut states = Vec::new();
    let mut seen_db = BTreeSet::new();
    let mut seen_tree = BTreeSet::new();
    let mut restored_dbs: Vec<&Taken> = Vec::new();
    let mut restored_trees = Vec::new();
    let mut failed_dbs = Vec::new();
    let mut failed_trees = Vec::new();
    let mut times = backup::RestoreTimes::default();
    for t in taken {
        if seen_db.insert(t.database.clone()) {
            match restore_database(ctx, t, &mut times) {
                Ok(failed) => {
                    report.restored.push(format!(
                        "database `{}` from {} {}{}",
                        t.database,
                        t.method.as_str(),
                        t.copy,
                        times
                            .loaded_with
                            .take()
                            .map(|p| format!(" with {p}"))
                            .unwrap_or_default()
                    ));
                    failed_dbs.extend(failed);
                    restored_dbs.push(t);
                    states.push((t.copy.clone(), "restored"));
                }
                Err(e) => {
                    report.error = Some(format!("restoring `{}` from {}: {e}", t.database, t.copy));
                    break;
                }
            }
        }
        let started = Instant::now();
        for tree in &t.trees {
            if seen_tree.insert(tree.original.clone()) {
                match restore_tree(tree, ctx.run_id) {
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
        match backup::fingerprint_now(ctx, &t.database) {
            Ok(now) => report.differences.extend(
                fingerprint::differences(&t.fingerprint, &now)
                    .into_iter()
                    .map(|d| format!("`{}`: {d}", t.database)),
            ),
            Err(e) => {
                report.error = Some(format!(
                    "fingerprinting `{}` after the restore: {e}",
                    t.database
                ));
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
        if !keep_failed {
            for f in &failed_dbs {
                let _ = ctx
                    .maintenance
                    .batch_execute(&format!("drop database if exists {}", quote_ident(f)));
            }
            for f in &failed_trees {
                let _ = paths::remove(f);
            }
            report.failed_copies.clear();
        }
        // Later backups of this failed run are not needed any more unless
        // they are to be kept.
        for t in taken {
            if !restored_dbs.iter().any(|r| r.copy == t.copy) && !t.keep {
                backup::discard_copy(ctx.maintenance, t.method, &t.copy);
                // Their file copies too: without the database copy no
                // listing would show them, and they would stay forever.
                // (A copy that was restored has been renamed away.)
                for tree in &t.trees {
                    let _ = paths::remove(&tree.copy);
                }
                states.push((t.copy.clone(), "dropped"));
            }
        }
    }
    Rolled { report, states }
}

/// Restores one database. A snapshot that no longer exists was renamed
/// into place by an earlier rollback that did not finish (the runner or a
/// recovery died during it): when the target's content equals the
/// backup's fingerprint, it is already restored.
fn restore_database(
    ctx: &mut Context<'_>,
    t: &Taken,
    times: &mut backup::RestoreTimes,
) -> Result<Option<String>, String> {
    let failed = backup::failed_name(&t.database, ctx.run_id);
    if fingerprint::database_props(ctx.maintenance, &failed)
        .map_err(|e| e.to_string())?
        .is_some()
    {
        // An earlier rollback of this run renamed the failed database
        // aside and the backup into place (both in one transaction), then
        // died: finish what it left undone; the proof judges the content.
        backup::finish_restore(ctx, t).map_err(|e| e.to_string())?;
        return Ok(Some(failed));
    }
    if t.method == BackupMethod::Snapshot {
        let present = fingerprint::database_props(ctx.maintenance, &t.copy)
            .map_err(|e| e.to_string())?
            .is_some();
        if !present {
            let now = backup::fingerprint_now(ctx, &t.database).map_err(|e| e.to_string())?;
            let differences = fingerprint::differences(&t.fingerprint, &now);
            if differences.is_empty() {
                return Ok(None);
            }
            return Err(format!(
                "the snapshot `{}` no longer exists, and `{}` is not as it was when it was taken ({})",
                t.copy,
                t.database,
                differences.join("; ")
            ));
        }
    }
    backup::restore(ctx, t, times).map_err(|e| e.to_string())
}

/// Restores one tree, finishing what an earlier rollback of this run left
/// half done (it died between its two renames, or after them): the tree
/// moved aside is then already at its `failed` name; or done (the copy and
/// the failed tree are both gone, and the tree matches the backup).
fn restore_tree(tree: &TreeBackup, run_id: &str) -> Result<Option<PathBuf>, paths::PathError> {
    let failed = paths::copy_path(&tree.original, run_id, "failed");
    let exists = |p: &Path| std::fs::symlink_metadata(p).is_ok();
    if !exists(&failed) && !exists(&tree.copy) {
        // An earlier rollback of this run put the copy back and dropped the
        // failed tree, then its runner died before it said so: the tree is
        // already restored when it matches the backup's manifest. Restoring
        // again would move the live, restored tree aside.
        return match paths::manifest(&tree.original) {
            Ok(now) if paths::differences(&tree.manifest, &now).is_empty() => Ok(None),
            _ => Err(paths::PathError::Gone {
                copy: tree.copy.clone(),
                original: tree.original.clone(),
            }),
        };
    }
    if !exists(&failed) || exists(&tree.original) && exists(&tree.copy) {
        return paths::restore(tree, run_id);
    }
    if tree.existed && exists(&tree.copy) {
        std::fs::rename(&tree.copy, &tree.original).map_err(|source| paths::PathError::Rename {
            from: tree.copy.clone(),
            to: tree.original.clone(),
            source,
        })?;
    }
    Ok(Some(failed))
}
