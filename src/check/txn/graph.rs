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
use std::sync::{Mutex, OnceLock};

/// The dependency graph of a history.
pub(crate) struct DepGraph {
    /// Nodes are transaction numbers; edge weights are kind masks.
    pub g: DiGraph<(), u8, u32>,
    /// The data edges as inferred, until [`DepGraph::whys`] first needs
    /// them sorted (then empty).
    data: Mutex<Vec<(u32, u32, Kind, Why)>>,
    /// The first data edge inferred of each (from, to, kind), with its
    /// reason, sorted: looked up by binary search ([`DepGraph::why`]).
    /// A sorted vector rather than a hash map: at millions of edges it
    /// takes a third of the memory. Sorted only when a reason is first
    /// asked for, that is when a cycle is explained: a valid history (the
    /// usual case at scale) never pays for the sort.
    whys: OnceLock<Vec<(u32, u32, Kind, Why)>>,
}

impl DepGraph {
    /// Builds the graph from data edges and the history's process and
    /// real-time order. Failed transactions take no part in any order.
    pub(crate) fn build(txns: &[Txn], data: Vec<(u32, u32, Kind, Why)>) -> DepGraph {
        let mut raw: Vec<(u32, u32, u8)> = Vec::with_capacity(data.len() + txns.len() * 4);
        for &(a, b, k, _) in &data {
            raw.push((a, b, k.bit()));
        }
        process_edges(txns, &mut raw);
        realtime_edges(txns, &mut raw);
        // The edges in (from, to) order, repeats merged into one mask: a
        // counting sort by source, then each source's few targets sorted,
        // instead of a comparison sort of the whole list.
        let n = txns.len();
        let mut start: Vec<usize> = vec![0; n + 1];
        for &(a, _, _) in &raw {
            start[a as usize + 1] += 1;
        }
        for i in 0..n {
            start[i + 1] += start[i];
        }
        let mut fill = start.clone();
        let mut targets: Vec<(u32, u8)> = vec![(0, 0); raw.len()];
        for &(a, b, mask) in &raw {
            targets[fill[a as usize]] = (b, mask);
            fill[a as usize] += 1;
        }
        drop(fill);
        drop(raw);
        let mut g: DiGraph<(), u8, u32> = DiGraph::with_capacity(n, targets.len());
        for _ in 0..n {
            g.add_node(());
        }
        for a in 0..n {
            let out = &mut targets[start[a]..start[a + 1]];
            out.sort_unstable_by_key(|&(b, _)| b);
            let mut i = 0;
            while i < out.len() {
                let (b, mut mask) = out[i];
                let mut j = i + 1;
                while j < out.len() && out[j].0 == b {
                    mask |= out[j].1;
                    j += 1;
                }
                g.add_edge(NodeIndex::new(a), NodeIndex::new(b as usize), mask);
                i = j;
            }
        }
        DepGraph {
            g,
            data: Mutex::new(data),
            whys: OnceLock::new(),
        }
    }

    /// The data edges sorted, each (from, to, kind) once with the reason
    /// first inferred; sorted on first use.
    fn whys(&self) -> &[(u32, u32, Kind, Why)] {
        self.whys.get_or_init(|| {
            let mut data = std::mem::take(
                &mut *self
                    .data
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            );
            // A stable sort keeps, of repeated edges, the first inferred.
            data.par_sort_by_key(|&(a, b, k, _)| (a, b, k));
            data.dedup_by_key(|&mut (a, b, k, _)| (a, b, k));
            data.shrink_to_fit();
            data
        })
    }

    /// Why the data edge `a → b` of kind `k` exists.
    pub(crate) fn why(&self, a: u32, b: u32, k: Kind) -> Option<Why> {
        let whys = self.whys();
        whys.binary_search_by_key(&(a, b, k), |&(a, b, k, _)| (a, b, k))
            .ok()
            .map(|i| whys[i].3)
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
    // Per transaction: where its real-time predecessors (the frontier
    // when it was invoked) start in `raw` and how many there are; `raw`
    // only grows here, so they stay in place until it completes.
    let mut preds: Vec<(usize, usize)> = vec![(0, 0); txns.len()];
    for (_, t, done) in events {
        if !done {
            preds[t as usize] = (raw.len(), frontier.len());
            for &p in &frontier {
                raw.push((p, t, Kind::Realtime.bit()));
            }
        } else {
            // Whatever preceded t is now implied through t for anything
            // invoked later.
            let (from, n) = preds[t as usize];
            let before = &raw[from..from + n];
            frontier.retain(|&p| !before.iter().any(|&(q, _, _)| q == p));
            frontier.push(t);
        }
    }
}
