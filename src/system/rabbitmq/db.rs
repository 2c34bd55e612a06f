//! RabbitMQ: Debian's `rabbitmq-server`, one broker per node, all of them
//! clustered into one, each run as two plain daemons with pid files under
//! the node's work directory: `epmd` (the Erlang port mapper, on the
//! node's address and loopback) and the broker (`rabbitmq-server`, which
//! execs `erl` and so becomes `beam.smp` under the same pid).
//!
//! Each node gets `<work_dir>/rabbitmq/`: `rabbitmq.conf` (AMQP on port
//! 5672 and Erlang distribution on port 25672 of the node's own address,
//! the partition handling mode), an empty `enabled_plugins`, `inetrc`
//! (every member's name → address, so Erlang resolves the node names
//! without touching the machine's `/etc/hosts`), `home/.erlang.cookie`
//! (the same on every node), the Mnesia and log folders, and the pid and
//! output files. Every `rabbitmqctl` runs with the same environment
//! ([`RabbitMq::env`]), from `/usr/lib/rabbitmq/bin` (Debian's wrapper in
//! `/usr/sbin` switches to the `rabbitmq` user and its own home).
//!
//! Clustering: the first node starts alone; every other node, on its
//! first start after a wipe, waits for its own broker, then `stop_app`,
//! `join_cluster rabbit@<first>`, `start_app`, and marks the join
//! (`joined`), so a restart after a kill comes back as a member without
//! joining again. With `queue_type=mirrored` the first node sets the
//! policy that mirrors the queue to every node (`ha-mode: all`, automatic
//! synchronisation), as in Jepsen's 2014 test.
//!
//! Health: every node's broker lists every member as running
//! (`cluster_status`) and answers the AMQP protocol header on its port.

use std::fmt;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::str::FromStr;
use std::time::{Duration, Instant};

use crate::cluster::Node;
use crate::control::shell_quote;
use crate::db::daemon::{Daemon, Program};
use crate::db::{AptPackages, Db, DbError, NodeDaemon};

/// The queue every client uses.
pub const QUEUE: &str = "faultline";

/// The broker's AMQP port.
pub const AMQP_PORT: u16 = 5672;
/// The Erlang distribution port (inter-node and CLI traffic).
pub const DIST_PORT: u16 = 25672;
/// The Erlang cookie every node and CLI shares.
const COOKIE: &str = "FAULTLINERABBITMQCOOKIE";
/// Where Debian keeps the scripts that run as the calling user.
const BIN: &str = "/usr/lib/rabbitmq/bin";

/// What RabbitMQ does when it finds its cluster partitioned
/// (`cluster_partition_handling`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PartitionHandling {
    /// Nothing: each side goes on alone (RabbitMQ's default).
    #[default]
    Ignore,
    /// A node that sees a minority of the cluster pauses itself.
    PauseMinority,
    /// After the partition the side with fewer clients restarts.
    Autoheal,
}

impl PartitionHandling {
    /// Its name in `rabbitmq.conf`.
    pub fn name(self) -> &'static str {
        match self {
            PartitionHandling::Ignore => "ignore",
            PartitionHandling::PauseMinority => "pause_minority",
            PartitionHandling::Autoheal => "autoheal",
        }
    }
}

impl FromStr for PartitionHandling {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ignore" => Ok(PartitionHandling::Ignore),
            "pause_minority" => Ok(PartitionHandling::PauseMinority),
            "autoheal" => Ok(PartitionHandling::Autoheal),
            _ => Err(format!(
                "partition_handling {s:?}: expected ignore, pause_minority or autoheal"
            )),
        }
    }
}

impl fmt::Display for PartitionHandling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The kind of queue the workload runs on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum QueueType {
    /// A classic queue: its messages live on one node (the one it was
    /// declared on); RabbitMQ's default.
    #[default]
    Classic,
    /// A classic queue mirrored to every node by a policy (`ha-mode:
    /// all`): what Jepsen tested in 2014.
    Mirrored,
    /// A quorum queue: replicated by Raft to every node.
    Quorum,
}

