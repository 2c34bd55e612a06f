//! `faultline compare`: gathers (and with `--run`, first runs) every
//! combination of dbs × workloads × nemeses and writes one table,
//! compare.md and compare.html (src/serve/compare.rs), as a list or as a
//! matrix of nemeses × dbs; with `--run` it records the combinations
//! `faultline run` refused before starting, for the table to show.

use crate::serve::compare::{self, Links, Selection};
use anyhow::{bail, Context};
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

/// Arguments of `faultline compare`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Without --run: the newest stored run of each combination. \
With --run: each combination with no stored run (every one with --rerun) is run first, \
one after another, exactly as `faultline run --db D --workload W --nemesis N` would; \
flags after `--` are passed to each run; a combination refused before it started is \
recorded (results/refusals.jsonl) and shown as refused, with the refusal's first line. \
With --run or --matrix and no --workload, each db takes its default workload: the one \
running the first model its client runs (register for etcd, ZooKeeper and Redis, \
list-append for PostgreSQL and Galera, queue for NATS and RabbitMQ). \
Exit codes: 0 every combination valid, 1 one invalid, 2 one unknown, refused or not run, 3 error."
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
    /// Lay the table out with a row per nemesis and a column per db (and
    /// workload): each cell says whether it ran, which requested faults
    /// took effect, and the verdict; refusals and reasons as notes below.
    #[arg(long)]
    matrix: bool,
    /// Where to write compare.md and compare.html.
    #[arg(long, default_value = "compare")]
    out: PathBuf,
    /// Write no links to runs (for a table pasted where the results
    /// directory is not, such as a README).
    #[arg(long, conflicts_with = "link_base")]
    no_links: bool,
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
    let default_workloads = if a.workload.is_empty() && (a.run || a.matrix) {
        let dir = super::run::definitions_dir(&None, "workloads");
        a.db.iter()
            .filter_map(|d| default_workload(d, &dir).map(|w| (d.clone(), w)))
            .collect()
    } else {
        BTreeMap::new()
    };
    let sel = Selection {
        dbs: a.db.clone(),
        workloads: a.workload.clone(),
        nemeses: a.nemesis.clone(),
        split_by: a.split_by.clone(),
        default_workloads,
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
    let refusals = compare::read_refusals(&a.results).with_context(|| {
        format!(
            "reading {}",
            a.results.join(compare::REFUSALS_JSONL).display()
        )
    })?;
    let rows = compare::gather(&runs, &refusals, &sel);
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let links = match &a.link_base {
        Some(base) => Links::Server(base.trim_end_matches('/').to_string()),
        None if a.no_links => Links::None,
        None => Links::Files(relative_prefix(&a.out, &a.results)?),
    };
    let md = a.out.join("compare.md");
    let html = a.out.join("compare.html");
    let (md_text, html_text) = if a.matrix {
        let m = compare::matrix(&rows, &sel);
        (
            compare::matrix_markdown(&m, &rows, &links),
            compare::matrix_html(&m, &rows, &links),
        )
    } else {
        (
            compare::markdown(&rows, &links),
            compare::html(&rows, &links),
        )
    };
    std::fs::write(&md, md_text).with_context(|| format!("writing {}", md.display()))?;
    std::fs::write(&html, html_text).with_context(|| format!("writing {}", html.display()))?;
    println!("{}", compare::tally(&rows));
    let (every, of) = compare::effect_tally(&rows);
    if of > 0 {
        println!("of the {of} runs with faults, every requested fault took effect in {every}");
    }
    println!("wrote {} and {}", md.display(), html.display());
    if rows.is_empty() {
        eprintln!("no stored run matches; see --db/--workload/--nemesis, or add --run");
    }
    if a.split_by.is_empty() && rows.iter().any(|r| r.runs > 1) {
        eprintln!("note: some combinations have several runs and show the newest; --split-by FIELD (e.g. isolation) gives each value of a test.json field its own row");
    }
    let verdicts: Vec<&str> = rows.iter().map(compare::verdict_of).collect();
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
    if sel.dbs.is_empty() || sel.nemeses.is_empty() {
        bail!("--run needs --db and --nemesis: the combinations to run");
    }
    if let Some(d) = sel
        .dbs
        .iter()
        .find(|d| sel.workloads.is_empty() && !sel.default_workloads.contains_key(*d))
    {
        bail!("--run: {d} has no default workload; give --workload");
    }
    let (stored, refusals) = if a.results.is_dir() {
        (
            crate::serve::runs::scan(&a.results)?,
            compare::read_refusals(&a.results)?,
        )
    } else {
        (Vec::new(), Vec::new())
    };
    let grid = Selection {
        split_by: Vec::new(),
        ..sel.clone()
    };
    // A recorded refusal counts as tried: --rerun tries it again.
    let todo: Vec<compare::Row> = compare::gather(&stored, &refusals, &grid)
        .into_iter()
        .filter(|r| a.rerun || (r.run.is_none() && r.refused.is_none()))
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
        // A failed run is reported and the next one goes on. One that
        // failed after making its folder shows there (incomplete); one
        // refused before that is recorded, for the table to say why.
        let folders_before = run_folders(&a.results);
        let at = crate::store::format_time(std::time::SystemTime::now());
        match super::run::run(line.args) {
            Ok(code) => eprintln!("  exit code {code}"),
            Err(e) => {
                eprintln!("  error: {e:#}");
                if run_folders(&a.results) == folders_before {
                    let refusal = compare::Refusal {
                        db: row.db.clone(),
                        workload: row.workload.clone(),
                        nemesis: row.nemesis.clone(),
                        at,
                        reason: format!("{e:#}"),
                    };
                    std::fs::create_dir_all(&a.results)
                        .and_then(|()| compare::record_refusal(&a.results, &refusal))
                        .with_context(|| {
                            format!("recording the refusal in {}", a.results.display())
                        })?;
                }
            }
        }
    }
    Ok(())
}

/// How many run folders `results` holds (0 when it does not exist yet).
fn run_folders(results: &Path) -> usize {
    crate::serve::runs::run_dirs(results)
        .map(|d| d.len())
        .unwrap_or(0)
}

/// `db`'s default workload in `dir`: one that runs the first model the
/// db's client runs — the file named after the model when there is one,
/// else the first by name. `None` for a db faultline does not know, or
/// whose client runs any model (a db file), or no such workload.
fn default_workload(db: &str, dir: &Path) -> Option<String> {
    use crate::workload::Workload;
    let model = *crate::system::find(db)?.models()?.first()?;
    let runs_model = |name: &String| Workload::find(name, dir).is_ok_and(|w| w.model == model);
    let names = Workload::names(dir);
    names
        .iter()
        .find(|n| n.as_str() == model && runs_model(n))
        .or_else(|| names.iter().find(|n| runs_model(n)))
        .cloned()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_built_in_db_defaults_to_the_workload_of_its_first_model() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads");
        let of = |db: &str| default_workload(db, &dir);
        for db in ["etcd", "zookeeper", "redis"] {
            assert_eq!(of(db).as_deref(), Some("register"), "{db}");
        }
        for db in ["postgres", "galera"] {
            assert_eq!(of(db).as_deref(), Some("list-append"), "{db}");
        }
        for db in ["nats", "rabbitmq"] {
            assert_eq!(of(db).as_deref(), Some("queue"), "{db}");
        }
        assert_eq!(of("no-such-db"), None);
    }
}
