//! A backup that cannot fit is refused before it copies anything, with the
//! figures: on a real small file system (a tmpfs the test mounts, so it
//! runs as root; as another user it fails, it does not skip).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use plan_runner::db::fingerprint;

use crate::crash::{Setup, stderr};

/// A tmpfs of `megabytes` mounted on `dir`, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, megabytes: u32) -> Tmpfs {
        assert!(
            nix::unistd::geteuid().is_root(),
            "this test mounts a small tmpfs to fill: run the tests as root (CI does)"
        );
        fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cannot mount a tmpfs on {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// `megabytes` of files in `root`.
fn fill(root: &Path, megabytes: usize) {
    fs::create_dir_all(root).unwrap();
    for i in 0..megabytes {
        fs::write(root.join(format!("f{i}")), vec![b'x'; 1 << 20]).unwrap();
    }
}

const FIRST: &str = r#"plan "room" {
  from = "1.0"
  to   = "2.0"
}

backup before {
  method = "snapshot"
  paths  = ["small/files"]
}

sql change {
  after = before
  sql   = "create table changed (x int)"
}

on_failure {
  script mark {
    run = "touch on_failure_ran"
  }
}
"#;

/// The tree's copy goes beside it, on the 80 MB tmpfs: 20 MB with its
/// margin (64 MiB and a tenth) does not fit; 5 MB does.
#[test]
fn a_first_backup_that_cannot_fit_is_refused_with_the_figures() {
    let setup = Setup::new("room_first", FIRST);
    let small = setup.plan_dir.path().join("small");
    let _tmpfs = Tmpfs::mount(&small, 80);
    fill(&small.join("files"), 20);
    let before = setup.fingerprint();

    let output = setup.apply(&[]);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(4), "{text}");
    assert!(text.contains(": refused"), "{text}");
    assert!(text.contains("not enough free space"), "{text}");
    assert!(
        text.contains(&format!("files {}", small.join("files").display())),
        "{text}"
    );
    // 20 MiB, in the decimal units the runner shows.
    assert!(text.contains("(21.0 MB)"), "names the tree's size: {text}");
    assert!(
        text.contains("needs 90.2 MB"),
        "names what it needs: {text}"
    );
    assert!(text.contains("MB free"), "names the free space: {text}");
    assert!(text.contains("NOT ENOUGH"), "{text}");
    assert!(!setup.has_table("changed"));
    assert_eq!(
        fingerprint::differences(&before, &setup.fingerprint()),
        Vec::<String>::new()
    );
    let copies: Vec<_> = fs::read_dir(&small)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(copies, ["files"], "nothing was copied");
    // Nothing to recover: the run ended.
    assert!(stderr(&setup.recover()).contains("nothing to recover"));

    // The same tree, smaller: it fits, and the run goes through.
    fs::remove_dir_all(small.join("files")).unwrap();
    fill(&small.join("files"), 5);
    let output = setup.apply(&[]);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(text.contains("free space: "), "{text}");
    assert!(setup.has_table("changed"));
}

/// A later backup that cannot fit is a failed step: the run rolls back
/// what the steps before it did.
#[test]
fn a_later_backup_that_cannot_fit_fails_and_is_rolled_back() {
    let plan = r#"plan "room later" {
  from = "1.0"
  to   = "2.0"
}

backup before {
  method = "snapshot"
}

sql change {
  after = before
  sql   = "create table changed (x int); update t set v = 'changed'"
}

backup again {
  after  = change
  method = "snapshot"
  paths  = ["small/files"]
}

on_failure {
  script mark {
    run = "touch on_failure_ran"
  }
}
"#;
    let setup = Setup::new("room_later", plan);
    let small = setup.plan_dir.path().join("small");
    let _tmpfs = Tmpfs::mount(&small, 80);
    fill(&small.join("files"), 20);
    let before = setup.fingerprint();

    let output = setup.apply(&[]);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("not enough free space"), "{text}");
    assert!(text.contains("step `again` failed"), "{text}");
    assert!(
        text.contains("rolled back") || text.contains("restored"),
        "{text}"
    );
    assert_eq!(
        fingerprint::differences(&before, &setup.fingerprint()),
        Vec::<String>::new()
    );
    assert!(setup.on_failure_ran());
}
