//! `plan apply` against a real database when a step fails: whatever kind of
//! step fails, and whatever earlier steps changed, the database and its
//! file tree are back exactly as they were, `on_failure` ran, the exit is 1
//! and the report names the step. A step that ignores SIGTERM is ended with
//! its children. A backup changed behind the runner's back is not proved
//! (exit 3, `on_failure` skipped).

use std::time::Duration;

use crate::support::apply::{
    Applied, ON_FAILURE_MARKER, TREE, World, fingerprint, pids, read_tree, step, steps_with,
};
use crate::support::process_running;

/// One way for a run to fail.
struct Case {
    name: &'static str,
    /// Steps after the backup `before`; the one named `broken` fails.
    steps: &'static str,
    /// Witness tags of the steps that must have changed data (an earlier
    /// step and/or the failing one).
    witnesses: &'static [&'static str],
    /// A piece of the failing step's error in the report.
    error: &'static str,
    /// A piece of the failing command's last lines of output, in the
    /// report (`sql` and `check` with `sql` have none).
    output: Option<&'static str>,
}

const EARLY: &str = r#"
script early {
  after   = before
  run     = "sh steps/mutate.sh early ok"
  timeout = "1m"
}
"#;

fn case(name: &'static str) -> Case {
    let (steps, witnesses, error): (&'static str, &'static [&'static str], &'static str) =
        match name {
            "script" => (
                r#"
script broken {
  after   = before
  run     = "sh steps/mutate.sh late fail"
  timeout = "1m"
}
"#,
                &["late"],
                "exited with code 1",
            ),
            // The sql step is one transaction: its own changes never stay;
            // the earlier script's must be undone by the rollback.
            "sql" => (
                r#"
sql broken {
  after = early
  sql   = "insert into partner (name) values ('from the sql step');
           update release set v = '2.0';
           select 1 / 0"
}
"#,
                &["early"],
                "division by zero",
            ),
            "update_exit" => (
                r#"
update broken {
  after   = before
  modules = "all"
  run     = "sh steps/mutate.sh late fail"
  timeout = "1m"
}
"#,
                &["late"],
                "exited with code 1",
            ),
            // Exit 0, but the ERP logged an ERROR line: the default
            // `fail_on_output` of update steps catches it.
            "update_output" => (
                r#"
update broken {
  after   = before
  modules = ["sale", "stock"]
  run     = "sh steps/mutate.sh late error-output"
  timeout = "1m"
}
"#,
                &["late"],
                "fail_on_output",
            ),
            // 200 partners before the run, 220 once `early` added some.
            "check_sql" => (
                r#"
check broken {
  after  = early
  sql    = "select count(*) from partner"
  expect = "200"
}
"#,
                &["early"],
                "expected `200`",
            ),
            "check_run" => (
                r#"
check broken {
  after = early
  run   = "sh steps/mutate.sh late fail"
}
"#,
                &["early", "late"],
                "exited with code 1",
            ),
            "stop" => (
                r#"
stop broken {
  after = early
  run   = "sh steps/mutate.sh late fail"
}
"#,
                &["early", "late"],
                "exited with code 1",
            ),
            "start" => (
                r#"
start broken {
  after = early
  run   = "sh steps/mutate.sh late fail"
}
"#,
                &["early", "late"],
                "exited with code 1",
            ),
            other => panic!("no case `{other}`"),
        };
    let output = match name {
        "sql" | "check_sql" => None,
        "update_output" => Some(" ERROR "),
        _ => Some("failing on purpose"),
    };
    Case {
        name,
        steps,
        witnesses,
        error,
        output,
    }
}

/// A plan that stops the server, backs up the database and the tree, runs
/// `steps` (the early script first when the case has one) and a final
/// check that must never run, and restarts the server on failure.
fn plan_text(title: &str, method: &str, steps: &str, with_early: bool) -> String {
    let early = if with_early { EARLY } else { "" };
    let last = if steps.contains("script hang") {
        "hang"
    } else if steps.contains("script tamper") {
        "tamper"
    } else {
        "broken"
    };
    format!(
        r#"plan "{title}" {{
  from          = "1.0"
  to            = "2.0"
  release_query = "select v from release"
}}

stop server_down {{
  run = "true"
}}

backup before {{
  after  = server_down
  method = "{method}"
  paths  = ["{tree}"]
}}
{early}{steps}
check never_reached {{
  after  = {last}
  sql    = "select 1"
  expect = "1"
}}

on_failure {{
  start server_up {{
    run = "touch {marker}"
  }}
}}
"#,
        tree = TREE,
        marker = ON_FAILURE_MARKER,
    )
}

