//! Tests of the report artifacts: each is rendered from a small history
//! built here and its structure checked (SVG and the pages parse as XML,
//! PNGs decode to their size, ids and counts are where docs/reports.md says).

use super::*;
use crate::check::{linear, txn, Validity};
use crate::history::{Op, OpType::*, Process::*};
use crate::model::CasRegister;
use serde_json::json;

fn at(mut op: Op, ms: u64) -> Op {
    op.time = Some(ms * 1_000_000);
    op
}

/// A register history that is not linearizable (read 2 after write 1
/// completed, nobody wrote 2), with a kill window, a failed and an unknown
/// operation.
pub(crate) fn invalid_register() -> History {
    History::new(vec![
        at(Op::new(0, Client(0), Invoke, "write", json!(1)), 0),
        at(Op::new(0, Client(0), Ok, "write", json!(1)), 10),
        at(Op::new(0, Nemesis, Info, "kill", json!(["n1"])), 12),
        at(
            Op::new(0, Nemesis, Info, "kill", json!({"n1": "killed"})),
            14,
        ),
        at(Op::new(0, Client(1), Invoke, "cas", json!([5, 6])), 15),
        at(Op::new(0, Client(1), Fail, "cas", json!([5, 6])), 18),
        at(Op::new(0, Client(2), Invoke, "write", json!(3)), 20),
        at(Op::new(0, Client(1), Invoke, "read", json!(null)), 30),
        at(Op::new(0, Client(1), Ok, "read", json!(2)), 40),
        at(Op::new(0, Client(2), Info, "write", json!(3)), 45),
        at(Op::new(0, Nemesis, Info, "start", json!(null)), 50),
        at(Op::new(0, Nemesis, Info, "start", json!(null)), 55),
        at(Op::new(0, Client(0), Invoke, "read", json!(null)), 60),
        at(Op::new(0, Client(0), Ok, "read", json!(3)), 70),
    ])
}

/// The results value `faultline run` writes for a linearizability check.
pub(crate) fn linear_results(h: &History) -> Value {
    let r = linear::check(
        &CasRegister::default(),
        h,
        &linear::LinearOptions::default(),
    )
    .unwrap();
    let failures: Vec<_> = r.failures().cloned().collect();
    json!({"valid": r.validity, "checkers": {
        "linearizable": {"valid": r.validity, "model": r.model, "ops": r.ops, "keys": r.keys.len(), "failures": failures},
        "stats": {"valid": "valid", "ok": 3, "fail": 1, "info": 1, "by_f": {}},
    }})
}

/// Parses a page as XML once the bodies of its scripts and stylesheets
/// (which are not XML) are blanked.
pub(crate) fn xml_of_html(html: &str) -> String {
    let mut out = String::new();
    let mut rest = html;
    loop {
        let next = ["<script", "<style"]
            .iter()
            .filter_map(|t| rest.find(t).map(|i| (i, *t)))
            .min();
        let Some((i, tag)) = next else {
            out.push_str(rest);
            return out;
        };
        let open_end = i + rest[i..].find('>').expect("tag end") + 1;
        out.push_str(&rest[..open_end]);
        let close = format!("</{}", &tag[1..]);
        let j = open_end + rest[open_end..].find(&close).expect("closing tag");
        rest = &rest[j..];
    }
}

/// roxmltree with `<!DOCTYPE html>` allowed.
pub(crate) fn parse(xml: &str) -> Result<roxmltree::Document<'_>, roxmltree::Error> {
    let opts = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    roxmltree::Document::parse_with_options(xml, opts)
}

fn doc_ids(xml: &str) -> Vec<String> {
    let doc = parse(xml).expect("page parses as XML");
    doc.descendants()
        .filter_map(|n| n.attribute("id").map(String::from))
        .collect()
}

