//! Lint findings as a JSON array, one object per finding, for scripts and
//! CI: `code`, `severity` (`error` or `warning`), `file`, `line`, `column`,
//! `end_line`, `end_column` (1-based, in characters; the end is just after
//! the last character), `message`, `help` (`null` when there is none),
//! `blocks_apply` (whether `plan apply` refuses the plan for it).

use serde::Serialize;

use super::region;
use crate::diagnostic::Severity;
use crate::lint::FileReport;

#[derive(Serialize)]
struct Finding<'a> {
    code: &'static str,
    severity: Severity,
    file: String,
    line: usize,
    column: usize,
    end_line: usize,
    end_column: usize,
    message: &'a str,
    help: Option<&'a str>,
    blocks_apply: bool,
}

/// The array, pretty-printed, with a final newline.
pub fn render(reports: &[FileReport]) -> String {
    let findings: Vec<Finding<'_>> = reports
        .iter()
        .flat_map(|report| {
            let file = report.source.name();
            report.diagnostics.iter().map(move |d| {
                let (start, end) = region(&report.source, d.primary.span);
                Finding {
                    code: d.code.as_str(),
                    severity: d.severity(),
                    file: file.clone(),
                    line: start.line,
                    column: start.column,
                    end_line: end.line,
                    end_column: end.column,
                    message: &d.message,
                    help: d.help.as_deref(),
                    blocks_apply: crate::lint::blocks_apply(d),
                }
            })
        })
        .collect();
    // Serializing plain structs of strings and numbers cannot fail.
    let mut out = serde_json::to_string_pretty(&findings).unwrap_or_else(|_| "[]".into());
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::testing::*;

    #[test]
    fn columns_count_characters() {
        // `é` is two bytes and one character: `password` starts at column
        // 12, byte 13.
        let report = lint_text(&plan_with(&format!(
            "{CLEAN_STEPS}\nstart up {{\n  run = \"é password=hunter2\"\n  after = settled\n}}\n"
        )));
        let value: serde_json::Value =
            serde_json::from_str(&render(std::slice::from_ref(&report))).expect("valid JSON");
        let found = value
            .as_array()
            .and_then(|a| a.iter().find(|f| f["code"] == "W107"))
            .expect("a literal-secret finding");
        assert_eq!(found["column"], 12);
        assert_eq!(found["end_column"], 28);
        assert_eq!(found["line"], found["end_line"]);
        assert_eq!(found["severity"], "warning");
        assert_eq!(found["blocks_apply"], false);
    }

    #[test]
    fn no_finding_is_an_empty_array() {
        let report = lint_text(&plan_with(CLEAN_STEPS));
        assert_eq!(render(&[report]), "[]\n");
    }
}
