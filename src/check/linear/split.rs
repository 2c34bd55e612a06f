//! The search split at every return: the history walked once, in order,
//! carrying the set of configurations that can hold at each point (Lowe's
//! just-in-time linearization). A stale read in the middle of a long
//! history is then rejected when the set empties at its return, in memory
//! that follows what is in flight at each point, instead of after every
//! order of everything before it.
//!
//! A configuration is (model state, the completed ops in flight already
//! linearized, the crashed ops used so far). At a return of a completed
//! op `o`, every configuration that has not linearized `o` is extended by
//! any ops in flight (completed ones not yet linearized, crashed ones
//! called and not used) in any order, then by `o`; the configurations
//! after `o` are the next set, and `o` leaves the ops in flight. Ops
//! linearized after `o` are left to later returns: any linearization can
//! be cut at each return after the last op it puts before that return, so
//! nothing is lost (a completed op must be linearized before its return;
//! an op linearized before a return was called before it). The set
//! empties exactly when no linearization passes `o`'s return: `o` is then
//! the stuck op, and the states of the configurations extended there are
//! every state the ops before it can leave.
//!
//! At a quiescent point (no completed op in flight) a configuration is
//! just a state and the crashed ops still available: the history splits
//! there, and the set carried across is the one the issue asks for. Fail
//! ops are never here (the models leave them out when decoding).
//!
//! Crashed ops, the soundness of what is carried:
//! - A crashed op (`info`) called before a point may be linearized at any
//!   later point or never; after its call only its description matters.
//!   Equal crashed ops form a class, and a configuration keeps how many of
//!   each class it used ([`Used`]), not which: two configurations that
//!   used different members of one class have the same futures.
//! - A configuration dominates another with the same state and linearized
//!   ops in flight when its available crashed ops can stand in for the
//!   other's, one for one: each op of the other matched to a distinct one
//!   of its own, equal or [standing in](Classes::stand_ins) for it (in
//!   every state the history's ops can reach, each state the other can
//!   change it to, it can too: a register's write of 2 stands in for its
//!   compare-and-set from 5 to 2). Whatever follows the dominated one can
//!   follow the dominating one, with the stand-ins in place of the ops it
//!   used, so only undominated configurations are kept. Having more
//!   crashed ops left is the plain case of it.
//! - Without stand-ins the kept sets grow with every read explained by a
//!   crashed op (a write of the value or a compare-and-set to it, both
//!   kept), and the choices multiply; with them the compare-and-set is
//!   used and the write kept. On the bench's 10,000-op histories with a
//!   stale read in the middle, stand-ins took the verdict from 5.0 s to
//!   0.5 s (3 processes) and from 24.3 s to 2.2 s (10 processes).
//! - A configuration also dominates one that differs from it only by
//!   fewer reads in flight linearized (whatever follows without a read
//!   follows with it), so a read in flight legal in a configuration's
//!   state is linearized at once ([`settle`]).
//! - A crashed op that leaves the state as it was is never applied: it
//!   would only use it up.
//!
//! The depth-first search ([`super::search`]) is much faster on valid
//! histories (a first version of this one, run on every history, had not
//! finished the bench's 300,000-op, 20-process one after 10 minutes); it
//! calls this one, for a bounded number of configurations, once it has
//! gone long without getting deeper, so a long history that would make
//! it walk every order before an invalid op gets its verdict here.

use super::search::{Budget, Found, Frontier, Problem, NONE};
use crate::model::{Model, Next};
use rustc_hash::FxHashMap;
use smallvec::SmallVec;
use std::hash::Hash;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// How many crashed ops of each class a configuration used: (class,
/// count), sorted by class, counts above zero.
pub(super) type Used = SmallVec<[(u32, u32); 4]>;

/// The most completed ops in flight at once this search handles (one bit
/// each); past it, it leaves the history to the depth-first search.
const MAX_IN_FLIGHT: u32 = 128;

/// The most classes of crashed ops for which stand-ins are worked out
/// (one bit each).
const MAX_STAND_IN_CLASSES: usize = 64;

/// How many of the states at the stuck op a frontier lists.
const LISTED_STATES: usize = 64;

/// The classes of equal crashed ops that can change the state.
pub(super) struct Classes {
    /// The class of each op: `NONE` for completed ops and for crashed ops
    /// that never change the state.
    pub(super) of_op: Vec<u32>,
    /// One op of each class.
    rep: Vec<u32>,
    /// For each class, the classes (bits) whose ops stand in for its ops:
    /// in every state the history's ops can reach, each state its op can
    /// change that state to, theirs can too (a register's write of 2 for
    /// its compare-and-set from 5 to 2, crashed or not). Empty when the states could not be
    /// enumerated or there are too many classes.
    stand_ins: Vec<u64>,
}

