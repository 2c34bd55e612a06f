//! etcd: installed from Debian's `etcd-server` package (or a binary the user
//! names, uploaded over SFTP), run as a daemon with a pid file and a log file
//! under the node's work directory, probed over HTTP from the controller.

use std::time::Duration;

use super::http;
use crate::cluster::{url_host, Node};
use crate::control::shell_quote;
use crate::db::daemon::Daemon;
use crate::db::{AptPackages, Db, DbBinary, DbError, Member, Membership, NodeDaemon};
use serde_json::{json, Value};

/// How etcd is run.
#[derive(Debug, Clone)]
pub struct EtcdOptions {
    /// An etcd binary of the user's own build to upload to every node and
    /// run instead of the Debian package's (`--db-binary`).
    pub binary: Option<DbBinary>,
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

    /// The etcd program run on `node`: the uploaded one, or the package's
    /// in `PATH`.
    pub fn binary(&self, node: &Node) -> String {
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

impl Etcd {
    /// The node's peer URL (`http://host:2380`), as members are listed.
    fn peer_url(&self, node: &Node) -> String {
        format!("http://{}:{}", url_host(node.host()), self.opts.peer_port)
    }

    /// Starts etcd on `node` with `initial` (`name=peer-url` entries) as
    /// its initial cluster, in `state` (`new`: bootstrap, or rejoin with
    /// the data dir it has; `existing`: join as a member just added).
    fn start_as(&self, node: &Node, initial: &[String], state: &str) -> Result<(), DbError> {
        let name = node.name();
        let host = url_host(node.host());
        let (cp, pp) = (self.opts.client_port, self.opts.peer_port);
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
            format!("--initial-cluster-state={state}"),
            format!("--initial-cluster-token={}", self.opts.token),
        ];
        args.extend(self.opts.extra_args.iter().cloned());
        let command: Vec<String> = args.iter().map(|a| shell_quote(a)).collect();
        let dir = self.dir(node);
        node.run(&format!("mkdir -p {}", shell_quote(&self.data_dir(node))))?;
        self.daemon(node).start(node, &dir, &command.join(" "))?;
        Ok(())
    }

    /// One call of the JSON gateway's cluster API (`/v3/cluster/member/…`)
    /// on `node`, answering the parsed body of a 200.
    fn cluster_call(&self, node: &Node, what: &str, body: &str) -> Result<Value, String> {
        let (code, answer) = http::request(
            node.host(),
            self.opts.client_port,
            "POST",
            &format!("/v3/cluster/member/{what}"),
            Some(body),
            Duration::from_secs(5),
        )?;
        if code != 200 {
            return Err(format!("member {what} answered {code}: {}", answer.trim()));
        }
        serde_json::from_str(&answer).map_err(|e| format!("bad member {what} answer: {e}"))
    }

    /// The members in a gateway answer (`members`), matched to `nodes` by
    /// peer URL.
    fn parse_members(&self, v: &Value, nodes: &[Node]) -> Vec<Member> {
        let by_url = |url: &str| {
            nodes
                .iter()
                .find(|n| self.peer_url(n) == url)
                .map(|n| n.name().to_string())
                .unwrap_or_default()
        };
        v.get("members")
            .and_then(Value::as_array)
            .map(|ms| {
                ms.iter()
                    .map(|m| Member {
                        node: m
                            .pointer("/peerURLs/0")
                            .and_then(Value::as_str)
                            .map(by_url)
                            .unwrap_or_default(),
                        // 64-bit ids come back as strings from the gateway.
                        id: match m.get("ID") {
                            Some(Value::String(s)) => s.clone(),
                            Some(other) => other.to_string(),
                            None => String::new(),
                        },
                        // A member added but never started has no name.
                        started: m
                            .get("name")
                            .and_then(Value::as_str)
                            .is_some_and(|n| !n.is_empty()),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// [`Etcd::via_peers`], tried again while etcd answers "unhealthy
    /// cluster": with its strict reconfiguration check (the default), it
    /// refuses a change until every member it counts on has been connected
    /// for a few seconds (5 s in 3.4), e.g. just after start-up or after
    /// the previous change.
    fn change_via_peers(
        &self,
        peers: &[Node],
        node: &Node,
        action: &str,
        f: impl Fn(&Node) -> Result<Value, String>,
    ) -> Result<(String, Value), DbError> {
        let deadline = std::time::Instant::now() + RECONFIG_WAIT;
        loop {
            match self.via_peers(peers, node, action, &f) {
                Err(e)
                    if e.to_string().contains("unhealthy cluster")
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(500));
                }
                other => return other,
            }
        }
    }

    /// `f(peer)` on each of `peers` in turn until one succeeds; the
    /// errors of all when none does.
    fn via_peers<T>(
        &self,
        peers: &[Node],
        node: &Node,
        action: &str,
        f: impl Fn(&Node) -> Result<T, String>,
    ) -> Result<(String, T), DbError> {
        let mut why = Vec::new();
        for p in peers.iter().filter(|p| p.name() != node.name()) {
            match f(p) {
                Ok(v) => return Ok((p.name().to_string(), v)),
                Err(e) => why.push(format!("{}: {e}", p.name())),
            }
        }
        Err(self.err(
            node,
            action,
            if why.is_empty() {
                "no other member to ask".to_string()
            } else {
                why.join("; ")
            },
        ))
    }
}

impl Membership for Etcd {
    fn members(&self, nodes: &[Node]) -> Result<(String, Vec<Member>), DbError> {
        let mut why = Vec::new();
        for n in nodes {
            match self.cluster_call(n, "list", "{}") {
                Ok(v) => return Ok((n.name().to_string(), self.parse_members(&v, nodes))),
                Err(e) => why.push(format!("{}: {e}", n.name())),
            }
        }
        Err(DbError::Invalid(format!(
            "etcd: no node lists the members: {}",
            why.join("; ")
        )))
    }

    fn all_healthy(&self, nodes: &[Node]) -> Result<(), DbError> {
        let bad: Vec<String> = nodes
            .iter()
            .zip(crate::control::parallel(nodes, |n| self.health(n)))
            .filter_map(|(n, r)| r.err().map(|e| format!("{}: {e}", n.name())))
            .collect();
        if bad.is_empty() {
            Ok(())
        } else {
            Err(DbError::Invalid(format!(
                "etcd is not healthy on {}",
                bad.join("; ")
            )))
        }
    }

    fn remove(&self, peers: &[Node], node: &Node) -> Result<(), DbError> {
        let url = self.peer_url(node);
        let (_, listed) = self.via_peers(peers, node, "member remove", |p| {
            self.cluster_call(p, "list", "{}")
        })?;
        let ids: Vec<String> = self
            .parse_members(&listed, peers)
            .into_iter()
            .filter(|m| m.node == node.name())
            .map(|m| m.id)
            .collect();
        for id in &ids {
            let body = json!({ "ID": id }).to_string();
            self.change_via_peers(peers, node, "member remove", |p| {
                self.cluster_call(p, "remove", &body)
            })?;
        }
        if ids.is_empty() {
            tracing::info!(node = node.name(), %url, "etcd: not a member; nothing to remove");
        }
        // A removed member exits by itself; what it kept must not come
        // back with it (it would rejoin under its removed id).
        self.kill(node)?;
        node.run(&format!("rm -rf {}", shell_quote(&self.data_dir(node))))?;
        Ok(())
    }

    fn add(&self, peers: &[Node], node: &Node, timeout: Duration) -> Result<(), DbError> {
        // Whatever runs there, or is left of an earlier membership, goes:
        // a new member starts from nothing.
        self.kill(node)?;
        node.run(&format!("rm -rf {}", shell_quote(&self.data_dir(node))))?;
        let url = self.peer_url(node);
        let (_, listed) = self.via_peers(peers, node, "member add", |p| {
            self.cluster_call(p, "list", "{}")
        })?;
        let members = self.parse_members(&listed, peers);
        let answer = if members.iter().any(|m| m.node == node.name() && !m.started) {
            // Added before (by a controller that died before starting it).
            listed
        } else {
            let body = json!({ "peerURLs": [url] }).to_string();
            self.change_via_peers(peers, node, "member add", |p| {
                self.cluster_call(p, "add", &body)
            })?
            .1
        };
        // The initial cluster is every member, the new one by its name.
        let initial: Vec<String> = answer
            .get("members")
            .and_then(Value::as_array)
            .map(|ms| {
                ms.iter()
                    .filter_map(|m| {
                        let peer = m.pointer("/peerURLs/0").and_then(Value::as_str)?;
                        let name = m
                            .get("name")
                            .and_then(Value::as_str)
                            .filter(|n| !n.is_empty())
                            .map(String::from)
                            .or_else(|| (peer == url).then(|| node.name().to_string()))?;
                        Some(format!("{name}={peer}"))
                    })
                    .collect()
            })
            .unwrap_or_default();
        if !initial
            .iter()
            .any(|i| i == &format!("{}={url}", node.name()))
        {
            return Err(self.err(
                node,
                "member add",
                format!("the member list after the add does not name {url}: {answer}"),
            ));
        }
        self.start_as(node, &initial, "existing")?;
        self.wait_healthy(std::slice::from_ref(node), timeout)
    }
}

/// How long a member change waits for etcd to count its members healthy.
const RECONFIG_WAIT: Duration = Duration::from_secs(15);

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
            let check = format!("{} --version", shell_quote(&bin));
            return local.install_checked(self.name(), node, &bin, &check);
        }
        crate::db::apt_install(
            self.name(),
            node,
            &AptPackages {
                what: "etcd",
                packages: &["etcd-server"],
                present: "command -v etcd >/dev/null 2>&1",
                services: &["etcd"],
                otherwise: ", or pass an etcd binary of your own to upload (--db-binary)",
            },
        )
    }

    fn server_binary(&self, node: &Node) -> Option<String> {
        self.opts.binary.as_ref().map(|_| self.binary(node))
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
        let pp = self.opts.peer_port;
        let initial: Vec<String> = self
            .members
            .iter()
            .map(|(n, h)| format!("{n}=http://{}:{pp}", url_host(h)))
            .collect();
        // Ignored once the data dir exists, so a restart after a kill
        // rejoins with its old identity.
        self.start_as(node, &initial, "new")
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

    fn membership(&self) -> Option<&dyn Membership> {
        Some(self)
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
