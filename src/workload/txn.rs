//! The transaction generator of the `list-append` and `rw-register`
//! workloads, after Elle's: each operation is `f = "txn"` with a list of
//! 1 to `max_ops` micro-operations over a pool of `active_keys` keys. A
//! read is `["r", k, null]`; a write is `["append", k, v]` (list-append)
//! or `["w", k, v]` (rw-register), with `v` unique per key (1, 2, 3, ...
//! on each key). A key that has had `max_writes_per_key` writes is retired
//! and replaced by a fresh one, so lists stay short and the checker's
//! version orders small.
//!
//! Also here: [`FinalReads`], the final phase that reads every key the main
//! phase used once more after the faults are healed. A retired key is never
//! read again by the main phase, so without it an acknowledged write lost
//! in a crash goes unseen whenever its key retired before a read came back
//! to it (during an outage the failing transactions use up the keys in
//! flight within a second or two).

use crate::generator::{Context, Emit, Generator, OpSpec};
use crate::history::{Op, OpType};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Keys a final-read transaction reads at least (more when `max_ops` is
/// larger): few enough that a transaction stays cheap for the database and
/// the checker, many enough that thousands of retired keys take a few
/// hundred transactions.
pub const FINAL_READ_KEYS: usize = 16;

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
    /// Whether the final phase reads every key the main phase used
    /// ([`FinalReads`]); off for exactly Elle's generator.
    pub final_reads: bool,
}

impl Default for TxnSpec {
    fn default() -> Self {
        TxnSpec {
            min_ops: 1,
            max_ops: 5,
            active_keys: 10,
            max_writes_per_key: 32,
            read_fraction: 0.5,
            final_reads: true,
        }
    }
}

impl TxnSpec {
    /// Keys per final-read transaction: [`FINAL_READ_KEYS`], or `max_ops`
    /// when that is larger (the user asked for transactions that long).
    pub fn final_read_keys(&self) -> usize {
        FINAL_READ_KEYS.max(self.max_ops)
    }
}

/// Infinite generator of transactions; bound it with a time limit.
pub struct TxnGen {
    spec: TxnSpec,
    /// `list-append` writes `append`, anything else `w`.
    append: bool,
    /// The active keys and how many writes each has had.
    keys: Vec<(u64, u64)>,
    /// The next fresh key; keys `0..next_key` are the ones handed out so
    /// far. Shared with the final phase ([`TxnGen::keys_used`]), which
    /// starts after this generator is done.
    next_key: Arc<AtomicU64>,
    rng: ChaCha8Rng,
}

impl TxnGen {
    /// Transactions of `spec`, `append`s when `append` (list-append), `w`s
    /// otherwise (rw-register), drawn from `rng`.
    pub fn new(spec: TxnSpec, append: bool, rng: ChaCha8Rng) -> TxnGen {
        let n = spec.active_keys.max(1) as u64;
        TxnGen {
            keys: (0..n).map(|k| (k, 0)).collect(),
            next_key: Arc::new(AtomicU64::new(n)),
            spec,
            append,
            rng,
        }
    }

    /// The count of keys handed out so far (keys `0..count`), kept up to
    /// date as keys are retired: what [`FinalReads`] reads.
    pub fn keys_used(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.next_key)
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
                // Only this generator writes the count; the final phase
                // reads it after every operation of this one completed.
                let fresh = self.next_key.fetch_add(1, Ordering::SeqCst);
                self.keys[slot] = (fresh, 0);
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

/// The final phase of the transactional workloads: read-only transactions
/// `[["r", k, null], ...]` of up to `per_txn` keys that together read every
/// key `0..count` once, in order, where `count` is the main phase's
/// [`TxnGen::keys_used`] taken when this phase is first asked for an
/// operation (the main phase is over by then).
///
/// Each transaction goes to whichever worker is free (no fixed split), so
/// the keys are spread over the workers (and so over the nodes their
/// clients talk to) as they free up, each key is read once, and a worker
/// stuck on a slow or timed-out read holds up no other key.
///
/// A read that did not end `ok` (the db still recovering from the last
/// fault: a node restarting, a state transfer) is tried again,
/// [`FINAL_READ_RETRY_NS`] later, up to [`FINAL_READ_ATTEMPTS`] times in
/// all: a key left unread is a key whose lost writes nobody sees.
pub struct FinalReads {
    keys_used: Arc<AtomicU64>,
    per_txn: u64,
    /// The next key to read and the end of the range, once known.
    range: Option<(u64, u64)>,
    /// Reads to try again: (when, the transaction).
    retries: std::collections::VecDeque<(u64, Value)>,
    /// Attempts so far of each transaction not yet `ok`, by its first key.
    attempts: std::collections::HashMap<u64, u32>,
    /// This phase's transactions in flight.
    in_flight: usize,
}

/// How many times in all a final read is tried before its keys are left
/// unread.
pub const FINAL_READ_ATTEMPTS: u32 = 15;
/// How long after a final read that did not end `ok` it is tried again.
pub const FINAL_READ_RETRY_NS: u64 = 2_000_000_000;

impl FinalReads {
    /// Reads of keys `0..keys_used` (as it stands when the phase starts),
    /// `per_txn` keys (at least 1) per transaction.
    pub fn new(keys_used: Arc<AtomicU64>, per_txn: usize) -> FinalReads {
        FinalReads {
            keys_used,
            per_txn: per_txn.max(1) as u64,
            range: None,
            retries: Default::default(),
            attempts: Default::default(),
            in_flight: 0,
        }
    }

