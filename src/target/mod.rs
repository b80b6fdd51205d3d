//! Which server and database a run is about, resolved once. A run's target
//! (server, port, user, database, password, sslmode) comes, highest first,
//! from: the command line (`--database`), the inventory target
//! ([`inventory`]), then libpq's environment conventions (`PGHOST`,
//! `PGPORT`, `PGUSER`, `PGDATABASE`, `PGPASSWORD`, `PGPASSFILE` or
//! `~/.pgpass`, `PGSSLMODE`, `PGCONNECT_TIMEOUT`) and libpq's defaults. The
//! `postgres` crate reads none of these by itself, so this module is where
//! they are read; the resulting [`Target`] (`crate::db::conninfo`) then
//! feeds the runner's own connections and every child process.
//!
//! It reads the process environment in one place only,
//! [`Env::from_process`]; everything else takes an [`Env`], so tests are
//! hermetic. `lint` and `show` never call it. It sits below the commands
//! and above `db`: `db` never imports it.

pub mod inventory;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use miette::Diagnostic;
use thiserror::Error;

use crate::db::conninfo::{
    APPLICATION_NAME, DEFAULT_CONNECT_TIMEOUT, DEFAULT_PORT, DEFAULT_SOCKET_DIRS, Host, SslMode,
    SslModeError, Target,
};
use crate::db::pgpass::{self, Ignored};
use crate::plan::Secret;
use inventory::{Inventory, InventoryError, InventoryTarget};

/// The database the runner's lock and runs table live in, unless
/// `--maintenance-db` or the inventory says otherwise.
pub const DEFAULT_MAINTENANCE_DB: &str = "postgres";

/// The environment variables the resolver reads.
const READ_VARS: &[&str] = &[
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGUSER",
    "PGDATABASE",
    "PGPASSWORD",
    "PGPASSFILE",
    "PGSSLMODE",
    "PGCONNECT_TIMEOUT",
    "PGSERVICE",
    "HOME",
];

/// What the resolver reads from the process's surroundings. Tests build one
/// by hand; [`Env::from_process`] reads the real one.
#[derive(Clone, Default)]
pub struct Env {
    vars: BTreeMap<String, String>,
    os_user: Option<String>,
    socket_dirs: Vec<PathBuf>,
}

impl Env {
    /// The process's environment: the libpq variables, `HOME`, the name of
    /// the effective user (libpq's default user) and the default socket
    /// folders.
    pub fn from_process() -> Env {
        let vars = READ_VARS
            .iter()
            .filter_map(|name| Some((name.to_string(), std::env::var(name).ok()?)))
            .collect();
        Env {
            vars,
            os_user: whoami::username().ok(),
            socket_dirs: DEFAULT_SOCKET_DIRS.iter().map(PathBuf::from).collect(),
        }
    }

    /// An environment with nothing set and no socket folder to look in.
    pub fn empty() -> Env {
        Env::default()
    }

    pub fn with_var(mut self, name: &str, value: &str) -> Env {
        self.vars.insert(name.to_string(), value.to_string());
        self
    }

    pub fn with_os_user(mut self, name: &str) -> Env {
        self.os_user = Some(name.to_string());
        self
    }

    /// The folders searched for a server socket when no host is given.
    pub fn with_socket_dirs(mut self, dirs: impl IntoIterator<Item = PathBuf>) -> Env {
        self.socket_dirs = dirs.into_iter().collect();
        self
    }

    /// A variable's value; an empty one counts as unset, as libpq mostly
    /// treats it (an empty `PGHOST` means the default).
    fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

impl fmt::Debug for Env {
    /// Names only: the environment may hold `PGPASSWORD`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Env")
            .field("vars", &self.vars.keys().collect::<Vec<_>>())
            .field("os_user", &self.os_user)
            .field("socket_dirs", &self.socket_dirs)
            .finish()
    }
}

