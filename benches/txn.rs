//! Benchmark of the transactional checker: a generated list-append history
//! (by default 100,000 transactions of 1-5 micro-operations, about 100
//! keys active at once, 10 concurrent processes), checked for strict
//! serializability; then the same history with one forged read, which the
//! checker must find.
//!
//! ```text
//! cargo bench --no-default-features --bench txn -- [--rw-register] [--txns N] [--concurrency C] [--keys K] [--stale PERMILLE] [--write PATH]
//! ```
//!
//! `--rw-register` generates an rw-register history instead (unique
//! writes, 100 per key before it is retired).
//! `--write PATH` also writes the history as JSON Lines (to time
//! `faultline check --model list-append PATH` end to end).
//! `--stale P` also checks a broken copy in which P‰ of the reads miss
//! their key's last element: many anomalies, large cyclic components.
//!
//! The history is strictly serializable by construction: each transaction
//! takes effect atomically at the moment it completes.

use faultline::check::txn::{self, TxnKind, TxnOptions};
use faultline::check::Validity;
use faultline::history::{History, Op, OpType, Process};
use serde_json::{json, Value};
use std::time::Instant;

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Generates the history: `txns` transactions over `concurrency` processes,
/// `keys` keys active at once, each retired after 100 appends (or, for
/// rw-register, 100 writes of unique values).
fn generate(workload: TxnKind, txns: usize, concurrency: u64, keys: u64, seed: u64) -> History {
    let registers = workload == TxnKind::RwRegister;
    let mut rng = Rng(seed | 1);
    let mut lists: Vec<Vec<u64>> = Vec::new();
    let mut active: Vec<usize> = Vec::new();
    for _ in 0..keys {
        active.push(lists.len());
        lists.push(Vec::new());
    }
    let mut pending: Vec<Option<Value>> = vec![None; concurrency as usize];
    let mut ops = Vec::with_capacity(txns * 2);
    let mut invoked = 0;
    let mut completed = 0;
    while completed < txns {
        let p = rng.below(concurrency) as usize;
        match pending[p].take() {
            None if invoked < txns => {
                let n = 1 + rng.below(5);
                let mops: Vec<Value> = (0..n)
                    .map(|_| {
                        let k = active[rng.below(keys) as usize];
                        match (rng.below(2) == 0, registers) {
                            (true, _) => json!(["r", k, null]),
                            (false, false) => json!(["append", k, null]),
                            (false, true) => json!(["w", k, null]),
                        }
                    })
                    .collect();
                let v = Value::Array(mops);
                ops.push(Op::new(
                    0,
                    Process::Client(p as u64),
                    OpType::Invoke,
                    "txn",
                    v.clone(),
                ));
                pending[p] = Some(v);
                invoked += 1;
            }
            None => {}
            Some(v) => {
                // Apply atomically now: appends get the key's next value.
                let mut done = Vec::new();
                for m in v.as_array().into_iter().flatten() {
                    let k = m[1].as_u64().unwrap_or(0) as usize;
                    if m[0] == "r" && registers {
                        done.push(json!(["r", k, lists[k].last()]));
                    } else if m[0] == "r" {
                        done.push(json!(["r", k, lists[k]]));
                    } else {
                        let x = lists[k].len() as u64 + 1;
                        lists[k].push(x);
                        done.push(json!([if registers { "w" } else { "append" }, k, x]));
                        if lists[k].len() >= 100 {
                            if let Some(slot) = active.iter().position(|&a| a == k) {
                                active[slot] = lists.len();
                                lists.push(Vec::new());
                            }
                        }
                    }
                }
                // The invocation must show the values appended: rewrite it.
                if let Some(inv) = ops
                    .iter_mut()
                    .rev()
                    .find(|o| o.process == Process::Client(p as u64))
                {
                    inv.value = Value::Array(
                        done.iter()
                            .map(|m| {
                                if m[0] == "r" {
                                    json!(["r", m[1], null])
                                } else {
                                    m.clone()
                                }
                            })
                            .collect(),
                    );
                }
                ops.push(Op::new(
                    0,
                    Process::Client(p as u64),
                    OpType::Ok,
                    "txn",
                    Value::Array(done),
                ));
                completed += 1;
            }
        }
    }
    History::new(ops)
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let (mut txns, mut concurrency, mut keys, mut stale) = (100_000usize, 10u64, 100u64, 0u64);
    let mut write: Option<String> = None;
    let mut workload = TxnKind::ListAppend;
    while let Some(a) = args.next() {
        if a == "--rw-register" {
            workload = TxnKind::RwRegister;
            continue;
        }
        let raw = args.next();
        let v = raw.as_deref().and_then(|v| v.parse::<u64>().ok());
        match (a.as_str(), v) {
            ("--write", _) if raw.is_some() => write = raw,
            ("--txns", Some(v)) => txns = v as usize,
            ("--concurrency", Some(v)) => concurrency = v.max(1),
            ("--keys", Some(v)) => keys = v.max(1),
            ("--stale", Some(v)) => stale = v.min(1000),
            _ => {
                eprintln!("usage: txn [--rw-register] [--txns N] [--concurrency C] [--keys K] [--stale PERMILLE] [--write PATH]");
                std::process::exit(2);
            }
        }
    }
    let t0 = Instant::now();
    let h = generate(workload, txns, concurrency, keys, 0x5eed);
    let micro: usize = h
        .ops
        .iter()
        .filter(|o| o.kind == OpType::Ok)
        .map(|o| o.value.as_array().map_or(0, Vec::len))
        .sum();
    println!(
        "generated {txns} transactions ({micro} micro-ops, {} events, concurrency {concurrency}, {keys} keys active) in {:.2} s",
        h.len(),
        t0.elapsed().as_secs_f64()
    );

    if let Some(path) = &write {
        let file = std::fs::File::create(path).expect("create the --write file");
        h.write_jsonl(std::io::BufWriter::new(file))
            .expect("write the history");
        println!("wrote {path}");
    }

    let opts = TxnOptions::new(workload);
    let t = Instant::now();
    let r = txn::check(&h, &opts).expect("generated history is well formed");
    let secs = t.elapsed().as_secs_f64();
    println!(
        "valid history: {} in {secs:.2} s ({:.0} txns/s), {} graph edges, anomalies {:?}",
        r.validity,
        txns as f64 / secs,
        r.edges,
        r.anomaly_types
    );
    assert_eq!(
        r.validity,
        Validity::Valid,
        "a serial-by-construction history must be valid"
    );

    // Forge one read: a new transaction, after everything else, reads a
    // key without its last append: a stale read the checker must catch.
    let mut bad = h.clone();
    let last_read = h
        .ops
        .iter()
        .rev()
        .filter(|o| o.kind == OpType::Ok)
        .find_map(|o| {
            o.value
                .as_array()?
                .iter()
                .find(|m| {
                    m[0] == "r" && (m[2].as_array().is_some_and(|l| l.len() > 1) || m[2].is_u64())
                })
                .cloned()
        });
    if let Some(m) = last_read {
        // A list without its last element; a register's initial nil.
        let stale = match m[2].as_array() {
            Some(l) => Value::Array(l[..l.len() - 1].to_vec()),
            None => Value::Null,
        };
        let p = Process::Client(concurrency + 1);
        bad.ops.push(Op::new(
            0,
            p,
            OpType::Invoke,
            "txn",
            json!([["r", m[1], null]]),
        ));
        bad.ops.push(Op::new(
            0,
            p,
            OpType::Ok,
            "txn",
            json!([["r", m[1], stale]]),
        ));
        bad.reindex();
    }
    let t = Instant::now();
    let r = txn::check(&bad, &opts).expect("well formed");
    let secs = t.elapsed().as_secs_f64();
    println!(
        "one forged stale read: {} in {secs:.2} s, anomalies {:?}, not {:?}",
        r.validity, r.anomaly_types, r.not
    );
    assert_eq!(
        r.validity,
        Validity::Invalid,
        "the forged read must be found"
    );

    if stale > 0 && workload == TxnKind::ListAppend {
        let mut broken = h.clone();
        let mut rng = Rng(7);
        let mut forged = 0;
        for o in broken.ops.iter_mut().filter(|o| o.kind == OpType::Ok) {
            for m in o.value.as_array_mut().into_iter().flatten() {
                if m[0] == "r" && rng.below(1000) < stale {
                    if let Some(l) = m[2].as_array_mut() {
                        forged += usize::from(l.pop().is_some());
                    }
                }
            }
        }
        let t = Instant::now();
        let r = txn::check(&broken, &opts).expect("well formed");
        let secs = t.elapsed().as_secs_f64();
        println!(
            "{forged} forged stale reads: {} in {secs:.2} s{}, anomalies {:?}",
            r.validity,
            r.reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default(),
            r.counts
        );
    }
}
