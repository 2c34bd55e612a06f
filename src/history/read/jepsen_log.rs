//! The Jepsen console-log reader: the op lines Jepsen's `jepsen.util` logger
//! prints while a test runs, tab-separated (or space-separated), such as
//!
//! ```text
//! INFO  jepsen.util - 0 :invoke :read nil
//! INFO  jepsen.util - 4 :info :write :timed-out
//! ```
//!
//! Fields after `jepsen.util` (and an optional `-` or `:`, and an optional
//! `[ time ]` in nanoseconds, as some Jepsen versions print) are process,
//! type, f and value, separated by tabs or spaces, each read as EDN;
//! anything after the value is the op's error (Jepsen appends it when there
//! is one). A line is an op line when `jepsen.util` is followed by a
//! process (an integer or `:nemesis`) and a keyword; all other lines are
//! other log output and are skipped. An op line that does not parse is an
//! error, and so is a log with lines naming `jepsen.util` and `:invoke` of
//! which none is an op line (a layout this reader does not know, which
//! must not read as an empty history).
//!
//! Jepsen's `history.txt` holds the same op lines without the logger's
//! prefix (`2\t:invoke\t:read\tnil`): a text that never names
//! `jepsen.util` and begins with such a line is read that way, every
//! non-blank line an op line.

use super::edn::{Edn, EdnError, Parser};
use super::ReadError;
use crate::history::{History, Op, OpType, Process};
use serde_json::Value;
use std::path::Path;

/// How much of an offending value an error message shows.
const SHOWN: usize = 60;

/// The logger name that marks op lines.
const MARKER: &str = "jepsen.util";

/// Reads a Jepsen console log.
pub(super) fn read(text: &str, source: &Path) -> Result<History, ReadError> {
    let mut ops = Vec::new();
    let mut lines = Vec::new();
    // The first line that names jepsen.util and :invoke without being
    // read as an op.
    let mut unread = None;
    // Jepsen's history.txt: op lines without the logger's prefix, from
    // the first line on (a log with no op line at all stays empty).
    let bare = !text.contains(MARKER)
        && text
            .lines()
            .find(|l| !l.trim().is_empty())
            .is_some_and(|l| parse_fields(l, l.trim_start()) != Ok(None));
    for (i, line) in text.lines().enumerate() {
        let parsed = if bare {
            match parse_fields(line, line.trim_start()) {
                Ok(None) if !line.trim().is_empty() => Err(format!(
                    "expected an op line `<process> :<type> :<f> <value>` of Jepsen's history.txt, found {:?}",
                    line.chars().take(SHOWN).collect::<String>()
                )),
                other => other,
            }
        } else {
            parse_line(line)
        };
        match parsed {
            Ok(None) => {
                if unread.is_none() && line.contains(MARKER) && line.contains(":invoke") {
                    unread = Some(i + 1);
                }
            }
            Ok(Some(op)) => {
                ops.push(op);
                lines.push(i + 1);
            }
            Err(m) => return Err(ReadError::at(source, i + 1, m)),
        }
    }
    if let (Some(line), true) = (unread, ops.is_empty()) {
        return Err(ReadError::at(
            source,
            line,
            format!(
                "this line names {MARKER} and :invoke, but no line of the log is an op line \
                 (`{MARKER} - <process> :<type> :<f> <value>`, optionally `[ <time> ]` before \
                 the process): its layout is not one this reader knows"
            ),
        ));
    }
    Ok(History {
        ops,
        source: None,
        lines,
    })
}

/// The op on one log line, `None` for a line that is not an op line.
fn parse_line(line: &str) -> Result<Option<Op>, String> {
    let Some(at) = line.find(MARKER) else {
        return Ok(None);
    };
    let after = line[at + MARKER.len()..].trim_start();
    let fields = after.strip_prefix(['-', ':']).unwrap_or(after).trim_start();
    parse_fields(line, fields)
}

