//! Lint findings for people: each diagnostic drawn by miette with its
//! source lines, then one summary line for the whole run.

use crate::diagnostic::human::{self, Style};
use crate::lint::FileReport;

/// Every finding of every file, then the summary.
pub fn render(reports: &[FileReport], style: Style, deny_warnings: bool) -> String {
    let mut out = String::new();
    for report in reports {
        for d in &report.diagnostics {
            out.push_str(&human::render(d, &report.source, style, deny_warnings));
        }
    }
    out.push_str(&summary(reports, deny_warnings));
    out
}

/// `2 files checked: 1 error, 3 warnings (1 allowed by a comment)`.
pub fn summary(reports: &[FileReport], deny_warnings: bool) -> String {
    let files = reports.len();
    let errors: usize = reports.iter().map(FileReport::errors).sum();
    let warnings: usize = reports.iter().map(FileReport::warnings).sum();
    let allowed: usize = reports.iter().map(|r| r.allowed).sum();
    let mut line = format!(
        "{files} {} checked: {errors} {}, {warnings} {}",
        plural(files, "file"),
        plural(errors, "error"),
        plural(warnings, "warning"),
    );
    if deny_warnings && warnings > 0 {
        line.push_str(" (denied)");
    }
    // A warning that fails the run on its own must say so, or exit 1 after
    // "0 errors" reads as a bug.
    let blocking: usize = reports
        .iter()
        .map(|r| r.blocking().filter(|d| !d.is_error()).count())
        .sum();
    if blocking > 0 {
        line.push_str(&format!(
            "; {blocking} {} `plan apply`",
            if blocking == 1 {
                "warning blocks"
            } else {
                "warnings block"
            }
        ));
    }
    if allowed > 0 {
        line.push_str(&format!(
            "; {allowed} {} by `# lint: allow`",
            if allowed == 1 {
                "finding allowed"
            } else {
                "findings allowed"
            }
        ));
    }
    line.push('\n');
    line
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        word.to_string()
    } else {
        format!("{word}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::testing::*;

    #[test]
    fn summary_counts_every_file() {
        let clean = lint_text(&plan_with(CLEAN_STEPS));
        let broken = lint_text(&plan_with(&CLEAN_STEPS.replace("  timeout = \"2h\"\n", "")));
        let empty = lint_text("");
        let reports = [clean, broken, empty];
        assert_eq!(
            summary(&reports, false),
            "3 files checked: 1 error, 1 warning\n"
        );
        assert_eq!(
            summary(&reports, true),
            "3 files checked: 1 error, 1 warning (denied)\n"
        );
    }

    #[test]
    fn summary_names_warnings_that_apply_refuses() {
        let unprotected = lint_text(&plan_with(&CLEAN_STEPS.replace(
            "update all {\n  after   = before\n",
            "update all {\n  after   = old_down\n",
        )));
        assert!(unprotected.apply_refuses());
        assert_eq!(
            summary(&[unprotected], false),
            "1 file checked: 0 errors, 1 warning; 1 warning blocks `plan apply`\n"
        );
    }
}
