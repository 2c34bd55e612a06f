//! `faultline check`: check history files (or directories of them) for
//! linearizability, print a verdict per file and exit with the worst.

use super::{EXIT_ERROR, EXIT_INVALID, EXIT_UNKNOWN, EXIT_VALID};
use crate::check::linear::{self, CheckError, Options, Report};
use crate::check::Validity;
use crate::history::{self, Call, Format, History};
use crate::model::{self, Model, ModelVisitor};
use crate::report;
use anyhow::{bail, Context};
use rayon::prelude::*;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod txn;

/// Arguments of `faultline check`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Exit codes: 0 valid, 1 invalid, 2 unknown, 3 bad input or usage. \
With several files the worst wins: bad input, then invalid, then unknown. \
With --expect: 0 when every verdict is as expected, 1 otherwise."
)]
pub struct Args {
    /// History files, or directories to search for them (recursively).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Model: register, cas-register, cas-register-knossos, kv, mutex, set,
    /// fifo-queue, unordered-queue. Guessed from the functions when absent.
    /// list-append or rw-register check transactions (Elle-style) instead.
    #[arg(long, short)]
    model: Option<String>,
    /// With list-append or rw-register: a consistency model the history must
    /// satisfy (repeatable; default strict-serializable).
    #[arg(long = "consistency-model", value_name = "MODEL")]
    consistency_models: Vec<String>,
    /// Write the report artifacts (report.html, timeline.html, plots,
    /// counterexample.html or anomalies.html; docs/reports.md) into this
    /// directory, in a subdirectory per file when there are several. With
    /// list-append or rw-register also each anomaly's explanation
    /// (`<anomaly>.txt`) and cycle graphs (`<anomaly>/<i>.dot`, `.svg` when
    /// Graphviz is installed).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Also write a JUnit XML file here: a testsuite per file, an invalid
    /// or unknown verdict as a failure whose message explains it.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Also write a Markdown summary here (a row per file), e.g.
    /// "$GITHUB_STEP_SUMMARY".
    #[arg(long, value_name = "FILE")]
    summary_md: Option<PathBuf>,
    /// With rw-register: also order each key's writes per process.
    #[arg(long)]
    sequential_keys: bool,
    /// With rw-register: also order each key's writes by real time.
    #[arg(long)]
    linearizable_keys: bool,
    /// Input format: jsonl, edn, porcupine-kv, jepsen-independent, jepsen-log.
    /// Detected from content when absent.
    #[arg(long, short)]
    format: Option<String>,
    /// Print one JSON object per file instead of text.
    #[arg(long)]
    json: bool,
    /// Give up on a file after this many seconds (verdict unknown).
    #[arg(long, value_name = "SECONDS")]
    time_limit: Option<f64>,
    /// Give up when the search's memo tables reach this many MiB (verdict
    /// unknown). Default: half the available memory, at most 16 GiB.
    #[arg(long, value_name = "MIB")]
    memory_limit: Option<usize>,
    /// Search a multi-key history whole instead of key by key (needs a
    /// keyed model such as kv).
    #[arg(long)]
    no_split: bool,
    /// A TSV file of `path<TAB>valid|invalid|unknown` (paths relative to the
    /// TSV's folder): compare every verdict with it.
    #[arg(long, value_name = "TSV")]
    expect: Option<PathBuf>,
    /// Search every key to its end even after one is found invalid (by
    /// default the other keys stop, and show as unknown).
    #[arg(long)]
    all_keys: bool,
    /// After checking, print time and peak memory to stderr.
    #[arg(long)]
    stats: bool,
}

/// The outcome for one file.
struct FileResult {
    path: PathBuf,
    read_time: Duration,
    outcome: Result<(String, Report), String>,
}

struct Visit<'a> {
    history: &'a History,
    calls: &'a [Call],
    opts: &'a Options,
}

impl ModelVisitor<Result<Report, CheckError>> for Visit<'_> {
    fn visit<M: Model>(self, m: &M) -> Result<Report, CheckError> {
        linear::check_calls(m, self.history, self.calls, self.opts)
    }
}

