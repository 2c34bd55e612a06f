//! Loading a history file straight into compact transactions ([`Txns`]):
//! the file is streamed ([`OpStream`]), invocations are paired with their
//! completions as they come (by the rules of [`History::calls`], with the
//! same errors), and each transaction's value is decoded from the file's
//! text into the builder's flat vectors without building a JSON tree. No
//! copy of the text and no tree per operation is kept, so a history takes
//! a few hundred bytes per transaction instead of several kilobytes.
//!
//! Values of the usual shape (`[[append 1 2] [r 3 [1 2]]]` in EDN or
//! JSON, integer keys and values) are decoded by a small scanner; any
//! other value is parsed into JSON and decoded by [`Builder::decode_value`],
//! the same code [`parse::decode`](super::parse::decode) uses, so both
//! doors decode alike. When the stream cannot read the file as the
//! whole-file readers do, [`load`] says so (`None`) and the caller reads
//! the file whole.
//!
//! [`History::calls`]: crate::history::History::calls

use super::parse::{Builder, Interner, Mop, MopRange, Span, Txns, NIL};
use super::{TxnError, TxnKind};
use crate::history::read::stream::{Fallback, OpStream, RawValue};
use crate::history::{Format, HistoryError, Op, OpType, Outcome, Process};
use rustc_hash::{FxHashMap, FxHashSet};
use std::path::Path;

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

