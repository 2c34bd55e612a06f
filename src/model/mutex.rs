//! A lock.

use super::{unknown_f, Model, Next, Values};
use crate::history::{Call, Outcome};

/// An operation on a mutex.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MutexOp {
    /// Took the lock.
    Acquire,
    /// Gave the lock back.
    Release,
}

/// A mutex, starting free. Functions: `acquire`, `release`. A failed
/// operation is left out, and so is the work done under the lock in the
/// lock-set workload (`add`, `read` of the set it guards: they change
/// nothing about the lock), so that workload's history is checked whole.
#[derive(Clone, Copy, Debug, Default)]
pub struct Mutex;

impl Model for Mutex {
    type Op = MutexOp;
    /// True while held.
    type State = bool;
    fn name(&self) -> &str {
        "mutex"
    }
    fn init(&self) -> bool {
        false
    }
    fn decode(&self, call: &Call, _: &mut Values) -> Result<Option<MutexOp>, String> {
        if call.outcome == Outcome::Fail {
            return Ok(None);
        }
        match call.f.as_str() {
            "acquire" => Ok(Some(MutexOp::Acquire)),
            "release" => Ok(Some(MutexOp::Release)),
            "add" | "read" => Ok(None),
            _ => Err(unknown_f(
                "mutex",
                call,
                "acquire, release; add and read are left out",
            )),
        }
    }
    fn step(&self, held: &bool, op: &MutexOp) -> Next<bool> {
        match (op, *held) {
            (MutexOp::Acquire, false) => Next::One(true),
            (MutexOp::Release, true) => Next::One(false),
            _ => Next::Illegal,
        }
    }
    fn describe_op(&self, op: &MutexOp, _: &Values) -> String {
        match op {
            MutexOp::Acquire => "acquire".into(),
            MutexOp::Release => "release".into(),
        }
    }
    fn describe_state(&self, held: &bool, _: &Values) -> String {
        if *held { "held" } else { "free" }.into()
    }
}
