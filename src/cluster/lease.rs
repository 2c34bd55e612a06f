//! One run per cluster: the exclusive lease that `faultline run`, `db
//! up`/`down`, `cluster down` and `heal` take before they touch a cluster,
//! so two of them never drive the same nodes at once.
//!
//! - On the local cluster the lease is an `flock` on `lease.json` in its
//!   state directory; the file names the holder (controller host, pid, what
//!   it does, since when). The kernel lets the lock go when the holder's
//!   process ends, however it ends; a file still naming a holder then is
//!   the mark of a holder that died, and the next taker says so.
//! - On real hosts it is a file, [`HOSTS_LEASE`], on every node, created
//!   atomically (`set -C`) and naming the holder likewise. A file naming a
//!   process of this controller host that no longer runs is taken over with
//!   a note; one naming another controller host is refused (it cannot be
//!   checked from here: remove the file once that controller is gone).
//!
//! A second taker is refused at once, naming the holder.

use std::fmt;
use std::fs;
use std::io::{Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Cluster, ClusterKind, Node};

/// The lease file in the local cluster's state directory.
pub const LOCAL_LEASE: &str = "lease.json";

/// The lease file on each real host.
pub const HOSTS_LEASE: &str = "/var/lib/faultline/lease.json";

/// Who holds a lease.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// The controller's host name.
    pub host: String,
    /// The controller's process id.
    pub pid: u32,
    /// What it is doing (`run etcd-register-partition`, `heal`, ...).
    pub what: String,
    /// When it took the lease (UTC, `YYYYMMDDTHHMMSS.mmmZ`).
    pub since: String,
}

impl Holder {
    /// This process, doing `what`, from now.
    pub fn me(what: &str) -> Holder {
        Holder {
            host: this_host(),
            pid: std::process::id(),
            what: what.to_string(),
            since: crate::store::format_time(std::time::SystemTime::now()),
        }
    }

    /// True when the holder is a process of this host that no longer runs.
    fn is_dead_here(&self) -> bool {
        if self.host != this_host() {
            return false;
        }
        let Ok(pid) = libc::pid_t::try_from(self.pid) else {
            return false;
        };
        // SAFETY: kill with signal 0 only checks that the process exists.
        let rc = unsafe { libc::kill(pid, 0) };
        rc != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
    }
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`faultline {}` (pid {} on {}, since {})",
            self.what, self.pid, self.host, self.since
        )
    }
}

/// Why a lease could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Someone else holds it.
    #[error("the cluster is in use by {holder} (lease {place}); wait for it to end or stop it")]
    Held {
        /// Who.
        holder: Holder,
        /// The lease file (and node, on real hosts).
        place: String,
    },
    /// The lease file could not be read or written.
    #[error("the cluster lease {place}: {reason}")]
    Io {
        /// The lease file (and node, on real hosts).
        place: String,
        /// What went wrong.
        reason: String,
    },
}

/// A lease held: the cluster is ours until this is dropped.
#[derive(Debug)]
pub struct Lease {
    held: Held,
    note: Option<String>,
}

#[derive(Debug)]
enum Held {
    Local {
        file: fs::File,
        path: PathBuf,
    },
    Hosts {
        nodes: Vec<Node>,
        path: String,
        /// The file's text, naming us: removed only where it still does.
        text: String,
    },
}

impl Lease {
    /// A note for the operator: whose dead lease was taken over, if any.
    pub fn note(&self) -> Option<&str> {
        self.note.as_deref()
    }
}

/// Takes the lease on `cluster` for `what` (`run NAME`, `db up`, ...), or
/// says who holds it.
pub fn acquire(cluster: &Cluster, what: &str) -> Result<Lease, LeaseError> {
    match cluster.kind() {
        ClusterKind::Local { state_dir, .. } => acquire_local(state_dir, what),
        ClusterKind::Hosts => acquire_hosts(cluster.nodes(), HOSTS_LEASE, what),
    }
}

/// Takes the lease of the local cluster whose state is in `state_dir`.
pub fn acquire_local(state_dir: &Path, what: &str) -> Result<Lease, LeaseError> {
    let path = state_dir.join(LOCAL_LEASE);
    let place = path.display().to_string();
    let io = |reason: String| LeaseError::Io {
        place: place.clone(),
        reason,
    };
    fs::create_dir_all(state_dir).map_err(|e| io(format!("creating the folder: {e}")))?;
    loop {
        let mut file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| io(format!("opening: {e}")))?;
        // SAFETY: flock on an fd we own; LOCK_NB: refuse at once, never wait.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(io(format!("locking: {e}")));
            }
            let text = fs::read_to_string(&path).unwrap_or_default();
            return Err(match serde_json::from_str::<Holder>(&text) {
                Ok(holder) => LeaseError::Held { holder, place },
                Err(_) => io("held by a process that has not yet said who it is".into()),
            });
        }
        // The holder before us may have removed the file as we opened it:
        // a lock on a file no longer at `path` guards nothing. Try again.
        let same = match (file.metadata(), fs::metadata(&path)) {
            (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
            _ => false,
        };
        if !same {
            continue;
        }
        let before = fs::read_to_string(&path).unwrap_or_default();
        let note = serde_json::from_str::<Holder>(&before)
            .ok()
            .map(|h| format!("took over the lease of {h}, which ended without giving it back"));
        let me = Holder::me(what);
        let text = serde_json::to_string(&me).map_err(|e| io(e.to_string()))?;
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(text.as_bytes()))
            .and_then(|()| file.flush())
            .map_err(|e| io(format!("writing: {e}")))?;
        return Ok(Lease {
            held: Held::Local { file, path },
            note,
        });
    }
}

