//! A ZooKeeper client for the register and set workloads, with the
//! `zookeeper-client` crate (async, pure Rust).
//!
//! Each client holds one session with ONE server, the node its worker is
//! assigned: ZooKeeper serves reads from the server a client is connected
//! to, so a follower that lags behind (or is cut off from) the leader
//! answers with old data, and the checker sees it. Writes always go through
//! the leader.
//!
//! Registers: the faultline key `k` of workload `w` is the znode
//! `/faultline/<w>/<k>`, holding the value's JSON text.
//!
//! - `read`: `getData` (a missing znode reads `null`); with
//!   [`ZkReadMode::Sync`], `sync` first, which makes the server catch up
//!   with the leader before it answers;
//! - `write`: `setData`, or `create` when the znode is missing;
//! - `cas [old, new]`: `getData` on the server, compare the value with
//!   `old`, then `setData` with the version read. A different value or a
//!   `BadVersion` answer is `fail` — but NOT with the model's
//!   [`crate::model::CAS_MISMATCH`] error: the value compared may come from a
//!   stale follower, and a version conflict can follow a write of the same
//!   value (ABA), so neither proves the register held another value during
//!   the operation. The checker then treats such a cas as never having
//!   happened, which is true.
//!
//! Sets: element `e` of set `k` is the child znode `/faultline/<w>/<k>/<e>`;
//! `add` creates it, `read` lists the children (after `sync` in sync mode).
//!
//! How an operation ends: refused before it was sent (no session, a bad
//! argument) or answered by the server with a definite error (`BadVersion`,
//! `NoNode`, `NodeExists`) is `fail`; a lost connection, a timeout or an
//! expired session after a write was sent is `info`. A read that did not
//! answer is `fail`: it changed nothing.

use crate::client::kv::{self, DataKind, KvOp};
use crate::client::servers::Servers;
use crate::client::{Client, ClientError, ClientFactory, Completion, Invocation};
use crate::cluster::Node;
use serde_json::Value;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use zookeeper_client as zk;

/// How ZooKeeper reads are made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ZkReadMode {
    /// `getData` on the connected server: possibly stale (ZooKeeper
    /// promises sequential consistency per client, not linearizable reads).
    #[default]
    Plain,
    /// `sync`, then `getData`: the server first catches up with the leader.
    Sync,
}

impl FromStr for ZkReadMode {
    type Err = String;

    fn from_str(s: &str) -> Result<ZkReadMode, String> {
        match s {
            "plain" => Ok(ZkReadMode::Plain),
            "sync" => Ok(ZkReadMode::Sync),
            other => Err(format!(
                "unknown ZooKeeper read mode {other:?}; use plain (getData on the \
                 connected server, possibly stale) or sync (sync, then getData)"
            )),
        }
    }
}

impl fmt::Display for ZkReadMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ZkReadMode::Plain => "plain",
            ZkReadMode::Sync => "sync",
        })
    }
}

/// How the clients behave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZkClientOptions {
    /// Plain or sync reads.
    pub read_mode: ZkReadMode,
    /// The longest one operation may take, connecting included; an
    /// invocation's own (shorter) timeout wins.
    pub timeout: Duration,
    /// The session timeout asked of the server.
    pub session_timeout: Duration,
    /// The workload's name: znodes live under `/faultline/<workload>/`.
    pub workload: String,
    /// Registers or sets.
    pub kind: DataKind,
}

impl Default for ZkClientOptions {
    fn default() -> Self {
        ZkClientOptions {
            read_mode: ZkReadMode::Plain,
            timeout: Duration::from_secs(5),
            session_timeout: Duration::from_secs(6),
            workload: "register".into(),
            kind: DataKind::Register,
        }
    }
}

/// Makes the clients of a test.
#[derive(Clone, Debug)]
pub struct ZkClientFactory {
    servers: Servers,
    opts: Arc<ZkClientOptions>,
}

