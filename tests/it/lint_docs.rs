//! docs/lints.md kept honest: every rule has its section, each section's
//! bad example triggers the rule and its fix lints clean, and every other
//! plan on the page lints clean. Examples are linted as if they sat in
//! `plans/`, so relative script paths resolve against the repository's
//! example scripts.

use plan_runner::analysis::analyse;
use plan_runner::diagnostic::Code;
use plan_runner::lint::{FileReport, RULES, lint};
use plan_runner::resolve::Context;
use plan_runner::source::Source;

const PAGE: &str = "docs/lints.md";

/// A `## ` section: its heading and the ```plan blocks in it.
struct Section {
    heading: String,
    plans: Vec<String>,
}

fn sections() -> Vec<Section> {
    let text = std::fs::read_to_string(PAGE).expect("docs/lints.md exists");
    let mut sections = Vec::new();
    let mut current = Section {
        heading: String::new(),
        plans: Vec::new(),
    };
    let mut block: Option<String> = None;
    for line in text.lines() {
        if let Some(code) = block.as_mut() {
            if line == "```" {
                current.plans.push(std::mem::take(code));
                block = None;
            } else {
                code.push_str(line);
                code.push('\n');
            }
        } else if line == "```plan" {
            block = Some(String::new());
        } else if let Some(heading) = line.strip_prefix("## ") {
            sections.push(std::mem::replace(
                &mut current,
                Section {
                    heading: heading.to_string(),
                    plans: Vec::new(),
                },
            ));
        }
    }
    assert!(block.is_none(), "a ```plan block is never closed");
    sections.push(current);
    sections
}

fn lint_example(text: &str) -> FileReport {
    lint(&analyse(
        Source::new("plans/lints-example.plan", text),
        &Context::default(),
    ))
}

fn codes(report: &FileReport) -> Vec<&'static str> {
    report.diagnostics.iter().map(|d| d.code.as_str()).collect()
}

/// The codes documented on the page: every rule, and the codes about
/// `# lint:` comments.
fn documented() -> Vec<Code> {
    RULES
        .iter()
        .map(|r| r.code)
        .chain([Code::UnknownLintCode, Code::NotAllowable])
        .collect()
}

#[test]
fn every_rule_has_a_section() {
    let sections = sections();
    for code in documented() {
        let heading = format!("{} {}", code.as_str(), code.name());
        assert!(
            sections.iter().any(|s| s.heading == heading),
            "docs/lints.md has no `## {heading}`"
        );
    }
}

#[test]
fn bad_examples_trigger_their_rule_and_fixes_are_clean() {
    let mut checked = 0;
    for code in documented() {
        let heading = format!("{} {}", code.as_str(), code.name());
        let Some(section) = sections().into_iter().find(|s| s.heading == heading) else {
            continue;
        };
        let [bad, fix] = section.plans.as_slice() else {
            panic!("`## {heading}` needs a bad example and a fix, as two ```plan blocks");
        };
        let report = lint_example(bad);
        assert!(
            codes(&report).contains(&code.as_str()),
            "the bad example of {heading} gives {:?}",
            codes(&report)
        );
        let report = lint_example(fix);
        assert!(
            report.diagnostics.is_empty(),
            "the fix of {heading} gives {:?}",
            codes(&report)
        );
        checked += 1;
    }
    assert_eq!(checked, documented().len());
}

#[test]
fn other_examples_lint_clean() {
    let documented: Vec<String> = documented()
        .iter()
        .map(|c| format!("{} {}", c.as_str(), c.name()))
        .collect();
    let mut seen = 0;
    for section in sections() {
        if documented.contains(&section.heading) {
            continue;
        }
        for plan in &section.plans {
            let report = lint_example(plan);
            assert!(
                report.diagnostics.is_empty(),
                "an example under `{}` gives {:?}",
                section.heading,
                codes(&report)
            );
            seen += 1;
        }
    }
    assert!(seen > 0, "the suppression example is checked");
}

#[test]
fn examples_are_laid_out_as_plan_fmt_would() {
    for section in sections() {
        for plan in &section.plans {
            let source = Source::new("plans/lints-example.plan", plan.as_str());
            let analysis = analyse(source.clone(), &Context::default());
            assert_eq!(
                plan_runner::fmt::format(&analysis.ast, &source),
                *plan,
                "an example under `{}` is not formatted",
                section.heading
            );
        }
    }
}
