//! `plan rehearse`: the plan (or chain) run on a throwaway copy of the
//! target. The copy is made (`exec::rehearsal`) under the target's lock
//! for that moment only, the run on it is `plan apply`'s own, pointed at
//! the copy (`apply::run_resolved`, `chain::run_resolved`), and the copy
//! is dropped whatever happened. The rehearsal's row in plan_runner.runs
//! and its `rehearsal.json` are what `status` and `apply` show later.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGINT, SIGTERM};

use crate::analysis::analyse_path;
use crate::cli::{OutputFormat, RehearseArgs};
use crate::commands::run_options::{Done, Rehearsing};
use crate::commands::{UsageError, eprint, print, report};
use crate::db::connect::Connector;
use crate::db::runs;
use crate::exec::rehearsal::report::{self as rreport, RehearsalReport};
use crate::exec::rehearsal::{self, Copies, Made, Tree, error_text, make};
use crate::exec::run;
use crate::exit::{Ending, Exit, Rehearsed};
use crate::plan::Action;
use crate::target::{self, Env, ResolvedTarget};

pub fn run(args: &RehearseArgs) -> Result<Ending, UsageError> {
    // A fleet's selection is refused by the target's resolution
    // (`plan::one_target`): rehearse each target of a fleet on its own.
    let apply = args.as_apply();
    let chain_to = match (args.plan.is_dir(), &args.to) {
        (true, Some(to)) => Some(to.clone()),
        (true, None) => {
            return Err(UsageError::ChainNeedsTo {
                path: args.plan.clone(),
            });
        }
        (false, Some(to)) => {
            return Err(UsageError::ToWithoutFolder {
                path: args.plan.clone(),
                to: to.to_string(),
            });
        }
        (false, None) => None,
    };
    if let Some(dump) = &args.from_dump
        && let Err(source) = std::fs::metadata(dump)
    {
        return Err(UsageError::Io {
            path: dump.clone(),
            source,
        });
    }
    // With --sandbox, a throwaway cluster seeded from the plan's
    // `fixture/` is the target, and the plan is its copy of the folder;
    // both live until the end.
    let sandbox;
    let (plan, resolved) = if args.sandbox {
        if chain_to.is_some() {
            return Err(UsageError::ChainUnsupported { flag: "--sandbox" });
        }
        sandbox = crate::commands::sandbox::Sandbox::start(&args.plan)?;
        (sandbox.plan_path().to_path_buf(), sandbox.target()?)
    } else {
        let resolved = target::resolve_wanted(&args.target.wanted(), &Env::from_process())
            .map_err(UsageError::from)?;
        crate::commands::refuse_unusable_target(args.target.database.as_deref(), &resolved)?;
        (args.plan.clone(), resolved)
    };
    for warning in &resolved.warnings {
        eprint(&format!("warning: {warning}\n"));
    }
    let files = match &chain_to {
        Some(_) => {
            crate::chain::folder::plan_files(&args.plan).map_err(|source| UsageError::Io {
                path: args.plan.clone(),
                source,
            })?
        }
        None => vec![plan.clone()],
    };
    if files.is_empty() {
        return Err(UsageError::NoPlanFiles {
            path: args.plan.clone(),
        });
    }
    let identity = match &chain_to {
        Some(to) => crate::commands::rehearsal_record::chain_identity(&files, to),
        None => crate::commands::rehearsal_record::file_sha256(&plan)?,
    };

    let state_dir = crate::commands::state_dir(args.state_dir.as_deref());
    let run_id = run::new_run_id();
    let folder = state_dir.join("runs").join(&run_id);
    crate::commands::private_folders(&state_dir, &folder)?;
    let copy_db = rehearsal::copy_name(&resolved.target.database, &run_id);
    let mut copy = resolved.clone();
    copy.target.database = copy_db.clone();
    copy.production = false;
    copy.name = resolved
        .name
        .as_ref()
        .map(|n| format!("{n} (rehearsal copy)"));

    // Every plan is checked before anything is copied, and read once
    // for the target and once for the copy: a tree named with `${db}`
    // names the copy's own tree in the second.
    // The rehearsal runs a copy of the plan's folder (made with the
    // other copies), as `--sandbox` does: what the plan names relative
    // to its folder is the copy's.
    let plan_folder = match &chain_to {
        Some(_) => plan.clone(),
        None => plan
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(".")),
    };
    let plan_folder = std::path::absolute(&plan_folder).unwrap_or(plan_folder);
    if folder.starts_with(&plan_folder) {
        return Err(UsageError::RehearsalCopy {
            detail: format!(
                "the state folder {} is inside the plan's folder {}, which the rehearsal copies; give --state-dir outside it",
                state_dir.display(),
                plan_folder.display()
            ),
        });
    }
    let plan_copy = folder.join("plan");
    let mut apply = apply;
    apply.plan = match &chain_to {
        Some(_) => plan_copy.clone(),
        None => plan_copy.join(plan.file_name().unwrap_or_default()),
    };
    let trees = match trees(
        &apply,
        &files,
        &resolved,
        &copy,
        (&plan_folder, &plan_copy),
        &folder,
    )? {
        Ok(trees) => trees,
        Err(ending) => return Ok(ending),
    };
    let mut inner_run_id = run::new_run_id();
    while inner_run_id == run_id {
        inner_run_id = run::new_run_id();
    }
    let copies = Copies {
        run_id: run_id.clone(),
        database: resolved.target.database.clone(),
        copy: copy_db.clone(),
        method: if args.from_dump.is_some() {
            "dump"
        } else {
            "snapshot"
        }
        .into(),
        trees,
        inner_run_id: inner_run_id.clone(),
        inner_folder: folder.join("run"),
        plan_folder,
        plan_copy,
    };
    let rehearsal = Rehearsal {
        args,
        resolved: &resolved,
        folder: folder.clone(),
        identity,
        started_at: crate::units::now_millis(),
        started: Instant::now(),
    };
    rehearsal.go(&apply, &copies, &copy, chain_to.as_ref())
}

