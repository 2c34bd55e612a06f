//! The transactional checker, after Elle (Kingsbury and Alvaro, VLDB 2020).
//!
//! A history of `txn` operations, each a list of micro-operations, is
//! checked against consistency models such as serializability:
//!
//! 1. `parse` decodes each call into a transaction (Elle's conventions:
//!    `["append", k, v]`, `["r", k, [..]]` for list-append; `["w", k, v]`,
//!    `["r", k, v]` for rw-register).
//! 2. `list_append` / `rw_register` infer each key's version order and the
//!    data dependencies (ww, wr, rw), and report the anomalies visible
//!    without a cycle (G1a, G1b, internal, dirty-update, lost-update, ...).
//! 3. `graph` adds process and real-time order and builds the petgraph
//!    dependency graph; `search` finds, per anomaly class (G0, G1c,
//!    G-single, G2-item and their `-process` / `-realtime` variants), the
//!    shortest cycle in each strongly connected component; `explain` words
//!    each anomaly and draws each cycle as Graphviz dot.
//! 4. [`models`] maps the anomalies found onto the lattice of consistency
//!    models: the report names the weakest models ruled out (`not`), the
//!    stronger ones ruled out with them (`also_not`), and the verdict for
//!    the requested models.
//!
//! ```
//! use faultline::check::txn::{self, TxnOptions, TxnKind};
//! use faultline::check::Validity;
//! use faultline::history::{History, Op, OpType::*, Process::Client};
//! use serde_json::json;
//!
//! // Write skew: each transaction reads the key the other appends to.
//! let h = History::new(vec![
//!     Op::new(0, Client(0), Invoke, "txn", json!([["r", "x", null], ["append", "y", 1]])),
//!     Op::new(0, Client(1), Invoke, "txn", json!([["r", "y", null], ["append", "x", 2]])),
//!     Op::new(0, Client(0), Ok, "txn", json!([["r", "x", []], ["append", "y", 1]])),
//!     Op::new(0, Client(1), Ok, "txn", json!([["r", "y", []], ["append", "x", 2]])),
//!     Op::new(0, Client(2), Invoke, "txn", json!([["r", "x", null], ["r", "y", null]])),
//!     Op::new(0, Client(2), Ok, "txn", json!([["r", "x", [2]], ["r", "y", [1]]])),
//! ]);
//! let report = txn::check(&h, &TxnOptions::new(TxnKind::ListAppend)).unwrap();
//! assert_eq!(report.validity, Validity::Invalid);
//! assert_eq!(report.anomaly_types, vec!["G2-item"]);
//! assert_eq!(report.not, vec!["repeatable-read"]);
//! ```

pub mod brute;
mod explain;
mod graph;
mod infer;
mod list_append;
mod load;
pub mod models;
mod parse;
mod rw_register;
mod search;

use super::registry::ExplanationFile;
use super::Validity;
use crate::history::{Call, Format, History, HistoryError, Op, Outcome, Process};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

/// The kind of objects the transactions operate on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TxnKind {
    /// Keys are lists; `["append", k, v]` and `["r", k, [..]]`.
    ListAppend,
    /// Keys are registers; `["w", k, v]` and `["r", k, v]`.
    RwRegister,
}

impl TxnKind {
    /// `list-append` or `rw-register`.
    pub fn name(self) -> &'static str {
        match self {
            TxnKind::ListAppend => "list-append",
            TxnKind::RwRegister => "rw-register",
        }
    }

    /// Parses `list-append` or `rw-register`.
    pub fn parse(s: &str) -> Option<TxnKind> {
        match s {
            "list-append" => Some(TxnKind::ListAppend),
            "rw-register" => Some(TxnKind::RwRegister),
            _ => None,
        }
    }
}

/// How to check.
#[derive(Clone, Debug)]
pub struct TxnOptions {
    /// The workload.
    pub workload: TxnKind,
    /// The models the history must satisfy (names from
    /// [`models::MODEL_NAMES`]); default strict serializable.
    pub consistency_models: Vec<String>,
    /// Give up (verdict `unknown`) after this long.
    pub time_limit: Option<Duration>,
    /// Give up (verdict `unknown`) on histories of more transactions.
    pub max_txns: usize,
    /// Cut an anomaly class's cycle search short (verdict `unknown` unless
    /// already invalid) after expanding this many search states.
    pub max_search_steps: u64,
    /// Cycles kept per anomaly class.
    pub max_cycles: usize,
    /// rw-register: order each key's writes by process (a write follows
    /// what its process read or wrote of the key before).
    pub sequential_keys: bool,
    /// rw-register: order each key's writes by real time (a write follows
    /// a write that completed before it began).
    pub linearizable_keys: bool,
}

