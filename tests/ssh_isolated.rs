//! The SSH logins of real hosts, against isolated local nodes (`faultline
//! cluster up --isolated`) driven through `--nodes`: a password from
//! `--ssh-password-file` (refused when others may read the file; never
//! written anywhere), a node reached only through a jump host
//! (`--ssh-proxy-jump`), and a user whose sudo wants a password, refused
//! before anything runs with the fix.
//!
//! The nodes are configured for it over SSH, as an admin would a machine
//! of theirs: a user `pwuser` with a password that sshd accepts (a `Match
//! User` block; everyone else still logs in by key only, root not at all)
//! and passwordless sudo, and a user `sudopw` whose sudo asks for a
//! password. Needs root; ignored unless built by root.
#![cfg(all(feature = "controller", feature = "cli"))]

mod cluster_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use cluster_support::{faultline, isolated, leftovers, CliCluster};
use faultline::cluster::{Cluster, HostsSpec};
use faultline::control::{Remote, SshOptions, SshRemote};

const PREFIX: &str = "flss";
const SUBNET: &str = "10.78.212.0/24";
const SUBNET_PREFIX: &str = "10.78.212.";
/// The controller's address on the bridge, as the nodes see it.
const BRIDGE: &str = "10.78.212.1";
/// The password of `pwuser` on the nodes: must never show in a run's files.
const PASSWORD: &str = "pw-Zq81-faultline-test";

/// Runs faultline like [`faultline`], with `HOME` set to `home`, so no key
/// of this machine's user is offered: only what the flags name.
fn faultline_home(state: &Path, home: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(args)
        .env("FAULTLINE_STATE_DIR", state)
        .env("HOME", home)
        .env_remove("FAULTLINE_SSH_PASSWORD")
        .output()
        .expect("run faultline");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs a command inside a node's network namespace, from the controller.
fn in_netns(node: &str, command: &str) {
    let ns = format!("{PREFIX}-{node}");
    let out = Command::new("ip")
        .args(["netns", "exec", &ns, "sh", "-c", command])
        .output()
        .expect("ip netns exec");
    assert!(
        out.status.success(),
        "{ns}: {command}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_symlink() {
                continue;
            }
            if p.is_dir() {
                todo.push(p);
            } else {
                found.push(p);
            }
        }
    }
    found
}

