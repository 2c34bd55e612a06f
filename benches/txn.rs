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
//!
//! ```text
//! cargo bench --no-default-features --bench txn -- --scale N [--format edn|jsonl] [--bin PATH]... [--runs R] [--dir DIR] [--keep]
//! ```
//!
//! `--scale N` measures `faultline check --model list-append` end to end at
//! scale: it writes N transactions (the same generator, streamed to disk, as
//! Jepsen EDN by default) into `--dir` (default /tmp/h-txnscale/), runs the
//! release binary (`--bin`, default target/release/faultline) on it as a
//! child process, and prints the wall time, the read throughput (MB/s of
//! file per second of reading, as the checker reports it) and the child's
//! peak resident memory (its VmHWM, sampled from /proc until it exits).
//! Several `--bin`s are run on the same file taking turns, each `--runs`
//! times (default 1), to compare binaries under the same load. The file is
//! deleted afterwards unless `--keep`.

use faultline::check::txn::{self, TxnKind, TxnOptions};
use faultline::check::Validity;
use faultline::history::{History, Op, OpType, Process};
use serde_json::{json, Value};
use std::io::Write;
use std::time::{Duration, Instant};

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

/// A transaction in flight: per micro-operation its key, and the value to
/// append (none for a read).
type InFlight = Vec<(usize, Option<u64>)>;

/// Writes a list-append history of `txns` transactions straight to `out`
/// as Jepsen EDN (one op map per line) or JSON Lines, by the rules of
/// [`generate`] but without holding it in memory: only the active keys'
/// lists and each process's transaction in flight are kept.
fn generate_file(
    out: &mut impl Write,
    edn: bool,
    txns: usize,
    concurrency: u64,
    keys: u64,
    seed: u64,
) -> std::io::Result<()> {
    let mut rng = Rng(seed | 1);
    // Every key's list (as committed so far) and how many values were
    // handed out for it; `active` holds the keys in use.
    let mut lists: Vec<Vec<u64>> = vec![Vec::new(); keys as usize];
    let mut handed: Vec<u64> = vec![0; keys as usize];
    let mut active: Vec<usize> = (0..keys as usize).collect();
    // Per process: its transaction in flight.
    let mut pending: Vec<Option<InFlight>> = vec![None; concurrency as usize];
    let (mut invoked, mut completed, mut index) = (0usize, 0usize, 0u64);
    let mut line = String::with_capacity(4096);
    let (append, read, nil) = if edn {
        (":append", ":r", "nil")
    } else {
        ("\"append\"", "\"r\"", "null")
    };
    let sep = if edn { " " } else { "," };
    while completed < txns {
        let p = rng.below(concurrency) as usize;
        line.clear();
        let kind = match pending[p].take() {
            None if invoked < txns => {
                // As Elle's generator does, each append's value is chosen
                // when the transaction is invoked: unique per key.
                let n = 1 + rng.below(5);
                let mut mops = Vec::with_capacity(n as usize);
                for i in 0..n {
                    let slot = rng.below(keys) as usize;
                    let k = active[slot];
                    let value = (rng.below(2) == 1).then(|| {
                        handed[k] += 1;
                        if handed[k] >= 100 {
                            active[slot] = lists.len();
                            lists.push(Vec::new());
                            handed.push(0);
                        }
                        handed[k]
                    });
                    if i > 0 {
                        line.push_str(sep);
                    }
                    match value {
                        Some(x) => line.push_str(&format!("[{append}{sep}{k}{sep}{x}]")),
                        None => line.push_str(&format!("[{read}{sep}{k}{sep}{nil}]")),
                    }
                    mops.push((k, value));
                }
                pending[p] = Some(mops);
                invoked += 1;
                "invoke"
            }
            None => continue,
            Some(mops) => {
                // Takes effect atomically now.
                for (i, &(k, value)) in mops.iter().enumerate() {
                    if i > 0 {
                        line.push_str(sep);
                    }
                    match value {
                        Some(x) => {
                            lists[k].push(x);
                            line.push_str(&format!("[{append}{sep}{k}{sep}{x}]"));
                        }
                        None => {
                            line.push_str(&format!("[{read}{sep}{k}{sep}["));
                            for (j, x) in lists[k].iter().enumerate() {
                                if j > 0 {
                                    line.push_str(sep);
                                }
                                line.push_str(&x.to_string());
                            }
                            line.push_str("]]");
                        }
                    }
                }
                completed += 1;
                "ok"
            }
        };
        let value = std::mem::take(&mut line);
        if edn {
            writeln!(
                out,
                "{{:index {index}, :time {t}, :type :{kind}, :process {p}, :f :txn, :value [{value}]}}",
                t = index * 1000
            )?;
        } else {
            writeln!(
                out,
                "{{\"index\":{index},\"time\":{t},\"process\":{p},\"type\":\"{kind}\",\"f\":\"txn\",\"value\":[{value}]}}",
                t = index * 1000
            )?;
        }
        line = value;
        index += 1;
    }
    Ok(())
}

