//! List-append inference: each key is a list, transactions append unique
//! values and read whole lists. The longest committed read of a key reveals
//! its version order (every other read must be a prefix of it); from that
//! order come the ww, wr and rw edges. Non-cycle anomalies found here:
//! internal, future-read, duplicate-elements, incompatible-order, G1a, G1b,
//! dirty-update, lost-update and garbage-read.

use super::infer::{show_list, Found, Inferred, Kind, Why};
use super::parse::{Interner, Mop, Txn, Txns, NIL};
use super::TxnError;
use crate::history::Outcome;
use rustc_hash::{FxHashMap, FxHashSet};

/// Who appended a value: the transaction, and whether it was that
/// transaction's last append to the key (reading anything else is G1b).
#[derive(Clone, Copy)]
struct Writer {
    txn: u32,
    last: bool,
    /// How many appends to the key the transaction made before this one.
    seq: u32,
}

/// A committed read: which transaction, and the list it saw.
struct Read<'a> {
    txn: u32,
    values: &'a [u32],
    /// Read before the transaction wrote the key itself: it observes other
    /// transactions' versions and so yields wr and rw edges.
    external: bool,
}

/// Infers edges and non-cycle anomalies of a list-append history.
pub(crate) fn infer(txns: &Txns, atoms: &Interner) -> Result<Inferred, TxnError> {
    let mut out = Inferred::default();
    let (writers, appends) = writers(txns, atoms)?;
    let failed = |t: u32| txns[t as usize].outcome == Outcome::Fail;

    // Reads per key, with internal consistency checked along the way.
    let mut reads: FxHashMap<u32, Vec<Read<'_>>> = FxHashMap::default();
    for (t, txn) in txns.iter().enumerate() {
        let t = t as u32;
        if txn.outcome != Outcome::Ok {
            continue;
        }
        internal(t, txn, txns, atoms, &mut out, &mut reads);
    }
    let committed = committed_appends(txns, &writers, &reads, appends);

    let mut keys: Vec<u32> = reads.keys().copied().collect();
    keys.sort_unstable();
    for key in keys {
        let rs = &reads[&key];
        let k = atoms.show(key);
        // The version order: the longest read. Every read must be a prefix.
        let longest = rs
            .iter()
            .max_by_key(|r| r.values.len())
            .map(|r| (r.txn, r.values))
            .unwrap_or((0, &[]));
        let order = longest.1;
        let mut prefix = vec![true; rs.len()];
        let mut reported_incompatible = false;
        for (i, r) in rs.iter().enumerate() {
            if !order.starts_with(r.values) {
                prefix[i] = false;
                if !reported_incompatible {
                    reported_incompatible = true;
                    out.push(Found {
                        name: "incompatible-order",
                        txns: vec![longest.0, r.txn],
                        key: Some(key),
                        text: format!(
                            "T1 read key {k} = {} and T2 read key {k} = {}: neither is a prefix of the other, so no single order of appends explains both",
                            show_list(atoms, order),
                            show_list(atoms, r.values)
                        ),
                    });
                }
            }
        }
        // The writer of each position of the order, and for each length n
        // of a prefix: the last position before n whose writer did not
        // fail, and the first at or after n. Reads are prefixes of the
        // order (or reported above), so these answer for every read at
        // once instead of a hash lookup per element per read.
        let order_w: Vec<Option<Writer>> = order
            .iter()
            .map(|v| writers.get(&(key, *v)).copied())
            .collect();
        let ok_at = |j: usize| order_w[j].filter(|w| !failed(w.txn));
        let mut last_ok: Vec<Option<usize>> = Vec::with_capacity(order.len() + 1);
        last_ok.push(None);
        for j in 0..order.len() {
            let before = last_ok[j];
            last_ok.push(ok_at(j).map(|_| j).or(before));
        }
        let mut next_ok: Vec<Option<usize>> = vec![None; order.len() + 1];
        for j in (0..order.len()).rev() {
            next_ok[j] = ok_at(j).map(|_| j).or(next_ok[j + 1]);
        }
        let first_failed = order_w
            .iter()
            .position(|w| w.is_some_and(|w| failed(w.txn)));
        // A transaction's appends must appear in the order it made them.
        // Every read is a prefix here, and a prefix shows a reordering iff
        // it reaches the position where the order itself shows it.
        if !reported_incompatible {
            let shown = reordered(&writers, key, order);
            if let Some((r, (w, a, b))) = shown
                .and_then(|(at, found)| rs.iter().find(|r| r.values.len() > at).map(|r| (r, found)))
            {
                out.push(Found {
                    name: "incompatible-order",
                    txns: vec![r.txn, w],
                    key: Some(key),
                    text: format!(
                        "T1 read key {k} = {}, but T2 appended {} before {}: no single order of appends explains both",
                        show_list(atoms, r.values),
                        atoms.show(a),
                        atoms.show(b)
                    ),
                });
            }
        }
        if let Some((a, b, v)) = duplicate(order) {
            out.push(Found {
                name: "duplicate-elements",
                txns: vec![longest.0],
                key: Some(key),
                text: format!(
                    "T1 read key {k} = {}, in which {} appears twice (positions {a} and {b}); every appended value is unique",
                    show_list(atoms, order),
                    atoms.show(v)
                ),
            });
        }
        for (i, r) in rs.iter().enumerate() {
            if !prefix[i] {
                if let Some((a, b, v)) = duplicate(r.values) {
                    out.push(Found {
                        name: "duplicate-elements",
                        txns: vec![r.txn],
                        key: Some(key),
                        text: format!(
                            "T1 read key {k} = {}, in which {} appears twice (positions {a} and {b}); every appended value is unique",
                            show_list(atoms, r.values),
                            atoms.show(v)
                        ),
                    });
                }
            }
        }

        // Walk the order: ww edges between successive committed writers,
        // dirty updates after an aborted append, values nobody appended.
        let mut prev: Option<(u32, u32)> = None;
        let mut aborted: Option<(u32, u32)> = None;
        let mut garbage_reported = false;
        for &v in order {
            let Some(w) = writers.get(&(key, v)) else {
                if !garbage_reported {
                    garbage_reported = true;
                    out.push(Found {
                        name: "garbage-read",
                        txns: vec![longest.0],
                        key: Some(key),
                        text: format!(
                            "T1 read key {k} = {}, but no transaction appended {} to key {k}",
                            show_list(atoms, order),
                            atoms.show(v)
                        ),
                    });
                }
                continue;
            };
            if failed(w.txn) {
                aborted.get_or_insert((w.txn, v));
                continue;
            }
            if let Some((ft, fv)) = aborted.take() {
                out.push(Found {
                    name: "dirty-update",
                    txns: vec![ft, w.txn],
                    key: Some(key),
                    text: format!(
                        "key {k} = {} holds {}, appended by T1, which failed, and after it {}, appended by T2: T2 updated a state only an aborted transaction produced",
                        show_list(atoms, order),
                        atoms.show(fv),
                        atoms.show(v)
                    ),
                });
            }
            if let Some((pt, pv)) = prev {
                if pt != w.txn {
                    out.edges
                        .push((pt, w.txn, Kind::Ww, Why { key, v1: pv, v2: v }));
                }
            }
            prev = Some((w.txn, v));
        }
        // Appends of transactions proven committed that no read observed:
        // lists only grow, so each came after every version read, whatever
        // the order among themselves.
        let in_order: FxHashSet<u32> = order.iter().copied().collect();
        let unobserved: Vec<(u32, u32)> = committed
            .get(&key)
            .map(|vs| {
                vs.iter()
                    .filter(|(v, _)| !in_order.contains(v))
                    .copied()
                    .collect()
            })
            .unwrap_or_default();
        if let Some((pt, pv)) = prev {
            for &(v, w) in &unobserved {
                if w != pt {
                    out.edges
                        .push((pt, w, Kind::Ww, Why { key, v1: pv, v2: v }));
                }
            }
        }
        // The next committed (or possibly committed) version after position
        // `n` of the order, for rw edges.
        let next_after = |n: usize| -> Option<(u32, u32)> {
            next_ok[n].and_then(|j| order_w[j].map(|w| (w.txn, order[j])))
        };

        let mut lost: FxHashMap<&[u32], Vec<u32>> = FxHashMap::default();
        for (i, r) in rs.iter().enumerate() {
            // G1a: any element from an aborted transaction.
            let aborted = if prefix[i] {
                first_failed
                    .filter(|&j| j < r.values.len())
                    .and_then(|j| order_w[j].map(|w| (&order[j], w)))
            } else {
                r.values.iter().find_map(|v| {
                    writers
                        .get(&(key, *v))
                        .filter(|w| failed(w.txn))
                        .map(|w| (v, *w))
                })
            };
            if let Some((&v, w)) = aborted {
                out.push(Found {
                    name: "G1a",
                    txns: vec![r.txn, w.txn],
                    key: Some(key),
                    text: format!(
                        "T1 read key {k} = {}, including {}, which T2 appended; T2 failed, so T1 read an aborted write",
                        show_list(atoms, r.values),
                        atoms.show(v)
                    ),
                });
            }
            if !r.external {
                continue;
            }
            if let Some(&last) = r.values.last() {
                // G1b whoever wrote it: an intermediate append of a failed
                // transaction is both an aborted and an intermediate read.
                if let Some(w) = writers.get(&(key, last)).filter(|w| w.txn != r.txn) {
                    if !w.last {
                        out.push(Found {
                            name: "G1b",
                            txns: vec![r.txn, w.txn],
                            key: Some(key),
                            text: format!(
                                "T1 read key {k} = {}, ending in {}, which T2 appended, but T2 appended more to key {k} afterwards: T1 read an intermediate state",
                                show_list(atoms, r.values),
                                atoms.show(last)
                            ),
                        });
                    }
                }
            }
            // The reader depends on the last version it saw that a
            // transaction which did not fail wrote: elements of failed
            // transactions after it (G1a) do not hide that dependency.
            let depends = if prefix[i] {
                last_ok[r.values.len()].and_then(|j| order_w[j].map(|w| (&order[j], w)))
            } else {
                r.values.iter().rev().find_map(|v| {
                    writers
                        .get(&(key, *v))
                        .filter(|w| !failed(w.txn))
                        .map(|w| (v, *w))
                })
            };
            if let Some((&v, w)) = depends {
                if w.txn != r.txn {
                    out.edges.push((
                        w.txn,
                        r.txn,
                        Kind::Wr,
                        Why {
                            key,
                            v1: v,
                            v2: NIL,
                        },
                    ));
                }
            }
            if prefix[i] {
                let seen = r.values.last().copied().unwrap_or(NIL);
                if let Some((w, v)) = next_after(r.values.len()) {
                    if w != r.txn {
                        out.edges.push((
                            r.txn,
                            w,
                            Kind::Rw,
                            Why {
                                key,
                                v1: seen,
                                v2: v,
                            },
                        ));
                    }
                }
                for &(v, w) in &unobserved {
                    if w != r.txn {
                        out.edges.push((
                            r.txn,
                            w,
                            Kind::Rw,
                            Why {
                                key,
                                v1: seen,
                                v2: v,
                            },
                        ));
                    }
                }
            }
            // Lost update: committed transactions that read the same
            // version and then appended, whether or not that version fits
            // the order of the other reads.
            // (A transaction has a handful of micro-operations: scanning
            // them beats a set of every (transaction, key) appended.)
            let appends_key = txns
                .mops(&txns[r.txn as usize])
                .iter()
                .any(|m| matches!(m, Mop::Append { key: k, .. } if *k == key));
            if appends_key {
                lost.entry(r.values).or_default().push(r.txn);
            }
        }
        let mut lost: Vec<(&[u32], Vec<u32>)> =
            lost.into_iter().filter(|(_, ts)| ts.len() > 1).collect();
        lost.sort_unstable();
        for (version, ts) in lost {
            let names: Vec<String> = (1..=ts.len()).map(|i| format!("T{i}")).collect();
            out.push(Found {
                name: "lost-update",
                txns: ts,
                key: Some(key),
                text: format!(
                    "{} all read key {k} = {} and then appended to it: each update was made without seeing the others, so all but one are lost",
                    names.join(", "),
                    show_list(atoms, version)
                ),
            });
        }
    }
    Ok(out)
}

