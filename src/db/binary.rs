//! A database server binary of the user's own build (`--db-binary`, and
//! the rolling upgrade's `--db-binary-next`): read and hashed once on the
//! controller ([`DbBinary::open`]), put on a node by SFTP through the
//! node's [`crate::control::Remote`] (with sudo through `/tmp` and
//! `install`), checked there by size and sha256, and not sent again when
//! the node already holds the same file ([`DbBinary::install_at`]).

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::DbError;
use crate::cluster::Node;
use crate::control::shell_quote;

/// A local binary to run on the nodes instead of the Debian package's
/// program, with what identifies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbBinary {
    /// The file on this machine (absolute when it could be made so).
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// Its sha256, lower-case hex.
    pub sha256: String,
}

/// What [`DbBinary::install_at`] did on a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Installed {
    /// The node held the same file (size and sha256) already.
    AlreadyThere,
    /// The file was uploaded, then checked.
    Uploaded,
}

/// The sha256 of everything `reader` yields, in lower-case hex, and its
/// length.
fn sha256_of(mut reader: impl Read) -> std::io::Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    let hex = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok((size, hex))
}

impl DbBinary {
    /// Reads and hashes the file at `path`; the error names the file and
    /// why it cannot be used.
    pub fn open(path: &Path) -> Result<DbBinary, String> {
        let bad = |why: String| format!("{}: {why}", path.display());
        let meta = std::fs::metadata(path).map_err(|e| bad(format!("cannot read: {e}")))?;
        if !meta.is_file() {
            return Err(bad("not a file".into()));
        }
        let file = std::fs::File::open(path).map_err(|e| bad(format!("cannot read: {e}")))?;
        let (size, sha256) = sha256_of(file).map_err(|e| bad(format!("cannot read: {e}")))?;
        if size == 0 {
            return Err(bad("empty file".into()));
        }
        Ok(DbBinary {
            path: std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()),
            size,
            sha256,
        })
    }

    /// How `test.json` and the history record it: `{"path", "sha256",
    /// "size"}`.
    pub fn to_value(&self) -> Value {
        json!({
            "path": self.path.display().to_string(),
            "sha256": self.sha256,
            "size": self.size,
        })
    }

    /// Whether `digest` (a node's [`digest_on`]) is this file's.
    pub fn matches(&self, digest: &Option<(u64, String)>) -> bool {
        digest
            .as_ref()
            .is_some_and(|(size, sha)| *size == self.size && *sha == self.sha256)
    }

    /// Puts this binary at `remote` on `node`, executable: nothing is sent
    /// when the node holds the same file (size and sha256); otherwise it
    /// is uploaded (whole or not at all: [`crate::control::Remote::upload`])
    /// and checked again, a mismatch being an error that names both sums.
    pub fn install_at(&self, db: &str, node: &Node, remote: &str) -> Result<Installed, DbError> {
        if self.matches(&digest_on(node, remote)?) {
            // An earlier run's copy may have lost its mode bits.
            node.run(&format!("chmod 755 {}", shell_quote(remote)))?;
            return Ok(Installed::AlreadyThere);
        }
        if let Some(dir) = Path::new(remote).parent() {
            node.run(&format!(
                "mkdir -p {}",
                shell_quote(&dir.display().to_string())
            ))?;
        }
        node.upload(&self.path, remote, 0o755)?;
        match digest_on(node, remote)? {
            found if self.matches(&found) => Ok(Installed::Uploaded),
            found => Err(DbError::on(
                db,
                node,
                "upload of the binary",
                format!(
                    "{} on the node is {} after the upload of {} ({} bytes, sha256 {})",
                    remote,
                    match found {
                        Some((size, sha)) => format!("{size} bytes, sha256 {sha}"),
                        None => "missing".into(),
                    },
                    self.path.display(),
                    self.size,
                    self.sha256
                ),
            )),
        }
    }
}

impl DbBinary {
    /// [`DbBinary::install_at`], then `check` (a command line that
    /// runs the installed program, e.g. `PATH --version`) must succeed: an
    /// uploaded build that does not run on the node is an error naming it.
    pub fn install_checked(
        &self,
        db: &str,
        node: &Node,
        remote: &str,
        check: &str,
    ) -> Result<(), DbError> {
        self.install_at(db, node, remote)?;
        let out = node.exec(check)?;
        if out.success() {
            return Ok(());
        }
        Err(DbError::on(
            db,
            node,
            "install",
            format!(
                "uploaded {} does not run: {}",
                self.path.display(),
                out.stderr.trim()
            ),
        ))
    }
}

