//! The long-fork checker (Jepsen's `long-fork`): keys come in groups;
//! each key is written once, by a transaction that writes only it
//! (`[["w", k, v]]`); reads read a whole group in one transaction
//! (`[["r", k1, null], ["r", k2, null], ...]`). Under snapshot isolation
//! or anything stronger, the writes a group's reads observe are ordered:
//! each read sees a prefix of one order. Two reads that observe two writes
//! in opposite orders — one saw `x` but not `y`, the other `y` but not `x`
//! — are a long fork, which parallel snapshot isolation allows and
//! snapshot isolation forbids.
//!
//! Reads are compared with the reads of exactly the same set of keys.
//! Transactions are told apart by their micro-operations, whatever their
//! `f`: `txn`, or Jepsen's `read` and `write`.

use super::{plural, CallRef, Validity};
use crate::history::{Call, History, HistoryError, Outcome};
use rustc_hash::FxHashMap;
use serde::Serialize;
use serde_json::Value;

/// Two reads that observed two writes in opposite orders.
#[derive(Clone, Debug, Serialize)]
pub struct Fork {
    /// The first read: saw the write of `keys[0]`, not of `keys[1]`.
    pub reads: [CallRef; 2],
    /// The two keys.
    pub keys: [Value; 2],
    /// The writes of the two keys (when the history has them).
    pub writes: Vec<CallRef>,
    /// One sentence.
    pub explanation: String,
}

/// The verdict on a long-fork history.
#[derive(Clone, Debug, Serialize)]
pub struct LongForkReport {
    /// The verdict.
    pub validity: Validity,
    /// Successful reads of groups.
    pub reads: usize,
    /// Write transactions acknowledged.
    pub writes: usize,
    /// Distinct groups (key sets) read.
    pub groups: usize,
    /// Pairs of distinct observations that are incompatible.
    pub forks: usize,
    /// The first ten.
    pub first_forks: Vec<Fork>,
    /// Transactions that are neither a single write nor a pure read.
    pub ignored: usize,
    /// One or two sentences.
    pub explanation: String,
}

/// The micro-operations of a txn value: `(f, key, value)`.
fn mops(v: &Value) -> Option<Vec<(&str, &Value, &Value)>> {
    v.as_array()?
        .iter()
        .map(|m| match m.as_array()?.as_slice() {
            [f, k, v] => Some((f.as_str()?, k, v)),
            _ => None,
        })
        .collect()
}

/// Checks a long-fork history.
pub fn check(history: &History) -> Result<LongForkReport, HistoryError> {
    Ok(check_calls(&history.calls()?))
}

/// Checks the calls of a long-fork history.
pub fn check_calls(calls: &[Call]) -> LongForkReport {
    let mut r = LongForkReport {
        validity: Validity::Valid,
        reads: 0,
        writes: 0,
        groups: 0,
        forks: 0,
        first_forks: Vec::new(),
        ignored: 0,
        explanation: String::new(),
    };
    // The write of each key (first one wins), by the key's JSON text.
    let mut writes: FxHashMap<String, &Call> = FxHashMap::default();
    // Group (sorted key texts) -> distinct observations -> first read.
    type Seen<'a> = Vec<(Vec<bool>, &'a Call)>;
    let mut groups: FxHashMap<Vec<String>, (Vec<Value>, Seen)> = FxHashMap::default();
    let mut group_order: Vec<Vec<String>> = Vec::new();
    // Jepsen's long-fork names its transactions `read` and `write`;
    // faultline's and Elle's histories name them all `txn`.
    for c in calls
        .iter()
        .filter(|c| matches!(c.f.as_str(), "txn" | "read" | "write"))
    {
        let value = if c.outcome == Outcome::Ok {
            &c.output
        } else {
            &c.input
        };
        let Some(ms) = mops(value) else {
            r.ignored += 1;
            continue;
        };
        match ms.as_slice() {
            [("w", k, _)] => {
                if c.outcome != Outcome::Fail {
                    writes.entry(k.to_string()).or_insert(c);
                }
                r.writes += usize::from(c.outcome == Outcome::Ok);
            }
            _ if !ms.is_empty() && ms.iter().all(|m| m.0 == "r") => {
                if c.outcome != Outcome::Ok {
                    continue;
                }
                r.reads += 1;
                let mut kv: Vec<(String, &Value, bool)> = ms
                    .iter()
                    .map(|(_, k, v)| (k.to_string(), *k, !v.is_null()))
                    .collect();
                kv.sort_by(|a, b| a.0.cmp(&b.0));
                kv.dedup_by(|a, b| a.0 == b.0);
                let names: Vec<String> = kv.iter().map(|x| x.0.clone()).collect();
                let seen: Vec<bool> = kv.iter().map(|x| x.2).collect();
                let g = groups.entry(names.clone()).or_insert_with(|| {
                    group_order.push(names);
                    (kv.iter().map(|x| x.1.clone()).collect(), Vec::new())
                });
                if !g.1.iter().any(|(s, _)| *s == seen) {
                    g.1.push((seen, c));
                }
            }
            _ => r.ignored += 1,
        }
    }
    r.groups = group_order.len();
    for names in &group_order {
        let (keys, seen) = &groups[names];
        for (i, (a, ra)) in seen.iter().enumerate() {
            for (b, rb) in &seen[i + 1..] {
                let only_a = (0..a.len()).find(|&k| a[k] && !b[k]);
                let only_b = (0..a.len()).find(|&k| b[k] && !a[k]);
                let (Some(x), Some(y)) = (only_a, only_b) else {
                    continue;
                };
                r.forks += 1;
                if r.first_forks.len() < 10 {
                    r.first_forks
                        .push(fork(ra, rb, &keys[x], &keys[y], &writes));
                }
            }
        }
    }
    if let Some(f) = r.first_forks.first() {
        r.validity = Validity::Invalid;
        r.explanation = format!(
            "{} found; the first: {}",
            plural(r.forks, "long fork", "long forks"),
            f.explanation
        );
    } else if r.reads == 0 {
        r.validity = Validity::Unknown;
        r.explanation = "no read succeeded, so no order of writes was observed".into();
    } else {
        r.explanation = format!(
            "the {} of {} agree on one order of writes per group ({} writes acknowledged)",
            plural(r.reads, "read", "reads"),
            plural(r.groups, "group", "groups"),
            r.writes
        );
    }
    r
}

