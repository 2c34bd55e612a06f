//! Tests of the generator protocol and its combinators, mostly in virtual
//! time: a tiny driver plays the runner, so timing is exact and tests are
//! fast and deterministic.

use super::*;
use crate::history::{OpType, Process};
use proptest::prelude::*;
use serde_json::json;
use std::collections::{BTreeMap, HashMap};

/// An op as a driver saw it: when, by which worker, what.
#[derive(Clone, Debug, PartialEq)]
struct Seen {
    time: u64,
    worker: usize,
    spec: OpSpec,
}

/// Plays the runner in virtual time with `workers` workers; each operation
/// takes `latency(i)` ns (i = op number). Runs until done or `horizon`.
fn drive(
    gen: &mut dyn Generator,
    workers: usize,
    horizon: u64,
    latency: impl Fn(usize) -> u64,
) -> Vec<Seen> {
    let mut ctx = Context::new(workers, false);
    let mut seen = Vec::new();
    // (completion time, worker, op)
    let mut running: Vec<(u64, usize, Op)> = Vec::new();
    loop {
        // Complete everything due.
        running.sort_by_key(|r| std::cmp::Reverse(r.0));
        while running.last().is_some_and(|r| r.0 <= ctx.time) {
            let (_, w, mut op) = running.pop().expect("nonempty");
            op.kind = OpType::Ok;
            ctx.set_free(w, true);
            gen.update(&ctx, &op);
        }
        if ctx.time > horizon {
            break;
        }
        let next_completion = running.iter().map(|r| r.0).min();
        if ctx.free_count() == 0 {
            ctx.time = next_completion.expect("busy workers have ops");
            continue;
        }
        match gen.next(&ctx) {
            Emit::Invoke(spec) => {
                let w = match spec.target {
                    Target::Worker(w) => w,
                    _ => ctx.free_workers().next().expect("a free worker"),
                };
                assert!(ctx.is_free(w), "generator targeted busy worker {w}");
                let mut op = Op::new(
                    0,
                    Process::Client(w as u64),
                    OpType::Invoke,
                    spec.f.clone(),
                    spec.value.clone(),
                );
                op.key = spec.key.clone();
                ctx.set_free(w, false);
                gen.update(&ctx, &op);
                running.push((ctx.time + latency(seen.len()), w, op));
                seen.push(Seen {
                    time: ctx.time,
                    worker: w,
                    spec,
                });
            }
            Emit::Pending(until) => {
                let t = Emit::earliest(until, next_completion);
                match t {
                    Some(t) if t > ctx.time => ctx.time = t,
                    Some(_) => ctx.time += 1,
                    None => panic!("pending with nothing in flight and no time: would hang"),
                }
            }
            Emit::Done => {
                if running.is_empty() {
                    break;
                }
                ctx.time = next_completion.expect("running");
            }
        }
    }
    seen
}

fn read() -> OpSpec {
    OpSpec::new("read", json!(null))
}

#[test]
fn limit_and_once_count_invocations() {
    let mut g = limit(7, repeat(read()));
    assert_eq!(drive(&mut g, 3, u64::MAX, |_| 10).len(), 7);
    let mut g = once(repeat(read()));
    assert_eq!(drive(&mut g, 3, u64::MAX, |_| 10).len(), 1);
    let mut g = limit(0, repeat(read()));
    assert_eq!(g.next(&Context::new(1, false)), Emit::Done);
}

#[test]
fn time_limit_starts_when_first_asked_and_stops_on_time() {
    let mut g = time_limit(1_000, repeat(read()));
    let seen = drive(&mut g, 1, u64::MAX, |_| 100);
    assert_eq!(seen.len(), 10, "ops at 0,100,...,900");
    assert!(seen.iter().all(|s| s.time < 1_000));

    // A pending inner generator wakes the runner at the deadline.
    let mut g = time_limit(500, from_fn(|_| Emit::Pending(None)));
    let ctx = Context::new(1, false);
    assert_eq!(g.next(&ctx), Emit::Pending(Some(500)));
    let mut g = time_limit(500, from_fn(|_| Emit::Pending(Some(9_999))));
    assert_eq!(g.next(&ctx), Emit::Pending(Some(500)));
}

#[test]
fn rate_limits_overall_ops_per_second() {
    // 1000 ops/s over 10 virtual seconds, 10 workers, fast ops.
    for seed in 0..3 {
        let mut g = time_limit(10_000_000_000, rate(1000.0, rng(seed, 0), repeat(read())));
        let n = drive(&mut g, 10, u64::MAX, |_| 50_000).len();
        assert!(
            (9_500..=10_500).contains(&n),
            "seed {seed}: {n} ops in 10 s at 1000/s"
        );
    }
}

