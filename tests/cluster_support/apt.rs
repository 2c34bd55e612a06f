//! Installing the Debian packages a test needs, as root, the way `faultline
//! run` installs what a run needs: a fresh machine runs every test with one
//! `cargo test`. Failing to install panics with apt-get's error: a test never
//! passes without having run. Shared by tests/cluster_support (local
//! clusters) and tests/web_support (Chromium).
#![allow(dead_code)]

use std::fs::File;
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

/// The lock every test binary takes around apt-get, so binaries running in
/// parallel install one after the other (dpkg's own lock would make the
/// second one fail instead of wait).
const LOCK: &str = "/tmp/faultline-apt.lock";

/// Whether this process runs as root (effective uid 0 in /proc/self/status).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2))
                .map(|uid| uid == "0")
        })
        .unwrap_or(false)
}

/// Whether `program` (an absolute path, or a name looked up in PATH and the
/// sbin folders root's PATH has) exists.
pub fn present(program: &str) -> bool {
    if program.starts_with('/') {
        return Path::new(program).exists();
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(Into::into))
        .any(|dir| dir.join(program).is_file())
}

/// Makes sure every `(program, Debian package)` is there: installs the
/// packages of the missing programs with apt-get (as root, under a lock
/// shared by all test binaries). Panics with the reason when it cannot.
pub fn ensure(needs: &[(&str, &str)]) {
    let missing = |needs: &[(&str, &str)]| -> Vec<String> {
        let mut pkgs: Vec<String> = needs
            .iter()
            .filter(|(program, _)| !present(program))
            .map(|(_, pkg)| pkg.to_string())
            .collect();
        pkgs.dedup();
        pkgs
    };
    if missing(needs).is_empty() {
        return;
    }
    if !is_root() {
        panic!(
            "needs root to install {} (or install them: apt-get install -y {})",
            missing(needs).join(", "),
            missing(needs).join(" ")
        );
    }
    let lock = File::create(LOCK).unwrap_or_else(|e| panic!("cannot open {LOCK}: {e}"));
    // SAFETY: flock on a descriptor this function owns; released when `lock`
    // is dropped (closed) at the end of the function.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
        panic!("cannot lock {LOCK}: {}", std::io::Error::last_os_error());
    }
    // Another test binary may have installed them while we waited.
    let pkgs = missing(needs);
    if pkgs.is_empty() {
        return;
    }
    eprintln!(
        "installing for the tests: apt-get install -y {}",
        pkgs.join(" ")
    );
    // A fresh machine has no package lists; update them once per process.
    static UPDATED: AtomicBool = AtomicBool::new(false);
    if !UPDATED.swap(true, Ordering::SeqCst) {
        apt(&["update"]);
    }
    let mut install = vec!["install", "-y"];
    install.extend(pkgs.iter().map(String::as_str));
    apt(&install);
    let still = missing(needs);
    assert!(
        still.is_empty(),
        "apt-get installed {} but these programs are still missing: {:?}",
        pkgs.join(" "),
        needs
            .iter()
            .filter(|(p, _)| !present(p))
            .map(|(p, _)| *p)
            .collect::<Vec<_>>()
    );
    drop(lock);
}

/// Runs apt-get non-interactively, waiting for dpkg's lock up to 10 min;
/// panics with apt-get's output when it fails.
fn apt(args: &[&str]) {
    let out = Command::new("apt-get")
        .args(["-q", "-o", "DPkg::Lock::Timeout=600"])
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output()
        .unwrap_or_else(|e| panic!("cannot run apt-get: {e}"));
    if !out.status.success() {
        panic!(
            "apt-get {} failed ({}):\n{}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
