//! The runner's own death and interruption, with real processes and real
//! signals against the shared cluster: kill -9 mid-step then `plan
//! recover`, SIGINT and SIGTERM mid-step, a torn journal, `--dry-run` and
//! `--no-rollback`.

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use plan_runner::db::fingerprint::{self, Fingerprint};
use plan_runner::exec::journal::{self, Record};
use tempfile::TempDir;

use crate::support::{self, TestDatabase, process_running};

/// A backup, a change, then a step that sleeps: the place to kill the
/// runner. `on_failure` leaves a mark in the plan's folder.
const SLEEPING_PLAN: &str = r#"plan "crash test" {
  from = "1.0"
  to   = "2.0"
}

backup before {
  method = "snapshot"
}

sql change {
  after = before
  sql   = "create table changed (x int); insert into changed values (1); update t set v = 'changed'"
}

script slow {
  after   = change
  run     = "sleep 300"
  timeout = "10m"
}

on_failure {
  script mark {
    run = "touch on_failure_ran"
  }
}
"#;

/// The same, with a step that fails instead of sleeping.
const FAILING_PLAN: &str = r#"plan "failing" {
  from = "1.0"
  to   = "2.0"
}

backup before {
  method = "snapshot"
}

sql change {
  after = before
  sql   = "create table changed (x int); update t set v = 'changed'"
}

script broken {
  after   = change
  run     = "false"
  timeout = "1m"
}

on_failure {
  script mark {
    run = "touch on_failure_ran"
  }
}
"#;

pub struct Setup {
    pub db: TestDatabase,
    pub plan_dir: TempDir,
    pub state: TempDir,
}

impl Setup {
    pub fn new(label: &str, plan: &str) -> Setup {
        let db = support::database(label);
        db.connect()
            .batch_execute(
                "create table t (id int primary key, v text);
                 insert into t select g, 'row ' || g from generate_series(1, 100) g;",
            )
            .unwrap();
        let plan_dir = tempfile::tempdir().unwrap();
        fs::write(plan_dir.path().join("test.plan"), plan).unwrap();
        Setup {
            db,
            plan_dir,
            state: tempfile::tempdir().unwrap(),
        }
    }

    pub fn plan(&self) -> PathBuf {
        self.plan_dir.path().join("test.plan")
    }

    pub fn command(&self, args: &[&str]) -> Command {
        self.command_in(self.state.path(), args)
    }

    /// A command with its own state folder (another user's, say).
    pub fn command_in(&self, state: &std::path::Path, args: &[&str]) -> Command {
        let mut cmd = support::plan_command(self.db.cluster);
        cmd.args(args)
            .args(["--database", &self.db.name, "--state-dir"])
            .arg(state);
        cmd
    }

