//! An external client: a program of the user's, in any language, that
//! performs operations it reads as JSON lines on stdin and answers one JSON
//! line per operation on stdout. The protocol is in `docs/file-db.md`.
//!
//! One program runs per worker, started on `open` with `sh -c` in a process
//! group of its own, so that killing it by pid (`kill -KILL -<pgid>`) also
//! ends whatever it forked (an `etcdctl` stuck on a partitioned node). Any
//! answer that is not a completion — garbage, an exit, silence past the
//! operation's timeout — is recorded `info` (the operation was delivered, so
//! it may have happened) and the program is killed; the runner then reopens
//! the client, which starts a fresh program.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use super::{Client, ClientError, ClientFactory, Completion, Invocation, Status};

/// How many lines of the program's stderr are kept for error messages.
const STDERR_LINES: usize = 5;

/// The longest answer line read; a longer one is garbage.
const MAX_LINE: usize = 16 << 20;

/// Writes to a pipe up to this size are atomic (POSIX PIPE_BUF on Linux):
/// a failed write this small delivered nothing.
const PIPE_BUF: usize = 4096;

/// Where a node's client program runs from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeCommand {
    /// The node's address (`"ip"` in each operation).
    pub ip: String,
    /// The shell command line that starts the program for this node.
    pub command: String,
}

/// Makes one [`ExternalClient`] per worker, all sharing the commands.
#[derive(Clone, Debug)]
pub struct ExternalClientFactory {
    commands: Arc<HashMap<String, NodeCommand>>,
}

impl ExternalClientFactory {
    /// Clients that start `command` for each node (node name → command).
    pub fn new(commands: HashMap<String, NodeCommand>) -> ExternalClientFactory {
        ExternalClientFactory {
            commands: Arc::new(commands),
        }
    }

    /// A new, unopened client.
    pub fn client(&self) -> ExternalClient {
        ExternalClient {
            commands: Arc::clone(&self.commands),
            node: None,
            proc: None,
        }
    }

    /// The factory the runner takes: one boxed client per worker.
    pub fn into_factory(self) -> ClientFactory {
        Box::new(move |_worker| Box::new(self.client()) as Box<dyn Client>)
    }
}

/// A running client program.
struct Proc {
    child: Child,
    /// Its pid, which is also its process group.
    pid: Option<i32>,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    stderr: Arc<Mutex<VecDeque<String>>>,
    /// The task draining stderr; done when the program's stderr closes.
    drain: tokio::task::JoinHandle<()>,
}

impl Proc {
    /// Kills the whole process group at once; safe to call twice.
    fn kill_group(&mut self) {
        if let Some(pid) = self.pid.take() {
            // The group leader has not been reaped yet (we hold the Child),
            // so the pid cannot have been reused: this hits only our group.
            // SAFETY: kill(2) has no memory effects.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
    }

    fn stderr_tail(&self) -> String {
        let lines = self.stderr.lock().map(|l| l.clone()).unwrap_or_default();
        lines.into_iter().collect::<Vec<_>>().join(" | ")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill_group();
        self.drain.abort();
    }
}

/// A client that talks to one external program over stdin and stdout.
pub struct ExternalClient {
    commands: Arc<HashMap<String, NodeCommand>>,
    /// The node opened on, with its command.
    node: Option<(String, NodeCommand)>,
    proc: Option<Proc>,
}

impl fmt::Debug for ExternalClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExternalClient")
            .field("node", &self.node.as_ref().map(|(n, _)| n))
            .field("running", &self.proc.as_ref().and_then(|p| p.pid))
            .finish()
    }
}

/// What the program answered, as the protocol allows.
#[derive(Debug, PartialEq)]
struct Answer {
    status: Status,
    value: Option<Value>,
    error: Option<Value>,
}

/// Parses one answer line; the error says what is wrong with it.
fn parse_answer(line: &str) -> Result<Answer, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON ({e})"))?;
    let obj = v
        .as_object()
        .ok_or_else(|| "not a JSON object".to_string())?;
    let status = match obj.get("type").and_then(Value::as_str) {
        Some("ok") => Status::Ok,
        Some("fail") => Status::Fail,
        Some("info") => Status::Info,
        Some(other) => return Err(format!("\"type\" is {other:?}, expected ok, fail or info")),
        None => return Err("no \"type\" (ok, fail or info)".into()),
    };
    Ok(Answer {
        status,
        value: obj.get("value").cloned(),
        error: obj.get("error").cloned().filter(|e| !e.is_null()),
    })
}

/// The completion for an answer to `inv`: a missing value is the
/// invocation's own (so `{"type":"ok"}` acknowledges a write of what was
/// asked, and a read of nothing is `null`).
fn completion_of(answer: Answer, inv: &Invocation) -> Completion {
    let value = answer.value.unwrap_or_else(|| inv.value.clone());
    match answer.status {
        Status::Ok => Completion {
            status: Status::Ok,
            value,
            error: answer.error,
        },
        Status::Fail => Completion::fail(value, answer.error.unwrap_or_else(|| json!("failed"))),
        Status::Info => Completion::info(
            value,
            answer.error.unwrap_or_else(|| json!("unknown outcome")),
        ),
    }
}

/// How long to wait for an answer: a little less than the operation's
/// timeout, so this client's more telling message is the one recorded and
/// the program is killed here, not left to the runner.
fn answer_deadline(timeout: Duration) -> Duration {
    timeout.saturating_sub((timeout / 20).min(Duration::from_millis(250)))
}

