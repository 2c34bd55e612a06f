//! `timeline.html`: one column per process, one bar per operation from its
//! invocation to its completion, coloured by outcome, fault windows as
//! bands across every column, details on hover.
//!
//! It must stay usable at 100,000 operations, so the page is one file: the
//! operations as compact JSON arrays in a `<script type="application/json">`
//! and a small canvas renderer that draws only what is in view (each
//! process's operations are sequential, so a binary search finds the first
//! visible one). No network resource is loaded.
//!
//! Stable hooks for browser tests (docs/reports.md): `body[data-ready="1"]`
//! once drawn; `#op-count`, `#process-count`, `#fault-count`, `#ok-count`,
//! `#fail-count`, `#info-count` hold numbers; `#render-ms` the first draw's
//! time; `#timeline` is the canvas, `#tooltip` the hover box.

use super::data::{short, Data};
use super::{esc, head, script_json};
use serde_json::{json, Value};

/// Longest value text kept per operation (the tooltip shows this much).
const MAX_TEXT: usize = 160;

/// The data block: `procs` (column names), `fs` (function names), `ops` as
/// `[column, t0, t1 or -1, outcome 0 ok|1 fail|2 info, f index, key, value,
/// result, error, invoke event]`, `faults` as `[t0, t1, label, closed]`,
/// `t_end`, and the unit of times (`tick_ns`: 1000 = microseconds; 0 = the
/// history has no times and they are event indices).
pub fn data_json(d: &Data) -> Value {
    let tick = |t: u64| if d.timed { t / 1000 } else { t };
    let mut procs: Vec<u64> = d.spans.iter().map(|s| s.process).collect();
    procs.sort_unstable();
    procs.dedup();
    let col: rustc_hash::FxHashMap<u64, usize> =
        procs.iter().enumerate().map(|(i, p)| (*p, i)).collect();
    let mut fs: Vec<&str> = Vec::new();
    let mut f_index: rustc_hash::FxHashMap<&str, usize> = Default::default();
    let text = |v: &Value| {
        if v.is_null() {
            String::new()
        } else {
            short(v, MAX_TEXT)
        }
    };
    let ops: Vec<Value> = d
        .spans
        .iter()
        .map(|s| {
            let fi = *f_index.entry(s.f.as_str()).or_insert_with(|| {
                fs.push(s.f.as_str());
                fs.len() - 1
            });
            json!([
                col[&s.process],
                tick(s.t0),
                s.t1.map(|t| tick(t) as i64).unwrap_or(-1),
                s.ending.code(),
                fi,
                s.key.as_ref().map(&text).unwrap_or_default(),
                text(&s.input),
                text(&s.output),
                s.error.as_ref().map(&text).unwrap_or_default(),
                s.invoke,
            ])
        })
        .collect();
    let faults: Vec<Value> = d
        .faults
        .iter()
        .map(|w| json!([tick(w.t0), tick(w.t1), w.label, w.closed]))
        .collect();
    json!({
        "procs": procs,
        "fs": fs,
        "ops": ops,
        "faults": faults,
        "t_end": tick(d.t_end),
        "tick_ns": if d.timed { 1000 } else { 0 },
    })
}

/// The whole page.
pub fn render(title: &str, d: &Data) -> String {
    let mut s = head(&format!("{title} — timeline"), CSS);
    s.push_str("<body>\n");
    s.push_str(&format!(
        "<header><b>{}</b> — timeline: <span id=\"op-count\">0</span> operations \
(<span class=\"sw ok\"></span>ok <span id=\"ok-count\">0</span>, \
<span class=\"sw fail\"></span>fail <span id=\"fail-count\">0</span>, \
<span class=\"sw info\"></span>info <span id=\"info-count\">0</span>), \
<span id=\"process-count\">0</span> processes, \
<span class=\"sw fault\"></span><span id=\"fault-count\">0</span> fault windows. \
<button id=\"zoom-in\" type=\"button\">+</button><button id=\"zoom-out\" type=\"button\">−</button>\
<button id=\"zoom-reset\" type=\"button\">fit</button> \
<span class=\"muted\">wheel: scroll · ctrl/alt+wheel or +/−: zoom · shift+wheel or drag: pan · drawn in <span id=\"render-ms\"></span> ms</span></header>\n",
        esc(title)
    ));
    s.push_str("<div id=\"wrap\"><canvas id=\"timeline\"></canvas><div id=\"tooltip\" hidden=\"hidden\"></div></div>\n");
    s.push_str("<script type=\"application/json\" id=\"timeline-data\">");
    s.push_str(&script_json(&data_json(d)));
    s.push_str("</script>\n<script>\n");
    s.push_str(JS);
    s.push_str("\n</script>\n</body>\n</html>\n");
    s
}

