//! The search for a linearization: Wing & Gong's algorithm with Lowe's
//! memoization of (linearized set, model state), over a doubly linked list
//! of call and return entries.
//!
//! The list holds every not-yet-linearized operation's call entry and, for
//! operations that completed, its return entry, in history order. From the
//! head, any call entry met before the first return entry may be
//! linearized next; meeting a return entry means the operation it closes
//! should already have been linearized, so the search backtracks.
//!
//! Operations whose outcome is unknown (`info`) have no return entry: they
//! may be linearized at any point after their call, or never. The search
//! succeeds once every completed operation is linearized. This is the
//! native reading of `info` — no fake return at "infinity".
//!
//! The linearized set is a bitset with a Zobrist hash kept up to date in
//! O(1) per step; the cache stores each set once in an arena of words.

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
    /// Set to stop every search from outside (Ctrl-C).
    pub cancel: &'a AtomicBool,
    /// Set when a partition was found invalid and the others should stop.
    pub stop: &'a AtomicBool,
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
    pub paths: Vec<Vec<(u32, S)>>,
}

/// What the search found.
pub(crate) enum Found<S> {
    Linearizable { configs: u64 },
    NotLinearizable { configs: u64, frontier: Frontier<S> },
    Unknown { configs: u64, reason: String },
}

const MAX_FRONTIER_STATES: usize = 64;

struct Slot<S> {
    hash: u64,
    off: usize,
    state: S,
}

/// The memo of visited configurations.
struct Cache<S> {
    table: HashTable<Slot<S>>,
    arena: Vec<u64>,
    words: usize,
    /// Heap bytes owned by the stored states, as the model counts them.
    heap: usize,
}

impl<S: Eq + Clone> Cache<S> {
    /// Inserts the configuration; false if it was already there.
    fn insert_if_new(
        &mut self,
        hash: u64,
        bits: &[u64],
        state: &S,
        heap: impl FnOnce(&S) -> usize,
    ) -> bool {
        let (arena, w) = (&self.arena, self.words);
        if self
            .table
            .find(hash, |s| {
                s.hash == hash && s.state == *state && arena[s.off..s.off + w] == *bits
            })
            .is_some()
        {
            return false;
        }
        let off = self.arena.len();
        self.arena.extend_from_slice(bits);
        self.heap += heap(state);
        self.table.insert_unique(
            hash,
            Slot {
                hash,
                off,
                state: state.clone(),
            },
            |s| s.hash,
        );
        true
    }

