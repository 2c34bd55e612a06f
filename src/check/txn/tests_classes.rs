//! Unit tests of the anomaly classes issue 14 found missing or wrong: a
//! future read, an `info` transaction proven committed by a read, classes
//! missed next to others (G1b on an aborted write, lost updates on reads
//! outside the version order), and G-nonadjacent with snapshot isolation.
//! Same history notation as `tests.rs`.

use super::tests::{explanation, h, la, rw};
use super::*;

fn with_model(workload: TxnKind, model: &str, text: &str) -> TxnReport {
    let opts = TxnOptions {
        consistency_models: vec![model.to_string()],
        ..TxnOptions::new(workload)
    };
    check(&h(text), &opts).expect("checkable")
}

#[test]
fn future_read_is_reported_and_rules_out_read_committed() {
    // Elle's minimal history: [[:r 0 [1]] [:append 0 1]].
    let text = r#"
        0 invoke [["r",0,null],["append",0,1]]
        0 ok [["r",0,[1]],["append",0,1]]
    "#;
    let r = with_model(TxnKind::ListAppend, "read-committed", text);
    assert_eq!(r.validity, Validity::Invalid, "{:?}", r.anomaly_types);
    assert_eq!(r.anomaly_types, vec!["future-read"]);
    assert_eq!(
        explanation(&r, "future-read"),
        "T1 read key 0 = [1], including 1, which T1 itself appended only afterwards: \
         it observed its own future write"
    );
    // Elle counts a future read as G1c: read committed is the weakest model
    // it rules out.
    assert_eq!(r.not, vec!["read-committed"]);
    assert!(r.still_possible.contains(&"read-uncommitted".to_string()));
    assert_eq!(la(text).validity, Validity::Invalid);
}

