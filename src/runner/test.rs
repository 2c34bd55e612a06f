//! The lifecycle of one test, Jepsen's order: db set-up on every node →
//! clients → nemesis set-up → workers and nemesis under the generator →
//! final phase (stop every fault, heal, let the cluster recover, final
//! reads) → node logs → db teardown → checkers → results.
//!
//! Whatever happens after the db is set up — an error, Ctrl-C, a crashed
//! worker — every fault is healed, the logs are collected and the db torn
//! down (unless asked to leave it running); the history is on disk as it
//! was recorded.

use super::{run_workers, Recorder, RunError, Stop, WorkerConfig};
use crate::check::linear::{self, Options};
use crate::check::set::{self, SetOptions};
use crate::check::Validity;
use crate::client::etcd::{DataKind, EtcdClientFactory, EtcdClientOptions, ReadMode};
use crate::client::external::{ExternalClientFactory, NodeCommand};
use crate::client::postgres::{Isolation, PostgresClientFactory, PostgresClientOptions};
use crate::client::redis::{RedisClientFactory, RedisClientOptions, RedisReadMode};
use crate::client::zookeeper::{ZkClientFactory, ZkClientOptions, ZkDataKind, ZkReadMode};
use crate::cluster::Cluster;
use crate::db::file::{FileDb, FileDbSpec, Template};
use crate::db::{self, Db, Etcd, EtcdOptions, Postgres, PostgresOptions};
use crate::db::{Redis, RedisOptions};
use crate::db::{Zookeeper, ZookeeperOptions};
use crate::generator::{
    self, any, on_clients, on_nemesis, phases, rate, time_limit, Generator, Next, OpSpec, Target,
};
use crate::history::{History, Op, OpType, Process};
use crate::model::{self, Model, ModelVisitor};
use crate::nemesis::{self, config, schedule::Schedule, Fault, Nemeses, Nemesis, NemesisClient};
use crate::store::RunDir;
use crate::workload::Workload;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// What a test ended with.
#[derive(Debug)]
pub struct Outcome {
    /// The verdict over every checker.
    pub validity: Validity,
    /// The run's folder.
    pub dir: PathBuf,
    /// A line per checker, for the terminal.
    pub summary: Vec<String>,
    /// True when the run was cut short (Ctrl-C, SIGTERM).
    pub interrupted: bool,
}

