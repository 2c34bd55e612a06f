//! The db of a db file: every lifecycle step runs the file's command
//! templates on the node ([`FileDbSpec`] is the file, [`super::template`]
//! the language of its commands).

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use super::format::FileDbSpec;
use super::template::{Template, Vars};
use crate::cluster::Node;
use crate::control::shell_quote;
use crate::db::daemon::Daemon;
use crate::db::{Db, DbError, Program};

/// A database run by the commands of a db file.
#[derive(Debug, Clone)]
pub struct FileDb {
    spec: std::sync::Arc<FileDbSpec>,
    /// Each node's variables, by node name.
    vars: HashMap<String, Vars>,
}

impl FileDb {
    /// The db of `spec` on `nodes`.
    pub fn new(spec: std::sync::Arc<FileDbSpec>, nodes: &[Node]) -> Result<FileDb, DbError> {
        let members: Vec<(String, String, String)> = nodes
            .iter()
            .map(|n| {
                (
                    n.name().to_string(),
                    n.host().to_string(),
                    n.work_dir().to_string(),
                )
            })
            .collect();
        let all = spec
            .vars_for(&members)
            .map_err(|e| DbError::Invalid(format!("{}: {e}", spec.path.display())))?;
        let vars = members.into_iter().map(|m| m.0).zip(all).collect();
        Ok(FileDb { spec, vars })
    }

    /// The file's description.
    pub fn spec(&self) -> &FileDbSpec {
        &self.spec
    }

    /// The variables of the node named `node`.
    pub fn vars(&self, node: &str) -> Option<&Vars> {
        self.vars.get(node)
    }

    fn err(&self, node: &Node, action: &str, reason: impl ToString) -> DbError {
        DbError::Node {
            db: self.spec.name.clone(),
            node: node.name().into(),
            action: format!("{action} ({})", self.spec.path.display()),
            reason: reason.to_string(),
        }
    }

    fn node_vars(&self, node: &Node) -> Result<&Vars, DbError> {
        self.vars.get(node.name()).ok_or_else(|| {
            self.err(
                node,
                "variables",
                "this node is not one the db was made for",
            )
        })
    }

    fn expand(&self, node: &Node, t: &Template) -> Result<String, DbError> {
        let vars = self.node_vars(node)?;
        t.expand(vars).map_err(|e| self.err(node, &t.field, e))
    }

    fn var(&self, node: &Node, name: &str) -> Result<String, DbError> {
        Ok(self
            .node_vars(node)?
            .get(name)
            .unwrap_or_default()
            .to_string())
    }

    /// Runs template `t` on the node; it must exit 0.
    fn run(&self, node: &Node, t: &Template, timeout: Duration) -> Result<String, DbError> {
        let cmd = self.expand(node, t)?;
        let out = node.exec_timeout(&cmd, timeout)?;
        if out.success() {
            Ok(out.stdout)
        } else {
            let said = if out.stderr.trim().is_empty() {
                out.stdout.trim().to_string()
            } else {
                out.stderr.trim().to_string()
            };
            Err(self.err(
                node,
                &t.field,
                format!(
                    "`{cmd}` exited with {}: {}",
                    status_text(&out),
                    crate::control::tail(&said, 600)
                ),
            ))
        }
    }

    fn daemon(&self, node: &Node) -> Result<Option<(Daemon, String)>, DbError> {
        let Some(t) = &self.spec.daemon else {
            return Ok(None);
        };
        let command = self.expand(node, t)?;
        let comm = match &self.spec.daemon_name {
            Some(n) => n.clone(),
            None => {
                let first = command.split_whitespace().next().unwrap_or("");
                Path::new(first)
                    .file_name()
                    .map(|s| s.to_string_lossy().to_string())
                    .unwrap_or_default()
            }
        };
        let dir = self.var(node, "dir")?;
        let d = Daemon::new(
            &comm,
            &format!("{dir}/{}.pid", self.spec.name),
            &self.var(node, "log")?,
        );
        Ok(Some((d, command)))
    }

    fn mkdir(&self, node: &Node) -> Result<(), DbError> {
        let dir = self.var(node, "dir")?;
        node.run(&format!("mkdir -p {}", shell_quote(&dir)))?;
        Ok(())
    }