/// Takes the lease on every one of `nodes` (a file at `path` on each);
/// all or none.
pub fn acquire_hosts(nodes: &[Node], path: &str, what: &str) -> Result<Lease, LeaseError> {
    let me = Holder::me(what);
    let text = serde_json::to_string(&me).map_err(|e| LeaseError::Io {
        place: path.to_string(),
        reason: e.to_string(),
    })?;
    let mut taken: Vec<Node> = Vec::new();
    let mut notes = Vec::new();
    for node in nodes {
        match take_on(node, path, &text) {
            Ok(note) => {
                taken.push(node.clone());
                notes.extend(note);
            }
            Err(e) => {
                release_hosts(&taken, path, &text);
                return Err(e);
            }
        }
    }
    Ok(Lease {
        held: Held::Hosts {
            nodes: taken,
            path: path.to_string(),
            text,
        },
        note: (!notes.is_empty()).then(|| notes.join("; ")),
    })
}

/// Single-quotes `s` for a POSIX shell.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Creates the lease file on `node` unless it exists; a file naming a dead
/// process of this host is replaced, with a note.
fn take_on(node: &Node, path: &str, text: &str) -> Result<Option<String>, LeaseError> {
    let place = format!("{path} on {}", node.name());
    let io = |reason: String| LeaseError::Io {
        place: place.clone(),
        reason,
    };
    let dir = Path::new(path)
        .parent()
        .map(|d| d.display().to_string())
        .unwrap_or_else(|| "/".into());
    // `set -C`: the redirection creates the file or fails, atomically.
    let create = format!(
        "mkdir -p {d} && if ( set -C; printf '%s' {t} > {p} ) 2>/dev/null; then echo TAKEN; else cat {p}; fi",
        d = quote(&dir),
        t = quote(text),
        p = quote(path)
    );
    let out = node.run(&create).map_err(|e| io(e.to_string()))?;
    if out.trim() == "TAKEN" {
        return Ok(None);
    }
    let holder: Holder = serde_json::from_str(out.trim()).map_err(|e| {
        io(format!(
            "held, but the file does not say by whom ({e}): {out}"
        ))
    })?;
    if !holder.is_dead_here() {
        return Err(LeaseError::Held { holder, place });
    }
    // Replace exactly the dead holder's file: if another taker got there
    // first, the file no longer matches and we are refused.
    let replace = format!(
        "if [ \"$(cat {p})\" = {old} ]; then printf '%s' {t} > {p} && echo TAKEN; else cat {p}; fi",
        p = quote(path),
        old = quote(out.trim()),
        t = quote(text)
    );
    let again = node.run(&replace).map_err(|e| io(e.to_string()))?;
    if again.trim() == "TAKEN" {
        return Ok(Some(format!(
            "took over the lease of {holder} on {}, which ended without giving it back",
            node.name()
        )));
    }
    match serde_json::from_str::<Holder>(again.trim()) {
        Ok(holder) => Err(LeaseError::Held { holder, place }),
        Err(e) => Err(io(format!("the lease changed under us ({e}): {again}"))),
    }
}