/// Runs one test on `cluster`, writing everything under `dirs.results`.
pub async fn run_test(
    spec: TestSpec,
    cluster: Cluster,
    dirs: &Dirs,
    stop: Stop,
    show_progress: bool,
) -> anyhow::Result<Outcome> {
    use anyhow::Context as _;
    spec.validate().map_err(|e| anyhow::anyhow!(e))?;
    let seed = spec.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    });
    let workload = find_workload(&spec.workload, &dirs.workloads)?;
    let defs = config::load_named(Some(&dirs.nemeses), &spec.nemesis)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let run_dir = RunDir::create(
        &dirs.results,
        &spec.test_name(),
        std::time::SystemTime::now(),
    )?;
    super::attach_log_file(&run_dir.log());
    tracing::info!(dir = %run_dir.path.as_path().display(), seed, "test starting");
    let mut test_json = serde_json::to_value(&spec)?;
    test_json["seed"] = json!(seed);
    test_json["name"] = json!(spec.test_name());
    test_json["faultline_version"] = json!(env!("CARGO_PKG_VERSION"));
    test_json["nodes"] = json!(cluster
        .nodes()
        .iter()
        .map(|n| json!({"name": n.name(), "host": n.host()}))
        .collect::<Vec<_>>());
    test_json["cluster"] = json!(match cluster.kind() {
        crate::cluster::ClusterKind::Local { .. } => "local",
        _ => "hosts",
    });
    test_json["model"] = json!(workload.model);
    test_json["checkers"] = json!(workload.checkers);
    if let Some(b) = &workload.bank {
        // `faultline analyze` holds reads to the same total.
        test_json["bank"] = json!({"total": b.total, "negative_balances": b.negative_balances});
    }
    run_dir.write_test(&test_json)?;

    // The db.
    let target = System::new(&spec, &cluster, &workload)?;
    let db = target.db();
    let healthy_within = match &target {
        System::File(f, _) => f.spec().health_timeout,
        _ => Duration::from_secs(60),
    };
    eprintln!(
        "setting up {} on {} nodes...",
        db.name(),
        cluster.nodes().len()
    );
    {
        let (db, cluster) = (db.clone(), cluster.clone());
        let leave = spec.leave_db_running;
        tokio::task::spawn_blocking(move || {
            let set_up = db::setup(db.as_ref(), &cluster, healthy_within);
            // A half set-up db is torn down, so the next run starts clean.
            if set_up.is_err() && !leave {
                if let Err(e) = db::teardown(db.as_ref(), &cluster) {
                    tracing::warn!("teardown after a failed set-up: {e}");
                }
            }
            set_up
        })
        .await
        .context("db set-up task")??;
    }
    if let Ok(v) = version_of(&cluster, &target) {
        test_json["db_version"] = json!(v);
        run_dir.write_test(&test_json)?;
    }

    // Everything from here on ends in the cleanup below, whatever happens.
    let nemeses = Arc::new(Nemeses::new(
        cluster.clone(),
        Some(db.clone()),
        nemesis::NemesisOptions {
            seed,
            // Real hosts have no state dir: keep the record in the run's folder.
            record: nemesis::default_record_path(&cluster)
                .or_else(|| Some(run_dir.path.join("nemesis.json"))),
            helper: None,
        },
    ));
    let started = Instant::now();
    let ran = run_phase(
        &spec,
        seed,
        &workload,
        &defs,
        &cluster,
        &target,
        nemeses.clone(),
        &run_dir,
        stop.clone(),
        show_progress,
        started,
    )
    .await;
    let interrupted = stop.is_stopped() && ran.as_ref().map(|h| !h.1).unwrap_or(true);

    // Cleanup: heal, logs, teardown.
    let heal = {
        let n = nemeses.clone();
        tokio::task::spawn_blocking(move || nemesis::heal_all(n.as_ref())).await
    };
    // The generator's final phase healed already when the run ended
    // normally; otherwise this heal belongs in the history.
    let record_heal = interrupted || ran.is_err();
    match &heal {
        Ok((ops, Ok(_))) => {
            if record_heal {
                append_ops(&run_dir.history(), ops, started);
            }
        }
        Ok((ops, Err(e))) => {
            append_ops(&run_dir.history(), ops, started);
            tracing::error!("healing failed: {e}");
            eprintln!("warning: healing failed: {e}; run `faultline heal` to retry");
        }
        Err(e) => tracing::error!("heal task: {e}"),
    }
    {
        let (db, cluster, dest) = (
            db.clone(),
            cluster.clone(),
            run_dir.path.as_path().join("nodes"),
        );
        match tokio::task::spawn_blocking(move || db::collect_logs(db.as_ref(), &cluster, &dest))
            .await
        {
            Ok(Ok(files)) => tracing::info!("collected {} log files", files.len()),
            Ok(Err(e)) => tracing::warn!("collecting logs: {e}"),
            Err(e) => tracing::warn!("collecting logs: {e}"),
        }
    }
    if !spec.leave_db_running {
        let (db, cluster) = (db.clone(), cluster.clone());
        match tokio::task::spawn_blocking(move || db::teardown(db.as_ref(), &cluster)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("warning: db teardown: {e}"),
            Err(e) => eprintln!("warning: db teardown: {e}"),
        }
    }

    let (history, _) = ran?;
    let history = read_back(&run_dir.history()).unwrap_or(history);
    let check_limit = spec.check_time_limit.map(Duration::from_secs_f64);
    let (validity, results, summary) = check_history(
        &history,
        &workload.model,
        &workload.checkers,
        &CheckSettings {
            read_mode: &spec.read_mode,
            consistency_model: &spec.consistency_model,
            time_limit: check_limit,
            classic: workload.classic_options(),
        },
    );
    let mut results = results;
    results["interrupted"] = json!(interrupted);
    run_dir.write_results(&results)?;
    Ok(Outcome {
        validity,
        dir: run_dir.path.as_path().to_path_buf(),
        summary,
        interrupted,
    })
}

