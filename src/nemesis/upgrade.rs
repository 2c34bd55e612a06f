//! The rolling upgrade: `upgrade` takes the next node still on the first
//! binary (`--db-binary`), in cluster order, or the nodes it names, one at
//! a time: stops the database there (SIGTERM, as an operator would),
//! puts the next binary (`--db-binary-next`, which the run records with
//! its database before set-up) in place of its server
//! binary (uploaded and checked by size and sha256,
//! [`crate::db::DbBinary::install_at`]), starts it and waits until it
//! serves before it goes on. The completion records each node's steps and
//! the nodes left; once none is, the schedule stops asking.
//!
//! Heal has nothing to put back: a node stopped by an upgrade is recorded
//! as killed before its stop, so the process heal starts it again on
//! whichever binary it holds (the upload replaces the file whole or not
//! at all). Heal reports which binary each node holds, by comparing the
//! node's file with the two binaries the record names.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use super::{Env, Fault, NemesisError, Targets};
use crate::cluster::Node;
use crate::db::binary::digest_on;
use crate::db::{Db, DbBinary, Installed};

/// How long a node restarted on the next binary may take to serve.
const HEALTHY_WITHIN: Duration = Duration::from_secs(60);

/// Replaces the database's server binary one node at a time.
#[derive(Debug)]
pub struct UpgradeNemesis {
    env: Arc<Env>,
    /// The next binary the record's database names, read and hashed once.
    opened: Mutex<Option<DbBinary>>,
    /// The nodes this process has upgraded.
    upgraded: Mutex<BTreeSet<String>>,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl UpgradeNemesis {
    /// Rolling upgrades of `env`'s database to the next binary the
    /// record's database names (`RecordedDb::binary_next`).
    pub fn new(env: Arc<Env>) -> UpgradeNemesis {
        UpgradeNemesis {
            env,
            opened: Mutex::new(None),
            upgraded: Mutex::new(BTreeSet::new()),
        }
    }

    fn refused(reason: String) -> NemesisError {
        NemesisError::Refused {
            fault: "upgrade".into(),
            reason,
        }
    }

    /// The next binary, opened once.
    fn next_binary(&self) -> Result<DbBinary, NemesisError> {
        let mut opened = locked(&self.opened);
        if let Some(b) = opened.as_ref() {
            return Ok(b.clone());
        }
        let path = self
            .env
            .active()?
            .db
            .and_then(|d| d.binary_next)
            .ok_or_else(|| {
                Self::refused("no next binary was given (--db-binary-next PATH)".into())
            })?;
        let b = DbBinary::open(&path).map_err(|e| Self::refused(format!("the next binary {e}")))?;
        *opened = Some(b.clone());
        Ok(b)
    }

    /// The nodes the database runs a daemon on, in cluster order.
    fn db_nodes(&self, db: &dyn Db) -> Vec<Node> {
        self.env
            .cluster()
            .nodes()
            .iter()
            .filter(|n| db.daemon_on(n).is_some())
            .cloned()
            .collect()
    }

    fn upgrade(&self, targets: &Targets) -> Result<Value, NemesisError> {
        let db = self
            .env
            .db()
            .ok_or_else(|| Self::refused("no database was given to the nemesis".into()))?;
        let next = self.next_binary()?;
        let nodes = self.db_nodes(db.as_ref());
        let remaining = |upgraded: &BTreeSet<String>| -> Vec<String> {
            nodes
                .iter()
                .map(|n| n.name().to_string())
                .filter(|n| !upgraded.contains(n))
                .collect()
        };
        let left = remaining(&locked(&self.upgraded));
        let chosen: Vec<String> = match targets {
            // The rolling order: the first node still on the first binary.
            Targets::One => left.first().cloned().into_iter().collect(),
            other => self
                .env
                .resolve(other)?
                .into_iter()
                .filter(|n| left.contains(n))
                .collect(),
        };
        if chosen.is_empty() {
            return Err(Self::refused(format!(
                "no node named by {} is left on the first binary (upgraded: {})",
                targets.to_value(),
                locked(&self.upgraded)
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let mut steps = Vec::new();
        for name in &chosen {
            let node = self.env.node(name)?.clone();
            let step = self.upgrade_node(db.as_ref(), &node, &next).map_err(|e| {
                // What took effect before the failure, for the history.
                let before = if steps.is_empty() {
                    String::new()
                } else {
                    format!("after upgrading {}: ", steps_nodes(&steps))
                };
                NemesisError::Invalid(format!("{before}{e}"))
            })?;
            locked(&self.upgraded).insert(name.clone());
            steps.push(step);
        }
        let upgraded = locked(&self.upgraded).clone();
        Ok(json!({
            "upgraded": steps,
            "to": next.to_value(),
            "on-next": upgraded,
            "remaining": remaining(&upgraded),
        }))
    }

    /// Stop, replace, start and wait on one node; the error says which
    /// steps were done (a stopped node is recorded killed, so heal starts
    /// it again).
    fn upgrade_node(&self, db: &dyn Db, node: &Node, next: &DbBinary) -> Result<Value, String> {
        let name = node.name().to_string();
        let path = db.server_binary(node).ok_or_else(|| {
            format!(
                "{name}: {} runs the Debian package's program, not an uploaded binary \
                 (--db-binary)",
                db.name()
            )
        })?;
        let from = digest_on(node, &path)
            .map_err(|e| format!("{name}: reading {path}: {e}"))?
            .map(|(size, sha256)| json!({ "size": size, "sha256": sha256 }));
        let t0 = Instant::now();
        self.env
            .update(|a| {
                a.killed.insert(name.clone());
            })
            .map_err(|e| e.to_string())?;
        db.stop(node)
            .map_err(|e| format!("{name}: stopping {}: {e}", db.name()))?;
        let stopped_s = t0.elapsed().as_secs_f64();
        let installed = next.install_at(db.name(), node, &path).map_err(|e| {
            format!(
                "{name}: stopped, then replacing {path} failed: {e} (the first binary \
                 stays; heal starts it)"
            )
        })?;
        db.start(node).map_err(|e| {
            format!("{name}: stopped and replaced, then starting failed: {e} (heal starts it)")
        })?;
        db.wait_healthy(std::slice::from_ref(node), HEALTHY_WITHIN)
            .map_err(|e| format!("{name}: stopped, replaced and started, but {e}"))?;
        self.env
            .update(|a| {
                a.killed.remove(&name);
            })
            .map_err(|e| e.to_string())?;
        Ok(json!({
            "node": name,
            "stopped": true,
            "stopped-after-s": round_ms(stopped_s),
            "from": from,
            "replaced": path,
            "uploaded": installed == Installed::Uploaded,
            "started": true,
            "healthy-after-s": round_ms(t0.elapsed().as_secs_f64()),
        }))
    }

    /// Which binary each node holds: `first`, `next` (both when they are
    /// the same file), or `other`, with the file's sha256.
    fn report(&self) -> Result<Value, NemesisError> {
        let Some(db) = self.env.db() else {
            return Ok(Value::Null);
        };
        let recorded = self.env.active()?.db;
        let open = |p: Option<PathBuf>| p.and_then(|p| DbBinary::open(&p).ok());
        let first = open(recorded.as_ref().and_then(|r| r.binary.clone()));
        let next = match locked(&self.opened).clone() {
            Some(b) => Some(b),
            None => open(recorded.as_ref().and_then(|r| r.binary_next.clone())),
        };
        let nodes = self.db_nodes(db.as_ref());
        let paths: Vec<Option<String>> = nodes.iter().map(|n| db.server_binary(n)).collect();
        if paths.iter().all(Option::is_none) {
            return Ok(Value::Null);
        }
        let digests = crate::control::parallel(&nodes, |n| match db.server_binary(n) {
            Some(p) => digest_on(n, &p).map(|d| (p, d)),
            None => Ok((String::new(), None)),
        });
        let mut out = Map::new();
        for (n, d) in nodes.iter().zip(digests) {
            let (path, digest) = d?;
            let names: Vec<&str> = [("first", &first), ("next", &next)]
                .into_iter()
                .filter(|(_, b)| b.as_ref().is_some_and(|b| b.matches(&digest)))
                .map(|(name, _)| name)
                .collect();
            let which = match (&digest, names.as_slice()) {
                (None, _) => format!("no binary at {path}"),
                (Some((_, sha)), []) => format!("another binary (sha256 {sha}) at {path}"),
                (Some((_, sha)), names) => {
                    format!("the {} binary (sha256 {sha}) at {path}", names.join(" = "))
                }
            };
            out.insert(n.name().to_string(), Value::String(which));
        }
        Ok(json!({ "binaries": out }))
    }
}

fn steps_nodes(steps: &[Value]) -> String {
    steps
        .iter()
        .filter_map(|s| s["node"].as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn round_ms(s: f64) -> f64 {
    (s * 1000.0).round() / 1000.0
}

impl super::Nemesis for UpgradeNemesis {
    fn name(&self) -> &'static str {
        "upgrade"
    }

    fn handles(&self, fault: &Fault) -> bool {
        matches!(fault, Fault::Upgrade(_))
    }

    fn invoke(&self, fault: &Fault) -> Result<Value, NemesisError> {
        match fault {
            Fault::Upgrade(t) => self.upgrade(t),
            other => Err(NemesisError::Invalid(format!(
                "upgrade nemesis cannot {}",
                other.f()
            ))),
        }
    }

    /// Nothing to undo (an upgrade is no fault to lift, and a node it
    /// stopped is recorded killed, which the process heal restarts):
    /// reports which binary each node holds.
    fn heal(&self) -> Result<Value, NemesisError> {
        self.report()
    }
}

#[cfg(test)]
mod tests {
    //! The upgrade against nodes that are folders of this machine (their
    //! commands run by `sh`, uploads copied), with a db that only logs its
    //! steps: the order of the steps, the record, what the completion says,
    //! the rolling order and what heal reports.

    use super::*;
    use crate::cluster::{Capabilities, Cluster, ClusterKind};
    use crate::control::{ControlError, Output, Remote};
    use crate::db::{DbError, NodeDaemon};
    use crate::nemesis::{Nemesis, RecordFile, RecordedDb};
    use std::path::Path;

    /// A node whose commands run in this machine's shell.
    #[derive(Debug)]
    struct Shell(String);

    impl Remote for Shell {
        fn node(&self) -> &str {
            &self.0
        }
        fn default_timeout(&self) -> Duration {
            Duration::from_secs(10)
        }
        fn exec_timeout(&self, command: &str, _t: Duration) -> Result<Output, ControlError> {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(command)
                .output()
                .map_err(|e| {
                    ControlError::new(
                        &self.0,
                        command,
                        crate::control::ErrorKind::Session(e.to_string()),
                    )
                })?;
            Ok(Output {
                status: out.status.code().unwrap_or(-1),
                signal: None,
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            })
        }
        fn upload(&self, local: &Path, remote: &str, _mode: i32) -> Result<(), ControlError> {
            std::fs::copy(local, remote).map(|_| ()).map_err(|e| {
                ControlError::new(
                    &self.0,
                    "upload",
                    crate::control::ErrorKind::Transfer(e.to_string()),
                )
            })
        }
        fn download(&self, _r: &str, _l: &Path) -> Result<(), ControlError> {
            Ok(())
        }
    }

    /// A db whose server binary is `<work>/bin/db`, and which logs its steps
    /// with the sha256 of the binary at each start.
    #[derive(Debug, Default)]
    struct Logged(Mutex<Vec<String>>);

    impl Db for Logged {
        fn name(&self) -> &str {
            "logged"
        }
        fn install(&self, _n: &Node) -> Result<(), DbError> {
            Ok(())
        }
        fn server_binary(&self, node: &Node) -> Option<String> {
            Some(format!("{}/bin/db", node.work_dir()))
        }
        fn daemon_on(&self, node: &Node) -> Option<NodeDaemon> {
            Some(NodeDaemon {
                daemon: crate::db::daemon::Daemon::new(
                    "db",
                    "/nonexistent/pid",
                    "/nonexistent/log",
                ),
                dir: node.work_dir().to_string(),
            })
        }
        fn stop(&self, node: &Node) -> Result<(), DbError> {
            locked(&self.0).push(format!("stop {}", node.name()));
            Ok(())
        }
        fn start(&self, node: &Node) -> Result<(), DbError> {
            let held = digest_on(node, &self.server_binary(node).unwrap_or_default())?;
            let sha = held.map(|(_, s)| s[..8].to_string()).unwrap_or_default();
            locked(&self.0).push(format!("start {} {sha}", node.name()));
            Ok(())
        }
        fn wait_healthy(&self, nodes: &[Node], _t: Duration) -> Result<(), DbError> {
            for n in nodes {
                locked(&self.0).push(format!("healthy {}", n.name()));
            }
            Ok(())
        }
        fn log_files(&self, _n: &Node) -> Vec<String> {
            Vec::new()
        }
    }

    const HOST: Capabilities = Capabilities {
        can_skew_clock: true,
        has_netem: true,
        has_iptables: true,
        shares_host: false,
    };

    #[test]
    fn a_rolling_upgrade_replaces_and_restarts_one_node_at_a_time_and_heal_says_which_binary() {
        let dir = tempfile::tempdir().unwrap();
        let (first, next) = (dir.path().join("first"), dir.path().join("next"));
        std::fs::write(&first, b"first build").unwrap();
        std::fs::write(&next, b"next build").unwrap();
        let first_bin = DbBinary::open(&first).unwrap();
        let next_bin = DbBinary::open(&next).unwrap();
        let mut nodes = Vec::new();
        for i in 1..=3 {
            let work = dir.path().join(format!("n{i}"));
            let node = Node::new(
                &format!("n{i}"),
                &format!("10.9.0.{i}"),
                Arc::new(Shell(format!("n{i}"))),
                HOST,
                &work.display().to_string(),
            );
            // Set up on the first binary.
            assert_eq!(
                first_bin
                    .install_at("logged", &node, &format!("{}/bin/db", work.display()))
                    .unwrap(),
                Installed::Uploaded
            );
            nodes.push(node);
        }
        // Installing the same file again sends nothing.
        assert_eq!(
            first_bin
                .install_at(
                    "logged",
                    &nodes[0],
                    &format!("{}/n1/bin/db", dir.path().display())
                )
                .unwrap(),
            Installed::AlreadyThere
        );
        let record = dir.path().join("nemesis.json");
        RecordFile::new(record.clone())
            .update(|a| {
                a.db = Some(RecordedDb {
                    db: "logged".into(),
                    binary: Some(first.clone()),
                    binary_next: Some(next.clone()),
                    ..RecordedDb::default()
                })
            })
            .unwrap();
        let db = Arc::new(Logged::default());
        let cluster = Cluster::new(nodes, ClusterKind::Hosts);
        let env = Arc::new(Env::new(
            cluster.clone(),
            Some(db.clone()),
            1,
            Some(record.clone()),
        ));
        // The next binary comes from the record, as for a fresh process.
        let nem = UpgradeNemesis::new(env.clone());

        let v = nem.invoke(&Fault::Upgrade(Targets::One)).unwrap();
        assert_eq!(v["upgraded"][0]["node"], "n1", "{v}");
        assert_eq!(v["upgraded"][0]["uploaded"], true, "{v}");
        assert_eq!(
            v["upgraded"][0]["from"]["sha256"],
            json!(first_bin.sha256),
            "{v}"
        );
        assert_eq!(v["to"]["sha256"], json!(next_bin.sha256), "{v}");
        assert_eq!(v["remaining"], json!(["n2", "n3"]), "{v}");
        let short = &next_bin.sha256[..8];
        assert_eq!(
            locked(&db.0).clone(),
            vec![
                "stop n1".to_string(),
                format!("start n1 {short}"),
                "healthy n1".into()
            ]
        );
        // Nothing stays recorded killed once the node serves again.
        assert!(env.active().unwrap().killed.is_empty());

        // A node by name, then the rolling order goes on with the rest.
        let v = nem
            .invoke(&Fault::Upgrade(Targets::Nodes(vec!["n3".into()])))
            .unwrap();
        assert_eq!(v["remaining"], json!(["n2"]), "{v}");
        let v = nem.invoke(&Fault::Upgrade(Targets::One)).unwrap();
        assert_eq!(v["upgraded"][0]["node"], "n2", "{v}");
        assert_eq!(v["remaining"], json!([]), "{v}");
        assert_eq!(v["on-next"], json!(["n1", "n2", "n3"]), "{v}");
        // Every node upgraded: another upgrade is refused, saying so.
        let e = nem
            .invoke(&Fault::Upgrade(Targets::One))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("upgrade refused: no node") && e.contains("n1, n2, n3"),
            "{e}"
        );

        // A fresh process's heal names the binary each node holds.
        let fresh = UpgradeNemesis::new(Arc::new(Env::new(
            cluster.clone(),
            Some(db.clone()),
            1,
            Some(record),
        )));
        let healed = fresh.heal().unwrap();
        for n in ["n1", "n2", "n3"] {
            let said = healed["binaries"][n].as_str().unwrap_or_default();
            assert!(
                said.starts_with("the next binary") && said.contains(&next_bin.sha256),
                "{n}: {healed}"
            );
        }
    }

    #[test]
    fn without_a_next_binary_or_an_uploaded_one_the_upgrade_is_refused_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let node = Node::new(
            "n1",
            "10.9.0.1",
            Arc::new(Shell("n1".into())),
            HOST,
            &dir.path().display().to_string(),
        );
        let db = Arc::new(Logged::default());
        let env = Arc::new(Env::new(
            Cluster::new(vec![node], ClusterKind::Hosts),
            Some(db.clone()),
            1,
            None,
        ));
        let e = UpgradeNemesis::new(env)
            .invoke(&Fault::Upgrade(Targets::One))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "upgrade refused: no next binary was given (--db-binary-next PATH)"
        );
        assert!(locked(&db.0).is_empty());
    }
}
