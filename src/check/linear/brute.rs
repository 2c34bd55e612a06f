//! A small exhaustive linearizability checker, used as an oracle in
//! differential tests of the real search.
//!
//! It tries every order that respects real time — with no memo, no list,
//! nothing clever — so it is only usable on a handful of operations (about
//! 8). Unknown (`info`) operations may be placed anywhere after their call,
//! or left out.

use super::CheckError;
use crate::history::{History, Outcome};
use crate::model::{Model, Next, Values};

/// True if some order of the history's operations that respects real time
/// explains every result under `model`. Exponential: keep histories tiny.
pub fn is_linearizable<M: Model>(model: &M, history: &History) -> Result<bool, CheckError> {
    let calls = history.calls()?;
    let mut values = Values::new();
    let mut ops = Vec::new();
    for c in &calls {
        let decoded = model
            .decode(c, &mut values)
            .map_err(|message| CheckError::Decode {
                at: history.locate(c.invoke),
                message,
            })?;
        if let Some(op) = decoded {
            let ret = if c.outcome == Outcome::Info {
                None
            } else {
                c.complete
            };
            ops.push((op, c.invoke, ret));
        }
    }
    let mut done = vec![false; ops.len()];
    Ok(extend(model, &ops, &mut done, &model.init()))
}

fn extend<M: Model>(
    model: &M,
    ops: &[(M::Op, usize, Option<usize>)],
    done: &mut Vec<bool>,
    state: &M::State,
) -> bool {
    if ops
        .iter()
        .zip(done.iter())
        .all(|((_, _, ret), d)| *d || ret.is_none())
    {
        return true;
    }
    for i in 0..ops.len() {
        if done[i] {
            continue;
        }
        // Op i may go next only if no pending completed op returned before it was called.
        let call = ops[i].1;
        let blocked = ops
            .iter()
            .zip(done.iter())
            .any(|((_, _, ret), d)| !*d && ret.is_some_and(|r| r < call));
        if blocked {
            continue;
        }
        let nexts = match model.step(state, &ops[i].0) {
            Next::Illegal => vec![],
            Next::One(s) => vec![s],
            Next::Many(v) => v,
        };
        for s in nexts {
            done[i] = true;
            let ok = extend(model, ops, done, &s);
            done[i] = false;
            if ok {
                return true;
            }
        }
    }
    false
}
