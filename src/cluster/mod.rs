//! Nodes and clusters: where a test runs.
//!
//! The door is [`Node`] (a name, an address to reach it by, a [`Remote`] to
//! run commands on it, and its [`Capabilities`]) and [`Cluster`] (the nodes
//! of one test). Code above this module never asks which kind of cluster it
//! runs on, only what the nodes can do. Two kinds exist:
//!
//! - real hosts reached over SSH ([`Cluster::hosts`]);
//! - the embedded local cluster ([`local`]): network namespaces on a bridge,
//!   each with its own pid, uts and mount namespaces and its own sshd, built
//!   on this machine by `faultline cluster up`.

pub mod lease;
pub mod local;
pub mod subnet;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::control::{self, ControlError, LoginRecord, Output, Remote, SshOptions, SshRemote};

pub use local::{LocalSpec, LocalStatus};
pub use subnet::Subnet;

/// What a node can do, so nemeses and databases can refuse what is impossible
/// instead of failing halfway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Capabilities {
    /// The node's clock can be set independently of the others (false on the
    /// local cluster: all namespaces share one real-time clock).
    pub can_skew_clock: bool,
    /// `tc qdisc ... netem` works (packet delay, loss, reordering).
    pub has_netem: bool,
    /// iptables is there to cut the network.
    pub has_iptables: bool,
    /// The node shares its kernel and most of its filesystem with other nodes
    /// (the local cluster): only its work dir and /root are its own.
    pub shares_host: bool,
}

/// One machine of a cluster, whichever kind. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Node {
    name: String,
    host: String,
    remote: Arc<dyn Remote>,
    capabilities: Capabilities,
    work_dir: String,
}

impl Node {
    /// A node named `name`, reached by clients and peers at `host`, with
    /// commands run through `remote`. `work_dir` is a directory that belongs
    /// to this node alone, where databases keep their files.
    pub fn new(
        name: &str,
        host: &str,
        remote: Arc<dyn Remote>,
        capabilities: Capabilities,
        work_dir: &str,
    ) -> Self {
        Node {
            name: name.to_string(),
            host: host.to_string(),
            remote,
            capabilities,
            work_dir: work_dir.to_string(),
        }
    }

    /// The node's name (`n1`, or the host name for real hosts).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The address (or DNS name) clients and other nodes use to reach it.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// `host:port` for a socket or URL on this node (an IPv6 literal in
    /// brackets).
    pub fn host_port(&self, port: u16) -> String {
        format!("{}:{port}", url_host(&self.host))
    }

    /// What the node can do.
    pub fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    /// A directory that belongs to this node alone (`/opt/faultline`): on the
    /// local cluster it is a per-node directory mounted there.
    pub fn work_dir(&self) -> &str {
        &self.work_dir
    }

    /// The remote that runs commands on this node.
    pub fn remote(&self) -> &Arc<dyn Remote> {
        &self.remote
    }

    /// [`Node::exec_timeout`] for async code: runs on tokio's blocking pool.
    pub async fn exec_async(
        &self,
        command: String,
        timeout: Duration,
    ) -> Result<Output, ControlError> {
        self.blocking(command, move |node, c| node.exec_timeout(c, timeout))
            .await
    }

    /// [`Node::run_timeout`] for async code: runs on tokio's blocking pool.
    pub async fn run_async(
        &self,
        command: String,
        timeout: Duration,
    ) -> Result<String, ControlError> {
        self.blocking(command, move |node, c| node.run_timeout(c, timeout))
            .await
    }

