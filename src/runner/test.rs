//! The lifecycle of one test, Jepsen's order: db set-up on every node →
//! clients → nemesis set-up → workers and nemesis under the generator →
//! final phase (stop every fault, heal, let the cluster recover, final
//! reads) → node logs → db teardown → checkers → results.
//!
//! Whatever happens after the db is set up — an error, Ctrl-C, a crashed
//! worker — every fault is healed, the logs are collected and the db torn
//! down (unless asked to leave it running); the history is on disk as it
//! was recorded.

use super::events::{EventSink, RunEvent};
use super::system::{check_db_workload, version_of, System};
use super::{drive_workers, Recorder, RunError, Stop, WorkerConfig};
use crate::check::registry::{check_all, CheckContext};
use crate::check::Validity;
use crate::cluster::Cluster;
use crate::db;
use crate::generator::{
    self, any, on_clients, on_nemesis, phases, rate, time_limit, Emit, Generator, OpSpec, Target,
};
use crate::history::{History, Op, OpType};
use crate::nemesis::{self, config, schedule::Schedule, Fault, Nemeses, Nemesis, NemesisClient};
use crate::store::{RunDir, END_MARKER};
use crate::workload::Workload;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use super::spec::{Dirs, TestSpec};

/// How often the lifecycle reports counts and active faults while the
/// workers run.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// What a test ended with.
#[derive(Debug)]
pub struct TestOutcome {
    /// The verdict over every checker.
    pub validity: Validity,
    /// The run's folder.
    pub dir: PathBuf,
    /// A line per checker, for the terminal.
    pub summary: Vec<String>,
    /// True when the run did not run to its end (Ctrl-C, SIGTERM, a failed
    /// set-up); `summary` says why.
    pub interrupted: bool,
}