#[test]
fn timeline_holds_every_op_and_fault_and_its_hooks() {
    let h = invalid_register();
    let d = Data::new(&h);
    let html = timeline::render("reg <test>", &d);
    let ids = doc_ids(&xml_of_html(&html));
    for id in [
        "timeline",
        "tooltip",
        "op-count",
        "process-count",
        "fault-count",
        "ok-count",
        "fail-count",
        "info-count",
        "render-ms",
        "timeline-data",
    ] {
        assert!(ids.iter().any(|i| i == id), "missing #{id}");
    }
    assert!(html.contains("reg &lt;test&gt;"), "title escaped");
    assert!(html.contains("document.body.dataset.ready = \"1\""));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no network resource"
    );
    // The data block round-trips: 5 ops, one fault.
    let start = html.find("id=\"timeline-data\">").unwrap() + "id=\"timeline-data\">".len();
    let end = start + html[start..].find("</script>").unwrap();
    let data: Value = serde_json::from_str(&html[start..end]).unwrap();
    let ops = data["ops"].as_array().unwrap();
    assert_eq!(ops.len(), 5);
    assert_eq!(data["procs"], json!([0, 1, 2]));
    assert_eq!(
        data["faults"],
        json!([[12_000, 55_000, "kill [\"n1\"]", true]])
    );
    // The unknown write: column 2, ended at 45 ms, outcome info (2).
    let w3 = ops.iter().find(|o| o[6] == "3").unwrap();
    assert_eq!(
        (w3[0].clone(), w3[2].clone(), w3[3].clone()),
        (json!(2), json!(45_000), json!(2))
    );
}

#[test]
fn timeline_data_cannot_close_its_script() {
    let h = History::new(vec![
        Op::new(0, Client(0), Invoke, "write", json!("</script><b>x")),
        Op::new(0, Client(0), Ok, "write", json!("</script><b>x")),
    ]);
    let html = timeline::render("t", &Data::new(&h));
    assert_eq!(
        html.matches("</script>").count(),
        2,
        "only the two real ends"
    );
    // Without times, ticks are event indices.
    assert!(html.contains("\"tick_ns\":0"));
}

#[test]
fn plots_are_svg_and_png_of_the_right_size() {
    let h = invalid_register();
    let d = Data::new(&h);
    let dir = tempfile::tempdir().unwrap();
    for (stem, r) in [
        ("latency", plots::write_latency(dir.path(), &d)),
        ("latency-quantiles", plots::write_quantiles(dir.path(), &d)),
        ("rate", plots::write_rate(dir.path(), &d)),
    ] {
        let Result::Ok(Made::Files(files)) = r else {
            panic!("{stem} not drawn")
        };
        assert_eq!(files.len(), 2);
        let svg = std::fs::read_to_string(dir.path().join(format!("{stem}.svg"))).unwrap();
        let doc = roxmltree::Document::parse(&svg).expect("SVG parses");
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        // The fault window is labelled on every plot.
        assert!(
            svg.contains("kill [&quot;n1&quot;]") || svg.contains("kill [\"n1\"]"),
            "{stem}: fault label"
        );
        let png = std::fs::read(dir.path().join(format!("{stem}.png"))).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{stem}: PNG magic");
        let w = u32::from_be_bytes(png[16..20].try_into().unwrap());
        let hgt = u32::from_be_bytes(png[20..24].try_into().unwrap());
        assert_eq!((w, hgt), (1200, 560), "{stem}: PNG size");
    }
    // Legends name function and outcome.
    let svg = std::fs::read_to_string(dir.path().join("latency.svg")).unwrap();
    for label in ["write ok", "cas fail", "read ok"] {
        assert!(svg.contains(label), "legend {label}");
    }
}

#[test]
fn clock_offsets_are_plotted_per_node_and_only_when_checked() {
    let mut ops = invalid_register().ops;
    let check = |ms, v: Value| at(Op::new(0, Nemesis, Info, "clock-check", v), ms);
    ops.push(check(61, json!(null)));
    ops.push(check(
        62,
        json!({"offsets-ms": {"n1": 0.4, "n2": 500.2}, "via": {}}),
    ));
    ops.push(check(66, json!(null)));
    ops.push(check(
        67,
        json!({"offsets-ms": {"n1": -0.1, "n2": 1.0}, "via": {}}),
    ));
    let h = History::new(ops);
    let offsets = plots::clock_offsets(&h);
    assert_eq!(
        offsets,
        vec![
            ("n1".to_string(), vec![(0.062, 0.4), (0.067, -0.1)]),
            ("n2".to_string(), vec![(0.062, 500.2), (0.067, 1.0)]),
        ]
    );
    let dir = tempfile::tempdir().unwrap();
    let d = Data::new(&h);
    let Result::Ok(Made::Files(files)) = plots::write_clock(dir.path(), &d, &h) else {
        panic!("clock not drawn")
    };
    assert_eq!(files.len(), 2);
    let svg = std::fs::read_to_string(dir.path().join("clock.svg")).unwrap();
    roxmltree::Document::parse(&svg).expect("SVG parses");
    assert!(
        svg.contains("n1") && svg.contains("n2"),
        "legend names nodes"
    );
    // A check is no fault window: the kill's is the only one.
    assert_eq!(d.faults.len(), 1, "{:?}", d.faults);
    let plain = invalid_register();
    assert!(matches!(
        plots::write_clock(dir.path(), &Data::new(&plain), &plain),
        Result::Ok(Made::Skipped(_))
    ));
}

