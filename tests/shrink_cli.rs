//! `faultline check --shrink FILE` and `--shrink-time`: the first invalid
//! key's smallest failing sub-history, printed and written as a native
//! history that checks invalid at the same operation.
#![cfg(feature = "cli")]

use std::path::Path;
use std::process::Command;

fn faultline(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(args)
        .output()
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p.to_string_lossy().to_string()
}

/// Key "y" is fine; on key "x" process 1 reads nil after write 1 returned,
/// among other operations that play no part.
const STALE: &str = r#"{"process":0,"type":"invoke","f":"write","value":5,"key":"y"}
{"process":0,"type":"ok","f":"write","value":5,"key":"y"}
{"process":2,"type":"invoke","f":"read","value":null,"key":"x"}
{"process":0,"type":"invoke","f":"write","value":1,"key":"x"}
{"process":0,"type":"ok","f":"write","value":1,"key":"x"}
{"process":1,"type":"invoke","f":"read","value":null,"key":"x"}
{"process":1,"type":"ok","f":"read","value":null,"key":"x"}
{"process":2,"type":"ok","f":"read","value":1,"key":"x"}
{"process":3,"type":"invoke","f":"write","value":2,"key":"x"}
{"process":3,"type":"ok","f":"write","value":2,"key":"x"}
"#;

#[test]
fn shrink_writes_a_history_that_checks_invalid_at_the_same_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let h = write(dir.path(), "stale.jsonl", STALE);
    let out_path = dir.path().join("min.jsonl");
    let out = out_path.to_string_lossy().to_string();
    let (code, text, err) = faultline(&["check", "--model", "cas-register", "--shrink", &out, &h]);
    assert_eq!(code, 1, "{text}{err}");
    assert!(
        text.contains("  smallest failing sub-history (2 ops, 1-minimal):\n"),
        "{text}"
    );
    assert!(text.contains("write 1"), "{text}");
    assert!(
        err.contains("wrote the smallest failing sub-history (2 ops, 1-minimal) to"),
        "{err}"
    );
    let written = std::fs::read_to_string(&out_path).expect("written");
    assert_eq!(written.lines().count(), 4, "{written}");
    let (code, text, err) = faultline(&["check", "--model", "cas-register", &out]);
    assert_eq!(code, 1, "{text}{err}");
    assert!(
        text.contains(
            "on key \"x\": read returned nil, but every order of the operations before it leaves 1"
        ),
        "{text}"
    );
    assert!(text.contains("2 ops, 1 key"), "{text}");
}

#[test]
fn json_carries_the_shrunk_operations_and_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    let h = write(dir.path(), "stale.jsonl", STALE);
    let (code, text, _) = faultline(&["check", "--json", &h]);
    assert_eq!(code, 1, "{text}");
    let v: serde_json::Value = serde_json::from_str(text.trim()).expect("json");
    let shrunk = &v["failures"][0]["shrunk"];
    assert_eq!(shrunk["minimal"], true, "{shrunk}");
    let invokes: Vec<u64> = shrunk["ops"]
        .as_array()
        .expect("ops")
        .iter()
        .map(|o| o["invoke_index"].as_u64().expect("index"))
        .collect();
    assert_eq!(invokes, vec![3, 5], "{shrunk}");
    assert_eq!(
        shrunk["events"].as_array().map(Vec::len),
        Some(4),
        "{shrunk}"
    );
}

#[test]
fn shrink_time_zero_turns_shrinking_off_and_refuses_shrink() {
    let dir = tempfile::tempdir().expect("tempdir");
    let h = write(dir.path(), "stale.jsonl", STALE);
    let (code, text, _) = faultline(&["check", "--shrink-time", "0", &h]);
    assert_eq!(code, 1, "{text}");
    assert!(!text.contains("smallest failing sub-history"), "{text}");
    let out = dir.path().join("min.jsonl").to_string_lossy().to_string();
    let (code, _, err) = faultline(&["check", "--shrink-time", "0", "--shrink", &out, &h]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("--shrink needs shrinking: drop --shrink-time 0"),
        "{err}"
    );
}

#[test]
fn shrink_of_a_valid_history_writes_nothing_and_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let h = write(
        dir.path(),
        "ok.jsonl",
        "{\"process\":0,\"type\":\"invoke\",\"f\":\"write\",\"value\":1}\n{\"process\":0,\"type\":\"ok\",\"f\":\"write\",\"value\":1}\n",
    );
    let out_path = dir.path().join("min.jsonl");
    let out = out_path.to_string_lossy().to_string();
    let (code, _, err) = faultline(&["check", "--shrink", &out, &h]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("nothing written"), "{err}");
    assert!(err.contains("the history is not invalid"), "{err}");
    assert!(!out_path.exists());
}

