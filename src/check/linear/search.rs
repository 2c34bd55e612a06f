//! The search for a linearization: Wing & Gong's algorithm with Lowe's
//! memoization of (linearized set, model state), over a doubly linked list
//! of call and return entries.
//!
//! The list holds every not-yet-linearized completed operation's call and
//! return entries, in history order. From the
//! head, any call entry met before the first return entry may be
//! linearized next; meeting a return entry means the operation it closes
//! should already have been linearized, so the search backtracks.
//!
//! Operations whose outcome is unknown (`info`) have no return entry: they
//! may be linearized at any point after their call, or never. The search
//! succeeds once every completed operation is linearized. This is the
//! native reading of `info` — no fake return at "infinity". Such ops stay
//! out of the list (thousands may be pending at once): [`Heads`] holds the
//! first unlinearized op of each class of equal ones, tried when no
//! completed op can go next.
//!
//! The memo costs O(concurrency) per configuration, not O(history): the
//! linearized completed ops are stored as the words of the settled bitset
//! between the first unlinearized one and the last linearized one
//! ([`Window`]), the linearized crashed ops as the id of an interned set
//! ([`CrashedSets`]). A Zobrist hash of the completed ops is kept up to
//! date in O(1) per step.
//!
//! Two reductions keep the configurations visited near the history's
//! length on highly concurrent keys: each new configuration's scan starts
//! at the first legal read-only op pending ([`first_legal_read`]), and a
//! configuration is skipped when one with the same completed ops and state
//! and a subset of its crashed ops was visited ([`Cache`]).
//!
//! A search that stops getting deeper for long (it is walking every order
//! of what lies before an op it cannot pass) hands the problem to
//! [`super::split`] for a bounded try ([`SPLIT_AFTER_STALL`]).

use crate::model::{Model, Next};
use hashbrown::HashTable;
use rustc_hash::FxHasher;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

/// One entry of the list: the call or the return of an operation.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Entry {
    /// The operation (index into `Problem::ops`).
    pub op: u32,
    /// True for a call entry, false for a return entry.
    pub is_call: bool,
    /// For a call entry: the list node of its return entry, or 0 if the
    /// operation has none (its outcome is unknown).
    pub ret: u32,
}

/// A single-partition problem: decoded operations and their entries in
/// history order.
pub(crate) struct Problem<O> {
    pub ops: Vec<O>,
    /// True for operations that completed and so must be linearized.
    pub required: Vec<bool>,
    /// Entry of list node `i + 1`.
    pub entries: Vec<Entry>,
    /// For an op of unknown outcome: the previous such op that is equal to
    /// it (`NONE` if there is none). Equal unknown ops are interchangeable,
    /// so the search only linearizes one after the one before it.
    pub prev_same: Vec<u32>,
}

/// No operation.
pub(crate) const NONE: u32 = u32::MAX;

impl<O: PartialEq> Problem<O> {
    /// Builds the entries from (op, call position, return position), in
    /// call order; positions are history indices, distinct across all events.
    pub fn new(ops: Vec<O>, spans: &[(usize, Option<usize>)]) -> Problem<O> {
        let mut events: Vec<(usize, u32, bool)> = Vec::with_capacity(spans.len() * 2);
        for (i, (call, ret)) in spans.iter().enumerate() {
            events.push((*call, i as u32, true));
            if let Some(r) = ret {
                events.push((*r, i as u32, false));
            }
        }
        events.sort_unstable_by_key(|e| (e.0, !e.2));
        // Within a run of consecutive calls, any order keeps the same
        // candidates before each return; try the op that must return
        // soonest first (earliest deadline), which finds linearizations of
        // valid histories with far less backtracking than call order.
        let ret_of = |op: u32| spans[op as usize].1.unwrap_or(usize::MAX);
        let mut i = 0;
        while i < events.len() {
            let j = events[i..]
                .iter()
                .position(|e| !e.2)
                .map_or(events.len(), |k| i + k);
            events[i..j].sort_by_key(|e| ret_of(e.1));
            i = j + 1;
        }
        let mut node_of_ret = vec![0u32; ops.len()];
        for (i, e) in events.iter().enumerate() {
            if !e.2 {
                node_of_ret[e.1 as usize] = i as u32 + 1;
            }
        }
        let entries = events
            .iter()
            .map(|&(_, op, is_call)| Entry {
                op,
                is_call,
                ret: if is_call { node_of_ret[op as usize] } else { 0 },
            })
            .collect();
        let required: Vec<bool> = spans.iter().map(|s| s.1.is_some()).collect();
        // Classes of equal unknown ops; a class's last member links back.
        let mut prev_same = vec![NONE; ops.len()];
        let mut last_of_class: Vec<u32> = Vec::new();
        for i in 0..ops.len() {
            if required[i] {
                continue;
            }
            match last_of_class
                .iter_mut()
                .find(|l| ops[**l as usize] == ops[i])
            {
                Some(l) => {
                    prev_same[i] = *l;
                    *l = i as u32;
                }
                None => last_of_class.push(i as u32),
            }
        }
        Problem {
            ops,
            required,
            entries,
            prev_same,
        }
    }
}

/// Limits shared by every partition of one check.
pub(crate) struct Budget<'a> {
    pub deadline: Option<Instant>,
    pub time_limit_text: String,
    /// Bytes of search memory in use across all partitions.
    pub memory_used: &'a AtomicUsize,
    pub memory_limit: usize,
    /// This process's resident bytes, when the caller can read them: the
    /// limit then bounds the whole process rather than the memo tables.
    pub resident: Option<fn() -> Option<usize>>,
    /// Set to stop every search from outside (Ctrl-C).
    pub cancel: &'a AtomicBool,
    /// Set when a partition was found invalid and the others should stop.
    pub stop: &'a AtomicBool,
}

impl Budget<'_> {
    /// Moves this search's share of [`Budget::memory_used`] from
    /// `*reported` bytes to `bytes`, and remembers the new figure.
    pub(crate) fn report_bytes(&self, reported: &mut usize, bytes: usize) {
        if bytes >= *reported {
            self.memory_used
                .fetch_add(bytes - *reported, Ordering::Relaxed);
        } else {
            self.memory_used
                .fetch_sub(*reported - bytes, Ordering::Relaxed);
        }
        *reported = bytes;
    }

    /// The memory to hold against the limit, `growth` being what this
    /// search is about to allocate (a table doubling): the process's
    /// resident bytes when they can be read, else every search's memo.
    pub(crate) fn memory_in_use(&self, growth: usize) -> usize {
        let own = match self.resident.and_then(|read| read()) {
            // Leave the process 1/32 of the limit for what it allocates
            // between two looks and after the search (the report):
            // without it, the peak passed the limit by a MiB or so.
            Some(resident) => resident.saturating_add(self.memory_limit / 32),
            None => self.memory_used.load(Ordering::Relaxed),
        };
        own.saturating_add(growth)
    }
}

