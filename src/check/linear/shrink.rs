//! Minimal failing sub-histories: given a key found not linearizable,
//! [`shrink`] looks for the smallest set of its operations that is still
//! not linearizable and becomes linearizable when any one of them is
//! removed (1-minimal), within a time budget.
//!
//! A candidate is a subset of the key's calls; it is checked as a history
//! of its own (each kept call's invocation and completion, in their
//! original order), through [`super::check`] — so the shrunk history is
//! exactly what `faultline check` would read back.
//!
//! Removing a write removes with it every call it may have explained:
//! each kept call that observed a value (a read; a cas, its expected
//! value; a failed cas, its mismatch) which the removed op, invoked before
//! that call returned, may have produced ([`Model::may_produce`]) — and so
//! on, since a cas removed takes the observers of its value with it. Then
//! no removed op could have explained anything kept: put back as ops that
//! may or may not have happened, they could not make the sub-history
//! linearizable, so its failure is one the whole history has, not one
//! made by leaving out the write that explained a read (which would show
//! a "stale read" of a value another write had just written again). And a
//! stale read (write 1, write 2, then read 1) does not shrink to the read
//! alone, which would tell nothing. So "1-minimal" here means: removing
//! any one kept call, with the calls it may have explained, makes the
//! sub-history linearizable. A read whose value no op of the key may have
//! produced still stands alone. For models that cannot say what produced
//! a value (`may_produce` false), a removed op takes nothing with it.
//!
//! The steps, cheapest first: drop the calls invoked after the stuck
//! operation returned (and then those still running when it returned),
//! then delta debugging (ddmin: remove chunks of halving size) of the
//! other calls, keeping the stuck one so that the result usually fails at
//! the same operation; ddmin ends at chunks of one call, where every
//! one-call removal has been tried and found linearizable. Last, the stuck
//! call itself is removed if the rest still fails (and ddmin runs again
//! without it): the result is 1-minimal. When time runs out the smallest
//! failing set found so far is returned, marked not minimal.

use super::{check, Counterexample, LinearOptions, OpRef};
use crate::check::Validity;
use crate::history::{Call, History, Op, Outcome};
use crate::model::{Model, Values};
use serde::Serialize;
use std::time::{Duration, Instant};

/// The smallest failing sub-history found for one key.
#[derive(Clone, Debug, Serialize)]
pub struct MinimalHistory {
    /// Its operations, in order of invocation (indices are those of the
    /// original history).
    pub ops: Vec<OpRef>,
    /// Its events as native history entries, in the original order and
    /// with their original `index`; renumbered, they are a history that
    /// checks invalid.
    pub events: Vec<Op>,
    /// True when removing any one of `ops` makes the sub-history
    /// linearizable; false when the time ran out first (then `ops` is the
    /// smallest failing set found so far).
    pub minimal: bool,
    /// Sub-histories checked.
    pub checks: usize,
    /// Time spent shrinking.
    #[serde(rename = "elapsed_ms", serialize_with = "super::as_millis")]
    pub elapsed: Duration,
}

impl MinimalHistory {
    /// The sub-history as a history of its own, renumbered from 0.
    pub fn history(&self) -> History {
        History::new(self.events.clone())
    }
}

