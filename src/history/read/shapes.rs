//! What an EDN history's operations are when the file does not say:
//! whether `:value [k v]` pairs are the `[key value]` tuples of a Jepsen
//! `independent` test ([`tuples`]), so that a history read without
//! `--format` is read as what it is, never as one register of tuples.

use super::ReadError;
use crate::history::{History, OpType};
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

#[cfg(test)]
mod tests {
    use crate::history::read::{read_path, read_str, Format};
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
}
