//! Before the first step: the server's version, the target's lock, the
//! runs row that makes an unfinished run visible to every runner, the
//! release gate (`gate`) and the history table.

use thiserror::Error;

use super::*;

/// Why a run ends before its first step. Nothing was changed in any case;
/// [`Early::outcome`] says which way the run is reported. (At most one per
/// run: its size does not matter, so `Result<_, Early>` is not boxed.)
#[derive(Debug, Error)]
pub enum Early {
    #[error("cannot create the run folder {}: {source}", folder.display())]
    RunFolder {
        folder: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the journal in {}: {source}", folder.display())]
    Journal {
        folder: PathBuf,
        source: std::io::Error,
    },
    /// Files of a backup's `paths` whose owner or group this user could
    /// not give back (`exec::owners`).
    #[error(
        "a rollback could not give these files of the backed-up `paths` their owner or group back:\n{0}\nnothing was changed; run plan as root (or as the files' owner)"
    )]
    PathOwners(String),
    /// A backup's `paths` entry that no rollback may put back: empty, the
    /// root, or the place of the runner's own state, the server's data or
    /// the plan (`unsafe_tree`).
    #[error(
        "the backup `{step}` would copy and restore {path}: {why}\nnothing was changed; fix the `paths` entry (or the variable that made it)"
    )]
    UnsafeTree {
        step: String,
        path: String,
        why: String,
    },
    /// A connection or a statement of the runner's own failed.
    #[error("{what}: {detail}")]
    Database { what: String, detail: String },
    #[error("{}", version.refusal().unwrap_or_default())]
    UnsupportedServer { version: ServerVersion },
    #[error(
        "another plan-runner is applying a plan to `{database}`{holder}\nwait for it to finish, or use --lock-timeout to wait for it"
    )]
    LockHeld { database: String, holder: String },
    /// An earlier run of this target is unfinished: its message says
    /// what to do.
    #[error("{0}")]
    Unfinished(String),
    /// The role lacks a privilege the run needs (`db::privileges`).
    #[error("{0}")]
    Privileges(String),
    #[error("the plan's release_query failed: {0}")]
    ReleaseQuery(String),
    #[error(
        "cannot tell which release `{database}` is at: it has no plan-runner history, the plan has no release_query and it has no OpenERP/Odoo module registry (`ir_module_module` with a `base` row)\nif you know it is at {from}, run again with --assume-release {from}"
    )]
    UnknownRelease { database: String, from: Version },
    #[error("`{database}` is already at {to} (it is at {release}, by {by}): nothing to do")]
    AlreadyAt {
        database: String,
        to: Version,
        release: String,
        by: &'static str,
    },
    #[error(
        "this refresh plan needs a revision to record (the code it deploys, such as a git commit of the addons)\ngive it with `revision = \"...\"` in the plan block or --revision REV"
    )]
    NoRevision,
    #[error(
        "`{database}` was already refreshed to {release} with revision {revision} (run {run_id}, {ended_at})\nnothing was changed; --allow-same-revision runs it again"
    )]
    SameRevision {
        database: String,
        release: Version,
        revision: String,
        run_id: String,
        ended_at: String,
    },
    #[error(
        "`{database}` is at release {release} (by {by}), but this plan migrates from {from} to {to}\nnothing was changed; if {by} is wrong, --assume-release {from} overrides it"
    )]
    WrongRelease {
        database: String,
        release: String,
        by: &'static str,
        from: Version,
        to: Version,
    },
    /// The ERP configuration names another server or database.
    #[error("{0}")]
    ErpConfig(String),
}

impl Early {
    /// How the run is reported: nothing to do, refused, or an error.
    pub fn outcome(&self) -> Outcome {
        match self {
            Early::AlreadyAt { .. } => Outcome::NothingToDo,
            Early::RunFolder { .. } | Early::Journal { .. } | Early::Database { .. } => {
                Outcome::Error
            }
            Early::UnsupportedServer { .. }
            | Early::LockHeld { .. }
            | Early::Unfinished(_)
            | Early::Privileges(_)
            | Early::ReleaseQuery(_)
            | Early::PathOwners(_)
            | Early::UnsafeTree { .. }
            | Early::UnknownRelease { .. }
            | Early::WrongRelease { .. }
            | Early::NoRevision
            | Early::SameRevision { .. }
            | Early::ErpConfig(_) => Outcome::Refused,
        }
    }

