//! `faultline cluster`: build, inspect and remove the embedded local cluster;
//! and the node flags (`--nodes`, `--ssh-user`, ...) that every subcommand
//! working on a cluster shares.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Subcommand;

use crate::cluster::local::{self, isolated, LocalSpec, DEFAULT_PREFIX, DEFAULT_SUBNET};
use crate::cluster::{parse_nodes_file, Cluster, HostsSpec, Subnet};
use crate::control::{HostKeyPolicy, JumpHost, Password, SshOptions};
use crate::db::{self, Db};
use crate::system::etcd::{Etcd, EtcdOptions};

/// Cluster subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Build the local cluster: N nodes, each a network namespace on a bridge
    /// with its own pid/uts/mount namespaces and sshd. Idempotent.
    Up(UpArgs),
    /// Show the local cluster's nodes and whether they run.
    Status(StatusArgs),
    /// Remove the local cluster: nodes, namespaces, veths, bridge, state.
    /// Safe to run twice or after a crash.
    Down(DownArgs),
    /// Measure: 5-node cluster with etcd healthy, and command latency over a
    /// kept connection. Builds and removes its own cluster.
    #[command(hide = true)]
    Bench(BenchArgs),
}

/// Where the local cluster's state lives.
#[derive(clap::Args, Debug, Clone)]
pub struct StateArgs {
    /// State directory (default: $FAULTLINE_STATE_DIR, else
    /// /run/faultline/cluster).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
}

impl StateArgs {
    /// The state directory these flags name.
    pub fn dir(&self) -> PathBuf {
        self.state_dir
            .clone()
            .unwrap_or_else(local::default_state_dir)
    }
}

/// `cluster status` flags.
#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// Print what driving the nodes as real hosts takes, as JSON:
    /// {"nodes": [{"name", "address"}...], "ssh_user", "ssh_key",
    /// "known_hosts", "isolated", "healthy"}.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    state: StateArgs,
}

/// `cluster up` flags.
#[derive(clap::Args, Debug)]
pub struct UpArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 5)]
    nodes: usize,
    /// Subnet of the bridge (.1) and the nodes (.11, .12, ...) [default:
    /// 10.77.0.0/24; with --isolated 10.79.0.0/24].
    #[arg(long)]
    subnet: Option<String>,
    /// Prefix of namespace and interface names (<prefix>-n1, <prefix>-br)
    /// [default: fl; with --isolated fli].
    #[arg(long)]
    name_prefix: Option<String>,
    /// Give every node a root filesystem of its own (a shared Debian base,
    /// built once by debootstrap and cached, under a writable layer per
    /// node), a non-root user `faultline` with sudo, root login refused,
    /// and the databases' packages in a local apt repository: machines of
    /// their own, to drive as real hosts (see `cluster status --json`).
    #[arg(long)]
    isolated: bool,
    /// With --isolated: the Debian packages offered to the nodes, with what
    /// they depend on, comma-separated [default: those of every built-in
    /// database].
    #[arg(long, value_delimiter = ',', requires = "isolated")]
    offer: Vec<String>,
    /// With --isolated: where the base and the repository are cached.
    #[arg(long, default_value = isolated::DEFAULT_CACHE_DIR, requires = "isolated")]
    cache_dir: PathBuf,
    /// With --isolated: the Debian mirror the base is built from [default:
    /// the one this machine's apt sources use].
    #[arg(long, requires = "isolated")]
    mirror: Option<String>,
    #[command(flatten)]
    state: StateArgs,
}

/// The default subnet of an isolated cluster: apart from the plain one's,
/// so both can be up at once.
pub const ISOLATED_SUBNET: &str = "10.79.0.0/24";
/// The default name prefix of an isolated cluster.
pub const ISOLATED_PREFIX: &str = "fli";

/// `cluster down` flags.
#[derive(clap::Args, Debug)]
pub struct DownArgs {
    /// Also sweep namespaces and links named with this prefix when no state
    /// records them (after the state directory was lost).
    #[arg(long)]
    name_prefix: Option<String>,
    #[command(flatten)]
    state: StateArgs,
}

