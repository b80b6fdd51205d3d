//! `plan apply --resume` against the shared cluster, with real processes:
//! after a `--no-rollback` failure and after kill -9 of the runner, the
//! steps that ended are not run again (each step leaves a mark per run, in
//! a file or a table), the run completes under its own id, and report and
//! history say it was resumed; a run that was rolled back, or a changed
//! plan, is refused; a failure after the resume rolls back to the backup
//! taken before the first step.

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use plan_runner::db::fingerprint::{self, Fingerprint};
use plan_runner::exec::journal::{self, Record};
use tempfile::TempDir;

use crate::support::{self, TestDatabase, process_running};

/// A backup, a data change that counts its runs in a table, a step that
/// fails (or sleeps) until the file `go` exists, and a last step. The
/// script steps append their name to `runs.log` each time they run.
fn plan(third: &str) -> String {
    format!(
        r#"plan "resume test" {{
  from = "1.0"
  to   = "2.0"
}}

backup before {{
  method = "snapshot"
  keep   = false
}}

sql change {{
  after = before
  sql   = "create table if not exists ran (step text); insert into ran values ('change'); update t set v = 'changed'"
}}

script third {{
  after   = change
  shell   = "echo third >> runs.log; {third}"
  timeout = "10m"
}}

script last {{
  after = third
  shell = "echo last >> runs.log"
}}

on_failure {{
  script mark {{
    run = "touch on_failure_ran"
  }}
}}
"#
    )
}

/// Fails until `go` exists.
const FAILS: &str = "test -f go";
/// Sleeps until killed, unless `go` exists.
const SLEEPS: &str = "test -f go || sleep 300";

struct Setup {
    db: TestDatabase,
    dir: TempDir,
    state: TempDir,
}

