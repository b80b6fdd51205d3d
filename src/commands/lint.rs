//! `plan lint`: every finding in every file, in the format asked for.

use crate::analysis::analyse_path;
use crate::cli::{LintArgs, LintFormat};
use crate::commands::{UsageError, plan_files, print, stdout_style};
use crate::exit::Ending;
use crate::lint::{self, FileReport, output};
use crate::resolve::Context;

pub fn run(args: &LintArgs) -> Result<Ending, UsageError> {
    let deny = args.deny.is_some();
    let files = plan_files(&args.paths)?;
    let mut reports = Vec::with_capacity(files.len());
    for path in &files {
        let analysis =
            analyse_path(path, &Context::default()).map_err(|source| UsageError::Io {
                path: path.clone(),
                source,
            })?;
        reports.push(lint::lint(&analysis));
    }
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
