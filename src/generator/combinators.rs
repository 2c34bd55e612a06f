//! Generator combinators: each wraps one or more generators and changes
//! how many, when, by whom or in what order their operations are invoked.
//!
//! Named after Jepsen's (`limit`, `once`, `time-limit`, `stagger`, `mix`,
//! `any`, `phases`, `each-thread`, `clients`, `nemesis`), with one change
//! forced by mutability: a generator that was asked has committed to its
//! answer, so `any` takes the first child with an operation rather than the
//! one whose operation is soonest.

use super::{Context, Emit, Generator, OpSpec, Target};
use crate::history::Op;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::VecDeque;

/// A generator from a closure, called with the context each time.
pub struct FromFn<F>(F);

/// A generator that calls `f(ctx)` for every answer.
pub fn from_fn<F: FnMut(&Context) -> Emit + Send>(f: F) -> FromFn<F> {
    FromFn(f)
}

impl<F: FnMut(&Context) -> Emit + Send> Generator for FromFn<F> {
    fn next(&mut self, ctx: &Context) -> Emit {
        (self.0)(ctx)
    }
}

/// The same operation forever.
pub struct Repeat(OpSpec);

/// A generator that invokes `op` forever (bound it with [`limit`] or
/// [`time_limit`]).
pub fn repeat(op: OpSpec) -> Repeat {
    Repeat(op)
}

impl Generator for Repeat {
    fn next(&mut self, _ctx: &Context) -> Emit {
        Emit::Invoke(self.0.clone())
    }
}

/// At most `n` operations of the inner generator.
pub struct Limit<G> {
    remaining: u64,
    inner: G,
}

/// The first `n` operations of `inner`, then done.
pub fn limit<G: Generator>(n: u64, inner: G) -> Limit<G> {
    Limit {
        remaining: n,
        inner,
    }
}

/// The first operation of `inner`, then done.
pub fn once<G: Generator>(inner: G) -> Limit<G> {
    limit(1, inner)
}

impl<G: Generator> Generator for Limit<G> {
    fn next(&mut self, ctx: &Context) -> Emit {
        if self.remaining == 0 {
            return Emit::Done;
        }
        let n = self.inner.next(ctx);
        if matches!(n, Emit::Invoke(_)) {
            self.remaining -= 1;
        }
        n
    }

    fn update(&mut self, ctx: &Context, event: &Op) {
        self.inner.update(ctx, event)
    }
}

/// The inner generator until a time has passed since it was first asked.
pub struct TimeLimit<G> {
    limit_ns: u64,
    deadline: Option<u64>,
    inner: G,
}

/// `inner` for `limit_ns` nanoseconds counted from the first time it is
/// asked (so a time-limited phase after another gets its full time).
pub fn time_limit<G: Generator>(limit_ns: u64, inner: G) -> TimeLimit<G> {
    TimeLimit {
        limit_ns,
        deadline: None,
        inner,
    }
}

impl<G: Generator> Generator for TimeLimit<G> {
    fn next(&mut self, ctx: &Context) -> Emit {
        let deadline = *self
            .deadline
            .get_or_insert(ctx.time.saturating_add(self.limit_ns));
        if ctx.time >= deadline {
            return Emit::Done;
        }
        match self.inner.next(ctx) {
            // Wake up at the deadline at the latest, so that a run that is
            // waiting on a slow generator still ends on time.
            Emit::Pending(until) => {
                Emit::Pending(Some(until.map_or(deadline, |t| t.min(deadline))))
            }
            other => other,
        }
    }

    fn update(&mut self, ctx: &Context, event: &Op) {
        self.inner.update(ctx, event)
    }
}

/// How far behind schedule a [`Stagger`] may fall and still catch up.
pub const CATCH_UP_NS: u64 = 10_000_000;

/// Spaces the inner generator's operations by random intervals.
pub struct Stagger<G> {
    mean_ns: u64,
    jitter: f64,
    next_at: Option<u64>,
    rng: ChaCha8Rng,
    inner: G,
}

/// Spaces `inner`'s operations by intervals drawn uniformly from
/// `[mean·(1−jitter), mean·(1+jitter)]` (`jitter` in 0..=1; Jepsen's
/// `stagger` is `jitter = 1`), over all workers together. The intervals
/// come from their own `rng` so the operations themselves do not depend on
/// timing.
pub fn stagger<G: Generator>(mean_ns: u64, jitter: f64, rng: ChaCha8Rng, inner: G) -> Stagger<G> {
    Stagger {
        mean_ns,
        jitter: jitter.clamp(0.0, 1.0),
        next_at: None,
        rng,
        inner,
    }
}

/// At most about `ops_per_sec` operations per second overall, staggered
/// with full jitter (Jepsen's `(stagger (/ rate))`). A rate of 0 or less
/// is no limit.
pub fn rate<G: Generator>(ops_per_sec: f64, rng: ChaCha8Rng, inner: G) -> Stagger<G> {
    let mean = if ops_per_sec > 0.0 {
        (1e9 / ops_per_sec) as u64
    } else {
        0
    };
    stagger(mean, 1.0, rng, inner)
}

