//! libpq's password file (`~/.pgpass`, `PGPASSFILE`): finding a password in
//! one the way libpq does, and writing the 0600 one handed to child
//! processes. It never logs or returns a password other than as a `Secret`.
//!
//! The format, one entry a line: `host:port:database:username:password`.
//! A field that is exactly `*` matches anything; `\` escapes the next
//! character (`\:` and `\\`); lines starting with `#` are comments; the
//! first matching line wins.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::plan::Secret;

/// The file name of the password file written into a run folder.
pub const CHILD_PASSFILE: &str = "pgpass";

/// What a lookup was done for: the connection's own values.
#[derive(Clone, Copy, Debug)]
pub struct Key<'a> {
    /// A host name, or a socket folder.
    pub host: &'a str,
    /// Whether `host` is a socket folder that libpq would match as
    /// `localhost` (its built-in default socket folder).
    pub host_is_default_socket: bool,
    pub port: u16,
    pub database: &'a str,
    pub user: &'a str,
}

/// Why a password file was not used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ignored {
    /// Group or others may read it; libpq refuses such a file too.
    TooOpen {
        path: PathBuf,
        mode: u32,
    },
    NotAFile {
        path: PathBuf,
    },
    Unreadable {
        path: PathBuf,
        reason: String,
    },
}

impl std::fmt::Display for Ignored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ignored::TooOpen { path, mode } => write!(
                f,
                "password file `{}` has group or world access (mode {mode:04o}); it is ignored, as libpq does; run `chmod 0600 {}`",
                path.display(),
                path.display()
            ),
            Ignored::NotAFile { path } => write!(
                f,
                "password file `{}` is not a plain file; it is ignored",
                path.display()
            ),
            Ignored::Unreadable { path, reason } => write!(
                f,
                "password file `{}` cannot be read ({reason}); it is ignored",
                path.display()
            ),
        }
    }
}

/// Looks `key` up in the password file at `path`. A missing file is no
/// password and no warning, as with libpq.
pub fn lookup(path: &Path, key: &Key<'_>) -> Result<Option<Secret>, Ignored> {
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(Ignored::Unreadable {
                path: path.to_path_buf(),
                reason: error.to_string(),
            });
        }
    };
    if !meta.is_file() {
        return Err(Ignored::NotAFile {
            path: path.to_path_buf(),
        });
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(Ignored::TooOpen {
            path: path.to_path_buf(),
            mode,
        });
    }
    let text = fs::read(path).map_err(|error| Ignored::Unreadable {
        path: path.to_path_buf(),
        reason: error.to_string(),
    })?;
    Ok(find(&String::from_utf8_lossy(&text), key))
}

/// The password of the first line of `text` that matches `key`.
pub fn find(text: &str, key: &Key<'_>) -> Option<Secret> {
    let port = key.port.to_string();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields = split(line);
        let [host, port_field, database, user, password] = fields.as_slice() else {
            continue;
        };
        let host_matches =
            host.matches(key.host) || (key.host_is_default_socket && host.matches("localhost"));
        if host_matches
            && port_field.matches(&port)
            && database.matches(key.database)
            && user.matches(key.user)
        {
            if password.text.is_empty() {
                return None;
            }
            return Some(Secret::new("password", password.text.clone()));
        }
    }
    None
}

/// One field of a line: its text with escapes removed, and whether it was
/// the bare wildcard `*` (an escaped `\*` is a literal star).
struct Field {
    text: String,
    wildcard: bool,
}

impl Field {
    fn matches(&self, value: &str) -> bool {
        self.wildcard || self.text == value
    }
}

/// Splits a line on unescaped `:` into at most five fields; like libpq,
/// the password ends at the next unescaped `:`, and a line with fewer than
/// five fields matches nothing.
fn split(line: &str) -> Vec<Field> {
    let mut fields = Vec::with_capacity(5);
    let mut text = String::new();
    let mut raw = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                raw.push(c);
                match chars.next() {
                    Some(next) => {
                        raw.push(next);
                        text.push(next);
                    }
                    // A trailing backslash stands for itself.
                    None => text.push('\\'),
                }
            }
            ':' => {
                fields.push(Field {
                    wildcard: raw == "*",
                    text: std::mem::take(&mut text),
                });
                raw.clear();
                if fields.len() == 5 {
                    return fields;
                }
            }
            _ => {
                raw.push(c);
                text.push(c);
            }
        }
    }
    fields.push(Field {
        wildcard: raw == "*",
        text,
    });
    fields
}

