//! What this run asks of its role (`db::privileges`), from the plan's
//! backup steps and the run's options: one list, which `--dry-run` shows
//! whole and `apply` checks before it takes the lock.

use super::*;
use crate::db::privileges::{self, Need, Wanted};
use crate::plan::BackupMethod;

impl Run<'_> {
    /// The needs of this run, read on the maintenance session.
    pub(super) fn privilege_needs(&mut self) -> Result<Vec<Need>, postgres::Error> {
        let backups = || {
            self.plan.steps.iter().filter_map(|s| match &s.action {
                Action::Backup(b) => Some(b),
                _ => None,
            })
        };
        let backed_up: Vec<String> = backups()
            .map(|b| b.database.expose().unwrap_or_default())
            .collect();
        let snapshot_room = dry::is_local(self.opts.connector.host())
            && backups().any(|b| b.method == BackupMethod::Snapshot);
        let terminate = self.opts.sessions.terminate;
        let maintenance = self.maintenance()?;
        privileges::needs(
            maintenance,
            &Wanted {
                backed_up: &backed_up,
                snapshot_room,
                terminate,
            },
        )
    }

    /// The refusal when a need that would stop the run half-way is
    /// missing.
    #[allow(clippy::result_large_err)] // see `Early`
    pub(super) fn check_privileges(&mut self) -> Result<(), Early> {
        let needs = self
            .privilege_needs()
            .map_err(|e| Early::database("cannot read the role's privileges", e))?;
        let user = self
            .maintenance()
            .and_then(privileges::user)
            .map_err(|e| Early::database("cannot read the role's name", e))?;
        match privileges::refusal(&user, &needs) {
            Some(refusal) => Err(Early::Privileges(refusal)),
            None => Ok(()),
        }
    }
}
