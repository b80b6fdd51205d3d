//! Running the built `plan apply` against a test database of the shared
//! cluster, as a partner would (a real process, libpq's environment, its
//! own state folder), and reading back what it left: the report, the
//! history table, the database's fingerprint, the file trees. Every test
//! that applies a plan goes through `apply_command` and `run`; the failure
//! tests add a `World` (a seeded database, a file tree and step scripts
//! beside the plan).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use plan_runner::db::fingerprint::{self, DatabaseProps, Fingerprint};
use serde_json::Value;
use tempfile::TempDir;

use crate::support::{self, TestDatabase};

/// How long one `plan apply` may take before the test fails (it is
/// killed): a hung run must not hang the suite.
const APPLY_TIMEOUT: Duration = Duration::from_secs(180);

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
        fs::write(dir.path().join(PLAN_FILE), plan).expect("writing the plan");
        PlanFolder { dir }
    }

    /// Adds a file beside the plan.
    pub fn file(self, name: &str, content: &str) -> PlanFolder {
        fs::write(self.dir.path().join(name), content).expect("writing a plan file");
        self
    }

    /// Replaces the plan.
    pub fn rewrite(&self, plan: &str) {
        fs::write(self.plan(), plan).expect("writing the plan");
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

/// `plan apply PLAN --database DB --state-dir STATE ARGS...`, not started.
pub fn apply_command(db: &TestDatabase, plan: &Path, state: &Path, args: &[&str]) -> Command {
    let mut cmd = support::plan_command(db.cluster);
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

/// Waits for a runner started with its stderr piped: its exit code and
/// what it said.
pub fn ended(runner: std::process::Child) -> (Option<i32>, String) {
    let output = runner.wait_with_output().expect("the runner ends");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The run folders under a state folder.
pub fn run_folders(state: &Path) -> BTreeSet<PathBuf> {
    match fs::read_dir(state.join("runs")) {
        Ok(entries) => entries.flatten().map(|e| e.path()).collect(),
        Err(_) => BTreeSet::new(),
    }
}

/// Runs a prepared `plan apply` to its end and finds the run folder it
/// made in `state`.
pub fn run(cmd: &mut Command, state: &Path) -> Applied {
    let before = run_folders(state);
    let started = Instant::now();
    let output = output_within(cmd, APPLY_TIMEOUT);
    finish(output, started.elapsed(), state, &before)
}

/// `cmd.output()`, but the process is killed once `timeout` has passed.
fn output_within(cmd: &mut Command, timeout: Duration) -> std::process::Output {
    fn read_all(mut from: impl std::io::Read + Send + 'static) -> JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = from.read_to_end(&mut bytes);
            bytes
        })
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("`plan` starts");
    let stdout = read_all(child.stdout.take().expect("piped stdout"));
    let stderr = read_all(child.stderr.take().expect("piped stderr"));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for `plan`") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break child.wait().expect("waiting for the killed `plan`");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    std::process::Output {
        status,
        stdout: stdout.join().expect("reading stdout"),
        stderr: stderr.join().expect("reading stderr"),
    }
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
        let text = fs::read(f.join("report.json")).ok()?;
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
pub fn assert_lints_clean(plan: &Path) {
    let output = support::plan_process()
        .arg("lint")
        .arg("--deny")
        .arg("warnings")
        .arg(plan)
        .output()
        .expect("`plan lint` starts");
    assert!(
        output.status.success(),
        "the test plan does not lint clean:\n{}{}\n--- {} ---\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        plan.display(),
        fs::read_to_string(plan).unwrap_or_default()
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
        let Ok(entries) = fs::read_dir(&folder) else {
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

/// The file tree a plan backs up with `paths = ["files"]`.
pub const TREE: &str = "files";

/// Marker the plans' `on_failure` step creates in the plan folder.
pub const ON_FAILURE_MARKER: &str = "on_failure.ran";

/// A plan of the tests' shape: the old server stopped, a snapshot of the
/// database with the file tree, then `steps` (the first `after = before`),
/// and an `on_failure` step `server_up` that runs `on_failure_run`.
pub fn snapshot_plan(title: &str, steps: &str, on_failure_run: &str) -> String {
    snapshot_plan_with(title, "", steps, on_failure_run)
}

/// [`snapshot_plan`] whose backup step also has `backup_lines` (say
/// `keep   = false`, each line indented two spaces).
pub fn snapshot_plan_with(
    title: &str,
    backup_lines: &str,
    steps: &str,
    on_failure_run: &str,
) -> String {
    let backup_lines: String = backup_lines
        .lines()
        .map(|line| format!("\n  {line}"))
        .collect();
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
  method = "snapshot"
  paths  = ["{TREE}"]{backup_lines}
}}
{steps}
on_failure {{
  start server_up {{
    run = "{on_failure_run}"
  }}
}}
"#
    )
}

/// One failure test's world: its own seeded database, a plan folder with
/// the file tree and the step scripts, and a state folder.
pub struct World {
    pub label: String,
    pub db: TestDatabase,
    /// The plan's folder; the step scripts and the tree live in it.
    pub folder: PlanFolder,
    pub state: TempDir,
}

impl World {
    /// A seeded database, the tree and the step scripts.
    pub fn new(label: &str) -> World {
        World::on(support::shared_cluster(), label)
    }

    /// [`World::new`] on a given cluster.
    pub fn on(cluster: &'static plan_runner::cluster::Cluster, label: &str) -> World {
        let world = World {
            label: label.to_string(),
            db: support::database_on(cluster, label),
            folder: PlanFolder::new(""),
            state: state_dir(),
        };
        seed(&world.db);
        make_tree(&world.folder.path().join(TREE));
        world.write_scripts();
        world
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.folder.path().join(rel)
    }

    pub fn tree(&self) -> PathBuf {
        self.path(TREE)
    }

    /// Writes the plan and checks that it lints clean, warnings denied:
    /// the plans here are what a careful author would write.
    pub fn write_plan(&self, text: &str) -> PathBuf {
        self.folder.rewrite(text);
        assert_lints_clean(&self.folder.plan());
        self.folder.plan()
    }

    /// Runs `plan apply` on this world's database, the server coming from
    /// libpq's environment as a partner would set it. Every failure test
    /// reads the report: one that is missing fails here, with the output.
    pub fn apply(&self, plan: &Path, extra: &[&str]) -> Applied {
        let applied = run(
            &mut apply_command(&self.db, plan, self.state.path(), extra),
            self.state.path(),
        );
        if applied.report.is_none() {
            panic!(
                "{}: the run left no report.json\n{}",
                self.label,
                applied.output()
            );
        }
        applied
    }

    /// Step scripts in `steps/`: each takes what it does as arguments, so
    /// one script serves every case.
    fn write_scripts(&self) {
        let steps = self.path("steps");
        fs::create_dir_all(&steps).expect("steps folder");
        let psql = self.db.cluster.bin("psql");
        let psql = psql.display();
        // mutate.sh TAG HOW: changes rows, a sequence and the schema,
        // rewrites a file of the tree in place (same inode: a hard-linked
        // backup would change with it), adds one, changes a mode; then
        // leaves a witness outside the tree (so a test knows the changes
        // happened) and ends as HOW says.
        let mutate = format!(
            r#"#!/bin/sh
set -eu
tag="$1"
how="$2"
"{psql}" -X -q -v ON_ERROR_STOP=1 <<EOF
insert into partner (name) select 'added by $tag ' || g from generate_series(1, 20) g;
update partner set name = upper(name) where id % 2 = 0;
delete from note where id = 1;
update note set body = '{{"changed": "$tag"}}' where id = 2;
create table added_by_$tag (x int);
alter table partner add column col_$tag text default '$tag';
EOF
printf 'rewritten in place by %s\n' "$tag" > {TREE}/top.txt
mkdir -p {TREE}/sub/new_$tag
printf 'added by %s\n' "$tag" > {TREE}/sub/new_$tag/added.txt
chmod 0777 {TREE}/sub/deeper/private.bin
printf 'ran\n' > "witness.$tag"
case "$how" in
  ok) exit 0 ;;
  fail) echo "failing on purpose after changing data"; exit 1 ;;
  error-output)
    echo "2024-05-01 10:00:00,000 4242 ERROR $PGDATABASE odoo.modules.loading: module sale: failed to load"
    exit 0 ;;
esac
echo "unknown HOW: $how" >&2
exit 2
"#
        );
        write_script(&steps.join("mutate.sh"), &mutate);

        // hang.sh: changes data, then ignores SIGTERM with children and a
        // grandchild that ignore it too (an ignored signal is inherited),
        // one of them a psql whose backend keeps running its query after
        // psql is killed; every pid goes to `pids`, one a line.
        let hang = format!(
            r#"#!/bin/sh
set -eu
trap '' TERM
"{psql}" -X -q -v ON_ERROR_STOP=1 -c "insert into partner (name) values ('before hanging')"
printf 'rewritten by a hanging step\n' > {TREE}/top.txt
echo $$ >> pids
sleep 300 &
echo $! >> pids
sh -c 'sleep 300 & echo $! >> pids; wait' &
echo $! >> pids
"{psql}" -X -q -c "select pg_sleep(300) /* hang.sh */" &
echo $! >> pids
printf 'ran\n' > witness.hang
wait
"#
        );
        write_script(&steps.join("hang.sh"), &hang);

        // tamper.sh: changes the snapshot this run just took (a backup
        // changed behind the runner's back), then fails.
        let tamper = format!(
            r#"#!/bin/sh
set -eu
snap=$("{psql}" -X -At -v ON_ERROR_STOP=1 -d postgres -v db="$PGDATABASE" <<'EOF'
select datname from pg_database where starts_with(datname, :'db' || '_pr_')
EOF
)
test -n "$snap"
"{psql}" -X -q -v ON_ERROR_STOP=1 -d postgres -v snap="$snap" <<'EOF'
alter database :"snap" allow_connections true;
EOF
"{psql}" -X -q -v ON_ERROR_STOP=1 -d "$snap" -c "insert into partner (name) values ('written into the backup')"
"{psql}" -X -q -v ON_ERROR_STOP=1 -d postgres -v snap="$snap" <<'EOF'
alter database :"snap" allow_connections false;
EOF
printf 'ran\n' > witness.tamper
exit 1
"#
        );
        write_script(&steps.join("tamper.sh"), &tamper);

        // tamper_tree.sh: rewrites a file of the tree's backup copy.
        let tamper_tree = format!(
            r#"#!/bin/sh
set -eu
found=0
for copy in .{TREE}.pr-*; do
  printf 'changed in the backup\n' > "$copy/top.txt"
  found=1
done
test "$found" = 1
printf 'ran\n' > witness.tamper_tree
exit 1
"#
        );
        write_script(&steps.join("tamper_tree.sh"), &tamper_tree);
    }

    /// The report of the one run folder in the state folder.
    pub fn only_report(&self) -> Value {
        let folders = run_folders(self.state.path());
        assert_eq!(folders.len(), 1, "{folders:?}");
        let folder = folders.into_iter().next().expect("one run folder");
        let text = fs::read(folder.join("report.json")).expect("report.json");
        serde_json::from_slice(&text).expect("report.json is JSON")
    }

    /// Whether the step tagged `tag` got past its changes.
    pub fn witnessed(&self, tag: &str) -> bool {
        self.path(&format!("witness.{tag}")).is_file()
    }

    pub fn on_failure_ran(&self) -> bool {
        self.path(ON_FAILURE_MARKER).is_file()
    }
}

