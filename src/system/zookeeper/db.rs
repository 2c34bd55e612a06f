//! ZooKeeper: installed from Debian's `zookeeper` package (a JRE comes with
//! it), one server per node of the cluster, run as a plain JVM daemon with a
//! pid file and a log file under the node's work directory, probed from the
//! controller with the `srvr` four-letter word.
//!
//! Each node gets its own `zoo.cfg`, `myid` and `log4j.properties` in
//! `<work_dir>/zookeeper/`; the ensemble is every node of the cluster
//! (`server.N=ip:2888:3888`, N the node's 1-based position), and clients
//! talk to port 2181 on the node's own address.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::cluster::url_host;
use crate::cluster::Node;
use crate::control::shell_quote;
use crate::db::daemon::Daemon;
use crate::db::{AptPackages, Db, DbError, NodeDaemon, Program};

/// The Debian package's jars: the server, and the log4j binding its
/// manifest leaves out (without it the server logs nothing at all).
const CLASSPATH: &[&str] = &[
    "/usr/share/java/zookeeper.jar",
    "/usr/share/java/slf4j-log4j12.jar",
    "/usr/share/java/log4j-1.2.jar",
];

/// The server's main class (what `zkServer.sh start` runs).
const MAIN_CLASS: &str = "org.apache.zookeeper.server.quorum.QuorumPeerMain";

/// Everything goes to the console, which the daemon helper appends to the
/// log file.
const LOG4J: &str = "log4j.rootLogger=INFO, CONSOLE\n\
log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender\n\
log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout\n\
log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} - %-5p [%t:%C{1}@%L] - %m%n\n";

/// How ZooKeeper is run.
#[derive(Debug, Clone)]
pub struct ZookeeperOptions {
    /// The client port (on the node's own address).
    pub client_port: u16,
    /// The quorum (follower to leader) port.
    pub quorum_port: u16,
    /// The leader election port.
    pub election_port: u16,
    /// ZooKeeper's basic time unit in milliseconds. A follower that hears
    /// nothing from its leader for `sync_limit` ticks drops out (and stops
    /// serving reads): with 1000 ms and 5 ticks a cut-off follower keeps
    /// answering reads for about 5 s.
    pub tick_ms: u32,
    /// Ticks a follower may take to connect and sync to a leader.
    pub init_limit: u32,
    /// Ticks a follower may lag behind the leader.
    pub sync_limit: u32,
    /// The JVM's maximum heap, e.g. `256m` (five JVMs share one machine on
    /// the local cluster).
    pub heap: String,
    /// Extra `zoo.cfg` lines.
    pub extra_config: Vec<String>,
}

impl Default for ZookeeperOptions {
    fn default() -> Self {
        ZookeeperOptions {
            client_port: 2181,
            quorum_port: 2888,
            election_port: 3888,
            tick_ms: 1000,
            init_limit: 10,
            sync_limit: 5,
            heap: "256m".into(),
            extra_config: Vec::new(),
        }
    }
}

/// ZooKeeper on a fixed ensemble (the cluster's nodes).
#[derive(Debug, Clone)]
pub struct Zookeeper {
    opts: ZookeeperOptions,
    /// (name, host) of every server, in `myid` order (1-based).
    members: Vec<(String, String)>,
}

impl Zookeeper {
    /// ZooKeeper with one server per node of `nodes`.
    pub fn new(opts: ZookeeperOptions, nodes: &[Node]) -> Self {
        Zookeeper {
            opts,
            members: nodes
                .iter()
                .map(|n| (n.name().to_string(), n.host().to_string()))
                .collect(),
        }
    }

    /// The options in use.
    pub fn options(&self) -> &ZookeeperOptions {
        &self.opts
    }

    /// The client port.
    pub fn client_port(&self) -> u16 {
        self.opts.client_port
    }

    /// The node's ZooKeeper directory (config, data, log, pid file).
    pub fn dir(&self, node: &Node) -> String {
        format!("{}/zookeeper", node.work_dir())
    }

    fn data_dir(&self, node: &Node) -> String {
        format!("{}/data", self.dir(node))
    }

    fn daemon(&self, node: &Node) -> Daemon {
        let dir = self.dir(node);
        // The JVM's process name is `java`; the pid file, not the name,
        // tells our server from any other JVM.
        Daemon::new(
            "java",
            &format!("{dir}/zookeeper.pid"),
            &format!("{dir}/zookeeper.log"),
        )
    }

