//! A step's process group: watching the leader's exit against the
//! timeout and the stopper, and ending the whole group (SIGTERM, then
//! SIGKILL after the grace period).

use super::*;

/// Where an attempt's watcher is.
pub(super) enum Phase {
    Running,
    Terminating { kill_at: Instant },
    Killed,
}

/// Waits for the child's exit, ending its group on timeout or stop:
/// SIGTERM, then SIGKILL after `grace`. Every wait is a blocking receive
/// that the exit, the stopper or the next deadline ends.
pub(super) fn watch(
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
pub(super) struct Leader(pub(super) duct::Handle);

impl Leader {
    pub(super) fn reap(self) {
        let _ = self.0.wait();
    }
}

/// Waits until the process `pid` exits, without reaping it (`WNOWAIT`):
/// its exit status, as `waitpid` would give it.
pub(super) fn wait_unreaped(pid: Pid) -> io::Result<ExitStatus> {
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
pub(super) fn signal_group(pgid: Pid, signal: Signal) {
    if pgid.as_raw() > 1 {
        let _ = killpg(pgid, signal);
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

pub(super) fn signal_name(signal: i32) -> String {
    match Signal::try_from(signal) {
        Ok(known) => format!("{} ({signal})", known.as_str()),
        Err(_) => signal.to_string(),
    }
}
