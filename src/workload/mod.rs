//! Workloads: what a test does to the database, read from
//! `workloads/<name>.toml` at run time.
//!
//! A [`Workload`] names the op mix (a weight per function), how keys and
//! values are drawn, the model the history is checked against and the
//! checkers to run, and an optional final phase. It builds the test's
//! [`Generator`] from a seed. The file format is documented, with a
//! complete example, in `docs/workload-format.md`; every error in a file
//! names the file, the line and the field.

use crate::generator::{
    self, each_worker, limit, once, phases, rate, time_limit, values::random_keys, Dist, Generator,
    Independent, OpMix, OpSpec, ValueShape,
};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;

pub mod bank;
pub mod lock;
pub mod long_fork;
pub mod txn;
pub use bank::{BankGen, BankSpec};
pub use lock::{LockGen, LockSpec};
pub use long_fork::{LongForkGen, LongForkSpec};
pub use txn::{TxnGen, TxnSpec};

/// The models a workload may name, with the functions each accepts.
pub const MODELS: &[(&str, &[&str])] = &[
    ("cas-register", &["read", "write", "cas"]),
    ("register", &["read", "write"]),
    ("set", &["add", "read"]),
    ("list-append", &["txn"]),
    ("rw-register", &["txn"]),
    ("bank", &["transfer", "read"]),
    ("counter", &["add", "read"]),
    ("unique-ids", &["generate"]),
    ("queue", &["enqueue", "dequeue", "drain"]),
    ("long-fork", &["txn"]),
    // What a worker does while it holds the lock; the acquire and release
    // around it come from the cycle of `lock::LockGen`.
    ("mutex", &["add", "read"]),
    ("noop", &[]),
];

/// The models whose operations are transactions (`f = "txn"`), generated
/// by [`txn::TxnGen`] from the file's `[txn]` table.
pub const TXN_MODELS: &[&str] = &["list-append", "rw-register"];

/// RNG streams, so each random choice has its own draws (see
/// [`generator::rng`]). Per-key streams start at `KEY_STREAMS`.
const RATE_STREAM: u64 = 1;
const MIX_STREAM: u64 = 2;
const KEY_STREAM: u64 = 3;
const KEY_STREAMS: u64 = 1 << 32;
const TXN_STREAM: u64 = 4;
const BANK_STREAM: u64 = 5;
const LONG_FORK_STREAM: u64 = 6;

/// A workload file that cannot be used: the file, the line and the field
/// at fault, and what was expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadError {
    /// The file.
    pub file: PathBuf,
    /// The 1-based line, when known.
    pub line: Option<usize>,
    /// The field, dotted (`keys.in_flight`), when known.
    pub field: Option<String>,
    /// What was wrong and what was expected.
    pub message: String,
}

impl fmt::Display for WorkloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": field `{field}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for WorkloadError {}

/// How keys are chosen.
#[derive(Clone, Debug, PartialEq)]
pub enum Keys {
    /// Keys `0, 1, 2, ...` each given `ops_per_key` operations, `in_flight`
    /// keys at a time; each key is checked on its own.
    Independent {
        /// How many keys in all; `None` for as many as the time allows.
        count: Option<u64>,
        /// Operations per key.
        ops_per_key: u64,
        /// Keys being worked on at once.
        in_flight: usize,
        /// At most this many operations in flight on one key, if set.
        max_concurrency: Option<usize>,
    },
    /// Every operation on a key drawn from `0..count`.
    Shared {
        /// The key distribution.
        dist: DistSpec,
    },
}

/// A distribution as written in a workload file.
#[derive(Clone, Debug, PartialEq)]
pub enum DistSpec {
    /// Uniform over `0..count`.
    Uniform {
        /// Distinct values.
        count: u64,
    },
    /// Zipf over `0..count` with this exponent.
    Zipf {
        /// Distinct values.
        count: u64,
        /// The exponent (1.0 is classic Zipf).
        exponent: f64,
    },
    /// `start, start+1, ...`, each drawn once.
    Sequential {
        /// The first value.
        start: u64,
    },
}