/// Which target to resolve: what the command line and inventory say.
#[derive(Clone, Copy, Debug, Default)]
pub struct Selection<'a> {
    /// `--database`.
    pub database: Option<&'a str>,
    /// `--target` in `--inventory`: the target's name and settings.
    pub inventory: Option<(&'a str, &'a InventoryTarget)>,
    /// `--maintenance-db`.
    pub maintenance_db: Option<&'a str>,
}

/// A resolved target with what else the inventory said about it.
#[derive(Clone, Debug)]
pub struct ResolvedTarget {
    /// The inventory target's name, if one was chosen.
    pub name: Option<String>,
    pub production: bool,
    pub target: Target,
    pub maintenance_db: String,
    /// The inventory's default `user` for steps.
    pub step_user: Option<String>,
    /// The inventory's `vars` (below `--var`, above the environment).
    pub vars: BTreeMap<String, String>,
    /// Things the user should hear about (a password file ignored).
    pub warnings: Vec<Ignored>,
}

impl ResolvedTarget {
    /// Settings for a connection to the maintenance database.
    pub fn maintenance_config(&self) -> postgres::Config {
        self.target.config_for(&self.maintenance_db)
    }
}

/// Why no target could be resolved (a usage or configuration error).
#[derive(Debug, Error, Diagnostic)]
pub enum TargetError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Inventory(#[from] InventoryError),

    #[error("{origin} is not a valid port: `{value}`")]
    #[diagnostic(code(plan::bad_port), help("a port is a number from 1 to 65535"))]
    BadPort { origin: Origin, value: String },

    #[error("{origin} is not a valid host: `{value}`")]
    #[diagnostic(code(plan::bad_host))]
    BadHost {
        origin: Origin,
        value: String,
        #[help]
        help: String,
    },

    #[error("{origin}: {source}")]
    #[diagnostic(code(plan::sslmode))]
    SslMode {
        origin: Origin,
        #[source]
        source: SslModeError,
    },

    #[error("{origin} is not a number of seconds: `{value}`")]
    #[diagnostic(code(plan::bad_connect_timeout))]
    BadTimeout { origin: Origin, value: String },

    #[error("`{var}` is set, and plan-runner does not read it")]
    #[diagnostic(code(plan::unsupported_env))]
    UnsupportedEnv {
        var: &'static str,
        #[help]
        help: &'static str,
    },

    #[error("no database user: `PGUSER` is not set and the current system user has no name")]
    #[diagnostic(
        code(plan::no_user),
        help("set `PGUSER`, or `user` in the inventory target")
    )]
    NoUser,

    #[error(transparent)]
    #[diagnostic(transparent)]
    Passfile(#[from] pgpass::WriteError),
}

/// Where a setting came from, for messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    Flag(&'static str),
    Inventory { target: String, field: &'static str },
    Env(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Flag(flag) => write!(f, "`{flag}`"),
            Origin::Inventory { target, field } => {
                write!(f, "`{field}` of the inventory target `{target}`")
            }
            Origin::Env(var) => write!(f, "`{var}`"),
        }
    }
}

/// What the command line asks for: an inventory and one of its targets,
/// `--database`, `--maintenance-db`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Wanted<'a> {
    pub inventory: Option<&'a Path>,
    pub target: Option<&'a str>,
    pub database: Option<&'a str>,
    pub maintenance_db: Option<&'a str>,
}

/// Loads the inventory `wanted` names (if any) and resolves the target.
pub fn resolve_wanted(wanted: &Wanted<'_>, env: &Env) -> Result<ResolvedTarget, TargetError> {
    let inventory = match wanted.inventory {
        Some(path) => Some(Inventory::load(path)?),
        None => None,
    };
    let chosen = match (&inventory, wanted.target) {
        (Some(inventory), Some(name)) => Some((name, inventory.target(name)?)),
        _ => None,
    };
    resolve(
        &Selection {
            database: wanted.database,
            inventory: chosen,
            maintenance_db: wanted.maintenance_db,
        },
        env,
    )
}

