//! Online checking's cost and lag, measured (`cargo bench --bench online`):
//! the register workload's throughput against the memory system with and
//! without online checking (runs alternated so that the machine's load
//! falls on both alike), a correct run's check lag at 1,000 ops/s, and the
//! lag from a stale read to its verdict with `--stop-on-invalid`; and
//! (`cargo bench --bench online -- final-check [SECONDS]`, that alone) the time from
//! the end of the main phase to the verdict on long runs at full speed,
//! with the online checker's verdicts taken by the final check and without
//! online checking, alternated, and the final check of the same history
//! from scratch. Figures in the README.

#[path = "../tests/online_support/mod.rs"]
mod online_support;

use faultline::check::registry::{by_name, CheckContext};
use faultline::check::Validity;
use faultline::runner::events::{EventSink, RunEvent};
use faultline::runner::lifecycle::{run_test, Dirs};
use faultline::runner::Stop;
use online_support::{run, spec, throughput};
use serde_json::Value;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "final-check") {
        // `-- final-check 10`: runs of 10 s instead of 60.
        let seconds = args.iter().find_map(|a| a.parse().ok()).unwrap_or(60.0);
        runtime.block_on(measure_end_to_verdict(seconds, 2));
    } else {
        runtime.block_on(measure_online_overhead_and_lag());
    }
}

/// The time from the end of the main phase (`RunEvent::Stopped`) to the
/// verdict (`run_test` returning, `results.json` written) of `rounds`
/// pairs of runs of the register workload at full speed for `seconds`:
/// online on, its verdicts taken by the final check, then online off,
/// alternated so that the machine's load falls on both alike. For each run
/// with online checking, the final check of its history from scratch too
/// (what the final check cost before it took the online verdicts).
async fn measure_end_to_verdict(seconds: f64, rounds: u64) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = std::env::temp_dir().join("s4-online");
    std::fs::create_dir_all(&tmp).expect("results dir");
    let dirs = Dirs {
        workloads: root.join("workloads"),
        nemeses: root.join("nemeses"),
        results: tmp.clone(),
    };
    for round in 0..rounds {
        for online in [true, false] {
            let mut s = spec("linearizable", seconds);
            s.rate = None;
            s.online = online;
            s.seed = Some(round + 1);
            let stopped: Arc<Mutex<Option<Instant>>> = Arc::default();
            let events: EventSink = {
                let stopped = stopped.clone();
                Arc::new(move |e| {
                    if matches!(e, RunEvent::Stopped) {
                        if let Ok(mut s) = stopped.lock() {
                            *s = Some(Instant::now());
                        }
                    }
                })
            };
            let outcome = run_test(s, online_support::cluster(), &dirs, Stop::new(), events)
                .await
                .expect("the run");
            let verdict_at = Instant::now();
            let end = stopped.lock().ok().and_then(|s| *s).expect("stopped");
            let to_verdict = verdict_at.duration_since(end);
            let text =
                std::fs::read_to_string(outcome.dir.join("results.json")).expect("results.json");
            let results: Value = serde_json::from_str(&text).expect("results.json is JSON");
            assert_eq!(outcome.validity, Validity::Valid, "{results:#}");
            let lin = &results["checkers"]["linearizable"];
            let (ops, keys) = (
                lin["ops"].as_u64().unwrap_or(0),
                lin["keys"].as_u64().unwrap_or(0),
            );
            let check_ms = lin["elapsed_ms"].as_f64().unwrap_or(-1.0);
            if online {
                let fc = &results["online"]["final_check"];
                // The same history's final check from scratch, as before.
                let h = faultline::history::read_path(&outcome.dir.join("history.jsonl"), None)
                    .expect("history");
                let ctx =
                    CheckContext::new(Some("cas-register".into()), faultline::host::memory_limit());
                let began = Instant::now();
                let v = by_name("linearizable")
                    .expect("registered")
                    .check(&h, &ctx)
                    .expect("checkable");
                let scratch = began.elapsed();
                assert_eq!(v.validity, Validity::Valid);
                println!(
                    "round {round}, online on:  {ops} ops, {keys} keys; end of main phase to verdict {}; final check {check_ms:.0} ms (took {} keys from the online check, checked {} again; online {}); the same history checked from scratch: {}",
                    secs(to_verdict),
                    fc["keys_taken"],
                    fc["keys_rechecked"],
                    results["online"]["lag_ms"],
                    secs(scratch),
                );
            } else {
                println!(
                    "round {round}, online off: {ops} ops, {keys} keys; end of main phase to verdict {}; final check {check_ms:.0} ms",
                    secs(to_verdict),
                );
            }
            std::fs::remove_dir_all(&outcome.dir).ok();
        }
    }
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// The figures in the README: the workload's throughput with and without
/// online checking (as fast as the memory system goes, runs alternated so
/// that the machine's load falls on both alike), and the lag from a
/// violating operation to its verdict at 1,000 ops/s.
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
