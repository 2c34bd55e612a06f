//! Decoding a history's calls into compact, integer-coded transactions.
//!
//! Keys and values are interned to dense `u32` ids (an [`Interner`]) so that
//! inference hashes integers, not JSON trees; the original JSON of each id
//! is kept once, for reports. Transactions live in one [`Txns`]: a record
//! per transaction, every micro-operation in one flat vector (each
//! transaction owns a range of it) and every list a read returned in one
//! flat vector of ids (each read owns a [`Span`] of it). At a million
//! transactions this is a few hundred bytes per transaction, where a tree
//! of JSON values per operation was several kilobytes.
//!
//! Two doors lead here: [`decode`] from a [`History`] already in memory,
//! and the streaming loader (`load`) straight from a file. Both feed the
//! same [`Builder`], which numbers ids in one canonical order
//! ([`Builder::finish`]), so both give the same ids and the same report.

use super::{TxnError, TxnKind};
use crate::history::{Call, History, Outcome, Process};
use rustc_hash::FxHashMap;
use serde_json::Value;
use std::ops::Deref;

/// The interned id of `nil` in rw-register reads: the initial version.
pub(crate) const NIL: u32 = u32::MAX;

/// Integers below this are interned through `Interner::small` (at most
/// 16 MiB of table).
const SMALL_INTS: usize = 1 << 22;

/// Maps JSON keys and values to dense ids and back.
#[derive(Default)]
pub(crate) struct Interner {
    /// Ids of the small non-negative integers (keys and list elements,
    /// nearly all of them), indexed by the integer: a lookup without
    /// hashing. `u32::MAX` where none was given yet.
    small: Vec<u32>,
    ints: FxHashMap<i64, u32>,
    others: FxHashMap<String, u32>,
    /// The id of `null`, once given (reads of unknown result carry it).
    null: Option<u32>,
    values: Vec<Value>,
}

impl Interner {
    /// The id of `v`, allocating one the first time.
    pub(crate) fn intern(&mut self, v: &Value) -> u32 {
        // Integers are by far the common case; they skip serialisation.
        if let Some(i) = v.as_i64() {
            return self.intern_int(i);
        }
        let text = v.to_string();
        if let Some(&id) = self.others.get(&text) {
            return id;
        }
        let id = self.values.len() as u32;
        self.values.push(v.clone());
        self.others.insert(text, id);
        id
    }

    /// The id of JSON `null` (the same as `intern(&Value::Null)`).
    pub(crate) fn intern_null(&mut self) -> u32 {
        match self.null {
            Some(id) => id,
            None => {
                let id = self.intern(&Value::Null);
                self.null = Some(id);
                id
            }
        }
    }

    /// The id of the integer `i` (the same id as its JSON number).
    pub(crate) fn intern_int(&mut self, i: i64) -> u32 {
        if let Ok(at) = usize::try_from(i) {
            if at < SMALL_INTS {
                if let Some(&id) = self.small.get(at).filter(|&&id| id != u32::MAX) {
                    return id;
                }
                if at >= self.small.len() {
                    let len = (at + 1).next_power_of_two().min(SMALL_INTS);
                    self.small.resize(len, u32::MAX);
                }
                let id = self.values.len() as u32;
                self.values.push(Value::from(i));
                self.small[at] = id;
                return id;
            }
        }
        if let Some(&id) = self.ints.get(&i) {
            return id;
        }
        let id = self.values.len() as u32;
        self.values.push(Value::from(i));
        self.ints.insert(i, id);
        id
    }

    /// The JSON of id `id` (`null` for [`NIL`]).
    pub(crate) fn value(&self, id: u32) -> &Value {
        static NULL: Value = Value::Null;
        self.values.get(id as usize).unwrap_or(&NULL)
    }

