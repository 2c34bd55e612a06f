//! The native JSON Lines reader: one [`Op`] object per line, blank lines
//! allowed, unknown fields an error.
//!
//! Large inputs are cut into chunks at line boundaries and parsed on all
//! cores (serde_json is the whole cost; the chunks are independent). The
//! first error in file order is the one reported, so the result does not
//! depend on scheduling.

use super::ReadError;
use crate::history::{History, Op};
use rayon::prelude::*;
use std::path::Path;

/// Texts below this size are parsed on the calling thread: splitting costs
/// more than it saves.
const PARALLEL_MIN: usize = 1 << 20;
/// Target chunk size for the parallel parse.
const CHUNK: usize = 1 << 20;

/// The events of one chunk, their lines relative to the chunk (0-based), and
/// the number of lines in the chunk.
struct Parsed {
    ops: Vec<Op>,
    lines: Vec<usize>,
    line_count: usize,
}

/// A failure inside a chunk: 0-based line within the chunk and message.
type ChunkError = (usize, String);

/// Reads native JSON Lines.
pub(super) fn read(text: &str, source: &Path) -> Result<History, ReadError> {
    let chunks = split(text);
    let parsed: Vec<Result<Parsed, ChunkError>> = if chunks.len() == 1 {
        chunks.iter().map(|c| parse_chunk(c)).collect()
    } else {
        chunks.par_iter().map(|c| parse_chunk(c)).collect()
    };
    let total: usize = parsed
        .iter()
        .map(|p| p.as_ref().map_or(0, |p| p.ops.len()))
        .sum();
    let mut ops = Vec::with_capacity(total);
    let mut lines = Vec::with_capacity(total);
    let mut offset = 0;
    for p in parsed {
        match p {
            Ok(p) => {
                ops.extend(p.ops);
                lines.extend(p.lines.into_iter().map(|l| offset + l + 1));
                offset += p.line_count;
            }
            Err((l, message)) => return Err(ReadError::at(source, offset + l + 1, message)),
        }
    }
    Ok(History {
        ops,
        source: None,
        lines,
    })
}

/// Cuts `text` into pieces of about [`CHUNK`] bytes, each ending just after
/// a newline (except the last), so no line is split.
fn split(text: &str) -> Vec<&str> {
    if text.len() < PARALLEL_MIN {
        return vec![text];
    }
    let mut out = Vec::with_capacity(text.len() / CHUNK + 1);
    let mut rest = text;
    while rest.len() > CHUNK {
        // Cut after the first newline at or past CHUNK bytes; '\n' is ASCII,
        // so the cut is a character boundary.
        match rest.as_bytes()[CHUNK..].iter().position(|&b| b == b'\n') {
            Some(n) => {
                let (head, tail) = rest.split_at(CHUNK + n + 1);
                out.push(head);
                rest = tail;
            }
            None => break,
        }
    }
    out.push(rest);
    out
}

fn parse_chunk(chunk: &str) -> Result<Parsed, ChunkError> {
    let mut ops = Vec::new();
    let mut lines = Vec::new();
    let mut line_count = 0;
    for (i, line) in chunk.lines().enumerate() {
        line_count = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Op>(line) {
            Ok(op) => {
                ops.push(op);
                lines.push(i);
            }
            Err(e) => return Err((i, describe(line, &e))),
        }
    }
    Ok(Parsed {
        ops,
        lines,
        line_count,
    })
}