impl DistSpec {
    /// The distribution itself.
    pub fn build(&self) -> Dist {
        // Validated at load time, so these cannot fail; fall back to the
        // simplest distribution rather than panic if a caller built a bad
        // spec by hand.
        match self {
            DistSpec::Uniform { count } => Dist::uniform(*count).unwrap_or(Dist::Uniform { n: 1 }),
            DistSpec::Zipf { count, exponent } => {
                Dist::zipf(*count, *exponent).unwrap_or(Dist::Uniform { n: (*count).max(1) })
            }
            DistSpec::Sequential { start } => Dist::sequential(*start),
        }
    }
}

/// A loaded, validated workload.
#[derive(Clone, Debug, PartialEq)]
pub struct Workload {
    /// Its name (the `name` field, or the file's stem).
    pub name: String,
    /// The file it came from.
    pub source: PathBuf,
    /// The model to check against (one of [`MODELS`]).
    pub model: String,
    /// The checkers to run (each a name of [`crate::check::registry`]).
    pub checkers: Vec<String>,
    /// The op mix: `(f, weight)`, sorted by `f`.
    pub ops: Vec<(String, u32)>,
    /// How keys are chosen; `None` for a workload with no keys.
    pub keys: Option<Keys>,
    /// How values are drawn.
    pub values: DistSpec,
    /// Functions each worker invokes once, in order, after the main phase
    /// (and after every operation of it has completed); for the
    /// transactional models, after the final reads of
    /// [`TxnSpec::final_reads`].
    pub final_ops: Vec<String>,
    /// The shape of transactions, for the transactional models
    /// ([`TXN_MODELS`]); `None` for the others.
    pub txn: Option<TxnSpec>,
    /// The bank's accounts and money, for model `bank`; `None` for the
    /// others.
    pub bank: Option<BankSpec>,
    /// The shape of key groups, for model `long-fork`; `None` for the
    /// others.
    pub long_fork: Option<LongForkSpec>,
    /// The lock's lease and the length of a read-modify-write, for model
    /// `mutex`; `None` for the others.
    pub lock: Option<LockSpec>,
}

/// How the main phase is bounded and paced.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GenOptions {
    /// Operations per second over all workers; `None` for as fast as they go.
    pub rate: Option<f64>,
    /// Length of the main phase in ns; `None` until the keys run out.
    pub time_limit_ns: Option<u64>,
}

impl Workload {
    /// Reads and validates a workload file.
    pub fn load(path: &Path) -> Result<Workload, WorkloadError> {
        let text = std::fs::read_to_string(path).map_err(|e| WorkloadError {
            file: path.to_path_buf(),
            line: None,
            field: None,
            message: format!("cannot read: {e}"),
        })?;
        Workload::parse(&text, path)
    }

    /// Finds a workload by name in `dir` (`<dir>/<name>.toml`), or loads
    /// `name` itself when it is a path to a file.
    pub fn find(name: &str, dir: &Path) -> Result<Workload, WorkloadError> {
        let as_path = Path::new(name);
        if as_path.extension().is_some_and(|e| e == "toml") || as_path.components().count() > 1 {
            return Workload::load(as_path);
        }
        let path = dir.join(format!("{name}.toml"));
        if !path.exists() {
            // An unknown name, not a broken file: say which names there are.
            return Err(WorkloadError {
                file: path,
                line: None,
                field: None,
                message: format!(
                    "unknown workload {name:?}: expected one of {} (the files in {}), \
                     or a path to a workload file (docs/workload-format.md)",
                    Workload::names(dir).join(", "),
                    dir.display()
                ),
            });
        }
        Workload::load(&path)
    }

