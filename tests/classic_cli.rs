//! `faultline check --model bank|counter|unique-ids|queue|long-fork`:
//! verdicts, explanations and exit codes of Jepsen's classic workload
//! checkers through the command line.
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

const BANK: &str = r#"{"process":0,"type":"invoke","f":"transfer","value":{"from":0,"to":1,"amount":5}}
{"process":0,"type":"ok","f":"transfer","value":{"from":0,"to":1,"amount":5}}
{"process":1,"type":"invoke","f":"read","value":null}
{"process":1,"type":"ok","f":"read","value":{"0":45,"1":50}}
"#;

#[test]
fn bank_total_comes_from_the_flag_or_the_first_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let h = write(dir.path(), "bank.jsonl", BANK);
    let (code, out, _) = faultline(&["check", "--model", "bank", "--total", "100", &h]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(": invalid (bank)\n"), "{out}");
    assert!(
        out.contains("process 1's read (events 2 to 3) saw balances totalling 95, not 100"),
        "{out}"
    );
    // Without --total, the only read sets the total: nothing to compare.
    let (code, out, _) = faultline(&["check", "--model", "bank", &h]);
    assert_eq!(code, 0, "{out}");
    let (code, out, _) = faultline(&["check", "--model", "bank", "--total", "95", "--json", &h]);
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(v["verdict"], "valid");
    assert_eq!(v["model"], "bank");
    assert_eq!(v["transfers"]["ok"], 1);
}

#[test]
fn counter_unique_ids_queue_and_long_fork_verdicts_and_exit_codes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let counter = write(
        dir.path(),
        "counter.jsonl",
        r#"{"process":0,"type":"invoke","f":"add","value":2}
{"process":0,"type":"ok","f":"add","value":2}
{"process":1,"type":"invoke","f":"read","value":null}
{"process":1,"type":"ok","f":"read","value":3}
"#,
    );
    let (code, out, _) = faultline(&["check", "--model", "counter", &counter]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("read 3, but only values from 2 to 2 were possible"),
        "{out}"
    );

    let ids = write(
        dir.path(),
        "ids.jsonl",
        r#"{"process":0,"type":"invoke","f":"generate","value":null}
{"process":0,"type":"ok","f":"generate","value":1}
{"process":1,"type":"invoke","f":"generate","value":null}
{"process":1,"type":"ok","f":"generate","value":2}
"#,
    );
    let (code, out, _) = faultline(&["check", "--model", "unique-ids", &ids]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("all 2 acknowledged ids are distinct"), "{out}");

    let queue = write(
        dir.path(),
        "queue.jsonl",
        r#"{"process":0,"type":"invoke","f":"enqueue","value":1}
{"process":0,"type":"ok","f":"enqueue","value":1}
{"process":1,"type":"invoke","f":"dequeue","value":null}
{"process":1,"type":"ok","f":"dequeue","value":1}
{"process":1,"type":"invoke","f":"drain","value":null}
{"process":1,"type":"ok","f":"drain","value":[1]}
"#,
    );
    let (code, out, _) = faultline(&["check", "--model", "queue", &queue]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("duplicated (e.g. 1)"), "{out}");
    let (code, out, _) = faultline(&["check", "--model", "queue", "--duplicates-allowed", &queue]);
    assert_eq!(code, 0, "{out}");

    // No read at all: unknown, exit 2.
    let fork = write(
        dir.path(),
        "fork.jsonl",
        r#"{"process":0,"type":"invoke","f":"txn","value":[["w",1,1]]}
{"process":0,"type":"ok","f":"txn","value":[["w",1,1]]}
"#,
    );
    let (code, out, _) = faultline(&["check", "--model", "long-fork", &fork]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("no read succeeded"), "{out}");
}

#[test]
fn bad_input_and_misplaced_flags_exit_3() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = write(
        dir.path(),
        "bad.jsonl",
        "{\"process\":0,\"type\":\"ok\",\"f\":\"read\",\"value\":1}\n",
    );
    let (code, out, _) = faultline(&["check", "--model", "counter", &bad]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("bad input"), "{out}");
    let h = write(dir.path(), "bank.jsonl", BANK);
    let (code, _, err) = faultline(&["check", "--model", "counter", "--total", "5", &h]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("--total and --negative-balances apply to --model bank only"),
        "{err}"
    );
}

