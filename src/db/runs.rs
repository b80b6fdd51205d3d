//! `plan_runner.runs` in the maintenance database: every run writes a row
//! before its first step and closes it at the end, so that any runner, on
//! any host and as any user, sees an unfinished run and who made it.

use postgres::Client;

#[derive(Clone, Debug, serde::Serialize)]
pub struct RunRow {
    pub run_id: String,
    pub target: String,
    pub host: String,
    pub pid: i32,
    pub plan: String,
    pub plan_sha256: String,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub state: String,
    /// Where the run's folder (journal, logs, dumps) is on `host`; `None`
    /// for rows written before the column existed.
    pub run_folder: Option<String>,
}

fn ensure(client: &mut Client) -> Result<(), postgres::Error> {
    // Runners on different targets share this table but not a lock, and
    // two concurrent `create ... if not exists` can still collide on the
    // catalog's unique indexes: the first run on each of two targets would
    // fail. A transaction-level advisory lock serialises the creation.
    let mut tx = client.transaction()?;
    tx.execute(
        "select pg_advisory_xact_lock(hashtextextended('plan-runner:runs-table', 0))",
        &[],
    )?;
    // `create schema if not exists` checks CREATE on the database before
    // it looks for the schema: every statement here runs only when its
    // object is missing, so that a role granted nothing but the rows
    // (the usual Odoo role) gets through.
    let row = tx.query_one(
        "select to_regnamespace('plan_runner') is not null,
                to_regclass('plan_runner.runs') is not null,
                coalesce((select not c.relforcerowsecurity from pg_class c
                          where c.oid = to_regclass('plan_runner.runs')), false),
                coalesce((select pg_has_role(current_user, c.relowner, 'USAGE') from pg_class c
                          where c.oid = to_regclass('plan_runner.runs')), false),
                exists (select 1 from pg_attribute
                        where attrelid = coalesce(to_regclass('plan_runner.runs'), 0)
                          and attname = 'run_folder' and not attisdropped)",
        &[],
    )?;
    let (schema, table, closed, owned, has_folder): (bool, bool, bool, bool, bool) =
        (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
    let to_open = table && closed && owned;
    if !schema {
        tx.batch_execute("create schema plan_runner")?;
    }
    if !table {
        tx.batch_execute(
            "create table plan_runner.runs (
                 run_id      text primary key,
                 target      text not null,
                 host        text not null,
                 pid         integer not null,
                 plan        text not null,
                 plan_sha256 text not null,
                 started_at  timestamptz not null default now(),
                 ended_at    timestamptz,
                 state       text not null,
                 run_folder  text
             )",
        )?;
    } else if !has_folder && owned {
        tx.batch_execute("alter table plan_runner.runs add column run_folder text")?;
    }
    if !table || to_open {
        tx.batch_execute(OPEN)?;
    }
    tx.commit()
}

/// Opens the table to every role (each role applies to the databases it
/// owns, and every runner must see every unfinished run), while a role
/// may only write its own rows: the row says which role wrote it, and
/// the owner too is held to the policies (`force`). A table made before
/// this existed is opened by the first run of its owner or a superuser.
const OPEN: &str = "
    alter table plan_runner.runs add column if not exists
        run_role text not null default current_user;
    alter table plan_runner.runs enable row level security;
    alter table plan_runner.runs force row level security;
    create policy runs_read on plan_runner.runs for select using (true);
    create policy runs_write on plan_runner.runs for insert with check (run_role = current_user);
    create policy runs_close on plan_runner.runs for update
        using (run_role = current_user
               or exists (select 1 from pg_roles r
                          where r.rolname = run_role and pg_has_role(current_user, r.oid, 'MEMBER')))
        with check (run_role = current_user
               or exists (select 1 from pg_roles r
                          where r.rolname = run_role and pg_has_role(current_user, r.oid, 'MEMBER')));
    grant usage on schema plan_runner to public;
    grant select, insert, update on plan_runner.runs to public;";

/// Whether this session's role may keep the runs record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Access {
    /// The table is there and the role may read and write its rows.
    Writable,
    /// The table is not there and the role may create it.
    Creatable,
    /// The role may not: `grant` is the line a superuser (or the owner
    /// of the database or schema) runs in the maintenance database.
    Missing { grant: String },
}

