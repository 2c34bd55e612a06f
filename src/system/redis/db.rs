//! Redis with Sentinel: Debian's `redis-server` and `redis-sentinel`
//! packages; the FIRST node starts as the primary (master), every other
//! node as its replica (`replicaof`), and every node also runs a Sentinel
//! that watches the master under the name [`MASTER_NAME`] and fails over to
//! a replica when a majority of Sentinels agree it is down.
//!
//! Each node keeps its own directory `<work>/redis/` with `redis.conf`,
//! `sentinel.conf` (both rewritten by Sentinel as it reconfigures
//! instances, so they must stay writable), the data directory, two pid
//! files and two logs. Both programs run as plain daemons through
//! [`Daemon`]; the fault-facing steps (kill, pause, resume, is_running)
//! act on `redis-server` only: Sentinel is the cluster's failure detector,
//! and a test is about how the data side behaves when it acts. `start`
//! (which heal calls) starts whichever of the two is not running; `stop`
//! and `wipe` end both.
//!
//! Persistence: an append-only file with `appendfsync everysec` (Redis's
//! own recommendation), no RDB snapshots. A killed node therefore comes
//! back with what it had up to ~1 s before the kill; the replication tests
//! do not depend on it. Replication is asynchronous, `min-replicas-to-write`
//! is left at 0 (the default): an isolated master keeps acknowledging
//! writes, which is exactly what the tests show being lost after a
//! failover. See docs/redis.md.

use std::collections::HashMap;
use std::time::Duration;

use crate::cluster::url_host;
use crate::cluster::Node;
use crate::control::shell_quote;
use crate::db::daemon::Daemon;
use crate::db::{AptPackages, Db, DbBinary, DbClock, DbError, NodeDaemon, Program};

/// The name Sentinel monitors the master under.
pub const MASTER_NAME: &str = "faultline";

/// How Redis and its Sentinels are run.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// redis-server's port.
    pub port: u16,
    /// redis-sentinel's port.
    pub sentinel_port: u16,
    /// How long the master must be unreachable before a Sentinel thinks it
    /// down (`down-after-milliseconds`).
    pub down_after_ms: u64,
    /// Sentinel's `failover-timeout`: how long a failover may take, and how
    /// long before the same master is failed over again.
    pub failover_timeout_ms: u64,
    /// redis.conf directives (`--db-opt`), `key value` lines after
    /// faultline's own (a later line wins).
    pub directives: Vec<crate::system::DbOpt>,
    /// A redis-server binary of the user's own build to upload to every
    /// node and run instead of the Debian package's (`--db-binary`); the
    /// Sentinel runs the same binary under the name `redis-sentinel`, as
    /// Debian's does.
    pub binary: Option<DbBinary>,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            port: 6379,
            sentinel_port: 26379,
            down_after_ms: 2000,
            failover_timeout_ms: 4000,
            directives: Vec::new(),
            binary: None,
        }
    }
}

/// Redis on every node of a cluster: a master on the first, replicas on
/// the others, a Sentinel on each.
#[derive(Debug, Clone)]
pub struct Redis {
    opts: RedisOptions,
    /// (name, host) of every node, the first being the initial master.
    members: Vec<(String, String)>,
}

impl Redis {
    /// Redis on `nodes`, the first of them the initial master.
    pub fn new(opts: RedisOptions, nodes: &[Node]) -> Self {
        Redis {
            opts,
            members: nodes
                .iter()
                .map(|n| (n.name().to_string(), n.host().to_string()))
                .collect(),
        }
    }

    /// The options in use.
    pub fn options(&self) -> &RedisOptions {
        &self.opts
    }

    /// (name, host) of every node, in order.
    pub fn members(&self) -> &[(String, String)] {
        &self.members
    }

    /// The Sentinel quorum: a majority of the nodes.
    pub fn quorum(&self) -> usize {
        self.members.len() / 2 + 1
    }

    /// The node's redis directory (configs, data, logs, pid files).
    pub fn dir(&self, node: &Node) -> String {
        format!("{}/redis", node.work_dir())
    }

