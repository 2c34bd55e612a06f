//! Online checking: the checkers judge the history while the run records
//! it, on a thread of their own at low priority, so that a violation is
//! known seconds after it happens (and `--stop-on-invalid` can end the run
//! there) and the verdict is ready when the run ends.
//!
//! # Why a prefix's verdict is sound
//!
//! The online checker judges *prefixes* of the history: every event
//! recorded so far, with the operations still in flight at the cut treated
//! as crashed (`info`: they may take effect at any time after their
//! invocation, or never). Claim: if such a prefix `P` of a history `H` is
//! not linearizable, `H` is not either. Suppose `H` has a linearization
//! `L` (a sequential order of its operations that the model accepts, that
//! respects real time, in which every completed operation returns what it
//! returned and each crashed one is either placed after its invocation or
//! left out). Every operation *invoked after the cut* was invoked after
//! every operation of `P` that *completed before the cut*, so real time
//! puts it after each of them in `L`. Take the shortest start `S` of `L`
//! that holds every operation completed in `P`: it holds no operation
//! invoked after the cut, only operations of `P` — those completed in `P`
//! and some of those in flight at the cut. `S` is a linearization of `P`:
//! the states along it are `L`'s (the model's accepted sequences are closed
//! under prefixes), so each completed operation returns what it returned;
//! real time holds as in `L`; an operation in flight at the cut that is
//! in `S` took effect after its invocation, and one left out never took
//! effect, both allowed for a crashed operation (one that completes `fail`
//! in `H` is left out of `L`, so out of `S` too). Contradiction. So an
//! invalid prefix proves `H` invalid, and longer prefixes can only stay
//! invalid; that is also why the operation at which a prefix first became
//! invalid is well defined (found by bisection, for the report).
//!
//! With independent keys the claim holds for each key's own history (the
//! linearizability checker splits by key); a key the generator has left,
//! with none of its operations in flight, gets no further event, so its
//! verdict is final and is never computed again: the online work follows
//! the keys in use, not the length of the run. After [`RETIRE_AFTER`]
//! without an event and nothing in flight, a key's operations are dropped;
//! should an event for it come later, the key is left to the final check
//! (a suffix alone proves nothing), which costs coverage, never soundness.
//!
//! A checker says whether the claim holds for it through the one door,
//! [`Checker::prefixes`]: per key (linearizability split by key), on the
//! whole prefix (linearizability unsplit, list-append transactions), or
//! not at all (the set's lost elements need its final read; a bank's
//! totals, a counter's bounds...): those are judged at the end only.
//! Whole prefixes are checked at most once a [`WHOLE_EVERY`] and only once
//! the history has grown by a quarter since the last check, so the checked
//! lengths grow geometrically and the online work is at most about five
//! times one check of the whole history (for a checker whose cost grows at
//! least linearly), whatever the length of the run.
//!
//! The run still checks the whole history at its end, and that is what
//! `results.json` says; but that check takes what was judged here where
//! that is sound ([`crate::check::known`]). For each key, the online
//! checker keeps its latest verdict with a fingerprint of the events it
//! judged (how many, and a hash of each one's index, process, type,
//! function, value...); the final check takes a key's *valid* verdict when
//! the key's events in the whole history have the same fingerprint — the
//! same events, so the same calls and the same verdict — and judges every
//! other key itself: one in use at the end, one whose operation in flight
//! at the last round (judged there as crashed) completed after it, one
//! retired and come back, one not judged when the run ended (the thread
//! stops after the key it is judging: the final check does not wait for
//! its backlog). An online *invalid* is final, but the report needs the
//! whole key's counterexample and smallest failing sub-history: such a key
//! is judged again, first. Checkers judged on whole prefixes or at the end
//! only are judged by the final check as before. An online finding the
//! final check would not confirm (which the argument above rules out)
//! could at worst end a run early, whose verdict is then incomplete, never
//! invalid.

use crate::check::known::{key_name, Fingerprint, KnownKeys};
use crate::check::registry::{by_name, CheckContext, Checker, PrefixCheck};
use crate::check::Validity;
use crate::history::{History, Op, OpType, Process};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often the online thread takes the new events and checks what they
/// changed: the bulk of the lag from an operation to its verdict.
pub const ROUND: Duration = Duration::from_millis(100);

/// How long a key with nothing in flight waits for another event before
/// its operations are dropped (its verdict kept).
pub const RETIRE_AFTER: Duration = Duration::from_secs(5);

/// The least time between two checks of the whole prefix.
pub const WHOLE_EVERY: Duration = Duration::from_secs(1);

