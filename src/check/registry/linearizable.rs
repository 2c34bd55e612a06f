//! The `linearizable` checker: the workload's model, chosen by name through
//! the one [`ModelVisitor`], searched by [`crate::check::linear`].

use super::{show_duration, CannotCheck, CheckContext, Checker, PrefixCheck, Text, Verdict};
use crate::check::linear::{self, shrink::MinimalHistory, CheckError, LinearReport};
use crate::history::{Call, History};
use crate::model::{self, Model, ModelVisitor};
use serde_json::json;

/// Linearizability against the workload's model.
pub(super) struct Linearizable;

struct Search<'a> {
    history: &'a History,
    calls: &'a [Call],
    opts: &'a linear::LinearOptions,
}

impl ModelVisitor<Result<LinearReport, CheckError>> for Search<'_> {
    fn visit<M: Model>(self, m: &M) -> Result<LinearReport, CheckError> {
        linear::check_calls(m, self.history, self.calls, self.opts)
    }
}

struct Known;
impl ModelVisitor<()> for Known {
    fn visit<M: Model>(self, _: &M) {}
}

impl Checker for Linearizable {
    fn name(&self) -> &'static str {
        "linearizable"
    }

    fn judges(&self, model: &str) -> bool {
        model::by_name(model, Known).is_some()
    }

    fn models_text(&self) -> String {
        let names: Vec<&str> = model::MODELS.iter().map(|(n, _)| *n).collect();
        names.join(", ")
    }

    fn flags(&self) -> &'static [&'static str] {
        &[
            "--no-split",
            "--all-keys",
            "--memory-limit",
            "--shrink",
            "--shrink-time",
        ]
    }

    /// A prefix that is not linearizable, its pending operations crashed,
    /// is the start of every linearization of the whole: the argument is
    /// in `runner/online.rs`. Split by key, each key is its own history.
    fn prefixes(&self, ctx: &CheckContext) -> PrefixCheck {
        if ctx.split_by_key {
            PrefixCheck::PerKey
        } else {
            PrefixCheck::WholePrefix
        }
    }

    fn check(&self, history: &History, ctx: &CheckContext) -> Result<Verdict, CannotCheck> {
        let calls = history.calls()?;
        let name = match &ctx.model {
            Some(m) => m.as_str(),
            None => model::guess(&calls).ok_or_else(|| {
                let mut fs: Vec<&str> = calls.iter().map(|c| c.f.as_str()).collect();
                fs.sort_unstable();
                fs.dedup();
                CannotCheck(format!(
                    "cannot guess the model from the functions {}; name it with --model",
                    fs.join(", ")
                ))
            })?,
        };
        let opts = linear::LinearOptions {
            time_limit: ctx.time_limit,
            memory_limit: ctx.memory_limit,
            resident_memory: ctx.resident_memory,
            split_by_key: ctx.split_by_key,
            stop_at_first_invalid: ctx.stop_at_first_invalid,
            shrink_time: ctx.shrink_time,
            // Earlier verdicts are about the workload's model: not taken
            // when the model is guessed (a key's calls alone could suggest
            // another).
            known: ctx
                .model
                .as_ref()
                .and_then(|_| ctx.known.get(self.name()).cloned()),
            ..linear::LinearOptions::default()
        };
        let search = Search {
            history,
            calls: &calls,
            opts: &opts,
        };
        let r = model::by_name(name, search)
            .ok_or_else(|| CannotCheck(format!("unknown model {name}")))?
            .map_err(|e| CannotCheck(e.to_string()))?;
        Ok(verdict(name, &r))
    }
}