    /// Runs `f(node, command)` on tokio's blocking pool (ssh2 blocks); a
    /// task that dies becomes an error naming the node and the command.
    async fn blocking<T: Send + 'static>(
        &self,
        command: String,
        f: impl FnOnce(&Node, &str) -> Result<T, ControlError> + Send + 'static,
    ) -> Result<T, ControlError> {
        let node = self.clone();
        let shown = command.clone();
        tokio::task::spawn_blocking(move || f(&node, &command))
            .await
            .unwrap_or_else(|e| {
                Err(ControlError::new(
                    &self.name,
                    &shown,
                    control::ErrorKind::Session(format!("the SSH task failed: {e}")),
                ))
            })
    }

    /// Runs a shell command with the default timeout; see [`Remote::exec`].
    pub fn exec(&self, command: &str) -> Result<Output, ControlError> {
        self.remote.exec(command)
    }

    /// Runs a shell command with a timeout; see [`Remote::exec_timeout`].
    pub fn exec_timeout(&self, command: &str, timeout: Duration) -> Result<Output, ControlError> {
        self.remote.exec_timeout(command, timeout)
    }

    /// Runs a command that must succeed and returns its stdout; see
    /// [`Remote::run`].
    pub fn run(&self, command: &str) -> Result<String, ControlError> {
        self.remote.run(command)
    }

    /// [`Node::run`] with an explicit timeout.
    pub fn run_timeout(&self, command: &str, timeout: Duration) -> Result<String, ControlError> {
        self.remote.run_timeout(command, timeout)
    }

    /// Copies a local file to the node; see [`Remote::upload`].
    pub fn upload(&self, local: &Path, remote: &str, mode: i32) -> Result<(), ControlError> {
        self.remote.upload(local, remote, mode)
    }

    /// Copies a file from the node; see [`Remote::download`].
    pub fn download(&self, remote: &str, local: &Path) -> Result<(), ControlError> {
        self.remote.download(remote, local)
    }
}

/// Which kind of cluster the nodes belong to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterKind {
    /// Real machines reached over SSH.
    Hosts,
    /// The embedded local cluster kept in this state directory.
    Local {
        /// Where its state (nodes, pids, keys) lives.
        state_dir: PathBuf,
        /// The nodes' subnet.
        subnet: Subnet,
        /// The bridge's address: the controller as the nodes see it. A
        /// network fault must never cut it, or the controller loses its
        /// nodes.
        bridge_ip: std::net::Ipv4Addr,
    },
}

/// The nodes of one test.
#[derive(Debug, Clone)]
pub struct Cluster {
    nodes: Vec<Node>,
    kind: ClusterKind,
    login: Option<LoginRecord>,
}

/// Why a cluster could not be built, reached or removed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// Building namespaces needs root.
    #[error("the local cluster needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN): run as root")]
    NotRoot,
    /// A program the local cluster needs is not installed.
    #[error("`{program}` not found: install the Debian package `{package}` (apt-get install -y {package})")]
    Missing {
        /// The program looked for.
        program: String,
        /// The Debian package that provides it.
        package: String,
    },
    /// The requested subnet overlaps a route that already exists.
    #[error("subnet {subnet} clashes with existing routes: {}; {fix}", routes.join(" | "))]
    SubnetClash {
        /// The subnet asked for.
        subnet: String,
        /// The clashing lines of `ip route`.
        routes: Vec<String>,
        /// What to do: pick another subnet, or take down the local cluster
        /// (named by its prefix) whose bridge holds the routes.
        fix: String,
    },
    /// A bad request (node count, names, flags).
    #[error("{0}")]
    Invalid(String),
    /// A step of building or removing the local cluster failed.
    #[error("{step}: {reason}")]
    Setup {
        /// What was being done.
        step: String,
        /// What went wrong.
        reason: String,
    },
    /// No local cluster is recorded in the state directory.
    #[error("no local cluster is up (no state in {0}); run `faultline cluster up`")]
    NotUp(PathBuf),
    /// One or more nodes failed.
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Nodes(Vec<ControlError>),
}

impl From<ControlError> for ClusterError {
    fn from(e: ControlError) -> Self {
        ClusterError::Nodes(vec![e])
    }
}

/// How to reach real hosts.
#[derive(Debug, Clone)]
pub struct HostsSpec {
    /// Host names or addresses; each is also the node's name.
    pub hosts: Vec<String>,
    /// Login options shared by all hosts.
    pub ssh: SshOptions,
    /// The per-node directory databases use (default `/opt/faultline`).
    pub work_dir: String,
}