impl Classes {
    pub(super) fn new<M: Model>(model: &M, p: &Problem<M::Op>) -> Classes {
        let universe = super::reach::universe(model, &p.ops);
        let successors = |s: &M::State, op: &M::Op| -> SmallVec<[M::State; 2]> {
            match model.step(s, op) {
                Next::Illegal => SmallVec::new(),
                Next::One(t) => smallvec::smallvec![t],
                Next::Many(alts) => alts.into_iter().collect(),
            }
        };
        let mut of_op = vec![NONE; p.ops.len()];
        let mut rep: Vec<u32> = Vec::new();
        for (i, op) in p.ops.iter().enumerate() {
            if p.required[i] || model.read_only(op) {
                continue;
            }
            // An equal op before it (`prev_same` points back) has its class.
            of_op[i] = match p.prev_same[i] {
                NONE => {
                    rep.push(i as u32);
                    rep.len() as u32 - 1
                }
                before => of_op[before as usize],
            };
        }
        // Classes that leave every reachable state as it was are no use.
        let useless: Vec<bool> = rep
            .iter()
            .map(|&r| {
                let op = &p.ops[r as usize];
                universe.as_ref().is_some_and(|states| {
                    states
                        .iter()
                        .all(|s| successors(s, op).iter().all(|t| t == s))
                })
            })
            .collect();
        for class in of_op.iter_mut() {
            if *class != NONE && useless[*class as usize] {
                *class = NONE;
            }
        }
        let mut stand_ins = Vec::new();
        if let Some(states) = universe.filter(|_| rep.len() <= MAX_STAND_IN_CLASSES) {
            let table: Vec<Vec<SmallVec<[M::State; 2]>>> = rep
                .iter()
                .map(|&r| {
                    states
                        .iter()
                        .map(|s| successors(s, &p.ops[r as usize]))
                        .collect()
                })
                .collect();
            stand_ins = (0..rep.len())
                .map(|b| {
                    let mut mask = 0u64;
                    for a in (0..rep.len()).filter(|&a| a != b && !useless[a] && !useless[b]) {
                        // Leaving the state as it was is never taken
                        // (see `search`), so only the changes must match.
                        let covers = (0..states.len()).all(|s| {
                            table[b][s]
                                .iter()
                                .all(|t| *t == states[s] || table[a][s].contains(t))
                        });
                        if covers {
                            mask |= 1 << a;
                        }
                    }
                    mask
                })
                .collect();
        }
        Classes {
            of_op,
            rep,
            stand_ins,
        }
    }

    /// True when a configuration that used `a` dominates one (same state
    /// and linearized ops in flight) that used `b`: each crashed op still
    /// available to `b` can be matched to a distinct one still available
    /// to `a`, equal or standing in for it.
    pub(super) fn dominates(&self, a: &Used, b: &Used) -> bool {
        // `a` used more of a class than `b`: those of `b`'s need stand-ins
        // (`short`); `a` used fewer: those of `a`'s are spare (`spare`).
        let mut short: SmallVec<[(u32, u32); 4]> = SmallVec::new();
        let mut spare: SmallVec<[(u32, u32); 4]> = SmallVec::new();
        let (mut i, mut j) = (0, 0);
        while i < a.len() || j < b.len() {
            let ca = a.get(i).map_or(u32::MAX, |x| x.0);
            let cb = b.get(j).map_or(u32::MAX, |x| x.0);
            if ca < cb {
                short.push(a[i]);
                i += 1;
            } else if cb < ca {
                spare.push(b[j]);
                j += 1;
            } else {
                let (na, nb) = (a[i].1, b[j].1);
                if na > nb {
                    short.push((ca, na - nb));
                } else if nb > na {
                    spare.push((ca, nb - na));
                }
                i += 1;
                j += 1;
            }
        }
        if short.is_empty() {
            return true;
        }
        if self.stand_ins.is_empty() {
            return false;
        }
        let needed: u32 = short.iter().map(|s| s.1).sum();
        let available: u32 = spare.iter().map(|s| s.1).sum();
        if needed > available {
            return false;
        }
        // A matching of every short op to a spare one standing in for it
        // (Kuhn's augmenting paths, over units: the counts are small).
        let units: Vec<u32> = short
            .iter()
            .flat_map(|&(c, n)| std::iter::repeat(c).take(n as usize))
            .collect();
        let mut load: Vec<Vec<usize>> = vec![Vec::new(); spare.len()];
        for u in 0..units.len() {
            let mut seen = vec![false; spare.len()];
            if !self.augment(u, &units, &spare, &mut load, &mut seen) {
                return false;
            }
        }
        true
    }

