//! Process faults through the [`Db`](crate::db::Db): kill (SIGKILL) and
//! start, pause (SIGSTOP) and resume (SIGCONT), on the nodes a [`Targets`]
//! names, including the current leader.
//!
//! Heal resumes the database on every node (SIGCONT of a running process is
//! harmless) and starts it wherever it is not running, so it needs no record
//! of what was killed or paused.

use std::sync::Arc;

use serde_json::{json, Value};

use super::{Env, Fault, NemesisError, Targets};
use crate::cluster::split_results;
use crate::db::Db;

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
        let mut names: Vec<String> = self.env.active()?.killed.into_iter().collect();
        if sweep || names.is_empty() {
            let dead = self.not_running(db.as_ref())?;
            // With nothing recorded and no member running, the database is
            // not deployed (torn down, never set up): starting it would
            // create a new cluster, not heal one.
            let deployed = dead.len() < self.env.cluster().nodes().len();
            if deployed || !names.is_empty() {
                for n in dead {
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

    /// Resumes every node: the record may be lost, and SIGCONT to a running
    /// process changes nothing.
    fn resume(&self) -> Result<Value, NemesisError> {
        self.db("resume")?;
        let recorded: Vec<String> = self.env.active()?.paused.into_iter().collect();
        let all: Vec<String> = self
            .env
            .cluster()
            .nodes()
            .iter()
            .map(|n| n.name().to_string())
            .collect();
        self.each(&all, |db, n| Ok(db.resume(n)?), "resume")?;
        self.env.update(|a| a.paused.clear())?;
        Ok(json!({ "resumed": recorded }))
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

    /// Resumes everything, then starts what is not running. Without a
    /// database there is nothing to heal.
    fn heal(&self) -> Result<Value, NemesisError> {
        if self.env.db().is_none() {
            return Ok(Value::Null);
        }
        let resumed = self.resume()?;
        let started = self.start(true)?;
        Ok(json!({
            "resumed": resumed["resumed"],
            "started": started["started"],
        }))
    }
}
