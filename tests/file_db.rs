//! A db described by a file, end to end: `faultline run --db
//! examples/etcd-files/etcd.toml` starts etcd on a local cluster through the
//! file's shell commands, drives it through the bash client program under
//! partitions and kills, and checks the history. Also: a broken db file is
//! refused before any cluster is touched, naming its line and column.
//! Needs root, etcd and etcdctl (installed when missing);
//! ignored unless built by root.
#![cfg(all(feature = "controller", feature = "cli"))]

mod cluster_support;

use cluster_support::{faultline, leftovers, CliCluster};
use std::path::{Path, PathBuf};
use std::process::Command;

const PREFIX: &str = "flfd";
const SUBNET: &str = "10.78.100.0/24";

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/etcd-files/etcd.toml")
}

/// The etcd processes left in a node's network namespace.
fn etcd_pids(ns: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "pids", ns])
        .output()
        .expect("ip netns pids");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "etcd")
        })
        .map(String::from)
        .collect()
}

#[test]
#[cfg_attr(
    not(faultline_root),
    ignore = "needs root: builds a local cluster and runs etcd"
)]
fn etcd_through_shell_commands_and_a_bash_client() {
    cluster_support::ensure(&[cluster_support::db("etcd")[0], cluster_support::ETCDCTL]);
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let results = tmp.path().join("results");
    let _down = CliCluster::new(&state, PREFIX);
    let (code, out, err) = faultline(
        &state,
        &[
            "cluster",
            "up",
            "--nodes",
            "3",
            "--subnet",
            SUBNET,
            "--name-prefix",
            PREFIX,
        ],
    );
    assert_eq!(code, 0, "{out}{err}");

    // A package the nodes need but this machine lacks is refused at once
    // with the command to run: a node has no DNS, so apt-get inside it
    // could only time out.
    let needs = tmp.path().join("needs.toml");
    std::fs::write(
        &needs,
        "packages = [\"faultline-test-no-such-package\"]\ndaemon = \"sleep 1000\"\nhealth = \"true\"\n",
    )
    .unwrap();
    let started = std::time::Instant::now();
    let (code, out, err) = faultline(&state, &["db", "up", "--db", needs.to_str().unwrap()]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(
        err.contains("local nodes cannot reach a package mirror: run `apt-get install -y faultline-test-no-such-package` here"),
        "{err}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );

    let db = example().display().to_string();
    // By hand first: up, the leader through the file's `primaries`, down.
    let (code, out, err) = faultline(&state, &["db", "up", "--db", &db]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("etcd healthy on 3 node(s)"), "{out}");
    let (code, out, err) = faultline(&state, &["db", "status", "--db", &db]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        ["n1", "n2", "n3"]
            .iter()
            .any(|n| out.contains(&format!("leader: {n}\n"))),
        "one leader named: {out}"
    );
    let (code, out, err) = faultline(&state, &["heal", "--db", &db]);
    assert_eq!(code, 0, "heal takes a db file:\n{out}{err}");
    assert!(out.contains("healed"), "{out}");
    let (code, out, err) = faultline(&state, &["db", "down", "--db", &db]);
    assert_eq!(code, 0, "{out}{err}");
    for i in 1..=3 {
        assert!(etcd_pids(&format!("{PREFIX}-n{i}")).is_empty(), "db down");
    }

    let res = results.display().to_string();
    let started = std::time::Instant::now();
    let (code, out, err) = faultline(
        &state,
        &[
            "run",
            "--db",
            &db,
            "--workload",
            "register",
            "--nemesis",
            "partition-leader,kill",
            "--nemesis-interval",
            "3",
            "--time-limit",
            "15",
            "--concurrency",
            "5",
            "--rate",
            "40",
            "--seed",
            "11",
            "--results",
            &res,
        ],
    );
    let took = started.elapsed();
    eprintln!("faultline run took {took:?}\n{out}\n{err}");
    assert_eq!(
        code, 0,
        "the verdict should be valid (exit 0):\n{out}\n{err}"
    );
    assert!(out.contains("linearizable: valid"), "{out}");

    let latest = results.join("latest");
    assert!(
        latest.ends_with("latest") && latest.join("test.json").exists(),
        "a run folder"
    );
    let test: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(latest.join("test.json")).unwrap()).unwrap();
    assert_eq!(test["db"], db);
    assert!(
        test["db_version"]
            .as_str()
            .unwrap_or("")
            .contains("etcd Version"),
        "the file's version command ran: {}",
        test["db_version"]
    );
    let results_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(latest.join("results.json")).unwrap())
            .unwrap();
    assert_eq!(results_json["valid"], "valid", "{results_json}");

    // Every line of the history parses; the client's answers became ok,
    // fail and info completions, every one of a known type.
    let history = latest.join("history.jsonl");
    let h = faultline::history::read_path(&history, None).expect("history reads");
    h.calls().expect("history pairs up");
    let text = std::fs::read_to_string(&history).unwrap();
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        if v["process"].is_u64() {
            let t = v["type"].as_str().expect("a type").to_string();
            assert!(
                ["invoke", "ok", "fail", "info"].contains(&t.as_str()),
                "{line}"
            );
            *counts
                .entry(format!("{}:{t}", v["f"].as_str().unwrap_or("?")))
                .or_default() += 1;
        }
    }
    eprintln!("completions by f and type: {counts:?}");
    let n = |k: &str| counts.get(k).copied().unwrap_or(0);
    assert!(n("read:ok") >= 20, "reads succeeded: {counts:?}");
    assert!(n("write:ok") >= 5, "writes succeeded: {counts:?}");
    assert!(n("cas:ok") + n("cas:fail") >= 5, "cas ran: {counts:?}");
    // The nemesis really killed and restarted members through the file's
    // daemon handling, and cut the network.
    let nemesis: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["process"] == "nemesis" && v["type"] != "invoke")
        .collect();
    for v in &nemesis {
        eprintln!("nemesis: {v}");
    }
    let done = |f: &str, field: &str| {
        nemesis
            .iter()
            .any(|v| v["f"] == f && v["value"][field].as_array().is_some_and(|a| !a.is_empty()))
    };
    assert!(done("kill", "killed"), "a kill went through");
    assert!(
        done("start", "started"),
        "killed members were started again"
    );
    // partition-leader found the leader through the file's `primaries`
    // command and cut it off alone.
    assert!(
        nemesis.iter().any(|v| v["f"] == "start-partition"
            && v["value"]["components"].as_array().is_some_and(|c| c
                .iter()
                .any(|part| part.as_array().is_some_and(|p| p.len() == 1)))),
        "the leader was isolated"
    );
    // Logs were collected from the daemon's log file.
    for i in 1..=3 {
        let log = latest.join(format!("nodes/n{i}/etcd.log"));
        assert!(log.exists(), "{} missing", log.display());
    }
    // The db was torn down: no etcd left in any node.
    for i in 1..=3 {
        let ns = format!("{PREFIX}-n{i}");
        assert!(etcd_pids(&ns).is_empty(), "etcd still runs in {ns}");
    }

    explicit_lifecycle(&state, tmp.path(), &results);

    let (code, out, err) = faultline(&state, &["cluster", "down", "--name-prefix", PREFIX]);
    assert_eq!(code, 0, "{out}{err}");
    let left = leftovers(PREFIX, &state, "10.78.100.");
    assert!(left.is_empty(), "left behind: {left:#?}");
}

