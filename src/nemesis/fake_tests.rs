//! Nemeses against fake nodes that record the commands they are sent: the
//! real-host paths the local cluster cannot exercise (clock faults, netem
//! delay), and the promise that a refused fault sends nothing.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use super::*;
use crate::cluster::{Capabilities, Cluster, ClusterKind, Node};
use crate::control::{ControlError, Output, Remote};

#[derive(Debug, Default)]
struct FakeRemote {
    name: String,
    commands: Mutex<Vec<String>>,
    /// Unreachable: every command fails to connect.
    down: bool,
    /// Has a libfaketime control file (a local node armed for clock
    /// faults), which reads `+0.500`.
    faketime: bool,
}

impl FakeRemote {
    fn sent(&self) -> Vec<String> {
        self.commands.lock().unwrap().clone()
    }
}

impl Remote for FakeRemote {
    fn node(&self) -> &str {
        &self.name
    }

    fn default_timeout(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn exec_timeout(&self, command: &str, _timeout: Duration) -> Result<Output, ControlError> {
        if self.down {
            return Err(ControlError::new(
                &self.name,
                command,
                crate::control::ErrorKind::Connect("connection refused".into()),
            ));
        }
        self.commands.lock().unwrap().push(command.to_string());
        // The clock probe gets the controller's own time: no drift.
        let stdout = if command == "date +%s.%N" {
            format!(
                "{:.6}",
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs_f64()
            )
        } else if command.starts_with("cat ") && command.contains("clock/faketime") {
            "+0.500\n".to_string()
        } else {
            String::new()
        };
        let status = if command.starts_with("test -f") && command.contains("clock/faketime") {
            i32::from(!self.faketime)
        } else {
            0
        };
        Ok(Output {
            status,
            signal: None,
            stdout,
            stderr: String::new(),
        })
    }

    fn upload(&self, _local: &Path, _remote: &str, _mode: i32) -> Result<(), ControlError> {
        Ok(())
    }

    fn download(&self, _remote: &str, _local: &Path) -> Result<(), ControlError> {
        Ok(())
    }
}

fn hosts(caps: Capabilities) -> (Cluster, Vec<Arc<FakeRemote>>) {
    hosts_down(caps, "")
}

/// Three fake hosts; the one named `down` is unreachable.
fn hosts_down(caps: Capabilities, down: &str) -> (Cluster, Vec<Arc<FakeRemote>>) {
    let mut nodes = Vec::new();
    let mut remotes = Vec::new();
    for i in 1..=3 {
        let r = Arc::new(FakeRemote {
            name: format!("n{i}"),
            down: format!("n{i}") == down,
            ..FakeRemote::default()
        });
        nodes.push(Node::new(
            &format!("n{i}"),
            &format!("10.9.0.{i}"),
            r.clone(),
            caps,
            "/opt/faultline",
        ));
        remotes.push(r);
    }
    (Cluster::new(nodes, ClusterKind::Hosts), remotes)
}

const REAL: Capabilities = Capabilities {
    can_skew_clock: true,
    has_netem: true,
    has_iptables: true,
    shares_host: false,
};

fn nem(cluster: Cluster) -> Nemeses {
    Nemeses::new(cluster, None, NemesisOptions::default())
}

#[test]
fn clock_faults_on_real_hosts_stop_ntp_and_set_the_date() {
    let (cluster, r) = hosts(REAL);
    let n = nem(cluster);
    let done = n
        .invoke(&Fault::BumpClock {
            targets: Targets::Nodes(vec!["n2".into()]),
            delta_ms: 500,
        })
        .unwrap();
    assert_eq!(done["bumped"], json!(["n2"]));
    assert!(r[0].sent().is_empty() && r[2].sent().is_empty());
    let cmd = r[1].sent().join("\n");
    assert!(
        cmd.contains("systemctl stop") && cmd.contains("date -u -s"),
        "{cmd}"
    );
    assert!(cmd.contains("-v d=0.5"), "{cmd}");
    assert_eq!(n.env().active().unwrap().clock.len(), 1);

    n.invoke(&Fault::StrobeClock {
        targets: Targets::All,
        delta_ms: 100,
        period_ms: 10,
        duration_ms: 1000,
    })
    .unwrap();
    assert!(r[0].sent().join("\n").contains("faultline-strobe"));

    n.invoke(&Fault::ResetClock).unwrap();
    for remote in &r {
        let last = remote.sent().last().cloned().unwrap_or_default();
        assert!(
            last.contains("date -u -s \"@1") && last.contains("systemctl is-enabled"),
            "{last}"
        );
    }
    assert!(n.env().active().unwrap().clock.is_empty());
}

#[test]
fn refused_clock_fault_sends_nothing() {
    let (cluster, r) = hosts(Capabilities {
        can_skew_clock: false,
        ..REAL
    });
    let n = nem(cluster);
    let e = n
        .invoke(&Fault::BumpClock {
            targets: Targets::One,
            delta_ms: 500,
        })
        .unwrap_err();
    assert!(matches!(e, NemesisError::Refused { .. }), "{e}");
    assert!(e.to_string().contains("n1, n2, n3"), "{e}");
    assert!(e.to_string().contains("libfaketime"), "{e}");
    // Only the look for a control file went out: nothing changed.
    for x in &r {
        let sent = x.sent();
        assert!(sent.iter().all(|c| c.starts_with("test -f")), "{sent:?}");
    }
    assert!(n.env().active().unwrap().is_empty());
}

#[test]
fn clock_faults_on_armed_local_nodes_rewrite_the_faketime_file() {
    let mut nodes = Vec::new();
    let mut remotes = Vec::new();
    for i in 1..=3 {
        let r = Arc::new(FakeRemote {
            name: format!("n{i}"),
            faketime: true,
            ..FakeRemote::default()
        });
        let caps = Capabilities {
            can_skew_clock: false,
            ..REAL
        };
        nodes.push(Node::new(
            &format!("n{i}"),
            &format!("10.9.0.{i}"),
            r.clone(),
            caps,
            "/opt/faultline",
        ));
        remotes.push(r);
    }
    let n = nem(Cluster::new(nodes, ClusterKind::Hosts));
    let done = n
        .invoke(&Fault::BumpClock {
            targets: Targets::Nodes(vec!["n2".into()]),
            delta_ms: 500,
        })
        .unwrap();
    assert_eq!(done["bumped"], json!(["n2"]));
    assert_eq!(done["via"]["n2"], "libfaketime", "{done}");
    assert_eq!(done["faketime-offsets-ms"]["n2"], json!(500.0), "{done}");
    let sent = remotes[1].sent();
    let bump = sent
        .iter()
        .find(|c| c.contains("awk"))
        .expect("a bump of the control file");
    assert!(
        bump.contains("/opt/faultline/clock/faketime") && bump.contains("mv -f"),
        "{bump}"
    );
    // No real clock is touched on a local node.
    assert!(sent.iter().all(|c| !c.contains("date -u -s")), "{sent:?}");
    assert!(remotes[0].sent().iter().all(|c| c.starts_with("test -f")));
    assert!(n.env().active().unwrap().clock.contains("n2"));
    n.heal().unwrap();
    assert!(remotes
        .iter()
        .all(|r| r.sent().iter().any(|c| c.contains("echo +0 >"))));
    assert!(n.env().active().unwrap().clock.is_empty());
}

#[test]
fn netem_delay_and_partition_rules_on_real_hosts() {
    let (cluster, r) = hosts(REAL);
    let n = nem(cluster);
    let done = n
        .invoke(&Fault::StartPacket {
            targets: Targets::Nodes(vec!["n1".into()]),
            behavior: PacketBehavior {
                loss: Some(0.1),
                delay_ms: Some(100),
                ..PacketBehavior::default()
            },
        })
        .unwrap();
    assert_eq!(done["delay"][0]["via"], "netem", "{done}");
    let cmd = r[0].sent().join("\n");
    assert!(
        cmd.contains("tc qdisc replace dev \"$dev\" root netem delay 100ms"),
        "{cmd}"
    );
    assert!(
        cmd.contains(
            "-A FAULTLINE-PKT -s 10.9.0.2 -m statistic --mode random --probability 0.1 -j DROP"
        ),
        "{cmd}"
    );
    assert!(r[1].sent().is_empty());

    let done = n
        .invoke(&Fault::StartPartition(PartitionSpec::Halves))
        .unwrap();
    assert_eq!(done["components"], json!([["n1"], ["n2", "n3"]]));
    let n1 = r[0].sent().last().cloned().unwrap();
    assert!(n1.contains("-A FAULTLINE -s 10.9.0.2 -j DROP"), "{n1}");
    assert!(n1.contains("-A FAULTLINE -s 10.9.0.3 -j DROP"), "{n1}");
    let n2 = r[1].sent().last().cloned().unwrap();
    assert!(
        n2.contains("-s 10.9.0.1 ") && !n2.contains("-s 10.9.0.3 "),
        "{n2}"
    );

    let healed = n.heal().unwrap();
    assert_eq!(healed["partition"]["healed"], json!(["n1", "n2", "n3"]));
    assert_eq!(healed["db"], json!(null));
    for remote in &r {
        let all = remote.sent().join("\n");
        assert!(all.contains("iptables -w -X FAULTLINE "), "{all}");
        assert!(all.contains("iptables -w -X FAULTLINE-PKT"), "{all}");
        assert!(all.contains("tc qdisc del dev"), "{all}");
    }
    assert!(n.env().active().unwrap().is_empty());
}

#[test]
fn targets_resolve_in_cluster_order_and_unknown_nodes_are_named() {
    let (cluster, _) = hosts(REAL);
    let n = nem(cluster);
    let env = n.env();
    assert_eq!(env.resolve(&Targets::Majority).unwrap().len(), 2);
    assert_eq!(env.resolve(&Targets::Minority).unwrap().len(), 1);
    assert_eq!(env.resolve(&Targets::All).unwrap(), vec!["n1", "n2", "n3"]);
    assert_eq!(
        env.resolve(&Targets::Nodes(vec!["n3".into(), "n1".into()]))
            .unwrap(),
        vec!["n1", "n3"]
    );
    let e = env
        .resolve(&Targets::Nodes(vec!["n9".into()]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("n9") && e.contains("n1, n2, n3"), "{e}");
    // Primaries need a database to ask.
    assert!(env.resolve(&Targets::Primaries).is_err());
    // Same seed, same choices.
    let draws = || {
        let (c, _) = hosts(REAL);
        let fresh = nem(c);
        (0..10)
            .map(|_| fresh.env().resolve(&Targets::One).unwrap())
            .collect::<Vec<_>>()
    };
    let (a, b) = (draws(), draws());
    assert_eq!(a, b);
}

#[test]
fn heal_goes_on_past_an_unreachable_node_and_keeps_the_record() {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("nemesis.json");
    let (cluster, r) = hosts_down(REAL, "n2");
    let n = Nemeses::new(
        cluster,
        None,
        NemesisOptions {
            record: Some(record.clone()),
            ..NemesisOptions::default()
        },
    );
    let e = n
        .invoke(&Fault::StartPartition(PartitionSpec::Halves))
        .unwrap_err()
        .to_string();
    assert!(e.contains("n2") && e.contains("cannot connect"), "{e}");
    // The intent was recorded before anything was sent.
    assert!(!n.env().active().unwrap().partition.is_empty());
    let e = n.heal().unwrap_err().to_string();
    assert!(e.contains("n2"), "{e}");
    // The reachable nodes were healed all the same.
    for i in [0, 2] {
        let all = r[i].sent().join("\n");
        assert!(all.contains("iptables -w -X FAULTLINE "), "{all}");
    }
    assert!(record.exists(), "a failed heal must keep the record");
}

/// A db whose process stays stopped whatever it is sent.
#[derive(Debug)]
struct StuckDb;

impl crate::db::Db for StuckDb {
    fn name(&self) -> &str {
        "stuck"
    }
    fn install(&self, _node: &Node) -> Result<(), crate::db::DbError> {
        Ok(())
    }
    fn start(&self, _node: &Node) -> Result<(), crate::db::DbError> {
        Ok(())
    }
    fn is_running(&self, _node: &Node) -> Result<bool, crate::db::DbError> {
        Ok(true)
    }
    fn is_paused(&self, node: &Node) -> Result<bool, crate::db::DbError> {
        Ok(node.name() == "n2")
    }
    fn wait_healthy(&self, _nodes: &[Node], _t: Duration) -> Result<(), crate::db::DbError> {
        Ok(())
    }
    fn log_files(&self, _node: &Node) -> Vec<String> {
        Vec::new()
    }
}

fn with_db(cluster: Cluster, db: Arc<dyn crate::db::Db>, record: &Path) -> Nemeses {
    Nemeses::new(
        cluster,
        Some(db),
        NemesisOptions {
            record: Some(record.to_path_buf()),
            ..NemesisOptions::default()
        },
    )
}

fn recorded(db: &str) -> RecordedDb {
    RecordedDb {
        db: db.into(),
        nodes: vec!["n1".into(), "n2".into(), "n3".into()],
        ..RecordedDb::default()
    }
}

#[test]
fn heal_fails_while_a_process_stays_stopped_and_keeps_the_pause_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("nemesis.json");
    let (cluster, _) = hosts(REAL);
    let n = with_db(cluster, Arc::new(StuckDb), &record);
    n.env()
        .update(|a| {
            a.db = Some(recorded("stuck"));
            a.paused.insert("n2".into());
        })
        .unwrap();
    let e = n.heal().unwrap_err().to_string();
    assert!(
        e.contains("stuck is still stopped after SIGCONT on n2"),
        "{e}"
    );
    let left = n.env().active().unwrap();
    assert!(left.paused.contains("n2"), "{left:?}");
    assert_eq!(left.db, Some(recorded("stuck")));
}

#[test]
fn heal_of_a_db_that_runs_nowhere_fails_where_a_pause_was_recorded() {
    // The Redis run was paused on n1, but heal is given a db that runs on
    // no node (etcd, say): resuming and starting it heals nothing, so heal
    // must not claim success nor forget the pause.
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("nemesis.json");
    let (cluster, _) = hosts(REAL);
    let db = crate::system::memory::MemoryDb::registers();
    for node in cluster.nodes() {
        crate::db::Db::kill(&db, node).unwrap();
    }
    let n = with_db(cluster, Arc::new(db), &record);
    n.env()
        .update(|a| {
            a.db = Some(recorded("redis"));
            a.paused.insert("n1".into());
        })
        .unwrap();
    let e = n.heal().unwrap_err().to_string();
    assert!(
        e.contains("memory does not run on n1 after heal") && e.contains("pass --db"),
        "{e}"
    );
    assert!(n.env().active().unwrap().paused.contains("n1"));
}

#[test]
fn a_full_heal_resumes_the_paused_node_and_keeps_only_the_recorded_db() {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("nemesis.json");
    let (cluster, _) = hosts(REAL);
    let db = crate::system::memory::MemoryDb::registers();
    let n = with_db(cluster, Arc::new(db.clone()), &record);
    n.env().update(|a| a.db = Some(recorded("memory"))).unwrap();
    n.invoke(&Fault::Pause(Targets::Nodes(vec!["n3".into()])))
        .unwrap();
    assert_eq!(db.health("n3"), crate::system::memory::db::Health::Paused);
    let healed = n.heal().unwrap();
    assert_eq!(healed["db"]["resumed"], json!(["n3"]), "{healed}");
    assert_eq!(db.health("n3"), crate::system::memory::db::Health::Serving);
    let left = n.env().active().unwrap();
    assert!(!left.has_faults(), "{left:?}");
    assert_eq!(left.db, Some(recorded("memory")));
    assert!(record.exists(), "the recorded db stays after a heal");
}

/// A db that runs everywhere but does not serve (its cluster still split),
/// counting how often it was asked.
#[derive(Debug, Default)]
struct SplitDb {
    asked: Mutex<usize>,
}

impl crate::db::Db for SplitDb {
    fn name(&self) -> &str {
        "split"
    }
    fn install(&self, _node: &Node) -> Result<(), crate::db::DbError> {
        Ok(())
    }
    fn start(&self, _node: &Node) -> Result<(), crate::db::DbError> {
        Ok(())
    }
    fn is_running(&self, _node: &Node) -> Result<bool, crate::db::DbError> {
        Ok(true)
    }
    fn wait_healthy(&self, _nodes: &[Node], _t: Duration) -> Result<(), crate::db::DbError> {
        *self.asked.lock().unwrap() += 1;
        Err(crate::db::DbError::Unhealthy {
            db: "split".into(),
            waited: Duration::from_secs(30),
            nodes: vec!["n2: not running in its cluster (running: n2)".into()],
        })
    }
    fn log_files(&self, _node: &Node) -> Vec<String> {
        Vec::new()
    }
}

#[test]
fn heal_after_a_fault_waits_for_the_db_to_serve_and_fails_saying_so_when_it_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("nemesis.json");
    let (cluster, r) = hosts(REAL);
    let db = Arc::new(SplitDb::default());
    let n = with_db(cluster, db.clone(), &record);
    n.env().update(|a| a.db = Some(recorded("split"))).unwrap();
    // Nothing in force: a heal has nothing to wait for.
    n.heal().unwrap();
    assert_eq!(*db.asked.lock().unwrap(), 0);
    n.invoke(&Fault::StartPartition(PartitionSpec::Halves))
        .unwrap();
    let e = n.heal().unwrap_err().to_string();
    assert!(
        e.contains("every fault was undone, but split did not serve on every node within 30 s")
            && e.contains("n2: not running in its cluster"),
        "{e}"
    );
    assert_eq!(*db.asked.lock().unwrap(), 1);
    // The partition itself was lifted, and is no longer recorded.
    for remote in &r {
        let all = remote.sent().join("\n");
        assert!(all.contains("iptables -w -X FAULTLINE "), "{all}");
    }
    assert!(!n.env().active().unwrap().has_faults());
}
