//! Processes a step leaves behind: a daemon started with `setsid`,
//! `nohup ... &` or a double fork outlives the step's command and its
//! process group, and would go on writing into the database or the files
//! while the run rolls back. The runner makes itself the child subreaper
//! (`PR_SET_CHILD_SUBREAPER`), so that every such orphan, however it
//! detached, is reparented to the runner rather than to PID 1: the
//! runner's children that are not in its own process group, started after
//! a step's command, are what its steps left behind, with everything they
//! started in turn.
//!
//! When they are ended (docs/apply.md, "Processes a step leaves behind"):
//! - when a step other than `start` ends, what it left is ended (SIGTERM,
//!   SIGKILL after the grace period) and named;
//! - what a `start` step leaves is the server it started: kept;
//! - while steps run at once (`--jobs`), a process cannot be told to be
//!   one step's rather than another's: what they left is dealt with when
//!   the last of them ends, kept if one of them was a `start` step;
//! - before a rollback restores anything, everything the steps left,
//!   `start` steps included, is ended; what cannot be ended stops the
//!   rollback, since a proof against a moving target proves nothing.
//!
//! Where the machine allows it (`exec::cgroup`), each step also has a
//! cgroup of its own, whose members are the step's processes however they
//! detached: that is what is ended for a step, and what `plan recover`
//! ends after the runner itself was killed. The subreaper's sweep still
//! runs after it, for what a cgroup could not hold.
//!
//! The sweep holds the tracker's lock from its look at `/proc` to its end,
//! and a command step registers (`begin`) under that lock before it
//! spawns: a step's own command, a child of the runner too, is never taken
//! for something left behind.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::{Pid, getpgrp, getpid};
use serde::Serialize;

use crate::exec::cgroup;

/// How long SIGKILL is given to end what SIGTERM did not: past that, a
/// process is taken to be unkillable (stuck in the kernel).
const KILL_WAIT: Duration = Duration::from_secs(5);

/// How often `/proc` is looked at again while processes end.
const POLL: Duration = Duration::from_millis(50);

/// The longest command line a report shows of a process.
const SHOWN: usize = 200;

/// A process a step left behind, as the report names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StrayReport {
    pub pid: u32,
    /// Its command line (`/proc/<pid>/cmdline`), or `[name]` when it has
    /// none; redacted by the run before it is shown.
    pub command: String,
    /// The step that left it, when it can be told (see the module doc).
    pub step: Option<String>,
    /// `step_end`, `rollback` or `recovery`: when it was ended.
    pub when: String,
    /// `false`: it was still alive after SIGKILL.
    pub ended: bool,
}

impl StrayReport {
    /// The progress line that tells it: `who` left it (`step `migrate``,
    /// `the dead run`), `command` as the run shows it (redacted).
    pub fn line(&self, who: &str, command: &str) -> String {
        format!(
            "! {who} left process {} running: {command} ({})",
            self.pid,
            if self.ended {
                "ended"
            } else {
                "COULD NOT BE ENDED"
            }
        )
    }
}

/// One process as `/proc/<pid>/stat` shows it.
#[derive(Clone, Debug)]
struct Proc {
    pid: u32,
    state: char,
    ppid: u32,
    pgid: u32,
    start_time: u64,
}

impl Proc {
    fn live(&self) -> bool {
        !matches!(self.state, 'Z' | 'X')
    }

    fn key(&self) -> (u32, u64) {
        (self.pid, self.start_time)
    }
}

/// The run's view of its steps' processes; cloned into every worker.
#[derive(Clone, Debug)]
pub struct Tracker(Arc<Mutex<State>>);

#[derive(Debug, Default)]
struct State {
    /// Whether the runner is the child subreaper: without it orphans go to
    /// PID 1, and only those still below a step's processes are found.
    adopting: bool,
    /// Command steps between `begin` and `end`.
    active: usize,
    /// Since the last time no command step ran: the steps that ran, the
    /// earliest start of their commands (clock ticks after boot), and
    /// whether one was a `start` step.
    window: Vec<String>,
    window_since: Option<u64>,
    window_has_start: bool,
    /// The earliest start of any step's command in the run.
    run_since: Option<u64>,
    /// What `start` steps left, by (pid, start time): kept until a
    /// rollback.
    kept: BTreeMap<(u32, u64), String>,
    /// Everything ended, or found unkillable, so far.
    reports: Vec<StrayReport>,
    /// The run's cgroup, when one could be made (`open_cgroup`).
    cgroup: Option<std::path::PathBuf>,
    /// The steps' cgroups still there, with their step's name.
    step_cgroups: Vec<(std::path::PathBuf, String)>,
    /// How many step cgroups were made: the next one's number.
    steps_made: usize,
}

