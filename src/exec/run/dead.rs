//! What a run whose runner died left behind, as the journal tells it:
//! whether it can be resumed and from which step, which steps it finished,
//! its backups, and the process groups of its steps, ended here when they
//! are provably its own. Shared by `resume` and `recover`.

use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::exec::backup::Taken;
use crate::exec::journal::{Group, Story};
use crate::exec::process;
use crate::exec::report::BackupReport;

/// Why the run that `story` tells cannot be resumed, in a line or two that
/// say what to do instead; `None` when it can be.
pub fn refusal(story: &Story, run_id: &str) -> Option<String> {
    if story.rollback_started {
        return Some(match story.rollback_ended {
            Some(_) => format!(
                "run {run_id} cannot be resumed: its earlier steps' work was undone by the rollback; start again without --resume"
            ),
            None => format!(
                "run {run_id} cannot be resumed: its runner died while rolling it back, so its earlier steps' work may be partly undone\n  finish the rollback with `plan recover`, then start again without --resume"
            ),
        });
    }
    if let Some(outcome) = story.ended.as_deref().filter(|o| *o != "stopped") {
        return Some(format!(
            "run {run_id} cannot be resumed: it ended ({outcome}) but its row in plan_runner.runs was not closed\n  `plan recover` closes it; then start again without --resume if the database is not at the plan's `to`"
        ));
    }
    if let Some((step, method, copy)) = story.unfinished_backups.first() {
        return Some(format!(
            "run {run_id} cannot be resumed: its runner died while taking backup `{step}` ({method}), which may be left half made as {copy}\n  `plan recover` restores what was backed up before it; then start again without --resume"
        ));
    }
    None
}

/// The steps of the main graph whose last end in the journal was a
/// success, with their seconds then: they are not run again.
pub fn done(story: &Story) -> Vec<(String, f64)> {
    story
        .ended_steps
        .iter()
        .filter(|(_, status, _)| status == "succeeded")
        .map(|(step, _, seconds)| (step.clone(), *seconds))
        .collect()
}

/// The step a resume would start with: the one that was running when
/// the runner died, or the one that failed under `--no-rollback`.
pub fn next_step(story: &Story) -> Option<&str> {
    story
        .running
        .first()
        .map(|(step, _, _)| step.as_str())
        .or_else(|| story.failed.last().map(|(step, _)| step.as_str()))
}

/// How a backup the dead run took shows in this run's report.
pub fn taken_report(t: &Taken) -> BackupReport {
    BackupReport {
        step: t.step.clone(),
        method: t.method.as_str().into(),
        database: t.database.clone(),
        copy: t.copy.clone(),
        paths: t.trees.iter().map(|tree| tree.original.clone()).collect(),
        seconds: t.seconds,
        fingerprint_seconds: t.fingerprint_seconds,
        bytes: t.bytes,
        state: "taken".into(),
        program: t.program.as_ref().map(ToString::to_string),
    }
}

/// Ends a process group the dead run left, if it is still the run's: its
/// leader must be alive with the recorded start time, so that a pid the
/// system has since given to another process is never signalled. Returns
/// what was done, or `None` when nothing was left.
pub fn end_group(group: &Group, grace: Duration) -> Option<String> {
    let leader = process::start_time(group.pid);
    let what = format!(
        "process group {} of step `{}` (pid {})",
        group.pgid, group.step, group.pid
    );
    match (leader, group.start_time) {
        (Some(now), Some(recorded)) if now == recorded => {}
        (Some(_), _) => {
            // The pid now names another process: not ours to signal.
            return None;
        }
        (None, _) => {
            let left = members(group.pgid);
            if left.is_empty() {
                return None;
            }
            return Some(format!(
                "{what}: its leader is gone but processes {left:?} remain in the group; they were not ended, since nothing proves they are the run's (end them by hand if they are)"
            ));
        }
    }
    let pgid = Pid::from_raw(i32::try_from(group.pgid).unwrap_or(0));
    if pgid.as_raw() <= 1 {
        return None;
    }
    let _ = killpg(pgid, Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while !members(group.pgid).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if members(group.pgid).is_empty() {
        return Some(format!("ended {what} (SIGTERM)"));
    }
    let _ = killpg(pgid, Signal::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !members(group.pgid).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(format!(
        "ended {what} (SIGKILL after {:.0} s)",
        grace.as_secs_f64()
    ))
}

/// The live processes (not zombies) of process group `pgid`.
fn members(pgid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    let after = stat.get(stat.rfind(')')? + 1..)?.to_string();
                    let mut fields = after.split_whitespace();
                    let state = fields.next()?;
                    let group: u32 = fields.nth(1)?.parse().ok()?;
                    Some(group == pgid && !matches!(state, "Z" | "X"))
                })
                .unwrap_or(false)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_whose_leader_started_at_another_time_is_left_alone() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = child.id();
        let real = process::start_time(pid).unwrap();
        let wrong = Group {
            step: "s".into(),
            pid,
            pgid: pid,
            start_time: Some(real + 1),
        };
        assert_eq!(end_group(&wrong, Duration::from_secs(1)), None);
        assert_eq!(members(pid), vec![pid]);
        let right = Group {
            start_time: Some(real),
            ..wrong
        };
        let note = end_group(&right, Duration::from_secs(5)).unwrap();
        assert!(note.starts_with("ended process group"), "{note}");
        let status = child.wait().unwrap();
        assert!(!status.success());
    }

    use std::os::unix::process::CommandExt;
}
