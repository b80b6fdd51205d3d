//! The plan's graph as Graphviz dot or Mermaid text, for review: nodes are
//! labelled with step name and kind; `on_failure` steps sit in their own
//! cluster.

use std::fmt::Write as _;

use super::Graph;
use crate::plan::{Plan, Step};

/// Graphviz dot.
pub fn dot(plan: &Plan, main: &Graph, failure: &Graph) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "digraph {} {{", dot_quote(&plan.name));
    out.push_str("  rankdir=TB;\n  node [shape=box, fontname=\"Helvetica\"];\n");
    dot_steps(&mut out, "  ", "", &plan.steps, main);
    if !plan.on_failure.is_empty() {
        out.push_str(
            "  subgraph cluster_on_failure {\n    label=\"on_failure\";\n    style=dashed;\n",
        );
        dot_steps(&mut out, "    ", "on_failure.", &plan.on_failure, failure);
        out.push_str("  }\n");
    }
    out.push_str("}\n");
    out
}

fn dot_steps(out: &mut String, indent: &str, prefix: &str, steps: &[Step], graph: &Graph) {
    for &i in &graph.order {
        let step = &steps[i];
        let _ = writeln!(
            out,
            "{indent}{} [label={}];",
            dot_quote(&format!("{prefix}{}", step.name)),
            dot_quote(&format!("{}\n{}", step.name, step.kind))
        );
    }
    for &i in &graph.order {
        for j in graph
            .successors(i)
            .collect::<std::collections::BTreeSet<_>>()
        {
            let _ = writeln!(
                out,
                "{indent}{} -> {};",
                dot_quote(&format!("{prefix}{}", steps[i].name)),
                dot_quote(&format!("{prefix}{}", steps[j].name))
            );
        }
    }
}

fn dot_quote(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A Mermaid flowchart.
pub fn mermaid(plan: &Plan, main: &Graph, failure: &Graph) -> String {
    let mut out = String::from("flowchart TD\n");
    mermaid_steps(&mut out, "  ", "s_", &plan.steps, main);
    if !plan.on_failure.is_empty() {
        out.push_str("  subgraph on_failure [on_failure]\n");
        mermaid_steps(&mut out, "    ", "f_", &plan.on_failure, failure);
        out.push_str("  end\n");
    }
    out
}

fn mermaid_steps(out: &mut String, indent: &str, prefix: &str, steps: &[Step], graph: &Graph) {
    for &i in &graph.order {
        let step = &steps[i];
        // Step names are `[a-z_][a-z0-9_]*`, valid Mermaid ids as they are.
        let _ = writeln!(
            out,
            "{indent}{prefix}{}[\"{}<br/>{}\"]",
            step.name, step.name, step.kind
        );
    }
    for &i in &graph.order {
        for j in graph
            .successors(i)
            .collect::<std::collections::BTreeSet<_>>()
        {
            let _ = writeln!(
                out,
                "{indent}{prefix}{} --> {prefix}{}",
                steps[i].name, steps[j].name
            );
        }
    }
}

/// A folder's graph of releases as Graphviz dot: one node per release, one
/// edge per plan `(from, to, label)`, labelled with its file.
pub fn releases_dot(edges: &[(String, String, String)]) -> String {
    let mut out = String::from(
        "digraph releases {\n  rankdir=LR;\n  node [shape=ellipse, fontname=\"Helvetica\"];\n",
    );
    for (from, to, label) in edges {
        let _ = writeln!(
            out,
            "  {} -> {} [label={}];",
            dot_quote(from),
            dot_quote(to),
            dot_quote(label)
        );
    }
    out.push_str("}\n");
    out
}

/// The same as Mermaid: releases get ids `r0`, `r1`... in order of first
/// appearance (a release's dots are not valid in an id).
pub fn releases_mermaid(edges: &[(String, String, String)]) -> String {
    fn id<'a>(ids: &mut Vec<&'a str>, release: &'a str, out: &mut String) -> usize {
        if let Some(i) = ids.iter().position(|r| *r == release) {
            return i;
        }
        ids.push(release);
        let _ = writeln!(out, "  r{}([\"{}\"])", ids.len() - 1, mermaid_text(release));
        ids.len() - 1
    }
    let mut out = String::from("flowchart LR\n");
    let mut ids: Vec<&str> = Vec::new();
    for (from, to, label) in edges {
        let a = id(&mut ids, from, &mut out);
        let b = id(&mut ids, to, &mut out);
        let _ = writeln!(out, "  r{a} -->|\"{}\"| r{b}", mermaid_text(label));
    }
    out
}

/// Text inside a Mermaid label's quotes: a quote or a pipe would end it.
fn mermaid_text(text: &str) -> String {
    text.replace('"', "#quot;").replace('|', "#124;")
}