/// `cluster bench` flags.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 5)]
    nodes: usize,
    /// Subnet for the bench cluster.
    #[arg(long, default_value = "10.78.250.0/24")]
    subnet: String,
    /// Commands to time over the kept connection.
    #[arg(long, default_value_t = 200)]
    commands: usize,
    /// State directory of the bench cluster.
    #[arg(long, default_value = "/run/faultline/bench")]
    state_dir: PathBuf,
}

/// Flags that say which nodes to work on: real hosts over SSH, or (without
/// `--nodes`/`--nodes-file`) the local cluster.
#[derive(clap::Args, Debug, Clone)]
pub struct NodeArgs {
    /// Real hosts, comma-separated (n1,n2,n3). Without it, the local cluster.
    #[arg(long = "nodes", value_delimiter = ',', conflicts_with = "nodes_file")]
    pub hosts: Vec<String>,
    /// A file with one host per line (# comments allowed).
    #[arg(long)]
    pub nodes_file: Option<PathBuf>,
    /// SSH login user.
    #[arg(long, default_value = "root")]
    pub ssh_user: String,
    /// SSH private key (ed25519 or RSA); default ~/.ssh/id_ed25519, id_rsa.
    #[arg(long)]
    pub ssh_key: Option<PathBuf>,
    /// A file whose first line is the login password, tried after the keys
    /// (and on the jump host too). It must be readable by its owner alone
    /// (chmod 600). Without it, $FAULTLINE_SSH_PASSWORD, if set. Never
    /// logged nor recorded: test.json says only that a password was offered.
    #[arg(long, value_name = "FILE")]
    pub ssh_password_file: Option<PathBuf>,
    /// Reach the nodes through this host, as OpenSSH's -J: log in there
    /// (as USER, default the --ssh-user, with the same key or password;
    /// its host key checked like the nodes'), and open the connection to
    /// each node's SSH port from there. Only SSH goes through it: clients
    /// still connect to the database ports directly.
    #[arg(long, value_name = "[USER@]HOST[:PORT]")]
    pub ssh_proxy_jump: Option<JumpHost>,
    /// SSH port.
    #[arg(long, default_value_t = 22)]
    pub ssh_port: u16,
    /// Run commands through `sudo -n` (needs passwordless sudo). Implied
    /// by a --ssh-user other than root: faultline installs packages, cuts
    /// networks and signals daemons, which only root may do.
    #[arg(long)]
    pub sudo: bool,
    /// Add unknown host keys to known_hosts instead of refusing them.
    #[arg(long)]
    pub accept_new_host_keys: bool,
    /// known_hosts file (default ~/.ssh/known_hosts).
    #[arg(long)]
    pub known_hosts: Option<PathBuf>,
    /// Seconds allowed to connect and log in to a node.
    #[arg(long, default_value_t = 10)]
    pub connect_timeout: u64,
    #[command(flatten)]
    pub state: StateArgs,
}