/// The workers and the nemesis under the generator; returns the history and
/// whether the main phase ran to its end.
#[allow(clippy::too_many_arguments)]
async fn run_phase(
    spec: &TestSpec,
    seed: u64,
    workload: &Workload,
    defs: &[config::NemesisDef],
    cluster: &Cluster,
    target: &System,
    nemeses: Arc<Nemeses>,
    run_dir: &RunDir,
    stop: Stop,
    show_progress: bool,
    start: Instant,
) -> anyhow::Result<(History, bool)> {
    {
        let n = nemeses.clone();
        tokio::task::spawn_blocking(move || n.setup()).await??;
    }
    let factory = target.client_factory(spec, workload, cluster)?;
    let gen = build_generator(spec, seed, workload, defs);
    let recorder = Recorder::create(&run_dir.history(), start)?;
    let progress = recorder.progress();
    let mut cfg = WorkerConfig::new(
        spec.concurrency,
        cluster
            .nodes()
            .iter()
            .map(|n| n.name().to_string())
            .collect(),
    );
    cfg.op_timeout = Duration::from_secs_f64(spec.op_timeout);
    let nemesis_client: Box<dyn crate::client::Client> =
        Box::new(NemesisClient::new(nemeses.clone() as Arc<dyn Nemesis>));
    let ticker = show_progress.then(|| {
        let progress = progress.clone();
        let record = nemeses.record_path().map(Path::to_path_buf);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let faults = record
                    .as_ref()
                    .map(|p| active_faults(p))
                    .unwrap_or_default();
                eprint!(
                    "\r\x1b[2K{:>6.1}s  {}  faults: {}",
                    start.elapsed().as_secs_f64(),
                    progress.counts().line(),
                    faults
                );
                let _ = std::io::stderr().flush();
            }
        })
    });
    eprintln!(
        "running {} for {} s: {} workers, {}, nemesis {} (seed {seed}); history in {}",
        workload.name,
        spec.time_limit,
        spec.concurrency,
        spec.rate
            .map(|r| format!("{r} ops/s"))
            .unwrap_or_else(|| "no rate limit".into()),
        if spec.nemesis.is_empty() {
            "none".to_string()
        } else {
            spec.nemesis.join(",")
        },
        run_dir.history().display()
    );
    let result = run_workers(
        gen,
        factory,
        Some(nemesis_client),
        &cfg,
        recorder,
        stop.clone(),
    )
    .await;
    if let Some(t) = ticker {
        t.abort();
        eprintln!();
    }
    let completed = !stop.is_stopped();
    match result {
        Ok(h) => Ok((h, completed)),
        Err(RunError::Io(e)) => Err(anyhow::anyhow!("writing the history: {e}")),
        Err(e) => Err(anyhow::anyhow!("{e}")),
    }
}