    pub fn apply_args<'a>(&'a self, plan: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec!["apply", plan, "--assume-release", "1.0", "--grace", "2s"];
        args.extend_from_slice(extra);
        args
    }

    pub fn apply(&self, extra: &[&str]) -> Output {
        let plan = self.plan();
        let plan = plan.to_str().unwrap();
        self.command(&self.apply_args(plan, extra))
            .output()
            .unwrap()
    }

    /// Starts `plan apply` in the background.
    pub fn spawn_apply(&self) -> Child {
        let plan = self.plan();
        let plan = plan.to_str().unwrap();
        self.command(&self.apply_args(plan, &[]))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    pub fn recover(&self) -> Output {
        self.command(&["recover"]).output().unwrap()
    }

    pub fn fingerprint(&self) -> Fingerprint {
        let mut maintenance = self.db.cluster.connect("postgres").unwrap();
        let props = fingerprint::database_props(&mut maintenance, &self.db.name)
            .unwrap()
            .unwrap();
        fingerprint::take(&mut self.db.connect(), props).unwrap().0
    }

    pub fn history(&self) -> Vec<String> {
        let mut client = self.db.connect();
        plan_runner::db::history::last(&mut client, 100)
            .unwrap()
            .into_iter()
            .map(|e| format!("{} {}", e.run_id, e.outcome))
            .collect()
    }

    pub fn has_table(&self, name: &str) -> bool {
        self.db
            .connect()
            .query_one("select to_regclass($1) is not null", &[&name])
            .unwrap()
            .get(0)
    }

    pub fn on_failure_ran(&self) -> bool {
        self.plan_dir.path().join("on_failure_ran").exists()
    }

    /// The one run folder under the state folder.
    pub fn run_folder(&self) -> Option<PathBuf> {
        fs::read_dir(self.state.path().join("runs"))
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| p.join(journal::FILE_NAME).is_file())
    }

    /// Waits for the journal to record the `slow` step's process; returns
    /// its pid.
    pub fn wait_for_slow_step(&self, runner: &mut Child) -> u32 {
        support::wait_for(runner, "the slow step started", || {
            let read = journal::read(&self.run_folder()?).unwrap();
            read.entries.iter().find_map(|entry| match &entry.record {
                Record::ProcessStarted { step, pid, .. } if step == "slow" => Some(*pid),
                _ => None,
            })
        })
    }
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn wait_gone(pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while process_running(pid) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

pub fn signal(child: &Child, signal: Signal) {
    kill(Pid::from_raw(i32::try_from(child.id()).unwrap()), signal).unwrap();
}

/// kill -9 mid-step, then everything an operator would do next.
#[test]
fn kill_9_mid_step_then_recover_restores_and_a_second_recover_has_nothing_to_do() {
    let setup = Setup::new("kill9", SLEEPING_PLAN);
    let before = setup.fingerprint();
    let mut runner = setup.spawn_apply();
    let sleeper = setup.wait_for_slow_step(&mut runner);
    signal(&runner, Signal::SIGKILL);
    runner.wait().unwrap();
    // The step is in its own process group: the runner's death leaves it.
    assert!(
        process_running(sleeper),
        "the sleeping step was left running"
    );
    assert!(setup.has_table("changed"));
    let run_id = setup
        .run_folder()
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();

    let refused = setup.apply(&[]);
    let text = stderr(&refused);
    assert_eq!(refused.status.code(), Some(4), "{text}");
    assert!(text.contains("unfinished run"), "{text}");
    assert!(text.contains(&run_id), "{text}");
    assert!(text.contains("`slow`"), "names the running step: {text}");
    assert!(text.contains("snapshot"), "names the backup: {text}");
    assert!(text.contains("plan recover"), "{text}");
    assert!(
        setup.has_table("changed"),
        "a refused apply changes nothing"
    );
    // Another state folder (another user, another checkout) sees it too:
    // the runs table is on the server.
    let elsewhere = tempfile::tempdir().unwrap();
    let plan = setup.plan();
    let refused = setup
        .command_in(
            elsewhere.path(),
            &setup.apply_args(plan.to_str().unwrap(), &[]),
        )
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(4), "{}", stderr(&refused));
    assert!(stderr(&refused).contains(&run_id));

    let recovered = setup.recover();
    let text = stderr(&recovered);
    assert_eq!(recovered.status.code(), Some(0), "{text}");
    assert!(text.contains("recovered"), "{text}");
    assert!(text.contains("ended process group"), "{text}");
    assert!(wait_gone(sleeper), "the dead run's step is still running");
    let after = setup.fingerprint();
    assert_eq!(
        fingerprint::differences(&before, &after),
        Vec::<String>::new()
    );
    assert!(!setup.has_table("changed"));
    assert!(setup.on_failure_ran());
    assert!(
        setup.history().contains(&format!("{run_id} recovered")),
        "{:?}",
        setup.history()
    );

    let again = setup.recover();
    let text = stderr(&again);
    assert_eq!(again.status.code(), Some(0), "{text}");
    assert!(text.contains("nothing to recover"), "{text}");
    assert_eq!(
        fingerprint::differences(&before, &setup.fingerprint()),
        Vec::<String>::new()
    );
    // And the target is free again.
    let dry = setup.apply(&["--dry-run"]);
    assert_eq!(dry.status.code(), Some(0), "{}", stdout(&dry));
}

#[test]
fn recover_tolerates_a_torn_last_journal_record() {
    let setup = Setup::new("torn", SLEEPING_PLAN);
    let before = setup.fingerprint();
    let mut runner = setup.spawn_apply();
    let sleeper = setup.wait_for_slow_step(&mut runner);
    signal(&runner, Signal::SIGKILL);
    runner.wait().unwrap();
    // A power loss in the middle of writing the next record.
    let path = setup.run_folder().unwrap().join(journal::FILE_NAME);
    let mut bytes = fs::read(&path).unwrap();
    bytes.extend_from_slice(b"0123456789abcdef {\"at\":\"2024-05-01T12:0");
    fs::write(&path, &bytes).unwrap();

    let recovered = setup.recover();
    let text = stderr(&recovered);
    assert_eq!(recovered.status.code(), Some(0), "{text}");
    assert!(text.contains("cut short"), "{text}");
    assert!(wait_gone(sleeper));
    assert_eq!(
        fingerprint::differences(&before, &setup.fingerprint()),
        Vec::<String>::new()
    );
    // The journal reads cleanly afterwards: the torn record was cut off.
    let read = journal::read(&setup.run_folder().unwrap()).unwrap();
    assert!(!read.torn_tail && read.damaged.is_empty());
    assert!(matches!(
        read.entries.last().map(|e| &e.record),
        Some(Record::RunEnded { outcome, .. }) if outcome == "recovered"
    ));
}

