//! Loading a history file straight into compact transactions ([`Txns`]):
//! the file is streamed ([`OpStream`]), invocations are paired with their
//! completions as they come (by the rules of [`History::calls`], with the
//! same errors), and each transaction's value is decoded from the file's
//! text into the builder's flat vectors without building a JSON tree. No
//! copy of the text and no tree per operation is kept, so a history takes
//! a few hundred bytes per transaction instead of several kilobytes.
//!
//! Values of the usual shape (`[[append 1 2] [r 3 [1 2]]]` in EDN or
//! JSON, integer keys and values) come decoded from the stream, which
//! reads them into integers as it scans the operation
//! ([`IntTxn`](crate::history::read::stream::IntTxn): the text is read
//! once); they are put in the builder by the rules of
//! [`Builder::decode_value`]. Any other value is parsed into JSON and
//! decoded by `decode_value` itself, the same code
//! [`parse::decode`](super::parse::decode) uses, so both doors decode
//! alike. When the stream cannot read the file as the
//! whole-file readers do, [`load`] says so (`None`) and the caller reads
//! the file whole.
//!
//! Two threads share the work: one reads and parses the file and hands
//! over batches of operations (headers, and values as integers or, when
//! unusual, as text), the other pairs them and builds the transactions.
//! Parsing is most of the work; the pairing thread's share (interning,
//! the flat vectors, renumbering at the end) runs beside it.
//!
//! [`History::calls`]: crate::history::History::calls

use super::parse::{Builder, Interner, Mop, MopRange, Span, Txns, NIL};
use super::{TxnError, TxnKind};
use crate::history::read::stream::{Fallback, IntMop, IntValue, MopName, OpStream, RawValue};
use crate::history::{Format, HistoryError, Op, OpType, Outcome, Process};
use rustc_hash::{FxHashMap, FxHashSet};
use serde_json::Value;
use std::path::Path;
use std::sync::mpsc;

/// A history loaded as transactions.
pub(crate) struct Loaded {
    pub txns: Txns,
    pub atoms: Interner,
    /// Client operations that were not transactions.
    pub skipped: usize,
    /// Bytes of the file.
    pub bytes: u64,
}

/// What a process is doing.
enum Slot {
    /// An operation in flight: its invocation's line, function
    /// (index into the names), time, and its transaction with the
    /// invocation's micro-operations (or why they did not decode).
    Busy {
        line: usize,
        f: u32,
        time: Option<u64>,
        txn: Option<(usize, Result<MopRange, String>)>,
    },
    /// It ended in `info` at this line: it must not invoke again.
    Crashed { line: usize },
}

/// The first decode error in call (invocation) order: the transaction,
/// where, and what.
type DecodeError = (usize, String, String);

/// Loads `path` as transactions of `workload`; `Ok(None)` when it must be
/// read whole instead (see the module comment).
pub(crate) fn load(
    path: &Path,
    format: Option<Format>,
    workload: TxnKind,
) -> Result<Option<Loaded>, TxnError> {
    match load_inner(path, format, workload) {
        Ok(r) => r.map(Some),
        Err(Fallback) => Ok(None),
    }
}

/// How many operations the reading thread hands over at a time.
const BATCH: usize = 4096;

/// One operation as the reading thread hands it over: its header, and its
/// value decoded into integers when it is of the usual shape.
struct Event {
    index: usize,
    line: usize,
    process: Process,
    kind: OpType,
    /// Index of its function among the names handed over so far.
    f: u32,
    time: Option<u64>,
    value: EventValue,
}

enum EventValue {
    /// No value, `null` or `nil`.
    Null,
    /// A transaction the builder takes as it is (see [`shape`]): the
    /// range `mops` of the batch's micro-operations, their lists relative
    /// to `elems` of the batch's elements.
    Ints {
        mops: (usize, usize),
        elems: usize,
    },
    /// Any other value, as the stream gave it (decoded when needed).
    Json(String),
    Edn(String, usize),
    Parsed(Value),
}

impl EventValue {
    fn is_null(&self) -> bool {
        matches!(self, EventValue::Null)
    }
}

/// Operations handed over by the reading thread, with what they refer to.
#[derive(Default)]
struct Batch {
    events: Vec<Event>,
    /// Key and shape of each micro-operation decoded into integers.
    mops: Vec<(i64, Shape)>,
    elems: Vec<i64>,
    /// Function names first met in this batch, in the order of their ids.
    names: Vec<String>,
}

impl Batch {
    fn clear(&mut self) {
        self.events.clear();
        self.mops.clear();
        self.elems.clear();
        self.names.clear();
    }
}

/// What the reading thread sends.
enum Message {
    Batch(Batch),
    /// The end of the history (the bytes read), or the stream gave up.
    End(Result<u64, Fallback>),
}

