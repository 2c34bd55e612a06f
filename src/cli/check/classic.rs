//! `faultline check --model bank|counter|unique-ids|queue|long-fork`: one
//! of Jepsen's classic workload checkers on each file, one verdict per
//! file, exit code of the worst.

use super::txn::worse;
use super::{collect, Args};
use crate::check::bank::BankOptions;
use crate::check::classic::{self, ClassicOptions, Verdict};
use crate::check::queue::QueueOptions;
use crate::check::Validity;
use crate::cli::{EXIT_ERROR, EXIT_INVALID, EXIT_UNKNOWN, EXIT_VALID};
use crate::history::{self, Format};
use anyhow::{bail, Context};
use rayon::prelude::*;
use serde_json::json;
use std::path::PathBuf;

/// Runs the classic checker `name` over `a.paths`.
pub(super) fn run(a: &Args, name: &str) -> anyhow::Result<i32> {
    let format = match &a.format {
        Some(f) => Some(Format::parse(f).with_context(|| {
            format!(
                "unknown --format {f:?}; expected one of {}",
                Format::NAMES.join(", ")
            )
        })?),
        None => None,
    };
    if a.expect.is_some()
        || a.no_split
        || a.all_keys
        || a.memory_limit.is_some()
        || !a.consistency_models.is_empty()
        || a.out.is_some()
    {
        bail!("--expect, --no-split, --all-keys, --memory-limit, --consistency-model and --out do not apply to --model {name}");
    }
    if (a.total.is_some() || a.negative_balances) && name != "bank" {
        bail!("--total and --negative-balances apply to --model bank only");
    }
    if a.duplicates_allowed && name != "queue" {
        bail!("--duplicates-allowed applies to --model queue only");
    }
    let opts = ClassicOptions {
        bank: BankOptions {
            total: a.total,
            negative_balances: a.negative_balances,
        },
        queue: QueueOptions {
            duplicates_allowed: a.duplicates_allowed,
        },
    };
    let (files, _) = collect(&a.paths)?;
    if files.is_empty() {
        bail!("no history files found");
    }
    let many = files.len() > 1;
    let results: Vec<(PathBuf, Result<Verdict, String>)> = files
        .par_iter()
        .map(|p| {
            let r = history::read_path(p, format)
                .map_err(|e| e.to_string())
                .and_then(|h| match classic::check(name, &h, &opts) {
                    Some(r) => r.map_err(|e| e.to_string()),
                    None => Err(format!("no classic checker named {name}")),
                });
            (p.clone(), r)
        })
        .collect();
    let mut worst = EXIT_VALID;
    for (path, r) in &results {
        let p = path.display();
        match (r, a.json) {
            (Err(e), true) => println!("{}", json!({"path": path, "verdict": "error", "error": e})),
            (Err(e), false) => println!("{p}: bad input: {e}"),
            (Ok(v), true) => {
                let mut out = v.report.clone();
                if let Some(o) = out.as_object_mut() {
                    o.insert("path".into(), json!(path));
                    o.insert("verdict".into(), json!(v.validity));
                    o.insert("model".into(), json!(name));
                }
                println!("{out}");
            }
            (Ok(v), false) => {
                println!("{p}: {} ({name})", v.validity);
                if !many || v.validity != Validity::Valid {
                    println!("  {}", v.explanation);
                }
            }
        }
        let code = match r {
            Err(_) => EXIT_ERROR,
            Ok(v) => match v.validity {
                Validity::Valid => EXIT_VALID,
                Validity::Invalid => EXIT_INVALID,
                Validity::Unknown | Validity::Incomplete => EXIT_UNKNOWN,
            },
        };
        worst = worse(worst, code);
    }
    Ok(worst)
}
