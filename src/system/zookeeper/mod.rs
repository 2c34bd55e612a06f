//! ZooKeeper: every node a server ([`db`]; JVM daemon, `srvr` health, the
//! leader is the primary), registers and sets on znodes ([`client`]),
//! plain or sync reads.

pub mod client;
pub mod db;

pub use client::{ZkClient, ZkClientFactory, ZkClientOptions, ZkReadMode};
pub use db::{Zookeeper, ZookeeperOptions};

use super::{ClientSettings, Configured, Deployed, Package, Reads, System};
use crate::client::{kv::DataKind, ClientFactory};
use crate::cluster::Node;
use crate::db::Db;
use std::sync::Arc;

/// ZooKeeper in the registry.
#[derive(Debug)]
pub struct ZookeeperSystem;

/// The Debian packages ZooKeeper needs.
pub const PACKAGES: &[Package] = &[Package {
    program: "/usr/share/java/zookeeper.jar",
    package: "zookeeper",
}];

impl System for ZookeeperSystem {
    fn name(&self) -> &'static str {
        "zookeeper"
    }

    fn models(&self) -> Option<&'static [&'static str]> {
        Some(&["cas-register", "set"])
    }

    fn packages(&self) -> &'static [Package] {
        PACKAGES
    }

    fn configure(&self, choice: &super::Choice<'_>) -> Result<Box<dyn Configured>, String> {
        let read_mode: ZkReadMode = choice.read_mode_or_default()?;
        let lines = choice
            .db_opts_except(&db::RESERVED)?
            .into_iter()
            .map(|o| format!("{}={}", o.key, o.value))
            .collect();
        Ok(Box::new(ZkConfig { read_mode, lines }))
    }
}

#[derive(Debug)]
struct ZkConfig {
    read_mode: ZkReadMode,
    /// `--db-opt` lines for zoo.cfg.
    lines: Vec<String>,
}

impl Configured for ZkConfig {
    fn data_folder(&self) -> Result<(), String> {
        Ok(())
    }

    /// the JVM reads the wall clock through libc's `clock_gettime`, so libfaketime moves it.
    fn faketime_clock(&self) -> Result<(), String> {
        Ok(())
    }

    fn read_mode(&self) -> &'static str {
        match self.read_mode {
            ZkReadMode::Plain => "plain",
            ZkReadMode::Sync => "sync",
        }
    }

    /// A plain read may be stale; a sync read catches up with the leader
    /// first, yet ZooKeeper does not promise it linearizable (a sync is
    /// not a quorum read), so the checkers do not assume so either.
    fn reads(&self) -> Reads {
        Reads::MaybeStale
    }

    fn deploy(&self, nodes: &[Node]) -> anyhow::Result<Box<dyn Deployed>> {
        Ok(Box::new(ZkDeployed {
            zk: Arc::new(Zookeeper::new(
                ZookeeperOptions {
                    extra_config: self.lines.clone(),
                    ..ZookeeperOptions::default()
                },
                nodes,
            )),
            read_mode: self.read_mode,
        }))
    }
}

struct ZkDeployed {
    zk: Arc<Zookeeper>,
    read_mode: ZkReadMode,
}

impl Deployed for ZkDeployed {
    fn db(&self) -> Arc<dyn Db> {
        self.zk.clone()
    }

    fn client_factory(&self, s: &ClientSettings<'_>) -> anyhow::Result<ClientFactory> {
        let opts = ZkClientOptions {
            read_mode: self.read_mode,
            timeout: s.op_timeout,
            workload: s.workload.name.clone(),
            kind: DataKind::for_model(&s.workload.model),
            ..ZkClientOptions::default()
        };
        Ok(ZkClientFactory::for_nodes(s.nodes, self.zk.client_port(), opts)?.into_factory())
    }

    fn version(&self, node: &Node) -> Option<String> {
        super::run_version(
            node,
            "dpkg-query -W -f '${Version}' zookeeper 2>/dev/null || true",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::{Choice, System};

    fn configure(opts: &[&str]) -> Result<Box<dyn Configured>, String> {
        let opts: Vec<String> = opts.iter().map(|o| o.to_string()).collect();
        ZookeeperSystem.configure(&Choice {
            db: "zookeeper",
            db_opts: &opts,
            ..Choice::default()
        })
    }

    #[test]
    fn db_opts_may_not_override_what_faultline_sets() {
        for (opt, key, reserved) in [
            ("dataDir=/tmp/z", "dataDir", "dataDir"),
            ("clientPort=2182", "clientPort", "clientPort"),
            ("server.4=h:2888:3888", "server.4", "server.*"),
        ] {
            let e = configure(&["tickTime=500", opt]).unwrap_err();
            assert!(
                e.starts_with(&format!("db_opts: {opt} would override {reserved},"))
                    && e.contains("which faultline sets for zookeeper")
                    && e.contains(&format!("leave {key} out of --db-opt")),
                "{e}"
            );
        }
        // What faultline leaves alone passes.
        configure(&["tickTime=500"]).unwrap();
    }
}
