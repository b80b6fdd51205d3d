//! Fleets: `plan apply --inventory FILE --all` (or `--select`, `--target
//! a,b`, `--shard`) against real databases on two clusters the suite
//! starts. Each target is a real `plan apply` child; the tests read back
//! what a partner would: the exit status, the JSON summary, the databases
//! (fingerprints, the history table) and the run folders.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use plan_runner::cluster::Cluster;
use plan_runner::fleet::select::{Shard, in_shard};
use serde_json::Value;
use tempfile::TempDir;

use crate::support::apply::{PlanFolder, execute, fingerprint, history, state_dir};
use crate::support::{TestDatabase, database_on, plan_process, private_cluster, shared_cluster};

/// A backup, a change, a pause (so that runs last long enough to overlap),
/// and a check that fails on every database whose name has `doomed`.
const PLAN: &str = r#"plan "fleet" {
  from = "1.0"
  to   = "2.0"
  release_query = "select '1.0'"
}

backup before {
  method = "snapshot"
}

sql change {
  after   = before
  sql     = "update t set v = 'new'"
  timeout = "1m"
}

script pause {
  after   = change
  run     = "sleep ${pause}"
  timeout = "10m"
}

check not_doomed {
  after  = pause
  sql    = "select count(*) from t where v = 'new' and current_database() not like '%doomed%'"
  expect = "1"
}

var pause = env("PAUSE", "0.3")
"#;

/// A database holding `t(v) = 'old'`.
fn seeded(cluster: &'static Cluster, label: &str) -> TestDatabase {
    let db = database_on(cluster, label);
    execute(
        &db,
        "create table t (v text); insert into t values ('old');",
    );
    db
}

/// An inventory of `(name, database, labels)` in a folder of its own.
fn inventory(targets: &[(&str, &TestDatabase, &str)]) -> (TempDir, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("fleet-inventory-")
        .tempdir()
        .expect("a folder for the inventory");
    let mut text = String::from("targets:\n");
    for (name, db, labels) in targets {
        let _ = write!(
            text,
            "  {name}:\n    host: {}\n    port: {}\n    user: {}\n    database: {}\n    labels: {{{labels}}}\n",
            db.cluster.host(),
            db.cluster.port(),
            db.cluster.user(),
            db.name
        );
    }
    let path = dir.path().join("inventory.yaml");
    std::fs::write(&path, text).expect("writing the inventory");
    (dir, path)
}

/// Four seeded databases on the shared cluster, targets `a` to `d` of an
/// inventory of their own.
fn four_targets(labels: [&str; 4]) -> ([TestDatabase; 4], TempDir, PathBuf) {
    let dbs = labels.map(|label| seeded(shared_cluster(), label));
    let (dir, inv) = inventory(&[
        ("a", &dbs[0], ""),
        ("b", &dbs[1], ""),
        ("c", &dbs[2], ""),
        ("d", &dbs[3], ""),
    ]);
    (dbs, dir, inv)
}

/// `plan apply PLAN --inventory INV --state-dir STATE --format json
/// ARGS...`.
fn fleet_command(plan: &Path, inventory: &Path, state: &Path, args: &[&str]) -> Command {
    let mut cmd = plan_process();
    cmd.arg("apply")
        .arg(plan)
        .arg("--inventory")
        .arg(inventory)
        .arg("--state-dir")
        .arg(state)
        .args(["--format", "json"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

struct Ran {
    code: Option<i32>,
    summary: Value,
    stderr: String,
}

impl Ran {
    fn targets(&self) -> BTreeMap<String, &Value> {
        self.summary["targets"]
            .as_array()
            .unwrap_or_else(|| panic!("no targets in the summary\n{}", self.stderr))
            .iter()
            .map(|t| (t["name"].as_str().unwrap_or_default().to_string(), t))
            .collect()
    }

    fn outcome(&self, name: &str) -> String {
        self.targets()
            .get(name)
            .and_then(|t| t["outcome"].as_str())
            .unwrap_or_else(|| panic!("no `{name}` in the summary\n{}", self.stderr))
            .to_string()
    }
}

fn ran(output: std::process::Output) -> Ran {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let summary = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}), exit {:?}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
            output.status.code()
        )
    });
    Ran {
        code: output.status.code(),
        summary,
        stderr,
    }
}

