//! The runner: worker tasks that perform operations, and the loop that
//! feeds them from the generator and records what they do.
//!
//! Like Jepsen's interpreter, one loop owns the [`Generator`] and the
//! [`Recorder`]: it asks for an operation, records the invocation (index and
//! time taken *before* the worker starts it), hands it to a free worker, and
//! records each completion when it hears of it (time taken *after* the
//! worker finished). Each operation's recorded interval therefore contains
//! its real one, which is what a linearizability checker needs; and since
//! only this loop touches the generator, the generator needs no locks and
//! the same seed gives the same operations.
//!
//! Each worker is a tokio task with its own [`Client`], performing one
//! operation at a time as one logical process. An operation that times out
//! or ends in an unknown way is recorded `info`; the worker then goes on as
//! a new process, its number increased by the concurrency (Jepsen's rule:
//! an `info` process may still be acting, so it must never invoke again),
//! and reopens its client.
//!
//! The full lifecycle of a test (db, nemesis set-up, final phase, cleanup,
//! checkers) is in `lifecycle.rs`; it prints nothing, but tells its caller how
//! it goes through [`events::RunEvent`]s (the command line draws them). The
//! [`Recorder`] is the one writer of `history.jsonl`: [`drive_workers`]
//! leaves it open so the lifecycle records the final heal through it too.
//! The online checker (`online.rs`) gets a copy of every event from the
//! recorder and judges the history on its own thread as it grows.

pub mod events;
pub mod lifecycle;
pub mod online;
pub mod recorder;
pub mod spec;
mod system;
mod warnings;

pub use recorder::{Counts, Progress, Recorder, FLUSH_EVERY};

use crate::client::{Client, ClientFactory, Completion, Invocation, Status};
use crate::generator::{Context, Emit, Generator, OpSpec, Target};
use crate::history::{History, Op, OpType, Process};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// How long the loop waits on a generator that is pending with no time
/// before asking again (Jepsen polls at 1 ms too).
const POLL: Duration = Duration::from_millis(1);

/// A stop signal for a run: cheap to clone, safe to trigger from a signal
/// handler task, at any time, more than once.
#[derive(Clone, Debug)]
pub struct Stop(Arc<watch::Sender<bool>>);

impl Default for Stop {
    fn default() -> Stop {
        Stop::new()
    }
}

impl Stop {
    /// A signal not yet triggered.
    pub fn new() -> Stop {
        Stop(Arc::new(watch::Sender::new(false)))
    }

    /// Asks the run to stop: no new operations; those in flight complete
    /// (or time out and are recorded `info`).
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }

    /// True once triggered.
    pub fn is_stopped(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once triggered.
    pub async fn wait(&self) {
        let mut rx = self.0.subscribe();
        // Err only if the sender is gone, which it cannot be while we hold it.
        let _ = rx.wait_for(|v| *v).await;
    }
}

/// How to run the workers.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Number of client workers (Jepsen's concurrency).
    pub concurrency: usize,
    /// The nodes; worker `w` opens its client on `nodes[w % nodes.len()]`.
    pub nodes: Vec<String>,
    /// How long a client operation may take before it is recorded `info`.
    pub op_timeout: Duration,
    /// How long a nemesis operation may take before it is recorded `info`.
    pub nemesis_timeout: Duration,
}

impl WorkerConfig {
    /// `concurrency` workers over `nodes`, 5 s per operation, 120 s per
    /// nemesis operation.
    pub fn new(concurrency: usize, nodes: Vec<String>) -> WorkerConfig {
        WorkerConfig {
            concurrency,
            nodes,
            op_timeout: Duration::from_secs(5),
            nemesis_timeout: Duration::from_secs(120),
        }
    }
}

