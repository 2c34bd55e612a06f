//! The nemesis schedule behind `--nemesis partition,kill
//! --nemesis-interval 10`: a [`Generator`] of start/stop pairs.
//!
//! It waits one interval, starts a fault of the next kind (round robin
//! over the kinds given), waits one interval, stops it, and so on. Within a
//! kind the starts (targets, partition shapes) are cycled too, in a seeded
//! shuffled order, so a run sees each of them rather than the same lucky
//! draw twice; when the db can name its primaries, the starts aimed at
//! them come first in each cycle (a `bridge` on 3 nodes leaves the leader
//! its majority and disturbs nothing), and when it cannot they are left
//! out. [`Schedule::fit_within`] shortens the intervals when one cycle over
//! every kind would not fit in the time limit, so each requested kind
//! happens at least once. The nodes themselves are picked when the fault
//! is injected, by the nemesis's own seeded RNG. Each clock fault's start
//! and stop is followed at once by a `clock-check`, which records the
//! offsets the databases then read, and each membership change's by a
//! `member-list`, which records the members the database then lists. A
//! rolling upgrade has no stop: each `upgrade` ends with its node serving
//! again, and once one answers that no node is left on the first binary
//! the schedule issues no more of them.

use std::time::Duration;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::config::{check_of, targets_primaries, NemesisDef};
use super::Fault;
use crate::generator::{Context, Emit, Generator, OpSpec, Target};
use crate::history::{Op, OpType, Process};

/// The interval when neither the flag nor the files give one (Jepsen's).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// Alternating start/stop nemesis operations over some fault kinds.
#[derive(Debug)]
pub struct Schedule {
    defs: Vec<NemesisDef>,
    interval: Option<Duration>,
    /// Multiplies every interval (1 unless [`Schedule::fit_within`] had
    /// to shorten them).
    scale: f64,
    /// Whether the db names primaries: `Some(true)` puts the starts aimed
    /// at them first in each cycle, `Some(false)` leaves them out, `None`
    /// (not known) leaves the order to the shuffle.
    primaries: Option<bool>,
    rng: ChaCha8Rng,
    next_def: usize,
    /// Per kind: the order of its starts in the current cycle, and how
    /// many of them were issued.
    cycles: Vec<(Vec<usize>, usize)>,
    /// The stop owed for the fault in force, if any.
    active: Option<Fault>,
    /// When to emit the next operation (ns since the test started).
    next_at: Option<u64>,
    /// The measurement owed ([`check_of`]): a clock fault or a membership
    /// change just started or stopped.
    check: Option<Fault>,
    /// Per kind: whether it has nothing left to do (a rolling upgrade
    /// whose completion said no node is left on the first binary), so
    /// the rotation skips it.
    done: Vec<bool>,
}

impl Schedule {
    /// A schedule over `defs`. `interval` (the `--nemesis-interval` flag)
    /// overrides each definition's own; with neither, [`DEFAULT_INTERVAL`].
    pub fn new(defs: Vec<NemesisDef>, interval: Option<Duration>, seed: u64) -> Schedule {
        let defs: Vec<NemesisDef> = defs.into_iter().filter(|d| !d.starts.is_empty()).collect();
        Schedule {
            cycles: vec![(Vec::new(), 0); defs.len()],
            done: vec![false; defs.len()],
            defs,
            interval,
            scale: 1.0,
            primaries: None,
            rng: ChaCha8Rng::seed_from_u64(seed),
            next_def: 0,
            active: None,
            next_at: None,
            check: None,
        }
    }

    /// Tells the schedule whether the db can name its primaries (see the
    /// module's comment).
    pub fn with_primaries(mut self, db_has_primaries: bool) -> Schedule {
        self.primaries = Some(db_has_primaries);
        self
    }

    /// Shortens every interval by the same factor when one cycle (the
    /// first wait, then a start and a stop of each kind) would not fit in
    /// `limit`, so every requested kind is started and stopped within it.
    pub fn fit_within(mut self, limit: Duration) -> Schedule {
        self.scale = 1.0;
        let cycle: u64 = self.interval_of(0)
            + (0..self.defs.len())
                .map(|i| 2 * self.interval_of(i))
                .sum::<u64>();
        let limit_ns = limit.as_nanos().min(u128::from(u64::MAX)) as u64;
        if cycle > limit_ns && limit_ns > 0 {
            self.scale = limit_ns as f64 / cycle as f64;
            tracing::info!(
                factor = self.scale,
                "nemesis intervals shortened so every requested fault happens within the time limit"
            );
        }
        self
    }

    fn interval_of(&self, def: usize) -> u64 {
        let d = self
            .interval
            .or(self.defs.get(def).and_then(|d| d.interval))
            .unwrap_or(DEFAULT_INTERVAL);
        let ns = d.as_nanos().min(u128::from(u64::MAX)) as u64;
        if self.scale >= 1.0 {
            return ns;
        }
        // Rounded up: a cycle shortened to the limit must not slip inside it.
        (ns as f64 * self.scale).ceil() as u64
    }

