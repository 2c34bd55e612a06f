//! Membership changes on etcd on the local cluster, seen from outside the
//! nemesis: after `remove-member` etcd's own member list (asked over HTTP
//! from this machine) has one member fewer and the removed node serves
//! nothing; after `add-member` it has every node again, each healthy and
//! serving what was written; a controller killed with SIGKILL while a
//! member is removed leaves it removed, and `faultline heal`, a fresh
//! process, adds it back. A `faultline run` with `--nemesis membership`
//! on etcd with linearizable reads stays valid, with the member lists of
//! its history showing the shrink and the growth. And a db without a
//! membership API (Redis) is refused before anything is built.
//!
//! The cluster tests need root (ignored otherwise) and install etcd when
//! missing.
#![cfg(all(feature = "controller", feature = "cli"))]

mod cluster_support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster_support::{b64, etcd_put, faultline, http, CliCluster, Teardown};
use faultline::cluster::{local, Node};
use faultline::db::{self, Db};
use faultline::nemesis::{default_record_path, Fault, Nemeses, Nemesis, NemesisOptions, Targets};
use faultline::system::etcd::{Etcd, EtcdOptions};
use serde_json::{json, Value};

/// etcd's member list as `node` answers it over HTTP: (name, peer URL)
/// of each member (the name is empty for one added but not started).
fn member_list(node: &Node) -> Result<Vec<(String, String)>, String> {
    let (code, body) = http(node.host(), 2379, "POST", "/v3/cluster/member/list", "{}")?;
    if code != 200 {
        return Err(format!("member list on {}: {code} {body}", node.name()));
    }
    let v: Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
    Ok(v["members"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .map(|m| {
                    (
                        m["name"].as_str().unwrap_or("").to_string(),
                        m["peerURLs"][0].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default())
}

fn healthy(node: &Node) -> bool {
    matches!(http(node.host(), 2379, "GET", "/health", ""), Ok((200, b)) if b.contains("\"true\""))
}

/// A linearizable read of `key` on `node`: its base64 value, if any.
fn get(node: &Node, key: &str) -> Result<Option<String>, String> {
    let body = format!(r#"{{"key":"{}"}}"#, b64(key));
    let (code, answer) = http(node.host(), 2379, "POST", "/v3/kv/range", &body)?;
    if code != 200 {
        return Err(format!("range on {}: {code} {answer}", node.name()));
    }
    let v: Value = serde_json::from_str(&answer).map_err(|e| e.to_string())?;
    Ok(v.pointer("/kvs/0/value")
        .and_then(|x| x.as_str())
        .map(String::from))
}

fn wait_for(what: &str, within: Duration, mut ready: impl FnMut() -> bool) {
    let t = Instant::now();
    while !ready() {
        assert!(t.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The names of the started members `via` lists (sorted).
fn started_members(via: &Node) -> Vec<String> {
    let mut names: Vec<String> = member_list(via)
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .map(|(name, _)| name)
        .filter(|n| !n.is_empty())
        .collect();
    names.sort();
    names
}

/// Every node a started member, each healthy and serving `key` = `value`.
fn assert_whole(nodes: &[Node], key: &str, value: &str) {
    wait_for("every node healthy", Duration::from_secs(30), || {
        nodes.iter().all(healthy)
    });
    for n in nodes {
        let names = started_members(n);
        assert_eq!(names, ["n1", "n2", "n3"], "as {} lists them", n.name());
        assert_eq!(
            get(n, key).unwrap_or_else(|e| panic!("{e}")),
            Some(b64(value)),
            "{} serves what was written",
            n.name()
        );
    }
}

/// Runs `fault` through `etcd` from a separate controller process (the
/// `hold_fault` example, built beside this test), waits until it took
/// effect, kills that process with SIGKILL, and answers what it did.
fn inject_then_sigkill_controller(state_dir: &Path, fault: &Fault) -> Value {
    let exe = std::env::current_exe().expect("test binary");
    let controller = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary's target folder")
        .join("examples/hold_fault");
    assert!(
        controller.exists(),
        "{} is missing: `cargo test` builds it; when running this file alone, \
         `cargo build --example hold_fault` first",
        controller.display()
    );
    let mut child = Command::new(controller)
        .arg(state_dir)
        .arg(json!({"f": fault.f(), "value": fault.value()}).to_string())
        .arg(env!("CARGO_BIN_EXE_faultline"))
        .arg("etcd")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the controller");
    let stdout = child.stdout.take().expect("its stdout");
    let mut done = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read the controller");
        if let Some((_, v)) = line.split_once("INJECTED ") {
            done = Some(serde_json::from_str(v).expect("its answer"));
            break;
        }
    }
    // SAFETY: kill with the child's pid and a valid signal.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().expect("reap the controller");
    done.expect("the controller removed a member before it was killed")
}

/// Kills etcd and wipes it on every node when dropped (before the cluster
/// goes), so a failing test leaves nothing running.
struct EtcdDown(Etcd, Vec<Node>);
impl Drop for EtcdDown {
    fn drop(&mut self) {
        for n in &self.1 {
            let _ = self.0.kill(n);
            let _ = self.0.wipe(n);
        }
    }
}

/// Puts `key` = `value` through `node`, retried for 30 s: a cluster that
/// just lost a member (its leader, perhaps) elects one first, and a put sent
/// during the election may wait out the client's 5 s.
fn put_retried(node: &faultline::cluster::Node, key: &str, value: &str) {
    let t = Instant::now();
    loop {
        match etcd_put(node, key, value) {
            Ok(()) => return,
            Err(e) if t.elapsed() < Duration::from_secs(30) => {
                eprintln!("put {key} on {}, retried: {e}", node.name());
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => panic!("put {key} on {} for 30 s: {e}", node.name()),
        }
    }
}

#[test]
#[cfg_attr(
    not(faultline_root),
    ignore = "needs root: builds a local cluster and runs etcd"
)]
fn a_member_is_removed_and_added_back_and_heal_restores_it_after_a_killed_controller() {
    cluster_support::ensure(&cluster_support::db("etcd"));
    let guard = Teardown::new("flmb", "10.78.190.0/24", 3);
    let state_dir = guard.state_dir();
    let cluster = local::up(&guard.spec).expect("cluster up");
    let nodes = cluster.nodes().to_vec();
    let etcd = Etcd::new(EtcdOptions::default(), &nodes);
    let _down = EtcdDown(etcd.clone(), nodes.clone());
    db::setup(&etcd, &cluster, Duration::from_secs(30)).expect("etcd setup");
    let record = default_record_path(&cluster).expect("the local cluster keeps a record");
    let nem = Nemeses::new(
        cluster.clone(),
        Some(Arc::new(etcd.clone()) as Arc<dyn Db>),
        NemesisOptions {
            seed: 3,
            record: Some(record.clone()),
            ..NemesisOptions::default()
        },
    );
    put_retried(&nodes[0], "before", "1");

    // Shrink: etcd lists two members, and the removed node serves nothing.
    let done = nem
        .invoke(&Fault::RemoveMember(Targets::One))
        .expect("remove-member");
    let removed = done["removed"]
        .as_str()
        .expect("the node removed")
        .to_string();
    let others: Vec<Node> = nodes
        .iter()
        .filter(|n| n.name() != removed)
        .cloned()
        .collect();
    let mut left: Vec<String> = ["n1", "n2", "n3"]
        .into_iter()
        .filter(|n| *n != removed)
        .map(String::from)
        .collect();
    left.sort();
    for n in &others {
        assert_eq!(started_members(n), left, "as {} lists them", n.name());
    }
    let mut before: Vec<String> = serde_json::from_value(done["members-before"].clone())
        .unwrap_or_else(|e| panic!("members-before: {e}: {done}"));
    before.sort();
    assert_eq!(before, ["n1", "n2", "n3"], "{done}");
    assert_eq!(
        done["members-after"].as_array().map(Vec::len),
        Some(2),
        "{done}"
    );
    let gone = nodes.iter().find(|n| n.name() == removed).expect("node");
    assert!(!healthy(gone), "{removed} still serves after its removal");
    let view = nem.invoke(&Fault::MemberList).expect("member-list");
    assert_eq!(view["members"].as_array().map(Vec::len), Some(2), "{view}");
    // A second removal would leave 1 of 3: refused, naming why.
    let e = nem
        .invoke(&Fault::RemoveMember(Targets::One))
        .expect_err("a second removal")
        .to_string();
    assert!(
        e.contains("remove-member refused") && e.contains(&removed) && e.contains("not a member"),
        "{e}"
    );
    // Writes go on while the cluster is two.
    put_retried(&others[0], "during", "2");

    // Grow: every node a member again, serving what was written.
    let done = nem.invoke(&Fault::AddMember).expect("add-member");
    assert_eq!(done["added"], json!([removed]), "{done}");
    assert_whole(&nodes, "during", "2");
    let view = nem.invoke(&Fault::MemberList).expect("member-list");
    assert_eq!(view["members"].as_array().map(Vec::len), Some(3), "{view}");

    // A controller killed while the leader is removed: the removal holds
    // and is recorded; `faultline heal`, a fresh process, adds it back.
    let done = inject_then_sigkill_controller(&state_dir, &Fault::RemoveMember(Targets::Primaries));
    let leader = done["removed"]
        .as_str()
        .expect("the leader removed")
        .to_string();
    let alive = nodes.iter().find(|n| n.name() != leader).expect("a member");
    assert_eq!(started_members(alive).len(), 2, "after the controller died");
    let text = std::fs::read_to_string(&record).expect("the record");
    let recorded: Value = serde_json::from_str(&text).expect("record JSON");
    assert_eq!(recorded["membership"], json!([leader]), "{text}");
    let (code, out, err) = faultline(&state_dir, &["heal"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("\"added\":[\"") && out.contains(&leader),
        "{out}"
    );
    assert_whole(&nodes, "before", "1");
    let text = std::fs::read_to_string(&record).unwrap_or_default();
    assert!(!text.contains("membership"), "still recorded: {text}");
}

/// The member counts in the history's `member-list` completions, in order.
fn member_counts(history: &Path) -> Vec<usize> {
    let text = std::fs::read_to_string(history).expect("history.jsonl");
    let ops: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|o| o["process"] == "nemesis" && o["f"] == "member-list")
        .collect();
    // Invocation and completion alternate; the completion is the second.
    ops.chunks(2)
        .filter(|c| c.len() == 2)
        .filter_map(|c| c[1]["value"]["members"].as_array().map(Vec::len))
        .collect()
}

#[test]
#[cfg_attr(
    not(faultline_root),
    ignore = "needs root: builds a local cluster and runs etcd"
)]
fn a_run_with_membership_changes_on_etcd_stays_valid() {
    cluster_support::ensure(&cluster_support::db("etcd"));
    const PREFIX: &str = "flmr";
    let tmp = tempfile::tempdir().expect("temp dir");
    let state = tmp.path().join("state");
    let _down = CliCluster::new(&state, PREFIX).db("etcd").heal();
    let (code, out, err) = faultline(
        &state,
        &[
            "cluster",
            "up",
            "--nodes",
            "3",
            "--subnet",
            "10.78.191.0/24",
            "--name-prefix",
            PREFIX,
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let results = tmp.path().join("results");
    let out = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args([
            "run",
            "--db",
            "etcd",
            "--read-mode",
            "linearizable",
            "--workload",
            "register",
            "--nemesis",
            "membership",
            "--nemesis-interval",
            "6",
            "--time-limit",
            "20",
            "--concurrency",
            "3",
            "--rate",
            "50",
            "--results",
        ])
        .arg(&results)
        .env("FAULTLINE_STATE_DIR", &state)
        .output()
        .expect("faultline run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let latest = results.join("latest");
    let r: Value = serde_json::from_str(
        &std::fs::read_to_string(latest.join("results.json")).expect("results.json"),
    )
    .expect("results.json is JSON");
    assert_eq!(r["valid"], "valid", "{r}\n{stdout}\n{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let took = r["faults"]["membership"]["took_effect"].as_u64();
    assert!(took.is_some_and(|n| n >= 1), "{}", r["faults"]);
    // The member lists recorded after each start and stop: 2, then 3.
    let counts = member_counts(&latest.join("history.jsonl"));
    assert!(
        counts.windows(2).any(|w| w == [2, 3]),
        "member-list counts {counts:?}"
    );
}

/// A db without a membership API is refused before anything is built,
/// with the reason. Needs no root: nothing is touched.
#[test]
fn membership_changes_on_a_db_without_a_member_api_are_refused_before_the_run() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let state = tmp.path().join("state");
    let results = tmp.path().join("results");
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args([
            "run",
            "--db",
            "redis",
            "--workload",
            "register",
            "--nemesis",
            "membership",
            "--time-limit",
            "5",
            "--results",
        ])
        .arg(&results)
        .env("FAULTLINE_STATE_DIR", &state)
        .output()
        .expect("faultline run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5), "{err}");
    assert!(
        err.contains("--nemesis membership")
            && err.contains("only etcd")
            && err.contains("partition, kill"),
        "the reason and what works: {err}"
    );
    assert!(!state.exists() && !results.exists(), "something was built");
}

/// Heal checks that what it started stays up: etcd killed on n3 and
/// restarted by a heal whose etcd takes a flag it does not know (it exits
/// at once) fails with "failed to start", the node and the log's end,
/// instead of reporting n3 started; the kill stays recorded, and a heal
/// with the right etcd brings n3 back.
#[test]
#[cfg_attr(
    not(faultline_root),
    ignore = "needs root: builds a local cluster and runs etcd"
)]
fn heal_reports_a_db_that_dies_right_after_its_start() {
    cluster_support::ensure(&cluster_support::db("etcd"));
    let guard = Teardown::new("flhf", "10.78.192.0/24", 3);
    let cluster = local::up(&guard.spec).expect("cluster up");
    let nodes = cluster.nodes().to_vec();
    let etcd = Etcd::new(EtcdOptions::default(), &nodes);
    let _down = EtcdDown(etcd.clone(), nodes.clone());
    db::setup(&etcd, &cluster, Duration::from_secs(30)).expect("etcd setup");
    let record = default_record_path(&cluster).expect("a record");
    let nemeses = |etcd: Etcd| {
        Nemeses::new(
            cluster.clone(),
            Some(Arc::new(etcd) as Arc<dyn Db>),
            NemesisOptions {
                record: Some(record.clone()),
                ..NemesisOptions::default()
            },
        )
    };
    let good = nemeses(etcd.clone());
    let done = good
        .invoke(&Fault::Kill(Targets::Nodes(vec!["n3".into()])))
        .expect("kill");
    assert_eq!(done["killed"], json!(["n3"]), "{done}");

    let broken = Etcd::new(
        EtcdOptions {
            extra_args: vec!["--no-such-flag".into()],
            ..EtcdOptions::default()
        },
        &nodes,
    );
    let t = Instant::now();
    let e = nemeses(broken)
        .heal()
        .expect_err("heal of a db that cannot start");
    let e = e.to_string();
    // The log's end follows: etcd's usage text, printed after its
    // complaint about the flag.
    assert!(
        e.contains("failed to start: n3: etcd exited after its start; log: ") && e.contains("etcd"),
        "{e}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "took {:?}",
        t.elapsed()
    );
    assert!(!etcd.is_running(&nodes[2]).expect("is_running"));
    let text = std::fs::read_to_string(&record).expect("the record");
    let recorded: Value = serde_json::from_str(&text).expect("record JSON");
    assert_eq!(recorded["killed"], json!(["n3"]), "{text}");

    let healed = good.heal().expect("heal with the right etcd");
    assert_eq!(healed["db"]["started"], json!(["n3"]), "{healed}");
    wait_for("n3 healthy", Duration::from_secs(20), || healthy(&nodes[2]));
}
