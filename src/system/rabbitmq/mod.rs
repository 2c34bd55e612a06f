//! RabbitMQ: every node a broker of one RabbitMQ cluster ([`db`]; Debian's
//! `rabbitmq-server`, a plain daemon with its own `epmd`), the queue
//! workload on one durable queue with publisher confirms and manual acks
//! ([`client`], over the `lapin` crate; docs/rabbitmq.md).
//!
//! Its settings are two `--db-opt`s: `queue_type=classic|mirrored|quorum`
//! (the queue's kind) and `cluster_partition_handling=ignore|
//! pause_minority|autoheal` (RabbitMQ's own name for it), and `net_ticktime`
//! (seconds: how soon Erlang calls an unreachable node down). The first
//! two, as the running brokers report them, go into `test.json`'s
//! `db_version`.

pub mod client;
pub mod db;

pub use client::{RabbitClient, RabbitClientFactory, RabbitClientOptions};
pub use db::{PartitionHandling, QueueType, RabbitMq, RabbitOptions};

use super::{ClientSettings, Configured, DbOpt, Deployed, Package, Reads, System};
use crate::client::ClientFactory;
use crate::cluster::Node;
use crate::db::Db;
use std::sync::Arc;

/// RabbitMQ in the registry.
#[derive(Debug)]
pub struct RabbitMqSystem;

/// The Debian packages RabbitMQ needs.
pub const PACKAGES: &[Package] = &[Package {
    program: "/usr/lib/rabbitmq/bin/rabbitmq-server",
    package: "rabbitmq-server",
}];

/// Its one read mode: a dequeue is served by the queue's leader.
const READ_MODE: &str = "queue";

/// The `--db-opt` key of the queue's kind.
pub const QUEUE_TYPE: &str = "queue_type";
/// The `--db-opt` key of the partition handling mode.
pub const PARTITION_HANDLING: &str = "cluster_partition_handling";
/// The `--db-opt` key of Erlang's tick time.
pub const NET_TICKTIME: &str = "net_ticktime";

/// Parses the `--db-opt`s RabbitMQ takes, refusing any other.
pub fn parse_options(opts: &[DbOpt]) -> Result<RabbitOptions, String> {
    let mut out = RabbitOptions::default();
    for o in opts {
        match o.key.as_str() {
            QUEUE_TYPE => out.queue_type = o.value.parse().map_err(|e| format!("db_opts: {e}"))?,
            PARTITION_HANDLING => {
                out.partition_handling = o
                    .value
                    .parse()
                    .map_err(|e: String| format!("db_opts: cluster_{e}"))?
            }
            NET_TICKTIME => {
                out.net_ticktime = match o.value.parse::<u32>() {
                    Ok(secs) if secs > 0 => Some(secs),
                    _ => {
                        return Err(format!(
                            "db_opts: net_ticktime {:?}: expected a whole number of seconds \
                             above 0 (RabbitMQ's default: 60)",
                            o.value
                        ))
                    }
                }
            }
            k => {
                return Err(format!(
                    "db_opts: rabbitmq takes {QUEUE_TYPE}=classic|mirrored|quorum, \
                     {PARTITION_HANDLING}=ignore|pause_minority|autoheal and \
                     {NET_TICKTIME}=SECONDS, not {k:?}"
                ))
            }
        }
    }
    Ok(out)
}

impl System for RabbitMqSystem {
    fn name(&self) -> &'static str {
        "rabbitmq"
    }

    fn models(&self) -> Option<&'static [&'static str]> {
        Some(&["queue"])
    }

    fn packages(&self) -> &'static [Package] {
        PACKAGES
    }

    fn configure(&self, choice: &super::Choice<'_>) -> Result<Box<dyn Configured>, String> {
        super::only_read_mode(self.name(), choice.read_mode, READ_MODE)?;
        let opts = parse_options(&choice.db_opts()?)?;
        Ok(Box::new(RabbitConfig { opts }))
    }
}

#[derive(Debug)]
struct RabbitConfig {
    opts: RabbitOptions,
}

impl Configured for RabbitConfig {
    fn data_folder(&self) -> Result<(), String> {
        Ok(())
    }

    /// The Erlang VM reads the OS clock through libc (`clock_gettime`), so
    /// libfaketime moves the broker's (`os:system_time` follows it).
    fn faketime_clock(&self) -> Result<(), String> {
        Ok(())
    }

