//! `faultline check --model list-append|rw-register`: verdicts, exit codes
//! and output files of the transactional checker through the command line.
#![cfg(feature = "cli")]

use std::path::Path;
use std::process::Command;

const WRITE_SKEW: &str = r#"{"process":0,"type":"invoke","f":"txn","value":[["r","x",null],["append","y",1]]}
{"process":1,"type":"invoke","f":"txn","value":[["r","y",null],["append","x",2]]}
{"process":0,"type":"ok","f":"txn","value":[["r","x",[]],["append","y",1]]}
{"process":1,"type":"ok","f":"txn","value":[["r","y",[]],["append","x",2]]}
"#;

fn faultline(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(args)
        .output()
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
    )
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p.to_string_lossy().to_string()
}

#[test]
fn write_skew_is_invalid_for_serializable_and_valid_for_snapshot_isolation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let h = write(dir.path(), "skew.jsonl", WRITE_SKEW);
    let (code, out) = faultline(&[
        "check",
        "--model",
        "list-append",
        "--consistency-model",
        "serializable",
        &h,
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(": invalid (list-append, 2 transactions, consistency model serializable"),
        "{out}"
    );
    assert!(out.contains("  anomalies: G2-item (1)\n"), "{out}");
    assert!(out.contains("  not repeatable-read;"), "{out}");
    let (code, out) = faultline(&[
        "check",
        "--model",
        "list-append",
        "--consistency-model",
        "snapshot-isolation",
        &h,
    ]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn out_dir_gets_explanations_and_dot_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let h = write(dir.path(), "skew.jsonl", WRITE_SKEW);
    let out_dir = dir.path().join("out");
    let (code, _) = faultline(&[
        "check",
        "--model",
        "list-append",
        "--out",
        &out_dir.to_string_lossy(),
        &h,
    ]);
    assert_eq!(code, 1);
    let txt = std::fs::read_to_string(out_dir.join("G2-item.txt")).expect("G2-item.txt");
    assert!(txt.contains("  - T2 < T1 because T2 read key y (an empty list) before T1 appended 1 to it: a contradiction.\n"), "{txt}");
    let dot = std::fs::read_to_string(out_dir.join("G2-item/0.dot")).expect("0.dot");
    assert!(dot.contains("T1 -> T2 [label=\"rw x\""), "{dot}");
}

#[test]
fn exit_codes_for_bad_input_and_unknown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let h = write(dir.path(), "skew.jsonl", WRITE_SKEW);
    // Appends are not register writes: bad input.
    let (code, out) = faultline(&["check", "--model", "rw-register", &h]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("bad input: "), "{out}");
    let (code, _) = faultline(&[
        "check",
        "--model",
        "list-append",
        "--consistency-model",
        "nope",
        &h,
    ]);
    assert_eq!(code, 3);
    // No time to search: unknown, with the reason.
    let (code, out) = faultline(&[
        "check",
        "--model",
        "list-append",
        "--time-limit",
        "0.000000001",
        &h,
    ]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("  unknown: the cycle search for "), "{out}");
    // The txn flags make no sense for linearizability models (--out does:
    // it writes the report artifacts, docs/reports.md).
    let (code, _) = faultline(&[
        "check",
        "--model",
        "register",
        "--consistency-model",
        "serializable",
        &h,
    ]);
    assert_eq!(code, 3);
}
