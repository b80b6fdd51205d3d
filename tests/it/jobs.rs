//! `plan apply --jobs N` with real processes against the shared cluster:
//! independent steps overlap (by the journal's timestamps), a failure
//! ends the running siblings' whole process groups and rolls back, a
//! backup never shares its time, `--jobs 1` runs one step at a time, and
//! the flag's bounds.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use plan_runner::exec::journal::{self, Entry, Record};

use crate::support::apply::{self as support, PlanFolder, apply, apply_command, execute};
use crate::support::{TestDatabase, database};

/// A backup, then four independent steps that each sleep about a second.
const FOUR_SLEEPERS: &str = r#"plan "four at once" {
  from = "1.0"
  to   = "2.0"
}

backup before {
  method = "snapshot"
}

script a {
  after   = before
  run     = "sleep 1"
  timeout = "10m"
}

script b {
  after   = before
  run     = "sleep 1"
  timeout = "10m"
}

script c {
  after   = before
  run     = "sleep 1"
  timeout = "10m"
}

script d {
  after   = before
  run     = "sleep 1"
  timeout = "10m"
}
"#;

/// A backup, then a change, three long sleepers (one leaving a child of
/// its own in its group, one a statement on the server) and a step that
/// fails half a second in.
const ONE_FAILS: &str = r#"plan "one fails" {
  from = "1.0"
  to   = "2.0"
}

backup before {
  method = "snapshot"
}

sql change {
  after   = before
  sql     = "update t set v = 'changed'"
  timeout = "1m"
}

script long_a {
  after   = change
  shell   = "sleep 300 & echo $! > long_a.child; wait"
  timeout = "10m"
}

script long_b {
  after   = change
  run     = "sleep 300"
  timeout = "10m"
}

sql long_sql {
  after   = change
  sql     = "select pg_sleep(300)"
  timeout = "10m"
}

script broken {
  after   = change
  shell   = "sleep 0.5; echo about to fail; exit 3"
  timeout = "1m"
}

on_failure {
  script mark {
    run     = "touch on_failure_ran"
    timeout = "1m"
  }
}
"#;

fn setup(label: &str) -> TestDatabase {
    let db = database(label);
    execute(
        &db,
        "create table t (id int primary key, v text);
         insert into t select g, 'row ' || g from generate_series(1, 50) g;",
    );
    db
}

/// Each step's (start, end) as the journal's timestamps, and the records
/// of steps in the order they were written.
struct Timeline {
    spans: BTreeMap<String, (String, Option<String>)>,
    events: Vec<(String, bool)>,
    entries: Vec<Entry>,
}

fn timeline(folder: &Path) -> Timeline {
    let read = journal::read(folder).expect("reading the journal");
    assert!(!read.torn_tail && read.damaged.is_empty());
    let mut spans = BTreeMap::new();
    let mut events = Vec::new();
    for entry in &read.entries {
        match &entry.record {
            Record::StepStarted {
                step,
                on_failure: false,
                ..
            } => {
                spans.insert(step.clone(), (entry.at.clone(), None));
                events.push((step.clone(), true));
            }
            Record::StepEnded {
                step,
                on_failure: false,
                ..
            } => {
                if let Some(span) = spans.get_mut(step) {
                    span.1 = Some(entry.at.clone());
                }
                events.push((step.clone(), false));
            }
            _ => {}
        }
    }
    Timeline {
        spans,
        events,
        entries: read.entries,
    }
}

impl Timeline {
    fn start(&self, step: &str) -> &str {
        &self.spans[step].0
    }

    fn end(&self, step: &str) -> &str {
        self.spans[step]
            .1
            .as_deref()
            .unwrap_or_else(|| panic!("`{step}` never ended"))
    }

    /// The pids the journal recorded for `step`'s processes.
    fn pids(&self, step: &str) -> Vec<u32> {
        self.entries
            .iter()
            .filter_map(|e| match &e.record {
                Record::ProcessStarted { step: s, pid, .. } if s == step => Some(*pid),
                _ => None,
            })
            .collect()
    }
}

