//! Redis with Sentinel on a 3-node local cluster through the `Db` trait:
//! setup (master n1, replicas, Sentinels) and health, replication seen from
//! the controller, kill -9 of the master and Sentinel's failover (the
//! primary changes), the old master's restart as a replica, pause and
//! resume, logs, teardown. Needs root and Debian's redis-server and
//! redis-sentinel (installed when missing);
//! ignored unless built by root.
#![cfg(feature = "controller")]

mod cluster_support;

use std::time::{Duration, Instant};

use cluster_support::{leftovers, Teardown};
use faultline::cluster::{local, Node};
use faultline::db::{self, Db};
use faultline::system::redis::{Redis, RedisOptions};

fn conn(node: &Node) -> redis::Connection {
    let c = redis::Client::open(format!("redis://{}:6379/", node.host())).expect("url");
    let conn = c
        .get_connection_with_timeout(Duration::from_secs(2))
        .expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    conn
}

fn role(node: &Node) -> Option<String> {
    let c = redis::Client::open(format!("redis://{}:6379/", node.host())).ok()?;
    let mut conn = c
        .get_connection_with_timeout(Duration::from_millis(500))
        .ok()?;
    // A paused server accepts the connection (the kernel does) but never
    // answers.
    conn.set_read_timeout(Some(Duration::from_millis(500)))
        .ok()?;
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query(&mut conn)
        .ok()?;
    info.lines()
        .find_map(|l| l.trim().strip_prefix("role:").map(String::from))
}

fn wait_for<T>(what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let t = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(t.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
#[cfg_attr(
    not(faultline_root),
    ignore = "needs root: builds a local cluster and runs Redis"
)]
fn redis_sentinel_lifecycle() {
    cluster_support::ensure(&cluster_support::db("redis"));
    let guard = Teardown::new("flrd2", "10.78.91.0/24", 3);
    let state_dir = guard.state_dir();
    let cluster = local::up(&guard.spec).expect("cluster up");
    let nodes = cluster.nodes().to_vec();
    let r = Redis::new(RedisOptions::default(), &nodes);
    assert_eq!(r.quorum(), 2);
    let t0 = Instant::now();
    db::setup(&r, &cluster, Duration::from_secs(60)).expect("redis setup");
    eprintln!(
        "redis + sentinels healthy in {:.2} s",
        t0.elapsed().as_secs_f64()
    );

    // n1 is the master, the others replicate it.
    assert_eq!(r.primaries(&nodes).unwrap(), vec!["n1".to_string()]);
    assert_eq!(role(&nodes[0]).as_deref(), Some("master"));
    assert_eq!(role(&nodes[1]).as_deref(), Some("slave"));
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("v1")
        .query(&mut conn(&nodes[0]))
        .unwrap();
    let got: Option<String> = wait_for("replication to n3", Duration::from_secs(5), || {
        let v: Option<String> = redis::cmd("GET")
            .arg("k")
            .query(&mut conn(&nodes[2]))
            .ok()?;
        v.is_some().then_some(v)
    });
    assert_eq!(got.as_deref(), Some("v1"));
    // A replica refuses writes.
    let refused: redis::RedisResult<()> = redis::cmd("SET")
        .arg("k")
        .arg("x")
        .query(&mut conn(&nodes[1]));
    let e = refused.unwrap_err();
    assert_eq!(e.code(), Some("READONLY"), "{e}");
    // Each node keeps its own directory.
    for i in 1..=3 {
        let conf = state_dir.join(format!("nodes/n{i}/work/redis/sentinel.conf"));
        assert!(conf.is_file(), "{} missing", conf.display());
    }
    // Starting a running node again is a no-op.
    r.start(&nodes[1]).expect("second start");

    // Kill the master: the Sentinels promote a replica.
    r.kill(&nodes[0]).expect("kill");
    assert!(!r.is_running(&nodes[0]).unwrap());
    let t = Instant::now();
    let new = wait_for("failover", Duration::from_secs(30), || {
        let p = r.primaries(&nodes).ok()?;
        (p.len() == 1 && p[0] != "n1").then(|| p[0].clone())
    });
    eprintln!(
        "failover to {new} {:.1} s after the kill",
        t.elapsed().as_secs_f64()
    );
    let promoted = nodes.iter().find(|n| n.name() == new).unwrap();
    assert_eq!(
        wait_for("promoted master", Duration::from_secs(10), || {
            role(promoted).filter(|r| r == "master")
        }),
        "master"
    );
    // The acknowledged write survived this failover (it had replicated).
    let v: Option<String> = redis::cmd("GET")
        .arg("k")
        .query(&mut conn(promoted))
        .unwrap();
    assert_eq!(v.as_deref(), Some("v1"));

    // The old master comes back as a replica of the new one, and the
    // whole cluster is healthy again.
    r.start(&nodes[0]).expect("restart");
    r.wait_healthy(&nodes, Duration::from_secs(60))
        .expect("healthy after the restart");
    assert_eq!(role(&nodes[0]).as_deref(), Some("slave"));
    assert_eq!(r.primaries(&nodes).unwrap(), vec![new.clone()]);

    // Pause and resume act on redis-server.
    r.pause(&nodes[1]).expect("pause");
    assert!(r.is_running(&nodes[1]).unwrap(), "paused counts as running");
    assert!(
        role(&nodes[1]).is_none(),
        "a paused server should not answer"
    );
    r.resume(&nodes[1]).expect("resume");
    wait_for("answer after resume", Duration::from_secs(5), || {
        role(&nodes[1])
    });
    r.resume(&nodes[1]).expect("resume twice");

    // Logs of both programs, then teardown leaves nothing running.
    let dest = tempfile::tempdir().unwrap();
    let files = db::collect_logs(&r, &cluster, dest.path()).expect("logs");
    assert!(
        files.iter().any(|f| f.ends_with("n2/redis-sentinel.log")),
        "{files:?}"
    );
    let log = std::fs::read_to_string(dest.path().join("n2/redis-sentinel.log")).unwrap();
    assert!(log.contains("+switch-master"), "{log}");
    db::teardown(&r, &cluster).expect("teardown");
    for n in &nodes {
        assert!(!r.is_running(n).unwrap());
        let out = n
            .run("pgrep -x redis-server; pgrep -x redis-sentinel; true")
            .unwrap();
        assert!(out.trim().is_empty(), "{}: still running: {out}", n.name());
    }
    local::down(&state_dir, Some("flrd2")).expect("cluster down");
    let left = leftovers("flrd2", &state_dir, "10.78.91.");
    assert!(left.is_empty(), "left behind: {left:#?}");
}
