//! `faultline check`: check history files.
/// Arguments of `faultline check`.
#[derive(clap::Args, Debug)]
pub struct Args {}
pub fn run(_a: Args) -> anyhow::Result<i32> {
    anyhow::bail!("not yet built")
}
