//! The lifecycle of one test, Jepsen's order: a clean slate on every node
//! (leftover faults lifted, any process and data of the db removed, the db
//! recorded for `faultline heal`) → db set-up on every node →
//! clients → nemesis set-up → workers and nemesis under the generator →
//! final phase (stop every fault, heal, let the cluster recover, final
//! reads) → node logs → db teardown → checkers → results.
//!
//! Whatever happens after the db is set up — an error, Ctrl-C, a crashed
//! worker — every fault is healed, the logs are collected and the db torn
//! down (unless asked to leave it running); the history is on disk as it
//! was recorded.

use super::events::{EventSink, RunEvent};
use super::online::{self, Online, OnlineThread};
use super::system::{check_db_workload, version_of, System};
use super::{drive_workers, Recorder, RunError, Stop, WorkerConfig};
use crate::check::registry::{check_all, CheckContext};
use crate::check::Validity;
use crate::cluster::Cluster;
use crate::db;
use crate::generator::{
    self, any, on_clients, on_nemesis, phases, time_limit, Emit, Generator, OpSpec, Target,
};
use crate::history::{History, Op, OpType};
use crate::nemesis::coverage::{self, RequestedFault};
use crate::nemesis::{self, config, schedule::Schedule, Fault, Nemeses, Nemesis, NemesisClient};
use crate::store::{RunDir, END_MARKER};
use crate::workload::{GenOptions, Workload};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
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
    /// The violation that ended the run early (`--stop-on-invalid`), for
    /// people.
    pub stopped_early: Option<String>,
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
    let db_has_primaries = db_names_primaries(&spec)?;
    // The local cluster's nodes, and isolated nodes reached as hosts, share
    // this machine's clock: theirs moves by libfaketime under the db.
    let clock_by_faketime = cluster
        .nodes()
        .iter()
        .any(|n| !n.capabilities().can_skew_clock);
    config::check_supported(
        &defs,
        config::Capabilities {
            clock_by_faketime,
            db_has_primaries,
            db_faketime_clock: db_faketime_clock(&spec)?,
            db_membership: db_membership(&spec)?,
            db_data_folder: db_data_folder(&spec)?,
            db_upgrade: db_upgrade(&spec),
            next_binary: spec.db_binary_next.is_some(),
        },
    )
    .map_err(|e| anyhow::anyhow!(e))?;
    // Clock faults there need the db started under libfaketime
    // (nemesis::clock).
    let fake_clocks = clock_by_faketime && defs.iter().any(|d| d.family == nemesis::Family::Clock);
    // Losing unsynced writes needs the db's data folder on the lazyfs
    // filesystem (nemesis::lazyfs), mounted once the db is set up.
    let lazyfs = defs
        .iter()
        .any(|d| d.family == nemesis::Family::LoseUnfsynced);
    let requested: Vec<RequestedFault> = defs.iter().map(|d| d.requested()).collect();
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
    // How the nodes were logged in to: user, port, jump host, kinds of
    // authentication (a password only as the kind, never itself).
    test_json["ssh"] = json!(cluster.login());
    test_json["faults_requested"] = coverage::requested_to_value(&requested);
    // Which build ran: each uploaded binary by its path, sha256 and size.
    for (key, path) in [
        ("db_binary", &spec.db_binary),
        ("db_binary_next", &spec.db_binary_next),
    ] {
        if let Some(p) = path {
            test_json[key] = db::DbBinary::open(p)
                .map_err(|e| anyhow::anyhow!("{key}: {e}"))?
                .to_value();
        }
    }
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
        return finish_incomplete(&run_dir, &mut test_json, why, &requested);
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
    // Real hosts have no state dir: keep the record in the run's folder.
    let record_path =
        nemesis::default_record_path(&cluster).unwrap_or_else(|| run_dir.path.join("nemesis.json"));
    let this_db = recorded_db(&spec, &cluster);
    let set_up = {
        let (db, cluster) = (db.clone(), cluster.clone());
        let leave = spec.leave_db_running;
        let record_path = record_path.clone();
        tokio::task::spawn_blocking(move || {
            let set_up = clean_slate(db.as_ref(), &cluster, &record_path, this_db)
                .and_then(|()| {
                    nemesis::clock::arm_faketime(&cluster, fake_clocks)
                        .map(|_| ())
                        .map_err(|e| db::DbError::Invalid(format!("arming libfaketime: {e}")))
                })
                .and_then(|()| db::setup(db.as_ref(), &cluster, healthy_within))
                .and_then(|()| match lazyfs {
                    true => nemesis::lazyfs::arm(&cluster, &db, &record_path, None, healthy_within)
                        .map(|v| tracing::info!(mounts = %v, "lazyfs mounted"))
                        .map_err(|e| db::DbError::Invalid(format!("mounting lazyfs: {e}"))),
                    false => Ok(()),
                });
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
        return finish_incomplete(&run_dir, &mut test_json, why, &requested);
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
            record: Some(record_path.clone()),
            helper: None,
        },
    ));
    let started = Instant::now();
    // The one writer of history.jsonl, from the first worker event to the
    // final heal.
    let mut recorder = Recorder::create(&run_dir.history(), started)
        .with_context(|| format!("creating {}", run_dir.history().display()))?;
    let check_limit = spec.check_time_limit.map(Duration::from_secs_f64);
    let reads = target.reads();
    let ctx = CheckContext {
        linearizable_reads: reads.linearizable(),
        consistency_models: vec![spec.consistency_model.clone()],
        time_limit: check_limit,
        classic: workload.classic_options(),
        resident_memory: Some(crate::host::resident_bytes),
        ..CheckContext::new(Some(workload.model.clone()), crate::host::memory_limit())
    };
    // Set when the online checker proves a violation and the run is to
    // stop there: the main phase ends, the final phase runs.
    let stop_early = Arc::new(AtomicBool::new(false));
    let online = if spec.online {
        start_online(
            &workload.checkers,
            &ctx,
            &mut recorder,
            &stop_early,
            spec.stop_on_invalid,
            &events,
        )
    } else {
        None
    };
    // A signal during the db set-up: no workers at all.
    let ended = if stop.is_stopped() {
        Ok(Ended::Interrupted)
    } else {
        run_phase(
            &spec,
            seed,
            &workload,
            &defs,
            db_has_primaries,
            &cluster,
            &target,
            nemeses.clone(),
            &mut recorder,
            &run_dir,
            stop.clone(),
            stop_early.clone(),
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
        match torn {
            // Nothing of the db is left: nothing for heal to remember.
            Ok(()) => {
                if let Err(e) = nemesis::RecordFile::new(record_path.clone()).remove() {
                    tracing::warn!("removing the record: {e}");
                }
            }
            Err(e) => events(RunEvent::Warning(format!("db teardown: {e}"))),
        }
    }

    // The recorder is finished: the online thread stops after the key it
    // is judging (what it did not judge, the final check judges).
    let online = online.map(OnlineThread::finish);

    // A history that could not be written is no history to judge.
    let ended = ended.map_err(|e| anyhow::anyhow!("writing the history: {e}"))?;
    if let Some(e) = write_error {
        return Err(anyhow::anyhow!("writing the history: {e}"));
    }
    let history = finished.context("writing the history")?;
    let mut incomplete = match ended {
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
    // The verdict is always the final check's, on the whole history; it
    // takes each key the online checker judged valid on exactly the
    // events the key has in the whole history (`check::known`).
    let final_ctx = CheckContext {
        known: online.as_ref().map(|o| o.known.clone()).unwrap_or_default(),
        ..ctx
    };
    let (validity, mut results, mut summary) = check_all(&history, &workload.checkers, &final_ctx);
    let mut stopped_early = None;
    if let Some(o) = &online {
        let (taken, again) = o.final_check();
        results["online"] = o.summary.to_json();
        results["online"]["final_check"] = json!({
            "keys_taken": taken,
            "keys_rechecked": again,
        });
        summary.push(format!(
            "{}; the final check took {taken} keys from it and checked {again} again",
            o.summary.line()
        ));
        let o = &o.summary;
        let finding = o.finding.as_ref();
        // The final check judges that checker invalid too (perhaps on
        // another key first: it stops at the first invalid key).
        let confirmed =
            finding.map(|f| results["checkers"][&f.checker]["valid"] == json!(Validity::Invalid));
        if confirmed == Some(false) {
            tracing::error!(
                "the final check did not confirm the online finding: {}",
                finding.map(online::Finding::line).unwrap_or_default()
            );
        }
        results["online"]["confirmed_by_final_check"] = json!(confirmed);
        if let (Some(f), true) = (finding, stop_early.load(Ordering::SeqCst)) {
            let why = format!(
                "stopped early at the first proven violation, {:.1} s into the run: {}",
                f.found_at as f64 / 1e9,
                f.line()
            );
            results["stopped_early"] = json!({"reason": why, "finding": f.to_json()});
            // The argument in online.rs rules this out; should it happen,
            // a run cut short on a finding not confirmed vouches for nothing.
            if confirmed == Some(false) && incomplete.is_none() {
                incomplete = Some(format!(
                    "stopped early on an online finding the final check did not confirm: {}",
                    f.line()
                ));
            }
            stopped_early = Some(why);
        }
    }
    mark_end(&mut test_json, incomplete.as_deref());
    run_dir.write_test(&test_json)?;
    let validity = settle(validity, &mut results, &history, incomplete.as_deref());
    let validity = settle_faults(
        validity,
        &mut results,
        &history,
        &requested,
        spec.allow_missing_faults || incomplete.is_some(),
    );
    summary.extend(verdict_notes(&results));
    run_dir.write_results(&results)?;
    Ok(TestOutcome {
        validity,
        dir: run_dir.path.as_path().to_path_buf(),
        summary,
        interrupted: incomplete.is_some(),
        stopped_early,
    })
}

/// Starts the online checker (`online.rs`) on the checkers that can be
/// judged on prefixes, fed by `recorder`; `None` when none can (or its
/// thread cannot start: then everything is checked at the end, as without
/// it). Its first finding is told to `events` and, with `stop_on_invalid`,
/// sets `stop_early`.
fn start_online(
    checkers: &[String],
    ctx: &CheckContext,
    recorder: &mut Recorder,
    stop_early: &Arc<AtomicBool>,
    stop_on_invalid: bool,
    events: &EventSink,
) -> Option<OnlineThread> {
    let checker = Online::new(checkers, ctx);
    if !checker.checks_anything() {
        return None;
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let (flag, events) = (stop_early.clone(), events.clone());
    let found = Box::new(move |f: &online::Finding| {
        if stop_on_invalid {
            flag.store(true, Ordering::SeqCst);
        }
        tracing::warn!("online check: {}", f.line());
        events(RunEvent::Violation {
            line: f.line(),
            stopping: stop_on_invalid,
        });
    });
    match online::spawn(checker, rx, recorder.start(), found) {
        Ok(t) => {
            recorder.tap(tx);
            Some(t)
        }
        Err(e) => {
            tracing::warn!("cannot start the online checker ({e}); checking at the end only");
            None
        }
    }
}

/// What `faultline heal` needs to rebuild this run's db: the `--db` value
/// (a db file's absolute path), the read mode, the server binaries (absolute),
/// the `--db-opt` settings, the nodes.
fn recorded_db(spec: &TestSpec, cluster: &Cluster) -> nemesis::RecordedDb {
    let absolute = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    nemesis::RecordedDb {
        db: crate::system::absolute_db(&spec.db),
        read_mode: spec.read_mode.clone(),
        binary: spec.db_binary.as_deref().map(absolute),
        binary_next: spec.db_binary_next.as_deref().map(absolute),
        db_opts: spec.db_opts.clone(),
        nodes: cluster
            .nodes()
            .iter()
            .map(|n| n.name().to_string())
            .collect(),
    }
}

/// Brings every node to a known state before the db set-up, whatever an
/// earlier run (killed, or left running with `--leave-db-running`) or a
/// person left there, and says in the run's log what it found: the faults
/// are lifted (partition and packet rules, delay programs, clocks), every
/// process of `db` is killed and its data wiped, and so is the db an
/// earlier run recorded when it is another one. Then `this_db` is
/// recorded, so `faultline heal` after a kill knows what to resume.
fn clean_slate(
    db: &dyn db::Db,
    cluster: &Cluster,
    record: &Path,
    this_db: nemesis::RecordedDb,
) -> Result<(), db::DbError> {
    let failed = |what: &str, e: &dyn std::fmt::Display| {
        db::DbError::Invalid(format!("clean slate: {what}: {e}"))
    };
    let file = nemesis::RecordFile::new(record.to_path_buf());
    let earlier = match file.load() {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!("clean slate: {e}; sweeping without it");
            nemesis::ActiveFaults::default()
        }
    };
    if earlier.has_faults() {
        tracing::info!(
            "clean slate: an earlier run left faults recorded: {}",
            serde_json::to_string(&earlier).unwrap_or_default()
        );
    }
    // Network, packet and clock faults, with or without a record; the
    // db's own processes go below, paused or not.
    let lifted = Nemeses::new(
        cluster.clone(),
        None,
        nemesis::NemesisOptions {
            record: Some(record.to_path_buf()),
            ..nemesis::NemesisOptions::default()
        },
    )
    .heal()
    .map_err(|e| failed("lifting leftover faults", &e))?;
    tracing::info!("clean slate: leftover faults lifted on every node: {lifted}");
    let mut dbs: Vec<Arc<dyn db::Db>> = Vec::new();
    if let Some(other) = earlier.db.as_ref().filter(|r| r.db != this_db.db) {
        // An earlier run of another db: its processes would hold ports
        // and memory, stopped or not.
        match crate::system::find(&other.db)
            .and_then(|s| {
                s.configure(&crate::system::Choice {
                    db: &other.db,
                    read_mode: &other.read_mode,
                    binary: other.binary.as_deref(),
                    ..crate::system::Choice::default()
                })
                .ok()
            })
            .and_then(|c| c.deploy(cluster.nodes()).ok())
        {
            Some(d) => dbs.push(d.db()),
            None => tracing::warn!(
                "clean slate: the earlier run's db {:?} cannot be rebuilt; its processes are left",
                other.db
            ),
        }
    }
    for d in dbs.iter().map(|d| d.as_ref()).chain([db]) {
        let cleaned = db::clean_slate(d, cluster)
            .map_err(|e| failed(&format!("cleaning {}", d.name()), &e))?;
        let mut any = false;
        for c in cleaned.iter().filter(|c| !c.found.is_empty()) {
            any = true;
            tracing::info!("clean slate on {}: {}", c.node, c.found.join("; "));
        }
        if !any {
            tracing::info!("clean slate: no {} process or data on any node", d.name());
        }
    }
    file.update(|a| {
        *a = nemesis::ActiveFaults {
            db: Some(this_db),
            ..nemesis::ActiveFaults::default()
        }
    })
    .map_err(|e| failed("recording the db", &e))
}

/// Ends a run that never got to its workers: an empty history, and the
/// end marker and the results say why; the verdict is incomplete.
fn finish_incomplete(
    run_dir: &RunDir,
    test_json: &mut Value,
    why: String,
    requested: &[RequestedFault],
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
    let validity = settle_faults(validity, &mut results, &History::default(), requested, true);
    run_dir.write_results(&results)?;
    Ok(TestOutcome {
        validity,
        dir: run_dir.path.as_path().to_path_buf(),
        summary: verdict_notes(&results),
        interrupted: true,
        stopped_early: None,
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
    db_has_primaries: bool,
    cluster: &Cluster,
    target: &System,
    nemeses: Arc<Nemeses>,
    recorder: &mut Recorder,
    run_dir: &RunDir,
    stop: Stop,
    stop_early: Arc<AtomicBool>,
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
    let gen = build_generator(spec, seed, workload, defs, db_has_primaries, stop_early);
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
/// at best unknown, and so is one whose final heal failed (a database it
/// could not bring back). Writes the verdict and the reasons into `results`
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
    if let Some(why) = final_heal_failure(history) {
        // The db may not have come back: what it would have served after
        // is unknown, so the history vouches for less than it seems.
        validity = validity.merge(Validity::Unknown);
        let why = format!("the final heal failed: {why}");
        results["unknown_reason"] = json!(match results["unknown_reason"].as_str() {
            Some(earlier) => format!("{earlier}; {why}"),
            None => why,
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

/// The error of the history's last `heal` (the final one), when it failed:
/// a database heal could not bring back, among others.
fn final_heal_failure(history: &History) -> Option<String> {
    let last = history
        .ops
        .iter()
        .rev()
        .find(|o| o.process == crate::history::Process::Nemesis && o.f == "heal")?;
    last.error.as_ref().map(|e| match e {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

/// Records in `results` what each requested fault did (`faults`, see
/// [`coverage::fault_coverage`]) and, when one never took effect, makes the
/// verdict at best unknown with the reason naming it, unless `accept_missing`
/// (`--allow-missing-faults`, or a run that did not run to its end, which
/// is incomplete already). Call after [`settle`]; updates `valid`.
pub fn settle_faults(
    validity: Validity,
    results: &mut Value,
    history: &History,
    requested: &[RequestedFault],
    accept_missing: bool,
) -> Validity {
    if requested.is_empty() {
        return validity;
    }
    let faults = coverage::fault_coverage(history, requested);
    results["faults"] = json!(faults);
    let mut validity = validity;
    if let (Some(why), false) = (coverage::missing_reason(&faults), accept_missing) {
        validity = validity.merge(Validity::Unknown);
        results["unknown_reason"] = json!(match results["unknown_reason"].as_str() {
            Some(earlier) => format!("{earlier}; {why}"),
            None => why,
        });
        results["valid"] = json!(validity);
    }
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

/// main (rate, time limit, until `stop_early`) ∥ nemesis schedule → stop
/// every fault → wait for recovery → final reads.
fn build_generator(
    spec: &TestSpec,
    seed: u64,
    workload: &Workload,
    defs: &[config::NemesisDef],
    db_has_primaries: bool,
    stop_early: Arc<AtomicBool>,
) -> Box<dyn Generator> {
    let limit_ns = (spec.time_limit * 1e9) as u64;
    let opts = GenOptions {
        rate: spec.rate,
        time_limit_ns: Some(limit_ns),
    };
    let (main, final_phase) = workload.bounded_phases(seed, opts);
    let interval = spec.nemesis_interval.map(Duration::from_secs_f64);
    let schedule = Schedule::new(defs.to_vec(), interval, seed ^ 0x6E65_6D65)
        .with_primaries(db_has_primaries)
        .fit_within(Duration::from_secs_f64(spec.time_limit));
    let mut stops: Vec<Box<dyn Generator>> = schedule
        .final_ops()
        .into_iter()
        .map(|op| Box::new(generator::once(generator::repeat(op))) as Box<dyn Generator>)
        .collect();
    let heal = OpSpec::new(Fault::HealAll.f(), Fault::HealAll.value()).with_target(Target::Nemesis);
    stops.push(Box::new(generator::once(generator::repeat(heal))));
    // Each side is bounded by the time limit on its own: the clients'
    // main phase may run past it only to wind down (a lock workload's
    // holders release), while no fault starts after it.
    let body = UntilSet {
        flag: stop_early,
        inner: any(vec![
            Box::new(on_clients(main)),
            Box::new(on_nemesis(time_limit(limit_ns, schedule))),
        ]),
    };
    let mut parts: Vec<Box<dyn Generator>> =
        vec![Box::new(body), Box::new(on_nemesis(generator::seq(stops)))];
    parts.push(Box::new(sleep(Duration::from_secs_f64(spec.recovery_time))));
    if let Some(f) = final_phase {
        parts.push(f);
    }
    Box::new(phases(parts))
}

/// `inner` until `flag` is set, then done (the phase after it begins once
/// the operations in flight complete, as at the time limit).
struct UntilSet<G> {
    flag: Arc<AtomicBool>,
    inner: G,
}

impl<G: Generator> Generator for UntilSet<G> {
    fn next(&mut self, ctx: &generator::Context) -> Emit {
        if self.flag.load(Ordering::SeqCst) {
            Emit::Done
        } else {
            self.inner.next(ctx)
        }
    }

    fn update(&mut self, ctx: &generator::Context, event: &Op) {
        self.inner.update(ctx, event)
    }
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
/// file, that the db's clients can run the workload, its nemesis names
/// (an unknown one lists every valid name), and that the cluster
/// (`local_cluster`: the local one, whose clocks move by libfaketime; given
/// hosts are probed when connected, in `run_test`) and db can do the faults
/// asked for.
pub fn preflight(spec: &TestSpec, dirs: &Dirs, local_cluster: bool) -> anyhow::Result<()> {
    spec.validate().map_err(|e| anyhow::anyhow!(e))?;
    let workload = find_workload(&spec.workload, &dirs.workloads)?;
    check_db_workload(spec, &workload)?;
    let defs = config::load_named(Some(&dirs.nemeses), &spec.nemesis)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let can = config::Capabilities {
        clock_by_faketime: local_cluster,
        db_has_primaries: db_names_primaries(spec)?,
        db_faketime_clock: db_faketime_clock(spec)?,
        db_membership: db_membership(spec)?,
        db_data_folder: db_data_folder(spec)?,
        db_upgrade: db_upgrade(spec),
        next_binary: spec.db_binary_next.is_some(),
    };
    config::check_supported(&defs, can).map_err(|e| anyhow::anyhow!(e))
}

/// Whether the db can name its primaries for faults aimed at them (a db
/// file only when it says how: `primaries`).
fn db_names_primaries(spec: &TestSpec) -> anyhow::Result<bool> {
    let configured = spec.configure().map_err(|e| anyhow::anyhow!(e))?;
    Ok(configured.names_primaries())
}

/// Whether libfaketime moves the db's clock (for clock faults on the local
/// cluster), and if not, why.
fn db_faketime_clock(spec: &TestSpec) -> anyhow::Result<Result<(), String>> {
    let configured = spec.configure().map_err(|e| anyhow::anyhow!(e))?;
    Ok(configured.faketime_clock())
}

/// Whether the db's members can be removed and added back (for
/// membership faults), and if not, why.
fn db_membership(spec: &TestSpec) -> anyhow::Result<Result<(), String>> {
    let configured = spec.configure().map_err(|e| anyhow::anyhow!(e))?;
    Ok(configured.membership())
}

/// Whether the db keeps a data folder faultline knows on the nodes (for
/// lose-unfsynced), and if not, why.
fn db_data_folder(spec: &TestSpec) -> anyhow::Result<Result<(), String>> {
    let configured = spec.configure().map_err(|e| anyhow::anyhow!(e))?;
    Ok(configured.data_folder())
}

/// Whether a rolling upgrade can run: the system takes a server binary of
/// the user's own, and both the first and the next are given; if not, why.
fn db_upgrade(spec: &TestSpec) -> Result<(), String> {
    let system =
        crate::system::find(&spec.db).ok_or_else(|| format!("unknown db {:?}", spec.db))?;
    let program = crate::system::server_program(system)?;
    match (&spec.db_binary, &spec.db_binary_next) {
        (Some(_), Some(_)) => Ok(()),
        (_, None) => Err(format!(
            "it needs --db-binary-next PATH, the {program} binary to put on each node in turn \
             (and --db-binary PATH, the one they start on)"
        )),
        (None, Some(_)) => Err(format!(
            "it needs --db-binary PATH, the {program} binary the nodes start on"
        )),
    }
}

/// The kinds of fault active now, from the nemesis record (empty when
/// none, or when the record cannot be read: it is being rewritten). The
/// recorded db is no fault.
fn active_faults(record: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(record) else {
        return Vec::new();
    };
    let Ok(Value::Object(o)) = serde_json::from_str::<Value>(&text) else {
        return Vec::new();
    };
    o.into_iter()
        .filter(|(kind, _)| kind != "db")
        .filter(|(_, val)| {
            !(val.is_null()
                || val.as_array().is_some_and(|a| a.is_empty())
                || val.as_object().is_some_and(|a| a.is_empty()))
        })
        .map(|(k, _)| k)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recorded_db_is_not_an_active_fault() {
        let dir = tempfile::tempdir().unwrap();
        let record = nemesis::RecordFile::new(dir.path().join("nemesis.json"));
        record
            .update(|a| {
                a.db = Some(nemesis::RecordedDb {
                    db: "redis".into(),
                    ..nemesis::RecordedDb::default()
                })
            })
            .unwrap();
        assert!(active_faults(record.path()).is_empty());
        record
            .update(|a| {
                a.paused.insert("n1".into());
            })
            .unwrap();
        assert_eq!(active_faults(record.path()), vec!["paused".to_string()]);
    }

    #[test]
    fn the_recorded_db_keeps_the_db_opts() {
        let spec = TestSpec {
            db: "etcd".into(),
            db_opts: vec!["heartbeat-interval=200".into()],
            ..TestSpec::default()
        };
        let r = recorded_db(
            &spec,
            &Cluster::new(Vec::new(), crate::cluster::ClusterKind::Hosts),
        );
        assert_eq!((r.db.as_str(), r.db_opts), ("etcd", spec.db_opts.clone()));
    }
}
