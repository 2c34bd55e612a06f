//! Sequential specifications: what a correct object would have answered.
//!
//! A [`Model`] is a plain Rust type. It decodes each [`Call`] of a history into
//! a compact operation once, before the search, and then steps states with
//! it. The linearizability checker needs nothing else from it. Built-ins:
//! [`Register`], [`CasRegister`], [`Kv`] (multi-register with get, put and
//! append), [`Mutex`], [`Set`], [`FifoQueue`] and [`UnorderedQueue`];
//! [`by_name`] lists them for the command line.
//!
//! Writing your own model: decode what the call asked for and what it
//! observed into `Op`; `step` answers whether that observation is possible in
//! a state and which state follows. Intern JSON values into small integers
//! with [`Values`] so states stay cheap to hash and compare.

mod kv;
mod mutex;
mod queue;
mod register;
mod set;

pub use kv::{Kv, KvOp, KvState};
pub use mutex::{Mutex, MutexOp};
pub use queue::{FifoQueue, QueueOp, UnorderedQueue};
pub use register::{CasRegister, Register, RegisterOp};
pub use set::{Set, SetOp};

use crate::history::Call;
use rustc_hash::FxHashMap;
use serde_json::Value;
use std::fmt::Debug;
use std::hash::Hash;

/// What can follow a state when an operation takes effect in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next<S> {
    /// The operation could not have done what was observed in this state.
    Illegal,
    /// Exactly one state follows.
    One(S),
    /// Any of these states may follow (a nondeterministic step, e.g. an
    /// unordered dequeue whose result is unknown).
    Many(Vec<S>),
}

impl<S> From<Option<S>> for Next<S> {
    fn from(o: Option<S>) -> Self {
        match o {
            Some(s) => Next::One(s),
            None => Next::Illegal,
        }
    }
}

/// A sequential specification.
///
/// The checker calls [`Model::decode`] once per call, then only
/// [`Model::init`] and [`Model::step`] in its search, and the `describe_*`
/// functions when it explains a verdict.
pub trait Model: Sync {
    /// A decoded operation: what was asked and, when known, what was observed.
    type Op: Clone + PartialEq + Debug + Send + Sync;
    /// A state of the object. Hashing and equality should be cheap: they run
    /// for every configuration the search visits.
    type State: Clone + Eq + Hash + Debug + Send + Sync;

    /// The model's name, as given to `--model`.
    fn name(&self) -> &str;

    /// The state before any operation.
    fn init(&self) -> Self::State;

    /// Decodes a call. `Ok(None)` means the call constrains nothing and is
    /// left out (a failed write, a read whose result is unknown). The call's
    /// outcome says whether its output is known: for `Info` it is not, and
    /// the checker may linearize the op at any point after its invocation,
    /// or never. An `Err` is bad input and names what was expected.
    fn decode(&self, call: &Call, values: &mut Values) -> Result<Option<Self::Op>, String>;

    /// The states that may follow `state` when `op` takes effect in it.
    fn step(&self, state: &Self::State, op: &Self::Op) -> Next<Self::State>;

    /// The operation in a few words, e.g. `read returned 4`, `write 3`.
    fn describe_op(&self, op: &Self::Op, values: &Values) -> String;

    /// The state in a few words, e.g. `4`, `nil`, `{x: "a"}`.
    fn describe_state(&self, state: &Self::State, values: &Values) -> String;

    /// True when `op`, in every state where it is legal, leaves the state
    /// as it was — a read, a failed compare — and steps to exactly one state.
    /// The search then linearizes such an op as soon as it is legal and
    /// tries nothing else there, which is sound (moving an observer earlier,
    /// to a point where it already holds, changes no later state) and prunes
    /// much of the search. Say false when unsure: it is only an optimization.
    fn read_only(&self, op: &Self::Op) -> bool {
        let _ = op;
        false
    }

