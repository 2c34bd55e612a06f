//! Nemeses on a 3-node local cluster running etcd, end to end: a partition
//! isolates a node (the majority still takes writes, the minority's time
//! out) and heal restores it; kill and restart; pause and resume of the
//! leader; packet loss rules; packet delay through the NFQUEUE program;
//! clock faults refused on the local cluster; and `faultline heal`, a
//! fresh process with no record, undoing all of them. Needs root and etcd
//! (installed when missing); ignored unless built by root.
#![cfg(feature = "controller")]

mod cluster_support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster_support::{etcd_put as put, leftovers, Teardown};
use faultline::client::{Client, Invocation, NoopClient, Status};
use faultline::cluster::{local, Cluster, Node};
use faultline::db::{self, Db};
use faultline::generator::time_limit;
use faultline::history::{OpType, Process};
use faultline::nemesis::{
    completion_op, heal_all, Fault, Nemeses, Nemesis, NemesisClient, NemesisOptions,
    PacketBehavior, PartitionSpec, Schedule, Targets,
};
use faultline::runner::{run_workers, Recorder, Stop, WorkerConfig};
use faultline::system::etcd::{Etcd, EtcdOptions};
use serde_json::json;

const SUBNET: &str = "10.78.40.0/24";

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

/// Milliseconds a TCP connect from `from` to `to`'s etcd port took, or
/// `None` when it did not connect within 2 s.
fn connect_ms(from: &Node, to: &Node) -> Option<u64> {
    let cmd = format!(
        "s=$(date +%s%N); timeout 2 bash -c 'exec 3<>/dev/tcp/{}/2379' 2>/dev/null || exit 1; \
         echo $(( ($(date +%s%N) - s) / 1000000 ))",
        to.host()
    );
    let out = from.exec(&cmd).expect("ssh to node");
    if !out.success() {
        return None;
    }
    out.stdout.trim().parse().ok()
}

/// Every line of `iptables -S` on the node that mentions faultline.
fn our_rules(node: &Node) -> Vec<String> {
    node.run("iptables -w -S")
        .expect("iptables -S")
        .lines()
        .filter(|l| l.contains("FAULTLINE"))
        .map(String::from)
        .collect()
}

/// The etcd process's state letter (`S`, `R`, `T`...).
fn etcd_state(node: &Node) -> String {
    node.run("cut -d' ' -f3 /proc/$(cat /opt/faultline/etcd/etcd.pid)/stat")
        .expect("etcd state")
        .trim()
        .to_string()
}

/// Heals when dropped, so a failing test leaves no fault for the next.
struct HealOnDrop(Arc<Nemeses>);

impl Drop for HealOnDrop {
    fn drop(&mut self) {
        if let Err(e) = self.0.heal() {
            eprintln!("heal on drop failed: {e}");
        }
    }
}

fn nemeses(cluster: &Cluster, etcd: &Etcd, record: &Path) -> Nemeses {
    Nemeses::new(
        cluster.clone(),
        Some(Arc::new(etcd.clone())),
        NemesisOptions {
            seed: 7,
            record: Some(record.to_path_buf()),
            helper: Some(env!("CARGO_BIN_EXE_faultline").into()),
        },
    )
}