/// Runs one case and checks everything the rollback promises.
fn run_case(name: &'static str, method: &str) {
    let case = case(name);
    let label = format!("{} ({method})", case.name);
    let world = World::new(&format!("fail_{}_{method}", case.name));
    let with_early = case.witnesses.contains(&"early");
    let plan = world.write_plan(&plan_text(
        &format!("failure in {label}"),
        method,
        case.steps,
        with_early,
    ));
    let before = fingerprint(&world.db);
    let tree_before = read_tree(&world.tree());

    let applied = world.apply(&plan, &[]);
    let report = applied.report();
    let context = format!("case {label}\n--- stderr ---\n{}", applied.stderr);

    assert_eq!(applied.code, Some(1), "{context}");
    for tag in case.witnesses {
        assert!(
            world.witnessed(tag),
            "{context}\nthe step tagged `{tag}` did not change anything: the case tests nothing"
        );
    }
    assert_eq!(report["outcome"], "rolled_back", "{context}");
    assert_eq!(report["exit_code"], 1, "{context}");
    assert_eq!(steps_with(report, "failed"), ["broken"], "{context}");
    let broken = step(report, "broken").expect("the failing step is in the report");
    let error = broken["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(case.error),
        "{context}\nthe step's error `{error}` does not say `{}`",
        case.error
    );
    if let Some(output) = case.output {
        let lines = broken["last_lines"].to_string();
        assert!(
            lines.contains(output),
            "{context}\nthe report's last lines do not show `{output}`: {lines}"
        );
    }
    assert!(
        applied.stderr.contains("step `broken` failed"),
        "{context}\nthe summary does not name the failed step"
    );
    assert_eq!(
        step(report, "never_reached").map(|s| &s["status"]),
        Some(&serde_json::json!("not_run")),
        "{context}"
    );
    assert_eq!(report["rollback"]["proved"], true, "{context}");
    assert_eq!(
        report["rollback"]["differences"],
        serde_json::json!([]),
        "{context}"
    );
    assert_eq!(report["backups"][0]["method"], method, "{context}");
    assert_eq!(report["backups"][0]["state"], "restored", "{context}");

    let after = fingerprint(&world.db);
    assert!(
        before == after,
        "{context}\nthe database differs after the rollback: {:?}",
        plan_runner::db::fingerprint::differences(&before, &after)
    );
    assert_eq!(
        read_tree(&world.tree()),
        tree_before,
        "{context}\nthe file tree differs after the rollback"
    );
    assert!(world.on_failure_ran(), "{context}\non_failure did not run");
    assert_eq!(report["on_failure"][0]["status"], "succeeded", "{context}");
    assert_no_leftovers(&world, &context);
}

/// A proved rollback leaves no failed copy (without --keep-failed), no
/// backup of the tree beside it and no extra database.
fn assert_no_leftovers(world: &World, context: &str) {
    let siblings: Vec<String> = std::fs::read_dir(world.folder.path())
        .expect("read the plan folder")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!(".{}.", TREE)))
        .collect();
    assert!(
        siblings.is_empty(),
        "{context}\nleft beside the tree: {siblings:?}"
    );
    let mut client = world.db.cluster.connect("postgres").expect("connect");
    let prefix = format!("{}_", world.db.name);
    let extra: Vec<String> = client
        .query(
            "select datname::text from pg_database where starts_with(datname, $1)",
            &[&prefix],
        )
        .expect("list databases")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(extra.is_empty(), "{context}\ndatabases left: {extra:?}");
}

#[test]
fn a_failing_script_is_rolled_back() {
    run_case("script", "snapshot");
}

#[test]
fn a_failing_sql_step_is_rolled_back() {
    run_case("sql", "snapshot");
}

#[test]
fn a_failing_update_is_rolled_back() {
    run_case("update_exit", "snapshot");
}

#[test]
fn an_update_logging_an_error_is_rolled_back() {
    run_case("update_output", "snapshot");
}

#[test]
fn a_failing_sql_check_is_rolled_back() {
    run_case("check_sql", "snapshot");
}

#[test]
fn a_failing_run_check_is_rolled_back() {
    run_case("check_run", "snapshot");
}

#[test]
fn a_failing_stop_is_rolled_back() {
    run_case("stop", "snapshot");
}

#[test]
fn a_failing_start_is_rolled_back() {
    run_case("start", "snapshot");
}

#[test]
fn a_failing_script_is_rolled_back_from_a_dump() {
    run_case("script", "dump");
}

#[test]
fn a_failing_update_is_rolled_back_from_a_dump() {
    run_case("update_exit", "dump");
}

#[test]
fn an_update_logging_an_error_is_rolled_back_from_a_dump() {
    run_case("update_output", "dump");
}

