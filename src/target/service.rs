//! Connection services (`PGSERVICE`, or `service=` in `-d`), read from
//! `pg_service.conf` files the way libpq's `parseServiceInfo` reads them:
//! the user's file (`PGSERVICEFILE`, else `~/.pg_service.conf`) first;
//! when it does not define the service, the system's
//! (`PGSYSCONFDIR/pg_service.conf`, else the distribution's default
//! folder). A service's settings become a [`Layer`]; where it sits among
//! the others is `crate::target`'s business. Steps never see the service
//! name: they get the settings it resolved to.

use std::path::{Path, PathBuf};

use miette::Diagnostic;
use thiserror::Error;

use super::params::{Keyword, Layer, Origin, ServiceLine};

/// Where libpq builds look for the system's `pg_service.conf` when
/// `PGSYSCONFDIR` is not set: Debian and Ubuntu (`postgresql-common`),
/// the PGDG RPMs, then an upstream build's `--prefix`. The first folder
/// holding the file is read, as the machine's libpq (one of these) would.
pub const DEFAULT_SYSCONF_DIRS: [&str; 3] = [
    "/etc/postgresql-common",
    "/etc/sysconfig/pgsql",
    "/usr/local/pgsql/etc",
];

/// Why a service cannot be used (exit 2).
#[derive(Debug, Error, Diagnostic)]
pub enum ServiceError {
    #[error("definition of service `{service}` not found")]
    #[diagnostic(code(plan::service_not_found))]
    NotFound {
        service: String,
        #[help]
        help: String,
    },

    #[error("cannot read the service file `{}`", path.display())]
    #[diagnostic(code(plan::service_io))]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("syntax error in service file `{}`, line {line}: {what}", path.display())]
    #[diagnostic(
        code(plan::service_syntax),
        help(
            "each line of a service is `keyword=value`, with no blank before the `=`; the keywords are {}",
            Keyword::names()
        )
    )]
    Syntax {
        path: PathBuf,
        line: usize,
        what: String,
    },
}

/// The files a service is looked up in, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceFiles {
    /// `PGSERVICEFILE`, else `~/.pg_service.conf` (when `HOME` is known).
    pub user: Option<PathBuf>,
    /// `PGSYSCONFDIR/pg_service.conf`, else the first of
    /// [`DEFAULT_SYSCONF_DIRS`] holding one.
    pub system: Option<PathBuf>,
}

/// The settings of service `service`.
pub fn lookup(service: &str, files: &ServiceFiles) -> Result<Layer, ServiceError> {
    for path in [&files.user, &files.system].into_iter().flatten() {
        // As libpq: a file that is not there is skipped.
        if !path.exists() {
            continue;
        }
        let text = std::fs::read(path).map_err(|source| ServiceError::Read {
            path: path.clone(),
            source,
        })?;
        let text = String::from_utf8_lossy(&text);
        if let Some(layer) = read_service(&text, service, path)? {
            return Ok(layer);
        }
    }
    let looked: Vec<String> = [&files.user, &files.system]
        .into_iter()
        .flatten()
        .map(|p| format!("`{}`", p.display()))
        .collect();
    let help = if looked.is_empty() {
        "no service file to look in: set `PGSERVICEFILE`, or `HOME` for `~/.pg_service.conf`"
            .to_string()
    } else {
        format!(
            "looked in {}; define `[{service}]` in one of them, or unset `PGSERVICE`",
            looked.join(" and ")
        )
    };
    Err(ServiceError::NotFound {
        service: service.to_string(),
        help,
    })
}

/// The section `[service]` of one file, if the file has it. As libpq, only
/// the lines of that section are checked, and the first value of a
/// keyword counts.
fn read_service(text: &str, service: &str, path: &Path) -> Result<Option<Layer>, ServiceError> {
    let mut found: Option<Layer> = None;
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(header) = line.strip_prefix('[') {
            if found.is_some() {
                break;
            }
            if header
                .strip_prefix(service)
                .is_some_and(|rest| rest.starts_with(']'))
            {
                found = Some(Layer::default());
            }
            continue;
        }
        let Some(layer) = &mut found else {
            continue;
        };
        let syntax = |what: String| ServiceError::Syntax {
            path: path.to_path_buf(),
            line: index + 1,
            what,
        };
        let Some((key, value)) = line.split_once('=') else {
            return Err(syntax(format!("`{line}` has no `=`")));
        };
        let keyword = Keyword::parse(key).map_err(|e| syntax(e.to_string()))?;
        if keyword == Keyword::Service {
            return Err(syntax(
                "a service cannot name another service (`service=`)".to_string(),
            ));
        }
        if layer.get(keyword).is_none() {
            layer.set(
                keyword,
                value,
                Origin::Service {
                    at: Box::new(ServiceLine {
                        service: service.to_string(),
                        file: path.to_path_buf(),
                        line: index + 1,
                    }),
                    key: keyword.name(),
                },
            );
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    fn value(layer: &Layer, keyword: Keyword) -> Option<&str> {
        layer.get(keyword).map(|g| g.value.as_str())
    }

    #[test]
    fn reads_the_named_section_only() {
        let text = "# services\n[other]\nport=1\nnot a setting\n\n  [erp]  \n  host=db.example\nport=5433\nport=9\n# comment\n[after]\nport=2\n";
        let layer = read_service(text, "erp", Path::new("s.conf"))
            .unwrap()
            .unwrap();
        assert_eq!(value(&layer, Keyword::Host), Some("db.example"));
        // The first value of a keyword counts, as in libpq.
        assert_eq!(value(&layer, Keyword::Port), Some("5433"));
        assert_eq!(
            layer.get(Keyword::Port).unwrap().origin.to_string(),
            "`port` of service `erp` (s.conf, line 8)"
        );
        assert!(
            read_service(text, "er", Path::new("s.conf"))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn syntax_errors_name_the_line() {
        for (text, what) in [
            ("[erp]\nhost db\n", "has no `=`"),
            ("[erp]\nhost =db\n", "`host ` is not a connection setting"),
            ("[erp]\nservice=x\n", "cannot name another service"),
            ("[erp]\noptions=-c x=1\n", "does not support"),
        ] {
            match read_service(text, "erp", Path::new("s.conf")) {
                Err(ServiceError::Syntax { line, what: w, .. }) => {
                    assert_eq!(line, 2);
                    assert!(w.contains(what), "{w}");
                }
                other => panic!("{text:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn user_file_first_then_system_file() {
        let dir = tempfile::tempdir().unwrap();
        let user = dir.path().join("user.conf");
        let system = dir.path().join("system.conf");
        fs::write(&user, "[erp]\nport=1\n").unwrap();
        fs::write(&system, "[erp]\nport=2\n[sys]\nport=3\n").unwrap();
        let files = ServiceFiles {
            user: Some(user),
            system: Some(system),
        };
        assert_eq!(
            value(&lookup("erp", &files).unwrap(), Keyword::Port),
            Some("1")
        );
        assert_eq!(
            value(&lookup("sys", &files).unwrap(), Keyword::Port),
            Some("3")
        );
        match lookup("nope", &files) {
            Err(ServiceError::NotFound { help, .. }) => {
                assert!(help.contains("user.conf") && help.contains("system.conf"));
            }
            other => panic!("{other:?}"),
        }
        // A missing user file is skipped.
        let files = ServiceFiles {
            user: Some(dir.path().join("absent")),
            system: files.system,
        };
        assert_eq!(
            value(&lookup("erp", &files).unwrap(), Keyword::Port),
            Some("2")
        );
    }
}
