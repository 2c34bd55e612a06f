//! The external client against small shell programs that answer well,
//! answer garbage, crash and hang.

use super::*;
use crate::history::Process;
use std::path::Path;

/// A client program: answers by the operation's `f`, logs each start.
const SCRIPT: &str = r#"#!/bin/sh
echo started >> "$1/starts"
while IFS= read -r line; do
  case "$line" in
    *'"f":"echo"'*) printf '{"type":"ok","value":%s}\n' "$line" ;;
    *'"f":"read"'*) echo '{"type":"ok","value":42}' ;;
    *'"f":"write"'*) echo '{"type":"ok"}' ;;
    *'"f":"fail"'*) echo '{"type":"fail","error":"nope"}' ;;
    *'"f":"info"'*) echo '{"type":"info","error":"maybe"}' ;;
    *'"f":"badtype"'*) echo '{"type":"done"}' ;;
    *'"f":"garbage"'*) echo 'this is not json' ;;
    *'"f":"crash"'*) printf 'bad \377 byte\ndying now\n' >&2; exit 3 ;;
    *'"f":"hang"'*) sleep 1234 & echo $! > "$1/sleeper"; wait ;;
  esac
done
"#;

fn setup() -> (tempfile::TempDir, ExternalClientFactory) {
    let dir = tempfile::tempdir().expect("temp dir");
    let script = dir.path().join("client.sh");
    std::fs::write(&script, SCRIPT).expect("write script");
    let mut commands = HashMap::new();
    commands.insert(
        "n1".to_string(),
        NodeCommand {
            ip: "10.0.0.1".into(),
            command: format!("sh {} {}", script.display(), dir.path().display()),
        },
    );
    (dir, ExternalClientFactory::new(commands))
}

fn inv(f: &str, value: Value, timeout_ms: u64) -> Invocation {
    Invocation {
        process: Process::Client(7),
        f: f.into(),
        value,
        key: Some(json!(3)),
        timeout: Duration::from_millis(timeout_ms),
    }
}

fn starts(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("starts"))
        .unwrap_or_default()
        .lines()
        .count()
}

