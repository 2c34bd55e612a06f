//! The transaction generator of the `list-append` and `rw-register`
//! workloads, after Elle's: each operation is `f = "txn"` with a list of
//! 1 to `max_ops` micro-operations over a pool of `active_keys` keys. A
//! read is `["r", k, null]`; a write is `["append", k, v]` (list-append)
//! or `["w", k, v]` (rw-register), with `v` unique per key (1, 2, 3, ...
//! on each key). A key that has had `max_writes_per_key` writes is retired
//! and replaced by a fresh one, so lists stay short and the checker's
//! version orders small.

use crate::generator::{Context, Emit, Generator, OpSpec};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

/// The shape of the transactions, from a workload file's `[txn]` table.
#[derive(Clone, Debug, PartialEq)]
pub struct TxnSpec {
    /// Fewest micro-operations in a transaction (at least 1).
    pub min_ops: usize,
    /// Most micro-operations in a transaction.
    pub max_ops: usize,
    /// Keys in use at once.
    pub active_keys: usize,
    /// Writes a key gets before it is replaced by a fresh key.
    pub max_writes_per_key: u64,
    /// Probability that a micro-operation is a read (the rest are writes).
    pub read_fraction: f64,
}

impl Default for TxnSpec {
    fn default() -> Self {
        TxnSpec {
            min_ops: 1,
            max_ops: 5,
            active_keys: 10,
            max_writes_per_key: 32,
            read_fraction: 0.5,
        }
    }
}

/// Infinite generator of transactions; bound it with a time limit.
pub struct TxnGen {
    spec: TxnSpec,
    /// `list-append` writes `append`, anything else `w`.
    append: bool,
    /// The active keys and how many writes each has had.
    keys: Vec<(u64, u64)>,
    next_key: u64,
    rng: ChaCha8Rng,
}

impl TxnGen {
    /// Transactions of `spec`, `append`s when `append` (list-append), `w`s
    /// otherwise (rw-register), drawn from `rng`.
    pub fn new(spec: TxnSpec, append: bool, rng: ChaCha8Rng) -> TxnGen {
        let n = spec.active_keys.max(1) as u64;
        TxnGen {
            keys: (0..n).map(|k| (k, 0)).collect(),
            next_key: n,
            spec,
            append,
            rng,
        }
    }

    /// The next transaction's micro-operations.
    pub fn draw(&mut self) -> Value {
        let lo = self.spec.min_ops.max(1);
        let hi = self.spec.max_ops.max(lo);
        let len = self.rng.random_range(lo..=hi);
        let mut mops = Vec::with_capacity(len);
        for _ in 0..len {
            let slot = self.rng.random_range(0..self.keys.len());
            let read = self
                .rng
                .random_bool(self.spec.read_fraction.clamp(0.0, 1.0));
            let (k, writes) = self.keys[slot];
            if read {
                mops.push(json!(["r", k, null]));
                continue;
            }
            let v = writes + 1;
            mops.push(json!([if self.append { "append" } else { "w" }, k, v]));
            if v >= self.spec.max_writes_per_key.max(1) {
                self.keys[slot] = (self.next_key, 0);
                self.next_key += 1;
            } else {
                self.keys[slot].1 = v;
            }
        }
        Value::Array(mops)
    }
}

impl Generator for TxnGen {
    fn next(&mut self, _ctx: &Context) -> Emit {
        Emit::Invoke(OpSpec::new("txn", self.draw()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn writes_are_unique_per_key_and_lengths_bounded() {
        let spec = TxnSpec {
            max_writes_per_key: 4,
            active_keys: 3,
            ..TxnSpec::default()
        };
        let mut g = TxnGen::new(spec, true, crate::generator::rng(7, 1));
        let mut seen = HashSet::new();
        let mut keys = HashSet::new();
        for _ in 0..2000 {
            let t = g.draw();
            let mops = t.as_array().unwrap();
            assert!((1..=5).contains(&mops.len()));
            for m in mops {
                let m = m.as_array().unwrap();
                keys.insert(m[1].as_u64().unwrap());
                if m[0] == "append" {
                    let v = m[2].as_u64().unwrap();
                    assert!((1..=4).contains(&v));
                    assert!(seen.insert((m[1].as_u64().unwrap(), v)), "duplicate write");
                } else {
                    assert_eq!(m[0], "r");
                    assert!(m[2].is_null());
                }
            }
        }
        // Keys were retired and replaced.
        assert!(keys.len() > 3);
    }

    #[test]
    fn shipped_txn_workloads_load_and_generate_txns() {
        use crate::workload::Workload;
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads");
        for (name, write) in [("list-append", "append"), ("rw-register", "w")] {
            let w = Workload::find(name, &dir).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(w.model, name);
            assert_eq!(w.checkers, vec!["txn", "stats"]);
            assert_eq!(w.txn, Some(TxnSpec::default()));
            let ops = crate::generator::simulate(&mut *w.main_generator(3), 4, 1, 50);
            assert_eq!(ops.len(), 50);
            assert!(ops.iter().all(|o| o.f == "txn" && o.key.is_none()));
            assert!(ops
                .iter()
                .flat_map(|o| o.value.as_array().unwrap().clone())
                .any(|m| m[0] == write));
        }
    }

    #[test]
    fn bad_txn_tables_are_refused() {
        use crate::workload::Workload;
        let p = std::path::Path::new("w.toml");
        let e = Workload::parse(
            "model = \"register\"\n[ops]\nread = 1\n[txn]\nmax_ops = 3\n",
            p,
        )
        .unwrap_err();
        assert!(e.message.contains("[txn] applies"), "{e}");
        let e = Workload::parse(
            "model = \"list-append\"\n[ops]\ntxn = 1\n[txn]\nmin_ops = 4\nmax_ops = 2\n",
            p,
        )
        .unwrap_err();
        assert_eq!(e.line, Some(6), "{e}");
        let e = Workload::parse(
            "model = \"list-append\"\n[ops]\ntxn = 1\n[keys]\ndistribution = \"uniform\"\ncount = 3\n",
            p,
        )
        .unwrap_err();
        assert!(e.message.contains("draws its own keys"), "{e}");
        let e = Workload::parse(
            "model = \"list-append\"\n[ops]\ntxn = 1\n[txn]\nread_fraction = 1.5\n",
            p,
        )
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("txn.read_fraction"), "{e}");
    }

    #[test]
    fn rw_register_writes_w() {
        let mut g = TxnGen::new(TxnSpec::default(), false, crate::generator::rng(1, 1));
        let all: Vec<Value> = (0..200).map(|_| g.draw()).collect();
        assert!(all
            .iter()
            .flat_map(|t| t.as_array().unwrap().clone())
            .any(|m| m[0] == "w"));
        assert!(!all
            .iter()
            .flat_map(|t| t.as_array().unwrap().clone())
            .any(|m| m[0] == "append"));
    }
}
