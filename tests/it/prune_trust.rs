//! `plan backups --prune` acts only on what its own state says: a state
//! folder, run folder or backup record that another user owns or may write
//! makes it refuse (exit 4, naming it) before it removes anything; and a
//! database comment or a `plan_runner.runs` row, which anyone who may
//! write to the server can forge, never makes it drop a database or remove
//! a folder that no run folder of its own records.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Uid, User, chown};

use crate::support::apply::{TREE, World, fingerprint, run_folders, snapshot_plan_with};
use crate::support::{self, TestDatabase};

/// A plan that succeeds and keeps its snapshot and the copy of the tree.
fn kept_plan(world: &World) -> PathBuf {
    world.write_plan(&snapshot_plan_with(
        "kept",
        "keep   = true",
        "\ncheck settled {\n  after  = before\n  sql    = \"select 1\"\n  expect = \"1\"\n}\n",
        "true",
    ))
}

/// Applies the plan and returns the kept snapshot's name, the copy of the
/// tree and the run folder.
fn keep_a_backup(world: &World) -> (String, PathBuf, PathBuf) {
    let plan = kept_plan(world);
    let applied = world.apply(&plan, &[]);
    applied.assert_code(0);
    let run_id = applied.run_id().to_string();
    let snapshot = format!("{}_pr_{run_id}", world.db.name);
    let copy = world.path(&format!(".{TREE}.pr-{run_id}"));
    assert!(
        database_exists(&world.db, &snapshot),
        "{}",
        applied.output()
    );
    assert!(copy.is_dir(), "{}", applied.output());
    let folder = applied.run_folder.clone().expect("a run folder");
    (snapshot, copy, folder)
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

/// `plan backups --prune --keep 0` on the world's database: exit code,
/// stdout, stderr.
fn prune(world: &World) -> (Option<i32>, String, String) {
    let output = support::plan_command(world.db.cluster)
        .args(["backups", "--database", &world.db.name, "--state-dir"])
        .arg(world.state.path())
        .args(["--prune", "--keep", "0"])
        .output()
        .expect("plan backups runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn other_user() -> User {
    User::from_name("plan-runner-pg")
        .expect("read the user database")
        .expect("the cluster's server account `plan-runner-pg`")
}

/// Prune refuses, naming `named`, and the backup is untouched.
fn assert_refused(world: &World, named: &Path, why: &str, snapshot: &str, copy: &Path) {
    let (code, out, err) = prune(world);
    assert_eq!(code, Some(4), "{out}\n{err}");
    assert!(err.contains(&named.display().to_string()), "{err}");
    assert!(err.contains(why), "{err}");
    assert!(err.contains("nothing was pruned"), "{err}");
    assert!(!out.contains("removed"), "{out}");
    assert!(
        database_exists(&world.db, snapshot),
        "the snapshot was dropped"
    );
    assert!(copy.is_dir(), "the copy of the tree was removed");
}

#[test]
fn an_untrusted_run_folder_or_record_makes_prune_refuse_and_remove_nothing() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test gives a run folder to another user: run the tests as root (CI does)"
    );
    let world = World::new("prune_untrusted");
    let (snapshot, copy, folder) = keep_a_backup(&world);
    let record = folder.join("backup-before.json");
    assert!(record.is_file());
    let set_mode = |path: &Path, mode: u32| {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
    };

    set_mode(&folder, 0o770);
    assert_refused(
        &world,
        &folder,
        "group or others may write",
        &snapshot,
        &copy,
    );
    set_mode(&folder, 0o700);

    let other = other_user();
    chown(&folder, Some(other.uid), Some(other.gid)).expect("chown");
    assert_refused(&world, &folder, "owned by uid", &snapshot, &copy);
    chown(&folder, Some(Uid::from_raw(0)), Some(Gid::from_raw(0))).expect("chown");

    set_mode(&record, 0o666);
    assert_refused(
        &world,
        &record,
        "group or others may write",
        &snapshot,
        &copy,
    );
    set_mode(&record, 0o600);

    // With the state its user's alone again, the same prune removes both.
    let (code, out, err) = prune(&world);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(
        out.contains(&format!("removed snapshot {snapshot}")),
        "{out}"
    );
    assert!(!database_exists(&world.db, &snapshot));
    assert!(!copy.exists());
}

#[test]
fn a_forged_comment_and_runs_row_never_make_prune_drop_a_database_or_a_folder() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test writes a folder as another user: run the tests as root (CI does)"
    );
    let world = World::new("prune_forged");
    let (snapshot, copy, folder) = keep_a_backup(&world);
    let real_record: serde_json::Value =
        serde_json::from_slice(&fs::read(folder.join("backup-before.json")).expect("read"))
            .expect("a record is JSON");

    // `victim`: a database that is no backup, and a folder that is no copy,
    // with everything a forger can write pointing at them: the database's
    // comment as a kept snapshot's label, a runs row, and a run folder
    // outside the state folder whose record names both.
    let victim = format!("{}_victim", world.db.name);
    let precious = world.path("precious");
    fs::create_dir_all(&precious).expect("mkdir");
    fs::write(precious.join("data"), "keep me").expect("write");
    let forged_run = "991231235959beef";
    let forged_folder = tempfile::tempdir().expect("a folder");
    let mut forged_record = real_record.clone();
    forged_record["copy"] = victim.clone().into();
    forged_record["trees"][0]["copy"] = precious.display().to_string().into();
    fs::write(
        forged_folder.path().join("backup-before.json"),
        serde_json::to_vec(&forged_record).expect("JSON"),
    )
    .expect("write");
    let mut admin = world.db.cluster.connect("postgres").expect("connect");
    admin
        .batch_execute(&format!("create database \"{victim}\""))
        .expect("create the victim");
    let label = format!(
        "plan-runner backup of {}: run {forged_run}, plan \"forged\", target x, taken 2099-12-31T23:59:59.000Z",
        serde_json::Value::String(world.db.name.clone())
    );
    admin
        .execute(
            "select set_config('plan_runner_test.label', $1, false)",
            &[&label],
        )
        .expect("set the label");
    admin
        .batch_execute(&format!(
            "do $$ begin execute format('comment on database %I is %L', '{victim}', current_setting('plan_runner_test.label')); end $$"
        ))
        .expect("comment on the victim");
    admin
        .execute(
            "insert into plan_runner.runs (run_id, target, host, pid, plan, plan_sha256, state, ended_at, run_folder)
             values ($1, $2, 'elsewhere', 1, 'forged.plan', '', 'succeeded', now(), $3)",
            &[
                &forged_run,
                &world.db.name,
                &forged_folder.path().display().to_string(),
            ],
        )
        .expect("insert the forged row");
    let db_before = fingerprint(&world.db);

    let (code, out, err) = prune(&world);

    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(database_exists(&world.db, &victim), "{out}\n{err}");
    assert!(
        out.contains(&format!("left snapshot {victim}")) && out.contains("records it"),
        "{out}"
    );
    assert_eq!(
        fs::read_to_string(precious.join("data")).expect("the folder is still there"),
        "keep me"
    );
    // The real kept backup, which its run folder records, is removed.
    assert!(
        out.contains(&format!("removed snapshot {snapshot}")),
        "{out}"
    );
    assert!(!database_exists(&world.db, &snapshot));
    assert!(!copy.exists());
    assert_eq!(fingerprint(&world.db), db_before);
    assert_eq!(run_folders(world.state.path()).len(), 1);
}