/// Why a run could not go on.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The configuration cannot run (no workers, no nodes).
    #[error("bad run configuration: {0}")]
    Config(String),
    /// Writing the history failed; the run was stopped.
    #[error("cannot write the history: {0}")]
    Io(#[from] std::io::Error),
    /// A worker task died (its client panicked).
    #[error("worker {0} died: {1}")]
    Worker(usize, String),
    /// The nemesis task died (it panicked).
    #[error("the nemesis died: {0}")]
    Nemesis(String),
}

/// Marks the nemesis in worker numbers sent back to the loop.
const NEMESIS: usize = usize::MAX;

struct Job {
    process: Process,
    inv: Invocation,
}

struct Done {
    worker: usize,
    process: Process,
    inv: Invocation,
    completion: Completion,
}

/// Runs `gen` on `cfg.concurrency` workers, each with a client made by
/// `clients` (and `nemesis`, if any, for nemesis operations), recording
/// every event through `recorder`, until the generator is done or `stop` is
/// triggered and every operation in flight has completed. Returns the
/// history (also in `recorder`'s file).
///
/// Must be called inside a tokio runtime.
pub async fn run_workers(
    gen: Box<dyn Generator>,
    clients: ClientFactory,
    nemesis: Option<Box<dyn Client>>,
    cfg: &WorkerConfig,
    mut recorder: Recorder,
    stop: Stop,
) -> Result<History, RunError> {
    let ran = drive_workers(gen, clients, nemesis, cfg, &mut recorder, stop).await;
    let history = recorder.finish()?;
    ran.map(|()| history)
}

