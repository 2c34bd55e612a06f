//! Per-key verdicts given earlier, for a later check to take instead of
//! judging a key again: the online checker (`runner/online.rs`) leaves, for
//! each key it judged, the verdict and a [`Fingerprint`] of exactly the
//! events it judged; the final check of the whole history (the per-key loop
//! of [`crate::check::linear`]) takes a key's earlier *valid* verdict only
//! when the key's events in the whole history have the same fingerprint,
//! and judges every other key itself.
//!
//! Why that is sound: a per-key checker's verdict on a key is a function of
//! that key's events in their order (the calls they pair into, their
//! values and outcomes). The events of a key in a prefix of the history and
//! in the whole history are both in the order recorded, so the same set of
//! events is the same sequence, the same calls, the same verdict. An
//! operation in flight at the online cut (judged as crashed there) that
//! completed later adds its completion to the key's events: the
//! fingerprints differ and the key is judged again. An earlier *invalid*
//! verdict is final whatever came after (the argument in
//! `runner/online.rs`), but the final report needs the whole key's
//! counterexample and smallest failing sub-history, so such a key is judged
//! again, first ([`KnownKeys::proven_invalid`]), so that a check that stops
//! at the first invalid key stops early.

use super::Validity;
use crate::history::Op;
use serde_json::Value;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fingerprint of a set of events: how many, and the wrapping sum of a
/// 64-bit hash of each (its index, time, process, type, function, value,
/// key and error). The sum does not depend on the order the events are
/// added in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fingerprint {
    events: u64,
    sum: u64,
}

impl Fingerprint {
    /// Adds one event.
    pub fn add(&mut self, op: &Op) {
        // A fast hash (the final check hashes every event of the history):
        // the count is the main guard — a key's events judged online are
        // the start of its events in the whole history, so the same count
        // is the same set — and the hash catches anything else.
        let mut h = rustc_hash::FxHasher::default();
        op.index.hash(&mut h);
        op.time.hash(&mut h);
        op.process.hash(&mut h);
        op.kind.hash(&mut h);
        op.f.hash(&mut h);
        hash_value(&op.value, &mut h);
        hash_option(op.key.as_ref(), &mut h);
        hash_option(op.error.as_ref(), &mut h);
        self.events += 1;
        self.sum = self.sum.wrapping_add(h.finish());
    }

    /// How many events were added.
    pub fn events(&self) -> u64 {
        self.events
    }
}

fn hash_option(v: Option<&Value>, h: &mut impl Hasher) {
    match v {
        None => 0u8.hash(h),
        Some(v) => {
            1u8.hash(h);
            hash_value(v, h);
        }
    }
}

/// A structural hash of a JSON value (serde_json's `Value` has none).
fn hash_value(v: &Value, h: &mut impl Hasher) {
    match v {
        Value::Null => 0u8.hash(h),
        Value::Bool(b) => {
            1u8.hash(h);
            b.hash(h);
        }
        Value::Number(n) => {
            2u8.hash(h);
            if let Some(u) = n.as_u64() {
                u.hash(h);
            } else if let Some(i) = n.as_i64() {
                1u8.hash(h);
                i.hash(h);
            } else {
                2u8.hash(h);
                n.as_f64().map(f64::to_bits).hash(h);
            }
        }
        Value::String(s) => {
            3u8.hash(h);
            s.hash(h);
        }
        Value::Array(a) => {
            4u8.hash(h);
            a.len().hash(h);
            for x in a {
                hash_value(x, h);
            }
        }
        Value::Object(o) => {
            5u8.hash(h);
            o.len().hash(h);
            for (k, x) in o {
                k.hash(h);
                hash_value(x, h);
            }
        }
    }
}

/// The text that names a key: its JSON, the empty text for none (as the
/// linearizability checker splits a history by key).
pub fn key_name(key: Option<&Value>) -> String {
    key.map(Value::to_string).unwrap_or_default()
}

