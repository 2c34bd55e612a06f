//! `report.html`: a run's summary page. The overall verdict, each
//! checker's verdict (coloured) with its explanation, the counts, the plots,
//! links to every other artifact and file of the run, the configuration,
//! and any artifact that failed to render.
//!
//! Stable hooks: `#verdict` (class and text valid/invalid/unknown/incomplete),
//! `#verdicts` (a row per checker, `tr[data-checker]`), `#counts`,
//! `#plots`, `#links`, `#config`, `#render-problems` (present only when
//! something failed to render).

use super::data::{Data, Ending};
use super::{esc, head, verdicts, Run, Written};
use serde_json::Value;

/// The page. `w` says what was written so far (plots, pages, failures).
pub fn render(run: &Run<'_>, d: &Data, w: &Written) -> String {
    let has = |name: &str| {
        w.files
            .iter()
            .any(|f| f.file_name().is_some_and(|n| n == name))
    };
    let overall = run
        .results
        .get("valid")
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    let mut s = head(&format!("{} — report", run.title), CSS);
    s.push_str(&format!(
        "<body>\n<h1>{}</h1>\n<p class=\"big\">Verdict: <span id=\"verdict\" class=\"{}\">{}</span></p>\n",
        esc(&run.title),
        esc(overall),
        esc(overall)
    ));
    // Verdicts.
    s.push_str("<h2>Checkers</h2>\n<table id=\"verdicts\"><tr><th>checker</th><th>verdict</th><th>explanation</th></tr>\n");
    for v in verdicts(run.results) {
        s.push_str(&format!(
            "<tr data-checker=\"{}\" class=\"{}\"><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            esc(&v.name),
            esc(&v.validity),
            esc(&v.name),
            esc(&v.validity),
            esc(&v.sentence)
        ));
    }
    s.push_str("</table>\n");
    // Counts.
    let n = |e: Ending| d.spans.iter().filter(|s| s.ending == e).count();
    let mut procs: Vec<u64> = d.spans.iter().map(|s| s.process).collect();
    procs.sort_unstable();
    procs.dedup();
    s.push_str(&format!(
        "<h2>Counts</h2>\n<table id=\"counts\"><tr><th>operations</th><td data-count=\"ops\">{}</td></tr>\
<tr><th>ok</th><td data-count=\"ok\">{}</td></tr><tr><th>fail</th><td data-count=\"fail\">{}</td></tr>\
<tr><th>info</th><td data-count=\"info\">{}</td></tr><tr><th>processes</th><td data-count=\"processes\">{}</td></tr>\
<tr><th>fault windows</th><td data-count=\"faults\">{}</td></tr>{}</table>\n",
        d.spans.len(),
        n(Ending::Ok),
        n(Ending::Fail),
        n(Ending::Info),
        procs.len(),
        d.faults.len(),
        if d.timed {
            format!(
                "<tr><th>duration</th><td data-count=\"seconds\">{:.1} s</td></tr>",
                d.t_end as f64 / 1e9
            )
        } else {
            String::new()
        }
    ));
    if !d.faults.is_empty() {
        s.push_str("<details><summary>Fault windows</summary><ul>");
        for f in &d.faults {
            let t = |x: u64| {
                if d.timed {
                    format!("{:.2} s", x as f64 / 1e9)
                } else {
                    format!("event {x}")
                }
            };
            s.push_str(&format!(
                "<li>{} – {}: {}{}</li>",
                t(f.t0),
                t(f.t1),
                esc(&f.label),
                if f.closed { "" } else { " (never stopped)" }
            ));
        }
        s.push_str("</ul></details>\n");
    }
    // Plots.
    s.push_str("<h2>Plots</h2>\n<div id=\"plots\">\n");
    for (stem, what) in [
        ("latency", "Latency of every operation"),
        ("latency-quantiles", "Latency quantiles"),
        ("rate", "Throughput"),
        ("clock", "Clock offsets per node"),
    ] {
        if has(&format!("{stem}.svg")) {
            s.push_str(&format!(
                "<figure><img src=\"{stem}.svg\" alt=\"{what}\" width=\"1200\"/><figcaption>{what} (<a href=\"{stem}.png\">PNG</a>)</figcaption></figure>\n"
            ));
        } else if let Some((_, why)) = w.skipped.iter().find(|(n, _)| n == stem) {
            s.push_str(&format!(
                "<p class=\"muted\">{what}: not drawn — {}.</p>\n",
                esc(why)
            ));
        }
    }
    s.push_str("</div>\n");
    // Links.
    s.push_str("<h2>Files</h2>\n<ul id=\"links\">\n");
    for (file, what) in [
        ("timeline.html", "timeline of every operation"),
        ("counterexample.html", "linearizability counterexample"),
        ("anomalies.html", "transactional anomalies"),
    ] {
        if has(file) {
            s.push_str(&format!(
                "<li><a href=\"{file}\">{file}</a> — {what}</li>\n"
            ));
        }
    }
    for (label, path) in &run.links {
        s.push_str(&format!(
            "<li><a href=\"{}\">{}</a></li>\n",
            esc(path),
            esc(label)
        ));
    }
    s.push_str("</ul>\n");
    if !w.failures.is_empty() {
        s.push_str("<h2>Rendering problems</h2>\n<ul id=\"render-problems\">\n");
        for (name, why) in &w.failures {
            s.push_str(&format!(
                "<li><b>{}</b>: {} (the verdict above is unaffected)</li>\n",
                esc(name),
                esc(why)
            ));
        }
        s.push_str("</ul>\n");
    }
    if let Some(t) = run.test {
        s.push_str(&format!(
            "<h2>Configuration</h2>\n<pre id=\"config\">{}</pre>\n",
            esc(&serde_json::to_string_pretty(t).unwrap_or_default())
        ));
    }
    s.push_str("</body>\n</html>\n");
    s
}

const CSS: &str = ".big{font-size:130%}#verdict{padding:2px 10px;font-weight:700}
figure{margin:0 0 1em}img{max-width:100%;height:auto;border:1px solid #eee}";
