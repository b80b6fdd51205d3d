//! `plan apply DIR --to X`: the folder's plans read as a graph of
//! releases (`crate::chain`), the target's release read, the path found,
//! then the hops shown (`--dry-run`) or run (`exec::run::chain`). Every
//! plan of the folder is checked before anything runs.

use std::fmt::Write as _;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::analysis::{Analysis, analyse_path};
use crate::chain::{PathError, Releases};
use crate::cli::ApplyArgs;
use crate::commands::run_options::{Done, Rehearsing};
use crate::commands::{UsageError, eprint, print, report};
use crate::exec::run::{self, chain::Hop};
use crate::exit::{Ending, Outcome};
use crate::lint::{self, FileReport};
use crate::target::{self, Env};
use crate::version::Version;

pub fn run(args: &ApplyArgs) -> Result<Ending, UsageError> {
    let dir = &args.plan;
    let Some(to) = &args.to else {
        return Err(UsageError::ChainNeedsTo { path: dir.clone() });
    };
    if args.sandbox {
        return Err(UsageError::ChainUnsupported { flag: "--sandbox" });
    }
    if args.resume && args.keep_reached {
        return Err(UsageError::ChainUnsupported {
            flag: "--resume with --keep-reached",
        });
    }
    let resolved = target::resolve_wanted(&args.target.wanted(), &Env::from_process())
        .map_err(UsageError::from)?;
    crate::commands::run_options::refuse_target(args, &resolved)?;
    for warning in &resolved.warnings {
        eprint(&format!("warning: {warning}\n"));
    }
    Ok(run_resolved(args, to, &resolved, None)?.ending())
}

