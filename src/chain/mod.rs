//! A folder of plans as a graph of releases (petgraph): each plan an edge
//! `from -> to`. Finds the path a chain takes (the fewest hops, a tie an
//! error, `--via` to choose), and what makes a folder unusable as a chain
//! (two plans for one pair, a cycle). Pure: it reads no file and no
//! database; releases compare only through `Version`.

pub mod folder;

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, EdgeIndex, NodeIndex};
use petgraph::visit::EdgeRef;
use std::collections::VecDeque;

use crate::version::Version;

/// The releases a set of plans connects. Edge weights index the plans as
/// given to [`Releases::new`].
#[derive(Debug)]
pub struct Releases {
    graph: DiGraph<Version, usize>,
}

/// Why no path can be taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathError {
    /// The release asked for is in no plan.
    Unknown { release: String, known: Vec<String> },
    /// No chain of plans leads from `from` to `to`.
    NoPath {
        from: String,
        to: String,
        /// The releases the plans reach from `from`, in release order.
        reachable: Vec<String>,
        /// The pair a plan is missing for: from the last release reached
        /// towards `to` to the first release that leads on to it.
        missing: (String, String),
    },
    /// Two paths of the same (fewest) number of hops: the plans of each.
    Tie {
        from: String,
        to: String,
        paths: [Vec<usize>; 2],
    },
}

impl Releases {
    /// The graph of `pairs` (`from`, `to`), one per plan, in that order.
    pub fn new(pairs: &[(Version, Version)]) -> Releases {
        let mut graph: DiGraph<Version, usize> = DiGraph::new();
        for (plan, (from, to)) in pairs.iter().enumerate() {
            let a = node_or_add(&mut graph, from);
            // A refresh plan (`from` equals `to`) moves no release: it is
            // never a hop, and no circle.
            if from == to {
                continue;
            }
            let b = node_or_add(&mut graph, to);
            graph.add_edge(a, b, plan);
        }
        Releases { graph }
    }

    /// Every release a plan names, in release order.
    pub fn known(&self) -> Vec<String> {
        let mut all: Vec<&Version> = self.graph.node_weights().collect();
        all.sort();
        all.into_iter().map(ToString::to_string).collect()
    }

    /// The release (a node of the graph) a value read from a database is
    /// at: `16.0` for `16.0.1.3`, as the release gate matches it. Of two
    /// that match, the longer one (`16.0.1` rather than `16.0`).
    pub fn release_of(&self, value: &str) -> Option<Version> {
        self.graph
            .node_weights()
            .filter(|v| {
                v.is_prefix_of(value) || Version::parse(value.trim()).is_some_and(|r| &r == *v)
            })
            .max_by_key(|v| v.as_str().split('.').count())
            .cloned()
    }

    /// Pairs of plans for the same pair of releases: (the first, a later
    /// one), by plan index.
    pub fn duplicates(&self) -> Vec<(usize, usize)> {
        let mut found = Vec::new();
        let edges: Vec<_> = self.graph.edge_references().collect();
        for (i, a) in edges.iter().enumerate() {
            if let Some(b) = edges[..i]
                .iter()
                .find(|b| b.source() == a.source() && b.target() == a.target())
            {
                found.push((*b.weight(), *a.weight()));
            }
        }
        found
    }

    /// Each cycle among releases, as the plans in it (in plan order).
    pub fn cycles(&self) -> Vec<Vec<usize>> {
        let mut cycles = Vec::new();
        for scc in tarjan_scc(&self.graph) {
            let inside = |n: NodeIndex| scc.contains(&n);
            let mut plans: Vec<usize> = self
                .graph
                .edge_references()
                .filter(|e| inside(e.source()) && inside(e.target()))
                .map(|e| *e.weight())
                .collect();
            if !plans.is_empty() {
                plans.sort_unstable();
                plans.dedup();
                cycles.push(plans);
            }
        }
        cycles.sort();
        cycles
    }

    /// The plans, in order, that take `from` to `to` in the fewest hops,
    /// through every release of `via` in turn. Empty when `from` is `to`.
    pub fn path(
        &self,
        from: &Version,
        to: &Version,
        via: &[Version],
    ) -> Result<Vec<usize>, PathError> {
        let mut stops = vec![self.node(from)?];
        for v in via {
            stops.push(self.node(v)?);
        }
        stops.push(self.node(to)?);
        let mut plans = Vec::new();
        for pair in stops.windows(2) {
            plans.extend(self.shortest(pair[0], pair[1])?);
        }
        Ok(plans)
    }

