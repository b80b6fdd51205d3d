//! Database backups and their restore. A snapshot is a copy made by the
//! server (`CREATE DATABASE ... TEMPLATE`), restored by renaming it into
//! place; a dump is `pg_dump -Fd` into the run folder, restored with
//! `pg_restore` into a new database that is then renamed into place. In
//! both, the failed database is renamed aside in the same transaction that
//! renames the backup into place, so there is never a moment without the
//! target, and it is dropped only after the restore is proved.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use postgres::Client;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::db::connect::Connector;
use crate::db::fingerprint::{self, DatabaseProps, Fingerprint};
use crate::db::server::ServerVersion;
use crate::db::sessions::{self, Session};
use crate::exec::paths::{self, PathError, TreeBackup};
use crate::pg_programs::{ClientProgram, NoClient, client_for};
use crate::plan::BackupMethod;
use crate::quote::{fit_name, quote_ident, quote_literal};

#[derive(Debug, Error, miette::Diagnostic)]
pub enum BackupError {
    #[error("database `{database}` does not exist")]
    #[diagnostic(code(plan::backup::no_database))]
    NoDatabase { database: String },

    #[error("{} other session(s) are connected to `{database}`:\n{}", sessions.len(), sessions.iter().map(|s| format!("  - {s}")).collect::<Vec<_>>().join("\n"))]
    #[diagnostic(
        code(plan::backup::sessions),
        help(
            "a snapshot needs the database to itself: stop these clients (the ERP server, cron, psql), or run again with --terminate-connections to end them"
        )
    )]
    Sessions {
        database: String,
        sessions: Vec<Session>,
    },

    #[error("the database server refused: {}", crate::exec::sql::describe_error(.0))]
    #[diagnostic(code(plan::backup::sql))]
    Sql(#[from] postgres::Error),

    #[error("`{program}` failed: {detail}")]
    #[diagnostic(code(plan::backup::tool))]
    Tool { program: String, detail: String },

    #[error(transparent)]
    #[diagnostic(transparent)]
    Paths(#[from] PathError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    NoClient(#[from] NoClient),

    #[error("cannot write the dump into `{}`", path.display())]
    #[diagnostic(code(plan::backup::io))]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A backup as taken: enough to restore it and prove the restore, and to
/// list it later.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Taken {
    pub step: String,
    pub method: BackupMethod,
    /// The database backed up.
    pub database: String,
    /// The snapshot database's name, or the dump folder.
    pub copy: String,
    pub fingerprint: Fingerprint,
    /// Whether the database accepted connections when it was backed up.
    pub allowed_connections: bool,
    pub trees: Vec<TreeBackup>,
    pub keep: bool,
    pub seconds: f64,
    pub fingerprint_seconds: f64,
    pub bytes: i64,
    /// The `pg_dump` that wrote a dump: its restore needs a `pg_restore`
    /// at least as new. (Absent from backups recorded before it was.)
    /// (Boxed: a journal record carries a `Taken`, and every record is
    /// as large as the largest.)
    #[serde(default)]
    pub program: Option<Box<ClientProgram>>,
}

/// How to treat other sessions on the database being copied.
#[derive(Clone, Copy, Debug)]
pub struct SessionPolicy {
    pub terminate: bool,
    pub wait: Duration,
}

/// What a backup needs to know about the run.
pub struct Context<'a> {
    pub connector: &'a Connector,
    pub maintenance: &'a mut Client,
    pub run_id: &'a str,
    pub run_folder: &'a Path,
    /// `plan NAME, target T, taken at TIME`.
    pub label: String,
    pub sessions: SessionPolicy,
    pub server_version: ServerVersion,
    pub jobs: usize,
}

/// The name of a snapshot of `database` for this run.
pub fn snapshot_name(database: &str, run_id: &str) -> String {
    fit_name(database, &format!("_pr_{run_id}"))
}

