//! Isolated local nodes (`faultline cluster up --isolated`) as the tests
//! drive them: brought up through the CLI, then reached the way real hosts
//! are, with what `cluster status --json` prints (addresses, the non-root
//! user, its key and the nodes' host keys).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use faultline::control::{HostKeyPolicy, SshOptions};

use super::faultline;

/// How to reach isolated nodes, from `faultline cluster status --json`.
pub struct Access {
    /// Each node's name, in node order.
    pub names: Vec<String>,
    /// Each node's address, in node order.
    pub addresses: Vec<String>,
    /// The non-root user with passwordless sudo.
    pub user: String,
    /// Its private key.
    pub key: PathBuf,
    /// A known_hosts file with every node's host key.
    pub known_hosts: PathBuf,
}

impl Access {
    /// SSH options for `user` with the cluster's key and host keys.
    pub fn ssh_options(&self, user: &str, sudo: bool) -> SshOptions {
        SshOptions {
            user: user.to_string(),
            key: Some(self.key.clone()),
            host_keys: HostKeyPolicy::Verify(self.known_hosts.clone()),
            sudo,
            connect_timeout: Duration::from_secs(5),
            ..SshOptions::default()
        }
    }

    /// The addresses joined for `--nodes`.
    pub fn nodes_flag(&self) -> String {
        self.addresses.join(",")
    }
}

/// Brings up `nodes` isolated nodes named with `prefix` on `subnet`,
/// offering them `offer` (comma-separated Debian packages) as their local
/// apt source; installs what building them needs first. Panics with the
/// CLI's output when `cluster up` fails. Returns how to reach them and
/// what `cluster up` printed.
pub fn up(state: &Path, prefix: &str, subnet: &str, nodes: usize, offer: &str) -> (Access, String) {
    super::ensure(&[
        ("debootstrap", "debootstrap"),
        ("dpkg-scanpackages", "dpkg-dev"),
    ]);
    let count = nodes.to_string();
    let t0 = Instant::now();
    let (code, out, err) = faultline(
        state,
        &[
            "cluster",
            "up",
            "--isolated",
            "--nodes",
            &count,
            "--subnet",
            subnet,
            "--name-prefix",
            prefix,
            "--offer",
            offer,
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    eprintln!(
        "isolated {nodes}-node cluster up in {:.1} s (a first run includes building the base)",
        t0.elapsed().as_secs_f64()
    );
    (access(state), out)
}

/// What `cluster status --json` says of the isolated cluster in `state`.
pub fn access(state: &Path) -> Access {
    let (code, out, err) = faultline(state, &["cluster", "status", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("status --json is JSON");
    assert_eq!(v["isolated"], true, "{out}");
    let nodes = v["nodes"].as_array().expect("nodes");
    Access {
        names: nodes
            .iter()
            .map(|n| n["name"].as_str().expect("name").to_string())
            .collect(),
        addresses: nodes
            .iter()
            .map(|n| n["address"].as_str().expect("address").to_string())
            .collect(),
        user: v["ssh_user"].as_str().expect("ssh_user").to_string(),
        key: PathBuf::from(v["ssh_key"].as_str().expect("ssh_key")),
        known_hosts: PathBuf::from(v["known_hosts"].as_str().expect("known_hosts")),
    }
}