/// The reading thread: streams the file into batches of events. Nemesis
/// operations are left out (pairing ignores them). A value is handed over
/// as integers only when the builder takes every micro-operation of it as
/// it is ([`shape`]); otherwise its text goes, to be decoded as JSON.
fn read_events(
    mut stream: OpStream,
    workload: TxnKind,
    out: &mpsc::SyncSender<Message>,
    free: &mpsc::Receiver<Batch>,
) {
    let mut names: Vec<String> = Vec::new();
    let mut batch = Batch::default();
    loop {
        let op = match stream.next_op() {
            Ok(Some(op)) => op,
            Ok(None) => {
                let bytes = stream.bytes_read();
                if out.send(Message::Batch(batch)).is_ok() {
                    let _ = out.send(Message::End(Ok(bytes)));
                }
                return;
            }
            Err(e) => {
                let _ = out.send(Message::End(Err(e)));
                return;
            }
        };
        if op.process == Process::Nemesis {
            continue;
        }
        let f = match names.iter().position(|n| *n == op.f) {
            Some(i) => i as u32,
            None => {
                names.push(op.f.to_string());
                batch.names.push(op.f.to_string());
                (names.len() - 1) as u32
            }
        };
        // Decoded, if at all, as an invocation's (reads unknown) or an ok
        // completion's.
        let ok = op.kind == OpType::Ok;
        let start = batch.mops.len();
        let taken = op.ints.is_some_and(|t| {
            let shapes = t
                .mops
                .iter()
                .map(|m| shape(workload, m, ok).map(|s| (m.key, s)));
            for s in shapes {
                match s {
                    Some(s) => batch.mops.push(s),
                    None => {
                        batch.mops.truncate(start);
                        return false;
                    }
                }
            }
            true
        });
        let value = match (op.ints, &op.value) {
            (Some(t), _) if taken => {
                let elems = batch.elems.len();
                batch.elems.extend_from_slice(&t.elems);
                EventValue::Ints {
                    mops: (start, batch.mops.len()),
                    elems,
                }
            }
            (_, v) if v.is_null() => EventValue::Null,
            (_, RawValue::Json(t)) => EventValue::Json(t.to_string()),
            (_, RawValue::Edn(t, depth)) => EventValue::Edn(t.to_string(), *depth),
            (_, RawValue::Parsed(v)) => EventValue::Parsed(v.clone()),
            (_, RawValue::Absent) => EventValue::Null,
        };
        batch.events.push(Event {
            index: op.index,
            line: op.line,
            process: op.process,
            kind: op.kind,
            f,
            time: op.time,
            value,
        });
        if batch.events.len() >= BATCH {
            let mut next = free.try_recv().unwrap_or_default();
            next.clear();
            if out
                .send(Message::Batch(std::mem::replace(&mut batch, next)))
                .is_err()
            {
                // The pairing ended early: it needs no more.
                return;
            }
        }
    }
}

fn load_inner(
    path: &Path,
    format: Option<Format>,
    workload: TxnKind,
) -> Result<Result<Loaded, TxnError>, Fallback> {
    let stream = OpStream::open(path, format)?;
    // Reading and parsing run on one thread, pairing and building on this
    // one; a few batches in flight keep both busy.
    let (to_pairing, events) = mpsc::sync_channel(4);
    let (recycle, free) = mpsc::channel();
    std::thread::scope(|scope| {
        scope.spawn(move || read_events(stream, workload, &to_pairing, &free));
        let r = pair(path, workload, &events, &recycle);
        // Dropping the receiver stops the reading thread if pairing ended
        // early.
        drop(events);
        r
    })
}

