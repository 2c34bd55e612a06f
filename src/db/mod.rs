//! Database lifecycles: installing, starting, faulting and removing the system
//! under test on every node.
//!
//! The door is the [`Db`] trait, after Jepsen's DB protocol: one method per
//! step, each about one node, so the runner and the nemeses can act on any
//! subset of nodes. [`clean_slate`], [`setup`], [`teardown`] and
//! [`collect_logs`] apply the steps to a whole cluster in parallel. The same code serves the local
//! cluster and real hosts: it only talks to [`Node`]s.
//!
//! The implementations live with their systems (`crate::system::<name>::db`);
//! [`daemon`] holds the pid-file process handling any database started as
//! a plain daemon can share; [`binary`] a server binary of the user's own
//! build, uploaded and checked on each node (`--db-binary`).

pub mod binary;
pub mod daemon;

pub use binary::{DbBinary, Installed};
pub use daemon::{apt_install, AptPackages, NodeDaemon, Program};

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cluster::{split_results, Cluster, Node};
use crate::control::ControlError;

/// Why a database step failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// A remote command failed (names node and command).
    #[error(transparent)]
    Control(#[from] ControlError),
    /// A step failed on one node for a reason found by the db code.
    #[error("{db} on {node}: {action}: {reason}")]
    Node {
        /// The database.
        db: String,
        /// The node.
        node: String,
        /// The step (install, start, ...).
        action: String,
        /// What went wrong.
        reason: String,
    },
    /// The cluster did not become healthy in time.
    #[error("{db} not healthy after {:.1} s: {}", waited.as_secs_f64(), nodes.join("; "))]
    Unhealthy {
        /// The database.
        db: String,
        /// How long we waited.
        waited: Duration,
        /// For each unhealthy node: its name, the last reason and the end
        /// of its log.
        nodes: Vec<String>,
    },
    /// A step failed on several nodes.
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Many(Vec<DbError>),
    /// A bad option.
    #[error("{0}")]
    Invalid(String),
}

impl DbError {
    /// Step `action` of `db` failed on `node` because of `reason`.
    pub fn on(db: &str, node: &Node, action: &str, reason: impl ToString) -> DbError {
        DbError::Node {
            db: db.into(),
            node: node.name().into(),
            action: action.into(),
            reason: reason.to_string(),
        }
    }

    fn from_many(mut errors: Vec<DbError>) -> DbError {
        if errors.len() == 1 {
            errors.remove(0)
        } else {
            DbError::Many(errors)
        }
    }
}

/// A database under test, in the spirit of Jepsen's DB protocol. Every method
/// acts on one node and is safe to call again (starting a running node,
/// killing a dead one and wiping a clean one succeed).
pub trait Db: Send + Sync + std::fmt::Debug {
    /// The database's name (`etcd`).
    fn name(&self) -> &str;

    /// Makes the software present on the node (a package, an uploaded binary).
    fn install(&self, node: &Node) -> Result<(), DbError>;

    /// Writes configuration; called after install, before the first start.
    fn configure(&self, _node: &Node) -> Result<(), DbError> {
        Ok(())
    }

    /// Starts the database on the node, in the background.
    fn start(&self, node: &Node) -> Result<(), DbError>;

    /// Where on `node` the server binary it runs was uploaded
    /// (`--db-binary`), when it runs one of the user's own build rather
    /// than the Debian package's: what the rolling upgrade replaces
    /// before it restarts the node. `None` by default.
    fn server_binary(&self, _node: &Node) -> Option<String> {
        None
    }

    /// The daemon of this database on `node` and the folder that holds
    /// what it wrote, for a database run as a plain daemon
    /// ([`daemon::Daemon`]): the default [`Db::stop`], [`Db::kill`],
    /// [`Db::pause`], [`Db::resume`], [`Db::is_running`] and [`Db::wipe`]
    /// act on it, so such a database writes only the steps that differ.
    /// `None`: nothing of it runs on the node, so those steps have nothing
    /// to do (PostgreSQL's nodes but the first).
    fn daemon_on(&self, _node: &Node) -> Option<NodeDaemon> {
        None
    }