#[test]
fn quantiles_and_rates_count_what_happened() {
    let d = Data::new(&invalid_register());
    let q = plots::quantiles(&d);
    // Latencies 10, 3, 25 (the unknown write), 10, 10 ms.
    let all_max = q.iter().map(|x| x.1[3]).fold(0f64, f64::max);
    assert!((all_max - 25.0).abs() < 1e-9, "{q:?}");
    let r = plots::rates(&d);
    // Rates times window widths (the last cut at the end, 70 ms) give back
    // the 5 completions: 3 ok, 1 fail, 1 info.
    let w = r[1].0 - r[0].0;
    let count = |k: usize| -> f64 { r.iter().map(|x| x.1[k] * (0.070 - x.0).min(w)).sum() };
    let got = [count(0), count(1), count(2)];
    assert!(
        got.iter()
            .zip([3.0, 1.0, 1.0])
            .all(|(g, e)| (g - e).abs() < 1e-6),
        "{got:?} from {r:?}"
    );
}

#[test]
fn counterexample_page_marks_prefix_and_stuck_op() {
    let h = invalid_register();
    let results = linear_results(&h);
    assert_eq!(results["valid"], json!("invalid"));
    let d = Data::new(&h);
    let html = counterexample::render("reg", &d, &results).expect("a page");
    let xml = xml_of_html(&html);
    let doc = parse(&xml).unwrap();
    let count = doc
        .descendants()
        .find(|n| n.attribute("id") == Some("invalid-count"))
        .unwrap();
    assert_eq!(count.text(), Some("1"));
    let class_has = |n: &roxmltree::Node, c: &str| {
        n.attribute("class")
            .is_some_and(|a| a.split(' ').any(|x| x == c))
    };
    let expl = doc
        .descendants()
        .find(|n| class_has(n, "explanation"))
        .unwrap();
    assert!(
        expl.text().unwrap().starts_with("read returned 2, but"),
        "{:?}",
        expl.text()
    );
    // The counterexample's drawing (the smallest failing sub-history
    // below it has its own).
    let drawing = doc
        .descendants()
        .find(|n| class_has(n, "cx-timeline"))
        .unwrap();
    let rects: Vec<_> = drawing
        .descendants()
        .filter(|n| n.tag_name().name() == "rect" && class_has(n, "op"))
        .collect();
    let stuck: Vec<_> = rects.iter().filter(|n| class_has(n, "stuck")).collect();
    assert_eq!(stuck.len(), 1);
    assert!(stuck[0]
        .children()
        .any(|c| c.text().is_some_and(|t| t.contains("read returned 2"))));
    assert!(
        rects.iter().any(|n| class_has(n, "prefix")),
        "prefix highlighted"
    );
    // The fault window is marked.
    assert!(doc.descendants().any(|n| class_has(&n, "fault")));
    // A valid history has no counterexample page.
    let ok = History::new(h.ops[..2].to_vec());
    assert!(counterexample::render("ok", &Data::new(&ok), &linear_results(&ok)).is_none());
}

/// A stale read (write 1, write 2, then read 1) among operations that do
/// not take part in it: a read of 1 before write 2, a read of 2 after it,
/// a failed cas, and a write invoked after the stale read returned.
fn stale_read_register() -> History {
    History::new(vec![
        at(Op::new(0, Client(0), Invoke, "write", json!(1)), 0),
        at(Op::new(0, Client(0), Ok, "write", json!(1)), 10),
        at(Op::new(0, Client(1), Invoke, "read", json!(null)), 12),
        at(Op::new(0, Client(1), Ok, "read", json!(1)), 15),
        at(Op::new(0, Client(4), Invoke, "cas", json!([7, 8])), 16),
        at(Op::new(0, Client(4), Fail, "cas", json!([7, 8])), 18),
        at(Op::new(0, Client(1), Invoke, "write", json!(2)), 20),
        at(Op::new(0, Client(1), Ok, "write", json!(2)), 30),
        at(Op::new(0, Client(2), Invoke, "read", json!(null)), 32),
        at(Op::new(0, Client(2), Ok, "read", json!(2)), 34),
        at(Op::new(0, Client(3), Invoke, "read", json!(null)), 36),
        at(Op::new(0, Client(3), Ok, "read", json!(1)), 40),
        at(Op::new(0, Client(0), Invoke, "write", json!(3)), 50),
        at(Op::new(0, Client(0), Ok, "write", json!(3)), 60),
    ])
}

