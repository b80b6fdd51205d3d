//! The roles partners really use: Odoo's own role, which owns its
//! database and has CREATEDB, and nothing more (no superuser, no grant in
//! the maintenance database). On a cluster of the test's own (so that the
//! test decides who creates `plan_runner.runs` first): the first run is
//! refused with the one GRANT line it needs, and once a DBA ran that line,
//! such a role applies, snapshots and rolls back (proved by fingerprints
//! and file trees, with a snapshot and with a dump), keeps a failed copy,
//! recovers after kill -9, and a second customer's role shares the runs
//! record without any grant. A record made closed by an older runner is
//! named by the grant it needs, and opened by its owner's next run.
//! `--dry-run` lists every privilege the run needs and which are missing,
//! and a role without CREATEDB is refused before any step, with the same
//! line. The free-space check says what it could not read, and why.

use std::process::{Command, Output, Stdio};

use plan_runner::cluster::Cluster;
use plan_runner::db::fingerprint::{self, Fingerprint};

use crate::support::apply::{self, Applied, PlanFolder, read_tree};
use crate::support::{self, TestDatabase};

/// A customer: a role that owns one database and may create databases.
struct Customer {
    role: String,
    db: TestDatabase,
    folder: PlanFolder,
    state: tempfile::TempDir,
}

fn superuser(cluster: &Cluster, sql: &str) {
    cluster
        .connect("postgres")
        .expect("connect as the superuser")
        .batch_execute(sql)
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Creates `role`: LOGIN, NOSUPERUSER, CREATEDB unless `createdb` is
/// false.
fn role(cluster: &Cluster, role: &str, createdb: bool) {
    superuser(
        cluster,
        &format!(
            "create role {role} login password 'not-a-superuser' nosuperuser {} nocreaterole",
            if createdb { "createdb" } else { "nocreatedb" }
        ),
    );
}

/// A new database `name` owned by `role` and seeded by it at release 1.0,
/// with a filestore beside the plan.
fn customer(cluster: &'static Cluster, role: &str, name: &str, plan: &str) -> Customer {
    superuser(cluster, &format!("create database {name} owner {role}"));
    let db = TestDatabase {
        name: name.to_string(),
        cluster,
    };
    let mut client = cluster
        .config(name)
        .user(role)
        .connect(postgres::NoTls)
        .expect("connect as the customer's role");
    client
        .batch_execute(
            "create table release (v text);
             insert into release values ('1.0');
             create table partner (id serial primary key, name text);
             insert into partner (name) select 'partner ' || g from generate_series(1, 50) g;",
        )
        .expect("seeding as the customer's role");
    drop(client);
    let folder = PlanFolder::new(plan)
        .file("slow.sh", "touch slow_started\nsleep 120\n")
        .file("mark.sh", "touch on_failure_ran\n");
    std::fs::create_dir_all(folder.path().join("filestore/sub")).unwrap();
    std::fs::write(folder.path().join("filestore/sub/a.txt"), "attachment").unwrap();
    Customer {
        role: role.into(),
        db,
        folder,
        state: apply::state_dir(),
    }
}

impl Customer {
    /// `plan ARGS... --database DB --state-dir STATE` as this role.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = support::plan_command(self.db.cluster);
        cmd.env("PGUSER", &self.role)
            .args(args)
            .args(["--database", &self.db.name, "--state-dir"])
            .arg(self.state.path());
        cmd
    }

    fn apply(&self, extra: &[&str]) -> Applied {
        let plan = self.folder.plan();
        let mut args = vec!["apply", plan.to_str().unwrap(), "--grace", "2s"];
        args.extend_from_slice(extra);
        apply::run(&mut self.command(&args), self.state.path())
    }

    fn dry_run(&self) -> Output {
        let plan = self.folder.plan();
        self.command(&["apply", plan.to_str().unwrap(), "--dry-run"])
            .output()
            .unwrap()
    }

    fn recover(&self) -> Output {
        self.command(&["recover"]).output().unwrap()
    }

    fn fingerprint(&self) -> Fingerprint {
        apply::fingerprint(&self.db)
    }

    fn files(&self) -> std::collections::BTreeMap<String, apply::Node> {
        read_tree(&self.folder.path().join("filestore"))
    }

    fn release(&self) -> String {
        self.db
            .connect()
            .query_one("select v from release", &[])
            .unwrap()
            .get(0)
    }

    fn on_failure_ran(&self) -> bool {
        self.folder.path().join("on_failure_ran").exists()
    }

    fn databases(&self) -> Vec<String> {
        apply::related_databases(&self.db)
    }
}

