//! Multi-key transactions on etcd for the `list-append` and `rw-register`
//! workloads: one faultline `txn` operation, a list of micro-operations
//! `["r", k, null]`, `["append", k, v]` or `["w", k, v]`, becomes etcd
//! requests by optimistic concurrency.
//!
//! # How a transaction runs
//!
//! etcd has no "append" and no interactive transactions; it has one atomic
//! `txn`: compares, then a list of requests if they all hold, another list
//! otherwise. So:
//!
//! 1. **Read** every key the transaction touches in one etcd txn of range
//!    requests (no compares): one revision, one snapshot, each key's value
//!    and `mod_revision` (0 when absent).
//! 2. **Compute** locally, micro-operation by micro-operation: a read
//!    answers the list (register) as it stands, the transaction's own
//!    earlier writes included; an append extends it, a write replaces it.
//! 3. **Commit** one etcd txn: compare `MOD == seen` for *every* key read or
//!    written (`mod_revision` 0 matches only an absent key: etcd compares a
//!    missing key as an all-zero record), success = one put per written key
//!    of its final list, failure = the same range requests as step 1.
//!
//! If the compares hold, nothing the transaction read has changed between
//! the read's revision and the commit's, so the whole transaction took
//! effect atomically at the commit's revision with exactly the reads
//! recorded: strictly serializable whatever the read mode. If they do not
//! hold, nothing was written; the failure branch's ranges are a fresh read
//! (at the commit's revision), and the computation is tried again, up to
//! [`TXN_ATTEMPTS`] commits in all, before the operation ends `fail`.
//!
//! A **read-only** transaction is step 1 alone: one etcd txn of ranges,
//! linearizable (etcd's read index) by default, or `serializable: true` on
//! every range with `--read-mode serializable`, when etcd answers from the
//! node's local state: possibly stale, which is what that mode is for.
//!
//! # Data layout
//!
//! A key `k` is the etcd key `/faultline/<workload>/<JSON of k>`, as for
//! registers. A list is stored as the JSON text of an array (`[1,2,3]`); a
//! register as the JSON text of its value. `null` cannot be written (it
//! means absent).
//!
//! # Classification
//!
//! | what happened | recorded |
//! |---|---|
//! | malformed transaction, client not open | `fail`, nothing sent |
//! | any error while reading (step 1), known or unknown | `fail`: nothing was written yet |
//! | the commit's compares failed [`TXN_ATTEMPTS`] times | `fail` |
//! | the commit was never sent; HTTP 400/401/403/404 to it | `fail` |
//! | timeout, reset, 503, 504, unparsable answer after the commit was sent | `info` |
//!
//! A read-only transaction that ends unknown is `fail`, like a register
//! read: it has no effect.

use serde::Deserialize;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::{
    b64, check_header, de_i64, parse_body, register_key, unb64, DataKind, EtcdClient, Header,
};
use crate::client::{ClientError, Completion, ErrorClass, Invocation};

/// Commits tried per transaction while compares fail (a concurrent
/// transaction changed a key in between). Each failed commit is known not
/// to have applied, so retrying is safe; three keeps a transaction within a
/// few round trips under the workloads' contention.
pub(super) const TXN_ATTEMPTS: usize = 3;

/// What the keys of a transactional workload hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Shape {
    /// Lists: `append` and `r` of the whole list.
    List,
    /// Registers: `w` and `r`.
    Register,
}

impl Shape {
    /// The shape of a data kind, if it runs transactions.
    pub(super) fn of(kind: DataKind) -> Option<Shape> {
        match kind {
            DataKind::List => Some(Shape::List),
            DataKind::RwRegister => Some(Shape::Register),
            _ => None,
        }
    }
}

/// One micro-operation, decoded; `key` indexes the transaction's keys.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Mop {
    /// `["r", k, null]`.
    Read { key: usize },
    /// `["append", k, v]` or `["w", k, v]`.
    Write { key: usize, value: Value },
}