/// The writer of every appended value; a value appended twice is bad input
/// (inference relies on unique values).
fn writers(txns: &Txns, atoms: &Interner) -> Result<Writers, TxnError> {
    let mut writers: FxHashMap<(u32, u32), Writer> = FxHashMap::default();
    let mut appends: FxHashMap<u32, Vec<(u32, u32)>> = FxHashMap::default();
    // Per key the transaction appended to: its last value and how many
    // appends. A transaction touches a handful of keys: a vector, reused,
    // beats a map per transaction.
    let mut of_key: Vec<(u32, u32, u32)> = Vec::new();
    for (t, txn) in txns.iter().enumerate() {
        let t = t as u32;
        of_key.clear();
        for m in txns.mops(txn) {
            if let Mop::Append { key, value } = *m {
                let i = match of_key.iter().position(|&(k, _, _)| k == key) {
                    Some(i) => i,
                    None => {
                        of_key.push((key, value, 0));
                        of_key.len() - 1
                    }
                };
                let seq = of_key[i].2;
                of_key[i].1 = value;
                of_key[i].2 += 1;
                if let Some(prev) = writers.insert(
                    (key, value),
                    Writer {
                        txn: t,
                        last: false,
                        seq,
                    },
                ) {
                    return Err(TxnError::DuplicateWrite {
                        key: atoms.show(key),
                        value: atoms.show(value),
                        first: txns[prev.txn as usize].invoke,
                        second: txn.invoke,
                    });
                }
                if txn.outcome != Outcome::Fail {
                    appends.entry(key).or_default().push((value, t));
                }
            }
        }
        for &(key, value, _) in &of_key {
            if let Some(w) = writers.get_mut(&(key, value)) {
                w.last = true;
            }
        }
    }
    Ok((writers, appends))
}

