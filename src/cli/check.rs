//! `faultline check`: check history files (or directories of them) with
//! the checker `--model` names — linearizability against a model, the
//! transactional checker, or one of Jepsen's classic checkers, all through
//! the one door ([`crate::check::registry`]) — print a verdict per file,
//! write the report, JUnit and Markdown outputs asked for, and exit with
//! the worst.

use super::{EXIT_ERROR, EXIT_INVALID, EXIT_UNKNOWN, EXIT_VALID};
use crate::check::registry::{self, show_duration as ms, CheckContext, Checker, Verdict};
use crate::check::txn;
use crate::history::{self, Format, History};
use crate::report;
use anyhow::{bail, Context};
use rayon::prelude::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod files;
mod shrink;

/// Set once standard output is gone (`faultline check ... | head`): the
/// files are still checked, so the exit code is still the verdict, but
/// nothing more is printed.
pub(crate) static STDOUT_GONE: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// `println!` that stops printing, instead of panicking, when the reader
/// of standard output has gone.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        use std::sync::atomic::Ordering;
        if !$crate::cli::check::STDOUT_GONE.load(Ordering::Relaxed)
            && writeln!(std::io::stdout().lock(), $($arg)*).is_err()
        {
            $crate::cli::check::STDOUT_GONE.store(true, Ordering::Relaxed);
        }
    }};
}
pub(super) use say;

use files::{collect, compare_expected, stem};

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
    /// The model: a linearizability model, a transactional one (checked
    /// Elle-style) or a classic workload's checker; --help lists them from
    /// the checker registry. Guessed from the functions when absent.
    #[arg(long, short)]
    model: Option<String>,
    /// With bank: the total every read must see (default: the first
    /// successful read's total).
    #[arg(long, value_name = "AMOUNT")]
    total: Option<i64>,
    /// With bank: balances may be negative.
    #[arg(long)]
    negative_balances: bool,
    /// With queue: at-least-once delivery, duplicates are not an error.
    #[arg(long)]
    duplicates_allowed: bool,
    /// With list-append or rw-register: a consistency model the history must
    /// satisfy (repeatable; default strict-serializable).
    #[arg(long = "consistency-model", value_name = "MODEL")]
    consistency_models: Vec<String>,
    /// Write the report artifacts (report.html, timeline.html, plots,
    /// counterexample.html or anomalies.html; docs/reports.md) into this
    /// directory, in a subdirectory per file when there are several. With
    /// list-append or rw-register also each anomaly's explanation
    /// (`<anomaly>.txt`) and cycle graphs (`<anomaly>/<i>.dot`, and drawn as
    /// `<anomaly>/<i>.svg`).
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
    /// With rw-register: also order the versions of each key a process
    /// reads and writes, in its order.
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
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true, value_parser = super::help::positive_seconds)]
    time_limit: Option<f64>,
    /// With a linearizability model: give up (verdict unknown) before this
    /// process's resident memory passes this many MiB. Default: half the
    /// available memory, at most 16 GiB.
    #[arg(long, value_name = "MIB")]
    memory_limit: Option<usize>,
    /// With a linearizability model: search a multi-key history whole
    /// instead of key by key (needs a keyed model such as kv).
    #[arg(long)]
    no_split: bool,
    /// A TSV file of `path<TAB>valid|invalid|unknown` (paths relative to the
    /// TSV's folder): compare every verdict with it.
    #[arg(long, value_name = "TSV")]
    expect: Option<PathBuf>,
    /// With a linearizability model: search every key to its end even
    /// after one is found invalid (by default the other keys stop, and show
    /// as unknown).
    #[arg(long)]
    all_keys: bool,
    /// After checking, print time and peak memory to stderr.
    #[arg(long)]
    stats: bool,
    /// With a linearizability model: write the first invalid key's
    /// smallest failing sub-history here, as a native JSONL history (one
    /// history file only).
    #[arg(long, value_name = "FILE")]
    shrink: Option<PathBuf>,
    /// With a linearizability model: look this long for each invalid key's
    /// smallest failing sub-history, then keep the smallest found (default
    /// 10; 0: do not shrink).
    #[arg(long, value_name = "SECONDS")]
    shrink_time: Option<f64>,
}

