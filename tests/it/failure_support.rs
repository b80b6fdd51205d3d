//! What the failure tests need around `plan apply`: a seeded database, a
//! plan folder with a file tree and step scripts, the built binary run
//! against the shared cluster, and ways to compare before and after.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use plan_runner::db::fingerprint::{self, Fingerprint};
use tempfile::TempDir;

use crate::support::{self, TestDatabase};

/// The file tree a plan backs up with `paths = ["files"]`.
pub const TREE: &str = "files";

/// Marker the plans' `on_failure` step creates in the plan folder.
pub const ON_FAILURE_MARKER: &str = "on_failure.ran";

/// One failure test's world: its own database, plan folder and state dir.
pub struct World {
    pub label: String,
    pub db: TestDatabase,
    /// The plan's folder; the step scripts and the tree live in it.
    pub dir: TempDir,
    pub state: TempDir,
}

/// What one `plan apply` did.
pub struct Applied {
    pub code: i32,
    pub stderr: String,
    pub report: serde_json::Value,
    pub elapsed: Duration,
}

impl World {
    /// A seeded database, the tree and the step scripts.
    pub fn new(label: &str) -> World {
        let world = World {
            label: label.to_string(),
            db: support::database(label),
            dir: tempfile::tempdir().expect("a plan folder"),
            state: tempfile::tempdir().expect("a state folder"),
        };
        seed(&world.db);
        make_tree(&world.dir.path().join(TREE));
        world.write_scripts();
        world
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn tree(&self) -> PathBuf {
        self.path(TREE)
    }

    /// Writes `plan.plan` and checks that it lints clean, warnings
    /// denied: the plans here are what a careful author would write.
    pub fn write_plan(&self, text: &str) -> PathBuf {
        let path = self.path("failure.plan");
        fs::write(&path, text).expect("write the plan");
        let out = Command::cargo_bin("plan")
            .expect("the plan binary")
            .args(["lint", "--deny", "warnings"])
            .arg(&path)
            .output()
            .expect("run plan lint");
        assert!(
            out.status.success(),
            "{}: the plan does not lint clean:\n{}{}\n--- plan ---\n{text}",
            self.label,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        path
    }

    /// Runs `plan apply` on this world's database, the server coming from
    /// libpq's environment as a partner would set it.
    pub fn apply(&self, plan: &Path, extra: &[&str]) -> Applied {
        let mut cmd = Command::from_std(support::plan_command(self.db.cluster));
        cmd.arg("apply")
            .arg(plan)
            .args(["--database", &self.db.name])
            .arg("--state-dir")
            .arg(self.state.path())
            .args(extra)
            .timeout(Duration::from_secs(180));
        let started = Instant::now();
        let out = cmd.output().expect("run plan apply");
        let elapsed = started.elapsed();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let report = self.report().unwrap_or_else(|why| {
            panic!("{}: {why}\n--- stderr ---\n{stderr}", self.label);
        });
        Applied {
            code: out.status.code().unwrap_or(-1),
            stderr,
            report,
            elapsed,
        }
    }

    /// The report of the only run in the state folder.
    fn report(&self) -> Result<serde_json::Value, String> {
        let runs = self.state.path().join("runs");
        let mut folders: Vec<PathBuf> = fs::read_dir(&runs)
            .map_err(|e| format!("no runs folder {}: {e}", runs.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        if folders.len() != 1 {
            return Err(format!("expected one run folder, found {folders:?}"));
        }
        let path = folders.remove(0).join("report.json");
        let text = fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", path.display()))
    }

    /// The database's fingerprint as the runner takes it, read here from
    /// connections of the test's own (closed before `apply`, which wants
    /// the database to itself).
    pub fn fingerprint(&self) -> Fingerprint {
        let mut maintenance = self.db.cluster.connect("postgres").expect("connect");
        let props = fingerprint::database_props(&mut maintenance, &self.db.name)
            .expect("read the database's properties")
            .unwrap_or_else(|| panic!("{}: database `{}` is gone", self.label, self.db.name));
        let mut client = self.db.connect();
        fingerprint::take(&mut client, props)
            .expect("fingerprint the database")
            .0
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
