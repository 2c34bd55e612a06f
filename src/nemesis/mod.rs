//! Nemeses: the faults faultline injects into a cluster, and their undoing.
//!
//! The door is the [`Nemesis`] trait: `setup`, `invoke(fault)` which answers
//! with what was done (which nodes were cut off, killed, paused), and `heal`,
//! which lifts every fault of its kind and is safe to call at any time, more
//! than once, and from a fresh process that never injected anything.
//!
//! What lives here:
//! - [`Fault`]: one fault operation, convertible to and from the `f`/`value`
//!   of a history op (`start-partition`, `kill`, `pause`, `start-packet`,
//!   `bump-clock`, ...), with [`Targets`] naming which nodes it hits.
//! - The implementations: [`net::Partitioner`] and [`net::PacketNemesis`]
//!   (iptables rules in chains of our own, never touching the controller's
//!   address), [`process::DbNemesis`] (kill/start and pause/resume through
//!   the [`Db`]), [`clock::ClockNemesis`] (clock faults on real hosts; refused
//!   on the local cluster, which has one real-time clock for all nodes).
//! - [`Nemeses`]: all of them behind one `Nemesis`, sharing a seeded RNG and
//!   the [`record`] of active faults, so `faultline heal` can undo what a
//!   killed controller left behind.
//! - [`NemesisClient`]: the runner's door: it performs nemesis operations
//!   the generator routes to the nemesis, so they are recorded in the
//!   history like client operations (process `nemesis`, type `info`).
//!   [`invocation_op`] and [`completion_op`] build the same ops for code
//!   that records outside the runner (the final heal).
//! - [`schedule::Schedule`]: the generator of start/stop pairs behind
//!   `--nemesis partition,kill --nemesis-interval 10`, and [`config`]: the
//!   `nemeses/*.toml` files that define each fault family.
//!
//! All calls block on SSH; async callers use `spawn_blocking` (as
//! [`NemesisClient`] does).

pub mod clock;
pub mod config;
#[cfg(test)]
mod fake_tests;
pub mod grudge;
pub mod net;
#[cfg(feature = "nfq")]
pub mod nfq_delay;
pub mod process;
pub mod record;
pub mod schedule;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rand::seq::{IndexedRandom, SliceRandom};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use crate::client::{Client, ClientError, Completion, Invocation, Status};
use crate::cluster::{Cluster, ClusterKind, Node};
use crate::control::ControlError;
use crate::db::{Db, DbError};
use crate::history::{Op, OpType, Process};

pub use record::{ActiveFaults, RecordFile};
pub use schedule::Schedule;

/// Which nodes a fault hits. Resolved to concrete nodes when the fault is
/// injected, with the nemesis's seeded RNG (and, for `Primaries`, by asking
/// the database who leads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Targets {
    /// One node, chosen at random.
    One,
    /// A random minority: one fewer than a majority (2 of 5), at least one.
    Minority,
    /// A random majority (3 of 5).
    Majority,
    /// Every node.
    All,
    /// The nodes the database says lead ([`Db::primaries`]).
    Primaries,
    /// These nodes, by name.
    Nodes(Vec<String>),
}

impl Targets {
    /// The names accepted in history values and nemesis files.
    pub const NAMES: &'static [&'static str] = &["one", "minority", "majority", "all", "primaries"];

    /// Parses a name (`one`, `minority`, `majority`, `all`, `primaries`).
    pub fn parse(s: &str) -> Result<Targets, String> {
        match s {
            "one" => Ok(Targets::One),
            "minority" => Ok(Targets::Minority),
            "majority" => Ok(Targets::Majority),
            "all" => Ok(Targets::All),
            "primaries" | "primary" | "leader" => Ok(Targets::Primaries),
            other => Err(format!(
                "unknown targets {other:?} (expected one of {}, or a list of node names)",
                Targets::NAMES.join(", ")
            )),
        }
    }

    /// Reads targets from a history value: a name or a list of node names.
    pub fn from_value(v: &Value) -> Result<Targets, String> {
        match v {
            Value::String(s) => Targets::parse(s),
            Value::Array(items) => items
                .iter()
                .map(|i| {
                    i.as_str()
                        .map(String::from)
                        .ok_or_else(|| format!("node names must be strings, got {i}"))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Targets::Nodes),
            Value::Null => Ok(Targets::One),
            other => Err(format!(
                "targets must be a name or a list of nodes, got {other}"
            )),
        }
    }

    /// The history value: the name, or the list of nodes.
    pub fn to_value(&self) -> Value {
        match self {
            Targets::One => json!("one"),
            Targets::Minority => json!("minority"),
            Targets::Majority => json!("majority"),
            Targets::All => json!("all"),
            Targets::Primaries => json!("primaries"),
            Targets::Nodes(n) => json!(n),
        }
    }
}

