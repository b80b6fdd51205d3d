//! One step's command as a child process: argv (or `sh -c` for `shell =`),
//! stdin from /dev/null, its own process group, stdout and stderr written by
//! the child straight into the step's log, a timeout and an interruption
//! that end the whole group, retries and `fail_on_output`. It runs one
//! step; ordering, journal and rollback belong to the callers. It never
//! prints and never talks to a database.
//!
//! Its rooms: `spec` (what the command is), `spawn` (one attempt), `group`
//! (watching and ending the process group), `stopper`, `user` (running as
//! another account), `output` (the step's log).
//!
//! Choices a caller relies on:
//! - The child writes into the log itself (an inherited file descriptor),
//!   so output never passes through the runner: a runner that dies does
//!   not end the step through a broken pipe.
//! - A timeout or a stop sends SIGTERM to the whole group, then SIGKILL to
//!   the group after the grace period. The grace period belongs to the
//!   leader: when it exits (on its own or by SIGTERM) and the step failed,
//!   whatever is left in its group is killed at once, since a step that
//!   wants its children to end cleanly forwards the signal and waits for
//!   them before exiting.
//! - A step that succeeds keeps its group as it is: a `start` step may leave
//!   a server running, whether it daemonised out of the group or was simply
//!   put in the background.
//! - A failed attempt is retried up to `retries` more times, but not after a
//!   timeout (the step has already used its whole time and would most
//!   likely hang again) nor after a stop (the run is ending).

use std::collections::BTreeMap;
use std::ffi::{CString, OsString};
use std::fmt;
use std::fs::{File, OpenOptions, Permissions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use miette::Diagnostic as MietteDiagnostic;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::{Gid, Pid, Uid, User, chdir, geteuid, getgrouplist, setgid, setgroups, setuid};
use regex::Regex;
use thiserror::Error;

use crate::exec::redact::Redactor;
use crate::plan::{Action, Check, Command, Step, Text};
use crate::quote::{shell_quote, shell_word};

mod group;
mod output;
mod spawn;
mod spec;
mod stopper;
mod user;

pub use group::start_time;
use group::*;
use output::*;
use spawn::*;
pub use spec::ProcessSpec;
use spec::*;
pub use stopper::Stopper;
use user::*;

/// How long a step has to end after SIGTERM before its group gets SIGKILL.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);

/// The shell for `shell =`, by absolute path so that the step's `PATH`
/// cannot change which shell reads the script.
const SHELL: &str = "/bin/sh";

/// Why a step's command could not be run at all (as opposed to a run that
/// failed, which is an `Outcome`).
#[derive(Debug, Error, MietteDiagnostic)]
pub enum ProcessError {
    #[error("the step's command is empty")]
    #[diagnostic(
        code(plan::exec::empty_command),
        help("give `run` at least a program name")
    )]
    EmptyCommand,

    #[error("{what} is not known yet: `{shown}`")]
    #[diagnostic(
        code(plan::exec::unresolved),
        help(
            "this is a bug in plan-runner: values are resolved before a step runs; please report it"
        )
    )]
    Unresolved { what: String, shown: String },

    #[error("there is no system user `{user}`")]
    #[diagnostic(
        code(plan::exec::unknown_user),
        help("create the user, or change the step's `user`")
    )]
    UnknownUser { user: String },

    #[error("cannot run a step as `{user}`: the runner runs as `{current}`, not as root")]
    #[diagnostic(
        code(plan::exec::not_root),
        help("run `plan apply` as root, or as `{user}`, or remove the step's `user`")
    )]
    NotRoot { user: String, current: String },

    #[error("cannot look up the system user `{user}`")]
    #[diagnostic(code(plan::exec::user_lookup))]
    UserLookup {
        user: String,
        #[source]
        source: io::Error,
    },

    #[error("`fail_on_output` is not a valid regular expression: `{pattern}`")]
    #[diagnostic(code(plan::exec::bad_pattern))]
    BadPattern {
        pattern: String,
        #[source]
        source: regex::Error,
    },

    #[error("cannot write the step log `{}`", path.display())]
    #[diagnostic(code(plan::exec::log))]
    Log {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("cannot start `{program}`")]
    #[diagnostic(
        code(plan::exec::spawn),
        help("check that the program exists and is executable, and that the step's `cwd` exists")
    )]
    Spawn {
        program: String,
        #[source]
        source: io::Error,
    },

    #[error("lost track of the step's process")]
    #[diagnostic(code(plan::exec::wait))]
    Wait {
        #[source]
        source: io::Error,
    },
}