    /// Stops it politely (SIGTERM, then SIGKILL after a grace period).
    fn stop(&self, node: &Node) -> Result<(), DbError> {
        match self.daemon_on(node) {
            Some(d) => Ok(d.daemon.stop(node, "TERM", Duration::from_secs(10))?),
            None => Ok(()),
        }
    }

    /// Kills it at once (SIGKILL) and waits until it is gone.
    fn kill(&self, node: &Node) -> Result<(), DbError> {
        match self.daemon_on(node) {
            Some(d) => Ok(d.daemon.stop(node, "KILL", Duration::from_secs(5))?),
            None => Ok(()),
        }
    }

    /// Freezes it (SIGSTOP); fails when it does not run.
    fn pause(&self, node: &Node) -> Result<(), DbError> {
        match self.daemon_on(node) {
            Some(d) if !d.daemon.signal(node, "STOP")? => Err(DbError::on(
                self.name(),
                node,
                "pause",
                format!("{} is not running", self.name()),
            )),
            _ => Ok(()),
        }
    }

    /// Thaws it (SIGCONT). Safe when nothing runs: heal calls it at any
    /// time.
    fn resume(&self, node: &Node) -> Result<(), DbError> {
        if let Some(d) = self.daemon_on(node) {
            d.daemon.signal(node, "CONT")?;
        }
        Ok(())
    }

    /// Whether its process is alive on the node (paused counts as alive).
    fn is_running(&self, node: &Node) -> Result<bool, DbError> {
        match self.daemon_on(node) {
            Some(d) => Ok(d.daemon.is_running(node)?),
            None => Ok(false),
        }
    }

    /// Whether its process on the node is stopped (SIGSTOP, state `T`):
    /// what heal checks after resuming.
    fn is_paused(&self, node: &Node) -> Result<bool, DbError> {
        match self.daemon_on(node) {
            Some(d) => Ok(d.daemon.is_stopped(node)?),
            None => Ok(false),
        }
    }

    /// Its programs on the node, as the clean slate finds them without a
    /// pid file (an earlier run's whose files are gone, one started by
    /// hand): by default the daemon's process name.
    fn programs(&self, node: &Node) -> Vec<Program> {
        self.daemon_on(node)
            .map(|d| vec![Program::named(&d.daemon.comm)])
            .unwrap_or_default()
    }

    /// Brings the node to a known state before set-up, whatever an
    /// earlier run or a person left there: every process of its
    /// [`Db::programs`] is killed (stopped ones too), then [`Db::kill`]
    /// and [`Db::wipe`] remove what the pid files and data folders name.
    /// Returns what it found, for the run's log (empty: the node was
    /// clean).
    fn clean(&self, node: &Node) -> Result<Vec<String>, DbError> {
        let mut found = Vec::new();
        for p in self.programs(node) {
            let pids = p.kill_all(node)?;
            if !pids.is_empty() {
                let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
                found.push(format!("killed {p} (pid {})", pids.join(" ")));
            }
        }
        self.kill(node)?;
        let dir = self.daemon_on(node).map(|d| d.dir);
        let had_data = match &dir {
            Some(dir) => node
                .exec(&format!("test -e {}", crate::control::shell_quote(dir)))?
                .success(),
            None => false,
        };
        self.wipe(node)?;
        if let (true, Some(dir)) = (had_data, dir) {
            found.push(format!("wiped {dir}"));
        }
        Ok(found)
    }

    /// Removes its data and logs from the node (after kill or stop);
    /// refuses while it runs.
    fn wipe(&self, node: &Node) -> Result<(), DbError> {
        let Some(d) = self.daemon_on(node) else {
            return Ok(());
        };
        if d.daemon.is_running(node)? {
            return Err(DbError::on(
                self.name(),
                node,
                "wipe",
                format!("{} still runs; kill or stop it first", self.name()),
            ));
        }
        node.run(&format!("rm -rf {}", crate::control::shell_quote(&d.dir)))?;
        Ok(())
    }

