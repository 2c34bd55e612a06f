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

/// Its one read mode: every operation happens atomically under one lock.
const READ_MODE: &str = "linearizable";

impl System for MemorySystem {
    fn name(&self) -> &'static str {
        "memory"
    }

    /// Every workload: [`MemoryDb::for_workload`] knows every model.
    fn models(&self) -> Option<&'static [&'static str]> {
        None
    }

    fn configure(&self, choice: &super::Choice<'_>) -> Result<Box<dyn Configured>, String> {
        super::only_read_mode(self.name(), choice.read_mode, READ_MODE)?;
        choice.no_db_opts(self.name())?;
        Ok(Box::new(MemoryConfig))
    }
}

#[derive(Debug)]
struct MemoryConfig;

impl Configured for MemoryConfig {
    fn read_mode(&self) -> &'static str {
        READ_MODE
    }

    fn reads(&self) -> Reads {
        Reads::Linearizable
    }

    fn deploy(&self, _nodes: &[Node]) -> anyhow::Result<Box<dyn Deployed>> {
        Ok(Box::new(MemoryDeployed {
            db: Arc::new(MemoryDb::default()),
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