    fn node(&self, release: &Version) -> Result<NodeIndex, PathError> {
        self.graph
            .node_indices()
            .find(|&n| &self.graph[n] == release)
            .ok_or_else(|| PathError::Unknown {
                release: release.to_string(),
                known: self.known(),
            })
    }

    /// Breadth first from `start`: the fewest hops to each release, and
    /// up to two shortest paths to `goal`.
    fn shortest(&self, start: NodeIndex, goal: NodeIndex) -> Result<Vec<usize>, PathError> {
        if start == goal {
            return Ok(Vec::new());
        }
        let mut hops: Vec<Option<usize>> = vec![None; self.graph.node_count()];
        hops[start.index()] = Some(0);
        let mut queue = VecDeque::from([start]);
        while let Some(n) = queue.pop_front() {
            let here = hops[n.index()].unwrap_or(0);
            for e in self.graph.edges(n) {
                if hops[e.target().index()].is_none() {
                    hops[e.target().index()] = Some(here + 1);
                    queue.push_back(e.target());
                }
            }
        }
        if hops[goal.index()].is_none() {
            return Err(self.no_path(start, goal, &hops));
        }
        let mut found = Vec::new();
        self.paths_to(goal, start, &hops, &mut Vec::new(), &mut found);
        // In plan order, so that a tie names its paths the same way every
        // time, whichever way they were found.
        found.sort();
        let mut found = found.into_iter();
        match (found.next(), found.next()) {
            (Some(one), None) => Ok(one),
            (Some(a), Some(b)) => Err(PathError::Tie {
                from: self.graph[start].to_string(),
                to: self.graph[goal].to_string(),
                paths: [a, b],
            }),
            (None, _) => Err(self.no_path(start, goal, &hops)),
        }
    }

    /// Collects up to two shortest paths from `start` to `node`, walking
    /// back along edges that each shorten the distance by one hop.
    fn paths_to(
        &self,
        node: NodeIndex,
        start: NodeIndex,
        hops: &[Option<usize>],
        suffix: &mut Vec<EdgeIndex>,
        found: &mut Vec<Vec<usize>>,
    ) {
        if found.len() >= 2 {
            return;
        }
        if node == start {
            found.push(suffix.iter().rev().map(|&e| self.graph[e]).collect());
            return;
        }
        let Some(here) = hops[node.index()] else {
            return;
        };
        let mut incoming: Vec<_> = self
            .graph
            .edges_directed(node, petgraph::Direction::Incoming)
            .filter(|e| hops[e.source().index()].is_some_and(|h| h + 1 == here))
            .map(|e| (*e.weight(), e.id(), e.source()))
            .collect();
        // Plan order, so that the paths named in a tie are stable.
        incoming.sort();
        for (_, edge, source) in incoming {
            suffix.push(edge);
            self.paths_to(source, start, hops, suffix, found);
            suffix.pop();
        }
    }

    fn no_path(&self, start: NodeIndex, goal: NodeIndex, hops: &[Option<usize>]) -> PathError {
        let goal_release = &self.graph[goal];
        let mut reachable: Vec<&Version> = self
            .graph
            .node_indices()
            .filter(|&n| n != start && hops[n.index()].is_some())
            .map(|n| &self.graph[n])
            .collect();
        reachable.sort();
        // The gap: from the highest release reached below `to` (or the
        // start) to the lowest release above it that leads on to `to`.
        let gap_from = reachable
            .iter()
            .copied()
            .filter(|v| *v < goal_release)
            .max()
            .unwrap_or(&self.graph[start]);
        let leads_to_goal = petgraph::algo::has_path_connecting;
        let gap_to = self
            .graph
            .node_indices()
            .filter(|&n| &self.graph[n] > gap_from && leads_to_goal(&self.graph, n, goal, None))
            .map(|n| &self.graph[n])
            .min()
            .unwrap_or(goal_release);
        PathError::NoPath {
            from: self.graph[start].to_string(),
            to: goal_release.to_string(),
            reachable: reachable.into_iter().map(ToString::to_string).collect(),
            missing: (gap_from.to_string(), gap_to.to_string()),
        }
    }
}

