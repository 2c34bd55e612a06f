//! How long a big `timeline.html` takes to become usable in a real
//! browser: a generated history of 100,000 operations (200,000 events, 20
//! processes, partitions every few seconds) is rendered with
//! `report::timeline`, opened in headless Chromium through chromedriver,
//! and timed from navigation to the page's ready marker
//! (`body[data-ready="1"]`, docs/reports.md). Target: under 3 s.
//!
//! ```text
//! cargo bench --bench timeline_browser -- [--ops N] [--runs R]
//! ```
//! Prints SKIP when chromium or chromedriver is missing.

#[path = "../tests/web_support/webdriver.rs"]
mod webdriver;

use faultline::history::{self, History};
use faultline::report::{timeline, Data};
use serde_json::json;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

/// A register history of `ops` operations over `procs` processes: writes,
/// reads and CASes with ok, fail and info outcomes, and a partition
/// starting and stopping every 2 s of simulated time. Deterministic.
fn generate(ops: usize, procs: usize) -> History {
    let mut text = String::with_capacity(ops * 160);
    let mut seed: u64 = 0x5eed;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut t: u64 = 0;
    let mut pending: Vec<Option<(String, String)>> = vec![None; procs];
    let mut done = 0;
    let mut started = 0;
    let mut next_fault = 2_000_000_000u64;
    let mut faulted = false;
    while done < ops {
        t += 50_000 + rand() % 100_000;
        if t >= next_fault {
            let f = if faulted {
                "stop-partition"
            } else {
                "start-partition"
            };
            let _ = writeln!(
                text,
                r#"{{"process":"nemesis","time":{t},"type":"info","f":"{f}","value":null}}"#
            );
            faulted = !faulted;
            next_fault += 2_000_000_000;
        }
        let p = (rand() % procs as u64) as usize;
        match pending[p].take() {
            None if started < ops => {
                let (f, v) = match rand() % 3 {
                    0 => ("read", "null".to_string()),
                    1 => ("write", (rand() % 5).to_string()),
                    _ => ("cas", format!("[{},{}]", rand() % 5, rand() % 5)),
                };
                let _ = writeln!(
                    text,
                    r#"{{"process":{p},"time":{t},"type":"invoke","f":"{f}","value":{v}}}"#
                );
                pending[p] = Some((f.to_string(), v));
                started += 1;
            }
            None => {}
            Some((f, v)) => {
                let outcome = match rand() % 20 {
                    0 => "info",
                    1 | 2 => "fail",
                    _ => "ok",
                };
                let v = if f == "read" && outcome == "ok" {
                    (rand() % 5).to_string()
                } else {
                    v
                };
                let _ = writeln!(
                    text,
                    r#"{{"process":{p},"time":{t},"type":"{outcome}","f":"{f}","value":{v}}}"#
                );
                done += 1;
            }
        }
    }
    history::read_str(&text, Path::new("generated.jsonl"), None).expect("a valid history")
}

fn main() {
    let mut ops = 100_000usize;
    let mut runs = 3usize;
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    while let Some(a) = args.next() {
        match a.as_str() {
            "--ops" => ops = args.next().and_then(|n| n.parse().ok()).unwrap_or(ops),
            "--runs" => runs = args.next().and_then(|n| n.parse().ok()).unwrap_or(runs),
            _ => {}
        }
    }
    if let Some(why) = webdriver::skip_reason() {
        println!("SKIP: {why}");
        return;
    }
    let t0 = Instant::now();
    let h = generate(ops, 20);
    let gen = t0.elapsed();
    let t0 = Instant::now();
    let data = Data::new(&h);
    let html = timeline::render("timeline bench", &data);
    let render = t0.elapsed();
    let dir = tempfile::tempdir().expect("tempdir");
    let page = dir.path().join("timeline.html");
    std::fs::write(&page, &html).expect("write timeline.html");
    println!(
        "history: {} operations, {} events (generated in {:.2} s); timeline.html: {:.1} MiB, rendered in {:.2} s",
        ops,
        h.len(),
        gen.as_secs_f64(),
        html.len() as f64 / (1 << 20) as f64,
        render.as_secs_f64()
    );

    let b = webdriver::Browser::start().expect("start headless chromium");
    let url = format!("file://{}", page.display());
    let mut totals = Vec::new();
    for i in 0..runs {
        // A blank page between runs, so each load starts cold in the tab.
        b.goto("about:blank").expect("blank");
        let t0 = Instant::now();
        b.goto(&url).expect("open timeline.html");
        b.wait_for(
            "return document.body && document.body.dataset.ready === '1'",
            Duration::from_secs(60),
        )
        .expect("ready marker");
        let wall = t0.elapsed();
        // The browser's own clock: navigation start to now (ready was seen).
        let nav = b
            .exec("return performance.now()", json!([]))
            .ok()
            .and_then(|v| v.as_f64())
            .unwrap_or(f64::NAN);
        let draw = b.text("#render-ms").ok().flatten().unwrap_or_default();
        let count = b.text("#op-count").ok().flatten().unwrap_or_default();
        assert_eq!(
            count.replace([',', ' '], ""),
            ops.to_string(),
            "the page shows every operation"
        );
        let severe = b.severe().expect("console");
        assert!(severe.is_empty(), "console errors: {severe:?}");
        println!(
            "run {}: load-to-ready {:.0} ms (wall, WebDriver included); navigation-to-ready ≤ {:.0} ms (browser clock); first draw {} ms",
            i + 1,
            wall.as_secs_f64() * 1e3,
            nav,
            draw
        );
        totals.push(wall);
    }
    totals.sort();
    let median = totals[totals.len() / 2];
    println!(
        "median load-to-ready: {:.0} ms over {} runs — target < 3000 ms: {}",
        median.as_secs_f64() * 1e3,
        runs,
        if median < Duration::from_secs(3) {
            "met"
        } else {
            "NOT met"
        }
    );
}
