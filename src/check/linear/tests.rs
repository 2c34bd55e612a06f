//! Unit tests of the linearizability checker, one group per model. Each
//! history is written one event per line: `process type f [value] [@key]`.

use super::*;
use crate::history::{Op, OpType};
use crate::model::*;
use serde_json::json;
use std::time::Instant;

/// Builds a history from lines `process type f [json-value] [@key]`.
fn h(text: &str) -> History {
    let ops = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let mut words: Vec<&str> = l.split_whitespace().collect();
            let key = match words.last() {
                Some(w) if w.starts_with('@') => {
                    let k = json!(w[1..].to_string());
                    words.pop();
                    Some(k)
                }
                _ => None,
            };
            let process = Process::Client(words[0].parse().expect("process"));
            let kind = OpType::parse(words[1]).expect("type");
            let value = if words.len() > 3 {
                serde_json::from_str(&words[3..].join(" ")).expect("value")
            } else {
                json!(null)
            };
            let mut op = Op::new(0, process, kind, words[2], value);
            op.key = key;
            op
        })
        .collect();
    History::new(ops)
}

fn run<M: Model>(m: &M, text: &str) -> LinearReport {
    let hist = h(text);
    let opts = LinearOptions {
        stop_at_first_invalid: false,
        ..LinearOptions::default()
    };
    let report = check(m, &hist, &opts).expect("checkable");
    // Differential: the exhaustive oracle agrees on every small example.
    if report.keys.len() == 1 && report.keys[0].ops <= 9 && report.validity != Validity::Unknown {
        let oracle = brute::is_linearizable(m, &hist).expect("checkable");
        assert_eq!(
            oracle,
            report.validity == Validity::Valid,
            "oracle disagrees on:\n{text}"
        );
    }
    report
}

fn explanation(r: &LinearReport) -> &str {
    &r.failures()
        .next()
        .expect("a failure")
        .counterexample
        .as_ref()
        .expect("counterexample")
        .explanation
}

#[test]
fn register_sequential_read_of_last_write_is_valid() {
    let r = run(
        &Register,
        "0 invoke write 1\n0 ok write 1\n1 invoke read\n1 ok read 1",
    );
    assert_eq!(r.validity, Validity::Valid);
    assert_eq!(r.keys[0].ops, 2);
}

#[test]
fn register_stale_read_is_invalid_and_names_the_read() {
    let r = run(
        &Register,
        "0 invoke write 1\n0 ok write 1\n0 invoke write 2\n0 ok write 2\n1 invoke read\n1 ok read 1",
    );
    assert_eq!(r.validity, Validity::Invalid);
    let cx = r.keys[0].counterexample.as_ref().unwrap();
    assert_eq!(cx.op.f, "read");
    assert_eq!(cx.op.invoke_index, 4);
    assert_eq!(cx.states, vec!["2"]);
    assert_eq!(
        cx.explanation,
        "read returned 1, but every order of the operations before it leaves 2"
    );
    // The longest prefix: both writes, ending in state 2.
    let path = &cx.final_paths[0];
    assert_eq!(
        path.iter()
            .map(|s| s.op.description.as_str())
            .collect::<Vec<_>>(),
        vec!["write 1", "write 2"]
    );
    assert_eq!(path.last().unwrap().state, "2");
}

#[test]
fn register_concurrent_write_may_be_seen_either_way() {
    // Two concurrent reads during a write: one saw it, one did not.
    let r = run(
        &Register,
        "0 invoke write 1\n1 invoke read\n2 invoke read\n1 ok read 1\n2 ok read null\n0 ok write 1",
    );
    assert_eq!(
        r.validity,
        Validity::Valid,
        "read nil, write 1, read 1 is a linearization"
    );
}

#[test]
fn register_read_after_read_cannot_go_back() {
    let r = run(
        &Register,
        "0 invoke write 1\n1 invoke read\n2 invoke read\n2 ok read null\n1 ok read 1\n0 ok write 1\n",
    );
    assert_eq!(r.validity, Validity::Valid);
    let r = run(
        &Register,
        "0 invoke write 1\n1 invoke read\n1 ok read 1\n1 invoke read\n1 ok read null\n0 ok write 1\n",
    );
    assert_eq!(r.validity, Validity::Invalid);
    assert_eq!(
        explanation(&r),
        "read returned nil, but every order of the operations before it leaves 1"
    );
}

#[test]
fn info_write_may_take_effect_late_or_never() {
    // The crashed write of 2 shows up long after it crashed: allowed.
    let late = "0 invoke write 1\n0 ok write 1\n1 invoke write 2\n1 info write 2\n2 invoke read\n2 ok read 1\n2 invoke read\n2 ok read 2";
    assert_eq!(run(&Register, late).validity, Validity::Valid);
    // ...or never.
    let never = "0 invoke write 1\n0 ok write 1\n1 invoke write 2\n1 info write 2\n2 invoke read\n2 ok read 1";
    assert_eq!(run(&Register, never).validity, Validity::Valid);
    // But not before it was invoked.
    let early = "2 invoke read\n2 ok read 2\n1 invoke write 2\n1 info write 2";
    let r = run(&Register, early);
    assert_eq!(r.validity, Validity::Invalid);
    assert_eq!(
        explanation(&r),
        "read returned 2, but every order of the operations before it leaves nil"
    );
}

#[test]
fn info_write_takes_effect_at_most_once() {
    let text = "0 invoke write 1\n0 ok write 1\n1 invoke write 2\n1 info write 2\n2 invoke read\n2 ok read 2\n0 invoke write 1\n0 ok write 1\n2 invoke read\n2 ok read 1\n2 invoke read\n2 ok read 2";
    let r = run(&Register, text);
    assert_eq!(r.validity, Validity::Invalid);
    let cx = r.keys[0].counterexample.as_ref().unwrap();
    assert_eq!(cx.op.invoke_index, 10);
    assert_eq!(
        cx.explanation,
        "read returned 2, but every order of the operations before it leaves 1"
    );
}

