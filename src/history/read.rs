//! Reading histories: format detection and the readers of each format.

use super::{History, Op};
use std::fmt;
use std::path::{Path, PathBuf};

/// A history file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// faultline's native JSON Lines: one [`Op`] object per line.
    Jsonl,
}

impl Format {
    /// Parses a `--format` name.
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "jsonl" => Some(Format::Jsonl),
            _ => None,
        }
    }
}

/// Input that is not a history: names the file, the line and what was expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadError {
    /// The file (or a description of the source).
    pub file: PathBuf,
    /// The 1-based line, when known.
    pub line: Option<usize>,
    /// What was wrong and what was expected.
    pub message: String,
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{}: {}", self.file.display(), l, self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

impl std::error::Error for ReadError {}

/// Reads a history file, detecting its format from content unless given.
pub fn read_path(path: &Path, format: Option<Format>) -> Result<History, ReadError> {
    let text = std::fs::read_to_string(path).map_err(|e| ReadError {
        file: path.to_path_buf(),
        line: None,
        message: format!("cannot read: {e}"),
    })?;
    read_str(&text, path, format)
}

/// Reads a history from text; `source` names it in errors.
pub fn read_str(text: &str, source: &Path, _format: Option<Format>) -> Result<History, ReadError> {
    let mut ops = Vec::new();
    let mut lines = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let op: Op = serde_json::from_str(line).map_err(|e| ReadError {
            file: source.to_path_buf(),
            line: Some(i + 1),
            message: format!("expected one JSON operation object: {e}"),
        })?;
        ops.push(op);
        lines.push(i + 1);
    }
    let mut h = History::new(ops);
    h.source = Some(source.to_path_buf());
    h.lines = lines;
    Ok(h)
}
