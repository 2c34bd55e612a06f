//! The in-memory database and its client: every operation atomic under
//! one lock. For tests of the runner and checkers, and for benches that
//! measure the harness rather than a database. [`Flaw`] breaks the
//! database on purpose, so tests can show a checker catches what it
//! should. Its lifecycle (which nodes serve) is in `db.rs`.

use super::db::Health;
use crate::client::{Client, ClientError, Completion, Invocation};
use crate::workload::Workload;
use serde_json::{json, Map, Value};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// What a [`MemoryDb`] stores, which decides what its functions mean.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    /// Registers by key: `read`, `write`, `cas` (and sets by key: `add`,
    /// `read-set`).
    Registers,
    /// Sets by key: `add`, `read`.
    Sets,
    /// Counters by key: `add` (a whole number), `read`.
    Counters,
    /// One bank: `transfer` `{from, to, amount}`, `read` (every balance).
    Bank {
        /// Opening balances of accounts `0..`.
        initial: Vec<i64>,
        /// Balances may go below zero.
        negative: bool,
    },
    /// One id source: `generate`.
    UniqueIds,
    /// Queues by key: `enqueue`, `dequeue`, `drain`.
    Queues,
    /// Transactions over registers and lists: `txn` with micro-operations
    /// `["r", k, null]`, `["w", k, v]`, `["append", k, v]`.
    Txn,
}

/// A deliberate bug, for tests that a checker catches it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Flaw {
    /// A correct database.
    #[default]
    None,
    /// Every `n`-th change is acknowledged but (partly) not applied: an
    /// add, an enqueue, a transfer's deposit, an id counter's increment.
    Lose(u64),
    /// Every `n`-th change is applied twice: an add, a transfer's deposit;
    /// a dequeue leaves its element in the queue; a generate hands out the
    /// previous id again.
    Duplicate(u64),
    /// Transactions run on one replica per node; each write reaches the
    /// other replicas only every `n`-th transaction, so nodes observe
    /// concurrent writes in different orders (long forks).
    Replicas(u64),
    /// Every `n`-th register read returns the register's value before its
    /// latest change (null when it had none): a stale read, as from a
    /// lagging replica. The `stale` read mode of the memory system.
    StaleReads(u64),
}

/// The state of [`MemoryDb`], by key.
#[derive(Debug, Default)]
pub(super) struct State {
    registers: HashMap<String, Value>,
    sets: HashMap<String, BTreeSet<u64>>,
    counters: HashMap<String, i64>,
    balances: Option<Vec<i64>>,
    next_id: u64,
    queues: HashMap<String, VecDeque<Value>>,
    /// Transactional data (key text → register value or list).
    txn: HashMap<String, Value>,
    /// With [`Flaw::Replicas`]: each node's copy, and the writes not yet
    /// copied to every node.
    replicas: HashMap<String, HashMap<String, Value>>,
    unreplicated: Vec<(String, String, Value)>,
    /// Changes made, for [`Flaw`]s that strike every `n`-th.
    changes: u64,
    /// With [`Flaw::StaleReads`]: each register's value before its latest
    /// change, and the register reads made.
    previous: HashMap<String, Value>,
    reads: u64,
}

impl State {
    /// Counts a change; true when the flaw `every` strikes it.
    fn strikes(&mut self, every: u64) -> bool {
        self.changes += 1;
        every > 0 && self.changes % every == 0
    }
}

/// An in-memory database shared by many [`MemoryClient`]s: every operation
/// happens atomically under one lock, between its invocation and its
/// completion, so (without a [`Flaw`]) every history it produces is
/// linearizable.
///
/// What its functions mean depends on the workload it serves
/// ([`MemoryDb::for_workload`]): registers (`read`, `write`, `cas`), sets
/// (`add`, `read`), counters (`add`, `read`), a bank (`transfer`, `read`),
/// an id source (`generate`), queues (`enqueue`, `dequeue` — `fail` when
/// empty — and `drain`), or transactions (`txn`).
#[derive(Debug, Clone)]
pub struct MemoryDb {
    pub(super) state: Arc<Mutex<State>>,
    kind: Arc<Kind>,
    flaw: Flaw,
    /// The nodes that do not serve (killed, stopped, paused) through its
    /// [`crate::db::Db`] lifecycle; every node serves by default.
    pub(super) nodes: Arc<Mutex<HashMap<String, Health>>>,
}

