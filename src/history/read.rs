//! Reading histories: the [`Format`]s, detecting a format from content, and
//! the entry points [`read_path`] and [`read_str`].
//!
//! The readers themselves live in submodules: `jsonl` (native JSON Lines),
//! `jepsen_edn` (Jepsen's `history.edn`, its `independent` variant and
//! Porcupine's kv files), `jepsen_log` (Jepsen's console log), on top of a
//! small EDN parser in `edn`. `stream` reads JSON Lines and EDN files
//! operation by operation without keeping them, for checkers that keep
//! only a compact form (it defers to these readers for anything unusual). Every reader reports bad input as a
//! [`ReadError`] naming the file, the line and what was expected; none of
//! them panics on any input (each has a fuzz target under `fuzz/`).
//!
//! The formats are described for users in `docs/history-format.md`.

mod edn;
mod jepsen_edn;
mod jepsen_log;
mod jsonl;
mod shapes;
pub mod stream;

use super::History;
use std::fmt;
use std::path::{Path, PathBuf};

/// A history file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// faultline's native JSON Lines: one [`Op`](super::Op) object per line.
    Jsonl,
    /// Jepsen's `history.edn`: a vector or list of op maps, or one map per
    /// line. Also Porcupine's kv files (`--format porcupine-kv`), which are
    /// op maps with a `:key`.
    Edn,
    /// Jepsen `history.edn` of an `independent` test: every client op's
    /// `:value` is a `[key value]` tuple, read as `key` and `value`.
    /// Detected within EDN when some tuple can only be one (a write of
    /// `[k v]` with a scalar `v`, a cas of `[k [a b]]`, a read of `[k nil]`);
    /// refused as ambiguous when unsure.
    JepsenIndependent,
    /// Jepsen's console log: `INFO  jepsen.util - 0 :invoke :read nil` lines.
    JepsenLog,
}

impl Format {
    /// Every format, in the order they are documented.
    pub const ALL: [Format; 4] = [
        Format::Jsonl,
        Format::Edn,
        Format::JepsenIndependent,
        Format::JepsenLog,
    ];

