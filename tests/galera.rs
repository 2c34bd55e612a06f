//! MariaDB with Galera for real, on a local cluster of 3 nodes (a
//! mariadbd on each, one Galera cluster founded on the first):
//!
//! 1. `faultline run --db galera --workload list-append --nemesis kill`
//!    for 30 s: the cluster starts and is found healthy by its wsrep
//!    status, a killed node rejoins, the history gets a real verdict
//!    (valid or invalid, named anomalies when invalid: Galera is known to
//!    allow stale reads, docs/galera.md), the `--db-opt` lands in every
//!    node's my.cnf, the version is recorded, the error logs are
//!    collected, and the teardown leaves no mariadbd and no data;
//! 2. a second run on the same cluster (bank, no faults) finds a clean
//!    slate and runs the bank workload to a real verdict;
//! 3. the whole cluster killed (`db up`, SIGKILL on the first node, a
//!    row committed through the second, SIGKILL on the other two, then
//!    every node started at once, as heal does): the start founds the
//!    cluster again on the most advanced node (grastate.dat says none is
//!    safe to bootstrap; InnoDB's recovered positions tell), not on the
//!    first, so the row is on every node once all are synced again; `db
//!    down` leaves nothing.
//!
//! Needs root and Debian's mariadb-server and galera-4 (installed when
//! missing); ignored unless built by root.
#![cfg(all(feature = "controller", feature = "cli"))]

mod cluster_support;

use cluster_support::{faultline, leftovers, CliCluster};
use faultline::cluster::local;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const PREFIX: &str = "flga";
const SUBNET: &str = "10.78.175.0/24";