/// Resolves the target once, by the precedence in the module's doc.
pub fn resolve(selection: &Selection<'_>, env: &Env) -> Result<ResolvedTarget, TargetError> {
    refuse_unsupported(env)?;
    let inv = selection.inventory.map(|(_, target)| target);
    let from_inventory = |field: &'static str| Origin::Inventory {
        target: selection
            .inventory
            .map(|(name, _)| name.to_string())
            .unwrap_or_default(),
        field,
    };

    let port = match (inv.and_then(|t| t.port), env.get("PGPORT")) {
        (Some(0), _) => {
            return Err(TargetError::BadPort {
                origin: from_inventory("port"),
                value: "0".to_string(),
            });
        }
        (Some(port), _) => port,
        (None, Some(text)) => match text.trim().parse::<u16>() {
            Ok(port) if port > 0 => port,
            _ => {
                return Err(TargetError::BadPort {
                    origin: Origin::Env("PGPORT"),
                    value: text.to_string(),
                });
            }
        },
        (None, None) => DEFAULT_PORT,
    };

    let host = match (inv.and_then(|t| t.host.as_deref()), env.get("PGHOST")) {
        (Some(text), _) => parse_host(text, from_inventory("host"))?,
        (None, Some(text)) => parse_host(text, Origin::Env("PGHOST"))?,
        (None, None) => default_host(&env.socket_dirs, port),
    };

    let user = inv
        .and_then(|t| t.user.clone())
        .or_else(|| env.get("PGUSER").map(str::to_string))
        .or_else(|| env.os_user.clone().filter(|u| !u.is_empty()))
        .ok_or(TargetError::NoUser)?;

    let database = selection
        .database
        .map(str::to_string)
        .or_else(|| inv.map(|t| t.database.clone()))
        .or_else(|| env.get("PGDATABASE").map(str::to_string))
        .unwrap_or_else(|| user.clone());

    let sslmode = match (inv.and_then(|t| t.sslmode), env.get("PGSSLMODE")) {
        (Some(mode), _) => mode,
        (None, Some(text)) => SslMode::parse(text).map_err(|source| TargetError::SslMode {
            origin: Origin::Env("PGSSLMODE"),
            source,
        })?,
        (None, None) => SslMode::Prefer,
    };

    let connect_timeout = match env.get("PGCONNECT_TIMEOUT") {
        None => Some(DEFAULT_CONNECT_TIMEOUT),
        Some(text) => match text.trim().parse::<i64>() {
            // As libpq: zero or less waits forever, and 1 becomes 2
            // (a one-second timeout fails on any hiccup).
            Ok(secs) if secs <= 0 => None,
            Ok(secs) => Some(Duration::from_secs(secs.max(2).unsigned_abs())),
            Err(_) => {
                return Err(TargetError::BadTimeout {
                    origin: Origin::Env("PGCONNECT_TIMEOUT"),
                    value: text.to_string(),
                });
            }
        },
    };

    let mut target = Target {
        host,
        port,
        user,
        database,
        password: None,
        sslmode,
        application_name: APPLICATION_NAME.to_string(),
        connect_timeout,
    };

    let mut warnings = Vec::new();
    target.password = match (inv.and_then(|t| t.password.clone()), env.get("PGPASSWORD")) {
        (Some(password), _) => Some(password),
        (None, Some(text)) => Some(Secret::new("PGPASSWORD", text)),
        (None, None) => match passfile(env) {
            Some(path) => match pgpass::lookup(&path, &target.pgpass_key()) {
                Ok(found) => found,
                Err(ignored) => {
                    warnings.push(ignored);
                    None
                }
            },
            None => None,
        },
    };

    let maintenance_db = selection
        .maintenance_db
        .map(str::to_string)
        .or_else(|| inv.and_then(|t| t.maintenance_db.clone()))
        .unwrap_or_else(|| DEFAULT_MAINTENANCE_DB.to_string());

    Ok(ResolvedTarget {
        name: selection.inventory.map(|(name, _)| name.to_string()),
        production: inv.is_some_and(|t| t.production),
        target,
        maintenance_db,
        step_user: inv.and_then(|t| t.step_user.clone()),
        vars: inv.map(|t| t.vars.clone()).unwrap_or_default(),
        warnings,
    })
}