    /// Waits until every node in `nodes` serves requests, or fails after
    /// `timeout` naming the nodes that do not, with the end of their logs.
    fn wait_healthy(&self, nodes: &[Node], timeout: Duration) -> Result<(), DbError>;

    /// The log files on the node worth keeping with a test's results.
    fn log_files(&self, node: &Node) -> Vec<String>;

    /// The names of the nodes that currently lead (for leader-based
    /// systems); empty when the database has no such notion.
    fn primaries(&self, _nodes: &[Node]) -> Result<Vec<String>, DbError> {
        Ok(Vec::new())
    }

    /// The time on `node` as the database reads its clock, in seconds
    /// since the epoch, for the clock nemesis's `clock-check`; `None` where
    /// it does not run. The default asks a process started like the
    /// daemon ([`daemon::Daemon::clock_like`]); a database that can tell
    /// its own time (Redis `TIME`, PostgreSQL `clock_timestamp()`) answers
    /// itself.
    fn clock(&self, node: &Node) -> Result<Option<DbClock>, DbError> {
        let Some(d) = self.daemon_on(node) else {
            return Ok(None);
        };
        Ok(d.daemon.clock_like(node)?.map(|epoch_secs| DbClock {
            epoch_secs,
            via: "date under the daemon's clock environment",
        }))
    }

    /// The folder of the database's durable data on `node` (what
    /// `corrupt-file` damages and `rollback` restores); `None` when it
    /// keeps none there or does not say.
    fn data_folder(&self, _node: &Node) -> Option<String> {
        None
    }

    /// Its members' API, for a database whose members can be removed
    /// and added back while it runs (the `membership` fault); `None`, the
    /// default: the fault is refused.
    fn membership(&self) -> Option<&dyn Membership> {
        None
    }

    /// Whether the database on `node` runs under libfaketime (started
    /// while the node's control file existed), so moving that file moves
    /// the clock it reads.
    fn clock_is_faked(&self, node: &Node) -> Result<bool, DbError> {
        match self.daemon_on(node) {
            Some(d) => Ok(d.daemon.is_faked(node)?),
            None => Ok(false),
        }
    }
}

/// One member as the database lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Member {
    /// The node it runs on (matched by its peer address); empty when no
    /// node of the cluster has that address.
    pub node: String,
    /// The database's id for it.
    pub id: String,
    /// Whether it has started and joined (an added member that never
    /// started has no name yet).
    pub started: bool,
}

/// Changing a running database's members, one node at a time: what the
/// `membership` fault does and what heal undoes ([`Db::membership`]).
/// Every method asks the members that answer, never `node` itself.
pub trait Membership: Send + Sync {
    /// The members, as the first of `nodes` that answers lists them, with
    /// the node that answered.
    fn members(&self, nodes: &[Node]) -> Result<(String, Vec<Member>), DbError>;

    /// Whether every one of `nodes` serves requests now (one probe each):
    /// a member is removed only while all the others are healthy.
    fn all_healthy(&self, nodes: &[Node]) -> Result<(), DbError>;

    /// Removes `node`'s member through one of `peers`, then kills its
    /// process and wipes its data (what a removed member must not keep).
    fn remove(&self, peers: &[Node], node: &Node) -> Result<(), DbError>;

    /// Adds `node` back as a new member through one of `peers` (unless
    /// an unstarted member with its address is already listed), starts it
    /// with an empty data folder joining the existing cluster, and waits
    /// up to `timeout` until it serves.
    fn add(&self, peers: &[Node], node: &Node, timeout: Duration) -> Result<(), DbError>;
}

/// A database's clock as [`Db::clock`] read it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DbClock {
    /// The time it read, in seconds since the epoch.
    pub epoch_secs: f64,
    /// How it was read (`redis TIME`), for the history.
    pub via: &'static str,
}

fn on_all_nodes(
    cluster: &Cluster,
    f: impl Fn(&Node) -> Result<(), DbError> + Sync,
) -> Result<(), DbError> {
    let (_, errors) = split_results(cluster.on_all(f));
    if errors.is_empty() {
        Ok(())
    } else {
        Err(DbError::from_many(errors))
    }
}

