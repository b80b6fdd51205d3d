//! `plan status` and `plan backups` against the shared test cluster, after
//! real `plan apply` runs of small plans written into a temporary folder.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;

use crate::support::{TestDatabase, database, shared_cluster};

/// The built `plan`, pointed at the test cluster by libpq's variables
/// only.
fn plan() -> Command {
    Command::from_std(crate::support::plan_command(shared_cluster()))
}

/// A plan from `from` to `to`: a backup, then a change of data.
fn write_plan(dir: &Path, from: &str, to: &str, backup: &str) -> PathBuf {
    let path = dir.join(format!("{from}-{to}.plan"));
    let text = format!(
        r#"plan "chain {from} to {to}" {{
  from          = "{from}"
  to            = "{to}"
  release_query = "select '1.0'"
}}

backup before {{
{backup}
}}

sql bump {{
  after = before
  sql   = "create table if not exists bumps (release text); insert into bumps values ('{to}')"
}}
"#
    );
    std::fs::write(&path, text).expect("the plan is written");
    path
}

const SNAPSHOT: &str = "  method = \"snapshot\"\n  keep   = true";

fn run_ids(state: &Path) -> BTreeSet<String> {
    std::fs::read_dir(state.join("runs"))
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Applies `plan_file` to `db`; returns the new run's id.
fn apply(db: &TestDatabase, plan_file: &Path, state: &Path) -> String {
    let before = run_ids(state);
    let output = plan()
        .arg("apply")
        .arg(plan_file)
        .args(["--database", &db.name, "--state-dir"])
        .arg(state)
        .output()
        .expect("plan apply runs");
    assert_eq!(
        output.status.code(),
        Some(0),
        "plan apply failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let new: Vec<String> = run_ids(state).difference(&before).cloned().collect();
    assert_eq!(new.len(), 1, "one new run folder: {new:?}");
    new[0].clone()
}

/// Runs `plan COMMAND --database DB --state-dir STATE ARGS` and returns
/// (exit code, stdout, stderr).
fn query(command: &str, db: &str, state: &Path, args: &[&str]) -> (i32, String, String) {
    let output = plan()
        .arg(command)
        .args(["--database", db, "--state-dir"])
        .arg(state)
        .args(args)
        .output()
        .expect("plan runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn json(command: &str, db: &str, state: &Path, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--format", "json"]);
    let (code, out, err) = query(command, db, state, &all);
    assert_eq!(code, 0, "plan {command} failed:\n{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}"))
}

fn database_exists(name: &str) -> bool {
    let mut client = shared_cluster()
        .connect("postgres")
        .expect("the maintenance database");
    client
        .query_one(
            "select exists (select 1 from pg_database where datname = $1)",
            &[&name],
        )
        .expect("pg_database is readable")
        .get(0)
}

fn names(doc: &Value) -> Vec<String> {
    doc["backups"]
        .as_array()
        .expect("a backups array")
        .iter()
        .map(|b| b["name"].as_str().expect("a name").to_string())
        .collect()
}