/// The shape of a network partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionSpec {
    /// One random node cut off from all others.
    One,
    /// The leader(s) cut off from the rest.
    Primaries,
    /// The node list cut in two at the middle, in node order: a minority
    /// and a majority.
    Halves,
    /// The same after shuffling the nodes (Jepsen's `majority`).
    RandomHalves,
    /// Each node sees a majority, no two nodes the same one.
    MajoritiesRing,
    /// Two halves with one node that sees both.
    Bridge,
    /// These components, by node name; nodes in none are left alone.
    Components(Vec<Vec<String>>),
}

impl PartitionSpec {
    /// The names accepted in history values and nemesis files.
    pub const NAMES: &'static [&'static str] = &[
        "one",
        "primaries",
        "halves",
        "random-halves",
        "majority",
        "majorities-ring",
        "bridge",
    ];

    /// Parses a shape name; `majority` is an alias of `random-halves`.
    pub fn parse(s: &str) -> Result<PartitionSpec, String> {
        match s {
            "one" => Ok(PartitionSpec::One),
            "primaries" | "primary" | "leader" => Ok(PartitionSpec::Primaries),
            "halves" => Ok(PartitionSpec::Halves),
            "random-halves" | "majority" => Ok(PartitionSpec::RandomHalves),
            "majorities-ring" => Ok(PartitionSpec::MajoritiesRing),
            "bridge" => Ok(PartitionSpec::Bridge),
            other => Err(format!(
                "unknown partition {other:?} (expected one of {}, or a list of components)",
                PartitionSpec::NAMES.join(", ")
            )),
        }
    }

    /// Reads a shape from a history value: a name or a list of lists of
    /// node names.
    pub fn from_value(v: &Value) -> Result<PartitionSpec, String> {
        match v {
            Value::String(s) => PartitionSpec::parse(s),
            Value::Array(comps) => comps
                .iter()
                .map(|c| match Targets::from_value(c) {
                    Ok(Targets::Nodes(n)) => Ok(n),
                    _ => Err(format!("a component must be a list of node names, got {c}")),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(PartitionSpec::Components),
            Value::Null => Ok(PartitionSpec::RandomHalves),
            other => Err(format!(
                "a partition must be a name or a list of components, got {other}"
            )),
        }
    }

    /// The history value.
    pub fn to_value(&self) -> Value {
        match self {
            PartitionSpec::One => json!("one"),
            PartitionSpec::Primaries => json!("primaries"),
            PartitionSpec::Halves => json!("halves"),
            PartitionSpec::RandomHalves => json!("random-halves"),
            PartitionSpec::MajoritiesRing => json!("majorities-ring"),
            PartitionSpec::Bridge => json!("bridge"),
            PartitionSpec::Components(c) => json!(c),
        }
    }
}

/// What a packet fault does to traffic between nodes.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PacketBehavior {
    /// Drop this fraction (0 < p <= 1) of the packets a target receives
    /// from its peers.
    pub loss: Option<f64>,
    /// Hold every packet a target sends to its peers this long.
    pub delay_ms: Option<u64>,
}