/// Runs one test on `cluster`, writing everything under `dirs.results`,
/// telling `events` how it goes.
pub async fn run_test(
    spec: TestSpec,
    cluster: Cluster,
    dirs: &Dirs,
    stop: Stop,
    events: EventSink,
) -> anyhow::Result<TestOutcome> {
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
    events(RunEvent::Created {
        dir: run_dir.path.as_path().to_path_buf(),
    });
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
    if stop.is_stopped() {
        // A signal before anything was touched: nothing to clean up.
        let why = "interrupted (SIGINT or SIGTERM) before the db set-up".to_string();
        return finish_incomplete(&run_dir, &mut test_json, why);
    }
    // A db that keeps a daemon on some nodes only runs there; one with no
    // daemon record runs on every node.
    let daemons: Vec<String> = cluster
        .nodes()
        .iter()
        .filter(|n| db.daemon_on(n).is_some())
        .map(|n| n.name().to_string())
        .collect();
    events(RunEvent::SettingUp {
        db: db.name().to_string(),
        nodes: if daemons.is_empty() {
            cluster
                .nodes()
                .iter()
                .map(|n| n.name().to_string())
                .collect()
        } else {
            daemons
        },
        of: cluster.nodes().len(),
    });
    let set_up = {
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
        .context("db set-up task")?
    };
    if let Err(e) = set_up {
        // Nothing ran: an empty history, and a verdict that says why.
        tracing::error!("db set-up failed: {e}");
        let why = format!("the db set-up failed: {e}");
        return finish_incomplete(&run_dir, &mut test_json, why);
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
    // The one writer of history.jsonl, from the first worker event to the
    // final heal.
    let mut recorder = Recorder::create(&run_dir.history(), started)
        .with_context(|| format!("creating {}", run_dir.history().display()))?;
    // A signal during the db set-up: no workers at all.
    let ended = if stop.is_stopped() {
        Ok(Ended::Interrupted)
    } else {
        run_phase(
            &spec,
            seed,
            &workload,
            &defs,
            &cluster,
            &target,
            nemeses.clone(),
            &mut recorder,
            &run_dir,
            stop.clone(),
            &events,
        )
        .await
    };

    // Cleanup: heal, logs, teardown.
    let heal = {
        let n = nemeses.clone();
        tokio::task::spawn_blocking(move || nemesis::heal_all(n.as_ref())).await
    };
    // The generator's final phase healed already when the run ended
    // normally; otherwise this heal belongs in the history.
    let record_heal = !matches!(ended, Ok(Ended::Complete));
    let mut write_error: Option<std::io::Error> = None;
    let mut record = |ops: &[Op]| {
        for op in ops {
            if let Err(e) = recorder.record(op.clone()) {
                write_error.get_or_insert(e);
                return;
            }
        }
    };
    match &heal {
        Ok((ops, Ok(_))) => {
            if record_heal {
                record(ops);
            }
        }
        Ok((ops, Err(e))) => {
            record(ops);
            tracing::error!("healing failed: {e}");
            events(RunEvent::Warning(format!(
                "healing failed: {e}; run `faultline heal` to retry"
            )));
        }
        Err(e) => tracing::error!("heal task: {e}"),
    }
    let finished = recorder.finish();
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
        let torn =
            match tokio::task::spawn_blocking(move || db::teardown(db.as_ref(), &cluster)).await {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
        if let Err(e) = torn {
            events(RunEvent::Warning(format!("db teardown: {e}")));
        }
    }

    // A history that could not be written is no history to judge.
    let ended = ended.map_err(|e| anyhow::anyhow!("writing the history: {e}"))?;
    if let Some(e) = write_error {
        return Err(anyhow::anyhow!("writing the history: {e}"));
    }
    let history = finished.context("writing the history")?;
    let incomplete = match ended {
        Ended::Complete => None,
        Ended::Interrupted if history.ops.iter().any(|o| o.is_client()) => Some(format!(
            "interrupted (SIGINT or SIGTERM) {:.1} s into the run: the history is partial",
            started.elapsed().as_secs_f64()
        )),
        Ended::Interrupted => {
            Some("interrupted (SIGINT or SIGTERM) before any operation ran".to_string())
        }
        Ended::Failed(why) => Some(why),
    };
    let check_limit = spec.check_time_limit.map(Duration::from_secs_f64);
    let reads = target.reads();
    let ctx = CheckContext {
        linearizable_reads: reads.linearizable(),
        consistency_models: vec![spec.consistency_model.clone()],
        time_limit: check_limit,
        classic: workload.classic_options(),
        ..CheckContext::new(Some(workload.model.clone()), crate::host::memory_limit())
    };
    let (validity, mut results, mut summary) = check_all(&history, &workload.checkers, &ctx);
    mark_end(&mut test_json, incomplete.as_deref());
    run_dir.write_test(&test_json)?;
    let validity = settle(validity, &mut results, &history, incomplete.as_deref());
    summary.extend(verdict_notes(&results));
    run_dir.write_results(&results)?;
    Ok(TestOutcome {
        validity,
        dir: run_dir.path.as_path().to_path_buf(),
        summary,
        interrupted: incomplete.is_some(),
    })
}

/// Ends a run that never got to its workers: an empty history, and the
/// end marker and the results say why; the verdict is incomplete.
fn finish_incomplete(
    run_dir: &RunDir,
    test_json: &mut Value,
    why: String,
) -> anyhow::Result<TestOutcome> {
    use anyhow::Context as _;
    Recorder::create(&run_dir.history(), Instant::now())
        .and_then(Recorder::finish)
        .with_context(|| format!("creating {}", run_dir.history().display()))?;
    mark_end(test_json, Some(&why));
    run_dir.write_test(test_json)?;
    let mut results = json!({"checkers": {}});
    let validity = settle(
        Validity::Valid,
        &mut results,
        &History::default(),
        Some(&why),
    );
    run_dir.write_results(&results)?;
    Ok(TestOutcome {
        validity,
        dir: run_dir.path.as_path().to_path_buf(),
        summary: verdict_notes(&results),
        interrupted: true,
    })
}

/// How the workers' phase ended.
enum Ended {
    /// The generator ran to its end.
    Complete,
    /// A signal stopped it (or came before it began).
    Interrupted,
    /// It could not begin or go on (nemesis set-up, clients, a dead
    /// worker); says why.
    Failed(String),
}

/// The workers and the nemesis under the generator, recording through
/// `recorder`; says how that ended. The error is a history that could not
/// be written.
#[allow(clippy::too_many_arguments)]
async fn run_phase(
    spec: &TestSpec,
    seed: u64,
    workload: &Workload,
    defs: &[config::NemesisDef],
    cluster: &Cluster,
    target: &System,
    nemeses: Arc<Nemeses>,
    recorder: &mut Recorder,
    run_dir: &RunDir,
    stop: Stop,
    events: &EventSink,
) -> std::io::Result<Ended> {
    let set_up = {
        let n = nemeses.clone();
        tokio::task::spawn_blocking(move || n.setup()).await
    };
    match set_up {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Ok(Ended::Failed(format!("the nemesis set-up failed: {e}"))),
        Err(e) => return Ok(Ended::Failed(format!("the nemesis set-up task: {e}"))),
    }
    let factory = match target.client_factory(spec, workload, cluster) {
        Ok(f) => f,
        Err(e) => return Ok(Ended::Failed(format!("the clients cannot be made: {e}"))),
    };
    let gen = build_generator(spec, seed, workload, defs);
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
    events(RunEvent::Running {
        workload: workload.name.clone(),
        time_limit: spec.time_limit,
        concurrency: spec.concurrency,
        rate: spec.rate,
        nemeses: spec.nemesis.clone(),
        seed,
        history: run_dir.history(),
    });
    let ticker = {
        let progress = recorder.progress();
        let record = nemeses.record_path().map(Path::to_path_buf);
        let events = events.clone();
        // The recorder's clock: progress times match the history's.
        let start = Instant::now() - Duration::from_nanos(recorder.now());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(PROGRESS_EVERY).await;
                events(RunEvent::Progress {
                    elapsed: start.elapsed(),
                    counts: progress.counts(),
                    faults: record.as_deref().map(active_faults).unwrap_or_default(),
                });
            }
        })
    };
    let result = drive_workers(
        gen,
        factory,
        Some(nemesis_client),
        &cfg,
        recorder,
        stop.clone(),
    )
    .await;
    ticker.abort();
    events(RunEvent::Stopped);
    match result {
        Ok(()) if stop.is_stopped() => Ok(Ended::Interrupted),
        Ok(()) => Ok(Ended::Complete),
        Err(RunError::Io(e)) => Err(e),
        Err(e) => Ok(Ended::Failed(format!("the run stopped early: {e}"))),
    }
}

