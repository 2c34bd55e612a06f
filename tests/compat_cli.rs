//! `faultline check` without `--model` on histories in the shapes other
//! tools write (Jepsen's `history.edn` of its classic workloads, Elle's
//! transactions, Knossos' cas-register histories): each is judged by the
//! checker of its workload, guessed from its functions and values, and the
//! verdict says so. docs/compatibility.md lists the public histories these
//! shapes come from.
#![cfg(feature = "cli")]

use std::path::Path;
use std::process::Command;

fn faultline(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(args)
        .output()
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p.to_string_lossy().to_string()
}

#[test]
fn a_counter_history_is_checked_as_a_counter_not_a_set() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Two adds of 1; a read during the second sees 3, more than was ever
    // added.
    let h = write(
        dir.path(),
        "counter.edn",
        "{:process 0, :type :invoke, :f :add, :value 1}
{:process 0, :type :ok, :f :add, :value 1}
{:process 0, :type :invoke, :f :add, :value 1}
{:process 1, :type :invoke, :f :read, :value nil}
{:process 1, :type :ok, :f :read, :value 3}
{:process 0, :type :ok, :f :add, :value 1}
",
    );
    let (code, out) = faultline(&["check", &h]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(": invalid (counter)\n"), "{out}");
    assert!(
        out.contains("model guessed from the functions add, read, reads returning numbers"),
        "{out}"
    );
    assert!(
        out.contains(
            "process 1's read (events 3 to 4) read 3, but only values from 1 to 2 were possible"
        ),
        "{out}"
    );
}

#[test]
fn jepsens_long_fork_reads_and_writes_are_checked_as_a_long_fork() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Keys 5 and 6 written once each; one read sees only 5, the other
    // only 6. Read as a register, these reads of micro-op lists would be
    // judged as reads of a value nobody wrote.
    let h = write(
        dir.path(),
        "long-fork.edn",
        "{:process 0, :type :invoke, :f :write, :value [[:w 5 1]]}
{:process 1, :type :invoke, :f :write, :value [[:w 6 1]]}
{:process 0, :type :ok, :f :write, :value [[:w 5 1]]}
{:process 1, :type :ok, :f :write, :value [[:w 6 1]]}
{:process 2, :type :invoke, :f :read, :value [[:r 5 nil] [:r 6 nil]]}
{:process 3, :type :invoke, :f :read, :value [[:r 6 nil] [:r 5 nil]]}
{:process 2, :type :ok, :f :read, :value [[:r 5 1] [:r 6 nil]]}
{:process 3, :type :ok, :f :read, :value [[:r 6 1] [:r 5 nil]]}
",
    );
    let (code, out) = faultline(&["check", &h]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(": invalid (long-fork)\n"), "{out}");
    assert!(
        out.contains("process 2's read (events 4 to 6) saw the write of key 5 but not of key 6, while process 3's read (events 5 to 7) saw key 6 but not key 5"),
        "{out}"
    );
}

#[test]
fn elle_transactions_are_checked_by_their_micro_operations() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Write skew, in Elle's shape (no :f, no :process): each transaction
    // reads the key the other appends to and sees it empty.
    let h = write(
        dir.path(),
        "skew.edn",
        "{:type :ok, :value [[:r :a []] [:append :b 1]]}
{:type :ok, :value [[:r :b []] [:append :a 1]]}
",
    );
    let (code, out) = faultline(&["check", &h]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(": invalid (list-append, 2 transactions"),
        "{out}"
    );
    assert!(
        out.contains("model guessed from transactions of micro-ops append, r"),
        "{out}"
    );
    assert!(out.contains("anomalies: G2-item (1)"), "{out}");
}

#[test]
fn elle_completions_only_with_processes_are_read_not_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Elle's README shape: only :ok ops, each with its :process. Process
    // 2 read a list holding 7 and then 9, but 9's appender read the list
    // empty first, after 7 was appended by a transaction that saw 9: G1c.
    let h = write(
        dir.path(),
        "oks.edn",
        "{:process 0, :type :ok, :value [[:append :k 7] [:r :j [9]]]}
{:process 1, :type :ok, :value [[:append :k 9] [:append :j 9]]}
{:process 2, :type :ok, :value [[:r :k [7 9]]]}
",
    );
    for args in [vec!["check"], vec!["check", "--model", "list-append"]] {
        let (code, out) = faultline(&[args.as_slice(), &[h.as_str()]].concat());
        assert_eq!(code, 1, "{args:?}: {out}");
        assert!(
            out.contains(": invalid (list-append, 3 transactions"),
            "{out}"
        );
        assert!(out.contains("anomalies: G1c (1)"), "{out}");
        assert!(out.contains("not read-committed"), "{out}");
    }
}

#[test]
fn where_writes_fail_a_failed_cas_is_not_read_as_a_mismatch() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The register holds 4 when process 1's cas from 4 fails. Process 2's
    // write fails too: in this history fail means refused, so the cas may
    // never have run.
    let h = write(
        dir.path(),
        "refused.edn",
        "[{:process 0, :type :invoke, :f :write, :value 4}
 {:process 0, :type :ok, :f :write, :value 4}
 {:process 1, :type :invoke, :f :cas, :value [4 2]}
 {:process 1, :type :fail, :f :cas, :value [4 2]}
 {:process 2, :type :invoke, :f :write, :value 3}
 {:process 2, :type :fail, :f :write, :value 3}
 {:process 0, :type :invoke, :f :read, :value nil}
 {:process 0, :type :ok, :f :read, :value 4}]
",
    );
    let (code, out) = faultline(&["check", &h]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(": valid (cas-register-knossos, 4 ops"),
        "{out}"
    );
    assert!(
        out.contains("a failed write found no other value, so here fail means refused"),
        "{out}"
    );
    // Named, the mismatch reading holds, and finds the cas impossible.
    let (code, out) = faultline(&["check", "--model", "cas-register", &h]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("cas from 4 failed (found another value), but every order of the operations before it leaves 4"),
        "{out}"
    );
}

#[test]
fn a_reader_that_goes_away_leaves_the_verdict_as_the_exit_code() {
    // `faultline check ... | head -1`: once standard output is closed,
    // printing stops; the exit code is still the verdict, with no panic.
    let dir = tempfile::tempdir().expect("tempdir");
    let h = write(
        dir.path(),
        "stale.edn",
        "{:process 0, :type :invoke, :f :write, :value 1}
{:process 0, :type :ok, :f :write, :value 1}
{:process 1, :type :invoke, :f :read, :value nil}
{:process 1, :type :ok, :f :read, :value 2}
",
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["check", &h])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("runs");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("waits");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn without_model_a_flag_is_weighed_against_each_files_guess() {
    let dir = tempfile::tempdir().expect("tempdir");
    let h = write(
        dir.path(),
        "wr.edn",
        "{:process 0, :type :ok, :value [[:w :x 1]]}
{:process 1, :type :ok, :value [[:r :x 1]]}
",
    );
    // A transactional flag fits the guessed rw-register...
    let (code, out) = faultline(&["check", "--consistency-model", "serializable", &h]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(": valid (rw-register, 2 transactions, consistency model serializable"),
        "{out}"
    );
    // ...a bank flag does not, and the file is bad input naming the guess.
    let (code, out) = faultline(&["check", "--total", "5", &h]);
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("--total and --negative-balances apply to --model bank only, but this history's model was guessed as rw-register (from transactions of micro-ops r, w); name it with --model"),
        "{out}"
    );
}