/// The child's peak resident memory (VmHWM) in KiB, from /proc.
fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `--scale`: generate, check with each binary as a child process (`runs`
/// times each, taking turns, so that they share the machine's load),
/// measure, delete.
fn scale(txns: usize, edn: bool, bins: &[String], runs: usize, dir: &str, keep: bool) {
    let dir = std::path::Path::new(dir);
    if let Err(e) = std::fs::create_dir_all(dir) {
        eprintln!("cannot create {}: {e}", dir.display());
        std::process::exit(1);
    }
    let path = dir.join(format!("txn-{txns}.{}", if edn { "edn" } else { "jsonl" }));
    let t0 = Instant::now();
    let written = std::fs::File::create(&path).and_then(|f| {
        let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
        generate_file(&mut w, edn, txns, 10, 100, 0x5eed)?;
        w.flush()
    });
    if let Err(e) = written {
        eprintln!("cannot write {}: {e}", path.display());
        std::process::exit(1);
    }
    let size = std::fs::metadata(&path).map_or(0, |m| m.len());
    println!(
        "generated {txns} list-append transactions, {:.0} MB of {}, in {:.1} s: {}",
        size as f64 / 1e6,
        if edn { "EDN" } else { "JSON Lines" },
        t0.elapsed().as_secs_f64(),
        path.display()
    );
    for run in 1..=runs {
        for bin in bins {
            check_once(bin, &path, size, run);
        }
    }
    if keep {
        println!("kept {}", path.display());
    } else if let Err(e) = std::fs::remove_file(&path) {
        eprintln!("cannot remove {}: {e}", path.display());
    }
}

/// Runs `bin check` on `path` once and prints what it took.
fn check_once(bin: &str, path: &std::path::Path, size: u64, run: usize) {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    let t = Instant::now();
    let child = std::process::Command::new(bin)
        .args(["check", "--model", "list-append", "--json"])
        .arg(path)
        .stdout(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cannot run {bin}: {e} (build it: cargo build --release)");
            std::process::exit(1);
        }
    };
    let pid = child.id();
    let mut peak = 0;
    let status = loop {
        if let Some(k) = vm_hwm_kib(pid) {
            peak = peak.max(k);
        }
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                eprintln!("waiting for {bin}: {e}");
                std::process::exit(1);
            }
        }
    };
    let wall = t.elapsed().as_secs_f64();
    let mut out = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = std::io::Read::read_to_string(&mut o, &mut out);
    }
    let v: Value = serde_json::from_str(out.trim()).unwrap_or(Value::Null);
    let read_ms = v["read_ms"].as_f64().unwrap_or(f64::NAN);
    println!(
        "{bin} (run {run}, load average before {load}): {} (exit {}), wall {wall:.2} s, reading {:.2} s ({:.0} MB/s), checking {:.2} s, peak RSS {} MiB",
        v["verdict"].as_str().unwrap_or("?"),
        status.code().unwrap_or(-1),
        read_ms / 1e3,
        size as f64 / 1e6 / (read_ms / 1e3),
        v["elapsed_ms"].as_f64().unwrap_or(f64::NAN) / 1e3,
        peak / 1024
    );
}

fn main() {
    let all: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if let Some(i) = all.iter().position(|a| a == "--scale") {
        let n = all.get(i + 1).and_then(|v| v.parse::<usize>().ok());
        let flag = |name: &str| {
            all.iter()
                .position(|a| a == name)
                .and_then(|j| all.get(j + 1))
        };
        let edn = flag("--format").map_or(true, |f| f == "edn");
        let mut bins: Vec<String> = all
            .iter()
            .enumerate()
            .filter(|(_, a)| *a == "--bin")
            .filter_map(|(j, _)| all.get(j + 1).cloned())
            .collect();
        if bins.is_empty() {
            bins.push("target/release/faultline".to_string());
        }
        let runs = flag("--runs").and_then(|r| r.parse().ok()).unwrap_or(1);
        let dir = flag("--dir").map_or("/tmp/h-txnscale", String::as_str);
        match n {
            Some(n) => scale(n, edn, &bins, runs, dir, all.iter().any(|a| a == "--keep")),
            None => {
                eprintln!("usage: txn --scale N [--format edn|jsonl] [--bin PATH]... [--runs R] [--dir DIR] [--keep]");
                std::process::exit(2);
            }
        }
        return;
    }
    let mut args = all.into_iter();
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
