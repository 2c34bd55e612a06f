//! Fault coverage: which of the faults a user asked for actually happened
//! in a run, read from the recorded history alone, so `faultline run` and
//! `faultline analyze` compute the same thing.
//!
//! A run that asked for `--nemesis partition,kill` and injected no kill
//! tested less than it claims: [`fault_coverage`] counts, per requested
//! name, the start faults that took effect and those refused, and the
//! windows during which the fault was in force; [`missing_reason`] says
//! which requested names never took effect, the reason a run's verdict is
//! unknown.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Family, Fault};
use crate::history::{History, Op, OpType, Process};

/// A fault the user asked for: the name given to `--nemesis` (a family or a
/// nemesis file) and the family of faults it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestedFault {
    /// The name as given (`partition`, `partition-one`, ...).
    pub name: String,
    /// Its family.
    pub family: Family,
}

/// The requested faults as `test.json` records them (`faults_requested`:
/// name → family), so `faultline analyze` judges coverage as the run did.
pub fn requested_to_value(requested: &[RequestedFault]) -> serde_json::Value {
    serde_json::Value::Object(
        requested
            .iter()
            .map(|r| (r.name.clone(), serde_json::Value::from(r.family.name())))
            .collect(),
    )
}

/// The requested faults `test.json`'s `faults_requested` records; a run
/// recorded before faultline kept it (or with none) requested nothing
/// judged. Entries of an unknown family are left out.
pub fn requested_from_value(v: &serde_json::Value) -> Vec<RequestedFault> {
    v.as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(name, fam)| {
                    let family = Family::parse(fam.as_str()?).ok()?;
                    Some(RequestedFault {
                        name: name.clone(),
                        family,
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// What one requested fault did in a run: `results.json`'s
/// `faults.<name>`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Coverage {
    /// Always true: the user asked for it.
    pub requested: bool,
    /// Start operations of its family that completed without an error.
    pub took_effect: u64,
    /// Start operations of its family whose completion carries an error
    /// (refused, or failed).
    pub refused: u64,
    /// `[start_s, end_s]`, seconds since the run began: from the invocation
    /// of a start that took effect to the completion of the stop (or heal)
    /// that lifted it, or to the end of the history.
    pub windows: Vec<[f64; 2]>,
}

/// One nemesis operation: its invocation and, when recorded, completion.
struct NemesisOp<'a> {
    invoke: &'a Op,
    done: Option<&'a Op>,
}

/// Pairs the history's nemesis events: both halves are usually `info`, so
/// the next event with the same `f` completes the pending one (there is one
/// nemesis worker, so they never interleave).
fn nemesis_ops(history: &History) -> Vec<NemesisOp<'_>> {
    let mut out = Vec::new();
    let mut pending: Option<&Op> = None;
    for op in history.ops.iter().filter(|o| o.process == Process::Nemesis) {
        match pending {
            Some(inv) if op.kind != OpType::Invoke && inv.f == op.f => {
                out.push(NemesisOp {
                    invoke: inv,
                    done: Some(op),
                });
                pending = None;
            }
            Some(inv) => {
                out.push(NemesisOp {
                    invoke: inv,
                    done: None,
                });
                pending = Some(op);
            }
            None => pending = Some(op),
        }
    }
    if let Some(inv) = pending {
        out.push(NemesisOp {
            invoke: inv,
            done: None,
        });
    }
    out
}

/// What a nemesis op's `f` does: starts a fault of a family, stops the
/// faults of one, or (`heal`, family `None`) stops them all. Read from `f`
/// alone, so an op whose value faultline would not parse still counts.
enum Effect {
    Start(Family),
    Stop(Option<Family>),
    /// A fault that ends by itself within its own operation (a node's
    /// upgrade: stopped, replaced, restarted and serving again): its
    /// window is the operation's.
    Whole(Family),
}

fn effect(f: &str) -> Option<Effect> {
    use Family::*;
    Some(match f {
        "start-partition" => Effect::Start(Partition),
        "kill" => Effect::Start(Kill),
        "pause" => Effect::Start(Pause),
        "start-packet" => Effect::Start(Packet),
        "bump-clock" | "strobe-clock" => Effect::Start(Clock),
        // Measurements: they neither start nor stop a fault.
        "clock-check" | "member-list" => return None,
        "remove-member" => Effect::Start(Membership),
        "corrupt-file" => Effect::Start(FileCorruption),
        "snapshot-data" => Effect::Start(Rollback),
        "lose-unfsynced" => Effect::Start(LoseUnfsynced),
        "upgrade" => Effect::Whole(Upgrade),
        "heal" => Effect::Stop(None),
        // Every other `f` of the vocabulary stops its family's faults.
        other => Effect::Stop(Some(
            Fault::from_op(other, &serde_json::Value::Null)
                .ok()?
                .family()?,
        )),
    })
}

fn seconds(ns: u64) -> f64 {
    (ns as f64 / 1e6).round() / 1e3
}

/// The coverage of each requested fault in `history`, by name. Names of
/// the same family share its operations (the history records what was
/// done, not which file asked for it).
pub fn fault_coverage(
    history: &History,
    requested: &[RequestedFault],
) -> BTreeMap<String, Coverage> {
    let end_ns = history.ops.iter().filter_map(|o| o.time).max().unwrap_or(0);
    let mut took: BTreeMap<Family, u64> = BTreeMap::new();
    let mut refused: BTreeMap<Family, u64> = BTreeMap::new();
    let mut windows: BTreeMap<Family, Vec<[f64; 2]>> = BTreeMap::new();
    // The start time of the window in force, per family.
    let mut open: BTreeMap<Family, u64> = BTreeMap::new();
    for op in nemesis_ops(history) {
        // Operations faultline does not know (an imported history's) say
        // nothing about the families it asks for.
        let Some(effect) = effect(&op.invoke.f) else {
            continue;
        };
        let Some(done) = op.done else {
            // Never completed: whether it took effect is unknown.
            continue;
        };
        let failed = done.error.is_some();
        let t_inv = op.invoke.time.unwrap_or(0);
        let t_done = done.time.unwrap_or(t_inv);
        let stops = match effect {
            Effect::Start(family) => {
                if failed {
                    *refused.entry(family).or_default() += 1;
                } else {
                    *took.entry(family).or_default() += 1;
                    open.entry(family).or_insert(t_inv);
                }
                continue;
            }
            Effect::Whole(family) => {
                if failed {
                    *refused.entry(family).or_default() += 1;
                } else {
                    *took.entry(family).or_default() += 1;
                    windows
                        .entry(family)
                        .or_default()
                        .push([seconds(t_inv), seconds(t_done)]);
                }
                continue;
            }
            Effect::Stop(family) => family,
        };
        if failed {
            // A stop that failed may have left the fault in force.
            continue;
        }
        let closes: Vec<Family> = match stops {
            Some(f) => vec![f],
            None => open.keys().copied().collect(),
        };
        for family in closes {
            if let Some(start) = open.remove(&family) {
                windows
                    .entry(family)
                    .or_default()
                    .push([seconds(start), seconds(t_done)]);
            }
        }
    }
    for (family, start) in open {
        windows
            .entry(family)
            .or_default()
            .push([seconds(start), seconds(end_ns.max(start))]);
    }
    requested
        .iter()
        .map(|r| {
            (
                r.name.clone(),
                Coverage {
                    requested: true,
                    took_effect: took.get(&r.family).copied().unwrap_or(0),
                    refused: refused.get(&r.family).copied().unwrap_or(0),
                    windows: windows.get(&r.family).cloned().unwrap_or_default(),
                },
            )
        })
        .collect()
}

/// Why a run whose faults are `coverage` tested less than it was asked
/// to, when some requested fault never took effect: names each, with how
/// often it was refused; `None` when every one took effect.
pub fn missing_reason(coverage: &BTreeMap<String, Coverage>) -> Option<String> {
    let missing: Vec<String> = coverage
        .iter()
        .filter(|(_, c)| c.took_effect == 0)
        .map(|(name, c)| match c.refused {
            0 => format!("{name} (never injected)"),
            1 => format!("{name} (refused once)"),
            n => format!("{name} (refused {n} times)"),
        })
        .collect();
    if missing.is_empty() {
        return None;
    }
    Some(format!(
        "requested faults never took effect: {}; the run did not test them \
         (--allow-missing-faults accepts this)",
        missing.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn nem(t_s: f64, f: &str, value: Value, error: Option<&str>) -> Op {
        let mut op = Op::new(0, Process::Nemesis, OpType::Info, f, value);
        op.time = Some((t_s * 1e9) as u64);
        op.error = error.map(|e| json!(e));
        op
    }

    fn client(t_s: f64) -> Op {
        let mut op = Op::new(0, Process::Client(0), OpType::Ok, "read", json!(1));
        op.time = Some((t_s * 1e9) as u64);
        op
    }

    fn req(name: &str, family: Family) -> RequestedFault {
        RequestedFault {
            name: name.into(),
            family,
        }
    }

    fn history(ops: Vec<Op>) -> History {
        let mut h = History::default();
        for (i, mut op) in ops.into_iter().enumerate() {
            op.index = i as u64;
            h.ops.push(op);
        }
        h
    }

    #[test]
    fn counts_what_took_effect_and_what_was_refused_with_windows() {
        let h = history(vec![
            nem(1.0, "start-partition", json!("one"), None),
            nem(1.2, "start-partition", json!({"cut": ["n1"]}), None),
            nem(3.0, "stop-partition", Value::Null, None),
            nem(3.1, "stop-partition", json!("healed"), None),
            nem(
                4.0,
                "bump-clock",
                json!({"targets": "one", "delta-ms": 500}),
                None,
            ),
            nem(
                4.1,
                "bump-clock",
                json!({"targets": "one", "delta-ms": 500}),
                Some("bump-clock refused: the local cluster's nodes share one clock"),
            ),
            nem(5.0, "start-partition", json!("bridge"), None),
            nem(5.2, "start-partition", json!({"grudge": {}}), None),
            client(9.0),
        ]);
        let cov = fault_coverage(
            &h,
            &[
                req("partition", Family::Partition),
                req("clock", Family::Clock),
            ],
        );
        let p = &cov["partition"];
        assert!(p.requested);
        assert_eq!((p.took_effect, p.refused), (2, 0));
        // The second partition is never stopped: its window runs to the
        // end of the history.
        assert_eq!(p.windows, vec![[1.0, 3.1], [5.0, 9.0]]);
        let c = &cov["clock"];
        assert_eq!((c.took_effect, c.refused), (0, 1));
        assert!(c.windows.is_empty());
        let why = missing_reason(&cov).expect("clock never took effect");
        assert!(why.contains("clock (refused once)"), "{why}");
        assert!(!why.contains("partition"), "{why}");
        assert!(why.contains("--allow-missing-faults"), "{why}");
    }

    #[test]
    fn clock_checks_close_nothing_and_disk_faults_have_their_windows() {
        let h = history(vec![
            nem(1.0, "bump-clock", json!({"delta-ms": 500}), None),
            nem(1.1, "bump-clock", json!({"bumped": ["n2"]}), None),
            nem(1.2, "clock-check", Value::Null, None),
            nem(
                1.3,
                "clock-check",
                json!({"offsets-ms": {"n2": 500.0}}),
                None,
            ),
            nem(2.0, "reset-clock", Value::Null, None),
            nem(2.1, "reset-clock", json!({"reset": ["n2"]}), None),
            nem(3.0, "corrupt-file", json!({"targets": "one"}), None),
            nem(3.1, "corrupt-file", json!({"corrupted": []}), None),
            nem(4.0, "restart-corrupted", Value::Null, None),
            nem(4.5, "restart-corrupted", json!({"restarted": ["n1"]}), None),
            nem(5.0, "snapshot-data", json!("one"), None),
            nem(5.2, "snapshot-data", json!({"snapshot": ["n3"]}), None),
            nem(6.0, "rollback", Value::Null, None),
            nem(6.5, "rollback", json!({"rolled-back": ["n3"]}), None),
            client(9.0),
        ]);
        let cov = fault_coverage(
            &h,
            &[
                req("clock", Family::Clock),
                req("file-corruption", Family::FileCorruption),
                req("rollback", Family::Rollback),
            ],
        );
        assert_eq!(cov["clock"].took_effect, 1);
        assert_eq!(cov["clock"].windows, vec![[1.0, 2.1]]);
        assert_eq!(cov["file-corruption"].took_effect, 1);
        assert_eq!(cov["file-corruption"].windows, vec![[3.0, 4.5]]);
        assert_eq!(cov["rollback"].took_effect, 1);
        assert_eq!(cov["rollback"].windows, vec![[5.0, 6.5]]);
        assert_eq!(missing_reason(&cov), None);
    }

    #[test]
    fn heal_closes_every_window_and_a_kind_never_tried_is_named() {
        let h = history(vec![
            nem(1.0, "kill", json!("one"), None),
            nem(1.5, "kill", json!({"killed": ["n2"]}), None),
            nem(2.0, "pause", json!("one"), None),
            nem(2.5, "pause", json!({"paused": ["n3"]}), None),
            nem(6.0, "heal", Value::Null, None),
            nem(7.0, "heal", json!({}), None),
            // An invocation with no completion says nothing.
            nem(
                8.0,
                "start-packet",
                json!({"targets": "all", "loss": 0.2}),
                None,
            ),
        ]);
        let cov = fault_coverage(
            &h,
            &[
                req("kill", Family::Kill),
                req("pause", Family::Pause),
                req("packet", Family::Packet),
            ],
        );
        assert_eq!(cov["kill"].took_effect, 1);
        assert_eq!(cov["kill"].windows, vec![[1.0, 7.0]]);
        assert_eq!(cov["pause"].windows, vec![[2.0, 7.0]]);
        assert_eq!((cov["packet"].took_effect, cov["packet"].refused), (0, 0));
        let why = missing_reason(&cov).expect("packet never happened");
        assert!(why.contains("packet (never injected)"), "{why}");
        assert!(!why.contains("kill") && !why.contains("pause"), "{why}");
    }

    #[test]
    fn every_kind_taking_effect_is_no_reason() {
        let h = history(vec![
            nem(1.0, "kill", json!("one"), None),
            nem(1.5, "kill", json!({"killed": ["n2"]}), None),
            nem(2.0, "start", Value::Null, None),
            nem(2.5, "start", json!({"started": ["n2"]}), None),
        ]);
        let cov = fault_coverage(&h, &[req("kill", Family::Kill)]);
        assert_eq!(cov["kill"].windows, vec![[1.0, 2.5]]);
        assert_eq!(missing_reason(&cov), None);
        // Nothing requested: nothing to miss.
        assert!(fault_coverage(&h, &[]).is_empty());
        let asked = vec![
            req("partition-one", Family::Partition),
            req("kill", Family::Kill),
        ];
        let mut back = requested_from_value(&requested_to_value(&asked));
        back.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(back, vec![asked[1].clone(), asked[0].clone()]);
        assert!(requested_from_value(&Value::Null).is_empty());
    }

    #[test]
    fn an_upgrade_window_is_its_own_operation() {
        let h = history(vec![
            nem(2.0, "upgrade", json!("one"), None),
            client(2.5),
            nem(
                4.5,
                "upgrade",
                json!({"upgraded": [{"node": "n1"}], "remaining": ["n2"]}),
                None,
            ),
            nem(6.0, "upgrade", json!("one"), None),
            nem(
                6.2,
                "upgrade",
                Value::Null,
                Some("upgrade refused: no node"),
            ),
        ]);
        let c = fault_coverage(&h, &[req("upgrade", Family::Upgrade)]);
        let u = &c["upgrade"];
        assert_eq!((u.took_effect, u.refused), (1, 1));
        assert_eq!(u.windows, vec![[2.0, 4.5]]);
    }
}
