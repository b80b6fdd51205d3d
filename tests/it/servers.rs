//! What differs between the PostgreSQL majors the runner supports (13 to
//! 18), on the server the tests run: `scripts/test-matrix` runs these
//! (with the backup and rollback tests) once per major, through
//! `PLAN_RUNNER_TEST_PG_BINDIR`. Column types without an extended hash
//! (and servers without `hash_record_extended`) are still proved; a
//! database's locale provider comes back from a dump; the runner names
//! the `pg_dump` and `pg_restore` it chose.

use plan_runner::db::server::{self, ServerVersion};

use crate::support::apply::{
    PlanFolder, apply, assert_lints_clean, execute, fingerprint, props, state_dir,
};
use crate::support::{BINDIR_VAR, TestDatabase, database, server_version};

/// A plan that stops (a no-op), backs up with `method`, runs `change`
/// (SQL that stays) and then fails, so that the run rolls back.
fn failing_plan(method: &str, change: &str) -> PlanFolder {
    let plan = r#"plan "servers 1.0 to 2.0" {
  from          = "1.0"
  to            = "2.0"
  release_query = "select release from meta"
}

stop server_down {
  run = "true"
}

backup before {
  after  = server_down
  method = "@METHOD@"
}

sql change {
  after = before
  sql   = "@CHANGE@"
}

script broken {
  after   = change
  run     = "false"
  timeout = "1m"
}

start server_up {
  after = broken
  run   = "true"
}

on_failure {
  start old_server_up {
    run = "true"
  }
}
"#
    .replace("@METHOD@", method)
    .replace("@CHANGE@", &change.replace('"', "\\\""));
    let folder = PlanFolder::new(&plan);
    assert_lints_clean(&folder.plan());
    folder
}

/// Applies `folder`'s failing plan and checks that the rollback was
/// proved; returns the run's stderr.
fn assert_rolled_back_and_proved(db: &TestDatabase, folder: &PlanFolder) -> String {
    let state = state_dir();
    let applied = apply(db, folder, state.path(), &[]);
    applied.assert_code(1);
    assert_eq!(applied.outcome(), "rolled_back", "{}", applied.output());
    let rollback = &applied.report()["rollback"];
    assert_eq!(
        rollback["proved"].as_bool(),
        Some(true),
        "{}",
        applied.output()
    );
    applied.stderr.clone()
}

/// Whether the server was built with libxml (the PyPI wheel of 18 is not:
/// its `xml` type exists but takes no value).
fn has_libxml(db: &TestDatabase) -> bool {
    db.connect()
        .batch_execute("select xmlparse(content '<a/>')")
        .is_ok()
}

#[test]
fn the_test_server_is_the_one_asked_for_and_supported() {
    let version = server_version();
    assert!(
        version.is_supported(),
        "the tests run on PostgreSQL {version}, outside {}",
        server::supported_range()
    );
    if let Some(dir) = std::env::var_os(BINDIR_VAR).filter(|d| !d.is_empty()) {
        let postgres = std::path::Path::new(&dir).join("postgres");
        let output = std::process::Command::new(&postgres)
            .arg("--version")
            .output()
            .unwrap_or_else(|e| panic!("{} --version: {e}", postgres.display()));
        let said = String::from_utf8_lossy(&output.stdout);
        assert!(
            said.contains(&format!("(PostgreSQL) {}.", version.major())),
            "{BINDIR_VAR} names {said}, but the cluster runs {version}"
        );
    }
}