impl Default for MemoryDb {
    fn default() -> Self {
        MemoryDb::of(Kind::Registers)
    }
}

impl MemoryDb {
    fn of(kind: Kind) -> MemoryDb {
        MemoryDb {
            state: Arc::default(),
            kind: Arc::new(kind),
            flaw: Flaw::None,
            nodes: Arc::default(),
        }
    }

    /// This database (its data and its nodes) serving `w`'s functions.
    pub fn serving(&self, w: &Workload) -> MemoryDb {
        MemoryDb {
            kind: MemoryDb::for_workload(w).kind,
            ..self.clone()
        }
    }

    /// A database whose `read` reads registers.
    pub fn registers() -> MemoryDb {
        MemoryDb::of(Kind::Registers)
    }

    /// A database whose `read` reads sets (for set workloads).
    pub fn sets() -> MemoryDb {
        MemoryDb::of(Kind::Sets)
    }

    /// The database a model's histories come from (a bank gets
    /// [`crate::workload::BankSpec::default`]'s accounts).
    pub fn for_model(model: &str) -> MemoryDb {
        MemoryDb::of(match model {
            "set" => Kind::Sets,
            "counter" => Kind::Counters,
            "unique-ids" => Kind::UniqueIds,
            "queue" => Kind::Queues,
            "bank" => {
                let spec = crate::workload::BankSpec::default();
                Kind::Bank {
                    initial: spec.initial_balances(),
                    negative: spec.negative_balances,
                }
            }
            "long-fork" | "list-append" | "rw-register" => Kind::Txn,
            _ => Kind::Registers,
        })
    }

    /// The database for a workload: its model's, with its bank's accounts.
    pub fn for_workload(w: &Workload) -> MemoryDb {
        match &w.bank {
            Some(spec) => MemoryDb::of(Kind::Bank {
                initial: spec.initial_balances(),
                negative: spec.negative_balances,
            }),
            None => MemoryDb::for_model(&w.model),
        }
    }

    /// This database with a deliberate bug.
    pub fn with_flaw(mut self, flaw: Flaw) -> MemoryDb {
        self.flaw = flaw;
        self
    }

    /// A new client of this database.
    pub fn client(&self) -> MemoryClient {
        MemoryClient {
            db: self.clone(),
            node: None,
        }
    }

    /// Performs one operation atomically.
    pub fn apply(&self, inv: &Invocation) -> Completion {
        self.apply_at("", inv)
    }

