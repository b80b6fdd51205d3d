//! A step's command as a child process (`exec::process`), with what the run
//! adds: the target's environment, the run folder's log, the default user,
//! every secret of the plan to hide.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::exec::process::{self, Outcome, ProcessSpec, Spawned, Stopper};
use crate::plan::{Command, Piece, Plan, Step, Text};

/// What became of a command step.
pub struct CommandOutcome {
    pub attempts: u32,
    pub log: PathBuf,
    pub last_lines: Vec<String>,
    /// On failure, the first line that matched `fail_on_output` (or an
    /// ERP server's first `ERROR`/`CRITICAL` line), redacted.
    pub first_error: Option<String>,
    /// Why it failed, redacted; `None` on success.
    pub error: Option<String>,
    /// What a failed attempt left in its process group, killed with it:
    /// (pid, command line), not redacted.
    pub left_in_group: Vec<(u32, String)>,
}

/// Every secret value of the plan, to hide wherever output is shown.
pub fn secrets(plan: &Plan) -> Vec<String> {
    plan.vars
        .iter()
        .flat_map(|(_, text)| text.0.iter())
        .filter_map(|piece| match piece {
            Piece::Secret(s) if !s.expose().is_empty() => Some(s.expose().to_string()),
            _ => None,
        })
        .collect()
}

/// Where to run and with what.
pub struct Setting<'a> {
    pub plan: &'a Plan,
    pub target_env: &'a [(String, String)],
    pub run_folder: &'a Path,
    pub step_user: Option<&'a str>,
    pub grace: Duration,
    pub stopper: &'a Stopper,
    /// Hears of each child as it starts (the journal records its group).
    pub on_spawn: &'a dyn Fn(&Spawned),
    /// The step's cgroup (`exec::cgroup`), when the run has one.
    pub cgroup: Option<&'a Path>,
}

/// Where a command step's output goes: `prefix` tells `on_failure` steps'
/// logs apart.
pub fn log_path(run_folder: &Path, step: &Step, prefix: &str) -> PathBuf {
    run_folder
        .join("logs")
        .join(format!("{prefix}{}.log", step.name))
}

/// The prefix of an `on_failure` step's log name (`on_failure-NAME.log`).
pub const ON_FAILURE_PREFIX: &str = "on_failure-";

pub fn run_command(
    setting: &Setting<'_>,
    step: &Step,
    command: &Command,
    prefix: &str,
) -> CommandOutcome {
    let log = log_path(setting.run_folder, step, prefix);
    let mut outcome = CommandOutcome {
        attempts: 0,
        log: log.clone(),
        last_lines: Vec::new(),
        first_error: None,
        error: None,
        left_in_group: Vec::new(),
    };
    let spec = match ProcessSpec::for_step(step, &setting.plan.folder, &log) {
        Ok(Some(mut spec)) => {
            spec.command = command.clone();
            spec.target_env = setting.target_env.to_vec();
            spec.grace = setting.grace;
            spec.secrets = secrets(setting.plan);
            spec.cgroup = setting.cgroup.map(Path::to_path_buf);
            if spec.user.is_none() {
                spec.user = setting.step_user.map(Text::lit);
            }
            spec
        }
        Ok(None) => {
            outcome.error = Some("internal error: not a command step".into());
            return outcome;
        }
        Err(e) => {
            outcome.error = Some(e.to_string());
            return outcome;
        }
    };
    let fail_on_output = spec.fail_on_output.clone();
    let mut ran = process::run(&spec, setting.stopper, |spawned| {
        (setting.on_spawn)(spawned);
    });
    // A full disk under the state folder must not keep on_failure (the
    // restart of the old server) from running: its log goes to a private
    // file in the system's temporary folder instead, and the report says
    // where.
    if prefix == ON_FAILURE_PREFIX
        && matches!(ran, Err(process::ProcessError::Log { .. }))
        && let Ok(elsewhere) = tempfile::Builder::new()
            .prefix(&format!("plan-runner-{}-", step.name))
            .suffix(".log")
            .tempfile()
            .and_then(|f| f.keep().map_err(|e| e.error))
    {
        let mut spec = spec;
        spec.log = elsewhere.1;
        outcome.log = spec.log.clone();
        ran = process::run(&spec, setting.stopper, |spawned| {
            (setting.on_spawn)(spawned);
        });
    }
    match ran {
        Ok(run) => {
            outcome.attempts = run.outcome.attempts();
            outcome.left_in_group = run.left_in_group.clone();
            if let Outcome::Failed { reason, .. } = &run.outcome {
                let attempts = run.outcome.attempts();
                outcome.error = Some(if attempts > 1 {
                    format!("{reason} (after {attempts} attempts)")
                } else {
                    reason.to_string()
                });
                outcome.last_lines = run.last_lines(15).unwrap_or_default();
                outcome.first_error = match reason {
                    process::Failure::Output(line) => Some(line.clone()),
                    _ => first_error_line(&run, fail_on_output.as_ref()),
                };
            }
        }
        Err(e) => outcome.error = Some(e.to_string()),
    }
    outcome
}

/// The first line of a failed step's output that says what went wrong:
/// one matching its `fail_on_output`, else an ERP server's first `ERROR`
/// or `CRITICAL` line (the pattern `update` steps fail on by default).
fn first_error_line(run: &process::StepRun, pattern: Option<&regex::Regex>) -> Option<String> {
    let erp = regex::Regex::new(crate::plan::UPDATE_FAIL_ON_OUTPUT).ok()?;
    pattern
        .and_then(|p| run.first_match(p).ok().flatten())
        .or_else(|| run.first_match(&erp).ok().flatten())
}