/// The plan: stop, snapshot with the filestore, change the data and the
/// files, check, start. `check_expect` decides whether the check passes
/// (50 partners before, 51 after the change); `slow` adds a step that
/// waits, for kill -9.
fn plan(check_expect: &str, slow: bool) -> String {
    plan_with("snapshot", check_expect, slow)
}

/// [`plan`] with the backup's `method`.
fn plan_with(method: &str, check_expect: &str, slow: bool) -> String {
    let slow = if slow {
        r#"
script slow {
  after   = change
  run     = "sh slow.sh"
  timeout = "5m"
}
"#
    } else {
        ""
    };
    let check_after = if slow.is_empty() { "change" } else { "slow" };
    format!(
        r#"plan "odoo role" {{
  from          = "1.0"
  to            = "2.0"
  release_query = "select v from release"
}}

stop old_down {{
  run = "true"
}}

backup before {{
  after  = old_down
  method = "{method}"
  paths  = ["filestore"]
}}

sql change {{
  after = before
  sql   = "insert into partner (name) values ('migrated'); update release set v = '2.0'"
}}
{slow}
script files {{
  after   = change
  run     = "sh -c 'echo changed > filestore/sub/a.txt'"
  timeout = "1m"
}}

check settled {{
  after  = [{check_after}, files]
  sql    = "select count(*) from partner"
  expect = "{check_expect}"
}}

start new_up {{
  after = settled
  run   = "true"
}}

on_failure {{
  start old_up {{
    run = "sh mark.sh"
  }}
}}
"#
    )
}

fn passing() -> String {
    plan("51", false)
}

fn failing() -> String {
    plan("50", false)
}

/// The line of `text` that starts with `GRANT` or `ALTER`, trimmed.
fn line_to_copy(text: &str, starts: &str) -> String {
    text.lines()
        .map(str::trim)
        .find_map(|l| l.find(starts).map(|at| l[at..].to_string()))
        .unwrap_or_else(|| panic!("no `{starts}` line to copy in:\n{text}"))
}

/// A cluster of the test's own: the runs record in its `postgres` does
/// not exist yet, whatever the other tests did.
fn own_cluster() -> &'static Cluster {
    support::private_cluster()
}

fn assert_unchanged(
    c: &Customer,
    before: &Fingerprint,
    files: &std::collections::BTreeMap<String, apply::Node>,
) {
    assert_eq!(
        fingerprint::differences(before, &c.fingerprint()),
        Vec::<String>::new(),
        "the database is as it was"
    );
    assert_eq!(&c.files(), files, "the filestore is as it was");
}

