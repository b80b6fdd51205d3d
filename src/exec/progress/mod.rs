//! What a run shows on stderr while it goes: one permanent, timestamped
//! line per event (`[12:03:07] ✓ update odoo (734.2 s)`), and for each
//! running step either a live spinner line (a terminal) or a periodic
//! "still running" line (a log file, CI). It shows; it decides nothing and
//! records nothing: the journal and the report are the run's record, and
//! this display may vanish at any moment (a closed SSH session) without
//! the run noticing.
//!
//! Choices a caller relies on:
//! - Every method takes `&self` and the handle is `Sync` (and cheap to
//!   clone): steps running at once report from their own threads.
//! - A step's output never passes through the runner (its child writes
//!   straight into the step's log, `exec::process`), so the display reads
//!   the log's tail itself, from its own thread, and only when the log
//!   grew: nothing is added to the step's path. Only whole lines are shown
//!   (a child writing into a file flushes in blocks, so a block may end in
//!   the middle of a secret that the redactor would not recognise yet).
//! - On a terminal (stderr a tty, `TERM` not `dumb`): one indicatif spinner
//!   per running step with its kind, name, elapsed time (ticking while the
//!   step prints nothing) and its last output line, cut to the terminal's
//!   width. `NO_COLOR` turns colours off.
//! - Otherwise: the plain lines, and for a step that has gone
//!   `PLAN_RUNNER_QUIET_INTERVAL` (60 s by default) without a line about
//!   it, `still running: update odoo (12 min); last output: ...`.
//! - The first write to stderr that fails (EIO once the terminal has hung
//!   up, EPIPE once a pipe reader is gone) silences the display for good:
//!   no retry, no error, no busy loop. The run goes on with its log and
//!   journal.

use std::fs::File;
use std::io::{self, IsTerminal, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};

use crate::exec::redact::Redactor;

mod tail;
mod terminal;

use tail::*;
use terminal::*;

/// The environment variable that sets how long a step may run without a
/// line about it in plain mode.
pub const QUIET_INTERVAL_VAR: &str = "PLAN_RUNNER_QUIET_INTERVAL";

/// The default of `PLAN_RUNNER_QUIET_INTERVAL`: often enough that a CI job
/// or a `tail -f` never looks dead, rarely enough that a two-hour step adds
/// 120 lines, not thousands.
pub const DEFAULT_QUIET_INTERVAL: Duration = Duration::from_secs(60);

/// How often the spinners turn and the logs' tails are looked at.
const LIVE_TICK: Duration = Duration::from_millis(200);

/// The longest output line kept; the terminal's width cuts it further.
const MAX_LINE_CHARS: usize = 300;

/// How much of a log's end is read to find its last line, at first and at
/// most: a longer line is not shown.
const TAIL_WINDOW: u64 = 8 * 1024;
const MAX_TAIL_WINDOW: u64 = 128 * 1024;

/// The display of one run. Clones share it; the ticker stops with
/// `finish` or when the last clone is dropped.
#[derive(Clone)]
pub struct Progress {
    shared: Arc<Shared>,
    ticker: Arc<Ticker>,
}

struct Shared {
    sink: Sink,
    redactor: Redactor,
    quiet: Duration,
    running: Mutex<Vec<Running>>,
    /// Set at the first failed write to stderr; nothing is written after.
    gone: Arc<AtomicBool>,
}

enum Sink {
    Live { multi: MultiProgress, color: bool },
    Plain(Mutex<Box<dyn Write + Send>>),
}

/// A step between its start and its end.
struct Running {
    name: String,
    /// `update odoo`, `on_failure start old_server`.
    label: String,
    started: Instant,
    /// When a plain line last mentioned it.
    said: Instant,
    log: Option<LogTail>,
    /// Its last output line, cleaned and redacted.
    line: Option<String>,
    /// Whether `line` changed since the spinner last showed it.
    fresh: bool,
    bar: Option<ProgressBar>,
}