fn write_script(path: &Path, text: &str) {
    fs::write(path, text).expect("write a step script");
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// Partners (with a sequence), notes with a json column (hashed through
/// its text form), and the release the plans' `release_query` reads.
fn seed(db: &TestDatabase) {
    db.connect()
        .batch_execute(
            "create table release (v text not null);
             insert into release values ('1.0');
             create table partner (id serial primary key, name text not null);
             insert into partner (name) select 'partner ' || g from generate_series(1, 200) g;
             create table note (id int primary key, partner_id int references partner, body json);
             insert into note select g, g, json_build_object('n', g) from generate_series(1, 50) g;
             create index partner_name on partner (name);",
        )
        .unwrap_or_else(|e| panic!("seed `{}`: {e}", db.name));
}

/// Files and folders with varied modes, an empty folder and a link.
fn make_tree(root: &Path) {
    let files: [(&str, &[u8], u32); 4] = [
        ("top.txt", b"original top\n", 0o644),
        ("run.sh", b"#!/bin/sh\necho hi\n", 0o755),
        ("sub/a.txt", b"alpha\n", 0o640),
        (
            "sub/deeper/private.bin",
            &[0u8, 1, 2, 255, 254, 10, 13],
            0o600,
        ),
    ];
    for (rel, bytes, mode) in files {
        let path = root.join(rel);
        fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        fs::write(&path, bytes).expect("write a tree file");
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
    }
    fs::create_dir_all(root.join("empty")).expect("mkdir");
    fs::set_permissions(root.join("sub"), fs::Permissions::from_mode(0o750)).expect("chmod");
    symlink("sub/a.txt", root.join("link")).expect("symlink");
}

/// One entry of a tree as the tests compare it: kind, permission bits and
/// the bytes (or a link's target).
#[derive(Debug, PartialEq, Eq)]
pub struct Node {
    pub kind: &'static str,
    pub mode: u32,
    pub bytes: Vec<u8>,
}

/// Every entry under `root` by relative path, read independently of the
/// runner's own manifest.
pub fn read_tree(root: &Path) -> BTreeMap<String, Node> {
    fn walk(root: &Path, path: &Path, out: &mut BTreeMap<String, Node>) {
        let meta =
            fs::symlink_metadata(path).unwrap_or_else(|e| panic!("stat {}: {e}", path.display()));
        let rel = path
            .strip_prefix(root)
            .expect("under the root")
            .to_string_lossy()
            .into_owned();
        let (kind, bytes) = if meta.file_type().is_symlink() {
            let target = fs::read_link(path).expect("readlink");
            ("link", target.into_os_string().into_encoded_bytes())
        } else if meta.is_dir() {
            ("dir", Vec::new())
        } else {
            ("file", fs::read(path).expect("read a tree file"))
        };
        out.insert(
            rel,
            Node {
                kind,
                mode: meta.mode() & 0o7777,
                bytes,
            },
        );
        if meta.is_dir() {
            for entry in fs::read_dir(path).expect("read a folder") {
                walk(root, &entry.expect("a folder entry").path(), out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// The report's entry for the step `name`.
pub fn step<'a>(report: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    report["steps"]
        .as_array()?
        .iter()
        .find(|s| s["name"] == name)
}

/// Names of the steps the report gives `status`.
pub fn steps_with(report: &serde_json::Value, status: &str) -> Vec<String> {
    report["steps"]
        .as_array()
        .map(|steps| {
            steps
                .iter()
                .filter(|s| s["status"] == status)
                .filter_map(|s| s["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The pids a step wrote, one a line.
pub fn pids(path: &Path) -> Vec<u32> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}