/// `value` escaped for a password file field.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, ':' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Why the password file for children cannot be written.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum WriteError {
    #[error("the password holds a line break, which a password file cannot carry")]
    #[diagnostic(
        code(plan::password_line_break),
        help(
            "child processes get the password through a password file; use a password without line breaks"
        )
    )]
    LineBreak,

    #[error("cannot write the password file `{}`", path.display())]
    #[diagnostic(code(plan::io))]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The password file for child processes: one line for `key`'s host, port
/// and user, any database (a child such as `pg_restore` may connect to the
/// maintenance database). For a socket folder that libpq may know as
/// `localhost`, a `localhost` line too.
pub fn contents(key: &Key<'_>, password: &Secret) -> Result<String, WriteError> {
    let value = password.expose();
    if value.contains(['\n', '\r']) {
        return Err(WriteError::LineBreak);
    }
    let tail = format!(":{}:*:{}:{}\n", key.port, escape(key.user), escape(value));
    let mut out = escape(key.host) + &tail;
    if key.host.starts_with('/') {
        out.push_str("localhost");
        out.push_str(&tail);
    }
    Ok(out)
}

/// Removes the password file [`write`] made in `folder`, if it is there.
pub fn remove(folder: &Path) {
    let _ = std::fs::remove_file(folder.join(CHILD_PASSFILE));
}