/// The op of the fields `fields` (a suffix of `line`): `[ time ]`,
/// process, type, f, value and error; `None` when they do not start with
/// a process and a keyword.
fn parse_fields(line: &str, fields: &str) -> Result<Option<Op>, String> {
    let base = line.len() - fields.len();
    let mut p = Parser::new(fields);
    let syntax = |e: EdnError| format!("{} (column {})", e.message, column(line, base + e.pos));

    // Some Jepsen versions print the op's time, in nanoseconds since the
    // test began, as `[ 1345013587 ]` before the process.
    let mut time = None;
    if p.peek() == Some(b'[') {
        match p.parse_form(0) {
            Ok(Edn::Vector(v)) => match v.as_slice() {
                [Edn::Num(n)] if n.as_u64().is_some() => time = n.as_u64(),
                _ => return Ok(None),
            },
            _ => return Ok(None),
        }
        if p.skip_ws(0).is_err() {
            return Ok(None);
        }
    }

    // Only `<process> :<keyword>` makes an op line; other jepsen.util output
    // (or a timestamp) fails here and is skipped.
    let process = match p.parse_form(0) {
        Ok(Edn::Num(n)) => match n.as_u64() {
            Some(n) => Process::Client(n),
            None => return Ok(None),
        },
        Ok(e) if e.as_name() == Some("nemesis") => Process::Nemesis,
        _ => return Ok(None),
    };
    if p.skip_ws(0).is_err() || p.peek() != Some(b':') {
        return Ok(None);
    }

    let kind = p.parse_form(0).map_err(syntax)?;
    let kind = kind.as_name().and_then(OpType::parse).ok_or_else(|| {
        format!(
            "expected the type to be one of :invoke :ok :fail :info, found {}",
            kind.brief(SHOWN)
        )
    })?;
    if p.at_end().map_err(syntax)? {
        return Err("expected the function (like :read) after the type".to_string());
    }
    let f = p.parse_form(0).map_err(syntax)?;
    let f = f
        .as_name()
        .ok_or_else(|| {
            format!(
                "expected the function to be a keyword like :read, found {}",
                f.brief(SHOWN)
            )
        })?
        .to_string();
    if p.at_end().map_err(syntax)? {
        return Err(format!(
            "expected a value after :{f} (nil when there is none)"
        ));
    }
    let value = p.parse_form(0).map_err(syntax)?.into_json();
    let error = error_field(p.rest());
    Ok(Some(Op {
        index: 0,
        time,
        process,
        kind,
        f,
        value,
        key: None,
        node: None,
        error,
    }))
}

/// Whatever follows the value: Jepsen prints the op's error there with
/// `str`, which need not be EDN, so text that does not parse as one EDN form
/// is kept as a string.
fn error_field(rest: &str) -> Option<Value> {
    let rest = rest.trim();
    if rest.is_empty() {
        return None;
    }
    let mut p = Parser::new(rest);
    match p.parse_form(0) {
        Ok(e) if p.at_end() == Ok(true) => Some(e.into_json()),
        _ => Some(Value::String(rest.to_string())),
    }
}

