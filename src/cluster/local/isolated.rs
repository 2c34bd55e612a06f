//! Isolated local nodes: each node a machine of its own on this kernel.
//!
//! `faultline cluster up --isolated` gives every node its own root
//! filesystem, so a database "installed on the nodes" is installed on each
//! node, by apt, over SSH, as on real hosts:
//!
//! - **The base** ([`ensure_base`]): one Debian root filesystem of this
//!   machine's release, built once by `debootstrap --variant=minbase` (with
//!   sshd, sudo, iproute2, iptables, procps, libfaketime) and kept read-only
//!   under `<cache>/base-<release>` (default `/var/cache/faultline`). It has
//!   a user [`USER`] with passwordless sudo, no sshd host keys of its own, a
//!   `policy-rc.d` that keeps packages from starting their services (there
//!   is no service manager; faultline starts daemons itself), and one apt
//!   source: the local repository below.
//! - **The local repository** ([`ensure_repo`]): nodes have no route to any
//!   package registry (the bridge has no NAT, nodes no default route), as in
//!   an air-gapped lab with its own mirror. The controller downloads here,
//!   with this machine's apt and indexes, what installing the requested
//!   packages on the base takes (`apt-get install --download-only` against
//!   the base's own dpkg status, so the closure is exact), indexes it with
//!   `dpkg-scanpackages`, and every node sees it read-only at
//!   [`REPO_MOUNT`] as `deb [trusted=yes] file:/var/lib/faultline-apt ./`.
//!   Inside a node, installing is an ordinary `apt-get install`.
//! - **A node** ([`node_script`]): in its network namespace, a new pid,
//!   uts and mount namespace (private propagation: nothing it mounts is seen
//!   outside) mounts an overlay of the base (lower, shared) and the node's
//!   own writable layer (upper, `nodes/<name>/upper` in the state
//!   directory), fresh `/proc`, `/sys`, a small `/dev` (null, zero, full,
//!   random, urandom, tty, fuse, its own devpts; no `/dev/net/tun`), tmpfs
//!   `/run`, the repository, then `pivot_root`s into it and runs the node's
//!   sshd there. The node's `/etc`, `/var`, `/tmp`, `/opt` and dpkg database
//!   are its own; root login is refused, [`USER`] logs in with the cluster's
//!   key and becomes root through sudo.
//!
//! The node shares this machine's kernel, and so its clock: the base holds
//! [`SHARED_CLOCK_MARKER`], which [`crate::cluster::Cluster::hosts`] reads,
//! so even when driven as real hosts (`--nodes`) no fault sets the clock
//! with `date -s` (that would set this machine's).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use super::{setup_err, sh, ClusterError};
use crate::control::shell_quote;

/// The non-root login user of isolated nodes (passwordless sudo).
pub const USER: &str = "faultline";
/// Where the local package repository appears inside every node.
pub const REPO_MOUNT: &str = "/var/lib/faultline-apt";
/// The default cache of bases and repositories.
pub const DEFAULT_CACHE_DIR: &str = "/var/cache/faultline";
/// A file present on a node whose clock is this machine's (an isolated
/// local node): setting it would set the controller's clock too.
pub const SHARED_CLOCK_MARKER: &str = "/etc/faultline/shared-clock";
/// The packages every base has beyond minbase.
const BASE_PACKAGES: &str =
    "openssh-server,sudo,iproute2,iptables,procps,ca-certificates,libfaketime";
/// Bumped whenever the base's recipe changes, so an old cached base is
/// rebuilt instead of used.
const BASE_RECIPE: u32 = 1;
/// The file that says a base is complete, with its recipe.
const BASE_STAMP: &str = "etc/faultline/base";

/// What isolated nodes are built from.
#[derive(Debug, Clone)]
pub struct IsolatedSpec {
    /// The Debian release of the base (default: this machine's).
    pub release: String,
    /// Where bases and repositories are cached.
    pub cache_dir: PathBuf,
    /// The Debian mirror debootstrap fetches from (default: the first one
    /// this machine's apt sources use for the release).
    pub mirror: Option<String>,
    /// The Debian packages offered to the nodes in the local repository
    /// (with everything they depend on).
    pub packages: Vec<String>,
}

