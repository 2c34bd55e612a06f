//! A RabbitMQ client for the queue workload, over AMQP 0-9-1 with the
//! `lapin` crate.
//!
//! Each client holds one connection (and one channel) to ONE broker, the
//! node its worker is assigned, with publisher confirms on. The queue is
//! [`QUEUE`], durable, declared by every client with the same arguments
//! (`x-queue-type` classic or quorum; a mirrored queue is a classic one
//! the brokers mirror by policy, `db.rs`). Elements are persistent
//! messages (delivery mode 2) published to the default exchange.
//!
//! - `enqueue v`: publish `v`'s JSON (mandatory) and wait for the
//!   broker's confirm: an `ack` is `ok`; a `nack`, or a message returned
//!   as unroutable, is `fail`; a publish refused before it was sent (the
//!   channel closed) is `fail`; a timeout or a lost connection before the
//!   confirm is `info`.
//! - `dequeue`: `basic.get` without auto-ack, then `basic.ack` and a
//!   synchronous round trip on the same channel (`basic.qos`), so the ack
//!   was taken by the channel before the element is `ok`. An empty queue
//!   is `fail` with error `empty`, as the queue checker expects; a get
//!   that failed is `fail` (only an ack consumes a message: an unacked one
//!   goes back to the queue when the channel closes, so a get that got no
//!   answer closes its connection); an ack whose round trip did not come
//!   back is `info`.
//! - `drain`: dequeues until the queue has stayed empty for 3 s (an
//!   element another client held unacked when its connection closed is
//!   requeued once the queue hears of it), `ok` with every element taken. Each
//!   step may take a second at most (then a new connection and another
//!   try). If the time runs out with elements taken the drain is `info`,
//!   else `fail`.

use super::db::{QueueType, AMQP_PORT, QUEUE};
use crate::client::servers::Servers;
use crate::client::{Client, ClientError, ClientFactory, Completion, Invocation, Status};
use crate::cluster::Node;
use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::publisher_confirm::Confirmation;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use serde_json::Value;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How the clients behave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RabbitClientOptions {
    /// The longest one operation may take.
    pub timeout: Duration,
    /// The queue's kind.
    pub queue_type: QueueType,
}

impl Default for RabbitClientOptions {
    fn default() -> Self {
        RabbitClientOptions {
            timeout: Duration::from_secs(5),
            queue_type: QueueType::Classic,
        }
    }
}

/// The AMQP URI of the broker at `host`: the default user, the default
/// virtual host, heartbeats every 5 s (a partitioned connection is seen
/// dead within seconds, not the default minute).
pub fn amqp_uri(host: &str) -> String {
    let host = crate::cluster::url_host(host);
    format!("amqp://guest:guest@{host}:{AMQP_PORT}/%2f?heartbeat=5")
}

/// The queue's declaration arguments.
pub fn queue_arguments(queue_type: QueueType) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(queue_type.x_queue_type().into()),
    );
    args
}

/// What a publish's confirm (or its absence) means for an enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Published {
    /// The broker took responsibility for it.
    Ok,
    /// Certainly not enqueued, and why.
    Fail(String),
    /// Unknown, and why.
    Unknown(String),
}

/// What a publish ended with: `sent` false when lapin refused it before
/// writing it (a closed channel); `confirm` the broker's answer, or why
/// there is none.
pub fn classify_publish(sent: bool, confirm: Result<Confirmation, String>) -> Published {
    match confirm {
        Ok(Confirmation::Ack(None)) => Published::Ok,
        Ok(Confirmation::Ack(Some(returned))) => Published::Fail(format!(
            "returned unroutable: {} {}",
            returned.reply_code, returned.reply_text
        )),
        Ok(Confirmation::Nack(_)) => Published::Fail("nacked by the broker".into()),
        Ok(Confirmation::NotRequested) => {
            Published::Unknown("no confirm was requested (confirm mode is off)".into())
        }
        Err(e) if !sent => Published::Fail(e),
        Err(e) => Published::Unknown(e),
    }
}

/// Whether lapin refused a request before writing it: the channel or the
/// connection was already closed.
fn refused_before_sending(e: &lapin::Error) -> bool {
    matches!(
        e,
        lapin::Error::InvalidChannelState(_) | lapin::Error::InvalidConnectionState(_)
    )
}

/// Makes the clients of a test.
#[derive(Clone, Debug)]
pub struct RabbitClientFactory {
    /// Node name → AMQP URI.
    brokers: Servers,
    opts: Arc<RabbitClientOptions>,
}

