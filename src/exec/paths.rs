//! File trees backed up beside themselves (the ERP filestore): copied on
//! the same file system with reflinks where the file system offers them
//! (never hard links, which a step rewriting a file in place would change),
//! with modes, times and owners kept; fingerprinted by a manifest; restored
//! by swapping the trees with renames. The manifest is the original's: a
//! copy that did not keep an owner, a mode or a time is a failed backup,
//! not a proof that fails later.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

#[derive(Debug, Error, miette::Diagnostic)]
pub enum PathError {
    #[error("cannot copy `{}` to `{}`: {detail}", from.display(), to.display())]
    #[diagnostic(
        code(plan::backup::paths),
        help("check that the folder beside it is writable and has room")
    )]
    Copy {
        from: PathBuf,
        to: PathBuf,
        detail: String,
    },
    #[error("cannot read `{}`", path.display())]
    #[diagnostic(code(plan::backup::paths))]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot move `{}` to `{}`", from.display(), to.display())]
    #[diagnostic(code(plan::backup::paths))]
    Rename {
        from: PathBuf,
        to: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the copy `{}` no longer exists, and `{}` is not as it was when it was copied",
        copy.display(),
        original.display()
    )]
    #[diagnostic(code(plan::backup::paths))]
    Gone { copy: PathBuf, original: PathBuf },
    #[error(
        "the copy `{}` of `{}` is not what it copied: {}",
        copy.display(),
        original.display(),
        differences.join("; ")
    )]
    #[diagnostic(
        code(plan::backup::paths),
        help(
            "a copy keeps owners and setuid bits only when plan runs as root; run it as root, or as the files' owner"
        )
    )]
    NotKept {
        original: PathBuf,
        copy: PathBuf,
        differences: Vec<String>,
    },
}

/// One file, folder or link in a tree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub size: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Modification time, seconds and nanoseconds since the epoch (absent
    /// from journals written before it was recorded: 0).
    #[serde(default)]
    pub mtime: i64,
    #[serde(default)]
    pub mtime_nsec: i64,
    /// SHA-256 of a file's bytes, or a link's target.
    pub hash: String,
}

/// A tree's fingerprint: every entry by relative path.
pub type Manifest = BTreeMap<String, Entry>;

/// A tree as backed up.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TreeBackup {
    pub original: PathBuf,
    pub copy: PathBuf,
    /// The tree did not exist: restoring means removing what a step made.
    pub existed: bool,
    pub manifest: Manifest,
}

/// Where the copy of `path` goes: a hidden sibling, so it is on the same
/// file system (reflinks and renames work there).
pub fn copy_path(path: &Path, run_id: &str, what: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{what}-{run_id}"))
}

/// Copies `path` beside itself and fingerprints the copy.
pub fn back_up(path: &Path, run_id: &str) -> Result<TreeBackup, PathError> {
    // A second backup of the same tree in one run needs a name of its own:
    // `cp -a` onto the first copy's folder would copy *into* it, and the
    // earliest backup, the one a rollback restores, would be damaged.
    let mut copy = copy_path(path, run_id, "pr");
    let mut n = 2;
    while fs::symlink_metadata(&copy).is_ok() {
        copy = copy_path(path, run_id, &format!("pr{n}"));
        n += 1;
    }
    if fs::symlink_metadata(path).is_err() {
        return Ok(TreeBackup {
            original: path.to_path_buf(),
            copy,
            existed: false,
            manifest: Manifest::new(),
        });
    }
    copy_tree(path, &copy)?;
    // The copy's content is hashed (it is what a rollback puts back); its
    // owners, modes and times must be the original's. `cp -a` run by a user
    // who is not root gives other users' files to itself and clears their
    // setuid bits without failing: that copy is refused here.
    let manifest = manifest(&copy)?;
    let original = metadata(path)?;
    let differences = differences(&original, &manifest);
    if !differences.is_empty() {
        let _ = remove(&copy);
        return Err(PathError::NotKept {
            original: path.to_path_buf(),
            copy,
            differences,
        });
    }
    Ok(TreeBackup {
        original: path.to_path_buf(),
        copy,
        existed: true,
        manifest,
    })
}

