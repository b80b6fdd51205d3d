//! One step's command as a child process: argv (or `sh -c` for `shell =`),
//! stdin from /dev/null, its own process group, stdout and stderr written by
//! the child straight into the step's log, a timeout and an interruption
//! that end the whole group, retries and `fail_on_output`. It runs one
//! step; ordering, journal and rollback belong to the callers. It never
//! prints and never talks to a database.
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

/// How long a step has to end after SIGTERM before its group gets SIGKILL.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);

/// The shell for `shell =`, by absolute path so that the step's `PATH`
/// cannot change which shell reads the script.
const SHELL: &str = "/bin/sh";

/// Everything needed to run one step's command.
#[derive(Clone, Debug)]
pub struct ProcessSpec {
    pub command: Command,
    /// The step's `env`: set last, so they win over everything else.
    pub env: Vec<(String, Text)>,
    /// The target's connection (`PGHOST`, `PGPORT`, `PGUSER`, `PGDATABASE`,
    /// `PGPASSFILE`), set by the caller; never a password.
    pub target_env: Vec<(String, String)>,
    /// The plan's folder: the default working folder, and what relative
    /// `cwd` and relative program paths are relative to.
    pub folder: PathBuf,
    pub cwd: Option<Text>,
    /// The system user to run as (only the root runner can switch).
    pub user: Option<Text>,
    pub timeout: Option<Duration>,
    /// How many more times a failed attempt is run (see the module doc).
    pub retries: u32,
    /// Fails an attempt that exits 0 when a line of its output matches.
    pub fail_on_output: Option<Regex>,
    /// The step's log: created 0600, appended to.
    pub log: PathBuf,
    /// Between SIGTERM and SIGKILL.
    pub grace: Duration,
    /// More values to hide in what is shown from the log, beside the
    /// secrets found in the command, `env`, `cwd` and `user`.
    pub secrets: Vec<String>,
}

impl ProcessSpec {
    pub fn new(command: Command, folder: impl Into<PathBuf>, log: impl Into<PathBuf>) -> Self {
        ProcessSpec {
            command,
            env: Vec::new(),
            target_env: Vec::new(),
            folder: folder.into(),
            cwd: None,
            user: None,
            timeout: None,
            retries: 0,
            fail_on_output: None,
            log: log.into(),
            grace: DEFAULT_GRACE,
            secrets: Vec::new(),
        }
    }

    /// The spec of a step that runs a command (`stop`, `start`, `script`,
    /// `update`, `check` with `run`); `None` for the other steps.
    pub fn for_step(
        step: &Step,
        folder: impl Into<PathBuf>,
        log: impl Into<PathBuf>,
    ) -> Result<Option<Self>, ProcessError> {
        let command = match &step.action {
            Action::Command(command)
            | Action::Update { command, .. }
            | Action::Check(Check::Command(command)) => command.clone(),
            Action::Backup(_) | Action::Sql(_) | Action::Check(Check::Sql { .. }) => {
                return Ok(None);
            }
        };
        let fail_on_output = step
            .fail_on_output
            .as_deref()
            .map(|pattern| {
                Regex::new(pattern).map_err(|source| ProcessError::BadPattern {
                    pattern: pattern.to_string(),
                    source,
                })
            })
            .transpose()?;
        let mut spec = ProcessSpec::new(command, folder, log);
        spec.env = step.env.clone();
        spec.cwd = step.cwd.clone();
        spec.user = step.user.clone();
        spec.timeout = step.timeout;
        spec.retries = step.retries;
        spec.fail_on_output = fail_on_output;
        Ok(Some(spec))
    }
}

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

    /// What hides this step's secrets, for anything else shown from it.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }
}

/// A way to end running steps from another thread (a Ctrl-C or SIGTERM
/// handler thread, or the run when a sibling step failed): each running
/// step's group gets SIGTERM, then SIGKILL after the grace period. Several
/// steps may run with clones of one stopper at once (`--jobs`): a stop
/// wakes them all. Once stopped it stays stopped, and later `run`s with it
/// start nothing; `on_failure` steps take a new one. Not for a signal
/// handler itself (it takes a lock): call it from a thread that waits for
/// signals.
#[derive(Clone, Debug, Default)]
pub struct Stopper(Arc<StopState>);