impl ExternalClient {
    fn spawn(&mut self) -> Result<(), ClientError> {
        let Some((node, nc)) = &self.node else {
            return Err(ClientError::not_applied("client not opened on a node"));
        };
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(&nc.command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| {
            ClientError::not_applied(format!(
                "cannot start the client program for {node} (sh -c {:?}): {e}",
                nc.command
            ))
        })?;
        let pid = child.id().map(|p| p as i32);
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(ClientError::not_applied("the client program has no pipes"));
        };
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let drain = {
            // Drains stderr so the program never blocks on it, keeping the
            // last lines for messages; ends when the program does.
            let tail = Arc::clone(&tail);
            let node = node.clone();
            tokio::spawn(async move {
                // Bytes, not `lines()`: invalid UTF-8 must not stop the
                // draining, or the program would block on a full pipe.
                let mut reader = BufReader::new(stderr);
                let mut buf = Vec::new();
                loop {
                    buf.clear();
                    match reader.read_until(b'\n', &mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                    let line = String::from_utf8_lossy(&buf).trim_end().to_string();
                    tracing::debug!(node = %node, "client stderr: {line}");
                    if let Ok(mut t) = tail.lock() {
                        if t.len() == STDERR_LINES {
                            t.pop_front();
                        }
                        t.push_back(line);
                    }
                }
            })
        };
        self.proc = Some(Proc {
            child,
            pid,
            stdin,
            stdout: BufReader::new(stdout),
            stderr: tail,
            drain,
        });
        Ok(())
    }

    /// Kills the program and reaps it.
    async fn kill(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill_group();
            let _ = tokio::time::timeout(Duration::from_secs(2), p.child.wait()).await;
        }
    }

    /// Why the program stopped answering: its exit status if it exited,
    /// and the end of its stderr.
    async fn ended(&mut self) -> String {
        let Some(mut p) = self.proc.take() else {
            return "no client program".into();
        };
        // Give an exiting program a moment to be reaped and to flush stderr.
        let status = tokio::time::timeout(Duration::from_millis(500), p.child.wait()).await;
        p.kill_group();
        // Its last words: stderr closes once the group is gone.
        let _ = tokio::time::timeout(Duration::from_millis(200), &mut p.drain).await;
        let status = match status {
            Ok(Ok(s)) => s.to_string(),
            _ => "still running; killed".into(),
        };
        let tail = p.stderr_tail();
        if tail.is_empty() {
            status
        } else {
            format!("{status}; stderr: {tail}")
        }
    }
}

#[async_trait::async_trait]
impl Client for ExternalClient {
    async fn open(&mut self, node: &str) -> Result<(), ClientError> {
        self.kill().await;
        let nc = self.commands.get(node).cloned().ok_or_else(|| {
            ClientError::not_applied(format!("no client command for node {node}"))
        })?;
        self.node = Some((node.to_string(), nc));
        self.spawn()
    }

    async fn invoke(&mut self, inv: &Invocation) -> Completion {
        if self.proc.is_none() {
            if let Err(e) = self.spawn() {
                return Completion::from_error(inv.value.clone(), &e);
            }
        }
        let (node, ip) = match &self.node {
            Some((n, nc)) => (n.clone(), nc.ip.clone()),
            None => (String::new(), String::new()),
        };
        let mut line = json!({
            "process": inv.process,
            "f": inv.f,
            "value": inv.value,
            "key": inv.key,
            "node": node,
            "ip": ip,
        })
        .to_string();
        line.push('\n');
        let deadline = answer_deadline(inv.timeout);
        let Some(p) = self.proc.as_mut() else {
            return Completion::fail(inv.value.clone(), "no client program");
        };
        let sent = tokio::time::timeout(deadline, async {
            p.stdin.write_all(line.as_bytes()).await?;
            p.stdin.flush().await
        })
        .await;
        match sent {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let why = self.ended().await;
                let msg = format!("client program gone before the operation ({e}): {why}");
                // A small write is all or nothing: the program never saw it.
                return if line.len() <= PIPE_BUF {
                    Completion::fail(inv.value.clone(), msg)
                } else {
                    Completion::info(inv.value.clone(), msg)
                };
            }
            Err(_) => {
                self.kill().await;
                return Completion::info(
                    inv.value.clone(),
                    format!(
                        "client program did not read the operation within {:.1} s; killed",
                        deadline.as_secs_f64()
                    ),
                );
            }
        }
        let mut answer = String::new();
        let read = tokio::time::timeout(deadline, async {
            // `take` bounds a runaway line; the limit shows up as garbage.
            (&mut p.stdout)
                .take(MAX_LINE as u64)
                .read_line(&mut answer)
                .await
        })
        .await;
        match read {
            Err(_) => {
                self.kill().await;
                Completion::info(
                    inv.value.clone(),
                    format!(
                        "client program did not answer within {:.1} s; killed",
                        deadline.as_secs_f64()
                    ),
                )
            }
            Ok(Err(e)) => {
                let why = self.ended().await;
                Completion::info(
                    inv.value.clone(),
                    format!("reading the client's answer: {e}; {why}"),
                )
            }
            Ok(Ok(0)) => {
                let why = self.ended().await;
                Completion::info(
                    inv.value.clone(),
                    format!("client program exited without answering ({why})"),
                )
            }
            Ok(Ok(_)) => match parse_answer(answer.trim_end_matches(['\n', '\r'])) {
                Ok(a) => {
                    let c = completion_of(a, inv);
                    if c.status == Status::Info {
                        // The runner reopens after info: a fresh program.
                        self.kill().await;
                    }
                    c
                }
                Err(why) => {
                    self.kill().await;
                    let shown: String = answer.trim().chars().take(200).collect();
                    Completion::info(
                        inv.value.clone(),
                        format!("client program answered garbage ({why}): {shown:?}; killed"),
                    )
                }
            },
        }
    }

    async fn close(&mut self) -> Result<(), ClientError> {
        self.kill().await;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