fn node_or_add(graph: &mut DiGraph<Version, usize>, release: &Version) -> NodeIndex {
    match graph.node_indices().find(|&n| &graph[n] == release) {
        Some(n) => n,
        None => graph.add_node(release.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap()
    }

    fn releases(pairs: &[(&str, &str)]) -> Releases {
        let pairs: Vec<_> = pairs.iter().map(|(a, b)| (v(a), v(b))).collect();
        Releases::new(&pairs)
    }

    #[test]
    fn takes_the_fewest_hops() {
        let r = releases(&[
            ("4.2", "4.4"),
            ("4.4", "5.0"),
            ("5.0", "6.0"),
            ("4.2", "5.0"),
        ]);
        assert_eq!(r.path(&v("4.2"), &v("6.0"), &[]), Ok(vec![3, 2]));
        assert_eq!(r.path(&v("4.4"), &v("6.0"), &[]), Ok(vec![1, 2]));
        assert_eq!(r.path(&v("6.0"), &v("6.0"), &[]), Ok(vec![]));
    }

    #[test]
    fn a_refresh_plan_is_no_hop_and_no_circle() {
        let r = releases(&[("16.0", "17.0"), ("17.0", "17.0"), ("17.0", "18.0")]);
        assert_eq!(r.path(&v("16.0"), &v("18.0"), &[]), Ok(vec![0, 2]));
        assert!(r.cycles().is_empty());
        assert_eq!(r.known(), vec!["16.0", "17.0", "18.0"]);
    }

    #[test]
    fn a_tie_names_both_paths_and_via_chooses() {
        let r = releases(&[
            ("4.2", "4.4"),
            ("4.4", "6.0"),
            ("4.2", "5.0"),
            ("5.0", "6.0"),
        ]);
        assert_eq!(
            r.path(&v("4.2"), &v("6.0"), &[]),
            Err(PathError::Tie {
                from: "4.2".into(),
                to: "6.0".into(),
                paths: [vec![0, 1], vec![2, 3]],
            })
        );
        assert_eq!(r.path(&v("4.2"), &v("6.0"), &[v("5.0")]), Ok(vec![2, 3]));
        assert_eq!(r.path(&v("4.2"), &v("6.0"), &[v("4.4")]), Ok(vec![0, 1]));
    }

    #[test]
    fn no_path_names_what_is_reachable_and_the_missing_pair() {
        let r = releases(&[("4.2", "4.4"), ("5.0", "6.0")]);
        assert_eq!(
            r.path(&v("4.2"), &v("6.0"), &[]),
            Err(PathError::NoPath {
                from: "4.2".into(),
                to: "6.0".into(),
                reachable: vec!["4.4".into()],
                missing: ("4.4".into(), "5.0".into()),
            })
        );
    }

    #[test]
    fn an_unknown_release_lists_the_known_ones() {
        let r = releases(&[("5.0", "6.0"), ("4.2", "5.0")]);
        assert_eq!(
            r.path(&v("4.2"), &v("7.0"), &[]),
            Err(PathError::Unknown {
                release: "7.0".into(),
                known: vec!["4.2".into(), "5.0".into(), "6.0".into()],
            })
        );
        assert!(matches!(
            r.path(&v("4.2"), &v("6.0"), &[v("5.5")]),
            Err(PathError::Unknown { .. })
        ));
    }

    #[test]
    fn duplicates_and_cycles_are_found() {
        let r = releases(&[
            ("4.2", "4.4"),
            ("4.4", "4.2"),
            ("5.0", "6.0"),
            ("5.0.0", "6.0"),
        ]);
        assert_eq!(r.duplicates(), vec![(2, 3)]);
        assert_eq!(r.cycles(), vec![vec![0, 1]]);
        let clean = releases(&[("4.2", "4.4"), ("4.4", "5.0")]);
        assert!(clean.duplicates().is_empty());
        assert!(clean.cycles().is_empty());
    }

    #[test]
    fn a_database_value_is_matched_to_the_longest_release() {
        let r = releases(&[("16.0", "16.0.1"), ("16.0.1", "17.0")]);
        assert_eq!(r.release_of("16.0.1.3"), Some(v("16.0.1")));
        assert_eq!(r.release_of("16.0.0.9"), Some(v("16.0")));
        assert_eq!(r.release_of("15.0"), None);
    }
}