/// One rehearsal, from its copy to its record.
struct Rehearsal<'a> {
    args: &'a RehearseArgs,
    resolved: &'a ResolvedTarget,
    folder: PathBuf,
    identity: String,
    started_at: String,
    started: Instant,
}

impl Rehearsal<'_> {
    fn go(
        &self,
        apply: &crate::cli::ApplyArgs,
        copies: &Copies,
        copy: &ResolvedTarget,
        chain_to: Option<&crate::version::Version>,
    ) -> Result<Ending, UsageError> {
        let resolved = self.resolved;
        let child_env = crate::db::env_for_child(&resolved.target, &self.folder)
            .map_err(|e| UsageError::from(target::TargetError::from(e)))?;
        let connector = Connector::new(resolved.target.clone(), &copies.run_id, child_env);
        let mut maintenance =
            connector
                .connect(&resolved.maintenance_db)
                .map_err(|e| UsageError::RehearsalCopy {
                    detail: format!(
                        "cannot connect to {}: {}",
                        connector.at(&resolved.maintenance_db),
                        crate::exec::sql::SqlError::from(e).describe()
                    ),
                })?;
        let sql_error = |e: postgres::Error| crate::exec::sql::SqlError::from(e).describe();
        let server_version =
            run::server_version(&mut maintenance).map_err(|e| UsageError::RehearsalCopy {
                detail: sql_error(e),
            })?;
        let plan_shown = std::path::absolute(&self.args.plan).unwrap_or(self.args.plan.clone());
        // Recorded before any copy is made: a killed rehearsal is found
        // by `plan recover`, which drops what copies.json names.
        copies
            .write(&self.folder)
            .map_err(|source| UsageError::Write {
                path: self.folder.join(rehearsal::FILE_NAME),
                source,
            })?;
        if let Err(e) = runs::start_rehearsal(
            &mut maintenance,
            &copies.run_id,
            &copies.database,
            &plan_shown.display().to_string(),
            &self.identity,
            &self.folder.display().to_string(),
        ) {
            // The role may not keep the record: refused, as `apply` is,
            // with the line that lets it.
            if let Ok(runs::Access::Missing { grant }) = runs::access(&mut maintenance) {
                crate::db::pgpass::remove(&self.folder);
                eprint(&format!(
                    "the rehearsal is refused, nothing was copied: this role may not keep its record in plan_runner.runs ({})\na superuser (or the owner of the maintenance database) runs, once:\n  {grant}\n",
                    sql_error(e)
                ));
                return Ok(Ending::Rehearsal(Rehearsed::Refused));
            }
            return Err(UsageError::RehearsalCopy {
                detail: format!("cannot record it in plan_runner.runs: {}", sql_error(e)),
            });
        }
        eprint(&format!(
            "rehearsal {} of {} on {}: copying it as `{}`; rehearsal folder {}\n",
            copies.run_id,
            plan_shown.display(),
            crate::commands::describe(resolved),
            copies.copy,
            self.folder.display()
        ));
        // Ctrl-C while the copies are made or dropped ends the rehearsal
        // once they are dropped, not the process half way through them
        // (the run on the copy hears it too, and rolls the copy back).
        let interrupted = Arc::new(AtomicBool::new(false));
        let heard: Vec<_> = [SIGINT, SIGTERM]
            .into_iter()
            .filter_map(|signal| signal_hook::flag::register(signal, interrupted.clone()).ok())
            .collect();
        let mut made = Made::default();
        let say = |line: &str| eprint(&format!("{line}\n"));
        let settings = make::Settings {
            from_dump: self.args.from_dump.as_deref(),
            wait_for_sessions: self.args.wait_for_sessions,
            lock_timeout: self.args.lock_timeout.unwrap_or(Duration::ZERO),
            jobs: self.args.jobs.unwrap_or(1),
            local: run::dry::is_local(&resolved.target.host),
            maintenance_db: &resolved.maintenance_db,
            folder: &self.folder,
            say: &say,
        };
        let mut copied = make::make(
            &settings,
            &connector,
            &mut maintenance,
            server_version,
            copies,
            &mut made,
        );
        if copied.is_ok() && interrupted.load(Ordering::SeqCst) {
            copied = Err((
                Rehearsed::Interrupted,
                "interrupted while the copy was made: it is dropped".into(),
            ));
        }
        let (done, message) = match copied {
            Err((outcome, why)) => (Err(outcome), Some(why)),
            Ok(()) => {
                // The copies' own trees named without `${db}`, for the
                // steps' words.
                let literal: Vec<(PathBuf, PathBuf)> = copies
                    .trees
                    .iter()
                    .filter(|t| t.literal)
                    .map(|t| (t.original.clone(), t.copy.clone()))
                    .collect();
                let rehearsing = Rehearsing {
                    run_id: copies.inner_run_id.clone(),
                    run_folder: copies.inner_folder.clone(),
                    original: resolved,
                    trees: &literal,
                };
                let done = match chain_to {
                    Some(to) => {
                        crate::commands::chain::run_resolved(apply, to, copy, Some(&rehearsing))
                    }
                    // The copy of the plan, in the copy of its folder.
                    None => crate::commands::apply::run_resolved(
                        apply,
                        &apply.plan,
                        copy,
                        Some(&rehearsing),
                    ),
                };
                match done {
                    Ok(done) => (Ok(done), None),
                    // The copy is dropped before the error is told.
                    Err(e) => (Err(Rehearsed::Failed), Some(error_text(&e))),
                }
            }
        };
        let kept = self.args.keep && done.is_ok();
        let dropped = if kept {
            rehearsal::Dropped::default()
        } else {
            rehearsal::drop_all(&mut maintenance, copies)
        };
        crate::db::pgpass::remove(&self.folder);
        let (outcome, reports) = match done {
            Ok(Done::Ended(ending)) => (outcome_of(ending), Vec::new()),
            Ok(Done::Ran(reports, ending)) => (outcome_of(ending), reports),
            Err(outcome) => (outcome, Vec::new()),
        };
        let message = message.or_else(|| {
            reports
                .last()
                .and_then(|r| r.message.clone())
                .map(|m| m.lines().next().unwrap_or_default().to_string())
        });
        // A chain's later hops list the first hop's backups again: each
        // copy counts once.
        let mut copies_seen = std::collections::BTreeSet::new();
        let backups: i64 = reports
            .iter()
            .flat_map(|r| r.backups.iter())
            .filter(|b| copies_seen.insert(b.copy.clone()))
            .map(|b| b.bytes.max(0))
            .sum();
        let skipped: Vec<String> = reports
            .iter()
            .flat_map(|r| r.steps.iter().chain(r.on_failure.iter()))
            .filter(|s| s.status == "skipped")
            .map(|s| format!("{} ({})", s.name, s.kind))
            .collect();
        let report = RehearsalReport {
            format_version: 1,
            kind: "rehearsal",
            run_id: copies.run_id.clone(),
            plan: plan_shown,
            plan_sha256: self.identity.clone(),
            target: crate::commands::describe(resolved),
            database: copies.database.clone(),
            copy: copies.copy.clone(),
            method: copies.method.clone(),
            from_dump: self.args.from_dump.clone(),
            started_at: self.started_at.clone(),
            ended_at: crate::units::now_millis(),
            outcome,
            exit_code: crate::exit::status(Ending::Rehearsal(outcome)).code(),
            message,
            seconds: self.started.elapsed().as_secs_f64(),
            window: rreport::window(&reports),
            disk_bytes: made.database_bytes.max(0) as u64 + made.trees_bytes + backups as u64,
            made,
            skipped,
            kept,
            dropped,
            run_folder: self.folder.clone(),
            runs: reports,
        };
        let _ = crate::private::write(
            &self.folder.join("rehearsal.json"),
            &serde_json::to_vec_pretty(&report).unwrap_or_default(),
        );
        let _ = runs::finish(
            &mut maintenance,
            &copies.run_id,
            &runs::rehearsal_state(outcome.as_str()),
        );
        for id in heard {
            signal_hook::low_level::unregister(id);
        }
        eprint(&report.human());
        if self.args.format == OutputFormat::Json {
            print(&(serde_json::to_string_pretty(&report).unwrap_or_default() + "\n"));
        }
        Ok(Ending::Rehearsal(outcome))
    }
}