/// The rows of the `table.shrunk` in `div.shrunk` of `doc`, as the texts
/// of their cells.
fn shrunk_rows(doc: &roxmltree::Document) -> Vec<Vec<String>> {
    let table = doc
        .descendants()
        .find(|n| n.tag_name().name() == "table" && n.attribute("class") == Some("shrunk"))
        .expect("table.shrunk");
    table
        .children()
        .filter(|r| r.tag_name().name() == "tr")
        .filter(|r| r.children().any(|c| c.tag_name().name() == "td"))
        .map(|r| {
            r.children()
                .filter(|c| c.tag_name().name() == "td")
                .map(|c| c.text().unwrap_or("").to_string())
                .collect()
        })
        .collect()
}

#[test]
fn counterexample_page_shows_the_smallest_failing_sub_history() {
    let h = stale_read_register();
    let mut results = linear_results(&h);
    assert_eq!(results["valid"], json!("invalid"));
    let failure = &results["checkers"]["linearizable"]["failures"][0];
    let explanation = failure["counterexample"]["explanation"].as_str().unwrap();
    assert!(
        explanation.starts_with("read returned 1, but"),
        "{explanation}"
    );
    assert_eq!(failure["shrunk"]["minimal"], json!(true));
    let html = counterexample::render("stale", &Data::new(&h), &results).expect("a page");
    let xml = xml_of_html(&html);
    let doc = parse(&xml).unwrap();
    let div = doc
        .descendants()
        .find(|n| n.tag_name().name() == "div" && n.attribute("class") == Some("shrunk"))
        .expect("div.shrunk");
    assert_eq!(div.attribute("data-minimal"), Some("true"));
    let heading = div
        .children()
        .find(|n| n.tag_name().name() == "h3")
        .and_then(|n| n.text())
        .unwrap();
    assert!(
        heading.starts_with("Smallest failing sub-history (3 operations;")
            && !heading.contains("so far"),
        "{heading}"
    );
    // Exactly the stale read and the two writes it needs: process,
    // function, value, result, and the times as the drawing shows them.
    let rows: Vec<Vec<String>> = shrunk_rows(&doc)
        .into_iter()
        .map(|r| {
            let mut r = r;
            r.remove(4); // the model's description, checked below
            r
        })
        .collect();
    let row = |p: &str, f: &str, v: &str, res: &str, t0: &str, t1: &str| {
        [p, f, v, res, t0, t1].map(String::from).to_vec()
    };
    assert_eq!(
        rows,
        vec![
            row("0", "write", "1", "1 (ok)", "0.000 s", "0.010 s"),
            row("1", "write", "2", "2 (ok)", "0.020 s", "0.030 s"),
            row("3", "read", "null", "1 (ok)", "0.036 s", "0.040 s"),
        ]
    );
    assert!(shrunk_rows(&doc)[2][4].contains("read returned 1"));
    // Its drawing has only those three bars, the stale read marked stuck.
    let svg = div
        .descendants()
        .find(|n| n.attribute("class") == Some("cx-timeline"))
        .expect("the sub-history's drawing");
    let bars: Vec<_> = svg
        .descendants()
        .filter(|n| n.tag_name().name() == "rect")
        .filter_map(|n| n.attribute("class"))
        .filter(|c| c.starts_with("op "))
        .collect();
    assert_eq!(bars, vec!["op other", "op other", "op stuck"]);

    // When the shrink ran out of time, the page says so.
    results["checkers"]["linearizable"]["failures"][0]["shrunk"]["minimal"] = json!(false);
    let html = counterexample::render("stale", &Data::new(&h), &results).expect("a page");
    let doc_xml = xml_of_html(&html);
    let doc = parse(&doc_xml).unwrap();
    let div = doc
        .descendants()
        .find(|n| n.tag_name().name() == "div" && n.attribute("class") == Some("shrunk"))
        .expect("div.shrunk");
    assert_eq!(div.attribute("data-minimal"), Some("false"));
    assert!(
        div.children()
            .filter_map(|n| n.text())
            .any(|t| t.contains("smallest found so far")),
        "{html}"
    );
}

