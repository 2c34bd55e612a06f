//! The key-value operations the etcd, ZooKeeper and Redis clients share,
//! decoded once from an [`Invocation`] ([`KvOp::decode`]), with the rules
//! every such client follows in one place; each client only encodes a
//! [`KvOp`] for its store.
//!
//! The rules:
//!
//! - `read` reads a register, or the whole set when the keys hold sets
//!   ([`DataKind::Set`]); `read-set` reads a set whatever they hold.
//! - `write` and `cas` refuse `null` as the value to store (`fail`): to
//!   `cas` and to a read `null` means "absent", so a stored `null` would
//!   read back the same as a missing key. `cas` takes `[expected, new]`;
//!   an expected `null` matches a missing key.
//! - `add` takes an integer element in the range of `i64` (what the
//!   stores' set reads parse back); anything else is refused (`fail`).
//! - A read whose outcome is unknown (a timeout, a lost connection) is
//!   recorded as not applied ([`settle`]): a read changes nothing, so
//!   keeping it out of the history loses nothing, where an `info` read
//!   would stay open forever in the linearizability search.

use super::{ClientError, Completion, ErrorClass, Invocation};
use serde_json::Value;

/// What a workload's keys hold, which decides what `read` means.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DataKind {
    /// Registers: `read`, `write`, `cas` (one key of the store per faultline key).
    #[default]
    Register,
    /// Sets: `add` an element, `read` the whole set.
    Set,
    /// Lists of the `list-append` workload: `txn` of `append` and `r`.
    List,
    /// Registers of the `rw-register` workload: `txn` of `w` and `r`.
    RwRegister,
    /// Counters: `add` (a compare-and-set loop), `read` (see `classic.rs`).
    Counter,
    /// An id source: `generate` (a put's revision; see `classic.rs`).
    UniqueIds,
    /// A lock (`acquire`, `release`) guarding a set held by the
    /// controller (`add`, `read`): the lock-set workload, model `mutex`.
    Lock,
}

impl DataKind {
    /// The kind a checker model works on: sets for `set`, lists for
    /// `list-append`, transactional registers for `rw-register`, counters
    /// for `counter`, ids for `unique-ids`, a lock for `mutex`, registers
    /// otherwise (as
    /// `system::memory`'s `MemoryDb::for_model`).
    pub fn for_model(model: &str) -> DataKind {
        match model {
            "set" => DataKind::Set,
            "list-append" => DataKind::List,
            "rw-register" => DataKind::RwRegister,
            "counter" => DataKind::Counter,
            "unique-ids" => DataKind::UniqueIds,
            "mutex" => DataKind::Lock,
            _ => DataKind::Register,
        }
    }
}

/// One key-value operation, decoded from an [`Invocation`].
#[derive(Clone, Debug, PartialEq)]
pub enum KvOp {
    /// Read a register.
    Read,
    /// Read a whole set.
    ReadSet,
    /// Store a value (never `null`).
    Write(Value),
    /// Store `new` (never `null`) if the register holds `expected` (`null`:
    /// absent).
    Cas {
        /// The value the register must hold.
        expected: Value,
        /// The value to store.
        new: Value,
    },
    /// Add an element to a set.
    Add(i64),
}

impl KvOp {
    /// Decodes `inv` for keys holding `kind`; `client` names the client in
    /// the refusal of an unknown function. Errors are `fail`: nothing was
    /// sent.
    pub fn decode(inv: &Invocation, kind: DataKind, client: &str) -> Result<KvOp, ClientError> {
        match (inv.f.as_str(), kind) {
            ("read", DataKind::Set) | ("read-set", _) => Ok(KvOp::ReadSet),
            ("read", _) => Ok(KvOp::Read),
            ("write", _) => Ok(KvOp::Write(storable(&inv.value, "write")?)),
            ("cas", _) => match inv.value.as_array().map(Vec::as_slice) {
                Some([expected, new]) => Ok(KvOp::Cas {
                    expected: expected.clone(),
                    new: storable(new, "cas")?,
                }),
                _ => Err(ClientError::not_applied(
                    "cas needs [expected, new] as its value",
                )),
            },
            ("add", _) => inv.value.as_i64().map(KvOp::Add).ok_or_else(|| {
                ClientError::not_applied(format!(
                    "add needs an integer element (a 64-bit signed one), not {}",
                    inv.value
                ))
            }),
            (f, _) => Err(ClientError::not_applied(format!(
                "the {client} client has no function {f:?}"
            ))),
        }
    }

    /// Whether it only reads.
    pub fn is_read(&self) -> bool {
        matches!(self, KvOp::Read | KvOp::ReadSet)
    }
}

/// The invocation's key (`null` for an unkeyed workload).
pub fn key(inv: &Invocation) -> &Value {
    inv.key.as_ref().unwrap_or(&Value::Null)
}

