//! The PostgreSQL programs on this machine: where the server programs are
//! (for the throwaway clusters of `--sandbox` and the tests) and which
//! client program (`pg_dump`, `pg_restore`) a backup runs.

use std::env;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use miette::Diagnostic;
use thiserror::Error;

use crate::version::Version;

/// The programs a folder must hold to be a server installation.
const SERVER_PROGRAMS: [&str; 3] = ["initdb", "pg_ctl", "postgres"];

/// No folder holds the server programs.
#[derive(Debug, Error, Diagnostic)]
#[error("no PostgreSQL server programs (`initdb`, `pg_ctl`, `postgres`) found")]
#[diagnostic(
    code(plan::cluster::no_binaries),
    help(
        "install the PostgreSQL server: `apt-get install postgresql` on Debian or Ubuntu \
         (looked in {searched})"
    )
)]
pub struct NotFound {
    searched: String,
}

/// The folder holding the server programs: `explicit` if given, else
/// `pg_config --bindir`, then Debian's `/usr/lib/postgresql/<version>/bin`
/// (newest first), then `PATH`.
pub fn find_bindir(explicit: Option<&Path>) -> Result<PathBuf, NotFound> {
    let (candidates, searched) = match explicit {
        Some(dir) => (vec![dir.to_path_buf()], format!("`{}`", dir.display())),
        None => {
            let mut candidates: Vec<PathBuf> = pg_config_bindir().into_iter().collect();
            candidates.extend(debian_bindirs(Path::new("/usr/lib/postgresql")));
            if let Some(path) = env::var_os("PATH") {
                candidates.extend(env::split_paths(&path));
            }
            let searched = "`pg_config --bindir`, `/usr/lib/postgresql/*/bin` and PATH";
            (candidates, searched.to_string())
        }
    };
    candidates
        .into_iter()
        .find(|dir| has_server_programs(dir))
        .ok_or(NotFound { searched })
}

fn pg_config_bindir() -> Option<PathBuf> {
    let output = Command::new("pg_config")
        .arg("--bindir")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    let dir = text.trim();
    (output.status.success() && !dir.is_empty()).then(|| PathBuf::from(dir))
}

/// `<root>/<version>/bin` for each version folder, newest first.
fn debian_bindirs(root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(root) else {
        return Vec::new();
    };
    let mut versions: Vec<(Version, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = Version::parse(entry.file_name().to_str()?)?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versions.sort_by(|a, b| b.0.cmp(&a.0));
    versions.into_iter().map(|(_, dir)| dir).collect()
}

fn has_server_programs(dir: &Path) -> bool {
    SERVER_PROGRAMS.iter().all(|name| {
        fs::metadata(dir.join(name))
            .map(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    })
}

/// The path of a PostgreSQL client program: from the same installation the
/// throwaway cluster uses, so that client and server versions match; else
/// whatever the PATH offers.
pub fn client(name: &str) -> PathBuf {
    find_bindir(None)
        .ok()
        .map(|dir| dir.join(name))
        .filter(|path| path.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

#[cfg(test)]
mod tests {
    use miette::Diagnostic as _;

    use super::*;

    #[test]
    fn debian_folders_come_newest_first() {
        let root = tempfile::tempdir().expect("temporary folder");
        for name in ["9.6", "15", "13", "notes", "16"] {
            fs::create_dir(root.path().join(name)).expect("version folder");
        }
        let found = debian_bindirs(root.path());
        let names: Vec<String> = found
            .iter()
            .map(|dir| {
                dir.strip_prefix(root.path())
                    .expect("under root")
                    .display()
                    .to_string()
            })
            .collect();
        assert_eq!(names, ["16/bin", "15/bin", "13/bin", "9.6/bin"]);
    }

    #[test]
    fn missing_programs_name_the_package() {
        let empty = tempfile::tempdir().expect("temporary folder");
        let error = find_bindir(Some(empty.path())).expect_err("no programs there");
        let help = error
            .help()
            .map(|help| help.to_string())
            .unwrap_or_default();
        assert!(help.contains("apt-get install postgresql"), "{help}");
        assert!(help.contains(&empty.path().display().to_string()), "{help}");
    }
}