    /// The program run on `node` under `name` (`redis-server`,
    /// `redis-sentinel`), for a shell: the uploaded binary (the Sentinel
    /// through a link of that name beside it, since redis reads its mode
    /// from its name), or the package's in `PATH`.
    pub fn program(&self, node: &Node, name: &str) -> String {
        match self.opts.binary {
            Some(_) => shell_quote(&format!("{}/bin/{name}", node.work_dir())),
            None => name.to_string(),
        }
    }

    fn server(&self, node: &Node) -> Daemon {
        let dir = self.dir(node);
        Daemon::new(
            "redis-server",
            &format!("{dir}/redis-server.pid"),
            &format!("{dir}/redis-server.log"),
        )
    }

    fn sentinel(&self, node: &Node) -> Daemon {
        let dir = self.dir(node);
        Daemon::new(
            "redis-sentinel",
            &format!("{dir}/redis-sentinel.pid"),
            &format!("{dir}/redis-sentinel.log"),
        )
    }

    fn initial_master(&self) -> Option<&(String, String)> {
        self.members.first()
    }

    fn err(&self, node: &Node, action: &str, reason: impl ToString) -> DbError {
        DbError::Node {
            db: "redis".into(),
            node: node.name().into(),
            action: action.into(),
            reason: reason.to_string(),
        }
    }

    /// The server's config: the node's address, append-only persistence,
    /// and `replicaof` the first node unless this is it. What faultline
    /// depends on here is in [`RESERVED`]; the rest a `--db-opt` directive,
    /// written after, may change.
    fn server_conf(&self, node: &Node) -> String {
        let dir = self.dir(node);
        let mut conf = format!(
            "bind {host}\nport {port}\nprotected-mode no\ndaemonize no\n\
             dir {dir}/data\nlogfile \"\"\nsave \"\"\nappendonly yes\nappendfsync everysec\n\
             replica-serve-stale-data yes\nreplica-read-only yes\n\
             repl-diskless-sync yes\nrepl-diskless-sync-delay 0\n",
            host = node.host(),
            port = self.opts.port,
        );
        if let Some((name, host)) = self.initial_master() {
            if name != node.name() {
                conf.push_str(&format!("replicaof {host} {}\n", self.opts.port));
            }
        }
        for d in &self.opts.directives {
            conf.push_str(&format!("{} {}\n", d.key, d.value));
        }
        conf
    }

    fn sentinel_conf(&self, node: &Node) -> String {
        let (_, master) = self
            .initial_master()
            .cloned()
            .unwrap_or_else(|| (node.name().to_string(), node.host().to_string()));
        let m = MASTER_NAME;
        format!(
            "bind {host}\nport {sport}\nprotected-mode no\ndaemonize no\n\
             dir {dir}\nlogfile \"\"\n\
             sentinel monitor {m} {master} {port} {quorum}\n\
             sentinel down-after-milliseconds {m} {down}\n\
             sentinel failover-timeout {m} {fto}\n\
             sentinel parallel-syncs {m} {par}\n",
            host = node.host(),
            sport = self.opts.sentinel_port,
            dir = self.dir(node),
            port = self.opts.port,
            quorum = self.quorum(),
            down = self.opts.down_after_ms,
            fto = self.opts.failover_timeout_ms,
            par = self.members.len().max(2) - 1,
        )
    }

    fn connect(&self, host: &str, port: u16) -> Result<::redis::Connection, String> {
        let client = ::redis::Client::open(format!("redis://{}:{port}/", url_host(host)))
            .map_err(|e| e.to_string())?;
        let conn = client
            .get_connection_with_timeout(Duration::from_secs(1))
            .map_err(|e| format!("connect {host}:{port}: {e}"))?;
        conn.set_read_timeout(Some(Duration::from_secs(1)))
            .map_err(|e| e.to_string())?;
        conn.set_write_timeout(Some(Duration::from_secs(1)))
            .map_err(|e| e.to_string())?;
        Ok(conn)
    }

    /// The master's host as the node's Sentinel knows it.
    pub fn sentinel_master(&self, host: &str) -> Result<(String, u16), String> {
        let mut c = self.connect(host, self.opts.sentinel_port)?;
        let addr: Option<(String, u16)> = ::redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(MASTER_NAME)
            .query(&mut c)
            .map_err(|e| format!("sentinel: {e}"))?;
        addr.ok_or_else(|| format!("sentinel knows no master {MASTER_NAME}"))
    }

