//! The results directory: where a run leaves everything it learned.
//!
//! ```text
//! results/
//!   latest -> register/20261126T074512.123Z      (the newest run of any test)
//!   register/
//!     latest -> 20261126T074512.123Z              (the newest run of this test)
//!     20261126T074512.123Z/
//!       test.json        the full configuration: seed, version, nodes, ...
//!       history.jsonl    every event, written as the run goes
//!       results.json     per checker: valid?, details
//!       faultline.log    the run's log
//!       nodes/<node>/    log files collected from each node
//!       report.html      the summary page, with timeline.html, plots,
//!                        counterexample.html / anomalies.html (docs/reports.md)
//! ```
//!
//! The `latest` links are replaced atomically (a new link renamed over the
//! old one), so a reader never sees them missing. [`RunDir::open`] loads a
//! stored run back for `faultline analyze`.

use crate::history::{self, History};
use serde_json::Value;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// The test configuration file.
pub const TEST_JSON: &str = "test.json";
/// The history, one event per line.
pub const HISTORY_JSONL: &str = "history.jsonl";
/// The checkers' results.
pub const RESULTS_JSON: &str = "results.json";
/// The run's log.
pub const LOG_FILE: &str = "faultline.log";
/// The folder of node log folders.
pub const NODES_DIR: &str = "nodes";
/// The key of a run's end marker in `test.json`: `{"complete": true}` once
/// its history is whole, `{"complete": false, "reason": ...}` when it did
/// not run to its end; missing while the run goes on (or when its
/// controller was killed).
pub const END_MARKER: &str = "end";
/// The name of the links to the newest run.
pub const LATEST: &str = "latest";

