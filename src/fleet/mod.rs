//! Fleets: one plan applied to many inventory targets, each as an ordinary
//! `plan apply --target NAME` child process with its own lock, journal,
//! run folder, history, report and proof. This module owns the selection
//! (`select`), the scheduling of the children (at most `--jobs` at once,
//! `--per-server` per host and port, none new after `--max-failures`
//! failures or a signal), their display and the summary. It never touches
//! a target's database: everything it knows about a run comes from the
//! child's exit status, its `report.json` and its journal.
//!
//! A child per target, not a thread: a run already owns its signals, its
//! process groups, its progress display and its exit status, and a child
//! keeps all of that, so one target's failure (even a crash of its runner)
//! cannot reach another's.

pub mod select;
pub mod summary;

mod display;
mod launch;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::exit::{Fleet, Member};
use display::Display;
use launch::{Launcher, Running};
pub use summary::{Summary, TargetSummary};

/// How often the children are looked at: their exits, and the journals of
/// the running ones for the display. Short, because a target that ended
/// holds its place until the next look (docs/performance.md).
const TICK: Duration = Duration::from_millis(20);

/// One selected target and the server it is on.
#[derive(Clone, Debug)]
pub struct Selected {
    pub name: String,
    /// `host:port`: what `--per-server` counts.
    pub server: String,
}

/// Everything a fleet run needs that is not the list of targets.
pub struct Options {
    /// The `plan` program to start for each target.
    pub program: PathBuf,
    /// The child's arguments before `--target NAME --run-id ID` (`apply
    /// PLAN --inventory FILE --state-dir DIR ...`).
    pub args: Vec<std::ffi::OsString>,
    /// Where the children's run folders go.
    pub state_dir: PathBuf,
    /// Where the fleet keeps each child's output and the summary.
    pub folder: PathBuf,
    pub fleet_id: String,
    pub plan: String,
    pub inventory: PathBuf,
    pub jobs: usize,
    pub per_server: usize,
    /// After this many targets did not end well, none starts.
    pub max_failures: Option<usize>,
    /// `--dry-run`: each child only says whether it would run.
    pub dry_run: bool,
}

/// Runs the fleet; returns its summary (already written into its folder).
pub fn run(members: Vec<Selected>, opts: &Options) -> Summary {
    let started_at = crate::units::now_millis();
    let clock = Instant::now();
    let signal = Arc::new(AtomicI32::new(0));
    let watch = watch_signals(signal.clone());
    let launcher = Launcher::new(opts);
    let display = Display::start(members.len());

    let mut waiting: VecDeque<Selected> = members.into_iter().collect();
    let mut running: Vec<Running> = Vec::new();
    let mut ended: Vec<TargetSummary> = Vec::new();
    let mut failures = 0;
    let mut forwarded = false;
    loop {
        let interrupted = signal.load(Ordering::SeqCst);
        if interrupted != 0 && !forwarded {
            // Each child is in its own process group (so that the
            // terminal's Ctrl-C reaches the fleet only, once); it gets the
            // signal from here and rolls back as a single run does.
            forwarded = true;
            display.note(&format!(
                "interrupted: no new target starts; {} running target(s) roll back",
                running.len()
            ));
            for child in &running {
                child.signal(interrupted);
            }
        }
        let stopped = interrupted != 0 || opts.max_failures.is_some_and(|max| failures >= max);
        while !stopped && running.len() < opts.jobs {
            let Some(at) = waiting.iter().position(|m| {
                running
                    .iter()
                    .filter(|r| r.member.server == m.server)
                    .count()
                    < opts.per_server
            }) else {
                break;
            };
            let Some(member) = waiting.remove(at) else {
                break;
            };
            match launcher.start(member) {
                Ok(child) => {
                    display.started(&child);
                    running.push(child);
                }
                Err(done) => {
                    failures += 1;
                    display.ended(&done);
                    ended.push(*done);
                }
            }
        }
        let mut index = 0;
        while index < running.len() {
            match running[index].try_end() {
                Some(done) => {
                    running.remove(index);
                    if done.member() != Member::Done {
                        failures += 1;
                    }
                    display.ended(&done);
                    ended.push(done);
                }
                None => index += 1,
            }
        }
        display.tick(&running, ended.len(), waiting.len(), &ended);
        if running.is_empty() && (waiting.is_empty() || stopped) {
            break;
        }
        std::thread::sleep(TICK);
    }
    for member in waiting {
        ended.push(TargetSummary::not_started(&member));
    }
    display.finish();
    drop(watch);
    let interrupted = signal.load(Ordering::SeqCst) != 0;
    let members: Vec<Member> = ended.iter().map(TargetSummary::member).collect();
    let summary = Summary::new(
        opts,
        started_at,
        clock.elapsed(),
        Fleet::of(&members, interrupted),
        interrupted,
        ended,
    );
    summary.write(&opts.folder);
    summary
}

/// Ctrl-C and SIGTERM are remembered (the first one); SIGHUP is ignored,
/// as a single run ignores it: a closed SSH session must not stop a night's
/// fleet. Received on a thread of signal-hook's, never in a raw handler.
struct Watch {
    handle: signal_hook::iterator::Handle,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn watch_signals(signal: Arc<AtomicI32>) -> Option<Watch> {
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP]).ok()?;
    let handle = signals.handle();
    let thread = std::thread::spawn(move || {
        for received in signals.forever() {
            if received != SIGHUP {
                let _ = signal.compare_exchange(0, received, Ordering::SeqCst, Ordering::SeqCst);
            }
        }
    });
    Some(Watch {
        handle,
        thread: Some(thread),
    })
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.handle.close();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
