//! How a command ends, and the exit status that says so: decided here and
//! nowhere else. Commands and runs report what happened (an [`Ending`]);
//! [`status`] turns it into one of the documented codes.

use std::process::ExitCode;

use serde::Serialize;

/// The exit statuses of `plan` (docs/cli.md, "Exit codes").
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Exit {
    /// Success, or nothing to do.
    Success,
    /// The plan failed: errors in it (lint, fmt --check), or apply failed
    /// and was rolled back.
    Failed,
    /// A usage or configuration error: a bad flag, a path that does not exist.
    Usage,
    /// The rollback failed: the database needs a person.
    RollbackFailed,
    /// Refused with nothing changed (lock held, wrong release, ...).
    Refused,
    /// Interrupted and rolled back.
    Interrupted,
}

impl Exit {
    /// Every status, in the order `plan --help` lists them.
    pub const ALL: [Exit; 6] = [
        Exit::Success,
        Exit::Failed,
        Exit::Usage,
        Exit::RollbackFailed,
        Exit::Refused,
        Exit::Interrupted,
    ];

    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failed => 1,
            Exit::Usage => 2,
            Exit::RollbackFailed => 3,
            Exit::Refused => 4,
            Exit::Interrupted => 130,
        }
    }

    /// What the status tells the shell calling `plan`, in one line.
    pub fn meaning(self) -> &'static str {
        match self {
            Exit::Success => "success, or nothing to do",
            Exit::Failed => {
                "the plan has errors (fmt --check: is not laid out), or apply failed and was \
                 rolled back"
            }
            Exit::Usage => "usage or configuration error",
            Exit::RollbackFailed => "the rollback failed: the database needs a person",
            Exit::Refused => {
                "refused with nothing changed (lock held, wrong release, unfinished run, \
                 sessions connected)"
            }
            Exit::Interrupted => "interrupted (Ctrl-C, SIGTERM) and rolled back",
        }
    }
}

/// The exit statuses as `plan --help` lists them: one line each.
pub fn help() -> String {
    let mut text = String::from("Exit codes:\n");
    for exit in Exit::ALL {
        text.push_str(&format!("  {:<4} {}\n", exit.code(), exit.meaning()));
    }
    text
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit.code())
    }
}

/// How a run (an apply, a resume, a recovery, a dry run) ended: the
/// `outcome` of its report and of its history row.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Not ended yet (never written: every run ends with another).
    #[default]
    Running,
    Succeeded,
    /// Already at the plan's `to`.
    NothingToDo,
    /// Nothing was changed: the lock was held, the release was wrong,
    /// sessions were connected, there was no room for the first backup.
    Refused,
    /// A configuration or connection error before anything changed.
    Error,
    /// A step failed; the backups were restored and the restore proved.
    RolledBack,
    /// A step failed under `--no-rollback`: everything left as it was.
    Stopped,
    /// The restore could not be proved: the database needs a person.
    RollbackFailed,
    /// `plan recover` restored a dead run's backups and proved it.
    Recovered,
}

impl Outcome {
    /// The name reports, journals and the history table use.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Running => "running",
            Outcome::Succeeded => "succeeded",
            Outcome::NothingToDo => "nothing_to_do",
            Outcome::Refused => "refused",
            Outcome::Error => "error",
            Outcome::RolledBack => "rolled_back",
            Outcome::Stopped => "stopped",
            Outcome::RollbackFailed => "rollback_failed",
            Outcome::Recovered => "recovered",
        }
    }
}

/// What a command ended with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// A command that checks or shows (lint, fmt, show, graph, status,
    /// backups): whether it found what makes it fail (errors in a plan, a
    /// file not formatted, a backup that could not be pruned).
    Checked { problems: bool },
    /// A run, as its report says it ended, and whether a signal (Ctrl-C,
    /// SIGTERM) made it end.
    Run { outcome: Outcome, interrupted: bool },
    /// A usage or configuration error stopped the command before it did
    /// anything.
    Usage,
    /// A fleet run (`apply --inventory --all`), as its targets ended.
    Fleet(Fleet),
    /// A rehearsal (`plan rehearse`), as it ended on its copy.
    Rehearsal(Rehearsed),
}

