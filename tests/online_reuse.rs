//! The final check with the online checker's per-key verdicts agrees with
//! the final check from scratch: histories of the register workload run
//! against the memory system (with its stale reads, with operations ending
//! `info` — some applied, some not —, with both, and correct), fed to the
//! online checker event by event with rounds at random cuts (and the clock
//! sometimes jumping past the time a quiet key is retired after, so keys
//! are retired and come back), then checked whole with and without what it
//! judged. The verdicts, the invalid keys and their counterexamples and
//! smallest failing sub-histories are the same; the keys taken are never
//! keys whose events changed after the online checker judged them.

#![cfg(feature = "controller")]

use faultline::check::registry::{by_name, CheckContext};
use faultline::check::Validity;
use faultline::client::{Client, ClientError, ClientFactory, Completion, Invocation};
use faultline::generator::{limit, Generator};
use faultline::history::{History, Op};
use faultline::runner::online::{Online, RETIRE_AFTER};
use faultline::runner::{run_workers, Recorder, Stop, WorkerConfig};
use faultline::system::memory::{Flaw, MemoryDb};
use faultline::workload::{GenOptions, Workload};
use serde_json::Value;
use std::path::Path;
use std::time::Instant;

/// Around the memory system, ends every `every`-th operation `info`:
/// alternately after applying it (the answer was lost) and without (the
/// request was lost).
struct Crashing {
    db: MemoryDb,
    every: u64,
    n: u64,
}

#[async_trait::async_trait]
impl Client for Crashing {
    async fn open(&mut self, _node: &str) -> Result<(), ClientError> {
        Ok(())
    }

    async fn invoke(&mut self, inv: &Invocation) -> Completion {
        self.n += 1;
        let crash = self.every > 0 && self.n % self.every == 0;
        if crash && self.n % 2 == 0 {
            return Completion::from_error(
                inv.value.clone(),
                &ClientError::unknown("request lost"),
            );
        }
        let c = self.db.apply(inv);
        if crash {
            return Completion::from_error(inv.value.clone(), &ClientError::unknown("answer lost"));
        }
        c
    }

    async fn close(&mut self) -> Result<(), ClientError> {
        Ok(())
    }
}

/// `ops` operations of the register workload against the memory system,
/// every `stale`-th read stale (0: none), every `crash`-th op `info`.
async fn history(seed: u64, ops: u64, stale: u64, crash: u64) -> History {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads");
    let w = Workload::find("register", &dir).unwrap_or_else(|e| panic!("{e}"));
    let gen: Box<dyn Generator> = Box::new(limit(ops, w.generator(seed, GenOptions::default())));
    let db = MemoryDb::registers().with_flaw(if stale > 0 {
        Flaw::StaleReads(stale)
    } else {
        Flaw::None
    });
    let factory: ClientFactory = Box::new(move |_| {
        Box::new(Crashing {
            db: db.clone(),
            every: crash,
            n: 0,
        })
    });
    let cfg = WorkerConfig::new(10, vec!["n1".into(), "n2".into(), "n3".into()]);
    let rec = Recorder::in_memory(Instant::now());
    run_workers(gen, factory, None, &cfg, rec, Stop::new())
        .await
        .expect("run")
}

/// A small deterministic generator of cut points.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn ctx() -> CheckContext {
    CheckContext::new(Some("cas-register".into()), 1 << 30)
}

/// `v` without the times it took (`elapsed_ms`), which vary from check to
/// check.
fn without_times(v: &mut Value) {
    match v {
        Value::Object(o) => {
            o.remove("elapsed_ms");
            o.values_mut().for_each(without_times);
        }
        Value::Array(a) => a.iter_mut().for_each(without_times),
        _ => {}
    }
}

/// The verdict and every key that is not valid, with its counterexample
/// and smallest failing sub-history.
fn judged(h: &History, ctx: &CheckContext) -> (Validity, Value) {
    let v = by_name("linearizable")
        .expect("registered")
        .check(h, ctx)
        .expect("checkable");
    let mut failures = v.details["failures"].clone();
    without_times(&mut failures);
    (v.validity, failures)
}

/// `h` with a pause longer than a quiet key waits before it is retired,
/// at a few random events: keys in use then are retired, and come back.
fn with_pauses(mut h: History, rng: &mut XorShift) -> History {
    let pause = RETIRE_AFTER.as_nanos() as u64 + 1_000_000;
    let mut shift = 0;
    for op in &mut h.ops {
        if rng.below(200) == 0 {
            shift += pause;
        }
        op.time = op.time.map(|t| t + shift);
    }
    h
}

