//! Generators: what the test does next.
//!
//! A [`Generator`] is asked, again and again, for the next operation given a
//! [`Context`] (the time, which workers are free), and answers with an
//! operation to invoke, "nothing yet" (until a time, or until something
//! completes), or "done". It hears every invocation and completion through
//! [`Generator::update`]. This is Jepsen's generator protocol, made mutable:
//! a generator is a state machine the runner owns and drives from one task,
//! so it needs no locks and, fed the same seed, emits the same operations.
//!
//! Small generators compose: [`combinators`] holds limits, time limits,
//! rate limiting (stagger), weighted mixes, phases and routing to workers or
//! the nemesis; [`independent`] spreads a per-key generator over many keys,
//! a few at a time; [`values`] draws op kinds, keys and values from seeded
//! distributions.

pub mod combinators;
pub mod independent;
pub mod values;

pub use combinators::{
    any, each_worker, from_fn, limit, mix, on_clients, on_nemesis, once, phases, rate, repeat, seq,
    stagger, time_limit,
};
pub use independent::Independent;
pub use values::{rng, Dist, OpMix, ValueShape};

use crate::history::Op;
use serde_json::Value;

/// What the runner tells a generator when it asks for the next operation.
#[derive(Clone, Debug)]
pub struct Context {
    /// Nanoseconds since the test started, from a monotonic clock.
    pub time: u64,
    /// `free[w]` is true when client worker `w` has no operation in flight.
    free: Vec<bool>,
    /// How many entries of `free` are true (kept so asking is O(1)).
    free_count: usize,
    /// True when a nemesis takes part in this run.
    pub has_nemesis: bool,
    /// True when the nemesis (if any) has no operation in flight.
    pub nemesis_free: bool,
}

impl Context {
    /// A context at time 0 with `workers` free client workers and, when
    /// `has_nemesis`, a free nemesis.
    pub fn new(workers: usize, has_nemesis: bool) -> Context {
        Context {
            time: 0,
            free: vec![true; workers],
            free_count: workers,
            has_nemesis,
            nemesis_free: has_nemesis,
        }
    }

    /// Number of client workers (each a logical process at a time).
    pub fn workers(&self) -> usize {
        self.free.len()
    }

    /// True when client worker `w` has nothing in flight.
    pub fn is_free(&self, w: usize) -> bool {
        self.free.get(w).copied().unwrap_or(false)
    }

    /// Number of client workers with nothing in flight.
    pub fn free_count(&self) -> usize {
        self.free_count
    }

    /// The client workers with nothing in flight, lowest first.
    pub fn free_workers(&self) -> impl Iterator<Item = usize> + '_ {
        self.free
            .iter()
            .enumerate()
            .filter(|(_, f)| **f)
            .map(|(w, _)| w)
    }

    /// The first free client worker at or after `start` (wrapping around).
    pub fn free_worker_from(&self, start: usize) -> Option<usize> {
        let n = self.free.len();
        if self.free_count == 0 || n == 0 {
            return None;
        }
        (0..n).map(|i| (start + i) % n).find(|w| self.free[*w])
    }

    /// True when no worker and no nemesis has anything in flight.
    pub fn all_idle(&self) -> bool {
        self.free_count == self.free.len() && (!self.has_nemesis || self.nemesis_free)
    }

    /// Marks client worker `w` busy (`false`) or free (`true`).
    pub fn set_free(&mut self, w: usize, free: bool) {
        if let Some(slot) = self.free.get_mut(w) {
            if *slot != free {
                *slot = free;
                if free {
                    self.free_count += 1;
                } else {
                    self.free_count -= 1;
                }
            }
        }
    }

    /// The worker that runs (or ran) a client process: processes of worker
    /// `w` are `w`, `w + workers`, `w + 2·workers`, ... (Jepsen's rule for
    /// giving a worker a fresh process after an indeterminate operation).
    pub fn worker_of(&self, process: u64) -> Option<usize> {
        let n = self.free.len() as u64;
        (n > 0).then(|| (process % n) as usize)
    }
}

/// Who should perform an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Target {
    /// Any free client worker.
    #[default]
    Client,
    /// This client worker (for per-worker phases such as final reads).
    Worker(usize),
    /// The nemesis.
    Nemesis,
}