/// A stale read after a 5 s write, a cas of unknown outcome that never
/// completes, and a dozen short writes on three processes (times in ms).
fn long_ops_register() -> History {
    let ms = 1_000_000u64;
    let mut ops = vec![
        at(Op::new(0, Client(0), Invoke, "write", json!(1)), 0),
        at(
            Op::new(0, Client(1), Invoke, "cas", json!([1, 5])),
            500 * ms,
        ),
    ];
    let mut t = 700 * ms;
    for i in 0..12u64 {
        let p = Client(2 + i % 3);
        ops.push(at(Op::new(0, p, Invoke, "write", json!(10 + i)), t));
        t += 20 * ms;
        ops.push(at(Op::new(0, p, Ok, "write", json!(10 + i)), t));
        t += 10 * ms;
    }
    ops.push(at(Op::new(0, Client(3), Invoke, "read", json!(null)), t));
    ops.push(at(Op::new(0, Client(3), Ok, "read", json!(3)), t + 10 * ms));
    ops.push(at(Op::new(0, Client(0), Ok, "write", json!(1)), 5000 * ms));
    History::new(ops)
}

#[test]
fn counterexample_bars_have_room_for_their_labels_whatever_the_latencies() {
    let h = long_ops_register();
    let results = linear_results(&h);
    assert_eq!(results["valid"], json!("invalid"));
    let html = counterexample::render("long", &Data::new(&h), &results).expect("a page");
    let xml = xml_of_html(&html);
    let doc = parse(&xml).unwrap();
    let svg = doc
        .descendants()
        .find(|n| n.attribute("class") == Some("cx-timeline"))
        .expect("the drawing");
    let width: f64 = svg.attribute("width").unwrap().parse().unwrap();
    let num = |n: &roxmltree::Node, a: &str| -> f64 { n.attribute(a).unwrap().parse().unwrap() };
    let bars: Vec<(f64, f64, f64, String)> = svg
        .descendants()
        .filter(|n| n.tag_name().name() == "g")
        .map(|g| {
            let rect = g
                .children()
                .find(|c| c.tag_name().name() == "rect")
                .unwrap();
            let text = g
                .children()
                .find(|c| c.tag_name().name() == "text")
                .unwrap();
            let label = text.text().unwrap_or("").to_string();
            (num(&rect, "x"), num(&rect, "width"), num(&rect, "y"), label)
        })
        .collect();
    // Every op of the window: the long write, the open cas, the 12 writes
    // (the last ones of the prefix) and the stale read.
    assert!(bars.len() >= 10, "{bars:?}");
    for (x, w, _, label) in &bars {
        // Not a sliver: the shortest op has room for a dozen characters.
        assert!(*w >= 70.0, "{label}: {w} px");
        // Nothing cut at the right edge.
        assert!(x + w <= width, "{label}: {x}+{w} > {width}");
        // The label fits its bar (so labels cannot overlap each other).
        assert!(
            label.chars().count() as f64 * 6.6 <= w - 6.0 + 0.01,
            "{label:?} does not fit {w} px"
        );
    }
    // Bars on one row never overlap.
    for (i, a) in bars.iter().enumerate() {
        for b in &bars[i + 1..] {
            if a.2 == b.2 {
                assert!(a.0 + a.1 <= b.0 || b.0 + b.1 <= a.0, "{a:?} overlaps {b:?}");
            }
        }
    }
    // The 5 s write spans its columns; the short writes are not squashed:
    // the long one is wider, but not by the ratio of their latencies (250x).
    let long = bars
        .iter()
        .find(|b| b.3.contains("write 1"))
        .expect("the long write")
        .1;
    let short = bars
        .iter()
        .filter(|b| b.3.contains("write 2"))
        .map(|b| b.1)
        .fold(f64::MAX, f64::min);
    assert!(long > short && long < 50.0 * short, "{long} vs {short}");
    // The cas that never completed is drawn open (dashed) to the end.
    assert!(xml.contains("class=\"op other open\""), "open cas");
}

