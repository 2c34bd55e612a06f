//! The registry: finding systems, their typed options, the workloads they
//! refuse, what their reads guarantee. (The test spec's use of it is
//! tested in `runner/spec.rs`; a whole run of the memory system, as "how
//! to add a system" walks through, in `tests/system_memory.rs`.)

use super::*;

fn workload(name: &str) -> Workload {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads");
    Workload::find(name, &dir).expect("workload")
}

fn configure(db: &str, read_mode: &str) -> Result<Box<dyn Configured>, String> {
    find(db).expect("a system").configure(&Choice {
        db,
        read_mode,
        ..Choice::default()
    })
}

#[test]
fn every_system_is_found_by_its_name_and_db_files_by_path() {
    for name in [
        "etcd",
        "postgres",
        "zookeeper",
        "redis",
        "nats",
        "galera",
        "rabbitmq",
        "memory",
    ] {
        assert_eq!(find(name).map(|s| s.name()), Some(name));
    }
    assert_eq!(find("x.toml").map(|s| s.name()), Some("file"));
    assert_eq!(find("file:db/x").map(|s| s.name()), Some("file"));
    assert!(find("mongodb").is_none());
    assert_eq!(
        known(),
        "etcd, postgres, zookeeper, redis, nats, galera, rabbitmq, memory"
    );
    let e = with_defaults("mongodb", None).unwrap_err().to_string();
    assert_eq!(
        e,
        "unknown database \"mongodb\" (known: etcd, postgres, zookeeper, redis, nats, galera, rabbitmq, memory, \
         or a db file: FILE.toml or file:PATH)"
    );
}

#[test]
fn each_system_says_what_its_reads_guarantee() {
    let reads = |db: &str, mode: &str| configure(db, mode).map(|c| (c.read_mode(), c.reads()));
    assert_eq!(reads("etcd", ""), Ok(("linearizable", Reads::Linearizable)));
    assert_eq!(
        reads("etcd", "serializable"),
        Ok(("serializable", Reads::MaybeStale))
    );
    assert_eq!(reads("zookeeper", ""), Ok(("plain", Reads::MaybeStale)));
    assert_eq!(reads("zookeeper", "sync"), Ok(("sync", Reads::MaybeStale)));
    // Redis has no linearizable reads: its default is replica reads, and
    // the checkers are told they may be stale.
    assert_eq!(reads("redis", ""), Ok(("replica", Reads::MaybeStale)));
    assert_eq!(
        reads("redis", "primary"),
        Ok(("primary", Reads::MaybeStale))
    );
    assert_eq!(
        reads("postgres", ""),
        Ok(("linearizable", Reads::Linearizable))
    );
    assert_eq!(
        reads("memory", ""),
        Ok(("linearizable", Reads::Linearizable))
    );
    assert_eq!(Reads::Linearizable.checker_mode(), "linearizable");
    assert_eq!(Reads::MaybeStale.checker_mode(), "serializable");

    // A stored run's test.json gives the same answers; a run the registry
    // cannot configure is taken at its word.
    assert_eq!(recorded_reads("redis", "replica"), Reads::MaybeStale);
    assert_eq!(recorded_reads("etcd", "serializable"), Reads::MaybeStale);
    assert_eq!(recorded_reads("etcd", "linearizable"), Reads::Linearizable);
    assert_eq!(
        recorded_reads("gone.toml", "linearizable"),
        Reads::Linearizable
    );
    assert_eq!(
        recorded_reads("gone.toml", "serializable"),
        Reads::MaybeStale
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

/// A node nothing is ever run on: deploying a system and asking its db
/// where its data lives needs only the node's name, address and folder.
#[derive(Debug)]
struct Silent;

impl crate::control::Remote for Silent {
    fn node(&self) -> &str {
        "n1"
    }
    fn default_timeout(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn exec_timeout(
        &self,
        c: &str,
        _t: Duration,
    ) -> Result<crate::control::Output, crate::control::ControlError> {
        panic!("nothing runs here: {c}")
    }
    fn upload(&self, _l: &Path, _r: &str, _m: i32) -> Result<(), crate::control::ControlError> {
        panic!("nothing is uploaded here")
    }
    fn download(&self, _r: &str, _l: &Path) -> Result<(), crate::control::ControlError> {
        panic!("nothing is downloaded here")
    }
}

/// What a system says before the run about its data folder (for
/// lose-unfsynced, refused before anything is built) is what its db
/// answers once deployed: some node has one exactly when the system
/// says so.
#[test]
fn a_system_keeps_a_data_folder_exactly_when_its_db_names_one() {
    let caps = crate::cluster::Capabilities {
        can_skew_clock: false,
        has_netem: false,
        has_iptables: true,
        shares_host: true,
    };
    let nodes: Vec<Node> = (1..=3)
        .map(|i| {
            Node::new(
                &format!("n{i}"),
                &format!("10.9.0.{i}"),
                Arc::new(Silent),
                caps,
                "/w",
            )
        })
        .collect();
    let db_file = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/etcd-files/etcd.toml");
    let db_file = db_file.to_string_lossy();
    let mut with = Vec::new();
    for (db, read_mode) in [
        ("etcd", ""),
        ("postgres", ""),
        ("postgres", "replica"),
        ("zookeeper", ""),
        ("redis", ""),
        ("nats", ""),
        ("galera", ""),
        ("rabbitmq", ""),
        ("memory", ""),
        (&*db_file, ""),
    ] {
        let configured = configure(db, read_mode).expect(db);
        let deployed = configured.deploy(&nodes).expect(db);
        let folders = nodes
            .iter()
            .filter(|n| deployed.db().data_folder(n).is_some())
            .count();
        assert_eq!(
            configured.data_folder().is_ok(),
            folders > 0,
            "{db}: says {:?}, its db names {folders} folders",
            configured.data_folder()
        );
        if configured.data_folder().is_ok() {
            with.push(find(db).map(|s| s.name()).unwrap_or(db));
        }
    }
    with.dedup();
    assert_eq!(
        with,
        [
            "etcd",
            "postgres",
            "zookeeper",
            "redis",
            "nats",
            "galera",
            "rabbitmq"
        ]
    );
    let memory = configure("memory", "").expect("memory");
    assert!(memory
        .data_folder()
        .is_err_and(|why| why.contains("faultline's own process")));
}
