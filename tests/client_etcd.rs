//! The etcd client against a real 3-node etcd on a local cluster: register
//! round trips, failing compares, serializable reads, sets, and the error
//! classes a fault produces — a partitioned minority (etcd's 503 / code 14:
//! `info`), a paused node (timeout: `info` for writes), a node killed
//! mid-request (reset after sending: `info`), a killed node (connection
//! refused: `fail`). Prints per-op latency medians. Needs root
//! and etcd (installed when missing);
//! ignored unless built by root.
#![cfg(feature = "controller")]

mod cluster_support;

use std::time::{Duration, Instant};

use cluster_support::{leftovers, Teardown};
use faultline::client::kv::DataKind;
use faultline::client::{Client, Completion, Invocation, Status};
use faultline::cluster::local;
use faultline::db::{self, Db};
use faultline::history::Process;
use faultline::system::etcd::{Etcd, EtcdOptions};
use faultline::system::etcd::{EtcdClient, EtcdClientFactory, EtcdClientOptions, ReadMode};
use serde_json::{json, Value};

fn inv(f: &str, key: Option<Value>, value: Value) -> Invocation {
    Invocation {
        process: Process::Client(0),
        f: f.into(),
        value,
        key,
        timeout: Duration::from_secs(10),
    }
}

fn reg(f: &str, key: i64, value: Value) -> Invocation {
    inv(f, Some(json!(key)), value)
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

/// Opens a client of `factory` on `node`.
async fn open(factory: &EtcdClientFactory, node: &str) -> EtcdClient {
    let mut c = factory.client();
    c.open(node).await.expect("open");
    c
}

#[test]
#[cfg_attr(
    not(faultline_root),
    ignore = "needs root: builds a local cluster and runs etcd"
)]
fn etcd_client_against_a_real_cluster() {
    cluster_support::ensure(&cluster_support::db("etcd"));
    let guard = Teardown::new("flte", "10.78.50.0/24", 3);
    let state_dir = guard.state_dir();
    let cluster = local::up(&guard.spec).expect("cluster up");
    let nodes = cluster.nodes().to_vec();
    let etcd = Etcd::new(EtcdOptions::default(), &nodes);
    db::setup(&etcd, &cluster, Duration::from_secs(30)).expect("etcd setup");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    let registers = EtcdClientFactory::for_etcd(
        &etcd,
        &nodes,
        EtcdClientOptions {
            timeout: Duration::from_secs(1),
            ..EtcdClientOptions::default()
        },
    )
    .expect("factory");
    let serializable = EtcdClientFactory::for_etcd(
        &etcd,
        &nodes,
        EtcdClientOptions {
            timeout: Duration::from_secs(1),
            read_mode: ReadMode::Serializable,
            ..EtcdClientOptions::default()
        },
    )
    .expect("factory");
    let sets = EtcdClientFactory::for_etcd(
        &etcd,
        &nodes,
        EtcdClientOptions {
            timeout: Duration::from_secs(2),
            workload: "set".into(),
            kind: DataKind::Set,
            // Small pages, so a real range is paged too.
            set_page: 7,
            ..EtcdClientOptions::default()
        },
    )
    .expect("factory");
    assert_eq!(registers.node_for(4), "n2");

    let (mut c1, mut c2, mut c3) = rt.block_on(async {
        (
            open(&registers, "n1").await,
            open(&registers, "n2").await,
            open(&registers, "n3").await,
        )
    });

    // Register round trips across nodes.
    rt.block_on(async {
        assert_eq!(
            c1.invoke(&reg("read", 1, json!(null))).await,
            Completion::ok(json!(null)),
            "a missing key reads null"
        );
        assert_eq!(
            c1.invoke(&reg("write", 1, json!(3))).await,
            Completion::ok(json!(3))
        );
        assert_eq!(
            c2.invoke(&reg("read", 1, json!(null))).await,
            Completion::ok(json!(3)),
            "a linearizable read on another node sees the write"
        );
        assert_eq!(
            c3.invoke(&reg("cas", 1, json!([3, 4]))).await,
            Completion::ok(json!([3, 4]))
        );
        let bad = c2.invoke(&reg("cas", 1, json!([3, 5]))).await;
        assert_eq!(bad.status, Status::Fail, "{bad:?}");
        assert_eq!(
            c1.invoke(&reg("read", 1, json!(null))).await.value,
            json!(4),
            "the failed cas changed nothing"
        );
        // Expecting null means expecting absence.
        assert_eq!(
            c1.invoke(&reg("cas", 2, json!([null, 1]))).await.status,
            Status::Ok
        );
        assert_eq!(
            c2.invoke(&reg("cas", 2, json!([null, 9]))).await.status,
            Status::Fail
        );
        assert_eq!(
            c3.invoke(&reg("read", 2, json!(null))).await.value,
            json!(1)
        );
        // String keys are distinct from integer keys.
        let s = inv("write", Some(json!("1")), json!(7));
        assert_eq!(c1.invoke(&s).await.status, Status::Ok);
        assert_eq!(
            c2.invoke(&inv("read", Some(json!("1")), json!(null)))
                .await
                .value,
            json!(7)
        );
        assert_eq!(
            c2.invoke(&reg("read", 1, json!(null))).await.value,
            json!(4)
        );
        // Too large for etcd (over --max-request-bytes, 1.5 MiB): refused
        // with HTTP 400 before proposing, so `fail`.
        let big = c1
            .invoke(&reg("write", 3, json!("x".repeat(1_600_000))))
            .await;
        assert_eq!(big.status, Status::Fail, "{:?}", big.error);
        assert!(
            big.error.unwrap().to_string().contains("HTTP 400"),
            "a 400 from etcd"
        );

        // Serializable reads: served locally, eventually current.
        let mut s3 = open(&serializable, "n3").await;
        let t = Instant::now();
        loop {
            let r = s3.invoke(&reg("read", 1, json!(null))).await;
            assert_eq!(r.status, Status::Ok, "{r:?}");
            if r.value == json!(4) {
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(5), "stale for 5 s: {r:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });

    // Latency, one client at a time on n1 (the medians go in the report).
    rt.block_on(async {
        let mut s1 = open(&serializable, "n1").await;
        let (mut w, mut r, mut s, mut c) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for i in 0..200i64 {
            let t = Instant::now();
            assert_eq!(
                c1.invoke(&reg("write", 10, json!(i))).await.status,
                Status::Ok
            );
            w.push(t.elapsed());
            let t = Instant::now();
            assert_eq!(
                c1.invoke(&reg("read", 10, json!(null))).await.value,
                json!(i)
            );
            r.push(t.elapsed());
            let t = Instant::now();
            assert_eq!(
                s1.invoke(&reg("read", 10, json!(null))).await.status,
                Status::Ok
            );
            s.push(t.elapsed());
            let t = Instant::now();
            assert_eq!(
                c1.invoke(&reg("cas", 10, json!([i, i + 1000])))
                    .await
                    .status,
                Status::Ok
            );
            c.push(t.elapsed());
        }
        eprintln!(
            "median latency over 200 ops each: write {:?}, linearizable read {:?}, \
             serializable read {:?}, cas {:?}",
            median(w),
            median(r),
            median(s),
            median(c)
        );
    });

    // Sets: adds spread over the nodes, then a paged read from every node.
    rt.block_on(async {
        let mut clients = Vec::new();
        for n in ["n1", "n2", "n3"] {
            clients.push(open(&sets, n).await);
        }
        for v in 0..30i64 {
            let c = &mut clients[v as usize % 3];
            assert_eq!(
                c.invoke(&inv("add", None, json!(v))).await,
                Completion::ok(json!(v))
            );
        }
        let want: Vec<i64> = (0..30).collect();
        for c in &mut clients {
            let r = c.invoke(&inv("read", None, json!(null))).await;
            assert_eq!(r, Completion::ok(json!(want)), "{:?}", c.node());
        }
        // Registers and sets do not see each other.
        assert_eq!(
            c1.invoke(&reg("read", 0, json!(null))).await.value,
            json!(null)
        );
    });

    // n1 cut off from the others: a minority of one. etcd itself answers a
    // write there with 503 / code 14 after its ~7 s request timeout: `info`.
    // A linearizable read cannot complete (`fail`: a read has no effect);
    // a serializable read is served locally.
    let cut = |from: &faultline::cluster::Node, peers: &[&faultline::cluster::Node]| {
        for p in peers {
            from.run(&format!("iptables -w -A INPUT -s {} -j DROP", p.host()))
                .expect("iptables");
        }
    };
    cut(&nodes[0], &[&nodes[1], &nodes[2]]);
    cut(&nodes[1], &[&nodes[0]]);
    cut(&nodes[2], &[&nodes[0]]);
    let patient = EtcdClientFactory::for_etcd(
        &etcd,
        &nodes,
        EtcdClientOptions {
            timeout: Duration::from_secs(12),
            ..EtcdClientOptions::default()
        },
    )
    .expect("factory");
    rt.block_on(async {
        let mut p1 = open(&patient, "n1").await;
        let t = Instant::now();
        let w = p1.invoke(&reg("write", 20, json!(1))).await;
        let took = t.elapsed();
        eprintln!("minority write after {took:?}: {:?}", w.error);
        assert_eq!(w.status, Status::Info, "{w:?}");
        let e = w.error.map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("HTTP 503, code 14"), "{e}");
        let r = c1.invoke(&reg("read", 1, json!(null))).await;
        assert_eq!(r.status, Status::Fail, "{r:?}");
        let mut s1 = open(&serializable, "n1").await;
        let r = s1.invoke(&reg("read", 1, json!(null))).await;
        assert_eq!(r, Completion::ok(json!(4)), "a local read of n1's state");
    });
    for n in &nodes {
        n.run("iptables -w -F INPUT").expect("heal");
    }
    etcd.wait_healthy(&nodes, Duration::from_secs(20))
        .expect("healthy after the partition");
    // The minority's write may or may not be applied later (that is what
    // `info` says); only check that n1 serves again.
    rt.block_on(async {
        let t = Instant::now();
        while c1.invoke(&reg("read", 20, json!(null))).await.status != Status::Ok {
            assert!(
                t.elapsed() < Duration::from_secs(15),
                "n1 does not serve after heal"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });

    // A paused node: the write is sent and never answered within the
    // timeout, so `info`; a read the same way is `fail` (no effect).
    etcd.pause(&nodes[1]).expect("pause n2");
    rt.block_on(async {
        let t = Instant::now();
        let w = c2.invoke(&reg("write", 1, json!(8))).await;
        let took = t.elapsed();
        assert_eq!(w.status, Status::Info, "{w:?}");
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(3),
            "{took:?}"
        );
        let r = c2.invoke(&reg("read", 1, json!(null))).await;
        assert_eq!(r.status, Status::Fail, "{r:?}");
        // Reopening (as the runner does after `info`) works: the kernel
        // still accepts connections for the stopped process.
        c2.close().await.expect("close");
        c2.open("n2").await.expect("reopen on a paused node");
    });
    etcd.resume(&nodes[1]).expect("resume n2");
    etcd.wait_healthy(&nodes, Duration::from_secs(20))
        .expect("healthy after resume");

    // Killed while a request is in flight: the connection is reset after
    // the request was sent, so `info`, and long before the 5 s timeout.
    etcd.pause(&nodes[2]).expect("pause n3");
    let slow = EtcdClientFactory::for_etcd(
        &etcd,
        &nodes,
        EtcdClientOptions {
            timeout: Duration::from_secs(5),
            ..EtcdClientOptions::default()
        },
    )
    .expect("factory");
    let mut victim = rt.block_on(open(&slow, "n3"));
    let in_flight = rt.spawn(async move {
        let t = Instant::now();
        let c = victim.invoke(&reg("write", 1, json!(9))).await;
        (c, t.elapsed())
    });
    std::thread::sleep(Duration::from_millis(300));
    etcd.kill(&nodes[2]).expect("kill n3");
    let (reset, took) = rt.block_on(in_flight).expect("task");
    assert_eq!(reset.status, Status::Info, "{reset:?}");
    assert!(took < Duration::from_secs(4), "{took:?}: {reset:?}");
    eprintln!("killed mid-request after {took:?}: {:?}", reset.error);

    // n3 is down: nothing listens, the request cannot be sent: `fail`.
    rt.block_on(async {
        let w = c3.invoke(&reg("write", 1, json!(10))).await;
        assert_eq!(w.status, Status::Fail, "{w:?}");
        assert!(w.error.unwrap().to_string().contains("refused"));
        c3.close().await.expect("close");
        let e = c3.open("n3").await.unwrap_err();
        assert!(e.message.contains("refused"), "{e}");
        // The rest of the cluster serves on (after an election, if n3 led).
        let t = Instant::now();
        loop {
            let w = c1.invoke(&reg("write", 1, json!(11))).await;
            if w.status == Status::Ok {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(15),
                "majority down? {w:?}"
            );
        }
    });
    etcd.start(&nodes[2]).expect("restart n3");
    etcd.wait_healthy(&nodes, Duration::from_secs(20))
        .expect("n3 back");
    rt.block_on(async {
        c3.open("n3").await.expect("open after restart");
        assert_eq!(
            c3.invoke(&reg("read", 1, json!(null))).await.value,
            json!(11)
        );
        for c in [&mut c1, &mut c2, &mut c3] {
            c.close().await.expect("close");
        }
    });
    drop(rt);

    db::teardown(&etcd, &cluster).expect("teardown");
    drop(cluster);
    local::down(&state_dir, None).expect("down");
    let left = leftovers("flte", &state_dir, "10.78.50.");
    assert!(left.is_empty(), "left behind: {left:#?}");
}
