//! A step's command as a child process, with what the run knows (target
//! environment, run folder, default user).

use std::path::Path;

use crate::exec::run::Options;
use crate::plan::{Command, Plan, Step};

/// What became of a command step.
pub struct CommandOutcome {
    pub attempts: u32,
    pub log: std::path::PathBuf,
    pub last_lines: Vec<String>,
    /// Why it failed, redacted; `None` on success.
    pub error: Option<String>,
}

pub fn run_command(
    plan: &Plan,
    step: &Step,
    command: &Command,
    target_env: &[(String, String)],
    run_folder: &Path,
    opts: &Options,
) -> CommandOutcome {
    let _ = (plan, command, target_env, opts);
    CommandOutcome {
        attempts: 0,
        log: run_folder.join("logs").join(format!("{}.log", step.name)),
        last_lines: Vec::new(),
        error: Some("process steps are not wired yet".into()),
    }
}
