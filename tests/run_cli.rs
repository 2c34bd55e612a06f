//! `faultline run` end to end, as a user runs it: a real etcd on a local
//! cluster, clients, a partition nemesis — and Ctrl-C in the middle of a
//! partition. Afterwards no partition rule is left on any node, every etcd
//! member runs (none stopped), the history on disk pairs up and checks, and
//! `faultline analyze` agrees. Needs root and etcd; prints SKIP otherwise.
#![cfg(all(feature = "controller", feature = "cli"))]

mod cluster_support;

use cluster_support::{faultline, leftovers, skip_reason};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Down(std::path::PathBuf);
impl Drop for Down {
    fn drop(&mut self) {
        faultline(&self.0, &["db", "down"]);
        faultline(&self.0, &["cluster", "down", "--name-prefix", "flrun"]);
    }
}

fn in_node(node: &str, cmd: &str) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", node, "sh", "-c", cmd])
        .output()
        .expect("ip netns exec");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The state letters (R, S, T, ...) of the etcd processes in a node's
/// network namespace.
fn etcd_states(ns: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "pids", ns])
        .output()
        .expect("ip netns pids");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|pid| {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
            if comm.trim() != "etcd" {
                return None;
            }
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let after = stat.rsplit_once(") ")?.1;
            after.split_whitespace().next().map(str::to_string)
        })
        .collect()
}

#[test]
fn ctrl_c_during_a_partition_heals_everything_and_keeps_the_history() {
    if let Some(why) = skip_reason(true) {
        eprintln!("SKIP ctrl_c_during_a_partition_heals_everything_and_keeps_the_history: {why}");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let results = tmp.path().join("results");
    let _down = Down(state.clone());
    let (code, out, err) = faultline(
        &state,
        &[
            "cluster",
            "up",
            "--nodes",
            "3",
            "--subnet",
            "10.78.60.0/24",
            "--name-prefix",
            "flrun",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");

    // A partition starts at 2 s and lasts 2 s, again and again.
    let child = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args([
            "run",
            "--workload",
            "register",
            "--nemesis",
            "partition",
            "--nemesis-interval",
            "2",
            "--time-limit",
            "60",
            "--concurrency",
            "4",
            "--rate",
            "100",
            "--seed",
            "5",
            "--leave-db-running",
            "--results",
        ])
        .arg(&results)
        .env("FAULTLINE_STATE_DIR", &state)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start faultline run");

    // Wait until a partition is in force, then interrupt.
    let history = results.join("latest").join("history.jsonl");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(
            Instant::now() < deadline,
            "no partition started within 120 s"
        );
        let text = std::fs::read_to_string(&history).unwrap_or_default();
        let started = text
            .lines()
            .filter(|l| l.contains("\"start-partition\""))
            .count();
        // An invocation and its completion: the rules are in place.
        if started >= 2 && started % 2 == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let rules: String = ["flrun-n1", "flrun-n2", "flrun-n3"]
        .iter()
        .map(|n| in_node(n, "iptables -S"))
        .collect();
    assert!(
        rules.contains("DROP"),
        "the partition should be in force: {rules}"
    );
    // SAFETY: kill with a valid pid and signal has no memory effects.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().expect("wait for faultline run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let code = out.status.code().unwrap_or(-1);
    assert!((0..=2).contains(&code), "exit {code}\n{stdout}\n{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(stdout.contains("interrupted"), "{stdout}");

    // No partition rule left, every member running and not stopped.
    for n in ["flrun-n1", "flrun-n2", "flrun-n3"] {
        let rules = in_node(n, "iptables -S");
        assert!(!rules.contains("DROP"), "{n} still has rules:\n{rules}");
        let states = etcd_states(n);
        assert_eq!(states.len(), 1, "{n}: one etcd expected, states {states:?}");
        assert_ne!(states[0], "T", "{n}: etcd left stopped");
    }

    // The history is intact: it pairs, it checks, and analyze agrees.
    let h = faultline::history::read_path(&history, None).expect("history reads");
    h.calls().expect("history pairs up");
    assert!(h.ops.iter().any(|o| o.f == "heal"), "the heal is recorded");
    let results_json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(results.join("latest/results.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(results_json["interrupted"], true);
    // The report artifacts (docs/reports.md) are written for an
    // interrupted run too, and the partition shows as a fault window.
    let report = std::fs::read_to_string(results.join("latest/report.html")).expect("report.html");
    assert!(report.contains("data-checker=\"linearizable\""), "{report}");
    let timeline =
        std::fs::read_to_string(results.join("latest/timeline.html")).expect("timeline.html");
    assert!(
        timeline.contains("start-partition"),
        "fault window in the timeline"
    );
    let latest = results.join("latest").display().to_string();
    let (acode, aout, aerr) = faultline(&state, &["analyze", &latest]);
    assert_eq!(acode, code, "analyze disagrees:\n{aout}{aerr}");

    let (code, out, err) = faultline(&state, &["db", "down"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = faultline(&state, &["cluster", "down"]);
    assert_eq!(code, 0, "{out}{err}");
    let left = leftovers("flrun", &state, "10.78.60.");
    assert!(left.is_empty(), "left behind: {left:#?}");
}