    /// The names of the workload files in `dir`, sorted.
    pub fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .flatten()
                    .filter_map(|e| {
                        let p = e.path();
                        (p.extension().is_some_and(|x| x == "toml"))
                            .then(|| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
                            .flatten()
                    })
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// The leaf generator of the main phase for one key (or for the whole
    /// test when keys are shared or absent), from RNG stream `stream`,
    /// drawing values from `values` (built once: clones share a Zipf table).
    fn mix(&self, values: Dist, seed: u64, stream: u64) -> Box<dyn Generator> {
        let ops = self
            .ops
            .iter()
            .map(|(f, w)| (f.clone(), *w, ValueShape::for_f(f)))
            .collect();
        match OpMix::new(ops, values, generator::rng(seed, stream)) {
            Some(m) => Box::new(m),
            // Validation refuses an all-zero mix; one built by hand
            // generates nothing.
            None => Box::new(generator::from_fn(|_| generator::Emit::Done)),
        }
    }

    /// The main phase, unbounded in time and unpaced.
    pub fn main_generator(&self, seed: u64) -> Box<dyn Generator> {
        self.main_and_final(seed).0
    }

    /// The main phase (unbounded in time and unpaced) and the final phase
    /// (`None` when the workload has none), built together because the
    /// final reads of the transactional models read the keys this main
    /// phase hands out (`0..` [`TxnGen::keys_used`]).
    pub fn main_and_final(&self, seed: u64) -> (Box<dyn Generator>, Option<Box<dyn Generator>>) {
        if let Some(spec) = &self.txn {
            let main = TxnGen::new(
                spec.clone(),
                self.model == "list-append",
                generator::rng(seed, TXN_STREAM),
            );
            let reads = spec.final_reads.then(|| {
                Box::new(txn::FinalReads::new(
                    main.keys_used(),
                    spec.final_read_keys(),
                )) as Box<dyn Generator>
            });
            let final_phase = match (reads, self.final_ops_generator()) {
                (Some(r), Some(f)) => Some(Box::new(phases(vec![r, f])) as Box<dyn Generator>),
                (r, f) => r.or(f),
            };
            return (Box::new(main), final_phase);
        }
        (self.non_txn_main(seed), self.final_ops_generator())
    }

    /// The main phase of the models other than [`TXN_MODELS`].
    fn non_txn_main(&self, seed: u64) -> Box<dyn Generator> {
        if let Some(spec) = &self.long_fork {
            return Box::new(LongForkGen::new(
                spec.clone(),
                generator::rng(seed, LONG_FORK_STREAM),
            ));
        }
        if let Some(spec) = &self.bank {
            let ops = self
                .ops
                .iter()
                .map(|(f, w)| (f.clone(), *w, ValueShape::Null))
                .collect();
            if let Some(mix) = OpMix::new(
                ops,
                Dist::Uniform { n: 1 },
                generator::rng(seed, MIX_STREAM),
            ) {
                return Box::new(BankGen::new(
                    spec.clone(),
                    mix,
                    generator::rng(seed, BANK_STREAM),
                ));
            }
        }
        if let Some(lock) = self.lock_generator(seed) {
            return Box::new(lock);
        }
        let values = self.values.build();
        match &self.keys {
            None => self.mix(values, seed, MIX_STREAM),
            Some(Keys::Shared { dist }) => Box::new(random_keys(
                dist.build(),
                generator::rng(seed, KEY_STREAM),
                self.mix(values, seed, MIX_STREAM),
            )),
            Some(Keys::Independent {
                count,
                ops_per_key,
                in_flight,
                max_concurrency,
            }) => {
                let this = self.clone();
                let per_key = *ops_per_key;
                // Each key's operations come from its own stream, so they
                // depend on the seed and the key only, not on scheduling.
                let make: generator::independent::MakeKeyGen = Box::new(move |k, _key: &Value| {
                    let mix = this.mix(values.clone(), seed, KEY_STREAMS + k);
                    Box::new(limit(per_key, mix)) as Box<dyn Generator>
                });
                let keys: Box<dyn Iterator<Item = Value> + Send> = match count {
                    Some(c) => Box::new((0..*c).map(Value::from)),
                    None => Box::new((0..).map(Value::from)),
                };
                let ind = Independent::new(keys, *in_flight, make);
                Box::new(match max_concurrency {
                    Some(c) => ind.per_key_concurrency(*c),
                    None => ind,
                })
            }
        }
    }

    /// The lock cycles of a `[lock]` workload.
    fn lock_generator(&self, seed: u64) -> Option<LockGen> {
        let lock = self.lock.as_ref()?;
        let ops = self
            .ops
            .iter()
            .map(|(f, w)| (f.clone(), *w, ValueShape::for_f(f)))
            .collect();
        let mix = OpMix::new(ops, self.values.build(), generator::rng(seed, MIX_STREAM))?;
        let wait = std::time::Duration::from_secs(lock.acquire_timeout_s);
        Some(LockGen::new(mix, wait))
    }

    /// The whole test's client generator: the main phase (paced by
    /// `opts.rate`, bounded by `opts.time_limit_ns`), then the final phase.
    pub fn generator(&self, seed: u64, opts: GenOptions) -> Box<dyn Generator> {
        match self.bounded_phases(seed, opts) {
            (main, None) => main,
            (main, Some(final_phase)) => Box::new(phases(vec![main, final_phase])),
        }
    }

    /// The test's two client phases, for the runner to put its nemesis
    /// beside the first: the main phase, paced by `opts.rate` and bounded
    /// by `opts.time_limit_ns`, and the final phase (`None` when the
    /// workload has none). A lock workload winds down at the time limit
    /// (every holder releases, no worker acquires again) and is cut off
    /// only when the acquires still waiting have had their time, so its
    /// lock is free when the main phase ends.
    pub fn bounded_phases(
        &self,
        seed: u64,
        opts: GenOptions,
    ) -> (Box<dyn Generator>, Option<Box<dyn Generator>>) {
        let (main, final_phase) = self.main_and_final(seed);
        let (mut main, mut limit) = match (self.lock_generator(seed), opts.time_limit_ns) {
            (Some(lock), Some(t)) => {
                let grace = 2 * lock.acquire_timeout().as_nanos() as u64;
                let lock = lock.winding_down_after(t);
                (
                    Box::new(lock) as Box<dyn Generator>,
                    Some(t.saturating_add(grace)),
                )
            }
            _ => (main, opts.time_limit_ns),
        };
        if let Some(r) = opts.rate {
            main = Box::new(rate(r, generator::rng(seed, RATE_STREAM), main));
        }
        if let Some(t) = limit.take() {
            main = Box::new(time_limit(t, main));
        }
        (main, final_phase)
    }

    /// What the classic checkers (bank, queue, ...) need from this
    /// workload.
    pub fn classic_options(&self) -> crate::check::classic::ClassicOptions {
        crate::check::classic::ClassicOptions {
            bank: self
                .bank
                .as_ref()
                .map(BankSpec::check_options)
                .unwrap_or_default(),
            ..Default::default()
        }
    }

    /// The `[final]` phase: each worker invokes the final functions once,
    /// in order; `None` when the workload has none.
    fn final_ops_generator(&self) -> Option<Box<dyn Generator>> {
        if self.final_ops.is_empty() {
            return None;
        }
        let fin = self.final_ops.clone();
        let final_phase = each_worker(move |_| {
            let gens: Vec<Box<dyn Generator>> = fin
                .iter()
                .map(|f| {
                    Box::new(once(generator::repeat(OpSpec::new(f.clone(), json!(null)))))
                        as Box<dyn Generator>
                })
                .collect();
            Box::new(generator::seq(gens))
        });
        Some(Box::new(final_phase))
    }
}

mod file;

#[cfg(test)]
mod tests;
