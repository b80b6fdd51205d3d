//! W103 update-without-check: an `update` with no `check` among its
//! descendants. The ERP server can exit 0 with modules left half-installed;
//! only a check after it turns that into a failure (and a rollback).

use crate::diagnostic::{Code, Diagnostic};
use crate::lint::Context;
use crate::plan::StepKind;

pub fn check(cx: &Context<'_>) -> Vec<Diagnostic> {
    if !cx.complete {
        return Vec::new();
    }
    let steps = cx.steps;
    // Whether a `check` runs after the step because of it: one pass in
    // reverse topological order.
    let mut checked = vec![false; steps.len()];
    let mut findings = Vec::new();
    for &i in cx.main.order.iter().rev() {
        checked[i] = cx
            .main
            .successors(i)
            .any(|s| checked[s] || steps[s].kind == StepKind::Check);
        let step = &steps[i];
        if step.kind == StepKind::Update && !checked[i] {
            findings.push(
                Diagnostic::new(
                    Code::UpdateWithoutCheck,
                    step.name_span,
                    format!("no `check` step runs after update `{}`", step.name),
                )
                .label("its result is never checked")
                .help(format!(
                    "add a check that waits for it, such as: check settled {{ after = {} sql = \"select count(*) from ir_module_module where state like 'to %'\" expect = \"0\" }}",
                    step.name
                )),
            );
        }
    }
    findings.sort_by_key(|d| d.primary.span.start);
    findings
}

#[cfg(test)]
mod tests {
    use crate::diagnostic::Code;
    use crate::lint::testing::*;

    #[test]
    fn triggers_on_an_update_with_no_check_after_it() {
        // The check waits for the backup, so it runs before the update.
        let steps = CLEAN_STEPS.replace("after  = all", "after  = before");
        let report = lint_text(&plan_with(&steps));
        assert_eq!(with_code(&report, Code::UpdateWithoutCheck).len(), 1);
        insta::assert_snapshot!("update_without_check_human", human(&report));
        insta::assert_snapshot!("update_without_check_json", json(&report));
    }

    #[test]
    fn a_check_further_down_counts() {
        let steps = CLEAN_STEPS
            .replace("after  = all", "after  = restarted")
            .replace(
                "check settled",
                "start restarted {\n  after = all\n  run   = \"systemctl start odoo-2\"\n}\n\ncheck settled",
            );
        let report = lint_text(&plan_with(&steps));
        assert!(report.diagnostics.is_empty(), "{:#?}", report.diagnostics);
    }
}