/// Every kind of column: those with an extended hash, and those hashed
/// through the row's text form (json, xml, geometric types, money, and
/// arrays, composites and domains of them). A change in any of them is
/// seen, and a rollback of each, by snapshot and by dump, is proved.
fn every_column_type_is_proved(method: &str) {
    let version = server_version();
    let db = database(&format!("servers_types_{method}"));
    let xml = has_libxml(&db);
    execute(
        &db,
        &format!(
            r#"
create table meta (release text);
insert into meta values ('1.0');
create type pair as (label text, doc json);
create domain doc_json as json;
create table plain (id int primary key, name text, at timestamptz, n numeric(12, 3),
                    ids int[], span int4range, flag bool, raw bytea, u uuid);
insert into plain
  select i, 'name ' || i, '2026-01-01'::timestamptz + i * interval '1 hour', i / 7.0,
         array[i, i + 1], int4range(i, i + 10), i % 2 = 0, decode('00ff', 'hex'),
         md5(i::text)::uuid
  from generate_series(1, 50) i;
create table documents (id int primary key, body json, tags jsonb, list json[], p pair,
                        d doc_json);
insert into documents
  select i, json_build_object('i', i), jsonb_build_array(i), array[json_build_object('k', i)],
         row('p' || i, json_build_object('x', i))::pair, json_build_object('d', i)
  from generate_series(1, 50) i;
insert into documents values (51, null, null, null, null, null);
create table shapes (id int primary key, pt point, b box, c circle, seg lseg, ln line,
                     pa path, poly polygon, price money, loc tid, lsn pg_lsn,
                     doc xml);
insert into shapes
  select i, point(i, i / 2.0), box(point(0, 0), point(i, i)), circle(point(i, 0), i),
         lseg(point(0, 0), point(i, 1)), line(point(0, 0), point(1, i)),
         path(polygon(box(point(0, 0), point(i, i)))), polygon(box(point(0, 0), point(i, 1))),
         (i * 1.25)::money, ('(' || i || ',1)')::tid, ('0/' || to_hex(i))::pg_lsn,
         {xml_value}
  from generate_series(1, 50) i;
"#,
            xml_value = if xml {
                "xmlparse(content '<a>' || i || '</a>')"
            } else {
                "null"
            }
        ),
    );
    let before = fingerprint(&db);
    let sum = |name: &str| {
        before
            .tables
            .iter()
            .find(|(k, _)| k.replace('"', "").ends_with(&format!(".{name}")))
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("table {name} not fingerprinted: {:?}", before.tables))
    };
    // Before 14 there is no hash_record_extended: every table goes
    // through its text form.
    assert_eq!(
        sum("plain").text_form,
        !version.has_hash_record_extended(),
        "{version}"
    );
    assert!(sum("documents").text_form);
    assert!(sum("shapes").text_form);
    assert_eq!(sum("documents").rows, 51);

    // The text form sees a change in any column, even one without a hash.
    for (change, table) in [
        (
            "update documents set body = '{\"i\": 0}' where id = 1",
            "documents",
        ),
        (
            "update documents set p.doc = '{}' where id = 2",
            "documents",
        ),
        ("update shapes set pt = point(0, 0) where id = 3", "shapes"),
        ("update shapes set price = 0 where id = 4", "shapes"),
        (
            "update plain set span = int4range(1, 2) where id = 5",
            "plain",
        ),
    ] {
        execute(&db, &format!("begin; {change}; commit"));
        let now = fingerprint(&db);
        let name = now
            .tables
            .keys()
            .find(|k| k.replace('"', "").ends_with(&format!(".{table}")))
            .cloned()
            .unwrap_or_default();
        assert_ne!(
            before.tables.get(&name).map(|t| &t.sum),
            now.tables.get(&name).map(|t| &t.sum),
            "`{change}` went unseen"
        );
    }
    let before = fingerprint(&db);
    let folder = failing_plan(
        method,
        "update documents set body = '{\"changed\": 1}', p = null;
         update shapes set pt = point(9, 9), price = 1, doc = null;
         update plain set name = 'changed';
         delete from documents where id > 40",
    );
    assert_rolled_back_and_proved(&db, &folder);
    assert_eq!(fingerprint(&db), before);
}

#[test]
fn every_column_type_is_proved_after_a_snapshot_rollback() {
    every_column_type_is_proved("snapshot");
}

#[test]
fn every_column_type_is_proved_after_a_dump_rollback() {
    every_column_type_is_proved("dump");
}

