//! The bank checker (Jepsen's `bank`): transfers move money between
//! accounts, reads return every balance; money is neither made nor lost,
//! so every successful read must total the initial amount, and — unless
//! the bank allows overdrafts — no balance is negative.
//!
//! Operations: `transfer` with value `{"from": a, "to": b, "amount": n}`,
//! and `read` whose result is every balance, as an object
//! `{"<account>": balance, ...}` or an array indexed by account.

use super::{plural, CallRef, Validity};
use crate::history::{Call, History, HistoryError, Outcome};
use serde::Serialize;
use serde_json::Value;

/// How to judge a bank history.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BankOptions {
    /// The total every read must see; `None`: the total of the first read
    /// to complete is taken as the reference (said so in the report, and a
    /// read that differs is said to differ from that one, not to be wrong).
    pub total: Option<i64>,
    /// Balances may go below zero.
    pub negative_balances: bool,
}

/// One read that broke a rule.
#[derive(Clone, Debug, Serialize)]
pub struct BadRead {
    /// The read.
    pub op: CallRef,
    /// What it saw in total, when its balances were numbers.
    pub total: Option<i64>,
    /// One sentence.
    pub reason: String,
}

/// The reads of one kind of error: how many, and the first ten.
#[derive(Clone, Debug, Default, Serialize)]
pub struct BadReads {
    /// How many reads.
    pub count: usize,
    /// The first ten, in invocation order.
    pub first: Vec<BadRead>,
}

impl BadReads {
    fn push(&mut self, b: BadRead) {
        self.count += 1;
        if self.first.len() < 10 {
            self.first.push(b);
        }
    }
}

/// Transfers by outcome.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Counts {
    /// Took effect.
    pub ok: usize,
    /// Did not.
    pub fail: usize,
    /// May have.
    pub info: usize,
}

/// The verdict on a bank history.
#[derive(Clone, Debug, Serialize)]
pub struct BankReport {
    /// The verdict.
    pub validity: Validity,
    /// The total reads were held to.
    pub total: Option<i64>,
    /// Where it came from: `options` or `first read`.
    pub total_from: &'static str,
    /// Transfers by outcome.
    pub transfers: Counts,
    /// Successful reads.
    pub reads: usize,
    /// Reads whose balances do not add up to the total.
    pub wrong_total: BadReads,
    /// Reads with a negative balance (when not allowed).
    pub negative: BadReads,
    /// Reads whose result is not a list of balances.
    pub malformed: BadReads,
    /// One or two sentences.
    pub explanation: String,
}

/// The balances a read saw, as `(account, balance)`, or why they are not
/// balances.
fn balances(v: &Value) -> Result<Vec<(String, i64)>, String> {
    let entries: Vec<(String, &Value)> = match v {
        Value::Object(m) => m.iter().map(|(k, b)| (k.clone(), b)).collect(),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, b)| (i.to_string(), b))
            .collect(),
        other => return Err(format!("its result {other} is not a map of balances")),
    };
    entries
        .into_iter()
        .map(|(k, b)| match b.as_i64() {
            Some(x) => Ok((k, x)),
            None => Err(format!("account {k} has balance {b}, not a whole number")),
        })
        .collect()
}

/// Checks a bank history.
pub fn check(history: &History, opts: &BankOptions) -> Result<BankReport, HistoryError> {
    let calls = history.calls()?;
    Ok(check_calls(&calls, opts))
}

