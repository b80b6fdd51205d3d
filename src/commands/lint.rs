//! `plan lint`: every finding in every file, in the format asked for.

use std::path::{Path, PathBuf};

use crate::analysis::{Analysis, analyse_path};
use crate::cli::{LintArgs, LintFormat};
use crate::commands::{UsageError, plan_files, print, stdout_style};
use crate::exit::Ending;
use crate::lint::{self, FileReport, output};
use crate::resolve::Context;

pub fn run(args: &LintArgs) -> Result<Ending, UsageError> {
    let deny = args.deny.is_some();
    let files = plan_files(&args.paths)?;
    let mut analyses = Vec::with_capacity(files.len());
    for path in &files {
        analyses.push(analyse_path(path, &Context::default()).map_err(|source| {
            UsageError::Io {
                path: path.clone(),
                source,
            }
        })?);
    }
    let mut reports: Vec<FileReport> = analyses.iter().map(lint::lint).collect();
    folder_findings(&args.paths, &files, &analyses, &mut reports);
    print(&match args.format {
        LintFormat::Human => output::human::render(&reports, stdout_style(), deny),
        LintFormat::Json => output::json::render(&reports),
        LintFormat::Sarif => output::sarif::render(&reports, output::sarif::docs_base().as_deref()),
    });
    // Whatever `plan apply` would refuse fails here too (the same
    // function decides), errors and unsilenced W101 alike.
    let refused = reports.iter().any(FileReport::apply_refuses);
    let warnings: usize = reports.iter().map(FileReport::warnings).sum();
    Ok(if refused || (deny && warnings > 0) {
        Ending::checked(true)
    } else {
        Ending::checked(false)
    })
}

/// The plans directly in one folder form a graph of releases (a chain,
/// docs/chains.md): two plans for one pair, or a circle of releases, are
/// findings on the file that makes them. Only folders `plan lint` was
/// asked to search: files named one by one are not a chain.
fn folder_findings(
    given: &[PathBuf],
    files: &[PathBuf],
    analyses: &[Analysis],
    reports: &mut [FileReport],
) {
    let searched = |f: &PathBuf| given.iter().any(|g| g.is_dir() && f.starts_with(g));
    let mut folders: Vec<&Path> = files
        .iter()
        .filter(|f| searched(f))
        .filter_map(|f| f.parent())
        .collect();
    folders.sort();
    folders.dedup();
    for folder in folders {
        let members: Vec<usize> = (0..files.len())
            .filter(|&i| files[i].parent() == Some(folder) && searched(&files[i]))
            .collect();
        let set: Vec<&Analysis> = members.iter().map(|&i| &analyses[i]).collect();
        for (k, finding) in crate::chain::folder::findings(&set) {
            let report = &mut reports[members[k]];
            report.diagnostics.push(finding);
            report
                .diagnostics
                .sort_by_key(|d| (d.primary.span.start, d.code));
        }
    }
}
