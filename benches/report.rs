//! Benchmark of the per-run artifacts: a generated register history of
//! (by default) 100,000 operations on 10 processes, a few of them failed
//! or unknown, under five kill windows; writes `timeline.html` and prints
//! its size and how long rendering took, then every artifact (`write_all`)
//! with its time.
//!
//! ```text
//! cargo bench --bench report -- [--ops N] [--out DIR]
//! ```
//!
//! The output folder (default `target/report-bench`) keeps the files, so
//! a browser can load `timeline.html` afterwards (docs/reports.md names the
//! marker and ids a browser test waits for).

use faultline::history::{History, Op, OpType, Process};
use faultline::report::{self, timeline, Data, Run};
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;

fn history(n: usize) -> History {
    let procs = 10u64;
    let mut ops = Vec::with_capacity(2 * n + 20);
    let mut t = 0u64;
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = || {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let mut next_proc: Vec<u64> = (0..procs).collect();
    let add = |op: Op, t: u64, ops: &mut Vec<Op>| {
        let mut op = op;
        op.time = Some(t);
        ops.push(op);
    };
    let kill_every = n / 5;
    for i in 0..n {
        if kill_every > 0 && i % kill_every == kill_every / 2 {
            add(
                Op::new(0, Process::Nemesis, OpType::Info, "kill", json!(["n1"])),
                t,
                &mut ops,
            );
            add(
                Op::new(
                    0,
                    Process::Nemesis,
                    OpType::Info,
                    "kill",
                    json!({"n1": "killed"}),
                ),
                t + 1_000_000,
                &mut ops,
            );
        }
        if kill_every > 0 && i % kill_every == kill_every / 2 + kill_every / 5 {
            add(
                Op::new(0, Process::Nemesis, OpType::Info, "start", json!(null)),
                t,
                &mut ops,
            );
            add(
                Op::new(0, Process::Nemesis, OpType::Info, "start", json!(null)),
                t + 1_000_000,
                &mut ops,
            );
        }
        let w = (i as u64) % procs;
        let p = Process::Client(next_proc[w as usize]);
        let r = rnd();
        let (f, v_in, v_out) = if r % 2 == 0 {
            ("read", json!(null), json!(r % 5))
        } else {
            ("write", json!(r % 5), json!(r % 5))
        };
        let lat = 200_000 + rnd() % 5_000_000;
        let kind = match rnd() % 100 {
            0 => OpType::Info,
            1..=3 => OpType::Fail,
            _ => OpType::Ok,
        };
        add(Op::new(0, p, OpType::Invoke, f, v_in), t, &mut ops);
        add(Op::new(0, p, kind, f, v_out), t + lat, &mut ops);
        if kind == OpType::Info {
            next_proc[w as usize] += procs;
        }
        t += lat + 10_000;
    }
    History::new(ops)
}

fn main() {
    let mut n = 100_000usize;
    let mut out = PathBuf::from("target/report-bench");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--ops" => n = args.next().and_then(|v| v.parse().ok()).expect("--ops N"),
            "--out" => out = PathBuf::from(args.next().expect("--out DIR")),
            _ => {} // cargo passes --bench
        }
    }
    let h = history(n);
    std::fs::create_dir_all(&out).expect("output folder");
    let t0 = Instant::now();
    let d = Data::new(&h);
    let html = timeline::render("bench", &d);
    let render = t0.elapsed();
    let path = out.join("timeline.html");
    std::fs::write(&path, &html).expect("write timeline.html");
    println!(
        "timeline.html: {} operations, {:.1} MiB, rendered in {:.0} ms -> {}",
        d.spans.len(),
        html.len() as f64 / (1 << 20) as f64,
        render.as_secs_f64() * 1e3,
        path.display()
    );
    let results = json!({"valid": "valid", "checkers": {"stats": {"valid": "valid", "ok": 0, "fail": 0, "info": 0}}});
    let t1 = Instant::now();
    let w = report::write_all(
        &out,
        &Run {
            title: "bench".into(),
            history: &h,
            test: None,
            results: &results,
            links: vec![],
        },
    );
    println!(
        "write_all: {} files in {:.0} ms, {} failures {:?}",
        w.files.len(),
        t1.elapsed().as_secs_f64() * 1e3,
        w.failures.len(),
        w.failures
    );
    for f in &w.files {
        let size = std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
        println!("  {:>10} bytes  {}", size, f.display());
    }
}
