//! A set with adds and whole-set reads.

use super::{unknown_f, Model, Next, Values};
use crate::history::{Call, Outcome};
use std::sync::Arc;

/// An operation on a set; elements are ids from [`Values`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SetOp {
    /// Added an element.
    Add(u32),
    /// Read the whole set: these elements, sorted.
    Read(Arc<[u32]>),
}

/// A set, starting empty. Functions: `add` (value = element), `read`
/// (value = array of all elements, in any order).
#[derive(Clone, Copy, Debug, Default)]
pub struct Set;

impl Model for Set {
    type Op = SetOp;
    /// The elements, sorted.
    type State = Arc<[u32]>;
    fn name(&self) -> &str {
        "set"
    }
    fn init(&self) -> Arc<[u32]> {
        Arc::from(Vec::new())
    }
    fn decode(&self, call: &Call, values: &mut Values) -> Result<Option<SetOp>, String> {
        Ok(match (call.f.as_str(), call.outcome) {
            ("add", Outcome::Fail) => None,
            ("add", _) => Some(SetOp::Add(values.intern(&call.input))),
            ("read", Outcome::Ok) => {
                let Some(items) = call.output.as_array() else {
                    return Err(format!(
                        "expected a set read to return an array, found {}",
                        call.output
                    ));
                };
                let mut ids: Vec<u32> = items.iter().map(|v| values.intern(v)).collect();
                ids.sort_unstable();
                ids.dedup();
                Some(SetOp::Read(Arc::from(ids)))
            }
            ("read", _) => None,
            _ => return Err(unknown_f("set", call, "add, read")),
        })
    }
    fn step(&self, state: &Arc<[u32]>, op: &SetOp) -> Next<Arc<[u32]>> {
        match op {
            SetOp::Add(x) => match state.binary_search(x) {
                Ok(_) => Next::One(state.clone()),
                Err(i) => {
                    let mut v = state.to_vec();
                    v.insert(i, *x);
                    Next::One(Arc::from(v))
                }
            },
            SetOp::Read(r) if r == state => Next::One(state.clone()),
            SetOp::Read(_) => Next::Illegal,
        }
    }
    fn describe_op(&self, op: &SetOp, values: &Values) -> String {
        match op {
            SetOp::Add(x) => format!("add {}", values.show(*x)),
            SetOp::Read(r) => format!("read returned {}", show_set(r, values)),
        }
    }
    fn describe_state(&self, state: &Arc<[u32]>, values: &Values) -> String {
        show_set(state, values)
    }
    fn read_only(&self, op: &SetOp) -> bool {
        matches!(op, SetOp::Read(_))
    }
    fn grows(&self, op: &SetOp) -> bool {
        matches!(op, SetOp::Add(_))
    }
    fn may_grow_into(&self, state: &Arc<[u32]>, read: &SetOp) -> bool {
        // Adds only grow the set: the read must hold all it has now.
        match read {
            SetOp::Read(r) => state.iter().all(|x| r.binary_search(x).is_ok()),
            SetOp::Add(_) => true,
        }
    }
    fn heap_bytes(&self, state: &Arc<[u32]>) -> usize {
        state.len() * 4 + 16
    }
}

fn show_set(items: &[u32], values: &Values) -> String {
    let parts: Vec<String> = items.iter().map(|x| values.show(*x)).collect();
    format!("#{{{}}}", parts.join(" "))
}
