//! Opening connections to one server for one run: every connection
//! carries `application_name = plan-runner/<run id>`, so other runners and
//! `pg_stat_activity` can name it, uses the target's `sslmode` as libpq
//! would ([`open`]), and sets `standard_conforming_strings = on` whatever
//! the server's default, so a quoted literal means one thing.
//!
//! A connection lost to a server restart or a cut network is reconnected
//! with [`Connector::reconnect`]: bounded retries with backoff, for at most
//! `--reconnect-wait` ([`RECONNECT_WAIT`] by default; docs/crash-safety.md).

use std::time::{Duration, Instant};

use postgres::config::SslMode as PgSslMode;
use postgres::error::SqlState;
use postgres::{CancelToken, Client, NoTls};

use crate::db::conninfo::{Host, SslMode, Target};
use crate::db::tls::Tls;

/// How long a run waits for a lost server before it gives up, unless
/// `--reconnect-wait` says otherwise: a restart takes seconds, a failover
/// well under a minute.
pub const RECONNECT_WAIT: Duration = Duration::from_secs(60);

/// Whether `client` still answers: a closed socket, a session the server
/// ended (`pg_terminate_backend`, a restart) or a cut network do not.
pub fn is_alive(client: &mut Client) -> bool {
    !client.is_closed() && client.is_valid(Duration::from_secs(5)).is_ok()
}

/// Whether an error means the server could not be reached or is restarting
/// (worth another attempt), rather than a refusal that will not change.
pub fn is_transient(e: &postgres::Error) -> bool {
    match e.code() {
        None => e.as_db_error().is_none(),
        Some(code) => {
            code == &SqlState::CANNOT_CONNECT_NOW
                || code == &SqlState::ADMIN_SHUTDOWN
                || code == &SqlState::CRASH_SHUTDOWN
                || code.code().starts_with("08")
        }
    }
}

/// Makes the run's connections to databases of the target's server.
#[derive(Clone, Debug)]
pub struct Connector {
    target: Target,
    /// What a child process needs to reach the same server (PGHOST,
    /// PGPORT, PGUSER, PGSSLMODE, PGPASSFILE); never a password.
    child_env: Vec<(String, String)>,
}

impl Connector {
    pub fn new(target: Target, run_id: &str, child_env: Vec<(String, String)>) -> Self {
        Connector {
            target: target.for_run(run_id),
            child_env,
        }
    }

    pub fn connect(&self, database: &str) -> Result<Client, postgres::Error> {
        open(&self.target, database)
    }

    /// A new connection to `database`, retried while the server cannot be
    /// reached or is restarting, for at most `wait` (0.25 s, then doubling
    /// up to 5 s between attempts). Any other error (a password refused, a
    /// database that does not exist) is returned at once.
    pub fn reconnect(&self, database: &str, wait: Duration) -> Result<Client, postgres::Error> {
        let deadline = Instant::now() + wait;
        let mut pause = Duration::from_millis(250);
        loop {
            match self.connect(database) {
                Ok(client) => return Ok(client),
                Err(e) if is_transient(&e) && Instant::now() < deadline => {
                    // The last pause ends at the deadline, for one more try.
                    std::thread::sleep(pause.min(deadline - Instant::now()));
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// What cancels the statement running on `client`, over a connection
    /// made as `client`'s was (with TLS when it used TLS).
    pub fn cancel_token(&self, client: &Client) -> Cancel {
        Cancel {
            token: client.cancel_token(),
            tls: self.target.tls.clone(),
        }
    }

    /// The target's password, if it has one: the run hides it wherever a
    /// step prints it.
    pub fn password(&self) -> Option<&str> {
        self.target.password.as_ref().map(|p| p.expose())
    }

    /// The role the run connects as.
    pub fn user(&self) -> &str {
        &self.target.user
    }

    /// Where a connection to `database` goes and as whom (`Target::at`).
    pub fn at(&self, database: &str) -> String {
        self.target.at(database)
    }

    /// Where the server is: whether its disk can be seen from here.
    pub fn host(&self) -> &Host {
        &self.target.host
    }

    /// The child environment for a process working on `database`.
    pub fn env_for(&self, database: &str) -> Vec<(String, String)> {
        let mut env = self.child_env.clone();
        env.retain(|(k, _)| k != "PGDATABASE");
        env.push(("PGDATABASE".into(), database.into()));
        env
    }
}

/// Cancels one connection's running statement.
#[derive(Clone)]
pub struct Cancel {
    token: CancelToken,
    tls: Option<Tls>,
}

impl Cancel {
    /// Asks the server to cancel; best effort (the statement may be over).
    pub fn cancel(&self) {
        let _ = match &self.tls {
            Some(tls) => self.token.cancel_query(tls.connector()),
            None => self.token.cancel_query(NoTls),
        };
    }
}

/// A connection to `database` on `target`'s server, trying what libpq's
/// `sslmode` tries:
/// - over a Unix socket, never TLS (libpq ignores `sslmode` there, and the
///   server refuses TLS on sockets);
/// - `disable`: clear;
/// - `allow`: clear, and TLS if the server turned the clear connection
///   away (a `hostssl` line in `pg_hba.conf`);
/// - `prefer`: TLS if the server offers it, and clear if the server does
///   not or the TLS handshake fails;
/// - `require`, `verify-ca`, `verify-full`: TLS or nothing.
pub fn open(target: &Target, database: &str) -> Result<Client, postgres::Error> {
    let mut config = target.config_for(database);
    config.options("-c standard_conforming_strings=on");
    let tls = match (&target.host, &target.tls, target.sslmode) {
        (Host::Tcp(_), Some(tls), mode) if mode != SslMode::Disable => tls,
        _ => return config.ssl_mode(PgSslMode::Disable).connect(NoTls),
    };
    match target.sslmode {
        SslMode::Disable => config.ssl_mode(PgSslMode::Disable).connect(NoTls),
        SslMode::Allow => match config.ssl_mode(PgSslMode::Disable).connect(NoTls) {
            Err(error) if error.as_db_error().is_some() => {
                config.ssl_mode(PgSslMode::Require).connect(tls.connector())
            }
            other => other,
        },
        SslMode::Prefer => match config.ssl_mode(PgSslMode::Prefer).connect(tls.connector()) {
            Err(error) if tls_failed(&error) => config.ssl_mode(PgSslMode::Disable).connect(NoTls),
            other => other,
        },
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
            config.ssl_mode(PgSslMode::Require).connect(tls.connector())
        }
    }
}

/// Whether the connection failed in the TLS handshake: rustls's error,
/// which tokio-rustls hands on inside an `io::Error`.
fn tls_failed(error: &postgres::Error) -> bool {
    let mut next = std::error::Error::source(error);
    while let Some(cause) = next {
        if cause.is::<rustls::Error>() {
            return true;
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && io
                .get_ref()
                .is_some_and(|inner| inner.is::<rustls::Error>())
        {
            return true;
        }
        next = cause.source();
    }
    false
}