    /// Text of id `id` for explanations: strings without quotes.
    pub(crate) fn show(&self, id: u32) -> String {
        if id == NIL {
            return "nil".to_string();
        }
        match self.value(id) {
            Value::String(s) => s.clone(),
            v => v.to_string(),
        }
    }
}

/// A range of [`Txns::elems`]: the list one read returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    start: u32,
    len: u32,
}

impl Span {
    /// A read that returned `nil` (the key did not exist): the empty list,
    /// shown as `nil`.
    pub(crate) const NIL: Span = Span {
        start: u32::MAX,
        len: 0,
    };
}

/// One micro-operation of a transaction (16 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mop {
    /// `["append", k, v]`.
    Append { key: u32, value: u32 },
    /// `["r", k, [..]]` on a list, its result known (the transaction
    /// completed `ok`).
    ReadList { key: u32, values: Span },
    /// `["w", k, v]`.
    Write { key: u32, value: u32 },
    /// `["r", k, v]` on a register, its result known: [`NIL`] for nil.
    ReadReg { key: u32, value: u32 },
    /// A read whose result is unknown (the transaction did not complete
    /// `ok`); `shown` is the value it carried, for reports.
    ReadUnknown { key: u32, shown: u32 },
}

/// A transaction: one `txn` call of the history.
#[derive(Clone, Debug)]
pub(crate) struct Txn {
    /// The process that ran it.
    pub process: Process,
    /// How it ended.
    pub outcome: Outcome,
    /// Position of its invocation in the history.
    pub invoke: usize,
    /// Position of its completion, when it completed.
    pub complete: Option<usize>,
    /// Its micro-operations: a range of [`Txns::mops`], reads filled in
    /// from the completion when `ok`.
    mops_start: u32,
    mops_len: u32,
}

/// Every transaction of a history, with their micro-operations and read
/// lists in flat vectors. Derefs to the transactions.
#[derive(Default)]
pub(crate) struct Txns {
    list: Vec<Txn>,
    mops: Vec<Mop>,
    elems: Vec<u32>,
}

impl Deref for Txns {
    type Target = [Txn];
    fn deref(&self) -> &[Txn] {
        &self.list
    }
}

impl Txns {
    /// The micro-operations of `t`.
    pub(crate) fn mops(&self, t: &Txn) -> &[Mop] {
        let s = t.mops_start as usize;
        &self.mops[s..s + t.mops_len as usize]
    }

    /// The list of a read.
    pub(crate) fn elems(&self, s: Span) -> &[u32] {
        if s.len == 0 {
            return &[];
        }
        let a = s.start as usize;
        &self.elems[a..a + s.len as usize]
    }

    /// The micro-operations of `t` as Elle prints them:
    /// `[append 3 5] [r 4 [1 2]]`.
    pub(crate) fn show_ops(&self, t: &Txn, atoms: &Interner) -> String {
        use super::explain::show_json;
        let v = |id: u32| show_json(atoms.value(id));
        let parts: Vec<String> = self
            .mops(t)
            .iter()
            .map(|m| match *m {
                Mop::Append { key, value } => format!("[append {} {}]", v(key), v(value)),
                Mop::Write { key, value } => format!("[w {} {}]", v(key), v(value)),
                Mop::ReadReg { key, value } => format!("[r {} {}]", v(key), v(value)),
                Mop::ReadUnknown { key, shown } => format!("[r {} {}]", v(key), v(shown)),
                Mop::ReadList { key, values } if values == Span::NIL => {
                    format!("[r {} nil]", v(key))
                }
                Mop::ReadList { key, values } => {
                    let xs: Vec<String> = self.elems(values).iter().map(|&x| v(x)).collect();
                    format!("[r {} [{}]]", v(key), xs.join(" "))
                }
            })
            .collect();
        parts.join(" ")
    }
}

/// Where a transaction's micro-operations were written in the builder:
/// a range of its `mops`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MopRange {
    start: u32,
    len: u32,
}

