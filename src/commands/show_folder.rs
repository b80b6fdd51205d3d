//! `plan show DIR [--to X]`: a folder's plans as a graph of releases, and
//! with `--to`, the path a chain to X takes from each release that leads
//! to it (the same choice `plan apply DIR --to X` makes). Reads no
//! database.

use std::fmt::Write as _;

use serde::Serialize;

use crate::chain::{PathError, Releases};
use crate::cli::{ShowArgs, ShowFormat};
use crate::commands::{UsageError, print};
use crate::exit::Ending;
use crate::resolve::Context;

#[derive(Debug, Serialize)]
struct Document {
    format_version: u32,
    plans: Vec<PlanEdge>,
    releases: Vec<String>,
    /// With `--to`: from each release below it, the chain's plans, or why
    /// there is none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    paths: Vec<Path>,
}

#[derive(Debug, Serialize)]
struct PlanEdge {
    file: String,
    name: String,
    from: String,
    to: String,
    steps: usize,
}

#[derive(Debug, Serialize)]
struct Path {
    from: String,
    to: String,
    /// The plan files in order; empty when there is no single path.
    plans: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<String>,
}

pub fn run(args: &ShowArgs) -> Result<Ending, UsageError> {
    let folder = crate::commands::chain::load(&args.plan, &Context::default())?;
    if folder.report_errors() {
        return Ok(Ending::checked(true));
    }
    let edges: Vec<PlanEdge> = folder
        .files
        .iter()
        .zip(&folder.analyses)
        .filter_map(|(f, a)| {
            let plan = a.plan.as_ref()?;
            Some(PlanEdge {
                file: f.file_name()?.to_string_lossy().into_owned(),
                name: plan.name.clone(),
                from: plan.from.to_string(),
                to: plan.to.to_string(),
                steps: plan.steps.len(),
            })
        })
        .collect();
    let pairs: Vec<_> = folder
        .analyses
        .iter()
        .filter_map(|a| a.plan.as_ref().map(|p| (p.from.clone(), p.to.clone())))
        .collect();
    let releases = Releases::new(&pairs);
    let mut paths = Vec::new();
    if let Some(to) = &args.to {
        let mut known: Vec<_> = pairs.iter().map(|(from, _)| from.clone()).collect();
        known.sort();
        known.dedup();
        if !releases.known().contains(&to.to_string()) {
            paths.push(Path {
                from: String::new(),
                to: to.to_string(),
                plans: Vec::new(),
                problem: Some(format!(
                    "no plan mentions release {to}; the releases known: {}",
                    releases.known().join(", ")
                )),
            });
        }
        for from in known.iter().filter(|f| *f < to) {
            let (plans, problem) = match releases.path(from, to, &[]) {
                Ok(path) => (path.iter().map(|&i| edges[i].file.clone()).collect(), None),
                Err(PathError::Tie { paths, .. }) => (
                    Vec::new(),
                    Some(format!(
                        "a tie: {} or {} (choose with --via)",
                        paths[0]
                            .iter()
                            .map(|&i| edges[i].file.as_str())
                            .collect::<Vec<_>>()
                            .join(", then "),
                        paths[1]
                            .iter()
                            .map(|&i| edges[i].file.as_str())
                            .collect::<Vec<_>>()
                            .join(", then ")
                    )),
                ),
                Err(PathError::NoPath {
                    missing: (a, b), ..
                }) => (
                    Vec::new(),
                    Some(format!("no path: a plan from {a} to {b} is missing")),
                ),
                Err(PathError::Unknown { release, .. }) => {
                    (Vec::new(), Some(format!("release {release} is unknown")))
                }
            };
            paths.push(Path {
                from: from.to_string(),
                to: to.to_string(),
                plans,
                problem,
            });
        }
    }
    let document = Document {
        format_version: 1,
        plans: edges,
        releases: releases.known(),
        paths,
    };
    print(&match args.format {
        ShowFormat::Human => human(&document),
        ShowFormat::Json => {
            let mut text = serde_json::to_string_pretty(&document).unwrap_or_default();
            text.push('\n');
            text
        }
        ShowFormat::Yaml => serde_yaml::to_string(&document).unwrap_or_default(),
    });
    Ok(Ending::checked(false))
}

fn human(doc: &Document) -> String {
    let mut out = String::from("plans, as a graph of releases:\n");
    for p in &doc.plans {
        let _ = writeln!(
            out,
            "  {} -> {}  {}  \"{}\" ({} steps)",
            p.from, p.to, p.file, p.name, p.steps
        );
    }
    let _ = writeln!(out, "releases: {}", doc.releases.join(", "));
    for p in &doc.paths {
        match &p.problem {
            Some(problem) if p.from.is_empty() => {
                let _ = writeln!(out, "to {}: {problem}", p.to);
            }
            Some(problem) => {
                let _ = writeln!(out, "from {} to {}: {problem}", p.from, p.to);
            }
            None => {
                let _ = writeln!(
                    out,
                    "from {} to {}: {} ({} hop(s))",
                    p.from,
                    p.to,
                    p.plans.join(", then "),
                    p.plans.len()
                );
            }
        }
    }
    out
}
