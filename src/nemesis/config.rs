//! Nemesis files (`nemeses/*.toml`): one fault family each, with the
//! targets to choose from and the interval, loaded at run time. The format
//! is documented in `docs/nemesis-format.md`.
//!
//! Every error names the file, the line and the field: unknown fields are
//! refused (`deny_unknown_fields`), and toml's byte spans are turned into
//! line numbers.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{Corruption, Family, Fault, PacketBehavior, PartitionSpec, Targets};

/// A bad nemesis file: where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {}{message}", file.display(), if *line > 0 { format!(":{line}") } else { String::new() }, field.as_ref().map(|f| format!("field `{f}`: ")).unwrap_or_default())]
pub struct ConfigError {
    /// The file, or `--nemesis` for a name that is no file.
    pub file: PathBuf,
    /// The 1-based line (1 when unknown in a file; 0, not shown, for an
    /// error about a `--nemesis` name).
    pub line: usize,
    /// The field, when the error is about one.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

/// A fault family as a file defines it: what a schedule may start, and for
/// how long.
#[derive(Debug, Clone, PartialEq)]
pub struct NemesisDef {
    /// The name `--nemesis` gave: the family's, or the file's stem.
    pub name: String,
    /// The family.
    pub family: Family,
    /// The start faults to choose from (one per target choice, per mode).
    pub starts: Vec<Fault>,
    /// Time between a start and its stop, and between a stop and the next
    /// start; `None` leaves it to `--nemesis-interval` or the default.
    pub interval: Option<Duration>,
}

impl NemesisDef {
    /// The fault that ends this family's faults; `None` for a family
    /// whose every start ends by itself (the rolling upgrade's).
    pub fn stop(&self) -> Option<Fault> {
        stop_of(self.family)
    }

    /// The definition used when no file names the family: Jepsen's usual
    /// choices (partitions of every shape; kills and pauses of one node, a
    /// minority, a majority, all, or the leader; 20% loss on all nodes;
    /// clock bumps of ±0.5 s; bit flips and truncations of one node's, a
    /// minority's or every node's data; snapshots for a rollback of one
    /// node or a minority; removing one member, or the leader's) with no
    /// interval of its own.
    pub fn builtin(family: Family) -> NemesisDef {
        let targets = [
            Targets::One,
            Targets::Minority,
            Targets::Majority,
            Targets::All,
            Targets::Primaries,
        ];
        let starts = match family {
            Family::Partition => [
                PartitionSpec::One,
                PartitionSpec::Primaries,
                PartitionSpec::RandomHalves,
                PartitionSpec::MajoritiesRing,
                PartitionSpec::Bridge,
                PartitionSpec::MinorityThird,
            ]
            .into_iter()
            .map(Fault::StartPartition)
            .collect(),
            Family::Kill => targets.into_iter().map(Fault::Kill).collect(),
            Family::Pause => targets.into_iter().map(Fault::Pause).collect(),
            Family::Packet => vec![Fault::StartPacket {
                targets: Targets::All,
                behavior: PacketBehavior {
                    loss: Some(0.2),
                    ..PacketBehavior::default()
                },
            }],
            Family::Clock => vec![
                Fault::BumpClock {
                    targets: Targets::One,
                    delta_ms: 500,
                },
                Fault::BumpClock {
                    targets: Targets::One,
                    delta_ms: -500,
                },
            ],
            Family::FileCorruption => [Targets::One, Targets::Minority, Targets::All]
                .into_iter()
                .flat_map(|t| {
                    [DEFAULT_BITFLIP, DEFAULT_TRUNCATE].map(|corruption| Fault::CorruptFile {
                        targets: t.clone(),
                        corruption,
                    })
                })
                .collect(),
            Family::Rollback => [Targets::One, Targets::Minority]
                .into_iter()
                .map(Fault::SnapshotData)
                .collect(),
            // The primaries first (the schedule puts them first in each
            // cycle): a replica's lost writes come back from its primary,
            // so only the node clients write to shows what a loss does.
            Family::LoseUnfsynced => [
                Targets::Primaries,
                Targets::One,
                Targets::Minority,
                Targets::All,
            ]
            .into_iter()
            .map(Fault::LoseUnfsynced)
            .collect(),
            Family::Membership => [Targets::One, Targets::Primaries]
                .into_iter()
                .map(Fault::RemoveMember)
                .collect(),
            Family::Upgrade => vec![Fault::Upgrade(Targets::One)],
        };
        NemesisDef {
            name: family.name().to_string(),
            family,
            starts,
            interval: None,
        }
    }

    /// Whether every start of this definition targets the database's
    /// primaries (the leader), which needs a db that can name them; a
    /// definition with other starts too runs those on a db without.
    pub fn only_targets_primaries(&self) -> bool {
        !self.starts.is_empty() && self.starts.iter().all(targets_primaries)
    }

