//! The linearizability checker.
//!
//! [`check`] pairs a history's events into calls, splits them by key
//! (P-compositionality: a history of independent keys is linearizable iff
//! each key's sub-history is), decodes each part with the model and
//! searches each part on its own thread ([`search`] holds the algorithm).
//! Every part gets a verdict; an invalid one carries a [`Counterexample`].
//! A key judged valid earlier on exactly the events it has here
//! ([`LinearOptions::known`], the online checker's verdicts) is taken
//! without a search; a key proven invalid earlier is searched first.
//! A search that has visited many configurations also looks, once, for an
//! operation that no order of the operations before it could explain
//! (see `reach.rs`), which settles a read of a value nothing wrote without
//! walking every order of what came before it; and a search that stalls
//! hands the key to `split.rs`, which walks it return by return and finds
//! a stale read in the middle of a long history at its return.
//!
//! ```
//! use faultline::check::{linear, Validity};
//! use faultline::history::{History, Op, OpType::*, Process::Client};
//! use faultline::model::CasRegister;
//! use serde_json::json;
//!
//! let h = History::new(vec![
//!     Op::new(0, Client(0), Invoke, "write", json!(1)),
//!     Op::new(0, Client(0), Ok, "write", json!(1)),
//!     Op::new(0, Client(1), Invoke, "read", json!(null)),
//!     Op::new(0, Client(1), Ok, "read", json!(2)),
//! ]);
//! let report = linear::check(&CasRegister::default(), &h, &linear::LinearOptions::default()).unwrap();
//! assert_eq!(report.validity, Validity::Invalid);
//! let cx = report.keys[0].counterexample.as_ref().unwrap();
//! assert_eq!(cx.explanation, "read returned 2, but every order of the operations before it leaves 1");
//! ```

pub mod brute;
mod reach;
mod search;
pub mod shrink;
mod split;

use super::known::{key_name, Fingerprint, KnownKeys};
use super::Validity;
use crate::history::{Call, History, HistoryError, Outcome, Process};
use crate::model::{Model, Values};
use rayon::prelude::*;
use search::{Budget, Found, Problem, Tactics};
use serde::Serialize;
use serde_json::Value;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How to check.
#[derive(Clone, Debug)]
pub struct LinearOptions {
    /// Give up (verdict `unknown`) after this long, for the whole check.
    pub time_limit: Option<Duration>,
    /// Give up (verdict `unknown`) when memory in use reaches this many
    /// bytes: the process's resident memory when [`resident_memory`]
    /// reads it, else the searches' memo tables together. The search
    /// counts a table about to double as already doubled, so the verdict
    /// turns `unknown` before the limit is passed.
    ///
    /// [`resident_memory`]: LinearOptions::resident_memory
    pub memory_limit: usize,
    /// Reads this process's resident memory in bytes (e.g. from /proc),
    /// so that [`memory_limit`](LinearOptions::memory_limit) bounds the
    /// whole process; the search then keeps 1/32 of the limit free for
    /// what the process allocates between two looks and after the search.
    /// The checker core never reads the machine itself: callers that can
    /// pass a reader here.
    pub resident_memory: Option<fn() -> Option<usize>>,
    /// Check each key on its own (P-compositionality). When false, a
    /// multi-key history is searched whole, which needs a keyed model.
    pub split_by_key: bool,
    /// Stop the other keys as soon as one key is invalid (as Porcupine
    /// does); unfinished keys are then `unknown` with the reason. When
    /// false, every key is searched to its end (or the budget's).
    pub stop_at_first_invalid: bool,
    /// How many longest linearizable prefixes to keep in a counterexample.
    pub max_paths: usize,
    /// Set to stop the check from outside (e.g. on Ctrl-C): unfinished
    /// parts become `unknown`.
    pub cancel: Option<std::sync::Arc<AtomicBool>>,
    /// How long to look for each invalid key's smallest failing
    /// sub-history ([`shrink`]), on top of `time_limit`; zero: not at all.
    pub shrink_time: Duration,
    /// Verdicts given earlier per key (the online checker's, see
    /// [`crate::check::known`]): a key judged valid on exactly its events
    /// here is taken as valid without a search; a key proven invalid is
    /// searched first. Used only when split by key.
    pub known: Option<Arc<KnownKeys>>,
}