impl ZkClientFactory {
    /// Clients of the servers `servers` (node name, `host:port`).
    pub fn new<I, N, A>(servers: I, opts: ZkClientOptions) -> Result<Self, ClientError>
    where
        I: IntoIterator<Item = (N, A)>,
        N: Into<String>,
        A: Into<String>,
    {
        let servers = Servers::new("ZooKeeper", servers)?;
        Ok(ZkClientFactory {
            servers,
            opts: Arc::new(opts),
        })
    }

    /// Clients of every node of `nodes`, on `port`.
    pub fn for_nodes(
        nodes: &[Node],
        port: u16,
        opts: ZkClientOptions,
    ) -> Result<Self, ClientError> {
        Ok(ZkClientFactory {
            servers: Servers::on_nodes("ZooKeeper", nodes, port)?,
            opts: Arc::new(opts),
        })
    }

    /// The options every client gets.
    pub fn options(&self) -> &ZkClientOptions {
        &self.opts
    }

    /// A new, unopened client.
    pub fn client(&self) -> ZkClient {
        ZkClient {
            servers: self.servers.clone(),
            opts: Arc::clone(&self.opts),
            server: None,
            session: None,
        }
    }

    /// The factory the runner takes: one boxed client per worker.
    pub fn into_factory(self) -> ClientFactory {
        Box::new(move |_worker| Box::new(self.client()) as Box<dyn Client>)
    }
}

/// A session with one server, used by one worker at a time.
pub struct ZkClient {
    servers: Servers,
    opts: Arc<ZkClientOptions>,
    /// (node, `host:port`) opened on.
    server: Option<(String, String)>,
    session: Option<zk::Client>,
}

impl fmt::Debug for ZkClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZkClient")
            .field("server", &self.server)
            .field("connected", &self.session.is_some())
            .field("opts", &self.opts)
            .finish()
    }
}

/// One operation, checked and encoded before anything is sent.
#[derive(Debug, PartialEq)]
enum Encoded {
    Read {
        path: String,
    },
    Write {
        path: String,
        data: Vec<u8>,
    },
    Cas {
        path: String,
        old: Value,
        new: Vec<u8>,
    },
    Add {
        parent: String,
        path: String,
        element: Value,
    },
    ReadSet {
        parent: String,
    },
}

/// The znode of a key: its JSON text, with `/` (not allowed in a znode
/// name) escaped.
fn key_path(workload: &str, key: Option<&Value>) -> String {
    let k = key.unwrap_or(&Value::Null).to_string().replace('/', "%2F");
    format!("/faultline/{workload}/{k}")
}

/// The ZooKeeper request of an invocation, decoded by the shared rules
/// ([`kv::KvOp`]).
#[cfg(test)]
fn parse_op(inv: &Invocation, opts: &ZkClientOptions) -> Result<Encoded, ClientError> {
    Ok(encode(
        KvOp::decode(inv, opts.kind, "ZooKeeper")?,
        inv,
        opts,
    ))
}

/// The ZooKeeper request of a key-value operation on the invocation's key.
fn encode(op: KvOp, inv: &Invocation, opts: &ZkClientOptions) -> Encoded {
    let path = key_path(&opts.workload, Some(kv::key(inv)));
    match op {
        KvOp::Read => Encoded::Read { path },
        KvOp::ReadSet => Encoded::ReadSet { parent: path },
        KvOp::Write(v) => Encoded::Write {
            path,
            data: v.to_string().into_bytes(),
        },
        KvOp::Cas { expected, new } => Encoded::Cas {
            path,
            old: expected,
            new: new.to_string().into_bytes(),
        },
        KvOp::Add(e) => Encoded::Add {
            path: format!("{path}/{e}"),
            parent: path,
            element: Value::from(e),
        },
    }
}

/// Whether a server error is a definite answer (the request was processed
/// and refused, or refused before processing) or leaves the outcome open.
fn classify(what: &str, e: &zk::Error) -> ClientError {
    use zk::Error as E;
    let msg = format!("{what}: {e}");
    match e {
        E::BadVersion
        | E::NoNode
        | E::NodeExists
        | E::NoAuth
        | E::BadArguments(_)
        | E::InvalidAcl
        | E::NotEmpty
        | E::NoChildrenForEphemerals
        | E::NotReadOnly
        | E::Unimplemented => ClientError::not_applied(msg),
        // ConnectionLoss, Timeout, SessionExpired, SessionMoved, Throttled,
        // ClientClosed and the rest: the request may have been applied.
        _ => ClientError::unknown(msg),
    }
}

