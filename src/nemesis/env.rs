//! [`Env`]: what every nemesis shares — the cluster, the database, the
//! seeded RNG that picks target nodes, and the record of active faults.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use rand::seq::{IndexedRandom, SliceRandom};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::{grudge, ActiveFaults, NemesisError, RecordFile, Targets};
use crate::cluster::{Cluster, Node};
use crate::db::Db;

/// What every nemesis shares: the cluster, the database, the seeded RNG
/// for target choice, and the record of active faults.
#[derive(Debug)]
pub struct Env {
    cluster: Cluster,
    db: Option<Arc<dyn Db>>,
    rng: Mutex<ChaCha8Rng>,
    record: Option<RecordFile>,
    /// The active faults of this process, kept when there is no record
    /// file so a `start` still knows what this process killed.
    memory: Mutex<ActiveFaults>,
}

impl Env {
    /// An environment for `cluster`, with `db` for kills and pauses (and
    /// leader lookups), target choices drawn from `seed`, and the active
    /// faults kept in `record` (a JSON file) when given.
    pub fn new(
        cluster: Cluster,
        db: Option<Arc<dyn Db>>,
        seed: u64,
        record: Option<PathBuf>,
    ) -> Env {
        Env {
            cluster,
            db,
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed)),
            record: record.map(RecordFile::new),
            memory: Mutex::new(ActiveFaults::default()),
        }
    }

    /// The cluster.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// The database, if one was given.
    pub fn db(&self) -> Option<&Arc<dyn Db>> {
        self.db.as_ref()
    }

    /// The record file, if any.
    pub fn record(&self) -> Option<&RecordFile> {
        self.record.as_ref()
    }

    pub(crate) fn rng(&self) -> MutexGuard<'_, ChaCha8Rng> {
        // A panic while holding the RNG leaves it usable: it is only numbers.
        match self.rng.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn memory(&self) -> MutexGuard<'_, ActiveFaults> {
        match self.memory.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// The active faults: the record file's when there is one (it may hold
    /// another process's faults), else those of this process.
    pub fn active(&self) -> Result<ActiveFaults, NemesisError> {
        match &self.record {
            Some(r) => r.load(),
            None => Ok(self.memory().clone()),
        }
    }

    /// Changes the record (no-op without one). Called *before* a fault is
    /// injected, so a controller killed halfway leaves the intent on disk.
    pub(crate) fn update(&self, f: impl FnOnce(&mut ActiveFaults)) -> Result<(), NemesisError> {
        match &self.record {
            Some(r) => r.update(f),
            None => {
                f(&mut self.memory());
                Ok(())
            }
        }
    }

    fn names(&self) -> Vec<String> {
        self.cluster
            .nodes()
            .iter()
            .map(|n| n.name().to_string())
            .collect()
    }

    pub(crate) fn node(&self, name: &str) -> Result<&Node, NemesisError> {
        self.cluster.node(name).ok_or_else(|| {
            NemesisError::Invalid(format!(
                "no node named {name:?} (nodes: {})",
                self.names().join(", ")
            ))
        })
    }

    /// The current leaders, by name; an error when none is known.
    pub(crate) fn primaries(&self) -> Result<Vec<String>, NemesisError> {
        let db = self.db.as_ref().ok_or_else(|| {
            NemesisError::Invalid("targeting primaries needs a database to ask".into())
        })?;
        let p = db.primaries(self.cluster.nodes())?;
        if p.is_empty() {
            return Err(NemesisError::Invalid(format!(
                "{} reports no primary on any node",
                db.name()
            )));
        }
        Ok(p)
    }

    /// Resolves targets to node names, in cluster order.
    pub fn resolve(&self, targets: &Targets) -> Result<Vec<String>, NemesisError> {
        let all = self.names();
        let n = all.len();
        let chosen: Vec<String> = match targets {
            Targets::All => all.clone(),
            Targets::One => all.choose(&mut *self.rng()).cloned().into_iter().collect(),
            Targets::Minority | Targets::Majority => {
                let k = match targets {
                    Targets::Minority => (grudge::majority(n) - 1).max(1),
                    _ => grudge::majority(n),
                };
                let mut shuffled = all.clone();
                shuffled.shuffle(&mut *self.rng());
                shuffled.truncate(k.min(n));
                shuffled
            }
            Targets::Primaries => self.primaries()?,
            Targets::Nodes(names) => {
                for name in names {
                    self.node(name)?;
                }
                names.clone()
            }
        };
        if chosen.is_empty() {
            return Err(NemesisError::Invalid("the cluster has no nodes".into()));
        }
        Ok(all.into_iter().filter(|n| chosen.contains(n)).collect())
    }
}

/// The faultline binary that runs `subcommand` (a helper program such as
/// `nfq-packet` or `lazyfs`) on `node`: `local` itself when the node can
/// see and run it (the local cluster), else `local` uploaded into the
/// node's work folder. Refused for `fault` when no binary is known (`what`
/// names the program).
pub fn faultline_on(
    node: &Node,
    local: Option<&std::path::Path>,
    subcommand: &str,
    fault: &str,
    what: &str,
) -> Result<String, NemesisError> {
    use crate::control::shell_quote;
    let local = local.ok_or_else(|| NemesisError::Refused {
        fault: fault.into(),
        reason: format!("no faultline binary known to run {what}"),
    })?;
    let path = local.display().to_string();
    let source = upload_source(local);
    if source == local
        && node.capabilities().shares_host
        && node
            .exec(&format!(
                "{} {subcommand} --help >/dev/null 2>&1",
                shell_quote(&path)
            ))?
            .success()
    {
        return Ok(path);
    }
    let remote = format!("{}/bin/faultline", node.work_dir());
    node.run(&format!("mkdir -p {}/bin", shell_quote(node.work_dir())))?;
    node.upload(&source, &remote, 0o755)?;
    Ok(remote)
}

/// What to upload for the binary at `local`: `local` itself, or, when it
/// is this program's own path and the file was replaced while the run
/// went on (a rebuild: the kernel then names it `PATH (deleted)`), the
/// running program as `/proc/self/exe` still shows it.
fn upload_source(local: &std::path::Path) -> std::path::PathBuf {
    let replaced = !local.exists() && local.to_string_lossy().ends_with(" (deleted)");
    if replaced {
        std::path::PathBuf::from("/proc/self/exe")
    } else {
        local.to_path_buf()
    }
}

#[cfg(test)]
mod tests {
    use super::upload_source;
    use std::path::Path;

    /// A binary rebuilt during a run is uploaded from the running program,
    /// not from a path that no longer exists; any other path as it is.
    #[test]
    fn a_replaced_binary_is_uploaded_from_the_running_program() {
        let gone = Path::new("/nonexistent/faultline (deleted)");
        assert_eq!(upload_source(gone), Path::new("/proc/self/exe"));
        let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
        assert_eq!(upload_source(&here), here);
        let missing = Path::new("/nonexistent/faultline");
        assert_eq!(upload_source(missing), missing);
    }
}
