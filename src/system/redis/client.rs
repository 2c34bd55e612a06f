//! The Redis client: registers and sets on a Redis master with replicas and
//! Sentinels ([`super::db::Redis`]), with the `redis` crate on tokio.
//!
//! # Where each operation goes
//!
//! Writes (`write`, `cas`, `add`) go to the current master as Sentinel
//! names it: on `open`, and again after any error, the client asks the
//! Sentinel on its own node first (then the others, in node order)
//! `SENTINEL get-master-addr-by-name`. A client therefore sees the
//! cluster the way an application next to that node would: during a
//! partition, a Sentinel cut off from the majority keeps naming the old
//! master, and the client keeps writing there.
//!
//! Reads go to the client's own node in the default read mode, `replica`
//! (a replica, unless the node is the master), or to the master in
//! `primary` mode ([`RedisReadMode`], `--read-mode`). Neither is
//! linearizable: replication is asynchronous, and even the master may be
//! one that a failover has already replaced.
//!
//! `WAIT` is not used. It only makes the client wait until N replicas
//! acknowledged a write; it does not make the write synchronous or roll
//! it back when the replicas do not answer, and a failover may still
//! promote a replica that missed it. Redis's replication is asynchronous,
//! and that is what the tests show.
//!
//! # Data layout
//!
//! A register is the Redis string `faultline:<workload>:<key>` (the key as
//! JSON text, so `3` and `"3"` differ), holding the JSON text of its value.
//! `cas` is one Lua script (atomic on the server): GET, compare the text,
//! SET. A set is the Redis set `faultline:<workload>:set:<key>`; `add` is
//! `SADD` of the element's JSON text, `read` is `SMEMBERS`.
//!
//! # Classification
//!
//! `fail` (certainly not applied): no master known or no connection to it
//! (connection refused, connect timeout: nothing was sent), an error
//! answer from the server (`READONLY` from a demoted master, `LOADING`,
//! `MASTERDOWN`, ...: the command was refused), a compare that did not
//! match. `info` (unknown): a timeout or a reset after the command was
//! sent. A read that meets a transport error is tried once more on a fresh
//! connection (it changes nothing; servers close their clients'
//! connections when Sentinel changes their role); as for etcd, a read
//! whose outcome stays unknown is recorded `fail`.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::MultiplexedConnection;
use ::redis::{AsyncConnectionConfig, ErrorKind, RedisError};
use serde_json::{json, Value};

use super::db::Redis;
use super::db::MASTER_NAME;
use crate::client::kv::{self, DataKind, KvOp};
use crate::client::{Client, ClientError, ClientFactory, Completion, ErrorClass, Invocation};
use crate::cluster::Node;

/// Where reads go.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RedisReadMode {
    /// The client's own node (a replica, unless it is the master): reads
    /// may be stale.
    #[default]
    Replica,
    /// The master Sentinel names (still not linearizable: an old master
    /// cut off from the others keeps answering).
    Primary,
}

impl FromStr for RedisReadMode {
    type Err = String;

    /// `replica` or `primary`. Redis has no linearizable reads, so
    /// `linearizable` is refused rather than taken for either.
    fn from_str(s: &str) -> Result<RedisReadMode, String> {
        match s {
            "replica" => Ok(RedisReadMode::Replica),
            "primary" => Ok(RedisReadMode::Primary),
            other => Err(format!(
                "unknown read mode {other:?} for redis; use replica (the client's own node) \
                 or primary (the master)"
            )),
        }
    }
}

impl fmt::Display for RedisReadMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RedisReadMode::Replica => "replica",
            RedisReadMode::Primary => "primary",
        })
    }
}

/// How the Redis clients behave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisClientOptions {
    /// Where reads go.
    pub read_mode: RedisReadMode,
    /// How long connecting, asking a Sentinel, or one command may take.
    pub timeout: Duration,
    /// The workload's name (the key prefix).
    pub workload: String,
    /// Registers or sets.
    pub kind: DataKind,
    /// redis-server's port.
    pub port: u16,
    /// Sentinel's port.
    pub sentinel_port: u16,
}

impl Default for RedisClientOptions {
    fn default() -> Self {
        RedisClientOptions {
            read_mode: RedisReadMode::Replica,
            timeout: Duration::from_secs(5),
            workload: "register".into(),
            kind: DataKind::Register,
            port: 6379,
            sentinel_port: 26379,
        }
    }
}