impl NodeArgs {
    /// Connects to the nodes these flags name.
    pub fn cluster(&self) -> anyhow::Result<Cluster> {
        let mut hosts = self.hosts.clone();
        if let Some(f) = &self.nodes_file {
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("reading nodes file {}", f.display()))?;
            hosts = parse_nodes_file(&text).map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
            if hosts.is_empty() {
                bail!("{}: no hosts in the file", f.display());
            }
        }
        if hosts.is_empty() {
            let dir = self.state.dir();
            return Ok(Cluster::local(&dir)?);
        }
        Ok(Cluster::hosts(&HostsSpec::new(hosts, self.ssh_options()?))?)
    }

    /// The jump host, when it is also one of the nodes given (by name, or
    /// by an address both resolve to).
    pub fn jump_host_among_nodes(&self) -> Option<String> {
        use std::net::ToSocketAddrs;
        let jump = self.ssh_proxy_jump.as_ref()?;
        let addrs = |h: &str| -> Vec<std::net::IpAddr> {
            (h, 22)
                .to_socket_addrs()
                .map(|a| a.map(|a| a.ip()).collect())
                .unwrap_or_default()
        };
        let jump_addrs = addrs(&jump.host);
        let mut hosts = self.hosts.clone();
        if let Some(f) = &self.nodes_file {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            hosts.extend(parse_nodes_file(&text).unwrap_or_default());
        }
        hosts
            .iter()
            .any(|h| *h == jump.host || addrs(h).iter().any(|a| jump_addrs.contains(a)))
            .then(|| jump.to_string())
    }

    /// The login password: the first line of --ssh-password-file, else
    /// $FAULTLINE_SSH_PASSWORD. A file others may read is refused, with
    /// the fix.
    fn password(&self) -> anyhow::Result<Option<Password>> {
        let Some(file) = &self.ssh_password_file else {
            return Ok(std::env::var("FAULTLINE_SSH_PASSWORD")
                .ok()
                .filter(|p| !p.is_empty())
                .map(Password::new));
        };
        use std::os::unix::fs::MetadataExt;
        let shown = file.display();
        let mode = std::fs::metadata(file)
            .with_context(|| format!("--ssh-password-file {shown}"))?
            .mode();
        if mode & 0o077 != 0 {
            bail!(
                "--ssh-password-file {shown}: the file is open to its group or others \
                 (mode {:03o}); a password file must be its owner's alone: chmod 600 {shown}",
                mode & 0o777
            );
        }
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("--ssh-password-file {shown}"))?;
        let first = text.lines().next().unwrap_or("");
        if first.is_empty() {
            bail!(
                "--ssh-password-file {shown}: the first line is empty; it must hold the password"
            );
        }
        Ok(Some(Password::new(first)))
    }

    /// The SSH options these flags give real hosts.
    fn ssh_options(&self) -> anyhow::Result<SshOptions> {
        let defaults = SshOptions::default();
        let known = match (&self.known_hosts, &defaults.host_keys) {
            (Some(k), _) => k.clone(),
            (None, HostKeyPolicy::Verify(k)) => k.clone(),
            (None, _) => PathBuf::from("/root/.ssh/known_hosts"),
        };
        Ok(SshOptions {
            user: self.ssh_user.clone(),
            port: self.ssh_port,
            key: self.ssh_key.clone(),
            password: self.password()?,
            proxy_jump: self.ssh_proxy_jump.clone(),
            host_keys: if self.accept_new_host_keys {
                HostKeyPolicy::AcceptNew(known)
            } else {
                HostKeyPolicy::Verify(known)
            },
            sudo: self.sudo || self.ssh_user != "root",
            connect_timeout: Duration::from_secs(self.connect_timeout.max(1)),
            ..defaults
        })
    }
}

fn parse_subnet(s: &str) -> anyhow::Result<Subnet> {
    s.parse()
        .map_err(|e: String| anyhow::anyhow!("--subnet: {e}"))
}

