//! etcd on a 3-node local cluster, end to end: setup and health from the
//! controller, kill -9 of a member and its rejoin, pause and resume of the
//! leader, log collection, teardown. Needs root and etcd (installed when
//! missing); ignored unless built by root.
#![cfg(feature = "controller")]

mod cluster_support;

use std::time::{Duration, Instant};

use cluster_support::{b64, etcd_put as put, http, leftovers, Teardown};
use faultline::cluster::{local, Node};
use faultline::db::{self, Db};
use faultline::system::etcd::{Etcd, EtcdOptions};

/// A linearizable read on `node`; the value base64-encoded, if the key exists.
fn get(node: &Node, key: &str) -> Result<Option<String>, String> {
    let body = format!(r#"{{"key":"{}"}}"#, b64(key));
    let (code, answer) = http(node.host(), 2379, "POST", "/v3/kv/range", &body)?;
    if code != 200 {
        return Err(format!(
            "range on {} answered {code}: {answer}",
            node.name()
        ));
    }
    let v: serde_json::Value = serde_json::from_str(&answer).map_err(|e| e.to_string())?;
    Ok(v.pointer("/kvs/0/value")
        .and_then(|x| x.as_str())
        .map(String::from))
}

fn healthy_from_controller(node: &Node) -> bool {
    matches!(http(node.host(), 2379, "GET", "/health", ""), Ok((200, body)) if body.contains("\"true\""))
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
    ignore = "needs root: builds a local cluster and runs etcd"
)]
fn etcd_lifecycle() {
    cluster_support::ensure(&cluster_support::db("etcd"));
    let guard = Teardown::new("fltb", "10.78.22.0/24", 3);
    let state_dir = guard.state_dir();
    let t0 = Instant::now();
    let cluster = local::up(&guard.spec).expect("cluster up");
    let nodes = cluster.nodes().to_vec();
    let etcd = Etcd::new(EtcdOptions::default(), &nodes);
    db::setup(&etcd, &cluster, Duration::from_secs(30)).expect("etcd setup");
    eprintln!(
        "3 nodes + etcd healthy in {:.2} s",
        t0.elapsed().as_secs_f64()
    );

    // Healthy and serving, seen from the controller.
    for n in &nodes {
        assert!(healthy_from_controller(n), "{} not healthy", n.name());
        assert!(etcd.is_running(n).unwrap());
    }
    put(&nodes[0], "k", "v1").expect("put");
    assert_eq!(get(&nodes[2], "k").unwrap(), Some(b64("v1")));
    // Each node keeps its data in its own work dir (bind-mounted per node).
    for i in 1..=3 {
        let member = state_dir.join(format!("nodes/n{i}/work/etcd/data/member"));
        assert!(member.is_dir(), "{} missing", member.display());
    }
    let leaders = etcd.primaries(&nodes).unwrap();
    assert_eq!(leaders.len(), 1, "{leaders:?}");
    // Starting a running node again is a no-op.
    etcd.start(&nodes[0]).expect("second start");

    // kill -9 one member; the others keep serving; restart; it rejoins and
    // catches up on what it missed.
    let victim = &nodes[1];
    let old_pid = victim.run("cat /opt/faultline/etcd/etcd.pid").unwrap();
    etcd.kill(victim).expect("kill");
    assert!(!etcd.is_running(victim).unwrap());
    assert!(!healthy_from_controller(victim));
    etcd.kill(victim).expect("killing a dead member is fine");
    let others = [nodes[0].clone(), nodes[2].clone()];
    etcd.wait_healthy(&others, Duration::from_secs(15))
        .expect("majority healthy");
    wait_for(
        "write with one member down",
        Duration::from_secs(15),
        || put(&nodes[0], "k", "v2").ok(),
    );
    etcd.start(victim).expect("restart");
    let new_pid = victim.run("cat /opt/faultline/etcd/etcd.pid").unwrap();
    assert_ne!(old_pid, new_pid);
    etcd.wait_healthy(std::slice::from_ref(victim), Duration::from_secs(20))
        .expect("rejoined");
    wait_for(
        "restarted member catches up",
        Duration::from_secs(10),
        || (get(victim, "k").ok()? == Some(b64("v2"))).then_some(()),
    );

    // Pause the leader: the others elect a new one; resume: all healthy.
    let leader_name = wait_for("a leader", Duration::from_secs(10), || {
        etcd.primaries(&nodes).ok()?.into_iter().next()
    });
    let leader = cluster.node(&leader_name).unwrap().clone();
    etcd.pause(&leader).expect("pause");
    let state = leader
        .run("cut -d' ' -f3 /proc/$(cat /opt/faultline/etcd/etcd.pid)/stat")
        .unwrap();
    assert_eq!(state.trim(), "T", "paused etcd should be stopped");
    assert!(
        etcd.is_running(&leader).unwrap(),
        "paused counts as running"
    );
    let rest: Vec<Node> = nodes
        .iter()
        .filter(|n| n.name() != leader_name)
        .cloned()
        .collect();
    let new_leader = wait_for("a new leader", Duration::from_secs(15), || {
        etcd.primaries(&rest).ok()?.into_iter().next()
    });
    assert_ne!(new_leader, leader_name);
    wait_for(
        "write while the old leader is paused",
        Duration::from_secs(15),
        || put(&rest[0], "k", "v3").ok(),
    );
    etcd.resume(&leader).expect("resume");
    etcd.wait_healthy(&nodes, Duration::from_secs(20))
        .expect("healthy after resume");
    wait_for("old leader catches up", Duration::from_secs(10), || {
        (get(&leader, "k").ok()? == Some(b64("v3"))).then_some(())
    });

    // Logs, then teardown wipes everything of etcd.
    let logs_dir = tempfile::tempdir().unwrap();
    let logs = db::collect_logs(&etcd, &cluster, logs_dir.path()).expect("logs");
    assert_eq!(logs.len(), 3);
    for l in &logs {
        assert!(
            std::fs::metadata(l).unwrap().len() > 0,
            "{} empty",
            l.display()
        );
    }
    db::teardown(&etcd, &cluster).expect("teardown");
    for n in &nodes {
        assert!(!etcd.is_running(n).unwrap());
        assert!(!n.exec("test -e /opt/faultline/etcd").unwrap().success());
    }
    // Pausing a stopped database is an error naming the node.
    let err = etcd.pause(&nodes[0]).unwrap_err().to_string();
    assert!(err.contains("n1") && err.contains("not running"), "{err}");
    etcd.resume(&nodes[0]).expect("resume is always safe");

    // A member that never comes up makes wait_healthy fail, naming it.
    let err = etcd
        .wait_healthy(&nodes[..1], Duration::from_millis(500))
        .unwrap_err()
        .to_string();
    assert!(err.contains("n1") && err.contains("not running"), "{err}");

    drop(cluster);
    local::down(&state_dir, None).expect("down");
    let left = leftovers("fltb", &state_dir, "10.78.22.");
    assert!(left.is_empty(), "left behind: {left:#?}");
}

