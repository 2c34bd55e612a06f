//! The etcd client: registers, sets, counters and unique ids on etcd 3.4+
//! through its JSON gateway (counters and ids live in `etcd/classic.rs`;
//! etcd's lock, for the lock-set workload, in `client/lock.rs`).
//!
//! # Why the JSON gateway and not gRPC
//!
//! etcd serves the same v3 API two ways on its client port: gRPC, and a JSON
//! gateway (`POST /v3/kv/range|put|txn`) that grpc-gateway translates into
//! the same gRPC calls inside the server. The operations and their semantics
//! (linearizable or serializable ranges, txn compares) are identical; what
//! differs is the cost on our side:
//!
//! - **Build.** The `etcd-client` crate generates its code with `protoc` at
//!   build time (a Debian package every developer and CI image must carry)
//!   and took ~3 minutes to build alone on this 2-core machine; CI has 90
//!   minutes on 2 cores for everything. The gateway needs plain HTTP/1.1:
//!   `hyper` (client, http1 only), which compiles in seconds and is also what
//!   `etcd-client` would have pulled in underneath `tonic`.
//! - **Knowing whether a request was sent.** The whole value of a client
//!   here is classifying errors into `fail` (certainly not applied) and
//!   `info` (unknown). With one HTTP/1.1 connection per client that we own,
//!   hyper's `try_send_request` hands the request back when it was never
//!   written, so "refused before sending" is exact; everything after that
//!   is `info`. A gRPC channel multiplexes, reconnects and retries under us,
//!   which makes the same distinction harder to see, not easier.
//! - **Status codes.** gRPC's typed codes are what we would classify by;
//!   the gateway maps each to an HTTP status (Unavailable → 503,
//!   InvalidArgument/FailedPrecondition/OutOfRange → 400, DeadlineExceeded →
//!   504, ...) and repeats the code in the body, so nothing is lost.
//!
//! The price: keys and values are base64 in JSON, 64-bit integers come back
//! as strings, and false/empty fields are omitted (`succeeded`, `kvs`,
//! `more`). Those are handled by the small response types below.
//!
//! # Data layout
//!
//! Every key lives under `/faultline/<workload>/`. A register key is the
//! JSON text of the faultline key (`/faultline/register/3`,
//! `/faultline/register/"a"`; the quotes keep `3` and `"3"` apart), and its
//! value is the JSON text of the written value. A set is one etcd key per
//! element, `/faultline/set/<key>/<element>` (the key is `null` for an
//! unkeyed set): an add is a single put, idempotent and independent of every
//! other add, and the final read is one range over the prefix with
//! `keys_only`, paged at a fixed revision so even a large set is read as one
//! consistent snapshot.
//!
//! Transactions of the `list-append` and `rw-register` workloads (`f =
//! "txn"`) live in the `txn` submodule: a read of every key, then one etcd
//! txn comparing each key's `mod_revision`.
//!
//! # Classification
//!
//! `fail` (certainly not applied): a compare that did not match, a request
//! that was never sent (connection refused, connect or DNS error, connect
//! timeout, a connection found closed before writing), HTTP 400 (invalid
//! argument, checked before proposing), 401/403/404. `info` (unknown):
//! anything after the request was written — a timeout, a reset, a 503 (code
//! 14, e.g. from a minority after etcd's own ~7 s), any other non-2xx, an
//! unparsable body. Reads are the exception: a read changes nothing, so
//! an unknown read is recorded `fail` (as Jepsen's etcd client does), which
//! keeps it out of the linearizability search instead of leaving it open
//! forever.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::client::conn::http1;
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::db::Etcd;
pub use crate::client::kv::DataKind;
use crate::client::kv::{self, KvOp};
use crate::client::{Client, ClientError, ClientFactory, Completion, ErrorClass, Invocation};
use crate::cluster::Node;
use gateway::*;

/// Which reads etcd serves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadMode {
    /// Through the leader's read index: linearizable (etcd's default).
    #[default]
    Linearizable,
    /// From the node's local state, possibly stale (`serializable: true`);
    /// under partitions this shows stale reads the checker must catch.
    Serializable,
}

impl FromStr for ReadMode {
    type Err = String;

