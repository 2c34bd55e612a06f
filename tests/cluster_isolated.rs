//! Isolated local nodes (`faultline cluster up --isolated`), driven exactly
//! as real hosts: built through the CLI, found through `cluster status
//! --json`, reached over SSH as a non-root user with sudo. Checks that each
//! node is a machine of its own (a file or a package on one node is on no
//! other node and not on the controller; no root login; no route out) and
//! runs a short etcd test through `faultline run --nodes`, which installs
//! etcd with apt inside each node from the controller's local repository.
//!
//! The first run builds the base with debootstrap through the Debian
//! mirror (minutes) and caches it in /var/cache/faultline; later runs reuse
//! it. Needs root; ignored unless built by root.
#![cfg(all(feature = "controller", feature = "cli"))]

mod cluster_support;

use std::path::Path;
use std::time::{Duration, Instant};

use cluster_support::{faultline, isolated, leftovers, CliCluster};
use faultline::cluster::{Cluster, HostsSpec};
use faultline::control::{ErrorKind, Remote, SshRemote};
use faultline::db::{apt_install, AptPackages};

const PREFIX: &str = "flis";
const SUBNET: &str = "10.78.197.0/24";
const SUBNET_PREFIX: &str = "10.78.197.";
/// A small package the controller does not have, offered to the nodes for
/// the package check (with etcd-server for the run).
const PROBE_PACKAGE: &str = "hello";

