//! kill -9 of the runner at every kind of moment: during each step kind,
//! during the backup itself, during the rollback. Whatever the moment,
//! `plan recover` leaves the target as it was before the run (exit 0) or
//! says what it found (exit 3); nothing of the dead run keeps running, and
//! the original data or its backup always exists.
//!
//! The kill lands where the machine's load puts it: the tests assert what
//! must hold at every moment, never that a moment was hit.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Output};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use plan_runner::db::fingerprint;
use plan_runner::exec::journal::{self, Record};

use crate::crash::{Setup, signal, stderr};
use crate::support::apply::read_tree;
use crate::support::process_running;

/// Everything after the backup; `SLOW` is the step the runner dies in.
const PLAN: &str = r#"plan "kill kinds" {
  from = "1.0"
  to   = "2.0"
}

backup before {
  method = "METHOD"
  PATHS
}

sql change {
  after = before
  sql   = "create table changed (x int); insert into changed values (1); update t set v = 'changed'"
}

SLOW

on_failure {
  script mark {
    run = "touch on_failure_ran"
  }
}
"#;

fn plan(method: &str, paths: bool, slow: &str) -> String {
    PLAN.replace("METHOD", method)
        .replace("PATHS", if paths { "paths  = [\"files\"]" } else { "" })
        .replace("SLOW", slow)
}