/// The longest one online check may take (then: unknown, not a finding).
const CHECK_LIMIT: Duration = Duration::from_secs(10);

/// The first violation the online checker proved.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    /// The checker that proved it.
    pub checker: String,
    /// The key whose history is invalid (per-key checkers), if any.
    pub key: Option<Value>,
    /// The checker's sentence.
    pub explanation: String,
    /// The event at which the history first became invalid: the
    /// completion of the operation no order can explain.
    pub op: Op,
    /// When the checker found it (ns since the run's start, the
    /// history's clock).
    pub found_at: u64,
}

impl Finding {
    /// From the violating operation's completion to the verdict.
    pub fn lag(&self) -> Duration {
        Duration::from_nanos(self.found_at.saturating_sub(self.op.time.unwrap_or(0)))
    }

    /// One line for people: the checker, key, operation and lag.
    pub fn line(&self) -> String {
        let key = self
            .key
            .as_ref()
            .map(|k| format!("key {k}, "))
            .unwrap_or_default();
        format!(
            "{}: {} ({key}event {}: process {} {} {}, {}; found {} ms after it completed)",
            self.checker,
            self.explanation,
            self.op.index,
            self.op.process,
            self.op.f,
            self.op.value,
            self.op.kind,
            self.lag().as_millis()
        )
    }

    /// The finding as `results.json` keeps it.
    pub fn to_json(&self) -> Value {
        json!({
            "checker": self.checker,
            "key": self.key,
            "explanation": self.explanation,
            "op": {
                "index": self.op.index,
                "process": self.op.process.to_string(),
                "f": self.op.f,
                "value": self.op.value,
                "type": self.op.kind,
                "time_ns": self.op.time,
            },
            "found_at_ns": self.found_at,
            "lag_ms": self.lag().as_secs_f64() * 1e3,
        })
    }
}

/// What the online checker did over a run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    /// Each checker the workload names and how it was checked online
    /// (`per key`, `whole prefix`, `at the end only`).
    pub plans: Vec<(String, &'static str)>,
    /// Keys judged online (per-key checkers).
    pub keys: usize,
    /// Keys an event reached after they were retired: left to the final check.
    pub keys_left: usize,
    /// Checks run.
    pub checks: u64,
    /// The largest lag from an event to the end of the check that covered it.
    pub max_lag: Duration,
    /// The mean of that lag over the checks.
    pub mean_lag: Duration,
    /// The first violation proved, if any.
    pub finding: Option<Finding>,
}

impl Summary {
    /// The summary as `results.json` keeps it under `online`.
    pub fn to_json(&self) -> Value {
        let plans: serde_json::Map<String, Value> = self
            .plans
            .iter()
            .map(|(n, p)| (n.clone(), json!(p)))
            .collect();
        json!({
            "checkers": plans,
            "keys": self.keys,
            "keys_left_to_final_check": self.keys_left,
            "checks": self.checks,
            "lag_ms": {
                "max": self.max_lag.as_secs_f64() * 1e3,
                "mean": self.mean_lag.as_secs_f64() * 1e3,
            },
            "first_invalid": self.finding.as_ref().map(Finding::to_json),
        })
    }

    /// One line for people.
    pub fn line(&self) -> String {
        let what = match &self.finding {
            Some(f) => format!("first violation: {}", f.line()),
            None => "no violation".to_string(),
        };
        format!(
            "online: {} checks{}, lag max {} ms, mean {} ms; {what}",
            self.checks,
            if self.keys > 0 {
                format!(" of {} keys", self.keys)
            } else {
                String::new()
            },
            self.max_lag.as_millis(),
            self.mean_lag.as_millis()
        )
    }
}

/// Where a key stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Life {
    /// In use: its events are kept and checked.
    Live,
    /// Checked valid and quiet: its events were dropped.
    Retired,
    /// An event came after it was retired: left to the final check.
    Abandoned,
}

/// One key's history so far.
struct KeyHistory {
    key: Option<Value>,
    ops: Vec<Op>,
    /// Operations invoked and not completed.
    in_flight: usize,
    /// Events up to here have been checked.
    checked: usize,
    /// The time of the last event.
    last_event: u64,
    life: Life,
    /// The fingerprint of `ops` (kept when they are dropped).
    print: Fingerprint,
}

