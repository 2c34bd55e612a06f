//! The lifecycle of the in-memory database: it lives in faultline's own
//! process, so installing is nothing, and starting, killing, pausing and
//! wiping change which nodes serve and what is stored. A client on a
//! killed node is refused (`fail`), one on a paused node times out
//! (`info`), as with a real system.

use super::client::{MemoryDb, State};
use crate::cluster::Node;
use crate::db::{Db, DbError};
use std::time::Duration;

/// Whether a node of a [`MemoryDb`] serves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Health {
    /// It answers.
    #[default]
    Serving,
    /// Killed or stopped: connections are refused.
    Down,
    /// Frozen: requests time out.
    Paused,
}

impl MemoryDb {
    /// Whether `node` serves.
    pub fn health(&self, node: &str) -> Health {
        self.nodes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(node)
            .copied()
            .unwrap_or_default()
    }

    fn set_health(&self, node: &Node, health: Health) {
        self.nodes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(node.name().to_string(), health);
    }
}

impl Db for MemoryDb {
    fn name(&self) -> &str {
        "memory"
    }

    /// Nothing to install: the database is in this process.
    fn install(&self, _node: &Node) -> Result<(), DbError> {
        Ok(())
    }

    fn start(&self, node: &Node) -> Result<(), DbError> {
        // A paused node stays paused, as a running daemon would.
        if self.health(node.name()) == Health::Down {
            self.set_health(node, Health::Serving);
        }
        Ok(())
    }

    fn stop(&self, node: &Node) -> Result<(), DbError> {
        self.set_health(node, Health::Down);
        Ok(())
    }

    fn kill(&self, node: &Node) -> Result<(), DbError> {
        self.set_health(node, Health::Down);
        Ok(())
    }

    fn pause(&self, node: &Node) -> Result<(), DbError> {
        if self.health(node.name()) == Health::Serving {
            self.set_health(node, Health::Paused);
        }
        Ok(())
    }

    fn resume(&self, node: &Node) -> Result<(), DbError> {
        if self.health(node.name()) == Health::Paused {
            self.set_health(node, Health::Serving);
        }
        Ok(())
    }

    fn is_running(&self, node: &Node) -> Result<bool, DbError> {
        Ok(self.health(node.name()) != Health::Down)
    }

    fn is_paused(&self, node: &Node) -> Result<bool, DbError> {
        Ok(self.health(node.name()) == Health::Paused)
    }

    /// Forgets every stored value (the data is shared by all nodes).
    fn wipe(&self, _node: &Node) -> Result<(), DbError> {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = State::default();
        Ok(())
    }

    fn wait_healthy(&self, nodes: &[Node], timeout: Duration) -> Result<(), DbError> {
        crate::db::poll_healthy(
            self.name(),
            nodes,
            timeout,
            Duration::from_millis(10),
            |pending| {
                pending
                    .iter()
                    .map(|n| match self.health(n.name()) {
                        Health::Serving => Ok(()),
                        other => Err(format!("{other:?}").to_lowercase()),
                    })
                    .collect()
            },
            |_| String::new(),
        )
    }

    fn log_files(&self, _node: &Node) -> Vec<String> {
        Vec::new()
    }
}
