//! State on disk that only its user may touch: the state folder, run
//! folders, journals, reports. Folders are made 0700 and files 0600
//! whatever the umask; and before `recover`, `--resume` or `backups
//! --prune` act on what such a file says, it must be owned by the user
//! running `plan` and writable by nobody else (as ssh treats its keys).
//! A database row never decides what runs: these files do, so they are
//! checked.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Creates `path` and its missing parents as 0700 folders, and makes
/// `path` itself 0700 if it existed with a wider mode.
pub fn make_dir(path: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(path)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o700))
}

/// Writes `bytes` to `path` as a 0600 file (an existing file is truncated
/// and narrowed to 0600).
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.set_permissions(fs::Permissions::from_mode(0o600))?;
    file.write_all(bytes)
}

/// Why a file or folder of the state is not trusted.
#[derive(Debug, PartialEq, Eq)]
pub struct Untrusted {
    pub path: PathBuf,
    pub why: String,
}

impl std::fmt::Display for Untrusted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` is not trusted: {}; plan-runner only acts on state that is its user's alone (fix the owner or the mode if you know where it came from)",
            self.path.display(),
            self.why
        )
    }
}

/// Checks that `path` (not followed if a symbolic link) belongs to the
/// effective user and is writable by no one else.
pub fn check(path: &Path) -> Result<(), Untrusted> {
    let untrusted = |why: String| Untrusted {
        path: path.to_path_buf(),
        why,
    };
    let meta = fs::symlink_metadata(path).map_err(|e| untrusted(format!("cannot read it: {e}")))?;
    if meta.file_type().is_symlink() {
        return Err(untrusted("it is a symbolic link".into()));
    }
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        return Err(untrusted(format!(
            "it is owned by uid {}, not by uid {me} who runs plan",
            meta.uid()
        )));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(untrusted(format!(
            "its group or others may write to it (mode {:o})",
            meta.mode() & 0o7777
        )));
    }
    Ok(())
}

/// [`check`] on each path in turn; the first that fails.
pub fn check_all<'a>(paths: impl IntoIterator<Item = &'a Path>) -> Result<(), Untrusted> {
    paths.into_iter().try_for_each(check)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().mode() & 0o777
    }

    #[test]
    fn folders_and_files_are_private_whatever_was_there() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("state/runs/1");
        make_dir(&deep).unwrap();
        assert_eq!(mode(&dir.path().join("state")), 0o700);
        assert_eq!(mode(&deep), 0o700);
        fs::set_permissions(&deep, fs::Permissions::from_mode(0o777)).unwrap();
        make_dir(&deep).unwrap();
        assert_eq!(mode(&deep), 0o700);
        let file = deep.join("report.json");
        fs::write(&file, "old").unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o666)).unwrap();
        write(&file, b"new").unwrap();
        assert_eq!(mode(&file), 0o600);
        assert_eq!(fs::read(&file).unwrap(), b"new");
        assert_eq!(check(&file), Ok(()));
    }

    #[test]
    fn writable_by_others_or_a_link_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("journal");
        write(&file, b"x").unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o620)).unwrap();
        let refused = check(&file).unwrap_err();
        assert!(refused.why.contains("group or others"), "{refused}");
        assert!(refused.to_string().contains("journal"), "{refused}");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert!(check(&link).unwrap_err().why.contains("symbolic link"));
        assert!(check(&dir.path().join("absent")).is_err());
    }
}