#[test]
fn cas_register_failed_cas_observed_a_mismatch() {
    // The register holds 1, so a cas from 1 that failed is impossible.
    let text = "0 invoke write 1\n0 ok write 1\n1 invoke cas [1, 2]\n1 fail cas [1, 2]";
    let r = run(&CasRegister::default(), text);
    assert_eq!(r.validity, Validity::Invalid);
    assert_eq!(explanation(&r), "cas from 1 failed (found another value), but every order of the operations before it leaves 1");
    // Knossos' reading: a failed cas never happened, so nothing is wrong.
    let r = run(
        &CasRegister {
            failed_cas_never_happened: true,
        },
        text,
    );
    assert_eq!(r.validity, Validity::Valid);
}

#[test]
fn cas_register_successful_cas_needs_its_old_value() {
    let text = "0 invoke write 1\n0 ok write 1\n1 invoke cas [2, 3]\n1 ok cas [2, 3]";
    let r = run(&CasRegister::default(), text);
    assert_eq!(r.validity, Validity::Invalid);
    assert_eq!(
        explanation(&r),
        "cas 2 -> 3 succeeded, but every order of the operations before it leaves 1"
    );
    let ok = "0 invoke write 1\n1 invoke cas [1, 3]\n0 ok write 1\n1 ok cas [1, 3]\n2 invoke read\n2 ok read 3";
    assert_eq!(run(&CasRegister::default(), ok).validity, Validity::Valid);
}

#[test]
fn cas_register_unknown_cas_may_or_may_not_apply() {
    let text = "0 invoke write 1\n0 ok write 1\n1 invoke cas [1, 5]\n1 info cas [1, 5]\n2 invoke read\n2 ok read 1\n2 invoke read\n2 ok read 5";
    assert_eq!(run(&CasRegister::default(), text).validity, Validity::Valid);
    let back = "0 invoke write 1\n0 ok write 1\n1 invoke cas [1, 5]\n1 info cas [1, 5]\n2 invoke read\n2 ok read 5\n2 invoke read\n2 ok read 1";
    let r = run(&CasRegister::default(), back);
    assert_eq!(r.validity, Validity::Invalid);
    assert_eq!(
        explanation(&r),
        "read returned 1, but every order of the operations before it leaves 5"
    );
}

#[test]
fn multiple_states_are_all_listed() {
    // Two concurrent writes, then a read of a value nobody wrote.
    let text = "0 invoke write 1\n1 invoke write 2\n0 ok write 1\n1 ok write 2\n2 invoke read\n2 ok read 3";
    let r = run(&Register, text);
    let cx = r.keys[0].counterexample.as_ref().unwrap();
    let mut states = cx.states.clone();
    states.sort();
    assert_eq!(states, vec!["1", "2"]);
    assert!(
        cx.explanation.ends_with("leaves one of 2 or 1")
            || cx.explanation.ends_with("leaves one of 1 or 2"),
        "{}",
        cx.explanation
    );
}

#[test]
fn kv_splits_by_key_and_reports_each_key() {
    let text = "0 invoke put \"a\" @x\n0 ok put \"a\" @x\n1 invoke append \"b\" @y\n1 ok append \"b\" @y\n2 invoke get @x\n2 ok get \"a\" @x\n2 invoke get @y\n2 ok get \"\" @y";
    let r = run(&Kv, text);
    assert_eq!(r.validity, Validity::Invalid);
    assert_eq!(r.keys.len(), 2);
    assert_eq!(r.keys[0].validity, Validity::Valid);
    assert_eq!(r.keys[0].key, Some(json!("x")));
    assert_eq!(r.keys[1].validity, Validity::Invalid);
    assert_eq!(
        explanation(&r),
        "on key \"y\": get \"y\" returned \"\", but every order of the operations before it leaves {\"y\": \"b\"}"
    );
}

#[test]
fn kv_whole_history_search_agrees_with_split() {
    let text = "0 invoke append \"1\" @x\n1 invoke append \"2\" @x\n0 ok append \"1\" @x\n1 ok append \"2\" @x\n2 invoke get @x\n2 ok get \"21\" @x\n3 invoke put \"z\" @y\n3 ok put \"z\" @y";
    let split = run(&Kv, text);
    let whole = check(
        &Kv,
        &h(text),
        &LinearOptions {
            split_by_key: false,
            ..LinearOptions::default()
        },
    )
    .unwrap();
    assert_eq!(split.validity, Validity::Valid);
    assert_eq!(whole.validity, Validity::Valid);
    assert_eq!(whole.keys.len(), 1);
    let bad = text.replace("\"21\"", "\"12z\"");
    let whole = check(
        &Kv,
        &h(&bad),
        &LinearOptions {
            split_by_key: false,
            ..LinearOptions::default()
        },
    )
    .unwrap();
    assert_eq!(whole.validity, Validity::Invalid);
}

