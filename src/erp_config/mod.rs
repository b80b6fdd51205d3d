//! The ERP server's configuration file (`erp_config`, the `[options]` file
//! an `odoo-bin -c` or `openerp-server -c` reads): what it says about the
//! database connection, the filestore and the log, compared with the
//! target; and the derived file the steps' server is given instead, which
//! connects to the target and to nothing else. Reads files; never connects
//! to a database and never decides an exit status.

pub mod derive;
pub mod ini;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use miette::{Diagnostic, LabeledSpan, NamedSource};
use thiserror::Error;

use crate::plan::Secret;

pub use derive::{Connection, Mismatch, Setting, derived_text, mismatches};

/// The name of the derived file in the run folder.
pub const DERIVED_FILE: &str = "erp.conf";

/// The connection settings the runner compares with the target.
pub const CONNECTION_KEYS: [&str; 4] = ["db_host", "db_port", "db_user", "db_name"];

#[derive(Debug, Error, Diagnostic)]
pub enum ErpConfigError {
    #[error("cannot read the ERP configuration `{}`", path.display())]
    #[diagnostic(
        code(plan::erp_config::io),
        help(
            "`erp_config` names the server's configuration file (odoo.conf); check the path and that the user running plan can read it"
        )
    )]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("the ERP configuration `{}` is not UTF-8 text", path.display())]
    #[diagnostic(
        code(plan::erp_config::not_utf8),
        help("save the file as UTF-8, as the server itself expects")
    )]
    NotUtf8 { path: PathBuf },

    #[error("{message}")]
    #[diagnostic(code(plan::erp_config::syntax))]
    Syntax {
        message: String,
        #[source_code]
        src: Arc<NamedSource<String>>,
        #[label(collection)]
        labels: Vec<LabeledSpan>,
        #[help]
        help: String,
    },
}

/// A configuration file as read: its sections and the settings the runner
/// uses. Debug shows neither values nor secrets.
pub struct ErpConfig {
    pub path: PathBuf,
    sections: Vec<ini::Section>,
}

impl fmt::Debug for ErpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ErpConfig")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl ErpConfig {
    /// Reads and parses the file at `path`.
    pub fn read(path: &Path) -> Result<ErpConfig, ErpConfigError> {
        let bytes = std::fs::read(path).map_err(|source| ErpConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let text = String::from_utf8(bytes).map_err(|_| ErpConfigError::NotUtf8 {
            path: path.to_path_buf(),
        })?;
        ErpConfig::parse(path, text)
    }

    /// Parses `text`, read from `path`.
    pub fn parse(path: &Path, text: String) -> Result<ErpConfig, ErpConfigError> {
        // A byte order mark is not part of the first section's name.
        let body = text.strip_prefix('\u{feff}').unwrap_or(&text);
        let shift = text.len() - body.len();
        match ini::parse(body) {
            Ok(sections) => Ok(ErpConfig {
                path: path.to_path_buf(),
                sections,
            }),
            Err(e) => {
                let at = |r: std::ops::Range<usize>| (r.start + shift)..(r.end + shift);
                let mut labels = vec![LabeledSpan::new_primary_with_span(
                    Some(e.label),
                    at(e.span),
                )];
                if let Some(first) = e.first {
                    labels.push(LabeledSpan::new_with_span(
                        Some("first here".into()),
                        at(first),
                    ));
                }
                Err(ErpConfigError::Syntax {
                    message: format!("{} in `{}`", e.message, path.display()),
                    // The lines around the error are shown: a password
                    // among them must not be.
                    src: Arc::new(NamedSource::new(path.display().to_string(), masked(&text))),
                    labels,
                    help: e.help,
                })
            }
        }
    }

    /// The value of `key` in `[options]` when it is set (not absent,
    /// empty, `False` or `None`).
    pub fn option(&self, key: &str) -> Option<&str> {
        self.sections
            .iter()
            .find(|s| s.name == "options")?
            .entries
            .iter()
            .find(|e| e.key == key)
            .map(|e| e.value.as_str())
            .filter(|v| !ini::is_unset(v))
    }

    /// `db_password`, held so that it is never shown.
    pub fn password(&self) -> Option<Secret> {
        self.option("db_password")
            .map(|p| Secret::new("db_password", p))
    }

    /// Every value that names a password or a key (`db_password`,
    /// `admin_passwd`, `smtp_password`...): the runner hides them in the
    /// steps' logs, as it hides the plan's secrets.
    pub fn secrets(&self) -> Vec<Secret> {
        self.sections
            .iter()
            .flat_map(|s| s.entries.iter())
            .filter(|e| is_secret_key(&e.key) && !ini::is_unset(&e.value))
            .map(|e| Secret::new(e.key.clone(), e.value.clone()))
            .collect()
    }

    pub(crate) fn sections(&self) -> &[ini::Section] {
        &self.sections
    }
}

/// `text` with the value of every secret setting replaced by as many `*`
/// as it has bytes, so that the spans of an error still point where they
/// did.
fn masked(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let secret_at = line.find(['=', ':']).filter(|&at| {
            let key = line[..at].trim().to_lowercase();
            !key.starts_with(['#', ';', '[']) && is_secret_key(&key)
        });
        match secret_at {
            Some(at) => {
                let rest = &line[at + 1..];
                let value = rest.trim_start().trim_end_matches(['\n', '\r']);
                let start = at + 1 + (rest.len() - rest.trim_start().len());
                out.push_str(&line[..start]);
                out.push_str(&"*".repeat(value.len()));
                out.push_str(&line[start + value.len()..]);
            }
            None => out.push_str(line),
        }
    }
    out
}

/// Keys whose value is a secret.
pub fn is_secret_key(key: &str) -> bool {
    ["passw", "secret", "token"]
        .iter()
        .any(|word| key.contains(word))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_shows_no_password_and_keeps_its_spans() {
        let text = "[options]\ndb_password = h\u{e9}nter2\nadmin_passwd: x\nbroken\n";
        let Err(ErpConfigError::Syntax { src, labels, .. }) =
            ErpConfig::parse(Path::new("odoo.conf"), text.to_string())
        else {
            panic!("an error");
        };
        let shown = src.inner();
        assert_eq!(shown.len(), text.len());
        assert!(!shown.contains("nter2") && shown.contains("db_password = ********\n"));
        assert!(shown.contains("admin_passwd: *\n"), "{shown}");
        let at = labels[0].offset();
        assert_eq!(&shown[at..at + labels[0].len()], "broken");
    }
}
