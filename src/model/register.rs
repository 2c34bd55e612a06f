//! Registers: plain read/write, and with compare-and-set.

use super::{expect_pair, unknown_f, Model, Next, Values};
use crate::history::{Call, Outcome};

/// An operation on a register. Values are ids from [`Values`]; 0 is nil.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegisterOp {
    /// A read that returned this value.
    Read(u32),
    /// A write of this value.
    Write(u32),
    /// A compare-and-set that found `from` and wrote `to`.
    Cas {
        /// Expected value.
        from: u32,
        /// New value.
        to: u32,
    },
    /// A compare-and-set whose outcome is unknown: it took effect (the
    /// register held `from`), or it never happened.
    CasUnknown {
        /// Expected value.
        from: u32,
        /// New value.
        to: u32,
    },
    /// A compare-and-set that ran and found the register not equal to `from`.
    CasMismatch {
        /// Expected value that was not there.
        from: u32,
    },
}

/// A read/write register starting at nil. Functions: `read` (value = what
/// was read), `write` (value = what was written).
#[derive(Clone, Copy, Debug, Default)]
pub struct Register;

/// A register with compare-and-set (`cas`, value `[old new]`) besides `read`
/// and `write`, starting at nil.
///
/// A `fail`ed cas, by default, ran and observed a mismatch (the reading
/// Jepsen's etcd tests and Porcupine use) — when its `error` is absent or
/// [`super::CAS_MISMATCH`]; with any other `error` it never ran. With `failed_cas_never_happened`
/// (Knossos' reading) a failed cas is left out like any failed operation.
#[derive(Clone, Copy, Debug, Default)]
pub struct CasRegister {
    /// Knossos' reading: a failed cas constrains nothing.
    pub failed_cas_never_happened: bool,
}

fn decode_register(
    model: &str,
    call: &Call,
    values: &mut Values,
    cas: Option<bool>,
) -> Result<Option<RegisterOp>, String> {
    let known = if cas.is_some() {
        "read, write, cas"
    } else {
        "read, write"
    };
    Ok(match (call.f.as_str(), call.outcome) {
        ("read", Outcome::Ok) => Some(RegisterOp::Read(values.intern(&call.output))),
        // A failed or unknown read changed nothing and saw nothing.
        ("read", _) => None,
        ("write", Outcome::Fail) => None,
        ("write", _) => Some(RegisterOp::Write(values.intern(&call.input))),
        ("cas", outcome) if cas.is_some() => {
            let (a, b) = expect_pair(&call.input, "the cas value")?;
            let (from, to) = (values.intern(a), values.intern(b));
            match outcome {
                Outcome::Ok => Some(RegisterOp::Cas { from, to }),
                Outcome::Info => Some(RegisterOp::CasUnknown { from, to }),
                Outcome::Fail if cas == Some(true) => None,
                Outcome::Fail if observed_mismatch(call) => Some(RegisterOp::CasMismatch { from }),
                // Failed for another reason (never sent): it never happened.
                Outcome::Fail => None,
            }
        }
        _ => return Err(unknown_f(model, call, known)),
    })
}

/// A failed cas compared and found another value: it says so, or says
/// nothing at all (the convention of Jepsen's and Porcupine's histories).
fn observed_mismatch(call: &Call) -> bool {
    match &call.error {
        None | Some(serde_json::Value::Null) => true,
        Some(serde_json::Value::String(s)) => s == super::CAS_MISMATCH,
        Some(_) => false,
    }
}

fn step_register(state: u32, op: &RegisterOp) -> Next<u32> {
    match *op {
        RegisterOp::Read(v) if v == state => Next::One(state),
        RegisterOp::Read(_) => Next::Illegal,
        RegisterOp::Write(v) => Next::One(v),
        RegisterOp::Cas { from, to } | RegisterOp::CasUnknown { from, to } if from == state => {
            Next::One(to)
        }
        // An unknown cas that would not match is the same as one that never
        // happened, which the search already tries: prune it here.
        RegisterOp::Cas { .. } | RegisterOp::CasUnknown { .. } => Next::Illegal,
        RegisterOp::CasMismatch { from } if from != state => Next::One(state),
        RegisterOp::CasMismatch { .. } => Next::Illegal,
    }
}