/// Where the search got furthest without success: the operation whose
/// return it could not pass, the states it could be in there, and some of
/// the orders (with the state after each step) that reached it.
#[derive(Clone, Debug)]
pub(crate) struct Frontier<S> {
    pub stuck_op: u32,
    pub states: Vec<S>,
    pub more_states: bool,
    /// True when growth pruning stopped some order at the stuck op: the
    /// states listed may then be ones before further growing ops, not at
    /// the op. When false this is the frontier the unpruned search finds
    /// (an order cut short by pruning gets no further than the read that
    /// stopped it, so it cannot reach a later stuck op).
    pub pruned_here: bool,
    /// True when `states` are not the states the operations before the
    /// stuck op can leave but a superset of them: every state they could
    /// leave applied in any order, any number of times ([`reach`]). The
    /// stuck op is illegal in all of them; there are no paths.
    ///
    /// [`reach`]: super::reach
    pub over_approximated: bool,
    pub paths: Vec<Vec<(u32, S)>>,
}

/// What the search found.
pub(crate) enum Found<S> {
    Linearizable { configs: u64 },
    NotLinearizable { configs: u64, frontier: Frontier<S> },
    Unknown { configs: u64, reason: String },
}

const MAX_FRONTIER_STATES: usize = 64;

/// After how many configurations (or four per op of the problem, if
/// more) the search, once, looks for an op that no order of the ops
/// before it can explain ([`super::reach`]). A search that gets that far
/// may be heading for a read nothing wrote, which it can only reject after
/// walking every order of the ops before it; the look costs one pass over
/// the ops, so searches that end sooner never pay it.
const REACH_AFTER_CONFIGS: u64 = 1 << 16;

/// After how many configurations visited without linearizing more ops
/// than before (or four per op of the problem, if more) the search hands
/// the problem to [`super::split`], for up to four times as many
/// configurations there; each later stall must be four times as long,
/// and gets four times as many. On the valid long histories of the bench
/// the longest stall was 182,000 configurations of 3.5 million (300,000
/// ops, 20 processes), below the threshold, so they never pay for it.
const SPLIT_AFTER_STALL: u64 = 1 << 16;

/// The configurations of the memo that share one linearized set of
/// completed ops and one state. Its linearized completed ops are stored
/// relative to the search frontier (see [`Window`]), so it costs a few
/// words, not one bit per op of the history; with them, the sets of
/// linearized crashed ops visited there ([`CrashedSets`] ids): the first
/// inline, the others in [`Cache::more`].
struct Slot<S> {
    hash: u64,
    /// Where the window's words start in the arena.
    off: usize,
    /// The window's first word, as an index into the settled bitset.
    first_word: u32,
    /// How many words the window has.
    len: u32,
    /// The first set of linearized crashed ops visited here.
    crashed: CrashedSet,
    /// The other sets visited here: an index into [`Cache::more`], or
    /// `NONE`.
    more: u32,
    state: S,
}

/// The part of the settled bitset that tells one configuration's
/// linearized completed ops apart: from the word of the first completed op
/// not yet linearized (every completed op before it is linearized) to the
/// word of the last one linearized (every completed op after it is not).
/// Every linearized op was called before the first pending return, and
/// every pending op is in flight there, so the window spans the ops in
/// flight at the frontier: it grows with concurrency, not with the
/// history's length.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Window {
    first_word: u32,
    end_word: u32,
}

impl Window {
    /// The window for a configuration whose first unlinearized completed
    /// op is `lo` and whose last linearized completed op is `hi - 1`.
    fn new(lo: u32, hi: u32) -> Window {
        let first_word = lo / 64;
        Window {
            first_word,
            end_word: hi.div_ceil(64).max(first_word),
        }
    }

    fn words<'b>(&self, settled: &'b [u64]) -> &'b [u64] {
        &settled[self.first_word as usize..self.end_word as usize]
    }
}

/// The memo of visited configurations, with dominance: linearizing a
/// crashed op is optional, so a configuration dominates every one with the
/// same linearized completed ops and state and a superset of its
/// linearized crashed ops — whatever can follow the larger can follow the
/// smaller. A configuration is new only when no visited one with the same
/// completed ops and state has a subset of its crashed ops. (Equal crashed
/// ops are taken in call order, so a subset by classes is a subset.)
/// Without it, the search walked the same stretch of history once per
/// subset of the crashed ops it could use there: on a 10,000-op history
/// with 3 processes and a stale read in the middle, 17 million
/// configurations over 11,000 distinct (completed ops, state) pairs.
struct Cache<S> {
    table: HashTable<Slot<S>>,
    arena: Vec<u64>,
    /// The further crashed sets of each slot: (set, next or `NONE`).
    more: Vec<(CrashedSet, u32)>,
    /// Configurations visited: a slot and each further set.
    configs: u64,
    /// Heap bytes owned by the stored states, as the model counts them.
    heap: usize,
}

impl<S: Eq + Clone> Cache<S> {
    /// Records the configuration as visited, unless it is dominated: a
    /// visited one has the same completed ops (`hash` covers them and the
    /// state, not the crashed ops) and state, and a subset of its crashed
    /// ops (`crashed`). True when it is new.
    #[allow(clippy::too_many_arguments)]
    fn visit(
        &mut self,
        hash: u64,
        window: Window,
        settled: &[u64],
        crashed: CrashedSet,
        state: &S,
        sets: &CrashedSets,
        heap: impl FnOnce(&S) -> usize,
    ) -> bool {
        let words = window.words(settled);
        let arena = &self.arena;
        let found = self.table.find_mut(hash, |s| {
            s.hash == hash
                && s.first_word == window.first_word
                && s.len as usize == words.len()
                && s.state == *state
                && arena[s.off..s.off + words.len()] == *words
        });
        if let Some(slot) = found {
            if sets.subset(slot.crashed, crashed) {
                return false;
            }
            let mut at = slot.more;
            while at != NONE {
                let (set, next) = self.more[at as usize];
                if sets.subset(set, crashed) {
                    return false;
                }
                at = next;
            }
            self.more.push((crashed, slot.more));
            slot.more = self.more.len() as u32 - 1;
            self.configs += 1;
            return true;
        }
        let off = self.arena.len();
        self.arena.extend_from_slice(words);
        self.heap += heap(state);
        self.configs += 1;
        self.table.insert_unique(
            hash,
            Slot {
                hash,
                off,
                first_word: window.first_word,
                len: words.len() as u32,
                crashed,
                more: NONE,
                state: state.clone(),
            },
            |s| s.hash,
        );
        true
    }