/// A register's value from its stored bytes.
fn decode_value(data: &[u8]) -> Result<Value, ClientError> {
    serde_json::from_slice(data).map_err(|e| {
        ClientError::not_applied(format!(
            "read: the stored value is not JSON ({e}): {}",
            String::from_utf8_lossy(data)
        ))
    })
}

impl ZkClient {
    /// The session, connected now; reconnects once the old one has ended
    /// (expired, closed). Errors are `fail`: nothing was sent.
    async fn session(&mut self, timeout: Duration) -> Result<&zk::Client, ClientError> {
        let Some((node, addr)) = self.server.clone() else {
            return Err(ClientError::not_applied("client not open"));
        };
        let ended = self
            .session
            .as_ref()
            .map(|s| s.state().is_terminated())
            .unwrap_or(true);
        if ended {
            self.session = None;
            let connector = zk::Client::connector()
                .with_session_timeout(self.opts.session_timeout)
                .with_fail_eagerly();
            let s = tokio::time::timeout(timeout, connector.connect(&addr))
                .await
                .map_err(|_| {
                    ClientError::not_applied(format!(
                        "connecting to {node} ({addr}): no session within {:.1} s",
                        timeout.as_secs_f64()
                    ))
                })?
                .map_err(|e| {
                    ClientError::not_applied(format!("connecting to {node} ({addr}): {e}"))
                })?;
            self.session = Some(s);
        }
        let s = self
            .session
            .as_ref()
            .ok_or_else(|| ClientError::not_applied("no session"))?;
        // While the session is between connections a request would wait
        // and may be sent later: refuse it now, when it certainly was not.
        let state = s.state();
        if state != zk::SessionState::SyncConnected {
            return Err(ClientError::not_applied(format!(
                "not connected to {node} ({state:?})"
            )));
        }
        Ok(s)
    }

    async fn run(&mut self, op: Encoded, timeout: Duration) -> Result<Value, ClientError> {
        let read_mode = self.opts.read_mode;
        let s = self.session(timeout).await?;
        match op {
            Encoded::Read { path } => {
                if read_mode == ZkReadMode::Sync {
                    s.sync(&path)
                        .await
                        .or_else(|e| match e {
                            // sync of a znode that does not exist yet still
                            // syncs the server.
                            zk::Error::NoNode => Ok(()),
                            e => Err(e),
                        })
                        .map_err(|e| classify("sync", &e))?;
                }
                match s.get_data(&path).await {
                    Ok((data, _)) => decode_value(&data),
                    Err(zk::Error::NoNode) => Ok(Value::Null),
                    Err(e) => Err(classify("getData", &e)),
                }
            }
            Encoded::Write { path, data } => {
                write(s, &path, &data).await?;
                Ok(serde_json::from_slice(&data).unwrap_or(Value::Null))
            }
            Encoded::Cas { path, old, new } => {
                let (data, stat) = match s.get_data(&path).await {
                    Ok(x) => x,
                    Err(zk::Error::NoNode) => {
                        return Err(ClientError::not_applied(
                            "cas: no such key (read on the connected server)",
                        ))
                    }
                    Err(e) => return Err(ClientError::not_applied(format!("cas: getData: {e}"))),
                };
                let current = decode_value(&data)?;
                if current != old {
                    return Err(ClientError::not_applied(format!(
                        "cas: the connected server holds {current}, not {old}"
                    )));
                }
                s.set_data(&path, &new, Some(stat.version))
                    .await
                    .map_err(|e| classify("cas: setData", &e))?;
                Ok(Value::Null)
            }
            Encoded::Add {
                parent,
                path,
                element,
            } => {
                match create(s, &path, &[]).await {
                    Ok(()) => {}
                    Err(zk::Error::NoNode) => {
                        mkdir(s, &parent).await?;
                        match create(s, &path, &[]).await {
                            Ok(()) | Err(zk::Error::NodeExists) => {}
                            Err(e) => return Err(classify("add: create", &e)),
                        }
                    }
                    // Every element is added once: it is there already.
                    Err(zk::Error::NodeExists) => {}
                    Err(e) => return Err(classify("add: create", &e)),
                }
                Ok(element)
            }
            Encoded::ReadSet { parent } => {
                if read_mode == ZkReadMode::Sync {
                    s.sync(&parent)
                        .await
                        .or_else(|e| match e {
                            zk::Error::NoNode => Ok(()),
                            e => Err(e),
                        })
                        .map_err(|e| classify("sync", &e))?;
                }
                let children = match s.list_children(&parent).await {
                    Ok(c) => c,
                    Err(zk::Error::NoNode) => Vec::new(),
                    Err(e) => return Err(classify("getChildren", &e)),
                };
                let mut members = Vec::with_capacity(children.len());
                for c in children {
                    let v: i64 = c.parse().map_err(|_| {
                        ClientError::not_applied(format!(
                            "read: child {c:?} of {parent} is no element"
                        ))
                    })?;
                    members.push(v);
                }
                members.sort_unstable();
                Ok(Value::from(members))
            }
        }
    }
}