/// Pairs the events as they come and builds the transactions.
fn pair(
    path: &Path,
    workload: TxnKind,
    events: &mpsc::Receiver<Message>,
    recycle: &mpsc::Sender<Batch>,
) -> Result<Result<Loaded, TxnError>, Fallback> {
    let at = |line: usize| format!("{}:{line}", path.display());
    let mut b = Builder::new(workload);
    if let Ok(meta) = std::fs::metadata(path) {
        b.reserve_for_file(meta.len());
    }
    let mut slots: FxHashMap<Process, Slot> = FxHashMap::default();
    let mut names: Vec<String> = Vec::new();
    let mut skipped = 0;
    // The first broken rule of histories ends pairing; the file is still
    // read to its end, since a bad line anywhere is reported first.
    let mut broken: Option<HistoryError> = None;
    let mut decode_error: Option<DecodeError> = None;
    let note = |e: &mut Option<DecodeError>, t: usize, line: usize, message: String| {
        if e.as_ref().map_or(true, |(first, _, _)| t < *first) {
            *e = Some((t, at(line), message));
        }
    };
    let bytes = loop {
        let batch = match events.recv() {
            Ok(Message::Batch(batch)) => batch,
            Ok(Message::End(r)) => break r?,
            // The reading thread ended without a word: it panicked.
            Err(_) => return Err(Fallback),
        };
        names.extend(batch.names.iter().cloned());
        for op in &batch.events {
            if broken.is_some() {
                break;
            }
            let f_name = names[op.f as usize].as_str();
            if op.kind == OpType::Invoke {
                match slots.get(&op.process) {
                    Some(Slot::Busy { line, f, .. }) => {
                        broken = Some(HistoryError::DoubleInvocation {
                            at: at(op.line),
                            process: op.process,
                            f: f_name.to_string(),
                            pending_f: names[*f as usize].clone(),
                            pending_at: at(*line),
                        });
                        continue;
                    }
                    Some(Slot::Crashed { line }) => {
                        broken = Some(HistoryError::InvokeAfterInfo {
                            at: at(op.line),
                            process: op.process,
                            f: f_name.to_string(),
                            info_at: at(*line),
                        });
                        continue;
                    }
                    None => {}
                }
                let txn = if super::parse::is_txn(f_name) {
                    let mops = decode(&mut b, &batch, &op.value, false)?;
                    // Until it completes (if ever), it is what its invocation says.
                    let range = *mops.as_ref().unwrap_or(&MopRange::EMPTY);
                    let t = b.push_txn(op.process, Outcome::Info, op.index, None, range);
                    Some((t, mops))
                } else {
                    skipped += 1;
                    None
                };
                slots.insert(
                    op.process,
                    Slot::Busy {
                        line: op.line,
                        f: op.f,
                        time: op.time,
                        txn,
                    },
                );
                continue;
            }
            let Some(Slot::Busy {
                line: inv_line,
                f,
                time,
                ..
            }) = slots.get(&op.process)
            else {
                // Elle's histories of completions only read with invented
                // invocations (`shapes::invoke_completions`): the whole
                // reader decides that from the whole file.
                return Err(Fallback);
            };
            if *f != op.f {
                broken = Some(HistoryError::MismatchedCompletion {
                    at: at(op.line),
                    process: op.process,
                    f: f_name.to_string(),
                    invoked_f: names[*f as usize].clone(),
                });
                continue;
            }
            if let (Some(invoked), Some(completed)) = (*time, op.time) {
                if completed < invoked {
                    broken = Some(HistoryError::CompletionBeforeInvocation {
                        at: at(op.line),
                        process: op.process,
                        f: f_name.to_string(),
                        completed,
                        invoked_at: at(*inv_line),
                        invoked,
                    });
                    continue;
                }
            }
            let outcome = match op.kind {
                OpType::Ok => Outcome::Ok,
                OpType::Fail => Outcome::Fail,
                _ => Outcome::Info,
            };
            let next = if op.kind == OpType::Info {
                Some(Slot::Crashed { line: op.line })
            } else {
                None
            };
            let done = match next {
                Some(s) => slots.insert(op.process, s),
                None => slots.remove(&op.process),
            };
            let Some(Slot::Busy {
                line: inv_line,
                txn: Some((t, invoked)),
                ..
            }) = done
            else {
                continue;
            };
            // An ok completion carries the reads' results; otherwise the
            // invocation's value is what we know.
            let reads_known = outcome == Outcome::Ok && !op.value.is_null();
            let mops = if reads_known {
                match decode(&mut b, &batch, &op.value, true)? {
                    Ok(m) => m,
                    Err(message) => {
                        note(&mut decode_error, t, op.line, message);
                        MopRange::EMPTY
                    }
                }
            } else {
                match invoked {
                    Ok(m) => m,
                    Err(message) => {
                        note(&mut decode_error, t, inv_line, message);
                        MopRange::EMPTY
                    }
                }
            };
            b.settle(t, outcome, Some(op.index), mops);
        }
        // The reading thread may be gone (it ended): then the batch is
        // simply dropped.
        let _ = recycle.send(batch);
    };
    if let Some(e) = broken {
        return Ok(Err(TxnError::History(e)));
    }
    // Transactions that never completed keep their invocation's value.
    for slot in slots.into_values() {
        if let Slot::Busy {
            line,
            txn: Some((t, Err(message))),
            ..
        } = slot
        {
            note(&mut decode_error, t, line, message);
        }
    }
    if let Some((_, at, message)) = decode_error {
        return Ok(Err(TxnError::Decode { at, message }));
    }
    let (txns, atoms) = b.finish();
    Ok(Ok(Loaded {
        txns,
        atoms,
        skipped,
        bytes,
    }))
}

/// Decodes a transaction value into the builder: its micro-operations'
/// range, or why it is not a transaction (the message
/// [`Builder::decode_value`] gives).
fn decode(
    b: &mut Builder,
    batch: &Batch,
    v: &EventValue,
    reads_known: bool,
) -> Result<Result<MopRange, String>, Fallback> {
    if let Err(e) = b.begin() {
        return Ok(Err(e));
    }
    let value = match v {
        EventValue::Ints { mops, elems } => {
            let mops = &batch.mops[mops.0..mops.1];
            if let Err(e) = from_ints(b, mops, &batch.elems[*elems..]) {
                b.abandon();
                return Ok(Err(e));
            }
            return Ok(b.end());
        }
        EventValue::Null => Value::Null,
        EventValue::Json(t) => RawValue::Json(t).to_value()?,
        EventValue::Edn(t, depth) => RawValue::Edn(t, *depth).to_value()?,
        EventValue::Parsed(v) => v.clone(),
    };
    if let Err(e) = b.decode_value(&value, reads_known) {
        b.abandon();
        return Ok(Err(e));
    }
    Ok(b.end())
}

/// How the builder takes a micro-operation decoded into integers, by the
/// rules of [`Builder::decode_value`], in an invocation's value or (with
/// `ok`) an ok completion's; `None` for one those rules do not take as it
/// is (a list appended, a list read unknown, a register read of a list...):
/// its value is then decoded from JSON, error and all.
fn shape(workload: TxnKind, m: &IntMop, ok: bool) -> Option<Shape> {
    Some(match (workload, m.f, m.value) {
        (TxnKind::ListAppend, MopName::Append, IntValue::Int(v)) => Shape::Append(v),
        (TxnKind::RwRegister, MopName::Write, IntValue::Int(v)) => Shape::Write(v),
        (_, MopName::Read, IntValue::Nil) if !ok => Shape::Unknown(None),
        (_, MopName::Read, IntValue::Int(v)) if !ok => Shape::Unknown(Some(v)),
        (TxnKind::RwRegister, MopName::Read, IntValue::Nil) => Shape::Register(None),
        (TxnKind::RwRegister, MopName::Read, IntValue::Int(v)) => Shape::Register(Some(v)),
        (TxnKind::ListAppend, MopName::Read, IntValue::Nil) => Shape::List(None),
        (TxnKind::ListAppend, MopName::Read, IntValue::List(start, len)) => {
            Shape::List(Some((start as usize, len as usize)))
        }
        _ => return None,
    })
}

