//! The set checker (in the spirit of Jepsen's `set-full`): unique elements
//! are added, reads return the whole set; after the adds stop, final reads
//! (from every node) must hold every acknowledged element.
//!
//! Each element falls in one class:
//! - `ok`: acknowledged and present in every final read;
//! - `lost`: acknowledged, missing from some final read — invalid;
//! - `unexpected`: present in a read but never added, or added by an add
//!   that definitely failed — invalid;
//! - `recovered`: its add's outcome was unknown and it is present: fine;
//! - `never-read`: unknown outcome and absent: fine (it never happened).
//!
//! Besides, an acknowledged element absent from a read that began after
//! the acknowledgement is `stale` there (and present later, or it is lost).
//! Stale reads break linearizability, so they make the verdict invalid
//! when [`SetOptions::linearizable`] is set.

use super::Validity;
use crate::history::{History, HistoryError, Outcome};
use rustc_hash::{FxHashMap, FxHashSet};
use serde::Serialize;
use serde_json::Value;

/// How to judge a set history.
#[derive(Clone, Debug, Default)]
pub struct SetOptions {
    /// Reads must be linearizable: a stale read is an error.
    pub linearizable: bool,
}

/// What happened to the elements of one class.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Class {
    /// How many elements.
    pub count: usize,
    /// Up to 10 of them, in order of their add.
    pub examples: Vec<Value>,
}

impl Class {
    fn push(&mut self, v: &Value) {
        self.count += 1;
        if self.examples.len() < 10 {
            self.examples.push(v.clone());
        }
    }
}

/// The verdict on a set history.
#[derive(Clone, Debug, Serialize)]
pub struct SetReport {
    /// The verdict.
    pub validity: Validity,
    /// Adds attempted, and acknowledged.
    pub attempted: usize,
    /// Adds acknowledged.
    pub acknowledged: usize,
    /// Reads completed, and how many of them were final.
    pub reads: usize,
    /// Final reads (begun after the last add ended).
    pub final_reads: usize,
    /// Acknowledged and present in every final read.
    pub ok: Class,
    /// Acknowledged but missing from a final read.
    pub lost: Class,
    /// Read but never added, or added by a failed add.
    pub unexpected: Class,
    /// Unknown outcome, present.
    pub recovered: Class,
    /// Unknown outcome, absent.
    pub never_read: Class,
    /// Acknowledged, missing from some read that began after the
    /// acknowledgement (counted once per element).
    pub stale: Class,
    /// One or two sentences.
    pub explanation: String,
}

struct Element {
    value: Value,
    outcome: Outcome,
    /// History index of the add's completion (None: never completed).
    acked_at: Option<usize>,
}

