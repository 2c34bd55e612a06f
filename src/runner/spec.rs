//! What defines a test: the test spec (what a test file holds and what the
//! `run` flags set) and the folders definition files are looked up in.

use crate::system::{self, Choice, Configured};
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
    /// the db's default, which [`TestSpec::resolved`] writes out (so
    /// `test.json` names the reads that were made).
    pub read_mode: String,
    /// Seconds one operation may take before it is recorded `info`.
    pub op_timeout: f64,
    /// Seconds to wait after healing before the final reads.
    pub recovery_time: f64,
    /// Leave the db running (and its data) after the test.
    pub leave_db_running: bool,
    /// A server binary of the user's own build (etcd, redis-server,
    /// nats-server) to upload to every node and run instead of the Debian
    /// package's (`--db-binary`; `etcd_binary` is its older name).
    #[serde(alias = "etcd_binary")]
    pub db_binary: Option<PathBuf>,
    /// The binary the rolling upgrade (`--nemesis upgrade`) puts on each
    /// node in turn in place of `db_binary` (`--db-binary-next`).
    pub db_binary_next: Option<PathBuf>,
    /// Seconds the checkers may take (none: no limit).
    pub check_time_limit: Option<f64>,
    /// The consistency model the `txn` checker holds the history to.
    pub consistency_model: String,
    /// PostgreSQL: the isolation level of every transaction
    /// (`read-committed`, `repeatable-read`, `serializable`).
    pub isolation: String,
    /// Check the history as it is recorded (`runner/online.rs`); the
    /// verdict is still the final check's.
    pub online: bool,
    /// End the main phase at the first violation the online checker
    /// proves (then the final phase, heal and checks as at any end).
    pub stop_on_invalid: bool,
    /// Settings passed to the database, each `KEY=VALUE` (`--db-opt`):
    /// PostgreSQL a postgresql.conf setting, Redis a redis.conf directive,
    /// ZooKeeper a zoo.cfg line, etcd a `--KEY=VALUE` flag.
    pub db_opts: Vec<String>,
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
            read_mode: String::new(),
            op_timeout: 5.0,
            recovery_time: 5.0,
            leave_db_running: false,
            db_binary: None,
            db_binary_next: None,
            check_time_limit: None,
            consistency_model: "strict-serializable".into(),
            isolation: "serializable".into(),
            online: true,
            stop_on_invalid: false,
            db_opts: Vec::new(),
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
        let db = match system::find(&self.db) {
            Some(s) => s.label(&self.db),
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
        if self.stop_on_invalid && !self.online {
            return Err(
                "stop_on_invalid needs online checking: drop online = false (--no-online)".into(),
            );
        }
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
        if !crate::check::txn::models::is_model(&self.consistency_model) {
            return Err(format!(
                "unknown consistency_model {:?}; expected one of {}",
                self.consistency_model,
                crate::check::txn::models::MODEL_NAMES.join(", ")
            ));
        }
        self.configure().map(|_| ())
    }

    /// The fields the system under test reads.
    pub fn choice(&self) -> Choice<'_> {
        Choice {
            db: &self.db,
            read_mode: &self.read_mode,
            isolation: &self.isolation,
            client: self.client.as_deref(),
            binary: self.db_binary.as_deref(),
            db_opts: &self.db_opts,
        }
    }

    /// The system under test with its options parsed and checked (read
    /// mode, isolation, a db file and its client program).
    pub fn configure(&self) -> Result<Box<dyn Configured>, String> {
        let system = system::find(&self.db).ok_or_else(|| {
            format!(
                "unknown db {:?} (known: {}, or a db file: FILE.toml or file:PATH)",
                self.db,
                system::known()
            )
        })?;
        if self.client.is_some() && !system.takes_client_program() {
            return Err(format!(
                "client: a client program is for db files (--db FILE.toml), not {:?}",
                self.db
            ));
        }
        system::check_binary(system, self.db_binary.as_deref(), "db_binary (--db-binary)")?;
        system::check_binary(
            system,
            self.db_binary_next.as_deref(),
            "db_binary_next (--db-binary-next)",
        )?;
        if self.db_binary_next.is_some() && self.db_binary.is_none() {
            return Err(
                "db_binary_next (--db-binary-next) needs db_binary (--db-binary): the binary \
                 the nodes start on, which the rolling upgrade replaces"
                    .into(),
            );
        }
        system.configure(&self.choice())
    }

    /// This spec checked, with the system's default read mode written out.
    pub fn resolved(mut self) -> Result<TestSpec, String> {
        self.validate()?;
        self.read_mode = self.configure()?.read_mode().to_string();
        Ok(self)
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

#[cfg(test)]
mod tests {
    //! The spec's use of the system registry: typed options parsed at
    //! validation, the default read mode written out, and the set checker
    //! told what the system's reads guarantee.

    use super::*;
    use crate::check::registry::{check_all, CheckContext};
    use crate::check::Validity;
    use crate::history::{History, Op, OpType, Process};
    use crate::system::Reads;
    use serde_json::{json, Value};

    fn spec(db: &str, read_mode: &str) -> TestSpec {
        TestSpec {
            db: db.into(),
            read_mode: read_mode.into(),
            ..TestSpec::default()
        }
    }

    #[test]
    fn an_unknown_db_is_refused_naming_the_known_ones() {
        assert_eq!(
            spec("mongodb", "").validate().unwrap_err(),
            "unknown db \"mongodb\" (known: etcd, postgres, zookeeper, redis, nats, galera, rabbitmq, memory, \
             or a db file: FILE.toml or file:PATH)"
        );
    }

    #[test]
    fn a_db_binary_is_refused_for_a_system_that_takes_none_or_a_file_that_is_not_there() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("server");
        std::fs::write(&bin, b"#!/bin/sh\n").unwrap();
        let with = |db: &str, first: Option<&Path>, next: Option<&Path>| TestSpec {
            db_binary: first.map(Path::to_path_buf),
            db_binary_next: next.map(Path::to_path_buf),
            ..spec(db, "")
        };
        for db in ["etcd", "redis", "nats"] {
            assert_eq!(with(db, Some(&bin), None).validate(), Ok(()), "{db}");
            assert_eq!(with(db, Some(&bin), Some(&bin)).validate(), Ok(()), "{db}");
        }
        for db in ["postgres", "zookeeper", "galera", "rabbitmq", "memory"] {
            let e = with(db, Some(&bin), None).validate().unwrap_err();
            assert!(
                e.starts_with(&format!(
                    "db_binary (--db-binary): refused for {db}: {db} runs"
                )) && e.contains("etcd, redis, nats"),
                "{e}"
            );
        }
        let missing = dir.path().join("missing");
        let e = with("etcd", Some(&missing), None).validate().unwrap_err();
        assert!(
            e.starts_with("db_binary (--db-binary): cannot read") && e.contains("missing"),
            "{e}"
        );
        let e = with("etcd", None, Some(&bin)).validate().unwrap_err();
        assert!(e.contains("needs db_binary (--db-binary)"), "{e}");
        // The older name of the field still reads.
        let spec: TestSpec =
            toml::from_str(&format!("etcd_binary = {:?}", bin.display().to_string())).unwrap();
        assert_eq!(spec.db_binary.as_deref(), Some(bin.as_path()));
    }

    #[test]
    fn db_opts_are_checked_before_anything_is_built_and_kept_in_test_json() {
        let with = |db: &str, opts: &[&str]| TestSpec {
            db_opts: opts.iter().map(|o| o.to_string()).collect(),
            ..spec(db, "")
        };
        for db in ["postgres", "redis", "zookeeper", "etcd"] {
            let s = with(db, &["a_b=1", "c=x y"]);
            assert_eq!(s.validate(), Ok(()), "{db}");
            let json = serde_json::to_value(&s).unwrap();
            assert_eq!(json["db_opts"], json!(["a_b=1", "c=x y"]), "{db}");
        }
        let e = with("postgres", &["synchronous_commit"])
            .validate()
            .unwrap_err();
        assert!(
            e.starts_with("db_opts: no `=`") && e.contains("KEY=VALUE"),
            "{e}"
        );
        let e = with("etcd", &["=off"]).validate().unwrap_err();
        assert!(e.contains("no KEY"), "{e}");
        let e = with("postgres", &["synchronous-commit=off"])
            .validate()
            .unwrap_err();
        assert!(e.contains("`_`, not `-`"), "{e}");
        // What faultline sets itself is refused at the same check.
        let e = with("etcd", &["data-dir=/tmp/x"]).validate().unwrap_err();
        assert!(
            e.starts_with("db_opts: data-dir=/tmp/x would override data-dir"),
            "{e}"
        );
        let e = with("nats", &["a=b"]).validate().unwrap_err();
        assert!(
            e.starts_with("db_opts: nats takes no database options"),
            "{e}"
        );
        let e = with("memory", &["a=b"]).validate().unwrap_err();
        assert!(
            e.starts_with("db_opts: memory takes no database options") && e.contains("postgres"),
            "{e}"
        );
        // A test file's list parses, unknown fields still refused.
        let t: TestSpec =
            toml::from_str("db = \"postgres\"\ndb_opts = [\"synchronous_commit=off\"]\n").unwrap();
        assert_eq!(t.db_opts, vec!["synchronous_commit=off"]);
        assert_eq!(
            crate::system::postgres::db::settings_conf(&[crate::system::DbOpt {
                key: "application_name".into(),
                value: "it's".into(),
            }]),
            "application_name = 'it''s'\n"
        );
    }

    #[test]
    fn read_modes_are_parsed_once_per_system_and_the_default_written_out() {
        let resolved = |db: &str, mode: &str| spec(db, mode).resolved().map(|s| s.read_mode);
        assert_eq!(resolved("etcd", "").as_deref(), Ok("linearizable"));
        assert_eq!(
            resolved("etcd", "serializable").as_deref(),
            Ok("serializable")
        );
        assert_eq!(resolved("zookeeper", "").as_deref(), Ok("plain"));
        assert_eq!(resolved("zookeeper", "sync").as_deref(), Ok("sync"));
        assert_eq!(resolved("redis", "").as_deref(), Ok("replica"));
        assert_eq!(resolved("redis", "primary").as_deref(), Ok("primary"));
        assert_eq!(resolved("postgres", "").as_deref(), Ok("linearizable"));
        assert_eq!(resolved("memory", "").as_deref(), Ok("linearizable"));

        // Each system refuses the others' modes, naming the field.
        let e = resolved("etcd", "primary").unwrap_err();
        assert!(
            e.starts_with("read_mode: ") && e.contains("linearizable"),
            "{e}"
        );
        let e = resolved("zookeeper", "linearizable").unwrap_err();
        assert!(e.starts_with("read_mode: ") && e.contains("sync"), "{e}");
        let e = resolved("redis", "serializable").unwrap_err();
        assert!(e.starts_with("read_mode: ") && e.contains("replica"), "{e}");
        // Redis has no linearizable reads: asking for them is refused, not
        // quietly taken for replica reads.
        let e = resolved("redis", "linearizable").unwrap_err();
        assert!(e.starts_with("read_mode: ") && e.contains("primary"), "{e}");
        let e = resolved("postgres", "serializable").unwrap_err();
        assert!(
            e.starts_with("read_mode: unknown read mode \"serializable\" for postgres")
                && e.contains("linearizable (one server, the default)"),
            "{e}"
        );
        assert_eq!(resolved("postgres", "replica").as_deref(), Ok("replica"));

        // Isolation is PostgreSQL's, typed there.
        let mut pg = spec("postgres", "");
        pg.isolation = "repeatable-read".into();
        assert_eq!(pg.validate(), Ok(()));
        pg.isolation = "snapshot".into();
        assert!(pg.validate().unwrap_err().starts_with("isolation: "));

        // A client program is for db files only.
        let mut etcd = spec("etcd", "");
        etcd.client = Some("./client".into());
        assert_eq!(
            etcd.validate().unwrap_err(),
            "client: a client program is for db files (--db FILE.toml), not \"etcd\""
        );
    }

    fn op(p: u64, kind: OpType, f: &str, v: Value) -> Op {
        Op::new(0, Process::Client(p), kind, f, v)
    }

    /// A set history with a read that misses an acknowledged add and a final
    /// read that has it: a stale read.
    fn stale_set_history() -> History {
        History::new(vec![
            op(0, OpType::Invoke, "add", json!(1)),
            op(0, OpType::Ok, "add", json!(1)),
            op(1, OpType::Invoke, "read", Value::Null),
            op(1, OpType::Ok, "read", json!([])),
            // An add after it makes the first read no final read.
            op(2, OpType::Invoke, "add", json!(2)),
            op(2, OpType::Ok, "add", json!(2)),
            op(3, OpType::Invoke, "read", Value::Null),
            op(3, OpType::Ok, "read", json!([1, 2])),
        ])
    }

    fn set_verdict(reads: Reads) -> (Validity, String) {
        let ctx = CheckContext {
            linearizable_reads: reads.linearizable(),
            ..CheckContext::new(Some("set".to_string()), 1 << 30)
        };
        let (v, results, _) = check_all(&stale_set_history(), &["set".to_string()], &ctx);
        let why = results["checkers"]["set"]["explanation"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        (v, why)
    }

    #[test]
    fn redis_default_reads_mean_replica_reads_to_the_client_and_the_set_checker() {
        // `--db redis` with no read mode: the client reads from its own node
        // (a replica), and the set checker is told so, so a stale read of a
        // replica is no error.
        let configured = spec("redis", "").configure().expect("redis");
        assert_eq!(configured.read_mode(), "replica");
        assert_eq!(configured.reads(), Reads::MaybeStale);
        let (v, why) = set_verdict(configured.reads());
        assert_eq!(v, Validity::Valid, "{why}");
        assert!(why.contains("1 stale"), "{why}");
        // A stored run's test.json gives the same answer.
        assert_eq!(
            crate::system::recorded_reads("redis", "replica"),
            Reads::MaybeStale
        );

        // etcd's default reads are linearizable: the same history is invalid.
        let etcd = spec("etcd", "").configure().expect("etcd");
        assert_eq!(etcd.reads(), Reads::Linearizable);
        let (v, why) = set_verdict(etcd.reads());
        assert_eq!(v, Validity::Invalid);
        assert_eq!(
            why,
            "1 acknowledged element was missing from a read that began after the \
             acknowledgement (e.g. 1)"
        );
        assert_eq!(
            crate::system::recorded_reads("etcd", "serializable"),
            Reads::MaybeStale
        );
        // A run the registry cannot configure is taken at its word.
        assert_eq!(
            crate::system::recorded_reads("gone.toml", "linearizable"),
            Reads::Linearizable
        );
    }
}