/// main (rate, time limit) ∥ nemesis schedule → stop every fault → wait
/// for recovery → final reads.
fn build_generator(
    spec: &TestSpec,
    seed: u64,
    workload: &Workload,
    defs: &[config::NemesisDef],
) -> Box<dyn Generator> {
    let mut main = workload.main_generator(seed);
    if let Some(r) = spec.rate {
        main = Box::new(rate(r, generator::rng(seed, 0x7261_7465), main));
    }
    let interval = spec.nemesis_interval.map(Duration::from_secs_f64);
    let schedule = Schedule::new(defs.to_vec(), interval, seed ^ 0x6E65_6D65);
    let mut stops: Vec<Box<dyn Generator>> = schedule
        .final_ops()
        .into_iter()
        .map(|op| Box::new(generator::once(generator::repeat(op))) as Box<dyn Generator>)
        .collect();
    let heal = OpSpec::new(Fault::HealAll.f(), Fault::HealAll.value()).with_target(Target::Nemesis);
    stops.push(Box::new(generator::once(generator::repeat(heal))));
    let limit_ns = (spec.time_limit * 1e9) as u64;
    let body = time_limit(
        limit_ns,
        any(vec![
            Box::new(on_clients(main)),
            Box::new(on_nemesis(schedule)),
        ]),
    );
    let mut parts: Vec<Box<dyn Generator>> =
        vec![Box::new(body), Box::new(on_nemesis(generator::seq(stops)))];
    parts.push(Box::new(sleep(Duration::from_secs_f64(spec.recovery_time))));
    if let Some(f) = workload.final_generator() {
        parts.push(f);
    }
    Box::new(phases(parts))
}

/// A generator that waits `d` from when it is first asked, then is done.
fn sleep(d: Duration) -> impl Generator {
    let mut until: Option<u64> = None;
    generator::from_fn(move |ctx| {
        let end = *until.get_or_insert(ctx.time + d.as_nanos() as u64);
        if ctx.time >= end {
            Next::Done
        } else {
            Next::Pending(Some(end))
        }
    })
}

fn find_workload(name: &str, dir: &Path) -> anyhow::Result<Workload> {
    let p = Path::new(name);
    let w = if p.extension().is_some_and(|e| e == "toml") || p.components().count() > 1 {
        Workload::load(p)
    } else {
        Workload::find(name, dir)
    };
    w.map_err(|e| anyhow::anyhow!("{e}"))
}

fn version_of(cluster: &Cluster, target: &System) -> anyhow::Result<String> {
    let n = cluster
        .nodes()
        .first()
        .ok_or_else(|| anyhow::anyhow!("no nodes"))?;
    let cmd = match target {
        System::Etcd(_) => "etcd --version 2>/dev/null | head -1 || true",
        System::File(f, _) => {
            return f
                .version(n)
                .ok_or_else(|| anyhow::anyhow!("no version command"))
        }
        System::Zookeeper(_) => "dpkg-query -W -f '${Version}' zookeeper 2>/dev/null || true",
        System::Postgres(..) => {
            "$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)/postgres --version 2>/dev/null || true"
        }
        System::Redis(_) => "redis-server --version 2>/dev/null || true",
    };
    let out = n.run(cmd)?;
    Ok(out.trim().to_string())
}

/// Checks a test before any cluster is built: its fields, its workload
/// file, and that the db's clients can run the workload.
pub fn preflight(spec: &TestSpec, dirs: &Dirs) -> anyhow::Result<()> {
    spec.validate().map_err(|e| anyhow::anyhow!(e))?;
    let workload = find_workload(&spec.workload, &dirs.workloads)?;
    check_db_workload(&spec.db, &workload)?;
    if db::file::db_file_path(&spec.db).is_some() {
        file_db(spec)?;
    }
    Ok(())
}

