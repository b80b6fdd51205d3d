//! The release gate: whether the target is at the plan's `from`, already
//! at its `to` (nothing to do), or somewhere else (refused).

use super::*;

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
                    None => (None, ""),
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
        if to.is_prefix_of(&release) || Version::parse(release.trim()).is_some_and(|v| &v == to) {
            return Err(Early::AlreadyAt {
                database: self.opts.database.clone(),
                to: to.clone(),
                by: source,
            });
        }
        if from.is_prefix_of(&release) || Version::parse(release.trim()).is_some_and(|v| &v == from)
        {
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
