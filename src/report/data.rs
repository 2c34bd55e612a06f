//! What every artifact draws, taken once from a history: client operations
//! with their times and outcomes, and the fault windows of the nemesis.
//!
//! Pairing here is lenient on purpose (a report must render whatever the
//! history holds): an invocation is paired with the next completion of its
//! process, a completion without an invocation is skipped.

use crate::history::{History, OpType, Process};
use serde_json::Value;

/// How an operation ended, as drawn: `ok`, `fail`, or `info` (unknown, or
/// never completed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Ending {
    /// Took effect.
    Ok,
    /// Did not take effect.
    Fail,
    /// Unknown.
    Info,
}

impl Ending {
    /// All three, in legend order.
    pub const ALL: [Ending; 3] = [Ending::Ok, Ending::Fail, Ending::Info];

    /// `ok`, `fail` or `info`.
    pub fn name(self) -> &'static str {
        match self {
            Ending::Ok => "ok",
            Ending::Fail => "fail",
            Ending::Info => "info",
        }
    }

    /// 0, 1, 2: the code the timeline's data uses.
    pub fn code(self) -> u8 {
        match self {
            Ending::Ok => 0,
            Ending::Fail => 1,
            Ending::Info => 2,
        }
    }

    /// The colour every artifact gives it (RGB).
    pub fn rgb(self) -> (u8, u8, u8) {
        match self {
            Ending::Ok => (0x2e, 0x8b, 0x57),
            Ending::Fail => (0xd6, 0x27, 0x28),
            Ending::Info => (0xe6, 0x9f, 0x00),
        }
    }
}

/// One client operation: invocation and (maybe) completion.
#[derive(Clone, Debug)]
pub struct Span {
    /// The process.
    pub process: u64,
    /// The function.
    pub f: String,
    /// The key, if any.
    pub key: Option<Value>,
    /// The invocation's value.
    pub input: Value,
    /// The completion's value (`Null` if it never completed).
    pub output: Value,
    /// The completion's error.
    pub error: Option<Value>,
    /// How it ended.
    pub ending: Ending,
    /// History index of the invocation.
    pub invoke: usize,
    /// History index of the completion.
    pub complete: Option<usize>,
    /// Time of the invocation (ns, or the event index when the history has
    /// no times).
    pub t0: u64,
    /// Time of the completion.
    pub t1: Option<u64>,
}

impl Span {
    /// Latency in the history's time unit, for completed operations.
    pub fn latency(&self) -> Option<u64> {
        self.t1.map(|t| t.saturating_sub(self.t0))
    }
}

/// A fault in force: from the start op's invocation to the stop op's
/// completion (or the end of the history when it was never stopped).
#[derive(Clone, Debug, PartialEq)]
pub struct FaultWindow {
    /// The family (`partition`, `kill`, `pause`, `packet`, `clock`,
    /// `file-corruption`, `rollback`, or the
    /// nemesis op's `f` for faults this module does not know).
    pub family: String,
    /// What to print: the start op's `f` and value, e.g. `kill ["n1"]`.
    pub label: String,
    /// Start time.
    pub t0: u64,
    /// End time.
    pub t1: u64,
    /// False when no stop op (or heal) closed it.
    pub closed: bool,
}

/// A history, ready to draw.
#[derive(Clone, Debug)]
pub struct Data {
    /// Client operations in invocation order.
    pub spans: Vec<Span>,
    /// Fault windows in start order.
    pub faults: Vec<FaultWindow>,
    /// True when times are nanoseconds; false when they are event indices.
    pub timed: bool,
    /// The last time in the history.
    pub t_end: u64,
}

/// What a nemesis op does to a fault family: starts it, stops it, or (heal)
/// stops every family.
enum Effect {
    Start(String),
    Stop(String),
    StopAll,
    Other,
    /// A measurement (`clock-check`): no fault, no window; the clock plot
    /// draws what it read.
    Measure,
}

fn effect(f: &str) -> Effect {
    let fam = |s: &str| s.to_string();
    match f {
        "start-partition" => Effect::Start(fam("partition")),
        "stop-partition" => Effect::Stop(fam("partition")),
        "kill" => Effect::Start(fam("kill")),
        "start" => Effect::Stop(fam("kill")),
        "pause" => Effect::Start(fam("pause")),
        "resume" => Effect::Stop(fam("pause")),
        "start-packet" => Effect::Start(fam("packet")),
        "stop-packet" => Effect::Stop(fam("packet")),
        "bump-clock" | "strobe-clock" => Effect::Start(fam("clock")),
        "reset-clock" => Effect::Stop(fam("clock")),
        "corrupt-file" => Effect::Start(fam("file-corruption")),
        "restart-corrupted" => Effect::Stop(fam("file-corruption")),
        "snapshot-data" => Effect::Start(fam("rollback")),
        "rollback" => Effect::Stop(fam("rollback")),
        "lose-unfsynced" => Effect::Start(fam("lose-unfsynced")),
        "restart-lost" => Effect::Stop(fam("lose-unfsynced")),
        "remove-member" => Effect::Start(fam("membership")),
        "add-member" => Effect::Stop(fam("membership")),
        "clock-check" | "member-list" => Effect::Measure,
        "heal" => Effect::StopAll,
        // Jepsen's conventions for nemeses this table does not name.
        other => match (other.strip_prefix("start-"), other.strip_prefix("stop-")) {
            (Some(x), _) => Effect::Start(x.to_string()),
            (_, Some(x)) => Effect::Stop(x.to_string()),
            _ => Effect::Other,
        },
    }
}