/// A micro-operation as the builder takes it (see [`shape`]).
#[derive(Clone, Copy)]
enum Shape {
    Append(i64),
    Write(i64),
    /// A read of unknown result, with the value it carried.
    Unknown(Option<i64>),
    /// A register read (`None`: nil).
    Register(Option<i64>),
    /// A list read: `None` for nil, or a range of the elements.
    List(Option<(usize, usize)>),
}

/// A value decoded into integers, into the builder as
/// [`Builder::decode_value`] would put its JSON; the same error when the
/// builder is full.
fn from_ints(b: &mut Builder, mops: &[(i64, Shape)], elems: &[i64]) -> Result<(), String> {
    for &(key, shape) in mops {
        let key = b.atoms.intern_int(key);
        let mop = match shape {
            Shape::Append(v) => Mop::Append {
                key,
                value: b.atoms.intern_int(v),
            },
            Shape::Write(v) => Mop::Write {
                key,
                value: b.atoms.intern_int(v),
            },
            Shape::Unknown(v) => Mop::ReadUnknown {
                key,
                shown: match v {
                    Some(v) => b.atoms.intern_int(v),
                    None => b.atoms.intern_null(),
                },
            },
            Shape::Register(v) => Mop::ReadReg {
                key,
                value: v.map_or(NIL, |v| b.atoms.intern_int(v)),
            },
            Shape::List(None) => Mop::ReadList {
                key,
                values: Span::NIL,
            },
            Shape::List(Some((start, len))) => {
                let mark = b.elems_mark();
                for &x in &elems[start..start + len] {
                    let id = b.atoms.intern_int(x);
                    b.push_elem(id);
                }
                Mop::ReadList {
                    key,
                    values: b.span_since(mark)?,
                }
            }
        };
        b.push_mop(mop);
    }
    Ok(())
}