/// A message for a line serde_json rejected: what an op line looks like, and
/// serde's reason with its column (its "line 1" would be misleading).
fn describe(line: &str, e: &serde_json::Error) -> String {
    let full = e.to_string();
    let reason = match full.rfind(" at line ") {
        Some(i) => &full[..i],
        None => full.as_str(),
    };
    let what = if line.trim_start().starts_with('{') {
        "expected one operation object like {\"process\": 0, \"type\": \"invoke\", \"f\": \"read\", \"value\": null}"
    } else {
        "expected a JSON object (one operation per line)"
    };
    format!("{what}: {reason} (column {})", e.column())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{OpType, Process};
    use serde_json::json;

    fn read_ok(text: &str) -> History {
        read(text, Path::new("h.jsonl")).unwrap_or_else(|e| panic!("{e}"))
    }

    fn read_err(text: &str) -> ReadError {
        match read(text, Path::new("h.jsonl")) {
            Ok(h) => panic!("expected an error, read {} ops", h.len()),
            Err(e) => e,
        }
    }

    #[test]
    fn reads_ops_with_all_fields_blank_lines_and_crlf() {
        let text = concat!(
            "{\"index\":0,\"time\":10,\"process\":0,\"type\":\"invoke\",\"f\":\"write\",\"value\":3,\"key\":\"x\",\"node\":\"n1\"}\r\n",
            "\n",
            "{\"process\":\"nemesis\",\"type\":\"info\",\"f\":\"start-partition\",\"value\":[\"n1\",\"n2\"]}\n",
            "   \n",
            "{\"time\":25,\"process\":0,\"type\":\"info\",\"f\":\"write\",\"value\":3,\"key\":\"x\",\"error\":\"timeout\"}\n",
            "{\"process\":1,\"type\":\"invoke\",\"f\":\"read\"}",
        );
        let h = read_ok(text);
        assert_eq!(h.len(), 4);
        assert_eq!(h.lines, vec![1, 3, 5, 6]);
        assert_eq!(h.ops[0].time, Some(10));
        assert_eq!(h.ops[0].key, Some(json!("x")));
        assert_eq!(h.ops[0].node.as_deref(), Some("n1"));
        assert_eq!(h.ops[1].process, Process::Nemesis);
        assert_eq!(h.ops[2].kind, OpType::Info);
        assert_eq!(h.ops[2].error, Some(json!("timeout")));
        assert_eq!(h.ops[3].value, serde_json::Value::Null);
        let calls = History::new(h.ops).calls().unwrap();
        assert_eq!(calls.len(), 2);
    }

    #[test]
    fn unknown_field_is_an_error_naming_line_and_field() {
        let e = read_err("{\"process\":0,\"type\":\"invoke\",\"f\":\"read\"}\n{\"process\":0,\"type\":\"ok\",\"f\":\"read\",\"vaule\":1}\n");
        assert_eq!(e.line, Some(2));
        assert!(e.message.contains("unknown field `vaule`"), "{e}");
        assert!(e.message.contains("expected one of"), "{e}");
        assert!(e.to_string().starts_with("h.jsonl:2: "), "{e}");
    }

    #[test]
    fn bad_type_process_and_syntax_name_what_was_expected() {
        let e = read_err("\n{\"process\":0,\"type\":\"okk\",\"f\":\"read\"}\n");
        assert_eq!(e.line, Some(2));
        assert!(
            e.message
                .contains("unknown variant `okk`, expected one of `invoke`, `ok`, `fail`, `info`"),
            "{e}"
        );

        let e = read_err("{\"process\":-1,\"type\":\"ok\",\"f\":\"read\"}\n");
        assert!(
            e.message.contains("non-negative integer or \"nemesis\""),
            "{e}"
        );

        let e = read_err("{\"process\":0,\"type\":\"ok\"}\n");
        assert!(e.message.contains("missing field `f`"), "{e}");

        let e = read_err("{\"process\":0,\"type\":\"ok\",\"f\":\"read\"\n");
        assert_eq!(e.line, Some(1));
        assert!(e.message.contains("column"), "{e}");
        assert!(!e.message.contains("at line"), "{e}");

        let e = read_err("[1,2]\n");
        assert!(e.message.contains("expected a JSON object"), "{e}");

        let e = read_err("{\"process\":0,\"type\":\"ok\",\"f\":\"read\",\"time\":-5}\n");
        assert!(
            e.message.contains("time") || e.message.contains("u64"),
            "{e}"
        );
    }

    #[test]
    fn deep_values_are_an_error_not_a_crash() {
        let deep = format!(
            "{{\"process\":0,\"type\":\"ok\",\"f\":\"read\",\"value\":{}{}}}\n",
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        let e = read_err(&deep);
        assert!(e.message.contains("recursion limit"), "{e}");
    }

    #[test]
    fn large_input_is_chunked_and_keeps_order_and_lines() {
        // Enough lines to be split into several chunks.
        let mut text = String::new();
        let n = 60_000;
        for i in 0..n {
            text.push_str(&format!(
                "{{\"process\":{},\"type\":\"{}\",\"f\":\"write\",\"value\":{}}}\n",
                (i / 2) % 7,
                if i % 2 == 0 { "invoke" } else { "ok" },
                i / 2
            ));
            if i % 1000 == 0 {
                text.push('\n');
            }
        }
        assert!(split(&text).len() > 1);
        let h = read_ok(&text);
        assert_eq!(h.len(), n);
        assert_eq!(h.ops[n - 1].value, json!((n - 1) / 2));
        // Each blank line after every 1000th op shifts the later lines by one.
        assert_eq!(h.lines[1], 3);
        assert_eq!(h.lines[n - 1], n + (n - 1) / 1000 + 1);

        // An error deep in the text names its true line.
        let bad_line = text.lines().count() + 1;
        text.push_str("{\"process\":0,\"type\":\"okk\",\"f\":\"read\"}\n");
        let e = read_err(&text);
        assert_eq!(e.line, Some(bad_line));
    }

    fn arb_value() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<u64>().prop_map(serde_json::Value::from),
            (-1e9f64..1e9).prop_map(serde_json::Value::from),
            ".{0,8}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                proptest::collection::btree_map(".{0,4}", inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn arb_op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        let process = prop_oneof![(0u64..5).prop_map(Process::Client), Just(Process::Nemesis)];
        let kind = prop_oneof![
            Just(OpType::Invoke),
            Just(OpType::Ok),
            Just(OpType::Fail),
            Just(OpType::Info)
        ];
        (
            process,
            kind,
            "[a-z-]{1,8}",
            arb_value(),
            proptest::option::of(any::<u64>()),
            proptest::option::of(
                arb_value().prop_filter("null key reads as none", |v| !v.is_null()),
            ),
            proptest::option::of("[a-z0-9]{1,4}"),
        )
            .prop_map(|(process, kind, f, value, time, key, node)| Op {
                index: 0,
                time,
                process,
                kind,
                f,
                value,
                key,
                node,
                error: None,
            })
    }

    proptest::proptest! {
        /// What `History::write_jsonl` writes reads back as the same events.
        #[test]
        fn written_histories_read_back(ops in proptest::collection::vec(arb_op(), 0..20)) {
            let h = History::new(ops);
            let n = h.len();
            let mut out = Vec::new();
            h.write_jsonl(&mut out).unwrap();
            let text = String::from_utf8(out).unwrap();
            let back = read(&text, Path::new("h.jsonl")).unwrap();
            let mut back_ops = back.ops;
            for (i, op) in back_ops.iter_mut().enumerate() {
                op.index = i as u64;
            }
            proptest::prop_assert_eq!(back_ops, h.ops);
            proptest::prop_assert_eq!(back.lines, (1..=n).collect::<Vec<_>>());
        }
    }

    #[test]
    fn split_keeps_every_byte_and_cuts_after_newlines() {
        let line = "x".repeat(1000) + "\n";
        let text = line.repeat(3000);
        let parts = split(&text);
        assert!(parts.len() >= 2);
        assert_eq!(parts.concat(), text);
        for p in &parts[..parts.len() - 1] {
            assert!(p.ends_with('\n'));
        }
        // One enormous line cannot be split.
        let one = "y".repeat(PARALLEL_MIN + 10);
        assert_eq!(split(&one), vec![one.as_str()]);
    }
}
