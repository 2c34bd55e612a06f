//! Process faults through the [`Db`](crate::db::Db): kill (SIGKILL) and
//! start, pause (SIGSTOP) and resume (SIGCONT), on the nodes a [`Targets`]
//! names, including the current leader.
//!
//! Heal resumes the database on every node (SIGCONT of a running process is
//! harmless) and starts it wherever it is not running, so it needs no record
//! of what was killed or paused.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::{Env, Fault, NemesisError, Targets};
use crate::cluster::split_results;
use crate::db::Db;

/// How long heal waits for a database it started (or any database, after
/// every fault was undone) to serve requests.
pub(crate) const HEAL_HEALTHY_WITHIN: Duration = Duration::from_secs(30);

/// How long after it served a database heal started must still run: a
/// db that dies on what it reads (a damaged log) may answer first.
const STAYS_UP: Duration = Duration::from_secs(1);

/// Kills, restarts, pauses and resumes the database.
#[derive(Debug)]
pub struct DbNemesis {
    env: Arc<Env>,
}

impl DbNemesis {
    /// Process faults on `env`'s database.
    pub fn new(env: Arc<Env>) -> DbNemesis {
        DbNemesis { env }
    }

    fn db(&self, fault: &str) -> Result<&Arc<dyn Db>, NemesisError> {
        self.env.db().ok_or_else(|| NemesisError::Refused {
            fault: fault.into(),
            reason: "no database was given to the nemesis".into(),
        })
    }

    /// Runs `f(db, node)` on every named node at once.
    fn each(
        &self,
        names: &[String],
        f: impl Fn(&dyn Db, &crate::cluster::Node) -> Result<(), NemesisError> + Sync,
        fault: &str,
    ) -> Result<(), NemesisError> {
        let db = self.db(fault)?;
        let nodes = names
            .iter()
            .map(|n| self.env.node(n))
            .collect::<Result<Vec<_>, _>>()?;
        let results = crate::control::parallel(&nodes, |n| f(db.as_ref(), n));
        let (_, errors) = split_results(results);
        NemesisError::from_many(errors)
    }

    fn kill(&self, targets: &Targets) -> Result<Value, NemesisError> {
        self.db("kill")?;
        let names = self.env.resolve(targets)?;
        self.env
            .update(|a| a.killed.extend(names.iter().cloned()))?;
        self.each(&names, |db, n| Ok(db.kill(n)?), "kill")?;
        Ok(json!({ "killed": names }))
    }

    /// Starts the recorded kills, or, with none recorded (or when
    /// `sweep`), also every node where the database does not run, as long
    /// as it runs somewhere or a kill is recorded.
    fn start(&self, sweep: bool) -> Result<Value, NemesisError> {
        let db = self.db("start")?;
        let active = self.env.active()?;
        let mut names: Vec<String> = active.killed.into_iter().collect();
        if sweep || names.is_empty() {
            let dead = self.not_running(db.as_ref())?;
            // With nothing recorded and no member running, the database is
            // not deployed (torn down, never set up): starting it would
            // create a new cluster, not heal one.
            let deployed = dead.len() < self.env.cluster().nodes().len();
            if deployed || !names.is_empty() {
                // A member removed from the cluster is added back by the
                // membership nemesis, not started as the member it was.
                for n in dead.into_iter().filter(|n| !active.membership.contains(n)) {
                    if !names.contains(&n) {
                        names.push(n);
                    }
                }
            }
        }
        self.each(&names, |db, n| Ok(db.start(n)?), "start")?;
        self.env.update(|a| a.killed.clear())?;
        Ok(json!({ "started": names }))
    }

    /// Checks that the database heal started on `names` (those where it
    /// runs as a daemon, [`Db::daemon_on`]) stays up: it runs
    /// a moment after the start, serves requests within
    /// [`HEAL_HEALTHY_WITHIN`], and still runs [`STAYS_UP`] later. Fails
    /// with "failed to start" and, per node, why and the end of its log.
    fn verify_started(&self, names: &[String]) -> Result<(), NemesisError> {
        let Some(db) = self.env.db() else {
            return Ok(());
        };
        // Only where a daemon of the db is meant to run: a start elsewhere
        // (PostgreSQL's nodes but the first) starts nothing.
        let nodes = names
            .iter()
            .map(|n| self.env.node(n).cloned())
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .filter(|n| db.daemon_on(n).is_some())
            .collect::<Vec<_>>();
        if nodes.is_empty() {
            return Ok(());
        }
        let dead = |nodes: &[crate::cluster::Node]| -> Result<Vec<String>, NemesisError> {
            let mut dead = Vec::new();
            for n in nodes {
                if !db.is_running(n)? {
                    let tail = db
                        .daemon_on(n)
                        .map(|d| d.daemon.log_tail(n, 5))
                        .unwrap_or_default();
                    dead.push(format!(
                        "{}: {} exited after its start; log: {}",
                        n.name(),
                        db.name(),
                        crate::control::tail(tail.trim(), 800)
                    ));
                }
            }
            Ok(dead)
        };
        let failed = |why: Vec<String>| {
            NemesisError::Invalid(format!("failed to start: {}", why.join("; ")))
        };
        // A db that refuses its data exits at once: say so without
        // waiting for a health check that cannot pass.
        std::thread::sleep(STAYS_UP / 2);
        let gone = dead(&nodes)?;
        if !gone.is_empty() {
            return Err(failed(gone));
        }
        db.wait_healthy(&nodes, HEAL_HEALTHY_WITHIN)
            .map_err(|e| failed(vec![e.to_string()]))?;
        std::thread::sleep(STAYS_UP);
        let gone = dead(&nodes)?;
        if !gone.is_empty() {
            return Err(failed(gone));
        }
        Ok(())
    }

