//! A connection's settings as the runner uses them: the server (`Host`),
//! port, role, database, password and `sslmode` of one `Target`, turned
//! into the runner's own connections ([`Target::config`]) and into the
//! environment of every child process ([`env_for_child`]). Where the
//! values come from (flags, inventory, libpq's environment) is
//! `crate::target`'s business, not this module's.
//!
//! TLS follows libpq's `sslmode` (see `db::tls` for what each mode checks
//! and `db::connect` for what each tries); children get the same mode and
//! certificate files in `PGSSLMODE`, `PGSSLROOTCERT`, `PGSSLCERT` and
//! `PGSSLKEY`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;

use super::pgpass::{self, Key};
use super::tls::{Tls, TlsFiles};
use crate::plan::Secret;

/// Where libpq looks for a server's socket when no host is given: Debian
/// and its derivatives build it with `/var/run/postgresql`, upstream with
/// `/tmp`.
pub const DEFAULT_SOCKET_DIRS: [&str; 2] = ["/var/run/postgresql", "/tmp"];

/// Socket folders a libpq build may treat as its default, and so match as
/// `localhost` in a password file (`/run` is `/var/run` on current systems).
const DEFAULT_SOCKET_ALIASES: [&str; 3] = ["/var/run/postgresql", "/run/postgresql", "/tmp"];

pub const DEFAULT_PORT: u16 = 5432;

/// The `application_name` of a connection made outside a run; a run sets
/// `plan-runner/<run id>` (see [`Target::for_run`]).
pub const APPLICATION_NAME: &str = "plan-runner";

/// libpq waits forever by default; a runner holding a lock must not.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Client-side TCP keepalives: a dead server or a cut network is noticed
/// in about a minute instead of the kernel's two hours.
pub(crate) const KEEPALIVES_IDLE: Duration = Duration::from_secs(30);
const KEEPALIVES_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVES_RETRIES: u32 = 3;

/// Variables to remove from a child's environment before adding those of
/// [`env_for_child`]: the password must not travel in the environment,
/// and the others would make libpq connect somewhere else than the target
/// (`PGHOSTADDR` beats `PGHOST`; a service's settings beat the
/// environment's, so a child given `PGSERVICE` would not use the target's
/// `PGHOST`), or with other certificates than the runner's.
pub const CHILD_ENV_REMOVE: &[&str] = &[
    "PGPASSWORD",
    "PGHOSTADDR",
    "PGSERVICE",
    "PGSERVICEFILE",
    "PGSSLROOTCERT",
    "PGSSLCERT",
    "PGSSLKEY",
];

/// Where the server is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Host {
    /// A host name or an IP address.
    Tcp(String),
    /// The folder holding the server's Unix socket.
    Socket(PathBuf),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Tcp(name) => f.write_str(name),
            Host::Socket(dir) => write!(f, "{}", dir.display()),
        }
    }
}

/// libpq's `sslmode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    /// Clear first; TLS if the server refuses the clear connection.
    Allow,
    /// TLS if the server offers it, else clear (libpq's default).
    Prefer,
    /// TLS, the server's certificate checked only against a root
    /// certificate file that exists.
    Require,
    /// TLS, the server's certificate chained to a root certificate.
    VerifyCa,
    /// As `VerifyCa`, and the certificate names the host.
    VerifyFull,
}

/// Why an `sslmode` value cannot be used.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum SslModeError {
    #[error(
        "unknown sslmode `{0}`; expected `disable`, `allow`, `prefer`, `require`, `verify-ca` or `verify-full`"
    )]
    Unknown(String),
}

impl SslMode {
    pub fn parse(text: &str) -> Result<SslMode, SslModeError> {
        match text {
            "disable" => Ok(SslMode::Disable),
            "allow" => Ok(SslMode::Allow),
            "prefer" => Ok(SslMode::Prefer),
            "require" => Ok(SslMode::Require),
            "verify-ca" => Ok(SslMode::VerifyCa),
            "verify-full" => Ok(SslMode::VerifyFull),
            _ => Err(SslModeError::Unknown(text.to_string())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// Whether the server's certificate must be checked whatever files
    /// exist (`verify-ca`, `verify-full`).
    pub fn verifies(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyFull)
    }
}

/// One server, database and role: everything needed to connect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub host: Host,
    pub port: u16,
    pub user: String,
    pub database: String,
    /// Shown as `***` by Debug.
    pub password: Option<Secret>,
    pub sslmode: SslMode,
    /// The certificate files in use (given, or libpq's defaults in
    /// `~/.postgresql` that exist).
    pub tls_files: TlsFiles,
    /// The client configuration built from them; `None` when no
    /// connection of this target uses TLS (`disable`, or a Unix socket,
    /// over which libpq never uses TLS).
    pub tls: Option<Tls>,
    pub application_name: String,
    /// `None`: wait as long as the system does (`PGCONNECT_TIMEOUT=0`).
    pub connect_timeout: Option<Duration>,
}

impl Target {
    /// The same target, its connections named for run `run_id`, so that a
    /// second runner (and `pg_stat_activity`) can tell who holds the lock.
    pub fn for_run(mut self, run_id: &str) -> Target {
        self.application_name = format!("{APPLICATION_NAME}/{run_id}");
        self
    }

