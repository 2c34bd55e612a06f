//! [`Nemeses`]: every nemesis behind one `Nemesis`, sharing a seeded RNG and
//! the record of active faults, so `faultline heal` can undo what a killed
//! controller left behind.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;

use super::{
    clock, disk, lazyfs, membership, net, process, upgrade, Env, Fault, Nemesis, NemesisError,
};
use crate::cluster::{Cluster, ClusterKind};
use crate::db::Db;

/// The record file faultline keeps for `cluster` when nothing else is
/// given: `nemesis.json` in the local cluster's state directory; none for
/// real hosts (pass a path in the run directory instead).
pub fn default_record_path(cluster: &Cluster) -> Option<PathBuf> {
    match cluster.kind() {
        ClusterKind::Local { state_dir, .. } => Some(state_dir.join("nemesis.json")),
        ClusterKind::Hosts => None,
    }
}

/// How [`Nemeses`] chooses and remembers.
#[derive(Debug, Clone, Default)]
pub struct NemesisOptions {
    /// Seeds the RNG that picks target nodes.
    pub seed: u64,
    /// The record of active faults (see [`default_record_path`]); none
    /// means heal relies on its sweep alone.
    pub record: Option<PathBuf>,
    /// The faultline binary that runs the NFQUEUE delay program on nodes
    /// without netem; default: this process's executable.
    pub helper: Option<PathBuf>,
}

/// Every nemesis behind one: dispatches each fault to the one that handles
/// it, and heals them all. This is what a runner holds.
#[derive(Debug)]
pub struct Nemeses {
    env: Arc<Env>,
    parts: Vec<Box<dyn Nemesis>>,
    /// Held through every invoke and heal: a heal on Ctrl-C waits for the
    /// fault in flight, so it cannot be undone and then re-applied.
    busy: Mutex<()>,
}

impl Nemeses {
    /// Partitions, packet faults, file corruption and rollbacks, membership
    /// changes, rolling upgrades, kills and pauses (through `db`, when given) and clock
    /// faults on `cluster`.
    pub fn new(cluster: Cluster, db: Option<Arc<dyn Db>>, opts: NemesisOptions) -> Nemeses {
        let env = Arc::new(Env::new(cluster, db, opts.seed, opts.record));
        let mut packet = net::PacketNemesis::new(env.clone());
        let mut lazyfs = lazyfs::LazyfsNemesis::new(env.clone());
        if let Some(h) = opts.helper {
            lazyfs = lazyfs.with_helper(h.clone());
            packet = packet.with_helper(h);
        }
        let parts: Vec<Box<dyn Nemesis>> = vec![
            Box::new(net::Partitioner::new(env.clone())),
            Box::new(packet),
            // Before the process nemesis: heal puts a data folder back in
            // place before the db is started on it.
            Box::new(disk::DiskNemesis::new(env.clone())),
            // Before the process nemesis too: heal takes the data folder
            // off the lazyfs mount before the db is started on it.
            Box::new(lazyfs),
            // Before the process nemesis: a removed member is added back
            // (joining, from an empty data folder) before heal starts
            // whatever does not run, which would start it as a member it
            // no longer is.
            Box::new(membership::MembershipNemesis::new(env.clone())),
            // Before the process nemesis: its heal says which binary each
            // node holds; the process heal then starts a node an upgrade
            // left stopped.
            Box::new(upgrade::UpgradeNemesis::new(env.clone())),
            Box::new(process::DbNemesis::new(env.clone())),
            Box::new(clock::ClockNemesis::new(env.clone())),
        ];
        Nemeses {
            env,
            parts,
            busy: Mutex::new(()),
        }
    }

    /// The shared environment.
    pub fn env(&self) -> &Arc<Env> {
        &self.env
    }

    /// The record file in use, if any.
    pub fn record_path(&self) -> Option<&Path> {
        self.env.record().map(|r| r.path())
    }

    fn lock(&self) -> MutexGuard<'_, ()> {
        match self.busy.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn heal_locked(&self) -> Result<Value, NemesisError> {
        // Whether a recorded fault was in force, so that the database must
        // be seen serving again below. Without a record (a bare `faultline
        // heal --nodes ...`), nothing says a run, or this db, was there.
        let faulted = self
            .env
            .record()
            .is_some_and(|r| r.load().map(|a| a.has_faults()).unwrap_or(true));
        let mut done = serde_json::Map::new();
        let mut errors = Vec::new();
        for p in &self.parts {
            match p.heal() {
                Ok(v) => {
                    done.insert(p.name().to_string(), v);
                }
                Err(e) => {
                    tracing::warn!(nemesis = p.name(), "heal failed: {e}");
                    errors.push(e);
                }
            }
        }
        NemesisError::from_many(errors)?;
        // Every fault is undone; the database the run recorded stays, so a
        // heal after a later kill still knows it (an empty record goes).
        // Without a database, its kills and pauses were not undone: they
        // stay recorded.
        if let Some(r) = self.env.record() {
            let processes_healed = self.env.db().is_some();
            r.update(|a| {
                let mut left = a.db_only();
                if !processes_healed {
                    left.killed = std::mem::take(&mut a.killed);
                    left.paused = std::mem::take(&mut a.paused);
                }
                *a = left;
            })?;
        }
        // Undone is not recovered: a partition's two sides may take a while
        // to merge again, a replica to catch up, a broker to hear that a
        // channel closed. What runs after a heal (final reads, queue drains,
        // the next run) must find the database serving on every node, or
        // a read of a still-split cluster would be taken for the truth: a
        // heal that cannot show it fails, and a run whose final heal failed
        // is at best unknown.
        if faulted {
            if let Some(db) = self.env.db() {
                db.wait_healthy(self.env.cluster().nodes(), process::HEAL_HEALTHY_WITHIN)
                    .map_err(|e| {
                        NemesisError::Invalid(format!(
                            "every fault was undone, but {} did not serve on every node within \
                             {} s: {e}",
                            db.name(),
                            process::HEAL_HEALTHY_WITHIN.as_secs()
                        ))
                    })?;
            }
        }
        Ok(Value::Object(done))
    }
}

impl Nemesis for Nemeses {
    fn name(&self) -> &'static str {
        "all"
    }

    fn handles(&self, fault: &Fault) -> bool {
        matches!(fault, Fault::HealAll) || self.parts.iter().any(|p| p.handles(fault))
    }

    fn setup(&self) -> Result<(), NemesisError> {
        let _busy = self.lock();
        let errors: Vec<_> = self.parts.iter().filter_map(|p| p.setup().err()).collect();
        NemesisError::from_many(errors)
    }

    fn invoke(&self, fault: &Fault) -> Result<Value, NemesisError> {
        let _busy = self.lock();
        if matches!(fault, Fault::HealAll) {
            return self.heal_locked();
        }
        let part = self
            .parts
            .iter()
            .find(|p| p.handles(fault))
            .ok_or_else(|| NemesisError::Invalid(format!("no nemesis does {}", fault.f())))?;
        tracing::info!(f = fault.f(), value = %fault.value(), "nemesis");
        part.invoke(fault)
    }

    /// Heals every kind, going on past failures so one unreachable node
    /// does not leave the others broken; the faults leave the record only
    /// when everything healed (the recorded database stays). Waits for a
    /// fault in flight to finish first.
    fn heal(&self) -> Result<Value, NemesisError> {
        let _busy = self.lock();
        self.heal_locked()
    }
}
