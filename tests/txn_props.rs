//! Property tests of the transactional checker.
//!
//! Histories are built by simulating a strictly serializable store: clients
//! invoke transactions concurrently, and each transaction takes effect
//! atomically at the moment it completes (or, when it fails, not at all;
//! when it ends in `info`, either). Such histories must be valid under
//! strict serializability with no anomaly at all; forging one read must
//! produce exactly the anomaly the forgery stands for.

use faultline::check::txn::{self, TxnKind, TxnOptions};
use faultline::check::Validity;
use faultline::history::{History, Op, OpType, Process};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// One planned transaction: micro-ops as (is read, key).
type Plan = Vec<(bool, u8)>;

/// Runs the plans on a simulated store. `schedule` picks which of
/// `procs` processes acts next: an idle one invokes its next plan, a busy
/// one completes (and applies) its transaction. `outcomes` (cycled) decide
/// how each ends: `n % 8` is 0 for fail (no effect), 1 for info with
/// effect, 2 for info without, else ok. After an info the process is
/// replaced by a new one, as in Jepsen.
fn simulate(
    workload: TxnKind,
    plans: &[Plan],
    outcomes: &[u8],
    schedule: &[u8],
    procs: u8,
) -> History {
    let mut ids: Vec<u64> = (0..procs as u64).collect();
    let mut lists: BTreeMap<u8, Vec<u64>> = BTreeMap::new();
    let mut regs: BTreeMap<u8, u64> = BTreeMap::new();
    let mut next_value = 1u64;
    let mut pending: Vec<Option<usize>> = vec![None; procs as usize];
    let mut ops = Vec::new();
    let mut next_plan = 0;
    let mut done = 0;
    let mut picks = schedule.iter().cycle();
    while done < plans.len() {
        let p = (*picks.next().unwrap_or(&0) % procs) as usize;
        match pending[p] {
            None if next_plan < plans.len() => {
                pending[p] = Some(next_plan);
                // The invocation's values are filled in at completion.
                ops.push(Op::new(
                    0,
                    Process::Client(ids[p]),
                    OpType::Invoke,
                    "txn",
                    Value::Null,
                ));
                next_plan += 1;
            }
            None => {
                // Nothing left to invoke: let a busy process finish.
                if let Some(q) = pending.iter().position(Option::is_some) {
                    let i = pending[q].unwrap_or(0);
                    let outcome = outcomes
                        .get(i % outcomes.len().max(1))
                        .copied()
                        .unwrap_or(7);
                    complete(
                        workload,
                        &plans[i],
                        outcome,
                        q,
                        &mut ids,
                        &mut pending,
                        &mut ops,
                        &mut lists,
                        &mut regs,
                        &mut next_value,
                    );
                    done += 1;
                }
            }
            Some(i) => {
                let outcome = outcomes
                    .get(i % outcomes.len().max(1))
                    .copied()
                    .unwrap_or(7);
                complete(
                    workload,
                    &plans[i],
                    outcome,
                    p,
                    &mut ids,
                    &mut pending,
                    &mut ops,
                    &mut lists,
                    &mut regs,
                    &mut next_value,
                );
                done += 1;
            }
        }
    }
    History::new(ops)
}