impl TxnOptions {
    /// Defaults for `workload`: strict serializable, 10 million
    /// transactions, 20 million search steps per anomaly class, 16 cycles
    /// per class.
    pub fn new(workload: TxnKind) -> TxnOptions {
        TxnOptions {
            workload,
            consistency_models: vec!["strict-serializable".to_string()],
            time_limit: None,
            max_txns: 10_000_000,
            max_search_steps: 20_000_000,
            max_cycles: 16,
            sequential_keys: false,
            linearizable_keys: false,
        }
    }
}

/// A history the transactional checker cannot read.
#[derive(Debug, thiserror::Error)]
pub enum TxnError {
    /// The history breaks the rules of histories.
    #[error(transparent)]
    History(#[from] HistoryError),
    /// A transaction that is not a list of micro-operations.
    #[error("{at}: {message}")]
    Decode {
        /// Where (file:line or event index).
        at: String,
        /// What was expected.
        message: String,
    },
    /// The same value written twice to a key: inference needs unique values.
    #[error("value {value} is written to key {key} twice (transactions invoked at events {first} and {second}); the checker needs every written value to be unique per key")]
    DuplicateWrite {
        /// The key.
        key: String,
        /// The value.
        value: String,
        /// Invocation of the first writer.
        first: usize,
        /// Invocation of the second.
        second: usize,
    },
    /// A consistency model this checker does not know.
    #[error("unknown consistency model {0:?}; expected one of {list}", list = models::MODEL_NAMES.join(", "))]
    UnknownModel(String),
}

/// A transaction as a report names it.
#[derive(Clone, Debug, Serialize)]
pub struct TxnRef {
    /// `T1`, `T2`, ... within one anomaly.
    pub name: String,
    /// Index of its invocation in the history.
    pub invoke_index: usize,
    /// Index of its completion, if it completed.
    pub complete_index: Option<usize>,
    /// The process.
    pub process: Process,
    /// How it ended.
    pub outcome: Outcome,
    /// Its micro-operations, e.g. `[append 3 5] [r 4 [1 2]]`.
    pub ops: String,
}

/// One edge of a cycle.
#[derive(Clone, Debug, Serialize)]
pub struct CycleStep {
    /// The earlier transaction's name.
    pub from: String,
    /// The later transaction's name.
    pub to: String,
    /// `ww`, `wr`, `rw`, `process` or `realtime`.
    pub kind: String,
    /// The key of a data edge (`ww`, `wr`, `rw`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<Value>,
    /// Why `from` precedes `to`, in words.
    pub why: String,
}

/// One anomaly.
#[derive(Clone, Debug, Serialize)]
pub struct Anomaly {
    /// Its name: `G1c`, `G-single-realtime`, `lost-update`, ...
    pub name: String,
    /// The key involved, for anomalies about one key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<Value>,
    /// One paragraph, naming transactions `T1`, `T2`, ...
    pub explanation: String,
    /// The transactions involved, in the explanation's order.
    pub txns: Vec<TxnRef>,
    /// For cycle anomalies: the edges, `T1 → T2 → ... → T1`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cycle: Option<Vec<CycleStep>>,
    /// For cycle anomalies: the cycle as a Graphviz dot graph (kept in
    /// results.json so reports can draw it later).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dot: Option<String>,
}

/// The verdict on a transactional history.
#[derive(Clone, Debug, Serialize)]
pub struct TxnReport {
    /// The workload.
    pub workload: TxnKind,
    /// Invalid when an anomaly rules out a requested model; unknown when a
    /// budget ran out first (see `reason`); valid otherwise.
    pub validity: Validity,
    /// The models checked.
    pub consistency_models: Vec<String>,
    /// Names of the anomalies found, sorted.
    pub anomaly_types: Vec<String>,
    /// The anomalies, by name (a capped number of each; see `counts`).
    pub anomalies: BTreeMap<String, Vec<Anomaly>>,
    /// How many of each anomaly were found (cycle anomalies: components).
    pub counts: BTreeMap<String, usize>,
    /// The weakest models the anomalies rule out.
    pub not: Vec<String>,
    /// The stronger models ruled out along with them.
    pub also_not: Vec<String>,
    /// The models no anomaly found rules out (all of them hold only if the
    /// search was complete).
    pub still_possible: Vec<String>,
    /// Why the verdict is unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Transactions checked (`ok`, `info` and `fail`).
    pub txns: usize,
    /// Client operations that were not transactions, skipped.
    pub skipped_ops: usize,
    /// Edges of the dependency graph (one per ordered pair).
    pub edges: usize,
    /// Time spent checking.
    #[serde(rename = "elapsed_ms", serialize_with = "as_millis")]
    pub elapsed: Duration,
}

fn as_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

/// Checks a history of transactions.
pub fn check(history: &History, opts: &TxnOptions) -> Result<TxnReport, TxnError> {
    let calls = history.calls()?;
    check_calls(history, &calls, opts)
}

/// A history file checked by [`check_path`].
#[derive(Debug)]
pub struct PathChecked {
    /// The verdict.
    pub report: TxnReport,
    /// Time spent reading the file into transactions.
    pub read: Duration,
    /// Bytes read.
    pub bytes: u64,
}

/// Checks a history file read as a stream straight into compact
/// transactions (see `load`): the same verdict as reading the file with
/// [`read_path`](crate::history::read_path) and calling [`check`], in a
/// fraction of the memory. `None` when the file must be read whole
/// instead: a format other than JSON Lines and EDN, or anything the
/// whole-file reader decides from the whole file (a bad line, EDN tuples of
/// an `independent` test, operations without `:process`).
pub fn check_path(
    path: &Path,
    format: Option<Format>,
    opts: &TxnOptions,
) -> Option<Result<PathChecked, TxnError>> {
    let start = Instant::now();
    let loaded = match load::load(path, format, opts.workload) {
        Ok(Some(l)) => l,
        Ok(None) => return None,
        Err(e) => return Some(Err(e)),
    };
    let read = start.elapsed();
    let report = validate_models(opts).and_then(|()| {
        check_txns(
            Instant::now(),
            &loaded.txns,
            &loaded.atoms,
            loaded.skipped,
            opts,
        )
    });
    Some(report.map(|report| PathChecked {
        report,
        read,
        bytes: loaded.bytes,
    }))
}

/// The events of a history file at the given positions (sorted), as
/// [`read_path`](crate::history::read_path) reads them, without reading the
/// file whole; `None` when the file cannot be streamed.
pub fn events_at(path: &Path, format: Option<Format>, positions: &[usize]) -> Option<Vec<Op>> {
    load::events_at(path, format, positions)
}

fn validate_models(opts: &TxnOptions) -> Result<(), TxnError> {
    for m in &opts.consistency_models {
        if !models::is_model(m) {
            return Err(TxnError::UnknownModel(m.clone()));
        }
    }
    Ok(())
}

/// Checks already-paired calls of `history` (see [`History::calls`]).
pub fn check_calls(
    history: &History,
    calls: &[Call],
    opts: &TxnOptions,
) -> Result<TxnReport, TxnError> {
    let start = Instant::now();
    validate_models(opts)?;
    let (txns, atoms, skipped_ops) = parse::decode(history, calls, opts.workload)?;
    check_txns(start, &txns, &atoms, skipped_ops, opts)
}

/// Checks decoded transactions; `start` is when checking began.
fn check_txns(
    start: Instant,
    txns: &parse::Txns,
    atoms: &parse::Interner,
    skipped_ops: usize,
    opts: &TxnOptions,
) -> Result<TxnReport, TxnError> {
    let mut report = TxnReport {
        workload: opts.workload,
        validity: Validity::Valid,
        consistency_models: opts.consistency_models.clone(),
        anomaly_types: Vec::new(),
        anomalies: BTreeMap::new(),
        counts: BTreeMap::new(),
        not: Vec::new(),
        also_not: Vec::new(),
        still_possible: Vec::new(),
        reason: None,
        txns: txns.len(),
        skipped_ops,
        edges: 0,
        elapsed: Duration::ZERO,
    };
    let unknown = |mut r: TxnReport, why: String| {
        r.validity = Validity::Unknown;
        r.reason = Some(why);
        r.elapsed = start.elapsed();
        r
    };
    if txns.len() > opts.max_txns {
        let why = format!(
            "{} transactions exceed the limit of {}",
            txns.len(),
            opts.max_txns
        );
        return Ok(unknown(report, why));
    }
    if !txns.iter().any(|t| t.outcome == Outcome::Ok) {
        return Ok(unknown(
            report,
            "no transaction committed: there is nothing to check".to_string(),
        ));
    }

    let mut inferred = match opts.workload {
        TxnKind::ListAppend => list_append::infer(txns, atoms)?,
        TxnKind::RwRegister => rw_register::infer(txns, atoms, opts)?,
    };
    let graph = graph::DepGraph::build(txns, std::mem::take(&mut inferred.edges));
    report.edges = graph.g.edge_count();
    let ctx = explain::Ctx {
        txns,
        atoms,
        workload: opts.workload,
    };
    for f in &inferred.found {
        report
            .anomalies
            .entry(f.name.to_string())
            .or_default()
            .push(ctx.found(f));
    }
    for (name, n) in &inferred.counts {
        report.counts.insert(name.to_string(), *n);
    }

    // Cycle search, class by class, each within the step budget and all
    // within the time limit.
    let deadline = opts.time_limit.map(|t| start + t);
    let mut incomplete: Vec<&str> = Vec::new();
    let mut timed_out = false;
    // Node sets of the cycles reported per class, to drop repeats.
    let mut seen_cycles: BTreeMap<&str, Vec<Vec<u32>>> = BTreeMap::new();
    // Every class's cycles are cycles of the whole graph: when it has none
    // (a valid history, the usual case at scale), one linear pass settles
    // all classes instead of a strongly-connected-components pass each.
    let acyclic = !petgraph::algo::is_cyclic_directed(&graph.g);
    for class in search::classes().into_iter().filter(|_| !acyclic) {
        if timed_out || deadline.is_some_and(|d| Instant::now() >= d) {
            timed_out = true;
            incomplete.push(class.name);
            continue;
        }
        let mut budget = search::Budget {
            deadline,
            max_steps: opts.max_search_steps,
            steps: 0,
        };
        let found = search::search(&graph, &class, &mut budget, opts.max_cycles);
        for c in &found.cycles {
            let mut n: Vec<u32> = c.iter().map(|e| e.0).collect();
            n.sort_unstable();
            seen_cycles.entry(class.name).or_default().push(n);
        }
        if found.count > 0 {
            *report.counts.entry(class.name.to_string()).or_insert(0) += found.count;
            let list = report.anomalies.entry(class.name.to_string()).or_default();
            for c in &found.cycles {
                list.push(ctx.cycle(&graph, class.name, c));
            }
        }
        for (name, c) in &found.others {
            // The class's own search may already have reported this cycle.
            let nodes = |c: &search::Cycle| {
                let mut n: Vec<u32> = c.iter().map(|e| e.0).collect();
                n.sort_unstable();
                n
            };
            let known = seen_cycles
                .get(*name)
                .is_some_and(|s| s.contains(&nodes(c)));
            if known {
                continue;
            }
            seen_cycles.entry(name).or_default().push(nodes(c));
            *report.counts.entry(name.to_string()).or_insert(0) += 1;
            let list = report.anomalies.entry(name.to_string()).or_default();
            if list.len() < opts.max_cycles {
                list.push(ctx.cycle(&graph, name, c));
            }
        }
        if !found.complete {
            incomplete.push(class.name);
        }
    }
    report.anomaly_types = report.anomalies.keys().cloned().collect();
    let names: Vec<&str> = report.anomaly_types.iter().map(String::as_str).collect();
    let (not, also_not) = models::boundary(&names);
    report.still_possible = models::still_possible(&names);
    report.not = not;
    report.also_not = also_not;
    let ruled_out = report.consistency_models.iter().any(|m| {
        let bad = models::proscribed_by(m);
        names.iter().any(|a| bad.contains(a))
    });
    report.validity = if ruled_out {
        Validity::Invalid
    } else {
        Validity::Valid
    };
    // A search cut short matters only for classes a requested model
    // proscribes, and only when nothing found already rules it out.
    let proscribed: Vec<BTreeSet<&str>> = report
        .consistency_models
        .iter()
        .map(|m| models::proscribed_by(m))
        .collect();
    incomplete.retain(|c| proscribed.iter().any(|p| p.contains(c)));
    if !ruled_out && !incomplete.is_empty() {
        let why = format!(
            "the cycle search for {} was cut short ({}); cycles of those classes may have been missed",
            incomplete.join(", "),
            match opts.time_limit {
                Some(t) if timed_out => format!("time limit {t:?}"),
                _ => format!(
                    "budget of {} steps per class, {} start edges per component",
                    opts.max_search_steps,
                    search::MAX_TRIES
                ),
            }
        );
        return Ok(unknown(report, why));
    }
    report.elapsed = start.elapsed();
    Ok(report)
}

/// A report's explanations as files, for `report::write_explanations`:
/// `<anomaly>.txt` with every kept anomaly of that name, and for cycles
/// `<anomaly>/<i>.dot` (which the writer also draws as `.svg`). Pure: nothing is written here.
pub fn explanation_files(report: &TxnReport) -> Vec<ExplanationFile> {
    let mut files = Vec::new();
    for (name, list) in &report.anomalies {
        let mut text = String::new();
        for (i, a) in list.iter().enumerate() {
            if i > 0 {
                text.push('\n');
            }
            if let Some(k) = &a.key {
                text.push_str(&format!("On key {}:\n", explain::show_json(k)));
            }
            text.push_str(&explain::long_text(a));
        }
        files.push(ExplanationFile {
            path: format!("{name}.txt"),
            text,
        });
        for (i, a) in list.iter().enumerate() {
            if let Some(dot) = &a.dot {
                files.push(ExplanationFile {
                    path: format!("{name}/{i}.dot"),
                    text: dot.clone(),
                });
            }
        }
    }
    files
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_classes;
#[cfg(test)]
mod tests_register;