fn persistent() -> zk::CreateOptions<'static> {
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
}

async fn create(s: &zk::Client, path: &str, data: &[u8]) -> Result<(), zk::Error> {
    s.create(path, data, &persistent()).await.map(|_| ())
}

/// Creates `path` and its parents (a write: may leave them created when it
/// fails).
async fn mkdir(s: &zk::Client, path: &str) -> Result<(), ClientError> {
    s.mkdir(path, &persistent())
        .await
        .map_err(|e| classify(&format!("creating {path}"), &e))
}

/// setData, or create when the znode is missing (its parents too).
async fn write(s: &zk::Client, path: &str, data: &[u8]) -> Result<(), ClientError> {
    match s.set_data(path, data, None).await {
        Ok(_) => return Ok(()),
        Err(zk::Error::NoNode) => {}
        Err(e) => return Err(classify("write: setData", &e)),
    }
    // Nothing was written yet: NoNode is a definite answer.
    match create(s, path, data).await {
        Ok(()) => Ok(()),
        Err(zk::Error::NoNode) => {
            let parent = path.rsplit_once('/').map(|(p, _)| p).unwrap_or("/");
            mkdir(s, parent).await.map_err(|e| {
                // Creating the parent may have half-succeeded, but the
                // value itself was never sent.
                ClientError::not_applied(e.message)
            })?;
            match create(s, path, data).await {
                Ok(()) => Ok(()),
                Err(zk::Error::NodeExists) => s
                    .set_data(path, data, None)
                    .await
                    .map(|_| ())
                    .map_err(|e| classify("write: setData", &e)),
                Err(e) => Err(classify("write: create", &e)),
            }
        }
        // Created by someone else meanwhile: set it.
        Err(zk::Error::NodeExists) => s
            .set_data(path, data, None)
            .await
            .map(|_| ())
            .map_err(|e| classify("write: setData", &e)),
        Err(e) => Err(classify("write: create", &e)),
    }
}

#[async_trait::async_trait]
impl Client for ZkClient {
    async fn open(&mut self, node: &str) -> Result<(), ClientError> {
        let addr = self.servers.on(node)?.to_string();
        // A fresh session: the old one may be in an unknown state.
        self.session = None;
        self.server = Some((node.to_string(), addr));
        self.session(self.opts.timeout).await.map(|_| ())
    }

    async fn invoke(&mut self, inv: &Invocation) -> Completion {
        let op = match KvOp::decode(inv, self.opts.kind, "ZooKeeper") {
            Ok(op) => op,
            Err(e) => return Completion::from_error(inv.value.clone(), &e),
        };
        let request = encode(op.clone(), inv, &self.opts);
        let timeout = inv.timeout.min(self.opts.timeout);
        let result = match tokio::time::timeout(timeout, self.run(request, timeout)).await {
            Ok(r) => r,
            Err(_) => Err(ClientError::unknown(format!(
                "timed out after {:.1} s",
                timeout.as_secs_f64()
            ))),
        };
        let done = result.map(|v| {
            if op.is_read() {
                Completion::ok(v)
            } else {
                Completion::ok(inv.value.clone())
            }
        });
        kv::settle(&op, inv, done)
    }