/// Removes the lease file on `nodes` where it is still ours.
fn release_hosts(nodes: &[Node], path: &str, text: &str) {
    let cmd = format!(
        "if [ \"$(cat {p} 2>/dev/null)\" = {t} ]; then rm -f {p}; fi",
        p = quote(path),
        t = quote(text)
    );
    for n in nodes {
        if let Err(e) = n.run(&cmd) {
            tracing::warn!(node = n.name(), "giving back the cluster lease: {e}");
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        match &mut self.held {
            Held::Local { file, path } => {
                // Clear the holder (a file naming one marks a dead holder)
                // and remove the file if it is still ours; closing the file
                // then lets the lock go.
                let ours = match (file.metadata(), fs::metadata(&*path)) {
                    (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
                    _ => false,
                };
                let _ = file.set_len(0);
                if ours {
                    let _ = fs::remove_file(&*path);
                }
            }
            Held::Hosts { nodes, path, text } => release_hosts(nodes, path, text),
        }
    }
}

/// This machine's host name.
fn this_host() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::Capabilities;
    use crate::control::{ControlError, ErrorKind, Output, Remote};
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn a_second_taker_is_refused_naming_the_holder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = acquire_local(dir.path(), "run etcd-register").expect("first");
        assert_eq!(first.note(), None);
        // flock locks belong to an open file: a second open, even in this
        // process, is a second taker.
        let e = acquire_local(dir.path(), "db down").expect_err("refused");
        let LeaseError::Held { holder, place } = &e else {
            panic!("{e}");
        };
        assert_eq!(holder.pid, std::process::id());
        assert_eq!(holder.what, "run etcd-register");
        assert!(place.ends_with(LOCAL_LEASE), "{place}");
        assert!(
            e.to_string()
                .contains("`faultline run etcd-register` (pid "),
            "{e}"
        );
        drop(first);
        assert!(!dir.path().join(LOCAL_LEASE).exists(), "given back");
        let again = acquire_local(dir.path(), "db down").expect("free again");
        assert_eq!(again.note(), None);
    }

    #[test]
    fn a_dead_holders_local_lease_is_taken_over_with_a_note() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A holder that died: its file is there, its lock went with it.
        let dead = Holder {
            host: this_host(),
            pid: 999_999_999,
            what: "run killed".into(),
            since: "20261205T080000.000Z".into(),
        };
        fs::write(
            dir.path().join(LOCAL_LEASE),
            serde_json::to_string(&dead).expect("json"),
        )
        .expect("write");
        let lease = acquire_local(dir.path(), "heal").expect("taken over");
        let note = lease.note().expect("a note");
        assert!(
            note.contains("`faultline run killed` (pid 999999999"),
            "{note}"
        );
        let now: Holder =
            serde_json::from_str(&fs::read_to_string(dir.path().join(LOCAL_LEASE)).expect("read"))
                .expect("holder");
        assert_eq!(now.what, "heal");
    }

    /// A node whose commands run in a local shell: enough for the lease's
    /// file protocol.
    #[derive(Debug)]
    struct Shell;

    impl Remote for Shell {
        fn node(&self) -> &str {
            "n1"
        }
        fn default_timeout(&self) -> Duration {
            Duration::from_secs(10)
        }
        fn exec_timeout(&self, command: &str, _: Duration) -> Result<Output, ControlError> {
            let out = std::process::Command::new("sh")
                .args(["-c", command])
                .output()
                .map_err(|e| ControlError::new("n1", command, ErrorKind::Session(e.to_string())))?;
            Ok(Output {
                status: out.status.code().unwrap_or(-1),
                signal: None,
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            })
        }
        fn upload(&self, _: &Path, _: &str, _: i32) -> Result<(), ControlError> {
            unreachable!("the lease uploads nothing")
        }
        fn download(&self, _: &str, _: &Path) -> Result<(), ControlError> {
            unreachable!("the lease downloads nothing")
        }
    }

    fn node() -> Node {
        let caps = Capabilities {
            can_skew_clock: false,
            has_netem: false,
            has_iptables: false,
            shares_host: false,
        };
        Node::new("n1", "127.0.0.1", Arc::new(Shell), caps, "/tmp")
    }

    #[test]
    fn hosts_lease_is_refused_while_held_and_taken_over_from_the_dead() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub").join("lease.json");
        let path = path.to_str().expect("utf-8");
        let nodes = vec![node()];
        let first = acquire_hosts(&nodes, path, "run a").expect("first");
        let e = acquire_hosts(&nodes, path, "run b").expect_err("refused");
        assert!(
            matches!(&e, LeaseError::Held { holder, .. } if holder.what == "run a"),
            "{e}"
        );
        assert!(e.to_string().contains("on n1"), "{e}");
        drop(first);
        assert!(!Path::new(path).exists(), "given back");

        let dead = Holder {
            host: this_host(),
            pid: 999_999_999,
            what: "run killed".into(),
            since: "20261205T080000.000Z".into(),
        };
        fs::write(path, serde_json::to_string(&dead).expect("json")).expect("write");
        let lease = acquire_hosts(&nodes, path, "heal").expect("taken over");
        assert!(
            lease.note().is_some_and(|n| n.contains("run killed")),
            "{:?}",
            lease.note()
        );
        // Another controller's lease cannot be checked from here: refused.
        drop(lease);
        let elsewhere = Holder {
            host: format!("{}-other", this_host()),
            ..dead
        };
        fs::write(path, serde_json::to_string(&elsewhere).expect("json")).expect("write");
        let e = acquire_hosts(&nodes, path, "heal").expect_err("refused");
        assert!(matches!(e, LeaseError::Held { .. }), "{e}");
    }
}