/// The name of this run's next snapshot of `database`: `<db>_pr_<run id>`
/// for the first, `<db>_pr2_<run id>` and so on for later ones (a plan may
/// back a database up twice; a rollback restores the earliest).
pub fn free_snapshot_name(
    maintenance: &mut Client,
    database: &str,
    run_id: &str,
) -> Result<String, postgres::Error> {
    let mut name = snapshot_name(database, run_id);
    let mut n = 2;
    while maintenance
        .query_opt("select 1 from pg_database where datname = $1", &[&name])?
        .is_some()
    {
        name = fit_name(database, &format!("_pr{n}_{run_id}"));
        n += 1;
    }
    Ok(name)
}

/// What a rollback renames the failed database to.
pub fn failed_name(database: &str, run_id: &str) -> String {
    fit_name(database, &format!("_failed_{run_id}"))
}

/// The database a dump is loaded into before it is renamed into place.
pub fn restore_name(database: &str, run_id: &str) -> String {
    fit_name(database, &format!("_rs_{run_id}"))
}

/// Takes a backup of `database` and of `trees`.
pub fn take(
    ctx: &mut Context<'_>,
    step: &str,
    method: BackupMethod,
    database: &str,
    trees: &[PathBuf],
    keep: bool,
) -> Result<Taken, BackupError> {
    let started = Instant::now();
    let props = fingerprint::database_props(ctx.maintenance, database)?.ok_or_else(|| {
        BackupError::NoDatabase {
            database: database.into(),
        }
    })?;
    let allowed = sessions::allows_connections(ctx.maintenance, database)?;
    let (copy, fingerprint, cost, program) = match method {
        BackupMethod::Snapshot => {
            let (copy, fingerprint, cost) = snapshot(ctx, database, &props, allowed)?;
            (copy, fingerprint, cost, None)
        }
        BackupMethod::Dump => {
            let server = ctx.server_version.major();
            let program = client_for("pg_dump", server, server)?;
            let (copy, fingerprint, cost) = dump(ctx, step, database, &props, &program)?;
            (copy, fingerprint, cost, Some(Box::new(program)))
        }
    };
    let mut taken_trees = Vec::new();
    for tree in trees {
        match paths::back_up(tree, ctx.run_id) {
            Ok(t) => taken_trees.push(t),
            Err(e) => {
                // Leave nothing half-made behind a failed backup.
                for t in &taken_trees {
                    let _ = paths::remove(&t.copy);
                }
                discard_copy(ctx.maintenance, method, &copy);
                return Err(e.into());
            }
        }
    }
    Ok(Taken {
        step: step.into(),
        method,
        database: database.into(),
        copy,
        fingerprint,
        allowed_connections: allowed,
        trees: taken_trees,
        keep,
        seconds: started.elapsed().as_secs_f64(),
        fingerprint_seconds: cost.elapsed.as_secs_f64(),
        bytes: cost.bytes,
        program,
    })
}

/// Makes sure nobody else is connected to `database`, ending sessions if
/// the policy says so, and the server's workers on it in any case (they
/// are nobody's session, but block the copy). Returns whether connections
/// were blocked (the caller re-allows them).
fn be_alone(ctx: &mut Context<'_>, database: &str, allowed: bool) -> Result<bool, BackupError> {
    let mut remaining = sessions::wait_until_alone(ctx.maintenance, database, Duration::ZERO)?;
    if !remaining.is_empty() && !ctx.sessions.terminate {
        remaining = sessions::wait_until_alone(ctx.maintenance, database, ctx.sessions.wait)?;
        if !remaining.is_empty() {
            return Err(BackupError::Sessions {
                database: database.into(),
                sessions: remaining,
            });
        }
    }
    if remaining.is_empty() && sessions::workers(ctx.maintenance, database)?.is_empty() {
        return Ok(false);
    }
    if allowed {
        sessions::set_allow_connections(ctx.maintenance, database, false)?;
    }
    let remaining = sessions::terminate(ctx.maintenance, database, ctx.sessions.wait)?;
    if !remaining.is_empty() {
        if allowed {
            sessions::set_allow_connections(ctx.maintenance, database, true)?;
        }
        return Err(BackupError::Sessions {
            database: database.into(),
            sessions: remaining,
        });
    }
    Ok(allowed)
}

