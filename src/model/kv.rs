//! A key-value store of strings with get, put and append: the multi-register
//! of the Porcupine kv histories.

use super::{unknown_f, Model, Next, Values};
use crate::history::{Call, Outcome};
use rustc_hash::FxHasher;
use serde_json::Value;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// An operation on one key. Keys are ids from [`Values`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvOp {
    /// A get that returned this string ("" for an absent key).
    Get(u32, Arc<str>),
    /// A put of this string.
    Put(u32, Arc<str>),
    /// An append of this string.
    Append(u32, Arc<str>),
}

/// The store: every key not listed holds "". Equality and hashing use a
/// hash kept up to date by each step, so the search never rehashes strings.
#[derive(Clone, Debug, Default)]
pub struct KvState {
    hash: u64,
    /// Keys with a non-empty value, sorted by key id.
    entries: Arc<Vec<(u32, Arc<str>)>>,
}

impl PartialEq for KvState {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && (Arc::ptr_eq(&self.entries, &other.entries) || self.entries == other.entries)
    }
}
impl Eq for KvState {}

impl Hash for KvState {
    fn hash<H: Hasher>(&self, h: &mut H) {
        h.write_u64(self.hash);
    }
}

fn entry_hash(key: u32, value: &str) -> u64 {
    if value.is_empty() {
        return 0;
    }
    let mut h = FxHasher::default();
    key.hash(&mut h);
    value.hash(&mut h);
    // Spread the bits: FxHasher's low bits are weak and the hashes are XORed.
    h.finish().wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29)
}

impl KvState {
    /// The value of a key ("" when absent).
    pub fn get(&self, key: u32) -> &str {
        match self.entries.binary_search_by_key(&key, |(k, _)| *k) {
            Ok(i) => &self.entries[i].1,
            Err(_) => "",
        }
    }

    fn with(&self, key: u32, value: Arc<str>) -> KvState {
        let old = self.get(key);
        let hash = self.hash ^ entry_hash(key, old) ^ entry_hash(key, &value);
        let mut entries = (*self.entries).clone();
        match entries.binary_search_by_key(&key, |(k, _)| *k) {
            Ok(i) if value.is_empty() => {
                entries.remove(i);
            }
            Ok(i) => entries[i].1 = value,
            Err(_) if value.is_empty() => {}
            Err(i) => entries.insert(i, (key, value)),
        }
        KvState { hash, entries: Arc::new(entries) }
    }
}

/// Keys to strings, each starting as "" (absent). Functions: `get` (alias
/// `read`; value = what was read, nil reads as ""), `put` (alias `write`),
/// `append`. The key is the op's `key` field.
#[derive(Clone, Copy, Debug, Default)]
pub struct Kv;

fn text(v: &Value) -> Arc<str> {
    match v {
        Value::Null => Arc::from(""),
        Value::String(s) => Arc::from(s.as_str()),
        other => Arc::from(other.to_string()),
    }
}

impl Model for Kv {
    type Op = KvOp;
    type State = KvState;

    fn name(&self) -> &str {
        "kv"
    }

    fn init(&self) -> KvState {
        KvState::default()
    }

    fn decode(&self, call: &Call, values: &mut Values) -> Result<Option<KvOp>, String> {
        let key = match &call.key {
            Some(k) => values.intern(k),
            None => return Err(format!("model kv needs a key on every operation; `{}` has none", call.f)),
        };
        Ok(match (call.f.as_str(), call.outcome) {
            ("get" | "read", Outcome::Ok) => Some(KvOp::Get(key, text(&call.output))),
            ("get" | "read", _) => None,
            ("put" | "write" | "append", Outcome::Fail) => None,
            ("put" | "write", _) => Some(KvOp::Put(key, text(&call.input))),
            ("append", _) => Some(KvOp::Append(key, text(&call.input))),
            _ => return Err(unknown_f("kv", call, "get, put, append (read, write)")),
        })
    }

    fn step(&self, state: &KvState, op: &KvOp) -> Next<KvState> {
        match op {
            KvOp::Get(k, v) if state.get(*k) == &**v => Next::One(state.clone()),
            KvOp::Get(..) => Next::Illegal,
            KvOp::Put(k, v) => Next::One(state.with(*k, v.clone())),
            KvOp::Append(k, v) => {
                let old = state.get(*k);
                let mut s = String::with_capacity(old.len() + v.len());
                s.push_str(old);
                s.push_str(v);
                Next::One(state.with(*k, Arc::from(s)))
            }
        }
    }

    fn describe_op(&self, op: &KvOp, values: &Values) -> String {
        match op {
            KvOp::Get(k, v) => format!("get {} returned {v:?}", values.show(*k)),
            KvOp::Put(k, v) => format!("put {} {v:?}", values.show(*k)),
            KvOp::Append(k, v) => format!("append {} {v:?}", values.show(*k)),
        }
    }

    fn describe_state(&self, state: &KvState, values: &Values) -> String {
        let parts: Vec<String> =
            state.entries.iter().map(|(k, v)| format!("{}: {v:?}", values.show(*k))).collect();
        format!("{{{}}}", parts.join(", "))
    }

    fn keyed(&self) -> bool {
        true
    }

    fn read_only(&self, op: &KvOp) -> bool {
        matches!(op, KvOp::Get(..))
    }

    fn heap_bytes(&self, state: &KvState) -> usize {
        // Counted as if unshared: an over-estimate keeps the budget honest.
        state.entries.iter().map(|(_, v)| v.len() + 16).sum::<usize>() + 16
    }
}
