//! `plan apply` end to end against the shared test cluster, with real
//! processes: the release gate and history, two runs on one target, other
//! sessions on the target, what a rollback must give back beyond the rows,
//! how values reach commands, and where secrets must never appear.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::apply::{
    PlanFolder, apply, apply_command, assert_lints_clean, execute, files_under, fingerprint,
    finish, history, props, related_databases, run_folders, state_dir,
};
use crate::support::{TestDatabase, database};

/// A release the plans' `release_query` reads, and some data to change.
const SEED: &str = "
create table meta (release text not null);
insert into meta values ('1.0.3');
create table partner (id serial primary key, name text not null);
insert into partner (name) select 'partner ' || g from generate_series(1, 50) g;
";

/// A plan written the way partners are told to (it lints clean): the old
/// server stopped first, a snapshot before anything changes data, then
/// `middle` (steps after `before`, the last one named `done`), the new
/// server started, and the old one restarted on failure.
fn plan_text(from: &str, to: &str, stop_run: &str, middle: &str) -> String {
    const TEMPLATE: &str = r#"plan "apply test @FROM@ to @TO@" {
  from          = "@FROM@"
  to            = "@TO@"
  release_query = "select release from meta"
}

stop server_down {
  run = "@STOP@"
}

backup before {
  after  = server_down
  method = "snapshot"
}

@MIDDLE@

start server_up {
  after = done
  run   = "true"
}

on_failure {
  start old_server_up {
    run = "true"
  }
}
"#;
    TEMPLATE
        .replace("@FROM@", from)
        .replace("@TO@", to)
        .replace("@STOP@", stop_run)
        .replace("@MIDDLE@", middle)
}

/// Changes data and moves the release to 2.0.0, then checks it.
const UPGRADE: &str = r#"sql upgrade {
  after = before
  sql   = "update partner set name = upper(name); update meta set release = '2.0.0'"
}

check done {
  after  = upgrade
  sql    = "select release from meta"
  expect = "2.0.0"
}"#;

fn release(db: &TestDatabase) -> String {
    db.connect()
        .query_one("select release from meta", &[])
        .expect("reading meta")
        .get(0)
}

