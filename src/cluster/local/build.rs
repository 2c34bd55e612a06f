//! Building the local cluster: keys, the bridge and veths, one sshd per
//! node in its own namespaces, and the wait until every sshd answers.

use super::*;

pub(super) fn build(paths: &Paths, state: &mut LocalState) -> Result<(), ClusterError> {
    let t0 = Instant::now();
    make_keys(paths, state)?;
    make_network(state)?;
    state.has_netem = probe_netem(&state.nodes[0].netns);
    fs::create_dir_all(DEFAULT_WORK_DIR)
        .map_err(|e| setup_err(format!("creating mount point {DEFAULT_WORK_DIR}"), e))?;
    fs::create_dir_all("/run/sshd").map_err(|e| setup_err("creating /run/sshd", e))?;
    for i in 0..state.nodes.len() {
        let pid = start_node(paths, &state.nodes[i], state.isolated.as_ref())?;
        state.nodes[i].pid = Some(pid);
        write_state(paths, state)?;
    }
    wait_for_sshd(paths, state)?;
    tracing::info!("local cluster built in {:.2} s", t0.elapsed().as_secs_f64());
    Ok(())
}

pub(super) fn make_keys(paths: &Paths, state: &LocalState) -> Result<(), ClusterError> {
    let key = paths.client_key();
    if !key.exists() || !paths.dir.join(format!("{CLIENT_KEY}.pub")).exists() {
        let _ = fs::remove_file(&key);
        let key_s = key.display().to_string();
        sh(
            "ssh-keygen",
            &[
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "faultline",
                "-f",
                &key_s,
            ],
        )?;
    }
    let client_pub = fs::read_to_string(paths.dir.join(format!("{CLIENT_KEY}.pub")))
        .map_err(|e| setup_err("reading the client public key", e))?;
    fs::write(paths.authorized_keys(), &client_pub)
        .map_err(|e| setup_err("writing authorized_keys", e))?;
    let mut known = String::new();
    for node in &state.nodes {
        let dir = paths.node(&node.name);
        for sub in ["root", "work"] {
            fs::create_dir_all(dir.join(sub))
                .map_err(|e| setup_err(format!("creating {}", dir.join(sub).display()), e))?;
        }
        let host_key = dir.join("ssh_host_ed25519_key");
        let host_pub = dir.join("ssh_host_ed25519_key.pub");
        if !host_key.exists() || !host_pub.exists() {
            let _ = fs::remove_file(&host_key);
            let hk = host_key.display().to_string();
            sh(
                "ssh-keygen",
                &["-q", "-t", "ed25519", "-N", "", "-C", &node.name, "-f", &hk],
            )?;
        }
        let public = fs::read_to_string(&host_pub)
            .map_err(|e| setup_err(format!("reading {}", host_pub.display()), e))?;
        let mut words = public.split_whitespace();
        let (Some(kind), Some(blob)) = (words.next(), words.next()) else {
            return Err(setup_err(
                format!("reading {}", host_pub.display()),
                "malformed key",
            ));
        };
        known.push_str(&format!("{} {kind} {blob}\n", node.ip));
        if state.isolated.is_some() {
            // Inside the node's own root: paths of its own, copied there
            // at start (isolated::node_script).
            fs::write(
                dir.join("sshd_config"),
                isolated::sshd_config(&node.name, node.ip),
            )
            .map_err(|e| setup_err("writing sshd_config", e))?;
            fs::write(dir.join("hosts"), hosts_file(state))
                .map_err(|e| setup_err("writing hosts", e))?;
            continue;
        }
        let config = format!(
            "# sshd for faultline local node {name}\n\
             ListenAddress {ip}:22\n\
             HostKey {hk}\n\
             PidFile {dir}/sshd.pid\n\
             AuthorizedKeysFile {ak}\n\
             PermitRootLogin prohibit-password\n\
             PubkeyAuthentication yes\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             UsePAM no\n\
             UseDNS no\n\
             StrictModes no\n\
             PrintMotd no\n\
             MaxStartups 100:30:200\n\
             MaxSessions 100\n\
             Subsystem sftp internal-sftp\n",
            name = node.name,
            ip = node.ip,
            hk = host_key.display(),
            dir = dir.display(),
            ak = paths.authorized_keys().display(),
        );
        fs::write(dir.join("sshd_config"), config)
            .map_err(|e| setup_err("writing sshd_config", e))?;
    }
    fs::write(paths.known_hosts(), known).map_err(|e| setup_err("writing known_hosts", e))?;
    Ok(())
}

/// `/etc/hosts` of an isolated node: loopback and every node by name.
fn hosts_file(state: &LocalState) -> String {
    let mut text =
        String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    for n in &state.nodes {
        text.push_str(&format!("{}\t{}\n", n.ip, n.name));
    }
    text
}

