//! The web UI in a real headless Chromium (through chromedriver): the list
//! of runs, a filter, a run's page with its report, the timeline and the
//! counterexample page — the expected elements are there, and the browser
//! console has no error. Screenshots go to the target's temporary folder
//! (printed). Installs chromium and chromedriver when missing (as root).
#![cfg(all(feature = "cli", feature = "controller"))]

mod web_support;

use serde_json::json;
use std::path::PathBuf;
use std::time::Duration;
use web_support::webdriver::Browser;
use web_support::{fixture, run_id, Server};

fn no_errors(b: &Browser, page: &str) {
    let severe = b.severe().expect("console log");
    assert!(severe.is_empty(), "console errors on {page}: {severe:#?}");
}

#[test]
#[cfg_attr(
    not(faultline_root),
    ignore = "needs root: installs chromium and chromium-driver"
)]
fn pages_render_in_chromium_without_console_errors() {
    web_support::webdriver::ensure();
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("results");
    let fx = fixture(&root);
    let srv = Server::start(&root);
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser-screenshots");
    let b = Browser::start().expect("start headless chromium");

    // The list of runs.
    b.goto(&format!("{}/", srv.url)).expect("open /");
    assert_eq!(b.count("tr.run").expect("rows"), 4);
    assert_eq!(b.count("tr.run[data-verdict=invalid]").expect("rows"), 3);
    assert_eq!(b.count("tr.run a.report").expect("report links"), 4);
    assert_eq!(
        b.text("tr.run td a").expect("text").as_deref(),
        Some("etcd-register-partition"),
        "newest first"
    );
    let color = b
        .exec(
            "return getComputedStyle(document.querySelector('.verdict.invalid')).backgroundColor",
            json!([]),
        )
        .expect("style");
    assert_eq!(color, json!("rgb(253, 226, 225)"), "invalid is red");
    no_errors(&b, "/");
    let shot = b.screenshot(&shots.join("index.png")).expect("screenshot");
    println!("screenshot: {}", shot.display());

    // The filter form works without scripts: a GET with query parameters.
    b.exec(
        "document.querySelector('select[name=verdict]').value = 'valid'; document.querySelector('form.filters').submit()",
        json!([]),
    )
    .expect("submit");
    b.wait_for(
        "return location.search.includes('verdict=valid') && document.readyState === 'complete'",
        Duration::from_secs(10),
    )
    .expect("filtered page");
    assert_eq!(b.count("tr.run").expect("rows"), 1);
    assert_eq!(
        b.text("#count")
            .expect("text")
            .as_deref()
            .map(|t| t.starts_with("1 of 4 runs")),
        Some(true)
    );
    no_errors(&b, "/?verdict=valid");

    // A run's page: its report in a frame, its files.
    let run = format!("{}/runs/{}/", srv.url, run_id(&fx.register_bad));
    b.goto(&run).expect("open the run");
    b.wait_for(
        "const f = document.getElementById('report'); return !!(f && f.contentDocument && f.contentDocument.querySelector('#verdict'))",
        Duration::from_secs(10),
    )
    .expect("report in the frame");
    let verdict = b
        .exec("return document.getElementById('report').contentDocument.querySelector('#verdict').textContent", json!([]))
        .expect("verdict");
    assert!(
        verdict.as_str().unwrap_or("").contains("invalid"),
        "{verdict}"
    );
    for f in [
        "history.jsonl",
        "results.json",
        "report.html",
        "timeline.html",
        "counterexample.html",
        "latency.svg",
    ] {
        assert_eq!(
            b.count(&format!("#files a.file[href$='/{f}']"))
                .expect("files"),
            1,
            "{f} not listed"
        );
    }
    assert_eq!(b.count("#download").expect("download"), 1);
    no_errors(&b, &run);
    b.screenshot(&shots.join("run.png")).expect("screenshot");

    // The timeline, drawn.
    let timeline = format!("{run}files/timeline.html");
    b.goto(&timeline).expect("open the timeline");
    b.wait_for(
        "return document.body.dataset.ready === '1'",
        Duration::from_secs(20),
    )
    .expect("timeline ready");
    assert_eq!(b.text("#op-count").expect("text").as_deref(), Some("2"));
    assert_eq!(b.text("#fault-count").expect("text").as_deref(), Some("1"));
    assert_eq!(b.count("canvas#timeline").expect("canvas"), 1);
    no_errors(&b, &timeline);
    b.screenshot(&shots.join("timeline.png"))
        .expect("screenshot");

    // The counterexample.
    let cx = format!("{run}files/counterexample.html");
    b.goto(&cx).expect("open the counterexample");
    assert_eq!(
        b.text("#invalid-count").expect("text").as_deref(),
        Some("1")
    );
    // The counterexample's drawing, and its smallest failing
    // sub-history's own.
    assert_eq!(
        b.count("section.counterexample svg.cx-timeline")
            .expect("svg"),
        2
    );
    assert_eq!(
        b.count("section.counterexample div.shrunk svg.cx-timeline")
            .expect("svg"),
        1
    );
    no_errors(&b, &cx);
    b.screenshot(&shots.join("counterexample.png"))
        .expect("screenshot");

    // The anomalies of the write-skew run.
    let an = format!(
        "{}/runs/{}/files/anomalies.html",
        srv.url,
        run_id(&fx.append)
    );
    b.goto(&an).expect("open the anomalies");
    assert_eq!(
        b.text("#anomaly-count").expect("text").as_deref(),
        Some("1")
    );
    assert_eq!(b.count("section.anomaly").expect("sections"), 1);
    assert!(b
        .text("section.anomaly")
        .expect("text")
        .unwrap_or_default()
        .contains("G2-item"));
    no_errors(&b, &an);

    // The console check itself sees errors: a missing page logs one.
    b.goto(&format!("{}/no-such-page", srv.url))
        .expect("open a missing page");
    let severe = b.severe().expect("console log");
    assert!(severe.iter().any(|m| m.contains("404")), "{severe:?}");

    // The comparison table.
    b.goto(&format!("{}/compare", srv.url))
        .expect("open /compare");
    assert_eq!(b.count("tr.combo").expect("rows"), 3);
    no_errors(&b, "/compare");
    println!("screenshots in {}", shots.display());
}
