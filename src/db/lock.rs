//! The lock that makes two runs on one target impossible: a session-level
//! advisory lock keyed on the target, held from a dedicated connection to
//! the maintenance database (advisory locks are per database, and the
//! target itself is renamed during a rollback). The server releases it if
//! the runner dies.

use std::time::{Duration, Instant};

use postgres::Client;

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

/// Tries to take the lock, waiting up to `wait` (zero: once).
pub fn acquire(
    lock: &mut Client,
    target: &str,
    wait: Duration,
) -> Result<Acquired, postgres::Error> {
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