impl RabbitClientFactory {
    /// Clients of the brokers `brokers` (node name, AMQP URI).
    pub fn new<I, N, A>(brokers: I, opts: RabbitClientOptions) -> Result<Self, ClientError>
    where
        I: IntoIterator<Item = (N, A)>,
        N: Into<String>,
        A: Into<String>,
    {
        Ok(RabbitClientFactory {
            brokers: Servers::new("RabbitMQ", brokers)?,
            opts: Arc::new(opts),
        })
    }

    /// Clients of every node of `nodes`.
    pub fn for_nodes(nodes: &[Node], opts: RabbitClientOptions) -> Result<Self, ClientError> {
        Self::new(
            nodes
                .iter()
                .map(|n| (n.name().to_string(), amqp_uri(n.host()))),
            opts,
        )
    }

    /// A new, unopened client.
    pub fn client(&self) -> RabbitClient {
        RabbitClient {
            brokers: self.brokers.clone(),
            opts: Arc::clone(&self.opts),
            uri: None,
            conn: None,
        }
    }

    /// The factory the runner takes: one boxed client per worker.
    pub fn into_factory(self) -> ClientFactory {
        Box::new(move |_worker| Box::new(self.client()) as Box<dyn Client>)
    }
}

/// A connection and its channel (confirms on, the queue declared).
struct Conn {
    connection: Connection,
    channel: Channel,
}

/// A client of one broker, used by one worker at a time.
pub struct RabbitClient {
    brokers: Servers,
    opts: Arc<RabbitClientOptions>,
    /// The broker's URI, once opened.
    uri: Option<String>,
    conn: Option<Conn>,
}

impl fmt::Debug for RabbitClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RabbitClient")
            .field("uri", &self.uri)
            .field("connected", &self.conn.is_some())
            .field("opts", &self.opts)
            .finish()
    }
}

/// `fut` until `deadline`; a timeout is an error saying what timed out.
async fn before<T>(
    deadline: Instant,
    what: &str,
    fut: impl Future<Output = lapin::Result<T>>,
) -> Result<T, Failed> {
    match tokio::time::timeout_at(deadline, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Failed {
            sent: !refused_before_sending(&e),
            why: format!("{what}: {e}"),
        }),
        Err(_) => Err(Failed {
            sent: true,
            why: format!("{what}: no answer before the timeout"),
        }),
    }
}

/// Why a request got no answer: `sent` says whether it may have reached
/// the broker.
#[derive(Debug)]
struct Failed {
    sent: bool,
    why: String,
}

/// What one get-and-ack ended with.
enum Took {
    /// An element, its ack taken by the channel.
    Element(Value),
    /// The queue had nothing to hand out.
    Empty,
}

/// Why a get-and-ack did not take an element: certainly not (`fail`), or
/// unknown (`info`).
enum NotTaken {
    Fail(String),
    Unknown(String),
}

/// The longest one step of a drain may wait before the drain tries again
/// on a new connection.
const DRAIN_STEP: Duration = Duration::from_secs(1);

/// How long the queue must stay empty before a drain ends: `basic.get`
/// sees only ready messages, and one held unacked by a channel the queue
/// was cut off from comes back only once the queue hears it closed.
const DRAIN_QUIET: Duration = Duration::from_secs(3);

impl Conn {
    async fn open(uri: &str, queue_type: QueueType, deadline: Instant) -> Result<Conn, String> {
        let fail = |f: Failed| f.why;
        let connection = before(
            deadline,
            "connect",
            Connection::connect(uri, ConnectionProperties::default()),
        )
        .await
        .map_err(fail)?;
        let channel = before(deadline, "open a channel", connection.create_channel())
            .await
            .map_err(fail)?;
        before(
            deadline,
            "confirm.select",
            channel.confirm_select(ConfirmSelectOptions::default()),
        )
        .await
        .map_err(fail)?;
        before(
            deadline,
            "queue.declare",
            channel.queue_declare(
                QUEUE,
                QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                },
                queue_arguments(queue_type),
            ),
        )
        .await
        .map_err(fail)?;
        Ok(Conn {
            connection,
            channel,
        })
    }

    /// Closes it in the background, within a second: a connection that
    /// may hold late answers is never used again.
    fn abandon(self) {
        tokio::spawn(async move {
            let _ = tokio::time::timeout(
                Duration::from_secs(1),
                self.connection.close(200, "faultline: abandoned"),
            )
            .await;
        });
    }
}