    /// The first key a transaction of this phase reads.
    fn first_key(txn: &Value) -> Option<u64> {
        txn.as_array()?.first()?.as_array()?.get(1)?.as_u64()
    }
}

impl Generator for FinalReads {
    fn next(&mut self, ctx: &Context) -> Emit {
        if let Some((due, _)) = self.retries.front() {
            if *due <= ctx.time {
                if let Some((_, txn)) = self.retries.pop_front() {
                    self.in_flight += 1;
                    return Emit::Invoke(OpSpec::new("txn", txn));
                }
            }
        }
        let keys_used = &self.keys_used;
        let (next, end) = self
            .range
            .get_or_insert_with(|| (0, keys_used.load(Ordering::SeqCst)));
        if *next >= *end {
            return match self.retries.front() {
                Some((due, _)) => Emit::Pending(Some(*due)),
                None if self.in_flight > 0 => Emit::Pending(None),
                None => Emit::Done,
            };
        }
        let last = (*next + self.per_txn).min(*end);
        let mops: Vec<Value> = (*next..last).map(|k| json!(["r", k, null])).collect();
        *next = last;
        self.in_flight += 1;
        Emit::Invoke(OpSpec::new("txn", Value::Array(mops)))
    }

    fn update(&mut self, ctx: &Context, event: &Op) {
        if event.kind == OpType::Invoke || event.f != "txn" {
            return;
        }
        self.in_flight = self.in_flight.saturating_sub(1);
        let Some(first) = Self::first_key(&event.value) else {
            return;
        };
        if event.kind == OpType::Ok {
            self.attempts.remove(&first);
            return;
        }
        let tried = self.attempts.entry(first).or_insert(1);
        if *tried >= FINAL_READ_ATTEMPTS {
            return;
        }
        *tried += 1;
        // The same reads again, their answers blank.
        let mops: Vec<Value> = event
            .value
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| Some(json!(["r", m.as_array()?.get(1)?.clone(), null])))
            .collect();
        self.retries.push_back((
            ctx.time.saturating_add(FINAL_READ_RETRY_NS),
            Value::Array(mops),
        ));
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
        let e = Workload::parse(
            "model = \"list-append\"\n[ops]\ntxn = 1\n[txn]\nfinal_reads = 1\n",
            p,
        )
        .unwrap_err();
        assert_eq!(e.line, Some(5), "{e}");
        assert!(e.message.contains("bool"), "{e}");
    }

    /// Runs `toml`'s whole generator (main phase bounded to `main_ops`
    /// transactions, then the final phase) on 4 simulated workers and
    /// returns the main phase's transactions and the final phase's.
    fn main_then_final(toml: &str, main_ops: u64) -> (Vec<Value>, Vec<Value>) {
        use crate::generator::{limit, phases, simulate};
        use crate::workload::Workload;
        let w =
            Workload::parse(toml, std::path::Path::new("w.toml")).unwrap_or_else(|e| panic!("{e}"));
        let (main, fin) = w.main_and_final(5);
        let mut gens: Vec<Box<dyn Generator>> = vec![Box::new(limit(main_ops, main))];
        gens.extend(fin);
        let ops = simulate(&mut phases(gens), 4, 1, 1_000_000);
        let values: Vec<Value> = ops.into_iter().map(|o| o.value).collect();
        let (main, fin) = values.split_at(main_ops as usize);
        (main.to_vec(), fin.to_vec())
    }

