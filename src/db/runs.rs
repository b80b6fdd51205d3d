//! `plan_runner.runs` in the maintenance database: every run writes a row
//! before its first step and closes it at the end, so that any runner, on
//! any host and as any user, sees an unfinished run and who made it.

use postgres::Client;
use serde::Serialize;

use crate::db::history::rfc3339;

#[derive(Clone, Debug, Serialize)]
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
    tx.batch_execute(
        "create schema if not exists plan_runner;
         create table if not exists plan_runner.runs (
             run_id      text primary key,
             target      text not null,
             host        text not null,
             pid         integer not null,
             plan        text not null,
             plan_sha256 text not null,
             started_at  timestamptz not null default now(),
             ended_at    timestamptz,
             state       text not null
         );",
    )?;
    tx.commit()
}

fn hostname() -> String {
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
) -> Result<(), postgres::Error> {
    ensure(client)?;
    client.execute(
        "insert into plan_runner.runs (run_id, target, host, pid, plan, plan_sha256, state)
         values ($1, $2, $3, $4, $5, $6, 'running')",
        &[
            &run_id,
            &target,
            &hostname(),
            &(std::process::id() as i32),
            &plan,
            &plan_sha256,
        ],
    )?;
    Ok(())
}

pub fn finish(client: &mut Client, run_id: &str, state: &str) -> Result<(), postgres::Error> {
    client.execute(
        "update plan_runner.runs set ended_at = now(), state = $2 where run_id = $1",
        &[&run_id, &state],
    )?;
    Ok(())
}

fn columns() -> String {
    format!(
        "run_id, target, host, pid, plan, plan_sha256, {}, case when ended_at is null then null else {} end, state",
        rfc3339("started_at"),
        rfc3339("ended_at")
    )
}

fn row_to_run(row: &postgres::Row) -> RunRow {
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
    }
}

fn table_exists(client: &mut Client) -> Result<bool, postgres::Error> {
    Ok(client
        .query_one("select to_regclass('plan_runner.runs') is not null", &[])?
        .get(0))
}

pub fn get(client: &mut Client, run_id: &str) -> Result<Option<RunRow>, postgres::Error> {
    if !table_exists(client)? {
        return Ok(None);
    }
    Ok(client
        .query_opt(
            &format!(
                "select {} from plan_runner.runs where run_id = $1",
                columns()
            ),
            &[&run_id],
        )?
        .map(|row| row_to_run(&row)))
}

/// Runs on `target` that started and never ended: running now, or their
/// runner died (the lock tells which), oldest first.
pub fn unfinished(client: &mut Client, target: &str) -> Result<Vec<RunRow>, postgres::Error> {
    if !table_exists(client)? {
        return Ok(Vec::new());
    }
    Ok(client
        .query(
            &format!(
                "select {} from plan_runner.runs
                 where target = $1 and state = 'running' and ended_at is null
                 order by started_at",
                columns()
            ),
            &[&target],
        )?
        .iter()
        .map(row_to_run)
        .collect())
}