/// A step's log, and how far it has been looked at.
struct LogTail {
    path: PathBuf,
    /// Where this step's output starts (a resumed run appends to the log
    /// of an earlier attempt).
    from: u64,
    /// The log's length when its last line was read.
    seen: u64,
}

impl Progress {
    /// The display for a run on this process's stderr: live on a
    /// terminal, plain otherwise. Secrets known to `redactor` never show.
    pub fn start(redactor: &Redactor) -> Progress {
        let gone = Arc::new(AtomicBool::new(false));
        let live = is_live(
            std::io::stderr().is_terminal(),
            std::env::var_os("TERM").as_deref(),
        );
        let sink = if live {
            let term = Guarded {
                term: console::Term::buffered_stderr(),
                gone: Arc::clone(&gone),
            };
            let multi =
                MultiProgress::with_draw_target(ProgressDrawTarget::term_like(Box::new(term)));
            Sink::Live {
                multi,
                color: std::env::var_os("NO_COLOR").is_none(),
            }
        } else {
            Sink::Plain(Mutex::new(Box::new(std::io::stderr())))
        };
        let (quiet, warning) = quiet_interval(std::env::var(QUIET_INTERVAL_VAR).ok().as_deref());
        let progress = Progress::with(sink, redactor, quiet, gone);
        if let Some(warning) = warning {
            progress.message(&warning);
        }
        progress
    }

    /// A plain display writing to `out` (tests).
    pub fn plain(out: Box<dyn Write + Send>, redactor: &Redactor, quiet: Duration) -> Progress {
        let sink = Sink::Plain(Mutex::new(out));
        Progress::with(sink, redactor, quiet, Arc::new(AtomicBool::new(false)))
    }

    fn with(sink: Sink, redactor: &Redactor, quiet: Duration, gone: Arc<AtomicBool>) -> Progress {
        let tick = match sink {
            Sink::Live { .. } => LIVE_TICK,
            // The ticker runs from the run's start, not the step's: it
            // looks often enough that a heartbeat is late by a quarter of
            // the interval at most (and a second at most).
            Sink::Plain(_) => (quiet / 4).clamp(Duration::from_millis(50), Duration::from_secs(1)),
        };
        let shared = Arc::new(Shared {
            sink,
            redactor: redactor.clone(),
            quiet,
            running: Mutex::new(Vec::new()),
            gone,
        });
        let ticker = Ticker::start(Arc::clone(&shared), tick);
        Progress {
            shared,
            ticker: Arc::new(ticker),
        }
    }

    /// A permanent line.
    pub fn message(&self, line: &str) {
        self.shared.println(line);
    }

    /// A step started; `kind` is what the lines show before its name
    /// (`update`, `on_failure start`).
    pub fn step_started(&self, name: &str, kind: &str) {
        self.begin(name, format!("{kind} {name}"), true);
    }

    /// Something long that is not a step (the rollback): its spinner or
    /// heartbeats, without a start or an end line, since the caller says
    /// what it did. `key` must not be a step's name.
    pub fn activity_started(&self, key: &str, label: &str) {
        self.begin(key, label.to_string(), false);
    }

    /// Ends what `activity_started` began.
    pub fn activity_ended(&self, key: &str) {
        if let Some(step) = self.shared.take(key) {
            self.shared.clear_bar(&step);
        }
    }

