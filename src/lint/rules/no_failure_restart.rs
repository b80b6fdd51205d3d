//! W104 no-failure-restart: the plan stops a server, but no `on_failure`
//! step starts one. After a rollback the customer has their old database
//! back and no server running on it. A plan that stops nothing has nothing
//! to restart, and is left alone. It reads the kinds of the steps as
//! written, so a step that did not resolve (an error already reported)
//! neither hides nor invents a finding.

use crate::ast::{self, Item};
use crate::diagnostic::{Code, Diagnostic};
use crate::lint::Context;
use crate::plan::StepKind;

pub fn check(cx: &Context<'_>) -> Vec<Diagnostic> {
    let is = |step: &ast::Step, kind: StepKind| step.kind.name == kind.as_str();
    let Some(stop) = cx.ast.items.iter().find_map(|i| match i {
        Item::Step(s) if is(s, StepKind::Stop) => Some(s),
        _ => None,
    }) else {
        return Vec::new();
    };
    let restarts = cx.ast.items.iter().any(|i| match i {
        Item::OnFailure(o) => o.steps.iter().any(|s| is(s, StepKind::Start)),
        _ => false,
    });
    if restarts {
        return Vec::new();
    }
    let mut d = Diagnostic::new(
        Code::NoFailureRestart,
        stop.name.span,
        format!(
            "`{}` stops a server, but no `on_failure` step starts one",
            stop.name.name
        ),
    )
    .label("stopped here, never restarted after a rollback")
    .help("add the restart of the old server: on_failure { start old_server_up { run = \"systemctl start ...\" } }");
    if let Some(block) = cx.ast.items.iter().find_map(|i| match i {
        Item::OnFailure(o) => Some(o),
        _ => None,
    }) {
        d = d.also(block.keyword, "no `start` step in here");
    }
    vec![d]
}

#[cfg(test)]
mod tests {
    use crate::diagnostic::Code;
    use crate::lint::testing::*;

    #[test]
    fn triggers_when_on_failure_restarts_nothing() {
        let text = plan_with(CLEAN_STEPS).replace(
            "start old_up {\n    run = \"systemctl start odoo-1\"",
            "stop cleanup {\n    run = \"systemctl stop odoo-2\"",
        );
        let report = lint_text(&text);
        assert_eq!(with_code(&report, Code::NoFailureRestart).len(), 1);
        insta::assert_snapshot!("no_failure_restart_human", human(&report));
        insta::assert_snapshot!("no_failure_restart_json", json(&report));
    }

    #[test]
    fn a_broken_step_neither_hides_nor_invents_it() {
        // The stop does not resolve (bad retries), nor does the restart
        // (bad timeout): what they are is still plain.
        let broken_stop = plan_with(CLEAN_STEPS)
            .replace("stop old_down {\n", "stop old_down {\n  retries = \"x\"\n");
        let without_restart = broken_stop
            .split("on_failure")
            .next()
            .unwrap_or_default()
            .to_string();
        let report = lint_text(&without_restart);
        assert_eq!(
            with_code(&report, Code::NoFailureRestart).len(),
            1,
            "{:#?}",
            report.diagnostics
        );
        let broken_restart =
            broken_stop.replace("start old_up {\n", "start old_up {\n    timeout = 5\n");
        let report = lint_text(&broken_restart);
        assert!(with_code(&report, Code::NoFailureRestart).is_empty());
    }

    #[test]
    fn a_plan_that_stops_nothing_needs_no_restart() {
        let steps = CLEAN_STEPS
            .replace(
                "stop old_down {\n  run = \"systemctl stop odoo-1\"\n}\n\n",
                "",
            )
            .replace(
                "backup before {\n  after = old_down\n}",
                "backup before {\n  method = \"dump\"\n}",
            );
        let text = plan_with(&steps);
        let text = text.split("on_failure").next().unwrap_or_default();
        let report = lint_text(text);
        assert!(report.diagnostics.is_empty(), "{:#?}", report.diagnostics);
    }
}