fn run_fleet(plan: &Path, inventory: &Path, state: &Path, args: &[&str]) -> Ran {
    let output = fleet_command(plan, inventory, state, args)
        .output()
        .expect("running plan apply");
    ran(output)
}

fn value(db: &TestDatabase) -> String {
    db.connect()
        .query_one("select v from t", &[])
        .expect("reading t")
        .get(0)
}

/// The run's start and end from its report, as RFC 3339 text (which
/// sorts as time does).
fn interval(target: &Value) -> (String, String) {
    let report: Value = serde_json::from_slice(
        &std::fs::read(target["report"].as_str().expect("a report path")).expect("the report"),
    )
    .expect("report.json is JSON");
    (
        report["started_at"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        report["ended_at"].as_str().unwrap_or_default().to_string(),
    )
}

fn overlap(a: &(String, String), b: &(String, String)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

#[test]
fn six_targets_on_two_clusters_one_fails_and_is_restored() {
    let (one, two) = (shared_cluster(), private_cluster());
    let dbs = [
        seeded(one, "fleet_a"),
        seeded(one, "fleet_b"),
        seeded(one, "fleet_doomed"),
        seeded(two, "fleet_d"),
        seeded(two, "fleet_e"),
        seeded(two, "fleet_f"),
    ];
    let names = ["a", "b", "c", "d", "e", "f"];
    let entries: Vec<(&str, &TestDatabase, &str)> = names
        .iter()
        .zip(&dbs)
        .map(|(n, db)| (*n, db, "tier: gold"))
        .collect();
    let (_dir, inv) = inventory(&entries);
    let folder = PlanFolder::new(PLAN);
    let state = state_dir();
    let doomed_before = fingerprint(&dbs[2]);

    let first = run_fleet(
        &folder.plan(),
        &inv,
        state.path(),
        &["--all", "--jobs", "8", "--per-server", "1"],
    );
    assert_eq!(first.code, Some(1), "{}\n{}", first.summary, first.stderr);
    assert_eq!(first.summary["exit_code"], 1);
    assert_eq!(first.summary["ending"], "some_failed");
    let targets = first.targets();
    assert_eq!(targets.len(), 6, "{}", first.summary);
    for (name, db) in names.iter().zip(&dbs) {
        if *name == "c" {
            assert_eq!(first.outcome(name), "rolled_back");
            assert_eq!(targets[*name]["verdict"], "failed");
            assert_eq!(value(db), "old");
            assert_eq!(fingerprint(db), doomed_before, "`c` equals its backup");
        } else {
            assert_eq!(
                first.outcome(name),
                "succeeded",
                "{name}: {}",
                first.summary
            );
            assert_eq!(value(db), "new", "{name}");
            let last = history(db).pop().expect("a history row");
            assert_eq!(last.to_release, "2.0", "{name}");
        }
        let target = targets[*name];
        assert_eq!(target["from"], "1.0");
        assert_eq!(target["to"], "2.0");
        assert!(target["run_id"].is_string() && target["seconds"].is_number());
    }
    assert_eq!(first.summary["totals"]["done"], 5);
    assert_eq!(first.summary["totals"]["failed"], 1);
    // The summary is kept beside the children's output.
    let kept = Path::new(first.summary["folder"].as_str().expect("a folder")).join("summary.json");
    let kept: Value = serde_json::from_slice(&std::fs::read(&kept).expect("summary.json"))
        .expect("summary.json is JSON");
    assert_eq!(kept["targets"], first.summary["targets"]);

    // --per-server 1: never two runs on one cluster at once; --jobs 8:
    // the two clusters did work at the same time.
    let spans: Vec<(String, (String, String))> = names
        .iter()
        .map(|n| {
            (
                targets[*n]["server"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                interval(targets[*n]),
            )
        })
        .collect();
    let mut across = false;
    for (i, (server_a, a)) in spans.iter().enumerate() {
        for (server_b, b) in &spans[i + 1..] {
            if server_a == server_b {
                assert!(
                    !overlap(a, b),
                    "two runs at once on {server_a}: {a:?} {b:?}"
                );
            } else {
                across |= overlap(a, b);
            }
        }
    }
    assert!(
        across,
        "no two runs overlapped across the clusters: {spans:?}"
    );

    // Again: the five at `to` have nothing to do, the failed one is tried
    // again (and fails again, restored again).
    let second = run_fleet(
        &folder.plan(),
        &inv,
        state.path(),
        &["--all", "--jobs", "8"],
    );
    assert_eq!(second.code, Some(1), "{}", second.stderr);
    for name in names {
        let want = if name == "c" {
            "rolled_back"
        } else {
            "nothing_to_do"
        };
        assert_eq!(second.outcome(name), want, "{name}");
    }
    assert_eq!(fingerprint(&dbs[2]), doomed_before);

    // `plan status --all`: every target's release and last run, at once.
    let output = plan_process()
        .args(["status", "--all", "--format", "json", "--jobs", "3"])
        .arg("--inventory")
        .arg(&inv)
        .output()
        .expect("running plan status");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let status: Value = serde_json::from_slice(&output.stdout).expect("status JSON");
    let rows = status["targets"].as_array().expect("targets");
    assert_eq!(rows.len(), 6, "{status}");
    for row in rows {
        let name = row["name"].as_str().unwrap_or_default();
        assert_eq!(row["unfinished"], 0, "{row}");
        assert!(row["error"].is_null(), "{row}");
        if name == "c" {
            assert_ne!(row["release"], "2.0", "{row}");
            assert_eq!(row["last_run"]["outcome"], "rolled_back", "{row}");
        } else {
            assert_eq!(row["release"], "2.0", "{row}");
            assert_eq!(row["last_run"]["outcome"], "succeeded", "{row}");
        }
    }
}

#[test]
fn max_failures_starts_nothing_after_the_limit() {
    let (dbs, _dir, inv) = four_targets(["mf_doomed_a", "mf_b", "mf_doomed_c", "mf_d"]);
    let folder = PlanFolder::new(PLAN);
    let state = state_dir();
    let before: Vec<_> = dbs.iter().map(fingerprint).collect();
    let ran = run_fleet(
        &folder.plan(),
        &inv,
        state.path(),
        &[
            "--all",
            "--jobs",
            "1",
            "--max-failures",
            "1",
            "--var",
            "pause=0",
        ],
    );
    assert_eq!(ran.code, Some(1), "{}", ran.stderr);
    assert_eq!(ran.outcome("a"), "rolled_back");
    for name in ["b", "c", "d"] {
        assert_eq!(ran.outcome(name), "not_started", "{name}: {}", ran.summary);
        assert!(ran.targets()[name]["run_id"].is_null());
    }
    assert_eq!(ran.summary["totals"]["not_started"], 3);
    for (db, before) in dbs.iter().zip(&before) {
        assert_eq!(&fingerprint(db), before, "{}", db.name);
        assert!(history(db).iter().all(|h| h.outcome != "succeeded"));
    }
    // One run folder: only `a` ran.
    let runs = std::fs::read_dir(state.path().join("runs"))
        .expect("the runs folder")
        .count();
    assert_eq!(runs, 1);
}

#[test]
fn ctrl_c_rolls_every_running_target_back_and_starts_no_other() {
    let (dbs, _dir, inv) = four_targets(["int_a", "int_b", "int_c", "int_d"]);
    let folder = PlanFolder::new(PLAN);
    let state = state_dir();
    let before: Vec<_> = dbs.iter().map(fingerprint).collect();
    let mut child = fleet_command(
        &folder.plan(),
        &inv,
        state.path(),
        &[
            "--all",
            "--jobs",
            "2",
            "--per-server",
            "2",
            "--var",
            "pause=300",
        ],
    )
    .spawn()
    .expect("starting the fleet");
    // Both running targets are in their pause (after the change).
    let runs = state.path().join("runs");
    crate::support::wait_for(&mut child, "two runs in their pause", || {
        let pausing = std::fs::read_dir(&runs)
            .ok()?
            .flatten()
            .filter(|e| {
                std::fs::read_to_string(e.path().join("journal"))
                    .is_ok_and(|j| j.contains("\"step\":\"pause\"") && j.contains("step_started"))
            })
            .count();
        (pausing == 2).then_some(())
    });
    let pid = Pid::from_raw(i32::try_from(child.id()).expect("a pid"));
    kill(pid, Signal::SIGINT).expect("sending SIGINT");
    let output = child.wait_with_output().expect("waiting for the fleet");
    let ran = ran(output);
    assert_eq!(ran.code, Some(130), "{}\n{}", ran.summary, ran.stderr);
    assert_eq!(ran.summary["ending"], "interrupted");
    let started: Vec<&str> = ["a", "b", "c", "d"]
        .into_iter()
        .filter(|n| ran.outcome(n) != "not_started")
        .collect();
    assert_eq!(started, ["a", "b"], "{}", ran.summary);
    for name in &started {
        assert_eq!(ran.outcome(name), "rolled_back", "{name}");
    }
    // Every target is at `from`, proved equal to before.
    for (db, before) in dbs.iter().zip(&before) {
        assert_eq!(&fingerprint(db), before, "{}", db.name);
        assert_eq!(value(db), "old");
    }
}

#[test]
fn bad_selections_and_inventories_say_where() {
    let cluster = shared_cluster();
    let db = seeded(cluster, "sel");
    let (_dir, inv) = inventory(&[("a", &db, "tier: gold")]);
    let folder = PlanFolder::new(PLAN);
    let state = state_dir();
    let output = fleet_command(
        &folder.plan(),
        &inv,
        state.path(),
        &["--select", "teir=gold"],
    )
    .output()
    .expect("running plan");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--select teir=gold") && stderr.contains("`tier`"),
        "{stderr}"
    );
    assert!(stderr.contains("inventory.yaml"), "{stderr}");

    let output = fleet_command(
        &folder.plan(),
        &inv,
        state.path(),
        &["--select", "tier=silver"],
    )
    .output()
    .expect("running plan");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("`--select tier=silver` matches no target"),
        "{stderr}"
    );

    let bad = inv.with_file_name("bad.yaml");
    std::fs::write(
        &bad,
        "targets:\n  a:\n    database: a\n    labels:\n      Tier: gold\n",
    )
    .expect("writing");
    let output = fleet_command(&folder.plan(), &bad, state.path(), &["--all"])
        .output()
        .expect("running plan");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("bad.yaml:5"), "{stderr}");
    // Nothing ran.
    assert!(!state.path().join("runs").exists());
    assert_eq!(value(&db), "old");
}