/// The writer of each `(key, value)`, and each key's appends `(value, txn)`
/// by transactions that did not fail.
type Writers = (
    FxHashMap<(u32, u32), Writer>,
    FxHashMap<u32, Vec<(u32, u32)>>,
);

/// Each key's appends `(value, txn)` by transactions proven committed: those
/// that completed `ok`, and `info` ones of which a committed read observed
/// some append (a transaction's effects are visible all or none, so one
/// observed append proves every other committed too).
fn committed_appends(
    txns: &Txns,
    writers: &FxHashMap<(u32, u32), Writer>,
    reads: &FxHashMap<u32, Vec<Read<'_>>>,
    mut appends: FxHashMap<u32, Vec<(u32, u32)>>,
) -> FxHashMap<u32, Vec<(u32, u32)>> {
    let mut proven: FxHashSet<u32> = FxHashSet::default();
    for (&key, rs) in reads {
        let mut observe = |values: &[u32]| {
            for &v in values {
                if let Some(w) = writers.get(&(key, v)) {
                    if txns[w.txn as usize].outcome == Outcome::Info {
                        proven.insert(w.txn);
                    }
                }
            }
        };
        // The values read of the key are those of its longest read and of
        // the reads that are not a prefix of it: the prefixes (nearly all
        // reads) add nothing, and comparing slices is much cheaper than a
        // lookup per element.
        let Some(longest) = rs.iter().map(|r| r.values).max_by_key(|v| v.len()) else {
            continue;
        };
        observe(longest);
        for r in rs {
            if !longest.starts_with(r.values) {
                observe(r.values);
            }
        }
    }
    for vs in appends.values_mut() {
        vs.retain(|&(_, t)| txns[t as usize].outcome == Outcome::Ok || proven.contains(&t));
    }
    appends
}