    /// One health probe of a node: the server answers PING, a replica's
    /// link to its master is up, and the node's Sentinel names the master
    /// the others name and sees every other Sentinel.
    fn probe(&self, node: &Node, master: &str) -> Result<(), String> {
        let mut c = self.connect(node.host(), self.opts.port)?;
        let pong: String = ::redis::cmd("PING")
            .query(&mut c)
            .map_err(|e| format!("PING: {e}"))?;
        if pong != "PONG" {
            return Err(format!("PING answered {pong:?}"));
        }
        let info: String = ::redis::cmd("INFO")
            .arg("replication")
            .query(&mut c)
            .map_err(|e| format!("INFO: {e}"))?;
        let fields = info_fields(&info);
        let role = fields.get("role").map(String::as_str).unwrap_or("");
        let am_master = node.host() == master;
        match (am_master, role) {
            (true, "master") => {}
            (false, "slave") => {
                if fields.get("master_link_status").map(String::as_str) != Some("up") {
                    return Err("replication link to the master is not up yet".into());
                }
                if fields.get("master_host").map(String::as_str) != Some(master) {
                    return Err(format!(
                        "replicates {:?}, not the master {master}",
                        fields.get("master_host")
                    ));
                }
            }
            (_, r) => {
                return Err(format!(
                    "role {r}, expected {}",
                    if am_master { "master" } else { "replica" }
                ))
            }
        }
        let (sm, _) = self.sentinel_master(node.host())?;
        if sm != master {
            return Err(format!("its sentinel names {sm} the master, not {master}"));
        }
        let mut s = self.connect(node.host(), self.opts.sentinel_port)?;
        let state: Vec<String> = ::redis::cmd("SENTINEL")
            .arg("master")
            .arg(MASTER_NAME)
            .query(&mut s)
            .map_err(|e| format!("sentinel master: {e}"))?;
        let others = state
            .chunks(2)
            .find(|kv| kv[0] == "num-other-sentinels")
            .and_then(|kv| kv.get(1))
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
        let want = self.members.len().saturating_sub(1);
        if others < want {
            return Err(format!(
                "its sentinel sees {others} other sentinels of {want}"
            ));
        }
        Ok(())
    }

    /// The master most Sentinels name, as a host, or an error when none
    /// answers.
    fn agreed_master(&self, nodes: &[Node]) -> Result<String, String> {
        let answers = crate::control::parallel(nodes, |n| self.sentinel_master(n.host()));
        let mut votes: HashMap<String, usize> = HashMap::new();
        let mut last_err = String::from("no nodes");
        for a in answers {
            match a {
                Ok((h, _)) => *votes.entry(h).or_default() += 1,
                Err(e) => last_err = e,
            }
        }
        // Ties go to the node listed first, so the answer is stable.
        let order = |h: &str| self.members.iter().position(|(_, m)| m == h);
        votes
            .into_iter()
            .max_by(|a, b| a.1.cmp(&b.1).then_with(|| order(&b.0).cmp(&order(&a.0))))
            .map(|(h, _)| h)
            .ok_or(last_err)
    }
}

