//! A key-value store of strings with get, put and append: the multi-register
//! of the Porcupine kv histories.
//!
//! Values are persistent append-only ropes ([`Text`]) carrying a rolling
//! hash, so an append costs O(1) instead of copying the string, and states
//! hash and compare in O(1) unless their contents really are equal.

use super::{unknown_f, Model, Next, Values};
use crate::history::{Call, Outcome};
use serde_json::Value;
use smallvec::SmallVec;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// Base of the rolling hash (odd, so powers never vanish modulo 2^64).
const BASE: u64 = 0x100_0000_01B3;

/// A string as a chain of appended pieces, newest last, with its length
/// and its rolling hash `sum s[i] * BASE^(len-1-i)` (mod 2^64).
#[derive(Clone, Debug, Default)]
pub struct Text {
    len: usize,
    hash: u64,
    last: Option<Arc<Piece>>,
}

#[derive(Debug)]
struct Piece {
    prev: Option<Arc<Piece>>,
    text: Arc<str>,
}

/// A string of an operation, with what appending it needs precomputed.
#[derive(Clone, Debug)]
pub struct Chunk {
    text: Arc<str>,
    hash: u64,
    /// BASE^len.
    pow: u64,
}

impl PartialEq for Chunk {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Chunk {
    fn new(s: &str) -> Chunk {
        let (mut hash, mut pow) = (0u64, 1u64);
        for b in s.bytes() {
            hash = hash.wrapping_mul(BASE).wrapping_add(b as u64 + 1);
            pow = pow.wrapping_mul(BASE);
        }
        Chunk {
            text: Arc::from(s),
            hash,
            pow,
        }
    }
}

impl Text {
    fn of(c: &Chunk) -> Text {
        if c.text.is_empty() {
            return Text::default();
        }
        Text {
            len: c.text.len(),
            hash: c.hash,
            last: Some(Arc::new(Piece {
                prev: None,
                text: c.text.clone(),
            })),
        }
    }

    fn append(&self, c: &Chunk) -> Text {
        if c.text.is_empty() {
            return self.clone();
        }
        Text {
            len: self.len + c.text.len(),
            hash: self.hash.wrapping_mul(c.pow).wrapping_add(c.hash),
            last: Some(Arc::new(Piece {
                prev: self.last.clone(),
                text: c.text.clone(),
            })),
        }
    }

    /// True if this text is exactly `s`: compares piece by piece from the
    /// end (the newest piece, where orders differ), without building the
    /// string.
    fn equals_bytes(&self, s: &[u8]) -> bool {
        if self.len != s.len() {
            return false;
        }
        let mut end = s.len();
        let mut piece = self.last.as_deref();
        while let Some(p) = piece {
            let start = end - p.text.len();
            if s[start..end] != *p.text.as_bytes() {
                return false;
            }
            end = start;
            piece = p.prev.as_deref();
        }
        end == 0
    }

    /// The whole string.
    pub fn to_string_lossless(&self) -> String {
        let mut parts = Vec::new();
        let mut piece = self.last.as_deref();
        while let Some(p) = piece {
            parts.push(p.text.clone());
            piece = p.prev.as_deref();
        }
        let mut s = String::with_capacity(self.len);
        for p in parts.iter().rev() {
            s.push_str(p);
        }
        s
    }
}

impl PartialEq for Text {
    fn eq(&self, other: &Self) -> bool {
        if self.len != other.len || self.hash != other.hash {
            return false;
        }
        same_content(self.last.as_deref(), other.last.as_deref())
    }
}

/// Compares two chains of pieces of equal total length from the end,
/// piece boundaries allowed to differ, stopping early at a shared piece.
fn same_content(mut a: Option<&Piece>, mut b: Option<&Piece>) -> bool {
    let (mut ra, mut rb) = (a.map_or(0, |p| p.text.len()), b.map_or(0, |p| p.text.len()));
    loop {
        match (a, b) {
            (None, None) => return true,
            (Some(pa), Some(pb)) => {
                let (la, lb) = (pa.text.len(), pb.text.len());
                if ra == la && rb == lb {
                    // At the end of both pieces: a shared piece means a shared past.
                    if std::ptr::eq(pa, pb) {
                        return true;
                    }
                    if Arc::ptr_eq(&pa.text, &pb.text) {
                        a = pa.prev.as_deref();
                        b = pb.prev.as_deref();
                        ra = a.map_or(0, |p| p.text.len());
                        rb = b.map_or(0, |p| p.text.len());
                        continue;
                    }
                }
                let n = ra.min(rb);
                if pa.text.as_bytes()[ra - n..ra] != pb.text.as_bytes()[rb - n..rb] {
                    return false;
                }
                ra -= n;
                rb -= n;
                if ra == 0 {
                    a = pa.prev.as_deref();
                    ra = a.map_or(0, |p| p.text.len());
                }
                if rb == 0 {
                    b = pb.prev.as_deref();
                    rb = b.map_or(0, |p| p.text.len());
                }
            }
            // Equal lengths make this impossible; answer safely anyway.
            _ => return false,
        }
    }
}

impl Eq for Text {}

/// An operation on one key. Keys are ids from [`Values`].
#[derive(Clone, Debug, PartialEq)]
pub enum KvOp {
    /// A get that returned this string ("" for an absent key).
    Get(u32, Chunk),
    /// A put of this string.
    Put(u32, Chunk),
    /// An append of this string.
    Append(u32, Chunk),
}

/// The store: every key not listed holds "". Its hash is kept up to date by
/// each step, so the search never rehashes strings. Up to two keys live
/// inline (a history split by key has one), so a step allocates no array.
#[derive(Clone, Debug, Default)]
pub struct KvState {
    hash: u64,
    /// Keys with a non-empty value, sorted by key id.
    entries: SmallVec<[(u32, Text); 2]>,
}

impl PartialEq for KvState {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && self.entries == other.entries
    }
}
impl Eq for KvState {}

