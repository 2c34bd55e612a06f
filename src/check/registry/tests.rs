use super::*;
use crate::history::{Op, OpType, Process};
use serde_json::json;

fn op(p: u64, kind: OpType, f: &str, value: Value, time: u64) -> Op {
    let mut o = Op::new(0, Process::Client(p), kind, f, value);
    o.time = Some(time);
    o
}

/// A stale read of a register: write 1, then read 0 after the write ended.
fn stale_register() -> History {
    History::new(vec![
        op(0, OpType::Invoke, "write", json!(1), 0),
        op(0, OpType::Ok, "write", json!(1), 1_000_000),
        op(1, OpType::Invoke, "read", Value::Null, 2_000_000),
        op(1, OpType::Ok, "read", json!(0), 5_000_000),
    ])
}

fn ctx(model: &str) -> CheckContext {
    CheckContext::new(Some(model.to_string()), 1 << 30)
}

#[test]
fn every_name_is_one_checker_and_the_names_are_unique() {
    let names = names();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), names.len(), "{names:?}");
    for n in &names {
        assert_eq!(by_name(n).map(|c| c.name()), Some(*n));
    }
    assert!(by_name("nonsense").is_none());
}

#[test]
fn check_models_pick_their_checker() {
    assert_eq!(for_model(Some("bank")).name(), "bank");
    assert_eq!(for_model(Some("queue")).name(), "queue");
    assert_eq!(for_model(Some("list-append")).name(), "txn");
    assert_eq!(for_model(Some("rw-register")).name(), "txn");
    assert_eq!(for_model(Some("cas-register")).name(), "linearizable");
    assert_eq!(for_model(None).name(), "linearizable");
}