fn message(applied: &crate::support::apply::Applied) -> String {
    applied.report()["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn success_is_recorded_then_a_second_apply_is_a_no_op_and_another_release_is_refused() {
    let db = database("apply_success");
    execute(&db, SEED);
    let folder = PlanFolder::new(&plan_text("1.0", "2.0", "true", UPGRADE));
    assert_lints_clean(&folder.plan());
    let state = state_dir();

    let first = apply(&db, &folder, state.path(), &[]);
    first.assert_code(0);
    assert_eq!(first.outcome(), "succeeded", "{}", first.output());
    assert_eq!(release(&db), "2.0.0", "the plan's sql step ran");
    let recorded = history(&db);
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert_eq!(recorded[0].run_id, first.run_id());
    assert_eq!(recorded[0].plan, "apply test 1.0 to 2.0");
    assert_eq!(recorded[0].from_release, "1.0");
    assert_eq!(recorded[0].to_release, "2.0");
    assert_eq!(recorded[0].outcome, "succeeded");
    // keep defaults to true: the snapshot stays, under its run's name.
    let backups = first.report()["backups"]
        .as_array()
        .expect("backups in the report");
    assert_eq!(backups.len(), 1, "{}", first.output());
    assert_eq!(backups[0]["state"], "kept");
    let copy = backups[0]["copy"].as_str().expect("the snapshot's name");
    assert!(copy.contains(first.run_id()), "{copy}");
    let databases = related_databases(&db);
    assert!(databases.iter().any(|d| d == copy), "{databases:?}");

    // The same plan again: already at `to`.
    let before = fingerprint(&db);
    let second = apply(&db, &folder, state.path(), &[]);
    second.assert_code(0);
    assert_eq!(second.outcome(), "nothing_to_do", "{}", second.output());
    assert!(
        second.stderr.contains("already at 2.0"),
        "{}",
        second.output()
    );
    assert_eq!(second.report()["steps"].as_array().map(Vec::len), Some(0));
    assert_eq!(second.report()["backups"].as_array().map(Vec::len), Some(0));
    assert_eq!(
        fingerprint(&db),
        before,
        "a no-op apply changed the database"
    );
    assert_eq!(
        related_databases(&db),
        databases,
        "a no-op apply made a backup"
    );
    assert_eq!(history(&db), recorded, "a no-op apply is not a run");

    // A plan for another release: refused by the history, both named.
    folder.rewrite(&plan_text("3.0", "4.0", "true", UPGRADE));
    let third = apply(&db, &folder, state.path(), &[]);
    third.assert_code(4);
    assert_eq!(third.outcome(), "refused");
    let said = message(&third);
    assert!(
        said.contains("2.0") && said.contains("3.0") && said.contains("history"),
        "the refusal must name the database's release (2.0, by the history) and the plan's (3.0):\n{}",
        third.output()
    );
    assert!(third.stderr.contains(&said), "{}", third.output());
    assert_eq!(
        fingerprint(&db),
        before,
        "a refused apply changed the database"
    );
    assert_eq!(
        related_databases(&db),
        databases,
        "a refused apply made a backup"
    );
    assert_eq!(history(&db), recorded);
}

#[test]
fn a_database_at_another_release_by_release_query_is_refused_with_nothing_changed() {
    let db = database("apply_wrong_release");
    execute(&db, SEED);
    let folder = PlanFolder::new(&plan_text("5.0", "6.0", "true", UPGRADE));
    assert_lints_clean(&folder.plan());
    let before = fingerprint(&db);
    let databases = related_databases(&db);
    let state = state_dir();

    let applied = apply(&db, &folder, state.path(), &[]);
    applied.assert_code(4);
    assert_eq!(applied.outcome(), "refused");
    let said = message(&applied);
    assert!(
        said.contains("1.0.3") && said.contains("5.0") && said.contains("release_query"),
        "the refusal must name the database's release (1.0.3, by the release_query) and the plan's (5.0):\n{}",
        applied.output()
    );
    assert!(applied.stderr.contains(&said), "{}", applied.output());
    assert_eq!(applied.report()["steps"].as_array().map(Vec::len), Some(0));
    assert_eq!(fingerprint(&db), before);
    assert_eq!(related_databases(&db), databases);
    assert_eq!(release(&db), "1.0.3");
    // Not even the runner's own schema: a refusal leaves the database as
    // it found it.
    let schemas: i64 = db
        .connect()
        .query_one(
            "select count(*) from pg_namespace where nspname = 'plan_runner'",
            &[],
        )
        .expect("counting schemas")
        .get(0);
    assert_eq!(schemas, 0, "a refused apply created the history schema");
}

/// The run `plan apply` with process id `child` has recorded in the
/// maintenance database's runs table, once it holds the lock.
fn wait_for_running(db: &TestDatabase, child: &mut Child) -> (String, i32) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut client = db.cluster.connect("postgres").expect("connect to postgres");
    loop {
        if let Ok(Some(row)) = client.query_opt(
            "select run_id, pid from plan_runner.runs where target = $1 and state = 'running'",
            &[&db.name],
        ) {
            return (row.get(0), row.get(1));
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the first apply ended ({status}) before it was seen running");
        }
        assert!(
            Instant::now() < deadline,
            "the first apply did not start its run within 30 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_second_apply_on_the_same_target_is_refused_at_once_naming_the_first() {
    let db = database("apply_lock");
    execute(&db, SEED);
    // The first step holds the run for 3 s: long enough for the second.
    let folder = PlanFolder::new(&plan_text("1.0", "2.0", "sleep 3", UPGRADE));
    assert_lints_clean(&folder.plan());
    let (state1, state2) = (state_dir(), state_dir());

    let started = Instant::now();
    let mut first = apply_command(&db, &folder.plan(), state1.path(), &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("`plan` starts");
    let (run_id, runner_pid) = wait_for_running(&db, &mut first);
    assert_eq!(
        runner_pid as u32,
        first.id(),
        "the runs table names the runner's pid"
    );

    let second = apply(&db, &folder, state2.path(), &[]);
    let first_was_running = first.try_wait().expect("polling the first apply").is_none();
    // A third one that may wait for the lock: it gets it once the first
    // is done, and then finds nothing to do.
    let state3 = state_dir();
    let waiting = apply_command(
        &db,
        &folder.plan(),
        state3.path(),
        &["--lock-timeout", "60s"],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("`plan` starts");
    let first = finish(
        first.wait_with_output().expect("the first apply ends"),
        started.elapsed(),
        state1.path(),
        &Default::default(),
    );
    let third = finish(
        waiting.wait_with_output().expect("the third apply ends"),
        started.elapsed(),
        state3.path(),
        &Default::default(),
    );
    eprintln!(
        "the second apply was refused in {:.3} s; the first took {:.3} s",
        second.elapsed.as_secs_f64(),
        first.elapsed.as_secs_f64()
    );

    second.assert_code(4);
    assert!(
        first_was_running,
        "the second apply must end while the first is still running (it took {:.2} s)\n{}",
        second.elapsed.as_secs_f64(),
        second.output()
    );
    for needle in [
        run_id.clone(),
        format!("plan-runner/{run_id}"),
        format!("pid {runner_pid}"),
    ] {
        assert!(
            second.stderr.contains(&needle),
            "the refusal must name the first run ({needle}):\n{}",
            second.output()
        );
    }
    assert!(
        second.report()["steps"]
            .as_array()
            .is_some_and(Vec::is_empty)
    );

    first.assert_code(0);
    assert_eq!(first.run_id(), run_id);
    assert_eq!(first.outcome(), "succeeded");
    let recorded = history(&db);
    assert_eq!(
        recorded.len(),
        1,
        "only the first run is recorded: {recorded:?}"
    );
    assert_eq!(recorded[0].run_id, run_id);
    assert_eq!(release(&db), "2.0.0");

    third.assert_code(0);
    assert_eq!(
        third.outcome(),
        "nothing_to_do",
        "with --lock-timeout it waits for the first run, then sees its result:\n{}",
        third.output()
    );
}

/// A backend that still runs a query for a client that was killed: psql
/// ran `select pg_sleep(60)` and got SIGKILL. Ended when dropped.
struct Orphan<'a> {
    db: &'a TestDatabase,
    pid: i32,
}

impl Drop for Orphan<'_> {
    fn drop(&mut self) {
        if let Ok(mut client) = self.db.cluster.connect("postgres") {
            let _ = client.execute("select pg_terminate_backend($1)", &[&self.pid]);
        }
    }
}

fn orphan_backend(db: &TestDatabase) -> Orphan<'_> {
    let application = format!("orphan-{}", db.name);
    let mut psql = Command::new(db.cluster.bin("psql"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PG") {
            psql.env_remove(&name);
        }
    }
    for (name, value) in db.cluster.libpq_env(&db.name) {
        psql.env(name, value);
    }
    let mut psql = psql
        .env("PGAPPNAME", &application)
        .args(["-X", "-q", "-c", "select pg_sleep(60)"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("psql starts");
    let mut client = db.cluster.connect("postgres").expect("connect to postgres");
    let deadline = Instant::now() + Duration::from_secs(20);
    let pid: i32 = loop {
        let row = client
            .query_opt(
                "select pid from pg_stat_activity
                 where datname = $1 and application_name = $2 and state = 'active'",
                &[&db.name, &application],
            )
            .expect("reading pg_stat_activity");
        if let Some(row) = row {
            break row.get(0);
        }
        assert!(Instant::now() < deadline, "psql's query did not start");
        std::thread::sleep(Duration::from_millis(20));
    };
    let orphan = Orphan { db, pid };
    psql.kill().expect("SIGKILL to psql");
    psql.wait().expect("reaping psql");
    std::thread::sleep(Duration::from_millis(300));
    let row = client
        .query_opt(
            "select state, query from pg_stat_activity where pid = $1",
            &[&pid],
        )
        .expect("reading pg_stat_activity");
    let (state, query): (Option<String>, Option<String>) = row
        .map(|r| (r.get(0), r.get(1)))
        .expect("the backend outlives its killed client");
    assert_eq!(state.as_deref(), Some("active"));
    assert!(query.unwrap_or_default().contains("pg_sleep"));
    orphan
}

fn backend_alive(db: &TestDatabase, pid: i32) -> bool {
    let mut client = db.cluster.connect("postgres").expect("connect to postgres");
    client
        .query_opt("select 1 from pg_stat_activity where pid = $1", &[&pid])
        .expect("reading pg_stat_activity")
        .is_some()
}

/// Asserts a run was refused because of the session `pid`, with nothing
/// changed.
fn assert_refused_for_session(
    db: &TestDatabase,
    applied: &crate::support::apply::Applied,
    pid: i32,
    before: &plan_runner::db::fingerprint::Fingerprint,
    databases: &[String],
) {
    applied.assert_code(4);
    assert!(
        applied.stderr.contains(&format!("pid {pid} ")),
        "the refusal must list the session (pid {pid}):\n{}",
        applied.output()
    );
    assert!(
        applied.stderr.contains("--terminate-connections"),
        "{}",
        applied.output()
    );
    let steps = applied.report()["steps"].as_array().expect("steps");
    let status = |name: &str| {
        steps
            .iter()
            .find(|s| s["name"] == name)
            .map(|s| s["status"].as_str().unwrap_or("").to_string())
    };
    assert_eq!(status("before").as_deref(), Some("failed"));
    assert_eq!(status("upgrade").as_deref(), Some("not_run"));
    assert_eq!(&fingerprint(db), before);
    assert_eq!(related_databases(db), databases, "no snapshot may be left");
    assert!(
        !history(db).iter().any(|h| h.outcome == "succeeded"),
        "{:?}",
        history(db)
    );
}

#[test]
fn an_idle_session_on_the_target_stops_a_snapshot_and_is_listed() {
    let db = database("apply_idle_session");
    execute(&db, SEED);
    let folder = PlanFolder::new(&plan_text("1.0", "2.0", "true", UPGRADE));
    assert_lints_clean(&folder.plan());
    let before = fingerprint(&db);
    let databases = related_databases(&db);
    let mut held = db.connect();
    let pid: i32 = held
        .query_one("select pg_backend_pid()", &[])
        .expect("the session's pid")
        .get(0);
    let state = state_dir();

    let applied = apply(&db, &folder, state.path(), &["--wait-for-sessions", "1s"]);
    assert_refused_for_session(&db, &applied, pid, &before, &databases);
    held.simple_query("select 1")
        .expect("without --terminate-connections the session is left alone");
    assert_eq!(release(&db), "1.0.3");
}

#[test]
fn a_backend_still_running_for_a_killed_client_stops_a_snapshot_and_is_listed() {
    let db = database("apply_orphan_backend");
    execute(&db, SEED);
    let folder = PlanFolder::new(&plan_text("1.0", "2.0", "true", UPGRADE));
    assert_lints_clean(&folder.plan());
    let before = fingerprint(&db);
    let databases = related_databases(&db);
    let orphan = orphan_backend(&db);
    let state = state_dir();

    let applied = apply(&db, &folder, state.path(), &["--wait-for-sessions", "1s"]);
    assert_refused_for_session(&db, &applied, orphan.pid, &before, &databases);
    assert!(backend_alive(&db, orphan.pid), "the backend was left alone");
}

#[test]
fn terminate_connections_ends_the_sessions_and_the_apply_proceeds() {
    let db = database("apply_terminate");
    execute(&db, SEED);
    let folder = PlanFolder::new(&plan_text("1.0", "2.0", "true", UPGRADE));
    assert_lints_clean(&folder.plan());
    let orphan = orphan_backend(&db);
    let mut held = db.connect();
    let state = state_dir();

    let applied = apply(
        &db,
        &folder,
        state.path(),
        &["--terminate-connections", "--wait-for-sessions", "5s"],
    );
    applied.assert_code(0);
    assert_eq!(applied.outcome(), "succeeded");
    assert!(
        held.simple_query("select 1").is_err(),
        "the idle session was ended"
    );
    assert!(
        !backend_alive(&db, orphan.pid),
        "the orphaned backend was ended"
    );
    assert_eq!(release(&db), "2.0.0");
    let mut client = db.cluster.connect("postgres").expect("connect to postgres");
    let allowed: bool = client
        .query_one(
            "select datallowconn from pg_database where datname = $1",
            &[&db.name],
        )
        .expect("reading pg_database")
        .get(0);
    assert!(allowed, "connections are allowed again after the snapshot");
    let recorded = history(&db);
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].outcome, "succeeded");
}

#[test]
fn a_rollback_keeps_the_databases_owner_privileges_settings_limit_and_comment() {
    rollback_keeps_properties("snapshot");
}

#[test]
fn a_rollback_from_a_dump_keeps_the_databases_properties_too() {
    rollback_keeps_properties("dump");
}

/// Sets every database-level property a copy must carry over, and tables
/// only the text form can hash; runs a plan that changes all of it and
/// fails; checks that the rollback gave all of it back.
fn rollback_keeps_properties(method: &str) {
    let db = database(&format!("apply_props_{method}"));
    let d = &db.name;
    let owner = format!("{d}_own");
    let app = format!("{d}_app");
    execute(&db, SEED);
    execute(
        &db,
        &format!(
            r#"
create role "{owner}" login;
create role "{app}" login;
alter database "{d}" owner to "{owner}";
revoke all on database "{d}" from public;
grant connect, temporary on database "{d}" to "{app}";
alter database "{d}" set work_mem = '8MB';
alter database "{d}" set search_path = "$user", public, extra;
alter database "{d}" set application_name = 'erp, main';
alter role "{app}" in database "{d}" set statement_timeout = '5s';
alter database "{d}" connection limit 50;
comment on database "{d}" is 'Acme''s ERP';
create table docs (id int primary key, body json not null, tags jsonb);
insert into docs values (1, '{{"a": [1, 2]}}', '["x"]'), (2, '{{"b": null}}', null);
create table odd (id int primary key, doc xml, place point, price money);
insert into odd values (1, {xml}, point(1.5, 2), 12.34), (2, null, point(0, 0), 0);
"#,
            // A server built without libxml (the PyPI wheel of 18 the test
            // matrix runs) has the type but takes no value.
            xml = if db.connect().batch_execute("select '<a/>'::xml").is_ok() {
                "'<a>1</a>'"
            } else {
                "null"
            }
        ),
    );
    // Values are substituted into SQL as literals, so the names are
    // written into the plan.
    let middle = r#"sql change {
  after = before
  sql   = "update docs set body = '{\"changed\": true}';
           delete from odd where id = 1;
           update meta set release = '2.0.0';
           alter database \"@DB@\" set work_mem = '64MB';
           alter database \"@DB@\" reset search_path;
           alter database \"@DB@\" connection limit 7;
           comment on database \"@DB@\" is 'changed';
           grant all on database \"@DB@\" to public;
           alter database \"@DB@\" owner to postgres;
           alter role \"@APP@\" in database \"@DB@\" reset statement_timeout"
}

script done {
  after   = change
  run     = "false"
  timeout = "1m"
}"#
    .replace("@APP@", &app)
    .replace("@DB@", d);
    let plan = plan_text("1.0", "2.0", "true", &middle)
        .replace(r#"method = "snapshot""#, &format!(r#"method = "{method}""#));
    let folder = PlanFolder::new(&plan);
    assert_lints_clean(&folder.plan());

    let props_before = props(&db);
    // The properties are really there, as the fingerprint sees them.
    assert_eq!(props_before.owner, owner);
    let acl = props_before.acl.clone().unwrap_or_default();
    assert!(acl.contains(&format!("{app}=Tc/")), "{acl}");
    assert!(
        !acl.contains("{=") && !acl.contains(",="),
        "public revoked: {acl}"
    );
    for setting in [
        ":work_mem=8MB".to_string(),
        r#":search_path="$user", public, extra"#.to_string(),
        ":application_name=erp, main".to_string(),
        format!("{app}:statement_timeout=5s"),
    ] {
        assert!(
            props_before.settings.contains(&setting),
            "{setting} not in {:?}",
            props_before.settings
        );
    }
    assert_eq!(props_before.connection_limit, 50);
    assert_eq!(props_before.comment.as_deref(), Some("Acme's ERP"));
    let before = fingerprint(&db);
    let table = |name: &str| {
        before
            .tables
            .iter()
            .find(|(k, _)| k.replace('"', "").ends_with(&format!(".{name}")))
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("table {name} is not fingerprinted: {:?}", before.tables))
    };
    assert!(table("docs").text_form, "json has no extended hash");
    assert!(table("odd").text_form, "xml, point and money have none");
    // Before 14 there is no hash_record_extended: every table is hashed
    // through its text form.
    let version = crate::support::server_version();
    assert_eq!(
        table("partner").text_form,
        !version.has_hash_record_extended()
    );
    assert_eq!(table("docs").rows, 2);
    let content = |db: &TestDatabase| -> Vec<String> {
        db.connect()
            .query(
                "select format('%s %s %s', id, body::text, tags::text) from docs
                 union all
                 select format('%s %s %s %s', id, doc::text, place::text, price::text) from odd
                 order by 1",
                &[],
            )
            .expect("reading the tables")
            .into_iter()
            .map(|r| r.get(0))
            .collect()
    };
    let content_before = content(&db);
    let state = state_dir();

    let applied = apply(&db, &folder, state.path(), &["--keep-failed"]);
    applied.assert_code(1);
    assert_eq!(applied.outcome(), "rolled_back", "{}", applied.output());
    assert_eq!(applied.report()["backups"][0]["method"], method);
    assert_eq!(applied.report()["rollback"]["proved"], true);

    // The failed database, kept aside, shows what the run had changed.
    let failed = applied.report()["rollback"]["failed_copies"][0]
        .as_str()
        .unwrap_or_else(|| panic!("no failed copy kept:\n{}", applied.output()))
        .to_string();
    let mut maintenance = db.cluster.connect("postgres").expect("connect to postgres");
    let changed = plan_runner::db::fingerprint::database_props(&mut maintenance, &failed)
        .expect("reading the failed copy")
        .expect("the failed copy exists");
    assert_eq!(changed.connection_limit, 7);
    assert_eq!(changed.comment.as_deref(), Some("changed"));
    assert!(changed.settings.contains(&":work_mem=64MB".to_string()));
    assert_ne!(changed.owner, owner);

    let props_after = props(&db);
    assert_eq!(
        props_after, props_before,
        "the database's properties after the rollback"
    );
    assert_eq!(fingerprint(&db), before);
    assert_eq!(content(&db), content_before);
    assert_eq!(release(&db), "1.0.3");
    let allowed: bool = maintenance
        .query_one(
            "select datallowconn from pg_database where datname = $1",
            &[&db.name],
        )
        .expect("reading pg_database")
        .get(0);
    assert!(allowed, "the restored database accepts connections");
    // The role setting is in force again for the role it belongs to.
    let mut as_app = db.cluster.config(&db.name);
    as_app.user(&app);
    let timeout: String = as_app
        .connect(postgres::NoTls)
        .expect("the role can still connect")
        .query_one("show statement_timeout", &[])
        .expect("show")
        .get(0);
    assert_eq!(timeout, "5s");
    maintenance
        .batch_execute(&format!("drop database \"{failed}\""))
        .expect("dropping the kept failed copy");
}

