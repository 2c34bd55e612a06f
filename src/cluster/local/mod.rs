//! The embedded local cluster: N nodes on this machine, each a real sshd in
//! its own namespaces.
//!
//! A node `n<i>` is:
//! - a network namespace `<prefix>-n<i>` whose `eth0` is one end of a veth
//!   pair; the other end, `<prefix>-v<i>`, sits on the bridge `<prefix>-br`,
//!   which holds the subnet's first address (the controller's side). Nodes get
//!   `.11`, `.12`, ... No forwarding and no default route: nodes reach only
//!   the bridge subnet.
//! - `unshare --pid --fork --mount-proc --uts --kill-child` around
//!   `/usr/sbin/sshd -D`: its own pid namespace (so `kill -9 -1` in a node
//!   kills only that node), hostname and mounts. An empty per-node directory
//!   is bind-mounted over `/root` (the image's shell rc files are slow) and
//!   another over [`DEFAULT_WORK_DIR`] (`/opt/faultline`), so each node
//!   has data of its own.
//!
//! Killing the outer `unshare` with SIGKILL ends the whole node (it ignores
//! SIGTERM). Everything is recorded in a state directory (default
//! `/run/faultline/cluster`, or `$FAULTLINE_STATE_DIR`): `cluster.json`
//! (nodes, addresses, pids), the client key, the host keys and known_hosts.
//! `up` and `down` are idempotent, and `down` also finds leftovers by name
//! when the state is gone.

mod build;
mod down;
pub mod isolated;
#[cfg(test)]
mod tests;

use build::*;
use down::*;
pub use down::{down, DownReport};

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{
    split_results, subnet::clashing_routes, Capabilities, Cluster, ClusterError, ClusterKind, Node,
    Subnet, DEFAULT_WORK_DIR,
};
use crate::control::{ControlError, HostKeyPolicy, SshOptions, SshRemote};

/// The state directory when `$FAULTLINE_STATE_DIR` is not set. Under /run
/// because, like the namespaces it describes, it must not survive a reboot.
pub const DEFAULT_STATE_DIR: &str = "/run/faultline/cluster";
/// The default subnet.
pub const DEFAULT_SUBNET: &str = "10.77.0.0/24";
/// The default prefix of namespace and interface names.
pub const DEFAULT_PREFIX: &str = "fl";
/// Node `n<i>` gets the subnet's host address `FIRST_NODE_HOST + i - 1`.
const FIRST_NODE_HOST: u32 = 11;
const STATE_FILE: &str = "cluster.json";
const CLIENT_KEY: &str = "id_ed25519";
const SSHD: &str = "/usr/sbin/sshd";

/// The state directory: `$FAULTLINE_STATE_DIR` or [`DEFAULT_STATE_DIR`].
pub fn default_state_dir() -> PathBuf {
    std::env::var_os("FAULTLINE_STATE_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR))
}

/// What to build.
#[derive(Debug, Clone)]
pub struct LocalSpec {
    /// How many nodes.
    pub nodes: usize,
    /// The subnet of the bridge and nodes.
    pub subnet: Subnet,
    /// Prefix of namespace and interface names (1-8 lowercase letters or
    /// digits), so several clusters can coexist.
    pub prefix: String,
    /// Where state is kept.
    pub state_dir: PathBuf,
}

impl Default for LocalSpec {
    fn default() -> Self {
        LocalSpec {
            nodes: 5,
            // The constant parses; a failure here would be a typo in it.
            subnet: DEFAULT_SUBNET.parse().unwrap_or_else(|e| panic!("{e}")),
            prefix: DEFAULT_PREFIX.to_string(),
            state_dir: default_state_dir(),
        }
    }
}

/// The recorded state of a local cluster (`cluster.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LocalState {
    /// Name prefix.
    pub prefix: String,
    /// The subnet.
    pub subnet: Subnet,
    /// The bridge's name.
    pub bridge: String,
    /// The bridge's (controller's) address.
    pub bridge_ip: Ipv4Addr,
    /// Whether netem works on this kernel.
    pub has_netem: bool,
    /// The nodes.
    pub nodes: Vec<LocalNode>,
    /// Set when every node has its own root filesystem
    /// ([`isolated`]); absent for nodes that share this machine's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolated: Option<isolated::IsolatedState>,
}