/// Waits for the program's start line (it is written after the spawn).
async fn wait_starts(dir: &Path, n: usize) -> usize {
    for _ in 0..200 {
        if starts(dir) >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    starts(dir)
}

#[tokio::test]
async fn ok_fail_info_and_the_operation_fields() {
    let (dir, factory) = setup();
    let mut c = factory.client();
    c.open("n1").await.expect("open");

    let echo = c.invoke(&inv("echo", json!([1, 2]), 5000)).await;
    assert_eq!(echo.status, Status::Ok, "{echo:?}");
    assert_eq!(
        echo.value,
        json!({"process": 7, "f": "echo", "value": [1, 2], "key": 3, "node": "n1", "ip": "10.0.0.1"})
    );

    let read = c.invoke(&inv("read", Value::Null, 5000)).await;
    assert_eq!(read, Completion::ok(json!(42)));
    // No value in the answer: the invocation's own value.
    let write = c.invoke(&inv("write", json!(5), 5000)).await;
    assert_eq!(write, Completion::ok(json!(5)));
    let fail = c.invoke(&inv("fail", json!(5), 5000)).await;
    assert_eq!(fail, Completion::fail(json!(5), "nope"));
    assert_eq!(wait_starts(dir.path(), 1).await, 1, "one program so far");

    let info = c.invoke(&inv("info", json!(6), 5000)).await;
    assert_eq!(info, Completion::info(json!(6), "maybe"));
    // An info answer ends the program; the next operation starts another.
    let read = c.invoke(&inv("read", Value::Null, 5000)).await;
    assert_eq!(read.status, Status::Ok);
    assert_eq!(wait_starts(dir.path(), 2).await, 2);
    c.close().await.expect("close");
}

#[tokio::test]
async fn garbage_is_info_and_the_program_restarts() {
    let (dir, factory) = setup();
    let mut c = factory.client();
    c.open("n1").await.expect("open");
    let g = c.invoke(&inv("garbage", json!(1), 5000)).await;
    assert_eq!(g.status, Status::Info, "{g:?}");
    let err = g.error.expect("error").to_string();
    assert!(
        err.contains("garbage") && err.contains("this is not json"),
        "{err}"
    );
    assert_eq!(g.value, json!(1), "the attempted value is kept");

    let t = c.invoke(&inv("badtype", json!(1), 5000)).await;
    assert_eq!(t.status, Status::Info);
    assert!(
        t.error
            .expect("error")
            .to_string()
            .contains("expected ok, fail or info"),
        "the message says what was expected"
    );

    // As the runner does after info: close, open — a fresh program works.
    c.close().await.expect("close");
    c.open("n1").await.expect("reopen");
    let r = c.invoke(&inv("read", Value::Null, 5000)).await;
    assert_eq!(r, Completion::ok(json!(42)));
    assert_eq!(wait_starts(dir.path(), 3).await, 3);
}

#[tokio::test]
async fn a_crash_is_info_with_its_status_and_stderr() {
    let (_dir, factory) = setup();
    let mut c = factory.client();
    c.open("n1").await.expect("open");
    let x = c.invoke(&inv("crash", json!(9), 5000)).await;
    assert_eq!(x.status, Status::Info, "{x:?}");
    let err = x.error.expect("error").to_string();
    assert!(err.contains("exited without answering"), "{err}");
    assert!(err.contains("exit status: 3"), "{err}");
    assert!(err.contains("dying now"), "stderr is quoted: {err}");
    // Without a reopen, the next operation starts a program itself.
    let r = c.invoke(&inv("read", Value::Null, 5000)).await;
    assert_eq!(r, Completion::ok(json!(42)));
}

#[tokio::test]
async fn a_hang_is_info_within_the_timeout_and_its_children_die() {
    let (dir, factory) = setup();
    let mut c = factory.client();
    c.open("n1").await.expect("open");
    let t0 = std::time::Instant::now();
    let h = c.invoke(&inv("hang", json!(2), 600)).await;
    let took = t0.elapsed();
    assert_eq!(h.status, Status::Info, "{h:?}");
    assert!(
        h.error
            .expect("error")
            .to_string()
            .contains("did not answer"),
        "timeout message"
    );
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    // The program's own child (sleep 1234) was killed with its group.
    let pid: i32 = std::fs::read_to_string(dir.path().join("sleeper"))
        .expect("sleeper pid")
        .trim()
        .parse()
        .expect("pid");
    let mut gone = false;
    for _ in 0..100 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let alive = !stat.is_empty()
            && stat.contains("(sleep)")
            && !stat
                .rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'));
        if !alive {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(gone, "the hung program's child {pid} still runs");
    let r = c.invoke(&inv("read", Value::Null, 5000)).await;
    assert_eq!(r, Completion::ok(json!(42)), "restarted after the hang");
}

#[tokio::test]
async fn a_program_that_cannot_start_fails_operations_cleanly() {
    let mut commands = HashMap::new();
    commands.insert(
        "n1".to_string(),
        NodeCommand {
            ip: "10.0.0.1".into(),
            command: "/nonexistent/faultline-client".into(),
        },
    );
    let mut c = ExternalClientFactory::new(commands).client();
    // sh starts, then cannot exec: the first operation sees it exit.
    c.open("n1").await.expect("sh itself starts");
    let r = c.invoke(&inv("write", json!(1), 2000)).await;
    assert_ne!(r.status, Status::Ok, "{r:?}");
    let err = r.error.expect("error").to_string();
    assert!(
        err.contains("exit status: 127") || err.contains("gone"),
        "{err}"
    );
    assert!(c.open("n9").await.is_err(), "unknown node");
}

#[test]
fn answers_parse_strictly() {
    assert_eq!(
        parse_answer(r#"{"type":"ok","value":[1,2]}"#),
        Ok(Answer {
            status: Status::Ok,
            value: Some(json!([1, 2])),
            error: None
        })
    );
    assert_eq!(
        parse_answer(r#"{"type":"info","error":null}"#).map(|a| a.error),
        Ok(None)
    );
    assert!(parse_answer("[1]").unwrap_err().contains("object"));
    assert!(parse_answer("{}").unwrap_err().contains("no \"type\""));
    assert!(parse_answer(r#"{"type":"OK"}"#)
        .unwrap_err()
        .contains("expected ok, fail or info"));
    assert!(parse_answer("ok").unwrap_err().contains("not JSON"));
    assert_eq!(
        answer_deadline(Duration::from_secs(5)),
        Duration::from_millis(4750)
    );
}