impl MopRange {
    /// No micro-operations (a value that did not decode: an error is
    /// reported before any check runs).
    pub(crate) const EMPTY: MopRange = MopRange { start: 0, len: 0 };
}

/// Builds [`Txns`]: micro-operations are decoded into the flat vectors as
/// they come (from JSON values here, or straight from a file's bytes in
/// `load`), then each transaction is given the range it ended with.
pub(crate) struct Builder {
    pub workload: TxnKind,
    pub atoms: Interner,
    txns: Txns,
    /// Micro-operations decoded so far for the range being written.
    open: u32,
}

/// A value too large for the 32-bit offsets of [`Txns`].
const TOO_LARGE: &str = "the history holds more than 4 billion micro-operations or read elements, more than the transactional checker can hold";

impl Builder {
    /// An empty builder for `workload`.
    pub(crate) fn new(workload: TxnKind) -> Builder {
        Builder {
            workload,
            atoms: Interner::default(),
            txns: Txns::default(),
            open: 0,
        }
    }

    /// Reserves room for the read lists of a history file of `bytes`
    /// bytes: one element per 4 bytes of text (an element takes at least
    /// 2, "1 ", and about 6 in the usual list-append history). Growing the
    /// largest vector by doubling would copy it each time and touch twice
    /// its memory; the room reserved and not used is never touched, so it
    /// costs address space, not memory.
    pub(crate) fn reserve_for_file(&mut self, bytes: u64) {
        let elems = usize::try_from(bytes / 4).unwrap_or(usize::MAX);
        // Not reserving is only slower, so a refusal is ignored.
        let _ = self.txns.elems.try_reserve_exact(elems);
    }

    /// Starts writing a transaction's micro-operations.
    pub(crate) fn begin(&mut self) -> Result<(), String> {
        self.open = u32::try_from(self.txns.mops.len()).map_err(|_| TOO_LARGE.to_string())?;
        Ok(())
    }

    /// Ends the micro-operations begun by [`Builder::begin`].
    pub(crate) fn end(&mut self) -> Result<MopRange, String> {
        let len = self.txns.mops.len() - self.open as usize;
        // The micro-operations of a transaction all fit: `begin` checked the
        // start, and the end is checked here.
        u32::try_from(self.txns.mops.len()).map_err(|_| TOO_LARGE.to_string())?;
        Ok(MopRange {
            start: self.open,
            len: len as u32,
        })
    }

    /// Forgets the micro-operations written since [`Builder::begin`]
    /// (a value that failed to decode).
    pub(crate) fn abandon(&mut self) {
        self.txns.mops.truncate(self.open as usize);
    }

    /// Appends one micro-operation.
    pub(crate) fn push_mop(&mut self, m: Mop) {
        self.txns.mops.push(m);
    }

    /// Where the next read list begins.
    pub(crate) fn elems_mark(&self) -> usize {
        self.txns.elems.len()
    }

    /// Appends one element of the read list being written.
    pub(crate) fn push_elem(&mut self, id: u32) {
        self.txns.elems.push(id);
    }

    /// The span of the read list written since `mark`.
    pub(crate) fn span_since(&self, mark: usize) -> Result<Span, String> {
        let len = self.txns.elems.len() - mark;
        if len == 0 {
            return Ok(Span { start: 0, len: 0 });
        }
        let start = u32::try_from(mark).map_err(|_| TOO_LARGE.to_string())?;
        let len = u32::try_from(len).map_err(|_| TOO_LARGE.to_string())?;
        start
            .checked_add(len)
            .ok_or_else(|| TOO_LARGE.to_string())?;
        Ok(Span { start, len })
    }

    /// Adds a transaction whose micro-operations are `mops`; returns its
    /// number.
    pub(crate) fn push_txn(
        &mut self,
        process: Process,
        outcome: Outcome,
        invoke: usize,
        complete: Option<usize>,
        mops: MopRange,
    ) -> usize {
        self.txns.list.push(Txn {
            process,
            outcome,
            invoke,
            complete,
            mops_start: mops.start,
            mops_len: mops.len,
        });
        self.txns.list.len() - 1
    }