/// One node of the recorded state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LocalNode {
    /// `n1`, `n2`, ...
    pub name: String,
    /// Its network namespace.
    pub netns: String,
    /// The host end of its veth pair.
    pub veth: String,
    /// Its address.
    pub ip: Ipv4Addr,
    /// The pid of its outer `unshare`, once started.
    pub pid: Option<u32>,
}

/// What `status` found for one node.
#[derive(Debug, Clone)]
pub struct NodeStatus {
    /// The node's name.
    pub name: String,
    /// Its address.
    pub ip: Ipv4Addr,
    /// The pid of its outer `unshare`.
    pub pid: Option<u32>,
    /// The node's process is alive.
    pub running: bool,
    /// Its sshd accepts TCP connections.
    pub ssh_listening: bool,
}

/// What `status` found.
#[derive(Debug, Clone)]
pub struct LocalStatus {
    /// The recorded state.
    pub state: LocalState,
    /// Per node.
    pub nodes: Vec<NodeStatus>,
}

impl LocalStatus {
    /// Every node runs and listens.
    pub fn healthy(&self) -> bool {
        self.nodes.iter().all(|n| n.running && n.ssh_listening)
    }
}

/// Children this process started (node `unshare`s), so `down` can reap them
/// instead of leaving zombies behind.
static CHILDREN: Mutex<Vec<Child>> = Mutex::new(Vec::new());

fn children() -> std::sync::MutexGuard<'static, Vec<Child>> {
    match CHILDREN.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// Paths inside the state directory.
struct Paths {
    dir: PathBuf,
}

impl Paths {
    fn state(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }
    fn client_key(&self) -> PathBuf {
        self.dir.join(CLIENT_KEY)
    }
    fn known_hosts(&self) -> PathBuf {
        self.dir.join("known_hosts")
    }
    fn authorized_keys(&self) -> PathBuf {
        self.dir.join("authorized_keys")
    }
    fn nodes(&self) -> PathBuf {
        self.dir.join("nodes")
    }
    fn node(&self, name: &str) -> PathBuf {
        self.nodes().join(name)
    }
    fn lock(&self) -> PathBuf {
        self.dir.join(".lock")
    }
}

fn setup_err(step: impl Into<String>, reason: impl ToString) -> ClusterError {
    ClusterError::Setup {
        step: step.into(),
        reason: reason.to_string(),
    }
}

/// Holds an exclusive `flock` on the state directory, so two `up`/`down` on
/// the same directory do not interleave.
struct StateLock {
    _file: fs::File,
}

impl StateLock {
    fn take(paths: &Paths) -> Result<StateLock, ClusterError> {
        use std::os::fd::AsRawFd;
        fs::create_dir_all(&paths.dir)
            .map_err(|e| setup_err(format!("creating {}", paths.dir.display()), e))?;
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(paths.lock())
            .map_err(|e| setup_err(format!("opening {}", paths.lock().display()), e))?;
        // SAFETY: flock on an fd we own; blocks until the other holder is done.
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
        if rc != 0 {
            return Err(setup_err(
                format!("locking {}", paths.lock().display()),
                std::io::Error::last_os_error(),
            ));
        }
        Ok(StateLock { _file: f })
    }
}

/// Runs a program and returns its stdout; a failure names the command and
/// carries stderr.
fn sh(program: &str, args: &[&str]) -> Result<String, ClusterError> {
    sh_input(program, args, None)
}

