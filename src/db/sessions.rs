//! Other sessions on a database: who is connected (a snapshot cannot copy
//! a database in use), blocking new connections, and ending them.
//!
//! A session is a client's: `backend_type = 'client backend'` (a column
//! since PostgreSQL 10). The server's own backends on a database are not
//! someone at work there: autovacuum, which PostgreSQL cancels itself for a
//! template copy or a rename, and the workers (a logical replication
//! walsender or apply worker, an extension's background worker), which
//! block both all the same and are ended for them (`workers`, `terminate`).

use std::fmt;
use std::time::{Duration, Instant};

use postgres::Client;
use serde::Serialize;

use crate::quote::quote_ident;

/// A session connected to the target, as `pg_stat_activity` shows it. A
/// killed client can leave its backend running a query: it is listed too.
#[derive(Clone, Debug, Serialize)]
pub struct Session {
    pub pid: i32,
    pub user: Option<String>,
    pub application: Option<String>,
    pub client: Option<String>,
    pub state: Option<String>,
}

impl fmt::Display for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pid {} user {} application {} from {} ({})",
            self.pid,
            self.user.as_deref().unwrap_or("?"),
            self.application
                .as_deref()
                .filter(|a| !a.is_empty())
                .unwrap_or("-"),
            self.client.as_deref().unwrap_or("local socket"),
            self.state.as_deref().unwrap_or("?"),
        )
    }
}

/// The client sessions on `database` other than the caller's own.
pub fn list(maintenance: &mut Client, database: &str) -> Result<Vec<Session>, postgres::Error> {
    query(maintenance, database, "backend_type = 'client backend'")
}

/// The server's own backends on `database` that a template copy or a
/// rename must not find there: every one but the clients' and
/// autovacuum's (which the server cancels itself). Shown with their
/// `backend_type` as their application.
pub fn workers(maintenance: &mut Client, database: &str) -> Result<Vec<Session>, postgres::Error> {
    query(
        maintenance,
        database,
        "backend_type not in ('client backend', 'autovacuum worker')",
    )
}

/// The backends on `database` other than the caller's own that match
/// `which`, a condition written here, never from input.
fn query(
    maintenance: &mut Client,
    database: &str,
    which: &str,
) -> Result<Vec<Session>, postgres::Error> {
    Ok(maintenance
        .query(
            &format!(
                "select pid, usename::text,
                        case when backend_type = 'client backend' then application_name
                             else backend_type end,
                        client_addr::text, state
                 from pg_stat_activity
                 where datname = $1 and pid <> pg_backend_pid() and {which}
                 order by pid"
            ),
            &[&database],
        )?
        .into_iter()
        .map(|row| Session {
            pid: row.get(0),
            user: row.get(1),
            application: row.get(2),
            client: row.get(3),
            state: row.get(4),
        })
        .collect())
}

/// Waits up to `wait` for the sessions on `database` to end; returns those
/// still there. Checks every 100 ms: the server offers no notification.
pub fn wait_until_alone(
    maintenance: &mut Client,
    database: &str,
    wait: Duration,
) -> Result<Vec<Session>, postgres::Error> {
    let deadline = Instant::now() + wait;
    loop {
        let sessions = list(maintenance, database)?;
        if sessions.is_empty() || Instant::now() >= deadline {
            return Ok(sessions);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether `database` accepts connections.
pub fn allows_connections(
    maintenance: &mut Client,
    database: &str,
) -> Result<bool, postgres::Error> {
    Ok(maintenance
        .query_one(
            "select datallowconn from pg_database where datname = $1",
            &[&database],
        )?
        .get(0))
}

pub fn set_allow_connections(
    maintenance: &mut Client,
    database: &str,
    allow: bool,
) -> Result<(), postgres::Error> {
    maintenance.batch_execute(&format!(
        "alter database {} allow_connections {}",
        quote_ident(database),
        allow
    ))
}

/// Ends every other session and worker on `database` and waits (up to
/// `wait`) until they are gone; returns those still there. The caller
/// blocks new connections first.
pub fn terminate(
    maintenance: &mut Client,
    database: &str,
    wait: Duration,
) -> Result<Vec<Session>, postgres::Error> {
    maintenance.execute(
        "select pg_terminate_backend(pid) from pg_stat_activity
         where datname = $1 and pid <> pg_backend_pid()",
        &[&database],
    )?;
    let deadline = Instant::now() + wait;
    loop {
        let mut left = list(maintenance, database)?;
        left.extend(workers(maintenance, database)?);
        if left.is_empty() || Instant::now() >= deadline {
            return Ok(left);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
