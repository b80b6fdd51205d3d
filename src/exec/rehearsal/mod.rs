//! A rehearsal's copy (`plan rehearse`): the target's database copied
//! under a name of its own (a snapshot, or a dump restored), its trees
//! copied beside the originals or into the rehearsal's folder, and
//! everything dropped at the end, whatever happened. What was copied is
//! written to `copies.json` before each copy is made, so that `plan
//! recover` drops what a killed rehearsal left.

pub mod dead;
pub mod make;
pub mod point;
pub mod report;

use std::path::{Path, PathBuf};
use std::time::Instant;

use postgres::Client;
use serde::{Deserialize, Serialize};

use crate::db::fingerprint;
use crate::exec::backup::{self, BackupError, Context};
use crate::exec::journal::{self, Story};
use crate::exec::paths::{self, PathError};
use crate::plan::BackupMethod;
use crate::quote::{fit_name, quote_ident, quote_literal};

/// The record of a rehearsal's copies, in its folder.
pub const FILE_NAME: &str = "copies.json";

/// Where the copies are (and, once made, what they cost).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Copies {
    pub run_id: String,
    /// The target's database, never changed.
    pub database: String,
    /// The copy's name on the same server.
    pub copy: String,
    /// `snapshot`, or `dump` (`--from-dump`).
    pub method: String,
    pub trees: Vec<Tree>,
    /// The run on the copy: its id and folder (its journal names the
    /// backups it took of the copy).
    pub inner_run_id: String,
    pub inner_folder: PathBuf,
    /// The plan's folder, and the copy of it the rehearsal runs: a path
    /// the plan gives relative to its folder names the copy's.
    pub plan_folder: PathBuf,
    pub plan_copy: PathBuf,
}

/// One tree the plan backs up, and where the rehearsal copied it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Tree {
    pub original: PathBuf,
    pub copy: PathBuf,
    /// The plan names it without `${db}`: its copy is in the rehearsal's
    /// folder, and the steps' words that name it are pointed there.
    pub literal: bool,
}

/// How the copy of the database is made.
pub enum Source<'a> {
    /// `CREATE DATABASE ... TEMPLATE` of the target: no other session may
    /// be connected to it for that moment.
    Snapshot,
    /// `pg_restore` of this dump into a new database.
    Dump(&'a Path),
}

/// What making the copies cost.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Made {
    pub database_seconds: f64,
    pub database_bytes: i64,
    pub trees_seconds: f64,
    pub trees_bytes: u64,
}

/// The name of the copy of `database` for rehearsal `run_id`.
pub fn copy_name(database: &str, run_id: &str) -> String {
    fit_name(database, &format!("_rh_{run_id}"))
}

impl Copies {
    pub fn write(&self, folder: &Path) -> std::io::Result<()> {
        crate::private::write(
            &folder.join(FILE_NAME),
            &serde_json::to_vec_pretty(self).unwrap_or_default(),
        )
    }

