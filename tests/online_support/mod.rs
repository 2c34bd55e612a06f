//! What the online-checking test (tests/online_memory.rs) and its
//! measurement (benches/online.rs) share: whole runs of the register
//! workload against the memory system on nodes that run nothing.

#![allow(dead_code)]

use faultline::cluster::{Capabilities, Cluster, ClusterKind, Node};
use faultline::control::{ControlError, Output, Remote};
use faultline::runner::events::no_events;
use faultline::runner::lifecycle::{run_test, Dirs, TestOutcome, TestSpec};
use faultline::runner::Stop;
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A node with nothing on it: every command succeeds and prints nothing
/// (the clean slate finds no leftover fault; the memory system itself
/// runs no command).
#[derive(Debug)]
pub struct EmptyHost(String);

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

pub fn cluster() -> Cluster {
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
pub fn spec(read_mode: &str, time_limit: f64) -> TestSpec {
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
pub async fn run(spec: TestSpec, results: &Path) -> (TestOutcome, Value, Duration) {
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

/// Client invocations per second of the main phase in a run's history.
pub fn throughput(dir: &Path, seconds: f64) -> f64 {
    let text = std::fs::read_to_string(dir.join("history.jsonl")).expect("history");
    let invoked = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|o| o["process"].is_u64() && o["type"] == "invoke")
        .count();
    invoked as f64 / seconds
}