    /// Every name [`Format::parse`] accepts, canonical names first within
    /// each format, for usage messages.
    pub const NAMES: &'static [&'static str] = &[
        "jsonl",
        "json-lines",
        "ndjson",
        "edn",
        "porcupine-kv",
        "jepsen-independent",
        "independent",
        "edn-independent",
        "jepsen-log",
        "log",
    ];

    /// Parses a `--format` name: `jsonl` (or `json-lines`, `ndjson`), `edn`
    /// (or `porcupine-kv`), `jepsen-independent` (or `independent`,
    /// `edn-independent`), `jepsen-log` (or `log`). Case-insensitive.
    pub fn parse(s: &str) -> Option<Format> {
        match s.trim().to_ascii_lowercase().as_str() {
            "jsonl" | "json-lines" | "ndjson" => Some(Format::Jsonl),
            "edn" | "porcupine-kv" => Some(Format::Edn),
            "jepsen-independent" | "independent" | "edn-independent" => {
                Some(Format::JepsenIndependent)
            }
            "jepsen-log" | "log" => Some(Format::JepsenLog),
            _ => None,
        }
    }

    /// The canonical `--format` name of this format.
    pub fn name(self) -> &'static str {
        match self {
            Format::Jsonl => "jsonl",
            Format::Edn => "edn",
            Format::JepsenIndependent => "jepsen-independent",
            Format::JepsenLog => "jepsen-log",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
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

impl ReadError {
    /// An error at a 1-based line of `file`.
    pub(crate) fn at(file: &Path, line: usize, message: impl Into<String>) -> ReadError {
        ReadError {
            file: file.to_path_buf(),
            line: Some(line),
            message: message.into(),
        }
    }
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

/// The 1-based line holding byte `pos` of `text`.
pub(crate) fn line_at(text: &str, pos: usize) -> usize {
    let end = pos.min(text.len());
    1 + text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

/// Reads a history file, detecting its format from content unless given.
///
/// The file must be UTF-8; an invalid byte is reported with its line.
pub fn read_path(path: &Path, format: Option<Format>) -> Result<History, ReadError> {
    let bytes = std::fs::read(path).map_err(|e| ReadError {
        file: path.to_path_buf(),
        line: None,
        message: format!("cannot read: {e}"),
    })?;
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let bad = e.utf8_error().valid_up_to();
            let line = 1 + e.as_bytes()[..bad].iter().filter(|&&b| b == b'\n').count();
            return Err(ReadError::at(
                path,
                line,
                format!("expected UTF-8 text, found an invalid byte at offset {bad}"),
            ));
        }
    };
    read_str(&text, path, format)
}

/// Reads a history from text; `source` names it in errors and becomes
/// [`History::source`]. With `format` `None` the format is [`detect`]ed;
/// text with nothing but whitespace is an empty history in every format.
///
/// Events keep the order of the text and are renumbered from 0 (an `index`
/// in the input is not used for ordering); [`History::lines`] holds the line
/// each event began on.
pub fn read_str(text: &str, source: &Path, format: Option<Format>) -> Result<History, ReadError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let named = format.is_some();
    let format = match format {
        Some(f) => f,
        None => match detect_unmarked(text) {
            Some(f) => f,
            None if text.trim().is_empty() => Format::Jsonl,
            None => {
                let line = text
                    .lines()
                    .position(|l| !l.trim().is_empty())
                    .map_or(1, |i| i + 1);
                return Err(ReadError::at(
                    source,
                    line,
                    "cannot tell the history format: expected JSON Lines (lines starting with `{\"`), \
                     Jepsen EDN (starting with `{:`, `[`, `(`, `#` or `;`) or a Jepsen console log \
                     (lines containing `jepsen.util`); name it with --format",
                ));
            }
        },
    };
    let mut h = match format {
        Format::Jsonl => jsonl::read(text, source)?,
        Format::Edn => {
            let h = jepsen_edn::read(text, source, false)?;
            // Detected EDN may hold [key value] tuples: read it as what it is.
            if !named && shapes::tuples(&h, source)? == shapes::Tuples::Independent {
                jepsen_edn::read(text, source, true)?
            } else {
                h
            }
        }
        Format::JepsenIndependent => jepsen_edn::read(text, source, true)?,
        Format::JepsenLog => jepsen_log::read(text, source)?,
    };
    h.source = Some(source.to_path_buf());
    h.reindex();
    Ok(h)
}

/// Guesses the format of a history from its content; `None` when the text
/// is blank or matches no format.
///
/// Rules, in order, on the first line that is not blank:
/// 1. it starts with `{` followed by `"` or `}` → [`Format::Jsonl`];
///    `{` followed by anything else (`{:process ...`) → [`Format::Edn`];
/// 2. it contains `jepsen.util` → [`Format::JepsenLog`];
/// 3. it starts with `[`, `(`, `#` or `;` → [`Format::Edn`];
/// 4. any later line contains `jepsen.util` → [`Format::JepsenLog`]
///    (a console log starts with other output);
/// 5. it is a process and a type, `2\t:invoke ...` → [`Format::JepsenLog`]
///    (Jepsen's `history.txt`: the log's op lines without the prefix).
///
/// This looks at the text only: [`read_str`] then tells a
/// [`Format::JepsenIndependent`] history from plain EDN by its values.
pub fn detect(text: &str) -> Option<Format> {
    detect_unmarked(text.strip_prefix('\u{feff}').unwrap_or(text))
}