impl QueueType {
    /// Its `--db-opt queue_type=` name.
    pub fn name(self) -> &'static str {
        match self {
            QueueType::Classic => "classic",
            QueueType::Mirrored => "mirrored",
            QueueType::Quorum => "quorum",
        }
    }

    /// The queue's `x-queue-type` argument (a mirrored queue is a classic
    /// one with a policy).
    pub fn x_queue_type(self) -> &'static str {
        match self {
            QueueType::Classic | QueueType::Mirrored => "classic",
            QueueType::Quorum => "quorum",
        }
    }
}

impl FromStr for QueueType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "classic" => Ok(QueueType::Classic),
            "mirrored" => Ok(QueueType::Mirrored),
            "quorum" => Ok(QueueType::Quorum),
            _ => Err(format!(
                "queue_type {s:?}: expected classic, mirrored or quorum"
            )),
        }
    }
}

/// How RabbitMQ is run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RabbitOptions {
    /// `cluster_partition_handling`.
    pub partition_handling: PartitionHandling,
    /// The queue's kind.
    pub queue_type: QueueType,
    /// Erlang's `net_ticktime` in seconds (a peer unreachable for about
    /// that long is down); `None`: RabbitMQ's default, 60.
    pub net_ticktime: Option<u32>,
}

/// RabbitMQ on a fixed cluster (the nodes it was made for).
#[derive(Debug, Clone)]
pub struct RabbitMq {
    opts: RabbitOptions,
    /// (name, host) of every broker; the first is the one the others join.
    members: Vec<(String, String)>,
}

impl RabbitMq {
    /// RabbitMQ with one broker per node of `nodes`.
    pub fn new(opts: RabbitOptions, nodes: &[Node]) -> Self {
        RabbitMq {
            opts,
            members: nodes
                .iter()
                .map(|n| (n.name().to_string(), n.host().to_string()))
                .collect(),
        }
    }

    /// The options in use.
    pub fn options(&self) -> RabbitOptions {
        self.opts
    }

    /// The Erlang node name of the broker on the node called `name`.
    pub fn node_name(name: &str) -> String {
        format!("rabbit@{name}")
    }

    /// The node's RabbitMQ folder.
    pub fn dir(&self, node: &Node) -> String {
        format!("{}/rabbitmq", node.work_dir())
    }

    fn broker(&self, node: &Node) -> Daemon {
        let dir = self.dir(node);
        Daemon::new(
            "beam.smp",
            &format!("{dir}/rabbitmq.pid"),
            &format!("{dir}/rabbitmq-server.out"),
        )
    }

    fn epmd(&self, node: &Node) -> Daemon {
        let dir = self.dir(node);
        Daemon::new(
            "epmd",
            &format!("{dir}/epmd.pid"),
            &format!("{dir}/epmd.log"),
        )
    }

    /// The `rabbitmq.conf` of `node`.
    pub fn config(&self, node: &Node) -> String {
        let host = node.host();
        let listener = if host.contains(':') {
            format!("[{host}]:{AMQP_PORT}")
        } else {
            format!("{host}:{AMQP_PORT}")
        };
        format!(
            "# Written by faultline for {name}.\n\
             listeners.tcp.1 = {listener}\n\
             loopback_users = none\n\
             cluster_partition_handling = {ph}\n\
             distribution.listener.interface = {host}\n\
             distribution.listener.port_range.min = {DIST_PORT}\n\
             distribution.listener.port_range.max = {DIST_PORT}\n\
             log.file.level = info\n\
             log.console = false\n{tick}",
            name = node.name(),
            ph = self.opts.partition_handling,
            tick = self
                .opts
                .net_ticktime
                .map(|t| format!("net_ticktime = {t}\n"))
                .unwrap_or_default(),
        )
    }

