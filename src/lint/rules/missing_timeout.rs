//! W105 missing-timeout: an `update` or `script` without `timeout`. These
//! run the ERP's own code, which can hang on a lock or a prompt; without a
//! timeout the run waits forever with the server stopped.

use crate::diagnostic::{Code, Diagnostic};
use crate::lint::Context;
use crate::plan::StepKind;

pub fn check(cx: &Context<'_>) -> Vec<Diagnostic> {
    cx.all_steps()
        .filter(|s| matches!(s.kind, StepKind::Update | StepKind::Script))
        // A `timeout` that does not parse is already an error.
        .filter(|s| s.timeout.is_none() && s.attr_span("timeout").is_none())
        .map(|s| {
            let example = if s.kind == StepKind::Update {
                "2h"
            } else {
                "15m"
            };
            Diagnostic::new(
                Code::MissingTimeout,
                s.name_span,
                format!("`{}` step `{}` has no `timeout`", s.kind, s.name),
            )
            .label("may run forever")
            .help(format!(
                "add timeout = \"{example}\" (a generous bound on how long it may take): a hung step is then ended and the database rolled back"
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::diagnostic::Code;
    use crate::lint::testing::*;

    #[test]
    fn triggers_on_an_update_without_timeout() {
        let steps = CLEAN_STEPS.replace("  timeout = \"2h\"\n", "");
        let report = lint_text(&plan_with(&steps));
        assert_eq!(with_code(&report, Code::MissingTimeout).len(), 1);
        insta::assert_snapshot!("missing_timeout_human", human(&report));
        insta::assert_snapshot!("missing_timeout_json", json(&report));
    }

    #[test]
    fn timeouts_everywhere_are_clean() {
        let text = plan_with(CLEAN_STEPS).replace(
            "start old_up {\n    run = \"systemctl start odoo-1\"",
            "script old_up {\n    run = \"systemctl start odoo-1\"\n    timeout = \"1m\"",
        );
        let text = text.replace("  }\n}\n", "  }\n  start up {\n    run = \"x\"\n  }\n}\n");
        let report = lint_text(&text);
        assert!(report.diagnostics.is_empty(), "{:#?}", report.diagnostics);
    }
}
