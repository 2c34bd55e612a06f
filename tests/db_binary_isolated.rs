//! Your own build of the database on isolated local nodes driven as real
//! hosts (`cluster up --isolated`, `--nodes --ssh-user faultline`, sudo):
//! `--db-binary` uploads a binary over SFTP to every node and runs it
//! instead of Debian's (the nodes are offered no etcd package at all), and
//! `--nemesis upgrade --db-binary-next` replaces it with the next one on
//! one node at a time while the workload runs. The run must stay valid,
//! with each node's upgrade in the history and in `results.json`'s fault
//! coverage, both binaries in `test.json`; a fresh `faultline heal`
//! restarts a node stopped by hand and says which binary each node holds.
//! Refusals come before anything is touched.
//!
//! The "next" build is this machine's etcd with 16 bytes appended (an ELF
//! runs the same with trailing bytes): the same version, but another file,
//! so the upgrade really uploads it and the nodes can be told apart.
//! Needs root; ignored unless built by root.
#![cfg(all(feature = "controller", feature = "cli"))]

mod cluster_support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use cluster_support::{faultline, isolated, leftovers, CliCluster};
use faultline::cluster::{Cluster, HostsSpec};
use faultline::control::{HostKeyPolicy, SshOptions};
use faultline::db::DbBinary;

const PREFIX: &str = "flup";
const SUBNET: &str = "10.78.211.0/24";
const SUBNET_PREFIX: &str = "10.78.211.";
/// The etcd of this machine's etcd-server package: the first build.
const ETCD: &str = "/usr/bin/etcd";

