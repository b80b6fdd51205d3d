//! Lint: the rules of docs/lints.md run over an analysed file, `# lint:
//! allow` comments applied, every finding returned as a value. Rendering
//! lives in `output/`; nothing here prints, reads the environment or opens
//! a database (the one file-system read is E027's existence check).

pub mod output;
pub mod rules;
mod suppression;

use std::path::Path;

use crate::analysis::Analysis;
use crate::ast::{self, Item};
use crate::diagnostic::{Code, Diagnostic};
use crate::graph::Graph;
use crate::plan::{Step, Text};
use crate::source::Source;

pub use rules::{RULES, Rule};

/// What a rule may read about one file: the steps that resolved, whether
/// or not the plan block did (a broken header hides no other finding).
pub struct Context<'a> {
    pub source: &'a Source,
    pub ast: &'a ast::File,
    /// The main steps that resolved, in file order.
    pub steps: &'a [Step],
    /// The `on_failure` steps that resolved.
    pub on_failure: &'a [Step],
    /// The declared variables that resolved, in name order.
    pub vars: &'a [(String, Text)],
    /// The database the steps change (`Plan::database`).
    pub database: Option<&'a Text>,
    /// The folder relative paths start from.
    pub folder: &'a Path,
    /// The plan block's `erp_config`, when it names one and resolved.
    pub erp_config: Option<&'a Text>,
    /// The graph of `steps`.
    pub main: &'a Graph,
    /// The graph of `on_failure`.
    pub failure: &'a Graph,
    /// Whether every step of the file resolved. When one did not (an error
    /// already reported), the graph lacks it, and a rule that follows paths
    /// would see roots and dead ends that are not in the file.
    pub complete: bool,
    /// Every step block of the file (`on_failure` ones included), in file
    /// order.
    ast_steps: Vec<&'a ast::Step>,
}

impl<'a> Context<'a> {
    /// The block a resolved step was built from.
    pub fn ast_step(&self, step: &Step) -> Option<&'a ast::Step> {
        let at = self
            .ast_steps
            .partition_point(|s| s.span.start < step.span.start);
        self.ast_steps
            .get(at)
            .copied()
            .filter(|s| s.span == step.span)
    }

    /// The plan block (there is one when the plan resolved).
    pub fn plan_block(&self) -> Option<&'a ast::PlanBlock> {
        self.ast.items.iter().find_map(|i| match i {
            Item::Plan(p) => Some(p),
            _ => None,
        })
    }

    /// The main steps, then the `on_failure` ones.
    pub fn all_steps(&self) -> impl Iterator<Item = &'a Step> + 'a {
        self.steps.iter().chain(self.on_failure)
    }
}

/// Every step block of a file, in file order.
fn ast_steps(file: &ast::File) -> Vec<&ast::Step> {
    let mut steps: Vec<&ast::Step> = file
        .items
        .iter()
        .flat_map(|item| match item {
            Item::Step(s) => std::slice::from_ref(s),
            Item::OnFailure(o) => o.steps.as_slice(),
            _ => &[],
        })
        .collect();
    steps.sort_by_key(|s| s.span.start);
    steps
}

/// The findings about one file.
#[derive(Clone, Debug)]
pub struct FileReport {
    pub source: Source,
    /// Language errors and rule findings, in file order.
    pub diagnostics: Vec<Diagnostic>,
    /// How many rule findings a `# lint: allow` comment silenced.
    pub allowed: usize,
}

impl FileReport {
    pub fn errors(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.is_error()).count()
    }

    pub fn warnings(&self) -> usize {
        self.diagnostics.len() - self.errors()
    }

    /// The findings that make `plan apply` refuse this plan.
    pub fn blocking(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| blocks_apply(d))
    }

    /// Whether `plan apply` refuses this plan before anything runs. `plan
    /// lint` fails on exactly this, so that a plan that passed review is
    /// never refused in the maintenance window.
    pub fn apply_refuses(&self) -> bool {
        self.blocking().next().is_some()
    }
}

/// Whether a finding stops `plan apply`: every error, and W101 "changes
/// data without a backup" (a silenced one is no longer a finding). The one
/// place that decides; `plan lint` and `plan apply` both ask it.
pub fn blocks_apply(d: &Diagnostic) -> bool {
    d.is_error() || d.code == Code::MissingBackup
}

/// Lints an analysed file: its language errors, then every rule's findings
/// that no `# lint: allow` silences, and the problems of those comments.
pub fn lint(analysis: &Analysis) -> FileReport {
    let mut diagnostics = analysis.diagnostics.clone();
    let allows = suppression::Allows::collect(&analysis.source, &analysis.ast);
    let mut allowed = 0;
    let (vars, database, folder) = match (&analysis.plan, &analysis.body) {
        (Some(plan), _) => (
            plan.vars.as_slice(),
            plan.database.as_ref(),
            plan.folder.as_path(),
        ),
        (None, Some(body)) => (
            body.vars.as_slice(),
            body.database.as_ref(),
            body.folder.as_path(),
        ),
        (None, None) => (&[][..], None, Path::new(".")),
    };
    if let (Some((steps, on_failure)), Some((main, failure))) = (analysis.steps(), &analysis.graphs)
    {
        let ast_steps = ast_steps(&analysis.ast);
        let cx = Context {
            source: &analysis.source,
            ast: &analysis.ast,
            steps,
            on_failure,
            vars,
            database,
            folder,
            erp_config: analysis.plan.as_ref().and_then(|p| p.erp_config.as_ref()),
            main,
            failure,
            complete: ast_steps.len() == steps.len() + on_failure.len(),
            ast_steps,
        };
        for rule in RULES {
            for finding in (rule.check)(&cx) {
                debug_assert_eq!(finding.code, rule.code, "a rule reports its own code");
                if allows.allows(&finding) {
                    allowed += 1;
                } else {
                    diagnostics.push(finding);
                }
            }
        }
    }
    diagnostics.extend(allows.diagnostics);
    diagnostics.sort_by_key(|d| (d.primary.span.start, d.code));
    FileReport {
        source: analysis.source.clone(),
        diagnostics,
        allowed,
    }
}