#[test]
fn an_unreachable_target_fails_alone() {
    let cluster = shared_cluster();
    let db = seeded(cluster, "reach");
    let (_dir, inv) = inventory(&[("good", &db, "")]);
    // Port 1 on the loopback: nothing listens, the connection is refused.
    let mut text = std::fs::read_to_string(&inv).expect("the inventory");
    text.push_str(&format!(
        "  gone:\n    host: 127.0.0.1\n    port: 1\n    user: {}\n    database: gone\n",
        cluster.user()
    ));
    std::fs::write(&inv, text).expect("writing the inventory");
    let folder = PlanFolder::new(PLAN);
    let state = state_dir();
    let ran = run_fleet(
        &folder.plan(),
        &inv,
        state.path(),
        &["--target", "gone,good", "--var", "pause=0"],
    );
    assert_eq!(ran.code, Some(1), "{}\n{}", ran.summary, ran.stderr);
    assert_eq!(ran.outcome("good"), "succeeded");
    let gone = ran.targets()["gone"];
    assert_eq!(gone["verdict"], "failed", "{gone}");
    let cause = gone["cause"].as_str().unwrap_or_default();
    assert!(
        cause.contains("127.0.0.1") || cause.contains("connect"),
        "{gone}"
    );
    assert_eq!(value(&db), "new");
}

