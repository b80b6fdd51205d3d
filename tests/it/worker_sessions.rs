//! The server's own backends on the target are nobody's session
//! (docs/apply.md, "Other sessions"): a real logical-replication walsender
//! connected to the target does not make a snapshot refuse, while a real
//! client session still does.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::apply::{World, fingerprint, snapshot_plan};

fn plan() -> String {
    snapshot_plan(
        "workers",
        "\ncheck settled {\n  after  = before\n  sql    = \"select 1\"\n  expect = \"1\"\n}\n",
        "touch on_failure.ran",
    )
}

/// A walsender on `world`'s database (`replication=database`, as a
/// logical replication subscriber connects), held open by psql reading
/// its stdin. Returns once `pg_stat_activity` shows it.
fn walsender(world: &World) -> Child {
    let cluster = world.db.cluster;
    let mut psql = Command::new(cluster.bin("psql"))
        .arg("-X")
        .arg(format!(
            "dbname={} replication=database host={} port={} user={}",
            world.db.name,
            cluster.host(),
            cluster.port(),
            cluster.user()
        ))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("psql starts (a walsender needs psql)");
    psql.stdin
        .as_mut()
        .expect("psql's stdin")
        .write_all(b"IDENTIFY_SYSTEM;\n")
        .expect("psql reads");
    let mut admin = cluster.connect("postgres").expect("connect");
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let found: i64 = admin
            .query_one(
                "select count(*) from pg_stat_activity
                 where datname = $1 and backend_type = 'walsender'",
                &[&world.db.name],
            )
            .expect("pg_stat_activity")
            .get(0);
        if found == 1 {
            return psql;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = psql.kill();
    let _ = psql.wait();
    panic!(
        "no walsender on `{}`: does the cluster allow replication connections?",
        world.db.name
    );
}

#[test]
fn a_walsender_on_the_target_is_not_a_session_but_a_client_still_is() {
    let world = World::new("worker_sessions");
    let plan_path = world.write_plan(&plan());
    let before = fingerprint(&world.db);

    // A client's session: the snapshot waits for it, then refuses.
    let mut client = world.db.connect();
    client.batch_execute("select 1").expect("a client session");
    let applied = world.apply(&plan_path, &["--wait-for-sessions", "1s"]);
    drop(client);
    applied.assert_code(4);
    assert_eq!(applied.outcome(), "refused", "{}", applied.output());
    let message = applied.report()["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("other session(s) are connected"),
        "{message}"
    );
    assert_eq!(fingerprint(&world.db), before);

    // The server's walsender alone: not a session, and the copy is made.
    let mut psql = walsender(&world);
    let applied = world.apply(&plan_path, &["--wait-for-sessions", "2s"]);
    let _ = psql.kill();
    let _ = psql.wait();
    applied.assert_code(0);
    assert_eq!(applied.outcome(), "succeeded", "{}", applied.output());
    assert_eq!(
        applied.report()["backups"][0]["state"],
        "kept",
        "the snapshot was taken: {}",
        applied.output()
    );
    assert_eq!(fingerprint(&world.db), before);
}