/// What this session's role may do with `plan_runner.runs` in its
/// database (the maintenance database).
pub fn access(client: &mut Client) -> Result<Access, postgres::Error> {
    // From the catalogs, not `to_regclass`: naming an object in a schema
    // the role may not use is itself refused.
    let row = client.query_one(
        "with s as (select oid from pg_namespace where nspname = 'plan_runner'),
              t as (select c.oid from pg_class c join s on c.relnamespace = s.oid
                    where c.relname = 'runs')
         select quote_ident(current_user), quote_ident(current_database()),
                exists (select 1 from s), exists (select 1 from t),
                has_database_privilege(current_database(), 'CREATE'),
                coalesce((select has_schema_privilege(oid, 'USAGE') from s), false),
                coalesce((select has_schema_privilege(oid, 'CREATE') from s), false),
                coalesce((select has_table_privilege(oid, 'SELECT')
                             and has_table_privilege(oid, 'INSERT')
                             and has_table_privilege(oid, 'UPDATE') from t), false)",
        &[],
    )?;
    let (user, database): (String, String) = (row.get(0), row.get(1));
    let (schema, table, create_db, usage, create_schema, rows): (
        bool,
        bool,
        bool,
        bool,
        bool,
        bool,
    ) = (
        row.get(2),
        row.get(3),
        row.get(4),
        row.get(5),
        row.get(6),
        row.get(7),
    );
    Ok(if table {
        if usage && rows {
            Access::Writable
        } else {
            Access::Missing {
                grant: format!(
                    "GRANT USAGE ON SCHEMA plan_runner TO {user}; GRANT SELECT, INSERT, UPDATE ON plan_runner.runs TO {user};"
                ),
            }
        }
    } else if schema {
        if usage && create_schema {
            Access::Creatable
        } else {
            Access::Missing {
                grant: format!("GRANT USAGE, CREATE ON SCHEMA plan_runner TO {user};"),
            }
        }
    } else if create_db {
        Access::Creatable
    } else {
        Access::Missing {
            grant: format!("GRANT CREATE ON DATABASE {database} TO {user};"),
        }
    })
}

/// This machine's name, as the runs table and the journal record it.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// Records the start of a run. Called with the lock held, so two runners
/// never create the table at once.
pub fn start(
    client: &mut Client,
    run_id: &str,
    target: &str,
    plan: &str,
    plan_sha256: &str,
    run_folder: &str,
) -> Result<(), postgres::Error> {
    insert(
        client,
        [run_id, target, plan, plan_sha256, "running", run_folder],
    )
}

/// A rehearsal's row: `target` is the database rehearsed (never changed:
/// the row is no run of it), `state` is `rehearsing` until the rehearsal
/// ends `rehearsal_passed`, `_failed`, `_interrupted` or `_refused`, or
/// `plan recover` drops what a killed one left (`rehearsal_dropped`).
pub fn start_rehearsal(
    client: &mut Client,
    run_id: &str,
    target: &str,
    plan: &str,
    plan_sha256: &str,
    run_folder: &str,
) -> Result<(), postgres::Error> {
    insert(
        client,
        [run_id, target, plan, plan_sha256, REHEARSING, run_folder],
    )
}

/// The state of a rehearsal that has not ended.
pub const REHEARSING: &str = "rehearsing";

/// The state a rehearsal ends in, from how it ended.
pub fn rehearsal_state(outcome: &str) -> String {
    format!("rehearsal_{outcome}")
}

fn insert(
    client: &mut Client,
    [run_id, target, plan, sha, state, folder]: [&str; 6],
) -> Result<(), postgres::Error> {
    ensure(client)?;
    client.execute(
        "insert into plan_runner.runs (run_id, target, host, pid, plan, plan_sha256, state, run_folder)
         values ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            &run_id,
            &target,
            &hostname(),
            &(std::process::id() as i32),
            &plan,
            &sha,
            &state,
            &folder,
        ],
    )?;
    Ok(())
}

/// The last rehearsal of `target` that ended (of the plan with
/// `plan_sha256`, when given).
pub fn last_rehearsal(
    client: &mut Client,
    target: &str,
    plan_sha256: Option<&str>,
) -> Result<Option<RunRow>, postgres::Error> {
    if !exists(client)? {
        return Ok(None);
    }
    Ok(client
        .query_opt(
            &format!(
                "{SELECT} where target = $1 and state like 'rehearsal\\_%' and state <> 'rehearsal_refused'
                   and ($2::text is null or plan_sha256 = $2)
                 order by started_at desc, run_id desc limit 1"
            ),
            &[&target, &plan_sha256],
        )?
        .map(|row| from_row(&row)))
}

