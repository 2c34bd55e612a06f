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
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod online_support;

use online_support::{run, spec};

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
    // The final check took the keys the online checker had judged on all
    // their events, and checked the others (those still in use at the end)
    // itself: every key once.
    let taken = online["final_check"]["keys_taken"].as_u64().expect("taken");
    let again = online["final_check"]["keys_rechecked"]
        .as_u64()
        .expect("rechecked");
    assert!(taken > 0, "{online:#}");
    assert_eq!(
        Some(taken + again),
        results["checkers"]["linearizable"]["keys"].as_u64(),
        "{online:#}"
    );
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
