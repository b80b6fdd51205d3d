//! Which server and database a run is about, resolved once. Each
//! connection setting (server, port, user, database, password, sslmode and
//! certificate files, connect timeout) comes from the first of these that
//! gives it, as psql would take it:
//!
//! 1. the command line: `-h`, `-p`, `-U`, `-d` (a database name, or a
//!    connection string: [`connstr`]); a flag and the connection string
//!    must agree;
//! 2. the inventory target ([`inventory`]);
//! 3. the service named by `service=` in `-d`, else `PGSERVICE`, read from
//!    `pg_service.conf` ([`service`]); libpq puts a service's settings
//!    above the environment's, and so does the runner;
//! 4. libpq's environment (`PGHOST`, `PGPORT`, `PGUSER`, `PGDATABASE`,
//!    `PGPASSWORD`, `PGPASSFILE`, `PGSSLMODE`, `PGSSLROOTCERT`,
//!    `PGSSLCERT`, `PGSSLKEY`, `PGCONNECT_TIMEOUT`);
//! 5. libpq's defaults (the password file, `~/.postgresql/root.crt`...).
//!
//! The `postgres` crate reads none of these by itself, so this module is
//! where they are read; the resulting [`Target`] (`crate::db::conninfo`)
//! then feeds the runner's own connections and every child process, which
//! get the resolved values, never the service's name.
//!
//! It reads the process environment in one place only,
//! [`Env::from_process`]; everything else takes an [`Env`], so tests are
//! hermetic. `lint` and `show` never call it. It sits below the commands
//! and above `db`: `db` never imports it.

pub mod connstr;
pub mod inventory;
pub mod params;
pub mod service;

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
use crate::db::tls::{self, Check, TlsError, TlsFiles};
use crate::plan::Secret;
use connstr::ConnStringError;
use inventory::{Inventory, InventoryError, InventoryTarget};
pub use params::{Keyword, Layer, Origin};
use service::{ServiceError, ServiceFiles};

/// The database the runner's lock and runs table live in, unless
/// `--maintenance-db` or the inventory says otherwise.
pub const DEFAULT_MAINTENANCE_DB: &str = "postgres";

/// The environment variables the resolver reads besides those of
/// [`Keyword::env_var`].
const OTHER_VARS: &[&str] = &["PGHOSTADDR", "PGSERVICEFILE", "PGSYSCONFDIR", "HOME"];

/// What the resolver reads from the process's surroundings. Tests build one
/// by hand; [`Env::from_process`] reads the real one.
#[derive(Clone, Default)]
pub struct Env {
    vars: BTreeMap<String, String>,
    os_user: Option<String>,
    socket_dirs: Vec<PathBuf>,
    sysconf_dirs: Vec<PathBuf>,
}

