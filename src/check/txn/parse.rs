//! Decoding a history's calls into transactions of micro-operations.
//!
//! Keys and values are interned to dense `u32` ids (an [`Interner`]) so that
//! inference hashes integers, not JSON trees; the original JSON is kept for
//! reports.

use super::{TxnError, TxnKind};
use crate::history::{Call, History, Outcome, Process};
use rustc_hash::FxHashMap;
use serde_json::Value;

/// The interned id of `nil` in rw-register reads: the initial version.
pub(crate) const NIL: u32 = u32::MAX;

/// Maps JSON keys and values to dense ids and back.
#[derive(Default)]
pub(crate) struct Interner {
    ints: FxHashMap<i64, u32>,
    others: FxHashMap<String, u32>,
    values: Vec<Value>,
}

impl Interner {
    /// The id of `v`, allocating one the first time.
    pub(crate) fn intern(&mut self, v: &Value) -> u32 {
        // Integers are by far the common case; they skip serialisation.
        if let Some(i) = v.as_i64() {
            if let Some(&id) = self.ints.get(&i) {
                return id;
            }
            let id = self.values.len() as u32;
            self.values.push(v.clone());
            self.ints.insert(i, id);
            return id;
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

/// One micro-operation of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Mop {
    /// `["append", k, v]`.
    Append { key: u32, value: u32 },
    /// `["r", k, [..]]` on a list; `None` when the read's result is unknown
    /// (the transaction did not complete `ok`).
    ReadList { key: u32, values: Option<Vec<u32>> },
    /// `["w", k, v]`.
    Write { key: u32, value: u32 },
    /// `["r", k, v]` on a register; `Some(NIL)` for a read of nil, `None`
    /// when unknown.
    ReadReg { key: u32, value: Option<u32> },
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
    /// Its micro-operations, reads filled in from the completion when `ok`.
    pub mops: Vec<Mop>,
    /// Its call (index into the calls decoded), whose value the reports show.
    pub call: usize,
    /// True when the micro-operations came from the completion (reads
    /// known), false when from the invocation.
    pub from_completion: bool,
}

/// Decodes every `txn` call; calls with other functions are skipped and
/// counted. Errors name the history location.
pub(crate) fn decode(
    history: &History,
    calls: &[Call],
    workload: TxnKind,
    atoms: &mut Interner,
) -> Result<(Vec<Txn>, usize), TxnError> {
    let mut txns = Vec::with_capacity(calls.len());
    let mut skipped = 0;
    for (ci, c) in calls.iter().enumerate() {
        if c.f != "txn" {
            skipped += 1;
            continue;
        }
        // An ok completion carries the reads' results; otherwise the
        // invocation's value is what we know (reads unknown). An ok
        // completion without a value says nothing about its reads either.
        let reads_known = c.outcome == Outcome::Ok && !c.output.is_null();
        let value = if reads_known { &c.output } else { &c.input };
        let at = || history.locate(c.complete.filter(|_| reads_known).unwrap_or(c.invoke));
        let Some(list) = value.as_array() else {
            return Err(TxnError::Decode {
                at: at(),
                message: format!("a txn's value must be a list of micro-operations, got {value}"),
            });
        };
        let mut mops = Vec::with_capacity(list.len());
        for m in list {
            let mop = decode_mop(m, workload, reads_known, atoms)
                .map_err(|message| TxnError::Decode { at: at(), message })?;
            mops.push(mop);
        }
        txns.push(Txn {
            process: c.process,
            outcome: c.outcome,
            invoke: c.invoke,
            complete: c.complete,
            mops,
            call: ci,
            from_completion: reads_known,
        });
    }
    Ok((txns, skipped))
}

fn decode_mop(m: &Value, workload: TxnKind, ok: bool, atoms: &mut Interner) -> Result<Mop, String> {
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
    let key = atoms.intern(&parts[1]);
    let v = &parts[2];
    match (workload, f) {
        (TxnKind::ListAppend, "append") => Ok(Mop::Append {
            key,
            value: atoms.intern(v),
        }),
        (TxnKind::ListAppend, "r") => {
            if !ok {
                return Ok(Mop::ReadList { key, values: None });
            }
            let values = match v {
                // A read of a key that does not exist yet: the empty list.
                Value::Null => Vec::new(),
                Value::Array(xs) => xs.iter().map(|x| atoms.intern(x)).collect(),
                other => {
                    return Err(format!(
                        "a list-append read must return a list or null, got {other} in {m}"
                    ))
                }
            };
            Ok(Mop::ReadList {
                key,
                values: Some(values),
            })
        }
        (TxnKind::RwRegister, "w") => Ok(Mop::Write {
            key,
            value: atoms.intern(v),
        }),
        (TxnKind::RwRegister, "r") => {
            let value = match (ok, v) {
                (false, _) => None,
                (true, Value::Null) => Some(NIL),
                (true, v) => Some(atoms.intern(v)),
            };
            Ok(Mop::ReadReg { key, value })
        }
        _ => Err(format!(
            "unknown micro-operation {m} for the {} workload (expected {})",
            workload.name(),
            match workload {
                TxnKind::ListAppend => "[\"append\", k, v] or [\"r\", k, [..]]",
                TxnKind::RwRegister => "[\"w\", k, v] or [\"r\", k, v]",
            }
        )),
    }
}
