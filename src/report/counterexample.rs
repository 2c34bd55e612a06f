//! `counterexample.html`: for each key the linearizability checker found
//! invalid, the operations around the failure on a time axis (one row per
//! process), the longest linearizable prefix highlighted and numbered in
//! linearization order, the operation that cannot be linearized, the states
//! the object could be in, and the explanation sentence.
//!
//! The data is the checker's `failures` (serialized
//! `check::linear::KeyVerdict`s) in the results value, and the history for
//! times and values. Stable hooks: `#invalid-count`; one
//! `section.counterexample` per key with `.explanation`, an
//! `svg.cx-timeline` whose bars are `rect.op` with class `prefix`, `stuck`
//! or `other`, and `table.prefix`.

use super::data::{short, Data, Span};
use super::{esc, head};
use serde_json::Value;

/// Operations of the prefix shown before the stuck one.
const PREFIX_SHOWN: usize = 12;
/// Most operations drawn per key.
const MAX_OPS: usize = 80;

/// The invalid keys' verdicts (with counterexamples) of every checker in
/// `results`.
pub fn invalid_keys(results: &Value) -> Vec<&Value> {
    let Some(checkers) = results.get("checkers").and_then(Value::as_object) else {
        return Vec::new();
    };
    checkers
        .values()
        .filter_map(|d| d.get("failures").and_then(Value::as_array))
        .flatten()
        .filter(|f| f.get("counterexample").is_some_and(|c| !c.is_null()))
        .collect()
}

/// The page, or `None` when no key is invalid.
pub fn render(title: &str, d: &Data, results: &Value) -> Option<String> {
    let keys = invalid_keys(results);
    if keys.is_empty() {
        return None;
    }
    let mut s = head(&format!("{title} — counterexample"), CSS);
    s.push_str(&format!(
        "<body>\n<h1>{} — not linearizable</h1>\n<p><span id=\"invalid-count\">{}</span> key{} cannot be linearized. \
For each: the operations around the failure (time flows right, one row per process); \
<span class=\"sw prefix\"></span>the longest linearizable prefix, numbered in the order it linearizes; \
<span class=\"sw stuck\"></span>the operation that cannot follow it; <span class=\"sw other\"></span>other operations.</p>\n<div id=\"counterexamples\">\n",
        esc(title),
        keys.len(),
        if keys.len() == 1 { "" } else { "s" }
    ));
    let by_invoke: rustc_hash::FxHashMap<usize, usize> = d
        .spans
        .iter()
        .enumerate()
        .map(|(i, sp)| (sp.invoke, i))
        .collect();
    for (n, kv) in keys.iter().enumerate() {
        s.push_str(&section(n, kv, d, &by_invoke));
    }
    s.push_str("</div>\n</body>\n</html>\n");
    Some(s)
}

fn idx(v: &Value, k: &str) -> Option<usize> {
    v.get(k).and_then(Value::as_u64).map(|x| x as usize)
}