#[test]
fn recover_that_cannot_prove_the_restore_exits_3_and_says_so() {
    let setup = Setup::new("unprovable", SLEEPING_PLAN);
    let mut runner = setup.spawn_apply();
    setup.wait_for_slow_step(&mut runner);
    signal(&runner, Signal::SIGKILL);
    runner.wait().unwrap();
    // Someone dropped the backup by hand: nothing can be restored.
    let read = journal::read(&setup.run_folder().unwrap()).unwrap();
    let copy = read
        .entries
        .iter()
        .find_map(|e| match &e.record {
            Record::BackupTaken { taken } => Some(taken.copy.clone()),
            _ => None,
        })
        .unwrap();
    setup
        .db
        .cluster
        .connect("postgres")
        .unwrap()
        .batch_execute(&format!("drop database \"{copy}\""))
        .unwrap();

    let output = setup.recover();
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(3), "{text}");
    assert!(text.contains("COULD NOT BE PROVED"), "{text}");
    assert!(text.contains("no longer exists"), "{text}");
    assert!(text.contains("on_failure was NOT run"), "{text}");
    assert!(!setup.on_failure_ran());
    assert!(setup.has_table("changed"), "nothing was touched");
}

fn interrupted_mid_step_rolls_back(label: &str, sig: Signal) {
    let setup = Setup::new(label, SLEEPING_PLAN);
    let before = setup.fingerprint();
    let mut runner = setup.spawn_apply();
    let sleeper = setup.wait_for_slow_step(&mut runner);
    signal(&runner, sig);
    let output = runner.wait_with_output().unwrap();
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(130), "{text}");
    assert!(text.contains(sig.as_str()), "{text}");
    assert!(text.contains("rolled back"), "{text}");
    assert!(wait_gone(sleeper), "the step's process group was not ended");
    assert_eq!(
        fingerprint::differences(&before, &setup.fingerprint()),
        Vec::<String>::new()
    );
    assert!(setup.on_failure_ran());
    // The run is closed: nothing to recover, and the next apply may start.
    let nothing = setup.recover();
    assert!(stderr(&nothing).contains("nothing to recover"));
    let read = journal::read(&setup.run_folder().unwrap()).unwrap();
    let events: Vec<&Record> = read.entries.iter().map(|e| &e.record).collect();
    assert!(
        events
            .iter()
            .any(|r| matches!(r, Record::RollbackEnded { proved: true, .. }))
    );
    assert!(matches!(
        events.last(),
        Some(Record::RunEnded { exit_code: 130, .. })
    ));
}

#[test]
fn sigint_mid_step_rolls_back_and_exits_130() {
    interrupted_mid_step_rolls_back("sigint", Signal::SIGINT);
}

#[test]
fn sigterm_mid_step_rolls_back_and_exits_130() {
    interrupted_mid_step_rolls_back("sigterm", Signal::SIGTERM);
}