/// Test helpers shared by the rules' tests: lint a text, and show the
/// result the way each output format shows it.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::analysis::analyse;
    use crate::diagnostic::Code;
    use crate::diagnostic::human::Style;
    use crate::resolve::Context as ResolveContext;

    /// Lints `text` as a file named `name` (its folder is where relative
    /// paths are looked for, from the crate's root).
    pub fn lint_named(name: &str, text: &str) -> FileReport {
        lint(&analyse(
            Source::new(name, text),
            &ResolveContext::default(),
        ))
    }

    pub fn lint_text(text: &str) -> FileReport {
        lint_named("test.plan", text)
    }

    /// The findings with this code.
    pub fn with_code(report: &FileReport, code: Code) -> Vec<&Diagnostic> {
        report
            .diagnostics
            .iter()
            .filter(|d| d.code == code)
            .collect()
    }

    pub fn human(report: &FileReport) -> String {
        output::human::render(std::slice::from_ref(report), Style::plain(), false)
    }

    pub fn json(report: &FileReport) -> String {
        output::json::render(std::slice::from_ref(report))
    }

    /// A plan that passes every rule, to build cases on: `steps` go
    /// between the header and `on_failure`.
    pub fn plan_with(steps: &str) -> String {
        format!(
            "plan \"t\" {{\n  from = \"1.0\"\n  to   = \"2.0\"\n  update_command = \"odoo -d ${{db}} -u ${{modules}} --stop-after-init\"\n}}\n\n{steps}\non_failure {{\n  start old_up {{\n    run = \"systemctl start odoo-1\"\n  }}\n}}\n"
        )
    }

    /// The steps of the canonical migration, clean under every rule.
    pub const CLEAN_STEPS: &str = r#"stop old_down {
  run = "systemctl stop odoo-1"
}

backup before {
  after = old_down
}

update all {
  after   = before
  modules = "all"
  timeout = "2h"
}

check settled {
  after  = all
  sql    = "select count(*) from ir_module_module where state like 'to %'"
  expect = "0"
}
"#;
}

#[cfg(test)]
mod tests {
    use super::testing::*;

    #[test]
    fn the_clean_base_plan_is_clean() {
        let report = lint_text(&plan_with(CLEAN_STEPS));
        assert!(report.diagnostics.is_empty(), "{:#?}", report.diagnostics);
    }

    /// The base plan's update without its `timeout` (W105), and its check
    /// reading an undefined variable (E012).
    fn with_undefined_and_untimed(steps: &str) -> String {
        plan_with(
            &steps
                .replace("  timeout = \"2h\"\n", "")
                .replace("'to %'", "'${state}'"),
        )
    }

    #[test]
    fn an_undefined_variable_hides_no_finding() {
        let report = lint_text(&with_undefined_and_untimed(CLEAN_STEPS));
        let codes: Vec<&str> = report.diagnostics.iter().map(|d| d.code.as_str()).collect();
        assert_eq!(codes, ["W105", "E012"]);
        // Several at once, in the step that lacks its timeout too, and a
        // path rule through it.
        let steps = with_undefined_and_untimed(CLEAN_STEPS)
            .replace(
                "modules = \"all\"",
                "modules = \"all\"\n  env = { A = \"${a}\", B = \"${b}\" }",
            )
            .replace("after   = before\n", "after   = old_down\n");
        let report = lint_text(&steps);
        let codes: Vec<&str> = report.diagnostics.iter().map(|d| d.code.as_str()).collect();
        assert_eq!(codes, ["W101", "W105", "E012", "E012", "E012"]);
    }

    #[test]
    fn a_plan_block_that_does_not_resolve_hides_no_finding() {
        let text = with_undefined_and_untimed(CLEAN_STEPS).replace("  from = \"1.0\"\n", "");
        let report = lint_text(&text);
        let codes: Vec<&str> = report.diagnostics.iter().map(|d| d.code.as_str()).collect();
        assert_eq!(codes, ["E024", "W105", "E012"]);
        let text = text.replace("  to   = \"2.0\"\n", "  from = \"one\"\n  to   = \"2.0\"\n");
        let report = lint_text(&text);
        let codes: Vec<&str> = report.diagnostics.iter().map(|d| d.code.as_str()).collect();
        assert_eq!(codes, ["E016", "W105", "E012"]);
    }

    #[test]
    fn language_errors_are_reported_and_rules_still_run() {
        // `s` is lost to its error, so `fix` looks like a root: path rules
        // stay quiet rather than guess, per-step rules still speak.
        let report = lint_text(&plan_with(&format!(
            "{CLEAN_STEPS}\nstop s {{\n  run = \"a\"\n  retries = \"many\"\n}}\n\nsql fix {{\n  after = s\n  sql = \"update x set y = 1\"\n}}\n\nscript t {{\n  after = settled\n  run = \"a\"\n}}\n",
        )));
        let codes: Vec<&str> = report.diagnostics.iter().map(|d| d.code.as_str()).collect();
        assert_eq!(codes, ["E023", "W105"]);
    }
}