impl Env {
    /// The process's environment: the libpq variables, `HOME`, the name of
    /// the effective user (libpq's default user), the default socket
    /// folders and the folders a system `pg_service.conf` may be in.
    pub fn from_process() -> Env {
        let names = Keyword::ALL
            .iter()
            .map(|k| k.env_var())
            .chain(OTHER_VARS.iter().copied());
        let vars = names
            .filter_map(|name| Some((name.to_string(), std::env::var(name).ok()?)))
            .collect();
        Env {
            vars,
            os_user: whoami::username().ok(),
            socket_dirs: DEFAULT_SOCKET_DIRS.iter().map(PathBuf::from).collect(),
            sysconf_dirs: service::DEFAULT_SYSCONF_DIRS
                .iter()
                .map(PathBuf::from)
                .collect(),
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

    /// The folders searched for a system `pg_service.conf` when
    /// `PGSYSCONFDIR` is not set.
    pub fn with_sysconf_dirs(mut self, dirs: impl IntoIterator<Item = PathBuf>) -> Env {
        self.sysconf_dirs = dirs.into_iter().collect();
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

    fn home(&self) -> Option<&Path> {
        self.get("HOME").map(Path::new)
    }

    /// libpq's environment as a layer.
    fn layer(&self) -> Layer {
        let mut layer = Layer::default();
        for keyword in Keyword::ALL {
            if let Some(value) = self.get(keyword.env_var()) {
                layer.set(keyword, value, Origin::Env(keyword.env_var()));
            }
        }
        layer
    }

    /// Where a service is looked up, as libpq looks.
    fn service_files(&self) -> ServiceFiles {
        let user = match self.get("PGSERVICEFILE") {
            Some(path) => Some(PathBuf::from(path)),
            None => self.home().map(|home| home.join(".pg_service.conf")),
        };
        let system = match self.get("PGSYSCONFDIR") {
            Some(dir) => Some(Path::new(dir).join("pg_service.conf")),
            None => self
                .sysconf_dirs
                .iter()
                .map(|dir| dir.join("pg_service.conf"))
                .find(|file| file.exists()),
        };
        ServiceFiles { user, system }
    }
}

impl fmt::Debug for Env {
    /// Names only: the environment may hold `PGPASSWORD`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Env")
            .field("vars", &self.vars.keys().collect::<Vec<_>>())
            .field("os_user", &self.os_user)
            .field("socket_dirs", &self.socket_dirs)
            .field("sysconf_dirs", &self.sysconf_dirs)
            .finish()
    }
}

/// Which target to resolve: what the command line and inventory say.
#[derive(Clone, Copy, Debug, Default)]
pub struct Selection<'a> {
    /// `-d`: a database name or a connection string.
    pub database: Option<&'a str>,
    /// `-h`.
    pub host: Option<&'a str>,
    /// `-p`.
    pub port: Option<&'a str>,
    /// `-U`.
    pub user: Option<&'a str>,
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
    /// The inventory's `erp_config`: the ERP configuration on the
    /// target's machine.
    pub erp_config: Option<std::path::PathBuf>,
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

    #[error("the connection string of `-d` cannot be read: {error}")]
    #[diagnostic(code(plan::conninfo))]
    ConnString {
        error: ConnStringError,
        #[help]
        help: String,
    },

    #[error("`{flag} {flag_value}` and {conn} (`{conn_value}`) disagree")]
    #[diagnostic(
        code(plan::conninfo_conflict),
        help("give the setting once: either the flag or the connection string")
    )]
    FlagConflict {
        flag: &'static str,
        flag_value: String,
        conn: Origin,
        conn_value: String,
    },

    #[error(transparent)]
    #[diagnostic(transparent)]
    Service(#[from] ServiceError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Tls(#[from] TlsError),

    #[error("no database user: `PGUSER` is not set and the current system user has no name")]
    #[diagnostic(
        code(plan::no_user),
        help("give `-U USER`, set `PGUSER`, or `user` in the inventory target")
    )]
    NoUser,

    #[error(transparent)]
    #[diagnostic(transparent)]
    Passfile(#[from] pgpass::WriteError),

    #[error("this command works on one target, and several are selected")]
    #[diagnostic(
        code(plan::one_target),
        help(
            "name one with `--target NAME`; `plan apply` and `plan status` take --all, --select and `--target a,b` (docs/fleet.md)"
        )
    )]
    OneTarget,
}

/// What the command line asks for: an inventory and one of its targets,
/// `-h`, `-p`, `-U`, `-d`, `--maintenance-db`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Wanted<'a> {
    /// Several targets were selected (`--all`, `--select`, `--target
    /// a,b`): a command that works on one refuses.
    pub fleet: bool,
    pub inventory: Option<&'a Path>,
    pub target: Option<&'a str>,
    pub database: Option<&'a str>,
    pub host: Option<&'a str>,
    pub port: Option<&'a str>,
    pub user: Option<&'a str>,
    pub maintenance_db: Option<&'a str>,
}

