//! The `txn` checker: Elle-style anomalies of list-append and rw-register
//! histories ([`crate::check::txn`]).

use super::{show_duration, CannotCheck, CheckContext, Checker, PrefixCheck, Text, Verdict};
use crate::check::txn::{self, Anomaly, TxnKind, TxnReport};
use crate::check::Validity;
use crate::history::{Format, History, Op};
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};

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

    /// List-append only: every edge of its dependency graph is read off
    /// evidence a longer history keeps (a read's list fixes the order of
    /// the appends it shows; values are unique, so a writer is known), so a
    /// cycle in a prefix is a cycle in the whole. rw-register infers
    /// version orders that later writes could reorder: at the end only.
    fn prefixes(&self, ctx: &CheckContext) -> PrefixCheck {
        match ctx.model.as_deref().and_then(TxnKind::parse) {
            Some(TxnKind::ListAppend) => PrefixCheck::WholePrefix,
            _ => PrefixCheck::AtEndOnly,
        }
    }

    fn flags(&self) -> &'static [&'static str] {
        &[
            "--consistency-model",
            "--sequential-keys",
            "--linearizable-keys",
            "--shrink",
            "--shrink-time",
        ]
    }

    fn check(&self, history: &History, ctx: &CheckContext) -> Result<Verdict, CannotCheck> {
        let opts = options(self, ctx)?;
        let r = txn::check(history, &opts).map_err(|e| CannotCheck(e.to_string()))?;
        verdict(r, &opts, ctx, |at| {
            at.iter()
                .filter_map(|&i| history.ops.get(i).cloned())
                .collect()
        })
    }

    fn check_path(
        &self,
        path: &Path,
        format: Option<Format>,
        ctx: &CheckContext,
    ) -> Option<(Duration, Result<Verdict, CannotCheck>)> {
        let opts = match options(self, ctx) {
            Ok(o) => o,
            Err(e) => return Some((Duration::ZERO, Err(e))),
        };
        let checked = match txn::check_path(path, format, &opts)? {
            Ok(c) => c,
            Err(e) => return Some((Duration::ZERO, Err(CannotCheck(e.to_string())))),
        };
        // The shrink's few events are read again from the file, streamed.
        let v = verdict(checked.report, &opts, ctx, |at| {
            txn::events_at(path, format, at).unwrap_or_default()
        });
        Some((checked.read, v))
    }
}

/// The checker's options from the context.
fn options(c: &TxnChecker, ctx: &CheckContext) -> Result<txn::TxnOptions, CannotCheck> {
    let model = ctx.model.as_deref().unwrap_or("no model");
    let kind = TxnKind::parse(model).ok_or_else(|| {
        CannotCheck(format!(
            "the txn checker takes {}, not {model}",
            c.models_text()
        ))
    })?;
    let mut opts = txn::TxnOptions::new(kind);
    if !ctx.consistency_models.is_empty() {
        opts.consistency_models = ctx.consistency_models.clone();
    }
    opts.time_limit = ctx.time_limit;
    opts.sequential_keys = ctx.sequential_keys;
    opts.linearizable_keys = ctx.linearizable_keys;
    Ok(opts)
}

/// The verdict on a report; `events` gives the history's events at the
/// given positions (for the cycle's sub-history).
fn verdict(
    r: TxnReport,
    opts: &txn::TxnOptions,
    ctx: &CheckContext,
    events: impl FnOnce(&[usize]) -> Vec<Op>,
) -> Result<Verdict, CannotCheck> {
    let mut details = serde_json::to_value(&r).map_err(|e| CannotCheck(e.to_string()))?;
    let mut full = lines(&r, 3);
    if r.validity == Validity::Invalid && !ctx.shrink_time.is_zero() {
        if let Some(cycle) = cycle_alone(events, &r, opts, ctx) {
            full.push(cycle.line());
            details["shrunk"] = cycle.details;
        }
    }
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
            full,
            brief: lines(&r, 1),
        },
        files: txn::explanation_files(&r),
    })
}

/// The first cycle anomaly's transactions, checked again as a history of
/// their own.
struct CycleAlone {
    /// The anomaly's name.
    name: String,
    /// How many transactions.
    txns: usize,
    /// True when the sub-history still shows the anomaly.
    confirmed: bool,
    /// The key's `shrunk` value for `--json` and `check --shrink`.
    details: serde_json::Value,
}

impl CycleAlone {
    fn line(&self) -> String {
        if self.confirmed {
            format!(
                "the cycle's {} transactions alone still show {} (--shrink writes them)",
                self.txns, self.name
            )
        } else {
            format!(
                "the cycle's {} transactions alone do not show {}: other transactions fix the version order",
                self.txns, self.name
            )
        }
    }
}

/// Re-checks the first cycle anomaly's transactions alone (within the
/// shrink time), to offer them as the smallest failing sub-history: the
/// transactional counterpart of the linearizability shrink. `None` when
/// no anomaly has a cycle, or the re-check cannot run.
fn cycle_alone(
    events: impl FnOnce(&[usize]) -> Vec<Op>,
    r: &TxnReport,
    opts: &txn::TxnOptions,
    ctx: &CheckContext,
) -> Option<CycleAlone> {
    let start = Instant::now();
    let anomaly: &Anomaly = r
        .anomaly_types
        .iter()
        .filter_map(|n| r.anomalies.get(n))
        .flatten()
        .find(|a| a.cycle.is_some())?;
    let mut at: Vec<usize> = anomaly
        .txns
        .iter()
        .flat_map(|t| std::iter::once(t.invoke_index).chain(t.complete_index))
        .collect();
    at.sort_unstable();
    at.dedup();
    let events: Vec<Op> = events(&at);
    let sub = History::new(events.clone());
    let again = txn::TxnOptions {
        time_limit: Some(ctx.shrink_time),
        ..opts.clone()
    };
    let confirmed = txn::check(&sub, &again)
        .ok()?
        .anomaly_types
        .contains(&anomaly.name);
    Some(CycleAlone {
        name: anomaly.name.clone(),
        txns: anomaly.txns.len(),
        confirmed,
        details: json!({
            "anomaly": anomaly.name,
            "ops": anomaly.txns,
            "events": events,
            "confirmed": confirmed,
            "checks": 1,
            "elapsed_ms": start.elapsed().as_secs_f64() * 1e3,
        }),
    })
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
