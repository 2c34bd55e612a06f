//! The total-queue checker (Jepsen's `total-queue`): elements are
//! enqueued (each value once), dequeued one at a time, and at the end the
//! queue is drained. Order is not judged — only that every element comes
//! out exactly once:
//!
//! - `lost`: acknowledged enqueue, never dequeued (judged only when a
//!   `drain` succeeded; before that the element may still be queued);
//! - `duplicated`: dequeued more times than it was enqueued;
//! - `unexpected`: dequeued but never enqueued, or enqueued only by
//!   enqueues that definitely failed;
//! - `recovered`: enqueue of unknown outcome, later dequeued — fine;
//! - `maybe_taken`: acknowledged, never seen dequeued, but a dequeue of
//!   unknown outcome may have taken it (no more such elements than such
//!   dequeues on that queue) — the verdict is then unknown, not invalid.
//!
//! Operations: `enqueue` (value: the element), `dequeue` (result: the
//! element, or `null` / a `fail` when empty) and `drain` (result: the list
//! of every element left). Each key is a queue of its own.

use super::{by_key, plural, show, Validity};
use crate::history::{Call, History, HistoryError, Outcome};
use rustc_hash::FxHashMap;
use serde::Serialize;
use serde_json::Value;

/// How to judge a queue history.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueOptions {
    /// At-least-once delivery: duplicates are counted but not an error.
    pub duplicates_allowed: bool,
}

/// The elements of one class: how many, and up to ten.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Class {
    /// How many elements (a duplicated element counts once per extra
    /// delivery).
    pub count: usize,
    /// Up to ten, as `[key, element]` when keyed, else the element.
    pub examples: Vec<Value>,
}

impl Class {
    fn push(&mut self, key: &Option<Value>, v: &Value, times: usize) {
        self.count += times;
        if self.examples.len() < 10 {
            self.examples.push(match key {
                Some(k) => serde_json::json!([k, v]),
                None => v.clone(),
            });
        }
    }
}

/// The verdict on a queue history.
#[derive(Clone, Debug, Serialize)]
pub struct QueueReport {
    /// The verdict.
    pub validity: Validity,
    /// Enqueues invoked.
    pub attempted: usize,
    /// Enqueues acknowledged.
    pub acknowledged: usize,
    /// Elements dequeued (by dequeues and drains).
    pub dequeued: usize,
    /// Queues (keys) with a successful drain.
    pub drained: usize,
    /// Acknowledged and delivered exactly once (or more, see duplicated).
    pub ok: usize,
    /// Acknowledged, never dequeued, queue drained.
    pub lost: Class,
    /// Acknowledged, never dequeued, queue never drained: maybe still there.
    pub undrained: Class,
    /// Acknowledged, never seen dequeued, but as many dequeues of unknown
    /// outcome on that queue could have taken them.
    pub maybe_taken: Class,
    /// Dequeued more times than enqueued.
    pub duplicated: Class,
    /// Dequeued, never (successfully or possibly) enqueued.
    pub unexpected: Class,
    /// Enqueue outcome unknown, dequeued.
    pub recovered: Class,
    /// One or two sentences.
    pub explanation: String,
}

#[derive(Default)]
struct Element {
    value: Value,
    ok: usize,
    info: usize,
    failed: usize,
    dequeued: usize,
}

/// Checks a queue history.
pub fn check(history: &History, opts: &QueueOptions) -> Result<QueueReport, HistoryError> {
    Ok(check_calls(&history.calls()?, opts))
}

