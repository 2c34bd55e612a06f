//! The database under test, chosen by `--db`: its db lifecycle, its
//! client factory, the workloads its clients run and its version.

use super::spec::TestSpec;
use crate::client::etcd::{DataKind, EtcdClientFactory, EtcdClientOptions, ReadMode};
use crate::client::external::{ExternalClientFactory, NodeCommand};
use crate::client::postgres::{Isolation, PostgresClientFactory, PostgresClientOptions};
use crate::client::redis::{RedisClientFactory, RedisClientOptions, RedisReadMode};
use crate::client::zookeeper::{ZkClientFactory, ZkClientOptions, ZkDataKind};
use crate::cluster::Cluster;
use crate::db::file::{FileDb, FileDbSpec, Template};
use crate::db::{self, Db, Etcd, EtcdOptions, Postgres, PostgresOptions};
use crate::db::{Redis, RedisOptions};
use crate::db::{Zookeeper, ZookeeperOptions};
use crate::workload::Workload;
use std::sync::Arc;
use std::time::Duration;

pub(crate) fn version_of(cluster: &Cluster, target: &System) -> anyhow::Result<String> {
    let n = cluster
        .nodes()
        .first()
        .ok_or_else(|| anyhow::anyhow!("no nodes"))?;
    let cmd = match target {
        System::Etcd(_) => "etcd --version 2>/dev/null | head -1 || true",
        System::File(f, _) => {
            return f
                .version(n)
                .ok_or_else(|| anyhow::anyhow!("no version command"))
        }
        System::Zookeeper(_) => "dpkg-query -W -f '${Version}' zookeeper 2>/dev/null || true",
        System::Postgres(..) => {
            "$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)/postgres --version 2>/dev/null || true"
        }
        System::Redis(_) => "redis-server --version 2>/dev/null || true",
    };
    let out = n.run(cmd)?;
    Ok(out.trim().to_string())
}

