//! Faults from outside the plan, injected for real while a run is in a
//! step: the runner's sessions ended by an administrator, the server
//! restarted, the server gone for longer than the run waits. Each ends
//! with the database and its file tree as they were (fingerprint and tree
//! compared), or, where the server is gone, in a state `plan recover`
//! completes, with a report that says which.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::support::apply::{
    World, apply_command, fingerprint, read_tree, run_folders, snapshot_plan as plan,
};
use crate::support::{self, wait_for};

/// The marker the tests' usual `on_failure` step leaves.
const TOUCH_MARKER: &str = "touch on_failure.ran";

/// `plan recover` of `world`'s database, from its state folder.
fn recover(world: &World) -> std::process::Output {
    support::plan_command(world.db.cluster)
        .args(["recover", "--database", &world.db.name, "--state-dir"])
        .arg(world.state.path())
        .output()
        .expect("plan recover runs")
}

/// A plan whose `held` step waits for the file `go` in the plan's folder
/// (or 2 minutes), after `early` changed rows, the schema and the tree.
fn write_plan(world: &World) {
    world.write_plan(&plan(
        "faults",
        r#"
script early {
  after   = before
  run     = "sh steps/mutate.sh early ok"
  timeout = "1m"
}

script held {
  after   = early
  run     = "sh -c 'touch held.started; i=0; while [ ! -e go ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done'"
  timeout = "3m"
}

check settled {
  after  = held
  sql    = "select 1"
  expect = "1"
}
"#,
        TOUCH_MARKER,
    ));
}

/// Starts `plan apply` and waits until it is in the `held` step.
fn start_held(world: &World, extra: &[&str]) -> Child {
    let mut cmd = apply_command(&world.db, &world.folder.plan(), world.state.path(), extra);
    let mut runner = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("`plan apply` starts");
    wait_for(&mut runner, "the held step", || {
        world.path("held.started").is_file().then_some(())
    });
    runner
}

/// Lets the held step end and waits for the runner.
fn release(world: &World, runner: Child) -> (Option<i32>, String) {
    std::fs::write(world.path("go"), "").expect("write go");
    crate::support::apply::ended(runner)
}

/// Ends every session of run `run_id` on the server, as an administrator
/// or a connection pooler would.
fn end_sessions_of_run(world: &World) -> i64 {
    let folders = run_folders(world.state.path());
    let run_id = folders
        .iter()
        .next()
        .and_then(|f| f.file_name())
        .expect("the run's folder")
        .to_string_lossy()
        .into_owned();
    let mut admin = world.db.cluster.connect("postgres").expect("connect");
    admin
        .query_one(
            "select count(pg_terminate_backend(pid)) from pg_stat_activity
             where application_name = $1",
            &[&format!("plan-runner/{run_id}")],
        )
        .expect("terminate")
        .get(0)
}

#[test]
fn sessions_ended_during_a_step_are_reconnected_and_rolled_back() {
    let world = World::new("faults_sessions_ended");
    write_plan(&world);
    let fingerprint_before = fingerprint(&world.db);
    let tree_before = read_tree(&world.tree());

    let runner = start_held(&world, &[]);
    // The lock's session and the maintenance session: both are lost.
    let ended = end_sessions_of_run(&world);
    assert!(ended >= 2, "the run's sessions were found: {ended}");
    let (code, stderr) = release(&world, runner);

    assert_eq!(code, Some(1), "{stderr}");
    let report = world.only_report();
    assert_eq!(report["outcome"], "rolled_back", "{stderr}");
    assert_eq!(report["rollback"]["proved"], true, "{stderr}");
    assert!(
        stderr.contains("took the lock again"),
        "the lock is taken again before the rollback:\n{stderr}"
    );
    assert!(world.witnessed("early"), "the early step changed data");
    assert_eq!(fingerprint(&world.db), fingerprint_before);
    assert_eq!(read_tree(&world.tree()), tree_before);
    assert!(
        world.on_failure_ran(),
        "on_failure runs after a proved rollback"
    );
}