/// The work directory on every node, unless told otherwise.
pub const DEFAULT_WORK_DIR: &str = "/opt/faultline";

impl HostsSpec {
    /// Hosts with the given SSH options and the default work directory.
    pub fn new(hosts: Vec<String>, ssh: SshOptions) -> Self {
        HostsSpec {
            hosts,
            ssh,
            work_dir: DEFAULT_WORK_DIR.to_string(),
        }
    }
}

/// Parses a nodes file: one host per line; blank lines and `#` comments are
/// ignored. Errors name the line.
pub fn parse_nodes_file(text: &str) -> Result<Vec<String>, String> {
    let mut hosts = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        validate_host(line).map_err(|e| format!("line {}: {e}", i + 1))?;
        hosts.push(line.to_string());
    }
    Ok(hosts)
}

/// Checks that a host name is one word that SSH and a shell can take.
pub fn validate_host(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("empty host name".into());
    }
    if !host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.:[]".contains(&b))
    {
        return Err(format!("{host:?} is not a host name or address"));
    }
    Ok(())
}

impl Cluster {
    /// A cluster of already built nodes.
    pub fn new(nodes: Vec<Node>, kind: ClusterKind) -> Self {
        Cluster {
            nodes,
            kind,
            login: None,
        }
    }

    /// The same cluster, recording how its nodes are logged in to (see
    /// [`Cluster::login`]).
    pub fn with_login(mut self, login: LoginRecord) -> Self {
        self.login = Some(login);
        self
    }

    /// How the nodes are logged in to (user, port, jump host, kinds of
    /// authentication; never a secret), when known: a run writes it to
    /// `test.json`.
    pub fn login(&self) -> Option<&LoginRecord> {
        self.login.as_ref()
    }

