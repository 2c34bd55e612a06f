//! The unique-ids checker (Jepsen's `unique-ids`): every `generate` asks
//! the database for a fresh id; no two acknowledged generates may return
//! the same one.

use super::{plural, show, CallRef, Validity};
use crate::history::{Call, History, HistoryError, Outcome};
use rustc_hash::FxHashMap;
use serde::Serialize;
use serde_json::Value;

/// One id returned more than once.
#[derive(Clone, Debug, Serialize)]
pub struct Duplicate {
    /// The id.
    pub id: Value,
    /// How many generates returned it.
    pub count: usize,
    /// The first five of them.
    pub ops: Vec<CallRef>,
}

/// The verdict on a unique-ids history.
#[derive(Clone, Debug, Serialize)]
pub struct UniqueIdsReport {
    /// The verdict.
    pub validity: Validity,
    /// Generates invoked.
    pub attempted: usize,
    /// Generates acknowledged.
    pub acknowledged: usize,
    /// Distinct ids returned.
    pub distinct: usize,
    /// Ids returned more than once.
    pub duplicated: usize,
    /// The first ten duplicated ids, in order of their first generate.
    pub duplicates: Vec<Duplicate>,
    /// The least and greatest id, when every id is an integer.
    pub range: Option<(i64, i64)>,
    /// One or two sentences.
    pub explanation: String,
}

/// Checks a unique-ids history.
pub fn check(history: &History) -> Result<UniqueIdsReport, HistoryError> {
    Ok(check_calls(&history.calls()?))
}

/// Checks the calls of a unique-ids history.
pub fn check_calls(calls: &[Call]) -> UniqueIdsReport {
    let generates: Vec<&Call> = calls.iter().filter(|c| c.f == "generate").collect();
    let acked: Vec<&Call> = generates
        .iter()
        .copied()
        .filter(|c| c.outcome == Outcome::Ok)
        .collect();
    // id (as JSON text) -> the generates that returned it, first-seen order.
    let mut order: Vec<String> = Vec::new();
    let mut by_id: FxHashMap<String, Vec<&Call>> = FxHashMap::default();
    for c in &acked {
        let id = c.output.to_string();
        let entry = by_id.entry(id.clone()).or_default();
        if entry.is_empty() {
            order.push(id);
        }
        entry.push(c);
    }
    let ints: Option<Vec<i64>> = acked.iter().map(|c| c.output.as_i64()).collect();
    let range = ints.and_then(|v| Some((*v.iter().min()?, *v.iter().max()?)));
    let mut duplicates = Vec::new();
    let mut duplicated = 0;
    for id in &order {
        let cs = &by_id[id];
        if cs.len() > 1 {
            duplicated += 1;
            if duplicates.len() < 10 {
                duplicates.push(Duplicate {
                    id: cs[0].output.clone(),
                    count: cs.len(),
                    ops: cs.iter().take(5).map(|c| CallRef::of(c)).collect(),
                });
            }
        }
    }
    let mut r = UniqueIdsReport {
        validity: Validity::Valid,
        attempted: generates.len(),
        acknowledged: acked.len(),
        distinct: order.len(),
        duplicated,
        duplicates,
        range,
        explanation: String::new(),
    };
    if let Some(d) = r.duplicates.first() {
        r.validity = Validity::Invalid;
        r.explanation = format!(
            "{} returned more than once; the first, {}, by {}: {}",
            plural(r.duplicated, "id was", "ids were"),
            d.id,
            plural(d.count, "generate", "generates"),
            show(d.ops.iter().map(CallRef::describe), 3)
        );
    } else if r.acknowledged == 0 {
        r.validity = Validity::Unknown;
        r.explanation = format!(
            "none of {} succeeded, so no id was seen",
            plural(r.attempted, "generate", "generates")
        );
    } else {
        r.explanation = format!(
            "all {} acknowledged ids are distinct ({} attempted)",
            r.acknowledged, r.attempted
        );
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Op, OpType, Process};
    use serde_json::json;

    fn generate(p: u64, kind: OpType, id: Value) -> Vec<Op> {
        vec![
            Op::new(
                0,
                Process::Client(p),
                OpType::Invoke,
                "generate",
                Value::Null,
            ),
            Op::new(0, Process::Client(p), kind, "generate", id),
        ]
    }

    #[test]
    fn distinct_ids_are_valid() {
        let mut ops = generate(0, OpType::Ok, json!(1));
        ops.extend(generate(1, OpType::Ok, json!(7)));
        ops.extend(generate(2, OpType::Info, Value::Null));
        let r = check(&History::new(ops)).unwrap();
        assert_eq!(r.validity, Validity::Valid);
        assert_eq!((r.attempted, r.acknowledged, r.distinct), (3, 2, 2));
        assert_eq!(r.range, Some((1, 7)));
        assert_eq!(
            r.explanation,
            "all 2 acknowledged ids are distinct (3 attempted)"
        );
    }

    #[test]
    fn a_duplicate_names_the_id_and_its_ops() {
        let mut ops = generate(0, OpType::Ok, json!("a"));
        ops.extend(generate(1, OpType::Ok, json!("b")));
        ops.extend(generate(2, OpType::Ok, json!("a")));
        let r = check(&History::new(ops)).unwrap();
        assert_eq!(r.validity, Validity::Invalid);
        assert_eq!(r.duplicated, 1);
        assert_eq!(r.duplicates[0].id, json!("a"));
        assert_eq!(r.duplicates[0].ops.len(), 2);
        assert_eq!(r.range, None);
        assert_eq!(
            r.explanation,
            "1 id was returned more than once; the first, \"a\", by 2 generates: process 0's generate (events 0 to 1), process 2's generate (events 4 to 5)"
        );
    }

    #[test]
    fn no_acknowledged_generate_is_unknown() {
        let r = check(&History::new(generate(0, OpType::Fail, Value::Null))).unwrap();
        assert_eq!(r.validity, Validity::Unknown);
        assert_eq!(
            r.explanation,
            "none of 1 generate succeeded, so no id was seen"
        );
    }
}
