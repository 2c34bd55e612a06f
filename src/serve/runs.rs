//! The stored runs of a results directory, summarized for listing and
//! comparing: what was tested (test.json), what the checkers said
//! (results.json) and how much happened (history.jsonl).

use crate::store::{HISTORY_JSONL, LATEST, RESULTS_JSON, TEST_JSON};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

/// What one checker said about a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckerSummary {
    /// The checker's name (`linearizable`, `txn`, `set`, `stats`, ...).
    pub name: String,
    /// `valid`, `invalid` or `unknown`.
    pub valid: String,
    /// The anomalies it found, by name (txn anomaly types, set classes
    /// such as `lost`, `nonlinearizable` keys); empty when none.
    pub anomalies: Vec<String>,
}

/// What one requested fault did in a run (results.json's `faults.<name>`,
/// written by `nemesis::coverage`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultSummary {
    /// The name it was requested by (`partition`, `partition-one`, ...).
    pub name: String,
    /// Start operations that took effect.
    pub took_effect: u64,
    /// Start operations refused or failed.
    pub refused: u64,
}

impl FaultSummary {
    /// `partition 2/2 took effect`: of the start operations tried, how many
    /// took effect.
    pub fn brief(&self) -> String {
        format!(
            "{} {}/{} took effect",
            self.name,
            self.took_effect,
            self.took_effect + self.refused
        )
    }
}

/// One stored run, summarized.
#[derive(Clone, Debug, PartialEq)]
pub struct RunSummary {
    /// `<test-name>/<start>`: the run's path below the results directory,
    /// and its id in URLs.
    pub id: String,
    /// The test name (the parent folder).
    pub test_name: String,
    /// The start time as in the folder name (sorts by time).
    pub start: String,
    /// `db` of test.json (empty when missing).
    pub db: String,
    /// `workload` of test.json.
    pub workload: String,
    /// `nemesis` of test.json (empty: no faults).
    pub nemesis: Vec<String>,
    /// Seconds from the first to the last event of the history.
    pub duration_s: Option<f64>,
    /// Client operations invoked.
    pub ops: Option<u64>,
    /// The overall verdict: `valid`, `invalid`, `unknown`, or `incomplete`
    /// when there is no results.json (a run that is going on, or died).
    pub verdict: String,
    /// Per checker, in results.json's order.
    pub checkers: Vec<CheckerSummary>,
    /// Per requested fault, what took effect (empty when results.json has
    /// no fault coverage: no faults, or a run that ended before its checks).
    pub faults: Vec<FaultSummary>,
    /// Why the verdict is unknown or incomplete (results.json's
    /// `unknown_reason`, `incomplete_reason`), when it says.
    pub reason: Option<String>,
    /// Whether the run folder has a `report.html`.
    pub has_report: bool,
    /// test.json as it is (Null when missing), for fields such as
    /// `isolation` that `faultline compare --split-by` groups on.
    pub test: Value,
}

impl RunSummary {
    /// The nemeses joined with `+`, or `none`.
    pub fn nemesis_label(&self) -> String {
        if self.nemesis.is_empty() {
            "none".to_string()
        } else {
            self.nemesis.join("+")
        }
    }

    /// Every checker that did not say valid, as `name (verdict)`.
    pub fn failing_checkers(&self) -> Vec<String> {
        self.checkers
            .iter()
            .filter(|c| c.valid != "valid")
            .map(|c| format!("{} ({})", c.name, c.valid))
            .collect()
    }

    /// test.json's `field` as text: strings as they are, other values as
    /// JSON, `-` when missing or null.
    pub fn field(&self, field: &str) -> String {
        match &self.test[field] {
            Value::Null => "-".into(),
            Value::String(s) => s.clone(),
            v => v.to_string(),
        }
    }

    /// The anomalies of every checker, deduplicated, in order.
    pub fn anomalies(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for a in self.checkers.iter().flat_map(|c| &c.anomalies) {
            if !out.contains(a) {
                out.push(a.clone());
            }
        }
        out
    }
}

/// Every run below `root` (`<root>/<test>/<start>/` folders holding a
/// test.json or a history.jsonl), newest first. `latest` links and dot
/// folders are skipped; unreadable runs still appear (with what could be
/// read), so a broken run is visible rather than silently missing.
pub fn scan(root: &Path) -> std::io::Result<Vec<RunSummary>> {
    let mut runs: Vec<RunSummary> = run_dirs(root)?
        .into_iter()
        .map(|(dir, test, start)| summarize(&dir, &test, &start))
        .collect();
    sort_newest_first(&mut runs);
    Ok(runs)
}