/// `key:value` lines of an INFO answer.
fn info_fields(info: &str) -> HashMap<String, String> {
    info.lines()
        .filter_map(|l| l.trim().split_once(':'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The redis.conf directives [`Redis`] writes and depends on (address,
/// data directory, replication, running in the foreground with its log on
/// stdout): a `--db-opt` may not override them. Persistence settings
/// (`appendonly`, `appendfsync`, `save`, ...) it may.
pub const RESERVED: crate::system::Reserved = crate::system::Reserved {
    system: "redis",
    keys: &[
        "bind",
        "port",
        "dir",
        "replicaof",
        "slaveof",
        "daemonize",
        "logfile",
    ],
    set_in: "in each node's redis.conf, from the cluster's nodes",
};

impl Db for Redis {
    fn data_folder(&self, node: &Node) -> Option<String> {
        Some(format!("{}/data", self.dir(node)))
    }

    fn name(&self) -> &str {
        "redis"
    }

    fn install(&self, node: &Node) -> Result<(), DbError> {
        if let Some(local) = &self.opts.binary {
            let server = format!("{}/bin/redis-server", node.work_dir());
            let check = format!("{} --version", self.program(node, "redis-server"));
            local.install_checked(self.name(), node, &server, &check)?;
            node.run(&format!(
                "ln -sfn redis-server {}",
                shell_quote(&format!("{}/bin/redis-sentinel", node.work_dir()))
            ))?;
            // The set-up and health checks still speak through redis-cli.
            return crate::db::apt_install(
                self.name(),
                node,
                &AptPackages {
                    what: "redis-cli",
                    packages: &["redis-tools"],
                    present: "command -v redis-cli >/dev/null 2>&1",
                    services: &[],
                    otherwise: "",
                },
            );
        }
        crate::db::apt_install(
            self.name(),
            node,
            &AptPackages {
                what: "redis-server or redis-sentinel",
                packages: &["redis-server", "redis-sentinel"],
                present: "command -v redis-server >/dev/null 2>&1 && \
                          command -v redis-sentinel >/dev/null 2>&1",
                services: &["redis-server", "redis-sentinel"],
                otherwise: "",
            },
        )
    }

    fn server_binary(&self, node: &Node) -> Option<String> {
        self.opts
            .binary
            .as_ref()
            .map(|_| format!("{}/bin/redis-server", node.work_dir()))
    }

    /// The server is what the nemeses kill, pause and resume; Sentinel is
    /// stopped with it and goes with the data.
    fn daemon_on(&self, node: &Node) -> Option<NodeDaemon> {
        Some(NodeDaemon {
            daemon: self.server(node),
            dir: self.dir(node),
        })
    }

    /// The server and its Sentinel: a Sentinel left running would
    /// reconfigure the next run's servers.
    fn programs(&self, _node: &Node) -> Vec<Program> {
        vec![
            Program::named("redis-server"),
            Program::named("redis-sentinel"),
        ]
    }

    fn configure(&self, node: &Node) -> Result<(), DbError> {
        let dir = self.dir(node);
        // Sentinel rewrites both files as it reconfigures instances: a
        // running node keeps what it was told, a fresh one starts from
        // the initial topology.
        if self.server(node).is_running(node)? {
            // Left running by an earlier test: empty it, so values stay
            // unique per key within this test. Only the master accepts
            // FLUSHALL; replicas refuse it and replicate the master's.
            node.run(&format!(
                "redis-cli -h {} -p {} FLUSHALL >/dev/null 2>&1 || true",
                shell_quote(node.host()),
                self.opts.port
            ))?;
            return Ok(());
        }
        if self.sentinel(node).is_running(node)? {
            return Ok(());
        }
        let script = format!(
            "mkdir -p {data} && printf '%s' {server} > {dir}/redis.conf && \
             printf '%s' {sentinel} > {dir}/sentinel.conf",
            data = shell_quote(&format!("{dir}/data")),
            dir = shell_quote(&dir),
            server = shell_quote(&self.server_conf(node)),
            sentinel = shell_quote(&self.sentinel_conf(node)),
        );
        node.run(&script)
            .map_err(|e| self.err(node, "configure", e))?;
        Ok(())
    }

    fn start(&self, node: &Node) -> Result<(), DbError> {
        let dir = self.dir(node);
        let exists = node
            .exec(&format!("test -f {}/redis.conf", shell_quote(&dir)))?
            .success();
        if !exists {
            self.configure(node)?;
        }
        self.server(node).start(
            node,
            &dir,
            &format!(
                "{} {}",
                self.program(node, "redis-server"),
                shell_quote(&format!("{dir}/redis.conf"))
            ),
        )?;
        self.sentinel(node).start(
            node,
            &dir,
            &format!(
                "{} {}",
                self.program(node, "redis-sentinel"),
                shell_quote(&format!("{dir}/sentinel.conf"))
            ),
        )?;
        // Sentinel refreshes what it knows of the replicas (INFO) every
        // 10 s until the master is objectively down, and a failover
        // skips replicas whose INFO is older than 5 s: the first attempt
        // then aborts ("-failover-abort-no-good-slave") and the next
        // comes 2 x failover-timeout later. Refreshing every second (a
        // debug setting, not kept in the config, so set at each start)
        // makes the first attempt succeed.
        let script = format!(
            "i=0; until redis-cli -h {h} -p {p} SENTINEL DEBUG info-period 1000 2>/dev/null | grep -q OK; do                i=$((i+1)); [ $i -ge 100 ] && {{ echo 'sentinel did not answer within 5 s' >&2; exit 1; }}; sleep 0.05; done",
            h = shell_quote(node.host()),
            p = self.opts.sentinel_port,
        );
        node.run(&script)
            .map_err(|e| self.err(node, "start (sentinel info-period)", e))?;
        Ok(())
    }

    fn stop(&self, node: &Node) -> Result<(), DbError> {
        self.sentinel(node)
            .stop(node, "TERM", Duration::from_secs(5))?;
        self.server(node)
            .stop(node, "TERM", Duration::from_secs(10))?;
        Ok(())
    }

    fn wipe(&self, node: &Node) -> Result<(), DbError> {
        if self.server(node).is_running(node)? {
            return Err(self.err(
                node,
                "wipe",
                "redis-server still runs; kill or stop it first",
            ));
        }
        // Sentinel is not faulted by the nemeses; it goes with the data.
        self.sentinel(node)
            .stop(node, "KILL", Duration::from_secs(5))?;
        node.run(&format!("rm -rf {}", shell_quote(&self.dir(node))))?;
        Ok(())
    }

    fn wait_healthy(&self, nodes: &[Node], timeout: Duration) -> Result<(), DbError> {
        crate::db::poll_healthy(
            "redis",
            nodes,
            timeout,
            Duration::from_millis(200),
            |pending| {
                // The master every healthy node must agree on: what most
                // Sentinels say, or the initial one before they answer.
                let master = self
                    .agreed_master(nodes)
                    .ok()
                    .or_else(|| self.initial_master().map(|(_, h)| h.clone()))
                    .unwrap_or_default();
                crate::control::parallel(pending, |n| self.probe(n, &master))
            },
            |n| {
                let log = self.server(n).log_tail(n, 3);
                let slog = self.sentinel(n).log_tail(n, 3);
                let running = self.server(n).is_running(n).unwrap_or(false);
                format!(
                    "{}; server log: {}; sentinel log: {}",
                    if running {
                        ""
                    } else {
                        " (redis-server not running)"
                    },
                    crate::control::tail(log.trim(), 400),
                    crate::control::tail(slog.trim(), 400)
                )
            },
        )
    }

    fn log_files(&self, node: &Node) -> Vec<String> {
        let dir = self.dir(node);
        vec![
            self.server(node).log_file,
            self.sentinel(node).log_file,
            format!("{dir}/redis.conf"),
            format!("{dir}/sentinel.conf"),
        ]
    }

    /// The server's own clock: `TIME` (seconds and microseconds).
    fn clock(&self, node: &Node) -> Result<Option<DbClock>, DbError> {
        if !self.server(node).is_running(node)? {
            return Ok(None);
        }
        let mut c = self
            .connect(node.host(), self.opts.port)
            .map_err(|e| self.err(node, "clock (TIME)", e))?;
        let (secs, micros): (u64, u64) = ::redis::cmd("TIME")
            .query(&mut c)
            .map_err(|e| self.err(node, "clock (TIME)", e))?;
        Ok(Some(DbClock {
            epoch_secs: secs as f64 + micros as f64 / 1e6,
            via: "redis TIME",
        }))
    }

    fn primaries(&self, nodes: &[Node]) -> Result<Vec<String>, DbError> {
        // A cluster whose Sentinels all fail to answer has no known
        // primary (not an error: a nemesis may have cut them off).
        let Ok(host) = self.agreed_master(nodes) else {
            return Ok(Vec::new());
        };
        Ok(nodes
            .iter()
            .filter(|n| n.host() == host)
            .map(|n| n.name().to_string())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_fields_reads_key_value_lines() {
        let f = info_fields(
            "# Replication\r\nrole:slave\r\nmaster_host:10.0.0.1\r\nmaster_link_status:up\r\n",
        );
        assert_eq!(f.get("role").map(String::as_str), Some("slave"));
        assert_eq!(f.get("master_host").map(String::as_str), Some("10.0.0.1"));
        assert_eq!(f.get("master_link_status").map(String::as_str), Some("up"));
        assert!(!f.contains_key("# Replication"));
    }
}