#[test]
fn sigterm_cancels_a_running_sql_step() {
    let plan = SLEEPING_PLAN.replace(
        "script slow {\n  after   = change\n  run     = \"sleep 300\"",
        "sql slow {\n  after   = change\n  sql     = \"select pg_sleep(300)\"",
    );
    assert!(plan.contains("pg_sleep"));
    let setup = Setup::new("sigterm_sql", &plan);
    let before = setup.fingerprint();
    let mut runner = setup.spawn_apply();
    let deadline = Instant::now() + Duration::from_secs(60);
    // Wait until the statement runs on the server.
    loop {
        let running: i64 = setup
            .db
            .cluster
            .connect("postgres")
            .unwrap()
            .query_one(
                "select count(*) from pg_stat_activity where datname = $1 and query like '%pg_sleep(300)%' and state = 'active'",
                &[&setup.db.name],
            )
            .unwrap()
            .get(0);
        if running > 0 {
            break;
        }
        assert!(
            runner.try_wait().unwrap().is_none(),
            "the runner ended early"
        );
        assert!(Instant::now() < deadline, "the sql step never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let sent = Instant::now();
    signal(&runner, Signal::SIGTERM);
    let output = runner.wait_with_output().unwrap();
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(130), "{text}");
    assert!(
        sent.elapsed() < Duration::from_secs(60),
        "the statement was not cancelled"
    );
    assert_eq!(
        fingerprint::differences(&before, &setup.fingerprint()),
        Vec::<String>::new()
    );
    assert!(setup.on_failure_ran());
}

#[test]
fn a_second_ctrl_c_during_on_failure_ends_it_and_keeps_the_proved_rollback() {
    // A slow on_failure leaves time for the second signal, which ends it
    // (one that hangs must not hold the lock for ever); the rollback,
    // proved before on_failure starts, stands.
    let plan = SLEEPING_PLAN.replace(
        "run = \"touch on_failure_ran\"",
        "shell = \"sleep 2; touch on_failure_ran\"",
    );
    let setup = Setup::new("second_sigint", &plan);
    let before = setup.fingerprint();
    let mut runner = setup.spawn_apply();
    setup.wait_for_slow_step(&mut runner);
    signal(&runner, Signal::SIGINT);
    // Wait until on_failure has started, then press Ctrl-C again.
    let folder = setup.run_folder().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let read = journal::read(&folder).unwrap();
        if read.entries.iter().any(|e| {
            matches!(
                &e.record,
                Record::StepStarted {
                    on_failure: true,
                    ..
                }
            )
        }) {
            break;
        }
        assert!(Instant::now() < deadline, "on_failure never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(&runner, Signal::SIGINT);
    let output = runner.wait_with_output().unwrap();
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(130), "{text}");
    assert!(
        text.contains("ending the running on_failure step"),
        "{text}"
    );
    assert!(
        text.contains("ON_FAILURE STEP `mark` FAILED"),
        "the ended on_failure step is reported: {text}"
    );
    assert!(!setup.on_failure_ran(), "on_failure was ended: {text}");
    assert_eq!(
        fingerprint::differences(&before, &setup.fingerprint()),
        Vec::<String>::new()
    );
}

#[test]
fn sighup_does_not_stop_the_run() {
    let setup = Setup::new(
        "sighup",
        FAILING_PLAN.replace("\"false\"", "\"sleep 2\"").as_str(),
    );
    let runner = setup
        .command(&setup.apply_args(setup.plan().to_str().unwrap(), &[]))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the journal to exist, then hang up.
    let deadline = Instant::now() + Duration::from_secs(60);
    while setup.run_folder().is_none() {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(50));
    }
    signal(&runner, Signal::SIGHUP);
    let output = runner.wait_with_output().unwrap();
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(text.contains("SIGHUP"), "{text}");
    assert!(text.contains("succeeded"), "{text}");
}

#[test]
fn dry_run_changes_nothing() {
    let setup = Setup::new("dryrun", SLEEPING_PLAN);
    let before = setup.fingerprint();
    let history = setup.history();
    let output = setup.apply(&["--dry-run"]);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{out}\n{}", stderr(&output));
    for expected in [
        "1. backup before",
        &format!("snapshot of `{}`", setup.db.name),
        "2. sql change",
        "$ sleep 300",
        "on_failure",
        "sessions on",
        "lock: free",
        "present: may create databases",
        &format!("present: owns `{}`", setup.db.name),
        "present: may end other roles' sessions",
        "nothing was changed",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    assert_eq!(
        fingerprint::differences(&before, &setup.fingerprint()),
        Vec::<String>::new()
    );
    assert_eq!(setup.history(), history);
    assert!(!setup.has_table("plan_runner.history"));
    assert!(
        setup.run_folder().is_none(),
        "a dry run writes no run folder"
    );
}

#[test]
fn dry_run_says_what_a_plain_role_may_not_do() {
    let setup = Setup::new("dryrole", SLEEPING_PLAN);
    let role = format!("{}_plain", setup.db.name);
    let mut maintenance = setup.db.cluster.connect("postgres").unwrap();
    maintenance
        .batch_execute(&format!(
            "create role \"{role}\" login nosuperuser nocreatedb"
        ))
        .unwrap();
    let plan = setup.plan();
    let output = setup
        .command(&setup.apply_args(plan.to_str().unwrap(), &["--dry-run"]))
        .env("PGUSER", &role)
        .output()
        .unwrap();
    let out = stdout(&output);
    for expected in [
        "MISSING: may create databases".to_string(),
        format!("ALTER ROLE {role} CREATEDB;"),
        format!("MISSING: owns `{}`", setup.db.name),
        "not granted: may end other roles' sessions".to_string(),
    ] {
        assert!(
            out.contains(&expected),
            "missing {expected:?} in:\n{out}\n{}",
            stderr(&output)
        );
    }
    maintenance
        .batch_execute(&format!("drop role \"{role}\""))
        .unwrap();
}

#[test]
fn no_rollback_leaves_the_failed_database_and_recover_restores_it() {
    let setup = Setup::new("norollback", FAILING_PLAN);
    let before = setup.fingerprint();
    let output = setup.apply(&["--no-rollback"]);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("NO ROLLBACK"), "{text}");
    assert!(
        setup.has_table("changed"),
        "the failed database was left as is"
    );
    assert!(!setup.on_failure_ran());

    let refused = setup.apply(&[]);
    assert_eq!(refused.status.code(), Some(4), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("--no-rollback stopped it"));
    assert!(
        stderr(&refused).contains("step `broken` failed"),
        "{}",
        stderr(&refused)
    );

    let recovered = setup.recover();
    assert_eq!(recovered.status.code(), Some(0), "{}", stderr(&recovered));
    assert_eq!(
        fingerprint::differences(&before, &setup.fingerprint()),
        Vec::<String>::new()
    );
    assert!(setup.on_failure_ran());
}