/// Runs a `cluster` subcommand.
pub fn run(c: Command) -> anyhow::Result<i32> {
    match c {
        Command::Up(a) => {
            let (subnet, prefix) = if a.isolated {
                (ISOLATED_SUBNET, ISOLATED_PREFIX)
            } else {
                (DEFAULT_SUBNET, DEFAULT_PREFIX)
            };
            let spec = LocalSpec {
                nodes: a.nodes,
                subnet: parse_subnet(a.subnet.as_deref().unwrap_or(subnet))?,
                prefix: a.name_prefix.unwrap_or_else(|| prefix.to_string()),
                state_dir: a.state.dir(),
            };
            let t0 = Instant::now();
            let cluster = if a.isolated {
                let mut iso = isolated::IsolatedSpec::new(if a.offer.is_empty() {
                    builtin_packages()
                } else {
                    a.offer
                })?;
                iso.cache_dir = a.cache_dir;
                iso.mirror = a.mirror;
                local::up_isolated(&spec, &iso)?
            } else {
                local::up(&spec)?
            };
            println!(
                "local cluster{} up in {:.2} s (state in {})",
                if a.isolated { " (isolated)" } else { "" },
                t0.elapsed().as_secs_f64(),
                spec.state_dir.display()
            );
            for n in cluster.nodes() {
                println!("  {}  {}", n.name(), n.host());
            }
            Ok(0)
        }
        Command::Status(a) => {
            let dir = a.state.dir();
            let Some(st) = local::status(&dir)? else {
                if a.json {
                    bail!("no local cluster (no state in {})", dir.display());
                }
                println!("no local cluster (no state in {})", dir.display());
                return Ok(1);
            };
            if a.json {
                println!("{}", serde_json::to_string_pretty(&status_json(&dir, &st))?);
                return Ok(if st.healthy() { 0 } else { 1 });
            }
            if let Some(iso) = &st.state.isolated {
                println!(
                    "isolated nodes: base {}, packages from {}, login {} with sudo",
                    iso.base.display(),
                    iso.repo.display(),
                    iso.user
                );
            }
            println!(
                "local cluster {} on {} (bridge {} at {}), netem: {}",
                st.state.prefix,
                st.state.subnet,
                st.state.bridge,
                st.state.bridge_ip,
                if st.state.has_netem { "yes" } else { "no" }
            );
            for n in &st.nodes {
                let pid = n.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into());
                let state = match (n.running, n.ssh_listening) {
                    (true, true) => "up",
                    (true, false) => "running, sshd not answering",
                    _ => "down",
                };
                println!("  {:<4} {:<15} pid {:<8} {state}", n.name, n.ip, pid);
            }
            Ok(if st.healthy() { 0 } else { 1 })
        }
        Command::Down(a) => {
            let dir = a.state.dir();
            // Not while a run (or db up, heal) uses the cluster.
            let _lease = if dir.is_dir() {
                let lease = crate::cluster::lease::acquire_local(&dir, "cluster down")?;
                if let Some(note) = lease.note() {
                    eprintln!("note: {note}");
                }
                Some(lease)
            } else {
                None
            };
            let report = local::down(&dir, a.name_prefix.as_deref())?;
            println!(
                "local cluster down: {} node(s) killed, {} namespace(s) and {} link(s) removed",
                report.killed,
                report.namespaces.len(),
                report.links.len()
            );
            Ok(0)
        }
        Command::Bench(a) => bench(a),
    }
}

/// The Debian packages of every built-in database, offered to isolated
/// nodes by default.
fn builtin_packages() -> Vec<String> {
    let mut packages: Vec<String> = crate::system::SYSTEMS
        .iter()
        .flat_map(|s| s.packages().iter().map(|p| p.package.to_string()))
        .collect();
    packages.sort();
    packages.dedup();
    packages
}

/// `cluster status --json`: what `faultline run --nodes A,B --ssh-user U
/// --ssh-key K --known-hosts F` takes to drive these nodes as real hosts.
fn status_json(dir: &std::path::Path, st: &local::LocalStatus) -> serde_json::Value {
    let opts = local::ssh_options(dir);
    let user = st
        .state
        .isolated
        .as_ref()
        .map_or(opts.user.clone(), |i| i.user.clone());
    let known_hosts = match &opts.host_keys {
        HostKeyPolicy::Verify(k) | HostKeyPolicy::AcceptNew(k) => Some(k.display().to_string()),
        HostKeyPolicy::Insecure => None,
    };
    serde_json::json!({
        "nodes": st.nodes.iter().map(|n| serde_json::json!({
            "name": n.name,
            "address": n.ip.to_string(),
        })).collect::<Vec<_>>(),
        "ssh_user": user,
        "ssh_key": opts.key.map(|k| k.display().to_string()),
        "known_hosts": known_hosts,
        "isolated": st.state.isolated.is_some(),
        "healthy": st.healthy(),
    })
}

fn bench(a: BenchArgs) -> anyhow::Result<i32> {
    let spec = LocalSpec {
        nodes: a.nodes,
        subnet: parse_subnet(&a.subnet)?,
        prefix: "flbench".into(),
        state_dir: a.state_dir.clone(),
    };
    // Start from nothing, so the figure includes building everything.
    local::down(&spec.state_dir, Some(&spec.prefix))?;
    let result = bench_on(&spec, a.commands);
    let down = local::down(&spec.state_dir, Some(&spec.prefix));
    result?;
    down?;
    Ok(0)
}

