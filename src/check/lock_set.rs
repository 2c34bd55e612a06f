//! The lock-set checker (Jepsen's etcd `lock-set`): workers take a lock,
//! add an element to a shared set while they hold it, and release it;
//! after the main phase every worker reads the set. Two findings make a
//! history invalid:
//!
//! - **Two holders at once.** A process holds the lock from the
//!   completion of an `acquire` that ended `ok` to the invocation of its
//!   next `release`. The recorder takes an invocation's time before the
//!   client starts and a completion's after it finished, so that recorded
//!   span lies inside the time the client believed it held the lock: two
//!   such spans that overlap in the history's order (each starts before
//!   the other ends) certainly overlapped in real time. A process with no
//!   release after its acquire (it was retired by an `info`, or the run
//!   ended) is counted as holding only until the invocation of its last
//!   operation. An `acquire` that ended `info` or `fail` starts no hold:
//!   its client never believed it had the lock, and did nothing under it.
//! - **Lost adds.** An `add` acknowledged (`ok`) whose element is missing
//!   from a final read (a `read` invoked after every add had completed).
//!   An element in a final read that no `add` may have added is
//!   unexpected; an `add` that ended `info` may or may not be there.
//!
//! Without a final read the adds cannot be judged: the verdict is then
//! `unknown` unless holds overlapped.

use super::{plural, CallRef, Validity};
use crate::history::{Call, History, HistoryError, Outcome, Process};
use rustc_hash::{FxHashMap, FxHashSet};
use serde::Serialize;
use serde_json::Value;

/// How many examples a report keeps of each finding.
const EXAMPLES: usize = 10;

/// One hold of the lock, as the history bounds it.
#[derive(Clone, Debug, Serialize)]
pub struct Hold {
    /// The `acquire` that ended `ok`.
    pub acquire: CallRef,
    /// The `release` that ended it; `None` when the process released no
    /// more (retired, or the run ended).
    pub release: Option<CallRef>,
    /// The event from which the holder certainly held the lock: the
    /// acquire's completion.
    pub from: usize,
    /// The event until which it certainly held it: the release's
    /// invocation, else its last operation's.
    pub until: usize,
}

impl Hold {
    /// `process 3 held the lock from event 14 (its acquire's ok) to event
    /// 30 (its release)`, for sentences.
    pub fn describe(&self) -> String {
        let until = match &self.release {
            Some(_) => format!("event {} (its release)", self.until),
            None if self.until == self.from => "then on (it never released)".to_string(),
            None => format!(
                "at least event {} (its last operation; it never released)",
                self.until
            ),
        };
        let to = if until.starts_with("then") {
            until
        } else {
            format!("to {until}")
        };
        format!(
            "process {} held the lock from event {} (its acquire's ok) {to}",
            self.acquire.process, self.from
        )
    }
}

/// Two holds that certainly overlapped.
#[derive(Clone, Debug, Serialize)]
pub struct Overlap {
    /// The hold that began first.
    pub first: Hold,
    /// The hold that began while the first one lasted.
    pub second: Hold,
}

/// An acknowledged add missing from a final read.
#[derive(Clone, Debug, Serialize)]
pub struct LostAdd {
    /// The element.
    pub element: Value,
    /// The add that was acknowledged.
    pub add: CallRef,
    /// The first final read that misses it.
    pub read: CallRef,
}

/// The verdict on a lock-set history.
#[derive(Clone, Debug, Serialize)]
pub struct LockSetReport {
    /// The verdict.
    pub validity: Validity,
    /// Acquires invoked.
    pub acquires: usize,
    /// Acquires that ended `ok`: the holds.
    pub holds: usize,
    /// Acquires whose outcome is unknown (`info`): never a violation by
    /// themselves.
    pub unknown_acquires: usize,
    /// Pairs of holds that certainly overlapped.
    pub overlapping: usize,
    /// The first of them, in order of the later hold's start.
    pub overlaps: Vec<Overlap>,
    /// Adds invoked.
    pub adds: usize,
    /// Adds acknowledged.
    pub acknowledged: usize,
    /// Final reads (invoked after every add had completed).
    pub final_reads: usize,
    /// Acknowledged adds missing from a final read.
    pub lost_count: usize,
    /// The first of them, in order of their add.
    pub lost: Vec<LostAdd>,
    /// Elements of a final read that no add may have added.
    pub unexpected: Vec<Value>,
    /// Adds of unknown outcome whose element is in the final reads.
    pub recovered: usize,
    /// One or two sentences.
    pub explanation: String,
}

/// Checks a lock-set history.
pub fn check(history: &History) -> Result<LockSetReport, HistoryError> {
    Ok(check_calls(&history.calls()?))
}

/// The holds of a history: per process, from each `ok` acquire to the
/// next release (or the last operation), in order of their start.
pub fn holds(calls: &[Call]) -> Vec<Hold> {
    let mut by_process: FxHashMap<Process, Vec<&Call>> = FxHashMap::default();
    for c in calls {
        by_process.entry(c.process).or_default().push(c);
    }
    let mut out = Vec::new();
    for mut own in by_process.into_values() {
        own.sort_by_key(|c| c.invoke);
        let mut open: Option<(&Call, usize, usize)> = None;
        for c in own {
            match (&mut open, c.f.as_str()) {
                (Some((acquire, from, _)), "release") => {
                    out.push(Hold {
                        acquire: CallRef::of(acquire),
                        release: Some(CallRef::of(c)),
                        from: *from,
                        until: c.invoke,
                    });
                    open = None;
                }
                // Anything else the holder does, it does holding the lock
                // (a second acquire is refused by its own client).
                (Some((_, _, last)), _) => *last = c.invoke,
                (None, "acquire") if c.outcome == Outcome::Ok => {
                    if let Some(done) = c.complete {
                        open = Some((c, done, done));
                    }
                }
                (None, _) => {}
            }
        }
        if let Some((acquire, from, last)) = open {
            out.push(Hold {
                acquire: CallRef::of(acquire),
                release: None,
                from,
                until: last.max(from),
            });
        }
    }
    out.sort_by_key(|h| h.from);
    out
}

