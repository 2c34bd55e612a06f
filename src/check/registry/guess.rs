//! Which checker and model a history is for, when `--model` is not given:
//! read off its functions and the shape of its values, the way Jepsen's
//! workloads write them, so that a history of one workload is never
//! judged by another's rules (a counter's `add`/`read` as a set, a
//! long-fork's `read` of micro-operations as a register).
//!
//! Anything that is not a transactional or classic workload's shape is
//! left to [`crate::model::guess`] (the linearizability models).

use super::{for_model, CannotCheck, Checker};
use crate::history::{Call, Outcome};
use crate::model;
use serde_json::Value;

/// A guessed checker and model, and why.
pub struct Guess {
    /// The checker to run.
    pub checker: &'static dyn Checker,
    /// The model to give it (`CheckContext::model`).
    pub model: String,
    /// Why, for people: what in the history chose it.
    pub why: String,
}

/// The micro-operation names of a transaction value (`[[f, k, v], ...]`;
/// Elle's histories hold empty ones too), or `None` when it is not one.
fn micro_ops(v: &Value) -> Option<Vec<&str>> {
    let list = v.as_array()?;
    list.iter()
        .map(|m| match m.as_array()?.as_slice() {
            [f, _, _] => f.as_str(),
            _ => None,
        })
        .collect()
}

/// Guesses the checker and model of a history from its calls.
pub fn guess(calls: &[Call]) -> Result<Guess, CannotCheck> {
    let mut fs: Vec<&str> = calls.iter().map(|c| c.f.as_str()).collect();
    fs.sort_unstable();
    fs.dedup();
    let all_in = |set: &[&str]| !fs.is_empty() && fs.iter().all(|f| set.contains(f));
    let named = |model: &str, why: String| Guess {
        checker: for_model(Some(model)),
        model: model.to_string(),
        why,
    };
    let functions = fs.join(", ");

    // Transactions: every call's value is a list of [f k v] micro-ops.
    let txns: Option<Vec<Vec<&str>>> = calls.iter().map(|c| micro_ops(&c.input)).collect();
    // At least one micro-op: a list of empty lists says nothing.
    let txns = txns.filter(|t| t.iter().any(|m| !m.is_empty()));
    if let (Some(txns), true) = (txns, all_in(&["txn", "read", "write"])) {
        let mut mops: Vec<&str> = txns.iter().flatten().copied().collect();
        mops.sort_unstable();
        mops.dedup();
        let names = mops.join(", ");
        // Jepsen's long-fork names its transactions by what they do:
        // `read` of a group, `write` of one key.
        if !fs.contains(&"txn") && mops.iter().all(|m| ["r", "w"].contains(m)) {
            return Ok(named(
                "long-fork",
                format!("read and write transactions of micro-ops {names}, as Jepsen's long-fork writes them"),
            ));
        }
        if mops.contains(&"append") && mops.iter().all(|m| ["r", "append"].contains(m)) {
            return Ok(named(
                "list-append",
                format!("transactions of micro-ops {names}"),
            ));
        }
        if mops.contains(&"w") && mops.iter().all(|m| ["r", "w"].contains(m)) {
            return Ok(named(
                "rw-register",
                format!("transactions of micro-ops {names}"),
            ));
        }
        if mops == ["r"] {
            // Read-only: a list read back is a list-append history.
            let lists = calls.iter().any(|c| {
                c.outcome == Outcome::Ok
                    && c.output.as_array().is_some_and(|l| {
                        l.iter().any(|m| {
                            m.as_array()
                                .and_then(|m| m.get(2))
                                .is_some_and(Value::is_array)
                        })
                    })
            });
            let model = if lists { "list-append" } else { "rw-register" };
            return Ok(named(
                model,
                format!(
                    "read-only transactions (micro-op r){}",
                    if lists { " reading lists" } else { "" }
                ),
            ));
        }
        return Err(CannotCheck(format!(
            "cannot guess the model of transactions of micro-ops {names}: list-append reads r and append, rw-register r and w; name it with --model"
        )));
    }

    // Jepsen's classic workloads.
    if fs.contains(&"transfer") && all_in(&["transfer", "read"]) {
        return Ok(named("bank", format!("the functions {functions}")));
    }
    if all_in(&["generate"]) {
        return Ok(named("unique-ids", format!("the functions {functions}")));
    }
    if fs.contains(&"drain") && all_in(&["enqueue", "dequeue", "drain"]) {
        return Ok(named(
            "queue",
            format!("the functions {functions} (a drain: Jepsen's total-queue)"),
        ));
    }
    if fs.contains(&"add") && all_in(&["add", "read"]) {
        // A counter reads a number; a set reads its elements.
        let read_number = calls
            .iter()
            .any(|c| c.f == "read" && c.outcome == Outcome::Ok && c.output.is_number());
        if read_number {
            return Ok(named(
                "counter",
                format!("the functions {functions}, reads returning numbers"),
            ));
        }
    }

    // Reads alone say nothing of the object or where it started (a
    // register at nil, a counter at 0): a read of 0 would be judged by a
    // guess.
    if fs == ["read"] {
        return Err(CannotCheck(
            "cannot guess the model: every operation is a read, and nothing says what was read (a register starting at nil, a counter at 0, ...); name it with --model".to_string(),
        ));
    }
    let name = model::guess(calls).ok_or_else(|| {
        CannotCheck(format!(
            "cannot guess the model from the functions {functions}; name it with --model"
        ))
    })?;
    let mut why = if fs.is_empty() {
        "no client operation".to_string()
    } else {
        format!("the functions {functions}")
    };
    if name == "cas-register-knossos" {
        // model::guess's reason: a read or write failed.
        let refused: Vec<&str> = ["read", "write"]
            .into_iter()
            .filter(|f| {
                calls
                    .iter()
                    .any(|c| c.f == *f && c.outcome == Outcome::Fail)
            })
            .collect();
        why.push_str(&format!(
            "; a failed {} found no other value, so here fail means refused, and a failed cas is read as never run (Knossos' reading)",
            refused.join(" and a failed ")
        ));
    }
    Ok(named(name, why))
}