/// Writes the password file into `folder` with mode 0600 and returns its
/// path. The file is written under a temporary name and renamed into
/// place, so a child reading it while another step starts never sees it
/// half-written or missing.
pub fn write(folder: &Path, key: &Key<'_>, password: &Secret) -> Result<PathBuf, WriteError> {
    let text = contents(key, password)?;
    let path = folder.join(CHILD_PASSFILE);
    let io = |source| WriteError::Io {
        path: path.clone(),
        source,
    };
    // tempfile creates the file with O_EXCL and mode 0600, so it never
    // exists with a wider mode, even for an instant.
    let mut file = tempfile::Builder::new()
        .prefix(".pgpass-")
        .permissions(fs::Permissions::from_mode(0o600))
        .tempfile_in(folder)
        .map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)?;
    file.as_file().sync_all().map_err(io)?;
    file.persist(&path).map_err(|error| io(error.error))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key<'a>(host: &'a str, database: &'a str, user: &'a str) -> Key<'a> {
        Key {
            host,
            host_is_default_socket: false,
            port: 5432,
            database,
            user,
        }
    }

    fn found(text: &str, key: &Key<'_>) -> Option<String> {
        find(text, key).map(|s| s.expose().to_string())
    }

    #[test]
    fn first_matching_line_wins() {
        let text = "db1:5432:acme:erp:first\n*:*:*:*:fallback\n";
        assert_eq!(
            found(text, &key("db1", "acme", "erp")).as_deref(),
            Some("first")
        );
        assert_eq!(
            found(text, &key("db2", "acme", "erp")).as_deref(),
            Some("fallback")
        );
    }

    #[test]
    fn wildcards_match_any_value_but_only_as_a_whole_field() {
        let text = "*:5432:*:erp:pw\n";
        assert_eq!(
            found(text, &key("anything", "any", "erp")).as_deref(),
            Some("pw")
        );
        assert_eq!(found(text, &key("anything", "any", "other")), None);
        // `\*` is a literal star, and `a*` is no pattern.
        assert_eq!(found("\\*:5432:*:erp:pw\n", &key("h", "d", "erp")), None);
        assert_eq!(
            found("\\*:5432:*:erp:pw\n", &key("*", "d", "erp")).as_deref(),
            Some("pw")
        );
        assert_eq!(found("h*:5432:*:erp:pw\n", &key("host", "d", "erp")), None);
    }

    #[test]
    fn port_must_match_unless_wildcard() {
        assert_eq!(found("h:5433:*:erp:pw\n", &key("h", "d", "erp")), None);
        assert_eq!(
            found("h:*:*:erp:pw\n", &key("h", "d", "erp")).as_deref(),
            Some("pw")
        );
    }

    #[test]
    fn escapes_in_fields_and_password() {
        let text = "h:5432:a\\:b:u\\\\x:p\\:w\\\\d\n";
        assert_eq!(
            found(text, &key("h", "a:b", "u\\x")).as_deref(),
            Some("p:w\\d")
        );
        // The password ends at the next unescaped colon, as in libpq.
        assert_eq!(
            found("h:5432:*:u:pw:tail\n", &key("h", "d", "u")).as_deref(),
            Some("pw")
        );
    }

    #[test]
    fn comments_blank_and_short_lines_are_skipped() {
        let text = "# h:5432:*:u:commented\n\nh:5432:u\r\nh:5432:*:u:pw\r\n";
        assert_eq!(found(text, &key("h", "d", "u")).as_deref(), Some("pw"));
    }

    #[test]
    fn default_socket_folder_matches_localhost() {
        let text = "localhost:5432:*:u:pw\n";
        let mut k = key("/var/run/postgresql", "d", "u");
        assert_eq!(found(text, &k), None);
        k.host_is_default_socket = true;
        assert_eq!(found(text, &k).as_deref(), Some("pw"));
        // The folder written out matches too.
        let text = "/var/run/postgresql:5432:*:u:pw2\n";
        assert_eq!(found(text, &k).as_deref(), Some("pw2"));
    }

    #[test]
    fn empty_password_is_no_password() {
        assert_eq!(found("h:5432:*:u:\n", &key("h", "d", "u")), None);
    }

    #[test]
    fn file_readable_by_others_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pgpass");
        fs::write(&path, "*:*:*:*:pw\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(
            lookup(&path, &key("h", "d", "u")),
            Err(Ignored::TooOpen {
                path: path.clone(),
                mode: 0o644
            })
        );
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let secret = lookup(&path, &key("h", "d", "u")).unwrap();
        assert_eq!(secret.as_ref().map(Secret::expose), Some("pw"));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
        assert!(lookup(&path, &key("h", "d", "u")).unwrap().is_some());
    }

    #[test]
    fn missing_file_is_silent_and_a_folder_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            lookup(&dir.path().join("none"), &key("h", "d", "u")),
            Ok(None)
        );
        assert!(matches!(
            lookup(dir.path(), &key("h", "d", "u")),
            Err(Ignored::NotAFile { .. })
        ));
    }

    #[test]
    fn written_file_round_trips_through_the_reader() {
        let dir = tempfile::tempdir().unwrap();
        let password = Secret::new("password", "p:a\\ss");
        let k = key("db:1", "acme", "e:rp");
        let path = write(dir.path(), &k, &password).unwrap();
        let mode = fs::metadata(&path).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let back = lookup(
            &path,
            &Key {
                database: "postgres",
                ..k
            },
        )
        .unwrap();
        assert_eq!(back.as_ref().map(Secret::expose), Some("p:a\\ss"));
        // Written again (a second step), still one 0600 file and no leftovers.
        write(dir.path(), &k, &password).unwrap();
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(CHILD_PASSFILE)]);
    }

    #[test]
    fn socket_folder_also_gets_a_localhost_line() {
        let k = key("/tmp/sock", "acme", "erp");
        let text = contents(&k, &Secret::new("password", "pw")).unwrap();
        assert_eq!(text, "/tmp/sock:5432:*:erp:pw\nlocalhost:5432:*:erp:pw\n");
    }

    #[test]
    fn line_break_in_password_is_refused() {
        let k = key("h", "d", "u");
        assert!(matches!(
            contents(&k, &Secret::new("password", "a\nb")),
            Err(WriteError::LineBreak)
        ));
    }
}