    /// The Erlang `inetrc`: every member's name and address, then the
    /// usual resolver for anything else.
    pub fn inetrc(&self) -> Result<String, String> {
        let mut out = String::new();
        for (name, host) in &self.members {
            let ip: IpAddr = host.parse().map_err(|_| {
                format!("node {name}'s address {host:?} is not an IP address, which inetrc needs")
            })?;
            let tuple = match ip {
                IpAddr::V4(v4) => v4
                    .octets()
                    .iter()
                    .map(u8::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
                IpAddr::V6(v6) => v6
                    .segments()
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
            };
            out.push_str(&format!("{{host, {{{tuple}}}, [\"{name}\"]}}.\n"));
        }
        out.push_str("{lookup, [file, native]}.\n");
        Ok(out)
    }

    /// The environment every broker and CLI of `node` runs with, as
    /// `NAME=VALUE` words (values quoted for the shell).
    pub fn env_words(&self, node: &Node) -> Vec<String> {
        let dir = self.dir(node);
        let file = |f: &str| format!("{dir}/{f}");
        [
            ("HOME", file("home")),
            ("RABBITMQ_NODENAME", Self::node_name(node.name())),
            ("RABBITMQ_CONFIG_FILE", file("rabbitmq.conf")),
            ("RABBITMQ_MNESIA_BASE", file("mnesia")),
            ("RABBITMQ_LOG_BASE", file("log")),
            ("RABBITMQ_ENABLED_PLUGINS_FILE", file("enabled_plugins")),
            ("RABBITMQ_PID_FILE", file("rabbit.pid")),
            ("ERL_INETRC", file("inetrc")),
            // Run `erl` in place of the script (one pid: the pid file's),
            // but without a shell reading stdin.
            ("RABBITMQ_ALLOW_INPUT", "1".to_string()),
            (
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
                "-noinput".to_string(),
            ),
            // Never an epmd of Erlang's own (ours has a pid file), not
            // even from a CLI while the node's epmd is down.
            ("ERL_FLAGS", "-start_epmd false".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| format!("{k}={}", shell_quote(&v)))
        .collect()
    }

    /// Shell text exporting [`RabbitMq::env_words`].
    pub fn env(&self, node: &Node) -> String {
        format!("export {}; ", self.env_words(node).join(" "))
    }

    /// `rabbitmqctl ARGS` on `node` (against its own broker unless ARGS
    /// name another with `-n`), with at most `timeout` to answer: its
    /// output, or an error holding the end of it.
    pub fn ctl(&self, node: &Node, args: &str, timeout: Duration) -> Result<String, DbError> {
        let secs = timeout.as_secs().max(1);
        let script = format!(
            "{env}timeout -k 2 {secs} {BIN}/rabbitmqctl {args} 2>&1",
            env = self.env(node)
        );
        let out = node.exec_timeout(&script, timeout + Duration::from_secs(5))?;
        if out.success() {
            Ok(out.stdout)
        } else {
            Err(DbError::on(
                "rabbitmq",
                node,
                &format!("rabbitmqctl {args}"),
                format!(
                    "exit {}: {}",
                    out.status,
                    crate::control::tail(format!("{}{}", out.stdout, out.stderr).trim(), 600)
                ),
            ))
        }
    }

    /// Waits until the broker on `node` has booted, asking again while it
    /// is not yet reachable (its name not yet registered), until
    /// `deadline`.
    fn wait_booted(&self, node: &Node, deadline: Instant) -> Result<(), DbError> {
        loop {
            match self.ctl(
                node,
                "-q await_startup --timeout 10",
                Duration::from_secs(15),
            ) {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(500)),
            }
        }
    }

    /// Whether `node` is the one the others join.
    fn is_first(&self, node: &Node) -> bool {
        self.members.first().map(|(n, _)| n.as_str()) == Some(node.name())
    }

    /// The node names the broker on `node` sees running, from
    /// `cluster_status`, and the partitions it knows of.
    pub fn cluster_status(&self, node: &Node) -> Result<ClusterStatus, String> {
        let out = self
            .ctl(
                node,
                "-q cluster_status --formatter json",
                Duration::from_secs(15),
            )
            .map_err(|e| e.to_string())?;
        ClusterStatus::parse(&out)
    }

    /// The broker on `node` is a running member of a cluster of every
    /// node and answers AMQP.
    pub fn probe(&self, node: &Node) -> Result<(), String> {
        let status = self.cluster_status(node)?;
        let missing: Vec<String> = self
            .members
            .iter()
            .map(|(n, _)| Self::node_name(n))
            .filter(|n| !status.running.contains(n))
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "not running in its cluster: {} (running: {})",
                missing.join(", "),
                status.running.join(", ")
            ));
        }
        amqp_answers(node.host(), Duration::from_secs(3))
    }

    /// Joins the broker on `node` to the first node's, once it has booted;
    /// tries again until `within` (the first node boots at the same time).
    fn join(&self, node: &Node, within: Duration) -> Result<(), DbError> {
        let dir = self.dir(node);
        let Some((first, _)) = self.members.first() else {
            return Ok(());
        };
        let deadline = Instant::now() + within;
        self.wait_booted(node, deadline)?;
        let script = format!(
            "{BIN}/rabbitmqctl -q stop_app && \
             {BIN}/rabbitmqctl -q join_cluster {target}; r=$?; \
             {BIN}/rabbitmqctl -q start_app && [ $r -eq 0 ] && touch {joined}",
            target = shell_quote(&Self::node_name(first)),
            joined = shell_quote(&format!("{dir}/joined")),
        );
        loop {
            let out = node.exec_timeout(
                &format!("{env}{{ {script}; }} 2>&1", env = self.env(node)),
                Duration::from_secs(60),
            )?;
            if out.success() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(DbError::on(
                    "rabbitmq",
                    node,
                    &format!("join_cluster {}", Self::node_name(first)),
                    crate::control::tail(format!("{}{}", out.stdout, out.stderr).trim(), 800),
                ));
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// The first node, on its first start: mirrors the queue to every
    /// node when the queue is `mirrored` (a policy lives in the cluster's
    /// metadata, so brokers that join later get it).
    fn set_policy(&self, node: &Node) -> Result<(), DbError> {
        if self.opts.queue_type != QueueType::Mirrored {
            return Ok(());
        }
        self.wait_booted(node, Instant::now() + Duration::from_secs(120))?;
        self.ctl(
            node,
            &format!(
                "-q set_policy --apply-to queues faultline-ha {pattern} {def}",
                pattern = shell_quote(&format!("^{QUEUE}$")),
                def = shell_quote(r#"{"ha-mode":"all","ha-sync-mode":"automatic"}"#),
            ),
            Duration::from_secs(30),
        )?;
        Ok(())
    }

    /// `cluster_partition_handling` as the broker on `node` runs it.
    pub fn running_partition_handling(&self, node: &Node) -> Option<String> {
        let out = self
            .ctl(
                node,
                "-q eval 'application:get_env(rabbit, cluster_partition_handling).'",
                Duration::from_secs(15),
            )
            .ok()?;
        // `{ok,ignore}`
        out.trim()
            .strip_prefix("{ok,")
            .and_then(|s| s.strip_suffix('}'))
            .map(str::to_string)
    }
}

/// What `rabbitmqctl cluster_status --formatter json` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterStatus {
    /// The running members' Erlang node names.
    pub running: Vec<String>,
    /// The nodes each node sees on the other side of a partition, as
    /// `node: [others]`.
    pub partitions: Vec<String>,
    /// `RabbitMQ 3.10.8 on Erlang 25.2.3`, from the first version listed.
    pub version: Option<String>,
}

impl ClusterStatus {
    /// Parses the JSON (the CLI may print warnings before it).
    pub fn parse(out: &str) -> Result<ClusterStatus, String> {
        let start = out
            .find('{')
            .ok_or_else(|| format!("cluster_status: {}", crate::control::tail(out.trim(), 400)))?;
        let v: serde_json::Value = serde_json::from_str(&out[start..])
            .map_err(|e| format!("cluster_status is not JSON ({e}): {out:.300}"))?;
        let strings = |v: &serde_json::Value| -> Vec<String> {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let partitions = v["partitions"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, others)| format!("{k}: [{}]", strings(others).join(", ")))
                    .collect()
            })
            .unwrap_or_default();
        let version = v["versions"].as_object().and_then(|m| {
            m.values().next().map(|v| {
                format!(
                    "RabbitMQ {} on Erlang {}",
                    v["rabbitmq_version"].as_str().unwrap_or("?"),
                    v["erlang_version"].as_str().unwrap_or("?")
                )
            })
        });
        Ok(ClusterStatus {
            running: strings(&v["running_nodes"]),
            partitions,
            version,
        })
    }
}