/// One fault operation: what a nemesis op in the history asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// `start-partition`: cut the network into this shape.
    StartPartition(PartitionSpec),
    /// `stop-partition`: lift every partition rule.
    StopPartition,
    /// `kill`: SIGKILL the database on these nodes.
    Kill(Targets),
    /// `start`: restart the database where it was killed (or, with no
    /// record of kills, wherever it is not running).
    Start,
    /// `pause`: SIGSTOP the database on these nodes.
    Pause(Targets),
    /// `resume`: SIGCONT the database everywhere.
    Resume,
    /// `start-packet`: degrade traffic on these nodes.
    StartPacket {
        /// Which nodes.
        targets: Targets,
        /// Loss and/or delay.
        behavior: PacketBehavior,
    },
    /// `stop-packet`: remove every packet rule and delay program.
    StopPacket,
    /// `bump-clock`: move these nodes' clocks by `delta_ms` (may be < 0).
    BumpClock {
        /// Which nodes.
        targets: Targets,
        /// The jump, in milliseconds.
        delta_ms: i64,
    },
    /// `strobe-clock`: flip these nodes' clocks back and forth by
    /// `delta_ms` every `period_ms` for `duration_ms`.
    StrobeClock {
        /// Which nodes.
        targets: Targets,
        /// The size of each flip, in milliseconds.
        delta_ms: i64,
        /// Time between flips.
        period_ms: u64,
        /// How long to keep flipping.
        duration_ms: u64,
    },
    /// `reset-clock`: set every clock faulted back to the controller's time.
    ResetClock,
    /// `heal`: lift every fault of every kind.
    HealAll,
}

/// The families of faults: what `--nemesis` names and what a nemesis file's
/// `fault` field says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// Network partitions.
    Partition,
    /// Database kills and restarts.
    Kill,
    /// Database pauses and resumes.
    Pause,
    /// Packet loss and delay.
    Packet,
    /// Clock jumps.
    Clock,
}

impl Family {
    /// Every family, in a fixed order.
    pub const ALL: [Family; 5] = [
        Family::Partition,
        Family::Kill,
        Family::Pause,
        Family::Packet,
        Family::Clock,
    ];

    /// The family's name (`partition`, `kill`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Family::Partition => "partition",
            Family::Kill => "kill",
            Family::Pause => "pause",
            Family::Packet => "packet",
            Family::Clock => "clock",
        }
    }

    /// Parses a family name.
    pub fn parse(s: &str) -> Result<Family, String> {
        Family::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown fault {s:?} (expected one of {})",
                    Family::ALL.map(|f| f.name()).join(", ")
                )
            })
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

fn get_i64(v: &Value, key: &str) -> Result<Option<i64>, String> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => x
            .as_i64()
            .map(Some)
            .ok_or_else(|| format!("{key} must be an integer, got {x}")),
    }
}

fn get_u64(v: &Value, key: &str) -> Result<Option<u64>, String> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => x
            .as_u64()
            .map(Some)
            .ok_or_else(|| format!("{key} must be a non-negative integer, got {x}")),
    }
}

fn targets_of(v: &Value) -> Result<Targets, String> {
    match v.get("targets") {
        Some(t) => Targets::from_value(t),
        None => Ok(Targets::All),
    }
}

