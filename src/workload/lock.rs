//! The lock-set workload (Jepsen's etcd `lock-set`): every worker takes
//! one lock, does one operation while it holds it — an `add` to a set
//! shared by every worker, whose read-modify-write takes a while, or a
//! `read` of that set — and releases the lock, over and over.
//!
//! Each worker cycles `acquire`, then one operation drawn from the
//! workload's `[ops]` mix, then `release`; an `acquire` that did not end
//! `ok` is tried again, so a worker works only while its client believes
//! it holds the lock. The lock operations are in the history, so the
//! `lock-set` checker (`check::lock_set`) sees every hold and the `mutex`
//! model can judge acquires and releases; the `[lock]` table says how long
//! the lock's lease lives and how long a read-modify-write takes.

use crate::generator::{Context, Emit, Generator, OpMix, OpSpec, Target};
use crate::history::{Op, OpType, Process};
use serde_json::Value;

/// The `[lock]` table of a workload file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockSpec {
    /// Seconds the lock's lease lives without a keep-alive (etcd's lease
    /// TTL); the holder keeps it alive while it holds the lock.
    pub ttl_s: u64,
    /// An `add` reads the shared set, sleeps a random 0 to this many
    /// milliseconds, then writes the set back with its element.
    pub max_sleep_ms: u64,
    /// Seconds an `acquire` may wait for the lock before it is recorded
    /// `info` (at least the run's operation timeout). Longer than a fault,
    /// so that a request queued on a paused or cut-off node can still be
    /// granted when the node comes back — how etcd's lock was seen to
    /// grant a held lock (docs/etcd-lock.md).
    pub acquire_timeout_s: u64,
}

impl Default for LockSpec {
    fn default() -> Self {
        LockSpec {
            ttl_s: 2,
            max_sleep_ms: 1000,
            acquire_timeout_s: 20,
        }
    }
}

/// Where one worker is in its cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// Next: take the lock.
    Acquire,
    /// Holding: next, one operation of the mix.
    Work,
    /// Worked: next, give the lock back.
    Release,
}

/// Each worker's cycle of acquire, work, release.
pub struct LockGen {
    mix: OpMix,
    /// Per worker; sized on the first call.
    steps: Vec<Step>,
    /// The worker to look at first, so every worker gets its turn.
    next_worker: usize,
    /// How long an acquire may wait.
    acquire_timeout: std::time::Duration,
    /// Nanoseconds after its first call at which the cycles wind down:
    /// no new acquire, and every holder releases (`None`: never).
    wind_down_after: Option<u64>,
    /// When the cycles wind down, once known.
    wind_down_at: Option<u64>,
}

impl LockGen {
    /// Cycles whose work is drawn from `mix`, each acquire allowed
    /// `acquire_timeout`.
    pub fn new(mix: OpMix, acquire_timeout: std::time::Duration) -> LockGen {
        LockGen {
            mix,
            steps: Vec::new(),
            next_worker: 0,
            acquire_timeout,
            wind_down_after: None,
            wind_down_at: None,
        }
    }

    /// How long an acquire may wait.
    pub fn acquire_timeout(&self) -> std::time::Duration {
        self.acquire_timeout
    }

    /// The same cycles, winding down `after_ns` after the first call: a
    /// worker that holds the lock then releases it (skipping its work) and
    /// no worker acquires again, so an acquire still waiting is granted
    /// and released rather than left to time out behind a holder that
    /// stopped — the main phase of a lock-set run ends with its lock free.
    pub fn winding_down_after(mut self, after_ns: u64) -> LockGen {
        self.wind_down_after = Some(after_ns);
        self
    }
}

impl LockGen {
    /// After the wind-down time: releases for the workers that hold the
    /// lock, waiting for those with an operation in flight, then done.
    fn wind_down(&mut self, ctx: &Context) -> Emit {
        for (w, step) in self.steps.iter_mut().enumerate() {
            if *step == Step::Work {
                *step = Step::Release;
            }
            if *step == Step::Release && ctx.is_free(w) {
                let op = OpSpec::new("release", Value::Null).with_target(Target::Worker(w));
                return Emit::Invoke(op);
            }
        }
        let busy = (0..self.steps.len()).any(|w| !ctx.is_free(w));
        if busy {
            Emit::Pending(None)
        } else {
            Emit::Done
        }
    }
}

impl Generator for LockGen {
    fn next(&mut self, ctx: &Context) -> Emit {
        if self.steps.len() != ctx.workers() {
            self.steps = vec![Step::Acquire; ctx.workers()];
        }
        if let Some(after) = self.wind_down_after {
            let at = *self
                .wind_down_at
                .get_or_insert(ctx.time.saturating_add(after));
            if ctx.time >= at {
                return self.wind_down(ctx);
            }
        }
        let Some(w) = ctx.free_worker_from(self.next_worker) else {
            return Emit::Pending(None);
        };
        self.next_worker = (w + 1) % ctx.workers().max(1);
        let op = match self.steps[w] {
            Step::Acquire => OpSpec::new("acquire", Value::Null).with_timeout(self.acquire_timeout),
            Step::Work => self.mix.draw(),
            Step::Release => OpSpec::new("release", Value::Null),
        };
        Emit::Invoke(op.with_target(Target::Worker(w)))
    }

