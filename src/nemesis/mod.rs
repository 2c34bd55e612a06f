//! Nemeses: the faults faultline injects into a cluster, and their undoing.
//!
//! The door is the [`Nemesis`] trait: `setup`, `invoke(fault)` which answers
//! with what was done (which nodes were cut off, killed, paused), and `heal`,
//! which lifts every fault of its kind and is safe to call at any time, more
//! than once, and from a fresh process that never injected anything.
//!
//! What lives here, a file per concept:
//! - `fault.rs`, the vocabulary: [`Fault`], one fault operation, convertible
//!   to and from the `f`/`value` of a history op (`start-partition`, `kill`,
//!   `pause`, `start-packet`, `bump-clock`, ...), with [`Targets`] naming
//!   which nodes it hits; and [`NemesisError`] (here) for why one failed.
//! - `env.rs`: [`Env`], what every implementation shares (cluster, db,
//!   seeded RNG, the [`record`] of active faults).
//! - The implementations: [`net::Partitioner`] and [`net::PacketNemesis`]
//!   (iptables rules in chains of our own, never touching the controller's
//!   address; delay, duplication, reordering, corruption and rate limits
//!   through the NFQUEUE packet program, `nfq_delay`, whose counters,
//!   [`nfq_stats`], stop-packet reads back), [`process::DbNemesis`] (kill/start and pause/resume through
//!   the [`Db`](crate::db::Db)), [`clock::ClockNemesis`] (clock faults on
//!   real hosts with `date -s`; on the local cluster through libfaketime
//!   under the db), [`disk::DiskNemesis`] (file corruption, snapshots and
//!   rollbacks of the db's data folder), [`lazyfs::LazyfsNemesis`] (the
//!   db's data folder on a FUSE filesystem that keeps unsynced writes in
//!   memory, `faultline lazyfs`, and `lose-unfsynced`, which drops them
//!   with a kill), [`membership::MembershipNemesis`]
//!   (members removed from the db's cluster and added back, through the
//!   [`Db`](crate::db::Db)'s membership API), [`upgrade::UpgradeNemesis`]
//!   (a rolling upgrade: the db's uploaded server binary replaced by the
//!   next one and the db restarted, one node at a time).
//! - `composite.rs`: [`Nemeses`], all of them behind one `Nemesis`, sharing
//!   a seeded RNG and the record of active faults, so `faultline heal` can
//!   undo what a killed controller left behind.
//! - `client.rs`: [`NemesisClient`], the runner's door: it performs nemesis
//!   operations the generator routes to the nemesis, so they are recorded
//!   in the history like client operations (process `nemesis`, type
//!   `info`); [`invocation_op`], [`completion_op`] and [`heal_all`] build
//!   the same ops for the final heal, which the lifecycle records through
//!   the same recorder after the workers stop.
//! - [`schedule::Schedule`]: the generator of start/stop pairs behind
//!   `--nemesis partition,kill --nemesis-interval 10`, cycling through the
//!   requested kinds and their shapes so each happens; and [`config`]: the
//!   `nemeses/*.toml` files that define each fault family, the names
//!   `--nemesis` accepts, and what a cluster or db cannot do.
//! - [`coverage`]: which requested faults took effect in a run, read from
//!   its history (`results.json`'s `faults`).
//!
//! All calls block on SSH; async callers use `spawn_blocking` (as
//! [`NemesisClient`] does).

mod client;
pub mod clock;
mod composite;
pub mod config;
pub mod coverage;
pub mod disk;
mod env;
#[cfg(test)]
mod fake_tests;
mod fault;
pub mod grudge;
pub mod lazyfs;
pub mod membership;
pub mod net;
#[cfg(feature = "nfq")]
pub mod nfq_delay;
pub mod nfq_stats;
pub mod process;
pub mod record;
pub mod schedule;
pub mod upgrade;

use std::fmt;
use std::path::PathBuf;

use serde_json::Value;

use crate::control::ControlError;
use crate::db::DbError;

pub use client::{completion_op, heal_all, invocation_op, NemesisClient};
pub use composite::{default_record_path, Nemeses, NemesisOptions};
pub use env::Env;
pub use fault::{
    validate_packet, Corruption, Family, Fault, PacketBehavior, PartitionSpec, Targets,
};
pub use record::{ActiveFaults, RecordFile, RecordedDb};
pub use schedule::Schedule;

/// Why a fault could not be injected or healed. Every variant names the
/// node(s) and, for remote failures, the command.
#[derive(Debug, thiserror::Error)]
pub enum NemesisError {
    /// A remote command failed.
    #[error(transparent)]
    Control(#[from] ControlError),
    /// A database step failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The fault cannot be done on these nodes (e.g. clock skew on the local
    /// cluster); nothing was changed.
    #[error("{fault} refused: {reason}")]
    Refused {
        /// The op's `f`.
        fault: String,
        /// Why.
        reason: String,
    },
    /// A bad request (unknown node, no leader, bad value).
    #[error("{0}")]
    Invalid(String),
    /// The record of active faults could not be read or written.
    #[error("nemesis record {path}: {reason}")]
    Record {
        /// The record file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// Several steps failed (e.g. heal on several nodes).
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Many(Vec<NemesisError>),
}

impl NemesisError {
    pub(crate) fn from_many(mut errors: Vec<NemesisError>) -> Result<(), NemesisError> {
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(NemesisError::Many(errors)),
        }
    }
}

/// A fault injector. Methods take `&self` so one nemesis can be shared
/// between the runner's nemesis worker and the code that heals on Ctrl-C.
pub trait Nemesis: Send + Sync + fmt::Debug {
    /// Its name, for logs.
    fn name(&self) -> &'static str;

    /// Whether this nemesis performs `fault`.
    fn handles(&self, fault: &Fault) -> bool;

    /// Prepares the nodes (e.g. clears leftovers of an earlier run). Called
    /// once before the test; the default does nothing.
    fn setup(&self) -> Result<(), NemesisError> {
        Ok(())
    }

    /// Injects `fault` and answers with what was done: the nodes hit, the
    /// grudge. On error, as much as was done stays recorded, so `heal` can
    /// undo it.
    fn invoke(&self, fault: &Fault) -> Result<Value, NemesisError>;

    /// Lifts every fault of this nemesis's kind, whether or not it injected
    /// it: safe at any time, twice, or from a fresh process.
    fn heal(&self) -> Result<Value, NemesisError>;
}