    /// The end of what the node's logs say, for an unhealthy node.
    fn log_tail(&self, node: &Node) -> String {
        let files = self.log_files(node);
        let Some(f) = files.first() else {
            return String::new();
        };
        node.exec(&format!("tail -n 5 {} 2>/dev/null", shell_quote(f)))
            .map(|o| o.stdout)
            .unwrap_or_default()
    }

    /// One run of the health command on the node.
    fn health(&self, node: &Node) -> Result<(), String> {
        let cmd = self
            .expand(node, &self.spec.health)
            .map_err(|e| e.to_string())?;
        let out = node
            .exec_timeout(&cmd, Duration::from_secs(10))
            .map_err(|e| e.to_string())?;
        if out.success() {
            Ok(())
        } else {
            let said = format!("{} {}", out.stderr.trim(), out.stdout.trim());
            Err(format!(
                "health check exited with {}: {}",
                status_text(&out),
                crate::control::tail(said.trim(), 300)
            ))
        }
    }

    /// The version the `version` command prints on the node, if the file
    /// has one.
    pub fn version(&self, node: &Node) -> Option<String> {
        let t = self.spec.version.as_ref()?;
        self.run(node, t, Duration::from_secs(30))
            .ok()
            .map(|s| s.trim().to_string())
    }
}

/// How an exit reads in a message.
fn status_text(out: &crate::control::Output) -> String {
    match &out.signal {
        Some(sig) => format!("signal {sig}"),
        None => format!("status {}", out.status),
    }
}

const SHORT: Duration = Duration::from_secs(60);

impl Db for FileDb {
    fn name(&self) -> &str {
        &self.spec.name
    }

    fn install(&self, node: &Node) -> Result<(), DbError> {
        self.mkdir(node)?;
        if !self.spec.packages.is_empty() {
            let packages: Vec<&str> = self.spec.packages.iter().map(String::as_str).collect();
            // Every package listed as installed (an unknown one prints no
            // line, so the lines are counted).
            let present = format!(
                "[ \"$(dpkg-query -W -f='${{Status}}\\n' {} 2>/dev/null | grep -c ' ok installed$')\" = {} ]",
                packages.join(" "),
                packages.len()
            );
            crate::db::daemon::apt_install(
                &self.spec.name,
                node,
                &crate::db::daemon::AptPackages {
                    what: &format!("{} (the db file's packages)", packages.join(", ")),
                    packages: &packages,
                    present: &present,
                    services: &[],
                    otherwise: " (`faultline run` does that itself as root)",
                },
            )?;
        }
        if let Some(t) = &self.spec.install {
            self.run(node, t, Duration::from_secs(900))?;
        }
        Ok(())
    }

    fn configure(&self, node: &Node) -> Result<(), DbError> {
        self.mkdir(node)?;
        if let Some(t) = &self.spec.configure {
            self.run(node, t, Duration::from_secs(300))?;
        }
        Ok(())
    }

    fn start(&self, node: &Node) -> Result<(), DbError> {
        self.mkdir(node)?;
        if let Some((d, command)) = self.daemon(node)? {
            let dir = self.var(node, "dir")?;
            d.start(node, &dir, &command)
                .map_err(|e| self.err(node, "daemon", e))?;
            return Ok(());
        }
        match &self.spec.start {
            Some(t) => self.run(node, t, SHORT).map(|_| ()),
            None => Err(self.err(node, "start", "no start command")),
        }
    }

    fn stop(&self, node: &Node) -> Result<(), DbError> {
        if let Some((d, _)) = self.daemon(node)? {
            return Ok(d.stop(node, "TERM", Duration::from_secs(10))?);
        }
        match self.spec.stop.as_ref().or(self.spec.kill.as_ref()) {
            Some(t) => self.run(node, t, SHORT).map(|_| ()),
            None => Err(self.err(node, "stop", "no stop or kill command")),
        }
    }

    fn kill(&self, node: &Node) -> Result<(), DbError> {
        if let Some((d, _)) = self.daemon(node)? {
            return Ok(d.stop(node, "KILL", Duration::from_secs(5))?);
        }
        match &self.spec.kill {
            Some(t) => self.run(node, t, SHORT).map(|_| ()),
            None => Err(self.err(node, "kill", "no kill command")),
        }
    }

