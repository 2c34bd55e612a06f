//! Online checking's cost and lag, measured (`cargo bench --bench online`):
//! the register workload's throughput against the memory system with and
//! without online checking (runs alternated so that the machine's load
//! falls on both alike), a correct run's check lag at 1,000 ops/s, and the
//! lag from a stale read to its verdict with `--stop-on-invalid`. Figures
//! in the README.

#[path = "../tests/online_support/mod.rs"]
mod online_support;

use faultline::check::Validity;
use online_support::{run, spec, throughput};

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(measure_online_overhead_and_lag());
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