/// One checker's earlier verdicts, per key, each with the fingerprint of
/// the events it was given on; and, once a check has consulted them, how
/// many keys it took and how many it judged again.
#[derive(Debug, Default)]
pub struct KnownKeys {
    keys: HashMap<String, (Fingerprint, Validity)>,
    taken: AtomicUsize,
    judged: AtomicUsize,
}

impl KnownKeys {
    /// Notes the verdict on the key named `key` (see [`key_name`]), given
    /// on the events whose fingerprint is `print`; replaces an earlier one.
    pub fn insert(&mut self, key: String, print: Fingerprint, validity: Validity) {
        self.keys.insert(key, (print, validity));
    }

    /// Forgets the key's verdict (its later events were not judged).
    pub fn remove(&mut self, key: &str) {
        self.keys.remove(key);
    }

    /// Keys with a verdict.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when no key has a verdict.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// True when the key was judged valid on exactly the events whose
    /// fingerprint is `print`: its verdict can be taken as it is. Counts
    /// the key as taken, or else as judged again.
    pub fn take_valid(&self, key: &str, print: &Fingerprint) -> bool {
        let taken = self
            .keys
            .get(key)
            .is_some_and(|(p, v)| p == print && *v == Validity::Valid);
        let count = if taken { &self.taken } else { &self.judged };
        count.fetch_add(1, Ordering::Relaxed);
        taken
    }

    /// True when some prefix of the key's events was judged invalid, which
    /// proves every longer history of the key invalid.
    pub fn proven_invalid(&self, key: &str) -> bool {
        self.keys
            .get(key)
            .is_some_and(|(_, v)| *v == Validity::Invalid)
    }

    /// Keys whose verdict a check took as it was.
    pub fn taken(&self) -> usize {
        self.taken.load(Ordering::Relaxed)
    }

    /// Keys a check consulted and judged again.
    pub fn judged_again(&self) -> usize {
        self.judged.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{OpType, Process};
    use serde_json::json;

    fn op(index: u64, kind: OpType, value: Value) -> Op {
        let mut o = Op::new(index, Process::Client(1), kind, "read", value);
        o.key = Some(json!(3));
        o
    }

    #[test]
    fn a_fingerprint_depends_on_the_set_of_events_not_their_order() {
        let (a, b) = (
            op(0, OpType::Invoke, Value::Null),
            op(1, OpType::Ok, json!(2)),
        );
        let (mut ab, mut ba) = (Fingerprint::default(), Fingerprint::default());
        ab.add(&a);
        ab.add(&b);
        ba.add(&b);
        ba.add(&a);
        assert_eq!(ab, ba);
        assert_eq!(ab.events(), 2);
        // Another outcome, value or index: another fingerprint.
        for other in [
            op(1, OpType::Info, json!(2)),
            op(1, OpType::Ok, json!(3)),
            op(2, OpType::Ok, json!(2)),
        ] {
            let mut f = Fingerprint::default();
            f.add(&a);
            f.add(&other);
            assert_ne!(f, ab, "{other:?}");
        }
    }

    #[test]
    fn only_a_valid_verdict_on_the_same_events_is_taken() {
        let mut print = Fingerprint::default();
        print.add(&op(0, OpType::Invoke, Value::Null));
        let mut more = print;
        more.add(&op(1, OpType::Ok, json!(2)));
        let mut known = KnownKeys::default();
        known.insert("3".into(), print, Validity::Valid);
        known.insert("4".into(), print, Validity::Unknown);
        known.insert("5".into(), print, Validity::Invalid);
        assert!(known.take_valid("3", &print));
        assert!(!known.take_valid("3", &more), "an event more: judged again");
        assert!(!known.take_valid("4", &print), "unknown is no verdict");
        assert!(!known.take_valid("5", &print));
        assert!(!known.take_valid("6", &print), "never judged");
        assert!(known.proven_invalid("5") && !known.proven_invalid("3"));
        assert_eq!((known.taken(), known.judged_again()), (1, 4));
    }
}
