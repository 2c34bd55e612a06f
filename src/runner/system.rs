//! The system under test of one run (`crate::system`, chosen by `--db`),
//! deployed on the run's cluster: its db, its clients, what its reads
//! guarantee and its version.

use super::spec::TestSpec;
use crate::client::ClientFactory;
use crate::cluster::Cluster;
use crate::db::Db;
use crate::system::{self, ClientSettings, Configured, Deployed, Reads};
use crate::workload::Workload;
use std::sync::Arc;
use std::time::Duration;

/// The system of one run, configured and deployed on its cluster.
pub(crate) struct System {
    configured: Box<dyn Configured>,
    deployed: Box<dyn Deployed>,
}

impl System {
    /// The system `spec.db` names on `cluster`, refusing workloads its
    /// clients cannot run.
    pub(crate) fn new(
        spec: &TestSpec,
        cluster: &Cluster,
        workload: &Workload,
    ) -> anyhow::Result<System> {
        check_db_workload(spec, workload)?;
        let configured = spec.configure().map_err(|e| anyhow::anyhow!(e))?;
        let deployed = configured.deploy(cluster.nodes())?;
        Ok(System {
            configured,
            deployed,
        })
    }

    pub(crate) fn db(&self) -> Arc<dyn Db> {
        self.deployed.db()
    }

    /// How long set-up waits for every node to be healthy.
    pub(crate) fn healthy_within(&self) -> Duration {
        self.deployed.healthy_within()
    }

    /// What the checkers must assume of the reads.
    pub(crate) fn reads(&self) -> Reads {
        self.configured.reads()
    }

    pub(crate) fn client_factory(
        &self,
        spec: &TestSpec,
        workload: &Workload,
        cluster: &Cluster,
    ) -> anyhow::Result<ClientFactory> {
        self.deployed.client_factory(&ClientSettings {
            workload,
            nodes: cluster.nodes(),
            op_timeout: Duration::from_secs_f64(spec.op_timeout),
        })
    }
}

/// The system's version, from the first node.
pub(crate) fn version_of(cluster: &Cluster, target: &System) -> anyhow::Result<String> {
    let n = cluster
        .nodes()
        .first()
        .ok_or_else(|| anyhow::anyhow!("no nodes"))?;
    target
        .deployed
        .version(n)
        .ok_or_else(|| anyhow::anyhow!("no version"))
}

/// Refuses a workload the db's clients cannot run, and a test whose
/// clients cannot be made (a db file without a client program).
pub(crate) fn check_db_workload(spec: &TestSpec, workload: &Workload) -> anyhow::Result<()> {
    let system = system::find(&spec.db)
        .ok_or_else(|| anyhow::anyhow!("unknown db {:?} (known: {})", spec.db, system::known()))?;
    system::check_workload(system, workload).map_err(|e| anyhow::anyhow!(e))?;
    spec.configure()
        .and_then(|c| c.check_clients())
        .map_err(|e| anyhow::anyhow!(e))
}