impl IsolatedSpec {
    /// This machine's release, the default cache, and `packages`.
    pub fn new(packages: Vec<String>) -> Result<IsolatedSpec, ClusterError> {
        Ok(IsolatedSpec {
            release: host_release()?,
            cache_dir: PathBuf::from(DEFAULT_CACHE_DIR),
            mirror: None,
            packages,
        })
    }

    /// The cached base of this release.
    pub fn base_dir(&self) -> PathBuf {
        self.cache_dir.join(format!("base-{}", self.release))
    }

    /// The cached local repository of this release.
    pub fn repo_dir(&self) -> PathBuf {
        self.cache_dir.join(format!("apt-{}", self.release))
    }
}

/// What an isolated cluster records (`cluster.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct IsolatedState {
    /// The base (the overlay's read-only lower layer).
    pub base: PathBuf,
    /// The local repository, mounted read-only in every node.
    pub repo: PathBuf,
    /// The login user.
    pub user: String,
}

/// This machine's Debian release (`VERSION_CODENAME` in /etc/os-release).
pub fn host_release() -> Result<String, ClusterError> {
    let text = fs::read_to_string("/etc/os-release")
        .map_err(|e| setup_err("reading /etc/os-release", e))?;
    release_of(&text).ok_or_else(|| {
        setup_err(
            "finding this machine's release",
            "/etc/os-release names no VERSION_CODENAME",
        )
    })
}

fn release_of(os_release: &str) -> Option<String> {
    os_release.lines().find_map(|l| {
        let v = l
            .strip_prefix("VERSION_CODENAME=")?
            .trim()
            .trim_matches('"');
        (!v.is_empty() && v.bytes().all(|b| b.is_ascii_alphanumeric())).then(|| v.to_string())
    })
}

/// The first mirror this machine's apt sources use for `release` (one-line
/// `.list` files and deb822 `.sources` files), else deb.debian.org.
pub fn host_mirror(release: &str) -> String {
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(dir) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut more: Vec<PathBuf> = dir.flatten().map(|e| e.path()).collect();
        more.sort();
        files.extend(more);
    }
    for f in files {
        let Ok(text) = fs::read_to_string(&f) else {
            continue;
        };
        let name = f.display().to_string();
        let found = if name.ends_with(".sources") {
            mirror_in_deb822(&text, release)
        } else if name.ends_with(".list") {
            mirror_in_list(&text, release)
        } else {
            None
        };
        if let Some(m) = found {
            return m;
        }
    }
    "http://deb.debian.org/debian".to_string()
}

fn mirror_in_list(text: &str, release: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let mut words = l.split_whitespace().peekable();
        if words.next()? != "deb" {
            return None;
        }
        if words.peek()?.starts_with('[') {
            // Options: `[arch=amd64 signed-by=...]`, possibly several words.
            for w in words.by_ref() {
                if w.ends_with(']') {
                    break;
                }
            }
        }
        let uri = words.next()?;
        (words.next()? == release).then(|| uri.to_string())
    })
}

fn mirror_in_deb822(text: &str, release: &str) -> Option<String> {
    text.split("\n\n").find_map(|stanza| {
        let field = |name: &str| {
            stanza.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_string())
            })
        };
        let types = field("Types")?;
        let suites = field("Suites")?;
        let enabled = field("Enabled").map_or(true, |v| v != "no");
        (enabled
            && types.split_whitespace().any(|t| t == "deb")
            && suites.split_whitespace().any(|s| s == release))
        .then(|| field("URIs"))?
        .and_then(|u| u.split_whitespace().next().map(str::to_string))
    })
}

/// Takes an exclusive `flock` on `path` for as long as the file lives, so
/// two `cluster up --isolated` never build the same cache at once (the
/// second waits, then finds it built).
fn cache_lock(path: &Path) -> Result<fs::File, ClusterError> {
    use std::os::fd::AsRawFd;
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| setup_err(format!("opening {}", path.display()), e))?;
    // SAFETY: flock on an fd we own; blocks until the other holder is done.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(setup_err(
            format!("locking {}", path.display()),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(f)
}

