//! `faultline check --shrink FILE`: writes the first invalid key's smallest
//! failing sub-history (the linearizability checker's `shrunk`, see
//! [`crate::check::linear::shrink`]; for transactions, the first cycle's
//! transactions when they alone still show the anomaly) as a native JSONL
//! history.

use crate::check::registry::Verdict;
use crate::check::Validity;
use crate::history::{History, Op};
use anyhow::Context;
use serde_json::Value;
use std::path::Path;

/// Writes the sub-history of the first invalid key of `v` into `out`, and
/// says so on stderr; when the verdict has none (not invalid), says that
/// instead and writes nothing.
pub(super) fn write(out: &Path, v: &Verdict) -> anyhow::Result<()> {
    let shrunk = v.details.get("shrunk").or_else(|| {
        v.details
            .get("failures")
            .and_then(Value::as_array)
            .and_then(|keys| keys.iter().find_map(|k| k.get("shrunk")))
    });
    let Some(shrunk) = shrunk.filter(|s| s["confirmed"] != false) else {
        let why = if v.validity == Validity::Invalid {
            "no failing sub-history was found"
        } else {
            "the history is not invalid"
        };
        eprintln!("--shrink: nothing written to {}: {why}", out.display());
        return Ok(());
    };
    let events: Vec<Op> = serde_json::from_value(shrunk["events"].clone())
        .context("the checker's shrunk events are not history events")?;
    let history = History::new(events);
    let mut text = Vec::new();
    history.write_jsonl(&mut text)?;
    std::fs::write(out, text).with_context(|| format!("cannot write {}", out.display()))?;
    let minimal = match (shrunk["minimal"].as_bool(), shrunk["anomaly"].as_str()) {
        (Some(true), _) => "1-minimal".to_string(),
        (_, Some(anomaly)) => format!("the {anomaly} cycle's transactions"),
        _ => "not proven minimal".to_string(),
    };
    eprintln!(
        "wrote the smallest failing sub-history ({} ops, {minimal}) to {}",
        shrunk["ops"].as_array().map_or(0, Vec::len),
        out.display()
    );
    Ok(())
}