/// `v` if it may be stored: `null` means absent.
fn storable(v: &Value, what: &str) -> Result<Value, ClientError> {
    if v.is_null() {
        return Err(ClientError::not_applied(format!(
            "{what}: null cannot be stored (it means absent)"
        )));
    }
    Ok(v.clone())
}

/// The completion of `op` from its client's result: an error of a read
/// whose outcome is unknown becomes not applied (a read changes nothing).
pub fn settle(op: &KvOp, inv: &Invocation, result: Result<Completion, ClientError>) -> Completion {
    match result {
        Ok(c) => c,
        Err(e) if op.is_read() && e.class == ErrorClass::Unknown => Completion::from_error(
            inv.value.clone(),
            &ClientError::not_applied(format!("read, outcome irrelevant: {e}")),
        ),
        Err(e) => Completion::from_error(inv.value.clone(), &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Status;
    use crate::history::Process;
    use serde_json::json;
    use std::time::Duration;

    fn inv(f: &str, value: Value) -> Invocation {
        Invocation {
            process: Process::Client(0),
            f: f.into(),
            value,
            key: Some(json!(3)),
            timeout: Duration::from_secs(1),
        }
    }

    fn refusal(f: &str, value: Value, kind: DataKind) -> String {
        let e = KvOp::decode(&inv(f, value), kind, "test").unwrap_err();
        assert_eq!(e.class, ErrorClass::NotApplied, "{e}");
        e.message
    }

    #[test]
    fn operations_decode_once_by_the_kind_of_keys() {
        let reg = DataKind::Register;
        assert_eq!(
            KvOp::decode(&inv("read", Value::Null), reg, "t"),
            Ok(KvOp::Read)
        );
        let set = DataKind::Set;
        assert_eq!(
            KvOp::decode(&inv("read", Value::Null), set, "t"),
            Ok(KvOp::ReadSet)
        );
        assert_eq!(
            KvOp::decode(&inv("read-set", Value::Null), reg, "t"),
            Ok(KvOp::ReadSet)
        );
        assert_eq!(
            KvOp::decode(&inv("write", json!(4)), reg, "t"),
            Ok(KvOp::Write(json!(4)))
        );
        assert_eq!(
            KvOp::decode(&inv("cas", json!([null, 2])), reg, "t"),
            Ok(KvOp::Cas {
                expected: Value::Null,
                new: json!(2)
            })
        );
        assert_eq!(
            refusal("cas", json!(1), reg),
            "cas needs [expected, new] as its value"
        );
        assert_eq!(
            refusal("append", json!(1), reg),
            "the test client has no function \"append\""
        );
    }

    #[test]
    fn null_is_never_stored() {
        let reg = DataKind::Register;
        assert_eq!(
            refusal("write", Value::Null, reg),
            "write: null cannot be stored (it means absent)"
        );
        assert_eq!(
            refusal("cas", json!([1, null]), reg),
            "cas: null cannot be stored (it means absent)"
        );
    }

    #[test]
    fn add_takes_a_signed_64_bit_integer_only() {
        let set = DataKind::Set;
        assert_eq!(
            KvOp::decode(&inv("add", json!(-5)), set, "t"),
            Ok(KvOp::Add(-5))
        );
        assert_eq!(
            KvOp::decode(&inv("add", json!(i64::MAX)), set, "t"),
            Ok(KvOp::Add(i64::MAX))
        );
        for bad in [json!(u64::MAX), json!(1.5), json!("1"), Value::Null] {
            let e = refusal("add", bad.clone(), set);
            assert_eq!(
                e,
                format!("add needs an integer element (a 64-bit signed one), not {bad}")
            );
        }
    }

    #[test]
    fn a_read_of_unknown_outcome_is_not_applied_and_a_write_stays_unknown() {
        let read = inv("read", Value::Null);
        let lost = || Err(ClientError::unknown("timed out"));
        let c = settle(&KvOp::Read, &read, lost());
        assert_eq!(c.status, Status::Fail);
        assert_eq!(c.error, Some(json!("read, outcome irrelevant: timed out")));
        assert_eq!(settle(&KvOp::ReadSet, &read, lost()).status, Status::Fail);
        let write = inv("write", json!(1));
        let c = settle(&KvOp::Write(json!(1)), &write, lost());
        assert_eq!(c.status, Status::Info);
        assert_eq!(c.value, json!(1));
        let refused = Err(ClientError::not_applied("cas: mismatch"));
        let cas = KvOp::Cas {
            expected: json!(1),
            new: json!(2),
        };
        assert_eq!(settle(&cas, &write, refused).status, Status::Fail);
        let ok = settle(&KvOp::Read, &read, Ok(Completion::ok(json!(7))));
        assert_eq!(ok, Completion::ok(json!(7)));
    }
}
