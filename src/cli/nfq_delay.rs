//! `faultline nfq-packet` (hidden; `nfq-delay` is its old name): the
//! NFQUEUE packet program the packet nemesis runs on a node for delay
//! (where the kernel has no netem), duplication, reordering, corruption and
//! rate limits. Not for users: the nemesis starts it, reads its counters
//! back, and heal stops it.

use std::path::PathBuf;
use std::time::Duration;

use crate::nemesis::nfq_delay::Modes;

/// `nfq-packet` flags.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The NFQUEUE number to read.
    #[arg(long, default_value_t = crate::nemesis::net::DELAY_QUEUE)]
    queue: u16,
    /// How long to hold each packet, in milliseconds.
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// Send this fraction of the packets twice.
    #[arg(long)]
    duplicate: Option<f64>,
    /// Hold this fraction back until a later packet has gone out.
    #[arg(long)]
    reorder: Option<f64>,
    /// Flip a bit in this fraction of the packets.
    #[arg(long)]
    corrupt: Option<f64>,
    /// Drop what goes over this many kilobits per second.
    #[arg(long)]
    rate_kbit: Option<u64>,
    /// Write the counters (JSON) to this file every 100 ms and at SIGTERM.
    #[arg(long)]
    stats: Option<PathBuf>,
}

/// Runs the packet program until SIGTERM or SIGKILL.
pub fn run(a: Args) -> anyhow::Result<i32> {
    for (name, p) in [
        ("duplicate", a.duplicate),
        ("reorder", a.reorder),
        ("corrupt", a.corrupt),
    ] {
        if let Some(p) = p {
            anyhow::ensure!(p > 0.0 && p <= 1.0, "--{name} must be in (0, 1], got {p}");
        }
    }
    anyhow::ensure!(a.rate_kbit != Some(0), "--rate-kbit must be positive");
    let modes = Modes {
        delay: Duration::from_millis(a.delay_ms),
        duplicate: a.duplicate,
        reorder: a.reorder,
        corrupt: a.corrupt,
        rate_kbit: a.rate_kbit,
    };
    crate::nemesis::nfq_delay::run(a.queue, modes, a.stats.as_deref())
        .map_err(|e| anyhow::anyhow!("nfq-packet on queue {}: {e}", a.queue))?;
    Ok(0)
}
