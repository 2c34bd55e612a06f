//! The registry: finding systems, typed options, what the checkers are
//! told of reads, and the memory system walked through as "how to add a
//! system" does.

use super::*;
use crate::check::Validity;
use crate::cluster::{Capabilities, Cluster, ClusterKind};
use crate::control::{ControlError, Output, Remote};
use crate::history::{History, Op, OpType, Process};
use crate::runner::test::{check_history, CheckSettings, TestSpec};
use serde_json::{json, Value};

fn workload(name: &str) -> Workload {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads");
    Workload::find(name, &dir).expect("workload")
}

fn spec(db: &str, read_mode: &str) -> TestSpec {
    TestSpec {
        db: db.into(),
        read_mode: read_mode.into(),
        ..TestSpec::default()
    }
}

#[test]
fn every_system_is_found_by_its_name_and_db_files_by_path() {
    for name in ["etcd", "postgres", "zookeeper", "redis", "memory"] {
        assert_eq!(find(name).map(|s| s.name()), Some(name));
    }
    assert_eq!(find("x.toml").map(|s| s.name()), Some("file"));
    assert_eq!(find("file:db/x").map(|s| s.name()), Some("file"));
    assert!(find("mongodb").is_none());
    assert_eq!(known(), "etcd, postgres, zookeeper, redis, memory");
    let e = spec("mongodb", "").validate().unwrap_err();
    assert_eq!(
        e,
        "unknown db \"mongodb\" (known: etcd, postgres, zookeeper, redis, memory, \
         or a db file: FILE.toml or file:PATH)"
    );
}

#[test]
fn read_modes_are_parsed_once_per_system_and_the_default_written_out() {
    let resolved = |db: &str, mode: &str| spec(db, mode).resolved().map(|s| s.read_mode);
    assert_eq!(resolved("etcd", "").as_deref(), Ok("linearizable"));
    assert_eq!(
        resolved("etcd", "serializable").as_deref(),
        Ok("serializable")
    );
    assert_eq!(resolved("zookeeper", "").as_deref(), Ok("plain"));
    assert_eq!(resolved("zookeeper", "sync").as_deref(), Ok("sync"));
    assert_eq!(resolved("redis", "").as_deref(), Ok("replica"));
    assert_eq!(resolved("redis", "primary").as_deref(), Ok("primary"));
    assert_eq!(resolved("postgres", "").as_deref(), Ok("linearizable"));
    assert_eq!(resolved("memory", "").as_deref(), Ok("linearizable"));

    // Each system refuses the others' modes, naming the field.
    let e = resolved("etcd", "primary").unwrap_err();
    assert!(
        e.starts_with("read_mode: ") && e.contains("linearizable"),
        "{e}"
    );
    let e = resolved("zookeeper", "linearizable").unwrap_err();
    assert!(e.starts_with("read_mode: ") && e.contains("sync"), "{e}");
    let e = resolved("redis", "serializable").unwrap_err();
    assert!(e.starts_with("read_mode: ") && e.contains("replica"), "{e}");
    // Redis has no linearizable reads: asking for them is refused, not
    // quietly taken for replica reads.
    let e = resolved("redis", "linearizable").unwrap_err();
    assert!(e.starts_with("read_mode: ") && e.contains("primary"), "{e}");
    let e = resolved("postgres", "serializable").unwrap_err();
    assert_eq!(
        e,
        "read_mode: postgres has no read mode \"serializable\"; its reads are linearizable"
    );

    // Isolation is PostgreSQL's, typed there.
    let mut pg = spec("postgres", "");
    pg.isolation = "repeatable-read".into();
    assert_eq!(pg.validate(), Ok(()));
    pg.isolation = "snapshot".into();
    assert!(pg.validate().unwrap_err().starts_with("isolation: "));

    // A client program is for db files only.
    let mut etcd = spec("etcd", "");
    etcd.client = Some("./client".into());
    assert_eq!(
        etcd.validate().unwrap_err(),
        "client: a client program is for db files (--db FILE.toml), not \"etcd\""
    );
}

#[test]
fn systems_refuse_workloads_their_clients_do_not_run() {
    let redis = find("redis").expect("redis");
    let e = check_workload(redis, &workload("list-append")).unwrap_err();
    assert_eq!(
        e,
        "the redis client does not run the list-append workload (model list-append); \
         it runs: cas-register, set"
    );
    assert_eq!(check_workload(redis, &workload("set")), Ok(()));
    let pg = find("postgres").expect("postgres");
    assert!(check_workload(pg, &workload("register")).is_err());
    // The memory system runs every workload.
    let memory = find("memory").expect("memory");
    for w in ["register", "set", "list-append", "bank", "queue"] {
        assert_eq!(check_workload(memory, &workload(w)), Ok(()), "{w}");
    }
}

fn op(p: u64, kind: OpType, f: &str, v: Value) -> Op {
    Op::new(0, Process::Client(p), kind, f, v)
}

