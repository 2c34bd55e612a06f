//! The observational checkers: `stats` (outcome counts), `perf` (latency
//! quantiles) and `timeline` (what the history covers). They are always
//! valid; the report renders the plots and the timeline for every run, so
//! these give the numbers behind them in `results.json`.

use super::{CannotCheck, CheckContext, Checker, Verdict};
use crate::check::{plural, Validity};
use crate::history::{History, OpType, Outcome, Process};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Counts of outcomes, overall and per function, of client operations.
pub(super) struct Stats;

impl Checker for Stats {
    fn name(&self) -> &'static str {
        "stats"
    }

    fn check(&self, history: &History, _: &CheckContext) -> Result<Verdict, CannotCheck> {
        let mut by_f: BTreeMap<String, [u64; 3]> = BTreeMap::new();
        for op in history.ops.iter().filter(|op| op.is_client()) {
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
        let per: Map<String, Value> = by_f
            .into_iter()
            .map(|(f, c)| (f, json!({"ok": c[0], "fail": c[1], "info": c[2]})))
            .collect();
        let explanation = format!("{} ok, {} fail, {} info", total[0], total[1], total[2]);
        let details = json!({"ok": total[0], "fail": total[1], "info": total[2], "by_f": per});
        Ok(Verdict::plain(
            Validity::Valid,
            explanation,
            details,
            self.name().to_string(),
        ))
    }
}

/// Latency of successful client operations, per function: count and the
/// 50th, 95th and 99th percentiles and the maximum, in milliseconds.
pub(super) struct Perf;

impl Checker for Perf {
    fn name(&self) -> &'static str {
        "perf"
    }

    fn check(&self, history: &History, _: &CheckContext) -> Result<Verdict, CannotCheck> {
        let calls = history.calls()?;
        let time = |i: usize| history.ops.get(i).and_then(|op| op.time);
        let mut by_f: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
        let mut untimed = 0u64;
        for c in calls.iter().filter(|c| c.outcome == Outcome::Ok) {
            match (time(c.invoke), c.complete.and_then(time)) {
                (Some(a), Some(b)) => by_f.entry(&c.f).or_default().push(b.saturating_sub(a)),
                _ => untimed += 1,
            }
        }
        let mut all: Vec<u64> = by_f.values().flatten().copied().collect();
        let overall = quantiles(&mut all);
        let per: Map<String, Value> = by_f
            .into_iter()
            .map(|(f, mut ls)| (f.to_string(), quantiles(&mut ls)))
            .collect();
        let explanation = match overall.get("ms") {
            Some(ms) => format!(
                "{} timed: latency {} ms median, {} ms at the 99th percentile, {} ms at most",
                plural(all.len(), "ok operation", "ok operations"),
                ms["p50"],
                ms["p99"],
                ms["max"]
            ),
            None => format!(
                "no ok operation with times ({} without)",
                plural(untimed as usize, "operation", "operations")
            ),
        };
        let details = json!({
            "explanation": explanation,
            "latency": overall,
            "per_f": per,
            "untimed": untimed,
        });
        Ok(Verdict::plain(
            Validity::Valid,
            explanation,
            details,
            self.name().to_string(),
        ))
    }
}

/// `{"count": n, "ms": {"p50", "p95", "p99", "max"}}` of latencies in ns
/// (no `ms` when there are none).
fn quantiles(ns: &mut [u64]) -> Value {
    ns.sort_unstable();
    let Some(&max) = ns.last() else {
        return json!({"count": 0});
    };
    // Nearest rank: the smallest latency with at least q of them at or below.
    let at = |q: f64| {
        let rank = ((q * ns.len() as f64).ceil() as usize).clamp(1, ns.len());
        ms(ns[rank - 1])
    };
    json!({
        "count": ns.len(),
        "ms": {"p50": at(0.5), "p95": at(0.95), "p99": at(0.99), "max": ms(max)},
    })
}

/// Nanoseconds as milliseconds, to the microsecond.
fn ms(ns: u64) -> f64 {
    (ns as f64 / 1e3).round() / 1e3
}

/// What the history covers: events, operations, processes, nemesis events
/// and time span (the timeline page draws them).
pub(super) struct Timeline;

impl Checker for Timeline {
    fn name(&self) -> &'static str {
        "timeline"
    }

    fn check(&self, history: &History, _: &CheckContext) -> Result<Verdict, CannotCheck> {
        let clients: BTreeSet<u64> = history
            .ops
            .iter()
            .filter_map(|op| match op.process {
                Process::Client(p) => Some(p),
                Process::Nemesis => None,
            })
            .collect();
        let invocations = history
            .ops
            .iter()
            .filter(|op| op.is_client() && op.kind == OpType::Invoke)
            .count();
        let nemesis = history.ops.iter().filter(|op| !op.is_client()).count();
        let times: Vec<u64> = history.ops.iter().filter_map(|op| op.time).collect();
        let span_s = match (times.iter().min(), times.iter().max()) {
            (Some(a), Some(b)) => Some((b - a) as f64 / 1e9),
            _ => None,
        };
        let explanation = format!(
            "{} by {} and {}{}",
            plural(invocations, "operation", "operations"),
            plural(clients.len(), "process", "processes"),
            plural(nemesis, "nemesis event", "nemesis events"),
            span_s
                .map(|s| format!(" over {s:.1} s"))
                .unwrap_or_default()
        );
        let details = json!({
            "explanation": explanation,
            "events": history.ops.len(),
            "operations": invocations,
            "processes": clients.len(),
            "nemesis_events": nemesis,
            "span_s": span_s,
        });
        Ok(Verdict::plain(
            Validity::Valid,
            explanation,
            details,
            self.name().to_string(),
        ))
    }
}
