//! `faultline compare`: gathers (and with `--run`, first runs) every
//! combination of dbs × workloads × nemeses and writes one table,
//! compare.md and compare.html (src/serve/compare.rs).

use crate::serve::compare::{self, Links, Selection};
use anyhow::{bail, Context};
use std::path::{Component, Path, PathBuf};

/// Arguments of `faultline compare`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Without --run: the newest stored run of each combination. \
With --run: each combination with no stored run (every one with --rerun) is run first, \
one after another, exactly as `faultline run --db D --workload W --nemesis N` would; \
flags after `--` are passed to each run. \
Exit codes: 0 every combination valid, 1 one invalid, 2 one unknown or not run, 3 error."
)]
pub struct Args {
    /// The results directory to read (and, with --run, to write).
    #[arg(long, default_value = "results")]
    results: PathBuf,
    /// Databases, comma-separated (default: every db stored).
    #[arg(long, value_delimiter = ',')]
    db: Vec<String>,
    /// Workloads, comma-separated (default: every workload stored).
    #[arg(long, value_delimiter = ',')]
    workload: Vec<String>,
    /// Nemeses, comma-separated; `a+b` for several at once, `none` for no
    /// faults (default: every nemesis stored).
    #[arg(long, value_delimiter = ',')]
    nemesis: Vec<String>,
    /// test.json fields that split a combination into rows, comma-separated
    /// (e.g. `isolation`: one row per PostgreSQL isolation level).
    #[arg(long, value_delimiter = ',', value_name = "FIELDS")]
    split_by: Vec<String>,
    /// Run each combination that has no stored run before gathering.
    #[arg(long)]
    run: bool,
    /// With --run: run every combination, even those already stored.
    #[arg(long, requires = "run")]
    rerun: bool,
    /// With --run: seconds of each run's main phase.
    #[arg(long, value_name = "SECONDS", requires = "run", allow_negative_numbers = true, value_parser = super::help::positive_seconds)]
    time_limit: Option<f64>,
    /// Where to write compare.md and compare.html.
    #[arg(long, default_value = "compare")]
    out: PathBuf,
    /// Link runs to pages of a `faultline serve` at this URL (e.g.
    /// http://127.0.0.1:8080) instead of to files.
    #[arg(long, value_name = "URL")]
    link_base: Option<String>,
    /// Flags for each `faultline run` (after `--`), e.g. `-- --concurrency 5`.
    #[arg(last = true)]
    run_args: Vec<String>,
}

/// `faultline run`'s arguments, parsed the way the command line parses them.
#[cfg(feature = "controller")]
#[derive(clap::Parser, Debug)]
#[command(name = "faultline run")]
struct RunLine {
    #[command(flatten)]
    args: super::run::Args,
}

/// Runs `faultline compare`.
pub fn run(a: Args) -> anyhow::Result<i32> {
    let sel = Selection {
        dbs: a.db.clone(),
        workloads: a.workload.clone(),
        nemeses: a.nemesis.clone(),
        split_by: a.split_by.clone(),
    };
    if a.run {
        run_missing(&a, &sel)?;
        // Every run may have failed before making its folder: the table
        // still says so.
        std::fs::create_dir_all(&a.results)
            .with_context(|| format!("creating {}", a.results.display()))?;
    }
    if !a.results.is_dir() {
        bail!(
            "results directory {} does not exist (give --results DIR, or --run to make runs)",
            a.results.display()
        );
    }
    let runs = crate::serve::runs::scan(&a.results)
        .with_context(|| format!("reading {}", a.results.display()))?;
    let rows = compare::gather(&runs, &sel);
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let links = match &a.link_base {
        Some(base) => Links::Server(base.trim_end_matches('/').to_string()),
        None => Links::Files(relative_prefix(&a.out, &a.results)?),
    };
    let md = a.out.join("compare.md");
    let html = a.out.join("compare.html");
    std::fs::write(&md, compare::markdown(&rows, &links))
        .with_context(|| format!("writing {}", md.display()))?;
    std::fs::write(&html, compare::html(&rows, &links))
        .with_context(|| format!("writing {}", html.display()))?;
    println!("{}", compare::tally(&rows));
    println!("wrote {} and {}", md.display(), html.display());
    if rows.is_empty() {
        eprintln!("no stored run matches; see --db/--workload/--nemesis, or add --run");
    }
    if a.split_by.is_empty() && rows.iter().any(|r| r.runs > 1) {
        eprintln!("note: some combinations have several runs and show the newest; --split-by FIELD (e.g. isolation) gives each value of a test.json field its own row");
    }
    let verdicts: Vec<&str> = rows
        .iter()
        .map(|r| {
            r.run
                .as_ref()
                .map(|x| x.verdict.as_str())
                .unwrap_or("not run")
        })
        .collect();
    Ok(if verdicts.contains(&"invalid") {
        super::EXIT_INVALID
    } else if verdicts.iter().any(|v| *v != "valid") {
        super::EXIT_UNKNOWN
    } else {
        super::EXIT_VALID
    })
}

