//! RabbitMQ for real: `faultline run --db rabbitmq --workload queue
//! --nemesis partition` on a local cluster of 3 nodes (a broker and its
//! epmd on each, one RabbitMQ cluster), once with a classic queue and
//! once with a quorum queue, on the same cluster: the brokers start,
//! cluster and become healthy, the workload enqueues and dequeues through
//! every node while the network is partitioned, the final phase drains
//! the queue, the queue checker judges the history, the run records the
//! version and the partition handling mode, keeps every node's log, and
//! the teardown leaves no beam.smp or epmd behind — so the second run
//! starts from a clean slate. Then, on the same cluster, a drain through
//! one node does not end while another node's broker is paused (its
//! channels may hold messages the queue has not heard of), and does once
//! it is resumed.
//!
//! Needs root and Debian's rabbitmq-server (installed when missing);
//! ignored unless built by root. Measured runs are in docs/rabbitmq.md.
#![cfg(all(feature = "controller", feature = "cli"))]

mod cluster_support;

use cluster_support::{faultline, leftovers};
use faultline::client::{Client, Invocation, Status};
use faultline::cluster::local;
use faultline::system::rabbitmq::{QueueType, RabbitClientFactory, RabbitClientOptions};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const PREFIX: &str = "flrq";
const SUBNET: &str = "10.78.191.0/24";

struct Down(PathBuf);
impl Drop for Down {
    fn drop(&mut self) {
        faultline(&self.0, &["db", "down", "--db", "rabbitmq"]);
        faultline(&self.0, &["cluster", "down", "--name-prefix", PREFIX]);
    }
}

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

fn inv(f: &str, value: Value, timeout: Duration) -> Invocation {
    Invocation {
        process: faultline::history::Process::Client(0),
        f: f.into(),
        value,
        key: None,
        timeout,
    }
}

/// Sends `signal` to the broker on `node` (its pid file).
fn signal_broker(state: &Path, node: &str, signal: &str) {
    let cluster = local::attach(state).expect("attach");
    let n = cluster
        .nodes()
        .iter()
        .find(|n| n.name() == node)
        .expect("the node");
    n.run(&format!(
        "kill -{signal} $(cat {}/rabbitmq/rabbitmq.pid)",
        n.work_dir()
    ))
    .expect("signal the broker");
}

/// A drain through n1 while n3's broker is paused: n3 cannot say whether
/// its channels held messages, so the drain takes what n1 sees but does
/// not end `ok`; once n3 is resumed a drain does.
fn a_drain_waits_for_every_broker(state: &Path) {
    let (code, out, err) = faultline(state, &["db", "up", "--db", "rabbitmq"]);
    assert_eq!(code, 0, "{out}{err}");
    let cluster = local::attach(state).expect("attach");
    let opts = RabbitClientOptions {
        timeout: Duration::from_secs(10),
        queue_type: QueueType::Classic,
    };
    let factory = RabbitClientFactory::for_nodes(cluster.nodes(), opts).expect("factory");
    let rt = tokio::runtime::Runtime::new().expect("tokio");
    rt.block_on(async {
        let mut c = factory.client();
        c.open("n1").await.expect("open on n1");
        let e = c
            .invoke(&inv("enqueue", json!(7), Duration::from_secs(5)))
            .await;
        assert_eq!(e.status, Status::Ok, "{e:?}");
        signal_broker(state, "n3", "STOP");
        let d = c
            .invoke(&inv("drain", Value::Null, Duration::from_secs(8)))
            .await;
        signal_broker(state, "n3", "CONT");
        assert_eq!(
            (d.status, d.value.clone()),
            (Status::Info, json!([7])),
            "{d:?}"
        );
        let why = d.error.clone().unwrap_or_default().to_string();
        assert!(why.contains("n3 did not say"), "{why}");
        let d = c
            .invoke(&inv("drain", Value::Null, Duration::from_secs(15)))
            .await;
        assert_eq!(
            (d.status, d.value.clone()),
            (Status::Ok, json!([])),
            "{d:?}"
        );
        c.close().await.expect("close");
    });
    let (code, out, err) = faultline(state, &["db", "down", "--db", "rabbitmq"]);
    assert_eq!(code, 0, "{out}{err}");
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
    let _down = Down(state.clone());
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
    a_drain_waits_for_every_broker(&state);

    let (code, out, err) = faultline(&state, &["cluster", "down", "--name-prefix", PREFIX]);
    assert_eq!(code, 0, "{out}{err}");
    let left = leftovers(PREFIX, &state, "10.78.191.");
    assert!(left.is_empty(), "left behind: {left:#?}");
}