#[test]
fn a_server_restart_during_a_step_is_rolled_back_and_proved() {
    let cluster = support::private_cluster();
    let world = World::on(cluster, "faults_restart");
    write_plan(&world);
    let fingerprint_before = fingerprint(&world.db);
    let tree_before = read_tree(&world.tree());

    let runner = start_held(&world, &[]);
    cluster.restart_server().expect("the server restarts");
    let (code, stderr) = release(&world, runner);

    assert_eq!(code, Some(1), "{stderr}");
    let report = world.only_report();
    assert_eq!(report["outcome"], "rolled_back", "{stderr}");
    assert_eq!(report["rollback"]["proved"], true, "{stderr}");
    assert_eq!(fingerprint(&world.db), fingerprint_before);
    assert_eq!(read_tree(&world.tree()), tree_before);
    assert!(world.on_failure_ran());
}

#[test]
fn a_server_gone_longer_than_the_wait_is_left_to_recover_and_recovered() {
    let cluster = support::private_cluster();
    let world = World::on(cluster, "faults_server_gone");
    write_plan(&world);
    let fingerprint_before = fingerprint(&world.db);
    let tree_before = read_tree(&world.tree());

    let runner = start_held(&world, &["--reconnect-wait", "2s"]);
    cluster.take_server_down().expect("the server stops");
    let started = Instant::now();
    let (code, stderr) = release(&world, runner);

    assert_eq!(code, Some(3), "{stderr}");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "the run waited for the server before giving up"
    );
    let report = world.only_report();
    assert_eq!(report["outcome"], "rollback_failed", "{stderr}");
    let message = report["message"].as_str().unwrap_or_default();
    assert!(message.contains("NOTHING WAS RESTORED"), "{message}");
    assert!(message.contains("plan recover"), "{message}");
    assert!(
        !message.contains("fingerprints equal"),
        "no proof is claimed: {message}"
    );
    assert!(
        !world.on_failure_ran(),
        "on_failure waits for a proved restore"
    );

    cluster.bring_server_up().expect("the server starts again");
    let first = recover(&world);
    let first_err = String::from_utf8_lossy(&first.stderr);
    assert_eq!(first.status.code(), Some(0), "{first_err}");
    assert!(first_err.contains("fingerprints equal"), "{first_err}");
    assert_eq!(fingerprint(&world.db), fingerprint_before);
    assert_eq!(read_tree(&world.tree()), tree_before);
    assert!(
        world.on_failure_ran(),
        "recover runs on_failure once proved"
    );

    // Recovering again changes nothing.
    let second = recover(&world);
    let second_err = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(0), "{second_err}");
    assert!(second_err.contains("nothing to recover"), "{second_err}");
    assert_eq!(fingerprint(&world.db), fingerprint_before);
    assert_eq!(read_tree(&world.tree()), tree_before);
}

