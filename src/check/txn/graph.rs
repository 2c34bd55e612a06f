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
        let n = txns.len();
        let mut g: DiGraph<(), u8, u32> = DiGraph::with_capacity(n, raw.len());
        for _ in 0..n {
            g.add_node(());
        }
        in_order(n, raw, |a, b, mask| {
            g.add_edge(NodeIndex::new(a as usize), NodeIndex::new(b as usize), mask);
        });
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

/// Hands `edges` (among `n` nodes) to `add` in (from, to) order, the
/// masks of repeated pairs merged: a counting sort by source, then each
/// source's few targets sorted, instead of a comparison sort of the whole
/// list.
fn in_order(n: usize, edges: Vec<(u32, u32, u8)>, mut add: impl FnMut(u32, u32, u8)) {
    let mut start: Vec<usize> = vec![0; n + 1];
    for &(a, _, _) in &edges {
        start[a as usize + 1] += 1;
    }
    for i in 0..n {
        start[i + 1] += start[i];
    }
    let mut fill = start.clone();
    let mut targets: Vec<(u32, u8)> = vec![(0, 0); edges.len()];
    for &(a, b, mask) in &edges {
        targets[fill[a as usize]] = (b, mask);
        fill[a as usize] += 1;
    }
    drop(fill);
    drop(edges);
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
            add(a as u32, b, mask);
            i = j;
        }
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

#[cfg(test)]
mod tests {
    //! Differential tests: the counting sort and the real-time frontier
    //! against the straightforward versions they replaced, on random input.

    use super::*;
    use crate::check::txn::{parse, TxnKind};
    use crate::history::{History, Op, OpType, Process};
    use rustc_hash::FxHashMap;
    use serde_json::json;

    /// xorshift64*: deterministic and dependency-free.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
        }
    }

    #[test]
    fn edges_come_in_the_order_and_with_the_masks_of_a_full_sort() {
        let mut rng = Rng(7);
        for round in 0..200 {
            let n = 1 + rng.below(30) as usize;
            let edges: Vec<(u32, u32, u8)> = (0..rng.below(200))
                .map(|_| {
                    let a = rng.below(n as u64) as u32;
                    let b = rng.below(n as u64) as u32;
                    (a, b, 1 << rng.below(5))
                })
                .collect();
            let mut sorted = edges.clone();
            sorted.sort_unstable_by_key(|&(a, b, _)| (a, b));
            let mut expected: Vec<(u32, u32, u8)> = Vec::new();
            for (a, b, mask) in sorted {
                match expected.last_mut() {
                    Some(last) if (last.0, last.1) == (a, b) => last.2 |= mask,
                    _ => expected.push((a, b, mask)),
                }
            }
            let mut got = Vec::new();
            in_order(n, edges, |a, b, mask| got.push((a, b, mask)));
            assert_eq!(got, expected, "round {round}");
        }
    }

    /// The real-time edges as first written: each transaction's
    /// predecessors cloned into a map.
    fn realtime_reference(txns: &[Txn]) -> Vec<(u32, u32, u8)> {
        let mut events: Vec<(usize, u32, bool)> = Vec::new();
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
        let mut raw = Vec::new();
        let mut frontier: Vec<u32> = Vec::new();
        let mut preds: FxHashMap<u32, Vec<u32>> = FxHashMap::default();
        for (_, t, done) in events {
            if !done {
                for &p in &frontier {
                    raw.push((p, t, Kind::Realtime.bit()));
                }
                preds.insert(t, frontier.clone());
            } else {
                let before = preds.remove(&t).unwrap_or_default();
                frontier.retain(|p| !before.contains(p));
                frontier.push(t);
            }
        }
        raw
    }

    #[test]
    fn realtime_edges_match_the_map_of_cloned_frontiers() {
        let mut rng = Rng(11);
        for round in 0..100 {
            let procs = 1 + rng.below(6);
            let mut busy = vec![false; procs as usize];
            // After an `info` the process is gone: its slot gets a new one.
            let mut ids: Vec<u64> = (0..procs).collect();
            let mut ops = Vec::new();
            for _ in 0..rng.below(60) {
                let p = rng.below(procs) as usize;
                let (kind, value) = if !busy[p] {
                    (OpType::Invoke, json!([["r", "x", null]]))
                } else {
                    match rng.below(4) {
                        0 => (OpType::Info, json!([["r", "x", null]])),
                        1 => (OpType::Fail, json!([["r", "x", null]])),
                        _ => (OpType::Ok, json!([["r", "x", []]])),
                    }
                };
                busy[p] = kind == OpType::Invoke;
                ops.push(Op::new(0, Process::Client(ids[p]), kind, "txn", value));
                if kind == OpType::Info {
                    ids[p] += procs;
                }
            }
            let h = History::new(ops);
            let calls = h.calls().expect("well-formed history");
            let (txns, _, _) = parse::decode(&h, &calls, TxnKind::ListAppend).expect("decodable");
            let mut got = Vec::new();
            realtime_edges(&txns, &mut got);
            assert_eq!(got, realtime_reference(&txns), "round {round}");
        }
    }
}
