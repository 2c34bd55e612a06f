//! ZooKeeper for real, on local clusters of network namespaces:
//!
//! - the db's lifecycle through the library (3 nodes): set-up and health,
//!   exactly one leader, a write on one server read back on another, kill
//!   -9 of the leader and a new leader, restart and rejoin, pause and resume,
//!   log collection, teardown;
//! - `faultline run --db zookeeper --workload register` under the
//!   `partition-one` nemesis (5 nodes): plain reads (getData on the
//!   connected server) show stale reads, which the linearizability checker
//!   reports; with `--read-mode sync` the same runs are valid.
//!
//! Needs root and Debian's zookeeper package (installed when missing);
//! ignored unless built by root.
#![cfg(all(feature = "controller", feature = "cli"))]

mod cluster_support;

use std::path::Path;
use std::time::{Duration, Instant};

use cluster_support::{faultline, leftovers, CliCluster, Teardown};
use faultline::client::{Client, Invocation, Status};
use faultline::cluster::local;
use faultline::db::{self, Db};
use faultline::system::zookeeper::{ZkClientFactory, ZkClientOptions, ZkReadMode};
use faultline::system::zookeeper::{Zookeeper, ZookeeperOptions};
use serde_json::{json, Value};

fn wait_for<T>(what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let t = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(t.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn inv(f: &str, value: Value) -> Invocation {
    Invocation {
        process: faultline::history::Process::Client(0),
        f: f.into(),
        value,
        key: Some(json!(1)),
        timeout: Duration::from_secs(10),
    }
}

#[test]
#[cfg_attr(
    not(faultline_root),
    ignore = "needs root: builds a local cluster and runs ZooKeeper"
)]
fn zookeeper_lifecycle() {
    cluster_support::ensure(&cluster_support::db("zookeeper"));
    let guard = Teardown::new("flzk2", "10.78.81.0/24", 3);
    let state_dir = guard.state_dir();
    let t0 = Instant::now();
    let cluster = local::up(&guard.spec).expect("cluster up");
    let nodes = cluster.nodes().to_vec();
    let zk = Zookeeper::new(ZookeeperOptions::default(), &nodes);
    db::setup(&zk, &cluster, Duration::from_secs(90)).expect("zookeeper setup");
    eprintln!(
        "3 nodes + zookeeper healthy in {:.2} s",
        t0.elapsed().as_secs_f64()
    );
    for n in &nodes {
        assert!(zk.is_running(n).expect("is_running"), "{}", n.name());
    }
    let leaders = zk.primaries(&nodes).expect("primaries");
    assert_eq!(leaders.len(), 1, "one leader: {leaders:?}");

    // A write through n1, read back through n3 after a sync.
    let rt = tokio::runtime::Runtime::new().expect("tokio");
    let opts = ZkClientOptions {
        read_mode: ZkReadMode::Sync,
        workload: "lifecycle".into(),
        ..ZkClientOptions::default()
    };
    let factory = ZkClientFactory::for_nodes(&nodes, zk.client_port(), opts).expect("factory");
    rt.block_on(async {
        let mut a = factory.client();
        let mut b = factory.client();
        a.open("n1").await.expect("open n1");
        b.open("n3").await.expect("open n3");
        let w = a.invoke(&inv("write", json!(3))).await;
        assert_eq!(w.status, Status::Ok, "{w:?}");
        let r = b.invoke(&inv("read", Value::Null)).await;
        assert_eq!((r.status, r.value.clone()), (Status::Ok, json!(3)), "{r:?}");
        let c = b.invoke(&inv("cas", json!([3, 4]))).await;
        assert_eq!(c.status, Status::Ok, "{c:?}");
        let c = a.invoke(&inv("cas", json!([3, 5]))).await;
        assert_eq!(c.status, Status::Fail, "a stale cas must fail: {c:?}");
        let r = a.invoke(&inv("read", Value::Null)).await;
        assert_eq!(r.value, json!(4), "{r:?}");
        a.close().await.expect("close");
        b.close().await.expect("close");
    });

    // kill -9 of the leader: the other two elect a new one.
    let old = leaders[0].clone();
    let victim = nodes.iter().find(|n| n.name() == old).expect("leader node");
    zk.kill(victim).expect("kill");
    assert!(!zk.is_running(victim).expect("is_running"));
    let t = Instant::now();
    let new = wait_for("a new leader", Duration::from_secs(60), || {
        let l = zk.primaries(&nodes).ok()?;
        (l.len() == 1 && l[0] != old).then(|| l[0].clone())
    });
    eprintln!(
        "leader {old} killed; {new} leads after {:.1} s",
        t.elapsed().as_secs_f64()
    );
    // Restarted, it rejoins as a follower.
    zk.start(victim).expect("restart");
    zk.wait_healthy(&nodes, Duration::from_secs(60))
        .expect("healthy after restart");
    assert_eq!(zk.mode(victim).as_deref(), Ok("follower"));

    // Pause a follower: it stops answering; resumed, it serves again.
    let follower = nodes.iter().find(|n| n.name() != new).expect("a follower");
    zk.pause(follower).expect("pause");
    assert!(zk.mode(follower).is_err(), "a paused server answered srvr");
    assert!(
        zk.is_running(follower).expect("is_running"),
        "paused is alive"
    );
    zk.resume(follower).expect("resume");
    zk.wait_healthy(&nodes, Duration::from_secs(60))
        .expect("healthy after resume");
    // Resuming again is harmless (heal may do it twice).
    zk.resume(follower).expect("resume twice");

    let logs = tempfile::tempdir().expect("tmp");
    let files = db::collect_logs(&zk, &cluster, logs.path()).expect("logs");
    let n1_log = logs.path().join("n1/zookeeper.log");
    let text = std::fs::read_to_string(&n1_log).expect("n1's log");
    assert!(text.contains("QuorumPeer"), "n1's log: {text:.400}");
    assert!(files.len() >= 6, "{files:?}");

    db::teardown(&zk, &cluster).expect("teardown");
    for n in &nodes {
        assert!(!zk.is_running(n).expect("is_running"));
        let gone = n
            .exec(&format!("test -e {}", zk.dir(n)))
            .expect("exec")
            .success();
        assert!(!gone, "{} still on {}", zk.dir(n), n.name());
    }
    drop(cluster);
    drop(guard);
    let left = leftovers("flzk2", &state_dir, "10.78.81.");
    assert!(left.is_empty(), "left behind: {left:#?}");
}