    /// What a run reports this definition's coverage under.
    pub fn requested(&self) -> super::coverage::RequestedFault {
        super::coverage::RequestedFault {
            name: self.name.clone(),
            family: self.family,
        }
    }
}

/// The bit flips of a file that gives no numbers: 4 runs of 8 bytes.
const DEFAULT_BITFLIP: Corruption = Corruption::Bitflip {
    chunks: 4,
    chunk_bytes: 8,
};

/// The truncation of a file that gives no number: its last 64 bytes.
const DEFAULT_TRUNCATE: Corruption = Corruption::Truncate { drop_bytes: 64 };

/// Whether `fault` is aimed at the database's primaries (the leader):
/// isolating, killing or pausing it is what disturbs a leader-based system.
pub fn targets_primaries(fault: &Fault) -> bool {
    if let Fault::StartPartition(PartitionSpec::OneWay(inner)) = fault {
        return **inner == PartitionSpec::Primaries;
    }
    matches!(
        fault,
        Fault::StartPartition(PartitionSpec::Primaries)
            | Fault::Kill(Targets::Primaries)
            | Fault::Pause(Targets::Primaries)
            | Fault::LoseUnfsynced(Targets::Primaries)
            | Fault::RemoveMember(Targets::Primaries)
            | Fault::Upgrade(Targets::Primaries)
            | Fault::StartPacket {
                targets: Targets::Primaries,
                ..
            }
            | Fault::BumpClock {
                targets: Targets::Primaries,
                ..
            }
            | Fault::StrobeClock {
                targets: Targets::Primaries,
                ..
            }
    )
}

/// The fault that ends a family's faults; `None` for the rolling
/// upgrade, each of whose starts stops, replaces and restarts a node and
/// ends with it serving again.
pub fn stop_of(family: Family) -> Option<Fault> {
    Some(match family {
        Family::Partition => Fault::StopPartition,
        Family::Kill => Fault::Start,
        Family::Pause => Fault::Resume,
        Family::Packet => Fault::StopPacket,
        Family::Clock => Fault::ResetClock,
        Family::FileCorruption => Fault::RestartCorrupted,
        Family::Rollback => Fault::Rollback,
        Family::LoseUnfsynced => Fault::RestartLost,
        Family::Membership => Fault::AddMember,
        Family::Upgrade => return None,
    })
}

/// The measurement recorded right after each start and stop of a family,
/// if it has one: `clock-check` for clock faults, `member-list` for
/// membership changes.
pub fn check_of(family: Family) -> Option<Fault> {
    match family {
        Family::Clock => Some(Fault::CheckClock),
        Family::Membership => Some(Fault::MemberList),
        _ => None,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawFile {
    fault: Spanned<String>,
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
    targets: Option<Spanned<Vec<toml::Value>>>,
    interval: Option<Spanned<f64>>,
    oneway: Option<Spanned<bool>>,
    loss: Option<Spanned<f64>>,
    delay_ms: Option<Spanned<u64>>,
    duplicate: Option<Spanned<f64>>,
    reorder: Option<Spanned<f64>>,
    corrupt: Option<Spanned<f64>>,
    rate_kbit: Option<Spanned<u64>>,
    modes: Option<Spanned<Vec<String>>>,
    delta_ms: Option<Spanned<i64>>,
    period_ms: Option<Spanned<u64>>,
    duration_ms: Option<Spanned<u64>>,
    chunks: Option<Spanned<u64>>,
    chunk_bytes: Option<Spanned<u64>>,
    drop_bytes: Option<Spanned<u64>>,
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The field a serde message is about (`unknown field `x``, `missing
/// field `x``).
fn field_in(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let end = message[start..].find('`')? + start;
    Some(message[start..end].to_string())
}

/// Parses the text of a nemesis file; `file` names it in errors.
pub fn parse(file: &Path, text: &str) -> Result<NemesisDef, ConfigError> {
    let err = |line: usize, field: Option<&str>, message: String| ConfigError {
        file: file.to_path_buf(),
        line,
        field: field.map(String::from),
        message,
    };
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        let msg = e.message().trim().to_string();
        let line = e.span().map(|s| line_of(text, s.start)).unwrap_or(1);
        let field = if msg.contains("field `") {
            field_in(&msg)
        } else {
            None
        };
        err(line, field.as_deref(), msg)
    })?;
    let at = |span: std::ops::Range<usize>| line_of(text, span.start);
    let family = Family::parse(raw.fault.get_ref())
        .map_err(|m| err(at(raw.fault.span()), Some("fault"), m))?;

    // Fields that belong to another family are mistakes, not options.
    let only =
        |present: bool, span: Option<std::ops::Range<usize>>, name: &str, fams: &[Family]| {
            if present && !fams.contains(&family) {
                Err(err(
                    span.map(at).unwrap_or(1),
                    Some(name),
                    format!(
                        "not used by fault {family} (only by {})",
                        fams.iter().map(|f| f.name()).collect::<Vec<_>>().join(", ")
                    ),
                ))
            } else {
                Ok(())
            }
        };
    for (v, name) in [
        (raw.loss.as_ref().map(|s| s.span()), "loss"),
        (raw.delay_ms.as_ref().map(|s| s.span()), "delay-ms"),
        (raw.duplicate.as_ref().map(|s| s.span()), "duplicate"),
        (raw.reorder.as_ref().map(|s| s.span()), "reorder"),
        (raw.corrupt.as_ref().map(|s| s.span()), "corrupt"),
        (raw.rate_kbit.as_ref().map(|s| s.span()), "rate-kbit"),
    ] {
        only(v.is_some(), v, name, &[Family::Packet])?;
    }
    let oneway_span = raw.oneway.as_ref().map(|s| s.span());
    only(
        oneway_span.is_some(),
        oneway_span.clone(),
        "oneway",
        &[Family::Partition],
    )?;
    only(
        raw.modes.is_some(),
        raw.modes.as_ref().map(|s| s.span()),
        "modes",
        &[Family::Clock, Family::FileCorruption],
    )?;
    for (v, name) in [
        (raw.chunks.as_ref().map(|s| s.span()), "chunks"),
        (raw.chunk_bytes.as_ref().map(|s| s.span()), "chunk-bytes"),
        (raw.drop_bytes.as_ref().map(|s| s.span()), "drop-bytes"),
    ] {
        only(v.is_some(), v, name, &[Family::FileCorruption])?;
    }
    for (v, name) in [
        (raw.delta_ms.as_ref().map(|s| s.span()), "delta-ms"),
        (raw.period_ms.as_ref().map(|s| s.span()), "period-ms"),
        (raw.duration_ms.as_ref().map(|s| s.span()), "duration-ms"),
    ] {
        only(v.is_some(), v, name, &[Family::Clock])?;
    }

    let interval = match &raw.interval {
        Some(s) => {
            let secs = *s.get_ref();
            if !(secs.is_finite() && secs > 0.0 && secs <= 86_400.0) {
                return Err(err(
                    at(s.span()),
                    Some("interval"),
                    format!("must be a number of seconds in (0, 86400], got {secs}"),
                ));
            }
            Some(Duration::from_secs_f64(secs))
        }
        None => None,
    };

    let builtin = NemesisDef::builtin(family);
    let targets_line = raw.targets.as_ref().map(|t| at(t.span())).unwrap_or(1);
    // Each entry of `targets` as a value faults understand.
    let target_values: Option<Vec<serde_json::Value>> = match &raw.targets {
        Some(t) => {
            if t.get_ref().is_empty() {
                return Err(err(
                    targets_line,
                    Some("targets"),
                    "must not be empty".into(),
                ));
            }
            Some(
                t.get_ref()
                    .iter()
                    .map(|v| {
                        serde_json::to_value(v).map_err(|e| {
                            err(targets_line, Some("targets"), format!("bad entry {v}: {e}"))
                        })
                    })
                    .collect::<Result<_, _>>()?,
            )
        }
        None => None,
    };
    let bad_target = |m: String| err(targets_line, Some("targets"), m);

    let starts = match family {
        Family::Partition => {
            let shapes = match &target_values {
                Some(vals) => vals
                    .iter()
                    .map(|v| PartitionSpec::from_value(v).map_err(bad_target))
                    .collect::<Result<Vec<_>, _>>()?,
                None => builtin
                    .starts
                    .into_iter()
                    .filter_map(|f| match f {
                        Fault::StartPartition(p) => Some(p),
                        _ => None,
                    })
                    .collect(),
            };
            let oneway = raw.oneway.as_ref().is_some_and(|o| *o.get_ref());
            shapes
                .into_iter()
                .map(|p| {
                    if !oneway {
                        return Ok(Fault::StartPartition(p));
                    }
                    p.one_way().map(Fault::StartPartition).map_err(|m| {
                        err(
                            oneway_span.clone().map(at).unwrap_or(targets_line),
                            Some("oneway"),
                            format!("{m} (give targets with sides: one, primaries, halves, random-halves, minority-third or components)"),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?
        }
        Family::Kill
        | Family::Pause
        | Family::Rollback
        | Family::LoseUnfsynced
        | Family::Membership
        | Family::Upgrade => match &target_values {
            Some(vals) => vals
                .iter()
                .map(|v| {
                    Targets::from_value(v)
                        .map_err(bad_target)
                        .map(|t| match family {
                            Family::Kill => Fault::Kill(t),
                            Family::Pause => Fault::Pause(t),
                            Family::LoseUnfsynced => Fault::LoseUnfsynced(t),
                            Family::Membership => Fault::RemoveMember(t),
                            Family::Upgrade => Fault::Upgrade(t),
                            _ => Fault::SnapshotData(t),
                        })
                })
                .collect::<Result<Vec<_>, _>>()?,
            None => builtin.starts,
        },
        Family::FileCorruption => {
            let targets = match &target_values {
                Some(vals) => vals
                    .iter()
                    .map(|v| Targets::from_value(v).map_err(bad_target))
                    .collect::<Result<Vec<_>, _>>()?,
                None => vec![Targets::One, Targets::Minority, Targets::All],
            };
            let positive = |f: &Option<Spanned<u64>>, name: &str, default: u64| match f {
                Some(s) if *s.get_ref() == 0 => {
                    Err(err(at(s.span()), Some(name), "must be positive".into()))
                }
                Some(s) => Ok(*s.get_ref()),
                None => Ok(default),
            };
            let bitflip = Corruption::Bitflip {
                chunks: positive(&raw.chunks, "chunks", 4)?,
                chunk_bytes: positive(&raw.chunk_bytes, "chunk-bytes", 8)?,
            };
            let truncate = Corruption::Truncate {
                drop_bytes: positive(&raw.drop_bytes, "drop-bytes", 64)?,
            };
            let modes_line = raw.modes.as_ref().map(|m| at(m.span())).unwrap_or(1);
            let modes: Vec<String> = raw
                .modes
                .as_ref()
                .map(|m| m.get_ref().clone())
                .unwrap_or_else(|| vec!["bitflip".into(), "truncate".into()]);
            if modes.is_empty() {
                return Err(err(modes_line, Some("modes"), "must not be empty".into()));
            }
            let corruptions = modes
                .iter()
                .map(|m| match m.as_str() {
                    "bitflip" => Ok(bitflip),
                    "truncate" => Ok(truncate),
                    other => Err(err(
                        modes_line,
                        Some("modes"),
                        format!("unknown mode {other:?} (expected bitflip, truncate)"),
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?;
            targets
                .iter()
                .flat_map(|t| {
                    corruptions.iter().map(|c| Fault::CorruptFile {
                        targets: t.clone(),
                        corruption: *c,
                    })
                })
                .collect()
        }
        Family::Packet => {
            let behavior = PacketBehavior {
                loss: raw.loss.as_ref().map(|s| *s.get_ref()),
                delay_ms: raw.delay_ms.as_ref().map(|s| *s.get_ref()),
                duplicate: raw.duplicate.as_ref().map(|s| *s.get_ref()),
                reorder: raw.reorder.as_ref().map(|s| *s.get_ref()),
                corrupt: raw.corrupt.as_ref().map(|s| *s.get_ref()),
                rate_kbit: raw.rate_kbit.as_ref().map(|s| *s.get_ref()),
            };
            if let Err(m) = super::validate_packet(&behavior) {
                // The field the message starts with, at its line.
                let spans = [
                    ("loss", raw.loss.as_ref().map(|s| s.span())),
                    ("delay-ms", raw.delay_ms.as_ref().map(|s| s.span())),
                    ("duplicate", raw.duplicate.as_ref().map(|s| s.span())),
                    ("reorder", raw.reorder.as_ref().map(|s| s.span())),
                    ("corrupt", raw.corrupt.as_ref().map(|s| s.span())),
                    ("rate-kbit", raw.rate_kbit.as_ref().map(|s| s.span())),
                ];
                let (line, field) = spans
                    .into_iter()
                    .find_map(|(name, span)| {
                        let span = span?;
                        m.starts_with(name).then(|| (at(span), name))
                    })
                    .unwrap_or((at(raw.fault.span()), "loss"));
                return Err(err(line, Some(field), m));
            }
            let targets = match &target_values {
                Some(vals) => vals
                    .iter()
                    .map(|v| Targets::from_value(v).map_err(bad_target))
                    .collect::<Result<Vec<_>, _>>()?,
                None => vec![Targets::All],
            };
            targets
                .into_iter()
                .map(|targets| Fault::StartPacket { targets, behavior })
                .collect()
        }
        Family::Clock => {
            let targets = match &target_values {
                Some(vals) => vals
                    .iter()
                    .map(|v| Targets::from_value(v).map_err(bad_target))
                    .collect::<Result<Vec<_>, _>>()?,
                None => vec![Targets::One],
            };
            let delta = raw.delta_ms.as_ref().map(|s| *s.get_ref()).unwrap_or(500);
            if delta == 0 {
                let line = raw.delta_ms.as_ref().map(|s| at(s.span())).unwrap_or(1);
                return Err(err(line, Some("delta-ms"), "must not be 0".into()));
            }
            let period = raw.period_ms.as_ref().map(|s| *s.get_ref()).unwrap_or(10);
            if period == 0 {
                let line = raw.period_ms.as_ref().map(|s| at(s.span())).unwrap_or(1);
                return Err(err(line, Some("period-ms"), "must be positive".into()));
            }
            let duration = raw
                .duration_ms
                .as_ref()
                .map(|s| *s.get_ref())
                .unwrap_or(1000);
            let modes: Vec<String> = raw
                .modes
                .as_ref()
                .map(|m| m.get_ref().clone())
                .unwrap_or_else(|| vec!["bump".into()]);
            let modes_line = raw.modes.as_ref().map(|m| at(m.span())).unwrap_or(1);
            if modes.is_empty() {
                return Err(err(modes_line, Some("modes"), "must not be empty".into()));
            }
            let mut starts = Vec::new();
            for t in &targets {
                for m in &modes {
                    match m.as_str() {
                        "bump" => {
                            for d in [delta, -delta] {
                                starts.push(Fault::BumpClock {
                                    targets: t.clone(),
                                    delta_ms: d,
                                });
                            }
                        }
                        "strobe" => starts.push(Fault::StrobeClock {
                            targets: t.clone(),
                            delta_ms: delta,
                            period_ms: period,
                            duration_ms: duration,
                        }),
                        other => {
                            return Err(err(
                                modes_line,
                                Some("modes"),
                                format!("unknown mode {other:?} (expected bump, strobe)"),
                            ))
                        }
                    }
                }
            }
            starts
        }
    };
    let name = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| family.name().to_string());
    Ok(NemesisDef {
        name,
        family,
        starts,
        interval,
    })
}

/// Reads and parses one nemesis file.
pub fn load_file(path: &Path) -> Result<NemesisDef, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.to_path_buf(),
        line: 1,
        field: None,
        message: format!("cannot read: {e}"),
    })?;
    parse(path, &text)
}

/// Every name `--nemesis` accepts with nemesis files in `dir`: the
/// families, and the stem of each `*.toml` file there, sorted.
pub fn valid_names(dir: Option<&Path>) -> Vec<String> {
    let mut names: Vec<String> = Family::ALL.iter().map(|f| f.name().to_string()).collect();
    if let Some(entries) = dir.and_then(|d| std::fs::read_dir(d).ok()) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "toml") && path.is_file() {
                if let Some(stem) = path.file_stem() {
                    names.push(stem.to_string_lossy().into_owned());
                }
            }
        }
    }
    names.sort();
    names.dedup();
    names
}

/// The definitions for `--nemesis a,b`: each name is `dir/<name>.toml`
/// when that file exists, else the built-in definition of the family of
/// that name. A name that is neither is an error listing every valid name
/// (families and files).
pub fn load_named(dir: Option<&Path>, names: &[String]) -> Result<Vec<NemesisDef>, ConfigError> {
    let mut defs = Vec::new();
    for name in names {
        let name = name.trim();
        if name.is_empty() {
            continue;
        }
        if let Some(d) = dir {
            let path = d.join(format!("{name}.toml"));
            if path.is_file() {
                defs.push(load_file(&path)?);
                continue;
            }
        }
        let family = Family::parse(name).map_err(|_| ConfigError {
            file: PathBuf::from("--nemesis"),
            line: 0,
            field: None,
            message: format!(
                "unknown nemesis {name:?}: expected one of {}{}",
                valid_names(dir).join(", "),
                dir.map(|d| format!(" (families, and the files in {})", d.display()))
                    .unwrap_or_default()
            ),
        })?;
        defs.push(NemesisDef::builtin(family));
    }
    Ok(defs)
}

/// What the cluster and db of a run can do, as far as it is known before
/// anything is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    /// The nodes share this machine's one real-time clock (the local
    /// cluster's network namespaces, or isolated nodes reached as hosts):
    /// clock faults move the db's clock with libfaketime.
    pub clock_by_faketime: bool,
    /// The db can name its primaries (leader, master) for faults that
    /// target them.
    pub db_has_primaries: bool,
    /// Whether libfaketime moves the db's clock on the local cluster, and
    /// if not, why (`crate::system::Configured::faketime_clock`).
    pub db_faketime_clock: Result<(), String>,
    /// Whether the db's members can be removed and added back while it
    /// runs, and if not, why (`crate::system::Configured::membership`).
    pub db_membership: Result<(), String>,
    /// Whether the db keeps its data in a folder faultline knows on the
    /// nodes, for lose-unfsynced to mount its filesystem over, and if not,
    /// why (`crate::system::Configured::data_folder`).
    pub db_data_folder: Result<(), String>,
    /// Whether a rolling upgrade can run (the system takes a binary of
    /// the user's own, and both `--db-binary` and `--db-binary-next` are
    /// given), and if not, why.
    pub db_upgrade: Result<(), String>,
    /// Whether `--db-binary-next` was given: only the upgrade uses it.
    pub next_binary: bool,
}

/// Refuses the definitions the cluster or db cannot perform, every one
/// with its reason and what would work instead. Checked before any
/// cluster or db is touched.
pub fn check_supported(defs: &[NemesisDef], can: Capabilities) -> Result<(), String> {
    let mut problems = Vec::new();
    for d in defs {
        if let (Family::Clock, true, Err(why)) =
            (d.family, can.clock_by_faketime, &can.db_faketime_clock)
        {
            problems.push(format!(
                "--nemesis {}: these nodes share this machine's clock (the local cluster, \
                 or isolated nodes), so clock faults move the db's clock with libfaketime, \
                 and this db cannot follow it: {why} (use real hosts with --nodes, or \
                 partition, kill, pause, packet)",
                d.name
            ));
        }
        if let (Family::Membership, Err(why)) = (d.family, &can.db_membership) {
            problems.push(format!(
                "--nemesis {}: membership changes need a db whose members can be removed \
                 and added back while it runs: {why} (use partition, kill, pause, packet)",
                d.name
            ));
        }
        if let (Family::LoseUnfsynced, Err(why)) = (d.family, &can.db_data_folder) {
            problems.push(format!(
                "--nemesis {}: it mounts a filesystem that loses unsynced writes under the \
                 db's data folder on the nodes, and this db has none: {why} (use kill, pause, \
                 partition, packet)",
                d.name
            ));
        }
        if let (Family::Upgrade, Err(why)) = (d.family, &can.db_upgrade) {
            problems.push(format!(
                "--nemesis {}: a rolling upgrade replaces the db's server binary on one node \
                 at a time: {why}",
                d.name
            ));
        }
        if d.only_targets_primaries() && !can.db_has_primaries {
            problems.push(format!(
                "--nemesis {}: it targets the primaries, but the db names none to aim at (a \
                 multi-primary db such as Galera has no leader; a db file names them with \
                 `primaries`, docs/file-db.md); use targets such as one, minority or majority",
                d.name
            ));
        }
    }
    if can.next_binary && !defs.iter().any(|d| d.family == Family::Upgrade) {
        problems.push(
            "--db-binary-next: only the rolling upgrade (--nemesis upgrade) runs the next \
             binary; add it to --nemesis, or leave --db-binary-next out"
                .to_string(),
        );
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<NemesisDef, ConfigError> {
        parse(Path::new("nemeses/x.toml"), text)
    }

    #[test]
    fn partition_file() {
        let d = p("fault = \"partition\"\ntargets = [\"one\", \"majorities-ring\", [[\"n1\"], [\"n2\", \"n3\"]]]\ninterval = 5\n").unwrap();
        assert_eq!(d.family, Family::Partition);
        assert_eq!(d.interval, Some(Duration::from_secs(5)));
        assert_eq!(d.starts.len(), 3);
        assert_eq!(
            d.starts[1],
            Fault::StartPartition(PartitionSpec::MajoritiesRing)
        );
        assert_eq!(d.stop(), Some(Fault::StopPartition));
    }

    #[test]
    fn unknown_field_names_file_line_and_field() {
        let e = p("fault = \"kill\"\n\ntargest = [\"one\"]\n").unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        assert_eq!(e.field.as_deref(), Some("targest"), "{e}");
        let s = e.to_string();
        assert!(s.starts_with("nemeses/x.toml:3: field `targest`"), "{s}");
    }

    #[test]
    fn bad_values_name_their_line() {
        let e = p("fault = \"kill\"\ntargets = [\"most\"]\n").unwrap_err();
        assert_eq!((e.line, e.field.as_deref()), (2, Some("targets")), "{e}");
        let e = p("fault = \"packet\"\nloss = 2.0\n").unwrap_err();
        assert_eq!((e.line, e.field.as_deref()), (2, Some("loss")), "{e}");
        let e = p("fault = \"kill\"\nloss = 0.5\n").unwrap_err();
        assert_eq!((e.line, e.field.as_deref()), (2, Some("loss")), "{e}");
        assert!(e.message.contains("not used by fault kill"), "{e}");
        let e = p("fault = \"flood\"\n").unwrap_err();
        assert_eq!((e.line, e.field.as_deref()), (1, Some("fault")), "{e}");
        let e = p("fault = \"kill\"\ninterval = -1\n").unwrap_err();
        assert_eq!((e.line, e.field.as_deref()), (2, Some("interval")), "{e}");
        let e = p("fault = \"clock\"\nmodes = [\"wobble\"]\n").unwrap_err();
        assert_eq!((e.line, e.field.as_deref()), (2, Some("modes")), "{e}");
        let e = p("interval = 3\n").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("fault"), "{e}");
        // A type error names its line too.
        let e = p("fault = \"kill\"\ninterval = \"soon\"\n").unwrap_err();
        assert_eq!(e.line, 2, "{e}");
    }

    #[test]
    fn packet_and_clock_files() {
        let d =
            p("fault = \"packet\"\ntargets = [\"majority\"]\nloss = 0.3\ndelay-ms = 50\n").unwrap();
        assert_eq!(
            d.starts,
            vec![Fault::StartPacket {
                targets: Targets::Majority,
                behavior: PacketBehavior {
                    loss: Some(0.3),
                    delay_ms: Some(50),
                    ..PacketBehavior::default()
                }
            }]
        );
        let d = p("fault = \"clock\"\nmodes = [\"bump\", \"strobe\"]\ndelta-ms = 200\n").unwrap();
        assert_eq!(d.starts.len(), 3);
        assert_eq!(d.stop(), Some(Fault::ResetClock));
    }

    #[test]
    fn packet_modes_and_one_way_partitions() {
        let d = p(
            "fault = \"packet\"\nduplicate = 0.5\nreorder = 0.2\ncorrupt = 0.1\nrate-kbit = 800\n",
        )
        .unwrap();
        assert_eq!(
            d.starts,
            vec![Fault::StartPacket {
                targets: Targets::All,
                behavior: PacketBehavior {
                    duplicate: Some(0.5),
                    reorder: Some(0.2),
                    corrupt: Some(0.1),
                    rate_kbit: Some(800),
                    ..PacketBehavior::default()
                }
            }]
        );
        let e = p("fault = \"packet\"\n\nreorder = 1.5\n").unwrap_err();
        assert_eq!((e.line, e.field.as_deref()), (3, Some("reorder")), "{e}");
        let e = p("fault = \"packet\"\nrate-kbit = 0\n").unwrap_err();
        assert_eq!((e.line, e.field.as_deref()), (2, Some("rate-kbit")), "{e}");
        let e = p("fault = \"kill\"\ncorrupt = 0.1\n").unwrap_err();
        assert!(e.message.contains("not used by fault kill"), "{e}");

        let d = p("fault = \"partition\"\noneway = true\ntargets = [\"one\", \"minority-third\", \"primaries\"]\n")
            .unwrap();
        assert_eq!(
            d.starts,
            vec![
                Fault::StartPartition(PartitionSpec::OneWay(Box::new(PartitionSpec::One))),
                Fault::StartPartition(PartitionSpec::OneWay(Box::new(
                    PartitionSpec::MinorityThird
                ))),
                Fault::StartPartition(PartitionSpec::OneWay(Box::new(PartitionSpec::Primaries))),
            ]
        );
        assert!(targets_primaries(&d.starts[2]) && !targets_primaries(&d.starts[0]));
        // A one-way ring has no sides to cut one way.
        let e = p("fault = \"partition\"\noneway = true\ntargets = [\"majorities-ring\"]\n")
            .unwrap_err();
        assert_eq!((e.line, e.field.as_deref()), (2, Some("oneway")), "{e}");
        assert!(e.message.contains("sides"), "{e}");
        let e = p("fault = \"kill\"\noneway = true\n").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("oneway"), "{e}");
    }

    #[test]
    fn file_corruption_and_rollback_files() {
        let d = p("fault = \"file-corruption\"\ntargets = [\"one\", \"all\"]\nmodes = [\"truncate\"]\ndrop-bytes = 10\n").unwrap();
        assert_eq!(
            d.starts,
            vec![
                Fault::CorruptFile {
                    targets: Targets::One,
                    corruption: Corruption::Truncate { drop_bytes: 10 }
                },
                Fault::CorruptFile {
                    targets: Targets::All,
                    corruption: Corruption::Truncate { drop_bytes: 10 }
                },
            ]
        );
        assert_eq!(d.stop(), Some(Fault::RestartCorrupted));
        let d = p("fault = \"file-corruption\"\nchunks = 2\nchunk-bytes = 3\n").unwrap();
        assert_eq!(d.starts.len(), 6, "3 targets x 2 modes");
        assert!(d.starts.contains(&Fault::CorruptFile {
            targets: Targets::Minority,
            corruption: Corruption::Bitflip {
                chunks: 2,
                chunk_bytes: 3
            }
        }));
        let e = p("fault = \"file-corruption\"\n\nchunk-bytes = 0\n").unwrap_err();
        assert_eq!(
            (e.line, e.field.as_deref()),
            (3, Some("chunk-bytes")),
            "{e}"
        );
        let e = p("fault = \"file-corruption\"\nmodes = [\"shred\"]\n").unwrap_err();
        assert!(e.message.contains("bitflip, truncate"), "{e}");
        let e = p("fault = \"kill\"\ndrop-bytes = 5\n").unwrap_err();
        assert!(e.message.contains("only by file-corruption"), "{e}");
        let d = p("fault = \"rollback\"\ntargets = [[\"n2\"]]\n").unwrap();
        assert_eq!(
            d.starts,
            vec![Fault::SnapshotData(Targets::Nodes(vec!["n2".into()]))]
        );
        assert_eq!(d.stop(), Some(Fault::Rollback));
    }

    #[test]
    fn the_shipped_files_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("nemeses");
        let mut seen = 0;
        for family in Family::ALL {
            let path = dir.join(format!("{}.toml", family.name()));
            let d = load_file(&path).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(d.family, family);
            assert!(!d.starts.is_empty());
            seen += 1;
        }
        assert_eq!(seen, Family::ALL.len());
        // Every shipped file parses, and the narrower ones do what their
        // names say.
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            load_file(&entry.path()).unwrap_or_else(|e| panic!("{e}"));
        }
        let oneway = load_file(&dir.join("partition-oneway.toml")).unwrap();
        assert!(oneway
            .starts
            .iter()
            .all(|f| matches!(f, Fault::StartPartition(PartitionSpec::OneWay(_)))));
        for (name, mode) in [
            ("packet-duplicate", "duplicate"),
            ("packet-reorder", "reorder"),
            ("packet-corrupt", "corrupt"),
            ("packet-rate", "rate-kbit"),
        ] {
            let d = load_file(&dir.join(format!("{name}.toml"))).unwrap();
            assert_eq!(d.family, Family::Packet);
            assert!(d.starts[0].value().get(mode).is_some(), "{name}");
        }
        let defs = load_named(Some(&dir), &["partition".into(), "kill".into()]).unwrap();
        assert_eq!(defs.len(), 2);
        let builtin = load_named(None, &["pause".into()]).unwrap();
        assert_eq!(builtin[0], NemesisDef::builtin(Family::Pause));
        let e = load_named(None, &["flood".into()]).unwrap_err();
        assert!(e.message.contains("partition"), "{e}");
        assert_eq!(defs[0].name, "partition");
    }