#[test]
fn no_rollback_is_refused_on_production() {
    let setup = Setup::new("prod", FAILING_PLAN);
    let inventory = setup.plan_dir.path().join("inventory.yaml");
    let cluster = setup.db.cluster;
    fs::write(
        &inventory,
        format!(
            "targets:\n  acme:\n    production: true\n    host: {}\n    port: {}\n    user: {}\n    database: {}\n",
            cluster.host(),
            cluster.port(),
            cluster.user(),
            setup.db.name
        ),
    )
    .unwrap();
    let output = support::plan_process()
        .args(["apply"])
        .arg(setup.plan())
        .args(["--target", "acme", "--inventory"])
        .arg(&inventory)
        .args(["--no-rollback", "--assume-release", "1.0", "--state-dir"])
        .arg(setup.state.path())
        .output()
        .unwrap();
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(text.contains("production"), "{text}");
    assert!(!setup.has_table("changed"));
    assert!(setup.run_folder().is_none());
}

/// Another OS user, with a state folder of its own that cannot see the dead
/// run's journal, still sees the unfinished run (through
/// `plan_runner.runs`) and refuses. Switching users needs root (CI runs
/// as root): this test fails, rather than skips, without it.
#[test]
fn another_os_user_with_another_state_dir_sees_the_unfinished_run() {
    use std::os::unix::process::CommandExt;
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test runs `plan apply` as another OS user: run the tests as root (CI does)"
    );
    // The throwaway cluster's own server account: it exists on every
    // machine the tests run on as root, and may use the cluster's socket.
    let other = nix::unistd::User::from_name("plan-runner-pg")
        .unwrap()
        .expect("the cluster's server account `plan-runner-pg`");
    let setup = Setup::new("otheruser", SLEEPING_PLAN);
    let mut runner = setup.spawn_apply();
    let sleeper = setup.wait_for_slow_step(&mut runner);
    signal(&runner, Signal::SIGKILL);
    runner.wait().unwrap();
    let run_id = setup
        .run_folder()
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();

    let state = tempfile::tempdir().unwrap();
    nix::unistd::chown(state.path(), Some(other.uid), Some(other.gid)).unwrap();
    // The plan must be readable by the other user: a copy of its own.
    let plan = state.path().join("test.plan");
    fs::copy(setup.plan(), &plan).unwrap();
    nix::unistd::chown(&plan, Some(other.uid), Some(other.gid)).unwrap();
    let refused = setup
        .command_in(
            &state.path().join("state"),
            &setup.apply_args(plan.to_str().unwrap(), &[]),
        )
        .uid(other.uid.as_raw())
        .gid(other.gid.as_raw())
        .env("HOME", state.path())
        .current_dir(state.path())
        .output()
        .unwrap();
    let text = stderr(&refused);
    assert_eq!(refused.status.code(), Some(4), "{text}");
    assert!(text.contains("unfinished run"), "{text}");
    assert!(text.contains(&run_id), "{text}");
    assert!(
        !state
            .path()
            .join("state")
            .join("runs")
            .join(&run_id)
            .exists(),
        "the other user's state folder never had the dead run's journal"
    );

    let recovered = setup.recover();
    assert_eq!(recovered.status.code(), Some(0), "{}", stderr(&recovered));
    assert!(wait_gone(sleeper), "the dead run's step is still running");
}
