//! Property tests of the linearizability checker.
//!
//! 1. Histories built from a real object, each operation taking effect at a
//!    point inside its interval (crashed ones anywhere after their call, or
//!    never), must be valid.
//! 2. Small histories with one result forged must get the same verdict from
//!    the search as from the exhaustive oracle (a differential test).
//!
//! Both also run with most operations crashed (the search keeps crashed
//! ops pending forever, outside its scan list and its frontier window) and
//! on long stretches without concurrency (where the frontier window is a
//! single op wide).

use faultline::check::linear::{self, brute, LinearOptions};
use faultline::check::Validity;
use faultline::history::{History, Op, OpType, Process};
use faultline::model::{CasRegister, FifoQueue, Kv, Model, Set, UnorderedQueue};
use proptest::prelude::*;
use serde_json::{json, Value};

/// A tiny deterministic RNG so a proptest seed describes a whole history.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Which object the generated history exercises.
#[derive(Clone, Copy, Debug)]
enum Object {
    CasRegister,
    Kv,
    Set,
    Fifo,
    Unordered,
}

/// One planned operation: process, call time, linearization time (None:
/// never took effect), completion time, and whether it crashed.
struct Planned {
    process: u64,
    f: &'static str,
    key: Option<Value>,
    input: Value,
    output: Value,
    outcome: OpType,
    call: u64,
    lin: Option<u64>,
    ret: u64,
}

/// Builds a history in which every operation takes effect inside its
/// interval on a real object: valid by construction.
fn generate(seed: u64, processes: u64, ops: usize, crash_percent: u64, object: Object) -> History {
    let mut rng = Rng(seed);
    let mut clock = vec![0u64; processes as usize];
    let mut ids: Vec<u64> = (0..processes).collect();
    let mut plan: Vec<Planned> = Vec::new();
    let mut next_value = 1u64;
    for _ in 0..ops {
        let slot = rng.below(processes) as usize;
        let call = clock[slot] + 1 + rng.below(20) * 16 + (slot as u64);
        let ret = call + 1 + rng.below(60) * 16;
        let crashed = rng.chance(crash_percent);
        let lin = if crashed {
            // Anywhere after the call, even after the info was recorded, or never.
            if rng.chance(30) {
                None
            } else {
                Some(call + 1 + rng.below(200) * 16)
            }
        } else {
            Some(call + 1 + rng.below(ret - call - 1))
        };
        let (f, key, input) = match object {
            Object::CasRegister => match rng.below(3) {
                0 => ("read", None, Value::Null),
                1 => ("write", None, json!(rng.below(4))),
                _ => ("cas", None, json!([rng.below(4), rng.below(4)])),
            },
            Object::Kv => {
                let k = Some(json!(format!("k{}", rng.below(3))));
                match rng.below(3) {
                    0 => ("get", k, Value::Null),
                    1 => ("put", k, json!(format!("{}", rng.below(3)))),
                    _ => ("append", k, json!(format!("{}", rng.below(10)))),
                }
            }
            Object::Set => {
                if rng.chance(50) {
                    next_value += 1;
                    ("add", None, json!(next_value))
                } else {
                    ("read", None, Value::Null)
                }
            }
            Object::Fifo | Object::Unordered => {
                if rng.chance(55) {
                    next_value += 1;
                    ("enqueue", None, json!(next_value))
                } else {
                    ("dequeue", None, Value::Null)
                }
            }
        };
        plan.push(Planned {
            process: ids[slot],
            f,
            key,
            input,
            output: Value::Null,
            outcome: if crashed { OpType::Info } else { OpType::Ok },
            call,
            lin,
            ret,
        });
        clock[slot] = ret;
        if crashed {
            // A process that crashed never invokes again: continue as a new one.
            ids[slot] += processes;
        }
    }
    // Apply the operations to a real object in linearization order.
    let mut order: Vec<usize> = (0..plan.len()).filter(|&i| plan[i].lin.is_some()).collect();
    order.sort_by_key(|&i| plan[i].lin);
    let mut register = Value::Null;
    let mut kv: std::collections::BTreeMap<String, String> = Default::default();
    let mut set: std::collections::BTreeSet<u64> = Default::default();
    let mut queue: std::collections::VecDeque<Value> = Default::default();
    for i in order {
        let p = &mut plan[i];
        match (p.f, object) {
            ("read", Object::CasRegister) => p.output = register.clone(),
            ("write", _) => {
                register = p.input.clone();
                p.output = p.input.clone();
            }
            ("cas", _) => {
                p.output = p.input.clone();
                if register == p.input[0] {
                    register = p.input[1].clone();
                } else if p.outcome == OpType::Ok {
                    p.outcome = OpType::Fail;
                }
            }
            ("get", _) => {
                let k = p
                    .key
                    .as_ref()
                    .and_then(|k| k.as_str())
                    .unwrap_or_default()
                    .to_string();
                p.output = json!(kv.get(&k).cloned().unwrap_or_default());
            }
            ("put", _) => {
                let k = p
                    .key
                    .as_ref()
                    .and_then(|k| k.as_str())
                    .unwrap_or_default()
                    .to_string();
                kv.insert(k, p.input.as_str().unwrap_or_default().to_string());
                p.output = p.input.clone();
            }
            ("append", _) => {
                let k = p
                    .key
                    .as_ref()
                    .and_then(|k| k.as_str())
                    .unwrap_or_default()
                    .to_string();
                kv.entry(k)
                    .or_default()
                    .push_str(p.input.as_str().unwrap_or_default());
                p.output = p.input.clone();
            }
            ("add", _) => {
                set.insert(p.input.as_u64().unwrap_or_default());
                p.output = p.input.clone();
            }
            ("read", Object::Set) => p.output = json!(set.iter().rev().collect::<Vec<_>>()),
            ("enqueue", _) => {
                queue.push_back(p.input.clone());
                p.output = p.input.clone();
            }
            ("dequeue", Object::Unordered) => {
                // Any element may come out: take a random one.
                let n = queue.len() as u64;
                p.output = if n == 0 {
                    Value::Null
                } else {
                    queue.remove(rng.below(n) as usize).unwrap_or_default()
                };
            }
            ("dequeue", _) => p.output = queue.pop_front().unwrap_or(Value::Null),
            _ => unreachable!("generator made an unknown op"),
        }
    }
    // Turn the plan into events in time order. Times are distinct by construction
    // except across processes; break ties by putting completions last.
    let mut events: Vec<(u64, u8, usize)> = Vec::new();
    for (i, p) in plan.iter().enumerate() {
        events.push((p.call, 0, i));
        events.push((p.ret, 1, i));
    }
    events.sort();
    let ops = events
        .into_iter()
        .map(|(t, half, i)| {
            let p = &plan[i];
            let (kind, value) = if half == 0 {
                let v = if matches!(p.f, "read" | "get" | "dequeue") {
                    Value::Null
                } else {
                    p.input.clone()
                };
                (OpType::Invoke, v)
            } else if p.outcome == OpType::Info {
                (OpType::Info, p.input.clone())
            } else {
                (p.outcome, p.output.clone())
            };
            let mut op = Op::new(0, Process::Client(p.process), kind, p.f, value);
            op.time = Some(t);
            op.key = p.key.clone();
            op
        })
        .collect();
    History::new(ops)
}

