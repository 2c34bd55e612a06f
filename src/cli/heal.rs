//! `faultline heal`: lifts every fault faultline may have left on a cluster
//! (partition and packet rules, delay programs, paused and killed database
//! processes, moved clocks), from a fresh process: after a controller was
//! killed, or by hand. Works with the record of active faults and without;
//! the database whose processes it resumes and restarts is the one the
//! record names (what the killed run set up), unless `--db` says otherwise.

use std::path::{Path, PathBuf};

use super::cluster::NodeArgs;
use crate::db::Db;
use crate::nemesis::{self, Nemeses, Nemesis, NemesisOptions, RecordFile, RecordedDb};

/// The database heal assumes when neither `--db` nor a record names one.
const DEFAULT_DB: &str = "etcd";

/// `heal` flags.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The database whose processes to resume and restart (a known one, or
    /// a db file: FILE.toml or file:PATH). Default: the one the record of
    /// active faults names (the last run's), else etcd.
    #[arg(long, value_parser = super::db::parse_db)]
    db: Option<String>,
    /// Heal the network (and clocks) only: leave database processes alone.
    #[arg(long)]
    no_db: bool,
    /// The server binary that was uploaded to the nodes (as for `db up`
    /// and `run`), so a restart runs the uploaded one. Default: the one
    /// the record names.
    #[arg(long, visible_alias = "etcd-binary", value_name = "PATH")]
    db_binary: Option<PathBuf>,
    /// The record of active faults (default: `nemesis.json` in the local
    /// cluster's state directory; none for real hosts).
    #[arg(long)]
    record: Option<PathBuf>,
    #[command(flatten)]
    nodes: NodeArgs,
}

/// The database a run recorded, configured as that run configured it (read
/// mode, binary, `--db-opt` settings), so restarted processes run as the
/// run started them. `db_binary` (heal's flag) wins over the recorded one.
fn configure_recorded(
    r: &RecordedDb,
    db_binary: Option<&Path>,
) -> anyhow::Result<Box<dyn crate::system::Configured>> {
    crate::system::find(&r.db)
        .ok_or_else(|| anyhow::anyhow!("the record names an unknown database {:?}", r.db))?
        .configure(&crate::system::Choice {
            db: &r.db,
            read_mode: &r.read_mode,
            binary: db_binary.or(r.binary.as_deref()),
            db_opts: &r.db_opts,
            ..crate::system::Choice::default()
        })
        .map_err(|e| anyhow::anyhow!("the recorded database {}: {e}", r.db))
}

