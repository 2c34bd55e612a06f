//! A PostgreSQL client for the transactional workloads (`list-append`,
//! `rw-register`), over the network with the `tokio-postgres` driver.
//!
//! Each `txn` operation runs as one transaction,
//! `BEGIN ISOLATION LEVEL <level>` … `COMMIT`, one statement per
//! micro-operation, on two tables created by the db
//! ([`super::db`]):
//!
//! - list-append: `la (k int primary key, v text)`, the list a
//!   comma-separated text; `["append", k, x]` is
//!   `INSERT ... ON CONFLICT (k) DO UPDATE SET v = la.v || ',' || x`, and
//!   `["r", k, null]` a `SELECT` whose missing row reads as `[]`;
//! - rw-register: `rw (k int primary key, v bigint)`; `["w", k, x]` is an
//!   upsert, `["r", k, null]` a `SELECT` (a missing row reads `null`).
//!
//! How an operation ends:
//!
//! - any error before `COMMIT` is sent is `fail`: the transaction cannot
//!   have committed (a serialization failure, SQLSTATE 40001, or a
//!   deadlock, 40P01, is the usual one; the connection is dropped when its
//!   state is in doubt, which aborts the transaction on the server);
//! - an error answered to `COMMIT` with a SQLSTATE of class 40 (transaction
//!   rollback), 23 (integrity) or 25 (invalid transaction state) is `fail`:
//!   the server says it rolled back;
//! - anything else during `COMMIT` — the connection lost, a timeout, the
//!   server shutting down — is `info`: it may have committed.
//!
//! Where a transaction goes ([`PostgresReadMode`]): by default, and with
//! `primary`, every transaction goes to the primary. With `replica`, a
//! transaction whose micro-operations are all reads goes to a hot standby
//! (the worker's own node when it is one, otherwise one picked by worker
//! number), as a `READ ONLY` transaction at the same level, except that a
//! standby refuses `SERIALIZABLE`, so there it is `REPEATABLE READ` (one
//! snapshot: the same reads for a read-only transaction). Any error there
//! is `fail`: a read-only transaction changes nothing, whatever becomes of
//! its `COMMIT`.

use crate::client::{Client, ClientError, ClientFactory, Completion, Invocation};
use serde_json::{json, Value};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::NoTls;

/// The table of list-append.
pub const LIST_TABLE: &str = "la";
/// The table of rw-register.
pub const REGISTER_TABLE: &str = "rw";
/// The database the tables live in.
pub const DATABASE: &str = "faultline";

/// The SQL creating both tables (idempotent).
pub const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS la (k int PRIMARY KEY, v text NOT NULL); \
     CREATE TABLE IF NOT EXISTS rw (k int PRIMARY KEY, v bigint);";

/// A transaction isolation level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isolation {
    /// `READ COMMITTED`.
    ReadCommitted,
    /// `REPEATABLE READ` (snapshot isolation in PostgreSQL).
    RepeatableRead,
    /// `SERIALIZABLE` (serializable snapshot isolation).
    Serializable,
}

impl Isolation {
    /// The level as SQL writes it.
    pub fn sql(self) -> &'static str {
        match self {
            Isolation::ReadCommitted => "READ COMMITTED",
            Isolation::RepeatableRead => "REPEATABLE READ",
            Isolation::Serializable => "SERIALIZABLE",
        }
    }

    /// The level as flags write it.
    pub fn name(self) -> &'static str {
        match self {
            Isolation::ReadCommitted => "read-committed",
            Isolation::RepeatableRead => "repeatable-read",
            Isolation::Serializable => "serializable",
        }
    }
}

impl FromStr for Isolation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "read-committed" => Ok(Isolation::ReadCommitted),
            "repeatable-read" => Ok(Isolation::RepeatableRead),
            "serializable" => Ok(Isolation::Serializable),
            other => Err(format!(
                "unknown isolation level {other:?}; expected read-committed, repeatable-read or serializable"
            )),
        }
    }
}

/// Where transactions go, and what is deployed for them (`--read-mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PostgresReadMode {
    /// One server on the first node; every transaction goes to it.
    #[default]
    Linearizable,
    /// A primary on the first node and hot standbys on the others; every
    /// transaction goes to the primary (the standbys only replicate).
    Primary,
    /// A primary and hot standbys; read-only transactions go to a standby,
    /// the others to the primary.
    Replica,
}