/// Runs the chain of `args.plan`'s plans to `to` on `resolved` (the
/// target, or a rehearsal's copy of it).
pub(crate) fn run_resolved(
    args: &ApplyArgs,
    to: &Version,
    resolved: &target::ResolvedTarget,
    rehearsing: Option<&Rehearsing<'_>>,
) -> Result<Done, UsageError> {
    let dir = &args.plan;
    let state_dir = crate::commands::state_dir(args.state_dir.as_deref());
    // A fleet names each target's run (`--run-id`), so that its summary
    // finds the chain's folder.
    let fresh_id = rehearsing
        .map(|r| r.run_id.clone())
        .or_else(|| args.run_id.clone())
        .unwrap_or_else(run::new_run_id);
    // `${erp_config}` names the chain's derived configuration file, which
    // each hop writes for its own server (in the chain's folder, known
    // once a resumed chain is found: the hops on the path are read again
    // then).
    let context_in = |folder: &Path| {
        let mut ctx = crate::commands::live_context(&args.vars, resolved);
        if let Some(live) = &mut ctx.live {
            live.erp_config = Some(
                folder
                    .join(crate::erp_config::DERIVED_FILE)
                    .display()
                    .to_string(),
            );
        }
        ctx
    };
    let fresh_folder = rehearsing
        .map(|r| r.run_folder.clone())
        .unwrap_or_else(|| state_dir.join("runs").join(&fresh_id));
    let ctx = context_in(&fresh_folder);
    let Folder {
        files,
        mut analyses,
        reports,
    } = load(dir, &ctx)?;
    if let Some(r) = rehearsing {
        for plan in analyses.iter_mut().filter_map(|a| a.plan.as_mut()) {
            crate::exec::rehearsal::point::point_at(plan, r.trees);
        }
    }
    // Every plan is checked, not only those on the path: a folder that
    // does not lint clean is not run at all.
    if reports.iter().any(FileReport::apply_refuses) {
        for r in &reports {
            let blocking: Vec<_> = r.blocking().cloned().collect();
            report(&blocking, &r.source);
        }
        eprint(&format!(
            "nothing was run: fix the plans first (`plan lint {}`)\n",
            dir.display()
        ));
        return Ok(Done::Ended(Ending::checked(true)));
    }
    let plans: Vec<_> = analyses
        .iter()
        .filter_map(|a| Some((a.plan.as_ref()?, a.graphs.as_ref()?)))
        .collect();
    if plans.len() != analyses.len() {
        return Ok(Done::Ended(Ending::checked(true)));
    }
    let pairs: Vec<_> = plans
        .iter()
        .map(|(p, _)| (p.from.clone(), p.to.clone()))
        .collect();
    let releases = Releases::new(&pairs);
    let refuse = |text: String| {
        eprint(&format!("{text}\n"));
        Ok(Done::Ended(Ending::run(Outcome::Refused)))
    };
    if let Err(e) = releases.path(to, to, &[]) {
        return refuse(path_error(&e, dir, &files));
    }
    let current = match current_release(args, resolved, &plans, &releases) {
        Ok(v) => v,
        Err((ending, text)) => {
            eprint(&format!("{text}\n"));
            return Ok(Done::Ended(ending));
        }
    };
    let database = &resolved.target.database;
    if &current == to {
        eprint(&format!("`{database}` is already at {to}: nothing to do\n"));
        return Ok(Done::Ended(Ending::run(Outcome::NothingToDo)));
    }
    let path = match releases.path(&current, to, &args.via) {
        Ok(path) => path,
        Err(e) => return refuse(path_error(&e, dir, &files)),
    };
    check_values(
        args,
        &path.iter().map(|&i| &analyses[i]).collect::<Vec<_>>(),
    )?;

    // A chain stopped in one of its hops goes on in that hop: it must be
    // the first of the path from the release the database is at now.
    let resumed = if args.resume {
        match resumable(args, resolved, &files[path[0]], path.len(), (&current, to)) {
            Ok(resumed) => Some(resumed),
            Err(crate::commands::resume::Refused(ending, text)) => {
                eprint(&format!("{text}\n"));
                return Ok(Done::Ended(ending));
            }
        }
    } else {
        None
    };
    let passed = resumed.as_ref().map_or(0, |r| r.passed);
    let (chain_id, chain_folder) = match &resumed {
        Some(r) => (r.unfinished.row.run_id.clone(), r.unfinished.folder.clone()),
        None => (fresh_id, fresh_folder),
    };
    // The plans on the path, read for this chain's folder.
    let on_path = {
        let ctx = context_in(&chain_folder);
        let mut on_path = Vec::with_capacity(path.len());
        for &i in &path {
            let mut a = analyse_path(&files[i], &ctx).map_err(|source| UsageError::Io {
                path: files[i].clone(),
                source,
            })?;
            if let (Some(r), Some(plan)) = (rehearsing, a.plan.as_mut()) {
                crate::exec::rehearsal::point::point_at(plan, r.trees);
            }
            on_path.push(a);
        }
        on_path
    };
    // Each hop's server gets its own configuration (the one its plan, or
    // the inventory, names), pointed at the target; one naming another
    // server or database refuses the whole chain before it starts.
    let mut configs = Vec::with_capacity(path.len());
    for (k, a) in on_path.iter().enumerate() {
        let Some(plan) = &a.plan else {
            return Ok(Done::Ended(Ending::checked(true)));
        };
        let setting = crate::commands::erp::setting(
            plan,
            resolved,
            rehearsing.map(|r| r.original),
            &chain_folder,
            args.erp_config_override,
        )?;
        if let Some(setting) = &setting {
            for line in setting.describe() {
                eprint(&format!("hop {}: {line}\n", passed + k + 1));
            }
            if let Some(why) = setting.refusal() {
                eprint(&format!("{why}\n"));
                return Ok(Done::Ended(Ending::run(Outcome::Refused)));
            }
        }
        configs.push(setting);
    }
    let child_env = if args.dry_run {
        Vec::new()
    } else {
        crate::commands::private_folders(&state_dir, &chain_folder)?;
        crate::db::env_for_child(&resolved.target, &chain_folder)
            .map_err(|e| UsageError::from(target::TargetError::from(e)))?
    };
    let mut hops = Vec::with_capacity(path.len());
    for ((k, &i), config) in path.iter().enumerate().zip(configs) {
        let bytes = std::fs::read(&files[i]).map_err(|source| UsageError::Io {
            path: files[i].clone(),
            source,
        })?;
        let sha = hex::encode(Sha256::digest(&bytes));
        let (Some(plan), Some((main, failure))) = (&on_path[k].plan, &on_path[k].graphs) else {
            return Ok(Done::Ended(Ending::checked(true)));
        };
        let mut opts = crate::commands::run_options::options(
            args,
            resolved,
            (
                chain_id.clone(),
                chain_folder.join(format!("hop-{}", passed + k + 1)),
            ),
            (&files[i], sha),
            child_env.clone(),
            config,
        );
        // Later hops are at their `from` by the history the hop before
        // wrote; --assume-release speaks of the chain's start only.
        if k > 0 || resumed.is_some() {
            opts.assume_release = None;
        }
        opts.rehearsal = rehearsing.is_some();
        hops.push(Hop {
            plan,
            order: &main.order,
            failure_order: &failure.order,
            opts,
        });
    }
    if args.dry_run {
        let mut text = describe_path(&hops, &current, to, args.keep_reached);
        let first = &hops[0];
        let local = run::dry::is_local(&resolved.target.host);
        let (hop_text, outcome) = run::dry_run(
            first.plan,
            first.order,
            first.failure_order,
            &first.opts,
            local,
        );
        let _ = writeln!(text, "\nhop 1 in detail:");
        text.push_str(&hop_text);
        print(&text);
        return Ok(Done::Ended(Ending::run(outcome)));
    }
    if rehearsing.is_none() && resumed.is_none() {
        crate::commands::rehearsal_record::tell_last(
            &hops[0].opts,
            &crate::commands::rehearsal_record::chain_identity(&files, to),
        );
    }
    let report = run::chain::apply_chain(&hops, &chain_folder, args.keep_reached, resumed);
    eprint(&report.human());
    let ending = report.ending();
    // As after a single run: the copies kept pile up unless pruned.
    if rehearsing.is_none()
        && crate::exit::status(ending).code() <= 1
        && let Some(hint) = crate::commands::backups::hint(resolved, &state_dir)
    {
        eprint(&hint);
    }
    Ok(Done::Ran(report.hops, ending))
}