#[allow(clippy::too_many_arguments)]
fn complete(
    workload: TxnKind,
    plan: &Plan,
    outcome: u8,
    p: usize,
    ids: &mut [u64],
    pending: &mut [Option<usize>],
    ops: &mut Vec<Op>,
    lists_now: &mut BTreeMap<u8, Vec<u64>>,
    regs_now: &mut BTreeMap<u8, u64>,
    next_value: &mut u64,
) {
    // Work on copies: only a transaction that takes effect publishes them.
    let (mut lists_new, mut regs_new) = (lists_now.clone(), regs_now.clone());
    let (lists, regs) = (&mut lists_new, &mut regs_new);
    let mut invoked = Vec::new();
    let mut result = Vec::new();
    for &(read, k) in plan {
        match (workload, read) {
            (TxnKind::ListAppend, true) => {
                invoked.push(json!(["r", k, null]));
                result.push(json!(["r", k, lists.get(&k).cloned().unwrap_or_default()]));
            }
            (TxnKind::ListAppend, false) => {
                lists.entry(k).or_default().push(*next_value);
                invoked.push(json!(["append", k, *next_value]));
                result.push(json!(["append", k, *next_value]));
                *next_value += 1;
            }
            (TxnKind::RwRegister, true) => {
                invoked.push(json!(["r", k, null]));
                result.push(json!(["r", k, regs.get(&k)]));
            }
            (TxnKind::RwRegister, false) => {
                regs.insert(k, *next_value);
                invoked.push(json!(["w", k, *next_value]));
                result.push(json!(["w", k, *next_value]));
                *next_value += 1;
            }
        }
    }
    let process = Process::Client(ids[p]);
    if let Some(inv) = ops.iter_mut().rev().find(|o| o.process == process) {
        inv.value = Value::Array(invoked.clone());
    }
    pending[p] = None;
    let (kind, value, effect) = match outcome % 8 {
        0 => (OpType::Fail, invoked, false),
        1 => (OpType::Info, invoked, true),
        2 => (OpType::Info, invoked, false),
        _ => (OpType::Ok, result, true),
    };
    if effect {
        *lists_now = lists_new;
        *regs_now = regs_new;
    }
    ops.push(Op::new(0, process, kind, "txn", Value::Array(value)));
    if kind == OpType::Info {
        // A process that crashed never invokes again: a new one takes over.
        ids[p] += ids.len() as u64;
    }
}

fn plans() -> impl Strategy<Value = (Vec<Plan>, Vec<u8>, u8)> {
    let plan = prop::collection::vec((any::<bool>(), 0u8..4), 1..=5);
    (
        prop::collection::vec(plan, 1..30),
        prop::collection::vec(any::<u8>(), 1..64),
        1u8..5,
    )
}

fn check(h: &History, workload: TxnKind, model: &str) -> txn::TxnReport {
    let opts = TxnOptions {
        consistency_models: vec![model.to_string()],
        ..TxnOptions::new(workload)
    };
    txn::check(h, &opts).expect("simulated histories are well formed")
}