/// The db file `spec.db` names, loaded and checked, with its client
/// command line (`spec.client` or the file's `client`).
pub(crate) fn file_db(spec: &TestSpec) -> anyhow::Result<(Arc<FileDbSpec>, Template)> {
    let path = db::file::db_file_path(&spec.db)
        .ok_or_else(|| anyhow::anyhow!("{:?} is not a db file", spec.db))?;
    let file = FileDbSpec::load(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let client = match &spec.client {
        Some(c) => file.client_template(c).map_err(|e| anyhow::anyhow!(e))?,
        None => file.client.clone().ok_or_else(|| {
            anyhow::anyhow!(
                "{}: no client program: add `client = \"program args {{node}} {{ip}}\"` \
                 to the file, or pass --client (docs/file-db.md)",
                path.display()
            )
        })?,
    };
    Ok((Arc::new(file), client))
}

/// Refuses a workload the db's clients cannot run. etcd's client runs
/// them all: registers, sets, and transactions (`client/etcd/txn.rs`).
pub(crate) fn check_db_workload(db: &str, workload: &Workload) -> anyhow::Result<()> {
    // The models each built-in db's client runs; a db file's external
    // client is given every workload (it answers `fail` to what it cannot do).
    let runs: &[&str] = match db {
        "etcd" => &[
            "cas-register",
            "set",
            "list-append",
            "rw-register",
            "counter",
            "unique-ids",
        ],
        "postgres" => &["list-append", "rw-register", "long-fork"],
        "zookeeper" | "redis" => &["cas-register", "set"],
        _ => return Ok(()),
    };
    if runs.contains(&workload.model.as_str()) {
        Ok(())
    } else {
        anyhow::bail!(
            "the {db} client does not run the {} workload (model {}); it runs: {}",
            workload.name,
            workload.model,
            runs.join(", ")
        )
    }
}

/// The database under test and how its clients are made.
pub(crate) enum System {
    Etcd(Arc<Etcd>),
    Postgres(Arc<Postgres>, Isolation),
    /// A db file, and its client program's command line.
    File(Arc<FileDb>, Template),
    Zookeeper(Arc<Zookeeper>),
    Redis(Arc<Redis>),
}

impl System {
    /// The db `spec.db` names, refusing workloads its clients cannot run.
    pub(crate) fn new(
        spec: &TestSpec,
        cluster: &Cluster,
        workload: &Workload,
    ) -> anyhow::Result<System> {
        check_db_workload(&spec.db, workload)?;
        match spec.db.as_str() {
            "etcd" => Ok(System::Etcd(Arc::new(Etcd::new(
                EtcdOptions {
                    binary: spec.etcd_binary.clone(),
                    ..EtcdOptions::default()
                },
                cluster.nodes(),
            )))),
            "postgres" => {
                let isolation = spec.isolation.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
                Ok(System::Postgres(
                    Arc::new(Postgres::new(PostgresOptions::default(), cluster.nodes())),
                    isolation,
                ))
            }
            other if db::file::db_file_path(other).is_some() => {
                let (file, client) = file_db(spec)?;
                let db = FileDb::new(file, cluster.nodes())?;
                Ok(System::File(Arc::new(db), client))
            }
            "zookeeper" => Ok(System::Zookeeper(Arc::new(Zookeeper::new(
                ZookeeperOptions::default(),
                cluster.nodes(),
            )))),
            "redis" => Ok(System::Redis(Arc::new(Redis::new(
                RedisOptions::default(),
                cluster.nodes(),
            )))),
            other => anyhow::bail!("unknown db {other:?} (known: {})", db::KNOWN.join(", ")),
        }
    }

    pub(crate) fn db(&self) -> Arc<dyn Db> {
        match self {
            System::Etcd(e) => e.clone(),
            System::Postgres(p, _) => p.clone(),
            System::File(f, _) => f.clone(),
            System::Zookeeper(z) => z.clone(),
            System::Redis(r) => r.clone(),
        }
    }

    pub(crate) fn client_factory(
        &self,
        spec: &TestSpec,
        workload: &Workload,
        cluster: &Cluster,
    ) -> anyhow::Result<crate::client::ClientFactory> {
        match self {
            System::Etcd(etcd) => {
                let read_mode: ReadMode =
                    spec.read_mode.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
                let opts = EtcdClientOptions {
                    read_mode,
                    timeout: Duration::from_secs_f64(spec.op_timeout),
                    workload: workload.name.clone(),
                    kind: DataKind::for_model(&workload.model),
                    ..EtcdClientOptions::default()
                };
                Ok(EtcdClientFactory::for_etcd(etcd, cluster.nodes(), opts)?.into_factory())
            }
            System::Postgres(pg, isolation) => {
                let host = pg
                    .host()
                    .ok_or_else(|| anyhow::anyhow!("postgres needs a node"))?;
                let mut opts = PostgresClientOptions::new(host, pg.port());
                opts.isolation = *isolation;
                opts.list_append = workload.model == "list-append";
                Ok(PostgresClientFactory::new(opts).into_factory())
            }
            System::File(f, client) => {
                let mut commands = std::collections::HashMap::new();
                for n in cluster.nodes() {
                    let vars = f
                        .vars(n.name())
                        .ok_or_else(|| anyhow::anyhow!("no variables for node {}", n.name()))?;
                    let command = client.expand(vars).map_err(|e| anyhow::anyhow!(e))?;
                    commands.insert(
                        n.name().to_string(),
                        NodeCommand {
                            ip: n.host().to_string(),
                            command,
                        },
                    );
                }
                Ok(ExternalClientFactory::new(commands).into_factory())
            }
            System::Zookeeper(zk) => {
                let opts = ZkClientOptions {
                    read_mode: spec.read_mode.parse().map_err(|e| anyhow::anyhow!("{e}"))?,
                    timeout: Duration::from_secs_f64(spec.op_timeout),
                    workload: workload.name.clone(),
                    kind: ZkDataKind::for_model(&workload.model),
                    ..ZkClientOptions::default()
                };
                Ok(
                    ZkClientFactory::for_nodes(cluster.nodes(), zk.client_port(), opts)?
                        .into_factory(),
                )
            }
            System::Redis(r) => {
                let read_mode: RedisReadMode =
                    spec.read_mode.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
                let opts = RedisClientOptions {
                    read_mode,
                    timeout: Duration::from_secs_f64(spec.op_timeout),
                    workload: workload.name.clone(),
                    kind: DataKind::for_model(&workload.model),
                    ..RedisClientOptions::default()
                };
                Ok(RedisClientFactory::for_redis(r, cluster.nodes(), opts)?.into_factory())
            }
        }
    }
}

#[cfg(test)]
mod redis_spec_tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn redis_takes_replica_or_primary_reads_and_refuses_transactions() {
        let spec = |read_mode: &str| TestSpec {
            db: "redis".into(),
            read_mode: read_mode.into(),
            ..TestSpec::default()
        };
        assert_eq!(spec("replica").validate(), Ok(()));
        assert_eq!(spec("primary").validate(), Ok(()));
        // The generic default means the redis default.
        assert_eq!(spec("linearizable").validate(), Ok(()));
        let e = spec("serializable").validate().unwrap_err();
        assert!(e.starts_with("read_mode: ") && e.contains("replica"), "{e}");
        // etcd keeps its own modes.
        let etcd = TestSpec {
            read_mode: "primary".into(),
            ..TestSpec::default()
        };
        assert!(etcd.validate().unwrap_err().contains("linearizable"));

        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads");
        let txn = Workload::find("list-append", &dir).expect("list-append workload");
        let e = check_db_workload("redis", &txn).unwrap_err().to_string();
        assert!(
            e.contains("the redis client does not run the list-append workload")
                && e.contains("it runs: cas-register, set"),
            "{e}"
        );
        let set = Workload::find("set", &dir).expect("set workload");
        assert!(check_db_workload("redis", &set).is_ok());
    }
}