/// The online checker without its thread: takes events one by one and,
/// at each [`Online::round`], judges what changed. Pure, for tests; the
/// thread is [`spawn`].
pub struct Online {
    per_key: Vec<&'static dyn Checker>,
    /// For each of `per_key`, its latest verdict on each key and the
    /// fingerprint of the events it judged, and the summary as of the last
    /// round: what the final check takes, without waiting for this thread.
    shared: Arc<Mutex<Shared>>,
    whole: Vec<&'static dyn Checker>,
    ctx: CheckContext,
    plans: Vec<(String, &'static str)>,
    keys: HashMap<String, KeyHistory>,
    /// Each client process's key in flight.
    in_flight: HashMap<Process, String>,
    /// Every event, when some checker judges whole prefixes.
    all: Vec<Op>,
    /// The whole prefix up to here has been checked.
    whole_checked: usize,
    whole_checked_at: Option<u64>,
    checks: u64,
    lag_sum: Duration,
    max_lag: Duration,
    keys_left: usize,
    /// Keys seen, live or not.
    keys_seen: usize,
    finding: Option<Finding>,
    /// Set when the run has ended and the final check is waiting: a round
    /// stops between two keys (those not judged are the final check's).
    ending: Arc<AtomicBool>,
}

impl Online {
    /// An online checker for the named checkers, judging with `ctx` (each
    /// check bounded in time, no shrinking: the final check shrinks).
    pub fn new(checkers: &[String], ctx: &CheckContext) -> Online {
        let ctx = CheckContext {
            time_limit: Some(ctx.time_limit.map_or(CHECK_LIMIT, |t| t.min(CHECK_LIMIT))),
            shrink_time: Duration::ZERO,
            stop_at_first_invalid: true,
            ..ctx.clone()
        };
        let (mut per_key, mut whole, mut plans) = (Vec::new(), Vec::new(), Vec::new());
        for name in checkers {
            let plan = match by_name(name).map(|c| (c, c.prefixes(&ctx))) {
                Some((c, PrefixCheck::PerKey)) => {
                    per_key.push(c);
                    "per key"
                }
                Some((c, PrefixCheck::WholePrefix)) => {
                    whole.push(c);
                    "whole prefix"
                }
                _ => "at the end only",
            };
            plans.push((name.clone(), plan));
        }
        Online {
            shared: Arc::new(Mutex::new(Shared {
                summary: Summary::default(),
                known: per_key.iter().map(|_| KnownKeys::default()).collect(),
            })),
            per_key,
            whole,
            ctx,
            plans,
            keys: HashMap::new(),
            in_flight: HashMap::new(),
            all: Vec::new(),
            whole_checked: 0,
            whole_checked_at: None,
            checks: 0,
            lag_sum: Duration::ZERO,
            max_lag: Duration::ZERO,
            keys_left: 0,
            keys_seen: 0,
            finding: None,
            ending: Arc::default(),
        }
    }

    /// True when some checker is judged as the run goes.
    pub fn checks_anything(&self) -> bool {
        !self.per_key.is_empty() || !self.whole.is_empty()
    }

    /// The first violation proved so far.
    pub fn finding(&self) -> Option<&Finding> {
        self.finding.as_ref()
    }

    /// Takes one recorded event (in the order recorded).
    pub fn add(&mut self, op: Op) {
        if self.finding.is_some() {
            return;
        }
        if !self.whole.is_empty() {
            self.all.push(op.clone());
        }
        if self.per_key.is_empty() || !op.is_client() {
            return;
        }
        // A completion belongs to the key its invocation named.
        let name = match op.kind {
            OpType::Invoke => {
                let name = key_name(op.key.as_ref());
                self.in_flight.insert(op.process, name.clone());
                name
            }
            _ => self
                .in_flight
                .remove(&op.process)
                .unwrap_or_else(|| key_name(op.key.as_ref())),
        };
        let seen = &mut self.keys_seen;
        let k = self.keys.entry(name.clone()).or_insert_with(|| {
            *seen += 1;
            KeyHistory {
                key: op.key.clone(),
                ops: Vec::new(),
                in_flight: 0,
                checked: 0,
                last_event: 0,
                life: Life::Live,
                print: Fingerprint::default(),
            }
        });
        match k.life {
            Life::Live => {}
            Life::Retired => {
                k.life = Life::Abandoned;
                self.keys_left += 1;
                // Its verdict no longer covers its events.
                for known in &mut lock(&self.shared).known {
                    known.remove(&name);
                }
                return;
            }
            Life::Abandoned => return,
        }
        if op.kind == OpType::Invoke {
            k.in_flight += 1;
        } else {
            k.in_flight = k.in_flight.saturating_sub(1);
        }
        k.last_event = op.time.unwrap_or(0);
        k.print.add(&op);
        k.ops.push(op);
    }