    fn keys_of(txns: &[Value]) -> Vec<u64> {
        txns.iter()
            .flat_map(|t| t.as_array().unwrap().clone())
            .map(|m| m[1].as_u64().unwrap())
            .collect()
    }

    #[test]
    fn final_reads_read_every_key_used_once_in_bounded_read_only_txns() {
        for (max_ops, per_txn) in [(5, FINAL_READ_KEYS), (20, 20)] {
            let toml = format!(
                "model = \"list-append\"\n[ops]\ntxn = 1\n[txn]\n\
                 max_ops = {max_ops}\nmax_writes_per_key = 3\nactive_keys = 4\n"
            );
            let (main, fin) = main_then_final(&toml, 500);
            let used: HashSet<u64> = keys_of(&main).into_iter().collect();
            // Keys were retired many times over, so there are many batches.
            let top = *used.iter().max().unwrap();
            assert!(top > 100, "only {top} keys");
            let read = keys_of(&fin);
            let once: HashSet<u64> = read.iter().copied().collect();
            assert_eq!(once.len(), read.len(), "a key read twice");
            assert!(
                used.is_subset(&once),
                "a key the main phase used is not read"
            );
            // Nothing beyond the keys handed out (at most the active keys
            // that replaced the last retired ones were never touched).
            assert!(read.iter().all(|k| *k < top + 1 + 4));
            for t in &fin {
                let mops = t.as_array().unwrap();
                assert!((1..=per_txn).contains(&mops.len()), "{t}");
                assert!(mops.iter().all(|m| m[0] == "r" && m[2].is_null()), "{t}");
            }
            assert_eq!(fin.len(), read.len().div_ceil(per_txn));
        }
    }

    #[test]
    fn final_reads_off_reads_nothing() {
        let toml = "model = \"rw-register\"\n[ops]\ntxn = 1\n[txn]\nmax_writes_per_key = 3\nfinal_reads = false\n";
        let (main, fin) = main_then_final(toml, 300);
        assert_eq!(main.len(), 300);
        assert!(fin.is_empty(), "{fin:?}");
        let w = crate::workload::Workload::parse(toml, std::path::Path::new("w.toml")).unwrap();
        assert!(w.main_and_final(1).1.is_none());
        // On, the same workload reads its keys with `r`s.
        let (_, fin) = main_then_final(&toml.replace("false", "true"), 300);
        assert!(!fin.is_empty());
    }

    /// A lost append in the history the PostgreSQL `synchronous_commit=off`
    /// runs produce: key 0's append of 2 is acknowledged, a crash loses
    /// it, the append of 3 fails during the outage, 4 succeeds after the
    /// restart, and with `max_writes_per_key = 4` the key is retired: the
    /// main phase never reads it again. Only the final read sees the loss.
    fn lost_append_history(final_read: bool) -> crate::history::History {
        use crate::history::{History, Op, OpType, Process};
        let mut events = vec![
            (0, OpType::Invoke, json!([["append", 0, 1]])),
            (0, OpType::Ok, json!([["append", 0, 1]])),
            (1, OpType::Invoke, json!([["r", 0, null]])),
            (1, OpType::Ok, json!([["r", 0, [1]]])),
            (0, OpType::Invoke, json!([["append", 0, 2]])),
            (0, OpType::Ok, json!([["append", 0, 2]])),
            (1, OpType::Invoke, json!([["append", 0, 3]])),
            (1, OpType::Fail, json!([["append", 0, 3]])),
            (2, OpType::Invoke, json!([["append", 0, 4]])),
            (2, OpType::Ok, json!([["append", 0, 4]])),
        ];
        if final_read {
            // What FinalReads asks of key 0 (and what the db answers).
            let mut fin = FinalReads::new(Arc::new(AtomicU64::new(1)), FINAL_READ_KEYS);
            let ctx = Context::new(2, false);
            let Emit::Invoke(spec) = fin.next(&ctx) else {
                panic!("no final read")
            };
            assert_eq!(spec.value, json!([["r", 0, null]]));
            events.push((1, OpType::Invoke, spec.value));
            events.push((1, OpType::Ok, json!([["r", 0, [1, 4]]])));
        }
        let ops = events
            .into_iter()
            .map(|(p, kind, v)| Op::new(0, Process::Client(p), kind, "txn", v))
            .collect();
        History::new(ops)
    }

