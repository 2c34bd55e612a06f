//! Checkers: functions from a history to a verdict.
//!
//! [`linear`] decides linearizability against a [`crate::model::Model`];
//! [`set`] finds lost, unexpected and stale elements of a set;
//! [`txn`] finds transactional anomalies (Elle-style) and the consistency
//! models they rule out.
//! Every checker answers with a [`Validity`]: `Unknown` is an honest answer
//! when a budget ran out, never a guess.

pub mod linear;
pub mod set;
pub mod txn;

use serde::Serialize;

/// A checker's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Validity {
    /// The history satisfies the property.
    Valid,
    /// The history breaks the property; the checker says how.
    Invalid,
    /// The checker could not decide (a time or memory budget ran out); it says why.
    Unknown,
}

impl Validity {
    /// Combines the answers of parts: invalid if any part is, else unknown
    /// if any part is, else valid.
    pub fn merge(self, other: Validity) -> Validity {
        use Validity::*;
        match (self, other) {
            (Invalid, _) | (_, Invalid) => Invalid,
            (Unknown, _) | (_, Unknown) => Unknown,
            _ => Valid,
        }
    }

    /// `valid`, `invalid` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Validity::Valid => "valid",
            Validity::Invalid => "invalid",
            Validity::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for Validity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