/// A transaction checked and encoded before anything is sent.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Txn {
    /// The faultline keys, in order of first use, each once.
    pub(super) keys: Vec<Value>,
    /// Their etcd keys.
    pub(super) etcd_keys: Vec<Vec<u8>>,
    pub(super) mops: Vec<Mop>,
    pub(super) shape: Shape,
}

impl Txn {
    /// Decodes `value`, a list of micro-operations, for `shape`'s workload.
    pub(super) fn decode(workload: &str, shape: Shape, value: &Value) -> Result<Txn, ClientError> {
        let bad = |m: String| ClientError::not_applied(m);
        let list = value
            .as_array()
            .ok_or_else(|| bad(format!("a txn is a list of micro-operations, got {value}")))?;
        if list.is_empty() {
            return Err(bad("a txn needs at least one micro-operation".into()));
        }
        let write = match shape {
            Shape::List => "append",
            Shape::Register => "w",
        };
        let mut keys: Vec<Value> = Vec::new();
        let mut mops = Vec::with_capacity(list.len());
        for m in list {
            let Some([f, k, v]) = m.as_array().map(Vec::as_slice) else {
                return Err(bad(format!(
                    "bad micro-operation {m}: expected [f, key, value]"
                )));
            };
            let key = match keys.iter().position(|x| x == k) {
                Some(i) => i,
                None => {
                    keys.push(k.clone());
                    keys.len() - 1
                }
            };
            match f.as_str() {
                Some("r") => mops.push(Mop::Read { key }),
                Some(w) if w == write => {
                    if v.is_null() {
                        return Err(bad(format!("{m}: null cannot be stored (it means absent)")));
                    }
                    mops.push(Mop::Write {
                        key,
                        value: v.clone(),
                    });
                }
                _ => {
                    return Err(bad(format!(
                        "unknown micro-operation {m} (this workload has \"r\" and {write:?})"
                    )))
                }
            }
        }
        let etcd_keys = keys
            .iter()
            .map(|k| register_key(workload, Some(k)))
            .collect();
        Ok(Txn {
            keys,
            etcd_keys,
            mops,
            shape,
        })
    }

    /// Whether no micro-operation writes.
    pub(super) fn read_only(&self) -> bool {
        self.mops.iter().all(|m| matches!(m, Mop::Read { .. }))
    }

    /// One range request per key.
    fn ranges(&self, serializable: bool) -> Vec<Value> {
        self.etcd_keys
            .iter()
            .map(|k| {
                let mut r = json!({ "key": b64(k) });
                if serializable {
                    r["serializable"] = json!(true);
                }
                json!({ "request_range": r })
            })
            .collect()
    }

    /// The body of the read: an etcd txn of ranges and nothing else, which
    /// etcd serves as one read at one revision (linearizable unless every
    /// range is serializable).
    pub(super) fn read_body(&self, serializable: bool) -> Value {
        json!({ "success": self.ranges(serializable) })
    }

    /// Runs the micro-operations over the state read: the completed
    /// micro-operations, and the puts (etcd key index, stored text) of
    /// every key written, once each with its final value.
    pub(super) fn apply(&self, seen: &[Seen]) -> (Value, Vec<(usize, String)>) {
        let mut state: Vec<Value> = seen.iter().map(|s| s.value.clone()).collect();
        let mut written = vec![false; self.keys.len()];
        let mut done = Vec::with_capacity(self.mops.len());
        for m in &self.mops {
            match m {
                Mop::Read { key } => {
                    done.push(json!(["r", self.keys[*key], state[*key]]));
                }
                Mop::Write { key, value } => {
                    match (self.shape, &mut state[*key]) {
                        (Shape::List, Value::Array(list)) => list.push(value.clone()),
                        // `Seen` holds an array for every list key.
                        (Shape::List, other) => *other = json!([value]),
                        (Shape::Register, slot) => *slot = value.clone(),
                    }
                    written[*key] = true;
                    let f = match self.shape {
                        Shape::List => "append",
                        Shape::Register => "w",
                    };
                    done.push(json!([f, self.keys[*key], value]));
                }
            }
        }
        let puts = written
            .iter()
            .enumerate()
            .filter(|(_, w)| **w)
            .map(|(i, _)| (i, state[i].to_string()))
            .collect();
        (Value::Array(done), puts)
    }