#[test]
fn unkeyed_model_refuses_whole_multi_key_history() {
    let text = "0 invoke write 1 @x\n0 ok write 1 @x\n1 invoke write 1 @y\n1 ok write 1 @y";
    let e = check(
        &Register,
        &h(text),
        &LinearOptions {
            split_by_key: false,
            ..LinearOptions::default()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("does not distinguish keys"), "{e}");
}

#[test]
fn mutex_two_holders_is_invalid() {
    let text = "0 invoke acquire\n0 ok acquire\n1 invoke acquire\n1 ok acquire";
    let r = run(&Mutex, text);
    assert_eq!(r.validity, Validity::Invalid);
    assert_eq!(
        explanation(&r),
        "acquire, but every order of the operations before it leaves held"
    );
    let ok = "0 invoke acquire\n0 ok acquire\n1 invoke acquire\n0 invoke release\n0 ok release\n1 ok acquire";
    assert_eq!(run(&Mutex, ok).validity, Validity::Valid);
}

#[test]
fn mutex_leaves_out_the_lock_set_work_and_judges_the_lock() {
    // The lock-set workload's adds and reads of its set constrain nothing
    // about the lock; an unknown acquire may have taken it or not; a lease
    // that expired under the holder shows as a second acquire.
    let clean = "0 invoke acquire\n0 ok acquire\n0 invoke add 1\n0 ok add 1\n\
                 1 invoke acquire\n1 info acquire\n0 invoke release\n0 ok release\n\
                 3 invoke acquire\n3 ok acquire\n3 invoke read\n3 ok read [1]";
    let r = run(&Mutex, clean);
    assert_eq!(r.validity, Validity::Valid);
    assert_eq!(
        crate::model::guess(&h(clean).calls().unwrap()),
        Some("mutex")
    );
    let expired = "0 invoke acquire\n0 ok acquire\n0 invoke add 1\n\
                   1 invoke acquire\n1 ok acquire\n0 ok add 1";
    let r = run(&Mutex, expired);
    assert_eq!(r.validity, Validity::Invalid);
    assert_eq!(
        explanation(&r),
        "acquire, but every order of the operations before it leaves held"
    );
}

#[test]
fn set_read_must_show_every_completed_add() {
    let ok = "0 invoke add 1\n0 ok add 1\n1 invoke add 2\n2 invoke read\n2 ok read [1]\n1 ok add 2\n2 invoke read\n2 ok read [2, 1]";
    assert_eq!(run(&Set, ok).validity, Validity::Valid);
    let lost = "0 invoke add 1\n0 ok add 1\n2 invoke read\n2 ok read []";
    let r = run(&Set, lost);
    assert_eq!(r.validity, Validity::Invalid);
    assert_eq!(
        explanation(&r),
        "read returned #{}, but every order of the operations before it leaves #{1}"
    );
}

#[test]
fn fifo_queue_order_matters() {
    let text = "0 invoke enqueue 1\n0 ok enqueue 1\n0 invoke enqueue 2\n0 ok enqueue 2\n1 invoke dequeue\n1 ok dequeue 2";
    let r = run(&FifoQueue, text);
    assert_eq!(r.validity, Validity::Invalid);
    assert_eq!(
        explanation(&r),
        "dequeue returned 2, but every order of the operations before it leaves [1 2]"
    );
    assert_eq!(run(&UnorderedQueue, text).validity, Validity::Valid);
}

#[test]
fn unordered_queue_unknown_dequeue_may_take_any_element() {
    // The crashed dequeue took 1 or 2; for the last dequeue to find the queue
    // empty after taking 2, it must have taken 1.
    let text = "0 invoke enqueue 1\n0 ok enqueue 1\n0 invoke enqueue 2\n0 ok enqueue 2\n1 invoke dequeue\n1 info dequeue\n2 invoke dequeue\n2 ok dequeue 2\n2 invoke dequeue\n2 ok dequeue null";
    assert_eq!(run(&UnorderedQueue, text).validity, Validity::Valid);
    let dup = text.replace("2 ok dequeue null", "2 ok dequeue 2");
    assert_eq!(run(&UnorderedQueue, &dup).validity, Validity::Invalid);
}

/// Forty crashed writes and forty concurrent reads of their values, then
/// a write of 41 and a read of 0: every crashed write took effect once,
/// before the reads returned, so the read of 0 is stale. A hopeless search
/// that only a budget stops (and not one that no order of the ops could
/// explain, which `reach` would settle at once: 0 was written).
fn hopeless_history() -> History {
    let mut text = String::new();
    for p in 0..40 {
        text.push_str(&format!("{p} invoke write {p}\n{p} info write {p}\n"));
    }
    for p in 100..140 {
        text.push_str(&format!("{p} invoke read\n"));
    }
    for p in 100..140 {
        text.push_str(&format!("{p} ok read {}\n", p - 100));
    }
    text.push_str("999 invoke write 41\n999 ok write 41\n999 invoke read\n999 ok read 0\n");
    h(&text)
}

#[test]
fn time_limit_gives_unknown_with_reason() {
    let opts = LinearOptions {
        time_limit: Some(Duration::from_millis(200)),
        ..LinearOptions::default()
    };
    let r = check(&Register, &hopeless_history(), &opts).unwrap();
    assert_eq!(r.validity, Validity::Unknown);
    assert!(
        r.keys[0]
            .reason
            .as_deref()
            .unwrap_or("")
            .starts_with("time limit of 200ms reached"),
        "{:?}",
        r.keys[0].reason
    );
}

#[test]
fn memory_limit_gives_unknown_with_reason() {
    let opts = LinearOptions {
        memory_limit: 1 << 20,
        ..LinearOptions::default()
    };
    let r = check(&Register, &hopeless_history(), &opts).unwrap();
    assert_eq!(r.validity, Validity::Unknown);
    assert!(
        r.keys[0]
            .reason
            .as_deref()
            .unwrap_or("")
            .starts_with("memory budget of 1 MiB reached"),
        "{:?}",
        r.keys[0].reason
    );
}

#[test]
fn decode_errors_name_the_event() {
    let e = check(
        &CasRegister::default(),
        &h("0 invoke cas 3\n0 ok cas 3"),
        &LinearOptions::default(),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "event 0: expected the cas value as a two-element array [old new], found 3"
    );
    let e = check(
        &Register,
        &h("0 invoke frob 3\n0 ok frob 3"),
        &LinearOptions::default(),
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("does not know the function `frob`"),
        "{e}"
    );
}

#[test]
fn empty_history_is_valid() {
    let r = check(&Register, &History::default(), &LinearOptions::default()).unwrap();
    assert_eq!(r.validity, Validity::Valid);
}

#[test]
fn first_invalid_key_stops_the_others_with_a_reason() {
    // Key "a" is invalid at once; key "b" is a long hopeless search.
    let mut text =
        String::from("0 invoke write 1 @a\n0 ok write 1 @a\n1 invoke read @a\n1 ok read 2 @a\n");
    for p in 10..50 {
        text.push_str(&format!("{p} invoke write {p} @b\n{p} info write {p} @b\n"));
    }
    for p in 100..140 {
        text.push_str(&format!("{p} invoke read @b\n"));
    }
    for p in 100..140 {
        text.push_str(&format!("{p} ok read {} @b\n", p - 90));
    }
    text.push_str(
        "999 invoke write 60 @b\n999 ok write 60 @b\n999 invoke read @b\n999 ok read 10 @b\n",
    );
    let opts = LinearOptions {
        time_limit: Some(Duration::from_secs(20)),
        ..LinearOptions::default()
    };
    let started = Instant::now();
    let r = check(&Register, &h(&text), &opts).unwrap();
    assert_eq!(r.validity, Validity::Invalid);
    assert_eq!(r.keys[0].validity, Validity::Invalid);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the hopeless key was not stopped"
    );
    if r.keys[1].validity == Validity::Unknown {
        assert_eq!(
            r.keys[1].reason.as_deref(),
            Some("not finished: another key was found invalid first")
        );
    }
}

