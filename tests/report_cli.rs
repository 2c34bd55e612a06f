//! The report artifacts through the command line: `faultline check --out
//! --junit --summary-md` on linearizability and transactional histories,
//! `faultline analyze` on a stored run, and the timeline drawn by a real
//! headless Chromium (installed when missing, as root).
#![cfg(feature = "cli")]

#[path = "cluster_support/apt.rs"]
mod apt;

use std::path::Path;
use std::process::Command;

/// Not linearizable (read 2, nobody wrote 2), with a kill window.
const INVALID_REGISTER: &str = r#"{"process":0,"type":"invoke","f":"write","value":1,"time":0}
{"process":0,"type":"ok","f":"write","value":1,"time":10000000}
{"process":"nemesis","type":"info","f":"kill","value":["n1"],"time":12000000}
{"process":"nemesis","type":"info","f":"kill","value":{"n1":"killed"},"time":14000000}
{"process":1,"type":"invoke","f":"read","value":null,"time":30000000}
{"process":1,"type":"ok","f":"read","value":2,"time":40000000}
{"process":"nemesis","type":"info","f":"start","value":null,"time":50000000}
{"process":"nemesis","type":"info","f":"start","value":null,"time":55000000}
{"process":2,"type":"invoke","f":"write","value":3,"time":60000000}
{"process":2,"type":"fail","f":"write","value":3,"error":"timeout <&>","time":70000000}
"#;

const VALID_REGISTER: &str = r#"{"process":0,"type":"invoke","f":"write","value":1,"time":0}
{"process":0,"type":"ok","f":"write","value":1,"time":10000000}
{"process":1,"type":"invoke","f":"read","value":null,"time":20000000}
{"process":1,"type":"ok","f":"read","value":1,"time":30000000}
"#;

const WRITE_SKEW: &str = r#"{"process":0,"type":"invoke","f":"txn","value":[["r","x",null],["append","y",1]]}
{"process":1,"type":"invoke","f":"txn","value":[["r","y",null],["append","x",2]]}
{"process":0,"type":"ok","f":"txn","value":[["r","x",[]],["append","y",1]]}
{"process":1,"type":"ok","f":"txn","value":[["r","y",[]],["append","x",2]]}
"#;

fn faultline(args: &[&str]) -> (i32, String) {
    faultline_with_path(args, None)
}

/// Like [`faultline`], with `PATH` replaced when `path` is given.
fn faultline_with_path(args: &[&str], path: Option<&str>) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_faultline"));
    if let Some(p) = path {
        cmd.env("PATH", p);
    }
    let out = cmd.args(args).output().expect("runs");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p.to_string_lossy().to_string()
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn parse(xml: &str) -> roxmltree::Document<'_> {
    let opts = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    roxmltree::Document::parse_with_options(xml, opts).expect("well-formed XML")
}

#[test]
fn check_writes_the_report_junit_and_summary_of_an_invalid_history() {
    let dir = tempfile::tempdir().expect("tempdir");
    let h = write(dir.path(), "reg.jsonl", INVALID_REGISTER);
    let out = dir.path().join("out");
    let junit = dir.path().join("junit.xml");
    let md = dir.path().join("summary.md");
    let (code, text) = faultline(&[
        "check",
        "--model",
        "cas-register",
        "--out",
        out.to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
        "--summary-md",
        md.to_str().unwrap(),
        &h,
    ]);
    assert_eq!(code, 1, "{text}");
    for f in [
        "report.html",
        "timeline.html",
        "counterexample.html",
        "latency.svg",
        "latency.png",
        "latency-quantiles.svg",
        "rate.png",
    ] {
        assert!(out.join(f).is_file(), "{f}: {text}");
    }
    let x = read(&junit);
    let doc = parse(&x);
    let root = doc.root_element();
    assert_eq!(
        (root.attribute("tests"), root.attribute("failures")),
        (Some("1"), Some("1"))
    );
    let failure = doc
        .descendants()
        .find(|n| n.tag_name().name() == "failure")
        .expect("a failure");
    assert_eq!(
        failure.attribute("message"),
        Some("read returned 2, but every order of the operations before it leaves 1")
    );
    let summary = read(&md);
    assert!(
        summary.contains("| linearizable (cas-register) | ❌ invalid | read returned 2, but every order of the operations before it leaves 1 |"),
        "{summary}"
    );
    let report = read(&out.join("report.html"));
    assert!(report.contains("<span id=\"verdict\" class=\"invalid\">invalid</span>"));
    // The tooltip text carries the error, escaped inside the JSON block.
    let timeline = read(&out.join("timeline.html"));
    assert!(
        timeline.contains("timeout \\u003c&>"),
        "error text kept, `<` escaped"
    );
}