    fn slot_bytes() -> usize {
        std::mem::size_of::<Slot<S>>() + 1
    }

    fn bytes(&self) -> usize {
        self.heap
            + self.arena.capacity() * 8
            + self.more.capacity() * std::mem::size_of::<(CrashedSet, u32)>()
            + self.table.capacity() * Self::slot_bytes()
    }

    /// What the next few thousand insertions may allocate on top of
    /// [`Cache::bytes`]: a full table or arena doubles, and holds old and
    /// new at once while it moves.
    fn imminent_growth(&self, margin: usize) -> usize {
        let mut grow = 0;
        if self.table.capacity() - self.table.len() <= margin {
            grow += self.table.capacity().max(margin) * 2 * Self::slot_bytes();
        }
        if self.arena.capacity() - self.arena.len() <= margin * 4 {
            grow += self.arena.capacity().max(margin) * 2 * 8;
        }
        grow + vec_growth(&self.more, margin)
    }
}

/// A set of linearized crashed ops: its [`CrashedSets`] id, and a
/// signature (one bit per op, by hash) that tells most non-subsets apart
/// without walking the sets.
#[derive(Clone, Copy, PartialEq, Eq)]
struct CrashedSet {
    id: u32,
    sig: u64,
}

impl CrashedSet {
    const EMPTY: CrashedSet = CrashedSet { id: 0, sig: 0 };
}

/// Interned sets of linearized crashed ops, each named by a number:
/// equal sets get the same number. A set is a hash-consed binary trie over
/// the ops' bitset words, so a set one op larger shares all but one path
/// with its parent: each distinct set costs O(log ops) words, not O(size),
/// however many crashed ops it holds. Adding an op to a set is
/// remembered, so walking the same step again costs one lookup.
struct CrashedSets {
    /// Levels of inner nodes above the leaves (0: the root is a leaf).
    depth: u32,
    /// Leaf words; leaf 0 is the empty word.
    leaves: Vec<u64>,
    leaf_ids: rustc_hash::FxHashMap<u64, u32>,
    /// Inner nodes (left, right); node 0 is the empty subtree at any level.
    inner: Vec<(u32, u32)>,
    inner_ids: rustc_hash::FxHashMap<(u32, u32), u32>,
    with: rustc_hash::FxHashMap<(u32, u32), u32>,
    /// False when the problem has no crashed op: no set ever grows.
    any: bool,
}

impl CrashedSets {
    fn new(ops: usize, any: bool) -> CrashedSets {
        let words = ops.div_ceil(64).max(1);
        let mut sets = CrashedSets {
            depth: words.next_power_of_two().trailing_zeros(),
            leaves: vec![0],
            leaf_ids: Default::default(),
            inner: vec![(0, 0)],
            inner_ids: Default::default(),
            with: Default::default(),
            any,
        };
        sets.leaf_ids.insert(0, 0);
        sets.inner_ids.insert((0, 0), 0);
        sets
    }

    /// Set `set` with `op` added.
    fn with(&mut self, set: CrashedSet, op: u32) -> CrashedSet {
        let sig = set.sig | 1 << (splitmix(op as u64) & 63);
        if let Some(&id) = self.with.get(&(set.id, op)) {
            return CrashedSet { id, sig };
        }
        let id = self.insert(self.depth, set.id, op as usize / 64, op % 64);
        self.with.insert((set.id, op), id);
        CrashedSet { id, sig }
    }

    fn insert(&mut self, level: u32, node: u32, word: usize, bit: u32) -> u32 {
        if level == 0 {
            let w = self.leaves[node as usize] | 1 << bit;
            let next = self.leaves.len() as u32;
            let id = *self.leaf_ids.entry(w).or_insert(next);
            if id == next {
                self.leaves.push(w);
            }
            return id;
        }
        let (mut left, mut right) = self.inner[node as usize];
        if (word >> (level - 1)) & 1 == 0 {
            left = self.insert(level - 1, left, word, bit);
        } else {
            right = self.insert(level - 1, right, word, bit);
        }
        let next = self.inner.len() as u32;
        let id = *self.inner_ids.entry((left, right)).or_insert(next);
        if id == next {
            self.inner.push((left, right));
        }
        id
    }

    /// True when set `a` is a subset of set `b`.
    fn subset(&self, a: CrashedSet, b: CrashedSet) -> bool {
        a.sig & !b.sig == 0 && self.subtree_subset(self.depth, a.id, b.id)
    }

    fn subtree_subset(&self, level: u32, a: u32, b: u32) -> bool {
        if a == b || a == 0 {
            return true;
        }
        if b == 0 {
            return false;
        }
        if level == 0 {
            return self.leaves[a as usize] & !self.leaves[b as usize] == 0;
        }
        let (al, ar) = self.inner[a as usize];
        let (bl, br) = self.inner[b as usize];
        self.subtree_subset(level - 1, al, bl) && self.subtree_subset(level - 1, ar, br)
    }

    /// Heap bytes, roughly: each entry in a vector and in its map.
    fn bytes(&self) -> usize {
        (self.leaves.len() + self.inner.len()) * 8 * 3 + self.with.len() * 24
    }

    /// What the next `margin` steps may allocate on top of
    /// [`CrashedSets::bytes`]: each step adds at most one new set, of one
    /// leaf and `depth` inner nodes; a vector or map that cannot hold them
    /// doubles, and holds old and new at once while it moves. With many
    /// crashed ops the sets can outgrow the memo, so a limit must see
    /// their growth coming too.
    fn imminent_growth(&self, margin: usize) -> usize {
        if !self.any {
            return 0;
        }
        fn grow(len: usize, capacity: usize, entry: usize, added: usize) -> usize {
            if len + added > capacity {
                (2 * capacity).max(len + added) * entry
            } else {
                0
            }
        }
        let nodes = margin * self.depth as usize;
        grow(self.leaves.len(), self.leaves.capacity(), 8, margin)
            + grow(self.leaf_ids.len(), self.leaf_ids.capacity(), 13, margin)
            + grow(self.inner.len(), self.inner.capacity(), 8, nodes)
            + grow(self.inner_ids.len(), self.inner_ids.capacity(), 13, nodes)
            + grow(self.with.len(), self.with.capacity(), 13, margin)
    }
}

/// What `margin` more pushes may allocate on top of a vector's capacity:
/// when they do not fit, it doubles, and holds old and new at once while
/// it moves.
fn vec_growth<T>(v: &Vec<T>, margin: usize) -> usize {
    if v.capacity() - v.len() <= margin {
        v.capacity().max(margin) * 2 * std::mem::size_of::<T>()
    } else {
        0
    }
}