fn section(
    n: usize,
    kv: &Value,
    d: &Data,
    by_invoke: &rustc_hash::FxHashMap<usize, usize>,
) -> String {
    let cx = &kv["counterexample"];
    let key = kv.get("key").filter(|k| !k.is_null());
    let explanation = cx["explanation"].as_str().unwrap_or("");
    let stuck_inv = idx(&cx["op"], "invoke_index");
    let path: Vec<&Value> = cx["final_paths"]
        .as_array()
        .and_then(|p| p.first())
        .and_then(Value::as_array)
        .map(|p| p.iter().collect())
        .unwrap_or_default();
    // Position in the linearization of each prefix op, by invocation.
    let order: rustc_hash::FxHashMap<usize, usize> = path
        .iter()
        .enumerate()
        .filter_map(|(i, st)| Some((idx(&st["op"], "invoke_index")?, i + 1)))
        .collect();
    let descr: rustc_hash::FxHashMap<usize, &str> = path
        .iter()
        .filter_map(|st| {
            Some((
                idx(&st["op"], "invoke_index")?,
                st["op"]["description"].as_str()?,
            ))
        })
        .chain(stuck_inv.and_then(|i| Some((i, cx["op"]["description"].as_str()?))))
        .collect();
    // The window: from the earliest of the last prefix ops shown to the
    // stuck op's completion.
    let stuck = stuck_inv
        .and_then(|i| by_invoke.get(&i))
        .map(|&i| &d.spans[i]);
    let recent: Vec<&Span> = path
        .iter()
        .rev()
        .take(PREFIX_SHOWN)
        .filter_map(|st| idx(&st["op"], "invoke_index"))
        .filter_map(|i| by_invoke.get(&i).map(|&j| &d.spans[j]))
        .collect();
    let t_a = recent
        .iter()
        .map(|s| s.t0)
        .chain(stuck.map(|s| s.t0))
        .min()
        .unwrap_or(0);
    let t_b = stuck
        .map(|s| s.t1.unwrap_or(d.t_end))
        .into_iter()
        .chain(recent.iter().map(|s| s.t1.unwrap_or(d.t_end)))
        .max()
        .unwrap_or(d.t_end);
    let same_key = |s: &Span| match key {
        None => true,
        Some(k) => s.key.as_ref() == Some(k),
    };
    let mut shown: Vec<&Span> = d
        .spans
        .iter()
        .filter(|s| same_key(s) && s.t0 <= t_b && s.t1.unwrap_or(d.t_end) >= t_a)
        .collect();
    if shown.len() > MAX_OPS {
        // Keep the prefix, the stuck op, and the others nearest the stuck op.
        let centre = stuck.map(|s| s.t0).unwrap_or(t_b);
        shown.sort_by_key(|s| {
            let must = order.contains_key(&s.invoke) || Some(s.invoke) == stuck_inv;
            (!must, s.t0.abs_diff(centre))
        });
        shown.truncate(MAX_OPS);
        shown.sort_by_key(|s| s.invoke);
    }
    let key_text = key.map(|k| short(k, 60)).unwrap_or_default();
    let mut s = format!(
        "<section class=\"counterexample\" id=\"cx-{n}\" data-key=\"{}\">\n<h2>{}</h2>\n<p class=\"explanation\">{}</p>\n",
        esc(&key_text),
        if key.is_some() {
            format!("Key {}", esc(&key_text))
        } else {
            "The history".to_string()
        },
        esc(explanation)
    );
    s.push_str(&svg(&shown, &order, &descr, stuck_inv, d, (t_a, t_b)));
    // The prefix, last steps first shown in order.
    let from = path.len().saturating_sub(20);
    s.push_str(&format!(
        "<h3>Longest linearizable prefix ({} operations{})</h3>\n<table class=\"prefix\"><tr><th>#</th><th>process</th><th>operation</th><th>state after</th></tr>\n",
        path.len(),
        if from > 0 { ", last 20 shown" } else { "" }
    ));
    for (i, st) in path.iter().enumerate().skip(from) {
        s.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>\n",
            i + 1,
            esc(&short(&st["op"]["process"], 20)),
            esc(st["op"]["description"].as_str().unwrap_or("")),
            esc(st["state"].as_str().unwrap_or(""))
        ));
    }
    let op = &cx["op"];
    s.push_str(&format!(
        "<tr class=\"stuck\"><td>✗</td><td>{}</td><td>{}</td><td>cannot follow</td></tr>\n</table>\n",
        esc(&short(&op["process"], 20)),
        esc(op["description"].as_str().unwrap_or(""))
    ));
    let states: Vec<String> = cx["states"]
        .as_array()
        .map(|a| a.iter().map(|v| short(v, 200)).collect())
        .unwrap_or_default();
    s.push_str(&format!(
        "<p>Every order of the operations before it leaves the object in: {}{}.</p>\n",
        states
            .iter()
            .map(|x| format!("<code>{}</code>", esc(x)))
            .collect::<Vec<_>>()
            .join(" or "),
        if cx["more_states"].as_bool() == Some(true) {
            " or yet other states"
        } else {
            ""
        }
    ));
    s.push_str(&format!(
        "<p class=\"muted\">The operation: process {}, {} (events {}{}), {}.</p>\n</section>\n",
        esc(&short(&op["process"], 20)),
        esc(op["f"].as_str().unwrap_or("")),
        stuck_inv.map(|i| i.to_string()).unwrap_or_default(),
        idx(op, "complete_index")
            .map(|c| format!(" to {c}"))
            .unwrap_or_default(),
        esc(op["outcome"].as_str().unwrap_or(""))
    ));
    s
}