/// Makes the clients of a test; each is opened on its worker's node.
#[derive(Clone, Debug)]
pub struct RedisClientFactory {
    /// (name, host) of every node, in order.
    nodes: Arc<Vec<(String, String)>>,
    opts: Arc<RedisClientOptions>,
}

impl RedisClientFactory {
    /// Clients for the nodes `(name, host)`.
    pub fn new(
        nodes: impl IntoIterator<Item = (String, String)>,
        opts: RedisClientOptions,
    ) -> Result<Self, ClientError> {
        let nodes: Vec<_> = nodes.into_iter().collect();
        if nodes.is_empty() {
            return Err(ClientError::not_applied(
                "redis clients need at least one node",
            ));
        }
        Ok(RedisClientFactory {
            nodes: Arc::new(nodes),
            opts: Arc::new(opts),
        })
    }

    /// Clients for `redis` on `nodes`, with its ports.
    pub fn for_redis(
        redis: &Redis,
        nodes: &[Node],
        mut opts: RedisClientOptions,
    ) -> Result<Self, ClientError> {
        opts.port = redis.options().port;
        opts.sentinel_port = redis.options().sentinel_port;
        Self::new(
            nodes
                .iter()
                .map(|n| (n.name().to_string(), n.host().to_string())),
            opts,
        )
    }

    /// A new, unopened client.
    pub fn client(&self) -> RedisClient {
        RedisClient {
            nodes: Arc::clone(&self.nodes),
            opts: Arc::clone(&self.opts),
            host: None,
            local: None,
            master: None,
        }
    }

    /// The factory the runner takes.
    pub fn into_factory(self) -> ClientFactory {
        Box::new(move |_| Box::new(self.client()) as Box<dyn Client>)
    }
}

/// One worker's connections: to its own node, and to the master.
pub struct RedisClient {
    nodes: Arc<Vec<(String, String)>>,
    opts: Arc<RedisClientOptions>,
    /// The host of the node it was opened on.
    host: Option<String>,
    local: Option<MultiplexedConnection>,
    /// The master's host and a connection to it (None: ask Sentinel).
    master: Option<(String, Option<MultiplexedConnection>)>,
}

/// What one invocation asks of Redis.
#[derive(Debug, Clone, PartialEq)]
enum Encoded {
    Read(String),
    ReadSet(String),
    Write(String, String),
    Cas(String, Value, String),
    Add(String, String),
}

impl Encoded {
    fn is_read(&self) -> bool {
        matches!(self, Encoded::Read(_) | Encoded::ReadSet(_))
    }
}

/// The Redis request of an invocation, decoded by the shared rules
/// ([`kv::KvOp`]).
#[cfg(test)]
fn parse_op(inv: &Invocation, opts: &RedisClientOptions) -> Result<Encoded, ClientError> {
    Ok(encode(KvOp::decode(inv, opts.kind, "redis")?, inv, opts))
}

/// The Redis request of a key-value operation on the invocation's key.
fn encode(op: KvOp, inv: &Invocation, opts: &RedisClientOptions) -> Encoded {
    let w = &opts.workload;
    let k = kv::key(inv);
    let register = format!("faultline:{w}:{k}");
    let set = format!("faultline:{w}:set:{k}");
    match op {
        KvOp::Read => Encoded::Read(register),
        KvOp::ReadSet => Encoded::ReadSet(set),
        KvOp::Write(v) => Encoded::Write(register, v.to_string()),
        KvOp::Cas { expected, new } => Encoded::Cas(register, expected, new.to_string()),
        KvOp::Add(e) => Encoded::Add(set, e.to_string()),
    }
}

/// Compare-and-set, atomic on the server: a missing key equals `null`
/// when ARGV[3] is `1`.
const CAS_SCRIPT: &str = "local v = redis.call('GET', KEYS[1]) \
    if (v == false and ARGV[3] == '1') or v == ARGV[1] then \
      redis.call('SET', KEYS[1], ARGV[2]) return 1 end \
    return 0";

/// Whether the server answered with an error (the command was refused,
/// not half-done), as opposed to a transport failure.
fn is_server_answer(e: &RedisError) -> bool {
    matches!(e.kind(), ErrorKind::Server(_) | ErrorKind::Extension) || e.code().is_some()
}

