use super::*;
use crate::history::{Op, OpType, Process};
use serde_json::json;

/// A history from `(process, type, f, value)` events, indexed in order.
fn history(events: &[(u64, OpType, &str, Value)]) -> History {
    History::new(
        events
            .iter()
            .map(|(p, t, f, v)| Op::new(0, Process::Client(*p), *t, *f, v.clone()))
            .collect(),
    )
}

use OpType::{Fail, Info, Invoke, Ok as Done};

fn null() -> Value {
    Value::Null
}

#[test]
fn two_holders_at_once_is_invalid_naming_both() {
    let h = history(&[
        (0, Invoke, "acquire", null()), // 0
        (0, Done, "acquire", null()),   // 1: process 0 holds from here
        (1, Invoke, "acquire", null()), // 2
        (1, Done, "acquire", null()),   // 3: process 1 holds too
        (0, Invoke, "add", json!(0)),   // 4
        (0, Done, "add", json!(0)),     // 5
        (0, Invoke, "release", null()), // 6: process 0 stops holding
        (0, Done, "release", null()),   // 7
        (1, Invoke, "add", json!(1)),   // 8
        (1, Done, "add", json!(1)),     // 9
        (1, Invoke, "release", null()), // 10
        (1, Done, "release", null()),   // 11
        (0, Invoke, "read", null()),    // 12
        (0, Done, "read", json!([0, 1])),
    ]);
    let r = check(&h).unwrap();
    assert_eq!(r.validity, Validity::Invalid);
    assert_eq!((r.holds, r.overlapping, r.lost_count), (2, 1, 0));
    assert_eq!(
        r.explanation,
        "two processes held the lock at once: process 0 held the lock from event 1 \
         (its acquire's ok) to event 6 (its release), and process 1 held the lock from \
         event 3 (its acquire's ok) to event 10 (its release)"
    );
    assert_eq!(r.overlaps[0].first.acquire.invoke, 0);
    assert_eq!(r.overlaps[0].second.release.as_ref().unwrap().invoke, 10);
}

#[test]
fn holds_that_only_may_overlap_are_not_a_violation() {
    // Process 1's acquire was invoked while process 0 held the lock, but
    // its ok came after process 0's release was invoked: etcd may well
    // have granted it after the release, so nothing is proven.
    let h = history(&[
        (0, Invoke, "acquire", null()),
        (0, Done, "acquire", null()), // 1
        (1, Invoke, "acquire", null()),
        (0, Invoke, "add", json!(0)),
        (0, Done, "add", json!(0)),
        (0, Invoke, "release", null()), // 5
        (1, Done, "acquire", null()),   // 6
        (0, Done, "release", null()),
        (1, Invoke, "release", null()),
        (1, Done, "release", null()),
        (0, Invoke, "read", null()),
        (0, Done, "read", json!([0])),
    ]);
    let r = check(&h).unwrap();
    assert_eq!(r.validity, Validity::Valid, "{}", r.explanation);
    assert_eq!(
        r.explanation,
        "2 holds, none overlapping (0 acquires of unknown outcome); all 1 acknowledged add \
         in 1 final read"
    );
}

#[test]
fn a_lost_add_is_invalid_naming_the_element_and_the_read() {
    let h = history(&[
        (0, Invoke, "acquire", null()),
        (0, Done, "acquire", null()),
        (0, Invoke, "add", json!(0)),
        (0, Done, "add", json!(0)),
        (0, Invoke, "release", null()),
        (0, Done, "release", null()),
        (1, Invoke, "acquire", null()),
        (1, Done, "acquire", null()),
        (1, Invoke, "add", json!(1)), // 8
        (1, Done, "add", json!(1)),   // 9
        (1, Invoke, "release", null()),
        (1, Done, "release", null()),
        (0, Invoke, "read", null()), // 12
        (0, Done, "read", json!([0])),
        (1, Invoke, "read", null()),
        (1, Done, "read", json!([0])),
    ]);
    let r = check(&h).unwrap();
    assert_eq!(r.validity, Validity::Invalid);
    assert_eq!((r.overlapping, r.lost_count, r.final_reads), (0, 1, 2));
    assert_eq!(
        r.explanation,
        "1 acknowledged add missing from the final read: element 1 was added by process 1's \
         add (events 8 to 9), acknowledged, and is not in process 0's read (events 12 to 13)"
    );
    assert_eq!(r.lost[0].element, json!(1));
}

#[test]
fn a_clean_history_is_valid() {
    let mut events = Vec::new();
    for (p, e) in [(0u64, 0), (1, 1), (0, 2), (2, 3)] {
        events.push((p, Invoke, "acquire", null()));
        events.push((p, Done, "acquire", null()));
        events.push((p, Invoke, "add", json!(e)));
        events.push((p, Done, "add", json!(e)));
        events.push((p, Invoke, "release", null()));
        events.push((p, Done, "release", null()));
    }
    // A refused acquire (fail) starts no hold either.
    events.push((1, Invoke, "acquire", null()));
    events.push((1, Fail, "acquire", null()));
    events.push((2, Invoke, "read", null()));
    events.push((2, Done, "read", json!([0, 1, 2, 3])));
    let r = check(&history(&events)).unwrap();
    assert_eq!(r.validity, Validity::Valid, "{}", r.explanation);
    assert_eq!((r.acquires, r.holds, r.acknowledged), (5, 4, 4));
    assert_eq!(
        r.explanation,
        "4 holds, none overlapping (0 acquires of unknown outcome); all 4 acknowledged adds \
         in 1 final read"
    );
}