    /// A failed statement or connection of the runner's own.
    pub(super) fn database(what: &str, e: postgres::Error) -> Early {
        Early::Database {
            what: what.to_string(),
            detail: sql::SqlError::from(e).describe(),
        }
    }
}

impl Run<'_> {
    /// Version check, lock, unfinished runs, runs table, release gate,
    /// history table. The lock, once taken, is in `self.lock`.
    #[allow(clippy::result_large_err)] // see `Early`
    pub(super) fn prepare(&mut self) -> Result<(), Early> {
        let opts = self.opts;
        // Before any connection: the file says the server would work on
        // another database than the one this run would back up and prove.
        if let Some(refusal) = opts.erp_config.as_ref().and_then(|s| s.refusal()) {
            return Err(Early::ErpConfig(refusal));
        }
        let db_error = Early::database;
        self.owners_restorable()?;
        let version = match self.maintenance() {
            Ok(m) => {
                server_version(m).map_err(|e| db_error("cannot read the server version", e))?
            }
            Err(e) => {
                let user = opts.connector.user();
                return Err(
                    match crate::db::privileges::connect_refusal(&e, user, &opts.maintenance_db) {
                        Some(refusal) => Early::Privileges(refusal),
                        None => db_error(
                            &format!(
                                "cannot connect to {}",
                                opts.connector.at(&opts.maintenance_db)
                            ),
                            e,
                        ),
                    },
                );
            }
        };
        if !version.is_supported() {
            return Err(Early::UnsupportedServer { version });
        }
        self.trees_are_safe()?;
        // Before the lock and the runs row: a role that cannot finish the
        // run is told so with nothing written anywhere.
        self.check_privileges()?;
        let session = opts.connector.connect(&opts.maintenance_db).map_err(|e| {
            db_error(
                &format!(
                    "cannot connect to {}",
                    opts.connector.at(&opts.maintenance_db)
                ),
                e,
            )
        })?;
        let lock_client = match lock::take(session, &opts.database, opts.lock_timeout) {
            Ok(session) => session,
            Err(lock::NotTaken::Database(e)) => return Err(db_error("cannot take the lock", e)),
            Err(held) => {
                return Err(Early::LockHeld {
                    database: opts.database.clone(),
                    holder: held.holder_lines(),
                });
            }
        };
        self.lock = Some(lock_client);
        {
            let (run_id, plan_path, sha, folder) = (
                self.run_id.clone(),
                opts.plan_path.display().to_string(),
                opts.plan_sha256.clone(),
                self.run_folder.display().to_string(),
            );
            let m = self
                .maintenance()
                .map_err(|e| db_error("cannot connect", e))?;
            // A live run holds the lock from before its row is written
            // until after it is closed: with the lock ours, a row still
            // open is a run whose runner died (or that --no-rollback
            // stopped).
            let unfinished = runs::unfinished(m, &opts.database)
                .map_err(|e| db_error("cannot read plan_runner.runs", e))?;
            if let Some(row) = unfinished.last() {
                return Err(Early::Unfinished(recover::unfinished_message(
                    row,
                    &opts.target_flags,
                )));
            }
            runs::start(m, &run_id, &opts.database, &plan_path, &sha, &folder)
                .map_err(|e| db_error("cannot record the run in plan_runner.runs", e))?;
        }
        let mut target = opts.connector.connect(&opts.database).map_err(|e| {
            db_error(
                &format!("cannot connect to {}", opts.connector.at(&opts.database)),
                e,
            )
        })?;
        self.gate(&mut target)?;
        self.modules_before = crate::db::odoo::is_erp(&mut target)
            .and_then(|erp| {
                erp.then(|| crate::db::odoo::installed_versions(&mut target))
                    .transpose()
            })
            .map_err(|e| db_error("cannot read the module registry", e))?;
        history::ensure(&mut target).map_err(|e| db_error("cannot create the history table", e))?;
        // The runner's own connections to the target must be gone before a
        // snapshot copies it or a rollback renames it.
        drop(target);
        Ok(())
    }

    /// Refuses, before anything is taken, a plan whose `paths` hold files
    /// this user could not give back their owner or group.
    #[allow(clippy::result_large_err)] // see `Early`
    fn owners_restorable(&self) -> Result<(), Early> {
        let trees: Vec<PathBuf> = self
            .plan
            .steps
            .iter()
            .filter_map(|step| match &step.action {
                crate::plan::Action::Backup(b) => Some(self.trees(b)),
                _ => None,
            })
            .flatten()
            .collect();
        let found = crate::exec::owners::unrestorable(&trees);
        if found.is_empty() {
            Ok(())
        } else {
            Err(Early::PathOwners(crate::exec::owners::describe(&found)))
        }
    }

    /// Refuses, before anything runs, a `paths` entry whose restore would
    /// wipe what is not the ERP's files: an entry that is empty (a
    /// variable made it so), the root, or the folder (or an ancestor of
    /// the folder) that holds the state of this run, the server's data
    /// directory (when this role may read where it is) or the plan.
    #[allow(clippy::result_large_err)] // see `Early`
    fn trees_are_safe(&mut self) -> Result<(), Early> {
        let data_directory = self
            .maintenance()
            .ok()
            .and_then(|m| m.query_one("show data_directory", &[]).ok())
            .map(|row| PathBuf::from(row.get::<_, String>(0)));
        let state = self.run_folder.parent().and_then(Path::parent);
        // The widest first: a tree holding the state folder is named for
        // it, not for the run folder inside.
        let mut kept: Vec<(&str, PathBuf)> = Vec::new();
        if let Some(state) = state {
            kept.push(("the state folder", state.to_path_buf()));
        }
        kept.push(("the run folder", self.run_folder.clone()));
        kept.push(("the plan's folder", self.plan.folder.clone()));
        if let Some(data) = data_directory {
            kept.push(("the server's data directory", data));
        }
        let real = |p: &Path| {
            std::fs::canonicalize(p)
                .unwrap_or_else(|_| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()))
        };
        for step in &self.plan.steps {
            let crate::plan::Action::Backup(b) = &step.action else {
                continue;
            };
            let refuse = |path: &str, why: String| {
                Err(Early::UnsafeTree {
                    step: step.name.clone(),
                    path: path.to_string(),
                    why,
                })
            };
            for entry in &b.paths {
                let written = entry.expose().unwrap_or_default();
                if written.trim().is_empty() {
                    return refuse(
                        "an empty path",
                        "that would be the plan's whole folder".into(),
                    );
                }
            }
            for tree in self.trees(b) {
                let tree = real(&tree);
                let shown = format!("`{}`", tree.display());
                if tree.parent().is_none() {
                    return refuse(&shown, "that is the root of the file system".into());
                }
                for (what, place) in &kept {
                    if real(place).starts_with(&tree) {
                        return refuse(&shown, format!("it holds {what} ({})", place.display()));
                    }
                }
            }
        }
        Ok(())
    }

    /// The run's session on the maintenance database; a session the
    /// server lost (a restart, `pg_terminate_backend`, a cut network) is
    /// replaced, waiting up to `RECONNECT_WAIT` for the server.
    pub(super) fn maintenance(&mut self) -> Result<&mut Client, postgres::Error> {
        if !self.maintenance.as_mut().is_some_and(connect::is_alive) {
            self.maintenance = None;
            let wait = if self.lock.is_some() {
                self.opts.reconnect_wait
            } else {
                // Before the run holds anything, a server that is down is
                // a configuration error, told at once.
                Duration::ZERO
            };
            let client = self
                .opts
                .connector
                .reconnect(&self.opts.maintenance_db, wait)?;
            self.maintenance = Some(client);
        }
        Ok(self.maintenance.as_mut().expect("connected above"))
    }

    /// Makes sure the run still holds the target's lock before it rolls
    /// back: a lock whose session was lost is taken again on a new one.
    /// `Err` says why it cannot be (the server is unreachable, or another
    /// runner took the lock meanwhile): then nothing may be restored.
    pub(super) fn hold_lock(&mut self) -> Result<(), String> {
        if self.lock.as_mut().is_some_and(connect::is_alive) {
            return Ok(());
        }
        self.lock = None;
        let opts = self.opts;
        let session = opts
            .connector
            .reconnect(&opts.maintenance_db, opts.reconnect_wait)
            .map_err(|e| {
                format!(
                    "the server could not be reached for {}: {}",
                    crate::units::duration(opts.reconnect_wait),
                    sql::SqlError::from(e).describe()
                )
            })?;
        match lock::take(session, &opts.database, Duration::ZERO) {
            Ok(session) => {
                self.progress
                    .message("the lock's session was lost: took the lock again on a new one");
                self.lock = Some(session);
                Ok(())
            }
            Err(lock::NotTaken::Database(e)) => Err(format!(
                "the lock could not be taken again: {}",
                sql::SqlError::from(e).describe()
            )),
            Err(held) => Err(format!(
                "the lock's session was lost and another session took the lock{}",
                held.holder_lines()
            )),
        }
    }
}