/// The class of an error from a command that was sent.
fn classify(e: &RedisError) -> ClientError {
    let msg = e.to_string();
    if is_server_answer(e) {
        ClientError::not_applied(msg)
    } else {
        ClientError::unknown(msg)
    }
}

impl RedisClient {
    fn config(&self) -> AsyncConnectionConfig {
        AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.opts.timeout))
            .set_response_timeout(Some(self.opts.timeout))
    }

    async fn connect(&self, host: &str, port: u16) -> Result<MultiplexedConnection, ClientError> {
        let h = crate::cluster::url_host(host);
        let client = ::redis::Client::open(format!("redis://{h}:{port}/"))
            .map_err(|e| ClientError::not_applied(format!("{host}:{port}: {e}")))?;
        let config = self.config();
        let connecting = client.get_multiplexed_async_connection_with_config(&config);
        match tokio::time::timeout(self.opts.timeout, connecting).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(ClientError::not_applied(format!(
                "connect {host}:{port}: {e}"
            ))),
            Err(_) => Err(ClientError::not_applied(format!(
                "connect {host}:{port}: timed out"
            ))),
        }
    }

    /// Asks the Sentinels, own node first, for the master's host.
    async fn discover(&self) -> Result<String, ClientError> {
        let mut order: Vec<&str> = Vec::new();
        if let Some(h) = &self.host {
            order.push(h);
        }
        order.extend(
            self.nodes
                .iter()
                .map(|(_, h)| h.as_str())
                .filter(|h| Some(*h) != self.host.as_deref()),
        );
        let mut why = Vec::new();
        for host in order {
            let asked = async {
                let mut c = self.connect(host, self.opts.sentinel_port).await?;
                let addr: Option<(String, u16)> = ::redis::cmd("SENTINEL")
                    .arg("get-master-addr-by-name")
                    .arg(MASTER_NAME)
                    .query_async(&mut c)
                    .await
                    .map_err(|e| ClientError::not_applied(e.to_string()))?;
                addr.map(|(h, _)| h)
                    .ok_or_else(|| ClientError::not_applied("no such master"))
            };
            let per = self.opts.timeout.min(Duration::from_secs(2));
            match tokio::time::timeout(per, asked).await {
                Ok(Ok(h)) => return Ok(h),
                Ok(Err(e)) => why.push(format!("sentinel {host}: {e}")),
                Err(_) => why.push(format!("sentinel {host}: timed out")),
            }
        }
        Err(ClientError::not_applied(format!(
            "no sentinel named the master: {}",
            why.join("; ")
        )))
    }

    /// A connection to the master, asking Sentinel when none is known.
    async fn master_conn(&mut self) -> Result<MultiplexedConnection, ClientError> {
        if let Some((_, Some(c))) = &self.master {
            return Ok(c.clone());
        }
        let host = match &self.master {
            Some((h, None)) => h.clone(),
            _ => self.discover().await?,
        };
        // Forgotten until connected: a failed connect asks Sentinel again
        // next time.
        self.master = None;
        let c = self.connect(&host, self.opts.port).await?;
        self.master = Some((host, Some(c.clone())));
        Ok(c)
    }

    async fn local_conn(&mut self) -> Result<MultiplexedConnection, ClientError> {
        if let Some(c) = &self.local {
            return Ok(c.clone());
        }
        let host = self
            .host
            .clone()
            .ok_or_else(|| ClientError::not_applied("client not open"))?;
        let c = self.connect(&host, self.opts.port).await?;
        self.local = Some(c.clone());
        Ok(c)
    }

    async fn perform(&mut self, op: &Encoded, inv: &Invocation) -> Result<Completion, ClientError> {
        let to_master = !op.is_read() || self.opts.read_mode == RedisReadMode::Primary;
        let mut conn = if to_master {
            self.master_conn().await?
        } else {
            self.local_conn().await?
        };
        let t = inv.timeout;
        let timed = |e: tokio::time::error::Elapsed| {
            ClientError::unknown(format!("no answer within {:.1} s ({e})", t.as_secs_f64()))
        };
        match op {
            Encoded::Read(k) => {
                let got: Option<String> =
                    tokio::time::timeout(t, ::redis::cmd("GET").arg(k).query_async(&mut conn))
                        .await
                        .map_err(timed)?
                        .map_err(|e| classify(&e))?;
                let v = match got {
                    None => Value::Null,
                    Some(s) => serde_json::from_str(&s).map_err(|e| {
                        ClientError::not_applied(format!("key {k} holds {s:?}, not JSON: {e}"))
                    })?,
                };
                Ok(Completion::ok(v))
            }
            Encoded::ReadSet(k) => {
                let got: Vec<String> =
                    tokio::time::timeout(t, ::redis::cmd("SMEMBERS").arg(k).query_async(&mut conn))
                        .await
                        .map_err(timed)?
                        .map_err(|e| classify(&e))?;
                let mut elems = Vec::with_capacity(got.len());
                for s in got {
                    let v: Value = serde_json::from_str(&s).map_err(|e| {
                        ClientError::not_applied(format!("set {k} holds {s:?}, not JSON: {e}"))
                    })?;
                    elems.push(v);
                }
                // Sorted, so a read reads the same whatever order Redis
                // keeps its members in.
                elems.sort_by(|a, b| match (a.as_f64(), b.as_f64()) {
                    (Some(x), Some(y)) => x.total_cmp(&y),
                    _ => a.to_string().cmp(&b.to_string()),
                });
                Ok(Completion::ok(Value::Array(elems)))
            }
            Encoded::Write(k, v) => {
                let _: () = tokio::time::timeout(
                    t,
                    ::redis::cmd("SET").arg(k).arg(v).query_async(&mut conn),
                )
                .await
                .map_err(timed)?
                .map_err(|e| classify(&e))?;
                Ok(Completion::ok(inv.value.clone()))
            }
            Encoded::Cas(k, old, new) => {
                let missing_is_old = if old.is_null() { "1" } else { "0" };
                let swapped: i64 = tokio::time::timeout(
                    t,
                    ::redis::cmd("EVAL")
                        .arg(CAS_SCRIPT)
                        .arg(1)
                        .arg(k)
                        .arg(old.to_string())
                        .arg(new)
                        .arg(missing_is_old)
                        .query_async(&mut conn),
                )
                .await
                .map_err(timed)?
                .map_err(|e| classify(&e))?;
                if swapped == 1 {
                    Ok(Completion::ok(inv.value.clone()))
                } else {
                    Ok(Completion::fail(
                        inv.value.clone(),
                        json!("cas: value differs"),
                    ))
                }
            }
            Encoded::Add(k, e) => {
                let _: i64 = tokio::time::timeout(
                    t,
                    ::redis::cmd("SADD").arg(k).arg(e).query_async(&mut conn),
                )
                .await
                .map_err(timed)?
                .map_err(|e| classify(&e))?;
                Ok(Completion::ok(inv.value.clone()))
            }
        }
    }
}