    #[test]
    fn a_lost_append_is_caught_by_the_final_read_only() {
        use crate::check::txn::{check, TxnKind, TxnOptions};
        use crate::check::Validity;
        let opts = TxnOptions::new(TxnKind::ListAppend);
        let without = check(&lost_append_history(false), &opts).unwrap();
        assert_eq!(without.validity, Validity::Valid, "{:?}", without.anomalies);
        assert!(without.anomaly_types.is_empty());
        let with = check(&lost_append_history(true), &opts).unwrap();
        assert_eq!(with.validity, Validity::Invalid);
        // The acknowledged append of 2 (T1) is missing from the final read
        // (T3) although the append of 4 (T2), invoked after T1 completed,
        // is there: T1 must come after T2 in key 0's order (G0-realtime)
        // and after the final read (G-single-realtime).
        assert_eq!(with.anomaly_types, vec!["G-single-realtime", "G0-realtime"]);
        let g0 = &with.anomalies["G0-realtime"][0];
        assert_eq!(
            g0.explanation,
            "T1 < T2 because T1 completed (event 5) before T2 was invoked (event 8); \
             T2 < T1 because T1 appended 2 to key 0 after T2 appended 4: a contradiction"
        );
        assert_eq!(g0.txns[0].ops, "[append 0 2]");
        let single = &with.anomalies["G-single-realtime"][0];
        assert!(
            single
                .explanation
                .contains("T3 < T1 because T3 read key 0 (up to 4) before T1 appended 2 to it"),
            "{}",
            single.explanation
        );
        assert_eq!(single.txns[2].invoke_index, 10, "T3 is the final read");
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

    /// A final read that failed (the db still recovering) is tried again
    /// after a pause, until it is `ok` or has been tried
    /// FINAL_READ_ATTEMPTS times; the phase ends only then.
    #[test]
    fn a_failed_final_read_is_tried_again_until_ok_or_out_of_attempts() {
        use crate::history::{Op, OpType, Process};
        let keys = Arc::new(AtomicU64::new(40));
        let mut g = FinalReads::new(keys, 16);
        let mut ctx = Context::new(3, false);
        let mut issued = Vec::new();
        for _ in 0..3 {
            let Emit::Invoke(op) = g.next(&ctx) else {
                panic!("expected a read");
            };
            issued.push(op.value);
        }
        let done = |value: &Value, kind| {
            let mut op = Op::new(0, Process::Client(0), kind, "txn", value.clone());
            if kind == OpType::Ok {
                op.value = json!([["r", FinalReads::first_key(value).unwrap(), []]]);
            }
            op
        };
        // The first and third are ok; the second (keys 16..32) fails.
        g.update(&ctx, &done(&issued[0], OpType::Ok));
        g.update(&ctx, &done(&issued[2], OpType::Ok));
        g.update(&ctx, &done(&issued[1], OpType::Fail));
        assert_eq!(g.next(&ctx), Emit::Pending(Some(FINAL_READ_RETRY_NS)));
        // It fails again and again: tried FINAL_READ_ATTEMPTS times in all.
        let mut tries = 1;
        loop {
            ctx.time += FINAL_READ_RETRY_NS;
            match g.next(&ctx) {
                Emit::Invoke(op) => {
                    assert_eq!(op.value, issued[1], "the same keys, answers blank");
                    tries += 1;
                    g.update(&ctx, &done(&op.value, OpType::Fail));
                }
                Emit::Done => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(tries, FINAL_READ_ATTEMPTS);
        // And one that is ok on its second try ends the phase at once.
        let mut g = FinalReads::new(Arc::new(AtomicU64::new(5)), 16);
        let Emit::Invoke(op) = g.next(&ctx) else {
            panic!("expected a read");
        };
        assert_eq!(g.next(&ctx), Emit::Pending(None), "in flight: not done");
        g.update(&ctx, &done(&op.value, OpType::Info));
        ctx.time += FINAL_READ_RETRY_NS;
        let Emit::Invoke(again) = g.next(&ctx) else {
            panic!("expected the read again");
        };
        g.update(&ctx, &done(&again.value, OpType::Ok));
        assert_eq!(g.next(&ctx), Emit::Done);
    }
}