#[test]
fn equal_crashed_ops_are_interchangeable_but_each_counts_once() {
    // Two crashed writes of 2: the value may appear, vanish under a write
    // of 1, and appear once more — but not a third time.
    let twice = "0 invoke write 2\n0 info write 2\n1 invoke write 2\n1 info write 2\n2 invoke read\n2 ok read 2\n2 invoke write 1\n2 ok write 1\n2 invoke read\n2 ok read 2";
    assert_eq!(run(&Register, twice).validity, Validity::Valid);
    let thrice = format!("{twice}\n2 invoke write 1\n2 ok write 1\n2 invoke read\n2 ok read 2");
    let r = run(&Register, &thrice);
    assert_eq!(r.validity, Validity::Invalid);
    assert_eq!(
        explanation(&r),
        "read returned 2, but every order of the operations before it leaves 1"
    );
}

#[test]
fn failed_cas_with_another_error_never_ran() {
    // The register holds 1; a cas from 1 that failed because it was never
    // sent says nothing about the register.
    let mut hist = h("0 invoke write 1\n0 ok write 1\n1 invoke cas [1, 2]\n1 fail cas [1, 2]");
    hist.ops[3].error = Some(json!("connect: connection refused"));
    let r = check(&CasRegister::default(), &hist, &LinearOptions::default()).unwrap();
    assert_eq!(r.validity, Validity::Valid);
    // Marked as a mismatch, it is the impossible observation again.
    hist.ops[3].error = Some(json!(crate::model::CAS_MISMATCH));
    let r = check(&CasRegister::default(), &hist, &LinearOptions::default()).unwrap();
    assert_eq!(r.validity, Validity::Invalid);
    assert_eq!(explanation(&r), "cas from 1 failed (found another value), but every order of the operations before it leaves 1");
}

/// A long sequential register history: `n` write/read pairs, every
/// `crash_every`-th write crashed (it took effect: the read after it saw
/// it) by a process that never comes back.
fn long_sequential(n: usize, crash_every: usize) -> String {
    let mut text = String::new();
    let mut process = 0;
    for i in 0..n {
        let v = i % 7;
        if i % crash_every == crash_every - 1 {
            text.push_str(&format!(
                "{process} invoke write {v}\n{process} info write {v}\n"
            ));
            process += 1;
        } else {
            text.push_str(&format!(
                "{process} invoke write {v}\n{process} ok write {v}\n"
            ));
        }
        text.push_str(&format!("{process} invoke read\n{process} ok read {v}\n"));
    }
    text
}

#[test]
fn long_history_fits_a_memo_budget_that_follows_concurrency_not_length() {
    // 40,000 ops: a memo storing a bitset as long as the history per
    // configuration needs 5 KB each, 200 MB in all; relative to the
    // frontier each costs a few words, so 16 MiB is plenty (the search's
    // stack and trail, 40,000 steps deep at the end, count too, each as
    // it is about to double).
    let text = long_sequential(20_000, 100);
    let opts = LinearOptions {
        memory_limit: 16 << 20,
        ..LinearOptions::default()
    };
    let r = check(&Register, &h(&text), &opts).unwrap();
    assert_eq!(r.validity, Validity::Valid, "{:?}", r.keys[0].reason);
    assert!(r.keys[0].configurations >= 40_000);
    // The same history with the last read forged is caught, and the
    // counterexample's path runs through the whole history.
    let forged = format!("{text}9999 invoke read\n9999 ok read 12\n");
    let r = check(&Register, &h(&forged), &opts).unwrap();
    assert_eq!(r.validity, Validity::Invalid);
    let cx = r.keys[0].counterexample.as_ref().expect("counterexample");
    assert_eq!(
        cx.explanation,
        "read returned 12, but every order of the operations before it leaves 0"
    );
    assert!(cx.final_paths.iter().all(|p| p.len() >= 39_000));
}

#[test]
fn resident_memory_reader_replaces_the_memo_count() {
    // The process is said to hold 2 GiB: a 1 GiB limit stops the search
    // though its memo is small.
    let heavy = LinearOptions {
        memory_limit: 1 << 30,
        resident_memory: Some(|| Some(2 << 30)),
        ..LinearOptions::default()
    };
    let r = check(&Register, &hopeless_history(), &heavy).unwrap();
    assert_eq!(r.validity, Validity::Unknown);
    assert!(
        r.keys[0]
            .reason
            .as_deref()
            .unwrap_or("")
            .starts_with("memory budget of 1024 MiB reached"),
        "{:?}",
        r.keys[0].reason
    );
    // Without the reader the same limit counts the memo alone, which stays
    // far below 1 GiB: the time limit stops the search instead.
    let memo_only = LinearOptions {
        resident_memory: None,
        time_limit: Some(Duration::from_millis(300)),
        ..heavy
    };
    let r = check(&Register, &hopeless_history(), &memo_only).unwrap();
    assert_eq!(r.validity, Validity::Unknown);
    assert!(
        r.keys[0]
            .reason
            .as_deref()
            .unwrap_or("")
            .starts_with("time limit of 300ms reached"),
        "{:?}",
        r.keys[0].reason
    );
}