/// An operation a generator wants invoked; the runner adds the process, the
/// index and the time when it records the invocation.
#[derive(Clone, Debug, PartialEq)]
pub struct OpSpec {
    /// The function: `read`, `write`, `cas`, `add`, `start-partition`, ...
    pub f: String,
    /// The argument.
    pub value: Value,
    /// The key, for workloads over independent keys.
    pub key: Option<Value>,
    /// Who should perform it.
    pub target: Target,
    /// How long it may take before it is recorded `info`, when it is not
    /// the run's operation timeout (a lock acquire may wait out a fault).
    pub timeout: Option<std::time::Duration>,
}

impl OpSpec {
    /// An operation with no key, for any client worker.
    pub fn new(f: impl Into<String>, value: Value) -> OpSpec {
        OpSpec {
            f: f.into(),
            value,
            key: None,
            target: Target::Client,
            timeout: None,
        }
    }

    /// The same operation on key `key`.
    pub fn with_key(mut self, key: Value) -> OpSpec {
        self.key = Some(key);
        self
    }

    /// The same operation for `target`.
    pub fn with_target(mut self, target: Target) -> OpSpec {
        self.target = target;
        self
    }

    /// The same operation, allowed `timeout` instead of the run's
    /// operation timeout when that is shorter.
    pub fn with_timeout(mut self, timeout: std::time::Duration) -> OpSpec {
        self.timeout = Some(timeout);
        self
    }
}

/// A generator's answer.
#[derive(Clone, Debug, PartialEq)]
pub enum Emit {
    /// Invoke this operation now.
    Invoke(OpSpec),
    /// Nothing to do yet: ask again at this time (ns since test start) or
    /// when an operation completes, whichever comes first; `None` means only
    /// when something completes (or after a short poll interval).
    Pending(Option<u64>),
    /// Nothing more, ever.
    Done,
}

impl Emit {
    /// The earlier of two pending answers (`None` means "no time limit").
    pub(crate) fn earliest(a: Option<u64>, b: Option<u64>) -> Option<u64> {
        match (a, b) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, None) => x,
            (None, y) => y,
        }
    }
}

/// What to do next: Jepsen's generator protocol.
///
/// The runner calls [`next`](Generator::next) whenever some worker (or the
/// nemesis) is free, and [`update`](Generator::update) with every event it
/// records — invocations and completions alike — so that generators can
/// react to results (per-key concurrency, phases, until-ok).
pub trait Generator: Send {
    /// The next operation, `Pending` or `Done`.
    fn next(&mut self, ctx: &Context) -> Emit;

    /// Hears an event the runner has just recorded. The default ignores it.
    fn update(&mut self, _ctx: &Context, _event: &Op) {}
}

impl<G: Generator + ?Sized> Generator for Box<G> {
    fn next(&mut self, ctx: &Context) -> Emit {
        (**self).next(ctx)
    }

    fn update(&mut self, ctx: &Context, event: &Op) {
        (**self).update(ctx, event)
    }
}

/// Drains a generator without running anything, as a runner with `workers`
/// always-free workers would: each call of `next` sees the same time,
/// advanced by `tick` ns after every answer, and every invocation completes
/// `ok` at once. For tests and for printing what a workload would do.
pub fn simulate(gen: &mut dyn Generator, workers: usize, tick: u64, max_ops: usize) -> Vec<OpSpec> {
    use crate::history::{OpType, Process};
    let mut ctx = Context::new(workers.max(1), false);
    let mut out = Vec::new();
    let mut idle_rounds = 0;
    while out.len() < max_ops {
        match gen.next(&ctx) {
            Emit::Invoke(spec) => {
                idle_rounds = 0;
                let w = match spec.target {
                    Target::Worker(w) => w,
                    _ => ctx.free_workers().next().unwrap_or(0),
                };
                let mut op = Op::new(
                    0,
                    Process::Client(w as u64),
                    OpType::Invoke,
                    spec.f.clone(),
                    spec.value.clone(),
                );
                op.key = spec.key.clone();
                gen.update(&ctx, &op);
                op.kind = OpType::Ok;
                gen.update(&ctx, &op);
                out.push(spec);
                ctx.time += tick;
            }
            Emit::Pending(until) => {
                idle_rounds += 1;
                if idle_rounds > 1_000_000 {
                    break;
                }
                ctx.time = match until {
                    Some(t) if t > ctx.time => t,
                    _ => ctx.time + tick.max(1),
                };
            }
            Emit::Done => break,
        }
    }
    out
}

#[cfg(test)]
mod tests;
