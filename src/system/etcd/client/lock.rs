//! etcd's lock, for the lock-set workload (Jepsen's etcd `lock-set`):
//! `acquire` and `release` go to etcd's v3 lock API through the JSON
//! gateway; `add` and `read` work on a set held in the controller's
//! memory and shared by every client of the run ([`SharedSet`]), which
//! only the lock protects.
//!
//! - `acquire` grants a lease with the workload's TTL
//!   (`/v3/lease/grant`), starts a task that keeps it alive
//!   (`/v3/lease/keepalive` every third of the TTL, on a connection of its
//!   own), and asks for the lock under that lease (`/v3/lock/lock`, which
//!   waits while another lease holds it). A lease that could not be granted
//!   means no lock was asked for: `fail`. A lock request refused before it
//!   was sent is `fail`; one whose answer was lost is `info` (etcd may
//!   have granted it). Either way the keep-alive stops and the lease is
//!   revoked, so a lock granted unseen is freed.
//! - `add v` (only while this client holds the lock, else `fail`) reads
//!   the shared set, sleeps a random 0 to `max_sleep_ms` milliseconds,
//!   then writes back what it read plus `v`. If two clients ever hold the
//!   lock at once, one of them overwrites the other's element.
//! - `read` returns the shared set.
//! - `release` stops the keep-alive and deletes the lock's key
//!   (`/v3/lock/unlock`), then revokes the lease. If neither the unlock
//!   nor the revoke is known to have happened, the release is `info`: the
//!   lease, no longer kept alive, frees the lock within its TTL.
//!
//! The lease lives in the client, not the process: when an operation ends
//! `info` the runner retires the process and reopens the client, and the
//! next process of the worker releases what the client still holds (the
//! generator, `workload::lock`, follows every work with a release), so no
//! hold ends without a release in the history. Dropping the client stops
//! the keep-alive.

use super::{b64, check_header, de_i64, parse_body, EtcdClient, Header};
use crate::client::{ClientError, Completion, ErrorClass, Invocation};
use rand::Rng;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The set the lock guards: in the controller's memory, one for the run,
/// shared by every client (the [`super::EtcdClientFactory`] hands it out).
#[derive(Clone, Debug, Default)]
pub struct SharedSet(Arc<Mutex<Vec<Value>>>);

impl SharedSet {
    fn elements(&self) -> MutexGuard<'_, Vec<Value>> {
        // A client that panicked holding the guard left a whole vector
        // behind (each write replaces it at once), so its value is usable.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// What the set holds now.
    pub fn snapshot(&self) -> Vec<Value> {
        self.elements().clone()
    }

    /// Replaces what the set holds.
    fn store(&self, elements: Vec<Value>) {
        *self.elements() = elements;
    }
}

/// The lock and its lease, as the lock-set workload uses them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockOptions {
    /// The lease's time to live, in seconds.
    pub ttl_s: u64,
    /// The longest sleep of an `add` between reading and writing the set.
    pub max_sleep_ms: u64,
}

impl Default for LockOptions {
    fn default() -> Self {
        LockOptions {
            ttl_s: 2,
            max_sleep_ms: 1000,
        }
    }
}

