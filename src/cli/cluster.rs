//! `faultline cluster`: (being written by the control-plane work).
use clap::Subcommand;
/// Cluster subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Show the local cluster.
    Status,
}
pub fn run(_c: Command) -> anyhow::Result<i32> {
    anyhow::bail!("not yet built")
}