#[test]
fn a_timed_out_step_ignoring_sigterm_is_ended_with_its_children() {
    let world = World::new("fail_timeout");
    let plan = world.write_plan(&plan_text(
        "a step that ignores SIGTERM",
        "snapshot",
        r#"
script hang {
  after   = before
  run     = "sh steps/hang.sh"
  timeout = "2s"
}
"#,
        false,
    ));
    let before = fingerprint(&world.db);
    let tree_before = read_tree(&world.tree());

    let applied = world.apply(&plan, &["--grace", "200ms"]);
    let report = applied.report();
    let context = format!("--- stderr ---\n{}", applied.stderr);

    assert!(
        world.witnessed("hang"),
        "{context}\nthe step never got going"
    );
    let pids = pids(&world.path("pids"));
    // The shell, its sleep, the inner shell, the inner shell's sleep and
    // psql.
    assert_eq!(pids.len(), 5, "{context}\npids: {pids:?}");
    let alive: Vec<u32> = pids
        .iter()
        .copied()
        .filter(|&p| process_running(p))
        .collect();
    for &pid in &alive {
        // Not left behind for 300 s when the runner failed to end them.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    assert!(
        alive.is_empty(),
        "{context}\nstill running after apply: {alive:?}"
    );
    assert!(
        applied.elapsed < Duration::from_secs(60),
        "{context}\napply took {:?}: the step was not ended by its timeout",
        applied.elapsed
    );
    assert_eq!(applied.code, Some(1), "{context}");
    assert_eq!(steps_with(report, "failed"), ["hang"], "{context}");
    let error = step(report, "hang").expect("in the report")["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(error.contains("timed out"), "{context}\nerror: {error}");
    assert_eq!(report["rollback"]["proved"], true, "{context}");
    let after = fingerprint(&world.db);
    assert!(
        before == after,
        "{context}\n{:?}",
        plan_runner::db::fingerprint::differences(&before, &after)
    );
    assert_eq!(read_tree(&world.tree()), tree_before, "{context}");
    assert!(world.on_failure_ran(), "{context}\non_failure did not run");
    // The killed psql's backend was still sleeping: the rollback had to
    // end it to swap the databases, and nothing may be left of it.
    let mut client = world.db.cluster.connect("postgres").expect("connect");
    let backends: i64 = client
        .query_one(
            "select count(*) from pg_stat_activity \
             where query like '%pg_sleep(300) /* hang.sh */%' and pid <> pg_backend_pid()",
            &[],
        )
        .expect("read pg_stat_activity")
        .get(0);
    assert_eq!(
        backends, 0,
        "{context}\nthe step's backend is still running"
    );
}

/// A rollback that cannot be proved: exit 3, `on_failure` skipped, and the
/// message says what differs and where things are.
fn assert_not_proved(world: &World, applied: &Applied, tag: &str, differing: &str) {
    let report = applied.report();
    let context = format!("--- stderr ---\n{}", applied.stderr);
    assert!(world.witnessed(tag), "{context}\nthe step did not tamper");
    assert_eq!(applied.code, Some(3), "{context}");
    assert_eq!(report["outcome"], "rollback_failed", "{context}");
    assert_eq!(report["exit_code"], 3, "{context}");
    assert_eq!(report["rollback"]["proved"], false, "{context}");
    let differences = report["rollback"]["differences"].to_string();
    assert!(
        differences.contains(differing),
        "{context}\nthe differences do not name `{differing}`: {differences}"
    );
    let message = report["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("COULD NOT BE PROVED") && message.contains("on_failure was NOT run"),
        "{context}\nmessage: {message}"
    );
    assert!(applied.stderr.contains("COULD NOT BE PROVED"), "{context}");
    assert!(
        !world.on_failure_ran(),
        "{context}\non_failure ran after an unproved rollback"
    );
    assert_eq!(report["on_failure"], serde_json::json!([]), "{context}");
    assert!(
        report["rollback"]["failed_copies"]
            .as_array()
            .is_some_and(|c| !c.is_empty()),
        "{context}\nthe failed copy must be kept for a post-mortem"
    );
}

#[test]
fn a_backup_changed_behind_the_runners_back_is_not_proved() {
    let world = World::new("fail_tampered_snapshot");
    let plan = world.write_plan(&plan_text(
        "a tampered snapshot",
        "snapshot",
        r#"
script tamper {
  after   = before
  run     = "sh steps/tamper.sh"
  timeout = "1m"
}
"#,
        false,
    ));
    let applied = world.apply(&plan, &[]);
    assert_not_proved(&world, &applied, "tamper", "partner");
    // The runner put the (tampered) backup in place and said so; the
    // failed database is kept beside it.
    let mut client = world.db.connect();
    let tampered: i64 = client
        .query_one(
            "select count(*) from partner where name = 'written into the backup'",
            &[],
        )
        .expect("query the restored database")
        .get(0);
    assert_eq!(tampered, 1);
}

#[test]
fn a_file_backup_changed_behind_the_runners_back_is_not_proved() {
    let world = World::new("fail_tampered_tree");
    let plan = world.write_plan(&plan_text(
        "a tampered tree backup",
        "snapshot",
        r#"
script tamper {
  after   = before
  run     = "sh steps/tamper_tree.sh"
  timeout = "1m"
}
"#,
        false,
    ));
    let applied = world.apply(&plan, &[]);
    assert_not_proved(&world, &applied, "tamper_tree", "top.txt");
}

/// Two backups of the same database and tree in one run (before the
/// scripts, and again before the update): the rollback restores the
/// earliest, and the second must not spoil it.
fn two_backups(method: &str) {
    let world = World::new(&format!("fail_two_backups_{method}"));
    let plan = world.write_plan(&format!(
        r#"plan "two backups" {{
  from          = "1.0"
  to            = "2.0"
  release_query = "select v from release"
}}

stop server_down {{
  run = "true"
}}

backup before {{
  after  = server_down
  method = "{method}"
  paths  = ["{tree}"]
}}

script early {{
  after   = before
  run     = "sh steps/mutate.sh early ok"
  timeout = "1m"
}}

backup before_update {{
  after  = early
  method = "{method}"
  paths  = ["{tree}"]
}}

update broken {{
  after   = before_update
  modules = "all"
  run     = "sh steps/mutate.sh late fail"
  timeout = "1m"
}}

check never_reached {{
  after  = broken
  sql    = "select 1"
  expect = "1"
}}

on_failure {{
  start server_up {{
    run = "touch {marker}"
  }}
}}
"#,
        tree = TREE,
        marker = ON_FAILURE_MARKER,
    ));
    let before = fingerprint(&world.db);
    let tree_before = read_tree(&world.tree());

    let applied = world.apply(&plan, &[]);
    let report = applied.report();
    let context = format!("two backups ({method})\n--- stderr ---\n{}", applied.stderr);
    assert!(
        world.witnessed("early") && world.witnessed("late"),
        "{context}"
    );
    assert_eq!(applied.code, Some(1), "{context}");
    assert_eq!(steps_with(report, "failed"), ["broken"], "{context}");
    assert_eq!(report["rollback"]["proved"], true, "{context}");
    let after = fingerprint(&world.db);
    assert!(
        before == after,
        "{context}\n{:?}",
        plan_runner::db::fingerprint::differences(&before, &after)
    );
    assert_eq!(read_tree(&world.tree()), tree_before, "{context}");
    assert!(world.on_failure_ran(), "{context}\non_failure did not run");
}