#[test]
fn stagger_without_jitter_spaces_ops_exactly() {
    let mut g = limit(5, stagger(1_000, 0.0, rng(1, 0), repeat(read())));
    let times: Vec<u64> = drive(&mut g, 4, u64::MAX, |_| 10)
        .iter()
        .map(|s| s.time)
        .collect();
    assert_eq!(times, vec![0, 1_000, 2_000, 3_000, 4_000]);
}

#[test]
fn stagger_does_not_burst_after_a_long_stall() {
    // 1 op/ms, 10 workers. The first ten ops (at 0..9 ms) all complete at
    // 30 ms, 20 ms behind schedule: more than the catch-up window, so the
    // schedule restarts from 30 ms instead of firing ten ops at once.
    const MS: u64 = 1_000_000;
    let mut g = limit(20, stagger(MS, 0.0, rng(1, 0), repeat(read())));
    let seen = drive(&mut g, 10, u64::MAX, |i| {
        if i < 10 {
            30 * MS - i as u64 * MS
        } else {
            MS
        }
    });
    assert_eq!(seen.len(), 20);
    for w in seen.windows(2) {
        assert!(w[1].time - w[0].time >= MS, "burst: {:?}", w);
    }
    assert_eq!(seen[10].time, 30 * MS);
}

#[test]
fn mix_follows_weights_and_skips_zero() {
    let mut m = mix(
        vec![
            (
                3,
                Box::new(repeat(OpSpec::new("a", json!(null)))) as Box<dyn Generator>,
            ),
            (1, Box::new(repeat(OpSpec::new("b", json!(null))))),
            (0, Box::new(repeat(OpSpec::new("never", json!(null))))),
        ],
        rng(5, 0),
    );
    let ctx = Context::new(1, false);
    let mut counts: HashMap<String, u32> = HashMap::new();
    for _ in 0..40_000 {
        match m.next(&ctx) {
            Emit::Invoke(op) => *counts.entry(op.f).or_default() += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(counts.get("never"), None);
    let a = f64::from(counts["a"]) / 40_000.0;
    assert!((0.73..0.77).contains(&a), "a share {a}");
}

#[test]
fn mix_drops_exhausted_generators() {
    let mut m = mix(
        vec![
            (
                1,
                Box::new(limit(3, repeat(OpSpec::new("a", json!(null))))) as Box<dyn Generator>,
            ),
            (1, Box::new(limit(5, repeat(OpSpec::new("b", json!(null)))))),
        ],
        rng(5, 0),
    );
    let seen = drive(&mut m, 2, u64::MAX, |_| 1);
    assert_eq!(seen.iter().filter(|s| s.spec.f == "a").count(), 3);
    assert_eq!(seen.iter().filter(|s| s.spec.f == "b").count(), 5);
}

#[test]
fn phases_wait_for_every_operation_of_the_phase_before() {
    let mut g = phases(vec![
        Box::new(limit(4, repeat(OpSpec::new("main", json!(null))))),
        Box::new(limit(2, repeat(OpSpec::new("final", json!(null))))),
    ]);
    // Op i takes (i+1)*100 ns, so the last main op completes at 0+400.
    let seen = drive(&mut g, 4, u64::MAX, |i| (i as u64 + 1) * 100);
    let last_main_done = seen
        .iter()
        .enumerate()
        .filter(|(_, s)| s.spec.f == "main")
        .map(|(i, s)| s.time + (i as u64 + 1) * 100)
        .max();
    let first_final = seen.iter().find(|s| s.spec.f == "final").map(|s| s.time);
    assert_eq!(seen.len(), 6);
    assert!(
        first_final >= last_main_done,
        "{first_final:?} < {last_main_done:?}"
    );
}

#[test]
fn seq_runs_generators_back_to_back() {
    let mut g = seq(vec![
        Box::new(limit(2, repeat(OpSpec::new("a", json!(null))))),
        Box::new(limit(1, repeat(OpSpec::new("b", json!(null))))),
    ]);
    let fs: Vec<String> = drive(&mut g, 3, u64::MAX, |_| 1_000)
        .into_iter()
        .map(|s| s.spec.f)
        .collect();
    assert_eq!(fs, ["a", "a", "b"]);
}

#[test]
fn each_worker_gives_every_worker_its_own_ops() {
    let mut g =
        each_worker(|w| Box::new(limit(2, repeat(OpSpec::new(format!("r{w}"), json!(null))))));
    let seen = drive(&mut g, 3, u64::MAX, |_| 10);
    assert_eq!(seen.len(), 6);
    for s in &seen {
        assert_eq!(s.spec.target, Target::Worker(s.worker));
        assert_eq!(s.spec.f, format!("r{}", s.worker));
    }
}

#[test]
fn any_interleaves_and_ends_when_all_end() {
    let mut g = super::any(vec![
        Box::new(limit(3, repeat(OpSpec::new("a", json!(null))))),
        Box::new(limit(1, repeat(OpSpec::new("b", json!(null))))),
    ]);
    let fs: Vec<String> = drive(&mut g, 1, u64::MAX, |_| 1)
        .into_iter()
        .map(|s| s.spec.f)
        .collect();
    assert_eq!(fs, ["a", "b", "a", "a"]);
    // The earliest named time wins among pending children.
    let mut g = super::any(vec![
        Box::new(from_fn(|_| Emit::Pending(None))),
        Box::new(from_fn(|_| Emit::Pending(Some(7)))),
    ]);
    assert_eq!(g.next(&Context::new(1, false)), Emit::Pending(Some(7)));
}

#[test]
fn nemesis_ops_are_routed_and_held_while_it_is_busy() {
    let mut g = on_nemesis(repeat(OpSpec::new("start-partition", json!(null))));
    let mut ctx = Context::new(2, true);
    match g.next(&ctx) {
        Emit::Invoke(op) => assert_eq!(op.target, Target::Nemesis),
        other => panic!("{other:?}"),
    }
    ctx.nemesis_free = false;
    assert_eq!(g.next(&ctx), Emit::Pending(None));
    // Without a nemesis in the run, nemesis generators are simply done.
    assert_eq!(g.next(&Context::new(2, false)), Emit::Done);
    let mut c = on_clients(repeat(read()));
    ctx.set_free(0, false);
    ctx.set_free(1, false);
    assert_eq!(c.next(&ctx), Emit::Pending(None));
}

#[test]
fn distributions_stay_in_range_and_zipf_is_skewed() {
    let mut r = rng(9, 0);
    let mut u = Dist::uniform(10).expect("uniform");
    assert!((0..10_000).all(|_| u.sample(&mut r) < 10));
    let mut z = Dist::zipf(100, 1.0).expect("zipf");
    let draws: Vec<u64> = (0..20_000).map(|_| z.sample(&mut r)).collect();
    assert!(draws.iter().all(|d| *d < 100));
    let zeros = draws.iter().filter(|d| **d == 0).count() as f64 / 20_000.0;
    // Weight of 0 is 1/H(100) ≈ 0.193.
    assert!((0.17..0.22).contains(&zeros), "{zeros}");
    let mut s = Dist::sequential(5);
    assert_eq!(
        (0..4).map(|_| s.sample(&mut r)).collect::<Vec<_>>(),
        [5, 6, 7, 8]
    );
    assert!(Dist::uniform(0).is_err());
    assert!(Dist::zipf(10, -1.0).is_err());
    assert!(Dist::zipf(Dist::MAX_ZIPF + 1, 1.0).is_err());
}

#[test]
fn op_mix_values_have_the_shape_of_their_function() {
    let ops = vec![
        ("read".into(), 1, ValueShape::Null),
        ("write".into(), 1, ValueShape::One),
        ("cas".into(), 1, ValueShape::Pair),
    ];
    let mut m = OpMix::new(ops, Dist::uniform(5).expect("dist"), rng(1, 1)).expect("mix");
    for _ in 0..1_000 {
        let op = m.draw();
        match op.f.as_str() {
            "read" => assert_eq!(op.value, json!(null)),
            "write" => assert!(op.value.as_u64().is_some_and(|v| v < 5)),
            "cas" => assert!(op.value.as_array().is_some_and(|a| a.len() == 2)),
            f => panic!("{f}"),
        }
    }
    assert!(OpMix::new(
        vec![("read".into(), 0, ValueShape::Null)],
        Dist::sequential(0),
        rng(1, 1)
    )
    .is_none());
}

fn independent(seed: u64, count: u64, per_key: u64, in_flight: usize) -> Independent {
    Independent::integer_keys(
        count,
        in_flight,
        Box::new(move |k, _| {
            let ops = vec![
                ("read".into(), 1, ValueShape::Null),
                ("write".into(), 1, ValueShape::One),
            ];
            let mix =
                OpMix::new(ops, Dist::uniform(5).expect("dist"), rng(seed, 100 + k)).expect("mix");
            Box::new(limit(per_key, mix))
        }),
    )
}

/// Ops grouped by key, in order.
fn by_key(seen: &[Seen]) -> BTreeMap<u64, Vec<(String, serde_json::Value)>> {
    let mut m: BTreeMap<u64, Vec<_>> = BTreeMap::new();
    for s in seen {
        let k = s
            .spec
            .key
            .as_ref()
            .and_then(|k| k.as_u64())
            .expect("every op has an integer key");
        m.entry(k)
            .or_default()
            .push((s.spec.f.clone(), s.spec.value.clone()));
    }
    m
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Every key gets exactly its ops, and at no point are more than
    /// `in_flight` keys started but unfinished.
    #[test]
    fn independent_bounds_ops_per_key_and_keys_in_flight(
        count in 1u64..30, per_key in 1u64..12, in_flight in 1usize..6, workers in 1usize..8, seed in proptest::arbitrary::any::<u64>(),
    ) {
        let mut g = independent(seed, count, per_key, in_flight);
        let seen = drive(&mut g, workers, u64::MAX, |i| (i as u64 * 7919) % 1000 + 1);
        let keys = by_key(&seen);
        prop_assert_eq!(keys.len() as u64, count);
        prop_assert!(keys.values().all(|ops| ops.len() as u64 == per_key));
        let mut remaining: HashMap<u64, u64> = HashMap::new();
        let mut active = 0usize;
        for s in &seen {
            let k = s.spec.key.as_ref().and_then(|k| k.as_u64()).unwrap_or(u64::MAX);
            let left = remaining.entry(k).or_insert_with(|| { active += 1; per_key });
            *left -= 1;
            prop_assert!(active <= in_flight, "{} keys active > {}", active, in_flight);
            if *left == 0 { active -= 1; }
        }
    }

    /// The same seed gives the same operations on every key, however the
    /// workers and latencies interleave them; another seed gives others.
    #[test]
    fn independent_keys_are_deterministic_per_seed(seed in proptest::arbitrary::any::<u64>(), workers in 1usize..8, jitter in 1u64..500) {
        let mut a = independent(seed, 6, 20, 3);
        let mut b = independent(seed, 6, 20, 3).per_key_concurrency(2);
        let sa = drive(&mut a, 1, u64::MAX, |_| 10);
        let sb = drive(&mut b, workers, u64::MAX, |i| (i as u64 * 31) % jitter + 1);
        prop_assert_eq!(by_key(&sa), by_key(&sb));
        let mut c = independent(seed.wrapping_add(1), 6, 20, 3);
        prop_assert_ne!(by_key(&sa), by_key(&drive(&mut c, 1, u64::MAX, |_| 10)));
    }

    /// Under a per-key cap, no key ever has more ops in flight than the cap.
    #[test]
    fn per_key_concurrency_is_respected(cap in 1usize..4, workers in 1usize..10, seed in proptest::arbitrary::any::<u64>()) {
        let mut g = independent(seed, 10, 15, 2).per_key_concurrency(cap);
        let seen = drive(&mut g, workers, u64::MAX, |i| (i as u64 * 7) % 50 + 1);
        prop_assert_eq!(seen.len(), 150);
        let lat = |i: usize| (i as u64 * 7) % 50 + 1;
        for (i, s) in seen.iter().enumerate() {
            let k = &s.spec.key;
            let overlapping = seen.iter().enumerate()
                .filter(|(j, o)| &o.spec.key == k && o.time <= s.time && o.time + lat(*j) > s.time)
                .count();
            prop_assert!(overlapping <= cap, "op {} sees {} in flight on its key", i, overlapping);
        }
    }
}

#[test]
fn simulate_drains_a_bounded_generator() {
    let mut g = independent(3, 4, 5, 2);
    let ops = simulate(&mut g, 4, 1, 1_000);
    assert_eq!(ops.len(), 20);
}

#[test]
fn rate_holds_when_wake_ups_come_late() {
    // Plays a coarse timer: every wake-up lands on the next whole
    // millisecond. 2000 ops/s means intervals of 0.5 ms on average, shorter
    // than a tick, yet the rate must hold.
    let mut g = time_limit(2_000_000_000, rate(2000.0, rng(4, 0), repeat(read())));
    let mut ctx = Context::new(10, false);
    let mut n = 0;
    loop {
        match g.next(&ctx) {
            Emit::Invoke(_) => n += 1,
            Emit::Pending(Some(t)) => {
                ctx.time = t.max(ctx.time + 1).div_ceil(1_000_000) * 1_000_000
            }
            Emit::Pending(None) => panic!("rate names a time"),
            Emit::Done => break,
        }
    }
    assert!((3_800..=4_200).contains(&n), "{n} ops in 2 s at 2000/s");
}
