//! etcd: installed from Debian's `etcd-server` package (or a binary the user
//! names, uploaded over SFTP), run as a daemon with a pid file and a log file
//! under the node's work directory, probed over HTTP from the controller.

use std::path::PathBuf;
use std::time::Duration;

use super::http;
use crate::cluster::Node;
use crate::control::shell_quote;
use crate::db::daemon::Daemon;
use crate::db::{AptPackages, Db, DbError, NodeDaemon};

/// How etcd is run.
#[derive(Debug, Clone)]
pub struct EtcdOptions {
    /// A local etcd binary to upload to every node instead of installing the
    /// Debian package.
    pub binary: Option<PathBuf>,
    /// The client port.
    pub client_port: u16,
    /// The peer port.
    pub peer_port: u16,
    /// The cluster token (keeps separate clusters apart).
    pub token: String,
    /// Extra command-line flags, e.g. `--pre-vote`.
    pub extra_args: Vec<String>,
}

impl Default for EtcdOptions {
    fn default() -> Self {
        EtcdOptions {
            binary: None,
            client_port: 2379,
            peer_port: 2380,
            token: "faultline".into(),
            extra_args: Vec::new(),
        }
    }
}

/// etcd on a fixed set of members (the cluster's nodes).
#[derive(Debug, Clone)]
pub struct Etcd {
    opts: EtcdOptions,
    /// (name, host) of every member, for `--initial-cluster`.
    members: Vec<(String, String)>,
}

impl Etcd {
    /// etcd with one member per node of `nodes`.
    pub fn new(opts: EtcdOptions, nodes: &[Node]) -> Self {
        Etcd {
            opts,
            members: nodes
                .iter()
                .map(|n| (n.name().to_string(), n.host().to_string()))
                .collect(),
        }
    }

    /// The options in use.
    pub fn options(&self) -> &EtcdOptions {
        &self.opts
    }

    /// The node's etcd directory (data, log, pid file).
    pub fn dir(&self, node: &Node) -> String {
        format!("{}/etcd", node.work_dir())
    }

    fn data_dir(&self, node: &Node) -> String {
        format!("{}/data", self.dir(node))
    }

    fn daemon(&self, node: &Node) -> Daemon {
        let dir = self.dir(node);
        Daemon::new(
            "etcd",
            &format!("{dir}/etcd.pid"),
            &format!("{dir}/etcd.log"),
        )
    }

    /// The client URL of the node (`http://host:2379`).
    pub fn client_url(&self, node: &Node) -> String {
        format!("http://{}:{}", url_host(node.host()), self.opts.client_port)
    }