/// Whether the broker at `host` answers AMQP 0-9-1's protocol header with
/// a frame (its `connection.start`), from the controller.
pub fn amqp_answers(host: &str, timeout: Duration) -> Result<(), String> {
    let ip: IpAddr = host
        .parse()
        .map_err(|_| format!("{host} is not an IP address"))?;
    let addr = SocketAddr::new(ip, AMQP_PORT);
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("{addr}: {e}"))?;
    s.set_write_timeout(Some(timeout))
        .and_then(|()| s.set_read_timeout(Some(timeout)))
        .map_err(|e| e.to_string())?;
    s.write_all(b"AMQP\x00\x00\x09\x01")
        .map_err(|e| format!("{addr}: {e}"))?;
    let mut first = [0u8; 1];
    s.read_exact(&mut first)
        .map_err(|e| format!("{addr}: no answer to the AMQP header: {e}"))?;
    // 1: a method frame.
    if first[0] == 1 {
        Ok(())
    } else {
        Err(format!(
            "{addr}: answered the AMQP header with frame type {}",
            first[0]
        ))
    }
}

impl Db for RabbitMq {
    fn name(&self) -> &str {
        "rabbitmq"
    }

    fn install(&self, node: &Node) -> Result<(), DbError> {
        crate::db::apt_install(
            self.name(),
            node,
            &AptPackages {
                what: "RabbitMQ",
                packages: &["rabbitmq-server"],
                present: "test -x /usr/lib/rabbitmq/bin/rabbitmq-server && command -v epmd >/dev/null 2>&1",
                services: &["rabbitmq-server", "epmd.socket", "epmd"],
                otherwise: "",
            },
        )
    }

