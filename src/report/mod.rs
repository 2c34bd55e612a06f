//! Per-run artifacts people look at, rendered from a history and the
//! checkers' results (the `results.json` value): one module per artifact.
//!
//! | file | module |
//! |---|---|
//! | `latency.svg/png`, `latency-quantiles.svg/png`, `rate.svg/png` | [`plots`] |
//! | `timeline.html` | [`timeline`] |
//! | `counterexample.html` | [`counterexample`] |
//! | `anomalies.html` | [`anomalies`] |
//! | `report.html` | [`summary`] |
//! | JUnit XML, Markdown job summary | [`junit`], [`markdown`] |
//! | a checker's explanation files (`<anomaly>.txt`, `<anomaly>/<i>.dot` and `.svg`) | [`explanations`] |
//!
//! [`write_all`] never fails: an artifact that cannot be rendered is logged
//! in the returned [`Written`] and noted in `report.html`; the verdict is the
//! checkers', whatever happens here. docs/reports.md describes each file.

pub mod anomalies;
pub mod counterexample;
pub mod cycle_svg;
pub mod data;
pub mod explanations;
pub mod junit;
pub mod markdown;
pub mod plots;
pub mod summary;
pub mod timeline;

pub use data::Data;
pub use explanations::write_explanations;

use crate::history::History;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Everything a run's artifacts are drawn from.
#[derive(Clone, Debug)]
pub struct Run<'a> {
    /// The page title, e.g. the test name and start time.
    pub title: String,
    /// The history.
    pub history: &'a History,
    /// The test configuration (`test.json`), when there is one.
    pub test: Option<&'a Value>,
    /// The checkers' results: `{"valid": .., "checkers": {name: details}}`.
    pub results: &'a Value,
    /// Other files of the run to link from `report.html`: (label, path
    /// relative to the output folder).
    pub links: Vec<(String, String)>,
}

/// What [`write_all`] did.
#[derive(Clone, Debug, Default)]
pub struct Written {
    /// Files written.
    pub files: Vec<PathBuf>,
    /// Artifacts that failed: (file name, why).
    pub failures: Vec<(String, String)>,
    /// Artifacts not made, and why (e.g. no invalid key: no counterexample page).
    pub skipped: Vec<(String, String)>,
}

/// An artifact's outcome: files written, or nothing to draw (with why).
pub enum Made {
    /// These files.
    Files(Vec<PathBuf>),
    /// Nothing to draw.
    Skipped(String),
}

/// Writes every artifact of `run` into `dir` (created if missing). Never
/// fails and never panics: failures are returned and shown in report.html.
pub fn write_all(dir: &Path, run: &Run<'_>) -> Written {
    let mut w = Written::default();
    if let Err(e) = std::fs::create_dir_all(dir) {
        w.failures
            .push((dir.display().to_string(), format!("cannot create: {e}")));
        return w;
    }
    let data = Data::new(run.history);
    let mut attempt = |name: &str, f: &dyn Fn() -> Result<Made, String>| {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
            .unwrap_or_else(|p| Err(format!("renderer panicked: {}", panic_text(&p))));
        match r {
            Ok(Made::Files(fs)) => w.files.extend(fs),
            Ok(Made::Skipped(why)) => w.skipped.push((name.to_string(), why)),
            Err(e) => w.failures.push((name.to_string(), e)),
        }
    };
    attempt("latency", &|| plots::write_latency(dir, &data));
    attempt("latency-quantiles", &|| plots::write_quantiles(dir, &data));
    attempt("rate", &|| plots::write_rate(dir, &data));
    // Only runs with clock checks have a clock plot (no note for the rest).
    if !plots::clock_offsets(run.history).is_empty() {
        attempt("clock", &|| plots::write_clock(dir, &data, run.history));
    }
    attempt("timeline.html", &|| {
        write(dir, "timeline.html", &timeline::render(&run.title, &data))
    });
    attempt(
        "counterexample.html",
        &|| match counterexample::render(&run.title, &data, run.results) {
            Some(html) => write(dir, "counterexample.html", &html),
            None => Ok(Made::Skipped("no key is invalid".into())),
        },
    );
    attempt(
        "anomalies.html",
        &|| match anomalies::render(&run.title, run.results) {
            Some(html) => write(dir, "anomalies.html", &html),
            None => Ok(Made::Skipped("no transactional anomaly".into())),
        },
    );
    let html = summary::render(run, &data, &w);
    match write(dir, "report.html", &html) {
        Ok(Made::Files(fs)) => w.files.extend(fs),
        Ok(Made::Skipped(_)) => {}
        Err(e) => w.failures.push(("report.html".into(), e)),
    }
    w
}

/// Writes the CI outputs asked for: JUnit XML to `junit`, the Markdown
/// summary to `markdown` (one row per checker for one suite; one per
/// suite and checker for several). Returns what could not be written, for
/// warnings: a CI file never changes the verdict.
pub fn write_ci(
    junit: Option<&Path>,
    markdown: Option<&Path>,
    title: &str,
    overall: &str,
    suites: &[junit::Suite],
    counts: Option<&str>,
) -> Vec<String> {
    let mut errors = Vec::new();
    if let Some(p) = junit {
        if let Err(e) = std::fs::write(p, junit::render(suites)) {
            errors.push(format!("{}: cannot write JUnit XML: {e}", p.display()));
        }
    }
    if let Some(p) = markdown {
        let rows: Vec<VerdictRow> = if suites.len() == 1 {
            suites[0].cases.clone()
        } else {
            suites
                .iter()
                .flat_map(|s| {
                    s.cases.iter().map(|c| VerdictRow {
                        name: format!("{} — {}", s.name, c.name),
                        ..c.clone()
                    })
                })
                .collect()
        };
        let text = markdown::render(title, overall, &rows, counts);
        if let Err(e) = std::fs::write(p, text) {
            errors.push(format!(
                "{}: cannot write the Markdown summary: {e}",
                p.display()
            ));
        }
    }
    errors
}

fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
}

/// Writes `text` to `dir/name`.
pub(crate) fn write(dir: &Path, name: &str, text: &str) -> Result<Made, String> {
    let p = dir.join(name);
    std::fs::write(&p, text).map_err(|e| format!("{}: cannot write: {e}", p.display()))?;
    Ok(Made::Files(vec![p]))
}

/// Escapes text for HTML and XML (content and quoted attributes).
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            // Characters XML 1.0 forbids, even escaped.
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\r' | '\t') => o.push('\u{fffd}'),
            c => o.push(c),
        }
    }
    o
}

/// JSON to embed in a `<script type="application/json">`: `<` is written
/// `\u003c` (only strings can hold it), so no `</script>` can end the block.
pub fn script_json(v: &Value) -> String {
    v.to_string().replace('<', "\\u003c")
}

/// The shared page head: title and the small stylesheet every page uses.
pub(crate) fn head(title: &str, extra_css: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n<title>{}</title>\n<style>\n{}\n{}\n</style>\n</head>\n",
        esc(title),
        BASE_CSS,
        extra_css
    )
}

const BASE_CSS: &str = "body{font-family:system-ui,sans-serif;margin:1.2em;color:#222}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}
.valid{background:#d8f0dc}.invalid{background:#f8d4d4}.unknown{background:#fbeccb}.incomplete{background:#e9ecef}.error{background:#eee}
code,pre{font-family:ui-monospace,monospace;font-size:90%}pre{white-space:pre-wrap}
.muted{color:#777}";

/// One checker's verdict, as CI outputs and report.html show it.
#[derive(Clone, Debug, PartialEq)]
pub struct VerdictRow {
    /// The checker (`linearizable`, `txn`, ...), or a file for `check`.
    pub name: String,
    /// `valid`, `invalid`, `unknown`, `incomplete` (the run did not run to
    /// its end), or `error` (the checker could not run).
    pub validity: String,
    /// One sentence: the counterexample's explanation, the anomaly, the
    /// reason for unknown, or a count for valid.
    pub sentence: String,
}

/// The verdict of each checker of a `results.json` value.
pub fn verdicts(results: &Value) -> Vec<VerdictRow> {
    // The run's own verdict first, when it says why the checkers' cannot
    // stand: it did not run to its end, or no operation succeeded; or why
    // it ended early: `--stop-on-invalid` at a proven violation.
    let mut out: Vec<VerdictRow> = [
        ("incomplete", "/incomplete_reason"),
        ("unknown", "/unknown_reason"),
        ("invalid", "/stopped_early/reason"),
    ]
    .iter()
    .filter_map(|(validity, key)| {
        results
            .pointer(key)
            .and_then(Value::as_str)
            .map(|why| VerdictRow {
                name: "run".to_string(),
                validity: validity.to_string(),
                sentence: why.to_string(),
            })
    })
    .take(1)
    .collect();
    let Some(checkers) = results.get("checkers").and_then(Value::as_object) else {
        return out;
    };
    out.extend(checkers.iter().map(|(name, d)| {
        let validity = if d.get("error").is_some() {
            "error".to_string()
        } else {
            d.get("valid")
                .and_then(Value::as_str)
                .unwrap_or("unknown")
                .to_string()
        };
        VerdictRow {
            name: name.clone(),
            validity,
            sentence: sentence(d),
        }
    }));
    out
}

/// The sentence that explains one checker's details.
pub fn sentence(d: &Value) -> String {
    let s = |k: &str| d.get(k).and_then(Value::as_str).map(String::from);
    let n = |k: &str| d.get(k).and_then(Value::as_u64).unwrap_or(0);
    if let Some(e) = s("error") {
        return e;
    }
    if let Some(fails) = d.get("failures").and_then(Value::as_array) {
        if let Some(x) = fails.iter().find_map(|f| {
            f.pointer("/counterexample/explanation")
                .and_then(Value::as_str)
        }) {
            return x.to_string();
        }
        if let Some(x) = fails
            .iter()
            .find_map(|f| f.get("reason").and_then(Value::as_str))
        {
            return x.to_string();
        }
        let keys = n("keys");
        return format!(
            "{} operations, {keys} key{}: linearizable",
            n("ops"),
            if keys == 1 { "" } else { "s" }
        );
    }
    if let Some(an) = d.get("anomalies").and_then(Value::as_object) {
        if let Some((k, a)) = an
            .iter()
            .find_map(|(k, l)| l.as_array()?.first().map(|a| (k, a)))
        {
            let text = a.get("explanation").and_then(Value::as_str).unwrap_or("");
            return format!("{k}: {text}");
        }
        if let Some(r) = s("reason") {
            return r;
        }
        return format!("{} transactions, no anomalies", n("txns"));
    }
    if let Some(x) = s("explanation").or_else(|| s("reason")) {
        return x;
    }
    if d.get("by_f").is_some() {
        return format!("{} ok, {} fail, {} info", n("ok"), n("fail"), n("info"));
    }
    String::new()
}

#[cfg(test)]
mod tests;
