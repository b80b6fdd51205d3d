//! What `plan apply` shows on stderr while it runs, with the built binary
//! against the shared cluster: plain timestamped lines and "still running"
//! heartbeats when stderr is a pipe; the live spinner under a
//! pseudo-terminal, which then hangs up mid-step without stopping the run.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::support::apply::{PlanFolder, apply_command, assert_lints_clean, run, run_folders};
use crate::support::database;

const SECRET: &str = "Pw9-progress-hush";

/// A step that says something, then waits (`@WAIT@`, shell), then a
/// second step, so that lines are written after the
/// wait. The secret reaches the first step's output.
const PLAN: &str = r#"plan "progress test" {
  # lint: allow(W101)
  from = "1.0"
  to   = "2.0"
}

var hidden = secret("PROGRESS_TEST_HIDDEN")

script slow {
  # lint: allow(shell-step) a loop that waits for the test
  shell   = "echo compiling module 7 with \"$LEAK\"; @WAIT@; echo done waiting"
  env     = { LEAK = "${hidden}" }
  timeout = "2m"
}

script after_it {
  after   = slow
  run     = "true"
  timeout = "1m"
}
"#;

fn plan(wait: &str) -> String {
    PLAN.replace("@WAIT@", wait)
}

/// `[HH:MM:SS] ` at the start of a line.
fn stamped(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 11
        && b[0] == b'['
        && b[3] == b':'
        && b[6] == b':'
        && b[9] == b']'
        && b[10] == b' '
        && [1, 2, 4, 5, 7, 8].iter().all(|&i| b[i].is_ascii_digit())
}

#[test]
fn without_a_terminal_lines_are_stamped_and_a_quiet_step_is_said_to_be_running() {
    let db = database("progress_plain");
    // 3.5 s without a word: three heartbeats a second apart, give or take.
    let folder = PlanFolder::new(&plan("sleep 3.5"));
    assert_lints_clean(&folder.plan());
    let state = crate::support::apply::state_dir();
    let applied = run(
        apply_command(
            &db,
            &folder.plan(),
            state.path(),
            &["--assume-release", "1.0"],
        )
        .env("PROGRESS_TEST_HIDDEN", SECRET)
        .env("PLAN_RUNNER_QUIET_INTERVAL", "1"),
        state.path(),
    );
    applied.assert_code(0);
    assert_eq!(applied.outcome(), "succeeded", "{}", applied.output());

    // The run's lines, up to the summary that follows them.
    let all: Vec<&str> = applied.stderr.lines().collect();
    let summary = all
        .iter()
        .position(|l| l.is_empty())
        .unwrap_or_else(|| panic!("no summary: {}", applied.output()));
    let lines = &all[..summary];
    assert!(lines.len() >= 6, "{}", applied.output());
    for line in lines {
        assert!(
            stamped(line),
            "not timestamped: {line:?}\n{}",
            applied.output()
        );
        assert!(
            !line.contains('\x1b'),
            "no escape sequences off a terminal: {line:?}"
        );
    }
    let has = |needle: &str| lines.iter().any(|l| l.contains(needle));
    assert!(has("] ▶ script slow"), "{}", applied.output());
    assert!(has("] ✓ script slow ("), "{}", applied.output());
    assert!(has("] ✓ script after_it ("), "{}", applied.output());
    let still: Vec<&&str> = lines
        .iter()
        .filter(|l| l.contains("] still running: script slow ("))
        .collect();
    assert!(
        still.len() >= 2,
        "a heartbeat per second of quiet: {}",
        applied.output()
    );
    assert!(
        still
            .iter()
            .all(|l| l.ends_with("; last output: compiling module 7 with ***")),
        "the last output line, redacted: {}",
        applied.output()
    );
    assert!(!applied.stderr.contains(SECRET), "{}", applied.output());
    // The heartbeats come while the step runs, not after it.
    let slow_done = lines
        .iter()
        .position(|l| l.contains("✓ script slow"))
        .expect("the slow step's end");
    assert!(
        lines
            .iter()
            .skip(slow_done)
            .all(|l| !l.contains("still running")),
        "{}",
        applied.output()
    );
}

/// A pseudo-terminal of 30 rows and 120 columns: (master, slave).
fn open_pty() -> (OwnedFd, OwnedFd) {
    let (mut master, mut slave) = (-1, -1);
    let size = libc::winsize {
        ws_row: 30,
        ws_col: 120,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: openpty writes two descriptors on success; the name and
    // termios pointers may be null.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &size,
        )
    };
    assert_eq!(rc, 0, "openpty: {}", io::Error::last_os_error());
    // SAFETY: both were just opened and are owned by nothing else.
    unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) }
}

/// The CPU time (user + system, in clock ticks) the process has used.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the runner's stat");
    let after_name = &stat[stat.rfind(')').expect("a command name") + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
}