impl Tracker {
    /// Makes the runner the child subreaper, for the rest of its life.
    pub fn new() -> Tracker {
        let adopting = nix::sys::prctl::set_child_subreaper(true).is_ok();
        Tracker(Arc::new(Mutex::new(State {
            adopting,
            ..State::default()
        })))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether orphans come back to the runner (see `State::adopting`).
    pub fn adopting(&self) -> bool {
        self.state().adopting
    }

    /// Makes the run's cgroup (`exec::cgroup`): its path, for the journal,
    /// or `None` where the machine allows none.
    pub fn open_cgroup(&self, run_id: &str) -> Option<std::path::PathBuf> {
        let path = cgroup::create(run_id)?;
        self.state().cgroup = Some(path.clone());
        Some(path)
    }

    /// A command step is about to spawn its command: the cgroup it is to
    /// join, when the run has one.
    pub fn begin(&self, step: &str) -> Option<std::path::PathBuf> {
        let mut state = self.state();
        state.active += 1;
        state.window.push(step.to_string());
        let run = state.cgroup.clone()?;
        // Past the numbers an earlier runner of the run used.
        for _ in 0..1000 {
            state.steps_made += 1;
            match cgroup::step(&run, state.steps_made, step) {
                Ok(path) => {
                    state.step_cgroups.push((path.clone(), step.to_string()));
                    return Some(path);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(_) => return None,
            }
        }
        None
    }

    /// The step's command ended: what is left in its cgroup is ended and
    /// the cgroup removed, unless it is a `start` step's (its server is
    /// kept, in its cgroup, until a rollback or the run's end). Call
    /// before `end`. Returns what was ended.
    pub fn end_cgroup(
        &self,
        step: &str,
        start: bool,
        grace: Duration,
        path: &std::path::Path,
    ) -> Vec<StrayReport> {
        if start {
            return Vec::new();
        }
        let ended = end_in_cgroup(path, grace, Some(step), "step_end");
        let mut state = self.state();
        if cgroup::remove(path).is_ok() {
            state.step_cgroups.retain(|(p, _)| p != path);
        }
        state.reports.extend(ended.iter().cloned());
        ended
    }

    /// At the run's end: what `start` steps left (a server meant to
    /// outlive the run) is moved out to the runner's own cgroup and the
    /// run's cgroups are removed; unless the run waits for `plan recover`,
    /// which ends what is in them.
    pub fn close_cgroup(&self, for_recovery: bool) {
        let mut state = self.state();
        let Some(run) = state.cgroup.clone() else {
            return;
        };
        if !for_recovery {
            cgroup::release(&run);
        }
        if cgroup::remove(&run).is_ok() {
            state.cgroup = None;
            state.step_cgroups.clear();
        }
    }

    /// One of its attempts started, at `start_time` (clock ticks).
    pub fn spawned(&self, start_time: Option<u64>) {
        let Some(at) = start_time else { return };
        let mut state = self.state();
        state.window_since = Some(state.window_since.map_or(at, |s| s.min(at)));
        state.run_since = Some(state.run_since.map_or(at, |s| s.min(at)));
    }

    /// The step's command ended (and its leader was reaped): what it left
    /// is ended, or kept for a `start` step. Returns what was ended now.
    pub fn end(&self, step: &str, start: bool, grace: Duration) -> Vec<StrayReport> {
        let mut state = self.state();
        state.active = state.active.saturating_sub(1);
        state.window_has_start |= start;
        if state.active > 0 {
            return Vec::new();
        }
        let window = std::mem::take(&mut state.window);
        let has_start = std::mem::take(&mut state.window_has_start);
        let Some(since) = state.window_since.take() else {
            return Vec::new();
        };
        let owner = match window.as_slice() {
            [only] => only.clone(),
            _ => step.to_string(),
        };
        let kept: BTreeSet<(u32, u64)> = state.kept.keys().copied().collect();
        let select = |p: &Proc| p.start_time >= since && !kept.contains(&p.key());
        if has_start {
            for p in tree(&scan(), select) {
                if p.live() {
                    state.kept.insert(p.key(), owner.clone());
                }
            }
            return Vec::new();
        }
        let ended = end_all(select, grace, |_| Some(owner.clone()), "step_end");
        state.reports.extend(ended.iter().cloned());
        ended
    }

    /// Before a rollback restores anything: ends everything the run's
    /// steps left, `start` steps' included. `Err` names what is still
    /// alive after SIGKILL.
    pub fn before_rollback(&self, grace: Duration) -> Result<Vec<StrayReport>, Vec<StrayReport>> {
        let mut state = self.state();
        let mut ended = Vec::new();
        for (path, step) in std::mem::take(&mut state.step_cgroups) {
            ended.extend(end_in_cgroup(&path, grace, Some(&step), "rollback"));
            if cgroup::remove(&path).is_err() {
                state.step_cgroups.push((path, step));
            }
        }
        let Some(since) = state.run_since else {
            return finish_rollback(&mut state, ended);
        };
        let kept = std::mem::take(&mut state.kept);
        ended.extend(end_all(
            |p: &Proc| p.start_time >= since,
            grace,
            |p| kept.get(&p.key()).cloned(),
            "rollback",
        ));
        finish_rollback(&mut state, ended)
    }

    /// Ends everything in a dead run's cgroup `path` (the journal's,
    /// checked by `cgroup::trusted`) and removes it: what the run's steps
    /// left after its runner was killed, which went to PID 1. Except the
    /// step cgroups `keep` names by their step (a resume keeps the servers
    /// of the `start` steps it does not run again): those become this
    /// run's, ended like its own. `Err` says why a cgroup is still there
    /// (a process that outlived SIGKILL is in the list, `ended: false`).
    pub fn end_dead_run(
        &self,
        path: &std::path::Path,
        grace: Duration,
        keep: &dyn Fn(&str) -> bool,
    ) -> (Vec<StrayReport>, Result<(), String>) {
        let mut ended = Vec::new();
        let mut kept = Vec::new();
        let mut removed = Ok(());
        for step_cgroup in cgroup::steps(path) {
            match cgroup::step_name(&step_cgroup) {
                Some(step) if keep(&step) => kept.push((step_cgroup, step)),
                step => {
                    ended.extend(end_in_cgroup(
                        &step_cgroup,
                        grace,
                        step.as_deref(),
                        "recovery",
                    ));
                    if let Err(e) = cgroup::remove(&step_cgroup) {
                        removed = Err(format!("{} cannot be removed: {e}", step_cgroup.display()));
                    }
                }
            }
        }
        if kept.is_empty() {
            // Nothing should be in the run's cgroup itself; whatever is
            // (`cgroup.kill` there would reach the kept ones too).
            ended.extend(end_in_cgroup(path, grace, None, "recovery"));
        }
        let mut state = self.state();
        state.reports.extend(ended.iter().cloned());
        if kept.is_empty() {
            if let Err(e) = cgroup::remove(path) {
                removed = Err(format!("{} cannot be removed: {e}", path.display()));
            }
        } else {
            state.step_cgroups.extend(kept);
        }
        (ended, removed)
    }

    /// Records what a failed step's process group still held when its
    /// leader exited, which `exec::process` killed with it.
    pub fn killed_with_group(&self, step: &str, killed: &[(u32, String)]) -> Vec<StrayReport> {
        let reports: Vec<StrayReport> = killed
            .iter()
            .map(|(pid, command)| StrayReport {
                pid: *pid,
                command: command.clone(),
                step: Some(step.to_string()),
                when: "step_end".into(),
                ended: true,
            })
            .collect();
        self.state().reports.extend(reports.iter().cloned());
        reports
    }

    /// Everything ended (or found unkillable) in the run so far.
    pub fn reports(&self) -> Vec<StrayReport> {
        self.state().reports.clone()
    }
}

/// Records what was ended before a rollback; `Err` with what outlived
/// SIGKILL.
fn finish_rollback(
    state: &mut State,
    ended: Vec<StrayReport>,
) -> Result<Vec<StrayReport>, Vec<StrayReport>> {
    state.reports.extend(ended.iter().cloned());
    if ended.iter().any(|r| !r.ended) {
        Err(ended.into_iter().filter(|r| !r.ended).collect())
    } else {
        Ok(ended)
    }
}

/// Ends every process in `path` and the cgroups below it: SIGTERM, then
/// after `grace` `cgroup.kill` (SIGKILL to each where the kernel has none),
/// until the cgroup is empty. Every process seen alive is reported,
/// `ended: false` when it outlived SIGKILL; the runner's own children
/// among them (orphans it adopted) are reaped.
fn end_in_cgroup(
    path: &std::path::Path,
    grace: Duration,
    step: Option<&str>,
    when: &str,
) -> Vec<StrayReport> {
    end_procs(
        || {
            cgroup::members(path)
                .into_iter()
                .filter_map(read_stat)
                .collect()
        },
        // At once for the whole cgroup: nothing forks out meanwhile.
        || {
            cgroup::kill(path);
        },
        grace,
        |_| step.map(str::to_string),
        when,
    )
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker::new()
    }
}

/// The live members of the process group `pgid`: (pid, command line).
pub fn group_members(pgid: i32) -> Vec<(u32, String)> {
    scan()
        .into_iter()
        .filter(|p| p.live() && i64::from(p.pgid) == i64::from(pgid))
        .map(|p| (p.pid, command_line(p.pid)))
        .collect()
}

/// Every process of the machine that `/proc` shows.
fn scan() -> Vec<Proc> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(read_stat)
        .collect()
}

