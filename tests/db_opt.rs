//! `--db-opt` for real: a PostgreSQL run with `--db-opt
//! synchronous_commit=off` records the setting in test.json and the server
//! reports it (`SHOW synchronous_commit`, asked with psql), while the same
//! server brought up without it reports the default (`on`); a bad option,
//! or one that faultline sets itself, is refused before anything is built. Needs root and Debian's postgresql
//! package (installed when missing); ignored unless built by root.
#![cfg(all(feature = "controller", feature = "cli"))]

mod cluster_support;

use cluster_support::{faultline, leftovers, CliCluster};
use faultline::cluster::Cluster;
use serde_json::Value;
use std::path::Path;

const PREFIX: &str = "flop";
const SUBNET: &str = "10.78.176.0/24";

/// `SHOW <setting>` on the server, through psql on its node.
fn show(state: &Path, setting: &str) -> String {
    let cluster = Cluster::local(state).expect("the cluster");
    let n1 = &cluster.nodes()[0];
    n1.run(&format!(
        "B=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1); \
         \"$B/psql\" -X -At -h {} -p 5432 -U postgres -d faultline -c 'SHOW {setting}'",
        n1.host()
    ))
    .expect("psql")
    .trim()
    .to_string()
}

#[test]
#[cfg_attr(
    not(faultline_root),
    ignore = "needs root: builds a local cluster and runs PostgreSQL"
)]
fn a_postgres_setting_reaches_the_server_and_test_json() {
    cluster_support::ensure(&cluster_support::db("postgres"));
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let results = tmp.path().join("results");
    let _down = CliCluster::new(&state, PREFIX).db("postgres");

    // Bad syntax: refused as the flag is read, naming it and the form.
    let (code, out, err) = faultline(
        &state,
        &["run", "--db", "postgres", "--db-opt", "synchronous_commit"],
    );
    assert_ne!(code, 0, "{out}{err}");
    assert!(
        err.contains("--db-opt") && err.contains("KEY=VALUE"),
        "{err}"
    );
    assert!(!state.exists() && !results.exists(), "nothing built");

    // A setting faultline sets itself: refused as the test is checked,
    // naming it, before a cluster is looked for.
    let (code, out, err) = faultline(
        &state,
        &["run", "--db", "postgres", "--db-opt", "port=5433"],
    );
    assert_ne!(code, 0, "{out}{err}");
    assert!(
        err.contains("port=5433 would override port") && err.contains("leave port out"),
        "{err}"
    );
    assert!(!state.exists() && !results.exists(), "nothing built");

    let (code, out, err) = faultline(
        &state,
        &[
            "cluster",
            "up",
            "--nodes",
            "1",
            "--subnet",
            SUBNET,
            "--name-prefix",
            PREFIX,
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = faultline(
        &state,
        &[
            "run",
            "--db",
            "postgres",
            "--workload",
            "list-append",
            "--nemesis",
            "none",
            "--time-limit",
            "2",
            "--db-opt",
            "synchronous_commit=off",
            "--leave-db-running",
            "--name",
            "pg-opt",
            "--results",
            &results.display().to_string(),
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let test: Value = serde_json::from_str(
        &std::fs::read_to_string(results.join("pg-opt/latest/test.json")).expect("test.json"),
    )
    .expect("test.json is JSON");
    assert_eq!(
        test["db_opts"],
        serde_json::json!(["synchronous_commit=off"]),
        "{test}"
    );
    assert_eq!(show(&state, "synchronous_commit"), "off");

    // The same server set up without the option: the default again.
    let (code, out, err) = faultline(&state, &["db", "down", "--db", "postgres"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = faultline(&state, &["db", "up", "--db", "postgres"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(show(&state, "synchronous_commit"), "on");

    let (code, out, err) = faultline(&state, &["db", "down", "--db", "postgres"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = faultline(&state, &["cluster", "down", "--name-prefix", PREFIX]);
    assert_eq!(code, 0, "{out}{err}");
    let left = leftovers(PREFIX, &state, "10.78.176.");
    assert!(left.is_empty(), "left behind: {left:#?}");
}