impl<G: Generator> Generator for Stagger<G> {
    fn next(&mut self, ctx: &Context) -> Emit {
        if let Some(t) = self.next_at {
            if ctx.time < t {
                return Emit::Pending(Some(t));
            }
        }
        let n = self.inner.next(ctx);
        if matches!(n, Emit::Invoke(_)) && self.mean_ns > 0 {
            // Schedule from the planned time, not from now, so wake-up
            // latency (tokio's timer ticks in whole milliseconds) does not
            // lower the rate: ops that fell due meanwhile go at once. But
            // when we are further behind than CATCH_UP (or one interval,
            // if longer) — all workers were busy — start afresh from now
            // rather than fire a burst to catch up.
            let window = self.mean_ns.max(CATCH_UP_NS);
            let base = match self.next_at {
                Some(t) if ctx.time - t < window => t,
                _ => ctx.time,
            };
            let lo = self.mean_ns as f64 * (1.0 - self.jitter);
            let hi = self.mean_ns as f64 * (1.0 + self.jitter);
            let dt = if hi > lo {
                self.rng.random_range(lo..hi)
            } else {
                lo
            };
            self.next_at = Some(base + dt as u64);
        }
        n
    }

    fn update(&mut self, ctx: &Context, event: &Op) {
        self.inner.update(ctx, event)
    }
}

/// Generators one after another, without waiting in between.
pub struct Seq {
    gens: VecDeque<Box<dyn Generator>>,
}

/// Each generator until it is done, then the next (Jepsen's `concat`).
pub fn seq(gens: Vec<Box<dyn Generator>>) -> Seq {
    Seq { gens: gens.into() }
}

impl Generator for Seq {
    fn next(&mut self, ctx: &Context) -> Emit {
        while let Some(g) = self.gens.front_mut() {
            match g.next(ctx) {
                Emit::Done => {
                    self.gens.pop_front();
                }
                other => return other,
            }
        }
        Emit::Done
    }

    fn update(&mut self, ctx: &Context, event: &Op) {
        if let Some(g) = self.gens.front_mut() {
            g.update(ctx, event)
        }
    }
}

/// Generators one after another, each starting once everything the one
/// before invoked has completed.
pub struct Phases {
    gens: VecDeque<Box<dyn Generator>>,
    /// True once the current phase is done and we wait for quiet.
    draining: bool,
}

/// Each generator until it is done and every operation in flight has
/// completed, then the next (Jepsen's `phases`): main work, then heal, then
/// final reads.
pub fn phases(gens: Vec<Box<dyn Generator>>) -> Phases {
    Phases {
        gens: gens.into(),
        draining: false,
    }
}

impl Generator for Phases {
    fn next(&mut self, ctx: &Context) -> Emit {
        loop {
            if self.draining {
                if !ctx.all_idle() {
                    return Emit::Pending(None);
                }
                self.draining = false;
                self.gens.pop_front();
            }
            let Some(g) = self.gens.front_mut() else {
                return Emit::Done;
            };
            match g.next(ctx) {
                Emit::Done => self.draining = true,
                other => return other,
            }
        }
    }

    fn update(&mut self, ctx: &Context, event: &Op) {
        if let Some(g) = self.gens.front_mut() {
            g.update(ctx, event)
        }
    }
}

/// A weighted random choice among generators for every operation.
pub struct Mix {
    gens: Vec<(u32, Box<dyn Generator>)>,
    rng: ChaCha8Rng,
}

/// For each operation, one of `gens` chosen at random in proportion to its
/// weight; a generator that is done leaves the mix; done when all are.
/// Zero weights are never chosen and do not keep the mix alive.
pub fn mix(gens: Vec<(u32, Box<dyn Generator>)>, rng: ChaCha8Rng) -> Mix {
    Mix {
        gens: gens.into_iter().filter(|(w, _)| *w > 0).collect(),
        rng,
    }
}

impl Generator for Mix {
    fn next(&mut self, ctx: &Context) -> Emit {
        loop {
            let total: u64 = self.gens.iter().map(|(w, _)| u64::from(*w)).sum();
            if total == 0 {
                return Emit::Done;
            }
            let mut pick = self.rng.random_range(0..total);
            let mut i = 0;
            while pick >= u64::from(self.gens[i].0) {
                pick -= u64::from(self.gens[i].0);
                i += 1;
            }
            match self.gens[i].1.next(ctx) {
                Emit::Done => {
                    self.gens.remove(i);
                }
                other => return other,
            }
        }
    }

    fn update(&mut self, ctx: &Context, event: &Op) {
        for (_, g) in &mut self.gens {
            g.update(ctx, event)
        }
    }
}

/// The first of several generators that has an operation.
pub struct Any {
    gens: Vec<Box<dyn Generator>>,
    cursor: usize,
}

