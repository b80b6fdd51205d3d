//! Which step runs when: a ready queue over the run's order. A step is
//! ready when every step it waits for (`after`) has succeeded; up to
//! `--jobs` ready steps run at once, the earliest in the order first (the
//! order puts dependencies first, then file order). A `backup` runs alone:
//! once it is the earliest ready step nothing more is launched, and it
//! starts when nothing else runs. With `--jobs 1` this is the order itself,
//! one step at a time, each on the run's own thread.
//!
//! On the first failure (a step, or a step that cannot be launched: a
//! signal, the lock's connection lost, the journal not writable) nothing
//! more is launched and the steps still running are ended at once (their
//! process groups through the run's `Stopper`, their SQL statements
//! cancelled): they are reported `interrupted`, unless a signal ended them
//! all (then `failed`, as a single step would be). The caller rolls back.
//!
//! Every step's records are journaled: `step_started` and `step_ended` by
//! the run's thread, `process_started` by the thread running the step (the
//! journal takes one line at a time).

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;

use super::Run;
use super::steps::{self, Worker, not_run};
use crate::db::lock;
use crate::exec::journal::{Journal, Record};
use crate::exec::report::StepReport;
use crate::plan::{Action, Step};

/// The most steps `--jobs` lets run at once: each holds a connection or a
/// process group, and a plan has few truly independent steps.
pub const MAX_JOBS: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Waiting,
    Running,
    Ended { succeeded: bool },
}

/// The ready queue, by position in the run's order. It decides nothing
/// about failures: the caller stops asking for steps.
#[derive(Debug)]
pub struct Queue {
    /// Per position: the positions it waits for.
    waits: Vec<Vec<usize>>,
    /// Per position: a step that must run alone (a backup).
    alone: Vec<bool>,
    state: Vec<State>,
    jobs: usize,
    running: usize,
    alone_running: bool,
    /// Every position before it has been launched.
    first_waiting: usize,
}

impl Queue {
    /// `waits[p]`: the positions step `p` waits for. Ties go to the
    /// earliest position, so a topological order runs as it is with one
    /// job.
    pub fn new(waits: Vec<Vec<usize>>, alone: Vec<bool>, jobs: usize) -> Queue {
        let n = waits.len();
        Queue {
            waits,
            alone,
            state: vec![State::Waiting; n],
            jobs: jobs.max(1),
            running: 0,
            alone_running: false,
            first_waiting: 0,
        }
    }

    /// The queue of `order` (step indexes into `steps`). A step's `after`
    /// naming a step that is not in the order (a step a resumed run does
    /// not run again) does not hold it back.
    pub fn of(steps: &[Step], order: &[usize], jobs: usize) -> Queue {
        let position: HashMap<&str, usize> = order
            .iter()
            .enumerate()
            .filter_map(|(pos, &i)| steps.get(i).map(|s| (s.name.as_str(), pos)))
            .collect();
        let waits = order
            .iter()
            .enumerate()
            .map(|(pos, &i)| {
                steps.get(i).map_or_else(Vec::new, |step| {
                    step.after
                        .iter()
                        .filter_map(|a| position.get(a.name.as_str()).copied())
                        .filter(|&p| p != pos)
                        .collect()
                })
            })
            .collect();
        let alone = order
            .iter()
            .map(|&i| {
                steps
                    .get(i)
                    .is_some_and(|s| matches!(s.action, Action::Backup(_)))
            })
            .collect();
        Queue::new(waits, alone, jobs)
    }

    /// The next step to launch now, marked running; `None` when every slot
    /// is taken, when nothing is ready, or while a backup waits for the
    /// running steps to end.
    pub fn launch(&mut self) -> Option<usize> {
        while self
            .state
            .get(self.first_waiting)
            .is_some_and(|s| *s != State::Waiting)
        {
            self.first_waiting += 1;
        }
        if self.running >= self.jobs || self.alone_running {
            return None;
        }
        let pos = (self.first_waiting..self.state.len())
            .find(|&p| self.state[p] == State::Waiting && self.ready(p))?;
        if self.alone[pos] {
            if self.running > 0 {
                // Launching what comes after it would keep it waiting.
                return None;
            }
            self.alone_running = true;
        }
        self.state[pos] = State::Running;
        self.running += 1;
        Some(pos)
    }