    /// Performs one operation atomically, on `node` (which matters only
    /// with [`Flaw::Replicas`]).
    pub fn apply_at(&self, node: &str, inv: &Invocation) -> Completion {
        let key = inv.key.as_ref().map_or_else(String::new, Value::to_string);
        // A poisoned lock means another client panicked mid-operation; the
        // maps are still consistent (every operation is one insert), so go on.
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let st = &mut *st;
        let v = &inv.value;
        match (&*self.kind, inv.f.as_str()) {
            (Kind::Sets, "read") | (_, "read-set") => {
                let members: Vec<u64> = st
                    .sets
                    .get(&key)
                    .map(|s| s.iter().copied().collect())
                    .unwrap_or_default();
                Completion::ok(json!(members))
            }
            (Kind::Counters, "add") => match v.as_i64() {
                Some(n) => {
                    let times = match self.flaw {
                        Flaw::Lose(e) if st.strikes(e) => 0,
                        Flaw::Duplicate(e) if st.strikes(e) => 2,
                        _ => 1,
                    };
                    *st.counters.entry(key).or_default() += n * times;
                    Completion::ok(v.clone())
                }
                None => Completion::fail(v.clone(), "add needs a whole number"),
            },
            (Kind::Counters, "read") => {
                Completion::ok(json!(st.counters.get(&key).copied().unwrap_or(0)))
            }
            (Kind::Bank { initial, negative }, f) => {
                let balances = st.balances.get_or_insert_with(|| initial.clone());
                match f {
                    "read" => Completion::ok(Value::Object(
                        balances
                            .iter()
                            .enumerate()
                            .map(|(i, b)| (i.to_string(), json!(b)))
                            .collect::<Map<_, _>>(),
                    )),
                    "transfer" => self.transfer(st, *negative, v),
                    f => Completion::fail(v.clone(), format!("unknown function {f:?}")),
                }
            }
            (Kind::UniqueIds, "generate") => {
                let id = st.next_id;
                let advance = match self.flaw {
                    Flaw::Lose(e) if st.strikes(e) => 0,
                    Flaw::Duplicate(e) if id > 0 && st.strikes(e) => {
                        return Completion::ok(json!(id - 1))
                    }
                    _ => 1,
                };
                st.next_id += advance;
                Completion::ok(json!(id))
            }
            (Kind::Queues, "enqueue") => {
                if !matches!(self.flaw, Flaw::Lose(e) if st.strikes(e)) {
                    st.queues.entry(key).or_default().push_back(v.clone());
                }
                Completion::ok(v.clone())
            }
            (Kind::Queues, "dequeue") => {
                let dup = matches!(self.flaw, Flaw::Duplicate(e) if st.strikes(e));
                let q = st.queues.entry(key).or_default();
                let got = if dup {
                    q.front().cloned()
                } else {
                    q.pop_front()
                };
                match got {
                    Some(x) => Completion::ok(x),
                    None => Completion::fail(Value::Null, "empty"),
                }
            }
            (Kind::Queues, "drain") => {
                let q = st.queues.entry(key).or_default();
                Completion::ok(Value::Array(q.drain(..).collect()))
            }
            (Kind::Txn, "txn") => self.txn(st, node, v),
            (Kind::Registers, "read") => {
                st.reads += 1;
                let stale = matches!(self.flaw, Flaw::StaleReads(e) if e > 0 && st.reads % e == 0);
                let from = if stale { &st.previous } else { &st.registers };
                Completion::ok(from.get(&key).cloned().unwrap_or(Value::Null))
            }
            (_, "write") => {
                let old = st.registers.insert(key.clone(), v.clone());
                st.previous.insert(key, old.unwrap_or(Value::Null));
                Completion::ok(v.clone())
            }
            (_, "cas") => match v.as_array().map(Vec::as_slice) {
                Some([expected, new]) => {
                    let current = st.registers.get(&key).unwrap_or(&Value::Null);
                    if current == expected {
                        st.previous.insert(key.clone(), current.clone());
                        st.registers.insert(key, new.clone());
                        Completion::ok(v.clone())
                    } else {
                        Completion::fail(v.clone(), crate::model::CAS_MISMATCH)
                    }
                }
                _ => Completion::fail(v.clone(), "cas needs [expected, new]"),
            },
            (Kind::Registers | Kind::Sets, "add") => match v.as_u64() {
                Some(x) => {
                    st.sets.entry(key).or_default().insert(x);
                    Completion::ok(v.clone())
                }
                None => Completion::fail(v.clone(), "add needs a non-negative integer"),
            },
            (_, f) => Completion::fail(v.clone(), format!("unknown function {f:?}")),
        }
    }

    /// A bank transfer `{from, to, amount}`.
    fn transfer(&self, st: &mut State, negative: bool, v: &Value) -> Completion {
        let field = |n: &str| v.get(n).and_then(Value::as_i64);
        let (Some(from), Some(to), Some(amount)) = (field("from"), field("to"), field("amount"))
        else {
            return Completion::fail(v.clone(), "transfer needs {from, to, amount}");
        };
        let deposit = match self.flaw {
            Flaw::Lose(e) if st.strikes(e) => 0,
            Flaw::Duplicate(e) if st.strikes(e) => 2 * amount,
            _ => amount,
        };
        let Some(balances) = st.balances.as_mut() else {
            return Completion::fail(v.clone(), "no accounts");
        };
        let n = balances.len() as i64;
        if !(0..n).contains(&from) || !(0..n).contains(&to) || from == to {
            return Completion::fail(v.clone(), "no such pair of accounts");
        }
        if !negative && balances[from as usize] < amount {
            return Completion::fail(v.clone(), "insufficient funds");
        }
        balances[from as usize] -= amount;
        balances[to as usize] += deposit;
        Completion::ok(v.clone())
    }