#[derive(Debug, Default)]
struct StopState {
    stopped: AtomicBool,
    /// Wakes the waiting attempts, one per running step, each under the
    /// number `attach` gave it.
    wakers: Mutex<Wakers>,
}

#[derive(Debug, Default)]
struct Wakers {
    next: u64,
    attached: Vec<(u64, Sender<Event>)>,
}

impl Stopper {
    pub fn new() -> Self {
        Stopper::default()
    }

    pub fn stop(&self) {
        self.0.stopped.store(true, Ordering::SeqCst);
        let wakers = self.0.wakers.lock().unwrap_or_else(PoisonError::into_inner);
        for (_, waker) in &wakers.attached {
            let _ = waker.send(Event::Stop);
        }
    }

    pub fn is_stopped(&self) -> bool {
        self.0.stopped.load(Ordering::SeqCst)
    }

    fn attach(&self, waker: Sender<Event>) -> u64 {
        let id = {
            let mut wakers = self.0.wakers.lock().unwrap_or_else(PoisonError::into_inner);
            let id = wakers.next;
            wakers.next += 1;
            wakers.attached.push((id, waker));
            id
        };
        // A stop that came before the waker was in place must still wake.
        if self.is_stopped() {
            self.stop();
        }
        id
    }

    fn detach(&self, id: u64) {
        self.0
            .wakers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .attached
            .retain(|(n, _)| *n != id);
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
            // it (see the module doc). It is not reaped yet: see `Leader`.
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
        return Ok(prepared.finish(spec, outcome, last_attempt_at));
    }
}

/// The command made concrete: values exposed, paths absolute, the user
/// looked up. Built once per step.
struct Prepared {
    program: OsString,
    /// The name the plan gave, as the child's `argv[0]`, when `program` is
    /// the path it was found at.
    arg0: Option<OsString>,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    cwd: PathBuf,
    cwd_shown: String,
    /// Present when the child must switch to another user.
    identity: Option<Arc<Identity>>,
    user_name: Option<String>,
    /// The command as the log shows it: secrets as `***`.
    shown: String,
    redactor: Redactor,
}

/// Who the child becomes, computed before the fork: between fork and exec
/// only async-signal-safe calls are allowed, so no user database lookups
/// (`initgroups` reads /etc/group) and no allocation happen there.
#[derive(Debug)]
struct Identity {
    uid: Uid,
    gid: Gid,
    groups: Vec<Gid>,
    /// Entered after switching, so the user must be able to reach it (as
    /// with `runuser`), not only root.
    cwd: CString,
}

impl Identity {
    fn enter(&self) -> io::Result<()> {
        setgroups(&self.groups)?;
        setgid(self.gid)?;
        setuid(self.uid)?;
        chdir(self.cwd.as_c_str())?;
        Ok(())
    }
}