/// How a rehearsal ended (docs/rehearse.md, "Exit codes"). Its copy is
/// dropped whatever the outcome, so none of them needs a person.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rehearsed {
    /// Every step passed on the copy (and its rollback was proved).
    Passed,
    /// A step failed on the copy, or its rollback could not be proved.
    Failed,
    /// Ctrl-C or SIGTERM.
    Interrupted,
    /// No copy was made: sessions on the target, no room, a lock held,
    /// the wrong release.
    Refused,
}

impl Rehearsed {
    pub fn as_str(self) -> &'static str {
        match self {
            Rehearsed::Passed => "passed",
            Rehearsed::Failed => "failed",
            Rehearsed::Interrupted => "interrupted",
            Rehearsed::Refused => "refused",
        }
    }
}

/// How a fleet's targets ended, as a whole (docs/fleet.md, "Exit codes").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fleet {
    /// Every target succeeded or had nothing to do (or the slice was
    /// empty).
    AllDone,
    /// Some target did not reach `to` (it failed and was rolled back and
    /// proved, was refused, could not be reached, or was not started),
    /// and none needs a person.
    SomeFailed,
    /// A target's rollback was not proved, or its run did not end: a
    /// person must look at it.
    NeedsPerson,
    /// Every target was refused with nothing changed.
    AllRefused,
    /// Ctrl-C or SIGTERM: no target started after it, the running ones
    /// rolled back, and none needs a person.
    Interrupted,
}

/// How one target of a fleet ended, for the fleet's [`Fleet`] ending.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Member {
    Done,
    Failed,
    Refused,
    NeedsPerson,
    NotStarted,
}

impl Member {
    /// A target's run as its report says it ended.
    pub fn of(outcome: Outcome) -> Member {
        match outcome {
            Outcome::Succeeded | Outcome::NothingToDo | Outcome::Recovered => Member::Done,
            Outcome::RolledBack | Outcome::Error => Member::Failed,
            Outcome::Refused => Member::Refused,
            // `--no-rollback` left a failed database as it was, and a
            // report that says `running` never ended: either needs a look.
            Outcome::Stopped | Outcome::RollbackFailed | Outcome::Running => Member::NeedsPerson,
        }
    }
}

impl Fleet {
    /// The whole from each target's ending; `interrupted` when a signal
    /// stopped the fleet.
    pub fn of(members: &[Member], interrupted: bool) -> Fleet {
        if members.contains(&Member::NeedsPerson) {
            Fleet::NeedsPerson
        } else if interrupted {
            Fleet::Interrupted
        } else if !members.is_empty() && members.iter().all(|m| *m == Member::Refused) {
            Fleet::AllRefused
        } else if members.iter().all(|m| *m == Member::Done) {
            Fleet::AllDone
        } else {
            Fleet::SomeFailed
        }
    }
}

impl Ending {
    pub fn checked(problems: bool) -> Ending {
        Ending::Checked { problems }
    }

    pub fn run(outcome: Outcome) -> Ending {
        Ending::Run {
            outcome,
            interrupted: false,
        }
    }
}

