//! Pairing invocations with completions.

use super::{History, OpType, Process};
use serde_json::Value;
use std::fmt;

/// How a client operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Completed and took effect.
    Ok,
    /// Completed and certainly did not take effect.
    Fail,
    /// Unknown: took effect at some point after its invocation, or never.
    /// Also the outcome of an invocation that never completed.
    Info,
}

/// A client operation: an invocation paired with its completion.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    /// The process that performed it.
    pub process: Process,
    /// The function (`read`, `write`, `cas`, ...).
    pub f: String,
    /// The key, for multi-key histories (taken from the invocation).
    pub key: Option<Value>,
    /// The value of the invocation: the argument.
    pub input: Value,
    /// The value of the completion: the result (`Null` when it never completed).
    pub output: Value,
    /// How it ended.
    pub outcome: Outcome,
    /// The completion's `error`, when it has one.
    pub error: Option<Value>,
    /// Position of the invocation in the history.
    pub invoke: usize,
    /// Position of the completion, or `None` when it never completed.
    pub complete: Option<usize>,
}

/// A history that breaks the rules every history obeys.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    /// A completion whose process had nothing in flight.
    #[error("{at}: process {process} completed `{f}` ({kind}) but had no operation in flight")]
    CompletionWithoutInvocation {
        /// Where (file:line or event index).
        at: String,
        /// The process.
        process: Process,
        /// The function of the completion.
        f: String,
        /// Its type.
        kind: OpType,
    },
    /// An invocation by a process that had not finished its last operation.
    #[error("{at}: process {process} invoked `{f}` while its `{pending_f}` (invoked at {pending_at}) was still in flight")]
    DoubleInvocation {
        /// Where.
        at: String,
        /// The process.
        process: Process,
        /// The function of the new invocation.
        f: String,
        /// The operation still in flight.
        pending_f: String,
        /// Where that one was invoked.
        pending_at: String,
    },
    /// An invocation by a process that had already received an `info`.
    #[error("{at}: process {process} invoked `{f}` after its earlier operation ended in `info` at {info_at}; a process that crashed must not invoke again (use a new process number)")]
    InvokeAfterInfo {
        /// Where.
        at: String,
        /// The process.
        process: Process,
        /// The function of the invocation.
        f: String,
        /// Where the `info` was.
        info_at: String,
    },
    /// A completion whose `time` is earlier than its invocation's.
    #[error("{at}: process {process} completed `{f}` at time {completed} ns, earlier than its invocation at {invoked_at} (time {invoked} ns); a completion cannot precede its invocation")]
    CompletionBeforeInvocation {
        /// Where the completion is.
        at: String,
        /// The process.
        process: Process,
        /// The function.
        f: String,
        /// The completion's time.
        completed: u64,
        /// Where the invocation is.
        invoked_at: String,
        /// The invocation's time.
        invoked: u64,
    },
    /// A completion whose function differs from its invocation's.
    #[error("{at}: process {process} completed `{f}` but had invoked `{invoked_f}`")]
    MismatchedCompletion {
        /// Where.
        at: String,
        /// The process.
        process: Process,
        /// The function of the completion.
        f: String,
        /// The function of the invocation.
        invoked_f: String,
    },
}

impl History {
    /// Where event `i` is, for messages: `file:line` when known, else `event i`.
    pub fn locate(&self, i: usize) -> String {
        match (&self.source, self.line_of(i)) {
            (Some(p), Some(l)) => format!("{}:{l}", p.display()),
            (None, Some(l)) => format!("line {l}"),
            _ => format!("event {i}"),
        }
    }

