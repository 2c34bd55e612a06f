//! Taking the local cluster down: nodes killed by their outer `unshare`,
//! namespaces, veths and the bridge removed, leftovers found by name.

use super::*;

/// What `down` removed.
#[derive(Debug, Clone, Default)]
pub struct DownReport {
    /// Node processes killed.
    pub killed: usize,
    /// Namespaces deleted.
    pub namespaces: Vec<String>,
    /// Links (bridge, veths) deleted.
    pub links: Vec<String>,
}

/// Removes the local cluster in `state_dir`: kills its nodes, deletes its
/// namespaces, veths and bridge, and its state. Safe to run twice, or after a
/// crash (the state is written before anything is built): whatever is
/// recorded, plus anything named with its prefix, is removed. With no state,
/// names with `prefix` are swept only if `prefix` is given.
pub fn down(state_dir: &Path, prefix: Option<&str>) -> Result<DownReport, ClusterError> {
    if !is_root() {
        return Err(ClusterError::NotRoot);
    }
    let paths = Paths {
        dir: state_dir.to_path_buf(),
    };
    let _lock = StateLock::take(&paths)?;
    let state = read_state(&paths).unwrap_or(None);
    let report = match (&state, prefix) {
        (Some(st), _) => remove(&paths, Some(st), &st.prefix)?,
        // Nothing recorded: sweep names only when asked to, so another
        // cluster that uses the default prefix is never touched by accident.
        (None, Some(p)) => remove(&paths, None, p)?,
        (None, None) => DownReport::default(),
    };
    for f in [
        STATE_FILE.to_string(),
        CLIENT_KEY.to_string(),
        format!("{CLIENT_KEY}.pub"),
        "known_hosts".to_string(),
        "authorized_keys".to_string(),
        // The caller's lease, if any, is over with the cluster.
        crate::cluster::lease::LOCAL_LEASE.to_string(),
    ] {
        let _ = fs::remove_file(paths.dir.join(f));
    }
    let _ = fs::remove_dir_all(paths.nodes());
    let _ = fs::remove_file(paths.lock());
    // Only if empty: the directory may be the user's.
    let _ = fs::remove_dir(&paths.dir);
    Ok(report)
}

/// Names matching `<prefix>-<kind><digits>`.
pub(super) fn is_ours(name: &str, prefix: &str, kind: &str) -> bool {
    name.strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('-'))
        .and_then(|r| r.strip_prefix(kind))
        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
}

pub(super) fn kill_pid(pid: u32) {
    // SAFETY: kill(2) with a pid we recorded and checked to be ours.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGKILL);
    }
}

