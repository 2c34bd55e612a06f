//! `faultline compare`: one table over dbs × workloads × nemeses, from the
//! newest stored run of each combination — which held, which anomalies and
//! failing checkers each showed, with a link to each run.
//!
//! Which combinations are rows: the values given for each axis, or every
//! value stored when an axis is not given. A combination with no stored run
//! is listed (as `not run`) only when all three axes were given — that grid
//! is what was asked for; otherwise only stored combinations are rows.
//!
//! A combination `faultline run` refused before it started (a fault the
//! cluster or db cannot take, a workload its client does not run) leaves
//! no run folder; `faultline compare --run` records the refusal in
//! `refusals.jsonl` at the results directory's root ([`record_refusal`]),
//! so the table says `refused` and why rather than `not run`.
//!
//! Two layouts: a list (a row per combination) and a matrix ([`matrix`]:
//! a row per nemesis, a column per db and workload; each cell says whether
//! it ran, which requested faults took effect, and the verdict).

use super::pages::{esc, url_path, verdict_badge, STYLE};
use super::runs::RunSummary;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

/// The file at the root of a results directory where `faultline compare
/// --run` records the combinations refused before they started, one JSON
/// object (a [`Refusal`]) a line.
pub const REFUSALS_JSONL: &str = "refusals.jsonl";

/// A combination `faultline run` refused before it started: no run folder
/// was made, so this record is all that says it was tried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// The database.
    pub db: String,
    /// The workload.
    pub workload: String,
    /// The nemeses, in [`nemesis_key`]'s form.
    pub nemesis: String,
    /// When it was tried, in the form of a run folder's start
    /// (`store::format_time`), so it orders against runs.
    pub at: String,
    /// The refusal's message, whole.
    pub reason: String,
}

impl Refusal {
    /// The refusal's first line: what a table cell shows.
    pub fn first_line(&self) -> &str {
        self.reason.lines().next().unwrap_or("").trim()
    }
}

/// The refusals recorded in `root`'s [`REFUSALS_JSONL`] (none when there is
/// no such file); a line that is not a refusal is skipped, so one torn
/// write does not hide the others.
pub fn read_refusals(root: &Path) -> std::io::Result<Vec<Refusal>> {
    let text = match std::fs::read_to_string(root.join(REFUSALS_JSONL)) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

/// Appends `r` to `root`'s [`REFUSALS_JSONL`].
pub fn record_refusal(root: &Path, r: &Refusal) -> std::io::Result<()> {
    let line = serde_json::to_string(r).map_err(std::io::Error::other)?;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(root.join(REFUSALS_JSONL))?;
    writeln!(f, "{line}")
}

/// Which combinations to compare; an empty axis means every stored value.
#[derive(Debug, Default, Clone)]
pub struct Selection {
    /// Databases (`etcd`, `postgres`, ...).
    pub dbs: Vec<String>,
    /// Workloads (`register`, `set`, ...).
    pub workloads: Vec<String>,
    /// Nemeses: `partition`, `kill`, `partition+kill` (several at once),
    /// or `none`.
    pub nemeses: Vec<String>,
    /// test.json fields that split a combination further (e.g.
    /// `isolation`: PostgreSQL at each isolation level is its own row).
    pub split_by: Vec<String>,
    /// Each db's workload when `workloads` is empty (db → workload; a db
    /// not in the map keeps every stored workload). Empty: every workload.
    pub default_workloads: BTreeMap<String, String>,
}

impl Selection {
    /// The workloads selected for `db`: those given, else its default,
    /// else (empty) every one.
    fn workloads_of(&self, db: &str) -> Vec<String> {
        if !self.workloads.is_empty() {
            return self.workloads.clone();
        }
        self.default_workloads
            .get(db)
            .map(|w| vec![w.clone()])
            .unwrap_or_default()
    }
}

/// One combination and its newest run.
#[derive(Debug, Clone)]
pub struct Row {
    /// The database.
    pub db: String,
    /// The workload.
    pub workload: String,
    /// The nemeses, as `a+b`, or `none`.
    pub nemesis: String,
    /// The `--split-by` fields' values, `field=value` joined by spaces
    /// (empty without `--split-by`).
    pub variant: String,
    /// The newest stored run of this combination.
    pub run: Option<RunSummary>,
    /// The newest refusal of this combination, when newer than its newest
    /// run (a refusal older than a run is history).
    pub refused: Option<Refusal>,
    /// How many stored runs there are of it.
    pub runs: usize,
}

/// A nemesis label in a canonical form: sorted, `+`-joined; `none` for no
/// faults. `kill+partition` and `partition,kill` name the same set.
pub fn nemesis_key(label: &str) -> String {
    let mut parts: Vec<&str> = label
        .split(['+', ','])
        .map(str::trim)
        .filter(|p| !p.is_empty() && *p != "none")
        .collect();
    parts.sort_unstable();
    parts.dedup();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join("+")
    }
}

