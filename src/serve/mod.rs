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
    write_tarball(dir, prefix, Vec::new())
}

/// [`tarball`] into any writer (returned when done).
pub fn write_tarball<W: std::io::Write>(dir: &Path, prefix: &str, out: W) -> std::io::Result<W> {
    let gz = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    tar.follow_symlinks(false);
    tar.mode(tar::HeaderMode::Complete);
    tar.append_dir_all(prefix, dir)?;
    let mut gz = tar.into_inner()?;
    gz.flush()?;
    gz.finish()
}

/// [`tarball`] as a streamed HTTP body: built on a blocking thread and sent
/// 64 KiB at a time, so a run of any size costs little memory. A client
/// that goes away stops the build; a read error mid-way ends the body with
/// an error (the download is then visibly incomplete).
pub fn tarball_body(dir: std::path::PathBuf, prefix: String) -> axum::body::Body {
    use axum::body::Bytes;
    use http_body_util::channel::{Channel, Sender};

    struct ChannelWriter {
        tx: Sender<Bytes, std::io::Error>,
        rt: tokio::runtime::Handle,
        buf: Vec<u8>,
    }
    impl ChannelWriter {
        fn send(&mut self) -> std::io::Result<()> {
            if self.buf.is_empty() {
                return Ok(());
            }
            let chunk = Bytes::from(std::mem::replace(
                &mut self.buf,
                Vec::with_capacity(1 << 16),
            ));
            self.rt.block_on(self.tx.send_data(chunk)).map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away")
            })
        }
    }
    impl std::io::Write for ChannelWriter {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            self.buf.extend_from_slice(data);
            if self.buf.len() >= 1 << 16 {
                self.send()?;
            }
            Ok(data.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    let (tx, body) = Channel::<Bytes, std::io::Error>::new(4);
    let rt = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let w = ChannelWriter {
            tx,
            rt,
            buf: Vec::with_capacity(1 << 16),
        };
        match write_tarball(&dir, &prefix, w) {
            Ok(mut w) => {
                if let Err(e) = w.send() {
                    tracing::debug!("tar.gz of {}: {e}", dir.display());
                }
            }
            Err(e) => tracing::warn!("tar.gz of {}: {e}", dir.display()),
        }
    });
    axum::body::Body::new(body)
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