/// True when `op` writes the value the read `read` returned.
fn produces_register(op: &RegisterOp, observer: &RegisterOp) -> bool {
    let written = match *op {
        RegisterOp::Write(v) => v,
        RegisterOp::Cas { to, .. } | RegisterOp::CasUnknown { to, .. } => to,
        RegisterOp::Read(_) | RegisterOp::CasMismatch { .. } => return false,
    };
    // What the observer saw: a read's value, the expected value of a cas
    // that succeeded (or may have: crashed), or for a cas that found
    // another value, any but its expected.
    match *observer {
        RegisterOp::Read(r) => written == r,
        RegisterOp::Cas { from, .. } | RegisterOp::CasUnknown { from, .. } => written == from,
        RegisterOp::CasMismatch { from, .. } => written != from,
        RegisterOp::Write(_) => false,
    }
}

fn describe_register(op: &RegisterOp, values: &Values) -> String {
    match *op {
        RegisterOp::Read(v) => format!("read returned {}", values.show(v)),
        RegisterOp::Write(v) => format!("write {}", values.show(v)),
        RegisterOp::Cas { from, to } => {
            format!("cas {} -> {} succeeded", values.show(from), values.show(to))
        }
        RegisterOp::CasUnknown { from, to } => format!(
            "cas {} -> {} (outcome unknown)",
            values.show(from),
            values.show(to)
        ),
        RegisterOp::CasMismatch { from } => format!(
            "cas from {} failed (found another value)",
            values.show(from)
        ),
    }
}

impl Model for Register {
    type Op = RegisterOp;
    type State = u32;
    fn name(&self) -> &str {
        "register"
    }
    fn init(&self) -> u32 {
        0
    }
    fn decode(&self, call: &Call, values: &mut Values) -> Result<Option<RegisterOp>, String> {
        decode_register("register", call, values, None)
    }
    fn step(&self, state: &u32, op: &RegisterOp) -> Next<u32> {
        step_register(*state, op)
    }
    fn describe_op(&self, op: &RegisterOp, values: &Values) -> String {
        describe_register(op, values)
    }
    fn describe_state(&self, state: &u32, values: &Values) -> String {
        values.show(*state)
    }
    fn read_only(&self, op: &RegisterOp) -> bool {
        matches!(op, RegisterOp::Read(_) | RegisterOp::CasMismatch { .. })
    }
    fn may_produce(&self, op: &RegisterOp, read: &RegisterOp) -> bool {
        produces_register(op, read)
    }
}

impl Model for CasRegister {
    type Op = RegisterOp;
    type State = u32;
    fn name(&self) -> &str {
        if self.failed_cas_never_happened {
            "cas-register-knossos"
        } else {
            "cas-register"
        }
    }
    fn init(&self) -> u32 {
        0
    }
    fn decode(&self, call: &Call, values: &mut Values) -> Result<Option<RegisterOp>, String> {
        decode_register(
            self.name(),
            call,
            values,
            Some(self.failed_cas_never_happened),
        )
    }
    fn step(&self, state: &u32, op: &RegisterOp) -> Next<u32> {
        step_register(*state, op)
    }
    fn describe_op(&self, op: &RegisterOp, values: &Values) -> String {
        describe_register(op, values)
    }
    fn describe_state(&self, state: &u32, values: &Values) -> String {
        values.show(*state)
    }
    fn read_only(&self, op: &RegisterOp) -> bool {
        matches!(op, RegisterOp::Read(_) | RegisterOp::CasMismatch { .. })
    }
    fn may_produce(&self, op: &RegisterOp, read: &RegisterOp) -> bool {
        produces_register(op, read)
    }
}
