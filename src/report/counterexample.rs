//! `counterexample.html`: for each key the linearizability checker found
//! invalid, the operations around the failure on an axis of events (one
//! column per invocation or completion, one row per process), the longest linearizable prefix highlighted and numbered in
//! linearization order, the operation that cannot be linearized, the states
//! the object could be in, and the explanation sentence; then the key's
//! smallest failing sub-history, drawn the same way.
//!
//! The data is the checker's `failures` (serialized
//! `check::linear::KeyVerdict`s) in the results value, and the history for
//! times and values. Stable hooks: `#invalid-count`; one
//! `section.counterexample` per key with `.explanation`, an
//! `svg.cx-timeline` whose bars are `rect.op` with class `prefix`, `stuck`
//! or `other`, and `table.prefix`; when the checker shrank the key (its
//! `shrunk`), a `div.shrunk` (`data-minimal`) with its own
//! `svg.cx-timeline` of only those operations and `table.shrunk`.

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
For each: the operations around the failure, one row per process, in the order their events happened (one column per invocation or completion, so long operations do not squash the rest; times on top, details in each bar's tooltip); \
<span class=\"sw prefix\"></span>the longest linearizable prefix, numbered in the order it linearizes; \
<span class=\"sw stuck\"></span>the operation that cannot follow it; <span class=\"sw other\"></span>other operations. \
Below each, the smallest failing sub-history: the fewest of the key's operations that still cannot be linearized, drawn the same way.</p>\n<div id=\"counterexamples\">\n",
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
    s.push_str("</div>\n");
    // A wide drawing opens scrolled to the operation that cannot follow.
    s.push_str(
        "<script>document.querySelectorAll('.cx-scroll').forEach(function(e){\
var r=e.querySelector('rect.stuck');if(r){e.scrollLeft=Math.max(0,r.x.baseVal.value+r.width.baseVal.value-e.clientWidth+40);}});</script>\n",
    );
    s.push_str("</body>\n</html>\n");
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
    // States over-approximated (reach.rs) are a superset of what the
    // operations before it can leave: say what they are.
    let lead = if cx["over_approximated"].as_bool() == Some(true) {
        "No order of the operations called before it returned can explain it: applied in any order, any number of times, they leave the object only in"
    } else {
        "Every order of the operations before it leaves the object in"
    };
    s.push_str(&format!(
        "<p>{lead}: {}{}.</p>\n",
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
        "<p class=\"muted\">The operation: process {}, {} (events {}{}), {}.</p>\n",
        esc(&short(&op["process"], 20)),
        esc(op["f"].as_str().unwrap_or("")),
        stuck_inv.map(|i| i.to_string()).unwrap_or_default(),
        idx(op, "complete_index")
            .map(|c| format!(" to {c}"))
            .unwrap_or_default(),
        esc(op["outcome"].as_str().unwrap_or(""))
    ));
    if let Some(shrunk) = kv.get("shrunk").filter(|m| !m.is_null()) {
        s.push_str(&shrunk_section(shrunk, stuck_inv, d, by_invoke));
    }
    s.push_str("</section>\n");
    s
}