fn sh_input(program: &str, args: &[&str], input: Option<&str>) -> Result<String, ClusterError> {
    let shown = format!("{program} {}", args.join(" "));
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| setup_err(&shown, e))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| setup_err(&shown, e))?;
    }
    let out = child.wait_with_output().map_err(|e| setup_err(&shown, e))?;
    if !out.status.success() {
        return Err(setup_err(
            shown,
            format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Finds a program in PATH (plus the sbin directories, which a non-login
/// root shell may lack).
fn find_program(name: &str) -> Option<PathBuf> {
    if name.starts_with('/') {
        return Path::new(name).exists().then(|| PathBuf::from(name));
    }
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file());
    found
}

/// The programs the local cluster uses and the Debian package of each.
const PREREQUISITES: &[(&str, &str)] = &[
    ("ip", "iproute2"),
    ("unshare", "util-linux"),
    ("mount", "mount"),
    (SSHD, "openssh-server"),
    ("ssh-keygen", "openssh-client"),
    ("iptables", "iptables"),
];

/// Checks every prerequisite; the error names the first missing package.
pub fn check_prerequisites() -> Result<(), ClusterError> {
    for (program, package) in PREREQUISITES {
        if find_program(program).is_none() {
            return Err(ClusterError::Missing {
                program: program.to_string(),
                package: package.to_string(),
            });
        }
    }
    Ok(())
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn validate(spec: &LocalSpec) -> Result<(), ClusterError> {
    let p = &spec.prefix;
    if p.is_empty()
        || p.len() > 8
        || !p.starts_with(|c: char| c.is_ascii_lowercase())
        || !p
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return Err(ClusterError::Invalid(format!(
            "name prefix {p:?} must be 1-8 lowercase letters or digits, starting with a letter"
        )));
    }
    if spec.nodes == 0 || spec.nodes > 200 {
        return Err(ClusterError::Invalid(format!(
            "--nodes {} is out of range (1-200)",
            spec.nodes
        )));
    }
    let last = FIRST_NODE_HOST + spec.nodes as u32 - 1;
    if spec.subnet.host(last).is_none() {
        return Err(ClusterError::Invalid(format!(
            "subnet {} is too small for {} nodes (they use host addresses .{FIRST_NODE_HOST}-.{last})",
            spec.subnet, spec.nodes
        )));
    }
    Ok(())
}

fn plan(spec: &LocalSpec) -> Result<LocalState, ClusterError> {
    let bridge_ip = spec.subnet.host(1).ok_or_else(|| {
        ClusterError::Invalid(format!("subnet {} has no host addresses", spec.subnet))
    })?;
    let nodes = (1..=spec.nodes)
        .map(|i| {
            let ip = spec
                .subnet
                .host(FIRST_NODE_HOST + i as u32 - 1)
                .ok_or_else(|| ClusterError::Invalid(format!("no address for node {i}")))?;
            Ok(LocalNode {
                name: format!("n{i}"),
                netns: format!("{}-n{i}", spec.prefix),
                veth: format!("{}-v{i}", spec.prefix),
                ip,
                pid: None,
            })
        })
        .collect::<Result<Vec<_>, ClusterError>>()?;
    Ok(LocalState {
        prefix: spec.prefix.clone(),
        subnet: spec.subnet,
        bridge: format!("{}-br", spec.prefix),
        bridge_ip,
        has_netem: false,
        nodes,
        isolated: None,
    })
}

fn read_state(paths: &Paths) -> Result<Option<LocalState>, ClusterError> {
    let path = paths.state();
    match fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| setup_err(format!("reading {}", path.display()), e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(setup_err(format!("reading {}", path.display()), e)),
    }
}

fn write_state(paths: &Paths, state: &LocalState) -> Result<(), ClusterError> {
    let path = paths.state();
    let tmp = paths.dir.join(format!("{STATE_FILE}.tmp"));
    let text = serde_json::to_string_pretty(state).map_err(|e| setup_err("encoding state", e))?;
    fs::write(&tmp, text)
        .and_then(|_| fs::rename(&tmp, &path))
        .map_err(|e| setup_err(format!("writing {}", path.display()), e))
}

/// Whether `pid` is a live (not zombie) process whose command line contains
/// `marker`, so a recycled pid is never mistaken for a node.
fn pid_is_node(pid: u32, marker: &str) -> bool {
    let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    if !String::from_utf8_lossy(&cmdline).contains(marker) {
        return false;
    }
    !is_zombie(pid)
}

fn is_zombie(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state letter follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.trim_start().starts_with(['Z', 'X']))
            .unwrap_or(false),
        Err(_) => true,
    }
}

/// The text every node's command line contains: its sshd config path.
fn node_marker(paths: &Paths, name: &str) -> String {
    paths.node(name).join("sshd_config").display().to_string()
}

fn ssh_listening(ip: Ipv4Addr) -> bool {
    TcpStream::connect_timeout(&SocketAddr::from((ip, 22)), Duration::from_millis(300)).is_ok()
}

/// Reports on the local cluster in `state_dir`; `None` when none is recorded.
pub fn status(state_dir: &Path) -> Result<Option<LocalStatus>, ClusterError> {
    let paths = Paths {
        dir: state_dir.to_path_buf(),
    };
    let Some(state) = read_state(&paths)? else {
        return Ok(None);
    };
    let nodes = state
        .nodes
        .iter()
        .map(|n| {
            let running = n
                .pid
                .is_some_and(|p| pid_is_node(p, &node_marker(&paths, &n.name)));
            NodeStatus {
                name: n.name.clone(),
                ip: n.ip,
                pid: n.pid,
                running,
                ssh_listening: running && ssh_listening(n.ip),
            }
        })
        .collect();
    Ok(Some(LocalStatus { state, nodes }))
}

/// Builds the local cluster, or attaches to it when one with the same shape is
/// already up. A broken one (a node died, a crash halfway through `up`) is
/// removed and rebuilt.
pub fn up(spec: &LocalSpec) -> Result<Cluster, ClusterError> {
    up_with(spec, None)
}

/// [`up`] for isolated nodes ([`isolated`]): each node gets its own root
/// filesystem on the base of `iso` (built and cached first if need be), the
/// packages `iso` names offered in a local repository, and a non-root login
/// user with sudo.
pub fn up_isolated(
    spec: &LocalSpec,
    iso: &isolated::IsolatedSpec,
) -> Result<Cluster, ClusterError> {
    up_with(spec, Some(iso))
}

fn up_with(
    spec: &LocalSpec,
    iso: Option<&isolated::IsolatedSpec>,
) -> Result<Cluster, ClusterError> {
    validate(spec)?;
    if !is_root() {
        return Err(ClusterError::NotRoot);
    }
    check_prerequisites()?;
    // The base and the repository are caches shared by every isolated
    // cluster, with locks of their own: made before this cluster's lock is
    // taken, so a first build (minutes) does not hold it.
    let isolated = match iso {
        Some(iso) => {
            let base = isolated::ensure_base(iso)?;
            let repo = isolated::ensure_repo(iso, &base)?;
            Some(isolated::IsolatedState {
                base,
                repo,
                user: isolated::USER.to_string(),
            })
        }
        None => None,
    };
    let paths = Paths {
        dir: spec.state_dir.clone(),
    };
    let lock = StateLock::take(&paths)?;
    if let Some(st) = status(&spec.state_dir)? {
        let same = st.state.prefix == spec.prefix
            && st.state.subnet == spec.subnet
            && st.state.nodes.len() == spec.nodes
            && st.state.isolated == isolated;
        if st.healthy() && same {
            drop(lock);
            tracing::info!("local cluster already up in {}", spec.state_dir.display());
            return attach(&spec.state_dir);
        }
        if st.healthy() {
            return Err(ClusterError::Invalid(format!(
                "a{} local cluster of {} nodes on {} (prefix {}) is already up in {}; \
                 run `faultline cluster down` first",
                if st.state.isolated.is_some() {
                    "n isolated"
                } else {
                    ""
                },
                st.state.nodes.len(),
                st.state.subnet,
                st.state.prefix,
                spec.state_dir.display()
            )));
        }
        tracing::info!("removing a broken local cluster before rebuilding it");
        remove(&paths, Some(&st.state), &st.state.prefix)?;
    }
    // Names of ours that no state records belong to something else (another
    // state dir with the same prefix): refuse rather than destroy it.
    let stray = leftovers(&spec.prefix);
    if !stray.is_empty() {
        return Err(ClusterError::Invalid(format!(
            "{} already exist but {} records no cluster: another local cluster uses the \
             prefix {p:?}; choose another --name-prefix, or remove them with \
             `faultline cluster down --name-prefix {p}`",
            stray.join(", "),
            spec.state_dir.display(),
            p = spec.prefix
        )));
    }

    let mut state = plan(spec)?;
    state.isolated = isolated;
    let routes = sh("ip", &["-4", "route", "show", "table", "all"])?;
    let clashes = clashing_routes(&routes, &spec.subnet, &state.bridge);
    if !clashes.is_empty() {
        let fix = clash_fix(&clashes);
        return Err(ClusterError::SubnetClash {
            subnet: spec.subnet.to_string(),
            routes: clashes,
            fix,
        });
    }
    // Recorded before anything is built, so `down` after a crash here finds
    // what to remove.
    write_state(&paths, &state)?;
    let built = build(&paths, &mut state);
    if let Err(e) = built {
        // Leave nothing half-built behind.
        let _ = remove(&paths, Some(&state), &state.prefix);
        return Err(e);
    }
    drop(lock);
    attach(&spec.state_dir).inspect_err(|_| {
        let _ = down(&spec.state_dir, Some(&spec.prefix));
    })
}

/// The SSH options for local nodes: root, the cluster's key, host keys
/// verified against the cluster's own known_hosts.
pub fn ssh_options(state_dir: &Path) -> SshOptions {
    SshOptions {
        user: "root".into(),
        port: 22,
        key: Some(state_dir.join(CLIENT_KEY)),
        password: None,
        proxy_jump: None,
        host_keys: HostKeyPolicy::Verify(state_dir.join("known_hosts")),
        sudo: false,
        connect_timeout: Duration::from_secs(5),
        command_timeout: Duration::from_secs(60),
        keepalive: Duration::from_secs(15),
    }
}

/// Connects to every node of the local cluster recorded in `state_dir`.
pub fn attach(state_dir: &Path) -> Result<Cluster, ClusterError> {
    let paths = Paths {
        dir: state_dir.to_path_buf(),
    };
    let state = read_state(&paths)?.ok_or_else(|| ClusterError::NotUp(state_dir.to_path_buf()))?;
    let mut opts = ssh_options(state_dir);
    if let Some(iso) = &state.isolated {
        // As on a real host: a user of its own, root through sudo.
        opts.user = iso.user.clone();
        opts.sudo = true;
    }
    let caps = Capabilities {
        can_skew_clock: false,
        has_netem: state.has_netem,
        has_iptables: true,
        shares_host: state.isolated.is_none(),
    };
    let results = crate::control::parallel(&state.nodes, |n| {
        let remote = SshRemote::new(&n.name, &n.ip.to_string(), opts.clone());
        remote.connect()?;
        Ok::<_, ControlError>(Node::new(
            &n.name,
            &n.ip.to_string(),
            Arc::new(remote),
            caps,
            DEFAULT_WORK_DIR,
        ))
    });
    let (nodes, errors) = split_results(results);
    if !errors.is_empty() {
        return Err(ClusterError::Nodes(errors));
    }
    Ok(Cluster::new(
        nodes,
        ClusterKind::Local {
            state_dir: state_dir.to_path_buf(),
            subnet: state.subnet,
            bridge_ip: state.bridge_ip,
        },
    )
    .with_login(opts.record()))
}
