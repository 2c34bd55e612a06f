//! End to end without a cluster: the register workload, run by the runner
//! against the in-memory database, recorded, and checked by the
//! linearizability checker. A correct database must pass — also when
//! operations end `info` — and a database that serves stale reads must not.

#![cfg(feature = "controller")]

use faultline::check::linear::{check, LinearOptions};
use faultline::check::Validity;
use faultline::client::{Client, ClientError, ClientFactory, Completion, Invocation};
use faultline::generator::{limit, Generator};
use faultline::history::{History, OpType};
use faultline::model::CasRegister;
use faultline::runner::{run_workers, Recorder, Stop, WorkerConfig};
use faultline::system::memory::MemoryDb;
use faultline::workload::{GenOptions, Workload};
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

fn register_workload() -> Workload {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads");
    Workload::find("register", &dir).unwrap_or_else(|e| panic!("{e}"))
}

async fn run(seed: u64, ops: u64, factory: ClientFactory) -> History {
    let gen: Box<dyn Generator> = Box::new(limit(
        ops,
        register_workload().generator(seed, GenOptions::default()),
    ));
    let cfg = WorkerConfig::new(10, vec!["n1".into(), "n2".into(), "n3".into()]);
    let dir = tempfile::tempdir().expect("tempdir");
    let rec =
        Recorder::create(&dir.path().join("history.jsonl"), Instant::now()).expect("recorder");
    run_workers(gen, factory, None, &cfg, rec, Stop::new())
        .await
        .expect("run")
}

fn verdict(h: &History) -> Validity {
    let report = check(&CasRegister::default(), h, &LinearOptions::default()).expect("checkable");
    assert!(
        report.keys.len() >= 10,
        "ops spread over many keys: {}",
        report.keys.len()
    );
    report.validity
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linearizable_database_passes() {
    let db = MemoryDb::registers();
    let h = run(11, 3_000, Box::new(move |_| Box::new(db.client()))).await;
    assert_eq!(h.len(), 6_000);
    assert_eq!(verdict(&h), Validity::Valid);
}

/// Around a correct database, ends some operations `info`: some after
/// applying them (the answer was lost), some without applying them (the
/// request was lost). Either is allowed, so the history must still pass.
struct Lossy {
    db: MemoryDb,
    n: u64,
}

#[async_trait::async_trait]
impl Client for Lossy {
    async fn open(&mut self, _node: &str) -> Result<(), ClientError> {
        Ok(())
    }

    async fn invoke(&mut self, inv: &Invocation) -> Completion {
        self.n += 1;
        if self.n % 11 == 0 {
            return Completion::from_error(
                inv.value.clone(),
                &ClientError::unknown("request lost"),
            );
        }
        let c = self.db.apply(inv);
        if self.n % 7 == 0 {
            return Completion::from_error(inv.value.clone(), &ClientError::unknown("answer lost"));
        }
        c
    }

    async fn close(&mut self) -> Result<(), ClientError> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_requests_and_answers_recorded_as_info_still_pass() {
    let db = MemoryDb::registers();
    let h = run(
        12,
        3_000,
        Box::new(move |_| {
            Box::new(Lossy {
                db: db.clone(),
                n: 0,
            })
        }),
    )
    .await;
    assert!(h.ops.iter().filter(|o| o.kind == OpType::Info).count() > 100);
    assert_eq!(verdict(&h), Validity::Valid);
}

/// Serves reads from what this client last saw of a key, like a follower
/// answering from a stale local copy.
struct Stale {
    db: MemoryDb,
    seen: HashMap<String, Value>,
}

#[async_trait::async_trait]
impl Client for Stale {
    async fn open(&mut self, _node: &str) -> Result<(), ClientError> {
        Ok(())
    }

    async fn invoke(&mut self, inv: &Invocation) -> Completion {
        let key = inv.key.as_ref().map(Value::to_string).unwrap_or_default();
        if inv.f == "read" {
            if let Some(v) = self.seen.get(&key) {
                return Completion::ok(v.clone());
            }
        }
        let c = self.db.apply(inv);
        match inv.f.as_str() {
            "read" => {
                self.seen.insert(key, c.value.clone());
            }
            "write" if c.status == faultline::client::Status::Ok => {
                self.seen.insert(key, inv.value.clone());
            }
            _ => {}
        }
        c
    }

    async fn close(&mut self) -> Result<(), ClientError> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_reads_are_caught() {
    let db = MemoryDb::registers();
    let h = run(
        13,
        3_000,
        Box::new(move |_| {
            Box::new(Stale {
                db: db.clone(),
                seen: HashMap::new(),
            })
        }),
    )
    .await;
    assert_eq!(verdict(&h), Validity::Invalid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_workload_final_reads_see_every_acknowledged_add() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads");
    let w = Workload::find("set", &dir).unwrap_or_else(|e| panic!("{e}"));
    let db = MemoryDb::for_model(&w.model);
    let opts = GenOptions {
        rate: Some(2_000.0),
        time_limit_ns: Some(200_000_000),
    };
    let gen = w.generator(3, opts);
    let cfg = WorkerConfig::new(4, vec!["n1".into(), "n2".into()]);
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
    let acked: Vec<u64> = h
        .ops
        .iter()
        .filter(|o| o.kind == OpType::Ok && o.f == "add")
        .filter_map(|o| o.value.as_u64())
        .collect();
    // Paced at 2000/s for 0.2 s: a few hundred adds, not thousands.
    assert!((100..=600).contains(&acked.len()), "{} adds", acked.len());
    let reads: Vec<&faultline::history::Op> = h
        .ops
        .iter()
        .filter(|o| o.kind == OpType::Ok && o.f == "read")
        .collect();
    assert_eq!(reads.len(), 4, "one final read per worker");
    let last_add = h.ops.iter().rposition(|o| o.f == "add").expect("adds");
    let first_read = h.ops.iter().position(|o| o.f == "read").expect("reads");
    assert!(
        first_read > last_add,
        "final reads start after every add completed"
    );
    for r in reads {
        let seen: Vec<u64> = r
            .value
            .as_array()
            .expect("a list")
            .iter()
            .filter_map(Value::as_u64)
            .collect();
        assert_eq!(
            seen,
            acked
                .iter()
                .copied()
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
        );
    }
}
