//! The command line as a new user meets it: `--help` lists every db,
//! model and nemesis (from the registries and the definition folders, so
//! the lists cannot go stale), a negative duration gets its own message
//! (not "unexpected argument"), `db status` with nothing up says so and
//! exits 0, and output that is not a terminal carries no colour codes.
#![cfg(all(feature = "cli", feature = "controller"))]

use std::path::Path;
use std::process::Command;

/// Runs faultline with `args`; (exit code, stdout, stderr).
fn faultline(args: &[&str], state: &Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(args)
        .env("FAULTLINE_STATE_DIR", state)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The stems of the .toml files in the repository's folder `name`.
fn files(name: &str) -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(name);
    std::fs::read_dir(&dir)
        .expect("definitions folder")
        .flatten()
        .filter_map(|e| {
            let p = e.path();
            (p.extension()? == "toml").then(|| p.file_stem()?.to_str().map(String::from))?
        })
        .collect()
}

#[test]
fn help_lists_every_db_model_workload_and_nemesis() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (code, run_help, err) = faultline(&["run", "--help"], tmp.path());
    assert_eq!(code, 0, "{err}");
    for db in faultline::system::known().split(", ") {
        assert!(
            run_help.contains(db),
            "run --help lacks db {db}:\n{run_help}"
        );
    }
    for family in faultline::nemesis::Family::ALL {
        assert!(run_help.contains(family.name()), "{family}:\n{run_help}");
    }
    for n in files("nemeses") {
        assert!(
            run_help.contains(&n),
            "run --help lacks nemesis {n}:\n{run_help}"
        );
    }
    for w in files("workloads") {
        assert!(
            run_help.contains(&w),
            "run --help lacks workload {w}:\n{run_help}"
        );
    }
    let (code, check_help, err) = faultline(&["check", "--help"], tmp.path());
    assert_eq!(code, 0, "{err}");
    let mut models: Vec<&str> = faultline::model::MODELS.iter().map(|(n, _)| *n).collect();
    models.extend([
        "list-append",
        "rw-register",
        "bank",
        "counter",
        "unique-ids",
        "long-fork",
        "lock-set",
    ]);
    for m in models {
        assert!(
            check_help.contains(m),
            "check --help lacks model {m}:\n{check_help}"
        );
    }
    let (code, db_help, err) = faultline(&["db", "status", "--help"], tmp.path());
    assert_eq!(code, 0, "{err}");
    for db in faultline::system::known().split(", ") {
        assert!(
            db_help.contains(db),
            "db status --help lacks {db}:\n{db_help}"
        );
    }
}

#[test]
fn a_negative_duration_is_refused_with_its_reason() {
    let tmp = tempfile::tempdir().expect("tmp");
    for args in [
        &["run", "--time-limit", "-5"][..],
        &["check", "--time-limit", "-5", "x.jsonl"][..],
        &["run", "--nemesis-interval", "-1"][..],
    ] {
        let (code, out, err) = faultline(args, tmp.path());
        assert_eq!(code, 3, "{args:?}: {out}{err}");
        assert!(
            err.contains("must be a positive number of seconds, got -"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("unexpected argument"), "{args:?}: {err}");
    }
    let (code, _, err) = faultline(&["run", "--rate", "-3"], tmp.path());
    assert_eq!(code, 3);
    assert!(
        err.contains("must be a positive number of operations per second, got -3"),
        "{err}"
    );
}

#[test]
fn db_status_with_nothing_up_says_so_and_exits_0() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (code, out, err) = faultline(&["db", "status"], &tmp.path().join("state"));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("no local cluster is up"), "{out}");
    assert!(out.contains("nothing is running"), "{out}");
}

#[test]
fn output_to_a_pipe_has_no_colour_codes() {
    let tmp = tempfile::tempdir().expect("tmp");
    let h = tmp.path().join("h.jsonl");
    std::fs::write(
        &h,
        "{\"process\":0,\"type\":\"invoke\",\"f\":\"write\",\"value\":1}\n\
         {\"process\":0,\"type\":\"ok\",\"f\":\"write\",\"value\":1}\n\
         {\"process\":1,\"type\":\"invoke\",\"f\":\"read\",\"value\":null}\n\
         {\"process\":1,\"type\":\"ok\",\"f\":\"read\",\"value\":2}\n",
    )
    .expect("history");
    let h = h.to_str().expect("utf-8 path");
    for args in [
        &["-vvv", "check", h][..],
        &["run", "--help"][..],
        &["run", "--time-limit", "-5"][..],
        &["check", "--model", "nope", h][..],
    ] {
        let (_, out, err) = faultline(args, tmp.path());
        assert!(
            !out.is_empty() || !err.is_empty(),
            "{args:?} printed nothing"
        );
        assert!(!out.contains('\x1b'), "{args:?} stdout: {out:?}");
        assert!(!err.contains('\x1b'), "{args:?} stderr: {err:?}");
    }
}