/// A step script that changes data, then waits on a child of its group:
/// the leader and the child are what a recovery must end.
fn write_slow_script(setup: &Setup) {
    let psql = setup.db.cluster.bin("psql");
    let steps = setup.plan_dir.path().join("steps");
    fs::create_dir_all(&steps).unwrap();
    let script = format!(
        r#"#!/bin/sh
set -eu
"{psql}" -X -q -v ON_ERROR_STOP=1 -c "create table touched_by_$1 (x int); update t set v = 'touched by $1'"
sleep 300 &
printf 'started\n' > "started.$1"
wait
"#,
        psql = psql.display()
    );
    let path = steps.join("slow.sh");
    fs::write(&path, script).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// The slow step of each kind, and whether its runner is seen working on
/// the server (a statement) rather than in a process.
fn slow_step(kind: &str, psql: &Path) -> (String, bool) {
    let command = |k: &str| format!("sh steps/slow.sh {k}");
    let step = match kind {
        "script_run" => format!(
            "script slow {{\n  after = change\n  run = \"{}\"\n  timeout = \"10m\"\n}}",
            command(kind)
        ),
        // A shell that stays the group's leader while its child sleeps.
        "script_shell" => format!(
            "script slow {{\n  after = change\n  shell = \"'{}' -X -q -v ON_ERROR_STOP=1 -c 'create table touched_by_shell (x int)' && touch started.{kind} && sleep 300; echo done\"\n  timeout = \"10m\"\n}}",
            psql.display()
        ),
        // One transaction: its own change is undone with the connection;
        // the earlier `change` is what the restore must undo.
        "sql" => "sql slow {\n  after = change\n  sql = \"create table touched_by_sql (x int); select pg_sleep(300)\"\n  timeout = \"10m\"\n}".into(),
        "update" => format!(
            "update slow {{\n  after = change\n  modules = \"all\"\n  run = \"{}\"\n  timeout = \"10m\"\n}}",
            command(kind)
        ),
        "check_run" => format!(
            "check slow {{\n  after = change\n  run = \"{}\"\n  timeout = \"10m\"\n}}",
            command(kind)
        ),
        "check_sql" => "check slow {\n  after = change\n  sql = \"select pg_sleep(300)::text\"\n  expect = \"never\"\n  timeout = \"10m\"\n}".into(),
        "stop" | "start" => format!(
            "{kind} slow {{\n  after = change\n  run = \"{}\"\n  timeout = \"10m\"\n}}",
            command(kind)
        ),
        other => panic!("no kind `{other}`"),
    };
    (step, matches!(kind, "sql" | "check_sql"))
}

fn run_id(folder: &Path) -> String {
    folder.file_name().unwrap().to_string_lossy().into_owned()
}

fn records(setup: &Setup) -> Vec<Record> {
    setup
        .run_folder()
        .map(|f| {
            journal::read(&f)
                .unwrap()
                .entries
                .into_iter()
                .map(|e| e.record)
                .collect()
        })
        .unwrap_or_default()
}

/// Polls until `ready` says so; fails the test if the runner ends first.
fn wait_until(runner: &mut Child, what: &str, mut ready: impl FnMut() -> bool) {
    crate::support::wait_for(runner, what, || ready().then_some(()));
}

/// The server sessions of run `run_id` that are still there.
fn sessions_of(setup: &Setup, run_id: &str, query_like: &str) -> i64 {
    setup
        .db
        .cluster
        .connect("postgres")
        .unwrap()
        .query_one(
            "select count(*) from pg_stat_activity where application_name = $1 and query like $2",
            &[&format!("plan-runner/{run_id}"), &query_like],
        )
        .unwrap()
        .get(0)
}

/// Waits (bounded) until `gone` holds; the dead run's processes and
/// sessions end asynchronously after the signal.
fn eventually(mut gone: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if gone() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn group_gone(pgid: u32) -> bool {
    killpg(Pid::from_raw(i32::try_from(pgid).unwrap()), None) == Err(Errno::ESRCH)
}

/// Live processes whose arguments mention `needle` (the run id is in the
/// name of every copy pg_dump, pg_restore and cp work on).
fn processes_mentioning(needle: &str) -> Vec<(u32, String)> {
    let own = std::process::id();
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != own && process_running(pid))
        .filter_map(|pid| {
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            text.contains(needle).then_some((pid, text))
        })
        .collect()
}

fn kill_9_during(kind: &str) {
    let probe = crate::support::shared_cluster().bin("psql");
    let (slow, on_server) = slow_step(kind, &probe);
    let setup = Setup::new(&format!("k9_{kind}"), &plan("snapshot", false, &slow));
    write_slow_script(&setup);
    let before = setup.fingerprint();
    let mut runner = setup.spawn_apply();
    let started = setup.plan_dir.path().join(format!("started.{kind}"));
    if on_server {
        wait_until(&mut runner, "the statement running", || {
            setup
                .run_folder()
                .is_some_and(|f| sessions_of(&setup, &run_id(&f), "%pg_sleep(300)%") > 0)
        });
    } else {
        wait_until(&mut runner, "the step's change", || started.exists());
    }
    signal(&runner, Signal::SIGKILL);
    runner.wait().unwrap();
    assert!(setup.has_table("changed"), "the run changed nothing");
    let folder = setup.run_folder().unwrap();
    let id = run_id(&folder);
    let groups: Vec<(u32, u32)> = records(&setup)
        .iter()
        .filter_map(|r| match r {
            Record::ProcessStarted { pid, pgid, .. } => Some((*pid, *pgid)),
            _ => None,
        })
        .collect();
    if on_server {
        assert!(sessions_of(&setup, &id, "%pg_sleep(300)%") > 0);
    } else {
        assert!(!groups.is_empty(), "no process recorded");
        assert!(
            groups.iter().any(|&(_, pgid)| !group_gone(pgid)),
            "the step's group died with the runner: the test tests nothing"
        );
    }

    let refused = setup.apply(&[]);
    let text = stderr(&refused);
    assert_eq!(refused.status.code(), Some(4), "{kind}: {text}");
    assert!(text.contains(&id), "{kind}: does not name the run: {text}");
    assert!(text.contains("`slow`"), "{kind}: {text}");

    let recovered = setup.recover();
    let text = stderr(&recovered);
    assert_eq!(recovered.status.code(), Some(0), "{kind}: {text}");
    assert_eq!(
        fingerprint::differences(&before, &setup.fingerprint()),
        Vec::<String>::new(),
        "{kind}: {text}"
    );
    assert!(!setup.has_table("changed"));
    assert!(setup.on_failure_ran(), "{kind}: {text}");
    for (pid, pgid) in groups {
        assert!(
            eventually(|| group_gone(pgid) && !process_running(pid)),
            "{kind}: process group {pgid} (leader {pid}) of the dead run is still there\n{text}"
        );
    }
    assert!(
        eventually(|| sessions_of(&setup, &id, "%") == 0),
        "{kind}: a server session of the dead run is still there\n{text}"
    );
}

#[test]
fn kill_9_during_a_script_step_with_run() {
    kill_9_during("script_run");
}

#[test]
fn kill_9_during_a_script_step_with_shell() {
    kill_9_during("script_shell");
}

#[test]
fn kill_9_during_a_sql_step() {
    kill_9_during("sql");
}

#[test]
fn kill_9_during_an_update_step() {
    kill_9_during("update");
}

#[test]
fn kill_9_during_a_check_step_with_run() {
    kill_9_during("check_run");
}

#[test]
fn kill_9_during_a_check_step_with_sql() {
    kill_9_during("check_sql");
}

#[test]
fn kill_9_during_a_stop_step() {
    kill_9_during("stop");
}

#[test]
fn kill_9_during_a_start_step() {
    kill_9_during("start");
}

/// Enough rows that copying and fingerprinting take a while, and a tree
/// of a few megabytes.
fn make_big(setup: &Setup, rows: i64) {
    setup
        .db
        .connect()
        .batch_execute(&format!(
            "create table big (id int primary key, pad text);
             insert into big select g, repeat(md5(g::text), 6) from generate_series(1, {rows}) g;"
        ))
        .unwrap();
    let tree = setup.plan_dir.path().join("files");
    for d in 0..10 {
        let dir = tree.join(format!("d{d}"));
        fs::create_dir_all(&dir).unwrap();
        for f in 0..20 {
            fs::write(dir.join(format!("f{f}")), vec![b'a' + d as u8; 16 * 1024]).unwrap();
        }
    }
}

/// Names of the databases on the cluster that start with `prefix`.
fn databases_like(setup: &Setup, prefix: &str) -> Vec<String> {
    setup
        .db
        .cluster
        .connect("postgres")
        .unwrap()
        .query(
            "select datname::text from pg_database where starts_with(datname, $1) order by 1",
            &[&prefix],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// What may be left of the run's copies: databases named after the target
/// and the run, a partial dump, tree copies. (A finished dump folder is
/// the run's backup, kept in its run folder like a kept snapshot.)
fn leftovers(setup: &Setup, folder: &Path, id: &str) -> Vec<String> {
    let mut left: Vec<String> = databases_like(setup, &format!("{}_", setup.db.name))
        .into_iter()
        .filter(|n| n.contains(id))
        .collect();
    for dir in [folder, setup.plan_dir.path()] {
        for entry in fs::read_dir(dir).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".partial") || name.starts_with(".files.") {
                left.push(entry.path().display().to_string());
            }
        }
    }
    left
}

/// After any kill and `plan recover`: the target exists with its content
/// of before the run (exit 0), or recover said what it found (exit 3) and
/// the original or its backup still exists; no process or session of the
/// dead run is left; a copy left behind is named in the message.
fn assert_recovered(
    setup: &Setup,
    what: &str,
    before: &fingerprint::Fingerprint,
    tree_before: &std::collections::BTreeMap<String, crate::support::apply::Node>,
    recovered: &Output,
    method: &str,
) {
    let text = stderr(recovered);
    let folder = setup.run_folder().unwrap();
    let id = run_id(&folder);
    let code = recovered.status.code();
    // Where the kill landed, for whoever reads a failure (or --nocapture).
    eprintln!("--- {what}: recover exited {code:?}\n{text}");
    assert!(
        code == Some(0) || code == Some(3),
        "{what}: recover exited {code:?}\n{text}"
    );
    let target_exists = databases_like(setup, &setup.db.name).contains(&setup.db.name);
    if code == Some(0) {
        assert!(target_exists, "{what}: the target is gone\n{text}");
        assert_eq!(
            fingerprint::differences(before, &setup.fingerprint()),
            Vec::<String>::new(),
            "{what}\n{text}"
        );
        assert_eq!(
            &read_tree(&setup.plan_dir.path().join("files")),
            tree_before,
            "{what}: the tree differs\n{text}"
        );
        assert!(!setup.has_table("changed"), "{what}");
        for left in leftovers(setup, &folder, &id) {
            assert!(
                text.contains(&left),
                "{what}: {left} is left and the message does not name it\n{text}"
            );
        }
    } else {
        assert!(text.contains("COULD NOT BE PROVED"), "{what}: {text}");
        let backup_exists = match method {
            "snapshot" => databases_like(setup, &format!("{}_pr_{id}", setup.db.name))
                .iter()
                .any(|n| n == &format!("{}_pr_{id}", setup.db.name)),
            _ => folder.join("dump-before").is_dir(),
        };
        assert!(
            target_exists || backup_exists,
            "{what}: neither the target nor its backup exists\n{text}"
        );
    }
    assert!(
        eventually(|| processes_mentioning(&id).is_empty()),
        "{what}: processes of the dead run are left: {:?}\n{text}",
        processes_mentioning(&id)
    );
    assert!(
        eventually(|| sessions_of(setup, &id, "%") == 0),
        "{what}: server sessions of the dead run are left\n{text}"
    );
    // Whatever happened, the run is closed: a second recover has nothing
    // to do.
    let again = setup.recover();
    assert_eq!(again.status.code(), Some(0), "{what}: {}", stderr(&again));
    assert!(stderr(&again).contains("nothing to recover"), "{what}");
}

/// Whether the backup's copy is being made: the server runs the run's
/// `create database`, or the dump's `.partial` folder exists.
fn copying(setup: &Setup, method: &str) -> bool {
    let Some(folder) = setup.run_folder() else {
        return false;
    };
    match method {
        "snapshot" => sessions_of(setup, &run_id(&folder), "create database%") > 0,
        _ => folder.join("dump-before.partial").exists(),
    }
}

/// kill -9 during the backup: as soon as the journal shows it started, or
/// once the copy is seen being made (or, on a fast day, has been made).
fn kill_9_during_the_backup(method: &str, moment: &str) {
    let slow = "script slow {\n  after = change\n  run = \"sleep 300\"\n  timeout = \"10m\"\n}";
    let setup = Setup::new(
        &format!("k9_backup_{method}_{moment}"),
        &plan(method, true, slow),
    );
    make_big(&setup, 200_000);
    let before = setup.fingerprint();
    let tree_before = read_tree(&setup.plan_dir.path().join("files"));
    let mut runner = setup.spawn_apply();
    wait_until(&mut runner, "the backup starting", || {
        records(&setup).iter().any(|r| match r {
            Record::BackupStarted { .. } => moment == "started",
            Record::BackupTaken { .. } => true,
            _ => false,
        }) || moment == "copying" && copying(&setup, method)
    });
    signal(&runner, Signal::SIGKILL);
    runner.wait().unwrap();
    let landed = format!(
        "{method} backup, {moment}, killed after {:?}",
        records(&setup)
            .last()
            .map(|r| format!("{r:?}").chars().take(60).collect::<String>())
    );
    let recovered = setup.recover();
    assert_recovered(&setup, &landed, &before, &tree_before, &recovered, method);
    // The backup never touched the target: whatever recover did, the
    // original database is there, unchanged.
    assert_eq!(
        fingerprint::differences(&before, &setup.fingerprint()),
        Vec::<String>::new(),
        "{landed}"
    );
}

#[test]
fn kill_9_when_a_snapshot_backup_starts() {
    kill_9_during_the_backup("snapshot", "started");
}

#[test]
fn kill_9_while_a_snapshot_is_copied() {
    kill_9_during_the_backup("snapshot", "copying");
}

#[test]
fn kill_9_when_a_dump_backup_starts() {
    kill_9_during_the_backup("dump", "started");
}

#[test]
fn kill_9_while_a_dump_is_written() {
    kill_9_during_the_backup("dump", "copying");
}

/// kill -9 once the journal shows the rollback started, `delay` later:
/// several delays land in several places of the restore.
fn kill_9_during_the_rollback(method: &str, delay: Duration) {
    let broken = "script broken {\n  after = change\n  run = \"false\"\n  timeout = \"1m\"\n}";
    let setup = Setup::new(
        &format!("k9_rollback_{method}_{}", delay.as_millis()),
        &plan(method, true, broken),
    );
    make_big(&setup, 100_000);
    let before = setup.fingerprint();
    let tree_before = read_tree(&setup.plan_dir.path().join("files"));
    let mut runner = setup.spawn_apply();
    wait_until(&mut runner, "the rollback starting", || {
        records(&setup)
            .iter()
            .any(|r| matches!(r, Record::RollbackStarted { .. }))
    });
    std::thread::sleep(delay);
    signal(&runner, Signal::SIGKILL);
    runner.wait().unwrap();
    let landed = format!(
        "{method} rollback, killed {delay:?} after it started, after {:?}",
        records(&setup)
            .last()
            .map(|r| format!("{r:?}").chars().take(60).collect::<String>())
    );
    let recovered = setup.recover();
    assert_recovered(&setup, &landed, &before, &tree_before, &recovered, method);
}

#[test]
fn kill_9_during_a_snapshot_rollback() {
    for ms in [0, 40, 150, 400] {
        kill_9_during_the_rollback("snapshot", Duration::from_millis(ms));
    }
}

#[test]
fn kill_9_during_a_dump_rollback() {
    for ms in [0, 100, 400, 1200] {
        kill_9_during_the_rollback("dump", Duration::from_millis(ms));
    }
}

/// The window a kill rarely hits, made by hand: the rollback swapped the
/// databases (the failed one aside, the snapshot renamed into place, not
/// yet given its properties: it still refuses connections) and the trees,
/// then died. Recover sees the failed copies, finishes, proves: exit 0.
#[test]
fn recover_finishes_a_restore_cut_short_after_its_swap() {
    let probe = crate::support::shared_cluster().bin("psql");
    let (slow, _) = slow_step("script_run", &probe);
    let setup = Setup::new("k9_swapped", &plan("snapshot", true, &slow));
    write_slow_script(&setup);
    make_big(&setup, 1_000);
    let tree = setup.plan_dir.path().join("files");
    let before = setup.fingerprint();
    let tree_before = read_tree(&tree);
    let mut runner = setup.spawn_apply();
    let started = setup.plan_dir.path().join("started.script_run");
    wait_until(&mut runner, "the step's change", || started.exists());
    signal(&runner, Signal::SIGKILL);
    runner.wait().unwrap();
    fs::write(tree.join("d0/f0"), "changed by the run").unwrap();
    let id = run_id(&setup.run_folder().unwrap());
    let taken = records(&setup)
        .into_iter()
        .find_map(|r| match r {
            Record::BackupTaken { taken } => Some(taken),
            _ => None,
        })
        .unwrap();
    // The rollback's swap, as `backup::restore` and `paths::restore` do it.
    let db = &setup.db.name;
    let failed = plan_runner::exec::backup::failed_name(db, &id);
    let mut maintenance = setup.db.cluster.connect("postgres").unwrap();
    maintenance
        .batch_execute(&format!(
            "begin; alter database \"{db}\" rename to \"{failed}\"; alter database \"{}\" rename to \"{db}\"; commit",
            taken.copy
        ))
        .unwrap();
    let tree_aside = plan_runner::exec::paths::copy_path(&taken.trees[0].original, &id, "failed");
    fs::rename(&taken.trees[0].original, &tree_aside).unwrap();
    fs::rename(&taken.trees[0].copy, &taken.trees[0].original).unwrap();

    let recovered = setup.recover();
    let text = stderr(&recovered);
    assert_eq!(recovered.status.code(), Some(0), "{text}");
    assert_eq!(
        fingerprint::differences(&before, &setup.fingerprint()),
        Vec::<String>::new(),
        "{text}"
    );
    assert_eq!(read_tree(&tree), tree_before, "{text}");
    assert!(setup.on_failure_ran());
    assert_eq!(
        databases_like(&setup, &format!("{db}_")),
        Vec::<String>::new(),
        "the failed copy is dropped once the restore is proved"
    );
    assert!(!tree_aside.exists(), "the tree moved aside is removed");
}

/// `--terminate-connections` blocks connections to the target while its
/// snapshot ends the other sessions: a runner killed then leaves it
/// refusing connections, and recover allows them again. The runner is
/// frozen (SIGSTOP) as soon as the journal shows the backup started, the
/// block is made by hand as the runner would make it, then the kill.
#[test]
fn recover_allows_connections_a_killed_snapshot_had_blocked() {
    let slow = "script slow {\n  after = change\n  run = \"sleep 300\"\n  timeout = \"10m\"\n}";
    let setup = Setup::new("k9_blocked", &plan("snapshot", false, slow));
    make_big(&setup, 200_000);
    let before = setup.fingerprint();
    let plan = setup.plan();
    let mut runner = setup
        .command(&setup.apply_args(plan.to_str().unwrap(), &["--terminate-connections"]))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(&mut runner, "the backup starting", || {
        records(&setup)
            .iter()
            .any(|r| matches!(r, Record::BackupStarted { .. }))
    });
    signal(&runner, Signal::SIGSTOP);
    let started = records(&setup);
    assert!(
        started.iter().any(|r| matches!(
            r,
            Record::BackupStarted {
                blocks_connections: true,
                ..
            }
        )),
        "the journal does not say the backup may block connections: {started:?}"
    );
    assert!(
        !started
            .iter()
            .any(|r| matches!(r, Record::BackupTaken { .. })),
        "the backup ended before the runner was frozen: the test tests nothing"
    );
    let db = &setup.db.name;
    let mut maintenance = setup.db.cluster.connect("postgres").unwrap();
    maintenance
        .batch_execute(&format!("alter database \"{db}\" allow_connections false"))
        .unwrap();
    signal(&runner, Signal::SIGKILL);
    runner.wait().unwrap();

    let recovered = setup.recover();
    let text = stderr(&recovered);
    assert_eq!(recovered.status.code(), Some(0), "{text}");
    assert!(text.contains("accepts connections again"), "{text}");
    assert_eq!(
        fingerprint::differences(&before, &setup.fingerprint()),
        Vec::<String>::new(),
        "{text}"
    );
}
