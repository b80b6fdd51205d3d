//! Signals during a run. Ctrl-C (SIGINT) and SIGTERM: launch nothing more
//! and end the running steps' process groups (through their `Stopper`)
//! and cancel their SQL statements; the run then rolls back. Once the rollback has started, a further signal
//! only says how long it has been going: abandoning a half-restored
//! database is worse than waiting. SIGHUP (a closed SSH session) is
//! ignored: a two-hour update goes on, writing to its log and journal.
//!
//! The signals are received by signal-hook's iterator on a thread of its
//! own, never in a raw handler: `Stopper::stop` takes a lock and writing a
//! line is not async-signal-safe. This module decides nothing about the
//! run: the run asks it whether it was interrupted.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Instant;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::{Handle, Signals};

use crate::db::connect::Cancel;
use crate::exec::process::Stopper;
use crate::exec::progress::Progress;

/// Where the run is, as far as a signal is concerned.
#[derive(Clone, Copy, Debug)]
enum Phase {
    /// Steps run: a signal stops them.
    Steps,
    /// Restoring backups: a signal waits.
    RollingBack(Instant),
    /// Running `on_failure` after a proved rollback: a signal ends the
    /// running `on_failure` step (one that hangs must not hold the lock
    /// for ever), and no further one starts.
    OnFailure,
}

struct State {
    /// The first SIGINT or SIGTERM received; 0 while none.
    signal: AtomicI32,
    phase: Mutex<Phase>,
    stopper: Mutex<Stopper>,
    /// The SQL statements running now: a signal cancels them.
    statements: Statements,
    /// Where the watch says what a signal did (none for a dry run).
    progress: Option<Progress>,
}

/// The SQL statements the run's steps are running now (several with
/// `--jobs`), so that a signal or a sibling's failure can cancel them all.
#[derive(Clone, Default)]
pub struct Statements(Arc<Mutex<Running>>);

#[derive(Default)]
struct Running {
    next: u64,
    tokens: Vec<(u64, Cancel)>,
}

impl Statements {
    /// A statement is about to run on the connection `token` cancels;
    /// returns what `remove` takes once it is over.
    pub fn add(&self, token: Cancel) -> u64 {
        let mut running = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let id = running.next;
        running.next += 1;
        running.tokens.push((id, token));
        id
    }

    pub fn remove(&self, id: u64) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .tokens
            .retain(|(n, _)| *n != id);
    }

    /// Asks the server to cancel every statement running now: each step
    /// sees "canceling statement due to user request" and fails.
    pub fn cancel_all(&self) {
        let tokens: Vec<Cancel> = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .tokens
            .iter()
            .map(|(_, t)| t.clone())
            .collect();
        // Outside the lock: cancelling opens a connection to the server.
        for token in tokens {
            token.cancel();
        }
    }
}

/// Listens for signals while it lives.
pub struct Watch {
    state: Arc<State>,
    handle: Option<Handle>,
    thread: Option<JoinHandle<()>>,
}

impl Watch {
    /// Starts listening; `stopper` ends the running step on the first
    /// SIGINT or SIGTERM. When the signals cannot be caught (the thread
    /// cannot start), the run goes on with their default actions, and the
    /// journal lets `plan recover` clean up after one.
    pub fn start(stopper: Stopper, progress: Progress) -> Watch {
        let state = Arc::new(State {
            signal: AtomicI32::new(0),
            phase: Mutex::new(Phase::Steps),
            stopper: Mutex::new(stopper),
            statements: Statements::default(),
            progress: Some(progress),
        });
        let Ok(mut signals) = Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
            return Watch {
                state,
                handle: None,
                thread: None,
            };
        };
        let handle = signals.handle();
        let shared = Arc::clone(&state);
        let thread = std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for signal in signals.forever() {
                    shared.receive(signal);
                }
            })
            .ok();
        Watch {
            state,
            handle: Some(handle),
            thread,
        }
    }

    /// A watch that never hears anything (for runs that are not `apply`).
    pub fn none() -> Watch {
        Watch {
            state: Arc::new(State {
                signal: AtomicI32::new(0),
                phase: Mutex::new(Phase::Steps),
                stopper: Mutex::new(Stopper::new()),
                statements: Statements::default(),
                progress: None,
            }),
            handle: None,
            thread: None,
        }
    }

    /// The name of the signal that interrupted the run, if one did.
    pub fn interrupted(&self) -> Option<&'static str> {
        match self.state.signal.load(Ordering::SeqCst) {
            0 => None,
            s => Some(name(s)),
        }
    }

    /// Where the steps register the statements a signal must cancel.
    pub fn statements(&self) -> Statements {
        self.state.statements.clone()
    }

    /// From now on a signal does not stop anything: the rollback runs.
    pub fn rolling_back(&self) {
        *self
            .state
            .phase
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Phase::RollingBack(Instant::now());
    }

    /// The rollback is proved and `on_failure` runs with `stopper`: from
    /// now on a signal ends its running step.
    pub fn on_failure(&self, stopper: Stopper) {
        *self
            .state
            .stopper
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = stopper;
        *self
            .state
            .phase
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Phase::OnFailure;
    }
}

impl State {
    /// A line above the run's spinners.
    fn say(&self, line: &str) {
        if let Some(progress) = &self.progress {
            progress.message(line);
        }
    }

    /// Ends what runs now: the steps' process groups (through the
    /// stopper) and their SQL statements.
    fn end_running(&self) {
        self.stopper
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .stop();
        self.statements.cancel_all();
    }

    fn receive(&self, signal: i32) {
        if signal == SIGHUP {
            self.say(
                "SIGHUP (the terminal went away): ignored, the run goes on; its log and journal are in the run folder",
            );
            return;
        }
        let phase = *self.phase.lock().unwrap_or_else(PoisonError::into_inner);
        match phase {
            Phase::OnFailure => {
                self.say(&format!(
                    "{}: ending the running on_failure step; no other one starts",
                    name(signal)
                ));
                self.end_running();
            }
            Phase::RollingBack(since) => self.say(&format!(
                "{}: the rollback is in progress ({:.0} s so far) and is not abandoned: wait for it to finish",
                name(signal),
                since.elapsed().as_secs_f64()
            )),
            Phase::Steps => {
                let first = self
                    .signal
                    .compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok();
                if first {
                    self.say(&format!(
                        "{}: launching nothing more; ending the running step, then rolling back",
                        name(signal)
                    ));
                } else {
                    self.say(&format!(
                        "{}: already stopping: the running step is being ended, then the rollback runs",
                        name(signal)
                    ));
                }
                // The steps fail; the run then rolls back.
                self.end_running();
            }
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            handle.close();
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn name(signal: i32) -> &'static str {
    match signal {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}