/// Write skew: G2-item.
fn write_skew() -> History {
    History::new(vec![
        Op::new(
            0,
            Client(0),
            Invoke,
            "txn",
            json!([["r", "x", null], ["append", "y", 1]]),
        ),
        Op::new(
            0,
            Client(1),
            Invoke,
            "txn",
            json!([["r", "y", null], ["append", "x", 2]]),
        ),
        Op::new(
            0,
            Client(0),
            Ok,
            "txn",
            json!([["r", "x", []], ["append", "y", 1]]),
        ),
        Op::new(
            0,
            Client(1),
            Ok,
            "txn",
            json!([["r", "y", []], ["append", "x", 2]]),
        ),
        Op::new(
            0,
            Client(2),
            Invoke,
            "txn",
            json!([["r", "x", null], ["r", "y", null]]),
        ),
        Op::new(
            0,
            Client(2),
            Ok,
            "txn",
            json!([["r", "x", [2]], ["r", "y", [1]]]),
        ),
    ])
}

#[test]
fn anomalies_page_shows_each_cycle_beside_its_text() {
    let r = txn::check(
        &write_skew(),
        &txn::TxnOptions::new(txn::TxnKind::ListAppend),
    )
    .unwrap();
    assert_eq!(r.validity, Validity::Invalid);
    let results =
        json!({"valid": "invalid", "checkers": {"txn": serde_json::to_value(&r).unwrap()}});
    let html = anomalies::render("skew", &results).expect("a page");
    let xml = xml_of_html(&html);
    let doc = parse(&xml).unwrap();
    let sections: Vec<_> = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("anomaly"))
        .collect();
    assert_eq!(sections.len(), 1);
    assert_eq!(sections[0].attribute("data-name"), Some("G2-item"));
    let text = sections[0]
        .descendants()
        .find(|n| n.attribute("class") == Some("explanation"))
        .and_then(|n| n.text())
        .unwrap();
    assert!(text.ends_with("a contradiction"), "{text}");
    let graph = sections[0]
        .descendants()
        .find(|n| n.attribute("class") == Some("graph"))
        .unwrap();
    // Drawn in Rust: an inline SVG whatever the machine has installed.
    let svg = graph
        .children()
        .find(|c| c.tag_name().name() == "svg")
        .expect("inline SVG");
    let texts: Vec<&str> = svg.descendants().filter_map(|n| n.text()).collect();
    assert!(texts.contains(&"T1") && texts.contains(&"T2"), "{texts:?}");
}

#[test]
fn write_all_makes_every_artifact_and_report_links_them() {
    let h = invalid_register();
    let results = linear_results(&h);
    let test = json!({"name": "reg", "seed": 7});
    let dir = tempfile::tempdir().unwrap();
    let run = Run {
        title: "reg 2026".into(),
        history: &h,
        test: Some(&test),
        results: &results,
        links: vec![("history.jsonl".into(), "history.jsonl".into())],
    };
    let w = write_all(dir.path(), &run);
    assert!(w.failures.is_empty(), "{:?}", w.failures);
    for f in [
        "latency.svg",
        "latency.png",
        "latency-quantiles.svg",
        "latency-quantiles.png",
        "rate.svg",
        "rate.png",
        "timeline.html",
        "counterexample.html",
        "report.html",
    ] {
        assert!(dir.path().join(f).is_file(), "{f}");
    }
    assert!(!dir.path().join("anomalies.html").exists());
    assert_eq!(w.skipped.len(), 1, "{:?}", w.skipped);
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    let xml = xml_of_html(&html);
    let doc = parse(&xml).unwrap();
    let by_id = |id: &str| doc.descendants().find(|n| n.attribute("id") == Some(id));
    let verdict = by_id("verdict").unwrap();
    assert_eq!(
        (verdict.attribute("class"), verdict.text()),
        (Some("invalid"), Some("invalid"))
    );
    let row = doc
        .descendants()
        .find(|n| n.attribute("data-checker") == Some("linearizable"))
        .unwrap();
    assert_eq!(row.attribute("class"), Some("invalid"));
    let links: Vec<&str> = by_id("links")
        .unwrap()
        .descendants()
        .filter_map(|n| n.attribute("href"))
        .collect();
    assert_eq!(
        links,
        vec!["timeline.html", "counterexample.html", "history.jsonl"]
    );
    let imgs: Vec<&str> = by_id("plots")
        .unwrap()
        .descendants()
        .filter(|n| n.tag_name().name() == "img")
        .filter_map(|n| n.attribute("src"))
        .collect();
    assert_eq!(
        imgs,
        vec!["latency.svg", "latency-quantiles.svg", "rate.svg"]
    );
    let ops = doc
        .descendants()
        .find(|n| n.attribute("data-count") == Some("ops"))
        .unwrap();
    assert_eq!(ops.text(), Some("5"));
    assert!(by_id("config")
        .unwrap()
        .text()
        .unwrap()
        .contains("\"seed\": 7"));
    assert!(by_id("render-problems").is_none());
}