fn state_hash<S: Hash>(s: &S) -> u64 {
    let mut h = FxHasher::default();
    s.hash(&mut h);
    h.finish().wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The first op at or after `from` whose bit is clear (`ops` if none).
fn first_clear(bits: &[u64], from: u32, ops: usize) -> u32 {
    let mut w = from as usize / 64;
    if w >= bits.len() {
        return ops as u32;
    }
    let mut word = !bits[w] & (!0u64 << (from % 64));
    loop {
        if word != 0 {
            return ((w * 64) + word.trailing_zeros() as usize).min(ops) as u32;
        }
        w += 1;
        if w == bits.len() {
            return ops as u32;
        }
        word = !bits[w];
    }
}

struct Frame<S> {
    /// The list node of the op's call entry.
    node: u32,
    prev_state: S,
    alt: u32,
    many: bool,
    /// A read-only op linearized as soon as it was legal: if nothing
    /// follows from there, nothing follows from the frame below either.
    forced: bool,
    /// The scan phase the op was found in.
    phase: u8,
    /// In phase 1: the first return entry, where the scan stops.
    bound: u32,
    /// The frontier and crashed set before the step.
    prev_lo: u32,
    prev_hi: u32,
    prev_crashed: CrashedSet,
    /// This step on the trail.
    trail: u32,
}

/// How a search may cut corners.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tactics {
    /// Drop configurations where a pending read can no longer hold
    /// ([`Model::grows`]). Sound for the verdict, but the furthest point
    /// reached, and so the counterexample, may come earlier.
    pub growth_pruning: bool,
    /// Give up (unknown) after this many configurations.
    pub max_configs: Option<u64>,
}

/// The crashed ops that may be linearized next, one per class of equal
/// ops (the first of the class not yet linearized), as a doubly linked
/// list in call order. Node `end` (= number of ops) is the sentinel.
struct Heads {
    next: Vec<u32>,
    prev: Vec<u32>,
    end: u32,
}

impl Heads {
    fn first(&self) -> u32 {
        self.next[self.end as usize]
    }

    /// Takes `op` (a head) out; its class's next op `then`, if any, takes
    /// its place in call order.
    fn advance(&mut self, op: u32, then: u32, call_node: &[u32]) {
        let (o, end) = (op as usize, self.end);
        let before = self.prev[o];
        self.next[before as usize] = self.next[o];
        self.prev[self.next[o] as usize] = before;
        if then != NONE {
            let mut at = before;
            while self.next[at as usize] != end
                && call_node[self.next[at as usize] as usize] < call_node[then as usize]
            {
                at = self.next[at as usize];
            }
            let after = self.next[at as usize];
            self.next[then as usize] = after;
            self.prev[then as usize] = at;
            self.next[at as usize] = then;
            self.prev[after as usize] = then;
        }
    }

    /// Undoes [`Heads::advance`] (the last change made).
    fn retreat(&mut self, op: u32, then: u32) {
        if then != NONE {
            let t = then as usize;
            self.next[self.prev[t] as usize] = self.next[t];
            self.prev[self.next[t] as usize] = self.prev[t];
        }
        let o = op as usize;
        self.next[self.prev[o] as usize] = op;
        self.prev[self.next[o] as usize] = op;
    }
}

