//! The local cluster after things went wrong: a node died (`up` rebuilds),
//! the controller crashed before recording pids (`down` still removes
//! everything), the state directory was lost (`up` refuses to clobber the
//! leftovers, `down --name-prefix` sweeps them). Needs root (installed when
//! missing); ignored unless built by root.
#![cfg(feature = "controller")]

mod cluster_support;

use std::time::{Duration, Instant};

use cluster_support::{leftovers, Teardown};
use faultline::cluster::local;

#[test]
#[cfg_attr(not(faultline_root), ignore = "needs root: builds a local cluster")]
fn up_repairs_and_down_cleans_after_crashes() {
    cluster_support::ensure(&[]);
    let guard = Teardown::new("fltd", "10.78.24.0/24", 2);
    let state_dir = guard.state_dir();
    let cluster = local::up(&guard.spec).expect("up");
    drop(cluster);

    // A node dies: status says so, and up rebuilds a healthy cluster.
    let before = local::status(&state_dir).unwrap().unwrap();
    let pid = before.nodes[0].pid.unwrap();
    // SAFETY: kill(2) on our own test node's outer unshare.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let t = Instant::now();
    while local::status(&state_dir).unwrap().unwrap().healthy() {
        assert!(t.elapsed() < Duration::from_secs(5), "node still up");
        std::thread::sleep(Duration::from_millis(20));
    }
    let rebuilt = local::up(&guard.spec).expect("rebuild");
    let after = local::status(&state_dir).unwrap().unwrap();
    assert!(after.healthy());
    assert_ne!(after.nodes[0].pid, Some(pid));
    assert_eq!(rebuilt.run_all("hostname").unwrap(), vec!["n1\n", "n2\n"]);
    drop(rebuilt);

    // The controller crashed before recording the pids: down still kills
    // the nodes (found through their namespaces) and removes everything.
    let path = state_dir.join("cluster.json");
    let mut state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for n in state["nodes"].as_array_mut().unwrap() {
        n["pid"] = serde_json::Value::Null;
    }
    std::fs::write(&path, state.to_string()).unwrap();
    local::down(&state_dir, None).expect("down without pids");
    let left = leftovers("fltd", &state_dir, "10.78.24.");
    assert!(left.is_empty(), "left behind: {left:#?}");

    // The state directory is lost: up refuses to clobber what it cannot
    // account for, and down with the prefix sweeps it.
    drop(local::up(&guard.spec).expect("up again"));
    std::fs::remove_dir_all(&state_dir).unwrap();
    let err = local::up(&guard.spec).unwrap_err().to_string();
    assert!(
        err.contains("fltd-n1") && err.contains("--name-prefix"),
        "{err}"
    );
    let report = local::down(&state_dir, Some("fltd")).expect("sweep");
    assert_eq!(report.namespaces.len(), 2, "{report:?}");
    let left = leftovers("fltd", &state_dir, "10.78.24.");
    assert!(left.is_empty(), "left behind: {left:#?}");
}