/// The run folders below `root`: (folder, test name, start).
pub fn run_dirs(root: &Path) -> std::io::Result<Vec<(PathBuf, String, String)>> {
    let mut out = Vec::new();
    for test in sorted_dirs(root)? {
        let Some(test_name) = plain_name(&test) else {
            continue;
        };
        let Ok(starts) = sorted_dirs(&test) else {
            continue;
        };
        for run in starts {
            let Some(start) = plain_name(&run) else {
                continue;
            };
            if run.join(TEST_JSON).is_file() || run.join(HISTORY_JSONL).is_file() {
                out.push((run, test_name.clone(), start));
            }
        }
    }
    Ok(out)
}

/// Newest start first; ties by id.
pub fn sort_newest_first(runs: &mut [RunSummary]) {
    runs.sort_by(|a, b| b.start.cmp(&a.start).then_with(|| a.id.cmp(&b.id)));
}

/// A summary as JSON (for `/runs.json`).
pub fn to_json(r: &RunSummary) -> Value {
    serde_json::json!({
        "id": r.id, "test": r.test_name, "start": r.start, "db": r.db,
        "workload": r.workload, "nemesis": r.nemesis, "duration_s": r.duration_s,
        "ops": r.ops, "verdict": r.verdict, "has_report": r.has_report,
        "checkers": r.checkers.iter().map(|c| serde_json::json!({
            "name": c.name, "valid": c.valid, "anomalies": c.anomalies,
        })).collect::<Vec<_>>(),
    })
}

/// Real sub-folders of `dir` (not symbolic links), sorted by name.
fn sorted_dirs(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let Ok(t) = e.file_type() else { continue };
        if t.is_dir() && !t.is_symlink() {
            out.push(e.path());
        }
    }
    out.sort();
    Ok(out)
}

/// The folder's name when it can name a run: UTF-8, not hidden, not `latest`.
fn plain_name(p: &Path) -> Option<String> {
    let n = p.file_name()?.to_str()?;
    (!n.starts_with('.') && n != LATEST).then(|| n.to_string())
}

fn read_json(p: &Path) -> Option<Value> {
    let text = std::fs::read_to_string(p).ok()?;
    serde_json::from_str(&text).ok()
}

/// Summarizes the run in `dir` (named `<test_name>/<start>`).
pub fn summarize(dir: &Path, test_name: &str, start: &str) -> RunSummary {
    let test = read_json(&dir.join(TEST_JSON)).unwrap_or(Value::Null);
    let results = read_json(&dir.join(RESULTS_JSON));
    let s = |k: &str| test[k].as_str().unwrap_or("").to_string();
    let (db, workload) = (s("db"), s("workload"));
    let nemesis = match &test["nemesis"] {
        Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str().map(String::from))
            .collect(),
        Value::String(x) if !x.is_empty() && x != "none" => vec![x.clone()],
        _ => Vec::new(),
    };
    let (duration_s, ops) = history_figures(&dir.join(HISTORY_JSONL));
    let (verdict, checkers, faults) = match &results {
        Some(r) => (
            r["valid"].as_str().unwrap_or("unknown").to_string(),
            checker_summaries(r),
            fault_summaries(r),
        ),
        None => ("incomplete".to_string(), Vec::new(), Vec::new()),
    };
    // A run that ended before its checks has no results.json: its end
    // marker in test.json may say why.
    let reason = match (&results, verdict.as_str()) {
        (Some(r), "incomplete") => r["incomplete_reason"].as_str().map(String::from),
        (Some(r), "unknown") => r["unknown_reason"].as_str().map(String::from),
        (None, _) => test[crate::store::END_MARKER]["reason"]
            .as_str()
            .map(String::from),
        _ => None,
    };
    RunSummary {
        id: format!("{test_name}/{start}"),
        test_name: test_name.to_string(),
        start: start.to_string(),
        db,
        workload,
        nemesis,
        duration_s,
        ops,
        verdict,
        checkers,
        faults,
        reason,
        has_report: dir.join("report.html").is_file(),
        test,
    }
}

/// Per checker of a results.json: its verdict and anomaly names.
pub fn checker_summaries(results: &Value) -> Vec<CheckerSummary> {
    let Some(map) = results["checkers"].as_object() else {
        return Vec::new();
    };
    map.iter()
        .map(|(name, d)| CheckerSummary {
            name: name.clone(),
            valid: d["valid"].as_str().unwrap_or("unknown").to_string(),
            anomalies: anomalies_of(name, d),
        })
        .collect()
}

/// Per requested fault of a results.json (its `faults` object), in its
/// order; entries without counts count as zero.
pub fn fault_summaries(results: &Value) -> Vec<FaultSummary> {
    let Some(map) = results["faults"].as_object() else {
        return Vec::new();
    };
    map.iter()
        .map(|(name, c)| FaultSummary {
            name: name.clone(),
            took_effect: c["took_effect"].as_u64().unwrap_or(0),
            refused: c["refused"].as_u64().unwrap_or(0),
        })
        .collect()
}