/// The db file `spec.db` names, loaded and checked, with its client
/// command line (`spec.client` or the file's `client`).
fn file_db(spec: &TestSpec) -> anyhow::Result<(Arc<FileDbSpec>, Template)> {
    let path = db::file::db_file_path(&spec.db)
        .ok_or_else(|| anyhow::anyhow!("{:?} is not a db file", spec.db))?;
    let file = FileDbSpec::load(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let client = match &spec.client {
        Some(c) => file.client_template(c).map_err(|e| anyhow::anyhow!(e))?,
        None => file.client.clone().ok_or_else(|| {
            anyhow::anyhow!(
                "{}: no client program: add `client = \"program args {{node}} {{ip}}\"` \
                 to the file, or pass --client (docs/file-db.md)",
                path.display()
            )
        })?,
    };
    Ok((Arc::new(file), client))
}

/// Refuses a workload the db's clients cannot run. etcd's client runs
/// them all: registers, sets, and transactions (`client/etcd/txn.rs`).
fn check_db_workload(db: &str, workload: &Workload) -> anyhow::Result<()> {
    // The models each built-in db's client runs; a db file's external
    // client is given every workload (it answers `fail` to what it cannot do).
    let runs: &[&str] = match db {
        "etcd" => &[
            "cas-register",
            "set",
            "list-append",
            "rw-register",
            "counter",
            "unique-ids",
        ],
        "postgres" => &["list-append", "rw-register", "long-fork"],
        "zookeeper" | "redis" => &["cas-register", "set"],
        _ => return Ok(()),
    };
    if runs.contains(&workload.model.as_str()) {
        Ok(())
    } else {
        anyhow::bail!(
            "the {db} client does not run the {} workload (model {}); it runs: {}",
            workload.name,
            workload.model,
            runs.join(", ")
        )
    }
}

/// The database under test and how its clients are made.
enum System {
    Etcd(Arc<Etcd>),
    Postgres(Arc<Postgres>, Isolation),
    /// A db file, and its client program's command line.
    File(Arc<FileDb>, Template),
    Zookeeper(Arc<Zookeeper>),
    Redis(Arc<Redis>),
}

impl System {
    /// The db `spec.db` names, refusing workloads its clients cannot run.
    fn new(spec: &TestSpec, cluster: &Cluster, workload: &Workload) -> anyhow::Result<System> {
        check_db_workload(&spec.db, workload)?;
        match spec.db.as_str() {
            "etcd" => Ok(System::Etcd(Arc::new(Etcd::new(
                EtcdOptions {
                    binary: spec.etcd_binary.clone(),
                    ..EtcdOptions::default()
                },
                cluster.nodes(),
            )))),
            "postgres" => {
                let isolation = spec.isolation.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
                Ok(System::Postgres(
                    Arc::new(Postgres::new(PostgresOptions::default(), cluster.nodes())),
                    isolation,
                ))
            }
            other if db::file::db_file_path(other).is_some() => {
                let (file, client) = file_db(spec)?;
                let db = FileDb::new(file, cluster.nodes())?;
                Ok(System::File(Arc::new(db), client))
            }
            "zookeeper" => Ok(System::Zookeeper(Arc::new(Zookeeper::new(
                ZookeeperOptions::default(),
                cluster.nodes(),
            )))),
            "redis" => Ok(System::Redis(Arc::new(Redis::new(
                RedisOptions::default(),
                cluster.nodes(),
            )))),
            other => anyhow::bail!("unknown db {other:?} (known: {})", db::KNOWN.join(", ")),
        }
    }

    fn db(&self) -> Arc<dyn Db> {
        match self {
            System::Etcd(e) => e.clone(),
            System::Postgres(p, _) => p.clone(),
            System::File(f, _) => f.clone(),
            System::Zookeeper(z) => z.clone(),
            System::Redis(r) => r.clone(),
        }
    }

    fn client_factory(
        &self,
        spec: &TestSpec,
        workload: &Workload,
        cluster: &Cluster,
    ) -> anyhow::Result<crate::client::ClientFactory> {
        match self {
            System::Etcd(etcd) => {
                let read_mode: ReadMode =
                    spec.read_mode.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
                let opts = EtcdClientOptions {
                    read_mode,
                    timeout: Duration::from_secs_f64(spec.op_timeout),
                    workload: workload.name.clone(),
                    kind: DataKind::for_model(&workload.model),
                    ..EtcdClientOptions::default()
                };
                Ok(EtcdClientFactory::for_etcd(etcd, cluster.nodes(), opts)?.into_factory())
            }
            System::Postgres(pg, isolation) => {
                let host = pg
                    .host()
                    .ok_or_else(|| anyhow::anyhow!("postgres needs a node"))?;
                let mut opts = PostgresClientOptions::new(host, pg.port());
                opts.isolation = *isolation;
                opts.list_append = workload.model == "list-append";
                Ok(PostgresClientFactory::new(opts).into_factory())
            }
            System::File(f, client) => {
                let mut commands = std::collections::HashMap::new();
                for n in cluster.nodes() {
                    let vars = f
                        .vars(n.name())
                        .ok_or_else(|| anyhow::anyhow!("no variables for node {}", n.name()))?;
                    let command = client.expand(vars).map_err(|e| anyhow::anyhow!(e))?;
                    commands.insert(
                        n.name().to_string(),
                        NodeCommand {
                            ip: n.host().to_string(),
                            command,
                        },
                    );
                }
                Ok(ExternalClientFactory::new(commands).into_factory())
            }
            System::Zookeeper(zk) => {
                let opts = ZkClientOptions {
                    read_mode: spec.read_mode.parse().map_err(|e| anyhow::anyhow!("{e}"))?,
                    timeout: Duration::from_secs_f64(spec.op_timeout),
                    workload: workload.name.clone(),
                    kind: ZkDataKind::for_model(&workload.model),
                    ..ZkClientOptions::default()
                };
                Ok(
                    ZkClientFactory::for_nodes(cluster.nodes(), zk.client_port(), opts)?
                        .into_factory(),
                )
            }
            System::Redis(r) => {
                let read_mode: RedisReadMode =
                    spec.read_mode.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
                let opts = RedisClientOptions {
                    read_mode,
                    timeout: Duration::from_secs_f64(spec.op_timeout),
                    workload: workload.name.clone(),
                    kind: DataKind::for_model(&workload.model),
                    ..RedisClientOptions::default()
                };
                Ok(RedisClientFactory::for_redis(r, cluster.nodes(), opts)?.into_factory())
            }
        }
    }
}

/// The active faults, from the nemesis record, in a few words.
fn active_faults(record: &Path) -> String {
    let Ok(text) = std::fs::read_to_string(record) else {
        return "none".into();
    };
    let Ok(v) = serde_json::from_str::<Value>(&text) else {
        return "?".into();
    };
    let mut names = Vec::new();
    if let Some(o) = v.as_object() {
        for (k, val) in o {
            let empty = val.is_null()
                || val.as_array().is_some_and(|a| a.is_empty())
                || val.as_object().is_some_and(|a| a.is_empty());
            if !empty {
                names.push(k.clone());
            }
        }
    }
    if names.is_empty() {
        "none".into()
    } else {
        names.join(",")
    }
}

/// Appends nemesis ops recorded after the workers stopped (the final heal)
/// to the history file, continuing its numbering.
fn append_ops(path: &Path, ops: &[Op], start: Instant) {
    let n = std::fs::read_to_string(path)
        .map(|t| t.lines().filter(|l| !l.trim().is_empty()).count())
        .unwrap_or(0);
    let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(path) else {
        return;
    };
    for (i, op) in ops.iter().enumerate() {
        let mut op = op.clone();
        op.index = (n + i) as u64;
        op.time = Some(start.elapsed().as_nanos() as u64);
        if let Ok(line) = serde_json::to_string(&op) {
            let _ = writeln!(f, "{line}");
        }
    }
    let _ = f.sync_all();
}

fn read_back(path: &Path) -> Option<History> {
    crate::history::read_path(path, Some(crate::history::Format::Jsonl)).ok()
}

struct Lin<'a> {
    history: &'a History,
    opts: &'a Options,
}
impl ModelVisitor<Result<linear::Report, linear::CheckError>> for Lin<'_> {
    fn visit<M: Model>(self, m: &M) -> Result<linear::Report, linear::CheckError> {
        linear::check(m, self.history, self.opts)
    }
}

