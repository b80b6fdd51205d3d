//! `sql` steps (one transaction) and `check` steps with `sql` (a read-only
//! transaction; exactly one row of one column, compared as text).

use std::time::Duration;

use postgres::{Client, SimpleQueryMessage};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum SqlError {
    #[error("{0}")]
    Server(#[from] postgres::Error),
    #[error(
        "the query returned {rows} row(s) of {columns} column(s); a check needs exactly one value"
    )]
    Shape { rows: usize, columns: usize },
    #[error("expected `{expected}`, the query returned {}", found.as_deref().map(|f| format!("`{f}`")).unwrap_or_else(|| "NULL".into()))]
    Mismatch {
        expected: String,
        found: Option<String>,
    },
}

impl SqlError {
    /// The server's message with its detail and hint, for the report.
    pub fn describe(&self) -> String {
        match self {
            SqlError::Server(e) => describe_error(e),
            other => other.to_string(),
        }
    }
}

/// A server error as the server put it (severity, message, detail, hint):
/// `postgres::Error` alone displays only "db error".
pub fn describe_error(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut out = format!("{}: {}", db.severity(), db.message());
            if let Some(detail) = db.detail() {
                out.push_str(&format!("\nDETAIL: {detail}"));
            }
            if let Some(hint) = db.hint() {
                out.push_str(&format!("\nHINT: {hint}"));
            }
            out
        }
        // The client's own errors say what failed in their causes
        // ("error performing TLS handshake" alone hides the certificate's
        // name; "error connecting to server" the refused connection).
        None => {
            let mut out = e.to_string();
            let mut next = std::error::Error::source(e);
            while let Some(cause) = next {
                out.push_str(": ");
                out.push_str(&cause.to_string());
                next = cause.source();
            }
            out
        }
    }
}

/// Runs `sql` in one transaction, with `timeout` as statement_timeout.
pub fn run(client: &mut Client, sql: &str, timeout: Option<Duration>) -> Result<(), SqlError> {
    let mut tx = client.transaction()?;
    if let Some(t) = timeout {
        tx.batch_execute(&format!("set local statement_timeout = {}", t.as_millis()))?;
    }
    tx.batch_execute(sql)?;
    tx.commit()?;
    Ok(())
}

/// Runs a check's query read-only and compares its single value, in
/// PostgreSQL's text form, with `expect`, exactly; NULL never matches.
pub fn check(
    client: &mut Client,
    sql: &str,
    expect: &str,
    timeout: Option<Duration>,
) -> Result<(), SqlError> {
    let mut tx = client.build_transaction().read_only(true).start()?;
    if let Some(t) = timeout {
        tx.batch_execute(&format!("set local statement_timeout = {}", t.as_millis()))?;
    }
    // The simple protocol returns every value in its text form.
    let messages = tx.simple_query(sql)?;
    tx.rollback()?;
    let rows: Vec<_> = messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(row),
            _ => None,
        })
        .collect();
    let columns = rows.first().map(|r| r.len()).unwrap_or(0);
    if rows.len() != 1 || columns != 1 {
        return Err(SqlError::Shape {
            rows: rows.len(),
            columns,
        });
    }
    let found = rows[0].get(0).map(str::to_string);
    if found.as_deref() == Some(expect) {
        Ok(())
    } else {
        Err(SqlError::Mismatch {
            expected: expect.into(),
            found,
        })
    }
}
