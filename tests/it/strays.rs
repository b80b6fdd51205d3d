//! Processes a step leaves behind (docs/apply.md): daemons started with
//! `setsid`, `nohup ... &` and a double fork, each writing rows into the
//! target and files into the backed-up tree in a loop, against a real
//! cluster. They are ended and named; the rollback and its proof happen
//! only once none is left; what a `start` step leaves is its server and
//! survives a successful run.

use std::time::Duration;

use crate::support::apply::snapshot_plan;
use crate::support::apply::{Applied, TREE, World, fingerprint, pids, read_tree};
use crate::support::process_running;

/// `steps/daemon.sh TAG`: records its pid in `daemons.pids`, then writes a
/// row and a file of the tree every 50 ms for ever; `daemon.TAG.wrote`
/// says it wrote at least once.
pub(crate) fn write_daemon(world: &World) {
    let psql = world.db.cluster.bin("psql");
    let script = format!(
        r#"#!/bin/sh
tag="$1"
echo $$ >> daemons.pids
i=0
while :; do
  i=$((i+1))
  "{psql}" -X -q -c "insert into partner (name) values ('daemon $tag $i')"
  printf '%s\n' "$i" > {TREE}/daemon_$tag.txt
  touch daemon.$tag.wrote
  sleep 0.05
done
"#,
        psql = psql.display()
    );
    let path = world.path("steps/daemon.sh");
    std::fs::write(&path, script).expect("write daemon.sh");
}

/// A step's shell that starts daemons the ways `how` names (`setsid`,
/// `nohup`, else a double fork), waits until each wrote (60 s at most),
/// then exits `code`.
pub(crate) fn spawn_run(how: &[&str], code: i32) -> String {
    let mut script = String::new();
    for tag in how {
        let daemon = format!("sh steps/daemon.sh {tag} </dev/null >/dev/null 2>&1");
        script.push_str(&match *tag {
            "setsid" => format!("setsid {daemon} & "),
            "nohup" => format!("nohup {daemon} & "),
            _ => format!("( ( {daemon} & ) & ); "),
        });
    }
    script.push_str(&format!(
        "i=0; while [ $i -lt 1200 ] && [ $(ls daemon.*.wrote 2>/dev/null | wc -l) -lt {} ]; do sleep 0.05; i=$((i+1)); done; echo started; exit {code}",
        how.len()
    ));
    script
}

/// A plan of the fault tests' shape: the old server stopped, a snapshot
/// with the tree, then `steps`, and `on_failure` touching a marker.
pub(crate) fn plan(steps: &str) -> String {
    snapshot_plan("strays", steps, "touch on_failure.ran")
}

/// A step's `run` as a plan string: `sh -c '...'`, the script holding no
/// single quote.
pub(crate) fn sh(script: &str) -> String {
    assert!(!script.contains('\''), "{script}");
    format!("sh -c '{script}'")
}

/// The report's stray entries.
pub(crate) fn strays(applied: &Applied) -> Vec<serde_json::Value> {
    applied.report()["strays"]
        .as_array()
        .unwrap_or_else(|| panic!("no `strays` in the report\n{}", applied.output()))
        .clone()
}

/// The entry naming `pid`, if any.
pub(crate) fn named(strays: &[serde_json::Value], pid: u32) -> Option<&serde_json::Value> {
    strays.iter().find(|s| s["pid"] == pid)
}

/// The database and the tree, twice a second apart: a writer still alive
/// would show between the two looks.
pub(crate) fn settled(world: &World) -> (plan_runner::db::fingerprint::Fingerprint, String) {
    let first = (
        fingerprint(&world.db),
        format!("{:?}", read_tree(&world.tree())),
    );
    std::thread::sleep(Duration::from_secs(1));
    let second = (
        fingerprint(&world.db),
        format!("{:?}", read_tree(&world.tree())),
    );
    assert_eq!(first.0, second.0, "the database still changes");
    assert_eq!(first.1, second.1, "the tree still changes");
    second
}