#[test]
fn check_all_keeps_the_results_shape_and_merges_verdicts() {
    let names: Vec<String> = ["linearizable", "stats", "perf", "timeline"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let (v, results, lines) = check_all(&stale_register(), &names, &ctx("register"));
    assert_eq!(v, Validity::Invalid);
    assert_eq!(results["valid"], json!("invalid"));
    let lin = &results["checkers"]["linearizable"];
    assert_eq!(lin["valid"], json!("invalid"));
    assert_eq!(lin["ops"], json!(2));
    assert_eq!(results["checkers"]["stats"]["valid"], json!("valid"));
    assert_eq!(results["checkers"]["stats"]["ok"], json!(2));
    assert!(
        lines[0].starts_with("linearizable: invalid — 2 ops, 1 keys, 1 not valid: read returned 0"),
        "{lines:?}"
    );
    assert_eq!(lines[1], "stats: valid — 2 ok, 0 fail, 0 info");
}

#[test]
fn an_unknown_name_or_model_is_unknown_with_the_reason() {
    let names = vec!["lineariz".to_string(), "txn".to_string()];
    let (v, results, lines) = check_all(&stale_register(), &names, &ctx("register"));
    assert_eq!(v, Validity::Unknown);
    assert_eq!(
        results["checkers"]["lineariz"]["error"],
        json!("unknown checker lineariz")
    );
    assert_eq!(lines[0], "lineariz: unknown — unknown checker lineariz");
    assert_eq!(
        lines[1],
        "txn: unknown — cannot check: the txn checker takes list-append or rw-register, not register"
    );
}

#[test]
fn perf_gives_latency_quantiles_per_function() {
    let v = by_name("perf")
        .expect("perf")
        .check(&stale_register(), &ctx("register"))
        .expect("checks");
    assert_eq!(v.validity, Validity::Valid);
    assert_eq!(v.details["latency"]["count"], json!(2));
    assert_eq!(v.details["per_f"]["write"]["ms"]["max"], json!(1.0));
    assert_eq!(v.details["per_f"]["read"]["ms"]["p50"], json!(3.0));
    assert_eq!(
        v.explanation,
        "2 ok operations timed: latency 1.0 ms median, 3.0 ms at the 99th percentile, 3.0 ms at most"
    );
}

#[test]
fn timeline_says_what_the_history_covers() {
    let mut h = stale_register();
    h.ops.push(Op::new(
        4,
        Process::Nemesis,
        OpType::Info,
        "start-partition",
        Value::Null,
    ));
    let v = by_name("timeline")
        .expect("timeline")
        .check(&h, &ctx("register"))
        .expect("checks");
    assert_eq!(v.validity, Validity::Valid);
    assert_eq!(
        v.explanation,
        "2 operations by 2 processes and 1 nemesis event over 0.0 s"
    );
    assert_eq!(v.details["processes"], json!(2));
}

#[test]
fn a_guessed_model_or_a_bad_history_is_said() {
    let lin = by_name("linearizable").expect("linearizable");
    let none = CheckContext::new(None, 1 << 30);
    let v = lin.check(&stale_register(), &none).expect("guessed");
    assert_eq!(v.validity, Validity::Invalid);
    assert!(
        v.text.heading.starts_with("cas-register, 2 ops, 1 key, "),
        "{:?}",
        v.text
    );
    let odd = History::new(vec![op(0, OpType::Invoke, "frob", Value::Null, 0)]);
    let e = lin.check(&odd, &none).expect_err("no model fits frob");
    assert_eq!(
        e.0,
        "cannot guess the model from the functions frob; name it with --model"
    );
    let bad = History::new(vec![op(0, OpType::Ok, "read", json!(1), 0)]);
    assert!(by_name("counter")
        .expect("counter")
        .check(&bad, &ctx("counter"))
        .is_err());
}

/// The guessed checker and model of a history, or the refusal.
fn guessed(ops: Vec<Op>) -> Result<(String, String, String), CannotCheck> {
    let calls = History::new(ops).calls().expect("pairs");
    guess(&calls).map(|g| (g.checker.name().to_string(), g.model, g.why))
}

fn call(p: u64, f: &str, input: Value, kind: OpType, output: Value) -> Vec<Op> {
    vec![
        op(p, OpType::Invoke, f, input, 0),
        op(p, kind, f, output, 1),
    ]
}

#[test]
fn classic_and_transactional_workloads_are_guessed_from_functions_and_values() {
    // A counter reads numbers; with the same functions, a set reads its
    // elements.
    let counter = [
        call(0, "add", json!(2), OpType::Ok, json!(2)),
        call(1, "read", Value::Null, OpType::Ok, json!(2)),
    ]
    .concat();
    assert_eq!(
        guessed(counter).expect("guessed"),
        (
            "counter".into(),
            "counter".into(),
            "the functions add, read, reads returning numbers".into()
        )
    );
    let set = [
        call(0, "add", json!(2), OpType::Ok, json!(2)),
        call(1, "read", Value::Null, OpType::Ok, json!([2])),
    ]
    .concat();
    assert_eq!(guessed(set).expect("guessed").1, "set");
    // Jepsen's long-fork: `read` and `write` of micro-operations.
    let long_fork = [
        call(
            0,
            "write",
            json!([["w", 1, 1]]),
            OpType::Ok,
            json!([["w", 1, 1]]),
        ),
        call(
            1,
            "read",
            json!([["r", 1, null], ["r", 2, null]]),
            OpType::Ok,
            json!([["r", 1, 1], ["r", 2, null]]),
        ),
    ]
    .concat();
    let (checker, model, why) = guessed(long_fork).expect("guessed");
    assert_eq!(
        (checker.as_str(), model.as_str()),
        ("long-fork", "long-fork")
    );
    assert_eq!(
        why,
        "read and write transactions of micro-ops r, w, as Jepsen's long-fork writes them"
    );
    // Elle's transactions, by their micro-operations.
    let append = call(
        0,
        "txn",
        json!([["append", "x", 1], ["r", "y", null]]),
        OpType::Ok,
        json!([["append", "x", 1], ["r", "y", [1]]]),
    );
    assert_eq!(guessed(append).expect("guessed").0, "txn");
    let rw = call(
        0,
        "txn",
        json!([["w", "x", 1]]),
        OpType::Ok,
        json!([["w", "x", 1]]),
    );
    assert_eq!(guessed(rw.clone()).expect("guessed").1, "rw-register");
    // Elle's histories may hold empty transactions among the others.
    let with_empty = [call(1, "txn", json!([]), OpType::Ok, json!([])), rw].concat();
    assert_eq!(guessed(with_empty).expect("guessed").1, "rw-register");
    let knossos = call(
        0,
        "txn",
        json!([["write", "x", 1]]),
        OpType::Ok,
        json!([["write", "x", 1]]),
    );
    assert_eq!(
        guessed(knossos).expect_err("no model reads write micro-ops").0,
        "cannot guess the model of transactions of micro-ops write: list-append reads r and append, rw-register r and w; name it with --model"
    );
    let ids = call(0, "generate", Value::Null, OpType::Ok, json!(7));
    assert_eq!(guessed(ids).expect("guessed").1, "unique-ids");
    let bank = call(
        0,
        "transfer",
        json!({"from": 0, "to": 1, "amount": 1}),
        OpType::Ok,
        json!({"from": 0, "to": 1, "amount": 1}),
    );
    assert_eq!(guessed(bank).expect("guessed").1, "bank");
    let reads = call(0, "read", Value::Null, OpType::Ok, json!(0));
    assert_eq!(
        guessed(reads).expect_err("reads alone").0,
        "cannot guess the model: every operation is a read, and nothing says what was read (a register starting at nil, a counter at 0, ...); name it with --model"
    );
    let queue = [
        call(0, "enqueue", json!(1), OpType::Ok, json!(1)),
        call(1, "drain", Value::Null, OpType::Ok, json!([1])),
    ]
    .concat();
    assert_eq!(guessed(queue).expect("guessed").1, "queue");
}

#[test]
fn a_history_whose_reads_or_writes_fail_reads_a_failed_cas_as_never_run() {
    // The register holds 1 when the cas from 1 fails: a mismatch it
    // cannot have seen. Where a write failed too, fail means refused, so
    // the cas never ran and the history is valid; where nothing else
    // failed, the cas observed a mismatch, which is invalid.
    let base = [
        call(0, "write", json!(1), OpType::Ok, json!(1)),
        call(0, "cas", json!([1, 2]), OpType::Fail, json!([1, 2])),
        call(0, "read", Value::Null, OpType::Ok, json!(1)),
    ]
    .concat();
    let mut refused = base.clone();
    refused.extend(call(1, "write", json!(3), OpType::Fail, json!(3)));
    let run = |ops: Vec<Op>| {
        let h = History::new(ops);
        let g = guess(&h.calls().expect("pairs")).expect("guessed");
        let v = g
            .checker
            .check(&h, &CheckContext::new(Some(g.model.clone()), 1 << 30))
            .expect("checks");
        (g.model, g.why, v.validity, v.explanation)
    };
    let (model, why, validity, explanation) = run(base);
    assert_eq!(
        (model.as_str(), validity),
        ("cas-register", Validity::Invalid)
    );
    assert!(
        explanation.ends_with("cas from 1 failed (found another value), but every order of the operations before it leaves 1"),
        "{explanation}"
    );
    assert_eq!(why, "the functions cas, read, write");
    let (model, why, validity, _) = run(refused);
    assert_eq!(
        (model.as_str(), validity),
        ("cas-register-knossos", Validity::Valid)
    );
    assert_eq!(
        why,
        "the functions cas, read, write; a failed write found no other value, so here fail means refused, and a failed cas is read as never run (Knossos' reading)"
    );
}