fn svg(
    shown: &[&Span],
    order: &rustc_hash::FxHashMap<usize, usize>,
    descr: &rustc_hash::FxHashMap<usize, &str>,
    stuck: Option<usize>,
    d: &Data,
    (t_a, t_b): (u64, u64),
) -> String {
    let mut procs: Vec<u64> = shown.iter().map(|s| s.process).collect();
    procs.sort_unstable();
    procs.dedup();
    let (left, width, row) = (90.0, 1000.0, 34.0);
    let span = (t_b.saturating_sub(t_a)).max(1) as f64;
    let x = |t: u64| left + (t.saturating_sub(t_a)) as f64 / span * width;
    let height = 30.0 + row * procs.len() as f64;
    let mut s = format!(
        "<svg class=\"cx-timeline\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" viewBox=\"0 0 {} {height}\">\n",
        left + width + 20.0,
        left + width + 20.0
    );
    for w in &d.faults {
        if w.t1 < t_a || w.t0 > t_b {
            continue;
        }
        let (a, b) = (x(w.t0.max(t_a)), x(w.t1.min(t_b)));
        s.push_str(&format!(
            "<rect class=\"fault\" x=\"{a:.1}\" y=\"0\" width=\"{:.1}\" height=\"{height}\"><title>{}</title></rect><text class=\"fault-label\" x=\"{:.1}\" y=\"{}\">{}</text>\n",
            (b - a).max(1.0),
            esc(&w.label),
            a + 2.0,
            height - 4.0,
            esc(&w.label)
        ));
    }
    for (r, p) in procs.iter().enumerate() {
        s.push_str(&format!(
            "<text x=\"4\" y=\"{:.1}\">process {p}</text>\n",
            20.0 + row * r as f64 + row / 2.0
        ));
    }
    for sp in shown {
        let r = procs.iter().position(|p| *p == sp.process).unwrap_or(0);
        let y = 20.0 + row * r as f64 + 4.0;
        let (a, b) = (x(sp.t0), x(sp.t1.unwrap_or(t_b)));
        let class = if Some(sp.invoke) == stuck {
            "stuck"
        } else if order.contains_key(&sp.invoke) {
            "prefix"
        } else {
            "other"
        };
        let label = match descr.get(&sp.invoke) {
            Some(t) => t.to_string(),
            None => format!(
                "{} {} → {} ({})",
                sp.f,
                short(&sp.input, 30),
                short(&sp.output, 30),
                sp.ending.name()
            ),
        };
        let time = |t: u64| {
            if d.timed {
                format!("{:.3} ms", t as f64 / 1e6)
            } else {
                format!("event {t}")
            }
        };
        let title = format!(
            "{label}\nprocess {}, {} to {}",
            sp.process,
            time(sp.t0),
            sp.t1.map(time).unwrap_or_else(|| "never".into())
        );
        s.push_str(&format!(
            "<g><rect class=\"op {class}\" x=\"{a:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\"><title>{}</title></rect>",
            (b - a).max(2.0),
            row - 8.0,
            esc(&title)
        ));
        let num = order
            .get(&sp.invoke)
            .map(|n| format!("{n}: "))
            .unwrap_or_default();
        s.push_str(&format!(
            "<text class=\"op-label\" x=\"{:.1}\" y=\"{:.1}\">{}</text></g>\n",
            a + 2.0,
            y + row / 2.0,
            esc(&format!("{num}{}", short(&Value::String(label), 40)))
        ));
    }
    s.push_str("</svg>\n");
    s
}

const CSS: &str = ".sw{display:inline-block;width:10px;height:10px;margin:0 3px;vertical-align:middle}
.sw.prefix{background:#8fd19e}.sw.stuck{background:#e06666}.sw.other{background:#d0d0d0}
svg.cx-timeline{border:1px solid #ddd;margin:6px 0;font:11px sans-serif}
rect.op.prefix{fill:#8fd19e;stroke:#2e8b57}rect.op.stuck{fill:#e06666;stroke:#900}rect.op.other{fill:#d0d0d0;stroke:#999}
rect.fault{fill:rgba(90,90,200,.13)}text.fault-label{fill:#3c3caa}
tr.stuck{background:#f8d4d4}.explanation{font-size:110%;font-weight:600}section{margin-bottom:2em}";
