//! A `backup` step inside a run: the room check, the journal records
//! around the copy, and the copy itself (`exec::backup`).

use super::steps::StepError;
use super::*;

impl Run<'_> {
    pub(super) fn backup_context(&mut self) -> Result<crate::exec::backup::Context<'_>, StepError> {
        let label = crate::db::kept::label(
            &self.opts.database,
            &self.run_id,
            &self.plan.name,
            &self.opts.target,
        );
        let opts = self.opts;
        // A session the server lost is replaced before the copy or the
        // restore uses it.
        self.maintenance()?;
        let maintenance = self.maintenance.as_mut().ok_or(StepError::NoMaintenance)?;
        let server_version = server_version(maintenance)?;
        Ok(crate::exec::backup::Context {
            connector: &opts.connector,
            maintenance,
            run_id: &self.run_id,
            run_folder: &self.run_folder,
            label,
            sessions: opts.sessions,
            server_version,
            jobs: 2,
        })
    }

    /// The backup's `paths`, absolute, and the filestore its ERP
    /// configuration gives the database.
    pub(super) fn trees(&self, b: &crate::plan::Backup) -> Vec<PathBuf> {
        let database = b.database.expose().unwrap_or_default();
        let mut trees: Vec<PathBuf> = b
            .paths
            .iter()
            .map(|p| {
                // Recorded absolute: `plan backups` and `plan recover` may run
                // from another folder than this run.
                let path = self.plan.folder.join(p.expose().unwrap_or_default());
                std::path::absolute(&path).unwrap_or(path)
            })
            .collect();
        trees.extend(self.opts.filestore_of(&database, &trees));
        trees
    }

    pub(super) fn backup(&mut self, step: &Step, b: &crate::plan::Backup) -> Result<(), StepError> {
        let database = b.database.expose().unwrap_or_default();
        let trees = self.trees(b);
        if let Some(copy) = self.chain_backup_covering(&database, &trees) {
            self.progress.message(&format!(
                "  backup `{}` is covered by the chain's backup {copy}: nothing is copied (docs/chains.md)",
                step.name
            ));
            return Ok(());
        }
        let copy = match b.method {
            // The name `crate::exec::backup::take` will use (a second snapshot of the
            // same database gets `_pr2_`): `plan recover` drops a half-made
            // copy by the name recorded here, never a taken one.
            crate::plan::BackupMethod::Snapshot => {
                let run_id = self.run_id.clone();
                let maintenance = self.maintenance()?;
                crate::exec::backup::free_snapshot_name(maintenance, &database, &run_id)?
            }
            crate::plan::BackupMethod::Dump => self
                .run_folder
                .join(format!("dump-{}", step.name))
                .display()
                .to_string(),
        };
        if let Some(refusal) = self.room_for(b, &database, &trees)? {
            // Nothing was copied yet: when no backup was taken before,
            // no step that changes data has run (W101), so nothing changed
            // at all, and the run is refused rather than failed. (Step
            // reports are only gathered when the scheduler ends: they
            // cannot tell.)
            self.space_refused = self.taken.is_empty();
            self.report.message = Some(refusal.clone());
            return Err(StepError::NoRoom(refusal));
        }
        let blocks_connections = b.method == crate::plan::BackupMethod::Snapshot
            && self.opts.sessions.terminate
            && self
                .maintenance()
                .ok()
                .and_then(|m| crate::db::sessions::allows_connections(m, &database).ok())
                .unwrap_or(false);
        if !self.journal(&Record::BackupStarted {
            step: step.name.clone(),
            method: b.method.as_str().into(),
            database: database.clone(),
            copy,
            blocks_connections,
        }) {
            return Err(StepError::JournalBeforeBackup);
        }
        let mut ctx = self.backup_context()?;
        match crate::exec::backup::take(&mut ctx, &step.name, b.method, &database, &trees, b.keep) {
            Ok(taken) => {
                self.report.backups.push(BackupReport {
                    step: step.name.clone(),
                    method: b.method.as_str().into(),
                    database: database.clone(),
                    copy: taken.copy.clone(),
                    paths: trees.clone(),
                    seconds: taken.seconds,
                    fingerprint_seconds: taken.fingerprint_seconds,
                    bytes: taken.bytes,
                    state: "taken".into(),
                    program: taken.program.as_ref().map(ToString::to_string),
                });
                if let Some(program) = &taken.program {
                    self.progress.message(&format!("  dumped with {program}"));
                }
                let _ = crate::private::write(
                    &self.run_folder.join(format!("backup-{}.json", step.name)),
                    &serde_json::to_vec_pretty(&taken).unwrap_or_default(),
                );
                let recorded = self.journal(&Record::BackupTaken {
                    taken: taken.clone(),
                });
                self.taken.push(taken);
                if recorded {
                    Ok(())
                } else {
                    Err(StepError::JournalAfterBackup)
                }
            }
            Err(e @ BackupError::Sessions { .. }) => {
                self.report.message = Some(format!(
                    "{e}\n{}",
                    "stop these clients, or run again with --terminate-connections"
                ));
                Err(e.into())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Compares the sizes of the copies this backup will make with the
    /// free space where they go (`exec::space`); says the figures in the
    /// progress, and returns them when they cannot fit.
    pub(super) fn room_for(
        &mut self,
        b: &crate::plan::Backup,
        database: &str,
        trees: &[PathBuf],
    ) -> Result<Option<String>, StepError> {
        let local = dry::is_local(self.opts.connector.host());
        let run_folder = self.run_folder.clone();
        let maintenance = self.maintenance()?;
        // Without the privilege to read the size (CONNECT on it, or
        // pg_read_all_stats), the copy is "not checked" rather than refused.
        let size = maintenance
            .query_opt("select pg_database_size($1)", &[&database])
            .map(|row| row.map_or(0, |row| row.get::<_, i64>(0)))
            .map_err(|e| format!("its size cannot be read: {}", sql::describe_error(&e)));
        let mut copies = vec![space::Copy {
            what: format!("{} of `{database}`", b.method.as_str()),
            size: size
                .as_ref()
                .map_or(0, |size| u64::try_from(*size).unwrap_or(0)),
            to: match size {
                Err(why) => Err(why),
                Ok(_) => match b.method {
                    crate::plan::BackupMethod::Snapshot => {
                        match space::data_directory(maintenance, local) {
                            space::DataDirectory::Here(dir) => Ok(dir),
                            space::DataDirectory::NotChecked(why) => Err(why),
                        }
                    }
                    crate::plan::BackupMethod::Dump => Ok(run_folder),
                },
            },
        }];
        for tree in trees {
            if let Some(size) = space::tree_size(tree) {
                copies.push(space::Copy {
                    what: format!("files {}", tree.display()),
                    size,
                    to: Ok(tree.parent().unwrap_or(Path::new("/")).to_path_buf()),
                });
            }
        }
        let verdict = space::check(&copies);
        for line in &verdict.lines {
            self.progress.message(&format!("  free space: {line}"));
        }
        Ok(verdict.refusal)
    }

    pub(super) fn set_backup_state(&mut self, copy: &str, state: &str) {
        if let Some(b) = self.report.backups.iter_mut().find(|b| b.copy == copy) {
            b.state = state.into();
        }
    }
}

impl Options {
    /// The ERP filestore of `database` when it is the target's and the
    /// plan names the server's configuration: part of every backup of it,
    /// unless `paths` lists it already.
    pub(super) fn filestore_of(&self, database: &str, listed: &[PathBuf]) -> Option<PathBuf> {
        let filestore = &self.erp_config.as_ref()?.filestore;
        (database == self.database && !listed.contains(filestore)).then(|| filestore.clone())
    }
}
