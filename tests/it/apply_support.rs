//! Running the built `plan apply` against a test database of the shared
//! cluster, as a partner would (a real process, libpq's environment, its
//! own state folder), and reading back what it left: the report, the
//! history table, the database's fingerprint.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use plan_runner::db::fingerprint::{self, DatabaseProps, Fingerprint};
use serde_json::Value;
use tempfile::TempDir;

use crate::support::TestDatabase;

/// The plan's file name inside its folder.
pub const PLAN_FILE: &str = "test.plan";

/// A plan folder: the plan and the files it refers to (relative paths in a
/// plan are relative to its folder).
pub struct PlanFolder {
    dir: TempDir,
}

impl PlanFolder {
    pub fn new(plan: &str) -> PlanFolder {
        let dir = tempfile::Builder::new()
            .prefix("apply-test-plan-")
            .tempdir()
            .expect("a temporary folder for the plan");
        std::fs::write(dir.path().join(PLAN_FILE), plan).expect("writing the plan");
        PlanFolder { dir }
    }

    /// Adds a file beside the plan.
    pub fn file(self, name: &str, content: &str) -> PlanFolder {
        std::fs::write(self.dir.path().join(name), content).expect("writing a plan file");
        self
    }

    /// Replaces the plan.
    pub fn rewrite(&self, plan: &str) {
        std::fs::write(self.plan(), plan).expect("writing the plan");
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn plan(&self) -> PathBuf {
        self.dir.path().join(PLAN_FILE)
    }
}

/// A fresh state folder (run folders, logs, reports).
pub fn state_dir() -> TempDir {
    tempfile::Builder::new()
        .prefix("apply-test-state-")
        .tempdir()
        .expect("a temporary state folder")
}

/// `plan` with libpq's environment pointing at the test cluster and
/// nothing else of the developer's PG* settings.
pub fn plan_command(db: &TestDatabase) -> Command {
    crate::support::plan_command(db.cluster)
}

/// `plan apply PLAN --database DB --state-dir STATE ARGS...`, not started.
pub fn apply_command(db: &TestDatabase, plan: &Path, state: &Path, args: &[&str]) -> Command {
    let mut cmd = plan_command(db);
    cmd.arg("apply")
        .arg(plan)
        .arg("--database")
        .arg(&db.name)
        .arg("--state-dir")
        .arg(state)
        .args(args);
    cmd
}

/// What one `plan apply` did.
pub struct Applied {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
    /// The run folder this apply created (`None` when it made none).
    pub run_folder: Option<PathBuf>,
    /// Its `report.json`, parsed.
    pub report: Option<Value>,
}

impl Applied {
    /// Everything it printed, for assertion messages.
    pub fn output(&self) -> String {
        format!(
            "exit {:?} after {:.2} s\n--- stdout\n{}\n--- stderr\n{}",
            self.code,
            self.elapsed.as_secs_f64(),
            self.stdout,
            self.stderr
        )
    }

    /// The report, or a failure that shows the output.
    pub fn report(&self) -> &Value {
        self.report
            .as_ref()
            .unwrap_or_else(|| panic!("the run left no report.json\n{}", self.output()))
    }

    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, Some(code), "unexpected exit\n{}", self.output());
        self
    }

    /// The report's `outcome`.
    pub fn outcome(&self) -> &str {
        self.report()["outcome"].as_str().unwrap_or("")
    }

    pub fn run_id(&self) -> &str {
        self.report()["run_id"]
            .as_str()
            .unwrap_or_else(|| panic!("the report has no run_id\n{}", self.output()))
    }
}

/// The run folders under a state folder.
pub fn run_folders(state: &Path) -> BTreeSet<PathBuf> {
    match std::fs::read_dir(state.join("runs")) {
        Ok(entries) => entries.flatten().map(|e| e.path()).collect(),
        Err(_) => BTreeSet::new(),
    }
}

/// Runs a prepared `plan apply` to its end and finds the run folder it
/// made in `state`.
pub fn run(cmd: &mut Command, state: &Path) -> Applied {
    let before = run_folders(state);
    let started = Instant::now();
    let output = cmd.output().expect("`plan` starts");
    finish(output, started.elapsed(), state, &before)
}

