//! Work spread over the machine's cores: how many threads a job is worth,
//! and a queue of numbered tasks that each thread takes from in turn, so
//! a thread slowed by another process on its core does less instead of
//! the others waiting for it. Parsing and resolving a large plan use it.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// More threads than this gain nothing on a plan of a few megabytes.
const MAX_THREADS: usize = 8;

/// One thread per core (at most `MAX_THREADS`), but no more than one per
/// `per_thread` units of work: below that, starting a thread costs about
/// what it saves.
pub fn threads_for(work: usize, per_thread: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    cores.min(MAX_THREADS).min(work / per_thread.max(1))
}

/// Tasks `0..len`, each handed out once.
pub struct Queue {
    next: AtomicUsize,
    len: usize,
    stopped: AtomicBool,
}

impl Queue {
    /// The next task not yet taken; `None` when all are, or after `stop`.
    pub fn take(&self) -> Option<usize> {
        if self.stopped.load(Ordering::Relaxed) {
            return None;
        }
        let task = self.next.fetch_add(1, Ordering::Relaxed);
        (task < self.len).then_some(task)
    }

    /// Hands out nothing more: a task failed and the rest are not needed.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
    }

    pub fn stopped(&self) -> bool {
        self.stopped.load(Ordering::Relaxed)
    }
}

/// Runs `work` on `threads` threads, the calling one included, all taking
/// from one queue of `tasks` tasks. Returns each thread's result and
/// whether a thread stopped the queue. A panic in a thread is raised again
/// here.
pub fn run<T: Send>(
    threads: usize,
    tasks: usize,
    work: impl Fn(&Queue) -> T + Sync,
) -> (Vec<T>, bool) {
    let queue = Queue {
        next: AtomicUsize::new(0),
        len: tasks,
        stopped: AtomicBool::new(false),
    };
    let results = std::thread::scope(|scope| {
        let others: Vec<_> = (1..threads.max(1))
            .map(|_| scope.spawn(|| work(&queue)))
            .collect();
        let mut results = vec![work(&queue)];
        results.extend(others.into_iter().map(|other| {
            other
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        }));
        results
    });
    (results, queue.stopped())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_is_taken_once() {
        let (taken, stopped) = run(3, 100, |queue| {
            let mut mine = Vec::new();
            while let Some(task) = queue.take() {
                mine.push(task);
            }
            mine
        });
        let mut all: Vec<usize> = taken.into_iter().flatten().collect();
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        assert!(!stopped);
    }

    #[test]
    fn a_stop_ends_the_handing_out() {
        let (taken, stopped) = run(2, 1_000, |queue| {
            let mut count = 0;
            while let Some(task) = queue.take() {
                count += 1;
                if task == 10 {
                    queue.stop();
                }
            }
            count
        });
        assert!(stopped);
        assert!(taken.iter().sum::<usize>() < 1_000);
    }

    #[test]
    fn few_units_get_one_thread() {
        assert_eq!(threads_for(999, 1_000), 0);
        assert!(threads_for(1_000_000, 1) >= 1);
    }
}
