//! The throwaway cluster: it runs real queries, several run at once, and it
//! leaves no server and no folder behind, however its owner ends.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use plan_runner::cluster::{Cluster, ClusterError, Options};

use crate::support::{self, process_running, start_cluster, test_options};

/// Set in the environment of the child process that owns a cluster in
/// `watchdog_cleans_up_after_the_owner_is_killed`.
const OWNER_ENV: &str = "PLAN_RUNNER_TEST_CLUSTER_OWNER";

fn wait_until(limit: Duration, done: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    while !done() {
        if start.elapsed() > limit {
            return false;
        }
        thread::sleep(Duration::from_millis(50));
    }
    true
}

fn postmaster(cluster: &Cluster) -> u32 {
    cluster
        .postmaster_pid()
        .expect("a started cluster knows its postmaster")
}

#[test]
fn cluster_runs_queries_in_a_new_database() {
    let cluster = start_cluster(test_options());
    cluster.create_database("app db").expect("create database");
    let mut client = cluster.connect("app db").expect("connect");
    client
        .batch_execute("CREATE TABLE partner (id int PRIMARY KEY, name text)")
        .expect("create table");
    client
        .execute(
            "INSERT INTO partner VALUES ($1, $2), ($3, $4)",
            &[&1, &"Agrolait", &2, &"Camptocamp"],
        )
        .expect("insert");
    let row = client
        .query_one(
            "SELECT count(*), current_database(), current_user, \
             current_setting('fsync'), current_setting('server_encoding') FROM partner",
            &[],
        )
        .expect("select");
    assert_eq!(row.get::<_, i64>(0), 2);
    assert_eq!(row.get::<_, String>(1), "app db");
    assert_eq!(row.get::<_, String>(2), cluster.user());
    assert_eq!(row.get::<_, String>(3), "off");
    assert_eq!(row.get::<_, String>(4), "UTF8");
    for program in ["psql", "pg_dump", "pg_restore"] {
        assert!(
            cluster.bin(program).is_file(),
            "no `{program}` beside the server"
        );
    }
}

#[test]
fn client_programs_reach_the_cluster() {
    let cluster = start_cluster(test_options());
    let output = Command::new(cluster.bin("psql"))
        .args(["-X", "-A", "-t", "-c", "SELECT 40 + 2"])
        .arg(cluster.connection_string("postgres"))
        .stdin(Stdio::null())
        .output()
        .expect("run psql");
    assert!(output.status.success(), "{output:?}");
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "42");
    let output = Command::new(cluster.bin("psql"))
        .args(["-X", "-A", "-t", "-c", "SELECT current_database()"])
        .envs(cluster.libpq_env("template1"))
        .stdin(Stdio::null())
        .output()
        .expect("run psql");
    assert!(output.status.success(), "{output:?}");
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "template1");
}

#[test]
fn two_clusters_run_at_once_on_different_ports() {
    let first = start_cluster(test_options());
    let second = start_cluster(test_options());
    assert_ne!(first.port(), second.port());
    assert_ne!(first.host(), second.host());
    for cluster in [&first, &second] {
        let mut client = cluster.connect("postgres").expect("connect");
        let row = client
            .query_one("SELECT current_setting('port')::int", &[])
            .expect("select");
        assert_eq!(row.get::<_, i32>(0), i32::from(cluster.port()));
    }
    let folder = first.folder().to_path_buf();
    first.stop().expect("stop reports success");
    assert!(!folder.exists(), "`{}` is still there", folder.display());
    second
        .connect("postgres")
        .expect("the other cluster still runs");
}

#[test]
fn drop_stops_the_server_and_removes_the_folder() {
    let cluster = start_cluster(test_options());
    let folder = cluster.folder().to_path_buf();
    let pid = postmaster(&cluster);
    assert!(folder.join("data/PG_VERSION").is_file());
    assert!(process_running(pid), "postmaster {pid} is not running");
    drop(cluster);
    assert!(!folder.exists(), "`{}` is still there", folder.display());
    assert!(!process_running(pid), "postmaster {pid} still runs");
}

#[test]
fn a_panicking_test_still_cleans_up() {
    let (sender, receiver) = mpsc::channel();
    let outcome = thread::spawn(move || {
        let cluster = start_cluster(test_options());
        let _ = sender.send((cluster.folder().to_path_buf(), postmaster(&cluster)));
        panic!("a test fails while it owns a cluster");
    })
    .join();
    assert!(outcome.is_err(), "the thread was meant to panic");
    let (folder, pid): (PathBuf, u32) = receiver.recv().expect("the cluster had started");
    assert!(!folder.exists(), "`{}` is still there", folder.display());
    assert!(!process_running(pid), "postmaster {pid} still runs");
}

