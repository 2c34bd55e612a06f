//! Membership changes: `remove-member` takes one node's member out of the
//! database's cluster (shrink), `add-member` adds every removed node back
//! as a new member (grow), and `member-list` records the members the
//! database lists; all through the db's [`Membership`] API (etcd's member
//! API), refused for a database without one.
//!
//! Quorum is never put at risk: a member is removed only when every node
//! of the cluster is a started member and serves requests, one at a time,
//! and never from a cluster of fewer than three.
//!
//! Heal compares the members the database lists with the cluster's nodes
//! (the original membership, which the record's db names too) and adds
//! back every node that is missing or was added but never started, so it
//! needs no record; the record (`membership`) says which removals are in
//! force, so a heal that cannot reach the database knows it left them.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::{Env, Fault, NemesisError, Targets};
use crate::cluster::Node;
use crate::db::{Db, Member, Membership};

/// How long a member added back may take to serve requests.
const JOIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Removes and adds back members of the database's cluster.
#[derive(Debug)]
pub struct MembershipNemesis {
    env: Arc<Env>,
}

/// The members' node names (their ids where no node has their address),
/// started ones only.
fn names(members: &[Member]) -> Vec<String> {
    members
        .iter()
        .filter(|m| m.started)
        .map(|m| {
            if m.node.is_empty() {
                m.id.clone()
            } else {
                m.node.clone()
            }
        })
        .collect()
}

impl MembershipNemesis {
    /// Membership changes on `env`'s database.
    pub fn new(env: Arc<Env>) -> MembershipNemesis {
        MembershipNemesis { env }
    }

    /// The database and its membership API, or why `fault` is refused.
    fn api(&self, fault: &Fault) -> Result<(&Arc<dyn Db>, &dyn Membership), NemesisError> {
        let refused = |reason: String| NemesisError::Refused {
            fault: fault.f().into(),
            reason,
        };
        let db = self
            .env
            .db()
            .ok_or_else(|| refused("no database was given to the nemesis".into()))?;
        let m = db.membership().ok_or_else(|| {
            refused(format!(
                "{} has no membership API faultline knows (only etcd's)",
                db.name()
            ))
        })?;
        Ok((db, m))
    }

    fn nodes(&self) -> &[Node] {
        self.env.cluster().nodes()
    }

    /// The cluster's nodes that are not started members in `members`.
    fn missing(&self, members: &[Member]) -> Vec<String> {
        self.nodes()
            .iter()
            .map(|n| n.name().to_string())
            .filter(|n| !members.iter().any(|m| m.started && &m.node == n))
            .collect()
    }

    fn remove(&self, fault: &Fault, targets: &Targets) -> Result<Value, NemesisError> {
        let (_, m) = self.api(fault)?;
        let refused = |reason: String| NemesisError::Refused {
            fault: fault.f().into(),
            reason,
        };
        let nodes = self.nodes();
        if nodes.len() < 3 {
            return Err(refused(format!(
                "a cluster of {} node(s) cannot lose a member and keep a quorum",
                nodes.len()
            )));
        }
        // Every node a started, healthy member first: removing one while
        // another is down or gone could leave no quorum.
        let (via, before) = m.members(nodes)?;
        let missing = self.missing(&before);
        if !missing.is_empty() {
            return Err(refused(format!(
                "{} not a member now (removed and not added back, or not started); one \
                 member is removed at a time",
                missing.join(", ")
            )));
        }
        m.all_healthy(nodes).map_err(|e| {
            refused(format!(
                "every member must be healthy before one is removed: {e}"
            ))
        })?;
        let chosen = self.env.resolve(targets)?;
        let [target] = chosen.as_slice() else {
            return Err(refused(format!(
                "one member is removed at a time, and {} names {}",
                targets.to_value(),
                chosen.join(", ")
            )));
        };
        let node = self.env.node(target)?;
        self.env.update(|a| {
            a.membership.insert(target.clone());
        })?;
        m.remove(nodes, node)?;
        let others: Vec<Node> = nodes
            .iter()
            .filter(|n| n.name() != target)
            .cloned()
            .collect();
        let (_, after) = m.members(&others)?;
        Ok(json!({
            "removed": target,
            "members-before": names(&before),
            "members-after": names(&after),
            "via": via,
        }))
    }

    /// Adds back every node of the cluster the database does not list as
    /// a started member (and those the record says were removed). `heal`:
    /// with nothing recorded and no node answering, the database is not
    /// deployed and there is nothing to add.
    fn add(&self, fault: &Fault, heal: bool) -> Result<Value, NemesisError> {
        let (db, m) = self.api(fault)?;
        let recorded = self.env.active()?.membership;
        let nodes = self.nodes();
        let (via, before) = match m.members(nodes) {
            Ok(listed) => listed,
            Err(_) if heal && recorded.is_empty() => return Ok(json!({ "added": [] })),
            Err(e) => return Err(e.into()),
        };
        let missing = self.missing(&before);
        if missing.is_empty() {
            self.env.update(|a| a.membership.clear())?;
            return Ok(json!({ "added": [], "members": names(&before), "via": via }));
        }
        // The members left must have a quorum to accept a new one: thaw
        // and start them, as the process heal would.
        for n in nodes
            .iter()
            .filter(|n| !missing.iter().any(|x| x == n.name()))
        {
            db.resume(n)?;
            if !db.is_running(n)? {
                db.start(n)?;
            }
        }
        for name in &missing {
            let node = self.env.node(name)?;
            m.add(nodes, node, JOIN_TIMEOUT)?;
            self.env.update(|a| {
                a.membership.remove(name);
            })?;
        }
        let (_, after) = m.members(nodes)?;
        self.env.update(|a| a.membership.clear())?;
        Ok(json!({
            "added": missing,
            "members-before": names(&before),
            "members-after": names(&after),
            "via": via,
        }))
    }

    /// `member-list`: the members as the first node that answers lists
    /// them (started ones by node name; those added but not started apart).
    fn list(&self, fault: &Fault) -> Result<Value, NemesisError> {
        let (_, m) = self.api(fault)?;
        let (via, members) = m.members(self.nodes())?;
        let unstarted: Vec<&str> = members
            .iter()
            .filter(|m| !m.started)
            .map(|m| m.node.as_str())
            .collect();
        let mut v = json!({ "members": names(&members), "via": via });
        if !unstarted.is_empty() {
            v["unstarted"] = json!(unstarted);
        }
        Ok(v)
    }
}

impl super::Nemesis for MembershipNemesis {
    fn name(&self) -> &'static str {
        "membership"
    }

    fn handles(&self, fault: &Fault) -> bool {
        matches!(
            fault,
            Fault::RemoveMember(_) | Fault::AddMember | Fault::MemberList
        )
    }

    fn invoke(&self, fault: &Fault) -> Result<Value, NemesisError> {
        match fault {
            Fault::RemoveMember(t) => self.remove(fault, t),
            Fault::AddMember => self.add(fault, false),
            Fault::MemberList => self.list(fault),
            other => Err(NemesisError::Invalid(format!(
                "membership nemesis cannot {}",
                other.f()
            ))),
        }
    }

    /// Adds back every node of the cluster missing from the database's
    /// members; nothing to do for a database without a membership API.
    fn heal(&self) -> Result<Value, NemesisError> {
        match self.env.db() {
            Some(db) if db.membership().is_some() => self.add(&Fault::AddMember, true),
            _ => Ok(Value::Null),
        }
    }
}