/// A child just started: what a journal records to find (and end) its
/// group after the runner died.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spawned {
    /// From 1.
    pub attempt: u32,
    pub pid: u32,
    /// The child's process group; equal to `pid`, since the child leads it.
    pub pgid: u32,
    /// The child's start time in clock ticks after boot (`/proc/<pid>/stat`
    /// field 22): with `pid` it names the process even after the pid is
    /// reused. `None` where `/proc` cannot be read.
    pub start_time: Option<u64>,
}

/// How the child ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Termination {
    Code(i32),
    Signal(i32),
}

impl fmt::Display for Termination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Termination::Code(code) => write!(f, "exit code {code}"),
            Termination::Signal(signal) => write!(f, "signal {}", signal_name(*signal)),
        }
    }
}

/// Why a step failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    Exit(i32),
    Signal(i32),
    /// Still running when its `timeout` (this long) passed.
    Timeout(Duration),
    /// Exited 0 but a line of its output (quoted here, redacted) matched
    /// `fail_on_output`.
    Output(String),
    /// Stopped through its `Stopper`.
    Interrupted,
}

impl Failure {
    fn retriable(&self) -> bool {
        matches!(
            self,
            Failure::Exit(_) | Failure::Signal(_) | Failure::Output(_)
        )
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Exit(code) => write!(f, "exited with code {code}"),
            Failure::Signal(signal) => write!(f, "killed by signal {}", signal_name(*signal)),
            Failure::Timeout(after) => {
                write!(f, "timed out after {}", crate::units::duration(*after))
            }
            Failure::Output(line) => write!(f, "its output matched `fail_on_output`: {line}"),
            Failure::Interrupted => f.write_str("interrupted"),
        }
    }
}

/// The end of a step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Succeeded {
        attempts: u32,
        duration: Duration,
    },
    Failed {
        /// 0 when stopped before the first attempt started.
        attempts: u32,
        duration: Duration,
        /// How the last attempt's process ended; `None` when none ran.
        termination: Option<Termination>,
        reason: Failure,
    },
}

impl Outcome {
    pub fn succeeded(&self) -> bool {
        matches!(self, Outcome::Succeeded { .. })
    }

    pub fn attempts(&self) -> u32 {
        match self {
            Outcome::Succeeded { attempts, .. } | Outcome::Failed { attempts, .. } => *attempts,
        }
    }

    pub fn duration(&self) -> Duration {
        match self {
            Outcome::Succeeded { duration, .. } | Outcome::Failed { duration, .. } => *duration,
        }
    }
}

/// A finished step: its outcome, and its log seen through the redactor.
#[derive(Clone, Debug)]
pub struct StepRun {
    pub outcome: Outcome,
    pub log: PathBuf,
    /// The processes (pid, command line) still in a failed attempt's group
    /// when its leader exited, killed with it: what the step left behind.
    pub left_in_group: Vec<(u32, String)>,
    /// Where the last attempt's header starts in the log.
    last_attempt_at: u64,
    redactor: Redactor,
}

impl StepRun {
    /// The last `n` lines of the last attempt (its header included when it
    /// is among them), every secret value replaced by `***`. Reads only the
    /// end of the log, however large it is.
    pub fn last_lines(&self, n: usize) -> io::Result<Vec<String>> {
        last_lines(&self.log, self.last_attempt_at, n, &self.redactor)
    }