/// Loads the inventory `wanted` names (if any) and resolves the target.
pub fn resolve_wanted(wanted: &Wanted<'_>, env: &Env) -> Result<ResolvedTarget, TargetError> {
    if wanted.fleet {
        return Err(TargetError::OneTarget);
    }
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
            host: wanted.host,
            port: wanted.port,
            user: wanted.user,
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
    let explicit = command_line(selection)?.over(&inventory_layer(selection.inventory));
    let environment = env.layer();
    let service_name = explicit
        .get(Keyword::Service)
        .or_else(|| environment.get(Keyword::Service))
        .filter(|given| !given.value.is_empty());
    let service = match service_name {
        Some(given) => service::lookup(&given.value, &env.service_files())?,
        None => Layer::default(),
    };
    let settings = explicit.over(&service).over(&environment);
    // An empty value means the default, as libpq reads `host=''`.
    let get = |keyword| settings.get(keyword).filter(|g| !g.value.is_empty());

    let port = match get(Keyword::Port) {
        None => DEFAULT_PORT,
        Some(given) => match given.value.trim().parse::<u16>() {
            Ok(port) if port > 0 => port,
            _ => {
                return Err(TargetError::BadPort {
                    origin: given.origin.clone(),
                    value: given.value.clone(),
                });
            }
        },
    };

    let host = match get(Keyword::Host) {
        Some(given) => parse_host(&given.value, given.origin.clone())?,
        None => default_host(&env.socket_dirs, port),
    };

    let user = get(Keyword::User)
        .map(|g| g.value.clone())
        .or_else(|| env.os_user.clone().filter(|u| !u.is_empty()))
        .ok_or(TargetError::NoUser)?;

    let database = get(Keyword::Dbname)
        .map(|g| g.value.clone())
        .unwrap_or_else(|| user.clone());

    let sslmode = match get(Keyword::Sslmode) {
        None => SslMode::Prefer,
        Some(given) => SslMode::parse(&given.value).map_err(|source| TargetError::SslMode {
            origin: given.origin.clone(),
            source,
        })?,
    };

    let connect_timeout = match get(Keyword::ConnectTimeout) {
        None => Some(DEFAULT_CONNECT_TIMEOUT),
        Some(given) => match given.value.trim().parse::<i64>() {
            // As libpq: zero or less waits forever, and 1 becomes 2
            // (a one-second timeout fails on any hiccup).
            Ok(secs) if secs <= 0 => None,
            Ok(secs) => Some(Duration::from_secs(secs.max(2).unsigned_abs())),
            Err(_) => {
                return Err(TargetError::BadTimeout {
                    origin: given.origin.clone(),
                    value: given.value.clone(),
                });
            }
        },
    };

    let tls_files = tls_files(&settings, sslmode, env)?;
    // libpq never uses TLS over a Unix socket, whatever sslmode says.
    let tls = match (&host, sslmode) {
        (Host::Tcp(_), mode) if mode != SslMode::Disable => {
            let check = match (mode, &tls_files.rootcert) {
                (SslMode::VerifyFull, _) => Check::ChainAndName,
                (SslMode::VerifyCa, _) | (_, Some(_)) => Check::Chain,
                _ => Check::Nothing,
            };
            Some(tls::build(check, &tls_files)?)
        }
        _ => None,
    };

    let mut target = Target {
        host,
        port,
        user,
        database,
        password: None,
        sslmode,
        tls_files,
        tls,
        application_name: APPLICATION_NAME.to_string(),
        connect_timeout,
    };

    let mut warnings = Vec::new();
    target.password = match (get(Keyword::Password), get(Keyword::Passfile)) {
        (Some(given), _) => Some(Secret::new(given.origin.to_string(), given.value.clone())),
        (None, passfile) => {
            let path = passfile
                .map(|g| PathBuf::from(&g.value))
                .or_else(|| env.home().map(|home| home.join(".pgpass")));
            match path {
                Some(path) => match pgpass::lookup(&path, &target.pgpass_key()) {
                    Ok(found) => found,
                    Err(ignored) => {
                        warnings.push(ignored);
                        None
                    }
                },
                None => None,
            }
        }
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
        erp_config: inv.and_then(|t| t.erp_config.clone()),
        vars: inv.map(|t| t.vars.clone()).unwrap_or_default(),
        warnings,
    })
}

