//! A Markdown summary fit for a GitHub job summary (`$GITHUB_STEP_SUMMARY`):
//! the overall verdict, a table of verdicts with their explanations, and
//! the counts.

use super::data::{Data, Ending};
use super::VerdictRow;

fn cell(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace(['\n', '\r'], " ")
}

fn mark(v: &str) -> &'static str {
    match v {
        "valid" => "✅",
        "invalid" => "❌",
        "unknown" => "❔",
        "incomplete" => "⏹️",
        _ => "⚠️",
    }
}

/// Operation and fault counts in one line.
pub fn counts_line(d: &Data) -> String {
    let n = |e: Ending| d.spans.iter().filter(|s| s.ending == e).count();
    let mut s = format!(
        "{} operations: {} ok, {} fail, {} info; {} fault window{}",
        d.spans.len(),
        n(Ending::Ok),
        n(Ending::Fail),
        n(Ending::Info),
        d.faults.len(),
        if d.faults.len() == 1 { "" } else { "s" }
    );
    if d.timed {
        s.push_str(&format!("; {:.1} s", d.t_end as f64 / 1e9));
    }
    s
}

/// The summary: `title`, the overall verdict, one row per verdict (a
/// checker, or a file for `check`), and optional counts.
pub fn render(title: &str, overall: &str, rows: &[VerdictRow], counts: Option<&str>) -> String {
    let mut s = format!(
        "## faultline: {} — {} **{}**\n\n| | verdict | explanation |\n|---|---|---|\n",
        cell(title),
        mark(overall),
        cell(overall)
    );
    for r in rows {
        s.push_str(&format!(
            "| {} | {} {} | {} |\n",
            cell(&r.name),
            mark(&r.validity),
            cell(&r.validity),
            cell(&r.sentence)
        ));
    }
    if let Some(c) = counts {
        s.push_str(&format!("\n{}\n", cell(c)));
    }
    s
}