#[async_trait::async_trait]
impl Client for RedisClient {
    async fn open(&mut self, node: &str) -> Result<(), ClientError> {
        self.local = None;
        self.master = None;
        let host = match self.nodes.iter().find(|(n, _)| n == node) {
            Some((_, h)) => h.clone(),
            None => {
                let known: Vec<&str> = self.nodes.iter().map(|(n, _)| n.as_str()).collect();
                return Err(ClientError::not_applied(format!(
                    "no redis node {node:?} (known: {})",
                    known.join(", ")
                )));
            }
        };
        self.host = Some(host.clone());
        if self.opts.read_mode == RedisReadMode::Replica {
            let c = self
                .connect(&host, self.opts.port)
                .await
                .map_err(|e| ClientError::not_applied(format!("open {node}: {e}")))?;
            self.local = Some(c);
        }
        // The master is found now when Sentinel answers, else at the
        // first write.
        if let Ok(h) = self.discover().await {
            self.master = Some((h, None));
        }
        Ok(())
    }

    async fn invoke(&mut self, inv: &Invocation) -> Completion {
        let kv_op = match KvOp::decode(inv, self.opts.kind, "redis") {
            Ok(op) => op,
            Err(e) => return Completion::from_error(inv.value.clone(), &e),
        };
        let op = encode(kv_op.clone(), inv, &self.opts);
        let mut done = self.perform(&op, inv).await;
        if op.is_read() && matches!(&done, Err(e) if e.class == ErrorClass::Unknown) {
            // A read changes nothing, so it may be tried again on a fresh
            // connection: a server closes its clients' connections when
            // Sentinel changes its role, which would otherwise cost the
            // final reads.
            self.local = None;
            self.master = None;
            done = self.perform(&op, inv).await;
        }
        if let Err(e) = &done {
            let to_master = !op.is_read() || self.opts.read_mode == RedisReadMode::Primary;
            if to_master {
                // READONLY, a refused connection, a timeout: the master
                // may have changed. Ask Sentinel next time.
                self.master = None;
            }
            if e.class == ErrorClass::Unknown && !to_master {
                // The connection may still carry the lost answer.
                self.local = None;
            }
        }
        kv::settle(&kv_op, inv, done)
    }

