//! Benchmark of the linearizability checker: per-file and total check time,
//! with and without parsing, on the reference corpus; a generated
//! 1,000,000-operation history for scale (time and peak memory); and long
//! single-key histories, where the search's memory must follow the
//! concurrency, not the length (time and peak memory of each check).
//!
//! ```text
//! cargo bench --bench check -- [CORPUS_DIR] [--porcupine P.jsonl] [--ops N]
//!     [--single-key-only] [--baseline FAULTLINE_BINARY]
//! ```
//! CORPUS_DIR defaults to `../shared/corpus/porcupine` when it exists (the
//! corpus is reference data outside the repository). `--porcupine` takes the
//! JSON lines (`{"file","verdict","check_ms"}`) of a Porcupine run made just
//! before, on the same machine, and prints the figures side by side.
//! `--baseline` names another build of `faultline` (e.g. the main branch's)
//! to run on the same single-key histories, side by side; it gets
//! `--time-limit 60 --memory-limit 2048` so that a blow-up stays bounded.

use faultline::check::linear::{self, LinearOptions};
use faultline::history::{self, History, Op, OpType, Process};
use faultline::model::{CasRegister, Kv, Model};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let mut corpus: Option<PathBuf> = None;
    let mut porcupine: Option<PathBuf> = None;
    let mut scale_ops: usize = 1_000_000;
    let mut single_key_only = false;
    let mut baseline: Option<PathBuf> = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--single-key-only" => single_key_only = true,
            "--baseline" => baseline = args.next().map(PathBuf::from),
            "--porcupine" => porcupine = args.next().map(PathBuf::from),
            "--ops" => {
                scale_ops = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(scale_ops)
            }
            _ => corpus = Some(PathBuf::from(a)),
        }
    }
    let corpus = corpus.or_else(|| {
        let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/porcupine");
        d.exists().then_some(d)
    });
    let theirs = porcupine.map(|p| load_porcupine(&p)).unwrap_or_default();
    single_key_bench(baseline.as_deref());
    if single_key_only {
        return;
    }
    match &corpus {
        Some(dir) => corpus_bench(dir, &theirs),
        None => println!(
            "no corpus given and ../shared/corpus/porcupine absent: skipping the corpus figures"
        ),
    }
    scale_bench(scale_ops);
}

/// Porcupine's figures by (set, file name): set is etcd, kv or kv-nopartition.
fn load_porcupine(p: &Path) -> HashMap<(String, String), f64> {
    let text =
        std::fs::read_to_string(p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()));
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| {
            let file = Path::new(v["file"].as_str()?)
                .file_name()?
                .to_string_lossy()
                .to_string();
            let set = v["set"].as_str().unwrap_or("").to_string();
            Some(((set, file), v["check_ms"].as_f64()?))
        })
        .collect()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

struct Timed {
    read: Duration,
    check: Duration,
    verdict: String,
}

fn time_file<M: Model>(m: &M, path: &Path, split: bool, reps: usize) -> Timed {
    let t0 = Instant::now();
    let h = history::read_path(path, None).unwrap_or_else(|e| panic!("{e}"));
    let read = t0.elapsed();
    let opts = LinearOptions {
        split_by_key: split,
        ..LinearOptions::default()
    };
    let mut times = Vec::with_capacity(reps);
    let mut verdict = String::new();
    for _ in 0..reps {
        let t = Instant::now();
        let r = linear::check(m, &h, &opts).unwrap_or_else(|e| panic!("{e}"));
        times.push(t.elapsed());
        verdict = r.validity.to_string();
    }
    // The median, as Porcupine's harness reports it.
    times.sort();
    let best = times[times.len() / 2];
    Timed {
        read,
        check: best,
        verdict,
    }
}

fn side(theirs: &HashMap<(String, String), f64>, set: &str, file: &str, ours_ms: f64) -> String {
    match theirs.get(&(set.to_string(), file.to_string())) {
        Some(t) => format!("  porcupine {t:9.3} ms  ({:.1}x)", t / ours_ms.max(1e-6)),
        None => String::new(),
    }
}