/// Reads what a finished `plan apply` left, given the run folders that
/// were there before it started.
pub fn finish(
    output: std::process::Output,
    elapsed: Duration,
    state: &Path,
    before: &BTreeSet<PathBuf>,
) -> Applied {
    let made: Vec<PathBuf> = run_folders(state).difference(before).cloned().collect();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        made.len() <= 1,
        "one apply made several run folders: {made:?}\n{stderr}"
    );
    let run_folder = made.into_iter().next();
    let report = run_folder.as_ref().and_then(|f| {
        let text = std::fs::read(f.join("report.json")).ok()?;
        Some(
            serde_json::from_slice(&text)
                .unwrap_or_else(|e| panic!("report.json in {} is not JSON: {e}", f.display())),
        )
    });
    Applied {
        code: output.status.code(),
        stdout,
        stderr,
        elapsed,
        run_folder,
        report,
    }
}

/// `plan apply` of `folder`'s plan on `db`, with `state` as state folder.
pub fn apply(db: &TestDatabase, folder: &PlanFolder, state: &Path, args: &[&str]) -> Applied {
    run(&mut apply_command(db, &folder.plan(), state, args), state)
}

/// Fails unless `plan lint --deny warnings` passes on the plan: the test
/// plans are written the way partners are told to write theirs, so that
/// apply's own refusals (lint errors, W101) never explain a result.
pub fn assert_lints_clean(db: &TestDatabase, folder: &PlanFolder) {
    let output = plan_command(db)
        .arg("lint")
        .arg("--deny")
        .arg("warnings")
        .arg(folder.plan())
        .output()
        .expect("`plan lint` starts");
    assert!(
        output.status.success(),
        "the test plan does not lint clean:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The database-level properties of `db`, read from another database so
/// that no session is left on it.
pub fn props(db: &TestDatabase) -> DatabaseProps {
    let mut client = db.cluster.connect("postgres").expect("connect to postgres");
    fingerprint::database_props(&mut client, &db.name)
        .expect("reading the database's properties")
        .unwrap_or_else(|| panic!("database `{}` does not exist", db.name))
}

/// The runner's own fingerprint of `db` as it is now. The connection is
/// closed before returning: a snapshot refuses a database in use.
pub fn fingerprint(db: &TestDatabase) -> Fingerprint {
    let props = props(db);
    let mut client = db.connect();
    let (fp, _) = fingerprint::take(&mut client, props).expect("fingerprinting");
    fp
}

/// The databases of the cluster that belong to this test: the test's own
/// and every copy named after it (snapshots, failed copies, restores).
pub fn related_databases(db: &TestDatabase) -> Vec<String> {
    let prefix: String = db.name.chars().take(30).collect();
    let mut client = db.cluster.connect("postgres").expect("connect to postgres");
    client
        .query(
            "select datname::text from pg_database where starts_with(datname, $1) order by 1",
            &[&prefix],
        )
        .expect("listing databases")
        .into_iter()
        .map(|row| row.get(0))
        .collect()
}

/// A row of the runner's history table in the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRow {
    pub run_id: String,
    pub plan: String,
    pub from_release: String,
    pub to_release: String,
    pub outcome: String,
}

/// The history table's rows, oldest first; empty when there is none.
pub fn history(db: &TestDatabase) -> Vec<HistoryRow> {
    let mut client = db.connect();
    let exists: bool = client
        .query_one("select to_regclass('plan_runner.history') is not null", &[])
        .expect("looking for the history table")
        .get(0);
    if !exists {
        return Vec::new();
    }
    client
        .query(
            "select run_id, plan, from_release, to_release, outcome
             from plan_runner.history order by started_at, run_id",
            &[],
        )
        .expect("reading the history")
        .into_iter()
        .map(|row| HistoryRow {
            run_id: row.get(0),
            plan: row.get(1),
            from_release: row.get(2),
            to_release: row.get(3),
            outcome: row.get(4),
        })
        .collect()
}

/// Runs SQL on `db` and closes the connection.
pub fn execute(db: &TestDatabase, sql: &str) {
    db.connect()
        .batch_execute(sql)
        .unwrap_or_else(|e| panic!("setting up `{}` failed: {e}\n{sql}", db.name));
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(path),
                Ok(_) => out.push(path),
                Err(_) => {}
            }
        }
    }
    out.sort();
    out
}