impl Hash for KvState {
    fn hash<H: Hasher>(&self, h: &mut H) {
        h.write_u64(self.hash);
    }
}

fn entry_hash(key: u32, t: &Text) -> u64 {
    if t.len == 0 {
        return 0;
    }
    let x = (t.hash ^ (key as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)).wrapping_add(t.len as u64);
    // A finalizer, since entry hashes are combined by XOR.
    let x = (x ^ (x >> 33)).wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    x ^ (x >> 33)
}

impl KvState {
    fn find(&self, key: u32) -> Option<&Text> {
        self.entries
            .binary_search_by_key(&key, |(k, _)| *k)
            .ok()
            .map(|i| &self.entries[i].1)
    }

    /// The value of a key ("" when absent).
    pub fn get(&self, key: u32) -> String {
        self.find(key)
            .map(Text::to_string_lossless)
            .unwrap_or_default()
    }

    fn with(&self, key: u32, value: Text) -> KvState {
        let empty = Text::default();
        let old = self.find(key).unwrap_or(&empty);
        let hash = self.hash ^ entry_hash(key, old) ^ entry_hash(key, &value);
        let mut entries: SmallVec<[(u32, Text); 2]> =
            SmallVec::with_capacity(self.entries.len() + 1);
        let mut placed = false;
        for (k, v) in self.entries.iter() {
            if *k == key {
                placed = true;
                if value.len > 0 {
                    entries.push((key, value.clone()));
                }
                continue;
            }
            if *k > key && !placed {
                placed = true;
                if value.len > 0 {
                    entries.push((key, value.clone()));
                }
            }
            entries.push((*k, v.clone()));
        }
        if !placed && value.len > 0 {
            entries.push((key, value));
        }
        KvState { hash, entries }
    }
}

/// Keys to strings, each starting as "" (absent). Functions: `get` (alias
/// `read`; value = what was read, nil reads as ""), `put` (alias `write`),
/// `append`. The key is the op's `key` field.
#[derive(Clone, Copy, Debug, Default)]
pub struct Kv;

fn chunk(v: &Value) -> Chunk {
    match v {
        Value::Null => Chunk::new(""),
        Value::String(s) => Chunk::new(s),
        other => Chunk::new(&other.to_string()),
    }
}