    /// True when `op` can only grow a state, in the order that
    /// [`Model::may_grow_into`] speaks of: an append to a string, an add to
    /// a set. With it the search drops a configuration as soon as a read
    /// that must come before any other kind of op can no longer become
    /// legal, instead of trying every order of the growing ops first. Say
    /// false when unsure: it is only an optimization.
    fn grows(&self, op: &Self::Op) -> bool {
        let _ = op;
        false
    }

    /// For a [`Model::read_only`] `read`: false only when no sequence of
    /// [`Model::grows`] ops applied to `state` can make `read` legal (the
    /// string read does not start with the state's string; the set read
    /// lacks an element the state has). Say true when unsure.
    fn may_grow_into(&self, state: &Self::State, read: &Self::Op) -> bool {
        let _ = (state, read);
        true
    }

    /// True when `read` may have observed what `op` put there: a write of
    /// the value a register read returned (or a successful cas expected).
    /// `read` is any op whose legality depends on a value others produce:
    /// a [`Model::read_only`] read, or one that reads before it writes. A
    /// minimal failing sub-history ([`crate::check::linear::shrink`])
    /// keeps, with every such op it keeps, an op that may have produced its
    /// value, so that a stale read is shown with the writes it missed.
    /// Say false when unsure: the op then stands on its own.
    fn may_produce(&self, op: &Self::Op, read: &Self::Op) -> bool {
        let _ = (op, read);
        false
    }

    /// Bytes a state owns on the heap beyond its own size, counted against
    /// the memory budget for every state the search remembers.
    fn heap_bytes(&self, state: &Self::State) -> usize {
        let _ = state;
        0
    }

    /// True when states hold several keys and ops name theirs, so a
    /// multi-key history may be checked whole instead of split by key.
    fn keyed(&self) -> bool {
        false
    }
}

/// Interns JSON values into dense `u32` ids so that states are small
/// integers. Id 0 is always `null`.
#[derive(Clone, Debug)]
pub struct Values {
    ids: FxHashMap<String, u32>,
    vals: Vec<Value>,
}

impl Default for Values {
    fn default() -> Self {
        Values::new()
    }
}

impl Values {
    /// A table holding only `null` (id 0).
    pub fn new() -> Values {
        let mut ids = FxHashMap::default();
        ids.insert("null".to_string(), 0);
        Values {
            ids,
            vals: vec![Value::Null],
        }
    }

    /// The id of `v`, added if new. Equal JSON values get equal ids.
    pub fn intern(&mut self, v: &Value) -> u32 {
        if v.is_null() {
            return 0;
        }
        let text = v.to_string();
        if let Some(&id) = self.ids.get(&text) {
            return id;
        }
        let id = self.vals.len() as u32;
        self.ids.insert(text, id);
        self.vals.push(v.clone());
        id
    }

    /// The value of an id (`null` for an unknown id).
    pub fn get(&self, id: u32) -> &Value {
        self.vals.get(id as usize).unwrap_or(&Value::Null)
    }

    /// The value of an id as text, `nil` for null.
    pub fn show(&self, id: u32) -> String {
        match self.get(id) {
            Value::Null => "nil".to_string(),
            v => v.to_string(),
        }
    }
}

/// The `error` a client records on a compare-and-set that ran and found
/// another value. A failed cas with no `error` (Jepsen's and Porcupine's
/// histories) is read the same way; a failed cas with any other `error`
/// (refused before it was sent, say) never ran and constrains nothing.
pub const CAS_MISMATCH: &str = "mismatch";

