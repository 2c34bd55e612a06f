//! A NATS JetStream client for the queue workload, speaking the NATS text
//! protocol over a tokio `TcpStream` (`proto.rs`; why no crate:
//! docs/nats.md).
//!
//! Each client holds one connection to ONE server, the node its worker is
//! assigned. The queue is the stream [`STREAM`] (subject [`SUBJECT`], file
//! storage, work-queue retention, replicas = the cluster's size) read
//! through the durable pull consumer [`CONSUMER`] (explicit acks); the
//! first client to open creates both (an identical create is a no-op), so
//! that the consumer's ack wait is the test's operation timeout: a message
//! handed to a client is redelivered only once that client's operation
//! has certainly ended.
//!
//! - `enqueue v`: publish `v`'s JSON with a reply subject; JetStream's
//!   acknowledgement (`{"stream":..,"seq":..}`) is `ok`, a definite error
//!   reply (`{"error":..}`, or `503` no responders: no server took it) is
//!   `fail`, a timeout or a lost connection is `info`.
//! - `dequeue`: fetch one message (`CONSUMER.MSG.NEXT`, `batch` 1,
//!   `no_wait`), then ack it and wait for the ack's confirmation: the
//!   element is `ok` once confirmed; an empty consumer (`404`/`408`) is
//!   `fail` with error `empty`, as the queue checker expects; no message
//!   or an ack answered `503` (nobody took it: the message will be
//!   redelivered) is `fail`; a timeout after the fetch was sent is `info`.
//! - `drain`: dequeues until the consumer is empty — no message to fetch
//!   and none waiting for an ack (`CONSUMER.INFO`: `num_pending` and
//!   `num_ack_pending` both 0), so an element held by a concurrent dequeue
//!   that may give it back is waited for; `ok` with every element taken.
//!   Each request may take a second at most (then a new connection and
//!   another try), so one lost request does not use up the drain. If the
//!   time runs out first with elements taken the drain is `info` (those
//!   elements were consumed, but the queue is not known to be empty),
//!   else `fail`.

use super::db::{api_reply, status_text, CONSUMER, STREAM, SUBJECT};
use super::proto::{self, Frame, Message};
use crate::client::servers::Servers;
use crate::client::{Client, ClientError, ClientFactory, Completion, Invocation};
use crate::cluster::Node;
use serde_json::{json, Value};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// How the clients behave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatsClientOptions {
    /// The longest one operation may take; also the consumer's ack wait.
    pub timeout: Duration,
    /// The stream's replicas (the cluster's size).
    pub replicas: usize,
}

impl Default for NatsClientOptions {
    fn default() -> Self {
        NatsClientOptions {
            timeout: Duration::from_secs(5),
            replicas: 3,
        }
    }
}

/// Makes the clients of a test.
#[derive(Clone, Debug)]
pub struct NatsClientFactory {
    servers: Servers,
    opts: Arc<NatsClientOptions>,
    /// Whether the stream and consumer exist (made by the first open).
    ready: Arc<tokio::sync::Mutex<bool>>,
}

impl NatsClientFactory {
    /// Clients of the servers `servers` (node name, `host:port`).
    pub fn new<I, N, A>(servers: I, opts: NatsClientOptions) -> Result<Self, ClientError>
    where
        I: IntoIterator<Item = (N, A)>,
        N: Into<String>,
        A: Into<String>,
    {
        let servers = Servers::new("NATS", servers)?;
        Ok(NatsClientFactory {
            servers,
            opts: Arc::new(opts),
            ready: Arc::new(tokio::sync::Mutex::new(false)),
        })
    }

    /// Clients of every node of `nodes`, through `nats`'s client port.
    pub fn for_nodes(
        nats: &super::Nats,
        nodes: &[Node],
        opts: NatsClientOptions,
    ) -> Result<Self, ClientError> {
        Ok(NatsClientFactory {
            servers: Servers::on_nodes("NATS", nodes, nats.client_port())?,
            opts: Arc::new(opts),
            ready: Arc::new(tokio::sync::Mutex::new(false)),
        })
    }