/// Whether the controller's dpkg database holds `package` as installed.
fn installed_here(package: &str) -> bool {
    std::process::Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

#[test]
#[cfg_attr(
    not(faultline_root),
    ignore = "needs root: builds isolated local nodes (debootstrap) and runs etcd"
)]
fn isolated_nodes_are_machines_of_their_own_driven_as_real_hosts() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let _down = CliCluster::new(&state, PREFIX);
    let offer = format!("etcd-server,{PROBE_PACKAGE}");
    let (a, out) = isolated::up(&state, PREFIX, SUBNET, 3, &offer);
    assert!(out.contains("(isolated)"), "{out}");
    assert_eq!(a.names, ["n1", "n2", "n3"]);
    assert_eq!(a.user, "faultline");

    // Root may not log in; the user is not root, and sudo makes it root.
    let root = SshRemote::new("n1", &a.addresses[0], a.ssh_options("root", false));
    let refused = root.connect().expect_err("root login must be refused");
    assert!(matches!(refused.kind, ErrorKind::Auth(_)), "{refused}");
    let plain = SshRemote::new("n1", &a.addresses[0], a.ssh_options(&a.user, false));
    assert_eq!(plain.run("id -u").unwrap().trim(), "1000");
    let hosts = Cluster::hosts(&HostsSpec::new(
        a.addresses.clone(),
        a.ssh_options(&a.user, true),
    ))
    .expect("the nodes, as real hosts");
    for node in hosts.nodes() {
        assert_eq!(node.run("id -u").unwrap().trim(), "0", "{}", node.name());
        // No way out to a package registry: no default route.
        assert_eq!(
            node.run("ip -4 route show default").unwrap().trim(),
            "",
            "{}",
            node.name()
        );
        // They share this machine's clock: never `date -s` there.
        let caps = node.capabilities();
        assert!(!caps.can_skew_clock && !caps.shares_host, "{caps:?}");
    }
    let [n1, n2, n3] = hosts.nodes() else {
        panic!("three nodes")
    };

    // A command run through sudo that overruns its timeout is killed on the
    // node, with what it started.
    let overrun = n1
        .exec_timeout("sleep 301 & sleep 302", Duration::from_secs(1))
        .expect_err("the command overruns");
    assert!(overrun.is_timeout(), "{overrun}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = n1.exec("pgrep -a -x sleep").unwrap().stdout;
        if left.trim().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "left running on n1: {left}");
        std::thread::sleep(Duration::from_millis(100));
    }

    // A file written on one node is on no other node, nor here.
    let name = format!("faultline-isolation-{}", std::process::id());
    for dir in ["/tmp", "/etc", "/var/lib", "/opt"] {
        let path = format!("{dir}/{name}");
        n1.run(&format!("echo n1 > {path}")).unwrap();
        assert_eq!(n1.run(&format!("cat {path}")).unwrap().trim(), "n1");
        for other in [n2, n3] {
            assert!(
                !other.exec(&format!("test -e {path}")).unwrap().success(),
                "{path} seen on {}",
                other.name()
            );
        }
        assert!(!Path::new(&path).exists(), "{path} seen on the controller");
        n1.run(&format!("rm {path}")).unwrap();
    }

    // A package installed on one node (with apt, from the local repository,
    // as every db installs) is on no other node, nor here.
    assert!(
        !installed_here(PROBE_PACKAGE),
        "the controller has {PROBE_PACKAGE} installed: this check needs a package it lacks \
         (apt-get remove {PROBE_PACKAGE})"
    );
    let probe = AptPackages {
        what: PROBE_PACKAGE,
        packages: &[PROBE_PACKAGE],
        present: "command -v hello >/dev/null 2>&1",
        services: &[],
        otherwise: "",
    };
    apt_install("probe", n1, &probe).expect("apt-get install inside n1");
    let dpkg = format!("dpkg-query -W -f='${{Status}}' {PROBE_PACKAGE}");
    assert!(n1.run(&dpkg).unwrap().contains("install ok installed"));
    assert!(!n2
        .exec(&dpkg)
        .unwrap()
        .stdout
        .contains("install ok installed"));
    assert!(!installed_here(PROBE_PACKAGE));
    assert!(!Path::new("/usr/bin/hello").exists());

    // etcd through the path real hosts take: --nodes, a non-root user, a
    // first contact that records the host keys.
    let known = tmp.path().join("known_hosts");
    let results = tmp.path().join("results");
    let nodes = a.addresses.join(",");
    let key = a.key.display().to_string();
    let known_s = known.display().to_string();
    let results_s = results.display().to_string();
    let (code, out, err) = faultline(
        &state,
        &[
            "run",
            "--db",
            "etcd",
            "--workload",
            "register",
            "--read-mode",
            "linearizable",
            "--nemesis",
            "partition,kill",
            "--time-limit",
            "15",
            "--nodes",
            &nodes,
            "--ssh-user",
            &a.user,
            "--ssh-key",
            &key,
            "--accept-new-host-keys",
            "--known-hosts",
            &known_s,
            "--results",
            &results_s,
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("linearizable: valid"), "{out}");
    let recorded = std::fs::read_to_string(&known).unwrap();
    for addr in &a.addresses {
        assert!(recorded.contains(addr.as_str()), "{recorded}");
    }
    let run_dir = results.join("etcd-register-partition+kill/latest");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("results.json")).unwrap())
            .unwrap();
    assert_eq!(v["valid"], "valid", "{v}");
    for fault in ["partition", "kill"] {
        assert!(
            v["faults"][fault]["took_effect"].as_u64().unwrap_or(0) > 0,
            "{fault}: {v}"
        );
    }
    for (node, addr) in hosts.nodes().iter().zip(&a.addresses) {
        // Installed by apt inside the node (its own dpkg log says so), and
        // its log collected.
        let log = node.run("cat /var/log/dpkg.log").unwrap();
        assert!(log.contains("status installed etcd-server"), "{log}");
        assert!(run_dir.join("nodes").join(addr).join("etcd.log").is_file());
    }
    drop(hosts);

    // Isolated nodes share this machine's clock: a clock fault there moves
    // the db's clock by libfaketime, which etcd (a static Go binary) never
    // reads, so it is refused before anything is touched, not run as a
    // fault that silently does nothing.
    let (code, out, err) = faultline(
        &state,
        &[
            "run",
            "--db",
            "etcd",
            "--workload",
            "register",
            "--nemesis",
            "clock",
            "--time-limit",
            "5",
            "--nodes",
            &nodes,
            "--ssh-user",
            &a.user,
            "--ssh-key",
            &key,
            "--known-hosts",
            &known_s,
            "--results",
            &results_s,
        ],
    );
    assert_eq!(code, 3, "{out}{err}");
    assert!(
        err.contains("libfaketime") && err.contains("share this machine's clock"),
        "{err}"
    );

    let (code, out, err) = faultline(&state, &["cluster", "down"]);
    assert_eq!(code, 0, "{out}{err}");
    let left = leftovers(PREFIX, &state, SUBNET_PREFIX);
    assert!(left.is_empty(), "left behind: {left:?}");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&state.display().to_string()),
        "mounts left: {mounts}"
    );
    assert!(!state.join("nodes").exists());
}
