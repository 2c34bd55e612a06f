//! Property tests of the shrink of invalid linearizability verdicts
//! (`faultline::check::linear::shrink`): on small random cas-register
//! histories that are invalid, the shrunk sub-history is not linearizable
//! and removing any one of its operations, with every operation it may
//! have explained, makes it linearizable — both judged by the exhaustive
//! oracle, a second algorithm. An operation that observed a value (a
//! read, a cas) goes with any removed one that may have produced it
//! (`Model::may_produce`) and was invoked before it returned.

use faultline::check::linear::{self, brute, LinearOptions};
use faultline::check::Validity;
use faultline::history::{History, Op, OpType, Outcome, Process};
use faultline::model::{CasRegister, Model, Register, Values};
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
}

/// A random register history (with cas when `cas`) of `ops` calls over `procs` processes,
/// results drawn at random from a few values (so often not linearizable):
/// at each step an idle process calls, or a busy one completes (ok, fail
/// for a cas, or info, after which the process is retired).
fn random_history(seed: u64, procs: u64, ops: usize, cas: bool) -> History {
    let mut rng = Rng(seed);
    let mut events = Vec::new();
    // Per process: the pending call (f, input), or retired.
    let mut pending: Vec<Option<(&str, Value)>> = vec![None; procs as usize];
    let mut retired = vec![false; procs as usize];
    let mut called = 0;
    loop {
        let busy: Vec<usize> = (0..procs as usize)
            .filter(|&p| pending[p].is_some())
            .collect();
        let idle: Vec<usize> = (0..procs as usize)
            .filter(|&p| pending[p].is_none() && !retired[p])
            .collect();
        let call = called < ops && !idle.is_empty() && (busy.is_empty() || rng.below(2) == 0);
        if call {
            let p = idle[rng.below(idle.len() as u64) as usize];
            let (f, input) = match rng.below(if cas { 3 } else { 2 }) {
                0 => ("read", json!(null)),
                1 => ("write", json!(rng.below(3))),
                _ => ("cas", json!([rng.below(3), rng.below(3)])),
            };
            events.push(Op::new(
                0,
                Process::Client(p as u64),
                OpType::Invoke,
                f,
                input.clone(),
            ));
            pending[p] = Some((f, input));
            called += 1;
        } else if let Some(&p) = busy.get(rng.below(busy.len() as u64) as usize) {
            let Some((f, input)) = pending[p].take() else {
                continue;
            };
            let (kind, value) = match (f, rng.below(10)) {
                (_, 0) => {
                    retired[p] = true;
                    (OpType::Info, input)
                }
                ("read", _) => (OpType::Ok, json!(rng.below(3))),
                ("cas", 1..=3) => (OpType::Fail, input),
                _ => (OpType::Ok, input),
            };
            events.push(Op::new(0, Process::Client(p as u64), kind, f, value));
        } else {
            break;
        }
    }
    History::new(events)
}

/// The history without the call whose invocation is event `invoke`, and
/// without every call it may have explained, transitively: each call that
/// observed a value (`Model::may_produce`: a read of it, a cas expecting
/// it) which a removed call, invoked before the observer returned (a
/// crashed observer: at any time), may have produced.
fn without<M: Model>(m: &M, h: &History, invoke: usize) -> History {
    let calls = h.calls().expect("well formed");
    let mut values = Values::new();
    let ops: Vec<Option<M::Op>> = calls
        .iter()
        .map(|c| m.decode(c, &mut values).expect("decodable"))
        .collect();
    let returned = |r: usize| match calls[r].outcome {
        Outcome::Info => usize::MAX,
        _ => calls[r].complete.unwrap_or(usize::MAX),
    };
    let explains = |w: usize, r: usize| match (&ops[w], &ops[r]) {
        (Some(wo), Some(ro)) => w != r && calls[w].invoke < returned(r) && m.may_produce(wo, ro),
        _ => false,
    };
    let mut removed: Vec<bool> = calls.iter().map(|c| c.invoke == invoke).collect();
    loop {
        let more: Vec<usize> = (0..calls.len())
            .filter(|&r| !removed[r] && (0..calls.len()).any(|w| removed[w] && explains(w, r)))
            .collect();
        if more.is_empty() {
            break;
        }
        for r in more {
            removed[r] = true;
        }
    }
    let events: Vec<usize> = (0..calls.len())
        .filter(|&c| removed[c])
        .flat_map(|c| std::iter::once(calls[c].invoke).chain(calls[c].complete))
        .collect();
    History::new(
        h.ops
            .iter()
            .enumerate()
            .filter(|(i, _)| !events.contains(i))
            .map(|(_, op)| op.clone())
            .collect(),
    )
}

/// The shrunk sub-history of `h` (found invalid by the search) is not
/// linearizable, and is linearizable without any one of its calls, by the
/// exhaustive oracle.
fn check_shrink<M: Model>(m: &M, h: &History) -> Result<(), TestCaseError> {
    let r = linear::check(m, h, &LinearOptions::default()).expect("checkable");
    if r.validity != Validity::Invalid {
        return Ok(());
    }
    let shrunk = r.keys[0].shrunk.as_ref().expect("an invalid key is shrunk");
    prop_assert!(shrunk.minimal);
    prop_assert!(shrunk.ops.len() <= r.keys[0].ops);
    let sub = shrunk.history();
    prop_assert!(
        !brute::is_linearizable(m, &sub).expect("checkable"),
        "shrunk history is linearizable"
    );
    let calls = sub.calls().expect("well formed");
    prop_assert_eq!(calls.len(), shrunk.ops.len());
    for c in &calls {
        let smaller = without(m, &sub, c.invoke);
        prop_assert!(
            brute::is_linearizable(m, &smaller).expect("checkable"),
            "still not linearizable without the call at event {} (and what it may have explained)",
            c.invoke
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn shrunk_cas_register_histories_are_invalid_and_one_minimal(seed: u64, procs in 1u64..4, n in 1usize..8) {
        check_shrink(&CasRegister::default(), &random_history(seed, procs, n, true))?;
    }

    #[test]
    fn shrunk_register_histories_are_invalid_and_one_minimal(seed: u64, procs in 1u64..4, n in 1usize..8) {
        check_shrink(&Register, &random_history(seed, procs, n, false))?;
    }
}

/// The generator makes invalid histories often enough for the property to
/// test something.
#[test]
fn random_histories_are_often_invalid() {
    let invalid = (0..200u64)
        .filter(|&seed| {
            let h = random_history(seed, 3, 6, true);
            let r = linear::check(&CasRegister::default(), &h, &LinearOptions::default())
                .expect("checkable");
            r.validity == Validity::Invalid
        })
        .count();
    assert!(invalid >= 50, "only {invalid} of 200 invalid");
}