    /// A transaction of `r`, `w` and `append` micro-operations, applied
    /// whole; with [`Flaw::Replicas`], on `node`'s replica.
    fn txn(&self, st: &mut State, node: &str, v: &Value) -> Completion {
        let Some(mops) = v.as_array() else {
            return Completion::fail(v.clone(), "txn needs a list of micro-operations");
        };
        let mut out = Vec::with_capacity(mops.len());
        let mut writes = Vec::new();
        let replicated = matches!(self.flaw, Flaw::Replicas(_));
        {
            let data = if replicated {
                // A new replica starts from everything replicated so far.
                let base = &st.txn;
                st.replicas
                    .entry(node.to_string())
                    .or_insert_with(|| base.clone())
            } else {
                &mut st.txn
            };
            for m in mops {
                let Some([f, k, x]) = m.as_array().map(Vec::as_slice) else {
                    return Completion::fail(v.clone(), format!("bad micro-operation {m}"));
                };
                let key = k.to_string();
                match f.as_str() {
                    Some("r") => out.push(json!(["r", k, data.get(&key).cloned()])),
                    Some("w") => {
                        data.insert(key.clone(), x.clone());
                        writes.push((key, x.clone()));
                        out.push(m.clone());
                    }
                    Some("append") => {
                        let list = data.entry(key.clone()).or_insert_with(|| json!([]));
                        if let Some(l) = list.as_array_mut() {
                            l.push(x.clone());
                        }
                        writes.push((key, list.clone()));
                        out.push(m.clone());
                    }
                    _ => return Completion::fail(v.clone(), format!("bad micro-operation {m}")),
                }
            }
        }
        if let Flaw::Replicas(every) = self.flaw {
            for (k, x) in writes {
                st.unreplicated.push((node.to_string(), k, x));
            }
            if st.strikes(every) {
                // Replicate everything, in order, to every node.
                let pending = std::mem::take(&mut st.unreplicated);
                let nodes: Vec<String> = st.replicas.keys().cloned().collect();
                for (origin, k, x) in pending {
                    st.txn.insert(k.clone(), x.clone());
                    for n in nodes.iter().filter(|n| **n != origin) {
                        if let Some(r) = st.replicas.get_mut(n) {
                            r.insert(k.clone(), x.clone());
                        }
                    }
                }
            }
        }
        Completion::ok(Value::Array(out))
    }
}

/// A client of a [`MemoryDb`].
#[derive(Debug)]
pub struct MemoryClient {
    db: MemoryDb,
    node: Option<String>,
}

#[async_trait::async_trait]
impl Client for MemoryClient {
    async fn open(&mut self, node: &str) -> Result<(), ClientError> {
        self.node = Some(node.to_string());
        Ok(())
    }

    async fn invoke(&mut self, inv: &Invocation) -> Completion {
        if self.node.is_none() {
            return Completion::from_error(
                inv.value.clone(),
                &ClientError::not_applied("client not open"),
            );
        }
        let node = self.node.as_deref().unwrap_or_default();
        let health = self.db.health(node);
        match health {
            Health::Serving => self.db.apply_at(node, inv),
            Health::Down => Completion::from_error(
                inv.value.clone(),
                &ClientError::not_applied(format!("connection refused: {node} is down")),
            ),
            Health::Paused => Completion::from_error(
                inv.value.clone(),
                &ClientError::unknown(format!("timed out: {node} is paused")),
            ),
        }
    }