fn corpus_bench(dir: &Path, theirs: &HashMap<(String, String), f64>) {
    println!(
        "== corpus {} (check time: median of 3; keys in parallel on all cores, as Porcupine) ==",
        dir.display()
    );
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("jepsen"))
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    let (mut read, mut check, mut porc) = (Duration::ZERO, Duration::ZERO, 0.0);
    let mut rows = Vec::new();
    for f in &files {
        let t = time_file(&CasRegister::default(), f, true, 3);
        let name = f
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        porc += theirs
            .get(&("etcd".to_string(), name.clone()))
            .copied()
            .unwrap_or(0.0);
        read += t.read;
        check += t.check;
        rows.push((t.check, name, t.verdict, t.read));
    }
    for (c, name, v, r) in &rows {
        println!(
            "  {name:<16} {v:<8} check {:8.3} ms  read {:6.3} ms{}",
            ms(*c),
            ms(*r),
            side(theirs, "etcd", name, ms(*c))
        );
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r.0));
    println!(
        "etcd: {} files: check {:.1} ms in all, with parsing {:.1} ms; slowest: {}",
        files.len(),
        ms(check),
        ms(check + read),
        rows.iter()
            .take(4)
            .map(|r| format!("{} {:.2} ms", r.1, ms(r.0)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if porc > 0.0 {
        println!("etcd: porcupine {porc:.1} ms in all -> faultline takes {:.3} of porcupine's time ({:.1}x faster)", ms(check) / porc, porc / ms(check));
    }
    for name in [
        "c01-ok", "c01-bad", "c10-ok", "c10-bad", "c50-ok", "c50-bad",
    ] {
        let f = dir.join("kv").join(format!("{name}.txt"));
        if !f.exists() {
            continue;
        }
        let t = time_file(&Kv, &f, true, 3);
        let file = format!("{name}.txt");
        println!(
            "kv split   {name:<8} {:<8} check {:9.3} ms  with parsing {:9.3} ms{}",
            t.verdict,
            ms(t.check),
            ms(t.check + t.read),
            side(theirs, "kv", &file, ms(t.check))
        );
    }
    for name in ["c10-ok", "c10-bad"] {
        let f = dir.join("kv").join(format!("{name}.txt"));
        if !f.exists() {
            continue;
        }
        let t = time_file(&Kv, &f, false, 1);
        let file = format!("{name}.txt");
        println!(
            "kv whole   {name:<8} {:<8} check {:9.3} ms  with parsing {:9.3} ms{}",
            t.verdict,
            ms(t.check),
            ms(t.check + t.read),
            side(theirs, "kv-nopartition", &file, ms(t.check))
        );
    }
}

/// splitmix64: a tiny seeded generator, so the scale history is the same every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A register history over `keys` keys from `procs` processes, each op on
/// a random key taking effect inside its interval; `crash_permille` of ops
/// crash (`info`), half of those taking effect at some later point. When
/// `sequential`, each op is called after the one before returned (no
/// concurrency at all, but crashed ops still pending). With
/// `fresh_write_at`, the first completed write from that op on writes
/// [`FRESH`] instead (the reads that see it return it).
pub fn generate_register_history(
    ops: usize,
    keys: u64,
    procs: u64,
    crash_permille: u64,
    sequential: bool,
    seed: u64,
    fresh_write_at: Option<usize>,
) -> History {
    struct Planned {
        process: u64,
        key: u64,
        f: &'static str,
        input: Value,
        output: Value,
        kind: OpType,
        call: u64,
        ret: u64,
        lin: Option<u64>,
    }
    let mut rng = Rng(seed);
    let mut clock = vec![0u64; procs as usize];
    let mut ids: Vec<u64> = (0..procs).collect();
    let mut plan = Vec::with_capacity(ops);
    let mut last_return = 0u64;
    for _ in 0..ops {
        let slot = rng.below(procs) as usize;
        let call = if sequential {
            last_return + 1 + rng.below(1000)
        } else {
            clock[slot] + 1 + rng.below(1000) * procs + slot as u64
        };
        let ret = call + 2 + rng.below(5000) * procs;
        let crashed = rng.below(1000) < crash_permille;
        let lin = if crashed {
            (rng.below(2) == 0).then(|| call + 1 + rng.below(20_000))
        } else {
            Some(call + 1 + rng.below(ret - call - 1))
        };
        let key = rng.below(keys);
        let (f, input) = match rng.below(10) {
            0..=4 => ("read", Value::Null),
            5..=7 => ("write", json!(rng.below(5))),
            _ => ("cas", json!([rng.below(5), rng.below(5)])),
        };
        plan.push(Planned {
            process: ids[slot],
            key,
            f,
            input,
            output: Value::Null,
            kind: if crashed { OpType::Info } else { OpType::Ok },
            call,
            ret,
            lin,
        });
        clock[slot] = ret;
        last_return = ret;
        if crashed {
            ids[slot] += procs;
        }
    }
    if let Some(from) = fresh_write_at {
        if let Some(p) = plan
            .iter_mut()
            .skip(from)
            .find(|p| p.f == "write" && p.kind == OpType::Ok)
        {
            p.input = json!(FRESH);
        }
    }
    let mut order: Vec<usize> = (0..plan.len()).filter(|&i| plan[i].lin.is_some()).collect();
    order.sort_by_key(|&i| plan[i].lin);
    let mut regs = vec![Value::Null; keys as usize];
    for i in order {
        let p = &mut plan[i];
        let r = &mut regs[p.key as usize];
        match p.f {
            "read" => p.output = r.clone(),
            "write" => {
                *r = p.input.clone();
                p.output = p.input.clone();
            }
            _ => {
                p.output = p.input.clone();
                if *r == p.input[0] {
                    *r = p.input[1].clone();
                } else if p.kind == OpType::Ok {
                    p.kind = OpType::Fail;
                }
            }
        }
    }
    let mut events: Vec<(u64, usize, bool)> = Vec::with_capacity(plan.len() * 2);
    for (i, p) in plan.iter().enumerate() {
        events.push((p.call, i, false));
        events.push((p.ret, i, true));
    }
    events.sort_unstable();
    let ops = events
        .into_iter()
        .map(|(t, i, done)| {
            let p = &plan[i];
            let (kind, value) = match (done, p.kind) {
                (false, _) => (
                    OpType::Invoke,
                    if p.f == "read" {
                        Value::Null
                    } else {
                        p.input.clone()
                    },
                ),
                (true, OpType::Info) => (OpType::Info, p.input.clone()),
                (true, k) => (k, p.output.clone()),
            };
            let mut op = Op::new(0, Process::Client(p.process), kind, p.f, value);
            op.time = Some(t);
            op.key = Some(json!(p.key));
            op
        })
        .collect();
    History::new(ops)
}

fn scale_bench(n: usize) {
    println!(
        "== scale: generated register history, {n} ops, 1,000 keys, 20 processes, 1% crashed =="
    );
    let t = Instant::now();
    let h = generate_register_history(n, 1000, 20, 10, false, 42, None);
    let dir = std::env::temp_dir().join(format!("faultline-bench-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("scale.jsonl");
    {
        let f = std::fs::File::create(&path).expect("temp file");
        let mut w = std::io::BufWriter::new(f);
        h.write_jsonl(&mut w).expect("write history");
        w.flush().expect("flush history");
    }
    println!(
        "generated {} events in {:.1} s -> {}",
        h.len(),
        t.elapsed().as_secs_f64(),
        path.display()
    );
    drop(h);
    // Run the real command so peak memory is that of one check, read included.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["check", "--json", "--stats", "--model", "cas-register"])
        .arg(&path)
        .output()
        .expect("run faultline check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
    println!(
        "faultline check: verdict {} , {} ops, {} keys, check {:.0} ms, read {:.0} ms",
        v["verdict"],
        v["ops"],
        v["keys"],
        v["elapsed_ms"].as_f64().unwrap_or(-1.0),
        v["read_ms"].as_f64().unwrap_or(-1.0)
    );
    print!("{}", String::from_utf8_lossy(&out.stderr));
    let _ = std::fs::remove_dir_all(&dir);
}

/// One checker run on a history file, as the command reports it.
struct Run {
    verdict: String,
    reason: String,
    check_ms: f64,
    read_ms: f64,
    peak_mib: String,
    configurations: u64,
}

/// Runs `binary check` on `path` and reads the verdict, times and the
/// peak memory (VmHWM, which `--stats` prints) from its output.
fn run_check(binary: &Path, path: &Path, extra: &[&str]) -> Run {
    let out = std::process::Command::new(binary)
        .args(["check", "--json", "--stats", "--model", "cas-register"])
        .args(extra)
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let v: Value = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
    let reason = v["keys"]
        .as_array()
        .and_then(|ks| ks.iter().find_map(|k| k["reason"].as_str()))
        .unwrap_or("")
        .to_string();
    let peak_mib = stderr
        .split("peak memory ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .unwrap_or("?")
        .to_string();
    Run {
        verdict: v["verdict"].as_str().unwrap_or("?").to_string(),
        reason,
        check_ms: v["elapsed_ms"].as_f64().unwrap_or(-1.0),
        read_ms: v["read_ms"].as_f64().unwrap_or(-1.0),
        peak_mib,
        configurations: v["configurations"].as_u64().unwrap_or(0),
    }
}

fn describe(r: &Run) -> String {
    let mut s = format!(
        "{:<7} check {:7.2} s  read {:5.2} s  peak {:>6} MiB  {} configurations",
        r.verdict,
        r.check_ms / 1e3,
        r.read_ms / 1e3,
        r.peak_mib,
        r.configurations
    );
    if !r.reason.is_empty() {
        s.push_str(&format!("  ({})", r.reason));
    }
    s
}

/// Makes the completed read nearest the middle of `h` return 99, which
/// no operation of the generator writes (values are 0 to 4).
fn forge_middle_read(h: &mut History) {
    let reads: Vec<usize> = h
        .ops
        .iter()
        .enumerate()
        .filter(|(_, o)| o.kind == OpType::Ok && o.f == "read")
        .map(|(i, _)| i)
        .collect();
    if let Some(&i) = reads.get(reads.len() / 2) {
        h.ops[i].value = json!(99);
    }
}

/// The value the write marked by [`generate_register_history`]'s
/// `fresh_write_at` writes: no other op writes it.
const FRESH: u64 = 77;

/// Makes the completed read nearest the middle of `h` return [`FRESH`],
/// which one completed write wrote a tenth of the way in, long overwritten
/// by then: a stale read no crashed op can explain (none writes it).
fn forge_middle_read_stale(h: &mut History) {
    let reads: Vec<usize> = h
        .ops
        .iter()
        .enumerate()
        .filter(|(_, o)| o.kind == OpType::Ok && o.f == "read")
        .map(|(i, _)| i)
        .collect();
    if let Some(&i) = reads.get(reads.len() / 2) {
        h.ops[i].value = json!(FRESH);
    }
}

/// How a single-key case's middle read is forged.
#[derive(Clone, Copy, PartialEq)]
enum Forged {
    /// Not at all: the history is linearizable.
    No,
    /// To 99, which nothing writes.
    Unwritten,
    /// To a value written long before it ([`forge_middle_read_stale`]).
    Stale,
}

/// The single-key cases with a target: (ops, processes), each to be found
/// valid in under 5 s and 1.5 GB, reading included.
const TARGETS: [(usize, u64); 2] = [(1_000_000, 10), (300_000, 20)];

/// Single-key cas-register histories, linearizable by construction, 1%
/// crashed: the search's memory must follow the concurrency, not the
/// length. Each check runs in its own process, so each peak is its own.
fn single_key_bench(baseline: Option<&Path>) {
    println!(
        "== single key: cas-register, 1% crashed, each op taking effect inside its interval =="
    );
    let dir = std::env::temp_dir().join(format!("faultline-bench-1key-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    // FAULTLINE_BENCH_KEEP=1 keeps the generated files, to rerun by hand.
    let keep = std::env::var_os("FAULTLINE_BENCH_KEEP").is_some();
    // FAULTLINE_BENCH_MAX_OPS=N skips the larger histories.
    let max_ops: usize = std::env::var("FAULTLINE_BENCH_MAX_OPS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(usize::MAX);
    // FAULTLINE_BENCH_CRASHED_PERMILLE=N crashes N ops in 1,000 instead
    // of 10, to see what the crashed ops cost the search.
    let crashed: u64 = std::env::var("FAULTLINE_BENCH_CRASHED_PERMILLE")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10);
    // FAULTLINE_BENCH_PROCS=N runs only the cases with N processes.
    let only_procs: Option<u64> = std::env::var("FAULTLINE_BENCH_PROCS")
        .ok()
        .and_then(|n| n.parse().ok());
    // (ops, processes, one after another, one read in the middle forged:
    // to a value nothing wrote, or stale)
    let cases: [(usize, u64, bool, Forged); 9] = [
        (10_000, 10, false, Forged::No),
        (10_000, 10, false, Forged::Unwritten),
        (10_000, 3, false, Forged::Stale),
        (10_000, 10, false, Forged::Stale),
        (100_000, 10, false, Forged::No),
        (1_000_000, 10, false, Forged::No),
        (300_000, 20, false, Forged::No),
        (100_000, 5, true, Forged::No),
        (1_000_000, 5, true, Forged::No),
    ];
    for (ops, procs, sequential, forged) in cases
        .into_iter()
        .filter(|c| c.0 <= max_ops && only_procs.map_or(true, |p| p == c.1))
    {
        let fresh_write_at = (forged == Forged::Stale).then_some(ops / 10);
        let mut h =
            generate_register_history(ops, 1, procs, crashed, sequential, 7, fresh_write_at);
        match forged {
            Forged::No => {}
            Forged::Unwritten => forge_middle_read(&mut h),
            Forged::Stale => forge_middle_read_stale(&mut h),
        }
        let forged_tag = match forged {
            Forged::No => "",
            Forged::Unwritten => "-forged",
            Forged::Stale => "-stale",
        };
        let path = dir.join(format!("single-{ops}-{procs}{forged_tag}.jsonl"));
        {
            let f = std::fs::File::create(&path).expect("temp file");
            let mut w = std::io::BufWriter::new(f);
            h.write_jsonl(&mut w).expect("write history");
            w.flush().expect("flush history");
        }
        drop(h);
        let mut shape = if sequential {
            format!("{procs} processes one after another")
        } else {
            format!("{procs} processes")
        };
        match forged {
            Forged::No => {}
            Forged::Unwritten => shape.push_str(", the middle read forged to 99 (never written)"),
            Forged::Stale => shape.push_str(&format!(
                ", the middle read forged to {FRESH} (written once, a tenth of the way in: stale)"
            )),
        }
        println!("{ops:>9} ops, {shape}:");
        // A forged history may be out of this build's reach too: bound it
        // as the baseline is.
        let bounds: &[&str] = if forged == Forged::No {
            &[]
        } else {
            &["--time-limit", "60", "--memory-limit", "2048"]
        };
        let ours = run_check(Path::new(env!("CARGO_BIN_EXE_faultline")), &path, bounds);
        println!("    this build: {}", describe(&ours));
        if !sequential && forged == Forged::No && TARGETS.contains(&(ops, procs)) {
            // The targets of issue 14: the whole check, reading included.
            let wall = (ours.check_ms + ours.read_ms) / 1e3;
            let peak_gb = ours.peak_mib.parse::<f64>().unwrap_or(f64::INFINITY) * 1048576.0 / 1e9;
            let met = ours.verdict == "valid" && wall < 5.0 && peak_gb < 1.5;
            println!(
                "    target (valid in under 5 s and 1.5 GB, reading included): {} ({wall:.2} s, {peak_gb:.2} GB)",
                if met { "met" } else { "NOT met" }
            );
        }
        if let Some(b) = baseline {
            let theirs = run_check(b, &path, &["--time-limit", "60", "--memory-limit", "2048"]);
            println!("    baseline:   {}", describe(&theirs));
        }
        if !keep {
            let _ = std::fs::remove_file(&path);
        }
    }
    if keep {
        println!("histories kept in {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
}