    fn from_str(s: &str) -> Result<ReadMode, String> {
        match s {
            "linearizable" => Ok(ReadMode::Linearizable),
            "serializable" => Ok(ReadMode::Serializable),
            other => Err(format!(
                "unknown read mode {other:?}; use linearizable or serializable"
            )),
        }
    }
}

impl fmt::Display for ReadMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReadMode::Linearizable => "linearizable",
            ReadMode::Serializable => "serializable",
        })
    }
}

/// How the etcd clients behave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdClientOptions {
    /// Linearizable (default) or serializable reads.
    pub read_mode: ReadMode,
    /// The longest one operation may take, connect included; an
    /// invocation's own (shorter) timeout wins.
    pub timeout: Duration,
    /// The workload's name: keys live under `/faultline/<workload>/`, so
    /// runs of different workloads on one cluster do not see each other.
    pub workload: String,
    /// Registers or sets.
    pub kind: DataKind,
    /// Keys per page when reading a set (the pages share one revision).
    pub set_page: u32,
    /// The lock's lease and the length of an add, for the lock-set
    /// workload ([`DataKind::Lock`]).
    pub lock: LockOptions,
}

impl Default for EtcdClientOptions {
    fn default() -> Self {
        EtcdClientOptions {
            read_mode: ReadMode::Linearizable,
            timeout: Duration::from_secs(5),
            workload: "register".into(),
            kind: DataKind::Register,
            set_page: 10_000,
            lock: LockOptions::default(),
        }
    }
}

/// Where one node's etcd listens: parsed from its `http://host:port` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Endpoint {
    /// The host to connect to (IPv6 without brackets).
    host: String,
    port: u16,
    /// `host:port` as written in the URL, for the `Host` header.
    authority: String,
}

impl Endpoint {
    fn parse(url: &str) -> Result<Endpoint, String> {
        let rest = url.strip_prefix("http://").ok_or_else(|| {
            format!("etcd URL {url:?}: only http:// is supported (the gateway client has no TLS)")
        })?;
        let authority = rest.trim_end_matches('/');
        if authority.is_empty() || authority.contains('/') {
            return Err(format!("etcd URL {url:?}: expected http://host:port"));
        }
        let (host, port) = match authority.strip_prefix('[') {
            Some(v6) => {
                let (h, p) = v6
                    .split_once(']')
                    .ok_or_else(|| format!("etcd URL {url:?}: unclosed '['"))?;
                (h, p.strip_prefix(':').unwrap_or(""))
            }
            None => authority.rsplit_once(':').unwrap_or((authority, "")),
        };
        let port = if port.is_empty() {
            2379
        } else {
            port.parse()
                .map_err(|_| format!("etcd URL {url:?}: bad port {port:?}"))?
        };
        if host.is_empty() {
            return Err(format!("etcd URL {url:?}: no host"));
        }
        Ok(Endpoint {
            host: host.to_string(),
            port,
            authority: authority.to_string(),
        })
    }
}

/// Makes one [`EtcdClient`] per worker, all sharing the node → URL map.
///
/// The runner opens worker `w`'s client on `nodes[w % nodes.len()]`; pass the
/// endpoints in the same order and [`EtcdClientFactory::node_for`] names the
/// same node, round-robin.
#[derive(Clone, Debug)]
pub struct EtcdClientFactory {
    endpoints: Arc<Vec<(String, Endpoint)>>,
    opts: Arc<EtcdClientOptions>,
    /// The set the lock-set workload's lock guards, one for every client.
    shared: SharedSet,
}

impl EtcdClientFactory {
    /// Clients of the nodes `endpoints` (node name, `http://host:port`).
    /// Errors name a URL that cannot be used.
    pub fn new<I, N, U>(endpoints: I, opts: EtcdClientOptions) -> Result<Self, ClientError>
    where
        I: IntoIterator<Item = (N, U)>,
        N: Into<String>,
        U: AsRef<str>,
    {
        let mut parsed = Vec::new();
        for (node, url) in endpoints {
            let ep = Endpoint::parse(url.as_ref()).map_err(ClientError::not_applied)?;
            parsed.push((node.into(), ep));
        }
        if parsed.is_empty() {
            return Err(ClientError::not_applied("no etcd endpoints"));
        }
        Ok(EtcdClientFactory {
            endpoints: Arc::new(parsed),
            opts: Arc::new(opts),
            shared: SharedSet::default(),
        })
    }

