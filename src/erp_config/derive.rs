//! The configuration file against the target: the connection settings
//! that differ, and the derived file that the steps' server reads instead
//! (`${erp_config}`): the original's settings, with the target's
//! connection, the filestore's `data_dir` and the log sent to the step's
//! output. Holds no password of the target: the server reaches it through
//! the `PGPASSFILE` every step is given.

use std::fmt;
use std::path::{Path, PathBuf};

use super::{DERIVED_FILE, ErpConfig};
use crate::plan::Secret;

/// The target's side of the comparison.
#[derive(Clone, Debug)]
pub struct Connection {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub database: String,
}

/// One connection setting of the file that is not the target's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    pub key: &'static str,
    pub file: String,
    pub target: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: `{}` in the file, `{}` for the target",
            self.key, self.file, self.target
        )
    }
}

/// The settings of `config` that would send the server elsewhere than
/// `target`. A setting the file leaves unset is no mismatch: the server
/// then takes libpq's, which the step's `PG*` variables set to the target.
pub fn mismatches(config: &ErpConfig, target: &Connection) -> Vec<Mismatch> {
    let mut found = Vec::new();
    let mut compare = |key: &'static str, wanted: String, same: &dyn Fn(&str) -> bool| {
        if let Some(value) = config.option(key)
            && !same(value)
        {
            found.push(Mismatch {
                key,
                file: value.to_string(),
                target: wanted,
            });
        }
    };
    compare("db_host", target.host.clone(), &|v| v == target.host);
    compare("db_port", target.port.to_string(), &|v| {
        v.parse::<u16>().ok() == Some(target.port)
    });
    compare("db_user", target.user.clone(), &|v| v == target.user);
    // Odoo 17 accepts several names, comma-separated.
    compare("db_name", target.database.clone(), &|v| {
        v.split(',').any(|name| name.trim() == target.database)
    });
    found
}

/// What a run knows of the ERP configuration: built by `apply` before
/// anything runs, used by the run for the derived file, the filestore and
/// the refusal. Debug shows no value of the file.
#[derive(Clone)]
pub struct Setting {
    /// The file the plan (or inventory) names.
    pub source: PathBuf,
    /// The file the steps' server reads: `<run folder>/erp.conf`.
    pub derived: PathBuf,
    pub data_dir: PathBuf,
    /// `<data_dir>/filestore/<database>`, part of every backup of the target.
    pub filestore: PathBuf,
    /// What the file says that is not the target's.
    pub mismatches: Vec<Mismatch>,
    /// `--erp-config-override`: go on with the target's connection anyway.
    pub overridden: bool,
    /// The file's `logfile`, which the derived file replaces.
    pub logfile: Option<String>,
    secrets: Vec<Secret>,
    text: String,
}

impl fmt::Debug for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Setting")
            .field("source", &self.source)
            .field("derived", &self.derived)
            .field("filestore", &self.filestore)
            .field("mismatches", &self.mismatches)
            .finish_non_exhaustive()
    }
}

/// Where the server keeps its data when the file does not say: Odoo's
/// default, `~/.local/share/Odoo` of the user running the server.
pub fn default_data_dir(home: &Path) -> PathBuf {
    home.join(".local/share/Odoo")
}

impl Setting {
    /// `home` is the home of the user the server runs as; `folder` the
    /// plan's folder, which a relative `data_dir` is taken from (the
    /// steps run there).
    pub fn new(
        config: &ErpConfig,
        target: &Connection,
        run_folder: &Path,
        home: &Path,
        folder: &Path,
        overridden: bool,
    ) -> Setting {
        let data_dir = match config.option("data_dir") {
            Some(dir) => {
                let dir = match dir.strip_prefix('~') {
                    Some(rest) if rest.is_empty() || rest.starts_with('/') => {
                        home.join(rest.trim_start_matches('/'))
                    }
                    _ => PathBuf::from(dir),
                };
                folder.join(dir)
            }
            None => default_data_dir(home),
        };
        let data_dir = std::path::absolute(&data_dir).unwrap_or(data_dir);
        let filestore = data_dir.join("filestore").join(&target.database);
        let text = derived_text(config, target, &data_dir);
        Setting {
            source: config.path.clone(),
            derived: run_folder.join(DERIVED_FILE),
            data_dir,
            filestore,
            mismatches: mismatches(config, target),
            overridden,
            logfile: config.option("logfile").map(str::to_string),
            secrets: config.secrets(),
            text,
        }
    }

