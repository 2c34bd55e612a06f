//! The lifecycle of one test, Jepsen's order: db set-up on every node →
//! clients → nemesis set-up → workers and nemesis under the generator →
//! final phase (stop every fault, heal, let the cluster recover, final
//! reads) → node logs → db teardown → checkers → results.
//!
//! Whatever happens after the db is set up — an error, Ctrl-C, a crashed
//! worker — every fault is healed, the logs are collected and the db torn
//! down (unless asked to leave it running); the history is on disk as it
//! was recorded.

use super::system::{check_db_workload, version_of, System};
use super::{run_workers, Recorder, RunError, Stop, WorkerConfig};
use crate::check::Validity;
use crate::cluster::Cluster;
use crate::db;
use crate::generator::{
    self, any, on_clients, on_nemesis, phases, rate, time_limit, Generator, Next, OpSpec, Target,
};
use crate::history::{History, Op};
use crate::nemesis::{self, config, schedule::Schedule, Fault, Nemeses, Nemesis, NemesisClient};
use crate::store::RunDir;
use crate::workload::Workload;
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use super::checks::{check_history, CheckSettings};
pub use super::spec::{Dirs, TestSpec};

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
    let spec = spec.resolved().map_err(|e| anyhow::anyhow!(e))?;
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
    let healthy_within = target.healthy_within();
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
    let reads = target.reads();
    let check_limit = spec.check_time_limit.map(Duration::from_secs_f64);
    let (validity, results, summary) = check_history(
        &history,
        &workload.model,
        &workload.checkers,
        &CheckSettings {
            read_mode: reads.checker_mode(),
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

/// Checks a test before any cluster is built: its fields, its workload
/// file, and that the db's clients can run the workload.
pub fn preflight(spec: &TestSpec, dirs: &Dirs) -> anyhow::Result<()> {
    spec.validate().map_err(|e| anyhow::anyhow!(e))?;
    let workload = find_workload(&spec.workload, &dirs.workloads)?;
    check_db_workload(spec, &workload)
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
