//! etcd: every node a member ([`db`]), its JSON gateway client
//! ([`client`]: registers, sets, transactions, counters, ids, and etcd's
//! lock guarding a set in the controller's memory), linearizable or
//! serializable reads.

pub mod client;
pub mod db;
mod http;

pub use client::{EtcdClient, EtcdClientFactory, EtcdClientOptions, ReadMode};
pub use db::{Etcd, EtcdOptions};

use super::{ClientSettings, Configured, Deployed, Package, Reads, System};
use crate::client::{kv::DataKind, ClientFactory};
use crate::cluster::Node;
use crate::db::{Db, DbBinary};
use std::path::PathBuf;
use std::sync::Arc;

/// etcd in the registry.
#[derive(Debug)]
pub struct EtcdSystem;

/// The Debian packages etcd needs.
pub const PACKAGES: &[Package] = &[Package {
    program: "etcd",
    package: "etcd-server",
}];

impl System for EtcdSystem {
    fn name(&self) -> &'static str {
        "etcd"
    }

    fn models(&self) -> Option<&'static [&'static str]> {
        Some(&[
            "cas-register",
            "set",
            "list-append",
            "rw-register",
            "counter",
            "unique-ids",
            "mutex",
        ])
    }

    fn packages(&self) -> &'static [Package] {
        PACKAGES
    }

    fn server_program(&self) -> Option<&'static str> {
        Some("etcd")
    }

    fn configure(&self, choice: &super::Choice<'_>) -> Result<Box<dyn Configured>, String> {
        let read_mode: ReadMode = choice.read_mode_or_default()?;
        let flags = choice
            .db_opts_except(&db::RESERVED)?
            .into_iter()
            .map(|o| format!("--{}={}", o.key, o.value))
            .collect();
        Ok(Box::new(EtcdConfig {
            read_mode,
            binary: choice.binary.map(PathBuf::from),
            flags,
        }))
    }
}

/// etcd's options in a test.
#[derive(Debug)]
struct EtcdConfig {
    read_mode: ReadMode,
    binary: Option<PathBuf>,
    /// `--db-opt` settings as etcd flags (`--KEY=VALUE`).
    flags: Vec<String>,
}

impl Configured for EtcdConfig {
    fn data_folder(&self) -> Result<(), String> {
        Ok(())
    }

    fn faketime_clock(&self) -> Result<(), String> {
        Err(
            "etcd is a static Go binary: it reads the clock through the kernel's vDSO, not \
             libc, so libfaketime cannot move it"
                .into(),
        )
    }

    fn membership(&self) -> Result<(), String> {
        Ok(())
    }

    fn read_mode(&self) -> &'static str {
        match self.read_mode {
            ReadMode::Linearizable => "linearizable",
            ReadMode::Serializable => "serializable",
        }
    }

    fn reads(&self) -> Reads {
        match self.read_mode {
            ReadMode::Linearizable => Reads::Linearizable,
            ReadMode::Serializable => Reads::MaybeStale,
        }
    }

    fn deploy(&self, nodes: &[Node]) -> anyhow::Result<Box<dyn Deployed>> {
        let binary = match &self.binary {
            Some(p) => Some(DbBinary::open(p).map_err(|e| anyhow::anyhow!("--db-binary {e}"))?),
            None => None,
        };
        let etcd = Etcd::new(
            EtcdOptions {
                binary,
                extra_args: self.flags.clone(),
                ..EtcdOptions::default()
            },
            nodes,
        );
        Ok(Box::new(EtcdDeployed {
            etcd: Arc::new(etcd),
            read_mode: self.read_mode,
        }))
    }
}

struct EtcdDeployed {
    etcd: Arc<Etcd>,
    read_mode: ReadMode,
}

impl Deployed for EtcdDeployed {
    fn db(&self) -> Arc<dyn Db> {
        self.etcd.clone()
    }

    fn client_factory(&self, s: &ClientSettings<'_>) -> anyhow::Result<ClientFactory> {
        let opts = EtcdClientOptions {
            read_mode: self.read_mode,
            timeout: s.op_timeout,
            workload: s.workload.name.clone(),
            kind: DataKind::for_model(&s.workload.model),
            lock: s
                .workload
                .lock
                .as_ref()
                .map(|l| client::LockOptions {
                    ttl_s: l.ttl_s,
                    max_sleep_ms: l.max_sleep_ms,
                })
                .unwrap_or_default(),
            ..EtcdClientOptions::default()
        };
        Ok(EtcdClientFactory::for_etcd(&self.etcd, s.nodes, opts)?.into_factory())
    }

    fn version(&self, node: &Node) -> Option<String> {
        let program = crate::control::shell_quote(&self.etcd.binary(node));
        super::run_version(
            node,
            &format!("{program} --version 2>/dev/null | head -1 || true"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::{Choice, System};

    fn configure(opts: &[&str]) -> Result<Box<dyn Configured>, String> {
        let opts: Vec<String> = opts.iter().map(|o| o.to_string()).collect();
        EtcdSystem.configure(&Choice {
            db: "etcd",
            db_opts: &opts,
            ..Choice::default()
        })
    }

    #[test]
    fn db_opts_may_not_override_what_faultline_sets() {
        for (opt, key, reserved) in [
            ("name=x", "name", "name"),
            ("data-dir=/tmp/e", "data-dir", "data-dir"),
            (
                "listen-client-urls=http://0.0.0.0:1",
                "listen-client-urls",
                "listen-client-urls",
            ),
            (
                "initial-cluster=a=http://h:2380",
                "initial-cluster",
                "initial-cluster",
            ),
        ] {
            let e = configure(&["heartbeat-interval=200", opt]).unwrap_err();
            assert!(
                e.starts_with(&format!("db_opts: {opt} would override {reserved},"))
                    && e.contains("which faultline sets for etcd")
                    && e.contains(&format!("leave {key} out of --db-opt")),
                "{e}"
            );
        }
        // What faultline leaves alone passes.
        configure(&["heartbeat-interval=200"]).unwrap();
    }
}