/// The search problem of a one-key history, decoded as [`check`] does.
fn problem_of<M: Model>(m: &M, hist: &History) -> search::Problem<M::Op> {
    let mut values = Values::new();
    let (mut ops, mut spans) = (Vec::new(), Vec::new());
    for c in hist.calls().expect("well formed") {
        if let Some(op) = m.decode(&c, &mut values).expect("decodable") {
            ops.push(op);
            let ret = if c.outcome == Outcome::Info {
                None
            } else {
                c.complete
            };
            spans.push((c.invoke, ret));
        }
    }
    search::Problem::new(ops, &spans)
}

/// A well-formed random cas-register history of `n` events: processes
/// invoke reads, writes and cases of 0..4 and complete them with random
/// results (so most such histories are not linearizable), ok, failed or
/// crashed; a crashed process never comes back.
fn random_register_history(seed: u64, procs: u64, n: usize) -> History {
    let mut x = seed;
    let mut next = move |below: u64| {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % below
    };
    let mut ids: Vec<u64> = (0..procs).collect();
    let mut open: Vec<Option<(&str, serde_json::Value)>> = vec![None; procs as usize];
    let mut ops = Vec::new();
    for _ in 0..n {
        let slot = next(procs) as usize;
        let process = Process::Client(ids[slot]);
        match open[slot].take() {
            None => {
                let (f, v) = match next(3) {
                    0 => ("read", json!(null)),
                    1 => ("write", json!(next(5))),
                    _ => ("cas", json!([next(5), next(5)])),
                };
                ops.push(Op::new(0, process, OpType::Invoke, f, v.clone()));
                open[slot] = Some((f, v));
            }
            Some((f, v)) => {
                let (kind, v) = match (next(10), f) {
                    (0, _) => (OpType::Info, v),
                    (1..=2, "cas") => (OpType::Fail, v),
                    (_, "read") => (OpType::Ok, json!(next(6))),
                    _ => (OpType::Ok, v),
                };
                if kind == OpType::Info {
                    ids[slot] += procs;
                }
                ops.push(Op::new(0, process, kind, f, v));
            }
        }
    }
    History::new(ops)
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 400, ..Default::default() })]

    /// Differential: whenever `reach` calls an op impossible, the
    /// exhaustive oracle finds the history not linearizable, and the op
    /// is one that completed.
    #[test]
    fn an_op_reach_calls_impossible_is_in_no_linearization(seed: u64, procs in 1u64..4, n in 1usize..16) {
        let hist = random_register_history(seed, procs, n);
        let m = CasRegister::default();
        let p = problem_of(&m, &hist);
        if let Some(f) = reach::impossible_op(&m, &p) {
            proptest::prop_assert!(p.required[f.stuck_op as usize]);
            proptest::prop_assert!(!brute::is_linearizable(&m, &hist).expect("checkable"), "reach rejected a linearizable history: {:?}", hist);
        }
    }
}

#[test]
fn reach_often_has_something_to_say_on_random_histories() {
    // Guards the differential test above against a generator on which
    // `reach` never fires.
    let m = CasRegister::default();
    let fired = (0..400)
        .filter(|&seed| {
            let hist = random_register_history(seed, 3, 14);
            reach::impossible_op(&m, &problem_of(&m, &hist)).is_some()
        })
        .count();
    assert!(fired > 40, "reach fired on only {fired} of 400 histories");
}

#[test]
fn an_impossible_read_found_by_reach_is_explained_as_such() {
    // The search walks many configurations (the forty concurrent reads of
    // forty crashed writes), so it looks for an impossible op, and the
    // read of 12345, which nothing wrote, is one: invalid at once, with
    // the reason, and no prefix walked.
    let mut text = String::new();
    for p in 0..40 {
        text.push_str(&format!("{p} invoke write {p}\n{p} info write {p}\n"));
    }
    for p in 100..140 {
        text.push_str(&format!("{p} invoke read\n"));
    }
    for p in 100..140 {
        text.push_str(&format!("{p} ok read {}\n", p - 100));
    }
    text.push_str("999 invoke read\n999 ok read 12345\n");
    let opts = LinearOptions {
        time_limit: Some(Duration::from_secs(60)),
        shrink_time: Duration::from_secs(60),
        ..LinearOptions::default()
    };
    let r = check(&Register, &h(&text), &opts).unwrap();
    assert_eq!(r.validity, Validity::Invalid, "{:?}", r.keys[0].reason);
    let cx = r.keys[0].counterexample.as_ref().expect("counterexample");
    assert_eq!(cx.op.invoke_index, 160);
    assert!(cx.over_approximated);
    assert!(cx.final_paths.is_empty());
    let states: Vec<String> = std::iter::once("nil".to_string())
        .chain((0..40).map(|v| v.to_string()))
        .collect();
    assert_eq!(
        cx.explanation,
        format!(
            "read returned 12345, but no order of the operations called before it returned can explain that: applied in any order, any number of times, they leave only {}",
            states.join(" or ")
        )
    );
    // The smallest failing sub-history is the read alone, and it is proven
    // minimal: every sub-history the shrink tried was settled.
    let m = r.keys[0].shrunk.as_ref().expect("shrunk");
    assert!(m.minimal);
    assert_eq!(m.ops.len(), 1);
    assert_eq!(m.ops[0].description, "read returned 12345");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 600, ..Default::default() })]

    /// Differential: the search's verdict is the exhaustive oracle's on
    /// small random histories with crashed ops and quiescent points (with
    /// one to three processes, most of them have some), so that skipping
    /// dominated configurations never changes a verdict.
    #[test]
    fn search_agrees_with_the_oracle_on_random_histories_with_crashed_ops(seed: u64, procs in 1u64..4, n in 1usize..18) {
        let hist = random_register_history(seed, procs, n);
        let m = CasRegister::default();
        let opts = LinearOptions { shrink_time: Duration::ZERO, ..LinearOptions::default() };
        let r = check(&m, &hist, &opts).expect("checkable");
        let oracle = brute::is_linearizable(&m, &hist).expect("checkable");
        proptest::prop_assert_eq!(r.validity == Validity::Valid, oracle, "{:?}", hist);
        proptest::prop_assert!(r.validity != Validity::Unknown);
    }
}

