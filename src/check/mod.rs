//! Checkers: functions from a history to a verdict.
//!
//! [`registry`] is the one door: the [`registry::Checker`] trait, the
//! context and verdict every checker shares, and the registry of every
//! checker by name — the runner, `faultline run --analyze` and
//! `faultline check` reach the checkers through it alone.
//! [`linear`] decides linearizability against a [`crate::model::Model`];
//! [`set`] finds lost, unexpected and stale elements of a set;
//! [`txn`] finds transactional anomalies (Elle-style) and the consistency
//! models they rule out.
//! Jepsen's classic workload checkers, one small file each: [`bank`]
//! (totals and negative balances), [`counter`] (reads within bounds),
//! [`unique_ids`] (duplicates), [`queue`] (total-queue: lost, duplicated,
//! unexpected, recovered), [`long_fork`] (reads that saw two writes in
//! opposite orders) and [`lock_set`] (holds of a lock that certainly
//! overlapped, adds to the set it guards that were lost); [`classic`]
//! makes them checkers of the registry.
//! [`known`] holds per-key verdicts given earlier on the same events (the
//! online checker's), for the final check to take instead of judging a
//! key again.
//! Every checker answers with a [`Validity`]: `Unknown` is an honest answer
//! when a budget ran out, never a guess.

pub mod bank;
pub mod classic;
pub mod counter;
pub mod known;
pub mod linear;
pub mod lock_set;
pub mod long_fork;
pub mod queue;
pub mod registry;
pub mod set;
pub mod txn;
pub mod unique_ids;

use crate::history::{Call, Outcome, Process};
use serde::Serialize;
use serde_json::Value;

/// A checker's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Validity {
    /// The history satisfies the property.
    Valid,
    /// The history breaks the property; the checker says how.
    Invalid,
    /// The checker could not decide (a time or memory budget ran out); it says why.
    Unknown,
    /// The run did not run to its end (interrupted by a signal, a failed
    /// set-up, a killed controller): what it recorded cannot vouch for the
    /// system, though an anomaly found in it still counts.
    Incomplete,
}

impl Validity {
    /// Combines the answers of parts: invalid if any part is (an anomaly
    /// found stays found), else incomplete if any part is, else unknown if
    /// any part is, else valid.
    pub fn merge(self, other: Validity) -> Validity {
        use Validity::*;
        match (self, other) {
            (Invalid, _) | (_, Invalid) => Invalid,
            (Incomplete, _) | (_, Incomplete) => Incomplete,
            (Unknown, _) | (_, Unknown) => Unknown,
            _ => Valid,
        }
    }

    /// `valid`, `invalid`, `unknown` or `incomplete`.
    pub fn as_str(self) -> &'static str {
        match self {
            Validity::Valid => "valid",
            Validity::Invalid => "invalid",
            Validity::Unknown => "unknown",
            Validity::Incomplete => "incomplete",
        }
    }
}

impl std::fmt::Display for Validity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A call as a checker names it in a report: who, what, where in the
/// history, with what argument and result.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CallRef {
    /// The process that performed it.
    pub process: Process,
    /// The function.
    pub f: String,
    /// The key, for keyed histories.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<Value>,
    /// Index of the invocation event.
    pub invoke: usize,
    /// Index of the completion event (`None`: it never completed).
    pub complete: Option<usize>,
    /// How it ended.
    pub outcome: Outcome,
    /// The argument.
    pub input: Value,
    /// The result.
    pub output: Value,
}

impl CallRef {
    /// The reference to `c`.
    pub fn of(c: &Call) -> CallRef {
        CallRef {
            process: c.process,
            f: c.f.clone(),
            key: c.key.clone(),
            invoke: c.invoke,
            complete: c.complete,
            outcome: c.outcome,
            input: c.input.clone(),
            output: c.output.clone(),
        }
    }

    /// `process 3's read (events 10 to 14)`, for sentences.
    pub fn describe(&self) -> String {
        let key = self
            .key
            .as_ref()
            .map(|k| format!(" of key {k}"))
            .unwrap_or_default();
        let at = match self.complete {
            Some(c) => format!("events {} to {c}", self.invoke),
            None => format!("event {}, never completed", self.invoke),
        };
        format!("process {}'s {}{key} ({at})", self.process, self.f)
    }
}

/// The calls of a history grouped by key (`None` first), each group in
/// invocation order — for checkers that judge each key on its own.
pub(crate) fn by_key(calls: &[Call]) -> Vec<(Option<Value>, Vec<&Call>)> {
    let mut groups: std::collections::BTreeMap<Option<String>, (Option<Value>, Vec<&Call>)> =
        Default::default();
    for c in calls {
        groups
            .entry(c.key.as_ref().map(Value::to_string))
            .or_insert_with(|| (c.key.clone(), Vec::new()))
            .1
            .push(c);
    }
    groups.into_values().collect()
}

/// Up to `n` items of `xs` as `a, b, c`.
pub(crate) fn show<T: std::fmt::Display>(xs: impl IntoIterator<Item = T>, n: usize) -> String {
    xs.into_iter()
        .take(n)
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `1 thing` / `2 things`.
pub(crate) fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}