/// Why a results directory could not be made or read.
#[derive(Debug)]
pub struct StoreError {
    /// The file or directory concerned.
    pub path: PathBuf,
    /// What went wrong.
    pub message: String,
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

impl std::error::Error for StoreError {}

fn err(path: &Path, message: impl fmt::Display) -> StoreError {
    StoreError {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

/// The directory of one run: `<root>/<test-name>/<start-time>/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunDir {
    /// The run's directory.
    pub path: PathBuf,
    /// The test name (the parent folder's name).
    pub test_name: String,
    /// The start time as it appears in the path, e.g. `20261126T074512.123Z`.
    pub start: String,
}

/// A run loaded back from its directory.
#[derive(Debug)]
pub struct StoredRun {
    /// Its directory.
    pub dir: RunDir,
    /// `test.json`.
    pub test: Value,
    /// `history.jsonl`.
    pub history: History,
    /// `results.json`, when the run got that far.
    pub results: Option<Value>,
}

impl StoredRun {
    /// Why this run's verdict is incomplete, if it is: its results say it
    /// was interrupted, its end marker says it did not run to its end, or
    /// it has neither an end marker nor results (its controller was
    /// killed). A run from before end markers, with results that do not
    /// say interrupted, is complete.
    pub fn incomplete_reason(&self) -> Option<String> {
        if let Some(r) = &self.results {
            if let Some(why) = r.get("incomplete_reason").and_then(Value::as_str) {
                return Some(why.to_string());
            }
            if r.get("interrupted") == Some(&Value::Bool(true))
                || r.get("valid").and_then(Value::as_str) == Some("incomplete")
            {
                return Some("interrupted: the history is partial".to_string());
            }
        }
        match self.test.get(END_MARKER) {
            Some(end) if end.get("complete") == Some(&Value::Bool(true)) => None,
            Some(end) => Some(
                end.get("reason")
                    .and_then(Value::as_str)
                    .unwrap_or("the run did not run to its end")
                    .to_string(),
            ),
            None if self.results.is_none() => Some(
                "the run never finished: no end marker in test.json and no results.json \
                 (was its controller killed?)"
                    .to_string(),
            ),
            None => None,
        }
    }
}

impl RunDir {
    /// Makes `<root>/<test_name>/<start>/` with its `nodes/` folder, and
    /// points `<root>/latest` and `<root>/<test_name>/latest` at it. Two
    /// runs starting in the same millisecond get `-2`, `-3`, ... suffixes.
    pub fn create(root: &Path, test_name: &str, start: SystemTime) -> Result<RunDir, StoreError> {
        check_name(test_name).map_err(|m| err(root, m))?;
        let test_dir = root.join(test_name);
        std::fs::create_dir_all(&test_dir)
            .map_err(|e| err(&test_dir, format!("cannot create: {e}")))?;
        let base = format_time(start);
        let mut stamp = base.clone();
        let mut n = 1;
        let path = loop {
            let p = test_dir.join(&stamp);
            match std::fs::create_dir(&p) {
                Ok(()) => break p,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < 1000 => {
                    n += 1;
                    stamp = format!("{base}-{n}");
                }
                Err(e) => return Err(err(&p, format!("cannot create: {e}"))),
            }
        };
        let nodes = path.join(NODES_DIR);
        std::fs::create_dir(&nodes).map_err(|e| err(&nodes, format!("cannot create: {e}")))?;
        let dir = RunDir {
            path,
            test_name: test_name.to_string(),
            start: stamp.clone(),
        };
        link_latest(&test_dir, Path::new(&stamp))?;
        link_latest(root, &Path::new(test_name).join(&stamp))?;
        Ok(dir)
    }

    /// The run in directory `path` (or a `latest` link to one), with its
    /// test configuration, history and results (if written).
    pub fn open(path: &Path) -> Result<StoredRun, StoreError> {
        let real =
            std::fs::canonicalize(path).map_err(|e| err(path, format!("no such run: {e}")))?;
        if !real.is_dir() {
            return Err(err(path, "not a run directory"));
        }
        let name_of = |p: Option<&Path>| {
            p.and_then(Path::file_name)
                .map(|s| s.to_string_lossy().into_owned())
        };
        let dir = RunDir {
            start: name_of(Some(&real)).unwrap_or_default(),
            test_name: name_of(real.parent()).unwrap_or_default(),
            path: real,
        };
        let test = read_json(&dir.test_json())?;
        let history =
            history::read_path(&dir.history(), None).map_err(|e| err(&dir.history(), e.message))?;
        let results = match std::fs::metadata(dir.results_json()) {
            Ok(_) => Some(read_json(&dir.results_json())?),
            Err(_) => None,
        };
        Ok(StoredRun {
            dir,
            test,
            history,
            results,
        })
    }

    /// `test.json`.
    pub fn test_json(&self) -> PathBuf {
        self.path.join(TEST_JSON)
    }

    /// `history.jsonl`.
    pub fn history(&self) -> PathBuf {
        self.path.join(HISTORY_JSONL)
    }

    /// `results.json`.
    pub fn results_json(&self) -> PathBuf {
        self.path.join(RESULTS_JSON)
    }

    /// `faultline.log`.
    pub fn log(&self) -> PathBuf {
        self.path.join(LOG_FILE)
    }

    /// `nodes/<node>/`, created if missing. Node names that are not plain
    /// file names (`/`, `..`) are refused.
    pub fn node_dir(&self, node: &str) -> Result<PathBuf, StoreError> {
        check_name(node).map_err(|m| err(&self.path, m))?;
        let p = self.path.join(NODES_DIR).join(node);
        std::fs::create_dir_all(&p).map_err(|e| err(&p, format!("cannot create: {e}")))?;
        Ok(p)
    }

    /// Writes `test.json` (pretty, atomically).
    pub fn write_test(&self, test: &Value) -> Result<(), StoreError> {
        write_json(&self.test_json(), test)
    }

    /// Writes `results.json` (pretty, atomically).
    pub fn write_results(&self, results: &Value) -> Result<(), StoreError> {
        write_json(&self.results_json(), results)
    }
}

/// A test or node name must be one plain path component.
fn check_name(name: &str) -> Result<(), String> {
    let bad = name.is_empty()
        || name == "."
        || name == ".."
        || name == LATEST
        || name.contains(['/', '\\', '\0'])
        || name.starts_with('.');
    if bad {
        Err(format!("{name:?} cannot name a folder (use letters, digits, '-', '_', '.', not starting with '.', not \"latest\")"))
    } else {
        Ok(())
    }
}

fn read_json(path: &Path) -> Result<Value, StoreError> {
    let text = std::fs::read_to_string(path).map_err(|e| err(path, format!("cannot read: {e}")))?;
    serde_json::from_str(&text).map_err(|e| err(path, format!("line {}: not JSON: {e}", e.line())))
}

/// Writes to a temporary file and renames it into place, so a reader sees
/// the old file or the new, never half of one.
fn write_json(path: &Path, v: &Value) -> Result<(), StoreError> {
    let tmp = path.with_extension("json.tmp");
    let mut text = serde_json::to_string_pretty(v).map_err(|e| err(path, e))?;
    text.push('\n');
    std::fs::write(&tmp, text).map_err(|e| err(&tmp, format!("cannot write: {e}")))?;
    std::fs::rename(&tmp, path).map_err(|e| err(path, format!("cannot write: {e}")))
}

/// Points `<dir>/latest` at `target` (relative to `dir`): a new link under a
/// temporary name, renamed over the old one (rename is atomic on POSIX).
fn link_latest(dir: &Path, target: &Path) -> Result<(), StoreError> {
    let link = dir.join(LATEST);
    let tmp = dir.join(format!(".{LATEST}.{}.{}", std::process::id(), unique()));
    #[cfg(unix)]
    std::os::unix::fs::symlink(target, &tmp).map_err(|e| err(&tmp, format!("cannot link: {e}")))?;
    #[cfg(not(unix))]
    return Err(err(&tmp, "symbolic links need a Unix system"));
    std::fs::rename(&tmp, &link).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        err(&link, format!("cannot replace link: {e}"))
    })
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A time as `YYYYMMDDTHHMMSS.mmmZ` in UTC (ISO 8601 basic format, as
/// Jepsen's store names runs), so that names sort by time.
pub fn format_time(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (y, m, day) = civil_from_days((secs / 86_400) as i64);
    let s = secs % 86_400;
    format!(
        "{y:04}{m:02}{day:02}T{:02}{:02}{:02}.{:03}Z",
        s / 3600,
        s / 60 % 60,
        s % 60,
        d.subsec_millis()
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64, millis: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis)
    }

    #[test]
    fn formats_times_in_utc_basic_format() {
        assert_eq!(format_time(at(0, 0)), "19700101T000000.000Z");
        // 2026-11-26T07:45:12.123Z
        assert_eq!(format_time(at(1_795_679_112, 123)), "20261126T074512.123Z");
        // A leap day: 2024-02-29T23:59:59.999Z
        assert_eq!(format_time(at(1_709_251_199, 999)), "20240229T235959.999Z");
    }

    #[test]
    fn civil_days_round_trip_against_a_day_counter() {
        // Walk 1970..2100 day by day and check month/day succession.
        let (mut y, mut m, mut d) = (1970i64, 1u32, 1u32);
        for z in 0..47_482 {
            assert_eq!(civil_from_days(z), (y, m, d), "day {z}");
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let len = [
                31,
                if leap { 29 } else { 28 },
                31,
                30,
                31,
                30,
                31,
                31,
                30,
                31,
                30,
                31,
            ][m as usize - 1];
            d += 1;
            if d > len {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
    }

    #[test]
    fn creates_layout_and_moves_latest_links() {
        let root = tempfile::tempdir().expect("tempdir");
        let a = RunDir::create(root.path(), "register", at(1_795_679_112, 123)).expect("create a");
        assert_eq!(a.start, "20261126T074512.123Z");
        assert!(a.path.join("nodes").is_dir());
        let b = RunDir::create(root.path(), "register", at(1_795_679_112, 123)).expect("create b");
        assert_eq!(
            b.start, "20261126T074512.123Z-2",
            "same millisecond gets a suffix"
        );
        let c = RunDir::create(root.path(), "set", at(1_795_679_200, 0)).expect("create c");

        let latest = std::fs::canonicalize(root.path().join("latest")).expect("latest");
        assert_eq!(latest, std::fs::canonicalize(&c.path).expect("c"));
        let reg_latest =
            std::fs::canonicalize(root.path().join("register/latest")).expect("register/latest");
        assert_eq!(reg_latest, std::fs::canonicalize(&b.path).expect("b"));
        // Links are relative, so the results folder can be moved or copied.
        let target = std::fs::read_link(root.path().join("latest")).expect("read_link");
        assert!(target.is_relative(), "{target:?}");
        // No temporary links are left behind.
        let leftovers: Vec<_> = std::fs::read_dir(root.path())
            .expect("read_dir")
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn refuses_names_that_escape_the_results_folder() {
        let root = tempfile::tempdir().expect("tempdir");
        for bad in ["", "..", "a/b", "latest", ".hidden"] {
            assert!(
                RunDir::create(root.path(), bad, SystemTime::now()).is_err(),
                "{bad:?}"
            );
        }
        let run = RunDir::create(root.path(), "t", SystemTime::now()).expect("create");
        assert!(run.node_dir("../x").is_err());
        assert!(run.node_dir("n1").expect("n1").is_dir());
    }

    #[test]
    fn stored_run_loads_back_through_the_latest_link() {
        use crate::history::{Op, OpType, Process};
        let root = tempfile::tempdir().expect("tempdir");
        let run = RunDir::create(root.path(), "register", SystemTime::now()).expect("create");
        let test = serde_json::json!({"name": "register", "seed": 42});
        run.write_test(&test).expect("test.json");
        let h = History::new(vec![
            Op::new(
                0,
                Process::Client(0),
                OpType::Invoke,
                "write",
                serde_json::json!(1),
            ),
            Op::new(
                1,
                Process::Client(0),
                OpType::Ok,
                "write",
                serde_json::json!(1),
            ),
        ]);
        let f = std::fs::File::create(run.history()).expect("history");
        h.write_jsonl(std::io::BufWriter::new(f))
            .expect("write history");

        let loaded = RunDir::open(&root.path().join("register/latest")).expect("open");
        assert_eq!(loaded.test, test);
        assert_eq!(loaded.history.ops, h.ops);
        assert!(loaded.results.is_none());
        assert_eq!(loaded.dir.test_name, "register");
        assert_eq!(loaded.dir.start, run.start);

        run.write_results(&serde_json::json!({"valid": true}))
            .expect("results");
        assert!(RunDir::open(&run.path).expect("open").results.is_some());
    }

    #[test]
    fn open_names_the_broken_file() {
        let root = tempfile::tempdir().expect("tempdir");
        let run = RunDir::create(root.path(), "t", SystemTime::now()).expect("create");
        std::fs::write(run.test_json(), "{not json").expect("write");
        let e = RunDir::open(&run.path).expect_err("bad json");
        assert!(e.path.ends_with("test.json"), "{e}");
        assert!(RunDir::open(&root.path().join("missing")).is_err());
    }
}

#[cfg(test)]
mod incomplete_tests {
    use super::*;
    use serde_json::json;

    fn stored(test: Value, results: Option<Value>) -> StoredRun {
        StoredRun {
            dir: RunDir {
                path: PathBuf::from("r/t/1"),
                test_name: "t".into(),
                start: "1".into(),
            },
            test,
            history: History::default(),
            results,
        }
    }

    #[test]
    fn a_run_that_did_not_end_stays_incomplete() {
        // Killed controller: no end marker, no results.
        let why = stored(json!({"name": "t"}), None)
            .incomplete_reason()
            .expect("incomplete");
        assert!(why.contains("never finished"), "{why}");
        // Interrupted: the results say so, with the reason kept.
        let r = json!({"valid": "incomplete", "interrupted": true, "incomplete_reason": "interrupted (SIGINT or SIGTERM) 2.0 s into the run"});
        assert_eq!(
            stored(json!({"end": {"complete": false, "reason": "x"}}), Some(r)).incomplete_reason(),
            Some("interrupted (SIGINT or SIGTERM) 2.0 s into the run".to_string())
        );
        // Results from before incomplete verdicts, saying interrupted.
        let r = json!({"valid": "valid", "interrupted": true});
        assert_eq!(
            stored(json!({}), Some(r)).incomplete_reason(),
            Some("interrupted: the history is partial".to_string())
        );
        // The end marker alone (results not yet written).
        assert_eq!(
            stored(
                json!({"end": {"complete": false, "reason": "the db set-up failed: boom"}}),
                None
            )
            .incomplete_reason(),
            Some("the db set-up failed: boom".to_string())
        );
    }

    #[test]
    fn a_run_that_ended_is_complete() {
        let r = json!({"valid": "valid", "interrupted": false});
        assert_eq!(
            stored(json!({"end": {"complete": true}}), Some(r.clone())).incomplete_reason(),
            None
        );
        // From before end markers, with results: complete.
        assert_eq!(stored(json!({}), Some(r)).incomplete_reason(), None);
    }
}
