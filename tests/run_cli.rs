//! `faultline run` end to end, as a user runs it: a real etcd on a local
//! cluster, clients, a partition nemesis — and Ctrl-C in the middle of a
//! partition. Afterwards no partition rule is left on any node, every etcd
//! member runs (none stopped), the history on disk pairs up and checks, and
//! `faultline analyze` agrees. Needs root and etcd (installed when missing);
//! ignored unless built by root.
#![cfg(all(feature = "controller", feature = "cli"))]

mod cluster_support;

use cluster_support::{faultline, leftovers, CliCluster};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
#[cfg_attr(
    not(faultline_root),
    ignore = "needs root: builds a local cluster and runs etcd"
)]
fn ctrl_c_during_a_partition_heals_everything_and_keeps_the_history() {
    cluster_support::ensure(&cluster_support::db("etcd"));
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let results = tmp.path().join("results");
    let _down = CliCluster::new(&state, "flrun").db("etcd");
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
    // Interrupted: incomplete (2), or invalid (1) if an anomaly was found
    // in what ran; never valid.
    assert!(code == 1 || code == 2, "exit {code}\n{stdout}\n{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    // stderr is a pipe here, not a terminal: plain lines, no escape codes
    // (no live progress line, no coloured log levels).
    assert!(stderr.contains("running register for 60 s"), "{stderr}");
    assert!(
        !stderr.contains('\x1b'),
        "escape codes in a pipe: {stderr:?}"
    );
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
    let verdict = results_json["valid"].as_str().unwrap_or_default();
    assert!(
        verdict == "incomplete" || verdict == "invalid",
        "{results_json}"
    );
    let reason = results_json["incomplete_reason"]
        .as_str()
        .unwrap_or_default();
    assert!(reason.contains("interrupted"), "{results_json}");
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
    assert!(aout.contains("run: incomplete: interrupted"), "{aout}");

    let (code, out, err) = faultline(&state, &["db", "down"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = faultline(&state, &["cluster", "down"]);
    assert_eq!(code, 0, "{out}{err}");
    let left = leftovers("flrun", &state, "10.78.60.");
    assert!(left.is_empty(), "left behind: {left:#?}");
}

/// `faultline run` on the local cluster of `state`, its results under
/// `results`, for `seconds`.
fn start_run(state: &Path, results: &Path, seconds: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args([
            "run",
            "--workload",
            "register",
            "--nemesis",
            "none",
            "--time-limit",
            seconds,
            "--concurrency",
            "2",
            "--rate",
            "50",
            "--leave-db-running",
            "--results",
        ])
        .arg(results)
        .env("FAULTLINE_STATE_DIR", state)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start faultline run")
}

fn wait_for(what: &str, within: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !ready() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn results_of(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).expect("results.json"))
        .expect("results.json is JSON")
}

/// A signal during the db set-up ends the run incomplete (exit 2), saying
/// why, and analyze keeps it so; while a run holds the cluster, a second
/// one is refused at once, naming the holder, and the first goes on; a db
/// whose set-up fails ends the run incomplete too.
#[test]
#[cfg_attr(
    not(faultline_root),
    ignore = "needs root: builds a local cluster and runs etcd"
)]
fn an_interrupted_or_failed_set_up_is_incomplete_and_a_second_run_is_refused() {
    cluster_support::ensure(&cluster_support::db("etcd"));
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let _down = CliCluster::new(&state, "flset").db("etcd");
    let (code, out, err) = faultline(
        &state,
        &[
            "cluster",
            "up",
            "--nodes",
            "3",
            "--subnet",
            "10.78.61.0/24",
            "--name-prefix",
            "flset",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");

    // SIGINT while the db is being set up: test.json is written, the
    // history (made once the db is up) is not.
    let results = tmp.path().join("results-a");
    let latest = results.join("latest");
    let child = start_run(&state, &results, "30");
    wait_for("the run's folder", Duration::from_secs(60), || {
        latest.join("test.json").is_file()
    });
    assert!(
        !latest.join("history.jsonl").exists(),
        "still setting up when interrupted"
    );
    // SAFETY: kill with a valid pid and signal has no memory effects.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().expect("wait for faultline run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(stdout.contains("incomplete:"), "{stdout}");
    let r = results_of(&latest);
    assert_eq!(r["valid"], "incomplete", "{r}");
    assert_eq!(r["interrupted"], true, "{r}");
    assert_eq!(
        r["incomplete_reason"], "interrupted (SIGINT or SIGTERM) before any operation ran",
        "{r}"
    );
    let junit = tmp.path().join("junit.xml");
    let (acode, aout, aerr) = faultline(
        &state,
        &[
            "analyze",
            latest.to_str().unwrap(),
            "--junit",
            junit.to_str().unwrap(),
        ],
    );
    assert_eq!(acode, 2, "analyze keeps it incomplete:\n{aout}{aerr}");
    assert_eq!(results_of(&latest)["valid"], "incomplete");
    let xml = std::fs::read_to_string(&junit).expect("junit");
    assert!(xml.contains("type=\"incomplete\""), "{xml}");

    // A run that holds the cluster; a second is refused within seconds.
    let results_b = tmp.path().join("results-b");
    let mut first = start_run(&state, &results_b, "20");
    wait_for("the first run's workers", Duration::from_secs(90), || {
        std::fs::read_to_string(results_b.join("latest/history.jsonl"))
            .is_ok_and(|h| h.contains("\"ok\""))
    });
    let t0 = Instant::now();
    let (code, out, err) = faultline(
        &state,
        &[
            "run",
            "--workload",
            "register",
            "--time-limit",
            "5",
            "--results",
            tmp.path().join("results-c").to_str().unwrap(),
        ],
    );
    assert_eq!(code, 3, "refused:\n{out}{err}");
    assert!(t0.elapsed() < Duration::from_secs(10), "refused at once");
    assert!(
        err.contains("in use by `faultline run etcd-register-none")
            && err.contains(&format!("pid {}", first.id())),
        "names the holder: {err}"
    );
    assert!(
        !tmp.path().join("results-c").exists(),
        "a refused run leaves no results"
    );
    assert!(
        first.try_wait().expect("try_wait").is_none(),
        "the first run goes on"
    );
    let out = first.wait_with_output().expect("wait for the first run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");

    // A db whose set-up fails: incomplete, with the reason, not an error
    // and never valid.
    let db_file = tmp.path().join("broken.toml");
    std::fs::write(
        &db_file,
        "name = \"broken\"\nport = 7000\ninstall = \"echo no package for this >&2; exit 7\"\n\
         daemon = \"sleep 600\"\nhealth = \"true\"\nclient = \"cat\"\n",
    )
    .expect("db file");
    let results_d = tmp.path().join("results-d");
    let (code, out, err) = faultline(
        &state,
        &[
            "run",
            "--db",
            db_file.to_str().unwrap(),
            "--workload",
            "register",
            "--time-limit",
            "5",
            "--results",
            results_d.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 2, "incomplete:\n{out}{err}");
    let r = results_of(&results_d.join("latest"));
    assert_eq!(r["valid"], "incomplete", "{r}");
    let why = r["incomplete_reason"].as_str().unwrap_or_default();
    assert!(
        why.starts_with("the db set-up failed: ") && why.contains("no package for this"),
        "{r}"
    );
    let latest_d = results_d.join("latest").display().to_string();
    let (acode, aout, aerr) = faultline(&state, &["analyze", &latest_d]);
    assert_eq!(acode, 2, "analyze keeps it incomplete:\n{aout}{aerr}");
}

/// `faultline run` with `args` on the local cluster of `state`, results
/// under `results`: its exit code, stdout and stderr, and how long it took.
fn run_with(state: &Path, results: &Path, args: &[&str]) -> (i32, String, String, Duration) {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .arg("run")
        .args(args)
        .arg("--results")
        .arg(results)
        .env("FAULTLINE_STATE_DIR", state)
        .output()
        .expect("faultline run");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        started.elapsed(),
    )
}

/// An unknown nemesis name, and a fault the local cluster cannot do, are
/// refused (exit 3) before anything is built or installed: at once, with
/// every valid name or the reason, and no cluster state or run folder.
/// Needs no root: nothing is touched.
#[test]
fn a_bad_nemesis_is_refused_before_anything_is_built() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let results = tmp.path().join("results");
    let (code, out, err, took) = run_with(
        &state,
        &results,
        &["--nemesis", "bogus", "--time-limit", "5"],
    );
    assert_eq!(code, 3, "{out}{err}");
    assert!(took < Duration::from_secs(2), "took {took:?}: {err}");
    for name in [
        "clock",
        "kill",
        "packet",
        "partition",
        "partition-leader",
        "partition-one",
        "pause",
    ] {
        assert!(err.contains(name), "{name} not listed: {err}");
    }
    assert!(err.contains("\"bogus\""), "{err}");
    assert!(!err.contains("bogus.toml"), "no file to name: {err}");
    assert!(!err.contains("building"), "{err}");

    // Clock faults on the local cluster with etcd: refused, with the
    // reason (libfaketime cannot move a static Go binary's clock).
    let (code, out, err, took) = run_with(
        &state,
        &results,
        &["--nemesis", "clock", "--time-limit", "5"],
    );
    assert_eq!(code, 3, "{out}{err}");
    assert!(took < Duration::from_secs(2), "took {took:?}: {err}");
    assert!(
        err.contains("clock")
            && err.contains("libfaketime")
            && err.contains("etcd")
            && err.contains("partition, kill"),
        "the reason and what works: {err}"
    );
    // Nothing was built, nothing was run.
    let built = std::fs::read_dir(&state).map(|d| d.count()).unwrap_or(0);
    assert_eq!(built, 0, "cluster state written in {}", state.display());
    assert!(!results.exists(), "a run folder was made");
}

/// The README's first command — `--nemesis partition,kill --time-limit
/// 30`, the default interval — here in 15 s: the schedule fits a cycle of
/// both kinds into the time limit, so results.json records at least one
/// partition and one kill that took effect, with their windows, and
/// analyze computes the same.
#[test]
#[cfg_attr(
    not(faultline_root),
    ignore = "needs root: builds a local cluster and runs etcd"
)]
fn partition_and_kill_both_take_effect_in_a_short_run() {
    cluster_support::ensure(&cluster_support::db("etcd"));
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let results = tmp.path().join("results");
    let _down = CliCluster::new(&state, "flcov").db("etcd");
    let (code, out, err) = faultline(
        &state,
        &[
            "cluster",
            "up",
            "--nodes",
            "3",
            "--subnet",
            "10.78.62.0/24",
            "--name-prefix",
            "flcov",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err, _) = run_with(
        &state,
        &results,
        &[
            "--workload",
            "register",
            "--nemesis",
            "partition,kill",
            "--time-limit",
            "15",
            "--concurrency",
            "4",
            "--rate",
            "50",
            "--seed",
            "3",
            "--leave-db-running",
        ],
    );
    assert_eq!(code, 0, "valid expected:\n{out}\n{err}");
    let latest = results.join("latest");
    let r = results_of(&latest);
    for kind in ["partition", "kill"] {
        let f = &r["faults"][kind];
        assert_eq!(f["requested"], true, "{r}");
        assert!(f["took_effect"].as_u64().unwrap_or(0) >= 1, "{kind}: {r}");
        let windows = f["windows"].as_array().cloned().unwrap_or_default();
        assert!(!windows.is_empty(), "{kind}: {r}");
        let end = windows[0][1].as_f64().unwrap_or(0.0);
        assert!(
            end <= 16.0,
            "{kind}'s first window ends within the run: {r}"
        );
    }
    let test: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(latest.join("test.json")).unwrap()).unwrap();
    assert_eq!(test["faults_requested"]["kill"], "kill", "{test}");
    let faults = r["faults"].clone();
    let (acode, aout, aerr) = faultline(&state, &["analyze", &latest.display().to_string()]);
    assert_eq!(acode, 0, "{aout}{aerr}");
    assert_eq!(results_of(&latest)["faults"], faults, "analyze agrees");
}