/// What the checkers need beside the history, the model and their names.
#[derive(Clone, Copy, Debug)]
pub struct CheckSettings<'a> {
    /// `linearizable` or `serializable` reads (the set checker).
    pub read_mode: &'a str,
    /// The consistency model of the `txn` checker.
    pub consistency_model: &'a str,
    /// How long a checker may take.
    pub time_limit: Option<Duration>,
    /// Options of the classic checkers (bank, queue, ...).
    pub classic: crate::check::classic::ClassicOptions,
}

/// Runs the workload's checkers over a history: the verdict, the
/// `results.json` value, and a line per checker.
pub fn check_history(
    history: &History,
    model_name: &str,
    checkers: &[String],
    settings: &CheckSettings<'_>,
) -> (Validity, Value, Vec<String>) {
    let (read_mode, time_limit) = (settings.read_mode, settings.time_limit);
    let mut validity = Validity::Valid;
    let mut results = serde_json::Map::new();
    let mut summary = Vec::new();
    for name in checkers {
        let (v, details, line) = match name.as_str() {
            "linearizable" => {
                let opts = Options {
                    time_limit,
                    ..Options::default()
                };
                match model::by_name(
                    model_name,
                    Lin {
                        history,
                        opts: &opts,
                    },
                ) {
                    None => (
                        Validity::Unknown,
                        json!({"error": format!("unknown model {model_name}")}),
                        format!("unknown model {model_name}"),
                    ),
                    Some(Err(e)) => (
                        Validity::Unknown,
                        json!({"error": e.to_string()}),
                        format!("cannot check: {e}"),
                    ),
                    Some(Ok(r)) => {
                        let bad: Vec<_> = r.failures().collect();
                        let mut line = format!(
                            "{} ops, {} keys, {} not valid",
                            r.ops,
                            r.keys.len(),
                            bad.len()
                        );
                        if let Some(cx) = bad.iter().find_map(|k| k.counterexample.as_ref()) {
                            line.push_str(&format!(": {}", cx.explanation));
                        } else if let Some(reason) = bad.iter().find_map(|k| k.reason.as_ref()) {
                            line.push_str(&format!(": {reason}"));
                        }
                        let failures: Vec<_> = bad.into_iter().cloned().collect();
                        (
                            r.validity,
                            json!({"valid": r.validity, "model": r.model, "ops": r.ops, "keys": r.keys.len(), "elapsed_ms": r.elapsed.as_secs_f64() * 1e3, "failures": failures}),
                            line,
                        )
                    }
                }
            }
            "set" => match set::check(
                history,
                &SetOptions {
                    linearizable: read_mode == "linearizable",
                },
            ) {
                Ok(r) => {
                    let line = r.explanation.clone();
                    (
                        r.validity,
                        serde_json::to_value(&r).unwrap_or(Value::Null),
                        line,
                    )
                }
                Err(e) => (
                    Validity::Unknown,
                    json!({"error": e.to_string()}),
                    format!("cannot check: {e}"),
                ),
            },
            "txn" => check_txn(history, model_name, settings),
            classic if crate::check::classic::NAMES.contains(&classic) => {
                match crate::check::classic::check(classic, history, &settings.classic) {
                    Some(Ok(v)) => (v.validity, v.report, v.explanation),
                    Some(Err(e)) => (
                        Validity::Unknown,
                        json!({"error": e.to_string()}),
                        format!("cannot check: {e}"),
                    ),
                    None => (
                        Validity::Unknown,
                        json!({"error": format!("unknown checker {classic}")}),
                        format!("unknown checker {classic}"),
                    ),
                }
            }
            "stats" => {
                let s = stats(history);
                let line = format!(
                    "{} ok, {} fail, {} info",
                    s["ok"].as_u64().unwrap_or(0),
                    s["fail"].as_u64().unwrap_or(0),
                    s["info"].as_u64().unwrap_or(0)
                );
                (Validity::Valid, s, line)
            }
            other => (
                Validity::Unknown,
                json!({"error": format!("unknown checker {other}")}),
                format!("unknown checker {other}"),
            ),
        };
        validity = validity.merge(v);
        let mut d = details;
        if let Some(o) = d.as_object_mut() {
            o.insert("valid".into(), json!(v));
        }
        results.insert(name.clone(), d);
        summary.push(format!("{name}: {v} — {line}"));
    }
    (
        validity,
        json!({"valid": validity, "checkers": results}),
        summary,
    )
}

