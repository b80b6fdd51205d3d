//! `plan status --inventory FILE (--all | --select K=V | --target a,b)`:
//! every selected target's release, last run and unfinished runs in one
//! table (or one JSON document), read a few targets at once with a fleet
//! run's bounds (`--jobs`, `--per-server`). Read only, like `plan status`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

use crate::cli::{OutputFormat, StatusArgs};
use crate::commands::{UsageError, connect, print};
use crate::db::{history, runs};
use crate::exec::sql::describe_error;
use crate::exit::Ending;
use crate::fleet::select::{self, Selection};
use crate::target::inventory::Inventory;
use crate::target::{Env, ResolvedTarget, TargetError};

/// One target's line.
#[derive(Debug, Default, Serialize)]
struct Row {
    name: String,
    /// `host:port`.
    server: String,
    database: String,
    /// The release its history records; null with no history.
    release: Option<String>,
    last_run: Option<history::Entry>,
    /// Runs of `plan_runner.runs` that never ended (running now, or their
    /// runner died: see `plan status --target NAME`).
    unfinished: usize,
    /// Why the target could not be read.
    error: Option<String>,
}

#[derive(Serialize)]
struct Document {
    format_version: u32,
    inventory: std::path::PathBuf,
    /// How many targets could not be read.
    unreadable: usize,
    targets: Vec<Row>,
}

pub fn run(args: &StatusArgs, selection: Selection) -> Result<Ending, UsageError> {
    let Some(path) = args.target.inventory.as_deref() else {
        return Err(UsageError::FleetWithoutInventory);
    };
    let inventory = Inventory::load(path).map_err(TargetError::from)?;
    let names = select::select(&inventory, &selection)?;
    let env = Env::from_process();
    let resolved: Vec<(String, Result<ResolvedTarget, String>)> = names
        .into_iter()
        .map(|name| {
            let result = crate::commands::resolve_member(&inventory, &name, &args.target, &env);
            (name, result)
        })
        .collect();
    let rows = read_all(&resolved, args.jobs, args.per_server);
    let doc = Document {
        format_version: 1,
        inventory: path.to_path_buf(),
        unreadable: rows.iter().filter(|r| r.error.is_some()).count(),
        targets: rows,
    };
    match args.format {
        OutputFormat::Json => {
            print(&(serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"));
        }
        OutputFormat::Human => print(&human(&doc)),
    }
    Ok(Ending::checked(doc.unreadable > 0))
}

/// Reads every target, at most `jobs` at once and `per_server` at once on
/// one server; the rows in the selection's order.
fn read_all(
    targets: &[(String, Result<ResolvedTarget, String>)],
    jobs: usize,
    per_server: usize,
) -> Vec<Row> {
    let server = |r: &Result<ResolvedTarget, String>| match r {
        Ok(t) => format!("{}:{}", t.target.host, t.target.port),
        Err(_) => String::new(),
    };
    // What is waiting, and how many reads each server has now.
    let state = Mutex::new((
        (0..targets.len()).collect::<Vec<usize>>(),
        BTreeMap::<String, usize>::new(),
    ));
    let rows: Mutex<Vec<Option<Row>>> = Mutex::new((0..targets.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1).min(targets.len()) {
            scope.spawn(|| {
                loop {
                    let next = {
                        let mut guard = state.lock().unwrap_or_else(|e| e.into_inner());
                        let (waiting, busy) = &mut *guard;
                        if waiting.is_empty() {
                            return;
                        }
                        let free = waiting.iter().position(|&i| {
                            let s = server(&targets[i].1);
                            s.is_empty() || busy.get(&s).copied().unwrap_or(0) < per_server
                        });
                        free.map(|at| {
                            let i = waiting.remove(at);
                            *busy.entry(server(&targets[i].1)).or_default() += 1;
                            i
                        })
                    };
                    let Some(i) = next else {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    };
                    let (name, target) = &targets[i];
                    let row = read(name, target);
                    let mut guard = state.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(n) = guard.1.get_mut(&server(target)) {
                        *n = n.saturating_sub(1);
                    }
                    drop(guard);
                    rows.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(row);
                }
            });
        }
    });
    rows.into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .flatten()
        .collect()
}

/// One target's release, last run and unfinished runs.
fn read(name: &str, resolved: &Result<ResolvedTarget, String>) -> Row {
    let mut row = Row {
        name: name.to_string(),
        ..Row::default()
    };
    let resolved = match resolved {
        Ok(r) => r,
        Err(error) => {
            row.error = Some(error.clone());
            return row;
        }
    };
    row.server = format!("{}:{}", resolved.target.host, resolved.target.port);
    row.database = resolved.target.database.clone();
    let result = (|| -> Result<(), String> {
        let mut client = connect(resolved, &row.database).map_err(|e| e.to_string())?;
        row.release = history::recorded_release(&mut client).map_err(|e| describe_error(&e))?;
        row.last_run = history::last(&mut client, 1)
            .map_err(|e| describe_error(&e))?
            .into_iter()
            .next();
        drop(client);
        let mut maintenance =
            connect(resolved, &resolved.maintenance_db).map_err(|e| e.to_string())?;
        row.unfinished = runs::unfinished(&mut maintenance, &row.database)
            .map_err(|e| describe_error(&e))?
            .len();
        Ok(())
    })();
    if let Err(error) = result {
        row.error = Some(error);
    }
    row
}

fn human(doc: &Document) -> String {
    let header = [
        "target",
        "server",
        "release",
        "last run",
        "outcome",
        "ended",
        "unfinished",
    ];
    let rows: Vec<[String; 7]> = doc
        .targets
        .iter()
        .map(|r| {
            let last = r.last_run.as_ref();
            [
                r.name.clone(),
                r.server.clone(),
                r.release.clone().unwrap_or_else(|| "-".into()),
                last.map_or_else(|| "-".into(), |e| e.run_id.clone()),
                last.map_or_else(|| "-".into(), |e| e.outcome.replace('_', " ")),
                last.map_or_else(|| "-".into(), |e| e.ended_at.clone()),
                r.unfinished.to_string(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[String]| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let _ = write!(text, "{cell:<width$}  ", width = widths[i]);
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&header.map(str::to_string));
    for row in &rows {
        line(row);
    }
    for r in doc.targets.iter().filter(|r| r.error.is_some()) {
        let _ = writeln!(
            out,
            "{}: cannot be read: {}",
            r.name,
            r.error.as_deref().unwrap_or_default()
        );
    }
    out
}
