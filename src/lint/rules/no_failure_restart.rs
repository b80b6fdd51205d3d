//! W104 no-failure-restart: the plan stops a server, but no `on_failure`
//! step starts one. After a rollback the customer has their old database
//! back and no server running on it. A plan that stops nothing has nothing
//! to restart, and is left alone.

use crate::ast::Item;
use crate::diagnostic::{Code, Diagnostic};
use crate::lint::Context;
use crate::plan::StepKind;

pub fn check(cx: &Context<'_>) -> Vec<Diagnostic> {
    if !cx.complete {
        return Vec::new();
    }
    let Some(stop) = cx.plan.steps.iter().find(|s| s.kind == StepKind::Stop) else {
        return Vec::new();
    };
    if cx.plan.on_failure.iter().any(|s| s.kind == StepKind::Start) {
        return Vec::new();
    }
    let mut d = Diagnostic::new(
        Code::NoFailureRestart,
        stop.name_span,
        format!(
            "`{}` stops a server, but no `on_failure` step starts one",
            stop.name
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