    /// The next start of kind `i`: the next in its cycle, beginning a new
    /// (reshuffled) cycle when the last one is used up.
    fn next_start(&mut self, i: usize) -> Option<Fault> {
        let starts = &self.defs[i].starts;
        let (order, used) = &mut self.cycles[i];
        if *used >= order.len() {
            let aimed = |k: &usize| targets_primaries(&starts[*k]);
            let mut all: Vec<usize> = (0..starts.len()).collect();
            all.shuffle(&mut self.rng);
            *order = match self.primaries {
                Some(true) => {
                    let (first, rest): (Vec<usize>, Vec<usize>) = all.into_iter().partition(aimed);
                    first.into_iter().chain(rest).collect()
                }
                Some(false) if !all.iter().all(aimed) => {
                    all.into_iter().filter(|k| !aimed(k)).collect()
                }
                _ => all,
            };
            *used = 0;
        }
        let k = *order.get(*used)?;
        *used += 1;
        starts.get(k).cloned()
    }

    /// The operations that end every fault this schedule can start, one per
    /// family: what a final phase issues before the full heal.
    pub fn final_ops(&self) -> Vec<OpSpec> {
        let mut fams: Vec<_> = self.defs.iter().map(|d| d.family).collect();
        fams.dedup();
        fams.into_iter()
            .filter_map(super::config::stop_of)
            .map(|f| op(&f))
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
        if let Some(check) = self.check.take() {
            return Emit::Invoke(op(&check));
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
            self.check = stop.family().and_then(check_of);
            return Emit::Invoke(op(&stop));
        }
        // The next kind with something left to do, round robin.
        let Some(i) = (0..self.defs.len())
            .map(|k| (self.next_def + k) % self.defs.len())
            .find(|&k| !self.done[k])
        else {
            return Emit::Done;
        };
        self.next_def = (i + 1) % self.defs.len();
        let Some(start) = self.next_start(i) else {
            return Emit::Done;
        };
        self.active = self.defs[i].stop();
        self.next_at = Some(ctx.time.saturating_add(self.interval_of(i)));
        self.check = start.family().and_then(check_of);
        Emit::Invoke(op(&start))
    }

