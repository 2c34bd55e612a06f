//! PostgreSQL with streaming replicas on a 3-node local cluster: the
//! primary on n1 and hot standbys on n2 and n3 through the `Db` trait
//! (standbys in recovery, a row written on the primary replayed on them, a
//! standby refusing writes, a killed standby and a killed primary restarted
//! and replicating again, logs, teardown leaving no postgres), then two
//! short `faultline run --read-mode replica` runs on the same cluster:
//! each is checked, records the version and every node's log, and the
//! second starts from a clean slate. Needs root and Debian's postgresql
//! package (installed when missing);
//! ignored unless built by root.
#![cfg(all(feature = "controller", feature = "cli"))]

mod cluster_support;

use std::path::Path;
use std::time::{Duration, Instant};

use cluster_support::{faultline, leftovers, Teardown};
use faultline::cluster::{local, Node};
use faultline::db::{self, Db};
use faultline::system::postgres::{Postgres, PostgresOptions};
use serde_json::Value;

const PREFIX: &str = "flpr";
const SUBNET: &str = "10.78.71.0/24";

/// Runs `sql` with psql over the node's own socket; (success, output).
fn psql(pg: &Postgres, node: &Node, sql: &str) -> (bool, String) {
    let script = format!(
        "B=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1); \
         \"$B/psql\" -X -q -A -t -h '{dir}' -p {port} -U postgres -d faultline -c \"{sql}\" 2>&1",
        dir = pg.dir(node),
        port = pg.port(),
    );
    match node.exec(&script) {
        Ok(o) => (o.success(), o.stdout.trim().to_string()),
        Err(e) => (false, e.to_string()),
    }
}

fn wait_for(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until `node` reads `v` for key `k` of the register table.
fn replayed(pg: &Postgres, node: &Node, k: i64, v: i64) {
    wait_for(
        &format!("row {k} = {v} on {}", node.name()),
        Duration::from_secs(20),
        || psql(pg, node, &format!("SELECT v FROM rw WHERE k = {k}")).1 == v.to_string(),
    );
}

/// One `faultline run --read-mode replica`: (exit code, test.json,
/// results.json, the run's directory, stdout+stderr).
fn run(
    state: &Path,
    results: &Path,
    name: &str,
) -> (i32, Value, Value, std::path::PathBuf, String) {
    let (code, out, err) = faultline(
        state,
        &[
            "run",
            "--db",
            "postgres",
            "--read-mode",
            "replica",
            "--workload",
            "list-append",
            "--nemesis",
            "none",
            "--time-limit",
            "8",
            "--concurrency",
            "6",
            "--rate",
            "200",
            "--name",
            name,
            "--results",
            &results.display().to_string(),
        ],
    );
    let dir = results.join(name).join("latest");
    let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
    let read = |f: &str| {
        std::fs::read_to_string(dir.join(f))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null)
    };
    (
        code,
        read("test.json"),
        read("results.json"),
        dir.clone(),
        format!("{out}\n{err}"),
    )
}