/// What [`clean_slate`] found on one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cleaned {
    /// The node.
    pub node: String,
    /// What was killed and wiped there; empty when it was clean.
    pub found: Vec<String>,
}

/// Runs [`Db::clean`] on every node at once, so set-up starts from nothing
/// of `db`: no process (from an earlier run or started by hand) and no
/// data. Says what it found on each node.
pub fn clean_slate(db: &dyn Db, cluster: &Cluster) -> Result<Vec<Cleaned>, DbError> {
    let (found, errors) = split_results(cluster.on_all(|n| {
        db.clean(n).map(|found| Cleaned {
            node: n.name().to_string(),
            found,
        })
    }));
    if errors.is_empty() {
        Ok(found)
    } else {
        Err(DbError::from_many(errors))
    }
}

/// Installs, configures and starts `db` on every node at once, then waits
/// until it is healthy.
pub fn setup(db: &dyn Db, cluster: &Cluster, healthy_within: Duration) -> Result<(), DbError> {
    on_all_nodes(cluster, |n| db.install(n))?;
    on_all_nodes(cluster, |n| db.configure(n))?;
    on_all_nodes(cluster, |n| db.start(n))?;
    db.wait_healthy(cluster.nodes(), healthy_within)
}

/// Kills `db` on every node and wipes its data and logs. Call
/// [`collect_logs`] first to keep the logs.
pub fn teardown(db: &dyn Db, cluster: &Cluster) -> Result<(), DbError> {
    on_all_nodes(cluster, |n| {
        db.kill(n)?;
        db.wipe(n)
    })
}

/// Copies every node's log files into `dest/<node>/`, returning the local
/// paths. Log files that do not exist on a node are skipped.
pub fn collect_logs(db: &dyn Db, cluster: &Cluster, dest: &Path) -> Result<Vec<PathBuf>, DbError> {
    let results = cluster.on_all(|node| {
        let mut got = Vec::new();
        for remote in db.log_files(node) {
            let exists = node
                .exec(&format!("test -f {}", crate::control::shell_quote(&remote)))?
                .success();
            if !exists {
                continue;
            }
            let base = Path::new(&remote)
                .file_name()
                .map(|s| s.to_os_string())
                .unwrap_or_else(|| "log".into());
            let local = dest.join(node.name()).join(base);
            node.download(&remote, &local)?;
            got.push(local);
        }
        Ok::<_, DbError>(got)
    });
    let (lists, errors) = split_results(results);
    if errors.is_empty() {
        Ok(lists.into_iter().flatten().collect())
    } else {
        Err(DbError::from_many(errors))
    }
}

