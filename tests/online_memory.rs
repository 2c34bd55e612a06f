//! Online checking end to end, without a cluster: whole runs
//! (`run_test`, the lifecycle `faultline run` drives) of the register
//! workload against the memory system at about 1,000 ops/s. With its
//! `stale` read mode (a documented fault: every 50th read returns the
//! register's previous value) and `stop_on_invalid`, the run ends within
//! seconds of the first stale read, invalid, saying where and why; a
//! correct run checked online gets the verdict `faultline analyze` gives
//! the same history offline.

#![cfg(feature = "controller")]

use faultline::check::registry::{by_name, CheckContext};
use faultline::check::Validity;
use faultline::cluster::{Capabilities, Cluster, ClusterKind, Node};
use faultline::control::{ControlError, Output, Remote};
use faultline::runner::events::no_events;
use faultline::runner::lifecycle::{run_test, Dirs, TestOutcome, TestSpec};
use faultline::runner::Stop;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A node with nothing on it: every command succeeds and prints nothing
/// (the clean slate finds no leftover fault; the memory system itself
/// runs no command).
#[derive(Debug)]
struct EmptyHost(String);

impl Remote for EmptyHost {
    fn node(&self) -> &str {
        &self.0
    }

    fn default_timeout(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn exec_timeout(&self, _command: &str, _timeout: Duration) -> Result<Output, ControlError> {
        Ok(Output {
            status: 0,
            signal: None,
            stdout: String::new(),
            stderr: String::new(),
        })
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
                Arc::new(EmptyHost(name.clone())),
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

/// A register test on the memory system at 1,000 ops/s, no faults.
fn spec(read_mode: &str, time_limit: f64) -> TestSpec {
    TestSpec {
        db: "memory".into(),
        workload: "register".into(),
        nemesis: Vec::new(),
        read_mode: read_mode.into(),
        time_limit,
        rate: Some(1000.0),
        concurrency: 10,
        recovery_time: 0.0,
        seed: Some(3),
        ..TestSpec::default()
    }
}

/// Runs `spec` to its end; the outcome, results.json, and how long it took.
async fn run(spec: TestSpec, results: &Path) -> (TestOutcome, Value, Duration) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dirs = Dirs {
        workloads: root.join("workloads"),
        nemeses: root.join("nemeses"),
        results: results.to_path_buf(),
    };
    let began = Instant::now();
    let outcome = run_test(spec, cluster(), &dirs, Stop::new(), no_events())
        .await
        .expect("the run");
    let took = began.elapsed();
    let text = std::fs::read_to_string(outcome.dir.join("results.json")).expect("results.json");
    let results: Value = serde_json::from_str(&text).expect("results.json is JSON");
    (outcome, results, took)
}

/// The time of the last client event in a run's history.jsonl.
fn last_client_time(dir: &Path) -> u64 {
    let text = std::fs::read_to_string(dir.join("history.jsonl")).expect("history");
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|o| o["process"].is_u64())
        .filter_map(|o| o["time"].as_u64())
        .max()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_on_invalid_ends_a_run_with_stale_reads_within_seconds_of_the_first() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut s = spec("stale", 60.0);
    s.stop_on_invalid = true;
    let (outcome, results, took) = run(s, tmp.path()).await;
    assert_eq!(outcome.validity, Validity::Invalid, "{results:#}");
    assert_eq!(results["valid"], "invalid");
    assert!(
        took < Duration::from_secs(20),
        "a 60 s run stopped at the first stale read took {took:?}"
    );
    // The reason: the first violation, its key, operation and lag.
    let stopped = &results["stopped_early"];
    let reason = stopped["reason"].as_str().expect("a reason");
    println!("{reason}");
    assert!(
        reason.starts_with("stopped early at the first proven violation"),
        "{reason}"
    );
    let finding = &stopped["finding"];
    assert_eq!(finding["checker"], "linearizable");
    assert!(finding["key"].is_u64(), "{finding:#}");
    assert_eq!(finding["op"]["f"], "read", "a stale read: {finding:#}");
    assert_eq!(finding["op"]["type"], "ok");
    let explanation = finding["explanation"].as_str().unwrap_or_default();
    assert!(explanation.contains("read returned"), "{explanation}");
    let lag = finding["lag_ms"].as_f64().expect("the lag");
    assert!((0.0..5_000.0).contains(&lag), "lag {lag} ms");
    assert_eq!(results["online"]["first_invalid"], *finding);
    assert_eq!(results["online"]["confirmed_by_final_check"], true);
    // The final check on the whole history agrees, on the same key.
    assert_eq!(results["checkers"]["linearizable"]["valid"], "invalid");
    let failures = results["checkers"]["linearizable"]["failures"]
        .as_array()
        .expect("failures");
    assert!(
        failures.iter().any(|f| f["key"] == finding["key"]),
        "{failures:#?}"
    );
    // The run stopped: no client op later than a few seconds after the
    // violating read completed.
    let op_time = finding["op"]["time_ns"].as_u64().expect("op time");
    let after = last_client_time(&outcome.dir).saturating_sub(op_time);
    assert!(
        after < 5_000_000_000,
        "the run went on {} ms after the violation",
        after / 1_000_000
    );
    // The operation is where the key's history became invalid: with it,
    // the key's events are not linearizable; without it, they are.
    let history =
        faultline::history::read_path(&outcome.dir.join("history.jsonl"), None).expect("history");
    let index = finding["op"]["index"].as_u64().expect("op index");
    let key_events = |upto: u64| faultline::history::History {
        ops: history
            .ops
            .iter()
            .filter(|o| o.is_client() && o.key.as_ref() == Some(&finding["key"]) && o.index <= upto)
            .cloned()
            .collect(),
        source: None,
        lines: Vec::new(),
    };
    let linearizable = by_name("linearizable").expect("registered");
    let ctx = CheckContext::new(Some("cas-register".into()), 1 << 30);
    let judge = |upto| {
        linearizable
            .check(&key_events(upto), &ctx)
            .expect("checkable")
            .validity
    };
    assert_eq!(judge(index), Validity::Invalid);
    assert_eq!(judge(index - 1), Validity::Valid);
    assert!(outcome.stopped_early.is_some());
    assert!(!outcome.interrupted, "stopped on a proof, not interrupted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correct_run_checked_online_gets_the_verdict_analyze_gives() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (outcome, results, _) = run(spec("linearizable", 4.0), tmp.path()).await;
    assert_eq!(outcome.validity, Validity::Valid, "{results:#}");
    let online = &results["online"];
    assert_eq!(online["checkers"]["linearizable"], "per key");
    assert_eq!(online["checkers"]["stats"], "at the end only");
    assert!(online["checks"].as_u64().unwrap_or(0) > 0, "{online:#}");
    assert!(online["first_invalid"].is_null());
    assert!(
        online["confirmed_by_final_check"].is_null(),
        "nothing to confirm"
    );
    assert!(online["lag_ms"]["max"].as_f64().is_some());
    assert!(results["stopped_early"].is_null());
    // `faultline analyze` of the same history, offline.
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_faultline"));
    let status = std::process::Command::new(bin)
        .arg("analyze")
        .arg(&outcome.dir)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("faultline analyze");
    assert_eq!(status.code(), Some(0), "analyze: valid");
    let text = std::fs::read_to_string(outcome.dir.join("results.json")).expect("results");
    let offline: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(offline["valid"], results["valid"]);
    for name in ["linearizable", "stats"] {
        assert_eq!(
            offline["checkers"][name]["valid"], results["checkers"][name]["valid"],
            "{name}"
        );
        assert_eq!(
            offline["checkers"][name]["explanation"], results["checkers"][name]["explanation"],
            "{name}"
        );
    }
}

/// Client invocations per second of the main phase in a run's history.
fn throughput(dir: &Path, seconds: f64) -> f64 {
    let text = std::fs::read_to_string(dir.join("history.jsonl")).expect("history");
    let invoked = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|o| o["process"].is_u64() && o["type"] == "invoke")
        .count();
    invoked as f64 / seconds
}

/// The figures in the README: the workload's throughput with and without
/// online checking (as fast as the memory system goes, runs alternated so
/// that the machine's load falls on both alike), and the lag from a
/// violating operation to its verdict at 1,000 ops/s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a test: prints figures (cargo test --test online_memory -- --ignored --nocapture)"]
async fn measure_online_overhead_and_lag() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let seconds = 5.0;
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for round in 0..3 {
        for online in [false, true] {
            let mut s = spec("linearizable", seconds);
            s.rate = None;
            s.online = online;
            s.seed = Some(round);
            let (outcome, results, _) = run(s, tmp.path()).await;
            assert_eq!(outcome.validity, Validity::Valid, "{results:#}");
            let t = throughput(&outcome.dir, seconds);
            if online {
                println!("online on:  {t:.0} ops/s, {}", results["online"]);
                with.push(t);
            } else {
                println!("online off: {t:.0} ops/s");
                without.push(t);
            }
            std::fs::remove_dir_all(&outcome.dir).ok();
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    println!(
        "throughput, mean of 3: online off {:.0} ops/s, on {:.0} ops/s",
        mean(&without),
        mean(&with)
    );
    let (outcome, results, _) = run(spec("linearizable", 10.0), tmp.path()).await;
    println!(
        "valid at 1000 ops/s for 10 s: {:.0} ops/s, online {}",
        throughput(&outcome.dir, 10.0),
        results["online"]
    );
    for seed in 1..=5 {
        let mut s = spec("stale", 60.0);
        s.stop_on_invalid = true;
        s.seed = Some(seed);
        let (_, results, took) = run(s, tmp.path()).await;
        let f = &results["stopped_early"]["finding"];
        println!(
            "stale reads at 1000 ops/s, seed {seed}: violation at {:.2} s, verdict {:.1} ms after it; run ended after {:.1} s",
            f["op"]["time_ns"].as_f64().unwrap_or(0.0) / 1e9,
            f["lag_ms"].as_f64().unwrap_or(-1.0),
            took.as_secs_f64()
        );
    }
}
