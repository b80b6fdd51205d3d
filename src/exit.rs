//! The exit statuses of `plan`, decided here and nowhere else.

use std::process::ExitCode;

/// What a command's outcome means to the shell calling it.
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
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit.code())
    }
}