    async fn close(&mut self) -> Result<(), ClientError> {
        self.node = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{ErrorClass, Status};
    use crate::history::Process;
    use std::time::Duration;

    fn inv(f: &str, key: u64, value: Value) -> Invocation {
        Invocation {
            process: Process::Client(0),
            f: f.into(),
            value,
            key: Some(json!(key)),
            timeout: Duration::from_secs(1),
        }
    }

    #[tokio::test]
    async fn register_reads_writes_and_compares_per_key() {
        let db = MemoryDb::registers();
        let mut c = db.client();
        c.open("n1").await.expect("open");
        assert_eq!(
            c.invoke(&inv("read", 1, json!(null))).await,
            Completion::ok(json!(null))
        );
        assert_eq!(
            c.invoke(&inv("write", 1, json!(3))).await.status,
            Status::Ok
        );
        assert_eq!(c.invoke(&inv("read", 1, json!(null))).await.value, json!(3));
        assert_eq!(
            c.invoke(&inv("read", 2, json!(null))).await.value,
            json!(null)
        );
        let cas_bad = c.invoke(&inv("cas", 1, json!([4, 5]))).await;
        assert_eq!(cas_bad.status, Status::Fail);
        assert_eq!(
            c.invoke(&inv("cas", 1, json!([3, 5]))).await.status,
            Status::Ok
        );
        // Another client of the same database sees the effect.
        let mut d = db.client();
        d.open("n2").await.expect("open");
        assert_eq!(d.invoke(&inv("read", 1, json!(null))).await.value, json!(5));
        assert_eq!(
            d.invoke(&inv("frob", 1, json!(null))).await.status,
            Status::Fail
        );
    }

    #[tokio::test]
    async fn set_adds_and_reads_sorted_members() {
        let db = MemoryDb::sets();
        let mut c = db.client();
        c.open("n1").await.expect("open");
        for v in [3, 1, 2, 3] {
            assert_eq!(c.invoke(&inv("add", 0, json!(v))).await.status, Status::Ok);
        }
        assert_eq!(
            c.invoke(&inv("read", 0, json!(null))).await.value,
            json!([1, 2, 3])
        );
        assert_eq!(
            c.invoke(&inv("add", 0, json!("x"))).await.status,
            Status::Fail
        );
    }

    #[test]
    fn a_stale_reads_flaw_returns_the_value_before_the_latest_change_every_nth_read() {
        let db = MemoryDb::registers().with_flaw(Flaw::StaleReads(3));
        let read = |db: &MemoryDb| db.apply(&inv("read", 1, json!(null))).value;
        db.apply(&inv("write", 1, json!(1)));
        db.apply(&inv("cas", 1, json!([1, 2])));
        assert_eq!(read(&db), json!(2));
        assert_eq!(read(&db), json!(2));
        assert_eq!(
            read(&db),
            json!(1),
            "the third read is stale: before the cas"
        );
        assert_eq!(read(&db), json!(2));
        db.apply(&inv("write", 1, json!(7)));
        assert_eq!(read(&db), json!(7));
        assert_eq!(read(&db), json!(2), "the sixth: before the write");
    }

    fn apply(db: &MemoryDb, f: &str, value: Value) -> Completion {
        let mut i = inv(f, 0, value);
        i.key = None;
        db.apply(&i)
    }

    #[test]
    fn counters_add_and_read_and_a_duplicating_flaw_double_counts() {
        let db = MemoryDb::for_model("counter");
        apply(&db, "add", json!(2));
        apply(&db, "add", json!(3));
        assert_eq!(apply(&db, "read", json!(null)).value, json!(5));
        assert_eq!(apply(&db, "add", json!("x")).status, Status::Fail);
        let db = MemoryDb::for_model("counter").with_flaw(Flaw::Duplicate(2));
        apply(&db, "add", json!(1));
        apply(&db, "add", json!(1));
        assert_eq!(apply(&db, "read", json!(null)).value, json!(3));
    }

    #[test]
    fn bank_transfers_keep_the_total_and_refuse_overdrafts() {
        let db = MemoryDb::for_model("bank");
        assert_eq!(
            apply(&db, "read", json!(null)).value,
            json!({"0": 20, "1": 20, "2": 20, "3": 20, "4": 20})
        );
        let t = apply(&db, "transfer", json!({"from": 0, "to": 1, "amount": 5}));
        assert_eq!(t.status, Status::Ok);
        let over = apply(&db, "transfer", json!({"from": 0, "to": 1, "amount": 16}));
        assert_eq!(
            (over.status, over.error),
            (Status::Fail, Some(json!("insufficient funds")))
        );
        let same = apply(&db, "transfer", json!({"from": 2, "to": 2, "amount": 1}));
        assert_eq!(same.status, Status::Fail);
        assert_eq!(apply(&db, "read", json!(null)).value["1"], json!(25));
        let lossy = MemoryDb::for_model("bank").with_flaw(Flaw::Lose(1));
        apply(&lossy, "transfer", json!({"from": 0, "to": 1, "amount": 5}));
        assert_eq!(
            apply(&lossy, "read", json!(null)).value,
            json!({"0": 15, "1": 20, "2": 20, "3": 20, "4": 20}),
            "the deposit was lost"
        );
    }

    #[test]
    fn ids_queues_and_their_flaws() {
        let db = MemoryDb::for_model("unique-ids");
        let ids: Vec<Value> = (0..3)
            .map(|_| apply(&db, "generate", json!(null)).value)
            .collect();
        assert_eq!(ids, vec![json!(0), json!(1), json!(2)]);
        let dup = MemoryDb::for_model("unique-ids").with_flaw(Flaw::Duplicate(2));
        let ids: Vec<Value> = (0..3)
            .map(|_| apply(&dup, "generate", json!(null)).value)
            .collect();
        assert_eq!(
            ids,
            vec![json!(0), json!(1), json!(1)],
            "the third repeats the second"
        );

        let q = MemoryDb::for_model("queue");
        for v in 1..=3 {
            apply(&q, "enqueue", json!(v));
        }
        assert_eq!(apply(&q, "dequeue", json!(null)).value, json!(1));
        assert_eq!(apply(&q, "drain", json!(null)).value, json!([2, 3]));
        let empty = apply(&q, "dequeue", json!(null));
        assert_eq!(
            (empty.status, empty.error),
            (Status::Fail, Some(json!("empty")))
        );
        let lossy = MemoryDb::for_model("queue").with_flaw(Flaw::Lose(2));
        for v in 1..=4 {
            apply(&lossy, "enqueue", json!(v));
        }
        assert_eq!(apply(&lossy, "drain", json!(null)).value, json!([1, 3]));
    }

    #[test]
    fn transactions_read_their_writes_and_replicas_diverge_until_replicated() {
        let db = MemoryDb::for_model("long-fork");
        apply(&db, "txn", json!([["w", 1, 1], ["append", 2, 7]]));
        let r = apply(
            &db,
            "txn",
            json!([["r", 1, null], ["r", 2, null], ["r", 3, null]]),
        );
        assert_eq!(r.value, json!([["r", 1, 1], ["r", 2, [7]], ["r", 3, null]]));
        let bad = apply(&db, "txn", json!([["x", 1]]));
        assert_eq!(bad.status, Status::Fail);

        let db = MemoryDb::for_model("long-fork").with_flaw(Flaw::Replicas(4));
        let read = json!([["r", 1, null], ["r", 2, null]]);
        db.apply_at("n1", &inv("txn", 0, json!([["w", 1, 1]])));
        db.apply_at("n2", &inv("txn", 0, json!([["w", 2, 1]])));
        let a = db.apply_at("n1", &inv("txn", 0, read.clone())).value;
        assert_eq!(a, json!([["r", 1, 1], ["r", 2, null]]));
        // The fourth transaction replicates everything.
        let b = db.apply_at("n2", &inv("txn", 0, read.clone())).value;
        assert_eq!(b, json!([["r", 1, null], ["r", 2, 1]]), "a long fork");
        let c = db.apply_at("n1", &inv("txn", 0, read)).value;
        assert_eq!(c, json!([["r", 1, 1], ["r", 2, 1]]));
    }

    #[tokio::test]
    async fn a_closed_client_refuses_without_applying() {
        let db = MemoryDb::registers();
        let mut c = db.client();
        let r = c.invoke(&inv("write", 1, json!(1))).await;
        assert_eq!(r.status, Status::Fail);
        c.open("n1").await.expect("open");
        assert_eq!(
            c.invoke(&inv("read", 1, json!(null))).await.value,
            json!(null),
            "the write did not happen"
        );
        c.close().await.expect("close");
        assert_eq!(
            c.invoke(&inv("read", 1, json!(null))).await.status,
            Status::Fail
        );
    }

    #[test]
    fn errors_map_to_fail_or_info_by_class() {
        let e = ClientError::not_applied("compare failed");
        assert_eq!(e.class, ErrorClass::NotApplied);
        let c = Completion::from_error(json!(1), &e);
        assert_eq!(
            (c.status, c.error),
            (Status::Fail, Some(json!("compare failed")))
        );
        let c = Completion::from_error(json!(1), &ClientError::unknown("timeout"));
        assert_eq!(c.status, Status::Info);
        assert_eq!(c.value, json!(1), "the argument is kept for the checker");
        assert_eq!(
            crate::history::OpType::from(Status::Info),
            crate::history::OpType::Info
        );
    }
}