    fn err(&self, node: &Node, action: &str, reason: impl ToString) -> DbError {
        DbError::Node {
            db: "zookeeper".into(),
            node: node.name().into(),
            action: action.into(),
            reason: reason.to_string(),
        }
    }

    /// The node's server id (1-based position in the ensemble).
    fn my_id(&self, node: &Node) -> Result<usize, DbError> {
        self.members
            .iter()
            .position(|(n, _)| n == node.name())
            .map(|i| i + 1)
            .ok_or_else(|| {
                self.err(
                    node,
                    "configure",
                    "the node is not a member of the ensemble this db was made for",
                )
            })
    }

    /// The `zoo.cfg` of `node`. What faultline depends on here is in
    /// [`RESERVED`]; the rest (`tickTime`, ...) a `--db-opt` line, written
    /// after, may change.
    pub fn config(&self, node: &Node) -> Result<String, DbError> {
        let o = &self.opts;
        let mut lines = vec![
            format!("tickTime={}", o.tick_ms),
            format!("initLimit={}", o.init_limit),
            format!("syncLimit={}", o.sync_limit),
            format!("dataDir={}", self.data_dir(node)),
            format!("clientPort={}", o.client_port),
            format!("clientPortAddress={}", node.host()),
            // The health probe and `primaries` use these.
            "4lw.commands.whitelist=srvr,ruok,mntr".into(),
            // The admin server is a Jetty on port 8080 nobody here needs.
            "admin.enableServer=false".into(),
            // Small transaction log files: five servers share one disk.
            "preAllocSize=4096".into(),
            // Many clients from one address (the controller).
            "maxClientCnxns=0".into(),
        ];
        if self.members.len() > 1 {
            for (i, (_, host)) in self.members.iter().enumerate() {
                lines.push(format!(
                    "server.{}={}:{}:{}",
                    i + 1,
                    url_host(host),
                    o.quorum_port,
                    o.election_port
                ));
            }
        }
        lines.extend(o.extra_config.iter().cloned());
        // Checked so a bad node list fails in configure, not in the JVM.
        self.my_id(node)?;
        Ok(lines.join("\n") + "\n")
    }

    /// One four-letter word (`srvr`, `ruok`) sent to the node's client port
    /// from the controller; the answer.
    pub fn four_letter(&self, host: &str, word: &str, timeout: Duration) -> Result<String, String> {
        let addr = (host, self.opts.client_port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {host}: {e}"))?
            .next()
            .ok_or_else(|| format!("{host} resolves to no address"))?;
        let mut s =
            TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("{addr}: {e}"))?;
        s.set_read_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        s.set_write_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        s.write_all(word.as_bytes())
            .map_err(|e| format!("{addr}: sending {word}: {e}"))?;
        let mut out = String::new();
        s.read_to_string(&mut out)
            .map_err(|e| format!("{addr}: reading the answer to {word}: {e}"))?;
        Ok(out)
    }

    /// The node's mode (`leader`, `follower`, `standalone`) from `srvr`, or
    /// why it has none.
    pub fn mode(&self, node: &Node) -> Result<String, String> {
        let out = self.four_letter(node.host(), "srvr", Duration::from_secs(2))?;
        parse_mode(&out)
    }
}

/// The `Mode:` line of a `srvr` answer; an error (the answer) when the
/// server is not serving, e.g. "This ZooKeeper instance is not currently
/// serving requests" while it has no quorum.
pub fn parse_mode(srvr: &str) -> Result<String, String> {
    srvr.lines()
        .find_map(|l| l.strip_prefix("Mode:"))
        .map(|m| m.trim().to_string())
        .filter(|m| !m.is_empty())
        .ok_or_else(|| {
            let t = srvr.trim();
            if t.is_empty() {
                "empty answer to srvr (is srvr in 4lw.commands.whitelist?)".to_string()
            } else {
                format!("srvr: {}", crate::control::tail(t, 200))
            }
        })
}

/// The zoo.cfg lines [`Zookeeper`] writes and depends on (data directory,
/// client address, the ensemble, the four-letter words its health probe
/// uses), and `dataLogDir`, which would move the transaction log out of
/// the data directory faultline wipes: a `--db-opt` may not override them.
pub const RESERVED: crate::system::Reserved = crate::system::Reserved {
    system: "zookeeper",
    keys: &[
        "dataDir",
        "dataLogDir",
        "clientPort",
        "clientPortAddress",
        "server.*",
        "4lw.commands.whitelist",
    ],
    set_in: "in each node's zoo.cfg, from the cluster's nodes",
};

impl Db for Zookeeper {
    fn data_folder(&self, node: &Node) -> Option<String> {
        Some(self.data_dir(node))
    }