impl Default for LinearOptions {
    fn default() -> Self {
        LinearOptions {
            time_limit: None,
            memory_limit: DEFAULT_MEMORY_LIMIT,
            resident_memory: None,
            split_by_key: true,
            stop_at_first_invalid: true,
            max_paths: 4,
            cancel: None,
            shrink_time: DEFAULT_SHRINK_TIME,
            known: None,
        }
    }
}

/// How long [`shrink`] looks for a minimal failing sub-history when the
/// caller does not say: 10 s per invalid key.
pub const DEFAULT_SHRINK_TIME: Duration = Duration::from_secs(10);

/// The memory budget when the caller gives none: 4 GiB. The checker core
/// never reads the machine's memory; callers that know it pass their own
/// [`LinearOptions::memory_limit`].
pub const DEFAULT_MEMORY_LIMIT: usize = 4 << 30;

/// A history the checker cannot check.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The history breaks the rules of histories.
    #[error(transparent)]
    History(#[from] HistoryError),
    /// The model cannot read an operation.
    #[error("{at}: {message}")]
    Decode {
        /// Where the operation's invocation is (file:line or event index).
        at: String,
        /// What the model expected.
        message: String,
    },
    /// A multi-key history searched whole with a model that has no keys.
    #[error("the history has several keys but model {0} does not distinguish keys: check it split by key, or use a keyed model such as kv")]
    Unkeyed(String),
}

/// An operation of the history, as a report names it.
#[derive(Clone, Debug, Serialize)]
pub struct OpRef {
    /// Index of the invocation in the history.
    pub invoke_index: usize,
    /// Index of the completion, if it completed.
    pub complete_index: Option<usize>,
    /// The process.
    pub process: Process,
    /// The function.
    pub f: String,
    /// How it ended.
    pub outcome: Outcome,
    /// What the model made of it, e.g. `read returned 4`.
    pub description: String,
}

/// One step of a linearization.
#[derive(Clone, Debug, Serialize)]
pub struct Step {
    /// The operation.
    pub op: OpRef,
    /// The model's state after it.
    pub state: String,
}

/// Why a part of the history is not linearizable.
#[derive(Clone, Debug, Serialize)]
pub struct Counterexample {
    /// The operation that cannot be linearized: no order of the operations
    /// before its completion leaves a state in which it could take effect.
    pub op: OpRef,
    /// Every state the operations before it can leave the object in (up to
    /// 64; `more_states` says whether there were more). When
    /// `over_approximated`, a superset of them instead.
    pub states: Vec<String>,
    /// True when there were more such states than listed.
    pub more_states: bool,
    /// True when the search did not walk the orders of the operations
    /// before `op` but proved it impossible at once: `states` are every
    /// state the operations called before its return could leave applied
    /// in any order, any number of times, and it is illegal in each. (The
    /// search looks for such an operation once it has visited many
    /// configurations: a read of a value nothing wrote, on a long history,
    /// would otherwise cost it every order of the operations before.)
    /// `final_paths` is then empty.
    pub over_approximated: bool,
    /// Some of the longest linearizable prefixes found, each ending where
    /// `op` could not follow (Knossos' final paths). Empty when
    /// `over_approximated`, and when the search that walks the history
    /// return by return found `op` (it keeps no orders, only what they
    /// leave at each point).
    pub final_paths: Vec<Vec<Step>>,
    /// One plain sentence.
    pub explanation: String,
}

