//! The plan the benchmarks measure stays a valid, canonically laid out
//! plan as the language evolves: a benchmark of an input rejected early
//! would measure the wrong thing.

#[path = "../../benches/support/mod.rs"]
mod support;

use plan_runner::resolve;
use plan_runner::resolve::Context;
use plan_runner::source::Source;
use plan_runner::{analysis, fmt, parse};

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

/// A large plan's steps are resolved on several threads: what comes out
/// must be what one thread gives, errors included, in the same order.
#[test]
fn threads_give_what_one_thread_gives() {
    let text = support::plan(3_000);
    // Mistakes spread through the file, each in a different piece and run
    // of steps: undefined variables, unknown `after`s, bad durations.
    let mut damaged = String::with_capacity(text.len() + 1_000);
    for (n, line) in text.lines().enumerate() {
        let line = if n % 997 == 0 && line.contains("${") {
            line.replacen("${", "${nope_", 1)
        } else if n % 1_009 < 20 && line.trim_start().starts_with("after = ") && !line.contains('[')
        {
            "  after = no_such_step".to_string()
        } else {
            line.replacen("timeout = \"9", "timeout = \"x", 1)
        };
        damaged.push_str(&line);
        damaged.push('\n');
    }
    for (text, errors) in [(text, false), (damaged, true)] {
        let source = Source::new("generated.plan", text);
        let parallel = parse::parse(&source);
        let ctx = Context::default();
        let one = resolve::resolve_on(&parallel.file, &source, &ctx, Some(1));
        let three = resolve::resolve_on(&parallel.file, &source, &ctx, Some(3));
        assert_eq!(format!("{one:?}"), format!("{three:?}"));
        assert!(parallel.diagnostics.is_empty(), "no syntax error");
        let steps = one.plan.as_ref().map_or(0, |p| p.steps.len());
        assert!(steps > 2_000, "most steps resolve: {steps}");
        let found = one.diagnostics.iter().filter(|d| d.is_error()).count();
        assert_eq!(found > 3, errors, "{found} errors");
    }
}
