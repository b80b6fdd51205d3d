//! Odoo-native behaviour against the demo's stand-in ERP server
//! (`plans/demo/fixture/erp-server.py`) on a real cluster: the release read
//! from the `base` module, the modules an update must leave settled,
//! `install` as `-i`, a `start` that waits for the server to answer, a
//! `stop` that waits for its sessions to leave, and the failure summary's
//! first error line. Each failure compares fingerprints and file trees
//! before and after, the exit code and the report's outcome.

use std::fs;
use std::path::PathBuf;

use crate::support::apply::{
    Applied, PlanFolder, apply_command, assert_lints_clean, execute, fingerprint, history,
    read_tree, run, state_dir, step,
};
use crate::support::demo::{copy_filestore, demo_database, fixture};
use crate::support::{Server, free_port};
use crate::support::{TestDatabase, database};

fn erp_server() -> String {
    fixture().join("erp-server.py").display().to_string()
}

/// A database seeded as the demo's, and a plan folder holding its
/// filestore under `filestore/<db>`.
struct Erp {
    db: TestDatabase,
    folder: PlanFolder,
    state: tempfile::TempDir,
}

impl Erp {
    fn new(label: &str) -> Erp {
        let db = demo_database(label);
        let folder = PlanFolder::new("");
        copy_filestore(&folder.path().join("filestore").join(&db.name));
        Erp {
            db,
            folder,
            state: state_dir(),
        }
    }

    fn filestore(&self) -> PathBuf {
        self.folder.path().join("filestore").join(&self.db.name)
    }

    fn write_plan(&self, text: &str) {
        self.folder.rewrite(text);
        assert_lints_clean(&self.folder.plan());
    }

    /// `plan apply` with the cluster's `psql` first on the PATH (the
    /// stand-in server talks through it) and `env` for the steps.
    fn apply(&self, env: &[(&str, &str)], extra: &[&str]) -> Applied {
        let mut cmd = apply_command(&self.db, &self.folder.plan(), self.state.path(), extra);
        let bin = self.db.cluster.bin("psql");
        let bin = bin.parent().expect("the cluster's bin folder");
        cmd.env(
            "PATH",
            format!(
                "{}:{}",
                bin.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        );
        for (k, v) in env {
            cmd.env(k, v);
        }
        let applied = run(&mut cmd, self.state.path());
        assert!(applied.report.is_some(), "no report\n{}", applied.output());
        applied
    }

    fn on_failure_ran(&self) -> bool {
        self.folder.path().join("on_failure.ran").is_file()
    }

    fn module_state(&self, name: &str) -> Option<(String, String)> {
        self.db
            .connect()
            .query_opt(
                "select state, latest_version from ir_module_module where name = $1",
                &[&name],
            )
            .expect("reading the registry")
            .map(|r| (r.get(0), r.get(1)))
    }
}

/// The demo's procedure, with no `release_query` (the release comes from
/// the `base` module): `update_extra` goes into the update step,
/// `start_extra` into the start step's block, `start_run` is its command.
fn plan(update_extra: &str, start_run: &str, start_extra: &str) -> String {
    format!(
        r#"plan "odoo modules" {{
  from = "1.0"
  to   = "2.0"
  update_command = "python3 ${{erp}} -d ${{db}} --data-dir filestore --update=${{modules}} --stop-after-init"
}}

var erp = "{erp}"

stop server_down {{
  run = "python3 ${{erp}} --stop -d ${{db}}"
}}

backup before {{
  after = server_down
  paths = ["filestore/${{db}}"]
}}

update all_modules {{
  after   = before
  timeout = "5m"
  {update_extra}
}}

check settled {{
  after  = all_modules
  sql    = "select count(*) from ir_module_module where state like 'to %'"
  expect = "0"
}}

start server_up {{
  after = settled
  run   = "{start_run}"
  {start_extra}
}}

on_failure {{
  start old_server_up {{
    run = "touch on_failure.ran"
  }}
}}
"#,
        erp = erp_server()
    )
}

const PLAIN_START: &str = "python3 ${erp} --start -d ${db}";

