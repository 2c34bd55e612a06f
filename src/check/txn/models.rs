//! The lattice of consistency models and what each proscribes, after Elle's
//! `consistency-model` namespace (Adya; Bailis et al.; Cerone et al.;
//! Daudjee and Salem), cut down to the models this checker can speak for.
//!
//! Two small graphs: `a → b` in `MODELS` means a history satisfying `a`
//! also satisfies `b`; `a → b` in `IMPLIED` means an `a` anomaly is also a
//! `b` anomaly. A model is ruled out when a found anomaly (or one it
//! implies) is among those the model, or a model it implies, proscribes.

use std::collections::BTreeSet;

/// Every model this checker knows, strongest first.
pub const MODEL_NAMES: &[&str] = &[
    "strict-serializable",
    "strong-session-serializable",
    "serializable",
    "strong-snapshot-isolation",
    "strong-session-snapshot-isolation",
    "snapshot-isolation",
    "repeatable-read",
    "cursor-stability",
    "strong-read-committed",
    "strong-session-read-committed",
    "read-committed",
    "strong-read-uncommitted",
    "strong-session-read-uncommitted",
    "read-uncommitted",
];

/// `(model, models it implies)`.
const MODELS: &[(&str, &[&str])] = &[
    (
        "strict-serializable",
        &[
            "serializable",
            "strong-session-serializable",
            "strong-snapshot-isolation",
        ],
    ),
    (
        "strong-session-serializable",
        &["serializable", "strong-session-snapshot-isolation"],
    ),
    ("serializable", &["repeatable-read", "snapshot-isolation"]),
    (
        "strong-snapshot-isolation",
        &["strong-session-snapshot-isolation", "strong-read-committed"],
    ),
    (
        "strong-session-snapshot-isolation",
        &["snapshot-isolation", "strong-session-read-committed"],
    ),
    // Adya: SI ⊂ forward consistent view ⊂ consistent view ⊂ cursor stability.
    ("snapshot-isolation", &["cursor-stability"]),
    ("repeatable-read", &["cursor-stability"]),
    ("cursor-stability", &["read-committed"]),
    (
        "strong-read-committed",
        &["strong-session-read-committed", "strong-read-uncommitted"],
    ),
    (
        "strong-session-read-committed",
        &["read-committed", "strong-session-read-uncommitted"],
    ),
    ("read-committed", &["read-uncommitted"]),
    (
        "strong-read-uncommitted",
        &["strong-session-read-uncommitted"],
    ),
    ("strong-session-read-uncommitted", &["read-uncommitted"]),
];

/// `(model, anomalies it proscribes beyond the models it implies)`.
const PROSCRIBED: &[(&str, &[&str])] = &[
    (
        "strict-serializable",
        &["G1", "G1c-realtime", "G2-realtime"],
    ),
    ("strong-session-serializable", &["G1-process", "G2-process"]),
    ("serializable", &["internal", "G1", "G2"]),
    // Elle: generalized SI forbids every cycle whose rw edges are all
    // nonadjacent (G-nonadjacent, of which G-single is the one-edge case).
    (
        "strong-snapshot-isolation",
        &["internal", "G1-realtime", "G-nonadjacent-realtime"],
    ),
    (
        "strong-session-snapshot-isolation",
        &["internal", "G1-process", "G-nonadjacent-process"],
    ),
    (
        "snapshot-isolation",
        &["internal", "G1", "G-nonadjacent", "lost-update"],
    ),
    ("repeatable-read", &["G1", "G2-item", "lost-update"]),
    ("cursor-stability", &["G1", "lost-update"]),
    ("strong-read-committed", &["G1c-realtime"]),
    ("strong-session-read-committed", &["G1c-process"]),
    ("read-committed", &["G1"]),
    ("strong-read-uncommitted", &["G0-realtime"]),
    ("strong-session-read-uncommitted", &["G0-process"]),
    // Version orders are total and appended values unique: no model allows
    // these, so the weakest proscribes them.
    (
        "read-uncommitted",
        &[
            "G0",
            "duplicate-elements",
            "cyclic-versions",
            "garbage-read",
        ],
    ),
];