fn wait_with_deadline(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("waiting for the runner") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the runner did not finish within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn report(folder: &Path) -> serde_json::Value {
    let text = std::fs::read(folder.join("report.json")).expect("the run's report.json");
    serde_json::from_slice(&text).expect("report.json is JSON")
}

#[test]
fn on_a_terminal_a_spinner_shows_the_step_and_a_hangup_does_not_stop_the_run() {
    let db = database("progress_tty");
    let folder = PlanFolder::new(&plan("until [ -e go ]; do sleep 0.1; done"));
    assert_lints_clean(&folder.plan());
    let state = crate::support::apply::state_dir();
    let before = run_folders(state.path());

    let (master, slave) = open_pty();
    let mut cmd = apply_command(
        &db,
        &folder.plan(),
        state.path(),
        &["--assume-release", "1.0"],
    );
    cmd.env("PROGRESS_TEST_HIDDEN", SECRET)
        .env("TERM", "xterm")
        .env_remove("NO_COLOR")
        .stdin(Stdio::from(slave.try_clone().expect("dup")))
        .stdout(Stdio::from(slave.try_clone().expect("dup")))
        .stderr(Stdio::from(slave));
    // SAFETY: setsid and ioctl are async-signal-safe; the child leads a
    // new session whose controlling terminal is the pty, as in an SSH
    // login, so that closing the master hangs it up (SIGHUP, then EIO).
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("`plan` starts");
    // Only the child holds the slave now.
    drop(cmd);
    // SAFETY: F_SETFL on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(master.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(master.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
    let mut master = File::from(master);
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    let shown = loop {
        let mut buf = [0u8; 4096];
        match master.read(&mut buf) {
            Ok(n) if n > 0 => seen.extend_from_slice(&buf[..n]),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("reading the terminal: {e}"),
        }
        let text = String::from_utf8_lossy(&seen).into_owned();
        // The spinner's line: kind and name, the elapsed time, and the
        // step's last output line.
        let spinner = text.split(['\r', '\n']).any(|line| {
            line.contains("script slow")
                && line.contains("00:00:0")
                && line.contains("compiling module 7 with ***")
        });
        if spinner {
            break text;
        }
        if let Some(status) = child.try_wait().expect("waiting") {
            panic!("the runner ended before its step showed ({status}):\n{text}");
        }
        assert!(
            Instant::now() < deadline,
            "no spinner line with the step and its output:\n{text}"
        );
    };
    assert!(!shown.contains(SECRET), "{shown}");
    assert!(
        shown.contains("\x1b[2K"),
        "the spinner is redrawn in place: {shown:?}"
    );
    // No `▶` line on a terminal: the spinner says it.
    assert!(!shown.contains("▶"), "{shown}");

    // The SSH session closes mid-step.
    drop(master);
    std::thread::sleep(Duration::from_millis(300));
    let pid = child.id();
    let cpu_before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_millis(2000));
    let cpu_used = cpu_ticks(pid) - cpu_before;
    assert!(
        child.try_wait().expect("waiting").is_none(),
        "the hangup ended the runner"
    );
    // A busy loop on EIO would use about 200 ticks here.
    assert!(
        cpu_used < 40,
        "the runner used {cpu_used} ticks in 2 s with its terminal gone"
    );
    File::create(folder.path().join("go")).expect("creating the go file");
    let status = wait_with_deadline(&mut child, Duration::from_secs(90));
    assert_eq!(status.code(), Some(0), "{status}");

    let made: Vec<PathBuf> = run_folders(state.path())
        .difference(&before)
        .cloned()
        .collect();
    assert_eq!(made.len(), 1, "{made:?}");
    let report = report(&made[0]);
    assert_eq!(report["outcome"], "succeeded", "{report:#}");
    assert_eq!(report["exit_code"], 0, "{report:#}");
    let steps = report["steps"].as_array().expect("steps");
    assert!(
        steps.iter().all(|s| s["status"] == "succeeded") && steps.len() == 2,
        "{report:#}"
    );
    let log = std::fs::read_to_string(made[0].join("logs/slow.log")).expect("the step's log");
    assert!(log.contains("done waiting"), "{log}");
}

#[test]
fn a_closed_pipe_on_stderr_does_not_stop_the_run() {
    let db = database("progress_pipe");
    let folder = PlanFolder::new(&plan("sleep 1"));
    assert_lints_clean(&folder.plan());
    let state = crate::support::apply::state_dir();
    let before = run_folders(state.path());
    let mut child = apply_command(
        &db,
        &folder.plan(),
        state.path(),
        &["--assume-release", "1.0"],
    )
    .env("PROGRESS_TEST_HIDDEN", SECRET)
    .env("PLAN_RUNNER_QUIET_INTERVAL", "200ms")
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .expect("`plan` starts");
    // The reader goes away (`plan apply ... 2>&1 | tee log` and tee is
    // killed): every later write gets EPIPE.
    drop(child.stderr.take());
    let status = wait_with_deadline(&mut child, Duration::from_secs(90));
    assert_eq!(status.code(), Some(0), "{status}");
    let made: Vec<PathBuf> = run_folders(state.path())
        .difference(&before)
        .cloned()
        .collect();
    assert_eq!(made.len(), 1, "{made:?}");
    let report = report(&made[0]);
    assert_eq!(report["outcome"], "succeeded", "{report:#}");
    assert_eq!(report["exit_code"], 0, "{report:#}");
}
