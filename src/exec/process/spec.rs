//! What a step's command is: its argv or `sh -c` script, environment,
//! folder and limits, built from the resolved step.

use super::*;

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
    /// The cgroup the child joins before it runs (`exec::cgroup`), so
    /// that all it starts stays countable however it detaches.
    pub cgroup: Option<PathBuf>,
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
            cgroup: None,
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

/// The child's environment: the runner's own, without `PGPASSWORD` (a
/// password reaches children only through the caller's 0600 `PGPASSFILE`)
/// and the other libpq variables that would take it elsewhere than the
/// target (`CHILD_ENV_REMOVE`: a `PGSERVICE` would beat the target's
/// `PGHOST`), then `set` in order, a later value winning.
pub(super) fn child_env(
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
pub(super) fn in_path(program: &OsString, env: &[(OsString, OsString)]) -> Option<OsString> {
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

pub(super) fn expose(text: &Text, what: &str) -> Result<String, ProcessError> {
    text.expose().ok_or_else(|| ProcessError::Unresolved {
        what: what.to_string(),
        shown: text.to_string(),
    })
}