/// The names accepted by [`by_name`], with a line on each.
pub const MODELS: &[(&str, &str)] = &[
    (
        "register",
        "read/write register; reads must see the latest write",
    ),
    (
        "cas-register",
        "register with compare-and-set; a failed cas observed a mismatch",
    ),
    (
        "cas-register-knossos",
        "cas-register where a failed cas never happened (Knossos' reading)",
    ),
    (
        "kv",
        "keys to strings with get, put and append (alias multi-register)",
    ),
    ("mutex", "acquire/release lock"),
    ("set", "add elements, read the whole set"),
    (
        "fifo-queue",
        "enqueue/dequeue in order (alias queue, except in `faultline check`, where queue is the total-queue checker)",
    ),
    ("unordered-queue", "enqueue/dequeue in any order"),
];

/// Applies `f` to the built-in model of this name, or returns `None` for an
/// unknown name. The visitor is generic over the model type, so the search is
/// monomorphized for each model.
pub fn by_name<R>(name: &str, f: impl ModelVisitor<R>) -> Option<R> {
    Some(match name {
        "register" => f.visit(&Register),
        "cas-register" => f.visit(&CasRegister {
            failed_cas_never_happened: false,
        }),
        "cas-register-knossos" => f.visit(&CasRegister {
            failed_cas_never_happened: true,
        }),
        "kv" | "multi-register" => f.visit(&Kv),
        "mutex" => f.visit(&Mutex),
        "set" => f.visit(&Set),
        "fifo-queue" | "queue" => f.visit(&FifoQueue),
        "unordered-queue" => f.visit(&UnorderedQueue),
        _ => return None,
    })
}

/// Something to do with a model whose type is chosen at run time; see [`by_name`].
pub trait ModelVisitor<R> {
    /// Does it with model `m`.
    fn visit<M: Model>(self, m: &M) -> R;
}

/// Reads a JSON value as an integer-or-anything value id; used by models
/// whose values are opaque.
pub(crate) fn expect_pair<'a>(v: &'a Value, what: &str) -> Result<(&'a Value, &'a Value), String> {
    match v.as_array().map(|a| a.as_slice()) {
        Some([a, b]) => Ok((a, b)),
        _ => Err(format!(
            "expected {what} as a two-element array [old new], found {v}"
        )),
    }
}

/// The error for an unknown function name.
pub(crate) fn unknown_f(model: &str, call: &Call, known: &str) -> String {
    format!(
        "model {model} does not know the function `{}` (known: {known})",
        call.f
    )
}

/// Guesses the built-in model from the functions a history uses: only
/// `read`, `write`, `cas` → cas-register; `get`, `put`, `append` (with
/// `read`, `write`) → kv; `acquire`, `release` (with the lock-set
/// workload's `add`, `read`) → mutex; `add`, `read` → set; `enqueue`,
/// `dequeue` → fifo-queue. `None` when they fit no model.
///
/// A history with cas in which a `read` or `write` failed is guessed
/// `cas-register-knossos`: those cannot find another value, so there
/// `fail` means the operation was refused, and a failed cas says nothing
/// of the value it found (read as never run).
pub fn guess(calls: &[Call]) -> Option<&'static str> {
    let mut fs: Vec<&str> = calls.iter().map(|c| c.f.as_str()).collect();
    fs.sort_unstable();
    fs.dedup();
    let all_in = |set: &[&str]| fs.iter().all(|f| set.contains(f));
    if fs.is_empty() {
        return Some("register");
    }
    if all_in(&["read", "write", "cas"]) {
        let refused = calls
            .iter()
            .any(|c| c.f != "cas" && c.outcome == crate::history::Outcome::Fail);
        if refused && fs.contains(&"cas") {
            return Some("cas-register-knossos");
        }
        return Some("cas-register");
    }
    if all_in(&["get", "put", "append", "read", "write"]) {
        return Some("kv");
    }
    if all_in(&["acquire", "release"])
        || (fs.contains(&"acquire") && all_in(&["acquire", "release", "add", "read"]))
    {
        return Some("mutex");
    }
    if all_in(&["add", "read"]) {
        return Some("set");
    }
    if all_in(&["enqueue", "dequeue"]) {
        return Some("fifo-queue");
    }
    None
}