impl Setup {
    fn new(label: &str, third: &str) -> Setup {
        let db = support::database(label);
        db.connect()
            .batch_execute(
                "create table t (id int primary key, v text);
                 insert into t select g, 'row ' || g from generate_series(1, 100) g;",
            )
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("test.plan"), plan(third)).unwrap();
        Setup {
            db,
            dir,
            state: tempfile::tempdir().unwrap(),
        }
    }

    fn plan_path(&self) -> PathBuf {
        self.dir.path().join("test.plan")
    }

    fn command(&self, extra: &[&str]) -> Command {
        self.command_in(self.state.path(), extra)
    }

    /// A command with its own state folder (another user's, say).
    fn command_in(&self, state: &std::path::Path, extra: &[&str]) -> Command {
        let mut cmd = support::plan_command(self.db.cluster);
        cmd.arg("apply")
            .arg(self.plan_path())
            .args(["--assume-release", "1.0", "--grace", "2s"])
            .args(["--database", &self.db.name, "--state-dir"])
            .arg(state)
            .args(extra);
        cmd
    }

    fn apply(&self, extra: &[&str]) -> Output {
        self.command(extra).output().unwrap()
    }

    fn recover(&self) -> Output {
        support::plan_command(self.db.cluster)
            .args(["recover", "--database", &self.db.name, "--state-dir"])
            .arg(self.state.path())
            .output()
            .unwrap()
    }

    fn go(&self) {
        fs::write(self.dir.path().join("go"), "").unwrap();
    }

    /// The script steps that ran, in order, one per run.
    fn runs_log(&self) -> Vec<String> {
        fs::read_to_string(self.dir.path().join("runs.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// How many times the sql step `change` ran (it is never rolled back
    /// in these tests until the end).
    fn change_count(&self) -> i64 {
        let mut client = self.db.connect();
        let exists: bool = client
            .query_one("select to_regclass('ran') is not null", &[])
            .unwrap()
            .get(0);
        if !exists {
            return 0;
        }
        client
            .query_one("select count(*) from ran", &[])
            .unwrap()
            .get(0)
    }

    fn fingerprint(&self) -> Fingerprint {
        let mut maintenance = self.db.cluster.connect("postgres").unwrap();
        let props = fingerprint::database_props(&mut maintenance, &self.db.name)
            .unwrap()
            .unwrap();
        fingerprint::take(&mut self.db.connect(), props).unwrap().0
    }

    /// The history rows as `run_id outcome resumed`.
    fn history(&self) -> Vec<String> {
        let mut client = self.db.connect();
        plan_runner::db::history::last(&mut client, 100)
            .unwrap()
            .into_iter()
            .map(|e| format!("{} {} {}", e.run_id, e.outcome, e.resumed))
            .collect()
    }

    fn run_folders(&self) -> Vec<PathBuf> {
        fs::read_dir(self.state.path().join("runs"))
            .map(|entries| entries.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    }

    /// The one run folder of a run that got to its steps (a refused
    /// apply has a folder too), and its id.
    fn run(&self) -> (PathBuf, String) {
        let folders: Vec<PathBuf> = self
            .run_folders()
            .into_iter()
            .filter(|folder| {
                journal::read(folder).is_ok_and(|read| {
                    read.entries
                        .iter()
                        .any(|e| matches!(e.record, Record::StepStarted { .. }))
                })
            })
            .collect();
        assert_eq!(folders.len(), 1, "{folders:?}");
        let id = folders[0]
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        (folders[0].clone(), id)
    }

    fn report(&self) -> serde_json::Value {
        let (folder, _) = self.run();
        serde_json::from_str(&fs::read_to_string(folder.join("report.json")).unwrap()).unwrap()
    }

    fn snapshots(&self) -> Vec<String> {
        self.db
            .cluster
            .connect("postgres")
            .unwrap()
            .query(
                "select datname from pg_database where starts_with(datname, $1) order by 1",
                &[&format!("{}_pr", self.db.name)],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    }

    fn on_failure_ran(&self) -> bool {
        self.dir.path().join("on_failure_ran").exists()
    }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn wait_gone(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while process_running(pid) {
        assert!(
            Instant::now() < deadline,
            "the dead run's step {pid} is still running"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn names(value: &serde_json::Value) -> Vec<String> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

/// `--no-rollback` stops at the third step; `--resume` goes on from it.
fn stop_at_the_third_step(setup: &Setup) -> String {
    let stopped = setup.apply(&["--no-rollback"]);
    assert_eq!(stopped.status.code(), Some(1), "{}", stderr(&stopped));
    assert!(
        stderr(&stopped).contains("--resume"),
        "{}",
        stderr(&stopped)
    );
    assert_eq!(setup.runs_log(), ["third"]);
    assert_eq!(setup.change_count(), 1);
    setup.run().1
}

#[test]
fn resume_after_a_no_rollback_failure_runs_only_what_is_left() {
    let setup = Setup::new("resume_stopped", FAILS);
    let run_id = stop_at_the_third_step(&setup);
    let snapshots = setup.snapshots();
    assert_eq!(snapshots.len(), 1, "{snapshots:?}");

    // The refusal of a plain apply names both ways on, --resume included.
    let refused = setup.apply(&[]);
    let text = stderr(&refused);
    assert_eq!(refused.status.code(), Some(4), "{text}");
    assert!(text.contains("plan recover"), "{text}");
    assert!(text.contains("--resume"), "{text}");
    assert!(text.contains("go on from step `third`"), "{text}");

    setup.go();
    let resumed = setup.apply(&["--resume"]);
    let text = stderr(&resumed);
    assert_eq!(resumed.status.code(), Some(0), "{text}");
    assert!(text.contains(&format!("resuming run {run_id}")), "{text}");
    // The backup and the data change did not run again; the third step
    // did, and the last one ran for the first time.
    assert_eq!(setup.runs_log(), ["third", "third", "last"]);
    assert_eq!(setup.change_count(), 1);

    // Same run, same folder, one journal with the resume in it.
    let (folder, id) = setup.run();
    assert_eq!(id, run_id);
    let read = journal::read(&folder).unwrap();
    let resumed_records: Vec<&Vec<String>> = read
        .entries
        .iter()
        .filter_map(|e| match &e.record {
            Record::RunResumed { done, pid, .. } => {
                assert_ne!(*pid, 0);
                Some(done)
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        resumed_records,
        [&vec!["before".to_string(), "change".into()]]
    );
    assert!(folder.join("report-before-resume-1.json").is_file());

    let report = setup.report();
    assert_eq!(report["outcome"], "succeeded");
    assert_eq!(report["run_id"], run_id.as_str());
    assert_eq!(report["resumed"], true);
    assert!(report["resumed_at"].is_string());
    assert_eq!(names(&report["done_before_resume"]), ["before", "change"]);
    let statuses: Vec<(String, String, u64)> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().into(),
                s["status"].as_str().unwrap().into(),
                s["attempts"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            ("before".into(), "succeeded".into(), 0),
            ("change".into(), "succeeded".into(), 0),
            ("third".into(), "succeeded".into(), 1),
            ("last".into(), "succeeded".into(), 1),
        ]
    );
    // The original backup was the run's: dropped after the success.
    assert_eq!(report["backups"][0]["copy"], snapshots[0].as_str());
    assert_eq!(report["backups"][0]["state"], "dropped");
    assert!(setup.snapshots().is_empty(), "{:?}", setup.snapshots());
    assert_eq!(setup.history(), [format!("{run_id} succeeded true")]);
    assert!(text.contains("before the resume"), "{text}");

    // Nothing is unfinished any more.
    let again = setup.apply(&["--resume"]);
    let text = stderr(&again);
    assert_eq!(again.status.code(), Some(4), "{text}");
    assert!(text.contains("nothing to resume"), "{text}");
    assert!(text.contains("succeeded"), "{text}");
}

#[test]
fn resume_after_kill_9_in_the_third_step_ends_its_process_and_completes() {
    let setup = Setup::new("resume_kill9", SLEEPS);
    let mut runner = setup
        .command(&[])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait for the third step's process.
    let sleeper = support::wait_for(&mut runner, "the third step started", || {
        setup.run_folders().first().and_then(|folder| {
            journal::read(folder)
                .ok()?
                .entries
                .iter()
                .find_map(|e| match &e.record {
                    Record::ProcessStarted { step, pid, .. } if step == "third" => Some(*pid),
                    _ => None,
                })
        })
    });
    kill(
        Pid::from_raw(i32::try_from(runner.id()).unwrap()),
        Signal::SIGKILL,
    )
    .unwrap();
    runner.wait().unwrap();
    assert!(process_running(sleeper), "the step outlives its runner");
    let (_, run_id) = setup.run();

    setup.go();
    // From another state folder: the runs table says where the run's is.
    let elsewhere = tempfile::tempdir().unwrap();
    let resumed = setup
        .command_in(elsewhere.path(), &["--resume"])
        .output()
        .unwrap();
    let text = stderr(&resumed);
    assert_eq!(resumed.status.code(), Some(0), "{text}");
    assert!(text.contains("ended process group"), "{text}");
    assert!(
        !elsewhere.path().join("runs").exists(),
        "the resumed run kept its own folder"
    );
    wait_gone(sleeper);
    // The third step had started and never ended: it ran again.
    assert_eq!(setup.runs_log(), ["third", "third", "last"]);
    assert_eq!(setup.change_count(), 1);
    let report = setup.report();
    assert_eq!(report["run_id"], run_id.as_str());
    assert_eq!(report["resumed"], true);
    assert_eq!(names(&report["done_before_resume"]), ["before", "change"]);
    assert_eq!(setup.history(), [format!("{run_id} succeeded true")]);
    assert!(
        setup.snapshots().is_empty(),
        "{:?}\n{text}",
        setup.snapshots()
    );
}

#[test]
fn resume_is_refused_for_a_rolled_back_or_recovered_run_and_when_nothing_ran() {
    let setup = Setup::new("resume_refused", FAILS);
    let nothing = setup.apply(&["--resume"]);
    let text = stderr(&nothing);
    assert_eq!(nothing.status.code(), Some(4), "{text}");
    assert!(text.contains("nothing to resume"), "{text}");
    assert!(
        setup.run_folders().is_empty(),
        "a refused --resume writes nothing"
    );

    let failed = setup.apply(&[]);
    assert_eq!(failed.status.code(), Some(1), "{}", stderr(&failed));
    assert!(setup.on_failure_ran());
    let refused = setup.apply(&["--resume"]);
    let text = stderr(&refused);
    assert_eq!(refused.status.code(), Some(4), "{text}");
    assert!(
        text.contains("cannot be resumed: its earlier steps' work was undone by the rollback; start again without --resume"),
        "{text}"
    );
    assert_eq!(setup.runs_log(), ["third"], "nothing ran again");

    // A run that `plan recover` restored is no different.
    let other = Setup::new("resume_recovered", FAILS);
    stop_at_the_third_step(&other);
    let recovered = other.recover();
    assert_eq!(recovered.status.code(), Some(0), "{}", stderr(&recovered));
    let refused = other.apply(&["--resume"]);
    let text = stderr(&refused);
    assert_eq!(refused.status.code(), Some(4), "{text}");
    assert!(text.contains("undone by the rollback"), "{text}");
    assert_eq!(other.change_count(), 0);
}

#[test]
fn resume_is_refused_when_the_plan_changed() {
    let setup = Setup::new("resume_changed", FAILS);
    let run_id = stop_at_the_third_step(&setup);
    let original = fs::read_to_string(setup.plan_path()).unwrap();
    fs::write(setup.plan_path(), format!("# one more comment\n{original}")).unwrap();
    setup.go();
    let refused = setup.apply(&["--resume"]);
    let text = stderr(&refused);
    assert_eq!(refused.status.code(), Some(4), "{text}");
    assert!(text.contains("changed since run"), "{text}");
    assert!(text.contains(&run_id), "{text}");
    assert_eq!(setup.runs_log(), ["third"], "nothing ran");
    // Refused, the run is still there to resume with the plan as it was.
    fs::write(setup.plan_path(), original).unwrap();
    let resumed = setup.apply(&["--resume"]);
    assert_eq!(resumed.status.code(), Some(0), "{}", stderr(&resumed));
    assert_eq!(setup.runs_log(), ["third", "third", "last"]);
}

#[test]
fn a_failure_after_resume_rolls_back_to_the_backup_taken_before_the_first_step() {
    let setup = Setup::new("resume_rollback", FAILS);
    let before = setup.fingerprint();
    let run_id = stop_at_the_third_step(&setup);
    let snapshot = setup.snapshots();
    // Without `go`, the third step fails again.
    let resumed = setup.apply(&["--resume"]);
    let text = stderr(&resumed);
    assert_eq!(resumed.status.code(), Some(1), "{text}");
    assert!(text.contains("rolled back"), "{text}");
    assert_eq!(setup.runs_log(), ["third", "third"]);
    assert_eq!(
        fingerprint::differences(&before, &setup.fingerprint()),
        Vec::<String>::new()
    );
    assert_eq!(setup.change_count(), 0, "the change was undone");
    assert!(setup.on_failure_ran());
    let report = setup.report();
    assert_eq!(report["outcome"], "rolled_back");
    assert_eq!(report["resumed"], true);
    assert_eq!(report["rollback"]["proved"], true);
    assert_eq!(names(&report["rollback"]["restored"]).len(), 1);
    assert_eq!(report["backups"][0]["copy"], snapshot[0].as_str());
    assert_eq!(report["backups"][0]["state"], "restored");
    assert_eq!(setup.history(), [format!("{run_id} rolled_back true")]);
    // And now it is a rolled-back run: not resumable.
    let refused = setup.apply(&["--resume"]);
    assert_eq!(refused.status.code(), Some(4), "{}", stderr(&refused));
}

/// Fails, or sleeps once `sleep` exists, or succeeds once `go` exists.
const FAILS_THEN_SLEEPS: &str = "test -f go && exit 0; test -f sleep && sleep 300; exit 1";

#[test]
fn a_resumed_run_can_be_stopped_resumed_again_killed_and_recovered_to_the_first_backup() {
    let setup = Setup::new("resume_again", FAILS_THEN_SLEEPS);
    let before = setup.fingerprint();
    let run_id = stop_at_the_third_step(&setup);
    // Resumed with --no-rollback, it stops again at the same step.
    let again = setup.apply(&["--resume", "--no-rollback"]);
    assert_eq!(again.status.code(), Some(1), "{}", stderr(&again));
    assert_eq!(setup.runs_log(), ["third", "third"]);
    let refused = setup.apply(&[]);
    let text = stderr(&refused);
    assert_eq!(refused.status.code(), Some(4), "{text}");
    assert!(text.contains("go on from step `third`"), "{text}");

    // Resumed again, it is killed in the middle of the third step.
    fs::write(setup.dir.path().join("sleep"), "").unwrap();
    let mut runner = setup
        .command(&["--resume"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (folder, _) = setup.run();
    let sleeper = support::wait_for(&mut runner, "the third step sleeping", || {
        let read = journal::read(&folder).unwrap();
        let resumes = read
            .entries
            .iter()
            .filter(|e| matches!(e.record, Record::RunResumed { .. }))
            .count();
        let third = read.entries.iter().rev().find_map(|e| match &e.record {
            Record::ProcessStarted { step, pid, .. } if step == "third" => Some(*pid),
            _ => None,
        });
        third.filter(|&pid| resumes == 2 && process_running(pid))
    });
    kill(
        Pid::from_raw(i32::try_from(runner.id()).unwrap()),
        Signal::SIGKILL,
    )
    .unwrap();
    runner.wait().unwrap();
    assert!(folder.join("report-before-resume-2.json").is_file());
    let refused = setup.apply(&[]);
    let text = stderr(&refused);
    assert_eq!(refused.status.code(), Some(4), "{text}");
    assert!(text.contains("its runner died"), "{text}");
    assert!(text.contains("running script step `third`"), "{text}");
    assert!(
        !text.contains("failed: exited"),
        "the old failure is behind: {text}"
    );

    // recover takes it over like any dead run, back to the first backup.
    let recovered = setup.recover();
    let text = stderr(&recovered);
    assert_eq!(recovered.status.code(), Some(0), "{text}");
    assert!(text.contains("ended process group"), "{text}");
    wait_gone(sleeper);
    assert_eq!(
        fingerprint::differences(&before, &setup.fingerprint()),
        Vec::<String>::new()
    );
    assert_eq!(setup.change_count(), 0);
    assert!(setup.on_failure_ran());
    assert_eq!(setup.history(), [format!("{run_id} recovered true")]);
}

#[test]
fn resume_is_refused_when_the_journal_cannot_be_found() {
    let setup = Setup::new("resume_nojournal", FAILS);
    let run_id = stop_at_the_third_step(&setup);
    let (folder, _) = setup.run();
    let moved = setup.state.path().join("moved");
    fs::rename(&folder, &moved).unwrap();
    setup.go();
    let refused = setup.apply(&["--resume"]);
    let text = stderr(&refused);
    assert_eq!(refused.status.code(), Some(4), "{text}");
    assert!(
        text.contains(&format!("run {run_id} of")) && text.contains("journal cannot be read"),
        "{text}"
    );
    assert!(text.contains("--state-dir"), "{text}");
    assert_eq!(setup.runs_log(), ["third"], "nothing ran");
    // Where the user says it is, it is found.
    let other = tempfile::tempdir().unwrap();
    fs::create_dir_all(other.path().join("runs")).unwrap();
    fs::rename(&moved, other.path().join("runs").join(&run_id)).unwrap();
    let resumed = setup
        .command_in(other.path(), &["--resume"])
        .output()
        .unwrap();
    assert_eq!(resumed.status.code(), Some(0), "{}", stderr(&resumed));
    assert_eq!(setup.runs_log(), ["third", "third", "last"]);
    // The runs table now says where the run folder is.
    let folder: Option<String> = setup
        .db
        .cluster
        .connect("postgres")
        .unwrap()
        .query_one(
            "select run_folder from plan_runner.runs where run_id = $1",
            &[&run_id],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        folder.map(PathBuf::from),
        Some(other.path().join("runs").join(&run_id))
    );
}
