//! `faultline serve`: the web UI over a results directory (src/serve/).

use anyhow::Context;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// Arguments of `faultline serve`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Serves only files below the results directory. \
Binds 127.0.0.1 unless --bind says otherwise: the results of a run can hold hostnames and logs.")]
pub struct Args {
    /// The results directory.
    #[arg(long, default_value = "results")]
    results: PathBuf,
    /// The port (0: any free port, printed at start).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// The address to listen on (0.0.0.0 for every interface).
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
}

/// Runs `faultline serve` until interrupted.
pub fn run(a: Args) -> anyhow::Result<i32> {
    if !a.results.is_dir() {
        anyhow::bail!(
            "results directory {} does not exist (run a test first, or give --results DIR)",
            a.results.display()
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting tokio")?;
    runtime.block_on(async {
        let listener = crate::serve::bind(SocketAddr::new(a.bind, a.port)).await?;
        let local = listener.local_addr().context("reading the bound address")?;
        let host = match local.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => "127.0.0.1".to_string(),
            IpAddr::V6(ip) if ip.is_unspecified() => "[::1]".to_string(),
            IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        };
        // One line on stdout with the URL (tests and scripts read it), then
        // the rest on stderr.
        println!("faultline serve: http://{host}:{}/", local.port());
        eprintln!(
            "serving {} (Ctrl-C to stop)",
            std::fs::canonicalize(&a.results)
                .unwrap_or_else(|_| a.results.clone())
                .display()
        );
        tracing::info!(%local, results = %a.results.display(), "serving");
        crate::serve::serve(listener, &a.results, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
    })?;
    Ok(super::EXIT_VALID)
}