/// Waits until every node in `nodes` serves: `probe` answers for the nodes
/// still pending (one result each, in order), asked again every `every`.
/// After `timeout` it fails naming each node still failing, with why and
/// `context(node)` (whether the db runs there, the end of its log).
pub fn poll_healthy(
    db: &str,
    nodes: &[Node],
    timeout: Duration,
    every: Duration,
    probe: impl Fn(&[&Node]) -> Vec<Result<(), String>>,
    context: impl Fn(&Node) -> String,
) -> Result<(), DbError> {
    let start = std::time::Instant::now();
    let mut pending: Vec<&Node> = nodes.iter().collect();
    loop {
        let failing: Vec<(&Node, String)> = pending
            .iter()
            .zip(probe(&pending))
            .filter_map(|(n, r)| r.err().map(|why| (*n, why)))
            .collect();
        if failing.is_empty() {
            return Ok(());
        }
        if start.elapsed() >= timeout {
            return Err(DbError::Unhealthy {
                db: db.into(),
                waited: start.elapsed(),
                nodes: failing
                    .iter()
                    .map(|(n, why)| format!("{}: {why}{}", n.name(), context(n)))
                    .collect(),
            });
        }
        pending = failing.into_iter().map(|(n, _)| n).collect();
        std::thread::sleep(every);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::Capabilities;
    use crate::control::{Output, Remote};
    use std::sync::{Arc, Mutex};

    /// A node that answers the process sweep with two pids and says the
    /// data folder exists; it records what it was sent.
    #[derive(Debug, Default)]
    struct Scripted {
        sent: Mutex<Vec<String>>,
    }

    impl Remote for Scripted {
        fn node(&self) -> &str {
            "n1"
        }
        fn default_timeout(&self) -> Duration {
            Duration::from_secs(1)
        }
        fn exec_timeout(&self, command: &str, _t: Duration) -> Result<Output, ControlError> {
            self.sent
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(command.to_string());
            let stdout = if command.contains("for d in /proc/[0-9]*") {
                "4242 4243\n"
            } else {
                ""
            };
            Ok(Output {
                status: 0,
                signal: None,
                stdout: stdout.into(),
                stderr: String::new(),
            })
        }
        fn upload(&self, _l: &Path, _r: &str, _m: i32) -> Result<(), ControlError> {
            Ok(())
        }
        fn download(&self, _r: &str, _l: &Path) -> Result<(), ControlError> {
            Ok(())
        }
    }

    /// A daemon-run db with the default steps.
    #[derive(Debug)]
    struct Plain;

    impl Db for Plain {
        fn name(&self) -> &str {
            "plain"
        }
        fn install(&self, _node: &Node) -> Result<(), DbError> {
            Ok(())
        }
        fn start(&self, _node: &Node) -> Result<(), DbError> {
            Ok(())
        }
        fn daemon_on(&self, node: &Node) -> Option<NodeDaemon> {
            let dir = format!("{}/plain", node.work_dir());
            Some(NodeDaemon {
                daemon: daemon::Daemon::new(
                    "plaind",
                    &format!("{dir}/plaind.pid"),
                    &format!("{dir}/plaind.log"),
                ),
                dir,
            })
        }
        fn wait_healthy(&self, _nodes: &[Node], _t: Duration) -> Result<(), DbError> {
            Ok(())
        }
        fn log_files(&self, _node: &Node) -> Vec<String> {
            Vec::new()
        }
    }

    #[test]
    fn clean_kills_by_name_then_by_pid_file_and_wipes_saying_what_it_found() {
        let remote = Arc::new(Scripted::default());
        let caps = Capabilities {
            can_skew_clock: false,
            has_netem: false,
            has_iptables: true,
            shares_host: true,
        };
        let node = Node::new("n1", "10.9.0.1", remote.clone(), caps, "/w");
        let found = Plain.clean(&node).unwrap();
        assert_eq!(
            found,
            vec!["killed plaind (pid 4242 4243)", "wiped /w/plain"]
        );
        let sent = remote.sent.lock().unwrap().clone();
        let sweep = &sent[0];
        // By name, stopped ones woken before the kill, the sweeping shell
        // spared.
        assert!(sweep.contains("COMM=plaind; MARK='';"), "{sweep}");
        let cont = sweep.find("kill -CONT").expect("SIGCONT");
        let kill = sweep.find("kill -KILL").expect("SIGKILL");
        assert!(cont < kill, "{sweep}");
        assert!(
            sweep.contains("[ \"$p\" = \"$me\" ] && continue"),
            "{sweep}"
        );
        // Then the pid file, then the wipe of the folder.
        assert!(
            sent.iter().any(|c| c.contains("/w/plain/plaind.pid")),
            "{sent:?}"
        );
        assert!(
            sent.last()
                .is_some_and(|c| c.starts_with("rm -rf") && c.contains("/w/plain")),
            "{sent:?}"
        );
    }

    #[test]
    fn a_shell_is_never_swept_by_name() {
        let remote = Arc::new(Scripted::default());
        let caps = Capabilities {
            can_skew_clock: false,
            has_netem: false,
            has_iptables: true,
            shares_host: true,
        };
        let node = Node::new("n1", "10.9.0.1", remote.clone(), caps, "/w");
        assert!(Program::named("sh").kill_all(&node).unwrap().is_empty());
        assert!(remote.sent.lock().unwrap().is_empty());
    }
}
