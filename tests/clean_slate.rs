//! What a killed controller leaves behind, and how faultline gets over it,
//! end to end on a local cluster:
//!
//! - a run killed (SIGKILL) in the middle of a partition, then `faultline
//!   heal`, then a new run: the new run starts from a clean slate (the old
//!   etcd killed — also one without a pid file — and its data wiped, which
//!   `faultline.log` says) and is valid;
//! - a Redis run killed while a node is paused: `faultline heal` with no
//!   flags resumes redis-server (the record names the db), which answers
//!   PING again; a heal of the wrong db fails and keeps the record.
//!
//! Needs root (ignored otherwise); installs etcd and redis when missing.
#![cfg(all(feature = "controller", feature = "cli"))]

mod cluster_support;

use cluster_support::{faultline, CliCluster};
use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn cluster_up(state: &Path, subnet: &str, prefix: &str) {
    let (code, out, err) = faultline(
        state,
        &[
            "cluster",
            "up",
            "--nodes",
            "3",
            "--subnet",
            subnet,
            "--name-prefix",
            prefix,
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
}

/// `faultline run` in the background on the cluster of `state`.
fn start_run(state: &Path, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_faultline"))
        .arg("run")
        .args(args)
        .env("FAULTLINE_STATE_DIR", state)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start faultline run")
}

fn sigkill(mut child: Child) {
    // SAFETY: kill with a valid pid and signal has no memory effects.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().expect("reap faultline run");
}

fn wait_for(what: &str, within: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !ready() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The record of active faults of the cluster of `state`, if any.
fn record(state: &Path) -> Option<Value> {
    let text = std::fs::read_to_string(state.join("nemesis.json")).ok()?;
    serde_json::from_str(&text).ok()
}

fn in_node(ns: &str, cmd: &str) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "sh", "-c", cmd])
        .output()
        .expect("ip netns exec");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The state letters (R, S, T, ...) of the processes named `comm` in a
/// node's network namespace.
fn states(ns: &str, comm: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "pids", ns])
        .output()
        .expect("ip netns pids");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|pid| {
            let c = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
            if c.trim() != comm {
                return None;
            }
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let after = stat.rsplit_once(") ")?.1;
            after.split_whitespace().next().map(str::to_string)
        })
        .collect()
}

fn results_of(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).expect("results.json"))
        .expect("results.json is JSON")
}

