//! The command line: clap definitions and dispatch, one file per subcommand.
//!
//! Exit codes, for every subcommand that checks something: 0 valid, 1 invalid,
//! 2 unknown, 3 bad input or usage (and any other error).

use clap::{Parser, Subcommand};

mod check;
#[cfg(feature = "controller")]
mod cluster;
#[cfg(feature = "controller")]
mod db;

/// Exit code: the history (or run) is valid.
pub const EXIT_VALID: i32 = 0;
/// Exit code: the history (or run) is invalid.
pub const EXIT_INVALID: i32 = 1;
/// Exit code: the checker could not decide.
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
    /// Check histories for linearizability against a model.
    Check(check::Args),
    /// Build, inspect or remove the embedded local cluster.
    #[cfg(feature = "controller")]
    #[command(subcommand)]
    Cluster(cluster::Command),
    /// Bring a database up or down on the cluster, by hand.
    #[cfg(feature = "controller")]
    #[command(subcommand)]
    Db(db::Command),
}

/// Parses the command line, runs the subcommand and returns the exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_ERROR } else { EXIT_VALID };
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
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