fn stamp_text() -> String {
    format!("recipe {BASE_RECIPE}\npackages {BASE_PACKAGES}\n")
}

/// Whether `base` is a complete base of the current recipe.
pub fn base_is_built(base: &Path) -> bool {
    fs::read_to_string(base.join(BASE_STAMP)).is_ok_and(|s| s == stamp_text())
}

/// The base of `spec`'s release: the cached one, or built now (minutes,
/// through the Debian mirror) and cached. Returns its path.
pub fn ensure_base(spec: &IsolatedSpec) -> Result<PathBuf, ClusterError> {
    let base = spec.base_dir();
    if base_is_built(&base) {
        return Ok(base);
    }
    fs::create_dir_all(&spec.cache_dir)
        .map_err(|e| setup_err(format!("creating {}", spec.cache_dir.display()), e))?;
    let _lock = cache_lock(&spec.cache_dir.join(format!("base-{}.lock", spec.release)))?;
    if base_is_built(&base) {
        return Ok(base);
    }
    if super::find_program("debootstrap").is_none() {
        return Err(ClusterError::Missing {
            program: "debootstrap".into(),
            package: "debootstrap".into(),
        });
    }
    let partial = spec
        .cache_dir
        .join(format!("base-{}.partial", spec.release));
    let _ = fs::remove_dir_all(&partial);
    let mirror = spec
        .mirror
        .clone()
        .unwrap_or_else(|| host_mirror(&spec.release));
    let t0 = std::time::Instant::now();
    tracing::info!(
        "building the isolated nodes' base: debootstrap --variant=minbase {} from {mirror} \
         (once; cached in {})",
        spec.release,
        base.display()
    );
    let partial_s = partial.display().to_string();
    sh(
        "debootstrap",
        &[
            "--variant=minbase",
            &format!("--include={BASE_PACKAGES}"),
            &spec.release,
            &partial_s,
            &mirror,
        ],
    )?;
    configure_base(&partial)?;
    let _ = fs::remove_dir_all(&base);
    fs::rename(&partial, &base).map_err(|e| {
        setup_err(
            format!("renaming {} to {}", partial.display(), base.display()),
            e,
        )
    })?;
    tracing::info!("base built in {:.0} s", t0.elapsed().as_secs_f64());
    Ok(base)
}

/// Makes a fresh debootstrap tree a base: the login user with sudo, no host
/// keys, no service starts, the local repository as the only apt source,
/// the shared-clock marker, and last the stamp.
fn configure_base(root: &Path) -> Result<(), ClusterError> {
    let root_s = root.display().to_string();
    let in_root = |args: &[&str]| -> Result<String, ClusterError> {
        let mut all = vec![root_s.as_str()];
        all.extend_from_slice(args);
        sh("chroot", &all)
    };
    in_root(&["useradd", "--create-home", "--shell", "/bin/bash", USER])?;
    // `*`: no password, but not locked (`!`), which sshd without PAM
    // would refuse even for key logins.
    in_root(&["usermod", "--password", "*", USER])?;
    in_root(&["passwd", "--lock", "root"])?;
    let write = |rel: &str, text: &str, mode: u32| -> Result<(), ClusterError> {
        use std::os::unix::fs::PermissionsExt;
        let path = root.join(rel);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)
                .map_err(|e| setup_err(format!("creating {}", dir.display()), e))?;
        }
        fs::write(&path, text)
            .and_then(|_| fs::set_permissions(&path, fs::Permissions::from_mode(mode)))
            .map_err(|e| setup_err(format!("writing {}", path.display()), e))
    };
    write(
        "etc/sudoers.d/faultline",
        &format!("{USER} ALL=(ALL:ALL) NOPASSWD: ALL\n"),
        0o440,
    )?;
    // Packages install their services' start-up, and on a machine without
    // a service manager invoke-rc.d would start them at once, on the ports
    // faultline's own daemons need: 101 is "not allowed" (as in Debian's
    // container images).
    write(
        "usr/sbin/policy-rc.d",
        "#!/bin/sh\n# faultline: services are started by faultline, not by packages.\nexit 101\n",
        0o755,
    )?;
    write(
        "etc/apt/sources.list",
        &format!(
            "# faultline: the nodes' only package source, offered by the controller.\n\
             deb [trusted=yes] file:{REPO_MOUNT} ./\n"
        ),
        0o644,
    )?;
    let _ = fs::remove_dir_all(root.join("etc/apt/sources.list.d"));
    let _ = fs::create_dir_all(root.join("etc/apt/sources.list.d"));
    // Each node gets host keys of its own at start.
    for entry in fs::read_dir(root.join("etc/ssh"))
        .map_err(|e| setup_err("reading the base's /etc/ssh", e))?
        .flatten()
    {
        if entry.file_name().to_string_lossy().starts_with("ssh_host_") {
            let _ = fs::remove_file(entry.path());
        }
    }
    // The indexes debootstrap fetched are the mirror's; the node's come from
    // the local repository at its first `apt-get update`.
    if let Ok(lists) = fs::read_dir(root.join("var/lib/apt/lists")) {
        for e in lists.flatten() {
            if e.path().is_file() {
                let _ = fs::remove_file(e.path());
            }
        }
    }
    let _ = fs::create_dir_all(root.join(REPO_MOUNT.trim_start_matches('/')));
    let _ = fs::create_dir_all(root.join(super::DEFAULT_WORK_DIR.trim_start_matches('/')));
    write(
        SHARED_CLOCK_MARKER.trim_start_matches('/'),
        "This node shares its kernel, and so its clock, with the machine that runs it.\n",
        0o644,
    )?;
    write(BASE_STAMP, &stamp_text(), 0o644)
}