/// A set history with a read that misses an acknowledged add and a final
/// read that has it: a stale read.
fn stale_set_history() -> History {
    History::new(vec![
        op(0, OpType::Invoke, "add", json!(1)),
        op(0, OpType::Ok, "add", json!(1)),
        op(1, OpType::Invoke, "read", Value::Null),
        op(1, OpType::Ok, "read", json!([])),
        // An add after it makes the first read no final read.
        op(2, OpType::Invoke, "add", json!(2)),
        op(2, OpType::Ok, "add", json!(2)),
        op(3, OpType::Invoke, "read", Value::Null),
        op(3, OpType::Ok, "read", json!([1, 2])),
    ])
}

fn set_verdict(reads: Reads) -> (Validity, String) {
    let (v, results, _) = check_history(
        &stale_set_history(),
        "set",
        &["set".to_string()],
        &CheckSettings {
            read_mode: reads.checker_mode(),
            consistency_model: "strict-serializable",
            time_limit: None,
            classic: Default::default(),
        },
    );
    let why = results["checkers"]["set"]["explanation"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    (v, why)
}

#[test]
fn redis_default_reads_mean_replica_reads_to_the_client_and_the_set_checker() {
    // `--db redis` with no read mode: the client reads from its own node
    // (a replica), and the set checker is told so, so a stale read of a
    // replica is no error.
    let configured = spec("redis", "").configure().expect("redis");
    assert_eq!(configured.read_mode(), "replica");
    assert_eq!(configured.reads(), Reads::MaybeStale);
    let (v, why) = set_verdict(configured.reads());
    assert_eq!(v, Validity::Valid, "{why}");
    assert!(why.contains("1 stale"), "{why}");
    // A stored run's test.json gives the same answer.
    assert_eq!(recorded_reads("redis", "replica"), Reads::MaybeStale);

    // etcd's default reads are linearizable: the same history is invalid.
    let etcd = spec("etcd", "").configure().expect("etcd");
    assert_eq!(etcd.reads(), Reads::Linearizable);
    let (v, why) = set_verdict(etcd.reads());
    assert_eq!(v, Validity::Invalid);
    assert_eq!(
        why,
        "1 acknowledged element was missing from a read that began after the \
         acknowledgement (e.g. 1)"
    );
    assert_eq!(recorded_reads("etcd", "serializable"), Reads::MaybeStale);
    // A run the registry cannot configure is taken at its word.
    assert_eq!(
        recorded_reads("gone.toml", "linearizable"),
        Reads::Linearizable
    );
}

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
            crate::control::ErrorKind::Connect("no remote in this test".into()),
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
    use crate::runner::{run_workers, Recorder, Stop, WorkerConfig};
    let system = find("memory").expect("registered");
    let w = workload("register");
    check_workload(system, &w).expect("runs registers");
    let test = spec("memory", "");
    let configured = system.configure(&test.choice()).expect("configured");
    let cluster = cluster();
    let deployed = configured.deploy(cluster.nodes()).expect("deployed");
    let db = deployed.db();
    assert_eq!(db.name(), "memory");
    crate::db::setup(db.as_ref(), &cluster, deployed.healthy_within()).expect("set up");
    let factory = deployed
        .client_factory(&ClientSettings {
            workload: &w,
            nodes: cluster.nodes(),
            op_timeout: Duration::from_secs(1),
        })
        .expect("clients");
    let gen = w.generator(
        3,
        crate::workload::GenOptions {
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
        Recorder::in_memory(std::time::Instant::now()),
        Stop::new(),
    )
    .await
    .expect("run");
    assert!(h.len() > 20, "{} events", h.len());
    let (v, results, summary) = check_history(
        &h,
        &w.model,
        &w.checkers,
        &CheckSettings {
            read_mode: configured.reads().checker_mode(),
            consistency_model: "strict-serializable",
            time_limit: None,
            classic: w.classic_options(),
        },
    );
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
    let read = crate::client::Invocation {
        process: Process::Client(0),
        f: "read".into(),
        value: Value::Null,
        key: Some(json!(1)),
        timeout: Duration::from_secs(1),
    };
    let done = client.invoke(&read).await;
    assert_eq!(done.status, crate::client::Status::Fail);
    assert_eq!(done.error, Some(json!("connection refused: n1 is down")));
    let e = db
        .wait_healthy(cluster.nodes(), Duration::from_millis(30))
        .unwrap_err();
    assert!(e.to_string().contains("n1: down"), "{e}");
    db.start(n1).expect("start");
    db.pause(n1).expect("pause");
    let done = client.invoke(&read).await;
    assert_eq!(done.status, crate::client::Status::Info);
    db.resume(n1).expect("resume");
    assert_eq!(client.invoke(&read).await.status, crate::client::Status::Ok);
    crate::db::teardown(db.as_ref(), &cluster).expect("teardown");
    assert!(!db.is_running(n1).expect("running?"));
}
