//! Shared by tests/serve.rs and tests/browser.rs: fixture runs made with the
//! real code paths (`RunDir::create`, then `faultline analyze` writes
//! results.json and the report pages), a `faultline serve`
//! child on a free port, and a plain HTTP/1.0 GET that sends the path
//! exactly as given (so traversal attempts reach the server unnormalized).
#![allow(dead_code)]

pub mod webdriver;

use faultline::store::RunDir;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, UNIX_EPOCH};

/// A linearizability violation: a read of 2 after the only write, of 1.
pub const REGISTER_INVALID: &str = r#"{"process":0,"time":1000000,"type":"invoke","f":"write","value":1}
{"process":0,"time":2000000,"type":"ok","f":"write","value":1}
{"process":1,"time":3000000,"type":"invoke","f":"read","value":null}
{"process":"nemesis","time":3500000,"type":"info","f":"start-partition","value":["n1","n2"]}
{"process":1,"time":4000000,"type":"ok","f":"read","value":2}
{"process":"nemesis","time":5000000,"type":"info","f":"stop-partition","value":null}
"#;

/// A valid register history.
pub const REGISTER_VALID: &str = r#"{"process":0,"time":1000000,"type":"invoke","f":"write","value":1}
{"process":0,"time":2000000,"type":"ok","f":"write","value":1}
{"process":1,"time":3000000,"type":"invoke","f":"read","value":null}
{"process":1,"time":1500000000,"type":"ok","f":"read","value":1}
"#;

/// Write skew: not serializable (G2-item).
pub const WRITE_SKEW: &str = r#"{"process":0,"time":1000,"type":"invoke","f":"txn","value":[["r","x",null],["append","y",1]]}
{"process":1,"time":2000,"type":"invoke","f":"txn","value":[["r","y",null],["append","x",2]]}
{"process":0,"time":3000,"type":"ok","f":"txn","value":[["r","x",[]],["append","y",1]]}
{"process":1,"time":4000,"type":"ok","f":"txn","value":[["r","y",[]],["append","x",2]]}
"#;

/// A set that lost an acknowledged element.
pub const SET_LOST: &str = r#"{"process":0,"time":1000,"type":"invoke","f":"add","value":1}
{"process":0,"time":2000,"type":"ok","f":"add","value":1}
{"process":0,"time":3000,"type":"invoke","f":"add","value":2}
{"process":0,"time":4000,"type":"ok","f":"add","value":2}
{"process":1,"time":5000,"type":"invoke","f":"read","value":null}
{"process":1,"time":6000,"type":"ok","f":"read","value":[1]}
"#;

/// The faultline binary.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_faultline")
}

/// Makes a run of test `name` started at `secs` (Unix time) with this
/// configuration and history, and checks it with `faultline analyze`.
pub fn make_run(root: &Path, name: &str, secs: u64, test: Value, history: &str) -> PathBuf {
    let t = UNIX_EPOCH + Duration::from_secs(secs);
    let dir = RunDir::create(root, name, t).expect("create run dir");
    let mut test = test;
    test["name"] = json!(name);
    // The end marker of a run that ran to its end (without it, analyze
    // takes the run for one whose controller was killed: incomplete).
    test["end"] = json!({"complete": true});
    dir.write_test(&test).expect("write test.json");
    std::fs::write(dir.history(), history).expect("write history");
    std::fs::write(dir.log(), "INFO fixture run\n").expect("write log");
    let node = dir.node_dir("n1").expect("node dir");
    std::fs::write(node.join("db.log"), "node log line\n").expect("write node log");
    let out = Command::new(bin())
        .arg("analyze")
        .arg(&dir.path)
        .output()
        .expect("run faultline analyze");
    let code = out.status.code().unwrap_or(-1);
    assert!(
        (0..=2).contains(&code),
        "analyze {} failed ({code}): {}{}",
        dir.path.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // analyze also wrote the run's pages (report.html, timeline.html, ...).
    assert!(
        dir.path.join("report.html").is_file(),
        "analyze wrote no report.html"
    );
    dir.path
}

/// The fixture results directory: four tests, five runs.
/// Returns the run folders by short name.
pub struct Fixture {
    /// The results directory.
    pub root: PathBuf,
    /// etcd register under partition, invalid (the newest of two).
    pub register_bad: PathBuf,
    /// etcd register under partition, valid (older).
    pub register_ok: PathBuf,
    /// postgres list-append, no nemesis, G2-item.
    pub append: PathBuf,
    /// etcd set under kill, lost element.
    pub set: PathBuf,
}

/// Builds the fixture runs in `root`.
pub fn fixture(root: &Path) -> Fixture {
    let base = 1_795_000_000; // 2026-11-18
    let register = |nem: &str| {
        json!({"db": "etcd", "workload": "register", "nemesis": [nem],
               "model": "cas-register", "checkers": ["linearizable", "stats"],
               "read_mode": "linearizable"})
    };
    let register_ok = make_run(
        root,
        "etcd-register-partition",
        base,
        register("partition"),
        REGISTER_VALID,
    );
    let append = make_run(
        root,
        "postgres-append",
        base + 60,
        json!({"db": "postgres", "workload": "list-append", "nemesis": [],
               "model": "list-append", "checkers": ["txn", "stats"],
               "consistency_model": "serializable"}),
        WRITE_SKEW,
    );
    let set = make_run(
        root,
        "etcd-set-kill",
        base + 120,
        json!({"db": "etcd", "workload": "set", "nemesis": ["kill"],
               "model": "set", "checkers": ["set", "stats"], "read_mode": "linearizable"}),
        SET_LOST,
    );
    let register_bad = make_run(
        root,
        "etcd-register-partition",
        base + 180,
        register("partition"),
        REGISTER_INVALID,
    );
    Fixture {
        root: root.to_path_buf(),
        register_bad,
        register_ok,
        append,
        set,
    }
}

/// `<test>/<start>` of a run folder.
pub fn run_id(dir: &Path) -> String {
    let start = dir.file_name().and_then(|s| s.to_str()).unwrap_or_default();
    let test = dir
        .parent()
        .and_then(Path::file_name)
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    format!("{test}/{start}")
}

/// A `faultline serve` child, killed when dropped.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub url: String,
    /// `127.0.0.1:PORT`.
    pub addr: String,
}

impl Server {
    /// Starts `faultline serve --results root --port 0` and waits for its URL.
    pub fn start(root: &Path) -> Server {
        let mut child = Command::new(bin())
            .args(["serve", "--port", "0", "--results"])
            .arg(root)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start faultline serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the URL line");
        let url = line
            .trim()
            .strip_prefix("faultline serve: ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .trim_end_matches('/')
            .to_string();
        let addr = url.trim_start_matches("http://").to_string();
        Server { child, url, addr }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A response: status, headers (lowercase names), body.
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `method path` over HTTP/1.0 (so the body ends at close), the path sent
/// byte for byte.
pub fn request(addr: &str, method: &str, path: &str, body: Option<&str>) -> Response {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let mut req = format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\n");
    if let Some(b) = body {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    req.push_str("\r\n");
    if let Some(b) = body {
        req.push_str(b);
    }
    s.write_all(req.as_bytes()).expect("send");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read response");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    if chunked {
        body = dechunk(&body);
    }
    Response {
        status,
        headers,
        body,
    }
}

/// GET `path`.
pub fn get(addr: &str, path: &str) -> Response {
    request(addr, "GET", path, None)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&b[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = eol + 2;
        out.extend_from_slice(&b[start..(start + size).min(b.len())]);
        b = &b[(start + size + 2).min(b.len())..];
    }
    out
}