/// Shrinks the calls `members` of `calls` (one key's, found not
/// linearizable with counterexample `cx`) to a minimal failing set, for at
/// most `opts.shrink_time`.
pub fn shrink<M: Model>(
    model: &M,
    history: &History,
    calls: &[Call],
    members: &[usize],
    cx: &Counterexample,
    opts: &LinearOptions,
) -> MinimalHistory {
    let start = Instant::now();
    let deadline = start + opts.shrink_time;
    // Only calls the model reads take part: the others change nothing.
    let mut values = Values::new();
    let mut decoded: Vec<Option<M::Op>> = vec![None; calls.len()];
    for &i in members {
        if let Ok(Some(op)) = model.decode(&calls[i], &mut values) {
            decoded[i] = Some(op);
        }
    }
    let mut set: Vec<usize> = members
        .iter()
        .copied()
        .filter(|&i| decoded[i].is_some())
        .collect();
    let mut trial = Trial {
        model,
        history,
        calls,
        decoded: &decoded,
        opts,
        deadline,
        checks: 0,
        stopped: false,
    };
    // The whole set is known to fail: the search just said so.
    if let Some(stuck) = set
        .iter()
        .map(|&i| &calls[i])
        .find(|c| c.invoke == cx.op.invoke_index)
    {
        let returned = stuck.complete.unwrap_or(usize::MAX);
        let before = trial.without(&set, |i| calls[i].invoke >= returned);
        if before.len() < set.len() && trial.fails(&before) {
            set = before;
        }
        let done = trial.without(&set, |i| !ended_by(&calls[i], returned));
        if done.len() < set.len() && trial.fails(&done) {
            set = done;
        }
    }
    // First keep the stuck operation, so that the sub-history usually
    // fails where the key did; then see whether it can go too (the
    // failure did not need it), and if so shrink on without it.
    let mut pinned: Vec<usize> = set
        .iter()
        .copied()
        .filter(|&i| calls[i].invoke == cx.op.invoke_index)
        .collect();
    let mut minimal = ddmin(&mut trial, &mut set, &mut pinned);
    if minimal && !pinned.is_empty() {
        let rest = trial.without(&set, |i| pinned.contains(&i));
        if trial.fails(&rest) {
            set = rest;
            pinned.clear();
            minimal = ddmin(&mut trial, &mut set, &mut pinned);
        }
    }
    minimal &= !trial.stopped;
    set.sort_unstable_by_key(|&i| calls[i].invoke);
    let ops = set
        .iter()
        .map(|&i| {
            let c = &calls[i];
            let description = match &decoded[i] {
                Some(op) => model.describe_op(op, &values),
                None => c.f.clone(),
            };
            OpRef {
                invoke_index: c.invoke,
                complete_index: c.complete,
                process: c.process,
                f: c.f.clone(),
                outcome: c.outcome,
                description,
            }
        })
        .collect();
    MinimalHistory {
        ops,
        events: events(history, calls, &set),
        minimal,
        checks: trial.checks,
        elapsed: start.elapsed(),
    }
}

/// True when `c` completed (not `info`) no later than event `returned`.
fn ended_by(c: &Call, returned: usize) -> bool {
    c.outcome != Outcome::Info && c.complete.is_some_and(|e| e <= returned)
}

/// Delta debugging over `set` (which fails), never removing `pinned`
/// directly: removes chunks of the other calls, each with the reads that
/// depended on it alone ([`Trial::without`]), while the rest still fails,
/// halving the chunk size when no chunk can go. A pinned call that goes
/// with a chunk (a read whose writes went) leaves `pinned`. True when it
/// ended at chunks of one call with none removable; false when the time
/// ran out.
fn ddmin<M: Model>(
    trial: &mut Trial<'_, M>,
    set: &mut Vec<usize>,
    pinned: &mut Vec<usize>,
) -> bool {
    // Without a pinned call a lone call needs no test: removing it leaves
    // the empty history, which is linearizable.
    let mut n = 2usize;
    loop {
        let free: Vec<usize> = set
            .iter()
            .copied()
            .filter(|i| !pinned.contains(i))
            .collect();
        let smallest = if pinned.is_empty() { 2 } else { 1 };
        if free.len() < smallest {
            break;
        }
        let chunk = free.len().div_ceil(n).max(1);
        let mut removed = false;
        let mut at = 0;
        while at < free.len() {
            let gone = &free[at..(at + chunk).min(free.len())];
            let candidate = trial.without(set, |i| gone.contains(&i));
            if trial.fails(&candidate) {
                *set = candidate;
                pinned.retain(|i| set.contains(i));
                removed = true;
                // Keep the granularity: the set shrank by one chunk.
                n = n.saturating_sub(1).max(2);
                break;
            }
            if trial.stopped {
                return false;
            }
            at += chunk;
        }
        if removed {
            continue;
        }
        if chunk == 1 {
            return true;
        }
        n = (n * 2).min(free.len());
    }
    !trial.stopped
}

/// Checks candidate sets, within the deadline.
struct Trial<'a, M: Model> {
    model: &'a M,
    history: &'a History,
    calls: &'a [Call],
    /// Each call's decoded op (by call index), for the key's calls.
    decoded: &'a [Option<M::Op>],
    opts: &'a LinearOptions,
    deadline: Instant,
    checks: usize,
    stopped: bool,
}