#[test]
fn a_stale_read_after_quiescent_points_with_crashed_writes_is_invalid_and_explained() {
    // Ten crashed writes of 10..=19, each alone between quiescent points,
    // then writes of 6 and 7 one after the other and a read of 6: stale,
    // whatever the crashed writes did. At the read the register holds 7,
    // or the value of any crashed write applied after it. Any run of
    // crashed writes leaves what its last one alone leaves, with more
    // crashed ops used, so the search visits each alone and skips the
    // runs (before, every subset of them in every order).
    let mut text = String::new();
    for v in 10..20 {
        text.push_str(&format!("{v} invoke write {v}\n{v} info write {v}\n"));
        text.push_str("0 invoke read\n0 ok read null\n");
    }
    text.push_str("1 invoke write 6\n1 ok write 6\n1 invoke write 7\n1 ok write 7\n");
    text.push_str("2 invoke read\n2 ok read 6\n");
    let r = run(&Register, &text);
    assert_eq!(r.validity, Validity::Invalid);
    let cx = r.keys[0].counterexample.as_ref().expect("counterexample");
    assert_eq!(cx.op.invoke_index, 44);
    let mut states = cx.states.clone();
    states.sort();
    let expected: Vec<String> = (10..20).chain([7]).map(|v: i32| v.to_string()).collect();
    let mut expected_sorted = expected.clone();
    expected_sorted.sort();
    assert_eq!(states, expected_sorted);
    assert!(!cx.over_approximated);
    assert_eq!(
        cx.explanation,
        format!(
            "read returned 6, but every order of the operations before it leaves one of {}",
            cx.states.join(" or ")
        )
    );
    assert!(
        r.keys[0].configurations <= 200,
        "visited {}",
        r.keys[0].configurations
    );
    // The shrink keeps the read and the two writes that make it stale.
    let shrunk = r.keys[0].shrunk.as_ref().expect("shrunk");
    assert!(shrunk.minimal);
    let kept: Vec<&str> = shrunk.ops.iter().map(|o| o.description.as_str()).collect();
    assert_eq!(kept, vec!["write 6", "write 7", "read returned 6"]);
}

/// Runs `f` with a budget that never runs out.
fn unbounded<R>(f: impl FnOnce(&search::Budget<'_>) -> R) -> R {
    use std::sync::atomic::{AtomicBool, AtomicUsize};
    let (used, cancel, stop) = (
        AtomicUsize::new(0),
        AtomicBool::new(false),
        AtomicBool::new(false),
    );
    f(&search::Budget {
        deadline: None,
        time_limit_text: String::new(),
        memory_used: &used,
        memory_limit: usize::MAX,
        resident: None,
        cancel: &cancel,
        stop: &stop,
    })
}

/// The split search's verdict on a one-key history: `Ok(true)` when
/// linearizable, else the stuck op (index into the decoded ops) and the
/// states there, described and sorted.
fn split_verdict<M: Model>(m: &M, hist: &History) -> Result<bool, (u32, Vec<String>)> {
    let mut values = Values::new();
    let (mut ops, mut spans) = (Vec::new(), Vec::new());
    for c in hist.calls().expect("well formed") {
        if let Some(op) = m.decode(&c, &mut values).expect("decodable") {
            ops.push(op);
            let ret = (c.outcome != Outcome::Info).then_some(c.complete).flatten();
            spans.push((c.invoke, ret));
        }
    }
    let p = search::Problem::new(ops, &spans);
    match unbounded(|b| split::search(m, &p, b, u64::MAX)) {
        Some(search::Found::Linearizable { .. }) => Ok(true),
        Some(search::Found::NotLinearizable { frontier, .. }) => {
            assert!(!frontier.more_states && !frontier.over_approximated);
            let mut states: Vec<String> = frontier
                .states
                .iter()
                .map(|s| m.describe_state(s, &values))
                .collect();
            states.sort();
            Err((frontier.stuck_op, states))
        }
        Some(search::Found::Unknown { reason, .. }) => panic!("unknown: {reason}"),
        None => panic!("the split search gave up"),
    }
}

/// The exact depth-first search's verdict, in the form of [`split_verdict`].
fn exact_verdict<M: Model>(m: &M, hist: &History) -> Result<bool, (u32, Vec<String>)> {
    let mut values = Values::new();
    let (mut ops, mut spans) = (Vec::new(), Vec::new());
    for c in hist.calls().expect("well formed") {
        if let Some(op) = m.decode(&c, &mut values).expect("decodable") {
            ops.push(op);
            let ret = (c.outcome != Outcome::Info).then_some(c.complete).flatten();
            spans.push((c.invoke, ret));
        }
    }
    let p = search::Problem::new(ops, &spans);
    let exact = search::Tactics {
        growth_pruning: false,
        max_configs: None,
    };
    match unbounded(|b| search::search(m, &p, b, 64, exact)) {
        search::Found::Linearizable { .. } => Ok(true),
        search::Found::NotLinearizable { frontier, .. } => {
            let mut states: Vec<String> = frontier
                .states
                .iter()
                .map(|s| m.describe_state(s, &values))
                .collect();
            states.sort();
            Err((frontier.stuck_op, states))
        }
        search::Found::Unknown { reason, .. } => panic!("unknown: {reason}"),
    }
}

/// The history without its cas calls (for the plain register).
fn without_cas(hist: &History) -> History {
    History::new(hist.ops.iter().filter(|o| o.f != "cas").cloned().collect())
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 600, ..Default::default() })]

    /// Differential: the split search's verdict is the exhaustive
    /// oracle's, and when invalid it stops at the op the exact
    /// depth-first search stops at, with the same states there, on small
    /// random register and cas-register histories with crashed ops and
    /// quiescent points (with one to four processes, most have some).
    #[test]
    fn split_search_agrees_with_the_oracle_and_the_exact_search(seed: u64, procs in 1u64..5, n in 1usize..18, cas: bool) {
        let hist = random_register_history(seed, procs, n);
        let (split, exact, oracle) = if cas {
            let m = CasRegister::default();
            (split_verdict(&m, &hist), exact_verdict(&m, &hist), brute::is_linearizable(&m, &hist))
        } else {
            let hist = without_cas(&hist);
            (split_verdict(&Register, &hist), exact_verdict(&Register, &hist), brute::is_linearizable(&Register, &hist))
        };
        proptest::prop_assert_eq!(split.is_ok(), oracle.expect("checkable"), "{:?}", hist);
        proptest::prop_assert_eq!(split, exact, "{:?}", hist);
    }
}