fn snapshot(
    ctx: &mut Context<'_>,
    database: &str,
    props: &DatabaseProps,
    allowed: bool,
) -> Result<(String, Fingerprint, fingerprint::Cost), BackupError> {
    let name = free_snapshot_name(ctx.maintenance, database, ctx.run_id)?;
    copy_database(ctx, database, &name, &props.owner, allowed)?;
    let result = (|| -> Result<_, BackupError> {
        let mut copy = ctx.connector.connect(&name)?;
        let (fp, cost) = fingerprint::take(&mut copy, props.clone())?;
        drop(copy);
        copy_props(ctx.maintenance, props, &name, Some(&ctx.label))?;
        // No ERP cron must run on a kept snapshot.
        sessions::set_allow_connections(ctx.maintenance, &name, false)?;
        Ok((fp, cost))
    })();
    match result {
        Ok((fp, cost)) => Ok((name, fp, cost)),
        Err(e) => {
            discard_copy(ctx.maintenance, BackupMethod::Snapshot, &name);
            Err(e)
        }
    }
}

/// Copies `database` as `name` (owned by `owner`) on the server, once no
/// other session is connected to it (as the session policy says). Shared
/// by snapshots and a rehearsal's copy.
pub fn copy_database(
    ctx: &mut Context<'_>,
    database: &str,
    name: &str,
    owner: &str,
    allowed: bool,
) -> Result<(), BackupError> {
    let blocked = be_alone(ctx, database, allowed)?;
    // FILE_COPY copies the files as they are (about the speed of `cp -r`);
    // the default WAL_LOG strategy of 15 writes every block to the WAL.
    let strategy = if ctx.server_version.has_create_strategy() {
        " strategy file_copy"
    } else {
        ""
    };
    // On 18 the server's `file_copy_method` decides how the files are
    // copied; `clone` (set by the administrator where the data directory
    // is on XFS or Btrfs) makes this nearly free, but is slower than
    // `copy` elsewhere (docs/performance.md), so it is not forced here.
    let created = ctx.maintenance.batch_execute(&format!(
        "create database {} template {} owner {}{strategy}",
        quote_ident(name),
        quote_ident(database),
        quote_ident(owner)
    ));
    if blocked {
        sessions::set_allow_connections(ctx.maintenance, database, true)?;
    }
    created?;
    Ok(())
}