fn load_inner(
    path: &Path,
    format: Option<Format>,
    workload: TxnKind,
) -> Result<Result<Loaded, TxnError>, Fallback> {
    let mut stream = OpStream::open(path, format)?;
    let at = |line: usize| format!("{}:{line}", path.display());
    let mut b = Builder::new(workload);
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
    while let Some(op) = stream.next_op()? {
        if broken.is_some() || op.process == Process::Nemesis {
            continue;
        }
        let f_id = match names.iter().position(|n| *n == op.f) {
            Some(i) => i as u32,
            None => {
                names.push(op.f.to_string());
                (names.len() - 1) as u32
            }
        };
        if op.kind == OpType::Invoke {
            match slots.get(&op.process) {
                Some(Slot::Busy { line, f, .. }) => {
                    broken = Some(HistoryError::DoubleInvocation {
                        at: at(op.line),
                        process: op.process,
                        f: op.f.to_string(),
                        pending_f: names[*f as usize].clone(),
                        pending_at: at(*line),
                    });
                    continue;
                }
                Some(Slot::Crashed { line }) => {
                    broken = Some(HistoryError::InvokeAfterInfo {
                        at: at(op.line),
                        process: op.process,
                        f: op.f.to_string(),
                        info_at: at(*line),
                    });
                    continue;
                }
                None => {}
            }
            let txn = if op.f == "txn" {
                let mops = decode(&mut b, &op.value, false)?;
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
                    f: f_id,
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
            broken = Some(HistoryError::CompletionWithoutInvocation {
                at: at(op.line),
                process: op.process,
                f: op.f.to_string(),
                kind: op.kind,
            });
            continue;
        };
        if *f != f_id {
            broken = Some(HistoryError::MismatchedCompletion {
                at: at(op.line),
                process: op.process,
                f: op.f.to_string(),
                invoked_f: names[*f as usize].clone(),
            });
            continue;
        }
        if let (Some(invoked), Some(completed)) = (*time, op.time) {
            if completed < invoked {
                broken = Some(HistoryError::CompletionBeforeInvocation {
                    at: at(op.line),
                    process: op.process,
                    f: op.f.to_string(),
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
            match decode(&mut b, &op.value, true)? {
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
    let bytes = stream.bytes_read();
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
    v: &RawValue<'_>,
    reads_known: bool,
) -> Result<Result<MopRange, String>, Fallback> {
    if let Err(e) = b.begin() {
        return Ok(Err(e));
    }
    let mark = b.elems_mark();
    let fast = match v {
        RawValue::Json(t) => Fast::new(t.as_bytes(), false).value(b, reads_known),
        RawValue::Edn(t, _) => Fast::new(t.as_bytes(), true).value(b, reads_known),
        _ => None,
    };
    if fast.is_none() {
        // Not of the usual shape: decode its JSON as `decode` does.
        b.abandon();
        b.truncate_elems(mark);
        let value = v.to_value()?;
        if let Err(e) = b.decode_value(&value, reads_known) {
            b.abandon();
            return Ok(Err(e));
        }
    }
    Ok(b.end())
}

/// The scanner for transaction values of the usual shape. Every method
/// returns `None` on anything else, and the value is then decoded from
/// JSON instead.
struct Fast<'a> {
    b: &'a [u8],
    i: usize,
    edn: bool,
}

impl<'a> Fast<'a> {
    fn new(b: &'a [u8], edn: bool) -> Fast<'a> {
        Fast { b, i: 0, edn }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while let Some(c) = self.peek() {
            match c {
                b' ' | b'\t' | b'\n' | b'\r' => self.i += 1,
                b',' if self.edn => self.i += 1,
                _ => break,
            }
        }
    }

    /// A separator between elements: whitespace in EDN, a comma in JSON.
    /// False at the closing bracket.
    fn sep(&mut self, close: u8) -> Option<bool> {
        self.ws();
        if self.peek()? == close {
            self.i += 1;
            return Some(false);
        }
        if !self.edn {
            if self.peek()? != b',' {
                return None;
            }
            self.i += 1;
            self.ws();
        }
        Some(true)
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// `null` / `nil`.
    fn null(&mut self) -> bool {
        let word: &[u8] = if self.edn { b"nil" } else { b"null" };
        if self.b[self.i..].starts_with(word) {
            let after = self.b.get(self.i + word.len()).copied();
            if after.map_or(true, |c| {
                matches!(c, b' ' | b',' | b']' | b')' | b'\n' | b'\t' | b'\r')
            }) {
                self.i += word.len();
                return true;
            }
        }
        false
    }

    /// An integer of at most 18 digits (so it fits in an i64), as JSON
    /// and EDN both write it.
    fn int(&mut self) -> Option<i64> {
        let neg = self.peek()? == b'-';
        if neg {
            self.i += 1;
        }
        let start = self.i;
        let mut n: i64 = 0;
        while let Some(c @ b'0'..=b'9') = self.peek() {
            n = n * 10 + i64::from(c - b'0');
            self.i += 1;
        }
        let len = self.i - start;
        if len == 0 || len > 18 {
            return None;
        }
        // JSON forbids leading zeros; -0 is left to the JSON parser.
        if (len > 1 && self.b[start] == b'0') || (neg && n == 0) {
            return None;
        }
        match self.peek() {
            Some(b' ' | b',' | b']' | b')' | b'\n' | b'\t' | b'\r') | None => {}
            _ => return None,
        }
        Some(if neg { -n } else { n })
    }

    /// The micro-operation's function: `append`, `r` or `w`.
    fn name(&mut self) -> Option<&'a [u8]> {
        let quoted = self.peek()? == b'"';
        if quoted {
            self.i += 1;
        } else if !(self.edn && self.peek()? == b':') {
            return None;
        }
        if self.peek()? == b':' {
            self.i += 1;
        }
        let start = self.i;
        while let Some(b'a'..=b'z') = self.peek() {
            self.i += 1;
        }
        let name = &self.b[start..self.i];
        if quoted {
            self.eat(b'"')?;
        } else if !matches!(self.peek()?, b' ' | b',' | b'\n' | b'\t' | b'\r') {
            return None;
        }
        Some(name)
    }

    /// The whole value: `Some` when it was of the usual shape and is now
    /// in the builder.
    fn value(&mut self, b: &mut Builder, ok: bool) -> Option<()> {
        self.ws();
        let close = match self.peek()? {
            b'[' => b']',
            b'(' if self.edn => b')',
            _ => return None,
        };
        self.i += 1;
        self.ws();
        if self.peek()? == close {
            self.i += 1;
        } else {
            loop {
                let m = self.mop(b, ok)?;
                b.push_mop(m);
                if !self.sep(close)? {
                    break;
                }
            }
        }
        self.ws();
        (self.i == self.b.len()).then_some(())
    }

    fn mop(&mut self, b: &mut Builder, ok: bool) -> Option<Mop> {
        self.eat(b'[')?;
        self.ws();
        let f = self.name()?;
        self.sep(b']')?.then_some(())?;
        let key = b.atoms.intern_int(self.int()?);
        self.sep(b']')?.then_some(())?;
        let m = match (b.workload, f) {
            (TxnKind::ListAppend, b"append") => Mop::Append {
                key,
                value: b.atoms.intern_int(self.int()?),
            },
            (TxnKind::RwRegister, b"w") => Mop::Write {
                key,
                value: b.atoms.intern_int(self.int()?),
            },
            (_, b"r") if !ok => Mop::ReadUnknown {
                key,
                shown: if self.null() {
                    b.atoms.intern(&serde_json::Value::Null)
                } else {
                    b.atoms.intern_int(self.int()?)
                },
            },
            (TxnKind::RwRegister, b"r") => Mop::ReadReg {
                key,
                value: if self.null() {
                    NIL
                } else {
                    b.atoms.intern_int(self.int()?)
                },
            },
            (TxnKind::ListAppend, b"r") => Mop::ReadList {
                key,
                values: if self.null() {
                    Span::NIL
                } else {
                    self.list(b)?
                },
            },
            _ => return None,
        };
        self.ws();
        self.eat(b']')?;
        Some(m)
    }

    /// A list of integers, into the builder's read lists.
    fn list(&mut self, b: &mut Builder) -> Option<Span> {
        self.eat(b'[')?;
        let mark = b.elems_mark();
        self.ws();
        if self.peek()? == b']' {
            self.i += 1;
        } else {
            loop {
                let x = self.int()?;
                let id = b.atoms.intern_int(x);
                b.push_elem(id);
                if !self.sep(b']')? {
                    break;
                }
            }
        }
        b.span_since(mark).ok()
    }
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
        let cases = [
            (
                "{:process 0, :type :invoke, :f :txn, :value [[:r 1 nil]]}\n{:process 1, :type :ok, :f :txn, :value [[:r 1 []]]}\n",
                "DIR/h.edn:2: process 1 completed `txn` (ok) but had no operation in flight",
            ),
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
}
