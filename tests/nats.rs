//! NATS JetStream for real: `faultline run --db nats --workload queue` on
//! a local cluster of 3 nodes (a nats-server on each, one NATS cluster,
//! a stream replicated to all three): the servers start and become
//! healthy, the workload enqueues and dequeues through every node, the
//! final phase drains the queue, the queue checker judges the history, and
//! the teardown leaves no nats-server behind (checked by the pids the
//! servers had during the run).
//!
//! A second test drives the client alone against one server on this
//! machine's loopback (no cluster): enqueue, dequeue, the empty queue,
//! drain, and what an unreachable server gives.
//!
//! Needs root and Debian's nats-server (installed when missing); ignored
//! unless built by root. Measured runs with faults are in docs/nats.md.
#![cfg(all(feature = "controller", feature = "cli"))]

mod cluster_support;

use cluster_support::{faultline, leftovers, CliCluster};
use faultline::client::{Client, Invocation, Status};
use faultline::cluster::local;
use faultline::system::nats::{NatsClientFactory, NatsClientOptions};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PREFIX: &str = "flnt";
const SUBNET: &str = "10.78.171.0/24";

/// The pid in each node's nats-server pid file, once every node has one.
fn server_pids(state: &Path, within: Duration) -> BTreeMap<String, String> {
    let cluster = local::attach(state).expect("attach to the cluster");
    let t = Instant::now();
    loop {
        let pids: BTreeMap<String, String> = cluster
            .nodes()
            .iter()
            .filter_map(|n| {
                let file = format!("{}/nats/nats-server.pid", n.work_dir());
                let pid = n.run(&format!("cat {file} 2>/dev/null || true")).ok()?;
                let pid = pid.trim().to_string();
                (!pid.is_empty()).then(|| (n.name().to_string(), pid))
            })
            .collect();
        if pids.len() == cluster.nodes().len() {
            return pids;
        }
        assert!(
            t.elapsed() < within,
            "no nats-server pid on every node within {within:?}: {pids:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
#[cfg_attr(
    not(faultline_root),
    ignore = "needs root: builds a local cluster and runs NATS"
)]
fn the_queue_workload_runs_on_jetstream_is_checked_and_torn_down() {
    cluster_support::ensure(&cluster_support::db("nats"));
    let tmp = tempfile::tempdir().expect("tmp");
    let state = tmp.path().join("state");
    let results = tmp.path().join("results");
    let _down = CliCluster::new(&state, PREFIX).db("nats");
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

    let name = "nats-queue";
    let run = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args([
            "run",
            "--db",
            "nats",
            "--workload",
            "queue",
            // No faults: this is the system working (runs with faults,
            // and their duplicates, are in docs/nats.md).
            "--nemesis",
            "none",
            "--time-limit",
            "20",
            "--concurrency",
            "6",
            "--rate",
            "100",
            "--seed",
            "1",
            "--name",
            name,
            "--results",
            &results.display().to_string(),
        ])
        .env("FAULTLINE_STATE_DIR", &state)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start faultline run");
    // The servers' pids while the run goes on, to look for after it.
    let pids = server_pids(&state, Duration::from_secs(60));
    let out = run.wait_with_output().expect("faultline run");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = results.join(name).join("latest");
    let r: Value = std::fs::read_to_string(dir.join("results.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    assert_eq!(out.status.code(), Some(0), "{text}\n{r:#}");
    assert_eq!(r["valid"], "valid", "{r:#}");
    let q = &r["checkers"]["queue"];
    assert_eq!(q["valid"], "valid", "{q:#}");
    // Elements went in, were taken out, and the queue was drained.
    let acknowledged = q["acknowledged"].as_u64().unwrap_or(0);
    assert!(acknowledged > 300, "{q:#}");
    assert!(q["dequeued"].as_u64().unwrap_or(0) >= acknowledged, "{q:#}");
    assert!(q["drained"].as_u64().unwrap_or(0) >= 1, "{q:#}");
    assert_eq!(q["lost"]["count"], 0, "{q:#}");
    assert_eq!(q["duplicated"]["count"], 0, "{q:#}");
    let history = std::fs::read_to_string(dir.join("history.jsonl")).expect("history");
    let drains: Vec<Value> = history
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|op| op["f"] == "drain" && op["type"] == "ok")
        .collect();
    let drained: usize = drains
        .iter()
        .map(|op| op["value"].as_array().map_or(0, Vec::len))
        .sum();
    // Enqueues outnumber dequeues two to one: the drains found elements.
    assert!(drained > 0, "the drains took nothing: {drains:?}");
    // The run says which server it ran, and kept every node's log.
    let test: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("test.json")).expect("test.json"))
            .expect("test.json is JSON");
    let version = test.to_string();
    assert!(version.contains("nats-server: v2."), "{test:#}");
    for n in pids.keys() {
        let log = std::fs::read_to_string(dir.join("nodes").join(n).join("nats-server.log"))
            .unwrap_or_default();
        assert!(log.contains("Server is ready"), "{n}'s log: {log:.400}");
    }

    // Torn down: none of the servers of the run lives on, and no other
    // nats-server runs on any node.
    let cluster = local::attach(&state).expect("attach");
    for node in cluster.nodes() {
        let pid = &pids[node.name()];
        let comm = node
            .run(&format!("cat /proc/{pid}/comm 2>/dev/null || true"))
            .expect("read /proc");
        assert_ne!(
            comm.trim(),
            "nats-server",
            "nats-server {pid} still runs on {}",
            node.name()
        );
        let others = node
            .run("pgrep -x nats-server || true")
            .expect("pgrep on the node");
        assert!(
            others.trim().is_empty(),
            "nats-server left on {}: {others}",
            node.name()
        );
    }
    drop(cluster);
    let (code, out, err) = faultline(&state, &["cluster", "down", "--name-prefix", PREFIX]);
    assert_eq!(code, 0, "{out}{err}");
    let left = leftovers(PREFIX, &state, "10.78.171.");
    assert!(left.is_empty(), "left behind: {left:#?}");
}

fn inv(f: &str, value: Value) -> Invocation {
    Invocation {
        process: faultline::history::Process::Client(0),
        f: f.into(),
        value,
        key: None,
        timeout: Duration::from_secs(5),
    }
}

/// Kills the server it holds when dropped.
struct Server(std::process::Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
#[cfg_attr(
    not(faultline_root),
    ignore = "needs root: installs nats-server when missing"
)]
fn the_client_enqueues_dequeues_and_drains_on_one_server() {
    cluster_support::apt::ensure(&cluster_support::db("nats"));
    let tmp = tempfile::tempdir().expect("tmp");
    let port = 14000 + (std::process::id() % 1000) as u16;
    let conf = tmp.path().join("nats.conf");
    std::fs::write(
        &conf,
        format!(
            "listen: \"127.0.0.1:{port}\"\njetstream {{ store_dir: \"{}\" }}\n",
            tmp.path().join("store").display()
        ),
    )
    .expect("config");
    let _server = Server(
        Command::new("/usr/sbin/nats-server")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server"),
    );
    let addr = format!("127.0.0.1:{port}");
    let opts = NatsClientOptions {
        timeout: Duration::from_secs(5),
        replicas: 1,
    };
    let factory = NatsClientFactory::new([("n1", addr.clone())], opts).expect("factory");
    let rt = tokio::runtime::Runtime::new().expect("tokio");
    rt.block_on(async {
        let mut a = factory.client();
        let t = Instant::now();
        while let Err(e) = a.open("n1").await {
            assert!(t.elapsed() < Duration::from_secs(10), "open: {e}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut b = factory.client();
        b.open("n1").await.expect("a second client");
        for v in 0..5 {
            let e = a.invoke(&inv("enqueue", json!(v))).await;
            assert_eq!((e.status, e.value.clone()), (Status::Ok, json!(v)), "{e:?}");
        }
        let d = b.invoke(&inv("dequeue", Value::Null)).await;
        assert_eq!((d.status, d.value.clone()), (Status::Ok, json!(0)), "{d:?}");
        let d = a.invoke(&inv("drain", Value::Null)).await;
        assert_eq!(
            (d.status, d.value.clone()),
            (Status::Ok, json!([1, 2, 3, 4])),
            "{d:?}"
        );
        let d = b.invoke(&inv("dequeue", Value::Null)).await;
        assert_eq!(d.status, Status::Fail, "{d:?}");
        assert_eq!(d.error, Some(json!("empty")));
        let d = b.invoke(&inv("drain", Value::Null)).await;
        assert_eq!(
            (d.status, d.value.clone()),
            (Status::Ok, json!([])),
            "{d:?}"
        );
        let k = a
            .invoke(&Invocation {
                key: Some(json!(1)),
                ..inv("enqueue", json!(9))
            })
            .await;
        assert_eq!(k.status, Status::Fail, "{k:?}");
        a.close().await.expect("close");
        b.close().await.expect("close");
        // No server on the node named: the client cannot open.
        let mut c = factory.client();
        assert!(c.open("n2").await.is_err());
    });
}
