//! `erp_config`: a plan that names the ERP server's configuration file.
//! Against a real cluster, with the stand-in server of the demo
//! (plans/demo/fixture/erp-server.py) reading the file as Odoo does: a
//! file naming another port is refused before anything changes; with the
//! server's log sent to a `logfile`, a CRITICAL line still fails the
//! update (fail_on_output); the filestore under `data_dir` is backed up and
//! restored without being written in `paths`; with
//! `--erp-config-override` the server works on the target whatever the
//! file says.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::apply::{
    Applied, Node, PlanFolder, assert_lints_clean, fingerprint, read_tree, run, state_dir, step,
};
use crate::support::{self, TestDatabase};

fn stand_in() -> PathBuf {
    crate::support::demo::fixture().join("erp-server.py")
}

/// The plan: stop, snapshot (no `paths`), update through `${erp_config}`,
/// check, start; restart on failure.
fn plan_text() -> String {
    format!(
        r#"plan "erp config" {{
  from           = "1.0"
  to             = "2.0"
  erp_config     = "odoo.conf"
  release_query  = "select latest_version from ir_module_module where name = 'base'"
  update_command = "python3 ${{erp}} -c ${{erp_config}} -d ${{db}} --update=${{modules}} --stop-after-init"
}}

var erp = "{erp}"

stop old_down {{
  run = "python3 ${{erp}} --stop -d ${{db}}"
}}

backup before {{
  after = old_down
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

start new_up {{
  after = settled
  run   = "python3 ${{erp}} --start -d ${{db}}"
}}

on_failure {{
  start old_up {{
    run = "python3 ${{erp}} --start -d ${{db}}"
  }}
}}
"#,
        erp = stand_in().display()
    )
}

/// A database seeded with the demo's ERP at 1.0, its filestore under a
/// `data_dir`, and a plan folder whose odoo.conf says `options`.
struct Setup {
    db: TestDatabase,
    folder: PlanFolder,
    state: tempfile::TempDir,
    data: tempfile::TempDir,
}

impl Setup {
    fn new(label: &str) -> Setup {
        let db = crate::support::demo::demo_database(label);
        let fixture = crate::support::demo::fixture();
        let data = tempfile::Builder::new()
            .prefix("erp-config-data-")
            .tempdir()
            .expect("a data_dir");
        let filestore = data.path().join("filestore").join(&db.name);
        fs::create_dir_all(data.path().join("filestore")).expect("the filestore's folder");
        let status = Command::new("cp")
            .arg("-a")
            .arg(fixture.join("filestore/demo"))
            .arg(&filestore)
            .status()
            .expect("cp");
        assert!(status.success(), "copying the demo's filestore");
        let folder = PlanFolder::new(&plan_text());
        assert_lints_clean(&folder.plan());
        Setup {
            db,
            folder,
            state: state_dir(),
            data,
        }
    }

    fn filestore(&self) -> PathBuf {
        self.data.path().join("filestore").join(&self.db.name)
    }

    fn logfile(&self) -> PathBuf {
        self.data.path().join("odoo.log")
    }

    /// Writes odoo.conf: the cluster's host, `port`, the data_dir, a
    /// logfile, and a secret that must never be shown.
    fn config(&self, port: u16) {
        let text = format!(
            "; the customer's production configuration\n[options]\ndb_host = {host}\ndb_port = {port}\ndb_user = {user}\ndb_password = False\ndata_dir = {data}\nlogfile = {log}\nadmin_passwd = admin-secret-42\n",
            host = self.db.cluster.host(),
            user = self.db.cluster.user(),
            data = self.data.path().display(),
            log = self.logfile().display(),
        );
        fs::write(self.folder.path().join("odoo.conf"), text).expect("writing odoo.conf");
    }

    fn apply(&self, args: &[&str], fail: &str) -> Applied {
        let mut cmd = crate::support::apply::apply_command(
            &self.db,
            &self.folder.plan(),
            self.state.path(),
            args,
        );
        cmd.env("DEMO_FAIL", fail);
        run(&mut cmd, self.state.path())
    }
}

fn tree(path: &Path) -> BTreeMap<String, Node> {
    read_tree(path)
}