impl RabbitClient {
    fn channel(&self) -> Result<&Channel, Failed> {
        self.conn.as_ref().map(|c| &c.channel).ok_or(Failed {
            sent: false,
            why: "not connected".into(),
        })
    }

    async fn enqueue(&mut self, v: &Value, deadline: Instant) -> Completion {
        let payload = v.to_string();
        let published = match self.channel() {
            Err(f) => classify_publish(false, Err(f.why)),
            Ok(ch) => {
                let confirm = before(
                    deadline,
                    "publish",
                    ch.basic_publish(
                        "",
                        QUEUE,
                        BasicPublishOptions {
                            mandatory: true,
                            ..BasicPublishOptions::default()
                        },
                        payload.as_bytes(),
                        BasicProperties::default().with_delivery_mode(2),
                    ),
                )
                .await;
                match confirm {
                    Err(f) => classify_publish(f.sent, Err(f.why)),
                    Ok(confirm) => {
                        let answer = before(deadline, "confirm", confirm).await;
                        classify_publish(true, answer.map_err(|f| f.why))
                    }
                }
            }
        };
        match published {
            Published::Ok => Completion::ok(v.clone()),
            Published::Fail(e) => Completion::fail(v.clone(), e),
            Published::Unknown(e) => Completion::info(v.clone(), e),
        }
    }

    /// Gets one message and acks it.
    async fn take(&mut self, deadline: Instant) -> Result<Took, NotTaken> {
        let ch = self.channel().map_err(|f| NotTaken::Fail(f.why))?;
        // Only an ack consumes a message: whatever happened to the get, a
        // message it may have brought goes back when the channel closes.
        let got = match before(
            deadline,
            "basic.get",
            ch.basic_get(QUEUE, BasicGetOptions { no_ack: false }),
        )
        .await
        {
            Ok(got) => got,
            Err(f) => {
                // A late `get-ok` would leave its message unacked on this
                // channel for as long as the connection lives: close it,
                // so the broker requeues the message once it hears.
                if f.sent {
                    if let Some(c) = self.conn.take() {
                        c.abandon();
                    }
                }
                return Err(NotTaken::Fail(f.why));
            }
        };
        let Some(m) = got else {
            return Ok(Took::Empty);
        };
        let element: Value = match serde_json::from_slice(&m.delivery.data) {
            Ok(v) => v,
            // Not one of ours; acked anyway so it does not come back, and
            // reported as the text it was.
            Err(_) => Value::String(String::from_utf8_lossy(&m.delivery.data).into_owned()),
        };
        let tag = m.delivery.delivery_tag;
        match before(
            deadline,
            "basic.ack",
            ch.basic_ack(tag, BasicAckOptions::default()),
        )
        .await
        {
            Ok(()) => {}
            Err(f) if !f.sent => {
                return Err(NotTaken::Fail(format!("ack of {element}: {}", f.why)))
            }
            Err(f) => return Err(NotTaken::Unknown(format!("ack of {element}: {}", f.why))),
        }
        // basic.ack has no answer; a synchronous method after it on the
        // same channel is answered only once the channel took the ack.
        before(
            deadline,
            "basic.qos after the ack",
            ch.basic_qos(0, BasicQosOptions::default()),
        )
        .await
        .map_err(|f| NotTaken::Unknown(format!("ack of {element}: {}", f.why)))?;
        Ok(Took::Element(element))
    }

    async fn dequeue(&mut self, deadline: Instant) -> Completion {
        match self.take(deadline).await {
            Ok(Took::Element(v)) => Completion::ok(v),
            Ok(Took::Empty) => Completion::fail(Value::Null, "empty"),
            Err(NotTaken::Fail(e)) => Completion::fail(Value::Null, e),
            Err(NotTaken::Unknown(e)) => Completion::info(Value::Null, e),
        }
    }