    /// Clients of every node of `nodes`, at the client URL `etcd` runs them on.
    pub fn for_etcd(
        etcd: &Etcd,
        nodes: &[Node],
        opts: EtcdClientOptions,
    ) -> Result<Self, ClientError> {
        Self::new(
            nodes
                .iter()
                .map(|n| (n.name().to_string(), etcd.client_url(n))),
            opts,
        )
    }

    /// The options every client gets.
    pub fn options(&self) -> &EtcdClientOptions {
        &self.opts
    }

    /// The set the lock-set workload's lock guards, shared by every
    /// client this factory makes.
    pub fn shared_set(&self) -> &SharedSet {
        &self.shared
    }

    /// Worker `worker`'s node: round-robin over the endpoints, in order.
    pub fn node_for(&self, worker: usize) -> &str {
        // `new` refuses an empty list, so the modulus is never zero.
        &self.endpoints[worker % self.endpoints.len()].0
    }

    /// A new, unopened client.
    pub fn client(&self) -> EtcdClient {
        EtcdClient {
            endpoints: Arc::clone(&self.endpoints),
            opts: Arc::clone(&self.opts),
            node: None,
            conn: None,
            held: None,
            shared: self.shared.clone(),
        }
    }

    /// The factory the runner takes: one boxed client per worker.
    pub fn into_factory(self) -> ClientFactory {
        Box::new(move |_worker| Box::new(self.client()) as Box<dyn crate::client::Client>)
    }
}

/// One HTTP/1.1 connection to a node's gateway.
struct Conn {
    sender: http1::SendRequest<Full<Bytes>>,
    /// Drives the connection; aborted on drop so a closed client leaves no
    /// task holding the socket.
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A client of one etcd node, used by one worker at a time.
pub struct EtcdClient {
    endpoints: Arc<Vec<(String, Endpoint)>>,
    opts: Arc<EtcdClientOptions>,
    /// The node opened on, and where it listens.
    node: Option<(String, Endpoint)>,
    conn: Option<Conn>,
    /// The lease and lock this client holds (lock-set workload); kept
    /// when the client is closed and reopened, dropped with it.
    held: Option<lock::Held>,
    /// The set the lock guards, shared with every client of the factory.
    shared: SharedSet,
}

impl fmt::Debug for EtcdClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdClient")
            .field("node", &self.node.as_ref().map(|(n, _)| n))
            .field("connected", &self.conn.is_some())
            .field("opts", &self.opts)
            .finish()
    }
}

/// One operation, checked and encoded before anything is sent.
#[derive(Debug, PartialEq)]
enum Encoded {
    /// A register read: one range.
    Read { key: Vec<u8> },
    /// A put of the value's JSON text.
    Write { key: Vec<u8>, value: String },
    /// A txn: compare with `old`, put `new` on success.
    Cas {
        key: Vec<u8>,
        old: Value,
        new: String,
    },
    /// A put of the element's own key.
    Add { key: Vec<u8>, element: String },
    /// Paged ranges over the set's prefix.
    ReadSet { prefix: Vec<u8> },
}

/// The etcd key of a register: the JSON text of the faultline key.
fn register_key(workload: &str, key: Option<&Value>) -> Vec<u8> {
    format!("/faultline/{workload}/{}", key.unwrap_or(&Value::Null)).into_bytes()
}

/// The prefix of a set's element keys (one etcd key per element).
fn set_prefix(workload: &str, key: Option<&Value>) -> Vec<u8> {
    format!("/faultline/{workload}/{}/", key.unwrap_or(&Value::Null)).into_bytes()
}

/// The smallest key greater than every key starting with `prefix` (etcd's
/// `range_end` for a prefix read).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // All 0xff (or empty): every key from the prefix on, etcd's "\0".
    vec![0]
}

/// The etcd request of an invocation, decoded by the shared rules
/// ([`kv::KvOp`]).
#[cfg(test)]
fn parse_op(inv: &Invocation, opts: &EtcdClientOptions) -> Result<Encoded, ClientError> {
    Ok(encode(KvOp::decode(inv, opts.kind, "etcd")?, inv, opts))
}