/// Checks a set history: `add` calls (value = element) and `read` calls
/// (value = all elements).
pub fn check(history: &History, opts: &SetOptions) -> Result<SetReport, HistoryError> {
    let calls = history.calls()?;
    let mut elements: Vec<Element> = Vec::new();
    let mut index: FxHashMap<String, usize> = FxHashMap::default();
    let mut last_add_event = 0usize;
    for c in calls.iter().filter(|c| c.f == "add") {
        last_add_event = last_add_event
            .max(c.complete.unwrap_or(c.invoke))
            .max(c.invoke);
        let key = c.input.to_string();
        let i = *index.entry(key).or_insert_with(|| {
            elements.push(Element {
                value: c.input.clone(),
                outcome: Outcome::Fail,
                acked_at: None,
            });
            elements.len() - 1
        });
        // An element added twice counts as its best outcome.
        let e = &mut elements[i];
        match c.outcome {
            Outcome::Ok => {
                e.outcome = Outcome::Ok;
                e.acked_at = e.acked_at.min(c.complete).or(c.complete);
            }
            Outcome::Info if e.outcome == Outcome::Fail => e.outcome = Outcome::Info,
            _ => {}
        }
    }
    let reads: Vec<(&crate::history::Call, FxHashSet<String>)> = calls
        .iter()
        .filter(|c| c.f == "read" && c.outcome == Outcome::Ok)
        .map(|c| {
            let items = c
                .output
                .as_array()
                .map(|a| a.iter().map(|v| v.to_string()).collect())
                .unwrap_or_default();
            (c, items)
        })
        .collect();
    let final_reads: Vec<&FxHashSet<String>> = reads
        .iter()
        .filter(|(c, _)| c.invoke > last_add_event)
        .map(|(_, s)| s)
        .collect();

    let mut r = SetReport {
        validity: Validity::Valid,
        attempted: elements.len(),
        acknowledged: elements.iter().filter(|e| e.outcome == Outcome::Ok).count(),
        reads: reads.len(),
        final_reads: final_reads.len(),
        ok: Class::default(),
        lost: Class::default(),
        unexpected: Class::default(),
        recovered: Class::default(),
        never_read: Class::default(),
        stale: Class::default(),
        explanation: String::new(),
    };
    let mut seen_anywhere: FxHashSet<&String> = FxHashSet::default();
    for (_, s) in &reads {
        seen_anywhere.extend(s.iter());
    }
    for e in &elements {
        let key = e.value.to_string();
        let in_all_final = final_reads.iter().all(|s| s.contains(&key));
        let in_some_final = final_reads.iter().any(|s| s.contains(&key));
        match e.outcome {
            Outcome::Ok => {
                if in_all_final {
                    r.ok.push(&e.value);
                } else {
                    r.lost.push(&e.value);
                }
                let acked = e.acked_at.unwrap_or(usize::MAX);
                if reads
                    .iter()
                    .any(|(c, s)| c.invoke > acked && !s.contains(&key))
                    && in_all_final
                {
                    r.stale.push(&e.value);
                }
            }
            Outcome::Info => {
                if in_some_final || seen_anywhere.contains(&key) {
                    r.recovered.push(&e.value);
                } else {
                    r.never_read.push(&e.value);
                }
            }
            Outcome::Fail => {
                if seen_anywhere.contains(&key) {
                    r.unexpected.push(&e.value);
                }
            }
        }
    }
    let known: FxHashSet<String> = elements.iter().map(|e| e.value.to_string()).collect();
    let mut extra: Vec<&String> = seen_anywhere
        .iter()
        .filter(|k| !known.contains(**k))
        .copied()
        .collect();
    extra.sort();
    for k in extra {
        r.unexpected
            .push(&serde_json::from_str(k).unwrap_or(Value::String(k.clone())));
    }

    let mut problems = Vec::new();
    if r.lost.count > 0 {
        problems.push(format!(
            "{} acknowledged element{} missing from a final read (e.g. {})",
            r.lost.count,
            if r.lost.count == 1 { " is" } else { "s are" },
            show(&r.lost.examples)
        ));
    }
    if r.unexpected.count > 0 {
        problems.push(format!(
            "{} element{} read that no successful or pending add wrote (e.g. {})",
            r.unexpected.count,
            if r.unexpected.count == 1 {
                " was"
            } else {
                "s were"
            },
            show(&r.unexpected.examples)
        ));
    }
    if opts.linearizable && r.stale.count > 0 {
        problems.push(format!(
            "{} acknowledged element{} missing from a read that began after the acknowledgement (e.g. {})",
            r.stale.count,
            if r.stale.count == 1 { " was" } else { "s were" },
            show(&r.stale.examples)
        ));
    }
    if !problems.is_empty() {
        r.validity = Validity::Invalid;
        r.explanation = problems.join("; ");
    } else if final_reads.is_empty() && r.attempted > 0 {
        r.validity = Validity::Unknown;
        r.explanation =
            "no read began after the last add ended, so nothing says which elements survived"
                .into();
    } else {
        r.explanation = format!(
            "all {} acknowledged elements are in every final read ({} final reads; {} recovered, {} stale)",
            r.acknowledged, r.final_reads, r.recovered.count, r.stale.count
        );
    }
    Ok(r)
}