    /// The body of the commit: every key must still have the mod revision
    /// it was read at; then the puts; otherwise a fresh read of every key.
    pub(super) fn commit_body(&self, seen: &[Seen], puts: &[(usize, String)]) -> Value {
        let compare: Vec<Value> = self
            .etcd_keys
            .iter()
            .zip(seen)
            .map(|(k, s)| {
                json!({ "key": b64(k), "target": "MOD", "result": "EQUAL",
                        "mod_revision": s.mod_revision.to_string() })
            })
            .collect();
        let success: Vec<Value> = puts
            .iter()
            .map(|(i, text)| {
                json!({ "request_put": { "key": b64(&self.etcd_keys[*i]), "value": b64(text.as_bytes()) } })
            })
            .collect();
        json!({ "compare": compare, "success": success, "failure": self.ranges(false) })
    }

    /// Each key's state from the range responses of a txn answer, in key
    /// order. Anything unexpected is `unknown` (the caller decides what
    /// that means for its stage).
    pub(super) fn seen(
        &self,
        what: &str,
        responses: &[ResponseOp],
    ) -> Result<Vec<Seen>, ClientError> {
        if responses.len() != self.keys.len() {
            return Err(ClientError::unknown(format!(
                "{what}: {} range answers for {} keys",
                responses.len(),
                self.keys.len()
            )));
        }
        let mut out = Vec::with_capacity(self.keys.len());
        for (i, r) in responses.iter().enumerate() {
            let Some(range) = &r.response_range else {
                return Err(ClientError::unknown(format!(
                    "{what}: answer {i} is not a range answer"
                )));
            };
            let seen = match range.kvs.as_slice() {
                [] => Seen {
                    value: match self.shape {
                        Shape::List => json!([]),
                        Shape::Register => Value::Null,
                    },
                    mod_revision: 0,
                },
                [kv] => {
                    let key = unb64(what, &kv.key)?;
                    if key != self.etcd_keys[i] {
                        return Err(ClientError::unknown(format!(
                            "{what}: asked for {:?}, got {:?}",
                            String::from_utf8_lossy(&self.etcd_keys[i]),
                            String::from_utf8_lossy(&key)
                        )));
                    }
                    let text = unb64(what, &kv.value)?;
                    let value: Value = serde_json::from_slice(&text).map_err(|e| {
                        ClientError::unknown(format!(
                            "{what}: {:?} holds {:?}, not JSON: {e}",
                            String::from_utf8_lossy(&key),
                            String::from_utf8_lossy(&text)
                        ))
                    })?;
                    if self.shape == Shape::List && !value.is_array() {
                        return Err(ClientError::unknown(format!(
                            "{what}: {:?} holds {value}, not a list",
                            String::from_utf8_lossy(&key)
                        )));
                    }
                    if kv.mod_revision <= 0 {
                        return Err(ClientError::unknown(format!(
                            "{what}: {:?} has no mod_revision",
                            String::from_utf8_lossy(&key)
                        )));
                    }
                    Seen {
                        value,
                        mod_revision: kv.mod_revision,
                    }
                }
                more => {
                    return Err(ClientError::unknown(format!(
                        "{what}: {} keys for one range",
                        more.len()
                    )))
                }
            };
            out.push(seen);
        }
        Ok(out)
    }
}

/// A key's state as read: its list (`[]` when absent) or register value
/// (`null` when absent), and its `mod_revision` (0 when absent).
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Seen {
    pub(super) value: Value,
    pub(super) mod_revision: i64,
}

/// A txn answer: `succeeded` and `responses` are omitted when false/empty.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct TxnAnswer {
    pub(super) header: Header,
    pub(super) succeeded: bool,
    pub(super) responses: Vec<ResponseOp>,
}

/// One answer of a txn's list: a oneof, named by its field.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct ResponseOp {
    pub(super) response_range: Option<RangeAnswer>,
}

