//! The counter checker (Jepsen's `counter`): a counter starts at 0, `add`
//! increments it by its value (a whole number ≥ 0), `read` returns it.
//!
//! A read can only see increments that may have happened while it ran: at
//! least every increment acknowledged before the read began, at most every
//! increment invoked before the read completed that did not definitely
//! fail. So each successful read must lie in
//! `[sum of ok adds completed before the read's invocation,
//!   sum of ok and info adds invoked before the read's completion]`.
//! Each key is a counter of its own.

use super::{by_key, plural, CallRef, Validity};
use crate::history::{Call, History, HistoryError, Outcome};
use serde::Serialize;

/// A read outside its bounds.
#[derive(Clone, Debug, Serialize)]
pub struct BadRead {
    /// The read.
    pub op: CallRef,
    /// What it read (`None`: not a whole number).
    pub value: Option<i64>,
    /// The least it could have read.
    pub lower: i64,
    /// The most it could have read.
    pub upper: i64,
    /// One sentence.
    pub reason: String,
}

/// The verdict on a counter history.
#[derive(Clone, Debug, Serialize)]
pub struct CounterReport {
    /// The verdict.
    pub validity: Validity,
    /// Counters (keys) seen.
    pub keys: usize,
    /// Successful reads.
    pub reads: usize,
    /// Adds acknowledged.
    pub adds_ok: usize,
    /// Adds whose outcome is unknown.
    pub adds_info: usize,
    /// Reads outside their bounds.
    pub errors: usize,
    /// The first ten of them, by key then invocation.
    pub first_errors: Vec<BadRead>,
    /// One or two sentences.
    pub explanation: String,
}

/// Checks a counter history.
pub fn check(history: &History) -> Result<CounterReport, HistoryError> {
    Ok(check_calls(&history.calls()?))
}

/// Checks the calls of a counter history.
pub fn check_calls(calls: &[Call]) -> CounterReport {
    let mut r = CounterReport {
        validity: Validity::Valid,
        keys: 0,
        reads: 0,
        adds_ok: 0,
        adds_info: 0,
        errors: 0,
        first_errors: Vec::new(),
        explanation: String::new(),
    };
    let mut refused = None;
    for (_, calls) in by_key(calls) {
        r.keys += 1;
        if let Err(why) = check_key(&calls, &mut r) {
            refused.get_or_insert(why);
        }
    }
    if let Some(first) = r.first_errors.first() {
        r.validity = Validity::Invalid;
        r.explanation = format!(
            "{} of {} outside its bounds; the first: {}",
            r.errors,
            plural(r.reads, "read", "reads"),
            first.reason
        );
    } else if let Some(why) = refused {
        r.validity = Validity::Unknown;
        r.explanation = why;
    } else if r.reads == 0 {
        r.validity = Validity::Unknown;
        r.explanation = "no read succeeded, so nothing was checked".into();
    } else {
        r.explanation = format!(
            "all {} within their bounds ({} adds ok, {} unknown)",
            plural(r.reads, "read is", "reads are"),
            r.adds_ok,
            r.adds_info
        );
    }
    r
}