    /// Checks what changed since the last round: each live key with new
    /// events, and the whole prefix when due; retires quiet keys. `now`
    /// reads the history's clock (ns since the run's start). Returns the
    /// first violation, when this round found it.
    pub fn round(&mut self, now: &dyn Fn() -> u64) -> Option<&Finding> {
        let found = self.round_keys(now).is_some();
        let summary = self.summary();
        lock(&self.shared).summary = summary;
        self.finding.as_ref().filter(|_| found)
    }

    /// [`Online::round`] without publishing its summary.
    fn round_keys(&mut self, now: &dyn Fn() -> u64) -> Option<&Finding> {
        if self.finding.is_some() {
            return None;
        }
        let mut found = None;
        let names: Vec<String> = self
            .keys
            .iter()
            .filter(|(_, k)| k.life == Life::Live && k.checked < k.ops.len())
            .map(|(n, _)| n.clone())
            .collect();
        'keys: for name in names {
            if self.ending.load(Ordering::Relaxed) {
                break;
            }
            let Some(k) = self.keys.get_mut(&name) else {
                continue;
            };
            let oldest = k.ops[k.checked].time.unwrap_or(0);
            let len = k.ops.len();
            for (i, c) in self.per_key.iter().enumerate() {
                let v = judge(*c, &k.ops, &self.ctx);
                self.checks += 1;
                if let Some(known) = lock(&self.shared).known.get_mut(i) {
                    match &v {
                        Some((validity, _)) => known.insert(name.clone(), k.print, *validity),
                        None => known.remove(&name),
                    }
                }
                if v.as_ref().is_some_and(|v| v.0 == Validity::Invalid) {
                    let found_at = now();
                    // From the start: a key is small, and an earlier check that
                    // could not decide must not hide where it became invalid.
                    let at = first_invalid(*c, &k.ops, 0, &self.ctx);
                    let explanation = judge(*c, &k.ops[..=at], &self.ctx)
                        .map(|v| v.1)
                        .or(v.map(|v| v.1))
                        .unwrap_or_default();
                    found = Some(Finding {
                        checker: c.name().to_string(),
                        key: k.key.clone(),
                        explanation,
                        op: k.ops[at].clone(),
                        found_at,
                    });
                    break 'keys;
                }
            }
            k.checked = len;
            let lag = Duration::from_nanos(now().saturating_sub(oldest));
            self.note_lag(lag);
        }
        if found.is_none() {
            found = self.round_whole(now);
        }
        if found.is_some() {
            self.finding = found;
            // Nothing more is judged online: free what was kept.
            self.keys.clear();
            self.all = Vec::new();
            return self.finding.as_ref();
        }
        self.retire(now());
        None
    }

    /// The whole prefix, when [`WHOLE_EVERY`] has passed and it grew by a
    /// quarter since its last check.
    fn round_whole(&mut self, now: &dyn Fn() -> u64) -> Option<Finding> {
        let len = self.all.len();
        let grown = len > self.whole_checked && len >= self.whole_checked + self.whole_checked / 4;
        let due = self.whole_checked_at.map_or(true, |t| {
            now().saturating_sub(t) >= WHOLE_EVERY.as_nanos() as u64
        });
        if self.whole.is_empty() || !grown || !due {
            return None;
        }
        let oldest = self.all[self.whole_checked].time.unwrap_or(0);
        for c in &self.whole {
            let v = judge(*c, &self.all, &self.ctx);
            self.checks += 1;
            if v.as_ref().is_some_and(|v| v.0 == Validity::Invalid) {
                let found_at = now();
                let at = first_invalid(*c, &self.all, self.whole_checked, &self.ctx);
                let explanation = judge(*c, &self.all[..=at], &self.ctx)
                    .map(|v| v.1)
                    .or(v.map(|v| v.1))
                    .unwrap_or_default();
                return Some(Finding {
                    checker: c.name().to_string(),
                    key: None,
                    explanation,
                    op: self.all[at].clone(),
                    found_at,
                });
            }
        }
        self.whole_checked = len;
        self.whole_checked_at = Some(now());
        self.note_lag(Duration::from_nanos(now().saturating_sub(oldest)));
        None
    }

    fn note_lag(&mut self, lag: Duration) {
        self.lag_sum += lag;
        self.max_lag = self.max_lag.max(lag);
    }