#[test]
fn shards_split_a_selection_between_machines() {
    // Targets nobody serves: each child fails at once, and what is
    // checked is which ones each shard picked.
    let mut text = String::from("targets:\n");
    let names: Vec<String> = (0..7).map(|i| format!("customer{i}")).collect();
    for name in &names {
        let _ = write!(
            text,
            "  {name}:\n    host: 127.0.0.1\n    port: 1\n    user: nobody\n    database: {name}\n"
        );
    }
    let dir = tempfile::tempdir().expect("a folder");
    let inv = dir.path().join("inventory.yaml");
    std::fs::write(&inv, text).expect("writing the inventory");
    let folder = PlanFolder::new(PLAN);
    let state = state_dir();
    let mut seen = Vec::new();
    for index in 0..3 {
        let shard = format!("{index}/3");
        let ran = run_fleet(
            &folder.plan(),
            &inv,
            state.path(),
            &[
                "--all",
                "--shard",
                &shard,
                "--jobs",
                "8",
                "--per-server",
                "8",
            ],
        );
        let picked: Vec<String> = ran.targets().keys().cloned().collect();
        let mut want = in_shard(&names, Shard { index, count: 3 });
        want.sort();
        assert_eq!(picked, want, "shard {shard}");
        let code = if picked.is_empty() { 0 } else { 1 };
        assert_eq!(ran.code, Some(code), "{}", ran.stderr);
        seen.extend(picked);
    }
    seen.sort();
    let mut all = names.clone();
    all.sort();
    assert_eq!(seen, all);
}