impl PostgresReadMode {
    /// The mode as `--read-mode` and `test.json` write it.
    pub fn name(self) -> &'static str {
        match self {
            PostgresReadMode::Linearizable => "linearizable",
            PostgresReadMode::Primary => "primary",
            PostgresReadMode::Replica => "replica",
        }
    }

    /// Whether hot standbys are deployed next to the primary.
    pub fn replicated(self) -> bool {
        self != PostgresReadMode::Linearizable
    }
}

impl FromStr for PostgresReadMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "linearizable" => Ok(PostgresReadMode::Linearizable),
            "primary" => Ok(PostgresReadMode::Primary),
            "replica" => Ok(PostgresReadMode::Replica),
            other => Err(format!(
                "unknown read mode {other:?} for postgres; use linearizable (one server, the \
                 default), primary (a primary and hot standbys, everything to the primary) or \
                 replica (read-only transactions to a standby)"
            )),
        }
    }
}

/// What every client of a test shares.
#[derive(Clone, Debug)]
pub struct PostgresClientOptions {
    /// The primary's (the only server's) address.
    pub host: String,
    /// The hot standbys, (node name, address), in node order; empty with
    /// one server.
    pub standbys: Vec<(String, String)>,
    /// Where transactions go.
    pub read_mode: PostgresReadMode,
    /// Its port.
    pub port: u16,
    /// The user (trusted, no password).
    pub user: String,
    /// The database.
    pub dbname: String,
    /// The isolation level of every transaction.
    pub isolation: Isolation,
    /// List-append (`true`) or rw-register tables.
    pub list_append: bool,
    /// How long connecting may take.
    pub connect_timeout: Duration,
}

impl PostgresClientOptions {
    /// Options for a server at `host:port`, database [`DATABASE`], user
    /// `postgres`, serializable, list-append.
    pub fn new(host: &str, port: u16) -> Self {
        PostgresClientOptions {
            host: host.to_string(),
            standbys: Vec::new(),
            read_mode: PostgresReadMode::Linearizable,
            port,
            user: "postgres".into(),
            dbname: DATABASE.into(),
            isolation: Isolation::Serializable,
            list_append: true,
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// Makes the clients of a test: writes (and, but with `replica`, every
/// transaction) go to the primary, whatever node their worker is assigned.
#[derive(Clone, Debug)]
pub struct PostgresClientFactory {
    opts: Arc<PostgresClientOptions>,
}

impl PostgresClientFactory {
    /// Clients with `opts`.
    pub fn new(opts: PostgresClientOptions) -> Self {
        PostgresClientFactory {
            opts: Arc::new(opts),
        }
    }

    /// A new, unopened client for worker `worker`.
    pub fn client(&self, worker: usize) -> PostgresClient {
        PostgresClient {
            opts: self.opts.clone(),
            worker,
            conn: None,
            standby: None,
            standby_conn: None,
        }
    }

    /// As the runner's factory.
    pub fn into_factory(self) -> ClientFactory {
        Box::new(move |w| Box::new(self.client(w)) as Box<dyn Client>)
    }
}

struct Conn {
    client: tokio_postgres::Client,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        // Closing the socket makes the server abort whatever transaction
        // the connection had open.
        self.task.abort();
    }
}

/// One worker's connections: to the primary, and with `replica` to the
/// standby its reads go to.
pub struct PostgresClient {
    opts: Arc<PostgresClientOptions>,
    /// The worker number (picks a standby when its node is none).
    worker: usize,
    conn: Option<Conn>,
    /// The address read-only transactions go to (`replica`, once opened).
    standby: Option<String>,
    standby_conn: Option<Conn>,
}

/// The standby that reads of a worker on `node` go to: that node when it
/// is a standby, otherwise the `worker`-th standby (round robin); `None`
/// when there are none.
pub fn standby_for<'a>(
    standbys: &'a [(String, String)],
    node: &str,
    worker: usize,
) -> Option<&'a str> {
    if standbys.is_empty() {
        return None;
    }
    let (_, host) = standbys
        .iter()
        .find(|(name, _)| name == node)
        .unwrap_or(&standbys[worker % standbys.len()]);
    Some(host)
}

/// Whether a transaction only reads (and so may go to a standby).
fn read_only(mops: &[Mop]) -> bool {
    mops.iter().all(|m| matches!(m, Mop::Read(_)))
}

/// Where in a transaction an error happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Before `COMMIT` was sent: the transaction cannot have committed.
    Body,
    /// While `COMMIT` was in flight.
    Commit,
}