/// Reads a run's folder (`<results>/<test>/latest`): its test.json and
/// results.json.
fn run_files(results: &Path, test: &str) -> (PathBuf, serde_json::Value, serde_json::Value) {
    let dir = results.join(test).join("latest");
    let read = |f: &str| -> serde_json::Value {
        let text = std::fs::read_to_string(dir.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{f}: {e}"))
    };
    let test_json = read("test.json");
    let results_json = read("results.json");
    (dir, test_json, results_json)
}

#[test]
#[cfg_attr(
    not(faultline_root),
    ignore = "needs root: builds isolated local nodes (debootstrap) and runs etcd"
)]
fn passwords_jump_hosts_and_sudo_against_isolated_nodes() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let _down = CliCluster::new(&state, PREFIX);
    let (access, _) = isolated::up(&state, PREFIX, SUBNET, 3, "etcd-server");
    assert_eq!(access.addresses.len(), 3);
    let addresses = access.addresses.clone();
    let user = access.user.clone();
    let key = access.key.clone();
    let known = access.known_hosts.clone();
    let opts = |user: &str| access.ssh_options(user, true);

    // The nodes, set up as an admin would: `pwuser` logs in with a
    // password (sshd allows passwords for it alone) and has passwordless
    // sudo; `sudopw` logs in with the key, but sudo asks it for a password.
    let admin = Cluster::hosts(&HostsSpec::new(addresses.clone(), opts(&user)))
        .expect("the nodes as real hosts");
    let setup = format!(
        "set -e; \
         useradd --create-home --shell /bin/bash pwuser; \
         echo 'pwuser:{PASSWORD}' | chpasswd; \
         echo 'pwuser ALL=(ALL:ALL) NOPASSWD: ALL' > /etc/sudoers.d/pwuser; \
         useradd --create-home --shell /bin/bash sudopw; \
         echo 'sudopw:another-password' | chpasswd; \
         echo 'sudopw ALL=(ALL:ALL) ALL' > /etc/sudoers.d/sudopw; \
         chmod 440 /etc/sudoers.d/pwuser /etc/sudoers.d/sudopw; \
         C=/etc/ssh/faultline_sshd_config; \
         sed -i 's/^AllowUsers .*/AllowUsers {user} pwuser sudopw/' $C; \
         printf 'Match User pwuser\\n  PasswordAuthentication yes\\n' >> $C; \
         /usr/sbin/sshd -t -f $C; \
         grep -q '^PermitRootLogin no' $C; \
         kill -HUP 1"
    );
    admin.run_all(&setup).expect("users and sshd set up");
    drop(admin);
    // sshd (each node's pid 1) re-executes itself on SIGHUP: wait until
    // every node answers again.
    let deadline = Instant::now() + Duration::from_secs(20);
    for addr in &addresses {
        loop {
            let remote = SshRemote::new(addr, addr, opts(&user));
            match remote.connect() {
                Ok(()) => break,
                Err(e) => {
                    assert!(Instant::now() < deadline, "{addr} after sshd's reload: {e}");
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    }

    let nodes = addresses.join(",");
    let known_s = known.display().to_string();
    let key_s = key.display().to_string();
    let results = tmp.path().join("results");
    let results_s = results.display().to_string();

    // 1. Password authentication from a file.
    let pw_file = tmp.path().join("password");
    let pw_s = pw_file.display().to_string();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(&pw_file, format!("{PASSWORD}\n")).unwrap();
        std::fs::set_permissions(&pw_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let with_password = |extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        for a in [
            "--nodes",
            &nodes,
            "--ssh-user",
            "pwuser",
            "--ssh-password-file",
            &pw_s,
            "--known-hosts",
            &known_s,
        ] {
            args.push(a.to_string());
        }
        args
    };
    let heal_pw = with_password(&["heal"]);
    let heal_pw: Vec<&str> = heal_pw.iter().map(String::as_str).collect();
    // Others may read it: refused, with the fix, before any login.
    let (code, out, err) = faultline_home(&state, &home, &heal_pw);
    assert_eq!(code, 3, "{out}{err}");
    assert!(err.contains(&format!("chmod 600 {pw_s}")), "{err}");
    assert!(
        !err.contains(PASSWORD) && !out.contains(PASSWORD),
        "{out}{err}"
    );
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&pw_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    // A wrong password is refused, naming the user, and not shown.
    let wrong = tmp.path().join("wrong-password");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(&wrong, "not-the-password-x9\n").unwrap();
        std::fs::set_permissions(&wrong, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let wrong_s = wrong.display().to_string();
    let (code, out, err) = faultline_home(
        &state,
        &home,
        &[
            "heal",
            "--nodes",
            &nodes,
            "--ssh-user",
            "pwuser",
            "--ssh-password-file",
            &wrong_s,
            "--known-hosts",
            &known_s,
        ],
    );
    assert_eq!(code, 3, "{out}{err}");
    assert!(
        err.contains("authentication failed")
            && err.contains("as pwuser")
            && err.contains("password"),
        "{err}"
    );
    assert!(!err.contains("not-the-password-x9"), "{err}");
    // The right one: heal and a whole run log in with it alone (HOME has
    // no keys, and no --ssh-key is given).
    let (code, out, err) = faultline_home(&state, &home, &heal_pw);
    assert_eq!(code, 0, "{out}{err}");
    let run_pw = with_password(&[
        "run",
        "--db",
        "etcd",
        "--workload",
        "register",
        "--nemesis",
        "kill",
        "--time-limit",
        "10",
        "--results",
        &results_s,
    ]);
    let run_pw: Vec<&str> = run_pw.iter().map(String::as_str).collect();
    let (code, out, err) = faultline_home(&state, &home, &run_pw);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("linearizable: valid"), "{out}");
    let (dir, test_json, results_json) = run_files(&results, "etcd-register-kill");
    assert_eq!(results_json["valid"], "valid", "{results_json}");
    let ssh = &test_json["ssh"];
    assert_eq!(ssh["user"], "pwuser", "{ssh}");
    assert_eq!(ssh["auth"], serde_json::json!(["password"]), "{ssh}");
    assert_eq!(ssh["port"], 22, "{ssh}");
    assert_eq!(ssh["sudo"], true, "{ssh}");
    assert_eq!(ssh["proxy_jump"], serde_json::Value::Null, "{ssh}");
    let dir = std::fs::canonicalize(dir).unwrap();
    let files = files_under(&dir);
    assert!(files.len() > 3, "{files:?}");
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(PASSWORD),
            "the password is written in {}",
            f.display()
        );
    }

    // 2. Sudo that wants a password: refused at the first login, before a
    // run starts, naming each host, the user and the fix.
    let results_sudo = tmp.path().join("results-sudo");
    let results_sudo_s = results_sudo.display().to_string();
    let (code, out, err) = faultline_home(
        &state,
        &home,
        &[
            "run",
            "--db",
            "etcd",
            "--workload",
            "register",
            "--nemesis",
            "kill",
            "--time-limit",
            "10",
            "--nodes",
            &nodes,
            "--ssh-user",
            "sudopw",
            "--ssh-key",
            &key_s,
            "--known-hosts",
            &known_s,
            "--results",
            &results_sudo_s,
        ],
    );
    assert_eq!(code, 3, "{out}{err}");
    for addr in &addresses {
        assert!(
            err.contains(&format!(
                "add `sudopw ALL=(ALL) NOPASSWD: ALL` to /etc/sudoers.d/sudopw on {addr}"
            )),
            "{err}"
        );
    }
    assert!(err.contains("a password is required"), "{err}");
    assert!(!results_sudo.exists(), "a run was started: {err}");

    // 3. A jump host. n3 no longer answers SSH from the controller (its
    // netns drops port 22 from the bridge's address), but does from n1.
    in_netns(
        "n3",
        &format!("iptables -w -I INPUT -p tcp --dport 22 -s {BRIDGE} -j DROP"),
    );
    let direct = SshRemote::new(
        "n3",
        &addresses[2],
        SshOptions {
            connect_timeout: Duration::from_secs(2),
            ..opts(&user)
        },
    );
    let e = direct
        .connect()
        .expect_err("n3 is cut off from the controller");
    assert!(e.is_unreachable() || e.is_timeout(), "{e}");
    let jump = format!("{user}@{}", addresses[0]);
    let (code, out, err) = faultline_home(
        &state,
        &home,
        &[
            "heal",
            "--nodes",
            &nodes,
            "--ssh-user",
            &user,
            "--ssh-key",
            &key_s,
            "--known-hosts",
            &known_s,
            "--connect-timeout",
            "3",
        ],
    );
    assert_eq!(
        code, 3,
        "without the jump host n3 is unreachable: {out}{err}"
    );
    assert!(err.contains(&addresses[2]), "{err}");
    let run_jump = [
        "run",
        "--db",
        "etcd",
        "--workload",
        "register",
        "--nemesis",
        "kill",
        "--time-limit",
        "10",
        "--nodes",
        &nodes,
        "--ssh-user",
        &user,
        "--ssh-key",
        &key_s,
        "--known-hosts",
        &known_s,
        "--ssh-proxy-jump",
        &jump,
        "--results",
        &results_s,
    ];
    let (code, out, err) = faultline_home(&state, &home, &run_jump);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("linearizable: valid"), "{out}");
    let (dir, test_json, results_json) = run_files(&results, "etcd-register-kill");
    assert_eq!(results_json["valid"], "valid", "{results_json}");
    assert_eq!(
        test_json["ssh"]["proxy_jump"],
        format!("{jump}:22"),
        "{test_json}"
    );
    assert_eq!(test_json["ssh"]["auth"], serde_json::json!(["key"]));
    // n3 was set up, run and faulted, and its log collected, all through n1.
    assert!(
        dir.join("nodes")
            .join(&addresses[2])
            .join("etcd.log")
            .is_file(),
        "no etcd.log collected from n3"
    );

    // A partition would cut the other nodes off from a jump host that is
    // one of them, and the controller with it: refused before anything.
    let results_part = tmp.path().join("results-partition");
    let results_part_s = results_part.display().to_string();
    let partition: Vec<&str> = run_jump
        .iter()
        .map(|&arg| match arg {
            "kill" => "partition",
            r if r == results_s => &results_part_s,
            other => other,
        })
        .collect();
    let (code, out, err) = faultline_home(&state, &home, &partition);
    assert_eq!(code, 3, "{out}{err}");
    assert!(
        err.contains(&format!("the jump host {jump}:22 is one of --nodes")),
        "{err}"
    );
    assert!(!results_part.exists(), "a run was started: {err}");

    // A jump host that does not answer: a clear error naming it, at once.
    let dead = format!("{user}@{}:2222", addresses[0]);
    let t0 = Instant::now();
    let (code, out, err) = faultline_home(
        &state,
        &home,
        &[
            "heal",
            "--nodes",
            &nodes,
            "--ssh-user",
            &user,
            "--ssh-key",
            &key_s,
            "--known-hosts",
            &known_s,
            "--ssh-proxy-jump",
            &dead,
        ],
    );
    assert_eq!(code, 3, "{out}{err}");
    assert!(
        err.contains(&format!("jump host {dead}: ")) && err.contains("cannot connect"),
        "{err}"
    );
    assert!(t0.elapsed() < Duration::from_secs(15), "{:?}", t0.elapsed());

    // A jump host lost under a kept session: the next command fails
    // within its timeout, naming the jump host; no hang.
    let through = SshRemote::new(
        "n3",
        &addresses[2],
        SshOptions {
            proxy_jump: Some(jump.parse().unwrap()),
            ..opts(&user)
        },
    );
    assert_eq!(through.run("hostname").unwrap().trim(), "n3");
    in_netns(
        "n1",
        &format!(
            "iptables -w -I INPUT -p tcp --dport 22 -s {BRIDGE} -j REJECT --reject-with tcp-reset"
        ),
    );
    let t0 = Instant::now();
    let e = through
        .exec_timeout("hostname", Duration::from_secs(10))
        .expect_err("the jump host is gone");
    assert!(t0.elapsed() < Duration::from_secs(12), "{:?}", t0.elapsed());
    assert!(
        e.to_string().contains(&format!("jump host {jump}:22")),
        "{e}"
    );
    drop(through);
    in_netns(
        "n1",
        &format!(
            "iptables -w -D INPUT -p tcp --dport 22 -s {BRIDGE} -j REJECT --reject-with tcp-reset"
        ),
    );
    in_netns(
        "n3",
        &format!("iptables -w -D INPUT -p tcp --dport 22 -s {BRIDGE} -j DROP"),
    );

    let (code, out, err) = faultline(&state, &["cluster", "down"]);
    assert_eq!(code, 0, "{out}{err}");
    let left = leftovers(PREFIX, &state, SUBNET_PREFIX);
    assert!(left.is_empty(), "left behind: {left:?}");
}
