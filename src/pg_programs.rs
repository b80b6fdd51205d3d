//! The PostgreSQL programs on this machine: where the server programs are
//! (for the throwaway clusters of `--sandbox` and the tests) and which
//! client program (`pg_dump`, `pg_restore`) a backup runs. It runs
//! programs only to ask their `--version`.

use std::env;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use miette::Diagnostic;
use serde::{Deserialize, Serialize};
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
    SERVER_PROGRAMS
        .iter()
        .all(|name| is_program(&dir.join(name)))
}

/// The path of a PostgreSQL client program (`psql`) for a tool that does
/// not mind its version: from the installation the throwaway cluster uses,
/// else any installation [`client_for`] searches, else the bare name.
pub fn client(name: &str) -> PathBuf {
    find_bindir(None)
        .ok()
        .map(|dir| dir.join(name))
        .filter(|path| is_program(path))
        .or_else(|| {
            client_folders()
                .0
                .into_iter()
                .map(|dir| dir.join(name))
                .find(|path| is_program(path))
        })
        .unwrap_or_else(|| PathBuf::from(name))
}

/// The variable naming more folders of PostgreSQL client programs
/// (`pg_dump`, `pg_restore`), searched first: a list like `PATH`.
pub const BINDIR_VAR: &str = "PLAN_RUNNER_PG_BINDIR";

/// A client program chosen for a server, and the release it belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientProgram {
    pub path: PathBuf,
    /// As `--version` says it: `18.6`, `15.18`.
    pub version: String,
    pub major: u32,
}

impl std::fmt::Display for ClientProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (PostgreSQL {})", self.path.display(), self.version)
    }
}

/// No client program is new enough for the server.
#[derive(Debug, Error, Diagnostic)]
#[error("no `{program}` for PostgreSQL {server} on this machine{found}")]
#[diagnostic(
    code(plan::backup::client_too_old),
    help(
        "`{program}` must be of PostgreSQL {needed} or later (the server's major, and the \
         dump's), and one of 17 or later cannot restore into a server older than 17 (it sets \
         `transaction_timeout`, which those reject): install the PostgreSQL {server} client \
         programs (`apt-get install postgresql-client-{server}` from the PostgreSQL apt \
         repository), or name their folder in {BINDIR_VAR} (looked in {searched})"
    )
)]
pub struct NoClient {
    program: String,
    server: u32,
    needed: u32,
    /// `: found 15.18 (/usr/lib/postgresql/15/bin/pg_dump)`, or nothing.
    found: String,
    searched: String,
}

/// The `name` (`pg_dump`, `pg_restore`) of PostgreSQL `needed` or later
/// with the lowest major: the closest to the server's own, so that a dump
/// says no more than the server needs, from the folders in
/// [`BINDIR_VAR`], `pg_config --bindir`, `/usr/lib/postgresql/*/bin` and
/// the `PATH` (the first found wins among those of one major). A program
/// older than the server refuses to dump it, or mis-dumps catalogs it
/// does not know; one older than the dump cannot read it.
pub fn client_for(name: &str, server: u32, needed: u32) -> Result<ClientProgram, NoClient> {
    let (folders, searched) = client_folders();
    let found = installed(name, folders);
    pick(server, needed, &found).ok_or_else(|| NoClient {
        program: name.to_string(),
        server,
        needed,
        found: if found.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = found
                .iter()
                .map(|p| format!("{} ({})", p.version, p.path.display()))
                .collect();
            format!(": found {}", list.join(", "))
        },
        searched,
    })
}

/// The program with the lowest major that is at least `needed` and can
/// restore into a `server` major; the first found of that major.
fn pick(server: u32, needed: u32, found: &[ClientProgram]) -> Option<ClientProgram> {
    found
        .iter()
        .filter(|p| p.major >= needed.max(server) && restores_into(p.major, server))
        .min_by_key(|p| p.major)
        .cloned()
}

/// Whether what a `pg_dump`/`pg_restore` of `client` major writes can be
/// loaded into a `server` major. From 17 they open every restore with
/// `SET transaction_timeout = 0`, which a server older than 17 rejects
/// (`unrecognized configuration parameter`; seen with pg_restore 18 and a
/// 16 server): a dump such a pair takes could never be rolled back.
fn restores_into(client: u32, server: u32) -> bool {
    client >= server && (server >= 17 || client < 17)
}

