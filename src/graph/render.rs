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
