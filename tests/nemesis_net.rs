//! Network faults on 3-node local clusters, each shown from outside any
//! database: a one-way partition (the cut-off node receives nothing from
//! the others, who still receive from it), and duplicated, reordered,
//! corrupted and rate-limited packets through the NFQUEUE packet program,
//! whose counts match what the receiving node's kernel counted (its UDP
//! counters in /proc/net/snmp, or the order a UDP listener saw). Each test
//! then injects its fault from a separate controller process, kills that
//! process with SIGKILL while the fault holds, and shows that `faultline
//! heal`, a fresh process, undoes it. Needs root, and socat for the
//! reorder test (installed when missing); ignored unless built by root.
#![cfg(feature = "controller")]

mod cluster_support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster_support::{leftovers, Teardown};
use faultline::cluster::{local, Cluster, Node};
use faultline::nemesis::{
    Fault, Nemeses, Nemesis, NemesisOptions, PacketBehavior, PartitionSpec, Targets,
};
use serde_json::{json, Value};

/// The datagrams each check sends.
const N: u64 = 200;
/// The UDP port they go to (nothing listens there unless a test starts a
/// listener).
const PORT: u16 = 9753;

fn nemeses(cluster: &Cluster, state_dir: &Path) -> Nemeses {
    Nemeses::new(
        cluster.clone(),
        None,
        NemesisOptions {
            seed: 5,
            record: Some(state_dir.join("nemesis.json")),
            helper: Some(env!("CARGO_BIN_EXE_faultline").into()),
        },
    )
}

/// Heals when dropped, so a failing test leaves no fault behind.
struct HealOnDrop(Arc<Nemeses>);

impl Drop for HealOnDrop {
    fn drop(&mut self) {
        if let Err(e) = self.0.heal() {
            eprintln!("heal on drop failed: {e}");
        }
    }
}

/// A counter of the node's kernel from /proc/net/snmp (its own network
/// namespace's), e.g. `("Udp", "NoPorts")`.
fn snmp(node: &Node, proto: &str, field: &str) -> u64 {
    let text = node.run("cat /proc/net/snmp").expect("read /proc/net/snmp");
    let rows: Vec<Vec<&str>> = text
        .lines()
        .filter(|l| l.starts_with(&format!("{proto}:")))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 2, "{proto} in {text}");
    let i = rows[0]
        .iter()
        .position(|f| *f == field)
        .unwrap_or_else(|| panic!("no {proto} {field} in {text}"));
    rows[1][i].parse().expect("a counter")
}

/// Sends `N` UDP datagrams, numbered `000001`..., from `from` to `to`.
fn udp_send(from: &Node, to: &Node) {
    from.run(&format!(
        "bash -c 'for i in $(seq 1 {N}); do printf \"%06d\\n\" $i > /dev/udp/{}/{PORT}; done'",
        to.host()
    ))
    .expect("send datagrams");
    // Let the last ones (held or delayed by the program) land.
    std::thread::sleep(Duration::from_millis(300));
}

/// How many of `N` datagrams from `from` reached `to` with no listener:
/// the increase of `to`'s `Udp NoPorts`.
fn delivered(from: &Node, to: &Node) -> u64 {
    let before = snmp(to, "Udp", "NoPorts");
    udp_send(from, to);
    snmp(to, "Udp", "NoPorts") - before
}

/// Every line of `iptables -S` on the node that mentions faultline.
fn our_rules(node: &Node) -> Vec<String> {
    node.run("iptables -w -S")
        .expect("iptables -S")
        .lines()
        .filter(|l| l.contains("FAULTLINE"))
        .map(String::from)
        .collect()
}

fn program_running(node: &Node) -> bool {
    node.exec("pgrep -f 'nfq-packe[t]'")
        .expect("pgrep")
        .success()
}

/// What the packet program counted on `node`, from a stop-packet's answer.
fn counted(stop: &Value, node: &str, what: &str) -> u64 {
    stop["measured"][node][what]
        .as_u64()
        .unwrap_or_else(|| panic!("no measured {node} {what} in {stop}"))
}

/// Runs `fault` from a separate controller process (the `hold_fault`
/// example, which `cargo test` builds beside this test), waits until it is
/// injected, kills that process with SIGKILL, and answers what it said it
/// did.
fn inject_then_sigkill_controller(state_dir: &Path, fault: &Fault) -> Value {
    // target/<profile>/deps/<this test> -> target/<profile>/examples/hold_fault
    let exe = std::env::current_exe().expect("test binary");
    let examples = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary's target folder")
        .join("examples");
    let controller = examples.join("hold_fault");
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
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the controller");
    let stdout = child.stdout.take().expect("its stdout");
    let mut done = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read the controller");
        // The harness may print the test's name on the same line first.
        if let Some((_, v)) = line.split_once("INJECTED ") {
            done = Some(serde_json::from_str(v).expect("its answer"));
            break;
        }
    }
    // SAFETY: kill with the child's pid and a valid signal.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().expect("reap the controller");
    done.expect("the controller injected the fault before it was killed")
}