/// A step that writes its arguments, NUL-separated, into the file its
/// first argument names.
const ARGV_PY: &str = r#"import sys
with open(sys.argv[1], "wb") as out:
    out.write(b"\0".join(a.encode("utf-8", "surrogateescape") for a in sys.argv[2:]))
"#;

#[test]
fn a_variable_with_shell_syntax_reaches_the_command_as_one_literal_argument() {
    let db = database("apply_argv");
    execute(&db, SEED);
    let middle = r#"var x = env("APPLY_TEST_UNSET_X", "the default")
var y = env("APPLY_TEST_Y")
var z = env("APPLY_TEST_UNSET_Z", "")

script done {
  after   = before
  run     = "python3 argv.py argv.bin ${x} ${y} ${z}"
  timeout = "1m"
}"#;
    let folder = PlanFolder::new(&plan_text("1.0", "2.0", "true", middle)).file("argv.py", ARGV_PY);
    assert_lints_clean(&folder.plan());
    let nasty = |tag: &str| {
        format!(
            "{tag}: two  words \"double\" 'single' ; touch semicolon-{tag}; $(touch dollar-{tag}) `touch backtick-{tag}` $HOME ${{HOME}} | cat > piped-{tag} & *\nsecond line\ttab"
        )
    };
    let (x, y) = (nasty("x"), nasty("y"));
    let state = state_dir();
    let var = format!("x={x}");

    let applied = crate::support::apply::run(
        apply_command(&db, &folder.plan(), state.path(), &["--var", &var]).env("APPLY_TEST_Y", &y),
        state.path(),
    );
    applied.assert_code(0);
    let written = std::fs::read(folder.path().join("argv.bin")).expect("the step wrote its argv");
    let args: Vec<&[u8]> = written.split(|b| *b == 0).collect();
    assert_eq!(
        args,
        vec![x.as_bytes(), y.as_bytes(), b""],
        "each value must arrive as one argument, byte for byte (an empty one too):\n{}",
        String::from_utf8_lossy(&written)
    );
    let mut made: Vec<String> = std::fs::read_dir(folder.path())
        .expect("listing the plan folder")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    made.sort();
    assert_eq!(
        made,
        ["argv.bin", "argv.py", "test.plan"],
        "nothing was interpreted"
    );
}

