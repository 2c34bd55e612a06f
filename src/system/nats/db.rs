//! NATS JetStream: Debian's `nats-server` package, one server per node of
//! the cluster, all of them routed into one NATS cluster with JetStream
//! on (file storage), run as a plain daemon with a pid file and a log file
//! under the node's work directory, probed from the controller through
//! the JetStream API.
//!
//! Each node gets `<work_dir>/nats/nats.conf` (its `server_name` is the
//! node's name, clients on port 4222 of the node's own address, routes on
//! 6222 to every node) and a store directory `<work_dir>/nats/store`,
//! removed with the rest by `wipe`. The stream and consumer the queue
//! workload uses are made by the clients (`client.rs`), since their
//! acknowledgement timeout follows the test's operation timeout; the
//! health probe checks only that every server answers the JetStream API,
//! which needs a JetStream meta leader.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use super::proto::{self, Frame, Message};
use crate::cluster::url_host;
use crate::cluster::Node;
use crate::control::shell_quote;
use crate::db::daemon::Daemon;
use crate::db::{AptPackages, Db, DbBinary, DbError, NodeDaemon};

/// The JetStream stream that holds the queue.
pub const STREAM: &str = "faultline";
/// The subject the queue's elements are published to.
pub const SUBJECT: &str = "faultline.queue";
/// The durable pull consumer every client fetches from.
pub const CONSUMER: &str = "faultline";

/// How NATS is run.
#[derive(Debug, Clone)]
pub struct NatsOptions {
    /// The client port (on the node's own address).
    pub client_port: u16,
    /// The cluster (route) port.
    pub cluster_port: u16,
    /// A nats-server binary of the user's own build to upload to every
    /// node and run instead of the Debian package's (`--db-binary`).
    pub binary: Option<DbBinary>,
}

impl Default for NatsOptions {
    fn default() -> Self {
        NatsOptions {
            client_port: 4222,
            cluster_port: 6222,
            binary: None,
        }
    }
}

/// NATS with JetStream on a fixed cluster (the nodes it was made for).
#[derive(Debug, Clone)]
pub struct Nats {
    opts: NatsOptions,
    /// (name, host) of every server.
    members: Vec<(String, String)>,
}

impl Nats {
    /// NATS with one server per node of `nodes`.
    pub fn new(opts: NatsOptions, nodes: &[Node]) -> Self {
        Nats {
            opts,
            members: nodes
                .iter()
                .map(|n| (n.name().to_string(), n.host().to_string()))
                .collect(),
        }
    }

    /// The options in use.
    pub fn options(&self) -> &NatsOptions {
        &self.opts
    }

    /// How many servers the cluster has: the stream's replicas.
    pub fn size(&self) -> usize {
        self.members.len()
    }

    /// The nats-server program run on `node`, for a shell: the uploaded
    /// one, or the package's (Debian installs it in /usr/sbin, which a
    /// plain PATH may lack).
    pub fn program(&self, node: &Node) -> String {
        match self.opts.binary {
            Some(_) => shell_quote(&self.uploaded(node)),
            None => "$(command -v nats-server || echo /usr/sbin/nats-server)".into(),
        }
    }

    /// Where an uploaded nats-server lives on `node`.
    fn uploaded(&self, node: &Node) -> String {
        format!("{}/bin/nats-server", node.work_dir())
    }

    /// The node's NATS directory (config, store, log, pid file).
    pub fn dir(&self, node: &Node) -> String {
        format!("{}/nats", node.work_dir())
    }

    fn daemon(&self, node: &Node) -> Daemon {
        let dir = self.dir(node);
        Daemon::new(
            "nats-server",
            &format!("{dir}/nats-server.pid"),
            &format!("{dir}/nats-server.log"),
        )
    }

    /// The `nats.conf` of `node`.
    pub fn config(&self, node: &Node) -> String {
        let o = &self.opts;
        let routes: Vec<String> = self
            .members
            .iter()
            .map(|(_, h)| format!("    nats-route://{}:{}", url_host(h), o.cluster_port))
            .collect();
        format!(
            "server_name: {name}\n\
             listen: \"{host}:{cport}\"\n\
             jetstream {{\n    store_dir: \"{dir}/store\"\n}}\n\
             cluster {{\n    name: faultline\n    listen: \"{host}:{rport}\"\n    routes: [\n{routes}\n    ]\n}}\n",
            name = node.name(),
            host = url_host(node.host()),
            cport = o.client_port,
            rport = o.cluster_port,
            dir = self.dir(node),
            routes = routes.join("\n"),
        )
    }

