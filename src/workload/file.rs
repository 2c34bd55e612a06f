//! The workload file format: TOML read with spans, so that every error
//! names the file, the line and the field, and the checks of each section.

use super::*;

impl Workload {
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
        let lock = match raw.lock {
            Some(l) if model != "mutex" => {
                return Err(bad(
                    l.span(),
                    "[lock] applies to the model mutex only".into(),
                ))
            }
            Some(l) => Some(l.into_inner().validate(&bad)?),
            None if model == "mutex" => Some(LockSpec::default()),
            None => None,
        };
        if (bank.is_some() || long_fork.is_some() || lock.is_some()) && keys.is_some() {
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
            lock,
        })
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
    lock: Option<Spanned<RawLock>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLock {
    ttl_s: Option<Spanned<i64>>,
    max_sleep_ms: Option<Spanned<i64>>,
    acquire_timeout_s: Option<Spanned<i64>>,
}

impl RawLock {
    fn validate(self, bad: &Bad<'_>) -> Result<LockSpec, WorkloadError> {
        let d = LockSpec::default();
        Ok(LockSpec {
            // etcd grants leases of at least a second; an hour is longer
            // than any test.
            ttl_s: match &self.ttl_s {
                Some(v) => int_in(v, 1, 3600, bad)?,
                None => d.ttl_s,
            },
            max_sleep_ms: match &self.max_sleep_ms {
                Some(v) => int_in(v, 0, 600_000, bad)?,
                None => d.max_sleep_ms,
            },
            acquire_timeout_s: match &self.acquire_timeout_s {
                Some(v) => int_in(v, 1, 3600, bad)?,
                None => d.acquire_timeout_s,
            },
        })
    }
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
    final_reads: Option<bool>,
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
            final_reads: self.final_reads.unwrap_or(d.final_reads),
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
