//! Kept snapshots: found by the label in their comment (plan, target,
//! run and time), listed by `plan status` and `plan backups`, pruned by
//! `plan backups --prune`.

use postgres::Client;
use serde::Serialize;

use crate::quote::quote_ident;

const PREFIX: &str = "plan-runner backup of ";

/// The comment a kept snapshot carries.
pub fn label(database: &str, run_id: &str, plan: &str, target: &str) -> String {
    format!(
        "{PREFIX}{}: run {run_id}, plan \"{plan}\", target {target}, taken {}",
        serde_json::Value::String(database.into()),
        // Milliseconds: two runs in one second must still sort in order
        // for `plan backups --prune`.
        crate::units::now_millis()
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

/// What a kept snapshot's comment says about it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Label {
    pub database: Option<String>,
    pub run_id: Option<String>,
    pub plan: Option<String>,
    pub target: Option<String>,
    /// RFC 3339.
    pub taken: Option<String>,
}

/// Reads back what [`label`] wrote. The database name is a JSON string
/// (it may hold anything); a plan name too may hold any character, so the
/// plan is what lies between `, plan "` and the last `", target `.
pub fn parse_label(text: &str) -> Label {
    let Some(rest) = text.strip_prefix(PREFIX) else {
        return Label::default();
    };
    let mut values = serde_json::Deserializer::from_str(rest).into_iter::<String>();
    let Some(Ok(database)) = values.next() else {
        return Label::default();
    };
    let rest = rest.get(values.byte_offset()..).unwrap_or_default();
    let Some(rest) = rest.strip_prefix(": run ") else {
        return Label {
            database: Some(database),
            ..Label::default()
        };
    };
    let (run_id, rest) = rest.split_once(", plan \"").unwrap_or((rest, ""));
    let (plan, rest) = match rest.rsplit_once("\", target ") {
        Some((plan, rest)) => (Some(plan.to_string()), rest),
        None => (None, ""),
    };
    let (target, taken) = match rest.rsplit_once(", taken ") {
        Some((target, taken)) => (Some(target.to_string()), Some(taken.to_string())),
        None => ((!rest.is_empty()).then(|| rest.to_string()), None),
    };
    Label {
        database: Some(database),
        run_id: Some(run_id.to_string()),
        plan,
        target,
        taken,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_label_reads_back_even_with_quotes_and_commas_in_the_plan() {
        let text = label(
            "acme",
            "2405011234560a1b",
            "odoo \"15\", target x",
            "acme (h:5432/acme)",
        );
        let parsed = parse_label(&text);
        assert_eq!(parsed.database.as_deref(), Some("acme"));
        assert_eq!(parsed.run_id.as_deref(), Some("2405011234560a1b"));
        assert_eq!(parsed.plan.as_deref(), Some("odoo \"15\", target x"));
        assert_eq!(parsed.target.as_deref(), Some("acme (h:5432/acme)"));
        let taken = parsed.taken.expect("a time");
        assert!(humantime::parse_rfc3339(&taken).is_ok(), "{taken}");
    }

    #[test]
    fn a_database_name_that_looks_like_the_label_reads_back() {
        let name = "x\": run 1, plan \"p";
        let parsed = parse_label(&label(name, "2405011234560a1b", "real", "t"));
        assert_eq!(parsed.database.as_deref(), Some(name));
        assert_eq!(parsed.run_id.as_deref(), Some("2405011234560a1b"));
        assert_eq!(parsed.plan.as_deref(), Some("real"));
    }

    #[test]
    fn a_foreign_comment_gives_nothing() {
        assert_eq!(parse_label("the accounting copy"), Label::default());
    }
}