    fn update(&mut self, ctx: &Context, event: &Op) {
        let winding_down = self.wind_down_at.is_some_and(|at| ctx.time >= at);
        let Process::Client(p) = event.process else {
            return;
        };
        if event.kind == OpType::Invoke {
            return;
        }
        let Some(step) = ctx.worker_of(p).and_then(|w| self.steps.get_mut(w)) else {
            return;
        };
        // The next step follows from the completion of this one. Any end
        // of the work, even `info`, leads to a release: the client still
        // holds the lock it took (an `info` retires the process, not the
        // client's lease), and only a recorded release may end a hold.
        *step = match (event.f.as_str(), event.kind) {
            // Winding down, a holder gives the lock back at once.
            ("acquire", OpType::Ok) if winding_down => Step::Release,
            ("acquire", OpType::Ok) => Step::Work,
            ("acquire", _) => Step::Acquire,
            ("release", _) => Step::Acquire,
            _ => Step::Release,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generator::{rng, Dist, ValueShape};
    use crate::history::Op;

    fn gen() -> LockGen {
        let mix = OpMix::new(
            vec![("add".into(), 1, ValueShape::One)],
            Dist::sequential(0),
            rng(1, 2),
        )
        .unwrap();
        LockGen::new(mix, std::time::Duration::from_secs(20))
    }

    fn done(process: u64, f: &str, kind: OpType) -> Op {
        Op::new(0, Process::Client(process), kind, f, Value::Null)
    }

    #[test]
    fn a_worker_cycles_acquire_add_release_and_retries_a_failed_acquire() {
        let mut g = gen();
        let mut ctx = Context::new(1, false);
        let mut fs = Vec::new();
        for outcome in [
            OpType::Fail, // acquire refused: acquire again
            OpType::Ok,   // acquire
            OpType::Ok,   // add
            OpType::Ok,   // release
            OpType::Info, // acquire unknown: acquire again (a new process)
        ] {
            let Emit::Invoke(op) = g.next(&ctx) else {
                panic!("expected an operation");
            };
            assert_eq!(op.target, Target::Worker(0));
            // Only an acquire may wait longer than the run's op timeout.
            let wait = (op.f == "acquire").then(|| std::time::Duration::from_secs(20));
            assert_eq!(op.timeout, wait, "{}", op.f);
            fs.push(op.f.clone());
            ctx.set_free(0, false);
            g.update(&ctx, &done(0, &op.f, outcome));
            ctx.set_free(0, true);
        }
        let Emit::Invoke(last) = g.next(&ctx) else {
            panic!("expected an operation");
        };
        fs.push(last.f);
        assert_eq!(
            fs,
            ["acquire", "acquire", "add", "release", "acquire", "acquire"]
        );
    }

    #[test]
    fn work_that_ended_info_is_still_followed_by_a_release() {
        let mut g = gen();
        let ctx = Context::new(2, false);
        // Worker 1 (process 1) took the lock; its add ended info, so its
        // next process (3) is worker 1 too and must release.
        g.next(&ctx);
        g.update(&ctx, &done(1, "acquire", OpType::Ok));
        g.update(&ctx, &done(1, "add", OpType::Info));
        let mut only_1 = Context::new(2, false);
        only_1.set_free(0, false);
        let Emit::Invoke(op) = g.next(&only_1) else {
            panic!("expected an operation");
        };
        assert_eq!((op.f.as_str(), op.target), ("release", Target::Worker(1)));
    }

    #[test]
    fn at_the_wind_down_holders_release_and_a_waiting_acquire_is_released_too() {
        let mut g = gen().winding_down_after(1_000);
        let mut ctx = Context::new(2, false);
        // Worker 0 holds the lock; worker 1's acquire waits for it.
        let Emit::Invoke(a0) = g.next(&ctx) else {
            panic!("expected an acquire");
        };
        assert_eq!((a0.f.as_str(), a0.target), ("acquire", Target::Worker(0)));
        ctx.set_free(0, false);
        g.update(&ctx, &done(0, "acquire", OpType::Ok));
        ctx.set_free(0, true);
        ctx.set_free(1, false);
        // Time is up: worker 0 releases without working; worker 1 is busy.
        ctx.time = 2_000;
        let Emit::Invoke(r0) = g.next(&ctx) else {
            panic!("expected a release");
        };
        assert_eq!((r0.f.as_str(), r0.target), ("release", Target::Worker(0)));
        ctx.set_free(0, false);
        g.update(&ctx, &done(0, "release", OpType::Ok));
        ctx.set_free(0, true);
        assert_eq!(g.next(&ctx), Emit::Pending(None));
        // Worker 1 is granted the lock now: it releases at once, then done.
        g.update(&ctx, &done(1, "acquire", OpType::Ok));
        ctx.set_free(1, true);
        let Emit::Invoke(r1) = g.next(&ctx) else {
            panic!("expected a release");
        };
        assert_eq!((r1.f.as_str(), r1.target), ("release", Target::Worker(1)));
        ctx.set_free(1, false);
        g.update(&ctx, &done(1, "release", OpType::Ok));
        ctx.set_free(1, true);
        assert_eq!(g.next(&ctx), Emit::Done);
    }
}