#[test]
fn split_rejects_a_stale_read_after_quiescent_points_no_crashed_op_explains() {
    // A crashed write of 5 pending throughout; writes of 1 and 2 one after
    // the other, each alone (quiescent points between), then a read of 1:
    // stale. At the read the register holds 2, or 5 if the crashed write
    // went after it.
    let hist = h("0 invoke write 5\n0 info write 5\n\
                  1 invoke write 1\n1 ok write 1\n\
                  1 invoke write 2\n1 ok write 2\n\
                  2 invoke read\n2 ok read 1");
    let verdict = split_verdict(&Register, &hist);
    assert_eq!(verdict, Err((3, vec!["2".to_string(), "5".to_string()])));
    assert_eq!(verdict, exact_verdict(&Register, &hist));
}

#[test]
fn split_accepts_a_read_explained_by_a_crashed_write_called_in_an_earlier_segment() {
    // The crashed write of 3 is called before the write of 1, in the
    // segment before the read's: it may take effect after the write of 1,
    // in the read's segment, and explains the read of 3.
    let crashed = "0 invoke write 3\n0 info write 3\n";
    let rest = "1 invoke write 1\n1 ok write 1\n2 invoke read\n2 ok read 3";
    assert_eq!(
        split_verdict(&Register, &h(&format!("{crashed}{rest}"))),
        Ok(true)
    );
    // Without it, nothing explains the read: it sees 1.
    assert_eq!(
        split_verdict(&Register, &h(rest)),
        Err((1, vec!["1".to_string()]))
    );
}

#[test]
fn split_uses_each_crashed_op_once_and_a_write_stands_in_for_a_cas() {
    // A crashed write of 3 and a crashed cas from 1 to 3, then rounds of
    // a write of 1 and a read of 3, one after the other: each read needs
    // one of the two crashed ops, so two rounds hold and three do not.
    let crashed = "0 invoke write 3\n0 info write 3\n1 invoke cas [1, 3]\n1 info cas [1, 3]\n";
    let round = "2 invoke write 1\n2 ok write 1\n2 invoke read\n2 ok read 3\n";
    let m = CasRegister::default();
    let two = h(&format!("{crashed}{round}{round}"));
    assert_eq!(split_verdict(&m, &two), Ok(true));
    let three = h(&format!("{crashed}{round}{round}{round}"));
    assert_eq!(split_verdict(&m, &three), Err((7, vec!["1".to_string()])));
    assert_eq!(split_verdict(&m, &three), exact_verdict(&m, &three));
    // Having used the cas dominates having used the write: the write is
    // kept, and it can do whatever the cas could.
    let p = problem_of(&m, &two);
    let classes = split::Classes::new(&m, &p);
    let (write, cas) = (classes.of_op[0], classes.of_op[1]);
    let used_cas: split::Used = smallvec::smallvec![(cas, 1)];
    let used_write: split::Used = smallvec::smallvec![(write, 1)];
    assert!(classes.dominates(&used_cas, &used_write));
    assert!(!classes.dominates(&used_write, &used_cas));
}