fn statuses(report: &serde_json::Value) -> BTreeMap<String, String> {
    report["steps"]
        .as_array()
        .expect("the report lists the steps")
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap_or("").to_string(),
                s["status"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// No process with this pid (the runner is gone, so nothing is left as a
/// zombie of it either).
fn gone(pid: u32) -> bool {
    let pid = Pid::from_raw(i32::try_from(pid).expect("a pid"));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let alive = kill(pid, None).is_ok() && crate::support::process_running(pid.as_raw() as u32);
        if !alive {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn four_independent_steps_overlap() {
    let db = setup("jobs_overlap");
    let folder = PlanFolder::new(FOUR_SLEEPERS);
    let state = support::state_dir();
    let applied = apply(
        &db,
        &folder,
        state.path(),
        &["--assume-release", "1.0", "--jobs", "4"],
    );
    applied.assert_code(0);
    assert_eq!(applied.outcome(), "succeeded");
    let t = timeline(applied.run_folder.as_ref().expect("a run folder"));
    let sleepers = ["a", "b", "c", "d"];
    // Every sleeper started before any of them ended: all four ran at
    // once at some moment.
    let last_start = sleepers.iter().map(|s| t.start(s)).max().unwrap();
    let first_end = sleepers.iter().map(|s| t.end(s)).min().unwrap();
    assert!(
        last_start < first_end,
        "the steps did not overlap: last start {last_start}, first end {first_end}\n{}",
        applied.output()
    );
    // The report still lists the steps in the plan's order, all succeeded.
    let names: Vec<&str> = applied.report()["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["before", "a", "b", "c", "d"]);
    assert!(
        statuses(applied.report())
            .values()
            .all(|s| s == "succeeded")
    );
    // Each start and end line names its step, so interleaved lines read.
    for s in sleepers {
        assert!(applied.stderr.contains(&format!("▶ script {s}\n")));
        assert!(applied.stderr.contains(&format!("✓ script {s} (")));
    }
    let sum: f64 = applied.report()["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == "script")
        .map(|s| s["seconds"].as_f64().unwrap())
        .sum();
    eprintln!(
        "--jobs 4: four 1 s steps took {sum:.2} s in all, the whole apply {:.2} s",
        applied.elapsed.as_secs_f64()
    );
}

#[test]
fn one_job_runs_one_step_at_a_time_in_order() {
    let db = setup("jobs_one");
    let folder = PlanFolder::new(&FOUR_SLEEPERS.replace("sleep 1", "sleep 0.2"));
    let state = support::state_dir();
    let applied = apply(&db, &folder, state.path(), &["--assume-release", "1.0"]);
    applied.assert_code(0);
    let t = timeline(applied.run_folder.as_ref().unwrap());
    let expected: Vec<(String, bool)> = ["before", "a", "b", "c", "d"]
        .iter()
        .flat_map(|s| [(s.to_string(), true), (s.to_string(), false)])
        .collect();
    assert_eq!(t.events, expected, "one step at a time, in the order");
    // The progress lines too: each step's start right after the previous
    // step's end.
    let lines: Vec<&str> = applied
        .stderr
        .lines()
        .filter_map(|l| l.split_once("] ").map(|(_, rest)| rest))
        .filter(|l| l.starts_with('▶') || l.starts_with('✓') || l.starts_with('✗'))
        .collect();
    let shown: Vec<String> = lines
        .iter()
        .map(|l| l.split(" (").next().unwrap().to_string())
        .collect();
    assert_eq!(
        shown,
        [
            "▶ backup before",
            "✓ backup before",
            "▶ script a",
            "✓ script a",
            "▶ script b",
            "✓ script b",
            "▶ script c",
            "✓ script c",
            "▶ script d",
            "✓ script d"
        ]
    );
}

#[test]
fn a_failure_ends_the_running_siblings_and_rolls_back() {
    let db = setup("jobs_fail");
    let folder = PlanFolder::new(ONE_FAILS);
    let before = support::fingerprint(&db);
    let state = support::state_dir();
    let applied = apply(
        &db,
        &folder,
        state.path(),
        &["--assume-release", "1.0", "--jobs", "4", "--grace", "2s"],
    );
    applied.assert_code(1);
    assert_eq!(applied.outcome(), "rolled_back", "{}", applied.output());
    assert!(
        applied.elapsed < Duration::from_secs(120),
        "the siblings were waited for:\n{}",
        applied.output()
    );
    let statuses = statuses(applied.report());
    assert_eq!(statuses["broken"], "failed");
    for sibling in ["long_a", "long_b", "long_sql"] {
        assert_eq!(
            statuses[sibling],
            "interrupted",
            "{sibling}\n{}",
            applied.output()
        );
    }
    let steps = applied.report()["steps"].as_array().unwrap();
    let long_b = steps.iter().find(|s| s["name"] == "long_b").unwrap();
    assert!(
        long_b["error"]
            .as_str()
            .unwrap()
            .contains("step `broken` failed"),
        "{long_b}"
    );
    // The human summary names the step that failed, not a sibling.
    assert!(
        applied
            .stderr
            .contains("step `broken` failed: exited with code 3"),
        "{}",
        applied.output()
    );
    let t = timeline(applied.run_folder.as_ref().unwrap());
    // They ran at once: all four started before the failure ended.
    for s in ["long_a", "long_b", "long_sql"] {
        assert!(
            t.start(s) < t.end("broken"),
            "{s} started after the failure"
        );
        assert!(t.end(s) >= t.end("broken"));
    }
    // Their processes are gone: the leaders the journal recorded, and a
    // child that one of them started in its group.
    for s in ["long_a", "long_b", "broken"] {
        let pids = t.pids(s);
        assert_eq!(pids.len(), 1, "{s}: {pids:?}");
        assert!(gone(pids[0]), "{s}'s process {} is still running", pids[0]);
    }
    let child: u32 = std::fs::read_to_string(folder.path().join("long_a.child"))
        .expect("long_a wrote its child's pid")
        .trim()
        .parse()
        .unwrap();
    assert!(gone(child), "long_a's child {child} is still running");
    // The statement was cancelled on the server, not left running.
    let mut client = db.cluster.connect("postgres").unwrap();
    let sleeping: i64 = client
        .query_one(
            "select count(*) from pg_stat_activity where query like '%pg_sleep(300)%' and pid <> pg_backend_pid()",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(sleeping, 0);
    // The rollback ran as for any failure.
    assert_eq!(support::fingerprint(&db), before);
    assert!(folder.path().join("on_failure_ran").exists());
}

#[test]
fn a_backup_never_overlaps_another_step() {
    // `early` and `other` are roots like the backup; `snap` comes between
    // them in file order, so with four slots it is the earliest ready step
    // while `early` runs: it must wait for it, and `other` must wait for
    // the backup.
    let plan = r#"plan "backup alone" {
  from = "1.0"
  to   = "2.0"
}

check early {
  run = "sleep 0.5"
}

backup snap {
  method = "snapshot"
}

check other {
  run = "sleep 0.5"
}

script after_a {
  after = snap
  run   = "sleep 0.5"
}

script after_b {
  after = snap
  run   = "sleep 0.5"
}
"#;
    let db = setup("jobs_backup");
    let folder = PlanFolder::new(plan);
    let state = support::state_dir();
    let applied = apply(
        &db,
        &folder,
        state.path(),
        &["--assume-release", "1.0", "--jobs", "4"],
    );
    applied.assert_code(0);
    let t = timeline(applied.run_folder.as_ref().unwrap());
    // Replaying the journal: nothing else open when the backup starts,
    // nothing starting until it ends.
    let mut open: Vec<String> = Vec::new();
    let mut in_backup = false;
    for (step, started) in &t.events {
        if *started {
            assert!(
                !in_backup,
                "`{step}` started during the backup: {:?}",
                t.events
            );
            if step == "snap" {
                assert!(open.is_empty(), "the backup started beside {open:?}");
                in_backup = true;
            }
            open.push(step.clone());
        } else {
            open.retain(|s| s != step);
            if step == "snap" {
                in_backup = false;
            }
        }
    }
    // And the others did overlap each other: the scheduler ran them at once.
    assert!(t.start("after_b") < t.end("after_a"));
    assert!(t.start("other") < t.end("after_a"));
}

#[test]
fn sigint_ends_every_running_step() {
    let db = setup("jobs_sigint");
    let folder = PlanFolder::new(&FOUR_SLEEPERS.replace("sleep 1", "sleep 300"));
    let before = support::fingerprint(&db);
    let state = support::state_dir();
    let mut runner = apply_command(
        &db,
        &folder.plan(),
        state.path(),
        &["--assume-release", "1.0", "--jobs", "4", "--grace", "2s"],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let folder_of_run = four_started(&mut runner, state.path());
    kill(Pid::from_raw(runner.id() as i32), Signal::SIGINT).unwrap();
    let status = runner.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let t = timeline(&folder_of_run);
    for s in ["a", "b", "c", "d"] {
        let pids = t.pids(s);
        assert!(gone(pids[0]), "{s}'s process is still running");
        t.end(s);
    }
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(folder_of_run.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["outcome"], "rolled_back");
    // A signal ended them all: each failed as a lone step would.
    let statuses = statuses(&report);
    for s in ["a", "b", "c", "d"] {
        assert_eq!(statuses[s], "failed");
    }
    assert_eq!(support::fingerprint(&db), before);
}

#[test]
fn dry_run_shows_the_batches() {
    let db = setup("jobs_dry");
    let folder = PlanFolder::new(FOUR_SLEEPERS);
    let state = support::state_dir();
    let applied = apply(
        &db,
        &folder,
        state.path(),
        &["--assume-release", "1.0", "--jobs", "3", "--dry-run"],
    );
    applied.assert_code(0);
    let out = &applied.stdout;
    let at = |needle: &str| {
        out.find(needle)
            .unwrap_or_else(|| panic!("no `{needle}` in:\n{out}"))
    };
    assert!(out.contains("up to 3 at once"));
    assert!(at("batch 1 (a backup runs alone):") < at("1. backup before"));
    assert!(at("batch 2:") < at("2. script a"));
    assert!(at("4. script c") < at("batch 3:"));
    assert!(at("batch 3:") < at("5. script d"));
    // Without --jobs, the plain list as before.
    let plain = apply(
        &db,
        &folder,
        state.path(),
        &["--assume-release", "1.0", "--dry-run"],
    );
    assert!(plain.stdout.contains("steps, in order:\n"));
    assert!(!plain.stdout.contains("batch"));
}

#[test]
fn jobs_must_be_between_1_and_64() {
    let db = database("jobs_bounds");
    let folder = PlanFolder::new(FOUR_SLEEPERS);
    let state = support::state_dir();
    for (n, says) in [
        ("0", "--jobs 1 (the default)"),
        ("65", "at most 64"),
        ("many", "not a number"),
    ] {
        let applied = apply(&db, &folder, state.path(), &["--jobs", n]);
        applied.assert_code(2);
        assert!(applied.stderr.contains(says), "{n}: {}", applied.stderr);
        assert!(applied.run_folder.is_none());
    }
}

#[test]
fn recover_ends_every_group_a_dead_run_with_jobs_left() {
    let db = setup("jobs_kill9");
    let folder = PlanFolder::new(&FOUR_SLEEPERS.replace("sleep 1", "sleep 300"));
    let before = support::fingerprint(&db);
    let state = support::state_dir();
    let mut runner = apply_command(
        &db,
        &folder.plan(),
        state.path(),
        &["--assume-release", "1.0", "--jobs", "4"],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let run_folder = four_started(&mut runner, state.path());
    runner.kill().unwrap();
    runner.wait().unwrap();
    let t = timeline(&run_folder);
    let pids: Vec<u32> = ["a", "b", "c", "d"]
        .iter()
        .flat_map(|s| t.pids(s))
        .collect();
    assert_eq!(pids.len(), 4);
    // The runner's death left its four steps running.
    assert!(pids.iter().all(|&p| crate::support::process_running(p)));
    let recovered = crate::support::plan_command(db.cluster)
        .args([
            "recover",
            "--database",
            &db.name,
            "--grace",
            "2s",
            "--state-dir",
        ])
        .arg(state.path())
        .output()
        .unwrap();
    assert_eq!(
        recovered.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&recovered.stderr)
    );
    for pid in pids {
        assert!(gone(pid), "process {pid} of the dead run is still running");
    }
    assert_eq!(support::fingerprint(&db), before);
}

/// Waits for the run's journal to record four step processes; returns the
/// run's folder.
fn four_started(runner: &mut std::process::Child, state: &Path) -> std::path::PathBuf {
    crate::support::wait_for(runner, "the four steps started", || {
        support::run_folders(state).into_iter().next().filter(|f| {
            journal::read(f).is_ok_and(|r| {
                r.entries
                    .iter()
                    .filter(|e| matches!(e.record, Record::ProcessStarted { .. }))
                    .count()
                    == 4
            })
        })
    })
}