#[test]
#[cfg_attr(
    not(faultline_root),
    ignore = "needs root: builds a local cluster and runs PostgreSQL"
)]
fn primary_and_hot_standbys_replicate_heal_tear_down_and_run_replica_reads() {
    cluster_support::ensure(&cluster_support::db("postgres"));
    let guard = Teardown::new(PREFIX, SUBNET, 3);
    let state = guard.state_dir();
    let cluster = local::up(&guard.spec).expect("cluster up");
    let nodes = cluster.nodes().to_vec();
    let pg = Postgres::new(
        PostgresOptions {
            standbys: true,
            ..PostgresOptions::default()
        },
        &nodes,
    );
    let t0 = Instant::now();
    db::setup(&pg, &cluster, Duration::from_secs(90)).expect("postgres setup");
    eprintln!(
        "primary + 2 standbys healthy in {:.2} s",
        t0.elapsed().as_secs_f64()
    );

    // n1 is the primary and stays it; n2 and n3 are in recovery.
    assert_eq!(pg.primaries(&nodes).unwrap(), vec!["n1".to_string()]);
    assert_eq!(psql(&pg, &nodes[0], "SELECT pg_is_in_recovery()").1, "f");
    for n in &nodes[1..] {
        assert_eq!(psql(&pg, n, "SELECT pg_is_in_recovery()").1, "t");
    }
    // A row written on the primary is replayed on both standbys.
    let (ok, out) = psql(&pg, &nodes[0], "INSERT INTO rw VALUES (900001, 1)");
    assert!(ok, "{out}");
    for n in &nodes[1..] {
        replayed(&pg, n, 900001, 1);
    }
    // A standby refuses writes.
    let (ok, out) = psql(&pg, &nodes[1], "INSERT INTO rw VALUES (900002, 1)");
    assert!(
        !ok && out.contains("read-only transaction"),
        "a standby took a write: {out}"
    );
    // The primary lists both standbys as streaming, by node name.
    let (_, out) = psql(
        &pg,
        &nodes[0],
        "SELECT string_agg(application_name || ':' || state, ',' ORDER BY application_name) \
         FROM pg_stat_replication",
    );
    assert_eq!(out, "n2:streaming,n3:streaming");

    // A killed standby restarts from its own data and catches up.
    pg.kill(&nodes[1]).expect("kill standby");
    assert!(!pg.is_running(&nodes[1]).unwrap());
    psql(&pg, &nodes[0], "INSERT INTO rw VALUES (900003, 3)");
    pg.start(&nodes[1]).expect("restart standby");
    replayed(&pg, &nodes[1], 900003, 3);
    assert_eq!(psql(&pg, &nodes[1], "SELECT pg_is_in_recovery()").1, "t");

    // A killed primary restarts; the standbys reconnect and replay.
    pg.kill(&nodes[0]).expect("kill primary");
    assert!(!pg.is_running(&nodes[0]).unwrap());
    pg.start(&nodes[0]).expect("restart primary");
    pg.wait_healthy(&nodes, Duration::from_secs(60))
        .expect("healthy after the restarts");
    let (ok, out) = psql(&pg, &nodes[0], "INSERT INTO rw VALUES (900004, 4)");
    assert!(ok, "{out}");
    replayed(&pg, &nodes[2], 900004, 4);
    assert_eq!(pg.primaries(&nodes).unwrap(), vec!["n1".to_string()]);

    // Each node's log, and the standbys' base backups.
    let dest = tempfile::tempdir().unwrap();
    let files = db::collect_logs(&pg, &cluster, dest.path()).expect("logs");
    for f in ["n1/postgres.log", "n2/postgres.log", "n3/postgres.log"] {
        assert!(files.iter().any(|p| p.ends_with(f)), "{f}: {files:?}");
    }
    let log = std::fs::read_to_string(dest.path().join("n3/postgres.log")).unwrap();
    assert!(log.contains("started streaming WAL"), "{log}");

    // Teardown leaves no postgres and no data on any node.
    db::teardown(&pg, &cluster).expect("teardown");
    for n in &nodes {
        assert!(!pg.is_running(n).unwrap());
        let out = n.run("pgrep -x postgres; true").unwrap();
        assert!(out.trim().is_empty(), "{}: still running: {out}", n.name());
        let dir = state.join(format!("nodes/{}/work/postgres", n.name()));
        assert!(!dir.exists(), "{} left", dir.display());
    }

    // Two runs on the same cluster, read-only transactions on standbys:
    // each is checked (valid or not: stale reads are what replicas may
    // show), records the version and every node's log, and tears down.
    let results = tempfile::tempdir().unwrap();
    for (i, name) in ["pgr-a", "pgr-b"].iter().enumerate() {
        let (code, test, res, dir, text) = run(&state, results.path(), name);
        assert!(code == 0 || code == 1, "run {name} failed:\n{text}");
        assert_eq!(test["read_mode"], "replica", "{test:#}");
        assert!(
            test["db_version"]
                .as_str()
                .is_some_and(|v| v.contains("PostgreSQL")),
            "{test:#}"
        );
        let txn = &res["checkers"]["txn"];
        assert!(txn["txns"].as_u64().unwrap_or(0) > 50, "{txn:#}");
        let verdict = if code == 0 { "valid" } else { "invalid" };
        assert_eq!(res["valid"].as_str(), Some(verdict), "{res:#}");
        assert!(text.contains("setting up postgres on 3 nodes..."), "{text}");
        for n in ["n1", "n2", "n3"] {
            let log = dir.join(format!("nodes/{n}/postgres.log"));
            assert!(log.is_file(), "{} missing", log.display());
        }
        // The second run found nothing of the first.
        if i == 1 {
            assert!(
                !text.contains("clean slate on "),
                "the second run did not start clean:\n{text}"
            );
        }
        for n in &nodes {
            let out = n.run("pgrep -x postgres; true").unwrap();
            assert!(out.trim().is_empty(), "{}: left running: {out}", n.name());
        }
    }

    local::down(&state, Some(PREFIX)).expect("cluster down");
    let left = leftovers(PREFIX, &state, "10.78.71.");
    assert!(left.is_empty(), "left behind: {left:#?}");
}