/// The local repository offering `spec.packages` (and what they need on top
/// of the base) to the nodes: downloaded on this machine, once; later calls
/// download only what is new. Returns its path.
pub fn ensure_repo(spec: &IsolatedSpec, base: &Path) -> Result<PathBuf, ClusterError> {
    let repo = spec.repo_dir();
    fs::create_dir_all(repo.join("partial"))
        .map_err(|e| setup_err(format!("creating {}", repo.display()), e))?;
    let _lock = cache_lock(&spec.cache_dir.join(format!("apt-{}.lock", spec.release)))?;
    let offered_file = repo.join("offered");
    let mut offered: Vec<String> = fs::read_to_string(&offered_file)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    let missing: Vec<&String> = spec
        .packages
        .iter()
        .filter(|p| !offered.contains(p))
        .collect();
    if missing.is_empty() && repo.join("Packages").is_file() {
        return Ok(repo);
    }
    for p in &spec.packages {
        if p.is_empty()
            || !p
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        {
            return Err(ClusterError::Invalid(format!(
                "{p:?} is not a Debian package name"
            )));
        }
    }
    let t0 = std::time::Instant::now();
    if !missing.is_empty() {
        tracing::info!(
            "fetching for the isolated nodes' repository: {}",
            missing
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        );
        // What installing them on the base needs, judged by the base's own
        // dpkg status and fetched with this machine's sources and indexes.
        let status = base.join("var/lib/dpkg/status");
        let mut args = vec![
            "-q".to_string(),
            "-y".to_string(),
            "--download-only".to_string(),
            "-o".to_string(),
            format!("Dir::State::status={}", status.display()),
            "-o".to_string(),
            format!("Dir::Cache::archives={}", repo.display()),
            "-o".to_string(),
            "Debug::NoLocking=1".to_string(),
            "-o".to_string(),
            "APT::Install-Recommends=true".to_string(),
            "install".to_string(),
        ];
        args.extend(missing.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let fetched = sh("apt-get", &args);
        if let Err(e) = fetched {
            // The indexes may be stale (a package moved to a new version):
            // refresh them once and try again.
            tracing::info!("apt-get --download-only failed ({e}); running apt-get update");
            sh(
                "apt-get",
                &["-q", "-o", "DPkg::Lock::Timeout=600", "update"],
            )?;
            sh("apt-get", &args)?;
        }
    }
    index_repo(&repo)?;
    for p in missing {
        offered.push(p.clone());
    }
    offered.sort();
    offered.dedup();
    fs::write(&offered_file, offered.join("\n") + "\n")
        .map_err(|e| setup_err(format!("writing {}", offered_file.display()), e))?;
    tracing::info!(
        "repository ready in {:.1} s ({})",
        t0.elapsed().as_secs_f64(),
        repo.display()
    );
    Ok(repo)
}

/// Writes the flat repository's index (`Packages`), atomically, from the
/// `.deb` files in `repo`.
fn index_repo(repo: &Path) -> Result<(), ClusterError> {
    if super::find_program("dpkg-scanpackages").is_none() {
        return Err(ClusterError::Missing {
            program: "dpkg-scanpackages".into(),
            package: "dpkg-dev".into(),
        });
    }
    let out = Command::new("dpkg-scanpackages")
        .args(["--multiversion", "."])
        .current_dir(repo)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map_err(|e| setup_err("dpkg-scanpackages", e))?;
    if !out.status.success() {
        return Err(setup_err("dpkg-scanpackages", out.status));
    }
    let tmp = repo.join("Packages.tmp");
    fs::write(&tmp, &out.stdout)
        .and_then(|_| fs::rename(&tmp, repo.join("Packages")))
        .map_err(|e| setup_err(format!("writing {}/Packages", repo.display()), e))
}

/// The sshd configuration inside an isolated node: its address, its own
/// host key, [`USER`] alone (root login refused), by key.
pub fn sshd_config(name: &str, ip: std::net::Ipv4Addr) -> String {
    format!(
        "# sshd for faultline isolated node {name}\n\
         ListenAddress {ip}:22\n\
         HostKey /etc/ssh/faultline_host_ed25519_key\n\
         PidFile /run/sshd.pid\n\
         AuthorizedKeysFile /etc/ssh/faultline_authorized_keys\n\
         PermitRootLogin no\n\
         AllowUsers {USER}\n\
         PubkeyAuthentication yes\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         UsePAM no\n\
         UseDNS no\n\
         PrintMotd no\n\
         MaxStartups 100:30:200\n\
         MaxSessions 100\n\
         Subsystem sftp internal-sftp\n"
    )
}

/// The shell script that becomes an isolated node (run as pid 1 of its
/// pid namespace, in its own mount namespace): mounts its root, moves into
/// it and execs its sshd. `dir` is the node's folder in the state
/// directory (its layer, its keys, its sshd configuration);
/// `authorized_keys` holds the cluster's client key.
pub fn node_script(
    name: &str,
    dir: &Path,
    authorized_keys: &Path,
    state: &IsolatedState,
) -> String {
    let q = |p: &Path| shell_quote(&p.display().to_string());
    format!(
        "set -e; echo {name} > /proc/sys/kernel/hostname; \
         R={root}; mkdir -p \"$R\" {upper} {work}; \
         mount -t overlay overlay -o lowerdir={base},upperdir={upper},workdir={work} \"$R\"; \
         mount -t proc -o nosuid,nodev,noexec proc \"$R/proc\"; \
         mount -t sysfs -o nosuid,nodev,noexec sysfs \"$R/sys\"; \
         mount -t tmpfs -o nosuid,mode=755,size=64k tmpfs \"$R/dev\"; \
         for d in null zero full random urandom tty fuse; do \
           if [ -c /dev/$d ]; then touch \"$R/dev/$d\"; mount --bind /dev/$d \"$R/dev/$d\"; fi; done; \
         mkdir -p \"$R/dev/pts\" \"$R/dev/shm\"; \
         mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts \"$R/dev/pts\"; \
         ln -s pts/ptmx \"$R/dev/ptmx\"; ln -s /proc/self/fd \"$R/dev/fd\"; \
         ln -s /proc/self/fd/0 \"$R/dev/stdin\"; ln -s /proc/self/fd/1 \"$R/dev/stdout\"; \
         ln -s /proc/self/fd/2 \"$R/dev/stderr\"; \
         mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs \"$R/dev/shm\"; \
         mount -t tmpfs -o nosuid,nodev,mode=755 tmpfs \"$R/run\"; \
         mkdir -p \"$R/run/sshd\" \"$R{repo_at}\"; \
         mount --bind {repo} \"$R{repo_at}\"; mount -o remount,bind,ro \"$R{repo_at}\"; \
         echo {name} > \"$R/etc/hostname\"; cp {hosts} \"$R/etc/hosts\"; \
         cp {cfg} \"$R/etc/ssh/faultline_sshd_config\"; \
         install -m 600 {hk} \"$R/etc/ssh/faultline_host_ed25519_key\"; \
         install -m 644 {hk}.pub \"$R/etc/ssh/faultline_host_ed25519_key.pub\"; \
         install -m 644 {ak} \"$R/etc/ssh/faultline_authorized_keys\"; \
         cd \"$R\"; pivot_root . .; umount -l .; cd /; \
         exec /usr/sbin/sshd -D -e -f /etc/ssh/faultline_sshd_config",
        root = q(&dir.join("rootfs")),
        upper = q(&dir.join("upper")),
        work = q(&dir.join("overlay-work")),
        base = q(&state.base),
        repo = q(&state.repo),
        repo_at = REPO_MOUNT,
        hosts = q(&dir.join("hosts")),
        cfg = q(&dir.join("sshd_config")),
        hk = q(&dir.join("ssh_host_ed25519_key")),
        ak = q(authorized_keys),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_from_os_release() {
        let text = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nVERSION_CODENAME=bookworm\n";
        assert_eq!(release_of(text).as_deref(), Some("bookworm"));
        assert_eq!(
            release_of("VERSION_CODENAME=\"trixie\"\n").as_deref(),
            Some("trixie")
        );
        assert_eq!(release_of("NAME=x\n"), None);
        assert_eq!(release_of("VERSION_CODENAME=a;b\n"), None);
    }

    #[test]
    fn mirrors_from_apt_sources() {
        let list = "# comment\ndeb-src http://src.example/debian bookworm main\n\
                    deb [arch=amd64 signed-by=/k.gpg] http://m.example/debian bookworm main\n";
        assert_eq!(
            mirror_in_list(list, "bookworm").as_deref(),
            Some("http://m.example/debian")
        );
        assert_eq!(mirror_in_list(list, "trixie"), None);
        let sources = "Types: deb\nURIs: http://sec.example/debian-security\n\
                       Suites: bookworm-security\nComponents: main\n\n\
                       Types: deb\nURIs: http://deb.example/debian\n\
                       Suites: bookworm bookworm-updates\nComponents: main\n";
        assert_eq!(
            mirror_in_deb822(sources, "bookworm").as_deref(),
            Some("http://deb.example/debian")
        );
        let disabled =
            "Types: deb\nURIs: http://off.example/debian\nSuites: bookworm\nEnabled: no\n";
        assert_eq!(mirror_in_deb822(disabled, "bookworm"), None);
    }

    #[test]
    fn node_sshd_refuses_root_and_allows_the_user_by_key() {
        let cfg = sshd_config("n1", std::net::Ipv4Addr::new(10, 79, 0, 11));
        assert!(cfg.contains("ListenAddress 10.79.0.11:22"), "{cfg}");
        assert!(cfg.contains("PermitRootLogin no"), "{cfg}");
        assert!(cfg.contains(&format!("AllowUsers {USER}")), "{cfg}");
        assert!(cfg.contains("PasswordAuthentication no"), "{cfg}");
    }

    #[test]
    fn node_script_mounts_its_own_root_and_keeps_tun_out() {
        let state = IsolatedState {
            base: "/var/cache/faultline/base-bookworm".into(),
            repo: "/var/cache/faultline/apt-bookworm".into(),
            user: USER.into(),
        };
        let s = node_script(
            "n2",
            Path::new("/run/fl/nodes/n2"),
            Path::new("/run/fl/authorized_keys"),
            &state,
        );
        assert!(
            s.contains(
                "lowerdir=/var/cache/faultline/base-bookworm,upperdir=/run/fl/nodes/n2/upper"
            ),
            "{s}"
        );
        assert!(s.contains("mount -o remount,bind,ro"), "{s}");
        assert!(s.contains("pivot_root . ."), "{s}");
        assert!(!s.contains("net/tun"), "{s}");
        // The marker that tells the node's process apart from a recycled pid.
        assert!(s.contains("/run/fl/nodes/n2/sshd_config"), "{s}");
    }
}