/// Writes the run's end marker into its test.json: `"end": {"complete":
/// true}` once the history is whole, or `{"complete": false, "reason":
/// ...}`. A run whose test.json has no end marker never got there (its
/// controller was killed), and `faultline analyze` calls it incomplete.
fn mark_end(test_json: &mut Value, incomplete: Option<&str>) {
    test_json[END_MARKER] = match incomplete {
        None => json!({"complete": true}),
        Some(why) => json!({"complete": false, "reason": why}),
    };
}

/// The verdict of a run, from its checkers' `validity` and `results`: a run
/// that did not run to its end (`incomplete`, with the reason) is
/// incomplete, unless a checker found it invalid (an anomaly found stays
/// found); a run in which no operation succeeded vouches for nothing and is
/// at best unknown. Writes the verdict and the reasons into `results`
/// (`valid`, `interrupted`, `incomplete_reason`, `unknown_reason`).
pub fn settle(
    validity: Validity,
    results: &mut Value,
    history: &History,
    incomplete: Option<&str>,
) -> Validity {
    let mut validity = validity;
    let client_ops = history.ops.iter().filter(|o| o.is_client()).count();
    let succeeded = history
        .ops
        .iter()
        .any(|o| o.is_client() && o.kind == OpType::Ok);
    if !succeeded {
        validity = validity.merge(Validity::Unknown);
        results["unknown_reason"] = json!(if client_ops == 0 {
            "no operation ran: nothing to vouch for".to_string()
        } else {
            format!(
                "no operation succeeded ({} invoked): nothing to vouch for",
                client_ops.div_ceil(2)
            )
        });
    }
    if let Some(why) = incomplete {
        validity = validity.merge(Validity::Incomplete);
        results["incomplete_reason"] = json!(why);
    }
    results["interrupted"] = json!(incomplete.is_some());
    results["valid"] = json!(validity);
    validity
}

/// A line for each reason `settle` gave, for the terminal.
pub fn verdict_notes(results: &Value) -> Vec<String> {
    [
        ("incomplete", "incomplete_reason"),
        ("unknown", "unknown_reason"),
    ]
    .iter()
    .filter_map(|(what, key)| {
        results[key]
            .as_str()
            .map(|why| format!("run: {what}: {why}"))
    })
    .collect()
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
            Emit::Done
        } else {
            Emit::Pending(Some(end))
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

/// The kinds of fault active now, from the nemesis record (empty when
/// none, or when the record cannot be read: it is being rewritten).
fn active_faults(record: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(record) else {
        return Vec::new();
    };
    let Ok(Value::Object(o)) = serde_json::from_str::<Value>(&text) else {
        return Vec::new();
    };
    o.into_iter()
        .filter(|(_, val)| {
            !(val.is_null()
                || val.as_array().is_some_and(|a| a.is_empty())
                || val.as_object().is_some_and(|a| a.is_empty()))
        })
        .map(|(k, _)| k)
        .collect()
}
