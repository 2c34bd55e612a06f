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
    validate(spec)?;
    if !is_root() {
        return Err(ClusterError::NotRoot);
    }
    check_prerequisites()?;
    let paths = Paths {
        dir: spec.state_dir.clone(),
    };
    let lock = StateLock::take(&paths)?;
    if let Some(st) = status(&spec.state_dir)? {
        let same = st.state.prefix == spec.prefix
            && st.state.subnet == spec.subnet
            && st.state.nodes.len() == spec.nodes;
        if st.healthy() && same {
            drop(lock);
            tracing::info!("local cluster already up in {}", spec.state_dir.display());
            return attach(&spec.state_dir);
        }
        if st.healthy() {
            return Err(ClusterError::Invalid(format!(
                "a local cluster of {} nodes on {} (prefix {}) is already up in {}; \
                 run `faultline cluster down` first",
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
    let routes = sh("ip", &["-4", "route", "show", "table", "all"])?;
    let clashes = clashing_routes(&routes, &spec.subnet, &state.bridge);
    if !clashes.is_empty() {
        return Err(ClusterError::SubnetClash {
            subnet: spec.subnet.to_string(),
            routes: clashes,
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

fn build(paths: &Paths, state: &mut LocalState) -> Result<(), ClusterError> {
    let t0 = Instant::now();
    make_keys(paths, state)?;
    make_network(state)?;
    state.has_netem = probe_netem(&state.nodes[0].netns);
    fs::create_dir_all(DEFAULT_WORK_DIR)
        .map_err(|e| setup_err(format!("creating mount point {DEFAULT_WORK_DIR}"), e))?;
    fs::create_dir_all("/run/sshd").map_err(|e| setup_err("creating /run/sshd", e))?;
    for i in 0..state.nodes.len() {
        let pid = start_node(paths, &state.nodes[i])?;
        state.nodes[i].pid = Some(pid);
        write_state(paths, state)?;
    }
    wait_for_sshd(paths, state)?;
    tracing::info!("local cluster built in {:.2} s", t0.elapsed().as_secs_f64());
    Ok(())
}

fn make_keys(paths: &Paths, state: &LocalState) -> Result<(), ClusterError> {
    let key = paths.client_key();
    if !key.exists() || !paths.dir.join(format!("{CLIENT_KEY}.pub")).exists() {
        let _ = fs::remove_file(&key);
        let key_s = key.display().to_string();
        sh(
            "ssh-keygen",
            &[
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "faultline",
                "-f",
                &key_s,
            ],
        )?;
    }
    let client_pub = fs::read_to_string(paths.dir.join(format!("{CLIENT_KEY}.pub")))
        .map_err(|e| setup_err("reading the client public key", e))?;
    fs::write(paths.authorized_keys(), &client_pub)
        .map_err(|e| setup_err("writing authorized_keys", e))?;
    let mut known = String::new();
    for node in &state.nodes {
        let dir = paths.node(&node.name);
        for sub in ["root", "work"] {
            fs::create_dir_all(dir.join(sub))
                .map_err(|e| setup_err(format!("creating {}", dir.join(sub).display()), e))?;
        }
        let host_key = dir.join("ssh_host_ed25519_key");
        let host_pub = dir.join("ssh_host_ed25519_key.pub");
        if !host_key.exists() || !host_pub.exists() {
            let _ = fs::remove_file(&host_key);
            let hk = host_key.display().to_string();
            sh(
                "ssh-keygen",
                &["-q", "-t", "ed25519", "-N", "", "-C", &node.name, "-f", &hk],
            )?;
        }
        let public = fs::read_to_string(&host_pub)
            .map_err(|e| setup_err(format!("reading {}", host_pub.display()), e))?;
        let mut words = public.split_whitespace();
        let (Some(kind), Some(blob)) = (words.next(), words.next()) else {
            return Err(setup_err(
                format!("reading {}", host_pub.display()),
                "malformed key",
            ));
        };
        known.push_str(&format!("{} {kind} {blob}\n", node.ip));
        let config = format!(
            "# sshd for faultline local node {name}\n\
             ListenAddress {ip}:22\n\
             HostKey {hk}\n\
             PidFile {dir}/sshd.pid\n\
             AuthorizedKeysFile {ak}\n\
             PermitRootLogin prohibit-password\n\
             PubkeyAuthentication yes\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             UsePAM no\n\
             UseDNS no\n\
             StrictModes no\n\
             PrintMotd no\n\
             MaxStartups 100:30:200\n\
             MaxSessions 100\n\
             Subsystem sftp internal-sftp\n",
            name = node.name,
            ip = node.ip,
            hk = host_key.display(),
            dir = dir.display(),
            ak = paths.authorized_keys().display(),
        );
        fs::write(dir.join("sshd_config"), config)
            .map_err(|e| setup_err("writing sshd_config", e))?;
    }
    fs::write(paths.known_hosts(), known).map_err(|e| setup_err("writing known_hosts", e))?;
    Ok(())
}

fn make_network(state: &LocalState) -> Result<(), ClusterError> {
    let len = state.subnet.prefix_len();
    let mut batch = format!(
        "link add {br} type bridge\naddr add {ip}/{len} dev {br}\nlink set {br} up\n",
        br = state.bridge,
        ip = state.bridge_ip
    );
    for n in &state.nodes {
        batch.push_str(&format!(
            "netns add {ns}\nlink add {v} type veth peer name eth0 netns {ns}\n\
             link set {v} master {br}\nlink set {v} up\n",
            ns = n.netns,
            v = n.veth,
            br = state.bridge
        ));
    }
    sh_input("ip", &["-batch", "-"], Some(&batch))?;
    for n in &state.nodes {
        let inner = format!(
            "addr add {ip}/{len} dev eth0\nlink set eth0 up\nlink set lo up\n",
            ip = n.ip
        );
        sh_input("ip", &["-n", &n.netns, "-batch", "-"], Some(&inner))?;
    }
    Ok(())
}

/// Whether netem works here: try it on a node's loopback.
fn probe_netem(netns: &str) -> bool {
    let ok = sh(
        "ip",
        &[
            "netns", "exec", netns, "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay",
            "1ms",
        ],
    )
    .is_ok();
    if ok {
        let _ = sh(
            "ip",
            &[
                "netns", "exec", netns, "tc", "qdisc", "del", "dev", "lo", "root",
            ],
        );
    }
    ok
}

fn start_node(paths: &Paths, node: &LocalNode) -> Result<u32, ClusterError> {
    let dir = paths.node(&node.name);
    let q = |p: PathBuf| crate::control::shell_quote(&p.display().to_string());
    // Runs as pid 1 of the node's pid namespace, in its own mount and uts
    // namespaces; sshd replaces it and so reaps whatever the node starts.
    let script = format!(
        "set -e; echo {name} > /proc/sys/kernel/hostname; \
         mount --bind {root} /root; mount --bind {work} {wd}; \
         exec {SSHD} -D -e -f {cfg}",
        name = node.name,
        root = q(dir.join("root")),
        work = q(dir.join("work")),
        wd = DEFAULT_WORK_DIR,
        cfg = q(dir.join("sshd_config")),
    );
    let log_path = dir.join("node.log");
    let log = fs::File::create(&log_path)
        .map_err(|e| setup_err(format!("creating {}", log_path.display()), e))?;
    let log2 = log
        .try_clone()
        .map_err(|e| setup_err(format!("opening {}", log_path.display()), e))?;
    let child = Command::new("ip")
        .args(["netns", "exec", &node.netns])
        .args([
            "unshare",
            "--pid",
            "--fork",
            "--mount-proc",
            "--uts",
            "--kill-child",
        ])
        .args(["sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        // Its own process group: a Ctrl-C meant for the CLI must not take
        // the cluster down with it.
        .process_group(0)
        .spawn()
        .map_err(|e| setup_err(format!("starting node {}", node.name), e))?;
    let pid = child.id();
    let mut kids = children();
    // Reap earlier children that have exited meanwhile.
    kids.retain_mut(|c| matches!(c.try_wait(), Ok(None)));
    kids.push(child);
    Ok(pid)
}

fn wait_for_sshd(paths: &Paths, state: &LocalState) -> Result<(), ClusterError> {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut waiting: BTreeSet<usize> = (0..state.nodes.len()).collect();
    while !waiting.is_empty() {
        waiting.retain(|&i| !ssh_listening(state.nodes[i].ip));
        for &i in &waiting {
            let n = &state.nodes[i];
            let alive = n.pid.is_some_and(|p| node_process_alive(paths, &n.name, p));
            if !alive {
                let log =
                    fs::read_to_string(paths.node(&n.name).join("node.log")).unwrap_or_default();
                return Err(setup_err(
                    format!("starting node {}", n.name),
                    format!(
                        "it exited; its log says: {}",
                        crate::control::tail(log.trim(), 1500)
                    ),
                ));
            }
        }
        if waiting.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            let names: Vec<_> = waiting
                .iter()
                .map(|&i| state.nodes[i].name.as_str())
                .collect();
            return Err(setup_err(
                "waiting for sshd",
                format!(
                    "nodes {} not listening on port 22 after 15 s",
                    names.join(", ")
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// The SSH options for local nodes: root, the cluster's key, host keys
/// verified against the cluster's own known_hosts.
pub fn ssh_options(state_dir: &Path) -> SshOptions {
    SshOptions {
        user: "root".into(),
        port: 22,
        key: Some(state_dir.join(CLIENT_KEY)),
        password: None,
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
    let opts = ssh_options(state_dir);
    let caps = Capabilities {
        can_skew_clock: false,
        has_netem: state.has_netem,
        has_iptables: true,
        shares_host: true,
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
    ))
}

/// What `down` removed.
#[derive(Debug, Clone, Default)]
pub struct DownReport {
    /// Node processes killed.
    pub killed: usize,
    /// Namespaces deleted.
    pub namespaces: Vec<String>,
    /// Links (bridge, veths) deleted.
    pub links: Vec<String>,
}

/// Removes the local cluster in `state_dir`: kills its nodes, deletes its
/// namespaces, veths and bridge, and its state. Safe to run twice, or after a
/// crash (the state is written before anything is built): whatever is
/// recorded, plus anything named with its prefix, is removed. With no state,
/// names with `prefix` are swept only if `prefix` is given.
pub fn down(state_dir: &Path, prefix: Option<&str>) -> Result<DownReport, ClusterError> {
    if !is_root() {
        return Err(ClusterError::NotRoot);
    }
    let paths = Paths {
        dir: state_dir.to_path_buf(),
    };
    let _lock = StateLock::take(&paths)?;
    let state = read_state(&paths).unwrap_or(None);
    let report = match (&state, prefix) {
        (Some(st), _) => remove(&paths, Some(st), &st.prefix)?,
        // Nothing recorded: sweep names only when asked to, so another
        // cluster that uses the default prefix is never touched by accident.
        (None, Some(p)) => remove(&paths, None, p)?,
        (None, None) => DownReport::default(),
    };
    for f in [
        STATE_FILE.to_string(),
        CLIENT_KEY.to_string(),
        format!("{CLIENT_KEY}.pub"),
        "known_hosts".to_string(),
        "authorized_keys".to_string(),
        // The caller's lease, if any, is over with the cluster.
        super::lease::LOCAL_LEASE.to_string(),
    ] {
        let _ = fs::remove_file(paths.dir.join(f));
    }
    let _ = fs::remove_dir_all(paths.nodes());
    let _ = fs::remove_file(paths.lock());
    // Only if empty: the directory may be the user's.
    let _ = fs::remove_dir(&paths.dir);
    Ok(report)
}

/// Names matching `<prefix>-<kind><digits>`.
fn is_ours(name: &str, prefix: &str, kind: &str) -> bool {
    name.strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('-'))
        .and_then(|r| r.strip_prefix(kind))
        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
}

fn kill_pid(pid: u32) {
    // SAFETY: kill(2) with a pid we recorded and checked to be ours.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGKILL);
    }
}

/// The children of `pid` (needs CONFIG_PROC_CHILDREN, standard on Debian).
fn child_pids(pid: u32) -> Vec<u32> {
    fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .map(|s| {
            s.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn netns_pids(ns: &str) -> Vec<u32> {
    sh("ip", &["netns", "pids", ns])
        .map(|out| {
            out.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Namespaces and links named with `prefix` that exist now.
fn leftovers(prefix: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in sh("ip", &["netns", "list"]).unwrap_or_default().lines() {
        if let Some(name) = line.split_whitespace().next() {
            if is_ours(name, prefix, "n") {
                found.push(name.to_string());
            }
        }
    }
    let bridge = format!("{prefix}-br");
    for name in link_names() {
        if name == bridge || is_ours(&name, prefix, "v") {
            found.push(name);
        }
    }
    found
}

/// The names of the links in the root namespace.
fn link_names() -> Vec<String> {
    sh("ip", &["-o", "link", "show"])
        .unwrap_or_default()
        .lines()
        // "12: fl-v1@if2: <...>" → "fl-v1"
        .filter_map(|l| l.split(':').nth(1))
        .map(|s| s.trim().split('@').next().unwrap_or("").to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Kills and deletes everything of a cluster: the recorded nodes, and every
/// namespace and link named with `prefix`.
fn remove(
    paths: &Paths,
    state: Option<&LocalState>,
    prefix: &str,
) -> Result<DownReport, ClusterError> {
    let mut report = DownReport::default();
    // 1. The nodes. SIGKILL of the node's pid-namespace init (the outer
    // unshare's child) ends every process in the node, and the unshare then
    // reaps it and exits; killing the unshare first would orphan the init,
    // and on a machine whose pid 1 does not reap it would stay a zombie.
    // The unshare itself is SIGKILLed if it lingers (with --kill-child that
    // alone also ends the node).
    let mut outer = Vec::new();
    if let Some(st) = state {
        for n in &st.nodes {
            if let Some(pid) = n.pid {
                if pid_is_node(pid, &node_marker(paths, &n.name)) {
                    for init in child_pids(pid) {
                        kill_pid(init);
                    }
                    outer.push(pid);
                    report.killed += 1;
                }
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while outer.iter().any(|&p| !is_zombie(p)) && Instant::now() < deadline {
        reap_children();
        std::thread::sleep(Duration::from_millis(5));
    }
    for &pid in &outer {
        if !is_zombie(pid) {
            kill_pid(pid);
        }
    }
    // 2. Every namespace of ours, recorded or found by name.
    let mut namespaces: BTreeSet<String> = state
        .map(|s| s.nodes.iter().map(|n| n.netns.clone()).collect())
        .unwrap_or_default();
    let listed = sh("ip", &["netns", "list"]).unwrap_or_default();
    for line in listed.lines() {
        if let Some(name) = line.split_whitespace().next() {
            if is_ours(name, prefix, "n") {
                namespaces.insert(name.to_string());
            }
        }
    }
    let existing: BTreeSet<&str> = listed
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    namespaces.retain(|ns| existing.contains(ns.as_str()));
    // Anything still running inside them (a process that escaped the pid
    // namespace teardown, e.g. started with `ip netns exec` by hand).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut left = Vec::new();
        for ns in &namespaces {
            for pid in netns_pids(ns) {
                if !is_zombie(pid) {
                    kill_pid(pid);
                    left.push(pid);
                }
            }
        }
        reap_children();
        if left.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            return Err(setup_err(
                "stopping nodes",
                format!("processes {left:?} still alive 5 s after SIGKILL"),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for ns in &namespaces {
        sh("ip", &["netns", "del", ns])?;
        report.namespaces.push(ns.clone());
    }
    // 3. Links: veths (normally gone with their namespace) and the bridge.
    let bridge = format!("{prefix}-br");
    for name in link_names() {
        if name == bridge || is_ours(&name, prefix, "v") {
            // A veth vanishes with its namespace, a moment after `netns
            // del`: a failed delete only matters if the link is still there.
            if let Err(e) = sh("ip", &["link", "del", &name]) {
                if link_names().contains(&name) {
                    return Err(e);
                }
            }
            report.links.push(name);
        }
    }
    Ok(report)
}

/// Whether a node process lives. For a child of ours, asks the kernel through
/// its handle: its /proc entry can read empty while it is between `ip` and
/// `unshare` (exec), which would look like death.
fn node_process_alive(paths: &Paths, name: &str, pid: u32) -> bool {
    let mut kids = children();
    if let Some(c) = kids.iter_mut().find(|c| c.id() == pid) {
        return matches!(c.try_wait(), Ok(None));
    }
    drop(kids);
    pid_is_node(pid, &node_marker(paths, name))
}

/// Waits for node processes this process started and that have died.
fn reap_children() {
    children().retain_mut(|c| matches!(c.try_wait(), Ok(None)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_validation() {
        assert!(is_ours("fl-n1", "fl", "n"));
        assert!(is_ours("fl-n12", "fl", "n"));
        assert!(!is_ours("fl-n", "fl", "n"));
        assert!(!is_ours("flx-n1", "fl", "n"));
        assert!(!is_ours("fl-n1x", "fl", "n"));
        assert!(!is_ours("fl-v1", "fl", "n"));
        let mut spec = LocalSpec {
            state_dir: "/nonexistent".into(),
            ..LocalSpec::default()
        };
        assert!(validate(&spec).is_ok());
        spec.prefix = "Bad-Prefix".into();
        assert!(validate(&spec).is_err());
        spec.prefix = "fl".into();
        spec.nodes = 0;
        assert!(validate(&spec).is_err());
        spec.nodes = 3;
        spec.subnet = "10.77.0.0/29".parse().unwrap();
        let e = validate(&spec).unwrap_err().to_string();
        assert!(e.contains("too small"), "{e}");
    }

    #[test]
    fn plan_names_fit_interface_limits() {
        let spec = LocalSpec {
            nodes: 200,
            prefix: "abcdefgh".into(),
            state_dir: "/nonexistent".into(),
            ..LocalSpec::default()
        };
        let st = plan(&spec).unwrap();
        assert_eq!(st.bridge_ip, Ipv4Addr::new(10, 77, 0, 1));
        assert_eq!(st.nodes[0].ip, Ipv4Addr::new(10, 77, 0, 11));
        for n in &st.nodes {
            assert!(n.veth.len() <= 15 && n.netns.len() <= 15, "{}", n.veth);
        }
        assert!(st.bridge.len() <= 15);
    }

    #[test]
    fn missing_programs_name_their_package() {
        assert!(find_program("faultline-no-such-program").is_none());
        assert!(find_program("sh").is_some());
        let e = ClusterError::Missing {
            program: SSHD.into(),
            package: "openssh-server".into(),
        };
        assert!(
            e.to_string().contains("apt-get install -y openssh-server"),
            "{e}"
        );
        for (program, package) in PREREQUISITES {
            assert!(!program.is_empty() && !package.is_empty());
        }
    }

    #[test]
    fn zombie_detection_reads_state_after_name() {
        // Our own process is alive and not a zombie.
        assert!(!is_zombie(std::process::id()));
        assert!(is_zombie(u32::MAX - 1));
    }
}