/// Appends one transaction by a fresh process after everything else.
fn push_txn(h: &mut History, process: u64, outcome: OpType, invoked: Value, completed: Value) {
    h.ops.push(Op::new(
        0,
        Process::Client(process),
        OpType::Invoke,
        "txn",
        invoked,
    ));
    h.ops.push(Op::new(
        0,
        Process::Client(process),
        outcome,
        "txn",
        completed,
    ));
    h.reindex();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn simulated_serializable_histories_are_valid(
        (plans, schedule, procs) in plans(),
        outcomes in prop::collection::vec(any::<u8>(), 1..16),
    ) {
        for workload in [TxnKind::ListAppend, TxnKind::RwRegister] {
            let h = simulate(workload, &plans, &outcomes, &schedule, procs);
            let r = check(&h, workload, "strict-serializable");
            // With nothing committed there is nothing to check: unknown.
            let want = if h.ops.iter().any(|o| o.kind == OpType::Ok) {
                Validity::Valid
            } else {
                Validity::Unknown
            };
            prop_assert_eq!(r.validity, want, "{:?}: {:?}", workload, r.anomalies);
            prop_assert!(r.anomaly_types.is_empty());
            prop_assert!(r.not.is_empty());
        }
        // The optional register orders are sound: they find nothing either.
        let h = simulate(TxnKind::RwRegister, &plans, &outcomes, &schedule, procs);
        let opts = TxnOptions {
            sequential_keys: true,
            linearizable_keys: true,
            ..TxnOptions::new(TxnKind::RwRegister)
        };
        let r = txn::check(&h, &opts).expect("well formed");
        prop_assert!(r.validity != Validity::Invalid, "{:?}", r.anomalies);
        prop_assert!(r.anomaly_types.is_empty());
    }

    #[test]
    fn a_forged_stale_read_is_g_single_realtime((plans, schedule, procs) in plans()) {
        let mut h = simulate(TxnKind::ListAppend, &plans, &[7], &schedule, procs);
        // The final list of some key, without the appends of the last
        // transaction that appended to it (dropping only some of them would
        // be an intermediate read, G1b).
        let Some((k, list)) = final_lists(&h).into_iter().find(|(_, l)| !l.is_empty()) else { return Ok(()) };
        let last_txn = list[list.len() - 1].1;
        let stale: Vec<u64> = list.iter().filter(|(_, t)| *t != last_txn).map(|(v, _)| *v).collect();
        push_txn(&mut h, 100, OpType::Ok, json!([["r", k, null]]), json!([["r", k, stale]]));
        let r = check(&h, TxnKind::ListAppend, "strict-serializable");
        prop_assert_eq!(r.validity, Validity::Invalid);
        prop_assert!(r.anomaly_types.contains(&"G-single-realtime".to_string()), "{:?}", r.anomaly_types);
        let a = &r.anomalies["G-single-realtime"][0];
        let expected = format!("read key {k} (");
        prop_assert!(a.explanation.contains(&expected), "{}", a.explanation);
        prop_assert!(a.cycle.as_ref().is_some_and(|c| c.iter().filter(|s| s.kind == "rw").count() == 1));
        // Without real time the stale read is serializable.
        prop_assert_eq!(check(&h, TxnKind::ListAppend, "serializable").validity, Validity::Valid);
    }

    #[test]
    fn a_forged_read_of_an_aborted_append_is_g1a((plans, schedule, procs) in plans()) {
        let mut h = simulate(TxnKind::ListAppend, &plans, &[7], &schedule, procs);
        let lists = final_lists(&h);
        let (k, list) = lists.into_iter().next().unwrap_or((0, Vec::new()));
        let mut list: Vec<u64> = list.into_iter().map(|(v, _)| v).collect();
        push_txn(&mut h, 100, OpType::Fail, json!([["append", k, 999_999]]), json!([["append", k, 999_999]]));
        list.push(999_999);
        push_txn(&mut h, 101, OpType::Ok, json!([["r", k, null]]), json!([["r", k, list]]));
        let r = check(&h, TxnKind::ListAppend, "read-committed");
        prop_assert_eq!(r.validity, Validity::Invalid);
        prop_assert_eq!(r.anomaly_types.clone(), vec!["G1a".to_string()]);
        prop_assert!(r.anomalies["G1a"][0].explanation.contains("including 999999, which T2 appended; T2 failed"));
        prop_assert!(r.not.contains(&"read-committed".to_string()));
    }

    #[test]
    fn a_forged_register_read_of_nil_is_g_single_realtime((plans, schedule, procs) in plans()) {
        let mut h = simulate(TxnKind::RwRegister, &plans, &[7], &schedule, procs);
        // A key some committed transaction wrote: reading nil at the end is stale.
        let Some(k) = written_register(&h) else { return Ok(()) };
        push_txn(&mut h, 100, OpType::Ok, json!([["r", k, null]]), json!([["r", k, null]]));
        let r = check(&h, TxnKind::RwRegister, "strict-serializable");
        prop_assert_eq!(r.validity, Validity::Invalid, "{:?}", r.anomalies);
        prop_assert!(r.anomaly_types.contains(&"G-single-realtime".to_string()), "{:?}", r.anomaly_types);
        let expected = format!("read key {k} = nil, which T");
        prop_assert!(r.anomalies["G-single-realtime"][0].explanation.contains(&expected));
        prop_assert_eq!(check(&h, TxnKind::RwRegister, "serializable").validity, Validity::Valid);
    }
}

/// The final list of every key in a simulated list-append history: its
/// appends in completion order, each with the event that completed it.
fn final_lists(h: &History) -> Vec<(u64, Vec<(u64, usize)>)> {
    let mut lists: BTreeMap<u64, Vec<(u64, usize)>> = BTreeMap::new();
    for (i, o) in h
        .ops
        .iter()
        .enumerate()
        .filter(|(_, o)| o.kind == OpType::Ok)
    {
        for m in o.value.as_array().into_iter().flatten() {
            if m[0] == "append" {
                lists
                    .entry(m[1].as_u64().unwrap_or(0))
                    .or_default()
                    .push((m[2].as_u64().unwrap_or(0), i));
            }
        }
    }
    lists.into_iter().collect()
}

