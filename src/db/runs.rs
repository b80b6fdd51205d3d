//! `plan_runner.runs` in the maintenance database: every run writes a row
//! before its first step and closes it at the end, so that any runner, on
//! any host and as any user, sees an unfinished run and who made it.

use postgres::Client;

#[derive(Clone, Debug)]
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
    client.batch_execute(
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
    )
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

pub fn get(client: &mut Client, run_id: &str) -> Result<Option<RunRow>, postgres::Error> {
    let exists: bool = client
        .query_one("select to_regclass('plan_runner.runs') is not null", &[])?
        .get(0);
    if !exists {
        return Ok(None);
    }
    Ok(client
        .query_opt(
            "select run_id, target, host, pid, plan, plan_sha256, started_at::text, ended_at::text, state
             from plan_runner.runs where run_id = $1",
            &[&run_id],
        )?
        .map(|row| RunRow {
            run_id: row.get(0),
            target: row.get(1),
            host: row.get(2),
            pid: row.get(3),
            plan: row.get(4),
            plan_sha256: row.get(5),
            started_at: row.get(6),
            ended_at: row.get(7),
            state: row.get(8),
        }))
}
