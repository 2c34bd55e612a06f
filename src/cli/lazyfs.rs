//! `faultline lazyfs` (hidden): the FUSE filesystem the lose-unfsynced
//! nemesis mounts over a db's data folder on a node, keeping writes not
//! yet fsynced in memory; with `--send`, the client that asks a running
//! one to lose them (`lose-unfsynced`), write them back (`sync`), report
//! (`stats`) or unmount. Not for users: the nemesis starts it, and heal
//! stops it.

use std::path::PathBuf;

use crate::nemesis::lazyfs::fs;

/// `lazyfs` flags.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The directory that holds what is durable (may be the mount point).
    #[arg(long, required_unless_present = "send")]
    backing: Option<PathBuf>,
    /// Where to mount.
    #[arg(long, required_unless_present = "send")]
    mount: Option<PathBuf>,
    /// The control socket.
    #[arg(long)]
    control: PathBuf,
    /// Unsynced data kept before everything is written back, in MiB.
    #[arg(long, default_value_t = fs::DEFAULT_MAX_PENDING_MIB)]
    max_pending_mib: u64,
    /// Send this command to the running filesystem and print its answer.
    #[arg(long, value_parser = ["lose-unfsynced", "sync", "stats", "unmount"])]
    send: Option<String>,
}

/// Runs the filesystem until it is stopped, or sends one command.
pub fn run(a: Args) -> anyhow::Result<i32> {
    if let Some(cmd) = &a.send {
        let answer = fs::send(&a.control, cmd)
            .map_err(|e| anyhow::anyhow!("lazyfs control {}: {e}", a.control.display()))?;
        println!("{answer}");
        return Ok(0);
    }
    let (Some(backing), Some(mount)) = (&a.backing, &a.mount) else {
        anyhow::bail!("--backing and --mount are required");
    };
    fs::run(backing, mount, &a.control, a.max_pending_mib).map_err(|e| {
        anyhow::anyhow!(
            "lazyfs over {} at {}: {e}",
            backing.display(),
            mount.display()
        )
    })?;
    Ok(0)
}