/// Checks the calls of a queue history.
pub fn check_calls(calls: &[Call], opts: &QueueOptions) -> QueueReport {
    let mut r = QueueReport {
        validity: Validity::Valid,
        attempted: 0,
        acknowledged: 0,
        dequeued: 0,
        drained: 0,
        ok: 0,
        lost: Class::default(),
        undrained: Class::default(),
        maybe_taken: Class::default(),
        duplicated: Class::default(),
        unexpected: Class::default(),
        recovered: Class::default(),
        explanation: String::new(),
    };
    for (key, calls) in by_key(calls) {
        check_key(&key, &calls, &mut r);
    }
    let mut problems = Vec::new();
    let mut say = |c: &Class, what: &str| {
        if c.count > 0 {
            problems.push(format!(
                "{} {what} (e.g. {})",
                c.count,
                show(&c.examples, 5)
            ));
        }
    };
    say(&r.lost, "acknowledged enqueues never dequeued: lost");
    say(
        &r.unexpected,
        "dequeued elements nobody enqueued: unexpected",
    );
    if !opts.duplicates_allowed {
        say(
            &r.duplicated,
            "extra deliveries of elements dequeued more often than enqueued: duplicated",
        );
    }
    if !problems.is_empty() {
        r.validity = Validity::Invalid;
        r.explanation = problems.join("; ");
    } else if r.maybe_taken.count > 0 {
        r.validity = Validity::Unknown;
        r.explanation = format!(
            "{} never seen dequeued, but as many dequeues of unknown outcome may have taken them (e.g. {})",
            plural(r.maybe_taken.count, "acknowledged element was", "acknowledged elements were"),
            show(&r.maybe_taken.examples, 5)
        );
    } else if r.undrained.count > 0 {
        r.validity = Validity::Unknown;
        r.explanation = format!(
            "{} never dequeued, but no drain succeeded, so they may still be queued (e.g. {})",
            plural(
                r.undrained.count,
                "acknowledged element was",
                "acknowledged elements were"
            ),
            show(&r.undrained.examples, 5)
        );
    } else {
        r.explanation = format!(
            "all {} acknowledged enqueues were dequeued once ({} recovered, {} duplicated, {} attempted)",
            r.acknowledged, r.recovered.count, r.duplicated.count, r.attempted
        );
    }
    r
}