/// The outcome for one file.
struct FileResult {
    path: PathBuf,
    read_time: Duration,
    check_time: Duration,
    outcome: Result<Verdict, String>,
    /// The checker that judged it: `--model`'s, or the one guessed for it.
    checker: &'static dyn Checker,
    /// The model it was checked against (`--model`, or the guess).
    model: Option<String>,
    /// Without `--model`: why the model was guessed.
    guessed: Option<String>,
}

impl FileResult {
    /// `valid`, `invalid`, `unknown`, or `error` for bad input.
    fn verdict(&self) -> &'static str {
        match &self.outcome {
            Ok(v) => v.validity.as_str(),
            Err(_) => "error",
        }
    }
}

/// Runs `faultline check`.
pub fn run(a: Args) -> anyhow::Result<i32> {
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
    let checker = registry::for_model(a.model.as_deref());
    if let Some(m) = &a.model {
        if !checker.judges(m) {
            bail!(
                "unknown --model {m:?}; expected one of {}",
                checker.models_text()
            );
        }
    }
    // Without --model, the flags are weighed against each file's guess.
    if a.model.is_some() {
        refuse_foreign_flags(&a, checker)?;
    }
    let ctx = context(&a)?;

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
    if a.shrink.is_some() && files.len() > 1 {
        bail!(
            "--shrink writes one sub-history, but {} history files were found",
            files.len()
        );
    }
    let results: Vec<FileResult> = files
        .par_iter()
        .map(|p| match &a.model {
            Some(_) => check_file(p, format, checker, &ctx),
            None => guess_and_check(p, format, &ctx, |c| refuse_foreign_flags(&a, c)),
        })
        .collect();

    let many = results.len() > 1;
    let mut suites = Vec::new();
    for r in &results {
        let out_dir = a.out.as_ref().map(|d| {
            if many {
                d.join(stem(&r.path))
            } else {
                d.clone()
            }
        });
        let explained = match (&r.outcome, &out_dir) {
            (Ok(v), Some(dir)) if !v.files.is_empty() => {
                let written = report::write_explanations(&v.files, dir)
                    .with_context(|| format!("cannot write into {}", dir.display()))?;
                (!written.is_empty()).then_some(dir.as_path())
            }
            _ => None,
        };
        if a.json {
            say!("{}", to_json(r));
        } else {
            print_human(r, many, explained);
        }
        if let (Some(dir), Ok(v)) = (&out_dir, &r.outcome) {
            file_artifacts(&r.path, dir, format, &results_json(r.checker, v));
        }
        suites.push(suite(r));
    }
    if let (Some(out), [only]) = (&a.shrink, results.as_slice()) {
        if let Ok(v) = &only.outcome {
            shrink::write(out, v)?;
        }
    }
    let count = |v: &str| results.iter().filter(|r| r.verdict() == v).count();
    let (valid, invalid, unknown, errors) = (
        count("valid"),
        count("invalid"),
        count("unknown"),
        count("error"),
    );
    let check_time: Duration = results.iter().map(|r| r.check_time).sum();
    let read_time: Duration = results.iter().map(|r| r.read_time).sum();
    if many && !a.json {
        say!(
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
            crate::host::peak_rss_mib().map_or("?".into(), |m| m.to_string())
        );
    }
    let (overall, code) = if errors > 0 {
        ("error", EXIT_ERROR)
    } else if invalid > 0 {
        ("invalid", EXIT_INVALID)
    } else if unknown > 0 {
        ("unknown", EXIT_UNKNOWN)
    } else {
        ("valid", EXIT_VALID)
    };
    ci_outputs(&a, &suites, overall);
    if let Some(tsv) = &a.expect {
        let verdicts: Vec<(&Path, &str)> = results
            .iter()
            .map(|r| (r.path.as_path(), r.verdict()))
            .collect();
        return compare_expected(tsv, &verdicts);
    }
    Ok(code)
}