type Key = (String, String, String, String);

fn key_of(r: &RunSummary, split_by: &[String]) -> Key {
    (
        r.db.clone(),
        r.workload.clone(),
        nemesis_key(&r.nemesis.join("+")),
        variant_of(r, split_by),
    )
}

fn variant_of(r: &RunSummary, split_by: &[String]) -> String {
    split_by
        .iter()
        .map(|f| format!("{f}={}", r.field(f)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn refusal_key(r: &Refusal, split_by: &[String]) -> Key {
    (
        r.db.clone(),
        r.workload.clone(),
        nemesis_key(&r.nemesis),
        split_by
            .iter()
            .map(|f| format!("{f}=-"))
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// The rows for `sel` over `runs` (newest first, as [`super::runs::scan`]
/// returns them) and `refusals`, sorted by db, workload, nemesis.
pub fn gather(runs: &[RunSummary], refusals: &[Refusal], sel: &Selection) -> Vec<Row> {
    let want_n: Vec<String> = sel.nemeses.iter().map(|n| nemesis_key(n)).collect();
    let keep = |axis: &[String], v: &str| axis.is_empty() || axis.iter().any(|a| a == v);
    let wanted =
        |(d, w, n, _): &Key| keep(&sel.dbs, d) && keep(&sel.workloads_of(d), w) && keep(&want_n, n);
    let mut keys: BTreeSet<Key> = runs
        .iter()
        .map(|r| key_of(r, &sel.split_by))
        .chain(refusals.iter().map(|r| refusal_key(r, &sel.split_by)))
        .filter(wanted)
        .collect();
    if !sel.dbs.is_empty() && !want_n.is_empty() {
        for d in &sel.dbs {
            for w in &sel.workloads_of(d) {
                for n in &want_n {
                    let stored = keys.iter().any(|(kd, kw, kn, _)| (kd, kw, kn) == (d, w, n));
                    if !stored {
                        keys.insert((d.clone(), w.clone(), n.clone(), String::new()));
                    }
                }
            }
        }
    }
    keys.into_iter()
        .map(|key| {
            let matching: Vec<&RunSummary> = runs
                .iter()
                .filter(|r| key_of(r, &sel.split_by) == key)
                .collect();
            let run = matching.first().map(|r| (*r).clone());
            let refused = refusals
                .iter()
                .filter(|r| refusal_key(r, &sel.split_by) == key)
                .max_by(|a, b| a.at.cmp(&b.at))
                .filter(|r| run.as_ref().map_or(true, |run| r.at > run.start))
                .cloned();
            let (db, workload, nemesis, variant) = key;
            Row {
                run: if refused.is_some() { None } else { run },
                refused,
                runs: matching.len(),
                db,
                workload,
                nemesis,
                variant,
            }
        })
        .collect()
}

/// Where a row's links point.
#[derive(Debug, Clone)]
pub enum Links {
    /// Paths relative to the folder the table is written in: the prefix
    /// from there to the results directory (e.g. `../results/`).
    Files(String),
    /// Pages of a `faultline serve` at this base (`""` for the same server).
    Server(String),
    /// No links: a table pasted where the results are not (a README).
    None,
}

impl Links {
    /// The link to a run, or `None` with [`Links::None`].
    fn run(&self, r: &RunSummary) -> Option<String> {
        Some(match self {
            Links::Files(prefix) => {
                let page = if r.has_report {
                    "report.html"
                } else {
                    "results.json"
                };
                format!("{prefix}{}/{page}", url_path(&r.id))
            }
            Links::Server(base) => format!("{base}/runs/{}/", url_path(&r.id)),
            Links::None => return None,
        })
    }
}

/// The row's verdict: the run's, `refused`, or `not run`.
pub fn verdict_of(row: &Row) -> &str {
    match (&row.run, &row.refused) {
        (Some(r), _) => r.verdict.as_str(),
        (None, Some(_)) => "refused",
        (None, None) => "not run",
    }
}

/// What took effect of the faults the row's run requested: `partition 2/2
/// took effect`, one such part per fault; `2/2 took effect` with `bare`
/// and a single fault (a matrix row already names it). Empty when the run
/// recorded no coverage.
fn took_effect(row: &Row, bare: bool) -> String {
    let Some(r) = &row.run else {
        return String::new();
    };
    match r.faults.as_slice() {
        [one] if bare => {
            let brief = one.brief();
            brief[one.name.len()..].trim_start().to_string()
        }
        all => all.iter().map(|f| f.brief()).collect::<Vec<_>>().join(", "),
    }
}

/// Why the row is as it is, when its verdict does not say it all: the
/// first line of the refusal, or of why the run's verdict is unknown or
/// incomplete (which may quote a db's log: control characters and bytes
/// that were not text become `?`, so a table stays a table).
fn reason_of(row: &Row) -> Option<String> {
    let why = match (&row.run, &row.refused) {
        (Some(r), _) => r.reason.as_deref()?,
        (None, Some(f)) => f.first_line(),
        (None, None) => return None,
    };
    let first = why.lines().next().unwrap_or("").trim();
    Some(
        first
            .chars()
            .map(|c| {
                if c.is_control() || c == char::REPLACEMENT_CHARACTER {
                    '?'
                } else {
                    c
                }
            })
            .collect(),
    )
}

/// Of the rows that ran with faults requested: how many had every
/// requested fault take effect at least once, as `(every, of)`.
pub fn effect_tally(rows: &[Row]) -> (usize, usize) {
    let with_faults: Vec<&RunSummary> = rows
        .iter()
        .filter_map(|r| r.run.as_ref())
        .filter(|r| !r.faults.is_empty())
        .collect();
    let every = with_faults
        .iter()
        .filter(|r| r.faults.iter().all(|f| f.took_effect > 0))
        .count();
    (every, with_faults.len())
}

/// How many rows held, failed, and so on, as one sentence.
pub fn tally(rows: &[Row]) -> String {
    let count = |v: &str| rows.iter().filter(|r| verdict_of(r) == v).count();
    let mut parts = vec![
        format!("{} combinations", rows.len()),
        format!("{} valid", count("valid")),
        format!("{} invalid", count("invalid")),
    ];
    for v in ["unknown", "incomplete", "refused", "not run"] {
        let n = count(v);
        if n > 0 {
            parts.push(format!("{n} {v}"));
        }
    }
    parts.join(", ")
}

/// A Markdown table cell: `|` escaped, lines joined.
fn md_cell(t: &str) -> String {
    t.replace('|', "\\|").replace('\n', " ")
}

/// `text` as a Markdown link to the row's run, or plain without one.
fn md_link(text: &str, row: &Row, links: &Links) -> String {
    match row.run.as_ref().and_then(|r| links.run(r)) {
        Some(href) => format!("[{}]({href})", md_cell(text)),
        None => md_cell(text),
    }
}

/// A verdict in Markdown: bold unless valid or not run.
fn md_verdict(v: &str) -> String {
    if v == "valid" || v == "not run" {
        v.to_string()
    } else {
        format!("**{v}**")
    }
}

/// The table as Markdown.
pub fn markdown(rows: &[Row], links: &Links) -> String {
    let mut s = String::from("# faultline compare\n\n");
    let _ = writeln!(s, "{}.\n", tally(rows));
    let variants = rows.iter().any(|r| !r.variant.is_empty());
    let (vh, vs) = if variants {
        (" variant |", "---|")
    } else {
        ("", "")
    };
    let _ = writeln!(
        s,
        "| db | workload | nemesis |{vh} verdict | took effect | why | anomalies | failing checkers | ops | run |"
    );
    let _ = writeln!(s, "|---|---|---|{vs}---|---|---|---|---|---:|---|");
    for row in rows {
        let (anomalies, failing, ops, link) = match &row.run {
            Some(r) => (
                r.anomalies().join(", "),
                r.failing_checkers().join(", "),
                r.ops.map(|n| n.to_string()).unwrap_or_default(),
                md_link(&r.start, row, links),
            ),
            None => Default::default(),
        };
        let variant = if variants {
            format!(" {} |", md_cell(&row.variant))
        } else {
            String::new()
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} |{variant} {} | {} | {} | {} | {} | {} | {} |",
            md_cell(&row.db),
            md_cell(&row.workload),
            md_cell(&row.nemesis),
            md_verdict(verdict_of(row)),
            md_cell(&took_effect(row, false)),
            md_cell(&reason_of(row).unwrap_or_default()),
            md_cell(&anomalies),
            md_cell(&failing),
            ops,
            link
        );
    }
    s
}

/// The table as a body fragment (for the server's `/compare`).
pub fn html_table(rows: &[Row], links: &Links) -> String {
    let mut b = String::new();
    let _ = write!(b, "<p id=\"tally\">{}.</p>", esc(&tally(rows)));
    let variants = rows.iter().any(|r| !r.variant.is_empty());
    let _ = write!(
        b,
        "<table id=\"compare\"><thead><tr><th>db</th><th>workload</th><th>nemesis</th>{}<th>verdict</th>\
<th>took effect</th><th>why</th><th>anomalies</th><th>failing checkers</th><th>ops</th><th>run</th></tr></thead><tbody>",
        if variants { "<th>variant</th>" } else { "" }
    );
    for row in rows {
        let v = verdict_of(row);
        let _ = write!(
            b,
            "<tr class=\"combo\" data-verdict=\"{}\"><td>{}</td><td>{}</td><td>{}</td>{}<td>{}</td><td>{}</td><td>{}</td>",
            esc(v),
            esc(&row.db),
            esc(&row.workload),
            esc(&row.nemesis),
            if variants {
                format!("<td>{}</td>", esc(&row.variant))
            } else {
                String::new()
            },
            verdict_badge(v),
            esc(&took_effect(row, false)),
            esc(&reason_of(row).unwrap_or_default()),
        );
        match &row.run {
            Some(r) => {
                let more = if row.runs > 1 {
                    format!(" <span class=\"muted\">(newest of {})</span>", row.runs)
                } else {
                    String::new()
                };
                let start = match links.run(r) {
                    Some(href) => format!("<a href=\"{}\">{}</a>", esc(&href), esc(&r.start)),
                    None => esc(&r.start),
                };
                let _ = write!(
                    b,
                    "<td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{start}{more}</td></tr>",
                    esc(&r.anomalies().join(", ")),
                    esc(&r.failing_checkers().join(", ")),
                    r.ops.map(|n| n.to_string()).unwrap_or_default(),
                );
            }
            None => b.push_str("<td></td><td></td><td></td><td></td></tr>"),
        }
    }
    b.push_str("</tbody></table>");
    b
}

/// The table as a standalone HTML page.
pub fn html(rows: &[Row], links: &Links) -> String {
    page(&html_table(rows, links))
}

fn page(body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>faultline compare</title>\
<style>{STYLE}</style></head><body><header><span>faultline compare</span></header><main>{body}</main></body></html>\n"
    )
}

/// The rows laid out with a row per nemesis and a column per db (and
/// workload, and `--split-by` variant): which cell holds which row.
#[derive(Debug)]
pub struct Matrix<'a> {
    /// The columns: (db, workload, variant).
    pub columns: Vec<(String, String, String)>,
    /// The nemeses, one per matrix row.
    pub nemeses: Vec<String>,
    /// `cells[i][j]`: the row of nemesis `i` in column `j`, if any.
    pub cells: Vec<Vec<Option<&'a Row>>>,
}

/// Lays `rows` out as a [`Matrix`]. Columns follow `sel.dbs`' order and
/// rows `sel.nemeses`' (what was asked for, in the order asked); anything
/// else sorted after them.
pub fn matrix<'a>(rows: &'a [Row], sel: &Selection) -> Matrix<'a> {
    fn rank(order: &[String], v: &str) -> usize {
        order.iter().position(|o| o == v).unwrap_or(order.len())
    }
    let want_n: Vec<String> = sel.nemeses.iter().map(|n| nemesis_key(n)).collect();
    let mut columns: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| (r.db.clone(), r.workload.clone(), r.variant.clone()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    columns.sort_by_key(|c| rank(&sel.dbs, &c.0));
    let mut nemeses: Vec<String> = rows
        .iter()
        .map(|r| r.nemesis.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    nemeses.sort_by_key(|n| rank(&want_n, n));
    let cells = nemeses
        .iter()
        .map(|n| {
            columns
                .iter()
                .map(|(d, w, v)| {
                    rows.iter()
                        .find(|r| (&r.nemesis, &r.db, &r.workload, &r.variant) == (n, d, w, v))
                })
                .collect()
        })
        .collect();
    Matrix {
        columns,
        nemeses,
        cells,
    }
}

/// A matrix column's heading: `etcd register` (and its variant).
fn column_label((db, workload, variant): &(String, String, String)) -> String {
    let mut s = format!("{db} {workload}");
    if !variant.is_empty() {
        let _ = write!(s, " {variant}");
    }
    s
}

/// The notes under a matrix: each distinct reason once, numbered from 1.
#[derive(Default)]
struct Notes(Vec<String>);

impl Notes {
    /// The number of `reason`'s note, added when new.
    fn number(&mut self, reason: &str) -> usize {
        match self.0.iter().position(|r| r == reason) {
            Some(i) => i + 1,
            None => {
                self.0.push(reason.to_string());
                self.0.len()
            }
        }
    }
}

/// One matrix cell's parts: whether it ran (and what took effect), the
/// verdict, and the number of its note.
struct CellText {
    ran: String,
    verdict: String,
    note: Option<usize>,
}

fn cell_text(row: Option<&Row>, notes: &mut Notes) -> CellText {
    let Some(row) = row else {
        return CellText {
            ran: String::new(),
            verdict: "not run".into(),
            note: None,
        };
    };
    let note = reason_of(row).map(|r| notes.number(&r));
    let ran = match (&row.run, took_effect(row, true)) {
        (Some(_), e) if e.is_empty() => "ran".to_string(),
        (Some(_), e) => format!("ran, {e}"),
        (None, _) => String::new(),
    };
    CellText {
        ran,
        verdict: verdict_of(row).to_string(),
        note,
    }
}

fn matrix_tally(rows: &[Row]) -> String {
    let (every, of) = effect_tally(rows);
    format!(
        "{}; of the {of} runs with faults, every requested fault took effect in {every}",
        tally(rows)
    )
}

/// The matrix as Markdown: each cell `ran, 2/2 took effect, valid`,
/// `refused (1)`, or `not run`, with the notes (refusals, why a verdict
/// is unknown or incomplete) numbered below.
pub fn matrix_markdown(m: &Matrix, rows: &[Row], links: &Links) -> String {
    let mut s = String::from("# faultline compare\n\n");
    let _ = writeln!(s, "{}.\n", matrix_tally(rows));
    let _ = write!(s, "| nemesis |");
    for c in &m.columns {
        let _ = write!(s, " {} |", md_cell(&column_label(c)));
    }
    let _ = write!(s, "\n|---|");
    for _ in &m.columns {
        s.push_str("---|");
    }
    s.push('\n');
    let mut notes = Notes::default();
    for (n, cells) in m.nemeses.iter().zip(&m.cells) {
        let _ = write!(s, "| {} |", md_cell(n));
        for row in cells {
            let t = cell_text(*row, &mut notes);
            let mut text = match row {
                Some(r) if !t.ran.is_empty() => {
                    format!("{}, {}", md_link(&t.ran, r, links), md_verdict(&t.verdict))
                }
                _ => md_verdict(&t.verdict),
            };
            if let Some(k) = t.note {
                let _ = write!(text, " ({k})");
            }
            let _ = write!(s, " {text} |");
        }
        s.push('\n');
    }
    if !notes.0.is_empty() {
        s.push('\n');
        for (i, r) in notes.0.iter().enumerate() {
            let _ = writeln!(s, "{}. {}", i + 1, md_cell(r));
        }
    }
    s
}

/// The matrix as a standalone HTML page, notes below it.
pub fn matrix_html(m: &Matrix, rows: &[Row], links: &Links) -> String {
    let mut b = String::new();
    let _ = write!(b, "<p id=\"tally\">{}.</p>", esc(&matrix_tally(rows)));
    b.push_str("<table id=\"matrix\"><thead><tr><th>nemesis</th>");
    for c in &m.columns {
        let _ = write!(b, "<th>{}</th>", esc(&column_label(c)));
    }
    b.push_str("</tr></thead><tbody>");
    let mut notes = Notes::default();
    for (n, cells) in m.nemeses.iter().zip(&m.cells) {
        let _ = write!(b, "<tr><th>{}</th>", esc(n));
        for row in cells {
            let t = cell_text(*row, &mut notes);
            let ran = match row.and_then(|r| r.run.as_ref()).and_then(|r| links.run(r)) {
                Some(href) => format!("<a href=\"{}\">{}</a> ", esc(&href), esc(&t.ran)),
                None if t.ran.is_empty() => String::new(),
                None => format!("{} ", esc(&t.ran)),
            };
            let note = t.note.map(|k| format!(" ({k})")).unwrap_or_default();
            let _ = write!(
                b,
                "<td data-verdict=\"{}\">{ran}{}{note}</td>",
                esc(&t.verdict),
                verdict_badge(&t.verdict)
            );
        }
        b.push_str("</tr>");
    }
    b.push_str("</tbody></table>");
    if !notes.0.is_empty() {
        b.push_str("<ol id=\"notes\">");
        for r in &notes.0 {
            let _ = write!(b, "<li>{}</li>", esc(r));
        }
        b.push_str("</ol>");
    }
    page(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(db: &str, wl: &str, nem: &[&str], start: &str, verdict: &str) -> RunSummary {
        RunSummary {
            id: format!("{db}-{wl}/{start}"),
            test_name: format!("{db}-{wl}"),
            start: start.into(),
            db: db.into(),
            workload: wl.into(),
            nemesis: nem.iter().map(|s| s.to_string()).collect(),
            duration_s: Some(1.0),
            ops: Some(10),
            verdict: verdict.into(),
            checkers: vec![],
            faults: vec![],
            reason: None,
            has_report: false,
            test: serde_json::json!({"isolation": start}),
        }
    }

    #[test]
    fn newest_run_per_combination_and_missing_cells_only_for_a_full_grid() {
        // Newest first, as scan returns them.
        let runs = vec![
            run("etcd", "register", &["partition"], "2", "invalid"),
            run("etcd", "register", &["partition"], "1", "valid"),
            run("postgres", "append", &[], "0", "valid"),
        ];
        let rows = gather(&runs, &[], &Selection::default());
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].db, "etcd");
        assert_eq!(rows[0].runs, 2);
        assert_eq!(rows[0].run.as_ref().map(|r| r.start.as_str()), Some("2"));
        assert_eq!(rows[1].nemesis, "none");

        let grid = Selection {
            dbs: vec!["etcd".into(), "redis".into()],
            workloads: vec!["register".into()],
            nemeses: vec!["partition".into()],
            ..Selection::default()
        };
        let rows = gather(&runs, &[], &grid);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].db, "redis");
        assert!(rows[1].run.is_none());
        assert_eq!(
            tally(&rows),
            "2 combinations, 0 valid, 1 invalid, 1 not run"
        );

        // Split by a test.json field: each value its own row.
        let split = Selection {
            split_by: vec!["isolation".into()],
            ..Selection::default()
        };
        let rows = gather(&runs, &[], &split);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].variant, "isolation=1");
        assert_eq!(rows[1].variant, "isolation=2");
        assert_eq!(
            rows[1].run.as_ref().map(|r| r.verdict.as_str()),
            Some("invalid")
        );
        assert!(markdown(&rows, &Links::Files(String::new()))
            .contains("| etcd | register | partition | isolation=2 | **invalid** |"));
    }

    /// A results directory of fixtures: run folders with test.json and
    /// results.json as `faultline run` writes them, and refusals.
    struct Fixture(std::path::PathBuf);

    impl Fixture {
        fn new(name: &str) -> Fixture {
            let root = std::env::temp_dir()
                .join(format!("faultline-compare-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&root);
            std::fs::create_dir_all(&root).unwrap();
            Fixture(root)
        }

        fn run(&self, db: &str, wl: &str, nem: &str, start: &str, results: serde_json::Value) {
            let dir = self.0.join(format!("{db}-{wl}-{nem}")).join(start);
            std::fs::create_dir_all(&dir).unwrap();
            let test = serde_json::json!({"db": db, "workload": wl, "nemesis": [nem]});
            std::fs::write(dir.join(crate::store::TEST_JSON), test.to_string()).unwrap();
            std::fs::write(dir.join(crate::store::RESULTS_JSON), results.to_string()).unwrap();
        }

        fn refuse(&self, db: &str, wl: &str, nem: &str, at: &str, reason: &str) {
            let r = Refusal {
                db: db.into(),
                workload: wl.into(),
                nemesis: nem.into(),
                at: at.into(),
                reason: reason.into(),
            };
            record_refusal(&self.0, &r).unwrap();
        }
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn coverage(name: &str, took: u64, refused: u64) -> serde_json::Value {
        serde_json::json!({name: {"requested": true, "took_effect": took, "refused": refused, "windows": []}})
    }

    #[test]
    fn the_matrix_says_per_fault_and_db_what_ran_took_effect_and_held() {
        let f = Fixture::new("matrix");
        let t1 = "20261205T180000.000Z";
        let t2 = "20261205T180100.000Z";
        f.run("etcd", "register", "partition", t1,
            serde_json::json!({"valid": "valid", "checkers": {}, "faults": coverage("partition", 2, 0)}));
        // An older refusal of a combination that later ran is history.
        f.refuse(
            "etcd",
            "register",
            "partition",
            "20261205T170000.000Z",
            "cluster in use",
        );
        f.run(
            "etcd",
            "register",
            "kill",
            t1,
            serde_json::json!({
            "valid": "unknown", "checkers": {}, "faults": coverage("kill", 0, 2),
            "unknown_reason": "requested faults never took effect: kill\u{1}\u{fffd}\n\tat a log line"}),
        );
        f.refuse(
            "etcd",
            "register",
            "clock",
            t1,
            "--nemesis clock: etcd is a static Go binary\n(use real hosts)",
        );
        // A newer refusal hides an older run.
        f.run("etcd", "register", "pause", t1,
            serde_json::json!({"valid": "valid", "checkers": {}, "faults": coverage("pause", 1, 0)}));
        f.refuse("etcd", "register", "pause", t2, "pause refused");
        f.run(
            "postgres",
            "list-append",
            "partition",
            t1,
            serde_json::json!({
            "valid": "invalid", "checkers": {"txn": {"valid": "invalid", "anomaly_types": ["G1c"]}},
            "faults": coverage("partition", 1, 0)}),
        );
        // Not postgres's default workload: not in the table.
        f.run(
            "postgres",
            "rw-register",
            "kill",
            t1,
            serde_json::json!({"valid": "valid", "checkers": {}, "faults": coverage("kill", 1, 0)}),
        );

        let runs = crate::serve::runs::scan(&f.0).unwrap();
        let refusals = read_refusals(&f.0).unwrap();
        assert_eq!(refusals.len(), 3);
        let sel = Selection {
            dbs: vec!["postgres".into(), "etcd".into()],
            nemeses: ["partition", "kill", "clock", "pause"]
                .map(String::from)
                .to_vec(),
            default_workloads: [("etcd", "register"), ("postgres", "list-append")]
                .map(|(d, w)| (d.to_string(), w.to_string()))
                .into(),
            ..Selection::default()
        };
        let rows = gather(&runs, &refusals, &sel);
        assert_eq!(rows.len(), 8);
        assert_eq!(
            tally(&rows),
            "8 combinations, 1 valid, 1 invalid, 1 unknown, 2 refused, 3 not run"
        );
        assert_eq!(effect_tally(&rows), (2, 3));
        let m = matrix(&rows, &sel);
        let md = matrix_markdown(&m, &rows, &Links::None);
        let expected = "\
| nemesis | postgres list-append | etcd register |
|---|---|---|
| partition | ran, 1/1 took effect, **invalid** | ran, 2/2 took effect, valid |
| kill | not run | ran, 0/2 took effect, **unknown** (1) |
| clock | not run | **refused** (2) |
| pause | not run | **refused** (3) |

1. requested faults never took effect: kill??
2. --nemesis clock: etcd is a static Go binary
3. pause refused
";
        assert!(md.ends_with(expected), "{md}");
        assert!(md.contains("of the 3 runs with faults, every requested fault took effect in 2."));

        // Links go to each run's results from the folder the table is in.
        let linked = matrix_markdown(&m, &rows, &Links::Files("../r/".into()));
        assert!(linked.contains(
            "| kill | not run | [ran, 0/2 took effect](../r/etcd-register-kill/20261205T180000.000Z/results.json), **unknown** (1) |"
        ), "{linked}");
        let page = matrix_html(&m, &rows, &Links::None);
        assert!(page.contains("<li>--nemesis clock: etcd is a static Go binary</li>"));

        // The list layout: what took effect and why, per combination.
        let list = markdown(&rows, &Links::None);
        assert!(list.contains(
            "| etcd | register | kill | **unknown** | kill 0/2 took effect | requested faults never took effect: kill?? |"
        ), "{list}");
        assert!(list.contains("| etcd | register | clock | **refused** |  | --nemesis clock: etcd is a static Go binary |"));
    }

    #[test]
    fn refusals_are_read_back_past_a_torn_line() {
        let f = Fixture::new("refusals");
        assert!(read_refusals(&f.0).unwrap().is_empty());
        f.refuse("etcd", "register", "clock", "1", "no clock");
        std::fs::OpenOptions::new()
            .append(true)
            .open(f.0.join(REFUSALS_JSONL))
            .and_then(|mut w| w.write_all(b"{\"db\":\"et\n"))
            .unwrap();
        f.refuse(
            "redis",
            "register",
            "membership",
            "2",
            "no members\nsecond line",
        );
        let back = read_refusals(&f.0).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[1].first_line(), "no members");
        assert_eq!(back[0].reason, "no clock");
    }

    #[test]
    fn nemesis_labels_are_sets() {
        assert_eq!(nemesis_key("partition+kill"), "kill+partition");
        assert_eq!(nemesis_key("kill,partition"), "kill+partition");
        assert_eq!(nemesis_key(""), "none");
        assert_eq!(nemesis_key("none"), "none");
    }
}