#[test]
fn check_of_several_files_gives_a_folder_and_a_testsuite_each() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = write(dir.path(), "bad.jsonl", INVALID_REGISTER);
    let b = write(dir.path(), "good.jsonl", VALID_REGISTER);
    let out = dir.path().join("out");
    let junit = dir.path().join("junit.xml");
    let md = dir.path().join("summary.md");
    let (code, text) = faultline(&[
        "check",
        "--out",
        out.to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
        "--summary-md",
        md.to_str().unwrap(),
        &a,
        &b,
    ]);
    assert_eq!(code, 1, "{text}");
    assert!(out.join("bad/counterexample.html").is_file(), "{text}");
    assert!(out.join("good/report.html").is_file(), "{text}");
    assert!(!out.join("good/counterexample.html").exists());
    let x = read(&junit);
    let doc = parse(&x);
    let root = doc.root_element();
    assert_eq!(
        (root.attribute("tests"), root.attribute("failures")),
        (Some("2"), Some("1"))
    );
    let suites: Vec<_> = root.children().filter(|n| n.is_element()).collect();
    assert_eq!(suites.len(), 2);
    let summary = read(&md);
    assert!(
        summary.starts_with("## faultline: check of 2 files — ❌ **invalid**"),
        "{summary}"
    );
    assert!(
        summary.contains(&format!(
            "| {b} — linearizable (cas-register) | ✅ valid | 2 operations, 1 key: linearizable |"
        )),
        "{summary}"
    );
}

#[test]
fn txn_check_writes_the_anomalies_page() {
    let dir = tempfile::tempdir().expect("tempdir");
    let h = write(dir.path(), "skew.jsonl", WRITE_SKEW);
    let out = dir.path().join("out");
    let junit = dir.path().join("junit.xml");
    // No Graphviz on the PATH (no program at all): the cycle is still
    // drawn, in Rust.
    let empty = dir.path().join("empty-bin");
    std::fs::create_dir(&empty).expect("empty dir");
    let (code, text) = faultline_with_path(
        &[
            "check",
            "--model",
            "list-append",
            "--out",
            out.to_str().unwrap(),
            "--junit",
            junit.to_str().unwrap(),
            &h,
        ],
        empty.to_str(),
    );
    assert_eq!(code, 1, "{text}");
    // The checker's own explanation files are still there.
    assert!(out.join("G2-item.txt").is_file(), "{text}");
    let page = read(&out.join("anomalies.html"));
    assert!(page.contains("data-name=\"G2-item\""), "{page}");
    assert!(page.contains("<svg"), "the cycle drawn inline");
    // The drawing beside the dot file holds every transaction and edge.
    let svg = read(&out.join("G2-item/0.svg"));
    let dot = read(&out.join("G2-item/0.dot"));
    for name in ["T1", "T2"] {
        assert!(svg.contains(&format!(">{name}<")), "{name}: {svg}");
    }
    let edges = dot.matches(" -> ").count();
    assert!(edges >= 2, "{dot}");
    assert_eq!(svg.matches("class=\"edge\"").count(), edges, "{svg}");
    for label in dot
        .lines()
        .filter(|l| l.contains(" -> "))
        .filter_map(|l| l.split("label=\"").nth(1)?.split("\", ").next())
    {
        let shown = label.replace("\\\"", "&quot;");
        assert!(
            svg.contains(&format!(">{shown}<")),
            "edge label {shown}: {svg}"
        );
    }
    let x = read(&junit);
    let doc = parse(&x);
    let failure = doc
        .descendants()
        .find(|n| n.tag_name().name() == "failure")
        .expect("a failure");
    assert!(
        failure
            .attribute("message")
            .unwrap()
            .starts_with("G2-item: T1 < T2 because"),
        "{x}"
    );
}

