//! `plan apply`: resolve the target, check the plan, run it (exec::run),
//! print the report. `--sandbox` does the same against a throwaway cluster
//! seeded from the plan's `fixture/` folder.

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::analysis::{Analysis, analyse_path};
use crate::cli::ApplyArgs;
use crate::commands::run_options::{Done, Rehearsing};
use crate::commands::sandbox::Sandbox;
use crate::commands::{UsageError, eprint, print, report};
use crate::exec::run;
use crate::exit::Ending;
use crate::target::{self, Env, ResolvedTarget};

pub fn run(args: &ApplyArgs) -> Result<Ending, UsageError> {
    let fleet = args.target.fleet().or_else(|| {
        // `--shard` on one `--target` is a fleet of one (or none).
        args.shard
            .and(args.target.target.clone())
            .map(|name| crate::fleet::select::Selection::Names(vec![name]))
    });
    if let Some(selection) = fleet {
        return crate::commands::fleet::run(args, selection);
    }
    if args.shard.is_some() {
        return Err(UsageError::FleetWithoutInventory);
    }
    // Fleet-only flags would be ignored by a single run: say so.
    for (given, flag) in [
        (args.step_jobs.is_some(), "--step-jobs"),
        (args.per_server.is_some(), "--per-server"),
        (args.max_failures.is_some(), "--max-failures"),
    ] {
        if given {
            return Err(UsageError::FleetOnly { flag });
        }
    }
    if args.plan.is_dir() {
        return crate::commands::chain::run(args);
    }
    if let Some(to) = &args.to {
        return Err(UsageError::ToWithoutFolder {
            path: args.plan.clone(),
            to: to.to_string(),
        });
    }
    // The sandbox (cluster and copied plan folder) lives until the end.
    let sandbox;
    let (plan_path, resolved) = if args.sandbox {
        sandbox = Sandbox::start(&args.plan)?;
        (sandbox.plan_path().to_path_buf(), sandbox.target()?)
    } else {
        let resolved = target::resolve_wanted(&args.target.wanted(), &Env::from_process())
            .map_err(UsageError::from)?;
        (args.plan.clone(), resolved)
    };
    crate::commands::run_options::refuse_target(args, &resolved)?;
    for warning in &resolved.warnings {
        eprint(&format!("warning: {warning}\n"));
    }
    Ok(run_resolved(args, &plan_path, &resolved, None)?.ending())
}