    fn bytes(&self) -> usize {
        self.heap
            + self.arena.capacity() * 8
            + self.table.capacity() * (std::mem::size_of::<Slot<S>>() + 1)
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

struct Frame<S> {
    node: u32,
    prev_state: S,
    alt: u32,
    many: bool,
    /// A read-only op linearized as soon as it was legal: if nothing
    /// follows from there, nothing follows from the frame below either.
    forced: bool,
    /// The scan phase the op was found in.
    phase: u8,
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

/// Searches for a linearization of `p` under `model`.
pub(crate) fn search<M: Model>(
    model: &M,
    p: &Problem<M::Op>,
    budget: &Budget<'_>,
    max_paths: usize,
    tactics: Tactics,
) -> Found<M::State> {
    let n = p.entries.len();
    let tail = n as u32 + 1;
    let mut next: Vec<u32> = (1..=n as u32 + 1).collect();
    next.push(tail);
    let mut prev: Vec<u32> = std::iter::once(0).chain(0..=n as u32).collect();
    let words = p.ops.len().div_ceil(64).max(1);
    let mut bits = vec![0u64; words];
    let zobrist: Vec<u64> = (0..p.ops.len() as u64).map(splitmix).collect();
    let mut zh = 0u64;
    let mut remaining = p.required.iter().filter(|r| **r).count();
    // Unknown-outcome ops not yet linearized: when none is left, the
    // second scan phase would find nothing, so it is skipped.
    let mut unknown_left = p.required.len() - remaining;
    let mut state = model.init();
    let mut stack: Vec<Frame<M::State>> = Vec::new();
    // Most searches visit thousands of configurations: start there rather
    // than rehash the table through every small size.
    let initial = (p.ops.len() * 8).clamp(64, 1 << 14);
    let mut cache = Cache {
        table: HashTable::with_capacity(initial),
        arena: Vec::with_capacity(initial * words),
        words,
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
    cache.insert_if_new(zh ^ state_hash(&state), &bits, &state, heap);

    let mut frontier = Frontier {
        stuck_op: 0,
        states: Vec::new(),
        more_states: false,
        pruned_here: false,
        paths: Vec::new(),
    };
    let mut best_node = 0u32;
    let mut reported = 0usize;
    let mut steps = 0u64;
    let mut node = next[0];
    let mut start_alt = 0u32;
    // Each scan of the candidates runs twice: first over completed ops,
    // then over ops whose outcome is unknown. Trying "not yet" for the
    // unknown ones first finds linearizations of valid histories sooner.
    let mut phase = 0u8;

    let result = 'search: loop {
        if remaining == 0 {
            break 'search Found::Linearizable {
                configs: cache.table.len() as u64,
            };
        }
        steps += 1;
        if steps & 0xFFF == 0 {
            let bytes = cache.bytes() + stack.capacity() * std::mem::size_of::<Frame<M::State>>();
            if bytes >= reported {
                budget
                    .memory_used
                    .fetch_add(bytes - reported, Ordering::Relaxed);
            } else {
                budget
                    .memory_used
                    .fetch_sub(reported - bytes, Ordering::Relaxed);
            }
            reported = bytes;
            let configs = cache.table.len() as u64;
            if budget.memory_used.load(Ordering::Relaxed) > budget.memory_limit {
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

        let entry = if node == tail {
            None
        } else {
            Some(p.entries[node as usize - 1])
        };
        match entry {
            Some(e)
                if e.is_call
                    && (e.ret == 0) == (phase == 1)
                    && (p.prev_same[e.op as usize] == NONE || {
                        let y = p.prev_same[e.op as usize] as usize;
                        bits[y >> 6] & (1 << (y & 63)) != 0
                    }) =>
            {
                let op = e.op as usize;
                let read_only = model.read_only(&p.ops[op]);
                let mut advanced = false;
                let mut dead_end = false;
                let mut try_state =
                    |s: M::State, alt: u32, many: bool, state: &mut M::State| -> bool {
                        bits[op >> 6] ^= 1 << (op & 63);
                        zh ^= zobrist[op];
                        if cache.insert_if_new(zh ^ state_hash(&s), &bits, &s, heap) {
                            let prev_state = std::mem::replace(state, s);
                            stack.push(Frame {
                                node,
                                prev_state,
                                alt,
                                many,
                                forced: read_only,
                                phase,
                            });
                            true
                        } else {
                            bits[op >> 6] ^= 1 << (op & 63);
                            zh ^= zobrist[op];
                            false
                        }
                    };
                match model.step(&state, &p.ops[op]) {
                    Next::Illegal => {}
                    Next::One(s) => {
                        if start_alt == 0 {
                            advanced = try_state(s, 0, false, &mut state);
                            // A legal read-only op whose successor was already
                            // explored: this configuration is explored too.
                            dead_end = read_only && !advanced;
                        }
                    }
                    Next::Many(alts) => {
                        for (a, s) in alts.into_iter().enumerate().skip(start_alt as usize) {
                            if try_state(s, a as u32, true, &mut state) {
                                advanced = true;
                                break;
                            }
                        }
                    }
                }
                if advanced {
                    // Lift the call entry and its return entry out of the list.
                    let c = node as usize;
                    next[prev[c] as usize] = next[c];
                    prev[next[c] as usize] = prev[c];
                    if e.ret != 0 {
                        let r = e.ret as usize;
                        next[prev[r] as usize] = next[r];
                        prev[next[r] as usize] = prev[r];
                        remaining -= 1;
                    } else {
                        unknown_left -= 1;
                    }
                    start_alt = 0;
                    let doomed = if growth {
                        cannot_grow(model, p, &next, &passes, &state)
                    } else {
                        None
                    };
                    match doomed {
                        None => {
                            node = next[0];
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
                            &stack,
                            max_paths,
                            true,
                        ),
                    }
                } else {
                    start_alt = 0;
                    if !dead_end {
                        node = next[node as usize];
                        continue;
                    }
                }
            }
            // A call of the other phase: not now.
            Some(e) if e.is_call => {
                node = next[node as usize];
                continue;
            }
            // The end of the completed ops' candidates: now the unknown ones.
            _ if phase == 0 && unknown_left > 0 => {
                phase = 1;
                node = next[0];
                continue;
            }
            Some(_) => {
                // Stuck at a return entry: the op it closes should already
                // be linearized. Remember how far the search got.
                note_stuck(
                    p,
                    &mut frontier,
                    &mut best_node,
                    node,
                    &state,
                    &stack,
                    max_paths,
                    false,
                );
            }
            // Defensive: the list always holds a return entry while
            // `remaining > 0`, so the tail is never reached.
            None => {}
        }
        // Backtrack: undo the last step, and every forced step under it.
        loop {
            let Some(f) = stack.pop() else {
                break 'search Found::NotLinearizable {
                    configs: cache.table.len() as u64,
                    frontier,
                };
            };
            state = f.prev_state;
            let e = p.entries[f.node as usize - 1];
            let op = e.op as usize;
            bits[op >> 6] ^= 1 << (op & 63);
            zh ^= zobrist[op];
            // Put the entries back, in the reverse order of lifting.
            if e.ret != 0 {
                let r = e.ret as usize;
                next[prev[r] as usize] = r as u32;
                prev[next[r] as usize] = r as u32;
                remaining += 1;
            } else {
                unknown_left += 1;
            }
            let c = f.node as usize;
            next[prev[c] as usize] = c as u32;
            prev[next[c] as usize] = c as u32;
            if f.forced {
                continue;
            }
            phase = f.phase;
            if f.many {
                node = f.node;
                start_alt = f.alt + 1;
            } else {
                node = next[c];
                start_alt = 0;
            }
            break;
        }
    };
    budget.memory_used.fetch_sub(reported, Ordering::Relaxed);
    result
}

/// Remembers that the search, in `state` after the ops on `stack`, could
/// not pass the return entry at list node `node` (`pruned`: growth pruning
/// says it never will), if that is as far as it has got.
#[allow(clippy::too_many_arguments)]
fn note_stuck<O, S: Clone + PartialEq>(
    p: &Problem<O>,
    frontier: &mut Frontier<S>,
    best_node: &mut u32,
    node: u32,
    state: &S,
    stack: &[Frame<S>],
    max_paths: usize,
    pruned: bool,
) {
    if node > *best_node {
        *best_node = node;
        frontier.stuck_op = p.entries[node as usize - 1].op;
        frontier.states.clear();
        frontier.paths.clear();
        frontier.more_states = false;
        frontier.pruned_here = false;
    }
    if node == *best_node {
        frontier.pruned_here |= pruned;
    }
    if node == *best_node && !frontier.states.contains(state) {
        if frontier.states.len() < MAX_FRONTIER_STATES {
            frontier.states.push(state.clone());
            if frontier.paths.len() < max_paths {
                frontier.paths.push(path_of(p, stack, state));
            }
        } else {
            frontier.more_states = true;
        }
    }
}

/// How far ahead [`cannot_grow`] looks, in list entries.
const LOOKAHEAD: usize = 64;

/// The list node of the return of a read that is still to be linearized
/// but no longer can be: walking the list from its head, while every call
/// met only grows the state or leaves it (so any state before the read's
/// return is `state` grown), a read's return whose result `state` cannot
/// grow into.
fn cannot_grow<M: Model>(
    model: &M,
    p: &Problem<M::Op>,
    next: &[u32],
    passes: &[bool],
    state: &M::State,
) -> Option<u32> {
    let tail = p.entries.len() as u32 + 1;
    let mut node = next[0];
    for _ in 0..LOOKAHEAD {
        if node == tail {
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

/// The linearization on the stack, with the state after each step.
fn path_of<O, S: Clone>(p: &Problem<O>, stack: &[Frame<S>], current: &S) -> Vec<(u32, S)> {
    stack
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let after = stack
                .get(i + 1)
                .map(|g| g.prev_state.clone())
                .unwrap_or_else(|| current.clone());
            (p.entries[f.node as usize - 1].op, after)
        })
        .collect()
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