    async fn close(&mut self) -> Result<(), ClientError> {
        // Dropping the last handle closes the session.
        self.session = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ErrorClass;
    use serde_json::json;

    fn inv(f: &str, key: Value, value: Value) -> Invocation {
        Invocation {
            process: crate::history::Process::Client(0),
            f: f.into(),
            value,
            key: Some(key),
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn read_modes_parse_and_print() {
        assert_eq!("plain".parse(), Ok(ZkReadMode::Plain));
        assert_eq!("sync".parse(), Ok(ZkReadMode::Sync));
        assert_eq!(ZkReadMode::Sync.to_string(), "sync");
        let err = "linearizable".parse::<ZkReadMode>().expect_err("unknown");
        assert!(err.contains("plain") && err.contains("sync"), "{err}");
    }

    #[test]
    fn operations_map_to_znodes() {
        let o = ZkClientOptions::default();
        assert_eq!(
            parse_op(&inv("read", json!(3), Value::Null), &o),
            Ok(Encoded::Read {
                path: "/faultline/register/3".into()
            })
        );
        assert_eq!(
            parse_op(&inv("cas", json!("a/b"), json!([1, 2])), &o),
            Ok(Encoded::Cas {
                path: "/faultline/register/\"a%2Fb\"".into(),
                old: json!(1),
                new: b"2".to_vec()
            })
        );
        let set = ZkClientOptions {
            kind: DataKind::Set,
            workload: "set".into(),
            ..o.clone()
        };
        assert_eq!(
            parse_op(&inv("add", Value::Null, json!(7)), &set),
            Ok(Encoded::Add {
                parent: "/faultline/set/null".into(),
                path: "/faultline/set/null/7".into(),
                element: json!(7)
            })
        );
        assert_eq!(
            parse_op(&inv("read", Value::Null, Value::Null), &set),
            Ok(Encoded::ReadSet {
                parent: "/faultline/set/null".into()
            })
        );
    }

    #[test]
    fn bad_invocations_fail_before_sending() {
        let o = ZkClientOptions::default();
        for (f, v, why) in [
            ("write", Value::Null, "null"),
            ("cas", json!(1), "[expected, new]"),
            ("add", json!("x"), "integer"),
            ("frob", Value::Null, "no function"),
        ] {
            let e = parse_op(&inv(f, json!(1), v), &o).expect_err(f);
            assert_eq!(e.class, ErrorClass::NotApplied, "{f}");
            assert!(e.message.contains(why), "{f}: {}", e.message);
        }
    }

    #[test]
    fn server_answers_fail_and_lost_answers_are_unknown() {
        assert_eq!(
            classify("cas", &zk::Error::BadVersion).class,
            ErrorClass::NotApplied
        );
        assert_eq!(
            classify("w", &zk::Error::NodeExists).class,
            ErrorClass::NotApplied
        );
        for e in [
            zk::Error::ConnectionLoss,
            zk::Error::Timeout,
            zk::Error::SessionExpired,
            zk::Error::ClientClosed,
        ] {
            let c = classify("write", &e);
            assert_eq!(c.class, ErrorClass::Unknown, "{e}");
            assert!(c.message.starts_with("write: "), "{}", c.message);
        }
    }

    #[tokio::test]
    async fn unopened_or_unknown_node_fails() {
        let f = ZkClientFactory::new([("n1", "127.0.0.1:1")], ZkClientOptions::default())
            .expect("factory");
        let mut c = f.client();
        let done = c.invoke(&inv("write", json!(1), json!(2))).await;
        assert_eq!(done.status, crate::client::Status::Fail);
        assert_eq!(done.error, Some(json!("client not open")));
        let e = c.open("n9").await.expect_err("no such node");
        assert!(e.message.contains("n9"), "{}", e.message);
        assert_eq!(e.class, ErrorClass::NotApplied);
    }
}