/// The key's smallest failing sub-history (the checker's `shrunk`, a
/// serialized `check::linear::shrink::MinimalHistory`): a table of its
/// operations and the same drawing as the counterexample's, of only them.
fn shrunk_section(
    shrunk: &Value,
    stuck_inv: Option<usize>,
    d: &Data,
    by_invoke: &rustc_hash::FxHashMap<usize, usize>,
) -> String {
    let ops: Vec<&Value> = shrunk["ops"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let minimal = shrunk["minimal"].as_bool() == Some(true);
    // The model's description labels each bar, as in the drawing above.
    let descr: rustc_hash::FxHashMap<usize, &str> = ops
        .iter()
        .filter_map(|op| Some((idx(op, "invoke_index")?, op["description"].as_str()?)))
        .collect();
    let spans: Vec<&Span> = ops
        .iter()
        .filter_map(|op| idx(op, "invoke_index"))
        .filter_map(|i| by_invoke.get(&i).map(|&j| &d.spans[j]))
        .collect();
    let t_a = spans.iter().map(|s| s.t0).min().unwrap_or(0);
    let t_b = spans
        .iter()
        .map(|s| s.t1.unwrap_or(d.t_end))
        .max()
        .unwrap_or(d.t_end);
    let how = if minimal {
        "removing any one makes it linearizable".to_string()
    } else {
        // The shrink ran out of time: a smaller one may exist.
        format!(
            "smallest found so far: the search for a smaller one ran out of time after {} checks",
            shrunk["checks"].as_u64().unwrap_or(0)
        )
    };
    let mut s = format!(
        "<div class=\"shrunk\" data-minimal=\"{minimal}\">\n<h3>Smallest failing sub-history ({} operation{}; {})</h3>\n",
        ops.len(),
        if ops.len() == 1 { "" } else { "s" },
        esc(&how)
    );
    s.push_str(&svg(
        &spans,
        &rustc_hash::FxHashMap::default(),
        &descr,
        stuck_inv,
        d,
        (t_a, t_b),
    ));
    s.push_str(
        "<table class=\"shrunk\"><tr><th>process</th><th>function</th><th>value</th><th>result</th><th>operation</th><th>invoked</th><th>completed</th></tr>\n",
    );
    for op in &ops {
        let span = idx(op, "invoke_index")
            .and_then(|i| by_invoke.get(&i))
            .map(|&j| &d.spans[j]);
        let result = span
            .map(|sp| {
                if sp.complete.is_some() {
                    format!("{} ({})", short(&sp.output, 40), sp.ending.name())
                } else {
                    format!("never completed ({})", sp.ending.name())
                }
            })
            .unwrap_or_else(|| op["outcome"].as_str().unwrap_or("").to_string());
        s.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            esc(&short(&op["process"], 20)),
            esc(op["f"].as_str().unwrap_or("")),
            esc(&span.map(|sp| short(&sp.input, 40)).unwrap_or_default()),
            esc(&result),
            esc(op["description"].as_str().unwrap_or("")),
            esc(&span.map(|sp| show_time(d, sp.t0)).unwrap_or_default()),
            esc(&span
                .and_then(|sp| sp.t1)
                .map(|t| show_time(d, t))
                .unwrap_or_else(|| "never".into()))
        ));
    }
    s.push_str("</table>\n</div>\n");
    s
}

/// A time as the page shows it: seconds, or the event's index when the
/// history has no times.
fn show_time(d: &Data, t: u64) -> String {
    if d.timed {
        format!("{:.3} s", t as f64 / 1e9)
    } else {
        format!("event {t}")
    }
}

/// Width of one event column, px: an operation spans from its
/// invocation's column to its completion's, so the shortest one still has
/// room for about a dozen characters of label.
const COLUMN: f64 = 84.0;
/// Width of a label character at the page's 11 px font, px (a generous
/// estimate, so a clipped label never runs past its bar).
const CHAR: f64 = 6.6;
/// Width of the process names beside the drawing (which scrolls under
/// them).
const NAMES: f64 = 92.0;
/// Left margin of the drawing.
const LEFT: f64 = 6.0;
/// One row per process.
const ROW: f64 = 34.0;
/// The time axis above the rows.
const AXIS: f64 = 22.0;

/// `text` cut to `px` pixels of label, with `…` when cut.
fn fit(text: &str, px: f64) -> String {
    let room = (px / CHAR).floor().max(0.0) as usize;
    if text.chars().count() <= room {
        text.to_string()
    } else if room <= 1 {
        String::new()
    } else {
        let mut t: String = text.chars().take(room - 1).collect();
        t.push('…');
        t
    }
}