/// Asks `gens` in turn, starting after the one that answered last, and
/// invokes the first operation offered; pending until the earliest time any
/// of them names; done when all are. Used to run the client generator and
/// the nemesis generator side by side.
pub fn any(gens: Vec<Box<dyn Generator>>) -> Any {
    Any { gens, cursor: 0 }
}

impl Generator for Any {
    fn next(&mut self, ctx: &Context) -> Emit {
        // Pending children that name no time wait for a completion; the
        // answer is the earliest time any child named, so timed ones (a
        // nemesis schedule) stay on time.
        let mut until: Option<u64> = None;
        let mut i = 0;
        while i < self.gens.len() {
            let k = (self.cursor + i) % self.gens.len();
            match self.gens[k].next(ctx) {
                Emit::Invoke(op) => {
                    self.cursor = (k + 1) % self.gens.len();
                    return Emit::Invoke(op);
                }
                Emit::Pending(t) => {
                    until = Emit::earliest(until, t);
                    i += 1;
                }
                Emit::Done => {
                    // The next child slides into position k; keep asking
                    // the ones not yet asked (i stays).
                    self.gens.remove(k);
                    if k < self.cursor {
                        self.cursor -= 1;
                    }
                    if self.gens.is_empty() {
                        return Emit::Done;
                    }
                    self.cursor %= self.gens.len();
                }
            }
        }
        Emit::Pending(until)
    }

    fn update(&mut self, ctx: &Context, event: &Op) {
        for g in &mut self.gens {
            g.update(ctx, event)
        }
    }
}

/// Operations only while a client worker is free.
pub struct OnClients<G>(G);

/// `inner`, asked only while some client worker is free, so that it never
/// blocks a sibling (such as the nemesis generator) inside [`any`].
pub fn on_clients<G: Generator>(inner: G) -> OnClients<G> {
    OnClients(inner)
}

impl<G: Generator> Generator for OnClients<G> {
    fn next(&mut self, ctx: &Context) -> Emit {
        if ctx.free_count() == 0 {
            return Emit::Pending(None);
        }
        self.0.next(ctx)
    }

    fn update(&mut self, ctx: &Context, event: &Op) {
        if event.is_client() {
            self.0.update(ctx, event)
        }
    }
}

/// Operations for the nemesis.
pub struct OnNemesis<G>(G);

/// `inner`'s operations, sent to the nemesis and asked for only while the
/// nemesis is free; it hears only nemesis events.
pub fn on_nemesis<G: Generator>(inner: G) -> OnNemesis<G> {
    OnNemesis(inner)
}

impl<G: Generator> Generator for OnNemesis<G> {
    fn next(&mut self, ctx: &Context) -> Emit {
        if !ctx.has_nemesis {
            return Emit::Done;
        }
        if !ctx.nemesis_free {
            return Emit::Pending(None);
        }
        match self.0.next(ctx) {
            Emit::Invoke(op) => Emit::Invoke(op.with_target(Target::Nemesis)),
            other => other,
        }
    }

    fn update(&mut self, ctx: &Context, event: &Op) {
        if !event.is_client() {
            self.0.update(ctx, event)
        }
    }
}

/// A copy of a generator for every client worker.
pub struct EachWorker {
    make: Box<dyn FnMut(usize) -> Box<dyn Generator> + Send>,
    gens: Vec<Option<Box<dyn Generator>>>,
}

/// Gives every client worker its own generator `make(worker)` and runs each
/// on its worker only (Jepsen's `each-thread`): `each_worker(|_| once(read))`
/// is one final read per worker. Done when every worker's is.
pub fn each_worker<F>(make: F) -> EachWorker
where
    F: FnMut(usize) -> Box<dyn Generator> + Send + 'static,
{
    EachWorker {
        make: Box::new(make),
        gens: Vec::new(),
    }
}

impl Generator for EachWorker {
    fn next(&mut self, ctx: &Context) -> Emit {
        if self.gens.is_empty() {
            self.gens = (0..ctx.workers()).map(|w| Some((self.make)(w))).collect();
        }
        let mut until = None;
        let mut live = false;
        for w in 0..self.gens.len() {
            let Some(g) = self.gens[w].as_mut() else {
                continue;
            };
            if !ctx.is_free(w) {
                live = true;
                continue;
            }
            match g.next(ctx) {
                Emit::Invoke(op) => return Emit::Invoke(op.with_target(Target::Worker(w))),
                Emit::Pending(t) => {
                    live = true;
                    until = Emit::earliest(until, t);
                }
                Emit::Done => self.gens[w] = None,
            }
        }
        if live {
            Emit::Pending(until)
        } else {
            Emit::Done
        }
    }

    fn update(&mut self, ctx: &Context, event: &Op) {
        if let crate::history::Process::Client(p) = event.process {
            if let Some(Some(g)) = ctx.worker_of(p).and_then(|w| self.gens.get_mut(w)) {
                g.update(ctx, event)
            }
        }
    }
}
