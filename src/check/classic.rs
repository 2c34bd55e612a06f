//! Runs one of Jepsen's classic workload checkers by name, for the runner
//! (`results.json`) and `faultline check --model NAME` alike: the verdict,
//! the report as JSON, and one line.

use super::{bank, counter, long_fork, queue, unique_ids, Validity};
use crate::history::{History, HistoryError};
use serde::Serialize;
use serde_json::Value;

/// The checkers this module runs (each also a workload model).
pub const NAMES: &[&str] = &["bank", "counter", "unique-ids", "queue", "long-fork"];

/// Options of the classic checkers that take any.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassicOptions {
    /// The bank checker's.
    pub bank: bank::BankOptions,
    /// The queue checker's.
    pub queue: queue::QueueOptions,
}

/// A classic checker's answer.
#[derive(Clone, Debug)]
pub struct Verdict {
    /// The verdict.
    pub validity: Validity,
    /// The whole report.
    pub report: Value,
    /// One or two sentences.
    pub explanation: String,
}

fn verdict<R: Serialize>(validity: Validity, explanation: &str, report: &R) -> Verdict {
    Verdict {
        validity,
        report: serde_json::to_value(report)
            .unwrap_or_else(|e| serde_json::json!({"error": e.to_string()})),
        explanation: explanation.to_string(),
    }
}

/// Runs the checker `name` (one of [`NAMES`]) over `history`; `None` for
/// another name.
pub fn check(
    name: &str,
    history: &History,
    opts: &ClassicOptions,
) -> Option<Result<Verdict, HistoryError>> {
    let calls = match history.calls() {
        Ok(c) => c,
        Err(e) => return NAMES.contains(&name).then_some(Err(e)),
    };
    Some(Ok(match name {
        "bank" => {
            let r = bank::check_calls(&calls, &opts.bank);
            verdict(r.validity, &r.explanation, &r)
        }
        "counter" => {
            let r = counter::check_calls(&calls);
            verdict(r.validity, &r.explanation, &r)
        }
        "unique-ids" => {
            let r = unique_ids::check_calls(&calls);
            verdict(r.validity, &r.explanation, &r)
        }
        "queue" => {
            let r = queue::check_calls(&calls, &opts.queue);
            verdict(r.validity, &r.explanation, &r)
        }
        "long-fork" => {
            let r = long_fork::check_calls(&calls);
            verdict(r.validity, &r.explanation, &r)
        }
        _ => return None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Op, OpType, Process};
    use serde_json::json;

    #[test]
    fn each_name_runs_its_checker_and_others_are_none() {
        let h = History::new(vec![
            Op::new(
                0,
                Process::Client(0),
                OpType::Invoke,
                "generate",
                Value::Null,
            ),
            Op::new(0, Process::Client(0), OpType::Ok, "generate", json!(1)),
            Op::new(
                0,
                Process::Client(1),
                OpType::Invoke,
                "generate",
                Value::Null,
            ),
            Op::new(0, Process::Client(1), OpType::Ok, "generate", json!(1)),
        ]);
        let v = check("unique-ids", &h, &ClassicOptions::default())
            .unwrap()
            .unwrap();
        assert_eq!(v.validity, Validity::Invalid);
        assert_eq!(v.report["duplicated"], json!(1));
        assert!(v
            .explanation
            .starts_with("1 id was returned more than once"));
        assert!(check("linearizable", &h, &ClassicOptions::default()).is_none());
        let bad = History::new(vec![Op::new(
            0,
            Process::Client(0),
            OpType::Ok,
            "read",
            Value::Null,
        )]);
        assert!(matches!(
            check("counter", &bad, &ClassicOptions::default()),
            Some(Err(_))
        ));
    }
}
