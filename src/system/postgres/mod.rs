//! PostgreSQL: one server on the first node, or with `--read-mode primary`
//! or `replica` a primary there and hot standbys on the others ([`db`]);
//! transactions of the `list-append`, `rw-register` and `long-fork`
//! workloads at an isolation level ([`client`], tokio-postgres), read-only
//! ones sent to a standby with `replica`.

pub mod client;
pub mod db;

pub use client::{
    Isolation, PostgresClient, PostgresClientFactory, PostgresClientOptions, PostgresReadMode,
};
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
        let read_mode: PostgresReadMode = choice.read_mode_or_default()?;
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
            read_mode,
            isolation,
            settings,
        }))
    }
}

#[derive(Debug)]
struct PostgresConfig {
    read_mode: PostgresReadMode,
    isolation: Isolation,
    settings: Vec<super::DbOpt>,
}

impl Configured for PostgresConfig {
    fn data_folder(&self) -> Result<(), String> {
        Ok(())
    }

    /// PostgreSQL reads the clock through libc (`clock_gettime`), so libfaketime moves it.
    fn faketime_clock(&self) -> Result<(), String> {
        Ok(())
    }

    fn read_mode(&self) -> &'static str {
        self.read_mode.name()
    }

    /// Transactions on the primary read what it has committed (the
    /// isolation level decides what they see); a standby replays the
    /// primary's WAL behind it, so a read there may miss a write that
    /// committed before the read began.
    fn reads(&self) -> Reads {
        match self.read_mode {
            PostgresReadMode::Linearizable | PostgresReadMode::Primary => Reads::Linearizable,
            PostgresReadMode::Replica => Reads::MaybeStale,
        }
    }

    fn deploy(&self, nodes: &[Node]) -> anyhow::Result<Box<dyn Deployed>> {
        if self.read_mode.replicated() && nodes.len() < 2 {
            anyhow::bail!(
                "postgres --read-mode {} needs at least 2 nodes (a primary and a standby), got {}",
                self.read_mode.name(),
                nodes.len()
            );
        }
        Ok(Box::new(PostgresDeployed {
            pg: Arc::new(Postgres::new(
                PostgresOptions {
                    settings: self.settings.clone(),
                    standbys: self.read_mode.replicated(),
                    ..PostgresOptions::default()
                },
                nodes,
            )),
            isolation: self.isolation,
            read_mode: self.read_mode,
        }))
    }
}

struct PostgresDeployed {
    pg: Arc<Postgres>,
    isolation: Isolation,
    read_mode: PostgresReadMode,
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
        opts.read_mode = self.read_mode;
        opts.standbys = self.pg.standbys().to_vec();
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
        configure_mode("", opts)
    }

    fn configure_mode(read_mode: &str, opts: &[&str]) -> Result<Box<dyn Configured>, String> {
        let opts: Vec<String> = opts.iter().map(|o| o.to_string()).collect();
        PostgresSystem.configure(&Choice {
            db: "postgres",
            read_mode,
            db_opts: &opts,
            ..Choice::default()
        })
    }

    #[test]
    fn replica_reads_are_declared_maybe_stale() {
        let reads = |mode: &str| configure_mode(mode, &[]).map(|c| (c.read_mode(), c.reads()));
        assert_eq!(reads(""), Ok(("linearizable", Reads::Linearizable)));
        assert_eq!(reads("primary"), Ok(("primary", Reads::Linearizable)));
        assert_eq!(reads("replica"), Ok(("replica", Reads::MaybeStale)));
        let e = configure_mode("sync", &[]).unwrap_err();
        assert!(
            e.starts_with("read_mode: unknown read mode \"sync\" for postgres"),
            "{e}"
        );
    }

    #[test]
    fn the_replication_settings_come_before_the_users() {
        let opts = [crate::system::DbOpt {
            key: "hot_standby_feedback".into(),
            value: "on".into(),
        }];
        assert_eq!(
            db::faultline_conf(&opts, false),
            "hot_standby_feedback = 'on'\n"
        );
        assert_eq!(
            db::faultline_conf(&opts, true),
            "wal_level = 'replica'\nhot_standby = 'on'\nmax_wal_senders = '10'\n\
             hot_standby_feedback = 'on'\n"
        );
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
