//! `faultline run`: one test, from flags or a test file — and `faultline
//! analyze`, which checks a stored run again.

use super::cluster::NodeArgs;
use super::{EXIT_ERROR, EXIT_INVALID, EXIT_UNKNOWN, EXIT_VALID};
use crate::check::Validity;
use crate::cluster::{local, Cluster};
use crate::report;
use crate::runner::lifecycle::{
    preflight, run_test, settle, settle_faults, verdict_notes, Dirs, TestSpec,
};
use crate::runner::Stop;
use crate::store::{
    RunDir, StoredRun, HISTORY_JSONL, LOG_FILE, NODES_DIR, RESULTS_JSON, TEST_JSON,
};
use anyhow::{bail, Context};
use std::path::{Path, PathBuf};

/// Arguments of `faultline run`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Exit codes: 0 valid, 1 invalid, 2 unknown or incomplete (interrupted, failed set-up), \
3 error (also: the cluster is in use by another run, which is named). \
Without --nodes/--nodes-file the test runs on the local cluster, which is built (5 nodes) when none is up \
and removed afterwards unless --leave-db-running."
)]
pub struct Args {
    /// A test file (TOML) with the fields of a test (docs/test-format.md);
    /// flags override it.
    test_file: Option<PathBuf>,
    /// The system under test (the list in --help comes from the registry),
    /// or a db file (FILE.toml or file:PATH; docs/file-db.md).
    #[arg(long)]
    db: Option<String>,
    /// A db file's client program (a command line with the file's
    /// variables, e.g. "./client.py {node} {ip}"), instead of its `client`.
    #[arg(long, value_name = "COMMAND")]
    client: Option<String>,
    /// The workload: a name from the workloads folder (listed in --help)
    /// or a .toml path.
    #[arg(long)]
    workload: Option<String>,
    /// Nemeses, comma-separated: the fault families and the files in the
    /// nemeses folder (listed in --help); `none` for no faults.
    #[arg(long, value_delimiter = ',')]
    nemesis: Option<Vec<String>>,
    /// Seconds between nemesis operations.
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true, value_parser = super::help::positive_seconds)]
    nemesis_interval: Option<f64>,
    /// Accept a run in which a requested fault never took effect (by
    /// default its verdict is unknown, saying which).
    #[arg(long)]
    allow_missing_faults: bool,
    /// Seconds of the main phase.
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true, value_parser = super::help::positive_seconds)]
    time_limit: Option<f64>,
    /// Client workers.
    #[arg(long)]
    concurrency: Option<usize>,
    /// Operations per second over all workers.
    #[arg(long, allow_negative_numbers = true, value_parser = super::help::positive_rate)]
    rate: Option<f64>,
    /// Seed of every random choice (recorded in test.json).
    #[arg(long)]
    seed: Option<u64>,
    /// Reads: etcd linearizable (default) or serializable (local, maybe
    /// stale); ZooKeeper plain (default, maybe stale) or sync (sync first);
    /// Redis replica (default: the worker's own node) or primary; memory
    /// linearizable (default) or stale (a fault for testing the harness);
    /// PostgreSQL linearizable (default: one server), primary or replica
    /// (hot standbys on the other nodes; replica: read-only txns to one).
    /// The checkers assume what the db's reads guarantee.
    #[arg(long)]
    read_mode: Option<String>,
    /// The consistency model the txn checker holds the history to
    /// (default strict-serializable).
    #[arg(long)]
    consistency_model: Option<String>,
    /// PostgreSQL: the isolation level (read-committed, repeatable-read,
    /// serializable; default serializable).
    #[arg(long)]
    isolation: Option<String>,
    /// A setting passed to the database, repeatable: PostgreSQL a
    /// postgresql.conf setting, Redis a redis.conf directive, ZooKeeper a
    /// zoo.cfg line, etcd a --KEY=VALUE flag, Galera a my.cnf line (added
    /// to a test file's db_opts; recorded in test.json).
    #[arg(long = "db-opt", value_name = "KEY=VALUE", value_parser = parse_db_opt)]
    db_opt: Vec<String>,
    /// A server binary of your own build on this machine (etcd,
    /// redis-server, nats-server), uploaded to every node and run instead
    /// of the Debian package's; recorded in test.json with its sha256.
    #[arg(long, visible_alias = "etcd-binary", value_name = "PATH")]
    db_binary: Option<PathBuf>,
    /// The binary `--nemesis upgrade` puts in place of --db-binary on one
    /// node at a time, restarting each (a rolling upgrade).
    #[arg(long, value_name = "PATH")]
    db_binary_next: Option<PathBuf>,
    /// Seconds an operation may take before it is recorded `info`.
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true, value_parser = super::help::positive_seconds)]
    op_timeout: Option<f64>,
    /// Leave the db (and a local cluster this run built) running.
    #[arg(long)]
    leave_db_running: bool,
    /// Check at the end only, not as the run goes (online checking is on
    /// by default; the verdict is the final check's either way).
    #[arg(long, conflicts_with = "stop_on_invalid")]
    no_online: bool,
    /// End the run at the first violation the online checker proves: then
    /// the final phase, heal, final check and report as at any end; the
    /// verdict is invalid and results.json says where it stopped and why.
    #[arg(long)]
    stop_on_invalid: bool,
    /// The test's name (default: db-workload-nemeses).
    #[arg(long)]
    name: Option<String>,
    /// The results root.
    #[arg(long, default_value = "results")]
    results: PathBuf,
    /// Folder of workload files (default: ./workloads, or the one beside the binary's source).
    #[arg(long)]
    workloads_dir: Option<PathBuf>,
    /// Folder of nemesis files (default: ./nemeses, likewise).
    #[arg(long)]
    nemeses_dir: Option<PathBuf>,
    /// Nodes of the local cluster when this run builds it.
    #[arg(long, default_value_t = 5)]
    local_nodes: usize,
    /// Never install missing Debian packages for the local cluster (by
    /// default, as root, they are installed with apt-get).
    #[arg(long)]
    no_install: bool,
    #[command(flatten)]
    nodes: NodeArgs,
    /// Also write a JUnit XML file here: one testcase per checker, an
    /// invalid or unknown verdict as a failure whose message explains it.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Also write a Markdown summary here (verdict table, counts), e.g.
    /// "$GITHUB_STEP_SUMMARY".
    #[arg(long, value_name = "FILE")]
    summary_md: Option<PathBuf>,
}

