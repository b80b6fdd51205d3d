//! Kept snapshots: found by the label in their comment (plan, target,
//! run and time), listed by `plan status` and `plan backups`, pruned by
//! `plan backups --prune`.

use postgres::Client;
use serde::Serialize;

use crate::db::quote::quote_ident;

const PREFIX: &str = "plan-runner backup of ";

/// The comment a kept snapshot carries.
pub fn label(database: &str, run_id: &str, plan: &str, target: &str) -> String {
    format!(
        "{PREFIX}{}: run {run_id}, plan \"{plan}\", target {target}, taken {}",
        serde_json::Value::String(database.into()),
        humantime::format_rfc3339_seconds(std::time::SystemTime::now())
    )
}

#[derive(Clone, Debug, Serialize)]
pub struct KeptSnapshot {
    pub name: String,
    pub label: String,
    pub bytes: i64,
}

/// Snapshots of `database` kept on the server, newest first (their names
/// end with the run id, which starts with the time).
pub fn list(
    maintenance: &mut Client,
    database: &str,
) -> Result<Vec<KeptSnapshot>, postgres::Error> {
    let exact = format!("{PREFIX}{}:", serde_json::Value::String(database.into()));
    // `_` and `%` are common in database names and are LIKE wildcards.
    let prefix = format!(
        "{}%",
        exact
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    );
    Ok(maintenance
        .query(
            "select datname::text, shobj_description(oid, 'pg_database'), pg_database_size(oid)
             from pg_database where shobj_description(oid, 'pg_database') like $1
             order by substring(shobj_description(oid, 'pg_database') from 'run ([0-9a-f]+)') desc",
            &[&prefix],
        )?
        .into_iter()
        .map(|row| KeptSnapshot {
            name: row.get(0),
            label: row.get(1),
            bytes: row.get(2),
        })
        .collect())
}

/// Drops a kept snapshot.
pub fn drop_snapshot(maintenance: &mut Client, name: &str) -> Result<(), postgres::Error> {
    maintenance.batch_execute(&format!("drop database if exists {}", quote_ident(name)))
}
