//! Throughput of the generator, the workers and the recorder together,
//! against clients that cost (almost) nothing: the harness's own ceiling.
//!
//! 10 workers run the shipped register workload (independent keys,
//! read/write/cas) and every invocation and completion is recorded to a
//! `history.jsonl` in a temporary directory, as in a real run. Prints
//! ops/s (an op is an invocation plus its completion). The target
//! is ≥ 100,000 ops/s on the 2-core development machine; Jepsen's generator
//! claims 20,000.
//!
//! `cargo bench --bench generator [-- --ops N]`

use faultline::client::{ClientFactory, NoopClient};
use faultline::generator::{limit, Generator};
use faultline::runner::{run_workers, Recorder, Stop, WorkerConfig};
use faultline::system::memory::MemoryDb;
use faultline::workload::{GenOptions, Workload};
use std::path::Path;
use std::time::Instant;

const WORKERS: usize = 10;

fn main() {
    let ops = std::env::args()
        .skip_while(|a| a != "--ops")
        .nth(1)
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(1_000_000);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads");
    let workload = match Workload::find("register", &dir) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start tokio: {e}");
            std::process::exit(1);
        }
    };
    println!(
        "generator bench: {ops} ops, {WORKERS} workers, {} cores, recording to history.jsonl",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for client in ["noop", "memory"] {
        let tmp = match tempfile::tempdir() {
            Ok(t) => t,
            Err(e) => {
                eprintln!("cannot make a temp dir: {e}");
                std::process::exit(1);
            }
        };
        let path = tmp.path().join("history.jsonl");
        let gen: Box<dyn Generator> =
            Box::new(limit(ops, workload.generator(1, GenOptions::default())));
        let factory: ClientFactory = match client {
            "noop" => Box::new(|_| Box::new(NoopClient)),
            _ => {
                let db = MemoryDb::registers();
                Box::new(move |_| Box::new(db.client()))
            }
        };
        let cfg = WorkerConfig::new(WORKERS, vec!["n1".into(), "n2".into(), "n3".into()]);
        let start = Instant::now();
        let result = rt.block_on(async {
            let rec = Recorder::create(&path, start)?;
            run_workers(gen, factory, None, &cfg, rec, Stop::new())
                .await
                .map_err(std::io::Error::other)
        });
        let secs = start.elapsed().as_secs_f64();
        match result {
            Ok(h) => {
                let bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
                println!(
                    "{client:>6} client: {:>9.0} ops/s  ({} events, {:.2} s, history {:.1} MB)",
                    ops as f64 / secs,
                    h.len(),
                    secs,
                    bytes as f64 / 1e6
                );
            }
            Err(e) => {
                eprintln!("{client} run failed: {e}");
                std::process::exit(1);
            }
        }
    }
}
