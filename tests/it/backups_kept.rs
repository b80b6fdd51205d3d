//! `plan backups` lists and prunes the failed copies a rolled-back run
//! kept with `--keep-failed` (`<db>_failed_<run id>` and
//! `.<name>.failed-<run id>`), as their run folder's report names them;
//! a database merely named like one is never touched.

use std::path::PathBuf;

use serde_json::Value;

use crate::support::apply::{TREE, World, fingerprint, read_tree, snapshot_plan_with};
use crate::support::{self, TestDatabase};

/// A plan whose check fails after a snapshot of the database and a copy
/// of the tree: the run rolls back.
fn failing_plan(world: &World) -> PathBuf {
    world.write_plan(&snapshot_plan_with(
        "fails",
        "keep   = false",
        "\ncheck wrong {\n  after  = before\n  sql    = \"select 1\"\n  expect = \"2\"\n}\n",
        "true",
    ))
}

fn database_exists(db: &TestDatabase, name: &str) -> bool {
    db.cluster
        .connect("postgres")
        .expect("connect to postgres")
        .query_one(
            "select exists (select 1 from pg_database where datname = $1)",
            &[&name],
        )
        .expect("read pg_database")
        .get(0)
}

/// `plan backups` on the world's database with `extra`: exit code and
/// stdout, stderr.
fn backups(world: &World, extra: &[&str]) -> (Option<i32>, String, String) {
    let output = support::plan_command(world.db.cluster)
        .args(["backups", "--database", &world.db.name, "--state-dir"])
        .arg(world.state.path())
        .args(extra)
        .output()
        .expect("plan backups runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn json(world: &World, extra: &[&str]) -> Value {
    let mut args = vec!["--format", "json"];
    args.extend_from_slice(extra);
    let (code, out, err) = backups(world, &args);
    assert_eq!(code, Some(0), "{out}\n{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"))
}

#[test]
fn failed_copies_are_listed_and_pruned_and_a_forged_one_is_left() {
    let world = World::new("kept_failed");
    let plan = failing_plan(&world);
    let applied = world.apply(&plan, &["--keep-failed"]);
    applied.assert_code(1);
    let run_id = applied.run_id().to_string();
    assert_eq!(
        applied.report()["rollback"]["proved"],
        true,
        "{}",
        applied.output()
    );
    let failed_db = format!("{}_failed_{run_id}", world.db.name);
    let failed_tree = world.path(&format!(".{TREE}.failed-{run_id}"));
    assert!(
        database_exists(&world.db, &failed_db),
        "{}",
        applied.output()
    );
    assert!(failed_tree.is_dir(), "{}", applied.output());

    // Named like a failed copy, but no run folder of ours names it.
    let forged = format!("{}_failed_2401010000000000", world.db.name);
    world
        .db
        .cluster
        .connect("postgres")
        .expect("connect")
        .batch_execute(&format!("create database \"{forged}\""))
        .expect("create the forged database");

    let db_before = fingerprint(&world.db);
    let tree_before = read_tree(&world.tree());

    let listed = json(&world, &[]);
    let list = listed["backups"].as_array().expect("a list of backups");
    let find = |kind: &str| {
        list.iter()
            .find(|b| b["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} in {listed:#}"))
    };
    let db_entry = find("failed_database");
    assert_eq!(db_entry["name"], failed_db.as_str());
    assert_eq!(db_entry["run_id"], run_id.as_str());
    assert!(db_entry["bytes"].as_u64().unwrap_or(0) > 0, "{listed:#}");
    assert!(db_entry["age_s"].as_u64().is_some(), "{listed:#}");
    let tree_entry = find("failed_tree");
    assert_eq!(
        tree_entry["name"],
        failed_tree.display().to_string().as_str()
    );
    assert_eq!(tree_entry["run_id"], run_id.as_str());
    assert!(tree_entry["bytes"].as_u64().unwrap_or(0) > 0, "{listed:#}");
    assert!(tree_entry["age_s"].as_u64().is_some(), "{listed:#}");
    assert!(
        !list.iter().any(|b| b["name"] == forged.as_str()),
        "the forged database is listed: {listed:#}"
    );

    let (code, human, err) = backups(&world, &[]);
    assert_eq!(code, Some(0), "{human}\n{err}");
    assert!(
        human.contains(&format!("failed database {failed_db}")),
        "{human}"
    );
    assert!(human.contains("failed tree "), "{human}");
    assert!(human.contains(" old"), "{human}");

    let pruned = json(&world, &["--prune", "--keep", "0"]);
    let removed: Vec<&str> = pruned["pruned"]
        .as_array()
        .expect("what was pruned")
        .iter()
        .filter(|r| r["outcome"] == "removed")
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert!(removed.contains(&failed_db.as_str()), "{pruned:#}");
    assert!(
        removed.contains(&failed_tree.display().to_string().as_str()),
        "{pruned:#}"
    );
    assert_eq!(pruned["backups"], Value::Array(Vec::new()), "{pruned:#}");
    assert!(
        !database_exists(&world.db, &failed_db),
        "still in pg_database"
    );
    assert!(!failed_tree.exists(), "the failed tree is still on disk");
    assert!(
        database_exists(&world.db, &forged),
        "the forged database was dropped"
    );
    assert!(database_exists(&world.db, &world.db.name));
    assert_eq!(fingerprint(&world.db), db_before, "the target changed");
    assert_eq!(read_tree(&world.tree()), tree_before, "the tree changed");
}