impl<M: Model> Trial<'_, M> {
    /// `set` without the calls `gone` picks, and without every call of
    /// `set` that observed a value (a read, a cas's expected value, a
    /// failed cas's mismatch) which one of the calls that go, invoked
    /// before it returned, may have produced ([`Model::may_produce`]) —
    /// repeated, since a cas that goes takes the observers of its value
    /// with it. So no call that went could have explained what a kept call
    /// saw: put back as calls that may or may not have happened, none of
    /// them could make the sub-history linearizable, and its failure is
    /// one the whole history has. Keeping a read because another write of
    /// the same value stays would not do: the write that explained it may
    /// be the one that went, and the sub-history would fail where the
    /// history did not (a stale read of the value an earlier write left).
    fn without(&self, set: &[usize], gone: impl Fn(usize) -> bool) -> Vec<usize> {
        let op = |i: usize| self.decoded[i].as_ref();
        // A crashed call never returned: it may take effect any time.
        let returned = |r: usize| match self.calls[r].outcome {
            Outcome::Info => usize::MAX,
            _ => self.calls[r].complete.unwrap_or(usize::MAX),
        };
        let may_explain = |w: usize, r: usize| {
            w != r
                && self.calls[w].invoke < returned(r)
                && op(w)
                    .zip(op(r))
                    .is_some_and(|(w, r)| self.model.may_produce(w, r))
        };
        let mut removed: Vec<bool> = vec![false; self.calls.len()];
        for &i in set {
            removed[i] = gone(i);
        }
        loop {
            let dropped: Vec<usize> = set
                .iter()
                .copied()
                .filter(|&r| !removed[r])
                .filter(|&r| set.iter().any(|&w| removed[w] && may_explain(w, r)))
                .collect();
            if dropped.is_empty() {
                break;
            }
            for r in dropped {
                removed[r] = true;
            }
        }
        set.iter().copied().filter(|&i| !removed[i]).collect()
    }

    /// True when the calls `set` alone are not linearizable. A check that
    /// ends unknown (time, memory, cancelled) counts as not failing and
    /// stops the shrink.
    fn fails(&mut self, set: &[usize]) -> bool {
        let now = Instant::now();
        if self.stopped || now >= self.deadline || set.is_empty() {
            self.stopped |= now >= self.deadline;
            return false;
        }
        self.checks += 1;
        let sub = History::new(events(self.history, self.calls, set));
        let opts = LinearOptions {
            time_limit: Some(self.deadline - now),
            shrink_time: Duration::ZERO,
            max_paths: 0,
            stop_at_first_invalid: true,
            ..self.opts.clone()
        };
        match check(self.model, &sub, &opts).map(|r| r.validity) {
            Ok(Validity::Invalid) => true,
            Ok(Validity::Unknown) => {
                self.stopped = true;
                false
            }
            _ => false,
        }
    }
}