/// Refuses the flags only another checker reads, naming the models they
/// belong to.
fn refuse_foreign_flags(a: &Args, checker: &dyn Checker) -> anyhow::Result<()> {
    let given = [
        ("--total", a.total.is_some()),
        ("--negative-balances", a.negative_balances),
        ("--duplicates-allowed", a.duplicates_allowed),
        ("--consistency-model", !a.consistency_models.is_empty()),
        ("--sequential-keys", a.sequential_keys),
        ("--linearizable-keys", a.linearizable_keys),
        ("--no-split", a.no_split),
        ("--all-keys", a.all_keys),
        ("--memory-limit", a.memory_limit.is_some()),
        ("--shrink", a.shrink.is_some()),
        ("--shrink-time", a.shrink_time.is_some()),
    ];
    for (flag, _) in given
        .iter()
        .filter(|(f, set)| *set && !checker.flags().contains(f))
    {
        let Some(owner) = registry::CHECKERS.iter().find(|c| c.flags().contains(flag)) else {
            continue;
        };
        let flags = owner.flags();
        let (names, verb) = match flags {
            [one] => (one.to_string(), "applies"),
            [init @ .., last] => (format!("{} and {last}", init.join(", ")), "apply"),
            [] => continue,
        };
        bail!("{names} {verb} to --model {} only", owner.models_text());
    }
    Ok(())
}

/// The checkers' context from the flags.
fn context(a: &Args) -> anyhow::Result<CheckContext> {
    let mut ctx = CheckContext::new(
        a.model.clone(),
        match a.memory_limit {
            Some(m) => m << 20,
            None => crate::host::memory_limit(),
        },
    );
    ctx.resident_memory = Some(crate::host::resident_bytes);
    if let Some(t) = a.time_limit {
        if !(t > 0.0 && t.is_finite()) {
            bail!("--time-limit must be a positive number of seconds, got {t}");
        }
        ctx.time_limit = Some(Duration::from_secs_f64(t));
    }
    for m in &a.consistency_models {
        if !txn::models::is_model(m) {
            bail!(
                "unknown --consistency-model {m:?}; expected one of {}",
                txn::models::MODEL_NAMES.join(", ")
            );
        }
    }
    ctx.consistency_models = a.consistency_models.clone();
    if let Some(t) = a.shrink_time {
        if !(t >= 0.0 && t.is_finite()) {
            bail!("--shrink-time must be a number of seconds (0: do not shrink), got {t}");
        }
        if t == 0.0 && a.shrink.is_some() {
            bail!("--shrink needs shrinking: drop --shrink-time 0");
        }
        ctx.shrink_time = Duration::from_secs_f64(t);
    }
    ctx.split_by_key = !a.no_split;
    ctx.stop_at_first_invalid = !a.all_keys;
    ctx.sequential_keys = a.sequential_keys;
    ctx.linearizable_keys = a.linearizable_keys;
    ctx.classic.bank.total = a.total;
    ctx.classic.bank.negative_balances = a.negative_balances;
    ctx.classic.queue.duplicates_allowed = a.duplicates_allowed;
    Ok(ctx)
}

fn check_file(
    path: &Path,
    format: Option<Format>,
    checker: &'static dyn Checker,
    ctx: &CheckContext,
) -> FileResult {
    let t0 = Instant::now();
    let done = |read_time, check_time, outcome| FileResult {
        path: path.to_path_buf(),
        read_time,
        check_time,
        outcome,
        checker,
        model: ctx.model.clone(),
        guessed: None,
    };
    if let Some((read_time, outcome)) = checker.check_path(path, format, ctx) {
        let check_time = t0.elapsed().saturating_sub(read_time);
        return done(read_time, check_time, outcome.map_err(|e| e.to_string()));
    }
    let read = history::read_path(path, format);
    let read_time = t0.elapsed();
    let t1 = Instant::now();
    let outcome = read
        .map_err(|e| e.to_string())
        .and_then(|h: History| checker.check(&h, ctx).map_err(|e| e.to_string()));
    done(read_time, t1.elapsed(), outcome)
}

