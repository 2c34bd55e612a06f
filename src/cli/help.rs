//! Help texts that list what the registries hold, filled in when the
//! command line is parsed: the dbs of [`crate::system::SYSTEMS`], the
//! models and checkers of [`crate::check::registry::CHECKERS`], the
//! workload and nemesis files and the built-in fault families. A list
//! written by hand in a doc comment goes stale; these cannot.

use clap::Command;

/// The models `faultline check --model` takes, grouped by checker:
/// linearizability, transactional, and each classic checker.
pub fn models() -> String {
    use crate::check::registry;
    let linear = registry::for_model(None);
    let mut parts = vec![format!(
        "linearizability: {} (alias multi-register for kv)",
        linear.models_text()
    )];
    for c in registry::CHECKERS.iter() {
        if c.name() == linear.name() {
            continue;
        }
        let text = c.models_text();
        // A checker judging models by name is reachable through --model;
        // the others (stats, perf, ...) only run beside a workload.
        let first = text.split([',', ' ']).next().unwrap_or_default();
        if !c.judges(first) {
            continue;
        }
        if c.name() == "txn" {
            parts.push(format!("transactional (Elle-style): {text}"));
        } else {
            parts.push(format!("classic: {text}"));
        }
    }
    // Classic checkers come one per entry: gather them on one line.
    let classic: Vec<String> = parts
        .iter()
        .filter_map(|p| p.strip_prefix("classic: ").map(str::to_string))
        .collect();
    parts.retain(|p| !p.starts_with("classic: "));
    if !classic.is_empty() {
        parts.push(format!(
            "classic (Jepsen's checkers): {}",
            classic.join(", ")
        ));
    }
    parts.join("; ")
}

/// The names of the `.toml` files in the folder `faultline run` would use
/// for `name` (workloads, nemeses), sorted.
#[cfg(feature = "controller")]
fn file_names(name: &str) -> Vec<String> {
    let dir = super::run::definitions_dir(&None, name);
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| {
                    let p = e.path();
                    (p.extension()? == "toml")
                        .then(|| p.file_stem()?.to_str().map(str::to_string))
                        .flatten()
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Every nemesis `--nemesis` can name: the built-in fault families and
/// the nemesis files.
#[cfg(feature = "controller")]
pub fn nemeses() -> String {
    let mut names: Vec<String> = crate::nemesis::Family::ALL
        .iter()
        .map(|f| f.name().to_string())
        .collect();
    for n in file_names("nemeses") {
        if !names.contains(&n) {
            names.push(n);
        }
    }
    names.join(", ")
}

/// Every workload in the workloads folder.
#[cfg(feature = "controller")]
pub fn workloads() -> String {
    file_names("workloads").join(", ")
}

/// The dbs known by name.
#[cfg(feature = "controller")]
pub fn dbs() -> String {
    crate::system::known()
}

/// `cmd` with the help of its listing arguments filled in from the
/// registries.
pub fn fill(cmd: Command) -> Command {
    let models = models();
    let cmd = cmd.mut_subcommand("check", |c| {
        c.mut_arg("model", |a| {
            a.help(format!(
                "Model (guessed from the functions when absent): {models}"
            ))
            .long_help(format!(
                "The model to check against; guessed from the functions when absent. \
                 {models}. Details: docs/checkers.md, docs/txn-checker.md"
            ))
        })
    });
    #[cfg(feature = "controller")]
    let cmd = {
        let (dbs, nemeses, workloads) = (dbs(), nemeses(), workloads());
        let db_help = format!(
            "The system under test: {dbs} (memory: in this process), or a db file (FILE.toml or file:PATH; docs/file-db.md)"
        );
        let db_arg = |a: clap::Arg| a.help(db_help.clone());
        cmd.mut_subcommand("run", |c| {
            c.mut_arg("db", db_arg)
                .mut_arg("workload", |a| {
                    a.help(format!(
                        "The workload: {workloads}, or a workload file (.toml; docs/workload-format.md)"
                    ))
                })
                .mut_arg("nemesis", |a| {
                    a.help(format!(
                        "Nemeses, comma-separated: {nemeses}, or a nemesis file; `none` for no faults"
                    ))
                })
        })
        .mut_subcommand("db", |c| {
            c.mut_subcommand("up", |s| s.mut_arg("db", db_arg))
                .mut_subcommand("down", |s| s.mut_arg("db", db_arg))
                .mut_subcommand("status", |s| s.mut_arg("db", db_arg))
        })
        .mut_subcommand("compare", |c| {
            c.mut_arg("db", |a| a.help(format!("Databases, comma-separated: {dbs} (default: every db stored)")))
                .mut_arg("workload", |a| {
                    a.help(format!("Workloads, comma-separated: {workloads} (default: every workload stored)"))
                })
                .mut_arg("nemesis", |a| {
                    a.help(format!(
                        "Nemeses, comma-separated: {nemeses}; `a+b` for several at once, `none` for no faults (default: every nemesis stored)"
                    ))
                })
        })
    };
    cmd
}

/// A clap value parser: a positive, finite number of seconds (negative
/// numbers reach it: the arguments using it allow them, so `-5` is a value,
/// not a flag).
pub fn positive_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        _ => Err(format!("must be a positive number of seconds, got {s}")),
    }
}

/// Like [`positive_seconds`], for rates.
pub fn positive_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        _ => Err(format!(
            "must be a positive number of operations per second, got {s}"
        )),
    }
}