/// The verdict on one key (or on the whole history when not split).
#[derive(Clone, Debug, Serialize)]
pub struct KeyVerdict {
    /// The key, or `None` for an unsplit history.
    pub key: Option<Value>,
    /// The verdict.
    pub validity: Validity,
    /// Operations checked (calls the model did not leave out).
    pub ops: usize,
    /// Distinct configurations the search visited (none when the verdict
    /// was taken from [`LinearOptions::known`]).
    pub configurations: u64,
    /// Why the verdict is `unknown`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Why the verdict is `invalid`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counterexample: Option<Counterexample>,
    /// When invalid: the smallest sub-history of this key's operations
    /// that is still not linearizable (absent when shrinking is off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shrunk: Option<shrink::MinimalHistory>,
}

/// The verdict on a history.
#[derive(Clone, Debug, Serialize)]
pub struct LinearReport {
    /// The model's name.
    pub model: String,
    /// Invalid if any key is, else unknown if any key is, else valid.
    pub validity: Validity,
    /// Client operations in the history.
    pub ops: usize,
    /// One verdict per key, in order of first appearance.
    pub keys: Vec<KeyVerdict>,
    /// Time spent checking, excluding reading the file.
    #[serde(rename = "elapsed_ms", serialize_with = "as_millis")]
    pub elapsed: Duration,
}

fn as_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

impl LinearReport {
    /// The verdicts that are not valid.
    pub fn failures(&self) -> impl Iterator<Item = &KeyVerdict> {
        self.keys.iter().filter(|k| k.validity != Validity::Valid)
    }
}

/// Checks a history for linearizability against `model`.
pub fn check<M: Model>(
    model: &M,
    history: &History,
    opts: &LinearOptions,
) -> Result<LinearReport, CheckError> {
    let calls = history.calls()?;
    check_calls(model, history, &calls, opts)
}

/// Checks already-paired calls of `history` (see [`History::calls`]).
pub fn check_calls<M: Model>(
    model: &M,
    history: &History,
    calls: &[Call],
    opts: &LinearOptions,
) -> Result<LinearReport, CheckError> {
    let start = Instant::now();
    let parts = partition(calls, opts.split_by_key);
    if !opts.split_by_key && !model.keyed() && parts.keys.len() > 1 {
        return Err(CheckError::Unkeyed(model.name().to_string()));
    }
    if !opts.split_by_key && !model.keyed() && calls.iter().any(|c| c.key.is_some()) {
        return Err(CheckError::Unkeyed(model.name().to_string()));
    }
    let memory_used = AtomicUsize::new(0);
    let local_cancel = AtomicBool::new(false);
    let cancel = opts.cancel.as_deref().unwrap_or(&local_cancel);
    let stop = AtomicBool::new(false);
    let budget = Budget {
        deadline: opts.time_limit.map(|t| start + t),
        time_limit_text: opts
            .time_limit
            .map(|t| format!("{:?}", t))
            .unwrap_or_default(),
        memory_used: &memory_used,
        memory_limit: opts.memory_limit,
        resident: opts.resident_memory,
        cancel,
        stop: &stop,
    };
    let known = opts.known.as_deref().filter(|_| opts.split_by_key);
    // The shrink checks sub-histories of its own: no earlier verdict is
    // about them.
    let shrink_opts = LinearOptions {
        known: None,
        ..opts.clone()
    };
    let check_one = |i: usize| -> Result<KeyVerdict, CheckError> {
        let members = &parts.members[i];
        let mut v = check_part(
            model,
            history,
            calls,
            members,
            parts.keys[i].clone(),
            &budget,
            opts.max_paths,
            known,
        )?;
        if v.validity == Validity::Invalid && opts.stop_at_first_invalid {
            stop.store(true, Ordering::Relaxed);
        }
        if let Some(cx) = v
            .counterexample
            .as_ref()
            .filter(|_| !opts.shrink_time.is_zero())
        {
            v.shrunk = Some(shrink::shrink(
                model,
                history,
                calls,
                members,
                cx,
                &shrink_opts,
            ));
        }
        Ok(v)
    };
    // Keys proven invalid earlier first: a check that stops at the first
    // invalid key then stops without searching the others.
    let (first, rest): (Vec<usize>, Vec<usize>) = (0..parts.keys.len())
        .partition(|&i| known.is_some_and(|k| k.proven_invalid(&key_name(parts.keys[i].as_ref()))));
    let mut keys: Vec<Option<Result<KeyVerdict, CheckError>>> =
        (0..parts.keys.len()).map(|_| None).collect();
    for batch in [first, rest] {
        let done: Vec<(usize, Result<KeyVerdict, CheckError>)> =
            batch.into_par_iter().map(|i| (i, check_one(i))).collect();
        for (i, v) in done {
            keys[i] = Some(v);
        }
    }
    let keys: Vec<Result<KeyVerdict, CheckError>> = keys.into_iter().flatten().collect();
    let keys = keys.into_iter().collect::<Result<Vec<_>, _>>()?;
    let validity = keys
        .iter()
        .fold(Validity::Valid, |v, k| v.merge(k.validity));
    Ok(LinearReport {
        model: model.name().to_string(),
        validity,
        ops: calls.len(),
        keys,
        elapsed: start.elapsed(),
    })
}