impl Fault {
    /// The op's `f`.
    pub fn f(&self) -> &'static str {
        match self {
            Fault::StartPartition(_) => "start-partition",
            Fault::StopPartition => "stop-partition",
            Fault::Kill(_) => "kill",
            Fault::Start => "start",
            Fault::Pause(_) => "pause",
            Fault::Resume => "resume",
            Fault::StartPacket { .. } => "start-packet",
            Fault::StopPacket => "stop-packet",
            Fault::BumpClock { .. } => "bump-clock",
            Fault::StrobeClock { .. } => "strobe-clock",
            Fault::ResetClock => "reset-clock",
            Fault::HealAll => "heal",
        }
    }

    /// The family the fault belongs to; `None` for [`Fault::HealAll`].
    pub fn family(&self) -> Option<Family> {
        match self {
            Fault::StartPartition(_) | Fault::StopPartition => Some(Family::Partition),
            Fault::Kill(_) | Fault::Start => Some(Family::Kill),
            Fault::Pause(_) | Fault::Resume => Some(Family::Pause),
            Fault::StartPacket { .. } | Fault::StopPacket => Some(Family::Packet),
            Fault::BumpClock { .. } | Fault::StrobeClock { .. } | Fault::ResetClock => {
                Some(Family::Clock)
            }
            Fault::HealAll => None,
        }
    }

    /// The op's invocation `value`.
    pub fn value(&self) -> Value {
        match self {
            Fault::StartPartition(p) => p.to_value(),
            Fault::Kill(t) | Fault::Pause(t) => t.to_value(),
            Fault::StartPacket { targets, behavior } => {
                let mut v = json!({ "targets": targets.to_value() });
                if let Some(l) = behavior.loss {
                    v["loss"] = json!(l);
                }
                if let Some(d) = behavior.delay_ms {
                    v["delay-ms"] = json!(d);
                }
                v
            }
            Fault::BumpClock { targets, delta_ms } => {
                json!({ "targets": targets.to_value(), "delta-ms": delta_ms })
            }
            Fault::StrobeClock {
                targets,
                delta_ms,
                period_ms,
                duration_ms,
            } => json!({
                "targets": targets.to_value(),
                "delta-ms": delta_ms,
                "period-ms": period_ms,
                "duration-ms": duration_ms,
            }),
            Fault::StopPartition
            | Fault::Start
            | Fault::Resume
            | Fault::StopPacket
            | Fault::ResetClock
            | Fault::HealAll => Value::Null,
        }
    }

    /// Reads a fault from a history op's `f` and `value`.
    pub fn from_op(f: &str, value: &Value) -> Result<Fault, String> {
        let fault = match f {
            "start-partition" => Fault::StartPartition(PartitionSpec::from_value(value)?),
            "stop-partition" => Fault::StopPartition,
            "kill" => Fault::Kill(Targets::from_value(value)?),
            "start" => Fault::Start,
            "pause" => Fault::Pause(Targets::from_value(value)?),
            "resume" => Fault::Resume,
            "start-packet" => {
                let behavior = PacketBehavior {
                    loss: match value.get("loss") {
                        None | Some(Value::Null) => None,
                        Some(x) => Some(
                            x.as_f64()
                                .ok_or_else(|| format!("loss must be a number, got {x}"))?,
                        ),
                    },
                    delay_ms: get_u64(value, "delay-ms")?,
                };
                validate_packet(&behavior)?;
                Fault::StartPacket {
                    targets: targets_of(value)?,
                    behavior,
                }
            }
            "stop-packet" => Fault::StopPacket,
            "bump-clock" => Fault::BumpClock {
                targets: targets_of(value)?,
                delta_ms: get_i64(value, "delta-ms")?.ok_or("bump-clock needs delta-ms")?,
            },
            "strobe-clock" => Fault::StrobeClock {
                targets: targets_of(value)?,
                delta_ms: get_i64(value, "delta-ms")?.ok_or("strobe-clock needs delta-ms")?,
                period_ms: get_u64(value, "period-ms")?.unwrap_or(10).max(1),
                duration_ms: get_u64(value, "duration-ms")?.unwrap_or(1000),
            },
            "reset-clock" => Fault::ResetClock,
            "heal" => Fault::HealAll,
            other => return Err(format!("unknown nemesis operation {other:?}")),
        };
        Ok(fault)
    }
}

/// Checks a packet behavior: something to do, and a loss in (0, 1].
pub fn validate_packet(b: &PacketBehavior) -> Result<(), String> {
    if b.loss.is_none() && b.delay_ms.is_none() {
        return Err("a packet fault needs loss and/or delay-ms".into());
    }
    if let Some(l) = b.loss {
        if !(l > 0.0 && l <= 1.0) {
            return Err(format!("loss must be in (0, 1], got {l}"));
        }
    }
    if b.delay_ms == Some(0) {
        return Err("delay-ms must be positive".into());
    }
    Ok(())
}