/// Makes `db` anew with a locale provider other than libc, when the
/// server has one: ICU (15, with tailoring rules from 16) where the server
/// was built with it, else the builtin provider (17; the PyPI wheel of 18
/// has no ICU). `None` before 15.
fn remake_with_locale_provider(db: &TestDatabase, version: ServerVersion) -> Option<&'static str> {
    if !version.has_locale_provider() {
        return None;
    }
    let mut admin = db.cluster.connect("postgres").expect("connect to postgres");
    let name = plan_runner::db::quote_ident(&db.name);
    // Each statement alone: a multi-statement string is one transaction
    // block, where neither may run.
    admin
        .batch_execute(&format!("drop database {name}"))
        .expect("dropping the database");
    let rules = if version.has_icu_rules() {
        " icu_rules '&V << w <<< W'"
    } else {
        ""
    };
    let mut tries = vec![(
        "i",
        format!("locale_provider icu icu_locale 'sv-SE'{rules}"),
    )];
    if version.has_builtin_locale() {
        tries.push((
            "b",
            "locale_provider builtin builtin_locale 'C.UTF-8'".to_string(),
        ));
    }
    for (provider, options) in tries {
        match admin.batch_execute(&format!(
            "create database {name} template template0 {options}"
        )) {
            Ok(()) => return Some(provider),
            // A build without ICU.
            Err(e) if e.code() == Some(&postgres::error::SqlState::FEATURE_NOT_SUPPORTED) => {}
            Err(e) => panic!("making the database with `{options}`: {e}"),
        }
    }
    // Put back a plain database for the test to find.
    admin
        .batch_execute(&format!("create database {name}"))
        .expect("making the database again");
    None
}

/// A database with its own locale provider comes back with it: a
/// snapshot copies it with the files, and a dump is loaded into a
/// database made with the same provider, locale and rules (from
/// `template0`, it would otherwise get the cluster's libc).
fn a_rollback_keeps_the_locale_provider(method: &str) {
    let version = server_version();
    let db = database(&format!("servers_locale_{method}"));
    let Some(provider) = remake_with_locale_provider(&db, version) else {
        eprintln!("PostgreSQL {version} has no locale provider to keep: nothing to test");
        return;
    };
    execute(
        &db,
        "create table meta (release text);
         insert into meta values ('1.0');
         create table word (w text primary key);
         insert into word values ('vin'), ('wok'), ('Vin'), ('Wok');",
    );
    let before = props(&db);
    assert_eq!(before.locale_provider.as_deref(), Some(provider));
    assert!(before.locale.is_some(), "{before:?}");
    if provider == "i" && version.has_icu_rules() {
        assert!(before.icu_rules.is_some(), "{before:?}");
    }
    let order = |db: &TestDatabase| -> Vec<String> {
        db.connect()
            .query("select w from word order by w", &[])
            .expect("sorting")
            .into_iter()
            .map(|row| row.get(0))
            .collect()
    };
    let sorted = order(&db);
    let folder = failing_plan(method, "delete from word where w = 'vin'");
    assert_rolled_back_and_proved(&db, &folder);
    let after = props(&db);
    assert_eq!(
        (&after.locale_provider, &after.locale, &after.icu_rules),
        (&before.locale_provider, &before.locale, &before.icu_rules)
    );
    assert_eq!(order(&db), sorted, "text sorts as it did");
}

#[test]
fn a_snapshot_rollback_keeps_the_locale_provider() {
    a_rollback_keeps_the_locale_provider("snapshot");
}

#[test]
fn a_dump_rollback_keeps_the_locale_provider() {
    a_rollback_keeps_the_locale_provider("dump");
}

#[test]
fn a_dump_names_the_pg_dump_and_pg_restore_it_used() {
    let version = server_version();
    let db = database("servers_dump_tools");
    execute(
        &db,
        "create table meta (release text); insert into meta values ('1.0');",
    );
    let folder = failing_plan("dump", "update meta set release = '1.5'");
    let state = state_dir();
    let applied = apply(&db, &folder, state.path(), &[]);
    applied.assert_code(1);
    let report = applied.report();
    let program = report["backups"][0]["program"]
        .as_str()
        .unwrap_or_else(|| panic!("no program in the report\n{}", applied.output()))
        .to_string();
    assert!(program.contains("pg_dump (PostgreSQL "), "{program}");
    let major: u32 = program
        .rsplit_once("(PostgreSQL ")
        .and_then(|(_, v)| v.split('.').next())
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    assert!(
        major >= version.major(),
        "pg_dump {major} chosen for a {version} server"
    );
    assert!(
        applied.stderr.contains(&format!("dumped with {program}")),
        "{}",
        applied.output()
    );
    let restored = report["rollback"]["restored"][0].as_str().unwrap_or("");
    assert!(
        restored.contains("pg_restore (PostgreSQL "),
        "{restored}\n{}",
        applied.output()
    );
}
