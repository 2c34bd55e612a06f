//! `anomalies.html`: each transactional anomaly the txn checker found,
//! its cycle drawn as inline SVG (by [`super::cycle_svg`], no Graphviz
//! needed) beside its text: the transactions (`Let`) and
//! why each precedes the next (`Then`).
//!
//! The data is the txn checker's details in the results value (serialized
//! `check::txn::TxnReport`, whose anomalies carry their `dot` graph). Stable
//! hooks: `#anomaly-count`; one `section.anomaly` per anomaly with
//! `data-name`, `.explanation`, and `.graph` holding an `svg`.

use super::{esc, head};
use serde_json::Value;

/// The anomalies of every checker in `results`: (name, anomaly).
pub fn anomalies(results: &Value) -> Vec<(&str, &Value)> {
    let Some(checkers) = results.get("checkers").and_then(Value::as_object) else {
        return Vec::new();
    };
    checkers
        .values()
        .filter_map(|d| d.get("anomalies").and_then(Value::as_object))
        .flatten()
        .flat_map(|(name, list)| {
            list.as_array()
                .into_iter()
                .flatten()
                .map(move |a| (name.as_str(), a))
        })
        .collect()
}

/// The page, or `None` when there is no anomaly.
pub fn render(title: &str, results: &Value) -> Option<String> {
    let all = anomalies(results);
    if all.is_empty() {
        return None;
    }
    let mut s = head(&format!("{title} — anomalies"), CSS);
    s.push_str(&format!(
        "<body>\n<h1>{} — transactional anomalies</h1>\n<p><span id=\"anomaly-count\">{}</span> anomal{} shown.",
        esc(title),
        all.len(),
        if all.len() == 1 { "y" } else { "ies" }
    ));
    if let Some(d) = results
        .get("checkers")
        .and_then(Value::as_object)
        .and_then(|c| c.values().find(|d| d.get("anomalies").is_some()))
    {
        let list = |k: &str| {
            d.get(k)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "-".into())
        };
        s.push_str(&format!(
            " Ruled out: <b>{}</b> (and {}). Still possible: {}.",
            esc(&list("not")),
            esc(&list("also_not")),
            esc(&list("still_possible"))
        ));
    }
    s.push_str("</p>\n");
    for (i, (name, a)) in all.iter().enumerate() {
        s.push_str(&section(i, name, a));
    }
    s.push_str("</body>\n</html>\n");
    Some(s)
}

fn section(i: usize, name: &str, a: &Value) -> String {
    let str_of = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let mut s = format!(
        "<section class=\"anomaly\" id=\"anomaly-{i}\" data-name=\"{}\">\n<h2>{}{}</h2>\n<div class=\"pair\">\n<div class=\"graph\">",
        esc(name),
        esc(name),
        a.get("key")
            .filter(|k| !k.is_null())
            .map(|k| format!(" on key {}", esc(&super::data::short(k, 40))))
            .unwrap_or_default()
    );
    match a.get("dot").and_then(Value::as_str) {
        Some(dot) => match super::cycle_svg::draw(dot) {
            Some(svg) => s.push_str(&svg),
            None => s.push_str(&format!("<pre class=\"dot\">{}</pre>", esc(dot))),
        },
        None => s.push_str("<p class=\"muted\">(no cycle to draw)</p>"),
    }
    s.push_str("</div>\n<div class=\"text\">\n");
    s.push_str(&format!(
        "<p class=\"explanation\">{}</p>\n<b>Let:</b>\n<ul>",
        esc(&str_of(a, "explanation"))
    ));
    for t in a
        .get("txns")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        s.push_str(&format!(
            "<li><b>{}</b> = process {}, {}, event {}{}: <code>{}</code></li>",
            esc(&str_of(t, "name")),
            esc(&super::data::short(&t["process"], 20)),
            esc(&str_of(t, "outcome")),
            t["invoke_index"],
            t.get("complete_index")
                .and_then(Value::as_u64)
                .map(|c| format!("–{c}"))
                .unwrap_or_default(),
            esc(&str_of(t, "ops"))
        ));
    }
    s.push_str("</ul>\n");
    if let Some(steps) = a.get("cycle").and_then(Value::as_array) {
        s.push_str("<b>Then:</b>\n<ul>");
        for st in steps {
            s.push_str(&format!(
                "<li>{} &lt; {} <span class=\"kind\">{}</span> because {}</li>",
                esc(&str_of(st, "from")),
                esc(&str_of(st, "to")),
                esc(&str_of(st, "kind")),
                esc(&str_of(st, "why"))
            ));
        }
        s.push_str("</ul>\n<p>A contradiction: the cycle cannot be ordered.</p>\n");
    }
    s.push_str("</div>\n</div>\n</section>\n");
    s
}

const CSS: &str = ".pair{display:flex;gap:2em;align-items:flex-start;flex-wrap:wrap}
.graph{flex:0 1 auto;max-width:60%;overflow:auto}.graph svg{max-width:100%;height:auto}
.text{flex:1 1 30em}.explanation{font-weight:600}.kind{color:#555;font-size:85%}
section{border-top:1px solid #ddd;padding-top:.5em;margin-bottom:1.5em}";