/// Checks the calls of a lock-set history.
pub fn check_calls(calls: &[Call]) -> LockSetReport {
    let holds = holds(calls);
    let mut overlapping = 0;
    let mut overlaps = Vec::new();
    for (i, first) in holds.iter().enumerate() {
        // Sorted by start: every later hold that starts before this one
        // ends overlaps it (it ends after its own start).
        for second in holds[i + 1..].iter().take_while(|h| h.from < first.until) {
            overlapping += 1;
            if overlaps.len() < EXAMPLES {
                overlaps.push(Overlap {
                    first: first.clone(),
                    second: second.clone(),
                });
            }
        }
    }

    let adds: Vec<&Call> = calls.iter().filter(|c| c.f == "add").collect();
    let last_add_event = adds
        .iter()
        .map(|c| c.complete.unwrap_or(c.invoke).max(c.invoke))
        .max();
    let final_reads: Vec<(&Call, FxHashSet<String>)> = calls
        .iter()
        .filter(|c| c.f == "read" && c.outcome == Outcome::Ok)
        .filter(|c| last_add_event.map_or(true, |last| c.invoke > last))
        .map(|c| {
            let items = c
                .output
                .as_array()
                .map(|a| a.iter().map(Value::to_string).collect())
                .unwrap_or_default();
            (c, items)
        })
        .collect();

    let mut lost_count = 0;
    let mut lost = Vec::new();
    let mut recovered = 0;
    // Elements some add may have put in the set: acknowledged or unknown.
    let mut may_be_there: FxHashSet<String> = FxHashSet::default();
    for add in &adds {
        let element = add.input.to_string();
        match add.outcome {
            Outcome::Ok => {
                may_be_there.insert(element.clone());
                if let Some((read, _)) = final_reads.iter().find(|(_, s)| !s.contains(&element)) {
                    lost_count += 1;
                    if lost.len() < EXAMPLES {
                        lost.push(LostAdd {
                            element: add.input.clone(),
                            add: CallRef::of(add),
                            read: CallRef::of(read),
                        });
                    }
                }
            }
            Outcome::Info => {
                may_be_there.insert(element.clone());
                if final_reads.iter().any(|(_, s)| s.contains(&element)) {
                    recovered += 1;
                }
            }
            Outcome::Fail => {}
        }
    }
    let mut unexpected: Vec<Value> = Vec::new();
    let mut seen: FxHashSet<String> = FxHashSet::default();
    for (read, _) in &final_reads {
        for v in read.output.as_array().into_iter().flatten() {
            let text = v.to_string();
            if !may_be_there.contains(&text) && seen.insert(text) {
                unexpected.push(v.clone());
            }
        }
    }

    let acquires = calls.iter().filter(|c| c.f == "acquire").count();
    let unknown_acquires = calls
        .iter()
        .filter(|c| c.f == "acquire" && c.outcome == Outcome::Info)
        .count();
    let acknowledged = adds.iter().filter(|c| c.outcome == Outcome::Ok).count();

    let mut findings = Vec::new();
    if let Some(o) = overlaps.first() {
        findings.push(format!(
            "{} held the lock at once: {}, and {}",
            if overlapping == 1 {
                "two processes".to_string()
            } else {
                format!("{overlapping} pairs of processes")
            },
            o.first.describe(),
            o.second.describe()
        ));
    }
    if let Some(l) = lost.first() {
        findings.push(format!(
            "{} missing from the final read: element {} was added by {}, acknowledged, and is not in {}",
            plural(lost_count, "acknowledged add", "acknowledged adds"),
            l.element,
            l.add.describe(),
            l.read.describe()
        ));
    }
    if let Some(u) = unexpected.first() {
        findings.push(format!(
            "{} in the final read that no add may have added, e.g. {u}",
            plural(unexpected.len(), "element", "elements")
        ));
    }
    let (validity, explanation) = if !findings.is_empty() {
        (Validity::Invalid, findings.join("; "))
    } else if holds.is_empty() {
        // Nothing was ever held: the lock was never tested, which is no
        // evidence that it is safe (a db that refuses every acquire, a
        // client that knows no lock).
        (
            Validity::Unknown,
            format!(
                "no acquire succeeded ({} tried), so the lock was never held and nothing was tested",
                plural(acquires, "acquire", "acquires"),
            ),
        )
    } else if final_reads.is_empty() {
        (
            Validity::Unknown,
            format!(
                "{}, none overlapping, but no final read of the set, so the {} cannot be judged",
                plural(holds.len(), "hold", "holds"),
                plural(acknowledged, "acknowledged add", "acknowledged adds"),
            ),
        )
    } else {
        (
            Validity::Valid,
            format!(
                "{}, none overlapping ({} of unknown outcome); all {} in {}",
                plural(holds.len(), "hold", "holds"),
                plural(unknown_acquires, "acquire", "acquires"),
                plural(acknowledged, "acknowledged add", "acknowledged adds"),
                plural(final_reads.len(), "final read", "final reads"),
            ),
        )
    };
    LockSetReport {
        validity,
        acquires,
        holds: holds.len(),
        unknown_acquires,
        overlapping,
        overlaps,
        adds: adds.len(),
        acknowledged,
        final_reads: final_reads.len(),
        lost_count,
        lost,
        unexpected,
        recovered,
        explanation,
    }
}

#[cfg(test)]
mod tests;
