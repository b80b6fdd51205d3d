//! `ready` with variables: several Odoo servers on one machine answer on
//! ports of their own, so the address a `start` step waits for comes from
//! the target (an inventory's `vars`, `--var`) or the environment, as
//! scripts/odoo-e2e found against a real Odoo. Against the demo's stand-in
//! ERP server on a real cluster: the substituted address is the one waited
//! for; a bad value is refused before anything runs, the database
//! untouched; a secret is never part of it; lint and show, which do not
//! know the value, say where it comes from.

use std::path::Path;

use crate::support::TestDatabase;
use crate::support::apply::{
    Applied, PlanFolder, apply_command, assert_lints_clean, fingerprint, history, run, state_dir,
    step,
};
use crate::support::demo::{copy_filestore, demo_database, fixture};
use crate::support::{Server, free_port};

/// A plan folder holding the demo's filestore for `db`, which the stand-in
/// server's update reads.
fn plan_folder(db: &TestDatabase, ready: &str) -> PlanFolder {
    let folder = PlanFolder::new(&plan(ready));
    copy_filestore(&folder.path().join("filestore").join(&db.name));
    folder
}

/// The demo's update, then a start of the stand-in server on `${odoo_port}`
/// that answers its health page after 1.5 s, waited for at `ready`.
fn plan(ready: &str) -> String {
    format!(
        r#"plan "odoo modules" {{
  from = "1.0"
  to   = "2.0"

  update_command = "python3 ${{erp}} -d ${{db}} --data-dir filestore --update=${{modules}} --stop-after-init"
}}

var erp       = "{erp}"
var odoo_port = env("ODOO_PORT", "8069")

stop server_down {{
  run = "python3 ${{erp}} --stop -d ${{db}}"
}}

backup before {{
  after = server_down
}}

update all_modules {{
  after   = before
  modules = "all"
  timeout = "5m"
}}

check settled {{
  after  = all_modules
  sql    = "select count(*) from ir_module_module where state like 'to %'"
  expect = "0"
}}

start server_up {{
  after   = settled
  run     = "python3 ${{erp}} --start -d ${{db}} --http-port ${{odoo_port}} --pidfile server.pid --ready-after 1.5"
  ready   = "{ready}"
  timeout = "30s"
}}

on_failure {{
  start old_server_up {{
    run = "touch on_failure.ran"
  }}
}}
"#,
        erp = fixture().join("erp-server.py").display()
    )
}

const READY: &str = "http://127.0.0.1:${odoo_port}/web/health";

/// `plan apply` with the cluster's `psql` first on the PATH (the stand-in
/// server talks through it).
fn apply(db: &TestDatabase, folder: &PlanFolder, state: &Path, extra: &[&str]) -> Applied {
    let mut cmd = apply_command(db, &folder.plan(), state, extra);
    let bin = db.cluster.bin("psql");
    let bin = bin.parent().expect("the cluster's bin folder");
    cmd.env(
        "PATH",
        format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        ),
    );
    cmd.env_remove("ODOO_PORT");
    run(&mut cmd, state)
}

#[test]
fn ready_waits_at_the_address_its_variables_give() {
    let db = demo_database("ready_vars_wait");
    let folder = plan_folder(&db, READY);
    assert_lints_clean(&folder.plan());
    let _server = Server(folder.path().join("server.pid"));
    let state = state_dir();
    let port = free_port();

    let var = format!("odoo_port={port}");
    let applied = apply(&db, &folder, state.path(), &["--var", &var]);

    applied.assert_code(0);
    assert_eq!(applied.outcome(), "succeeded", "{}", applied.output());
    let started = step(applied.report(), "server_up").expect("the start step is reported");
    assert!(
        started["seconds"].as_f64().unwrap_or(0.0) >= 1.4,
        "the step waited for the server: {started}"
    );
    let waited = format!("`server_up`: waiting for http://127.0.0.1:{port}/web/health");
    assert!(
        applied.output().contains(&waited),
        "the runner waited at the substituted address\n{}",
        applied.output()
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
        "the server answers on that port once the step is over"
    );
}

#[test]
fn a_value_that_is_no_address_is_refused_before_anything_runs() {
    let db = demo_database("ready_vars_bad");
    let folder = plan_folder(&db, READY);
    let state = state_dir();
    let before = fingerprint(&db);

    let applied = apply(&db, &folder, state.path(), &["--var", "odoo_port=80x"]);

    applied.assert_code(1);
    assert!(applied.run_folder.is_none(), "no run was started");
    let output = applied.output();
    assert!(
        output.contains("`http://127.0.0.1:80x/web/health` is not an address to wait for")
            && output.contains("`80x` is not a port"),
        "the diagnostic names the value and what is wrong with it\n{output}"
    );
    assert!(
        output.contains("nothing was run: fix the plan first"),
        "{output}"
    );
    assert_eq!(fingerprint(&db), before, "nothing ran: {output}");
    assert!(history(&db).is_empty(), "{:?}", history(&db));
    assert!(
        !folder.path().join("on_failure.ran").exists(),
        "no step ran, on_failure neither"
    );
}

#[test]
fn lint_and_show_name_where_an_unknown_value_comes_from() {
    let text = plan(READY).replace(r#"env("ODOO_PORT", "8069")"#, r#"env("ODOO_PORT")"#);
    let folder = PlanFolder::new(&text);
    assert_lints_clean(&folder.plan());
    let output = crate::support::plan()
        .arg("show")
        .arg(folder.plan())
        .env_remove("ODOO_PORT")
        .output()
        .expect("plan show");
    let shown = String::from_utf8_lossy(&output.stdout);
    assert!(
        shown.contains("ready: waits for http://127.0.0.1:<env.ODOO_PORT>/web/health"),
        "{shown}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_secret_in_ready_is_a_diagnostic_at_its_value() {
    let text = plan("http://odoo:${token}@127.0.0.1:${odoo_port}/web/health").replace(
        "var odoo_port",
        "var token     = secret(\"ODOO_TOKEN\")\nvar odoo_port",
    );
    let folder = PlanFolder::new(&text);
    let output = crate::support::plan()
        .args(["lint", "--format", "json"])
        .arg(folder.plan())
        .output()
        .expect("plan lint");
    assert_eq!(output.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let findings = doc
        .as_array()
        .or_else(|| doc["diagnostics"].as_array())
        .cloned()
        .unwrap_or_else(|| panic!("findings: {doc}"));
    assert!(
        findings.iter().any(|f| f["code"] == "E023"
            && f.to_string().contains("a secret cannot be part of `ready`")
            && f.to_string().contains("line")),
        "{doc}"
    );
}
