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