/// How the run on the copy ended, as a rehearsal.
fn outcome_of(ending: Ending) -> Rehearsed {
    match crate::exit::status(ending) {
        Exit::Success => Rehearsed::Passed,
        Exit::Refused => Rehearsed::Refused,
        Exit::Interrupted => Rehearsed::Interrupted,
        Exit::Failed | Exit::Usage | Exit::RollbackFailed => Rehearsed::Failed,
    }
}

/// The plan's trees, for the target and for the copy, after every plan
/// was checked (`Err`: a plan does not lint clean, reported).
fn trees(
    apply: &crate::cli::ApplyArgs,
    files: &[PathBuf],
    original: &ResolvedTarget,
    copy: &ResolvedTarget,
    (plan_folder, plan_copy): (&Path, &Path),
    folder: &Path,
) -> Result<Result<Vec<Tree>, Ending>, UsageError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| UsageError::Io { path, source }
    };
    let on_target = crate::commands::live_context(&apply.vars, original);
    let on_copy = crate::commands::live_context(&apply.vars, copy);
    let mut trees: Vec<Tree> = Vec::new();
    let mut refused = false;
    for file in files {
        let a = analyse_path(file, &on_target).map_err(io(file))?;
        let linted = crate::lint::lint(&a);
        if linted.apply_refuses() {
            let blocking: Vec<_> = linted.blocking().cloned().collect();
            report(&blocking, &a.source);
            refused = true;
            continue;
        }
        let b = analyse_path(file, &on_copy).map_err(io(file))?;
        let (Some(pa), Some(pb)) = (&a.plan, &b.plan) else {
            refused = true;
            continue;
        };
        let mut pairs: Vec<(PathBuf, PathBuf)> = Vec::new();
        for (sa, sb) in pa.steps.iter().zip(&pb.steps) {
            if let (Action::Backup(ba), Action::Backup(bb)) = (&sa.action, &sb.action) {
                for (ta, tb) in ba.paths.iter().zip(&bb.paths) {
                    if let (Some(ta), Some(tb)) = (ta.expose(), tb.expose()) {
                        // As the run resolves them, from the plan's folder.
                        let at = |p: String| {
                            let p = pa.folder.join(p);
                            std::path::absolute(&p).unwrap_or(p)
                        };
                        pairs.push((at(ta), at(tb)));
                    }
                }
            }
        }
        // The ERP server's filestore joins every backup of the target.
        let filestore = |resolved: &ResolvedTarget, plan: &crate::plan::Plan| {
            crate::commands::erp::setting(plan, resolved, None, folder, true)
                .ok()
                .flatten()
                .map(|s| s.filestore)
        };
        if let (Some(fa), Some(fb)) = (filestore(original, pa), filestore(copy, pb)) {
            pairs.push((fa, fb));
        }
        for (ta, tb) in pairs {
            // A tree in the plan's folder is in its copy already; one
            // named with `${db}` is copied there under the copy's name.
            let (ta, tb) = match (ta.strip_prefix(plan_folder), tb.strip_prefix(plan_folder)) {
                (Ok(ra), Ok(rb)) if ra == rb => continue,
                (Ok(ra), Ok(rb)) => (plan_copy.join(ra), plan_copy.join(rb)),
                _ => (ta, tb),
            };
            if trees.iter().any(|t| t.original == ta) {
                continue;
            }
            let literal = ta == tb;
            let copy = if literal {
                rehearsal::literal_copy(folder, trees.len(), &ta)
            } else {
                tb
            };
            trees.push(Tree {
                original: ta,
                copy,
                literal,
            });
        }
    }
    if refused {
        eprint(&format!(
            "nothing was copied: fix the plan first (`plan lint {}`)\n",
            apply.plan.display()
        ));
        return Ok(Err(Ending::checked(true)));
    }
    Ok(Ok(trees))
}
