//! `faultline db`: (being written by the control-plane work).
use clap::Subcommand;
/// Db subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Show the db.
    Status,
}
pub fn run(_c: Command) -> anyhow::Result<i32> {
    anyhow::bail!("not yet built")
}