    fn daemon_on(&self, node: &Node) -> Option<NodeDaemon> {
        Some(NodeDaemon {
            daemon: self.broker(node),
            dir: self.dir(node),
        })
    }

    /// The broker, and the port mapper started for it: both known by a
    /// text of their command lines that only ours have (the node's folder,
    /// the node's address), so another Erlang program on a real host is
    /// left alone.
    fn programs(&self, node: &Node) -> Vec<Program> {
        vec![
            Program::with_cmdline("beam.smp", &format!("{}/", self.dir(node))),
            Program::with_cmdline("epmd", &format!("-address {}", node.host())),
        ]
    }

    fn configure(&self, node: &Node) -> Result<(), DbError> {
        let dir = self.dir(node);
        let inetrc = self
            .inetrc()
            .map_err(|e| DbError::on(self.name(), node, "configure", e))?;
        let q = |s: &str| shell_quote(s);
        node.run(&format!(
            "mkdir -p {dir}/home {dir}/mnesia {dir}/log && \
             printf '%s' {conf} > {dir}/rabbitmq.conf && \
             printf '%s' {inetrc} > {dir}/inetrc && \
             printf '[].\\n' > {dir}/enabled_plugins && \
             rm -f {dir}/home/.erlang.cookie && \
             printf '%s' {cookie} > {dir}/home/.erlang.cookie && \
             chmod 400 {dir}/home/.erlang.cookie",
            dir = q(&dir),
            conf = q(&self.config(node)),
            inetrc = q(&inetrc),
            cookie = q(COOKIE),
        ))?;
        Ok(())
    }

    fn start(&self, node: &Node) -> Result<(), DbError> {
        let dir = self.dir(node);
        // A start after a wipe needs the config again.
        if !node
            .exec(&format!("test -f {}/rabbitmq.conf", shell_quote(&dir)))?
            .success()
        {
            self.configure(node)?;
        }
        self.epmd(node).start(
            node,
            &dir,
            &format!("epmd -address {}", shell_quote(node.host())),
        )?;
        // `env` execs the script, which execs `erl`: one pid throughout.
        self.broker(node).start(
            node,
            &dir,
            &format!(
                "env {} {BIN}/rabbitmq-server",
                self.env_words(node).join(" ")
            ),
        )?;
        let joined = node
            .exec(&format!("test -f {}/joined", shell_quote(&dir)))?
            .success();
        if joined {
            return Ok(());
        }
        if self.is_first(node) {
            self.set_policy(node)?;
            node.run(&format!("touch {}/joined", shell_quote(&dir)))?;
            Ok(())
        } else {
            self.join(node, Duration::from_secs(120))
        }
    }

