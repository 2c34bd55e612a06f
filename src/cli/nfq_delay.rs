//! `faultline nfq-delay` (hidden): the NFQUEUE packet-delay program the
//! packet nemesis runs on a node whose kernel has no netem. Not for users:
//! the nemesis starts it, and heal kills it.

use std::time::Duration;

/// `nfq-delay` flags.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The NFQUEUE number to read.
    #[arg(long, default_value_t = crate::nemesis::net::DELAY_QUEUE)]
    queue: u16,
    /// How long to hold each packet, in milliseconds.
    #[arg(long)]
    delay_ms: u64,
}

/// Runs the delay program until killed.
pub fn run(a: Args) -> anyhow::Result<i32> {
    crate::nemesis::nfq_delay::run(a.queue, Duration::from_millis(a.delay_ms))
        .map_err(|e| anyhow::anyhow!("nfq-delay on queue {}: {e}", a.queue))?;
    Ok(0)
}