fn dump(
    ctx: &mut Context<'_>,
    step: &str,
    database: &str,
    props: &DatabaseProps,
    program: &ClientProgram,
) -> Result<(String, Fingerprint, fingerprint::Cost), BackupError> {
    let folder = ctx.run_folder.join(format!("dump-{step}"));
    let partial = ctx.run_folder.join(format!("dump-{step}.partial"));
    let mut client = ctx.connector.connect(database)?;
    let mut tx = client
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()?;
    // The fingerprint and the dump read the same snapshot of the data.
    let snapshot: String = tx.query_one("select pg_export_snapshot()", &[])?.get(0);
    let jobs = ctx.jobs.max(1).to_string();
    let handle = duct::cmd(
        &program.path,
        [
            "-Fd".into(),
            "-j".into(),
            jobs,
            "--snapshot".into(),
            snapshot,
            "-f".into(),
            partial.to_string_lossy().into_owned(),
            "-d".into(),
            database.to_string(),
        ],
    )
    .full_env(child_env(ctx.connector.env_for(database)))
    .stdin_null()
    .stdout_null()
    .stderr_capture()
    .unchecked()
    .start()
    .map_err(|e| BackupError::Tool {
        program: "pg_dump".into(),
        detail: e.to_string(),
    })?;
    let fingerprinted = fingerprint::take(&mut tx, props.clone());
    let output = handle.wait().map_err(|e| BackupError::Tool {
        program: "pg_dump".into(),
        detail: e.to_string(),
    })?;
    tx.commit()?;
    let (fp, cost) = fingerprinted?;
    if !output.status.success() {
        let _ = paths::remove(&partial);
        return Err(BackupError::Tool {
            program: "pg_dump".into(),
            detail: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    std::fs::rename(&partial, &folder).map_err(|source| BackupError::Io {
        path: folder.clone(),
        source,
    })?;
    Ok((folder.to_string_lossy().into_owned(), fp, cost))
}

/// The environment of a PostgreSQL tool: ours, minus any libpq variable,
/// plus the target's.
fn child_env(target: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| !k.starts_with("PG"))
        .collect();
    env.extend(target);
    env
}

/// Drops a copy that will not be used (a failed backup, or `keep = false`
/// after success). Best effort: the caller reports the copy if it stays.
pub fn discard_copy(maintenance: &mut Client, method: BackupMethod, copy: &str) -> bool {
    match method {
        BackupMethod::Snapshot => maintenance
            .batch_execute(&format!("drop database if exists {}", quote_ident(copy)))
            .is_ok(),
        BackupMethod::Dump => paths::remove(Path::new(copy)).is_ok(),
    }
}

/// Gives database `to` the properties in `props`: owner, privileges,
/// settings, connection limit, and a comment (`label` instead of the
/// original's, for a kept backup).
pub fn copy_props(
    maintenance: &mut Client,
    props: &DatabaseProps,
    to: &str,
    label: Option<&str>,
) -> Result<(), postgres::Error> {
    let db = quote_ident(to);
    let mut sql = format!(
        "alter database {db} owner to {};\n",
        quote_ident(&props.owner)
    );
    if let Some(acl) = &props.acl {
        sql.push_str(&format!(
            "revoke all on database {db} from public;\nrevoke all on database {db} from {};\n",
            quote_ident(&props.owner)
        ));
        let grants = maintenance.query(
            "select coalesce(pg_get_userbyid(nullif(grantee, 0)), 'public')::text, privilege_type, is_grantable
             from aclexplode($1::text::aclitem[]) where grantee = 0 or pg_get_userbyid(grantee) is not null",
            &[acl],
        )?;
        for row in grants {
            let (grantee, privilege, grantable): (String, String, bool) =
                (row.get(0), row.get(1), row.get(2));
            let grantee = if grantee == "public" {
                "public".to_string()
            } else {
                quote_ident(&grantee)
            };
            sql.push_str(&format!(
                "grant {privilege} on database {db} to {grantee}{};\n",
                if grantable { " with grant option" } else { "" }
            ));
        }
    }
    // Settings of the target are reset first: a restored copy must carry
    // exactly the recorded ones.
    sql.push_str(&format!("alter database {db} reset all;\n"));
    for setting in &props.settings {
        let Some((role, assignment)) = setting.split_once(':') else {
            continue;
        };
        let Some((name, value)) = assignment.split_once('=') else {
            continue;
        };
        // Settings whose elements the server stores as quoted identifiers
        // (search_path) are given back in that SQL form; every other one
        // as one literal, even with commas in it (`DateStyle = 'ISO, DMY'`,
        // `application_name = 'a, b'`), as pg_dump does.
        let value = if is_identifier_list(name) {
            value.to_string()
        } else {
            quote_literal(value)
        };
        if role.is_empty() {
            sql.push_str(&format!(
                "alter database {db} set {} to {value};\n",
                quote_ident(name)
            ));
        } else {
            sql.push_str(&format!(
                "alter role {} in database {db} set {} to {value};\n",
                quote_ident(role),
                quote_ident(name)
            ));
        }
    }
    sql.push_str(&format!(
        "alter database {db} connection limit {};\n",
        props.connection_limit
    ));
    let comment = label.map(str::to_string).or_else(|| props.comment.clone());
    sql.push_str(&format!(
        "comment on database {db} is {};\n",
        comment
            .as_deref()
            .map(quote_literal)
            .unwrap_or_else(|| "null".into())
    ));
    maintenance.batch_execute(&sql)
}

/// The settings the server stores as lists of quoted identifiers
/// (`GUC_LIST_QUOTE`): the same list as pg_dump's.
fn is_identifier_list(name: &str) -> bool {
    [
        "local_preload_libraries",
        "search_path",
        "session_preload_libraries",
        "shared_preload_libraries",
        "temp_tablespaces",
        "unix_socket_directories",
    ]
    .iter()
    .any(|list| list.eq_ignore_ascii_case(name))
}

/// Times of a rollback's parts, reported separately.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RestoreTimes {
    pub blocking_s: f64,
    pub terminating_s: f64,
    pub renaming_s: f64,
    /// pg_restore, for a dump.
    pub loading_s: f64,
    /// The `pg_restore` that loaded it.
    pub loaded_with: Option<ClientProgram>,
}

/// Puts a backed-up database back in place. Returns the name the failed
/// database now has (if it still existed).
pub fn restore(
    ctx: &mut Context<'_>,
    taken: &Taken,
    times: &mut RestoreTimes,
) -> Result<Option<String>, BackupError> {
    let database = &taken.database;
    let incoming = match taken.method {
        BackupMethod::Snapshot => taken.copy.clone(),
        BackupMethod::Dump => {
            let started = Instant::now();
            let (name, program) = load_dump(ctx, taken)?;
            times.loading_s = started.elapsed().as_secs_f64();
            times.loaded_with = Some(program);
            name
        }
    };
    let exists = fingerprint::database_props(ctx.maintenance, database)?.is_some();
    let failed = failed_name(database, ctx.run_id);
    if exists {
        let started = Instant::now();
        sessions::set_allow_connections(ctx.maintenance, database, false)?;
        times.blocking_s = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let left = sessions::terminate(ctx.maintenance, database, Duration::from_secs(10))?;
        times.terminating_s = started.elapsed().as_secs_f64();
        if !left.is_empty() {
            return Err(BackupError::Sessions {
                database: database.clone(),
                sessions: left,
            });
        }
    }
    let started = Instant::now();
    // Both renames in one transaction: the target never goes missing.
    let mut tx = ctx.maintenance.transaction()?;
    if exists {
        tx.batch_execute(&format!(
            "alter database {} rename to {}",
            quote_ident(database),
            quote_ident(&failed)
        ))?;
    }
    tx.batch_execute(&format!(
        "alter database {} rename to {}",
        quote_ident(&incoming),
        quote_ident(database)
    ))?;
    tx.commit()?;
    times.renaming_s = started.elapsed().as_secs_f64();
    crate::exec::pause::point(crate::exec::pause::ROLLBACK_RENAMED, ctx.run_folder);
    finish_restore(ctx, taken)?;
    Ok(exists.then_some(failed))
}

/// Gives the database renamed into place the properties and the
/// connection setting it had when it was backed up (a snapshot carries the
/// backup's label and refuses connections).
pub fn finish_restore(ctx: &mut Context<'_>, taken: &Taken) -> Result<(), BackupError> {
    copy_props(
        ctx.maintenance,
        &taken.fingerprint.database,
        &taken.database,
        None,
    )?;
    sessions::set_allow_connections(ctx.maintenance, &taken.database, taken.allowed_connections)?;
    Ok(())
}

/// The locale provider options of `CREATE DATABASE` that give a database
/// made from `template0` the provider and locale `props` recorded: without
/// them it gets the cluster's default provider, and an ICU or builtin
/// database would come back as libc, sorting its text differently.
fn locale_options(props: &DatabaseProps) -> String {
    let locale = props.locale.as_deref().map(quote_literal);
    match (props.locale_provider.as_deref(), locale) {
        (Some("i"), Some(locale)) => {
            let rules = props
                .icu_rules
                .as_deref()
                .map(|rules| format!(" icu_rules {}", quote_literal(rules)))
                .unwrap_or_default();
            format!(" locale_provider icu icu_locale {locale}{rules}")
        }
        (Some("b"), Some(locale)) => format!(" locale_provider builtin builtin_locale {locale}"),
        (Some("c"), _) => " locale_provider libc".into(),
        _ => String::new(),
    }
}

/// Restores a dump into a new database under a temporary name.
fn load_dump(ctx: &mut Context<'_>, taken: &Taken) -> Result<(String, ClientProgram), BackupError> {
    // As new as the server and as the pg_dump that wrote the dump
    // (whose archive an older pg_restore cannot read); chosen before
    // anything is created.
    let server = ctx.server_version.major();
    let needed = server.max(taken.program.as_ref().map_or(0, |p| p.major));
    let program = client_for("pg_restore", server, needed)?;
    let name = restore_name(&taken.database, ctx.run_id);
    let props = &taken.fingerprint.database;
    ctx.maintenance
        .batch_execute(&format!("drop database if exists {}", quote_ident(&name)))?;
    ctx.maintenance.batch_execute(&format!(
        "create database {} template template0 owner {} encoding {} lc_collate {} lc_ctype {}{}",
        quote_ident(&name),
        quote_ident(&props.owner),
        quote_literal(&props.encoding),
        quote_literal(&props.collate),
        quote_literal(&props.ctype),
        locale_options(props)
    ))?;
    run_restore(ctx, &program, &name, Path::new(&taken.copy), &[])?;
    Ok((name, program))
}

/// Loads the dump at `dump` into the existing database `name` with
/// `program` (`extra`: more pg_restore options); on failure the
/// database is dropped.
pub fn run_restore(
    ctx: &mut Context<'_>,
    program: &ClientProgram,
    name: &str,
    dump: &Path,
    extra: &[&str],
) -> Result<(), BackupError> {
    let mut args: Vec<String> = vec![
        "-j".to_string(),
        ctx.jobs.max(1).to_string(),
        "--exit-on-error".into(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    args.extend([
        "-d".into(),
        name.to_string(),
        dump.to_string_lossy().into_owned(),
    ]);
    let output = duct::cmd(&program.path, args)
        .full_env(child_env(ctx.connector.env_for(name)))
        .stdin_null()
        .stdout_null()
        .stderr_capture()
        .unchecked()
        .run()
        .map_err(|e| BackupError::Tool {
            program: "pg_restore".into(),
            detail: e.to_string(),
        })?;
    if !output.status.success() {
        let _ = ctx
            .maintenance
            .batch_execute(&format!("drop database if exists {}", quote_ident(name)));
        return Err(BackupError::Tool {
            program: "pg_restore".into(),
            detail: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(())
}

/// Fingerprints `database` as it is now, for the proof.
pub fn fingerprint_now(ctx: &mut Context<'_>, database: &str) -> Result<Fingerprint, BackupError> {
    let props = fingerprint::database_props(ctx.maintenance, database)?.ok_or_else(|| {
        BackupError::NoDatabase {
            database: database.into(),
        }
    })?;
    let mut client = ctx.connector.connect(database)?;
    Ok(fingerprint::take(&mut client, props)?.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(provider: Option<&str>, locale: Option<&str>, rules: Option<&str>) -> DatabaseProps {
        DatabaseProps {
            owner: "erp".into(),
            acl: None,
            settings: Vec::new(),
            connection_limit: -1,
            comment: None,
            encoding: "UTF8".into(),
            collate: "C.UTF-8".into(),
            ctype: "C.UTF-8".into(),
            locale_provider: provider.map(Into::into),
            locale: locale.map(Into::into),
            icu_rules: rules.map(Into::into),
        }
    }

    #[test]
    fn a_dump_is_loaded_with_the_recorded_locale_provider() {
        assert_eq!(locale_options(&props(None, None, None)), "");
        assert_eq!(
            locale_options(&props(Some("c"), None, None)),
            " locale_provider libc"
        );
        assert_eq!(
            locale_options(&props(Some("i"), Some("sv-SE"), None)),
            " locale_provider icu icu_locale 'sv-SE'"
        );
        assert_eq!(
            locale_options(&props(Some("i"), Some("und"), Some("&a < b"))),
            " locale_provider icu icu_locale 'und' icu_rules '&a < b'"
        );
        assert_eq!(
            locale_options(&props(Some("b"), Some("C.UTF-8"), None)),
            " locale_provider builtin builtin_locale 'C.UTF-8'"
        );
    }
}
