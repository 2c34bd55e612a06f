//! The `faultline cluster` and `faultline db` commands, run as a user would:
//! up, status, db up/status/down, down, with their exit codes. Needs root and
//! etcd (installed when missing);
//! ignored unless built by root.
#![cfg(all(feature = "controller", feature = "cli"))]

mod cluster_support;

use cluster_support::{faultline, leftovers, CliCluster};

#[test]
#[cfg_attr(
    not(faultline_root),
    ignore = "needs root: builds a local cluster and runs etcd"
)]
fn cluster_and_db_commands() {
    cluster_support::ensure(&cluster_support::db("etcd"));
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let _down = CliCluster::new(&state, "flcl");

    let (code, out, err) = faultline(
        &state,
        &[
            "cluster",
            "up",
            "--nodes",
            "2",
            "--subnet",
            "10.78.25.0/24",
            "--name-prefix",
            "flcl",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("n2  10.78.25.12"), "{out}");

    let (code, out, _) = faultline(&state, &["cluster", "status"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.matches(" up").count(), 2, "{out}");

    // A bad subnet is a usage error naming the problem.
    let (code, _, err) = faultline(&state, &["cluster", "up", "--subnet", "10.78.25.7/24"]);
    assert_eq!(code, 3);
    assert!(err.contains("host bits"), "{err}");

    let (code, out, err) = faultline(&state, &["db", "up", "--db", "etcd"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("etcd healthy on 2 node(s)"), "{out}");
    let (code, out, err) = faultline(&state, &["db", "status"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.matches("running").count(), 2, "{out}");
    assert!(out.contains("leader: n"), "{out}");

    let logs = tmp.path().join("logs");
    let logs_s = logs.display().to_string();
    let (code, out, err) = faultline(&state, &["db", "down", "--logs", &logs_s]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(logs.join("n1/etcd.log").is_file() && logs.join("n2/etcd.log").is_file());
    // Nothing running is an answer, not an error.
    let (code, out, _) = faultline(&state, &["db", "status"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.matches("  not running").count(), 2, "{out}");
    assert!(
        out.contains("etcd is not running on any of the 2 node(s)"),
        "{out}"
    );

    let (code, out, err) = faultline(&state, &["cluster", "down"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, _) = faultline(&state, &["cluster", "down"]);
    assert_eq!(code, 0, "down twice is fine");
    let (code, out, _) = faultline(&state, &["cluster", "status"]);
    assert_eq!(code, 1);
    assert!(out.contains("no local cluster"), "{out}");
    let (code, out, _) = faultline(&state, &["db", "status"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("no local cluster is up"), "{out}");
    let (code, _, err) = faultline(&state, &["db", "up"]);
    assert_eq!(code, 3);
    assert!(err.contains("cluster up"), "{err}");
    let left = leftovers("flcl", &state, "10.78.25.");
    assert!(left.is_empty(), "left behind: {left:#?}");
}
