//! What an EDN history's operations are when the file does not say:
//! whether `:value [k v]` pairs are the `[key value]` tuples of a Jepsen
//! `independent` test ([`tuples`]), so that a history read without
//! `--format` is read as what it is, never as one register of tuples; and
//! which process ran the operations of an Elle history that has no
//! `:process` ([`processes`]).

use super::ReadError;
use crate::history::{History, Op, OpType, Process};
use rustc_hash::FxHashMap;
use serde_json::Value;
use std::path::Path;

/// What the client invocations of a plainly read EDN history look like.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Tuples {
    /// Plain values (or explicit `:key`s): keep the history as read.
    Plain,
    /// Every invocation is a `[key value]` tuple and some can only be one:
    /// read it again as `jepsen-independent`.
    Independent,
}

/// What one invocation's value says about the history.
enum Evidence {
    /// A shape only a `[key value]` tuple has, e.g. a write of `[k v]` with
    /// a scalar `v`: described for messages.
    Tuple(String),
    /// A shape only a plain value has, e.g. a cas of `[old new]` scalars.
    Plain(String),
    /// A two-element value that could be either.
    Either,
}

/// The function name without a keyword's colon.
fn f_name(f: &str) -> &str {
    f.strip_prefix(':').unwrap_or(f)
}

fn scalar(v: &Value) -> bool {
    !matches!(v, Value::Array(_) | Value::Object(_))
}

/// The evidence of one invocation of `f` whose value is `[a b]`.
fn evidence(f: &str, a: &Value, b: &Value) -> Evidence {
    let shown = || format!("`{f}` of [{a} {b}]");
    match f_name(f) {
        // A plain read invokes with nil.
        "read" | "r" | "get" => Evidence::Tuple(format!(
            "{} (a read of key {a}; a plain read carries nil)",
            shown()
        )),
        "write" | "w" | "put" if scalar(b) => {
            Evidence::Tuple(format!("{} (a write of {b} to key {a})", shown()))
        }
        "cas" if matches!(b, Value::Array(x) if x.len() == 2) => Evidence::Tuple(format!(
            "{} (a compare-and-set of key {a} from/to {b})",
            shown()
        )),
        "cas" if scalar(a) && scalar(b) => {
            Evidence::Plain(format!("{} (a compare-and-set from {a} to {b})", shown()))
        }
        // A plain transaction is a list of micro-operations.
        "txn" if matches!(a, Value::Array(_)) => Evidence::Plain(format!(
            "{} (a transaction of two micro-operations)",
            shown()
        )),
        "txn" if matches!(b, Value::Array(_)) => {
            Evidence::Tuple(format!("{} (a transaction on key {a})", shown()))
        }
        _ => Evidence::Either,
    }
}

/// Decides whether a history read as plain EDN is really a Jepsen
/// `independent` history. It is when no operation has a `:key`, every
/// client invocation's value is a two-element vector, and at least one of
/// them can only be a `[key value]` tuple. It is refused as ambiguous when
/// some invocations can only be tuples and others only plain values, or
/// when every invocation is a pair that could be either; the error names
/// the line and both fixes (`--format jepsen-independent`, `--format edn`).
pub(super) fn tuples(h: &History, source: &Path) -> Result<Tuples, ReadError> {
    if h.ops.iter().any(|o| o.key.is_some()) {
        return Ok(Tuples::Plain);
    }
    let mut tuple: Option<(usize, String)> = None;
    let mut plain: Option<(usize, String)> = None;
    let mut first: Option<usize> = None;
    for (i, op) in h.ops.iter().enumerate() {
        if !op.is_client() || op.kind != OpType::Invoke {
            continue;
        }
        let Value::Array(pair) = &op.value else {
            return Ok(Tuples::Plain);
        };
        let [a, b] = pair.as_slice() else {
            return Ok(Tuples::Plain);
        };
        let line = h.line_of(i).unwrap_or(i + 1);
        first.get_or_insert(line);
        match evidence(&op.f, a, b) {
            Evidence::Tuple(why) => {
                tuple.get_or_insert((line, why));
            }
            Evidence::Plain(why) => {
                plain.get_or_insert((line, why));
            }
            Evidence::Either => {}
        }
    }
    let fix = "name the format: --format jepsen-independent reads [key value] tuples, \
               --format edn keeps values whole";
    match (tuple, plain, first) {
        (None, _, None) | (None, Some(_), _) => Ok(Tuples::Plain),
        (Some(_), None, _) => Ok(Tuples::Independent),
        (Some((tl, tw)), Some((pl, pw)), _) => Err(ReadError::at(
            source,
            tl,
            format!(
                "ambiguous values: line {tl} looks like a [key value] tuple of a Jepsen independent test, \
                 {tw}, but line {pl} looks like a plain value, {pw}; {fix}"
            ),
        )),
        (None, None, Some(line)) => Err(ReadError::at(
            source,
            line,
            format!(
                "ambiguous values: every client invocation's :value is a two-element vector, which may be \
                 a [key value] tuple of a Jepsen independent test or a plain value; {fix}"
            ),
        )),
    }
}

