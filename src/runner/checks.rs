//! Runs a workload's checkers over a history: the verdict, the
//! `results.json` value and a line per checker.

use crate::check::linear::{self, Options};
use crate::check::set::{self, SetOptions};
use crate::check::Validity;
use crate::history::{History, OpType, Process};
use crate::model::{self, Model, ModelVisitor};
use serde_json::{json, Value};
use std::time::Duration;

struct Lin<'a> {
    history: &'a History,
    opts: &'a Options,
}
impl ModelVisitor<Result<linear::Report, linear::CheckError>> for Lin<'_> {
    fn visit<M: Model>(self, m: &M) -> Result<linear::Report, linear::CheckError> {
        linear::check(m, self.history, self.opts)
    }
}

/// What the checkers need beside the history, the model and their names.
#[derive(Clone, Copy, Debug)]
pub struct CheckSettings<'a> {
    /// `linearizable` or `serializable` reads (the set checker).
    pub read_mode: &'a str,
    /// The consistency model of the `txn` checker.
    pub consistency_model: &'a str,
    /// How long a checker may take.
    pub time_limit: Option<Duration>,
    /// Options of the classic checkers (bank, queue, ...).
    pub classic: crate::check::classic::ClassicOptions,
}

/// Runs the workload's checkers over a history: the verdict, the
/// `results.json` value, and a line per checker.
pub fn check_history(
    history: &History,
    model_name: &str,
    checkers: &[String],
    settings: &CheckSettings<'_>,
) -> (Validity, Value, Vec<String>) {
    let (read_mode, time_limit) = (settings.read_mode, settings.time_limit);
    let mut validity = Validity::Valid;
    let mut results = serde_json::Map::new();
    let mut summary = Vec::new();
    for name in checkers {
        let (v, details, line) = match name.as_str() {
            "linearizable" => {
                let opts = Options {
                    time_limit,
                    ..Options::default()
                };
                match model::by_name(
                    model_name,
                    Lin {
                        history,
                        opts: &opts,
                    },
                ) {
                    None => (
                        Validity::Unknown,
                        json!({"error": format!("unknown model {model_name}")}),
                        format!("unknown model {model_name}"),
                    ),
                    Some(Err(e)) => (
                        Validity::Unknown,
                        json!({"error": e.to_string()}),
                        format!("cannot check: {e}"),
                    ),
                    Some(Ok(r)) => {
                        let bad: Vec<_> = r.failures().collect();
                        let mut line = format!(
                            "{} ops, {} keys, {} not valid",
                            r.ops,
                            r.keys.len(),
                            bad.len()
                        );
                        if let Some(cx) = bad.iter().find_map(|k| k.counterexample.as_ref()) {
                            line.push_str(&format!(": {}", cx.explanation));
                        } else if let Some(reason) = bad.iter().find_map(|k| k.reason.as_ref()) {
                            line.push_str(&format!(": {reason}"));
                        }
                        let failures: Vec<_> = bad.into_iter().cloned().collect();
                        (
                            r.validity,
                            json!({"valid": r.validity, "model": r.model, "ops": r.ops, "keys": r.keys.len(), "elapsed_ms": r.elapsed.as_secs_f64() * 1e3, "failures": failures}),
                            line,
                        )
                    }
                }
            }
            "set" => match set::check(
                history,
                &SetOptions {
                    linearizable: read_mode == "linearizable",
                },
            ) {
                Ok(r) => {
                    let line = r.explanation.clone();
                    (
                        r.validity,
                        serde_json::to_value(&r).unwrap_or(Value::Null),
                        line,
                    )
                }
                Err(e) => (
                    Validity::Unknown,
                    json!({"error": e.to_string()}),
                    format!("cannot check: {e}"),
                ),
            },
            "txn" => check_txn(history, model_name, settings),
            classic if crate::check::classic::NAMES.contains(&classic) => {
                match crate::check::classic::check(classic, history, &settings.classic) {
                    Some(Ok(v)) => (v.validity, v.report, v.explanation),
                    Some(Err(e)) => (
                        Validity::Unknown,
                        json!({"error": e.to_string()}),
                        format!("cannot check: {e}"),
                    ),
                    None => (
                        Validity::Unknown,
                        json!({"error": format!("unknown checker {classic}")}),
                        format!("unknown checker {classic}"),
                    ),
                }
            }
            "stats" => {
                let s = stats(history);
                let line = format!(
                    "{} ok, {} fail, {} info",
                    s["ok"].as_u64().unwrap_or(0),
                    s["fail"].as_u64().unwrap_or(0),
                    s["info"].as_u64().unwrap_or(0)
                );
                (Validity::Valid, s, line)
            }
            other => (
                Validity::Unknown,
                json!({"error": format!("unknown checker {other}")}),
                format!("unknown checker {other}"),
            ),
        };
        validity = validity.merge(v);
        let mut d = details;
        if let Some(o) = d.as_object_mut() {
            o.insert("valid".into(), json!(v));
        }
        results.insert(name.clone(), d);
        summary.push(format!("{name}: {v} — {line}"));
    }
    (
        validity,
        json!({"valid": validity, "checkers": results}),
        summary,
    )
}

/// The transactional checker over a `list-append` or `rw-register` history.
fn check_txn(
    history: &History,
    model_name: &str,
    settings: &CheckSettings<'_>,
) -> (Validity, Value, String) {
    use crate::check::txn;
    let Some(w) = txn::Workload::parse(model_name) else {
        return (
            Validity::Unknown,
            json!({"error": format!("the txn checker takes list-append or rw-register, not {model_name}")}),
            format!("the txn checker takes list-append or rw-register, not {model_name}"),
        );
    };
    let mut opts = txn::Options::new(w);
    opts.consistency_models = vec![settings.consistency_model.to_string()];
    opts.time_limit = settings.time_limit;
    match txn::check(history, &opts) {
        Ok(r) => {
            let mut line = format!(
                "{} txns, {} ({})",
                r.txns,
                if r.anomaly_types.is_empty() {
                    "no anomalies".to_string()
                } else {
                    format!("anomalies {}", r.anomaly_types.join(", "))
                },
                settings.consistency_model
            );
            if !r.not.is_empty() {
                line.push_str(&format!("; not {}", r.not.join(", ")));
            }
            if let Some(why) = &r.reason {
                line.push_str(&format!("; {why}"));
            }
            (
                r.validity,
                serde_json::to_value(&r).unwrap_or(Value::Null),
                line,
            )
        }
        Err(e) => (
            Validity::Unknown,
            json!({"error": e.to_string()}),
            format!("cannot check: {e}"),
        ),
    }
}

/// Counts of outcomes, overall and per function, of client operations.
fn stats(history: &History) -> Value {
    let mut by_f: std::collections::BTreeMap<String, [u64; 3]> = Default::default();
    for op in &history.ops {
        if !matches!(op.process, Process::Client(_)) {
            continue;
        }
        let slot = match op.kind {
            OpType::Ok => 0,
            OpType::Fail => 1,
            OpType::Info => 2,
            OpType::Invoke => continue,
        };
        by_f.entry(op.f.clone()).or_default()[slot] += 1;
    }
    let total = by_f
        .values()
        .fold([0u64; 3], |a, c| [a[0] + c[0], a[1] + c[1], a[2] + c[2]]);
    let per: serde_json::Map<String, Value> = by_f
        .into_iter()
        .map(|(f, c)| (f, json!({"ok": c[0], "fail": c[1], "info": c[2]})))
        .collect();
    json!({"ok": total[0], "fail": total[1], "info": total[2], "by_f": per})
}
