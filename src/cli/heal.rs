//! `faultline heal`: lifts every fault faultline may have left on a cluster
//! (partition and packet rules, delay programs, paused and killed database
//! processes, moved clocks), from a fresh process: after a controller was
//! killed, or by hand. Works with the record of active faults and without;
//! the database whose processes it resumes and restarts is the one the
//! record names (what the killed run set up), unless `--db` says otherwise.

use std::path::PathBuf;

use super::cluster::NodeArgs;
use crate::db::Db;
use crate::nemesis::{self, Nemeses, Nemesis, NemesisOptions, RecordFile};

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
    /// The etcd binary that was uploaded to the nodes (as for `db up`), so
    /// a restart runs the same one. Default: the one the record names.
    #[arg(long)]
    etcd_binary: Option<PathBuf>,
    /// The record of active faults (default: `nemesis.json` in the local
    /// cluster's state directory; none for real hosts).
    #[arg(long)]
    record: Option<PathBuf>,
    #[command(flatten)]
    nodes: NodeArgs,
}

/// Runs `faultline heal`. Exits non-zero, keeping the record, with what it
/// could not undo.
pub fn run(a: Args) -> anyhow::Result<i32> {
    // A db file named on the command line is loaded and checked before the
    // cluster is looked at.
    let explicit = match &a.db {
        Some(db) => Some(crate::system::with_defaults(db, a.etcd_binary.as_deref())?),
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
                Some(r) => crate::system::find(&r.db)
                    .ok_or_else(|| {
                        anyhow::anyhow!("the record names an unknown database {:?}", r.db)
                    })?
                    .configure(&crate::system::Choice {
                        db: &r.db,
                        read_mode: &r.read_mode,
                        binary: a.etcd_binary.as_deref().or(r.binary.as_deref()),
                        ..crate::system::Choice::default()
                    })
                    .map_err(|e| anyhow::anyhow!("the recorded database {}: {e}", r.db))?,
                None => crate::system::with_defaults(DEFAULT_DB, a.etcd_binary.as_deref())?,
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
