//! Jepsen's classic workload checkers as [`Checker`]s: bank, counter,
//! unique-ids, queue and long-fork, each judging the history of the model
//! of its own name, and lock-set (holds of a lock and the set they guard).

use super::registry::{CannotCheck, CheckContext, Checker, Verdict};
use super::{bank, counter, lock_set, long_fork, queue, unique_ids, Validity};
use crate::history::{Call, History};
use serde::Serialize;

/// Options of the classic checkers that take any.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassicOptions {
    /// The bank checker's.
    pub bank: bank::BankOptions,
    /// The queue checker's.
    pub queue: queue::QueueOptions,
}

/// What a classic checker's check answers: validity, explanation, report.
type Answer = Result<(Validity, String, serde_json::Value), serde_json::Error>;

/// A classic checker: its name, its `faultline check` flags, and its check
/// over paired calls.
pub struct Classic {
    name: &'static str,
    flags: &'static [&'static str],
    run: fn(&[Call], &ClassicOptions) -> Answer,
}

fn answer<R: Serialize>(validity: Validity, explanation: &str, report: &R) -> Answer {
    Ok((
        validity,
        explanation.to_string(),
        serde_json::to_value(report)?,
    ))
}

/// Totals and negative balances of a bank.
pub(super) const BANK: Classic = Classic {
    name: "bank",
    flags: &["--total", "--negative-balances"],
    run: |calls, o| {
        let r = bank::check_calls(calls, &o.bank);
        answer(r.validity, &r.explanation, &r)
    },
};

/// Reads of a counter within the bounds of the adds.
pub(super) const COUNTER: Classic = Classic {
    name: "counter",
    flags: &[],
    run: |calls, _| {
        let r = counter::check_calls(calls);
        answer(r.validity, &r.explanation, &r)
    },
};

/// Ids returned more than once.
pub(super) const UNIQUE_IDS: Classic = Classic {
    name: "unique-ids",
    flags: &[],
    run: |calls, _| {
        let r = unique_ids::check_calls(calls);
        answer(r.validity, &r.explanation, &r)
    },
};

/// A total queue: lost, duplicated, unexpected and recovered elements.
pub(super) const QUEUE: Classic = Classic {
    name: "queue",
    flags: &["--duplicates-allowed"],
    run: |calls, o| {
        let r = queue::check_calls(calls, &o.queue);
        answer(r.validity, &r.explanation, &r)
    },
};

/// Reads that saw two writes in opposite orders.
pub(super) const LONG_FORK: Classic = Classic {
    name: "long-fork",
    flags: &[],
    run: |calls, _| {
        let r = long_fork::check_calls(calls);
        answer(r.validity, &r.explanation, &r)
    },
};

/// Holds of a lock that certainly overlapped, and acknowledged adds to
/// the set it guards missing from the final read.
pub(super) const LOCK_SET: Classic = Classic {
    name: "lock-set",
    flags: &[],
    run: |calls, _| {
        let r = lock_set::check_calls(calls);
        answer(r.validity, &r.explanation, &r)
    },
};

impl Checker for Classic {
    fn name(&self) -> &'static str {
        self.name
    }

    fn judges(&self, model: &str) -> bool {
        model == self.name
    }

    fn flags(&self) -> &'static [&'static str] {
        self.flags
    }

    fn check(&self, history: &History, ctx: &CheckContext) -> Result<Verdict, CannotCheck> {
        let calls = history.calls()?;
        let (validity, explanation, details) =
            (self.run)(&calls, &ctx.classic).map_err(|e| CannotCheck(e.to_string()))?;
        Ok(Verdict::plain(
            validity,
            explanation,
            details,
            self.name.to_string(),
        ))
    }
}
