//! Grudges: which node refuses traffic from which, for every partition shape.
//!
//! A grudge maps a node to the peers whose packets it drops (Jepsen's
//! `nemesis/complete-grudge`, `bisect`, `bridge`, `majorities-ring`). These
//! are pure functions of the node list (and a seeded RNG where the shape is
//! random), so they are unit-tested here without any cluster.

use std::collections::{BTreeMap, BTreeSet};

use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// Node name → the peers it drops packets from.
pub type Grudge = BTreeMap<String, BTreeSet<String>>;

/// The number of nodes that makes a majority of `n`.
pub fn majority(n: usize) -> usize {
    n / 2 + 1
}

/// Every node drops every node outside its own component. Nodes in no
/// component are left alone.
pub fn complete(components: &[Vec<String>]) -> Grudge {
    let mut g = Grudge::new();
    for (i, comp) in components.iter().enumerate() {
        let others: BTreeSet<String> = components
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .flat_map(|(_, c)| c.iter().cloned())
            .collect();
        for n in comp {
            if !others.is_empty() {
                g.insert(n.clone(), others.clone());
            }
        }
    }
    g
}

/// Splits `nodes` in two at the middle; the first half is the smaller one
/// (the minority), as in Jepsen's `bisect`.
pub fn bisect(nodes: &[String]) -> Vec<Vec<String>> {
    let (a, b) = nodes.split_at(nodes.len() / 2);
    vec![a.to_vec(), b.to_vec()]
}

/// The first third of `nodes` (rounded down, at least one) and the rest,
/// as two sides. Shuffle first for a random third.
pub fn third(nodes: &[String]) -> Vec<Vec<String>> {
    let k = (nodes.len() / 3).max(1).min(nodes.len());
    let (a, b) = nodes.split_at(k);
    vec![a.to_vec(), b.to_vec()]
}

/// The first component drops everything the others send it; the others
/// drop nothing, so they still hear it (a one-way partition).
pub fn one_way(components: &[Vec<String>]) -> Grudge {
    let mut g = Grudge::new();
    let Some((first, rest)) = components.split_first() else {
        return g;
    };
    let others: BTreeSet<String> = rest.iter().flatten().cloned().collect();
    if others.is_empty() {
        return g;
    }
    for n in first {
        g.insert(n.clone(), others.clone());
    }
    g
}

/// `node` alone on one side, everyone else on the other.
pub fn split_one(node: &str, nodes: &[String]) -> Vec<Vec<String>> {
    vec![
        vec![node.to_string()],
        nodes.iter().filter(|n| *n != node).cloned().collect(),
    ]
}

/// Two halves joined by one node that sees both: the first node of the
/// larger half talks to everyone and everyone talks to it.
pub fn bridge(nodes: &[String]) -> Grudge {
    let halves = bisect(nodes);
    let Some(bridge) = halves[1].first().cloned() else {
        return Grudge::new();
    };
    let mut g = complete(&halves);
    g.remove(&bridge);
    for peers in g.values_mut() {
        peers.remove(&bridge);
    }
    g.retain(|_, p| !p.is_empty());
    g
}

/// Every node sees a majority (itself and its nearest neighbours on a ring
/// shuffled by `rng`), and no two nodes see the same majority, so no node
/// can tell it is cut off and every would-be leader lacks some votes
/// (Jepsen's `majorities-ring-perfect`). For an even majority the view is
/// not symmetric: one node may drop a peer that does not drop it.
pub fn majorities_ring(nodes: &[String], rng: &mut ChaCha8Rng) -> Grudge {
    let n = nodes.len();
    if n < 3 {
        return Grudge::new();
    }
    let m = majority(n);
    let mut ring = nodes.to_vec();
    ring.shuffle(rng);
    let all: BTreeSet<String> = nodes.iter().cloned().collect();
    let mut g = Grudge::new();
    for start in 0..n {
        // A window of m consecutive ring nodes; its middle node sees it.
        let window: BTreeSet<String> = (0..m).map(|k| ring[(start + k) % n].clone()).collect();
        let middle = ring[(start + m / 2) % n].clone();
        let dropped: BTreeSet<String> = all.difference(&window).cloned().collect();
        if !dropped.is_empty() {
            g.insert(middle, dropped);
        }
    }
    g
}