    /// Drops the events of keys checked in full, with nothing in flight
    /// and no event for [`RETIRE_AFTER`].
    fn retire(&mut self, now: u64) {
        let quiet = RETIRE_AFTER.as_nanos() as u64;
        for k in self.keys.values_mut() {
            if k.life == Life::Live
                && k.in_flight == 0
                && k.checked == k.ops.len()
                && now.saturating_sub(k.last_event) >= quiet
            {
                k.life = Life::Retired;
                k.ops = Vec::new();
            }
        }
    }

    /// What was done so far.
    pub fn summary(&self) -> Summary {
        let rounds_with_lag = self.checks.max(1) as u32;
        Summary {
            plans: self.plans.clone(),
            keys: self.keys_seen,
            keys_left: self.keys_left,
            checks: self.checks,
            max_lag: self.max_lag,
            mean_lag: self.lag_sum / rounds_with_lag,
            finding: self.finding.clone(),
        }
    }

    /// Its latest per-key verdicts, by checker name, each with the
    /// fingerprint of the events it was given on: for the final check
    /// ([`CheckContext::known`]). Takes them: the online checker keeps none.
    pub fn take_known(&mut self) -> BTreeMap<String, Arc<KnownKeys>> {
        take_known(&self.per_key, &self.shared)
    }
}

/// What the online thread shares with the run: its latest summary and
/// per-key verdicts.
struct Shared {
    summary: Summary,
    known: Vec<KnownKeys>,
}

/// The lock on what is shared (a panic elsewhere leaves it usable: each
/// verdict is written whole under it).
fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Takes the shared per-key verdicts, by the name of `per_key`'s checkers.
fn take_known(
    per_key: &[&'static dyn Checker],
    shared: &Mutex<Shared>,
) -> BTreeMap<String, Arc<KnownKeys>> {
    let known = std::mem::take(&mut lock(shared).known);
    per_key
        .iter()
        .zip(known)
        .map(|(c, known)| (c.name().to_string(), Arc::new(known)))
        .collect()
}

/// `c`'s verdict on `ops` (its validity and sentence), `None` when it
/// cannot check them.
fn judge(c: &dyn Checker, ops: &[Op], ctx: &CheckContext) -> Option<(Validity, String)> {
    // The events keep the indices of the whole history, for the report.
    let h = History {
        ops: ops.to_vec(),
        source: None,
        lines: Vec::new(),
    };
    let v = c.check(&h, ctx).ok()?;
    let sentence = v.text.brief.first().cloned().unwrap_or(v.explanation);
    Some((v.validity, sentence))
}

/// The position of the event at which `ops` first became invalid for
/// `c`, knowing `ops[..from]` is not invalid and `ops` is: by bisection,
/// since a prefix of a valid prefix is never invalid (the module's
/// argument). A check that cannot decide counts as not invalid.
fn first_invalid(c: &dyn Checker, ops: &[Op], from: usize, ctx: &CheckContext) -> usize {
    // Invariant: ops[..lo] not invalid, ops[..=hi] invalid.
    let (mut lo, mut hi) = (from, ops.len() - 1);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match judge(c, &ops[..=mid], ctx) {
            Some((Validity::Invalid, _)) => hi = mid,
            _ => lo = mid + 1,
        }
    }
    hi
}

/// The online checker on its own thread.
pub struct OnlineThread {
    handle: std::thread::JoinHandle<()>,
    ending: Arc<AtomicBool>,
    per_key: Vec<&'static dyn Checker>,
    shared: Arc<Mutex<Shared>>,
}

/// What the online checker leaves when the run ends.
#[derive(Debug, Default)]
pub struct Finished {
    /// What it did.
    pub summary: Summary,
    /// Its per-key verdicts, for the final check ([`Online::take_known`]).
    pub known: BTreeMap<String, Arc<KnownKeys>>,
}

impl Finished {
    /// The keys the final check took from the online checker's verdicts
    /// and those it judged again, over every per-key checker (none
    /// before the final check consulted them).
    pub fn final_check(&self) -> (usize, usize) {
        self.known.values().fold((0, 0), |(taken, again), k| {
            (taken + k.taken(), again + k.judged_again())
        })
    }
}

impl OnlineThread {
    /// Ends the thread, once the recorder has finished (its sender
    /// dropped), and returns what it did as of its last round and its
    /// verdicts so far, without waiting for it: at low priority on a busy
    /// machine it may be slow to get there, and what it has not judged the
    /// final check judges. The thread stops after the key it is judging and
    /// frees its backlog on its own.
    pub fn finish(self) -> Finished {
        self.ending.store(true, Ordering::Relaxed);
        self.handle.thread().unpark();
        let known = take_known(&self.per_key, &self.shared);
        Finished {
            summary: lock(&self.shared).summary.clone(),
            known,
        }
    }
}