/// Searches for a linearization of `p` under `model`.
pub(crate) fn search<M: Model>(
    model: &M,
    p: &Problem<M::Op>,
    budget: &Budget<'_>,
    max_paths: usize,
    tactics: Tactics,
) -> Found<M::State> {
    let n = p.entries.len();
    let nops = p.ops.len();
    let tail = n as u32 + 1;
    // The list of completed ops' call and return entries. Crashed ops'
    // calls stay out of it (see `Heads`): thousands of them may be pending
    // at once, and the scan from the head must not walk them every step.
    let mut next = vec![tail; n + 2];
    let mut prev = vec![0u32; n + 2];
    let mut call_node = vec![0u32; nops];
    let mut last = 0u32;
    for (i, e) in p.entries.iter().enumerate() {
        let node = i as u32 + 1;
        if e.is_call {
            call_node[e.op as usize] = node;
            if e.ret == 0 {
                continue;
            }
        }
        next[last as usize] = node;
        prev[node as usize] = last;
        last = node;
    }
    next[last as usize] = tail;
    prev[tail as usize] = last;
    let mut next_same = vec![NONE; nops];
    for (op, &before) in p.prev_same.iter().enumerate() {
        if before != NONE {
            next_same[before as usize] = op as u32;
        }
    }
    let end = nops as u32;
    let mut heads = Heads {
        next: vec![end; nops + 1],
        prev: vec![end; nops + 1],
        end,
    };
    {
        let mut firsts: Vec<u32> = (0..end)
            .filter(|&o| !p.required[o as usize] && p.prev_same[o as usize] == NONE)
            .collect();
        firsts.sort_unstable_by_key(|&o| call_node[o as usize]);
        let mut last = end;
        for o in firsts {
            heads.next[last as usize] = o;
            heads.prev[o as usize] = last;
            last = o;
        }
        heads.next[last as usize] = end;
        heads.prev[end as usize] = last;
    }
    // Settled ops: completed ones linearized, and every crashed one (they
    // are tracked in `crashed` instead, so the window skips over them).
    let mut settled = vec![0u64; nops.div_ceil(64).max(1)];
    for (op, _) in p.required.iter().enumerate().filter(|(_, r)| !**r) {
        settled[op >> 6] |= 1 << (op & 63);
    }
    let mut lo = first_clear(&settled, 0, nops);
    let mut hi = 0u32;
    let mut crashed_sets = CrashedSets::new(nops, p.required.iter().any(|r| !r));
    let mut crashed = CrashedSet::EMPTY;
    // The hash covers the linearized completed ops and the state, not the
    // crashed ops: configurations that differ only in those share a slot
    // of the memo, where dominance is decided (see `Cache`).
    let zobrist: Vec<u64> = (0..nops as u64)
        .map(|o| {
            if p.required[o as usize] {
                splitmix(o)
            } else {
                0
            }
        })
        .collect();
    let mut zh = 0u64;
    let mut remaining = p.required.iter().filter(|r| **r).count();
    let mut state = model.init();
    let mut stack: Vec<Frame<M::State>> = Vec::new();
    let mut trail = Trail {
        steps: Vec::new(),
        pinned: 0,
        ends: Vec::new(),
    };
    // Most searches visit thousands of configurations: start there rather
    // than rehash the table through every small size.
    let initial = (nops * 8).clamp(64, 1 << 14);
    let mut cache = Cache {
        table: HashTable::with_capacity(initial),
        arena: Vec::with_capacity(initial * 2),
        more: Vec::new(),
        configs: 0,
        heap: 0,
    };
    let heap = |s: &M::State| model.heap_bytes(s);
    // Growth pruning (see `Model::grows`): which ops let the look-ahead
    // pass (they only grow the state, or leave it), and which are reads
    // it checks. Off when no op grows.
    let passes: Vec<bool> = p
        .ops
        .iter()
        .map(|o| model.grows(o) || model.read_only(o))
        .collect();
    let growth = tactics.growth_pruning && p.ops.iter().any(|o| model.grows(o));
    cache.visit(
        zh ^ state_hash(&state),
        Window::new(lo, hi),
        &settled,
        crashed,
        &state,
        &crashed_sets,
        heap,
    );

    let mut frontier = Frontier {
        stuck_op: 0,
        states: Vec::new(),
        more_states: false,
        pruned_here: false,
        over_approximated: false,
        paths: Vec::new(),
    };
    let mut reach_after = Some((4 * nops as u64).max(REACH_AFTER_CONFIGS));
    // The most ops linearized at once so far, and when that was: a search
    // that has not got deeper for long is walking every order of what
    // lies before some op it cannot pass.
    let (mut deepest, mut deepest_at) = (0usize, 0u64);
    let mut split_after = (4 * nops as u64).max(SPLIT_AFTER_STALL);
    let mut best_node = 0u32;
    let mut reported = 0usize;
    let mut steps = 0u64;
    // Each scan of the candidates runs twice: first over completed ops
    // (phase 0: `cursor` is a list node), then over crashed ones (phase 1:
    // `cursor` is an op in `heads`, up to `bound`, the first return entry).
    // Trying "not yet" for the crashed ones first finds linearizations of
    // valid histories sooner.
    let mut cursor = first_legal_read(model, p, &next, &state).unwrap_or(next[0]);
    let mut phase = 0u8;
    let mut bound = 0u32;
    let mut start_alt = 0u32;

    let result = 'search: loop {
        if remaining == 0 {
            break 'search Found::Linearizable {
                configs: cache.configs,
            };
        }
        steps += 1;
        if steps & 0xFFF == 0 {
            let bytes = cache.bytes()
                + crashed_sets.bytes()
                + stack.capacity() * std::mem::size_of::<Frame<M::State>>()
                + trail.steps.capacity() * std::mem::size_of::<TrailStep<M::State>>();
            budget.report_bytes(&mut reported, bytes);
            let configs = cache.configs;
            let growth = cache.imminent_growth(0x1000)
                + crashed_sets.imminent_growth(0x1000)
                + vec_growth(&stack, 0x1000)
                + vec_growth(&trail.steps, 0x1000);
            if budget.memory_in_use(growth) > budget.memory_limit {
                break 'search Found::Unknown {
                    configs,
                    reason: format!(
                        "memory budget of {} MiB reached after {configs} configurations",
                        budget.memory_limit >> 20
                    ),
                };
            }
            if budget.deadline.is_some_and(|d| Instant::now() >= d) {
                break 'search Found::Unknown {
                    configs,
                    reason: format!(
                        "time limit of {} reached after {configs} configurations",
                        budget.time_limit_text
                    ),
                };
            }
            if reach_after.is_some_and(|r| configs >= r) {
                reach_after = None;
                if let Some(impossible) = super::reach::impossible_op(model, p) {
                    break 'search Found::NotLinearizable {
                        configs,
                        frontier: impossible,
                    };
                }
            }
            if configs - deepest_at >= split_after {
                // Walk the history return by return instead (see
                // `split`): its memory follows what is in flight at each
                // point, so an op no order passes is found at its return.
                // Valid histories are far cheaper here: it gets a bounded
                // try, and a longer one each time the search stalls again.
                let cap = 4 * split_after;
                split_after *= 4;
                deepest_at = configs;
                match super::split::search(model, p, budget, cap) {
                    Some(Found::Linearizable { configs: more }) => {
                        break 'search Found::Linearizable {
                            configs: configs + more,
                        }
                    }
                    Some(Found::NotLinearizable {
                        configs: more,
                        frontier,
                    }) => {
                        break 'search Found::NotLinearizable {
                            configs: configs + more,
                            frontier,
                        }
                    }
                    Some(Found::Unknown {
                        configs: more,
                        reason,
                    }) => {
                        break 'search Found::Unknown {
                            configs: configs + more,
                            reason,
                        }
                    }
                    None => {}
                }
            }
            if tactics.max_configs.is_some_and(|m| configs > m) {
                break 'search Found::Unknown {
                    configs,
                    reason: format!("gave up after {configs} configurations"),
                };
            }
            if budget.cancel.load(Ordering::Relaxed) {
                break 'search Found::Unknown {
                    configs,
                    reason: "cancelled".into(),
                };
            }
            if budget.stop.load(Ordering::Relaxed) {
                break 'search Found::Unknown {
                    configs,
                    reason: "not finished: another key was found invalid first".into(),
                };
            }
        }

        // The next candidate's call node, or where the scan is stuck.
        let candidate = if phase == 0 {
            match (cursor != tail).then(|| p.entries[cursor as usize - 1]) {
                Some(e) if e.is_call => Ok(cursor),
                // The end of the completed ops' candidates: now the
                // crashed ones called before this return entry.
                _ if heads.first() != end && call_node[heads.first() as usize] < cursor => {
                    phase = 1;
                    bound = cursor;
                    cursor = heads.first();
                    continue;
                }
                _ => Err(cursor),
            }
        } else if cursor != end && call_node[cursor as usize] < bound {
            Ok(call_node[cursor as usize])
        } else {
            Err(bound)
        };
        match candidate {
            Ok(node) => {
                let e = p.entries[node as usize - 1];
                let op = e.op as usize;
                let read_only = model.read_only(&p.ops[op]);
                let mut advanced = false;
                let mut dead_end = false;
                // The successor states still to try: a `Many` op resumed
                // after backtracking skips the alternatives tried before.
                let (next_states, many): (Option<smallvec::SmallVec<[M::State; 2]>>, bool) =
                    match model.step(&state, &p.ops[op]) {
                        Next::Illegal => (None, false),
                        Next::One(s) => ((start_alt == 0).then(|| smallvec::smallvec![s]), false),
                        Next::Many(alts) => (
                            Some(alts.into_iter().skip(start_alt as usize).collect()),
                            true,
                        ),
                    };
                // The configuration after the step, tried with each of the
                // op's successor states.
                let (prev_lo, prev_hi, prev_crashed) = (lo, hi, crashed);
                let mut after_crashed = crashed;
                if let Some(alts) = next_states {
                    if e.ret != 0 {
                        settled[op >> 6] |= 1 << (op & 63);
                        if op as u32 == lo {
                            lo = first_clear(&settled, lo, nops);
                        }
                        hi = hi.max(op as u32 + 1);
                    } else {
                        after_crashed = crashed_sets.with(crashed, op as u32);
                    }
                    zh ^= zobrist[op];
                    let window = Window::new(lo, hi);
                    let shortcut = if e.ret == 0 {
                        shortcut(model, p, stack.last(), &p.ops[op])
                    } else {
                        None
                    };
                    for (a, s) in alts.into_iter().enumerate() {
                        if shortcut.as_ref().is_some_and(|skip| skip.contains(&s)) {
                            continue;
                        }
                        let hash = zh ^ state_hash(&s);
                        if cache.visit(
                            hash,
                            window,
                            &settled,
                            after_crashed,
                            &s,
                            &crashed_sets,
                            heap,
                        ) {
                            let before = stack.last().map_or(NONE, |f| f.trail);
                            let step = trail.push(before, op as u32, s.clone());
                            let prev_state = std::mem::replace(&mut state, s);
                            if stack.len() >= deepest {
                                (deepest, deepest_at) = (stack.len() + 1, cache.configs);
                            }
                            stack.push(Frame {
                                node,
                                prev_state,
                                alt: start_alt + a as u32,
                                many,
                                forced: read_only,
                                phase,
                                bound,
                                prev_lo,
                                prev_hi,
                                prev_crashed,
                                trail: step,
                            });
                            advanced = true;
                            break;
                        }
                    }
                    // A legal read-only op whose successor was already
                    // explored: this configuration is explored too.
                    dead_end = read_only && !advanced && !many;
                    if !advanced {
                        if e.ret != 0 {
                            settled[op >> 6] ^= 1 << (op & 63);
                        }
                        zh ^= zobrist[op];
                        (lo, hi) = (prev_lo, prev_hi);
                    }
                }
                start_alt = 0;
                if advanced {
                    crashed = after_crashed;
                    if e.ret != 0 {
                        // Lift the call entry and its return entry out of the list.
                        let c = node as usize;
                        next[prev[c] as usize] = next[c];
                        prev[next[c] as usize] = prev[c];
                        let r = e.ret as usize;
                        next[prev[r] as usize] = next[r];
                        prev[next[r] as usize] = prev[r];
                        remaining -= 1;
                    } else {
                        heads.advance(op as u32, next_same[op], &call_node);
                    }
                    let doomed = if growth {
                        cannot_grow(model, p, &next, &heads, &call_node, &passes, &state)
                    } else {
                        None
                    };
                    match doomed {
                        None => {
                            cursor = first_legal_read(model, p, &next, &state).unwrap_or(next[0]);
                            phase = 0;
                            continue;
                        }
                        // A pending read can no longer hold: as far as this
                        // order goes, it is stuck there. Undo this step.
                        Some(read) => note_stuck(
                            p,
                            &mut frontier,
                            &mut best_node,
                            read,
                            &state,
                            &mut trail,
                            stack.last().map_or(NONE, |f| f.trail),
                            max_paths,
                            true,
                        ),
                    }
                } else if !dead_end {
                    cursor = if phase == 0 {
                        next[node as usize]
                    } else {
                        heads.next[op]
                    };
                    continue;
                }
            }
            // Stuck at a return entry: the op it closes should already be
            // linearized. Remember how far the search got.
            Err(at) if at != tail => note_stuck(
                p,
                &mut frontier,
                &mut best_node,
                at,
                &state,
                &mut trail,
                stack.last().map_or(NONE, |f| f.trail),
                max_paths,
                false,
            ),
            // Defensive: the list always holds a return entry while
            // `remaining > 0`, so the tail is never reached.
            Err(_) => {}
        }
        // Backtrack: undo the last step, and every forced step under it.
        loop {
            let Some(f) = stack.pop() else {
                frontier.paths = trail.paths();
                break 'search Found::NotLinearizable {
                    configs: cache.configs,
                    frontier,
                };
            };
            trail.pop(f.trail);
            state = f.prev_state;
            let e = p.entries[f.node as usize - 1];
            let op = e.op as usize;
            zh ^= zobrist[op];
            (lo, hi, crashed) = (f.prev_lo, f.prev_hi, f.prev_crashed);
            if e.ret != 0 {
                settled[op >> 6] ^= 1 << (op & 63);
                // Put the entries back, in the reverse order of lifting.
                let r = e.ret as usize;
                next[prev[r] as usize] = r as u32;
                prev[next[r] as usize] = r as u32;
                let c = f.node as usize;
                next[prev[c] as usize] = c as u32;
                prev[next[c] as usize] = c as u32;
                remaining += 1;
            } else {
                heads.retreat(op as u32, next_same[op]);
            }
            if f.forced {
                continue;
            }
            phase = f.phase;
            bound = f.bound;
            let here = if phase == 0 { f.node } else { op as u32 };
            if f.many {
                cursor = here;
                start_alt = f.alt + 1;
            } else {
                cursor = if phase == 0 {
                    next[here as usize]
                } else {
                    heads.next[op]
                };
                start_alt = 0;
            }
            break;
        }
    };
    budget.memory_used.fetch_sub(reported, Ordering::Relaxed);
    result
}

