//! Before the first step: the server's version, the target's lock, the
//! runs row that makes an unfinished run visible to every runner, the
//! release gate (`gate`) and the history table.

use super::*;

impl Run<'_> {
    /// Version check, lock, unfinished runs, runs table, release gate,
    /// history table. The lock, once taken, is in `self.lock`.
    pub(super) fn prepare(&mut self) -> Result<(), Early> {
        let opts = self.opts;
        let refuse = |m: String| Early(Exit::Refused, m);
        let usage = |m: String| Early(Exit::Usage, m);
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
        let mut lock_client = opts
            .connector
            .connect(&opts.maintenance_db)
            .map_err(|e| db_error("cannot connect to the maintenance database", e))?;
        // The lock lives as long as this session: no idle timeout may end it.
        let _ =
            lock_client.batch_execute("set idle_session_timeout = 0; set statement_timeout = 0");
        match lock::acquire(&mut lock_client, &opts.database, opts.lock_timeout) {
            Ok(lock::Acquired::Yes) => {}
            Ok(lock::Acquired::HeldBy(holder)) => {
                let m = self
                    .maintenance()
                    .map_err(|e| db_error("cannot connect", e))?;
                let run = holder
                    .as_ref()
                    .and_then(|h| h.application.strip_prefix("plan-runner/"))
                    .and_then(|id| runs::get(m, id).ok().flatten());
                let mut message = format!(
                    "another plan-runner is applying a plan to `{}`",
                    opts.database
                );
                if let Some(h) = &holder {
                    message.push_str(&format!(
                        "\n  holder: server pid {}, {}, from {}, connected since {}",
                        h.pid,
                        h.application,
                        h.client.as_deref().unwrap_or("local socket"),
                        h.since
                    ));
                }
                if let Some(r) = run {
                    message.push_str(&format!(
                        "\n  run {}: plan {} on host {} (pid {}), started {}",
                        r.run_id, r.plan, r.host, r.pid, r.started_at
                    ));
                }
                message.push_str("\nwait for it to finish, or use --lock-timeout to wait for it");
                return Err(refuse(message));
            }
            Err(e) => return Err(db_error("cannot take the lock", e)),
        }
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
