//! `plan graph`: the dependency graph as dot or Mermaid.

use crate::analysis::analyse_path;
use crate::cli::{GraphArgs, GraphFormat};
use crate::commands::{UsageError, print, report};
use crate::exit::Ending;
use crate::graph::render;
use crate::resolve::Context;

pub fn run(args: &GraphArgs) -> Result<Ending, UsageError> {
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
