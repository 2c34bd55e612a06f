//! lose-unfsynced, seen from outside the db and the checker. First the
//! filesystem alone, on this machine: a file written through the mount
//! and not fsynced is in memory only (the backing directory has it
//! empty), a synced prefix survives a loss while the rest goes, and
//! SIGTERM writes what is left back and unmounts. Then on a 3-node local
//! Redis cluster: the data folders mounted over themselves, a write on a
//! node lost with the kill of `lose-unfsynced` (the history-style answer
//! counts it), Redis restarted on what was durable; a `faultline run
//! --nemesis lose-unfsynced` records bytes lost, is killed with SIGKILL,
//! and `faultline heal` from a fresh process leaves no mount, no lazyfs
//! program and Redis running everywhere. Needs root and /dev/fuse
//! (ignored otherwise).
#![cfg(all(feature = "controller", feature = "cli", feature = "lazyfs"))]

mod cluster_support;

use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster_support::{faultline, Teardown};
use faultline::cluster::{local, Node};
use faultline::db::{self, Db};
use faultline::nemesis::lazyfs::{self, FS_NAME};
use faultline::nemesis::{Fault, Nemeses, Nemesis, NemesisOptions, Targets};
use faultline::system::redis::{Redis, RedisOptions};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_faultline");

fn wait_for<T>(what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let t = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(t.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The mount points of lazyfs in a mountinfo text: the source, after
/// ` - ` and the type, is its name.
fn lazyfs_mounts(mountinfo: &str) -> Vec<String> {
    mountinfo
        .lines()
        .filter(|l| {
            l.split_once(" - ")
                .and_then(|(_, rest)| rest.split(' ').nth(1))
                == Some(FS_NAME)
        })
        .filter_map(|l| l.split(' ').nth(4).map(String::from))
        .collect()
}

/// The mount points of lazyfs in this process's mount namespace.
fn host_mounts() -> Vec<String> {
    lazyfs_mounts(&std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default())
}

/// The mount points of lazyfs on `node`, as its mountinfo lists them.
fn node_mounts(node: &Node) -> Vec<String> {
    lazyfs_mounts(&node.run("cat /proc/self/mountinfo").expect("mountinfo"))
}

fn send(control: &Path, cmd: &str) -> Value {
    let out = Command::new(BIN)
        .args(["lazyfs", "--control"])
        .arg(control)
        .args(["--send", cmd])
        .output()
        .expect("faultline lazyfs --send");
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("a JSON answer")
}

struct Unmount(PathBuf, Child);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = self.1.kill();
        let _ = self.1.wait();
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
#[cfg_attr(not(faultline_root), ignore = "needs root: mounts a FUSE filesystem")]
fn unsynced_writes_live_in_memory_until_fsync_and_a_loss_drops_them() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let (backing, mount) = (tmp.path().join("backing"), tmp.path().join("mount"));
    std::fs::create_dir_all(&backing).expect("mkdir");
    std::fs::create_dir_all(&mount).expect("mkdir");
    std::fs::write(backing.join("old"), b"durable").expect("write");
    let control = tmp.path().join("ctl.sock");
    let child = Command::new(BIN)
        .args(["lazyfs", "--backing"])
        .arg(&backing)
        .arg("--mount")
        .arg(&mount)
        .arg("--control")
        .arg(&control)
        .stdin(Stdio::null())
        .spawn()
        .expect("start faultline lazyfs");
    let mut guard = Unmount(mount.clone(), child);
    let canonical = mount.canonicalize().expect("canonical");
    wait_for("the mount", Duration::from_secs(10), || {
        (host_mounts().contains(&canonical.to_string_lossy().into_owned()) && control.exists())
            .then_some(())
    });

    // What was there is seen through the mount.
    assert_eq!(std::fs::read(mount.join("old")).expect("read"), b"durable");

    // Written, not synced: readable through the mount, the file exists
    // below (creation is durable) but is empty.
    std::fs::write(mount.join("unsynced"), b"hello there").expect("write");
    assert_eq!(
        std::fs::read(mount.join("unsynced")).expect("read"),
        b"hello there"
    );
    assert_eq!(std::fs::read(backing.join("unsynced")).expect("read"), b"");

    // A synced prefix and an unsynced tail.
    let mut f = std::fs::File::create(mount.join("log")).expect("create");
    f.write_all(&[7u8; 6000]).expect("write");
    f.sync_data().expect("fdatasync");
    f.write_all(b"tail").expect("write");
    drop(f);
    assert_eq!(
        std::fs::metadata(backing.join("log")).expect("stat").len(),
        6000
    );
    // An unsynced overwrite of the durable file.
    std::fs::OpenOptions::new()
        .write(true)
        .open(mount.join("old"))
        .expect("open")
        .write_all_at(b"DUR", 0)
        .expect("overwrite");
    let stats = send(&control, "stats");
    assert_eq!(stats["dirty_files"], 3, "{stats}");

    let lost = send(&control, "lose-unfsynced");
    assert_eq!(lost["files"], 3, "{lost}");
    // Whole dirty pages below each file's end: 11 + (6004 - 4096) + 7.
    assert_eq!(lost["bytes"], 11 + 1908 + 7, "{lost}");
    assert_eq!(std::fs::read(mount.join("unsynced")).expect("read"), b"");
    assert_eq!(
        std::fs::read(mount.join("log")).expect("read"),
        vec![7u8; 6000]
    );
    assert_eq!(std::fs::read(mount.join("old")).expect("read"), b"durable");

    // SIGTERM: what is unsynced now is written back, then unmounted.
    std::fs::write(mount.join("last"), b"kept at unmount").expect("write");
    assert_eq!(std::fs::read(backing.join("last")).expect("read"), b"");
    // SAFETY: kill with a valid pid and signal has no memory effects.
    unsafe { libc::kill(guard.1.id() as i32, libc::SIGTERM) };
    let status = wait_for("the program to end", Duration::from_secs(10), || {
        guard.1.try_wait().expect("try_wait")
    });
    assert!(status.success(), "{status}");
    assert!(host_mounts().is_empty(), "{:?}", host_mounts());
    assert_eq!(
        std::fs::read(backing.join("last")).expect("read"),
        b"kept at unmount"
    );
    assert_eq!(std::fs::read(mount.join("last")).ok(), None, "unmounted");
}

/// The history's nemesis completions of `f`, as values.
fn completions(history: &Path, f: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(history).unwrap_or_default();
    let ops: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|o| o["process"] == "nemesis" && o["f"] == f)
        .collect();
    ops.chunks(2)
        .filter(|c| c.len() == 2)
        .map(|c| c[1].clone())
        .collect()
}

