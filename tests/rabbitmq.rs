//! RabbitMQ for real: `faultline run --db rabbitmq --workload queue
//! --nemesis partition` on a local cluster of 3 nodes (a broker and its
//! epmd on each, one RabbitMQ cluster), once with a classic queue and
//! once with a quorum queue, on the same cluster: the brokers start,
//! cluster and become healthy, the workload enqueues and dequeues through
//! every node while the network is partitioned, the final phase drains
//! the queue, the queue checker judges the history, the run records the
//! version and the partition handling mode, keeps every node's log, and
//! the teardown leaves no beam.smp or epmd behind — so the second run
//! starts from a clean slate.
//!
//! Needs root and Debian's rabbitmq-server (installed when missing);
//! ignored unless built by root. Measured runs are in docs/rabbitmq.md.
#![cfg(all(feature = "controller", feature = "cli"))]

mod cluster_support;

use cluster_support::{faultline, leftovers, CliCluster};
use faultline::cluster::local;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

const PREFIX: &str = "flrq";
const SUBNET: &str = "10.78.196.0/24";

/// The processes of RabbitMQ on every node (`pid comm`), none expected.
fn ours_left(state: &Path) -> Vec<String> {
    let cluster = local::attach(state).expect("attach");
    let mut left = Vec::new();
    for node in cluster.nodes() {
        let out = node
            .run("for c in beam.smp epmd erl_child_setup; do pgrep -x $c | sed \"s/$/ $c/\"; done; true")
            .expect("pgrep on the node");
        left.extend(
            out.lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| format!("{}: {l}", node.name())),
        );
    }
    left
}

/// One run of the queue workload with partitions; returns its results.
fn run_queue(state: &Path, results: &Path, queue_type: &str) -> Value {
    let name = format!("rabbitmq-{queue_type}");
    let out = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args([
            "run",
            "--db",
            "rabbitmq",
            "--db-opt",
            &format!("queue_type={queue_type}"),
            "--workload",
            "queue",
            "--nemesis",
            "partition",
            "--nemesis-interval",
            "5",
            "--time-limit",
            "30",
            // A drain long enough for the cluster's links to come back
            // after the last partition (docs/rabbitmq.md).
            "--op-timeout",
            "15",
            "--concurrency",
            "6",
            "--rate",
            "50",
            "--seed",
            "1",
            "--name",
            &name,
            "--results",
            &results.display().to_string(),
        ])
        .env("FAULTLINE_STATE_DIR", state)
        .output()
        .expect("faultline run");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = results.join(&name).join("latest");
    let r: Value = std::fs::read_to_string(dir.join("results.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    // Checked to the end: valid, or invalid with what the checker found;
    // never cut short or unjudged.
    let verdict = r["valid"].as_str().unwrap_or("none").to_string();
    assert!(
        verdict == "valid" || verdict == "invalid",
        "{queue_type}: verdict {verdict}\n{text}\n{r:#}"
    );
    let q = &r["checkers"]["queue"];
    assert!(
        q["acknowledged"].as_u64().unwrap_or(0) > 100,
        "{queue_type}: {q:#}"
    );
    assert!(
        q["drained"].as_u64().unwrap_or(0) >= 1,
        "{queue_type}: {q:#}"
    );
    // The partitions took effect.
    assert!(
        r["faults"]["partition"]["took_effect"]
            .as_u64()
            .unwrap_or(0)
            >= 1,
        "{queue_type}: {:#}",
        r["faults"]
    );
    // The version and the partition handling mode, as the broker runs them.
    let test: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("test.json")).expect("test.json"))
            .expect("test.json is JSON");
    let version = test["db_version"].as_str().unwrap_or("");
    assert!(
        version.starts_with("RabbitMQ 3.")
            && version.contains("cluster_partition_handling=ignore")
            && version.contains(&format!("queue_type={queue_type}")),
        "{test:#}"
    );
    // Every node's broker log was kept.
    for n in ["n1", "n2", "n3"] {
        let log =
            std::fs::read_to_string(dir.join("nodes").join(n).join(format!("rabbit@{n}.log")))
                .unwrap_or_default();
        assert!(
            log.contains("Server startup complete"),
            "{n}'s log: {log:.400}"
        );
    }
    r
}

#[test]
#[cfg_attr(
    not(faultline_root),
    ignore = "needs root: builds a local cluster and runs RabbitMQ"
)]
fn classic_and_quorum_queues_run_under_partitions_are_checked_and_torn_down() {
    cluster_support::ensure(&cluster_support::db("rabbitmq"));
    let tmp = tempfile::tempdir().expect("tmp");
    let state = tmp.path().join("state");
    let results = tmp.path().join("results");
    let _down = CliCluster::new(&state, PREFIX).db("rabbitmq");
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

    for queue_type in ["classic", "quorum"] {
        run_queue(&state, &results, queue_type);
        // Torn down: no broker, port mapper or child of theirs lives on.
        let left = ours_left(&state);
        assert!(left.is_empty(), "after {queue_type}: left {left:?}");
    }

    let (code, out, err) = faultline(&state, &["cluster", "down", "--name-prefix", PREFIX]);
    assert_eq!(code, 0, "{out}{err}");
    let left = leftovers(PREFIX, &state, "10.78.196.");
    assert!(left.is_empty(), "left behind: {left:#?}");
}