/// Runs `faultline check`.
pub fn run(a: Args) -> anyhow::Result<i32> {
    if let Some(w) = a
        .model
        .as_deref()
        .and_then(crate::check::txn::Workload::parse)
    {
        return txn::run(&a, w);
    }
    if !a.consistency_models.is_empty() || a.sequential_keys || a.linearizable_keys {
        bail!("--consistency-model, --sequential-keys and --linearizable-keys need --model list-append or rw-register");
    }
    let started = Instant::now();
    let format = match &a.format {
        Some(f) => Some(Format::parse(f).with_context(|| {
            format!(
                "unknown --format {f:?}; expected one of {}",
                Format::NAMES.join(", ")
            )
        })?),
        None => None,
    };
    if let Some(m) = &a.model {
        if model::by_name(m, NameOnly).is_none() {
            let names: Vec<&str> = model::MODELS.iter().map(|(n, _)| *n).collect();
            bail!(
                "unknown --model {m:?}; expected one of {}",
                names.join(", ")
            );
        }
    }
    let mut opts = Options {
        split_by_key: !a.no_split,
        stop_at_first_invalid: !a.all_keys,
        ..Options::default()
    };
    if let Some(t) = a.time_limit {
        if !(t > 0.0 && t.is_finite()) {
            bail!("--time-limit must be a positive number of seconds, got {t}");
        }
        opts.time_limit = Some(Duration::from_secs_f64(t));
    }
    if let Some(m) = a.memory_limit {
        opts.memory_limit = m << 20;
    }

    let (files, skipped) = collect(&a.paths)?;
    if files.is_empty() {
        bail!(
            "no history files found in {}",
            a.paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let results: Vec<FileResult> = files
        .par_iter()
        .map(|p| check_file(p, format, a.model.as_deref(), &opts))
        .collect();

    let many = results.len() > 1;
    for r in &results {
        if a.json {
            println!("{}", to_json(r));
        } else {
            print_human(r, many);
        }
    }
    let count = |v: Validity| {
        results
            .iter()
            .filter(|r| matches!(&r.outcome, Ok((_, rep)) if rep.validity == v))
            .count()
    };
    let errors = results.iter().filter(|r| r.outcome.is_err()).count();
    let (valid, invalid, unknown) = (
        count(Validity::Valid),
        count(Validity::Invalid),
        count(Validity::Unknown),
    );
    let check_time: Duration = results
        .iter()
        .filter_map(|r| r.outcome.as_ref().ok())
        .map(|(_, rep)| rep.elapsed)
        .sum();
    let read_time: Duration = results.iter().map(|r| r.read_time).sum();
    if many && !a.json {
        println!(
            "{} files: {valid} valid, {invalid} invalid, {unknown} unknown, {errors} bad input{}; checking took {} in all (reading {}), {} wall",
            results.len(),
            if skipped > 0 { format!(", {skipped} other files skipped") } else { String::new() },
            ms(check_time),
            ms(read_time),
            ms(started.elapsed()),
        );
    }
    if a.stats {
        eprintln!(
            "stats: {} files, check {}, read {}, wall {}, peak memory {} MiB",
            results.len(),
            ms(check_time),
            ms(read_time),
            ms(started.elapsed()),
            peak_rss_mib().map_or("?".into(), |m| m.to_string())
        );
    }
    let many_files = results.len() > 1;
    let mut suites = Vec::new();
    for r in &results {
        let details = to_json(r);
        let (validity, sentence) = match &r.outcome {
            Err(e) => ("error".to_string(), e.clone()),
            Ok((_, rep)) => (
                rep.validity.to_string(),
                report::sentence("linearizable", &details),
            ),
        };
        if let (Some(out), Ok((_, rep))) = (&a.out, &r.outcome) {
            let dir = if many_files {
                out.join(txn::stem(&r.path))
            } else {
                out.clone()
            };
            let mut details = details.clone();
            details["valid"] = json!(rep.validity);
            let results = json!({"valid": rep.validity, "checkers": {"linearizable": details}});
            file_artifacts(&r.path, &dir, format, &results);
        }
        suites.push(report::junit::Suite {
            name: r.path.display().to_string(),
            cases: vec![report::Verdict {
                name: match &r.outcome {
                    Ok((model, _)) => format!("linearizable ({model})"),
                    Err(_) => "linearizable".into(),
                },
                validity,
                sentence,
            }],
            seconds: r
                .outcome
                .as_ref()
                .ok()
                .map(|(_, rep)| rep.elapsed.as_secs_f64()),
        });
    }
    let overall = if errors > 0 {
        "error"
    } else if invalid > 0 {
        "invalid"
    } else if unknown > 0 {
        "unknown"
    } else {
        "valid"
    };
    ci_outputs(&a, &suites, overall);
    if let Some(tsv) = &a.expect {
        return compare_expected(tsv, &results);
    }
    Ok(if errors > 0 {
        EXIT_ERROR
    } else if invalid > 0 {
        EXIT_INVALID
    } else if unknown > 0 {
        EXIT_UNKNOWN
    } else {
        EXIT_VALID
    })
}

/// Writes the report artifacts of one checked file into `dir` (the history
/// is read again). Problems are warnings: they never change the verdict.
fn file_artifacts(path: &Path, dir: &Path, format: Option<Format>, results: &serde_json::Value) {
    let h = match history::read_path(path, format) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("warning: no report for {}: {e}", path.display());
            return;
        }
    };
    let link = canonical(path).display().to_string();
    let w = report::write_all(
        dir,
        &report::Run {
            title: path.display().to_string(),
            history: &h,
            test: None,
            results,
            links: vec![(format!("{} — the history", path.display()), link)],
        },
    );
    for (name, why) in &w.failures {
        eprintln!("warning: {}: report artifact {name}: {why}", path.display());
    }
}