/// The etcd request of a key-value operation on the invocation's key.
fn encode(op: KvOp, inv: &Invocation, opts: &EtcdClientOptions) -> Encoded {
    let w = &opts.workload;
    let key = Some(kv::key(inv));
    match op {
        KvOp::Read => Encoded::Read {
            key: register_key(w, key),
        },
        KvOp::ReadSet => Encoded::ReadSet {
            prefix: set_prefix(w, key),
        },
        KvOp::Write(v) => Encoded::Write {
            key: register_key(w, key),
            value: v.to_string(),
        },
        KvOp::Cas { expected, new } => Encoded::Cas {
            key: register_key(w, key),
            old: expected,
            new: new.to_string(),
        },
        KvOp::Add(e) => {
            let mut k = set_prefix(w, key);
            k.extend_from_slice(e.to_string().as_bytes());
            Encoded::Add {
                key: k,
                element: e.to_string(),
            }
        }
    }
}

impl EtcdClient {
    /// The node this client is open on, if it is.
    pub fn node(&self) -> Option<&str> {
        self.node.as_ref().map(|(n, _)| n.as_str())
    }

    /// How long an operation may take: the configured timeout, or a little
    /// less than the invocation's so our own classification (sent or not)
    /// reaches the runner before its timer records a bare `info`.
    fn op_timeout(&self, inv: &Invocation) -> Duration {
        self.opts.timeout.min(self.invocation_timeout(inv))
    }

    /// A little less than the invocation's own timeout (the configured one
    /// when it has none), for an operation the generator lets wait longer
    /// than the run's operation timeout: a lock acquire.
    fn invocation_timeout(&self, inv: &Invocation) -> Duration {
        if inv.timeout.is_zero() {
            return self.opts.timeout;
        }
        let margin = (inv.timeout / 20).min(Duration::from_millis(100));
        inv.timeout.saturating_sub(margin)
    }

