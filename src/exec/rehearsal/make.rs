//! Making a rehearsal's copies: the room checked first, with the
//! figures; the database copied (a snapshot under the target's lock for
//! that moment only, never ending a session; or a dump restored); then
//! the plan's folder and the trees.

use std::path::Path;
use std::time::Duration;

use postgres::Client;

use super::{Copies, Made, Source, error_text};
use crate::db::connect::Connector;
use crate::db::server::ServerVersion;
use crate::db::{lock, runs};
use crate::exec::backup::{self, SessionPolicy};
use crate::exec::space;
use crate::exit::Rehearsed;

/// How the copies are made.
pub struct Settings<'a> {
    /// `--from-dump`: the dump to restore instead of a snapshot.
    pub from_dump: Option<&'a Path>,
    pub wait_for_sessions: Duration,
    /// How long to wait for the target's lock.
    pub lock_timeout: Duration,
    pub jobs: usize,
    /// The server is on this machine: the room in its data directory is
    /// checked.
    pub local: bool,
    pub maintenance_db: &'a str,
    /// The rehearsal's folder.
    pub folder: &'a Path,
    /// Where progress goes, a line at a time.
    pub say: &'a dyn Fn(&str),
}

/// Makes the copies: refused (nothing made) or failed (what was made
/// is dropped by the caller) with why.
pub fn make(
    settings: &Settings<'_>,
    connector: &Connector,
    maintenance: &mut Client,
    server_version: ServerVersion,
    copies: &Copies,
    made: &mut Made,
) -> Result<(), (Rehearsed, String)> {
    let refused = |why: String| (Rehearsed::Refused, why);
    let database = &copies.database;
    let source = match settings.from_dump {
        Some(dump) => Source::Dump(dump),
        None => Source::Snapshot,
    };
    // Room first, with the figures, before anything is copied.
    let size = match &source {
        Source::Snapshot => maintenance
            .query_one("select pg_database_size($1::text)", &[database])
            .map(|r| r.get::<_, i64>(0).max(0) as u64)
            .ok(),
        Source::Dump(dump) => space::tree_size(dump),
    };
    let data = match space::data_directory(maintenance, settings.local) {
        space::DataDirectory::Here(dir) => Ok(dir),
        space::DataDirectory::NotChecked(why) => Err(why),
    };
    let mut wanted = vec![space::Copy {
        what: format!("the copy of `{database}`"),
        size: size.unwrap_or(0),
        to: data,
    }];
    if let Some(size) = space::tree_size(&copies.plan_folder) {
        wanted.push(space::Copy {
            what: format!(
                "the copy of the plan's folder {}",
                copies.plan_folder.display()
            ),
            size,
            to: Ok(copies.plan_copy.clone()),
        });
    }
    for tree in &copies.trees {
        if let Some(size) = space::tree_size(&tree.original) {
            wanted.push(space::Copy {
                what: format!("the copy of {}", tree.original.display()),
                size,
                to: Ok(tree.copy.clone()),
            });
        }
    }
    let verdict = space::check(&wanted);
    for line in &verdict.lines {
        (settings.say)(&format!("  {line}"));
    }
    if let Some(why) = verdict.refusal {
        return Err(refused(format!(
            "no room for the rehearsal's copies: {why}"
        )));
    }
    let mut ctx = backup::Context {
        connector,
        maintenance,
        run_id: &copies.run_id,
        run_folder: settings.folder,
        label: format!(
            "plan-runner rehearsal {} of `{database}`: a throwaway copy",
            copies.run_id
        ),
        sessions: SessionPolicy {
            // A rehearsal never ends the target's sessions.
            terminate: false,
            wait: settings.wait_for_sessions,
        },
        server_version,
        jobs: settings.jobs,
    };
    let made_db = match source {
        Source::Snapshot => {
            // The target's lock, for the moment of the copy only: no
            // run of it may be half way through its steps.
            let session = connector
                .connect(settings.maintenance_db)
                .map_err(|e| refused(crate::exec::sql::SqlError::from(e).describe()))?;
            let lock = match lock::take(session, database, settings.lock_timeout) {
                Ok(lock) => lock,
                Err(lock::NotTaken::Database(e)) => {
                    return Err(refused(crate::exec::sql::SqlError::from(e).describe()));
                }
                Err(held) => {
                    return Err(refused(format!(
                        "a plan-runner is working on `{database}` right now: its database is not copied half way through a run{}",
                        held.holder_lines()
                    )));
                }
            };
            if let Ok(rows) = runs::unfinished(ctx.maintenance, database)
                && let Some(row) = rows.first()
            {
                return Err(refused(format!(
                    "`{database}` has an unfinished run ({}, {}): it may be half migrated; `plan recover` it first",
                    row.run_id, row.state
                )));
            }
            let made = super::make_database(&mut ctx, copies, &Source::Snapshot);
            drop(lock);
            made
        }
        source @ Source::Dump(_) => super::make_database(&mut ctx, copies, &source),
    };
    let (seconds, bytes) = made_db.map_err(|e| match e {
        backup::BackupError::Sessions { .. } => refused(format!(
            "{}\n  a snapshot copy needs a moment with no session on `{database}`; rehearse from a dump instead, taken while it runs: `pg_dump -Fc -f {database}.dump {database}`, then --from-dump {database}.dump",
            error_text(&e)
        )),
        other => (Rehearsed::Failed, error_text(&other)),
    })?;
    made.database_seconds = seconds;
    made.database_bytes = bytes;
    crate::exec::pause::point(crate::exec::pause::REHEARSAL_COPIED, settings.folder);
    let (seconds, bytes) =
        super::make_trees(copies).map_err(|e| (Rehearsed::Failed, error_text(&e)))?;
    made.trees_seconds = seconds;
    made.trees_bytes = bytes;
    (settings.say)(&format!(
        "copied `{database}` as `{}` ({}, {}), and the plan's folder with {} other tree(s) ({})",
        copies.copy,
        crate::units::bytes(made.database_bytes.max(0) as u64),
        crate::units::seconds(made.database_seconds),
        copies.trees.len(),
        crate::units::bytes(made.trees_bytes)
    ));
    Ok(())
}