#[test]
fn a_failing_artifact_is_noted_and_the_rest_are_written() {
    let h = invalid_register();
    let results = linear_results(&h);
    let dir = tempfile::tempdir().unwrap();
    // A directory where the timeline should go: writing it fails.
    std::fs::create_dir(dir.path().join("timeline.html")).unwrap();
    let run = Run {
        title: "reg".into(),
        history: &h,
        test: None,
        results: &results,
        links: vec![],
    };
    let w = write_all(dir.path(), &run);
    assert_eq!(w.failures.len(), 1, "{:?}", w.failures);
    assert_eq!(w.failures[0].0, "timeline.html");
    assert!(dir.path().join("latency.svg").is_file());
    assert!(dir.path().join("counterexample.html").is_file());
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    let xml = xml_of_html(&html);
    let doc = parse(&xml).unwrap();
    let problems = doc
        .descendants()
        .find(|n| n.attribute("id") == Some("render-problems"))
        .expect("problems listed");
    let text: String = problems.descendants().filter_map(|n| n.text()).collect();
    assert!(
        text.contains("timeline.html") && text.contains("cannot write"),
        "{text}"
    );
    // The verdict stands.
    assert!(html.contains("<span id=\"verdict\" class=\"invalid\">invalid</span>"));
}

#[test]
fn a_history_without_times_gets_a_timeline_but_no_plots() {
    let h = History::new(vec![
        Op::new(0, Client(0), Invoke, "write", json!(1)),
        Op::new(0, Client(0), Ok, "write", json!(1)),
    ]);
    let results = linear_results(&h);
    let dir = tempfile::tempdir().unwrap();
    let run = Run {
        title: "untimed".into(),
        history: &h,
        test: None,
        results: &results,
        links: vec![],
    };
    let w = write_all(dir.path(), &run);
    assert!(w.failures.is_empty(), "{:?}", w.failures);
    assert!(dir.path().join("timeline.html").is_file());
    assert!(!dir.path().join("latency.svg").exists());
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(
        html.contains("the history has no times"),
        "the reason is shown"
    );
}

#[test]
fn junit_counts_failures_and_carries_the_explanation() {
    let h = invalid_register();
    let results = linear_results(&h);
    let mut cases = verdicts(&results);
    cases.push(VerdictRow {
        name: "set".into(),
        validity: "error".into(),
        sentence: "bad <input> & \"quotes\"".into(),
    });
    let xml = junit::render(&[
        junit::Suite {
            name: "reg".into(),
            cases,
            seconds: Some(1.5),
        },
        junit::Suite {
            name: "other".into(),
            cases: vec![VerdictRow {
                name: "txn".into(),
                validity: "unknown".into(),
                sentence: "budget ran out".into(),
            }],
            seconds: None,
        },
    ]);
    let doc = parse(&xml).expect("well-formed");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    assert_eq!(
        (
            root.attribute("tests"),
            root.attribute("failures"),
            root.attribute("errors")
        ),
        (Some("4"), Some("2"), Some("1"))
    );
    let suites: Vec<_> = root.children().filter(|n| n.is_element()).collect();
    assert_eq!(suites[0].attribute("tests"), Some("3"));
    assert_eq!(suites[0].attribute("failures"), Some("1"));
    let failure = doc
        .descendants()
        .find(|n| n.tag_name().name() == "failure")
        .unwrap();
    assert_eq!(failure.attribute("type"), Some("invalid"));
    assert!(failure
        .attribute("message")
        .unwrap()
        .starts_with("read returned 2, but every order of the operations before it leaves"));
    let error = doc
        .descendants()
        .find(|n| n.tag_name().name() == "error")
        .unwrap();
    assert_eq!(error.attribute("message"), Some("bad <input> & \"quotes\""));
    let stats = doc
        .descendants()
        .find(|n| n.attribute("name") == Some("stats"))
        .unwrap();
    assert!(
        !stats.children().any(|c| c.is_element()),
        "valid: no failure"
    );
}