/// The chain to resume (`--resume`): its unfinished run, found and
/// locked, whose stopped hop ran `first` (the first plan of the path from
/// the release the database is at, `hops` long) and ends where the chain
/// was going.
fn resumable(
    args: &ApplyArgs,
    resolved: &target::ResolvedTarget,
    first: &Path,
    hops: usize,
    (current, to): (&Version, &Version),
) -> Result<run::chain::Resumed, crate::commands::resume::Refused> {
    use crate::commands::resume::{Expected, Refused, find};
    use crate::exec::journal::Record;
    let unfinished = find(args, resolved, Expected::Chain, |w| {
        eprint(&format!("{w}\n"))
    })?;
    let refuse = |text: String| Refused(Ending::run(Outcome::Refused), text);
    let Some(Record::RunStarted {
        chain: Some(mark),
        plan_path,
        plan_sha256,
        ..
    }) = &unfinished.story.started
    else {
        return Err(refuse(
            "the chain's journal has no start record for its hop".into(),
        ));
    };
    let sha = std::fs::read(first)
        .map(|bytes| hex::encode(Sha256::digest(&bytes)))
        .unwrap_or_default();
    if &sha != plan_sha256 {
        return Err(refuse(format!(
            "chain {} stopped in hop {} of {}, which ran {} (SHA-256 {}); the path from {current} to {to} now starts with {} (SHA-256 {}): --resume goes on with the plans the chain ran\n  give the folder as it was, or `plan recover` the chain and start again",
            unfinished.row.run_id,
            mark.hop,
            mark.hops,
            plan_path.display(),
            sha_prefix(plan_sha256),
            first.display(),
            sha_prefix(&sha)
        )));
    }
    let passed = mark.hop.saturating_sub(1);
    if passed + hops != mark.hops {
        return Err(refuse(format!(
            "chain {} was going {} hop(s) from its start, and {current} to {to} is {} hop(s) after the {passed} that passed: resume it with the --to it was given",
            unfinished.row.run_id, mark.hops, hops
        )));
    }
    Ok(run::chain::Resumed { unfinished, passed })
}

