//! PostgreSQL: one server on the first node ([`db`]), transactions of the
//! `list-append`, `rw-register` and `long-fork` workloads at an isolation
//! level ([`client`], tokio-postgres).

pub mod client;
pub mod db;

pub use client::{Isolation, PostgresClient, PostgresClientFactory, PostgresClientOptions};
pub use db::{Postgres, PostgresOptions};

use super::{ClientSettings, Configured, Deployed, Package, Reads, System};
use crate::client::ClientFactory;
use crate::cluster::Node;
use crate::db::Db;
use std::sync::Arc;

/// PostgreSQL in the registry.
#[derive(Debug)]
pub struct PostgresSystem;

/// The Debian packages PostgreSQL needs.
pub const PACKAGES: &[Package] = &[Package {
    program: "/usr/lib/postgresql",
    package: "postgresql",
}];

/// Its reads are those of its transactions (the isolation level decides
/// what they see); there is no other read mode.
const READ_MODE: &str = "linearizable";

impl System for PostgresSystem {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn models(&self) -> Option<&'static [&'static str]> {
        Some(&["list-append", "rw-register", "long-fork"])
    }

    fn packages(&self) -> &'static [Package] {
        PACKAGES
    }

    fn configure(&self, choice: &super::Choice<'_>) -> Result<Box<dyn Configured>, String> {
        super::only_read_mode(self.name(), choice.read_mode, READ_MODE)?;
        let isolation = if choice.isolation.is_empty() {
            Isolation::Serializable
        } else {
            choice
                .isolation
                .parse()
                .map_err(|e| format!("isolation: {e}"))?
        };
        let settings = choice.db_opts_except(&db::RESERVED)?;
        if let Some(o) = settings.iter().find(|o| o.key.contains('-')) {
            return Err(format!(
                "db_opts: {:?} is no PostgreSQL setting name (they use `_`, not `-`)",
                o.key
            ));
        }
        Ok(Box::new(PostgresConfig {
            isolation,
            settings,
        }))
    }
}

#[derive(Debug)]
struct PostgresConfig {
    isolation: Isolation,
    settings: Vec<super::DbOpt>,
}

impl Configured for PostgresConfig {
    /// PostgreSQL reads the clock through libc (`clock_gettime`), so libfaketime moves it.
    fn faketime_clock(&self) -> Result<(), String> {
        Ok(())
    }

    fn read_mode(&self) -> &'static str {
        READ_MODE
    }

    fn reads(&self) -> Reads {
        Reads::Linearizable
    }

    fn deploy(&self, nodes: &[Node]) -> anyhow::Result<Box<dyn Deployed>> {
        Ok(Box::new(PostgresDeployed {
            pg: Arc::new(Postgres::new(
                PostgresOptions {
                    settings: self.settings.clone(),
                    ..PostgresOptions::default()
                },
                nodes,
            )),
            isolation: self.isolation,
        }))
    }
}

struct PostgresDeployed {
    pg: Arc<Postgres>,
    isolation: Isolation,
}

impl Deployed for PostgresDeployed {
    fn db(&self) -> Arc<dyn Db> {
        self.pg.clone()
    }

    fn client_factory(&self, s: &ClientSettings<'_>) -> anyhow::Result<ClientFactory> {
        let host = self
            .pg
            .host()
            .ok_or_else(|| anyhow::anyhow!("postgres needs a node"))?;
        let mut opts = PostgresClientOptions::new(host, self.pg.port());
        opts.isolation = self.isolation;
        opts.list_append = s.workload.model == "list-append";
        Ok(PostgresClientFactory::new(opts).into_factory())
    }

    fn version(&self, node: &Node) -> Option<String> {
        super::run_version(
            node,
            "$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)/postgres --version 2>/dev/null || true",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::{Choice, System};

    fn configure(opts: &[&str]) -> Result<Box<dyn Configured>, String> {
        let opts: Vec<String> = opts.iter().map(|o| o.to_string()).collect();
        PostgresSystem.configure(&Choice {
            db: "postgres",
            db_opts: &opts,
            ..Choice::default()
        })
    }

    #[test]
    fn db_opts_may_not_override_what_faultline_sets() {
        for (opt, key, reserved) in [
            ("port=5433", "port", "port"),
            ("Listen_Addresses=*", "Listen_Addresses", "listen_addresses"),
            ("data_directory=/x", "data_directory", "data_directory"),
            ("hba_file=/x", "hba_file", "hba_file"),
        ] {
            let e = configure(&["synchronous_commit=off", opt]).unwrap_err();
            assert!(
                e.starts_with(&format!("db_opts: {opt} would override {reserved},"))
                    && e.contains("which faultline sets for postgres")
                    && e.contains(&format!("leave {key} out of --db-opt")),
                "{e}"
            );
        }
        // What faultline leaves alone passes.
        configure(&["synchronous_commit=off"]).unwrap();
    }
}
