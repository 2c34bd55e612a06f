//! `faultline compare`: one table over dbs × workloads × nemeses, from the
//! newest stored run of each combination — which held, which anomalies and
//! failing checkers each showed, with a link to each run.
//!
//! Which combinations are rows: the values given for each axis, or every
//! value stored when an axis is not given. A combination with no stored run
//! is listed (as `not run`) only when all three axes were given — that grid
//! is what was asked for; otherwise only stored combinations are rows.

use super::pages::{esc, url_path, verdict_badge, STYLE};
use super::runs::RunSummary;
use std::collections::BTreeSet;
use std::fmt::Write as _;

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

/// The rows for `sel` over `runs` (newest first, as [`super::runs::scan`]
/// returns them), sorted by db, workload, nemesis.
pub fn gather(runs: &[RunSummary], sel: &Selection) -> Vec<Row> {
    let want_n: Vec<String> = sel.nemeses.iter().map(|n| nemesis_key(n)).collect();
    let keep = |axis: &[String], v: &str| axis.is_empty() || axis.iter().any(|a| a == v);
    let mut keys: BTreeSet<Key> = runs
        .iter()
        .map(|r| key_of(r, &sel.split_by))
        .filter(|(d, w, n, _)| keep(&sel.dbs, d) && keep(&sel.workloads, w) && keep(&want_n, n))
        .collect();
    if !sel.dbs.is_empty() && !sel.workloads.is_empty() && !want_n.is_empty() {
        for d in &sel.dbs {
            for w in &sel.workloads {
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
            let (db, workload, nemesis, variant) = key;
            Row {
                run: matching.first().map(|r| (*r).clone()),
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
}

impl Links {
    fn run(&self, r: &RunSummary) -> String {
        match self {
            Links::Files(prefix) => {
                let page = if r.has_report {
                    "report.html"
                } else {
                    "results.json"
                };
                format!("{prefix}{}/{page}", url_path(&r.id))
            }
            Links::Server(base) => format!("{base}/runs/{}/", url_path(&r.id)),
        }
    }
}

fn verdict_of(row: &Row) -> &str {
    row.run
        .as_ref()
        .map(|r| r.verdict.as_str())
        .unwrap_or("not run")
}

/// How many rows held, failed, and so on, as one sentence.
pub fn tally(rows: &[Row]) -> String {
    let count = |v: &str| rows.iter().filter(|r| verdict_of(r) == v).count();
    let mut parts = vec![
        format!("{} combinations", rows.len()),
        format!("{} valid", count("valid")),
        format!("{} invalid", count("invalid")),
    ];
    for v in ["unknown", "incomplete", "not run"] {
        let n = count(v);
        if n > 0 {
            parts.push(format!("{n} {v}"));
        }
    }
    parts.join(", ")
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
        "| db | workload | nemesis |{vh} verdict | anomalies | failing checkers | ops | run |"
    );
    let _ = writeln!(s, "|---|---|---|{vs}---|---|---|---:|---|");
    let cell = |t: &str| t.replace('|', "\\|");
    for row in rows {
        let (anomalies, failing, ops, link) = match &row.run {
            Some(r) => (
                r.anomalies().join(", "),
                r.failing_checkers().join(", "),
                r.ops.map(|n| n.to_string()).unwrap_or_default(),
                format!("[{}]({})", cell(&r.start), links.run(r)),
            ),
            None => Default::default(),
        };
        let v = verdict_of(row);
        let verdict = if v == "valid" || v == "not run" {
            v.to_string()
        } else {
            format!("**{v}**")
        };
        let variant = if variants {
            format!(" {} |", cell(&row.variant))
        } else {
            String::new()
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} |{variant} {} | {} | {} | {} | {} |",
            cell(&row.db),
            cell(&row.workload),
            cell(&row.nemesis),
            verdict,
            cell(&anomalies),
            cell(&failing),
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
<th>anomalies</th><th>failing checkers</th><th>ops</th><th>run</th></tr></thead><tbody>",
        if variants { "<th>variant</th>" } else { "" }
    );
    for row in rows {
        let v = verdict_of(row);
        let _ = write!(
            b,
            "<tr class=\"combo\" data-verdict=\"{}\"><td>{}</td><td>{}</td><td>{}</td>{}<td>{}</td>",
            esc(v),
            esc(&row.db),
            esc(&row.workload),
            esc(&row.nemesis),
            if variants {
                format!("<td>{}</td>", esc(&row.variant))
            } else {
                String::new()
            },
            verdict_badge(v)
        );
        match &row.run {
            Some(r) => {
                let more = if row.runs > 1 {
                    format!(" <span class=\"muted\">(newest of {})</span>", row.runs)
                } else {
                    String::new()
                };
                let _ = write!(
                    b,
                    "<td>{}</td><td>{}</td><td class=\"num\">{}</td><td><a href=\"{}\">{}</a>{more}</td></tr>",
                    esc(&r.anomalies().join(", ")),
                    esc(&r.failing_checkers().join(", ")),
                    r.ops.map(|n| n.to_string()).unwrap_or_default(),
                    esc(&links.run(r)),
                    esc(&r.start),
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
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>faultline compare</title>\
<style>{STYLE}</style></head><body><header><span>faultline compare</span></header><main>{}</main></body></html>\n",
        html_table(rows, links)
    )
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
        let rows = gather(&runs, &Selection::default());
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].db, "etcd");
        assert_eq!(rows[0].runs, 2);
        assert_eq!(rows[0].run.as_ref().map(|r| r.start.as_str()), Some("2"));
        assert_eq!(rows[1].nemesis, "none");

        let grid = Selection {
            dbs: vec!["etcd".into(), "redis".into()],
            workloads: vec!["register".into()],
            nemeses: vec!["partition".into()],
            split_by: vec![],
        };
        let rows = gather(&runs, &grid);
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
        let rows = gather(&runs, &split);
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

    #[test]
    fn nemesis_labels_are_sets() {
        assert_eq!(nemesis_key("partition+kill"), "kill+partition");
        assert_eq!(nemesis_key("kill,partition"), "kill+partition");
        assert_eq!(nemesis_key(""), "none");
        assert_eq!(nemesis_key("none"), "none");
    }
}
