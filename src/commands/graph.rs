//! `plan graph`: the dependency graph as dot or Mermaid.

use crate::analysis::analyse_path;
use crate::cli::{GraphArgs, GraphFormat};
use crate::commands::{UsageError, print, report};
use crate::exit::Ending;
use crate::graph::render;
use crate::resolve::Context;

pub fn run(args: &GraphArgs) -> Result<Ending, UsageError> {
    if args.plan.is_dir() {
        // A folder: its graph of releases, each plan an edge (docs/chains.md).
        let folder = crate::commands::chain::load(&args.plan, &Context::default())?;
        if folder.report_errors() {
            return Ok(Ending::checked(true));
        }
        let edges = folder.edges();
        print(&match args.format {
            GraphFormat::Dot => render::releases_dot(&edges),
            GraphFormat::Mermaid => render::releases_mermaid(&edges),
        });
        return Ok(Ending::checked(false));
    }
    let analysis =
        analyse_path(&args.plan, &Context::default()).map_err(|source| io(args, source))?;
    let errors: Vec<_> = analysis
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .cloned()
        .collect();
    let (Some(plan), Some((main, failure)), true) =
        (&analysis.plan, &analysis.graphs, errors.is_empty())
    else {
        report(&errors, &analysis.source);
        return Ok(Ending::checked(true));
    };
    print(&match args.format {
        GraphFormat::Dot => render::dot(plan, main, failure),
        GraphFormat::Mermaid => render::mermaid(plan, main, failure),
    });
    Ok(Ending::checked(false))
}

fn io(args: &GraphArgs, source: std::io::Error) -> UsageError {
    match source.kind() {
        std::io::ErrorKind::NotFound => UsageError::NoSuchPath {
            path: args.plan.clone(),
        },
        _ => UsageError::Io {
            path: args.plan.clone(),
            source,
        },
    }
}
