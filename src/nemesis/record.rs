//! The record of active faults: a small JSON file, rewritten atomically
//! before each fault is injected, so a fresh `faultline heal` knows what a
//! killed controller left behind. Heal never depends on it alone: without a
//! record it sweeps every node for anything faultline could have done.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::NemesisError;

/// The faults in force, by node name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ActiveFaults {
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
}

impl ActiveFaults {
    /// True when nothing is recorded.
    pub fn is_empty(&self) -> bool {
        *self == ActiveFaults::default()
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
