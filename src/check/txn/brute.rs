//! A small exhaustive serializability checker for list-append histories,
//! used as an oracle in differential tests of the real checker.
//!
//! It tries every order of the committed transactions, with every subset of
//! the `info` ones placed anywhere in it (or left out), and replays each
//! order on empty lists: an order explains the history when every read of
//! every `ok` transaction returns exactly the list it saw. Strict
//! serializability also keeps real time: a transaction that completed `ok`
//! before another was invoked comes first. No inference, no graph, nothing
//! clever, so it is only usable on a handful of transactions (about 7).

use super::TxnError;
use crate::history::{History, Outcome};
use serde_json::Value;
use std::collections::BTreeMap;

/// One transaction as the oracle sees it.
struct Txn {
    outcome: Outcome,
    invoke: usize,
    complete: Option<usize>,
    /// `(is append, key, value)`: an append's value, or a read's list
    /// (`None` when the read's result is unknown).
    mops: Vec<(bool, String, Option<Value>)>,
}

/// True if some order of the committed transactions (and of any subset of
/// the `info` ones) explains every read of a list-append history; with
/// `strict`, the order must also respect real time. Exponential: keep
/// histories tiny. Client operations other than `txn` are ignored.
pub fn is_serializable(history: &History, strict: bool) -> Result<bool, TxnError> {
    let mut txns = Vec::new();
    for c in history.calls()? {
        if !super::parse::is_txn(&c.f) || c.outcome == Outcome::Fail {
            continue;
        }
        let known = c.outcome == Outcome::Ok && !c.output.is_null();
        let value = if known { &c.output } else { &c.input };
        let at = || history.locate(c.invoke);
        let list = value.as_array().ok_or_else(|| TxnError::Decode {
            at: at(),
            message: format!("a txn's value must be a list of micro-operations, got {value}"),
        })?;
        let mut mops = Vec::with_capacity(list.len());
        for m in list {
            let bad = || TxnError::Decode {
                at: at(),
                message: format!("expected [\"append\", k, v] or [\"r\", k, [..]], got {m}"),
            };
            let parts = m.as_array().filter(|p| p.len() == 3).ok_or_else(bad)?;
            let f = parts[0].as_str().map(|s| s.trim_start_matches(':'));
            let key = parts[1].to_string();
            match f {
                Some("append") => mops.push((true, key, Some(parts[2].clone()))),
                Some("r") if known => {
                    let seen = match &parts[2] {
                        Value::Null => Value::Array(Vec::new()),
                        v => v.clone(),
                    };
                    mops.push((false, key, Some(seen)));
                }
                Some("r") => mops.push((false, key, None)),
                _ => return Err(bad()),
            }
        }
        txns.push(Txn {
            outcome: c.outcome,
            invoke: c.invoke,
            complete: if c.outcome == Outcome::Ok {
                c.complete
            } else {
                None
            },
            mops,
        });
    }
    let mut placed = vec![false; txns.len()];
    Ok(extend(&txns, &mut placed, &BTreeMap::new(), strict))
}

/// Depth-first: place any transaction that may come next and whose reads
/// match the lists so far, until every `ok` one is placed.
fn extend(
    txns: &[Txn],
    placed: &mut [bool],
    lists: &BTreeMap<String, Vec<Value>>,
    strict: bool,
) -> bool {
    if txns
        .iter()
        .zip(placed.iter())
        .all(|(t, &p)| p || t.outcome != Outcome::Ok)
    {
        return true;
    }
    for i in 0..txns.len() {
        if placed[i] {
            continue;
        }
        // Real time: every ok transaction that completed before this one
        // was invoked must already be in the order.
        let blocked = strict
            && txns
                .iter()
                .zip(placed.iter())
                .any(|(u, &p)| !p && u.complete.is_some_and(|c| c < txns[i].invoke));
        if blocked {
            continue;
        }
        let Some(next) = apply(&txns[i], lists) else {
            continue;
        };
        placed[i] = true;
        let found = extend(txns, placed, &next, strict);
        placed[i] = false;
        if found {
            return true;
        }
    }
    false
}

/// The lists after `t`, or `None` when one of its reads disagrees.
fn apply(t: &Txn, lists: &BTreeMap<String, Vec<Value>>) -> Option<BTreeMap<String, Vec<Value>>> {
    let mut next = lists.clone();
    for (append, key, v) in &t.mops {
        let list = next.entry(key.clone()).or_default();
        match (append, v) {
            (true, Some(v)) => list.push(v.clone()),
            (false, Some(Value::Array(seen))) if seen == list => {}
            (false, None) => {}
            _ => return None,
        }
    }
    Some(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::txn::tests::h;

    #[test]
    fn finds_an_order_or_proves_there_is_none() {
        // Write skew: serializable neither way.
        let skew = h(r#"
            0 invoke [["r","x",null],["append","y",1]]
            1 invoke [["r","y",null],["append","x",2]]
            0 ok [["r","x",[]],["append","y",1]]
            1 ok [["r","y",[]],["append","x",2]]
        "#);
        assert!(!is_serializable(&skew, false).unwrap());
        // A stale read is serializable, not strictly.
        let stale = h(r#"
            0 invoke [["append","x",1]]
            0 ok [["append","x",1]]
            1 invoke [["r","x",null]]
            1 ok [["r","x",[]]]
        "#);
        assert!(is_serializable(&stale, false).unwrap());
        assert!(!is_serializable(&stale, true).unwrap());
        // An info append may be read (then placed), or left out.
        let info = h(r#"
            0 invoke [["append","x",1]]
            0 info [["append","x",1]]
            1 invoke [["r","x",null]]
            1 ok [["r","x",[1]]]
            2 invoke [["r","x",null]]
        "#);
        assert!(is_serializable(&info, true).unwrap());
        // A failed append may not.
        let failed = h(r#"
            0 invoke [["append","x",1]]
            0 fail [["append","x",1]]
            1 invoke [["r","x",null]]
            1 ok [["r","x",[1]]]
        "#);
        assert!(!is_serializable(&failed, false).unwrap());
    }
}