    /// The port clients connect to.
    pub fn client_port(&self) -> u16 {
        self.opts.client_port
    }

    /// The node's `host:port` for clients.
    pub fn client_address(&self, host: &str) -> String {
        format!("{}:{}", url_host(host), self.opts.client_port)
    }

    /// One JetStream API request to the server on `host`, from the
    /// controller: the reply's JSON, or why there is none (an API error
    /// names its code and description).
    pub fn api(&self, host: &str, subject: &str, body: &str) -> Result<serde_json::Value, String> {
        let reply = request(
            &self.client_address(host),
            subject,
            body.as_bytes(),
            Duration::from_secs(2),
        )?;
        api_reply(&reply)
    }

    /// The server on `node` answers the JetStream API (it has a meta
    /// leader, and JetStream is on).
    pub fn probe(&self, node: &Node) -> Result<(), String> {
        self.api(node.host(), "$JS.API.INFO", "").map(|_| ())
    }

    /// The node whose server leads the queue's stream, as `host` sees it.
    pub fn stream_leader(&self, host: &str) -> Result<Option<String>, String> {
        let info = self.api(host, &format!("$JS.API.STREAM.INFO.{STREAM}"), "")?;
        Ok(info["cluster"]["leader"].as_str().map(str::to_string))
    }
}

/// The JSON of a JetStream API reply, or its error: a status reply (`503`:
/// nobody answers the subject) or an `{"error": ...}` body.
pub fn api_reply(m: &Message) -> Result<serde_json::Value, String> {
    if let Some(code) = m.status {
        return Err(status_text(code, &m.description));
    }
    let v: serde_json::Value = serde_json::from_slice(&m.payload).map_err(|e| {
        format!(
            "a reply that is not JSON ({e}): {:.200}",
            String::from_utf8_lossy(&m.payload)
        )
    })?;
    if let Some(err) = v.get("error") {
        return Err(format!(
            "JetStream error {}: {}",
            err["code"],
            err["description"].as_str().unwrap_or("")
        ));
    }
    Ok(v)
}

/// A status reply in words.
pub fn status_text(code: u16, description: &str) -> String {
    match (code, description) {
        (503, "") => "503 no responders (nobody serves the subject)".to_string(),
        (c, "") => format!("status {c}"),
        (c, d) => format!("status {c} {d}"),
    }
}