/// The history's events, one JSON value each.
fn history(run_dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run_dir.join("history.jsonl"))
        .expect("history.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

#[test]
#[cfg_attr(
    not(faultline_root),
    ignore = "needs root: builds isolated local nodes (debootstrap) and runs etcd"
)]
fn your_own_etcd_build_runs_and_survives_a_rolling_upgrade_on_isolated_nodes() {
    cluster_support::ensure(&cluster_support::db("etcd"));
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let _down = CliCluster::new(&state, PREFIX);
    // Offered a small package only: no etcd-server to fall back on.
    let (access, _) = isolated::up(&state, PREFIX, SUBNET, 3, "hello");
    let addresses = access.addresses.clone();
    let user = access.user.clone();
    let key = access.key.display().to_string();
    let known = access.known_hosts.display().to_string();
    let nodes = access.nodes_flag();

    let next = tmp.path().join("etcd-next");
    let mut bytes = std::fs::read(ETCD).expect("read /usr/bin/etcd");
    bytes.extend_from_slice(b"faultline-next\n\0");
    std::fs::write(&next, &bytes).unwrap();
    let first_bin = DbBinary::open(Path::new(ETCD)).unwrap();
    let next_bin = DbBinary::open(&next).unwrap();
    assert_ne!(first_bin.sha256, next_bin.sha256);
    let next_s = next.display().to_string();
    let results = tmp.path().join("results");
    let results_s = results.display().to_string();
    let hosts_flags = [
        "--nodes",
        nodes.as_str(),
        "--ssh-user",
        user.as_str(),
        "--ssh-key",
        key.as_str(),
        "--known-hosts",
        known.as_str(),
    ];
    let run = |extra: &[&str]| {
        let mut args = vec!["run", "--workload", "register", "--results", &results_s];
        args.extend_from_slice(extra);
        args.extend_from_slice(&hosts_flags);
        faultline(&state, &args)
    };

    // Refused before anything is touched: no next binary; a db that runs
    // no binary of your own.
    let (code, out, err) = run(&["--db", "etcd", "--db-binary", ETCD, "--nemesis", "upgrade"]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(
        err.contains("--nemesis upgrade") && err.contains("it needs --db-binary-next PATH"),
        "{err}"
    );
    let (code, out, err) = run(&["--db", "postgres", "--db-binary", ETCD, "--nemesis", "kill"]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(err.contains("refused for postgres"), "{err}");
    assert!(!results.exists(), "a refused run made a results folder");

    // The run: etcd from the uploaded binary, upgraded node by node.
    let (code, out, err) = run(&[
        "--db",
        "etcd",
        "--read-mode",
        "linearizable",
        "--db-binary",
        ETCD,
        "--nemesis",
        "upgrade",
        "--db-binary-next",
        &next_s,
        "--nemesis-interval",
        "2",
        "--time-limit",
        "25",
        "--leave-db-running",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("linearizable: valid"), "{out}");
    let run_dir = results.join("etcd-register-upgrade/latest");
    let test: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("test.json")).unwrap()).unwrap();
    assert_eq!(test["db_binary"], first_bin.to_value(), "{test}");
    assert_eq!(test["db_binary_next"], next_bin.to_value(), "{test}");
    let res: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("results.json")).unwrap())
            .unwrap();
    assert_eq!(res["valid"], "valid", "{res}");
    let upgrade = &res["faults"]["upgrade"];
    assert_eq!(upgrade["took_effect"], 3, "{res}");
    assert_eq!(
        upgrade["windows"].as_array().map(Vec::len),
        Some(3),
        "{res}"
    );

    // Each node's stop, replacement and restart is in the history, once,
    // in cluster order, the next build uploaded over the first.
    let done: Vec<serde_json::Value> = history(&run_dir)
        .into_iter()
        .filter(|e| e["process"] == "nemesis" && e["f"] == "upgrade" && e["value"].is_object())
        .collect();
    let upgraded: Vec<serde_json::Value> = done
        .iter()
        .flat_map(|e| {
            e["value"]["upgraded"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    // Hosts are named by their address, in the order given.
    let names: Vec<&str> = upgraded.iter().filter_map(|s| s["node"].as_str()).collect();
    assert_eq!(names, addresses, "{done:?}");
    for s in &upgraded {
        assert_eq!(s["stopped"], true, "{s}");
        assert_eq!(s["started"], true, "{s}");
        assert_eq!(s["uploaded"], true, "{s}");
        assert_eq!(s["from"]["sha256"], first_bin.sha256.as_str(), "{s}");
        assert_eq!(s["replaced"], "/opt/faultline/bin/etcd", "{s}");
    }
    assert_eq!(
        done.last().unwrap()["value"]["remaining"],
        serde_json::json!([])
    );

    // Every node runs the next build, from the uploaded file.
    let hosts = Cluster::hosts(&HostsSpec::new(
        addresses.clone(),
        SshOptions {
            user: user.clone(),
            key: Some(PathBuf::from(&key)),
            host_keys: HostKeyPolicy::Verify(PathBuf::from(&known)),
            sudo: true,
            connect_timeout: Duration::from_secs(5),
            ..SshOptions::default()
        },
    ))
    .expect("the nodes, as real hosts");
    for node in hosts.nodes() {
        let exe = node
            .run("readlink /proc/$(cat /opt/faultline/etcd/etcd.pid)/exe")
            .unwrap();
        assert_eq!(exe.trim(), "/opt/faultline/bin/etcd", "{}", node.name());
        let sum = node.run("sha256sum /opt/faultline/bin/etcd").unwrap();
        assert!(sum.starts_with(&next_bin.sha256), "{}: {sum}", node.name());
        // Never installed from a package.
        assert!(!node.exec("command -v etcd").unwrap().success());
    }

    // A fresh heal restarts what is stopped and says which build each
    // node holds.
    let n2 = &hosts.nodes()[1];
    n2.run("kill -9 $(cat /opt/faultline/etcd/etcd.pid)")
        .unwrap();
    let record = run_dir.join("nemesis.json").display().to_string();
    let mut heal = vec!["heal", "--record", record.as_str()];
    heal.extend_from_slice(&hosts_flags);
    let (code, out, err) = faultline(&state, &heal);
    assert_eq!(code, 0, "{out}{err}");
    let healed = out
        .lines()
        .find_map(|l| l.strip_prefix("healed: "))
        .unwrap_or_else(|| panic!("no `healed:` line in {out}"));
    let healed: serde_json::Value = serde_json::from_str(healed).expect("heal's JSON");
    for n in &addresses {
        let said = healed["upgrade"]["binaries"][n]
            .as_str()
            .unwrap_or_default();
        assert!(
            said.starts_with("the next binary") && said.contains(&next_bin.sha256),
            "{n}: {healed}"
        );
    }
    assert_eq!(
        healed["db"]["started"],
        serde_json::json!([addresses[1]]),
        "{healed}"
    );
    for node in hosts.nodes() {
        assert!(
            node.exec("kill -0 $(cat /opt/faultline/etcd/etcd.pid)")
                .unwrap()
                .success(),
            "etcd not running on {} after heal",
            node.name()
        );
    }
    drop(hosts);

    let mut down = vec!["db", "down", "--db", "etcd", "--db-binary", ETCD];
    down.extend_from_slice(&hosts_flags);
    let (code, out, err) = faultline(&state, &down);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = faultline(&state, &["cluster", "down"]);
    assert_eq!(code, 0, "{out}{err}");
    let left = leftovers(PREFIX, &state, SUBNET_PREFIX);
    assert!(left.is_empty(), "left behind: {left:?}");
}