#[test]
#[cfg_attr(
    not(faultline_root),
    ignore = "needs root: builds a local cluster and runs etcd"
)]
fn nemeses_on_local_etcd() {
    cluster_support::ensure(&cluster_support::db("etcd"));
    let guard = Teardown::new("flnm", SUBNET, 3);
    let state_dir = guard.state_dir();
    let cluster = local::up(&guard.spec).expect("cluster up");
    let nodes = cluster.nodes().to_vec();
    let etcd = Etcd::new(EtcdOptions::default(), &nodes);
    db::setup(&etcd, &cluster, Duration::from_secs(30)).expect("etcd setup");
    let record = state_dir.join("run/nemesis.json");
    let nem = Arc::new(nemeses(&cluster, &etcd, &record));
    let _heal = HealOnDrop(nem.clone());
    nem.setup().expect("setup");
    let (n1, n2, n3) = (&nodes[0], &nodes[1], &nodes[2]);

    // --- Partition: n1 alone. ---
    let fault = Fault::StartPartition(PartitionSpec::Components(vec![
        vec!["n1".into()],
        vec!["n2".into(), "n3".into()],
    ]));
    let done = nem.invoke(&fault).expect("start-partition");
    assert_eq!(done["grudge"]["n1"], json!(["n2", "n3"]), "{done}");
    assert_eq!(done["grudge"]["n2"], json!(["n1"]), "{done}");
    assert!(
        record.exists(),
        "the partition is recorded before it is done"
    );
    let rules = our_rules(n1);
    assert!(
        rules
            .iter()
            .any(|r| r.contains("-A FAULTLINE -s 10.78.40.12/32 -j DROP")),
        "{rules:?}"
    );
    // The controller still reaches the isolated node (its SSH works, and the
    // bridge address is in no rule).
    assert!(
        rules.iter().all(|r| !r.contains("10.78.40.1/")),
        "{rules:?}"
    );
    assert_eq!(connect_ms(n1, n2), None, "n1 still reaches n2");
    assert_eq!(connect_ms(n3, n1), None, "n3 still reaches n1");
    assert!(connect_ms(n2, n3).is_some(), "n2 and n3 must still talk");
    wait_for("majority takes a write", Duration::from_secs(20), || {
        put(n2, "k", "majority").ok()
    });
    let t = Instant::now();
    let minority = put(n1, "k", "minority");
    assert!(minority.is_err(), "the isolated node accepted a write");
    eprintln!(
        "minority put failed after {:.1} s: {}",
        t.elapsed().as_secs_f64(),
        minority.unwrap_err()
    );

    let healed = nem.invoke(&Fault::StopPartition).expect("stop-partition");
    assert_eq!(healed["healed"], json!(["n1", "n2", "n3"]));
    for n in &nodes {
        assert!(our_rules(n).is_empty(), "{}: {:?}", n.name(), our_rules(n));
    }
    assert!(connect_ms(n1, n2).is_some() && connect_ms(n3, n1).is_some());
    etcd.wait_healthy(&nodes, Duration::from_secs(30))
        .expect("healthy after the partition");
    wait_for(
        "the healed node takes writes",
        Duration::from_secs(20),
        || put(n1, "k", "healed").ok(),
    );

    // --- Kill and restart, through the runner's nemesis client. ---
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut client = NemesisClient::new(nem.clone());
    let inv = |f: &str, value: serde_json::Value| Invocation {
        process: Process::Nemesis,
        f: f.into(),
        value,
        key: None,
        timeout: Duration::from_secs(60),
    };
    let c = rt.block_on(client.invoke(&inv("kill", json!(["n3"]))));
    assert_eq!(c.status, Status::Info);
    assert_eq!(c.value, json!({"killed": ["n3"]}), "{c:?}");
    assert!(c.error.is_none(), "{c:?}");
    assert!(!etcd.is_running(n3).unwrap());
    let c = rt.block_on(client.invoke(&inv("start", json!(null))));
    assert_eq!(c.value, json!({"started": ["n3"]}), "{c:?}");
    assert!(etcd.is_running(n3).unwrap());
    etcd.wait_healthy(&nodes, Duration::from_secs(30))
        .expect("healthy after restart");
    // A bad op is an info completion with the reason, not a panic.
    let c = rt.block_on(client.invoke(&inv("kill", json!("most"))));
    assert_eq!(c.status, Status::Info);
    assert!(c.error.is_some_and(|e| e.to_string().contains("most")));

    // --- Pause and resume the leader. ---
    let leader = wait_for("a leader", Duration::from_secs(10), || {
        etcd.primaries(&nodes).ok()?.into_iter().next()
    });
    let done = nem
        .invoke(&Fault::Pause(Targets::Primaries))
        .expect("pause");
    assert_eq!(done["paused"], json!([leader]));
    let leader_node = cluster.node(&leader).unwrap();
    assert_eq!(etcd_state(leader_node), "T");
    let done = nem.invoke(&Fault::Resume).expect("resume");
    assert_eq!(done["resumed"], json!([leader]));
    assert_ne!(etcd_state(leader_node), "T");
    etcd.wait_healthy(&nodes, Duration::from_secs(30))
        .expect("healthy after resume");

    // --- Packet loss: rules present, then gone. ---
    let loss = Fault::StartPacket {
        targets: Targets::All,
        behavior: PacketBehavior {
            loss: Some(0.5),
            delay_ms: None,
            ..PacketBehavior::default()
        },
    };
    let done = nem.invoke(&loss).expect("start-packet loss");
    assert_eq!(done["nodes"], json!(["n1", "n2", "n3"]));
    for n in &nodes {
        let rules = our_rules(n);
        let lossy = rules
            .iter()
            .filter(|r| r.contains("-A FAULTLINE-PKT") && r.contains("--probability 0.5"))
            .count();
        assert_eq!(lossy, 2, "{}: {rules:?}", n.name());
    }
    nem.invoke(&Fault::StopPacket).expect("stop-packet");
    for n in &nodes {
        assert!(our_rules(n).is_empty(), "{}: {:?}", n.name(), our_rules(n));
    }

    // --- Packet delay without netem: the NFQUEUE program on n1. ---
    let before = connect_ms(n1, n2).expect("n1 reaches n2");
    let delay = Fault::StartPacket {
        targets: Targets::Nodes(vec!["n1".into()]),
        behavior: PacketBehavior {
            loss: None,
            delay_ms: Some(150),
            ..PacketBehavior::default()
        },
    };
    let done = nem.invoke(&delay).expect("start-packet delay");
    assert_eq!(done["delay"][0]["via"], "nfqueue", "{done}");
    let during = connect_ms(n1, n2).expect("delayed, not cut");
    assert!(
        (140..1500).contains(&during),
        "connect took {during} ms with 150 ms delay (before: {before} ms)"
    );
    nem.invoke(&Fault::StopPacket).expect("stop-packet");
    let after = connect_ms(n1, n2).expect("n1 reaches n2 after");
    assert!(after < 100, "connect took {after} ms after heal");
    assert!(
        !n1.exec("pgrep -f nfq-dela[y]").unwrap().success(),
        "delay program left running"
    );
    eprintln!("connect n1→n2: {before} ms, delayed {during} ms, after {after} ms");

    // --- Clock: refused on the local cluster, with the reason. ---
    let bump = Fault::BumpClock {
        targets: Targets::One,
        delta_ms: 500,
    };
    let result = nem.invoke(&bump);
    let op = completion_op(&bump, &result);
    let e = result
        .expect_err("clock skew must be refused locally")
        .to_string();
    assert!(
        e.contains("bump-clock refused") && e.contains("real-time clock"),
        "{e}"
    );
    assert_eq!((op.process, op.kind), (Process::Nemesis, OpType::Info));
    assert!(op.error.is_some());

    // --- A schedule driven by the runner: start/stop pairs recorded as
    // nemesis info ops, with what was done. ---
    let defs = faultline::nemesis::config::load_named(
        Some(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("nemeses")
                .as_path(),
        ),
        &["partition".into(), "kill".into()],
    )
    .expect("nemesis files");
    let requested: Vec<_> = defs.iter().map(|d| d.requested()).collect();
    let schedule = Schedule::new(defs, Some(Duration::from_millis(700)), 3).with_primaries(true);
    let history = rt
        .block_on(run_workers(
            Box::new(time_limit(3_000_000_000, schedule)),
            Box::new(|_| Box::new(NoopClient)),
            Some(Box::new(NemesisClient::new(nem.clone()))),
            &WorkerConfig::new(1, vec!["n1".into()]),
            Recorder::in_memory(Instant::now()),
            Stop::new(),
        ))
        .expect("run");
    let (ops, result) = heal_all(nem.as_ref());
    result.expect("heal after the schedule");
    let nem_ops: Vec<_> = history
        .ops
        .iter()
        .filter(|o| o.process == Process::Nemesis)
        .collect();
    let fs: Vec<&str> = nem_ops.iter().map(|o| o.f.as_str()).collect();
    assert!(
        fs.starts_with(&[
            "start-partition",
            "start-partition",
            "stop-partition",
            "stop-partition",
            "kill",
            "kill"
        ]),
        "{fs:?}"
    );
    assert!(nem_ops.iter().all(|o| o.kind == OpType::Info));
    assert!(nem_ops[1].value.get("grudge").is_some(), "{:?}", nem_ops[1]);
    assert!(nem_ops[1].error.is_none(), "{:?}", nem_ops[1]);
    assert!(nem_ops[5].value.get("killed").is_some(), "{:?}", nem_ops[5]);
    // etcd names its leader: the first partition cuts it off.
    assert_eq!(nem_ops[0].value, json!("primaries"));
    // What results.json would say: both kinds took effect, with windows.
    let cov = faultline::nemesis::coverage::fault_coverage(&history, &requested);
    for kind in ["partition", "kill"] {
        assert!(cov[kind].took_effect >= 1, "{kind}: {cov:?}");
        assert_eq!(cov[kind].refused, 0, "{kind}: {cov:?}");
        assert!(!cov[kind].windows.is_empty(), "{kind}: {cov:?}");
    }
    assert_eq!(faultline::nemesis::coverage::missing_reason(&cov), None);
    assert_eq!((ops[0].kind, ops[1].kind), (OpType::Info, OpType::Info));
    for n in &nodes {
        assert!(our_rules(n).is_empty(), "{}: {:?}", n.name(), our_rules(n));
    }
    etcd.wait_healthy(&nodes, Duration::from_secs(30))
        .expect("healthy after the schedule");

    // --- Leave everything broken, lose the record, heal from a fresh
    // process: `faultline heal`. ---
    nem.invoke(&Fault::StartPartition(PartitionSpec::MajoritiesRing))
        .expect("ring");
    nem.invoke(&loss).expect("loss");
    nem.invoke(&Fault::Kill(Targets::Nodes(vec!["n3".into()])))
        .expect("kill n3");
    nem.invoke(&Fault::Pause(Targets::Nodes(vec!["n2".into()])))
        .expect("pause n2");
    assert!(!our_rules(n1).is_empty());
    std::fs::remove_file(&record).expect("drop the record");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["heal", "--state-dir"])
        .arg(&state_dir)
        .output()
        .expect("run faultline heal");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "faultline heal failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("n3"),
        "heal should report restarting n3: {stdout}"
    );
    for n in &nodes {
        assert!(our_rules(n).is_empty(), "{}: {:?}", n.name(), our_rules(n));
        assert!(etcd.is_running(n).unwrap(), "{} not running", n.name());
        assert_ne!(etcd_state(n), "T", "{} still paused", n.name());
    }
    etcd.wait_healthy(&nodes, Duration::from_secs(30))
        .expect("healthy after faultline heal");

    // --- A fresh Cluster object, no record at all; heal twice. ---
    nem.invoke(&Fault::StartPartition(PartitionSpec::Halves))
        .expect("halves");
    nem.invoke(&Fault::Kill(Targets::Nodes(vec!["n1".into()])))
        .expect("kill n1");
    let fresh = Cluster::local(&state_dir).expect("attach");
    let fresh_nem = Nemeses::new(
        fresh,
        Some(Arc::new(Etcd::new(EtcdOptions::default(), &nodes))),
        NemesisOptions::default(),
    );
    let (ops, result) = heal_all(&fresh_nem);
    let done = result.expect("fresh heal");
    assert_eq!(done["db"]["started"], json!(["n1"]), "{done}");
    assert_eq!(ops[0].f, "heal");
    assert_eq!(ops[1].value, done);
    fresh_nem.heal().expect("heal twice");
    for n in &nodes {
        assert!(our_rules(n).is_empty(), "{}: {:?}", n.name(), our_rules(n));
    }
    etcd.wait_healthy(&nodes, Duration::from_secs(30))
        .expect("healthy after the fresh heal");
    nem.heal().expect("heal from the first nemesis too");
    assert!(!record.exists(), "a full heal removes the record");

    db::teardown(&etcd, &cluster).expect("teardown");
    // Heal on a torn-down database (no member running, nothing recorded)
    // must not start a new cluster.
    drop(_heal);
    for n in &nodes {
        assert!(
            !etcd.is_running(n).unwrap(),
            "heal started etcd on {}",
            n.name()
        );
    }
    drop(cluster);
    drop(guard);
    let left = leftovers("flnm", &state_dir, "10.78.40.");
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// For every node, the peers it can open a TCP connection to (port 22),
/// all probed at once.
fn reachable(nodes: &[Node]) -> Vec<(String, String, bool)> {
    let peers: Vec<(String, String)> = nodes
        .iter()
        .map(|n| (n.name().to_string(), n.host().to_string()))
        .collect();
    let mut out = Vec::new();
    for n in nodes {
        let mut script = String::new();
        for (name, ip) in peers.iter().filter(|(name, _)| name != n.name()) {
            script.push_str(&format!(
                "(timeout 1 bash -c 'exec 3<>/dev/tcp/{ip}/22' 2>/dev/null && echo '{name} yes' || echo '{name} no') & "
            ));
        }
        script.push_str("wait");
        let got = n.run(&script).expect("probe peers");
        for line in got.lines() {
            let mut w = line.split_whitespace();
            if let (Some(peer), Some(ok)) = (w.next(), w.next()) {
                out.push((n.name().to_string(), peer.to_string(), ok == "yes"));
            }
        }
    }
    out.sort();
    out
}