    fn name(&self) -> &str {
        "zookeeper"
    }

    fn install(&self, node: &Node) -> Result<(), DbError> {
        // Debian's package depends on a JRE.
        let present = format!(
            "test -f {} && command -v java >/dev/null 2>&1",
            CLASSPATH[0]
        );
        crate::db::apt_install(
            self.name(),
            node,
            &AptPackages {
                what: "ZooKeeper",
                packages: &["zookeeper"],
                present: &present,
                services: &["zookeeper"],
                otherwise: "",
            },
        )
    }

    /// A JVM running ZooKeeper's server class: not every `java`.
    fn programs(&self, _node: &Node) -> Vec<Program> {
        vec![Program::with_cmdline("java", MAIN_CLASS)]
    }

    fn daemon_on(&self, node: &Node) -> Option<NodeDaemon> {
        Some(NodeDaemon {
            daemon: self.daemon(node),
            dir: self.dir(node),
        })
    }

    fn configure(&self, node: &Node) -> Result<(), DbError> {
        let dir = self.dir(node);
        let cfg = self.config(node)?;
        let id = self.my_id(node)?;
        let script = format!(
            "mkdir -p {data} && printf '%s' {cfg} > {dir}/zoo.cfg && printf '%s' {log4j} > {dir}/log4j.properties \
             && echo {id} > {data}/myid",
            data = shell_quote(&self.data_dir(node)),
            dir = shell_quote(&dir),
            cfg = shell_quote(&cfg),
            log4j = shell_quote(LOG4J),
        );
        node.run(&script)?;
        Ok(())
    }

    fn start(&self, node: &Node) -> Result<(), DbError> {
        let dir = self.dir(node);
        // A start after a wipe needs the files again.
        if !node
            .exec(&format!(
                "test -f {}/zoo.cfg && test -f {}/myid",
                shell_quote(&dir),
                shell_quote(&self.data_dir(node))
            ))?
            .success()
        {
            self.configure(node)?;
        }
        let args = [
            "java".to_string(),
            format!("-Xmx{}", self.opts.heap),
            format!("-Xms{}", "32m"),
            // Fewer GC and JIT threads: two cores run five JVMs.
            "-XX:+UseSerialGC".into(),
            "-XX:TieredStopAtLevel=1".into(),
            format!("-Dlog4j.configuration=file:{dir}/log4j.properties"),
            format!("-Dzookeeper.log.dir={dir}"),
            "-cp".into(),
            format!("{dir}:{}", CLASSPATH.join(":")),
            MAIN_CLASS.into(),
            format!("{dir}/zoo.cfg"),
        ];
        let command: Vec<String> = args.iter().map(|a| shell_quote(a)).collect();
        self.daemon(node).start(node, &dir, &command.join(" "))?;
        Ok(())
    }

    fn wait_healthy(&self, nodes: &[Node], timeout: Duration) -> Result<(), DbError> {
        // The JVMs take seconds to start: no need to probe often.
        crate::db::poll_healthy(
            "zookeeper",
            nodes,
            timeout,
            Duration::from_millis(250),
            |pending| crate::control::parallel(pending, |n| self.mode(n).map(|_| ())),
            |n| self.daemon(n).unhealthy_context(n, "zookeeper"),
        )
    }

    fn log_files(&self, node: &Node) -> Vec<String> {
        let dir = self.dir(node);
        vec![self.daemon(node).log_file, format!("{dir}/zoo.cfg")]
    }

    fn primaries(&self, nodes: &[Node]) -> Result<Vec<String>, DbError> {
        let modes = crate::control::parallel(nodes, |n| self.mode(n));
        // A node that does not answer (killed, paused, cut off) is not a
        // primary as far as we can tell.
        Ok(nodes
            .iter()
            .zip(modes)
            .filter(|(_, m)| matches!(m.as_deref(), Ok("leader") | Ok("standalone")))
            .map(|(n, _)| n.name().to_string())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_is_read_from_srvr() {
        let srvr = "Zookeeper version: 3.8.0\nLatency min/avg/max: 0/0.0/0\nMode: follower\nNode count: 5\n";
        assert_eq!(parse_mode(srvr).as_deref(), Ok("follower"));
        let err = parse_mode("This ZooKeeper instance is not currently serving requests\n")
            .expect_err("no mode");
        assert!(err.contains("not currently serving"), "{err}");
        let err = parse_mode("").expect_err("empty");
        assert!(err.contains("whitelist"), "{err}");
    }
}