fn sha_prefix(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

/// The plans directly in a folder, analysed and linted, with the
/// folder's own findings (duplicate pairs, cycles) on their files.
pub struct Folder {
    pub files: Vec<std::path::PathBuf>,
    pub analyses: Vec<Analysis>,
    pub reports: Vec<FileReport>,
}

/// Reads every plan directly in `dir` (none is a usage error).
pub fn load(dir: &Path, ctx: &crate::resolve::Context) -> Result<Folder, UsageError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| UsageError::Io { path, source }
    };
    let files = crate::chain::folder::plan_files(dir).map_err(io(dir))?;
    if files.is_empty() {
        return Err(UsageError::NoPlanFiles {
            path: dir.to_path_buf(),
        });
    }
    let mut analyses = Vec::with_capacity(files.len());
    for file in &files {
        analyses.push(analyse_path(file, ctx).map_err(io(file))?);
    }
    let mut reports: Vec<FileReport> = analyses.iter().map(lint::lint).collect();
    let refs: Vec<&Analysis> = analyses.iter().collect();
    for (i, finding) in crate::chain::folder::findings(&refs) {
        reports[i].diagnostics.push(finding);
    }
    Ok(Folder {
        files,
        analyses,
        reports,
    })
}

impl Folder {
    /// Prints every error of every plan; `true` when there was one.
    pub fn report_errors(&self) -> bool {
        let mut any = false;
        for r in &self.reports {
            let errors: Vec<_> = r
                .diagnostics
                .iter()
                .filter(|d| d.is_error())
                .cloned()
                .collect();
            any |= !errors.is_empty();
            report(&errors, &r.source);
        }
        any
    }

    /// `(from, to, file name)` of each plan that resolved.
    pub fn edges(&self) -> Vec<(String, String, String)> {
        self.files
            .iter()
            .zip(&self.analyses)
            .filter_map(|(f, a)| {
                let plan = a.plan.as_ref()?;
                let name = f.file_name()?.to_string_lossy().into_owned();
                Some((plan.from.to_string(), plan.to.to_string(), name))
            })
            .collect()
    }
}

/// Where the target is: `--assume-release`, else its history, else the
/// `release_query` of the folder's plans (the first that gives a release
/// the folder knows). `Err` says why the chain cannot start.
fn current_release(
    args: &ApplyArgs,
    resolved: &target::ResolvedTarget,
    plans: &[(
        &crate::plan::Plan,
        &(crate::graph::Graph, crate::graph::Graph),
    )],
    releases: &Releases,
) -> Result<Version, (Ending, String)> {
    let database = &resolved.target.database;
    let known = || releases.known().join(", ");
    let at = |value: String, by: &str| {
        releases.release_of(&value).ok_or_else(|| {
            (
                Ending::run(Outcome::Refused),
                format!(
                    "`{database}` is at release {value} (by {by}), which no plan of the folder starts from or reaches\nthe releases the folder knows: {}\nnothing was changed; if {by} is wrong, --assume-release X overrides it",
                    known()
                ),
            )
        })
    };
    if let Some(assumed) = &args.assume_release {
        return at(assumed.to_string(), "--assume-release");
    }
    let failed = |what: &str, e: postgres::Error| {
        (
            Ending::Usage,
            format!("{what}: {}", crate::exec::sql::describe_error(&e)),
        )
    };
    let mut client = crate::db::connect::open(&resolved.target, database).map_err(|e| {
        failed(
            &format!("cannot connect to {}", resolved.target.at(database)),
            e,
        )
    })?;
    if let Some(value) = crate::db::history::recorded_release(&mut client)
        .map_err(|e| failed("cannot read the history", e))?
    {
        return at(value, "the history table");
    }
    let mut queries: Vec<String> = Vec::new();
    for (plan, _) in plans {
        let Some(query) = &plan.release_query else {
            continue;
        };
        let text = query.expose().unwrap_or_default();
        if queries.contains(&text) {
            continue;
        }
        queries.push(text);
        let value = run::gate::release_by_query(&mut client, query)
            .map_err(|e| failed("a plan's release_query failed", e))?;
        if let Some(value) = value {
            return at(value, "the plans' release_query");
        }
    }
    // An OpenERP/Odoo database tells its release itself, as the gate reads
    // it for a single plan.
    if let Some(value) = crate::db::odoo::base_release(&mut client)
        .map_err(|e| failed("cannot read the module registry", e))?
    {
        return at(value, "the `base` module's latest_version");
    }
    Err((
        Ending::run(Outcome::Refused),
        format!(
            "cannot tell which release `{database}` is at: it has no plan-runner history, no module registry, and no plan of the folder has a release_query that answers\nif you know it, run again with --assume-release X (the releases the folder knows: {})",
            known()
        ),
    ))
}