/// The children of `pid` (needs CONFIG_PROC_CHILDREN, standard on Debian).
pub(super) fn child_pids(pid: u32) -> Vec<u32> {
    fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .map(|s| {
            s.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

pub(super) fn netns_pids(ns: &str) -> Vec<u32> {
    sh("ip", &["netns", "pids", ns])
        .map(|out| {
            out.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Namespaces and links named with `prefix` that exist now.
pub(super) fn leftovers(prefix: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in sh("ip", &["netns", "list"]).unwrap_or_default().lines() {
        if let Some(name) = line.split_whitespace().next() {
            if is_ours(name, prefix, "n") {
                found.push(name.to_string());
            }
        }
    }
    let bridge = format!("{prefix}-br");
    for name in link_names() {
        if name == bridge || is_ours(&name, prefix, "v") {
            found.push(name);
        }
    }
    found
}

/// What to do about routes that clash with a requested subnet: when one of
/// them is the bridge of a local cluster (`<prefix>-br` with namespaces
/// `<prefix>-n<digits>`, e.g. left by a run that was killed), the command
/// that removes it; otherwise pick another subnet.
pub(super) fn clash_fix(clashes: &[String]) -> String {
    let namespaces = sh("ip", &["netns", "list"]).unwrap_or_default();
    clash_fix_with(clashes, &namespaces)
}

/// [`clash_fix`] given the output of `ip netns list`.
pub(super) fn clash_fix_with(clashes: &[String], netns_list: &str) -> String {
    let prefixes: BTreeSet<&str> = clashes
        .iter()
        .filter_map(|route| {
            let mut words = route.split_whitespace();
            words.find(|w| *w == "dev")?;
            words.next()?.strip_suffix("-br")
        })
        .filter(|prefix| {
            netns_list
                .lines()
                .filter_map(|l| l.split_whitespace().next())
                .any(|ns| is_ours(ns, prefix, "n"))
        })
        .collect();
    match prefixes.iter().next() {
        Some(prefix) => format!(
            "they belong to the local cluster with the prefix {prefix:?} (nodes \
             {prefix}-n1...): take it down with `faultline cluster down --name-prefix \
             {prefix}` if it is not in use, or pick another --subnet"
        ),
        None => "pick another with --subnet".to_string(),
    }
}

/// The names of the links in the root namespace.
pub(super) fn link_names() -> Vec<String> {
    sh("ip", &["-o", "link", "show"])
        .unwrap_or_default()
        .lines()
        // "12: fl-v1@if2: <...>" → "fl-v1"
        .filter_map(|l| l.split(':').nth(1))
        .map(|s| s.trim().split('@').next().unwrap_or("").to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Kills and deletes everything of a cluster: the recorded nodes, and every
/// namespace and link named with `prefix`.
pub(super) fn remove(
    paths: &Paths,
    state: Option<&LocalState>,
    prefix: &str,
) -> Result<DownReport, ClusterError> {
    let mut report = DownReport::default();
    // 1. The nodes. SIGKILL of the node's pid-namespace init (the outer
    // unshare's child) ends every process in the node, and the unshare then
    // reaps it and exits; killing the unshare first would orphan the init,
    // and on a machine whose pid 1 does not reap it would stay a zombie.
    // The unshare itself is SIGKILLed if it lingers (with --kill-child that
    // alone also ends the node).
    let mut outer = Vec::new();
    if let Some(st) = state {
        for n in &st.nodes {
            if let Some(pid) = n.pid {
                if pid_is_node(pid, &node_marker(paths, &n.name)) {
                    for init in child_pids(pid) {
                        kill_pid(init);
                    }
                    outer.push(pid);
                    report.killed += 1;
                }
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while outer.iter().any(|&p| !is_zombie(p)) && Instant::now() < deadline {
        reap_children();
        std::thread::sleep(Duration::from_millis(5));
    }
    for &pid in &outer {
        if !is_zombie(pid) {
            kill_pid(pid);
        }
    }
    // 2. Every namespace of ours, recorded or found by name.
    let mut namespaces: BTreeSet<String> = state
        .map(|s| s.nodes.iter().map(|n| n.netns.clone()).collect())
        .unwrap_or_default();
    let listed = sh("ip", &["netns", "list"]).unwrap_or_default();
    for line in listed.lines() {
        if let Some(name) = line.split_whitespace().next() {
            if is_ours(name, prefix, "n") {
                namespaces.insert(name.to_string());
            }
        }
    }
    let existing: BTreeSet<&str> = listed
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    namespaces.retain(|ns| existing.contains(ns.as_str()));
    // Anything still running inside them (a process that escaped the pid
    // namespace teardown, e.g. started with `ip netns exec` by hand).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut left = Vec::new();
        for ns in &namespaces {
            for pid in netns_pids(ns) {
                if !is_zombie(pid) {
                    kill_pid(pid);
                    left.push(pid);
                }
            }
        }
        reap_children();
        if left.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            return Err(setup_err(
                "stopping nodes",
                format!("processes {left:?} still alive 5 s after SIGKILL"),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for ns in &namespaces {
        sh("ip", &["netns", "del", ns])?;
        report.namespaces.push(ns.clone());
    }
    // 3. Links: veths (normally gone with their namespace) and the bridge.
    let bridge = format!("{prefix}-br");
    for name in link_names() {
        if name == bridge || is_ours(&name, prefix, "v") {
            // A veth vanishes with its namespace, a moment after `netns
            // del`: a failed delete only matters if the link is still there.
            if let Err(e) = sh("ip", &["link", "del", &name]) {
                if link_names().contains(&name) {
                    return Err(e);
                }
            }
            report.links.push(name);
        }
    }
    Ok(report)
}

/// Whether a node process lives. For a child of ours, asks the kernel through
/// its handle: its /proc entry can read empty while it is between `ip` and
/// `unshare` (exec), which would look like death.
pub(super) fn node_process_alive(paths: &Paths, name: &str, pid: u32) -> bool {
    let mut kids = children();
    if let Some(c) = kids.iter_mut().find(|c| c.id() == pid) {
        return matches!(c.try_wait(), Ok(None));
    }
    drop(kids);
    pid_is_node(pid, &node_marker(paths, name))
}

/// Waits for node processes this process started and that have died.
pub(super) fn reap_children() {
    children().retain_mut(|c| matches!(c.try_wait(), Ok(None)));
}