/// Whether `e`, at `stage`, leaves the transaction certainly not committed
/// (`fail`) or maybe committed (`info`).
fn classify(e: &tokio_postgres::Error, stage: Stage) -> ClientError {
    let code = e.code().map(|c| c.code().to_string());
    let msg = match &code {
        Some(c) => format!(
            "{c}: {}",
            e.as_db_error().map(|d| d.message()).unwrap_or("")
        ),
        None => e.to_string(),
    };
    match stage {
        Stage::Body => ClientError::not_applied(msg),
        Stage::Commit => match code.as_deref() {
            Some(c) if c.starts_with("40") || c.starts_with("23") || c.starts_with("25") => {
                ClientError::not_applied(msg)
            }
            _ => ClientError::unknown(msg),
        },
    }
}

/// A connection to the server at `host`.
async fn connect(opts: &PostgresClientOptions, host: &str) -> Result<Conn, ClientError> {
    let mut cfg = tokio_postgres::Config::new();
    cfg.host(host)
        .port(opts.port)
        .user(&opts.user)
        .dbname(&opts.dbname)
        .connect_timeout(opts.connect_timeout);
    let (client, connection) = tokio::time::timeout(opts.connect_timeout, cfg.connect(NoTls))
        .await
        .map_err(|_| ClientError::not_applied("connect timed out"))?
        .map_err(|e| ClientError::not_applied(format!("connect: {e}")))?;
    let task = tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!("postgres connection ended: {e}");
        }
    });
    Ok(Conn { client, task })
}

impl PostgresClient {
    async fn connect(&mut self) -> Result<(), ClientError> {
        self.conn = Some(connect(&self.opts, &self.opts.host).await?);
        Ok(())
    }

    /// Runs the transaction on `conn` (`standby`: a hot standby's, read
    /// only); the completed micro-operations, or the error with its class.
    async fn txn(
        &self,
        conn: Option<&Conn>,
        standby: bool,
        mops: &[Mop],
    ) -> Result<Value, (ClientError, Stage)> {
        let Some(conn) = conn else {
            return Err((ClientError::not_applied("not connected"), Stage::Body));
        };
        let c = &conn.client;
        let body = |e: tokio_postgres::Error| (classify(&e, Stage::Body), Stage::Body);
        c.batch_execute(&begin(self.opts.isolation, standby))
            .await
            .map_err(body)?;
        let mut out = Vec::with_capacity(mops.len());
        for m in mops {
            let done = match m {
                Mop::Read(k) if self.opts.list_append => {
                    let row = c
                        .query_opt("SELECT v FROM la WHERE k = $1", &[k])
                        .await
                        .map_err(body)?;
                    let list = match row {
                        None => Vec::new(),
                        Some(r) => {
                            let text: String = r.get(0);
                            parse_list(&text)
                                .map_err(|e| (ClientError::not_applied(e), Stage::Body))?
                        }
                    };
                    json!(["r", k, list])
                }
                Mop::Read(k) => {
                    let row = c
                        .query_opt("SELECT v FROM rw WHERE k = $1", &[k])
                        .await
                        .map_err(body)?;
                    let v: Option<i64> = row.and_then(|r| r.get(0));
                    json!(["r", k, v])
                }
                Mop::Write(k, v) if self.opts.list_append => {
                    c.execute(
                        "INSERT INTO la AS t (k, v) VALUES ($1, $2) \
                         ON CONFLICT (k) DO UPDATE SET v = t.v || ',' || excluded.v",
                        &[k, &v.to_string()],
                    )
                    .await
                    .map_err(body)?;
                    json!(["append", k, v])
                }
                Mop::Write(k, v) => {
                    c.execute(
                        "INSERT INTO rw AS t (k, v) VALUES ($1, $2) \
                         ON CONFLICT (k) DO UPDATE SET v = excluded.v",
                        &[k, v],
                    )
                    .await
                    .map_err(body)?;
                    json!(["w", k, v])
                }
            };
            out.push(done);
        }
        c.batch_execute("COMMIT")
            .await
            .map_err(|e| (classify(&e, Stage::Commit), Stage::Commit))?;
        Ok(Value::Array(out))
    }
}

/// The statement opening a transaction at `isolation`; on a standby
/// `READ ONLY`, and `REPEATABLE READ` for `SERIALIZABLE`, which a hot
/// standby refuses ("cannot use serializable mode in a hot standby").
fn begin(isolation: Isolation, standby: bool) -> String {
    if !standby {
        return format!("BEGIN ISOLATION LEVEL {}", isolation.sql());
    }
    let level = match isolation {
        Isolation::Serializable => Isolation::RepeatableRead,
        other => other,
    };
    format!("BEGIN ISOLATION LEVEL {} READ ONLY", level.sql())
}

/// A decoded micro-operation.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Mop {
    Read(i32),
    Write(i32, i64),
}