    /// Pairs every client invocation with its completion, in invocation
    /// order. Nemesis events are skipped. An invocation that never completed
    /// becomes a call with outcome `Info`.
    pub fn calls(&self) -> Result<Vec<Call>, HistoryError> {
        use rustc_hash::FxHashMap;
        enum Slot {
            Busy(usize),
            Crashed(usize),
        }
        let mut calls: Vec<Call> = Vec::new();
        // process -> its call in flight (index into `calls`) or where it crashed
        let mut state: FxHashMap<Process, Slot> = FxHashMap::default();
        let mut call_of_slot: FxHashMap<Process, usize> = FxHashMap::default();
        for (i, op) in self.ops.iter().enumerate() {
            if !op.is_client() {
                continue;
            }
            match op.kind {
                OpType::Invoke => {
                    match state.get(&op.process) {
                        Some(Slot::Busy(j)) => {
                            return Err(HistoryError::DoubleInvocation {
                                at: self.locate(i),
                                process: op.process,
                                f: op.f.clone(),
                                pending_f: self.ops[*j].f.clone(),
                                pending_at: self.locate(*j),
                            })
                        }
                        Some(Slot::Crashed(j)) => {
                            return Err(HistoryError::InvokeAfterInfo {
                                at: self.locate(i),
                                process: op.process,
                                f: op.f.clone(),
                                info_at: self.locate(*j),
                            })
                        }
                        None => {}
                    }
                    state.insert(op.process, Slot::Busy(i));
                    call_of_slot.insert(op.process, calls.len());
                    calls.push(Call {
                        process: op.process,
                        f: op.f.clone(),
                        key: op.key.clone(),
                        input: op.value.clone(),
                        output: Value::Null,
                        outcome: Outcome::Info,
                        error: None,
                        invoke: i,
                        complete: None,
                    });
                }
                kind => {
                    let Some(Slot::Busy(j)) = state.get(&op.process) else {
                        return Err(HistoryError::CompletionWithoutInvocation {
                            at: self.locate(i),
                            process: op.process,
                            f: op.f.clone(),
                            kind,
                        });
                    };
                    let j = *j;
                    if self.ops[j].f != op.f {
                        return Err(HistoryError::MismatchedCompletion {
                            at: self.locate(i),
                            process: op.process,
                            f: op.f.clone(),
                            invoked_f: self.ops[j].f.clone(),
                        });
                    }
                    if let (Some(invoked), Some(completed)) = (self.ops[j].time, op.time) {
                        if completed < invoked {
                            return Err(HistoryError::CompletionBeforeInvocation {
                                at: self.locate(i),
                                process: op.process,
                                f: op.f.clone(),
                                completed,
                                invoked_at: self.locate(j),
                                invoked,
                            });
                        }
                    }
                    let c = &mut calls[call_of_slot[&op.process]];
                    c.output = op.value.clone();
                    c.complete = Some(i);
                    c.error = op.error.clone();
                    c.outcome = match kind {
                        OpType::Ok => Outcome::Ok,
                        OpType::Fail => Outcome::Fail,
                        _ => Outcome::Info,
                    };
                    if c.key.is_none() {
                        c.key = op.key.clone();
                    }
                    if kind == OpType::Info {
                        state.insert(op.process, Slot::Crashed(i));
                    } else {
                        state.remove(&op.process);
                    }
                }
            }
        }
        Ok(calls)
    }
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "process {} {} {}", self.process, self.f, self.input)?;
        if let Some(k) = &self.key {
            write!(f, " (key {k})")?;
        }
        match self.outcome {
            Outcome::Ok => write!(f, " -> ok {}", self.output),
            Outcome::Fail => write!(f, " -> fail {}", self.output),
            Outcome::Info => write!(f, " -> info"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Op;
    use serde_json::json;

    fn op(p: u64, kind: OpType, f: &str, v: Value) -> Op {
        Op::new(0, Process::Client(p), kind, f, v)
    }

    #[test]
    fn pairs_and_marks_unfinished_as_info() {
        let h = History::new(vec![
            op(0, OpType::Invoke, "write", json!(1)),
            op(1, OpType::Invoke, "read", Value::Null),
            op(0, OpType::Ok, "write", json!(1)),
            op(1, OpType::Ok, "read", json!(1)),
            op(2, OpType::Invoke, "write", json!(2)),
        ]);
        let calls = h.calls().unwrap();
        assert_eq!(calls.len(), 3);
        assert_eq!(calls[1].output, json!(1));
        assert_eq!(calls[1].complete, Some(3));
        assert_eq!(calls[2].outcome, Outcome::Info);
        assert_eq!(calls[2].complete, None);
    }

    #[test]
    fn rejects_completion_without_invocation() {
        let h = History::new(vec![op(0, OpType::Ok, "read", json!(1))]);
        let e = h.calls().unwrap_err();
        assert!(
            matches!(e, HistoryError::CompletionWithoutInvocation { .. }),
            "{e}"
        );
        assert!(e.to_string().contains("no operation in flight"));
    }

    #[test]
    fn rejects_a_completion_earlier_than_its_invocation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.jsonl");
        std::fs::write(
            &path,
            "{\"process\":0,\"type\":\"invoke\",\"f\":\"read\",\"time\":500}\n\
             {\"process\":1,\"type\":\"invoke\",\"f\":\"read\",\"time\":100}\n\
             {\"process\":0,\"type\":\"ok\",\"f\":\"read\",\"value\":1,\"time\":400}\n",
        )
        .unwrap();
        let h = crate::history::read_path(&path, None).unwrap();
        let e = h.calls().unwrap_err();
        assert!(
            matches!(e, HistoryError::CompletionBeforeInvocation { .. }),
            "{e}"
        );
        let p = path.display();
        assert_eq!(
            e.to_string(),
            format!(
                "{p}:3: process 0 completed `read` at time 400 ns, earlier than its invocation at {p}:1 \
                 (time 500 ns); a completion cannot precede its invocation"
            )
        );
        // Equal times, or times on only one side, are fine.
        let h = History::new(vec![
            Op {
                time: Some(7),
                ..op(0, OpType::Invoke, "read", Value::Null)
            },
            Op {
                time: Some(7),
                ..op(0, OpType::Ok, "read", json!(1))
            },
            op(1, OpType::Invoke, "read", Value::Null),
            Op {
                time: Some(1),
                ..op(1, OpType::Ok, "read", json!(1))
            },
        ]);
        assert_eq!(h.calls().unwrap().len(), 2);
    }

    #[test]
    fn rejects_double_invocation() {
        let h = History::new(vec![
            op(0, OpType::Invoke, "read", Value::Null),
            op(0, OpType::Invoke, "write", json!(1)),
        ]);
        let e = h.calls().unwrap_err();
        assert!(matches!(e, HistoryError::DoubleInvocation { .. }), "{e}");
        assert!(e.to_string().contains("still in flight"));
    }

    #[test]
    fn rejects_invoke_after_info() {
        let h = History::new(vec![
            op(0, OpType::Invoke, "write", json!(1)),
            op(0, OpType::Info, "write", json!(1)),
            op(0, OpType::Invoke, "read", Value::Null),
        ]);
        let e = h.calls().unwrap_err();
        assert!(matches!(e, HistoryError::InvokeAfterInfo { .. }), "{e}");
        assert!(e.to_string().contains("event 1"));
    }
}