    fn pause(&self, node: &Node) -> Result<(), DbError> {
        if let Some((d, _)) = self.daemon(node)? {
            return if d.signal(node, "STOP")? {
                Ok(())
            } else {
                Err(self.err(node, "pause", "the daemon is not running"))
            };
        }
        match &self.spec.pause {
            Some(t) => self.run(node, t, SHORT).map(|_| ()),
            None => Err(self.err(
                node,
                "pause",
                "the file has no pause command (add `pause = ...`, or use `daemon`)",
            )),
        }
    }

    fn resume(&self, node: &Node) -> Result<(), DbError> {
        if let Some((d, _)) = self.daemon(node)? {
            d.signal(node, "CONT")?;
            return Ok(());
        }
        // Without a pause command nothing was ever paused: resuming is a
        // no-op, as heal must be safe at any time.
        match &self.spec.resume {
            Some(t) => self.run(node, t, SHORT).map(|_| ()),
            None => Ok(()),
        }
    }

    fn is_paused(&self, node: &Node) -> Result<bool, DbError> {
        match self.daemon(node)? {
            Some((d, _)) => Ok(d.is_stopped(node)?),
            None => Ok(false),
        }
    }

    /// The daemon's process name, when the file has a `daemon` (its
    /// `daemon_name`, or the command's program); a file with its own
    /// start and kill commands is cleaned by its `kill` and `wipe`.
    fn programs(&self, node: &Node) -> Vec<Program> {
        match self.daemon(node) {
            Ok(Some((d, _))) => vec![Program::named(&d.comm)],
            _ => Vec::new(),
        }
    }

    fn is_running(&self, node: &Node) -> Result<bool, DbError> {
        if let Some((d, _)) = self.daemon(node)? {
            return Ok(d.is_running(node)?);
        }
        match &self.spec.running {
            Some(t) => {
                let cmd = self.expand(node, t)?;
                Ok(node.exec_timeout(&cmd, SHORT)?.success())
            }
            None => Err(self.err(node, "running", "no running command")),
        }
    }

    fn wipe(&self, node: &Node) -> Result<(), DbError> {
        if self.spec.daemon.is_some() && self.is_running(node)? {
            return Err(self.err(node, "wipe", "the daemon still runs; kill or stop it first"));
        }
        match &self.spec.wipe {
            Some(t) => self.run(node, t, SHORT).map(|_| ()),
            None => {
                let dir = self.var(node, "dir")?;
                node.run(&format!("rm -rf {}", shell_quote(&dir)))?;
                Ok(())
            }
        }
    }

    fn wait_healthy(&self, nodes: &[Node], timeout: Duration) -> Result<(), DbError> {
        crate::db::poll_healthy(
            &self.spec.name,
            nodes,
            timeout,
            Duration::from_millis(200),
            |pending| crate::control::parallel(pending, |n| self.health(n)),
            |n| {
                let running = self.is_running(n).unwrap_or(false);
                format!(
                    "{}; log: {}",
                    if running { "" } else { " (not running)" },
                    crate::control::tail(self.log_tail(n).trim(), 800)
                )
            },
        )
    }

    fn log_files(&self, node: &Node) -> Vec<String> {
        let mut files = Vec::new();
        if self.spec.daemon.is_some() {
            if let Ok(l) = self.var(node, "log") {
                files.push(l);
            }
        }
        for t in &self.spec.logs {
            if let Ok(f) = self.expand(node, t) {
                if !files.contains(&f) {
                    files.push(f);
                }
            }
        }
        files
    }

    fn primaries(&self, nodes: &[Node]) -> Result<Vec<String>, DbError> {
        let Some(t) = &self.spec.primaries else {
            return Ok(Vec::new());
        };
        // Asked on each node in turn until one answers: a node that is
        // killed, paused or cut off cannot say.
        for n in nodes {
            let Ok(cmd) = self.expand(n, t) else { continue };
            let Ok(out) = n.exec_timeout(&cmd, Duration::from_secs(10)) else {
                continue;
            };
            if !out.success() {
                continue;
            }
            let names: Vec<String> = out
                .stdout
                .split(|c: char| c.is_whitespace() || c == ',')
                .filter(|w| nodes.iter().any(|n| n.name() == *w))
                .map(String::from)
                .collect();
            return Ok(names);
        }
        Ok(Vec::new())
    }
}
