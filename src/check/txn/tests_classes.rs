//! Unit tests of the anomaly classes issue 14 found missing or wrong: a
//! future read, an `info` transaction proven committed by a read, classes
//! missed next to others (G1b on an aborted write, lost updates on reads
//! outside the version order), and G-nonadjacent with snapshot isolation.
//! Same history notation as `tests.rs`.

use super::tests::{explanation, h, la, rw};
use super::*;

fn with_model(workload: Workload, model: &str, text: &str) -> Report {
    let opts = Options {
        consistency_models: vec![model.to_string()],
        ..Options::new(workload)
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
    let r = with_model(Workload::ListAppend, "read-committed", text);
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
    let r = with_model(Workload::ListAppend, "serializable", INFO_PROVEN_COMMITTED);
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
    let r_ok = with_model(Workload::ListAppend, "serializable", &ok);
    assert_eq!(r_ok.validity, Validity::Invalid);
    assert!(r_ok.anomaly_types.contains(&"G1c".to_string()));
    // Unobserved, the info transaction may never have committed: valid.
    let unseen = INFO_PROVEN_COMMITTED.replace(r#"[["r","x",[1]],"#, r#"[["r","x",[]],"#);
    let r = with_model(Workload::ListAppend, "serializable", &unseen);
    assert_eq!(r.validity, Validity::Valid, "{:?}", r.anomalies);
}
