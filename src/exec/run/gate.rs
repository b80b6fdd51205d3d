//! The release gate: whether the target is at the plan's `from`, already
//! at its `to` (nothing to do), or somewhere else (refused).

use super::*;

impl Run<'_> {
    /// The release gate: already at `to`, at `from`, or refused.
    pub(super) fn gate(&mut self, target: &mut Client) -> Result<(), Early> {
        let (from, to) = (&self.plan.from, &self.plan.to);
        let (release, source) = if let Some(assumed) = &self.opts.assume_release {
            (Some(assumed.to_string()), "--assume-release")
        } else {
            match history::recorded_release(target) {
                Ok(Some(r)) => (Some(r), "the history table"),
                Ok(None) => match &self.plan.release_query {
                    Some(query) => {
                        let query = query.expose().unwrap_or_default();
                        match target.simple_query(&query) {
                            Ok(messages) => (
                                messages.iter().find_map(|m| match m {
                                    postgres::SimpleQueryMessage::Row(row) => {
                                        row.get(0).map(str::to_string)
                                    }
                                    _ => None,
                                }),
                                "the plan's release_query",
                            ),
                            Err(e) => {
                                return Err(Early(
                                    Outcome::Refused,
                                    format!(
                                        "the plan's release_query failed: {}",
                                        sql::SqlError::from(e).describe()
                                    ),
                                ));
                            }
                        }
                    }
                    None => (None, ""),
                },
                Err(e) => {
                    return Err(Early(
                        Outcome::Error,
                        format!("cannot read the history: {}", sql::describe_error(&e)),
                    ));
                }
            }
        };
        let Some(release) = release else {
            return Err(Early(
                Outcome::Refused,
                format!(
                    "cannot tell which release `{}` is at: it has no plan-runner history and the plan has no release_query\nif you know it is at {from}, run again with --assume-release {from}",
                    self.opts.database
                ),
            ));
        };
        if to.is_prefix_of(&release) || Version::parse(release.trim()).is_some_and(|v| &v == to) {
            return Err(Early(
                Outcome::NothingToDo,
                format!(
                    "`{}` is already at {to} (by {source}): nothing to do",
                    self.opts.database
                ),
            ));
        }
        if from.is_prefix_of(&release) || Version::parse(release.trim()).is_some_and(|v| &v == from)
        {
            self.progress.message(&format!(
                "`{}` is at {release} (by {source}): migrating {from} -> {to}",
                self.opts.database
            ));
            return Ok(());
        }
        Err(Early(
            Outcome::Refused,
            format!(
                "`{}` is at release {release} (by {source}), but this plan migrates from {from} to {to}\nnothing was changed; if {source} is wrong, --assume-release {from} overrides it",
                self.opts.database
            ),
        ))
    }
}