    fn begin(&self, name: &str, label: String, announce: bool) {
        let now = Instant::now();
        let bar = match &self.shared.sink {
            Sink::Live { multi, color } => {
                let style = ProgressStyle::with_template(
                    "{spinner} {prefix} {elapsed_precise}  {wide_msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
                let bar = multi.add(ProgressBar::new_spinner().with_style(style));
                bar.set_prefix(if *color {
                    format!("\x1b[1m{label}\x1b[0m")
                } else {
                    label.clone()
                });
                bar.tick();
                Some(bar)
            }
            Sink::Plain(_) => {
                if announce {
                    self.shared.println(&format!("▶ {label}"));
                }
                None
            }
        };
        self.shared.running().push(Running {
            name: name.to_string(),
            label,
            started: now,
            said: now,
            log: None,
            line: None,
            fresh: false,
            bar,
        });
    }

    /// The step's output goes to `log`, from its current end on: its last
    /// line is shown from now on.
    pub fn step_log(&self, name: &str, log: &Path) {
        let from = std::fs::metadata(log).map_or(0, |m| m.len());
        if let Some(step) = self.shared.running().iter_mut().find(|r| r.name == name) {
            step.log = Some(LogTail {
                path: log.to_path_buf(),
                from,
                seen: from,
            });
        }
    }

    /// The step's latest output line, for steps whose output does not go
    /// to a log the display can read.
    pub fn step_output(&self, name: &str, line: &str) {
        let line = self.shared.clean(line);
        if line.is_empty() {
            return;
        }
        if let Some(step) = self.shared.running().iter_mut().find(|r| r.name == name) {
            step.line = Some(line);
            step.fresh = true;
        }
    }

    /// A step ended: its spinner goes, its permanent line stays.
    pub fn step_ended(&self, name: &str, status: &str, seconds: f64, error: Option<&str>) {
        let label = match self.shared.take(name) {
            Some(step) => {
                self.shared.clear_bar(&step);
                step.label
            }
            None => name.to_string(),
        };
        if status == "skipped" {
            self.shared.println(&format!("- {label} (skipped)"));
            return;
        }
        let succeeded = status == "succeeded";
        let mark = match (&self.shared.sink, succeeded) {
            (Sink::Live { color: true, .. }, true) => "\x1b[32m✓\x1b[0m",
            (Sink::Live { color: true, .. }, false) => "\x1b[31m✗\x1b[0m",
            (_, true) => "✓",
            (_, false) => "✗",
        };
        let error = error.map(|e| format!(": {e}")).unwrap_or_default();
        self.shared
            .println(&format!("{mark} {label} ({seconds:.1} s){error}"));
    }

    /// Stops the ticker and clears the spinners; later lines are plain
    /// (the run's summary is printed after this).
    pub fn finish(&self) {
        self.ticker.stop();
        let bars: Vec<ProgressBar> = self
            .shared
            .running()
            .drain(..)
            .filter_map(|r| r.bar)
            .collect();
        if let Sink::Live { multi, .. } = &self.shared.sink {
            for bar in bars {
                bar.finish_and_clear();
                multi.remove(&bar);
            }
            let _ = multi.clear();
        }
    }

    /// Whether a write to stderr has failed (the terminal is gone).
    pub fn is_gone(&self) -> bool {
        self.shared.gone.load(Ordering::Relaxed)
    }
}

impl Shared {
    fn running(&self) -> MutexGuard<'_, Vec<Running>> {
        lock(&self.running)
    }

    fn take(&self, name: &str) -> Option<Running> {
        let mut running = self.running();
        let at = running.iter().position(|r| r.name == name)?;
        Some(running.remove(at))
    }

    fn clear_bar(&self, step: &Running) {
        if let (Some(bar), Sink::Live { multi, .. }) = (&step.bar, &self.sink) {
            bar.finish_and_clear();
            multi.remove(bar);
        }
    }

