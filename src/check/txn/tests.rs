//! Unit tests of the transactional checker: one minimal history per
//! anomaly, asserting the verdict, the anomaly's name and its explanation.
//! Each history is one event per line: `process type [micro-ops as JSON]`.

use super::*;
use crate::history::{Op, OpType};
use serde_json::json;
use std::path::Path;

/// Builds a history from lines `process type json-value`.
pub(super) fn h(text: &str) -> History {
    let ops = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let mut words = l.splitn(3, ' ');
            let process =
                Process::Client(words.next().and_then(|w| w.parse().ok()).expect("process"));
            let kind = words.next().and_then(OpType::parse).expect("type");
            let value = words
                .next()
                .map(|v| serde_json::from_str(v).expect("value"))
                .unwrap_or(json!(null));
            Op::new(0, process, kind, "txn", value)
        })
        .collect();
    History::new(ops)
}

pub(super) fn run(workload: TxnKind, text: &str) -> TxnReport {
    check(&h(text), &TxnOptions::new(workload)).expect("checkable")
}

pub(super) fn la(text: &str) -> TxnReport {
    run(TxnKind::ListAppend, text)
}

pub(super) fn rw(text: &str) -> TxnReport {
    run(TxnKind::RwRegister, text)
}

/// The explanation of the first anomaly named `name`.
pub(super) fn explanation<'a>(r: &'a TxnReport, name: &str) -> &'a str {
    &r.anomalies
        .get(name)
        .unwrap_or_else(|| panic!("no {name} in {:?}", r.anomaly_types))[0]
        .explanation
}

