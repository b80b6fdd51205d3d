//! One attempt of a step: the child spawned in its own process group
//! (as the step's user, writing into its log), watched to its end.

use super::*;

/// The command made concrete: values exposed, paths absolute, the user
/// looked up. Built once per step.
pub(super) struct Prepared {
    pub(super) program: OsString,
    /// The name the plan gave, as the child's `argv[0]`, when `program` is
    /// the path it was found at.
    pub(super) arg0: Option<OsString>,
    pub(super) args: Vec<OsString>,
    pub(super) env: Vec<(OsString, OsString)>,
    pub(super) cwd: PathBuf,
    pub(super) cwd_shown: String,
    /// Present when the child must switch to another user.
    pub(super) identity: Option<Arc<Identity>>,
    pub(super) user_name: Option<String>,
    /// The command as the log shows it: secrets as `***`.
    pub(super) shown: String,
    pub(super) redactor: Redactor,
}

impl Prepared {
    pub(super) fn new(spec: &ProcessSpec) -> Result<Self, ProcessError> {
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

    pub(super) fn user_shown(&self) -> String {
        match &self.user_name {
            Some(user) => format!(", as {user}"),
            None => String::new(),
        }
    }

    /// Runs one attempt to its end: the exit status, why the runner ended
    /// it if it did, and the child's group.
    pub(super) fn attempt(
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
        let cgroup_procs = spec
            .cgroup
            .as_deref()
            .and_then(crate::exec::cgroup::procs_file);
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
                if let Some(procs) = cgroup_procs.clone() {
                    // First, while still the runner's user. A child that
                    // cannot join runs anyway: the subreaper still finds
                    // what it leaves.
                    // SAFETY: `join` makes only async-signal-safe system
                    // calls, on a path built before the fork.
                    unsafe {
                        command.pre_exec(move || {
                            let _ = crate::exec::cgroup::join(&procs);
                            Ok(())
                        });
                    }
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

    pub(super) fn finish(
        &self,
        spec: &ProcessSpec,
        outcome: Outcome,
        last_attempt_at: u64,
    ) -> StepRun {
        StepRun {
            outcome,
            log: spec.log.clone(),
            left_in_group: Vec::new(),
            last_attempt_at,
            redactor: self.redactor.clone(),
        }
    }
}