#[cfg(feature = "controller")]
#[test]
fn analyze_writes_the_report_into_the_run_folder() {
    use faultline::store::RunDir;
    let root = tempfile::tempdir().expect("tempdir");
    let run = RunDir::create(root.path(), "reg", std::time::SystemTime::now()).expect("run dir");
    // A run that ran to its end (the end marker); without it, analyze
    // would take it for one whose controller was killed.
    run.write_test(&serde_json::json!({
        "name": "reg", "model": "cas-register", "checkers": ["linearizable", "stats"], "seed": 1,
        "end": {"complete": true}
    }))
    .expect("test.json");
    std::fs::write(run.history(), INVALID_REGISTER).expect("history");
    let logs = run.node_dir("n1").expect("node dir");
    std::fs::write(logs.join("etcd.log"), "started\n").expect("log");
    let junit = root.path().join("junit.xml");
    let md = root.path().join("summary.md");
    let (code, text) = faultline(&[
        "analyze",
        run.path.to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
        "--summary-md",
        md.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("report: "), "{text}");
    let report = read(&run.path.join("report.html"));
    for href in [
        "timeline.html",
        "counterexample.html",
        "history.jsonl",
        "results.json",
        "test.json",
        "nodes/n1/etcd.log",
    ] {
        assert!(
            report.contains(&format!("href=\"{href}\"")),
            "{href} linked"
        );
    }
    assert!(report.contains("data-checker=\"stats\" class=\"valid\""));
    let x = read(&junit);
    let doc = parse(&x);
    assert_eq!(doc.root_element().attribute("tests"), Some("2"));
    assert_eq!(doc.root_element().attribute("failures"), Some("1"));
    let summary = read(&md);
    assert!(summary.starts_with("## faultline: reg "), "{summary}");
    assert!(
        summary.contains("3 operations: 2 ok, 1 fail, 0 info; 1 fault window"),
        "{summary}"
    );
}

/// Loads timeline.html in headless Chromium: the page must draw (its
/// ready marker set, its counts filled in) without a console error.
#[test]
#[cfg_attr(not(faultline_root), ignore = "needs root: installs chromium")]
fn timeline_draws_in_headless_chromium_without_errors() {
    apt::ensure(&[("/usr/bin/chromium", "chromium")]);
    let chromium = "/usr/bin/chromium";
    let dir = tempfile::tempdir().expect("tempdir");
    let h = write(dir.path(), "reg.jsonl", INVALID_REGISTER);
    let out = dir.path().join("out");
    let (code, text) = faultline(&["check", "--out", out.to_str().unwrap(), &h]);
    assert_eq!(code, 1, "{text}");
    let page = format!("file://{}", out.join("timeline.html").display());
    let profile = dir.path().join("profile");
    let run = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=5000",
            "--window-size=1200,800",
            &format!("--user-data-dir={}", profile.display()),
            "--dump-dom",
            &page,
        ])
        .output()
        .expect("chromium runs");
    let dom = String::from_utf8_lossy(&run.stdout);
    let log = String::from_utf8_lossy(&run.stderr);
    assert!(dom.contains("data-ready=\"1\""), "not drawn: {dom}\n{log}");
    assert!(dom.contains("<span id=\"op-count\">3</span>"), "{dom}");
    assert!(dom.contains("<span id=\"fault-count\">1</span>"), "{dom}");
    assert!(dom.contains("<span id=\"fail-count\">1</span>"), "{dom}");
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught"))
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:?}");
}