#[test]
fn a_configuration_naming_another_port_is_refused_before_any_change() {
    let s = Setup::new("erp_config_other_port");
    let port = s.db.cluster.port();
    let other = port.wrapping_add(1);
    s.config(other);
    let (fp, files) = (fingerprint(&s.db), tree(&s.filestore()));

    let both_sides = format!("db_port: `{other}` in the file, `{port}` for the target");
    let dry = s.apply(&["--dry-run"], "");
    dry.assert_code(4);
    assert!(dry.stdout.contains("WOULD REFUSE"), "{}", dry.output());
    assert!(dry.stdout.contains(&both_sides), "{}", dry.output());

    let applied = s.apply(&[], "");
    applied.assert_code(4);
    assert_eq!(applied.outcome(), "refused", "{}", applied.output());
    assert!(applied.stderr.contains(&both_sides), "{}", applied.output());
    assert!(
        applied.stderr.contains("--erp-config-override"),
        "the refusal says how to go on\n{}",
        applied.output()
    );
    let folder = applied.run_folder.as_ref().expect("a run folder");
    assert!(
        !folder.join("erp.conf").exists(),
        "a refused run writes no derived file"
    );
    assert!(step(applied.report(), "old_down").is_none_or(|s| s["status"] != "succeeded"));
    assert_eq!(fingerprint(&s.db), fp, "the database is untouched");
    assert_eq!(tree(&s.filestore()), files, "the filestore is untouched");
    assert!(!s.logfile().exists(), "the server never ran");
    for output in [&dry.stdout, &dry.stderr, &applied.stdout, &applied.stderr] {
        assert!(!output.contains("admin-secret-42"));
    }
}

#[test]
fn with_a_logfile_a_critical_line_still_fails_the_update() {
    let s = Setup::new("erp_config_logfile");
    s.config(s.db.cluster.port());
    let (fp, files) = (fingerprint(&s.db), tree(&s.filestore()));

    // The server logs CRITICAL and exits 0: only fail_on_output can tell,
    // and only if the log reaches the step.
    let applied = s.apply(&[], "update-silent");
    applied.assert_code(1);
    assert_eq!(applied.outcome(), "rolled_back", "{}", applied.output());
    let update = step(applied.report(), "all_modules").expect("the update's report");
    assert_eq!(update["status"], "failed", "{}", applied.output());
    let folder = applied.run_folder.as_ref().expect("a run folder");
    let log = fs::read_to_string(folder.join("logs/all_modules.log")).expect("the step's log");
    assert!(
        log.contains("CRITICAL") && log.contains("some views failed to validate"),
        "the server's log is in the step's log:\n{log}"
    );
    assert!(
        !s.logfile().exists(),
        "the file's logfile was not used: the server logged to its step"
    );
    assert!(
        !folder.join("erp.conf").exists(),
        "the derived file lives as long as the run"
    );
    assert_eq!(fingerprint(&s.db), fp, "the database is restored");
    assert_eq!(tree(&s.filestore()), files, "the filestore is restored");
    let report = serde_json::to_string(applied.report()).expect("json");
    assert!(!report.contains("admin-secret-42"));
}

#[test]
fn the_filestore_is_backed_up_and_restored_without_paths() {
    let s = Setup::new("erp_config_filestore");
    s.config(s.db.cluster.port());
    let (fp, files) = (fingerprint(&s.db), tree(&s.filestore()));
    assert!(files.len() > 3, "the filestore has files: {files:?}");

    // The update changes the database and the filestore, then fails.
    let applied = s.apply(&[], "update");
    applied.assert_code(1);
    assert_eq!(applied.outcome(), "rolled_back", "{}", applied.output());
    let backups = applied.report()["backups"].as_array().expect("backups");
    let filestore = s.filestore().display().to_string();
    assert!(
        backups.iter().any(|b| b["paths"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p == &filestore[..]))),
        "the backup holds the filestore\n{}",
        applied.output()
    );
    assert_eq!(fingerprint(&s.db), fp, "the database is restored");
    assert_eq!(tree(&s.filestore()), files, "the filestore is restored");
}