    /// The record in `folder`; `None` when there is none or it does not
    /// read (a rehearsal killed before it wrote it made no copy).
    pub fn read(folder: &Path) -> Option<Copies> {
        let bytes = std::fs::read(folder.join(FILE_NAME)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Why the record read from `folder` (rehearsal `run_id` of
    /// `database`) must not decide what is dropped: every name in it must
    /// be one a rehearsal makes, so that a changed file never drops the
    /// target or a tree of someone else's.
    pub fn untrusted(&self, folder: &Path, run_id: &str, database: &str) -> Option<String> {
        let expected = copy_name(database, run_id);
        if self.run_id != run_id || self.database != database || self.copy != expected {
            return Some(format!(
                "it names another rehearsal or copy than {run_id} of `{database}` (`{expected}`)"
            ));
        }
        if self.inner_folder != folder.join("run") || self.plan_copy != folder.join("plan") {
            return Some("its folders are not the rehearsal folder's".into());
        }
        let names_copy = |p: &Path| {
            p.components()
                .any(|c| c.as_os_str().to_string_lossy().contains(&self.copy))
        };
        if let Some(tree) = self
            .trees
            .iter()
            .find(|t| !(t.copy.starts_with(folder) || (!t.literal && names_copy(&t.copy))))
        {
            return Some(format!(
                "the tree copy {} is neither in the rehearsal folder nor named after the copy",
                tree.copy.display()
            ));
        }
        None
    }
}

/// Copies the target's database as `copies.copy`.
pub fn make_database(
    ctx: &mut Context<'_>,
    copies: &Copies,
    source: &Source<'_>,
) -> Result<(f64, i64), BackupError> {
    let started = Instant::now();
    let props = fingerprint::database_props(ctx.maintenance, &copies.database)?;
    match source {
        Source::Snapshot => {
            let props = props.ok_or_else(|| BackupError::NoDatabase {
                database: copies.database.clone(),
            })?;
            let allowed =
                crate::db::sessions::allows_connections(ctx.maintenance, &copies.database)?;
            backup::copy_database(ctx, &copies.database, &copies.copy, &props.owner, allowed)?;
            // The copy behaves as the target does: its owner, grants and
            // settings (a copy made from a template has none of them).
            backup::copy_props(ctx.maintenance, &props, &copies.copy, Some(&ctx.label))?;
        }
        Source::Dump(file) => {
            let server = ctx.server_version.major();
            let program = crate::pg_programs::client_for("pg_restore", server, server)?;
            // The target's own encoding and locale where it is on this
            // server; the server's defaults when rehearsing elsewhere.
            let (owner, locale) = match &props {
                Some(p) => (
                    quote_ident(&p.owner),
                    format!(
                        " template template0 encoding {} lc_collate {} lc_ctype {}",
                        quote_literal(&p.encoding),
                        quote_literal(&p.collate),
                        quote_literal(&p.ctype)
                    ),
                ),
                None => ("current_user".into(), " template template0".into()),
            };
            ctx.maintenance.batch_execute(&format!(
                "create database {} owner {owner}{locale}",
                quote_ident(&copies.copy)
            ))?;
            // The roles of the server the dump came from may not exist
            // here: the copy's objects belong to whoever restores it.
            backup::run_restore(
                ctx,
                &program,
                &copies.copy,
                file,
                &["--no-owner", "--no-acl"],
            )?;
            if let Some(p) = &props {
                backup::copy_props(ctx.maintenance, p, &copies.copy, Some(&ctx.label))?;
            }
        }
    }
    let bytes: i64 = ctx
        .maintenance
        .query_one("select pg_database_size($1::text)", &[&copies.copy])?
        .get(0);
    Ok((started.elapsed().as_secs_f64(), bytes))
}

/// Copies the plan's folder (with the trees in it), then each tree;
/// `Err` names the one that could not be copied (the
/// ones copied before it are left for `drop_all`).
pub fn make_trees(copies: &Copies) -> Result<(f64, u64), PathError> {
    let started = Instant::now();
    paths::copy_tree(&copies.plan_folder, &copies.plan_copy)?;
    let mut bytes = crate::exec::space::tree_size(&copies.plan_copy).unwrap_or(0);
    for tree in &copies.trees {
        if std::fs::symlink_metadata(&tree.original).is_err() {
            // Nothing to copy: the steps find no tree at the copy either.
            continue;
        }
        if let Some(parent) = tree.copy.parent()
            && tree.literal
        {
            crate::private::make_dir(parent).map_err(|source| PathError::Read {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        if std::fs::symlink_metadata(&tree.copy).is_ok() {
            return Err(PathError::Copy {
                from: tree.original.clone(),
                to: tree.copy.clone(),
                detail: "something is already there; it is not overwritten".into(),
            });
        }
        paths::copy_tree(&tree.original, &tree.copy)?;
        bytes += crate::exec::space::tree_size(&tree.copy).unwrap_or(0);
    }
    Ok((started.elapsed().as_secs_f64(), bytes))
}

/// What dropping the copies did: each thing dropped, and each left with
/// why.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Dropped {
    pub dropped: Vec<String>,
    pub left: Vec<String>,
}

/// Drops the copy and everything the run on it made (its backups, its
/// failed and half-restored databases, their trees), as `copies` and the
/// run's journal say. Best effort: what stays is listed.
pub fn drop_all(maintenance: &mut Client, copies: &Copies) -> Dropped {
    let mut out = Dropped::default();
    let story = journal::read(&copies.inner_folder)
        .map(|c| Story::of(&c.entries))
        .unwrap_or_default();
    let inner = &copies.inner_run_id;
    let mut databases = vec![
        copies.copy.clone(),
        backup::failed_name(&copies.copy, inner),
        backup::restore_name(&copies.copy, inner),
    ];
    let mut trees: Vec<PathBuf> = Vec::new();
    // Only what the run on the copy names as its own: its backups' names
    // end with its id, its dumps and trees' copies are in its folder or
    // carry its id.
    let ours_db = |name: &str| name.ends_with(&format!("_{inner}"));
    let ours_tree = |path: &Path| {
        path.starts_with(&copies.inner_folder)
            || path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().ends_with(&format!("-{inner}")))
    };
    for taken in &story.taken {
        match taken.method {
            BackupMethod::Snapshot => databases.push(taken.copy.clone()),
            BackupMethod::Dump => trees.push(PathBuf::from(&taken.copy)),
        }
        trees.extend(taken.trees.iter().map(|t| t.copy.clone()));
    }
    for (_, method, copy) in &story.unfinished_backups {
        if method == BackupMethod::Snapshot.as_str() {
            databases.push(copy.clone());
        } else {
            trees.push(PathBuf::from(copy));
        }
    }
    databases.retain(|name| name == &copies.copy || ours_db(name));
    trees.retain(|path| ours_tree(path));
    for tree in &copies.trees {
        trees.push(tree.copy.clone());
        trees.push(paths::copy_path(&tree.copy, inner, "failed"));
    }
    trees.push(copies.plan_copy.clone());
    if let Some(folder) = copies.plan_copy.parent() {
        trees.push(folder.join("trees"));
    }
    databases.dedup();
    for name in databases {
        let existed = maintenance
            .query_opt("select 1 from pg_database where datname = $1", &[&name])
            .map(|row| row.is_some());
        match existed {
            Ok(false) => {}
            // A server started by a `rehearse = "run"` step may still be
            // connected to it: the copy is ours, so force.
            Ok(true) => match maintenance.batch_execute(&format!(
                "drop database if exists {} with (force)",
                quote_ident(&name)
            )) {
                Ok(()) => out.dropped.push(format!("database {name}")),
                Err(e) => out.left.push(format!(
                    "database {name}: {}",
                    crate::exec::sql::SqlError::from(e).describe()
                )),
            },
            Err(e) => out.left.push(format!(
                "database {name}: {}",
                crate::exec::sql::SqlError::from(e).describe()
            )),
        }
    }
    for tree in trees {
        if std::fs::symlink_metadata(&tree).is_err() {
            continue;
        }
        match paths::remove(&tree) {
            Ok(()) => out.dropped.push(tree.display().to_string()),
            Err(e) => out.left.push(format!("{}: {e}", tree.display())),
        }
    }
    out
}

/// The folder where the rehearsal copies a tree the plan names without
/// `${db}` (its `n`-th).
pub fn literal_copy(folder: &Path, n: usize, original: &Path) -> PathBuf {
    let name = original
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "tree".into());
    folder.join("trees").join(n.to_string()).join(name)
}

/// An error and its causes, in one line.
pub fn error_text(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}