fn redis_answers(node: &Node) -> bool {
    redis::Client::open(format!("redis://{}:6379/", node.host()))
        .ok()
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(1)).ok())
        .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c).ok())
        .is_some()
}

#[test]
#[cfg_attr(
    not(faultline_root),
    ignore = "needs root: builds a local cluster and runs Redis"
)]
fn lose_unfsynced_on_redis_takes_effect_and_heal_after_sigkill_unmounts() {
    cluster_support::ensure(&cluster_support::db("redis"));
    let guard = Teardown::new("fllf", "10.78.161.0/24", 3);
    let state = guard.state_dir();
    let cluster = local::up(&guard.spec).expect("cluster up");
    let nodes = cluster.nodes().to_vec();
    let r: Arc<dyn Db> = Arc::new(Redis::new(RedisOptions::default(), &nodes));
    db::setup(r.as_ref(), &cluster, Duration::from_secs(60)).expect("redis setup");
    let record = state.join("nemesis.json");
    let armed = lazyfs::arm(
        &cluster,
        &r,
        &record,
        Some(PathBuf::from(BIN)),
        Duration::from_secs(60),
    )
    .expect("mount lazyfs");
    assert_eq!(
        armed["mounted"].as_array().map(Vec::len),
        Some(3),
        "{armed}"
    );
    for n in &nodes {
        assert_eq!(
            node_mounts(n),
            vec!["/opt/faultline/redis/data"],
            "{}",
            n.name()
        );
    }

    // A file written on n1 without fsync: the node reads it through the
    // mount; the folder below (this machine's view of n1's work dir) has
    // it empty.
    let n1 = &nodes[0];
    n1.run("printf 'not synced' > /opt/faultline/redis/data/probe")
        .expect("write on n1");
    assert_eq!(
        n1.run("cat /opt/faultline/redis/data/probe").expect("cat"),
        "not synced"
    );
    let below = state.join("nodes/n1/work/redis/data/probe");
    assert_eq!(std::fs::read(&below).expect("read below"), b"");

    let nem = Nemeses::new(
        cluster.clone(),
        Some(r.clone()),
        NemesisOptions {
            seed: 4,
            record: Some(record.clone()),
            helper: Some(PathBuf::from(BIN)),
        },
    );
    let done = nem
        .invoke(&Fault::LoseUnfsynced(Targets::Nodes(vec!["n1".into()])))
        .expect("lose-unfsynced");
    assert_eq!(done["killed"], serde_json::json!(["n1"]), "{done}");
    assert_eq!(done["lost"][0]["node"], "n1", "{done}");
    assert!(done["lost"][0]["bytes"].as_u64() >= Some(10), "{done}");
    assert!(!r.is_running(n1).expect("is_running"), "killed");
    assert_eq!(
        n1.run("cat /opt/faultline/redis/data/probe").expect("cat"),
        "",
        "the unsynced write is gone"
    );
    let done = nem.invoke(&Fault::RestartLost).expect("restart-lost");
    assert_eq!(done["restarted"], serde_json::json!(["n1"]), "{done}");
    wait_for("n1 answers again", Duration::from_secs(20), || {
        redis_answers(n1).then_some(())
    });
    // The program that ran the fault stops here: heal is a new process.
    nem.heal().expect("heal");
    drop(nem);
    for n in &nodes {
        assert!(
            node_mounts(n).is_empty(),
            "{}: {:?}",
            n.name(),
            node_mounts(n)
        );
    }

    // --- A run with --nemesis lose-unfsynced, killed with SIGKILL after a
    // loss took effect: heal from a fresh process unmounts. ---
    db::teardown(r.as_ref(), &cluster).expect("teardown");
    let results = state.join("results");
    let log = std::fs::File::create(state.join("run.log")).expect("run.log");
    let mut child: Child = Command::new(BIN)
        .args([
            "run",
            "--db",
            "redis",
            "--workload",
            "register",
            "--nemesis",
            "lose-unfsynced",
            "--nemesis-interval",
            "2",
            "--time-limit",
            "60",
            "--concurrency",
            "4",
            "--seed",
            "7",
            "--results",
        ])
        .arg(&results)
        .env("FAULTLINE_STATE_DIR", &state)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start faultline run");
    let history = results.join("latest/history.jsonl");
    let deadline = Instant::now() + Duration::from_secs(120);
    let lost = loop {
        let lost: Vec<Value> = completions(&history, "lose-unfsynced")
            .into_iter()
            .filter(|c| c["value"]["bytes"].as_u64() > Some(0))
            .collect();
        if !lost.is_empty() {
            break lost;
        }
        let ended = child.try_wait().expect("try_wait").is_some();
        if ended || Instant::now() > deadline {
            let _ = child.kill();
            let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
            panic!(
                "no loss of unsynced bytes recorded (run ended: {ended}); history:\n{}\nstderr:\n{}\nfaultline.log:\n{}",
                read(&history),
                read(&state.join("run.log")),
                read(&results.join("latest/faultline.log"))
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // SAFETY: kill with a valid pid and signal has no memory effects.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().expect("reap faultline run");
    assert!(lost[0].get("error").is_none(), "{}", lost[0]);
    assert!(
        !lost[0]["value"]["lost"][0]["node"].is_null(),
        "{}",
        lost[0]
    );
    let mounted: usize = nodes.iter().map(|n| node_mounts(n).len()).sum();
    assert_eq!(mounted, 3, "the dead controller left the mounts");

    let (code, out, err) = faultline(&state, &["heal"]);
    assert_eq!(code, 0, "{out}{err}");
    for n in &nodes {
        assert!(
            node_mounts(n).is_empty(),
            "{}: {:?}",
            n.name(),
            node_mounts(n)
        );
        assert_eq!(
            n.run("pgrep -f 'faultline[ ]lazyfs' || true")
                .expect("pgrep")
                .trim(),
            "",
            "{}: no lazyfs program left",
            n.name()
        );
        wait_for(
            &format!("{} runs Redis after heal", n.name()),
            Duration::from_secs(30),
            || redis_answers(n).then_some(()),
        );
    }
    let rec = std::fs::read_to_string(&record).unwrap_or_default();
    assert!(
        !rec.contains("\"lazyfs\"") && !rec.contains("\"lost\"") && !rec.contains("\"killed\""),
        "{rec}"
    );
    drop(guard);
}

/// A db with no data folder faultline knows (the in-memory system, a db
/// file) is refused before anything is built, with the reason and
/// what works instead, instead of a run whose set-up fails and ends
/// incomplete. Needs no root: nothing is touched.
#[test]
fn lose_unfsynced_on_a_db_without_a_data_folder_is_refused_before_the_run() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let state = tmp.path().join("state");
    let results = tmp.path().join("results");
    let results_arg = results.to_string_lossy().into_owned();
    let db_file = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/etcd-files/etcd.toml");
    let db_file = db_file.to_string_lossy().into_owned();
    for (db, workload, why) in [
        ("memory", "register", "faultline's own process"),
        (db_file.as_str(), "register", "knows no folder"),
    ] {
        let started = Instant::now();
        let (code, out, err) = faultline(
            &state,
            &[
                "run",
                "--db",
                db,
                "--workload",
                workload,
                "--nemesis",
                "kill,lose-unfsynced",
                "--time-limit",
                "5",
                "--results",
                &results_arg,
            ],
        );
        assert_eq!(code, 3, "{db}: {out}{err}");
        assert!(started.elapsed() < Duration::from_secs(5), "{db}: {err}");
        assert!(
            err.contains("--nemesis lose-unfsynced")
                && err.contains("data folder")
                && err.contains(why)
                && err.contains("use kill")
                && !err.contains("--nemesis kill"),
            "{db}: the reason and what works: {err}"
        );
        assert!(
            !state.exists() && !results.exists(),
            "{db}: something was built"
        );
    }
}