/// The same etcd from a db file without `daemon`: the file's own start
/// (which detaches), kill, running, pause and resume commands, under the
/// kill and pause nemeses, on the cluster the first run left up.
fn explicit_lifecycle(state: &Path, tmp: &Path, results: &Path) {
    let client = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/etcd-files/client.sh");
    let file = tmp.join("etcd-explicit.toml");
    let pid = "$(cat {dir}/pid)";
    // A zombie (a dead etcd its new parent has not reaped) counts as gone.
    let alive = format!(
        "test -f {{dir}}/pid && kill -0 {pid} 2>/dev/null && ! grep -q '^State:.*Z' /proc/{pid}/status"
    );
    std::fs::write(
        &file,
        format!(
            r#"
port = 2379
member = "{{node}}=http://{{ip}}:2380"
start = "cd {{dir}}; {alive} && exit 0; setsid etcd --name {{node}} --data-dir {{dir}}/data --listen-peer-urls http://0.0.0.0:2380 --initial-advertise-peer-urls http://{{ip}}:2380 --listen-client-urls http://0.0.0.0:{{port}} --advertise-client-urls http://{{ip}}:{{port}} --initial-cluster {{initial_cluster}} --initial-cluster-state new >> {{dir}}/out.log 2>&1 < /dev/null & echo $! > {{dir}}/pid"
running = "{alive}"
kill = "if {alive}; then kill -9 {pid}; while {alive}; do sleep 0.05; done; fi; rm -f {{dir}}/pid"
pause = "kill -STOP {pid}"
resume = "kill -CONT {pid} 2>/dev/null; true"
health = "etcdctl --endpoints=http://{{ip}}:{{port}} --dial-timeout=1s --command-timeout=2s endpoint health"
logs = ["{{dir}}/out.log"]
client = "bash {client} {{node}} http://{{ip}}:{{port}}"
"#,
            client = client.display()
        ),
    )
    .unwrap();
    // This file has no `primaries`: kill and pause only nodes by count.
    let nemeses = tmp.join("nemeses");
    std::fs::create_dir_all(&nemeses).unwrap();
    for fault in ["kill", "pause"] {
        std::fs::write(
            nemeses.join(format!("{fault}-some.toml")),
            format!("fault = \"{fault}\"\ntargets = [\"one\", \"minority\"]\n"),
        )
        .unwrap();
    }
    let db = format!("file:{}", file.display());
    let res = results.display().to_string();
    let nem = nemeses.display().to_string();
    let (code, out, err) = faultline(
        state,
        &[
            "run",
            "--db",
            &db,
            "--workload",
            "register",
            "--nemeses-dir",
            &nem,
            "--nemesis",
            "kill-some,pause-some",
            "--nemesis-interval",
            "2",
            "--time-limit",
            "10",
            "--concurrency",
            "4",
            "--rate",
            "30",
            "--seed",
            "3",
            "--results",
            &res,
        ],
    );
    eprintln!("explicit lifecycle:\n{out}\n{err}");
    assert_eq!(code, 0, "valid expected:\n{out}\n{err}");
    let latest = results.join("latest");
    assert!(
        latest.display().to_string().contains("etcd-explicit")
            || std::fs::read_to_string(latest.join("test.json"))
                .unwrap_or_default()
                .contains("etcd-explicit"),
        "the second run"
    );
    let text = std::fs::read_to_string(latest.join("history.jsonl")).unwrap();
    let nemesis: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["process"] == "nemesis")
        .collect();
    for v in &nemesis {
        eprintln!("nemesis: {v}");
    }
    let did = |f: &str, field: &str| {
        nemesis
            .iter()
            .any(|v| v["f"] == f && v["value"][field].as_array().is_some_and(|a| !a.is_empty()))
    };
    assert!(
        did("kill", "killed"),
        "a kill went through the file's commands"
    );
    assert!(did("start", "started"), "the killed node was started again");
    assert!(
        did("pause", "paused"),
        "a pause went through the file's commands"
    );
    assert!(did("resume", "resumed"), "and a resume");
    assert!(
        latest.join("nodes/n1/out.log").exists(),
        "the file's log was collected"
    );
    for i in 1..=3 {
        let ns = format!("{PREFIX}-n{i}");
        assert!(etcd_pids(&ns).is_empty(), "etcd still runs in {ns}");
    }
}

