//! A minimal W3C WebDriver client for headless Chromium through
//! chromedriver: sessions, navigation, scripts, screenshots and the browser
//! console log, and installing the browser for the tests. Plain HTTP/1.1 over std's TcpStream (one connection per
//! command), so the tests add no dependency. Shared by tests/browser.rs and
//! benches/timeline_browser.rs.
#![allow(dead_code)]

use base64::Engine as _;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian puts the browser.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// And its WebDriver.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

#[path = "../cluster_support/apt.rs"]
mod apt;

/// Installs Chromium and chromedriver with apt-get when they are missing
/// (as root; panics with the reason otherwise), for the browser tests.
pub fn ensure() {
    apt::ensure(&[(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")]);
}

/// Why the browser cannot run here, if it cannot (benches/timeline_browser
/// skips then: a benchmark installs nothing).
pub fn skip_reason() -> Option<String> {
    for p in [CHROMIUM, CHROMEDRIVER] {
        if !Path::new(p).exists() {
            return Some(format!(
                "{p} missing: apt-get install -y chromium chromium-driver"
            ));
        }
    }
    None
}

/// chromedriver and one headless Chromium session; both end when dropped.
pub struct Browser {
    driver: Child,
    addr: String,
    session: String,
    _profile: tempfile::TempDir,
}

/// A free local port (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn http(addr: &str, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
    let mut s = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(120)))
        .map_err(|e| e.to_string())?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    // chromedriver keeps the connection open whatever we ask: read the
    // headers, then exactly Content-Length bytes (or chunks up to the last).
    let mut raw = Vec::new();
    let mut buf = [0u8; 65536];
    let split = loop {
        if let Some(p) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        let n = s.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err(format!(
                "{method} {path}: connection closed before the headers"
            ));
        }
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let length: Option<usize> = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok());
    let chunked = head.contains("transfer-encoding: chunked");
    let mut payload = raw[split + 4..].to_vec();
    loop {
        let done = match length {
            Some(n) => payload.len() >= n,
            None if chunked => payload.windows(5).any(|w| w == b"0\r\n\r\n"),
            None => false,
        };
        if done {
            break;
        }
        let n = s.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        payload.extend_from_slice(&buf[..n]);
    }
    if chunked {
        payload = dechunk(&payload);
    }
    let v: Value = serde_json::from_slice(&payload).map_err(|e| {
        format!(
            "{method} {path}: not JSON ({e}): {}",
            String::from_utf8_lossy(&payload)
        )
    })?;
    if let Some(err) = v["value"]["error"].as_str() {
        return Err(format!(
            "{method} {path}: {err}: {}",
            v["value"]["message"].as_str().unwrap_or("")
        ));
    }
    Ok(v)
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

impl Browser {
    /// Starts chromedriver on a free port and a headless Chromium session
    /// with a fresh profile, console logging on.
    pub fn start() -> Result<Browser, String> {
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting {CHROMEDRIVER}: {e}"))?;
        let addr = format!("127.0.0.1:{port}");
        let profile = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut b = Browser {
            driver,
            addr,
            session: String::new(),
            _profile: profile,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match http(&b.addr, "GET", "/status", None) {
                Ok(v) if v["value"]["ready"] == true => break,
                _ if Instant::now() > deadline => {
                    return Err("chromedriver did not start in 20 s".into())
                }
                _ => std::thread::sleep(Duration::from_millis(100)),
            }
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                         "--no-first-run", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync",
                         "--disable-dev-shm-usage", "--window-size=1280,900",
                         format!("--user-data-dir={}", b._profile.path().display())]
            },
            "goog:loggingPrefs": {"browser": "ALL"}
        }}});
        let v = http(&b.addr, "POST", "/session", Some(&caps))?;
        b.session = v["value"]["sessionId"]
            .as_str()
            .ok_or_else(|| format!("no session id in {v}"))?
            .to_string();
        Ok(b)
    }

    fn cmd(&self, method: &str, what: &str, body: Option<&Value>) -> Result<Value, String> {
        http(
            &self.addr,
            method,
            &format!("/session/{}/{what}", self.session),
            body,
        )
        .map(|v| v["value"].clone())
    }

    /// Opens `url` and waits for its load event.
    pub fn goto(&self, url: &str) -> Result<(), String> {
        self.cmd("POST", "url", Some(&json!({"url": url})))
            .map(|_| ())
    }

    /// Runs `script` (a function body; `arguments[i]` are `args`) and
    /// returns its value.
    pub fn exec(&self, script: &str, args: Value) -> Result<Value, String> {
        self.cmd(
            "POST",
            "execute/sync",
            Some(&json!({"script": script, "args": args})),
        )
    }

    /// How many elements match the CSS selector.
    pub fn count(&self, css: &str) -> Result<u64, String> {
        self.exec(
            "return document.querySelectorAll(arguments[0]).length",
            json!([css]),
        )?
        .as_u64()
        .ok_or_else(|| "count is not a number".into())
    }

    /// The text of the first element matching `css` (None: no such element).
    pub fn text(&self, css: &str) -> Result<Option<String>, String> {
        let v = self.exec(
            "const e = document.querySelector(arguments[0]); return e ? e.textContent : null",
            json!([css]),
        )?;
        Ok(v.as_str().map(String::from))
    }

    /// Waits until `script` returns true, for at most `limit`.
    pub fn wait_for(&self, script: &str, limit: Duration) -> Result<Duration, String> {
        let t0 = Instant::now();
        loop {
            if self.exec(script, json!([]))? == json!(true) {
                return Ok(t0.elapsed());
            }
            if t0.elapsed() > limit {
                return Err(format!("timed out after {limit:?} waiting for: {script}"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The page's current URL.
    pub fn url(&self) -> Result<String, String> {
        Ok(self
            .cmd("GET", "url", None)?
            .as_str()
            .unwrap_or("")
            .to_string())
    }

    /// Console entries since the last call: (level, message).
    pub fn console(&self) -> Result<Vec<(String, String)>, String> {
        let v = self.cmd("POST", "se/log", Some(&json!({"type": "browser"})))?;
        Ok(v.as_array()
            .map(|a| {
                a.iter()
                    .map(|e| {
                        (
                            e["level"].as_str().unwrap_or("").to_string(),
                            e["message"].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The console's SEVERE entries since the last call (errors, failed
    /// loads, uncaught exceptions).
    pub fn severe(&self) -> Result<Vec<String>, String> {
        Ok(self
            .console()?
            .into_iter()
            .filter(|(l, _)| l == "SEVERE")
            .map(|(_, m)| m)
            .collect())
    }

    /// Saves a PNG of the viewport to `path`.
    pub fn screenshot(&self, path: &Path) -> Result<PathBuf, String> {
        let v = self.cmd("GET", "screenshot", None)?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or(""))
            .map_err(|e| format!("screenshot: {e}"))?;
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d).map_err(|e| e.to_string())?;
        }
        std::fs::write(path, png).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(path.to_path_buf())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = http(
                &self.addr,
                "DELETE",
                &format!("/session/{}", self.session),
                None,
            );
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
