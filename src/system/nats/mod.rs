//! NATS JetStream: every node a server of one NATS cluster with JetStream
//! on ([`db`]; Debian's `nats-server`, a plain daemon), the queue workload
//! on a stream replicated to every node and a durable pull consumer
//! ([`client`]), over the NATS text protocol ([`proto`]; docs/nats.md).

pub mod client;
pub mod db;
pub mod proto;

pub use client::{NatsClient, NatsClientFactory, NatsClientOptions};
pub use db::{Nats, NatsOptions};

use super::{ClientSettings, Configured, Deployed, Package, Reads, System};
use crate::client::ClientFactory;
use crate::cluster::Node;
use crate::db::{Db, DbBinary};
use std::path::PathBuf;
use std::sync::Arc;

/// NATS JetStream in the registry.
#[derive(Debug)]
pub struct NatsSystem;

/// The Debian packages NATS needs.
pub const PACKAGES: &[Package] = &[Package {
    program: "/usr/sbin/nats-server",
    package: "nats-server",
}];

/// Its one read mode: a dequeue is served by the consumer's leader.
const READ_MODE: &str = "consumer";

impl System for NatsSystem {
    fn name(&self) -> &'static str {
        "nats"
    }

    fn models(&self) -> Option<&'static [&'static str]> {
        Some(&["queue"])
    }

    fn packages(&self) -> &'static [Package] {
        PACKAGES
    }

    fn server_program(&self) -> Option<&'static str> {
        Some("nats-server")
    }

    fn configure(&self, choice: &super::Choice<'_>) -> Result<Box<dyn Configured>, String> {
        super::only_read_mode(self.name(), choice.read_mode, READ_MODE)?;
        choice.no_db_opts(self.name())?;
        Ok(Box::new(NatsConfig {
            binary: choice.binary.map(PathBuf::from),
        }))
    }
}

#[derive(Debug)]
struct NatsConfig {
    /// A nats-server of the user's own build (`--db-binary`).
    binary: Option<PathBuf>,
}

impl Configured for NatsConfig {
    /// JetStream's store (`Db::data_folder`).
    fn data_folder(&self) -> Result<(), String> {
        Ok(())
    }

    /// nats-server links libc, but Go's runtime reads the clock through the
    /// kernel's vDSO itself (measured: under libfaketime +5h it logs the
    /// real time).
    fn faketime_clock(&self) -> Result<(), String> {
        Err(
            "nats-server is a Go program: Go reads the clock through the kernel's vDSO, not \
             libc, so libfaketime cannot move it"
                .into(),
        )
    }

    fn read_mode(&self) -> &'static str {
        READ_MODE
    }

    /// The queue checker judges what came out, not reads; JetStream
    /// promises no linearizable view of a queue either.
    fn reads(&self) -> Reads {
        Reads::MaybeStale
    }

    fn deploy(&self, nodes: &[Node]) -> anyhow::Result<Box<dyn Deployed>> {
        let binary = match &self.binary {
            Some(p) => Some(DbBinary::open(p).map_err(|e| anyhow::anyhow!("--db-binary {e}"))?),
            None => None,
        };
        let opts = NatsOptions {
            binary,
            ..NatsOptions::default()
        };
        Ok(Box::new(NatsDeployed {
            nats: Arc::new(Nats::new(opts, nodes)),
        }))
    }
}

struct NatsDeployed {
    nats: Arc<Nats>,
}

impl Deployed for NatsDeployed {
    fn db(&self) -> Arc<dyn Db> {
        self.nats.clone()
    }

    fn client_factory(&self, s: &ClientSettings<'_>) -> anyhow::Result<ClientFactory> {
        let opts = NatsClientOptions {
            timeout: s.op_timeout,
            replicas: self.nats.size(),
        };
        Ok(NatsClientFactory::for_nodes(&self.nats, s.nodes, opts)?.into_factory())
    }

    fn version(&self, node: &Node) -> Option<String> {
        super::run_version(
            node,
            &format!("{} --version 2>/dev/null || true", self.nats.program(node)),
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::system::{check_workload, find, Choice, Reads};
    use crate::workload::Workload;
    use std::path::Path;

    #[test]
    fn nats_is_found_runs_the_queue_workload_and_has_one_read_mode() {
        let nats = find("nats").expect("nats is registered");
        assert_eq!(nats.name(), "nats");
        assert_eq!(
            nats.packages()
                .iter()
                .map(|p| p.package)
                .collect::<Vec<_>>(),
            ["nats-server"]
        );
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads");
        let queue = Workload::find("queue", &dir).expect("queue workload");
        assert_eq!(check_workload(nats, &queue), Ok(()));
        let register = Workload::find("register", &dir).expect("register workload");
        assert_eq!(
            check_workload(nats, &register).unwrap_err(),
            "the nats client does not run the register workload (model cas-register); it runs: queue"
        );
        let configured = nats.configure(&Choice::default()).expect("defaults");
        assert_eq!(
            (configured.read_mode(), configured.reads()),
            ("consumer", Reads::MaybeStale)
        );
        let e = nats
            .configure(&Choice {
                read_mode: "linearizable",
                ..Choice::default()
            })
            .unwrap_err();
        assert_eq!(
            e,
            "read_mode: nats has no read mode \"linearizable\"; its reads are consumer"
        );
    }
}
