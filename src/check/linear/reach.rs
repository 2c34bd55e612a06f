//! A proof of non-linearizability that needs no search: an operation that
//! is illegal in every state the operations called before its return
//! could leave, in any order at all.
//!
//! Walking the key's entries in history order, [`impossible_op`] keeps
//! the closure of the initial state under every state-changing operation
//! called so far (completed or crashed), each applied in any state it is
//! legal in, any number of times. Whatever order a linearization takes,
//! the state an operation is applied in comes from the initial state
//! through operations linearized before it, each called before that
//! point and so before its return: it is in the closure at its return.
//! An operation illegal in every state of that closure is in no
//! linearization, for any model (only [`Model::init`], [`Model::step`]
//! and [`Model::read_only`] are used). The closure is an
//! over-approximation (real time between the earlier operations and how
//! often each may apply are ignored), so this proves only what it finds:
//! typically a read of a value nothing could have written. That is the
//! case the search is worst at: it must walk every order of the
//! operations before the read before it can give up on it, which on a
//! long single-key history with many processes fills any memory.
//!
//! The closure stays small for registers and mutexes (one state per value
//! written). Where it does not (sets, queues, appends), the walk gives up
//! at [`MAX_STATES`] states or [`MAX_GENERATORS`] distinct operations and
//! proves nothing.

use super::search::{Frontier, Problem};
use crate::model::{Model, Next};
use rustc_hash::FxHashSet;

/// The most states the closure may reach before the walk gives up.
pub(crate) const MAX_STATES: usize = 256;

/// The most distinct state-changing operations the walk keeps before it
/// gives up (each new state is stepped by every one of them).
pub(crate) const MAX_GENERATORS: usize = 128;

/// How many of the closure's states a counterexample lists.
const LISTED_STATES: usize = 64;

/// The first operation, in order of return, that is illegal in every state
/// the operations called before its return could leave (see the module
/// comment), as a frontier: the op, and the closure's states there. None
/// when every completed operation is legal somewhere in its closure, or
/// when the closure grew too large to tell.
pub(crate) fn impossible_op<M: Model>(model: &M, p: &Problem<M::Op>) -> Option<Frontier<M::State>> {
    let mut closure = Closure::new(model);
    for e in &p.entries {
        let op = &p.ops[e.op as usize];
        if e.is_call {
            closure.add(op)?;
            continue;
        }
        let legal = closure
            .states
            .iter()
            .any(|s| !matches!(model.step(s, op), Next::Illegal));
        if !legal {
            return Some(Frontier {
                stuck_op: e.op,
                states: closure.states.iter().take(LISTED_STATES).cloned().collect(),
                more_states: closure.states.len() > LISTED_STATES,
                pruned_here: false,
                over_approximated: true,
                paths: Vec::new(),
            });
        }
    }
    None
}

/// Every state the initial one can reach by the state-changing ops among
/// `ops`, applied in any order, any number of times: a superset of the
/// states any linearization can pass through. None past [`MAX_STATES`]
/// states or [`MAX_GENERATORS`] distinct ops.
pub(crate) fn universe<M: Model>(model: &M, ops: &[M::Op]) -> Option<Vec<M::State>> {
    let mut closure = Closure::new(model);
    for op in ops {
        closure.add(op)?;
    }
    Some(closure.states)
}

/// The states reachable from the initial one by the generators.
struct Closure<'m, M: Model> {
    model: &'m M,
    generators: Vec<M::Op>,
    states: Vec<M::State>,
    seen: FxHashSet<M::State>,
    /// `states[..stepped]` have been stepped by every generator but the
    /// newest; the others by none yet.
    stepped: usize,
}

impl<'m, M: Model> Closure<'m, M> {
    /// The initial state alone, no generator yet.
    fn new(model: &'m M) -> Self {
        let mut closure = Closure {
            model,
            generators: Vec::new(),
            states: vec![model.init()],
            seen: FxHashSet::default(),
            stepped: 0,
        };
        closure.seen.insert(model.init());
        closure
    }

    /// Takes `op` as a generator when it changes the state and is new, and
    /// saturates. None past [`MAX_GENERATORS`] generators or
    /// [`MAX_STATES`] states.
    fn add(&mut self, op: &M::Op) -> Option<()> {
        if self.model.read_only(op) || self.generators.contains(op) {
            return Some(());
        }
        if self.generators.len() == MAX_GENERATORS {
            return None;
        }
        self.generators.push(op.clone());
        self.saturate()
    }

    /// Adds what the newest generator reaches from the states stepped so
    /// far, and what every generator reaches from each new state. None
    /// when the closure passes [`MAX_STATES`].
    fn saturate(&mut self) -> Option<()> {
        let newest = self.generators.len() - 1;
        for i in 0..self.stepped {
            self.add_successors(i, newest..newest + 1)?;
        }
        while self.stepped < self.states.len() {
            self.add_successors(self.stepped, 0..self.generators.len())?;
            self.stepped += 1;
        }
        Some(())
    }