/// Without `--model`: reads the file, guesses its checker and model from
/// its functions and values ([`registry::guess`]), and checks it with them.
fn guess_and_check(
    path: &Path,
    format: Option<Format>,
    ctx: &CheckContext,
    flags_fit: impl Fn(&dyn Checker) -> anyhow::Result<()>,
) -> FileResult {
    let t0 = Instant::now();
    let read = history::read_path(path, format);
    let read_time = t0.elapsed();
    let t1 = Instant::now();
    let fallback = registry::for_model(None);
    let mut result = FileResult {
        path: path.to_path_buf(),
        read_time,
        check_time: Duration::ZERO,
        outcome: Err(String::new()),
        checker: fallback,
        model: None,
        guessed: None,
    };
    let guessed = read.map_err(|e| e.to_string()).and_then(|h| {
        let calls = h.calls().map_err(|e| e.to_string())?;
        let g = registry::guess(&calls).map_err(|e| e.to_string())?;
        flags_fit(g.checker).map_err(|e| {
            format!(
                "{e}, but this history's model was guessed as {} (from {}); name it with --model",
                g.model, g.why
            )
        })?;
        Ok((h, g))
    });
    result.outcome = guessed.and_then(|(h, g)| {
        let mut ctx = ctx.clone();
        ctx.model = Some(g.model.clone());
        result.checker = g.checker;
        result.model = Some(g.model);
        result.guessed = Some(g.why);
        g.checker.check(&h, &ctx).map_err(|e| e.to_string())
    });
    result.check_time = t1.elapsed();
    result
}

/// The model a file was checked against: the checker's report names it,
/// else `--model` (or the guess), else the checker.
fn model_of(r: &FileResult, v: &Verdict) -> String {
    v.details
        .get("model")
        .and_then(Value::as_str)
        .or(r.model.as_deref())
        .unwrap_or(r.checker.name())
        .to_string()
}

/// The `results.json` value of one file: its one checker's details.
fn results_json(checker: &dyn Checker, v: &Verdict) -> Value {
    let mut details = v.details.clone();
    details["valid"] = json!(v.validity);
    json!({"valid": v.validity, "checkers": {checker.name(): details}})
}

/// One JUnit suite (and Markdown row) per file.
fn suite(r: &FileResult) -> report::junit::Suite {
    let checker = r.checker;
    let (name, validity, sentence) = match &r.outcome {
        Err(e) => (checker.name().to_string(), "error".to_string(), e.clone()),
        Ok(v) => {
            let model = model_of(r, v);
            let name = if model == checker.name() {
                model
            } else {
                format!("{} ({model})", checker.name())
            };
            (name, v.validity.to_string(), report::sentence(&v.details))
        }
    };
    report::junit::Suite {
        name: r.path.display().to_string(),
        cases: vec![report::VerdictRow {
            name,
            validity,
            sentence,
        }],
        seconds: r.outcome.as_ref().ok().map(|_| r.check_time.as_secs_f64()),
    }
}

/// Writes the report artifacts of one checked file into `dir` (the history
/// is read again). Problems are warnings: they never change the verdict.
fn file_artifacts(path: &Path, dir: &Path, format: Option<Format>, results: &Value) {
    let h = match history::read_path(path, format) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("warning: no report for {}: {e}", path.display());
            return;
        }
    };
    let link = files::canonical(path).display().to_string();
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

fn print_human(r: &FileResult, many: bool, explained: Option<&Path>) {
    let path = r.path.display();
    let v = match &r.outcome {
        Err(e) => {
            say!("{path}: bad input: {e}");
            return;
        }
        Ok(v) => v,
    };
    say!("{path}: {} ({})", v.validity, v.text.heading);
    if let (Some(why), false) = (&r.guessed, many) {
        say!("  model guessed from {why}; --model names another");
    }
    let lines = if many { &v.text.brief } else { &v.text.full };
    for line in lines {
        say!("  {line}");
    }
    if let Some(dir) = explained {
        say!("  explanations and cycle graphs in {}", dir.display());
    }
}

fn to_json(r: &FileResult) -> Value {
    let read_ms = r.read_time.as_secs_f64() * 1e3;
    let v = match &r.outcome {
        Err(e) => {
            return json!({"path": r.path, "verdict": "error", "error": e, "read_ms": read_ms})
        }
        Ok(v) => v,
    };
    let mut out = v.details.clone();
    let model = model_of(r, v);
    if let Some(o) = out.as_object_mut() {
        o.insert("path".into(), json!(r.path));
        o.insert("verdict".into(), json!(v.validity));
        o.insert("model".into(), json!(model));
        if let Some(why) = &r.guessed {
            o.insert("model_guessed_from".into(), json!(why));
        }
        o.insert("read_ms".into(), json!(read_ms));
    }
    out
}