    /// Where a connection to `database` goes and as whom, for messages:
    /// `` `acme` on 127.0.0.1:5432 as `odoo` `` (never the password).
    pub fn at(&self, database: &str) -> String {
        format!(
            "`{database}` on {}:{} as `{}`",
            self.host, self.port, self.user
        )
    }

    /// Settings for a connection to the target database.
    pub fn config(&self) -> postgres::Config {
        self.config_for(&self.database)
    }

    /// Settings for a connection to another database of the same server:
    /// the maintenance database, which holds the lock, so that the target
    /// can be renamed or dropped during a rollback.
    pub fn config_for(&self, database: &str) -> postgres::Config {
        let mut config = postgres::Config::new();
        match &self.host {
            Host::Tcp(name) => config.host(name),
            Host::Socket(dir) => config.host_path(dir),
        };
        config
            .port(self.port)
            .user(&self.user)
            .dbname(database)
            .application_name(&self.application_name)
            .keepalives(true)
            .keepalives_idle(KEEPALIVES_IDLE)
            .keepalives_interval(KEEPALIVES_INTERVAL)
            .keepalives_retries(KEEPALIVES_RETRIES);
        if let Some(timeout) = self.connect_timeout {
            config.connect_timeout(timeout);
        }
        if let Some(password) = &self.password {
            config.password(password.expose());
        }
        config
    }

    /// The values a plan reads as `target.*`.
    pub fn plan_fields(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("database".to_string(), self.database.clone()),
            ("host".to_string(), self.host.to_string()),
            ("port".to_string(), self.port.to_string()),
            ("user".to_string(), self.user.clone()),
        ])
    }

    pub(crate) fn pgpass_key(&self) -> Key<'_> {
        let (host, host_is_default_socket) = match &self.host {
            Host::Tcp(name) => (name.as_str(), false),
            Host::Socket(dir) => {
                let text = dir.to_str().unwrap_or_default();
                let trimmed = if text.len() > 1 {
                    text.trim_end_matches('/')
                } else {
                    text
                };
                (text, DEFAULT_SOCKET_ALIASES.contains(&trimmed))
            }
        };
        Key {
            host,
            host_is_default_socket,
            port: self.port,
            database: &self.database,
            user: &self.user,
        }
    }
}

/// The environment for a child process: `PGHOST`, `PGPORT`, `PGUSER`,
/// `PGDATABASE`, `PGSSLMODE`, the certificate files in use
/// (`PGSSLROOTCERT`, `PGSSLCERT`, `PGSSLKEY`) and, when there is a
/// password, `PGPASSFILE`
/// naming a 0600 password file written into `run_folder`. The password
/// itself is never in the result. The caller first removes
/// [`CHILD_ENV_REMOVE`] from the child's environment, then sets these.
pub fn env_for_child(
    target: &Target,
    run_folder: &Path,
) -> Result<Vec<(String, String)>, pgpass::WriteError> {
    let mut env = vec![
        ("PGHOST".to_string(), target.host.to_string()),
        ("PGPORT".to_string(), target.port.to_string()),
        ("PGUSER".to_string(), target.user.clone()),
        ("PGDATABASE".to_string(), target.database.clone()),
        ("PGSSLMODE".to_string(), target.sslmode.as_str().to_string()),
    ];
    let files = &target.tls_files;
    for (name, path) in [
        ("PGSSLROOTCERT", &files.rootcert),
        ("PGSSLCERT", &files.cert),
        ("PGSSLKEY", &files.key),
    ] {
        if let Some(path) = path {
            env.push((name.to_string(), path.display().to_string()));
        }
    }
    if let Some(password) = &target.password {
        let path = pgpass::write(run_folder, &target.pgpass_key(), password)?;
        env.push(("PGPASSFILE".to_string(), path.display().to_string()));
    }
    Ok(env)
}