/// The components a grudge implies when it is symmetric: nodes grouped by
/// who they can still hear. Used to describe a partition in its history op.
pub fn components(nodes: &[String], g: &Grudge) -> Vec<Vec<String>> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for n in nodes {
        if seen.contains(n) {
            continue;
        }
        let dropped = g.get(n).cloned().unwrap_or_default();
        let comp: Vec<String> = nodes
            .iter()
            .filter(|p| !dropped.contains(*p) && !seen.contains(*p))
            .cloned()
            .collect();
        for p in &comp {
            seen.insert(p.clone());
        }
        out.push(comp);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn names(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("n{i}")).collect()
    }

    fn set(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn bisect_puts_the_minority_first() {
        let h = bisect(&names(5));
        assert_eq!(h[0], vec!["n1", "n2"]);
        assert_eq!(h[1], vec!["n3", "n4", "n5"]);
    }

    #[test]
    fn complete_grudge_cuts_across_components_only() {
        let g = complete(&bisect(&names(5)));
        assert_eq!(g["n1"], set(&["n3", "n4", "n5"]));
        assert_eq!(g["n4"], set(&["n1", "n2"]));
        assert_eq!(g.len(), 5);
        // Symmetric: a drops b iff b drops a.
        for (a, peers) in &g {
            for b in peers {
                assert!(g[b].contains(a));
            }
        }
        let one = complete(&split_one("n3", &names(3)));
        assert_eq!(one["n3"], set(&["n1", "n2"]));
        assert_eq!(one["n1"], set(&["n3"]));
    }

    #[test]
    fn a_third_rounds_down_but_keeps_one_node() {
        for (n, k) in [(1, 1), (2, 1), (3, 1), (5, 1), (6, 2), (7, 2), (9, 3)] {
            let sides = third(&names(n));
            assert_eq!(sides[0].len(), k, "{n} nodes");
            assert_eq!(sides[0].len() + sides[1].len(), n);
        }
    }

    #[test]
    fn one_way_cuts_only_what_the_first_side_receives() {
        let g = one_way(&[vec!["n1".into()], vec!["n2".into(), "n3".into()]]);
        assert_eq!(g.len(), 1, "{g:?}");
        assert_eq!(g["n1"], set(&["n2", "n3"]));
        // Nodes in no component stay untouched; one side alone cuts nothing.
        assert!(one_way(&[names(3)]).is_empty());
        assert!(one_way(&[]).is_empty());
    }

    #[test]
    fn bridge_node_talks_to_both_sides() {
        let g = bridge(&names(5));
        // Halves [n1 n2] [n3 n4 n5]; n3 is the bridge.
        assert!(!g.contains_key("n3"));
        assert!(g.values().all(|p| !p.contains("n3")));
        assert_eq!(g["n1"], set(&["n4", "n5"]));
        assert_eq!(g["n5"], set(&["n1", "n2"]));
    }

    #[test]
    fn majorities_ring_gives_each_node_a_distinct_majority() {
        for n in [3usize, 5, 7] {
            let nodes = names(n);
            let mut rng = ChaCha8Rng::seed_from_u64(7);
            let g = majorities_ring(&nodes, &mut rng);
            let mut views = BTreeSet::new();
            for node in &nodes {
                let dropped = g.get(node).cloned().unwrap_or_default();
                let sees: BTreeSet<String> = nodes
                    .iter()
                    .filter(|p| !dropped.contains(*p))
                    .cloned()
                    .collect();
                assert!(sees.contains(node));
                assert_eq!(sees.len(), majority(n), "{node} sees {sees:?}");
                assert!(views.insert(sees), "two nodes share a view");
            }
        }
        // Same seed, same ring.
        let a = majorities_ring(&names(5), &mut ChaCha8Rng::seed_from_u64(1));
        let b = majorities_ring(&names(5), &mut ChaCha8Rng::seed_from_u64(1));
        assert_eq!(a, b);
    }

    #[test]
    fn components_of_a_symmetric_grudge() {
        let nodes = names(5);
        let g = complete(&bisect(&nodes));
        assert_eq!(
            components(&nodes, &g),
            vec![vec!["n1", "n2"], vec!["n3", "n4", "n5"]]
        );
        assert_eq!(components(&nodes, &Grudge::new()), vec![nodes.clone()]);
    }
}
