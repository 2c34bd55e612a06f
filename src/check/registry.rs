//! The one door to the checkers: the [`Checker`] trait, what a checker is
//! given beside the history ([`CheckContext`]), what it answers ([`Verdict`]),
//! and the registry of every checker by name ([`CHECKERS`]).
//!
//! The runner, `faultline run --analyze` and `faultline check` all reach
//! the checkers through here ([`by_name`], [`for_model`], [`check_all`]);
//! no other module matches a checker's name. The adapters that wrap each
//! checker live in the submodules and in [`super::classic`].

mod guess;
mod linearizable;
mod set;
mod stats;
mod txn;

pub use guess::{guess, Guess};

use super::classic::{self, ClassicOptions};
use super::known::KnownKeys;
use super::Validity;
use crate::history::{History, HistoryError};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// A checker: a name, and a verdict on a history.
pub trait Checker: Sync {
    /// The name workloads and `results.json` use (`linearizable`, `txn`, ...).
    fn name(&self) -> &'static str;

    /// Whether `faultline check --model MODEL` runs this checker for
    /// `model` (the classic checkers take their own name; `txn` takes the
    /// transactional models; `linearizable` takes the rest).
    fn judges(&self, model: &str) -> bool {
        let _ = model;
        false
    }

    /// The models [`Checker::judges`] accepts, for messages.
    fn models_text(&self) -> String {
        self.name().to_string()
    }

    /// The `faultline check` flags only this checker reads (e.g.
    /// `--total`), so the CLI can refuse them for the others.
    fn flags(&self) -> &'static [&'static str] {
        &[]
    }

    /// Checks `history`. `Err` when the history cannot be checked at all
    /// (it breaks the rules of histories, or the checker cannot read it).
    fn check(&self, history: &History, ctx: &CheckContext) -> Result<Verdict, CannotCheck>;

    /// Checks the history file at `path` without reading it whole into a
    /// [`History`], when this checker can (the transactional checker
    /// streams it into a compact form), with the same verdict as
    /// [`Checker::check`] on the file read whole; with the time spent
    /// reading. `None`: read the file and call [`Checker::check`].
    fn check_path(
        &self,
        path: &std::path::Path,
        format: Option<crate::history::Format>,
        ctx: &CheckContext,
    ) -> Option<(std::time::Duration, Result<Verdict, CannotCheck>)> {
        let _ = (path, format, ctx);
        None
    }

    /// Whether an invalid verdict on a prefix of a history (the operations
    /// still in flight at the cut treated as crashed) proves the whole
    /// history invalid, and so may be given while the run goes on
    /// (`runner/online.rs`). The default: no, checked at the end only.
    fn prefixes(&self, ctx: &CheckContext) -> PrefixCheck {
        let _ = ctx;
        PrefixCheck::AtEndOnly
    }
}

/// What a checker's verdict on a prefix of a history proves
/// ([`Checker::prefixes`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrefixCheck {
    /// Nothing: a prefix may look invalid while the whole is valid (a set
    /// without its final read, a bank between a transfer's halves).
    AtEndOnly,
    /// Invalid on one key's prefix proves the whole invalid; each key is
    /// judged on its own, so a key no longer in use is judged for good.
    PerKey,
    /// Invalid on a prefix of the whole history proves the whole invalid.
    WholePrefix,
}

/// What checkers need beside the history.
#[derive(Clone, Debug)]
pub struct CheckContext {
    /// The workload's model (`cas-register`, `list-append`, `bank`, ...);
    /// `None` lets the linearizability checker guess it from the functions.
    pub model: Option<String>,
    /// The system promises linearizable reads: the set checker then holds
    /// a read to every element added before it began.
    pub linearizable_reads: bool,
    /// The consistency models the `txn` checker holds the history to
    /// (empty: strict serializable).
    pub consistency_models: Vec<String>,
    /// How long a checker may take (then: unknown).
    pub time_limit: Option<Duration>,
    /// Bytes the linearizability search's memo tables may take (then:
    /// unknown). The caller reads the machine's memory; the core never does.
    pub memory_limit: usize,
    /// Reads this process's resident bytes; when given, `memory_limit`
    /// bounds the whole process (see
    /// [`LinearOptions::resident_memory`](crate::check::linear::LinearOptions::resident_memory)).
    pub resident_memory: Option<fn() -> Option<usize>>,
    /// Linearizability: check each key on its own.
    pub split_by_key: bool,
    /// Linearizability: stop the other keys when one is invalid.
    pub stop_at_first_invalid: bool,
    /// Linearizability: how long to shrink each invalid key to a minimal
    /// failing sub-history (zero: not at all).
    pub shrink_time: Duration,
    /// rw-register: order each key's writes by process.
    pub sequential_keys: bool,
    /// rw-register: order each key's writes by real time.
    pub linearizable_keys: bool,
    /// Options of the classic checkers (bank, queue).
    pub classic: ClassicOptions,
    /// Per-key verdicts given earlier on the same events, by checker name
    /// (the online checker's, `runner/online.rs`): a per-key checker takes
    /// a key's valid verdict when the key's events are exactly those it was
    /// given on ([`crate::check::known`]). Empty: every key is judged.
    pub known: BTreeMap<String, Arc<KnownKeys>>,
}

impl CheckContext {
    /// The defaults for a history of `model`: linearizable reads, strict
    /// serializability, no time limit, `memory_limit` bytes, split by key.
    pub fn new(model: Option<String>, memory_limit: usize) -> CheckContext {
        CheckContext {
            model,
            linearizable_reads: true,
            consistency_models: Vec::new(),
            time_limit: None,
            memory_limit,
            resident_memory: None,
            split_by_key: true,
            stop_at_first_invalid: true,
            shrink_time: crate::check::linear::DEFAULT_SHRINK_TIME,
            sequential_keys: false,
            linearizable_keys: false,
            classic: ClassicOptions::default(),
            known: BTreeMap::new(),
        }
    }
}

