//! The `txn` checker: Elle-style anomalies of list-append and rw-register
//! histories ([`crate::check::txn`]).

use super::{show_duration, CannotCheck, CheckContext, Checker, Text, Verdict};
use crate::check::txn::{self, TxnKind, TxnReport};
use crate::history::History;

/// Transactional anomalies and the consistency models they rule out.
pub(super) struct TxnChecker;

impl Checker for TxnChecker {
    fn name(&self) -> &'static str {
        "txn"
    }

    fn judges(&self, model: &str) -> bool {
        TxnKind::parse(model).is_some()
    }

    fn models_text(&self) -> String {
        format!(
            "{} or {}",
            TxnKind::ListAppend.name(),
            TxnKind::RwRegister.name()
        )
    }

    fn flags(&self) -> &'static [&'static str] {
        &[
            "--consistency-model",
            "--sequential-keys",
            "--linearizable-keys",
        ]
    }

    fn check(&self, history: &History, ctx: &CheckContext) -> Result<Verdict, CannotCheck> {
        let model = ctx.model.as_deref().unwrap_or("no model");
        let kind = TxnKind::parse(model).ok_or_else(|| {
            CannotCheck(format!(
                "the txn checker takes {}, not {model}",
                self.models_text()
            ))
        })?;
        let mut opts = txn::TxnOptions::new(kind);
        if !ctx.consistency_models.is_empty() {
            opts.consistency_models = ctx.consistency_models.clone();
        }
        opts.time_limit = ctx.time_limit;
        opts.sequential_keys = ctx.sequential_keys;
        opts.linearizable_keys = ctx.linearizable_keys;
        let r = txn::check(history, &opts).map_err(|e| CannotCheck(e.to_string()))?;
        let details = serde_json::to_value(&r).map_err(|e| CannotCheck(e.to_string()))?;
        Ok(Verdict {
            validity: r.validity,
            explanation: explanation(&r),
            details,
            text: Text {
                heading: format!(
                    "{}, {} transactions, consistency model {}, {}",
                    r.workload.name(),
                    r.txns,
                    r.consistency_models.join(", "),
                    show_duration(r.elapsed)
                ),
                full: lines(&r, 3),
                brief: lines(&r, 1),
            },
            files: txn::explanation_files(&r),
        })
    }
}

/// `12 txns, anomalies G1c (serializable); not read-committed`.
fn explanation(r: &TxnReport) -> String {
    let mut line = format!(
        "{} txns, {} ({})",
        r.txns,
        if r.anomaly_types.is_empty() {
            "no anomalies".to_string()
        } else {
            format!("anomalies {}", r.anomaly_types.join(", "))
        },
        r.consistency_models.join(", ")
    );
    if !r.not.is_empty() {
        line.push_str(&format!("; not {}", r.not.join(", ")));
    }
    if let Some(why) = &r.reason {
        line.push_str(&format!("; {why}"));
    }
    line
}

/// Why unknown, the anomalies with counts, the models ruled out and still
/// possible, and `shown` explanations per anomaly.
fn lines(r: &TxnReport, shown: usize) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(reason) = &r.reason {
        out.push(format!("unknown: {reason}"));
    }
    if r.anomaly_types.is_empty() {
        return out;
    }
    let counts: Vec<String> = r
        .anomaly_types
        .iter()
        .map(|n| format!("{n} ({})", r.counts.get(n).copied().unwrap_or(0)))
        .collect();
    out.push(format!("anomalies: {}", counts.join(", ")));
    out.push(format!(
        "not {}; also not {}",
        list(&r.not),
        list(&r.also_not)
    ));
    out.push(format!("still possible: {}", list(&r.still_possible)));
    for name in &r.anomaly_types {
        for a in r.anomalies.get(name).into_iter().flatten().take(shown) {
            out.push(format!("{name}: {}", a.explanation));
        }
    }
    out
}

fn list(xs: &[String]) -> String {
    if xs.is_empty() {
        "-".to_string()
    } else {
        xs.join(", ")
    }
}