/// When the last step (`top`) linearized a crashed op, the states the
/// crashed op `op` leaves applied instead of it, in the state before it.
/// Linearizing `op` now to reach one of them is dominated: the
/// configuration before that step linearizes `op` itself (or an equal op,
/// which comes first in its class) and reaches the same state, with the
/// same completed ops and one crashed op fewer. Without it, a run of
/// crashed ops that overwrite each other (writes of a register) was walked
/// in every order and every subset before the configurations with each
/// alone, which dominate them, were visited.
fn shortcut<M: Model>(
    model: &M,
    p: &Problem<M::Op>,
    top: Option<&Frame<M::State>>,
    op: &M::Op,
) -> Option<smallvec::SmallVec<[M::State; 2]>> {
    let top = top?;
    // A read-only op is left alone: it changes no state, and a legal one
    // skipped here would read as a dead end (see `dead_end`).
    if p.entries[top.node as usize - 1].ret != 0 || model.read_only(op) {
        return None;
    }
    match model.step(&top.prev_state, op) {
        Next::Illegal => None,
        Next::One(s) => Some(smallvec::smallvec![s]),
        Next::Many(alts) => Some(alts.into_iter().collect()),
    }
}

/// Remembers that the search, in `state` after the ops on the trail up
/// to step `top`, could not pass the return entry at list node `node`
/// (`pruned`: growth pruning says it never will), if that is as far as it
/// has got.
#[allow(clippy::too_many_arguments)]
fn note_stuck<O, S: Clone + PartialEq>(
    p: &Problem<O>,
    frontier: &mut Frontier<S>,
    best_node: &mut u32,
    node: u32,
    state: &S,
    trail: &mut Trail<S>,
    top: u32,
    max_paths: usize,
    pruned: bool,
) {
    if node > *best_node {
        *best_node = node;
        frontier.stuck_op = p.entries[node as usize - 1].op;
        frontier.states.clear();
        trail.forget_paths();
        frontier.more_states = false;
        frontier.pruned_here = false;
    }
    if node == *best_node {
        frontier.pruned_here |= pruned;
    }
    if node == *best_node && !frontier.states.contains(state) {
        if frontier.states.len() < MAX_FRONTIER_STATES {
            frontier.states.push(state.clone());
            if trail.ends.len() < max_paths {
                trail.keep_path(top);
            }
        } else {
            frontier.more_states = true;
        }
    }
}