    fn wait_healthy(&self, nodes: &[Node], timeout: Duration) -> Result<(), DbError> {
        crate::db::poll_healthy(
            "rabbitmq",
            nodes,
            timeout,
            Duration::from_millis(500),
            |pending| crate::control::parallel(pending, |n| self.probe(n)),
            |n| self.broker(n).unhealthy_context(n, "rabbitmq-server"),
        )
    }

    fn log_files(&self, node: &Node) -> Vec<String> {
        let dir = self.dir(node);
        vec![
            format!("{dir}/log/{}.log", Self::node_name(node.name())),
            self.broker(node).log_file,
            format!("{dir}/rabbitmq.conf"),
        ]
    }

    /// Stops the port mapper too (after the broker: [`Db::wipe`] follows
    /// a kill or a stop), by its pid file.
    fn wipe(&self, node: &Node) -> Result<(), DbError> {
        if self.broker(node).is_running(node)? {
            return Err(DbError::on(
                self.name(),
                node,
                "wipe",
                "rabbitmq still runs; kill or stop it first",
            ));
        }
        self.epmd(node).stop(node, "KILL", Duration::from_secs(5))?;
        node.run(&format!("rm -rf {}", shell_quote(&self.dir(node))))?;
        Ok(())
    }

    /// The node the queue's leader (quorum) or master (classic) is on, as
    /// the first broker that answers says.
    fn primaries(&self, nodes: &[Node]) -> Result<Vec<String>, DbError> {
        for node in nodes {
            let Ok(out) = self.ctl(
                node,
                "-q list_queues name leader pid --no-table-headers",
                Duration::from_secs(10),
            ) else {
                continue;
            };
            if let Some(leader) = queue_leader(&out) {
                return Ok(self
                    .members
                    .iter()
                    .filter(|(n, _)| leader == Self::node_name(n))
                    .map(|(n, _)| n.clone())
                    .collect());
            }
        }
        Ok(Vec::new())
    }

    fn data_folder(&self, node: &Node) -> Option<String> {
        Some(format!("{}/mnesia", self.dir(node)))
    }
}