/// The events of `path` at the given positions (sorted), as the ordinary
/// reader reads them; `None` when the stream cannot read the file.
pub(crate) fn events_at(path: &Path, format: Option<Format>, wanted: &[usize]) -> Option<Vec<Op>> {
    let want: FxHashSet<usize> = wanted.iter().copied().collect();
    let mut stream = OpStream::open(path, format).ok()?;
    let mut out = Vec::with_capacity(wanted.len());
    while out.len() < want.len() {
        let op = stream.next_op().ok()??;
        if want.contains(&op.index) {
            out.push(op.to_op().ok()?);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::super::{check, check_path, TxnKind, TxnOptions};
    use crate::history::read_path;
    use std::path::Path;

    /// Checks `text` (written to a file named `name`) both ways: streamed
    /// and read whole. Returns the streamed outcome as text (`None` when
    /// the stream gave up), after asserting it equals the whole one.
    fn both(name: &str, text: &str, kind: TxnKind) -> Option<String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let opts = TxnOptions::new(kind);
        let whole = match read_path(&path, None) {
            Ok(h) => match check(&h, &opts) {
                Ok(r) => Ok(report_text(&r)),
                Err(e) => Err(e.to_string()),
            },
            Err(e) => Err(e.to_string()),
        };
        let streamed = check_path(&path, None, &opts)?;
        let streamed = match streamed {
            Ok(c) => Ok(report_text(&c.report)),
            Err(e) => Err(e.to_string()),
        };
        assert_eq!(streamed, whole, "{name}");
        Some(match streamed {
            Ok(t) | Err(t) => t.replace(&*dir.path().to_string_lossy(), "DIR"),
        })
    }

    fn report_text(r: &super::super::TxnReport) -> String {
        let mut v = serde_json::to_value(r).unwrap();
        v["elapsed_ms"] = serde_json::Value::Null;
        v.to_string()
    }

    #[test]
    fn broken_rules_of_histories_give_the_same_errors_with_file_and_line() {
        // A completion without an invocation: the whole reader decides
        // (a file of completions only is Elle's shape, and reads), and
        // says the same.
        let stray = "{:process 0, :type :invoke, :f :txn, :value [[:r 1 nil]]}\n{:process 1, :type :ok, :f :txn, :value [[:r 1 []]]}\n";
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.edn");
        std::fs::write(&path, stray).unwrap();
        let opts = TxnOptions::new(TxnKind::ListAppend);
        assert!(check_path(&path, None, &opts).is_none());
        let whole = read_path(&path, None).unwrap();
        assert_eq!(
            check(&whole, &opts).unwrap_err().to_string(),
            format!(
                "{}:2: process 1 completed `txn` (ok) but had no operation in flight",
                path.display()
            )
        );
        let cases = [
            (
                "{:process 0, :type :invoke, :f :txn, :value []}\n{:process 0, :type :invoke, :f :txn, :value []}\n",
                "DIR/h.edn:2: process 0 invoked `txn` while its `txn` (invoked at DIR/h.edn:1) was still in flight",
            ),
            (
                "{:process 0, :type :invoke, :f :txn, :value []}\n{:process 0, :type :info, :f :txn, :value []}\n{:process 0, :type :invoke, :f :txn, :value []}\n",
                "DIR/h.edn:3: process 0 invoked `txn` after its earlier operation ended in `info` at DIR/h.edn:2; a process that crashed must not invoke again (use a new process number)",
            ),
            (
                "{:process 0, :type :invoke, :f :txn, :time 9, :value []}\n{:process 0, :type :ok, :f :txn, :time 5, :value []}\n",
                "DIR/h.edn:2: process 0 completed `txn` at time 5 ns, earlier than its invocation at DIR/h.edn:1 (time 9 ns); a completion cannot precede its invocation",
            ),
            (
                "{:process 0, :type :invoke, :f :txn, :value []}\n{:process 0, :type :ok, :f :read, :value []}\n",
                "DIR/h.edn:2: process 0 completed `read` but had invoked `txn`",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(
                both("h.edn", text, TxnKind::ListAppend).as_deref(),
                Some(want)
            );
        }
    }

    #[test]
    fn undecodable_transactions_give_the_same_errors() {
        // The completion's value is decoded when it is ok: its line.
        let t = "{\"process\":0,\"type\":\"invoke\",\"f\":\"txn\",\"value\":[[\"r\",1,null]]}\n\
                 {\"process\":0,\"type\":\"ok\",\"f\":\"txn\",\"value\":[[\"r\",1,7]]}\n";
        let e = both("h.jsonl", t, TxnKind::ListAppend).unwrap();
        assert_eq!(
            e,
            "DIR/h.jsonl:2: a list-append read must return a list or null, got 7 in [\"r\",1,7]"
        );
        // An info transaction keeps its invocation's value: the first
        // undecodable transaction in invocation order is reported, though
        // the later one completed first.
        let t = "{:process 0, :type :invoke, :value [[:x 1 2]]}\n\
                 {:process 1, :type :invoke, :value 5}\n\
                 {:process 1, :type :info, :value 5}\n\
                 {:process 0, :type :fail, :value [[:x 1 2]]}\n";
        let e = both("h.edn", t, TxnKind::ListAppend).unwrap();
        assert!(
            e.starts_with(
                "DIR/h.edn:1: unknown micro-operation [\"x\",1,2] for the list-append workload"
            ),
            "{e}"
        );
        // An ok completion's error does not hide an earlier invocation's.
        let t = "{:process 0, :type :invoke, :value [[:w 1 2]]}\n\
                 {:process 1, :type :invoke, :value [[:r 1 nil]]}\n\
                 {:process 1, :type :ok, :value [[:r 1 :oops]]}\n";
        assert_eq!(
            both("h.edn", t, TxnKind::ListAppend).unwrap(),
            "DIR/h.edn:1: unknown micro-operation [\"w\",1,2] for the list-append workload (expected [\"append\", k, v] or [\"r\", k, [..]])"
        );
    }

    #[test]
    fn what_only_the_whole_file_reader_decides_is_left_to_it() {
        // A bad line, wherever it is, is the whole reader's error.
        let bad = "{\"process\":0,\"type\":\"invoke\",\"f\":\"txn\",\"value\":[]}\n{\"process\":0,\"tipe\":\"ok\"}\n";
        assert_eq!(both("h.jsonl", bad, TxnKind::ListAppend), None);
        // Operations without :process are numbered from the whole history.
        let anonymous = "{:type :invoke, :value [[:r 1 nil]]}\n{:type :ok, :value [[:r 1 []]]}\n";
        assert_eq!(both("h.edn", anonymous, TxnKind::ListAppend), None);
        // Every invocation a pair: perhaps an independent test's tuples.
        let pairs = "{:process 0, :type :invoke, :value [[:r 1 nil] [:append 1 2]]}\n{:process 0, :type :ok, :value [[:r 1 []] [:append 1 2]]}\n";
        assert_eq!(both("h.edn", pairs, TxnKind::ListAppend), None);
        // Named, the format settles it.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.edn");
        std::fs::write(&path, pairs).unwrap();
        let opts = TxnOptions::new(TxnKind::ListAppend);
        let r = check_path(&path, Some(crate::history::Format::Edn), &opts);
        assert!(matches!(r, Some(Ok(_))));
        // A console log is not streamed at all.
        let log = "INFO  jepsen.util - 0\t:invoke\t:txn\t[[:r 1 nil]]\n";
        assert_eq!(both("h.log", log, TxnKind::ListAppend), None);
        assert!(Path::new("/").exists());
    }

    #[test]
    fn unusual_values_are_decoded_as_the_whole_reader_does() {
        // String keys and values, escapes, floats, big integers, keyword
        // keys, lists in a vector of maps with tags and comments.
        let edn = "; a history\n[#jepsen.history.Op{:process 0, :type :invoke, :f :txn, :value [[:append \"x\" 1] [:append :k 2.5] [:r 99999999999999999999 nil]]}\n\
                   {:process 0, :type :ok, :f :txn, :value [[:append \"x\" 1] [:append :k 2.5] [:r 99999999999999999999 nil]], :node \"n1\", :error nil}\n\
                   {:process 1, :type :invoke, :f \"txn\", :value ([\"r\" \"x\" nil] [:r :k nil])}\n\
                   {:process 1, :type :ok, :f :txn, :value [[:r \"x\" [1]] [:r :k [2.5]]], :extra {:a [1 2 #{3}]}}\n\
                   {:process :nemesis, :type :info, :f :start, :value \"cut \\\"n1\\\"\"}\n]\n";
        let r = both("h.edn", edn, TxnKind::ListAppend).unwrap();
        assert!(r.contains("\"validity\":\"valid\""), "{r}");
        let jsonl = "{\"index\":0,\"process\":0,\"type\":\"invoke\",\"f\":\"txn\",\"value\":[[\"append\",\"x\\\"y\",1],[\"r\",-0,null]],\"node\":\"n\"}\n\
                     \n\
                     {\"process\":0,\"type\":\"ok\",\"f\":\"txn\",\"value\":[[\"append\",\"x\\\"y\",1],[\"r\",-0,[]]],\"error\":{\"a\":[1,2.5e3,true]}}\r\n\
                     {\"process\":1,\"type\":\"invoke\",\"f\":\"txn\",\"value\":[[\"r\",\"x\\\"y\",null]]}\n\
                     {\"process\":1,\"type\":\"ok\",\"f\":\"txn\",\"value\":[[\"r\",\"x\\\"y\",[2]]]}\n";
        let r = both("h.jsonl", jsonl, TxnKind::ListAppend).unwrap();
        assert!(r.contains("garbage-read"), "{r}");
    }

    /// xorshift64*: a seed describes a whole history.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
        }
    }

    /// A transaction in flight: its micro-operations (`r` or a write, key,
    /// value written) and its function.
    type InFlight = (Vec<(u8, u64, i64)>, &'static str);

    /// The ways a generated history is written.
    #[derive(Clone, Copy, Debug)]
    enum Syntax {
        Jsonl,
        EdnLines,
        EdnVector,
    }

    /// A history like Jepsen's list-append or rw-register tests write:
    /// concurrent processes, transactions that fail, crash (`info`) or never
    /// complete, a nemesis, now and then another function, reads that
    /// take effect when the transaction completes, and (with `forge`) reads
    /// that miss the last write (anomalies). With `odd`, some keys and
    /// values are of unusual shape (strings, keywords, big or negative
    /// numbers, lists as EDN lists) and fields come in any order.
    fn generated(seed: u64, kind: TxnKind, syntax: Syntax, forge: bool, odd: bool) -> String {
        let mut rng = Rng(seed | 1);
        let edn = !matches!(syntax, Syntax::Jsonl);
        let registers = kind == TxnKind::RwRegister;
        let keys = 1 + rng.below(5);
        let procs = 1 + rng.below(4);
        let mut state: Vec<Vec<i64>> = vec![Vec::new(); keys as usize];
        let mut next = 1i64;
        // Per process: its micro-operations in flight (f, key, value), and
        // the function invoked.
        let mut pending: Vec<Option<InFlight>> = vec![None; procs as usize];
        let mut crashed = vec![false; procs as usize];
        let mut lines: Vec<String> = Vec::new();
        let name = |f: u8| match (f, registers, edn) {
            (b'r', _, true) => ":r",
            (b'r', _, false) => "\"r\"",
            (_, false, true) => ":append",
            (_, false, false) => "\"append\"",
            (_, true, true) => ":w",
            (_, true, false) => "\"w\"",
        };
        let key_text = |k: u64, rng: &mut Rng| -> String {
            match (odd, rng.below(12)) {
                (true, 0) if edn => format!(":k{k}"),
                (true, 1) => format!("\"k{k}\""),
                (true, 2) => format!("-{}", k + 1),
                (true, 3) => format!("99999999999999999999{k}"),
                _ => k.to_string(),
            }
        };
        let nil = if edn { "nil" } else { "null" };
        let sep = if edn { " " } else { "," };
        for index in 0..(4 + rng.below(40)) {
            let p = rng.below(procs) as usize;
            if rng.below(15) == 0 {
                let f = if edn { ":kill" } else { "\"kill\"" };
                let process = if edn { ":nemesis" } else { "\"nemesis\"" };
                let kind = if edn { ":info" } else { "\"info\"" };
                lines.push(field_line(edn, &mut rng, odd, index, process, kind, f, nil));
                continue;
            }
            if crashed[p] {
                continue;
            }
            let (kind, f, value) = match pending[p].take() {
                None => {
                    let txn = rng.below(8) != 0;
                    let mops: Vec<(u8, u64, i64)> = (0..rng.below(4))
                        .map(|_| {
                            let k = rng.below(keys);
                            if rng.below(2) == 0 {
                                (b'r', k, 0)
                            } else {
                                next += 1;
                                (b'w', k, next)
                            }
                        })
                        .collect();
                    let text: Vec<String> = mops
                        .iter()
                        .map(|&(f, k, v)| {
                            let v = if f == b'r' {
                                nil.to_string()
                            } else {
                                v.to_string()
                            };
                            format!("[{}{sep}{}{sep}{v}]", name(f), key_text(k, &mut rng))
                        })
                        .collect();
                    let f = if txn { "txn" } else { "lookup" };
                    pending[p] = Some((mops, f));
                    ("invoke", f, text.join(sep))
                }
                Some((mops, f)) => {
                    let outcome = match rng.below(10) {
                        0 => "fail",
                        1 => "info",
                        _ => "ok",
                    };
                    crashed[p] = outcome == "info";
                    let text: Vec<String> = mops
                        .iter()
                        .map(|&(m, k, v)| {
                            let list = &mut state[k as usize];
                            let shown = match m {
                                b'r' if outcome != "ok" => nil.to_string(),
                                b'r' if registers => {
                                    list.last().map_or(nil.to_string(), i64::to_string)
                                }
                                b'r' => {
                                    let mut xs = list.clone();
                                    if forge && rng.below(3) == 0 {
                                        xs.pop();
                                    }
                                    let xs: Vec<String> = xs.iter().map(i64::to_string).collect();
                                    if xs.is_empty() && rng.below(2) == 0 {
                                        nil.to_string()
                                    } else {
                                        format!("[{}]", xs.join(sep))
                                    }
                                }
                                _ => {
                                    if outcome == "ok" {
                                        list.push(v);
                                    }
                                    v.to_string()
                                }
                            };
                            format!("[{}{sep}{}{sep}{shown}]", name(m), key_text(k, &mut rng))
                        })
                        .collect();
                    (outcome, f, text.join(sep))
                }
            };
            let value = match (odd && edn, rng.below(6)) {
                (true, 0) => format!("({value})"),
                _ => format!("[{value}]"),
            };
            let (process, kind, f) = if edn {
                (p.to_string(), format!(":{kind}"), format!(":{f}"))
            } else {
                (p.to_string(), format!("\"{kind}\""), format!("\"{f}\""))
            };
            lines.push(field_line(
                edn, &mut rng, odd, index, &process, &kind, &f, &value,
            ));
        }
        let mut out = String::new();
        if matches!(syntax, Syntax::EdnVector) {
            out.push_str("[\n");
        }
        for l in lines {
            out.push_str(&l);
            out.push('\n');
        }
        if matches!(syntax, Syntax::EdnVector) {
            out.push_str("]\n");
        }
        out
    }

    /// One operation's line, its fields in the usual order or (with `odd`)
    /// shuffled, now and then with a node and an error.
    #[allow(clippy::too_many_arguments)]
    fn field_line(
        edn: bool,
        rng: &mut Rng,
        odd: bool,
        index: u64,
        process: &str,
        kind: &str,
        f: &str,
        value: &str,
    ) -> String {
        let mut fields = vec![
            ("index", index.to_string()),
            ("time", (index * 1000).to_string()),
            ("type", kind.to_string()),
            ("process", process.to_string()),
            ("f", f.to_string()),
            ("value", value.to_string()),
        ];
        if odd && rng.below(4) == 0 {
            fields.push(("node", "\"n1\"".to_string()));
        }
        if odd && rng.below(4) == 0 {
            fields.push((
                "error",
                if edn { ":timeout" } else { "\"timeout\"" }.to_string(),
            ));
        }
        if odd {
            for i in (1..fields.len()).rev() {
                fields.swap(i, rng.below(i as u64 + 1) as usize);
            }
        }
        let parts: Vec<String> = fields
            .into_iter()
            .map(|(k, v)| {
                if edn {
                    format!(":{k} {v}")
                } else {
                    format!("\"{k}\":{v}")
                }
            })
            .collect();
        format!("{{{}}}", parts.join(if edn { ", " } else { "," }))
    }

    /// The bytes a mutation writes: the ones the fast paths decide on.
    const MUTANTS: &[u8] = b"[](){} ,\n:\"-0179nx#;\\";

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 400, ..Default::default() })]

        /// A generated history, in every syntax, for both workloads, with
        /// and without anomalies and unusual values, checked streamed and
        /// read whole: the same verdict, anomalies and explanations (or
        /// the same error), unless the stream leaves the file to the
        /// whole reader.
        #[test]
        fn streamed_and_whole_agree_on_generated_histories(
            seed in proptest::prelude::any::<u64>(),
            forge in proptest::prelude::any::<bool>(),
            odd in proptest::prelude::any::<bool>(),
        ) {
            for kind in [TxnKind::ListAppend, TxnKind::RwRegister] {
                for (syntax, name) in [
                    (Syntax::Jsonl, "h.jsonl"),
                    (Syntax::EdnLines, "h.edn"),
                    (Syntax::EdnVector, "v.edn"),
                ] {
                    let text = generated(seed, kind, syntax, forge, odd);
                    let streamed = both(name, &text, kind);
                    // The usual shapes always stream (EDN whose every
                    // invocation is a pair may be an independent test's
                    // tuples: the whole reader decides).
                    if !odd && !name.ends_with("edn") {
                        proptest::prop_assert!(streamed.is_some(), "{text}");
                    }
                }
            }
        }

        /// The same with a few bytes of the text overwritten or inserted:
        /// whatever the stream takes (values cut short, numbers with
        /// leading zeros, a bracket too many...), it takes as the whole
        /// reader does.
        #[test]
        fn streamed_and_whole_agree_on_mutated_histories(
            seed in proptest::prelude::any::<u64>(),
            edits in proptest::collection::vec(
                (proptest::prelude::any::<usize>(), 0..MUTANTS.len(), proptest::prelude::any::<bool>()),
                1..4,
            ),
        ) {
            for kind in [TxnKind::ListAppend, TxnKind::RwRegister] {
                for (syntax, name) in [(Syntax::Jsonl, "h.jsonl"), (Syntax::EdnLines, "h.edn")] {
                    let mut text = generated(seed, kind, syntax, seed % 3 == 0, seed % 2 == 0).into_bytes();
                    for &(at, b, insert) in &edits {
                        let at = at % text.len();
                        if insert {
                            text.insert(at, MUTANTS[b]);
                        } else {
                            text[at] = MUTANTS[b];
                        }
                    }
                    let text = String::from_utf8(text).expect("ASCII in, ASCII out");
                    both(name, &text, kind);
                }
            }
        }
    }

    #[test]
    fn numbers_of_every_spelling_are_taken_as_the_whole_reader_takes_them() {
        let numbers = [
            "0",
            "7",
            "-7",
            "01",
            "00",
            "-0",
            "+1",
            "1.0",
            "1e2",
            "1E2",
            "-",
            "--1",
            "1a",
            "0x1",
            "123456789012345678",
            "-123456789012345678",
            "1234567890123456789",
            "99999999999999999999",
            "1234567",
            "12345678",
            "0012345",
            " 5 ",
            "5 ",
            " 5",
        ];
        for n in numbers {
            for edn in [false, true] {
                let (append, read, nil, sep) = if edn {
                    (":append", ":r", "nil", " ")
                } else {
                    ("\"append\"", "\"r\"", "null", ",")
                };
                let mop = |f: &str, k: &str, v: &str| format!("[{f}{sep}{k}{sep}{v}]");
                // The number as a key, as a value appended and read, and as
                // an element of a list read.
                let values = [
                    (
                        mop(append, n, "1"),
                        format!("{}{sep}{}", mop(append, n, "1"), mop(read, n, "[1]")),
                    ),
                    (
                        mop(append, "1", n),
                        format!(
                            "{}{sep}{}",
                            mop(append, "1", n),
                            mop(read, "1", &format!("[{n}]"))
                        ),
                    ),
                    (
                        mop(read, "1", nil),
                        mop(read, "1", &format!("[2{sep}{n}{sep}3]")),
                    ),
                ];
                for (invoked, completed) in values {
                    let (file, text) = if edn {
                        (
                            "h.edn",
                            format!(
                                "{{:process 0, :type :invoke, :f :txn, :value [{invoked}]}}\n{{:process 0, :type :ok, :f :txn, :value [{completed}]}}\n"
                            ),
                        )
                    } else {
                        (
                            "h.jsonl",
                            format!(
                                "{{\"process\":0,\"type\":\"invoke\",\"f\":\"txn\",\"value\":[{invoked}]}}\n{{\"process\":0,\"type\":\"ok\",\"f\":\"txn\",\"value\":[{completed}]}}\n"
                            ),
                        )
                    };
                    both(file, &text, TxnKind::ListAppend);
                }
            }
        }
        // A plain number is taken by the stream itself.
        let t = "{\"process\":0,\"type\":\"invoke\",\"f\":\"txn\",\"value\":[[\"append\",1,2]]}\n";
        assert!(both("h.jsonl", t, TxnKind::ListAppend).is_some());
    }

    #[test]
    fn generated_histories_stream_and_find_anomalies() {
        // The generator's plain histories are streamed, and the forged
        // ones are invalid: the differential tests compare real verdicts.
        let mut invalid = 0;
        for seed in 0..40 {
            let text = generated(seed, TxnKind::ListAppend, Syntax::Jsonl, true, false);
            let r = both("h.jsonl", &text, TxnKind::ListAppend).expect("streamed");
            invalid += usize::from(r.contains("\"validity\":\"invalid\""));
        }
        assert!(invalid > 5, "{invalid} of 40 forged histories invalid");
    }

    #[test]
    fn malformed_lines_are_reported_by_the_whole_reader_with_their_line() {
        let dir = tempfile::tempdir().unwrap();
        let opts = TxnOptions::new(TxnKind::ListAppend);
        let cases = [
            (
                "h.jsonl",
                "{\"process\":0,\"type\":\"invoke\",\"f\":\"txn\",\"value\":[[\"r\",1,null]]}\n{\"process\":0,\"type\":\"ok\",\"f\":\"txn\",\"value\":[[\"r\",1,[1,]]]}\n",
                "h.jsonl:2: expected one operation object like {\"process\": 0, \"type\": \"invoke\", \"f\": \"read\", \"value\": null}: trailing comma (column 55)",
            ),
            (
                "h.edn",
                "{:process 0, :type :invoke, :f :txn, :value [[:r 1 nil]]}\n{:process 0, :type :ok, :f :txn, :value [[:r 1 [1 2]]}\n",
                "h.edn:2: expected `]` to close the vector, found `}`",
            ),
        ];
        for (name, text, want) in cases {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            // The stream leaves the file to the whole reader...
            assert!(check_path(&path, None, &opts).is_none(), "{name}");
            // ...which names the line.
            let e = read_path(&path, None).unwrap_err().to_string();
            let e = e.replace(&format!("{}/", dir.path().display()), "");
            assert_eq!(e, want, "{name}");
        }
    }
}