/// Rehearsals of `target` that have not ended (their runner may have
/// died), oldest first.
pub fn unfinished_rehearsals(
    client: &mut Client,
    target: &str,
) -> Result<Vec<RunRow>, postgres::Error> {
    if !exists(client)? {
        return Ok(Vec::new());
    }
    Ok(client
        .query(
            &format!("{SELECT} where target = $1 and state = $2 order by started_at, run_id"),
            &[&target, &REHEARSING],
        )?
        .iter()
        .map(from_row)
        .collect())
}

pub fn finish(client: &mut Client, run_id: &str, state: &str) -> Result<(), postgres::Error> {
    client.execute(
        "update plan_runner.runs set ended_at = now(), state = $2 where run_id = $1",
        &[&run_id, &state],
    )?;
    Ok(())
}

/// Opens again a run that `plan apply --resume` takes over: `running`
/// again, under this runner's host and pid (so that its lock's holder and
/// a later check for a live runner name this process), with its run folder
/// where it was found (`--state-dir` may have said it moved). Returns
/// whether the row was there, unfinished.
pub fn reopen(
    client: &mut Client,
    run_id: &str,
    run_folder: &str,
) -> Result<bool, postgres::Error> {
    let updated = client.execute(
        "update plan_runner.runs set state = 'running', ended_at = null, host = $2, pid = $3, run_folder = $4
         where run_id = $1 and state in ('running', 'stopped')",
        &[&run_id, &hostname(), &(std::process::id() as i32), &run_folder],
    )?;
    Ok(updated == 1)
}

/// The last run of `target` that got as far as its steps (not one that
/// was refused or had nothing to do), finished or not.
pub fn last_run(client: &mut Client, target: &str) -> Result<Option<RunRow>, postgres::Error> {
    if !exists(client)? {
        return Ok(None);
    }
    Ok(client
        .query_opt(
            &format!(
                "{SELECT} where target = $1 and state not in ('refused', 'nothing_to_do', 'error')
                   and state not like 'rehears%'
                 order by started_at desc, run_id desc limit 1"
            ),
            &[&target],
        )?
        .map(|row| from_row(&row)))
}

pub fn get(client: &mut Client, run_id: &str) -> Result<Option<RunRow>, postgres::Error> {
    if !exists(client)? {
        return Ok(None);
    }
    Ok(client
        .query_opt(&format!("{SELECT} where run_id = $1"), &[&run_id])?
        .map(|row| from_row(&row)))
}

/// Runs of `target` that did not end: `running` (their runner died, when
/// the caller holds the target's lock) or `stopped` (`--no-rollback` left
/// the database as the failure left it). Oldest first.
pub fn unfinished(client: &mut Client, target: &str) -> Result<Vec<RunRow>, postgres::Error> {
    if !exists(client)? {
        return Ok(Vec::new());
    }
    Ok(client
        .query(
            &format!(
                "{SELECT} where target = $1 and state in ('running', 'stopped') order by started_at, run_id"
            ),
            &[&target],
        )?
        .iter()
        .map(from_row)
        .collect())
}

fn exists(client: &mut Client) -> Result<bool, postgres::Error> {
    Ok(client
        .query_one("select to_regclass('plan_runner.runs') is not null", &[])?
        .get(0))
}

// `run_folder` read through jsonb: a table made before the column existed
// still reads, with no folder. Times as RFC 3339 in UTC, whatever the
// session's DateStyle (as `history::rfc3339`).
const SELECT: &str = "select run_id, target, host, pid, plan, plan_sha256,
            to_char(started_at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),
            to_char(ended_at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),
            state, to_jsonb(r) ->> 'run_folder'
     from plan_runner.runs r";

fn from_row(row: &postgres::Row) -> RunRow {
    RunRow {
        run_id: row.get(0),
        target: row.get(1),
        host: row.get(2),
        pid: row.get(3),
        plan: row.get(4),
        plan_sha256: row.get(5),
        started_at: row.get(6),
        ended_at: row.get(7),
        state: row.get(8),
        run_folder: row.get(9),
    }
}