/// The folders to search for client programs, in order, and how to say
/// where we looked.
fn client_folders() -> (Vec<PathBuf>, String) {
    let mut folders: Vec<PathBuf> = env::var_os(BINDIR_VAR)
        .map(|list| env::split_paths(&list).collect())
        .unwrap_or_default();
    folders.extend(pg_config_bindir());
    folders.extend(debian_bindirs(Path::new("/usr/lib/postgresql")));
    if let Some(path) = env::var_os("PATH") {
        folders.extend(env::split_paths(&path));
    }
    let searched =
        format!("{BINDIR_VAR}, `pg_config --bindir`, `/usr/lib/postgresql/*/bin` and PATH");
    (folders, searched)
}

/// `name` in each folder that has it, with its version; each program
/// once, however many folders lead to it.
fn installed(name: &str, folders: Vec<PathBuf>) -> Vec<ClientProgram> {
    let mut seen = Vec::new();
    let mut found = Vec::new();
    for folder in folders {
        let path = folder.join(name);
        if !is_program(&path) {
            continue;
        }
        let real = fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
        if seen.contains(&real) {
            continue;
        }
        seen.push(real);
        if let Some((version, major)) = program_version(&path) {
            found.push(ClientProgram {
                path,
                version,
                major,
            });
        }
    }
    found
}

fn is_program(path: &Path) -> bool {
    fs::metadata(path)
        .map(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// What `<program> --version` says: `pg_dump (PostgreSQL) 18.6` (Debian
/// adds ` (Debian 15.18-0+deb12u1)`).
fn program_version(path: &Path) -> Option<(String, u32)> {
    let output = Command::new(path)
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    parse_version(&String::from_utf8_lossy(&output.stdout))
}

fn parse_version(text: &str) -> Option<(String, u32)> {
    let rest = text.split_once("(PostgreSQL) ")?.1;
    let version: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '.')
        .collect();
    let major = version
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    Some((version, major))
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

    fn program(major: u32, path: &str) -> ClientProgram {
        ClientProgram {
            path: PathBuf::from(path),
            version: format!("{major}.1"),
            major,
        }
    }

    #[test]
    fn the_lowest_major_at_least_the_servers_is_picked() {
        let found = [
            program(18, "/a/pg_dump"),
            program(15, "/b/pg_dump"),
            program(16, "/c/pg_dump"),
            program(15, "/d/pg_dump"),
        ];
        let for_server = |server| pick(server, server, &found).map(|p| p.path);
        assert_eq!(for_server(13), Some(PathBuf::from("/b/pg_dump")));
        assert_eq!(for_server(16), Some(PathBuf::from("/c/pg_dump")));
        assert_eq!(for_server(17), Some(PathBuf::from("/a/pg_dump")));
        assert_eq!(for_server(19), None);
        // A dump of pg_dump 16 is restored with pg_restore 16 or later.
        let restore = pick(13, 16, &found).map(|p| p.path);
        assert_eq!(restore, Some(PathBuf::from("/c/pg_dump")));
    }

    #[test]
    fn a_program_of_17_or_later_is_never_picked_for_an_older_server() {
        let found = [program(18, "/a/pg_dump"), program(15, "/b/pg_dump")];
        assert_eq!(pick(16, 16, &found), None);
        assert_eq!(
            pick(14, 14, &found).map(|p| p.path),
            Some(PathBuf::from("/b/pg_dump"))
        );
        assert_eq!(
            pick(17, 17, &found).map(|p| p.path),
            Some(PathBuf::from("/a/pg_dump"))
        );
        assert!(restores_into(16, 13) && !restores_into(17, 16) && restores_into(18, 17));
    }

    #[test]
    fn versions_are_read_as_the_programs_print_them() {
        assert_eq!(
            parse_version("pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n"),
            Some(("15.18".into(), 15))
        );
        assert_eq!(
            parse_version("pg_restore (PostgreSQL) 18.6\n"),
            Some(("18.6".into(), 18))
        );
        assert_eq!(
            parse_version("pg_dump (PostgreSQL) 19beta1\n"),
            Some(("19beta1".into(), 19))
        );
        assert_eq!(parse_version("something else"), None);
    }

    #[test]
    fn none_new_enough_is_refused_with_what_was_found() {
        let error = client_for("pg_dump", 99, 99).expect_err("no PostgreSQL 99 here");
        let text = error.to_string();
        assert!(text.contains("for PostgreSQL 99"), "{text}");
        let help = error
            .help()
            .map(|help| help.to_string())
            .unwrap_or_default();
        assert!(help.contains(BINDIR_VAR), "{help}");
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
