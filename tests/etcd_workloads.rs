//! `faultline run` of the counter and unique-ids workloads against a real
//! 3-node etcd on a local cluster, under partitions: the etcd client's
//! counter (compare-and-set loop) and id source (a put's revision) must
//! give histories the workloads' checkers find valid, with results.json
//! naming the checker's figures and `faultline check --model` agreeing.
//! Then, on the same nodes, the long-fork workload against PostgreSQL
//! under repeatable read (snapshot isolation, which forbids long forks).
//! Needs root and etcd (and postgresql for the last part) (installed when
//! missing); ignored unless built by root.
#![cfg(all(feature = "controller", feature = "cli"))]

mod cluster_support;

use cluster_support::{faultline, leftovers, CliCluster};
use serde_json::Value;
use std::path::Path;

const PREFIX: &str = "flwl";

/// Runs `workload` for a few seconds with partitions; returns the exit
/// code, the output and the run's results.json.
fn run(state: &Path, results: &Path, workload: &str, db: &[&str]) -> (i32, String, Value) {
    let nemesis = if db.is_empty() { "partition" } else { "none" };
    let results_arg = results.display().to_string();
    let mut args = vec!["run", "--workload", workload];
    args.extend_from_slice(db);
    args.extend_from_slice(&[
        "--nemesis",
        nemesis,
        "--nemesis-interval",
        "2",
        "--time-limit",
        "8",
        "--concurrency",
        "6",
        "--rate",
        "150",
        "--seed",
        "3",
        "--leave-db-running",
        "--results",
        &results_arg,
    ]);
    let (code, out, err) = faultline(state, &args);
    let text = std::fs::read_to_string(results.join("latest/results.json")).unwrap_or_default();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    (code, format!("{out}\n{err}"), json)
}

#[test]
#[cfg_attr(
    not(faultline_root),
    ignore = "needs root: builds a local cluster, runs etcd and PostgreSQL"
)]
fn classic_workloads_on_etcd_and_postgres_are_valid() {
    let mut needs = cluster_support::db("etcd");
    needs.extend(cluster_support::db("postgres"));
    cluster_support::ensure(&needs);
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let _down = CliCluster::new(&state, PREFIX).db("etcd").db("postgres");
    let (code, out, err) = faultline(
        &state,
        &[
            "cluster",
            "up",
            "--nodes",
            "3",
            "--subnet",
            "10.78.130.0/24",
            "--name-prefix",
            PREFIX,
        ],
    );
    assert_eq!(code, 0, "{out}{err}");

    let results = tmp.path().join("counter");
    let (code, out, r) = run(&state, &results, "counter", &[]);
    assert_eq!(code, 0, "{out}");
    let c = &r["checkers"]["counter"];
    assert_eq!(c["validity"], "valid", "{c}");
    let (reads, adds) = (
        c["reads"].as_u64().unwrap_or(0),
        c["adds_ok"].as_u64().unwrap_or(0),
    );
    eprintln!(
        "counter on etcd: {reads} reads, {adds} adds ok, {} unknown",
        c["adds_info"]
    );
    assert!(reads > 50 && adds > 100, "{c}");
    let latest = results.join("latest").display().to_string();
    let (code, out, err) = faultline(&state, &["analyze", &latest]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("counter: valid — all "), "{out}");
    let history = results.join("latest/history.jsonl").display().to_string();
    let (code, out, _) = faultline(&state, &["check", "--model", "counter", &history]);
    assert_eq!(code, 0, "{out}");
    // The same history with one read forged far above every add is caught.
    let forged = tmp.path().join("forged.jsonl");
    let text = std::fs::read_to_string(&history).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let at = lines
        .iter()
        .position(|l| l.contains("\"type\":\"ok\"") && l.contains("\"f\":\"read\""))
        .expect("an ok read");
    let mut op: Value = serde_json::from_str(&lines[at]).unwrap();
    op["value"] = Value::from(1_000_000_000);
    lines[at] = op.to_string();
    std::fs::write(&forged, lines.join("\n") + "\n").unwrap();
    let (code, out, _) = faultline(
        &state,
        &["check", "--model", "counter", &forged.display().to_string()],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("read 1000000000, but only values from"),
        "{out}"
    );

    let results = tmp.path().join("ids");
    let (code, out, r) = run(&state, &results, "unique-ids", &[]);
    assert_eq!(code, 0, "{out}");
    let u = &r["checkers"]["unique-ids"];
    assert_eq!(u["validity"], "valid", "{u}");
    eprintln!(
        "unique-ids on etcd: {} acknowledged of {} attempted",
        u["acknowledged"], u["attempted"]
    );
    assert!(u["acknowledged"].as_u64().unwrap_or(0) > 100, "{u}");

    let (code, out, err) = faultline(&state, &["db", "down"]);
    assert_eq!(code, 0, "{out}{err}");

    let results = tmp.path().join("long-fork");
    let pg = ["--db", "postgres", "--isolation", "repeatable-read"];
    let (code, out, r) = run(&state, &results, "long-fork", &pg);
    assert_eq!(code, 0, "{out}");
    let f = &r["checkers"]["long-fork"];
    assert_eq!(f["validity"], "valid", "{f}");
    eprintln!(
        "long-fork on postgres (repeatable read): {} reads of {} groups, {} writes",
        f["reads"], f["groups"], f["writes"]
    );
    assert!(f["reads"].as_u64().unwrap_or(0) > 100, "{f}");
    let (code, out, err) = faultline(&state, &["db", "down", "--db", "postgres"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = faultline(&state, &["cluster", "down"]);
    assert_eq!(code, 0, "{out}{err}");
    let left = leftovers(PREFIX, &state, "10.78.130.");
    assert!(left.is_empty(), "left behind: {left:#?}");
}