#[test]
fn one_target_commands_refuse_a_fleet() {
    let dir = tempfile::tempdir().expect("a folder");
    let inv = dir.path().join("inventory.yaml");
    std::fs::write(
        &inv,
        "targets:\n  a:\n    database: a\n  b:\n    database: b\n",
    )
    .expect("writing the inventory");
    for command in ["backups", "recover"] {
        let output = plan_process()
            .arg(command)
            .arg("--inventory")
            .arg(&inv)
            .arg("--all")
            .output()
            .expect("running plan");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{command}: {stderr}");
        assert!(stderr.contains("plan::one_target"), "{command}: {stderr}");
    }
    let folder = PlanFolder::new(PLAN);
    let output = plan_process()
        .arg("apply")
        .arg(folder.plan())
        .args(["-d", "acme", "--shard", "0/2"])
        .output()
        .expect("running plan");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("plan::fleet_without_inventory"), "{stderr}");
}

/// `--step-jobs`, `--per-server` and `--max-failures` would change nothing
/// on one target: refused before anything runs, naming the flag.
#[test]
fn fleet_flags_on_one_target_are_refused() {
    let cluster = shared_cluster();
    let db = seeded(cluster, "fleet_only");
    let (_dir, inv) = inventory(&[("one", &db, "")]);
    let folder = PlanFolder::new(PLAN);
    let state = state_dir();
    let before = fingerprint(&db);
    let host = cluster.host().to_string();
    let port = cluster.port().to_string();
    let user = cluster.user().to_string();
    let inv_text = inv.display().to_string();
    let by_inventory = ["--inventory", inv_text.as_str(), "--target", "one"];
    let by_name = ["-h", &host, "-p", &port, "-U", &user, "-d", &db.name];
    for flag in ["--step-jobs", "--per-server", "--max-failures"] {
        for target in [&by_inventory[..], &by_name[..]] {
            let output = plan_process()
                .arg("apply")
                .arg(folder.plan())
                .arg("--state-dir")
                .arg(state.path())
                .args(target)
                .args([flag, "2", "--var", "pause=0"])
                .output()
                .expect("running plan");
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(output.status.code(), Some(2), "{flag} {target:?}: {stderr}");
            assert!(stderr.contains("plan::fleet_only"), "{flag}: {stderr}");
            assert!(stderr.contains(flag), "{flag}: {stderr}");
        }
    }
    assert_eq!(fingerprint(&db), before);
    assert!(
        !state.path().join("runs").exists()
            || std::fs::read_dir(state.path().join("runs")).is_ok_and(|mut d| d.next().is_none()),
        "a refused run left a run folder"
    );
    // The same flags with a selection are a fleet's, and run.
    let ran = run_fleet(
        &folder.plan(),
        &inv,
        state.path(),
        &[
            "--all",
            "--step-jobs",
            "2",
            "--per-server",
            "2",
            "--max-failures",
            "1",
            "--var",
            "pause=0",
        ],
    );
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    assert_eq!(ran.outcome("one"), "succeeded");
}