/// Why a fault could not be injected or healed. Every variant names the
/// node(s) and, for remote failures, the command.
#[derive(Debug, thiserror::Error)]
pub enum NemesisError {
    /// A remote command failed.
    #[error(transparent)]
    Control(#[from] ControlError),
    /// A database step failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The fault cannot be done on these nodes (e.g. clock skew on the local
    /// cluster); nothing was changed.
    #[error("{fault} refused: {reason}")]
    Refused {
        /// The op's `f`.
        fault: String,
        /// Why.
        reason: String,
    },
    /// A bad request (unknown node, no leader, bad value).
    #[error("{0}")]
    Invalid(String),
    /// The record of active faults could not be read or written.
    #[error("nemesis record {path}: {reason}")]
    Record {
        /// The record file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// Several steps failed (e.g. heal on several nodes).
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Many(Vec<NemesisError>),
}

impl NemesisError {
    pub(crate) fn from_many(mut errors: Vec<NemesisError>) -> Result<(), NemesisError> {
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(NemesisError::Many(errors)),
        }
    }
}

/// A fault injector. Methods take `&self` so one nemesis can be shared
/// between the runner's nemesis worker and the code that heals on Ctrl-C.
pub trait Nemesis: Send + Sync + fmt::Debug {
    /// Its name, for logs.
    fn name(&self) -> &'static str;

    /// Whether this nemesis performs `fault`.
    fn handles(&self, fault: &Fault) -> bool;

    /// Prepares the nodes (e.g. clears leftovers of an earlier run). Called
    /// once before the test; the default does nothing.
    fn setup(&self) -> Result<(), NemesisError> {
        Ok(())
    }

    /// Injects `fault` and answers with what was done: the nodes hit, the
    /// grudge. On error, as much as was done stays recorded, so `heal` can
    /// undo it.
    fn invoke(&self, fault: &Fault) -> Result<Value, NemesisError>;

    /// Lifts every fault of this nemesis's kind, whether or not it injected
    /// it: safe at any time, twice, or from a fresh process.
    fn heal(&self) -> Result<Value, NemesisError>;
}

/// What every nemesis shares: the cluster, the database, the seeded RNG
/// for target choice, and the record of active faults.
#[derive(Debug)]
pub struct Env {
    cluster: Cluster,
    db: Option<Arc<dyn Db>>,
    rng: Mutex<ChaCha8Rng>,
    record: Option<RecordFile>,
    /// The active faults of this process, kept when there is no record
    /// file so a `start` still knows what this process killed.
    memory: Mutex<ActiveFaults>,
}

impl Env {
    /// An environment for `cluster`, with `db` for kills and pauses (and
    /// leader lookups), target choices drawn from `seed`, and the active
    /// faults kept in `record` (a JSON file) when given.
    pub fn new(
        cluster: Cluster,
        db: Option<Arc<dyn Db>>,
        seed: u64,
        record: Option<PathBuf>,
    ) -> Env {
        Env {
            cluster,
            db,
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed)),
            record: record.map(RecordFile::new),
            memory: Mutex::new(ActiveFaults::default()),
        }
    }

    /// The cluster.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// The database, if one was given.
    pub fn db(&self) -> Option<&Arc<dyn Db>> {
        self.db.as_ref()
    }

    /// The record file, if any.
    pub fn record(&self) -> Option<&RecordFile> {
        self.record.as_ref()
    }

    pub(crate) fn rng(&self) -> MutexGuard<'_, ChaCha8Rng> {
        // A panic while holding the RNG leaves it usable: it is only numbers.
        match self.rng.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn memory(&self) -> MutexGuard<'_, ActiveFaults> {
        match self.memory.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// The active faults: the record file's when there is one (it may hold
    /// another process's faults), else those of this process.
    pub fn active(&self) -> Result<ActiveFaults, NemesisError> {
        match &self.record {
            Some(r) => r.load(),
            None => Ok(self.memory().clone()),
        }
    }

    /// Changes the record (no-op without one). Called *before* a fault is
    /// injected, so a controller killed halfway leaves the intent on disk.
    pub(crate) fn update(&self, f: impl FnOnce(&mut ActiveFaults)) -> Result<(), NemesisError> {
        match &self.record {
            Some(r) => r.update(f),
            None => {
                f(&mut self.memory());
                Ok(())
            }
        }
    }

    fn names(&self) -> Vec<String> {
        self.cluster
            .nodes()
            .iter()
            .map(|n| n.name().to_string())
            .collect()
    }

    pub(crate) fn node(&self, name: &str) -> Result<&Node, NemesisError> {
        self.cluster.node(name).ok_or_else(|| {
            NemesisError::Invalid(format!(
                "no node named {name:?} (nodes: {})",
                self.names().join(", ")
            ))
        })
    }

    /// The current leaders, by name; an error when none is known.
    pub(crate) fn primaries(&self) -> Result<Vec<String>, NemesisError> {
        let db = self.db.as_ref().ok_or_else(|| {
            NemesisError::Invalid("targeting primaries needs a database to ask".into())
        })?;
        let p = db.primaries(self.cluster.nodes())?;
        if p.is_empty() {
            return Err(NemesisError::Invalid(format!(
                "{} reports no primary on any node",
                db.name()
            )));
        }
        Ok(p)
    }

    /// Resolves targets to node names, in cluster order.
    pub fn resolve(&self, targets: &Targets) -> Result<Vec<String>, NemesisError> {
        let all = self.names();
        let n = all.len();
        let chosen: Vec<String> = match targets {
            Targets::All => all.clone(),
            Targets::One => all.choose(&mut *self.rng()).cloned().into_iter().collect(),
            Targets::Minority | Targets::Majority => {
                let k = match targets {
                    Targets::Minority => (grudge::majority(n) - 1).max(1),
                    _ => grudge::majority(n),
                };
                let mut shuffled = all.clone();
                shuffled.shuffle(&mut *self.rng());
                shuffled.truncate(k.min(n));
                shuffled
            }
            Targets::Primaries => self.primaries()?,
            Targets::Nodes(names) => {
                for name in names {
                    self.node(name)?;
                }
                names.clone()
            }
        };
        if chosen.is_empty() {
            return Err(NemesisError::Invalid("the cluster has no nodes".into()));
        }
        Ok(all.into_iter().filter(|n| chosen.contains(n)).collect())
    }
}