#[test]
fn a_broken_db_file_is_refused_with_its_line_and_column() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("kv.toml");
    std::fs::write(
        &bad,
        "daemon = \"kvd --name {node}\"\nhealth = \"kvctl {ip}:{prot} health\"\n",
    )
    .unwrap();
    let state = tmp.path().join("state");
    let db = format!("file:{}", bad.display());
    let res = tmp.path().join("results").display().to_string();
    let (code, out, err) = faultline(
        &state,
        &["run", "--db", &db, "--no-install", "--results", &res],
    );
    assert_eq!(code, 3, "an error exit:\n{out}\n{err}");
    let want = format!("{}:2:22: health: unknown variable {{prot}}", bad.display());
    assert!(err.contains(&want), "expected {want:?} in:\n{err}");
    assert!(!tmp.path().join("results").exists(), "nothing ran");

    // A file without a client program, and no --client.
    std::fs::write(&bad, "daemon = \"kvd\"\nhealth = \"true\"\n").unwrap();
    let (code, _, err) = faultline(
        &state,
        &["run", "--db", &db, "--no-install", "--results", &res],
    );
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("no client program"), "{err}");
    // --client is checked against the file's variables too.
    let (code, _, err) = faultline(
        &state,
        &[
            "run",
            "--db",
            &db,
            "--client",
            "prog {nod}",
            "--no-install",
            "--results",
            &res,
        ],
    );
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("unknown variable {nod}"), "{err}");
    // And only db files take one.
    let (code, _, err) = faultline(
        &state,
        &[
            "run",
            "--db",
            "etcd",
            "--client",
            "prog",
            "--no-install",
            "--results",
            &res,
        ],
    );
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("client program is for db files"), "{err}");
}