/// Arguments of `faultline analyze`.
#[derive(clap::Args, Debug)]
pub struct AnalyzeArgs {
    /// A run's folder (or a `latest` link).
    dir: PathBuf,
    /// Also write a JUnit XML file here: one testcase per checker, an
    /// invalid or unknown verdict as a failure whose message explains it.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Also write a Markdown summary here (verdict table, counts), e.g.
    /// "$GITHUB_STEP_SUMMARY".
    #[arg(long, value_name = "FILE")]
    summary_md: Option<PathBuf>,
}

/// The first existing folder named `name`: in the current directory, then
/// beside the source tree the binary was built from.
pub(super) fn definitions_dir(given: &Option<PathBuf>, name: &str) -> PathBuf {
    if let Some(d) = given {
        return d.clone();
    }
    let here = PathBuf::from(name);
    if here.is_dir() {
        return here;
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join(name);
    if built.is_dir() {
        return built;
    }
    PathBuf::from("/usr/share/faultline").join(name)
}

fn load_test_file(path: &Path) -> anyhow::Result<TestSpec> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    toml::from_str::<TestSpec>(&text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        match line {
            Some(l) => anyhow::anyhow!("{}:{l}: {}", path.display(), e.message()),
            None => anyhow::anyhow!("{}: {}", path.display(), e.message()),
        }
    })
}

/// Checks a `--db-opt` value's syntax as the flag is read, before anything
/// is built: the message names the flag and the form it wants.
fn parse_db_opt(s: &str) -> Result<String, String> {
    crate::system::parse_db_opt(s)
        .map(|_| s.to_string())
        .map_err(|e| {
            e.replace(
                "expected KEY=VALUE, e.g. --db-opt",
                "write --db-opt KEY=VALUE, e.g.",
            )
        })
}

/// Refuses partition faults when the jump host is one of the nodes: a
/// partition would cut the other nodes off from it, and with them the only
/// way the controller reaches them, so the run could not even lift it.
fn refuse_partitions_through_a_node(
    spec: &TestSpec,
    dirs: &Dirs,
    nodes: &NodeArgs,
) -> anyhow::Result<()> {
    let Some(jump) = nodes.jump_host_among_nodes() else {
        return Ok(());
    };
    let defs = crate::nemesis::config::load_named(Some(&dirs.nemeses), &spec.nemesis)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(d) = defs
        .iter()
        .find(|d| d.family == crate::nemesis::Family::Partition)
    {
        bail!(
            "--nemesis {}: the jump host {jump} is one of --nodes, and a partition would cut \
             the other nodes off from it, so the controller could not reach them to lift it; \
             use a jump host outside the cluster, or faults that leave the network alone",
            d.name
        );
    }
    Ok(())
}

