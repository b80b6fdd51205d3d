//! W106 shell-step: a step that runs through `sh -c`. The words of `run`
//! are exactly what runs; a shell script is more for the reviewer to read
//! (globs, `$VAR`, redirections) and fails in more ways (a failing command
//! before a pipe is not an error).

use crate::diagnostic::{Code, Diagnostic};
use crate::lint::Context;
use crate::plan::Command;

use super::command;

pub fn check(cx: &Context<'_>) -> Vec<Diagnostic> {
    cx.all_steps()
        .filter(|s| matches!(command(s), Some(Command::Shell(_))))
        .map(|s| {
            Diagnostic::new(
                Code::ShellStep,
                s.attr_span("shell").unwrap_or(s.name_span),
                format!("step `{}` runs through `sh -c`", s.name),
            )
            .label("a shell script")
            .help("write run = \"program arg...\" (no shell, each word one argument); for a step that needs pipes or redirections, keep `shell` and add `# lint: allow(shell-step)` above it with the reason")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::diagnostic::Code;
    use crate::lint::testing::*;

    #[test]
    fn triggers_on_shell() {
        let steps = format!(
            "{CLEAN_STEPS}\nstart up {{\n  after = settled\n  shell = \"systemctl start odoo-2 && sleep 5\"\n}}\n"
        );
        let report = lint_text(&plan_with(&steps));
        assert_eq!(with_code(&report, Code::ShellStep).len(), 1);
        insta::assert_snapshot!("shell_step_human", human(&report));
        insta::assert_snapshot!("shell_step_json", json(&report));
    }

    #[test]
    fn run_is_clean() {
        let steps = format!(
            "{CLEAN_STEPS}\nstart up {{\n  after = settled\n  run   = \"systemctl start odoo-2\"\n}}\n"
        );
        let report = lint_text(&plan_with(&steps));
        assert!(report.diagnostics.is_empty(), "{:#?}", report.diagnostics);
    }
}