/// Within one transaction, per key: the last list read (if any), what the
/// transaction appended since, and whether it appended at all.
type KeyState<'a> = (Option<&'a [u32]>, Vec<u32>, bool);

/// Checks that each read of a committed transaction agrees with its own
/// earlier reads and appends (`internal`), and collects its reads.
fn internal<'a>(
    t: u32,
    txn: &Txn,
    txns: &'a Txns,
    atoms: &Interner,
    out: &mut Inferred,
    reads: &mut FxHashMap<u32, Vec<Read<'a>>>,
) {
    // Per key: the last list read (if any) and what was appended since.
    // A transaction touches a handful of keys: a vector beats a map.
    let mut state: Vec<(u32, KeyState<'a>)> = Vec::new();
    fn entry<'s, 'a>(state: &'s mut Vec<(u32, KeyState<'a>)>, key: u32) -> &'s mut KeyState<'a> {
        let i = match state.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                state.push((key, (None, Vec::new(), false)));
                state.len() - 1
            }
        };
        &mut state[i].1
    }
    let mops = txns.mops(txn);
    for (i, m) in mops.iter().enumerate() {
        match m {
            Mop::Append { key, value } => {
                // Appending an element this transaction already read is a
                // future read; the first list it was read in is shown.
                let earlier = mops[..i].iter().find_map(|e| match e {
                    Mop::ReadList { key: k, values } if k == key => {
                        let list = txns.elems(*values);
                        list.contains(value).then_some(list)
                    }
                    _ => None,
                });
                if let Some(list) = earlier {
                    out.push(Found {
                        name: "future-read",
                        txns: vec![t],
                        key: Some(*key),
                        text: format!(
                            "T1 read key {} = {}, including {}, which T1 itself appended only afterwards: it observed its own future write",
                            atoms.show(*key),
                            show_list(atoms, list),
                            atoms.show(*value)
                        ),
                    });
                }
                let s = entry(&mut state, *key);
                s.1.push(*value);
                s.2 = true;
            }
            Mop::ReadList { key, values } => {
                let values = txns.elems(*values);
                let s = entry(&mut state, *key);
                let ok = match s.0 {
                    Some(base) => {
                        values.len() == base.len() + s.1.len()
                            && values.starts_with(base)
                            && values[base.len()..] == s.1[..]
                    }
                    None => values.ends_with(&s.1),
                };
                if !ok {
                    let expected = match s.0 {
                        Some(base) => {
                            let mut e = base.to_vec();
                            e.extend_from_slice(&s.1);
                            show_list(atoms, &e)
                        }
                        None => format!("a list ending in {}", show_list(atoms, &s.1)),
                    };
                    out.push(Found {
                        name: "internal",
                        txns: vec![t],
                        key: Some(*key),
                        text: format!(
                            "T1 read key {} = {}, but its own earlier operations imply {expected}",
                            atoms.show(*key),
                            show_list(atoms, values)
                        ),
                    });
                }
                let external = s.0.is_none() && !s.2;
                reads.entry(*key).or_default().push(Read {
                    txn: t,
                    values,
                    external,
                });
                s.0 = Some(values);
                s.1.clear();
            }
            _ => {}
        }
    }
}

/// The first transaction whose appends to `key` appear in `xs` out of the
/// order it made them: the position in `xs` where that shows, the
/// transaction, and the values it appended first and second.
fn reordered(
    writers: &FxHashMap<(u32, u32), Writer>,
    key: u32,
    xs: &[u32],
) -> Option<(usize, (u32, u32, u32))> {
    // Per writer: the sequence number and value of its last append seen.
    let mut seen: FxHashMap<u32, (u32, u32)> = FxHashMap::default();
    for (at, &x) in xs.iter().enumerate() {
        let Some(w) = writers.get(&(key, x)) else {
            continue;
        };
        if let Some(&(seq, v)) = seen.get(&w.txn) {
            if w.seq < seq {
                return Some((at, (w.txn, x, v)));
            }
        }
        seen.insert(w.txn, (w.seq, x));
    }
    None
}

/// The first value that appears twice in `xs`: its two positions and value.
fn duplicate(xs: &[u32]) -> Option<(usize, usize, u32)> {
    let mut seen: FxHashMap<u32, usize> = FxHashMap::default();
    for (i, &x) in xs.iter().enumerate() {
        if let Some(j) = seen.insert(x, i) {
            return Some((j, i, x));
        }
    }
    None
}