#[test]
fn with_the_override_the_server_works_on_the_target() {
    let s = Setup::new("erp_config_override");
    // A port where no server listens: had the server followed the file,
    // the update would have failed.
    s.config(s.db.cluster.port().wrapping_add(1));
    let before = tree(&s.filestore());

    let applied = s.apply(&["--erp-config-override"], "");
    applied.assert_code(0);
    assert_eq!(applied.outcome(), "succeeded", "{}", applied.output());
    let base: String =
        s.db.connect()
            .query_one(
                "select latest_version from ir_module_module where name = 'base'",
                &[],
            )
            .expect("base's version")
            .get(0);
    assert_eq!(base, "2.0.1", "the target was migrated");
    let after = tree(&s.filestore());
    assert_ne!(
        after, before,
        "the update wrote into the data_dir's filestore"
    );
    assert!(after.contains_key("9d/9d00aa"), "{after:?}");
    assert!(
        applied
            .stderr
            .contains("overridden by --erp-config-override"),
        "{}",
        applied.output()
    );
}

#[test]
fn the_inventory_names_the_targets_own_configuration() {
    let s = Setup::new("erp_config_inventory");
    // The plan's file would be accepted; the inventory's, which wins,
    // names another port.
    s.config(s.db.cluster.port());
    let port = s.db.cluster.port();
    let other = port.wrapping_add(1);
    let machine = tempfile::Builder::new()
        .prefix("erp-config-inventory-")
        .tempdir()
        .expect("an inventory folder");
    let own = fs::read_to_string(s.folder.path().join("odoo.conf"))
        .expect("odoo.conf")
        .replace(&format!("db_port = {port}"), &format!("db_port = {other}"));
    fs::write(machine.path().join("acme.conf"), own).expect("writing acme.conf");
    let inventory = machine.path().join("inventory.yaml");
    fs::write(
        &inventory,
        format!(
            "targets:\n  acme:\n    host: {host}\n    port: {port}\n    user: {user}\n    database: {db}\n    erp_config: acme.conf\n",
            host = s.db.cluster.host(),
            user = s.db.cluster.user(),
            db = s.db.name,
        ),
    )
    .expect("writing the inventory");
    let (fp, files) = (fingerprint(&s.db), tree(&s.filestore()));

    let mut cmd = support::plan_process();
    cmd.arg("apply")
        .arg(s.folder.plan())
        .arg("--inventory")
        .arg(&inventory)
        .arg("--target")
        .arg("acme")
        .arg("--state-dir")
        .arg(s.state.path());
    let applied = run(&mut cmd, s.state.path());
    applied.assert_code(4);
    assert_eq!(applied.outcome(), "refused", "{}", applied.output());
    assert!(
        applied.stderr.contains(&format!(
            "db_port: `{other}` in the file, `{port}` for the target"
        )),
        "{}",
        applied.output()
    );
    assert!(applied.stderr.contains("acme.conf"), "{}", applied.output());
    assert_eq!(fingerprint(&s.db), fp, "the database is untouched");
    assert_eq!(tree(&s.filestore()), files, "the filestore is untouched");
}

#[test]
fn a_configuration_the_server_would_refuse_is_a_usage_error_with_its_line() {
    let s = Setup::new("erp_config_syntax");
    fs::write(
        s.folder.path().join("odoo.conf"),
        "[options]\ndb_port = 5432\nadmin_passwd = admin-secret-42\nDB_PORT = 5433\n",
    )
    .expect("writing odoo.conf");
    let fp = fingerprint(&s.db);

    let applied = s.apply(&[], "");
    applied.assert_code(2);
    assert!(
        applied.run_folder.is_none(),
        "nothing ran: {}",
        applied.output()
    );
    for expected in [
        "plan::erp_config::syntax",
        "`db_port` is set twice in `[options]`",
        "odoo.conf:4:1",
        "first here",
    ] {
        assert!(
            applied.stderr.contains(expected),
            "{expected}\n{}",
            applied.output()
        );
    }
    assert!(
        !applied.stderr.contains("admin-secret-42"),
        "the line shown beside the error hides the password\n{}",
        applied.output()
    );
    assert_eq!(fingerprint(&s.db), fp, "the database is untouched");
}