    fn not_running(&self, db: &dyn Db) -> Result<Vec<String>, NemesisError> {
        let results = self.env.cluster().on_all(|n| db.is_running(n));
        let mut dead = Vec::new();
        let mut errors = Vec::new();
        for (n, r) in self.env.cluster().nodes().iter().zip(results) {
            match r {
                Ok(false) => dead.push(n.name().to_string()),
                Ok(true) => {}
                Err(e) => errors.push(NemesisError::from(e)),
            }
        }
        NemesisError::from_many(errors)?;
        Ok(dead)
    }

    fn pause(&self, targets: &Targets) -> Result<Value, NemesisError> {
        self.db("pause")?;
        let names = self.env.resolve(targets)?;
        self.env
            .update(|a| a.paused.extend(names.iter().cloned()))?;
        self.each(&names, |db, n| Ok(db.pause(n)?), "pause")?;
        Ok(json!({ "paused": names }))
    }

    /// The nodes where `db`'s process is stopped (SIGSTOP), in cluster
    /// order.
    fn stopped(&self, db: &dyn Db) -> Result<Vec<String>, NemesisError> {
        let results = self.env.cluster().on_all(|n| db.is_paused(n));
        let mut stopped = Vec::new();
        let mut errors = Vec::new();
        for (n, r) in self.env.cluster().nodes().iter().zip(results) {
            match r {
                Ok(true) => stopped.push(n.name().to_string()),
                Ok(false) => {}
                Err(e) => errors.push(NemesisError::from(e)),
            }
        }
        NemesisError::from_many(errors)?;
        Ok(stopped)
    }

    /// Resumes every node: the record may be lost, and SIGCONT to a running
    /// process changes nothing. Answers the nodes recorded paused or found
    /// stopped; fails, keeping the record, when a process is still stopped
    /// after SIGCONT.
    fn resume(&self) -> Result<Value, NemesisError> {
        let db = self.db("resume")?;
        let recorded = self.env.active()?.paused;
        let found = self.stopped(db.as_ref())?;
        let all: Vec<String> = self
            .env
            .cluster()
            .nodes()
            .iter()
            .map(|n| n.name().to_string())
            .collect();
        self.each(&all, |db, n| Ok(db.resume(n)?), "resume")?;
        let still = self.stopped(db.as_ref())?;
        if !still.is_empty() {
            return Err(NemesisError::Invalid(format!(
                "{} is still stopped after SIGCONT on {}",
                db.name(),
                still.join(", ")
            )));
        }
        self.env.update(|a| a.paused.clear())?;
        let resumed: Vec<&String> = all
            .iter()
            .filter(|n| recorded.contains(*n) || found.contains(n))
            .collect();
        Ok(json!({ "resumed": resumed }))
    }
}

impl super::Nemesis for DbNemesis {
    fn name(&self) -> &'static str {
        "db"
    }

    fn handles(&self, fault: &Fault) -> bool {
        matches!(
            fault,
            Fault::Kill(_) | Fault::Start | Fault::Pause(_) | Fault::Resume
        )
    }

    fn invoke(&self, fault: &Fault) -> Result<Value, NemesisError> {
        match fault {
            Fault::Kill(t) => self.kill(t),
            Fault::Start => self.start(false),
            Fault::Pause(t) => self.pause(t),
            Fault::Resume => self.resume(),
            other => Err(NemesisError::Invalid(format!(
                "db nemesis cannot {}",
                other.f()
            ))),
        }
    }

    /// Resumes everything, then starts what is not running and checks that
    /// what it started stays up (serves, and still runs a moment later:
    /// else "failed to start" with the log's end), then checks
    /// that the database runs wherever a pause or a kill was recorded: a
    /// heal of the wrong database (or one that could not start) fails
    /// naming those nodes, and they stay recorded. Without a database
    /// there is nothing to heal.
    fn heal(&self) -> Result<Value, NemesisError> {
        let Some(db) = self.env.db() else {
            return Ok(Value::Null);
        };
        let before = self.env.active()?;
        let resumed = self.resume()?;
        let started = self.start(true)?;
        let names: Vec<String> = started["started"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|n| n.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        if let Err(e) = self.verify_started(&names) {
            // What did not come back stays recorded for the next heal.
            self.env.update(|a| {
                a.killed
                    .extend(names.iter().filter(|n| before.killed.contains(*n)).cloned())
            })?;
            return Err(e);
        }
        let recorded: Vec<String> = before.paused.union(&before.killed).cloned().collect();
        let dead: Vec<String> = self
            .not_running(db.as_ref())?
            .into_iter()
            .filter(|n| recorded.contains(n))
            .collect();
        if !dead.is_empty() {
            self.env.update(|a| {
                a.paused
                    .extend(dead.iter().filter(|n| before.paused.contains(*n)).cloned());
                a.killed
                    .extend(dead.iter().filter(|n| before.killed.contains(*n)).cloned());
            })?;
            return Err(NemesisError::Invalid(format!(
                "{} does not run on {} after heal, where a pause or kill was recorded \
                 (is it another database? pass --db)",
                db.name(),
                dead.join(", ")
            )));
        }
        Ok(json!({
            "resumed": resumed["resumed"],
            "started": started["started"],
        }))
    }
}