    /// Connects to real hosts, all at once, and asks each what it can do.
    /// Fails naming every host that could not be reached, or where a user
    /// other than root cannot use `sudo -n` (before anything runs).
    pub fn hosts(spec: &HostsSpec) -> Result<Cluster, ClusterError> {
        if spec.hosts.is_empty() {
            return Err(ClusterError::Invalid("no hosts given".into()));
        }
        for h in &spec.hosts {
            validate_host(h).map_err(ClusterError::Invalid)?;
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = spec.hosts.iter().find(|h| !seen.insert(h.as_str())) {
            return Err(ClusterError::Invalid(format!("host {dup} is listed twice")));
        }
        let results = control::parallel(&spec.hosts, |host| {
            let remote = SshRemote::new(host, host, spec.ssh.clone());
            remote.connect()?;
            let probe = "if [ -d /sys/module/sch_netem ] || modinfo sch_netem >/dev/null 2>&1; \
                         then echo netem; fi; command -v tc >/dev/null 2>&1 && echo tc; \
                         command -v iptables >/dev/null 2>&1 && echo iptables; \
                         [ -e /etc/faultline/shared-clock ] && echo shared-clock; true";
            let found = remote.run(probe)?;
            let has = |w: &str| found.lines().any(|l| l.trim() == w);
            let caps = Capabilities {
                // A node that shares its kernel with another machine (an
                // isolated local node, `local::isolated::SHARED_CLOCK_MARKER`)
                // shares its clock too: `date -s` there would set that
                // machine's.
                can_skew_clock: !has("shared-clock"),
                has_netem: has("netem") && has("tc"),
                has_iptables: has("iptables"),
                shares_host: false,
            };
            Ok::<_, ControlError>(Node::new(
                host,
                host,
                Arc::new(remote),
                caps,
                &spec.work_dir,
            ))
        });
        let (nodes, errors) = split_results(results);
        if !errors.is_empty() {
            return Err(ClusterError::Nodes(errors));
        }
        Ok(Cluster::new(nodes, ClusterKind::Hosts).with_login(spec.ssh.record()))
    }

    /// Attaches to the local cluster recorded in `state_dir` (built by
    /// [`local::up`]) and connects to every node.
    pub fn local(state_dir: &Path) -> Result<Cluster, ClusterError> {
        local::attach(state_dir)
    }

    /// The nodes, in order.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The node with this name.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// Which kind of cluster this is.
    pub fn kind(&self) -> &ClusterKind {
        &self.kind
    }

    /// The address the nodes reach the controller at, when known (the
    /// bridge of the local cluster). Partitions must leave it alone.
    pub fn controller_addr(&self) -> Option<std::net::IpAddr> {
        match &self.kind {
            ClusterKind::Local { bridge_ip, .. } => Some((*bridge_ip).into()),
            ClusterKind::Hosts => None,
        }
    }

    /// Runs `f` on every node at once (a thread per node) and returns the
    /// results in node order.
    pub fn on_all<T: Send>(&self, f: impl Fn(&Node) -> T + Sync) -> Vec<T> {
        control::parallel(&self.nodes, f)
    }

    /// Runs a command that must succeed on every node at once; returns each
    /// node's stdout in node order, or every node's error.
    pub fn run_all(&self, command: &str) -> Result<Vec<String>, ClusterError> {
        let (outs, errors) = split_results(self.on_all(|n| n.run(command)));
        if errors.is_empty() {
            Ok(outs)
        } else {
            Err(ClusterError::Nodes(errors))
        }
    }
}

/// Separates successes from errors, keeping order.
pub(crate) fn split_results<T, E>(results: Vec<Result<T, E>>) -> (Vec<T>, Vec<E>) {
    let mut ok = Vec::new();
    let mut errors = Vec::new();
    for r in results {
        match r {
            Ok(v) => ok.push(v),
            Err(e) => errors.push(e),
        }
    }
    (ok, errors)
}

/// A host as it is written before `:port` in an address or URL: IPv6
/// literals need brackets, names and IPv4 addresses stay as they are.
pub fn url_host(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_file() {
        let hosts = parse_nodes_file("# comment\nn1\n\n  n2.example.com # db\n10.0.0.3\n").unwrap();
        assert_eq!(hosts, vec!["n1", "n2.example.com", "10.0.0.3"]);
        let err = parse_nodes_file("n1\nbad host\n").unwrap_err();
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn hosts_are_validated_before_connecting() {
        let spec = HostsSpec::new(vec!["a;rm -rf /".into()], SshOptions::default());
        assert!(matches!(
            Cluster::hosts(&spec),
            Err(ClusterError::Invalid(_))
        ));
        let spec = HostsSpec::new(vec!["a".into(), "a".into()], SshOptions::default());
        let err = Cluster::hosts(&spec).unwrap_err().to_string();
        assert!(err.contains("twice"), "{err}");
        let spec = HostsSpec::new(vec![], SshOptions::default());
        assert!(Cluster::hosts(&spec).is_err());
    }

    #[test]
    fn ipv6_hosts_get_brackets_before_a_port() {
        assert_eq!(url_host("10.0.0.1"), "10.0.0.1");
        assert_eq!(url_host("db.example"), "db.example");
        assert_eq!(url_host("fd00::1"), "[fd00::1]");
        assert_eq!(url_host("[fd00::1]"), "[fd00::1]");
    }

    #[test]
    fn unreachable_host_is_named() {
        // Port 1 on loopback: nothing listens, the connection is refused at
        // once.
        let ssh = SshOptions {
            port: 1,
            connect_timeout: Duration::from_secs(2),
            host_keys: control::HostKeyPolicy::Insecure,
            ..SshOptions::default()
        };
        let spec = HostsSpec::new(vec!["127.0.0.1".into()], ssh);
        let err = Cluster::hosts(&spec).unwrap_err().to_string();
        assert!(
            err.contains("127.0.0.1") && err.contains("cannot connect"),
            "{err}"
        );
    }
}
