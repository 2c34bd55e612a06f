//! The nemesis schedule behind `--nemesis partition,kill
//! --nemesis-interval 10`: a [`Generator`] of start/stop pairs.
//!
//! It waits one interval, starts a fault of the next family (round robin
//! over the families given, so a short run still sees each), waits one
//! interval, stops it, and so on. Which start of the family (which targets,
//! which partition shape) is drawn from a seeded RNG, so a seed gives the
//! same schedule; the nodes themselves are picked when the fault is
//! injected, by the nemesis's own seeded RNG.

use std::time::Duration;

use rand::seq::IndexedRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::config::NemesisDef;
use super::Fault;
use crate::generator::{Context, Emit, Generator, OpSpec, Target};

/// The interval when neither the flag nor the files give one (Jepsen's).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// Alternating start/stop nemesis operations over some fault families.
#[derive(Debug)]
pub struct Schedule {
    defs: Vec<NemesisDef>,
    interval: Option<Duration>,
    rng: ChaCha8Rng,
    next_def: usize,
    /// The stop owed for the fault in force, if any.
    active: Option<Fault>,
    /// When to emit the next operation (ns since the test started).
    next_at: Option<u64>,
}

impl Schedule {
    /// A schedule over `defs`. `interval` (the `--nemesis-interval` flag)
    /// overrides each definition's own; with neither, [`DEFAULT_INTERVAL`].
    pub fn new(defs: Vec<NemesisDef>, interval: Option<Duration>, seed: u64) -> Schedule {
        Schedule {
            defs: defs.into_iter().filter(|d| !d.starts.is_empty()).collect(),
            interval,
            rng: ChaCha8Rng::seed_from_u64(seed),
            next_def: 0,
            active: None,
            next_at: None,
        }
    }

    fn interval_of(&self, def: usize) -> u64 {
        let d = self
            .interval
            .or(self.defs.get(def).and_then(|d| d.interval))
            .unwrap_or(DEFAULT_INTERVAL);
        d.as_nanos().min(u128::from(u64::MAX)) as u64
    }

    /// The operations that end every fault this schedule can start, one per
    /// family: what a final phase issues before the full heal.
    pub fn final_ops(&self) -> Vec<OpSpec> {
        let mut fams: Vec<_> = self.defs.iter().map(|d| d.family).collect();
        fams.dedup();
        fams.into_iter()
            .map(|f| op(&super::config::stop_of(f)))
            .collect()
    }
}

fn op(f: &Fault) -> OpSpec {
    OpSpec::new(f.f(), f.value()).with_target(Target::Nemesis)
}

impl Generator for Schedule {
    fn next(&mut self, ctx: &Context) -> Emit {
        if !ctx.has_nemesis || self.defs.is_empty() {
            return Emit::Done;
        }
        if !ctx.nemesis_free {
            return Emit::Pending(None);
        }
        let current = (self.next_def + self.defs.len() - 1) % self.defs.len();
        let Some(at) = self.next_at else {
            let at = ctx.time.saturating_add(self.interval_of(self.next_def));
            self.next_at = Some(at);
            return Emit::Pending(Some(at));
        };
        if ctx.time < at {
            return Emit::Pending(Some(at));
        }
        if let Some(stop) = self.active.take() {
            self.next_at = Some(ctx.time.saturating_add(self.interval_of(current)));
            return Emit::Invoke(op(&stop));
        }
        let i = self.next_def;
        self.next_def = (i + 1) % self.defs.len();
        let def = &self.defs[i];
        let Some(start) = def.starts.choose(&mut self.rng).cloned() else {
            return Emit::Done;
        };
        self.active = Some(def.stop());
        self.next_at = Some(ctx.time.saturating_add(self.interval_of(i)));
        Emit::Invoke(op(&start))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nemesis::{Family, Targets};

    fn drain(s: &mut Schedule, until_ns: u64) -> Vec<(u64, OpSpec)> {
        let mut ctx = Context::new(1, true);
        let mut out = Vec::new();
        while ctx.time <= until_ns {
            match s.next(&ctx) {
                Emit::Invoke(op) => out.push((ctx.time, op)),
                Emit::Pending(Some(t)) => ctx.time = t,
                Emit::Pending(None) => ctx.time += 1,
                Emit::Done => break,
            }
        }
        out
    }

    #[test]
    fn alternates_start_and_stop_round_robin() {
        let defs = vec![
            NemesisDef::builtin(Family::Partition),
            NemesisDef::builtin(Family::Kill),
        ];
        let mut s = Schedule::new(defs, Some(Duration::from_secs(10)), 42);
        let ops = drain(&mut s, 80_000_000_000);
        let fs: Vec<&str> = ops.iter().map(|(_, o)| o.f.as_str()).collect();
        assert_eq!(
            fs,
            vec![
                "start-partition",
                "stop-partition",
                "kill",
                "start",
                "start-partition",
                "stop-partition",
                "kill",
                "start"
            ]
        );
        let times: Vec<u64> = ops.iter().map(|(t, _)| *t / 1_000_000_000).collect();
        assert_eq!(times, vec![10, 20, 30, 40, 50, 60, 70, 80]);
        assert!(ops.iter().all(|(_, o)| o.target == Target::Nemesis));
        let kill = &ops[2].1;
        assert!(Targets::from_value(&kill.value).is_ok());
    }

    #[test]
    fn same_seed_same_schedule_and_busy_nemesis_waits() {
        let mk = |seed| {
            Schedule::new(
                vec![NemesisDef::builtin(Family::Partition)],
                Some(Duration::from_secs(1)),
                seed,
            )
        };
        let a = drain(&mut mk(7), 40_000_000_000);
        let b = drain(&mut mk(7), 40_000_000_000);
        assert_eq!(a, b);
        let starts: Vec<_> = a.iter().filter(|(_, o)| o.f == "start-partition").collect();
        assert!(starts.len() >= 15);
        // More than one shape is drawn.
        let shapes: std::collections::BTreeSet<String> =
            starts.iter().map(|(_, o)| o.value.to_string()).collect();
        assert!(shapes.len() > 1, "{shapes:?}");

        let mut s = mk(1);
        let mut ctx = Context::new(1, true);
        ctx.nemesis_free = false;
        assert_eq!(s.next(&ctx), Emit::Pending(None));
        let ctx = Context::new(1, false);
        assert_eq!(s.next(&ctx), Emit::Done);
    }

    #[test]
    fn final_ops_stop_every_family() {
        let s = Schedule::new(
            vec![
                NemesisDef::builtin(Family::Pause),
                NemesisDef::builtin(Family::Packet),
            ],
            None,
            0,
        );
        let fs: Vec<String> = s.final_ops().into_iter().map(|o| o.f).collect();
        assert_eq!(fs, vec!["resume", "stop-packet"]);
        let mut d = NemesisDef::builtin(Family::Kill);
        d.interval = Some(Duration::from_secs(3));
        let mut s = Schedule::new(vec![d], None, 0);
        let ops = drain(&mut s, 7_000_000_000);
        assert_eq!(ops[0].0, 3_000_000_000);
        assert_eq!(ops[1].0, 6_000_000_000);
    }
}
