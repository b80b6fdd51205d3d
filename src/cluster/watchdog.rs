//! The watchdog of a throwaway cluster: a detached `sh` that stops the
//! server and removes its folder when the owner dies without doing so.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};

use super::ClusterError;

/// Runs after its owner is gone: the owner holds the write end of its stdin,
/// which the kernel closes however the owner ends (drop, `exit`, panic,
/// SIGKILL), so end-of-file is the signal and nothing polls while the owner
/// lives. It then stops the postmaster (SIGQUIT is an immediate shutdown)
/// and removes the folder. Idempotent: after a normal drop it finds nothing
/// to do. `$1` is the folder, `$2` the data directory.
///
/// A process is treated as gone when it is a zombie: a postmaster whose
/// `pg_ctl` exited is adopted by PID 1, which does not reap in every
/// container. A pid is only signalled if its working directory is our data
/// directory (the postmaster changes into it), so a stale pid file never
/// makes us signal a stranger, which matters when we are root.
const WATCHDOG: &str = r#"
trap '' HUP INT
folder=$1
data=$2
while read -r line; do :; done
alive() {
  [ -d /proc/self ] || { kill -0 "$1" 2>/dev/null; return; }
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  state=${stat##*) }
  case $state in Z*|X*) return 1 ;; esac
  return 0
}
ours() {
  [ -d /proc/self ] || return 0
  [ "$(readlink "/proc/$1/cwd" 2>/dev/null)" = "$data" ]
}
pid=$(head -n 1 "$data/postmaster.pid" 2>/dev/null)
case $pid in
  ''|*[!0-9]*) ;;
  *)
    if alive "$pid" && ours "$pid"; then
      kill -QUIT "$pid" 2>/dev/null
      n=0
      while alive "$pid" && [ "$n" -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
      if alive "$pid"; then kill -KILL "$pid" 2>/dev/null; fi
    fi
    ;;
esac
rm -rf "$folder"
"#;

/// The detached process that cleans up after an owner that did not.
#[derive(Debug)]
pub(super) struct Watchdog {
    child: Child,
    pipe: Option<ChildStdin>,
}

impl Watchdog {
    pub(super) fn spawn(folder: &Path, data: &Path) -> Result<Watchdog, ClusterError> {
        let shell = Path::new("/bin/sh");
        let mut child = Command::new(shell)
            .arg("-c")
            .arg(WATCHDOG)
            .arg("plan-runner-watchdog")
            .arg(folder)
            .arg(data)
            .stdin(Stdio::piped())
            // Never the caller's stdout or stderr: a test harness or CI
            // reading them would wait for the watchdog to end.
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .current_dir("/")
            // Its own process group: Ctrl-C in a terminal reaches the owner's
            // group, and the watchdog must outlive the owner to do its job.
            .process_group(0)
            .spawn()
            .map_err(|source| ClusterError::Spawn {
                program: shell.to_path_buf(),
                source,
            })?;
        let pipe = child.stdin.take();
        Ok(Watchdog { child, pipe })
    }

    /// The owner has cleaned up: closing the pipe lets the watchdog find
    /// nothing to do and exit; waiting reaps it.
    pub(super) fn release(mut self) {
        drop(self.pipe.take());
        let _ = self.child.wait();
    }
}
