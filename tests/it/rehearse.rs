//! Rehearsals (`plan rehearse`) against a real cluster: the plan runs on
//! a copy of the target (its database and its file trees) and the target
//! never changes: its fingerprint, its tree and its history are equal
//! before and after, whether the rehearsal passes, fails, is interrupted
//! or killed (then `plan recover`). `stop` and `start` steps that would
//! touch the production server are skipped; nothing the rehearsal made
//! is left behind; the window it predicts is within its steps' times.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

use crate::support::apply::{
    TREE, World, assert_lints_clean, fingerprint, history, read_tree, related_databases,
    run_folders,
};
use crate::support::{self, wait_for};

/// A plan of the partners' shape: stop the server, back up the database
/// and the tree, change both (`change_run`), check, start the server; the
/// `stop` and `start` steps leave markers at absolute paths outside the
/// plan's folder (which the rehearsal copies), so that a step that ran
/// is seen.
fn plan(world: &World, change_run: &str, stop_attrs: &str) -> String {
    let marks = marks(world);
    fs::create_dir_all(&marks).unwrap();
    let mark = |name: &str| marks.join(name).display().to_string();
    format!(
        r#"plan "rehearsed" {{
  from          = "1.0"
  to            = "2.0"
  release_query = "select v from release"
}}

stop server_down {{
  run = "touch {stopped}"{stop_attrs}
}}

backup before {{
  after  = server_down
  method = "snapshot"
  paths  = ["{TREE}"]
}}

script change {{
  after   = before
  run     = "{change_run}"
  timeout = "5m"
}}

sql to_two {{
  after = change
  sql   = "update release set v = '2.0'"
}}

check settled {{
  after  = to_two
  sql    = "select v from release"
  expect = "2.0"
}}

start server_up {{
  after = settled
  run   = "touch {started}"
}}

on_failure {{
  start old_server_up {{
    run = "touch {on_failure}"
  }}
}}
"#,
        stopped = mark("stopped"),
        started = mark("started"),
        on_failure = mark("on_failure"),
    )
}

/// Outside the plan's folder (which a rehearsal copies): in the state
/// folder, which is the test's own.
fn marks(world: &World) -> PathBuf {
    world.state.path().join("marks")
}

fn marker(world: &World, name: &str) -> bool {
    marks(world).join(name).exists()
}

/// What one `plan rehearse` did.
struct Rehearsed {
    code: Option<i32>,
    stderr: String,
    stdout: String,
    folder: Option<PathBuf>,
    report: Option<Value>,
}