fn verdict<M: Model>(m: &M, h: &History, split: bool) -> Validity {
    let opts = LinearOptions {
        split_by_key: split,
        ..LinearOptions::default()
    };
    linear::check(m, h, &opts)
        .expect("generated histories are well formed")
        .validity
}

/// Replaces the result of one completed read-like op with another value.
fn forge(h: &History, seed: u64) -> Option<History> {
    let mut rng = Rng(seed ^ 0xF00D);
    let reads: Vec<usize> = h
        .ops
        .iter()
        .enumerate()
        .filter(|(_, o)| o.kind == OpType::Ok && matches!(o.f.as_str(), "read" | "get" | "dequeue"))
        .map(|(i, _)| i)
        .collect();
    if reads.is_empty() {
        return None;
    }
    let i = reads[rng.below(reads.len() as u64) as usize];
    let mut h = h.clone();
    let op = &mut h.ops[i];
    op.value = match op.f.as_str() {
        "get" => json!(format!("{}", rng.below(12))),
        "read" if op.value.is_array() => json!([rng.below(6)]),
        _ => json!(rng.below(5)),
    };
    Some(h)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn cas_register_histories_built_from_a_register_are_valid(seed: u64, procs in 1u64..6, n in 1usize..60) {
        let h = generate(seed, procs, n, 10, Object::CasRegister);
        prop_assert_eq!(verdict(&CasRegister::default(), &h, true), Validity::Valid);
    }

    #[test]
    fn kv_histories_are_valid_split_and_whole(seed: u64, procs in 1u64..5, n in 1usize..40) {
        let h = generate(seed, procs, n, 10, Object::Kv);
        prop_assert_eq!(verdict(&Kv, &h, true), Validity::Valid);
        prop_assert_eq!(verdict(&Kv, &h, false), Validity::Valid);
    }

    #[test]
    fn set_and_queue_histories_are_valid(seed: u64, procs in 1u64..5, n in 1usize..30) {
        prop_assert_eq!(verdict(&Set, &generate(seed, procs, n, 10, Object::Set), true), Validity::Valid);
        prop_assert_eq!(verdict(&FifoQueue, &generate(seed, procs, n, 10, Object::Fifo), true), Validity::Valid);
        prop_assert_eq!(verdict(&UnorderedQueue, &generate(seed, procs, n, 10, Object::Unordered), true), Validity::Valid);
    }

    #[test]
    fn search_agrees_with_exhaustive_oracle_on_forged_histories(seed: u64, procs in 1u64..4, n in 1usize..8) {
        let check_both = |m: &dyn Fn(&History) -> (Validity, bool), h: &History| {
            let (search, oracle) = m(h);
            assert_eq!(search == Validity::Valid, oracle, "search and oracle disagree");
        };
        let reg = |h: &History| (verdict(&CasRegister::default(), h, true), brute::is_linearizable(&CasRegister::default(), h).unwrap());
        let kv = |h: &History| (verdict(&Kv, h, false), brute::is_linearizable(&Kv, h).unwrap());
        let fifo = |h: &History| (verdict(&FifoQueue, h, true), brute::is_linearizable(&FifoQueue, h).unwrap());
        let unordered = |h: &History| (verdict(&UnorderedQueue, h, true), brute::is_linearizable(&UnorderedQueue, h).unwrap());
        let set = |h: &History| (verdict(&Set, h, true), brute::is_linearizable(&Set, h).unwrap());
        for (object, m) in [
            (Object::CasRegister, &reg as &dyn Fn(&History) -> (Validity, bool)),
            (Object::Kv, &kv),
            (Object::Fifo, &fifo),
            (Object::Unordered, &unordered),
            (Object::Set, &set),
        ] {
            let h = generate(seed, procs, n, 20, object);
            check_both(m, &h);
            if let Some(f) = forge(&h, seed) {
                check_both(m, &f);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn histories_with_many_crashed_ops_are_valid(seed: u64, procs in 1u64..6, n in 1usize..80) {
        let h = generate(seed, procs, n, 40, Object::CasRegister);
        prop_assert_eq!(verdict(&CasRegister::default(), &h, true), Validity::Valid);
        let h = generate(seed, procs, n.min(40), 40, Object::Set);
        prop_assert_eq!(verdict(&Set, &h, true), Validity::Valid);
        let h = generate(seed, procs, n.min(30), 40, Object::Unordered);
        prop_assert_eq!(verdict(&UnorderedQueue, &h, true), Validity::Valid);
    }

    #[test]
    fn long_sequential_histories_are_valid(seed: u64, n in 100usize..400) {
        // One process: no two operations overlap; some crash and are
        // pending from then on.
        let h = generate(seed, 1, n, 5, Object::CasRegister);
        prop_assert_eq!(verdict(&CasRegister::default(), &h, true), Validity::Valid);
    }

    #[test]
    fn search_agrees_with_exhaustive_oracle_when_most_ops_crash(seed: u64, procs in 1u64..5, n in 1usize..9) {
        for object in [Object::CasRegister, Object::Set, Object::Unordered] {
            let h = generate(seed, procs, n, 60, object);
            for h in std::iter::once(h.clone()).chain(forge(&h, seed)) {
                let (search, oracle) = match object {
                    Object::CasRegister => (verdict(&CasRegister::default(), &h, true), brute::is_linearizable(&CasRegister::default(), &h).unwrap()),
                    Object::Set => (verdict(&Set, &h, true), brute::is_linearizable(&Set, &h).unwrap()),
                    _ => (verdict(&UnorderedQueue, &h, true), brute::is_linearizable(&UnorderedQueue, &h).unwrap()),
                };
                prop_assert_eq!(search == Validity::Valid, oracle, "search and oracle disagree on {:?}", object);
            }
        }
    }
}

#[test]
fn forged_histories_are_often_invalid() {
    // Guards the differential test against forging that never changes anything.
    let mut invalid = 0;
    for seed in 0..200 {
        let h = generate(seed, 3, 7, 10, Object::CasRegister);
        if let Some(f) = forge(&h, seed) {
            if verdict(&CasRegister::default(), &f, true) == Validity::Invalid {
                invalid += 1;
            }
        }
    }
    assert!(
        invalid > 40,
        "only {invalid} of 200 forged histories were invalid"
    );
}

/// `faultline check --memory-limit` bounds the whole process: on a history
/// whose search could fill any memory (40 crashed writes, 40 concurrent
/// reads each needing one of them, then a write of 41 and a stale read of
/// 0: every crashed write took effect before the reads returned),
/// the verdict turns `unknown` with the reason, and the process's peak
/// resident memory, as `--stats` reads it, stays under the limit.
#[test]
fn memory_limit_bounds_the_whole_process() {
    let mut events = Vec::new();
    for p in 0..40 {
        events.push(Op::new(
            0,
            Process::Client(p),
            OpType::Invoke,
            "write",
            json!(p),
        ));
        events.push(Op::new(
            0,
            Process::Client(p),
            OpType::Info,
            "write",
            json!(p),
        ));
    }
    for p in 100..140 {
        events.push(Op::new(
            0,
            Process::Client(p),
            OpType::Invoke,
            "read",
            json!(null),
        ));
    }
    for p in 100..140 {
        events.push(Op::new(
            0,
            Process::Client(p),
            OpType::Ok,
            "read",
            json!(p - 100),
        ));
    }
    for (kind, f, value) in [
        (OpType::Invoke, "write", json!(41)),
        (OpType::Ok, "write", json!(41)),
        (OpType::Invoke, "read", json!(null)),
        (OpType::Ok, "read", json!(0)),
    ] {
        events.push(Op::new(0, Process::Client(999), kind, f, value));
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("hopeless.jsonl");
    let mut text = Vec::new();
    History::new(events)
        .write_jsonl(&mut text)
        .expect("write history");
    std::fs::write(&path, text).expect("write history file");
    // The debug binary holds some 38 MiB before the search starts: at 64
    // the search runs past 65,536 configurations, where it looks once for
    // an op no order can explain (it must find none here: 0 was written),
    // before the limit stops it.
    let limit_mib = 64;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["check", "--json", "--stats", "--model", "register"])
        .args(["--memory-limit", &limit_mib.to_string()])
        .arg(&path)
        .output()
        .expect("run faultline check");
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(report["verdict"], "unknown", "{report}");
    let reason = report["failures"][0]["reason"].as_str().unwrap_or("");
    assert!(
        reason.starts_with(&format!("memory budget of {limit_mib} MiB reached")),
        "{report}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let peak: u64 = stderr
        .split("peak memory ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no peak memory in {stderr}"));
    assert!(
        peak <= limit_mib,
        "peak {peak} MiB over the {limit_mib} MiB limit"
    );
}

/// A long single-key history with many processes, linearizable but for
/// one read, in the middle, of a value nothing wrote: the search alone
/// must walk every order of the ~5,000 operations before it (it ran out of
/// 10 GiB after minutes on such a history); the look for an operation no
/// order can explain settles it after a bounded number of configurations.
/// The counterexample names the read, and the shrink brings it down to
/// the read alone.
#[test]
fn a_read_of_a_value_never_written_in_a_long_concurrent_history_is_found_at_once() {
    let h = generate(7, 10, 10_000, 1, Object::CasRegister);
    // The completed read nearest the middle returns 99 instead.
    let reads: Vec<usize> = h
        .ops
        .iter()
        .enumerate()
        .filter(|(_, o)| o.kind == OpType::Ok && o.f == "read")
        .map(|(i, _)| i)
        .collect();
    let middle = reads[reads.len() / 2];
    let mut forged = h.clone();
    forged.ops[middle].value = json!(99);
    let opts = LinearOptions {
        time_limit: Some(std::time::Duration::from_secs(60)),
        shrink_time: std::time::Duration::from_secs(60),
        ..LinearOptions::default()
    };
    let started = std::time::Instant::now();
    let r = linear::check(&CasRegister::default(), &forged, &opts).expect("well formed");
    let took = started.elapsed();
    assert_eq!(r.validity, Validity::Invalid, "{:?}", r.keys[0].reason);
    let cx = r.keys[0].counterexample.as_ref().expect("counterexample");
    assert_eq!(cx.op.complete_index, Some(middle));
    assert!(
        cx.explanation.starts_with(
            "read returned 99, but no order of the operations called before it returned can explain that"
        ),
        "{}",
        cx.explanation
    );
    let shrunk = r.keys[0].shrunk.as_ref().expect("shrunk");
    assert!(shrunk.minimal);
    assert_eq!(shrunk.ops.len(), 1);
    assert_eq!(shrunk.ops[0].complete_index, Some(middle));
    // Generous for a debug build on a loaded machine; the search itself
    // stops after 65,536 configurations.
    assert!(took < std::time::Duration::from_secs(30), "took {took:?}");
    // The unforged history is valid: the forged read is the only fault.
    assert_eq!(verdict(&CasRegister::default(), &h, true), Validity::Valid);
}
