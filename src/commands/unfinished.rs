//! An unfinished run as `recover` and `--resume` find it on this machine:
//! its run folder, and whether its runner is in fact still alive.

use std::path::{Path, PathBuf};

use crate::commands::default_state_dir;
use crate::db::runs::{self, RunRow};
use crate::exec::journal::{self, Story};

/// The run's folder on this machine: under `--state-dir`, where the runs
/// table says, or under the default state folder; the first that holds a
/// journal.
pub fn run_folder(row: &RunRow, state_dir: Option<&Path>) -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(dir) = state_dir {
        candidates.push(dir.join("runs").join(&row.run_id));
    }
    if let Some(folder) = &row.run_folder {
        candidates.push(PathBuf::from(folder));
    }
    candidates.push(default_state_dir().join("runs").join(&row.run_id));
    candidates
        .into_iter()
        .find(|c| c.join(journal::FILE_NAME).is_file())
}

/// Why the run's runner may still be alive (same host, its pid a `plan`
/// process that the journal names as the run's last runner, the one that
/// started it or the last to resume it): a runner that lost its
/// lock connection is still rolling back, and must not be raced.
pub fn runner_alive(row: &RunRow) -> Option<String> {
    if row.host != runs::hostname() {
        return None;
    }
    let pid = u32::try_from(row.pid).ok()?;
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    let ours = std::env::current_exe().ok()?;
    if exe != ours || pid == std::process::id() {
        return None;
    }
    let folder = PathBuf::from(row.run_folder.as_deref()?);
    let story = Story::of(&journal::read(&folder).ok()?.entries);
    // The runner that last drove the run: the one that started it, or the
    // last `--resume`.
    match story.runner {
        Some((_, runner)) if runner == pid => Some(format!(
            "the runner of run {} (pid {pid}) is still alive but lost its lock: it is ending the run itself; wait for it",
            row.run_id
        )),
        _ => None,
    }
}
