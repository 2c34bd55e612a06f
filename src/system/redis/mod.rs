//! Redis: a master on the first node, replicas, a Sentinel on every node
//! ([`db`]); registers and sets, writes to the master Sentinel names,
//! reads from the worker's node or the master ([`client`]).

pub mod client;
pub mod db;

pub use client::{RedisClient, RedisClientFactory, RedisClientOptions, RedisReadMode};
pub use db::{Redis, RedisOptions, MASTER_NAME};

use super::{ClientSettings, Configured, Deployed, Package, Reads, System};
use crate::client::{kv::DataKind, ClientFactory};
use crate::cluster::Node;
use crate::db::Db;
use std::sync::Arc;

/// Redis in the registry.
#[derive(Debug)]
pub struct RedisSystem;

/// The Debian packages Redis needs.
pub const PACKAGES: &[Package] = &[
    Package {
        program: "redis-server",
        package: "redis-server",
    },
    Package {
        program: "redis-sentinel",
        package: "redis-sentinel",
    },
];

impl System for RedisSystem {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn models(&self) -> Option<&'static [&'static str]> {
        Some(&["cas-register", "set"])
    }

    fn packages(&self) -> &'static [Package] {
        PACKAGES
    }

    fn server_program(&self) -> Option<&'static str> {
        Some("redis-server")
    }

    fn configure(&self, choice: &super::Choice<'_>) -> Result<Box<dyn Configured>, String> {
        let read_mode: RedisReadMode = choice.read_mode_or_default()?;
        let directives = choice.db_opts_except(&db::RESERVED)?;
        Ok(Box::new(RedisConfig {
            read_mode,
            directives,
            binary: choice.binary.map(std::path::PathBuf::from),
        }))
    }
}

#[derive(Debug)]
struct RedisConfig {
    read_mode: RedisReadMode,
    directives: Vec<super::DbOpt>,
    /// A redis-server of the user's own build (`--db-binary`).
    binary: Option<std::path::PathBuf>,
}

impl Configured for RedisConfig {
    fn data_folder(&self) -> Result<(), String> {
        Ok(())
    }

    /// Debian's redis-server does not start under libfaketime 0.9.10:
    /// its allocator (jemalloc) calls `clock_gettime` while libfaketime
    /// initialises, which libfaketime cannot recover from (measured: even
    /// `redis-server --version` hangs).
    fn faketime_clock(&self) -> Result<(), String> {
        Err(
            "Debian's redis-server hangs at start-up under libfaketime 0.9.10 (its jemalloc \
             calls clock_gettime while libfaketime initialises)"
                .into(),
        )
    }

    fn read_mode(&self) -> &'static str {
        match self.read_mode {
            RedisReadMode::Replica => "replica",
            RedisReadMode::Primary => "primary",
        }
    }

    /// Neither mode is linearizable: a replica lags its master, and an old
    /// master cut off from the others keeps answering.
    fn reads(&self) -> Reads {
        Reads::MaybeStale
    }

    fn deploy(&self, nodes: &[Node]) -> anyhow::Result<Box<dyn Deployed>> {
        let binary = match &self.binary {
            Some(p) => {
                Some(crate::db::DbBinary::open(p).map_err(|e| anyhow::anyhow!("--db-binary {e}"))?)
            }
            None => None,
        };
        Ok(Box::new(RedisDeployed {
            redis: Arc::new(Redis::new(
                RedisOptions {
                    directives: self.directives.clone(),
                    binary,
                    ..RedisOptions::default()
                },
                nodes,
            )),
            read_mode: self.read_mode,
        }))
    }
}

struct RedisDeployed {
    redis: Arc<Redis>,
    read_mode: RedisReadMode,
}

impl Deployed for RedisDeployed {
    fn db(&self) -> Arc<dyn Db> {
        self.redis.clone()
    }

    fn client_factory(&self, s: &ClientSettings<'_>) -> anyhow::Result<ClientFactory> {
        let opts = RedisClientOptions {
            read_mode: self.read_mode,
            timeout: s.op_timeout,
            workload: s.workload.name.clone(),
            kind: DataKind::for_model(&s.workload.model),
            ..RedisClientOptions::default()
        };
        Ok(RedisClientFactory::for_redis(&self.redis, s.nodes, opts)?.into_factory())
    }

    fn version(&self, node: &Node) -> Option<String> {
        super::run_version(
            node,
            &format!(
                "{} --version 2>/dev/null || true",
                self.redis.program(node, "redis-server")
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::{Choice, System};

    fn configure(opts: &[&str]) -> Result<Box<dyn Configured>, String> {
        let opts: Vec<String> = opts.iter().map(|o| o.to_string()).collect();
        RedisSystem.configure(&Choice {
            db: "redis",
            db_opts: &opts,
            ..Choice::default()
        })
    }

    #[test]
    fn db_opts_may_not_override_what_faultline_sets() {
        for (opt, key, reserved) in [
            ("port=6380", "port", "port"),
            ("BIND=0.0.0.0", "BIND", "bind"),
            ("dir=/tmp", "dir", "dir"),
            ("replicaof=h 6379", "replicaof", "replicaof"),
        ] {
            let e = configure(&["appendfsync=always", opt]).unwrap_err();
            assert!(
                e.starts_with(&format!("db_opts: {opt} would override {reserved},"))
                    && e.contains("which faultline sets for redis")
                    && e.contains(&format!("leave {key} out of --db-opt")),
                "{e}"
            );
        }
        // What faultline leaves alone passes.
        configure(&["appendfsync=always"]).unwrap();
    }
}