/// A dry run in a fleet changes nothing and says, per target, what its
/// dry run found: `would_run` (exit 0) or `would_refuse` (exit 4, here a
/// database at another release).
#[test]
fn a_dry_run_says_which_targets_would_run() {
    let cluster = shared_cluster();
    let good = seeded(cluster, "dry_good");
    let old = seeded(cluster, "dry_wrongrel");
    let (_dir, inv) = inventory(&[("good", &good, ""), ("old", &old, "")]);
    let plan = PLAN.replace(
        "release_query = \"select '1.0'\"",
        "release_query = \"select case when current_database() like '%wrongrel%' then '0.9' else '1.0' end\"",
    );
    assert_ne!(plan, PLAN, "the release query was not replaced");
    let folder = PlanFolder::new(&plan);
    let state = state_dir();
    let before = [fingerprint(&good), fingerprint(&old)];
    let ran = run_fleet(
        &folder.plan(),
        &inv,
        state.path(),
        &["--all", "--dry-run", "--var", "pause=0"],
    );
    assert_eq!(ran.code, Some(1), "{}\n{}", ran.summary, ran.stderr);
    assert_eq!(ran.summary["dry_run"], true, "{}", ran.summary);
    assert_eq!(ran.outcome("good"), "would_run", "{}", ran.summary);
    assert_eq!(ran.targets()["good"]["verdict"], "done");
    assert_eq!(ran.outcome("old"), "would_refuse", "{}", ran.summary);
    let old_row = ran.targets()["old"];
    assert_eq!(old_row["verdict"], "refused");
    assert_eq!(old_row["exit_code"], 4);
    let log = std::fs::read_to_string(old_row["log"].as_str().expect("a log path"))
        .expect("the target's log");
    assert!(log.contains("WOULD REFUSE"), "{log}");
    assert_eq!(ran.summary["totals"]["done"], 1);
    assert_eq!(ran.summary["totals"]["refused"], 1);
    assert_eq!([fingerprint(&good), fingerprint(&old)], before);
    assert_eq!(value(&good), "old");
    // A dry run writes no run folder.
    assert!(
        std::fs::read_dir(state.path().join("runs")).map_or(true, |mut d| d.next().is_none()),
        "a dry run left a run folder"
    );
}

/// The figures of docs/performance.md, "Fleets": 50 small targets on two
/// clusters, `--jobs 1` then `--jobs 8 --per-server 4`. Not a check (a
/// timed test would fail on a busy machine): run it on purpose with
/// `cargo test --test it fleet::benchmark -- --ignored --nocapture`.
#[test]
#[ignore = "a benchmark: prints figures for docs/performance.md"]
fn benchmark_fifty_targets_on_two_clusters() {
    const PLAIN: &str = r#"plan "bench" {
  from = "1.0"
  to   = "2.0"
}

backup before {
  method = "snapshot"
}