/// The transactional checker over a `list-append` or `rw-register` history.
fn check_txn(
    history: &History,
    model_name: &str,
    settings: &CheckSettings<'_>,
) -> (Validity, Value, String) {
    use crate::check::txn;
    let Some(w) = txn::Workload::parse(model_name) else {
        return (
            Validity::Unknown,
            json!({"error": format!("the txn checker takes list-append or rw-register, not {model_name}")}),
            format!("the txn checker takes list-append or rw-register, not {model_name}"),
        );
    };
    let mut opts = txn::Options::new(w);
    opts.consistency_models = vec![settings.consistency_model.to_string()];
    opts.time_limit = settings.time_limit;
    match txn::check(history, &opts) {
        Ok(r) => {
            let mut line = format!(
                "{} txns, {} ({})",
                r.txns,
                if r.anomaly_types.is_empty() {
                    "no anomalies".to_string()
                } else {
                    format!("anomalies {}", r.anomaly_types.join(", "))
                },
                settings.consistency_model
            );
            if !r.not.is_empty() {
                line.push_str(&format!("; not {}", r.not.join(", ")));
            }
            if let Some(why) = &r.reason {
                line.push_str(&format!("; {why}"));
            }
            (
                r.validity,
                serde_json::to_value(&r).unwrap_or(Value::Null),
                line,
            )
        }
        Err(e) => (
            Validity::Unknown,
            json!({"error": e.to_string()}),
            format!("cannot check: {e}"),
        ),
    }
}