/// Gives every operation without a `:process` (`anonymous[i]`) its own
/// process, numbered after the largest one the history names, as Elle
/// does. An invocation starts a new process; a completion completes the
/// one invocation without a process still in flight. A completion with
/// none in flight gets an invocation of its own, of the same value, placed
/// at the start of the history (when it was invoked is unknown, so it is
/// taken as concurrent with everything before it). Two or more in flight
/// make the pairing ambiguous: an error naming the lines.
pub(super) fn processes(
    h: &mut History,
    anonymous: &[bool],
    source: &Path,
) -> Result<(), ReadError> {
    let mut next = h
        .ops
        .iter()
        .zip(anonymous)
        .filter_map(|(o, &a)| match o.process {
            Process::Client(p) if !a => Some(p + 1),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    let line = |h: &History, i: usize| h.line_of(i).unwrap_or(i + 1);
    // Invocations without a process in flight: (event, process).
    let mut open: Vec<(usize, u64)> = Vec::new();
    let mut invented: Vec<(Op, usize)> = Vec::new();
    for (i, _) in anonymous.iter().enumerate().filter(|(_, &a)| a) {
        if h.ops[i].kind == OpType::Invoke {
            h.ops[i].process = Process::Client(next);
            open.push((i, next));
            next += 1;
            continue;
        }
        match open.as_slice() {
            [] => {
                h.ops[i].process = Process::Client(next);
                let invoke = Op {
                    kind: OpType::Invoke,
                    time: None,
                    error: None,
                    ..h.ops[i].clone()
                };
                invented.push((invoke, line(h, i)));
                next += 1;
            }
            [(_, p)] => {
                h.ops[i].process = Process::Client(*p);
                open.clear();
            }
            many => {
                let lines: Vec<String> =
                    many.iter().map(|(j, _)| line(h, *j).to_string()).collect();
                return Err(ReadError::at(
                    source,
                    line(h, i),
                    format!(
                        "this completion has no :process, and the invocations on lines {} have none either: \
                         which one it completes is ambiguous; give the operations a :process",
                        lines.join(", ")
                    ),
                ));
            }
        }
    }
    if !invented.is_empty() {
        let lines = std::mem::take(&mut h.lines);
        let ops = std::mem::take(&mut h.ops);
        let known = lines.len() == ops.len();
        for (op, l) in invented {
            h.ops.push(op);
            h.lines.push(l);
        }
        h.ops.extend(ops);
        if known {
            h.lines.extend(lines);
        } else {
            h.lines.clear();
        }
    }
    Ok(())
}

/// Gives each completion of a history of completions only (Elle's
/// `{:process 0, :type :ok, :value [...]}`, no op an invocation) an
/// invocation of the same value, placed right after its process's
/// previous event, or at the start of the history for the process's
/// first: when it was invoked is unknown, so it is taken as concurrent
/// with everything since its process was last seen, and each process
/// stays one operation at a time.
pub(super) fn invoke_completions(h: &mut History) {
    // Per original event: the invocations to place right after it
    // (`after[i + 1]`), or at the start (`after[0]`).
    let mut after: Vec<Vec<(Op, usize)>> = vec![Vec::new(); h.ops.len() + 1];
    // Per process: the slot after its last event.
    let mut last: FxHashMap<u64, usize> = FxHashMap::default();
    let mut in_flight: FxHashMap<u64, bool> = FxHashMap::default();
    for (i, op) in h.ops.iter().enumerate() {
        let Process::Client(p) = op.process else {
            continue;
        };
        if op.kind == OpType::Invoke {
            in_flight.insert(p, true);
        } else if in_flight.insert(p, false) != Some(true) {
            let invoke = Op {
                kind: OpType::Invoke,
                time: None,
                error: None,
                ..op.clone()
            };
            let line = h.line_of(i).unwrap_or(i + 1);
            after[last.get(&p).copied().unwrap_or(0)].push((invoke, line));
        }
        last.insert(p, i + 1);
    }
    if after.iter().all(Vec::is_empty) {
        return;
    }
    let known = h.lines.len() == h.ops.len();
    let ops = std::mem::take(&mut h.ops);
    let lines = std::mem::take(&mut h.lines);
    let mut slots = after.into_iter();
    let place = |h: &mut History, slot: Option<Vec<(Op, usize)>>| {
        for (op, line) in slot.unwrap_or_default() {
            h.ops.push(op);
            h.lines.push(line);
        }
    };
    place(h, slots.next());
    for (i, op) in ops.into_iter().enumerate() {
        h.ops.push(op);
        h.lines.push(lines.get(i).copied().unwrap_or(i + 1));
        place(h, slots.next());
    }
    if !known {
        h.lines.clear();
    }
}

#[cfg(test)]
mod tests {
    use crate::history::read::{read_path, read_str, Format};
    use crate::history::{OpType, Outcome, Process};
    use serde_json::json;
    use std::path::Path;

    /// A valid `independent` cas-register history over two keys: read as one
    /// register of tuples it would be invalid.
    const TWO_KEYS: &str = "\
{:process 0, :type :invoke, :f :write, :value [1 3]}
{:process 0, :type :ok, :f :write, :value [1 3]}
{:process 1, :type :invoke, :f :write, :value [2 4]}
{:process 1, :type :ok, :f :write, :value [2 4]}
{:process 0, :type :invoke, :f :cas, :value [1 [3 5]]}
{:process 0, :type :ok, :f :cas, :value [1 [3 5]]}
{:process 1, :type :invoke, :f :read, :value [2 nil]}
{:process 1, :type :ok, :f :read, :value [2 4]}
";

    #[test]
    fn an_independent_history_is_detected_without_a_format() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.edn");
        std::fs::write(&path, TWO_KEYS).unwrap();
        let h = read_path(&path, None).unwrap();
        assert_eq!(h.ops[0].key, Some(json!(1)));
        assert_eq!(h.ops[0].value, json!(3));
        assert_eq!(h.ops[4].value, json!([3, 5]));
        assert_eq!(h.ops[7].key, Some(json!(2)));
        assert_eq!(h.ops[7].value, json!(4));
        // Naming the plain format keeps the tuples whole.
        let plain = read_path(&path, Some(Format::Edn)).unwrap();
        assert_eq!(plain.ops[0].key, None);
        assert_eq!(plain.ops[0].value, json!([1, 3]));
    }

    #[test]
    fn plain_pairs_stay_plain() {
        // A cas of two scalars is a plain cas; a two-op transaction is plain.
        let text = "{:process 0, :type :invoke, :f :cas, :value [1 2]}\n\
                    {:process 0, :type :fail, :f :cas, :value [1 2]}\n\
                    {:process 1, :type :invoke, :f :txn, :value [[:r 1 nil] [:append 1 2]]}\n";
        let h = read_str(text, Path::new("h.edn"), None).unwrap();
        assert_eq!(h.ops[0].key, None);
        assert_eq!(h.ops[0].value, json!([1, 2]));
        // A plain read (nil) means not every invocation is a tuple.
        let text = "{:process 0, :type :invoke, :f :read, :value nil}\n\
                    {:process 1, :type :invoke, :f :write, :value [1 2]}\n";
        let h = read_str(text, Path::new("h.edn"), None).unwrap();
        assert_eq!(h.ops[1].value, json!([1, 2]));
    }

    #[test]
    fn mixed_or_undecidable_pairs_are_refused_with_the_fix() {
        let text = "{:process 0, :type :invoke, :f :write, :value [1 3]}\n\
                    {:process 0, :type :ok, :f :write, :value [1 3]}\n\
                    {:process 1, :type :invoke, :f :cas, :value [3 4]}\n";
        let e = read_str(text, Path::new("h.edn"), None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "h.edn:1: ambiguous values: line 1 looks like a [key value] tuple of a Jepsen independent \
             test, `write` of [1 3] (a write of 3 to key 1), but line 3 looks like a plain value, `cas` of [3 4] (a compare-and-set from 3 to 4); \
             name the format: --format jepsen-independent reads [key value] tuples, --format edn keeps \
             values whole"
        );
        let text = "{:process 0, :type :invoke, :f :add, :value [1 3]}\n";
        let e = read_str(text, Path::new("h.edn"), None).unwrap_err();
        assert_eq!(e.line, Some(1));
        assert!(
            e.message.starts_with(
                "ambiguous values: every client invocation's :value is a two-element vector"
            ),
            "{e}"
        );
        assert!(
            e.message.ends_with("--format edn keeps values whole"),
            "{e}"
        );
        // Named, it reads either way.
        let h = read_str(text, Path::new("h.edn"), Some(Format::JepsenIndependent)).unwrap();
        assert_eq!(h.ops[0].key, Some(json!(1)));
        let h = read_str(text, Path::new("h.edn"), Some(Format::Edn)).unwrap();
        assert_eq!(h.ops[0].value, json!([1, 3]));
    }

    #[test]
    fn elle_histories_without_process_or_f_are_transactions_each_its_own_process() {
        use crate::check::txn::{self, TxnKind, TxnOptions};
        use crate::check::Validity;
        // Elle's paper example's shape: invocations and completions, no
        // :process, no :f; and a completion alone.
        let text = "{:index 0 :type :invoke :value [[:append :x 1] [:r :y nil]]}\n\
                {:index 1 :type :ok :value [[:append :x 1] [:r :y [1]]]}\n\
                {:type :ok, :value [[:append :y 1] [:r :x [1]]]}\n";
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("paper.edn");
        std::fs::write(&path, text).unwrap();
        let h = crate::history::read_path(&path, None).unwrap();
        assert_eq!(h.len(), 4);
        // The completion alone got an invocation at the start, on its line.
        assert_eq!(h.ops[0].kind, OpType::Invoke);
        assert_eq!(h.lines, vec![3, 1, 2, 3]);
        assert!(h.ops.iter().all(|o| o.f == "txn"));
        assert_eq!(h.ops[1].process, h.ops[2].process);
        assert_ne!(h.ops[0].process, h.ops[1].process);
        assert_eq!(h.ops[0].process, h.ops[3].process);
        let calls = h.calls().unwrap();
        assert!(calls.iter().all(|c| c.outcome == Outcome::Ok));
        let r = txn::check(&h, &TxnOptions::new(TxnKind::ListAppend)).unwrap();
        assert_eq!(r.validity, Validity::Invalid);
        assert_eq!(r.anomaly_types, vec!["G1c"]);
        // Named processes keep theirs; new ones are numbered after them.
        let h = read_str(
        "{:process 4, :type :invoke, :f :txn, :value [[:r :x nil]]}\n{:type :invoke, :value [[:r :x nil]]}\n",
        Path::new("h.edn"),
        None,
    )
    .unwrap();
        assert_eq!(h.ops[0].process, Process::Client(4));
        assert_eq!(h.ops[1].process, Process::Client(5));
    }

    #[test]
    fn completions_only_with_processes_get_invocations_after_their_process_last_event() {
        use crate::check::txn::{self, TxnKind, TxnOptions};
        use crate::check::Validity;
        // Elle's README shape: completions only, each with a :process.
        // Process 3 appended to x, then read x empty: its second
        // transaction follows its first (process order) and yet missed it.
        let text = "{:process 3, :type :ok, :value [[:append :x 1]]}\n\
                    {:process 8, :type :ok, :value [[:r :x []] [:append :y 5]]}\n\
                    {:process 3, :type :ok, :value [[:r :x []]]}\n";
        let h = read_str(text, Path::new("h.edn"), None).unwrap();
        let shape: Vec<(Process, OpType)> = h.ops.iter().map(|o| (o.process, o.kind)).collect();
        assert_eq!(
            shape,
            vec![
                (Process::Client(3), OpType::Invoke),
                (Process::Client(8), OpType::Invoke),
                (Process::Client(3), OpType::Ok),
                (Process::Client(3), OpType::Invoke),
                (Process::Client(8), OpType::Ok),
                (Process::Client(3), OpType::Ok),
            ]
        );
        // Each invented invocation carries its completion's line.
        assert_eq!(h.lines, vec![1, 2, 1, 3, 2, 3]);
        let r = txn::check(&h, &TxnOptions::new(TxnKind::ListAppend)).unwrap();
        assert_eq!(r.validity, Validity::Invalid);
        // A process invokes after its previous op completed, so the
        // order is real time as well.
        assert_eq!(
            r.anomaly_types,
            vec!["G-single-process", "G-single-realtime"]
        );
        // With one invocation anywhere, a completion without one is the
        // error it always was.
        let e = read_str(
            &format!("{text}{{:process 9, :type :invoke, :value [[:r :x nil]]}}\n"),
            Path::new("h.edn"),
            None,
        )
        .unwrap()
        .calls()
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "h.edn:1: process 3 completed `txn` (ok) but had no operation in flight"
        );
    }

    #[test]
    fn a_completion_without_process_amid_several_is_ambiguous() {
        let text = "{:type :invoke, :value [[:r :x nil]]}\n\
                {:type :invoke, :value [[:r :y nil]]}\n\
                {:type :ok, :value [[:r :x []]]}\n";
        let e = read_str(text, Path::new("h.edn"), None).unwrap_err();
        assert_eq!(
        e.to_string(),
        "h.edn:3: this completion has no :process, and the invocations on lines 1, 2 have none either: \
         which one it completes is ambiguous; give the operations a :process"
    );
    }

    #[test]
    fn knossos_multi_register_histories_read_as_rw_register_transactions() {
        use crate::check::txn::{self, TxnError, TxnKind, TxnOptions};
        use crate::check::Validity;
        // Knossos's multi-register: :txn of [:r k v] and [:w k v]. No
        // multi-register linearizability model exists, so these are checked
        // by the transactional checker as rw-register histories.
        let text = "{:process 0, :type :invoke, :f :txn, :value [[:w :x 1] [:w :y 2]]}\n\
                {:process 0, :type :ok, :f :txn, :value [[:w :x 1] [:w :y 2]]}\n\
                {:process 1, :type :invoke, :f :txn, :value [[:r :x nil] [:r :y nil]]}\n\
                {:process 1, :type :ok, :f :txn, :value [[:r :x 1] [:r :y nil]]}\n";
        let h = read_str(text, Path::new("multi.edn"), None).unwrap();
        assert_eq!(
            h.ops[0].key, None,
            "a two-op txn is not a [key value] tuple"
        );
        let r = txn::check(&h, &TxnOptions::new(TxnKind::RwRegister)).unwrap();
        assert_eq!(r.validity, Validity::Invalid);
        // Process 1 saw T1's x but not its y: read skew.
        assert_eq!(r.anomaly_types, vec!["G-single", "G-single-realtime"]);
        // Knossos writes small random values, often twice: inference needs
        // unique ones, and says so.
        let twice = text.replace(":w :y 2", ":w :x 1");
        let h = read_str(&twice, Path::new("multi.edn"), None).unwrap();
        let e = txn::check(&h, &TxnOptions::new(TxnKind::RwRegister)).unwrap_err();
        assert!(matches!(e, TxnError::DuplicateWrite { .. }), "{e}");
    }

    #[test]
    fn a_valid_fifty_key_independent_history_is_valid_without_a_format() {
        use crate::check::linear::{self, LinearOptions};
        use crate::check::Validity;
        use crate::model::CasRegister;
        // Per key: write k, read k, cas k → k+100, read k+100; keys interleaved.
        let mut text = String::new();
        for k in 0..50 {
            for (f, inv, ok) in [
                ("write", format!("{k}"), format!("{k}")),
                ("read", "nil".to_string(), format!("{k}")),
                (
                    "cas",
                    format!("[{k} {}]", k + 100),
                    format!("[{k} {}]", k + 100),
                ),
                ("read", "nil".to_string(), format!("{}", k + 100)),
            ] {
                let p = k % 5;
                text.push_str(&format!(
                    "{{:process {p}, :type :invoke, :f :{f}, :value [{k} {inv}]}}\n"
                ));
                text.push_str(&format!(
                    "{{:process {p}, :type :ok, :f :{f}, :value [{k} {ok}]}}\n"
                ));
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("independent.edn");
        std::fs::write(&path, &text).unwrap();
        let opts = LinearOptions::default();
        let h = read_path(&path, None).unwrap();
        assert_eq!(h.ops[0].key, Some(json!(0)));
        let r = linear::check(&CasRegister::default(), &h, &opts).unwrap();
        assert_eq!(r.validity, Validity::Valid);
        // Read as one register of tuples (what plain EDN means), it is not.
        let plain = read_path(&path, Some(Format::Edn)).unwrap();
        let r = linear::check(&CasRegister::default(), &plain, &opts).unwrap();
        assert_eq!(r.validity, Validity::Invalid);
    }
}