#[test]
fn markdown_summary_has_a_row_per_checker() {
    let h = invalid_register();
    let results = linear_results(&h);
    let d = Data::new(&h);
    let counts = markdown::counts_line(&d);
    let md = markdown::render("reg | x", "invalid", &verdicts(&results), Some(&counts));
    let lines: Vec<&str> = md.lines().collect();
    assert_eq!(lines[0], "## faultline: reg \\| x — ❌ **invalid**");
    assert!(lines
        .iter()
        .any(|l| l.starts_with("| linearizable | ❌ invalid | read returned 2, but")));
    assert!(lines.contains(&"| stats | ✅ valid | 3 ok, 1 fail, 1 info |"));
    assert!(
        md.contains("5 operations: 3 ok, 1 fail, 1 info; 1 fault window; 0.1 s"),
        "{md}"
    );
}

/// A run `--stop-on-invalid` ended shows the reason as an invalid `run`
/// row, before the checker that proved it.
#[test]
fn a_run_stopped_at_a_violation_says_so_first() {
    let h = invalid_register();
    let mut results = linear_results(&h);
    let why = "stopped early at the first proven violation, 0.2 s into the run: linearizable: ...";
    results["stopped_early"] = json!({"reason": why, "finding": {}});
    let cases = verdicts(&results);
    assert_eq!(
        cases[0],
        VerdictRow {
            name: "run".into(),
            validity: "invalid".into(),
            sentence: why.into(),
        }
    );
    assert_eq!(cases[1].name, "linearizable");
    assert_eq!(cases[1].validity, "invalid");
}

/// An incomplete run shows as a `run` verdict with its reason in
/// report.html's table, as a JUnit failure of type `incomplete`, and as a
/// Markdown row.
#[test]
fn an_incomplete_run_says_why_everywhere() {
    let h = invalid_register();
    let mut results = linear_results(&h);
    results["valid"] = json!("incomplete");
    results["incomplete_reason"] = json!("interrupted (SIGINT or SIGTERM) 1.0 s into the run");
    let cases = verdicts(&results);
    assert_eq!(
        cases[0],
        VerdictRow {
            name: "run".into(),
            validity: "incomplete".into(),
            sentence: "interrupted (SIGINT or SIGTERM) 1.0 s into the run".into(),
        }
    );
    let xml = junit::render(&[junit::Suite {
        name: "reg".into(),
        cases: cases.clone(),
        seconds: None,
    }]);
    assert!(
        xml.contains("<failure message=\"interrupted (SIGINT or SIGTERM) 1.0 s into the run\" type=\"incomplete\">"),
        "{xml}"
    );
    let md = markdown::render("reg", "incomplete", &cases, None);
    assert!(md.contains("**incomplete**"), "{md}");
    assert!(
        md.contains("| run | ⏹️ incomplete | interrupted (SIGINT or SIGTERM) 1.0 s into the run |"),
        "{md}"
    );
}

/// A counterexample the search settled by `reach` (a read of a value
/// nothing wrote, after a search too long to walk): the page says the
/// states listed are every state the operations could leave in any
/// order, not those every order leaves.
#[test]
fn counterexample_page_says_when_its_states_are_an_over_approximation() {
    // Forty crashed writes and forty concurrent reads of their values keep
    // the search busy past the point where it looks for an impossible op.
    let mut ops = Vec::new();
    for p in 0..40u64 {
        ops.push(at(Op::new(0, Client(p), Invoke, "write", json!(p)), p));
        ops.push(at(Op::new(0, Client(p), Info, "write", json!(p)), 100 + p));
    }
    for p in 100..140u64 {
        ops.push(at(
            Op::new(0, Client(p), Invoke, "read", json!(null)),
            200 + p,
        ));
    }
    for p in 100..140u64 {
        ops.push(at(
            Op::new(0, Client(p), Ok, "read", json!(p - 100)),
            400 + p,
        ));
    }
    ops.push(at(
        Op::new(0, Client(999), Invoke, "read", json!(null)),
        600,
    ));
    ops.push(at(Op::new(0, Client(999), Ok, "read", json!(12345)), 601));
    let h = History::new(ops);
    let results = linear_results(&h);
    assert_eq!(results["valid"], json!("invalid"));
    let html = counterexample::render("reg", &Data::new(&h), &results).expect("a page");
    assert!(
        html.contains("<p>No order of the operations called before it returned can explain it: applied in any order, any number of times, they leave the object only in: <code>nil</code> or <code>0</code>"),
        "{html}"
    );
    assert!(!html.contains("Every order of the operations before it leaves"));
}