/// The `--junit` and `--summary-md` files, when asked for.
fn ci_outputs(a: &Args, suites: &[report::junit::Suite], overall: &str) {
    let title = match suites {
        [one] => one.name.clone(),
        many => format!("check of {} files", many.len()),
    };
    for e in report::write_ci(
        a.junit.as_deref(),
        a.summary_md.as_deref(),
        &title,
        overall,
        suites,
        None,
    ) {
        eprintln!("warning: {e}");
    }
}

struct NameOnly;
impl ModelVisitor<()> for NameOnly {
    fn visit<M: Model>(self, _: &M) {}
}

/// Expands directories into the history files in them (sorted); files in
/// directories whose content is no known format are skipped and counted.
fn collect(paths: &[PathBuf]) -> anyhow::Result<(Vec<PathBuf>, usize)> {
    let mut files = Vec::new();
    let mut skipped = 0;
    for p in paths {
        let meta = std::fs::metadata(p).with_context(|| format!("cannot read {}", p.display()))?;
        if !meta.is_dir() {
            files.push(p.clone());
            continue;
        }
        let mut stack = vec![p.clone()];
        let mut found = Vec::new();
        while let Some(dir) = stack.pop() {
            let entries = std::fs::read_dir(&dir)
                .with_context(|| format!("cannot list {}", dir.display()))?;
            for e in entries {
                let e = e.with_context(|| format!("cannot list {}", dir.display()))?;
                let path = e.path();
                let name = e.file_name();
                if name.to_string_lossy().starts_with('.') {
                    continue;
                }
                if path.is_dir() {
                    stack.push(path);
                } else if !is_document(&path) && looks_like_history(&path) {
                    found.push(path);
                } else {
                    skipped += 1;
                }
            }
        }
        found.sort();
        files.extend(found);
    }
    Ok((files, skipped))
}

/// Files that sit beside histories but are never one (READMEs, verdict
/// tables, reports).
fn is_document(path: &Path) -> bool {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    matches!(
        ext.as_str(),
        "md" | "tsv" | "csv" | "html" | "svg" | "png" | "toml" | "json"
    )
}

/// True for empty files and files whose first 64 KiB detect as a format.
fn looks_like_history(path: &Path) -> bool {
    use std::io::Read;
    let mut buf = Vec::new();
    let Ok(f) = std::fs::File::open(path) else {
        return true;
    };
    if f.take(64 << 10).read_to_end(&mut buf).is_err() {
        return true;
    }
    let text = String::from_utf8_lossy(&buf);
    text.trim().is_empty() || history::read::detect(&text).is_some()
}

fn check_file(
    path: &Path,
    format: Option<Format>,
    model_name: Option<&str>,
    opts: &Options,
) -> FileResult {
    let t0 = Instant::now();
    let read = history::read_path(path, format);
    let read_time = t0.elapsed();
    let outcome = (|| {
        let h = read.map_err(|e| e.to_string())?;
        let calls = h.calls().map_err(|e| e.to_string())?;
        let name = match model_name {
            Some(m) => m,
            None => model::guess(&calls).ok_or_else(|| {
                let mut fs: Vec<&str> = calls.iter().map(|c| c.f.as_str()).collect();
                fs.sort_unstable();
                fs.dedup();
                format!(
                    "{}: cannot guess the model from the functions {}; name it with --model",
                    path.display(),
                    fs.join(", ")
                )
            })?,
        };
        let report = model::by_name(
            name,
            Visit {
                history: &h,
                calls: &calls,
                opts,
            },
        )
        .ok_or_else(|| format!("unknown model {name}"))?
        .map_err(|e| e.to_string())?;
        Ok((name.to_string(), report))
    })();
    FileResult {
        path: path.to_path_buf(),
        read_time,
        outcome,
    }
}

fn ms(d: Duration) -> String {
    let m = d.as_secs_f64() * 1000.0;
    if m < 10.0 {
        format!("{m:.2} ms")
    } else if m < 10_000.0 {
        format!("{m:.0} ms")
    } else {
        format!("{:.1} s", m / 1000.0)
    }
}

