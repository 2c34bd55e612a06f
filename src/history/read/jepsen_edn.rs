//! The Jepsen `history.edn` reader, also used for Porcupine's kv files and,
//! with `independent`, for Jepsen `independent` histories.
//!
//! A history is either one vector or list of op maps, or a sequence of op
//! maps (usually one per line). An op map may carry a record tag
//! (`#jepsen.history.Op{...}`). The keys `:process :type :f :value :time
//! :key :node :error` are read; `:index` and every other key are ignored,
//! because the order of the file is the order of events. Elle's histories
//! may leave out `:f` (then `txn`) and `:process` (then each operation is
//! its own process: see `shapes::processes`).

use super::edn::{Edn, EdnError, Parser};
use super::{line_at, ReadError};
use crate::history::{History, Op, OpType, Process};
use rustc_hash::FxHashMap;
use serde_json::Value;
use std::path::Path;

/// How much of an offending value an error message shows.
const SHOWN: usize = 60;

/// Reads an EDN history. With `independent`, client ops' `[key value]`
/// tuples are split into [`Op::key`] and [`Op::value`].
pub(super) fn read(text: &str, source: &Path, independent: bool) -> Result<History, ReadError> {
    let mut r = Reader {
        text,
        source,
        independent,
        ops: Vec::new(),
        lines: Vec::new(),
        line_pos: 0,
        line: 1,
        pending_keys: FxHashMap::default(),
        anonymous: Vec::new(),
    };
    let mut p = Parser::new(text);
    let syntax = |e: EdnError| ReadError::at(source, line_at(text, e.pos), e.message);
    p.skip_ws(0).map_err(syntax)?;
    match p.peek() {
        Some(open @ (b'[' | b'(')) => {
            // One collection holding every op.
            let close = if open == b'[' { b']' } else { b')' };
            let open_pos = p.pos();
            p.bump();
            loop {
                p.skip_ws(1).map_err(syntax)?;
                match p.peek() {
                    None => {
                        return Err(ReadError::at(
                            source,
                            line_at(text, open_pos),
                            format!(
                                "unterminated history: expected `{}` to close it",
                                close as char
                            ),
                        ))
                    }
                    Some(b) if b == close => {
                        p.bump();
                        break;
                    }
                    Some(_) => {
                        let at = p.pos();
                        let form = p.parse_form(1).map_err(syntax)?;
                        r.push(form, at)?;
                    }
                }
            }
            if !p.at_end().map_err(syntax)? {
                return Err(ReadError::at(
                    source,
                    line_at(text, p.pos()),
                    format!(
                        "expected the end of the file after the history's closing `{}`",
                        close as char
                    ),
                ));
            }
        }
        _ => {
            // A sequence of op maps.
            while !p.at_end().map_err(syntax)? {
                let at = p.pos();
                let form = p.parse_form(0).map_err(syntax)?;
                r.push(form, at)?;
            }
        }
    }
    let mut h = History {
        ops: r.ops,
        source: None,
        lines: r.lines,
    };
    // Elle's shape of completions only, decided before anonymous
    // completions get invocations of their own.
    let completions_only = h
        .ops
        .iter()
        .all(|o| !o.is_client() || o.kind != OpType::Invoke);
    if r.anonymous.iter().any(|&a| a) {
        super::shapes::processes(&mut h, &r.anonymous, source)?;
    }
    if completions_only {
        super::shapes::invoke_completions(&mut h);
    }
    Ok(h)
}

struct Reader<'a> {
    text: &'a str,
    source: &'a Path,
    independent: bool,
    ops: Vec<Op>,
    lines: Vec<usize>,
    /// The line at byte `line_pos`: ops come in text order, so lines are
    /// counted incrementally rather than from the start each time.
    line_pos: usize,
    line: usize,
    /// Independent mode: the key of each client process's last invocation,
    /// and whether it came from a tuple, for its completion.
    pending_keys: FxHashMap<u64, (Value, bool)>,
    /// Per op: true when it had no `:process`.
    anonymous: Vec<bool>,
}