/// The size and sha256 of the file at `remote` on `node`; `None` when
/// there is no such file.
pub fn digest_on(node: &Node, remote: &str) -> Result<Option<(u64, String)>, DbError> {
    let p = shell_quote(remote);
    let out = node.run(&format!(
        "if [ -f {p} ]; then stat -c %s {p} && sha256sum {p}; fi"
    ))?;
    let mut lines = out.lines();
    let (Some(size), Some(sum)) = (lines.next(), lines.next()) else {
        return Ok(None);
    };
    let size = size.trim().parse::<u64>().ok();
    let sha = sum.split_whitespace().next().map(str::to_ascii_lowercase);
    Ok(size.zip(sha))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binary_is_named_by_its_size_and_sha256() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("etcd");
        std::fs::write(&path, b"abc").unwrap();
        let b = DbBinary::open(&path).unwrap();
        // sha256("abc"), from FIPS 180-2.
        assert_eq!(
            b.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(b.size, 3);
        let v = b.to_value();
        assert_eq!(v["size"], 3);
        assert_eq!(v["sha256"], json!(b.sha256));
        assert!(v["path"].as_str().unwrap().ends_with("/etcd"), "{v}");
        assert!(b.matches(&Some((3, b.sha256.clone()))));
        assert!(!b.matches(&Some((4, b.sha256.clone()))));
        assert!(!b.matches(&None));
    }

    #[test]
    fn a_missing_empty_or_folder_binary_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let e = DbBinary::open(&missing).unwrap_err();
        assert!(e.contains("nope") && e.contains("cannot read"), "{e}");
        let e = DbBinary::open(dir.path()).unwrap_err();
        assert!(e.ends_with("not a file"), "{e}");
        let empty = dir.path().join("empty");
        std::fs::write(&empty, b"").unwrap();
        assert!(DbBinary::open(&empty).unwrap_err().ends_with("empty file"));
    }

    /// A node whose commands run in this machine's shell and whose uploads
    /// arrive damaged (the first byte flipped), as a broken transfer would.
    #[derive(Debug)]
    struct Damaging;

    impl crate::control::Remote for Damaging {
        fn node(&self) -> &str {
            "n1"
        }
        fn default_timeout(&self) -> std::time::Duration {
            std::time::Duration::from_secs(10)
        }
        fn exec_timeout(
            &self,
            command: &str,
            _t: std::time::Duration,
        ) -> Result<crate::control::Output, crate::control::ControlError> {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(command)
                .output()
                .expect("sh runs");
            Ok(crate::control::Output {
                status: out.status.code().unwrap_or(-1),
                signal: None,
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            })
        }
        fn upload(
            &self,
            local: &Path,
            remote: &str,
            _mode: i32,
        ) -> Result<(), crate::control::ControlError> {
            let mut data = std::fs::read(local).expect("read");
            data[0] ^= 0xff;
            std::fs::write(remote, data).expect("write");
            Ok(())
        }
        fn download(&self, _r: &str, _l: &Path) -> Result<(), crate::control::ControlError> {
            Ok(())
        }
    }

    #[test]
    fn an_upload_that_arrives_damaged_is_an_error_naming_both_sums() {
        let dir = tempfile::tempdir().unwrap();
        let local = dir.path().join("etcd");
        std::fs::write(&local, b"abc").unwrap();
        let b = DbBinary::open(&local).unwrap();
        let node = Node::new(
            "n1",
            "10.9.0.1",
            std::sync::Arc::new(Damaging),
            crate::cluster::Capabilities {
                can_skew_clock: true,
                has_netem: true,
                has_iptables: true,
                shares_host: false,
            },
            &dir.path().display().to_string(),
        );
        let remote = format!("{}/bin/etcd", dir.path().display());
        let e = b
            .install_at("etcd", &node, &remote)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("etcd on n1: upload of the binary:")
                && e.contains("3 bytes, sha256 ")
                && e.contains(&format!("(3 bytes, sha256 {})", b.sha256)),
            "{e}"
        );
        // The damaged copy is never taken for the binary.
        assert!(!b.matches(&digest_on(&node, &remote).unwrap()));
    }
}
