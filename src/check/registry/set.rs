//! The `set` checker: lost, unexpected and stale elements
//! ([`crate::check::set`]).

use super::{CannotCheck, CheckContext, Checker, Verdict};
use crate::check::set::{self, SetOptions};
use crate::history::History;

/// Lost, unexpected and stale elements of a set.
pub(super) struct SetChecker;

impl Checker for SetChecker {
    fn name(&self) -> &'static str {
        "set"
    }

    /// `set-full`, Jepsen's name for this analysis (`--model set` is the
    /// linearizable set model).
    fn judges(&self, model: &str) -> bool {
        model == "set-full"
    }

    fn models_text(&self) -> String {
        "set-full".to_string()
    }

    fn check(&self, history: &History, ctx: &CheckContext) -> Result<Verdict, CannotCheck> {
        let opts = SetOptions {
            linearizable: ctx.linearizable_reads,
        };
        let r = set::check(history, &opts)?;
        let details = serde_json::to_value(&r).map_err(|e| CannotCheck(e.to_string()))?;
        Ok(Verdict::plain(
            r.validity,
            r.explanation.clone(),
            details,
            self.name().to_string(),
        ))
    }
}