#[test]
fn a_blank_maintenance_or_template_target_is_refused_before_anything_runs() {
    let world = World::new("faults_unusable_targets");
    write_plan(&world);
    for (database, says) in [
        ("", "the target database name is empty"),
        ("  ", "the target database name is empty"),
        ("template1", "is a template database"),
        ("postgres", "is also the maintenance database"),
    ] {
        let output = support::plan_command(world.db.cluster)
            .args(["apply", "--state-dir"])
            .arg(world.state.path())
            .args(["--database", database])
            .arg(world.folder.plan())
            .output()
            .expect("plan apply runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "`{database}`: {stderr}");
        assert!(stderr.contains(says), "`{database}`: {stderr}");
        assert!(
            run_folders(world.state.path()).is_empty(),
            "`{database}`: no run was started"
        );
    }
    assert!(!world.witnessed("early"), "no step ran");
}

#[test]
fn state_is_private_whatever_the_umask_and_a_journal_others_may_write_is_not_trusted() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::os::unix::process::CommandExt;

    let world = World::new("faults_private_state");
    write_plan(&world);
    let fingerprint_before = fingerprint(&world.db);
    let tree_before = read_tree(&world.tree());
    let mut cmd = apply_command(&world.db, &world.folder.plan(), world.state.path(), &[]);
    // SAFETY: umask is async-signal-safe; the child calls nothing else.
    unsafe {
        cmd.pre_exec(|| {
            libc::umask(0);
            Ok(())
        });
    }
    let mut runner = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("`plan apply` starts");
    wait_for(&mut runner, "the held step", || {
        world.path("held.started").is_file().then_some(())
    });
    let folder = run_folders(world.state.path())
        .into_iter()
        .next()
        .expect("the run folder");
    let journal = folder.join("journal");
    let mode = |p: &std::path::Path| std::fs::metadata(p).expect("exists").mode() & 0o777;
    for dir in [
        world.state.path().to_path_buf(),
        world.state.path().join("runs"),
        folder.clone(),
        folder.join("logs"),
    ] {
        assert_eq!(mode(&dir), 0o700, "{} under umask 0", dir.display());
    }
    assert_eq!(mode(&journal), 0o600, "the journal under umask 0");

    // The runner dies; someone else could now have written the journal.
    runner.kill().expect("kill -9 the runner");
    runner.wait().expect("reaped");
    std::fs::set_permissions(&journal, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let refused = recover(&world);
    let refused_err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(4), "{refused_err}");
    assert!(
        refused_err.contains(&journal.display().to_string()),
        "{refused_err}"
    );
    assert!(refused_err.contains("not trusted"), "{refused_err}");
    assert!(world.witnessed("early"), "the database was changed");
    assert_ne!(
        fingerprint(&world.db),
        fingerprint_before,
        "nothing restored"
    );

    std::fs::set_permissions(&journal, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let recovered = recover(&world);
    let recovered_err = String::from_utf8_lossy(&recovered.stderr);
    assert_eq!(recovered.status.code(), Some(0), "{recovered_err}");
    assert_eq!(fingerprint(&world.db), fingerprint_before);
    assert_eq!(read_tree(&world.tree()), tree_before);
}

#[test]
fn a_huge_line_of_output_stays_in_the_log_not_in_the_report_or_the_journal() {
    let world = World::new("faults_huge_output");
    std::fs::write(
        world.path("steps/loud.sh"),
        "head -c 50000000 /dev/zero | tr '\\0' x\necho\necho 'ERROR: the last words'\nexit 1\n",
    )
    .expect("write loud.sh");
    world.write_plan(&plan(
        "huge output",
        r#"
script loud {
  after   = before
  run     = "sh steps/loud.sh"
  timeout = "2m"
}
"#,
        TOUCH_MARKER,
    ));
    let fingerprint_before = fingerprint(&world.db);
    let applied = world.apply(&world.folder.plan(), &[]);
    applied.assert_code(1);
    let folder = applied.run_folder.clone().expect("a run folder");
    let size = |name: &str| std::fs::metadata(folder.join(name)).expect(name).len();
    assert!(
        size("report.json") < 100_000,
        "report.json: {} bytes",
        size("report.json")
    );
    assert!(
        size("journal") < 100_000,
        "journal: {} bytes",
        size("journal")
    );
    let log = std::fs::read_dir(folder.join("logs"))
        .expect("logs")
        .flatten()
        .map(|e| e.metadata().expect("log").len())
        .max()
        .unwrap_or(0);
    assert!(log > 50_000_000, "the log keeps everything: {log} bytes");
    let report = applied.report();
    let step = crate::support::apply::step(report, "loud").expect("the step's report");
    let lines: Vec<&str> = step["last_lines"]
        .as_array()
        .expect("last lines")
        .iter()
        .filter_map(|l| l.as_str())
        .collect();
    assert!(
        lines.iter().any(|l| l.contains("ERROR: the last words")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("more bytes in the log")),
        "the huge line is shown cut: {:?}",
        lines.iter().map(|l| l.len()).collect::<Vec<_>>()
    );
    assert_eq!(fingerprint(&world.db), fingerprint_before);
}

#[test]
fn an_on_failure_step_that_hangs_is_ended_and_reported_loudly() {
    let world = World::new("faults_on_failure_hangs");
    world.write_plan(&plan(
        "on_failure hangs",
        r#"
script broken {
  after   = before
  run     = "sh steps/mutate.sh broken fail"
  timeout = "1m"
}
"#,
        "sleep 600",
    ));
    let fingerprint_before = fingerprint(&world.db);
    let applied = world.apply(&world.folder.plan(), &["--on-failure-timeout", "2s"]);
    applied.assert_code(1);
    let report = applied.report();
    assert_eq!(report["outcome"], "rolled_back", "{}", applied.output());
    let on_failure = &report["on_failure"][0];
    assert_eq!(on_failure["name"], "server_up");
    assert_eq!(on_failure["status"], "failed", "{}", applied.output());
    let error = on_failure["error"].as_str().unwrap_or_default();
    assert!(error.contains("timed out"), "{error}");
    assert!(
        applied
            .stderr
            .contains("ON_FAILURE STEP `server_up` FAILED"),
        "{}",
        applied.output()
    );
    assert_eq!(fingerprint(&world.db), fingerprint_before);
}

#[test]
fn the_connection_password_is_in_no_log_or_report_and_its_file_is_gone_after_the_run() {
    let world = World::new("faults_password");
    std::fs::write(
        world.path("steps/leak.sh"),
        "echo \"the password file says: $(cat \"$PGPASSFILE\")\"\nexit 1\n",
    )
    .expect("write leak.sh");
    world.write_plan(&plan(
        "password",
        r#"
script leak {
  after   = before
  run     = "sh steps/leak.sh"
  timeout = "1m"
}
"#,
        TOUCH_MARKER,
    ));
    // The test server trusts every local connection: the password is
    // accepted and ignored, so the run goes as with a real one.
    let password = "pw-Zq8-never-shown";
    let mut cmd = apply_command(&world.db, &world.folder.plan(), world.state.path(), &[]);
    cmd.env("PGPASSWORD", password);
    let applied = crate::support::apply::run(&mut cmd, world.state.path());
    applied.assert_code(1);
    assert!(!applied.output().contains(password), "{}", applied.output());
    let folder = applied.run_folder.clone().expect("a run folder");
    let mut seen = Vec::new();
    for file in crate::support::apply::files_under(&folder) {
        let text = std::fs::read(&file).unwrap_or_default();
        let text = String::from_utf8_lossy(&text);
        assert!(
            !text.contains(password),
            "{} holds the password",
            file.display()
        );
        seen.push(file);
    }
    let log = seen
        .iter()
        .find(|f| f.to_string_lossy().contains("leak"))
        .expect("the leak step's log");
    let text = std::fs::read_to_string(log).expect("the log");
    assert!(text.contains("the password file says:"), "{text}");
    assert!(text.contains("***"), "the password is shown hidden: {text}");
    assert!(
        !folder.join("pgpass").exists(),
        "the password file is removed when the run ends"
    );
}

/// A run that fails after changing data, with a snapshot and a file tree:
/// every kind of journal record is written on its way.
fn failing_run() -> String {
    plan(
        "every transition",
        r#"
script early {
  after   = before
  run     = "sh steps/mutate.sh early ok"
  timeout = "1m"
}

script broken {
  after   = early
  run     = "sh steps/mutate.sh late fail"
  timeout = "1m"
}
"#,
        TOUCH_MARKER,
    )
}

fn journal_lines(world: &World) -> usize {
    let folder = run_folders(world.state.path())
        .into_iter()
        .next()
        .expect("a run folder");
    std::fs::read_to_string(folder.join("journal"))
        .expect("the journal")
        .lines()
        .count()
}

#[test]
fn a_kill_after_every_journal_transition_is_recovered_to_where_the_run_would_end() {
    // An uninterrupted run: how many records it writes, and where it ends.
    let reference = World::new("faults_transitions_reference");
    reference.write_plan(&failing_run());
    let before = fingerprint(&reference.db);
    reference
        .apply(&reference.folder.plan(), &[])
        .assert_code(1);
    assert_eq!(fingerprint(&reference.db), before);
    let records = journal_lines(&reference);
    assert!(records >= 10, "the run wrote {records} records");

    for n in 1..=records {
        let world = World::new(&format!("faults_transition_{n}"));
        world.write_plan(&failing_run());
        let fingerprint_before = fingerprint(&world.db);
        let tree_before = read_tree(&world.tree());
        let mut cmd = apply_command(&world.db, &world.folder.plan(), world.state.path(), &[]);
        cmd.env(
            plan_runner::exec::journal::ABORT_AFTER_RECORD_VAR,
            n.to_string(),
        );
        let aborted = cmd.output().expect("plan apply runs");
        assert_eq!(
            aborted.status.code(),
            None,
            "record {n}: the runner was to abort after it\n{}",
            String::from_utf8_lossy(&aborted.stderr)
        );
        assert_eq!(journal_lines(&world), n, "record {n} is the journal's last");
        let first = recover(&world);
        let first_err = String::from_utf8_lossy(&first.stderr);
        assert_eq!(first.status.code(), Some(0), "record {n}: {first_err}");
        assert_eq!(
            fingerprint(&world.db),
            fingerprint_before,
            "record {n}: the database is as before\n{first_err}"
        );
        assert_eq!(
            read_tree(&world.tree()),
            tree_before,
            "record {n}: the file tree is as before\n{first_err}"
        );
        let second = recover(&world);
        let second_err = String::from_utf8_lossy(&second.stderr);
        assert_eq!(second.status.code(), Some(0), "record {n}: {second_err}");
        assert!(
            second_err.contains("nothing to recover"),
            "record {n}: {second_err}"
        );
        assert_eq!(fingerprint(&world.db), fingerprint_before, "record {n}");
        assert_eq!(read_tree(&world.tree()), tree_before, "record {n}");
    }
}

#[test]
fn a_full_disk_under_the_state_folder_still_rolls_back_proves_and_runs_on_failure() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test mounts a small tmpfs to fill: run the tests as root (CI does)"
    );
    let world = World::new("faults_full_state");
    world.write_plan(&failing_run());
    let fingerprint_before = fingerprint(&world.db);
    let tree_before = read_tree(&world.tree());
    let state = world.state.path().join("small");
    std::fs::create_dir_all(&state).expect("mount point");
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(&state)
        .status()
        .expect("mount runs");
    assert!(
        mounted.success(),
        "cannot mount a tmpfs on {}",
        state.display()
    );
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
    let _unmount = Unmount(state.clone());
    // Fill it but for 16 kB: the run folder and its journal fit, its logs
    // and its report do not.
    let filled = std::process::Command::new("dd")
        .args(["if=/dev/zero", "bs=1k", "count=2032"])
        .arg(format!("of={}", state.join("fill").display()))
        .status()
        .expect("dd runs");
    assert!(filled.success());

    let output = support::plan_command(world.db.cluster)
        .args(["apply", "--database", &world.db.name, "--state-dir"])
        .arg(&state)
        .arg(world.folder.plan())
        .output()
        .expect("plan apply runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("fingerprints equal"), "{stderr}");
    assert_eq!(fingerprint(&world.db), fingerprint_before, "{stderr}");
    assert_eq!(read_tree(&world.tree()), tree_before, "{stderr}");
    assert!(
        world.on_failure_ran(),
        "on_failure ran all the same: {stderr}"
    );
    // No report at all rather than an empty one, and the summary says so.
    for folder in run_folders(&state) {
        let report = folder.join("report.json");
        if let Ok(bytes) = std::fs::read(&report) {
            assert!(
                serde_json::from_slice::<serde_json::Value>(&bytes).is_ok(),
                "report.json is whole or absent"
            );
        } else {
            assert!(stderr.contains("could not write"), "{stderr}");
        }
    }
}