fn check_key(key: &Option<Value>, calls: &[&Call], r: &mut QueueReport) {
    let mut order: Vec<String> = Vec::new();
    let mut elements: FxHashMap<String, Element> = FxHashMap::default();
    let mut element = |v: &Value, order: &mut Vec<String>| -> String {
        let k = v.to_string();
        elements.entry(k.clone()).or_insert_with(|| {
            order.push(k.clone());
            Element {
                value: v.clone(),
                ..Element::default()
            }
        });
        k
    };
    let mut out: Vec<&Value> = Vec::new();
    let mut drained = false;
    let mut unknown_dequeues = 0usize;
    let mut enqueued = Vec::new();
    for c in calls {
        match (c.f.as_str(), c.outcome) {
            ("enqueue", o) => {
                r.attempted += 1;
                enqueued.push((element(&c.input, &mut order), o));
            }
            ("dequeue", Outcome::Ok) if !c.output.is_null() => out.push(&c.output),
            ("dequeue", Outcome::Info) => unknown_dequeues += 1,
            ("drain", Outcome::Ok) => {
                drained = true;
                out.extend(c.output.as_array().into_iter().flatten());
            }
            _ => {}
        }
    }
    let outs: Vec<String> = out.iter().map(|v| element(v, &mut order)).collect();
    for (k, o) in enqueued {
        if let Some(e) = elements.get_mut(&k) {
            match o {
                Outcome::Ok => e.ok += 1,
                Outcome::Info => e.info += 1,
                Outcome::Fail => e.failed += 1,
            }
        }
    }
    for k in outs {
        if let Some(e) = elements.get_mut(&k) {
            e.dequeued += 1;
        }
    }
    r.drained += usize::from(drained);
    let missing: usize = elements
        .values()
        .map(|e| e.ok.saturating_sub(e.dequeued))
        .sum();
    // Few enough missing elements that the dequeues of unknown outcome
    // could have taken every one of them: nothing is certainly lost.
    let maybe_taken = drained && missing <= unknown_dequeues;
    for k in &order {
        let e = &elements[k];
        r.acknowledged += e.ok;
        r.dequeued += e.dequeued;
        let possible = e.ok + e.info;
        if e.dequeued > 0 && possible == 0 {
            r.unexpected.push(key, &e.value, e.dequeued);
            continue;
        }
        if e.dequeued > possible {
            r.duplicated.push(key, &e.value, e.dequeued - possible);
        }
        if e.ok > e.dequeued {
            let class = if maybe_taken {
                &mut r.maybe_taken
            } else if drained {
                &mut r.lost
            } else {
                &mut r.undrained
            };
            class.push(key, &e.value, e.ok - e.dequeued);
        } else if e.ok > 0 {
            r.ok += e.ok;
        } else if e.dequeued > 0 {
            r.recovered.push(key, &e.value, 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Op, OpType, Process};
    use serde_json::json;

    fn call(p: u64, f: &str, input: Value, kind: OpType, output: Value) -> Vec<Op> {
        vec![
            Op::new(0, Process::Client(p), OpType::Invoke, f, input),
            Op::new(0, Process::Client(p), kind, f, output),
        ]
    }

    fn enq(v: u64, kind: OpType) -> Vec<Op> {
        // A process per element: one that got info never invokes again.
        call(10 + v, "enqueue", json!(v), kind, json!(v))
    }

    fn deq(out: Value) -> Vec<Op> {
        call(1, "dequeue", Value::Null, OpType::Ok, out)
    }

    fn drain(out: Value) -> Vec<Op> {
        call(2, "drain", Value::Null, OpType::Ok, out)
    }

    fn run(parts: Vec<Vec<Op>>, opts: QueueOptions) -> QueueReport {
        check(&History::new(parts.concat()), &opts).unwrap()
    }

    #[test]
    fn every_element_out_once_is_valid_and_info_enqueues_recover() {
        let r = run(
            vec![
                enq(1, OpType::Ok),
                enq(2, OpType::Info),
                enq(3, OpType::Ok),
                deq(json!(1)),
                deq(Value::Null),
                drain(json!([2, 3])),
            ],
            QueueOptions::default(),
        );
        assert_eq!(r.validity, Validity::Valid, "{}", r.explanation);
        assert_eq!((r.ok, r.recovered.count, r.dequeued), (2, 1, 3));
        assert_eq!(
            r.explanation,
            "all 2 acknowledged enqueues were dequeued once (1 recovered, 0 duplicated, 3 attempted)"
        );
    }

    #[test]
    fn lost_duplicated_and_unexpected_are_named() {
        let r = run(
            vec![
                enq(1, OpType::Ok),
                enq(2, OpType::Ok),
                enq(3, OpType::Fail),
                deq(json!(1)),
                deq(json!(1)),
                deq(json!(3)),
                drain(json!([9])),
            ],
            QueueOptions::default(),
        );
        assert_eq!(r.validity, Validity::Invalid);
        assert_eq!(r.lost.examples, vec![json!(2)]);
        assert_eq!(r.duplicated.examples, vec![json!(1)]);
        assert_eq!(r.unexpected.examples, vec![json!(3), json!(9)]);
        assert_eq!(
            r.explanation,
            "1 acknowledged enqueues never dequeued: lost (e.g. 2); 2 dequeued elements nobody enqueued: unexpected (e.g. 3, 9); 1 extra deliveries of elements dequeued more often than enqueued: duplicated (e.g. 1)"
        );
        let at_least_once = run(
            vec![enq(1, OpType::Ok), deq(json!(1)), drain(json!([1]))],
            QueueOptions {
                duplicates_allowed: true,
            },
        );
        assert_eq!(at_least_once.validity, Validity::Valid);
        assert_eq!(at_least_once.duplicated.count, 1);
    }

    #[test]
    fn a_dequeue_of_unknown_outcome_may_have_taken_a_missing_element() {
        let parts = vec![
            enq(1, OpType::Ok),
            enq(2, OpType::Ok),
            call(3, "dequeue", Value::Null, OpType::Info, Value::Null),
            drain(json!([2])),
        ];
        let r = run(parts.clone(), QueueOptions::default());
        assert_eq!(r.validity, Validity::Unknown);
        assert_eq!((r.lost.count, r.maybe_taken.count), (0, 1));
        assert_eq!(
            r.explanation,
            "1 acknowledged element was never seen dequeued, but as many dequeues of unknown outcome may have taken them (e.g. 1)"
        );
        // Two missing, one unknown dequeue: at least one is lost.
        let mut more = parts;
        more.insert(1, enq(5, OpType::Ok));
        let r = run(more, QueueOptions::default());
        assert_eq!(r.validity, Validity::Invalid);
        assert_eq!(r.lost.examples, vec![json!(1), json!(5)]);
    }

    #[test]
    fn without_a_drain_missing_elements_are_unknown_not_lost() {
        let r = run(vec![enq(1, OpType::Ok)], QueueOptions::default());
        assert_eq!(r.validity, Validity::Unknown);
        assert_eq!(r.lost.count, 0);
        assert_eq!(
            r.explanation,
            "1 acknowledged element was never dequeued, but no drain succeeded, so they may still be queued (e.g. 1)"
        );
    }

    /// A history built against a real queue: 3 process slots take steps
    /// from `script`; each enqueue or dequeue takes effect atomically at a
    /// step between its invocation and completion (or never, for a failed
    /// one), and a final drain empties the queue. Valid by construction;
    /// removing one element from the drain loses it.
    fn simulate(script: &[(u8, u8)]) -> History {
        const P: usize = 3;
        let mut q = std::collections::VecDeque::new();
        let mut ops = Vec::new();
        let mut next = 0u64;
        // Per slot: (is_enqueue, element, effect done, dequeued element).
        type Slot = Option<(bool, u64, bool, Option<u64>)>;
        let mut busy: [Slot; P] = [None; P];
        let ev = |p: usize, kind: OpType, f: &str, v: Value| {
            Op::new(0, Process::Client(p as u64), kind, f, v)
        };
        for &(slot, action) in script {
            let s = slot as usize % P;
            match busy[s] {
                None => {
                    let enq = action % 3 != 0;
                    if enq {
                        ops.push(ev(s, OpType::Invoke, "enqueue", json!(next)));
                        next += 1;
                        busy[s] = Some((true, next - 1, false, None));
                    } else {
                        ops.push(ev(s, OpType::Invoke, "dequeue", Value::Null));
                        busy[s] = Some((false, 0, false, None));
                    }
                }
                Some((enq, v, false, _)) if action % 2 == 0 => {
                    let got = if enq {
                        q.push_back(v);
                        None
                    } else {
                        q.pop_front()
                    };
                    busy[s] = Some((enq, v, true, got));
                }
                Some((enq, v, done, got)) => {
                    ops.push(match (enq, done, got) {
                        (true, true, _) => ev(s, OpType::Ok, "enqueue", json!(v)),
                        (true, false, _) => ev(s, OpType::Fail, "enqueue", json!(v)),
                        (false, _, Some(x)) => ev(s, OpType::Ok, "dequeue", json!(x)),
                        (false, _, None) => ev(s, OpType::Fail, "dequeue", Value::Null),
                    });
                    busy[s] = None;
                }
            }
        }
        // Calls still in flight complete (ok if they took effect, else
        // fail); every slot is then idle for the drain.
        for (s, b) in busy.iter().enumerate() {
            ops.push(match b {
                Some((true, v, true, _)) => ev(s, OpType::Ok, "enqueue", json!(v)),
                Some((true, v, false, _)) => ev(s, OpType::Fail, "enqueue", json!(v)),
                Some((false, _, _, Some(x))) => ev(s, OpType::Ok, "dequeue", json!(x)),
                Some((false, _, _, None)) => ev(s, OpType::Fail, "dequeue", Value::Null),
                None => continue,
            });
        }
        ops.push(ev(P, OpType::Invoke, "drain", Value::Null));
        ops.push(ev(
            P,
            OpType::Ok,
            "drain",
            json!(q.drain(..).collect::<Vec<_>>()),
        ));
        History::new(ops)
    }

    proptest::proptest! {
        #[test]
        fn histories_of_a_real_queue_are_valid_and_a_dropped_element_is_lost(
            script in proptest::collection::vec((0u8..3, 0u8..12), 0..150),
        ) {
            let h = simulate(&script);
            let r = check(&h, &QueueOptions::default()).unwrap();
            proptest::prop_assert_eq!(r.validity, Validity::Valid, "{}", r.explanation);
            // Drop the last element the drain returned, if it was
            // acknowledged: it is lost.
            let mut forged = h.clone();
            let last = forged.ops.len() - 1;
            let drained = forged.ops[last].value.as_array().cloned().unwrap_or_default();
            let Some(gone) = drained.last().cloned() else { return Ok(()) };
            let acked = h.ops.iter().any(|o| o.kind == OpType::Ok && o.f == "enqueue" && o.value == gone);
            forged.ops[last].value = json!(drained[..drained.len() - 1]);
            let r = check(&forged, &QueueOptions::default()).unwrap();
            if acked {
                proptest::prop_assert_eq!(r.validity, Validity::Invalid);
                proptest::prop_assert_eq!(r.lost.examples.clone(), vec![gone]);
            } else {
                proptest::prop_assert_eq!(r.validity, Validity::Valid, "an unacknowledged element may vanish");
            }
        }
    }
}
