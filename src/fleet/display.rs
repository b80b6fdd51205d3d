//! What a fleet run shows on stderr while it goes: on a terminal, one
//! live line per running target (what its journal says it is doing, and
//! for how long) under a line of counts; otherwise plain timestamped lines
//! when a target starts, changes step or ends. It shows; it decides
//! nothing (the summary is the record).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::fleet::launch::Running;
use crate::fleet::summary::TargetSummary;

/// How often the running targets' journals are read for the display.
const REFRESH: Duration = Duration::from_millis(500);

pub struct Display {
    total: usize,
    live: Option<Live>,
    /// What each running target (by run id) was last shown doing.
    shown: RefCell<BTreeMap<String, String>>,
    last: RefCell<Option<Instant>>,
    /// The counts last printed (plain lines).
    counts: RefCell<String>,
}

struct Live {
    multi: MultiProgress,
    counts: ProgressBar,
    bars: RefCell<BTreeMap<String, ProgressBar>>,
}

impl Display {
    pub fn start(total: usize) -> Display {
        let terminal = std::io::stderr().is_terminal()
            && std::env::var("TERM").map_or(true, |term| term != "dumb");
        let live = terminal.then(|| {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let counts = multi.add(ProgressBar::new_spinner());
            counts.set_style(
                ProgressStyle::with_template("{msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            Live {
                multi,
                counts,
                bars: RefCell::new(BTreeMap::new()),
            }
        });
        Display {
            total,
            live,
            shown: RefCell::new(BTreeMap::new()),
            last: RefCell::new(None),
            counts: RefCell::new(String::new()),
        }
    }

    /// A permanent line.
    pub fn note(&self, text: &str) {
        let line = format!("[{}] {text}", clock());
        match &self.live {
            Some(live) => {
                let _ = live.multi.println(line);
            }
            None => {
                let mut err = std::io::stderr().lock();
                let _ = writeln!(err, "{line}");
            }
        }
    }

    pub fn started(&self, child: &Running) {
        self.note(&format!(
            "{}: started on {} (run {})",
            child.member.name, child.member.server, child.run_id
        ));
        if let Some(live) = &self.live {
            let bar = live.multi.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("  {spinner} {prefix} {msg} ({elapsed})")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_prefix(child.member.name.clone());
            bar.set_message("starting");
            live.bars.borrow_mut().insert(child.run_id.clone(), bar);
        }
    }

    pub fn ended(&self, done: &TargetSummary) {
        if let (Some(live), Some(id)) = (&self.live, &done.run_id)
            && let Some(bar) = live.bars.borrow_mut().remove(id)
        {
            bar.finish_and_clear();
            live.multi.remove(&bar);
        }
        let time = done
            .seconds
            .map(|s| format!(" in {}", crate::units::seconds(s)))
            .unwrap_or_default();
        self.note(&format!(
            "{}: {}{time}",
            done.name,
            done.outcome.replace('_', " ")
        ));
    }

    /// Refreshes the live lines (or prints a line for a step change).
    pub fn tick(&self, running: &[Running], ended: usize, waiting: usize, all: &[TargetSummary]) {
        let due = self.last.borrow().is_none_or(|at| at.elapsed() >= REFRESH);
        if !due {
            return;
        }
        *self.last.borrow_mut() = Some(Instant::now());
        let failed = all
            .iter()
            .filter(|t| t.member() != crate::exit::Member::Done)
            .count();
        let counts = format!(
            "{} of {} done, {failed} not at `to`, {} running, {waiting} waiting",
            ended - failed,
            self.total,
            running.len()
        );
        for child in running {
            let doing = child.doing();
            let mut shown = self.shown.borrow_mut();
            let changed = shown.get(&child.run_id) != Some(&doing);
            match &self.live {
                Some(live) => {
                    if let Some(bar) = live.bars.borrow().get(&child.run_id) {
                        bar.set_message(doing.clone());
                        bar.tick();
                    }
                }
                None if changed => {
                    drop(shown);
                    self.note(&format!("{}: {doing}", child.member.name));
                    shown = self.shown.borrow_mut();
                }
                None => {}
            }
            shown.insert(child.run_id.clone(), doing);
        }
        match &self.live {
            Some(live) => {
                live.counts.set_message(counts);
                live.counts.tick();
            }
            None => {
                if *self.counts.borrow() != counts {
                    self.note(&counts);
                    *self.counts.borrow_mut() = counts;
                }
            }
        }
    }

    pub fn finish(&self) {
        if let Some(live) = &self.live {
            live.counts.finish_and_clear();
            let _ = live.multi.clear();
        }
    }
}

/// The wall clock as `HH:MM:SS` (UTC), as a single run's lines show it.
fn clock() -> String {
    let now = crate::units::now_millis();
    now.get(11..19).unwrap_or(&now).to_string()
}
