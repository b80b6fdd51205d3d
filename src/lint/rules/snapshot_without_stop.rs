//! W102 snapshot-without-stop: a snapshot backup with no `stop` step among
//! its ancestors. PostgreSQL copies a database as a template only while no
//! one else is connected to it, and a running ERP server always is.

use crate::diagnostic::{Code, Diagnostic};
use crate::lint::Context;
use crate::plan::{Action, BackupMethod, StepKind};

pub fn check(cx: &Context<'_>) -> Vec<Diagnostic> {
    if !cx.complete {
        return Vec::new();
    }
    let steps = cx.steps;
    // Whether a `stop` runs before the step, on some path: one pass in
    // topological order.
    let mut stopped = vec![false; steps.len()];
    let mut findings = Vec::new();
    for &i in &cx.main.order {
        stopped[i] = cx
            .main
            .predecessors(i)
            .any(|p| stopped[p] || steps[p].kind == StepKind::Stop);
        let step = &steps[i];
        if let Action::Backup(backup) = &step.action
            && backup.method == BackupMethod::Snapshot
            && !stopped[i]
        {
            let mut d = Diagnostic::new(
                Code::SnapshotWithoutStop,
                step.name_span,
                format!("snapshot backup `{}` does not wait for a `stop` step", step.name),
            )
            .label("may run while the ERP server holds connections")
            .help("add `after = NAME` naming the `stop` step of the old server, or use method = \"dump\", which works while the server runs");
            if let Some(method) = step.attr_span("method") {
                d = d.also(method, "a snapshot needs the database to itself");
            }
            findings.push(d);
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use crate::diagnostic::Code;
    use crate::lint::testing::*;

    #[test]
    fn triggers_on_a_snapshot_before_the_stop() {
        let steps = CLEAN_STEPS.replace(
            "backup before {\n  after = old_down\n}",
            "backup before {\n  method = \"snapshot\"\n}",
        );
        let report = lint_text(&plan_with(&steps));
        assert_eq!(with_code(&report, Code::SnapshotWithoutStop).len(), 1);
        insta::assert_snapshot!("snapshot_without_stop_human", human(&report));
        insta::assert_snapshot!("snapshot_without_stop_json", json(&report));
    }

    #[test]
    fn a_stop_further_up_counts_and_a_dump_needs_none() {
        let steps = format!(
            "{CLEAN_STEPS}\nbackup again {{\n  after = settled\n}}\n\nbackup dumped {{\n  method = \"dump\"\n}}\n"
        );
        let report = lint_text(&plan_with(&steps));
        assert!(report.diagnostics.is_empty(), "{:#?}", report.diagnostics);
    }
}
