//! `faultline heal`: lifts every fault faultline may have left on a cluster
//! (partition and packet rules, delay programs, paused and killed database
//! processes, moved clocks), from a fresh process: after a controller was
//! killed, or by hand. Works with the record of active faults and without.

use std::path::PathBuf;

use super::cluster::NodeArgs;
use crate::db::Db;
use crate::nemesis::{self, Nemeses, Nemesis, NemesisOptions};

/// `heal` flags.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The database whose processes to resume and restart (a known one, or
    /// a db file: FILE.toml or file:PATH).
    #[arg(long, default_value = "etcd", value_parser = super::db::parse_db)]
    db: String,
    /// Heal the network (and clocks) only: leave database processes alone.
    #[arg(long)]
    no_db: bool,
    /// The etcd binary that was uploaded to the nodes (as for `db up`), so
    /// a restart runs the same one.
    #[arg(long)]
    etcd_binary: Option<PathBuf>,
    /// The record of active faults (default: `nemesis.json` in the local
    /// cluster's state directory; none for real hosts).
    #[arg(long)]
    record: Option<PathBuf>,
    #[command(flatten)]
    nodes: NodeArgs,
}

/// Runs `faultline heal`.
pub fn run(a: Args) -> anyhow::Result<i32> {
    // A db file is loaded and checked before the cluster is looked at.
    let configured = crate::system::with_defaults(&a.db, a.etcd_binary.as_deref())?;
    let cluster = a.nodes.cluster()?;
    let _lease = super::take_lease(&cluster, "heal")?;
    let db: Option<std::sync::Arc<dyn Db>> = if a.no_db {
        None
    } else {
        Some(configured.deploy(cluster.nodes())?.db())
    };
    let record = a
        .record
        .clone()
        .or_else(|| nemesis::default_record_path(&cluster));
    let nem = Nemeses::new(
        cluster,
        db,
        NemesisOptions {
            record,
            ..NemesisOptions::default()
        },
    );
    if let Ok(active) = nem.env().active() {
        if !active.is_empty() {
            println!("recorded faults: {}", serde_json::to_string(&active)?);
        }
    }
    let done = nem.heal()?;
    println!("healed: {done}");
    Ok(0)
}