    /// A new, unopened client.
    pub fn client(&self) -> NatsClient {
        NatsClient {
            servers: self.servers.clone(),
            opts: Arc::clone(&self.opts),
            ready: Arc::clone(&self.ready),
            opened_on: None,
            conn: None,
        }
    }

    /// The factory the runner takes: one boxed client per worker.
    pub fn into_factory(self) -> ClientFactory {
        Box::new(move |_worker| Box::new(self.client()) as Box<dyn Client>)
    }
}

/// A connection to one server, used by one worker at a time.
pub struct NatsClient {
    servers: Servers,
    opts: Arc<NatsClientOptions>,
    ready: Arc<tokio::sync::Mutex<bool>>,
    /// The server's `host:port`, once opened.
    opened_on: Option<String>,
    conn: Option<Conn>,
}

impl fmt::Debug for NatsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsClient")
            .field("server", &self.conn.as_ref().map(|c| c.addr.clone()))
            .field("opts", &self.opts)
            .finish()
    }
}

/// Why a request got no answer: `sent` says whether any of it may have
/// reached the server.
#[derive(Debug)]
struct Failed {
    sent: bool,
    why: String,
}

/// One connection and its read buffer; every request has its own inbox
/// subscription, so a late answer to an earlier request is never taken
/// for the answer to this one.
struct Conn {
    addr: String,
    stream: TcpStream,
    buf: Vec<u8>,
    /// The last subscription id used.
    sid: u64,
    /// The inbox prefix, unique per connection.
    inbox: String,
}