/// `-h`, `-p`, `-U` and `-d` as one layer. `-d` is a database name, or a
/// connection string whose settings must not contradict the flags (psql
/// would let the string win without a word).
fn command_line(selection: &Selection<'_>) -> Result<Layer, TargetError> {
    let mut flags = Layer::default();
    for (keyword, flag, value) in [
        (Keyword::Host, "-h", selection.host),
        (Keyword::Port, "-p", selection.port),
        (Keyword::User, "-U", selection.user),
    ] {
        if let Some(value) = value {
            flags.set(keyword, value, Origin::Flag(flag));
        }
    }
    let Some(database) = selection.database else {
        return Ok(flags);
    };
    if !connstr::recognized(database) {
        flags.set(Keyword::Dbname, database, Origin::Flag("-d"));
        return Ok(flags);
    }
    let conn = connstr::parse(database).map_err(|error| {
        let help = match &error {
            ConnStringError::Keyword(_) => {
                format!("the settings plan-runner reads are {}", Keyword::names())
            }
            _ => "write `postgresql://USER@HOST:PORT/DATABASE?sslmode=verify-full`, or `host=HOST port=PORT dbname=DATABASE` with `'...'` around a value holding a blank"
                .to_string(),
        };
        TargetError::ConnString { error, help }
    })?;
    for (keyword, given) in conn.iter() {
        if let Some(flag) = flags.get(keyword)
            && flag.value != given.value
            && let Origin::Flag(name) = flag.origin
        {
            return Err(TargetError::FlagConflict {
                flag: name,
                flag_value: flag.value.clone(),
                conn: given.origin.clone(),
                conn_value: given.value.clone(),
            });
        }
    }
    Ok(flags.over(&conn))
}

/// The inventory target's connection settings as a layer.
fn inventory_layer(chosen: Option<(&str, &InventoryTarget)>) -> Layer {
    let mut layer = Layer::default();
    let Some((name, t)) = chosen else {
        return layer;
    };
    let origin = |field: &'static str| Origin::Inventory {
        target: name.to_string(),
        field,
    };
    let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.to_string_lossy().into_owned());
    let fields = [
        (Keyword::Host, "host", t.host.clone()),
        (Keyword::Port, "port", t.port.map(|p| p.to_string())),
        (Keyword::User, "user", t.user.clone()),
        (Keyword::Dbname, "database", Some(t.database.clone())),
        (
            Keyword::Password,
            "password",
            t.password.as_ref().map(|p| p.expose().to_string()),
        ),
        (
            Keyword::Sslmode,
            "sslmode",
            t.sslmode.map(|m| m.as_str().to_string()),
        ),
        (Keyword::Sslrootcert, "sslrootcert", path(&t.sslrootcert)),
        (Keyword::Sslcert, "sslcert", path(&t.sslcert)),
        (Keyword::Sslkey, "sslkey", path(&t.sslkey)),
    ];
    for (keyword, field, value) in fields {
        if let Some(value) = value {
            layer.set(keyword, value, origin(field));
        }
    }
    layer
}