/// Each failure's key, verdict and sentence, for messages.
fn brief(failures: &Value) -> Vec<(String, String, String)> {
    let one = |f: &Value| {
        (
            f["key"].to_string(),
            f["validity"].to_string(),
            f["counterexample"]["explanation"].to_string(),
        )
    };
    match failures {
        Value::Array(a) => a.iter().map(one).collect(),
        f => vec![one(f)],
    }
}

/// What the online checker judged of `h`, fed event by event with rounds
/// at random cuts (no round after the last event: the run's end), and,
/// as the running checker's rounds every 100 ms would, one in every pause
/// (a gap of more than [`RETIRE_AFTER`] between events), so the keys in
/// use before it are retired there and those used again come back.
fn online_over(h: &History, rng: &mut XorShift) -> Online {
    let mut online = Online::new(&["linearizable".into()], &ctx());
    let mut next_round = rng.below(150);
    let quiet = RETIRE_AFTER.as_nanos() as u64;
    let mut last_time = 0;
    for (i, op) in h.ops.iter().enumerate() {
        let now = op.time.unwrap_or(last_time);
        if now > last_time.saturating_add(quiet) {
            online.round(&|| now);
        }
        last_time = now;
        online.add(op.clone());
        if i as u64 >= next_round {
            let now = op.time.unwrap_or(0);
            online.round(&|| now);
            next_round = i as u64 + 1 + rng.below(150);
        }
    }
    online
}

/// The key an event names (its JSON), to count a history's keys.
fn key_of(op: &Op) -> String {
    op.key.as_ref().map(Value::to_string).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_final_check_with_online_verdicts_equals_the_check_from_scratch() {
    let (mut taken, mut again, mut invalid, mut comebacks) = (0, 0, 0, 0);
    let cases = [(0, 0), (40, 0), (400, 0), (0, 13), (400, 13), (250, 7)];
    for seed in 1..=4u64 {
        for (stale, crash) in cases {
            let mut rng = XorShift(seed * 7919 + stale * 31 + crash);
            let h = with_pauses(history(seed, 4_000, stale, crash).await, &mut rng);
            let mut online = online_over(&h, &mut rng);
            let left = online.summary().keys_left;
            let known = online.take_known();
            for all_keys in [true, false] {
                let scratch = CheckContext {
                    stop_at_first_invalid: !all_keys,
                    ..ctx()
                };
                let with = CheckContext {
                    known: known.clone(),
                    ..scratch.clone()
                };
                let what =
                    format!("seed {seed}, stale {stale}, crash {crash}, all keys {all_keys}");
                let (v_with, f_with) = judged(&h, &with);
                let (v_scratch, f_scratch) = judged(&h, &scratch);
                assert_eq!(v_with, v_scratch, "{what}");
                if all_keys {
                    // Every key judged: the same keys fail, for the same reasons.
                    assert_eq!(brief(&f_with), brief(&f_scratch), "{what}");
                    assert!(f_with == f_scratch, "{what}: the same counterexamples");
                    if v_with == Validity::Invalid {
                        invalid += 1;
                    }
                } else {
                    // Stopped at the first invalid key: which keys were
                    // finished first varies, but each invalid key reported
                    // is reported as when every key is judged.
                    let (_, every) = judged(
                        &h,
                        &CheckContext {
                            stop_at_first_invalid: false,
                            ..ctx()
                        },
                    );
                    for f in f_with.as_array().into_iter().flatten() {
                        if f["validity"] == "invalid" {
                            let same = every
                                .as_array()
                                .into_iter()
                                .flatten()
                                .find(|e| e["key"] == f["key"]);
                            assert!(Some(f) == same, "{what}: {:?}", brief(f));
                        }
                    }
                }
            }
            let k = &known["linearizable"];
            // Each check consulted every key once: both with all keys and
            // stopping at the first invalid one.
            let keys = {
                let mut names: Vec<String> =
                    h.ops.iter().filter(|o| o.is_client()).map(key_of).collect();
                names.sort();
                names.dedup();
                names.len()
            };
            assert_eq!(
                k.taken() + k.judged_again(),
                2 * keys,
                "seed {seed} {stale} {crash}"
            );
            println!(
                "seed {seed} stale {stale} crash {crash}: {keys} keys ({left} retired and back), {} taken, {} judged again",
                k.taken(),
                k.judged_again()
            );
            comebacks += left;
            taken += k.taken();
            again += k.judged_again();
        }
    }
    println!("{taken} keys taken, {again} judged again, {invalid} invalid histories, {comebacks} keys back after retiring");
    assert!(comebacks > 0, "some key came back after it was retired");
    assert!(
        taken > 0 && again > 0,
        "both kinds of key: {taken} taken, {again} judged again"
    );
    assert!(invalid >= 4, "stale reads found: {invalid}");
}