#[test]
fn status_shows_the_release_the_run_and_the_kept_snapshot() {
    let db = database("status_release");
    let dir = tempfile::tempdir().expect("a temporary folder");
    let state = dir.path().join("state");

    let (code, out, err) = query("status", &db.name, &state, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("no plan-runner history"), "{out}");
    assert!(out.contains("no backups kept"), "{out}");

    let plan_file = write_plan(dir.path(), "1.0", "2.0", SNAPSHOT);
    let run_id = apply(&db, &plan_file, &state);

    let (code, out, err) = query("status", &db.name, &state, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("release: 2.0"), "{out}");
    assert!(out.contains(&run_id), "{out}");
    assert!(out.contains("chain 1.0 to 2.0"), "{out}");
    assert!(out.contains("1.0 -> 2.0"), "{out}");
    assert!(out.contains("unfinished runs: none"), "{out}");

    let doc = json("status", &db.name, &state, &[]);
    assert_eq!(doc["format_version"], 1);
    assert_eq!(doc["release"], "2.0");
    assert_eq!(doc["runs"][0]["run_id"], run_id.as_str());
    assert_eq!(doc["runs"][0]["outcome"], "succeeded");
    assert!(doc["runs"][0]["seconds"].as_f64().is_some_and(|s| s >= 0.0));
    assert_eq!(doc["unfinished"].as_array().map(Vec::len), Some(0));

    let snapshot = format!("{}_pr_{run_id}", db.name);
    assert!(database_exists(&snapshot));
    assert_eq!(names(&doc), vec![snapshot.clone()]);
    let (code, out, err) = query("backups", &db.name, &state, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("snapshot {snapshot}")), "{out}");
    assert!(out.contains("plan \"chain 1.0 to 2.0\""), "{out}");
    let doc = json("backups", &db.name, &state, &[]);
    let b = &doc["backups"][0];
    assert_eq!(b["method"], "snapshot");
    assert_eq!(b["run_id"], run_id.as_str());
    assert_eq!(b["step"], "before");
    assert_eq!(b["plan"], "chain 1.0 to 2.0");
    assert!(b["bytes"].as_u64().is_some_and(|n| n > 0), "{b}");
    assert!(doc.get("pruned").is_none());
}

#[test]
fn prune_keeps_the_newest_and_drops_the_others() {
    let db = database("status_prune");
    let dir = tempfile::tempdir().expect("a temporary folder");
    let state = dir.path().join("state");
    let mut ids = Vec::new();
    for (from, to) in [("1.0", "2.0"), ("2.0", "3.0"), ("3.0", "4.0")] {
        let plan_file = write_plan(dir.path(), from, to, SNAPSHOT);
        ids.push(apply(&db, &plan_file, &state));
    }
    let snapshots: Vec<String> = ids
        .iter()
        .map(|id| format!("{}_pr_{id}", db.name))
        .collect();
    let newest_first: Vec<String> = snapshots.iter().rev().cloned().collect();
    assert_eq!(names(&json("backups", &db.name, &state, &[])), newest_first);

    let (code, out, err) = query("backups", &db.name, &state, &["--prune", "--keep", "1"]);
    assert_eq!(code, 0, "{err}");
    for gone in &snapshots[..2] {
        assert!(out.contains(&format!("removed snapshot {gone}")), "{out}");
        assert!(!database_exists(gone), "{gone} is still there");
    }
    assert!(database_exists(&snapshots[2]));
    let doc = json("backups", &db.name, &state, &[]);
    assert_eq!(names(&doc), [snapshots[2].clone()]);
    assert_eq!(json("status", &db.name, &state, &[])["release"], "4.0");

    // Nothing left beyond the one kept: a second prune removes nothing.
    let doc = json("backups", &db.name, &state, &["--prune", "--keep", "1"]);
    assert_eq!(doc["pruned"].as_array().map(Vec::len), Some(0));
    assert_eq!(names(&doc), [snapshots[2].clone()]);
}

#[test]
fn a_backup_of_an_unfinished_run_is_never_pruned() {
    let db = database("status_unfinished");
    let dir = tempfile::tempdir().expect("a temporary folder");
    let state = dir.path().join("state");
    let plan_file = write_plan(dir.path(), "1.0", "2.0", SNAPSHOT);
    let run_id = apply(&db, &plan_file, &state);
    let snapshot = format!("{}_pr_{run_id}", db.name);
    // As if its runner had died mid-run: the row was never closed.
    let mut maintenance = shared_cluster().connect("postgres").expect("postgres");
    maintenance
        .execute(
            "update plan_runner.runs set state = 'running', ended_at = null where run_id = $1",
            &[&run_id],
        )
        .expect("the run's row is updated");

    let doc = json("backups", &db.name, &state, &["--prune", "--keep", "0"]);
    assert_eq!(doc["pruned"][0]["outcome"], "in_use", "{doc}");
    assert!(database_exists(&snapshot));
    assert_eq!(names(&doc), vec![snapshot.clone()]);
    assert_eq!(doc["backups"][0]["in_use"], true);

    let status = json("status", &db.name, &state, &[]);
    assert_eq!(status["unfinished"][0]["run_id"], run_id.as_str());
    assert_eq!(status["unfinished"][0]["lock_held"], false);
    let (_, out, _) = query("status", &db.name, &state, &[]);
    assert!(out.contains("its runner has died"), "{out}");
}