/// Runs `faultline heal`. Exits non-zero, keeping the record, with what it
/// could not undo.
pub fn run(a: Args) -> anyhow::Result<i32> {
    // A db file named on the command line is loaded and checked before the
    // cluster is looked at.
    let explicit = match &a.db {
        Some(db) => Some(crate::system::with_defaults(db, a.db_binary.as_deref())?),
        None => None,
    };
    let cluster = a.nodes.cluster()?;
    let _lease = super::take_lease(&cluster, "heal")?;
    let record = a
        .record
        .clone()
        .or_else(|| nemesis::default_record_path(&cluster));
    // What the record holds; a record that does not parse is reported and
    // the sweep goes on without it.
    let recorded = match &record {
        Some(path) => match RecordFile::new(path.clone()).load() {
            Ok(r) => r,
            Err(e) => {
                eprintln!("warning: {e}; healing without it");
                Default::default()
            }
        },
        None => Default::default(),
    };
    if !recorded.is_empty() {
        println!("recorded faults: {}", serde_json::to_string(&recorded)?);
    }
    let db: Option<std::sync::Arc<dyn Db>> = if a.no_db {
        None
    } else {
        let configured = match explicit {
            Some(c) => c,
            None => match &recorded.db {
                Some(r) => configure_recorded(r, a.db_binary.as_deref())?,
                None => crate::system::with_defaults(DEFAULT_DB, a.db_binary.as_deref())?,
            },
        };
        Some(configured.deploy(cluster.nodes())?.db())
    };
    if let Some(db) = &db {
        println!("database: {}", db.name());
    }
    let nem = Nemeses::new(
        cluster,
        db,
        NemesisOptions {
            record: record.clone(),
            ..NemesisOptions::default()
        },
    );
    let done = nem
        .heal()
        .map_err(|e| anyhow::anyhow!("heal could not undo everything (the record stays): {e}"))?;
    // Everything healed is undone: with nothing left to remember, the
    // database goes too (the next run records its own). Process faults
    // left alone by --no-db stay, with their database.
    if let Some(r) = nem.env().record() {
        r.update(|x| {
            if !x.has_faults() {
                *x = Default::default();
            }
        })?;
    }
    println!("healed: {done}");
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{Capabilities, Node};
    use crate::control::{ControlError, Output, Remote};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    /// A node that runs nothing and keeps every command it is sent.
    #[derive(Debug, Default)]
    struct Sent(Mutex<Vec<String>>);

    impl Remote for Sent {
        fn node(&self) -> &str {
            "n1"
        }
        fn default_timeout(&self) -> Duration {
            Duration::from_secs(1)
        }
        fn exec_timeout(&self, command: &str, _t: Duration) -> Result<Output, ControlError> {
            self.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(command.to_string());
            Ok(Output {
                status: 0,
                signal: None,
                stdout: String::new(),
                stderr: String::new(),
            })
        }
        fn upload(&self, _l: &Path, _r: &str, _m: i32) -> Result<(), ControlError> {
            Ok(())
        }
        fn download(&self, _r: &str, _l: &Path) -> Result<(), ControlError> {
            Ok(())
        }
    }

    /// A real host's capabilities (nothing in this test uses them).
    const HOST: Capabilities = Capabilities {
        can_skew_clock: true,
        has_netem: true,
        has_iptables: true,
        shares_host: false,
    };

    #[test]
    fn heal_restarts_etcd_with_the_recorded_db_opts() {
        let dir = tempfile::tempdir().unwrap();
        let file = RecordFile::new(dir.path().join("nemesis.json"));
        let run = RecordedDb {
            db: "etcd".into(),
            db_opts: vec!["heartbeat-interval=200".into()],
            nodes: vec!["n1".into()],
            ..RecordedDb::default()
        };
        file.update(|a| {
            a.db = Some(run.clone());
            a.killed.insert("n1".into());
        })
        .unwrap();
        // A fresh process reads the record back whole.
        let recorded = file.load().unwrap().db.unwrap();
        assert_eq!(recorded, run);

        let remote = Arc::new(Sent::default());
        let node = Node::new("n1", "10.0.0.1", remote.clone(), HOST, "/w/n1");
        let db = configure_recorded(&recorded, None)
            .unwrap()
            .deploy(std::slice::from_ref(&node))
            .unwrap()
            .db();
        db.start(&node).unwrap();
        let sent = remote.0.lock().unwrap().clone();
        let start = sent
            .iter()
            .find(|c| c.contains("--initial-cluster="))
            .unwrap_or_else(|| panic!("no etcd start command among {sent:?}"));
        assert!(start.contains("--heartbeat-interval=200"), "{start}");

        // Without the recorded settings the restart would lack the flag.
        let bare = RecordedDb {
            db_opts: Vec::new(),
            ..recorded
        };
        let remote = Arc::new(Sent::default());
        let node = Node::new("n1", "10.0.0.1", remote.clone(), HOST, "/w/n1");
        let db = configure_recorded(&bare, None)
            .unwrap()
            .deploy(std::slice::from_ref(&node))
            .unwrap()
            .db();
        db.start(&node).unwrap();
        let sent = remote.0.lock().unwrap().clone();
        assert!(
            sent.iter().all(|c| !c.contains("heartbeat-interval")),
            "{sent:?}"
        );
    }
}