/// A stale read after a 5 s write, beside a cas whose outcome is unknown
/// and a dozen short writes (times in ns).
fn long_ops_history() -> String {
    let ms = 1_000_000u64;
    let mut ev = vec![
        (
            0u64,
            r#"{"process":0,"type":"invoke","f":"write","value":1"#.to_string(),
        ),
        (
            500 * ms,
            r#"{"process":1,"type":"invoke","f":"cas","value":[1,5]"#.into(),
        ),
        (
            5000 * ms,
            r#"{"process":0,"type":"ok","f":"write","value":1"#.into(),
        ),
    ];
    let mut t = 700 * ms;
    for i in 0..12u64 {
        let p = 2 + i % 3;
        let v = 10 + i;
        ev.push((
            t,
            format!(r#"{{"process":{p},"type":"invoke","f":"write","value":{v}"#),
        ));
        t += 20 * ms;
        ev.push((
            t,
            format!(r#"{{"process":{p},"type":"ok","f":"write","value":{v}"#),
        ));
        t += 10 * ms;
    }
    ev.push((
        t,
        r#"{"process":3,"type":"invoke","f":"read","value":null"#.into(),
    ));
    ev.push((
        t + 10 * ms,
        r#"{"process":3,"type":"ok","f":"read","value":3"#.into(),
    ));
    ev.sort_by_key(|(t, _)| *t);
    ev.iter()
        .map(|(t, e)| format!("{e},\"time\":{t}}}\n"))
        .collect()
}

/// The counterexample page as Chromium lays it out: no two labels
/// overlap, no label runs past its bar, no bar is cut at the drawing's
/// right edge, and the operation that cannot follow is scrolled into view.
/// A script added to a copy of the page measures the real text boxes.
#[test]
#[cfg_attr(not(faultline_root), ignore = "needs root: installs chromium")]
fn counterexample_labels_do_not_overlap_in_chromium() {
    apt::ensure(&[("/usr/bin/chromium", "chromium")]);
    let dir = tempfile::tempdir().expect("tempdir");
    let h = write(dir.path(), "long.jsonl", &long_ops_history());
    let out = dir.path().join("out");
    let (code, text) = faultline(&[
        "check",
        "--model",
        "cas-register",
        "--out",
        out.to_str().unwrap(),
        &h,
    ]);
    assert_eq!(code, 1, "{text}");
    let page = read(&out.join("counterexample.html"));
    let probe = r#"<script>
var svg = document.querySelector('svg.cx-timeline'), out = [];
var W = svg.width.baseVal.value;
var labels = Array.from(svg.querySelectorAll('text.op-label, text.axis, text.fault-label')).map(function (t) { return [t, t.getBBox()]; });
labels.forEach(function (a, i) {
  labels.slice(i + 1).forEach(function (b) {
    var p = a[1], q = b[1];
    if (p.width && q.width && p.x < q.x + q.width && q.x < p.x + p.width && p.y < q.y + q.height && q.y < p.y + p.height)
      out.push('overlap: ' + a[0].textContent + ' / ' + b[0].textContent);
  });
});
svg.querySelectorAll('g').forEach(function (g) {
  var r = g.querySelector('rect').getBBox(), t = g.querySelector('text').getBBox();
  if (t.x + t.width > r.x + r.width + 0.5) out.push('past its bar: ' + g.querySelector('text').textContent);
  if (r.x + r.width > W) out.push('cut at the right edge: ' + g.querySelector('text').textContent);
});
var sc = document.querySelector('.cx-scroll'), st = svg.querySelector('rect.stuck').getBBox();
if (st.x < sc.scrollLeft || st.x + st.width > sc.scrollLeft + sc.clientWidth) out.push('stuck op not in view');
document.body.setAttribute('data-problems', out.length ? out.join('; ') : 'none');
</script></body>"#;
    let probed = out.join("probed.html");
    std::fs::write(&probed, page.replace("</body>", probe)).expect("write probe");
    let profile = dir.path().join("profile");
    let run = Command::new("/usr/bin/chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--virtual-time-budget=5000",
            "--window-size=1200,800",
            &format!("--user-data-dir={}", profile.display()),
            "--dump-dom",
            &format!("file://{}", probed.display()),
        ])
        .output()
        .expect("chromium runs");
    let dom = String::from_utf8_lossy(&run.stdout);
    assert!(
        dom.contains("data-problems=\"none\""),
        "{}",
        dom.split("data-problems=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or(&dom)
    );
}