/// `/proc/<pid>/stat`: the name (field 2) is in parentheses and may hold
/// anything, so fields are counted after the last `)`.
fn read_stat(pid: u32) -> Option<Proc> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    Some(Proc {
        pid,
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        pgid: fields.get(2)?.parse().ok()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

/// The runner's children outside its own process group that `select`
/// takes (the orphans its steps left), and all their descendants.
fn tree(procs: &[Proc], select: impl Fn(&Proc) -> bool) -> Vec<Proc> {
    let me = u32::try_from(getpid().as_raw()).unwrap_or(0);
    let my_group = u32::try_from(getpgrp().as_raw()).unwrap_or(0);
    let mut members: BTreeSet<u32> = procs
        .iter()
        .filter(|p| p.ppid == me && p.pgid != my_group && select(p))
        .map(|p| p.pid)
        .collect();
    loop {
        let more: Vec<u32> = procs
            .iter()
            .filter(|p| members.contains(&p.ppid) && !members.contains(&p.pid))
            .map(|p| p.pid)
            .collect();
        if more.is_empty() {
            break;
        }
        members.extend(more);
    }
    procs
        .iter()
        .filter(|p| members.contains(&p.pid))
        .cloned()
        .collect()
}

/// Ends the tree `select` picks: SIGTERM, then SIGKILL after `grace`,
/// looking again each time for processes they started or left meanwhile.
/// Reaps those that were the runner's children. Every process seen alive
/// is reported, `ended: false` when it outlived SIGKILL.
fn end_all(
    select: impl Fn(&Proc) -> bool,
    grace: Duration,
    step_of: impl Fn(&Proc) -> Option<String>,
    when: &str,
) -> Vec<StrayReport> {
    end_procs(|| tree(&scan(), &select), || {}, grace, step_of, when)
}

/// The one way processes are ended, whoever finds them (`find`, called
/// on each pass): SIGTERM once to each, then from `grace` on SIGKILL on
/// every pass (`at_kill` first, once), until none is left or `KILL_WAIT`
/// has passed. Every process seen alive is reported, `ended: false` when
/// it outlived SIGKILL; the runner's own children among them are reaped.
fn end_procs(
    mut find: impl FnMut() -> Vec<Proc>,
    mut at_kill: impl FnMut(),
    grace: Duration,
    step_of: impl Fn(&Proc) -> Option<String>,
    when: &str,
) -> Vec<StrayReport> {
    let mut seen: BTreeMap<(u32, u64), StrayReport> = BTreeMap::new();
    // A process that left the cgroup or the tree by exiting is still the
    // runner's child to reap.
    let reap_seen = |seen: &BTreeMap<(u32, u64), StrayReport>| {
        let procs: Vec<Proc> = seen.keys().filter_map(|&(pid, _)| read_stat(pid)).collect();
        reap(&procs);
    };
    let term_until = Instant::now() + grace;
    let mut kill_until = None;
    loop {
        let found = find();
        reap(&found);
        reap_seen(&seen);
        let live: Vec<&Proc> = found.iter().filter(|p| p.live()).collect();
        if live.is_empty() {
            break;
        }
        let now = Instant::now();
        let signal = if now < term_until {
            Signal::SIGTERM
        } else {
            if kill_until.is_none() {
                at_kill();
            }
            let until = *kill_until.get_or_insert(now + KILL_WAIT);
            if now >= until {
                for p in &live {
                    if let Some(r) = seen.get_mut(&p.key()) {
                        r.ended = false;
                    }
                }
                break;
            }
            Signal::SIGKILL
        };
        for p in live {
            let fresh = !seen.contains_key(&p.key());
            if fresh {
                seen.insert(
                    p.key(),
                    StrayReport {
                        pid: p.pid,
                        command: command_line(p.pid),
                        step: step_of(p),
                        when: when.to_string(),
                        ended: true,
                    },
                );
            }
            // SIGTERM once each; SIGKILL on every pass, to whatever is
            // still there (and still the same process: its pid may have
            // been taken by another since it was read).
            if (fresh || signal == Signal::SIGKILL)
                && read_stat(p.pid).is_some_and(|again| again.start_time == p.start_time)
            {
                let _ = kill(Pid::from_raw(i32::try_from(p.pid).unwrap_or(0)), signal);
            }
        }
        std::thread::sleep(POLL);
    }
    reap_seen(&seen);
    seen.into_values().collect()
}

/// Reaps the runner's own children among `procs` that have exited.
fn reap(procs: &[Proc]) {
    let me = u32::try_from(getpid().as_raw()).unwrap_or(0);
    for p in procs.iter().filter(|p| p.ppid == me && !p.live()) {
        let pid = Pid::from_raw(i32::try_from(p.pid).unwrap_or(0));
        let _ = waitpid(pid, Some(WaitPidFlag::WNOHANG));
    }
}

/// The process's command line, its arguments separated by spaces, cut at
/// `SHOWN` characters; `[name]` when it has none (a kernel thread, or a
/// process that is ending).
fn command_line(pid: u32) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let text: String = String::from_utf8_lossy(&raw)
        .split('\0')
        .filter(|a| !a.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let text = if text.is_empty() {
        let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        format!("[{}]", name.trim())
    } else {
        text
    };
    match text.char_indices().nth(SHOWN) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proc(pid: u32, ppid: u32, pgid: u32, start_time: u64) -> Proc {
        Proc {
            pid,
            state: 'S',
            ppid,
            pgid,
            start_time,
        }
    }

    #[test]
    fn the_tree_is_the_runners_orphans_outside_its_group_and_their_descendants() {
        let me = std::process::id();
        let group = u32::try_from(getpgrp().as_raw()).unwrap();
        let other = group + 1_000_000;
        let procs = [
            // An orphan a step left, its child and grandchild.
            proc(10, me, other, 500),
            proc(11, 10, other, 501),
            proc(12, 11, 12, 502),
            // A tool the runner started itself: in the runner's group.
            proc(20, me, group, 600),
            proc(21, 20, group, 601),
            // Started before the step: not selected.
            proc(30, me, other, 100),
            // Somebody else's.
            proc(40, 1, other, 700),
        ];
        let found: Vec<u32> = tree(&procs, |p| p.start_time >= 400)
            .iter()
            .map(|p| p.pid)
            .collect();
        assert_eq!(found, [10, 11, 12]);
    }

    #[test]
    fn a_live_process_is_read_from_proc() {
        let me = std::process::id();
        let stat = read_stat(me).unwrap();
        assert_eq!(stat.pid, me);
        assert!(stat.live());
        assert_eq!(
            i64::from(stat.pgid),
            i64::from(getpgrp().as_raw()),
            "{stat:?}"
        );
        assert_eq!(Some(stat.start_time), crate::exec::process::start_time(me));
        assert!(!command_line(me).is_empty());
        assert!(read_stat(0).is_none());
    }
}