    /// Sets how transaction `t` ended, and the micro-operations it ended with.
    pub(crate) fn settle(
        &mut self,
        t: usize,
        outcome: Outcome,
        complete: Option<usize>,
        mops: MopRange,
    ) {
        let txn = &mut self.txns.list[t];
        txn.outcome = outcome;
        txn.complete = complete;
        txn.mops_start = mops.start;
        txn.mops_len = mops.len;
    }

    /// Decodes a whole transaction value (a list of micro-operations) into
    /// the range begun by [`Builder::begin`]; `reads_known` when the value
    /// is an `ok` completion's, whose reads carry their results.
    pub(crate) fn decode_value(&mut self, value: &Value, reads_known: bool) -> Result<(), String> {
        let Some(list) = value.as_array() else {
            return Err(format!(
                "a txn's value must be a list of micro-operations, got {value}"
            ));
        };
        for m in list {
            let mop = self.decode_mop(m, reads_known)?;
            self.txns.mops.push(mop);
        }
        Ok(())
    }

    fn decode_mop(&mut self, m: &Value, ok: bool) -> Result<Mop, String> {
        let parts = match m.as_array() {
            Some(p) if p.len() == 3 => p,
            _ => {
                return Err(format!(
                    "a micro-operation must be [f, key, value], got {m}"
                ))
            }
        };
        let f = parts[0]
            .as_str()
            .map(|s| s.strip_prefix(':').unwrap_or(s))
            .unwrap_or("");
        let workload = self.workload;
        let key = self.atoms.intern(&parts[1]);
        let v = &parts[2];
        match (workload, f) {
            (TxnKind::ListAppend, "append") => Ok(Mop::Append {
                key,
                value: self.atoms.intern(v),
            }),
            (TxnKind::ListAppend | TxnKind::RwRegister, "r") if !ok => Ok(Mop::ReadUnknown {
                key,
                shown: self.atoms.intern(v),
            }),
            (TxnKind::ListAppend, "r") => {
                let values = match v {
                    // A read of a key that does not exist yet: the empty list.
                    Value::Null => Span::NIL,
                    Value::Array(xs) => {
                        let mark = self.elems_mark();
                        for x in xs {
                            let id = self.atoms.intern(x);
                            self.push_elem(id);
                        }
                        self.span_since(mark)?
                    }
                    other => {
                        return Err(format!(
                            "a list-append read must return a list or null, got {other} in {m}"
                        ))
                    }
                };
                Ok(Mop::ReadList { key, values })
            }
            (TxnKind::RwRegister, "w") => Ok(Mop::Write {
                key,
                value: self.atoms.intern(v),
            }),
            (TxnKind::RwRegister, "r") => Ok(Mop::ReadReg {
                key,
                value: match v {
                    Value::Null => NIL,
                    v => self.atoms.intern(v),
                },
            }),
            _ => Err(unknown_mop(&m.to_string(), workload)),
        }
    }