/// Runs `faultline run`.
pub fn run(a: Args) -> anyhow::Result<i32> {
    let mut spec = match &a.test_file {
        Some(p) => load_test_file(p)?,
        None => TestSpec::default(),
    };
    if let Some(v) = a.db.clone() {
        spec.db = v;
    }
    if let Some(v) = a.client.clone() {
        spec.client = Some(v);
    }
    if let Some(v) = a.workload.clone() {
        spec.workload = v;
    }
    if let Some(v) = a.nemesis.clone() {
        spec.nemesis = v
            .into_iter()
            .filter(|n| n != "none" && !n.is_empty())
            .collect();
    }
    spec.nemesis_interval = a.nemesis_interval.or(spec.nemesis_interval);
    spec.allow_missing_faults |= a.allow_missing_faults;
    spec.time_limit = a.time_limit.unwrap_or(spec.time_limit);
    spec.concurrency = a.concurrency.unwrap_or(spec.concurrency);
    spec.rate = a.rate.or(spec.rate);
    spec.seed = a.seed.or(spec.seed);
    if let Some(v) = a.read_mode.clone() {
        spec.read_mode = v;
    }
    spec.op_timeout = a.op_timeout.unwrap_or(spec.op_timeout);
    if let Some(v) = a.consistency_model.clone() {
        spec.consistency_model = v;
    }
    if let Some(v) = a.isolation.clone() {
        spec.isolation = v;
    }
    spec.db_opts.extend(a.db_opt.iter().cloned());
    if let Some(p) = a.db_binary.clone() {
        spec.db_binary = Some(p);
    }
    if let Some(p) = a.db_binary_next.clone() {
        spec.db_binary_next = Some(p);
    }
    spec.leave_db_running |= a.leave_db_running;
    if a.no_online {
        spec.online = false;
    }
    if a.stop_on_invalid {
        spec.online = true;
        spec.stop_on_invalid = true;
    }
    if let Some(v) = a.name.clone() {
        spec.name = v;
    }
    // The system's default read mode is written out (test.json names it).
    let spec = match spec.resolved() {
        Ok(s) => s,
        Err(e) => bail!("{e}"),
    };
    let dirs = Dirs {
        workloads: definitions_dir(&a.workloads_dir, "workloads"),
        nemeses: definitions_dir(&a.nemeses_dir, "nemeses"),
        results: a.results.clone(),
    };
    // The cluster: given hosts, the local cluster that is up, or a new one.
    let local_run = a.nodes.hosts.is_empty() && a.nodes.nodes_file.is_none();
    // Everything that can be refused is, before any package, cluster or db
    // is touched.
    preflight(&spec, &dirs, local_run)?;
    refuse_partitions_through_a_node(&spec, &dirs, &a.nodes)?;
    if local_run && !a.no_install {
        ensure_host_packages(&spec.db)?;
    }
    let mut built_here = false;
    let cluster: Cluster = match a.nodes.cluster() {
        Ok(c) => c,
        Err(e) if local_run => {
            tracing::info!("no local cluster up ({e}); building one");
            eprintln!("building a local cluster of {} nodes...", a.local_nodes);
            let spec = local::LocalSpec {
                nodes: a.local_nodes,
                state_dir: a.nodes.state.dir(),
                ..Default::default()
            };
            built_here = true;
            local::up(&spec)?
        }
        Err(e) => return Err(e),
    };

    // One run per cluster: refused at once, naming the holder, while
    // another command drives it.
    let lease = super::take_lease(&cluster, &format!("run {}", spec.test_name()))?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting tokio")?;
    let stop = Stop::new();
    let events =
        super::progress::Progress::new(std::io::IsTerminal::is_terminal(&std::io::stderr())).sink();
    let outcome = runtime.block_on(async {
        let s = stop.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            eprintln!(
                "\ninterrupted: stopping the clients, healing every fault, collecting logs..."
            );
            s.trigger();
        });
        run_test(spec.clone(), cluster, &dirs, stop.clone(), events).await
    });
    if built_here && !spec.leave_db_running {
        if let Err(e) = local::down(&a.nodes.state.dir(), None) {
            eprintln!("warning: removing the local cluster: {e}");
        }
    }
    drop(lease);
    let outcome = outcome?;
    for line in &outcome.summary {
        println!("{line}");
    }
    match RunDir::open(&outcome.dir) {
        Ok(stored) => {
            let results = stored
                .results
                .clone()
                .unwrap_or_else(|| serde_json::json!({"valid": outcome.validity, "checkers": {}}));
            report_run(
                &stored,
                &results,
                a.junit.as_deref(),
                a.summary_md.as_deref(),
            );
        }
        Err(e) => {
            tracing::warn!("no report: {e}");
            eprintln!("warning: no report: {e}");
        }
    }
    if let Some(why) = &outcome.stopped_early {
        println!("({why})");
    } else if outcome.interrupted {
        println!("(the run did not run to its end: what it recorded is checked as it is, and the verdict is at best incomplete)");
    }
    println!("{}: {}", outcome.validity, outcome.dir.display());
    Ok(exit_code(outcome.validity))
}