#[test]
#[cfg_attr(not(faultline_root), ignore = "needs root: builds a local cluster")]
fn partition_shapes_cut_exactly_their_grudge() {
    cluster_support::ensure(&[]);
    let guard = Teardown::new("flnr", "10.78.41.0/24", 5);
    let state_dir = guard.state_dir();
    let cluster = local::up(&guard.spec).expect("cluster up");
    let nodes = cluster.nodes().to_vec();
    let nem = Arc::new(Nemeses::new(
        cluster.clone(),
        None,
        NemesisOptions {
            seed: 11,
            record: Some(state_dir.join("nemesis.json")),
            helper: None,
        },
    ));
    let _heal = HealOnDrop(nem.clone());
    nem.setup().expect("setup");
    let all_pairs = reachable(&nodes);
    assert_eq!(all_pairs.len(), 20);
    assert!(all_pairs.iter().all(|p| p.2), "{all_pairs:?}");

    for shape in [
        PartitionSpec::One,
        PartitionSpec::Halves,
        PartitionSpec::RandomHalves,
        PartitionSpec::MajoritiesRing,
        PartitionSpec::Bridge,
        PartitionSpec::MinorityThird,
    ] {
        let done = nem
            .invoke(&Fault::StartPartition(shape.clone()))
            .unwrap_or_else(|e| panic!("{shape:?}: {e}"));
        let grudge = &done["grudge"];
        let drops = |a: &str, b: &str| {
            grudge[a]
                .as_array()
                .is_some_and(|p| p.iter().any(|x| x == b))
        };
        for (a, b, ok) in reachable(&nodes) {
            // A connection needs both directions: a's SYN reaches b and b's
            // answer reaches a.
            let expected = !drops(&a, &b) && !drops(&b, &a);
            assert_eq!(ok, expected, "{shape:?}: {a}→{b} (grudge {grudge})");
        }
        // Some pair is cut, and the controller still reaches every node.
        assert!(grudge.as_object().is_some_and(|g| !g.is_empty()), "{done}");
        for n in &nodes {
            n.run("true").expect("controller reaches the node");
        }
        if shape == PartitionSpec::MajoritiesRing {
            // Every node still sees a majority (itself and two others).
            for n in &nodes {
                let dropped = grudge[n.name()].as_array().map_or(0, |p| p.len());
                assert_eq!(dropped, 2, "{}: {grudge}", n.name());
            }
        }
    }

    // `faultline heal --no-db`, with the record, lifts the last shape.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["heal", "--no-db", "--state-dir"])
        .arg(&state_dir)
        .output()
        .expect("run faultline heal");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "faultline heal failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("recorded faults"), "{stdout}");
    assert!(reachable(&nodes).iter().all(|p| p.2));
    for n in &nodes {
        assert!(our_rules(n).is_empty(), "{}: {:?}", n.name(), our_rules(n));
    }
    assert!(!state_dir.join("nemesis.json").exists());

    // Without a database, process faults are refused with the reason.
    let e = nem
        .invoke(&Fault::Kill(Targets::One))
        .expect_err("kill without a db")
        .to_string();
    assert!(
        e.contains("kill refused") && e.contains("no database"),
        "{e}"
    );

    drop(_heal);
    drop(cluster);
    drop(guard);
    let left = leftovers("flnr", &state_dir, "10.78.41.");
    assert!(left.is_empty(), "left behind: {left:?}");
}