impl Prepared {
    fn new(spec: &ProcessSpec) -> Result<Self, ProcessError> {
        let mut redactor = Redactor::new();
        for value in &spec.secrets {
            redactor.learn(value);
        }
        let texts = spec
            .env
            .iter()
            .map(|(_, value)| value)
            .chain(spec.cwd.iter())
            .chain(spec.user.iter());
        match &spec.command {
            Command::Argv(args) => args
                .iter()
                .chain(texts)
                .for_each(|t| redactor.learn_text(t)),
            Command::Shell(script) => std::iter::once(script)
                .chain(texts)
                .for_each(|t| redactor.learn_text(t)),
        }

        let folder = std::path::absolute(&spec.folder).map_err(|source| ProcessError::Spawn {
            program: spec.folder.display().to_string(),
            source,
        })?;
        let (program, args, shown) = match &spec.command {
            Command::Argv(argv) => {
                let (first, rest) = argv.split_first().ok_or(ProcessError::EmptyCommand)?;
                let first = expose(first, "the program")?;
                // DESIGN: relative paths in `run` are relative to the plan's
                // folder, whatever the step's `cwd`.
                let program = if first.contains('/') && Path::new(&first).is_relative() {
                    folder.join(&first).into_os_string()
                } else {
                    OsString::from(first)
                };
                let args = rest
                    .iter()
                    .enumerate()
                    .map(|(i, arg)| expose(arg, &format!("argument {}", i + 1)).map(OsString::from))
                    .collect::<Result<Vec<_>, _>>()?;
                let shown = argv
                    .iter()
                    .map(|arg| shell_word(&arg.to_string()))
                    .collect::<Vec<_>>()
                    .join(" ");
                (program, args, shown)
            }
            Command::Shell(script) => {
                let exposed = expose(script, "the shell script")?;
                let shown = format!("{SHELL} -c {}", shell_quote(&script.to_string()));
                (SHELL.into(), vec!["-c".into(), exposed.into()], shown)
            }
        };

        let cwd = match &spec.cwd {
            None => folder.clone(),
            Some(cwd) => folder.join(expose(cwd, "`cwd`")?),
        };
        let cwd_shown = match &spec.cwd {
            None => folder.display().to_string(),
            Some(cwd) => folder.join(cwd.to_string()).display().to_string(),
        };

        let mut identity_env = Vec::new();
        let (identity, user_name) = match &spec.user {
            None => (None, None),
            Some(user) => {
                let name = expose(user, "`user`")?;
                match switch_to(&name, &cwd)? {
                    None => (None, Some(user.to_string())),
                    Some((identity, home)) => {
                        identity_env = vec![
                            ("HOME".into(), home.into_os_string()),
                            ("USER".into(), OsString::from(&name)),
                            ("LOGNAME".into(), OsString::from(&name)),
                        ];
                        (Some(Arc::new(identity)), Some(user.to_string()))
                    }
                }
            }
        };
        let step_env = spec
            .env
            .iter()
            .map(|(name, value)| {
                expose(value, &format!("`env` value `{name}`")).map(|v| (name.into(), v.into()))
            })
            .collect::<Result<Vec<(OsString, OsString)>, _>>()?;
        let target_env = spec
            .target_env
            .iter()
            .map(|(name, value)| (name.into(), value.into()));
        let env = child_env(
            std::env::vars_os(),
            identity_env.into_iter().chain(target_env).chain(step_env),
        );
        // A step that switches user forks anyway (its `pre_exec`).
        let found = match identity {
            None => in_path(&program, &env),
            Some(_) => None,
        };
        let (program, arg0) = match found {
            Some(path) => (path, Some(program)),
            None => (program, None),
        };

        Ok(Prepared {
            program,
            arg0,
            args,
            env,
            cwd,
            cwd_shown,
            identity,
            user_name,
            shown,
            redactor,
        })
    }

    fn user_shown(&self) -> String {
        match &self.user_name {
            Some(user) => format!(", as {user}"),
            None => String::new(),
        }
    }

    /// Runs one attempt to its end: the exit status, why the runner ended
    /// it if it did, and the child's group.
    fn attempt(
        &self,
        spec: &ProcessSpec,
        log: &File,
        stopper: &Stopper,
        attempt: u32,
        on_spawn: &mut impl FnMut(&Spawned),
    ) -> Result<(ExitStatus, Option<Failure>, Pid, Leader), ProcessError> {
        let log_error = |source| ProcessError::Log {
            path: spec.log.clone(),
            source,
        };
        let stdout = log.try_clone().map_err(log_error)?;
        let stderr = log.try_clone().map_err(log_error)?;
        let identity = self.identity.clone();
        let arg0 = self.arg0.clone();
        let mut expression = duct::cmd(&self.program, &self.args)
            .stdin_null()
            .stdout_file(stdout)
            .stderr_file(stderr)
            .full_env(self.env.clone())
            .unchecked()
            .before_spawn(move |command| {
                // Its own group: the runner can signal the step and all
                // it started at once, and the terminal's Ctrl-C reaches the
                // runner only, which then ends the step in order.
                command.process_group(0);
                if let Some(arg0) = &arg0 {
                    command.arg0(arg0);
                }
                if let Some(identity) = identity.clone() {
                    // SAFETY: `enter` makes only async-signal-safe system
                    // calls, on values built before the fork.
                    unsafe {
                        command.pre_exec(move || identity.enter());
                    }
                }
                Ok(())
            });
        if self.identity.is_none() {
            expression = expression.dir(&self.cwd);
        }
        let handle = match expression.start() {
            Ok(handle) => handle,
            Err(source) => {
                let line = format!("--- cannot start: {source}\n");
                write_line(log, &self.redactor.redact(&line)).map_err(log_error)?;
                return Err(ProcessError::Spawn {
                    program: self
                        .redactor
                        .redact(&self.program.to_string_lossy())
                        .into_owned(),
                    source,
                });
            }
        };
        let attempt_started = Instant::now();
        let Some(&pid) = handle.pids().first() else {
            return Err(ProcessError::Wait {
                source: io::Error::other("the started command has no process"),
            });
        };
        let pgid = Pid::from_raw(i32::try_from(pid).unwrap_or(0));
        on_spawn(&Spawned {
            attempt,
            pid,
            pgid: pid,
            start_time: start_time(pid),
        });

        let (events, receiver) = mpsc::channel();
        let attached = stopper.attach(events.clone());
        // A thread blocked in waitid, rather than polling: it wakes the
        // watcher the moment the child exits, and leaves it unreaped.
        let spawned = std::thread::Builder::new()
            .name(format!("wait-{pid}"))
            .spawn(move || {
                let _ = events.send(Event::Exited(wait_unreaped(pgid)));
            });
        if let Err(source) = spawned {
            stopper.detach(attached);
            signal_group(pgid, Signal::SIGKILL);
            let _ = handle.wait();
            return Err(ProcessError::Wait { source });
        }
        let ended = watch(&receiver, pgid, attempt_started, spec.timeout, spec.grace);
        stopper.detach(attached);
        let leader = Leader(handle);
        match ended {
            Ok((status, failure)) => Ok((status, failure, pgid, leader)),
            Err(e) => {
                leader.reap();
                Err(e)
            }
        }
    }