    /// The transactions, with ids renumbered in first-use order (keys and
    /// values of each micro-operation, transactions in invocation order;
    /// then the values unknown reads carried, which only reports show):
    /// the order does not depend on when each value was read, so every door
    /// gives the same ids. Micro-operations are compacted into
    /// transaction order on the way.
    pub(crate) fn finish(self) -> (Txns, Interner) {
        let Builder {
            atoms, mut txns, ..
        } = self;
        let mut new_id = vec![u32::MAX; atoms.values.len()];
        let mut values: Vec<Value> = Vec::with_capacity(atoms.values.len());
        let mut old_values = atoms.values;
        let mut relabel = |id: u32| -> u32 {
            if id == NIL {
                return NIL;
            }
            let slot = &mut new_id[id as usize];
            if *slot == u32::MAX {
                *slot = values.len() as u32;
                values.push(std::mem::take(&mut old_values[id as usize]));
            }
            *slot
        };
        let mut mops = Vec::with_capacity(txns.list.iter().map(|t| t.mops_len as usize).sum());
        for t in &mut txns.list {
            let s = t.mops_start as usize;
            let start = mops.len() as u32;
            for m in &txns.mops[s..s + t.mops_len as usize] {
                let m = match *m {
                    Mop::Append { key, value } => Mop::Append {
                        key: relabel(key),
                        value: relabel(value),
                    },
                    Mop::Write { key, value } => Mop::Write {
                        key: relabel(key),
                        value: relabel(value),
                    },
                    Mop::ReadReg { key, value } => Mop::ReadReg {
                        key: relabel(key),
                        value: relabel(value),
                    },
                    // Numbered last (below), after every id the checks use.
                    Mop::ReadUnknown { key, shown } => Mop::ReadUnknown {
                        key: relabel(key),
                        shown,
                    },
                    Mop::ReadList { key, values } => {
                        let key = relabel(key);
                        if values.len > 0 {
                            let a = values.start as usize;
                            for x in &mut txns.elems[a..a + values.len as usize] {
                                *x = relabel(*x);
                            }
                        }
                        Mop::ReadList { key, values }
                    }
                };
                mops.push(m);
            }
            t.mops_start = start;
        }
        for m in &mut mops {
            if let Mop::ReadUnknown { shown, .. } = m {
                *shown = relabel(*shown);
            }
        }
        txns.mops = mops;
        let atoms = Interner {
            small: Vec::new(),
            ints: FxHashMap::default(),
            others: FxHashMap::default(),
            null: None,
            values,
        };
        (txns, atoms)
    }
}

/// The message for a micro-operation that is not one of `workload`'s.
pub(crate) fn unknown_mop(shown: &str, workload: TxnKind) -> String {
    format!(
        "unknown micro-operation {shown} for the {} workload (expected {})",
        workload.name(),
        match workload {
            TxnKind::ListAppend => "[\"append\", k, v] or [\"r\", k, [..]]",
            TxnKind::RwRegister => "[\"w\", k, v] or [\"r\", k, v]",
        }
    )
}

/// Whether a call of function `f` is a transaction: `txn`, or `read` and
/// `write`, which Jepsen's transactional workloads (rw-register,
/// list-append, long-fork) call their read-only and write-only
/// transactions. Elle reads every operation's value as a transaction;
/// skipping those would leave their writes unseen and make every read of
/// them look like a read of a value nobody wrote.
pub(crate) fn is_txn(f: &str) -> bool {
    matches!(f, "txn" | "read" | "write")
}

/// Decodes every transaction ([`is_txn`]); calls with other functions are
/// skipped and counted. Errors name the history location.
pub(crate) fn decode(
    history: &History,
    calls: &[Call],
    workload: TxnKind,
) -> Result<(Txns, Interner, usize), TxnError> {
    let mut b = Builder::new(workload);
    let mut skipped = 0;
    for c in calls {
        if !is_txn(&c.f) {
            skipped += 1;
            continue;
        }
        // An ok completion carries the reads' results; otherwise the
        // invocation's value is what we know (reads unknown). An ok
        // completion without a value says nothing about its reads either.
        let reads_known = c.outcome == Outcome::Ok && !c.output.is_null();
        let value = if reads_known { &c.output } else { &c.input };
        let at = || history.locate(c.complete.filter(|_| reads_known).unwrap_or(c.invoke));
        let range = b
            .begin()
            .and_then(|()| b.decode_value(value, reads_known))
            .and_then(|()| b.end())
            .map_err(|message| TxnError::Decode { at: at(), message })?;
        b.push_txn(c.process, c.outcome, c.invoke, c.complete, range);
    }
    let (txns, atoms) = b.finish();
    Ok((txns, atoms, skipped))
}