#[test]
fn serial_list_append_is_valid_under_strict_serializability() {
    let r = la(r#"
        0 invoke [["append","x",1],["r","x",null]]
        0 ok [["append","x",1],["r","x",[1]]]
        1 invoke [["r","x",null],["append","x",2],["append","y",1]]
        1 ok [["r","x",[1]],["append","x",2],["append","y",1]]
        0 invoke [["r","x",null],["r","y",null]]
        0 ok [["r","x",[1,2]],["r","y",[1]]]
    "#);
    assert_eq!(r.validity, Validity::Valid, "{:?}", r.anomalies);
    assert!(r.anomaly_types.is_empty());
    assert!(r.not.is_empty());
    assert_eq!(r.still_possible[0], "strict-serializable");
    assert_eq!(r.txns, 3);
}

#[test]
fn g0_write_cycle() {
    let r = la(r#"
        0 invoke [["append","x",1],["append","y",1]]
        1 invoke [["append","x",2],["append","y",2]]
        0 ok [["append","x",1],["append","y",1]]
        1 ok [["append","x",2],["append","y",2]]
        2 invoke [["r","x",null],["r","y",null]]
        2 ok [["r","x",[1,2]],["r","y",[2,1]]]
    "#);
    assert_eq!(r.validity, Validity::Invalid);
    assert_eq!(r.anomaly_types, vec!["G0"]);
    assert_eq!(
        explanation(&r, "G0"),
        "T1 < T2 because T2 appended 2 to key x after T1 appended 1; \
         T2 < T1 because T1 appended 1 to key y after T2 appended 2: a contradiction"
    );
    let cycle = r.anomalies["G0"][0].cycle.as_ref().unwrap();
    assert_eq!(
        cycle.iter().map(|s| s.kind.as_str()).collect::<Vec<_>>(),
        vec!["ww", "ww"]
    );
    assert_eq!(r.not, vec!["read-uncommitted"]);
    assert!(r.also_not.contains(&"serializable".to_string()));
}

#[test]
fn g1a_aborted_read() {
    let r = la(r#"
        0 invoke [["append","x",1]]
        0 fail [["append","x",1]]
        1 invoke [["r","x",null]]
        1 ok [["r","x",[1]]]
    "#);
    assert_eq!(r.validity, Validity::Invalid);
    assert_eq!(r.anomaly_types, vec!["G1a"]);
    assert_eq!(
        explanation(&r, "G1a"),
        "T1 read key x = [1], including 1, which T2 appended; T2 failed, so T1 read an aborted write"
    );
    assert_eq!(r.anomalies["G1a"][0].txns[1].outcome, Outcome::Fail);
    assert_eq!(r.not, vec!["read-committed"]);
}

#[test]
fn info_writes_may_be_read() {
    // An indeterminate transaction may have committed: reading its append
    // is no aborted read.
    let r = la(r#"
        0 invoke [["append","x",1]]
        0 info [["append","x",1]]
        1 invoke [["r","x",null]]
        1 ok [["r","x",[1]]]
    "#);
    assert_eq!(r.validity, Validity::Valid, "{:?}", r.anomalies);
    assert!(r.anomaly_types.is_empty());
}

#[test]
fn g1b_intermediate_read() {
    let r = la(r#"
        0 invoke [["append","x",1],["append","x",2]]
        0 ok [["append","x",1],["append","x",2]]
        1 invoke [["r","x",null]]
        1 ok [["r","x",[1]]]
        2 invoke [["r","x",null]]
        2 ok [["r","x",[1,2]]]
    "#);
    assert_eq!(r.validity, Validity::Invalid);
    assert!(
        r.anomaly_types.contains(&"G1b".to_string()),
        "{:?}",
        r.anomaly_types
    );
    assert_eq!(
        explanation(&r, "G1b"),
        "T1 read key x = [1], ending in 1, which T2 appended, but T2 appended more to key x afterwards: \
         T1 read an intermediate state"
    );
    assert!(r.not.contains(&"read-committed".to_string()));
}

#[test]
fn g1c_circular_information_flow() {
    let r = la(r#"
        0 invoke [["append","x",1],["r","y",null]]
        1 invoke [["append","y",1],["r","x",null]]
        0 ok [["append","x",1],["r","y",[1]]]
        1 ok [["append","y",1],["r","x",[1]]]
    "#);
    assert_eq!(r.validity, Validity::Invalid);
    assert_eq!(r.anomaly_types, vec!["G1c"]);
    assert_eq!(
        explanation(&r, "G1c"),
        "T1 < T2 because T2 read key x after T1 appended 1 to it; \
         T2 < T1 because T1 read key y after T2 appended 1 to it: a contradiction"
    );
    assert_eq!(r.not, vec!["read-committed"]);
}

#[test]
fn g_single_read_skew() {
    let r = la(r#"
        0 invoke [["r","x",null],["r","y",null]]
        1 invoke [["append","x",1],["append","y",1]]
        1 ok [["append","x",1],["append","y",1]]
        0 ok [["r","x",[]],["r","y",[1]]]
    "#);
    assert_eq!(r.validity, Validity::Invalid);
    assert_eq!(r.anomaly_types, vec!["G-single"]);
    assert_eq!(
        explanation(&r, "G-single"),
        "T1 < T2 because T1 read key x (an empty list) before T2 appended 1 to it; \
         T2 < T1 because T1 read key y after T2 appended 1 to it: a contradiction"
    );
    assert_eq!(r.counts["G-single"], 1);
    // Elle counts G-single on items as G2-item too: it rules out both.
    assert_eq!(r.not, vec!["snapshot-isolation", "repeatable-read"]);
    assert!(r.also_not.contains(&"serializable".to_string()));
    assert!(r.still_possible.contains(&"cursor-stability".to_string()));
    assert!(r.still_possible.contains(&"read-committed".to_string()));
}

#[test]
fn g2_item_write_skew_rules_out_repeatable_read_but_not_snapshot_isolation() {
    let r = la(r#"
        0 invoke [["r","x",null],["append","y",1]]
        1 invoke [["r","y",null],["append","x",2]]
        0 ok [["r","x",[]],["append","y",1]]
        1 ok [["r","y",[]],["append","x",2]]
    "#);
    assert_eq!(r.validity, Validity::Invalid);
    assert_eq!(r.anomaly_types, vec!["G2-item"]);
    assert_eq!(
        explanation(&r, "G2-item"),
        "T1 < T2 because T1 read key x (an empty list) before T2 appended 2 to it; \
         T2 < T1 because T2 read key y (an empty list) before T1 appended 1 to it: a contradiction"
    );
    assert_eq!(r.not, vec!["repeatable-read"]);
    assert!(r.still_possible.contains(&"snapshot-isolation".to_string()));
    let si = TxnOptions {
        consistency_models: vec!["snapshot-isolation".into()],
        ..TxnOptions::new(TxnKind::ListAppend)
    };
    let r = check(
        &h(r#"
        0 invoke [["r","x",null],["append","y",1]]
        1 invoke [["r","y",null],["append","x",2]]
        0 ok [["r","x",[]],["append","y",1]]
        1 ok [["r","y",[]],["append","x",2]]
    "#),
        &si,
    )
    .unwrap();
    assert_eq!(
        r.validity,
        Validity::Valid,
        "write skew is allowed under snapshot isolation"
    );
}

#[test]
fn internal_inconsistency() {
    let r = la(r#"
        0 invoke [["append","x",1],["r","x",null]]
        0 ok [["append","x",1],["r","x",[]]]
    "#);
    assert_eq!(r.validity, Validity::Invalid);
    assert_eq!(r.anomaly_types, vec!["internal"]);
    assert_eq!(
        explanation(&r, "internal"),
        "T1 read key x = [], but its own earlier operations imply a list ending in [1]"
    );
    assert_eq!(r.not, vec!["snapshot-isolation"]);
    assert!(r.also_not.contains(&"serializable".to_string()));
    assert!(r.still_possible.contains(&"repeatable-read".to_string()));
}

#[test]
fn duplicate_elements() {
    let r = la(r#"
        0 invoke [["append","x",1]]
        0 ok [["append","x",1]]
        1 invoke [["r","x",null]]
        1 ok [["r","x",[1,1]]]
    "#);
    assert_eq!(r.validity, Validity::Invalid);
    assert!(
        r.anomaly_types.contains(&"duplicate-elements".to_string()),
        "{:?}",
        r.anomaly_types
    );
    assert_eq!(
        explanation(&r, "duplicate-elements"),
        "T1 read key x = [1 1], in which 1 appears twice (positions 0 and 1); every appended value is unique"
    );
    assert_eq!(r.not, vec!["read-uncommitted"]);
}

#[test]
fn incompatible_order() {
    let r = la(r#"
        0 invoke [["append","x",1]]
        1 invoke [["append","x",2]]
        0 ok [["append","x",1]]
        1 ok [["append","x",2]]
        2 invoke [["r","x",null]]
        2 ok [["r","x",[1]]]
        3 invoke [["r","x",null]]
        3 ok [["r","x",[2]]]
    "#);
    assert_eq!(r.validity, Validity::Invalid);
    assert!(
        r.anomaly_types.contains(&"incompatible-order".to_string()),
        "{:?}",
        r.anomaly_types
    );
    assert_eq!(
        explanation(&r, "incompatible-order"),
        "T1 read key x = [2] and T2 read key x = [1]: neither is a prefix of the other, \
         so no single order of appends explains both"
    );
    assert!(r.not.contains(&"read-committed".to_string()));
}

#[test]
fn dirty_update() {
    let r = la(r#"
        0 invoke [["append","x",1]]
        0 fail [["append","x",1]]
        1 invoke [["append","x",2]]
        1 ok [["append","x",2]]
        2 invoke [["r","x",null]]
        2 ok [["r","x",[1,2]]]
    "#);
    assert_eq!(r.validity, Validity::Invalid);
    assert_eq!(r.anomaly_types, vec!["G1a", "dirty-update"]);
    assert_eq!(
        explanation(&r, "dirty-update"),
        "key x = [1 2] holds 1, appended by T1, which failed, and after it 2, appended by T2: \
         T2 updated a state only an aborted transaction produced"
    );
}

#[test]
fn lost_update() {
    let r = la(r#"
        0 invoke [["r","x",null],["append","x",1]]
        1 invoke [["r","x",null],["append","x",2]]
        0 ok [["r","x",[]],["append","x",1]]
        1 ok [["r","x",[]],["append","x",2]]
        2 invoke [["r","x",null]]
        2 ok [["r","x",[1,2]]]
    "#);
    assert_eq!(r.validity, Validity::Invalid);
    assert!(
        r.anomaly_types.contains(&"lost-update".to_string()),
        "{:?}",
        r.anomaly_types
    );
    assert_eq!(
        explanation(&r, "lost-update"),
        "T1, T2 all read key x = [] and then appended to it: each update was made without seeing the others, \
         so all but one are lost"
    );
    // The same history is a G-single cycle: T2 missed T1's append.
    assert!(r.anomaly_types.contains(&"G-single".to_string()));
    assert!(r.not.contains(&"cursor-stability".to_string()));
}

#[test]
fn stale_read_is_g_single_realtime_only() {
    // T1 commits before T2 starts, yet T2 does not see it.
    let text = r#"
        0 invoke [["append","x",1]]
        0 ok [["append","x",1]]
        1 invoke [["r","x",null]]
        1 ok [["r","x",[]]]
    "#;
    let r = la(text);
    assert_eq!(r.validity, Validity::Invalid);
    assert_eq!(r.anomaly_types, vec!["G-single-realtime"]);
    assert_eq!(
        explanation(&r, "G-single-realtime"),
        "T1 < T2 because T1 completed (event 1) before T2 was invoked (event 2); \
         T2 < T1 because T2 read key x (an empty list) before T1 appended 1 to it: a contradiction"
    );
    assert_eq!(r.not, vec!["strong-snapshot-isolation"]);
    assert_eq!(r.also_not, vec!["strict-serializable"]);
    let ser = TxnOptions {
        consistency_models: vec!["serializable".into()],
        ..TxnOptions::new(TxnKind::ListAppend)
    };
    assert_eq!(check(&h(text), &ser).unwrap().validity, Validity::Valid);
}

#[test]
fn same_process_stale_read_is_g_single_process() {
    let r = la(r#"
        0 invoke [["append","x",1]]
        0 ok [["append","x",1]]
        0 invoke [["r","x",null]]
        0 ok [["r","x",[]]]
    "#);
    assert_eq!(r.validity, Validity::Invalid);
    assert_eq!(
        r.anomaly_types,
        vec!["G-single-process", "G-single-realtime"]
    );
    assert_eq!(
        explanation(&r, "G-single-process"),
        "T1 < T2 because process 0 ran T1 before T2; \
         T2 < T1 because T2 read key x (an empty list) before T1 appended 1 to it: a contradiction"
    );
    assert!(r
        .not
        .contains(&"strong-session-snapshot-isolation".to_string()));
}

#[test]
fn g0_realtime() {
    // T2 starts after T1 committed, yet T2's append sits before T1's.
    let r = la(r#"
        0 invoke [["append","x",1]]
        0 ok [["append","x",1]]
        1 invoke [["append","x",2]]
        1 ok [["append","x",2]]
        2 invoke [["r","x",null]]
        2 ok [["r","x",[2,1]]]
    "#);
    assert_eq!(r.validity, Validity::Invalid);
    assert!(
        r.anomaly_types.contains(&"G0-realtime".to_string()),
        "{:?}",
        r.anomaly_types
    );
    assert_eq!(
        explanation(&r, "G0-realtime"),
        "T1 < T2 because T1 completed (event 1) before T2 was invoked (event 2); \
         T2 < T1 because T1 appended 1 to key x after T2 appended 2: a contradiction"
    );
    assert_eq!(r.not, vec!["strong-read-uncommitted"]);
}

#[test]
fn budgets_give_unknown_with_a_reason() {
    let text = r#"
        0 invoke [["r","x",null],["append","y",1]]
        1 invoke [["r","y",null],["append","x",2]]
        0 ok [["r","x",[]],["append","y",1]]
        1 ok [["r","y",[]],["append","x",2]]
    "#;
    let opts = TxnOptions {
        max_search_steps: 0,
        ..TxnOptions::new(TxnKind::ListAppend)
    };
    let r = check(&h(text), &opts).unwrap();
    assert_eq!(r.validity, Validity::Unknown);
    assert_eq!(
        r.reason.as_deref(),
        Some(
            "the cycle search for G-single, G2-item was cut short (budget of 0 steps per class, \
             64 start edges per component); cycles of those classes may have been missed"
        )
    );
    // One step per class still finds the write skew: a budget cuts
    // searches short but never invents or hides a verdict.
    let opts = TxnOptions {
        max_search_steps: 1,
        ..TxnOptions::new(TxnKind::ListAppend)
    };
    let r = check(&h(text), &opts).unwrap();
    assert_eq!(r.validity, Validity::Invalid);
    assert_eq!(r.anomaly_types, vec!["G2-item"]);

    let opts = TxnOptions {
        time_limit: Some(Duration::ZERO),
        ..TxnOptions::new(TxnKind::ListAppend)
    };
    let r = check(&h(text), &opts).unwrap();
    assert_eq!(r.validity, Validity::Unknown);
    assert!(
        r.reason
            .as_deref()
            .unwrap_or("")
            .contains("(time limit 0ns)"),
        "{:?}",
        r.reason
    );

    let opts = TxnOptions {
        max_txns: 1,
        ..TxnOptions::new(TxnKind::ListAppend)
    };
    let r = check(&h(text), &opts).unwrap();
    assert_eq!(r.validity, Validity::Unknown);
    assert_eq!(
        r.reason.as_deref(),
        Some("2 transactions exceed the limit of 1")
    );

    let r = la("0 invoke [[\"append\",\"x\",1]]\n0 fail [[\"append\",\"x\",1]]");
    assert_eq!(r.validity, Validity::Unknown);
    assert_eq!(
        r.reason.as_deref(),
        Some("no transaction committed: there is nothing to check")
    );
}

#[test]
fn bad_input_is_an_error_not_a_verdict() {
    let e = check(
        &h("0 invoke [[\"w\",\"x\",1]]\n0 ok [[\"w\",\"x\",1]]"),
        &TxnOptions::new(TxnKind::ListAppend),
    )
    .unwrap_err();
    assert!(e.to_string().contains("unknown micro-operation"), "{e}");
    let e = check(
        &h("0 invoke 5\n0 ok 5"),
        &TxnOptions::new(TxnKind::ListAppend),
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("must be a list of micro-operations"),
        "{e}"
    );
    let e = check(
        &h("0 invoke [[\"append\",\"x\",1]]\n0 ok [[\"append\",\"x\",1]]\n1 invoke [[\"append\",\"x\",1]]\n1 ok [[\"append\",\"x\",1]]"),
        &TxnOptions::new(TxnKind::ListAppend),
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("value 1 is written to key x twice"),
        "{e}"
    );
    let opts = TxnOptions {
        consistency_models: vec!["snapshot".into()],
        ..TxnOptions::new(TxnKind::ListAppend)
    };
    let e = check(&h("0 invoke []\n0 ok []"), &opts).unwrap_err();
    assert!(
        e.to_string()
            .contains("unknown consistency model \"snapshot\""),
        "{e}"
    );
}

#[test]
fn edn_keywords_read_as_strings() {
    // Jepsen EDN: `[:append 3 5]` arrives as ["append", 3, 5].
    let text = "{:type :invoke, :f :txn, :value [[:append 3 5] [:r 4 nil]], :process 0}\n\
                {:type :invoke, :f :txn, :value [[:append 4 1] [:r 3 nil]], :process 1}\n\
                {:type :ok, :f :txn, :value [[:append 3 5] [:r 4 [1]]], :process 0}\n\
                {:type :ok, :f :txn, :value [[:append 4 1] [:r 3 [5]]], :process 1}\n";
    let hist = crate::history::read_str(text, Path::new("h.edn"), None).expect("edn");
    let r = check(&hist, &TxnOptions::new(TxnKind::ListAppend)).unwrap();
    assert_eq!(r.validity, Validity::Invalid);
    assert_eq!(r.anomaly_types, vec!["G1c"]);
    assert_eq!(
        explanation(&r, "G1c"),
        "T1 < T2 because T2 read key 3 after T1 appended 5 to it; \
         T2 < T1 because T1 read key 4 after T2 appended 1 to it: a contradiction"
    );
}

#[test]
fn outputs_are_text_and_dot_files() {
    let r = la(r#"
        0 invoke [["append","x",1],["r","y",null]]
        1 invoke [["append","y",1],["r","x",null]]
        0 ok [["append","x",1],["r","y",[1]]]
        1 ok [["append","y",1],["r","x",[1]]]
    "#);
    let files = explanation_files(&r);
    let text = |path: &str| {
        files
            .iter()
            .find(|f| f.path == path)
            .map(|f| f.text.clone())
            .unwrap_or_default()
    };
    let txt = text("G1c.txt");
    assert!(txt.starts_with("Let:\n  T1 = process 0, ok, invoked at event 0, completed at 2: [append x 1] [r y [1]]\n"), "{txt}");
    assert!(
        txt.contains(
            "  - T2 < T1 because T1 read key y after T2 appended 1 to it: a contradiction.\n"
        ),
        "{txt}"
    );
    let dot = text("G1c/0.dot");
    assert!(dot.starts_with("digraph \"G1c\" {"), "{dot}");
    assert!(dot.contains("T1 -> T2 [label=\"wr x\""), "{dot}");
}

#[test]
fn lattice_rules_out_models_through_implications() {
    let si = models::proscribed_by("snapshot-isolation");
    assert!(si.contains("G-single") && si.contains("lost-update") && si.contains("G1a"));
    assert!(
        !si.contains("G2-item"),
        "write skew is allowed under snapshot isolation"
    );
    let rc = models::proscribed_by("read-committed");
    assert!(rc.contains("G1c") && rc.contains("G0") && rc.contains("dirty-update"));
    assert!(!rc.contains("G-single"));
    // Nothing found: nothing ruled out.
    assert_eq!(models::boundary(&[]), (vec![], vec![]));
    // A process-order cycle rules out only the session models.
    let (not, also) = models::boundary(&["G2-item-process"]);
    assert_eq!(not, vec!["strong-session-serializable"]);
    assert_eq!(also, vec!["strict-serializable"]);
    assert!(models::still_possible(&["G2-item-process"]).contains(&"serializable".to_string()));
}

#[test]
fn an_ok_completion_without_a_value_reads_nothing() {
    // The client lost the result: the read is unknown, not an empty list
    // (which would be a stale read of x).
    let r = la(r#"
        0 invoke [["append","x",1]]
        0 ok [["append","x",1]]
        1 invoke [["r","x",null]]
        1 ok null
    "#);
    assert_eq!(r.validity, Validity::Valid, "{:?}", r.anomalies);
    assert!(r.anomaly_types.is_empty());
}

#[test]
fn g1c_process_and_realtime() {
    // T3 is concurrent with both; process 0 runs T1 then T2, yet T1 saw
    // T3, which saw T2.
    let r = la(r#"
        1 invoke [["append","y",1],["r","x",null]]
        0 invoke [["r","y",null]]
        0 ok [["r","y",[1]]]
        0 invoke [["append","x",1]]
        0 ok [["append","x",1]]
        1 ok [["append","y",1],["r","x",[1]]]
    "#);
    assert_eq!(r.validity, Validity::Invalid);
    assert_eq!(r.anomaly_types, vec!["G1c-process", "G1c-realtime"]);
    assert_eq!(
        explanation(&r, "G1c-process"),
        "T1 < T2 because process 0 ran T1 before T2; \
         T2 < T3 because T3 read key x after T2 appended 1 to it; \
         T3 < T1 because T1 read key y after T3 appended 1 to it: a contradiction"
    );
    assert_eq!(r.not, vec!["strong-session-read-committed"]);
    assert!(r.still_possible.contains(&"serializable".to_string()));
}

#[test]
fn garbage_read() {
    let r = la(r#"
        0 invoke [["r","x",null]]
        0 ok [["r","x",[7]]]
    "#);
    assert_eq!(r.validity, Validity::Invalid);
    assert_eq!(r.anomaly_types, vec!["garbage-read"]);
    assert_eq!(
        explanation(&r, "garbage-read"),
        "T1 read key x = [7], but no transaction appended 7 to key x"
    );
    assert_eq!(r.not, vec!["read-uncommitted"]);
}

#[test]
fn g2_item_process() {
    // T3 runs alongside process 0's T1 and T2; each of T2 and T3 misses
    // the other's effects and T3 misses T1's.
    let r = la(r#"
        1 invoke [["r","w",null],["append","z",1]]
        0 invoke [["append","w",1]]
        0 ok [["append","w",1]]
        0 invoke [["r","z",null]]
        0 ok [["r","z",[]]]
        1 ok [["r","w",[]],["append","z",1]]
    "#);
    assert_eq!(r.validity, Validity::Invalid);
    assert_eq!(r.anomaly_types, vec!["G2-item-process", "G2-item-realtime"]);
    assert_eq!(
        explanation(&r, "G2-item-process"),
        "T1 < T2 because process 0 ran T1 before T2; \
         T2 < T3 because T2 read key z (an empty list) before T3 appended 1 to it; \
         T3 < T1 because T3 read key w (an empty list) before T1 appended 1 to it: a contradiction"
    );
    assert_eq!(r.not, vec!["strong-session-serializable"]);
    assert_eq!(r.also_not, vec!["strict-serializable"]);
}

#[test]
fn an_info_append_seen_only_in_a_read_out_of_order_still_proves_its_transaction_committed() {
    // T1 (info) appended 5 to x and 7 to y. The longest read of x is [1 2];
    // 5 shows up only in [5], which is no prefix of it. That read still
    // proves T1 committed, so its append to y came after the [] read of y:
    // T1 -wr-> T3 (x) and T3 -rw-> T1 (y), a G-single cycle.
    let r = la(r#"
        0 invoke [["append","x",5],["append","y",7]]
        1 invoke [["append","x",1],["append","x",2]]
        1 ok [["append","x",1],["append","x",2]]
        2 invoke [["r","x",null]]
        2 ok [["r","x",[1,2]]]
        3 invoke [["r","x",null],["r","y",null]]
        3 ok [["r","x",[5]],["r","y",[]]]
        0 info [["append","x",5],["append","y",7]]
    "#);
    assert_eq!(r.validity, Validity::Invalid);
    assert!(r.anomaly_types.iter().any(|a| a == "incompatible-order"));
    assert_eq!(
        explanation(&r, "G-single"),
        "T1 < T2 because T1 read key y (an empty list) before T2 appended 7 to it; T2 < T1 because T1 read key x after T2 appended 5 to it: a contradiction"
    );
}

#[test]
fn jepsens_read_and_write_functions_are_transactions() {
    // Jepsen's rw-register workload names write-only transactions
    // `write` and read-only ones `read`. Skipped, the write of 2 would be
    // unseen and each read of it a garbage read (invalid); as
    // transactions, the readers observed the writer: valid.
    let text = r#"
        0 invoke [["w","x",2]]
        0 ok [["w","x",2]]
        1 invoke [["r","x",null]]
        1 ok [["r","x",2]]
        2 invoke [["r","x",null],["w","y",1]]
        2 ok [["r","x",2],["w","y",1]]
    "#;
    let named = |f: &[&str]| {
        let mut hist = h(text);
        for (op, f) in hist.ops.iter_mut().zip(f.iter().flat_map(|f| [f, f])) {
            op.f = f.to_string();
        }
        hist
    };
    let opts = TxnOptions::new(TxnKind::RwRegister);
    let r = check(&named(&["write", "read", "txn"]), &opts).expect("checkable");
    assert_eq!(r.validity, Validity::Valid, "{:?}", r.anomaly_types);
    assert_eq!((r.txns, r.skipped_ops), (3, 0));
    // The same history through the streaming reader of files.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("wr.edn");
    std::fs::write(
        &path,
        "{:process 0, :type :invoke, :f :write, :value [[:w :x 2]]}
{:process 0, :type :ok, :f :write, :value [[:w :x 2]]}
{:process 1, :type :invoke, :f :read, :value [[:r :x nil]]}
{:process 1, :type :ok, :f :read, :value [[:r :x 2]]}
",
    )
    .expect("write");
    let streamed = check_path(&path, None, &opts)
        .expect("streams")
        .expect("checkable");
    assert_eq!(streamed.report.validity, Validity::Valid);
    assert_eq!((streamed.report.txns, streamed.report.skipped_ops), (2, 0));
    // Another function is not a transaction, and is counted as skipped.
    let r = check(&named(&["write", "lookup", "txn"]), &opts).expect("checkable");
    assert_eq!((r.txns, r.skipped_ops), (2, 1));
}
