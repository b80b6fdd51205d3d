//! What `plan recover` does for a rehearsal whose runner died: its
//! steps' processes ended and its copies dropped, as its record and its
//! run's journal say, once both are trusted. The target is not touched.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use postgres::Client;

use super::{Copies, FILE_NAME, drop_all};
use crate::db::runs;
use crate::exec::journal::{self, Story};

/// For `plan recover`: the target's rehearsals whose runner died (kill
/// -9, a lost machine) have their steps' processes ended and their copies
/// dropped, as their `copies.json` and their run's journal say. One line
/// for each.
pub fn drop_dead(
    maintenance: &mut Client,
    database: &str,
    state_dir: Option<&Path>,
    default_state_dir: &Path,
) -> Vec<String> {
    let rows = runs::unfinished_rehearsals(maintenance, database).unwrap_or_default();
    let mut lines = Vec::new();
    for row in rows {
        let id = &row.run_id;
        if row.host != runs::hostname() {
            lines.push(format!(
                "rehearsal {id} of `{database}` ran on host {}: run plan recover there to drop its copy",
                row.host
            ));
            continue;
        }
        if let Ok(pid) = u32::try_from(row.pid)
            && pid != std::process::id()
            && std::fs::read_link(format!("/proc/{pid}/exe")).ok() == std::env::current_exe().ok()
        {
            lines.push(format!(
                "rehearsal {id} of `{database}` is still running (pid {pid}): it drops its copy itself"
            ));
            continue;
        }
        let mut candidates: Vec<PathBuf> = state_dir
            .map(|d| d.join("runs").join(id))
            .into_iter()
            .collect();
        candidates.extend(row.run_folder.as_deref().map(PathBuf::from));
        candidates.push(default_state_dir.join("runs").join(id));
        let Some(folder) = candidates.into_iter().find(|c| c.join(FILE_NAME).is_file()) else {
            lines.push(format!(
                "rehearsal {id} of `{database}` died, but its {} is not on this machine: give --state-dir",
                FILE_NAME
            ));
            continue;
        };
        // What the record and the journal name is dropped: both must be
        // this user's alone, and name nothing but a rehearsal's copies.
        let run = folder.join("run");
        let journal = run.join(crate::exec::journal::FILE_NAME);
        let mut private = vec![folder.clone(), folder.join(FILE_NAME)];
        if journal.exists() {
            private.extend([run.clone(), journal]);
        }
        if let Err(untrusted) = crate::private::check_all(private.iter().map(PathBuf::as_path)) {
            lines.push(format!("rehearsal {id} is left as it is: {untrusted}"));
            continue;
        }
        let Some(copies) = Copies::read(&folder) else {
            lines.push(format!(
                "rehearsal {id} is left as it is: {} does not read as its record",
                folder.join(FILE_NAME).display()
            ));
            continue;
        };
        if let Some(why) = copies.untrusted(&folder, id, database) {
            lines.push(format!(
                "rehearsal {id} is left as it is: {}: {why}",
                folder.join(FILE_NAME).display()
            ));
            continue;
        }
        end_processes(&copies);
        let dropped = drop_all(maintenance, &copies);
        let _ = runs::finish(maintenance, &copies.inner_run_id, "dropped");
        let _ = runs::finish(maintenance, id, &runs::rehearsal_state("dropped"));
        if dropped.left.is_empty() {
            lines.push(format!(
                "rehearsal {id} of `{database}` had died: its copy `{}` and {} other item(s) were dropped",
                copies.copy,
                dropped.dropped.len().saturating_sub(1)
            ));
        } else {
            lines.push(format!(
                "rehearsal {id} of `{database}` had died: NOT DROPPED (remove by hand): {}",
                dropped.left.join("; ")
            ));
        }
    }
    lines
}

/// Ends what the dead rehearsal's steps left running: their process
/// groups (when provably theirs) and their cgroups.
fn end_processes(copies: &Copies) {
    let Ok(contents) = journal::read(&copies.inner_folder) else {
        return;
    };
    let story = Story::of(&contents.entries);
    for group in &story.groups {
        let _ = crate::exec::run::dead::end_group(group, Duration::from_secs(10));
    }
    for recorded in &story.cgroups {
        let Ok(path) = crate::exec::cgroup::trusted(recorded, &copies.inner_run_id) else {
            continue;
        };
        crate::exec::cgroup::kill(&path);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !crate::exec::cgroup::members(&path).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = crate::exec::cgroup::remove(&path);
    }
}
