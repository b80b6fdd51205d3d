//! `paths` backups keep what `cp` run by another user would lose: owners,
//! groups, setuid bits and modification times. As root, a failed plan that
//! chowns, chmods and touches the tree leaves it exactly as it was, and a
//! proof that compares modes sees a backup whose mode was changed. A
//! runner that is not root refuses, before any step, a tree holding a file
//! of another user. Changing owners needs root (CI runs as root): these
//! tests fail, rather than skip, without it.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::os::unix::process::CommandExt;
use std::path::Path;

use nix::sys::stat::{UtimensatFlags, utimensat};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, User, chown};

use crate::support::apply::snapshot_plan;
use crate::support::apply::{
    TREE, World, apply_command, fingerprint, related_databases, run, run_folders,
};

/// One entry as these tests compare it: kind and mode bits (`st_mode`
/// whole, setuid included), owner, group, modification time, and bytes
/// (or a link's target). Read independently of the runner's manifest.
#[derive(Debug, PartialEq, Eq)]
struct Listed {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: (i64, i64),
    bytes: Vec<u8>,
}

fn listing(root: &Path) -> BTreeMap<String, Listed> {
    fn walk(root: &Path, path: &Path, out: &mut BTreeMap<String, Listed>) {
        let meta =
            fs::symlink_metadata(path).unwrap_or_else(|e| panic!("stat {}: {e}", path.display()));
        let bytes = if meta.file_type().is_symlink() {
            fs::read_link(path)
                .expect("readlink")
                .into_os_string()
                .into_encoded_bytes()
        } else if meta.is_file() {
            fs::read(path).expect("read a tree file")
        } else {
            Vec::new()
        };
        let rel = path
            .strip_prefix(root)
            .expect("under the root")
            .to_string_lossy()
            .into_owned();
        out.insert(
            rel,
            Listed {
                mode: meta.mode(),
                uid: meta.uid(),
                gid: meta.gid(),
                mtime: (meta.mtime(), meta.mtime_nsec()),
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

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test gives files to other users and runs `plan` as another user: run the tests as root (CI does)"
    );
}

/// The throwaway cluster's server account: it exists wherever the tests
/// run as root, and may use the cluster's socket.
fn other_user() -> User {
    User::from_name("plan-runner-pg")
        .expect("read the user database")
        .expect("the cluster's server account `plan-runner-pg`")
}

/// Sets a path's modification (and access) time, not following a link.
fn set_mtime(path: &Path, seconds: i64, nanos: i64) {
    let time = TimeSpec::new(seconds, nanos);
    utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &time,
        &time,
        UtimensatFlags::NoFollowSymlink,
    )
    .unwrap_or_else(|e| panic!("utimensat {}: {e}", path.display()));
}

/// Adds to the world's tree files of several owners and groups, a setuid
/// and a setgid file, a sticky folder, a link owned by another user, and
/// odd modification times (set last, so that adding files does not move a
/// folder's time).
fn add_owned_files(world: &World) {
    let tree = world.tree();
    let daemon = (Uid::from_raw(1), Gid::from_raw(1));
    let nobody = (Uid::from_raw(65534), Gid::from_raw(65534));
    let pg = other_user();
    let write = |rel: &str, mode: u32, owner: (Uid, Gid)| {
        let path = tree.join(rel);
        fs::write(&path, format!("{rel}\n")).expect("write");
        chown(&path, Some(owner.0), Some(owner.1)).expect("chown");
        // After chown, which clears setuid and setgid bits.
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
    };
    fs::create_dir_all(tree.join("shared")).expect("mkdir");
    write("setuid.bin", 0o4755, daemon);
    write("setgid.bin", 0o2750, (Uid::from_raw(0), daemon.1));
    write("nobody.txt", 0o604, nobody);
    write("mixed.txt", 0o640, (pg.uid, daemon.1));
    write("shared/by_pg.txt", 0o600, (pg.uid, pg.gid));
    chown(&tree.join("shared"), Some(pg.uid), Some(pg.gid)).expect("chown");
    fs::set_permissions(tree.join("shared"), fs::Permissions::from_mode(0o1777)).expect("chmod");
    symlink("nobody.txt", tree.join("nobody.link")).expect("symlink");
    std::os::unix::fs::lchown(tree.join("nobody.link"), Some(65534), Some(65534)).expect("lchown");
    for (i, rel) in [
        "setuid.bin",
        "setgid.bin",
        "nobody.txt",
        "mixed.txt",
        "shared/by_pg.txt",
        "nobody.link",
        "shared",
        "sub",
        "",
    ]
    .into_iter()
    .enumerate()
    {
        let step = i64::try_from(i).expect("small");
        set_mtime(
            &tree.join(rel),
            946_684_800 + step * 86_400,
            123_456_789 + step,
        );
    }
}

/// The tests' plan shape: a snapshot with the tree, then `steps`.
fn plan(steps: &str) -> String {
    snapshot_plan("paths owners", steps, "touch on_failure.ran")
}

fn write_script(world: &World, name: &str, text: &str) {
    let path = world.path(&format!("steps/{name}"));
    fs::write(&path, text).expect("write a step script");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
}

#[test]
fn rollback_gives_back_owners_groups_modes_and_times() {
    require_root();
    let world = World::new("paths_owners_rollback");
    add_owned_files(&world);
    // Changes each attribute in turn, without changing a byte (so only the
    // attributes can tell), then fails.
    write_script(
        &world,
        "owners.sh",
        &format!(
            r#"#!/bin/sh
set -eu
chown root:root {TREE}/setuid.bin
chmod 0755 {TREE}/setgid.bin
chown 1:1 {TREE}/nobody.txt
chgrp root {TREE}/mixed.txt
chown -h root {TREE}/nobody.link
chmod 0755 {TREE}/shared
touch -d '2020-02-02 02:02:02' {TREE}/shared/by_pg.txt
touch {TREE}
printf 'ran\n' > witness.owners
echo "failing on purpose after changing owners"
exit 1
"#
        ),
    );
    let plan = world.write_plan(&plan(
        r#"
script owners {
  after   = before
  run     = "sh steps/owners.sh"
  timeout = "1m"
}
"#,
    ));
    let tree_before = listing(&world.tree());
    let db_before = fingerprint(&world.db);

    let applied = world.apply(&plan, &[]);

    applied.assert_code(1);
    assert_eq!(applied.outcome(), "rolled_back", "{}", applied.output());
    assert!(world.witnessed("owners"), "{}", applied.output());
    assert_eq!(
        applied.report()["rollback"]["proved"],
        true,
        "{}",
        applied.output()
    );
    let tree_after = listing(&world.tree());
    assert_eq!(tree_after, tree_before, "{}", applied.output());
    assert_eq!(
        tree_after["setuid.bin"].mode & 0o7777,
        0o4755,
        "the setuid bit is back"
    );
    assert_eq!(fingerprint(&world.db), db_before);
    assert!(world.on_failure_ran());
}

#[test]
fn the_proof_sees_a_mode_changed_in_the_backup() {
    require_root();
    let world = World::new("paths_owners_proof_mode");
    // Changes only the mode of a file of the backup copy (not its bytes,
    // owner or time), then fails: the restored tree then differs from the
    // manifest in its mode alone.
    write_script(
        &world,
        "chmod_copy.sh",
        &format!(
            r#"#!/bin/sh
set -eu
found=0
for copy in .{TREE}.pr-*; do
  chmod 0604 "$copy/sub/a.txt"
  found=1
done
test "$found" = 1
printf 'ran\n' > witness.chmod_copy
exit 1
"#
        ),
    );
    let plan = world.write_plan(&plan(
        r#"
script chmod_copy {
  after   = before
  run     = "sh steps/chmod_copy.sh"
  timeout = "1m"
}
"#,
    ));

    let applied = world.apply(&plan, &[]);

    applied.assert_code(3);
    assert_eq!(applied.outcome(), "rollback_failed", "{}", applied.output());
    assert!(world.witnessed("chmod_copy"));
    let rollback = &applied.report()["rollback"];
    assert_eq!(rollback["proved"], false, "{}", applied.output());
    let differences = rollback["differences"].to_string();
    assert!(
        differences.contains("sub/a.txt") && differences.contains("mode 100640 -> 100604"),
        "{differences}"
    );
    assert!(
        !world.on_failure_ran(),
        "on_failure runs only after a proved rollback"
    );
}

/// Gives `path` and everything under it to `user`.
fn give_to(path: &Path, user: &User) {
    let meta = fs::symlink_metadata(path).expect("stat");
    std::os::unix::fs::lchown(path, Some(user.uid.as_raw()), Some(user.gid.as_raw()))
        .expect("lchown");
    if meta.is_dir() {
        for entry in fs::read_dir(path).expect("read a folder") {
            give_to(&entry.expect("a folder entry").path(), user);
        }
    }
}

#[test]
fn a_runner_that_is_not_root_refuses_a_file_of_another_user_before_any_step() {
    require_root();
    let other = other_user();
    let world = World::new("paths_owners_not_root");
    // A setuid file of its own is one the runner can copy as it is.
    fs::write(world.tree().join("own-setuid.bin"), "x").expect("write");
    fs::set_permissions(
        world.tree().join("own-setuid.bin"),
        fs::Permissions::from_mode(0o4750),
    )
    .expect("chmod");
    let plan = world.write_plan(&plan(
        r#"
script changes {
  after   = before
  run     = "sh -c 'printf changed > files/top.txt; printf ran > witness.changes'"
  timeout = "1m"
}
"#,
    ));
    give_to(world.folder.path(), &other);
    give_to(world.state.path(), &other);
    let foreign = world.tree().join("sub/a.txt");
    chown(&foreign, Some(Uid::from_raw(1)), None).expect("chown");
    let tree_before = listing(&world.tree());
    let db_before = fingerprint(&world.db);
    let databases_before = related_databases(&world.db);
    let as_other = |world: &World| {
        let mut cmd = apply_command(&world.db, &plan, world.state.path(), &[]);
        cmd.uid(other.uid.as_raw())
            .gid(other.gid.as_raw())
            .env("HOME", world.state.path())
            .current_dir(world.folder.path());
        run(&mut cmd, world.state.path())
    };

    let refused = as_other(&world);

    refused.assert_code(4);
    assert_eq!(refused.outcome(), "refused", "{}", refused.output());
    let text = refused.output();
    assert!(text.contains(&foreign.display().to_string()), "{text}");
    assert!(text.contains("owned by `daemon` (uid 1)"), "{text}");
    assert!(text.contains("only root can give"), "{text}");
    assert!(!world.witnessed("changes"), "no step ran");
    assert!(
        refused.report()["steps"]
            .as_array()
            .is_none_or(|steps| steps.iter().all(|s| s["status"] != "succeeded")),
        "{text}"
    );
    assert_eq!(listing(&world.tree()), tree_before);
    assert_eq!(fingerprint(&world.db), db_before);
    assert_eq!(related_databases(&world.db), databases_before);
    let copies: Vec<_> = fs::read_dir(world.folder.path())
        .expect("read the plan folder")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".files."))
        .collect();
    assert!(copies.is_empty(), "no copy was made: {copies:?}");

    // The same tree with that file given back to the runner's user is
    // applied: the refusal was about that file alone, and a setuid file
    // of the runner's own is copied with its bit.
    chown(&foreign, Some(other.uid), None).expect("chown");
    let applied = as_other(&world);
    applied.assert_code(0);
    assert!(world.witnessed("changes"), "{}", applied.output());
    assert_eq!(run_folders(world.state.path()).len(), 2);
}
