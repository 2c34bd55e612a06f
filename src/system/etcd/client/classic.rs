//! Counters and unique ids on etcd, for the `counter` and `unique-ids`
//! workloads (kept apart from the register/set code they share nothing
//! with but the connection).
//!
//! - A counter is one etcd key (`/faultline/<workload>/<key>`) holding the
//!   decimal text of its value; absent means 0. `read` is one range. `add n`
//!   is a compare-and-set loop: range the key, then a txn that writes
//!   `value + n` only if the key's `mod_revision` is still the one read
//!   (or, when absent, its `create_revision` is 0); a failed compare
//!   changed nothing, so it retries until the deadline and then fails.
//! - `generate` is one put to `/faultline/<workload>/ids`: etcd gives every
//!   write its own cluster-wide revision, so the revision in the put's
//!   answer is a fresh id.

use super::{
    b64, check_header, de_i64, parse_body, register_key, unb64, DataKind, EtcdClient, Header,
    PutResponse, ReadMode,
};
use crate::client::{ClientError, Completion, ErrorClass, Invocation};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::time::Instant;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Kv {
    /// base64
    value: String,
    #[serde(deserialize_with = "de_i64")]
    mod_revision: i64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Range {
    header: Header,
    kvs: Vec<Kv>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Txn {
    header: Header,
    succeeded: bool,
}

/// A counter's value and `mod_revision` (0 when absent) from a range answer.
fn counter_value(r: &Range) -> Result<(i64, i64), ClientError> {
    let Some(kv) = r.kvs.first() else {
        return Ok((0, 0));
    };
    let raw = unb64("read", &kv.value)?;
    let n = std::str::from_utf8(&raw)
        .ok()
        .and_then(|t| t.parse::<i64>().ok())
        .ok_or_else(|| {
            ClientError::unknown(format!(
                "the counter holds {:?}, not a whole number",
                String::from_utf8_lossy(&raw)
            ))
        })?;
    Ok((n, kv.mod_revision))
}

impl EtcdClient {
    /// Performs a counter or unique-ids operation; `None` when this client
    /// serves another kind of data.
    pub(super) async fn invoke_classic(&mut self, inv: &Invocation) -> Option<Completion> {
        let kind = self.opts.kind;
        if !matches!(kind, DataKind::Counter | DataKind::UniqueIds) {
            return None;
        }
        let deadline = Instant::now() + self.op_timeout(inv);
        let key = register_key(&self.opts.workload, inv.key.as_ref());
        let result = match (kind, inv.f.as_str()) {
            (DataKind::Counter, "read") => self.counter_read(&key, deadline).await,
            (DataKind::Counter, "add") => match inv.value.as_i64() {
                Some(n) => self.counter_add(&key, n, deadline).await,
                None => Err(ClientError::not_applied("add needs a whole number")),
            },
            (DataKind::UniqueIds, "generate") => self.generate(deadline).await,
            (_, f) => Err(ClientError::not_applied(format!(
                "the etcd client has no function {f:?} for this workload"
            ))),
        };
        Some(match result {
            Ok(v) => Completion::ok(v),
            Err(mut e) => {
                if e.class == ErrorClass::Unknown {
                    // As for registers: a fresh connection, and an unknown
                    // read is a read that did not happen.
                    self.conn = None;
                    if inv.f == "read" {
                        e = ClientError::not_applied(format!("read, outcome irrelevant: {e}"));
                    }
                }
                Completion::from_error(inv.value.clone(), &e)
            }
        })
    }

    async fn range(
        &mut self,
        key: &[u8],
        serializable: bool,
        deadline: Instant,
    ) -> Result<Range, ClientError> {
        let mut body = json!({ "key": b64(key) });
        if serializable {
            body["serializable"] = json!(true);
        }
        let bytes = self.post("/v3/kv/range", &body, deadline).await?;
        let r: Range = parse_body("read", &bytes)?;
        check_header("read", &r.header, &bytes)?;
        Ok(r)
    }

    async fn counter_read(&mut self, key: &[u8], deadline: Instant) -> Result<Value, ClientError> {
        let serializable = self.opts.read_mode == ReadMode::Serializable;
        let r = self.range(key, serializable, deadline).await?;
        Ok(json!(counter_value(&r)?.0))
    }

    async fn counter_add(
        &mut self,
        key: &[u8],
        n: i64,
        deadline: Instant,
    ) -> Result<Value, ClientError> {
        let mut conflicts = 0u32;
        loop {
            // Every earlier attempt's compare failed, so nothing is applied
            // yet: a failed range leaves the add certainly not done.
            let r = self
                .range(key, false, deadline)
                .await
                .map_err(|e| ClientError::not_applied(format!("add: {e}")))?;
            let (current, revision) =
                counter_value(&r).map_err(|e| ClientError::not_applied(format!("add: {e}")))?;
            let compare = if revision == 0 {
                json!({ "key": b64(key), "target": "CREATE", "result": "EQUAL",
                        "create_revision": "0" })
            } else {
                json!({ "key": b64(key), "target": "MOD", "result": "EQUAL",
                        "mod_revision": revision.to_string() })
            };
            let next = current.saturating_add(n).to_string();
            let body = json!({
                "compare": [compare],
                "success": [{ "request_put": { "key": b64(key), "value": b64(next.as_bytes()) } }],
            });
            let bytes = self.post("/v3/kv/txn", &body, deadline).await?;
            let t: Txn = parse_body("add", &bytes)?;
            check_header("add", &t.header, &bytes)?;
            if t.succeeded {
                return Ok(json!(n));
            }
            conflicts += 1;
            if Instant::now() >= deadline {
                return Err(ClientError::not_applied(format!(
                    "add: gave up after {conflicts} conflicting updates"
                )));
            }
        }
    }

    async fn generate(&mut self, deadline: Instant) -> Result<Value, ClientError> {
        let key = format!("/faultline/{}/ids", self.opts.workload);
        let body = json!({ "key": b64(key.as_bytes()), "value": b64(b"1") });
        let bytes = self.post("/v3/kv/put", &body, deadline).await?;
        let r: PutResponse = parse_body("generate", &bytes)?;
        check_header("generate", &r.header, &bytes)?;
        Ok(json!(r.header.revision))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_values_decode_and_absent_is_zero() {
        let r: Range = serde_json::from_str(
            r#"{"header":{"revision":"9"},"kvs":[{"key":"eA==","value":"NDI=","mod_revision":"7"}]}"#,
        )
        .unwrap();
        assert_eq!(counter_value(&r).unwrap(), (42, 7));
        let empty: Range = serde_json::from_str(r#"{"header":{"revision":"9"}}"#).unwrap();
        assert_eq!(counter_value(&empty).unwrap(), (0, 0));
        let bad: Range =
            serde_json::from_str(r#"{"header":{"revision":"9"},"kvs":[{"value":"eA=="}]}"#)
                .unwrap();
        let e = counter_value(&bad).unwrap_err();
        assert_eq!(e.message, "the counter holds \"x\", not a whole number");
    }
}
