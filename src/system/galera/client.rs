//! A MariaDB client for Galera's workloads, over the network with the
//! `mysql_async` driver: each worker talks to the server on its own node
//! (every node accepts writes), as the user the db creates.
//!
//! Each operation is one transaction at the test's isolation level (set
//! once per session), `START TRANSACTION` … `COMMIT`, one statement per
//! step, on tables the db creates ([`SCHEMA`]), in PostgreSQL's shapes
//! (`super::super::postgres::client`):
//!
//! - list-append: `la (k int primary key, v text)`, the list a
//!   comma-separated text; an append is `INSERT ... ON DUPLICATE KEY
//!   UPDATE v = CONCAT(v, ',', x)`, a read a `SELECT` (no row: `[]`);
//! - rw-register: `rw (k int primary key, v bigint)`; a write is an
//!   upsert, a read a `SELECT` (no row: `null`);
//! - bank: `bank (id int primary key, balance bigint)`, the accounts
//!   inserted once by the first client to open (`INSERT IGNORE`); a
//!   transfer reads both balances, refuses an overdraft (unless the
//!   workload allows negative balances) and writes both new balances; a
//!   read selects every balance.
//!
//! How an operation ends (a verdict must mean what it says):
//!
//! - any error before `COMMIT` is sent is `fail`: without `COMMIT` the
//!   transaction cannot commit (a deadlock or a Galera conflict, error
//!   1213, "WSREP detected deadlock/conflict", is the usual one; a node
//!   outside the primary component answers 1047); so is a timeout before
//!   `COMMIT` was sent, since the connection is then dropped, which
//!   aborts the transaction on the server;
//! - error 1213 answered to `COMMIT` is `fail`: certification failed, or
//!   the transaction was aborted by a replicated one, and it rolled back;
//! - anything else during `COMMIT` — the connection lost, a timeout, the
//!   node leaving the primary component (1047) — is `info`: it may have
//!   committed.

use crate::client::servers::Servers;
use crate::client::{Client, ClientError, ClientFactory, Completion, Invocation};
use crate::system::postgres::client::{decode, parse_list, Mop};
use crate::system::postgres::Isolation;
use mysql_async::prelude::Queryable;
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The database the tables live in.
pub const DATABASE: &str = "faultline";
/// The user clients log in as (made by the db, from any host).
pub const USER: &str = "faultline";
/// Its password.
pub const PASSWORD: &str = "faultline";

/// The SQL creating the tables (idempotent), run in [`DATABASE`].
pub const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS la (k INT PRIMARY KEY, v TEXT NOT NULL) \
       ENGINE=InnoDB; \
     CREATE TABLE IF NOT EXISTS rw (k INT PRIMARY KEY, v BIGINT) ENGINE=InnoDB; \
     CREATE TABLE IF NOT EXISTS bank (id INT PRIMARY KEY, balance BIGINT NOT NULL) ENGINE=InnoDB;";

/// MariaDB's error for a deadlock, which Galera also answers when
/// certification fails or a replicated transaction aborts a local one:
/// the transaction was rolled back.
pub const ER_LOCK_DEADLOCK: u16 = 1213;

/// Which tables a test's clients use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tables {
    /// `la`, list-append transactions.
    ListAppend,
    /// `rw`, rw-register transactions.
    RwRegister,
    /// `bank`: transfers and reads of every balance.
    Bank {
        /// The opening balance of accounts `0..`.
        initial: Vec<i64>,
        /// Whether a transfer may overdraw.
        negative_balances: bool,
    },
}

/// What every client of a test shares.
#[derive(Clone, Debug)]
pub struct GaleraClientOptions {
    /// The SQL port.
    pub port: u16,
    /// The isolation level of every transaction.
    pub isolation: Isolation,
    /// The tables the workload uses.
    pub tables: Tables,
    /// How long connecting may take.
    pub connect_timeout: Duration,
}

