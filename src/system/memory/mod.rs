//! The in-memory system: a database in faultline's own process, every
//! operation atomic ([`client`]), whose lifecycle decides which nodes serve
//! ([`db`]). It runs every workload, needs no package and no cluster
//! process, and is registered exactly as etcd is: the smallest example of
//! how to add a system (docs/architecture.md).

pub mod client;
pub mod db;

pub use client::{Flaw, MemoryClient, MemoryDb};
pub use db::Health;

use super::{ClientSettings, Configured, Deployed, Reads, System};
use crate::client::{Client, ClientFactory};
use crate::cluster::Node;
use crate::db::Db;
use std::sync::Arc;

/// The in-memory system in the registry.
#[derive(Debug)]
pub struct MemorySystem;

/// Its read modes. `linearizable` (the default): every operation happens
/// atomically under one lock. `stale`: a fault for tests of the harness
/// itself — every [`STALE_EVERY`]-th register read returns the value
/// before the register's latest change ([`Flaw::StaleReads`]), while the
/// checkers still hold reads to linearizability, so the run is invalid.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum ReadMode {
    #[default]
    Linearizable,
    Stale,
}

impl std::str::FromStr for ReadMode {
    type Err = String;
    fn from_str(s: &str) -> Result<ReadMode, String> {
        match s {
            "linearizable" => Ok(ReadMode::Linearizable),
            "stale" => Ok(ReadMode::Stale),
            _ => Err(format!(
                "memory has no read mode {s:?}; its reads are linearizable, or stale (a fault for tests)"
            )),
        }
    }
}

/// With the `stale` read mode, one register read in this many is stale.
pub const STALE_EVERY: u64 = 50;

impl System for MemorySystem {
    fn name(&self) -> &'static str {
        "memory"
    }

    /// Every workload but the lock's: [`MemoryDb::for_workload`] knows
    /// every model except `mutex` (it keeps no lock, so a lock-set run
    /// would acquire nothing and test nothing).
    fn models(&self) -> Option<&'static [&'static str]> {
        Some(&[
            "cas-register",
            "register",
            "set",
            "list-append",
            "rw-register",
            "bank",
            "counter",
            "unique-ids",
            "queue",
            "long-fork",
            "noop",
        ])
    }

    fn configure(&self, choice: &super::Choice<'_>) -> Result<Box<dyn Configured>, String> {
        choice.no_db_opts(self.name())?;
        Ok(Box::new(MemoryConfig(choice.read_mode_or_default()?)))
    }
}

#[derive(Debug)]
struct MemoryConfig(ReadMode);

impl Configured for MemoryConfig {
    fn data_folder(&self) -> Result<(), String> {
        Err("it lives in faultline's own process and keeps nothing on the nodes".into())
    }

    fn read_mode(&self) -> &'static str {
        match self.0 {
            ReadMode::Linearizable => "linearizable",
            ReadMode::Stale => "stale",
        }
    }

    fn reads(&self) -> Reads {
        Reads::Linearizable
    }

    fn deploy(&self, _nodes: &[Node]) -> anyhow::Result<Box<dyn Deployed>> {
        let flaw = match self.0 {
            ReadMode::Linearizable => Flaw::None,
            ReadMode::Stale => Flaw::StaleReads(STALE_EVERY),
        };
        Ok(Box::new(MemoryDeployed {
            db: Arc::new(MemoryDb::default().with_flaw(flaw)),
        }))
    }
}

struct MemoryDeployed {
    db: Arc<MemoryDb>,
}

impl Deployed for MemoryDeployed {
    fn db(&self) -> Arc<dyn Db> {
        self.db.clone()
    }

    fn client_factory(&self, s: &ClientSettings<'_>) -> anyhow::Result<ClientFactory> {
        let db = self.db.serving(s.workload);
        Ok(Box::new(move |_| Box::new(db.client()) as Box<dyn Client>))
    }

    fn version(&self, _node: &Node) -> Option<String> {
        Some(env!("CARGO_PKG_VERSION").to_string())
    }
}
