//! The plan the benchmarks measure stays a valid, canonically laid out
//! plan as the language evolves: a benchmark of an input rejected early
//! would measure the wrong thing.

#[path = "../../benches/support/mod.rs"]
mod support;

use plan_runner::resolve::Context;
use plan_runner::source::Source;
use plan_runner::{analysis, fmt};

#[test]
fn generated_plan_is_clean_and_formatted() {
    // Enough groups to reach every variant of every position.
    let steps = 1_003;
    let source = Source::new("generated.plan", support::plan(steps));
    let analysis = analysis::analyse(source.clone(), &Context::default());
    let errors: Vec<_> = analysis
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    let plan = analysis.plan.expect("the plan block is read");
    assert_eq!(plan.steps.len(), steps);
    assert_eq!(plan.on_failure.len(), 2);
    let (graph, _) = analysis.graphs.expect("graphs are built");
    assert_eq!(graph.order.len(), steps, "every step is ordered");
    // A chain of ten steps per group: the last step is deep in the graph.
    assert!(graph.levels[steps - 1] > steps / 10 * 5);
    assert_eq!(fmt::format(&analysis.ast, &source), source.text());
}
