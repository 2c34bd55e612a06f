//! `faultline run --workload lock-set` against a real 3-node etcd on a
//! local cluster, without faults: workers take etcd's lock (a lease kept
//! alive while held), add to the set in the controller's memory under it,
//! and release it. With no fault the lease never runs out, so no two holds
//! may overlap and every acknowledged add must be in the final read; the
//! mutex model must find the acquires and releases linearizable, from the
//! run and from `faultline check` on its history. Needs root and etcd
//! (installed when missing); ignored unless built by root.
#![cfg(all(feature = "controller", feature = "cli"))]

mod cluster_support;

use cluster_support::{faultline, CliCluster};
use serde_json::Value;

const PREFIX: &str = "flls";

#[test]
#[cfg_attr(
    not(faultline_root),
    ignore = "needs root: builds a local cluster and runs etcd"
)]
fn lock_set_on_etcd_without_faults_is_valid() {
    cluster_support::ensure(&cluster_support::db("etcd"));
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let _down = CliCluster::new(&state, PREFIX).db("etcd");
    let (code, out, err) = faultline(
        &state,
        &[
            "cluster",
            "up",
            "--nodes",
            "3",
            "--subnet",
            "10.78.215.0/24",
            "--name-prefix",
            PREFIX,
        ],
    );
    assert_eq!(code, 0, "{out}{err}");

    let results = tmp.path().join("results");
    let results_arg = results.display().to_string();
    let (code, out, err) = faultline(
        &state,
        &[
            "run",
            "--workload",
            "lock-set",
            "--nemesis",
            "none",
            "--time-limit",
            "20",
            "--concurrency",
            "4",
            "--seed",
            "5",
            "--results",
            &results_arg,
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let text = std::fs::read_to_string(results.join("latest/results.json")).unwrap();
    let r: Value = serde_json::from_str(&text).unwrap();
    let lock = &r["checkers"]["lock-set"];
    assert_eq!(lock["valid"], "valid", "{lock}");
    let (holds, acked, overlapping, lost, finals) = (
        lock["holds"].as_u64().unwrap_or(0),
        lock["acknowledged"].as_u64().unwrap_or(0),
        lock["overlapping"].as_u64(),
        lock["lost_count"].as_u64(),
        lock["final_reads"].as_u64().unwrap_or(0),
    );
    eprintln!(
        "lock-set on etcd: {holds} holds, {acked} adds acknowledged, {} acquires unknown",
        lock["unknown_acquires"]
    );
    // Four workers share one lock held 0-1 s at a time: about one add a
    // second over 20 s.
    assert!(holds >= 8 && acked >= 8, "{lock}");
    assert_eq!((overlapping, lost), (Some(0), Some(0)), "{lock}");
    // Every worker read the set once at the end, and found every add.
    assert_eq!(finals, 4, "{lock}");
    assert_eq!(r["checkers"]["linearizable"]["valid"], "valid", "{r}");
    assert_eq!(r["checkers"]["linearizable"]["model"], "mutex", "{r}");

    // The recorded history holds the lock operations: the mutex model and
    // the lock-set checker judge it alike from the file.
    let history = results.join("latest/history.jsonl").display().to_string();
    let (code, out, err) = faultline(&state, &["check", "--model", "mutex", &history]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = faultline(&state, &["check", "--model", "lock-set", &history]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("none overlapping"), "{out}");
}
