//! MariaDB with Galera: a Galera cluster of one MariaDB server per node,
//! bootstrapped on the first ([`db`]; Debian's `mariadb-server` and
//! `galera-4`), and clients on every node running the `list-append`,
//! `rw-register` and `bank` workloads as SQL transactions at an isolation
//! level ([`client`], `mysql_async`; docs/galera.md).
//!
//! `--db-opt KEY=VALUE` settings go to the `[mysqld]` section of every
//! node's my.cnf, after faultline's own (for example
//! `innodb_flush_log_at_trx_commit=1` or `wsrep_sync_wait=1`); the ones
//! faultline depends on ([`db::RESERVED`]) are refused.

pub mod client;
pub mod db;

pub use client::{GaleraClientFactory, GaleraClientOptions, Tables};
pub use db::{Galera, GaleraOptions};

use super::postgres::Isolation;
use super::{ClientSettings, Configured, Deployed, Package, Reads, System};
use crate::client::ClientFactory;
use crate::cluster::Node;
use crate::db::Db;
use std::sync::Arc;
use std::time::Duration;

/// MariaDB Galera Cluster in the registry.
#[derive(Debug)]
pub struct GaleraSystem;

/// The Debian packages it needs: the server, and the Galera provider
/// library it loads.
pub const PACKAGES: &[Package] = &[
    Package {
        program: "/usr/sbin/mariadbd",
        package: "mariadb-server",
    },
    Package {
        program: db::PROVIDER,
        package: "galera-4",
    },
];

/// Its reads are those of its transactions (the isolation level and
/// `wsrep_sync_wait` decide what they see); there is no other read mode.
const READ_MODE: &str = "transactional";

/// The isolation level when none is given: a test's default, as for
/// PostgreSQL (MariaDB's own default is repeatable read).
pub const DEFAULT_ISOLATION: Isolation = Isolation::Serializable;

impl System for GaleraSystem {
    fn name(&self) -> &'static str {
        "galera"
    }

    fn models(&self) -> Option<&'static [&'static str]> {
        Some(&["list-append", "rw-register", "bank"])
    }

    fn packages(&self) -> &'static [Package] {
        PACKAGES
    }

    fn configure(&self, choice: &super::Choice<'_>) -> Result<Box<dyn Configured>, String> {
        super::only_read_mode(self.name(), choice.read_mode, READ_MODE)?;
        let isolation = if choice.isolation.is_empty() {
            DEFAULT_ISOLATION
        } else {
            choice
                .isolation
                .parse()
                .map_err(|e| format!("isolation: {e}"))?
        };
        Ok(Box::new(GaleraConfig {
            isolation,
            settings: settings(choice)?,
        }))
    }
}

/// The `--db-opt` settings as my.cnf names them: MariaDB takes `-` and
/// `_` alike in option names, so they are written with `_` and checked
/// against [`db::RESERVED`] that way (`bind-address` is `bind_address`).
fn settings(choice: &super::Choice<'_>) -> Result<Vec<super::DbOpt>, String> {
    let opts: Vec<super::DbOpt> = choice
        .db_opts()?
        .into_iter()
        .map(|o| super::DbOpt {
            key: o.key.replace('-', "_"),
            value: o.value,
        })
        .collect();
    db::RESERVED.check(&opts)?;
    Ok(opts)
}

#[derive(Debug)]
struct GaleraConfig {
    isolation: Isolation,
    settings: Vec<super::DbOpt>,
}

impl Configured for GaleraConfig {
    fn data_folder(&self) -> Result<(), String> {
        Ok(())
    }

    /// mariadbd reads the wall clock through libc (`clock_gettime`), so
    /// libfaketime moves it (checked: `mariadbd --version` starts under it
    /// and its clock follows the control file).
    fn faketime_clock(&self) -> Result<(), String> {
        Ok(())
    }

    fn read_mode(&self) -> &'static str {
        READ_MODE
    }

    /// A read on one node may miss a write another node acknowledged
    /// (appliers run after the commit is acknowledged, unless
    /// `wsrep_sync_wait` says otherwise): the checkers get no promise of
    /// linearizable reads.
    fn reads(&self) -> Reads {
        Reads::MaybeStale
    }

    /// Every node accepts writes: there is no leader to aim faults at.
    fn names_primaries(&self) -> bool {
        false
    }

    fn deploy(&self, nodes: &[Node]) -> anyhow::Result<Box<dyn Deployed>> {
        Ok(Box::new(GaleraDeployed {
            galera: Arc::new(Galera::new(
                GaleraOptions {
                    settings: self.settings.clone(),
                    ..GaleraOptions::default()
                },
                nodes,
            )),
            isolation: self.isolation,
        }))
    }
}

struct GaleraDeployed {
    galera: Arc<Galera>,
    isolation: Isolation,
}

impl Deployed for GaleraDeployed {
    fn db(&self) -> Arc<dyn Db> {
        self.galera.clone()
    }