impl Conn {
    async fn open(addr: &str, deadline: Instant) -> Result<Conn, String> {
        let stream = tokio::time::timeout_at(deadline, TcpStream::connect(addr))
            .await
            .map_err(|_| format!("{addr}: no connection before the timeout"))?
            .map_err(|e| format!("{addr}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let mut c = Conn {
            addr: addr.to_string(),
            stream,
            buf: Vec::new(),
            sid: 0,
            inbox: format!("_INBOX.fl{nanos:x}{:x}", rand::random::<u32>()),
        };
        // The server's INFO first, then CONNECT + PING; its PONG says the
        // CONNECT was accepted.
        loop {
            match c.frame(deadline).await.map_err(|f| f.why)? {
                Frame::Info(_) => break,
                Frame::Err(e) => return Err(format!("{addr}: -ERR {e}")),
                _ => {}
            }
        }
        c.write(&proto::connect()).await.map_err(|f| f.why)?;
        loop {
            match c.frame(deadline).await.map_err(|f| f.why)? {
                Frame::Pong => return Ok(c),
                Frame::Err(e) => return Err(format!("{addr}: -ERR {e}")),
                _ => {}
            }
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), Failed> {
        self.stream.write_all(bytes).await.map_err(|e| Failed {
            sent: true,
            why: format!("{}: {e}", self.addr),
        })
    }

    /// The next frame from the server, answering its PINGs on the way.
    async fn frame(&mut self, deadline: Instant) -> Result<Frame, Failed> {
        loop {
            match proto::parse(&self.buf) {
                Ok(Some((frame, used))) => {
                    self.buf.drain(..used);
                    if frame == Frame::Ping {
                        self.write(proto::PONG).await?;
                        continue;
                    }
                    return Ok(frame);
                }
                Ok(None) => {}
                Err(e) => {
                    return Err(Failed {
                        sent: true,
                        why: format!("{}: {e}", self.addr),
                    })
                }
            }
            let mut chunk = [0u8; 16 * 1024];
            let n = tokio::time::timeout_at(deadline, self.stream.read(&mut chunk))
                .await
                .map_err(|_| Failed {
                    sent: true,
                    why: format!("{}: no answer before the timeout", self.addr),
                })?
                .map_err(|e| Failed {
                    sent: true,
                    why: format!("{}: {e}", self.addr),
                })?;
            if n == 0 {
                return Err(Failed {
                    sent: true,
                    why: format!("{}: the server closed the connection", self.addr),
                });
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Publishes `payload` to `subject` with a fresh inbox as the reply
    /// subject, and waits for the one message sent to it.
    async fn request(
        &mut self,
        subject: &str,
        payload: &[u8],
        deadline: Instant,
    ) -> Result<Message, Failed> {
        self.sid += 1;
        let sid = self.sid;
        let inbox = format!("{}.{sid}", self.inbox);
        let mut out = proto::sub(&inbox, sid);
        out.extend(proto::publish(subject, Some(&inbox), payload));
        self.write(&out).await?;
        let answer = loop {
            match self.frame(deadline).await {
                Ok(Frame::Msg(m)) if m.sid == sid => break Ok(m),
                Ok(Frame::Err(e)) => {
                    break Err(Failed {
                        sent: true,
                        why: format!("{}: -ERR {e}", self.addr),
                    })
                }
                Ok(_) => {}
                Err(f) => break Err(f),
            }
        };
        // Nothing more is wanted on that inbox; a failed write here shows
        // on the next request.
        let _ = self.write(&proto::unsub(sid)).await;
        answer
    }
}

/// What one fetch-and-ack ended with.
enum Took {
    /// An element, its ack confirmed.
    Element(Value),
    /// The consumer had nothing to hand out.
    Empty,
}

/// Why a fetch-and-ack did not take an element: certainly not (`fail`),
/// or unknown (`info`).
enum NotTaken {
    Fail(String),
    Unknown(String),
}

/// The stream's configuration.
fn stream_config(replicas: usize) -> Value {
    json!({
        "name": STREAM,
        "subjects": [SUBJECT],
        "retention": "workqueue",
        "storage": "file",
        "num_replicas": replicas,
        "discard": "old",
    })
}

/// The durable pull consumer's configuration.
fn consumer_config(ack_wait: Duration) -> Value {
    json!({
        "stream_name": STREAM,
        "config": {
            "durable_name": CONSUMER,
            "deliver_policy": "all",
            "ack_policy": "explicit",
            "ack_wait": u64::try_from(ack_wait.as_nanos()).unwrap_or(u64::MAX),
            "max_deliver": -1,
        }
    })
}

const NEXT: &str = "$JS.API.CONSUMER.MSG.NEXT";

/// The longest one request of a drain may wait before the drain tries
/// again on a new connection.
const DRAIN_STEP: Duration = Duration::from_secs(1);

impl NatsClient {
    fn conn(&mut self) -> Result<&mut Conn, Failed> {
        self.conn.as_mut().ok_or_else(|| Failed {
            sent: false,
            why: "not connected".into(),
        })
    }

    /// Creates the stream and the consumer unless a client of this test
    /// already has; an identical create is harmless.
    async fn ensure_queue(&mut self, deadline: Instant) -> Result<(), String> {
        let ready = Arc::clone(&self.ready);
        let mut ready = ready.lock().await;
        if *ready {
            return Ok(());
        }
        let stream = stream_config(self.opts.replicas).to_string();
        let consumer = consumer_config(self.opts.timeout).to_string();
        let conn = self.conn().map_err(|f| f.why)?;
        for (subject, body) in [
            (format!("$JS.API.STREAM.CREATE.{STREAM}"), stream),
            (
                format!("$JS.API.CONSUMER.DURABLE.CREATE.{STREAM}.{CONSUMER}"),
                consumer,
            ),
        ] {
            let reply = conn
                .request(&subject, body.as_bytes(), deadline)
                .await
                .map_err(|f| f.why)?;
            api_reply(&reply).map_err(|e| format!("{subject}: {e}"))?;
        }
        *ready = true;
        Ok(())
    }

    async fn enqueue(&mut self, v: &Value, deadline: Instant) -> Completion {
        let payload = v.to_string();
        let answer = match self.conn() {
            Ok(c) => c.request(SUBJECT, payload.as_bytes(), deadline).await,
            Err(f) => Err(f),
        };
        match answer {
            Ok(m) => match api_reply(&m) {
                Ok(ack) if ack["seq"].is_u64() => Completion::ok(v.clone()),
                Ok(other) => Completion::info(
                    v.clone(),
                    format!("an acknowledgement without a sequence number: {other}"),
                ),
                Err(e) => Completion::fail(v.clone(), e),
            },
            Err(f) if f.sent => Completion::info(v.clone(), f.why),
            Err(f) => Completion::fail(v.clone(), f.why),
        }
    }

    /// Fetches one message and acks it.
    async fn take(&mut self, deadline: Instant) -> Result<Took, NotTaken> {
        // Only an ack consumes a message: whatever happened to the fetch,
        // a message it may have brought is redelivered after the ack wait.
        let conn = self.conn().map_err(|f| NotTaken::Fail(f.why))?;
        let next = format!("{NEXT}.{STREAM}.{CONSUMER}");
        let m = conn
            .request(&next, br#"{"batch":1,"no_wait":true}"#, deadline)
            .await
            .map_err(|f| NotTaken::Fail(format!("fetch: {}", f.why)))?;
        match m.status {
            Some(404 | 408) => return Ok(Took::Empty),
            Some(code) => return Err(NotTaken::Fail(status_text(code, &m.description))),
            None => {}
        }
        let Some(ack) = m.reply.clone().filter(|r| r.starts_with("$JS.ACK.")) else {
            // An API error in JSON: nothing was handed out.
            return Err(NotTaken::Fail(match api_reply(&m) {
                Err(e) => e,
                Ok(v) => format!("a reply that is not a message: {v:.200}"),
            }));
        };
        let element: Value = match serde_json::from_slice(&m.payload) {
            Ok(v) => v,
            // Not one of ours; acked anyway (below) so it does not come
            // back, and reported as the text it was.
            Err(_) => Value::String(String::from_utf8_lossy(&m.payload).into_owned()),
        };
        let confirmed = conn.request(&ack, b"+ACK", deadline).await;
        match confirmed {
            Ok(a) => match a.status {
                // Nobody took the ack: the message will be redelivered.
                Some(code) => Err(NotTaken::Fail(format!(
                    "ack of {element}: {}",
                    status_text(code, &a.description)
                ))),
                None => Ok(Took::Element(element)),
            },
            Err(f) => Err(NotTaken::Unknown(format!("ack of {element}: {}", f.why))),
        }
    }

    async fn dequeue(&mut self, deadline: Instant) -> Completion {
        match self.take(deadline).await {
            Ok(Took::Element(v)) => Completion::ok(v),
            Ok(Took::Empty) => Completion::fail(Value::Null, "empty"),
            Err(NotTaken::Fail(e)) => Completion::fail(Value::Null, e),
            Err(NotTaken::Unknown(e)) => Completion::info(Value::Null, e),
        }
    }

    /// Whether the consumer has nothing left: none to deliver, none
    /// waiting for an ack.
    async fn consumer_empty(&mut self, deadline: Instant) -> Result<bool, String> {
        let conn = self.conn().map_err(|f| f.why)?;
        let subject = format!("$JS.API.CONSUMER.INFO.{STREAM}.{CONSUMER}");
        let m = conn
            .request(&subject, b"", deadline)
            .await
            .map_err(|f| f.why)?;
        let info = api_reply(&m)?;
        Ok(info["num_pending"].as_u64() == Some(0) && info["num_ack_pending"].as_u64() == Some(0))
    }

    async fn drain(&mut self, deadline: Instant) -> Completion {
        let mut taken = Vec::new();
        // The last reason the drain could not go on.
        let mut last = String::new();
        while Instant::now() < deadline {
            // One request that gets no answer (a route not yet back after
            // a partition) must not use up the whole drain: each try has
            // a second, then the drain reconnects and tries again.
            let step = (Instant::now() + DRAIN_STEP).min(deadline);
            // Whether the connection may be the trouble.
            let reconnect = match self.take(step).await {
                Ok(Took::Element(v)) => {
                    taken.push(v);
                    continue;
                }
                Ok(Took::Empty) => match self.consumer_empty(step).await {
                    Ok(true) => return Completion::ok(Value::Array(taken)),
                    Ok(false) => {
                        last = "elements were still waiting for an ack".into();
                        false
                    }
                    Err(e) => {
                        last = e;
                        true
                    }
                },
                Err(NotTaken::Fail(e)) => {
                    last = e;
                    true
                }
                Err(NotTaken::Unknown(e)) => {
                    // An element may have been consumed unseen: the drain
                    // cannot say what it took.
                    return Completion::info(Value::Array(taken), e);
                }
            };
            if reconnect {
                self.conn = None;
                if let Err(e) = self.reconnect(deadline).await {
                    last = format!("{last}; reconnecting: {e}");
                }
            }
            tokio::time::sleep_until((Instant::now() + Duration::from_millis(50)).min(deadline))
                .await;
        }
        if taken.is_empty() {
            Completion::fail(Value::Null, last)
        } else {
            // Elements were consumed, but the queue is not known to be
            // empty: claiming it drained could call the rest lost.
            Completion::info(
                Value::Array(taken),
                format!("not drained before the timeout: {last}"),
            )
        }
    }

    async fn reconnect(&mut self, deadline: Instant) -> Result<(), String> {
        let Some(addr) = self.opened_on.clone() else {
            return Err("not opened".into());
        };
        self.conn = Some(Conn::open(&addr, deadline).await?);
        Ok(())
    }
}

#[async_trait::async_trait]
impl Client for NatsClient {
    async fn open(&mut self, node: &str) -> Result<(), ClientError> {
        let addr = self.servers.on(node)?.to_string();
        let deadline = Instant::now() + self.opts.timeout;
        self.conn = None;
        self.opened_on = Some(addr.clone());
        self.conn = Some(
            Conn::open(&addr, deadline)
                .await
                .map_err(ClientError::not_applied)?,
        );
        self.ensure_queue(deadline)
            .await
            .map_err(|e| ClientError::not_applied(format!("creating the queue: {e}")))
    }

    async fn invoke(&mut self, inv: &Invocation) -> Completion {
        if inv.key.is_some() {
            return Completion::fail(
                inv.value.clone(),
                "the nats client runs one queue: the workload must not name keys",
            );
        }
        // A little before the runner's own timeout, so the answer is ours.
        let timeout = inv.timeout.min(self.opts.timeout);
        let deadline = Instant::now() + timeout.mul_f64(0.9);
        let done = match inv.f.as_str() {
            "enqueue" => self.enqueue(&inv.value, deadline).await,
            "dequeue" => self.dequeue(deadline).await,
            "drain" => self.drain(deadline).await,
            f => Completion::fail(inv.value.clone(), format!("unknown function {f:?}")),
        };
        if done.status == crate::client::Status::Info {
            // The connection may hold late answers: start afresh.
            self.conn = None;
        }
        done
    }

    async fn close(&mut self) -> Result<(), ClientError> {
        if let Some(mut c) = self.conn.take() {
            let _ = c.stream.shutdown().await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_is_replicated_file_storage_and_acks_wait_for_the_op_timeout() {
        let s = stream_config(5);
        assert_eq!(
            (
                s["num_replicas"].clone(),
                s["storage"].clone(),
                s["subjects"][0].clone()
            ),
            (json!(5), json!("file"), json!(SUBJECT))
        );
        let c = consumer_config(Duration::from_secs(5));
        assert_eq!(c["config"]["ack_wait"], json!(5_000_000_000u64));
        assert_eq!(c["config"]["ack_policy"], json!("explicit"));
        assert_eq!(c["config"]["durable_name"], json!(CONSUMER));
    }
}