/// Decodes a transaction's micro-operations; keys must fit an `int`.
pub(crate) fn decode(value: &Value) -> Result<Vec<Mop>, String> {
    let list = value
        .as_array()
        .ok_or_else(|| format!("a txn is a list of micro-operations, got {value}"))?;
    let mut out = Vec::with_capacity(list.len());
    for m in list {
        let parts = m.as_array().filter(|p| p.len() == 3);
        let Some(p) = parts else {
            return Err(format!("bad micro-operation {m}"));
        };
        let k = p[1]
            .as_i64()
            .and_then(|k| i32::try_from(k).ok())
            .ok_or_else(|| format!("key {} is not a 32-bit integer", p[1]))?;
        match p[0].as_str() {
            Some("r") => out.push(Mop::Read(k)),
            Some("append") | Some("w") => {
                let v = p[2]
                    .as_i64()
                    .ok_or_else(|| format!("value {} is not an integer", p[2]))?;
                out.push(Mop::Write(k, v));
            }
            _ => return Err(format!("unknown micro-operation {m}")),
        }
    }
    Ok(out)
}

/// `"1,2,3"` → `[1, 2, 3]`.
pub(crate) fn parse_list(text: &str) -> Result<Vec<i64>, String> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    text.split(',')
        .map(|x| {
            x.parse::<i64>()
                .map_err(|_| format!("list element {x:?} in {text:?} is not an integer"))
        })
        .collect()
}

#[async_trait::async_trait]
impl Client for PostgresClient {
    async fn open(&mut self, node: &str) -> Result<(), ClientError> {
        self.conn = None;
        self.standby_conn = None;
        self.standby = match self.opts.read_mode {
            PostgresReadMode::Replica => {
                standby_for(&self.opts.standbys, node, self.worker).map(String::from)
            }
            _ => None,
        };
        match self.connect().await {
            // Reads on a standby need no primary: while it is down they
            // go on, and a write connects when it comes.
            Err(e) if self.standby.is_some() => {
                tracing::debug!("postgres primary: {}; reads go to the standby", e.message);
                Ok(())
            }
            other => other,
        }
    }

    async fn invoke(&mut self, inv: &Invocation) -> Completion {
        if inv.f != "txn" {
            return Completion::fail(
                inv.value.clone(),
                format!("the postgres client runs txn operations, not {}", inv.f),
            );
        }
        let mops = match decode(&inv.value) {
            Ok(m) => m,
            Err(e) => return Completion::fail(inv.value.clone(), e),
        };
        // Give up a little before the runner does, so the outcome is ours
        // to classify.
        let budget = inv
            .timeout
            .checked_sub(Duration::from_millis(200))
            .unwrap_or(inv.timeout / 2);
        if let Some(host) = self.standby.clone().filter(|_| read_only(&mops)) {
            return self.read_on_standby(&host, &mops, inv, budget).await;
        }
        if self.conn.as_ref().map_or(true, |c| c.client.is_closed()) {
            // Nothing is sent until a connection is up.
            if let Err(e) = self.connect().await {
                return Completion::from_error(inv.value.clone(), &e);
            }
        }
        let result = tokio::time::timeout(budget, self.txn(self.conn.as_ref(), false, &mops)).await;
        match result {
            Ok(Ok(v)) => Completion::ok(v),
            Ok(Err((e, stage))) => {
                // The connection's state is in doubt after any error (an
                // aborted transaction is still open on it): start afresh.
                let broken = stage == Stage::Commit
                    || self.conn.as_ref().map_or(true, |c| c.client.is_closed());
                if broken {
                    self.conn = None;
                } else if let Some(c) = &self.conn {
                    if c.client.batch_execute("ROLLBACK").await.is_err() {
                        self.conn = None;
                    }
                }
                Completion::from_error(inv.value.clone(), &e)
            }
            Err(_) => {
                // We cannot tell whether COMMIT was sent: unknown. Dropping
                // the connection aborts it if it was not.
                self.conn = None;
                Completion::info(inv.value.clone(), format!("timeout after {budget:?}"))
            }
        }
    }

    async fn close(&mut self) -> Result<(), ClientError> {
        self.conn = None;
        self.standby_conn = None;
        Ok(())
    }
}