/// One run; returns (exit code, results.json, the run's folder, output).
fn run(state: &Path, results: &Path, name: &str, args: &[&str]) -> (i32, Value, PathBuf, String) {
    let mut all = vec!["run", "--db", "galera", "--name", name, "--seed", "7"];
    all.extend_from_slice(args);
    let r = results.display().to_string();
    all.extend_from_slice(&["--results", &r]);
    let (code, out, err) = faultline(state, &all);
    let dir = results.join(name).join("latest");
    let value = std::fs::read_to_string(dir.join("results.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    (code, value, dir, format!("{out}\n{err}"))
}

/// The mariadbd processes and galera folders left on the cluster's nodes.
fn galera_left(state: &Path) -> Vec<String> {
    let cluster = local::attach(state).expect("attach to the cluster");
    let mut left = Vec::new();
    for n in cluster.nodes() {
        let out = n
            .run(&format!(
                "for d in /proc/[0-9]*; do c=$(cat $d/comm 2>/dev/null); \
                   case \"$c\" in mariadbd|rsync|wsrep_sst_rsync) echo \"process $c ${{d#/proc/}}\";; esac; done; \
                 test -e {w}/galera && echo 'folder {w}/galera'; true",
                w = n.work_dir()
            ))
            .expect("look at the node");
        left.extend(
            out.lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| format!("{}: {l}", n.name())),
        );
    }
    left
}

/// A verdict that means something: valid, or invalid with the anomalies
/// named; never unknown or incomplete.
fn assert_real_verdict(code: i32, r: &Value, checker: &str, text: &str) {
    assert!(
        (code == 0 && r["valid"] == "valid") || (code == 1 && r["valid"] == "invalid"),
        "exit {code}, verdict {}: {text}\n{r:#}",
        r["valid"]
    );
    let c = &r["checkers"][checker];
    assert_eq!(c["valid"], r["valid"], "{c:#}");
}

#[test]
#[cfg_attr(
    not(faultline_root),
    ignore = "needs root: builds a local cluster and runs MariaDB Galera"
)]
fn galera_runs_with_kills_is_checked_torn_down_and_heals_a_whole_cluster_crash() {
    cluster_support::ensure(&cluster_support::db("galera"));
    let tmp = tempfile::tempdir().expect("tmp");
    let state = tmp.path().join("state");
    let results = tmp.path().join("results");
    let _down = CliCluster::new(&state, PREFIX).db("galera");
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

    // 1. list-append with kills.
    let (code, r, dir, text) = run(
        &state,
        &results,
        "galera-la-kill",
        &[
            "--workload",
            "list-append",
            "--isolation",
            "repeatable-read",
            "--consistency-model",
            "read-committed",
            "--db-opt",
            "innodb_flush_log_at_trx_commit=1",
            "--nemesis",
            "kill",
            "--nemesis-interval",
            "8",
            "--time-limit",
            "30",
            "--concurrency",
            "6",
            "--rate",
            "60",
        ],
    );
    assert_real_verdict(code, &r, "txn", &text);
    let stats = &r["checkers"]["stats"];
    assert!(stats["ok"].as_u64().unwrap_or(0) > 200, "{stats:#}\n{text}");
    let kill = &r["faults"]["kill"];
    assert!(kill["took_effect"].as_u64().unwrap_or(0) >= 1, "{kill:#}");
    let test: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("test.json")).expect("test.json"))
            .expect("test.json is JSON");
    let version = test["db_version"].as_str().unwrap_or_default();
    assert!(
        version.starts_with("MariaDB 1") && version.contains("; galera-4 2"),
        "{version}"
    );
    assert_eq!(test["isolation"], "repeatable-read");
    for node in ["n1", "n2", "n3"] {
        let cnf = std::fs::read_to_string(dir.join("nodes").join(node).join("my.cnf"))
            .unwrap_or_else(|e| panic!("{node}'s my.cnf was not collected: {e}"));
        assert!(
            cnf.ends_with("innodb_flush_log_at_trx_commit = 1\n"),
            "{cnf}"
        );
        let log = std::fs::read_to_string(dir.join("nodes").join(node).join("error.log"))
            .unwrap_or_else(|e| panic!("{node}'s error log was not collected: {e}"));
        assert!(log.contains("WSREP"), "{node}: {log}");
    }
    // Somebody was killed and started again: a node's log shows two
    // starts.
    let starts: usize = ["n1", "n2", "n3"]
        .iter()
        .map(|n| {
            std::fs::read_to_string(dir.join("nodes").join(n).join("error.log"))
                .unwrap_or_default()
                .matches("] Starting MariaDB")
                .count()
        })
        .sum();
    assert!(starts > 3, "{starts} starts in the error logs");
    assert_eq!(galera_left(&state), Vec::<String>::new());

    // 2. A second run on the same cluster: a clean slate, the bank.
    let (code, r, dir, text) = run(
        &state,
        &results,
        "galera-bank",
        &[
            "--workload",
            "bank",
            "--nemesis",
            "none",
            "--time-limit",
            "10",
            "--concurrency",
            "6",
            "--rate",
            "60",
        ],
    );
    assert_real_verdict(code, &r, "bank", &text);
    let bank = &r["checkers"]["bank"];
    assert!(bank["reads"].as_u64().unwrap_or(0) > 20, "{bank:#}");
    assert!(
        bank["transfers"]["ok"].as_u64().unwrap_or(0) > 20,
        "{bank:#}"
    );
    let log = std::fs::read_to_string(dir.join("faultline.log")).expect("faultline.log");
    assert!(
        log.contains("clean slate: no galera process or data on any node"),
        "{log}"
    );
    assert_eq!(galera_left(&state), Vec::<String>::new());

    // 3. The whole cluster killed, then healed: the first node first,
    // then a row committed through the second (the two still make a
    // primary component), then the other two. The first node lacks the
    // row, so founding the cluster on it would lose it.
    let (code, out, err) = faultline(&state, &["db", "up", "--db", "galera"]);
    assert_eq!(code, 0, "{out}{err}");
    let cluster = local::attach(&state).expect("attach");
    let sql = |n: &faultline::cluster::Node, q: &str| {
        n.run(&format!(
            "mariadb --no-defaults --protocol=socket -S {}/galera/mysqld.sock -uroot -N -B -e \"{q}\"",
            n.work_dir()
        ))
    };
    let kill = |n: &faultline::cluster::Node| {
        n.run(&format!(
            "kill -KILL $(cat {}/galera/mariadbd.pid)",
            n.work_dir()
        ))
        .expect("kill mariadbd");
    };
    let (first, rest) = cluster.nodes().split_first().expect("3 nodes");
    kill(first);
    let committed = Instant::now();
    loop {
        // Until the two see the first gone and have a primary component
        // of their own again (1047 meanwhile).
        match sql(
            &rest[0],
            "INSERT INTO faultline.rw (k, v) VALUES (424242, 7)",
        ) {
            Ok(_) => break,
            Err(e) if committed.elapsed() < Duration::from_secs(60) => {
                eprintln!("insert on {}: {e}", rest[0].name());
                std::thread::sleep(Duration::from_secs(1));
            }
            Err(e) => panic!(
                "no commit on {} after the first node died: {e}",
                rest[0].name()
            ),
        }
    }
    for n in rest {
        kill(n);
    }
    for n in cluster.nodes() {
        let g = n
            .run(&format!("cat {}/galera/data/grastate.dat", n.work_dir()))
            .expect("grastate.dat");
        assert!(g.contains("safe_to_bootstrap: 0"), "{}: {g}", n.name());
    }
    // What heal and the kill nemesis do: start every node at once. (A
    // `faultline heal` after kills by hand finds no record of them and,
    // with no member running, rightly takes the db for torn down.)
    let galera = faultline::system::with_defaults("galera", None)
        .expect("galera")
        .deploy(cluster.nodes())
        .expect("deploy")
        .db();
    let t = Instant::now();
    let started: Vec<Result<(), String>> = std::thread::scope(|s| {
        let handles: Vec<_> = cluster
            .nodes()
            .iter()
            .map(|n| {
                let galera = galera.clone();
                s.spawn(move || galera.start(n).map_err(|e| e.to_string()))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("panicked".into())))
            .collect()
    });
    assert!(started.iter().all(Result::is_ok), "{started:?}");
    galera
        .wait_healthy(cluster.nodes(), Duration::from_secs(180))
        .unwrap_or_else(|e| panic!("not synced again after {:?}: {e}", t.elapsed()));
    // Founded on a node that had the row (the most advanced InnoDB), so
    // every node has it.
    for n in cluster.nodes() {
        let row = sql(n, "SELECT v FROM faultline.rw WHERE k = 424242").expect("read the row");
        assert_eq!(
            row.trim(),
            "7",
            "{}: the row committed before the crash is gone; wsrep-recover.log: {:?}",
            n.name(),
            n.run(&format!("cat {}/galera/wsrep-recover.log", n.work_dir()))
        );
    }
    // Every node was started again, once.
    let restarted: Vec<String> = cluster
        .nodes()
        .iter()
        .filter(|n| {
            n.run(&format!(
                "grep -c 'Starting MariaDB' {}/galera/error.log",
                n.work_dir()
            ))
            .is_ok_and(|c| c.trim() == "2")
        })
        .map(|n| n.name().to_string())
        .collect();
    assert_eq!(
        restarted.len(),
        3,
        "every node restarted once: {restarted:?}"
    );
    let (code, out, err) = faultline(&state, &["db", "down", "--db", "galera"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(galera_left(&state), Vec::<String>::new());

    let (code, out, err) = faultline(&state, &["cluster", "down", "--name-prefix", PREFIX]);
    assert_eq!(code, 0, "{out}{err}");
    let left = leftovers(PREFIX, &state, "10.78.175.");
    assert!(left.is_empty(), "left behind: {left:?}");
}
