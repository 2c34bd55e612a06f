//! Seeded randomness for generators: the RNG, value and key distributions,
//! and [`OpMix`], the leaf generator that draws an op kind by weight and a
//! value for it.
//!
//! Every random generator owns its own [`ChaCha8Rng`], derived from the
//! test's seed and a stream number with [`rng`], so that no generator's
//! draws depend on another's, nor on timing.

use super::{Context, Emit, Generator, OpSpec};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::sync::Arc;

/// The RNG for stream `stream` of a test seeded with `seed`: streams are
/// independent, and the same `(seed, stream)` always gives the same draws.
pub fn rng(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(stream);
    r
}

/// A distribution of non-negative integers, for keys and values.
#[derive(Clone, Debug)]
pub enum Dist {
    /// Uniform over `0..n`.
    Uniform {
        /// The number of distinct values.
        n: u64,
    },
    /// Zipf over `0..n`: value `i` has weight `1 / (i+1)^s`, so small values
    /// are hot (contended keys, popular values).
    Zipf {
        /// Cumulative weights, normalised to end at 1; shared by clones.
        cdf: Arc<[f64]>,
    },
    /// `start, start+1, ...`: every draw unique (set adds, unique ids).
    Sequential {
        /// The next value to hand out.
        next: u64,
    },
}

/// Why a distribution cannot be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DistError {
    /// A uniform or Zipf distribution over no values.
    #[error("a distribution needs at least one value (got n = 0)")]
    Empty,
    /// A Zipf table too large to build.
    #[error("zipf over {0} values is too large (at most {max})", max = Dist::MAX_ZIPF)]
    TooLarge(u64),
    /// A Zipf exponent that is negative or not a number.
    #[error("zipf exponent must be a finite number ≥ 0 (got {0})")]
    Exponent(String),
}

impl Dist {
    /// The largest `n` a Zipf distribution takes (its table is `8n` bytes).
    pub const MAX_ZIPF: u64 = 10_000_000;

    /// Uniform over `0..n`.
    pub fn uniform(n: u64) -> Result<Dist, DistError> {
        if n == 0 {
            return Err(DistError::Empty);
        }
        Ok(Dist::Uniform { n })
    }

    /// Zipf over `0..n` with exponent `s` (1.0 is classic Zipf, 0 uniform).
    pub fn zipf(n: u64, s: f64) -> Result<Dist, DistError> {
        if n == 0 {
            return Err(DistError::Empty);
        }
        if n > Self::MAX_ZIPF {
            return Err(DistError::TooLarge(n));
        }
        if !s.is_finite() || s < 0.0 {
            return Err(DistError::Exponent(s.to_string()));
        }
        let mut acc = 0.0;
        let mut cdf: Vec<f64> = (0..n)
            .map(|i| {
                acc += 1.0 / ((i + 1) as f64).powf(s);
                acc
            })
            .collect();
        for c in &mut cdf {
            *c /= acc;
        }
        Ok(Dist::Zipf { cdf: cdf.into() })
    }

    /// `start, start+1, ...`.
    pub fn sequential(start: u64) -> Dist {
        Dist::Sequential { next: start }
    }

    /// One draw.
    pub fn sample(&mut self, rng: &mut ChaCha8Rng) -> u64 {
        match self {
            Dist::Uniform { n } => rng.random_range(0..*n),
            Dist::Zipf { cdf } => {
                let u: f64 = rng.random();
                // First index whose cumulative weight exceeds u; the last
                // entry is 1.0 up to rounding, so clamp.
                (cdf.partition_point(|c| *c <= u)).min(cdf.len() - 1) as u64
            }
            Dist::Sequential { next } => {
                let v = *next;
                *next += 1;
                v
            }
        }
    }
}

/// What value an op kind takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueShape {
    /// No argument: `null` (reads).
    Null,
    /// One drawn value (write, add).
    One,
    /// `[expected, new]`, both drawn (compare-and-set).
    Pair,
}

impl ValueShape {
    /// The usual shape of a function name: `read`, `dequeue`, `drain`
    /// and `generate` → null, `cas` → pair, anything else one value.
    pub fn for_f(f: &str) -> ValueShape {
        match f {
            "read" | "dequeue" | "drain" | "generate" => ValueShape::Null,
            "cas" => ValueShape::Pair,
            _ => ValueShape::One,
        }
    }
}

/// The leaf generator of a workload: for every operation, an op kind drawn
/// by weight and a value drawn from a distribution. Infinite; bound it with
/// [`limit`](super::limit) or [`time_limit`](super::time_limit).
#[derive(Clone, Debug)]
pub struct OpMix {
    fs: Vec<(String, ValueShape)>,
    /// Cumulative weights, same order as `fs`.
    cumulative: Vec<u64>,
    values: Dist,
    rng: ChaCha8Rng,
}

impl OpMix {
    /// A mix of `(f, weight, shape)`; zero weights are dropped. `None` when
    /// no weight is positive.
    pub fn new(
        ops: Vec<(String, u32, ValueShape)>,
        values: Dist,
        rng: ChaCha8Rng,
    ) -> Option<OpMix> {
        let mut fs = Vec::new();
        let mut cumulative = Vec::new();
        let mut total = 0u64;
        for (f, w, shape) in ops {
            if w == 0 {
                continue;
            }
            total += u64::from(w);
            fs.push((f, shape));
            cumulative.push(total);
        }
        (total > 0).then_some(OpMix {
            fs,
            cumulative,
            values,
            rng,
        })
    }

    /// The next operation, with no key.
    pub fn draw(&mut self) -> OpSpec {
        let total = self.cumulative.last().copied().unwrap_or(1);
        let pick = self.rng.random_range(0..total);
        let i = self.cumulative.partition_point(|c| *c <= pick);
        let (f, shape) = &self.fs[i];
        let value = match shape {
            ValueShape::Null => Value::Null,
            ValueShape::One => json!(self.values.sample(&mut self.rng)),
            ValueShape::Pair => {
                let a = self.values.sample(&mut self.rng);
                let b = self.values.sample(&mut self.rng);
                json!([a, b])
            }
        };
        OpSpec::new(f.clone(), value)
    }
}

impl Generator for OpMix {
    fn next(&mut self, _ctx: &Context) -> Emit {
        Emit::Invoke(self.draw())
    }
}

/// Operations of a shared-key workload: `inner`'s, each on a key drawn from
/// `keys`.
pub struct RandomKeys<G> {
    keys: Dist,
    rng: ChaCha8Rng,
    inner: G,
}

/// `inner` with every operation put on a key drawn from `keys` (keys are
/// JSON integers).
pub fn random_keys<G: Generator>(keys: Dist, rng: ChaCha8Rng, inner: G) -> RandomKeys<G> {
    RandomKeys { keys, rng, inner }
}

impl<G: Generator> Generator for RandomKeys<G> {
    fn next(&mut self, ctx: &Context) -> Emit {
        match self.inner.next(ctx) {
            Emit::Invoke(op) => Emit::Invoke(op.with_key(json!(self.keys.sample(&mut self.rng)))),
            other => other,
        }
    }

    fn update(&mut self, ctx: &Context, event: &crate::history::Op) {
        self.inner.update(ctx, event)
    }
}
