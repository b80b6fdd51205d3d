//! The kernel's own list of a run's processes: a cgroup (v2) for the run,
//! `plan-runner-<run id>`, made beside the runner's own cgroup, and one
//! per step under it, `step-<n>`. A step's command joins its step's cgroup
//! before it runs (`exec::process`), and everything it starts is born in
//! it and stays there however it detaches (setsid, double fork): neither
//! its parent nor its session says what is the step's, the cgroup does,
//! even after the runner itself was killed and its orphans went to PID 1.
//!
//! This module knows the cgroup files only; `exec::strays` decides what is
//! ended when and names it. Where no cgroup2 hierarchy is mounted or none
//! can be made (no rights, a container without delegation), there is none
//! and `exec::strays` falls back to the child subreaper.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// The prefix of a run's cgroup name; the run id follows.
pub const PREFIX: &str = "plan-runner-";

/// Where the cgroup2 hierarchy is mounted (`/sys/fs/cgroup`, or
/// `/sys/fs/cgroup/unified` on a hybrid system).
pub fn mount() -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    text.lines().find_map(|line| {
        // `... mount-point options [optional fields] - fstype source ...`
        let (before, after) = line.split_once(" - ")?;
        if after.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        before.split_whitespace().nth(4).map(PathBuf::from)
    })
}

/// The runner's own cgroup, from `/proc/self/cgroup`'s `0::` line.
fn own(mount: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let relative = text.lines().find_map(|l| l.strip_prefix("0::"))?;
    Some(mount.join(relative.trim_start_matches('/')))
}

/// Makes the run's cgroup, under the runner's own cgroup or else under the
/// hierarchy's root; `None` where neither can be made. One left by an
/// earlier runner of the same run (a resume, a recovery) is taken over:
/// the run id names one run, whose runner holds the target's lock.
pub fn create(run_id: &str) -> Option<PathBuf> {
    let mount = mount()?;
    let name = format!("{PREFIX}{run_id}");
    let mut parents = vec![own(&mount)?];
    if parents[0] != mount {
        parents.push(mount);
    }
    parents.into_iter().find_map(|parent| {
        let path = parent.join(&name);
        match std::fs::create_dir(&path) {
            Ok(()) => Some(path),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Some(path),
            Err(_) => None,
        }
    })
}

/// Makes the cgroup of the run's `n`th command step, `step-<n>-<name>`
/// (the name so that a resume can tell a `start` step's server from what
/// to end); an error if it is there already (an earlier runner's).
pub fn step(run: &Path, n: usize, name: &str) -> io::Result<PathBuf> {
    let name: String = name
        .chars()
        .take(100)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let path = run.join(format!("step-{n}-{name}"));
    std::fs::create_dir(&path)?;
    Ok(path)
}

/// The step name a step's cgroup carries (`step`), as made safe there.
pub fn step_name(cgroup: &Path) -> Option<String> {
    let file = cgroup.file_name()?.to_str()?;
    let (n, name) = file.strip_prefix("step-")?.split_once('-')?;
    n.parse::<usize>().ok()?;
    Some(name.to_string())
}

/// The step cgroups right below a run's cgroup.
pub fn steps(run: &Path) -> Vec<PathBuf> {
    children(run)
}

/// The `cgroup.procs` file a child writes `0` into to join `cgroup`,
/// built before the fork (the child may only make system calls).
pub fn procs_file(cgroup: &Path) -> Option<CString> {
    CString::new(cgroup.join("cgroup.procs").as_os_str().as_bytes()).ok()
}

/// Moves the calling process into the cgroup whose `cgroup.procs` is
/// `procs`. Async-signal-safe: for a child between fork and exec.
pub fn join(procs: &CString) -> io::Result<()> {
    // SAFETY: open, write and close on a NUL-terminated path and a static
    // buffer; no allocation.
    unsafe {
        let fd = nix::libc::open(procs.as_ptr(), nix::libc::O_WRONLY | nix::libc::O_CLOEXEC);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let written = nix::libc::write(fd, b"0".as_ptr().cast(), 1);
        let error = io::Error::last_os_error();
        nix::libc::close(fd);
        if written == 1 { Ok(()) } else { Err(error) }
    }
}

