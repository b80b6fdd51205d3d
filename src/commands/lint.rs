//! `plan lint`: every finding in every file, in the format asked for.

use crate::analysis::analyse_path;
use crate::cli::{LintArgs, LintFormat};
use crate::commands::{UsageError, plan_files, print, stdout_style};
use crate::diagnostic::human;
use crate::exit::Exit;
use crate::resolve::Context;

pub fn run(args: &LintArgs) -> Result<Exit, UsageError> {
    let deny = args.deny.is_some();
    let mut errors = 0;
    let mut warnings = 0;
    let mut out = String::new();
    let files = plan_files(&args.paths)?;
    for path in &files {
        let analysis =
            analyse_path(path, &Context::default()).map_err(|source| UsageError::Io {
                path: path.clone(),
                source,
            })?;
        for d in &analysis.diagnostics {
            if d.is_error() {
                errors += 1;
            } else {
                warnings += 1;
            }
            if args.format == LintFormat::Human {
                out.push_str(&human::render(d, &analysis.source, stdout_style(), deny));
            }
        }
    }
    if args.format == LintFormat::Human {
        out.push_str(&format!(
            "{} file{} checked: {errors} error{}, {warnings} warning{}\n",
            files.len(),
            if files.len() == 1 { "" } else { "s" },
            if errors == 1 { "" } else { "s" },
            if warnings == 1 { "" } else { "s" },
        ));
    }
    print(&out);
    Ok(if errors > 0 || (deny && warnings > 0) {
        Exit::Failed
    } else {
        Exit::Success
    })
}