#[test]
fn daemons_of_a_failed_step_are_ended_before_the_rollback_and_named() {
    let world = World::new("strays_failed");
    write_daemon(&world);
    let spawn = sh(&spawn_run(&["setsid", "nohup", "forked"], 1));
    let plan_path = world.write_plan(&plan(&format!(
        r#"
script spawn {{
  after   = before
  run     = "{spawn}"
  timeout = "2m"
}}
"#
    )));
    let fingerprint_before = fingerprint(&world.db);
    let tree_before = format!("{:?}", read_tree(&world.tree()));

    let applied = world.apply(&plan_path, &[]);
    applied.assert_code(1);
    assert_eq!(applied.outcome(), "rolled_back", "{}", applied.output());
    assert_eq!(applied.report()["rollback"]["proved"], true);
    for tag in ["setsid", "nohup", "forked"] {
        assert!(
            world.path(&format!("daemon.{tag}.wrote")).is_file(),
            "the {tag} daemon wrote before the step ended\n{}",
            applied.output()
        );
    }

    let daemons = pids(&world.path("daemons.pids"));
    assert_eq!(daemons.len(), 3, "{daemons:?}");
    let strays = strays(&applied);
    for pid in &daemons {
        assert!(!process_running(*pid), "daemon {pid} is still alive");
        let entry =
            named(&strays, *pid).unwrap_or_else(|| panic!("daemon {pid} is not named: {strays:?}"));
        assert_eq!(entry["ended"], true, "{entry}");
        assert_eq!(entry["step"], "spawn", "{entry}");
        assert_eq!(entry["when"], "step_end", "{entry}");
        let command = entry["command"].as_str().unwrap_or_default();
        assert!(command.contains("steps/daemon.sh"), "{command}");
    }
    assert!(
        applied.stderr.contains("left process"),
        "the log warns of each: {}",
        applied.output()
    );
    assert!(
        applied.stdout.contains("processes the steps left running")
            || applied.stderr.contains("processes the steps left running"),
        "the summary lists them: {}",
        applied.output()
    );

    let (fingerprint_after, tree_after) = settled(&world);
    assert_eq!(fingerprint_after, fingerprint_before);
    assert_eq!(tree_after, tree_before);
    assert!(world.on_failure_ran());
}

#[test]
fn a_start_steps_server_is_ended_before_the_rollback() {
    let world = World::new("strays_start");
    write_daemon(&world);
    let start = sh(&spawn_run(&["setsid"], 0));
    let plan_path = world.write_plan(&plan(&format!(
        r#"
start server_new {{
  after   = before
  run     = "{start}"
  timeout = "2m"
}}

script fails {{
  after   = server_new
  run     = "false"
  timeout = "1m"
}}
"#
    )));
    let fingerprint_before = fingerprint(&world.db);
    let tree_before = format!("{:?}", read_tree(&world.tree()));

    let applied = world.apply(&plan_path, &[]);
    applied.assert_code(1);
    assert_eq!(applied.outcome(), "rolled_back", "{}", applied.output());
    let daemons = pids(&world.path("daemons.pids"));
    assert_eq!(daemons.len(), 1, "{daemons:?}");
    let pid = daemons[0];
    assert!(!process_running(pid), "the started server {pid} is alive");
    let strays = strays(&applied);
    let entry =
        named(&strays, pid).unwrap_or_else(|| panic!("server {pid} is not named: {strays:?}"));
    assert_eq!(entry["when"], "rollback", "{entry}");
    assert_eq!(entry["step"], "server_new", "{entry}");
    assert_eq!(entry["ended"], true, "{entry}");

    let (fingerprint_after, tree_after) = settled(&world);
    assert_eq!(fingerprint_after, fingerprint_before);
    assert_eq!(tree_after, tree_before);
}

#[test]
fn a_successful_runs_script_daemon_is_ended_and_its_start_server_kept() {
    let world = World::new("strays_success");
    write_daemon(&world);
    let script = sh(&spawn_run(&["nohup"], 0));
    let start = sh(&spawn_run(&["setsid"], 0));
    let plan_path = world.write_plan(&plan(&format!(
        r#"
script migrate {{
  after   = before
  run     = "{script}"
  timeout = "2m"
}}

start server_new {{
  after   = migrate
  run     = "{start}"
  timeout = "2m"
}}
"#
    )));

    let applied = world.apply(&plan_path, &[]);
    applied.assert_code(0);
    let daemons = pids(&world.path("daemons.pids"));
    assert_eq!(daemons.len(), 2, "{daemons:?}");
    let (script_daemon, server) = (daemons[0], daemons[1]);
    let server_alive = process_running(server);
    // The test's own cleanup first: the server must not outlive it.
    // SAFETY: kill(2) on a pid this test's run started.
    unsafe {
        libc::kill(i32::try_from(server).expect("a pid"), libc::SIGKILL);
    }
    assert!(server_alive, "the start step's server was ended");
    assert!(
        !process_running(script_daemon),
        "the script step's daemon {script_daemon} is alive"
    );
    let strays = strays(&applied);
    let entry = named(&strays, script_daemon)
        .unwrap_or_else(|| panic!("daemon {script_daemon} is not named: {strays:?}"));
    assert_eq!(entry["step"], "migrate", "{entry}");
    assert_eq!(entry["ended"], true, "{entry}");
    assert!(
        named(&strays, server).is_none(),
        "the kept server is not named as ended: {strays:?}"
    );
}