/// A rehearsal gives the ERP server a configuration naming the copy, and
/// copies the filestore beside the target's under the copy's name: the
/// update works on the copies, and the target's database and filestore
/// are as they were, with nothing left beside them.
#[test]
fn a_rehearsal_points_the_server_and_its_filestore_at_the_copy() {
    let s = Setup::new("erp_config_rehearse");
    s.config(s.db.cluster.port());
    let (fp, files) = (fingerprint(&s.db), tree(&s.filestore()));
    let out = support::plan_command(s.db.cluster)
        .arg("rehearse")
        .arg(s.folder.plan())
        .args(["--database", &s.db.name, "--state-dir"])
        .arg(s.state.path())
        .args(["--format", "json"])
        .env("DEMO_FAIL", "")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{said}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let copy = report["copy"].as_str().unwrap();
    let run = &report["runs"][0];
    assert_eq!(
        step(run, "all_modules").map(|s| s["status"].clone()),
        Some(serde_json::json!("succeeded")),
        "{said}"
    );
    // The server was given the copy, and its filestore's copy.
    let trees: Vec<String> = report["runs"][0]["backups"][0]["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        trees,
        [s.data
            .path()
            .join("filestore")
            .join(copy)
            .display()
            .to_string()],
        "{said}"
    );
    assert_eq!(fingerprint(&s.db), fp, "the target is as it was");
    assert_eq!(tree(&s.filestore()), files, "its filestore is as it was");
    let left: Vec<_> = fs::read_dir(s.data.path().join("filestore"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left, [std::ffi::OsString::from(&s.db.name)], "{said}");
}

/// A chain whose plans name the configuration: each hop's server is
/// given a copy pointed at the target, the filestore is in the chain's one
/// backup, and a failure in the second hop takes the database and the
/// filestore back to the chain's start.
#[test]
fn a_chain_of_plans_naming_the_configuration_runs_and_rolls_back_as_one() {
    let s = Setup::new("erp_config_chain");
    fs::remove_file(s.folder.plan()).unwrap();
    let hop = |from: &str, to: &str| {
        plan_text()
            .replace("from           = \"1.0\"", &format!("from           = \"{from}\""))
            .replace("to             = \"2.0\"", &format!("to             = \"{to}\""))
            .replace("plan \"erp config\"", &format!("plan \"erp config {from}\""))
            .replace(
                "  release_query  = \"select latest_version from ir_module_module where name = 'base'\"\n",
                "",
            )
    };
    for (file, from, to) in [("a.plan", "1.0", "1.5"), ("b.plan", "1.5", "2.0")] {
        fs::write(s.folder.path().join(file), hop(from, to)).unwrap();
        assert_lints_clean(&s.folder.path().join(file));
    }
    s.config(s.db.cluster.port());
    let (fp, files) = (fingerprint(&s.db), tree(&s.filestore()));
    let chain = |fail: &str| {
        let mut cmd = crate::support::apply::apply_command(
            &s.db,
            s.folder.path(),
            s.state.path(),
            &["--to", "2.0"],
        );
        cmd.env("DEMO_FAIL", fail);
        run(&mut cmd, s.state.path())
    };
    // The second hop's update fails (the stand-in's update of 2.0 cannot
    // run twice): the chain goes back to its start.
    let failed = chain("");
    failed.assert_code(1);
    assert!(
        failed.stderr.contains("hop 2: ERP configuration"),
        "{}",
        failed.output()
    );
    assert_eq!(fingerprint(&s.db), fp, "{}", failed.output());
    assert_eq!(tree(&s.filestore()), files, "the filestore is back");
    // With a second hop that changes rows instead, it passes: two hops,
    // one backup holding the filestore.
    let second = hop("1.5", "2.0").replace(
        "update all_modules {\n  after   = before\n  modules = \"all\"\n  timeout = \"5m\"\n}",
        "sql all_modules {\n  after = before\n  sql   = \"update res_partner set name = name\"\n}",
    );
    assert!(second.contains("sql all_modules"), "{second}");
    fs::write(s.folder.path().join("b.plan"), second).unwrap();
    let passed = chain("");
    passed.assert_code(0);
    let folder = passed.run_folder.as_ref().expect("the chain's folder");
    let hop1: serde_json::Value =
        serde_json::from_slice(&fs::read(folder.join("hop-1/report.json")).unwrap()).unwrap();
    let filestore = s.filestore().display().to_string();
    assert!(
        hop1["backups"][0]["paths"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p == &filestore[..])),
        "{hop1}"
    );
    assert!(
        passed.stderr.contains("covered by the chain's backup"),
        "{}",
        passed.output()
    );
    assert!(
        !folder.join(plan_runner::erp_config::DERIVED_FILE).exists(),
        "the derived configuration outlived the chain"
    );
    assert_ne!(
        tree(&s.filestore()),
        files,
        "the update changed the filestore"
    );
}