    /// Hides this step's secrets in the log file itself, where the child
    /// may have written them (the runner never does). For when the step's
    /// processes are gone, such as the end of the run; it consumes the run
    /// since the log's offsets change: take `last_lines` first.
    pub fn redact_log(self) -> io::Result<bool> {
        self.redactor.redact_file(&self.log)
    }

    /// The first line of the last attempt that matches `pattern`,
    /// redacted: where an ERP server's log says what went wrong first.
    pub fn first_match(&self, pattern: &Regex) -> io::Result<Option<String>> {
        matching_line(&self.log, self.last_attempt_at, pattern, &self.redactor)
    }

    /// What hides this step's secrets, for anything else shown from it.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }
}

/// What wakes the thread that watches an attempt.
#[derive(Debug)]
enum Event {
    Exited(io::Result<ExitStatus>),
    Stop,
}

/// Runs the step: attempts until one succeeds, retries are used up, or it
/// times out or is stopped. `on_spawn` hears of each child as soon as it
/// runs. `Err` means the command could not be run at all.
pub fn run(
    spec: &ProcessSpec,
    stopper: &Stopper,
    mut on_spawn: impl FnMut(&Spawned),
) -> Result<StepRun, ProcessError> {
    let started = Instant::now();
    let prepared = Prepared::new(spec)?;
    let log = open_log(&spec.log)?;
    let log_error = |source| ProcessError::Log {
        path: spec.log.clone(),
        source,
    };
    let total = spec.retries.saturating_add(1);
    let mut attempt = 0;
    let mut last_attempt_at = log.metadata().map_err(log_error)?.len();
    let mut left_in_group = Vec::new();
    loop {
        if stopper.is_stopped() {
            return Ok(prepared.finish(
                spec,
                Outcome::Failed {
                    attempts: attempt,
                    duration: started.elapsed(),
                    termination: None,
                    reason: Failure::Interrupted,
                },
                last_attempt_at,
            ));
        }
        attempt += 1;
        last_attempt_at = log.metadata().map_err(log_error)?.len();
        let header = format!(
            "--- {} attempt {attempt} of {total}, in {}{}: {}\n",
            crate::units::timestamp(SystemTime::now()),
            prepared.cwd_shown,
            prepared.user_shown(),
            prepared.shown
        );
        write_line(&log, &header).map_err(log_error)?;
        let output_at = log.metadata().map_err(log_error)?.len();

        let attempt_started = Instant::now();
        let (status, ended, pgid, leader) =
            prepared.attempt(spec, &log, stopper, attempt, &mut on_spawn)?;
        let termination = match status.code() {
            Some(code) => Termination::Code(code),
            None => Termination::Signal(status.signal().unwrap_or(0)),
        };
        let failure = match ended {
            Some(failure) => Some(failure),
            None => match termination {
                Termination::Code(0) => match &spec.fail_on_output {
                    Some(pattern) => {
                        matching_line(&spec.log, output_at, pattern, &prepared.redactor)
                            .map_err(log_error)?
                            .map(Failure::Output)
                    }
                    None => None,
                },
                Termination::Code(code) => Some(Failure::Exit(code)),
                Termination::Signal(signal) => Some(Failure::Signal(signal)),
            },
        };
        if failure.is_some() {
            // The leader has exited; what it left in its group goes with
            // it (see the module doc), named for the report first. It is
            // not reaped yet: see `Leader`.
            left_in_group.extend(crate::exec::strays::group_members(pgid.as_raw()));
            signal_group(pgid, Signal::SIGKILL);
        }
        leader.reap();
        let ended_as = match &failure {
            None => termination.to_string(),
            Some(failure) => format!("{termination}, failed: {failure}"),
        };
        let footer = format!(
            "--- {} attempt {attempt} of {total} ended: {} after {}\n",
            crate::units::timestamp(SystemTime::now()),
            prepared.redactor.redact(&ended_as),
            crate::units::duration(attempt_started.elapsed())
        );
        write_line(&log, &footer).map_err(log_error)?;

        let outcome = match failure {
            None => Outcome::Succeeded {
                attempts: attempt,
                duration: started.elapsed(),
            },
            Some(reason) if reason.retriable() && attempt < total && !stopper.is_stopped() => {
                continue;
            }
            Some(reason) => Outcome::Failed {
                attempts: attempt,
                duration: started.elapsed(),
                termination: Some(termination),
                reason,
            },
        };
        let mut run = prepared.finish(spec, outcome, last_attempt_at);
        run.left_in_group = left_in_group;
        return Ok(run);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leader_that_exited_stays_unreaped_until_its_group_was_signalled() {
        let handle = duct::cmd!("sh", "-c", "exit 3")
            .before_spawn(|command| {
                command.process_group(0);
                Ok(())
            })
            .unchecked()
            .start()
            .unwrap();
        let pid = handle.pids()[0];
        let pgid = Pid::from_raw(i32::try_from(pid).unwrap());
        let status = wait_unreaped(pgid).unwrap();
        assert_eq!(status.code(), Some(3));
        // A zombie still: its pid, and so the group's number, are taken,
        // and the group can be signalled without reaching anyone else.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        assert!(stat.contains(") Z "), "{stat}");
        assert_eq!(killpg(pgid, None), Ok(()));
        Leader(handle).reap();
        assert!(std::fs::metadata(format!("/proc/{pid}")).is_err());
    }

    #[test]
    fn in_path_finds_executables_only_in_absolute_entries() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir(&a).unwrap();
        std::fs::create_dir(&b).unwrap();
        // Not executable in `a`, executable in `b`: execvp skips `a`'s.
        std::fs::write(a.join("tool"), "").unwrap();
        std::fs::write(b.join("tool"), "").unwrap();
        std::fs::set_permissions(b.join("tool"), Permissions::from_mode(0o755)).unwrap();
        let env = |path: String| vec![(OsString::from("PATH"), OsString::from(path))];
        let tool = OsString::from("tool");
        let both = env(format!("{}:{}", a.display(), b.display()));
        assert_eq!(in_path(&tool, &both), Some(b.join("tool").into_os_string()));
        // A path is not looked up, nor a name missing everywhere.
        assert_eq!(in_path(&OsString::from("./tool"), &both), None);
        assert_eq!(in_path(&OsString::from("absent"), &both), None);
        // A relative entry first belongs to the child's folder: std decides.
        assert_eq!(in_path(&tool, &env(format!("rel:{}", b.display()))), None);
        assert_eq!(in_path(&tool, &env(format!(":{}", b.display()))), None);
        assert_eq!(in_path(&tool, &[]), None);
    }

    #[test]
    fn the_runner_password_is_not_inherited_and_later_values_win() {
        let os = |a: &str, b: &str| (OsString::from(a), OsString::from(b));
        let env = child_env(
            [
                os("PATH", "/bin"),
                os("PGPASSWORD", "hunter2"),
                os("PGHOST", "old"),
            ]
            .into_iter(),
            [os("PGHOST", "target"), os("FOO", "1"), os("FOO", "2")].into_iter(),
        );
        assert_eq!(
            env,
            vec![os("FOO", "2"), os("PATH", "/bin"), os("PGHOST", "target")]
        );
    }

    #[test]
    fn start_time_is_read_for_a_live_process() {
        assert!(start_time(std::process::id()).is_some());
        assert_eq!(start_time(0), None);
    }

    #[test]
    fn last_lines_reads_only_the_tail_of_a_large_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut text = String::new();
        for i in 0..20_000 {
            text.push_str(&format!("line {i} pw=hunter2\n"));
        }
        std::fs::write(&path, &text).unwrap();
        let mut redactor = Redactor::new();
        redactor.learn("hunter2");
        let lines = last_lines(&path, 0, 3, &redactor).unwrap();
        assert_eq!(
            lines,
            [
                "line 19997 pw=***",
                "line 19998 pw=***",
                "line 19999 pw=***"
            ]
        );
        let from = u64::try_from(text.len()).unwrap() - 20;
        let short = last_lines(&path, from, 5, &redactor).unwrap();
        assert_eq!(short.len(), 1, "only what follows `start`: {short:?}");
    }
}
