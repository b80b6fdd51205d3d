//! `plan apply --dry-run`: what a run would do and what it would find,
//! without changing anything: no run folder, no journal, no lock taken, no
//! row in the runs table, no history table created; the release query runs
//! in a read-only transaction.

use std::fmt::Write as _;
use std::path::Path;

use postgres::Client;

use super::{Run, server_version};
use crate::db::conninfo::Host;
use crate::db::{lock, runs, sessions};
use crate::exec::run::Options;
use crate::exec::space::{self, DataDirectory, data_directory, tree_size};
use crate::exit::Outcome;
use crate::plan::{Action, BackupMethod, Check, Command, Plan, Sql, Step, Text};
use crate::quote::{shell_quote, shell_word};
use crate::units::bytes;

/// Prints what `apply` would do. Exit 0 when the run would start, 4 when
/// it would be refused, 2 when the server cannot be reached.
pub fn dry_run(
    plan: &Plan,
    order: &[usize],
    failure_order: &[usize],
    opts: &Options,
    local_server: bool,
) -> (String, Outcome) {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "dry run of \"{}\" ({} -> {}) on {}: nothing is changed",
        plan.name, plan.from, plan.to, opts.target
    );
    for (name, value) in &plan.vars {
        let _ = writeln!(out, "  var {name} = {value}");
    }
    let mut run = Run::new(plan, opts, super::Signals::Ignored);
    let mut outcome = Outcome::Succeeded;
    let mut refuse = |out: &mut String, line: String| {
        let _ = writeln!(out, "  WOULD REFUSE: {line}");
        outcome = Outcome::Refused;
    };
    let _ = writeln!(out, "\nchecks against the target:");
    if let Some(refusal) = opts.erp_config.as_ref().and_then(|s| s.refusal()) {
        refuse(&mut out, refusal.replace('\n', "\n    "));
    }
    let maintenance = match run.maintenance() {
        Ok(m) => m,
        Err(e) => {
            let user = opts.connector.user();
            if let Some(refusal) =
                crate::db::privileges::connect_refusal(&e, user, &opts.maintenance_db)
            {
                refuse(&mut out, refusal.replace('\n', "\n  "));
                return (out, Outcome::Refused);
            }
            let _ = writeln!(
                out,
                "  cannot connect to the server: {}",
                crate::exec::sql::SqlError::from(e).describe()
            );
            return (out, Outcome::Error);
        }
    };
    match server_version(maintenance) {
        Ok(v) => match v.refusal() {
            None => {
                let _ = writeln!(out, "  server: PostgreSQL {v}");
            }
            Some(refusal) => refuse(&mut out, refusal),
        },
        Err(e) => refuse(&mut out, format!("cannot read the server version: {e}")),
    }
    match lock::holder(maintenance, &opts.database) {
        Ok(Some(h)) => refuse(
            &mut out,
            format!(
                "another plan-runner holds the lock on `{}` ({}, server pid {})",
                opts.database, h.application, h.pid
            ),
        ),
        Ok(None) => match runs::unfinished(maintenance, &opts.database) {
            Ok(rows) => match rows.last() {
                Some(row) => {
                    let message = super::recover::unfinished_message(row, &opts.target_flags);
                    refuse(&mut out, message.replace('\n', "\n    "));
                }
                None => {
                    let _ = writeln!(out, "  lock: free; no unfinished run");
                }
            },
            Err(e) => refuse(&mut out, format!("cannot read plan_runner.runs: {e}")),
        },
        Err(e) => refuse(&mut out, format!("cannot look for the lock's holder: {e}")),
    }
    let needs = run.privilege_needs();
    let maintenance = match run.maintenance() {
        Ok(m) => m,
        Err(e) => {
            let _ = writeln!(out, "  cannot connect to the server: {e}");
            return (out, Outcome::Error);
        }
    };
    match needs {
        Ok(needs) => {
            let user = crate::db::privileges::user(maintenance).unwrap_or_default();
            if crate::db::privileges::refusal(&user, &needs).is_some() {
                refuse(
                    &mut out,
                    format!(
                        "the role `{user}` lacks what this run needs (see its privileges below)"
                    ),
                );
            }
            let _ = writeln!(out, "  privileges of `{user}`, as the run needs them:");
            for line in crate::db::privileges::describe(&needs).lines() {
                let _ = writeln!(out, "  {line}");
            }
        }
        Err(e) => {
            let _ = writeln!(out, "  privileges: not checked ({e})");
        }
    }
    match sessions::list(maintenance, &opts.database) {
        Ok(list) if list.is_empty() => {
            let _ = writeln!(out, "  sessions on `{}`: none", opts.database);
        }
        Ok(list) => {
            let _ = writeln!(
                out,
                "  sessions on `{}`: {} (a snapshot needs them gone, or --terminate-connections)",
                opts.database,
                list.len()
            );
            for s in list {
                let _ = writeln!(out, "    - {s}");
            }
        }
        Err(e) => {
            let _ = writeln!(out, "  sessions: not checked ({e})");
        }
    }
    let data_directory = data_directory(maintenance, local_server);
    match read_only_target(opts) {
        Ok(mut target) => match run.gate(&mut target) {
            Ok(()) => {
                let _ = writeln!(
                    out,
                    "  release gate: passed: the plan would migrate `{}` from {} to {}",
                    opts.database, plan.from, plan.to
                );
            }
            Err(early) if early.outcome() == Outcome::NothingToDo => {
                let _ = writeln!(out, "  release: {early}");
            }
            Err(early) => refuse(&mut out, early.to_string().replace('\n', "\n    ")),
        },
        Err(e) => refuse(
            &mut out,
            format!(
                "cannot connect to {}: {e}",
                opts.connector.at(&opts.database)
            ),
        ),
    }

    if opts.jobs > 1 {
        // Numbered as in the order; grouped as they would start if every
        // step took as long (docs/apply.md, "Steps at once").
        let _ = writeln!(
            out,
            "\nsteps, in order, up to {} at once (--jobs {}):\n  (a batch: the steps that would start together if every step took as long)",
            opts.jobs, opts.jobs
        );
        for (b, batch) in super::schedule::batches(&plan.steps, order, opts.jobs)
            .iter()
            .enumerate()
        {
            let alone =
                batch.len() == 1 && matches!(plan.steps[order[batch[0]]].action, Action::Backup(_));
            let _ = writeln!(
                out,
                "  batch {}{}:",
                b + 1,
                if alone { " (a backup runs alone)" } else { "" }
            );
            for &pos in batch {
                let step = &plan.steps[order[pos]];
                describe_step(&mut out, pos + 1, step, plan, &mut run, &data_directory);
            }
        }
    } else {
        let _ = writeln!(out, "\nsteps, in order:");
        for (n, &i) in order.iter().enumerate() {
            let step = &plan.steps[i];
            describe_step(&mut out, n + 1, step, plan, &mut run, &data_directory);
        }
    }
    if !failure_order.is_empty() {
        let _ = writeln!(
            out,
            "\non_failure (after a proved rollback), in order{}:",
            if opts.jobs > 1 {
                ", one at a time whatever --jobs says"
            } else {
                ""
            }
        );
        for (n, &i) in failure_order.iter().enumerate() {
            let step = &plan.on_failure[i];
            describe_step(&mut out, n + 1, step, plan, &mut run, &data_directory);
        }
    }
    let _ = writeln!(
        out,
        "\n{}",
        if outcome == Outcome::Refused {
            "apply would refuse to start: nothing would change"
        } else {
            "nothing was changed"
        }
    );
    (out, outcome)
}