/// The record file faultline keeps for `cluster` when nothing else is
/// given: `nemesis.json` in the local cluster's state directory; none for
/// real hosts (pass a path in the run directory instead).
pub fn default_record_path(cluster: &Cluster) -> Option<PathBuf> {
    match cluster.kind() {
        ClusterKind::Local { state_dir, .. } => Some(state_dir.join("nemesis.json")),
        ClusterKind::Hosts => None,
    }
}

/// How [`Nemeses`] chooses and remembers.
#[derive(Debug, Clone, Default)]
pub struct NemesisOptions {
    /// Seeds the RNG that picks target nodes.
    pub seed: u64,
    /// The record of active faults (see [`default_record_path`]); none
    /// means heal relies on its sweep alone.
    pub record: Option<PathBuf>,
    /// The faultline binary that runs the NFQUEUE delay program on nodes
    /// without netem; default: this process's executable.
    pub helper: Option<PathBuf>,
}

/// Every nemesis behind one: dispatches each fault to the one that handles
/// it, and heals them all. This is what a runner holds.
#[derive(Debug)]
pub struct Nemeses {
    env: Arc<Env>,
    parts: Vec<Box<dyn Nemesis>>,
    /// Held through every invoke and heal: a heal on Ctrl-C waits for the
    /// fault in flight, so it cannot be undone and then re-applied.
    busy: Mutex<()>,
}

impl Nemeses {
    /// Partitions, packet faults, kills and pauses (through `db`, when
    /// given) and clock faults on `cluster`.
    pub fn new(cluster: Cluster, db: Option<Arc<dyn Db>>, opts: NemesisOptions) -> Nemeses {
        let env = Arc::new(Env::new(cluster, db, opts.seed, opts.record));
        let mut packet = net::PacketNemesis::new(env.clone());
        if let Some(h) = opts.helper {
            packet = packet.with_helper(h);
        }
        let parts: Vec<Box<dyn Nemesis>> = vec![
            Box::new(net::Partitioner::new(env.clone())),
            Box::new(packet),
            Box::new(process::DbNemesis::new(env.clone())),
            Box::new(clock::ClockNemesis::new(env.clone())),
        ];
        Nemeses {
            env,
            parts,
            busy: Mutex::new(()),
        }
    }