/// One step of the trail: the op, the state after it, and the step
/// before it (`NONE` for the first).
struct TrailStep<S> {
    before: u32,
    op: u32,
    after: S,
}

/// The steps of the orders the search walks, so that a counterexample's
/// final paths can be read back at the end. Copying the stack whenever
/// the frontier moved cost O(depth) each time, quadratic on a long valid
/// history; here recording a path is O(1). Steps of the current order sit
/// below those of any order tried after it, so a popped step is dropped
/// unless a kept path still needs it (below `pinned`).
struct Trail<S> {
    steps: Vec<TrailStep<S>>,
    /// Steps below this index may belong to a kept path.
    pinned: usize,
    /// The last step of each kept path (`NONE`: the empty path).
    ends: Vec<u32>,
}

impl<S: Clone> Trail<S> {
    fn push(&mut self, before: u32, op: u32, after: S) -> u32 {
        self.steps.push(TrailStep { before, op, after });
        self.steps.len() as u32 - 1
    }

    /// Drops step `at` (and everything after it) unless a kept path needs it.
    fn pop(&mut self, at: u32) {
        if at as usize >= self.pinned {
            self.steps.truncate(at as usize);
        }
    }

    fn keep_path(&mut self, end: u32) {
        self.ends.push(end);
        if end != NONE {
            self.pinned = self.pinned.max(end as usize + 1);
        }
    }

    fn forget_paths(&mut self) {
        self.ends.clear();
        self.pinned = 0;
    }

    /// The kept paths, each as (op, state after it) from the first step.
    fn paths(&self) -> Vec<Vec<(u32, S)>> {
        self.ends
            .iter()
            .map(|&end| {
                let mut path = Vec::new();
                let mut at = end;
                while at != NONE {
                    let step = &self.steps[at as usize];
                    path.push((step.op, step.after.clone()));
                    at = step.before;
                }
                path.reverse();
                path
            })
            .collect()
    }
}

/// The list node of the first call, before the first return entry, of a
/// read-only op that is legal in `state`. Such an op is linearized at
/// once and nothing else is tried there (see [`Model::read_only`]): the
/// configuration succeeds exactly when the one after the read does. So
/// the search takes it before any write in front of it in the list,
/// instead of first walking the writes' subtrees, which fail whenever the
/// read had to come before them. With many processes those subtrees held
/// most of the configurations visited.
fn first_legal_read<M: Model>(
    model: &M,
    p: &Problem<M::Op>,
    next: &[u32],
    state: &M::State,
) -> Option<u32> {
    let tail = p.entries.len() as u32 + 1;
    let mut node = next[0];
    while node != tail {
        let e = p.entries[node as usize - 1];
        if !e.is_call {
            return None;
        }
        let op = &p.ops[e.op as usize];
        if model.read_only(op) && !matches!(model.step(state, op), Next::Illegal) {
            return Some(node);
        }
        node = next[node as usize];
    }
    None
}

/// How far ahead [`cannot_grow`] looks, in list entries.
const LOOKAHEAD: usize = 64;

/// The list node of the return of a read that is still to be linearized
/// but no longer can be: walking the list from its head, while every call
/// met only grows the state or leaves it (so any state before the read's
/// return is `state` grown), a read's return whose result `state` cannot
/// grow into. Pending crashed ops count as calls met at their call entry.
fn cannot_grow<M: Model>(
    model: &M,
    p: &Problem<M::Op>,
    next: &[u32],
    heads: &Heads,
    call_node: &[u32],
    passes: &[bool],
    state: &M::State,
) -> Option<u32> {
    let tail = p.entries.len() as u32 + 1;
    // The first crashed op that may be linearized and does not pass (equal
    // ops pass alike, so a class's first op stands for the class); past
    // the look-ahead, the last one looked at.
    let mut blocked_at = u32::MAX;
    let mut h = heads.first();
    for _ in 0..LOOKAHEAD {
        if h == heads.end {
            break;
        }
        blocked_at = call_node[h as usize];
        if !passes[h as usize] {
            break;
        }
        h = heads.next[h as usize];
    }
    if h == heads.end {
        blocked_at = u32::MAX;
    }
    let mut node = next[0];
    for _ in 0..LOOKAHEAD {
        if node == tail || node > blocked_at {
            break;
        }
        let e = p.entries[node as usize - 1];
        let op = e.op as usize;
        if e.is_call {
            if !passes[op] {
                break;
            }
        } else if model.read_only(&p.ops[op]) && !model.may_grow_into(state, &p.ops[op]) {
            return Some(node);
        }
        node = next[node as usize];
    }
    None
}

#[cfg(test)]
mod growth_tests {
    //! Growth pruning against the plain search on one set history: twelve
    //! concurrent adds, and a read concurrent with them that saw only the
    //! last one.
    use super::*;
    use crate::model::{Set, SetOp};
    use std::sync::Arc;

    const K: u32 = 12;

    /// Adds 0..K called at 0..K and returning at 100+; the read called at
    /// K, returning at 99 with `read`.
    fn problem(read: &[u32]) -> Problem<SetOp> {
        let mut ops: Vec<SetOp> = (0..K).map(SetOp::Add).collect();
        let mut spans: Vec<(usize, Option<usize>)> =
            (0..K as usize).map(|i| (i, Some(100 + i))).collect();
        ops.push(SetOp::Read(Arc::from(read)));
        spans.push((K as usize, Some(99)));
        Problem::new(ops, &spans)
    }