#[test]
fn watchdog_cleans_up_after_the_owner_is_killed() {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut owner = Command::new(exe)
        .args([
            "cluster::cluster_owner_child",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env(OWNER_ENV, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("re-run the test binary as the cluster's owner");
    let mut stdout = BufReader::new(owner.stdout.take().expect("piped stdout"));
    let mut ready = None;
    let mut line = String::new();
    while ready.is_none() && stdout.read_line(&mut line).expect("read the child") > 0 {
        ready = line
            .split_once("READY ")
            .and_then(|(_, rest)| rest.trim().split_once(' '))
            .map(|(pid, folder)| (pid.parse::<u32>().ok(), PathBuf::from(folder)));
        line.clear();
    }
    let Some((Some(pid), folder)) = ready else {
        let _ = owner.kill();
        let mut stderr = String::new();
        let _ = owner
            .stderr
            .take()
            .map(|mut e| e.read_to_string(&mut stderr));
        panic!("the owner process did not start a cluster:\n{stderr}");
    };
    assert!(process_running(pid), "postmaster {pid} is not running");
    assert!(folder.is_dir());

    owner.kill().expect("SIGKILL the owner");
    owner.wait().expect("reap the owner");

    // Neither the watchdog nor the postmaster may hold the owner's output
    // open: a harness reading it would hang.
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        let _ = stdout.read_to_end(&mut Vec::new());
        let _ = sender.send(());
    });
    assert!(
        receiver.recv_timeout(Duration::from_secs(10)).is_ok(),
        "the owner's stdout is still held open 10 s after it was killed"
    );
    assert!(
        wait_until(Duration::from_secs(20), || !process_running(pid)),
        "postmaster {pid} still runs 20 s after its owner was killed"
    );
    assert!(
        wait_until(Duration::from_secs(20), || !folder.exists()),
        "`{}` is still there 20 s after its owner was killed",
        folder.display()
    );
}

/// The owner process of `watchdog_cleans_up_after_the_owner_is_killed`: it
/// starts a cluster, says where, and waits to be killed.
#[test]
#[ignore = "run as a child process by watchdog_cleans_up_after_the_owner_is_killed"]
fn cluster_owner_child() {
    if std::env::var_os(OWNER_ENV).is_none() {
        return;
    }
    let cluster = start_cluster(test_options());
    let mut stdout = std::io::stdout();
    let _ = writeln!(
        stdout,
        "READY {} {}",
        postmaster(&cluster),
        cluster.folder().display()
    );
    let _ = stdout.flush();
    // The parent kills us while we wait; should it go away first, its end
    // of our stdin closes and we end instead of hanging.
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}

#[test]
fn each_test_gets_its_own_database_in_the_shared_cluster() {
    let first = support::database("first");
    let second = support::database("second");
    assert_ne!(first.name, second.name);
    assert!(std::ptr::eq(first.cluster, second.cluster));
    first
        .connect()
        .batch_execute("CREATE TABLE only_here (id int)")
        .expect("create table");
    let row = second
        .connect()
        .query_one("SELECT to_regclass('only_here') IS NULL", &[])
        .expect("select");
    assert!(
        row.get::<_, bool>(0),
        "a table leaked between test databases"
    );
}

#[test]
fn bad_database_names_are_refused() {
    let cluster = support::shared_cluster();
    for name in ["", &"x".repeat(64)] {
        let error = cluster.create_database(name).expect_err("refused");
        assert!(error.to_string().contains("cannot be a database name"));
    }
}

#[test]
fn a_failed_initdb_is_reported_and_leaves_no_folder() {
    use std::os::unix::fs::PermissionsExt;
    // As root the programs run as the server's account: it must reach them.
    let bindir = tempfile::tempdir().expect("temporary folder");
    let open = std::fs::Permissions::from_mode(0o755);
    std::fs::set_permissions(bindir.path(), open.clone()).expect("chmod");
    for (name, body) in [
        ("initdb", "echo \"initdb refused in $(pwd)\" >&2; exit 3"),
        ("pg_ctl", "exit 1"),
        ("postgres", "exit 1"),
    ] {
        let path = bindir.path().join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write program");
        std::fs::set_permissions(&path, open.clone()).expect("chmod");
    }
    let options = Options {
        bindir: Some(bindir.path().to_path_buf()),
        ..test_options()
    };
    let error = Cluster::start(options).expect_err("initdb fails");
    let ClusterError::Failed {
        program, output, ..
    } = &error
    else {
        panic!("not initdb's failure: {error:?}");
    };
    assert_eq!(program, "initdb");
    let folder = output
        .split_once("initdb refused in ")
        .map(|(_, folder)| PathBuf::from(folder.trim()))
        .unwrap_or_else(|| panic!("initdb's output is not in the error: {output}"));
    assert!(
        folder.starts_with(std::env::temp_dir()) || folder.starts_with("/tmp"),
        "{}",
        folder.display()
    );
    assert!(!folder.exists(), "`{}` is still there", folder.display());
}

#[test]
fn a_server_that_will_not_start_shows_its_log() {
    let options = Options {
        settings: vec![("no_such_setting".into(), "1".into())],
        ..test_options()
    };
    let error = Cluster::start(options).expect_err("the server refuses the setting");
    let ClusterError::Start { log } = &error else {
        panic!("not a failed start: {error:?}");
    };
    assert!(
        log.contains("unrecognized configuration parameter \"no_such_setting\""),
        "{log}"
    );
    let report = format!("{:?}", miette::Report::new(error));
    assert!(report.contains("the server did not start"), "{report}");
}