/// A JSON value in one short line, for labels.
pub fn short(v: &Value, max: usize) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        v => v.to_string(),
    };
    if s.chars().count() > max {
        let cut: String = s.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    } else {
        s
    }
}

impl Data {
    /// Extracts spans and fault windows from `history`.
    pub fn new(history: &History) -> Data {
        let timed = !history.ops.is_empty() && history.ops.iter().all(|o| o.time.is_some());
        let time = |i: usize| -> u64 {
            if timed {
                history.ops[i].time.unwrap_or(0)
            } else {
                i as u64
            }
        };
        let mut spans: Vec<Span> = Vec::new();
        let mut pending: rustc_hash::FxHashMap<u64, usize> = Default::default();
        // Nemesis: the op in flight (index), then windows open per family.
        let mut nem_pending: Option<usize> = None;
        let mut nem_done: Vec<(usize, Option<usize>)> = Vec::new();
        for (i, op) in history.ops.iter().enumerate() {
            match op.process {
                Process::Client(p) => {
                    if op.kind == OpType::Invoke {
                        pending.insert(p, spans.len());
                        spans.push(Span {
                            process: p,
                            f: op.f.clone(),
                            key: op.key.clone(),
                            input: op.value.clone(),
                            output: Value::Null,
                            error: None,
                            ending: Ending::Info,
                            invoke: i,
                            complete: None,
                            t0: time(i),
                            t1: None,
                        });
                    } else if let Some(s) = pending.remove(&p) {
                        let s = &mut spans[s];
                        s.output = op.value.clone();
                        s.error = op.error.clone();
                        s.ending = match op.kind {
                            OpType::Ok => Ending::Ok,
                            OpType::Fail => Ending::Fail,
                            _ => Ending::Info,
                        };
                        s.complete = Some(i);
                        s.t1 = Some(time(i));
                    }
                }
                Process::Nemesis => {
                    // Both halves of a nemesis op are usually `info`: the
                    // second event with the same f completes the first.
                    match nem_pending {
                        Some(j) if op.kind != OpType::Invoke && history.ops[j].f == op.f => {
                            nem_done.push((j, Some(i)));
                            nem_pending = None;
                        }
                        Some(j) => {
                            nem_done.push((j, None));
                            nem_pending = Some(i);
                        }
                        None => nem_pending = Some(i),
                    }
                }
            }
        }
        if let Some(j) = nem_pending {
            nem_done.push((j, None));
        }
        let t_end = (0..history.ops.len()).map(time).max().unwrap_or(0);
        let mut faults: Vec<FaultWindow> = Vec::new();
        let mut open: Vec<usize> = Vec::new();
        for (inv, done) in nem_done {
            let op = &history.ops[inv];
            let t_done = done.map(time).unwrap_or_else(|| time(inv));
            match effect(&op.f) {
                Effect::Start(family) => {
                    let label = if op.value.is_null() {
                        op.f.clone()
                    } else {
                        format!("{} {}", op.f, short(&op.value, 40))
                    };
                    open.push(faults.len());
                    faults.push(FaultWindow {
                        family,
                        label,
                        t0: time(inv),
                        t1: t_end,
                        closed: false,
                    });
                }
                Effect::Stop(family) => open.retain(|&w| {
                    if faults[w].family == family {
                        faults[w].t1 = t_done;
                        faults[w].closed = true;
                        false
                    } else {
                        true
                    }
                }),
                Effect::StopAll => {
                    for w in open.drain(..) {
                        faults[w].t1 = t_done;
                        faults[w].closed = true;
                    }
                }
                Effect::Other => faults.push(FaultWindow {
                    family: op.f.clone(),
                    label: op.f.clone(),
                    t0: time(inv),
                    t1: t_done,
                    closed: true,
                }),
                Effect::Measure => {}
            }
        }
        Data {
            spans,
            faults,
            timed,
            t_end,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Op, OpType::*, Process::*};
    use serde_json::json;

    fn at(mut op: Op, t: u64) -> Op {
        op.time = Some(t);
        op
    }

    #[test]
    fn pairs_spans_and_finds_fault_windows() {
        let h = History::new(vec![
            at(Op::new(0, Client(0), Invoke, "write", json!(1)), 10),
            at(Op::new(0, Nemesis, Info, "kill", json!(["n1"])), 20),
            at(
                Op::new(0, Nemesis, Info, "kill", json!({"n1": "killed"})),
                25,
            ),
            at(Op::new(0, Client(0), Ok, "write", json!(1)), 30),
            at(Op::new(0, Client(1), Invoke, "read", json!(null)), 40),
            at(Op::new(0, Nemesis, Info, "start", json!(null)), 50),
            at(Op::new(0, Nemesis, Info, "start", json!(null)), 60),
            at(
                Op::new(0, Nemesis, Info, "start-partition", json!("majority")),
                70,
            ),
            at(
                Op::new(0, Nemesis, Info, "start-partition", json!("done")),
                71,
            ),
        ]);
        let d = Data::new(&h);
        assert!(d.timed);
        assert_eq!(d.spans.len(), 2);
        assert_eq!(d.spans[0].latency(), Some(20));
        assert_eq!(d.spans[1].ending, Ending::Info);
        assert_eq!(d.spans[1].t1, None);
        assert_eq!(d.faults.len(), 2);
        assert_eq!(d.faults[0].label, "kill [\"n1\"]");
        assert_eq!((d.faults[0].t0, d.faults[0].t1), (20, 60));
        assert!(d.faults[0].closed);
        // Never stopped: open to the end of the history.
        assert_eq!((d.faults[1].t0, d.faults[1].t1), (70, 71));
        assert!(!d.faults[1].closed);
    }
}