/// A history a checker cannot check, in words.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CannotCheck(pub String);

impl From<HistoryError> for CannotCheck {
    fn from(e: HistoryError) -> Self {
        CannotCheck(e.to_string())
    }
}

/// A checker's answer.
#[derive(Clone, Debug)]
pub struct Verdict {
    /// Valid, invalid or unknown.
    pub validity: Validity,
    /// One line: why, or what was covered.
    pub explanation: String,
    /// The checker's whole report, as `results.json` keeps it under
    /// `checkers.<name>` (the caller adds `valid`).
    pub details: Value,
    /// The verdict for people, as `faultline check` prints it.
    pub text: Text,
    /// Explanation files the checker offers (`<anomaly>.txt`, cycle graphs
    /// as dot), written by `report::write_explanations` when asked for.
    pub files: Vec<ExplanationFile>,
}

/// A verdict for people: a heading and the lines under it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Text {
    /// What was checked, e.g. `cas-register, 4 ops, 1 key, 0.12 ms`.
    pub heading: String,
    /// The findings in full (one file checked).
    pub full: Vec<String>,
    /// The findings in short (one of several files).
    pub brief: Vec<String>,
}

/// A file a checker offers to explain its verdict; pure content, written
/// elsewhere.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExplanationFile {
    /// Its path relative to the output directory, e.g. `G1c/0.dot`.
    pub path: String,
    /// Its content.
    pub text: String,
}

impl Verdict {
    /// A verdict whose text is its explanation (shown in short only when
    /// not valid).
    pub fn plain(validity: Validity, explanation: String, details: Value, heading: String) -> Self {
        let brief = if validity == Validity::Valid {
            Vec::new()
        } else {
            vec![explanation.clone()]
        };
        Verdict {
            validity,
            text: Text {
                heading,
                full: vec![explanation.clone()],
                brief,
            },
            explanation,
            details,
            files: Vec::new(),
        }
    }
}

/// Every checker, by name: the one registry.
pub static CHECKERS: &[&dyn Checker] = &[
    &linearizable::Linearizable,
    &set::SetChecker,
    &txn::TxnChecker,
    &classic::BANK,
    &classic::COUNTER,
    &classic::UNIQUE_IDS,
    &classic::QUEUE,
    &classic::LONG_FORK,
    &classic::LOCK_SET,
    &stats::Stats,
    &stats::Perf,
    &stats::Timeline,
];

/// The checker named `name`.
pub fn by_name(name: &str) -> Option<&'static dyn Checker> {
    CHECKERS.iter().copied().find(|c| c.name() == name)
}

/// The names of every checker, in registry order.
pub fn names() -> Vec<&'static str> {
    CHECKERS.iter().map(|c| c.name()).collect()
}

/// The checker of histories whose model no other checker takes:
/// linearizability, against the models of [`crate::model::MODELS`].
static FALLBACK: &dyn Checker = &linearizable::Linearizable;

/// The checker `faultline check --model MODEL` runs: the one that judges
/// `model` by its own name or kind (a classic checker, `txn`), else
/// linearizability. (Linearizability also knows `queue` as a FIFO queue,
/// but there the total-queue checker of that name wins.)
pub fn for_model(model: Option<&str>) -> &'static dyn Checker {
    model
        .and_then(|m| {
            CHECKERS
                .iter()
                .copied()
                .filter(|c| c.name() != FALLBACK.name())
                .find(|c| c.judges(m))
        })
        .unwrap_or(FALLBACK)
}

/// Runs the named checkers over a history: the overall verdict, the
/// `results.json` value (`{"valid": ..., "checkers": {name: {..., "valid":
/// ...}}}`), and a line per checker. A checker that cannot check, or a
/// name no checker has, answers unknown with an `error`.
pub fn check_all(
    history: &History,
    names: &[String],
    ctx: &CheckContext,
) -> (Validity, Value, Vec<String>) {
    let mut validity = Validity::Valid;
    let mut results = serde_json::Map::new();
    let mut summary = Vec::new();
    for name in names {
        let outcome = match by_name(name) {
            Some(c) => c.check(history, ctx),
            None => Err(CannotCheck(format!("unknown checker {name}"))),
        };
        let (v, mut details, line) = match outcome {
            Ok(v) => (v.validity, v.details, v.explanation),
            Err(e) => (
                Validity::Unknown,
                json!({"error": e.0}),
                match by_name(name) {
                    Some(_) => format!("cannot check: {e}"),
                    None => e.0,
                },
            ),
        };
        validity = validity.merge(v);
        if let Some(o) = details.as_object_mut() {
            o.insert("valid".into(), json!(v));
        }
        results.insert(name.clone(), details);
        summary.push(format!("{name}: {v} — {line}"));
    }
    (
        validity,
        json!({"valid": validity, "checkers": results}),
        summary,
    )
}

/// A duration for people: `0.12 ms`, `340 ms`, `12.5 s`.
pub fn show_duration(d: Duration) -> String {
    let m = d.as_secs_f64() * 1000.0;
    if m < 10.0 {
        format!("{m:.2} ms")
    } else if m < 10_000.0 {
        format!("{m:.0} ms")
    } else {
        format!("{:.1} s", m / 1000.0)
    }
}

#[cfg(test)]
mod tests;