/// The processes in `cgroup` and the cgroups below it.
pub fn members(cgroup: &Path) -> Vec<u32> {
    let mut out: Vec<u32> = std::fs::read_to_string(cgroup.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    for child in children(cgroup) {
        out.extend(members(&child));
    }
    out
}

/// The cgroups right below `cgroup`.
fn children(cgroup: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(cgroup) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect()
}

/// Kills everything in `cgroup` and below at once (`cgroup.kill`, Linux
/// 5.14+): nothing can fork out of it meanwhile. `false` where the kernel
/// has no `cgroup.kill`.
pub fn kill(cgroup: &Path) -> bool {
    std::fs::write(cgroup.join("cgroup.kill"), "1").is_ok()
}

/// Removes `cgroup` and the cgroups below it, the deepest first; an
/// error when one is still there (a process still in it).
pub fn remove(cgroup: &Path) -> io::Result<()> {
    for child in children(cgroup) {
        remove(&child)?;
    }
    match std::fs::remove_dir(cgroup) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Moves everything in `cgroup` and below to the runner's own cgroup, so
/// that what a `start` step left (a server meant to outlive the run) does
/// not keep a cgroup of the run's that nobody would remove. A process
/// forked meanwhile is born where its parent still was: the moves are
/// repeated until none is left, for a while.
pub fn release(cgroup: &Path) {
    let Some(target) = mount().and_then(|m| own(&m)) else {
        return;
    };
    let procs = target.join("cgroup.procs");
    for _ in 0..100 {
        let left = members(cgroup);
        if left.is_empty() {
            return;
        }
        for pid in left {
            let _ = std::fs::write(&procs, pid.to_string());
        }
    }
}

/// The run's cgroup as a journal recorded it, taken only if it is one this
/// program makes: below the cgroup2 mount, without `..`, named
/// `plan-runner-<run_id>`. `Err` says why not.
pub fn trusted(recorded: &Path, run_id: &str) -> Result<PathBuf, String> {
    let shown = recorded.display();
    let mount = mount().ok_or("this machine has no cgroup2 hierarchy mounted")?;
    if recorded
        .components()
        .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
        || !recorded.starts_with(&mount)
        || recorded == mount
    {
        return Err(format!(
            "{shown} is not below the cgroup2 mount {}",
            mount.display()
        ));
    }
    if recorded.file_name() != Some(format!("{PREFIX}{run_id}").as_ref()) {
        return Err(format!("{shown} is not named {PREFIX}{run_id}"));
    }
    Ok(recorded.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_cgroup_named_for_the_run_below_the_mount_is_trusted() {
        let Some(mount) = mount() else {
            panic!("this test needs a cgroup2 hierarchy mounted (see /proc/self/mountinfo)");
        };
        let good = mount.join("a/plan-runner-r1");
        assert_eq!(trusted(&good, "r1"), Ok(good.clone()));
        assert!(trusted(&good, "r2").is_err());
        assert!(trusted(Path::new("/tmp/plan-runner-r1"), "r1").is_err());
        assert!(trusted(&mount.join("a/../plan-runner-r1"), "r1").is_err());
        assert!(trusted(&mount, "r1").is_err());
    }

    #[test]
    fn a_steps_cgroup_carries_its_name_made_safe() {
        let dir = tempfile::tempdir().unwrap();
        let path = step(dir.path(), 3, "new_server-up").unwrap();
        assert_eq!(path.file_name().unwrap(), "step-3-new_server-up");
        assert_eq!(step_name(&path).as_deref(), Some("new_server-up"));
        assert!(step(dir.path(), 3, "new_server-up").is_err());
        let odd = step(dir.path(), 4, "a/../b c").unwrap();
        assert_eq!(odd.parent(), Some(dir.path()));
        assert_eq!(step_name(&odd).as_deref(), Some("a____b_c"));
        assert_eq!(step_name(Path::new("/x/step-x-y")), None);
    }

    #[test]
    fn the_procs_file_is_inside_the_cgroup() {
        let file = procs_file(Path::new("/sys/fs/cgroup/x")).unwrap();
        assert_eq!(file.to_str().unwrap(), "/sys/fs/cgroup/x/cgroup.procs");
    }
}