/// Asserts a run failed in `failed_step`, was rolled back and proved, and
/// left the database and the filestore as they were.
fn assert_rolled_back(
    erp: &Erp,
    applied: &Applied,
    failed_step: &str,
    before: &plan_runner::db::fingerprint::Fingerprint,
    tree: &std::collections::BTreeMap<String, crate::support::apply::Node>,
) {
    applied.assert_code(1);
    assert_eq!(applied.outcome(), "rolled_back", "{}", applied.output());
    assert_eq!(applied.report()["rollback"]["proved"], true);
    let failed = step(applied.report(), failed_step).expect("the step is reported");
    assert_eq!(failed["status"], "failed", "{}", applied.output());
    assert_eq!(&fingerprint(&erp.db), before, "{}", applied.output());
    assert_eq!(&read_tree(&erp.filestore()), tree);
    assert!(
        !history(&erp.db).iter().any(|h| h.outcome == "succeeded"),
        "{:?}",
        history(&erp.db)
    );
    assert!(
        erp.on_failure_ran(),
        "on_failure runs after a proved rollback"
    );
}

#[test]
fn a_module_left_to_upgrade_rolls_back_naming_it() {
    let erp = Erp::new("odoo_left_to_upgrade");
    erp.write_plan(&plan(r#"modules = "all""#, PLAIN_START, ""));
    let before = fingerprint(&erp.db);
    let tree = read_tree(&erp.filestore());

    let applied = erp.apply(&[("DEMO_LEAVE_TO_UPGRADE", "sale")], &[]);

    assert_rolled_back(&erp, &applied, "all_modules", &before, &tree);
    let error = step(applied.report(), "all_modules").unwrap()["error"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(
        error.contains("`sale` (to upgrade)"),
        "the error names the module and its state: {error}"
    );
    assert_eq!(
        step(applied.report(), "settled").unwrap()["status"],
        "not_run",
        "the built-in check fails the update itself"
    );
    assert!(
        applied.stderr.contains("`sale` (to upgrade)"),
        "{}",
        applied.output()
    );
}

#[test]
fn a_named_module_missing_from_the_registry_fails_the_update() {
    let erp = Erp::new("odoo_named_absent");
    erp.write_plan(&plan(
        r#"modules = ["sale", "no_such_module"]"#,
        PLAIN_START,
        "",
    ));
    let before = fingerprint(&erp.db);
    let tree = read_tree(&erp.filestore());

    let applied = erp.apply(&[], &[]);

    assert_rolled_back(&erp, &applied, "all_modules", &before, &tree);
    let error = step(applied.report(), "all_modules").unwrap()["error"].to_string();
    assert!(error.contains("`no_such_module` (absent)"), "{error}");
    assert!(!error.contains("`sale`"), "sale did settle: {error}");
}

#[test]
fn check_modules_false_leaves_the_check_to_the_plan() {
    let erp = Erp::new("odoo_check_modules_off");
    erp.write_plan(&plan(
        "modules = \"all\"\n  check_modules = false",
        PLAIN_START,
        "",
    ));
    let before = fingerprint(&erp.db);
    let tree = read_tree(&erp.filestore());

    let applied = erp.apply(&[("DEMO_LEAVE_TO_UPGRADE", "sale")], &[]);

    // The plan's own check catches it one step later.
    assert_rolled_back(&erp, &applied, "settled", &before, &tree);
    assert_eq!(
        step(applied.report(), "all_modules").unwrap()["status"],
        "succeeded"
    );
}

#[test]
fn install_maps_to_dash_i_and_the_update_succeeds() {
    let erp = Erp::new("odoo_install");
    erp.write_plan(&plan(
        "modules = [\"sale\"]\n  install = [\"sale_stock\", \"crm\"]",
        PLAIN_START,
        "",
    ));
    assert_eq!(erp.module_state("sale_stock"), None);

    let show = crate::support::plan()
        .args(["show", "--format", "json"])
        .arg(erp.folder.plan())
        .output()
        .expect("plan show");
    let shown: serde_json::Value = serde_json::from_slice(&show.stdout).expect("JSON");
    let update = shown["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "all_modules")
        .expect("the update is shown")
        .clone();
    let argv: Vec<&str> = update["argv"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    assert_eq!(
        &argv[argv.len() - 2..],
        ["-i", "sale_stock,crm"],
        "install becomes -i: {argv:?}"
    );
    assert!(argv.contains(&"--update=sale"), "{argv:?}");

    let applied = erp.apply(&[], &[]);
    applied.assert_code(0);
    assert_eq!(applied.outcome(), "succeeded");
    assert_eq!(
        erp.module_state("sale_stock"),
        Some(("installed".into(), "2.0.0".into()))
    );
    assert_eq!(
        erp.module_state("crm"),
        Some(("installed".into(), "2.0.0".into()))
    );
    let log = fs::read_to_string(
        step(applied.report(), "all_modules").unwrap()["log"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert!(
        log.contains("installing 2 module(s): sale_stock,crm"),
        "{log}"
    );
    // `plan status` shows what the run changed, from the history.
    let status = crate::support::plan_command(erp.db.cluster)
        .args(["status", "--database", &erp.db.name, "--state-dir"])
        .arg(erp.state.path())
        .output()
        .expect("plan status");
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{text}");
    let line = |name: &str| {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no line for `{name}`:\n{text}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert!(text.contains("modules whose version run"), "{text}");
    assert_eq!(line("sale"), "sale 1.0.4 -> 2.0.0");
    assert_eq!(line("sale_stock"), "sale_stock not installed -> 2.0.0");
    assert_eq!(line("crm"), "crm not installed -> 2.0.0");
    assert!(
        !text.lines().any(|l| l.trim_start().starts_with("stock ")),
        "an unchanged module is not listed:\n{text}"
    );
    let status = crate::support::plan_command(erp.db.cluster)
        .args([
            "status",
            "--database",
            &erp.db.name,
            "--format",
            "json",
            "--state-dir",
        ])
        .arg(erp.state.path())
        .output()
        .expect("plan status");
    let doc: serde_json::Value = serde_json::from_slice(&status.stdout).expect("JSON");
    let modules = doc["runs"][0]["modules"]
        .as_array()
        .expect("modules")
        .clone();
    assert_eq!(modules.len(), 3, "{modules:?}");
}

fn refresh_plan(revision: &str) -> String {
    simple_plan("17.0", "17.0")
        .replacen(
            "  to   = \"17.0\"\n",
            &format!("  to   = \"17.0\"\n\n  refresh = true\n{revision}"),
            1,
        )
        .replace("release 17.0 to 17.0", "refresh 17.0")
}

#[test]
fn a_refresh_runs_once_per_revision() {
    let db = registry_only("odoo_refresh", "17.0.1.3");
    let folder = PlanFolder::new(&refresh_plan(""));
    assert_lints_clean(&folder.plan());
    let state = state_dir();
    let apply = |extra: &[&str]| {
        run(
            &mut apply_command(&db, &folder.plan(), state.path(), extra),
            state.path(),
        )
    };
    let partners = || -> i64 {
        db.connect()
            .query_one("select count(*) from res_partner", &[])
            .unwrap()
            .get(0)
    };

    // No revision to record: refused before anything runs.
    let before = fingerprint(&db);
    let applied = apply(&[]);
    applied.assert_code(4);
    assert_eq!(applied.outcome(), "refused");
    assert!(
        applied.stderr.contains("--revision"),
        "{}",
        applied.output()
    );
    assert_eq!(fingerprint(&db), before);

    let applied = apply(&["--revision", "abc123"]);
    applied.assert_code(0);
    assert_eq!(applied.outcome(), "succeeded", "{}", applied.output());
    assert_eq!(partners(), 3);
    let revisions = || -> Vec<(String, Option<String>)> {
        db.connect()
            .query(
                "select to_release, revision from plan_runner.history where outcome = 'succeeded' order by ended_at",
                &[],
            )
            .unwrap()
            .into_iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    };
    assert_eq!(
        revisions(),
        [("17.0".to_string(), Some("abc123".to_string()))]
    );

    // The same revision again: refused, nothing changed.
    let before = fingerprint(&db);
    let applied = apply(&["--revision", "abc123"]);
    applied.assert_code(4);
    assert_eq!(applied.outcome(), "refused");
    assert!(
        applied
            .stderr
            .contains("already refreshed to 17.0 with revision abc123"),
        "{}",
        applied.output()
    );
    assert_eq!(fingerprint(&db), before);
    assert_eq!(partners(), 3);

    // A new revision runs; so does the old one when told to.
    apply(&["--revision", "def456"]).assert_code(0);
    assert_eq!(partners(), 4);
    apply(&["--revision", "abc123", "--allow-same-revision"]).assert_code(0);
    assert_eq!(partners(), 5);

    // The plan's own revision, from the environment: def456 is done.
    let text = refresh_plan("  revision = \"${rev}\"\n");
    folder.rewrite(&format!("{text}\nvar rev = env(\"ADDONS_REV\")\n"));
    assert_lints_clean(&folder.plan());
    let mut cmd = apply_command(&db, &folder.plan(), state.path(), &[]);
    cmd.env("ADDONS_REV", "def456");
    let applied = run(&mut cmd, state.path());
    applied.assert_code(4);
    assert!(
        applied.stderr.contains("revision def456"),
        "{}",
        applied.output()
    );
    assert_eq!(partners(), 5);
}

#[test]
fn a_refresh_whose_to_differs_from_from_is_an_error() {
    let folder =
        PlanFolder::new(&refresh_plan("").replacen("  to   = \"17.0\"", "  to   = \"17.1\"", 1));
    let output = crate::support::plan()
        .arg("lint")
        .arg(folder.plan())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let text = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(
        text.contains("a refresh plan stays at one release"),
        "{text}"
    );
    assert!(text.contains("E017"), "{text}");
}

/// A database with only the module registry, `base` at `release`.
fn registry_only(label: &str, release: &str) -> TestDatabase {
    let db = database(label);
    execute(
        &db,
        &format!(
            "create table ir_module_module (id serial primary key, name text unique, state text, latest_version text);
             insert into ir_module_module (name, state, latest_version) values ('base', 'installed', '{release}');
             create table res_partner (id serial primary key, name text);
             insert into res_partner (name) values ('a'), ('b');"
        ),
    );
    db
}

fn simple_plan(from: &str, to: &str) -> String {
    format!(
        r#"plan "release {from} to {to}" {{
  from = "{from}"
  to   = "{to}"
}}

stop server_down {{
  run = "true"
}}

backup before {{
  after = server_down
}}

sql change {{
  after = before
  sql   = "insert into res_partner (name) values ('changed')"
}}

check done {{
  after  = change
  sql    = "select 1"
  expect = "1"
}}

start server_up {{
  after = done
  run   = "true"
}}

on_failure {{
  start old_server_up {{
    run = "true"
  }}
}}
"#
    )
}

#[test]
fn to_17_0_1_against_17_0_10_0_is_not_at_from_never_nothing_to_do() {
    let db = registry_only("odoo_release_components", "17.0.10.0");
    let folder = PlanFolder::new(&simple_plan("16.0", "17.0.1"));
    assert_lints_clean(&folder.plan());
    let state = state_dir();
    let before = fingerprint(&db);

    let applied = run(
        &mut apply_command(&db, &folder.plan(), state.path(), &[]),
        state.path(),
    );
    applied.assert_code(4);
    assert_eq!(applied.outcome(), "refused", "{}", applied.output());
    assert!(
        applied.stderr.contains("is at release 17.0.10.0")
            && applied
                .stderr
                .contains("by the `base` module's latest_version"),
        "{}",
        applied.output()
    );
    assert!(
        !applied.stderr.contains("nothing to do"),
        "{}",
        applied.output()
    );
    assert_eq!(fingerprint(&db), before);

    // 17.0.10 is reached by 17.0.10.0: nothing to do, naming what was read.
    folder.rewrite(&simple_plan("16.0", "17.0.10"));
    let applied = run(
        &mut apply_command(&db, &folder.plan(), state.path(), &[]),
        state.path(),
    );
    applied.assert_code(0);
    assert_eq!(applied.outcome(), "nothing_to_do", "{}", applied.output());
    assert!(
        applied
            .stderr
            .contains("already at 17.0.10 (it is at 17.0.10.0"),
        "{}",
        applied.output()
    );
    assert_eq!(fingerprint(&db), before);

    // 17.0 is 17.0.10.0's release: the plan from 17.0 runs.
    folder.rewrite(&simple_plan("17.0", "18.0"));
    let applied = run(
        &mut apply_command(&db, &folder.plan(), state.path(), &[]),
        state.path(),
    );
    applied.assert_code(0);
    assert_eq!(applied.outcome(), "succeeded", "{}", applied.output());
}

#[test]
fn start_waits_until_the_server_answers_its_health_page() {
    let erp = Erp::new("odoo_ready");
    let port = free_port();
    erp.write_plan(&plan(
        r#"modules = "all""#,
        &format!(
            "python3 ${{erp}} --start -d ${{db}} --http-port {port} --pidfile server.pid --ready-after 1.5"
        ),
        &format!("ready   = \"http://127.0.0.1:{port}/web/health\"\n  timeout = \"30s\""),
    ));
    let _server = Server(erp.folder.path().join("server.pid"));

    let applied = erp.apply(&[], &[]);

    applied.assert_code(0);
    assert_eq!(applied.outcome(), "succeeded");
    let started = step(applied.report(), "server_up").unwrap();
    assert!(
        started["seconds"].as_f64().unwrap_or(0.0) >= 1.4,
        "the step waited for the server: {started}"
    );
    let answer = std::net::TcpStream::connect(("127.0.0.1", port));
    assert!(answer.is_ok(), "the server is up once the step is over");
}

#[test]
fn a_server_never_ready_within_the_timeout_rolls_back() {
    let erp = Erp::new("odoo_not_ready");
    let port = free_port();
    erp.write_plan(&plan(
        r#"modules = "all""#,
        &format!(
            "python3 ${{erp}} --start -d ${{db}} --http-port {port} --pidfile server.pid --never-ready"
        ),
        &format!("ready   = \"http://127.0.0.1:{port}/web/health\"\n  timeout = \"3s\""),
    ));
    let _server = Server(erp.folder.path().join("server.pid"));
    let before = fingerprint(&erp.db);
    let tree = read_tree(&erp.filestore());

    let applied = erp.apply(&[], &[]);

    assert_rolled_back(&erp, &applied, "server_up", &before, &tree);
    let error = step(applied.report(), "server_up").unwrap()["error"].to_string();
    assert!(
        error.contains("not ready") && error.contains("503"),
        "the error says what the server answered: {error}"
    );
}

#[test]
fn stop_waits_for_the_servers_sessions_to_leave() {
    let erp = Erp::new("odoo_stop_waits");
    let text = plan(r#"modules = "all""#, PLAIN_START, "")
        .replace(
            "run = \"python3 ${erp} --stop -d ${db}\"",
            "run = \"python3 ${erp} --stop -d ${db} --linger 2\"",
        )
        .replace(
            "backup before {\n  after = server_down",
            "check nobody_left {\n  after  = server_down\n  sql    = \"select count(*) from pg_stat_activity where datname = current_database() and application_name not like 'plan-runner/%'\"\n  expect = \"0\"\n}\n\nbackup before {\n  after = nobody_left",
        );
    erp.write_plan(&text);

    // Control: a stop that does not wait leaves the session to the
    // check, which sees it; nothing was changed yet.
    let before = fingerprint(&erp.db);
    let hasty = erp.apply(&[], &["--wait-for-sessions", "1ms"]);
    hasty.assert_code(1);
    assert_eq!(
        step(hasty.report(), "nobody_left").unwrap()["status"],
        "failed",
        "{}",
        hasty.output()
    );
    assert_eq!(fingerprint(&erp.db), before);
    std::thread::sleep(std::time::Duration::from_secs(3));

    let applied = erp.apply(&[], &[]);

    applied.assert_code(0);
    assert_eq!(applied.outcome(), "succeeded", "{}", applied.output());
    let stop = step(applied.report(), "server_down").unwrap();
    assert!(
        stop["seconds"].as_f64().unwrap_or(0.0) >= 1.5,
        "the stop lasted until the lingering session left: {stop}"
    );
    assert_eq!(
        step(applied.report(), "nobody_left").unwrap()["status"],
        "succeeded"
    );
}

#[test]
fn the_failure_summary_shows_the_first_error_line_then_the_last_lines() {
    let erp = Erp::new("odoo_first_error");
    erp.write_plan(&plan(r#"modules = "all""#, PLAIN_START, ""));
    let before = fingerprint(&erp.db);
    let tree = read_tree(&erp.filestore());

    let applied = erp.apply(&[("DEMO_FAIL", "update")], &[]);

    assert_rolled_back(&erp, &applied, "all_modules", &before, &tree);
    let failed = step(applied.report(), "all_modules").unwrap();
    let first = failed["first_error"].as_str().unwrap_or("");
    assert!(
        first.contains(" ERROR ") && first.contains("module sale: failed to load"),
        "the first ERROR line, not the CRITICAL one after it: {first}"
    );
    let all = format!("{}{}", applied.stdout, applied.stderr);
    let at = |needle: &str| {
        all.find(needle)
            .unwrap_or_else(|| panic!("`{needle}` is in the summary:\n{all}"))
    };
    assert!(at("its first error line:") < at("its last lines of output:"));
    assert!(at("its last lines of output:") < at("full log: "));
    assert!(all.contains("Failed to initialize database"), "{all}");
}

#[test]
fn a_bad_ready_or_install_is_a_diagnostic_at_its_value() {
    let text = plan(
        "modules = \"all\"\n  install = \"all\"",
        PLAIN_START,
        "ready = \"https://127.0.0.1:8069/web/health\"",
    );
    let folder = PlanFolder::new(&text);
    let output = crate::support::plan()
        .args(["lint", "--format", "json"])
        .arg(folder.plan())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let findings = doc
        .as_array()
        .or_else(|| doc["diagnostics"].as_array())
        .cloned()
        .unwrap_or_else(|| panic!("findings: {doc}"));
    let messages: Vec<String> = findings
        .iter()
        .filter(|f| f["code"] == "E023")
        .map(|f| f.to_string())
        .collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("only http:// and tcp:// are understood") && m.contains("line")),
        "{doc}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("`install` names the modules")),
        "{doc}"
    );
}