    /// After an `upgrade` completes, the next nemesis op waits one
    /// interval from then (its start set the wait from its start: a slow
    /// upgrade would leave no pause between two nodes); and once one
    /// answers that no node is left to upgrade (`"remaining": []`), the
    /// rolling upgrade is retired.
    fn update(&mut self, ctx: &Context, event: &Op) {
        if event.process != Process::Nemesis
            || event.kind == OpType::Invoke
            || event.f != Fault::Upgrade(super::Targets::One).f()
        {
            return;
        }
        if let Some(i) = self
            .defs
            .iter()
            .position(|d| d.family == super::Family::Upgrade)
        {
            self.next_at = Some(ctx.time.saturating_add(self.interval_of(i)));
        }
        let none_left = event
            .value
            .get("remaining")
            .and_then(|r| r.as_array())
            .is_some_and(|r| r.is_empty());
        if event.error.is_none() && none_left {
            for (d, done) in self.defs.iter().zip(self.done.iter_mut()) {
                if d.family == super::Family::Upgrade {
                    *done = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nemesis::{Family, Targets};
    use serde_json::json;

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

    #[test]
    fn every_requested_kind_and_shape_happens_within_the_time_limit() {
        use crate::nemesis::PartitionSpec;
        let defs = || {
            vec![
                NemesisDef::builtin(Family::Partition),
                NemesisDef::builtin(Family::Kill),
                NemesisDef::builtin(Family::Pause),
            ]
        };
        // The README's command: 30 s, the default 10 s interval, here with
        // three kinds. Unfitted, only one kind would start in time.
        for seed in 0..20 {
            let mut s = Schedule::new(defs(), None, seed)
                .with_primaries(true)
                .fit_within(Duration::from_secs(30));
            let ops = drain(&mut s, 30_000_000_000 - 1);
            let fs: Vec<&str> = ops.iter().map(|(_, o)| o.f.as_str()).collect();
            assert_eq!(
                fs,
                vec![
                    "start-partition",
                    "stop-partition",
                    "kill",
                    "start",
                    "pause",
                    "resume"
                ],
                "seed {seed}"
            );
            // The db names a leader: the first partition isolates it.
            assert_eq!(ops[0].1.value, json!("primaries"), "seed {seed}");
        }
        // Over N intervals every shape of the partition kind is drawn: a
        // cycle, not a random pick per interval.
        let mut s = Schedule::new(vec![NemesisDef::builtin(Family::Partition)], None, 5);
        let ops = drain(&mut s, 120_000_000_000);
        let shapes: std::collections::BTreeSet<String> = ops
            .iter()
            .filter(|(_, o)| o.f == "start-partition")
            .map(|(_, o)| o.value.to_string())
            .collect();
        assert_eq!(shapes.len(), 6, "{shapes:?}");
        // A db without primaries never gets a start aimed at them.
        let mut s = Schedule::new(vec![NemesisDef::builtin(Family::Partition)], None, 5)
            .with_primaries(false);
        let ops = drain(&mut s, 200_000_000_000);
        let primaries = Fault::StartPartition(PartitionSpec::Primaries).value();
        assert!(ops.iter().all(|(_, o)| o.value != primaries));
        assert!(ops.len() >= 10);
    }

    #[test]
    fn a_schedule_that_fits_keeps_its_intervals() {
        let s = Schedule::new(vec![NemesisDef::builtin(Family::Kill)], None, 0)
            .fit_within(Duration::from_secs(30));
        assert_eq!(s.interval_of(0), 10_000_000_000);
        let s = Schedule::new(
            vec![
                NemesisDef::builtin(Family::Kill),
                NemesisDef::builtin(Family::Pause),
            ],
            None,
            0,
        )
        .fit_within(Duration::from_secs(30));
        assert_eq!(s.interval_of(1), 6_000_000_000);
    }

    #[test]
    fn each_clock_start_and_stop_is_followed_by_a_clock_check() {
        let mut s = Schedule::new(
            vec![
                NemesisDef::builtin(Family::Clock),
                NemesisDef::builtin(Family::Kill),
            ],
            Some(Duration::from_secs(1)),
            3,
        );
        let fs: Vec<String> = drain(&mut s, 4_500_000_000)
            .into_iter()
            .map(|(_, op)| op.f)
            .collect();
        assert_eq!(
            fs,
            [
                "bump-clock",
                "clock-check",
                "reset-clock",
                "clock-check",
                "kill",
                "start"
            ],
            "{fs:?}"
        );
    }

    #[test]
    fn each_membership_change_is_followed_by_a_member_list() {
        let mut s = Schedule::new(
            vec![
                NemesisDef::builtin(Family::Membership),
                NemesisDef::builtin(Family::Pause),
            ],
            Some(Duration::from_secs(1)),
            3,
        );
        let fs: Vec<String> = drain(&mut s, 4_500_000_000)
            .into_iter()
            .map(|(_, op)| op.f)
            .collect();
        assert_eq!(
            fs,
            [
                "remove-member",
                "member-list",
                "add-member",
                "member-list",
                "pause",
                "resume"
            ],
            "{fs:?}"
        );
    }

    #[test]
    fn a_rolling_upgrade_has_no_stop_and_ends_when_no_node_is_left() {
        use crate::history::Op;
        let defs = vec![
            NemesisDef::builtin(Family::Upgrade),
            NemesisDef::builtin(Family::Kill),
        ];
        let mut s = Schedule::new(defs, Some(Duration::from_secs(1)), 3);
        assert_eq!(s.final_ops().len(), 1, "only kill has a stop");
        let mut ctx = Context::new(1, true);
        let mut fs = Vec::new();
        let mut upgrades = 0;
        while fs.len() < 9 {
            match s.next(&ctx) {
                Emit::Invoke(op) => {
                    if op.f == "upgrade" {
                        upgrades += 1;
                        // The third upgrade leaves no node on the first binary.
                        let remaining = if upgrades == 3 {
                            json!([])
                        } else {
                            json!(["n3"])
                        };
                        let mut done = Op::new(
                            0,
                            Process::Nemesis,
                            OpType::Info,
                            "upgrade",
                            json!({ "remaining": remaining }),
                        );
                        // The upgrade takes 5 s: the next op waits one
                        // interval (1 s) from its end.
                        ctx.time += 5_000_000_000;
                        done.time = Some(ctx.time);
                        s.update(&ctx, &done);
                        let after = ctx.time;
                        match s.next(&ctx) {
                            Emit::Pending(Some(t)) => assert_eq!(t, after + 1_000_000_000),
                            other => panic!("expected a wait after the upgrade, got {other:?}"),
                        }
                    }
                    fs.push(op.f);
                }
                Emit::Pending(Some(t)) => ctx.time = t,
                Emit::Pending(None) => ctx.time += 1,
                Emit::Done => break,
            }
        }
        assert_eq!(
            fs,
            vec![
                "upgrade", "kill", "start", "upgrade", "kill", "start", "upgrade", "kill", "start"
            ]
        );
        // From then on, kills alone.
        let mut later = Vec::new();
        while later.len() < 4 {
            match s.next(&ctx) {
                Emit::Invoke(op) => later.push(op.f),
                Emit::Pending(Some(t)) => ctx.time = t,
                Emit::Pending(None) => ctx.time += 1,
                Emit::Done => break,
            }
        }
        assert_eq!(later, vec!["kill", "start", "kill", "start"]);
    }
}