#[test]
fn rw_register_future_read() {
    let r = rw(r#"
        0 invoke [["r","x",null],["w","x",1]]
        0 ok [["r","x",1],["w","x",1]]
    "#);
    assert_eq!(r.validity, Validity::Invalid);
    assert_eq!(r.anomaly_types, vec!["future-read"]);
    assert_eq!(
        explanation(&r, "future-read"),
        "T1 read key x = 1, which T1 itself wrote only afterwards: it observed its own future write"
    );
    assert_eq!(r.not, vec!["read-committed"]);
}

/// T1 (`info`) appends x←1 and y←1; T2 reads x = [1], so T1 committed, and
/// appends y←2; T3 reads y = [2], without T1's 1.
const INFO_PROVEN_COMMITTED: &str = r#"
    0 invoke [["append","x",1],["append","y",1]]
    0 info [["append","x",1],["append","y",1]]
    1 invoke [["r","x",null],["append","y",2]]
    1 ok [["r","x",[1]],["append","y",2]]
    2 invoke [["r","y",null]]
    2 ok [["r","y",[2]]]
"#;

#[test]
fn an_info_transaction_observed_by_a_read_is_committed() {
    let r = with_model(TxnKind::ListAppend, "serializable", INFO_PROVEN_COMMITTED);
    assert_eq!(r.validity, Validity::Invalid, "{:?}", r.anomaly_types);
    // T1 < T2 < T1 through T2's read of x and the order of y's appends; and
    // T3, reading y without T1's append, read before it: a G-single too.
    assert_eq!(
        r.anomaly_types,
        vec!["G-single", "G-single-realtime", "G1c"]
    );
    assert_eq!(
        explanation(&r, "G1c"),
        "T1 < T2 because T2 read key x after T1 appended 1 to it; \
         T2 < T1 because T1 appended 1 to key y after T2 appended 2: a contradiction"
    );
    // The same verdict as with T1 ok (which adds real-time order too).
    let ok = INFO_PROVEN_COMMITTED.replace("0 info", "0 ok");
    let r_ok = with_model(TxnKind::ListAppend, "serializable", &ok);
    assert_eq!(r_ok.validity, Validity::Invalid);
    assert!(r_ok.anomaly_types.contains(&"G1c".to_string()));
    // Unobserved, the info transaction may never have committed: valid.
    let unseen = INFO_PROVEN_COMMITTED.replace(r#"[["r","x",[1]],"#, r#"[["r","x",[]],"#);
    let r = with_model(TxnKind::ListAppend, "serializable", &unseen);
    assert_eq!(r.validity, Validity::Valid, "{:?}", r.anomalies);
}

#[test]
fn appends_read_out_of_their_transactions_order_are_incompatible() {
    // Found by the exhaustive oracle: T2 appended 1 then 2, yet x = [2 1 3].
    let r = la(r#"
        1 invoke [["append",0,1],["append",0,2]]
        1 ok [["append",0,1],["append",0,2]]
        0 invoke [["append",0,3],["r",0,null]]
        0 ok [["append",0,3],["r",0,[2,1,3]]]
    "#);
    assert_eq!(r.validity, Validity::Invalid);
    assert_eq!(r.anomaly_types, vec!["incompatible-order"]);
    assert_eq!(
        explanation(&r, "incompatible-order"),
        "T1 read key 0 = [2 1 3], but T2 appended 1 before 2: no single order of appends explains both"
    );
    assert_eq!(r.not, vec!["read-committed"]);
}

/// Two rw edges, never adjacent, and no cycle with one: T1 misses T2's
/// append to x, T3 reads T2's z, T3 misses T4's append to y, and T1 reads
/// T4's w.
const NONADJACENT: &str = r#"
    0 invoke [["r","x",null],["r","w",null]]
    1 invoke [["append","x",1],["append","z",2]]
    2 invoke [["r","z",null],["r","y",null]]
    3 invoke [["append","y",3],["append","w",4]]
    1 ok [["append","x",1],["append","z",2]]
    3 ok [["append","y",3],["append","w",4]]
    0 ok [["r","x",[]],["r","w",[4]]]
    2 ok [["r","z",[2]],["r","y",[]]]
"#;

#[test]
fn g_nonadjacent_rules_out_snapshot_isolation_without_g_single() {
    let r = with_model(TxnKind::ListAppend, "snapshot-isolation", NONADJACENT);
    assert_eq!(r.validity, Validity::Invalid, "{:?}", r.anomalies);
    assert_eq!(r.anomaly_types, vec!["G-nonadjacent", "G2-item"]);
    assert_eq!(
        explanation(&r, "G-nonadjacent"),
        "T1 < T2 because T1 read key x (an empty list) before T2 appended 1 to it; \
         T2 < T3 because T3 read key z after T2 appended 2 to it; \
         T3 < T4 because T3 read key y (an empty list) before T4 appended 3 to it; \
         T4 < T1 because T1 read key w after T4 appended 4 to it: a contradiction"
    );
    let kinds: Vec<&str> = r.anomalies["G-nonadjacent"][0]
        .cycle
        .as_ref()
        .map(|c| c.iter().map(|s| s.kind.as_str()).collect())
        .unwrap_or_default();
    assert_eq!(kinds, vec!["rw", "wr", "rw", "wr"]);
    assert_eq!(r.not, vec!["snapshot-isolation", "repeatable-read"]);
    assert!(r.still_possible.contains(&"cursor-stability".to_string()));
    // Write skew's two rw edges are adjacent: snapshot isolation allows it.
    let skew = r#"
        0 invoke [["r","x",null],["append","y",1]]
        1 invoke [["r","y",null],["append","x",2]]
        0 ok [["r","x",[]],["append","y",1]]
        1 ok [["r","y",[]],["append","x",2]]
    "#;
    let r = with_model(TxnKind::ListAppend, "snapshot-isolation", skew);
    assert_eq!(r.validity, Validity::Valid, "{:?}", r.anomalies);
    assert_eq!(r.anomaly_types, vec!["G2-item"]);
}

#[test]
fn g_nonadjacent_process_and_realtime_rule_out_the_strong_snapshot_isolations() {
    // The same cycle, with T4 completing before T1 begins and T1's read of
    // w dropped: T4 < T1 by real time (and by process when they share one).
    let text = r#"
        3 invoke [["append","y",3],["append","w",4]]
        3 ok [["append","y",3],["append","w",4]]
        1 invoke [["append","x",1],["append","z",2]]
        2 invoke [["r","z",null],["r","y",null]]
        1 ok [["append","x",1],["append","z",2]]
        2 ok [["r","z",[2]],["r","y",[]]]
        3 invoke [["r","x",null]]
        3 ok [["r","x",[]]]
    "#;
    let r = with_model(
        TxnKind::ListAppend,
        "strong-session-snapshot-isolation",
        text,
    );
    assert_eq!(r.validity, Validity::Invalid, "{:?}", r.anomalies);
    assert!(
        r.anomaly_types
            .contains(&"G-nonadjacent-process".to_string()),
        "{:?}",
        r.anomaly_types
    );
    assert!(r
        .not
        .contains(&"strong-session-snapshot-isolation".to_string()));
    let r = with_model(TxnKind::ListAppend, "snapshot-isolation", text);
    assert_eq!(r.validity, Validity::Valid, "{:?}", r.anomalies);
}

#[test]
fn an_intermediate_append_of_a_failed_transaction_is_g1a_and_g1b() {
    let r = la(r#"
        0 invoke [["append","x",1],["append","x",2]]
        0 fail [["append","x",1],["append","x",2]]
        1 invoke [["r","x",null]]
        1 ok [["r","x",[1]]]
    "#);
    assert_eq!(r.validity, Validity::Invalid);
    assert_eq!(r.anomaly_types, vec!["G1a", "G1b"]);
    assert_eq!(
        explanation(&r, "G1b"),
        "T1 read key x = [1], ending in 1, which T2 appended, but T2 appended more to key x afterwards: \
         T1 read an intermediate state"
    );
    let r = rw(r#"
        0 invoke [["w","x",1],["w","x",2]]
        0 fail [["w","x",1],["w","x",2]]
        1 invoke [["r","x",null]]
        1 ok [["r","x",1]]
    "#);
    assert_eq!(r.anomaly_types, vec!["G1a", "G1b"]);
}

#[test]
fn a_read_past_an_aborted_append_still_depends_on_the_version_before() {
    // T1 read x = [1 2]: 2 is aborted (G1a), but 1 is T2's, and T2 read
    // T1's append to y: a G1c cycle the aborted element must not hide.
    let r = la(r#"
        0 invoke [["append","x",1],["r","y",null]]
        1 invoke [["append","x",2]]
        1 fail [["append","x",2]]
        2 invoke [["r","x",null],["append","y",1]]
        2 ok [["r","x",[1,2]],["append","y",1]]
        0 ok [["append","x",1],["r","y",[1]]]
    "#);
    assert_eq!(r.validity, Validity::Invalid);
    assert_eq!(r.anomaly_types, vec!["G1a", "G1c"]);
    assert_eq!(
        explanation(&r, "G1c"),
        "T1 < T2 because T2 read key x after T1 appended 1 to it; \
         T2 < T1 because T1 read key y after T2 appended 1 to it: a contradiction"
    );
}

#[test]
fn lost_updates_on_versions_outside_the_order_are_reported() {
    // T1 and T2 both read x = [2] and appended: a lost update, even though
    // [2] is no prefix of [1 2 3] (itself an incompatible order).
    let r = la(r#"
        0 invoke [["append","x",1]]
        0 ok [["append","x",1]]
        1 invoke [["append","x",2]]
        1 ok [["append","x",2]]
        2 invoke [["r","x",null],["append","x",3]]
        3 invoke [["r","x",null],["append","x",4]]
        2 ok [["r","x",[2]],["append","x",3]]
        3 ok [["r","x",[2]],["append","x",4]]
        4 invoke [["r","x",null]]
        4 ok [["r","x",[1,2,3]]]
    "#);
    assert!(
        r.anomaly_types.contains(&"lost-update".to_string()),
        "{:?}",
        r.anomaly_types
    );
    assert_eq!(
        explanation(&r, "lost-update"),
        "T1, T2 all read key x = [2] and then appended to it: each update was made without seeing the others, \
         so all but one are lost"
    );
    // rw-register: both read an aborted x = 1 and overwrote it.
    let r = rw(r#"
        0 invoke [["w","x",1]]
        0 fail [["w","x",1]]
        1 invoke [["r","x",null],["w","x",2]]
        2 invoke [["r","x",null],["w","x",3]]
        1 ok [["r","x",1],["w","x",2]]
        2 ok [["r","x",1],["w","x",3]]
    "#);
    // Each overwrote the other's read: G2-item; each wrote over an aborted
    // version: dirty updates.
    assert_eq!(
        r.anomaly_types,
        vec!["G1a", "G2-item", "dirty-update", "lost-update"]
    );
}
