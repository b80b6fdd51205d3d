//! W101 missing-backup: a step that changes data (`script`, `sql`,
//! `update`) is fine only when a backup of the database it changes comes
//! before it on every path from the roots. One pass over the topological
//! order, never an enumeration of paths: a step is covered when it is such
//! a backup, or when it has predecessors and every one of them is covered.

use crate::diagnostic::{Code, Diagnostic};
use crate::lint::Context;
use crate::plan::{Action, Step, Text};

pub fn check(cx: &Context<'_>) -> Vec<Diagnostic> {
    let (true, Some(database)) = (cx.complete, cx.database) else {
        return Vec::new();
    };
    let steps = cx.steps;
    let mut covered = vec![false; steps.len()];
    let mut findings = Vec::new();
    for &i in &cx.main.order {
        let step = &steps[i];
        let mut has_predecessor = false;
        let mut uncovered = None;
        for p in cx.main.predecessors(i) {
            has_predecessor = true;
            if !covered[p] {
                // The first in file order, so the report is stable.
                uncovered = Some(uncovered.map_or(p, |q: usize| q.min(p)));
            }
        }
        let after_covered = has_predecessor && uncovered.is_none();
        covered[i] = after_covered || backs_up(step, database);
        if step.kind.changes_data() && !after_covered {
            findings.push(finding(step, uncovered.map(|p| &steps[p]), database));
        }
    }
    findings
}

/// A backup of a database whose name did not resolve (an error already
/// says so) counts: which database it copies is not known, and a guess
/// would report every step after it.
fn backs_up(step: &Step, database: &Text) -> bool {
    matches!(&step.action, Action::Backup(b) if b.database == *database || b.database.has_unresolved())
}

fn finding(step: &Step, uncovered: Option<&Step>, database: &Text) -> Diagnostic {
    let d = Diagnostic::new(
        Code::MissingBackup,
        step.name_span,
        format!(
            "`{}` step `{}` changes data, but not every path to it passes a backup of `{database}`",
            step.kind, step.name
        ),
    )
    .help(format!(
        "add a `backup` step (of `{database}`, the default) and make this step wait for it, directly or through the steps before it; a backup taken outside the plan is silenced with `# lint: allow(missing-backup)` above the step"
    ));
    match uncovered {
        None => d.label("changes data; nothing runs before it"),
        Some(before) => {
            let d = d.label("changes data");
            match step.after.iter().find(|a| a.name == before.name) {
                Some(after) => d.also(
                    after.span,
                    format!("no backup of `{database}` on the way to `{}`", before.name),
                ),
                None => d,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::diagnostic::Code;
    use crate::lint::testing::*;

    #[test]
    fn triggers_on_a_path_that_skips_the_backup() {
        // `fix` waits for the backup and for `notify`, which does not.
        let steps = format!(
            "{CLEAN_STEPS}\nstart notify {{\n  run = \"systemctl start notify\"\n}}\n\nsql fix {{\n  after = [settled, notify]\n  sql   = \"update res_partner set active = true\"\n}}\n\nscript early {{\n  run     = \"/usr/local/bin/fix-partners\"\n  timeout = \"5m\"\n}}\n"
        );
        let report = lint_text(&plan_with(&steps));
        let found = with_code(&report, Code::MissingBackup);
        assert_eq!(found.len(), 2, "{:#?}", report.diagnostics);
        assert_eq!(report.diagnostics.len(), 2, "{:#?}", report.diagnostics);
        insta::assert_snapshot!("missing_backup_human", human(&report));
        insta::assert_snapshot!("missing_backup_json", json(&report));
    }

    #[test]
    fn a_backup_of_another_database_does_not_count() {
        let steps = CLEAN_STEPS.replace(
            "backup before {\n  after = old_down\n",
            "backup before {\n  after = old_down\n  database = \"other\"\n",
        );
        let report = lint_text(&plan_with(&steps));
        assert_eq!(with_code(&report, Code::MissingBackup).len(), 1);
    }

    #[test]
    fn a_backup_of_a_database_that_did_not_resolve_is_not_guessed_at() {
        let steps = CLEAN_STEPS.replace(
            "backup before {\n  after = old_down\n",
            "backup before {\n  after = old_down\n  database = \"${nope}\"\n",
        );
        let report = lint_text(&plan_with(&steps));
        let codes: Vec<&str> = report.diagnostics.iter().map(|d| d.code.as_str()).collect();
        assert_eq!(codes, ["E012"]);
    }

    #[test]
    fn a_backup_of_db_by_name_counts() {
        let steps = CLEAN_STEPS.replace(
            "backup before {\n  after = old_down\n",
            "backup before {\n  after = old_down\n  database = \"${db}\"\n",
        );
        let report = lint_text(&plan_with(&steps));
        assert!(report.diagnostics.is_empty(), "{:#?}", report.diagnostics);
    }

    #[test]
    fn covered_on_every_path_is_clean() {
        // A diamond: both branches start below the backup and join again.
        let steps = format!(
            "{CLEAN_STEPS}\nscript left {{\n  after   = before\n  run     = \"/usr/local/bin/left\"\n  timeout = \"5m\"\n}}\n\nstart right {{\n  after = before\n  run   = \"true\"\n}}\n\nsql join {{\n  after = [left, right]\n  sql   = \"select 1\"\n}}\n"
        );
        let report = lint_text(&plan_with(&steps));
        assert!(report.diagnostics.is_empty(), "{:#?}", report.diagnostics);
    }

    #[test]
    fn a_long_chain_is_one_pass() {
        // 5,000 steps after one backup: enumerating paths would not end.
        let mut steps = String::from("stop s {\n  run = \"x\"\n}\nbackup b {\n  after = s\n}\n");
        let mut prev = "b".to_string();
        for i in 0..5_000 {
            steps.push_str(&format!(
                "sql q{i} {{\n  after = {prev}\n  sql = \"select 1\"\n}}\n"
            ));
            prev = format!("q{i}");
        }
        let report = lint_text(&plan_with(&steps));
        assert!(with_code(&report, Code::MissingBackup).is_empty());
    }
}