pub(super) fn make_network(state: &LocalState) -> Result<(), ClusterError> {
    let len = state.subnet.prefix_len();
    let mut batch = format!(
        "link add {br} type bridge\naddr add {ip}/{len} dev {br}\nlink set {br} up\n",
        br = state.bridge,
        ip = state.bridge_ip
    );
    for n in &state.nodes {
        batch.push_str(&format!(
            "netns add {ns}\nlink add {v} type veth peer name eth0 netns {ns}\n\
             link set {v} master {br}\nlink set {v} up\n",
            ns = n.netns,
            v = n.veth,
            br = state.bridge
        ));
    }
    sh_input("ip", &["-batch", "-"], Some(&batch))?;
    for n in &state.nodes {
        let inner = format!(
            "addr add {ip}/{len} dev eth0\nlink set eth0 up\nlink set lo up\n",
            ip = n.ip
        );
        sh_input("ip", &["-n", &n.netns, "-batch", "-"], Some(&inner))?;
    }
    Ok(())
}

/// Whether netem works here: try it on a node's loopback.
pub(super) fn probe_netem(netns: &str) -> bool {
    let ok = sh(
        "ip",
        &[
            "netns", "exec", netns, "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay",
            "1ms",
        ],
    )
    .is_ok();
    if ok {
        let _ = sh(
            "ip",
            &[
                "netns", "exec", netns, "tc", "qdisc", "del", "dev", "lo", "root",
            ],
        );
    }
    ok
}

pub(super) fn start_node(
    paths: &Paths,
    node: &LocalNode,
    iso: Option<&isolated::IsolatedState>,
) -> Result<u32, ClusterError> {
    let dir = paths.node(&node.name);
    let q = |p: PathBuf| crate::control::shell_quote(&p.display().to_string());
    // Runs as pid 1 of the node's pid namespace, in its own mount and uts
    // namespaces; sshd replaces it and so reaps whatever the node starts.
    let script = match iso {
        Some(iso) => isolated::node_script(&node.name, &dir, &paths.authorized_keys(), iso),
        None => format!(
            "set -e; echo {name} > /proc/sys/kernel/hostname; \
         mount --bind {root} /root; mount --bind {work} {wd}; \
         exec {SSHD} -D -e -f {cfg}",
            name = node.name,
            root = q(dir.join("root")),
            work = q(dir.join("work")),
            wd = DEFAULT_WORK_DIR,
            cfg = q(dir.join("sshd_config")),
        ),
    };
    let log_path = dir.join("node.log");
    let log = fs::File::create(&log_path)
        .map_err(|e| setup_err(format!("creating {}", log_path.display()), e))?;
    let log2 = log
        .try_clone()
        .map_err(|e| setup_err(format!("opening {}", log_path.display()), e))?;
    let child = Command::new("ip")
        .args(["netns", "exec", &node.netns])
        .args([
            "unshare",
            "--pid",
            "--fork",
            "--mount-proc",
            "--uts",
            "--kill-child",
        ])
        .args(["sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        // Its own process group: a Ctrl-C meant for the CLI must not take
        // the cluster down with it.
        .process_group(0)
        .spawn()
        .map_err(|e| setup_err(format!("starting node {}", node.name), e))?;
    let pid = child.id();
    let mut kids = children();
    // Reap earlier children that have exited meanwhile.
    kids.retain_mut(|c| matches!(c.try_wait(), Ok(None)));
    kids.push(child);
    Ok(pid)
}

pub(super) fn wait_for_sshd(paths: &Paths, state: &LocalState) -> Result<(), ClusterError> {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut waiting: BTreeSet<usize> = (0..state.nodes.len()).collect();
    while !waiting.is_empty() {
        waiting.retain(|&i| !ssh_listening(state.nodes[i].ip));
        for &i in &waiting {
            let n = &state.nodes[i];
            let alive = n.pid.is_some_and(|p| node_process_alive(paths, &n.name, p));
            if !alive {
                let log =
                    fs::read_to_string(paths.node(&n.name).join("node.log")).unwrap_or_default();
                return Err(setup_err(
                    format!("starting node {}", n.name),
                    format!(
                        "it exited; its log says: {}",
                        crate::control::tail(log.trim(), 1500)
                    ),
                ));
            }
        }
        if waiting.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            let names: Vec<_> = waiting
                .iter()
                .map(|&i| state.nodes[i].name.as_str())
                .collect();
            return Err(setup_err(
                "waiting for sshd",
                format!(
                    "nodes {} not listening on port 22 after 15 s",
                    names.join(", ")
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}