    async fn connect(ep: &Endpoint, deadline: Instant) -> Result<Conn, ClientError> {
        let stream = match tokio::time::timeout_at(
            deadline,
            TcpStream::connect((ep.host.as_str(), ep.port)),
        )
        .await
        {
            Err(_) => {
                return Err(ClientError::not_applied(format!(
                    "connect to {}: timed out",
                    ep.authority
                )))
            }
            Ok(Err(e)) => {
                return Err(ClientError::not_applied(format!(
                    "connect to {}: {e}",
                    ep.authority
                )))
            }
            Ok(Ok(s)) => s,
        };
        // Small requests, one at a time: Nagle would only add latency.
        stream
            .set_nodelay(true)
            .map_err(|e| ClientError::not_applied(format!("connect to {}: {e}", ep.authority)))?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ClientError::not_applied(format!("connect to {}: {e}", ep.authority)))?;
        let task = tokio::spawn(async move {
            // The connection's end (or error) reaches the sender too: the
            // next request sees it and reconnects, so nothing to do here.
            let _ = conn.await;
        });
        Ok(Conn { sender, task })
    }

    /// A connection ready for a request, made afresh if the old one closed.
    /// Every error here is before sending, hence `not_applied`.
    async fn ready(&mut self, deadline: Instant) -> Result<&mut Conn, ClientError> {
        let Some((_, ep)) = &self.node else {
            return Err(ClientError::not_applied("client not open"));
        };
        let ep = ep.clone();
        if self.conn.as_ref().is_some_and(|c| c.sender.is_closed()) {
            self.conn = None;
        }
        if let Some(conn) = &mut self.conn {
            match tokio::time::timeout_at(deadline, conn.sender.ready()).await {
                Ok(Ok(())) => {}
                // Closed since (etcd restarted, idle close): reconnect below.
                Ok(Err(_)) => self.conn = None,
                Err(_) => {
                    return Err(ClientError::not_applied(format!(
                        "{}: connection busy until the deadline",
                        ep.authority
                    )))
                }
            }
        }
        if self.conn.is_none() {
            self.conn = Some(Self::connect(&ep, deadline).await?);
        }
        self.conn
            .as_mut()
            .ok_or_else(|| ClientError::not_applied("no connection"))
    }

    /// POSTs `body` to `path` and returns the answer's body if it is a 200.
    async fn post(
        &mut self,
        path: &str,
        body: &Value,
        deadline: Instant,
    ) -> Result<Bytes, ClientError> {
        let authority = match &self.node {
            Some((_, ep)) => ep.authority.clone(),
            None => return Err(ClientError::not_applied("client not open")),
        };
        let payload = Bytes::from(body.to_string());
        // A connection can close between `ready` and the write (etcd
        // restarted, an idle close): hyper then hands the request back
        // unsent, and one retry on a fresh connection makes it a real
        // attempt instead of a needless `fail`.
        let mut retried = false;
        loop {
            let conn = self.ready(deadline).await?;
            let left = deadline.saturating_duration_since(Instant::now());
            let req = Request::post(path)
                .header(hyper::header::HOST, authority.as_str())
                .header(hyper::header::CONTENT_TYPE, "application/json")
                // grpc-gateway turns this into the gRPC deadline, so etcd
                // gives up when we do instead of working on for nobody.
                .header("grpc-timeout", format!("{}m", left.as_millis().max(1)))
                .body(Full::new(payload.clone()))
                .map_err(|e| {
                    ClientError::not_applied(format!("{path}: cannot build request: {e}"))
                })?;
            let where_ = format!("{authority}{path}");
            match tokio::time::timeout_at(deadline, exchange(conn, req, &where_)).await {
                Err(_) => {
                    return Err(ClientError::unknown(format!(
                        "{where_}: no answer before the deadline"
                    )))
                }
                Ok(Attempt::NotSent(_)) if !retried => {
                    retried = true;
                    self.conn = None;
                }
                Ok(Attempt::NotSent(why)) => {
                    return Err(ClientError::not_applied(format!(
                        "{where_}: not sent: {why}"
                    )))
                }
                Ok(Attempt::Failed(e)) => return Err(e),
                Ok(Attempt::Answer(200, bytes)) => return Ok(bytes),
                Ok(Attempt::Answer(status, bytes)) => return Err(classify_status(status, &bytes)),
            }
        }
    }

    fn serializable(&self) -> bool {
        self.opts.read_mode == ReadMode::Serializable
    }

    async fn perform(
        &mut self,
        op: &Encoded,
        inv: &Invocation,
        deadline: Instant,
    ) -> Result<Completion, ClientError> {
        match op {
            Encoded::Read { key } => {
                let mut body = json!({ "key": b64(key) });
                if self.serializable() {
                    body["serializable"] = json!(true);
                }
                let bytes = self.post("/v3/kv/range", &body, deadline).await?;
                let r: RangeResponse = parse_body("read", &bytes)?;
                check_header("read", &r.header, &bytes)?;
                Ok(Completion::ok(register_value(&r)?))
            }
            Encoded::Write { key, value }
            | Encoded::Add {
                key,
                element: value,
            } => {
                let body = json!({ "key": b64(key), "value": b64(value.as_bytes()) });
                let bytes = self.post("/v3/kv/put", &body, deadline).await?;
                let r: PutResponse = parse_body(&inv.f, &bytes)?;
                check_header(&inv.f, &r.header, &bytes)?;
                Ok(Completion::ok(inv.value.clone()))
            }
            Encoded::Cas { key, old, new } => {
                // Expecting null means expecting the key to be absent: a
                // VALUE compare on a missing key never matches in etcd, so
                // compare its create revision with 0 instead.
                let compare = if old.is_null() {
                    json!({ "key": b64(key), "target": "CREATE", "result": "EQUAL",
                            "create_revision": "0" })
                } else {
                    json!({ "key": b64(key), "target": "VALUE", "result": "EQUAL",
                            "value": b64(old.to_string().as_bytes()) })
                };
                let body = json!({
                    "compare": [compare],
                    "success": [{ "request_put": { "key": b64(key), "value": b64(new.as_bytes()) } }],
                });
                let bytes = self.post("/v3/kv/txn", &body, deadline).await?;
                let r: TxnResponse = parse_body("cas", &bytes)?;
                check_header("cas", &r.header, &bytes)?;
                if r.succeeded {
                    Ok(Completion::ok(inv.value.clone()))
                } else {
                    Ok(Completion::fail(
                        inv.value.clone(),
                        crate::model::CAS_MISMATCH,
                    ))
                }
            }
            Encoded::ReadSet { prefix } => {
                let end = prefix_end(prefix);
                let mut start = prefix.clone();
                let mut revision = 0i64;
                let mut elements = Vec::new();
                loop {
                    let mut body = json!({
                        "key": b64(&start),
                        "range_end": b64(&end),
                        "keys_only": true,
                        "limit": self.opts.set_page.max(1),
                    });
                    if revision == 0 {
                        if self.serializable() {
                            body["serializable"] = json!(true);
                        }
                    } else {
                        // Later pages read the revision of the first, so the
                        // set is one snapshot. The node has applied it
                        // already, so a local read of it is exact.
                        body["revision"] = json!(revision.to_string());
                        body["serializable"] = json!(true);
                    }
                    let bytes = self.post("/v3/kv/range", &body, deadline).await?;
                    let r: RangeResponse = parse_body("read", &bytes)?;
                    check_header("read", &r.header, &bytes)?;
                    if revision == 0 {
                        revision = r.header.revision;
                    }
                    let mut last = None;
                    for kv in &r.kvs {
                        let k = unb64("read", &kv.key)?;
                        elements.push(set_element(prefix, &k)?);
                        last = Some(k);
                    }
                    match (r.more, last) {
                        (true, Some(mut k)) => {
                            // The next key after the last one read.
                            k.push(0);
                            start = k;
                        }
                        (true, None) => {
                            return Err(ClientError::unknown(
                                "read: etcd said more keys but sent none",
                            ))
                        }
                        (false, _) => break,
                    }
                }
                // Pages come in key order, which is text order ("10" < "9").
                elements.sort_unstable();
                Ok(Completion::ok(Value::Array(
                    elements.into_iter().map(element_value).collect(),
                )))
            }
        }
    }
}

