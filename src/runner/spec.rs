//! What defines a test: the test spec (what a test file holds and what the
//! `run` flags set) and the folders definition files are looked up in.

use crate::client::etcd::ReadMode;
use crate::client::postgres::Isolation;
use crate::client::redis::RedisReadMode;
use crate::client::zookeeper::ZkReadMode;
use crate::db;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Everything that defines a test: what a test file holds and what the
/// `run` flags set. Written to `test.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TestSpec {
    /// The test's name (the results folder); default `<db>-<workload>-<nemeses>`.
    pub name: String,
    /// The database: `etcd`, `postgres` (one server, on the first node), or
    /// `zookeeper`, `redis` (a master, replicas and Sentinels; docs/redis.md),
    /// a db file (`path.toml` or `file:PATH`, docs/file-db.md).
    pub db: String,
    /// A db file's client program command line, instead of the file's own
    /// `client` (a template with the file's variables).
    pub client: Option<String>,
    /// The workload: a name in the workloads folder, or a path to a file.
    pub workload: String,
    /// Nemesis names (files in the nemeses folder, or fault families).
    pub nemesis: Vec<String>,
    /// Seconds between nemesis operations (overrides the nemesis files).
    pub nemesis_interval: Option<f64>,
    /// Accept a run in which a requested fault never took effect (its
    /// verdict is otherwise unknown).
    pub allow_missing_faults: bool,
    /// Seconds of the main phase.
    pub time_limit: f64,
    /// Client workers.
    pub concurrency: usize,
    /// Operations per second over all workers (none: as fast as they go).
    pub rate: Option<f64>,
    /// The seed of every random choice; chosen and recorded when absent.
    pub seed: Option<u64>,
    /// etcd: `linearizable` or `serializable` reads; ZooKeeper: `plain`
    /// (the connected server's data) or `sync` (sync, then read); redis:
    /// `replica` (the client's own node) or `primary` (the master). Empty:
    /// the db's default.
    pub read_mode: String,
    /// Seconds one operation may take before it is recorded `info`.
    pub op_timeout: f64,
    /// Seconds to wait after healing before the final reads.
    pub recovery_time: f64,
    /// Leave the db running (and its data) after the test.
    pub leave_db_running: bool,
    /// An etcd binary to upload instead of the nodes' own.
    pub etcd_binary: Option<PathBuf>,
    /// Seconds the checkers may take (none: no limit).
    pub check_time_limit: Option<f64>,
    /// The consistency model the `txn` checker holds the history to.
    pub consistency_model: String,
    /// PostgreSQL: the isolation level of every transaction
    /// (`read-committed`, `repeatable-read`, `serializable`).
    pub isolation: String,
}

impl Default for TestSpec {
    fn default() -> Self {
        TestSpec {
            name: String::new(),
            db: "etcd".into(),
            client: None,
            workload: "register".into(),
            nemesis: vec!["partition".into()],
            nemesis_interval: None,
            allow_missing_faults: false,
            time_limit: 60.0,
            concurrency: 10,
            rate: Some(200.0),
            seed: None,
            read_mode: "linearizable".into(),
            op_timeout: 5.0,
            recovery_time: 5.0,
            leave_db_running: false,
            etcd_binary: None,
            check_time_limit: None,
            consistency_model: "strict-serializable".into(),
            isolation: "serializable".into(),
        }
    }
}

impl TestSpec {
    /// The name, derived when not given.
    pub fn test_name(&self) -> String {
        if !self.name.is_empty() {
            return self.name.clone();
        }
        let stem = Path::new(&self.workload)
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        let nem = if self.nemesis.is_empty() {
            "none".to_string()
        } else {
            self.nemesis.join("+")
        };
        // A db file is named by its stem, not its path.
        let db = match db::file::db_file_path(&self.db) {
            Some(p) => p
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_else(|| "file".into()),
            None => self.db.clone(),
        };
        format!("{db}-{stem}-{nem}")
    }

    /// Checks values that serde cannot (positive durations, known names).
    pub fn validate(&self) -> Result<(), String> {
        let positive = |name: &str, v: f64| {
            if v > 0.0 && v.is_finite() {
                Ok(())
            } else {
                Err(format!(
                    "{name} must be a positive number of seconds, got {v}"
                ))
            }
        };
        positive("time_limit", self.time_limit)?;
        positive("op_timeout", self.op_timeout)?;
        if self.recovery_time < 0.0 {
            return Err(format!(
                "recovery_time must not be negative, got {}",
                self.recovery_time
            ));
        }
        if let Some(i) = self.nemesis_interval {
            positive("nemesis_interval", i)?;
        }
        if let Some(r) = self.rate {
            if !(r > 0.0 && r.is_finite()) {
                return Err(format!(
                    "rate must be a positive number of operations per second, got {r}"
                ));
            }
        }
        if self.concurrency == 0 {
            return Err("concurrency must be at least 1".into());
        }
        if self.client.is_some() && db::file::db_file_path(&self.db).is_none() {
            return Err(format!(
                "client: a client program is for db files (--db FILE.toml), not {:?}",
                self.db
            ));
        }
        if !db::KNOWN.contains(&self.db.as_str()) && db::file::db_file_path(&self.db).is_none() {
            return Err(format!(
                "unknown db {:?} (known: {}, or a db file: FILE.toml or file:PATH)",
                self.db,
                db::KNOWN.join(", ")
            ));
        }
        if !crate::check::txn::models::is_model(&self.consistency_model) {
            return Err(format!(
                "unknown consistency_model {:?}; expected one of {}",
                self.consistency_model,
                crate::check::txn::models::MODEL_NAMES.join(", ")
            ));
        }
        self.isolation
            .parse::<Isolation>()
            .map_err(|e| format!("isolation: {e}"))?;
        if self.db == "zookeeper" {
            return self
                .read_mode
                .parse::<ZkReadMode>()
                .map(|_| ())
                .map_err(|e| format!("read_mode: {e}"));
        }
        if self.db == "redis" {
            return self
                .read_mode
                .parse::<RedisReadMode>()
                .map(|_| ())
                .map_err(|e| format!("read_mode: {e}"));
        }
        self.read_mode
            .parse::<ReadMode>()
            .map(|_| ())
            .map_err(|e| format!("read_mode: {e}"))
    }
}

/// Where the definition files are looked up.
#[derive(Clone, Debug)]
pub struct Dirs {
    /// The folder of workload files.
    pub workloads: PathBuf,
    /// The folder of nemesis files.
    pub nemeses: PathBuf,
    /// The results root.
    pub results: PathBuf,
}
