//! Room for a backup's copies: the size of what is copied against the free
//! space where each copy goes, per file system. `plan apply` refuses a
//! backup that cannot fit (before it starts copying); `--dry-run` shows the
//! same figures. The margin is documented in docs/apply.md ("Free space").

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::units::bytes;
use postgres::Client;

/// Room kept free beside a copy: 10 % of its size and 64 MiB more. A file
/// system filled to the last byte stops the server (the WAL cannot be
/// written) and the steps after the backup need room too.
pub fn with_margin(size: u64) -> u64 {
    size.saturating_add(size / 10)
        .saturating_add(64 * 1024 * 1024)
}

/// Where the server keeps its files, when it is on this machine and says.
pub enum DataDirectory {
    Here(PathBuf),
    NotChecked(String),
}

/// The data directory of a server on this machine (`local`), when this
/// user may read the setting.
pub fn data_directory(maintenance: &mut Client, local: bool) -> DataDirectory {
    if !local {
        return DataDirectory::NotChecked("the server is on another host".into());
    }
    match maintenance.query_one("show data_directory", &[]) {
        Ok(row) => DataDirectory::Here(PathBuf::from(row.get::<_, String>(0))),
        Err(_) => {
            // Only superusers and members of pg_read_all_settings see it.
            let user = maintenance
                .query_one("select quote_ident(current_user)", &[])
                .map_or_else(|_| "this role".into(), |row| row.get::<_, String>(0));
            DataDirectory::NotChecked(format!(
                "the role {user} may not read the server's data directory; to let it, as a superuser: GRANT pg_read_all_settings TO {user};"
            ))
        }
    }
}

/// A file system's free space, seen from `path` (or its nearest existing
/// folder): its device (to add up copies going to one file system) and
/// the bytes an unprivileged user may still write.
pub fn free(path: &Path) -> std::io::Result<(u64, u64)> {
    let existing = path
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"));
    let device = std::fs::metadata(existing)?.dev();
    let stat = nix::sys::statvfs::statvfs(existing)?;
    Ok((
        device,
        stat.blocks_available().saturating_mul(stat.fragment_size()),
    ))
}

/// The bytes of the files below `path`; `None` when it does not exist.
pub fn tree_size(path: &Path) -> Option<u64> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    if !meta.is_dir() {
        return Some(meta.len());
    }
    let mut total = 0;
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(entry.path()),
                Ok(_) => total += entry.metadata().map_or(0, |m| m.len()),
                Err(_) => {}
            }
        }
    }
    Some(total)
}

/// One copy a backup is about to make.
pub struct Copy {
    /// `snapshot of `acme``, `files /srv/filestore`.
    pub what: String,
    pub size: u64,
    /// Where the copy goes; `Err` says why it is not checked.
    pub to: Result<PathBuf, String>,
}

/// What the check found: one line per copy or file system for the
/// progress, and the refusal when some file system cannot take its copies.
pub struct Verdict {
    pub lines: Vec<String>,
    pub refusal: Option<String>,
}

/// Adds up the copies going to each file system (with the margin of each)
/// and compares the sum with its free space.
pub fn check(copies: &[Copy]) -> Verdict {
    let mut lines = Vec::new();
    // (device, a path on it, free, needed, what goes there)
    let mut systems: Vec<(u64, PathBuf, u64, u64, Vec<String>)> = Vec::new();
    for copy in copies {
        let path = match &copy.to {
            Ok(path) => path,
            Err(why) => {
                lines.push(format!(
                    "free space for the {} ({}): not checked ({why})",
                    copy.what,
                    bytes(copy.size)
                ));
                continue;
            }
        };
        match free(path) {
            Ok((device, available)) => {
                let need = with_margin(copy.size);
                let shown = format!("{} ({})", copy.what, bytes(copy.size));
                match systems.iter_mut().find(|s| s.0 == device) {
                    Some(s) => {
                        s.3 = s.3.saturating_add(need);
                        s.4.push(shown);
                    }
                    None => systems.push((device, path.clone(), available, need, vec![shown])),
                }
            }
            Err(e) => lines.push(format!(
                "free space for the {} in {}: not checked ({e})",
                copy.what,
                path.display()
            )),
        }
    }
    let mut short = Vec::new();
    for (_, path, available, need, what) in &systems {
        let line = format!(
            "{} in {}: needs {} with the margin, {} free",
            what.join(" + "),
            path.display(),
            bytes(*need),
            bytes(*available)
        );
        if need > available {
            short.push(line.clone());
            lines.push(format!("{line}: NOT ENOUGH"));
        } else {
            lines.push(line);
        }
    }
    let refusal = (!short.is_empty()).then(|| {
        format!(
            "not enough free space for the backup's copies: {}\n(the margin is 10 % of each copy and 64 MiB more: see docs/apply.md, \"Free space\"); free some space, or back up elsewhere",
            short.join("; ")
        )
    });
    Verdict { lines, refusal }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_on_one_file_system_add_up() {
        let dir = tempfile::tempdir().unwrap();
        let (_, available) = free(dir.path()).unwrap();
        let half = available / 2;
        let one = Copy {
            what: "snapshot of `a`".into(),
            size: half,
            to: Ok(dir.path().to_path_buf()),
        };
        let fits = check(std::slice::from_ref(&one));
        assert!(fits.refusal.is_none(), "{:?}", fits.lines);
        let two = Copy {
            what: "files x".into(),
            size: half,
            to: Ok(dir.path().join("not yet made")),
        };
        let verdict = check(&[one, two]);
        let refusal = verdict.refusal.expect("two halves and a margin do not fit");
        assert!(refusal.contains("snapshot of `a`") && refusal.contains("files x"));
        assert!(verdict.lines[0].ends_with("NOT ENOUGH"));
    }

    #[test]
    fn a_copy_whose_place_is_unknown_is_not_checked() {
        let verdict = check(&[Copy {
            what: "snapshot of `a`".into(),
            size: u64::MAX,
            to: Err("the server is on another host".into()),
        }]);
        assert!(verdict.refusal.is_none());
        assert_eq!(
            verdict.lines,
            [format!(
                "free space for the snapshot of `a` ({}): not checked (the server is on another host)",
                bytes(u64::MAX)
            )]
        );
    }

    #[test]
    fn the_margin_is_a_tenth_and_64_mib() {
        assert_eq!(with_margin(0), 64 << 20);
        assert_eq!(with_margin(1000), 1100 + (64 << 20));
    }
}