/// Walks one counter's events in history order; `Err` when an add's value
/// is not a whole number ≥ 0 (the bounds would not hold).
fn check_key(calls: &[&Call], r: &mut CounterReport) -> Result<(), String> {
    // (event index, is completion, call)
    let mut events: Vec<(usize, bool, &Call)> = Vec::with_capacity(calls.len() * 2);
    for c in calls {
        events.push((c.invoke, false, c));
        if let Some(done) = c.complete {
            events.push((done, true, c));
        }
    }
    events.sort_unstable_by_key(|e| e.0);
    let (mut lower, mut upper) = (0i64, 0i64);
    // Lower bound of each read in flight, by invocation index.
    let mut pending: rustc_hash::FxHashMap<usize, i64> = Default::default();
    for (_, done, c) in events {
        match c.f.as_str() {
            "add" => {
                let Some(n) = c.input.as_i64().filter(|n| *n >= 0) else {
                    return Err(format!(
                        "{} adds {}: the counter checker needs whole numbers ≥ 0",
                        CallRef::of(c).describe(),
                        c.input
                    ));
                };
                match (done, c.outcome) {
                    (false, _) => upper = upper.saturating_add(n),
                    (true, Outcome::Ok) => {
                        lower = lower.saturating_add(n);
                        r.adds_ok += 1;
                    }
                    (true, Outcome::Fail) => upper -= n,
                    (true, Outcome::Info) => r.adds_info += 1,
                }
            }
            "read" if !done => {
                pending.insert(c.invoke, lower);
            }
            "read" if c.outcome == Outcome::Ok => {
                r.reads += 1;
                let lo = pending.remove(&c.invoke).unwrap_or(0);
                let value = c.output.as_i64();
                if value.is_some_and(|v| (lo..=upper).contains(&v)) {
                    continue;
                }
                let op = CallRef::of(c);
                let reason = match value {
                    Some(v) => format!(
                        "{} read {v}, but only values from {lo} to {upper} were possible",
                        op.describe()
                    ),
                    None => format!(
                        "{} read {}, not a whole number (possible: {lo} to {upper})",
                        op.describe(),
                        c.output
                    ),
                };
                r.errors += 1;
                if r.first_errors.len() < 10 {
                    r.first_errors.push(BadRead {
                        op,
                        value,
                        lower: lo,
                        upper,
                        reason,
                    });
                }
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Op, OpType, Process};
    use proptest::prelude::*;
    use serde_json::{json, Value};

    fn ev(p: u64, kind: OpType, f: &str, v: Value) -> Op {
        Op::new(0, Process::Client(p), kind, f, v)
    }

    #[test]
    fn reads_within_bounds_are_valid_and_concurrent_adds_widen_them() {
        let h = History::new(vec![
            ev(0, OpType::Invoke, "add", json!(1)),
            ev(0, OpType::Ok, "add", json!(1)),
            ev(1, OpType::Invoke, "add", json!(5)), // concurrent with the read
            ev(2, OpType::Invoke, "read", Value::Null),
            ev(2, OpType::Ok, "read", json!(6)),
            ev(1, OpType::Info, "add", json!(5)),
            ev(3, OpType::Invoke, "add", json!(2)),
            ev(3, OpType::Fail, "add", json!(2)),
            ev(2, OpType::Invoke, "read", Value::Null),
            ev(2, OpType::Ok, "read", json!(1)),
        ]);
        let r = check(&h).unwrap();
        assert_eq!(r.validity, Validity::Valid, "{}", r.explanation);
        assert_eq!((r.reads, r.adds_ok, r.adds_info), (2, 1, 1));
        assert_eq!(
            r.explanation,
            "all 2 reads are within their bounds (1 adds ok, 1 unknown)"
        );
    }

    #[test]
    fn a_read_below_an_acknowledged_add_is_reported_with_bounds() {
        let h = History::new(vec![
            ev(0, OpType::Invoke, "add", json!(3)),
            ev(0, OpType::Ok, "add", json!(3)),
            ev(1, OpType::Invoke, "read", Value::Null),
            ev(1, OpType::Ok, "read", json!(0)),
        ]);
        let r = check(&h).unwrap();
        assert_eq!(r.validity, Validity::Invalid);
        let e = &r.first_errors[0];
        assert_eq!((e.value, e.lower, e.upper), (Some(0), 3, 3));
        assert_eq!(
            r.explanation,
            "1 of 1 read outside its bounds; the first: process 1's read (events 2 to 3) read 0, but only values from 3 to 3 were possible"
        );
    }

    #[test]
    fn a_failed_add_cannot_be_read() {
        let h = History::new(vec![
            ev(0, OpType::Invoke, "add", json!(4)),
            ev(0, OpType::Fail, "add", json!(4)),
            ev(1, OpType::Invoke, "read", Value::Null),
            ev(1, OpType::Ok, "read", json!(4)),
        ]);
        let r = check(&h).unwrap();
        assert_eq!(r.validity, Validity::Invalid);
        assert_eq!((r.first_errors[0].lower, r.first_errors[0].upper), (0, 0));
    }

    #[test]
    fn keys_are_separate_counters_and_negative_adds_are_refused() {
        let mut a = ev(0, OpType::Invoke, "add", json!(2));
        a.key = Some(json!("a"));
        let mut b = ev(0, OpType::Ok, "add", json!(2));
        b.key = Some(json!("a"));
        let mut c = ev(1, OpType::Invoke, "read", Value::Null);
        c.key = Some(json!("b"));
        let mut d = ev(1, OpType::Ok, "read", json!(2));
        d.key = Some(json!("b"));
        let r = check(&History::new(vec![a, b, c, d])).unwrap();
        assert_eq!(r.validity, Validity::Invalid, "key b never had an add");
        assert_eq!(r.keys, 2);

        let h = History::new(vec![
            ev(0, OpType::Invoke, "add", json!(-1)),
            ev(0, OpType::Ok, "add", json!(-1)),
        ]);
        let r = check(&h).unwrap();
        assert_eq!(r.validity, Validity::Unknown);
        assert_eq!(
            r.explanation,
            "process 0's add (events 0 to 1) adds -1: the counter checker needs whole numbers ≥ 0"
        );
    }

    /// A history generated by construction against a real counter, from
    /// `script`, a list of (slot, action, amount) steps over 4 process
    /// slots: each add and read takes effect atomically at some step
    /// between its invocation and its completion (or never, for a failed
    /// or unknown add), so the history is valid by construction.
    fn simulate(script: &[(u8, u8, u8)]) -> History {
        const P: usize = 4;
        let mut ops = Vec::new();
        let mut counter = 0i64;
        let mut pid: [u64; P] = [0, 1, 2, 3];
        // Per slot: None idle, Some((is_add, amount, effect seen)).
        let mut busy: [Option<(bool, i64, Option<i64>)>; P] = [None; P];
        for &(slot, action, amount) in script {
            let s = slot as usize % P;
            match busy[s] {
                None => {
                    let is_add = action % 2 == 0;
                    let n = i64::from(amount % 10);
                    let (f, v) = if is_add {
                        ("add", json!(n))
                    } else {
                        ("read", Value::Null)
                    };
                    ops.push(ev(pid[s], OpType::Invoke, f, v));
                    busy[s] = Some((is_add, n, None));
                }
                Some((is_add, n, None)) if action % 3 != 0 => {
                    let seen = if is_add {
                        counter += n;
                        n
                    } else {
                        counter
                    };
                    busy[s] = Some((is_add, n, Some(seen)));
                }
                Some((is_add, n, effect)) => {
                    let (f, kind, v) = match (is_add, effect) {
                        (true, _) if action % 5 == 0 => ("add", OpType::Info, json!(n)),
                        (true, Some(_)) => ("add", OpType::Ok, json!(n)),
                        (true, None) => ("add", OpType::Fail, json!(n)),
                        (false, Some(seen)) => ("read", OpType::Ok, json!(seen)),
                        (false, None) => ("read", OpType::Ok, json!(counter)),
                    };
                    ops.push(ev(pid[s], kind, f, v));
                    busy[s] = None;
                    if kind == OpType::Info {
                        // A process that got info never invokes again.
                        pid[s] += P as u64;
                    }
                }
            }
        }
        History::new(ops)
    }

    proptest! {
        #[test]
        fn histories_of_a_real_counter_are_valid_and_a_forged_read_is_caught(
            script in proptest::collection::vec((0u8..4, 0u8..30, 0u8..30), 0..200),
            pick in 0usize..1000,
            above in any::<bool>(),
        ) {
            let h = simulate(&script);
            let r = check(&h).unwrap();
            prop_assert_ne!(r.validity, Validity::Invalid, "{}", r.explanation);
            // Forge one successful read: above every attempted add's sum,
            // or below zero — outside any read's bounds.
            let reads: Vec<usize> = (0..h.len())
                .filter(|i| h.ops[*i].kind == OpType::Ok && h.ops[*i].f == "read")
                .collect();
            prop_assume!(!reads.is_empty());
            let at = reads[pick % reads.len()];
            let attempted: i64 = h.ops.iter()
                .filter(|o| o.kind == OpType::Invoke && o.f == "add")
                .filter_map(|o| o.value.as_i64())
                .sum();
            let mut forged = h.clone();
            forged.ops[at].value = json!(if above { attempted + 1 } else { -1 });
            let r = check(&forged).unwrap();
            prop_assert_eq!(r.validity, Validity::Invalid);
            prop_assert_eq!(r.errors, 1);
            prop_assert_eq!(r.first_errors[0].op.complete, Some(at));
        }
    }
}
