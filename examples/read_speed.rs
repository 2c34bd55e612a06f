//! Measures how fast the history readers are on large generated histories.
//!
//! ```text
//! cargo run --release --no-default-features --example read_speed [OPS]
//! ```
//!
//! Generates OPS operations (default 1,000,000, i.e. 2,000,000 events) over
//! 20 processes and 1,000 keys as native JSON Lines, plus 100,000 events of
//! EDN map-per-line and of a Jepsen console log, and prints the time each
//! reader takes (best of 3). The JSON Lines file is also read from disk with
//! `read_path`, which includes the file read and UTF-8 check.

use faultline::history::{read_path, read_str, Format};
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

/// A small deterministic generator (xorshift) so runs are comparable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// One completed op per process in turn: (process, f, key, value, outcome).
fn events(n: usize, mut emit: impl FnMut(u64, &str, u64, u64, &str)) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for i in 0..n {
        let p = (i % 20) as u64;
        let key = rng.next() % 1000;
        let v = rng.next() % 100;
        let (f, outcome) = match rng.next() % 10 {
            0..=4 => ("read", "ok"),
            5..=8 => ("write", "ok"),
            _ => ("write", "fail"),
        };
        emit(p, f, key, v, "invoke");
        emit(p, f, key, v, outcome);
    }
}

fn jsonl(ops: usize) -> String {
    let mut s = String::with_capacity(ops * 2 * 90);
    let mut index = 0u64;
    events(ops, |p, f, key, v, t| {
        let value = if f == "read" && t == "invoke" {
            "null".to_string()
        } else {
            v.to_string()
        };
        let _ = writeln!(
            s,
            "{{\"index\":{index},\"time\":{},\"process\":{p},\"type\":\"{t}\",\"f\":\"{f}\",\"value\":{value},\"key\":{key}}}",
            index * 1000
        );
        index += 1;
    });
    s
}

fn edn(ops: usize) -> String {
    let mut s = String::new();
    let mut index = 0u64;
    events(ops, |p, f, key, v, t| {
        let value = if f == "read" && t == "invoke" {
            "nil".to_string()
        } else {
            v.to_string()
        };
        let _ = writeln!(
            s,
            "{{:index {index}, :time {}, :process {p}, :type :{t}, :f :{f}, :key \"{key}\", :value {value}}}",
            index * 1000
        );
        index += 1;
    });
    s
}

fn log(ops: usize) -> String {
    let mut s = String::new();
    events(ops, |p, f, _key, v, t| {
        let value = if f == "read" && t == "invoke" {
            "nil".to_string()
        } else {
            v.to_string()
        };
        let _ = writeln!(s, "INFO  jepsen.util - {p}\t:{t}\t:{f}\t{value}");
    });
    s
}

/// CPU time (user + system, all threads) this process has used so far, from
/// `/proc/self/stat` in clock ticks of 10 ms; `None` off Linux. On a shared
/// machine wall time depends on the load, CPU time much less.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut f = rest.split_whitespace().skip(11);
    let ticks: u64 = f.next()?.parse::<u64>().ok()? + f.next()?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// Best of three runs of `f`: (wall time, CPU time, events).
fn best(mut f: impl FnMut() -> usize) -> (Duration, Option<Duration>, usize) {
    let mut best = (Duration::MAX, None);
    let mut n = 0;
    for _ in 0..3 {
        let c = cpu_time();
        let t = Instant::now();
        n = f();
        let wall = t.elapsed();
        let cpu = c.zip(cpu_time()).map(|(a, b)| b.saturating_sub(a));
        if wall < best.0 {
            best = (wall, cpu);
        }
    }
    (best.0, best.1, n)
}

fn report(name: &str, text_len: usize, (d, cpu, n): (Duration, Option<Duration>, usize)) {
    let cpu = cpu.map_or("?".to_string(), |c| format!("{:.2}", c.as_secs_f64()));
    println!(
        "{name:<28} {n:>9} events {:>7.1} MB {:>8.3} s wall {:>6} s cpu {:>6.0} ns/event",
        text_len as f64 / 1e6,
        d.as_secs_f64(),
        cpu,
        d.as_nanos() as f64 / n.max(1) as f64
    );
}

fn main() {
    let ops: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let src = Path::new("generated");

    let text = jsonl(ops);
    let r = best(|| {
        read_str(&text, src, Some(Format::Jsonl))
            .expect("generated JSONL reads")
            .len()
    });
    report("jsonl read_str", text.len(), r);
    let r = best(|| read_str(&text, src, None).expect("detected").len());
    report("jsonl read_str (detect)", text.len(), r);
    let path =
        std::env::temp_dir().join(format!("faultline-read-speed-{}.jsonl", std::process::id()));
    std::fs::write(&path, &text).expect("write temp file");
    let r = best(|| read_path(&path, None).expect("read back").len());
    report("jsonl read_path (file)", text.len(), r);
    let _ = std::fs::remove_file(&path);
    drop(text);

    let text = edn(50_000);
    let r = best(|| {
        read_str(&text, src, Some(Format::Edn))
            .expect("generated EDN reads")
            .len()
    });
    report("edn map-per-line", text.len(), r);
    let wrapped = format!("[{text}]");
    let r = best(|| {
        read_str(&wrapped, src, Some(Format::Edn))
            .expect("generated EDN reads")
            .len()
    });
    report("edn one vector", wrapped.len(), r);

    let text = log(50_000);
    let r = best(|| {
        read_str(&text, src, Some(Format::JepsenLog))
            .expect("generated log reads")
            .len()
    });
    report("jepsen-log", text.len(), r);
}