impl Reader<'_> {
    fn line_of(&mut self, pos: usize) -> usize {
        let pos = pos.clamp(self.line_pos, self.text.len());
        self.line += self.text.as_bytes()[self.line_pos..pos]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        self.line_pos = pos;
        self.line
    }

    fn push(&mut self, form: Edn, pos: usize) -> Result<(), ReadError> {
        let line = self.line_of(pos);
        let (op, anonymous) = op_from_edn(form, self.independent, &mut self.pending_keys)
            .map_err(|m| ReadError::at(self.source, line, m))?;
        self.ops.push(op);
        self.lines.push(line);
        self.anonymous.push(anonymous);
        Ok(())
    }
}

/// The fields of an op map, before checking that the required ones are there.
#[derive(Default)]
struct Fields {
    process: Option<Process>,
    kind: Option<OpType>,
    f: Option<String>,
    value: Option<Edn>,
    time: Option<u64>,
    key: Option<Edn>,
    node: Option<String>,
    error: Option<Edn>,
}

/// Stores `v` in `slot`, refusing a second value for the same key.
fn set<T>(slot: &mut Option<T>, v: T, name: &str) -> Result<(), String> {
    if slot.is_some() {
        return Err(format!("duplicate key :{name} in the operation map"));
    }
    *slot = Some(v);
    Ok(())
}

/// Builds an op from one EDN form, and whether it had no `:process` (its
/// process is then a placeholder); the error says what was expected.
pub(super) fn op_from_edn(
    form: Edn,
    independent: bool,
    pending_keys: &mut FxHashMap<u64, (Value, bool)>,
) -> Result<(Op, bool), String> {
    let kvs = match form.untagged() {
        Edn::Map(kvs) => kvs,
        other => {
            return Err(format!(
                "expected an operation map like {{:process 0, :type :invoke, :f :read, :value nil}}, found {}",
                other.brief(SHOWN)
            ))
        }
    };
    let mut fl = Fields::default();
    for (k, v) in kvs {
        let Some(name) = k.as_name() else { continue };
        match name {
            "process" => {
                let p = match &v {
                    Edn::Num(n) => n.as_u64().map(Process::Client),
                    other if other.as_name() == Some("nemesis") => Some(Process::Nemesis),
                    _ => None,
                };
                let p = p.ok_or_else(|| {
                    format!(
                        "expected :process to be a non-negative integer or :nemesis, found {}",
                        v.brief(SHOWN)
                    )
                })?;
                set(&mut fl.process, p, name)?;
            }
            "type" => {
                let t = v.as_name().and_then(OpType::parse).ok_or_else(|| {
                    format!(
                        "expected :type to be one of :invoke :ok :fail :info, found {}",
                        v.brief(SHOWN)
                    )
                })?;
                set(&mut fl.kind, t, name)?;
            }
            "f" => {
                let f = v.as_name().ok_or_else(|| {
                    format!(
                        "expected :f to be a keyword or string, found {}",
                        v.brief(SHOWN)
                    )
                })?;
                set(&mut fl.f, f.to_string(), name)?;
            }
            "value" => set(&mut fl.value, v, name)?,
            "time" => {
                let t = match &v {
                    Edn::Nil => None,
                    Edn::Num(n) => Some(n.as_u64().ok_or(())),
                    _ => Some(Err(())),
                };
                match t {
                    None => {}
                    Some(Ok(t)) => set(&mut fl.time, t, name)?,
                    Some(Err(())) => {
                        return Err(format!(
                            "expected :time to be a non-negative integer (nanoseconds), found {}",
                            v.brief(SHOWN)
                        ))
                    }
                }
            }
            // nil is the same as no key.
            "key" if v != Edn::Nil => set(&mut fl.key, v, name)?,
            "node" => {
                let node = match &v {
                    Edn::Nil => None,
                    Edn::Num(n) => Some(n.to_string()),
                    other => Some(other.as_name().map(str::to_string).ok_or_else(|| {
                        format!(
                            "expected :node to be a string or keyword, found {}",
                            v.brief(SHOWN)
                        )
                    })?),
                };
                if let Some(node) = node {
                    set(&mut fl.node, node, name)?;
                }
            }
            // nil is the same as no error.
            "error" if v != Edn::Nil => set(&mut fl.error, v, name)?,
            // :index, a nil :key or :error, and anything else a test recorded.
            _ => {}
        }
    }
    let anonymous = fl.process.is_none();
    let process = fl.process.unwrap_or(Process::Client(u64::MAX));
    let kind = fl
        .kind
        .ok_or("missing :type (expected one of :invoke :ok :fail :info)")?;
    // Elle's histories are all transactions and often leave `:f` out.
    let f = fl.f.unwrap_or_else(|| "txn".to_string());
    let mut value = fl.value.unwrap_or(Edn::Nil);
    let mut key = fl.key.map(Edn::into_json);
    if independent && !anonymous {
        if let Process::Client(p) = process {
            (key, value) = split_tuple(key, value, kind, p, pending_keys)?;
        }
    }
    let op = Op {
        index: 0,
        time: fl.time,
        process,
        kind,
        f,
        value: value.into_json(),
        key,
        node: fl.node,
        error: fl.error.map(Edn::into_json),
    };
    Ok((op, anonymous))
}