    /// Every member's client URL, comma-separated (for `--endpoints`).
    pub fn endpoints(&self) -> String {
        self.members
            .iter()
            .map(|(_, h)| format!("http://{}:{}", url_host(h), self.opts.client_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn binary(&self, node: &Node) -> String {
        match self.opts.binary {
            Some(_) => format!("{}/bin/etcd", node.work_dir()),
            None => "etcd".into(),
        }
    }

    fn err(&self, node: &Node, action: &str, reason: impl ToString) -> DbError {
        DbError::Node {
            db: "etcd".into(),
            node: node.name().into(),
            action: action.into(),
            reason: reason.to_string(),
        }
    }

    /// One probe of `/health` from the controller.
    fn health(&self, node: &Node) -> Result<(), String> {
        let (code, body) = http::request(
            node.host(),
            self.opts.client_port,
            "GET",
            "/health",
            None,
            Duration::from_secs(2),
        )?;
        let v: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| format!("bad /health answer: {e}"))?;
        if code == 200 && v.get("health").and_then(|h| h.as_str()) == Some("true") {
            Ok(())
        } else {
            Err(format!("/health answered {code}: {}", body.trim()))
        }
    }

    /// The member id of the node and the id of the leader it knows, from
    /// the JSON gateway's maintenance status.
    fn status(&self, node: &Node) -> Result<(String, String), String> {
        let (code, body) = http::request(
            node.host(),
            self.opts.client_port,
            "POST",
            "/v3/maintenance/status",
            Some("{}"),
            Duration::from_secs(2),
        )?;
        if code != 200 {
            return Err(format!("status answered {code}: {}", body.trim()));
        }
        let v: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| format!("bad status answer: {e}"))?;
        // 64-bit ids come back as strings from the gateway.
        let id = v
            .pointer("/header/member_id")
            .and_then(|x| x.as_str())
            .unwrap_or("")
            .to_string();
        let leader = v
            .get("leader")
            .and_then(|x| x.as_str())
            .unwrap_or("")
            .to_string();
        Ok((id, leader))
    }
}

/// IPv6 literals need brackets inside URLs.
fn url_host(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// The flags [`Etcd`]'s start command sets (member identity, data
/// directory, URLs, initial cluster), `config-file`, which would replace
/// them all, and `wal-dir`, which would move the log out of the data
/// directory faultline wipes: a `--db-opt` may not override them.
pub const RESERVED: crate::system::Reserved = crate::system::Reserved {
    system: "etcd",
    keys: &[
        "name",
        "data-dir",
        "listen-peer-urls",
        "initial-advertise-peer-urls",
        "listen-client-urls",
        "advertise-client-urls",
        "initial-cluster",
        "initial-cluster-state",
        "initial-cluster-token",
        "config-file",
        "wal-dir",
    ],
    set_in: "on each member's command line, from the cluster's nodes",
};

impl Db for Etcd {
    fn data_folder(&self, node: &Node) -> Option<String> {
        Some(self.data_dir(node))
    }

    fn name(&self) -> &str {
        "etcd"
    }

    fn install(&self, node: &Node) -> Result<(), DbError> {
        if let Some(local) = &self.opts.binary {
            let bin = self.binary(node);
            node.run(&format!("mkdir -p {}/bin", shell_quote(node.work_dir())))?;
            node.upload(local, &bin, 0o755)?;
            let out = node.exec(&format!("{} --version", shell_quote(&bin)))?;
            if !out.success() {
                return Err(self.err(
                    node,
                    "install",
                    format!(
                        "uploaded {} does not run: {}",
                        local.display(),
                        out.stderr.trim()
                    ),
                ));
            }
            return Ok(());
        }
        crate::db::apt_install(
            self.name(),
            node,
            &AptPackages {
                what: "etcd",
                packages: &["etcd-server"],
                present: "command -v etcd >/dev/null 2>&1",
                services: &["etcd"],
                otherwise: ", or pass an etcd binary to upload (--etcd-binary)",
            },
        )
    }

    fn daemon_on(&self, node: &Node) -> Option<NodeDaemon> {
        Some(NodeDaemon {
            daemon: self.daemon(node),
            dir: self.dir(node),
        })
    }

    fn configure(&self, node: &Node) -> Result<(), DbError> {
        node.run(&format!("mkdir -p {}", shell_quote(&self.data_dir(node))))?;
        Ok(())
    }

    fn start(&self, node: &Node) -> Result<(), DbError> {
        let name = node.name();
        let host = url_host(node.host());
        let (cp, pp) = (self.opts.client_port, self.opts.peer_port);
        let initial: Vec<String> = self
            .members
            .iter()
            .map(|(n, h)| format!("{n}=http://{}:{pp}", url_host(h)))
            .collect();
        // Every flag set here is in RESERVED.
        let mut args = vec![
            self.binary(node),
            format!("--name={name}"),
            format!("--data-dir={}", self.data_dir(node)),
            format!("--listen-peer-urls=http://0.0.0.0:{pp}"),
            format!("--initial-advertise-peer-urls=http://{host}:{pp}"),
            format!("--listen-client-urls=http://0.0.0.0:{cp}"),
            format!("--advertise-client-urls=http://{host}:{cp}"),
            format!("--initial-cluster={}", initial.join(",")),
            // Ignored once the data dir exists, so a restart after a kill
            // rejoins with its old identity.
            "--initial-cluster-state=new".into(),
            format!("--initial-cluster-token={}", self.opts.token),
        ];
        args.extend(self.opts.extra_args.iter().cloned());
        let command: Vec<String> = args.iter().map(|a| shell_quote(a)).collect();
        let dir = self.dir(node);
        node.run(&format!("mkdir -p {}", shell_quote(&self.data_dir(node))))?;
        self.daemon(node).start(node, &dir, &command.join(" "))?;
        Ok(())
    }

    fn wait_healthy(&self, nodes: &[Node], timeout: Duration) -> Result<(), DbError> {
        crate::db::poll_healthy(
            "etcd",
            nodes,
            timeout,
            Duration::from_millis(50),
            |pending| crate::control::parallel(pending, |n| self.health(n)),
            |n| self.daemon(n).unhealthy_context(n, "etcd"),
        )
    }

    fn log_files(&self, node: &Node) -> Vec<String> {
        vec![self.daemon(node).log_file]
    }

    fn primaries(&self, nodes: &[Node]) -> Result<Vec<String>, DbError> {
        let statuses = crate::control::parallel(nodes, |n| self.status(n));
        let mut leaders = Vec::new();
        for (n, s) in nodes.iter().zip(statuses) {
            // A node that does not answer (killed, paused, cut off) is not
            // a primary as far as we can tell.
            if let Ok((id, leader)) = s {
                if !id.is_empty() && id == leader {
                    leaders.push(n.name().to_string());
                }
            }
        }
        Ok(leaders)
    }
}
