//! The embedded local cluster, end to end: build three nodes, check that a
//! command on each runs inside that node, exercise the SSH layer (streams,
//! exit status, timeouts, transfers, host keys, a dead sshd), and check that
//! teardown leaves nothing. Needs root (installed when missing);
//! ignored unless built by root.
#![cfg(feature = "controller")]

mod cluster_support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster_support::{leftovers, Teardown};
use faultline::cluster::{local, Cluster, HostsSpec};
use faultline::control::{ErrorKind, HostKeyPolicy, Remote, SshRemote};

#[test]
#[cfg_attr(not(faultline_root), ignore = "needs root: builds a local cluster")]
fn local_cluster_lifecycle() {
    cluster_support::ensure(&[]);
    let guard = Teardown::new("flta", "10.78.21.0/24", 3);
    let state_dir = guard.state_dir();

    let t0 = Instant::now();
    let cluster = local::up(&guard.spec).expect("cluster up");
    eprintln!("3-node cluster up in {:.2} s", t0.elapsed().as_secs_f64());
    assert_eq!(cluster.nodes().len(), 3);

    // Each command runs inside its node: hostname, address, and namespaces
    // of its own (pid namespace with sshd as pid 1, net namespace).
    let my_pid_ns = std::fs::read_link("/proc/self/ns/pid").expect("own pid ns");
    let mut pid_namespaces = BTreeSet::new();
    let mut net_namespaces = BTreeSet::new();
    for (i, node) in cluster.nodes().iter().enumerate() {
        let out = node
            .run(
                "hostname; ip -4 -o addr show dev eth0; readlink /proc/self/ns/pid; \
                 readlink /proc/self/ns/net; cat /proc/1/comm; ls -A /root | wc -l",
            )
            .expect("identity command");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 6, "{out}");
        assert_eq!(lines[0], format!("n{}", i + 1));
        assert!(
            lines[1].contains(&format!("10.78.21.{}/24", 11 + i)),
            "{}",
            lines[1]
        );
        assert_ne!(
            lines[2],
            my_pid_ns.display().to_string(),
            "node shares our pid namespace"
        );
        pid_namespaces.insert(lines[2].to_string());
        net_namespaces.insert(lines[3].to_string());
        assert_eq!(lines[4], "sshd", "pid 1 of the node should be its sshd");
        assert_eq!(
            lines[5], "0",
            "the node's /root should be its own empty dir"
        );
        assert_eq!(node.host(), format!("10.78.21.{}", 11 + i));
        assert!(!node.capabilities().can_skew_clock);
    }
    assert_eq!(
        pid_namespaces.len(),
        3,
        "each node has its own pid namespace"
    );
    assert_eq!(
        net_namespaces.len(),
        3,
        "each node has its own net namespace"
    );

    // Nodes reach each other over the bridge, and nothing beyond it (no
    // default route).
    let peer = cluster.nodes()[0]
        .run("bash -c 'exec 3<>/dev/tcp/10.78.21.12/22 && head -c 7 <&3'")
        .expect("tcp to peer");
    assert_eq!(peer, "SSH-2.0");
    let outside = cluster.nodes()[0]
        .exec("timeout 3 bash -c 'exec 3<>/dev/tcp/192.0.2.1/22'")
        .unwrap();
    assert!(!outside.success(), "a node reached outside its subnet");

    // Up again is idempotent: the same nodes, not rebuilt.
    let pids_before = local::status(&state_dir).unwrap().unwrap().nodes;
    let again = local::up(&guard.spec).expect("second up");
    let pids_after = local::status(&state_dir).unwrap().unwrap().nodes;
    assert_eq!(
        pids_before.iter().map(|n| n.pid).collect::<Vec<_>>(),
        pids_after.iter().map(|n| n.pid).collect::<Vec<_>>()
    );
    assert_eq!(again.nodes().len(), 3);
    drop(again);

    assert_eq!(
        cluster.controller_addr(),
        Some("10.78.21.1".parse().unwrap()),
        "the bridge is the controller's address"
    );
    // From async code, through tokio's blocking pool.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let name = rt
        .block_on(cluster.nodes()[1].run_async("hostname".into(), Duration::from_secs(10)))
        .unwrap();
    assert_eq!(name, "n2\n");

    // Parallel run on all nodes, in node order.
    let names = cluster.run_all("hostname").expect("run_all");
    assert_eq!(names, vec!["n1\n", "n2\n", "n3\n"]);

    let n1 = &cluster.nodes()[0];
    // Exit status and both streams.
    let out = n1.exec("echo out; echo err >&2; exit 3").unwrap();
    assert_eq!(
        (out.status, out.stdout.as_str(), out.stderr.as_str()),
        (3, "out\n", "err\n")
    );
    let err = n1.run("echo oops >&2; false").unwrap_err();
    assert_eq!(err.node, "n1");
    assert!(
        matches!(err.kind, ErrorKind::Exit { status: 1, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("oops"), "{err}");

    // A large stderr does not stall a command that also writes stdout.
    let out = n1
        .exec("head -c 3000000 /dev/zero | tr '\\0' e >&2; echo done")
        .unwrap();
    assert_eq!(out.stdout, "done\n");
    assert_eq!(out.stderr.len(), 3_000_000);

    // A hanging command hits its timeout, names node and command, and the
    // node stays usable.
    let t = Instant::now();
    let err = n1
        .exec_timeout("sleep 30", Duration::from_secs(1))
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "timeout took {:?}",
        t.elapsed()
    );
    assert!(
        err.to_string().contains("n1") && err.to_string().contains("sleep 30"),
        "{err}"
    );
    assert_eq!(n1.run("echo still here").unwrap(), "still here\n");
    // ... and the overrunning command is killed on the node.
    let count_sleepers =
        "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done \
                          | grep -c '^sleep 30 $' || true";
    let t = Instant::now();
    while n1.run(count_sleepers).unwrap().trim() != "0" {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "sleep 30 still runs on n1"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // So does one that never stops writing.
    let t = Instant::now();
    let err = n1.exec_timeout("yes", Duration::from_secs(1)).unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(n1.run("echo still here").unwrap(), "still here\n");
    // A killed command reports its signal.
    let out = n1.exec("kill -9 $$").unwrap();
    assert!(!out.success());
    assert_eq!(out.signal.as_deref(), Some("KILL"));

    // Concurrent commands on one node get sessions of their own instead of
    // queueing behind each other.
    let t = Instant::now();
    let outs = faultline::control::parallel(&[0; 6], |_| n1.run("sleep 0.5; hostname"));
    assert!(outs.iter().all(|o| o.as_deref() == Ok("n1\n")), "{outs:?}");
    assert!(
        t.elapsed() < Duration::from_millis(2500),
        "took {:?}",
        t.elapsed()
    );

    // A kept session that dies while idle is replaced transparently: kill
    // the sshd process serving our connection, a moment after this command
    // returns.
    n1.run("nohup sh -c \"sleep 0.3; kill -9 $PPID\" >/dev/null 2>&1 &")
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(n1.run("hostname").expect("reconnect"), "n1\n");

    // Upload and download over SFTP; /root belongs to one node only.
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("blob");
    let blob: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&src, &blob).unwrap();
    n1.upload(&src, "/root/blob", 0o640).expect("upload");
    assert_eq!(n1.run("stat -c %a /root/blob").unwrap().trim(), "640");
    let back = tmp.path().join("back/blob");
    n1.download("/root/blob", &back).expect("download");
    assert_eq!(std::fs::read(&back).unwrap(), blob);
    let n2 = &cluster.nodes()[1];
    assert!(!n2.exec("test -e /root/blob").unwrap().success());
    let err = n1
        .download("/root/does-not-exist", &tmp.path().join("x"))
        .unwrap_err();
    assert!(
        err.to_string().contains("n1") && err.to_string().contains("does-not-exist"),
        "{err}"
    );

    // Host keys: an unknown host is refused by default, accepted (and
    // recorded) with accept-new, then verified.
    let known = tmp.path().join("known_hosts");
    let mut opts = local::ssh_options(&state_dir);
    opts.host_keys = HostKeyPolicy::Verify(known.clone());
    let strict = SshRemote::new("n2", "10.78.21.12", opts.clone());
    let err = strict.connect().unwrap_err();
    assert!(matches!(err.kind, ErrorKind::HostKey(_)), "{err}");
    opts.host_keys = HostKeyPolicy::AcceptNew(known.clone());
    SshRemote::new("n2", "10.78.21.12", opts.clone())
        .connect()
        .expect("accept new host key");
    assert!(std::fs::read_to_string(&known)
        .unwrap()
        .contains("10.78.21.12"));
    opts.host_keys = HostKeyPolicy::Verify(known.clone());
    let verified = Arc::new(SshRemote::new("n2", "10.78.21.12", opts.clone()));
    assert_eq!(verified.run("hostname").unwrap(), "n2\n");
    // Node 1's key recorded under node 2's address is a mismatch.
    let n1_key = std::fs::read_to_string(state_dir.join("known_hosts"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("10.78.21.11 "))
        .unwrap()
        .replace("10.78.21.11", "10.78.21.12");
    std::fs::write(&known, n1_key + "\n").unwrap();
    let err = SshRemote::new("n2", "10.78.21.12", opts.clone())
        .connect()
        .unwrap_err();
    assert!(err.to_string().contains("differs"), "{err}");

    // RSA user keys work as well as ed25519 ones; a key the node does not
    // know is refused with an authentication error.
    let rsa = tmp.path().join("id_rsa");
    let keygen = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "rsa", "-b", "2048", "-N", "", "-f"])
        .arg(&rsa)
        .status()
        .unwrap();
    assert!(keygen.success());
    let mut opts = local::ssh_options(&state_dir);
    opts.key = Some(rsa.clone());
    let err = SshRemote::new("n2", "10.78.21.12", opts.clone())
        .connect()
        .unwrap_err();
    assert!(matches!(err.kind, ErrorKind::Auth(_)), "{err}");
    let rsa_pub = std::fs::read_to_string(rsa.with_extension("pub")).unwrap();
    let authorized = state_dir.join("authorized_keys");
    let mut keys = std::fs::read_to_string(&authorized).unwrap();
    keys.push_str(&rsa_pub);
    std::fs::write(&authorized, keys).unwrap();
    let with_rsa = SshRemote::new("n2", "10.78.21.12", opts);
    assert_eq!(with_rsa.run("hostname").expect("RSA login"), "n2\n");
    drop(with_rsa);

    // The same nodes reached as real hosts: the path `--nodes a,b` takes.
    let hosts = HostsSpec::new(
        vec!["10.78.21.11".into(), "10.78.21.12".into()],
        local::ssh_options(&state_dir),
    );
    let as_hosts = Cluster::hosts(&hosts).expect("nodes as real hosts");
    assert_eq!(as_hosts.nodes()[1].name(), "10.78.21.12");
    assert_eq!(as_hosts.run_all("hostname").unwrap(), vec!["n1\n", "n2\n"]);
    assert!(as_hosts.nodes()[0].capabilities().has_iptables);
    assert_eq!(as_hosts.controller_addr(), None);
    drop(as_hosts);

    // A node that stops answering (every process in it frozen) is an error
    // after the timeout, for a kept session and for a new connection.
    let n2_pids: Vec<i32> = String::from_utf8_lossy(
        &std::process::Command::new("ip")
            .args(["netns", "pids", "flta-n2"])
            .output()
            .unwrap()
            .stdout,
    )
    .split_whitespace()
    .filter_map(|p| p.parse().ok())
    .collect();
    assert!(!n2_pids.is_empty());
    let signal_all = |sig| {
        for &pid in &n2_pids {
            // SAFETY: kill(2) on processes of our own test node.
            unsafe { libc::kill(pid, sig) };
        }
    };
    assert_eq!(n2.run("hostname").unwrap(), "n2\n");
    signal_all(libc::SIGSTOP);
    let t = Instant::now();
    let frozen = n2.exec_timeout("hostname", Duration::from_secs(2));
    let kept_elapsed = t.elapsed();
    let mut opts = local::ssh_options(&state_dir);
    opts.connect_timeout = Duration::from_secs(1);
    let t = Instant::now();
    let fresh = SshRemote::new("n2", "10.78.21.12", opts).connect();
    let fresh_elapsed = t.elapsed();
    signal_all(libc::SIGCONT);
    let err = frozen.unwrap_err();
    assert!(err.is_timeout() && err.node == "n2", "{err}");
    assert!(err.to_string().contains("after 2.0 s"), "{err}");
    assert!(
        kept_elapsed < Duration::from_secs(4),
        "took {kept_elapsed:?}"
    );
    let err = fresh.unwrap_err();
    assert!(err.node == "n2", "{err}");
    assert!(
        fresh_elapsed < Duration::from_secs(3),
        "took {fresh_elapsed:?}"
    );
    assert_eq!(n2.run("hostname").expect("n2 back"), "n2\n");

    // A node whose sshd dies: its kept session and any new connection fail
    // with an error naming the node, promptly.
    let n3 = &cluster.nodes()[2];
    assert_eq!(n3.run("hostname").unwrap(), "n3\n");
    let ns_pids = std::process::Command::new("ip")
        .args(["netns", "pids", "flta-n3"])
        .output()
        .unwrap();
    for pid in String::from_utf8_lossy(&ns_pids.stdout).split_whitespace() {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() == "sshd" {
            let pid: i32 = pid.parse().unwrap();
            // SAFETY: kill(2) on a pid of our own test node.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
    let t = Instant::now();
    let err = n3.run("hostname").unwrap_err();
    assert_eq!(err.node, "n3");
    assert!(err.to_string().starts_with("n3: `hostname`"), "{err}");
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t.elapsed()
    );
    eprintln!("dead sshd: {err}");
    let st = local::status(&state_dir).unwrap().unwrap();
    assert!(!st.healthy());

    // Down removes everything, and is idempotent.
    drop(cluster);
    drop(verified);
    let report = local::down(&state_dir, None).expect("down");
    assert_eq!(report.namespaces.len(), 3, "{report:?}");
    let left = leftovers("flta", &state_dir, "10.78.21.");
    assert!(left.is_empty(), "left behind: {left:#?}");
    assert!(!state_dir.join("cluster.json").exists());
    local::down(&state_dir, None).expect("second down");
    assert!(local::status(&state_dir).unwrap().is_none());
    // Attaching to a cluster that is not up says so.
    let err = local::attach(&state_dir).unwrap_err().to_string();
    assert!(err.contains("no local cluster"), "{err}");
}
