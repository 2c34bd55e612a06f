//! A controller that injects one fault and holds it until it is killed:
//! what tests/nemesis_net.rs kills with SIGKILL to show that `faultline
//! heal`, a fresh process, undoes what a dead controller left behind.
//!
//! Usage: `hold_fault STATE_DIR FAULT_JSON FAULTLINE_BIN [DB]`, where
//! FAULT_JSON is `{"f": ..., "value": ...}` as the history records a
//! fault, FAULTLINE_BIN the `faultline` binary the nemeses run as their
//! packet program, and DB (a system's name, with its defaults) the
//! database the fault acts through, for faults that need one (membership
//! changes). Prints `INJECTED <what took effect>` once the fault holds,
//! then sleeps.

use faultline::cluster::Cluster;
use faultline::nemesis::{default_record_path, Fault, Nemeses, Nemesis, NemesisOptions};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    match hold() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hold_fault: {e}");
            ExitCode::FAILURE
        }
    }
}

fn hold() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (state, fault, bin, db) = match args.as_slice() {
        [state, fault, bin] => (state, fault, bin, None),
        [state, fault, bin, db] => (state, fault, bin, Some(db)),
        _ => return Err("usage: hold_fault STATE_DIR FAULT_JSON FAULTLINE_BIN [DB]".into()),
    };
    let spec: Value = serde_json::from_str(fault).map_err(|e| format!("FAULT_JSON: {e}"))?;
    let f = spec["f"].as_str().ok_or("FAULT_JSON has no \"f\"")?;
    let fault = Fault::from_op(f, &spec["value"]).map_err(|e| format!("FAULT_JSON: {e}"))?;
    let cluster =
        Cluster::local(Path::new(state)).map_err(|e| format!("attach to the cluster: {e}"))?;
    let record = default_record_path(&cluster);
    let db = match db {
        Some(name) => {
            let configured = faultline::system::with_defaults(name, None)
                .map_err(|e| format!("DB {name}: {e}"))?;
            let deployed = configured
                .deploy(cluster.nodes())
                .map_err(|e| format!("DB {name}: {e}"))?;
            Some(deployed.db())
        }
        None => None,
    };
    let nemeses = Nemeses::new(
        cluster,
        db,
        NemesisOptions {
            seed: 9,
            record,
            helper: Some(PathBuf::from(bin)),
        },
    );
    let done = nemeses.invoke(&fault).map_err(|e| format!("inject: {e}"))?;
    println!("INJECTED {done}");
    std::thread::sleep(Duration::from_secs(600));
    Ok(())
}