/// The Erlang node of the queue's leader (a quorum queue's `leader`, a
/// classic queue's process `<rabbit@n1.1675.547.0>`), from `list_queues
/// name leader pid`'s tab-separated lines.
pub fn queue_leader(out: &str) -> Option<String> {
    let line = out.lines().find(|l| l.split('\t').next() == Some(QUEUE))?;
    let mut fields = line.split('\t').skip(1);
    let leader = fields.next().unwrap_or("").trim();
    if leader.contains('@') {
        return Some(leader.to_string());
    }
    let pid = fields.next()?.trim().trim_start_matches('<');
    let at = pid.find('@')?;
    let end = pid[at..].find('.').map(|i| at + i)?;
    Some(pid[..end].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::Capabilities;
    use crate::control::{ControlError, Output, Remote};
    use std::sync::Arc;

    /// A node nothing is ever run on: rendering needs only its name,
    /// address and work folder.
    #[derive(Debug)]
    struct Silent;
    impl Remote for Silent {
        fn node(&self) -> &str {
            "n2"
        }
        fn default_timeout(&self) -> Duration {
            Duration::from_secs(1)
        }
        fn exec_timeout(&self, c: &str, _t: Duration) -> Result<Output, ControlError> {
            panic!("nothing runs here: {c}")
        }
        fn upload(&self, _l: &std::path::Path, _r: &str, _m: i32) -> Result<(), ControlError> {
            panic!("nothing is uploaded here")
        }
        fn download(&self, _r: &str, _l: &std::path::Path) -> Result<(), ControlError> {
            panic!("nothing is downloaded here")
        }
    }

    fn node(name: &str, host: &str) -> Node {
        let caps = Capabilities {
            can_skew_clock: false,
            has_netem: false,
            has_iptables: true,
            shares_host: true,
        };
        Node::new(name, host, Arc::new(Silent), caps, "/w")
    }

    #[test]
    fn the_config_binds_the_nodes_address_and_names_the_partition_handling() {
        let nodes = [node("n1", "10.77.0.11"), node("n2", "10.77.0.12")];
        let rabbit = RabbitMq::new(
            RabbitOptions {
                partition_handling: PartitionHandling::Autoheal,
                queue_type: QueueType::Quorum,
                net_ticktime: Some(10),
            },
            &nodes,
        );
        let conf = rabbit.config(&nodes[1]);
        for line in [
            "listeners.tcp.1 = 10.77.0.12:5672",
            "cluster_partition_handling = autoheal",
            "distribution.listener.interface = 10.77.0.12",
            "distribution.listener.port_range.min = 25672",
            "loopback_users = none",
            "net_ticktime = 10",
        ] {
            assert!(conf.lines().any(|l| l == line), "{line:?} not in {conf}");
        }
        assert_eq!(
            rabbit.inetrc().expect("IP addresses"),
            "{host, {10,77,0,11}, [\"n1\"]}.\n{host, {10,77,0,12}, [\"n2\"]}.\n{lookup, [file, native]}.\n"
        );
        let env = rabbit.env_words(&nodes[1]).join(" ");
        assert!(env.contains("RABBITMQ_NODENAME=rabbit@n2"), "{env}");
        assert!(env.contains("HOME=/w/rabbitmq/home"), "{env}");
        assert!(env.contains("ERL_FLAGS='-start_epmd false'"), "{env}");
        let named = RabbitMq::new(RabbitOptions::default(), &[node("db1", "db1.example")]);
        assert_eq!(
            named.inetrc().unwrap_err(),
            "node db1's address \"db1.example\" is not an IP address, which inetrc needs"
        );
    }

    #[test]
    fn options_parse_and_refuse_what_they_do_not_know() {
        assert_eq!(
            "pause_minority".parse::<PartitionHandling>(),
            Ok(PartitionHandling::PauseMinority)
        );
        assert_eq!(
            "autoheal".parse::<PartitionHandling>(),
            Ok(PartitionHandling::Autoheal)
        );
        assert_eq!(
            "pause_if_all_down".parse::<PartitionHandling>(),
            Err("partition_handling \"pause_if_all_down\": expected ignore, pause_minority or autoheal".into())
        );
        assert_eq!("quorum".parse::<QueueType>(), Ok(QueueType::Quorum));
        assert_eq!(QueueType::Mirrored.x_queue_type(), "classic");
        assert_eq!(
            "stream".parse::<QueueType>(),
            Err("queue_type \"stream\": expected classic, mirrored or quorum".into())
        );
    }

    #[test]
    fn cluster_status_gives_running_nodes_partitions_and_the_version() {
        let out = r#"warning: something first
{"alarms":[],"running_nodes":["rabbit@n1","rabbit@n2"],"partitions":{"rabbit@n1":["rabbit@n3"]},"versions":{"rabbit@n1":{"erlang_version":"25.2.3","rabbitmq_name":"RabbitMQ","rabbitmq_version":"3.10.8"}}}"#;
        let s = ClusterStatus::parse(out).expect("parses");
        assert_eq!(s.running, ["rabbit@n1", "rabbit@n2"]);
        assert_eq!(s.partitions, ["rabbit@n1: [rabbit@n3]"]);
        assert_eq!(
            s.version.as_deref(),
            Some("RabbitMQ 3.10.8 on Erlang 25.2.3")
        );
        let e = ClusterStatus::parse("Error: unable to perform an operation on node").unwrap_err();
        assert!(e.starts_with("cluster_status: Error: unable"), "{e}");
    }

    #[test]
    fn the_queue_leader_is_read_for_quorum_and_classic_queues() {
        let quorum = "other\t\t<rabbit@n1.1.2.3>\nfaultline\trabbit@n2\t<rabbit@n2.1.681.0>\n";
        assert_eq!(queue_leader(quorum).as_deref(), Some("rabbit@n2"));
        let classic = "faultline\t\t<rabbit@n3.1675.547.0>\n";
        assert_eq!(queue_leader(classic).as_deref(), Some("rabbit@n3"));
        assert_eq!(queue_leader(""), None);
    }
}