/// The exit status of an ending: the one mapping from what happened to
/// the documented codes.
pub fn status(ending: Ending) -> Exit {
    match ending {
        Ending::Checked { problems: false } => Exit::Success,
        Ending::Checked { problems: true } => Exit::Failed,
        Ending::Usage => Exit::Usage,
        Ending::Fleet(fleet) => match fleet {
            Fleet::AllDone => Exit::Success,
            Fleet::SomeFailed => Exit::Failed,
            Fleet::NeedsPerson => Exit::RollbackFailed,
            Fleet::AllRefused => Exit::Refused,
            Fleet::Interrupted => Exit::Interrupted,
        },
        Ending::Rehearsal(rehearsed) => match rehearsed {
            Rehearsed::Passed => Exit::Success,
            Rehearsed::Failed => Exit::Failed,
            Rehearsed::Interrupted => Exit::Interrupted,
            Rehearsed::Refused => Exit::Refused,
        },
        Ending::Run {
            outcome,
            interrupted,
        } => match outcome {
            Outcome::Succeeded | Outcome::NothingToDo | Outcome::Recovered => Exit::Success,
            Outcome::RollbackFailed => Exit::RollbackFailed,
            Outcome::Refused => Exit::Refused,
            Outcome::Error | Outcome::Running => Exit::Usage,
            Outcome::RolledBack | Outcome::Stopped if interrupted => Exit::Interrupted,
            Outcome::RolledBack | Outcome::Stopped => Exit::Failed,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_code_has_an_ending() {
        let run = |outcome, interrupted| {
            status(Ending::Run {
                outcome,
                interrupted,
            })
            .code()
        };
        assert_eq!(status(Ending::checked(false)).code(), 0);
        assert_eq!(status(Ending::checked(true)).code(), 1);
        assert_eq!(status(Ending::Usage).code(), 2);
        assert_eq!(run(Outcome::Succeeded, false), 0);
        assert_eq!(run(Outcome::NothingToDo, false), 0);
        assert_eq!(run(Outcome::RolledBack, false), 1);
        assert_eq!(run(Outcome::Stopped, false), 1);
        assert_eq!(run(Outcome::Error, false), 2);
        assert_eq!(run(Outcome::RollbackFailed, true), 3);
        assert_eq!(run(Outcome::Refused, false), 4);
        assert_eq!(run(Outcome::RolledBack, true), 130);
        assert_eq!(run(Outcome::Stopped, true), 130);
    }

    #[test]
    fn a_fleet_exits_by_its_worst_target() {
        use Member::*;
        let code = |members: &[Member], interrupted| {
            status(Ending::Fleet(Fleet::of(members, interrupted))).code()
        };
        assert_eq!(code(&[], false), 0);
        assert_eq!(code(&[Done, Done], false), 0);
        assert_eq!(code(&[Done, Failed], false), 1);
        assert_eq!(code(&[Done, Refused], false), 1);
        assert_eq!(code(&[Failed, NotStarted], false), 1);
        assert_eq!(code(&[Refused, Refused], false), 4);
        assert_eq!(code(&[Done, Failed, NeedsPerson], false), 3);
        assert_eq!(code(&[Done, NeedsPerson], true), 3);
        assert_eq!(code(&[Done, Failed, NotStarted], true), 130);
        assert_eq!(Member::of(Outcome::Error), Failed);
        assert_eq!(Member::of(Outcome::Stopped), NeedsPerson);
    }

    #[test]
    fn outcomes_are_written_as_reports_name_them() {
        for outcome in [
            Outcome::Succeeded,
            Outcome::NothingToDo,
            Outcome::Refused,
            Outcome::Error,
            Outcome::RolledBack,
            Outcome::Stopped,
            Outcome::RollbackFailed,
            Outcome::Recovered,
        ] {
            let json = serde_json::to_string(&outcome).unwrap();
            assert_eq!(json, format!("\"{}\"", outcome.as_str()));
        }
    }

    #[test]
    fn every_status_is_listed_once() {
        // The match has no wildcard: a new status fails to compile here
        // until it is listed in `ALL` too.
        let listed = |exit: Exit| match exit {
            Exit::Success
            | Exit::Failed
            | Exit::Usage
            | Exit::RollbackFailed
            | Exit::Refused
            | Exit::Interrupted => Exit::ALL.iter().filter(|e| **e == exit).count(),
        };
        for exit in Exit::ALL {
            assert_eq!(listed(exit), 1, "{exit:?}");
        }
        let codes: Vec<u8> = Exit::ALL.iter().map(|e| e.code()).collect();
        assert_eq!(codes, [0, 1, 2, 3, 4, 130]);
    }

    #[test]
    fn help_lists_every_code_on_a_line_that_fits() {
        let help = super::help();
        // `plan --help` is at most 100 columns wide: a longer line would
        // wrap without its indentation.
        assert!(help.lines().all(|l| l.chars().count() <= 100), "{help}");
        for exit in Exit::ALL {
            assert!(
                help.contains(&format!("  {:<4} {}\n", exit.code(), exit.meaning())),
                "{help}"
            );
        }
    }
}
