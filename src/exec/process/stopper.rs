//! The stopper: how a signal or a sibling's failure ends every running
//! step at once.

use super::*;

/// A way to end running steps from another thread (a Ctrl-C or SIGTERM
/// handler thread, or the run when a sibling step failed): each running
/// step's group gets SIGTERM, then SIGKILL after the grace period. Several
/// steps may run with clones of one stopper at once (`--jobs`): a stop
/// wakes them all. Once stopped it stays stopped, and later `run`s with it
/// start nothing; `on_failure` steps take a new one. Not for a signal
/// handler itself (it takes a lock): call it from a thread that waits for
/// signals.
#[derive(Clone, Debug, Default)]
pub struct Stopper(Arc<StopState>);

#[derive(Debug, Default)]
pub(super) struct StopState {
    stopped: AtomicBool,
    /// Wakes the waiting attempts, one per running step, each under the
    /// number `attach` gave it.
    wakers: Mutex<Wakers>,
}

#[derive(Debug, Default)]
pub(super) struct Wakers {
    next: u64,
    attached: Vec<(u64, Sender<Event>)>,
}

impl Stopper {
    pub fn new() -> Self {
        Stopper::default()
    }

    pub fn stop(&self) {
        self.0.stopped.store(true, Ordering::SeqCst);
        let wakers = self.0.wakers.lock().unwrap_or_else(PoisonError::into_inner);
        for (_, waker) in &wakers.attached {
            let _ = waker.send(Event::Stop);
        }
    }

    pub fn is_stopped(&self) -> bool {
        self.0.stopped.load(Ordering::SeqCst)
    }

    pub(super) fn attach(&self, waker: Sender<Event>) -> u64 {
        let id = {
            let mut wakers = self.0.wakers.lock().unwrap_or_else(PoisonError::into_inner);
            let id = wakers.next;
            wakers.next += 1;
            wakers.attached.push((id, waker));
            id
        };
        // A stop that came before the waker was in place must still wake.
        if self.is_stopped() {
            self.stop();
        }
        id
    }

    pub(super) fn detach(&self, id: u64) {
        self.0
            .wakers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .attached
            .retain(|(n, _)| *n != id);
    }
}