/// Checks the calls of a bank history.
pub fn check_calls(calls: &[Call], opts: &BankOptions) -> BankReport {
    // Without a total: the first read to return balances sets it. Calls
    // come in invocation order; a read invoked first may return last.
    let reference = calls
        .iter()
        .filter(|c| c.f == "read" && c.outcome == Outcome::Ok)
        .filter_map(|c| {
            let sum: i64 = balances(&c.output).ok()?.iter().map(|(_, x)| x).sum();
            Some((c.complete.unwrap_or(usize::MAX), sum, CallRef::of(c)))
        })
        .min_by_key(|(done, _, _)| *done)
        .filter(|_| opts.total.is_none());
    let mut r = BankReport {
        validity: Validity::Valid,
        total: opts.total.or(reference.as_ref().map(|(_, sum, _)| *sum)),
        total_from: if opts.total.is_some() {
            "options"
        } else {
            "first read"
        },
        transfers: Counts::default(),
        reads: 0,
        wrong_total: BadReads::default(),
        negative: BadReads::default(),
        malformed: BadReads::default(),
        explanation: String::new(),
    };
    for c in calls {
        match (c.f.as_str(), c.outcome) {
            ("transfer", Outcome::Ok) => r.transfers.ok += 1,
            ("transfer", Outcome::Fail) => r.transfers.fail += 1,
            ("transfer", Outcome::Info) => r.transfers.info += 1,
            ("read", Outcome::Ok) => {
                r.reads += 1;
                let op = CallRef::of(c);
                let b = match balances(&c.output) {
                    Ok(b) => b,
                    Err(why) => {
                        let reason = format!("{} is malformed: {why}", op.describe());
                        r.malformed.push(BadRead {
                            op,
                            total: None,
                            reason,
                        });
                        continue;
                    }
                };
                let sum: i64 = b.iter().map(|(_, x)| x).sum();
                let expected = *r.total.get_or_insert(sum);
                if sum != expected {
                    let reason = match &reference {
                        Some((_, _, first)) => format!(
                            "{} saw balances totalling {sum}, but {} saw {expected} (without a total, which of them is wrong is not known; --total names it)",
                            op.describe(),
                            first.describe()
                        ),
                        None => format!(
                            "{} saw balances totalling {sum}, not {expected}",
                            op.describe()
                        ),
                    };
                    r.wrong_total.push(BadRead {
                        op: op.clone(),
                        total: Some(sum),
                        reason,
                    });
                }
                if !opts.negative_balances {
                    if let Some((k, x)) = b.iter().find(|(_, x)| *x < 0) {
                        let reason = format!("{} saw account {k} with balance {x}", op.describe());
                        r.negative.push(BadRead {
                            op,
                            total: Some(sum),
                            reason,
                        });
                    }
                }
            }
            _ => {}
        }
    }
    let mut problems = Vec::new();
    for (kind, bad) in [
        ("with the wrong total", &r.wrong_total),
        ("with a negative balance", &r.negative),
        ("that are not balances", &r.malformed),
    ] {
        if let Some(first) = bad.first.first() {
            problems.push(format!(
                "{} of {} {kind}; the first: {}",
                bad.count,
                plural(r.reads, "read", "reads"),
                first.reason
            ));
        }
    }
    if !problems.is_empty() {
        r.validity = Validity::Invalid;
        r.explanation = problems.join("; ");
    } else if r.reads == 0 {
        r.validity = Validity::Unknown;
        r.explanation = "no read succeeded, so no total was seen".into();
    } else {
        r.explanation = format!(
            "all {} reads total {} ({} from the {}), none negative; {} transfers ok, {} failed, {} unknown",
            r.reads,
            r.total.unwrap_or(0),
            if opts.total.is_some() { "set" } else { "taken" },
            r.total_from,
            r.transfers.ok,
            r.transfers.fail,
            r.transfers.info
        );
        if opts.negative_balances {
            r.explanation = r.explanation.replace(", none negative", "");
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Op, OpType, Process};
    use serde_json::json;

    fn call(p: u64, f: &str, input: Value, kind: OpType, output: Value) -> Vec<Op> {
        vec![
            Op::new(0, Process::Client(p), OpType::Invoke, f, input),
            Op::new(0, Process::Client(p), kind, f, output),
        ]
    }

    fn transfer(p: u64, from: u64, to: u64, amount: i64, kind: OpType) -> Vec<Op> {
        let v = json!({"from": from, "to": to, "amount": amount});
        call(p, "transfer", v.clone(), kind, v)
    }

    fn read(p: u64, balances: Value) -> Vec<Op> {
        call(p, "read", Value::Null, OpType::Ok, balances)
    }

    const TOTAL: BankOptions = BankOptions {
        total: Some(100),
        negative_balances: false,
    };

    #[test]
    fn reads_that_keep_the_total_are_valid() {
        let mut ops = read(0, json!({"0": 50, "1": 50}));
        ops.extend(transfer(1, 0, 1, 5, OpType::Ok));
        ops.extend(transfer(1, 0, 1, 500, OpType::Fail));
        ops.extend(read(0, json!([45, 55])));
        let r = check(&History::new(ops), &TOTAL).unwrap();
        assert_eq!(r.validity, Validity::Valid, "{}", r.explanation);
        assert_eq!((r.reads, r.transfers.ok, r.transfers.fail), (2, 1, 1));
        assert_eq!(
            r.explanation,
            "all 2 reads total 100 (set from the options), none negative; 1 transfers ok, 1 failed, 0 unknown"
        );
    }

    #[test]
    fn a_read_with_the_wrong_total_is_named() {
        let mut ops = read(0, json!({"0": 50, "1": 50}));
        ops.extend(read(3, json!({"0": 45, "1": 50})));
        let r = check(&History::new(ops), &TOTAL).unwrap();
        assert_eq!(r.validity, Validity::Invalid);
        assert_eq!(r.wrong_total.count, 1);
        assert_eq!(r.wrong_total.first[0].total, Some(95));
        assert_eq!(r.wrong_total.first[0].op.invoke, 2);
        assert_eq!(
            r.explanation,
            "1 of 2 reads with the wrong total; the first: process 3's read (events 2 to 3) saw balances totalling 95, not 100"
        );
    }

    #[test]
    fn without_a_total_the_first_read_sets_it() {
        let mut ops = read(0, json!([10, 10]));
        ops.extend(read(0, json!([15, 10])));
        let r = check(&History::new(ops), &BankOptions::default()).unwrap();
        assert_eq!(r.validity, Validity::Invalid);
        assert_eq!((r.total, r.total_from), (Some(20), "first read"));
        assert!(
            r.explanation.ends_with(
                "saw balances totalling 25, but process 0's read (events 0 to 1) saw 20 \
                 (without a total, which of them is wrong is not known; --total names it)"
            ),
            "{}",
            r.explanation
        );
    }

    #[test]
    fn without_a_total_the_first_read_to_return_sets_it_and_blames_neither() {
        // Process 1's read is invoked first but returns last; process 2's
        // returns first and sets the reference.
        let ops = vec![
            Op::new(0, Process::Client(1), OpType::Invoke, "read", Value::Null),
            Op::new(0, Process::Client(2), OpType::Invoke, "read", Value::Null),
            Op::new(
                0,
                Process::Client(2),
                OpType::Ok,
                "read",
                json!({"0": 60, "1": 40}),
            ),
            Op::new(
                0,
                Process::Client(1),
                OpType::Ok,
                "read",
                json!({"0": 55, "1": 40}),
            ),
        ];
        let r = check(&History::new(ops), &BankOptions::default()).unwrap();
        assert_eq!(r.validity, Validity::Invalid);
        assert_eq!((r.total, r.total_from), (Some(100), "first read"));
        assert_eq!(r.wrong_total.first[0].total, Some(95));
        assert_eq!(
            r.explanation,
            "1 of 2 reads with the wrong total; the first: process 1's read (events 0 to 3) saw balances totalling 95, \
             but process 2's read (events 1 to 2) saw 100 (without a total, which of them is wrong is not known; --total names it)"
        );
    }

    #[test]
    fn negative_balances_only_when_not_allowed() {
        let ops = read(0, json!({"0": -5, "1": 105}));
        let h = History::new(ops);
        let r = check(&h, &TOTAL).unwrap();
        assert_eq!(r.validity, Validity::Invalid);
        assert_eq!(r.negative.count, 1);
        assert_eq!(
            r.explanation,
            "1 of 1 read with a negative balance; the first: process 0's read (events 0 to 1) saw account 0 with balance -5"
        );
        let allowed = BankOptions {
            negative_balances: true,
            ..TOTAL
        };
        let r = check(&h, &allowed).unwrap();
        assert_eq!(r.validity, Validity::Valid, "{}", r.explanation);
    }

    #[test]
    fn malformed_reads_and_no_reads() {
        let r = check(&History::new(read(0, json!({"0": "x"}))), &TOTAL).unwrap();
        assert_eq!(r.validity, Validity::Invalid);
        assert!(
            r.explanation
                .ends_with("is malformed: account 0 has balance \"x\", not a whole number"),
            "{}",
            r.explanation
        );
        let r = check(&History::new(transfer(0, 0, 1, 1, OpType::Ok)), &TOTAL).unwrap();
        assert_eq!(r.validity, Validity::Unknown);
        assert_eq!(r.explanation, "no read succeeded, so no total was seen");
    }

    /// A history built against a real bank of 4 accounts holding 100:
    /// each (slot, from, to, amount) step invokes a transfer or a read on
    /// a free slot, or completes a busy one, the effect happening
    /// atomically at completion. Valid by construction; adding 1 to one
    /// balance of one read makes exactly that read wrong.
    fn simulate(script: &[(u8, u8, u8, u8)]) -> History {
        let mut balances = [25i64; 4];
        let mut ops = Vec::new();
        let mut busy: [Option<Value>; 3] = [None, None, None];
        for &(slot, from, to, amount) in script {
            let s = slot as usize % 3;
            let p = Process::Client(s as u64);
            match busy[s].take() {
                None => {
                    let (f, v) = if amount % 4 == 0 {
                        ("read", Value::Null)
                    } else {
                        let (from, to) = (from % 4, to % 4);
                        let to = if to == from { (to + 1) % 4 } else { to };
                        (
                            "transfer",
                            json!({"from": from, "to": to, "amount": amount % 30}),
                        )
                    };
                    ops.push(Op::new(0, p, OpType::Invoke, f, v.clone()));
                    busy[s] = Some(v);
                }
                Some(Value::Null) => {
                    let read: serde_json::Map<String, Value> = (0..4)
                        .map(|i| (i.to_string(), json!(balances[i])))
                        .collect();
                    ops.push(Op::new(0, p, OpType::Ok, "read", Value::Object(read)));
                }
                Some(t) => {
                    let field = |n: &str| t[n].as_i64().unwrap_or(0);
                    let (from, to, amount) = (field("from"), field("to"), field("amount"));
                    let kind = if balances[from as usize] >= amount {
                        balances[from as usize] -= amount;
                        balances[to as usize] += amount;
                        OpType::Ok
                    } else {
                        OpType::Fail
                    };
                    ops.push(Op::new(0, p, kind, "transfer", t));
                }
            }
        }
        History::new(ops)
    }

    proptest::proptest! {
        #[test]
        fn histories_of_a_real_bank_are_valid_and_a_forged_balance_is_caught(
            script in proptest::collection::vec((0u8..3, 0u8..4, 0u8..4, 0u8..40), 0..200),
            pick in 0usize..1000,
        ) {
            let h = simulate(&script);
            let r = check(&h, &TOTAL).unwrap();
            proptest::prop_assert_ne!(r.validity, Validity::Invalid, "{}", r.explanation);
            let reads: Vec<usize> = (0..h.len())
                .filter(|i| h.ops[*i].kind == OpType::Ok && h.ops[*i].f == "read")
                .collect();
            proptest::prop_assume!(!reads.is_empty());
            let at = reads[pick % reads.len()];
            let mut forged = h.clone();
            let b = forged.ops[at].value["2"].as_i64().unwrap_or(0);
            forged.ops[at].value["2"] = json!(b + 1);
            let r = check(&forged, &TOTAL).unwrap();
            proptest::prop_assert_eq!(r.validity, Validity::Invalid);
            proptest::prop_assert_eq!(r.wrong_total.count, 1);
            proptest::prop_assert_eq!(r.wrong_total.first[0].op.complete, Some(at));
            proptest::prop_assert_eq!(r.wrong_total.first[0].total, Some(101));
        }
    }
}