/// One request on a fresh blocking connection to `addr`: connect, say
/// `CONNECT`, subscribe to an inbox, publish, and wait for the answer
/// until `timeout` has passed since the start.
pub fn request(
    addr: &str,
    subject: &str,
    payload: &[u8],
    timeout: Duration,
) -> Result<Message, String> {
    let deadline = Instant::now() + timeout;
    let sock = addr
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("{addr} resolves to no address"))?;
    let mut s = TcpStream::connect_timeout(&sock, timeout).map_err(|e| format!("{addr}: {e}"))?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    let inbox = "_INBOX.faultline-probe";
    let mut out = proto::connect();
    out.extend(proto::sub(inbox, 1));
    out.extend(proto::publish(subject, Some(inbox), payload));
    let mut buf = Vec::new();
    let mut greeted = false;
    let mut wrote = false;
    loop {
        while let Some((frame, used)) = proto::parse(&buf).map_err(|e| format!("{addr}: {e}"))? {
            buf.drain(..used);
            match frame {
                Frame::Info(_) => greeted = true,
                Frame::Msg(m) if m.sid == 1 => return Ok(m),
                Frame::Ping => s
                    .write_all(proto::PONG)
                    .map_err(|e| format!("{addr}: {e}"))?,
                Frame::Err(e) => return Err(format!("{addr}: -ERR {e}")),
                _ => {}
            }
        }
        if greeted && !wrote {
            // The server speaks first (INFO); the request follows it.
            s.set_write_timeout(Some(timeout))
                .map_err(|e| e.to_string())?;
            s.write_all(&out).map_err(|e| format!("{addr}: {e}"))?;
            wrote = true;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("{addr}: no answer to {subject} within {timeout:?}"));
        }
        s.set_read_timeout(Some(left)).map_err(|e| e.to_string())?;
        let mut chunk = [0u8; 16 * 1024];
        let n = s.read(&mut chunk).map_err(|e| match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                format!("{addr}: no answer to {subject} within {timeout:?}")
            }
            _ => format!("{addr}: {e}"),
        })?;
        if n == 0 {
            return Err(format!("{addr}: the server closed the connection"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

impl Db for Nats {
    /// JetStream's store: the streams and their messages, what
    /// `corrupt-file` damages, `rollback` restores and lazyfs holds (its
    /// `sync_interval` decides what an acknowledged write has on disk).
    fn data_folder(&self, node: &Node) -> Option<String> {
        Some(format!("{}/store", self.dir(node)))
    }

    fn name(&self) -> &str {
        "nats"
    }

    fn install(&self, node: &Node) -> Result<(), DbError> {
        if let Some(local) = &self.opts.binary {
            let check = format!("{} --version", self.program(node));
            return local.install_checked(self.name(), node, &self.uploaded(node), &check);
        }
        crate::db::apt_install(
            self.name(),
            node,
            &AptPackages {
                what: "nats-server",
                packages: &["nats-server"],
                present: "command -v nats-server >/dev/null 2>&1 || test -x /usr/sbin/nats-server",
                services: &["nats-server"],
                otherwise: "",
            },
        )
    }

    fn server_binary(&self, node: &Node) -> Option<String> {
        self.opts.binary.as_ref().map(|_| self.uploaded(node))
    }

    fn daemon_on(&self, node: &Node) -> Option<NodeDaemon> {
        Some(NodeDaemon {
            daemon: self.daemon(node),
            dir: self.dir(node),
        })
    }

    fn configure(&self, node: &Node) -> Result<(), DbError> {
        let dir = self.dir(node);
        node.run(&format!(
            "mkdir -p {dir}/store && printf '%s' {cfg} > {dir}/nats.conf",
            dir = shell_quote(&dir),
            cfg = shell_quote(&self.config(node)),
        ))?;
        Ok(())
    }

    fn start(&self, node: &Node) -> Result<(), DbError> {
        let dir = self.dir(node);
        // A start after a wipe needs the config again.
        if !node
            .exec(&format!("test -f {}/nats.conf", shell_quote(&dir)))?
            .success()
        {
            self.configure(node)?;
        }
        let command = format!(
            "{} -c {}",
            self.program(node),
            shell_quote(&format!("{dir}/nats.conf"))
        );
        self.daemon(node).start(node, &dir, &command)?;
        Ok(())
    }

    fn wait_healthy(&self, nodes: &[Node], timeout: Duration) -> Result<(), DbError> {
        crate::db::poll_healthy(
            "nats",
            nodes,
            timeout,
            Duration::from_millis(200),
            |pending| crate::control::parallel(pending, |n| self.probe(n)),
            |n| self.daemon(n).unhealthy_context(n, "nats-server"),
        )
    }

    fn log_files(&self, node: &Node) -> Vec<String> {
        let dir = self.dir(node);
        vec![self.daemon(node).log_file, format!("{dir}/nats.conf")]
    }

    /// The server leading the queue's stream, as most servers that answer
    /// name it (none before the stream exists).
    fn primaries(&self, nodes: &[Node]) -> Result<Vec<String>, DbError> {
        let answers = crate::control::parallel(nodes, |n| self.stream_leader(n.host()));
        let mut votes: std::collections::BTreeMap<String, usize> = Default::default();
        for leader in answers.into_iter().flatten().flatten() {
            *votes.entry(leader).or_default() += 1;
        }
        // Ties go to the first name, so the answer is stable.
        let best = votes.into_iter().rev().max_by_key(|(_, count)| *count);
        Ok(best.map(|(leader, _)| vec![leader]).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_replies_are_values_or_errors() {
        let ok = Message {
            subject: "_INBOX.x".into(),
            sid: 1,
            reply: None,
            status: None,
            description: String::new(),
            payload: br#"{"stream":"faultline","seq":3}"#.to_vec(),
        };
        assert_eq!(api_reply(&ok).expect("ok")["seq"], 3);
        let err = Message {
            payload: br#"{"error":{"code":503,"err_code":10008,"description":"JetStream system temporarily unavailable"}}"#.to_vec(),
            ..ok.clone()
        };
        assert_eq!(
            api_reply(&err).expect_err("error"),
            "JetStream error 503: JetStream system temporarily unavailable"
        );
        let none = Message {
            status: Some(503),
            payload: Vec::new(),
            ..ok
        };
        assert_eq!(
            api_reply(&none).expect_err("no responders"),
            "503 no responders (nobody serves the subject)"
        );
    }
}
