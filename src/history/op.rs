//! One operation of a history: an invocation or a completion.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use std::fmt;

/// What an event says about its operation (Jepsen's `:type`).
///
/// `Ok` took effect, `Fail` did not, `Info` may or may not have — at any point
/// after its invocation, even after the `Info` was recorded. A process that got
/// `Info` never invokes again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpType {
    /// The operation was asked for.
    Invoke,
    /// The operation completed and took effect.
    Ok,
    /// The operation completed and certainly did not take effect.
    Fail,
    /// The outcome is unknown: it may take effect at any time after its invocation, or never.
    Info,
}

impl OpType {
    /// The lower-case name used in every format (`invoke`, `ok`, `fail`, `info`).
    pub fn as_str(self) -> &'static str {
        match self {
            OpType::Invoke => "invoke",
            OpType::Ok => "ok",
            OpType::Fail => "fail",
            OpType::Info => "info",
        }
    }

    /// Parses `invoke`, `ok`, `fail` or `info` (with or without a leading `:`).
    pub fn parse(s: &str) -> Option<OpType> {
        match s.strip_prefix(':').unwrap_or(s) {
            "invoke" => Some(OpType::Invoke),
            "ok" => Some(OpType::Ok),
            "fail" => Some(OpType::Fail),
            "info" => Some(OpType::Info),
            _ => None,
        }
    }
}

impl fmt::Display for OpType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who performed an operation: a client process (a logical, single-threaded
/// actor numbered from 0) or the nemesis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Process {
    /// A client process.
    Client(u64),
    /// The fault injector.
    Nemesis,
}

impl fmt::Display for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Process::Client(p) => write!(f, "{p}"),
            Process::Nemesis => f.write_str("nemesis"),
        }
    }
}

impl Serialize for Process {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Process::Client(p) => s.serialize_u64(*p),
            Process::Nemesis => s.serialize_str("nemesis"),
        }
    }
}

impl<'de> Deserialize<'de> for Process {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Number(n) => n.as_u64().map(Process::Client).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "process must be a non-negative integer or \"nemesis\", got {n}"
                ))
            }),
            Value::String(s) if s == "nemesis" || s == ":nemesis" => Ok(Process::Nemesis),
            other => Err(serde::de::Error::custom(format!(
                "process must be a non-negative integer or \"nemesis\", got {other}"
            ))),
        }
    }
}

/// One event of a history.
///
/// An operation appears twice: once as an `invoke` and once as its completion
/// (`ok`, `fail` or `info`) by the same process. Nemesis events use `info` for
/// both halves, as in Jepsen.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Op {
    /// Position in the history, from 0, in the order events happened.
    #[serde(default)]
    pub index: u64,
    /// Nanoseconds since the test started, from a monotonic clock. Absent in
    /// imported formats that carry no time; order is then given by `index`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<u64>,
    /// The process that performed the operation.
    pub process: Process,
    /// Invocation or completion, and which outcome.
    #[serde(rename = "type")]
    pub kind: OpType,
    /// The function: `read`, `write`, `cas`, `append`, `txn`, `start-partition`, ...
    pub f: String,
    /// The argument (on invoke) or the result (on completion); any JSON.
    #[serde(default)]
    pub value: Value,
    /// The key, for multi-key histories whose keys are independent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Value>,
    /// The node the client talked to, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Why the operation failed or is unknown, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
}

impl Op {
    /// A new event with no time, key, node or error.
    pub fn new(
        index: u64,
        process: Process,
        kind: OpType,
        f: impl Into<String>,
        value: Value,
    ) -> Op {
        Op {
            index,
            time: None,
            process,
            kind,
            f: f.into(),
            value,
            key: None,
            node: None,
            error: None,
        }
    }

    /// True for events of client processes, false for the nemesis.
    pub fn is_client(&self) -> bool {
        matches!(self.process, Process::Client(_))
    }
}