/// A register key that some committed transaction wrote.
fn written_register(h: &History) -> Option<u64> {
    h.ops
        .iter()
        .filter(|o| o.kind == OpType::Ok)
        .flat_map(|o| o.value.as_array().cloned().unwrap_or_default())
        .find(|m| m[0] == "w")
        .and_then(|m| m[1].as_u64())
}

/// A tiny deterministic RNG so a proptest seed describes a whole history.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A tiny list-append history: up to 6 transactions of up to 3
/// micro-operations on 2 keys, by up to 3 processes, some ending `info`
/// (with or without effect), some `fail`ing, some never completing. Each
/// takes effect atomically when it completes; with `forge_percent`, each
/// read's result is instead replaced by a random list of values appended
/// to its key (by anyone, in any order) or by the truth with one element
/// dropped.
fn tiny_history(seed: u64, forge_percent: u64) -> History {
    let mut rng = Rng(seed);
    let txns = 1 + rng.below(6) as usize;
    let procs = 1 + rng.below(3) as usize;
    let mut ids: Vec<u64> = (0..procs as u64).collect();
    let mut busy: Vec<Option<Vec<Value>>> = vec![None; procs];
    let mut lists: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    let mut appended: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    let mut ops = Vec::new();
    let mut next_value = 1u64;
    let mut invoked = 0;
    while invoked < txns || busy.iter().any(Option::is_some) {
        let p = rng.below(procs as u64) as usize;
        let process = Process::Client(ids[p]);
        match busy[p].take() {
            None if invoked < txns => {
                let n = 1 + rng.below(3);
                let mops: Vec<Value> = (0..n)
                    .map(|_| {
                        let k = rng.below(2);
                        if rng.chance(50) {
                            json!(["r", k, null])
                        } else {
                            let v = next_value;
                            next_value += 1;
                            appended.entry(k).or_default().push(v);
                            json!(["append", k, v])
                        }
                    })
                    .collect();
                ops.push(Op::new(0, process, OpType::Invoke, "txn", json!(mops)));
                busy[p] = Some(mops);
                invoked += 1;
            }
            None => {}
            // Sometimes a transaction never completes.
            Some(mops) if invoked == txns && rng.chance(15) => {
                let _ = mops;
            }
            Some(mops) => {
                let roll = rng.below(100);
                let (kind, effect) = match roll {
                    0..=9 => (OpType::Fail, false),
                    10..=17 => (OpType::Info, true),
                    18..=24 => (OpType::Info, false),
                    _ => (OpType::Ok, true),
                };
                let mut now = lists.clone();
                let mut result = Vec::new();
                for m in &mops {
                    let k = m[1].as_u64().unwrap_or(0);
                    if m[0] == "append" {
                        now.entry(k).or_default().push(m[2].as_u64().unwrap_or(0));
                        result.push(m.clone());
                        continue;
                    }
                    let mut seen = now.get(&k).cloned().unwrap_or_default();
                    if rng.chance(forge_percent) {
                        let pool = appended.get(&k).cloned().unwrap_or_default();
                        if !seen.is_empty() && rng.chance(50) {
                            let i = rng.below(seen.len() as u64) as usize;
                            seen.remove(i);
                        } else {
                            seen = pool.into_iter().filter(|_| rng.chance(50)).collect();
                            if seen.len() > 1 && rng.chance(50) {
                                seen.swap(0, 1);
                            }
                        }
                    }
                    result.push(json!(["r", k, seen]));
                }
                if effect {
                    lists = now;
                }
                let value = if kind == OpType::Ok { result } else { mops };
                ops.push(Op::new(0, process, kind, "txn", json!(value)));
                if kind == OpType::Info {
                    ids[p] += procs as u64;
                }
            }
        }
    }
    History::new(ops)
}