impl PostgresClient {
    /// A read-only transaction on the standby at `host`. Every way it can
    /// end but `ok` is `fail`: it changes nothing, committed or not.
    async fn read_on_standby(
        &mut self,
        host: &str,
        mops: &[Mop],
        inv: &Invocation,
        budget: Duration,
    ) -> Completion {
        if self
            .standby_conn
            .as_ref()
            .map_or(true, |c| c.client.is_closed())
        {
            match connect(&self.opts, host).await {
                Ok(c) => self.standby_conn = Some(c),
                Err(e) => {
                    return Completion::fail(
                        inv.value.clone(),
                        format!("standby {host}: {}", e.message),
                    )
                }
            }
        }
        let result =
            tokio::time::timeout(budget, self.txn(self.standby_conn.as_ref(), true, mops)).await;
        match result {
            Ok(Ok(v)) => Completion::ok(v),
            Ok(Err((e, _))) => {
                self.standby_conn = None;
                Completion::fail(inv.value.clone(), format!("standby {host}: {}", e.message))
            }
            Err(_) => {
                self.standby_conn = None;
                Completion::fail(
                    inv.value.clone(),
                    format!("standby {host}: timeout after {budget:?}"),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isolation_names() {
        for l in [
            Isolation::ReadCommitted,
            Isolation::RepeatableRead,
            Isolation::Serializable,
        ] {
            assert_eq!(l.name().parse::<Isolation>(), Ok(l));
        }
        assert!("snapshot".parse::<Isolation>().is_err());
    }

    #[test]
    fn decodes_micro_operations() {
        let v = json!([["r", 1, null], ["append", 2, 5], ["w", 3, 7]]);
        assert_eq!(
            decode(&v).unwrap(),
            vec![Mop::Read(1), Mop::Write(2, 5), Mop::Write(3, 7)]
        );
        assert!(decode(&json!([["x", 1, 2]])).is_err());
        assert!(decode(&json!([["r", "k", null]])).is_err());
        assert!(decode(&json!(5)).is_err());
    }

    #[test]
    fn read_modes_parse_and_say_what_they_deploy() {
        for m in [
            PostgresReadMode::Linearizable,
            PostgresReadMode::Primary,
            PostgresReadMode::Replica,
        ] {
            assert_eq!(m.name().parse::<PostgresReadMode>(), Ok(m));
        }
        assert_eq!(PostgresReadMode::default(), PostgresReadMode::Linearizable);
        assert!(!PostgresReadMode::Linearizable.replicated());
        assert!(PostgresReadMode::Primary.replicated());
        assert!(PostgresReadMode::Replica.replicated());
        let e = "standby".parse::<PostgresReadMode>().unwrap_err();
        assert!(
            e.starts_with("unknown read mode \"standby\" for postgres")
                && e.contains("replica (read-only transactions to a standby)"),
            "{e}"
        );
    }

    #[test]
    fn reads_go_to_the_workers_own_standby_or_one_by_worker_number() {
        let standbys = vec![
            ("n2".to_string(), "10.0.0.2".to_string()),
            ("n3".to_string(), "10.0.0.3".to_string()),
        ];
        // A worker on a standby reads there, whatever its number.
        assert_eq!(standby_for(&standbys, "n3", 0), Some("10.0.0.3"));
        assert_eq!(standby_for(&standbys, "n2", 7), Some("10.0.0.2"));
        // A worker on the primary's node takes turns by number.
        assert_eq!(standby_for(&standbys, "n1", 0), Some("10.0.0.2"));
        assert_eq!(standby_for(&standbys, "n1", 1), Some("10.0.0.3"));
        assert_eq!(standby_for(&standbys, "n1", 2), Some("10.0.0.2"));
        // No standby: nothing to route to.
        assert_eq!(standby_for(&[], "n1", 0), None);
    }

    #[test]
    fn only_transactions_that_only_read_are_read_only() {
        let ops = |v: Value| decode(&v).unwrap();
        assert!(read_only(&ops(json!([["r", 1, null], ["r", 2, null]]))));
        assert!(!read_only(&ops(json!([["r", 1, null], ["append", 2, 5]]))));
        assert!(!read_only(&ops(json!([["w", 3, 7]]))));
    }

    #[test]
    fn a_standby_transaction_is_read_only_and_never_serializable() {
        assert_eq!(
            begin(Isolation::Serializable, false),
            "BEGIN ISOLATION LEVEL SERIALIZABLE"
        );
        assert_eq!(
            begin(Isolation::Serializable, true),
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
        );
        assert_eq!(
            begin(Isolation::ReadCommitted, true),
            "BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY"
        );
    }

    #[test]
    fn parses_lists() {
        assert_eq!(parse_list("").unwrap(), Vec::<i64>::new());
        assert_eq!(parse_list("3,1,2").unwrap(), vec![3, 1, 2]);
        assert!(parse_list("1,,2").is_err());
    }
}
