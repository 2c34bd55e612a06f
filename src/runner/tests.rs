//! Tests of the workers and the recorder against in-memory clients.

use super::*;
use crate::client::{ClientError, NoopClient};
use crate::generator::{
    self, from_fn, limit, on_clients, on_nemesis, repeat, Dist, OpMix, ValueShape,
};
use crate::system::memory::MemoryDb;
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};

fn register_mix(seed: u64) -> OpMix {
    let ops = vec![
        ("read".into(), 2, ValueShape::Null),
        ("write".into(), 1, ValueShape::One),
        ("cas".into(), 1, ValueShape::Pair),
    ];
    OpMix::new(
        ops,
        Dist::uniform(3).expect("dist"),
        generator::rng(seed, 1),
    )
    .expect("mix")
}

fn cfg(n: usize) -> WorkerConfig {
    WorkerConfig::new(n, vec!["n1".into(), "n2".into(), "n3".into()])
}

/// Checks what every recorded history must satisfy.
fn assert_well_formed(h: &History) {
    h.calls()
        .expect("history pairs up (one op at a time per process, nothing after info)");
    let mut last = 0;
    for (i, op) in h.ops.iter().enumerate() {
        assert_eq!(op.index, i as u64);
        let t = op.time.expect("every event has a time");
        assert!(t >= last, "time went backwards at {i}");
        last = t;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_every_event_to_file_and_memory_with_counts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("history.jsonl");
    let rec = Recorder::create(&path, Instant::now()).expect("recorder");
    let progress = rec.progress();
    let db = MemoryDb::registers();
    let factory: ClientFactory = Box::new(move |_| Box::new(db.client()));
    let gen = Box::new(limit(2_000, register_mix(7)));
    let h = run_workers(gen, factory, None, &cfg(5), rec, Stop::new())
        .await
        .expect("run");

    assert_eq!(h.len(), 4_000);
    assert_well_formed(&h);
    let c = progress.counts();
    assert_eq!(c.invoked, 2_000);
    assert_eq!(c.ok + c.fail + c.info, 2_000);
    assert_eq!(c.info, 0);
    assert!(c.fail > 0, "some cas should fail on a 3-value register");
    // Each worker's node: worker w uses nodes[w % 3].
    for op in &h.ops {
        if let Process::Client(p) = op.process {
            assert_eq!(
                op.node.as_deref(),
                Some(["n1", "n2", "n3"][(p % 5 % 3) as usize])
            );
        }
    }
    // The file is the same history, event for event.
    let back = crate::history::read_path(&path, None).expect("read back");
    assert_eq!(back.ops, h.ops);
}

/// Fails with `info` on every third operation of each client, and hangs
/// past the timeout on every seventh.
struct Flaky {
    n: u64,
    opens: Arc<AtomicU64>,
}

#[async_trait::async_trait]
impl Client for Flaky {
    async fn open(&mut self, _node: &str) -> Result<(), ClientError> {
        self.opens.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    async fn invoke(&mut self, inv: &Invocation) -> Completion {
        self.n += 1;
        if self.n % 7 == 0 {
            tokio::time::sleep(inv.timeout * 4).await;
        }
        if self.n % 3 == 0 {
            return Completion::from_error(
                inv.value.clone(),
                &ClientError::unknown("connection reset"),
            );
        }
        if self.n % 5 == 0 {
            return Completion::from_error(inv.value.clone(), &ClientError::not_applied("refused"));
        }
        Completion::ok(inv.value.clone())
    }

    async fn close(&mut self) -> Result<(), ClientError> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_and_timeouts_give_the_worker_a_new_process() {
    let opens = Arc::new(AtomicU64::new(0));
    let o = opens.clone();
    let factory: ClientFactory = Box::new(move |_| {
        Box::new(Flaky {
            n: 0,
            opens: o.clone(),
        })
    });
    let mut c = cfg(4);
    c.op_timeout = Duration::from_millis(5);
    let gen = Box::new(limit(200, repeat(OpSpec::new("write", json!(1)))));
    let h = run_workers(
        gen,
        factory,
        None,
        &c,
        Recorder::in_memory(Instant::now()),
        Stop::new(),
    )
    .await
    .expect("run");
    assert_well_formed(&h);

    let infos: Vec<&Op> = h.ops.iter().filter(|o| o.kind == OpType::Info).collect();
    assert!(!infos.is_empty());
    assert!(infos.iter().any(|o| o
        .error
        .as_ref()
        .is_some_and(|e| e.to_string().contains("timeout"))));
    assert!(h
        .ops
        .iter()
        .any(|o| o.kind == OpType::Fail && o.error == Some(json!("refused"))));
    for info in &infos {
        let Process::Client(p) = info.process else {
            panic!("client info")
        };
        // That process never acts again; the worker goes on as p + 4.
        assert!(!h
            .ops
            .iter()
            .any(|o| o.index > info.index && o.process == info.process));
        // The worker's next event, if any, is by process p + 4.
        let next = h.ops.iter().find(|o| {
            o.index > info.index && matches!(o.process, Process::Client(q) if q % 4 == p % 4)
        });
        if let Some(next) = next {
            assert_eq!(
                next.process,
                Process::Client(p + 4),
                "after info at {}",
                info.index
            );
        }
    }
    // Every info makes the worker reopen its client.
    assert_eq!(opens.load(Ordering::Relaxed), 4 + infos.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_ends_an_endless_run_with_every_op_completed() {
    let stop = Stop::new();
    let s = stop.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        s.trigger();
    });
    let factory: ClientFactory = Box::new(|_| Box::new(NoopClient));
    let gen = Box::new(repeat(OpSpec::new("read", json!(null))));
    let h = tokio::time::timeout(
        Duration::from_secs(10),
        run_workers(
            gen,
            factory,
            None,
            &cfg(3),
            Recorder::in_memory(Instant::now()),
            stop,
        ),
    )
    .await
    .expect("stops in time")
    .expect("run");
    assert!(h.len() > 10);
    assert_eq!(h.len() % 2, 0);
    assert_well_formed(&h);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_the_file_within_a_few_ms_while_the_run_waits() {
    // Ten ops, then a generator that idles for a long time: the file must
    // hold the ten ops long before the run ends.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("history.jsonl");
    let rec = Recorder::create(&path, Instant::now()).expect("recorder");
    let mut n = 0;
    let gen = Box::new(from_fn(move |ctx| {
        n += 1;
        if n <= 10 {
            generator::Emit::Invoke(OpSpec::new("write", json!(n)))
        } else if ctx.time < 600_000_000_000 {
            generator::Emit::Pending(Some(600_000_000_000))
        } else {
            generator::Emit::Done
        }
    }));
    let stop = Stop::new();
    let factory: ClientFactory = Box::new(|_| Box::new(NoopClient));
    let c = cfg(2);
    let run = tokio::spawn({
        let stop = stop.clone();
        async move { run_workers(gen, factory, None, &c, rec, stop).await }
    });
    // The generator now idles for ten minutes; the events must reach the
    // file long before that, while the run is still going.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut lines = 0;
    while lines < 20 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
        lines = std::fs::read_to_string(&path)
            .expect("read")
            .lines()
            .count();
    }
    assert_eq!(lines, 20, "all 10 ops and completions on disk mid-run");
    assert!(!run.is_finished(), "the run is still idling");
    stop.trigger();
    let h = run.await.expect("join").expect("run");
    assert_eq!(h.len(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_cannot_open_fails_its_ops() {
    struct Closed;
    #[async_trait::async_trait]
    impl Client for Closed {
        async fn open(&mut self, node: &str) -> Result<(), ClientError> {
            Err(ClientError::not_applied(format!(
                "{node} refused the connection"
            )))
        }
        async fn invoke(&mut self, _inv: &Invocation) -> Completion {
            panic!("invoke on a client that never opened")
        }
        async fn close(&mut self) -> Result<(), ClientError> {
            Ok(())
        }
    }
    let factory: ClientFactory = Box::new(|_| Box::new(Closed));
    let gen = Box::new(limit(6, repeat(OpSpec::new("read", json!(null)))));
    let h = run_workers(
        gen,
        factory,
        None,
        &cfg(2),
        Recorder::in_memory(Instant::now()),
        Stop::new(),
    )
    .await
    .expect("run");
    let completions: Vec<&Op> = h.ops.iter().filter(|o| o.kind != OpType::Invoke).collect();
    assert_eq!(completions.len(), 6);
    assert!(completions.iter().all(|o| o.kind == OpType::Fail));
    assert!(completions[0]
        .error
        .as_ref()
        .is_some_and(|e| e.to_string().contains("refused")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nemesis_ops_are_recorded_as_info_pairs_beside_client_ops() {
    let factory: ClientFactory = Box::new(|_| Box::new(NoopClient));
    let gen = Box::new(generator::any(vec![
        Box::new(on_clients(limit(
            50,
            repeat(OpSpec::new("read", json!(null))),
        ))),
        Box::new(on_nemesis(limit(
            2,
            repeat(OpSpec::new("start-partition", json!("majority"))),
        ))),
    ]));
    let h = run_workers(
        gen,
        factory,
        Some(Box::new(NoopClient)),
        &cfg(2),
        Recorder::in_memory(Instant::now()),
        Stop::new(),
    )
    .await
    .expect("run");
    let nem: Vec<&Op> = h
        .ops
        .iter()
        .filter(|o| o.process == Process::Nemesis)
        .collect();
    assert_eq!(nem.len(), 4);
    assert!(nem
        .iter()
        .all(|o| o.kind == OpType::Info && o.f == "start-partition"));
    assert_eq!(h.ops.iter().filter(|o| o.is_client()).count(), 100);
    assert_well_formed(&h);
}

#[tokio::test]
async fn bad_configuration_is_an_error_not_a_hang() {
    let factory: ClientFactory = Box::new(|_| Box::new(NoopClient));
    let gen = Box::new(repeat(OpSpec::new("read", json!(null))));
    let c = WorkerConfig::new(0, vec!["n1".into()]);
    assert!(matches!(
        run_workers(
            gen,
            factory,
            None,
            &c,
            Recorder::in_memory(Instant::now()),
            Stop::new()
        )
        .await,
        Err(RunError::Config(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_client_ends_the_run_with_an_error_not_a_hang() {
    struct Bomb(u64);
    #[async_trait::async_trait]
    impl Client for Bomb {
        async fn open(&mut self, _node: &str) -> Result<(), ClientError> {
            Ok(())
        }
        async fn invoke(&mut self, inv: &Invocation) -> Completion {
            self.0 += 1;
            if self.0 == 3 {
                panic!("client bug (expected by this test)");
            }
            Completion::ok(inv.value.clone())
        }
        async fn close(&mut self) -> Result<(), ClientError> {
            Ok(())
        }
    }
    let factory: ClientFactory = Box::new(|_| Box::new(Bomb(0)));
    let gen = Box::new(repeat(OpSpec::new("read", json!(null))));
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("history.jsonl");
    let rec = Recorder::create(&path, Instant::now()).expect("recorder");
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        run_workers(gen, factory, None, &cfg(2), rec, Stop::new()),
    )
    .await
    .expect("no hang");
    // What was recorded is still a well-formed history: the panicked op
    // and any op sent to the dead worker end `info`.
    let h = crate::history::read_path(&path, None).expect("read back");
    assert_well_formed(&h);
    assert_eq!(
        h.ops.iter().filter(|o| o.kind == OpType::Invoke).count() * 2,
        h.len()
    );
    assert!(h
        .ops
        .iter()
        .any(|o| o.error == Some(json!("client panicked"))));
    match r {
        Err(RunError::Worker(_, msg)) => assert!(msg.contains("panic"), "{msg}"),
        other => panic!("expected a worker error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_low_load_operations_still_reach_every_worker_and_node() {
    // One operation at a time: a lowest-free-worker rule would send every
    // one to worker 0 and so to node n1.
    let mut left = 30;
    let gen = Box::new(from_fn(move |ctx| {
        if left == 0 {
            generator::Emit::Done
        } else if ctx.free_count() < ctx.workers() {
            generator::Emit::Pending(None)
        } else {
            left -= 1;
            generator::Emit::Invoke(OpSpec::new("read", json!(null)))
        }
    }));
    let factory: ClientFactory = Box::new(|_| Box::new(NoopClient));
    let h = run_workers(
        gen,
        factory,
        None,
        &cfg(5),
        Recorder::in_memory(Instant::now()),
        Stop::new(),
    )
    .await
    .expect("run");
    let mut per_process = std::collections::BTreeMap::new();
    for op in h.ops.iter().filter(|o| o.kind == OpType::Invoke) {
        *per_process.entry(op.process).or_insert(0) += 1;
    }
    assert_eq!(per_process.len(), 5, "{per_process:?}");
    assert!(per_process.values().all(|n| *n == 6), "{per_process:?}");
}

/// What the lifecycle records after the workers stop (the final heal) goes
/// through the same recorder: numbered and timed after the workers' events,
/// in the same file, with no second writer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_after_the_workers_continue_the_same_history() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("history.jsonl");
    let mut rec = Recorder::create(&path, Instant::now()).expect("recorder");
    let db = MemoryDb::registers();
    let factory: ClientFactory = Box::new(move |_| Box::new(db.client()));
    let gen = Box::new(limit(50, register_mix(3)));
    drive_workers(gen, factory, None, &cfg(2), &mut rec, Stop::new())
        .await
        .expect("run");
    let (heal, _) = crate::nemesis::heal_all(&NoFaults);
    for op in heal {
        rec.record(op).expect("record the heal");
    }
    let h = rec.finish().expect("finish");
    assert_eq!(h.len(), 102);
    assert_well_formed(&h);
    assert_eq!(h.ops[100].f, "heal");
    let on_disk =
        crate::history::read_path(&path, Some(crate::history::Format::Jsonl)).expect("read back");
    assert_eq!(
        on_disk.ops, h.ops,
        "the file holds exactly what was recorded"
    );
}

/// A history that cannot be written is an error, not a silent loss.
#[test]
fn a_history_write_error_is_an_error() {
    let mut rec = Recorder::create(std::path::Path::new("/dev/full"), Instant::now())
        .expect("/dev/full opens");
    let (heal, _) = crate::nemesis::heal_all(&NoFaults);
    let recorded: std::io::Result<()> = heal
        .into_iter()
        .try_for_each(|op| rec.record(op).map(|_| ()));
    let finished = recorded.and_then(|()| rec.finish().map(|_| ()));
    let e = finished.expect_err("writing to a full disk fails");
    assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
}

/// A nemesis with nothing to heal.
#[derive(Debug)]
struct NoFaults;

impl crate::nemesis::Nemesis for NoFaults {
    fn name(&self) -> &'static str {
        "none"
    }
    fn handles(&self, _: &crate::nemesis::Fault) -> bool {
        false
    }
    fn invoke(
        &self,
        _: &crate::nemesis::Fault,
    ) -> Result<serde_json::Value, crate::nemesis::NemesisError> {
        Ok(serde_json::Value::Null)
    }
    fn heal(&self) -> Result<serde_json::Value, crate::nemesis::NemesisError> {
        Ok(json!({}))
    }
}

fn history_of(kinds: &[OpType]) -> History {
    let ops = kinds
        .iter()
        .enumerate()
        .map(|(i, k)| Op::new(i as u64, Process::Client(0), *k, "read", json!(null)))
        .collect();
    History {
        ops,
        ..History::default()
    }
}

/// An interrupted run is incomplete whatever its checkers said — unless
/// they found an anomaly, which stays found — and results.json says why.
#[test]
fn an_interrupted_run_is_incomplete_unless_invalid() {
    use crate::check::Validity;
    use crate::runner::lifecycle::settle;
    let h = history_of(&[OpType::Invoke, OpType::Ok]);
    let why = "interrupted (SIGINT or SIGTERM) 3.0 s into the run: the history is partial";
    for (checkers, run) in [
        (Validity::Valid, Validity::Incomplete),
        (Validity::Unknown, Validity::Incomplete),
        (Validity::Invalid, Validity::Invalid),
    ] {
        let mut results = json!({"valid": checkers, "checkers": {}});
        assert_eq!(settle(checkers, &mut results, &h, Some(why)), run);
        assert_eq!(results["valid"], json!(run.as_str()));
        assert_eq!(results["interrupted"], json!(true));
        assert_eq!(results["incomplete_reason"], json!(why));
    }
    let mut results = json!({"valid": "valid", "checkers": {}});
    assert_eq!(
        settle(Validity::Valid, &mut results, &h, None),
        Validity::Valid
    );
    assert_eq!(results["interrupted"], json!(false));
    assert!(results.get("incomplete_reason").is_none());
}

/// A run in which no operation succeeded vouches for nothing: unknown, not
/// valid, and it says so.
#[test]
fn a_run_where_nothing_succeeded_is_unknown() {
    use crate::check::Validity;
    use crate::runner::lifecycle::{settle, verdict_notes};
    let h = history_of(&[OpType::Invoke, OpType::Fail, OpType::Invoke, OpType::Info]);
    let mut results = json!({"valid": "valid", "checkers": {}});
    assert_eq!(
        settle(Validity::Valid, &mut results, &h, None),
        Validity::Unknown
    );
    assert_eq!(results["valid"], json!("unknown"));
    assert_eq!(
        results["unknown_reason"],
        json!("no operation succeeded (2 invoked): nothing to vouch for")
    );
    assert_eq!(
        verdict_notes(&results),
        vec!["run: unknown: no operation succeeded (2 invoked): nothing to vouch for"]
    );
    let mut results = json!({"checkers": {}});
    assert_eq!(
        settle(Validity::Valid, &mut results, &History::default(), None),
        Validity::Unknown
    );
    assert_eq!(
        results["unknown_reason"],
        json!("no operation ran: nothing to vouch for")
    );
}

/// A requested fault that never took effect makes a green run unknown,
/// saying which; `--allow-missing-faults` accepts it; an anomaly found
/// stays invalid; every requested fault lands in results.json's `faults`.
#[test]
fn a_requested_fault_that_never_took_effect_makes_the_run_unknown() {
    use crate::check::Validity;
    use crate::nemesis::coverage::RequestedFault;
    use crate::nemesis::Family;
    use crate::runner::lifecycle::{settle, settle_faults, verdict_notes};
    let mut h = history_of(&[OpType::Invoke, OpType::Ok]);
    let nem = |i: u64, f: &str, error: Option<&str>| {
        let mut op = Op::new(i, Process::Nemesis, OpType::Info, f, json!("one"));
        op.time = Some(i * 1_000_000_000);
        op.error = error.map(|e| json!(e));
        op
    };
    h.ops.push(nem(2, "start-partition", None));
    h.ops.push(nem(3, "start-partition", None));
    h.ops.push(nem(4, "bump-clock", None));
    h.ops
        .push(nem(5, "bump-clock", Some("bump-clock refused: one clock")));
    let requested = [
        RequestedFault {
            name: "partition".into(),
            family: Family::Partition,
        },
        RequestedFault {
            name: "clock".into(),
            family: Family::Clock,
        },
    ];
    let mut results = json!({"checkers": {}});
    let v = settle(Validity::Valid, &mut results, &h, None);
    assert_eq!(v, Validity::Valid);
    let v = settle_faults(v, &mut results, &h, &requested, false);
    assert_eq!(v, Validity::Unknown);
    assert_eq!(results["valid"], json!("unknown"));
    assert_eq!(results["faults"]["partition"]["took_effect"], json!(1));
    assert_eq!(results["faults"]["clock"]["refused"], json!(1));
    assert_eq!(results["faults"]["clock"]["requested"], json!(true));
    let why = results["unknown_reason"].as_str().expect("a reason");
    assert!(why.contains("clock (refused once)"), "{why}");
    assert!(verdict_notes(&results)[0].contains("run: unknown: requested faults"));

    // Accepted: valid, the coverage still recorded.
    let mut results = json!({"checkers": {}});
    let v = settle(Validity::Valid, &mut results, &h, None);
    assert_eq!(
        settle_faults(v, &mut results, &h, &requested, true),
        Validity::Valid
    );
    assert!(results.get("unknown_reason").is_none());
    assert_eq!(results["faults"]["clock"]["took_effect"], json!(0));
    // An anomaly found stays found.
    let mut results = json!({"checkers": {}});
    let v = settle(Validity::Invalid, &mut results, &h, None);
    assert_eq!(
        settle_faults(v, &mut results, &h, &requested, false),
        Validity::Invalid
    );
}

/// A run whose final heal failed (a db it could not bring back) is at best
/// unknown, saying why; an anomaly found stays found; a heal that failed
/// and then succeeded leaves the verdict alone.
#[test]
fn a_failed_final_heal_makes_the_run_unknown() {
    use crate::check::Validity;
    use crate::runner::lifecycle::{settle, verdict_notes};
    let heal = |i: u64, error: Option<&str>| {
        let mut op = Op::new(
            i,
            Process::Nemesis,
            OpType::Info,
            "heal",
            serde_json::Value::Null,
        );
        op.error = error.map(|e| json!(e));
        op
    };
    let mut h = history_of(&[OpType::Invoke, OpType::Ok]);
    h.ops.push(heal(2, None));
    h.ops.push(heal(
        3,
        Some("failed to start: n1: redis exited after its start; log: Bad file format"),
    ));
    let mut results = json!({"checkers": {}});
    assert_eq!(
        settle(Validity::Valid, &mut results, &h, None),
        Validity::Unknown
    );
    assert_eq!(results["valid"], json!("unknown"));
    let why = results["unknown_reason"].as_str().expect("a reason");
    assert!(
        why.starts_with("the final heal failed: failed to start: n1: redis exited")
            && why.contains("Bad file format"),
        "{why}"
    );
    assert!(verdict_notes(&results)[0].starts_with("run: unknown: the final heal failed"));
    let mut results = json!({"checkers": {}});
    assert_eq!(
        settle(Validity::Invalid, &mut results, &h, None),
        Validity::Invalid
    );
    // Healed on the second try: nothing to doubt.
    h.ops.push(heal(4, None));
    h.ops.push(heal(5, None));
    let mut results = json!({"checkers": {}});
    assert_eq!(
        settle(Validity::Valid, &mut results, &h, None),
        Validity::Valid
    );
    assert!(results.get("unknown_reason").is_none(), "{results}");
}

/// Sleeps 100 ms on every operation, then answers ok.
struct Slow;

#[async_trait::async_trait]
impl Client for Slow {
    async fn open(&mut self, _node: &str) -> Result<(), ClientError> {
        Ok(())
    }

    async fn invoke(&mut self, inv: &Invocation) -> Completion {
        tokio::time::sleep(Duration::from_millis(100)).await;
        Completion::ok(inv.value.clone())
    }

    async fn close(&mut self) -> Result<(), ClientError> {
        Ok(())
    }
}

/// An operation given its own, longer timeout (a lock acquire) may take
/// longer than the run's operation timeout; the others may not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operation_with_its_own_timeout_may_outlast_the_runs() {
    let factory: ClientFactory = Box::new(|_| Box::new(Slow));
    let mut c = cfg(1);
    c.op_timeout = Duration::from_millis(20);
    let ops = vec![
        OpSpec::new("acquire", json!(null)).with_timeout(Duration::from_secs(5)),
        OpSpec::new("write", json!(1)),
    ];
    let gen = Box::new(crate::generator::seq(
        ops.into_iter()
            .map(|op| Box::new(crate::generator::once(repeat(op))) as Box<dyn Generator>)
            .collect(),
    ));
    let h = run_workers(
        gen,
        factory,
        None,
        &c,
        Recorder::in_memory(Instant::now()),
        Stop::new(),
    )
    .await
    .expect("run");
    let ends: Vec<(String, OpType)> = h
        .ops
        .iter()
        .filter(|o| o.kind != OpType::Invoke)
        .map(|o| (o.f.clone(), o.kind))
        .collect();
    assert_eq!(
        ends,
        [
            ("acquire".to_string(), OpType::Ok),
            ("write".to_string(), OpType::Info)
        ]
    );
}