/// The txn checker's verdict against the exhaustive oracle's on one tiny
/// history: the checker may say invalid only when no order exists, and
/// must say invalid whenever none exists.
fn agree(h: &History) -> Result<(), TestCaseError> {
    for (model, strict) in [("serializable", false), ("strict-serializable", true)] {
        let oracle = txn::brute::is_serializable(h, strict).expect("well formed");
        let r = check(h, TxnKind::ListAppend, model);
        let text = || {
            let mut s = String::new();
            for o in &h.ops {
                s.push_str(&format!("{} {} {}\n", o.process, o.kind, o.value));
            }
            s
        };
        if r.validity == Validity::Invalid {
            prop_assert!(
                !oracle,
                "{model}: the checker found {:?} but this order exists\n{}",
                r.anomaly_types,
                text()
            );
        }
        if !oracle {
            prop_assert_eq!(
                r.validity,
                Validity::Invalid,
                "{}: no order exists, the checker says {:?} ({:?})\n{}",
                model,
                r.validity,
                r.reason,
                text()
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn tiny_simulated_histories_agree_with_the_exhaustive_checker(seed in any::<u64>()) {
        agree(&tiny_history(seed, 0))?;
    }

    #[test]
    fn tiny_forged_histories_agree_with_the_exhaustive_checker(seed in any::<u64>()) {
        agree(&tiny_history(seed, 40))?;
    }
}

/// A tiny list-append history from a simulated snapshot-isolation store:
/// each transaction reads the lists committed when it was invoked (plus its
/// own appends) and, at completion, commits unless a transaction that
/// committed since it began appended to a key it appends to (first
/// committer wins; the loser fails). Such histories are strong snapshot
/// isolation, but not always serializable (write skew).
fn tiny_si_history(seed: u64) -> History {
    let mut rng = Rng(seed);
    let txns = 2 + rng.below(7) as usize;
    let procs = 2 + rng.below(3) as usize;
    let mut lists: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    // (commit number, keys appended) of every commit.
    let mut commits: Vec<Vec<u64>> = Vec::new();
    type Pending = (Vec<Value>, BTreeMap<u64, Vec<u64>>, usize);
    let mut busy: Vec<Option<Pending>> = vec![None; procs];
    let mut ops = Vec::new();
    let mut next_value = 1u64;
    let mut invoked = 0;
    while invoked < txns || busy.iter().any(Option::is_some) {
        let p = rng.below(procs as u64) as usize;
        let process = Process::Client(p as u64);
        match busy[p].take() {
            None if invoked < txns => {
                let mops: Vec<Value> = (0..1 + rng.below(3))
                    .map(|_| {
                        let k = rng.below(3);
                        if rng.chance(50) {
                            json!(["r", k, null])
                        } else {
                            next_value += 1;
                            json!(["append", k, next_value - 1])
                        }
                    })
                    .collect();
                ops.push(Op::new(0, process, OpType::Invoke, "txn", json!(mops)));
                busy[p] = Some((mops, lists.clone(), commits.len()));
                invoked += 1;
            }
            None => {}
            Some((mops, mut snapshot, start)) => {
                let mut result = Vec::new();
                let mut wrote: Vec<u64> = Vec::new();
                for m in &mops {
                    let k = m[1].as_u64().unwrap_or(0);
                    if m[0] == "append" {
                        snapshot
                            .entry(k)
                            .or_default()
                            .push(m[2].as_u64().unwrap_or(0));
                        wrote.push(k);
                        result.push(m.clone());
                    } else {
                        result.push(json!([
                            "r",
                            k,
                            snapshot.get(&k).cloned().unwrap_or_default()
                        ]));
                    }
                }
                let conflict = commits[start..]
                    .iter()
                    .any(|keys| keys.iter().any(|k| wrote.contains(k)));
                if conflict {
                    ops.push(Op::new(0, process, OpType::Fail, "txn", json!(mops)));
                } else {
                    for m in &mops {
                        if m[0] == "append" {
                            let k = m[1].as_u64().unwrap_or(0);
                            lists.entry(k).or_default().push(m[2].as_u64().unwrap_or(0));
                        }
                    }
                    commits.push(wrote);
                    ops.push(Op::new(0, process, OpType::Ok, "txn", json!(result)));
                }
            }
        }
    }
    History::new(ops)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn simulated_snapshot_isolation_histories_satisfy_strong_snapshot_isolation(seed in any::<u64>()) {
        let h = tiny_si_history(seed);
        let r = check(&h, TxnKind::ListAppend, "strong-snapshot-isolation");
        prop_assert!(
            r.validity != Validity::Invalid,
            "{:?}\n{}",
            r.anomaly_types,
            h.ops.iter().map(|o| format!("{} {} {}\n", o.process, o.kind, o.value)).collect::<String>()
        );
        // Whatever the checker finds, snapshot isolation allows it.
        for a in &r.anomaly_types {
            prop_assert!(a.starts_with("G2-item") || a == "G2", "{} in {:?}", a, r.anomaly_types);
        }
        // And the oracle agrees with the serializability verdict.
        let oracle = txn::brute::is_serializable(&h, false).expect("well formed");
        let ser = check(&h, TxnKind::ListAppend, "serializable").validity;
        prop_assert_eq!(ser == Validity::Invalid, !oracle, "{:?}", r.anomaly_types);
    }
}

/// A history as Jepsen EDN, one op map per line (or, with `vector`, all of
/// them in one vector); micro-operation names as keywords, other strings
/// as strings.
fn to_edn(h: &History, vector: bool) -> String {
    fn v(x: &Value, out: &mut String) {
        match x {
            Value::Null => out.push_str("nil"),
            Value::Array(xs) => {
                out.push('[');
                for (i, y) in xs.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    match (i, y) {
                        (0, Value::String(s)) => out.push_str(&format!(":{s}")),
                        _ => v(y, out),
                    }
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    if vector {
        out.push_str("[\n");
    }
    for o in &h.ops {
        let mut value = String::new();
        v(&o.value, &mut value);
        out.push_str(&format!(
            "{{:index {}, :type :{}, :process {}, :f :{}, :value {value}}}\n",
            o.index, o.kind, o.process, o.f
        ));
    }
    if vector {
        out.push_str("]\n");
    }
    out
}

/// The report without its timing, to compare two checks of one history.
fn untimed(r: &txn::TxnReport) -> Value {
    let mut v = serde_json::to_value(r).expect("a report is JSON");
    v["elapsed_ms"] = Value::Null;
    v
}

/// Checks `h` in memory and from files streamed into compact transactions
/// (JSON Lines, EDN lines, one EDN vector): every report must be the same.
fn same_streamed(h: &History, workload: TxnKind) -> Result<(), TestCaseError> {
    let opts = TxnOptions::new(workload);
    let whole = txn::check(h, &opts).expect("simulated histories are well formed");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut jsonl = Vec::new();
    h.write_jsonl(&mut jsonl).expect("JSON Lines");
    let files = [
        ("h.jsonl", jsonl),
        ("h.edn", to_edn(h, false).into_bytes()),
        ("v.edn", to_edn(h, true).into_bytes()),
    ];
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write the history");
        let Some(streamed) = txn::check_path(&path, None, &opts) else {
            // Detected EDN whose every invocation is a pair might be the
            // [key value] tuples of an independent test: read whole.
            let pairs = h
                .ops
                .iter()
                .filter(|o| o.kind == OpType::Invoke)
                .all(|o| o.value.as_array().is_some_and(|xs| xs.len() == 2));
            prop_assert!(
                pairs && name.ends_with(".edn"),
                "{}: the stream gave up",
                name
            );
            continue;
        };
        let streamed = streamed.expect("well formed").report;
        prop_assert_eq!(untimed(&streamed), untimed(&whole), "{}", name);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Reading a file as a stream straight into compact transactions gives
    /// the same report as reading it whole: valid histories with failed,
    /// info and unfinished transactions, and forged ones full of anomalies.
    #[test]
    fn streamed_files_give_the_same_reports(
        seed in any::<u64>(),
        (plans, schedule, procs) in plans(),
        outcomes in prop::collection::vec(any::<u8>(), 1..16),
    ) {
        same_streamed(&tiny_history(seed, 0), TxnKind::ListAppend)?;
        same_streamed(&tiny_history(seed, 40), TxnKind::ListAppend)?;
        for workload in [TxnKind::ListAppend, TxnKind::RwRegister] {
            let h = simulate(workload, &plans, &outcomes, &schedule, procs);
            same_streamed(&h, workload)?;
        }
    }
}
