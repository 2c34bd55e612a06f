//! etcd list-append under partitions, for real: `faultline run --db etcd
//! --workload list-append --nemesis partition` on a 3-node local cluster.
//!
//! With linearizable reads (the default) every transaction is strictly
//! serializable — read-write ones commit with `mod_revision` compares on
//! every key, read-only ones read at one revision through the leader — so
//! the checker must find no anomaly, over enough committed transactions
//! and non-empty reads that the verdict means something. With
//! `--read-mode serializable` a node cut off from the leader answers
//! read-only transactions from its own, possibly stale, state: real-time
//! anomalies (G-single-realtime, ...) may show, but each read is still one
//! committed snapshot, so serializability itself must hold. Whether a
//! stale read happens in 20 s is up to timing, so that run reports what it
//! found and asserts only what is certain. A last run does rw-register the
//! same way. Needs root and etcd (installed when missing);
//! ignored unless built by root.
#![cfg(all(feature = "controller", feature = "cli"))]

mod cluster_support;

use cluster_support::{faultline, leftovers, CliCluster};
use serde_json::Value;
use std::path::Path;

const PREFIX: &str = "fltx";
const SUBNET: &str = "10.78.110.0/24";

/// What one run produced.
struct Run {
    code: i32,
    /// The txn checker's results.
    txn: Value,
    /// `ok`, `fail`, `info` txns (the stats checker).
    counts: (u64, u64, u64),
    /// Reads in `ok` txns, and those that saw something: a non-empty list
    /// or a register's value.
    reads: usize,
    nonempty_reads: usize,
    /// The longest list read.
    longest: usize,
    /// Partitions the nemesis put in force.
    partitions: usize,
    text: String,
}

