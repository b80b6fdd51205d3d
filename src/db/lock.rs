//! The lock that makes two runs on one target impossible: a session-level
//! advisory lock keyed on the target, held from a dedicated connection to
//! the maintenance database (advisory locks are per database, and the
//! target itself is renamed during a rollback). The server releases it if
//! the runner dies.

use std::time::{Duration, Instant};

use postgres::Client;

use crate::db::runs::{self, RunRow};

/// Who holds the lock, as far as the server can tell.
#[derive(Clone, Debug)]
pub struct Holder {
    pub pid: i32,
    pub application: String,
    pub client: Option<String>,
    pub since: String,
}

/// The lock's key: the same for every runner on this server and target.
fn key(target: &str) -> String {
    format!("plan-runner:{target}")
}

/// The outcome of asking for the lock.
#[derive(Debug)]
pub enum Acquired {
    Yes,
    /// Another session holds it (named when it could be found).
    HeldBy(Option<Holder>),
}

/// Why the lock was not taken.
#[derive(Debug)]
pub enum NotTaken {
    /// Another session holds it: the holder and its run, as far as the
    /// server and `plan_runner.runs` can tell.
    Held {
        holder: Option<Holder>,
        run: Option<Box<RunRow>>,
    },
    Database(postgres::Error),
}

impl NotTaken {
    /// The lines naming the holder and its run, for a refusal message.
    pub fn holder_lines(&self) -> String {
        let NotTaken::Held { holder, run } = self else {
            return String::new();
        };
        let mut lines = String::new();
        if let Some(h) = holder {
            lines.push_str(&format!(
                "\n  holder: server pid {}, {}, from {}, connected since {}",
                h.pid,
                h.application,
                h.client.as_deref().unwrap_or("local socket"),
                h.since
            ));
        }
        if let Some(r) = run {
            lines.push_str(&format!(
                "\n  run {}: plan {} on host {} (pid {}), started {}",
                r.run_id, r.plan, r.host, r.pid, r.started_at
            ));
        }
        lines
    }
}

/// Takes the target's lock on `session`, a connection to the maintenance
/// database of its own, waiting up to `wait`. On success the session is
/// returned: the lock lasts exactly as long as it does. The one way every
/// command (apply, resume, recover) takes the lock.
pub fn take(mut session: Client, target: &str, wait: Duration) -> Result<Client, NotTaken> {
    // The lock lives as long as this session: no idle timeout may end it.
    let _ = session.batch_execute("set idle_session_timeout = 0; set statement_timeout = 0");
    match acquire(&mut session, target, wait) {
        Ok(Acquired::Yes) => Ok(session),
        Ok(Acquired::HeldBy(holder)) => {
            // The holder's connections are named `plan-runner/<run id>`.
            let run = holder
                .as_ref()
                .and_then(|h| h.application.strip_prefix("plan-runner/"))
                .and_then(|id| runs::get(&mut session, id).ok().flatten())
                .map(Box::new);
            Err(NotTaken::Held { holder, run })
        }
        Err(e) => Err(NotTaken::Database(e)),
    }
}

/// Tries to take the lock, waiting up to `wait` (zero: once).
fn acquire(lock: &mut Client, target: &str, wait: Duration) -> Result<Acquired, postgres::Error> {
    let deadline = Instant::now() + wait;
    loop {
        let taken: bool = lock
            .query_one(
                "select pg_try_advisory_lock(hashtextextended($1, 0))",
                &[&key(target)],
            )?
            .get(0);
        if taken {
            return Ok(Acquired::Yes);
        }
        if Instant::now() >= deadline {
            return Ok(Acquired::HeldBy(holder(lock, target)?));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The session holding the lock, if it is still there.
pub fn holder(client: &mut Client, target: &str) -> Result<Option<Holder>, postgres::Error> {
    // A bigint advisory lock shows its high half as classid, low as objid.
    let row = client.query_opt(
        "with k as (select hashtextextended($1, 0) as key)
         select a.pid, a.application_name, a.client_addr::text, a.backend_start::text
         from pg_locks l join pg_stat_activity a on a.pid = l.pid, k
         where l.locktype = 'advisory' and l.granted and l.objsubid = 1
           and l.database = (select oid from pg_database where datname = current_database())
           and l.classid::bigint = ((k.key >> 32) & 4294967295)
           and l.objid::bigint = (k.key & 4294967295)
         limit 1",
        &[&key(target)],
    )?;
    Ok(row.map(|row| Holder {
        pid: row.get(0),
        application: row.get(1),
        client: row.get(2),
        since: row.get(3),
    }))
}

/// Whether the lock connection is still alive (a lost connection means
/// the lock is gone: stop launching steps).
pub fn still_held(lock: &mut Client) -> bool {
    lock.simple_query("select 1").is_ok()
}