    async fn drain(&mut self, deadline: Instant) -> Completion {
        let mut taken = Vec::new();
        // The last reason the drain could not go on.
        let mut last = String::new();
        // Since when every get found the queue empty: empty for
        // DRAIN_QUIET ends the drain.
        let mut empty_since: Option<Instant> = None;
        while Instant::now() < deadline {
            let step = (Instant::now() + DRAIN_STEP).min(deadline);
            let reconnect = match self.take(step).await {
                Ok(Took::Element(v)) => {
                    taken.push(v);
                    empty_since = None;
                    continue;
                }
                Ok(Took::Empty) => match empty_since {
                    Some(t) if t.elapsed() >= DRAIN_QUIET => {
                        return Completion::ok(Value::Array(taken))
                    }
                    Some(_) => false,
                    None => {
                        empty_since = Some(Instant::now());
                        false
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
                empty_since = None;
                if let Some(c) = self.conn.take() {
                    c.abandon();
                }
                if let Err(e) = self.reconnect(deadline).await {
                    last = format!("{last}; reconnecting: {e}");
                }
            }
            tokio::time::sleep_until((Instant::now() + Duration::from_millis(100)).min(deadline))
                .await;
        }
        if taken.is_empty() {
            Completion::fail(
                Value::Null,
                format!("not drained before the timeout: {last}"),
            )
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
        let Some(uri) = self.uri.clone() else {
            return Err("not opened".into());
        };
        self.conn = Some(Conn::open(&uri, self.opts.queue_type, deadline).await?);
        Ok(())
    }
}

#[async_trait::async_trait]
impl Client for RabbitClient {
    async fn open(&mut self, node: &str) -> Result<(), ClientError> {
        let uri = self.brokers.on(node)?.to_string();
        if let Some(c) = self.conn.take() {
            c.abandon();
        }
        self.uri = Some(uri);
        let deadline = Instant::now() + self.opts.timeout;
        self.reconnect(deadline)
            .await
            .map_err(ClientError::not_applied)
    }

    async fn invoke(&mut self, inv: &Invocation) -> Completion {
        if inv.key.is_some() {
            return Completion::fail(
                inv.value.clone(),
                "the rabbitmq client runs one queue: the workload must not name keys",
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
        if done.status == Status::Info {
            // The connection may hold late answers: never use it again.
            if let Some(c) = self.conn.take() {
                c.abandon();
            }
        }
        done
    }

    async fn close(&mut self) -> Result<(), ClientError> {
        if let Some(c) = self.conn.take() {
            let _ = tokio::time::timeout(
                Duration::from_secs(2),
                c.connection.close(200, "faultline: done"),
            )
            .await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lapin::message::BasicReturnMessage;

    #[test]
    fn a_confirm_decides_an_enqueue_and_its_absence_leaves_it_unknown() {
        assert_eq!(
            classify_publish(true, Ok(Confirmation::Ack(None))),
            Published::Ok
        );
        assert_eq!(
            classify_publish(true, Ok(Confirmation::Nack(None))),
            Published::Fail("nacked by the broker".into())
        );
        let returned = BasicReturnMessage {
            delivery: lapin::message::Delivery {
                delivery_tag: 0,
                exchange: "".into(),
                routing_key: QUEUE.into(),
                redelivered: false,
                properties: BasicProperties::default(),
                data: b"1".to_vec(),
                acker: Default::default(),
            },
            reply_code: 312,
            reply_text: "NO_ROUTE".into(),
        };
        assert_eq!(
            classify_publish(true, Ok(Confirmation::Ack(Some(Box::new(returned))))),
            Published::Fail("returned unroutable: 312 NO_ROUTE".into())
        );
        // Lost on the way: the broker may have it.
        assert_eq!(
            classify_publish(true, Err("confirm: no answer before the timeout".into())),
            Published::Unknown("confirm: no answer before the timeout".into())
        );
        // Refused before it was written: certainly not enqueued.
        assert_eq!(
            classify_publish(false, Err("publish: invalid channel state".into())),
            Published::Fail("publish: invalid channel state".into())
        );
    }

    #[test]
    fn a_request_refused_on_a_closed_channel_was_never_sent() {
        let closed = lapin::Error::InvalidChannelState(lapin::ChannelState::Closed);
        assert!(refused_before_sending(&closed));
        let io = lapin::Error::IOError(Arc::new(std::io::Error::from(
            std::io::ErrorKind::ConnectionReset,
        )));
        assert!(!refused_before_sending(&io));
    }

    #[test]
    fn quorum_and_classic_queues_are_declared_by_their_type() {
        let q = queue_arguments(QueueType::Quorum);
        assert_eq!(
            q.inner().get("x-queue-type"),
            Some(&AMQPValue::LongString("quorum".into()))
        );
        let m = queue_arguments(QueueType::Mirrored);
        assert_eq!(
            m.inner().get("x-queue-type"),
            Some(&AMQPValue::LongString("classic".into()))
        );
        assert_eq!(
            amqp_uri("10.77.0.11"),
            "amqp://guest:guest@10.77.0.11:5672/%2f?heartbeat=5"
        );
    }
}
