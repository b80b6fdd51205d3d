//! psql's conventions on the commands that connect: `-h`, `-p`, `-U`, `-d`
//! (a name, a URI or a `key=value` string), `PGSERVICE`, and `-?` for
//! help since `-h` is the host.

use std::fs;

use crate::support::{database, plan, shared_cluster};

fn output(cmd: &mut assert_cmd::Command) -> (Option<i32>, String, String) {
    let out = cmd.output().expect("plan runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn h_p_u_d_reach_the_server() {
    let db = database("psql_flags");
    let cluster = shared_cluster();
    let port = cluster.port().to_string();
    let (code, out, err) = output(plan().args([
        "status",
        "-h",
        cluster.tcp_host(),
        "-p",
        &port,
        "-U",
        cluster.user(),
        "-d",
        &db.name,
    ]));
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains(&format!("target: 127.0.0.1:{port}/{}", db.name)),
        "{out}"
    );
    // The same as a URI, and the long flags with --database.
    let uri = format!(
        "postgresql://{}@{}:{port}/{}",
        cluster.user(),
        cluster.tcp_host(),
        db.name
    );
    let (code, out, err) = output(plan().args(["status", "-d", &uri]));
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains(&db.name), "{out}");
    let (code, _, err) = output(plan().args([
        "backups",
        "--host",
        cluster.host(),
        "--port",
        &port,
        "--username",
        cluster.user(),
        "--database",
        &db.name,
    ]));
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn a_flag_and_the_connection_string_that_disagree_stop_naming_both() {
    let (code, _, err) = output(plan().args(["status", "-p", "5433", "-d", "port=5432 dbname=x"]));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("plan::conninfo_conflict"), "{err}");
    assert!(err.contains("`-p 5433`"), "{err}");
    assert!(err.contains("`5432`"), "{err}");
    let (code, _, err) = output(plan().args(["status", "-d", "dbname=x options=-cfoo=1"]));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("plan::conninfo") && err.contains("`options`"),
        "{err}"
    );
}

#[test]
fn pgservice_is_read_and_steps_never_see_it() {
    let db = database("pgservice");
    let cluster = shared_cluster();
    let dir = tempfile::tempdir().expect("a folder");
    let file = dir.path().join("services.conf");
    fs::write(
        &file,
        format!(
            "[erp]\nhost={}\nport={}\nuser={}\ndbname={}\n",
            cluster.host(),
            cluster.port(),
            cluster.user(),
            db.name
        ),
    )
    .unwrap();
    // The service beats PGPORT, as with libpq.
    let (code, out, err) = output(
        plan()
            .env("PGSERVICEFILE", &file)
            .env("PGSERVICE", "erp")
            .env("PGPORT", "1")
            .arg("status"),
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains(&db.name), "{out}");
    let (code, _, err) = output(
        plan()
            .env("PGSERVICEFILE", &file)
            .env("PGSERVICE", "nope")
            .arg("status"),
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("plan::service_not_found"), "{err}");

    // A step gets the resolved settings, not PGSERVICE: with a port from
    // the command line, a child still reading the service would go to
    // the service's.
    let plan_dir = tempfile::tempdir().expect("a folder");
    let plan_file = plan_dir.path().join("p.plan");
    fs::write(
        &plan_file,
        format!(
            r#"plan "svc" {{
  from = "1.0"
  to   = "2.0"
}}

check env_is_resolved {{
  run = "{} -c 'test -z \"$PGSERVICE\" && test \"$PGPORT\" = {} && test \"$PGDATABASE\" = {}'"
}}
"#,
            "/bin/sh",
            cluster.port(),
            db.name
        ),
    )
    .unwrap();
    let state = tempfile::tempdir().expect("a state folder");
    let (code, _, err) = output(
        plan()
            .env("PGSERVICEFILE", &file)
            .env("PGSERVICE", "erp")
            .arg("apply")
            .arg(&plan_file)
            .arg("--state-dir")
            .arg(state.path())
            .args(["--assume-release", "1.0"]),
    );
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn help_is_question_mark_where_h_is_the_host() {
    for command in ["apply", "status", "backups", "recover"] {
        let (code, out, err) = output(plan().args([command, "-?"]));
        assert_eq!(code, Some(0), "plan {command} -?: {err}");
        assert!(out.contains(&format!("Usage: plan {command}")), "{out}");
        assert!(out.contains("-h, --host <HOST>"), "{out}");
    }
    // -h takes a value there, and stays help elsewhere.
    let (code, _, err) = output(plan().args(["status", "-h"]));
    assert_eq!(code, Some(2), "{err}");
    let (code, out, _) = output(plan().args(["lint", "-h"]));
    assert_eq!(code, Some(0));
    assert!(out.contains("Usage: plan lint"), "{out}");
}