    /// The shared environment.
    pub fn env(&self) -> &Arc<Env> {
        &self.env
    }

    /// The record file in use, if any.
    pub fn record_path(&self) -> Option<&Path> {
        self.env.record.as_ref().map(|r| r.path())
    }

    fn lock(&self) -> MutexGuard<'_, ()> {
        match self.busy.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn heal_locked(&self) -> Result<Value, NemesisError> {
        let mut done = serde_json::Map::new();
        let mut errors = Vec::new();
        for p in &self.parts {
            match p.heal() {
                Ok(v) => {
                    done.insert(p.name().to_string(), v);
                }
                Err(e) => {
                    tracing::warn!(nemesis = p.name(), "heal failed: {e}");
                    errors.push(e);
                }
            }
        }
        NemesisError::from_many(errors)?;
        if let Some(r) = &self.env.record {
            r.remove()?;
        }
        Ok(Value::Object(done))
    }
}

impl Nemesis for Nemeses {
    fn name(&self) -> &'static str {
        "all"
    }

    fn handles(&self, fault: &Fault) -> bool {
        matches!(fault, Fault::HealAll) || self.parts.iter().any(|p| p.handles(fault))
    }

    fn setup(&self) -> Result<(), NemesisError> {
        let _busy = self.lock();
        let errors: Vec<_> = self.parts.iter().filter_map(|p| p.setup().err()).collect();
        NemesisError::from_many(errors)
    }

    fn invoke(&self, fault: &Fault) -> Result<Value, NemesisError> {
        let _busy = self.lock();
        if matches!(fault, Fault::HealAll) {
            return self.heal_locked();
        }
        let part = self
            .parts
            .iter()
            .find(|p| p.handles(fault))
            .ok_or_else(|| NemesisError::Invalid(format!("no nemesis does {}", fault.f())))?;
        tracing::info!(f = fault.f(), value = %fault.value(), "nemesis");
        part.invoke(fault)
    }

    /// Heals every kind, going on past failures so one unreachable node
    /// does not leave the others broken; the record is removed only when
    /// everything healed. Waits for a fault in flight to finish first.
    fn heal(&self) -> Result<Value, NemesisError> {
        let _busy = self.lock();
        self.heal_locked()
    }
}

/// The invocation op for `fault`: process `nemesis`, type `info`; index and
/// time are set by the recorder.
pub fn invocation_op(fault: &Fault) -> Op {
    Op::new(0, Process::Nemesis, OpType::Info, fault.f(), fault.value())
}

/// The completion op for `fault`, given what `invoke` answered: the value
/// says what was done, or the error why not.
pub fn completion_op(fault: &Fault, result: &Result<Value, NemesisError>) -> Op {
    match result {
        Ok(v) => Op::new(0, Process::Nemesis, OpType::Info, fault.f(), v.clone()),
        Err(e) => {
            let mut op = Op::new(0, Process::Nemesis, OpType::Info, fault.f(), fault.value());
            op.error = Some(Value::String(e.to_string()));
            op
        }
    }
}

/// Heals every fault `nemesis` knows of and returns the `heal` invocation
/// and completion ops to record (in that order) with the result. What a
/// runner calls at the end of a test, on error and on Ctrl-C.
pub fn heal_all(nemesis: &dyn Nemesis) -> ([Op; 2], Result<Value, NemesisError>) {
    let fault = Fault::HealAll;
    let inv = invocation_op(&fault);
    let result = nemesis.heal();
    let done = completion_op(&fault, &result);
    ([inv, done], result)
}

/// Performs nemesis operations for the runner: the generator routes them to
/// the nemesis (`on_nemesis`), the runner records the invocation, this
/// injects the fault on tokio's blocking pool, and the completion's value
/// says what was done (the runner records nemesis completions as `info`).
#[derive(Debug, Clone)]
pub struct NemesisClient {
    nemesis: Arc<dyn Nemesis>,
}

impl NemesisClient {
    /// A client performing faults with `nemesis`.
    pub fn new(nemesis: Arc<dyn Nemesis>) -> NemesisClient {
        NemesisClient { nemesis }
    }
}