fn fork(a: &Call, b: &Call, x: &Value, y: &Value, writes: &FxHashMap<String, &Call>) -> Fork {
    let (ra, rb) = (CallRef::of(a), CallRef::of(b));
    let explanation = format!(
        "{} saw the write of key {x} but not of key {y}, while {} saw key {y} but not key {x}: the two writes were observed in opposite orders",
        ra.describe().replacen("'s txn", "'s read", 1),
        rb.describe().replacen("'s txn", "'s read", 1),
    );
    Fork {
        reads: [ra, rb],
        keys: [x.clone(), y.clone()],
        writes: [x, y]
            .iter()
            .filter_map(|k| writes.get(&k.to_string()).map(|c| CallRef::of(c)))
            .collect(),
        explanation,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Op, OpType, Process};
    use serde_json::json;

    fn txn(p: u64, input: Value, output: Value) -> Vec<Op> {
        vec![
            Op::new(0, Process::Client(p), OpType::Invoke, "txn", input),
            Op::new(0, Process::Client(p), OpType::Ok, "txn", output),
        ]
    }

    fn write(p: u64, k: u64) -> Vec<Op> {
        let v = json!([["w", k, 1]]);
        txn(p, v.clone(), v)
    }

    fn read(p: u64, seen: &[(u64, Option<u64>)]) -> Vec<Op> {
        let input: Vec<Value> = seen.iter().map(|(k, _)| json!(["r", k, null])).collect();
        let output: Vec<Value> = seen.iter().map(|(k, v)| json!(["r", k, v])).collect();
        txn(p, json!(input), json!(output))
    }

    #[test]
    fn reads_of_prefixes_of_one_order_are_valid() {
        let h = History::new(
            [
                read(0, &[(0, None), (1, None)]),
                write(1, 0),
                read(0, &[(1, None), (0, Some(1))]),
                write(2, 1),
                read(3, &[(0, Some(1)), (1, Some(1))]),
                read(4, &[(2, None), (3, None)]),
            ]
            .concat(),
        );
        let r = check(&h).unwrap();
        assert_eq!(r.validity, Validity::Valid, "{}", r.explanation);
        assert_eq!((r.reads, r.writes, r.groups, r.forks), (4, 2, 2, 0));
        assert_eq!(
            r.explanation,
            "the 4 reads of 2 groups agree on one order of writes per group (2 writes acknowledged)"
        );
    }

    #[test]
    fn opposite_orders_are_a_long_fork_naming_reads_and_writes() {
        let h = History::new(
            [
                write(1, 0),
                write(2, 1),
                read(3, &[(0, Some(1)), (1, None)]),
                read(4, &[(1, Some(1)), (0, None)]),
            ]
            .concat(),
        );
        let r = check(&h).unwrap();
        assert_eq!(r.validity, Validity::Invalid);
        assert_eq!(r.forks, 1);
        let f = &r.first_forks[0];
        assert_eq!(f.keys, [json!(0), json!(1)]);
        assert_eq!((f.reads[0].invoke, f.reads[1].invoke), (4, 6));
        assert_eq!((f.writes[0].invoke, f.writes[1].invoke), (0, 2));
        assert_eq!(
            r.explanation,
            "1 long fork found; the first: process 3's read (events 4 to 5) saw the write of key 0 but not of key 1, while process 4's read (events 6 to 7) saw key 1 but not key 0: the two writes were observed in opposite orders"
        );
    }

    #[test]
    fn jepsens_read_and_write_functions_are_transactions_too() {
        // Jepsen's long-fork workload calls its transactions `read` and
        // `write`: the same fork as above must be found under those names.
        let named = |f: &str, ops: Vec<Op>| -> Vec<Op> {
            ops.into_iter()
                .map(|mut o| {
                    o.f = f.to_string();
                    o
                })
                .collect()
        };
        let h = History::new(
            [
                named("write", write(1, 0)),
                named("write", write(2, 1)),
                named("read", read(3, &[(0, Some(1)), (1, None)])),
                named("read", read(4, &[(1, Some(1)), (0, None)])),
            ]
            .concat(),
        );
        let r = check(&h).unwrap();
        assert_eq!(r.validity, Validity::Invalid, "{}", r.explanation);
        assert_eq!((r.reads, r.writes, r.forks), (2, 2, 1));
        assert_eq!(
            r.first_forks[0].explanation,
            "process 3's read (events 4 to 5) saw the write of key 0 but not of key 1, while process 4's read (events 6 to 7) saw key 1 but not key 0: the two writes were observed in opposite orders"
        );
    }

    #[test]
    fn no_reads_is_unknown_and_mixed_txns_are_ignored() {
        let mut ops = write(1, 0);
        let mixed = json!([["w", 5, 1], ["r", 6, null]]);
        ops.extend(txn(2, mixed.clone(), mixed));
        let r = check(&History::new(ops)).unwrap();
        assert_eq!(r.validity, Validity::Unknown);
        assert_eq!(r.ignored, 1);
        assert_eq!(
            r.explanation,
            "no read succeeded, so no order of writes was observed"
        );
    }
}
