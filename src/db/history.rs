//! The history of runs kept in the target database itself (schema
//! `plan_runner`, left out of fingerprints): which release it is at, and
//! what ran.

use postgres::Client;
use serde::Serialize;

/// Creates the history table if missing.
pub fn ensure(client: &mut Client) -> Result<(), postgres::Error> {
    client.batch_execute(
        "create schema if not exists plan_runner;
         create table if not exists plan_runner.history (
             run_id       text primary key,
             plan         text not null,
             plan_sha256  text not null,
             from_release text not null,
             to_release   text not null,
             started_at   timestamptz not null,
             ended_at     timestamptz not null default now(),
             outcome      text not null,
             resumed      boolean not null default false,
             steps        jsonb not null default '[]'
         );
         alter table plan_runner.history add column if not exists resumed boolean not null default false;
         alter table plan_runner.history add column if not exists revision text;
         alter table plan_runner.history add column if not exists modules jsonb not null default '[]';
         alter table plan_runner.history add column if not exists chain_id text;",
    )
}

/// The release the last successful run recorded, if any.
pub fn recorded_release(client: &mut Client) -> Result<Option<String>, postgres::Error> {
    let exists: bool = client
        .query_one("select to_regclass('plan_runner.history') is not null", &[])?
        .get(0);
    if !exists {
        return Ok(None);
    }
    Ok(client
        .query_opt(
            "select to_release from plan_runner.history where outcome = 'succeeded'
             order by ended_at desc limit 1",
            &[],
        )?
        .map(|row| row.get(0)))
}

/// One row of history.
#[derive(Clone, Debug, Serialize)]
pub struct Entry {
    pub run_id: String,
    pub plan: String,
    pub plan_sha256: String,
    pub from_release: String,
    pub to_release: String,
    /// RFC 3339.
    pub started_at: String,
    pub ended_at: String,
    pub outcome: String,
    pub resumed: bool,
    /// `[{"name": ..., "kind": ..., "status": ..., "seconds": ...}]`
    pub steps: serde_json::Value,
    /// The code the run deployed, such as a git commit of the addons
    /// (`revision`, `--revision`).
    pub revision: Option<String>,
    /// The installed modules whose version the run changed:
    /// `[{"name": ..., "from": ..., "to": ...}]` (`null` for a module not
    /// installed on that side).
    pub modules: serde_json::Value,
    /// The chain's run id, on each hop's row (whose own run id is
    /// `<chain id>-<hop>`); null for a run of one plan.
    pub chain_id: Option<String>,
}

pub fn record(client: &mut Client, entry: &Entry) -> Result<(), postgres::Error> {
    ensure(client)?;
    let steps = entry.steps.to_string();
    let modules = entry.modules.to_string();
    client.execute(
        "insert into plan_runner.history
             (run_id, plan, plan_sha256, from_release, to_release, started_at, ended_at, outcome, resumed, steps,
              revision, modules, chain_id)
         values ($1, $2, $3, $4, $5, $6::text::timestamptz, $7::text::timestamptz, $8, $9, $10::text::jsonb,
                 $11, $12::text::jsonb, $13)
         on conflict (run_id) do update set ended_at = excluded.ended_at, outcome = excluded.outcome,
             resumed = history.resumed or excluded.resumed, steps = excluded.steps,
             revision = excluded.revision, modules = excluded.modules",
        &[
            &entry.run_id,
            &entry.plan,
            &entry.plan_sha256,
            &entry.from_release,
            &entry.to_release,
            &entry.started_at,
            &entry.ended_at,
            &entry.outcome,
            &entry.resumed,
            &steps,
            &entry.revision,
            &modules,
            &entry.chain_id,
        ],
    )?;
    Ok(())
}

/// The last successful run that took the database to `release` with
/// `revision`: its run id and end (RFC 3339), for a refresh that must not
/// run the same code twice.
pub fn done_with_revision(
    client: &mut Client,
    release: &str,
    revision: &str,
) -> Result<Option<(String, String)>, postgres::Error> {
    let exists: bool = client
        .query_one("select to_regclass('plan_runner.history') is not null", &[])?
        .get(0);
    if !exists {
        return Ok(None);
    }
    Ok(client
        .query_opt(
            &format!(
                // A table from before revisions were recorded has none.
                "select run_id, {} from plan_runner.history h
                  where outcome = 'succeeded' and to_release = $1
                    and to_jsonb(h) ->> 'revision' = $2
                  order by ended_at desc limit 1",
                rfc3339("ended_at")
            ),
            &[&release, &revision],
        )?
        .map(|row| (row.get(0), row.get(1))))
}

/// A timestamptz column as RFC 3339 in UTC, whatever the session's
/// `DateStyle` and `TimeZone` (`::text` follows them, and is not RFC 3339).
pub fn rfc3339(column: &str) -> String {
    format!("to_char({column} at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')")
}

/// The last `n` runs, newest first.
pub fn last(client: &mut Client, n: i64) -> Result<Vec<Entry>, postgres::Error> {
    let exists: bool = client
        .query_one("select to_regclass('plan_runner.history') is not null", &[])?
        .get(0);
    if !exists {
        return Ok(Vec::new());
    }
    Ok(client
        .query(
            &format!(
                "select run_id, plan, plan_sha256, from_release, to_release, {}, {},
                        outcome, resumed, steps::text,
                        -- Read so that a table from before these columns
                        -- (status never alters it) still reads.
                        to_jsonb(h) ->> 'revision', coalesce(to_jsonb(h) -> 'modules', '[]')::text,
                        to_jsonb(h) ->> 'chain_id'
                 from plan_runner.history h order by ended_at desc limit $1",
                rfc3339("started_at"),
                rfc3339("ended_at")
            ),
            &[&n],
        )?
        .into_iter()
        .map(|row| Entry {
            run_id: row.get(0),
            plan: row.get(1),
            plan_sha256: row.get(2),
            from_release: row.get(3),
            to_release: row.get(4),
            started_at: row.get(5),
            ended_at: row.get(6),
            outcome: row.get(7),
            resumed: row.get(8),
            steps: serde_json::from_str(&row.get::<_, String>(9)).unwrap_or_default(),
            revision: row.get(10),
            modules: serde_json::from_str(&row.get::<_, String>(11)).unwrap_or_default(),
            chain_id: row.get(12),
        })
        .collect())
}
