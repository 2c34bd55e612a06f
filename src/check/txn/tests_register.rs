//! Unit tests of the transactional checker on rw-register histories: one
//! minimal history per anomaly, asserting the verdict, the anomaly's name
//! and its explanation. Same history notation as `tests.rs`.

use super::tests::{explanation, h, rw};
use super::*;

#[test]
fn rw_register_serial_history_is_valid() {
    let r = rw(r#"
        0 invoke [["r","x",null],["w","x",1]]
        0 ok [["r","x",null],["w","x",1]]
        1 invoke [["r","x",null],["w","x",2],["w","y",1]]
        1 ok [["r","x",1],["w","x",2],["w","y",1]]
        0 invoke [["r","x",null],["r","y",null]]
        0 ok [["r","x",2],["r","y",1]]
    "#);
    assert_eq!(r.validity, Validity::Valid, "{:?}", r.anomalies);
    assert!(r.anomaly_types.is_empty());
}

#[test]
fn rw_register_g1c() {
    let r = rw(r#"
        0 invoke [["w","x",1],["r","y",null]]
        1 invoke [["w","y",1],["r","x",null]]
        0 ok [["w","x",1],["r","y",1]]
        1 ok [["w","y",1],["r","x",1]]
    "#);
    assert_eq!(r.anomaly_types, vec!["G1c"]);
    assert_eq!(
        explanation(&r, "G1c"),
        "T1 < T2 because T2 read key x = 1, which T1 wrote; T2 < T1 because T1 read key y = 1, which T2 wrote: \
         a contradiction"
    );
}

#[test]
fn rw_register_lost_update_and_g_single() {
    // Both read x = 1 and both overwrote it; a later reader orders them.
    let r = rw(r#"
        0 invoke [["w","x",1]]
        0 ok [["w","x",1]]
        1 invoke [["r","x",null],["w","x",2]]
        2 invoke [["r","x",null],["w","x",3]]
        1 ok [["r","x",1],["w","x",2]]
        2 ok [["r","x",1],["w","x",3]]
    "#);
    assert_eq!(r.validity, Validity::Invalid);
    assert!(
        r.anomaly_types.contains(&"lost-update".to_string()),
        "{:?}",
        r.anomaly_types
    );
    assert_eq!(
        explanation(&r, "lost-update"),
        "T1, T2 all read key x = 1 and then wrote key x: each write was made without seeing the others, \
         so all but one are lost"
    );
    assert_eq!(r.not, vec!["cursor-stability"]);
}

#[test]
fn rw_register_g1a_g1b_and_internal() {
    let r = rw(r#"
        0 invoke [["w","x",1]]
        0 fail [["w","x",1]]
        1 invoke [["w","y",1],["w","y",2]]
        1 ok [["w","y",1],["w","y",2]]
        2 invoke [["r","x",null],["r","y",null],["w","z",5],["r","z",null]]
        2 ok [["r","x",1],["r","y",1],["w","z",5],["r","z",6]]
    "#);
    assert_eq!(r.validity, Validity::Invalid);
    for a in ["G1a", "G1b", "internal"] {
        assert!(
            r.anomaly_types.contains(&a.to_string()),
            "{a} missing from {:?}",
            r.anomaly_types
        );
    }
    assert_eq!(
        explanation(&r, "G1a"),
        "T1 read key x = 1, which T2 wrote; T2 failed, so T1 read an aborted write"
    );
    assert_eq!(
        explanation(&r, "G1b"),
        "T1 read key y = 1, which T2 wrote, but T2 later overwrote key y itself: T1 read an intermediate state"
    );
    assert_eq!(
        explanation(&r, "internal"),
        "T1 read key z = 6, but it had just written 5"
    );
}

#[test]
fn rw_register_read_skew_is_g_single() {
    // T1 reads the old x but the new y of T2, which wrote both.
    let r = rw(r#"
        0 invoke [["w","x",1],["w","y",1]]
        0 ok [["w","x",1],["w","y",1]]
        1 invoke [["r","x",null],["w","x",2],["w","y",2]]
        1 ok [["r","x",1],["w","x",2],["w","y",2]]
        2 invoke [["r","x",null],["r","y",null]]
        2 ok [["r","x",1],["r","y",2]]
    "#);
    assert_eq!(r.validity, Validity::Invalid);
    assert!(
        r.anomaly_types.contains(&"G-single".to_string()),
        "{:?}",
        r.anomaly_types
    );
    assert_eq!(
        explanation(&r, "G-single"),
        "T1 < T2 because T1 read key x = 1, which T2 overwrote with 2; \
         T2 < T1 because T1 read key y = 2, which T2 wrote: a contradiction"
    );
}

#[test]
fn rw_register_linearizable_keys_find_a_stale_write_order() {
    // x = 1 committed before x = 2 began, but a reader saw 2 then 1's txn
    // read... only the linearizable-keys order makes this a cycle.
    let text = r#"
        0 invoke [["w","x",1]]
        0 ok [["w","x",1]]
        1 invoke [["w","x",2],["r","y",null]]
        1 ok [["w","x",2],["r","y",null]]
        2 invoke [["w","y",1],["r","x",null]]
        2 ok [["w","y",1],["r","x",1]]
    "#;
    let plain = rw(text);
    let opts = TxnOptions {
        linearizable_keys: true,
        ..TxnOptions::new(TxnKind::RwRegister)
    };
    let lin = check(&h(text), &opts).unwrap();
    assert!(!plain.anomaly_types.contains(&"G2-item".to_string()));
    assert!(
        lin.anomaly_types.contains(&"G2-item".to_string()),
        "{:?}",
        lin.anomaly_types
    );
}

#[test]
fn rw_register_sequential_keys_order_a_process_writes() {
    // Process 0 wrote x = 1 and then x = 2 (with z = 1); T1, concurrent
    // with both, read the old x but the new z. Only the per-process write
    // order tells that 1 precedes 2.
    let text = r#"
        1 invoke [["r","x",null],["r","z",null]]
        0 invoke [["w","x",1]]
        0 ok [["w","x",1]]
        0 invoke [["w","x",2],["w","z",1]]
        0 ok [["w","x",2],["w","z",1]]
        1 ok [["r","x",1],["r","z",1]]
    "#;
    let plain = rw(text);
    assert_eq!(plain.validity, Validity::Valid, "{:?}", plain.anomaly_types);
    let opts = TxnOptions {
        sequential_keys: true,
        ..TxnOptions::new(TxnKind::RwRegister)
    };
    let r = check(&h(text), &opts).unwrap();
    assert_eq!(r.validity, Validity::Invalid);
    assert_eq!(r.anomaly_types, vec!["G-single"]);
    assert_eq!(
        explanation(&r, "G-single"),
        "T1 < T2 because T1 read key x = 1, which T2 overwrote with 2; \
         T2 < T1 because T1 read key z = 1, which T2 wrote: a contradiction"
    );
}

#[test]
fn rw_register_sequential_keys_order_a_process_reads_after_its_writes() {
    // Two writers cross on x and y; each writer then reads one key and
    // sees the other's value. Process 0 wrote x = 1 and later read x = 2,
    // so 1 < 2 on x; process 1 wrote y = 1 and later read y = 2, so 1 < 2
    // on y: T1 and T2 each overwrote the other, a write cycle that only
    // the reads' place in each process's order shows.
    let text = r#"
        0 invoke [["w","x",1],["w","y",2]]
        0 ok [["w","x",1],["w","y",2]]
        1 invoke [["w","x",2],["w","y",1]]
        1 ok [["w","x",2],["w","y",1]]
        0 invoke [["r","x",null]]
        0 ok [["r","x",2]]
        1 invoke [["r","y",null]]
        1 ok [["r","y",2]]
    "#;
    let opts = TxnOptions {
        sequential_keys: true,
        consistency_models: vec!["serializable".to_string()],
        ..TxnOptions::new(TxnKind::RwRegister)
    };
    let r = check(&h(text), &opts).unwrap();
    assert_eq!(r.validity, Validity::Invalid);
    assert_eq!(r.anomaly_types, vec!["G0", "G0-realtime"]);
    assert_eq!(
        explanation(&r, "G0"),
        "T1 < T2 because T1 wrote key x = 1, which T2 overwrote with 2; \
         T2 < T1 because T2 wrote key y = 1, which T1 overwrote with 2: a contradiction"
    );
    assert_eq!(r.not, vec!["read-uncommitted"]);
}

#[test]
fn rw_register_cyclic_versions() {
    // Each read the other's write and then overwrote it: 2 < 1 and 1 < 2.
    let r = rw(r#"
        0 invoke [["r","x",null],["w","x",1]]
        1 invoke [["r","x",null],["w","x",2]]
        0 ok [["r","x",2],["w","x",1]]
        1 ok [["r","x",1],["w","x",2]]
    "#);
    assert_eq!(r.validity, Validity::Invalid);
    assert_eq!(r.anomaly_types, vec!["G1c", "cyclic-versions"]);
    assert_eq!(
        explanation(&r, "cyclic-versions"),
        "the version order of key x has a cycle among 1, 2: no order of writes explains what was read"
    );
    assert_eq!(r.not, vec!["read-uncommitted"]);
}