/// Writes a run's artifacts (report.html and the rest, docs/reports.md)
/// into its folder, and the CI outputs asked for. Never fails: problems are
/// warnings, and noted in report.html.
fn report_run(
    stored: &StoredRun,
    results: &serde_json::Value,
    junit: Option<&Path>,
    md: Option<&Path>,
) {
    let dir = &stored.dir.path;
    let title = format!("{} {}", stored.dir.test_name, stored.dir.start);
    let mut links: Vec<(String, String)> = [
        (TEST_JSON, "configuration"),
        (RESULTS_JSON, "checker results"),
        (HISTORY_JSONL, "history"),
        (LOG_FILE, "faultline's log"),
    ]
    .iter()
    .filter(|(f, _)| dir.join(f).is_file())
    .map(|(f, what)| (format!("{f} — {what}"), f.to_string()))
    .collect();
    links.extend(node_logs(dir).into_iter().map(|p| (p.clone(), p)));
    let w = report::write_all(
        dir,
        &report::Run {
            title: title.clone(),
            history: &stored.history,
            test: Some(&stored.test),
            results,
            links,
        },
    );
    for (name, why) in &w.failures {
        tracing::warn!("report artifact {name}: {why}");
        eprintln!("warning: report artifact {name}: {why}");
    }
    println!("report: {}", dir.join("report.html").display());
    let data = report::Data::new(&stored.history);
    let overall = results
        .get("valid")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("unknown");
    let suite = report::junit::Suite {
        name: title.clone(),
        cases: report::verdicts(results),
        seconds: None,
    };
    let counts = report::markdown::counts_line(&data);
    for e in report::write_ci(junit, md, &title, overall, &[suite], Some(&counts)) {
        tracing::warn!("{e}");
        eprintln!("warning: {e}");
    }
}

/// Files under `nodes/`, relative to the run's folder, sorted.
fn node_logs(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.join(NODES_DIR)];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(rel) = p.strip_prefix(dir) {
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

/// What the local cluster needs on this machine: (program, package).
const HOST_PACKAGES: &[(&str, &str)] = &[
    ("/usr/sbin/sshd", "openssh-server"),
    ("ssh-keygen", "openssh-client"),
    ("ip", "iproute2"),
    ("iptables", "iptables"),
    ("unshare", "util-linux"),
];

/// Installs the Debian packages the local cluster and `db` need when some
/// are missing and we are root — a fresh machine runs a test in one command.
fn ensure_host_packages(db: &str) -> anyhow::Result<()> {
    let present = |prog: &str| {
        if prog.starts_with('/') {
            return Path::new(prog).exists();
        }
        std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(prog).is_file()))
            .unwrap_or(false)
            || ["/usr/sbin", "/sbin", "/usr/bin"]
                .iter()
                .any(|d| Path::new(d).join(prog).is_file())
    };
    let db_packages = crate::system::find(db).map_or(&[][..], |s| s.packages());
    // A db file names Debian packages; they are looked up with dpkg.
    let file_packages = crate::system::file::db_file_path(db)
        .and_then(|p| crate::system::file::FileDbSpec::load(&p).ok())
        .map(|f| f.packages)
        .unwrap_or_default();
    let installed = |pkg: &str| {
        std::process::Command::new("dpkg-query")
            .args(["-W", "-f=${Status}", pkg])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).ends_with(" ok installed"))
    };
    let mut missing: Vec<&str> = HOST_PACKAGES
        .iter()
        .copied()
        .chain(db_packages.iter().map(|p| (p.program, p.package)))
        .filter(|(p, _)| !present(p))
        .map(|(_, pkg)| pkg)
        .collect();
    missing.extend(
        file_packages
            .iter()
            .map(String::as_str)
            .filter(|p| !installed(p)),
    );
    if missing.is_empty() {
        return Ok(());
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "the local cluster needs these Debian packages: {} (install them as root: apt-get install -y {}), and root to run",
            missing.join(", "),
            missing.join(" ")
        );
    }
    eprintln!(
        "installing the Debian packages the local cluster needs: {} ...",
        missing.join(" ")
    );
    let apt = |args: &[&str]| -> anyhow::Result<()> {
        let status = std::process::Command::new("apt-get")
            .args(["-q", "-o", "DPkg::Lock::Timeout=600"])
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .context("running apt-get")?;
        if !status.success() {
            bail!("apt-get {} failed ({status})", args.join(" "));
        }
        Ok(())
    };
    apt(&["update"])?;
    let mut install = vec!["install", "-y"];
    install.extend(missing.iter());
    apt(&install)
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn exit_code(v: Validity) -> i32 {
    match v {
        Validity::Valid => EXIT_VALID,
        Validity::Invalid => EXIT_INVALID,
        Validity::Unknown | Validity::Incomplete => EXIT_UNKNOWN,
    }
}

