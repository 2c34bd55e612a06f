//! Clients: how a worker talks to the database under test.
//!
//! A [`Client`] is opened on one node, performs one [`Invocation`] at a time
//! and answers with a [`Completion`]: `ok` (it took effect), `fail` (it
//! certainly did not) or `info` (unknown — it may take effect at any time,
//! or never). Getting this classification right is what makes a verdict
//! trustworthy: a client that says `fail` for an operation that might have
//! been applied makes the checker report anomalies the database never had.
//! [`ClientError`] carries that classification from a driver's errors.
//!
//! The trait is object-safe (through `async-trait`) so a workload picks a
//! `Box<dyn Client>` at run time. [`NoopClient`] does nothing, for benches
//! of the harness alone; [`kv`] holds the key-value operations the etcd,
//! ZooKeeper and Redis clients share; [`servers`] maps nodes to the server
//! addresses a clustered system's clients open; [`external`] runs a client
//! program.
//! The clients of each system live in its folder under `crate::system`.

pub mod external;
pub mod kv;
pub mod servers;

use crate::history::{OpType, Process};
use serde_json::Value;
use std::fmt;
use std::time::Duration;

/// One operation for a client to perform.
#[derive(Clone, Debug, PartialEq)]
pub struct Invocation {
    /// The process performing it (for logs; clients need not use it).
    pub process: Process,
    /// The function: `read`, `write`, `cas`, `add`, ...
    pub f: String,
    /// The argument: `null` for reads, the value to write, `[old, new]` for
    /// compare-and-set.
    pub value: Value,
    /// The key, for keyed workloads.
    pub key: Option<Value>,
    /// How long the operation may take; the runner also enforces it and
    /// records `info` when it passes, but a client should pass it on as the
    /// request deadline so the server can give up too.
    pub timeout: Duration,
}

/// How an operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// It took effect.
    Ok,
    /// It certainly did not take effect.
    Fail,
    /// Unknown: it may take effect at any time, or never.
    Info,
}

impl From<Status> for OpType {
    fn from(s: Status) -> OpType {
        match s {
            Status::Ok => OpType::Ok,
            Status::Fail => OpType::Fail,
            Status::Info => OpType::Info,
        }
    }
}

/// A client's answer to an [`Invocation`].
#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    /// How it ended.
    pub status: Status,
    /// The result (what a read saw; for writes usually the value written).
    pub value: Value,
    /// Why it failed or is unknown.
    pub error: Option<Value>,
}

impl Completion {
    /// It took effect, with result `value`.
    pub fn ok(value: Value) -> Completion {
        Completion {
            status: Status::Ok,
            value,
            error: None,
        }
    }

    /// It certainly did not take effect, because of `error`.
    pub fn fail(value: Value, error: impl Into<Value>) -> Completion {
        Completion {
            status: Status::Fail,
            value,
            error: Some(error.into()),
        }
    }

    /// Unknown outcome, because of `error`.
    pub fn info(value: Value, error: impl Into<Value>) -> Completion {
        Completion {
            status: Status::Info,
            value,
            error: Some(error.into()),
        }
    }

    /// The completion for an error, classified by its class; `value` is the
    /// invocation's argument, kept so the checker still knows what was
    /// attempted.
    pub fn from_error(value: Value, err: &ClientError) -> Completion {
        let msg = Value::String(err.to_string());
        match err.class {
            ErrorClass::NotApplied => Completion::fail(value, msg),
            ErrorClass::Unknown => Completion::info(value, msg),
        }
    }
}

/// Whether an error leaves an operation's effect known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// The operation definitely did not take effect: refused before it was
    /// sent, a failed compare, a "not leader" answer before proposal.
    /// Recorded `fail`.
    NotApplied,
    /// It may have taken effect: a timeout, a connection reset after
    /// sending, a 503 from a proxy. Recorded `info`.
    Unknown,
}

/// An error from a client, with its class.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientError {
    /// Whether the operation may have taken effect.
    pub class: ErrorClass,
    /// What happened.
    pub message: String,
}

impl ClientError {
    /// The operation definitely did not take effect.
    pub fn not_applied(message: impl Into<String>) -> ClientError {
        ClientError {
            class: ErrorClass::NotApplied,
            message: message.into(),
        }
    }

    /// The operation may or may not have taken effect.
    pub fn unknown(message: impl Into<String>) -> ClientError {
        ClientError {
            class: ErrorClass::Unknown,
            message: message.into(),
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ClientError {}

/// Talks to the database under test on behalf of one worker.
///
/// The runner calls `open` once before the first operation and again after
/// an operation ended `info` (the connection may be in an unknown state;
/// Jepsen reopens non-reusable clients the same way), `invoke` for one
/// operation at a time, and `close` at the end. Calls on one client never
/// overlap.
#[async_trait::async_trait]
pub trait Client: Send {
    /// Connects to `node`. An error here makes the worker's operations
    /// `fail` (nothing was sent) until a later `open` succeeds.
    async fn open(&mut self, node: &str) -> Result<(), ClientError>;

    /// Performs one operation. Errors are answered as `fail` or `info`
    /// completions (see [`Completion::from_error`]), never lost.
    async fn invoke(&mut self, inv: &Invocation) -> Completion;

    /// Disconnects. Safe to call when not open.
    async fn close(&mut self) -> Result<(), ClientError>;
}

/// Makes the client of each worker: called with the worker number.
pub type ClientFactory = Box<dyn Fn(usize) -> Box<dyn Client> + Send + Sync>;

/// A client that does nothing: every operation is `ok` with its own
/// argument as result. Measures the harness alone.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopClient;

#[async_trait::async_trait]
impl Client for NoopClient {
    async fn open(&mut self, _node: &str) -> Result<(), ClientError> {
        Ok(())
    }

    async fn invoke(&mut self, inv: &Invocation) -> Completion {
        Completion::ok(inv.value.clone())
    }

    async fn close(&mut self) -> Result<(), ClientError> {
        Ok(())
    }
}