/// Variables that would make libpq (in a child) and the runner disagree
/// about the server, and that the runner cannot honour.
fn refuse_unsupported(env: &Env) -> Result<(), TargetError> {
    if env.get("PGHOSTADDR").is_some() {
        return Err(TargetError::UnsupportedEnv {
            var: "PGHOSTADDR",
            help: "unset it and give the address in `PGHOST` (or `host` in the inventory)",
        });
    }
    if env.get("PGSERVICE").is_some() {
        return Err(TargetError::UnsupportedEnv {
            var: "PGSERVICE",
            help: "plan-runner does not read pg_service.conf; unset it and use `PGHOST`, `PGPORT`, `PGUSER`, `PGDATABASE` or an inventory",
        });
    }
    Ok(())
}

/// A host as libpq reads it: an absolute path is a socket folder.
fn parse_host(text: &str, origin: Origin) -> Result<Host, TargetError> {
    if text.contains(',') {
        return Err(TargetError::BadHost {
            origin,
            value: text.to_string(),
            help: "plan-runner connects to one server; give a single host".to_string(),
        });
    }
    if text.starts_with('@') {
        return Err(TargetError::BadHost {
            origin,
            value: text.to_string(),
            help: "abstract Unix sockets are not supported; give the socket's folder".to_string(),
        });
    }
    if text.starts_with('/') {
        return Ok(Host::Socket(PathBuf::from(text)));
    }
    Ok(Host::Tcp(text.to_string()))
}

/// No host given: the first default folder holding this port's socket
/// (`.s.PGSQL.<port>`), as a local server would have it, else `localhost`
/// over TCP.
fn default_host(socket_dirs: &[PathBuf], port: u16) -> Host {
    let socket = format!(".s.PGSQL.{port}");
    socket_dirs
        .iter()
        .find(|dir| dir.join(&socket).exists())
        .map(|dir| Host::Socket(dir.clone()))
        .unwrap_or_else(|| Host::Tcp("localhost".to_string()))
}