    fn run(p: &Problem<SetOp>, growth_pruning: bool) -> Found<Arc<[u32]>> {
        let (used, cancel, stop) = (
            AtomicUsize::new(0),
            AtomicBool::new(false),
            AtomicBool::new(false),
        );
        let budget = Budget {
            deadline: None,
            time_limit_text: String::new(),
            memory_used: &used,
            memory_limit: usize::MAX,
            resident: None,
            cancel: &cancel,
            stop: &stop,
        };
        let tactics = Tactics {
            growth_pruning,
            max_configs: None,
        };
        search(&Set, p, &budget, 4, tactics)
    }

    #[test]
    fn pruning_finds_the_same_linearization_in_far_fewer_configurations() {
        let p = problem(&[K - 1]);
        let (Found::Linearizable { configs: pruned }, Found::Linearizable { configs: plain }) =
            (run(&p, true), run(&p, false))
        else {
            panic!("both searches must find the history linearizable");
        };
        // Without pruning every subset of the other adds is tried before
        // the read's return is met; with it, each wrong first add is
        // dropped at once.
        assert!(plain >= 1 << (K - 1), "plain search visited {plain}");
        assert!(pruned < 4 * K as u64, "pruned search visited {pruned}");
    }

    #[test]
    fn pruning_agrees_on_invalid_and_marks_its_frontier() {
        // The read saw an element nobody added: no state grows into it.
        let p = problem(&[K]);
        let Found::NotLinearizable { frontier, .. } = run(&p, true) else {
            panic!("pruned search must find the history invalid");
        };
        let Found::NotLinearizable {
            frontier: exact, ..
        } = run(&p, false)
        else {
            panic!("plain search must find the history invalid");
        };
        // Both stop at the read; only the pruned one says some order was cut.
        assert_eq!(frontier.stuck_op, K);
        assert_eq!(exact.stuck_op, K);
        assert!(frontier.pruned_here);
        assert!(!exact.pruned_here);
    }
}

#[cfg(test)]
mod reduction_tests {
    //! The two reductions against histories where, without them, the
    //! search visits every subset of a dozen ops.
    use super::*;
    use crate::model::{Register, RegisterOp};

    const K: u32 = 12;

    fn run(p: &Problem<RegisterOp>) -> Found<u32> {
        let (used, cancel, stop) = (
            AtomicUsize::new(0),
            AtomicBool::new(false),
            AtomicBool::new(false),
        );
        let budget = Budget {
            deadline: None,
            time_limit_text: String::new(),
            memory_used: &used,
            memory_limit: usize::MAX,
            resident: None,
            cancel: &cancel,
            stop: &stop,
        };
        let tactics = Tactics {
            growth_pruning: false,
            max_configs: None,
        };
        search(&Register, p, &budget, 4, tactics)
    }

    #[test]
    fn a_legal_read_goes_before_the_writes_in_front_of_it() {
        // Writes 1..=K called at 0..K and returning at 100+; a read of nil
        // called at K and returning last, at 200. The writes come first
        // in the list (they return sooner), but the read must precede
        // them all: tried after them, it fails only once every order of
        // the writes has been walked.
        let mut ops: Vec<RegisterOp> = (1..=K).map(RegisterOp::Write).collect();
        let mut spans: Vec<(usize, Option<usize>)> =
            (0..K as usize).map(|i| (i, Some(100 + i))).collect();
        ops.push(RegisterOp::Read(0));
        spans.push((K as usize, Some(200)));
        let Found::Linearizable { configs } = run(&Problem::new(ops, &spans)) else {
            panic!("the read first, then the writes, is a linearization");
        };
        assert!(configs <= 2 * K as u64 + 2, "visited {configs}");
    }

    #[test]
    fn configurations_with_a_superset_of_a_visited_ones_crashed_ops_are_skipped() {
        // K crashed writes of 1..=K pending from the start, then write
        // 100, write 101 and a read of 100, stale: the search must
        // exhaust every order. Any chain of crashed writes ending with
        // the write of i leaves i, as the write of i alone does, with
        // more crashed ops used: each is dominated by the one-op set.
        // Skipping only configurations whose crashed set less its last
        // op was visited leaves every chain: K * 2^(K-1) and more.
        let mut ops: Vec<RegisterOp> = (1..=K).map(RegisterOp::Write).collect();
        let mut spans: Vec<(usize, Option<usize>)> = (0..K as usize).map(|i| (i, None)).collect();
        let t = K as usize;
        ops.push(RegisterOp::Write(100));
        spans.push((t, Some(t + 1)));
        ops.push(RegisterOp::Write(101));
        spans.push((t + 2, Some(t + 3)));
        ops.push(RegisterOp::Read(100));
        spans.push((t + 4, Some(t + 5)));
        let Found::NotLinearizable { configs, frontier } = run(&Problem::new(ops, &spans)) else {
            panic!("the read of 100 is stale");
        };
        assert_eq!(frontier.stuck_op, K + 2);
        // At the read: 101, or any crashed write applied after it.
        let mut states = frontier.states.clone();
        states.sort_unstable();
        let expected: Vec<u32> = (1..=K).chain([101]).collect();
        assert_eq!(states, expected);
        // Per stretch between completed ops (4 of them): the state with
        // no crashed op, and one configuration per crashed write (nil, 100
        // or 101 left with any chain is reached by its last write alone).
        assert!(configs <= 4 * (1 + K as u64), "visited {configs}");
    }

    #[test]
    fn configurations_with_more_crashed_ops_than_a_visited_one_are_skipped() {
        // K crashed cas nil -> i pending from the start, then ten
        // sequential writes of 100 each read back, then a read of 99,
        // which nothing wrote: the search must exhaust every order. Any
        // one crashed cas may go first; the first write then leaves 100
        // whether it went or not, so the configuration with it is
        // dominated by the one without. Without the skip each of the K
        // would be walked through the whole history: K * 21 and more.
        let mut ops: Vec<RegisterOp> = (1..=K)
            .map(|to| RegisterOp::CasUnknown { from: 0, to })
            .collect();
        let mut spans: Vec<(usize, Option<usize>)> = (0..K as usize).map(|i| (i, None)).collect();
        let mut t = K as usize;
        for _ in 0..10 {
            ops.push(RegisterOp::Write(100));
            spans.push((t, Some(t + 1)));
            ops.push(RegisterOp::Read(100));
            spans.push((t + 2, Some(t + 3)));
            t += 4;
        }
        ops.push(RegisterOp::Read(99));
        spans.push((t, Some(t + 1)));
        let Found::NotLinearizable { configs, frontier } = run(&Problem::new(ops, &spans)) else {
            panic!("nothing wrote 99");
        };
        assert_eq!(frontier.stuck_op, K + 20);
        assert_eq!(frontier.states, vec![100]);
        assert!(configs <= 1 + 2 * K as u64 + 21, "visited {configs}");
    }
}