impl Rehearsed {
    fn output(&self) -> String {
        format!(
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    fn report(&self) -> &Value {
        self.report
            .as_ref()
            .unwrap_or_else(|| panic!("no rehearsal.json\n{}", self.output()))
    }

    fn outcome(&self) -> &str {
        self.report()["outcome"].as_str().unwrap_or("")
    }
}

fn rehearse_command(world: &World, plan: &Path, extra: &[&str]) -> Command {
    let mut cmd = support::plan_command(world.db.cluster);
    cmd.arg("rehearse")
        .arg(plan)
        .arg("--database")
        .arg(&world.db.name)
        .arg("--state-dir")
        .arg(world.state.path())
        .args(extra);
    cmd
}

fn finish(
    world: &World,
    output: std::process::Output,
    before: &std::collections::BTreeSet<PathBuf>,
) -> Rehearsed {
    let made: Vec<PathBuf> = run_folders(world.state.path())
        .difference(before)
        .cloned()
        .collect();
    let folder = made.into_iter().next();
    let report = folder.as_ref().and_then(|f| {
        let text = fs::read(f.join("rehearsal.json")).ok()?;
        Some(serde_json::from_slice(&text).expect("rehearsal.json is JSON"))
    });
    Rehearsed {
        code: output.status.code(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        folder,
        report,
    }
}

fn rehearse(world: &World, plan: &Path, extra: &[&str]) -> Rehearsed {
    let before = run_folders(world.state.path());
    let output = rehearse_command(world, plan, extra)
        .output()
        .expect("plan rehearse runs");
    finish(world, output, &before)
}

/// The target as a test compares it: the runner's fingerprint, the tree
/// (and its folder's inode: a tree restored from a copy would be equal,
/// but another folder) and the history table.
fn target_state(world: &World) -> impl PartialEq + std::fmt::Debug {
    use std::os::unix::fs::MetadataExt;
    (
        fingerprint(&world.db),
        read_tree(&world.tree()),
        fs::metadata(world.tree()).unwrap().ino(),
        history(&world.db),
    )
}

/// Everything the rehearsal made is gone: no database named after the
/// target but the target, nothing beside the tree, no copy of the plan's
/// folder or of its trees in the rehearsal folder.
fn assert_nothing_left(world: &World, rehearsed: &Rehearsed) {
    assert_eq!(
        related_databases(&world.db),
        vec![world.db.name.clone()],
        "a copy is left\n{}",
        rehearsed.output()
    );
    let beside: Vec<String> = fs::read_dir(world.folder.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(beside.is_empty(), "copies beside the tree: {beside:?}");
    let folder = rehearsed.folder.as_ref().expect("a rehearsal folder");
    for left in ["plan", "trees"] {
        assert!(
            !folder.join(left).exists(),
            "{left} is left in {}",
            folder.display()
        );
    }
}

/// The runs record's state of a rehearsal.
fn row_state(world: &World, run_id: &str) -> String {
    let mut client = world.db.cluster.connect("postgres").unwrap();
    client
        .query_one(
            "select state from plan_runner.runs where run_id = $1",
            &[&run_id],
        )
        .map(|r| r.get(0))
        .unwrap_or_else(|e| panic!("no runs row for {run_id}: {e}"))
}

fn steps_seconds(report: &Value) -> f64 {
    report["runs"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["steps"].as_array().unwrap().iter())
        .map(|s| s["seconds"].as_f64().unwrap())
        .sum()
}

#[test]
fn a_passing_rehearsal_changes_nothing_of_the_target_and_predicts_the_window() {
    let world = World::new("rehearse_pass");
    let plan = world.write_plan(&plan(&world, "sh steps/mutate.sh r ok", ""));
    let before = target_state(&world);
    let rehearsed = rehearse(&world, &plan, &["--format", "json"]);
    assert_eq!(rehearsed.code, Some(0), "{}", rehearsed.output());
    assert_eq!(rehearsed.outcome(), "passed");
    assert_eq!(target_state(&world), before, "the target changed");
    assert!(!marker(&world, "stopped"), "the stop step ran");
    assert!(!marker(&world, "started"), "the start step ran");
    assert_nothing_left(&world, &rehearsed);

    let report = rehearsed.report();
    // The steps ran for real, on the copy.
    let run = &report["runs"][0];
    let status = |name: &str| {
        run["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .map(|s| s["status"].as_str().unwrap().to_string())
    };
    assert_eq!(status("change").as_deref(), Some("succeeded"));
    assert_eq!(status("server_down").as_deref(), Some("skipped"));
    assert_eq!(status("server_up").as_deref(), Some("skipped"));
    assert_eq!(run["database"], report["copy"]);
    // Its rollback was rehearsed, and proved.
    assert_eq!(run["rollback"]["proved"], true, "{}", rehearsed.output());
    let window = &report["window"];
    assert_eq!(window["first_step"], "server_down");
    assert_eq!(window["last_step"], "server_up");
    let predicted = window["seconds"].as_f64().unwrap();
    assert!(predicted > 0.0);
    assert!(
        predicted <= steps_seconds(report) + 1e-9,
        "window {predicted} > the steps' sum"
    );
    assert!(window["rollback_seconds"].as_f64().unwrap() > 0.0);
    assert!(report["disk_bytes"].as_u64().unwrap() > 0);
    // stdout is the same report.
    let printed: Value = serde_json::from_str(&rehearsed.stdout).expect("JSON on stdout");
    assert_eq!(printed["run_id"], report["run_id"]);
    let run_id = report["run_id"].as_str().unwrap();
    assert_eq!(row_state(&world, run_id), "rehearsal_passed");

    // `plan status` shows it, and `plan apply` tells it before it starts.
    let status = support::plan_command(world.db.cluster)
        .args(["status", "--database", &world.db.name])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&status.stdout);
    assert!(
        shown.contains("last rehearsal: passed") && shown.contains(run_id),
        "{shown}"
    );
    let applied = crate::support::apply::run(
        &mut crate::support::apply::apply_command(&world.db, &plan, world.state.path(), &[]),
        world.state.path(),
    );
    applied.assert_code(0);
    assert!(
        applied
            .stderr
            .contains("last rehearsal of this plan: passed"),
        "{}",
        applied.output()
    );
    assert!(marker(&world, "stopped") && marker(&world, "started"));
}

#[test]
fn a_failing_rehearsal_exits_1_and_leaves_the_target_and_no_copy() {
    let world = World::new("rehearse_fail");
    let plan = world.write_plan(&plan(&world, "sh steps/mutate.sh r fail", ""));
    let before = target_state(&world);
    let rehearsed = rehearse(&world, &plan, &[]);
    assert_eq!(rehearsed.code, Some(1), "{}", rehearsed.output());
    assert_eq!(rehearsed.outcome(), "failed");
    assert!(
        rehearsed.stderr.contains("failing on purpose"),
        "the failing step's output is shown\n{}",
        rehearsed.output()
    );
    assert_eq!(target_state(&world), before, "the target changed");
    assert!(!marker(&world, "on_failure"), "on_failure's start step ran");
    assert_nothing_left(&world, &rehearsed);
    let run_id = rehearsed.report()["run_id"].as_str().unwrap().to_string();
    assert_eq!(row_state(&world, &run_id), "rehearsal_failed");
}

/// A step script that writes its pid to the absolute path it is given,
/// then sleeps: a rehearsal caught in the middle of a long step.
fn slow_world(label: &str) -> (World, PathBuf, PathBuf) {
    let world = World::new(label);
    let script = world.path("steps/slow.sh");
    fs::write(&script, "#!/bin/sh\necho $$ > \"$1\"\nexec sleep 300\n").unwrap();
    let began = marks(&world).join("slow.pid");
    let plan = world.write_plan(&plan(
        &world,
        &format!("sh steps/slow.sh {}", began.display()),
        "",
    ));
    (world, plan, began)
}

/// Starts a rehearsal and waits until its slow step runs; its pid.
fn start_slow(world: &World, plan: &Path, began: &Path) -> (std::process::Child, u32) {
    let mut child = rehearse_command(world, plan, &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = wait_for(&mut child, "the slow step", || {
        fs::read_to_string(began)
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok())
    });
    (child, pid)
}

#[test]
fn ctrl_c_ends_a_rehearsal_with_130_and_drops_its_copy() {
    let (world, plan, began) = slow_world("rehearse_int");
    let before = target_state(&world);
    let folders = run_folders(world.state.path());
    let (child, step) = start_slow(&world, &plan, &began);
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    let output = child.wait_with_output().unwrap();
    let rehearsed = finish(&world, output, &folders);
    assert_eq!(rehearsed.code, Some(130), "{}", rehearsed.output());
    assert_eq!(rehearsed.outcome(), "interrupted");
    assert!(
        !support::process_running(step),
        "the step's process is left"
    );
    assert_eq!(target_state(&world), before, "the target changed");
    assert!(!marker(&world, "on_failure"));
    assert_nothing_left(&world, &rehearsed);
}

#[test]
fn a_killed_rehearsal_is_dropped_by_recover() {
    let (world, plan, began) = slow_world("rehearse_kill");
    let before = target_state(&world);
    let folders = run_folders(world.state.path());
    let (mut child, step) = start_slow(&world, &plan, &began);
    child.kill().unwrap();
    let output = child.wait_with_output().unwrap();
    let rehearsed = finish(&world, output, &folders);
    // The copy is there: the runner died with it.
    assert_eq!(
        related_databases(&world.db).len(),
        3,
        "the copy and its backup: {:?}",
        related_databases(&world.db)
    );
    let recover = || {
        support::plan_command(world.db.cluster)
            .args(["recover", "--database", &world.db.name, "--state-dir"])
            .arg(world.state.path())
            .output()
            .unwrap()
    };
    // A record changed to name the target as the copy drops nothing.
    let record = rehearsed.folder.as_ref().unwrap().join("copies.json");
    let original = fs::read_to_string(&record).unwrap();
    let mut forged: Value = serde_json::from_str(&original).unwrap();
    forged["copy"] = Value::from(world.db.name.clone());
    fs::write(&record, forged.to_string()).unwrap();
    let refused = recover();
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("is left as it is"), "{said}");
    assert_eq!(related_databases(&world.db).len(), 3, "{said}");
    fs::write(&record, original).unwrap();

    let recovered = recover();
    let said = String::from_utf8_lossy(&recovered.stderr);
    assert_eq!(recovered.status.code(), Some(0), "{said}");
    assert!(said.contains("had died: its copy"), "{said}");
    assert!(
        !support::process_running(step),
        "the step's process is left"
    );
    assert_eq!(target_state(&world), before, "the target changed");
    assert_nothing_left(&world, &rehearsed);
    let run_id = rehearsed
        .folder
        .as_ref()
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert_eq!(row_state(&world, &run_id), "rehearsal_dropped");
    // A second recover has nothing left to do.
    let again = recover();
    assert!(!String::from_utf8_lossy(&again.stderr).contains("had died"));
}

#[test]
fn sessions_on_the_target_refuse_a_snapshot_and_a_dump_is_the_way_out() {
    let world = World::new("rehearse_sessions");
    let plan = world.write_plan(&plan(&world, "sh steps/mutate.sh r ok", ""));
    // A live production server's session.
    let mut session = world.db.connect();
    session.batch_execute("select 1").unwrap();
    let refused = rehearse(&world, &plan, &["--wait-for-sessions", "1s"]);
    assert_eq!(refused.code, Some(4), "{}", refused.output());
    assert_eq!(refused.outcome(), "refused");
    assert!(
        refused.stderr.contains("--from-dump"),
        "{}",
        refused.output()
    );
    assert_nothing_left(&world, &refused);

    let dump = world.state.path().join("target.dump");
    let dumped = Command::new(world.db.cluster.bin("pg_dump"))
        .args(["-Fc", "-f"])
        .arg(&dump)
        .arg(world.db.cluster.connection_string(&world.db.name))
        .output()
        .unwrap();
    assert!(dumped.status.success(), "{dumped:?}");
    let before = target_state(&world);
    let rehearsed = rehearse(&world, &plan, &["--from-dump", dump.to_str().unwrap()]);
    assert_eq!(rehearsed.code, Some(0), "{}", rehearsed.output());
    assert_eq!(rehearsed.report()["method"], "dump");
    assert_eq!(target_state(&world), before, "the target changed");
    assert_nothing_left(&world, &rehearsed);
    drop(session);
}

#[test]
fn a_step_marked_to_run_runs_and_a_db_named_tree_is_copied_under_the_copys_name() {
    let world = World::new("rehearse_run");
    // A filestore named after the database, beside the plan's folder.
    let stores = world.state.path().join("filestore");
    let store = stores.join(&world.db.name);
    fs::create_dir_all(&store).unwrap();
    fs::write(store.join("attachment.bin"), b"customer file\n").unwrap();
    let text = plan(&world, "sh steps/mutate.sh r ok", "\n  rehearse = \"run\"")
        .replace(
            &format!("paths  = [\"{TREE}\"]"),
            &format!("paths  = [\"{TREE}\", \"{}/${{db}}\"]", stores.display()),
        )
        .replace(
            "script change {\n  after   = before\n",
            &format!(
                "script change {{\n  after   = before\n  env     = {{ STORE = \"{}/${{db}}\" }}\n",
                stores.display()
            ),
        )
        .replace("sh steps/mutate.sh r ok", "sh steps/change_store.sh");
    // The change writes into the filestore the step is given: the copy's.
    fs::write(
        world.path("steps/change_store.sh"),
        "#!/bin/sh\nset -eu\nsh steps/mutate.sh r ok\ntest -f \"$STORE/attachment.bin\"\necho changed > \"$STORE/attachment.bin\"\n",
    )
    .unwrap();
    let plan = world.write_plan(&text);
    // `plan show` says which step a rehearsal runs.
    let shown = support::plan_process()
        .args(["show", "--format", "json"])
        .arg(&plan)
        .output()
        .unwrap();
    let shown: Value = serde_json::from_slice(&shown.stdout).expect("show JSON");
    assert_eq!(shown["steps"][0]["name"], "server_down");
    assert_eq!(shown["steps"][0]["rehearse"], "run");
    let last = shown["steps"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["name"], "server_up");
    assert!(last.get("rehearse").is_none(), "{last}");
    let before = (target_state(&world), read_tree(&store));
    let rehearsed = rehearse(&world, &plan, &[]);
    assert_eq!(rehearsed.code, Some(0), "{}", rehearsed.output());
    assert_eq!((target_state(&world), read_tree(&store)), before);
    assert!(
        marker(&world, "stopped"),
        "the step marked `run` did not run"
    );
    assert!(!marker(&world, "started"));
    let copy = rehearsed.report()["copy"].as_str().unwrap().to_string();
    assert!(!stores.join(&copy).exists(), "the filestore's copy is left");
    assert_eq!(
        fs::read_dir(&stores).unwrap().count(),
        1,
        "something is left beside the filestore"
    );
    assert_nothing_left(&world, &rehearsed);
}

#[test]
fn keep_keeps_the_copy_and_says_how_to_drop_it() {
    let world = World::new("rehearse_keep");
    let plan = world.write_plan(&plan(&world, "sh steps/mutate.sh r ok", ""));
    let rehearsed = rehearse(&world, &plan, &["--keep"]);
    assert_eq!(rehearsed.code, Some(0), "{}", rehearsed.output());
    let copy = rehearsed.report()["copy"].as_str().unwrap().to_string();
    assert!(related_databases(&world.db).contains(&copy));
    assert!(
        rehearsed.stderr.contains("drop database"),
        "{}",
        rehearsed.output()
    );
    let mut client = world.db.cluster.connect("postgres").unwrap();
    client
        .batch_execute(&format!("drop database \"{copy}\""))
        .unwrap();
}

#[test]
fn a_chain_is_rehearsed_hop_after_hop() {
    let world = World::new("rehearse_chain");
    fs::remove_file(world.folder.plan()).unwrap();
    let hop = |from: &str, to: &str| {
        plan(&world, "sh steps/mutate.sh r ok", "")
            .replace(
                "from          = \"1.0\"",
                &format!("from          = \"{from}\""),
            )
            .replace(
                "to            = \"2.0\"",
                &format!("to            = \"{to}\""),
            )
            .replace("plan \"rehearsed\"", &format!("plan \"hop {from}\""))
            .replace("set v = '2.0'", &format!("set v = '{to}'"))
            .replace("expect = \"2.0\"", &format!("expect = \"{to}\""))
            .replace(
                "mutate.sh r",
                &format!("mutate.sh h{}", from.replace('.', "")),
            )
    };
    for (file, from, to) in [("a.plan", "1.0", "1.5"), ("b.plan", "1.5", "2.0")] {
        fs::write(world.path(file), hop(from, to)).unwrap();
        assert_lints_clean(&world.path(file));
    }
    let before = target_state(&world);
    let rehearsed = rehearse(&world, world.folder.path(), &["--to", "2.0"]);
    assert_eq!(rehearsed.code, Some(0), "{}", rehearsed.output());
    let runs = rehearsed.report()["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "two hops");
    let window = &rehearsed.report()["window"];
    assert_eq!(window["first_step"], "server_down");
    assert!(window["seconds"].as_f64().unwrap() <= steps_seconds(rehearsed.report()) + 1e-9);
    assert_eq!(target_state(&world), before, "the target changed");
    assert_nothing_left(&world, &rehearsed);
    assert_eq!(runs[1]["rollback"]["proved"], true, "the chain's rollback");
    // One backup for the chain, counted once in the disk it used.
    let made = &rehearsed.report()["made"];
    let backup = runs[0]["backups"][0]["bytes"].as_u64().unwrap();
    assert_eq!(runs[1]["backups"][0]["copy"], runs[0]["backups"][0]["copy"]);
    assert_eq!(
        rehearsed.report()["disk_bytes"].as_u64().unwrap(),
        made["database_bytes"].as_u64().unwrap() + made["trees_bytes"].as_u64().unwrap() + backup
    );

    // The chain's apply tells the rehearsal of the same chain.
    let applied = crate::support::apply::run(
        &mut crate::support::apply::apply_command(
            &world.db,
            world.folder.path(),
            world.state.path(),
            &["--to", "2.0"],
        ),
        world.state.path(),
    );
    assert_eq!(applied.code, Some(0), "{}", applied.output());
    assert!(
        applied
            .stderr
            .contains("last rehearsal of this plan: passed"),
        "{}",
        applied.output()
    );
}

/// The copy of a filestore goes beside it, on a 80 MB tmpfs: 20 MB with
/// its margin does not fit, and nothing is copied.
#[test]
fn a_rehearsal_with_no_room_for_its_copies_is_refused_with_the_figures() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test mounts a small tmpfs: run the tests as root (CI does)"
    );
    let world = World::new("rehearse_room");
    let stores = world.state.path().join("filestore");
    fs::create_dir_all(&stores).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=80m", "tmpfs"])
        .arg(&stores)
        .output()
        .unwrap();
    assert!(mounted.status.success(), "{mounted:?}");
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(stores.clone());
    let store = stores.join(&world.db.name);
    fs::create_dir_all(&store).unwrap();
    for i in 0..20 {
        fs::write(store.join(format!("f{i}")), vec![b'x'; 1 << 20]).unwrap();
    }
    let text = plan(&world, "sh steps/mutate.sh r ok", "").replace(
        &format!("paths  = [\"{TREE}\"]"),
        &format!("paths  = [\"{TREE}\", \"{}/${{db}}\"]", stores.display()),
    );
    let plan = world.write_plan(&text);
    let before = (target_state(&world), read_tree(&store));
    let rehearsed = rehearse(&world, &plan, &[]);
    assert_eq!(rehearsed.code, Some(4), "{}", rehearsed.output());
    assert_eq!(rehearsed.outcome(), "refused");
    assert!(
        rehearsed.stderr.contains("no room") && rehearsed.stderr.contains("MB free"),
        "{}",
        rehearsed.output()
    );
    assert_eq!((target_state(&world), read_tree(&store)), before);
    assert_eq!(fs::read_dir(&stores).unwrap().count(), 1, "nothing copied");
    assert_nothing_left(&world, &rehearsed);
}

/// Ctrl-C while the copy is being made: the rehearsal ends once the copy
/// is dropped (exit 130), and nothing of the plan ran.
#[test]
fn ctrl_c_while_the_copy_is_made_drops_it_and_runs_nothing() {
    use plan_runner::exec::pause::{PAUSE_AT_VAR, REHEARSAL_COPIED};
    let world = World::new("rehearse_int_copy");
    let plan = world.write_plan(&plan(&world, "sh steps/mutate.sh r ok", ""));
    let before = target_state(&world);
    let folders = run_folders(world.state.path());
    let mut child = rehearse_command(&world, &plan, &[])
        .env(PAUSE_AT_VAR, REHEARSAL_COPIED)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let paused = wait_for(&mut child, "the pause after the copy", || {
        run_folders(world.state.path())
            .difference(&folders)
            .map(|f| f.join(format!("paused-at-{REHEARSAL_COPIED}")))
            .find(|m| m.exists())
    });
    // The copy is there while the rehearsal stands still.
    assert_eq!(related_databases(&world.db).len(), 2);
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    fs::remove_file(&paused).unwrap();
    let output = child.wait_with_output().unwrap();
    let rehearsed = finish(&world, output, &folders);
    assert_eq!(rehearsed.code, Some(130), "{}", rehearsed.output());
    assert_eq!(rehearsed.outcome(), "interrupted");
    assert!(
        rehearsed.report()["runs"].as_array().unwrap().is_empty(),
        "the plan ran"
    );
    assert!(!marker(&world, "stopped"));
    assert_eq!(target_state(&world), before, "the target changed");
    assert_nothing_left(&world, &rehearsed);
}