#[test]
fn two_snapshots_in_one_run_roll_back_to_the_first() {
    two_backups("snapshot");
}

#[test]
fn two_dumps_in_one_run_roll_back_to_the_first() {
    two_backups("dump");
}

/// The failed database, kept aside with `--keep-failed`, shows what the
/// run left before the rollback: the earlier script's changes, and nothing
/// of the sql step that failed (one transaction).
#[test]
fn a_failing_sql_step_leaves_nothing_of_its_own() {
    let world = World::new("fail_sql_kept");
    let plan = world.write_plan(&plan_text(
        "a failing sql step, kept",
        "snapshot",
        case("sql").steps,
        true,
    ));
    let applied = world.apply(&plan, &["--keep-failed"]);
    let report = applied.report();
    let context = format!("--- stderr ---\n{}", applied.stderr);
    assert_eq!(applied.code, Some(1), "{context}");
    assert_eq!(report["rollback"]["proved"], true, "{context}");
    let failed: Vec<String> = report["rollback"]["failed_copies"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c.as_str())
        .filter(|c| c.starts_with(&world.db.name))
        .map(str::to_string)
        .collect();
    assert_eq!(failed.len(), 1, "{context}\nfailed copies: {failed:?}");
    let failed = &failed[0];
    let mut maintenance = world.db.cluster.connect("postgres").expect("connect");
    maintenance
        .batch_execute(&format!(
            "alter database \"{}\" allow_connections true",
            failed.replace('"', "\"\"")
        ))
        .expect("open the failed copy");
    let mut client = world
        .db
        .cluster
        .connect(failed)
        .expect("connect to the failed copy");
    let count = |client: &mut postgres::Client, sql: &str| -> i64 {
        client
            .query_one(sql, &[])
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .get(0)
    };
    assert_eq!(
        count(
            &mut client,
            "select count(*) from partner where lower(name) like 'added by early %'"
        ),
        20,
        "{context}\nthe earlier script's changes are not in the failed copy"
    );
    assert_eq!(
        count(
            &mut client,
            "select count(*) from partner where name = 'from the sql step'"
        ),
        0,
        "{context}\nthe failed sql step's insert stayed"
    );
    assert_eq!(
        count(&mut client, "select count(*) from release where v = '1.0'"),
        1,
        "{context}\nthe failed sql step's update stayed"
    );
}