sql change {
  after   = before
  sql     = "update t set v = 'new'"
  timeout = "1m"
}
"#;
    let (one, two) = (shared_cluster(), private_cluster());
    let dbs: Vec<TestDatabase> = (0..50)
        .map(|i| seeded(if i % 2 == 0 { one } else { two }, &format!("bench{i}")))
        .collect();
    let names: Vec<String> = (0..50).map(|i| format!("c{i:02}")).collect();
    let entries: Vec<(&str, &TestDatabase, &str)> = names
        .iter()
        .zip(&dbs)
        .map(|(n, db)| (n.as_str(), db, ""))
        .collect();
    let (_dir, inv) = inventory(&entries);
    let folder = PlanFolder::new(PLAIN);
    for args in [
        &["--jobs", "1"][..],
        &["--jobs", "8", "--per-server", "4"][..],
    ] {
        let state = state_dir();
        let mut all = vec!["--all", "--assume-release", "1.0"];
        all.extend_from_slice(args);
        let started = std::time::Instant::now();
        let ran = run_fleet(&folder.plan(), &inv, state.path(), &all);
        let wall = started.elapsed().as_secs_f64();
        assert_eq!(ran.code, Some(0), "{}", ran.stderr);
        let targets = ran.targets();
        let mut runs = 0.0;
        let mut steps = 0.0;
        for target in targets.values() {
            let report: Value = serde_json::from_slice(
                &std::fs::read(target["report"].as_str().expect("a report")).expect("report"),
            )
            .expect("JSON");
            let at = |k: &str| {
                humantime::parse_rfc3339(report[k].as_str().unwrap_or_default()).expect("a time")
            };
            runs += at("ended_at")
                .duration_since(at("started_at"))
                .expect("ends after it starts")
                .as_secs_f64();
            steps += report["steps"]
                .as_array()
                .expect("steps")
                .iter()
                .map(|s| s["seconds"].as_f64().unwrap_or(0.0))
                .sum::<f64>();
            steps += report["backups"]
                .as_array()
                .expect("backups")
                .iter()
                .map(|b| b["fingerprint_seconds"].as_f64().unwrap_or(0.0))
                .sum::<f64>();
        }
        let child: f64 = targets
            .values()
            .map(|t| t["seconds"].as_f64().unwrap_or(0.0))
            .sum();
        // One at a time, the fleet's own cost is the wall time its
        // children do not cover; with several at once it cannot be told.
        let fleet = if args[1] == "1" {
            format!(
                "; fleet beyond its children {:.0} ms",
                (wall - child) / 50.0 * 1000.0
            )
        } else {
            String::new()
        };
        println!(
            "fleet {args:?}: 50 targets in {wall:.2} s; per target: child process {:.0} ms, \
             its run (report start to end) {:.0} ms, its steps {:.0} ms{fleet}",
            child / 50.0 * 1000.0,
            runs / 50.0 * 1000.0,
            steps / 50.0 * 1000.0,
        );
    }
}

/// A fleet of chains: each target runs the folder's chain to `--to`, in
/// its own child `plan apply`; one whose second hop fails is rolled back
/// to its start alone.
#[test]
fn a_fleet_runs_a_chain_on_each_target() {
    let cluster = shared_cluster();
    let fine = seeded(cluster, "fleet_chain_fine");
    let doomed = seeded(cluster, "fleet_chain_doomed");
    let hop = |from: &str, to: &str, check: &str| {
        format!(
            r#"plan "hop {from}" {{
  from = "{from}"
  to   = "{to}"
}}

backup before {{
  method = "snapshot"
}}

sql change {{
  after   = before
  sql     = "update t set v = v || ' {to}'"
  timeout = "1m"
}}

check settled {{
  after  = change
  sql    = "{check}"
  expect = "1"
}}
"#
        )
    };
    let folder = PlanFolder::new("");
    std::fs::remove_file(folder.plan()).unwrap();
    std::fs::write(folder.path().join("a.plan"), hop("1.0", "1.5", "select 1")).unwrap();
    std::fs::write(
        folder.path().join("b.plan"),
        hop(
            "1.5",
            "2.0",
            "select count(*) from t where current_database() not like '%doomed%'",
        ),
    )
    .unwrap();
    let (_dir, inv) = inventory(&[("fine", &fine, "tier: a"), ("doomed", &doomed, "tier: a")]);
    let state = state_dir();
    let before = fingerprint(&doomed);
    let ran = run_fleet(
        folder.path(),
        &inv,
        state.path(),
        &["--to", "2.0", "--all", "--assume-release", "1.0"],
    );
    assert_eq!(ran.code, Some(1), "{}", ran.stderr);
    assert_eq!(ran.outcome("fine"), "succeeded", "{}", ran.stderr);
    assert_eq!(ran.outcome("doomed"), "rolled_back", "{}", ran.stderr);
    assert_eq!(value(&fine), "old 1.5 2.0");
    assert_eq!(
        fingerprint(&doomed),
        before,
        "the doomed chain is back at its start"
    );
    let hops: Vec<_> = history(&fine).into_iter().map(|r| r.to_release).collect();
    assert_eq!(hops, ["1.5", "2.0"]);
}
