//! File corruption and rollback on a 3-node local Redis cluster, seen from
//! outside the checker: the bytes a `corrupt-file` names differ on disk by
//! exactly its masks, a truncated file is shorter by what it says; after
//! `snapshot-data` and `rollback` of the master, a key written after the
//! snapshot is gone and one written before is there. Then a controller
//! that died halfway through a rollback (the db killed, the data folder
//! moved aside) is healed by `faultline heal` from a fresh process: the
//! folder comes back, the snapshot goes, Redis runs again, and the heal
//! says the corruption could not be undone. Needs root (ignored otherwise).
#![cfg(all(feature = "controller", feature = "cli"))]

mod cluster_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster_support::Teardown;
use faultline::cluster::{local, Node};
use faultline::db::{self, Db};
use faultline::nemesis::{Corruption, Fault, Nemeses, Nemesis, NemesisOptions, Targets};
use faultline::system::redis::{Redis, RedisOptions};
use serde_json::Value;

fn conn(node: &Node) -> Option<redis::Connection> {
    let c = redis::Client::open(format!("redis://{}:6379/", node.host())).ok()?;
    let conn = c.get_connection_with_timeout(Duration::from_secs(1)).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    Some(conn)
}

fn get(node: &Node, key: &str) -> Option<Option<String>> {
    redis::cmd("GET").arg(key).query(&mut conn(node)?).ok()
}

fn set(node: &Node, key: &str, value: &str) {
    let _: () = redis::cmd("SET")
        .arg(key)
        .arg(value)
        .query(&mut conn(node).expect("connect"))
        .expect("SET");
}

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

/// Where the file a node names (`/opt/faultline/...`) lives on this machine.
fn on_host(state: &Path, node: &str, path: &str) -> PathBuf {
    let rel = path
        .strip_prefix("/opt/faultline/")
        .expect("under the work dir");
    state.join("nodes").join(node).join("work").join(rel)
}

/// Every file under `dir`, by path, with its bytes.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).expect("read dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else if let Ok(b) = std::fs::read(&p) {
                out.insert(p, b);
            }
        }
    }
    out
}