    /// Compares the file with `original` instead of the connection the
    /// server is given (a rehearsal gives it a copy of `original`).
    pub fn compare_with(&mut self, config: &ErpConfig, original: &Connection) {
        self.mismatches = mismatches(config, original);
    }

    /// Why the run must not start: the file names another server or
    /// database, and `--erp-config-override` was not given.
    pub fn refusal(&self) -> Option<String> {
        if self.mismatches.is_empty() || self.overridden {
            return None;
        }
        let lines: Vec<String> = self.mismatches.iter().map(|m| format!("  {m}")).collect();
        Some(format!(
            "the ERP configuration `{}` names another server or database than the target:\n{}\nnothing was changed: correct the file or the target, or run again with --erp-config-override to give the server the target's connection",
            self.source.display(),
            lines.join("\n")
        ))
    }

    /// What `apply` and `--dry-run` show of it, one line each.
    pub fn describe(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "ERP configuration {}: the steps' server reads {} (`${{erp_config}}`), which connects to the target",
            self.source.display(),
            self.derived.display()
        )];
        for m in &self.mismatches {
            let verdict = if self.overridden {
                "overridden by --erp-config-override"
            } else {
                "refused"
            };
            lines.push(format!("  {m} ({verdict})"));
        }
        if let Some(logfile) = &self.logfile {
            lines.push(format!(
                "  logfile `{logfile}` is replaced: the server logs to its step's log"
            ));
        }
        lines.push(format!(
            "  filestore {} is backed up with the database",
            self.filestore.display()
        ));
        lines
    }

    /// Writes the derived file, private (0600 in the 0700 run folder):
    /// it keeps the original's other secrets (`admin_passwd`...).
    pub fn write(&self) -> std::io::Result<()> {
        crate::private::write(&self.derived, self.text.as_bytes())
    }

    /// The values of the file to hide in the steps' logs.
    pub fn secrets(&self) -> impl Iterator<Item = &str> {
        self.secrets.iter().map(Secret::expose)
    }
}

/// Removes the derived file of a run: it lives as long as the run.
pub fn remove(run_folder: &Path) {
    let _ = std::fs::remove_file(run_folder.join(DERIVED_FILE));
}

/// The settings the derived file sets whatever the original says.
fn forced(target: &Connection, data_dir: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("db_host", target.host.clone()),
        ("db_port", target.port.to_string()),
        ("db_user", target.user.clone()),
        // The password comes from the step's PGPASSFILE: libpq reads it
        // when the server passes none.
        ("db_password", "False".into()),
        ("db_name", target.database.clone()),
        ("data_dir", data_dir.display().to_string()),
        // Output to stdout, which is the step's log: `fail_on_output`,
        // the progress line and the failure summary read it there.
        ("logfile", "False".into()),
        ("syslog", "False".into()),
    ]
}

