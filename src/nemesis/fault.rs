//! The fault vocabulary: [`Fault`], one fault operation, convertible to and
//! from the `f`/`value` of a history op (`start-partition`, `kill`, `pause`,
//! `start-packet`, `bump-clock`, ...); [`Targets`] and [`PartitionSpec`],
//! naming which nodes it hits; [`Family`], the fault families of
//! `--nemesis`.

use std::fmt;

use serde_json::{json, Value};

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
    /// A random third of the nodes (rounded down, at least one) cut off
    /// from the rest.
    MinorityThird,
    /// These components, by node name; nodes in none are left alone.
    Components(Vec<Vec<String>>),
    /// A shape with sides, cut one way only: the first side (the node
    /// alone, the primaries, the smaller half, the third, the first
    /// component) drops what the others send it, while they still hear it.
    OneWay(Box<PartitionSpec>),
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
        "minority-third",
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
            "minority-third" => Ok(PartitionSpec::MinorityThird),
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
            Value::Object(o) if o.len() == 1 && o.contains_key("oneway") => {
                PartitionSpec::from_value(&o["oneway"])?.one_way()
            }
            other => Err(format!(
                "a partition must be a name, a list of components or {{\"oneway\": shape}}, \
                 got {other}"
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
            PartitionSpec::MinorityThird => json!("minority-third"),
            PartitionSpec::Components(c) => json!(c),
            PartitionSpec::OneWay(inner) => json!({ "oneway": inner.to_value() }),
        }
    }

    /// This shape cut one way only ([`PartitionSpec::OneWay`]); refused for
    /// shapes without sides (`majorities-ring`, `bridge`) and for a shape
    /// already one-way.
    pub fn one_way(self) -> Result<PartitionSpec, String> {
        match self {
            PartitionSpec::MajoritiesRing | PartitionSpec::Bridge => Err(format!(
                "a one-way partition needs a shape with sides, not {}",
                self.to_value()
            )),
            PartitionSpec::OneWay(_) => Err("a one-way partition cannot be one-way again".into()),
            other => Ok(PartitionSpec::OneWay(Box::new(other))),
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
    /// Send this fraction (0 < p <= 1) of what a target sends to its peers
    /// twice.
    pub duplicate: Option<f64>,
    /// Hold this fraction (0 < p <= 1) of what a target sends to its peers
    /// back until a later packet has overtaken it.
    pub reorder: Option<f64>,
    /// Flip a bit in this fraction (0 < p <= 1) of what a target sends to
    /// its peers, so their checksums reject it.
    pub corrupt: Option<f64>,
    /// Let a target send its peers at most this many kilobits per second;
    /// drop the rest.
    pub rate_kbit: Option<u64>,
}

impl PacketBehavior {
    /// The fractions of the behavior by their names in history values and
    /// nemesis files (`loss`, `duplicate`, `reorder`, `corrupt`).
    pub fn fractions(&self) -> [(&'static str, Option<f64>); 4] {
        [
            ("loss", self.loss),
            ("duplicate", self.duplicate),
            ("reorder", self.reorder),
            ("corrupt", self.corrupt),
        ]
    }

    /// Whether it needs the NFQUEUE packet program (every mode but loss
    /// and, where netem is, delay).
    pub fn needs_program(&self) -> bool {
        self.duplicate.is_some()
            || self.reorder.is_some()
            || self.corrupt.is_some()
            || self.rate_kbit.is_some()
    }
}

/// How `corrupt-file` damages the file it picks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Corruption {
    /// XOR `chunks` random runs of `chunk_bytes` bytes each with a random
    /// non-zero mask, so every byte in them changes.
    Bitflip {
        /// How many runs.
        chunks: u64,
        /// The length of each run.
        chunk_bytes: u64,
    },
    /// Cut the last `drop_bytes` bytes off (the whole file when shorter).
    Truncate {
        /// How many bytes.
        drop_bytes: u64,
    },
}

impl Corruption {
    /// The history value's fields.
    fn to_value(self) -> Value {
        match self {
            Corruption::Bitflip {
                chunks,
                chunk_bytes,
            } => json!({ "mode": "bitflip", "chunks": chunks, "chunk-bytes": chunk_bytes }),
            Corruption::Truncate { drop_bytes } => {
                json!({ "mode": "truncate", "drop-bytes": drop_bytes })
            }
        }
    }

    fn from_value(v: &Value) -> Result<Corruption, String> {
        let positive = |key: &str, default: u64| -> Result<u64, String> {
            match get_u64(v, key)?.unwrap_or(default) {
                0 => Err(format!("{key} must be positive")),
                n => Ok(n),
            }
        };
        match v.get("mode").and_then(Value::as_str).unwrap_or("bitflip") {
            "bitflip" => Ok(Corruption::Bitflip {
                chunks: positive("chunks", 4)?,
                chunk_bytes: positive("chunk-bytes", 8)?,
            }),
            "truncate" => Ok(Corruption::Truncate {
                drop_bytes: positive("drop-bytes", 64)?,
            }),
            other => Err(format!(
                "unknown corruption mode {other:?} (expected bitflip, truncate)"
            )),
        }
    }
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
    /// `clock-check`: read each node's clock as its database sees it and
    /// record the offsets from the controller's; changes nothing.
    CheckClock,
    /// `corrupt-file`: damage one data file of the database on each of
    /// these nodes, while it runs. Cannot be undone.
    CorruptFile {
        /// Which nodes.
        targets: Targets,
        /// How.
        corruption: Corruption,
    },
    /// `restart-corrupted`: kill -9 and restart the database on the nodes
    /// whose files were corrupted, so it reads the damage.
    RestartCorrupted,
    /// `snapshot-data`: copy the database's data folder on these nodes
    /// (paused for the copy) for a later `rollback`.
    SnapshotData(Targets),
    /// `rollback`: on the nodes with a snapshot, kill the database, put the
    /// snapshot in place of its data folder, and start it again.
    Rollback,
    /// `lose-unfsynced`: on these nodes (among those whose data folder is
    /// on the lazyfs filesystem), kill the database and drop every write
    /// it had not fsynced.
    LoseUnfsynced(Targets),
    /// `restart-lost`: start the database again on the nodes that lost
    /// their unsynced writes, on what was durable.
    RestartLost,
    /// `remove-member`: remove one node's member from the database's
    /// cluster (its process stopped, its data wiped), only while every
    /// member is healthy.
    RemoveMember(Targets),
    /// `add-member`: add every node removed back as a new member.
    AddMember,
    /// `member-list`: record the database's members; changes nothing.
    MemberList,
    /// `upgrade`: on the next node still on the first binary (`one`, in
    /// cluster order) or the nodes named, one at a time: stop the
    /// database, put the next binary in place of its server binary,
    /// start it and wait until it serves (a rolling upgrade).
    Upgrade(Targets),
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
    /// Damaged data files.
    FileCorruption,
    /// Data folders rolled back to a snapshot.
    Rollback,
    /// Writes not fsynced lost with a crash (lazyfs).
    LoseUnfsynced,
    /// Members removed from the database's cluster and added back.
    Membership,
    /// A rolling upgrade: the server binary replaced, one node at a time.
    Upgrade,
}

impl Family {
    /// Every family, in a fixed order.
    pub const ALL: [Family; 10] = [
        Family::Partition,
        Family::Kill,
        Family::Pause,
        Family::Packet,
        Family::Clock,
        Family::FileCorruption,
        Family::Rollback,
        Family::LoseUnfsynced,
        Family::Membership,
        Family::Upgrade,
    ];

    /// The family's name (`partition`, `kill`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Family::Partition => "partition",
            Family::Kill => "kill",
            Family::Pause => "pause",
            Family::Packet => "packet",
            Family::Clock => "clock",
            Family::FileCorruption => "file-corruption",
            Family::Rollback => "rollback",
            Family::LoseUnfsynced => "lose-unfsynced",
            Family::Membership => "membership",
            Family::Upgrade => "upgrade",
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

fn get_f64(v: &Value, key: &str) -> Result<Option<f64>, String> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => x
            .as_f64()
            .map(Some)
            .ok_or_else(|| format!("{key} must be a number, got {x}")),
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
            Fault::CheckClock => "clock-check",
            Fault::CorruptFile { .. } => "corrupt-file",
            Fault::RestartCorrupted => "restart-corrupted",
            Fault::SnapshotData(_) => "snapshot-data",
            Fault::Rollback => "rollback",
            Fault::LoseUnfsynced(_) => "lose-unfsynced",
            Fault::RestartLost => "restart-lost",
            Fault::RemoveMember(_) => "remove-member",
            Fault::AddMember => "add-member",
            Fault::MemberList => "member-list",
            Fault::Upgrade(_) => "upgrade",
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
            Fault::BumpClock { .. }
            | Fault::StrobeClock { .. }
            | Fault::ResetClock
            | Fault::CheckClock => Some(Family::Clock),
            Fault::CorruptFile { .. } | Fault::RestartCorrupted => Some(Family::FileCorruption),
            Fault::SnapshotData(_) | Fault::Rollback => Some(Family::Rollback),
            Fault::LoseUnfsynced(_) | Fault::RestartLost => Some(Family::LoseUnfsynced),
            Fault::RemoveMember(_) | Fault::AddMember | Fault::MemberList => {
                Some(Family::Membership)
            }
            Fault::Upgrade(_) => Some(Family::Upgrade),
            Fault::HealAll => None,
        }
    }

    /// The op's invocation `value`.
    pub fn value(&self) -> Value {
        match self {
            Fault::StartPartition(p) => p.to_value(),
            Fault::Kill(t)
            | Fault::Pause(t)
            | Fault::SnapshotData(t)
            | Fault::LoseUnfsynced(t)
            | Fault::RemoveMember(t)
            | Fault::Upgrade(t) => t.to_value(),
            Fault::CorruptFile {
                targets,
                corruption,
            } => {
                let mut v = corruption.to_value();
                v["targets"] = targets.to_value();
                v
            }
            Fault::StartPacket { targets, behavior } => {
                let mut v = json!({ "targets": targets.to_value() });
                for (name, p) in behavior.fractions() {
                    if let Some(p) = p {
                        v[name] = json!(p);
                    }
                }
                if let Some(d) = behavior.delay_ms {
                    v["delay-ms"] = json!(d);
                }
                if let Some(r) = behavior.rate_kbit {
                    v["rate-kbit"] = json!(r);
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
            | Fault::CheckClock
            | Fault::RestartCorrupted
            | Fault::Rollback
            | Fault::RestartLost
            | Fault::AddMember
            | Fault::MemberList
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
                    loss: get_f64(value, "loss")?,
                    delay_ms: get_u64(value, "delay-ms")?,
                    duplicate: get_f64(value, "duplicate")?,
                    reorder: get_f64(value, "reorder")?,
                    corrupt: get_f64(value, "corrupt")?,
                    rate_kbit: get_u64(value, "rate-kbit")?,
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
            "clock-check" => Fault::CheckClock,
            "corrupt-file" => Fault::CorruptFile {
                targets: targets_of(value)?,
                corruption: Corruption::from_value(value)?,
            },
            "restart-corrupted" => Fault::RestartCorrupted,
            "snapshot-data" => Fault::SnapshotData(Targets::from_value(value)?),
            "rollback" => Fault::Rollback,
            "lose-unfsynced" => Fault::LoseUnfsynced(Targets::from_value(value)?),
            "restart-lost" => Fault::RestartLost,
            "remove-member" => Fault::RemoveMember(Targets::from_value(value)?),
            "add-member" => Fault::AddMember,
            "member-list" => Fault::MemberList,
            "upgrade" => Fault::Upgrade(Targets::from_value(value)?),
            "heal" => Fault::HealAll,
            other => return Err(format!("unknown nemesis operation {other:?}")),
        };
        Ok(fault)
    }
}

/// Checks a packet behavior: something to do, fractions in (0, 1],
/// positive delay and rate.
pub fn validate_packet(b: &PacketBehavior) -> Result<(), String> {
    if *b == PacketBehavior::default() {
        return Err(
            "a packet fault needs loss, delay-ms, duplicate, reorder, corrupt and/or rate-kbit"
                .into(),
        );
    }
    for (name, p) in b.fractions() {
        if let Some(p) = p {
            if !(p > 0.0 && p <= 1.0) {
                return Err(format!("{name} must be in (0, 1], got {p}"));
            }
        }
    }
    if b.delay_ms == Some(0) {
        return Err("delay-ms must be positive".into());
    }
    if b.rate_kbit == Some(0) {
        return Err("rate-kbit must be positive".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{OpType, Process};
    use crate::nemesis::invocation_op;

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
                    ..PacketBehavior::default()
                },
            },
            Fault::StartPacket {
                targets: Targets::One,
                behavior: PacketBehavior {
                    duplicate: Some(0.5),
                    reorder: Some(0.2),
                    corrupt: Some(0.1),
                    rate_kbit: Some(800),
                    ..PacketBehavior::default()
                },
            },
            Fault::StartPartition(PartitionSpec::MinorityThird),
            Fault::StartPartition(PartitionSpec::OneWay(Box::new(PartitionSpec::Primaries))),
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
            Fault::CheckClock,
            Fault::CorruptFile {
                targets: Targets::Minority,
                corruption: Corruption::Bitflip {
                    chunks: 3,
                    chunk_bytes: 16,
                },
            },
            Fault::CorruptFile {
                targets: Targets::All,
                corruption: Corruption::Truncate { drop_bytes: 100 },
            },
            Fault::RestartCorrupted,
            Fault::SnapshotData(Targets::One),
            Fault::Rollback,
            Fault::LoseUnfsynced(Targets::Majority),
            Fault::RestartLost,
            Fault::RemoveMember(Targets::Primaries),
            Fault::AddMember,
            Fault::MemberList,
            Fault::Upgrade(Targets::One),
            Fault::Upgrade(Targets::Nodes(vec!["n3".into()])),
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
        let e = Fault::from_op("start-packet", &json!({"duplicate": 0})).unwrap_err();
        assert!(e.contains("duplicate must be in (0, 1]"), "{e}");
        let e = Fault::from_op("start-packet", &json!({"rate-kbit": 0})).unwrap_err();
        assert!(e.contains("rate-kbit must be positive"), "{e}");
        let e = Fault::from_op("start-partition", &json!({"oneway": "bridge"})).unwrap_err();
        assert!(e.contains("one-way") && e.contains("bridge"), "{e}");
        let e =
            Fault::from_op("start-partition", &json!({"oneway": {"oneway": "one"}})).unwrap_err();
        assert!(e.contains("one-way"), "{e}");
        assert!(Fault::from_op("bump-clock", &json!({"targets": "one"})).is_err());
        // The runner's own test uses "majority" as a partition value.
        assert_eq!(
            Fault::from_op("start-partition", &json!("majority")).unwrap(),
            Fault::StartPartition(PartitionSpec::RandomHalves)
        );
    }

    #[test]
    fn families_parse() {
        for f in Family::ALL {
            assert_eq!(Family::parse(f.name()).unwrap(), f);
        }
        assert!(Family::parse("flood").unwrap_err().contains("partition"));
    }
}