/// The message of a path that cannot be taken (exit 4).
fn path_error(e: &PathError, dir: &Path, files: &[std::path::PathBuf]) -> String {
    let names = |plans: &[usize]| {
        plans
            .iter()
            .map(|&i| {
                files
                    .get(i)
                    .and_then(|f| f.file_name())
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
            })
            .collect::<Vec<_>>()
            .join(", then ")
    };
    match e {
        PathError::Unknown { release, known } => format!(
            "no plan in {} mentions release {release}\nthe releases the folder knows: {}",
            dir.display(),
            known.join(", ")
        ),
        PathError::NoPath {
            from,
            to,
            reachable,
            missing: (a, b),
        } => format!(
            "no chain of plans in {} leads from {from} to {to}: a plan from {a} to {b} is missing\nfrom {from}, the folder's plans reach: {}\nnothing was changed",
            dir.display(),
            if reachable.is_empty() {
                "nothing".to_string()
            } else {
                reachable.join(", ")
            }
        ),
        PathError::Tie { from, to, paths } => format!(
            "two paths of {} hop(s) lead from {from} to {to} in {}: a chain must not be picked by accident\n  {}\n  {}\nchoose one with --via RELEASE; nothing was changed",
            paths[0].len(),
            dir.display(),
            names(&paths[0]),
            names(&paths[1])
        ),
    }
}

/// Values missing at apply time, and `--var` for a name no plan of the
/// path declares: usage errors before anything runs.
fn check_values(args: &ApplyArgs, on_path: &[&Analysis]) -> Result<(), UsageError> {
    let mut declared: Vec<&str> = vec!["db"];
    for a in on_path {
        if let Some(plan) = &a.plan {
            declared.extend(plan.vars.iter().map(|(n, _)| n.as_str()));
        }
    }
    declared.sort_unstable();
    declared.dedup();
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
    let missing: Vec<String> = on_path.iter().flat_map(|a| a.missing.clone()).collect();
    if !missing.is_empty() {
        return Err(UsageError::Missing {
            what: missing.join(", "),
        });
    }
    Ok(())
}

/// The dry run's account of the chain: each hop's plan and steps, and
/// what the window holds.
fn describe_path(hops: &[Hop<'_>], from: &Version, to: &Version, keep_reached: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "dry run of a chain of {} hop(s), {from} -> {to}: nothing is changed",
        hops.len()
    );
    let mut copies = 0;
    let mut covered = 0;
    let mut steps = 0;
    for (k, hop) in hops.iter().enumerate() {
        let _ = writeln!(
            out,
            "\nhop {}: {} -> {}  {} (\"{}\")",
            k + 1,
            hop.plan.from,
            hop.plan.to,
            hop.opts.plan_path.display(),
            hop.plan.name
        );
        for (n, &i) in hop.order.iter().enumerate() {
            let step = &hop.plan.steps[i];
            steps += 1;
            let note = match step.kind {
                crate::plan::StepKind::Backup if k == 0 || keep_reached => {
                    copies += 1;
                    "  (copied)"
                }
                crate::plan::StepKind::Backup => {
                    covered += 1;
                    "  (covered by the chain's backup when it holds the same database and paths)"
                }
                _ => "",
            };
            let _ = writeln!(out, "  {:>2}. {} {}{note}", n + 1, step.kind, step.name);
        }
    }
    let _ = writeln!(
        out,
        "\nthe window holds {} hop(s), {steps} step(s), {copies} backup(s) copied{}",
        hops.len(),
        if covered > 0 {
            format!(", {covered} covered by the chain's backup")
        } else {
            String::new()
        }
    );
    let _ = writeln!(
        out,
        "{}",
        if keep_reached {
            "on a failure: the failed hop is undone, and the chain stops at the last release reached (--keep-reached)"
        } else {
            "on a failure: the whole chain is rolled back to where it started (one restore of the first hop's backup)"
        }
    );
    out
}