const PREFIX: &str = "flzk";
const SUBNET: &str = "10.78.80.0/24";

/// One 20 s run of the register workload under `partition-one`; returns
/// (exit code, the linearizable checker's results, the whole output).
fn run(state: &Path, results: &Path, read_mode: &str, seed: &str) -> (i32, Value, String) {
    let name = format!("zk-{read_mode}-{seed}");
    let (code, out, err) = faultline(
        state,
        &[
            "run",
            "--db",
            "zookeeper",
            "--workload",
            "register",
            "--nemesis",
            "partition-one",
            "--read-mode",
            read_mode,
            "--time-limit",
            "20",
            "--concurrency",
            "20",
            "--rate",
            "400",
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
    (code, json["checkers"]["linearizable"].clone(), text)
}

#[test]
#[cfg_attr(
    not(faultline_root),
    ignore = "needs root: builds a local cluster and runs ZooKeeper"
)]
fn plain_reads_go_stale_under_partition_and_sync_reads_do_not() {
    cluster_support::ensure(&cluster_support::db("zookeeper"));
    let tmp = tempfile::tempdir().expect("tmp");
    let state = tmp.path().join("state");
    let results = tmp.path().join("results");
    let _down = CliCluster::new(&state, PREFIX).db("zookeeper");
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

    // Plain reads: a follower cut off from the leader keeps answering
    // reads for syncLimit ticks while the majority commits writes; a
    // follower that merely lags does too. Up to three tries.
    let mut stale = None;
    for seed in ["1", "2", "3"] {
        let (code, lin, text) = run(&state, &results, "plain", seed);
        assert!(code == 0 || code == 1, "plain run failed:\n{text}");
        assert!(lin["ops"].as_u64().unwrap_or(0) > 1000, "{text}\n{lin:#}");
        if code == 1 {
            stale = Some((lin, text));
            break;
        }
    }
    let (lin, text) = stale.expect("no stale read in three 20 s runs of plain reads");
    assert_eq!(lin["valid"], json!("invalid"), "{lin:#}");
    let explanation = lin["failures"][0]["counterexample"]["explanation"]
        .as_str()
        .unwrap_or_default();
    assert!(
        explanation.starts_with("on key") && explanation.contains("read returned"),
        "the reason names a read: {explanation}\n{text}"
    );

    // Sync, then read: the server catches up with the leader first.
    let (code, lin, text) = run(&state, &results, "sync", "1");
    assert_eq!(code, 0, "sync reads should be valid:\n{text}\n{lin:#}");
    assert_eq!(lin["valid"], json!("valid"), "{lin:#}");
    assert!(lin["ops"].as_u64().unwrap_or(0) > 1000, "{lin:#}");
    let results_dir = results.join("zk-sync-1/latest");
    let history = std::fs::read_to_string(results_dir.join("history.jsonl")).expect("history");
    assert!(
        history.contains("\"start-partition\""),
        "the nemesis never partitioned"
    );
    let test: Value = serde_json::from_str(
        &std::fs::read_to_string(results_dir.join("test.json")).expect("test.json"),
    )
    .expect("test.json parses");
    assert_eq!(test["read_mode"], json!("sync"));

    let (code, out, err) = faultline(&state, &["cluster", "down", "--name-prefix", PREFIX]);
    assert_eq!(code, 0, "{out}{err}");
    let left = leftovers(PREFIX, &state, "10.78.80.");
    assert!(left.is_empty(), "left behind: {left:#?}");
}