/// Copies the tree (or file) at `from` to `to`, which must not exist;
/// nothing is left at `to` when it fails.
pub fn copy_tree(from: &Path, to: &Path) -> Result<(), PathError> {
    // cp -a keeps modes, times, owners (as root) and links; --reflink=auto
    // shares blocks where the file system can, else copies.
    let output = duct::cmd!("cp", "-a", "--reflink=auto", "--", from, to)
        .stdin_null()
        .stdout_null()
        .stderr_capture()
        .unchecked()
        .run()
        .map_err(|e| PathError::Copy {
            from: from.to_path_buf(),
            to: to.to_path_buf(),
            detail: e.to_string(),
        })?;
    if !output.status.success() {
        let _ = remove(to);
        return Err(PathError::Copy {
            from: from.to_path_buf(),
            to: to.to_path_buf(),
            detail: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(())
}

/// Puts the backed-up tree back in place: the current tree is moved aside
/// (to `failed`, returned), the copy renamed into place. Both renames stay
/// on one file system.
pub fn restore(backup: &TreeBackup, run_id: &str) -> Result<Option<PathBuf>, PathError> {
    let failed = copy_path(&backup.original, run_id, "failed");
    let aside = if fs::symlink_metadata(&backup.original).is_ok() {
        fs::rename(&backup.original, &failed).map_err(|source| PathError::Rename {
            from: backup.original.clone(),
            to: failed.clone(),
            source,
        })?;
        Some(failed)
    } else {
        None
    };
    if backup.existed {
        fs::rename(&backup.copy, &backup.original).map_err(|source| PathError::Rename {
            from: backup.copy.clone(),
            to: backup.original.clone(),
            source,
        })?;
    }
    Ok(aside)
}

/// Removes a tree or file, whatever it is.
pub fn remove(path: &Path) -> std::io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// The manifest of the tree (or file) at `root`.
pub fn manifest(root: &Path) -> Result<Manifest, PathError> {
    let mut out = Manifest::new();
    if fs::symlink_metadata(root).is_err() {
        return Ok(out);
    }
    walk(root, root, &mut out, Hashing::Content)?;
    Ok(out)
}

/// [`manifest`] without the content hashes (every `hash` empty): what a
/// walk of owners, modes, sizes and times costs, without reading a byte.
pub fn metadata(root: &Path) -> Result<Manifest, PathError> {
    let mut out = Manifest::new();
    if fs::symlink_metadata(root).is_err() {
        return Ok(out);
    }
    walk(root, root, &mut out, Hashing::None)?;
    Ok(out)
}

#[derive(Clone, Copy, PartialEq)]
enum Hashing {
    Content,
    None,
}

fn walk(root: &Path, path: &Path, out: &mut Manifest, hashing: Hashing) -> Result<(), PathError> {
    let read = |source| PathError::Read {
        path: path.to_path_buf(),
        source,
    };
    let meta = fs::symlink_metadata(path).map_err(read)?;
    let rel = path
        .strip_prefix(root)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let hash = if meta.file_type().is_symlink() {
        fs::read_link(path)
            .map_err(read)?
            .to_string_lossy()
            .into_owned()
    } else if meta.is_file() && hashing == Hashing::Content {
        let mut file = fs::File::open(path).map_err(read)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0; 1 << 16];
        loop {
            let n = file.read(&mut buf).map_err(read)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        hex::encode(hasher.finalize())
    } else {
        String::new()
    };
    out.insert(
        rel,
        Entry {
            size: if meta.is_dir() { 0 } else { meta.len() },
            mode: meta.permissions().mode(),
            uid: meta.uid(),
            gid: meta.gid(),
            mtime: meta.mtime(),
            mtime_nsec: meta.mtime_nsec(),
            hash,
        },
    );
    if meta.is_dir() {
        let mut entries: Vec<PathBuf> = fs::read_dir(path)
            .map_err(read)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .map_err(read)?;
        entries.sort();
        for entry in entries {
            walk(root, &entry, out, hashing)?;
        }
    }
    Ok(())
}

/// What differs between two manifests, in words. A side without hashes
/// ([`metadata`]) compares everything but the content.
pub fn differences(before: &Manifest, after: &Manifest) -> Vec<String> {
    let mut out = Vec::new();
    for (path, was) in before {
        match after.get(path) {
            None => out.push(format!("`{path}` is missing")),
            Some(now) => {
                let what = what_differs(was, now);
                if !what.is_empty() {
                    out.push(format!("`{path}`: {}", what.join(", ")));
                }
            }
        }
    }
    for path in after.keys().filter(|p| !before.contains_key(*p)) {
        out.push(format!("`{path}` was not there before"));
    }
    out
}

/// Each attribute of an entry that differs, `was -> now`.
fn what_differs(was: &Entry, now: &Entry) -> Vec<String> {
    let mut out = Vec::new();
    if was.uid != now.uid {
        out.push(format!("owner uid {} -> {}", was.uid, now.uid));
    }
    if was.gid != now.gid {
        out.push(format!("group gid {} -> {}", was.gid, now.gid));
    }
    if was.mode != now.mode {
        out.push(format!("mode {:o} -> {:o}", was.mode, now.mode));
    }
    if was.size != now.size {
        out.push(format!("size {} -> {}", was.size, now.size));
    }
    // A journal written before times were recorded has none to compare.
    let recorded = |e: &Entry| e.mtime != 0 || e.mtime_nsec != 0;
    if recorded(was) && recorded(now) && (was.mtime, was.mtime_nsec) != (now.mtime, now.mtime_nsec)
    {
        out.push("modification time".into());
    }
    if !was.hash.is_empty() && !now.hash.is_empty() && was.hash != now.hash {
        out.push("content".into());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_up_and_restore_a_tree_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("filestore");
        fs::create_dir_all(tree.join("ab")).unwrap();
        fs::write(tree.join("ab/file"), b"original").unwrap();
        fs::set_permissions(tree.join("ab/file"), fs::Permissions::from_mode(0o640)).unwrap();
        let before = manifest(&tree).unwrap();

        let backup = back_up(&tree, "r1").unwrap();
        assert_eq!(backup.manifest, before);
        // A step rewrites a file in place and adds one.
        fs::write(tree.join("ab/file"), b"changed!").unwrap();
        fs::write(tree.join("new"), b"x").unwrap();
        assert!(!differences(&before, &manifest(&tree).unwrap()).is_empty());

        let failed = restore(&backup, "r1").unwrap().unwrap();
        assert_eq!(manifest(&tree).unwrap(), before);
        assert_eq!(fs::read(tree.join("ab/file")).unwrap(), b"original");
        assert!(failed.join("new").exists());
    }

    #[test]
    fn two_backups_of_one_tree_in_a_run_keep_the_first_intact() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("filestore");
        fs::create_dir_all(&tree).unwrap();
        fs::write(tree.join("file"), b"first").unwrap();
        let first = back_up(&tree, "r3").unwrap();
        fs::write(tree.join("file"), b"second").unwrap();
        let second = back_up(&tree, "r3").unwrap();
        assert_ne!(first.copy, second.copy);
        assert_eq!(manifest(&first.copy).unwrap(), first.manifest);
        assert_eq!(fs::read(second.copy.join("file")).unwrap(), b"second");

        restore(&first, "r3").unwrap();
        assert_eq!(manifest(&tree).unwrap(), first.manifest);
    }

    #[test]
    fn a_time_or_a_mode_changed_alone_is_a_difference() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("filestore");
        fs::create_dir_all(&tree).unwrap();
        fs::write(tree.join("file"), b"same bytes").unwrap();
        let file = fs::File::options()
            .write(true)
            .open(tree.join("file"))
            .unwrap();
        let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::new(946_684_800, 5);
        file.set_modified(old).unwrap();
        let backup = back_up(&tree, "r4").unwrap();
        assert_eq!(
            backup.manifest[""].mtime,
            manifest(&tree).unwrap()[""].mtime
        );
        assert_eq!(backup.manifest["file"].mtime, 946_684_800);
        assert_eq!(backup.manifest["file"].mtime_nsec, 5);

        file.set_modified(std::time::SystemTime::now()).unwrap();
        let touched = differences(&backup.manifest, &manifest(&tree).unwrap());
        assert_eq!(touched, vec!["`file`: modification time".to_string()]);
        file.set_modified(old).unwrap();
        fs::set_permissions(tree.join("file"), fs::Permissions::from_mode(0o600)).unwrap();
        let chmodded = differences(&backup.manifest, &manifest(&tree).unwrap());
        assert_eq!(chmodded.len(), 1, "{chmodded:?}");
        assert!(chmodded[0].starts_with("`file`: mode "), "{chmodded:?}");
    }

    #[test]
    fn a_manifest_from_before_times_were_recorded_still_reads_and_compares() {
        let old = r#"{"size":3,"mode":33188,"uid":0,"gid":0,"hash":"abc"}"#;
        let entry: Entry = serde_json::from_str(old).unwrap();
        assert_eq!((entry.mtime, entry.mtime_nsec), (0, 0));
        let now = Entry {
            mtime: 1_700_000_000,
            ..entry.clone()
        };
        assert!(what_differs(&entry, &now).is_empty());
    }

    #[test]
    fn a_tree_that_did_not_exist_is_removed_on_restore() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("filestore");
        let backup = back_up(&tree, "r2").unwrap();
        assert!(!backup.existed);
        fs::create_dir_all(&tree).unwrap();
        restore(&backup, "r2").unwrap();
        assert!(!tree.exists());
    }
}