/// Independent mode: `[k v]` becomes key `k` and value `v`.
///
/// An op that has a `:key` keeps its value whole. An invocation must carry a
/// key one way or the other. A completion without `:key` is split when its
/// invocation was a tuple and it is one too; otherwise (`:timed-out`, `nil`,
/// or an invocation with an explicit `:key`) it keeps its value and takes
/// its invocation's key.
fn split_tuple(
    key: Option<Value>,
    value: Edn,
    kind: OpType,
    process: u64,
    pending: &mut FxHashMap<u64, (Value, bool)>,
) -> Result<(Option<Value>, Edn), String> {
    if let Some(k) = key {
        if kind == OpType::Invoke {
            pending.insert(process, (k.clone(), false));
        }
        return Ok((Some(k), value));
    }
    let tuple = value.as_seq().is_some_and(|s| s.len() == 2);
    let split = match pending.get(&process) {
        _ if kind == OpType::Invoke => tuple,
        Some((_, was_tuple)) => *was_tuple && tuple,
        None => tuple,
    };
    if split {
        if let Edn::Vector(mut kv) | Edn::List(mut kv) = value {
            if let (Some(v), Some(k)) = (kv.pop(), kv.pop()) {
                let k = k.into_json();
                if kind == OpType::Invoke {
                    pending.insert(process, (k.clone(), true));
                }
                return Ok((Some(k), v));
            }
        }
        return Err("expected :value to be a [key value] tuple".to_string());
    }
    if kind == OpType::Invoke {
        return Err(format!(
            "expected :value to be a [key value] tuple (format jepsen-independent), found {}",
            value.brief(SHOWN)
        ));
    }
    Ok((pending.get(&process).map(|(k, _)| k.clone()), value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read_ok(text: &str) -> History {
        read(text, Path::new("history.edn"), false).unwrap_or_else(|e| panic!("{e}"))
    }

    fn read_err(text: &str) -> ReadError {
        match read(text, Path::new("history.edn"), false) {
            Ok(h) => panic!("expected an error, read {} ops", h.len()),
            Err(e) => e,
        }
    }

    #[test]
    fn reads_map_per_line_with_nemesis_info_comments() {
        let text = r#"; a comment line
{:index 0, :time 100, :process 0, :type :invoke, :f :write, :value 3}
{:index 1, :time 150, :process :nemesis, :type :info, :f :start-partition, :value [:isolated {"n1" #{"n2" "n3"}}]}
{:index 2, :time 200, :process 0, :type :info, :f :write, :value 3, :error :timed-out, :node "n1"} ; trailing

{:process 1, :type :invoke, :f :read, :value nil, :debug {:x 1}}
{:process 1, :type :ok, :f :read, :value 42N}
"#;
        let h = read_ok(text);
        assert_eq!(h.len(), 5);
        assert_eq!(h.lines, vec![2, 3, 4, 6, 7]);
        assert_eq!(h.ops[0].time, Some(100));
        assert_eq!(h.ops[1].process, Process::Nemesis);
        assert_eq!(h.ops[1].f, "start-partition");
        assert_eq!(h.ops[1].value, json!(["isolated", {"n1": ["n2", "n3"]}]));
        assert_eq!(h.ops[2].kind, OpType::Info);
        assert_eq!(h.ops[2].error, Some(json!("timed-out")));
        assert_eq!(h.ops[2].node.as_deref(), Some("n1"));
        assert_eq!(h.ops[3].value, Value::Null);
        assert_eq!(h.ops[4].value, json!(42));
        let calls = History::new(h.ops).calls().unwrap();
        assert_eq!(calls.len(), 2);
    }

    #[test]
    fn reads_a_vector_of_record_tagged_ops_with_lines() {
        let text = "[#jepsen.history.Op{:index 0, :time 1, :type :invoke, :process 0, :f :cas, :value [1 2]}\n \
                    #jepsen.history.Op{:index 1, :time 2, :type :fail, :process 0, :f :cas, :value [1 2]}\n \
                    {:type :invoke, :process 1, :f :txn, :value [[:append 1 2] [:r 1 nil]]}]\n";
        let h = read_ok(text);
        assert_eq!(h.len(), 3);
        assert_eq!(h.lines, vec![1, 2, 3]);
        assert_eq!(
            h.ops[0].value,
            json!([1, 2]),
            "plain edn keeps [k v] values"
        );
        assert_eq!(h.ops[0].key, None);
        assert_eq!(h.ops[1].kind, OpType::Fail);
        assert_eq!(h.ops[2].value, json!([["append", 1, 2], ["r", 1, null]]));
        let list = read_ok("({:type :invoke, :process 0, :f :read})");
        assert_eq!(list.len(), 1);
        assert!(read_ok("[]").is_empty());
        assert!(read_ok("").is_empty());
    }

    #[test]
    fn reads_porcupine_kv_lines() {
        let text = "{:process 0, :type :invoke, :f :append, :key \"0\", :value \"x 0 0 y\"}\n\
                    {:process 0, :type :ok, :f :append, :key \"0\", :value \"x 0 0 y\"}\n\
                    {:process 4, :type :invoke, :f :get, :key \"5\", :value nil}\n\
                    {:process 4, :type :ok, :f :get, :key \"5\", :value \"\"}\n";
        let h = read_ok(text);
        assert_eq!(h.len(), 4);
        assert_eq!(h.ops[0].key, Some(json!("0")));
        assert_eq!(h.ops[0].f, "append");
        assert_eq!(h.ops[3].value, json!(""));
    }

    #[test]
    fn independent_splits_tuples_and_keeps_keys_for_untupled_completions() {
        let text = r#"[{:process 0, :type :invoke, :f :cas, :value [3 [1 2]]}
{:process 1, :type :invoke, :f :read, :value [4 nil]}
{:process :nemesis, :type :info, :f :start, :value nil}
{:process 0, :type :fail, :f :cas, :value [3 [1 2]]}
{:process 1, :type :info, :f :read, :value :timed-out}]"#;
        let h = read(text, Path::new("h.edn"), true).unwrap();
        assert_eq!(h.ops[0].key, Some(json!(3)));
        assert_eq!(h.ops[0].value, json!([1, 2]));
        assert_eq!(h.ops[1].key, Some(json!(4)));
        assert_eq!(h.ops[1].value, Value::Null);
        assert_eq!(h.ops[2].key, None, "nemesis ops are left alone");
        assert_eq!(h.ops[3].key, Some(json!(3)));
        assert_eq!(h.ops[4].key, Some(json!(4)));
        assert_eq!(h.ops[4].value, json!("timed-out"));
        let calls = History::new(h.ops).calls().unwrap();
        assert_eq!(calls[1].key, Some(json!(4)));

        let e = read(
            "{:process 0, :type :invoke, :f :read, :value 5}",
            Path::new("h.edn"),
            true,
        )
        .unwrap_err();
        assert_eq!(e.line, Some(1));
        assert!(
            e.message
                .contains("expected :value to be a [key value] tuple"),
            "{e}"
        );
        // An explicit :key wins: the value is kept whole.
        let h = read(
            "{:process 0, :type :invoke, :f :cas, :key 1, :value [1 2]}\n{:process 0, :type :ok, :f :cas, :value [1 2]}",
            Path::new("h.edn"),
            true,
        )
        .unwrap();
        assert_eq!(h.ops[0].key, Some(json!(1)));
        assert_eq!(h.ops[0].value, json!([1, 2]));
        assert_eq!(
            h.ops[1].key,
            Some(json!(1)),
            "the completion takes the invocation's key"
        );
        assert_eq!(h.ops[1].value, json!([1, 2]), "and is not split either");
    }

    #[test]
    fn bad_fields_name_the_line_and_what_was_expected() {
        let e =
            read_err("{:process 0, :type :invoke, :f :read}\n{:process 0, :type :okk, :f :read}\n");
        assert_eq!(e.line, Some(2));
        assert_eq!(
            e.message,
            "expected :type to be one of :invoke :ok :fail :info, found :okk"
        );
        assert_eq!(
            e.to_string(),
            "history.edn:2: expected :type to be one of :invoke :ok :fail :info, found :okk"
        );

        let e = read_err("{:process -1, :type :ok, :f :read}");
        assert!(
            e.message
                .contains("expected :process to be a non-negative integer or :nemesis, found -1"),
            "{e}"
        );
        let e = read_err("{:process :bob, :type :ok, :f :read}");
        assert!(e.message.contains("found :bob"), "{e}");
        let e = read_err("{:process 0, :type :ok, :f 7}");
        assert!(
            e.message
                .contains("expected :f to be a keyword or string, found 7"),
            "{e}"
        );
        let e = read_err("{:process 0, :type :ok, :f :read, :time -3}");
        assert!(
            e.message
                .contains("expected :time to be a non-negative integer"),
            "{e}"
        );
        let e = read_err("{:process 0, :type :ok, :f :read, :node [1]}");
        assert!(e.message.contains("expected :node"), "{e}");
        let e = read_err("{:process 0, :f :read}");
        assert!(e.message.contains("missing :type"), "{e}");
        let e = read_err("{:type :ok, :type :ok, :process 0, :f :x}");
        assert!(e.message.contains("duplicate key :type"), "{e}");
        let e = read_err("{:process 0, :type :ok, :f :read}\n[1 2]\n");
        assert_eq!(e.line, Some(2));
        assert!(e.message.contains("expected an operation map"), "{e}");
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let e = read_err("{:process 0, :type :ok, :f :read}\n{:process 0, :type :ok, :f :read\n");
        assert_eq!(e.line, Some(2));
        assert!(e.message.contains("expected `}`"), "{e}");
        let e = read_err("[{:process 0, :type :ok, :f :read}\n\n");
        assert_eq!(e.line, Some(1));
        assert!(e.message.contains("unterminated history"), "{e}");
        let e = read_err("[{:process 0, :type :ok, :f :read}]\n{:process 1}\n");
        assert_eq!(e.line, Some(2));
        assert!(e.message.contains("end of the file"), "{e}");
        let e = read_err("\n\n{:process 0, :type :ok, :f :read, :value \"abc}\n");
        assert_eq!(e.line, Some(3));
        assert!(e.message.contains("unterminated string"), "{e}");
        let e = read_err("{:process 0, :type :ok, :f :read, :value #}\n");
        assert!(e.message.contains("tag name"), "{e}");
    }

    #[test]
    fn lines_are_counted_inside_multiline_strings_and_maps() {
        let text = "{:process 0, :type :invoke, :f :write, :value \"a\nb\"}\n{:process 0,\n :type :ok,\n :f :write}\n{:process 1, :type :invoke, :f :read}";
        let h = read_ok(text);
        assert_eq!(h.lines, vec![1, 3, 6]);
    }
}
