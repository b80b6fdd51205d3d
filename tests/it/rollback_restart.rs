//! The server lost in the middle of a rollback, after the databases were
//! renamed into place and before their properties were given back (the
//! runner held there by the test-only pause point `rollback_renamed`):
//! restarted, the runner reconnects, finishes the rollback and proves it
//! (exit 1); gone for longer than `--reconnect-wait`, the run is left open
//! for `plan recover`, which finishes it (exit 3, then 0). Fingerprints and
//! file trees are compared with what they were before the run.

use std::path::PathBuf;
use std::process::{Child, Stdio};

use plan_runner::exec::pause::{PAUSE_AT_VAR, ROLLBACK_RENAMED};

use crate::support::apply::{
    World, apply_command, fingerprint, read_tree, run_folders, snapshot_plan,
};
use crate::support::{self, wait_for};

/// Changes rows, the schema and the tree, then fails.
fn write_plan(world: &World) {
    world.write_plan(&snapshot_plan(
        "rollback restart",
        r#"
script changes {
  after   = before
  run     = "sh steps/mutate.sh changes fail"
  timeout = "1m"
}
"#,
        "touch on_failure.ran",
    ));
}

/// Starts `plan apply` and waits until its rollback is held after the
/// renames; returns the runner and the pause's marker file.
fn start_paused(world: &World, extra: &[&str]) -> (Child, PathBuf) {
    let mut runner = apply_command(&world.db, &world.folder.plan(), world.state.path(), extra)
        .env(PAUSE_AT_VAR, ROLLBACK_RENAMED)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("`plan apply` starts");
    let marker = wait_for(&mut runner, "the rollback's renames", || {
        run_folders(world.state.path())
            .into_iter()
            .map(|f| f.join(format!("paused-at-{ROLLBACK_RENAMED}")))
            .find(|m| m.is_file())
    });
    (runner, marker)
}

/// Lets the runner go on and waits for it.
fn release(runner: Child, marker: &PathBuf) -> (Option<i32>, String) {
    std::fs::remove_file(marker).expect("remove the pause marker");
    crate::support::apply::ended(runner)
}

/// The run's row in `plan_runner.runs`: state, and whether it has ended.
fn runs_row(world: &World, run_id: &str) -> (String, bool) {
    let row = world
        .db
        .cluster
        .connect("postgres")
        .expect("connect")
        .query_one(
            "select state, ended_at is not null from plan_runner.runs where run_id = $1",
            &[&run_id],
        )
        .expect("the run's row");
    (row.get(0), row.get(1))
}

#[test]
fn a_server_restart_during_the_rollback_is_reconnected_and_the_rollback_proved() {
    let cluster = support::private_cluster();
    let world = World::on(cluster, "rollback_restart");
    write_plan(&world);
    let fingerprint_before = fingerprint(&world.db);
    let tree_before = read_tree(&world.tree());

    let (runner, marker) = start_paused(&world, &[]);
    cluster.restart_server().expect("the server restarts");
    let (code, stderr) = release(runner, &marker);

    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("the server was lost during the rollback"),
        "the rollback met the restart and reconnected:\n{stderr}"
    );
    let report = world.only_report();
    assert_eq!(report["outcome"], "rolled_back", "{stderr}");
    assert_eq!(report["rollback"]["proved"], true, "{stderr}");
    assert!(world.witnessed("changes"), "the failed step changed data");
    assert_eq!(fingerprint(&world.db), fingerprint_before);
    assert_eq!(read_tree(&world.tree()), tree_before);
    assert!(world.on_failure_ran(), "on_failure runs after the proof");
    let run_id = report["run_id"].as_str().expect("a run id");
    assert_eq!(runs_row(&world, run_id), ("rolled_back".into(), true));
}

#[test]
fn a_server_gone_during_the_rollback_is_left_to_recover_which_finishes_it() {
    let cluster = support::private_cluster();
    let world = World::on(cluster, "rollback_server_gone");
    write_plan(&world);
    let fingerprint_before = fingerprint(&world.db);
    let tree_before = read_tree(&world.tree());

    let (runner, marker) = start_paused(&world, &["--reconnect-wait", "2s"]);
    cluster.take_server_down().expect("the server stops");
    let (code, stderr) = release(runner, &marker);

    assert_eq!(code, Some(3), "{stderr}");
    let report = world.only_report();
    assert_eq!(report["outcome"], "rollback_failed", "{stderr}");
    let message = report["message"].as_str().unwrap_or_default();
    assert!(message.contains("THE ROLLBACK WAS CUT SHORT"), "{message}");
    assert!(message.contains("plan recover"), "{message}");
    assert!(!message.contains("fingerprints equal"), "{message}");
    assert!(!world.on_failure_ran(), "on_failure waits for a proof");

    cluster.bring_server_up().expect("the server starts again");
    let run_id = report["run_id"].as_str().expect("a run id");
    assert_eq!(
        runs_row(&world, run_id),
        ("running".into(), false),
        "the run stays open for `plan recover`"
    );
    let recovered = support::plan_command(world.db.cluster)
        .args(["recover", "--database", &world.db.name, "--state-dir"])
        .arg(world.state.path())
        .output()
        .expect("plan recover runs");
    let recovered_err = String::from_utf8_lossy(&recovered.stderr);
    assert_eq!(recovered.status.code(), Some(0), "{recovered_err}");
    assert!(
        recovered_err.contains("fingerprints equal"),
        "{recovered_err}"
    );
    assert_eq!(fingerprint(&world.db), fingerprint_before);
    assert_eq!(read_tree(&world.tree()), tree_before);
    assert!(
        world.on_failure_ran(),
        "recover runs on_failure once proved"
    );
    let (state, ended) = runs_row(&world, run_id);
    assert!(ended && state != "running", "{state}");
}