    fn finish(&self, spec: &ProcessSpec, outcome: Outcome, last_attempt_at: u64) -> StepRun {
        StepRun {
            outcome,
            log: spec.log.clone(),
            last_attempt_at,
            redactor: self.redactor.clone(),
        }
    }
}

/// Where an attempt's watcher is.
enum Phase {
    Running,
    Terminating { kill_at: Instant },
    Killed,
}

/// Waits for the child's exit, ending its group on timeout or stop:
/// SIGTERM, then SIGKILL after `grace`. Every wait is a blocking receive
/// that the exit, the stopper or the next deadline ends.
fn watch(
    receiver: &Receiver<Event>,
    pgid: Pid,
    started: Instant,
    timeout: Option<Duration>,
    grace: Duration,
) -> Result<(ExitStatus, Option<Failure>), ProcessError> {
    let deadline = timeout.and_then(|t| started.checked_add(t));
    let mut ended = None;
    let mut phase = Phase::Running;
    loop {
        let wake = match phase {
            Phase::Running => deadline,
            Phase::Terminating { kill_at } => Some(kill_at),
            Phase::Killed => None,
        };
        let event = match wake {
            Some(at) => receiver.recv_timeout(at.saturating_duration_since(Instant::now())),
            None => receiver.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        let terminate = |ended: &mut Option<Failure>, why: Failure| {
            *ended = Some(why);
            signal_group(pgid, Signal::SIGTERM);
            Phase::Terminating {
                kill_at: Instant::now()
                    .checked_add(grace)
                    .unwrap_or_else(Instant::now),
            }
        };
        match event {
            Ok(Event::Exited(status)) => {
                return status
                    .map(|status| (status, ended))
                    .map_err(|source| ProcessError::Wait { source });
            }
            Ok(Event::Stop) => {
                if matches!(phase, Phase::Running) {
                    phase = terminate(&mut ended, Failure::Interrupted);
                }
            }
            Err(RecvTimeoutError::Timeout) => match phase {
                Phase::Running => {
                    let after = timeout.unwrap_or_default();
                    phase = terminate(&mut ended, Failure::Timeout(after));
                }
                Phase::Terminating { .. } | Phase::Killed => {
                    signal_group(pgid, Signal::SIGKILL);
                    phase = Phase::Killed;
                }
            },
            Err(RecvTimeoutError::Disconnected) => {
                return Err(ProcessError::Wait {
                    source: io::Error::other("the waiting thread ended without a status"),
                });
            }
        }
    }
}

/// A step's leader that has exited (or is being given up on) and is not
/// reaped yet. While it is an unreaped zombie its pid stays taken, and
/// with it the number of its group: a `killpg` can only reach this step's
/// processes. Once reaped, an empty group's number is free, and the next
/// process to get that pid and lead a group of its own (any PostgreSQL
/// backend does, and any other step) would receive a late `killpg`.
struct Leader(duct::Handle);

impl Leader {
    fn reap(self) {
        let _ = self.0.wait();
    }
}

/// Waits until the process `pid` exits, without reaping it (`WNOWAIT`):
/// its exit status, as `waitpid` would give it.
fn wait_unreaped(pid: Pid) -> io::Result<ExitStatus> {
    use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
    loop {
        match waitid(Id::Pid(pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT) {
            Ok(WaitStatus::Exited(_, code)) => {
                return Ok(ExitStatus::from_raw((code & 0xff) << 8));
            }
            Ok(WaitStatus::Signaled(_, signal, core)) => {
                return Ok(ExitStatus::from_raw(
                    signal as i32 | if core { 0x80 } else { 0 },
                ));
            }
            // Only exits were asked for; anything else, wait again.
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Signals every process of the group. A group already empty is not an
/// error. It runs only while the group's leader is alive or an unreaped
/// zombie (`Leader`), so the number cannot name another group.
fn signal_group(pgid: Pid, signal: Signal) {
    if pgid.as_raw() > 1 {
        let _ = killpg(pgid, signal);
    }
}

/// The child's environment: the runner's own, without `PGPASSWORD` (a
/// password reaches children only through the caller's 0600 `PGPASSFILE`)
/// and the other libpq variables that would take it elsewhere than the
/// target (`CHILD_ENV_REMOVE`: a `PGSERVICE` would beat the target's
/// `PGHOST`), then `set` in order, a later value winning.
fn child_env(
    inherited: impl Iterator<Item = (OsString, OsString)>,
    set: impl Iterator<Item = (OsString, OsString)>,
) -> Vec<(OsString, OsString)> {
    let mut env: BTreeMap<OsString, OsString> = inherited
        .filter(|(name, _)| {
            !crate::db::conninfo::CHILD_ENV_REMOVE
                .iter()
                .any(|removed| name == removed)
        })
        .collect();
    env.extend(set);
    env.into_iter().collect()
}

/// A bare program name (`true`, `psql`) looked up in the child's `PATH`,
/// as `execvp` would. Given a path, std starts the child with
/// `posix_spawn`, which shares the runner's memory until the `exec`; given
/// a bare name with a `PATH` of our own in the environment, it forks and
/// copies the runner's page tables, about 0.7 ms per step here
/// (docs/performance.md, "Apply"). `None` (std searches as before) for a
/// path, when nothing matches, or when a relative `PATH` entry comes
/// first: that one is relative to the child's working directory.
fn in_path(program: &OsString, env: &[(OsString, OsString)]) -> Option<OsString> {
    if program.is_empty() || program.as_bytes().contains(&b'/') {
        return None;
    }
    let (_, path) = env.iter().find(|(name, _)| name == "PATH")?;
    for dir in std::env::split_paths(path) {
        if !dir.is_absolute() {
            return None;
        }
        let candidate = dir.join(program);
        let executable = candidate.metadata().is_ok_and(|m| m.is_file())
            && nix::unistd::access(&candidate, nix::unistd::AccessFlags::X_OK).is_ok();
        if executable {
            return Some(candidate.into_os_string());
        }
    }
    None
}

/// When `name` is another user than the runner's: who to become, and its
/// home. `None` when the runner already is that user.
fn switch_to(name: &str, cwd: &Path) -> Result<Option<(Identity, PathBuf)>, ProcessError> {
    let lookup_error = |source: nix::Error| ProcessError::UserLookup {
        user: name.to_string(),
        source: source.into(),
    };
    let user = User::from_name(name)
        .map_err(lookup_error)?
        .ok_or_else(|| ProcessError::UnknownUser {
            user: name.to_string(),
        })?;
    let me = geteuid();
    if user.uid == me {
        return Ok(None);
    }
    if !me.is_root() {
        let current = User::from_uid(me)
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_else(|| me.to_string());
        return Err(ProcessError::NotRoot {
            user: name.to_string(),
            current,
        });
    }
    let c_name = CString::new(name).map_err(|_| ProcessError::UnknownUser {
        user: name.to_string(),
    })?;
    let groups = getgrouplist(&c_name, user.gid).map_err(lookup_error)?;
    let cwd = CString::new(cwd.as_os_str().as_bytes()).map_err(|_| ProcessError::Spawn {
        program: cwd.display().to_string(),
        source: io::Error::new(
            io::ErrorKind::InvalidInput,
            "the folder name holds a NUL byte",
        ),
    })?;
    Ok(Some((
        Identity {
            uid: user.uid,
            gid: user.gid,
            groups,
            cwd,
        },
        user.dir,
    )))
}

fn expose(text: &Text, what: &str) -> Result<String, ProcessError> {
    text.expose().ok_or_else(|| ProcessError::Unresolved {
        what: what.to_string(),
        shown: text.to_string(),
    })
}

/// Opens (or creates) the log for appending, readable by its owner only,
/// also when an earlier run left it with a wider mode.
fn open_log(path: &Path) -> Result<File, ProcessError> {
    let log_error = |source| ProcessError::Log {
        path: path.to_path_buf(),
        source,
    };
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .mode(0o600)
        .open(path)
        .map_err(log_error)?;
    file.set_permissions(Permissions::from_mode(0o600))
        .map_err(log_error)?;
    Ok(file)
}

/// Appends a runner line, on a line of its own even when the child's last
/// output had no final newline.
fn write_line(log: &File, line: &str) -> io::Result<()> {
    let len = log.metadata()?.len();
    let mut last = [0u8; 1];
    let glued = len > 0 && log.read_at(&mut last, len - 1)? == 1 && last[0] != b'\n';
    let text = if glued {
        format!("\n{line}")
    } else {
        line.to_string()
    };
    let mut log = log;
    log.write_all(text.as_bytes())
}

/// The first line of the log from `from` on that matches, redacted.
fn matching_line(
    path: &Path,
    from: u64,
    pattern: &Regex,
    redactor: &Redactor,
) -> io::Result<Option<String>> {
    let mut file = File::open(path)?;
    let end = file.metadata()?.len();
    file.seek(SeekFrom::Start(from))?;
    // Only this attempt's bytes, as they stand at its exit: a server the
    // step started may go on writing.
    let mut reader = BufReader::new(file.take(end.saturating_sub(from)));
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(None);
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\n', '\r']);
        if pattern.is_match(text) {
            return Ok(Some(redactor.redact(text).into_owned()));
        }
    }
}

/// The last `n` lines of the log from `start` on, redacted; reads backwards
/// in growing chunks so a large log costs only its tail.
fn last_lines(path: &Path, start: u64, n: usize, redactor: &Redactor) -> io::Result<Vec<String>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let file = File::open(path)?;
    let end = file.metadata()?.len();
    let start = start.min(end);
    let mut chunk: u64 = 8 * 1024;
    loop {
        let from = end.saturating_sub(chunk).max(start);
        let len = usize::try_from(end - from).map_err(io::Error::other)?;
        let mut bytes = vec![0; len];
        file.read_exact_at(&mut bytes, from)?;
        let text = String::from_utf8_lossy(&bytes);
        let text = redactor.redact(&text);
        let mut lines: Vec<&str> = text.split('\n').collect();
        if text.ends_with('\n') {
            lines.pop();
        }
        let whole = from == start;
        if !whole && !lines.is_empty() {
            // Cut somewhere inside: not a whole line.
            lines.remove(0);
        }
        if whole || lines.len() >= n {
            let skip = lines.len().saturating_sub(n);
            return Ok(lines
                .into_iter()
                .skip(skip)
                .map(|line| line.trim_end_matches('\r').to_string())
                .collect());
        }
        chunk = chunk.saturating_mul(2);
    }
}

/// Field 22 of `/proc/<pid>/stat`. The command name (field 2) is in
/// parentheses and may hold spaces and parentheses itself, so fields are
/// counted after the last `)`. `None` when the process is not there.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = stat.get(stat.rfind(')')? + 1..)?;
    after_name.split_whitespace().nth(19)?.parse().ok()
}

fn signal_name(signal: i32) -> String {
    match Signal::try_from(signal) {
        Ok(known) => format!("{} ({signal})", known.as_str()),
        Err(_) => signal.to_string(),
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
