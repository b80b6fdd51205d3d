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

#[cfg(test)]
mod tests {
    use super::Exit;

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
