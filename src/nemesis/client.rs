//! The runner's door to the nemesis: [`NemesisClient`] performs the nemesis
//! operations the generator routes to the nemesis, so they are recorded in
//! the history like client operations (process `nemesis`, type `info`);
//! [`invocation_op`], [`completion_op`] and [`heal_all`] build the same ops
//! for the final heal, which the lifecycle records after the workers stop.

use std::sync::Arc;

use serde_json::Value;

use super::{Fault, Nemesis, NemesisError};
use crate::client::{Client, ClientError, Completion, Invocation, Status};
use crate::history::{Op, OpType, Process};

/// The invocation op for `fault`: process `nemesis`, type `info`; index and
/// time are set by the recorder.
pub fn invocation_op(fault: &Fault) -> Op {
    Op::new(0, Process::Nemesis, OpType::Info, fault.f(), fault.value())
}

/// The completion op for `fault`, given what `invoke` answered: the value
/// says what was done, or the error why not.
pub fn completion_op(fault: &Fault, result: &Result<Value, NemesisError>) -> Op {
    match result {
        Ok(v) => Op::new(0, Process::Nemesis, OpType::Info, fault.f(), v.clone()),
        Err(e) => {
            let mut op = Op::new(0, Process::Nemesis, OpType::Info, fault.f(), fault.value());
            op.error = Some(Value::String(e.to_string()));
            op
        }
    }
}

/// Heals every fault `nemesis` knows of and returns the `heal` invocation
/// and completion ops to record (in that order) with the result. What a
/// runner calls at the end of a test, on error and on Ctrl-C.
pub fn heal_all(nemesis: &dyn Nemesis) -> ([Op; 2], Result<Value, NemesisError>) {
    let fault = Fault::HealAll;
    let inv = invocation_op(&fault);
    let result = nemesis.heal();
    let done = completion_op(&fault, &result);
    ([inv, done], result)
}

/// Performs nemesis operations for the runner: the generator routes them to
/// the nemesis (`on_nemesis`), the runner records the invocation, this
/// injects the fault on tokio's blocking pool, and the completion's value
/// says what was done (the runner records nemesis completions as `info`).
#[derive(Debug, Clone)]
pub struct NemesisClient {
    nemesis: Arc<dyn Nemesis>,
}

impl NemesisClient {
    /// A client performing faults with `nemesis`.
    pub fn new(nemesis: Arc<dyn Nemesis>) -> NemesisClient {
        NemesisClient { nemesis }
    }
}

#[async_trait::async_trait]
impl Client for NemesisClient {
    async fn open(&mut self, _node: &str) -> Result<(), ClientError> {
        Ok(())
    }

    async fn invoke(&mut self, inv: &Invocation) -> Completion {
        let fault = match Fault::from_op(&inv.f, &inv.value) {
            Ok(f) => f,
            Err(e) => {
                return Completion {
                    status: Status::Info,
                    value: inv.value.clone(),
                    error: Some(Value::String(e)),
                }
            }
        };
        let nem = self.nemesis.clone();
        let f2 = fault.clone();
        let result = tokio::task::spawn_blocking(move || nem.invoke(&f2))
            .await
            .unwrap_or_else(|e| {
                Err(NemesisError::Invalid(format!(
                    "the nemesis task for {} failed: {e}",
                    fault.f()
                )))
            });
        let op = completion_op(&fault, &result);
        Completion {
            status: Status::Info,
            value: op.value,
            error: op.error,
        }
    }

    async fn close(&mut self) -> Result<(), ClientError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nemesis::Targets;
    use serde_json::json;

    #[test]
    fn completion_carries_what_was_done_or_why_not() {
        let f = Fault::Kill(Targets::One);
        let ok = completion_op(&f, &Ok(json!({"killed": ["n2"]})));
        assert_eq!(ok.value, json!({"killed": ["n2"]}));
        assert!(ok.error.is_none());
        let err = completion_op(&f, &Err(NemesisError::Invalid("no leader".into())));
        assert_eq!(err.value, json!("one"));
        assert_eq!(err.error, Some(json!("no leader")));
        assert_eq!(err.kind, OpType::Info);
    }
}
