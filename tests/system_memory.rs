//! "How to add a system" (docs/architecture.md), followed with the memory
//! system: looked up in the registry by name, configured from a test spec,
//! deployed on nodes, set up as any db is, and a workload run through its
//! client factory to a valid verdict. Its lifecycle is real: a killed
//! node refuses its clients, a paused one leaves them unknown.

use faultline::check::registry::{check_all, CheckContext};
use faultline::check::Validity;
use faultline::client::{Invocation, Status};
use faultline::cluster::{Capabilities, Cluster, ClusterKind, Node};
use faultline::control::{ControlError, ErrorKind, Output, Remote};
use faultline::db;
use faultline::history::Process;
use faultline::runner::lifecycle::TestSpec;
use faultline::runner::{run_workers, Recorder, Stop, WorkerConfig};
use faultline::system::{self, ClientSettings};
use faultline::workload::{GenOptions, Workload};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A node whose remote runs nothing (the memory system never asks).
#[derive(Debug)]
struct NoRemote(String);

impl Remote for NoRemote {
    fn node(&self) -> &str {
        &self.0
    }

    fn default_timeout(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn exec_timeout(&self, command: &str, _timeout: Duration) -> Result<Output, ControlError> {
        Err(ControlError::new(
            &self.0,
            command,
            ErrorKind::Connect("no remote in this test".into()),
        ))
    }

    fn upload(&self, _local: &Path, _remote: &str, _mode: i32) -> Result<(), ControlError> {
        Ok(())
    }

    fn download(&self, _remote: &str, _local: &Path) -> Result<(), ControlError> {
        Ok(())
    }
}

fn cluster() -> Cluster {
    let nodes = (1..=3)
        .map(|i| {
            let name = format!("n{i}");
            Node::new(
                &name,
                &format!("10.9.0.{i}"),
                Arc::new(NoRemote(name.clone())),
                Capabilities {
                    can_skew_clock: false,
                    has_netem: false,
                    has_iptables: false,
                    shares_host: false,
                },
                "/opt/faultline",
            )
        })
        .collect();
    Cluster::new(nodes, ClusterKind::Hosts)
}

/// "How to add a system" (docs/architecture.md), followed with the memory
/// system: it is found in the registry by name, configured from a test,
/// deployed, set up as any db is, and a workload runs through its client
/// factory to a valid verdict; killing a node refuses its clients.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_system_runs_a_workload_through_the_registry() {
    let system = system::find("memory").expect("registered");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads");
    let w = Workload::find("register", &dir).expect("workload");
    system::check_workload(system, &w).expect("runs registers");
    let test = TestSpec {
        db: "memory".into(),
        ..TestSpec::default()
    };
    let configured = system.configure(&test.choice()).expect("configured");
    let cluster = cluster();
    let deployed = configured.deploy(cluster.nodes()).expect("deployed");
    let db = deployed.db();
    assert_eq!(db.name(), "memory");
    db::setup(db.as_ref(), &cluster, deployed.healthy_within()).expect("set up");
    let factory = deployed
        .client_factory(&ClientSettings {
            workload: &w,
            nodes: cluster.nodes(),
            op_timeout: Duration::from_secs(1),
        })
        .expect("clients");
    let gen = w.generator(
        3,
        GenOptions {
            rate: None,
            time_limit_ns: Some(200_000_000),
        },
    );
    let names = cluster.nodes().iter().map(|n| n.name().to_string());
    let cfg = WorkerConfig::new(3, names.collect());
    let h = run_workers(
        gen,
        factory,
        None,
        &cfg,
        Recorder::in_memory(Instant::now()),
        Stop::new(),
    )
    .await
    .expect("run");
    assert!(h.len() > 20, "{} events", h.len());
    let ctx = CheckContext {
        linearizable_reads: configured.reads().linearizable(),
        consistency_models: vec!["strict-serializable".to_string()],
        classic: w.classic_options(),
        ..CheckContext::new(Some(w.model.clone()), 1 << 30)
    };
    let (v, results, summary) = check_all(&h, &w.checkers, &ctx);
    assert_eq!(v, Validity::Valid, "{summary:?} {results}");

    // Its lifecycle is real: a killed node refuses, a paused one times out.
    let n1 = &cluster.nodes()[0];
    db.kill(n1).expect("kill");
    assert!(!db.is_running(n1).expect("running?"));
    let mut client = deployed
        .client_factory(&ClientSettings {
            workload: &w,
            nodes: cluster.nodes(),
            op_timeout: Duration::from_secs(1),
        })
        .expect("clients")(0);
    client.open("n1").await.expect("open");
    let read = Invocation {
        process: Process::Client(0),
        f: "read".into(),
        value: Value::Null,
        key: Some(json!(1)),
        timeout: Duration::from_secs(1),
    };
    let done = client.invoke(&read).await;
    assert_eq!(done.status, Status::Fail);
    assert_eq!(done.error, Some(json!("connection refused: n1 is down")));
    let e = db
        .wait_healthy(cluster.nodes(), Duration::from_millis(30))
        .unwrap_err();
    assert!(e.to_string().contains("n1: down"), "{e}");
    db.start(n1).expect("start");
    db.pause(n1).expect("pause");
    let done = client.invoke(&read).await;
    assert_eq!(done.status, Status::Info);
    db.resume(n1).expect("resume");
    assert_eq!(client.invoke(&read).await.status, Status::Ok);
    db::teardown(db.as_ref(), &cluster).expect("teardown");
    assert!(!db.is_running(n1).expect("running?"));
}