    fn println(&self, line: &str) {
        if self.gone.load(Ordering::Relaxed) {
            return;
        }
        let line = stamped(line);
        match &self.sink {
            // Errors are seen (and remembered) by `Guarded`.
            Sink::Live { multi, .. } => {
                let _ = multi.println(line);
            }
            Sink::Plain(out) => {
                let mut out = lock(out);
                if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                    self.gone.store(true, Ordering::Relaxed);
                }
            }
        }
    }

    /// One pass of the ticker.
    fn tick(&self) {
        match &self.sink {
            Sink::Live { .. } => self.tick_live(),
            Sink::Plain(_) => self.tick_plain(),
        }
    }

    fn tick_live(&self) {
        let mut updates = Vec::new();
        {
            let mut running = self.running();
            for step in running.iter_mut() {
                self.refresh(step);
                let Some(bar) = step.bar.clone() else {
                    continue;
                };
                let line = if step.fresh {
                    step.fresh = false;
                    step.line.clone()
                } else {
                    None
                };
                updates.push((bar, line));
            }
        }
        // Drawn outside the lock: a stalled terminal (Ctrl-S) must not
        // hold up a step thread that only wants to record its end.
        for (bar, line) in updates {
            match line {
                Some(line) => bar.set_message(line),
                None => bar.tick(),
            }
        }
    }

    fn tick_plain(&self) {
        let now = Instant::now();
        let mut lines = Vec::new();
        {
            let mut running = self.running();
            for step in running.iter_mut() {
                if now.duration_since(step.said) < self.quiet {
                    continue;
                }
                step.said = now;
                self.refresh(step);
                let mut line = format!(
                    "still running: {} ({})",
                    step.label,
                    crate::units::duration(now.duration_since(step.started))
                );
                if let Some(last) = &step.line {
                    line.push_str("; last output: ");
                    line.push_str(last);
                }
                lines.push(line);
            }
        }
        for line in lines {
            self.println(&line);
        }
    }

    /// Reads the step's last output line when its log has grown.
    fn refresh(&self, step: &mut Running) {
        let Some(tail) = step.log.as_mut() else {
            return;
        };
        let Ok(len) = std::fs::metadata(&tail.path).map(|m| m.len()) else {
            return;
        };
        if len == tail.seen {
            return;
        }
        tail.seen = len;
        if let Ok(Some(raw)) = last_line(&tail.path, tail.from) {
            let line = self.clean(&raw);
            if !line.is_empty() && step.line.as_deref() != Some(line.as_str()) {
                step.line = Some(line);
                step.fresh = true;
            }
        }
    }

    /// A line as it may be shown: redacted, without control characters
    /// or escape sequences, trimmed and cut.
    fn clean(&self, raw: &str) -> String {
        // Redacted before and after: a secret may span an escape sequence
        // (`hun\e[0mter2`), or hold a tab that cleaning turns into a space.
        let redacted = self.redactor.redact(raw);
        let plain = printable(&redacted);
        let hidden = self.redactor.redact(&plain);
        cut(hidden.trim(), MAX_LINE_CHARS)
    }
}

/// `PLAN_RUNNER_QUIET_INTERVAL`: seconds (`90`) or a duration (`2m`);
/// with a warning when it is not one.
fn quiet_interval(value: Option<&str>) -> (Duration, Option<String>) {
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return (DEFAULT_QUIET_INTERVAL, None);
    };
    let parsed = value
        .parse::<u64>()
        .map(Duration::from_secs)
        .or_else(|_| humantime::parse_duration(value));
    match parsed {
        Ok(d) if !d.is_zero() => (d, None),
        _ => (
            DEFAULT_QUIET_INTERVAL,
            Some(format!(
                "warning: {QUIET_INTERVAL_VAR}=`{value}` is not a duration (such as `60` or `5m`): using {} s",
                DEFAULT_QUIET_INTERVAL.as_secs()
            )),
        ),
    }
}

