//! The plans of one folder taken together: which files are its plans (the
//! `*.plan` files directly in it; sub-folders hold scripts, fixtures and
//! folders of their own), and what is wrong with them as a set (two plans
//! for one pair of releases, a cycle among releases). Never runs anything.

use std::path::{Path, PathBuf};

use crate::analysis::Analysis;
use crate::ast::{Item, PlanBlock};
use crate::diagnostic::{Code, Diagnostic};
use crate::source::Span;

use super::Releases;

/// The `*.plan` regular files directly in `dir`, sorted.
pub fn plan_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "plan")
            && std::fs::metadata(&path).is_ok_and(|m| m.is_file())
        {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// The findings about the plans of one folder as a graph of releases:
/// `(index into analyses, finding)`. Plans whose block did not resolve
/// are left out (their own errors say why).
pub fn findings(analyses: &[&Analysis]) -> Vec<(usize, Diagnostic)> {
    let with_plan: Vec<(usize, &Analysis)> = analyses
        .iter()
        .enumerate()
        .filter(|(_, a)| a.plan.is_some())
        .map(|(i, a)| (i, *a))
        .collect();
    let pairs: Vec<_> = with_plan
        .iter()
        .filter_map(|(_, a)| a.plan.as_ref().map(|p| (p.from.clone(), p.to.clone())))
        .collect();
    let releases = Releases::new(&pairs);
    let name = |k: usize| with_plan[k].1.source.name();
    let pair = |k: usize| {
        let plan = with_plan[k].1.plan.as_ref().expect("filtered above");
        format!("{} -> {}", plan.from, plan.to)
    };
    let mut found = Vec::new();
    for (first, later) in releases.duplicates() {
        let (i, analysis) = with_plan[later];
        found.push((
            i,
            Diagnostic::new(
                Code::DuplicatePair,
                pair_span(analysis),
                format!(
                    "two plans in this folder migrate {}: this one and `{}`",
                    pair(later),
                    name(first)
                ),
            )
            .label("a second plan for this pair")
            .help("a chain must not pick a plan by accident: keep one plan per pair in a folder, and move the other elsewhere"),
        ));
    }
    for cycle in releases.cycles() {
        let Some(&last) = cycle.last() else { continue };
        let (i, analysis) = with_plan[last];
        let steps: Vec<String> = cycle
            .iter()
            .map(|&k| format!("{} ({})", pair(k), name(k)))
            .collect();
        found.push((
            i,
            Diagnostic::new(
                Code::ReleaseCycle,
                pair_span(analysis),
                format!(
                    "the plans of this folder go round in a circle: {}",
                    steps.join(", ")
                ),
            )
            .label("closes the circle")
            .help("a migration goes forward: every plan's `to` must come after its `from`"),
        ));
    }
    found
}

/// Where a plan's pair is written: its `from` to its `to`, else the block.
fn pair_span(analysis: &Analysis) -> Span {
    let block: Option<&PlanBlock> = analysis.ast.items.iter().find_map(|i| match i {
        Item::Plan(p) => Some(p),
        _ => None,
    });
    let Some(block) = block else {
        return Span::new(0, 0);
    };
    let attr = |key: &str| {
        block
            .attrs
            .iter()
            .find(|a| a.key.name == key)
            .map(|a| a.span)
    };
    match (attr("from"), attr("to")) {
        (Some(from), Some(to)) => Span::new(from.start.min(to.start), from.end.max(to.end)),
        (Some(one), None) | (None, Some(one)) => one,
        (None, None) => block.keyword,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::analyse;
    use crate::resolve::Context;
    use crate::source::Source;

    fn plan(name: &str, from: &str, to: &str) -> Analysis {
        let text = format!(
            "plan \"{name}\" {{\n  from = \"{from}\"\n  to   = \"{to}\"\n}}\n\ncheck ok {{\n  run = \"true\"\n}}\n"
        );
        analyse(
            Source::new(format!("{name}.plan"), text),
            &Context::default(),
        )
    }

    #[test]
    fn a_second_plan_for_a_pair_is_an_error_on_it() {
        let plans = [
            plan("a", "4.2", "4.4"),
            plan("b", "4.4", "5.0"),
            plan("c", "4.2", "4.4.0"),
        ];
        let refs: Vec<&Analysis> = plans.iter().collect();
        let found = findings(&refs);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].0, 2);
        assert_eq!(found[0].1.code, Code::DuplicatePair);
        assert!(
            found[0].1.message.contains("`a.plan`"),
            "{}",
            found[0].1.message
        );
    }

    #[test]
    fn a_cycle_names_every_plan_in_it() {
        let plans = [
            plan("up", "4.2", "4.4"),
            plan("down", "4.4", "4.2"),
            plan("on", "4.4", "5.0"),
        ];
        let refs: Vec<&Analysis> = plans.iter().collect();
        let found = findings(&refs);
        let cycle: Vec<_> = found
            .iter()
            .filter(|(_, d)| d.code == Code::ReleaseCycle)
            .collect();
        assert_eq!(cycle.len(), 1, "{found:#?}");
        let message = &cycle[0].1.message;
        assert!(
            message.contains("up.plan") && message.contains("down.plan"),
            "{message}"
        );
        assert!(!message.contains("on.plan"), "{message}");
    }

    #[test]
    fn a_clean_chain_has_no_finding() {
        let plans = [
            plan("a", "4.2", "4.4"),
            plan("b", "4.4", "5.0"),
            plan("c", "5.0", "6.0"),
        ];
        let refs: Vec<&Analysis> = plans.iter().collect();
        assert!(findings(&refs).is_empty());
    }
}
