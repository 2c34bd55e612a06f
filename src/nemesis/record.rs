//! The record of active faults: a small JSON file, rewritten atomically
//! before each fault is injected, so a fresh `faultline heal` knows what a
//! killed controller left behind. A run also records its database there
//! before set-up (which system, on which nodes, and what rebuilds it: a db
//! file's path, an uploaded server binary, the read mode, the `--db-opt`
//! settings), so heal resumes and restarts that database's processes as
//! the run started them, without being told. Heal never depends on the
//! record alone: without one it sweeps every node for anything faultline
//! could have done.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::NemesisError;

/// The database a run set up, as `faultline heal` rebuilds it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RecordedDb {
    /// The `--db` value: a system's name, or `file:` and a db file's
    /// absolute path.
    pub db: String,
    /// The read mode the run used (empty: the system's default).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub read_mode: String,
    /// The server binary the run uploaded (`--db-binary`), so a restart
    /// runs the uploaded one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary: Option<PathBuf>,
    /// The binary the rolling upgrade puts in its place
    /// (`--db-binary-next`), so heal can say which one each node runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary_next: Option<PathBuf>,
    /// The run's `--db-opt` settings (`KEY=VALUE`), so a restart passes
    /// them again: etcd takes them as flags, which no file keeps.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub db_opts: Vec<String>,
    /// The nodes it was set up on.
    #[serde(default)]
    pub nodes: Vec<String>,
}

/// The faults in force, by node name, and the database they hit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ActiveFaults {
    /// The database the run set up, when a run recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db: Option<RecordedDb>,
    /// The partition's grudge: node → peers it drops.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub partition: BTreeMap<String, BTreeSet<String>>,
    /// Nodes with packet-loss rules.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub packet: BTreeSet<String>,
    /// Nodes with delayed traffic (netem or the NFQUEUE delay program).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub delayed: BTreeSet<String>,
    /// Nodes whose database was killed and not yet restarted.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub killed: BTreeSet<String>,
    /// Nodes whose database was paused and not yet resumed.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub paused: BTreeSet<String>,
    /// Nodes whose clock was moved.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub clock: BTreeSet<String>,
    /// Nodes whose data files were corrupted (and not yet restarted on).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub corrupted: BTreeSet<String>,
    /// Nodes with a snapshot of their data folder (for a rollback).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub snapshots: BTreeSet<String>,
    /// Nodes whose data folder is mounted through the lazyfs filesystem.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub lazyfs: BTreeSet<String>,
    /// Nodes whose db was killed by lose-unfsynced and not yet restarted.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub lost: BTreeSet<String>,
    /// Nodes whose member was removed from the database's cluster and not
    /// yet added back.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub membership: BTreeSet<String>,
}

impl ActiveFaults {
    /// True when nothing is recorded, not even a database.
    pub fn is_empty(&self) -> bool {
        *self == ActiveFaults::default()
    }

    /// True when some fault is recorded (the database aside).
    pub fn has_faults(&self) -> bool {
        *self != self.db_only()
    }

    /// The record with its faults dropped: the database alone.
    pub fn db_only(&self) -> ActiveFaults {
        ActiveFaults {
            db: self.db.clone(),
            ..ActiveFaults::default()
        }
    }
}

/// The record file. A lock serialises updates from the threads of one
/// process; one controller per cluster is assumed.
#[derive(Debug)]
pub struct RecordFile {
    path: PathBuf,
    lock: Mutex<()>,
}

impl RecordFile {
    /// The record at `path` (created on first update).
    pub fn new(path: PathBuf) -> RecordFile {
        RecordFile {
            path,
            lock: Mutex::new(()),
        }
    }