/// A lease this client took, and the lock under it once granted.
pub(super) struct Held {
    lease: i64,
    keepalive: JoinHandle<()>,
    /// The lock's key (base64), once etcd granted the lock; `None` while
    /// the lock request has no answer (a request cut off half-way leaves
    /// it so, and the next operation gives the lease up).
    key: Option<String>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.keepalive.abort();
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Grant {
    header: Header,
    #[serde(rename = "ID", deserialize_with = "de_i64")]
    id: i64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Locked {
    header: Header,
    /// base64
    key: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Plain {
    header: Header,
}

impl EtcdClient {
    /// The etcd name of the workload's lock.
    fn lock_name(&self) -> Vec<u8> {
        format!("/faultline/{}/lock", self.opts.workload).into_bytes()
    }

    /// Performs an operation of the lock-set workload.
    pub(super) async fn invoke_lock(&mut self, inv: &Invocation) -> Completion {
        if self.held.as_ref().is_some_and(|h| h.key.is_none()) {
            // An acquire cut off before its answer: it may hold the lock
            // unseen, so give its lease up before anything else.
            let deadline = Instant::now() + self.op_timeout(inv);
            self.give_up(deadline).await;
        }
        match inv.f.as_str() {
            "acquire" => self.acquire(inv).await,
            "release" => self.release(inv).await,
            "add" => self.add(inv).await,
            "read" => Completion::ok(Value::Array(self.shared.snapshot())),
            f => Completion::fail(
                inv.value.clone(),
                format!("the etcd lock client has no function {f:?} (acquire, add, read, release)"),
            ),
        }
    }

    async fn acquire(&mut self, inv: &Invocation) -> Completion {
        if self.held.is_some() {
            return Completion::fail(inv.value.clone(), "already held");
        }
        let now = Instant::now();
        let deadline = now + self.invocation_timeout(inv);
        // A fifth of the time is kept to give the lease up, should the
        // lock request not be answered.
        let lock_by = deadline - (deadline - now) / 5;
        let ttl = self.opts.lock.ttl_s.max(1);
        let granted = async {
            let bytes = self
                .post(
                    "/v3/lease/grant",
                    &json!({ "TTL": ttl.to_string() }),
                    lock_by,
                )
                .await?;
            let g: Grant = parse_body("lease grant", &bytes)?;
            check_header("lease grant", &g.header, &bytes)?;
            Ok::<i64, ClientError>(g.id)
        }
        .await;
        let lease = match granted {
            Ok(id) if id != 0 => id,
            Ok(_) => return Completion::fail(inv.value.clone(), "lease grant: no lease id"),
            // No lock was asked for; a lease granted unseen expires alone.
            Err(e) => {
                return Completion::fail(inv.value.clone(), format!("lease grant: {e}"));
            }
        };
        self.held = Some(Held {
            lease,
            keepalive: self.spawn_keepalive(lease, ttl),
            key: None,
        });
        let body = json!({ "name": b64(&self.lock_name()), "lease": lease.to_string() });
        let locked = async {
            let bytes = self.post("/v3/lock/lock", &body, lock_by).await?;
            let l: Locked = parse_body("lock", &bytes)?;
            check_header("lock", &l.header, &bytes)?;
            if l.key.is_empty() {
                return Err(ClientError::unknown("lock: granted without a key"));
            }
            Ok(l.key)
        }
        .await;
        match locked {
            Ok(key) => {
                if let Some(h) = &mut self.held {
                    h.key = Some(key.clone());
                }
                Completion::ok(inv.value.clone())
            }
            Err(e) => {
                let unknown = e.class == ErrorClass::Unknown;
                if unknown {
                    self.conn = None;
                }
                self.give_up(deadline).await;
                Completion::from_error(inv.value.clone(), &e)
            }
        }
    }

    /// Stops keeping the lease alive and revokes it (which frees a lock
    /// held under it); true when the revoke is known to have happened.
    async fn give_up(&mut self, deadline: Instant) -> bool {
        match self.held.take() {
            // Dropping it stops the keep-alive.
            Some(held) => self.revoke(held.lease, deadline).await,
            None => true,
        }
    }

    /// Revokes `lease`; true when the revoke is known to have happened.
    async fn revoke(&mut self, lease: i64, deadline: Instant) -> bool {
        let revoked = async {
            let bytes = self
                .post(
                    "/v3/lease/revoke",
                    &json!({ "ID": lease.to_string() }),
                    deadline,
                )
                .await?;
            let p: Plain = parse_body("lease revoke", &bytes)?;
            check_header("lease revoke", &p.header, &bytes)
        }
        .await;
        match revoked {
            Ok(()) => true,
            Err(e) => {
                if e.class == ErrorClass::Unknown {
                    self.conn = None;
                }
                tracing::debug!(lease, error = %e, "lease revoke");
                false
            }
        }
    }

    async fn release(&mut self, inv: &Invocation) -> Completion {
        // Taken out first: from here on the lease is no longer kept alive
        // (the release happens now, or when the lease runs out), and a
        // release cut off half-way leaves nothing held.
        let Some(held) = self.held.take() else {
            return Completion::fail(inv.value.clone(), "not held");
        };
        let (lease, key) = (held.lease, held.key.clone().unwrap_or_default());
        drop(held);
        let now = Instant::now();
        let deadline = now + self.op_timeout(inv);
        // A third of the time is kept for the revoke, should the unlock
        // not get through.
        let unlock_by = deadline - (deadline - now) / 3;
        let unlocked = async {
            let bytes = self
                .post("/v3/lock/unlock", &json!({ "key": key }), unlock_by)
                .await?;
            let p: Plain = parse_body("unlock", &bytes)?;
            check_header("unlock", &p.header, &bytes)
        }
        .await;
        if let Err(e) = &unlocked {
            if e.class == ErrorClass::Unknown {
                self.conn = None;
            }
        }
        let revoked = self.revoke(lease, deadline).await;
        match unlocked {
            Ok(()) => Completion::ok(inv.value.clone()),
            Err(_) if revoked => Completion::ok(inv.value.clone()),
            Err(e) => Completion::info(
                inv.value.clone(),
                format!("{e}; the lease, no longer kept alive, frees the lock within its TTL"),
            ),
        }
    }

    async fn add(&mut self, inv: &Invocation) -> Completion {
        if self.held.as_ref().and_then(|h| h.key.as_ref()).is_none() {
            return Completion::fail(inv.value.clone(), "not held");
        }
        let read = self.shared.snapshot();
        let max = self.opts.lock.max_sleep_ms;
        let pause = if max == 0 {
            0
        } else {
            rand::rng().random_range(0..=max)
        };
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let mut written = read;
        written.push(inv.value.clone());
        self.shared.store(written);
        Completion::ok(inv.value.clone())
    }

    /// A task that keeps `lease` alive every third of its TTL, through a
    /// client of its own on the same node, until aborted. Failures are
    /// only logged: a lease that could not be kept alive expires, and what
    /// follows is what the test looks for.
    fn spawn_keepalive(&self, lease: i64, ttl_s: u64) -> JoinHandle<()> {
        let mut own = EtcdClient {
            endpoints: Arc::clone(&self.endpoints),
            opts: Arc::clone(&self.opts),
            node: self.node.clone(),
            conn: None,
            held: None,
            shared: self.shared.clone(),
        };
        let every = Duration::from_millis((ttl_s * 1000 / 3).max(100));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let deadline = Instant::now() + every;
                let body = json!({ "ID": lease.to_string() });
                if let Err(e) = own.post("/v3/lease/keepalive", &body, deadline).await {
                    if e.class == ErrorClass::Unknown {
                        own.conn = None;
                    }
                    tracing::debug!(lease, error = %e, "lease keep-alive");
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::{DataKind, EtcdClientFactory, EtcdClientOptions};
    use crate::client::{Client, Invocation, Status};
    use crate::history::Process;
    use serde_json::{json, Value};
    use std::time::Duration;

    fn inv(f: &str, value: Value) -> Invocation {
        Invocation {
            process: Process::Client(0),
            f: f.into(),
            value,
            key: None,
            timeout: Duration::from_secs(1),
        }
    }

    fn factory(max_sleep_ms: u64) -> EtcdClientFactory {
        let opts = EtcdClientOptions {
            workload: "lock-set".into(),
            kind: DataKind::Lock,
            timeout: Duration::from_millis(300),
            lock: super::LockOptions {
                ttl_s: 2,
                max_sleep_ms,
            },
            ..EtcdClientOptions::default()
        };
        // Port 1 on localhost: nothing listens, every request is refused
        // before it is sent.
        EtcdClientFactory::new([("n1", "http://127.0.0.1:1")], opts).unwrap()
    }

    #[tokio::test]
    async fn without_the_lock_a_client_neither_adds_nor_releases() {
        let f = factory(0);
        let mut c = f.client();
        let add = c.invoke(&inv("add", json!(3))).await;
        assert_eq!(
            (add.status, add.error),
            (Status::Fail, Some(json!("not held")))
        );
        let release = c.invoke(&inv("release", Value::Null)).await;
        assert_eq!(
            (release.status, release.error),
            (Status::Fail, Some(json!("not held")))
        );
        // An acquire whose lease cannot even be asked for took nothing.
        let acquire = c.invoke(&inv("acquire", Value::Null)).await;
        assert_eq!(acquire.status, Status::Fail, "{acquire:?}");
        assert!(
            acquire
                .error
                .as_ref()
                .and_then(Value::as_str)
                .unwrap_or("")
                .starts_with("lease grant: "),
            "{acquire:?}"
        );
        assert_eq!(c.invoke(&inv("read", Value::Null)).await.value, json!([]));
        assert!(f.shared_set().snapshot().is_empty());
    }

    #[tokio::test]
    async fn every_client_of_a_factory_reads_the_one_shared_set() {
        let f = factory(0);
        f.shared_set().store(vec![json!(1), json!(2)]);
        let (mut a, mut b) = (f.client(), f.client());
        assert_eq!(
            a.invoke(&inv("read", Value::Null)).await.value,
            json!([1, 2])
        );
        assert_eq!(
            b.invoke(&inv("read", Value::Null)).await.value,
            json!([1, 2])
        );
        // Another factory (another run) has a set of its own.
        assert!(factory(0).shared_set().snapshot().is_empty());
    }
}