/// Counts of outcomes, overall and per function, of client operations.
fn stats(history: &History) -> Value {
    let mut by_f: std::collections::BTreeMap<String, [u64; 3]> = Default::default();
    for op in &history.ops {
        if !matches!(op.process, Process::Client(_)) {
            continue;
        }
        let slot = match op.kind {
            OpType::Ok => 0,
            OpType::Fail => 1,
            OpType::Info => 2,
            OpType::Invoke => continue,
        };
        by_f.entry(op.f.clone()).or_default()[slot] += 1;
    }
    let total = by_f
        .values()
        .fold([0u64; 3], |a, c| [a[0] + c[0], a[1] + c[1], a[2] + c[2]]);
    let per: serde_json::Map<String, Value> = by_f
        .into_iter()
        .map(|(f, c)| (f, json!({"ok": c[0], "fail": c[1], "info": c[2]})))
        .collect();
    json!({"ok": total[0], "fail": total[1], "info": total[2], "by_f": per})
}

#[cfg(test)]
mod redis_spec_tests {
    use super::*;

    #[test]
    fn redis_takes_replica_or_primary_reads_and_refuses_transactions() {
        let spec = |read_mode: &str| TestSpec {
            db: "redis".into(),
            read_mode: read_mode.into(),
            ..TestSpec::default()
        };
        assert_eq!(spec("replica").validate(), Ok(()));
        assert_eq!(spec("primary").validate(), Ok(()));
        // The generic default means the redis default.
        assert_eq!(spec("linearizable").validate(), Ok(()));
        let e = spec("serializable").validate().unwrap_err();
        assert!(e.starts_with("read_mode: ") && e.contains("replica"), "{e}");
        // etcd keeps its own modes.
        let etcd = TestSpec {
            read_mode: "primary".into(),
            ..TestSpec::default()
        };
        assert!(etcd.validate().unwrap_err().contains("linearizable"));

        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads");
        let txn = Workload::find("list-append", &dir).expect("list-append workload");
        let e = check_db_workload("redis", &txn).unwrap_err().to_string();
        assert!(
            e.contains("the redis client does not run the list-append workload")
                && e.contains("it runs: cas-register, set"),
            "{e}"
        );
        let set = Workload::find("set", &dir).expect("set workload");
        assert!(check_db_workload("redis", &set).is_ok());
    }
}