    fn ready(&self, pos: usize) -> bool {
        self.waits[pos].iter().all(|&p| {
            self.state
                .get(p)
                .is_some_and(|s| *s == State::Ended { succeeded: true })
        })
    }

    /// A launched step ended.
    pub fn ended(&mut self, pos: usize, succeeded: bool) {
        if self.state.get(pos) == Some(&State::Running) {
            self.state[pos] = State::Ended { succeeded };
            self.running -= 1;
            if self.alone[pos] {
                self.alone_running = false;
            }
        }
    }

    pub fn running(&self) -> usize {
        self.running
    }

    /// The positions running now, in order.
    pub fn running_now(&self) -> Vec<usize> {
        (0..self.state.len())
            .filter(|&p| self.state[p] == State::Running)
            .collect()
    }

    /// Whether some step was never launched.
    pub fn waiting(&self) -> bool {
        self.state.contains(&State::Waiting)
    }
}

/// The positions that would start together if every step took as long
/// and succeeded: batch after batch, each once the one before ended. For
/// `--dry-run --jobs N`; a real run starts a step as soon as it is ready
/// and a slot is free.
pub fn batches(steps: &[Step], order: &[usize], jobs: usize) -> Vec<Vec<usize>> {
    let mut queue = Queue::of(steps, order, jobs);
    let mut batches = Vec::new();
    loop {
        let batch: Vec<usize> = std::iter::from_fn(|| queue.launch()).collect();
        if batch.is_empty() {
            return batches;
        }
        for &pos in &batch {
            queue.ended(pos, true);
        }
        batches.push(batch);
    }
}

/// Why the run launches nothing more.
struct Stop {
    /// Shown in the report of each step it ended.
    cause: String,
    /// The positions running when it was decided.
    ended: Vec<usize>,
    /// A signal ended the steps, not this stop.
    by_signal: bool,
}

/// Runs the steps of `order`; returns whether one failed. The report
/// lists every step in the order, whatever order they ended in.
pub(super) fn run(run: &mut Run<'_>, order: &[usize]) -> bool {
    let plan = run.plan;
    let jobs = run.opts.jobs.clamp(1, MAX_JOBS);
    let mut queue = Queue::of(&plan.steps, order, jobs);
    let mut reports: Vec<Option<StepReport>> = order.iter().map(|_| None).collect();
    let mut stop: Option<Stop> = None;
    let worker = run.worker();
    let (sender, receiver) = mpsc::channel::<(usize, StepReport)>();
    std::thread::scope(|scope| {
        loop {
            while stop.is_none() {
                let Some(pos) = queue.launch() else {
                    break;
                };
                let step = &plan.steps[order[pos]];
                if let Some(why) = run.cannot_launch(step) {
                    reports[pos] = Some(never_ran(step, why.clone()));
                    queue.ended(pos, false);
                    stop = Some(run.stop_running(&queue, &worker, why));
                    break;
                }
                run.progress
                    .step_started(&step.name, &step.kind.to_string());
                if jobs == 1 || matches!(step.action, Action::Backup(_)) {
                    let report = match step.action {
                        Action::Backup(_) => run.step(step, ""),
                        _ => worker.step(step, ""),
                    };
                    run.ended(
                        step,
                        pos,
                        report,
                        &mut queue,
                        &mut reports,
                        &mut stop,
                        &worker,
                    );
                    continue;
                }
                let sender = sender.clone();
                let shared = &worker;
                let spawned = std::thread::Builder::new()
                    .name(format!("step-{}", step.name))
                    .spawn_scoped(scope, move || {
                        let report = catch_unwind(AssertUnwindSafe(|| shared.step(step, "")))
                            .unwrap_or_else(|_| {
                                never_ran(step, "internal error: the step's thread panicked".into())
                            });
                        let _ = sender.send((pos, report));
                    });
                if let Err(e) = spawned {
                    let report =
                        never_ran(step, format!("cannot start a thread for the step: {e}"));
                    run.ended(
                        step,
                        pos,
                        report,
                        &mut queue,
                        &mut reports,
                        &mut stop,
                        &worker,
                    );
                }
            }
            if queue.running() == 0 {
                break;
            }
            // Every running step holds a sender and sends once.
            let Ok((pos, report)) = receiver.recv() else {
                break;
            };
            let step = &plan.steps[order[pos]];
            run.ended(
                step,
                pos,
                report,
                &mut queue,
                &mut reports,
                &mut stop,
                &worker,
            );
        }
    });
    let mut failed = stop.is_some();
    if !failed && queue.waiting() {
        // Only steps waiting for each other (a cycle the graph let
        // through) get here: never report such a run as a success.
        failed = true;
        if let Some(pos) = (0..order.len()).find(|&p| reports[p].is_none()) {
            let step = &plan.steps[order[pos]];
            reports[pos] = Some(never_ran(
                step,
                "internal error: the step waits for steps that do not run before it".into(),
            ));
        }
    }
    for (pos, report) in reports.into_iter().enumerate() {
        run.report
            .steps
            .push(report.unwrap_or_else(|| not_run(&plan.steps[order[pos]])));
    }
    failed
}