/// The anomaly names in one checker's details: the txn checker's
/// `anomaly_types`; the set checker's non-empty `lost`, `unexpected` and
/// `stale` classes; `nonlinearizable` for a linearizability failure; and
/// `error` when the checker could not run.
fn anomalies_of(name: &str, d: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(types) = d["anomaly_types"].as_array() {
        out.extend(types.iter().filter_map(|t| t.as_str().map(String::from)));
    }
    for class in ["lost", "unexpected", "stale"] {
        let c = &d[class];
        let n = c["count"]
            .as_u64()
            .or_else(|| c.as_array().map(|a| a.len() as u64))
            .unwrap_or(0);
        if n > 0 {
            out.push(class.to_string());
        }
    }
    if name == "linearizable" && d["valid"] == "invalid" {
        out.push("nonlinearizable".to_string());
    }
    if d.get("error").is_some() {
        out.push("error".to_string());
    }
    out
}

/// Seconds between the first and last event, and client invocations,
/// from one pass over the lines (not a full parse: the index must stay fast
/// over many large histories).
fn history_figures(path: &Path) -> (Option<f64>, Option<u64>) {
    let Ok(f) = std::fs::File::open(path) else {
        return (None, None);
    };
    let mut ops = 0u64;
    let (mut first, mut last) = (None, None);
    for line in BufReader::new(f).lines() {
        let Ok(line) = line else { break };
        if line.contains("\"type\":\"invoke\"") && !line.contains("\"process\":\"nemesis\"") {
            ops += 1;
        }
        if let Some(t) = time_of(&line) {
            first.get_or_insert(t);
            last = Some(t);
        }
    }
    let duration = match (first, last) {
        (Some(a), Some(b)) if b >= a => Some((b - a) as f64 / 1e9),
        _ => None,
    };
    (duration, Some(ops))
}

/// The `"time":N` field of a history line.
fn time_of(line: &str) -> Option<u64> {
    let at = line.find("\"time\":")? + 7;
    let digits: String = line[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn anomalies_come_from_each_checker_kind() {
        let r = json!({"valid": "invalid", "checkers": {
            "txn": {"valid": "invalid", "anomaly_types": ["G-single", "G1c"]},
            "set": {"valid": "invalid", "lost": {"count": 2}, "unexpected": {"count": 0}, "stale": {"count": 1}},
            "linearizable": {"valid": "invalid"},
            "stats": {"valid": "valid"}
        }});
        let c = checker_summaries(&r);
        let by = |n: &str| c.iter().find(|x| x.name == n).map(|x| x.anomalies.clone());
        assert_eq!(by("txn"), Some(vec!["G-single".into(), "G1c".into()]));
        assert_eq!(by("set"), Some(vec!["lost".into(), "stale".into()]));
        assert_eq!(by("linearizable"), Some(vec!["nonlinearizable".into()]));
        assert_eq!(by("stats"), Some(vec![]));
    }

    #[test]
    fn fault_coverage_and_the_reason_come_from_results_json() {
        let dir = std::env::temp_dir().join(format!("faultline-runs-{}", std::process::id()));
        let run = dir.join("t").join("20261205T000000.000Z");
        std::fs::create_dir_all(&run).unwrap();
        std::fs::write(
            run.join(RESULTS_JSON),
            json!({"valid": "unknown", "checkers": {},
            "unknown_reason": "requested faults never took effect: kill",
            "faults": {
                "kill": {"requested": true, "took_effect": 0, "refused": 2, "windows": []},
                "partition": {"requested": true, "took_effect": 2, "refused": 0, "windows": []}
            }})
            .to_string(),
        )
        .unwrap();
        let s = summarize(&run, "t", "20261205T000000.000Z");
        // A run that ended before its checks: the end marker says why.
        let cut = dir.join("t").join("20261205T000001.000Z");
        std::fs::create_dir_all(&cut).unwrap();
        std::fs::write(
            cut.join(TEST_JSON),
            json!({"db": "etcd", "end": {"complete": false, "reason": "setting up etcd failed"}})
                .to_string(),
        )
        .unwrap();
        let c = summarize(&cut, "t", "20261205T000001.000Z");
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(c.verdict, "incomplete");
        assert_eq!(c.reason.as_deref(), Some("setting up etcd failed"));
        assert_eq!(s.verdict, "unknown");
        assert_eq!(
            s.reason.as_deref(),
            Some("requested faults never took effect: kill")
        );
        let briefs: Vec<String> = s.faults.iter().map(FaultSummary::brief).collect();
        assert_eq!(
            briefs,
            ["kill 0/2 took effect", "partition 2/2 took effect"]
        );
    }

    #[test]
    fn time_is_read_from_a_line() {
        assert_eq!(
            time_of(r#"{"index":3,"time":2300,"process":0}"#),
            Some(2300)
        );
        assert_eq!(time_of(r#"{"index":3,"process":0}"#), None);
    }
}