/// Runs `online` on a thread of its own at low priority: every
/// [`ROUND`] it takes the events that came on `events` and checks what
/// they changed; `found` is called once, with the first violation. Ends
/// when `events` is closed or [`OnlineThread::finish`] is called. `start`
/// is the history's clock.
pub fn spawn(
    mut online: Online,
    events: Receiver<Op>,
    start: Instant,
    found: Box<dyn Fn(&Finding) + Send>,
) -> std::io::Result<OnlineThread> {
    let ending = online.ending.clone();
    let (per_key, shared) = (online.per_key.clone(), online.shared.clone());
    let handle = std::thread::Builder::new()
        .name("online-check".into())
        .spawn(move || {
            lower_priority();
            let now = || start.elapsed().as_nanos() as u64;
            // Ends when the run does: `finish` takes what it shared.
            while !online.ending.load(Ordering::Relaxed) {
                let began = Instant::now();
                loop {
                    match events.try_recv() {
                        Ok(op) => online.add(op),
                        Err(TryRecvError::Empty) => break,
                        // The history is whole: the final check takes over.
                        Err(TryRecvError::Disconnected) => return,
                    }
                }
                if let Some(f) = online.round(&now) {
                    found(f);
                }
                // Woken early when the run ends.
                std::thread::park_timeout(ROUND.saturating_sub(began.elapsed()));
            }
        })?;
    Ok(OnlineThread {
        handle,
        ending,
        per_key,
        shared,
    })
}