/// The 1-based character column of byte `pos` of `line`.
fn column(line: &str, pos: usize) -> usize {
    line.get(..pos).map_or(pos, |s| s.chars().count()) + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read_ok(text: &str) -> History {
        read(text, Path::new("etcd.log")).unwrap_or_else(|e| panic!("{e}"))
    }

    fn read_err(text: &str) -> ReadError {
        match read(text, Path::new("etcd.log")) {
            Ok(h) => panic!("expected an error, read {} ops", h.len()),
            Err(e) => e,
        }
    }

    #[test]
    fn reads_tab_and_space_separated_ops_skipping_other_output() {
        let text = "INFO  jepsen.core - Running test\n\
                    INFO  jepsen.util - 0\t:invoke\t:read\tnil\n\
                    INFO  jepsen.util - 4   :invoke :cas    [1 2]\n\
                    INFO  jepsen.util - 0\t:ok\t:read\t3\n\
                    \n\
                    INFO  jepsen.util - Some other message\n\
                    INFO  jepsen.util - 4\t:fail\t:cas\t[1 2]\n\
                    INFO  jepsen.util - :nemesis\t:info\t:start\t{\"n1\" #{\"n2\"}}\n\
                    INFO  jepsen.util - 3\t:invoke\t:write\t4\n\
                    INFO  jepsen.util - 3\t:info\t:write\t:timed-out\n\
                    2024-01-01 12:00:00,123{GMT}\tINFO\t[jepsen worker 1] jepsen.util: 1\t:invoke\t:read\tnil\n";
        let h = read_ok(text);
        assert_eq!(h.len(), 8);
        assert_eq!(h.lines, vec![2, 3, 4, 7, 8, 9, 10, 11]);
        assert_eq!(h.ops[0].process, Process::Client(0));
        assert_eq!(h.ops[0].value, Value::Null);
        assert_eq!(h.ops[1].value, json!([1, 2]));
        assert_eq!(h.ops[2].kind, OpType::Ok);
        assert_eq!(h.ops[2].value, json!(3));
        assert_eq!(h.ops[3].kind, OpType::Fail);
        assert_eq!(h.ops[4].process, Process::Nemesis);
        assert_eq!(h.ops[4].value, json!({"n1": ["n2"]}));
        assert_eq!(h.ops[6].value, json!("timed-out"));
        assert_eq!(h.ops[7].process, Process::Client(1));
        let calls = History::new(h.ops).calls().unwrap();
        assert_eq!(calls.len(), 4);
    }

    #[test]
    fn a_time_in_brackets_before_the_process_is_the_ops_time() {
        let text = "2022-01-01 10:00:00,000{GMT}\tINFO\t[jepsen worker 3] jepsen.util: [ 1500 ] 3\t:invoke\t:write\t7\n\
                    2022-01-01 10:00:00,001{GMT}\tINFO\t[jepsen worker nemesis] jepsen.util: [ 1600 ] :nemesis\t:info\t:kill\tnil\n\
                    2022-01-01 10:00:00,002{GMT}\tINFO\t[jepsen worker 3] jepsen.util: [ 2500 ] 3\t:ok\t:write\t7\n";
        let h = read_ok(text);
        assert_eq!(h.len(), 3);
        assert_eq!(h.ops[0].time, Some(1500));
        assert_eq!(h.ops[0].process, Process::Client(3));
        assert_eq!(h.ops[0].value, json!(7));
        assert_eq!(h.ops[1].process, Process::Nemesis);
        assert_eq!(h.ops[2].kind, OpType::Ok);
        assert_eq!(h.ops[2].time, Some(2500));
    }

    #[test]
    fn a_log_whose_op_lines_are_all_unreadable_is_an_error_not_an_empty_history() {
        let e = read_err(
            "INFO jepsen.core - Running test\n\
             INFO jepsen.util - <1500> 3\t:invoke\t:write\t7\n\
             INFO jepsen.util - <2500> 3\t:ok\t:write\t7\n",
        );
        assert_eq!(e.line, Some(2));
        assert!(
            e.message.starts_with(
                "this line names jepsen.util and :invoke, but no line of the log is an op line"
            ),
            "{e}"
        );
    }

    #[test]
    fn jepsens_history_txt_is_the_op_lines_without_the_prefix() {
        let text = ":nemesis\t:info\t:start\tnil\n\
                    2\t:invoke\t:cas\t[1 2]\n\
                    \n\
                    2\t:fail\t:cas\t[1 2]\t:mismatch\n";
        let h = read_ok(text);
        assert_eq!(h.len(), 3);
        assert_eq!(h.lines, vec![1, 2, 4]);
        assert_eq!(h.ops[1].value, json!([1, 2]));
        assert_eq!(h.ops[2].kind, OpType::Fail);
        assert_eq!(h.ops[2].error, Some(json!("mismatch")));
        // Every line of such a file is an op line.
        let e = read_err("2\t:invoke\t:read\tnil\nsomething else\n");
        assert_eq!(e.line, Some(2));
        assert_eq!(
            e.message,
            "expected an op line `<process> :<type> :<f> <value>` of Jepsen's history.txt, found \"something else\""
        );
    }

    #[test]
    fn trailing_error_is_kept() {
        let h = read_ok("INFO jepsen.util - 2\t:info\t:write\t3\tindeterminate: socket closed\n");
        assert_eq!(h.ops[0].error, Some(json!("indeterminate: socket closed")));
        let h = read_ok("INFO jepsen.util - 2\t:fail\t:write\t3\t:not-found\n");
        assert_eq!(h.ops[0].error, Some(json!("not-found")));
        let h = read_ok("INFO jepsen.util - 2\t:ok\t:write\t3\n");
        assert_eq!(h.ops[0].error, None);
    }

    #[test]
    fn empty_log_is_an_empty_history() {
        assert!(read_ok("").is_empty());
        assert!(read_ok("INFO jepsen.core - nothing happened\n").is_empty());
    }

    #[test]
    fn bad_op_lines_name_the_line_and_what_was_expected() {
        let e = read_err(
            "INFO  jepsen.util - 0\t:invoke\t:read\tnil\nINFO  jepsen.util - 0\t:okk\t:read\t3\n",
        );
        assert_eq!(e.line, Some(2));
        assert_eq!(
            e.message,
            "expected the type to be one of :invoke :ok :fail :info, found :okk"
        );
        assert!(e.to_string().starts_with("etcd.log:2: "), "{e}");

        let e = read_err("INFO  jepsen.util - 0\t:invoke\n");
        assert!(e.message.contains("expected the function"), "{e}");
        let e = read_err("INFO  jepsen.util - 0\t:invoke\t:read\n");
        assert!(e.message.contains("expected a value after :read"), "{e}");
        let e = read_err("INFO  jepsen.util - 0\t:invoke\t42\tnil\n");
        assert!(
            e.message.contains("expected the function to be a keyword"),
            "{e}"
        );
        let e = read_err("INFO  jepsen.util - 0\t:invoke\t:cas\t[1 2\n");
        assert_eq!(e.line, Some(1));
        assert!(e.message.contains("expected `]`"), "{e}");
        assert!(e.message.contains("column 36"), "{e}");
    }
}