/// `faultline heal --no-db` on the cluster of `state_dir`, a fresh process;
/// answers its stdout.
fn faultline_heal(state_dir: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["heal", "--no-db", "--state-dir"])
        .arg(state_dir)
        .output()
        .expect("run faultline heal");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "faultline heal failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A 3-node cluster for one test, its nemeses, and their heal on drop.
struct Rig {
    nem: Arc<Nemeses>,
    nodes: Vec<Node>,
    state_dir: std::path::PathBuf,
    prefix: &'static str,
    subnet_prefix: &'static str,
    // Dropped last: heal first, then the cluster goes.
    _heal: HealOnDrop,
    _cluster: Cluster,
    _guard: Teardown,
}

impl Rig {
    fn new(prefix: &'static str, subnet: &'static str, subnet_prefix: &'static str) -> Rig {
        let t = Instant::now();
        let guard = Teardown::new(prefix, subnet, 3);
        let state_dir = guard.state_dir();
        let cluster = local::up(&guard.spec).expect("cluster up");
        let nem = Arc::new(nemeses(&cluster, &state_dir));
        nem.setup().expect("setup");
        eprintln!("{prefix}: cluster up in {:.1} s", t.elapsed().as_secs_f64());
        Rig {
            nodes: cluster.nodes().to_vec(),
            _heal: HealOnDrop(nem.clone()),
            nem,
            state_dir,
            prefix,
            subnet_prefix,
            _cluster: cluster,
            _guard: guard,
        }
    }

    fn node(&self, name: &str) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.name() == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    /// Nothing of faultline's is left on any node: no rule, no program.
    fn assert_clean(&self) {
        for n in &self.nodes {
            assert!(our_rules(n).is_empty(), "{}: {:?}", n.name(), our_rules(n));
            assert!(!program_running(n), "{}: packet program left", n.name());
        }
    }

    /// Drops everything, then checks nothing of the cluster is left.
    fn finish(self) {
        let (prefix, state_dir, subnet_prefix) =
            (self.prefix, self.state_dir.clone(), self.subnet_prefix);
        drop(self);
        let left = leftovers(prefix, &state_dir, subnet_prefix);
        assert!(left.is_empty(), "left behind: {left:?}");
    }
}

#[test]
#[cfg_attr(not(faultline_root), ignore = "needs root: builds a local cluster")]
fn a_one_way_partition_cuts_only_what_the_cut_off_side_receives() {
    cluster_support::ensure(&[]);
    let rig = Rig::new("flow", "10.78.181.0/24", "10.78.181.");
    let t = Instant::now();
    let (n1, n2) = (&rig.nodes[0], &rig.nodes[1]);
    for (a, b) in [(n1, n2), (n2, n1)] {
        assert_eq!(delivered(a, b), N, "{}→{} before", a.name(), b.name());
    }

    // A third of 3 nodes is one node: it hears nobody, everybody hears it.
    let fault = Fault::StartPartition(PartitionSpec::OneWay(Box::new(
        PartitionSpec::MinorityThird,
    )));
    let done = rig.nem.invoke(&fault).expect("one-way partition");
    assert_eq!(
        done["partition"],
        json!({"oneway": "minority-third"}),
        "{done}"
    );
    let grudge = done["grudge"].as_object().expect("a grudge");
    assert_eq!(grudge.len(), 1, "only the cut-off node drops: {done}");
    let (cut, dropped) = grudge.iter().next().expect("one entry");
    assert_eq!(dropped.as_array().map(|d| d.len()), Some(2), "{done}");
    let cut = rig.node(cut);
    let others: Vec<&Node> = rig
        .nodes
        .iter()
        .filter(|n| n.name() != cut.name())
        .collect();
    let drops = our_rules(cut)
        .iter()
        .filter(|r| r.starts_with("-A FAULTLINE -s") && r.ends_with("-j DROP"))
        .count();
    assert_eq!(drops, 2, "{:?}", our_rules(cut));
    for o in &others {
        assert!(
            !our_rules(o).iter().any(|r| r.contains("DROP")),
            "{}: {:?}",
            o.name(),
            our_rules(o)
        );
        assert_eq!(
            delivered(o, cut),
            0,
            "{}→{} must be cut",
            o.name(),
            cut.name()
        );
        assert_eq!(
            delivered(cut, o),
            N,
            "{}→{} must flow",
            cut.name(),
            o.name()
        );
    }
    assert_eq!(delivered(others[0], others[1]), N, "the rest still talk");
    rig.nem.invoke(&Fault::StopPartition).expect("stop");
    rig.assert_clean();

    // From a controller killed mid-fault, `faultline heal` lifts it.
    let fault = Fault::StartPartition(PartitionSpec::OneWay(Box::new(PartitionSpec::One)));
    let done = inject_then_sigkill_controller(&rig.state_dir, &fault);
    let cut = done["components"][0][0].as_str().expect("the cut node");
    let cut = rig.node(cut);
    let other = rig.nodes.iter().find(|n| n.name() != cut.name()).unwrap();
    assert_eq!(delivered(other, cut), 0, "cut after the controller died");
    assert_eq!(delivered(cut, other), N);
    let out = faultline_heal(&rig.state_dir);
    assert!(out.contains("recorded faults"), "{out}");
    rig.assert_clean();
    assert_eq!(delivered(other, cut), N, "healed");
    eprintln!("one-way partition test: {:.1} s", t.elapsed().as_secs_f64());
    rig.finish();
}

