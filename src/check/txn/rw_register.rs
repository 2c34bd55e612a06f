//! Read-write register inference: each key is a register, transactions
//! write unique values and read single values (`nil` is the initial
//! version). A register read reveals only one version, so the version order
//! of each key is a partial order built from what is certain:
//!
//! - nil precedes every version;
//! - writes-follow-reads: a transaction that read `v` and then wrote `w`
//!   to the same key puts `v` before `w` (and its own successive writes in
//!   order);
//! - on request, per-key sequential order (what a process later reads or
//!   writes of a key follows what it earlier read or wrote of it) and
//!   per-key linearizable order (a write that completed before another
//!   began precedes it).
//!
//! A cycle in a key's version order is `cyclic-versions`; such a key gives
//! no ww or rw edges. Other non-cycle anomalies: internal, future-read, G1a,
//! G1b, dirty-update, lost-update and garbage-read.

use super::infer::{Found, Inferred, Kind, Why};
use super::parse::{Interner, Mop, Txns, NIL};
use super::{TxnError, TxnOptions};
use crate::history::{Outcome, Process};
use petgraph::graphmap::DiGraphMap;
use rustc_hash::{FxHashMap, FxHashSet};

#[derive(Clone, Copy)]
struct Writer {
    txn: u32,
    last: bool,
}

