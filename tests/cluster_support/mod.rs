//! Helpers shared by the local-cluster integration tests: installing what
//! the machine needs to build a cluster, a guard that removes the cluster even when
//! a test fails, and checks that nothing was left behind.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use faultline::cluster::local::{self, LocalSpec};

pub mod apt;
pub mod isolated;

/// What the system `db` (etcd, postgres, zookeeper, redis) needs on this
/// machine for the local cluster, from its registry entry: (program, Debian
/// package) pairs for [`ensure`].
pub fn db(name: &str) -> Vec<(&'static str, &'static str)> {
    let system = faultline::system::find(name).unwrap_or_else(|| panic!("no system {name}"));
    system
        .packages()
        .iter()
        .map(|p| (p.program, p.package))
        .collect()
}

/// etcdctl, for the file-db example's client and commands.
pub const ETCDCTL: (&str, &str) = ("/usr/bin/etcdctl", "etcd-client");

/// Makes sure this machine can build a local cluster and run what `extra`
/// names: installs the missing Debian packages (the cluster's own and
/// `extra`'s) with apt-get, or panics with why it cannot. The tests calling
/// it carry `#[cfg_attr(not(faultline_root), ignore = "needs root: ...")]`,
/// so a build by another user lists them as ignored instead.
pub fn ensure(extra: &[(&str, &str)]) {
    // The cluster's prerequisites, one missing package at a time (the
    // library names the first one missing).
    for _ in 0..16 {
        match local::check_prerequisites() {
            Ok(()) => break,
            Err(faultline::cluster::ClusterError::Missing { program, package }) => {
                apt::ensure(&[(program.as_str(), package.as_str())])
            }
            Err(e) => panic!("the local cluster cannot run here: {e}"),
        }
    }
    if let Err(e) = local::check_prerequisites() {
        panic!("the local cluster cannot run here: {e}");
    }
    apt::ensure(extra);
}

/// Removes the cluster when dropped, so a failing test leaves nothing behind.
pub struct Teardown {
    pub spec: LocalSpec,
    _dir: tempfile::TempDir,
}

impl Teardown {
    /// A spec with its own state directory, prefix and subnet.
    pub fn new(prefix: &str, subnet: &str, nodes: usize) -> Teardown {
        let dir = tempfile::Builder::new()
            .prefix("faultline-test-")
            .tempdir()
            .expect("temp dir");
        let spec = LocalSpec {
            nodes,
            subnet: subnet.parse().expect("subnet"),
            prefix: prefix.into(),
            state_dir: dir.path().join("state"),
        };
        // A previous run killed halfway may have left these names behind.
        let _ = local::down(&spec.state_dir, Some(prefix));
        Teardown { spec, _dir: dir }
    }

    pub fn state_dir(&self) -> PathBuf {
        self.spec.state_dir.clone()
    }
}

impl Drop for Teardown {
    fn drop(&mut self) {
        if let Err(e) = local::down(&self.spec.state_dir, Some(&self.spec.prefix)) {
            eprintln!("teardown of {} failed: {e}", self.spec.prefix);
        }
    }
}

/// A local cluster a test drives through the `faultline` binary (`cluster
/// up`, `run`, `heal`, ...) in a state directory of its own.
///
/// Made before `cluster up`: it first removes whatever a run of the same
/// test that was killed halfway left under its prefix (namespaces, links,
/// the processes in them), which `cluster up` would otherwise refuse as
/// another cluster's. Dropped, even by a failing test, it heals (when
/// asked), stops the databases it was given and takes the cluster down.
/// Every test names its clusters with a prefix and a subnet no other test
/// file uses (tests/cluster_names.rs checks it), so a leftover of one test
/// never stands in another's way.
pub struct CliCluster {
    state: PathBuf,
    prefix: String,
    dbs: Vec<String>,
    heal: bool,
}

impl CliCluster {
    /// The guard of the cluster with `prefix` whose state is in `state`;
    /// removes the prefix's leftovers now.
    pub fn new(state: &Path, prefix: &str) -> CliCluster {
        faultline(state, &["cluster", "down", "--name-prefix", prefix]);
        CliCluster {
            state: state.to_path_buf(),
            prefix: prefix.to_string(),
            dbs: Vec::new(),
            heal: false,
        }
    }

    /// Also stops `db` (`faultline db down --db DB`) when dropped.
    pub fn db(mut self, db: &str) -> CliCluster {
        self.dbs.push(db.to_string());
        self
    }

    /// Also runs `faultline heal` first when dropped.
    pub fn heal(mut self) -> CliCluster {
        self.heal = true;
        self
    }
}

impl Drop for CliCluster {
    fn drop(&mut self) {
        if self.heal {
            faultline(&self.state, &["heal"]);
        }
        for db in &self.dbs {
            faultline(&self.state, &["db", "down", "--db", db]);
        }
        faultline(
            &self.state,
            &["cluster", "down", "--name-prefix", &self.prefix],
        );
    }
}

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().expect(program);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Everything of the cluster that still exists: namespaces, links,
/// processes whose command line mentions the state dir or the subnet, and
/// listening sockets on the subnet. Empty means clean.
pub fn leftovers(prefix: &str, state_dir: &Path, subnet_prefix: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in run("ip", &["netns", "list"]).lines() {
        if line.starts_with(&format!("{prefix}-")) {
            found.push(format!("netns {line}"));
        }
    }
    for line in run("ip", &["-o", "link", "show"]).lines() {
        if let Some(name) = line.split(':').nth(1) {
            if name.trim().starts_with(&format!("{prefix}-")) {
                found.push(format!("link {}", name.trim()));
            }
        }
    }
    let marker = state_dir.display().to_string();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(pid) = name
                .to_str()
                .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
            else {
                continue;
            };
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let zombie = stat
                .rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'));
            if !zombie && (cmd.contains(&marker) || cmd.contains(subnet_prefix)) {
                found.push(format!("process {pid}: {cmd}"));
            }
        }
    }
    for line in run("ss", &["-Hltn"]).lines() {
        if line.contains(subnet_prefix) {
            found.push(format!("socket {line}"));
        }
    }
    found
}

/// One HTTP/1.0 request from the controller; returns (status, body).
pub fn http(
    host: &str,
    port: u16,
    method: &str,
    path: &str,
    body: &str,
) -> Result<(u16, String), String> {
    let addr = format!("{host}:{port}")
        .parse()
        .map_err(|e| format!("{e}"))?;
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let req = format!(
        "{method} {path} HTTP/1.0\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).map_err(|e| e.to_string())?;
    let (head, body) = raw.split_once("\r\n\r\n").ok_or("malformed answer")?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or("malformed status")?;
    Ok((code, body.to_string()))
}

/// Runs the faultline binary with `args` and `FAULTLINE_STATE_DIR` set to
/// `state_dir`; returns (exit code, stdout, stderr).
pub fn faultline(state_dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(args)
        .env("FAULTLINE_STATE_DIR", state_dir)
        .output()
        .expect("run faultline");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Standard base64, which the etcd JSON gateway uses for keys and values.
pub fn b64(data: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// A put through `node`'s etcd JSON gateway.
pub fn etcd_put(node: &faultline::cluster::Node, key: &str, value: &str) -> Result<(), String> {
    let body = format!(r#"{{"key":"{}","value":"{}"}}"#, b64(key), b64(value));
    let (code, answer) = http(node.host(), 2379, "POST", "/v3/kv/put", &body)?;
    if code == 200 {
        Ok(())
    } else {
        Err(format!("put on {} answered {code}: {answer}", node.name()))
    }
}
