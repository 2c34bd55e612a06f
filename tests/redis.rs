//! Redis with Sentinel for real: `faultline run --db redis` on a local
//! cluster of 5 nodes (master on n1, replicas, a Sentinel on each), showing
//! what asynchronous replication allows:
//!
//! - with no faults, a set keeps every acknowledged element (the control);
//! - reads from replicas are stale: the register history is not
//!   linearizable, and the counterexample is a read;
//! - isolating the master makes Sentinel promote a replica while the old
//!   master keeps acknowledging writes; healing demotes it and those
//!   writes are lost.
//!
//! Needs root and Debian's redis-server and redis-sentinel (installed when
//! missing); ignored unless built by root. Measured frequencies are in docs/redis.md.
#![cfg(all(feature = "controller", feature = "cli"))]

mod cluster_support;

use cluster_support::{faultline, leftovers, CliCluster};
use serde_json::Value;
use std::path::Path;

const PREFIX: &str = "flrd";
const SUBNET: &str = "10.78.90.0/24";

/// One run; returns (exit code, results.json, stdout+stderr).
fn run(
    state: &Path,
    results: &Path,
    workload: &str,
    read_mode: &str,
    nemesis: &str,
    seed: &str,
) -> (i32, Value, String) {
    let name = format!("redis-{workload}-{nemesis}-{seed}");
    let (code, out, err) = faultline(
        state,
        &[
            "run",
            "--db",
            "redis",
            "--workload",
            workload,
            "--read-mode",
            read_mode,
            "--nemesis",
            nemesis,
            "--time-limit",
            "20",
            "--concurrency",
            "10",
            "--rate",
            "200",
            "--seed",
            seed,
            "--name",
            &name,
            "--results",
            &results.display().to_string(),
        ],
    );
    let text = format!("{out}\n{err}");
    let json: Value = std::fs::read_to_string(results.join(&name).join("latest/results.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    (code, json, text)
}

#[test]
#[cfg_attr(
    not(faultline_root),
    ignore = "needs root: builds a local cluster and runs Redis"
)]
fn replicas_read_stale_and_failover_loses_acknowledged_writes() {
    cluster_support::ensure(&cluster_support::db("redis"));
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let results = tmp.path().join("results");
    let _down = CliCluster::new(&state, PREFIX).db("redis");
    let (code, out, err) = faultline(
        &state,
        &[
            "cluster",
            "up",
            "--nodes",
            "5",
            "--subnet",
            SUBNET,
            "--name-prefix",
            PREFIX,
        ],
    );
    assert_eq!(code, 0, "{out}{err}");

    // The control: without faults every acknowledged element is read.
    let (code, r, text) = run(&state, &results, "set", "replica", "none", "1");
    assert_eq!(
        code, 0,
        "a fault-free set run should be valid:\n{text}\n{r:#}"
    );
    let set = &r["checkers"]["set"];
    assert_eq!(set["lost"]["count"], 0, "{set:#}");
    assert!(set["acknowledged"].as_u64().unwrap_or(0) > 1000, "{set:#}");
    assert!(set["final_reads"].as_u64().unwrap_or(0) >= 5, "{set:#}");

    // Stale reads from replicas: partitions cut replicas off from the
    // master, and they keep answering from what they had.
    let (code, r, text) = run(&state, &results, "register", "replica", "partition", "2");
    assert_eq!(code, 1, "replica reads should not be linearizable:\n{text}");
    let lin = &r["checkers"]["linearizable"];
    let failures = lin["failures"].as_array().cloned().unwrap_or_default();
    assert!(!failures.is_empty(), "{lin:#}");
    let cx = &failures[0]["counterexample"];
    assert_eq!(cx["op"]["f"], "read", "{cx:#}");
    let why = cx["explanation"].as_str().unwrap_or("");
    assert!(why.contains("read returned"), "{why}");

    // Lost writes: the master alone on one side, the majority of
    // Sentinels promote a replica, clients still writing to the old
    // master get acknowledgements, and the demoted master's resync from
    // the new one drops them.
    let (code, r, text) = run(&state, &results, "set", "replica", "partition-leader", "3");
    assert_eq!(code, 1, "failover should lose writes:\n{text}");
    let set = &r["checkers"]["set"];
    let lost = set["lost"]["count"].as_u64().unwrap_or(0);
    assert!(lost > 0, "{set:#}");
    assert!(
        set["explanation"]
            .as_str()
            .unwrap_or("")
            .contains("acknowledged elements are missing from a final read"),
        "{set:#}"
    );
    // The partitions really failed the master over (the nemesis asked
    // Sentinel for the primary each time; it changed).
    let history = std::fs::read_to_string(
        results
            .join("redis-set-partition-leader-3")
            .join("latest/history.jsonl"),
    )
    .unwrap_or_default();
    let isolated: std::collections::BTreeSet<String> = history
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|op| op["f"] == "start-partition")
        .filter_map(|op| op["value"]["components"][0][0].as_str().map(String::from))
        .collect();
    assert!(
        isolated.len() >= 2,
        "the isolated master should change between partitions: {isolated:?}"
    );

    let (code, out, err) = faultline(&state, &["cluster", "down", "--name-prefix", PREFIX]);
    assert_eq!(code, 0, "{out}{err}");
    let left = leftovers(PREFIX, &state, "10.78.90.");
    assert!(left.is_empty(), "left behind: {left:#?}");
}