/// Runs the combinations that need it, one after another, through
/// `faultline run`'s own code.
#[cfg(feature = "controller")]
fn run_missing(a: &Args, sel: &Selection) -> anyhow::Result<()> {
    use clap::Parser;
    if sel.dbs.is_empty() || sel.workloads.is_empty() || sel.nemeses.is_empty() {
        bail!("--run needs --db, --workload and --nemesis: the combinations to run");
    }
    let stored = if a.results.is_dir() {
        crate::serve::runs::scan(&a.results)?
    } else {
        Vec::new()
    };
    let grid = Selection {
        split_by: Vec::new(),
        ..sel.clone()
    };
    let todo: Vec<compare::Row> = compare::gather(&stored, &grid)
        .into_iter()
        .filter(|r| a.rerun || r.run.is_none())
        .collect();
    eprintln!("{} combinations to run", todo.len());
    for (i, row) in todo.iter().enumerate() {
        let mut argv: Vec<String> = vec![
            "faultline run".into(),
            "--results".into(),
            a.results.display().to_string(),
            "--db".into(),
            row.db.clone(),
            "--workload".into(),
            row.workload.clone(),
            "--nemesis".into(),
            row.nemesis.replace('+', ","),
        ];
        if let Some(t) = a.time_limit {
            argv.push("--time-limit".into());
            argv.push(t.to_string());
        }
        argv.extend(a.run_args.iter().cloned());
        eprintln!(
            "[{}/{}] faultline run --db {} --workload {} --nemesis {}",
            i + 1,
            todo.len(),
            row.db,
            row.workload,
            row.nemesis
        );
        let line = RunLine::try_parse_from(&argv).map_err(|e| {
            anyhow::anyhow!("the run flags ({}) are not valid: {e}", argv[1..].join(" "))
        })?;
        // A failed run (bad combination, db that would not start) is
        // reported and the next one goes on: the table shows it as not run.
        match super::run::run(line.args) {
            Ok(code) => eprintln!("  exit code {code}"),
            Err(e) => eprintln!("  error: {e:#}"),
        }
    }
    Ok(())
}

#[cfg(not(feature = "controller"))]
fn run_missing(_: &Args, _: &Selection) -> anyhow::Result<()> {
    bail!("--run needs faultline built with the `controller` feature")
}

/// The path from folder `from` to folder `to`, ending in `/` (`""` when the
/// same), for links in files written in `from`.
fn relative_prefix(from: &Path, to: &Path) -> anyhow::Result<String> {
    let f = std::fs::canonicalize(from).with_context(|| format!("{}", from.display()))?;
    let t = std::fs::canonicalize(to).with_context(|| format!("{}", to.display()))?;
    let fc: Vec<Component> = f.components().collect();
    let tc: Vec<Component> = t.components().collect();
    let common = fc.iter().zip(&tc).take_while(|(x, y)| x == y).count();
    let mut parts: Vec<String> = vec!["..".into(); fc.len() - common];
    parts.extend(
        tc[common..]
            .iter()
            .map(|c| crate::serve::pages::url_part(&c.as_os_str().to_string_lossy())),
    );
    Ok(parts.iter().map(|p| format!("{p}/")).collect())
}