/// Prints the secret it gets in `LEAK` on stdout and stderr, then fails
/// the way its argument says.
const LEAK_PY: &str = r#"import os, sys
value = os.environ["LEAK"]
print("stdout: " + value, flush=True)
print("stderr: " + value, file=sys.stderr, flush=True)
mode = sys.argv[1]
if mode == "exit":
    print("failing with " + value, file=sys.stderr, flush=True)
    sys.exit(3)
if mode == "match":
    print("2026-01-01 1 ERROR db boom " + value, flush=True)
"#;

const SECRET: &str = "Zq8-hush-4tW!x%41";

#[test]
fn a_secret_appears_in_no_log_report_or_message() {
    let db = database("apply_secret");
    execute(&db, SEED);
    let common = r#"var hidden = secret("APPLY_TEST_HIDDEN")

script shout {
  after   = before
  run     = "python3 leak.py shout"
  env     = { LEAK = "${hidden}" }
  timeout = "1m"
}

@FAIL@"#;
    // Each way a step can fail and say why, with the secret in what it says.
    let failures = [
        (
            "exit",
            r#"script done {
  after   = shout
  run     = "python3 leak.py exit"
  env     = { LEAK = "${hidden}" }
  timeout = "1m"
}"#,
        ),
        (
            "fail_on_output",
            r#"script done {
  after          = shout
  run            = "python3 leak.py match"
  env            = { LEAK = "${hidden}" }
  fail_on_output = "ERROR db boom"
  timeout        = "1m"
}"#,
        ),
        (
            "sql error",
            r#"sql done {
  after = shout
  sql   = "select ('not a number ' || ${hidden})::int"
}"#,
        ),
        (
            "check mismatch",
            r#"check done {
  after  = shout
  sql    = "select 'something else'"
  expect = "${hidden}"
}"#,
        ),
        (
            "cwd",
            r#"script done {
  after   = shout
  run     = "true"
  cwd     = "no-such-folder-${hidden}"
  timeout = "1m"
}"#,
        ),
    ];
    let state = state_dir();
    let mut printed = Vec::new();
    for (what, fail) in failures {
        let folder = PlanFolder::new(&plan_text(
            "1.0",
            "2.0",
            "true",
            &common.replace("@FAIL@", fail),
        ))
        .file("leak.py", LEAK_PY);
        assert_lints_clean(&folder.plan());
        let applied = crate::support::apply::run(
            apply_command(&db, &folder.plan(), state.path(), &[]).env("APPLY_TEST_HIDDEN", SECRET),
            state.path(),
        );
        applied.assert_code(1);
        let steps = applied.report()["steps"].as_array().expect("steps");
        let done = steps
            .iter()
            .find(|s| s["name"] == "done")
            .expect("the report names the failed step");
        assert_eq!(done["status"], "failed", "{what}: {}", applied.output());
        assert!(
            done["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{what}: the failure says why"
        );
        // The secret did reach the step, which printed it (hidden since).
        let folder_of_run = applied.run_folder.clone().expect("a run folder");
        let log =
            std::fs::read_to_string(folder_of_run.join("logs/shout.log")).expect("the step's log");
        assert!(
            log.contains("stdout: ***") && log.contains("stderr: ***"),
            "{log}"
        );
        printed.push((what, applied.stdout.clone(), applied.stderr.clone()));
    }

    let mut leaks = Vec::new();
    for (what, stdout, stderr) in &printed {
        if stdout.contains(SECRET) {
            leaks.push(format!("stdout of the `{what}` run"));
        }
        if stderr.contains(SECRET) {
            leaks.push(format!("stderr of the `{what}` run:\n{stderr}"));
        }
    }
    let files = files_under(state.path());
    assert!(files.len() >= 5 * 3, "{files:?}");
    for file in files {
        let bytes = std::fs::read(&file).expect("reading a state file");
        if contains(&bytes, SECRET.as_bytes()) {
            leaks.push(format!(
                "{}:\n{}",
                file.display(),
                String::from_utf8_lossy(&bytes)
            ));
        }
    }
    assert!(
        leaks.is_empty(),
        "the secret leaked into:\n{}",
        leaks.join("\n\n")
    );
    assert_eq!(run_folders(state.path()).len(), 5);
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