impl GaleraClientOptions {
    /// Options for servers on `port`, at the default isolation
    /// ([`super::DEFAULT_ISOLATION`]).
    pub fn new(port: u16, tables: Tables) -> Self {
        GaleraClientOptions {
            port,
            isolation: super::DEFAULT_ISOLATION,
            tables,
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// Makes the clients of a test; each connects to the node its worker is
/// given.
#[derive(Clone, Debug)]
pub struct GaleraClientFactory {
    /// Node name → host.
    hosts: Servers,
    opts: Arc<GaleraClientOptions>,
    /// Whether the bank's accounts exist (made by the first open).
    accounts: Arc<tokio::sync::Mutex<bool>>,
}

impl GaleraClientFactory {
    /// Clients of the servers on `hosts` (node name, host).
    pub fn new(
        hosts: impl IntoIterator<Item = (String, String)>,
        opts: GaleraClientOptions,
    ) -> Result<Self, ClientError> {
        Ok(GaleraClientFactory {
            hosts: Servers::new("galera", hosts)?,
            opts: Arc::new(opts),
            accounts: Arc::new(tokio::sync::Mutex::new(false)),
        })
    }

    /// A new, unopened client.
    pub fn client(&self) -> GaleraClient {
        GaleraClient {
            factory: self.clone(),
            host: None,
            conn: None,
        }
    }

    /// As the runner's factory.
    pub fn into_factory(self) -> ClientFactory {
        Box::new(move |_| Box::new(self.client()) as Box<dyn Client>)
    }
}

/// One connection to one node's server, used by one worker at a time.
pub struct GaleraClient {
    factory: GaleraClientFactory,
    host: Option<String>,
    conn: Option<mysql_async::Conn>,
}

/// Where in a transaction an error happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Before `COMMIT` was sent: the transaction cannot have committed.
    Body,
    /// While `COMMIT` was in flight.
    Commit,
}

/// An error in words: a server error with its code.
fn describe(e: &mysql_async::Error) -> String {
    match e {
        mysql_async::Error::Server(s) => format!("{} ({}): {}", s.code, s.state, s.message),
        other => other.to_string(),
    }
}

/// Whether `e`, at `stage`, leaves the transaction certainly not committed
/// (`fail`) or maybe committed (`info`); see the module's comment.
pub fn classify(e: &mysql_async::Error, stage: Stage) -> ClientError {
    let msg = describe(e);
    match (stage, e) {
        (Stage::Body, _) => ClientError::not_applied(msg),
        (Stage::Commit, mysql_async::Error::Server(s)) if s.code == ER_LOCK_DEADLOCK => {
            ClientError::not_applied(msg)
        }
        (Stage::Commit, _) => ClientError::unknown(msg),
    }
}

/// One operation, decoded.
#[derive(Clone, Debug, PartialEq)]
enum Op {
    /// A list-append or rw-register transaction.
    Txn(Vec<Mop>),
    /// A bank transfer.
    Transfer { from: i64, to: i64, amount: i64 },
    /// A read of every balance.
    BankRead,
}

/// Decodes an invocation for `tables`.
fn decode_op(tables: &Tables, f: &str, value: &Value) -> Result<Op, String> {
    match (tables, f) {
        (Tables::Bank { .. }, "transfer") => {
            let field = |name: &str| {
                value[name]
                    .as_i64()
                    .ok_or_else(|| format!("a transfer needs an integer {name:?}, got {value}"))
            };
            Ok(Op::Transfer {
                from: field("from")?,
                to: field("to")?,
                amount: field("amount")?,
            })
        }
        (Tables::Bank { .. }, "read") => Ok(Op::BankRead),
        (Tables::Bank { .. }, other) => Err(format!(
            "the galera bank client runs transfer and read, not {other}"
        )),
        (_, "txn") => decode(value).map(Op::Txn),
        (_, other) => Err(format!(
            "the galera client runs txn operations, not {other}"
        )),
    }
}

/// Why an operation did not complete `ok`.
enum Failure {
    /// A driver or server error, at a stage.
    Sql(mysql_async::Error, Stage),
    /// Refused by the client itself before `COMMIT` (an overdraft, a
    /// missing account): rolled back.
    Refused(String),
}

impl GaleraClient {
    async fn connect(&mut self) -> Result<(), ClientError> {
        let host = self
            .host
            .clone()
            .ok_or_else(|| ClientError::not_applied("not opened on a node"))?;
        let o = &self.factory.opts;
        let opts = mysql_async::OptsBuilder::default()
            .ip_or_hostname(host.clone())
            .tcp_port(o.port)
            .user(Some(USER))
            .pass(Some(PASSWORD))
            .db_name(Some(DATABASE))
            .prefer_socket(false)
            .tcp_nodelay(true);
        let mut conn = tokio::time::timeout(o.connect_timeout, mysql_async::Conn::new(opts))
            .await
            .map_err(|_| ClientError::not_applied(format!("connect to {host}: timed out")))?
            .map_err(|e| {
                ClientError::not_applied(format!("connect to {host}: {}", describe(&e)))
            })?;
        let set = format!(
            "SET SESSION TRANSACTION ISOLATION LEVEL {}",
            o.isolation.sql()
        );
        tokio::time::timeout(o.connect_timeout, conn.query_drop(set))
            .await
            .map_err(|_| ClientError::not_applied(format!("{host}: setting isolation timed out")))?
            .map_err(|e| ClientError::not_applied(format!("{host}: {}", describe(&e))))?;
        self.conn = Some(conn);
        Ok(())
    }

    /// Inserts the bank's accounts once per test (`INSERT IGNORE`: rows
    /// already there, maybe transferred from, stay as they are).
    async fn ensure_accounts(&mut self) -> Result<(), ClientError> {
        let Tables::Bank { initial, .. } = &self.factory.opts.tables else {
            return Ok(());
        };
        let accounts = self.factory.accounts.clone();
        let mut done = accounts.lock().await;
        if *done {
            return Ok(());
        }
        let rows: Vec<String> = initial
            .iter()
            .enumerate()
            .map(|(i, b)| format!("({i}, {b})"))
            .collect();
        let sql = format!(
            "INSERT IGNORE INTO bank (id, balance) VALUES {}",
            rows.join(", ")
        );
        let Some(conn) = self.conn.as_mut() else {
            return Err(ClientError::not_applied("not connected"));
        };
        let mut last = String::new();
        // Two clients' inserts on two nodes may conflict (1213): again.
        for _ in 0..5 {
            match tokio::time::timeout(Duration::from_secs(10), conn.query_drop(sql.as_str())).await
            {
                Ok(Ok(())) => {
                    *done = true;
                    return Ok(());
                }
                Ok(Err(e)) => last = describe(&e),
                Err(_) => last = "timed out".into(),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(ClientError::not_applied(format!(
            "creating the bank's accounts: {last}"
        )))
    }

    /// Runs `op` as one transaction; `commit_sent` is set just before
    /// `COMMIT` goes out, so a timeout can tell the stages apart.
    async fn run(&mut self, op: &Op, commit_sent: &AtomicBool) -> Result<Value, Failure> {
        let Some(c) = self.conn.as_mut() else {
            return Err(Failure::Refused("not connected".into()));
        };
        let body = |e| Failure::Sql(e, Stage::Body);
        c.query_drop("START TRANSACTION").await.map_err(body)?;
        let result = match op {
            Op::Txn(mops) => {
                let list_append = self.factory.opts.tables == Tables::ListAppend;
                let mut out = Vec::with_capacity(mops.len());
                for m in mops {
                    out.push(match m {
                        Mop::Read(k) if list_append => {
                            let text: Option<String> = c
                                .query_first(format!("SELECT v FROM la WHERE k = {k}"))
                                .await
                                .map_err(body)?;
                            let list = match text {
                                None => Vec::new(),
                                Some(t) => parse_list(&t).map_err(Failure::Refused)?,
                            };
                            json!(["r", k, list])
                        }
                        Mop::Read(k) => {
                            let v: Option<Option<i64>> = c
                                .query_first(format!("SELECT v FROM rw WHERE k = {k}"))
                                .await
                                .map_err(body)?;
                            json!(["r", k, v.flatten()])
                        }
                        Mop::Write(k, v) if list_append => {
                            c.query_drop(format!(
                                "INSERT INTO la (k, v) VALUES ({k}, '{v}') \
                                 ON DUPLICATE KEY UPDATE v = CONCAT(v, ',', VALUES(v))"
                            ))
                            .await
                            .map_err(body)?;
                            json!(["append", k, v])
                        }
                        Mop::Write(k, v) => {
                            c.query_drop(format!(
                                "INSERT INTO rw (k, v) VALUES ({k}, {v}) \
                                 ON DUPLICATE KEY UPDATE v = VALUES(v)"
                            ))
                            .await
                            .map_err(body)?;
                            json!(["w", k, v])
                        }
                    });
                }
                Value::Array(out)
            }
            Op::Transfer { from, to, amount } => {
                let rows: Vec<(i64, i64)> = c
                    .query(format!(
                        "SELECT id, balance FROM bank WHERE id IN ({from}, {to})"
                    ))
                    .await
                    .map_err(body)?;
                let balance = |id: i64| rows.iter().find(|(i, _)| *i == id).map(|(_, b)| *b);
                let (Some(b_from), Some(b_to)) = (balance(*from), balance(*to)) else {
                    return Err(Failure::Refused(format!("no account {from} or {to}")));
                };
                let negative = matches!(
                    self.factory.opts.tables,
                    Tables::Bank {
                        negative_balances: true,
                        ..
                    }
                );
                if !negative && b_from - amount < 0 {
                    return Err(Failure::Refused(format!(
                        "insufficient funds: account {from} has {b_from}, the transfer needs {amount}"
                    )));
                }
                c.query_drop(format!(
                    "UPDATE bank SET balance = {} WHERE id = {from}",
                    b_from - amount
                ))
                .await
                .map_err(body)?;
                c.query_drop(format!(
                    "UPDATE bank SET balance = {} WHERE id = {to}",
                    b_to + amount
                ))
                .await
                .map_err(body)?;
                json!({"from": from, "to": to, "amount": amount})
            }
            Op::BankRead => {
                let rows: Vec<(i64, i64)> = c
                    .query("SELECT id, balance FROM bank ORDER BY id")
                    .await
                    .map_err(body)?;
                let balances: Map<String, Value> = rows
                    .into_iter()
                    .map(|(id, b)| (id.to_string(), json!(b)))
                    .collect();
                Value::Object(balances)
            }
        };
        commit_sent.store(true, Ordering::SeqCst);
        c.query_drop("COMMIT")
            .await
            .map_err(|e| Failure::Sql(e, Stage::Commit))?;
        Ok(result)
    }

    /// After a failure before `COMMIT`: rolls back, or drops the
    /// connection (which aborts the transaction) when that fails too.
    async fn abandon(&mut self) {
        let rolled_back = match self.conn.as_mut() {
            Some(c) => matches!(
                tokio::time::timeout(Duration::from_secs(2), c.query_drop("ROLLBACK")).await,
                Ok(Ok(()))
            ),
            None => true,
        };
        if !rolled_back {
            self.conn = None;
        }
    }
}

#[async_trait::async_trait]
impl Client for GaleraClient {
    async fn open(&mut self, node: &str) -> Result<(), ClientError> {
        let host = self.factory.hosts.on(node)?.to_string();
        self.host = Some(host);
        self.conn = None;
        self.connect().await?;
        self.ensure_accounts().await
    }

    async fn invoke(&mut self, inv: &Invocation) -> Completion {
        let op = match decode_op(&self.factory.opts.tables, &inv.f, &inv.value) {
            Ok(op) => op,
            Err(e) => return Completion::fail(inv.value.clone(), e),
        };
        if self.conn.is_none() {
            // Nothing is sent until a connection is up.
            if let Err(e) = self.connect().await {
                return Completion::from_error(inv.value.clone(), &e);
            }
        }
        // Give up a little before the runner does, so the outcome is ours
        // to classify.
        let budget = inv
            .timeout
            .checked_sub(Duration::from_millis(200))
            .unwrap_or(inv.timeout / 2);
        let commit_sent = AtomicBool::new(false);
        let result = tokio::time::timeout(budget, self.run(&op, &commit_sent)).await;
        match result {
            Ok(Ok(v)) => Completion::ok(v),
            Ok(Err(Failure::Refused(why))) => {
                self.abandon().await;
                Completion::fail(inv.value.clone(), why)
            }
            Ok(Err(Failure::Sql(e, stage))) => {
                let error = classify(&e, stage);
                match stage {
                    Stage::Body => self.abandon().await,
                    // A connection whose COMMIT failed starts afresh.
                    Stage::Commit => self.conn = None,
                }
                Completion::from_error(inv.value.clone(), &error)
            }
            Err(_) => {
                // Dropping the connection aborts a transaction whose
                // COMMIT was not sent.
                self.conn = None;
                if commit_sent.load(Ordering::SeqCst) {
                    Completion::info(
                        inv.value.clone(),
                        format!("timeout after {budget:?} with COMMIT in flight"),
                    )
                } else {
                    Completion::fail(
                        inv.value.clone(),
                        format!("timeout after {budget:?} before COMMIT; connection dropped"),
                    )
                }
            }
        }
    }

    async fn close(&mut self) -> Result<(), ClientError> {
        if let Some(c) = self.conn.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), c.disconnect()).await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ErrorClass;
    use mysql_async::{Error, IoError, ServerError};

    fn server(code: u16, message: &str) -> Error {
        Error::Server(ServerError {
            code,
            message: message.into(),
            state: "40001".into(),
        })
    }

    fn io() -> Error {
        Error::Io(IoError::Io(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "connection reset by peer",
        )))
    }

    #[test]
    fn errors_before_commit_fail_and_only_a_rollback_at_commit_fails() {
        let conflict = server(
            ER_LOCK_DEADLOCK,
            "WSREP detected deadlock/conflict and aborted the transaction. Try restarting the transaction",
        );
        let not_primary = server(1047, "WSREP has not yet prepared node for application use");
        // Before COMMIT nothing can have committed, whatever the error.
        for e in [&conflict, &not_primary, &io()] {
            assert_eq!(
                classify(e, Stage::Body).class,
                ErrorClass::NotApplied,
                "{e}"
            );
        }
        // At COMMIT: a conflict rolled it back; anything else is unknown.
        let c = classify(&conflict, Stage::Commit);
        assert_eq!(c.class, ErrorClass::NotApplied);
        assert!(
            c.message
                .starts_with("1213 (40001): WSREP detected deadlock/conflict"),
            "{}",
            c.message
        );
        assert_eq!(
            classify(&not_primary, Stage::Commit).class,
            ErrorClass::Unknown
        );
        let lost = classify(&io(), Stage::Commit);
        assert_eq!(lost.class, ErrorClass::Unknown);
        assert!(
            lost.message.contains("connection reset"),
            "{}",
            lost.message
        );
    }

    #[test]
    fn operations_decode_for_their_tables() {
        let bank = Tables::Bank {
            initial: vec![20; 5],
            negative_balances: false,
        };
        assert_eq!(
            decode_op(&bank, "transfer", &json!({"from": 1, "to": 3, "amount": 4})),
            Ok(Op::Transfer {
                from: 1,
                to: 3,
                amount: 4
            })
        );
        assert_eq!(decode_op(&bank, "read", &Value::Null), Ok(Op::BankRead));
        let e = decode_op(&bank, "transfer", &json!({"from": 1, "to": 3})).unwrap_err();
        assert!(
            e.starts_with("a transfer needs an integer \"amount\""),
            "{e}"
        );
        assert_eq!(
            decode_op(&bank, "txn", &json!([])).unwrap_err(),
            "the galera bank client runs transfer and read, not txn"
        );
        assert_eq!(
            decode_op(
                &Tables::ListAppend,
                "txn",
                &json!([["append", 1, 5], ["r", 1, null]])
            ),
            Ok(Op::Txn(vec![Mop::Write(1, 5), Mop::Read(1)]))
        );
        assert_eq!(
            decode_op(&Tables::RwRegister, "read", &Value::Null).unwrap_err(),
            "the galera client runs txn operations, not read"
        );
    }

    #[test]
    fn a_node_without_a_server_cannot_be_opened() {
        let f = GaleraClientFactory::new(
            [("n1".to_string(), "10.0.0.1".to_string())],
            GaleraClientOptions::new(3306, Tables::ListAppend),
        )
        .expect("factory");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let e = rt.block_on(f.client().open("n9")).unwrap_err();
        assert_eq!(e.message, "no galera server on node n9");
        assert!(GaleraClientFactory::new(
            Vec::new(),
            GaleraClientOptions::new(3306, Tables::ListAppend)
        )
        .is_err());
    }
}