#[test]
#[cfg_attr(
    not(faultline_root),
    ignore = "needs root: builds a local cluster and runs Redis"
)]
fn corruption_and_rollback_take_effect_and_heal_repairs_a_half_rollback() {
    cluster_support::ensure(&cluster_support::db("redis"));
    let guard = Teardown::new("fldk", "10.78.153.0/24", 3);
    let state = guard.state_dir();
    let cluster = local::up(&guard.spec).expect("cluster up");
    let nodes = cluster.nodes().to_vec();
    let (n1, n3) = (&nodes[0], &nodes[2]);
    let r = Arc::new(Redis::new(RedisOptions::default(), &nodes));
    db::setup(r.as_ref(), &cluster, Duration::from_secs(60)).expect("redis setup");
    let nem = Nemeses::new(
        cluster.clone(),
        Some(r.clone()),
        NemesisOptions {
            seed: 5,
            record: Some(state.join("nemesis.json")),
            ..NemesisOptions::default()
        },
    );
    set(n1, "k1", "before");
    // appendfsync everysec: let the AOF take it.
    std::thread::sleep(Duration::from_millis(1200));

    // --- Bit flips on n3: exactly the named bytes changed, by their mask. ---
    let data3 = state.join("nodes/n3/work/redis/data");
    let before = files(&data3);
    let done = nem
        .invoke(&Fault::CorruptFile {
            targets: Targets::Nodes(vec!["n3".into()]),
            corruption: Corruption::Bitflip {
                chunks: 3,
                chunk_bytes: 8,
            },
        })
        .expect("corrupt-file");
    assert_eq!(done["undoable"], false, "{done}");
    let c = &done["corrupted"][0];
    assert_eq!(c["node"], "n3", "{done}");
    let file = on_host(&state, "n3", c["file"].as_str().expect("file"));
    let old = &before[&file];
    let new = std::fs::read(&file).expect("the corrupted file");
    let runs = c["flipped"].as_array().expect("runs");
    assert_eq!(runs.len(), 3, "{done}");
    let mut expected = old.clone();
    for run in runs {
        let (off, len, mask) = (
            run["offset"].as_u64().expect("offset") as usize,
            run["bytes"].as_u64().expect("bytes") as usize,
            run["mask"].as_u64().expect("mask") as u8,
        );
        assert!(mask != 0 && len > 0, "{run}");
        for b in &mut expected[off..off + len] {
            *b ^= mask;
        }
    }
    assert_ne!(&new[..old.len()], &old[..], "the bytes differ");
    assert_eq!(&new[..old.len()], &expected[..], "by exactly the masks");

    // --- Truncation on n2: shorter by what the record says. ---
    let done = nem
        .invoke(&Fault::CorruptFile {
            targets: Targets::Nodes(vec!["n2".into()]),
            corruption: Corruption::Truncate { drop_bytes: 16 },
        })
        .expect("truncate");
    let c = &done["corrupted"][0];
    let (b, a) = (
        c["size-before"].as_u64().expect("size-before"),
        c["size-after"].as_u64().expect("size-after"),
    );
    assert_eq!(b - a, b.min(16), "{done}");
    let file = on_host(&state, "n2", c["file"].as_str().expect("file"));
    assert_eq!(std::fs::metadata(&file).expect("stat").len(), a, "{done}");

    // --- Rollback of the master: what it took after the snapshot is gone. ---
    let done = nem
        .invoke(&Fault::SnapshotData(Targets::Nodes(vec!["n1".into()])))
        .expect("snapshot-data");
    assert_eq!(done["snapshot"], serde_json::json!(["n1"]), "{done}");
    assert!(done["bytes"]["n1"].as_u64().expect("bytes") > 0, "{done}");
    set(n1, "k2", "after");
    std::thread::sleep(Duration::from_millis(1200));
    let done = nem.invoke(&Fault::Rollback).expect("rollback");
    assert_eq!(done["rolled-back"], serde_json::json!(["n1"]), "{done}");
    let k2 = wait_for(
        "n1 answers after the rollback",
        Duration::from_secs(20),
        || get(n1, "k2"),
    );
    assert_eq!(k2, None, "the key written after the snapshot is gone");
    assert_eq!(get(n1, "k1").flatten().as_deref(), Some("before"));
    assert!(!state.join("nodes/n1/work/nemesis/snapshot").exists());

    // --- A controller that died halfway through a rollback of n1 (whose
    // data is whole: n2's and n3's were damaged above, and Redis rightly
    // refuses to start on a damaged AOF): the db
    // killed, its folder moved aside, the snapshot left. ---
    nem.invoke(&Fault::SnapshotData(Targets::Nodes(vec!["n1".into()])))
        .expect("snapshot n1");
    r.kill(n1).expect("kill n1");
    let data1 = state.join("nodes/n1/work/redis/data");
    std::fs::rename(&data1, data1.with_extension("faultline-old")).expect("move aside");
    drop(nem);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["heal", "--db", "redis", "--state-dir"])
        .arg(&state)
        .output()
        .expect("run faultline heal");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "faultline heal failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let healed: Value = stdout
        .lines()
        .find_map(|l| l.strip_prefix("healed: "))
        .and_then(|j| serde_json::from_str(j).ok())
        .expect("heal's summary");
    let disk = &healed["disk"];
    assert_eq!(
        disk["rollbacks-repaired"],
        serde_json::json!(["n1"]),
        "{healed}"
    );
    assert_eq!(
        disk["snapshots-removed"],
        serde_json::json!(["n1"]),
        "{healed}"
    );
    assert_eq!(
        disk["corrupted-not-undone"],
        serde_json::json!(["n2", "n3"]),
        "{healed}"
    );
    assert!(data1.is_dir(), "n1's data folder is back");
    assert!(!state.join("nodes/n1/work/nemesis/snapshot").exists());
    let t = Instant::now();
    while !r.is_running(n1).expect("is_running") {
        let log = std::fs::read_dir(state.join("nodes/n1/work/redis"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
            .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
            .collect::<String>();
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "heal restarts n1; heal said: {stdout}{}\nn1's redis log:\n{log}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    wait_for("n1 answers after heal", Duration::from_secs(20), || {
        get(n1, "k1")
    });
    let _ = n3;
}