/// Gives this thread a lower scheduling priority (nice 10: about a tenth
/// of a core's share against the workers when the machine is busy), so
/// the checks never slow the workload much. Linux gives each thread its
/// own nice value.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority on this thread's own id changes only its nice
    // value; failure (no permission) leaves it as it was.
    unsafe {
        let tid = libc::gettid();
        if libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 10) != 0 {
            tracing::debug!("cannot lower the online checker's priority");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn op(index: u64, process: u64, kind: OpType, f: &str, value: Value, key: u64) -> Op {
        let mut o = Op::new(index, Process::Client(process), kind, f, value);
        o.key = Some(json!(key));
        o.time = Some(index * 1_000_000);
        o
    }

    fn ctx() -> CheckContext {
        CheckContext::new(Some("cas-register".into()), 1 << 30)
    }

    /// Key 1: write 1, write 2, then a read of 1 after both: stale.
    /// Key 2: a write and a read of it, with a read in flight at the end.
    fn events() -> Vec<Op> {
        use OpType::*;
        vec![
            op(0, 0, Invoke, "write", json!(1), 1),
            op(1, 1, Invoke, "write", json!(5), 2),
            op(2, 0, Ok, "write", json!(1), 1),
            op(3, 1, Ok, "write", json!(5), 2),
            op(4, 0, Invoke, "write", json!(2), 1),
            op(5, 0, Ok, "write", json!(2), 1),
            op(6, 1, Invoke, "read", Value::Null, 2),
            op(7, 1, Ok, "read", json!(5), 2),
            op(8, 0, Invoke, "read", Value::Null, 1),
            op(9, 1, Invoke, "read", Value::Null, 2),
            op(10, 0, Ok, "read", json!(1), 1),
        ]
    }

    #[test]
    fn a_stale_read_is_found_at_its_completion_with_its_key_and_lag() {
        let mut online = Online::new(&["linearizable".into(), "stats".into()], &ctx());
        let now = || 30_000_000u64;
        let evs = events();
        // Before the read completes the prefix is linearizable.
        for o in evs[..10].iter().cloned() {
            online.add(o);
        }
        assert!(online.round(&now).is_none());
        online.add(evs[10].clone());
        let f = online
            .round(&now)
            .cloned()
            .expect("the stale read is proven");
        assert_eq!(f.checker, "linearizable");
        assert_eq!(f.key, Some(json!(1)));
        assert_eq!(f.op.index, 10, "the read's completion");
        assert_eq!(f.lag(), Duration::from_millis(20));
        assert!(
            f.explanation.contains("read returned 1"),
            "{}",
            f.explanation
        );
        let s = online.summary();
        assert_eq!(
            s.plans,
            vec![
                ("linearizable".to_string(), "per key"),
                ("stats".to_string(), "at the end only")
            ]
        );
        assert_eq!(s.to_json()["first_invalid"]["op"]["index"], json!(10));
    }

    #[test]
    fn the_violating_op_is_found_by_bisection_when_checked_late() {
        let mut online = Online::new(&["linearizable".into()], &ctx());
        for o in events() {
            online.add(o);
        }
        let f = online.round(&|| 10_000_000).cloned().expect("invalid");
        assert_eq!(f.op.index, 10);
        assert_eq!(f.key, Some(json!(1)));
    }

    #[test]
    fn a_valid_run_finds_nothing_and_keys_checked_are_not_checked_again() {
        let mut online = Online::new(&["linearizable".into()], &ctx());
        // Key 2 only: valid, with a read in flight at the cut.
        for o in events().into_iter().filter(|o| o.key == Some(json!(2))) {
            online.add(o);
        }
        assert!(online.round(&|| 10_000_000).is_none());
        let checks = online.summary().checks;
        assert_eq!(checks, 1);
        assert!(online.round(&|| 20_000_000).is_none());
        assert_eq!(online.summary().checks, checks, "nothing new: no check");
        assert_eq!(online.summary().finding, None);
    }

    #[test]
    fn a_quiet_key_is_retired_and_a_late_event_leaves_it_to_the_final_check() {
        let mut online = Online::new(&["linearizable".into()], &ctx());
        use OpType::*;
        for o in [
            op(0, 0, Invoke, "write", json!(1), 7),
            op(1, 0, Ok, "write", json!(1), 7),
        ] {
            online.add(o);
        }
        let later = RETIRE_AFTER.as_nanos() as u64 + 2_000_000;
        assert!(online.round(&|| later).is_none());
        // A read of 0 would be stale after the write; but the write was
        // dropped with the key, so the read alone must not be judged.
        online.add(op(2, 1, Invoke, "read", Value::Null, 7));
        online.add(op(3, 1, Ok, "read", json!(0), 7));
        assert!(online.round(&|| later + 1).is_none());
        assert_eq!(online.summary().keys_left, 1);
        // Its verdict no longer covers its events: the final check judges it.
        assert!(online.take_known()["linearizable"].is_empty());
    }

    /// `v` without the times it took (`elapsed_ms`), which vary.
    fn without_times(v: &mut Value) {
        match v {
            Value::Object(o) => {
                o.remove("elapsed_ms");
                o.values_mut().for_each(without_times);
            }
            Value::Array(a) => a.iter_mut().for_each(without_times),
            _ => {}
        }
    }

    /// The final check of `events` with the online checker's verdicts
    /// and without: both verdicts with their sentences, and the keys taken
    /// and judged again.
    fn final_check(
        online: &mut Online,
        events: &[Op],
    ) -> ([(Validity, String); 2], (usize, usize)) {
        let h = History::new(events.to_vec());
        let names = ["linearizable".to_string()];
        let known = online.take_known();
        let with = CheckContext {
            known: known.clone(),
            ..ctx()
        };
        let verdict = |ctx: &CheckContext| {
            let (v, results, _) = crate::check::registry::check_all(&h, &names, ctx);
            let mut why = results["checkers"]["linearizable"]["failures"].clone();
            without_times(&mut why);
            (v, why.to_string())
        };
        let both = [verdict(&with), verdict(&ctx())];
        let k = &known["linearizable"];
        (both, (k.taken(), k.judged_again()))
    }

    #[test]
    fn a_key_whose_op_completed_after_the_last_round_is_checked_again() {
        use OpType::*;
        let mut online = Online::new(&["linearizable".into()], &ctx());
        // Key 1: a write, then a read in flight at the round: valid with
        // the read crashed. It completes after the last round, returning
        // a value nothing wrote. Key 2: judged whole, nothing after.
        let events = vec![
            op(0, 0, Invoke, "write", json!(1), 1),
            op(1, 0, Ok, "write", json!(1), 1),
            op(2, 1, Invoke, "write", json!(4), 2),
            op(3, 1, Ok, "write", json!(4), 2),
            op(4, 0, Invoke, "read", Value::Null, 1),
        ];
        for o in events.iter().cloned() {
            online.add(o);
        }
        assert!(online.round(&|| 5_000_000).is_none());
        let mut events = events;
        events.push(op(5, 0, Ok, "read", json!(3), 1));
        online.add(events[5].clone());
        assert_eq!(
            lock(&online.shared).known[0].len(),
            2,
            "both keys were judged"
        );
        let ([with, scratch], counts) = final_check(&mut online, &events);
        assert_eq!(counts, (1, 1), "key 2 taken, key 1 judged again");
        assert_eq!(with.0, Validity::Invalid, "the read of 3 is judged");
        assert!(with.1.contains("read returned 3"), "{}", with.1);
        assert_eq!(with, scratch);
    }

    #[test]
    fn the_final_check_takes_only_keys_judged_on_exactly_their_events() {
        use OpType::*;
        let mut online = Online::new(&["linearizable".into()], &ctx());
        let events = events();
        // Key 2's events all came before the round; key 1's stale read
        // came after it.
        for o in events[..10].iter().cloned() {
            online.add(o);
        }
        assert!(online.round(&|| 10_000_000).is_none());
        online.add(events[10].clone());
        let known = online.take_known();
        let with = CheckContext {
            known: known.clone(),
            ..ctx()
        };
        let h = History::new(events.clone());
        let c = by_name("linearizable").expect("registered");
        let v = c.check(&h, &with).expect("checkable");
        assert_eq!(v.validity, Validity::Invalid);
        assert!(
            v.explanation.contains("read returned 1"),
            "{}",
            v.explanation
        );
        let k = &known["linearizable"];
        assert_eq!(
            (k.taken(), k.judged_again()),
            (1, 1),
            "key 2 taken, key 1 judged"
        );
        // Without the online verdicts (`--no-online`), the same verdict.
        let scratch = c.check(&h, &ctx()).expect("checkable");
        assert_eq!(
            (scratch.validity, &scratch.explanation),
            (v.validity, &v.explanation)
        );
        // A read completing on key 2 after the round instead.
        let mut online = Online::new(&["linearizable".into()], &ctx());
        for o in events[..10].iter().cloned() {
            online.add(o);
        }
        assert!(online.round(&|| 10_000_000).is_none());
        let mut later = events[..10].to_vec();
        later.push(op(10, 1, Ok, "read", json!(5), 2));
        let known = online.take_known();
        let with = CheckContext {
            known: known.clone(),
            ..ctx()
        };
        let v = c.check(&History::new(later), &with).expect("checkable");
        assert_eq!(v.validity, Validity::Valid);
        // Key 1's read, in flight at the round, never completed: the same
        // events, taken. Key 2's completed: judged again.
        let k = &known["linearizable"];
        assert_eq!((k.taken(), k.judged_again()), (1, 1));
    }

    fn txn(index: u64, process: u64, kind: OpType, value: Value) -> Op {
        let mut o = Op::new(index, Process::Client(process), kind, "txn", value);
        o.time = Some(index * 1_000_000);
        o
    }

    #[test]
    fn list_append_is_checked_on_whole_prefixes_and_an_aborted_read_is_found() {
        use OpType::*;
        let ctx = CheckContext::new(Some("list-append".into()), 1 << 30);
        let mut online = Online::new(&["txn".into()], &ctx);
        assert_eq!(
            online.summary().plans,
            vec![("txn".to_string(), "whole prefix")]
        );
        let events = [
            txn(0, 0, Invoke, json!([["append", 1, 1]])),
            txn(1, 0, Fail, json!([["append", 1, 1]])),
            txn(2, 1, Invoke, json!([["r", 1, null]])),
            txn(3, 1, Ok, json!([["r", 1, [1]]])),
        ];
        for o in events[..3].iter().cloned() {
            online.add(o);
        }
        assert!(online.round(&|| 3_000_000).is_none(), "nothing read yet");
        online.add(events[3].clone());
        // Not a second after the last whole check: not due yet.
        assert!(online.round(&|| 4_000_000).is_none());
        let f = online
            .round(&|| WHOLE_EVERY.as_nanos() as u64 + 3_000_000)
            .cloned()
            .expect("the read of a failed append is proven");
        assert_eq!(f.checker, "txn");
        assert_eq!(f.key, None);
        assert_eq!(f.op.index, 3, "the read's completion");
        assert!(f.explanation.contains("G1a"), "{}", f.explanation);
    }

    #[test]
    fn checkers_that_a_prefix_can_fool_are_left_to_the_end() {
        let online = Online::new(&["set".into(), "bank".into()], &ctx());
        assert!(!online.checks_anything());
        // rw-register's inferred version orders could change with later
        // writes; linearizability unsplit is judged on whole prefixes.
        let rw = CheckContext::new(Some("rw-register".into()), 1 << 30);
        assert!(!Online::new(&["txn".into()], &rw).checks_anything());
        let unsplit = CheckContext {
            split_by_key: false,
            ..ctx()
        };
        let online = Online::new(&["linearizable".into()], &unsplit);
        assert_eq!(
            online.summary().plans,
            vec![("linearizable".to_string(), "whole prefix")]
        );
    }
}
