//! The dependency graph: one node per transaction, one petgraph edge per
//! ordered pair, weighted by the mask of [`Kind`]s relating them. Data edges
//! come from inference; process and real-time edges from the history.
//!
//! Real-time edges are kept to a transitive reduction in the manner of
//! Elle: a transaction is linked only from the completed transactions not
//! already known to precede another completed one (the "frontier") when it
//! was invoked, which keeps the edge count near `transactions × concurrency`
//! instead of quadratic.

use super::infer::{Kind, Why};
use super::parse::Txn;
use crate::history::Outcome;
use petgraph::graph::{DiGraph, NodeIndex};
use rayon::slice::ParallelSliceMut;
use rustc_hash::FxHashMap;

/// The dependency graph of a history.
pub(crate) struct DepGraph {
    /// Nodes are transaction numbers; edge weights are kind masks.
    pub g: DiGraph<(), u8, u32>,
    /// The first data edge inferred of each (from, to, kind), with its
    /// reason, sorted: looked up by binary search ([`DepGraph::why`]).
    /// A sorted vector rather than a hash map: at millions of edges it
    /// takes a third of the memory.
    whys: Vec<(u32, u32, Kind, Why)>,
}

impl DepGraph {
    /// Builds the graph from data edges and the history's process and
    /// real-time order. Failed transactions take no part in any order.
    pub(crate) fn build(txns: &[Txn], mut data: Vec<(u32, u32, Kind, Why)>) -> DepGraph {
        // A stable sort keeps, of repeated edges, the first inferred.
        data.par_sort_by_key(|&(a, b, k, _)| (a, b, k));
        data.dedup_by_key(|&mut (a, b, k, _)| (a, b, k));
        data.shrink_to_fit();
        let mut raw: Vec<(u32, u32, u8)> = Vec::with_capacity(data.len() + txns.len() * 4);
        for &(a, b, k, _) in &data {
            raw.push((a, b, k.bit()));
        }
        let whys = data;
        process_edges(txns, &mut raw);
        realtime_edges(txns, &mut raw);
        raw.par_sort_unstable_by_key(|&(a, b, _)| (a, b));
        let mut g: DiGraph<(), u8, u32> = DiGraph::with_capacity(txns.len(), raw.len());
        for _ in 0..txns.len() {
            g.add_node(());
        }
        let mut i = 0;
        while i < raw.len() {
            let (a, b, mut mask) = raw[i];
            let mut j = i + 1;
            while j < raw.len() && raw[j].0 == a && raw[j].1 == b {
                mask |= raw[j].2;
                j += 1;
            }
            g.add_edge(NodeIndex::new(a as usize), NodeIndex::new(b as usize), mask);
            i = j;
        }
        DepGraph { g, whys }
    }

    /// Why the data edge `a → b` of kind `k` exists.
    pub(crate) fn why(&self, a: u32, b: u32, k: Kind) -> Option<Why> {
        self.whys
            .binary_search_by_key(&(a, b, k), |&(a, b, k, _)| (a, b, k))
            .ok()
            .map(|i| self.whys[i].3)
    }
}

/// Successive committed (or unknown) transactions of each process.
fn process_edges(txns: &[Txn], raw: &mut Vec<(u32, u32, u8)>) {
    let mut order: Vec<u32> = (0..txns.len() as u32)
        .filter(|&t| txns[t as usize].outcome != Outcome::Fail)
        .collect();
    order.sort_by_key(|&t| (txns[t as usize].process, txns[t as usize].invoke));
    for w in order.windows(2) {
        if txns[w[0] as usize].process == txns[w[1] as usize].process {
            raw.push((w[0], w[1], Kind::Process.bit()));
        }
    }
}

/// Real-time order, transitively reduced through the frontier of completed
/// transactions.
fn realtime_edges(txns: &[Txn], raw: &mut Vec<(u32, u32, u8)>) {
    // Events: (position, txn, is completion).
    let mut events: Vec<(usize, u32, bool)> = Vec::with_capacity(txns.len() * 2);
    for (t, txn) in txns.iter().enumerate() {
        if txn.outcome == Outcome::Fail {
            continue;
        }
        events.push((txn.invoke, t as u32, false));
        if let (Outcome::Ok, Some(c)) = (txn.outcome, txn.complete) {
            events.push((c, t as u32, true));
        }
    }
    events.sort_unstable();
    let mut frontier: Vec<u32> = Vec::new();
    let mut preds: FxHashMap<u32, Vec<u32>> = FxHashMap::default();
    for (_, t, done) in events {
        if !done {
            for &p in &frontier {
                raw.push((p, t, Kind::Realtime.bit()));
            }
            preds.insert(t, frontier.clone());
        } else {
            // Whatever preceded t is now implied through t for anything
            // invoked later.
            let before = preds.remove(&t).unwrap_or_default();
            frontier.retain(|p| !before.contains(p));
            frontier.push(t);
        }
    }
}