fn read_key(op: &KvOp) -> u32 {
    match op {
        KvOp::Get(k, _) | KvOp::Put(k, _) | KvOp::Append(k, _) => *k,
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
            None => {
                return Err(format!(
                    "model kv needs a key on every operation; `{}` has none",
                    call.f
                ))
            }
        };
        Ok(match (call.f.as_str(), call.outcome) {
            ("get" | "read", Outcome::Ok) => Some(KvOp::Get(key, chunk(&call.output))),
            ("get" | "read", _) => None,
            ("put" | "write" | "append", Outcome::Fail) => None,
            ("put" | "write", _) => Some(KvOp::Put(key, chunk(&call.input))),
            ("append", _) => Some(KvOp::Append(key, chunk(&call.input))),
            _ => return Err(unknown_f("kv", call, "get, put, append (read, write)")),
        })
    }

    fn step(&self, state: &KvState, op: &KvOp) -> Next<KvState> {
        match op {
            KvOp::Get(k, v) => {
                let matches = match state.find(*k) {
                    None => v.text.is_empty(),
                    Some(t) => {
                        t.len == v.text.len()
                            && t.hash == v.hash
                            && t.equals_bytes(v.text.as_bytes())
                    }
                };
                if matches {
                    Next::One(state.clone())
                } else {
                    Next::Illegal
                }
            }
            KvOp::Put(k, v) => Next::One(state.with(*k, Text::of(v))),
            KvOp::Append(k, v) => {
                let old = state.find(*k).cloned().unwrap_or_default();
                Next::One(state.with(*k, old.append(v)))
            }
        }
    }

    fn describe_op(&self, op: &KvOp, values: &Values) -> String {
        match op {
            KvOp::Get(k, v) => format!("get {} returned {:?}", values.show(*k), &*v.text),
            KvOp::Put(k, v) => format!("put {} {:?}", values.show(*k), &*v.text),
            KvOp::Append(k, v) => format!("append {} {:?}", values.show(*k), &*v.text),
        }
    }

    fn describe_state(&self, state: &KvState, values: &Values) -> String {
        let parts: Vec<String> = state
            .entries
            .iter()
            .map(|(k, v)| format!("{}: {:?}", values.show(*k), v.to_string_lossless()))
            .collect();
        format!("{{{}}}", parts.join(", "))
    }

    fn keyed(&self) -> bool {
        true
    }

    fn read_only(&self, op: &KvOp) -> bool {
        matches!(op, KvOp::Get(..))
    }

    fn grows(&self, op: &KvOp) -> bool {
        matches!(op, KvOp::Append(..))
    }

    fn may_grow_into(&self, state: &KvState, read: &KvOp) -> bool {
        match (read, state.find(read_key(read))) {
            (_, None) => true,
            (KvOp::Get(_, v), Some(t)) => {
                t.len <= v.text.len() && t.equals_bytes(&v.text.as_bytes()[..t.len])
            }
            _ => true,
        }
    }

    /// A put may have produced a get of its key that returned its string,
    /// or its string followed by appends; an append, a get whose string
    /// contains what it appended. Those are the ops a minimal failing
    /// sub-history keeps with a stale get.
    fn may_produce(&self, op: &KvOp, read: &KvOp) -> bool {
        let KvOp::Get(key, read) = read else {
            return false;
        };
        match op {
            KvOp::Put(k, v) => k == key && read.text.starts_with(&*v.text),
            KvOp::Append(k, v) => k == key && !v.text.is_empty() && read.text.contains(&*v.text),
            KvOp::Get(..) => false,
        }
    }

    fn heap_bytes(&self, state: &KvState) -> usize {
        // A remembered state owns its entry array beyond the inline two and
        // at most one new piece (the rest is shared with the state it came from).
        let spilled = if state.entries.spilled() {
            state.entries.len() * std::mem::size_of::<(u32, Text)>()
        } else {
            0
        };
        spilled + 64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rope_equality_follows_content_not_shape() {
        let (a, b, ab) = (Chunk::new("a"), Chunk::new("b"), Chunk::new("ab"));
        let t1 = Text::default().append(&a).append(&b);
        let t2 = Text::of(&ab);
        assert_eq!(t1, t2);
        assert_eq!(t1.to_string_lossless(), "ab");
        assert!(t1.equals_bytes(b"ab"));
        assert!(!t1.equals_bytes(b"ba"));
        assert_ne!(t1, Text::of(&Chunk::new("ba")));
        let (c, bc) = (Chunk::new("c"), Chunk::new("bc"));
        let t3 = Text::default().append(&a).append(&b).append(&c);
        let t4 = Text::of(&a).append(&bc);
        assert_eq!(t3, t4);
        assert_ne!(t3, Text::of(&Chunk::new("abd")));
        assert!(!same_content(
            t3.last.as_deref(),
            Text::of(&Chunk::new("xbc")).last.as_deref()
        ));
    }

    /// A history on key "x" from `(process, type, f, value)` events.
    fn on_x(events: &[(u64, &str, &str, Value)]) -> crate::history::History {
        use crate::history::{Op, OpType, Process};
        crate::history::History::new(
            events
                .iter()
                .map(|(p, t, f, v)| {
                    let kind = OpType::parse(t).expect("type");
                    let mut op = Op::new(0, Process::Client(*p), kind, *f, v.clone());
                    op.key = Some(Value::from("x"));
                    op
                })
                .collect(),
        )
    }

    /// The verdict, the counterexample's explanation and the minimal
    /// failing sub-history's ops as `(invoke index, description)`.
    fn check_and_shrink(
        h: &crate::history::History,
    ) -> (crate::check::Validity, String, Vec<(usize, String)>) {
        use crate::check::linear::{check, LinearOptions};
        let r = check(&Kv, h, &LinearOptions::default()).expect("checkable");
        let key = &r.keys[0];
        let explanation = key
            .counterexample
            .as_ref()
            .map(|c| c.explanation.clone())
            .unwrap_or_default();
        let m = key.shrunk.as_ref().expect("shrunk");
        assert!(m.minimal, "not proven minimal: {m:?}");
        let ops = m
            .ops
            .iter()
            .map(|o| (o.invoke_index, o.description.clone()))
            .collect();
        (r.validity, explanation, ops)
    }

    #[test]
    fn a_stale_get_after_puts_keeps_the_put_it_read_and_the_put_it_missed() {
        // put 1, then put 2, then a get of 1: stale. Process 2's get of 2
        // is harmless. Without the puts that explain it, the get would
        // shrink to itself alone (a value never put fails by itself).
        let h = on_x(&[
            (0, "invoke", "put", json!("1")),
            (0, "ok", "put", json!("1")),
            (1, "invoke", "put", json!("2")),
            (1, "ok", "put", json!("2")),
            (2, "invoke", "get", json!(null)),
            (2, "ok", "get", json!("2")),
            (0, "invoke", "get", json!(null)),
            (0, "ok", "get", json!("1")),
        ]);
        let (validity, explanation, ops) = check_and_shrink(&h);
        assert_eq!(validity, crate::check::Validity::Invalid);
        assert_eq!(
            explanation,
            "on key \"x\": get \"x\" returned \"1\", but every order of the operations before it leaves {\"x\": \"2\"}"
        );
        assert_eq!(
            ops,
            vec![
                (0, "put \"x\" \"1\"".to_string()),
                (2, "put \"x\" \"2\"".to_string()),
                (6, "get \"x\" returned \"1\"".to_string()),
            ]
        );
    }

    #[test]
    fn a_stale_get_after_appends_keeps_the_append_it_read_and_the_one_it_missed() {
        // append a, then append b, then a get of "a": it missed b.
        let h = on_x(&[
            (0, "invoke", "append", json!("a")),
            (0, "ok", "append", json!("a")),
            (1, "invoke", "append", json!("b")),
            (1, "ok", "append", json!("b")),
            (0, "invoke", "get", json!(null)),
            (0, "ok", "get", json!("a")),
        ]);
        let (validity, explanation, ops) = check_and_shrink(&h);
        assert_eq!(validity, crate::check::Validity::Invalid);
        assert_eq!(
            explanation,
            "on key \"x\": get \"x\" returned \"a\", but every order of the operations before it leaves {\"x\": \"ab\"}"
        );
        assert_eq!(
            ops,
            vec![
                (0, "append \"x\" \"a\"".to_string()),
                (2, "append \"x\" \"b\"".to_string()),
                (4, "get \"x\" returned \"a\"".to_string()),
            ]
        );
    }

    #[test]
    fn only_puts_and_appends_of_the_same_key_may_produce_a_get() {
        let get = |k, s| KvOp::Get(k, Chunk::new(s));
        assert!(Kv.may_produce(&KvOp::Put(1, Chunk::new("1")), &get(1, "1")));
        // A put followed by appends.
        assert!(Kv.may_produce(&KvOp::Put(1, Chunk::new("ab")), &get(1, "abc")));
        assert!(!Kv.may_produce(&KvOp::Put(1, Chunk::new("1")), &get(2, "1")));
        assert!(!Kv.may_produce(&KvOp::Put(1, Chunk::new("2")), &get(1, "1")));
        assert!(Kv.may_produce(&KvOp::Append(1, Chunk::new("b")), &get(1, "abc")));
        assert!(!Kv.may_produce(&KvOp::Append(1, Chunk::new("d")), &get(1, "abc")));
        // Appending nothing produces nothing.
        assert!(!Kv.may_produce(&KvOp::Append(1, Chunk::new("")), &get(1, "abc")));
        assert!(!Kv.may_produce(&get(1, "abc"), &get(1, "abc")));
    }

    #[test]
    fn state_equality_and_hash_ignore_history() {
        let m = Kv;
        let s0 = m.init();
        let Next::One(s1) = m.step(&s0, &KvOp::Append(1, Chunk::new("x"))) else {
            panic!()
        };
        let Next::One(s1) = m.step(&s1, &KvOp::Append(2, Chunk::new("y"))) else {
            panic!()
        };
        let Next::One(s2) = m.step(&s0, &KvOp::Put(2, Chunk::new("y"))) else {
            panic!()
        };
        let Next::One(s2) = m.step(&s2, &KvOp::Put(1, Chunk::new("x"))) else {
            panic!()
        };
        assert_eq!(s1, s2);
        assert_eq!(s1.hash, s2.hash);
        let Next::One(s3) = m.step(&s2, &KvOp::Put(1, Chunk::new(""))) else {
            panic!()
        };
        assert_eq!(s3.get(1), "");
        assert_eq!(s3.entries.len(), 1);
    }
}
