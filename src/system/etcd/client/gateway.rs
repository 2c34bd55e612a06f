//! The etcd JSON gateway's wire format: the response types (base64 keys
//! and values, 64-bit integers as strings, omitted false and empty
//! fields), the classification of HTTP statuses, and one request/response
//! exchange on a connection.

use super::Conn;
use crate::client::ClientError;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::Request;
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};

/// A 64-bit integer the gateway sends as a string (proto3 JSON), accepted as
/// a number too.
pub(super) fn de_i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum I64 {
        N(i64),
        S(String),
    }
    match I64::deserialize(d)? {
        I64::N(n) => Ok(n),
        I64::S(s) => s.parse().map_err(serde::de::Error::custom),
    }
}

/// The parts of a response header we use. Fields the gateway omits when
/// zero default to zero.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Header {
    #[serde(deserialize_with = "de_i64")]
    pub(super) revision: i64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct KeyValue {
    /// base64
    pub(super) key: String,
    /// base64; omitted for `keys_only` ranges and empty values.
    pub(super) value: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RangeResponse {
    pub(super) header: Header,
    /// Omitted when nothing matched.
    pub(super) kvs: Vec<KeyValue>,
    /// Omitted when false.
    pub(super) more: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct TxnResponse {
    pub(super) header: Header,
    /// Omitted when false: the compare did not match.
    pub(super) succeeded: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct PutResponse {
    pub(super) header: Header,
}

/// Checks that a 200 answer is etcd's: every etcd answer carries a header
/// with a revision, which starts at 1 on a new cluster. Anything else (a
/// proxy's page, an empty object) leaves the outcome unknown.
pub(super) fn check_header(what: &str, header: &Header, body: &[u8]) -> Result<(), ClientError> {
    if header.revision > 0 {
        Ok(())
    } else {
        Err(ClientError::unknown(format!(
            "{what}: answer without an etcd header: {}",
            snippet(body)
        )))
    }
}

/// The gateway's error body: `{"error": ..., "code": <gRPC code>, ...}`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct ErrorBody {
    pub(super) error: String,
    pub(super) message: String,
    pub(super) code: i64,
}

/// Parses a 200 answer; a body that does not parse leaves the outcome
/// unknown (something answered, but not with what etcd sends).
pub(super) fn parse_body<T: serde::de::DeserializeOwned>(
    what: &str,
    body: &[u8],
) -> Result<T, ClientError> {
    serde_json::from_slice(body).map_err(|e| {
        ClientError::unknown(format!(
            "{what}: unparsable answer ({e}): {}",
            snippet(body)
        ))
    })
}

pub(super) fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text.to_string(),
    }
}

/// The class of a non-200 answer. Only answers given before anything was
/// proposed are `fail`: 400 (gRPC InvalidArgument, FailedPrecondition,
/// OutOfRange: the request was rejected when checked), 401/403
/// (unauthenticated, permission denied) and 404 (no such endpoint). 503
/// (Unavailable: no leader, request timed out, leader changed), 504
/// (DeadlineExceeded), 429 and every other status may follow a proposal.
pub(super) fn classify_status(status: u16, body: &[u8]) -> ClientError {
    let detail = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) if !e.error.is_empty() || !e.message.is_empty() => {
            let msg = if e.message.is_empty() {
                e.error
            } else {
                e.message
            };
            format!("HTTP {status}, code {}: {msg}", e.code)
        }
        _ => format!("HTTP {status}: {}", snippet(body)),
    };
    match status {
        400 | 401 | 403 | 404 => ClientError::not_applied(detail),
        _ => ClientError::unknown(detail),
    }
}

pub(super) fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

pub(super) fn unb64(what: &str, text: &str) -> Result<Vec<u8>, ClientError> {
    B64.decode(text)
        .map_err(|e| ClientError::unknown(format!("{what}: bad base64 from etcd: {e}")))
}

/// A register's value from a range answer: `null` when the key is absent.
pub(super) fn register_value(r: &RangeResponse) -> Result<Value, ClientError> {
    let Some(kv) = r.kvs.first() else {
        return Ok(Value::Null);
    };
    let raw = unb64("read", &kv.value)?;
    serde_json::from_slice(&raw).map_err(|e| {
        ClientError::unknown(format!(
            "read: the stored value is not JSON ({e}): {}",
            snippet(&raw)
        ))
    })
}

/// The set element an etcd key under `prefix` stands for.
pub(super) fn set_element(prefix: &[u8], key: &[u8]) -> Result<i128, ClientError> {
    key.strip_prefix(prefix)
        .and_then(|e| std::str::from_utf8(e).ok())
        .and_then(|e| e.parse::<i128>().ok())
        .ok_or_else(|| {
            ClientError::unknown(format!(
                "read: key {:?} under the set prefix is no element",
                String::from_utf8_lossy(key)
            ))
        })
}

pub(super) fn element_value(e: i128) -> Value {
    if let Ok(i) = i64::try_from(e) {
        json!(i)
    } else if let Ok(u) = u64::try_from(e) {
        json!(u)
    } else {
        // Elements come from `add`, which only takes i64 or u64.
        Value::String(e.to_string())
    }
}

/// An error with its causes: hyper's own message ("connection error") says
/// little; the cause ("Connection reset by peer") is what a reader needs.
pub(super) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// How one request on one connection went.
pub(super) enum Attempt {
    /// An answer: status and body.
    Answer(u16, Bytes),
    /// hyper handed the request back: it was never written.
    NotSent(String),
    /// It may have been written: the outcome is unknown.
    Failed(ClientError),
}

/// Sends `req` on `conn` and reads the whole answer.
pub(super) async fn exchange(conn: &mut Conn, req: Request<Full<Bytes>>, where_: &str) -> Attempt {
    let resp = match conn.sender.try_send_request(req).await {
        Ok(resp) => resp,
        Err(e) if e.message().is_some() => return Attempt::NotSent(chain(e.error())),
        Err(e) => {
            return Attempt::Failed(ClientError::unknown(format!(
                "{where_}: {}",
                chain(e.error())
            )))
        }
    };
    let status = resp.status().as_u16();
    match resp.into_body().collect().await {
        Ok(body) => Attempt::Answer(status, body.to_bytes()),
        Err(e) => Attempt::Failed(ClientError::unknown(format!(
            "{where_}: reading the answer: {}",
            chain(&e)
        ))),
    }
}