/// A connection to the target in which nothing can be written.
fn read_only_target(opts: &Options) -> Result<Client, String> {
    let mut client = opts
        .connector
        .connect(&opts.database)
        .map_err(|e| crate::exec::sql::SqlError::from(e).describe())?;
    client
        .batch_execute("set default_transaction_read_only = on")
        .map_err(|e| e.to_string())?;
    Ok(client)
}

fn describe_step(
    out: &mut String,
    n: usize,
    step: &Step,
    plan: &Plan,
    run: &mut Run<'_>,
    data_directory: &DataDirectory,
) {
    let _ = writeln!(out, "  {n}. {} {}", step.kind, step.name);
    let pad = "       ";
    let command = |out: &mut String, command: &Command| {
        let shown = match command {
            Command::Argv(argv) => argv
                .iter()
                .map(|a| shell_word(&a.to_string()))
                .collect::<Vec<_>>()
                .join(" "),
            Command::Shell(script) => format!("sh -c {}", shell_quote(&script.to_string())),
        };
        let _ = writeln!(out, "{pad}$ {shown}");
    };
    match &step.action {
        Action::Command(c) | Action::Check(Check::Command(c)) => command(out, c),
        Action::Update {
            modules,
            command: c,
            ..
        } => {
            let _ = writeln!(out, "{pad}modules: {}", modules.joined());
            command(out, c);
        }
        Action::Sql(Sql::Inline(text)) => {
            let _ = writeln!(out, "{pad}sql: {}", first_line(text));
        }
        Action::Sql(Sql::File(file)) => {
            let _ = writeln!(
                out,
                "{pad}sql file: {}",
                plan.folder.join(file.to_string()).display()
            );
        }
        Action::Check(Check::Sql { sql, expect }) => {
            let _ = writeln!(out, "{pad}sql: {}  (expect `{expect}`)", first_line(sql));
        }
        Action::Backup(b) => {
            let database = b.database.expose().unwrap_or_default();
            let size = run
                .maintenance()
                .ok()
                .and_then(|m| {
                    m.query_one("select pg_database_size($1)", &[&database])
                        .ok()
                })
                .map(|row| row.get::<_, i64>(0));
            let _ = writeln!(
                out,
                "{pad}{} of `{database}`: {}",
                b.method.as_str(),
                size.map_or_else(
                    || "size unknown (does it exist?)".into(),
                    |s| bytes(s.max(0) as u64)
                )
            );
            let size = size.map(|s| s.max(0) as u64);
            match b.method {
                BackupMethod::Snapshot => match data_directory {
                    DataDirectory::Here(dir) => {
                        let _ = writeln!(
                            out,
                            "{pad}  copy made by the server in {}: {}",
                            dir.display(),
                            free_line(dir, size)
                        );
                    }
                    DataDirectory::NotChecked(why) => {
                        let _ =
                            writeln!(out, "{pad}  free space for the copy: not checked ({why})");
                    }
                },
                BackupMethod::Dump => {
                    let _ = writeln!(
                        out,
                        "{pad}  dump into {}: {}",
                        run.run_folder.display(),
                        free_line(&run.run_folder, size)
                    );
                }
            }
            let mut trees: Vec<std::path::PathBuf> = b
                .paths
                .iter()
                .map(|p| plan.folder.join(p.expose().unwrap_or_default()))
                .collect();
            trees.extend(run.opts.filestore_of(&database, &trees));
            for path in trees {
                let size = tree_size(&path);
                let _ = writeln!(
                    out,
                    "{pad}files {}: {}; copy beside it: {}",
                    path.display(),
                    size.map_or_else(|| "does not exist (nothing to copy)".into(), bytes),
                    free_line(path.parent().unwrap_or(Path::new("/")), size)
                );
            }
            if b.keep {
                let _ = writeln!(out, "{pad}kept after success");
            }
        }
    }
    if let Some(t) = step.timeout {
        let _ = writeln!(
            out,
            "{pad}timeout {}",
            crate::resolve::duration::format(t.as_secs())
        );
    }
}

fn first_line(text: &Text) -> String {
    let shown = text.to_string();
    let mut lines = shown.lines().filter(|l| !l.trim().is_empty());
    let first = lines.next().unwrap_or("").trim().to_string();
    if lines.next().is_some() {
        format!("{first} ...")
    } else {
        first
    }
}

/// Free space on the file system holding `path` (or its nearest existing
/// folder), compared with `needed` and its margin.
fn free_line(path: &Path, needed: Option<u64>) -> String {
    match space::free(path) {
        Ok((_, free)) => {
            let verdict = match needed {
                Some(n) if space::with_margin(n) > free => " — NOT ENOUGH (with the margin)",
                _ => "",
            };
            format!("{} free{verdict}", bytes(free))
        }
        Err(e) => format!("free space not checked ({e})"),
    }
}

/// Whether the server runs on this machine (a Unix socket or a loopback
/// address), so that its disk can be checked from here.
pub fn is_local(host: &Host) -> bool {
    match host {
        Host::Socket(_) => true,
        Host::Tcp(name) => matches!(name.as_str(), "localhost" | "127.0.0.1" | "::1"),
    }
}