/// The password file libpq would read: `PGPASSFILE`, else `~/.pgpass`.
fn passfile(env: &Env) -> Option<PathBuf> {
    if let Some(path) = env.get("PGPASSFILE") {
        return Some(PathBuf::from(path));
    }
    env.get("HOME").map(|home| Path::new(home).join(".pgpass"))
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::db::conninfo::{CHILD_ENV_REMOVE, KEEPALIVES_IDLE, env_for_child};

    fn env() -> Env {
        Env::empty().with_os_user("alice")
    }

    fn resolved(env: &Env) -> ResolvedTarget {
        resolve(&Selection::default(), env).unwrap()
    }

    fn inventory(text: &str) -> Inventory {
        Inventory::parse("inv.yaml", text).unwrap()
    }

    #[test]
    fn defaults_follow_libpq() {
        let r = resolved(&env());
        let t = &r.target;
        assert_eq!(t.host, Host::Tcp("localhost".to_string()));
        assert_eq!(t.port, 5432);
        assert_eq!(t.user, "alice");
        assert_eq!(t.database, "alice");
        assert_eq!(t.password, None);
        assert_eq!(t.sslmode, SslMode::Prefer);
        assert_eq!(t.connect_timeout, Some(DEFAULT_CONNECT_TIMEOUT));
        assert_eq!(r.maintenance_db, "postgres");
        assert!(!r.production);
    }

    #[test]
    fn environment_fills_what_is_not_given() {
        let env = env()
            .with_var("PGHOST", "db.example")
            .with_var("PGPORT", "5433")
            .with_var("PGUSER", "erp")
            .with_var("PGDATABASE", "acme")
            .with_var("PGPASSWORD", "pw")
            .with_var("PGSSLMODE", "disable")
            .with_var("PGCONNECT_TIMEOUT", "1");
        let t = resolved(&env).target;
        assert_eq!(t.host, Host::Tcp("db.example".to_string()));
        assert_eq!(t.port, 5433);
        assert_eq!(t.user, "erp");
        assert_eq!(t.database, "acme");
        assert_eq!(t.password.as_ref().map(Secret::expose), Some("pw"));
        assert_eq!(t.sslmode, SslMode::Disable);
        assert_eq!(t.connect_timeout, Some(Duration::from_secs(2)));
    }

    #[test]
    fn database_defaults_to_the_user_from_pguser() {
        let t = resolved(&env().with_var("PGUSER", "erp")).target;
        assert_eq!(t.database, "erp");
    }

    #[test]
    fn flag_beats_inventory_beats_environment() {
        let inv = inventory(
            "targets:\n  acme:\n    host: inv-host\n    user: inv-user\n    database: inv-db\n    password: inv-pw\n    maintenance_db: inv-maint\n    vars: {a: '1'}\n",
        );
        let env = env()
            .with_var("PGHOST", "env-host")
            .with_var("PGPORT", "6000")
            .with_var("PGUSER", "env-user")
            .with_var("PGDATABASE", "env-db")
            .with_var("PGPASSWORD", "env-pw");
        let acme = inv.target("acme").unwrap();
        let with_inventory = Selection {
            inventory: Some(("acme", acme)),
            ..Selection::default()
        };
        let r = resolve(&with_inventory, &env).unwrap();
        assert_eq!(r.name.as_deref(), Some("acme"));
        assert_eq!(r.target.host, Host::Tcp("inv-host".to_string()));
        // The inventory gives no port: the environment's is used.
        assert_eq!(r.target.port, 6000);
        assert_eq!(r.target.user, "inv-user");
        assert_eq!(r.target.database, "inv-db");
        assert_eq!(
            r.target.password.as_ref().map(Secret::expose),
            Some("inv-pw")
        );
        assert_eq!(r.maintenance_db, "inv-maint");
        assert_eq!(r.vars.get("a").map(String::as_str), Some("1"));

        let r = resolve(
            &Selection {
                database: Some("flag-db"),
                maintenance_db: Some("flag-maint"),
                ..with_inventory
            },
            &env,
        )
        .unwrap();
        assert_eq!(r.target.database, "flag-db");
        assert_eq!(r.maintenance_db, "flag-maint");

        let r = resolve(
            &Selection {
                database: Some("flag-db"),
                ..Selection::default()
            },
            &env,
        )
        .unwrap();
        assert_eq!(r.target.database, "flag-db");
        assert_eq!(r.target.host, Host::Tcp("env-host".to_string()));
    }

    #[test]
    fn pghost_path_is_a_socket_folder() {
        let t = resolved(&env().with_var("PGHOST", "/run/pg")).target;
        assert_eq!(t.host, Host::Socket(PathBuf::from("/run/pg")));
        let config = t.config();
        assert!(matches!(
            config.get_hosts(),
            [postgres::config::Host::Unix(dir)] if dir == Path::new("/run/pg")
        ));
    }

    #[test]
    fn default_host_is_the_folder_holding_the_socket() {
        let empty = tempfile::tempdir().unwrap();
        let live = tempfile::tempdir().unwrap();
        fs::write(live.path().join(".s.PGSQL.5432"), "").unwrap();
        let dirs = vec![empty.path().to_path_buf(), live.path().to_path_buf()];
        let t = resolved(&env().with_socket_dirs(dirs.clone())).target;
        assert_eq!(t.host, Host::Socket(live.path().to_path_buf()));
        // Another port has no socket there: TCP to localhost.
        let t = resolved(&env().with_socket_dirs(dirs).with_var("PGPORT", "5499")).target;
        assert_eq!(t.host, Host::Tcp("localhost".to_string()));
    }

    #[test]
    fn bad_values_name_their_origin() {
        let error = resolve(&Selection::default(), &env().with_var("PGPORT", "54x")).unwrap_err();
        assert_eq!(error.to_string(), "`PGPORT` is not a valid port: `54x`");
        let error = resolve(&Selection::default(), &env().with_var("PGPORT", "0")).unwrap_err();
        assert!(matches!(error, TargetError::BadPort { .. }));
        let error = resolve(&Selection::default(), &env().with_var("PGHOST", "a,b")).unwrap_err();
        assert!(matches!(error, TargetError::BadHost { .. }));
        let error = resolve(
            &Selection::default(),
            &env().with_var("PGCONNECT_TIMEOUT", "soon"),
        )
        .unwrap_err();
        assert!(matches!(error, TargetError::BadTimeout { .. }));
        let error = resolve(&Selection::default(), &Env::empty()).unwrap_err();
        assert!(matches!(error, TargetError::NoUser));
    }

    #[test]
    fn sslmode_needing_tls_is_refused_not_downgraded() {
        for mode in ["require", "verify-ca", "verify-full"] {
            let error =
                resolve(&Selection::default(), &env().with_var("PGSSLMODE", mode)).unwrap_err();
            let text = error.to_string();
            assert!(text.starts_with("`PGSSLMODE`: "), "{text}");
            assert!(text.contains("not supported"), "{text}");
        }
        let error = resolve(
            &Selection::default(),
            &env().with_var("PGSSLMODE", "sometimes"),
        )
        .unwrap_err();
        assert!(error.to_string().contains("unknown sslmode `sometimes`"));
        let t = resolved(&env().with_var("PGSSLMODE", "allow")).target;
        assert_eq!(
            t.config().get_ssl_mode(),
            postgres::config::SslMode::Disable
        );
    }

    #[test]
    fn hostaddr_and_service_are_refused() {
        let error = resolve(
            &Selection::default(),
            &env().with_var("PGHOSTADDR", "10.0.0.1"),
        )
        .unwrap_err();
        assert!(matches!(
            error,
            TargetError::UnsupportedEnv {
                var: "PGHOSTADDR",
                ..
            }
        ));
        let error =
            resolve(&Selection::default(), &env().with_var("PGSERVICE", "erp")).unwrap_err();
        assert!(matches!(
            error,
            TargetError::UnsupportedEnv {
                var: "PGSERVICE",
                ..
            }
        ));
    }

    #[test]
    fn password_comes_from_pgpassfile_then_home_pgpass() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pass");
        fs::write(&file, "localhost:5432:alice:alice:from-file\n").unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
        let r = resolved(&env().with_var("PGPASSFILE", file.to_str().unwrap()));
        assert_eq!(
            r.target.password.as_ref().map(Secret::expose),
            Some("from-file")
        );
        assert!(r.warnings.is_empty());

        let home = dir.path().join("home");
        fs::create_dir(&home).unwrap();
        fs::write(home.join(".pgpass"), "*:*:*:alice:from-home\n").unwrap();
        fs::set_permissions(home.join(".pgpass"), fs::Permissions::from_mode(0o600)).unwrap();
        let r = resolved(&env().with_var("HOME", home.to_str().unwrap()));
        assert_eq!(
            r.target.password.as_ref().map(Secret::expose),
            Some("from-home")
        );

        // PGPASSWORD is above the file.
        let r = resolved(
            &env()
                .with_var("HOME", home.to_str().unwrap())
                .with_var("PGPASSWORD", "from-env"),
        );
        assert_eq!(
            r.target.password.as_ref().map(Secret::expose),
            Some("from-env")
        );
    }

    #[test]
    fn open_password_file_is_ignored_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pass");
        fs::write(&file, "*:*:*:*:leaked\n").unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o640)).unwrap();
        let r = resolved(&env().with_var("PGPASSFILE", file.to_str().unwrap()));
        assert_eq!(r.target.password, None);
        assert_eq!(r.warnings.len(), 1);
        let warning = r.warnings[0].to_string();
        assert!(warning.contains("group or world access"), "{warning}");
        assert!(!warning.contains("leaked"));
    }

    #[test]
    fn socket_in_default_folder_matches_localhost_in_pgpass() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pass");
        fs::write(&file, "localhost:5432:*:alice:local\n").unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
        let r = resolved(
            &env()
                .with_var("PGHOST", "/var/run/postgresql/")
                .with_var("PGPASSFILE", file.to_str().unwrap()),
        );
        assert_eq!(
            r.target.password.as_ref().map(Secret::expose),
            Some("local")
        );
        let r = resolved(
            &env()
                .with_var("PGHOST", "/srv/sock")
                .with_var("PGPASSFILE", file.to_str().unwrap()),
        );
        assert_eq!(r.target.password, None);
    }

    #[test]
    fn child_env_never_holds_the_password() {
        let run = tempfile::tempdir().unwrap();
        let mut target = resolved(
            &env()
                .with_var("PGHOST", "/tmp/sock")
                .with_var("PGDATABASE", "acme")
                .with_var("PGPASSWORD", "hunter2"),
        )
        .target;
        let vars = env_for_child(&target, run.path()).unwrap();
        for (name, value) in &vars {
            assert!(!value.contains("hunter2"), "{name} holds the password");
            assert_ne!(name, "PGPASSWORD");
        }
        let get = |name: &str| {
            vars.iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("PGHOST"), Some("/tmp/sock"));
        assert_eq!(get("PGPORT"), Some("5432"));
        assert_eq!(get("PGUSER"), Some("alice"));
        assert_eq!(get("PGDATABASE"), Some("acme"));
        let passfile = PathBuf::from(get("PGPASSFILE").unwrap());
        assert!(passfile.starts_with(run.path()));
        let mode = fs::metadata(&passfile).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let found = pgpass::lookup(&passfile, &target.pgpass_key()).unwrap();
        assert_eq!(found.as_ref().map(Secret::expose), Some("hunter2"));
        assert!(CHILD_ENV_REMOVE.contains(&"PGPASSWORD"));

        target.password = None;
        let vars = env_for_child(&target, run.path()).unwrap();
        assert!(vars.iter().all(|(n, _)| n != "PGPASSFILE"));
    }

    #[test]
    fn config_carries_application_name_timeout_and_keepalives() {
        let t = resolved(&env().with_var("PGPASSWORD", "pw"))
            .target
            .for_run("20260101-abc");
        let config = t.config();
        assert_eq!(
            config.get_application_name(),
            Some("plan-runner/20260101-abc")
        );
        assert_eq!(config.get_dbname(), Some("alice"));
        assert_eq!(config.get_connect_timeout(), Some(&DEFAULT_CONNECT_TIMEOUT));
        assert!(config.get_keepalives());
        assert_eq!(config.get_keepalives_idle(), KEEPALIVES_IDLE);
        assert_eq!(config.get_password(), Some(&b"pw"[..]));
        assert!(!format!("{t:?}").contains("pw\""));
        assert_eq!(t.config_for("postgres").get_dbname(), Some("postgres"));
    }

    #[test]
    fn env_debug_hides_values() {
        let env = env().with_var("PGPASSWORD", "hunter2");
        assert!(!format!("{env:?}").contains("hunter2"));
    }

    #[test]
    fn plan_fields_are_the_four_target_fields() {
        let fields = resolved(&env()).target.plan_fields();
        let names: Vec<&str> = fields.keys().map(String::as_str).collect();
        assert_eq!(names, crate::resolve::TARGET_FIELDS);
    }
}