/// The text of the derived file: always a file the server (and
/// [`ErpConfig::parse`]) reads, whatever the original held.
pub fn derived_text(config: &ErpConfig, target: &Connection, data_dir: &Path) -> String {
    let forced = forced(target, data_dir);
    let mut out = format!(
        "; written by plan-runner from {}: the target's connection, the log to stdout\n",
        config.path.display()
    );
    let entry = |out: &mut String, key: &str, value: &str| {
        out.push_str(key);
        out.push_str(" = ");
        // A continued value keeps its lines, indented.
        out.push_str(&value.replace('\n', "\n    "));
        out.push('\n');
    };
    let mut wrote_options = false;
    for section in config.sections() {
        out.push_str(&format!("[{}]\n", section.name));
        let options = section.name == "options";
        for e in &section.entries {
            if options && forced.iter().any(|(k, _)| *k == e.key) {
                continue;
            }
            entry(&mut out, &e.key, &e.value);
        }
        if options {
            for (k, v) in &forced {
                entry(&mut out, k, v);
            }
            wrote_options = true;
        }
    }
    if !wrote_options {
        out.push_str("[options]\n");
        for (k, v) in &forced {
            entry(&mut out, k, v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> ErpConfig {
        ErpConfig::parse(Path::new("/etc/odoo/odoo.conf"), text.to_string()).expect("valid")
    }

    fn target() -> Connection {
        Connection {
            host: "/run/postgresql".into(),
            port: 5432,
            user: "odoo".into(),
            database: "acme".into(),
        }
    }

    #[test]
    fn another_port_is_a_mismatch_and_unset_values_are_not() {
        let c = config(
            "[options]\ndb_host = False\ndb_port = 5433\ndb_user = odoo\ndb_name = acme,other\n",
        );
        assert_eq!(
            mismatches(&c, &target()),
            [Mismatch {
                key: "db_port",
                file: "5433".into(),
                target: "5432".into()
            }]
        );
    }

    #[test]
    fn the_derived_file_connects_to_the_target_and_logs_to_stdout() {
        let c = config(
            "[options]\ndb_host = 10.0.0.9\ndb_password = hunter2\nadmin_passwd = x\nlogfile = /var/log/odoo.log\naddons_path = /a,\n  /b\n",
        );
        let home = Path::new("/home/odoo");
        let s = Setting::new(
            &c,
            &target(),
            Path::new("/state/run"),
            home,
            Path::new("/p"),
            true,
        );
        let derived = config(&s.text);
        assert_eq!(derived.option("db_host"), Some("/run/postgresql"));
        assert_eq!(derived.option("db_port"), Some("5432"));
        assert_eq!(derived.option("db_name"), Some("acme"));
        assert_eq!(
            derived.option("db_password"),
            None,
            "no password in the file"
        );
        assert_eq!(derived.option("logfile"), None);
        assert_eq!(derived.option("admin_passwd"), Some("x"));
        assert_eq!(derived.option("addons_path"), Some("/a,\n/b"));
        assert_eq!(
            s.filestore,
            Path::new("/home/odoo/.local/share/Odoo/filestore/acme")
        );
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(s.refusal().is_none(), "overridden");
    }

    #[test]
    fn the_derived_file_always_reads_back() {
        for text in [
            "",
            "[misc]\nx = 1\n",
            "[options]\na = first\n  # continued, not a comment\n\n[a]b]\nk: v = w\n",
            "\u{feff}[options]\ndb_host = h\nDB_HOST2 = x\n",
        ] {
            let c = config(text);
            let derived = derived_text(&c, &target(), Path::new("/d"));
            let back = ErpConfig::parse(Path::new("erp.conf"), derived.clone())
                .unwrap_or_else(|e| panic!("{text:?} -> {derived:?}: {e}"));
            assert_eq!(back.option("db_name"), Some("acme"), "{derived}");
            assert_eq!(back.option("data_dir"), Some("/d"), "{derived}");
        }
    }

    #[test]
    fn the_refusal_shows_both_sides() {
        let c = config("[options]\ndb_port = 5433\ndata_dir = ~/data\n");
        let s = Setting::new(
            &c,
            &target(),
            Path::new("/r"),
            Path::new("/home/o"),
            Path::new("/p"),
            false,
        );
        let refusal = s.refusal().expect("refused");
        assert!(refusal.contains("db_port: `5433` in the file, `5432` for the target"));
        assert_eq!(s.filestore, Path::new("/home/o/data/filestore/acme"));
    }
}
