//! What the lifecycle of a test tells whoever runs it, as it happens: the
//! run's folder, the phases, live counts and active faults, warnings. The
//! lifecycle prints nothing itself; the command line turns these events
//! into its progress display and attaches its log file (`cli/progress.rs`).

use super::Counts;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// One event of a test's lifecycle.
#[derive(Clone, Debug, PartialEq)]
pub enum RunEvent {
    /// The run's folder exists; its files (the log among them) may be
    /// written from now on.
    Created {
        /// The run's folder.
        dir: PathBuf,
    },
    /// The database is being set up on every node.
    SettingUp {
        /// The db's name.
        db: String,
        /// The nodes the db runs on (PostgreSQL: the first only).
        nodes: Vec<String>,
        /// How many nodes the cluster has.
        of: usize,
    },
    /// The workers and the nemesis start under the generator.
    Running {
        /// The workload's name.
        workload: String,
        /// Seconds of the main phase.
        time_limit: f64,
        /// Client workers.
        concurrency: usize,
        /// Operations per second over all workers, if limited.
        rate: Option<f64>,
        /// The nemeses, empty for none.
        nemeses: Vec<String>,
        /// The seed of every random choice.
        seed: u64,
        /// Where the history is written.
        history: PathBuf,
    },
    /// Every half second while the workers run: what they did so far and
    /// which faults are active.
    Progress {
        /// Time since the workers started.
        elapsed: Duration,
        /// Client operations so far.
        counts: Counts,
        /// The active fault kinds, from the nemesis record (empty: none).
        faults: Vec<String>,
    },
    /// The online checker proved a violation (`line` says which, where
    /// and how long after the operation); `stopping`: the main phase ends
    /// now (`--stop-on-invalid`).
    Violation {
        /// The finding, for people.
        line: String,
        /// The run stops early because of it.
        stopping: bool,
    },
    /// The workers have stopped; the cleanup (heal, logs, teardown) follows.
    Stopped,
    /// Something the operator should know or act on (a failed heal, a
    /// failed teardown); the run goes on.
    Warning(String),
}

/// Where the lifecycle sends its events: called on the lifecycle's tasks,
/// so it must be quick (print, or send on a channel).
pub type EventSink = Arc<dyn Fn(RunEvent) + Send + Sync>;

/// A sink that drops every event (for tests and library callers that
/// want no display).
pub fn no_events() -> EventSink {
    Arc::new(|_| {})
}