    fn read_mode(&self) -> &'static str {
        READ_MODE
    }

    /// The queue checker judges what came out, not reads.
    fn reads(&self) -> Reads {
        Reads::MaybeStale
    }

    fn deploy(&self, nodes: &[Node]) -> anyhow::Result<Box<dyn Deployed>> {
        Ok(Box::new(RabbitDeployed {
            rabbit: Arc::new(RabbitMq::new(self.opts, nodes)),
        }))
    }
}

struct RabbitDeployed {
    rabbit: Arc<RabbitMq>,
}

impl Deployed for RabbitDeployed {
    fn db(&self) -> Arc<dyn Db> {
        self.rabbit.clone()
    }

    fn client_factory(&self, s: &ClientSettings<'_>) -> anyhow::Result<ClientFactory> {
        let opts = RabbitClientOptions {
            timeout: s.op_timeout,
            queue_type: self.rabbit.options().queue_type,
        };
        Ok(RabbitClientFactory::for_nodes(s.nodes, opts)?.into_factory())
    }

    /// `RabbitMQ 3.10.8 on Erlang 25.2.3; cluster_partition_handling=ignore;
    /// queue_type=quorum`: the version and the partition handling mode as
    /// the running broker reports them.
    fn version(&self, node: &Node) -> Option<String> {
        let status = self.rabbit.cluster_status(node).ok()?;
        let handling = self
            .rabbit
            .running_partition_handling(node)
            .unwrap_or_else(|| "unknown".into());
        Some(format!(
            "{}; {PARTITION_HANDLING}={handling}; {QUEUE_TYPE}={}",
            status.version.unwrap_or_else(|| "RabbitMQ ?".into()),
            self.rabbit.options().queue_type.name()
        ))
    }

    /// Joining takes a few seconds a node, after a boot of about ten.
    fn healthy_within(&self) -> std::time::Duration {
        std::time::Duration::from_secs(120)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::{check_workload, find, parse_db_opt, Choice};
    use crate::workload::Workload;
    use std::path::Path;

    #[test]
    fn rabbitmq_is_found_runs_the_queue_workload_and_parses_its_options() {
        let rabbit = find("rabbitmq").expect("rabbitmq is registered");
        assert_eq!(rabbit.name(), "rabbitmq");
        assert_eq!(
            rabbit
                .packages()
                .iter()
                .map(|p| p.package)
                .collect::<Vec<_>>(),
            ["rabbitmq-server"]
        );
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads");
        let queue = Workload::find("queue", &dir).expect("queue workload");
        assert_eq!(check_workload(rabbit, &queue), Ok(()));
        let configured = rabbit.configure(&Choice::default()).expect("defaults");
        assert_eq!(
            (configured.read_mode(), configured.reads()),
            ("queue", Reads::MaybeStale)
        );
        let opts = |o: &[&str]| {
            parse_options(
                &o.iter()
                    .map(|s| parse_db_opt(s).expect("KEY=VALUE"))
                    .collect::<Vec<_>>(),
            )
        };
        assert_eq!(opts(&[]), Ok(RabbitOptions::default()));
        assert_eq!(
            opts(&[
                "queue_type=quorum",
                "cluster_partition_handling=pause_minority"
            ]),
            Ok(RabbitOptions {
                queue_type: QueueType::Quorum,
                partition_handling: PartitionHandling::PauseMinority,
                net_ticktime: None,
            })
        );
        assert_eq!(
            opts(&["net_ticktime=10"]).map(|o| o.net_ticktime),
            Ok(Some(10))
        );
        assert_eq!(
            opts(&["net_ticktime=0"]),
            Err("db_opts: net_ticktime \"0\": expected a whole number of seconds above 0 (RabbitMQ's default: 60)".into())
        );
        assert_eq!(
            opts(&["queue_type=lazy"]),
            Err("db_opts: queue_type \"lazy\": expected classic, mirrored or quorum".into())
        );
        assert_eq!(
            opts(&["cluster_partition_handling=none"]),
            Err("db_opts: cluster_partition_handling \"none\": expected ignore, pause_minority or autoheal".into())
        );
        let e = rabbit
            .configure(&Choice {
                db_opts: &["vm_memory_high_watermark=0.4".into()],
                ..Choice::default()
            })
            .unwrap_err();
        assert_eq!(
            e,
            "db_opts: rabbitmq takes queue_type=classic|mirrored|quorum, \
             cluster_partition_handling=ignore|pause_minority|autoheal and net_ticktime=SECONDS, \
             not \"vm_memory_high_watermark\""
        );
    }
}