    fn client_factory(&self, s: &ClientSettings<'_>) -> anyhow::Result<ClientFactory> {
        let tables = match s.workload.model.as_str() {
            "list-append" => Tables::ListAppend,
            "rw-register" => Tables::RwRegister,
            "bank" => {
                let spec = s.workload.bank.clone().unwrap_or_default();
                Tables::Bank {
                    initial: spec.initial_balances(),
                    negative_balances: spec.negative_balances,
                }
            }
            other => anyhow::bail!("the galera client does not run the {other} model"),
        };
        let mut opts = GaleraClientOptions::new(self.galera.options().port, tables);
        opts.isolation = self.isolation;
        let hosts = s
            .nodes
            .iter()
            .map(|n| (n.name().to_string(), n.host().to_string()));
        Ok(GaleraClientFactory::new(hosts, opts)?.into_factory())
    }

    fn version(&self, node: &Node) -> Option<String> {
        super::run_version(
            node,
            "v=$(/usr/sbin/mariadbd --version 2>/dev/null | sed 's/^.*Ver /MariaDB /'); \
             g=$(dpkg-query -W -f '${Version}' galera-4 2>/dev/null); \
             echo \"$v; galera-4 $g\"",
        )
    }

    /// The joiners copy the first node's data (SST) before they are
    /// synced: set-up takes longer than a single server's.
    fn healthy_within(&self) -> Duration {
        Duration::from_secs(180)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::{check_workload, find, Choice};
    use crate::workload::Workload;
    use std::path::Path;

    fn configure(isolation: &str, opts: &[&str]) -> Result<Box<dyn Configured>, String> {
        let opts: Vec<String> = opts.iter().map(|o| o.to_string()).collect();
        GaleraSystem.configure(&Choice {
            db: "galera",
            isolation,
            db_opts: &opts,
            ..Choice::default()
        })
    }

    #[test]
    fn galera_is_found_and_runs_the_transactional_and_bank_workloads() {
        let galera = find("galera").expect("galera is registered");
        assert_eq!(
            galera
                .packages()
                .iter()
                .map(|p| p.package)
                .collect::<Vec<_>>(),
            ["mariadb-server", "galera-4"]
        );
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads");
        for w in ["list-append", "rw-register", "bank"] {
            let w = Workload::find(w, &dir).expect("workload");
            assert_eq!(check_workload(galera, &w), Ok(()));
        }
        let register = Workload::find("register", &dir).expect("register workload");
        assert_eq!(
            check_workload(galera, &register).unwrap_err(),
            "the galera client does not run the register workload (model cas-register); \
             it runs: list-append, rw-register, bank"
        );
    }

    #[test]
    fn isolation_defaults_to_serializable_and_reads_may_be_stale() {
        let c = configure("", &[]).expect("defaults");
        assert_eq!(c.read_mode(), "transactional");
        assert_eq!(c.reads(), Reads::MaybeStale);
        assert!(!c.names_primaries());
        assert!(
            format!("{c:?}").contains("isolation: Serializable"),
            "{c:?}"
        );
        let r = configure("repeatable-read", &[]).expect("repeatable read");
        assert!(
            format!("{r:?}").contains("isolation: RepeatableRead"),
            "{r:?}"
        );
        let e = configure("snapshot", &[]).unwrap_err();
        assert!(
            e.starts_with("isolation: unknown isolation level \"snapshot\""),
            "{e}"
        );
        let e = GaleraSystem
            .configure(&Choice {
                read_mode: "linearizable",
                ..Choice::default()
            })
            .unwrap_err();
        assert_eq!(
            e,
            "read_mode: galera has no read mode \"linearizable\"; its reads are transactional"
        );
    }

    #[test]
    fn db_opts_are_my_cnf_settings_and_may_not_override_what_faultline_sets() {
        let c = configure(
            "",
            &[
                "innodb-flush-log-at-trx-commit=1",
                "wsrep_sync_wait=1",
                "innodb_snapshot_isolation=ON",
            ],
        )
        .expect("plain settings pass");
        let text = format!("{c:?}");
        // `-` and `_` are one to MariaDB: written with `_`.
        assert!(text.contains("innodb_flush_log_at_trx_commit"), "{text}");
        for (opt, key, reserved) in [
            ("bind-address=0.0.0.0", "bind_address", "bind_address"),
            ("Datadir=/x", "Datadir", "datadir"),
            (
                "wsrep_cluster_address=gcomm://",
                "wsrep_cluster_address",
                "wsrep_cluster_address",
            ),
            ("wsrep-on=OFF", "wsrep_on", "wsrep_on"),
            ("port=3307", "port", "port"),
        ] {
            let e = configure("", &["wsrep_sync_wait=1", opt]).unwrap_err();
            assert!(
                e.contains(&format!("would override {reserved},"))
                    && e.contains("which faultline sets for galera")
                    && e.contains(&format!("leave {key} out of --db-opt")),
                "{e}"
            );
        }
        let e = configure("", &["no_equals_sign"]).unwrap_err();
        assert!(e.starts_with("db_opts: no `=`"), "{e}");
    }
}