/// Starts `behavior` on n1 (in this process), sends `N` datagrams n1→n2,
/// stops it, and answers (what n2's kernel counted of `counter`, the
/// stop's answer).
fn packet_round(rig: &Rig, behavior: PacketBehavior, counter: (&str, &str)) -> (u64, u64, Value) {
    let (n1, n2) = (&rig.nodes[0], &rig.nodes[1]);
    let start = Fault::StartPacket {
        targets: Targets::Nodes(vec!["n1".into()]),
        behavior,
    };
    let done = rig.nem.invoke(&start).expect("start-packet");
    assert_eq!(done["delay"][0]["via"], "nfqueue", "{done}");
    assert!(program_running(n1), "no packet program on n1");
    let queued = our_rules(n1)
        .iter()
        .filter(|r| r.contains("-A FAULTLINE-DLY") && r.contains("NFQUEUE"))
        .count();
    assert_eq!(queued, 2, "{:?}", our_rules(n1));
    let before = (snmp(n2, "Udp", "NoPorts"), snmp(n2, counter.0, counter.1));
    udp_send(n1, n2);
    let after = (snmp(n2, "Udp", "NoPorts"), snmp(n2, counter.0, counter.1));
    let stop = rig.nem.invoke(&Fault::StopPacket).expect("stop-packet");
    rig.assert_clean();
    eprintln!("{stop}");
    assert_eq!(counted(&stop, "n1", "packets"), N, "{stop}");
    assert!(stop["measured"]["n1"]["per_second"].is_object(), "{stop}");
    (after.0 - before.0, after.1 - before.1, stop)
}

/// The fault again from a controller killed with SIGKILL: the program
/// runs on after it, and `faultline heal` stops it and removes the rules,
/// reporting what it counted.
fn killed_controller_round(rig: &Rig, behavior: PacketBehavior, what: &str) {
    let start = Fault::StartPacket {
        targets: Targets::Nodes(vec!["n1".into()]),
        behavior,
    };
    inject_then_sigkill_controller(&rig.state_dir, &start);
    let (n1, n2) = (&rig.nodes[0], &rig.nodes[1]);
    assert!(program_running(n1), "the program outlives its controller");
    udp_send(n1, n2);
    let out = faultline_heal(&rig.state_dir);
    assert!(out.contains("\"measured\""), "{out}");
    assert!(out.contains(what), "{out}");
    rig.assert_clean();
    assert_eq!(delivered(n1, n2), N, "untouched after heal");
}

#[test]
#[cfg_attr(not(faultline_root), ignore = "needs root: builds a local cluster")]
fn duplicated_packets_are_counted_by_the_program_and_the_receiver() {
    cluster_support::ensure(&[]);
    let rig = Rig::new("fldu", "10.78.182.0/24", "10.78.182.");
    let t = Instant::now();
    let b = PacketBehavior {
        duplicate: Some(0.5),
        ..PacketBehavior::default()
    };
    let (got, _, stop) = packet_round(&rig, b, ("Udp", "NoPorts"));
    let dups = counted(&stop, "n1", "duplicated");
    assert_eq!(got, N + dups, "n2 received each datagram and each copy");
    assert!((N / 4..=3 * N / 4).contains(&dups), "{dups} of {N} at 0.5");
    killed_controller_round(&rig, b, "duplicated");
    eprintln!("duplicate test: {:.1} s", t.elapsed().as_secs_f64());
    rig.finish();
}