#[async_trait::async_trait]
impl Client for NemesisClient {
    async fn open(&mut self, _node: &str) -> Result<(), ClientError> {
        Ok(())
    }

    async fn invoke(&mut self, inv: &Invocation) -> Completion {
        let fault = match Fault::from_op(&inv.f, &inv.value) {
            Ok(f) => f,
            Err(e) => {
                return Completion {
                    status: Status::Info,
                    value: inv.value.clone(),
                    error: Some(Value::String(e)),
                }
            }
        };
        let nem = self.nemesis.clone();
        let f2 = fault.clone();
        let result = tokio::task::spawn_blocking(move || nem.invoke(&f2))
            .await
            .unwrap_or_else(|e| {
                Err(NemesisError::Invalid(format!(
                    "the nemesis task for {} failed: {e}",
                    fault.f()
                )))
            });
        let op = completion_op(&fault, &result);
        Completion {
            status: Status::Info,
            value: op.value,
            error: op.error,
        }
    }

    async fn close(&mut self) -> Result<(), ClientError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_round_trip_through_ops() {
        let faults = vec![
            Fault::StartPartition(PartitionSpec::MajoritiesRing),
            Fault::StartPartition(PartitionSpec::Components(vec![
                vec!["n1".into()],
                vec!["n2".into(), "n3".into()],
            ])),
            Fault::StopPartition,
            Fault::Kill(Targets::Primaries),
            Fault::Start,
            Fault::Pause(Targets::Nodes(vec!["n2".into()])),
            Fault::Resume,
            Fault::StartPacket {
                targets: Targets::Majority,
                behavior: PacketBehavior {
                    loss: Some(0.25),
                    delay_ms: Some(100),
                },
            },
            Fault::StopPacket,
            Fault::BumpClock {
                targets: Targets::One,
                delta_ms: -500,
            },
            Fault::StrobeClock {
                targets: Targets::All,
                delta_ms: 200,
                period_ms: 10,
                duration_ms: 1000,
            },
            Fault::ResetClock,
            Fault::HealAll,
        ];
        for f in faults {
            let back = Fault::from_op(f.f(), &f.value()).unwrap();
            assert_eq!(back, f);
            let op = invocation_op(&f);
            assert_eq!(op.process, Process::Nemesis);
            assert_eq!(op.kind, OpType::Info);
        }
    }

    #[test]
    fn bad_ops_are_named() {
        let e = Fault::from_op("explode", &Value::Null).unwrap_err();
        assert!(e.contains("explode"), "{e}");
        let e = Fault::from_op("kill", &json!("most")).unwrap_err();
        assert!(e.contains("most") && e.contains("minority"), "{e}");
        let e = Fault::from_op("start-packet", &json!({"loss": 1.5})).unwrap_err();
        assert!(e.contains("loss"), "{e}");
        let e = Fault::from_op("start-packet", &json!({})).unwrap_err();
        assert!(e.contains("needs"), "{e}");
        assert!(Fault::from_op("bump-clock", &json!({"targets": "one"})).is_err());
        // The runner's own test uses "majority" as a partition value.
        assert_eq!(
            Fault::from_op("start-partition", &json!("majority")).unwrap(),
            Fault::StartPartition(PartitionSpec::RandomHalves)
        );
    }

    #[test]
    fn completion_carries_what_was_done_or_why_not() {
        let f = Fault::Kill(Targets::One);
        let ok = completion_op(&f, &Ok(json!({"killed": ["n2"]})));
        assert_eq!(ok.value, json!({"killed": ["n2"]}));
        assert!(ok.error.is_none());
        let err = completion_op(&f, &Err(NemesisError::Invalid("no leader".into())));
        assert_eq!(err.value, json!("one"));
        assert_eq!(err.error, Some(json!("no leader")));
        assert_eq!(err.kind, OpType::Info);
    }

    #[test]
    fn families_parse() {
        for f in Family::ALL {
            assert_eq!(Family::parse(f.name()).unwrap(), f);
        }
        assert!(Family::parse("flood").unwrap_err().contains("partition"));
    }
}
