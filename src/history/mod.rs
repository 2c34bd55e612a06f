//! Operations and histories: the op model, pairing of invocations with their
//! completions, and the readers and writers of every history format.
//!
//! A [`History`] is the events in the order they happened. [`History::calls`]
//! pairs each invocation with its completion into a [`Call`], checking the
//! rules every history obeys (a process does one thing at a time, never
//! invokes again after `info`, ...).

mod op;
mod pair;
pub mod read;

pub use op::{Op, OpType, Process};
pub use pair::{Call, HistoryError, Outcome};
pub use read::{detect, read_path, read_str, Format, ReadError};

use std::path::PathBuf;

/// A history: every event of a test, in the order they happened.
#[derive(Clone, Debug, Default)]
pub struct History {
    /// The events; `ops[i].index == i` once [`History::reindex`] has run.
    pub ops: Vec<Op>,
    /// Where the history was read from, for error messages.
    pub source: Option<PathBuf>,
    /// The line of the source on which each event began (same length as
    /// `ops`), or empty when unknown.
    pub lines: Vec<usize>,
}

impl History {
    /// A history of these events, renumbered from 0.
    pub fn new(ops: Vec<Op>) -> History {
        let mut h = History {
            ops,
            source: None,
            lines: Vec::new(),
        };
        h.reindex();
        h
    }

    /// Sets each event's index to its position.
    pub fn reindex(&mut self) {
        for (i, op) in self.ops.iter_mut().enumerate() {
            op.index = i as u64;
        }
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True when there are no events.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The source line of event `i`, when known.
    pub fn line_of(&self, i: usize) -> Option<usize> {
        self.lines.get(i).copied()
    }

    /// Writes the history as JSON Lines, one event per line.
    pub fn write_jsonl<W: std::io::Write>(&self, mut w: W) -> std::io::Result<()> {
        for op in &self.ops {
            serde_json::to_writer(&mut w, op)?;
            w.write_all(b"\n")?;
        }
        Ok(())
    }
}
