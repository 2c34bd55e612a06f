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
pub mod long_fork;
pub mod txn;
pub use bank::{BankGen, BankSpec};
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
    /// (and after every operation of it has completed).
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
        Workload::load(&dir.join(format!("{name}.toml")))
    }

    /// Parses and validates workload text; `source` names it in errors.
    pub fn parse(text: &str, source: &Path) -> Result<Workload, WorkloadError> {
        let at = |span: Option<Range<usize>>, message: String| {
            let line = span.as_ref().map(|s| line_of(text, s.start));
            let field = span.as_ref().and_then(|s| field_at(text, s.start));
            WorkloadError {
                file: source.to_path_buf(),
                line,
                field,
                message,
            }
        };
        let raw: RawWorkload =
            toml::from_str(text).map_err(|e| at(e.span(), e.message().trim().to_string()))?;
        let bad = |s: Range<usize>, m: String| at(Some(s), m);

        let model = raw.model.get_ref().clone();
        let Some((_, model_fs)) = MODELS.iter().find(|(m, _)| *m == model) else {
            let names: Vec<_> = MODELS.iter().map(|(m, _)| *m).collect();
            return Err(bad(
                raw.model.span(),
                format!("unknown model {model:?}; known: {}", names.join(", ")),
            ));
        };

        let mut checkers = Vec::new();
        for c in raw.checkers.into_iter().flat_map(Spanned::into_inner) {
            if crate::check::registry::by_name(c.get_ref()).is_none() {
                return Err(bad(
                    c.span(),
                    format!(
                        "unknown checker {:?}; known: {}",
                        c.get_ref(),
                        crate::check::registry::names().join(", ")
                    ),
                ));
            }
            checkers.push(c.into_inner());
        }

        let mut ops = Vec::new();
        let ops_span = raw.ops.span();
        for (f, w) in raw.ops.into_inner() {
            if !model_fs.is_empty() && !model_fs.contains(&f.get_ref().as_str()) {
                return Err(bad(
                    f.span(),
                    format!(
                        "model {model} has no function {:?}; it takes {}",
                        f.get_ref(),
                        model_fs.join(", ")
                    ),
                ));
            }
            let weight = *w.get_ref();
            if !(0..=1_000_000).contains(&weight) {
                return Err(bad(
                    w.span(),
                    format!("a weight is a whole number from 0 to 1000000, got {weight}"),
                ));
            }
            ops.push((f.into_inner(), weight as u32));
        }
        if ops.iter().all(|(_, w)| *w == 0) {
            return Err(bad(
                ops_span,
                "the op mix needs at least one function with a positive weight".into(),
            ));
        }

        let keys = match raw.keys {
            None => None,
            Some(k) => Some(k.into_inner().validate(&bad)?),
        };
        let values = match raw.values {
            None => DistSpec::Uniform { count: 5 },
            Some(v) => v.into_inner().validate(&bad)?,
        };
        let mut final_ops = Vec::new();
        if let Some(fin) = raw.final_ {
            let fin_span = fin.span();
            if keys.is_some() {
                return Err(bad(
                    fin_span,
                    "a final phase needs a workload without [keys]".into(),
                ));
            }
            for f in fin.into_inner().ops {
                if !model_fs.is_empty() && !model_fs.contains(&f.get_ref().as_str()) {
                    return Err(bad(
                        f.span(),
                        format!("model {model} has no function {:?}", f.get_ref()),
                    ));
                }
                final_ops.push(f.into_inner());
            }
        }
        let is_txn = TXN_MODELS.contains(&model.as_str());
        let txn = match raw.txn {
            Some(t) if !is_txn => {
                return Err(bad(
                    t.span(),
                    format!("[txn] applies to the models {} only", TXN_MODELS.join(", ")),
                ))
            }
            Some(t) => Some(t.into_inner().validate(&bad)?),
            None if is_txn => Some(TxnSpec::default()),
            None => None,
        };
        if is_txn && keys.is_some() {
            return Err(bad(
                ops_span,
                format!("model {model} draws its own keys: remove [keys] and use [txn]"),
            ));
        }
        let bank = match raw.bank {
            Some(b) if model != "bank" => {
                return Err(bad(
                    b.span(),
                    "[bank] applies to the model bank only".into(),
                ))
            }
            Some(b) => Some(b.into_inner().validate(&bad)?),
            None if model == "bank" => Some(BankSpec::default()),
            None => None,
        };
        let long_fork = match raw.long_fork {
            Some(l) if model != "long-fork" => {
                return Err(bad(
                    l.span(),
                    "[long_fork] applies to the model long-fork only".into(),
                ))
            }
            Some(l) => Some(l.into_inner().validate(&bad)?),
            None if model == "long-fork" => Some(LongForkSpec::default()),
            None => None,
        };
        if (bank.is_some() || long_fork.is_some()) && keys.is_some() {
            return Err(bad(
                ops_span,
                format!("model {model} draws its own keys: remove [keys]"),
            ));
        }
        let name = match raw.name {
            Some(n) => n.into_inner(),
            None => source
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
        };
        Ok(Workload {
            name,
            source: source.to_path_buf(),
            model,
            checkers,
            ops,
            keys,
            values,
            final_ops,
            txn,
            bank,
            long_fork,
        })
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
        if let Some(spec) = &self.txn {
            return Box::new(TxnGen::new(
                spec.clone(),
                self.model == "list-append",
                generator::rng(seed, TXN_STREAM),
            ));
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

    /// The whole test's client generator: the main phase (paced by
    /// `opts.rate`, bounded by `opts.time_limit_ns`), then the final phase.
    pub fn generator(&self, seed: u64, opts: GenOptions) -> Box<dyn Generator> {
        let mut main = self.main_generator(seed);
        if let Some(r) = opts.rate {
            main = Box::new(rate(r, generator::rng(seed, RATE_STREAM), main));
        }
        if let Some(t) = opts.time_limit_ns {
            main = Box::new(time_limit(t, main));
        }
        match self.final_generator() {
            None => main,
            Some(final_phase) => Box::new(phases(vec![main, final_phase])),
        }
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

    /// The final phase: each worker invokes the final functions once, in
    /// order; `None` when the workload has none.
    pub fn final_generator(&self) -> Option<Box<dyn Generator>> {
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

/// The 1-based line of byte `offset`.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// The dotted field at byte `offset`: the key on that line, under the
/// nearest `[table]` header above it. A best effort for error messages.
fn field_at(text: &str, offset: usize) -> Option<String> {
    let end = offset.min(text.len());
    let start_of_line = text[..end].rfind('\n').map_or(0, |i| i + 1);
    let line = text[start_of_line..].lines().next().unwrap_or("");
    let trimmed = line.trim();
    let table = text[..start_of_line]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && !l.starts_with("[["))
        .map(|l| {
            l.trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        });
    if trimmed.starts_with('[') {
        return Some(
            trimmed
                .trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or("")
                .trim()
                .to_string(),
        );
    }
    let key = trimmed.split('=').next()?.trim().trim_matches('"');
    if key.is_empty() || !trimmed.contains('=') {
        return table;
    }
    Some(match table {
        Some(t) if !t.is_empty() => format!("{t}.{key}"),
        _ => key.to_string(),
    })
}

type Bad<'a> = dyn Fn(Range<usize>, String) -> WorkloadError + 'a;

/// The file as written, before validation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorkload {
    name: Option<Spanned<String>>,
    model: Spanned<String>,
    checkers: Option<Spanned<Vec<Spanned<String>>>>,
    ops: Spanned<BTreeMap<Spanned<String>, Spanned<i64>>>,
    keys: Option<Spanned<RawKeys>>,
    values: Option<Spanned<RawDist>>,
    #[serde(rename = "final")]
    final_: Option<Spanned<RawFinal>>,
    txn: Option<Spanned<RawTxn>>,
    bank: Option<Spanned<RawBank>>,
    long_fork: Option<Spanned<RawLongFork>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBank {
    accounts: Option<Spanned<i64>>,
    total: Option<Spanned<i64>>,
    max_transfer: Option<Spanned<i64>>,
    negative_balances: Option<bool>,
}

impl RawBank {
    fn validate(self, bad: &Bad<'_>) -> Result<BankSpec, WorkloadError> {
        let d = BankSpec::default();
        Ok(BankSpec {
            accounts: match &self.accounts {
                Some(v) => int_in(v, 2, 100_000, bad)?,
                None => d.accounts,
            },
            total: match &self.total {
                Some(v) => int_in(v, 0, 1 << 50, bad)? as i64,
                None => d.total,
            },
            max_transfer: match &self.max_transfer {
                Some(v) => int_in(v, 1, 1 << 50, bad)? as i64,
                None => d.max_transfer,
            },
            negative_balances: self.negative_balances.unwrap_or(d.negative_balances),
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLongFork {
    group_size: Option<Spanned<i64>>,
    active_groups: Option<Spanned<i64>>,
    read_fraction: Option<Spanned<f64>>,
}

impl RawLongFork {
    fn validate(self, bad: &Bad<'_>) -> Result<LongForkSpec, WorkloadError> {
        let d = LongForkSpec::default();
        Ok(LongForkSpec {
            group_size: match &self.group_size {
                Some(v) => int_in(v, 2, 64, bad)?,
                None => d.group_size,
            },
            active_groups: match &self.active_groups {
                Some(v) => int_in(v, 1, 10_000, bad)? as usize,
                None => d.active_groups,
            },
            read_fraction: match &self.read_fraction {
                Some(f) if !(0.0..=1.0).contains(f.get_ref()) => {
                    return Err(bad(
                        f.span(),
                        format!("must be a number from 0 to 1, got {}", f.get_ref()),
                    ))
                }
                Some(f) => *f.get_ref(),
                None => d.read_fraction,
            },
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTxn {
    min_ops: Option<Spanned<i64>>,
    max_ops: Option<Spanned<i64>>,
    active_keys: Option<Spanned<i64>>,
    max_writes_per_key: Option<Spanned<i64>>,
    read_fraction: Option<Spanned<f64>>,
}

impl RawTxn {
    fn validate(self, bad: &Bad<'_>) -> Result<TxnSpec, WorkloadError> {
        let d = TxnSpec::default();
        let min_ops = match &self.min_ops {
            Some(v) => int_in(v, 1, 1000, bad)? as usize,
            None => d.min_ops,
        };
        let max_ops = match &self.max_ops {
            Some(v) => int_in(v, min_ops as i64, 1000, bad)? as usize,
            None => d.max_ops.max(min_ops),
        };
        let active_keys = match &self.active_keys {
            Some(v) => int_in(v, 1, 100_000, bad)? as usize,
            None => d.active_keys,
        };
        let max_writes_per_key = match &self.max_writes_per_key {
            Some(v) => int_in(v, 1, MAX_COUNT, bad)?,
            None => d.max_writes_per_key,
        };
        let read_fraction = match &self.read_fraction {
            Some(f) if !(0.0..=1.0).contains(f.get_ref()) => {
                return Err(bad(
                    f.span(),
                    format!("must be a number from 0 to 1, got {}", f.get_ref()),
                ))
            }
            Some(f) => *f.get_ref(),
            None => d.read_fraction,
        };
        Ok(TxnSpec {
            min_ops,
            max_ops,
            active_keys,
            max_writes_per_key,
            read_fraction,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeys {
    distribution: Spanned<String>,
    count: Option<Spanned<i64>>,
    ops_per_key: Option<Spanned<i64>>,
    in_flight: Option<Spanned<i64>>,
    max_concurrency: Option<Spanned<i64>>,
    exponent: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDist {
    distribution: Spanned<String>,
    count: Option<Spanned<i64>>,
    exponent: Option<Spanned<f64>>,
    start: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFinal {
    ops: Vec<Spanned<String>>,
}

/// A whole number in `lo..=hi`, or an error at its span.
fn int_in(v: &Spanned<i64>, lo: i64, hi: i64, bad: &Bad<'_>) -> Result<u64, WorkloadError> {
    let x = *v.get_ref();
    if x < lo || x > hi {
        return Err(bad(v.span(), format!("must be from {lo} to {hi}, got {x}")));
    }
    Ok(x as u64)
}

/// Refuses a field that does not apply to the chosen distribution.
fn not_for<T>(
    field: &Option<Spanned<T>>,
    name: &str,
    dist: &str,
    bad: &Bad<'_>,
) -> Result<(), WorkloadError> {
    match field {
        Some(f) => Err(bad(
            f.span(),
            format!("`{name}` does not apply to distribution {dist:?}"),
        )),
        None => Ok(()),
    }
}

const MAX_COUNT: i64 = 1 << 40;

impl RawKeys {
    fn validate(self, bad: &Bad<'_>) -> Result<Keys, WorkloadError> {
        let d = self.distribution.get_ref().as_str();
        match d {
            "independent" => {
                not_for(&self.exponent, "exponent", d, bad)?;
                let count = self
                    .count
                    .as_ref()
                    .map(|c| int_in(c, 1, MAX_COUNT, bad))
                    .transpose()?;
                let ops_per_key = match &self.ops_per_key {
                    Some(v) => int_in(v, 1, MAX_COUNT, bad)?,
                    None => 100,
                };
                let in_flight = match &self.in_flight {
                    Some(v) => int_in(v, 1, 10_000, bad)? as usize,
                    None => 4,
                };
                let max_concurrency = self
                    .max_concurrency
                    .as_ref()
                    .map(|v| int_in(v, 1, 10_000, bad).map(|x| x as usize))
                    .transpose()?;
                Ok(Keys::Independent {
                    count,
                    ops_per_key,
                    in_flight,
                    max_concurrency,
                })
            }
            "uniform" | "zipf" => {
                not_for(&self.ops_per_key, "ops_per_key", d, bad)?;
                not_for(&self.in_flight, "in_flight", d, bad)?;
                not_for(&self.max_concurrency, "max_concurrency", d, bad)?;
                let raw = RawDist {
                    distribution: self.distribution,
                    count: self.count,
                    exponent: self.exponent,
                    start: None,
                };
                Ok(Keys::Shared {
                    dist: raw.validate(bad)?,
                })
            }
            other => Err(bad(
                self.distribution.span(),
                format!("unknown key distribution {other:?}; use independent, uniform or zipf"),
            )),
        }
    }
}

impl RawDist {
    fn validate(self, bad: &Bad<'_>) -> Result<DistSpec, WorkloadError> {
        let d = self.distribution.get_ref().as_str();
        let count = |bad: &Bad<'_>| match &self.count {
            Some(c) => int_in(c, 1, MAX_COUNT, bad),
            None => Err(bad(
                self.distribution.span(),
                format!("distribution {d:?} needs `count`"),
            )),
        };
        match d {
            "uniform" => {
                not_for(&self.exponent, "exponent", d, bad)?;
                not_for(&self.start, "start", d, bad)?;
                Ok(DistSpec::Uniform { count: count(bad)? })
            }
            "zipf" => {
                not_for(&self.start, "start", d, bad)?;
                let count = count(bad)?;
                if count > Dist::MAX_ZIPF {
                    return Err(bad(
                        self.distribution.span(),
                        format!("zipf takes at most {} values", Dist::MAX_ZIPF),
                    ));
                }
                let exponent = match &self.exponent {
                    Some(e) if !e.get_ref().is_finite() || *e.get_ref() < 0.0 => {
                        return Err(bad(
                            e.span(),
                            format!("must be a number ≥ 0, got {}", e.get_ref()),
                        ));
                    }
                    Some(e) => *e.get_ref(),
                    None => 1.0,
                };
                Ok(DistSpec::Zipf { count, exponent })
            }
            "sequential" => {
                not_for(&self.count, "count", d, bad)?;
                not_for(&self.exponent, "exponent", d, bad)?;
                let start = match &self.start {
                    Some(s) => int_in(s, 0, i64::MAX, bad)?,
                    None => 0,
                };
                Ok(DistSpec::Sequential { start })
            }
            other => Err(bad(
                self.distribution.span(),
                format!("unknown distribution {other:?}; use uniform, zipf or sequential"),
            )),
        }
    }
}

#[cfg(test)]
mod tests;
