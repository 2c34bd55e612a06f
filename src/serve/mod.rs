//! Looking at stored runs: `faultline serve`, a web UI over a results
//! directory (list, filters, a run's report and files, downloads), and
//! `faultline compare`, one table over many dbs × workloads × nemeses.
//!
//! - [`runs`]: a run folder summarized from test.json, results.json and
//!   history.jsonl.
//! - [`safe`]: URL paths to files, refusing anything outside the results
//!   directory.
//! - [`pages`]: the HTML.
//! - [`app`]: the axum routes.
//! - [`compare`]: the comparison table (Markdown and HTML).

pub mod app;
pub mod compare;
pub mod pages;
pub mod runs;
pub mod safe;

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;

/// The run folder `dir` as a gzipped tar, every entry under `prefix/`.
/// Symbolic links are stored as links, never followed, so a link inside a
/// run cannot pull outside files into the archive.
pub fn tarball(dir: &Path, prefix: &str) -> std::io::Result<Vec<u8>> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    tar.follow_symlinks(false);
    tar.mode(tar::HeaderMode::Deterministic);
    tar.append_dir_all(prefix, dir)?;
    let mut gz = tar.into_inner()?;
    gz.flush()?;
    gz.finish()
}

/// Binds `addr` with a clear message when it cannot (the port is taken, or
/// needs privileges).
pub async fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await.map_err(|e| match e.kind() {
        std::io::ErrorKind::AddrInUse => anyhow::anyhow!(
            "cannot listen on {addr}: the port is already in use (another `faultline serve`?); choose another with --port, or --port 0 for any free one"
        ),
        std::io::ErrorKind::PermissionDenied => anyhow::anyhow!(
            "cannot listen on {addr}: permission denied (ports below 1024 need root); choose another with --port"
        ),
        std::io::ErrorKind::AddrNotAvailable => anyhow::anyhow!(
            "cannot listen on {addr}: no such local address; check --bind"
        ),
        _ => anyhow::anyhow!("cannot listen on {addr}: {e}"),
    })
}

/// Serves the web UI for `root` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    root: &Path,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let app = app::router(root)?;
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| anyhow::anyhow!("serving: {e}"))
}
