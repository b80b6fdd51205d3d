//! The dependency graph of a plan's steps (petgraph): edges from each step
//! to the steps that wait for it, cycles reported with every step in them,
//! a deterministic order (dependencies first, ties in file order) and the
//! levels of steps that may run at once. Knows nothing of text or databases.

pub mod render;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use crate::names::NameMap;

use petgraph::Direction;
use petgraph::algo::kosaraju_scc;
use petgraph::graph::{DiGraph, NodeIndex};

use crate::diagnostic::{Code, Diagnostic};
use crate::plan::Step;

/// The graph of one list of steps (the plan's, or its `on_failure`).
#[derive(Debug)]
pub struct Graph {
    /// Node weights are indexes into the step list; edge weights index the
    /// dependent step's `after` entries.
    pub graph: DiGraph<usize, usize>,
    /// Step indexes, dependencies before dependents, ties in file order.
    /// Steps caught in a cycle are left out.
    pub order: Vec<usize>,
    /// Per step: 0 for roots, else one more than its deepest dependency.
    pub levels: Vec<usize>,
}

impl Graph {
    /// Builds the graph; a cycle is reported once per strongly connected
    /// set of steps.
    pub fn build(steps: &[Step]) -> (Graph, Vec<Diagnostic>) {
        let mut graph = DiGraph::with_capacity(steps.len(), steps.len());
        let nodes: Vec<NodeIndex> = (0..steps.len()).map(|i| graph.add_node(i)).collect();
        let mut index: NameMap<&str, usize> = NameMap::default();
        index.reserve(steps.len());
        // Of two steps with one name (reported by resolve), the last wins.
        for (i, s) in steps.iter().enumerate() {
            index.insert(s.name.as_str(), i);
        }
        for (i, step) in steps.iter().enumerate() {
            for (n, after) in step.after.iter().enumerate() {
                if let Some(&j) = index.get(after.name.as_str())
                    && j != i
                {
                    graph.add_edge(nodes[j], nodes[i], n);
                }
            }
        }
        let order = topo_order(&graph);
        // Kahn's order leaves out exactly the steps on or behind a cycle:
        // when it holds every step there is none to look for.
        let diagnostics = if order.len() == steps.len() {
            Vec::new()
        } else {
            cycles(&graph, steps)
        };
        let mut levels = vec![0; steps.len()];
        for &i in &order {
            levels[i] = graph
                .neighbors_directed(nodes[i], Direction::Incoming)
                .map(|p| levels[graph[p]] + 1)
                .max()
                .unwrap_or(0);
        }
        (
            Graph {
                graph,
                order,
                levels,
            },
            diagnostics,
        )
    }

    pub fn node(&self, step: usize) -> NodeIndex {
        NodeIndex::new(step)
    }

    /// The steps `step` waits for directly.
    pub fn predecessors(&self, step: usize) -> impl Iterator<Item = usize> + '_ {
        self.graph
            .neighbors_directed(self.node(step), Direction::Incoming)
            .map(|n| self.graph[n])
    }

    /// The steps waiting for `step` directly.
    pub fn successors(&self, step: usize) -> impl Iterator<Item = usize> + '_ {
        self.graph
            .neighbors_directed(self.node(step), Direction::Outgoing)
            .map(|n| self.graph[n])
    }

    /// Every step that runs after `step` because of it, directly or not.
    pub fn descendants(&self, step: usize) -> Vec<usize> {
        let mut dfs = petgraph::visit::Dfs::new(&self.graph, self.node(step));
        let mut out = Vec::new();
        while let Some(n) = dfs.next(&self.graph) {
            if n != self.node(step) {
                out.push(self.graph[n]);
            }
        }
        out.sort_unstable();
        out
    }
}