/// [`detect`] on text whose byte-order mark, if any, is already removed
/// (removing a second one would make it disagree with the readers).
fn detect_unmarked(text: &str) -> Option<Format> {
    let first = text.lines().find(|l| !l.trim().is_empty())?.trim_start();
    if let Some(rest) = first.strip_prefix('{') {
        let rest = rest.trim_start();
        // A JSON object starts with a string key (or is empty); an EDN op
        // map with a keyword. `{` alone on the line is not JSON Lines, which
        // never splits an object over lines.
        return Some(if rest.starts_with('"') || rest.starts_with('}') {
            Format::Jsonl
        } else {
            Format::Edn
        });
    }
    if first.contains("jepsen.util") {
        return Some(Format::JepsenLog);
    }
    if first.starts_with(['[', '(', '#', ';']) {
        return Some(Format::Edn);
    }
    if text.contains("jepsen.util") {
        return Some(Format::JepsenLog);
    }
    let mut words = first.split_whitespace();
    let process = words
        .next()
        .is_some_and(|w| w == ":nemesis" || w.bytes().all(|b| b.is_ascii_digit()));
    let kind = words
        .next()
        .is_some_and(|w| [":invoke", ":ok", ":fail", ":info"].contains(&w));
    if process && kind {
        return Some(Format::JepsenLog);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{OpType, Process};
    use serde_json::json;

    fn p() -> &'static Path {
        Path::new("h.txt")
    }

    #[test]
    fn format_names_round_trip() {
        for f in Format::ALL {
            assert_eq!(Format::parse(f.name()), Some(f));
        }
        for n in Format::NAMES {
            assert!(Format::parse(n).is_some(), "{n}");
        }
        assert_eq!(Format::parse("porcupine-kv"), Some(Format::Edn));
        assert_eq!(
            Format::parse("independent"),
            Some(Format::JepsenIndependent)
        );
        assert_eq!(Format::parse("JSONL"), Some(Format::Jsonl));
        assert_eq!(Format::parse("csv"), None);
    }

    #[test]
    fn detects_each_format() {
        assert_eq!(
            detect("{\"process\":0,\"type\":\"invoke\",\"f\":\"read\"}\n"),
            Some(Format::Jsonl)
        );
        assert_eq!(detect("\n\n  { \"process\": 0}"), Some(Format::Jsonl));
        assert_eq!(
            detect("{:process 0, :type :invoke, :f :read}\n"),
            Some(Format::Edn)
        );
        assert_eq!(
            detect("[{:process 0, :type :invoke, :f :read}]"),
            Some(Format::Edn)
        );
        assert_eq!(detect("({:process 0})"), Some(Format::Edn));
        assert_eq!(detect("#jepsen.history.Op{:process 0}"), Some(Format::Edn));
        assert_eq!(detect("; a comment\n{:process 0}"), Some(Format::Edn));
        assert_eq!(detect("{\n:process 0}"), Some(Format::Edn));
        assert_eq!(
            detect("INFO  jepsen.util - 0\t:invoke\t:read\tnil\n"),
            Some(Format::JepsenLog)
        );
        assert_eq!(
            detect(
                "INFO  jepsen.core - Running test\nINFO  jepsen.util - 0\t:invoke\t:read\tnil\n"
            ),
            Some(Format::JepsenLog)
        );
        assert_eq!(
            detect("[2024-01-01] INFO jepsen.util - 0 :invoke :read nil"),
            Some(Format::JepsenLog)
        );
        // A value mentioning jepsen.util does not make an EDN file a log.
        assert_eq!(
            detect("{:process 0, :value \"jepsen.util\"}"),
            Some(Format::Edn)
        );
        assert_eq!(detect(""), None);
        assert_eq!(detect(" \n\t\n"), None);
        assert_eq!(detect("hello world"), None);
        // Jepsen's history.txt: the log's op lines without the prefix.
        assert_eq!(
            detect("2\t:invoke\t:read\tnil\n2\t:ok\t:read\t3\n"),
            Some(Format::JepsenLog)
        );
        assert_eq!(
            detect(":nemesis\t:info\t:start\tnil\n"),
            Some(Format::JepsenLog)
        );
        assert_eq!(detect("2 apples"), None);
        assert_eq!(detect("\u{feff}{\"a\":1}"), Some(Format::Jsonl));
        // Only one byte-order mark is skipped, by detection and readers alike.
        let two = "\u{feff}\u{feff}{\"process\":0,\"type\":\"invoke\",\"f\":\"read\"}";
        assert_eq!(detect(two), None);
        assert!(read_str(two, p(), None).is_err());
    }

    #[test]
    fn read_str_dispatches_on_detected_format() {
        let j = read_str(
            "{\"process\":0,\"type\":\"invoke\",\"f\":\"read\",\"value\":null}\n",
            p(),
            None,
        )
        .unwrap();
        let e = read_str(
            "{:process 0, :type :invoke, :f :read, :value nil}\n",
            p(),
            None,
        )
        .unwrap();
        let l = read_str("INFO  jepsen.util - 0\t:invoke\t:read\tnil\n", p(), None).unwrap();
        assert_eq!(j.ops, e.ops);
        assert_eq!(j.ops, l.ops);
        assert_eq!(j.ops[0].process, Process::Client(0));
        assert_eq!(j.ops[0].kind, OpType::Invoke);
        for h in [&j, &e, &l] {
            assert_eq!(h.source.as_deref(), Some(p()));
            assert_eq!(h.lines, vec![1]);
        }
    }

    #[test]
    fn explicit_format_overrides_detection() {
        // Detected as an independent history (a write of 1 to key 7); read
        // as plain EDN when asked.
        let text = "{:process 0, :type :invoke, :f :write, :value [7 1]}\n";
        let plain = read_str(text, p(), Some(Format::Edn)).unwrap();
        assert_eq!(plain.ops[0].value, json!([7, 1]));
        assert_eq!(plain.ops[0].key, None);
        for format in [None, Some(Format::JepsenIndependent)] {
            let ind = read_str(text, p(), format).unwrap();
            assert_eq!(ind.ops[0].value, json!(1));
            assert_eq!(ind.ops[0].key, Some(json!(7)));
        }
        // JSON Lines read as EDN is an EDN error, not a silent success.
        let e = read_str("{\"process\":0}\n", p(), Some(Format::Edn)).unwrap_err();
        assert_eq!(e.line, Some(1));
    }

    #[test]
    fn blank_text_is_an_empty_history_and_junk_is_an_error() {
        for f in [
            None,
            Some(Format::Jsonl),
            Some(Format::Edn),
            Some(Format::JepsenLog),
        ] {
            let h = read_str("\n  \n", p(), f).unwrap();
            assert!(h.is_empty());
            assert_eq!(h.source.as_deref(), Some(p()));
        }
        let e = read_str("\n\nhello world\n", p(), None).unwrap_err();
        assert_eq!(e.line, Some(3));
        assert!(e.message.contains("cannot tell the history format"), "{e}");
        assert!(e.to_string().starts_with("h.txt:3: "), "{e}");
    }

    #[test]
    fn read_path_reports_missing_files_and_bad_utf8() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.jsonl");
        let e = read_path(&missing, None).unwrap_err();
        assert_eq!(e.line, None);
        assert!(e.message.contains("cannot read"), "{e}");

        let bad = dir.path().join("bad.edn");
        std::fs::write(&bad, b"{:process 0, :type :invoke, :f :read}\n{:f \xff}\n").unwrap();
        let e = read_path(&bad, None).unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(e.message.contains("expected UTF-8"), "{e}");

        let good = dir.path().join("good.edn");
        std::fs::write(&good, "{:process 0, :type :invoke, :f :read}\n").unwrap();
        let h = read_path(&good, None).unwrap();
        assert_eq!(h.len(), 1);
        assert_eq!(h.source.as_deref(), Some(good.as_path()));
    }

    /// The examples in docs/history-format.md's "Errors" section, verbatim.
    #[test]
    fn documented_error_messages() {
        let e = read_str(
            "{:process 0, :type :invoke, :f :read}\n{:process 0, :type :okk, :f :read}\n",
            Path::new("history.edn"),
            None,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "history.edn:2: expected :type to be one of :invoke :ok :fail :info, found :okk"
        );
        let mut text = "{\"process\":0,\"type\":\"invoke\",\"f\":\"read\"}\n".repeat(6);
        text.push_str("{\"process\":0,\"type\":\"ok\",\"f\":\"read\",\"vaule\":1}\n");
        let e = read_str(&text, Path::new("h.jsonl"), None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "h.jsonl:7: expected one operation object like {\"process\": 0, \"type\": \"invoke\", \
             \"f\": \"read\", \"value\": null}: unknown field `vaule`, expected one of `index`, \
             `time`, `process`, `type`, `f`, `value`, `key`, `node`, `error` (column 43)"
        );
        let mut text = "INFO  jepsen.util - 0\t:invoke\t:read\tnil\n".repeat(30);
        text.push_str("INFO  jepsen.util - 0\t:invoke\t:cas\t[1 2\n");
        let e = read_str(&text, Path::new("etcd_001.log"), None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "etcd_001.log:31: unterminated vector: expected `]` to close it (column 36)"
        );
    }

    #[test]
    fn line_at_counts_from_one() {
        assert_eq!(line_at("a\nb\nc", 0), 1);
        assert_eq!(line_at("a\nb\nc", 2), 2);
        assert_eq!(line_at("a\nb\nc", 100), 3);
    }
}