#[async_trait::async_trait]
impl Client for EtcdClient {
    async fn open(&mut self, node: &str) -> Result<(), ClientError> {
        self.conn = None;
        self.node = None;
        let ep = match self.endpoints.iter().find(|(n, _)| n == node) {
            Some((_, ep)) => ep.clone(),
            // A URL names its node itself (handy for tools and tests).
            None if node.starts_with("http://") => {
                Endpoint::parse(node).map_err(ClientError::not_applied)?
            }
            None => {
                let known: Vec<&str> = self.endpoints.iter().map(|(n, _)| n.as_str()).collect();
                return Err(ClientError::not_applied(format!(
                    "no etcd endpoint for node {node:?} (known: {})",
                    known.join(", ")
                )));
            }
        };
        let deadline = Instant::now() + self.opts.timeout;
        let conn = Self::connect(&ep, deadline)
            .await
            .map_err(|e| ClientError::not_applied(format!("open {node}: {e}")))?;
        self.conn = Some(conn);
        self.node = Some((node.to_string(), ep));
        Ok(())
    }

    async fn invoke(&mut self, inv: &Invocation) -> Completion {
        if self.opts.kind == DataKind::Lock {
            return self.invoke_lock(inv).await;
        }
        if inv.f == "txn" {
            return self.invoke_txn(inv).await;
        }
        if let Some(c) = self.invoke_classic(inv).await {
            return c;
        }
        let op = match KvOp::decode(inv, self.opts.kind, "etcd") {
            Ok(op) => op,
            Err(e) => return Completion::from_error(inv.value.clone(), &e),
        };
        let request = encode(op.clone(), inv, &self.opts);
        let deadline = Instant::now() + self.op_timeout(inv);
        let done = self.perform(&request, inv, deadline).await;
        if matches!(&done, Err(e) if e.class == ErrorClass::Unknown) {
            // The connection may still carry the lost answer: a fresh one
            // keeps answers from being misattributed.
            self.conn = None;
        }
        kv::settle(&op, inv, done)
    }

    async fn close(&mut self) -> Result<(), ClientError> {
        self.conn = None;
        self.node = None;
        Ok(())
    }
}

mod classic;
mod gateway;
mod lock;
mod txn;

pub use lock::{LockOptions, SharedSet};

#[cfg(test)]
mod tests;
