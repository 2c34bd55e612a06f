//! In-process clients: a linearizable in-memory database and a client that
//! does nothing. For tests of the runner and checkers, and for benches that
//! measure the harness rather than a database.

use super::{Client, ClientError, Completion, Invocation};
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

/// The state of [`MemoryDb`]: registers and sets, by key.
#[derive(Debug, Default)]
struct State {
    registers: HashMap<String, Value>,
    sets: HashMap<String, BTreeSet<u64>>,
}

/// A linearizable in-memory database shared by many [`MemoryClient`]s: every
/// operation happens atomically under one lock, between its invocation and
/// its completion, so any history it produces is linearizable.
///
/// Registers: `read` (value `null`, result the current value or `null`),
/// `write` (value), `cas` (`[expected, new]`, `fail` when the current value
/// differs). Sets: `add` (an integer), `read-set` / `read` on a set key (the
/// sorted members). A key is a register or a set by its first use.
#[derive(Debug, Default, Clone)]
pub struct MemoryDb {
    state: Arc<Mutex<State>>,
    /// When true, `read` returns set members (set workloads).
    sets: bool,
}

impl MemoryDb {
    /// A database whose `read` reads registers.
    pub fn registers() -> MemoryDb {
        MemoryDb::default()
    }

    /// A database whose `read` reads sets (for set workloads).
    pub fn sets() -> MemoryDb {
        MemoryDb {
            state: Arc::default(),
            sets: true,
        }
    }

    /// The database a model's histories come from: sets for `set`,
    /// registers otherwise.
    pub fn for_model(model: &str) -> MemoryDb {
        if model == "set" {
            MemoryDb::sets()
        } else {
            MemoryDb::registers()
        }
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
        let key = inv.key.as_ref().map_or_else(String::new, Value::to_string);
        // A poisoned lock means another client panicked mid-operation; the
        // maps are still consistent (every operation is one insert), so go on.
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match (inv.f.as_str(), self.sets) {
            ("read", false) => {
                Completion::ok(st.registers.get(&key).cloned().unwrap_or(Value::Null))
            }
            ("read", true) | ("read-set", _) => {
                let members: Vec<u64> = st
                    .sets
                    .get(&key)
                    .map(|s| s.iter().copied().collect())
                    .unwrap_or_default();
                Completion::ok(json!(members))
            }
            ("write", _) => {
                st.registers.insert(key, inv.value.clone());
                Completion::ok(inv.value.clone())
            }
            ("cas", _) => match inv.value.as_array().map(Vec::as_slice) {
                Some([expected, new]) => {
                    let current = st.registers.get(&key).unwrap_or(&Value::Null);
                    if current == expected {
                        st.registers.insert(key, new.clone());
                        Completion::ok(inv.value.clone())
                    } else {
                        Completion::fail(inv.value.clone(), crate::model::CAS_MISMATCH)
                    }
                }
                _ => Completion::fail(inv.value.clone(), "cas needs [expected, new]"),
            },
            ("add", _) => match inv.value.as_u64() {
                Some(v) => {
                    st.sets.entry(key).or_default().insert(v);
                    Completion::ok(inv.value.clone())
                }
                None => Completion::fail(inv.value.clone(), "add needs a non-negative integer"),
            },
            (f, _) => Completion::fail(inv.value.clone(), format!("unknown function {f:?}")),
        }
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
        self.db.apply(inv)
    }

    async fn close(&mut self) -> Result<(), ClientError> {
        self.node = None;
        Ok(())
    }
}

/// A client that does nothing: every operation is `ok` with its own
/// argument as result. Measures the harness alone.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopClient;

#[async_trait::async_trait]
impl Client for NoopClient {
    async fn open(&mut self, _node: &str) -> Result<(), ClientError> {
        Ok(())
    }

    async fn invoke(&mut self, inv: &Invocation) -> Completion {
        Completion::ok(inv.value.clone())
    }

    async fn close(&mut self) -> Result<(), ClientError> {
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