#[test]
fn a_kept_dump_and_its_files_are_listed_and_pruned() {
    let db = database("status_dump");
    let dir = tempfile::tempdir().expect("a temporary folder");
    let state = dir.path().join("state");
    std::fs::create_dir_all(dir.path().join("files/sub")).expect("a tree");
    std::fs::write(dir.path().join("files/sub/a.bin"), vec![7u8; 4096]).expect("a file");
    let backup = "  method = \"dump\"\n  paths  = [\"files\"]\n  keep   = true";
    let plan_file = write_plan(dir.path(), "1.0", "2.0", backup);
    let run_id = apply(&db, &plan_file, &state);

    let dump = state.join("runs").join(&run_id).join("dump-before");
    let files_copy = dir.path().join(format!(".files.pr-{run_id}"));
    assert!(dump.is_dir() && files_copy.is_dir());
    let doc = json("backups", &db.name, &state, &[]);
    let b = &doc["backups"][0];
    assert_eq!(b["method"], "dump", "{doc}");
    assert_eq!(b["run_id"], run_id.as_str());
    assert_eq!(b["plan"], "chain 1.0 to 2.0");
    assert!(b["bytes"].as_u64().is_some_and(|n| n > 0), "{b}");
    let listed = PathBuf::from(b["name"].as_str().expect("a name"));
    assert_eq!(
        listed.canonicalize().expect("the dump exists"),
        dump.canonicalize().expect("the dump exists")
    );
    let copies: Vec<PathBuf> = b["paths"]
        .as_array()
        .expect("paths")
        .iter()
        .map(|p| PathBuf::from(p["path"].as_str().expect("a path")))
        .collect();
    assert_eq!(copies.len(), 1);
    assert!(
        b["paths"][0]["bytes"].as_u64().is_some_and(|n| n >= 4096),
        "{b}"
    );
    assert_eq!(
        copies[0].canonicalize().expect("the copy exists"),
        files_copy.canonicalize().expect("the copy exists")
    );

    let (code, out, err) = query("backups", &db.name, &state, &["--prune", "--keep", "0"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("removed dump"), "{out}");
    assert!(!dump.exists(), "the dump folder is still there");
    assert!(!files_copy.exists(), "the copy of the files is still there");
    assert!(
        dir.path().join("files/sub/a.bin").is_file(),
        "the original files are kept"
    );
    assert_eq!(names(&json("backups", &db.name, &state, &[])).len(), 0);
}

#[test]
fn prune_needs_keep_and_keep_needs_prune() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    for args in [&["--prune"][..], &["--keep", "1"][..]] {
        let (code, _, err) = query("backups", "nothing_here", dir.path(), args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains("--keep") || err.contains("--prune"), "{err}");
    }
}