    /// Where it lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, reason: impl ToString) -> NemesisError {
        NemesisError::Record {
            path: self.path.clone(),
            reason: reason.to_string(),
        }
    }

    /// The recorded faults; empty when there is no file. A file that does
    /// not parse is an error: heal reports it, then sweeps anyway.
    pub fn load(&self) -> Result<ActiveFaults, NemesisError> {
        match fs::read_to_string(&self.path) {
            Ok(text) if text.trim().is_empty() => Ok(ActiveFaults::default()),
            Ok(text) => serde_json::from_str(&text).map_err(|e| self.err(e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ActiveFaults::default()),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Loads, changes with `f`, and writes back atomically (temporary file,
    /// fsync, rename), so a crash leaves the old or the new record, never
    /// half of one. An empty record removes the file.
    pub fn update(&self, f: impl FnOnce(&mut ActiveFaults)) -> Result<(), NemesisError> {
        let _g = match self.lock.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        // A corrupt record is replaced: what it held is swept by heal.
        let mut faults = self.load().unwrap_or_default();
        f(&mut faults);
        if faults.is_empty() {
            return self.remove_locked();
        }
        if let Some(dir) = self.path.parent() {
            fs::create_dir_all(dir).map_err(|e| self.err(e))?;
        }
        let tmp = self.path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(&faults).map_err(|e| self.err(e))?;
        let mut file = fs::File::create(&tmp).map_err(|e| self.err(e))?;
        file.write_all(text.as_bytes()).map_err(|e| self.err(e))?;
        file.sync_all().map_err(|e| self.err(e))?;
        fs::rename(&tmp, &self.path).map_err(|e| self.err(e))
    }

    /// Removes the record (after a full heal). No file is fine.
    pub fn remove(&self) -> Result<(), NemesisError> {
        let _g = match self.lock.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        self.remove_locked()
    }

    fn remove_locked(&self) -> Result<(), NemesisError> {
        match fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_load_and_remove() {
        let dir = tempfile::tempdir().unwrap();
        let r = RecordFile::new(dir.path().join("sub/nemesis.json"));
        assert!(r.load().unwrap().is_empty());
        r.update(|f| {
            f.killed.insert("n2".into());
        })
        .unwrap();
        r.update(|f| {
            f.paused.insert("n1".into());
        })
        .unwrap();
        let got = r.load().unwrap();
        assert!(got.killed.contains("n2") && got.paused.contains("n1"));
        // Emptying it removes the file.
        r.update(|f| *f = ActiveFaults::default()).unwrap();
        assert!(!r.path().exists());
        r.remove().unwrap();
    }

    #[test]
    fn the_recorded_db_outlives_its_faults_and_an_empty_record_goes() {
        let dir = tempfile::tempdir().unwrap();
        let r = RecordFile::new(dir.path().join("nemesis.json"));
        let db = RecordedDb {
            db: "redis".into(),
            db_opts: vec!["appendfsync=always".into()],
            nodes: vec!["n1".into(), "n2".into()],
            ..RecordedDb::default()
        };
        r.update(|f| f.db = Some(db.clone())).unwrap();
        let got = r.load().unwrap();
        assert!(!got.is_empty() && !got.has_faults(), "{got:?}");
        r.update(|f| {
            f.paused.insert("n1".into());
        })
        .unwrap();
        let got = r.load().unwrap();
        assert!(got.has_faults());
        assert_eq!(got.db.as_ref(), Some(&db));
        // What a full heal leaves: the db alone, still on disk.
        r.update(|f| *f = f.db_only()).unwrap();
        assert_eq!(
            r.load().unwrap(),
            ActiveFaults {
                db: Some(db),
                ..ActiveFaults::default()
            }
        );
        r.update(|f| f.db = None).unwrap();
        assert!(!r.path().exists());
    }

    #[test]
    fn corrupt_record_is_an_error_naming_the_file_and_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nemesis.json");
        fs::write(&path, "{not json").unwrap();
        let r = RecordFile::new(path.clone());
        let e = r.load().unwrap_err().to_string();
        assert!(e.contains("nemesis.json"), "{e}");
        r.update(|f| {
            f.clock.insert("n1".into());
        })
        .unwrap();
        assert!(r.load().unwrap().clock.contains("n1"));
    }
}