/// A step that failed without running: why it could not.
fn never_ran(step: &Step, why: String) -> StepReport {
    let mut report = not_run(step);
    report.status = "failed".into();
    report.error = Some(why);
    report
}

impl Run<'_> {
    /// Why `step` must not be launched (a signal, the lock lost, the
    /// journal not writable); else its start is journaled.
    fn cannot_launch(&mut self, step: &Step) -> Option<String> {
        if let Some(signal) = self.signals.interrupted() {
            Some(format!("{signal} received: no more steps are launched"))
        } else if !self.lock.as_mut().is_some_and(lock::still_held) {
            Some("the connection holding the lock was lost: no more steps are launched".into())
        } else if !self.journal(&Record::StepStarted {
            step: step.name.clone(),
            kind: step.kind.to_string(),
            on_failure: false,
        }) {
            Some("the journal cannot be written: no more steps are launched".into())
        } else {
            None
        }
    }

    /// A step ended: journal it, show it, and on a failure stop the
    /// others.
    #[allow(clippy::too_many_arguments)]
    fn ended(
        &mut self,
        step: &Step,
        pos: usize,
        mut report: StepReport,
        queue: &mut Queue,
        reports: &mut [Option<StepReport>],
        stop: &mut Option<Stop>,
        worker: &Worker<'_>,
    ) {
        if report.status == "succeeded" && self.journal.as_deref().is_some_and(Journal::is_broken) {
            report.status = "failed".into();
            report.error = Some(
                "the journal could not record this step's process: no more steps are launched"
                    .into(),
            );
        }
        if let Some(s) = stop.as_ref()
            && !s.by_signal
            && !steps::passed(&report.status)
            && s.ended.contains(&pos)
        {
            report.status = "interrupted".into();
            report.error = Some(match &report.error {
                Some(own) => format!("ended because {} ({own})", s.cause),
                None => format!("ended because {}", s.cause),
            });
        }
        let _ = self.note(&Record::StepEnded {
            step: step.name.clone(),
            status: report.status.clone(),
            seconds: report.seconds,
            error: report.error.clone(),
            on_failure: false,
        });
        self.progress.step_ended(
            &step.name,
            &report.status,
            report.seconds,
            report.error.as_deref(),
        );
        queue.ended(pos, steps::passed(&report.status));
        if !steps::passed(&report.status) && stop.is_none() {
            *stop = Some(self.stop_running(queue, worker, format!("step `{}` failed", step.name)));
        }
        reports[pos] = Some(report);
    }

    /// Launches nothing more and ends the steps still running: their
    /// process groups get SIGTERM (SIGKILL after the grace period), their
    /// statements are cancelled. Does not wait for them.
    fn stop_running(&self, queue: &Queue, worker: &Worker<'_>, cause: String) -> Stop {
        let running = queue.running_now();
        // The signal has already ended them, and said so.
        let by_signal = self.signals.interrupted().is_some();
        if !running.is_empty() && !by_signal {
            self.progress.message(&format!(
                "{cause}: ending the {} other running step(s), then rolling back",
                running.len()
            ));
            worker.stopper.stop();
            worker.statements.cancel_all();
        }
        Stop {
            cause,
            ended: running,
            by_signal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the queue to its end with every step taking as long; returns
    /// the batches of positions launched together.
    fn simulate(waits: Vec<Vec<usize>>, alone: Vec<bool>, jobs: usize) -> Vec<Vec<usize>> {
        let mut queue = Queue::new(waits, alone, jobs);
        let mut out = Vec::new();
        loop {
            let batch: Vec<usize> = std::iter::from_fn(|| queue.launch()).collect();
            if batch.is_empty() {
                assert!(!queue.waiting(), "steps left waiting: {queue:?}");
                assert_eq!(queue.running(), 0);
                return out;
            }
            for &p in &batch {
                queue.ended(p, true);
            }
            out.push(batch);
        }
    }

    #[test]
    fn one_job_is_the_order_itself() {
        let waits = vec![vec![], vec![], vec![0], vec![1, 2]];
        let batches = simulate(waits, vec![false, true, false, false], 1);
        assert_eq!(batches, vec![vec![0], vec![1], vec![2], vec![3]]);
    }

    #[test]
    fn independent_steps_run_together_up_to_the_limit() {
        let waits = vec![vec![], vec![0], vec![0], vec![0], vec![0], vec![1, 2, 3, 4]];
        let alone = vec![false; 6];
        assert_eq!(
            simulate(waits.clone(), alone.clone(), 4),
            vec![vec![0], vec![1, 2, 3, 4], vec![5]]
        );
        assert_eq!(
            simulate(waits, alone, 3),
            vec![vec![0], vec![1, 2, 3], vec![4], vec![5]]
        );
    }

    #[test]
    fn a_backup_waits_for_the_running_steps_and_runs_alone() {
        // 0 and 2 are independent roots; 1 is a backup that is ready at
        // once, before 2 in the order: it must not share its time with 0
        // nor let 2 start beside it.
        let waits = vec![vec![], vec![], vec![], vec![1]];
        let alone = vec![false, true, false, false];
        assert_eq!(
            simulate(waits, alone, 4),
            vec![vec![0], vec![1], vec![2, 3]]
        );
    }

    #[test]
    fn a_step_waits_until_its_dependencies_succeeded() {
        let mut queue = Queue::new(vec![vec![], vec![0], vec![]], vec![false; 3], 4);
        assert_eq!(queue.launch(), Some(0));
        assert_eq!(queue.launch(), Some(2));
        assert_eq!(queue.launch(), None);
        queue.ended(2, true);
        assert_eq!(queue.launch(), None, "1 waits for 0, still running");
        queue.ended(0, false);
        assert_eq!(queue.launch(), None, "0 failed: 1 never becomes ready");
        assert!(queue.waiting());
        assert_eq!(queue.running(), 0);
    }

    #[test]
    fn a_finished_step_frees_its_slot_for_the_next_ready_one() {
        let mut queue = Queue::new(vec![vec![]; 4], vec![false; 4], 2);
        assert_eq!(
            (queue.launch(), queue.launch(), queue.launch()),
            (Some(0), Some(1), None)
        );
        queue.ended(1, true);
        assert_eq!(queue.launch(), Some(2));
        assert_eq!(queue.running_now(), vec![0, 2]);
        queue.ended(0, true);
        assert_eq!(queue.launch(), Some(3));
    }

    #[test]
    fn a_dependency_later_in_the_order_is_still_waited_for() {
        let mut queue = Queue::new(vec![vec![1], vec![]], vec![false; 2], 1);
        assert_eq!(queue.launch(), Some(1));
        queue.ended(1, true);
        assert_eq!(queue.launch(), Some(0));
    }
}
