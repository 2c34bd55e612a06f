//! `faultline check --model list-append|rw-register`: the transactional
//! checker on each file, one verdict per file, exit code of the worst.

use super::{ci_outputs, collect, file_artifacts, ms, Args};
use crate::check::txn::{self, Options, Report, Workload};
use crate::check::Validity;
use crate::cli::{EXIT_ERROR, EXIT_INVALID, EXIT_UNKNOWN, EXIT_VALID};
use crate::history::{self, Format};
use anyhow::{bail, Context};
use rayon::prelude::*;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Runs the transactional checker over `a.paths`.
pub(super) fn run(a: &Args, workload: Workload) -> anyhow::Result<i32> {
    let format = match &a.format {
        Some(f) => Some(Format::parse(f).with_context(|| {
            format!(
                "unknown --format {f:?}; expected one of {}",
                Format::NAMES.join(", ")
            )
        })?),
        None => None,
    };
    if a.expect.is_some() || a.no_split || a.all_keys || a.memory_limit.is_some() {
        bail!("--expect, --no-split, --all-keys and --memory-limit apply to linearizability models, not {}", workload.name());
    }
    let mut opts = Options::new(workload);
    if !a.consistency_models.is_empty() {
        for m in &a.consistency_models {
            if !txn::models::is_model(m) {
                bail!(
                    "unknown --consistency-model {m:?}; expected one of {}",
                    txn::models::MODEL_NAMES.join(", ")
                );
            }
        }
        opts.consistency_models = a.consistency_models.clone();
    }
    if let Some(t) = a.time_limit {
        if !(t > 0.0 && t.is_finite()) {
            bail!("--time-limit must be a positive number of seconds, got {t}");
        }
        opts.time_limit = Some(Duration::from_secs_f64(t));
    }
    opts.sequential_keys = a.sequential_keys;
    opts.linearizable_keys = a.linearizable_keys;

    let (files, _) = collect(&a.paths)?;
    if files.is_empty() {
        bail!("no history files found");
    }
    let many = files.len() > 1;
    let results: Vec<(PathBuf, Result<Report, String>)> = files
        .par_iter()
        .map(|p| {
            let r = history::read_path(p, format)
                .map_err(|e| e.to_string())
                .and_then(|h| txn::check(&h, &opts).map_err(|e| e.to_string()));
            (p.clone(), r)
        })
        .collect();

    let mut worst = EXIT_VALID;
    let mut suites = Vec::new();
    for (path, r) in &results {
        let out_dir = a
            .out
            .as_ref()
            .map(|d| if many { d.join(stem(path)) } else { d.clone() });
        let written = match (r, &out_dir) {
            (Ok(rep), Some(dir)) => Some(
                txn::write_outputs(rep, dir)
                    .with_context(|| format!("cannot write into {}", dir.display()))?,
            ),
            _ => None,
        };
        if a.json {
            println!("{}", to_json(path, r));
        } else {
            print_human(
                path,
                r,
                many,
                out_dir
                    .as_deref()
                    .filter(|_| written.is_some_and(|w| !w.is_empty())),
            );
        }
        let details = to_json(path, r);
        if let (Some(dir), Ok(rep)) = (&out_dir, r) {
            let results = json!({"valid": rep.validity, "checkers": {"txn": details}});
            file_artifacts(path, dir, format, &results);
        }
        suites.push(crate::report::junit::Suite {
            name: path.display().to_string(),
            cases: vec![crate::report::Verdict {
                name: format!("txn ({})", workload.name()),
                validity: match r {
                    Ok(rep) => rep.validity.to_string(),
                    Err(_) => "error".into(),
                },
                sentence: crate::report::sentence("txn", &details),
            }],
            seconds: r.as_ref().ok().map(|rep| rep.elapsed.as_secs_f64()),
        });
        let code = match r {
            Err(_) => EXIT_ERROR,
            Ok(rep) => match rep.validity {
                Validity::Valid => EXIT_VALID,
                Validity::Invalid => EXIT_INVALID,
                Validity::Unknown | Validity::Incomplete => EXIT_UNKNOWN,
            },
        };
        worst = worse(worst, code);
    }
    let overall = match worst {
        EXIT_ERROR => "error",
        EXIT_INVALID => "invalid",
        EXIT_UNKNOWN => "unknown",
        _ => "valid",
    };
    ci_outputs(a, &suites, overall);
    Ok(worst)
}

/// Bad input beats invalid beats unknown beats valid.
pub(super) fn worse(a: i32, b: i32) -> i32 {
    let rank = |c: i32| match c {
        EXIT_ERROR => 3,
        EXIT_INVALID => 2,
        EXIT_UNKNOWN => 1,
        _ => 0,
    };
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}

/// A file's name without its extension: its folder under `--out`.
pub(super) fn stem(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "history".to_string())
}

fn print_human(path: &Path, r: &Result<Report, String>, many: bool, out: Option<&Path>) {
    let path = path.display();
    let rep = match r {
        Err(e) => {
            println!("{path}: bad input: {e}");
            return;
        }
        Ok(rep) => rep,
    };
    println!(
        "{path}: {} ({}, {} transactions, consistency model {}, {})",
        rep.validity,
        rep.workload.name(),
        rep.txns,
        rep.consistency_models.join(", "),
        ms(rep.elapsed)
    );
    if let Some(reason) = &rep.reason {
        println!("  unknown: {reason}");
    }
    if !rep.anomaly_types.is_empty() {
        let counts: Vec<String> = rep
            .anomaly_types
            .iter()
            .map(|n| format!("{n} ({})", rep.counts.get(n).copied().unwrap_or(0)))
            .collect();
        println!("  anomalies: {}", counts.join(", "));
        println!("  not {}; also not {}", list(&rep.not), list(&rep.also_not));
        println!("  still possible: {}", list(&rep.still_possible));
        let shown = if many { 1 } else { 3 };
        for name in &rep.anomaly_types {
            for a in rep.anomalies[name].iter().take(shown) {
                println!("  {name}: {}", a.explanation);
            }
        }
    }
    if let Some(dir) = out {
        println!("  explanations and cycle graphs in {}", dir.display());
    }
}

fn list(xs: &[String]) -> String {
    if xs.is_empty() {
        "-".to_string()
    } else {
        xs.join(", ")
    }
}

fn to_json(path: &Path, r: &Result<Report, String>) -> serde_json::Value {
    match r {
        Err(e) => json!({"path": path, "verdict": "error", "error": e}),
        Ok(rep) => {
            let mut v =
                serde_json::to_value(rep).unwrap_or_else(|e| json!({"error": e.to_string()}));
            if let Some(o) = v.as_object_mut() {
                o.insert("path".into(), json!(path));
                o.insert("verdict".into(), json!(rep.validity));
            }
            v
        }
    }
}