/// Runs `faultline analyze`: checks a stored run's history again with the
/// checkers its test.json names, and rewrites results.json.
pub fn analyze(a: AnalyzeArgs) -> anyhow::Result<i32> {
    use crate::check::registry::{check_all, CheckContext};
    use crate::check::{bank::BankOptions, classic::ClassicOptions};
    let stored = RunDir::open(&a.dir)?;
    let model = stored.test["model"]
        .as_str()
        .unwrap_or("cas-register")
        .to_string();
    let checkers: Vec<String> = stored.test["checkers"]
        .as_array()
        .map(|c| {
            c.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_else(|| vec!["linearizable".into()]);
    // What the system's reads guaranteed, as the run's checkers assumed.
    let reads = crate::system::recorded_reads(
        stored.test["db"].as_str().unwrap_or_default(),
        stored.test["read_mode"].as_str().unwrap_or("linearizable"),
    );
    let consistency_model = stored.test["consistency_model"]
        .as_str()
        .unwrap_or("strict-serializable")
        .to_string();
    let ctx = CheckContext {
        linearizable_reads: reads.linearizable(),
        consistency_models: vec![consistency_model],
        classic: ClassicOptions {
            bank: BankOptions {
                total: stored.test["bank"]["total"].as_i64(),
                negative_balances: stored.test["bank"]["negative_balances"]
                    .as_bool()
                    .unwrap_or(false),
            },
            ..ClassicOptions::default()
        },
        resident_memory: Some(crate::host::resident_bytes),
        ..CheckContext::new(Some(model), crate::host::memory_limit())
    };
    let (validity, mut results, mut summary) = check_all(&stored.history, &checkers, &ctx);
    // A run that did not run to its end stays incomplete when checked again.
    let incomplete = stored.incomplete_reason();
    let validity = settle(
        validity,
        &mut results,
        &stored.history,
        incomplete.as_deref(),
    );
    // The faults asked for are judged as the run judged them.
    let requested =
        crate::nemesis::coverage::requested_from_value(&stored.test["faults_requested"]);
    let validity = settle_faults(
        validity,
        &mut results,
        &stored.history,
        &requested,
        stored.test["allow_missing_faults"]
            .as_bool()
            .unwrap_or(false)
            || incomplete.is_some(),
    );
    summary.extend(verdict_notes(&results));
    // What the run's online checker did, and why it stopped early, are
    // facts of the run, not of this check: kept.
    if let Some(old) = &stored.results {
        for k in ["online", "stopped_early"] {
            if !old[k].is_null() {
                results[k] = old[k].clone();
            }
        }
    }
    stored.dir.write_results(&results)?;
    for line in &summary {
        println!("{line}");
    }
    report_run(
        &stored,
        &results,
        a.junit.as_deref(),
        a.summary_md.as_deref(),
    );
    println!("{validity}: {}", stored.dir.path.display());
    let _ = EXIT_ERROR;
    Ok(exit_code(validity))
}