    fn add_successors(&mut self, state: usize, generators: std::ops::Range<usize>) -> Option<()> {
        for g in generators {
            let next = match self.model.step(&self.states[state], &self.generators[g]) {
                Next::Illegal => continue,
                Next::One(s) => smallvec::smallvec![s],
                Next::Many(alts) => smallvec::SmallVec::<[M::State; 2]>::from_vec(alts),
            };
            for s in next {
                if !self.seen.contains(&s) {
                    if self.states.len() == MAX_STATES {
                        return None;
                    }
                    self.seen.insert(s.clone());
                    self.states.push(s);
                }
            }
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CasRegister, RegisterOp, Set, SetOp};
    use std::sync::Arc;

    /// The ops with spans `(call, return)`; `None`: crashed.
    fn problem<O: PartialEq>(ops: Vec<(O, usize, Option<usize>)>) -> Problem<O> {
        let spans: Vec<(usize, Option<usize>)> = ops.iter().map(|o| (o.1, o.2)).collect();
        Problem::new(ops.into_iter().map(|o| o.0).collect(), &spans)
    }

    #[test]
    fn a_read_of_a_value_nothing_wrote_is_impossible_and_lists_what_could_be() {
        use RegisterOp::*;
        let p = problem(vec![
            (Write(1), 0, Some(1)),
            (Cas { from: 1, to: 2 }, 2, Some(3)),
            (Read(9), 4, Some(5)),
        ]);
        let f = impossible_op(&CasRegister::default(), &p).expect("read of 9 is impossible");
        assert_eq!(f.stuck_op, 2);
        let mut states = f.states.clone();
        states.sort_unstable();
        // nil (0), then 1 from the write, then 2 from the cas.
        assert_eq!(states, vec![0, 1, 2]);
        assert!(f.over_approximated && !f.more_states && f.paths.is_empty());
    }

    #[test]
    fn a_crashed_write_makes_its_value_possible() {
        use RegisterOp::*;
        let p = problem(vec![(Write(9), 0, None), (Read(9), 4, Some(5))]);
        assert!(impossible_op(&CasRegister::default(), &p).is_none());
    }

    #[test]
    fn a_write_called_after_the_read_returned_cannot_explain_it() {
        use RegisterOp::*;
        let p = problem(vec![(Read(9), 0, Some(1)), (Write(9), 2, Some(3))]);
        let f = impossible_op(&CasRegister::default(), &p).expect("the write came too late");
        assert_eq!(f.stuck_op, 0);
        assert_eq!(f.states, vec![0]);
        // Concurrent with the read, the write may explain it.
        let p = problem(vec![(Read(9), 0, Some(3)), (Write(9), 1, Some(2))]);
        assert!(impossible_op(&CasRegister::default(), &p).is_none());
    }

    #[test]
    fn a_successful_cas_from_a_value_never_there_is_impossible() {
        use RegisterOp::*;
        let p = problem(vec![
            (Write(1), 0, Some(1)),
            (Cas { from: 3, to: 4 }, 2, Some(3)),
        ]);
        let f = impossible_op(&CasRegister::default(), &p).expect("nothing left 3");
        assert_eq!(f.stuck_op, 1);
    }

    #[test]
    fn a_stale_read_of_a_value_written_is_left_to_the_search() {
        use RegisterOp::*;
        let p = problem(vec![
            (Write(1), 0, Some(1)),
            (Write(2), 2, Some(3)),
            (Read(1), 4, Some(5)),
        ]);
        assert!(impossible_op(&CasRegister::default(), &p).is_none());
    }

    #[test]
    fn a_closure_too_large_to_hold_proves_nothing() {
        // Ten adds reach 1,024 sets, past the bound; the read of an element
        // nobody added would be impossible, but the walk has given up.
        let mut ops: Vec<(SetOp, usize, Option<usize>)> = (0..10)
            .map(|i| (SetOp::Add(i), i as usize, Some(100)))
            .collect();
        ops.push((SetOp::Read(Arc::from(&[99u32][..])), 200, Some(201)));
        assert!(impossible_op(&Set, &problem(ops)).is_none());
        // With three adds it holds the 8 sets, and proves the read impossible.
        let mut ops: Vec<(SetOp, usize, Option<usize>)> = (0..3)
            .map(|i| (SetOp::Add(i), i as usize, Some(100)))
            .collect();
        ops.push((SetOp::Read(Arc::from(&[99u32][..])), 200, Some(201)));
        let f = impossible_op(&Set, &problem(ops)).expect("nobody added 99");
        assert_eq!(f.stuck_op, 3);
        assert_eq!(f.states.len(), 8);
    }
}