/// The certificate files, as libpq finds them: each given one (which must
/// exist: a path that names nothing is a mistake to say, not a file to
/// skip), else its default under `~/.postgresql` when that exists. Paths
/// are made absolute, since steps run in the plan's folder.
fn tls_files(settings: &Layer, sslmode: SslMode, env: &Env) -> Result<TlsFiles, TlsError> {
    let default_dir = env.home().map(|home| home.join(".postgresql"));
    let given = |keyword: Keyword| {
        settings
            .get(keyword)
            .filter(|g| !g.value.is_empty())
            .map(|g| std::path::absolute(&g.value).unwrap_or_else(|_| PathBuf::from(&g.value)))
    };
    let default = |name: &str| default_dir.as_ref().map(|dir| dir.join(name));
    let must_exist = |path: PathBuf, what: &'static str| {
        if path.exists() {
            Ok(path)
        } else {
            Err(TlsError::Read {
                what,
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
                path,
            })
        }
    };

    if settings
        .get(Keyword::Sslrootcert)
        .is_some_and(|g| g.value == "system")
    {
        return Err(TlsError::SystemRoots);
    }
    let rootcert = match given(Keyword::Sslrootcert) {
        Some(path) => Some(must_exist(path, "root certificate file")?),
        None => default("root.crt").filter(|p| p.exists()),
    };
    if sslmode.verifies() && rootcert.is_none() {
        return Err(TlsError::NoRootCert {
            mode: sslmode.as_str(),
            path: default("root.crt").unwrap_or_else(|| PathBuf::from("~/.postgresql/root.crt")),
        });
    }
    let cert = match given(Keyword::Sslcert) {
        Some(path) => Some(must_exist(path, "client certificate")?),
        None => default("postgresql.crt").filter(|p| p.exists()),
    };
    let key = match (&cert, given(Keyword::Sslkey)) {
        (None, given) => given,
        (Some(cert), given) => {
            let key = given.or_else(|| default("postgresql.key"));
            match key {
                Some(key) if key.exists() => Some(key),
                key => {
                    return Err(TlsError::NoKey {
                        cert: cert.clone(),
                        key: key.unwrap_or_else(|| PathBuf::from("~/.postgresql/postgresql.key")),
                    });
                }
            }
        }
    };
    Ok(TlsFiles {
        rootcert,
        cert,
        key,
    })
}