/// Infers edges and non-cycle anomalies of an rw-register history.
pub(crate) fn infer(
    txns: &Txns,
    atoms: &Interner,
    opts: &TxnOptions,
) -> Result<Inferred, TxnError> {
    let mut out = Inferred::default();
    let mut writers: FxHashMap<(u32, u32), Writer> = FxHashMap::default();
    // Per txn and key: first and last value it wrote.
    let mut wrote: FxHashMap<(u32, u32), (u32, u32)> = FxHashMap::default();
    // Version-order edges per key.
    let mut versions: FxHashMap<u32, FxHashSet<(u32, u32)>> = FxHashMap::default();
    // External reads per key: (txn, value).
    let mut reads: FxHashMap<u32, Vec<(u32, u32)>> = FxHashMap::default();
    // Every value written to each key.
    let mut key_values: FxHashMap<u32, Vec<u32>> = FxHashMap::default();
    let failed = |t: u32| txns[t as usize].outcome == Outcome::Fail;

    for (t, txn) in txns.iter().enumerate() {
        let t = t as u32;
        // Per key: the value this txn last saw or wrote, and whether it wrote.
        let mut state: FxHashMap<u32, (u32, bool)> = FxHashMap::default();
        for m in txns.mops(txn) {
            match *m {
                Mop::Write { key, value } => {
                    if let Some(prev) = writers.insert((key, value), Writer { txn: t, last: true })
                    {
                        return Err(TxnError::DuplicateWrite {
                            key: atoms.show(key),
                            value: atoms.show(value),
                            first: txns[prev.txn as usize].invoke,
                            second: txn.invoke,
                        });
                    }
                    key_values.entry(key).or_default().push(value);
                    let e = wrote.entry((t, key)).or_insert((value, value));
                    if e.1 != value {
                        if let Some(w) = writers.get_mut(&(key, e.1)) {
                            w.last = false;
                        }
                    }
                    e.1 = value;
                    // What this txn saw or wrote before precedes this write.
                    if let Some(&(before, _)) = state.get(&key) {
                        versions.entry(key).or_default().insert((before, value));
                    }
                    state.insert(key, (value, true));
                }
                Mop::ReadReg { key, value: v } => {
                    match state.get(&key) {
                        Some(&(s, wrote_it)) if s != v => out.push(Found {
                            name: "internal",
                            txns: vec![t],
                            key: Some(key),
                            text: format!(
                                "T1 read key {} = {}, but it had just {} {}",
                                atoms.show(key),
                                atoms.show(v),
                                if wrote_it { "written" } else { "read" },
                                atoms.show(s)
                            ),
                        }),
                        Some(_) => {}
                        None => reads.entry(key).or_default().push((t, v)),
                    }
                    let wrote_it = state.get(&key).is_some_and(|s| s.1);
                    state.insert(key, (v, wrote_it));
                }
                _ => {}
            }
        }
    }

    if opts.sequential_keys {
        sequential(txns, &mut versions);
    }
    if opts.linearizable_keys {
        linearizable(txns, &wrote, &mut versions);
    }

    let mut keys: Vec<u32> = versions.keys().chain(reads.keys()).copied().collect();
    keys.sort_unstable();
    keys.dedup();
    for key in keys {
        let k = atoms.show(key);
        let rs = reads.get(&key).map(Vec::as_slice).unwrap_or(&[]);
        let mut lost: FxHashMap<u32, Vec<u32>> = FxHashMap::default();
        for &(t, v) in rs {
            // Lost update: transactions that read the same version (nil, an
            // aborted or unknown one included) and then wrote the key.
            if wrote.contains_key(&(t, key)) && !writers.get(&(key, v)).is_some_and(|w| w.txn == t)
            {
                lost.entry(v).or_default().push(t);
            }
            if v == NIL {
                continue;
            }
            let Some(w) = writers.get(&(key, v)) else {
                out.push(Found {
                    name: "garbage-read",
                    txns: vec![t],
                    key: Some(key),
                    text: format!(
                        "T1 read key {k} = {}, but no transaction wrote {} to key {k}",
                        atoms.show(v),
                        atoms.show(v)
                    ),
                });
                continue;
            };
            if w.txn == t {
                // An external read (nothing of the key read or written before
                // it) of the transaction's own write: the write came later.
                out.push(Found {
                    name: "future-read",
                    txns: vec![t],
                    key: Some(key),
                    text: format!(
                        "T1 read key {k} = {}, which T1 itself wrote only afterwards: it observed its own future write",
                        atoms.show(v)
                    ),
                });
                continue;
            }
            if !w.last {
                out.push(Found {
                    name: "G1b",
                    txns: vec![t, w.txn],
                    key: Some(key),
                    text: format!(
                        "T1 read key {k} = {}, which T2 wrote, but T2 later overwrote key {k} itself: T1 read an intermediate state",
                        atoms.show(v)
                    ),
                });
            }
            if failed(w.txn) {
                out.push(Found {
                    name: "G1a",
                    txns: vec![t, w.txn],
                    key: Some(key),
                    text: format!("T1 read key {k} = {}, which T2 wrote; T2 failed, so T1 read an aborted write", atoms.show(v)),
                });
                continue;
            }
            out.edges.push((
                w.txn,
                t,
                Kind::Wr,
                Why {
                    key,
                    v1: v,
                    v2: NIL,
                },
            ));
        }
        let mut lost: Vec<(u32, Vec<u32>)> =
            lost.into_iter().filter(|(_, ts)| ts.len() > 1).collect();
        lost.sort_unstable();
        for (v, ts) in lost {
            let names: Vec<String> = (1..=ts.len()).map(|i| format!("T{i}")).collect();
            out.push(Found {
                name: "lost-update",
                txns: ts,
                key: Some(key),
                text: format!(
                    "{} all read key {k} = {} and then wrote key {k}: each write was made without seeing the others, so all but one are lost",
                    names.join(", "),
                    atoms.show(v)
                ),
            });
        }

        // The version graph of this key: nil before every version without
        // another known predecessor.
        let mut g: DiGraphMap<u32, ()> = DiGraphMap::new();
        if let Some(es) = versions.get(&key) {
            for &(a, b) in es {
                g.add_edge(a, b, ());
            }
        }
        let cyclic = petgraph::algo::tarjan_scc(&g)
            .into_iter()
            .find(|c| c.len() > 1);
        if let Some(mut c) = cyclic {
            // In the order a reader expects: numbers by value.
            c.sort_by(|a, b| {
                let (va, vb) = (atoms.value(*a), atoms.value(*b));
                match (va.as_f64(), vb.as_f64()) {
                    (Some(x), Some(y)) => x.total_cmp(&y),
                    _ => va.to_string().cmp(&vb.to_string()),
                }
            });
            let vs: Vec<String> = c.iter().map(|&v| atoms.show(v)).collect();
            let ts: Vec<u32> = c
                .iter()
                .filter_map(|&v| writers.get(&(key, v)).map(|w| w.txn))
                .collect();
            out.push(Found {
                name: "cyclic-versions",
                txns: ts,
                key: Some(key),
                text: format!(
                    "the version order of key {k} has a cycle among {}: no order of writes explains what was read",
                    vs.join(", ")
                ),
            });
            continue;
        }
        for &v in key_values.get(&key).map(Vec::as_slice).unwrap_or(&[]) {
            if g.neighbors_directed(v, petgraph::Direction::Incoming)
                .next()
                .is_none()
            {
                g.add_edge(NIL, v, ());
            }
        }
        for (a, b, _) in g.all_edges() {
            let (Some(wb), wa) = (writers.get(&(key, b)), writers.get(&(key, a))) else {
                continue;
            };
            if failed(wb.txn) {
                continue;
            }
            if let Some(wa) = wa {
                if failed(wa.txn) {
                    out.push(Found {
                        name: "dirty-update",
                        txns: vec![wa.txn, wb.txn],
                        key: Some(key),
                        text: format!(
                            "T2 wrote key {k} = {} over {}, which T1 wrote; T1 failed, so T2 updated a state only an aborted transaction produced",
                            atoms.show(b),
                            atoms.show(a)
                        ),
                    });
                } else if wa.txn != wb.txn {
                    out.edges
                        .push((wa.txn, wb.txn, Kind::Ww, Why { key, v1: a, v2: b }));
                }
            }
        }
        for &(t, v) in rs {
            if !g.contains_node(v) {
                continue;
            }
            for b in g.neighbors(v) {
                if let Some(wb) = writers.get(&(key, b)) {
                    if wb.txn != t && !failed(wb.txn) {
                        out.edges
                            .push((t, wb.txn, Kind::Rw, Why { key, v1: v, v2: b }));
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Per-key sequential order, as Elle's `sequential-keys`: within a process,
/// the versions of a key it observes do not go back, so the first version
/// a transaction reads or writes of a key follows the last one that process
/// read or wrote of it in earlier transactions (a read included: a process
/// that wrote 1 and later read 2 saw 2 come after 1).
fn sequential(txns: &Txns, versions: &mut FxHashMap<u32, FxHashSet<(u32, u32)>>) {
    let mut order: Vec<usize> = (0..txns.len())
        .filter(|&t| txns[t].outcome == Outcome::Ok)
        .collect();
    order.sort_by_key(|&t| txns[t].invoke);
    let mut last: FxHashMap<(Process, u32), u32> = FxHashMap::default();
    for t in order {
        let txn = &txns[t];
        let mut seen: FxHashMap<u32, u32> = FxHashMap::default();
        let mut first: FxHashMap<u32, u32> = FxHashMap::default();
        for m in txns.mops(txn) {
            let (Mop::Write { key, value } | Mop::ReadReg { key, value }) = *m else {
                continue;
            };
            first.entry(key).or_insert(value);
            seen.insert(key, value);
        }
        for (key, v) in first {
            if let Some(&before) = last.get(&(txn.process, key)) {
                if before != NIL && before != v {
                    versions.entry(key).or_default().insert((before, v));
                }
            }
        }
        for (key, v) in seen {
            last.insert((txn.process, key), v);
        }
    }
}

/// Per-key linearizable order: a committed write that completed before
/// another write's transaction was invoked precedes it. Only the latest
/// such predecessor is linked (the order is still sound, merely less
/// complete).
fn linearizable(
    txns: &Txns,
    wrote: &FxHashMap<(u32, u32), (u32, u32)>,
    versions: &mut FxHashMap<u32, FxHashSet<(u32, u32)>>,
) {
    let mut per_key: FxHashMap<u32, Vec<(u32, u32, u32)>> = FxHashMap::default();
    for (&(t, key), &(first, last)) in wrote {
        if txns[t as usize].outcome != Outcome::Fail {
            per_key.entry(key).or_default().push((t, first, last));
        }
    }
    for (key, mut ws) in per_key {
        ws.sort_unstable();
        let mut done: Vec<(usize, u32)> = ws
            .iter()
            .filter(|(t, _, _)| txns[*t as usize].outcome == Outcome::Ok)
            .filter_map(|&(t, _, last)| txns[t as usize].complete.map(|c| (c, last)))
            .collect();
        done.sort_unstable();
        for &(t, first, _) in &ws {
            let inv = txns[t as usize].invoke;
            let i = done.partition_point(|&(c, _)| c < inv);
            if i > 0 {
                let (_, v) = done[i - 1];
                if v != first {
                    versions.entry(key).or_default().insert((v, first));
                }
            }
        }
    }
}
