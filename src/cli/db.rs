//! `faultline db`: bring a database up or down on a cluster by hand (an audit
//! starts by bringing a cluster up), and ask how it is doing.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Subcommand;

use super::cluster::NodeArgs;
use crate::cluster::Cluster;
use crate::db::{self, Db};
use crate::system;
use std::sync::Arc;

/// Db subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Install, start and wait for the database on every node.
    Up(UpArgs),
    /// Kill the database on every node and wipe its data and logs.
    Down(DownArgs),
    /// Show on each node whether the database runs, and the leader.
    Status(DbArgs),
}

/// Which database, on which nodes.
#[derive(clap::Args, Debug)]
pub struct DbArgs {
    /// The database: a known one, or a db file (FILE.toml or file:PATH;
    /// docs/file-db.md).
    #[arg(long, default_value = "etcd", value_parser = parse_db)]
    db: String,
    /// A server binary of your own build on this machine (etcd,
    /// redis-server, nats-server) to upload to the nodes and run instead
    /// of the Debian package's.
    #[arg(long, visible_alias = "etcd-binary", value_name = "PATH")]
    db_binary: Option<PathBuf>,
    #[command(flatten)]
    nodes: NodeArgs,
}

/// `db up` flags.
#[derive(clap::Args, Debug)]
pub struct UpArgs {
    #[command(flatten)]
    which: DbArgs,
    /// Seconds to wait for the database to become healthy.
    #[arg(long, default_value_t = 60)]
    healthy_timeout: u64,
}

/// `db down` flags.
#[derive(clap::Args, Debug)]
pub struct DownArgs {
    #[command(flatten)]
    which: DbArgs,
    /// Copy the nodes' logs into this directory before wiping them.
    #[arg(long)]
    logs: Option<PathBuf>,
}

/// A known database's name, or a db file's (a clap value parser).
pub(crate) fn parse_db(s: &str) -> Result<String, String> {
    match system::find(s) {
        Some(_) => Ok(s.to_string()),
        None => Err(format!(
            "known: {}, or a db file (FILE.toml or file:PATH)",
            system::known()
        )),
    }
}

fn open(args: &DbArgs) -> anyhow::Result<(Cluster, Arc<dyn Db>)> {
    // A db file is loaded and checked before the cluster is looked at.
    let configured = system::with_defaults(&args.db, args.db_binary.as_deref())?;
    let cluster = args.nodes.cluster()?;
    let db = configured.deploy(cluster.nodes())?.db();
    Ok((cluster, db))
}

/// Runs a `db` subcommand.
pub fn run(c: Command) -> anyhow::Result<i32> {
    match c {
        Command::Up(a) => {
            let (cluster, db) = open(&a.which)?;
            let _lease = super::take_lease(&cluster, "db up")?;
            let t0 = Instant::now();
            db::setup(
                db.as_ref(),
                &cluster,
                Duration::from_secs(a.healthy_timeout),
            )?;
            println!(
                "{} healthy on {} node(s) in {:.2} s",
                db.name(),
                cluster.nodes().len(),
                t0.elapsed().as_secs_f64()
            );
            Ok(0)
        }
        Command::Down(a) => {
            let (cluster, db) = open(&a.which)?;
            let _lease = super::take_lease(&cluster, "db down")?;
            if let Some(dir) = &a.logs {
                let got = db::collect_logs(db.as_ref(), &cluster, dir)?;
                println!("{} log file(s) copied to {}", got.len(), dir.display());
            }
            db::teardown(db.as_ref(), &cluster)?;
            println!(
                "{} down and wiped on {} node(s)",
                db.name(),
                cluster.nodes().len()
            );
            Ok(0)
        }
        Command::Status(a) => status(&a),
    }
}

/// `db status`: each node's state and the leader. Exit 0 when the db runs
/// on every node it uses (PostgreSQL uses the first only) or on none (then
/// it says so: nothing running is an answer, not an error), 1 when it runs
/// on some of them only or a node cannot tell.
fn status(a: &DbArgs) -> anyhow::Result<i32> {
    let (cluster, db) = match open(a) {
        Ok(opened) => opened,
        Err(e) => {
            if let Some(crate::cluster::ClusterError::NotUp(dir)) = e.downcast_ref() {
                println!(
                    "no local cluster is up (state in {}): nothing is running",
                    dir.display()
                );
                return Ok(0);
            }
            return Err(e);
        }
    };
    let running = cluster.on_all(|n| db.is_running(n));
    // A db that keeps a daemon on some nodes only (PostgreSQL: the first)
    // is not expected on the others.
    let used: Vec<bool> = cluster
        .nodes()
        .iter()
        .map(|n| db.daemon_on(n).is_some())
        .collect();
    let some_only = used.iter().any(|u| *u) && !used.iter().all(|u| *u);
    let (mut up, mut down, mut unknown) = (0, 0, 0);
    for ((n, r), used) in cluster.nodes().iter().zip(running).zip(used) {
        let s = match r {
            Ok(false) if some_only && !used => format!("not used by {}", db.name()),
            Ok(true) => {
                up += 1;
                "running".to_string()
            }
            Ok(false) => {
                down += 1;
                "not running".to_string()
            }
            Err(e) => {
                unknown += 1;
                format!("unknown: {e}")
            }
        };
        println!("  {:<4} {:<15} {s}", n.name(), n.host());
    }
    if up == 0 && unknown == 0 {
        println!(
            "{} is not running on any of the {} node(s)",
            db.name(),
            down.max(1)
        );
        return Ok(0);
    }
    match db.primaries(cluster.nodes()) {
        Ok(p) if !p.is_empty() => println!("leader: {}", p.join(", ")),
        Ok(_) => println!("leader: none found"),
        Err(e) => println!("leader: unknown ({e})"),
    }
    Ok(if down == 0 && unknown == 0 { 0 } else { 1 })
}