    async fn close(&mut self) -> Result<(), ClientError> {
        self.local = None;
        self.master = None;
        self.host = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Process;

    fn inv(f: &str, value: Value, key: Option<Value>) -> Invocation {
        Invocation {
            process: Process::Client(0),
            f: f.into(),
            value,
            key,
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn ops_map_to_keys_by_kind() {
        let reg = RedisClientOptions::default();
        assert_eq!(
            parse_op(&inv("read", Value::Null, Some(json!(3))), &reg).unwrap(),
            Encoded::Read("faultline:register:3".into())
        );
        assert_eq!(
            parse_op(&inv("write", json!(4), Some(json!("3"))), &reg).unwrap(),
            Encoded::Write("faultline:register:\"3\"".into(), "4".into())
        );
        assert_eq!(
            parse_op(&inv("cas", json!([1, 2]), Some(json!(3))), &reg).unwrap(),
            Encoded::Cas("faultline:register:3".into(), json!(1), "2".into())
        );
        let set = RedisClientOptions {
            workload: "set".into(),
            kind: DataKind::Set,
            ..RedisClientOptions::default()
        };
        assert_eq!(
            parse_op(&inv("read", Value::Null, None), &set).unwrap(),
            Encoded::ReadSet("faultline:set:set:null".into())
        );
        assert_eq!(
            parse_op(&inv("add", json!(7), None), &set).unwrap(),
            Encoded::Add("faultline:set:set:null".into(), "7".into())
        );
        let bad = parse_op(&inv("cas", json!(1), Some(json!(3))), &reg).unwrap_err();
        assert_eq!(bad.class, ErrorClass::NotApplied);
        assert!(bad.message.contains("[expected, new]"), "{bad}");
        let bad = parse_op(&inv("append", json!(1), None), &reg).unwrap_err();
        assert!(bad.message.contains("no function \"append\""), "{bad}");
    }

    #[test]
    fn read_modes_parse_and_refuse_others() {
        assert_eq!("replica".parse(), Ok(RedisReadMode::Replica));
        assert_eq!("primary".parse(), Ok(RedisReadMode::Primary));
        assert!("linearizable".parse::<RedisReadMode>().is_err());
        let e = "serializable".parse::<RedisReadMode>().unwrap_err();
        assert!(e.contains("replica") && e.contains("primary"), "{e}");
    }

    #[test]
    fn server_answers_fail_and_transport_errors_are_unknown() {
        let readonly = RedisError::from((
            ErrorKind::Server(::redis::ServerErrorKind::ReadOnly),
            "You can't write against a read only replica.",
        ));
        assert_eq!(classify(&readonly).class, ErrorClass::NotApplied);
        let reset = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert_eq!(classify(&reset).class, ErrorClass::Unknown);
        let timeout = RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut));
        assert_eq!(classify(&timeout).class, ErrorClass::Unknown);
    }

    #[tokio::test]
    async fn refused_connections_fail_without_sending() {
        // Port 1 on the loopback: nothing listens there.
        let f = RedisClientFactory::new(
            [("n1".to_string(), "127.0.0.1".to_string())],
            RedisClientOptions {
                port: 1,
                sentinel_port: 1,
                timeout: Duration::from_secs(1),
                ..RedisClientOptions::default()
            },
        )
        .unwrap();
        let mut c = f.client();
        let e = c.open("n1").await.unwrap_err();
        assert_eq!(e.class, ErrorClass::NotApplied);
        let done = c.invoke(&inv("write", json!(1), Some(json!(1)))).await;
        assert_eq!(done.status, crate::client::Status::Fail, "{done:?}");
        let why = done.error.unwrap().to_string();
        assert!(why.contains("no sentinel named the master"), "{why}");
    }
}