/// `(anomaly, anomalies it is also an instance of)`.
const IMPLIED: &[(&str, &[&str])] = &[
    ("G0", &["G1c", "G0-process"]),
    ("G0-process", &["G1c-process", "G0-realtime"]),
    ("G0-realtime", &["G1c-realtime"]),
    ("G1a", &["G1"]),
    ("G1b", &["G1"]),
    ("G1c", &["G1", "G1c-process"]),
    ("G1c-process", &["G1c-realtime", "G1-process"]),
    ("G1c-realtime", &["G1-realtime"]),
    ("G1", &["G1-process"]),
    ("G1-process", &["G1-realtime"]),
    // Every rw edge here is on an item, so G-single is G-single-item and
    // G-nonadjacent is G-nonadjacent-item, which Elle counts as G2-item too.
    ("G-single", &["G-nonadjacent", "G-single-process"]),
    (
        "G-single-process",
        &["G-nonadjacent-process", "G-single-realtime"],
    ),
    ("G-single-realtime", &["G-nonadjacent-realtime"]),
    ("G-nonadjacent", &["G2-item", "G-nonadjacent-process"]),
    (
        "G-nonadjacent-process",
        &["G2-item-process", "G-nonadjacent-realtime"],
    ),
    ("G-nonadjacent-realtime", &["G2-item-realtime"]),
    ("G2-item", &["G2", "G2-item-process"]),
    ("G2-item-process", &["G2-process", "G2-item-realtime"]),
    ("G2-item-realtime", &["G2-realtime"]),
    ("G2", &["G2-process"]),
    ("G2-process", &["G2-realtime"]),
    ("incompatible-order", &["G1a"]),
    // A read of the transaction's own later write: a trivial wr cycle.
    ("future-read", &["G1c"]),
    ("dirty-update", &["G1a"]),
    ("lost-update", &["G2-item"]),
];

fn closure(
    start: &[&str],
    edges: &[(&'static str, &'static [&'static str])],
    forward: bool,
) -> BTreeSet<&'static str> {
    let all: BTreeSet<&'static str> = edges
        .iter()
        .flat_map(|(a, bs)| std::iter::once(*a).chain(bs.iter().copied()))
        .collect();
    let mut seen: BTreeSet<&'static str> = BTreeSet::new();
    let mut stack: Vec<&'static str> = start.iter().filter_map(|s| all.get(*s).copied()).collect();
    while let Some(x) = stack.pop() {
        if !seen.insert(x) {
            continue;
        }
        for (a, bs) in edges {
            if forward && *a == x {
                stack.extend(bs.iter().copied());
            } else if !forward && bs.contains(&x) {
                stack.push(a);
            }
        }
    }
    seen
}

/// True when `name` is a model this checker knows.
pub fn is_model(name: &str) -> bool {
    MODEL_NAMES.contains(&name)
}

/// Every anomaly that rules `model` out (directly or through the models it
/// implies, and every anomaly implying one of those).
pub fn proscribed_by(model: &str) -> BTreeSet<&'static str> {
    let models = closure(&[model], MODELS, true);
    let direct: Vec<&str> = PROSCRIBED
        .iter()
        .filter(|(m, _)| models.contains(m) || *m == model)
        .flat_map(|(_, an)| an.iter().copied())
        .collect();
    closure(&direct, IMPLIED, false)
        .into_iter()
        .chain(direct)
        .collect()
}

/// The models ruled out by these anomalies: `(not, also_not)`, where `not`
/// is the weakest of them (those no other ruled-out model is weaker than)
/// and `also_not` the rest, each sorted by strength.
pub fn boundary(anomalies: &[&str]) -> (Vec<String>, Vec<String>) {
    let present = closure(anomalies, IMPLIED, true);
    let present: BTreeSet<&str> = present
        .into_iter()
        .chain(anomalies.iter().copied())
        .collect();
    let direct: Vec<&str> = PROSCRIBED
        .iter()
        .filter(|(_, an)| an.iter().any(|a| present.contains(a)))
        .map(|(m, _)| *m)
        .collect();
    let impossible = closure(&direct, MODELS, false);
    let mut not = Vec::new();
    let mut also = Vec::new();
    for m in MODEL_NAMES {
        if !impossible.contains(m) {
            continue;
        }
        // Weakest: none of the models it implies is also impossible.
        let below = closure(&[m], MODELS, true);
        if below.iter().any(|b| b != m && impossible.contains(b)) {
            also.push(m.to_string());
        } else {
            not.push(m.to_string());
        }
    }
    (not, also)
}

/// The models no found anomaly rules out, strongest first.
pub fn still_possible(anomalies: &[&str]) -> Vec<String> {
    let (not, also) = boundary(anomalies);
    MODEL_NAMES
        .iter()
        .filter(|m| !not.iter().chain(&also).any(|x| x == *m))
        .map(|m| m.to_string())
        .collect()
}