fn verdict(name: &str, r: &LinearReport) -> Verdict {
    let bad: Vec<_> = r.failures().collect();
    let mut explanation = format!(
        "{} ops, {} keys, {} not valid",
        r.ops,
        r.keys.len(),
        bad.len()
    );
    if let Some(cx) = bad.iter().find_map(|k| k.counterexample.as_ref()) {
        explanation.push_str(&format!(": {}", cx.explanation));
    } else if let Some(reason) = bad.iter().find_map(|k| k.reason.as_ref()) {
        explanation.push_str(&format!(": {reason}"));
    }
    let details = json!({
        "model": r.model,
        "ops": r.ops,
        "keys": r.keys.len(),
        "configurations": r.keys.iter().map(|k| k.configurations).sum::<u64>(),
        "elapsed_ms": r.elapsed.as_secs_f64() * 1e3,
        "failures": bad,
    });
    let keys = r.keys.len();
    let text = Text {
        heading: format!(
            "{name}, {} ops, {keys} key{}, {}",
            r.ops,
            if keys == 1 { "" } else { "s" },
            show_duration(r.elapsed)
        ),
        full: lines(r, false),
        brief: lines(r, true),
    };
    Verdict {
        validity: r.validity,
        explanation,
        details,
        text,
        files: Vec::new(),
    }
}

/// The smallest failing sub-history, under the sentence: a heading and
/// one line per operation (at most 16; 4 in brief).
fn shrunk_lines(m: &MinimalHistory, brief: bool) -> Vec<String> {
    let n = m.ops.len();
    let how = if m.minimal {
        "1-minimal".to_string()
    } else {
        format!(
            "smallest found in {}, not proven minimal",
            show_duration(m.elapsed)
        )
    };
    let mut out = vec![format!(
        "  smallest failing sub-history ({n} op{}, {how}):",
        if n == 1 { "" } else { "s" }
    )];
    // A shrink cut short can leave many operations: show a screenful.
    let shown = if brief { 4 } else { 16 };
    for op in m.ops.iter().take(shown) {
        let span = match op.complete_index {
            Some(c) => format!("[{}, {c}]", op.invoke_index),
            None => format!("[{}, never]", op.invoke_index),
        };
        out.push(format!(
            "    process {:<4} {:<40} {:?} {span}",
            op.process.to_string(),
            op.description,
            op.outcome
        ));
    }
    if n > shown {
        out.push(format!("    ... and {} more (see --json)", n - shown));
    }
    out
}

/// The keys that are not valid, invalid first: each one's reason or
/// counterexample, and in full the operation and the longest linearizable
/// prefix.
fn lines(r: &LinearReport, brief: bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut failures: Vec<_> = r.failures().collect();
    // Invalid keys first: their counterexamples are the news; keys left
    // unknown because another key was invalid first say little.
    failures.sort_by_key(|k| k.counterexample.is_none());
    let shown = if brief { 1 } else { 10 };
    for k in failures.iter().take(shown) {
        if let Some(reason) = &k.reason {
            let key = k
                .key
                .as_ref()
                .map(|k| format!("key {k}: "))
                .unwrap_or_default();
            out.push(format!("{key}unknown: {reason}"));
        }
        let Some(cx) = &k.counterexample else {
            continue;
        };
        out.push(cx.explanation.clone());
        if let Some(m) = &k.shrunk {
            out.extend(shrunk_lines(m, brief));
        }
        if brief {
            continue;
        }
        let op = &cx.op;
        let done = op
            .complete_index
            .map(|c| format!(" to {c}"))
            .unwrap_or_default();
        out.push(format!(
            "  the operation: process {} {} (events {}{done}), {:?}",
            op.process, op.f, op.invoke_index, op.outcome
        ));
        if let Some(path) = cx.final_paths.first() {
            let tail = 8.min(path.len());
            out.push(format!(
                "  longest linearizable prefix ({} steps{}):",
                path.len(),
                if tail < path.len() {
                    ", last 8 shown"
                } else {
                    ""
                }
            ));
            for s in &path[path.len() - tail..] {
                out.push(format!(
                    "    process {:<4} {:<40} -> {}",
                    s.op.process.to_string(),
                    s.op.description,
                    s.state
                ));
            }
        }
        if cx.final_paths.len() > 1 {
            out.push(format!(
                "  ({} more prefixes in --json)",
                cx.final_paths.len() - 1
            ));
        }
    }
    if failures.len() > shown {
        out.push(format!(
            "... and {} more keys not valid (see --json)",
            failures.len() - shown
        ));
    }
    out
}