#[test]
fn shrink_flags_are_refused_for_the_classic_checkers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let h = write(dir.path(), "stale.jsonl", STALE);
    let (code, _, err) = faultline(&["check", "--model", "bank", "--shrink-time", "1", &h]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("--shrink-time apply to --model"), "{err}");
}

/// Write skew (G2-item) between processes 0 and 1, and process 2's
/// unrelated append and read of z.
const SKEW: &str = r#"{"process":2,"type":"invoke","f":"txn","value":[["append","z",7]]}
{"process":2,"type":"ok","f":"txn","value":[["append","z",7]]}
{"process":0,"type":"invoke","f":"txn","value":[["r","x",null],["append","y",1]]}
{"process":1,"type":"invoke","f":"txn","value":[["r","y",null],["append","x",2]]}
{"process":0,"type":"ok","f":"txn","value":[["r","x",[]],["append","y",1]]}
{"process":1,"type":"ok","f":"txn","value":[["r","y",[]],["append","x",2]]}
{"process":2,"type":"invoke","f":"txn","value":[["r","z",null]]}
{"process":2,"type":"ok","f":"txn","value":[["r","z",[7]]]}
"#;

#[test]
fn shrink_of_a_transactional_anomaly_writes_the_cycles_transactions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let h = write(dir.path(), "skew.jsonl", SKEW);
    let out_path = dir.path().join("min.jsonl");
    let out = out_path.to_string_lossy().to_string();
    let (code, text, err) = faultline(&["check", "--model", "list-append", "--shrink", &out, &h]);
    assert_eq!(code, 1, "{text}{err}");
    assert!(
        text.contains("the cycle's 2 transactions alone still show G2-item"),
        "{text}"
    );
    assert!(
        err.contains(
            "wrote the smallest failing sub-history (2 ops, the G2-item cycle's transactions)"
        ),
        "{err}"
    );
    let written = std::fs::read_to_string(&out_path).expect("written");
    assert_eq!(written.lines().count(), 4, "{written}");
    assert!(!written.contains("\"z\""), "{written}");
    let (code, text, err) = faultline(&["check", "--model", "list-append", &out]);
    assert_eq!(code, 1, "{text}{err}");
    assert!(text.contains("2 transactions"), "{text}");
    assert!(text.contains("anomalies: G2-item (1)"), "{text}");
}

#[test]
fn a_shrink_cut_short_says_not_proven_minimal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let h = write(dir.path(), "stale.jsonl", STALE);
    let (code, text, _) = faultline(&["check", "--shrink-time", "0.000000001", &h]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("  smallest failing sub-history (4 ops, smallest found in"),
        "{text}"
    );
    assert!(text.contains("not proven minimal):\n"), "{text}");
}

#[test]
fn a_long_unfinished_shrink_shows_sixteen_operations_and_a_count() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut text = String::new();
    for i in 0..40 {
        text.push_str(&format!(
            "{{\"process\":0,\"type\":\"invoke\",\"f\":\"write\",\"value\":{i}}}\n{{\"process\":0,\"type\":\"ok\",\"f\":\"write\",\"value\":{i}}}\n"
        ));
    }
    text.push_str("{\"process\":1,\"type\":\"invoke\",\"f\":\"read\",\"value\":null}\n{\"process\":1,\"type\":\"ok\",\"f\":\"read\",\"value\":null}\n");
    let h = write(dir.path(), "long.jsonl", &text);
    let (code, out, _) = faultline(&["check", "--shrink-time", "0.000000001", &h]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("smallest failing sub-history (41 ops, smallest found in"),
        "{out}"
    );
    assert!(out.contains("      process 0    write 15 "), "{out}");
    assert!(!out.contains("      process 0    write 16 "), "{out}");
    assert!(
        out.contains("      ... and 25 more (see --json)\n"),
        "{out}"
    );
    // Given time, it shrinks to the last write and the read.
    let (code, out, _) = faultline(&["check", &h]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("smallest failing sub-history (2 ops, 1-minimal):"),
        "{out}"
    );
    assert!(out.contains("      process 0    write 39 "), "{out}");
}