    #[test]
    fn an_unknown_name_lists_every_valid_one_and_names_no_missing_file() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("nemeses");
        let e = load_named(Some(&dir), &["kill".into(), "bogus".into()]).unwrap_err();
        let s = e.to_string();
        for name in [
            "clock",
            "kill",
            "packet",
            "partition",
            "partition-leader",
            "partition-one",
            "pause",
        ] {
            assert!(s.contains(name), "{name} missing from {s}");
        }
        assert!(s.contains("\"bogus\""), "{s}");
        assert!(!s.contains("bogus.toml"), "{s}");
        assert!(s.starts_with("--nemesis: unknown nemesis"), "{s}");
        let one = load_named(Some(&dir), &["partition-one".into()]).unwrap();
        assert_eq!(one[0].name, "partition-one");
    }

    #[test]
    fn what_the_cluster_or_db_cannot_do_is_refused_with_the_reason() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("nemeses");
        let defs = load_named(Some(&dir), &["clock".into(), "partition-leader".into()]).unwrap();
        let local_no_primaries = Capabilities {
            clock_by_faketime: true,
            db_has_primaries: false,
            db_faketime_clock: Err("etcd is a static Go binary".into()),
            db_membership: Ok(()),
            db_data_folder: Ok(()),
            db_upgrade: Ok(()),
            next_binary: false,
        };
        let e = check_supported(&defs, local_no_primaries).unwrap_err();
        assert!(
            e.contains("--nemesis clock") && e.contains("libfaketime") && e.contains("static Go"),
            "{e}"
        );
        assert!(
            e.contains("--nemesis partition-leader") && e.contains("primaries"),
            "{e}"
        );
        let hosts_with_primaries = Capabilities {
            clock_by_faketime: false,
            db_has_primaries: true,
            db_faketime_clock: Err("etcd is a static Go binary".into()),
            db_membership: Ok(()),
            db_data_folder: Ok(()),
            db_upgrade: Ok(()),
            next_binary: false,
        };
        assert_eq!(check_supported(&defs, hosts_with_primaries), Ok(()));
        // A db that reads its clock through libc takes clock faults on the
        // local cluster.
        let local_libc = Capabilities {
            clock_by_faketime: true,
            db_has_primaries: true,
            db_faketime_clock: Ok(()),
            db_membership: Ok(()),
            db_data_folder: Ok(()),
            db_upgrade: Ok(()),
            next_binary: false,
        };
        assert_eq!(check_supported(&defs, local_libc), Ok(()));
        // The built-in partition draws a primaries shape among others: only
        // a db that can name them runs it as given.
        let part = load_named(None, &["partition".into()]).unwrap();
        let local_with_primaries = Capabilities {
            clock_by_faketime: true,
            db_has_primaries: true,
            db_faketime_clock: Err("no libc".into()),
            db_membership: Ok(()),
            db_data_folder: Ok(()),
            db_upgrade: Ok(()),
            next_binary: false,
        };
        assert_eq!(check_supported(&part, local_with_primaries), Ok(()));
        // Membership changes need a db whose members can change.
        let members = load_named(Some(&dir), &["membership".into()]).unwrap();
        assert!(members[0]
            .starts
            .contains(&Fault::RemoveMember(Targets::Primaries)));
        assert_eq!(members[0].stop(), Some(Fault::AddMember));
        let no_members = Capabilities {
            clock_by_faketime: true,
            db_has_primaries: true,
            db_faketime_clock: Ok(()),
            db_membership: Err("redis has none".into()),
            db_data_folder: Ok(()),
            db_upgrade: Ok(()),
            next_binary: false,
        };
        let e = check_supported(&members, no_members).unwrap_err();
        assert!(
            e.contains("--nemesis membership") && e.contains("redis has none"),
            "{e}"
        );
        let etcd = Capabilities {
            clock_by_faketime: true,
            db_has_primaries: true,
            db_faketime_clock: Err("static Go".into()),
            db_membership: Ok(()),
            db_data_folder: Ok(()),
            db_upgrade: Ok(()),
            next_binary: false,
        };
        assert_eq!(check_supported(&members, etcd), Ok(()));
        // Losing unsynced writes needs a data folder to mount under.
        let lose = load_named(Some(&dir), &["lose-unfsynced".into()]).unwrap();
        let no_folder = Capabilities {
            clock_by_faketime: true,
            db_has_primaries: true,
            db_faketime_clock: Ok(()),
            db_membership: Ok(()),
            db_data_folder: Err("it lives in faultline's own process".into()),
            db_upgrade: Ok(()),
            next_binary: false,
        };
        let e = check_supported(&lose, no_folder).unwrap_err();
        assert!(
            e.contains("--nemesis lose-unfsynced")
                && e.contains("data folder")
                && e.contains("faultline's own process")
                && e.contains("use kill"),
            "{e}"
        );
        let with_folder = Capabilities {
            clock_by_faketime: true,
            db_has_primaries: true,
            db_faketime_clock: Ok(()),
            db_membership: Err("none".into()),
            db_data_folder: Ok(()),
            db_upgrade: Ok(()),
            next_binary: false,
        };
        assert_eq!(check_supported(&lose, with_folder), Ok(()));
    }

    /// A loss on a replica comes back from its primary: lose-unfsynced
    /// aims at the primaries as well as one node, a minority and all,
    /// in the shipped file as in the built-in definition.
    #[test]
    fn lose_unfsynced_aims_at_the_primaries_too() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("nemeses");
        let shipped = load_file(&dir.join("lose-unfsynced.toml")).unwrap();
        let builtin = NemesisDef::builtin(Family::LoseUnfsynced);
        assert_eq!(shipped.starts, builtin.starts);
        for t in [
            Targets::Primaries,
            Targets::One,
            Targets::Minority,
            Targets::All,
        ] {
            assert!(
                builtin.starts.contains(&Fault::LoseUnfsynced(t.clone())),
                "{t:?}"
            );
        }
        assert!(!shipped.only_targets_primaries());
    }

    #[test]
    fn a_rolling_upgrade_is_refused_without_what_it_needs_and_the_next_binary_without_it() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("nemeses");
        let defs = load_named(Some(&dir), &["upgrade".into()]).unwrap();
        assert_eq!(defs[0].family, Family::Upgrade);
        assert_eq!(defs[0].starts, vec![Fault::Upgrade(Targets::One)]);
        assert_eq!(defs[0].stop(), None);
        let can = |db_upgrade: Result<(), String>, next_binary| Capabilities {
            clock_by_faketime: true,
            db_has_primaries: true,
            db_faketime_clock: Ok(()),
            db_membership: Ok(()),
            db_data_folder: Ok(()),
            db_upgrade,
            next_binary,
        };
        assert_eq!(check_supported(&defs, can(Ok(()), true)), Ok(()));
        let e = check_supported(
            &defs,
            can(Err("it needs --db-binary-next PATH".into()), false),
        )
        .unwrap_err();
        assert!(
            e.starts_with("--nemesis upgrade: a rolling upgrade replaces")
                && e.ends_with("it needs --db-binary-next PATH"),
            "{e}"
        );
        let kill = load_named(Some(&dir), &["kill".into()]).unwrap();
        let e = check_supported(&kill, can(Ok(()), true)).unwrap_err();
        assert!(
            e.starts_with("--db-binary-next: only the rolling upgrade (--nemesis upgrade)"),
            "{e}"
        );
        // A file may name the nodes to upgrade.
        let d = p("fault = \"upgrade\"\ntargets = [[\"n2\"], \"one\"]\n").unwrap();
        assert_eq!(
            d.starts,
            vec![
                Fault::Upgrade(Targets::Nodes(vec!["n2".into()])),
                Fault::Upgrade(Targets::One)
            ]
        );
        let e = p("fault = \"upgrade\"\nloss = 0.1\n").unwrap_err();
        assert!(e.message.contains("not used by fault upgrade"), "{e}");
    }
}