#[test]
#[cfg_attr(not(faultline_root), ignore = "needs root: builds a local cluster")]
fn corrupted_packets_fail_the_receivers_checksum() {
    cluster_support::ensure(&[]);
    let rig = Rig::new("flco", "10.78.183.0/24", "10.78.183.");
    let t = Instant::now();
    let b = PacketBehavior {
        corrupt: Some(0.5),
        ..PacketBehavior::default()
    };
    let (clean, bad, stop) = packet_round(&rig, b, ("Udp", "InCsumErrors"));
    let corrupted = counted(&stop, "n1", "corrupted");
    assert_eq!(bad, corrupted, "n2's checksum caught each corrupted one");
    assert_eq!(clean, N - corrupted, "the rest arrived intact");
    assert!(
        (N / 4..=3 * N / 4).contains(&corrupted),
        "{corrupted} of {N}"
    );
    killed_controller_round(&rig, b, "corrupted");
    eprintln!("corrupt test: {:.1} s", t.elapsed().as_secs_f64());
    rig.finish();
}

#[test]
#[cfg_attr(not(faultline_root), ignore = "needs root: builds a local cluster")]
fn a_rate_limit_drops_what_goes_over_it() {
    cluster_support::ensure(&[]);
    let rig = Rig::new("flra", "10.78.184.0/24", "10.78.184.");
    let t = Instant::now();
    // 8 kbit/s is 1000 bytes/s; 200 datagrams of 35 bytes go out in well
    // under a second.
    let b = PacketBehavior {
        rate_kbit: Some(8),
        ..PacketBehavior::default()
    };
    let (got, _, stop) = packet_round(&rig, b, ("Udp", "NoPorts"));
    let dropped = counted(&stop, "n1", "rate_dropped");
    assert_eq!(got, N - dropped, "n2 received exactly what the rate let by");
    assert!(dropped >= N / 2, "{dropped} of {N} dropped at 8 kbit/s");
    killed_controller_round(&rig, b, "rate_dropped");
    eprintln!("rate test: {:.1} s", t.elapsed().as_secs_f64());
    rig.finish();
}

#[test]
#[cfg_attr(not(faultline_root), ignore = "needs root: builds a local cluster")]
fn reordered_packets_arrive_out_of_order() {
    cluster_support::ensure(&[("socat", "socat")]);
    let rig = Rig::new("flre", "10.78.185.0/24", "10.78.185.");
    let t = Instant::now();
    let (n1, n2) = (&rig.nodes[0], &rig.nodes[1]);
    // A UDP listener on n2 writes the datagrams in the order they came.
    let got = format!("{}/udp-order", n2.work_dir());
    n2.run(&format!(
        "mkdir -p {dir}; rm -f {got}; setsid socat -u UDP-RECV:{PORT},bind={ip} OPEN:{got},creat,append \
         >/dev/null 2>&1 < /dev/null & echo $! > {dir}/socat.pid; sleep 0.2",
        dir = n2.work_dir(),
        ip = n2.host(),
    ))
    .expect("start socat");
    let b = PacketBehavior {
        reorder: Some(0.3),
        ..PacketBehavior::default()
    };
    let start = Fault::StartPacket {
        targets: Targets::Nodes(vec!["n1".into()]),
        behavior: b,
    };
    rig.nem.invoke(&start).expect("start-packet reorder");
    udp_send(n1, n2);
    let stop = rig.nem.invoke(&Fault::StopPacket).expect("stop-packet");
    n2.run(&format!("kill $(cat {}/socat.pid)", n2.work_dir()))
        .expect("stop socat");
    let order: Vec<u64> = n2
        .run(&format!("cat {got}"))
        .expect("read what socat got")
        .lines()
        .map(|l| l.trim().parse().expect("a number"))
        .collect();
    assert_eq!(order.len() as u64, N, "every datagram arrived once");
    // A datagram is late when a higher-numbered one came before it.
    let mut highest = 0;
    let mut late = 0;
    for &k in &order {
        if k < highest {
            late += 1;
        }
        highest = highest.max(k);
    }
    let reordered = counted(&stop, "n1", "reordered");
    eprintln!("{late} of {N} arrived late; the program counted {reordered}");
    // A held packet shows as late only when a later one overtook it: two
    // held back together, or one let go before the next came, are counted
    // by the program but arrive in order. So the program's count bounds
    // what the receiver sees, and nearly all of it shows.
    assert!(
        late <= reordered && late * 10 >= reordered * 8,
        "the receiver saw {late} late, the program counted {reordered}"
    );
    assert!(late >= N / 10, "{late} of {N} late at 0.3");
    rig.assert_clean();
    killed_controller_round(&rig, b, "reordered");
    eprintln!("reorder test: {:.1} s", t.elapsed().as_secs_f64());
    rig.finish();
}