/// The events of the calls `set` of `history`, in history order.
fn events(history: &History, calls: &[Call], set: &[usize]) -> Vec<Op> {
    let mut at: Vec<usize> = set
        .iter()
        .flat_map(|&i| std::iter::once(calls[i].invoke).chain(calls[i].complete))
        .collect();
    at.sort_unstable();
    at.iter().map(|&e| history.ops[e].clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::super::{check, LinearOptions, LinearReport};
    use crate::check::Validity;
    use crate::history::{History, Op, OpType, Process};
    use crate::model::CasRegister;
    use serde_json::{json, Value};
    use std::time::Duration;

    /// A history from `(process, type, f, value)` events.
    fn h(events: &[(u64, &str, &str, Value)]) -> History {
        History::new(
            events
                .iter()
                .map(|(p, t, f, v)| {
                    let kind = OpType::parse(t).expect("type");
                    Op::new(0, Process::Client(*p), kind, *f, v.clone())
                })
                .collect(),
        )
    }

    fn run(history: &History, opts: &LinearOptions) -> LinearReport {
        check(&CasRegister::default(), history, opts).expect("checkable")
    }

    /// The shrunk sub-history's operations, as `(invoke, description)`.
    fn shrunk(r: &LinearReport) -> Vec<(usize, String)> {
        let m = r.keys[0].shrunk.as_ref().expect("shrunk");
        assert!(m.minimal, "not proven minimal: {m:?}");
        m.ops
            .iter()
            .map(|o| (o.invoke_index, o.description.clone()))
            .collect()
    }

    #[test]
    fn a_read_of_the_initial_value_after_a_write_keeps_the_write_and_the_read() {
        // Process 2 reads concurrently with everything (harmless), process
        // 0 writes 1, then process 1 reads nil: stale. Process 3's
        // write 2 starts after the stale read returned.
        let hist = h(&[
            (2, "invoke", "read", json!(null)),
            (0, "invoke", "write", json!(1)),
            (0, "ok", "write", json!(1)),
            (1, "invoke", "read", json!(null)),
            (1, "ok", "read", json!(null)),
            (2, "ok", "read", json!(1)),
            (3, "invoke", "write", json!(2)),
            (3, "ok", "write", json!(2)),
        ]);
        let r = run(&hist, &LinearOptions::default());
        assert_eq!(r.validity, Validity::Invalid);
        assert_eq!(
            r.keys[0].counterexample.as_ref().expect("cx").explanation,
            "read returned nil, but every order of the operations before it leaves 1"
        );
        assert_eq!(
            shrunk(&r),
            vec![
                (1, "write 1".to_string()),
                (3, "read returned nil".to_string())
            ]
        );
        // Read back on its own, the sub-history fails at the same read.
        let sub = r.keys[0].shrunk.as_ref().expect("shrunk").history();
        let again = run(&sub, &LinearOptions::default());
        assert_eq!(again.validity, Validity::Invalid);
        assert_eq!(
            again.keys[0]
                .counterexample
                .as_ref()
                .expect("cx")
                .op
                .description,
            "read returned nil"
        );
    }

    #[test]
    fn a_read_of_a_value_never_written_alone_is_the_minimal_set() {
        // Removing the writes leaves the read of 3 failing on its own: the
        // smallest failing sub-history is that one read.
        let hist = h(&[
            (0, "invoke", "write", json!(1)),
            (0, "ok", "write", json!(1)),
            (1, "invoke", "write", json!(2)),
            (1, "ok", "write", json!(2)),
            (0, "invoke", "read", json!(null)),
            (0, "ok", "read", json!(3)),
        ]);
        let r = run(&hist, &LinearOptions::default());
        assert_eq!(r.validity, Validity::Invalid);
        assert_eq!(shrunk(&r), vec![(4, "read returned 3".to_string())]);
    }

    #[test]
    fn a_stale_read_keeps_the_write_it_read_and_the_write_it_missed() {
        // write 1, then write 2, then a read of 1: stale. A read of a
        // value nobody wrote fails alone, but this read's value was
        // written, so the write of 1 stays with it, and the write of 2
        // is what makes it stale. Process 2's read of 2 is harmless.
        let hist = h(&[
            (0, "invoke", "write", json!(1)),
            (0, "ok", "write", json!(1)),
            (1, "invoke", "write", json!(2)),
            (1, "ok", "write", json!(2)),
            (2, "invoke", "read", json!(null)),
            (2, "ok", "read", json!(2)),
            (0, "invoke", "read", json!(null)),
            (0, "ok", "read", json!(1)),
        ]);
        let r = run(&hist, &LinearOptions::default());
        assert_eq!(r.validity, Validity::Invalid);
        assert_eq!(
            r.keys[0].counterexample.as_ref().expect("cx").explanation,
            "read returned 1, but every order of the operations before it leaves 2"
        );
        assert_eq!(
            shrunk(&r),
            vec![
                (0, "write 1".to_string()),
                (2, "write 2".to_string()),
                (6, "read returned 1".to_string())
            ]
        );
        // Read back on its own, the sub-history fails at the same read,
        // for the same reason.
        let sub = r.keys[0].shrunk.as_ref().expect("shrunk").history();
        let again = run(&sub, &LinearOptions::default());
        assert_eq!(again.validity, Validity::Invalid);
        assert_eq!(
            again.keys[0]
                .counterexample
                .as_ref()
                .expect("cx")
                .explanation,
            "read returned 1, but every order of the operations before it leaves 2"
        );
    }

    #[test]
    fn a_failed_cas_that_should_have_matched_keeps_the_write_it_missed() {
        // write 1, then cas 1->3 fails (it saw no 1), then write 2. Alone the failed cas is fine (nil is not 1); after
        // write 1 it cannot be: the minimal set is those two.
        let hist = h(&[
            (0, "invoke", "write", json!(1)),
            (0, "ok", "write", json!(1)),
            (0, "invoke", "cas", json!([1, 3])),
            (0, "fail", "cas", json!([1, 3])),
            (1, "invoke", "write", json!(2)),
            (1, "ok", "write", json!(2)),
        ]);
        let r = run(&hist, &LinearOptions::default());
        assert_eq!(r.validity, Validity::Invalid);
        let ops = shrunk(&r);
        assert_eq!(ops.len(), 2, "{ops:?}");
        assert_eq!(ops[0], (0, "write 1".to_string()));
        assert_eq!(ops[1].0, 2, "{ops:?}");
    }

    #[test]
    fn shrink_time_zero_leaves_verdicts_unshrunk() {
        let hist = h(&[
            (0, "invoke", "read", json!(null)),
            (0, "ok", "read", json!(3)),
        ]);
        let opts = LinearOptions {
            shrink_time: Duration::ZERO,
            ..LinearOptions::default()
        };
        let r = run(&hist, &opts);
        assert_eq!(r.validity, Validity::Invalid);
        assert!(r.keys[0].shrunk.is_none());
    }

    #[test]
    fn when_time_runs_out_the_smallest_so_far_is_marked_not_minimal() {
        // No time for a single check: the key's own calls are the smallest
        // failing set known.
        let hist = h(&[
            (0, "invoke", "write", json!(1)),
            (0, "ok", "write", json!(1)),
            (1, "invoke", "write", json!(2)),
            (1, "ok", "write", json!(2)),
            (0, "invoke", "read", json!(null)),
            (0, "ok", "read", json!(3)),
        ]);
        let opts = LinearOptions {
            shrink_time: Duration::from_nanos(1),
            ..LinearOptions::default()
        };
        let r = run(&hist, &opts);
        assert_eq!(r.validity, Validity::Invalid);
        let m = r.keys[0].shrunk.as_ref().expect("shrunk");
        assert!(!m.minimal);
        assert_eq!(m.ops.len(), 3);
        assert_eq!(m.events.len(), 6);
    }

    #[test]
    fn valid_keys_are_not_shrunk() {
        let hist = h(&[
            (0, "invoke", "write", json!(1)),
            (0, "ok", "write", json!(1)),
            (0, "invoke", "read", json!(null)),
            (0, "ok", "read", json!(1)),
        ]);
        let r = run(&hist, &LinearOptions::default());
        assert_eq!(r.validity, Validity::Valid);
        assert!(r.keys[0].shrunk.is_none());
    }

    /// What `Trial::without` keeps of every call of `hist` when the calls
    /// in `gone` go, as their descriptions.
    fn kept_without(hist: &History, gone: &[usize]) -> Vec<String> {
        use crate::model::{Model, Values};
        let model = CasRegister::default();
        let calls = hist.calls().expect("pairs");
        let mut values = Values::new();
        let decoded: Vec<_> = calls
            .iter()
            .map(|c| model.decode(c, &mut values).ok().flatten())
            .collect();
        let opts = LinearOptions::default();
        let trial = super::Trial {
            model: &model,
            history: hist,
            calls: &calls,
            decoded: &decoded,
            opts: &opts,
            deadline: std::time::Instant::now() + Duration::from_secs(5),
            checks: 0,
            stopped: false,
        };
        let all: Vec<usize> = (0..calls.len()).collect();
        trial
            .without(&all, |i| gone.contains(&i))
            .into_iter()
            .map(|i| model.describe_op(decoded[i].as_ref().expect("op"), &values))
            .collect()
    }

    #[test]
    fn a_read_goes_with_its_write_even_when_a_later_write_has_the_same_value() {
        // write 0, read 0, then (after the read returned) write 0 again: the
        // second write cannot explain the read, so with the first write
        // gone the read goes too (it would otherwise fail on its own, a
        // failure the history does not have).
        let hist = h(&[
            (0, "invoke", "write", json!(0)),
            (0, "ok", "write", json!(0)),
            (1, "invoke", "read", Value::Null),
            (1, "ok", "read", json!(0)),
            (2, "invoke", "write", json!(0)),
            (2, "ok", "write", json!(0)),
        ]);
        assert_eq!(kept_without(&hist, &[0]), ["write 0"]);
        // Even with a write of the same value running when the read
        // returned, the read goes: the write that went may be the one it
        // read, and nothing says the other is.
        let overlapping = h(&[
            (0, "invoke", "write", json!(0)),
            (0, "ok", "write", json!(0)),
            (2, "invoke", "write", json!(0)),
            (1, "invoke", "read", Value::Null),
            (1, "ok", "read", json!(0)),
            (2, "ok", "write", json!(0)),
        ]);
        assert_eq!(kept_without(&overlapping, &[0]), ["write 0"]);
    }

    #[test]
    fn a_cas_goes_with_the_write_it_found_and_takes_the_reads_of_its_value() {
        // write 1, cas 1 -> 4, read 4: without the write, the cas has
        // nothing to have found, and the read nothing to have read.
        let hist = h(&[
            (0, "invoke", "write", json!(1)),
            (0, "ok", "write", json!(1)),
            (1, "invoke", "cas", json!([1, 4])),
            (1, "ok", "cas", json!([1, 4])),
            (2, "invoke", "read", Value::Null),
            (2, "ok", "read", json!(4)),
        ]);
        assert!(kept_without(&hist, &[0]).is_empty());
        assert_eq!(
            kept_without(&hist, &[2]),
            ["write 1", "cas 1 -> 4 succeeded"]
        );
    }
}