fn show(vals: &[Value]) -> String {
    vals.iter()
        .take(5)
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Op, OpType, Process};
    use serde_json::json;

    fn op(p: u64, kind: OpType, f: &str, v: Value) -> Op {
        Op::new(0, Process::Client(p), kind, f, v)
    }

    fn adds(list: &[(u64, OpType)]) -> Vec<Op> {
        let mut ops = Vec::new();
        for (i, (v, outcome)) in list.iter().enumerate() {
            let p = i as u64;
            ops.push(op(p, OpType::Invoke, "add", json!(v)));
            ops.push(op(p, *outcome, "add", json!(v)));
        }
        ops
    }

    fn read(p: u64, items: Value) -> Vec<Op> {
        vec![
            op(p, OpType::Invoke, "read", Value::Null),
            op(p, OpType::Ok, "read", items),
        ]
    }

    #[test]
    fn every_acknowledged_element_in_final_reads_is_valid() {
        let mut ops = adds(&[
            (1, OpType::Ok),
            (2, OpType::Ok),
            (3, OpType::Info),
            (4, OpType::Fail),
        ]);
        ops.extend(read(100, json!([1, 2, 3])));
        ops.extend(read(101, json!([2, 1, 3])));
        let r = check(&History::new(ops), &SetOptions::default()).unwrap();
        assert_eq!(r.validity, Validity::Valid, "{}", r.explanation);
        assert_eq!(
            (r.ok.count, r.recovered.count, r.never_read.count),
            (2, 1, 0)
        );
        assert_eq!(r.final_reads, 2);
        assert_eq!(r.explanation, "all 2 acknowledged elements are in every final read (2 final reads; 1 recovered, 0 stale)");
    }

    #[test]
    fn an_acknowledged_element_missing_from_one_final_read_is_lost() {
        let mut ops = adds(&[(1, OpType::Ok), (2, OpType::Ok)]);
        ops.extend(read(100, json!([1, 2])));
        ops.extend(read(101, json!([1])));
        let r = check(&History::new(ops), &SetOptions::default()).unwrap();
        assert_eq!(r.validity, Validity::Invalid);
        assert_eq!(r.lost.count, 1);
        assert_eq!(r.lost.examples, vec![json!(2)]);
        assert_eq!(
            r.explanation,
            "1 acknowledged element is missing from a final read (e.g. 2)"
        );
    }

    #[test]
    fn elements_nobody_added_or_failed_adds_are_unexpected() {
        let mut ops = adds(&[(1, OpType::Ok), (2, OpType::Fail)]);
        ops.extend(read(100, json!([1, 2, 9])));
        let r = check(&History::new(ops), &SetOptions::default()).unwrap();
        assert_eq!(r.validity, Validity::Invalid);
        assert_eq!(r.unexpected.count, 2);
        assert_eq!(r.unexpected.examples, vec![json!(2), json!(9)]);
        assert!(
            r.explanation
                .starts_with("2 elements were read that no successful or pending add wrote"),
            "{}",
            r.explanation
        );
    }

    #[test]
    fn stale_reads_count_only_when_linearizable() {
        // Element 1 is acknowledged, then a read misses it, then final reads have it.
        let mut ops = adds(&[(1, OpType::Ok)]);
        ops.extend(read(50, json!([])));
        let mut more = adds(&[(2, OpType::Ok)]);
        for o in &mut more {
            o.process = Process::Client(7);
        }
        ops.extend(more);
        ops.extend(read(100, json!([1, 2])));
        let h = History::new(ops);
        let r = check(&h, &SetOptions::default()).unwrap();
        assert_eq!(r.validity, Validity::Valid);
        assert_eq!(r.stale.count, 1);
        let r = check(&h, &SetOptions { linearizable: true }).unwrap();
        assert_eq!(r.validity, Validity::Invalid);
        assert_eq!(r.explanation, "1 acknowledged element was missing from a read that began after the acknowledgement (e.g. 1)");
    }

    #[test]
    fn no_final_read_is_unknown() {
        let ops = adds(&[(1, OpType::Ok)]);
        let r = check(&History::new(ops), &SetOptions::default()).unwrap();
        assert_eq!(r.validity, Validity::Unknown);
        assert!(r
            .explanation
            .starts_with("no read began after the last add ended"));
    }
}
