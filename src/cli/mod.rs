//! The command line: clap definitions and dispatch, one file per subcommand.
//!
//! Exit codes, for every subcommand that checks something: 0 valid, 1 invalid,
//! 2 unknown or incomplete, 3 bad input or usage (and any other error, such
//! as a cluster whose lease another command holds).

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

mod check;
#[cfg(feature = "controller")]
mod cluster;
#[cfg(feature = "controller")]
mod compare;
#[cfg(feature = "controller")]
mod db;
#[cfg(feature = "controller")]
mod heal;
mod help;
#[cfg(feature = "lazyfs")]
mod lazyfs;
#[cfg(feature = "nfq")]
mod nfq_delay;
#[cfg(feature = "controller")]
mod progress;
#[cfg(feature = "controller")]
mod run;
#[cfg(feature = "controller")]
mod serve;

/// Exit code: the history (or run) is valid.
pub const EXIT_VALID: i32 = 0;
/// Exit code: the history (or run) is invalid.
pub const EXIT_INVALID: i32 = 1;
/// Exit code: the checker could not decide, or the run did not run to its
/// end (incomplete).
pub const EXIT_UNKNOWN: i32 = 2;
/// Exit code: bad input, bad usage or any other error.
pub const EXIT_ERROR: i32 = 3;

/// faultline: drive real clusters under faults, record what clients saw, and
/// check it for linearizability and transactional anomalies.
#[derive(Parser, Debug)]
#[command(name = "faultline", version, about, long_about = None)]
struct Cli {
    /// More logging (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check histories: linearizability against a model, transactions
    /// (Elle-style) or a classic workload's checker (--model; see --help).
    Check(check::Args),
    /// Build, inspect or remove the embedded local cluster.
    #[cfg(feature = "controller")]
    #[command(subcommand)]
    Cluster(cluster::Command),
    /// Bring a database up or down on the cluster, by hand.
    #[cfg(feature = "controller")]
    #[command(subcommand)]
    Db(db::Command),
    /// Lift every fault faultline may have left on the cluster: partition
    /// and packet rules, paused and killed database processes, moved clocks.
    #[cfg(feature = "controller")]
    Heal(heal::Args),
    /// Run one test: set up the db, drive clients under faults, check.
    #[cfg(feature = "controller")]
    Run(Box<run::Args>),
    /// Check a stored run again (its history, with its checkers).
    #[cfg(feature = "controller")]
    Analyze(run::AnalyzeArgs),
    /// Serve a web UI over a results directory: runs, reports, files.
    #[cfg(feature = "controller")]
    Serve(serve::Args),
    /// One table over dbs × workloads × nemeses from stored runs (or run
    /// them first with --run): which held, which anomalies.
    #[cfg(feature = "controller")]
    Compare(compare::Args),
    /// The NFQUEUE packet program (delay without netem, duplicate,
    /// reorder, corrupt, rate) the packet nemesis runs on nodes.
    #[cfg(feature = "nfq")]
    #[command(hide = true, name = "nfq-packet", alias = "nfq-delay")]
    NfqDelay(nfq_delay::Args),
    /// The FUSE filesystem of the lose-unfsynced fault (run on a node).
    #[cfg(feature = "lazyfs")]
    #[command(hide = true)]
    Lazyfs(lazyfs::Args),
}

/// Parses the command line, runs the subcommand and returns the exit code.
pub fn main() -> i32 {
    let parsed = help::fill(Cli::command())
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m));
    let cli = match parsed {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                EXIT_ERROR
            } else {
                EXIT_VALID
            };
            let _ = e.print();
            return code;
        }
    };
    init_logging(cli.verbose);
    let result = match cli.command {
        Command::Check(a) => check::run(a),
        #[cfg(feature = "controller")]
        Command::Cluster(c) => cluster::run(c),
        #[cfg(feature = "controller")]
        Command::Db(c) => db::run(c),
        #[cfg(feature = "controller")]
        Command::Run(a) => run::run(*a),
        #[cfg(feature = "controller")]
        Command::Analyze(a) => run::analyze(a),
        #[cfg(feature = "controller")]
        Command::Heal(a) => heal::run(a),
        #[cfg(feature = "controller")]
        Command::Serve(a) => serve::run(a),
        #[cfg(feature = "controller")]
        Command::Compare(a) => compare::run(a),
        #[cfg(feature = "nfq")]
        Command::NfqDelay(a) => nfq_delay::run(a),
        #[cfg(feature = "lazyfs")]
        Command::Lazyfs(a) => lazyfs::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            EXIT_ERROR
        }
    }
}

fn init_logging(verbose: u8) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, Layer};
    // The ZooKeeper client logs every failed reconnect as a warning, which
    // under a partition is the expected state of things: one level less.
    // The AMQP client (lapin, and its promises) logs every connection the
    // RabbitMQ client drops as an error: only with -v.
    let default = match verbose {
        0 => "warn,zookeeper_client=error,lapin=off,pinky_swear=off",
        1 => "info,zookeeper_client=warn,lapin=error,pinky_swear=error",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // Colours only for a person at a terminal: a CI log or a file gets
    // plain text.
    let stderr = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .with_filter(filter);
    let registry = tracing_subscriber::registry().with(stderr);
    // A run's faultline.log gets info and above, whatever the terminal shows.
    #[cfg(feature = "controller")]
    let registry = registry.with(
        tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(|| RunLog)
            .with_filter(EnvFilter::new("info")),
    );
    let _ = registry.try_init();
}

/// Where `tracing` output goes besides stderr: the current run's
/// `faultline.log`, attached once the runner reports the run's folder.
#[cfg(feature = "controller")]
static RUN_LOG: std::sync::Mutex<Option<std::fs::File>> = std::sync::Mutex::new(None);

/// Sends log lines to `path` (created or appended to) from now on, besides
/// stderr. A log that cannot be opened is a warning: the run goes on.
#[cfg(feature = "controller")]
fn attach_log_file(path: &std::path::Path) {
    match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        Ok(f) => {
            if let Ok(mut g) = RUN_LOG.lock() {
                *g = Some(f);
            }
        }
        Err(e) => eprintln!("warning: cannot open {}: {e}", path.display()),
    }
}

/// Takes the cluster's lease for `what` (one command drives a cluster at a
/// time), printing a note when a dead holder's lease was taken over.
#[cfg(feature = "controller")]
fn take_lease(
    cluster: &crate::cluster::Cluster,
    what: &str,
) -> anyhow::Result<crate::cluster::lease::Lease> {
    let lease = crate::cluster::lease::acquire(cluster, what)?;
    if let Some(note) = lease.note() {
        tracing::warn!("{note}");
        eprintln!("note: {note}");
    }
    Ok(lease)
}

/// Writes to the current run's `faultline.log`, if there is one.
#[cfg(feature = "controller")]
struct RunLog;

#[cfg(feature = "controller")]
impl std::io::Write for RunLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut g) = RUN_LOG.lock() {
            if let Some(f) = g.as_mut() {
                return f.write(buf);
            }
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        if let Ok(mut g) = RUN_LOG.lock() {
            if let Some(f) = g.as_mut() {
                return f.flush();
            }
        }
        Ok(())
    }
}