/// Runs the plan at `plan_path` on `resolved` (the target, or a
/// rehearsal's copy of it).
pub(crate) fn run_resolved(
    args: &ApplyArgs,
    plan_path: &Path,
    resolved: &ResolvedTarget,
    rehearsing: Option<&Rehearsing<'_>>,
) -> Result<Done, UsageError> {
    let bytes = std::fs::read(plan_path).map_err(|source| UsageError::Io {
        path: plan_path.to_path_buf(),
        source,
    })?;
    let plan_sha256 = hex::encode(Sha256::digest(&bytes));

    let state_dir = crate::commands::state_dir(args.state_dir.as_deref());
    // A fleet names each target's run (`--run-id`), so its summary can
    // find the run folder.
    let fresh_id = rehearsing
        .map(|r| r.run_id.clone())
        .or_else(|| args.run_id.clone())
        .unwrap_or_else(run::new_run_id);
    let fresh_folder = rehearsing
        .map(|r| r.run_folder.clone())
        .unwrap_or_else(|| state_dir.join("runs").join(&fresh_id));
    let mut ctx = crate::commands::live_context(&args.vars, resolved);
    // `${erp_config}` names the derived file in the run folder.
    let derived_in = |ctx: &mut crate::resolve::Context, folder: &Path| {
        if let Some(live) = &mut ctx.live {
            let derived = folder.join(crate::erp_config::DERIVED_FILE);
            live.erp_config = Some(derived.display().to_string());
        }
    };
    derived_in(&mut ctx, &fresh_folder);
    let analyse = |ctx: &crate::resolve::Context| {
        let mut analysis = analyse_path(plan_path, ctx).map_err(|source| UsageError::Io {
            path: plan_path.to_path_buf(),
            source,
        })?;
        if let (Some(r), Some(plan)) = (rehearsing, analysis.plan.as_mut()) {
            crate::exec::rehearsal::point::point_at(plan, r.trees);
        }
        Ok::<_, UsageError>(analysis)
    };
    let mut analysis = analyse(&ctx)?;
    if let Some(exit) = refuse_to_run(&analysis, args)? {
        return Ok(Done::Ended(exit));
    }
    // A resumed run keeps its id and its run folder.
    let resuming = if args.resume {
        match crate::commands::resume::find(
            args,
            resolved,
            crate::commands::resume::Expected::Plan(&plan_sha256),
            |w| eprint(&format!("{w}\n")),
        ) {
            Ok(unfinished) => Some(unfinished),
            Err(crate::commands::resume::Refused(ending, text)) => {
                eprint(&format!("{text}\n"));
                return Ok(Done::Ended(ending));
            }
        }
    } else {
        None
    };
    let (run_id, run_folder) = match &resuming {
        Some(u) => {
            // The resumed run's own folder holds its derived file.
            derived_in(&mut ctx, &u.folder);
            analysis = analyse(&ctx)?;
            (u.row.run_id.clone(), u.folder.clone())
        }
        None => (fresh_id, fresh_folder),
    };
    let (Some(plan), Some((main, failure))) = (&analysis.plan, &analysis.graphs) else {
        return Ok(Done::Ended(Ending::checked(true)));
    };
    let erp_config = crate::commands::erp::setting(
        plan,
        resolved,
        rehearsing.map(|r| r.original),
        &run_folder,
        args.erp_config_override,
    )?;
    for line in erp_config.iter().flat_map(|s| s.describe()) {
        eprint(&format!("{line}\n"));
    }
    // A dry run writes nothing, not even its run folder: no child runs.
    let child_env = if args.dry_run {
        Vec::new()
    } else {
        // The run folder and its logs (the password file for the steps
        // lives there), and the state folder unless a resumed run's
        // folder is elsewhere.
        crate::commands::private_folders(&state_dir, &run_folder.join("logs"))?;
        // Written only for a run that will start: a refused one changes
        // nothing, and the file keeps the original's other secrets.
        if let Some(setting) = erp_config.as_ref().filter(|s| s.refusal().is_none()) {
            setting.write().map_err(|source| UsageError::Write {
                path: setting.derived.clone(),
                source,
            })?;
        }
        crate::db::env_for_child(&resolved.target, &run_folder)
            .map_err(|e| UsageError::from(target::TargetError::from(e)))?
    };
    let mut options = crate::commands::run_options::options(
        args,
        resolved,
        (run_id.clone(), run_folder),
        (&args.plan, plan_sha256),
        child_env,
        erp_config,
    );
    options.rehearsal = rehearsing.is_some();
    if args.dry_run {
        let local = run::dry::is_local(&resolved.target.host);
        let (text, outcome) = run::dry_run(plan, &main.order, &failure.order, &options, local);
        print(&text);
        return Ok(Done::Ended(Ending::run(outcome)));
    }
    if rehearsing.is_none() && resuming.is_none() {
        crate::commands::rehearsal_record::tell_last(&options, &options.plan_sha256);
    }
    let report = match resuming {
        Some(unfinished) => {
            run::resume::resume(plan, &main.order, &failure.order, &options, unfinished)
        }
        None => run::apply(plan, &main.order, &failure.order, &options),
    };
    eprint(&report.human());
    if rehearsing.is_some() {
        let ending = report.ending();
        return Ok(Done::Ran(vec![report], ending));
    }
    // Not after a run that ended worse than a proved rollback: the server
    // may be gone, and the hint would only wait for it.
    if report.exit_code <= 1
        && let Some(hint) = crate::commands::backups::hint(resolved, &state_dir)
    {
        eprint(&hint);
    }
    if args.format == crate::cli::OutputFormat::Json {
        print(&(serde_json::to_string_pretty(&report).unwrap_or_default() + "\n"));
    }
    let ending = report.ending();
    Ok(Done::Ran(vec![report], ending))
}

/// Errors in the plan, values missing at apply time, `--var` for names the
/// plan does not declare, or an unsuppressed "changes data without a
/// backup": nothing runs.
fn refuse_to_run(analysis: &Analysis, args: &ApplyArgs) -> Result<Option<Ending>, UsageError> {
    // Lint as in review: errors stop the run, and so does "changes data
    // without a backup" unless a `# lint: allow` a reviewer can see says so.
    let linted = crate::lint::lint(analysis);
    if linted.apply_refuses() {
        let blocking: Vec<_> = linted.blocking().cloned().collect();
        report(&blocking, &analysis.source);
        eprint(&format!(
            "nothing was run: fix the plan first (`plan lint {}`)\n",
            args.plan.display()
        ));
        return Ok(Some(Ending::checked(true)));
    }
    if let Some(plan) = &analysis.plan {
        // `db` may always be given: it is bound for every step, declared
        // or not. Listed once, though, when the plan declares it too.
        let mut declared: Vec<&str> = plan.vars.iter().map(|(n, _)| n.as_str()).collect();
        if !declared.contains(&"db") {
            declared.push("db");
        }
        if let Some((name, _)) = args
            .vars
            .iter()
            .find(|(n, _)| !declared.contains(&n.as_str()))
        {
            return Err(UsageError::UnknownVar {
                name: name.clone(),
                declared: declared.join(", "),
            });
        }
    }
    if !analysis.missing.is_empty() {
        return Err(UsageError::Missing {
            what: analysis.missing.join(", "),
        });
    }
    Ok(None)
}
