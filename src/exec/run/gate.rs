//! The release gate: whether the target is at the plan's `from`, already
//! at its `to` (nothing to do), or somewhere else (refused).

use super::*;
use crate::db::odoo;

impl Run<'_> {
    /// The release gate: already at `to`, at `from`, or refused.
    #[allow(clippy::result_large_err)] // see `Early`
    pub(super) fn gate(&mut self, target: &mut Client) -> Result<(), Early> {
        let (from, to) = (&self.plan.from, &self.plan.to);
        let (release, source) = if let Some(assumed) = &self.opts.assume_release {
            (Some(assumed.to_string()), "--assume-release")
        } else {
            match history::recorded_release(target) {
                Ok(Some(r)) => (Some(r), "the history table"),
                Ok(None) => match &self.plan.release_query {
                    Some(query) => match release_by_query(target, query) {
                        Ok(value) => (value, "the plan's release_query"),
                        Err(e) => {
                            return Err(Early::ReleaseQuery(sql::SqlError::from(e).describe()));
                        }
                    },
                    // An OpenERP/Odoo database tells its release itself.
                    None => match odoo::base_release(target) {
                        Ok(release) => (release, "the `base` module's latest_version"),
                        Err(e) => {
                            return Err(Early::database("cannot read the module registry", e));
                        }
                    },
                },
                Err(e) => return Err(Early::database("cannot read the history", e)),
            }
        };
        let Some(release) = release else {
            return Err(Early::UnknownRelease {
                database: self.opts.database.clone(),
                from: from.clone(),
            });
        };
        if self.plan.refresh {
            return self.refresh_gate(target, release, source);
        }
        if to.is_prefix_of(&release) {
            return Err(Early::AlreadyAt {
                database: self.opts.database.clone(),
                to: to.clone(),
                release,
                by: source,
            });
        }
        if from.is_prefix_of(&release) {
            self.progress.message(&format!(
                "`{}` is at {release} (by {source}): migrating {from} -> {to}",
                self.opts.database
            ));
            return Ok(());
        }
        Err(Early::WrongRelease {
            database: self.opts.database.clone(),
            release,
            by: source,
            from: from.clone(),
            to: to.clone(),
        })
    }
}

impl Run<'_> {
    /// A refresh stays at its release: the database must be at it, and
    /// the revision it deploys must not be one already applied there.
    #[allow(clippy::result_large_err)] // see `Early`
    fn refresh_gate(
        &mut self,
        target: &mut Client,
        release: String,
        source: &'static str,
    ) -> Result<(), Early> {
        let at = &self.plan.from;
        if !at.is_prefix_of(&release) {
            return Err(Early::WrongRelease {
                database: self.opts.database.clone(),
                release,
                by: source,
                from: at.clone(),
                to: self.plan.to.clone(),
            });
        }
        let Some(revision) = self.revision() else {
            return Err(Early::NoRevision);
        };
        if !self.opts.allow_same_revision {
            match history::done_with_revision(target, self.plan.to.as_str(), &revision) {
                Ok(Some((run_id, ended_at))) => {
                    return Err(Early::SameRevision {
                        database: self.opts.database.clone(),
                        release: self.plan.to.clone(),
                        revision,
                        run_id,
                        ended_at,
                    });
                }
                Ok(None) => {}
                Err(e) => return Err(Early::database("cannot read the history", e)),
            }
        }
        self.progress.message(&format!(
            "`{}` is at {release} (by {source}): refreshing {at} with revision {revision}",
            self.opts.database
        ));
        Ok(())
    }
}

/// The first column of the first row the plan's `release_query` returns.
pub fn release_by_query(
    target: &mut Client,
    query: &crate::plan::Text,
) -> Result<Option<String>, postgres::Error> {
    let messages = target.simple_query(&query.expose().unwrap_or_default())?;
    Ok(messages.iter().find_map(|m| match m {
        postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
        _ => None,
    }))
}