/// A cas-register history like the bench's single-key ones: `procs`
/// processes, each op taking effect inside its interval, one in a hundred
/// crashed (half of those taking effect later), values 0 to 4, and one
/// completed write a tenth of the way in writing 77; then the completed
/// read nearest the middle forged to return 77: stale, and no crashed op
/// writes 77.
fn forged_stale_history(n: usize, procs: u64, seed: u64) -> History {
    let mut x = seed;
    let mut below = move |m: u64| {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % m
    };
    // (process, f, input, output, kind, call, return, effect)
    type Planned = (
        u64,
        &'static str,
        serde_json::Value,
        serde_json::Value,
        OpType,
        u64,
        u64,
        Option<u64>,
    );
    let mut plan: Vec<Planned> = Vec::new();
    let mut clock = vec![0u64; procs as usize];
    let mut ids: Vec<u64> = (0..procs).collect();
    let mut fresh = false;
    for i in 0..n {
        let slot = below(procs) as usize;
        let call = clock[slot] + 1 + below(1000) * procs + slot as u64;
        let ret = call + 2 + below(5000) * procs;
        let crashed = below(100) == 0;
        let effect = if crashed {
            (below(2) == 0).then(|| call + 1 + below(20_000))
        } else {
            Some(call + 1 + below(ret - call - 1))
        };
        let (f, input) = match below(10) {
            0..=4 => ("read", json!(null)),
            5..=7 if !crashed && !fresh && i >= n / 10 => {
                fresh = true;
                ("write", json!(77))
            }
            5..=7 => ("write", json!(below(5))),
            _ => ("cas", json!([below(5), below(5)])),
        };
        let kind = if crashed { OpType::Info } else { OpType::Ok };
        plan.push((ids[slot], f, input, json!(null), kind, call, ret, effect));
        clock[slot] = ret;
        if crashed {
            ids[slot] += procs;
        }
    }
    let mut order: Vec<usize> = (0..plan.len()).filter(|&i| plan[i].7.is_some()).collect();
    order.sort_by_key(|&i| plan[i].7);
    let mut register = json!(null);
    for i in order {
        let p = &mut plan[i];
        match p.1 {
            "read" => p.3 = register.clone(),
            "write" => register = p.2.clone(),
            _ if register == p.2[0] => register = p.2[1].clone(),
            _ if p.4 == OpType::Ok => p.4 = OpType::Fail,
            _ => {}
        }
    }
    let mut events: Vec<(u64, usize, bool)> = Vec::new();
    for (i, p) in plan.iter().enumerate() {
        events.push((p.5, i, false));
        events.push((p.6, i, true));
    }
    events.sort_unstable();
    let mut ops: Vec<Op> = events
        .into_iter()
        .map(|(_, i, done)| {
            let p = &plan[i];
            let (kind, value) = match (done, p.1) {
                (false, _) => (OpType::Invoke, p.2.clone()),
                (true, "read") => (p.4, p.3.clone()),
                (true, _) => (p.4, p.2.clone()),
            };
            Op::new(0, Process::Client(p.0), kind, p.1, value)
        })
        .collect();
    let reads: Vec<usize> = (0..ops.len())
        .filter(|&i| ops[i].kind == OpType::Ok && ops[i].f == "read")
        .collect();
    let middle = reads[reads.len() / 2];
    ops[middle].value = json!(77);
    History::new(ops)
}

#[test]
fn a_stale_read_in_the_middle_of_a_long_history_is_found_by_the_split_search() {
    // The depth-first search reaches the read at once and then walks
    // orders of everything before it; once it stalls it hands the history
    // to the split search, which finds the read at its return. Only the
    // split search leaves no final paths without over-approximating.
    let hist = forged_stale_history(10_000, 3, 7);
    let opts = LinearOptions {
        shrink_time: Duration::ZERO,
        time_limit: Some(Duration::from_secs(120)),
        ..LinearOptions::default()
    };
    let r = check(&CasRegister::default(), &hist, &opts).expect("checkable");
    assert_eq!(r.validity, Validity::Invalid, "{:?}", r.keys[0].reason);
    let cx = r.keys[0].counterexample.as_ref().expect("counterexample");
    assert_eq!(cx.op.description, "read returned 77");
    assert!(!cx.over_approximated);
    assert!(cx.final_paths.is_empty());
    assert!(!cx.states.is_empty() && !cx.states.contains(&"77".to_string()));
    assert_eq!(
        cx.explanation,
        format!(
            "read returned 77, but every order of the operations before it leaves {}{}",
            if cx.states.len() > 1 { "one of " } else { "" },
            cx.states.join(" or ")
        )
    );
}

/// `hist` with the calls the shrink kept (`kept`, by invoke index) as they
/// were, and every other call put back as one that may or may not have
/// happened: a write or a cas that succeeded or crashed as a crashed one
/// (on a process of its own), a read or a failed cas not at all (they
/// change nothing). Not linearizable when the kept calls are a failure
/// the history itself has, whatever the others did.
fn kept_with_the_rest_optional(hist: &History, kept: &[usize]) -> History {
    let calls = hist.calls().expect("pairs");
    let mut events: Vec<(usize, Op)> = Vec::new();
    for (n, c) in calls.iter().enumerate() {
        if kept.contains(&c.invoke) {
            events.push((c.invoke, hist.ops[c.invoke].clone()));
            if let Some(e) = c.complete {
                events.push((e, hist.ops[e].clone()));
            }
            continue;
        }
        let changes = c.f != "read" && c.outcome != crate::history::Outcome::Fail;
        if changes {
            let mut invoke = hist.ops[c.invoke].clone();
            invoke.process = Process::Client(10_000 + n as u64);
            let mut crashed = invoke.clone();
            crashed.kind = OpType::Info;
            events.push((c.invoke, invoke));
            events.push((usize::MAX - n, crashed));
        }
    }
    events.sort_by_key(|(at, _)| *at);
    History::new(events.into_iter().map(|(_, op)| op).collect())
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 400, ..Default::default() })]

    /// Soundness of the shrink: the smallest failing sub-history is a
    /// failure the history has. With every call it left out put back as
    /// optional (the exhaustive oracle decides), it is still not
    /// linearizable: no call that went could have explained what a kept
    /// call saw.
    #[test]
    fn a_shrunk_sub_history_fails_whatever_the_calls_left_out_did(seed: u64, procs in 1u64..6, n in 1usize..34) {
        let hist = random_register_history(seed, procs, n);
        let m = CasRegister::default();
        let opts = LinearOptions { shrink_time: Duration::from_secs(20), ..LinearOptions::default() };
        let r = check(&m, &hist, &opts).expect("checkable");
        if r.validity == Validity::Invalid {
            let shrunk = r.keys[0].shrunk.as_ref().expect("shrunk");
            let kept: Vec<usize> = shrunk.ops.iter().map(|o| o.invoke_index).collect();
            let with_rest = kept_with_the_rest_optional(&hist, &kept);
            proptest::prop_assert!(
                !brute::is_linearizable(&m, &with_rest).expect("checkable"),
                "shrunk to {:?}, linearizable with the rest optional: {:?}", shrunk.ops, with_rest
            );
        }
    }
}
