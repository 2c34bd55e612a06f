//! The HTML of the web UI: the list of runs and a run's page. Plain HTML
//! and CSS, no scripts: filters are a GET form, so everything works with
//! JavaScript off and every view has a URL.

use super::runs::RunSummary;
use std::fmt::Write as _;

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes one path segment or query value for a URL.
pub fn url_part(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A `/`-separated relative path, each segment percent-encoded.
pub fn url_path(rel: &str) -> String {
    rel.split('/').map(url_part).collect::<Vec<_>>().join("/")
}

/// The CSS shared by every page (and by compare.html).
pub const STYLE: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:#1d232a;background:#f6f7f9}\
header{background:#1d232a;color:#fff;padding:.6rem 1.2rem;display:flex;gap:1.5rem;align-items:baseline}\
header a{color:#fff;text-decoration:none;font-weight:600}\
main{padding:1rem 1.2rem}\
table{border-collapse:collapse;background:#fff;width:100%}\
th,td{border-bottom:1px solid #e3e6ea;padding:.35rem .6rem;text-align:left;vertical-align:top}\
th{background:#eef0f3;font-weight:600}\
td.num{text-align:right;font-variant-numeric:tabular-nums}\
.verdict{font-weight:700;padding:.1rem .45rem;border-radius:.25rem;white-space:nowrap}\
.valid{background:#d8f3dc;color:#1b5e20}.invalid{background:#fde2e1;color:#b71c1c}\
.unknown{background:#fff3cd;color:#7a5b00}.incomplete,.missing{background:#e9ecef;color:#495057}\
form.filters{display:flex;gap:.8rem;align-items:end;margin-bottom:1rem;flex-wrap:wrap}\
form.filters label{display:flex;flex-direction:column;font-size:.85rem}\
iframe.report{width:100%;height:75vh;border:1px solid #d0d4d9;background:#fff}\
.muted{color:#6c757d}code{font-size:.9em}\
";

/// A whole page around `body`.
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{}</title><link rel=\"icon\" href=\"data:,\"><style>{STYLE}</style></head>\
<body><header><a href=\"/\">faultline</a><a href=\"/compare\">compare</a><span>{}</span></header><main>{body}</main></body></html>\n",
        esc(title),
        esc(title)
    )
}

/// A verdict as a colored badge.
pub fn verdict_badge(v: &str) -> String {
    let class = match v {
        "valid" | "invalid" | "unknown" | "incomplete" => v,
        _ => "missing",
    };
    format!("<span class=\"verdict {class}\">{}</span>", esc(v))
}

/// The run page's URL.
pub fn run_url(r: &RunSummary) -> String {
    format!("/runs/{}/", url_path(&r.id))
}

/// The filters of the list of runs.
#[derive(Debug, Default, Clone, serde::Deserialize)]
pub struct Filters {
    /// Keep runs whose test name contains this (case-insensitive).
    #[serde(default)]
    pub name: String,
    /// Keep runs with this verdict (`valid`, `invalid`, `unknown`,
    /// `incomplete`); empty: all.
    #[serde(default)]
    pub verdict: String,
}

impl Filters {
    /// Whether `r` passes.
    pub fn keep(&self, r: &RunSummary) -> bool {
        let name = self.name.trim().to_lowercase();
        (name.is_empty() || r.test_name.to_lowercase().contains(&name))
            && (self.verdict.is_empty() || r.verdict == self.verdict)
    }
}

fn fmt_duration(s: Option<f64>) -> String {
    match s {
        Some(s) if s >= 60.0 => format!("{}m {:02}s", (s / 60.0) as u64, (s % 60.0) as u64),
        Some(s) if s >= 1.0 => format!("{s:.1} s"),
        Some(s) if s >= 1e-3 => format!("{:.0} ms", s * 1e3),
        Some(s) => format!("{:.0} µs", s * 1e6),
        None => "—".into(),
    }
}

/// The list of runs, newest first, with the filter form.
pub fn index(all: &[RunSummary], f: &Filters, root: &str) -> String {
    let runs: Vec<&RunSummary> = all.iter().filter(|r| f.keep(r)).collect();
    let mut b = String::new();
    b.push_str("<form class=\"filters\" method=\"get\" action=\"/\">");
    let _ = write!(
        b,
        "<label>test name<input type=\"search\" name=\"name\" value=\"{}\"></label>",
        esc(&f.name)
    );
    b.push_str("<label>verdict<select name=\"verdict\">");
    for v in ["", "valid", "invalid", "unknown", "incomplete"] {
        let sel = if f.verdict == v { " selected" } else { "" };
        let label = if v.is_empty() { "any" } else { v };
        let _ = write!(b, "<option value=\"{v}\"{sel}>{label}</option>");
    }
    b.push_str("</select></label><button type=\"submit\">filter</button>");
    if !f.name.is_empty() || !f.verdict.is_empty() {
        b.push_str("<a href=\"/\">clear</a>");
    }
    b.push_str("</form>");
    let _ = write!(
        b,
        "<p class=\"muted\" id=\"count\">{} of {} runs in <code>{}</code></p>",
        runs.len(),
        all.len(),
        esc(root)
    );
    if runs.is_empty() {
        b.push_str("<p id=\"empty\">No runs match.</p>");
        return page("runs", &b);
    }
    b.push_str(
        "<table id=\"runs\"><thead><tr><th>test</th><th>started</th><th>db</th><th>workload</th>\
<th>nemesis</th><th>duration</th><th>ops</th><th>verdict</th><th>failing checkers</th><th></th></tr></thead><tbody>",
    );
    for r in runs {
        let _ = write!(
            b,
            "<tr class=\"run\" data-verdict=\"{v}\"><td><a href=\"{url}\">{name}</a></td><td>{start}</td>\
<td>{db}</td><td>{wl}</td><td>{nem}</td><td class=\"num\">{dur}</td><td class=\"num\">{ops}</td>\
<td>{badge}</td><td>{fail}</td><td>{report}</td></tr>",
            v = esc(&r.verdict),
            url = run_url(r),
            name = esc(&r.test_name),
            start = esc(&r.start),
            db = esc(&r.db),
            wl = esc(&r.workload),
            nem = esc(&r.nemesis_label()),
            dur = fmt_duration(r.duration_s),
            ops = r.ops.map(|n| n.to_string()).unwrap_or_else(|| "—".into()),
            badge = verdict_badge(&r.verdict),
            fail = esc(&r.failing_checkers().join(", ")),
            report = if r.has_report {
                format!("<a class=\"report\" href=\"{}files/report.html\">report</a>", run_url(r))
            } else {
                String::new()
            },
        );
    }
    b.push_str("</tbody></table>");
    page("runs", &b)
}

/// One file of a run, for the run page.
#[derive(Debug, Clone)]
pub struct FileEntry {
    /// Path relative to the run folder, `/`-separated.
    pub rel: String,
    /// Size in bytes.
    pub size: u64,
}

/// A run's page: summary, its report.html (when there is one) in a frame,
/// and its files.
pub fn run_page(r: &RunSummary, files: &[FileEntry]) -> String {
    let base = run_url(r);
    let mut b = String::new();
    let _ = write!(
        b,
        "<h1>{name} <span class=\"muted\">{start}</span> {badge}</h1>\
<p>db <b>{db}</b> · workload <b>{wl}</b> · nemesis <b>{nem}</b> · {dur} · {ops} ops · \
<a id=\"download\" href=\"{base}download.tar.gz\">download .tar.gz</a></p>",
        name = esc(&r.test_name),
        start = esc(&r.start),
        badge = verdict_badge(&r.verdict),
        db = esc(&r.db),
        wl = esc(&r.workload),
        nem = esc(&r.nemesis_label()),
        dur = fmt_duration(r.duration_s),
        ops = r.ops.map(|n| n.to_string()).unwrap_or_else(|| "—".into()),
    );
    if !r.checkers.is_empty() {
        b.push_str("<table id=\"checkers\"><thead><tr><th>checker</th><th>verdict</th><th>anomalies</th></tr></thead><tbody>");
        for c in &r.checkers {
            let _ = write!(
                b,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&c.name),
                verdict_badge(&c.valid),
                esc(&c.anomalies.join(", "))
            );
        }
        b.push_str("</tbody></table>");
    }
    if r.has_report {
        let _ = write!(
            b,
            "<h2>Report</h2><iframe class=\"report\" id=\"report\" title=\"report\" src=\"{base}files/report.html\"></iframe>"
        );
    } else {
        b.push_str("<p class=\"muted\" id=\"no-report\">This run has no report.html.</p>");
    }
    b.push_str("<h2>Files</h2><table id=\"files\"><thead><tr><th>file</th><th>size</th><th></th></tr></thead><tbody>");
    for f in files {
        let href = format!("{base}files/{}", url_path(&f.rel));
        let _ = write!(
            b,
            "<tr><td><a class=\"file\" href=\"{href}\">{name}</a></td><td class=\"num\">{size}</td>\
<td><a href=\"{href}?download=1\" download>download</a></td></tr>",
            name = esc(&f.rel),
            size = human_size(f.size),
        );
    }
    b.push_str("</tbody></table>");
    page(&format!("{} {}", r.test_name, r.start), &b)
}

fn human_size(n: u64) -> String {
    match n {
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

/// A small error page.
pub fn error_page(title: &str, message: &str) -> String {
    page(title, &format!("<p id=\"error\">{}</p>", esc(message)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_url_encoding() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(url_part("a b/.."), "a%20b%2F..");
        assert_eq!(url_path("t/2026.1Z"), "t/2026.1Z");
    }
}