#[test]
fn a_server_or_database_that_cannot_be_reached_is_a_usage_error() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let (code, _, err) = query("status", "no_such_database_here", dir.path(), &[]);
    assert_eq!(code, 2, "{err}");
    // The target (database, host, port, user) and the cause, as libpq
    // words it (the diagnostic wraps its lines: compare the words).
    let words = err
        .split_whitespace()
        .filter(|w| *w != "│")
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        words.contains("cannot connect to `no_such_database_here` on "),
        "{err}"
    );
    assert!(words.contains(" as `"), "{err}");
    assert!(
        words.contains("database \"no_such_database_here\" does not exist"),
        "{err}"
    );

    // A port nobody listens on (taken, then freed).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    for command in ["status", "backups"] {
        let output = plan()
            .env("PGHOST", "127.0.0.1")
            .env("PGPORT", port.to_string())
            .args([command, "--database", "x", "--state-dir"])
            .arg(dir.path())
            .output()
            .expect("plan runs");
        let err = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{command}: {err}");
        let words = err
            .split_whitespace()
            .filter(|w| *w != "│")
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            words.contains(&format!("on 127.0.0.1:{port} as `")),
            "{command}: {err}"
        );
        assert!(words.contains("Connection refused"), "{command}: {err}");
    }
}

/// A plan that backs up the database and `files` twice, then fails.
fn write_failing_plan(dir: &Path, keep: bool) -> PathBuf {
    let path = dir.join("twice.plan");
    let text = format!(
        r#"plan "twice 1.0 to 2.0" {{
  from          = "1.0"
  to            = "2.0"
  release_query = "select '1.0'"
}}

backup first {{
  paths = ["files"]
  keep  = {keep}
}}

sql change {{
  after = first
  sql   = "create table changed (x int)"
}}

backup second {{
  after = change
  paths = ["files"]
  keep  = {keep}
}}

sql boom {{
  after = second
  sql   = "select 1 / 0"
}}
"#
    );
    std::fs::write(&path, text).expect("the plan is written");
    path
}

/// The hidden copies of `files` left in `dir`.
fn file_copies(dir: &Path) -> Vec<String> {
    let mut found: Vec<String> = std::fs::read_dir(dir)
        .expect("the folder is readable")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".files."))
        .collect();
    found.sort();
    found
}

#[test]
fn a_rolled_back_run_leaves_only_its_kept_later_backup() {
    for keep in [false, true] {
        let db = database(&format!("status_rolled_back_{keep}"));
        let dir = tempfile::tempdir().expect("a temporary folder");
        let state = dir.path().join("state");
        std::fs::create_dir_all(dir.path().join("files")).expect("a tree");
        std::fs::write(dir.path().join("files/a"), b"original").expect("a file");
        let before = run_ids(&state);
        let output = plan()
            .arg("apply")
            .arg(write_failing_plan(dir.path(), keep))
            .args(["--database", &db.name, "--state-dir"])
            .arg(&state)
            .output()
            .expect("plan apply runs");
        let err = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "keep = {keep}:\n{err}");
        assert!(err.contains("fingerprints equal"), "{err}");
        let run_id = run_ids(&state)
            .difference(&before)
            .next()
            .cloned()
            .expect("a run folder");

        let doc = json("backups", &db.name, &state, &[]);
        if keep {
            // The first backup became the database again; the second stays,
            // with a copy of the files of its own.
            let second = format!("{}_pr2_{run_id}", db.name);
            assert_eq!(names(&doc), vec![second], "{doc}");
            assert_eq!(doc["backups"][0]["step"], "second", "{doc}");
            assert_eq!(file_copies(dir.path()), [format!(".files.pr2-{run_id}")]);
            let copy = PathBuf::from(
                doc["backups"][0]["paths"][0]["path"]
                    .as_str()
                    .expect("a path"),
            );
            assert_eq!(
                std::fs::read(copy.join("a")).expect("the copy"),
                b"original"
            );
        } else {
            assert_eq!(names(&doc), Vec::<String>::new());
            assert_eq!(file_copies(dir.path()), Vec::<String>::new());
        }
        assert_eq!(
            std::fs::read(dir.path().join("files/a")).expect("the files"),
            b"original"
        );
        let status = json("status", &db.name, &state, &[]);
        assert_eq!(status["release"], Value::Null);
        assert_eq!(status["runs"][0]["outcome"], "rolled_back");
    }
}