    fn augment(
        &self,
        u: usize,
        units: &[u32],
        spare: &[(u32, u32)],
        load: &mut [Vec<usize>],
        seen: &mut [bool],
    ) -> bool {
        let fits = self.stand_ins[units[u] as usize];
        for k in 0..spare.len() {
            if seen[k] || fits & (1 << spare[k].0) == 0 {
                continue;
            }
            seen[k] = true;
            if load[k].len() < spare[k].1 as usize {
                load[k].push(u);
                return true;
            }
            for slot in 0..load[k].len() {
                let other = load[k][slot];
                if self.augment(other, units, spare, load, seen) {
                    load[k][slot] = u;
                    return true;
                }
            }
        }
        false
    }
}

/// How many of `class` `used` holds.
fn count(used: &Used, class: u32) -> u32 {
    used.iter().find(|x| x.0 == class).map_or(0, |x| x.1)
}

/// `used` with one more of `class`.
fn with(used: &Used, class: u32) -> Used {
    let mut out = used.clone();
    match out.binary_search_by_key(&class, |x| x.0) {
        Ok(i) => out[i].1 += 1,
        Err(i) => out.insert(i, (class, 1)),
    }
    out
}

/// Configurations by state and linearized ops in flight that change the
/// state, each key holding the (linearized ops in flight, crashed-op
/// uses) no other there dominates. A read-only op linearized is never a
/// loss (whatever follows without it follows with it, less the read), so
/// a configuration dominates another that differs from it by more reads
/// linearized and dominated uses.
type Antichains<S> = FxHashMap<(S, u128), SmallVec<[(u128, Used); 1]>>;

/// Adds a configuration unless one there dominates it, dropping those it
/// dominates; `reads` are the slots of read-only ops in flight. True when
/// it was added.
fn insert<S: Hash + Eq>(
    map: &mut Antichains<S>,
    state: S,
    lin: u128,
    used: &Used,
    reads: u128,
    cl: &Classes,
) -> bool {
    let kept = map.entry((state, lin & !reads)).or_default();
    let covers = |a: &(u128, Used), b_lin: u128, b_used: &Used| {
        b_lin & !a.0 == 0 && cl.dominates(&a.1, b_used)
    };
    if kept.iter().any(|k| covers(k, lin, used)) {
        return false;
    }
    let new = (lin, used.clone());
    kept.retain(|k| !covers(&new, k.0, &k.1));
    kept.push(new);
    true
}

/// `lin` with every read-only op in flight (`reads`) that is legal in
/// `state` linearized, but `except`: the configuration with them
/// dominates the one without (see [`Antichains`]).
fn settle<M: Model>(
    model: &M,
    p: &Problem<M::Op>,
    slot_op: &[u32],
    state: &M::State,
    lin: u128,
    reads: u128,
    except: u128,
) -> u128 {
    let mut out = lin;
    let mut todo = reads & !lin & !except;
    while todo != 0 {
        let j = todo.trailing_zeros();
        todo &= todo - 1;
        let op = &p.ops[slot_op[j as usize] as usize];
        if !matches!(model.step(state, op), Next::Illegal) {
            out |= 1 << j;
        }
    }
    out
}