#[test]
#[cfg_attr(
    not(faultline_root),
    ignore = "needs root: builds a local cluster (network namespaces)"
)]
fn a_run_killed_mid_partition_then_heal_then_a_new_run_is_valid() {
    cluster_support::ensure(&cluster_support::db("etcd"));
    const PREFIX: &str = "flcs";
    let nodes = ["flcs-n1", "flcs-n2", "flcs-n3"];
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let _down = CliCluster::new(&state, PREFIX).db("etcd").heal();
    cluster_up(&state, "10.78.150.0/24", PREFIX);

    // A partition starts every 2 s; the controller dies while one holds.
    let r1 = tmp.path().join("results-1");
    let child = start_run(
        &state,
        &[
            "--workload",
            "register",
            "--nemesis",
            "partition",
            "--nemesis-interval",
            "2",
            "--time-limit",
            "60",
            "--concurrency",
            "4",
            "--rate",
            "100",
            "--seed",
            "7",
            "--results",
            r1.to_str().unwrap(),
        ],
    );
    let history = r1.join("latest/history.jsonl");
    wait_for("a partition in force", Duration::from_secs(120), || {
        let text = std::fs::read_to_string(&history).unwrap_or_default();
        let started = text.matches("\"start-partition\"").count();
        started >= 2
            && started % 2 == 0
            && nodes
                .iter()
                .any(|n| in_node(n, "iptables -S").contains("DROP"))
    });
    sigkill(child);
    let rec = record(&state).expect("the killed run left its record");
    assert_eq!(rec["db"]["db"], "etcd", "{rec}");
    assert_eq!(
        rec["db"]["nodes"],
        serde_json::json!(["n1", "n2", "n3"]),
        "{rec}"
    );
    assert!(rec["partition"].is_object(), "{rec}");

    // Plain heal: the rules go, and so does the record.
    let (code, out, err) = faultline(&state, &["heal"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("database: etcd"), "{out}");
    for n in nodes {
        let rules = in_node(n, "iptables -S");
        assert!(!rules.contains("DROP"), "{n} still has rules:\n{rules}");
    }
    assert!(record(&state).is_none(), "a full heal removes the record");

    // The old etcd still runs with the old data; on n1 its pid file is
    // gone too, as for an etcd started by hand.
    for n in nodes {
        assert_eq!(states(n, "etcd").len(), 1, "{n}: the old etcd runs");
    }
    let pid_file = state.join("nodes/n1/work/etcd/etcd.pid");
    std::fs::remove_file(&pid_file).expect("remove n1's etcd.pid");

    let r2 = tmp.path().join("results-2");
    let (code, out, err) = faultline(
        &state,
        &[
            "run",
            "--workload",
            "register",
            "--nemesis",
            "none",
            "--time-limit",
            "10",
            "--concurrency",
            "4",
            "--rate",
            "100",
            "--results",
            r2.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "the new run is valid:\n{out}{err}");
    let latest = r2.join("latest");
    assert_eq!(results_of(&latest)["valid"], "valid");
    let log = std::fs::read_to_string(latest.join("faultline.log")).expect("faultline.log");
    for n in ["n1", "n2", "n3"] {
        let line = log
            .lines()
            .find(|l| l.contains(&format!("clean slate on {n}: ")))
            .unwrap_or_else(|| panic!("no clean slate line for {n}:\n{log}"));
        assert!(
            line.contains("killed etcd (pid ") && line.contains("wiped /opt/faultline/etcd"),
            "{line}"
        );
    }
    assert!(log.contains("leftover faults lifted"), "{log}");
    // Torn down at the end: no etcd is left, not even n1's pid-less one.
    for n in nodes {
        assert!(states(n, "etcd").is_empty(), "{n}: {:?}", states(n, "etcd"));
    }
    assert!(record(&state).is_none(), "a finished run leaves no record");
}

#[test]
#[cfg_attr(
    not(faultline_root),
    ignore = "needs root: builds a local cluster (network namespaces)"
)]
fn redis_heal_after_a_kill_mid_pause_resumes_redis_server() {
    cluster_support::ensure(&cluster_support::db("redis"));
    const PREFIX: &str = "flch";
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let _down = CliCluster::new(&state, PREFIX).db("redis").heal();
    cluster_up(&state, "10.78.151.0/24", PREFIX);

    let results = tmp.path().join("results");
    let child = start_run(
        &state,
        &[
            "--db",
            "redis",
            "--workload",
            "register",
            "--nemesis",
            "pause",
            "--nemesis-interval",
            "2",
            "--time-limit",
            "60",
            "--concurrency",
            "4",
            "--rate",
            "50",
            "--seed",
            "3",
            "--results",
            results.to_str().unwrap(),
        ],
    );
    // The record names the paused nodes before the pause is sent: wait
    // until redis-server is stopped on each of them.
    let mut paused: Vec<String> = Vec::new();
    wait_for("a paused redis-server", Duration::from_secs(120), || {
        paused = record(&state)
            .and_then(|r| {
                r["paused"].as_array().map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
            })
            .unwrap_or_default();
        !paused.is_empty()
            && paused
                .iter()
                .all(|n| states(&format!("{PREFIX}-{n}"), "redis-server") == vec!["T".to_string()])
    });
    sigkill(child);
    let rec = record(&state).expect("record");
    assert_eq!(rec["db"]["db"], "redis", "{rec}");

    // Healing another database heals nothing of Redis: it fails, says
    // where, and keeps the record.
    let (code, out, err) = faultline(&state, &["heal", "--db", "etcd"]);
    assert_ne!(code, 0, "{out}{err}");
    assert!(
        err.contains(&format!("etcd does not run on {}", paused.join(", "))),
        "{out}{err}"
    );
    assert_eq!(record(&state).expect("kept")["paused"], rec["paused"]);
    for n in &paused {
        assert_eq!(states(&format!("{PREFIX}-{n}"), "redis-server"), vec!["T"]);
    }

    // Plain heal takes the db from the record and resumes redis-server.
    let (code, out, err) = faultline(&state, &["heal"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("database: redis"), "{out}");
    assert!(
        out.contains(&format!("\"resumed\":{}", rec["paused"])),
        "{out}"
    );
    for n in &paused {
        let s = states(&format!("{PREFIX}-{n}"), "redis-server");
        assert_eq!(s.len(), 1, "{n}: {s:?}");
        assert_ne!(s[0], "T", "{n}: redis-server left stopped");
        let i: u32 = n.trim_start_matches('n').parse().expect("node number");
        let pong = Command::new("redis-cli")
            .args(["-h", &format!("10.78.151.{}", 10 + i), "-p", "6379", "PING"])
            .output()
            .expect("redis-cli");
        assert_eq!(
            String::from_utf8_lossy(&pong.stdout).trim(),
            "PONG",
            "{n} answers PING"
        );
    }
    assert!(record(&state).is_none(), "gone once everything is undone");
}