/// Kahn's algorithm with a min-heap, so ties go in file order.
fn topo_order(graph: &DiGraph<usize, usize>) -> Vec<usize> {
    let mut indegree: Vec<usize> = graph
        .node_indices()
        .map(|n| graph.neighbors_directed(n, Direction::Incoming).count())
        .collect();
    let mut ready: BinaryHeap<Reverse<usize>> = indegree
        .iter()
        .enumerate()
        .filter(|(_, d)| **d == 0)
        .map(|(i, _)| Reverse(i))
        .collect();
    let mut order = Vec::with_capacity(indegree.len());
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        for next in graph.neighbors_directed(NodeIndex::new(i), Direction::Outgoing) {
            let n = next.index();
            indegree[n] -= 1;
            if indegree[n] == 0 {
                ready.push(Reverse(n));
            }
        }
    }
    order
}

fn cycles(graph: &DiGraph<usize, usize>, steps: &[Step]) -> Vec<Diagnostic> {
    let mut diagnostics = Vec::new();
    // Kosaraju, not Tarjan: petgraph's Tarjan recurses once per step of a
    // chain and overflowed the stack on a 5,000-step plan; Kosaraju walks
    // with an explicit stack.
    for scc in kosaraju_scc(graph) {
        if scc.len() < 2 {
            continue;
        }
        let Some(cycle) = find_cycle(graph, &scc) else {
            continue;
        };
        // `cycle` lists nodes a, b, ..., each waiting for the one before it,
        // and the first waiting for the last.
        let names: Vec<&str> = cycle
            .iter()
            .map(|n| steps[graph[*n]].name.as_str())
            .collect();
        let mut shown = names.clone();
        shown.push(names[0]);
        let label_for = |from: NodeIndex, to: NodeIndex| {
            graph
                .edges_connecting(from, to)
                .next()
                .map(|e| steps[graph[to]].after[*e.weight()].span)
        };
        let first = cycle[0];
        let last = cycle[cycle.len() - 1];
        let closing = label_for(last, first).unwrap_or(steps[graph[first]].name_span);
        let mut d = Diagnostic::new(
            Code::Cycle,
            closing,
            format!(
                "steps wait for each other in a circle: {}",
                shown.join(" -> ")
            ),
        )
        .label(format!(
            "`{}` waits for `{}`, which closes the circle",
            names[0],
            names[names.len() - 1]
        ))
        .help("remove one of these `after` entries so that the steps can run in some order");
        for pair in cycle.windows(2) {
            if let Some(span) = label_for(pair[0], pair[1]) {
                d = d.also(
                    span,
                    format!(
                        "`{}` waits for `{}`",
                        steps[graph[pair[1]]].name, steps[graph[pair[0]]].name
                    ),
                );
            }
        }
        diagnostics.push(d);
    }
    diagnostics.sort_by_key(|d| d.primary.span.start);
    diagnostics
}

/// A cycle through the strongly connected set `scc`, starting at its
/// first step in file order, following edges (dependency to dependent).
fn find_cycle(graph: &DiGraph<usize, usize>, scc: &[NodeIndex]) -> Option<Vec<NodeIndex>> {
    let start = *scc.iter().min_by_key(|n| graph[**n])?;
    let in_scc = |n: NodeIndex| scc.contains(&n);
    // Breadth-first search for the shortest way back to `start`.
    let mut parent: HashMap<NodeIndex, NodeIndex> = HashMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(n) = queue.pop_front() {
        let mut next: Vec<NodeIndex> = graph.neighbors(n).filter(|m| in_scc(*m)).collect();
        next.sort_by_key(|m| graph[*m]);
        for m in next {
            if m == start {
                let mut path = vec![n];
                let mut at = n;
                while at != start {
                    at = *parent.get(&at)?;
                    path.push(at);
                }
                path.reverse();
                return Some(path);
            }
            if let std::collections::hash_map::Entry::Vacant(e) = parent.entry(m) {
                e.insert(n);
                queue.push_back(m);
            }
        }
    }
    None
}