fn print_human(r: &FileResult, many: bool) {
    let path = r.path.display();
    let (name, rep) = match &r.outcome {
        Err(e) => {
            println!("{path}: bad input: {e}");
            return;
        }
        Ok(x) => x,
    };
    let keys = rep.keys.len();
    println!(
        "{path}: {} ({}, {} ops, {keys} key{}, {})",
        rep.validity,
        name,
        rep.ops,
        if keys == 1 { "" } else { "s" },
        ms(rep.elapsed)
    );
    let failures: Vec<_> = rep.failures().collect();
    let shown = if many { 1 } else { 10 };
    for k in failures.iter().take(shown) {
        if let Some(reason) = &k.reason {
            let key = k
                .key
                .as_ref()
                .map(|k| format!("key {k}: "))
                .unwrap_or_default();
            println!("  {key}unknown: {reason}");
        }
        if let Some(cx) = &k.counterexample {
            println!("  {}", cx.explanation);
            if many {
                continue;
            }
            let op = &cx.op;
            let done = op
                .complete_index
                .map(|c| format!(" to {c}"))
                .unwrap_or_default();
            println!(
                "    the operation: process {} {} (events {}{done}), {:?}",
                op.process, op.f, op.invoke_index, op.outcome
            );
            if let Some(path) = cx.final_paths.first() {
                let tail = 8.min(path.len());
                println!(
                    "    longest linearizable prefix ({} steps{}):",
                    path.len(),
                    if tail < path.len() {
                        ", last 8 shown"
                    } else {
                        ""
                    }
                );
                for s in &path[path.len() - tail..] {
                    println!(
                        "      process {:<4} {:<40} -> {}",
                        s.op.process.to_string(),
                        s.op.description,
                        s.state
                    );
                }
            }
            if cx.final_paths.len() > 1 {
                println!("    ({} more prefixes in --json)", cx.final_paths.len() - 1);
            }
        }
    }
    if failures.len() > shown {
        println!(
            "  ... and {} more keys not valid (see --json)",
            failures.len() - shown
        );
    }
}

fn to_json(r: &FileResult) -> serde_json::Value {
    match &r.outcome {
        Err(e) => {
            json!({"path": r.path, "verdict": "error", "error": e, "read_ms": r.read_time.as_secs_f64() * 1e3})
        }
        Ok((name, rep)) => {
            let failures: Vec<_> = rep.failures().collect();
            json!({
                "path": r.path,
                "verdict": rep.validity,
                "model": name,
                "ops": rep.ops,
                "keys": rep.keys.len(),
                "configurations": rep.keys.iter().map(|k| k.configurations).sum::<u64>(),
                "elapsed_ms": rep.elapsed.as_secs_f64() * 1e3,
                "read_ms": r.read_time.as_secs_f64() * 1e3,
                "failures": failures,
            })
        }
    }
}

fn compare_expected(tsv: &Path, results: &[FileResult]) -> anyhow::Result<i32> {
    let text =
        std::fs::read_to_string(tsv).with_context(|| format!("cannot read {}", tsv.display()))?;
    let base = tsv.parent().unwrap_or(Path::new("."));
    let mut expected: BTreeMap<PathBuf, String> = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.split('\t');
        let (Some(p), Some(v), None) = (parts.next(), parts.next(), parts.next()) else {
            bail!(
                "{}:{}: expected `path<TAB>valid|invalid|unknown`, found {line:?}",
                tsv.display(),
                i + 1
            );
        };
        if !matches!(v.trim(), "valid" | "invalid" | "unknown") {
            bail!(
                "{}:{}: expected valid, invalid or unknown, found {v:?}",
                tsv.display(),
                i + 1
            );
        }
        expected.insert(canonical(&base.join(p)), v.trim().to_string());
    }
    let mut matched = 0;
    let mut mismatches = Vec::new();
    for (path, want) in &expected {
        let got = results
            .iter()
            .find(|r| canonical(&r.path) == *path)
            .map(|r| match &r.outcome {
                Ok((_, rep)) => rep.validity.as_str().to_string(),
                Err(_) => "error".to_string(),
            });
        match got {
            Some(g) if g == *want => matched += 1,
            Some(g) => mismatches.push(format!("{}: expected {want}, got {g}", path.display())),
            None => mismatches.push(format!(
                "{}: expected {want}, but it was not checked",
                path.display()
            )),
        }
    }
    for m in &mismatches {
        println!("MISMATCH {m}");
    }
    println!(
        "expected verdicts: {matched} of {} as expected ({})",
        expected.len(),
        tsv.display()
    );
    Ok(if mismatches.is_empty() {
        EXIT_VALID
    } else {
        EXIT_INVALID
    })
}

fn canonical(p: &Path) -> PathBuf {
    p.canonicalize().unwrap_or_else(|_| p.to_path_buf())
}

/// Peak resident memory of this process (VmHWM), in MiB.
fn peak_rss_mib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace()
        .nth(1)?
        .parse::<u64>()
        .ok()
        .map(|k| k / 1024)
}