const CSS: &str = "html,body{height:100%;margin:0}body{display:flex;flex-direction:column}
header{padding:6px 10px;border-bottom:1px solid #ccc;font-size:14px}
header button{margin-left:3px;min-width:2em}
.sw{display:inline-block;width:10px;height:10px;margin:0 3px 0 2px;vertical-align:middle}
.sw.ok{background:#2e8b57}.sw.fail{background:#d62728}.sw.info{background:#e69f00}.sw.fault{background:rgba(90,90,200,.3)}
#wrap{position:relative;flex:1;overflow:hidden}#timeline{display:block;width:100%;height:100%;cursor:crosshair}
#tooltip{position:absolute;pointer-events:none;background:#fffff0;border:1px solid #999;padding:4px 6px;
font:12px ui-monospace,monospace;white-space:pre;max-width:60em;overflow:hidden;box-shadow:1px 1px 4px rgba(0,0,0,.2)}";

const JS: &str = r##"(function () {
"use strict";
var started = performance.now();
var D = JSON.parse(document.getElementById("timeline-data").textContent);
var COLORS = ["#2e8b57", "#d62728", "#e69f00"], NAMES = ["ok", "fail", "info"];
var ops = D.ops, np = D.procs.length, tEnd = Math.max(D.t_end, 1);
var GUTTER = 74, HEAD = 22;
var cols = [], counts = [0, 0, 0], i;
for (i = 0; i < np; i++) cols.push([]);
for (i = 0; i < ops.length; i++) { cols[ops[i][0]].push(i); counts[ops[i][3]]++; }
function set(id, v) { var e = document.getElementById(id); if (e) e.textContent = String(v); }
set("op-count", ops.length); set("process-count", np); set("fault-count", D.faults.length);
set("ok-count", counts[0]); set("fail-count", counts[1]); set("info-count", counts[2]);
function end(o) { return o[2] < 0 ? tEnd : o[2]; }
var canvas = document.getElementById("timeline"), ctx = canvas.getContext("2d");
var wrap = document.getElementById("wrap"), tip = document.getElementById("tooltip");
var W = 0, H = 0, view = { t0: 0, scale: 1, x0: 0 };
function colW() { return Math.max(14, Math.min(140, (W - GUTTER) / Math.max(np, 1))); }
function fit() { view.t0 = 0; view.x0 = 0; view.scale = Math.max(H - HEAD - 4, 10) / tEnd; }
function clamp() {
  var span = (H - HEAD) / view.scale;
  view.t0 = Math.min(Math.max(view.t0, -span * 0.05), tEnd - span * 0.05);
  view.x0 = Math.min(Math.max(view.x0, 0), Math.max(0, np * colW() - (W - GUTTER)));
}
function resize() {
  var dpr = window.devicePixelRatio || 1;
  W = wrap.clientWidth; H = wrap.clientHeight;
  canvas.width = Math.round(W * dpr); canvas.height = Math.round(H * dpr);
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
}
function y(t) { return HEAD + (t - view.t0) * view.scale; }
function fmtT(t) {
  if (!D.tick_ns) return String(Math.round(t));
  var s = t * D.tick_ns / 1e9;
  return Math.abs(s) >= 10 ? s.toFixed(1) + " s" : Math.abs(s) >= 0.01 ? s.toFixed(3) + " s" : (s * 1000).toFixed(3) + " ms";
}
function niceStep(raw) {
  var p = Math.pow(10, Math.floor(Math.log10(raw))), m = raw / p;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}
// Index in list (a column) of the first op whose end is >= t: ends are
// non-decreasing because a process does one thing at a time.
function firstEnding(list, t) {
  var lo = 0, hi = list.length;
  while (lo < hi) { var mid = (lo + hi) >> 1; if (end(ops[list[mid]]) < t) lo = mid + 1; else hi = mid; }
  return lo;
}
function draw() {
  clamp();
  ctx.clearRect(0, 0, W, H);
  ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, W, H);
  var tA = view.t0, tB = view.t0 + (H - HEAD) / view.scale, cw = colW(), c, k;
  ctx.font = "11px sans-serif"; ctx.textBaseline = "top";
  for (k = 0; k < D.faults.length; k++) {
    var f = D.faults[k];
    if (f[1] < tA || f[0] > tB) continue;
    var fy0 = Math.max(y(f[0]), HEAD), fy1 = Math.min(y(f[1]), H);
    ctx.fillStyle = "rgba(90,90,200,0.13)"; ctx.fillRect(GUTTER, fy0, W - GUTTER, Math.max(fy1 - fy0, 1));
    ctx.fillStyle = "rgba(60,60,170,0.9)"; ctx.fillRect(GUTTER, y(f[0]), W - GUTTER, 1);
    ctx.fillText(f[2] + (f[3] ? "" : " (never stopped)"), GUTTER + 4, Math.max(y(f[0]) + 2, HEAD + 2));
  }
  var cFirst = Math.max(0, Math.floor(view.x0 / cw)), cLast = Math.min(np - 1, Math.ceil((view.x0 + W - GUTTER) / cw));
  var style = -1;
  for (c = cFirst; c <= cLast; c++) {
    var list = cols[c], x = GUTTER + c * cw - view.x0;
    for (k = firstEnding(list, tA); k < list.length; k++) {
      var o = ops[list[k]];
      if (o[1] > tB) break;
      var code = o[2] < 0 ? 3 : o[3];
      if (code !== style) {
        style = code;
        ctx.fillStyle = code === 3 ? "rgba(230,159,0,0.45)" : COLORS[code];
      }
      var y0 = y(o[1]), y1 = y(end(o));
      ctx.fillRect(x + 1, y0, cw - 2, Math.max(y1 - y0, 1));
    }
  }
  // Column heads and the time axis, over the bars.
  ctx.fillStyle = "#f4f4f4"; ctx.fillRect(0, 0, W, HEAD); ctx.fillRect(0, 0, GUTTER, H);
  ctx.fillStyle = "#333"; ctx.textBaseline = "middle";
  for (c = cFirst; c <= cLast; c++) {
    var name = String(D.procs[c]), cx = GUTTER + c * cw - view.x0;
    if (cw >= 7 * name.length || c % Math.ceil(7 * name.length / cw) === 0) ctx.fillText(name, cx + 2, HEAD / 2);
  }
  var step = niceStep(60 / view.scale), t = Math.ceil(tA / step) * step;
  ctx.textBaseline = "middle";
  for (; t <= tB; t += step) {
    var ty = y(t);
    ctx.fillStyle = "#333"; ctx.fillText(fmtT(t), 4, ty);
    ctx.fillStyle = "#ccc"; ctx.fillRect(GUTTER - 6, ty, 6, 1);
  }
}
function pick(mx, my) {
  var cw = colW(), c = Math.floor((mx - GUTTER + view.x0) / cw);
  if (mx < GUTTER || my < HEAD || c < 0 || c >= np) return -1;
  var t = view.t0 + (my - HEAD) / view.scale, slack = 2 / view.scale, list = cols[c];
  var k = firstEnding(list, t - slack);
  if (k < list.length && ops[list[k]][1] <= t + slack) return list[k];
  return -1;
}
function describe(n) {
  var o = ops[n], lines = [
    "process " + D.procs[o[0]] + "  " + D.fs[o[4]] + "  " + NAMES[o[3]] + (o[2] < 0 ? " (never completed)" : ""),
  ];
  if (o[5] !== "") lines.push("key     " + o[5]);
  lines.push("value   " + o[6]);
  if (o[2] >= 0) lines.push("result  " + o[7]);
  if (o[8] !== "") lines.push("error   " + o[8]);
  lines.push("invoked " + fmtT(o[1]) + " (event " + o[9] + ")");
  if (o[2] >= 0) lines.push("ended   " + fmtT(o[2]) + ", took " + fmtT(o[2] - o[1]));
  return lines.join("\n");
}
var frame = 0;
function redraw() { if (!frame) frame = requestAnimationFrame(function () { frame = 0; draw(); }); }
function zoom(factor, atY) {
  var t = view.t0 + (atY - HEAD) / view.scale;
  view.scale = Math.min(Math.max(view.scale * factor, 1e-9), 1e6);
  view.t0 = t - (atY - HEAD) / view.scale; redraw();
}
canvas.addEventListener("wheel", function (e) {
  e.preventDefault();
  var r = canvas.getBoundingClientRect();
  if (e.ctrlKey || e.altKey) zoom(Math.exp(-e.deltaY * 0.002), e.clientY - r.top);
  else if (e.shiftKey) { view.x0 += e.deltaY + e.deltaX; redraw(); }
  else { view.t0 += e.deltaY / view.scale; view.x0 += e.deltaX; redraw(); }
}, { passive: false });
var drag = null;
canvas.addEventListener("mousedown", function (e) { drag = { x: e.clientX, y: e.clientY, t0: view.t0, x0: view.x0 }; });
window.addEventListener("mouseup", function () { drag = null; });
canvas.addEventListener("mouseleave", function () { tip.hidden = true; });
canvas.addEventListener("mousemove", function (e) {
  var r = canvas.getBoundingClientRect(), mx = e.clientX - r.left, my = e.clientY - r.top;
  if (drag) {
    view.t0 = drag.t0 - (e.clientY - drag.y) / view.scale; view.x0 = drag.x0 - (e.clientX - drag.x);
    tip.hidden = true; redraw(); return;
  }
  var n = pick(mx, my);
  if (n < 0) { tip.hidden = true; return; }
  tip.textContent = describe(n); tip.hidden = false;
  tip.style.left = Math.min(mx + 14, Math.max(W - tip.offsetWidth - 4, 0)) + "px";
  tip.style.top = Math.min(my + 14, Math.max(H - tip.offsetHeight - 4, 0)) + "px";
});
document.getElementById("zoom-in").onclick = function () { zoom(2, HEAD + (H - HEAD) / 2); };
document.getElementById("zoom-out").onclick = function () { zoom(0.5, HEAD + (H - HEAD) / 2); };
document.getElementById("zoom-reset").onclick = function () { fit(); redraw(); };
window.addEventListener("keydown", function (e) {
  if (e.key === "+" || e.key === "=") zoom(2, HEAD + (H - HEAD) / 2);
  else if (e.key === "-") zoom(0.5, HEAD + (H - HEAD) / 2);
});
window.addEventListener("resize", function () { resize(); redraw(); });
resize(); fit(); draw();
set("render-ms", Math.round(performance.now() - started));
document.body.dataset.ready = "1";
})();"##;