/// A range answer inside a txn; `kvs` omitted when nothing matched.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RangeAnswer {
    pub(super) kvs: Vec<TxnKv>,
}

/// A key-value with its modification revision.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct TxnKv {
    /// base64
    pub(super) key: String,
    /// base64
    pub(super) value: String,
    #[serde(deserialize_with = "de_i64")]
    pub(super) mod_revision: i64,
}

/// How the commit went.
enum Commit {
    /// Applied at this revision.
    Applied,
    /// The compares failed; the keys as they are now.
    Changed(Vec<Seen>),
}

impl EtcdClient {
    /// Runs one `txn` operation (see the module's comment). Every unknown
    /// outcome also drops the connection, as for other operations.
    pub(super) async fn invoke_txn(&mut self, inv: &Invocation) -> Completion {
        let txn = match Shape::of(self.opts.kind)
            .ok_or_else(|| {
                ClientError::not_applied("txn needs a list-append or rw-register workload on etcd")
            })
            .and_then(|shape| Txn::decode(&self.opts.workload, shape, &inv.value))
        {
            Ok(t) => t,
            Err(e) => return Completion::from_error(inv.value.clone(), &e),
        };
        let deadline = Instant::now() + self.op_timeout(inv);
        let result = self.run_txn(&txn, deadline).await;
        match result {
            Ok(done) => Completion::ok(done),
            Err(e) => {
                if e.class == ErrorClass::Unknown {
                    // A late answer must not be read as the next one's.
                    self.conn = None;
                }
                Completion::from_error(inv.value.clone(), &e)
            }
        }
    }

    /// The completed micro-operations, or the error with its final class.
    async fn run_txn(&mut self, txn: &Txn, deadline: Instant) -> Result<Value, ClientError> {
        let read_only = txn.read_only();
        // A read-only transaction is served as configured; the read before
        // a commit too (a stale one only makes the compares fail).
        let body = txn.read_body(self.serializable());
        let mut seen = match self.txn_post("txn read", &body, deadline).await {
            Ok(answer) => txn.seen("txn read", &answer.responses),
            Err(e) => Err(e),
        }
        .map_err(|e| match e.class {
            ErrorClass::Unknown => {
                self.conn = None;
                ClientError::not_applied(format!("txn read, nothing written: {}", e.message))
            }
            ErrorClass::NotApplied => e,
        })?;
        if read_only {
            return Ok(txn.apply(&seen).0);
        }
        for attempt in 1..=TXN_ATTEMPTS {
            let (done, puts) = txn.apply(&seen);
            match self.commit(txn, &seen, &puts, deadline).await? {
                Commit::Applied => return Ok(done),
                Commit::Changed(now) if attempt < TXN_ATTEMPTS => seen = now,
                Commit::Changed(_) => {}
            }
        }
        Err(ClientError::not_applied(format!(
            "txn: a key changed between read and commit, {TXN_ATTEMPTS} times"
        )))
    }

    /// Sends the commit; its errors keep their class (unknown once sent).
    async fn commit(
        &mut self,
        txn: &Txn,
        seen: &[Seen],
        puts: &[(usize, String)],
        deadline: Instant,
    ) -> Result<Commit, ClientError> {
        let body = txn.commit_body(seen, puts);
        let answer = self.txn_post("txn commit", &body, deadline).await?;
        if answer.succeeded {
            return Ok(Commit::Applied);
        }
        // The compares failed, so nothing was written whatever the failure
        // branch's answer looks like: a bad one is a known failure.
        txn.seen("txn commit (compare failed)", &answer.responses)
            .map(Commit::Changed)
            .map_err(|e| ClientError::not_applied(e.message))
    }

    /// POSTs a txn body and parses the answer.
    async fn txn_post(
        &mut self,
        what: &str,
        body: &Value,
        deadline: Instant,
    ) -> Result<TxnAnswer, ClientError> {
        let bytes = self.post("/v3/kv/txn", body, deadline).await?;
        let answer: TxnAnswer = parse_body(what, &bytes)?;
        check_header(what, &answer.header, &bytes)?;
        Ok(answer)
    }
}