#[test]
fn an_owner_with_createdb_applies_rolls_back_and_shares_the_runs_record_with_another_role() {
    let cluster = own_cluster();
    role(cluster, "odoo", true);
    let odoo = customer(cluster, "odoo", "customer", &passing());
    apply::assert_lints_clean(&odoo.folder.plan());
    let before = odoo.fingerprint();
    let files = odoo.files();

    // Nothing in `postgres` is writable by the role: refused, nothing
    // changed, and the message gives the one line a DBA runs.
    let refused = odoo.apply(&[]);
    refused.assert_code(4);
    assert_eq!(refused.outcome(), "refused", "{}", refused.output());
    let grant = line_to_copy(&refused.stderr, "GRANT ");
    assert_eq!(
        grant,
        "GRANT CREATE ON DATABASE postgres TO odoo;",
        "{}",
        refused.output()
    );
    assert_unchanged(&odoo, &before, &files);
    assert!(apply::history(&odoo.db).is_empty());
    assert_eq!(odoo.databases(), std::slice::from_ref(&odoo.db.name));

    superuser(cluster, &grant);
    let applied = odoo.apply(&[]);
    applied.assert_code(0);
    assert_eq!(applied.outcome(), "succeeded");
    assert_eq!(odoo.release(), "2.0");
    let history = apply::history(&odoo.db);
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0].outcome, "succeeded");
    assert_eq!(history[0].to_release, "2.0");
    assert_eq!(
        odoo.databases().len(),
        2,
        "the snapshot is kept: {:?}",
        odoo.databases()
    );

    // The same role, a plan that fails, on a second database it owns:
    // rolled back by its snapshot, proved, with the failed copy kept.
    let second = customer(cluster, "odoo", "customer_two", &failing());
    let before2 = second.fingerprint();
    let files2 = second.files();
    let failed = second.apply(&["--keep-failed"]);
    failed.assert_code(1);
    assert_eq!(failed.outcome(), "rolled_back", "{}", failed.output());
    assert_unchanged(&second, &before2, &files2);
    assert!(
        second.on_failure_ran(),
        "on_failure ran after the proved rollback"
    );
    assert_eq!(second.release(), "1.0");
    let rollback = &failed.report()["rollback"];
    assert_eq!(rollback["proved"], true, "{rollback}");
    // The failed database and the failed filestore, both kept.
    let failed_copies: Vec<String> = rollback["failed_copies"]
        .as_array()
        .map(|c| {
            c.iter()
                .filter_map(|c| c.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        failed_copies.len(),
        2,
        "--keep-failed kept them: {rollback}"
    );
    let kept_failed = failed_copies
        .iter()
        .find(|c| !c.starts_with('/'))
        .unwrap_or_else(|| panic!("no failed database copy: {rollback}"))
        .clone();
    assert!(
        second.databases().contains(&kept_failed),
        "{:?}",
        second.databases()
    );

    // A second customer, another role, granted nothing: the runs record
    // the first role's run created is open to it.
    role(cluster, "odoo2", true);
    let other = customer(cluster, "odoo2", "other_customer", &failing());
    let before3 = other.fingerprint();
    let files3 = other.files();
    let failed = other.apply(&[]);
    failed.assert_code(1);
    assert_eq!(failed.outcome(), "rolled_back", "{}", failed.output());
    assert_unchanged(&other, &before3, &files3);
    assert!(other.on_failure_ran());
    other.folder.rewrite(&passing());
    let applied2 = other.apply(&[]);
    applied2.assert_code(0);
    assert_eq!(other.release(), "2.0");

    // Each role's rows are its own: odoo2 reads odoo's but cannot close
    // or rewrite them.
    let mut as_odoo2 = cluster
        .config("postgres")
        .user("odoo2")
        .connect(postgres::NoTls)
        .unwrap();
    let rows: i64 = as_odoo2
        .query_one("select count(*) from plan_runner.runs", &[])
        .unwrap()
        .get(0);
    assert_eq!(rows, 4, "every run is visible to every role");
    let changed = as_odoo2
        .execute(
            "update plan_runner.runs set state = 'running' where run_id = $1",
            &[&applied.run_id()],
        )
        .unwrap();
    assert_eq!(changed, 0, "another role's run is not odoo2's to change");
    let own = as_odoo2
        .execute(
            "update plan_runner.runs set state = state where run_id = $1",
            &[&applied2.run_id()],
        )
        .unwrap();
    assert_eq!(own, 1, "its own run is");
}

#[test]
fn an_owner_role_recovers_its_run_after_kill_9() {
    let cluster = own_cluster();
    // A superuser's run creates the runs record first: it is open to
    // the role all the same.
    let boss = customer(cluster, cluster.user(), "boss", &passing());
    boss.apply(&[]).assert_code(0);
    role(cluster, "odoo_k", true);
    let odoo = customer(cluster, "odoo_k", "killed", &plan("51", true));
    apply::assert_lints_clean(&odoo.folder.plan());
    let before = odoo.fingerprint();
    let files = odoo.files();

    let plan_path = odoo.folder.plan();
    let mut runner = odoo
        .command(&["apply", plan_path.to_str().unwrap(), "--grace", "2s"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = odoo.folder.path().join("slow_started");
    support::wait_for(&mut runner, "the slow step", || {
        started.exists().then_some(())
    });
    runner.kill().expect("kill -9 the runner");
    runner.wait().unwrap();
    assert_eq!(odoo.release(), "2.0", "the change ran before the kill");

    // A new apply is refused: the run is unfinished.
    let refused = odoo.apply(&[]);
    refused.assert_code(4);
    assert!(
        refused.stderr.contains("plan recover"),
        "{}",
        refused.output()
    );

    let recovered = odoo.recover();
    let text = String::from_utf8_lossy(&recovered.stderr);
    assert_eq!(recovered.status.code(), Some(0), "{text}");
    assert_unchanged(&odoo, &before, &files);
    assert_eq!(odoo.release(), "1.0");
    assert!(odoo.on_failure_ran(), "{text}");
    let again = odoo.recover();
    let again = String::from_utf8_lossy(&again.stderr);
    assert!(again.contains("nothing to recover"), "{again}");
    assert_eq!(odoo.databases(), std::slice::from_ref(&odoo.db.name));
}

#[test]
fn dry_run_lists_the_privileges_and_a_role_without_createdb_is_refused_before_any_step() {
    let cluster = own_cluster();
    role(cluster, "clerk", false);
    superuser(cluster, "grant create on database postgres to clerk");
    let clerk = customer(cluster, "clerk", "clerk_db", &passing());
    let before = clerk.fingerprint();
    let files = clerk.files();

    let dry = clerk.dry_run();
    let out = String::from_utf8_lossy(&dry.stdout).into_owned();
    assert_eq!(dry.status.code(), Some(4), "{out}");
    let missing: Vec<&str> = out.lines().filter(|l| l.contains("MISSING")).collect();
    assert_eq!(missing.len(), 1, "only CREATEDB is missing: {out}");
    assert!(missing[0].contains("CREATEDB"), "{out}");
    let alter = line_to_copy(&out, "ALTER ROLE ");
    assert_eq!(alter, "ALTER ROLE clerk CREATEDB;", "{out}");

    let refused = clerk.apply(&[]);
    refused.assert_code(4);
    assert_eq!(refused.outcome(), "refused");
    assert_eq!(
        line_to_copy(&refused.stderr, "ALTER ROLE "),
        alter,
        "the refusal gives the dry run's line: {}",
        refused.output()
    );
    assert!(
        apply::steps_with(refused.report(), "succeeded").is_empty()
            && apply::steps_with(refused.report(), "failed").is_empty(),
        "no step ran: {}",
        refused.output()
    );
    assert_unchanged(&clerk, &before, &files);
    assert!(apply::history(&clerk.db).is_empty());
    assert!(!clerk.on_failure_ran());

    // The proper role: every privilege present, the free-space check
    // named with what it could not read.
    role(cluster, "odoo_d", true);
    let odoo = customer(cluster, "odoo_d", "odoo_d_db", &passing());
    let dry = odoo.dry_run();
    let out = String::from_utf8_lossy(&dry.stdout).into_owned();
    // The runs record is not there yet, and the role may not create it.
    assert_eq!(dry.status.code(), Some(4), "{out}");
    assert!(
        out.contains("GRANT CREATE ON DATABASE postgres TO odoo_d;"),
        "{out}"
    );
    superuser(cluster, "grant create on database postgres to odoo_d");
    let dry = odoo.dry_run();
    let out = String::from_utf8_lossy(&dry.stdout).into_owned();
    assert_eq!(dry.status.code(), Some(0), "{out}");
    assert!(!out.contains("MISSING"), "{out}");
    for needed in ["CREATEDB", "owns `odoo_d_db`", "plan_runner.runs"] {
        assert!(out.contains(needed), "names {needed}: {out}");
    }
    assert!(out.contains("not checked"), "{out}");
    assert!(
        out.contains("GRANT pg_read_all_settings TO odoo_d;"),
        "{out}"
    );
    let applied = odoo.apply(&[]);
    applied.assert_code(0);
    assert!(
        applied.stderr.contains("not checked")
            && applied
                .stderr
                .contains("GRANT pg_read_all_settings TO odoo_d;"),
        "apply says the copy's room was not checked, and why: {}",
        applied.output()
    );

    // With the setting readable, the snapshot's room is checked.
    superuser(cluster, "grant pg_read_all_settings to odoo_d");
    let next = customer(cluster, "odoo_d", "odoo_d_next", &passing());
    let dry = next.dry_run();
    let out = String::from_utf8_lossy(&dry.stdout).into_owned();
    assert_eq!(dry.status.code(), Some(0), "{out}");
    assert!(out.contains("copy made by the server in"), "{out}");
    assert!(!out.contains("pg_read_all_settings TO"), "{out}");
    let applied = next.apply(&[]);
    applied.assert_code(0);
    let line = applied
        .stderr
        .lines()
        .find(|l| l.contains("free space: snapshot of `odoo_d_next`"))
        .unwrap_or_else(|| panic!("the snapshot's room is checked: {}", applied.output()));
    assert!(
        line.contains("needs") && line.contains("free") && !line.contains("not checked"),
        "{line}"
    );
}

#[test]
fn an_owner_role_rolls_back_a_dump_backup() {
    let cluster = own_cluster();
    role(cluster, "odoo_dump", true);
    superuser(cluster, "grant create on database postgres to odoo_dump");
    let odoo = customer(
        cluster,
        "odoo_dump",
        "dumped",
        &plan_with("dump", "50", false),
    );
    apply::assert_lints_clean(&odoo.folder.plan());
    let before = odoo.fingerprint();
    let files = odoo.files();
    let failed = odoo.apply(&[]);
    failed.assert_code(1);
    assert_eq!(failed.outcome(), "rolled_back", "{}", failed.output());
    assert_eq!(failed.report()["rollback"]["proved"], true);
    assert_unchanged(&odoo, &before, &files);
    assert_eq!(odoo.release(), "1.0");
    assert!(odoo.on_failure_ran());
    assert_eq!(odoo.databases(), std::slice::from_ref(&odoo.db.name));
}

/// The runs record as plan-runner made it before it was opened to other
/// roles: a table of the superuser's, no grants.
const CLOSED_RECORD: &str = "create schema plan_runner;
    create table plan_runner.runs (
        run_id text primary key, target text not null, host text not null,
        pid integer not null, plan text not null, plan_sha256 text not null,
        started_at timestamptz not null default now(), ended_at timestamptz,
        state text not null, run_folder text)";

#[test]
fn a_runs_record_made_closed_is_refused_with_its_grant_and_opened_by_its_owners_next_run() {
    let cluster = own_cluster();
    superuser(cluster, CLOSED_RECORD);
    role(cluster, "odoo_old", true);
    let odoo = customer(cluster, "odoo_old", "old_record", &passing());
    let before = odoo.fingerprint();
    let files = odoo.files();
    let refused = odoo.apply(&[]);
    refused.assert_code(4);
    assert_eq!(
        line_to_copy(&refused.stderr, "GRANT "),
        "GRANT USAGE ON SCHEMA plan_runner TO odoo_old; GRANT SELECT, INSERT, UPDATE ON plan_runner.runs TO odoo_old;",
        "{}",
        refused.output()
    );
    assert_unchanged(&odoo, &before, &files);

    // The table's owner (the superuser) runs once: the record is opened.
    let boss = customer(cluster, cluster.user(), "old_boss", &passing());
    boss.apply(&[]).assert_code(0);
    let applied = odoo.apply(&[]);
    applied.assert_code(0);
    assert_eq!(odoo.release(), "2.0");
    let role: String = cluster
        .connect("postgres")
        .unwrap()
        .query_one(
            "select run_role from plan_runner.runs where run_id = $1",
            &[&applied.run_id()],
        )
        .unwrap()
        .get(0);
    assert_eq!(role, "odoo_old", "the row is the role's own");
}

#[test]
fn a_role_that_may_not_connect_to_the_maintenance_database_is_told_the_grant() {
    let cluster = own_cluster();
    superuser(cluster, "revoke connect on database postgres from public");
    role(cluster, "odoo_c", true);
    let odoo = customer(cluster, "odoo_c", "no_connect", &passing());
    let before = odoo.fingerprint();
    let files = odoo.files();

    let dry = odoo.dry_run();
    let out = String::from_utf8_lossy(&dry.stdout).into_owned();
    assert_eq!(dry.status.code(), Some(4), "{out}");
    let grant = line_to_copy(&out, "GRANT ");
    assert_eq!(
        grant,
        "GRANT CONNECT ON DATABASE \"postgres\" TO \"odoo_c\";"
    );

    let refused = odoo.apply(&[]);
    refused.assert_code(4);
    assert_eq!(refused.outcome(), "refused");
    assert_eq!(line_to_copy(&refused.stderr, "GRANT "), grant);
    assert_unchanged(&odoo, &before, &files);

    // Each line run tells the next one, until the run goes through.
    superuser(cluster, &grant);
    let refused = odoo.apply(&[]);
    refused.assert_code(4);
    let next = line_to_copy(&refused.stderr, "GRANT ");
    assert_eq!(next, "GRANT CREATE ON DATABASE postgres TO odoo_c;");
    superuser(cluster, &next);
    odoo.apply(&[]).assert_code(0);
    assert_eq!(odoo.release(), "2.0");
}

/// The usual Odoo role rehearses its own database: the snapshot copy, the
/// run on it with its own snapshot, the rehearsed rollback and the drop
/// all work with CREATEDB and nothing more; then a dump of its database
/// is rehearsed the same way, restored by that role.
#[test]
fn an_owner_role_rehearses_its_database_from_a_snapshot_and_from_a_dump() {
    let cluster = own_cluster();
    role(cluster, "odoo_rehearse", true);
    superuser(
        cluster,
        "grant create on database postgres to odoo_rehearse",
    );
    let odoo = customer(cluster, "odoo_rehearse", "rehearsed", &passing());
    apply::assert_lints_clean(&odoo.folder.plan());
    let before = odoo.fingerprint();
    let files = odoo.files();
    let plan = odoo.folder.plan();
    let rehearsed = odoo
        .command(&["rehearse", plan.to_str().unwrap()])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&rehearsed.stderr);
    assert_eq!(rehearsed.status.code(), Some(0), "{said}");
    assert!(said.contains(": passed in"), "{said}");
    assert_unchanged(&odoo, &before, &files);
    assert_eq!(odoo.release(), "1.0");
    assert!(apply::history(&odoo.db).is_empty());
    assert_eq!(odoo.databases(), std::slice::from_ref(&odoo.db.name));

    let dump = odoo.state.path().join("rehearsed.dump");
    let dumped = Command::new(cluster.bin("pg_dump"))
        .args(["-Fc", "-U", "odoo_rehearse", "-f"])
        .arg(&dump)
        .arg(cluster.connection_string(&odoo.db.name))
        .output()
        .unwrap();
    assert!(dumped.status.success(), "{dumped:?}");
    let from_dump = odoo
        .command(&[
            "rehearse",
            plan.to_str().unwrap(),
            "--from-dump",
            dump.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&from_dump.stderr);
    assert_eq!(from_dump.status.code(), Some(0), "{said}");
    assert!(said.contains("copy: dump of"), "{said}");
    assert_unchanged(&odoo, &before, &files);
    assert_eq!(odoo.databases(), std::slice::from_ref(&odoo.db.name));
}

/// A role that may not keep the runs record is told the line a DBA runs,
/// before anything is copied.
#[test]
fn a_rehearsal_by_a_role_that_may_not_keep_the_runs_record_is_told_the_grant() {
    let cluster = own_cluster();
    role(cluster, "odoo_no_record", true);
    let odoo = customer(cluster, "odoo_no_record", "unrecorded", &passing());
    let before = odoo.fingerprint();
    let plan = odoo.folder.plan();
    let out = odoo
        .command(&["rehearse", plan.to_str().unwrap()])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{said}");
    assert_eq!(
        line_to_copy(&said, "GRANT "),
        "GRANT CREATE ON DATABASE postgres TO odoo_no_record;",
        "{said}"
    );
    assert_eq!(odoo.databases(), std::slice::from_ref(&odoo.db.name));
    assert_eq!(
        fingerprint::differences(&before, &odoo.fingerprint()),
        Vec::<String>::new()
    );
}