/// Failed copies count in the same `--keep N` as the backups: the newest
/// N copies of the target, whatever their kind, stay.
#[test]
fn keep_counts_failed_copies_with_the_backups() {
    let world = World::new("kept_failed_n");
    let plan = failing_plan(&world);
    let applied = world.apply(&plan, &["--keep-failed"]);
    applied.assert_code(1);
    let run_id = applied.run_id().to_string();
    let pruned = json(&world, &["--prune", "--keep", "1"]);
    let kept = pruned["backups"].as_array().expect("the kept list");
    assert_eq!(kept.len(), 1, "{pruned:#}");
    assert_eq!(kept[0]["run_id"], run_id.as_str(), "{pruned:#}");
    let removed = pruned["pruned"].as_array().expect("what was pruned");
    assert_eq!(removed.len(), 1, "{pruned:#}");
    assert_eq!(removed[0]["outcome"], "removed", "{pruned:#}");
    let gone = removed[0]["name"].as_str().unwrap_or_default().to_string();
    let left = kept[0]["name"].as_str().unwrap_or_default().to_string();
    let exists = |name: &str| {
        if name.starts_with('/') {
            std::path::Path::new(name).exists()
        } else {
            database_exists(&world.db, name)
        }
    };
    assert!(!exists(&gone), "{gone} is still there");
    assert!(exists(&left), "{left} was removed");
}

/// `plan apply` says how to prune once more than 3 copies of its target
/// are kept, and not before: each failed run here keeps two (a database
/// and a tree).
#[test]
fn apply_hints_at_pruning_once_more_than_three_copies_are_kept() {
    let world = World::new("kept_failed_hint");
    let plan = failing_plan(&world);
    let first = world.apply(&plan, &["--keep-failed"]);
    first.assert_code(1);
    assert!(!first.stderr.contains("--prune"), "{}", first.output());
    let second = world.apply(&plan, &["--keep-failed"]);
    second.assert_code(1);
    assert!(
        second
            .stderr
            .contains(&format!("note: 4 copies of `{}` are kept", world.db.name)),
        "{}",
        second.output()
    );
    assert!(
        second.stderr.contains("`plan backups --prune --keep 3`"),
        "{}",
        second.output()
    );
    // The hint changed nothing: all four copies are still listed.
    let listed = json(&world, &[]);
    assert_eq!(
        listed["backups"].as_array().map(Vec::len),
        Some(4),
        "{listed:#}"
    );
}