/// The operations on an axis of events, not of time: each invocation and
/// completion of a shown operation gets its own column, in history order.
/// A 5 s write or a cas whose outcome is unknown then spans its columns
/// without squashing the others into slivers, every bar is wide enough
/// for a label clipped to it (the whole label and the times are in its
/// tooltip), and the drawing's width is what its columns need.
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
    // Every event of the shown ops: (history index, time).
    let mut events: Vec<(usize, u64)> = shown
        .iter()
        .flat_map(|sp| std::iter::once((sp.invoke, sp.t0)).chain(sp.complete.zip(sp.t1)))
        .collect();
    events.sort_unstable();
    events.dedup();
    let col = |index: usize| events.partition_point(|(i, _)| *i < index);
    // A time's place on the axis: before every event at or after it.
    let at_time = |t: u64| events.partition_point(|(_, et)| *et < t);
    // One more column for operations that never completed.
    let columns = events.len() + 1;
    let width = LEFT + COLUMN * columns as f64 + 10.0;
    let height = AXIS + ROW * procs.len() as f64 + 18.0;
    let x = |c: usize| LEFT + COLUMN * c as f64;
    let mut s = format!(
        "<div class=\"cx-wrap\"><svg class=\"cx-names\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{NAMES}\" height=\"{height:.0}\">"
    );
    for (r, p) in procs.iter().enumerate() {
        s.push_str(&format!(
            "<text x=\"4\" y=\"{:.1}\">{}</text>",
            AXIS + ROW * r as f64 + ROW / 2.0 + 4.0,
            esc(&fit(&format!("process {p}"), NAMES - 8.0))
        ));
    }
    s.push_str(&format!(
        "</svg><div class=\"cx-scroll\"><svg class=\"cx-timeline\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\">\n"
    ));
    // The axis: each event's time, where there is room for it.
    let time = |t: u64| show_time(d, t);
    let mut free_from = LEFT;
    for (c, (_, t)) in events.iter().enumerate() {
        let cx = x(c) + COLUMN / 2.0;
        s.push_str(&format!(
            "<line class=\"tick\" x1=\"{cx:.1}\" y1=\"{:.1}\" x2=\"{cx:.1}\" y2=\"{:.1}\"/>",
            AXIS - 4.0,
            AXIS + ROW * procs.len() as f64
        ));
        let label = time(*t);
        let half = label.chars().count() as f64 * CHAR / 2.0;
        if cx - half >= free_from {
            s.push_str(&format!(
                "<text class=\"axis\" x=\"{cx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                AXIS - 8.0,
                esc(&label)
            ));
            free_from = cx + half + 8.0;
        }
    }
    s.push('\n');
    let bottom = AXIS + ROW * procs.len() as f64;
    for w in &d.faults {
        if w.t1 < t_a || w.t0 > t_b {
            continue;
        }
        let (a, b) = (x(at_time(w.t0)), x(at_time(w.t1.saturating_add(1))));
        let b = if b <= a { a + 4.0 } else { b };
        s.push_str(&format!(
            "<rect class=\"fault\" x=\"{a:.1}\" y=\"{AXIS}\" width=\"{:.1}\" height=\"{:.1}\"><title>{}</title></rect><text class=\"fault-label\" x=\"{:.1}\" y=\"{:.1}\">{}<title>{}</title></text>\n",
            b - a,
            bottom - AXIS,
            esc(&w.label),
            a + 2.0,
            bottom + 13.0,
            esc(&fit(&w.label, b - a - 4.0)),
            esc(&w.label)
        ));
    }
    for sp in shown {
        let r = procs.iter().position(|p| *p == sp.process).unwrap_or(0);
        let y = AXIS + ROW * r as f64 + 4.0;
        let a = x(col(sp.invoke)) + 3.0;
        let b = match sp.complete {
            Some(c) => x(col(c) + 1) - 3.0,
            None => x(columns) - 3.0,
        };
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
        let title = format!(
            "{label}\nprocess {}, {} to {}",
            sp.process,
            time(sp.t0),
            sp.t1.map(time).unwrap_or_else(|| "never".into())
        );
        let open = if sp.complete.is_none() { " open" } else { "" };
        s.push_str(&format!(
            "<g><rect class=\"op {class}{open}\" x=\"{a:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\"><title>{}</title></rect>",
            b - a,
            ROW - 8.0,
            esc(&title)
        ));
        let num = order
            .get(&sp.invoke)
            .map(|n| format!("{n}: "))
            .unwrap_or_default();
        s.push_str(&format!(
            "<text class=\"op-label\" x=\"{:.1}\" y=\"{:.1}\">{}<title>{}</title></text></g>\n",
            a + 3.0,
            y + ROW / 2.0,
            esc(&fit(&format!("{num}{label}"), b - a - 6.0)),
            esc(&title)
        ));
    }
    s.push_str("</svg></div></div>\n");
    s
}

const CSS: &str = ".sw{display:inline-block;width:10px;height:10px;margin:0 3px;vertical-align:middle}
.cx-wrap{display:flex;align-items:flex-start}.cx-names{flex:none;font:11px sans-serif;margin:7px 0}
.cx-scroll{overflow-x:auto;flex:1 1 auto;min-width:0}line.tick{stroke:#eee}text.axis{fill:#666;font-size:10px}
rect.op.open{stroke-dasharray:4 2}
.sw.prefix{background:#8fd19e}.sw.stuck{background:#e06666}.sw.other{background:#d0d0d0}
svg.cx-timeline{border:1px solid #ddd;margin:6px 0;font:11px sans-serif}
rect.op.prefix{fill:#8fd19e;stroke:#2e8b57}rect.op.stuck{fill:#e06666;stroke:#900}rect.op.other{fill:#d0d0d0;stroke:#999}
rect.fault{fill:rgba(90,90,200,.13)}text.fault-label{fill:#3c3caa}
tr.stuck{background:#f8d4d4}div.shrunk{margin-top:1.5em}.explanation{font-size:110%;font-weight:600}section{margin-bottom:2em}";