#[test]
fn an_unknown_acquire_is_never_a_violation_by_itself() {
    // Process 1's acquire ended info while process 0 held the lock: it
    // may have been granted (later) or not; its client did nothing under
    // it, and its next process (3) starts afresh.
    let h = history(&[
        (0, Invoke, "acquire", null()),
        (0, Done, "acquire", null()),
        (1, Invoke, "acquire", null()),
        (1, Info, "acquire", null()),
        (0, Invoke, "add", json!(0)),
        (0, Done, "add", json!(0)),
        (0, Invoke, "release", null()),
        (0, Done, "release", null()),
        (3, Invoke, "acquire", null()),
        (3, Done, "acquire", null()),
        (3, Invoke, "release", null()),
        (3, Done, "release", null()),
        (0, Invoke, "read", null()),
        (0, Done, "read", json!([0])),
    ]);
    let r = check(&h).unwrap();
    assert_eq!(r.validity, Validity::Valid, "{}", r.explanation);
    assert_eq!((r.holds, r.unknown_acquires), (2, 1));
    assert_eq!(
        r.explanation,
        "2 holds, none overlapping (1 acquire of unknown outcome); all 1 acknowledged add \
         in 1 final read"
    );
}

#[test]
fn a_hold_without_release_lasts_until_the_last_operation_only() {
    // Process 0's add ended info (it was retired; its release came from
    // its next process, 2): its hold is certain only until the add's
    // invocation, so process 1's later acquire does not overlap it.
    let h = history(&[
        (0, Invoke, "acquire", null()),
        (0, Done, "acquire", null()),
        (0, Invoke, "add", json!(0)), // 2
        (0, Info, "add", null()),
        (2, Invoke, "release", null()),
        (2, Done, "release", null()),
        (1, Invoke, "acquire", null()),
        (1, Done, "acquire", null()),
        (1, Invoke, "add", json!(1)),
        (1, Done, "add", json!(1)),
        (1, Invoke, "release", null()),
        (1, Done, "release", null()),
        (1, Invoke, "read", null()),
        (1, Done, "read", json!([0, 1])),
    ]);
    let r = check(&h).unwrap();
    assert_eq!(r.validity, Validity::Valid, "{}", r.explanation);
    assert_eq!(r.recovered, 1);
    assert_eq!(r.lost_count, 0);
    let hold = &holds(&h.calls().unwrap())[0];
    assert_eq!(
        (hold.from, hold.until, hold.release.is_none()),
        (1, 2, true)
    );
    // But a hold taken while it certainly lasted is a violation.
    let h = history(&[
        (0, Invoke, "acquire", null()),
        (0, Done, "acquire", null()), // 1
        (1, Invoke, "acquire", null()),
        (1, Done, "acquire", null()), // 3
        (0, Invoke, "add", json!(0)), // 4
        (0, Info, "add", null()),
    ]);
    let r = check(&h).unwrap();
    assert_eq!(r.validity, Validity::Invalid);
    assert!(
        r.explanation.starts_with(
            "two processes held the lock at once: process 0 held the lock from event 1 \
             (its acquire's ok) to at least event 4 (its last operation; it never released), \
             and process 1 held the lock from event 3 (its acquire's ok) then on"
        ),
        "{}",
        r.explanation
    );
}

#[test]
fn without_a_final_read_the_adds_are_unknown() {
    let h = history(&[
        (0, Invoke, "acquire", null()),
        (0, Done, "acquire", null()),
        (0, Invoke, "add", json!(0)),
        (0, Done, "add", json!(0)),
        (0, Invoke, "release", null()),
        (0, Done, "release", null()),
    ]);
    let r = check(&h).unwrap();
    assert_eq!(r.validity, Validity::Unknown);
    assert_eq!(
        r.explanation,
        "1 hold, none overlapping, but no final read of the set, so the 1 acknowledged add \
         cannot be judged"
    );
}

#[test]
fn an_element_nobody_added_is_unexpected() {
    let h = history(&[
        (0, Invoke, "add", json!(0)),
        (0, Fail, "add", json!(0)),
        (0, Invoke, "read", null()),
        (0, Done, "read", json!([0, 9])),
    ]);
    let r = check(&h).unwrap();
    assert_eq!(r.validity, Validity::Invalid);
    assert_eq!(r.unexpected, vec![json!(0), json!(9)]);
    assert_eq!(
        r.explanation,
        "2 elements in the final read that no add may have added, e.g. 0"
    );
}

#[test]
fn a_lock_never_held_tested_nothing_and_is_unknown() {
    // Every acquire refused (a db with no lock): no hold, no add, a final
    // read of the empty set. Nothing overlapped, but nothing was tried.
    let h = history(&[
        (0, Invoke, "acquire", null()),
        (0, Fail, "acquire", null()),
        (1, Invoke, "acquire", null()),
        (1, Fail, "acquire", null()),
        (0, Invoke, "read", null()),
        (0, Done, "read", json!([])),
    ]);
    let r = check(&h).unwrap();
    assert_eq!(r.validity, Validity::Unknown);
    assert_eq!(
        r.explanation,
        "no acquire succeeded (2 acquires tried), so the lock was never held and nothing was tested"
    );
}