/// `[12:03:07] line`, UTC as the journal and the logs.
pub fn stamped(line: &str) -> String {
    let stamp = crate::units::timestamp(SystemTime::now());
    let time = stamp.get(11..19).unwrap_or("");
    format!("[{time}] {line}")
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer the test reads back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            lock(&self.0).extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8_lossy(&lock(&self.0)).into_owned()
        }
    }

    /// A writer whose terminal is gone.
    struct HungUp(Arc<Mutex<u32>>);

    impl Write for HungUp {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            *lock(&self.0) += 1;
            Err(io::Error::from_raw_os_error(5))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn secret_redactor() -> Redactor {
        let mut redactor = Redactor::new();
        redactor.learn("hunter2");
        redactor
    }

    #[test]
    fn plain_lines_are_stamped_and_a_quiet_step_is_said_to_be_running() {
        let out = Captured::default();
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("odoo.log");
        std::fs::write(&log, "from an earlier run\n").unwrap();
        let progress = Progress::plain(
            Box::new(out.clone()),
            &secret_redactor(),
            Duration::from_millis(300),
        );
        progress.step_started("odoo", "update");
        progress.step_log("odoo", &log);
        std::fs::write(
            &log,
            "from an earlier run\nloading sale with pw hunter2\n\npartial hunt",
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(1300));
        progress.step_ended("odoo", "failed", 1.26, Some("exited with code 3"));
        progress.finish();
        let text = out.text();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.len() >= 4, "{text}");
        for line in &lines {
            let time = line.get(1..9).unwrap_or("");
            assert!(
                line.starts_with('[')
                    && line.get(9..11) == Some("] ")
                    && time.bytes().filter(u8::is_ascii_digit).count() == 6,
                "not stamped: {line:?}"
            );
        }
        assert!(lines[0].ends_with("] ▶ update odoo"), "{text}");
        let still: Vec<&&str> = lines
            .iter()
            .filter(|l| l.contains("still running: update odoo ("))
            .collect();
        assert!(still.len() >= 2, "{text}");
        assert!(
            still
                .iter()
                .all(|l| l.ends_with("; last output: loading sale with pw ***")),
            "the last whole line, redacted: {text}"
        );
        assert!(
            lines
                .last()
                .is_some_and(|l| l.ends_with("] ✗ update odoo (1.3 s): exited with code 3")),
            "{text}"
        );
        assert!(
            !text.contains("hunter2") && !text.contains("earlier"),
            "{text}"
        );
    }

    #[test]
    fn an_activity_has_heartbeats_but_no_start_or_end_line() {
        let out = Captured::default();
        let progress = Progress::plain(
            Box::new(out.clone()),
            &Redactor::new(),
            Duration::from_millis(100),
        );
        progress.activity_started("(rollback)", "rolling back");
        std::thread::sleep(Duration::from_millis(400));
        progress.activity_ended("(rollback)");
        let after = out.text().len();
        std::thread::sleep(Duration::from_millis(300));
        progress.finish();
        let text = out.text();
        assert!(text.contains("] still running: rolling back ("), "{text}");
        assert!(!text.contains('▶') && !text.contains('✓'), "{text}");
        assert_eq!(text.len(), after, "nothing after its end: {text}");
    }

    #[test]
    fn a_busy_step_is_not_reported_before_the_interval() {
        let out = Captured::default();
        let progress = Progress::plain(
            Box::new(out.clone()),
            &Redactor::new(),
            Duration::from_secs(60),
        );
        progress.step_started("quick", "script");
        std::thread::sleep(Duration::from_millis(200));
        progress.step_ended("quick", "succeeded", 0.2, None);
        progress.finish();
        let text = out.text();
        assert!(!text.contains("still running"), "{text}");
        assert!(text.contains("] ✓ script quick (0.2 s)\n"), "{text}");
    }

    #[test]
    fn a_gone_terminal_is_written_to_once_and_the_ticker_stops() {
        let writes = Arc::new(Mutex::new(0));
        let progress = Progress::plain(
            Box::new(HungUp(Arc::clone(&writes))),
            &Redactor::new(),
            Duration::from_millis(50),
        );
        progress.message("the run starts");
        assert!(progress.is_gone());
        progress.step_started("a", "script");
        std::thread::sleep(Duration::from_millis(300));
        progress.step_ended("a", "succeeded", 0.3, None);
        progress.message("more");
        progress.finish();
        assert_eq!(*lock(&writes), 1, "nothing is written after the failure");
    }

    #[test]
    fn concurrent_steps_report_from_their_own_threads() {
        let out = Captured::default();
        let progress = Progress::plain(
            Box::new(out.clone()),
            &Redactor::new(),
            Duration::from_secs(60),
        );
        std::thread::scope(|scope| {
            for i in 0..8 {
                let progress = &progress;
                scope.spawn(move || {
                    let name = format!("s{i}");
                    progress.step_started(&name, "script");
                    progress.step_output(&name, "working");
                    progress.step_ended(&name, "succeeded", 0.0, None);
                });
            }
        });
        progress.finish();
        let text = out.text();
        for i in 0..8 {
            assert!(text.contains(&format!("▶ script s{i}\n")), "{text}");
            assert!(text.contains(&format!("✓ script s{i} (0.0 s)\n")), "{text}");
        }
        assert!(lock(&progress.shared.running).is_empty());
    }

    #[test]
    fn the_last_line_is_a_whole_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let at = |text: &str, from: u64| {
            std::fs::write(&path, text).unwrap();
            last_line(&path, from).unwrap()
        };
        assert_eq!(at("", 0), None);
        assert_eq!(at("no end yet", 0), None);
        assert_eq!(at("one\ntwo\n", 0).as_deref(), Some("two"));
        assert_eq!(at("one\ntwo\n\n  \nthree is be", 0).as_deref(), Some("two"));
        assert_eq!(at("50%\r60%\r7", 0).as_deref(), Some("60%"));
        assert_eq!(at("old\nnew\n", 4).as_deref(), Some("new"));
        let runner = "--- 2026-05-01T12:00:00Z attempt 1 of 2, in /srv: odoo\nloading\n\
             --- 2026-05-01T12:00:09Z attempt 1 of 2 ended: exit code 0 after 9.000 s\n";
        assert_eq!(at(runner, 0).as_deref(), Some("loading"));
        assert_eq!(at("--- 2026-05-01T12:00:00Z attempt 1 of 1: x\n", 0), None);
        assert_eq!(
            at("--- a child's own line\n", 0).as_deref(),
            Some("--- a child's own line")
        );
        assert_eq!(at("old\n\n", 4), None, "nothing of this step's yet");
        // A last line longer than the largest window is not shown: its
        // start (and a secret in it) cannot be seen.
        let long = format!("x\n{}\n", "y".repeat(200_000));
        assert_eq!(at(&long, 0), None);
        let long_enough = format!("x\n{}\n", "y".repeat(20_000));
        assert_eq!(at(&long_enough, 0).map(|l| l.len()), Some(20_000));
    }

    #[test]
    fn lines_are_cleaned_redacted_and_cut() {
        let out = Captured::default();
        let progress = Progress::plain(Box::new(out), &secret_redactor(), DEFAULT_QUIET_INTERVAL);
        let shared = &progress.shared;
        assert_eq!(
            shared.clean("\x1b[1;31mERROR\x1b[0m\tdone\x07 "),
            "ERROR done"
        );
        assert_eq!(shared.clean("pw hun\x1b[0mter2"), "pw ***");
        assert_eq!(shared.clean("\x1b]0;title\x07text"), "text");
        let long = "é".repeat(400);
        let cut_line = shared.clean(&long);
        assert_eq!(cut_line.chars().count(), MAX_LINE_CHARS + 1);
        assert!(cut_line.ends_with('…'));
        progress.finish();
    }

    #[test]
    fn the_quiet_interval_reads_seconds_or_durations() {
        assert_eq!(quiet_interval(None), (DEFAULT_QUIET_INTERVAL, None));
        assert_eq!(quiet_interval(Some("2")).0, Duration::from_secs(2));
        assert_eq!(quiet_interval(Some("5m")).0, Duration::from_secs(300));
        assert_eq!(quiet_interval(Some("500ms")).0, Duration::from_millis(500));
        let (d, warning) = quiet_interval(Some("soon"));
        assert_eq!(d, DEFAULT_QUIET_INTERVAL);
        assert!(warning.is_some_and(|w| w.contains("`soon`")));
        assert!(quiet_interval(Some("0")).1.is_some());
    }

    #[test]
    fn spinners_only_on_a_terminal_that_is_not_dumb() {
        use std::ffi::OsStr;
        assert!(is_live(true, Some(OsStr::new("xterm-256color"))));
        assert!(is_live(true, None));
        assert!(!is_live(true, Some(OsStr::new("dumb"))));
        assert!(!is_live(false, Some(OsStr::new("xterm"))));
    }
}