/// [`run_workers`], leaving `recorder` open: the caller records what
/// happens after the workers stop (the final heal) through the same
/// recorder, the one writer of the history, and then finishes it.
///
/// Must be called inside a tokio runtime.
pub async fn drive_workers(
    mut gen: Box<dyn Generator>,
    clients: ClientFactory,
    nemesis: Option<Box<dyn Client>>,
    cfg: &WorkerConfig,
    recorder: &mut Recorder,
    stop: Stop,
) -> Result<(), RunError> {
    let n = cfg.concurrency;
    if n == 0 {
        return Err(RunError::Config("concurrency must be at least 1".into()));
    }
    if cfg.nodes.is_empty() {
        return Err(RunError::Config("no nodes to open clients on".into()));
    }
    // Enough room that a worker never waits to hand back a completion.
    let (done_tx, mut done_rx) = mpsc::channel::<Done>(n + 2);
    let mut job_txs = Vec::with_capacity(n);
    let mut handles: Vec<JoinHandle<()>> = Vec::with_capacity(n + 1);
    let warned = Arc::new(warnings::Collapsed::default());
    for w in 0..n {
        let (tx, rx) = mpsc::channel::<Job>(1);
        job_txs.push(tx);
        let node = cfg.nodes[w % cfg.nodes.len()].clone();
        handles.push(tokio::spawn(worker(
            w,
            clients(w),
            node,
            rx,
            done_tx.clone(),
            cfg.op_timeout,
            warned.clone(),
        )));
    }
    let has_nemesis = nemesis.is_some();
    let mut nemesis_tx = None;
    if let Some(nem) = nemesis {
        let (tx, rx) = mpsc::channel::<Job>(1);
        nemesis_tx = Some(tx);
        handles.push(tokio::spawn(worker(
            NEMESIS,
            nem,
            "nemesis".into(),
            rx,
            done_tx.clone(),
            cfg.nemesis_timeout,
            warned.clone(),
        )));
    }
    drop(done_tx);

    let mut ctx = Context::new(n, has_nemesis);
    let mut processes: Vec<u64> = (0..n as u64).collect();
    let nodes_of: Vec<String> = (0..n)
        .map(|w| cfg.nodes[w % cfg.nodes.len()].clone())
        .collect();
    let mut in_flight = 0usize;
    let mut gen_done = false;
    let mut held: Option<OpSpec> = None;
    let mut next_worker = 0usize;
    let mut failure: Option<RunError> = None;

    // Records a completion and frees its worker.
    let complete = |d: Done,
                    ctx: &mut Context,
                    gen: &mut Box<dyn Generator>,
                    rec: &mut Recorder,
                    processes: &mut [u64]|
     -> std::io::Result<()> {
        let kind = match (d.process, d.completion.status) {
            (Process::Nemesis, _) => OpType::Info,
            (_, s) => OpType::from(s),
        };
        let mut op = Op::new(0, d.process, kind, d.inv.f, d.completion.value);
        op.key = d.inv.key;
        op.error = d.completion.error;
        if d.worker == NEMESIS {
            ctx.nemesis_free = true;
        } else {
            op.node = Some(nodes_of_worker(&nodes_of, d.worker));
            if d.completion.status == Status::Info {
                // The old process may still be acting: never reuse it.
                processes[d.worker] += n as u64;
            }
            ctx.set_free(d.worker, true);
        }
        ctx.time = rec.now();
        let ev = rec.record(op)?;
        gen.update(ctx, ev);
        Ok(())
    };

    loop {
        // Take every completion already waiting, without blocking.
        while let Ok(d) = done_rx.try_recv() {
            in_flight -= 1;
            if let Err(e) = complete(d, &mut ctx, &mut gen, recorder, &mut processes) {
                failure.get_or_insert(RunError::Io(e));
            }
        }
        if stop.is_stopped() || failure.is_some() {
            gen_done = true;
            held = None;
        }
        if gen_done && in_flight == 0 {
            break;
        }

        // Decide what to do: dispatch an operation, or wait until `wake`.
        let mut wake: Option<Instant> = None;
        if !gen_done {
            let spec = match held.take() {
                Some(s) => Some(s),
                None if ctx.free_count() == 0 && !(has_nemesis && ctx.nemesis_free) => None,
                None => {
                    ctx.time = recorder.now();
                    match gen.next(&ctx) {
                        Emit::Invoke(s) => Some(s),
                        Emit::Pending(until) => {
                            // With nothing named, wait for a completion; the
                            // poll below covers the case of none in flight.
                            wake = until.map(|t| instant_at(recorder, t));
                            None
                        }
                        Emit::Done => {
                            gen_done = true;
                            continue;
                        }
                    }
                }
            };
            if let Some(spec) = spec {
                let who = match spec.target {
                    Target::Client => {
                        // Round-robin from the worker after the last one
                        // used, so that at low load operations still spread
                        // over every worker and so over every node.
                        let w = ctx.free_worker_from(next_worker);
                        if let Some(w) = w {
                            next_worker = w + 1;
                        }
                        w.map(Some)
                    }
                    Target::Worker(w) if w < n => ctx.is_free(w).then_some(Some(w)),
                    Target::Nemesis if has_nemesis => ctx.nemesis_free.then_some(None),
                    _ => {
                        tracing::warn!(who = ?spec.target, f = %spec.f, "generator asked for a worker this run does not have; dropped");
                        continue;
                    }
                };
                match who {
                    None => held = Some(spec), // its performer is busy: wait for a completion
                    Some(w) => {
                        let (process, tx, timeout) = match (w, &nemesis_tx) {
                            (Some(w), _) => (
                                Process::Client(processes[w]),
                                &job_txs[w],
                                spec.timeout
                                    .map_or(cfg.op_timeout, |t| t.max(cfg.op_timeout)),
                            ),
                            (None, Some(tx)) => (Process::Nemesis, tx, cfg.nemesis_timeout),
                            // Not reached: nemesis ops are routed only when
                            // the run has a nemesis.
                            (None, None) => continue,
                        };
                        let kind = if w.is_some() {
                            OpType::Invoke
                        } else {
                            OpType::Info
                        };
                        let mut op = Op::new(0, process, kind, spec.f.clone(), spec.value.clone());
                        op.key = spec.key.clone();
                        if let Some(w) = w {
                            op.node = Some(nodes_of[w].clone());
                            ctx.set_free(w, false);
                        } else {
                            ctx.nemesis_free = false;
                        }
                        ctx.time = recorder.now();
                        match recorder.record(op) {
                            Ok(ev) => gen.update(&ctx, ev),
                            Err(e) => {
                                failure = Some(RunError::Io(e));
                                if let Some(w) = w {
                                    ctx.set_free(w, true);
                                }
                                continue;
                            }
                        }
                        let inv = Invocation {
                            process,
                            f: spec.f,
                            value: spec.value,
                            key: spec.key,
                            timeout,
                        };
                        if let Err(mpsc::error::SendError(job)) =
                            tx.send(Job { process, inv }).await
                        {
                            // The worker is gone (its client panicked): close
                            // the invocation we recorded, then stop the run.
                            let worker = w.unwrap_or(NEMESIS);
                            let value = job.inv.value.clone();
                            let completion = Completion::info(value, "worker died");
                            let d = Done {
                                worker,
                                process: job.process,
                                inv: job.inv,
                                completion,
                            };
                            if let Err(e) =
                                complete(d, &mut ctx, &mut gen, recorder, &mut processes)
                            {
                                failure.get_or_insert(RunError::Io(e));
                            }
                            // Why it died shows when it is joined below.
                            failure.get_or_insert(died(worker, "ended early".into()));
                            continue;
                        }
                        in_flight += 1;
                        continue;
                    }
                }
            }
        }

        // Nothing to dispatch now: wait for a completion, the wake-up time,
        // the flush deadline, or the stop signal.
        if in_flight == 0 && wake.is_none() {
            if gen_done {
                continue;
            }
            // A generator pending on completions with none in flight (or a
            // held op): poll rather than hang.
            wake = Some(Instant::now() + POLL);
        }
        if let Some(fd) = recorder.flush_deadline() {
            wake = Some(wake.map_or(fd, |w| w.min(fd)));
        }
        let sleep = async {
            match wake {
                Some(t) => tokio::time::sleep_until(t.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            d = done_rx.recv() => match d {
                Some(d) => {
                    in_flight -= 1;
                    if let Err(e) = complete(d, &mut ctx, &mut gen, recorder, &mut processes) {
                        failure.get_or_insert(RunError::Io(e));
                    }
                }
                None => {
                    failure.get_or_insert(RunError::Config("every worker is gone".into()));
                    in_flight = 0;
                }
            },
            _ = sleep => {}
            _ = stop.wait(), if !gen_done => {}
        }
        if let Err(e) = recorder.flush_if_due() {
            failure.get_or_insert(RunError::Io(e));
        }
    }

    // Let the workers close their clients and end.
    drop(job_txs);
    drop(nemesis_tx);
    for (i, h) in handles.into_iter().enumerate() {
        if let Err(e) = h.await {
            let w = if i < n { i } else { NEMESIS };
            // A panic explains an earlier "ended early" better; an I/O
            // failure of the history stays the error reported.
            if !matches!(failure, Some(RunError::Io(_))) {
                failure = Some(died(w, e.to_string()));
            }
        }
    }
    for (node, error, count) in warned.repeated() {
        tracing::warn!("cannot open client on {node}: {error} ({count} times in all)");
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn nodes_of_worker(nodes: &[String], w: usize) -> String {
    nodes.get(w).cloned().unwrap_or_default()
}

/// The instant `t` ns after the recorder's start.
fn instant_at(rec: &Recorder, t: u64) -> Instant {
    let now_ns = rec.now();
    Instant::now() + Duration::from_nanos(t.saturating_sub(now_ns))
}

/// The error for worker `w` (or the nemesis) having died.
fn died(w: usize, why: String) -> RunError {
    if w == NEMESIS {
        RunError::Nemesis(why)
    } else {
        RunError::Worker(w, why)
    }
}

/// One worker: performs the jobs it is given, one at a time, with its own
/// client, and hands every completion back.
async fn worker(
    w: usize,
    mut client: Box<dyn Client>,
    node: String,
    mut jobs: mpsc::Receiver<Job>,
    done: mpsc::Sender<Done>,
    timeout: Duration,
    warned: Arc<warnings::Collapsed>,
) {
    let mut open = open_client(&mut *client, &node, w, &warned).await;
    while let Some(job) = jobs.recv().await {
        if open.is_err() {
            open = open_client(&mut *client, &node, w, &warned).await;
        }
        // Should the client panic mid-operation, the guard still reports
        // the operation (as `info`: it may have been sent), so the run
        // never waits for a completion that cannot come.
        let mut guard = PanicGuard {
            done: &done,
            jobs: &mut jobs,
            worker: w,
            job: Some(job),
        };
        let completion = match (&open, guard.job.as_ref()) {
            (_, None) => break,
            // Nothing was sent: the operation certainly did not happen.
            (Err(e), Some(job)) => {
                Completion::fail(job.inv.value.clone(), format!("client not open: {e}"))
            }
            (Ok(()), Some(job)) => {
                // The operation's own timeout (the run's, or longer for an
                // operation the generator lets wait, such as an acquire).
                let timeout = if job.inv.timeout.is_zero() {
                    timeout
                } else {
                    job.inv.timeout
                };
                match tokio::time::timeout(timeout, client.invoke(&job.inv)).await {
                    Ok(c) => c,
                    Err(_) => Completion::info(
                        job.inv.value.clone(),
                        format!("timeout after {timeout:?}"),
                    ),
                }
            }
        };
        let Some(Job { process, inv }) = guard.job.take() else {
            break;
        };
        let reopen = completion.status == Status::Info && w != NEMESIS;
        if done
            .send(Done {
                worker: w,
                process,
                inv,
                completion,
            })
            .await
            .is_err()
        {
            break;
        }
        if reopen {
            // The connection may be wedged mid-request: start afresh, after
            // the completion is recorded so the reopen does not stretch it.
            if let Err(e) = client.close().await {
                tracing::debug!(worker = w, error = %e, "closing client after info");
            }
            open = open_client(&mut *client, &node, w, &warned).await;
        }
    }
    if let Err(e) = client.close().await {
        tracing::debug!(worker = w, error = %e, "closing client");
    }
}

/// Reports a worker's operation as `info` if the worker unwinds (its
/// client panicked) before reporting it.
struct PanicGuard<'a> {
    done: &'a mpsc::Sender<Done>,
    jobs: &'a mut mpsc::Receiver<Job>,
    worker: usize,
    job: Option<Job>,
}

impl Drop for PanicGuard<'_> {
    fn drop(&mut self) {
        if let Some(Job { process, inv }) = self.job.take() {
            // Close our inbox first: once the loop hears of this completion
            // it may send another job, which must then be refused (and so
            // recorded as not performed) rather than lost in a dying task.
            self.jobs.close();
            let completion = Completion::info(inv.value.clone(), "client panicked");
            // The channel has room for one completion per worker, so this
            // cannot be refused for lack of space.
            let _ = self.done.try_send(Done {
                worker: self.worker,
                process,
                inv,
                completion,
            });
        }
    }
}

/// Opens `client` on `node`. A failure is logged the first time that node
/// fails with that error; the repeats are counted in `warned` (and at
/// debug level).
async fn open_client(
    client: &mut dyn Client,
    node: &str,
    w: usize,
    warned: &warnings::Collapsed,
) -> Result<(), String> {
    client.open(node).await.map_err(|e| {
        let error = e.to_string();
        if warned.first(node, &error) {
            tracing::warn!(
                "cannot open client on {node}: {error} (repeats are counted, shown when the workers stop)"
            );
        } else {
            tracing::debug!(worker = w, node, error = %error, "cannot open client");
        }
        error
    })
}

#[cfg(test)]
mod tests;