fn bench_on(spec: &LocalSpec, commands: usize) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let cluster = local::up(spec)?;
    let t_up = t0.elapsed();
    let etcd = Etcd::new(EtcdOptions::default(), cluster.nodes());
    db::setup(&etcd, &cluster, Duration::from_secs(30))?;
    let t_etcd = t0.elapsed();
    println!(
        "{}-node local cluster up (sshd answering, logged in): {:.2} s",
        spec.nodes,
        t_up.as_secs_f64()
    );
    println!(
        "{}-node local cluster up with etcd healthy:           {:.2} s (target < 10 s)",
        spec.nodes,
        t_etcd.as_secs_f64()
    );
    let node = &cluster.nodes()[0];
    node.run("true")?; // warm the kept session
    let mut times = Vec::with_capacity(commands);
    for _ in 0..commands.max(1) {
        let t = Instant::now();
        node.run("true")?;
        times.push(t.elapsed());
    }
    times.sort();
    let pct = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "one command over a kept connection ({} runs): median {:.2} ms, p90 {:.2} ms, max {:.2} ms (target median < 20 ms)",
        times.len(),
        ms(pct(0.5)),
        ms(pct(0.9)),
        ms(pct(1.0))
    );
    println!(
        "etcd leader: {:?}",
        etcd.primaries(cluster.nodes()).unwrap_or_default()
    );
    db::teardown(&etcd, &cluster)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        nodes: NodeArgs,
    }

    fn options(args: &[&str]) -> SshOptions {
        let mut argv = vec!["faultline"];
        argv.extend_from_slice(args);
        Flags::parse_from(argv).nodes.ssh_options().unwrap()
    }

    #[test]
    fn a_user_other_than_root_goes_through_sudo() {
        let o = options(&["--nodes", "a,b", "--ssh-user", "faultline"]);
        assert_eq!(o.user, "faultline");
        assert!(o.sudo, "a non-root user must run commands through sudo");
        let o = options(&["--nodes", "a,b"]);
        assert_eq!(o.user, "root");
        assert!(!o.sudo);
        assert!(options(&["--nodes", "a", "--sudo"]).sudo);
    }

    #[test]
    fn a_password_file_must_be_its_owners_alone_and_gives_its_first_line() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "s3cret pass\nsecond line\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        let mut argv = vec!["faultline", "--nodes", "a", "--ssh-password-file"];
        let path = file.display().to_string();
        argv.push(&path);
        let err = Flags::parse_from(&argv)
            .nodes
            .ssh_options()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("chmod 600 {path}")) && err.contains("640"),
            "{err}"
        );
        assert!(!err.contains("s3cret"), "{err}");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let o = Flags::parse_from(&argv).nodes.ssh_options().unwrap();
        assert_eq!(o.password.as_ref().map(|p| p.expose()), Some("s3cret pass"));
        assert_eq!(o.record().auth.last(), Some(&"password"));
        std::fs::write(&file, "\n").unwrap();
        let err = Flags::parse_from(&argv)
            .nodes
            .ssh_options()
            .unwrap_err()
            .to_string();
        assert!(err.contains("first line is empty"), "{err}");
    }

    #[test]
    fn a_jump_host_is_parsed_from_the_flag() {
        let o = options(&["--nodes", "a", "--ssh-proxy-jump", "ops@bastion:2200"]);
        let j = o.proxy_jump.expect("a jump host");
        assert_eq!(
            (j.user.as_deref(), j.host.as_str(), j.port),
            (Some("ops"), "bastion", 2200)
        );
    }

    #[test]
    fn a_jump_host_among_the_nodes_is_found() {
        let among = |args: &[&str]| {
            let mut argv = vec!["faultline"];
            argv.extend_from_slice(args);
            Flags::parse_from(argv).nodes.jump_host_among_nodes()
        };
        assert_eq!(
            among(&[
                "--nodes",
                "10.0.0.1,10.0.0.2",
                "--ssh-proxy-jump",
                "u@10.0.0.2"
            ])
            .as_deref(),
            Some("u@10.0.0.2:22")
        );
        assert_eq!(
            among(&["--nodes", "10.0.0.1", "--ssh-proxy-jump", "10.0.0.9"]),
            None
        );
        assert_eq!(among(&["--nodes", "10.0.0.1"]), None);
    }

    #[test]
    fn first_contact_records_host_keys_in_the_named_file() {
        let o = options(&[
            "--nodes",
            "a",
            "--accept-new-host-keys",
            "--known-hosts",
            "/tmp/kh",
        ]);
        assert_eq!(o.host_keys, HostKeyPolicy::AcceptNew("/tmp/kh".into()));
    }
}