/// Walks `p` return by return (see the module comment). None when more
/// than [`MAX_IN_FLIGHT`] completed ops are in flight at once, or after
/// `max_configs` configurations; else the verdict, or unknown when the
/// budget ran out.
pub(crate) fn search<M: Model>(
    model: &M,
    p: &Problem<M::Op>,
    budget: &Budget<'_>,
    max_configs: u64,
) -> Option<Found<M::State>> {
    let classes = Classes::new(model, p);
    let mut called = vec![0u32; classes.rep.len()];
    // The classes called so far, in the order of their first call.
    let mut called_classes: Vec<u32> = Vec::new();
    let mut slot_of = vec![0u32; p.ops.len()];
    let mut slot_op: Vec<u32> = vec![NONE; MAX_IN_FLIGHT as usize];
    let mut in_flight: u128 = 0;
    // The slots of read-only ops in flight.
    let mut reads: u128 = 0;
    let mut current: Vec<(M::State, u128, Used)> = vec![(model.init(), 0, Used::new())];
    let mut configs: u64 = 0;
    let mut reported = 0usize;
    let entry_bytes = std::mem::size_of::<(M::State, u128, Used)>() + 16;
    let result = 'walk: {
        for e in &p.entries {
            let op = e.op as usize;
            if e.is_call {
                if e.ret == 0 {
                    let class = classes.of_op[op];
                    if class != NONE {
                        if called[class as usize] == 0 {
                            called_classes.push(class);
                        }
                        called[class as usize] += 1;
                    }
                } else {
                    let slot = (!in_flight).trailing_zeros();
                    if slot >= MAX_IN_FLIGHT {
                        break 'walk None;
                    }
                    in_flight |= 1 << slot;
                    if model.read_only(&p.ops[op]) {
                        reads |= 1 << slot;
                    } else {
                        reads &= !(1 << slot);
                    }
                    slot_of[op] = slot;
                    slot_op[slot as usize] = op as u32;
                }
                continue;
            }
            let bit = 1u128 << slot_of[op];
            in_flight &= !bit;
            reads &= !bit;
            let mut memo: Antichains<M::State> = FxHashMap::default();
            let mut after: Antichains<M::State> = FxHashMap::default();
            let mut stack: Vec<(M::State, u128, Used)> = Vec::new();
            for (state, lin, used) in current.drain(..) {
                if lin & bit != 0 {
                    insert(&mut after, state, lin & !bit, &used, reads, &classes);
                } else {
                    // Reads called since may be legal already.
                    let lin = settle(model, p, &slot_op, &state, lin, reads, bit);
                    if insert(&mut memo, state.clone(), lin, &used, reads, &classes) {
                        stack.push((state, lin, used));
                    }
                }
            }
            // The configurations reached before `o`, each extended by an op
            // in flight or by `o` (which ends its order here).
            while let Some((state, lin, used)) = stack.pop() {
                configs += 1;
                if configs > max_configs {
                    break 'walk None;
                }
                if configs & 0xFFF == 0 {
                    let bytes = (memo.len() + after.len() + stack.len()) * entry_bytes;
                    budget.report_bytes(&mut reported, bytes);
                    if let Some(reason) = out_of_budget(budget, configs) {
                        break 'walk Some(Found::Unknown { configs, reason });
                    }
                }
                for s in successors(model.step(&state, &p.ops[op])) {
                    let lin = settle(model, p, &slot_op, &s, lin, reads, 0);
                    insert(&mut after, s, lin, &used, reads, &classes);
                }
                let mut free = in_flight & !lin;
                while free != 0 {
                    let j = free.trailing_zeros();
                    free &= free - 1;
                    let x = &p.ops[slot_op[j as usize] as usize];
                    for s in successors(model.step(&state, x)) {
                        let next = settle(model, p, &slot_op, &s, lin | 1 << j, reads, bit);
                        if insert(&mut memo, s.clone(), next, &used, reads, &classes) {
                            stack.push((s, next, used.clone()));
                        }
                    }
                }
                for &class in &called_classes {
                    if count(&used, class) >= called[class as usize] {
                        continue;
                    }
                    let x = &p.ops[classes.rep[class as usize] as usize];
                    for s in successors(model.step(&state, x)) {
                        if s == state {
                            continue;
                        }
                        let more = with(&used, class);
                        let next = settle(model, p, &slot_op, &s, lin, reads, bit);
                        if insert(&mut memo, s.clone(), next, &more, reads, &classes) {
                            stack.push((s, next, more));
                        }
                    }
                }
            }
            if after.is_empty() {
                let mut states: Vec<M::State> = Vec::new();
                for (state, _) in memo.keys() {
                    if !states.contains(state) {
                        states.push(state.clone());
                    }
                }
                let more_states = states.len() > LISTED_STATES;
                states.truncate(LISTED_STATES);
                break 'walk Some(Found::NotLinearizable {
                    configs,
                    frontier: Frontier {
                        stuck_op: e.op,
                        states,
                        more_states,
                        pruned_here: false,
                        over_approximated: false,
                        paths: Vec::new(),
                    },
                });
            }
            for ((state, _), kept) in after {
                for (lin, used) in kept {
                    current.push((state.clone(), lin, used));
                }
            }
        }
        Some(Found::Linearizable { configs })
    };
    budget.memory_used.fetch_sub(reported, Ordering::Relaxed);
    result
}

fn successors<S>(next: Next<S>) -> SmallVec<[S; 2]> {
    match next {
        Next::Illegal => SmallVec::new(),
        Next::One(s) => smallvec::smallvec![s],
        Next::Many(alts) => alts.into_iter().collect(),
    }
}

/// Why the search must stop now, if it must.
fn out_of_budget(budget: &Budget<'_>, configs: u64) -> Option<String> {
    if budget.memory_in_use(0) > budget.memory_limit {
        return Some(format!(
            "memory budget of {} MiB reached after {configs} configurations",
            budget.memory_limit >> 20
        ));
    }
    if budget.deadline.is_some_and(|d| Instant::now() >= d) {
        return Some(format!(
            "time limit of {} reached after {configs} configurations",
            budget.time_limit_text
        ));
    }
    if budget.cancel.load(Ordering::Relaxed) {
        return Some("cancelled".into());
    }
    if budget.stop.load(Ordering::Relaxed) {
        return Some("not finished: another key was found invalid first".into());
    }
    None
}
