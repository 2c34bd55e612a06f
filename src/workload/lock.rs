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
}

impl Default for LockSpec {
    fn default() -> Self {
        LockSpec {
            ttl_s: 2,
            max_sleep_ms: 1000,
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
}

impl LockGen {
    /// Cycles whose work is drawn from `mix`.
    pub fn new(mix: OpMix) -> LockGen {
        LockGen {
            mix,
            steps: Vec::new(),
            next_worker: 0,
        }
    }
}

impl Generator for LockGen {
    fn next(&mut self, ctx: &Context) -> Emit {
        if self.steps.len() != ctx.workers() {
            self.steps = vec![Step::Acquire; ctx.workers()];
        }
        let Some(w) = ctx.free_worker_from(self.next_worker) else {
            return Emit::Pending(None);
        };
        self.next_worker = (w + 1) % ctx.workers().max(1);
        let op = match self.steps[w] {
            Step::Acquire => OpSpec::new("acquire", Value::Null),
            Step::Work => self.mix.draw(),
            Step::Release => OpSpec::new("release", Value::Null),
        };
        Emit::Invoke(op.with_target(Target::Worker(w)))
    }

    fn update(&mut self, ctx: &Context, event: &Op) {
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
        LockGen::new(mix)
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
}