fn run(state: &Path, results: &Path, workload: &str, read_mode: &str, seed: &str) -> Run {
    let name = format!("etcd-{workload}-{read_mode}-{seed}");
    let (code, out, err) = faultline(
        state,
        &[
            "run",
            "--db",
            "etcd",
            "--workload",
            workload,
            "--read-mode",
            read_mode,
            "--nemesis",
            "partition",
            "--nemesis-interval",
            "4",
            "--time-limit",
            "20",
            "--concurrency",
            "10",
            "--seed",
            seed,
            "--name",
            &name,
            "--results",
            &results.display().to_string(),
        ],
    );
    let text = format!("{out}\n{err}");
    let dir = results.join(&name).join("latest");
    let json: Value = std::fs::read_to_string(dir.join("results.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    let by = &json["checkers"]["stats"]["by_f"]["txn"];
    let n = |s: &str| by[s].as_u64().unwrap_or(0);
    let history = std::fs::read_to_string(dir.join("history.jsonl")).unwrap_or_default();
    let (mut reads, mut nonempty_reads, mut longest, mut partitions) = (0, 0, 0, 0);
    for line in history.lines() {
        let Ok(op) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        // A start-partition completion carries the grudge it put in force.
        if op["f"] == "start-partition" && op["value"].get("grudge").is_some() {
            partitions += 1;
        }
        if op["f"] != "txn" || op["type"] != "ok" {
            continue;
        }
        for m in op["value"].as_array().into_iter().flatten() {
            if m[0] == "r" {
                reads += 1;
                let len = m[2].as_array().map_or(0, Vec::len);
                if len > 0 || m[2].is_number() {
                    nonempty_reads += 1;
                }
                longest = longest.max(len);
            }
        }
    }
    let r = Run {
        code,
        txn: json["checkers"]["txn"].clone(),
        counts: (n("ok"), n("fail"), n("info")),
        reads,
        nonempty_reads,
        longest,
        partitions,
        text,
    };
    eprintln!(
        "{workload} {read_mode} seed {seed}: exit {}, txns ok {} fail {} info {}, reads {} \
         (non-empty {}, longest {}), partitions {}, verdict {}, anomalies {:?}",
        r.code,
        r.counts.0,
        r.counts.1,
        r.counts.2,
        r.reads,
        r.nonempty_reads,
        r.longest,
        r.partitions,
        r.txn["validity"],
        strings(&r.txn["anomaly_types"])
    );
    r
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
#[cfg_attr(
    not(faultline_root),
    ignore = "needs root: builds a local cluster and runs etcd"
)]
fn txns_under_partitions_are_strict_serializable() {
    cluster_support::ensure(&cluster_support::db("etcd"));
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let results = tmp.path().join("results");
    let _down = CliCluster::new(&state, PREFIX).db("etcd");
    let (code, out, err) = faultline(
        &state,
        &[
            "cluster",
            "up",
            "--nodes",
            "3",
            "--subnet",
            SUBNET,
            "--name-prefix",
            PREFIX,
        ],
    );
    assert_eq!(code, 0, "{out}{err}");

    // Linearizable reads: no anomaly, and not vacuously.
    let r = run(&state, &results, "list-append", "linearizable", "1");
    let txn = &r.txn;
    assert_eq!(r.code, 0, "should be valid:\n{}\n{txn:#}", r.text);
    assert_eq!(txn["validity"], "valid", "{txn:#}");
    assert!(strings(&txn["anomaly_types"]).is_empty(), "{txn:#}");
    assert_eq!(
        strings(&txn["consistency_models"]),
        vec!["strict-serializable"]
    );
    assert!(r.partitions >= 2, "partitions in force: {}", r.partitions);
    assert!(r.counts.0 >= 200, "ok txns: {:?}", r.counts);
    assert!(
        r.nonempty_reads >= 100 && r.longest >= 5,
        "reads {} non-empty {} longest {}",
        r.reads,
        r.nonempty_reads,
        r.longest
    );
    // The checker saw every transaction the stats saw.
    let total = r.counts.0 + r.counts.1 + r.counts.2;
    assert_eq!(txn["txns"].as_u64(), Some(total), "{txn:#}");

    // Serializable reads: stale reads may break real time, never
    // serializability itself.
    let r = run(&state, &results, "list-append", "serializable", "2");
    let txn = &r.txn;
    assert!(
        r.code == 0 || r.code == 1,
        "the run should end with a verdict:\n{}",
        r.text
    );
    assert!(r.counts.0 >= 200, "ok txns: {:?}", r.counts);
    assert!(
        r.nonempty_reads >= 100,
        "non-empty reads {}",
        r.nonempty_reads
    );
    let ruled_out: Vec<String> = strings(&txn["not"])
        .into_iter()
        .chain(strings(&txn["also_not"]))
        .collect();
    assert!(
        !ruled_out.iter().any(|m| m == "serializable"),
        "serializable reads are snapshots: serializability must hold\n{txn:#}"
    );
    if r.code == 1 {
        let found = strings(&txn["anomaly_types"]);
        assert!(
            found.iter().all(|a| a.ends_with("-realtime")),
            "only real-time anomalies expected from stale reads: {found:?}\n{txn:#}"
        );
    }

    // rw-register runs on the same mechanism, registers for lists.
    let r = run(&state, &results, "rw-register", "linearizable", "3");
    let txn = &r.txn;
    assert_eq!(r.code, 0, "should be valid:\n{}\n{txn:#}", r.text);
    assert!(strings(&txn["anomaly_types"]).is_empty(), "{txn:#}");
    assert!(r.counts.0 >= 200, "ok txns: {:?}", r.counts);
    assert!(
        r.nonempty_reads >= 100,
        "reads of a value {}",
        r.nonempty_reads
    );

    let (code, out, err) = faultline(&state, &["cluster", "down", "--name-prefix", PREFIX]);
    assert_eq!(code, 0, "{out}{err}");
    let left = leftovers(PREFIX, &state, "10.78.110.");
    assert!(left.is_empty(), "left behind: {left:#?}");
}