struct Parts {
    keys: Vec<Option<Value>>,
    members: Vec<Vec<usize>>,
}

fn partition(calls: &[Call], split: bool) -> Parts {
    if !split {
        return Parts {
            keys: vec![None],
            members: vec![(0..calls.len()).collect()],
        };
    }
    let mut index: rustc_hash::FxHashMap<String, usize> = Default::default();
    let mut parts = Parts {
        keys: Vec::new(),
        members: Vec::new(),
    };
    for (i, c) in calls.iter().enumerate() {
        let name = c.key.as_ref().map(|k| k.to_string()).unwrap_or_default();
        let slot = *index.entry(name).or_insert_with(|| {
            parts.keys.push(c.key.clone());
            parts.members.push(Vec::new());
            parts.keys.len() - 1
        });
        parts.members[slot].push(i);
    }
    if parts.keys.is_empty() {
        parts.keys.push(None);
        parts.members.push(Vec::new());
    }
    parts
}

/// One part's verdict: taken from `known` when it judged exactly these
/// events valid, else searched.
#[allow(clippy::too_many_arguments)]
fn check_part<M: Model>(
    model: &M,
    history: &History,
    calls: &[Call],
    members: &[usize],
    key: Option<Value>,
    budget: &Budget<'_>,
    max_paths: usize,
    known: Option<&KnownKeys>,
) -> Result<KeyVerdict, CheckError> {
    let taken = known.is_some_and(|known| {
        let mut print = Fingerprint::default();
        for &i in members {
            let c = &calls[i];
            print.add(&history.ops[c.invoke]);
            if let Some(done) = c.complete {
                print.add(&history.ops[done]);
            }
        }
        known.take_valid(&key_name(key.as_ref()), &print)
    });
    let mut values = Values::new();
    let mut ops = Vec::with_capacity(members.len());
    let mut spans = Vec::with_capacity(members.len());
    let mut origin = Vec::with_capacity(members.len());
    for &i in members {
        let c = &calls[i];
        let decoded = model
            .decode(c, &mut values)
            .map_err(|message| CheckError::Decode {
                at: history.locate(c.invoke),
                message,
            })?;
        if let Some(op) = decoded {
            ops.push(op);
            let ret = if c.outcome == Outcome::Info {
                None
            } else {
                c.complete
            };
            spans.push((c.invoke, ret));
            origin.push(i);
        }
    }
    let n = ops.len();
    let mut verdict = KeyVerdict {
        key,
        validity: Validity::Valid,
        ops: n,
        configurations: 0,
        reason: None,
        counterexample: None,
        shrunk: None,
    };
    if taken {
        // Judged valid earlier on exactly these events: no search. (Decoded
        // all the same, for the count and for the same errors.)
        return Ok(verdict);
    }
    let problem = Problem::new(ops, &spans);
    let pruned = Tactics {
        growth_pruning: true,
        max_configs: None,
    };
    let mut found = search::search(model, &problem, budget, max_paths, pruned);
    if let Found::NotLinearizable { configs, frontier } = &found {
        if frontier.pruned_here {
            // Growth pruning stopped some order at the stuck op, so the
            // states listed may not be the states there. The verdict is
            // settled; search again without it for the exact
            // counterexample, while that is cheap.
            let exact = Tactics {
                growth_pruning: false,
                max_configs: Some((configs * 16).max(200_000)),
            };
            let first = *configs;
            match search::search(model, &problem, budget, max_paths, exact) {
                Found::NotLinearizable { configs, frontier } => {
                    found = Found::NotLinearizable {
                        configs: first + configs,
                        frontier,
                    }
                }
                // Growth pruning is sound, so this cannot be; should it
                // ever happen, the exhaustive answer stands.
                Found::Linearizable { configs } => {
                    debug_assert!(false, "growth pruning rejected a linearizable history");
                    found = Found::Linearizable { configs };
                }
                Found::Unknown { .. } => {}
            }
        }
    }
    match found {
        Found::Linearizable { configs } => verdict.configurations = configs,
        Found::Unknown { configs, reason } => {
            verdict.validity = Validity::Unknown;
            verdict.configurations = configs;
            verdict.reason = Some(reason);
        }
        Found::NotLinearizable { configs, frontier } => {
            verdict.validity = Validity::Invalid;
            verdict.configurations = configs;
            let op_ref = |op: u32| {
                let c = &calls[origin[op as usize]];
                OpRef {
                    invoke_index: c.invoke,
                    complete_index: c.complete,
                    process: c.process,
                    f: c.f.clone(),
                    outcome: c.outcome,
                    description: model.describe_op(&problem.ops[op as usize], &values),
                }
            };
            let op = op_ref(frontier.stuck_op);
            let states: Vec<String> = frontier
                .states
                .iter()
                .map(|s| model.describe_state(s, &values))
                .collect();
            let final_paths = frontier
                .paths
                .iter()
                .map(|p| {
                    p.iter()
                        .map(|(o, s)| Step {
                            op: op_ref(*o),
                            state: model.describe_state(s, &values),
                        })
                        .collect()
                })
                .collect();
            let mut explanation = if frontier.over_approximated {
                explain_impossible(&op.description, &states, frontier.more_states)
            } else {
                explain(&op.description, &states, frontier.more_states)
            };
            if let Some(k) = &verdict.key {
                explanation = format!("on key {k}: {explanation}");
            }
            verdict.counterexample = Some(Counterexample {
                op,
                states,
                more_states: frontier.more_states,
                over_approximated: frontier.over_approximated,
                final_paths,
                explanation,
            });
        }
    }
    Ok(verdict)
}

fn explain(op: &str, states: &[String], more: bool) -> String {
    let s = either(states, more);
    if states.len() > 1 {
        format!("{op}, but every order of the operations before it leaves one of {s}")
    } else {
        format!("{op}, but every order of the operations before it leaves {s}")
    }
}

/// For an op no order of the ops before it can explain ([`reach`]).
fn explain_impossible(op: &str, states: &[String], more: bool) -> String {
    format!(
        "{op}, but no order of the operations called before it returned can explain that: applied in any order, any number of times, they leave only {}",
        either(states, more)
    )
}

/// The states as `a or b or c`.
fn either(states: &[String], more: bool) -> String {
    let mut s = states.join(" or ");
    if more {
        s.push_str(" or yet other states");
    }
    s
}

#[cfg(test)]
mod tests;
