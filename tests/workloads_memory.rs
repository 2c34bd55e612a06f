//! End to end without a cluster, for each of Jepsen's classic workloads
//! (bank, counter, unique-ids, queue, long-fork): the shipped workload
//! file's generator, run by the runner's workers against the in-memory
//! database, checked by the workload's own checkers through
//! the checker registry's `check_all` (what `results.json` holds). A correct database must
//! pass; a deliberately broken one (`Flaw`) must fail with the right
//! reason.

#![cfg(feature = "controller")]

use faultline::check::registry::{check_all, CheckContext};
use faultline::check::Validity;
use faultline::client::ClientFactory;
use faultline::history::History;
use faultline::runner::{run_workers, Recorder, Stop, WorkerConfig};
use faultline::system::memory::{Flaw, MemoryDb};
use faultline::workload::{GenOptions, Workload};
use serde_json::Value;
use std::path::Path;
use std::time::Instant;

fn workload(name: &str) -> Workload {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads");
    Workload::find(name, &dir).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `name` for 0.3 s (paced, 6 workers on 3 nodes, final phase
/// included) against the in-memory database with `flaw`; returns the
/// history and the workload's verdict, results and summary.
async fn run(name: &str, flaw: Flaw, seed: u64) -> (History, Validity, Value, Vec<String>) {
    run_workload(&workload(name), flaw, seed).await
}

/// Runs workload `w` as [`run`] does.
async fn run_workload(
    w: &Workload,
    flaw: Flaw,
    seed: u64,
) -> (History, Validity, Value, Vec<String>) {
    let db = MemoryDb::for_workload(w).with_flaw(flaw);
    let gen = w.generator(
        seed,
        GenOptions {
            rate: Some(10_000.0),
            time_limit_ns: Some(300_000_000),
        },
    );
    let cfg = WorkerConfig::new(6, vec!["n1".into(), "n2".into(), "n3".into()]);
    let factory: ClientFactory = Box::new(move |_| Box::new(db.client()));
    let h = run_workers(
        gen,
        factory,
        None,
        &cfg,
        Recorder::in_memory(Instant::now()),
        Stop::new(),
    )
    .await
    .expect("run");
    let ctx = CheckContext {
        classic: w.classic_options(),
        ..CheckContext::new(Some(w.model.clone()), 1 << 30)
    };
    let (v, results, summary) = check_all(&h, &w.checkers, &ctx);
    (h, v, results, summary)
}

/// The explanation of checker `name` in `results`.
fn explanation(results: &Value, name: &str) -> String {
    results["checkers"][name]["explanation"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn correct_databases_pass_every_classic_workload() {
    for name in ["bank", "counter", "unique-ids", "queue", "long-fork"] {
        let (h, v, results, summary) = run(name, Flaw::None, 1).await;
        // A loaded machine (tests run in parallel) may manage few ops in
        // the time; enough to judge is all that matters.
        assert!(h.len() > 40, "{name}: {} events", h.len());
        assert_eq!(v, Validity::Valid, "{name}: {summary:?}");
        assert_eq!(results["checkers"][name]["validity"], "valid", "{name}");
        assert!(results["checkers"]["stats"]["ok"].as_u64().unwrap_or(0) > 15);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bank_that_loses_deposits_is_caught_with_the_read() {
    let (_, v, results, _) = run("bank", Flaw::Lose(7), 2).await;
    assert_eq!(v, Validity::Invalid);
    let why = explanation(&results, "bank");
    assert!(
        why.contains("with the wrong total; the first: process"),
        "{why}"
    );
    assert!(why.contains(", not 100"), "{why}");
    let first = &results["checkers"]["bank"]["wrong_total"]["first"][0];
    assert!(first["total"].as_i64().is_some_and(|t| t < 100), "{first}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_counter_that_double_counts_is_caught_above_its_bound() {
    let (_, v, results, _) = run("counter", Flaw::Duplicate(5), 3).await;
    assert_eq!(v, Validity::Invalid);
    let first = &results["checkers"]["counter"]["first_errors"][0];
    assert!(
        first["value"].as_i64() > first["upper"].as_i64(),
        "double-counted reads are too high: {first}"
    );
    assert!(explanation(&results, "counter").contains("outside its bounds"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_source_that_repeats_is_caught_with_the_duplicate() {
    let (_, v, results, _) = run("unique-ids", Flaw::Duplicate(10), 4).await;
    assert_eq!(v, Validity::Invalid);
    let d = &results["checkers"]["unique-ids"]["duplicates"][0];
    assert_eq!(d["count"], 2, "{d}");
    assert_eq!(d["ops"].as_array().map(Vec::len), Some(2));
    assert!(explanation(&results, "unique-ids").contains("returned more than once"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queues_that_lose_or_duplicate_are_caught() {
    let (_, v, results, _) = run("queue", Flaw::Lose(9), 5).await;
    assert_eq!(v, Validity::Invalid);
    let r = &results["checkers"]["queue"];
    assert!(r["lost"]["count"].as_u64() > Some(0), "{r}");
    assert_eq!(r["duplicated"]["count"], 0);
    assert!(r["drained"] == 1, "{r}");
    assert!(explanation(&results, "queue").contains("never dequeued: lost"));

    let (_, v, results, _) = run("queue", Flaw::Duplicate(9), 6).await;
    assert_eq!(v, Validity::Invalid);
    let r = &results["checkers"]["queue"];
    assert!(r["duplicated"]["count"].as_u64() > Some(0), "{r}");
    assert_eq!(r["lost"]["count"], 0);
    assert!(explanation(&results, "queue").contains("duplicated"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_that_apply_writes_in_different_orders_show_long_forks() {
    let (_, v, results, _) = run("long-fork", Flaw::Replicas(8), 7).await;
    assert_eq!(v, Validity::Invalid);
    let f = &results["checkers"]["long-fork"]["first_forks"][0];
    assert_eq!(f["reads"].as_array().map(Vec::len), Some(2));
    assert_eq!(f["writes"].as_array().map(Vec::len), Some(2), "{f}");
    assert!(explanation(&results, "long-fork").contains("observed in opposite orders"));
}

/// The checkers docs/workload-format.md lists in its annotated example.
fn documented_checkers() -> Vec<String> {
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/workload-format.md"),
    )
    .expect("docs/workload-format.md");
    let start = doc
        .find("# Optional: the checkers to run (")
        .expect("the checkers line");
    let rest = &doc[start..];
    let list = &rest[rest.find('(').expect("(") + 1..rest.find(')').expect(")")];
    list.split(',')
        .map(|s| s.replace('#', "").trim().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workload_may_name_every_documented_checker() {
    let names = documented_checkers();
    assert!(names.len() >= 11, "{names:?}");
    for n in ["stats", "perf", "timeline"] {
        assert!(names.iter().any(|x| x == n), "{names:?}");
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads/register.toml");
    let text = std::fs::read_to_string(&path)
        .expect("register.toml")
        .replace(
            r#"checkers = ["linearizable", "stats"]"#,
            &format!("checkers = {names:?}"),
        );
    let w = Workload::parse(&text, &path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(w.checkers, names);
    let (_, _, results, summary) = run_workload(&w, Flaw::None, 3).await;
    for n in &names {
        let d = &results["checkers"][n.as_str()];
        assert!(d.is_object(), "{n} missing: {results}");
        let error = d["error"].as_str().unwrap_or("");
        assert!(!error.contains("unknown checker"), "{n}: {error}");
    }
    // The checkers that fit a register's history are valid.
    for n in ["linearizable", "stats", "perf", "timeline"] {
        assert_eq!(results["checkers"][n]["valid"], "valid", "{n}: {summary:?}");
    }
    let perf = &results["checkers"]["perf"];
    assert!(perf["latency"]["count"].as_u64().unwrap_or(0) > 0, "{perf}");
    assert!(
        perf["explanation"]
            .as_str()
            .is_some_and(|e| e.contains("ms median")),
        "{perf}"
    );
    let timeline = &results["checkers"]["timeline"];
    assert!(
        timeline["processes"].as_u64().unwrap_or(0) >= 6,
        "{timeline}"
    );
}