/// Variables that would make libpq (in a child) and the runner disagree
/// about the server, and that the runner cannot honour.
fn refuse_unsupported(env: &Env) -> Result<(), TargetError> {
    if env.get("PGHOSTADDR").is_some() {
        return Err(TargetError::UnsupportedEnv {
            var: "PGHOSTADDR",
            help: "unset it and give the address in `PGHOST` (or `-h`, or `host` in the inventory)",
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

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::db::conninfo::{CHILD_ENV_REMOVE, KEEPALIVES_IDLE, env_for_child};
    use crate::db::tls::TlsError;

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
        // libpq never uses TLS over a socket.
        assert!(t.tls.is_none());
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
    fn every_sslmode_is_read_and_a_bad_one_names_its_origin() {
        for mode in ["disable", "allow", "prefer", "require"] {
            let t = resolved(&env().with_var("PGSSLMODE", mode)).target;
            assert_eq!(t.sslmode.as_str(), mode);
        }
        let error = resolve(
            &Selection::default(),
            &env().with_var("PGSSLMODE", "sometimes"),
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "`PGSSLMODE`: unknown sslmode `sometimes`; expected `disable`, `allow`, `prefer`, `require`, `verify-ca` or `verify-full`"
        );
    }

    #[test]
    fn hostaddr_is_refused() {
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
    }

    #[test]
    fn psql_flags_beat_inventory_beat_environment() {
        let inv = inventory(
            "targets:\n  acme:\n    host: inv-host\n    port: 6001\n    user: inv-user\n    database: inv-db\n",
        );
        let env = env()
            .with_var("PGHOST", "env-host")
            .with_var("PGPORT", "6000")
            .with_var("PGUSER", "env-user");
        let acme = inv.target("acme").unwrap();
        let r = resolve(
            &Selection {
                host: Some("flag-host"),
                user: Some("flag-user"),
                inventory: Some(("acme", acme)),
                ..Selection::default()
            },
            &env,
        )
        .unwrap();
        assert_eq!(r.target.host, Host::Tcp("flag-host".to_string()));
        assert_eq!(r.target.port, 6001);
        assert_eq!(r.target.user, "flag-user");
        assert_eq!(r.target.database, "inv-db");
        let t = resolve(
            &Selection {
                port: Some("6002"),
                database: Some("flag-db"),
                ..Selection::default()
            },
            &env,
        )
        .unwrap()
        .target;
        assert_eq!(
            (
                t.host.to_string(),
                t.port,
                t.user.as_str(),
                t.database.as_str()
            ),
            ("env-host".to_string(), 6002, "env-user", "flag-db")
        );
        let error = resolve(
            &Selection {
                port: Some("x"),
                ..Selection::default()
            },
            &env,
        )
        .unwrap_err();
        assert_eq!(error.to_string(), "`-p` is not a valid port: `x`");
    }

    #[test]
    fn d_takes_a_uri_or_a_conninfo_string() {
        let t = resolve(
            &Selection {
                database: Some("postgresql://erp@db.example:5433/acme?sslmode=disable"),
                ..Selection::default()
            },
            &env().with_var("PGHOST", "env-host"),
        )
        .unwrap()
        .target;
        assert_eq!(t.host, Host::Tcp("db.example".to_string()));
        assert_eq!((t.port, t.user.as_str()), (5433, "erp"));
        assert_eq!(t.database, "acme");
        assert_eq!(t.sslmode, SslMode::Disable);
        let t = resolve(
            &Selection {
                database: Some("host=/run/pg dbname='my db'"),
                port: Some("5434"),
                ..Selection::default()
            },
            &env(),
        )
        .unwrap()
        .target;
        assert_eq!(t.host, Host::Socket(PathBuf::from("/run/pg")));
        assert_eq!((t.port, t.database.as_str()), (5434, "my db"));
    }

    #[test]
    fn a_flag_and_the_connection_string_must_agree() {
        let selection = |database| Selection {
            database: Some(database),
            port: Some("5433"),
            ..Selection::default()
        };
        let error = resolve(&selection("port=5432 dbname=x"), &env()).unwrap_err();
        assert!(matches!(error, TargetError::FlagConflict { .. }));
        assert_eq!(
            error.to_string(),
            "`-p 5433` and `port` in the connection string of `-d` (`5432`) disagree"
        );
        let t = resolve(&selection("port=5433 dbname=x"), &env())
            .unwrap()
            .target;
        assert_eq!(t.port, 5433);
        let error = resolve(&selection("dbname=x options=-cx=1"), &env()).unwrap_err();
        assert!(matches!(error, TargetError::ConnString { .. }));
        assert!(error.to_string().contains("`options`"), "{error}");
    }

    #[test]
    fn a_service_sits_above_the_environment_and_below_the_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("services.conf");
        fs::write(
            &file,
            "[erp]\nhost=svc-host\nport=6010\ndbname=svc-db\nsslmode=disable\n",
        )
        .unwrap();
        let env = env()
            .with_var("PGSERVICEFILE", file.to_str().unwrap())
            .with_var("PGSERVICE", "erp")
            .with_var("PGHOST", "env-host")
            .with_var("PGPORT", "6000")
            .with_var("PGUSER", "env-user");
        let t = resolved(&env).target;
        // As libpq: the service beats PGHOST and PGPORT; PGUSER fills in.
        assert_eq!(t.host, Host::Tcp("svc-host".to_string()));
        assert_eq!(t.port, 6010);
        assert_eq!(t.user, "env-user");
        assert_eq!(t.database, "svc-db");
        let t = resolve(
            &Selection {
                port: Some("6020"),
                ..Selection::default()
            },
            &env,
        )
        .unwrap()
        .target;
        assert_eq!(t.port, 6020);
        // `service=` in `-d` names it too, and beats PGSERVICE.
        fs::write(&file, "[erp]\nport=6010\n[other]\nport=6030\n").unwrap();
        let t = resolve(
            &Selection {
                database: Some("service=other dbname=x"),
                ..Selection::default()
            },
            &env,
        )
        .unwrap()
        .target;
        assert_eq!(t.port, 6030);
        // Children get what it resolved to, never the service.
        let run = tempfile::tempdir().unwrap();
        let vars = env_for_child(&t, run.path()).unwrap();
        assert!(vars.iter().any(|(n, v)| n == "PGPORT" && v == "6030"));
        assert!(vars.iter().all(|(n, _)| n != "PGSERVICE"));
        assert!(CHILD_ENV_REMOVE.contains(&"PGSERVICE"));
        let error = resolved_err(&env.clone().with_var("PGSERVICE", "nope"));
        assert!(matches!(
            error,
            TargetError::Service(service::ServiceError::NotFound { .. })
        ));
    }

    #[test]
    fn the_system_service_file_is_read_when_the_user_file_lacks_it() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("pg_service.conf"), "[erp]\nport=6040\n").unwrap();
        let env = env()
            .with_var("HOME", "/nonexistent")
            .with_var("PGSERVICE", "erp")
            .with_sysconf_dirs([dir.path().to_path_buf()]);
        assert_eq!(resolved(&env).target.port, 6040);
        let env = env
            .with_sysconf_dirs([])
            .with_var("PGSYSCONFDIR", dir.path().to_str().unwrap());
        assert_eq!(resolved(&env).target.port, 6040);
    }

    fn resolved_err(env: &Env) -> TargetError {
        resolve(&Selection::default(), env).unwrap_err()
    }

    #[test]
    fn verify_modes_need_a_root_certificate() {
        let home = tempfile::tempdir().unwrap();
        let env = env()
            .with_var("HOME", home.path().to_str().unwrap())
            .with_var("PGHOST", "db.example")
            .with_var("PGSSLMODE", "verify-full");
        match resolved_err(&env) {
            TargetError::Tls(TlsError::NoRootCert { mode, path }) => {
                assert_eq!(mode, "verify-full");
                assert_eq!(path, home.path().join(".postgresql/root.crt"));
            }
            other => panic!("{other:?}"),
        }
        match resolved_err(&env.clone().with_var("PGSSLROOTCERT", "/nonexistent/ca.crt")) {
            TargetError::Tls(TlsError::Read { path, .. }) => {
                assert_eq!(path, Path::new("/nonexistent/ca.crt"));
            }
            other => panic!("{other:?}"),
        }
        // Without verification, no root certificate is needed.
        let t = resolved(&env.with_var("PGSSLMODE", "require")).target;
        assert_eq!(t.tls_files, TlsFiles::default());
        assert!(t.tls.is_some());
    }

    #[test]
    fn a_client_certificate_needs_its_key_and_children_get_the_files() {
        let home = tempfile::tempdir().unwrap();
        let dir = home.path().join(".postgresql");
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("postgresql.crt"), "").unwrap();
        let env = env()
            .with_var("HOME", home.path().to_str().unwrap())
            .with_var("PGSSLMODE", "disable");
        match resolved_err(&env) {
            TargetError::Tls(TlsError::NoKey { cert, key }) => {
                assert_eq!(cert, dir.join("postgresql.crt"));
                assert_eq!(key, dir.join("postgresql.key"));
            }
            other => panic!("{other:?}"),
        }
        fs::write(dir.join("postgresql.key"), "").unwrap();
        fs::write(dir.join("root.crt"), "").unwrap();
        // Over `disable` nothing is read, but children still get the
        // files libpq would find.
        let t = resolved(&env).target;
        assert!(t.tls.is_none());
        let run = tempfile::tempdir().unwrap();
        let vars = env_for_child(&t, run.path()).unwrap();
        let get = |name: &str| vars.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
        assert_eq!(get("PGSSLMODE").as_deref(), Some("disable"));
        assert_eq!(
            get("PGSSLROOTCERT"),
            Some(dir.join("root.crt").display().to_string())
        );
        assert_eq!(
            get("PGSSLCERT"),
            Some(dir.join("postgresql.crt").display().to_string())
        );
        assert_eq!(
            get("PGSSLKEY"),
            Some(dir.join("postgresql.key").display().to_string())
        );
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
