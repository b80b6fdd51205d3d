//! Before the first step: the server's version, the target's lock, the
//! runs row that makes an unfinished run visible to every runner, the
//! release gate (`gate`) and the history table.

use super::*;

impl Run<'_> {
    /// Version check, lock, unfinished runs, runs table, release gate,
    /// history table. The lock, once taken, is in `self.lock`.
    pub(super) fn prepare(&mut self) -> Result<(), Early> {
        let opts = self.opts;
        let refuse = |m: String| Early(Outcome::Refused, m);
        let usage = |m: String| Early(Outcome::Error, m);
        let db_error = |what: &str, e: postgres::Error| {
            usage(format!("{what}: {}", sql::SqlError::from(e).describe()))
        };
        let version = {
            let m = self
                .maintenance()
                .map_err(|e| db_error("cannot connect to the server", e))?;
            server_version(m).map_err(|e| db_error("cannot read the server version", e))?
        };
        if !(SUPPORTED_MIN..=SUPPORTED_MAX).contains(&version) {
            return Err(refuse(format!(
                "the server is PostgreSQL {}.{}: plan-runner supports PostgreSQL 12 to 17 (docs/apply.md)",
                version / 10000,
                version % 10000 / 100
            )));
        }
        let session = opts
            .connector
            .connect(&opts.maintenance_db)
            .map_err(|e| db_error("cannot connect to the maintenance database", e))?;
        let lock_client = match lock::take(session, &opts.database, opts.lock_timeout) {
            Ok(session) => session,
            Err(lock::NotTaken::Database(e)) => return Err(db_error("cannot take the lock", e)),
            Err(held) => {
                return Err(refuse(format!(
                    "another plan-runner is applying a plan to `{}`{}\nwait for it to finish, or use --lock-timeout to wait for it",
                    opts.database,
                    held.holder_lines()
                )));
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
                return Err(refuse(recover::unfinished_message(row, &opts.target_flags)));
            }
            runs::start(m, &run_id, &opts.database, &plan_path, &sha, &folder)
                .map_err(|e| db_error("cannot record the run in plan_runner.runs", e))?;
        }
        let mut target = opts
            .connector
            .connect(&opts.database)
            .map_err(|e| db_error(&format!("cannot connect to `{}`", opts.database), e))?;
        self.gate(&mut target)?;
        history::ensure(&mut target).map_err(|e| db_error("cannot create the history table", e))?;
        // The runner's own connections to the target must be gone before a
        // snapshot copies it or a rollback renames it.
        drop(target);
        Ok(())
    }

    pub(super) fn maintenance(&mut self) -> Result<&mut Client, postgres::Error> {
        if self.maintenance.is_none() {
            self.maintenance = Some(self.opts.connector.connect(&self.opts.maintenance_db)?);
        }
        Ok(self.maintenance.as_mut().expect("connected above"))
    }
}