#[test]
#[cfg_attr(
    not(faultline_root),
    ignore = "needs root: builds a local cluster and runs etcd"
)]
fn etcd_from_uploaded_binary() {
    cluster_support::ensure(&cluster_support::db("etcd"));
    let guard = Teardown::new("fltc", "10.78.23.0/24", 1);
    let cluster = local::up(&guard.spec).expect("cluster up");
    let opts = EtcdOptions {
        binary: Some(
            faultline::db::DbBinary::open(std::path::Path::new("/usr/bin/etcd"))
                .expect("read /usr/bin/etcd"),
        ),
        ..EtcdOptions::default()
    };
    let etcd = Etcd::new(opts, cluster.nodes());
    let t = Instant::now();
    db::setup(&etcd, &cluster, Duration::from_secs(30)).expect("setup from uploaded binary");
    eprintln!(
        "upload + start + healthy: {:.2} s",
        t.elapsed().as_secs_f64()
    );
    let n1 = &cluster.nodes()[0];
    // The running etcd is the uploaded copy, not the system one.
    let exe = n1
        .run("readlink /proc/$(cat /opt/faultline/etcd/etcd.pid)/exe")
        .unwrap();
    assert_eq!(exe.trim(), "/opt/faultline/bin/etcd");
    put(n1, "a", "b").expect("put");
    assert_eq!(get(n1, "a").unwrap(), Some(b64("b")));
    // Uploading again over the running binary works (write and rename).
    etcd.install(n1).expect("re-install while running");
    // A polite stop, then a start: the data survives.
    etcd.stop(n1).expect("stop");
    assert!(!etcd.is_running(n1).unwrap());
    etcd.start(n1).expect("start after stop");
    etcd.wait_healthy(cluster.nodes(), Duration::from_secs(20))
        .expect("healthy after restart");
    assert_eq!(get(n1, "a").unwrap(), Some(b64("b")));
    db::teardown(&etcd, &cluster).expect("teardown");
    drop(cluster);
    local::down(&guard.state_dir(), None).expect("down");
    assert!(leftovers("fltc", &guard.state_dir(), "10.78.23.").is_empty());
}