#[test]
fn databases_that_cannot_run_a_workload_are_refused_before_any_cluster() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |workload: &str, db: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_faultline"))
            .args([
                "run",
                "--workload",
                workload,
                "--db",
                db,
                "--time-limit",
                "1",
            ])
            .env("FAULTLINE_STATE_DIR", dir.path().join("state"))
            .output()
            .expect("runs");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, err) = run("bank", "etcd");
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("the etcd client does not run the bank workload (model bank)"),
        "{err}"
    );
    let (code, err) = run("queue", "etcd");
    assert_eq!(code, 3, "{err}");
    let (code, err) = run("counter", "postgres");
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("the postgres client does not run the counter workload")
            && err.contains("it runs: list-append, rw-register, long-fork"),
        "{err}"
    );
}

#[test]
fn classic_checks_write_junit_markdown_and_expected_verdicts() {
    // Before one check loop served every kind, --junit and --summary-md
    // were silently ignored for the classic checkers and --expect refused.
    let dir = tempfile::tempdir().expect("tempdir");
    let h = write(dir.path(), "bank.jsonl", BANK);
    let junit = dir.path().join("junit.xml");
    let md = dir.path().join("summary.md");
    let tsv = write(dir.path(), "expected.tsv", "bank.jsonl\tinvalid\n");
    let (code, out, err) = faultline(&[
        "check",
        "--model",
        "bank",
        "--total",
        "100",
        "--junit",
        junit.to_str().expect("utf-8"),
        "--summary-md",
        md.to_str().expect("utf-8"),
        &h,
    ]);
    assert_eq!(code, 1, "{out}{err}");
    let x = std::fs::read_to_string(&junit).expect("junit written");
    assert!(x.contains("failures=\"1\""), "{x}");
    assert!(
        x.contains("saw balances totalling 95, not 100"),
        "the failure explains: {x}"
    );
    let summary = std::fs::read_to_string(&md).expect("summary written");
    assert!(summary.contains("| bank | ❌ invalid | "), "{summary}");
    let (code, out, _) = faultline(&[
        "check", "--model", "bank", "--total", "100", "--expect", &tsv, &h,
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("expected verdicts: 1 of 1 as expected"),
        "{out}"
    );
}

/// Adds 0..n one after another, every odd one crashed (`info`, each on a
/// process of its own, as Jepsen retires a process after `info`), then a
/// read of every acknowledged element but 0.
fn set_history_losing_zero(n: u64) -> String {
    let mut h = String::new();
    for i in 0..n {
        let p = 100 + i;
        let end = if i % 2 == 1 { "info" } else { "ok" };
        h += &format!("{{\"process\":{p},\"type\":\"invoke\",\"f\":\"add\",\"value\":{i}}}\n");
        h += &format!("{{\"process\":{p},\"type\":\"{end}\",\"f\":\"add\",\"value\":{i}}}\n");
    }
    let seen: Vec<String> = (2..n).step_by(2).map(|i| i.to_string()).collect();
    h += "{\"process\":1,\"type\":\"invoke\",\"f\":\"read\",\"value\":null}\n";
    h += &format!(
        "{{\"process\":1,\"type\":\"ok\",\"f\":\"read\",\"value\":[{}]}}\n",
        seen.join(",")
    );
    h
}

#[test]
fn set_full_names_the_lost_element_at_once_where_the_set_model_must_search() {
    let dir = tempfile::tempdir().expect("tempdir");
    let h = write(dir.path(), "set.jsonl", &set_history_losing_zero(3000));
    let (code, out, err) = faultline(&["check", "--model", "set-full", "--json", &h]);
    assert_eq!(code, 1, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(v["verdict"], "invalid", "{v}");
    assert_eq!(v["model"], "set-full", "{v}");
    assert_eq!(v["lost"]["count"], 1, "{v}");
    assert_eq!(v["lost"]["examples"], serde_json::json!([0]), "{v}");
    assert_eq!(
        v["explanation"],
        "1 acknowledged element is missing from a final read (e.g. 0)"
    );
    // The crashed adds that never showed are no error.
    assert_eq!(v["never_read"]["count"], 1500, "{v}");
    // A small one: the same verdict as the linearizable set model.
    let small = write(dir.path(), "small.jsonl", &set_history_losing_zero(6));
    for model in ["set-full", "set"] {
        let (code, out, err) = faultline(&["check", "--model", model, &small]);
        assert_eq!(code, 1, "{model}: {out}{err}");
    }
}
