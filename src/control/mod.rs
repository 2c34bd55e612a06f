//! Remote execution: running commands on nodes and moving files to and from
//! them.
//!
//! The door is the [`Remote`] trait (exec, upload, download). [`SshRemote`]
//! implements it over ssh2: it keeps one authenticated SSH session per node and
//! opens a channel on it for each command, so a command costs a round trip,
//! not a TCP and SSH handshake. Every call has a deadline, every error is a
//! [`ControlError`] that names the node and the command, and a node that stops
//! answering turns into an error after its timeout, never a hang.
//!
//! ssh2 is blocking: callers that live on an async runtime run these calls
//! with `spawn_blocking`; [`parallel`] runs one call per node on its own
//! thread.
//!
//! How to log in is [`SshOptions`]: a user, a key or a [`Password`], a
//! [`JumpHost`] to go through (`jump.rs`), how host keys are checked; what
//! a run records of it (never a secret) is its [`LoginRecord`].

mod jump;
mod ssh;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use ssh::SshRemote;

/// What a command left behind: its exit status and both output streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// The exit status; -1 when the command was ended by a signal.
    pub status: i32,
    /// The signal that ended the command, if one did (e.g. `KILL`).
    pub signal: Option<String>,
    /// Standard output, decoded as UTF-8 with invalid bytes replaced.
    pub stdout: String,
    /// Standard error, decoded as UTF-8 with invalid bytes replaced.
    pub stderr: String,
}

impl Output {
    /// True when the command exited with status 0.
    pub fn success(&self) -> bool {
        self.status == 0 && self.signal.is_none()
    }
}

/// Why a remote call failed. Every error carries the node and the command (or
/// file operation) it was about, so a message alone tells what went wrong
/// where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{node}: `{command}`: {kind}")]
pub struct ControlError {
    /// The node's name.
    pub node: String,
    /// The command, or a description of the file transfer, that failed.
    pub command: String,
    /// What went wrong.
    pub kind: ErrorKind,
}

/// The ways a remote call can fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// No TCP connection or no SSH handshake with the node.
    Connect(String),
    /// The node's host key is unknown or does not match known_hosts.
    HostKey(String),
    /// The node refused our credentials.
    Auth(String),
    /// The command did not finish within its timeout.
    Timeout(Duration),
    /// The SSH session or channel failed while the command ran.
    Session(String),
    /// The command ran and exited with a non-zero status (only from the
    /// checking calls such as [`Remote::run`]).
    Exit {
        /// Exit status, -1 when ended by a signal.
        status: i32,
        /// The end of its standard error.
        stderr: String,
    },
    /// An SFTP upload or download failed.
    Transfer(String),
    /// The user may not become root with `sudo -n` (sudo wants a password,
    /// or the user is not in sudoers); the message names the host, the
    /// user and the fix.
    Sudo(String),
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Connect(m) => write!(f, "cannot connect: {m}"),
            ErrorKind::HostKey(m) => write!(f, "host key check failed: {m}"),
            ErrorKind::Auth(m) => write!(f, "authentication failed: {m}"),
            ErrorKind::Timeout(d) => write!(f, "timed out after {:.1} s", d.as_secs_f64()),
            ErrorKind::Session(m) => write!(f, "SSH session failed: {m}"),
            ErrorKind::Exit { status, stderr } => {
                write!(f, "exited with status {status}")?;
                let stderr = stderr.trim();
                if !stderr.is_empty() {
                    write!(f, ": {stderr}")?;
                }
                Ok(())
            }
            ErrorKind::Transfer(m) => write!(f, "transfer failed: {m}"),
            ErrorKind::Sudo(m) => write!(f, "sudo refused: {m}"),
        }
    }
}

impl ControlError {
    /// Builds an error about `command` on `node`. Long commands are shortened
    /// so messages stay readable.
    pub fn new(node: &str, command: &str, kind: ErrorKind) -> Self {
        const MAX: usize = 300;
        let command = if command.len() > MAX {
            let mut end = MAX;
            while !command.is_char_boundary(end) {
                end -= 1;
            }
            format!("{}…", &command[..end])
        } else {
            command.to_string()
        };
        ControlError {
            node: node.to_string(),
            command,
            kind,
        }
    }

    /// True when the command hit its timeout.
    pub fn is_timeout(&self) -> bool {
        matches!(self.kind, ErrorKind::Timeout(_))
    }

    /// True when the node could not be reached at all (connection, host key or
    /// authentication), as opposed to a command that ran and failed.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::Connect(_) | ErrorKind::HostKey(_) | ErrorKind::Auth(_)
        )
    }
}

/// How host keys are checked when connecting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKeyPolicy {
    /// The host key must already be in this known_hosts file (the default for
    /// real hosts: `~/.ssh/known_hosts`).
    Verify(PathBuf),
    /// Unknown hosts are added to this known_hosts file; a key that differs
    /// from a recorded one is still refused.
    AcceptNew(PathBuf),
    /// No check at all. Only for throwaway machines.
    Insecure,
}

/// A login password. Its `Debug` shows no secret, so options can be logged;
/// only [`Password::expose`] gives it, to the SSH login.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Wraps a password.
    pub fn new(password: impl Into<String>) -> Self {
        Password(password.into())
    }

    /// The password itself, for the login and nothing else.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<hidden>)")
    }
}

/// A host to log in to first and reach the nodes through (OpenSSH's `-J`):
/// `[USER@]HOST[:PORT]`. Without a user, the nodes' user logs in there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JumpHost {
    /// The login user on the jump host; `None`: the nodes' user.
    pub user: Option<String>,
    /// Its name or address (an IPv6 literal without brackets).
    pub host: String,
    /// Its SSH port.
    pub port: u16,
}

impl std::str::FromStr for JumpHost {
    type Err = String;

    /// Parses `[USER@]HOST[:PORT]`; an IPv6 address with a port is written
    /// `[ADDR]:PORT`.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("{s:?} is not [USER@]HOST[:PORT]: {why}");
        let (user, rest) = match s.rsplit_once('@') {
            Some((u, r)) => {
                if u.is_empty()
                    || !u
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                {
                    return Err(bad("the user is not a login name"));
                }
                (Some(u.to_string()), r)
            }
            None => (None, s),
        };
        let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
            let (h, after) = inner
                .split_once(']')
                .ok_or_else(|| bad("no `]` after the address"))?;
            match after {
                "" => (h, None),
                p => (
                    h,
                    Some(p.strip_prefix(':').ok_or_else(|| bad("junk after `]`"))?),
                ),
            }
        } else if rest.matches(':').count() == 1 {
            let (h, p) = rest.split_once(':').unwrap_or((rest, ""));
            (h, Some(p))
        } else {
            (rest, None)
        };
        if host.is_empty()
            || !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        {
            return Err(bad("no host name or address"));
        }
        let port = match port {
            None => 22,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|&p| p > 0)
                .ok_or_else(|| bad("the port is not a number from 1 to 65535"))?,
        };
        Ok(JumpHost {
            user,
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for JumpHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(u) = &self.user {
            write!(f, "{u}@")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// What a run records of how it logged in (`test.json`'s `ssh`): the
/// settings, never a secret; a password shows only as the kind `password`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LoginRecord {
    /// The login user.
    pub user: String,
    /// The nodes' SSH port.
    pub port: u16,
    /// Whether commands run through `sudo -n`.
    pub sudo: bool,
    /// The kinds of authentication offered, in the order tried: `key`,
    /// `password`.
    pub auth: Vec<&'static str>,
    /// The key files offered.
    pub keys: Vec<String>,
    /// The jump host the nodes were reached through, if any.
    pub proxy_jump: Option<String>,
    /// How host keys were checked: `verify FILE`, `accept-new FILE` or
    /// `insecure`.
    pub host_keys: String,
}

/// Everything needed to log in to nodes.
#[derive(Debug, Clone)]
pub struct SshOptions {
    /// The login user.
    pub user: String,
    /// The SSH port.
    pub port: u16,
    /// A private key file (ed25519 or RSA); when `None`, `~/.ssh/id_ed25519`
    /// and `~/.ssh/id_rsa` are tried.
    pub key: Option<PathBuf>,
    /// A password, tried when key authentication fails or no key exists.
    pub password: Option<Password>,
    /// A host to log in to first and reach every node through.
    pub proxy_jump: Option<JumpHost>,
    /// How host keys are checked.
    pub host_keys: HostKeyPolicy,
    /// Wrap every command in `sudo -n` (for a non-root user).
    pub sudo: bool,
    /// The limit on TCP connect plus SSH handshake plus authentication.
    pub connect_timeout: Duration,
    /// The timeout for commands run without an explicit one.
    pub command_timeout: Duration,
    /// How often an idle session is probed with an SSH keepalive.
    pub keepalive: Duration,
}

impl Default for SshOptions {
    fn default() -> Self {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/root"));
        SshOptions {
            user: "root".to_string(),
            port: 22,
            key: None,
            password: None,
            proxy_jump: None,
            host_keys: HostKeyPolicy::Verify(home.join(".ssh/known_hosts")),
            sudo: false,
            connect_timeout: Duration::from_secs(10),
            command_timeout: Duration::from_secs(60),
            keepalive: Duration::from_secs(15),
        }
    }
}

impl SshOptions {
    /// The key files offered, in order: the one given, else those of
    /// `~/.ssh` that exist (`id_ed25519`, `id_rsa`).
    pub fn key_files(&self) -> Vec<PathBuf> {
        match &self.key {
            Some(k) => vec![k.clone()],
            None => {
                let home = std::env::var_os("HOME")
                    .map(PathBuf::from)
                    .unwrap_or_default();
                ["id_ed25519", "id_rsa"]
                    .iter()
                    .map(|k| home.join(".ssh").join(k))
                    .filter(|p| p.exists())
                    .collect()
            }
        }
    }

    /// What a run records of these options: no secret.
    pub fn record(&self) -> LoginRecord {
        let keys: Vec<String> = self
            .key_files()
            .iter()
            .map(|k| k.display().to_string())
            .collect();
        let mut auth = Vec::new();
        if !keys.is_empty() {
            auth.push("key");
        }
        if self.password.is_some() {
            auth.push("password");
        }
        LoginRecord {
            user: self.user.clone(),
            port: self.port,
            sudo: self.sudo && self.user != "root",
            auth,
            keys,
            proxy_jump: self.proxy_jump.as_ref().map(|j| j.to_string()),
            host_keys: match &self.host_keys {
                HostKeyPolicy::Verify(f) => format!("verify {}", f.display()),
                HostKeyPolicy::AcceptNew(f) => format!("accept-new {}", f.display()),
                HostKeyPolicy::Insecure => "insecure".to_string(),
            },
        }
    }
}

/// Runs commands on one node and moves files to and from it.
///
/// Implementations are thread-safe: several threads may run commands on the
/// same node at once.
pub trait Remote: Send + Sync + fmt::Debug {
    /// The node's name, used in every error.
    fn node(&self) -> &str;

    /// The timeout [`Remote::exec`] uses.
    fn default_timeout(&self) -> Duration;

    /// Runs a shell command and returns its output, whatever its exit status.
    /// Fails when the node cannot be reached or the command does not finish
    /// within `timeout`.
    fn exec_timeout(&self, command: &str, timeout: Duration) -> Result<Output, ControlError>;

    /// Copies the local file `local` to `remote` on the node, with the given
    /// permission bits (e.g. `0o755`). The file appears whole or not at all.
    fn upload(&self, local: &Path, remote: &str, mode: i32) -> Result<(), ControlError>;

    /// Copies the node's file `remote` to the local path `local`.
    fn download(&self, remote: &str, local: &Path) -> Result<(), ControlError>;

    /// Runs a shell command with the default timeout.
    fn exec(&self, command: &str) -> Result<Output, ControlError> {
        self.exec_timeout(command, self.default_timeout())
    }

    /// Runs a shell command that must succeed and returns its standard
    /// output; a non-zero exit is an [`ErrorKind::Exit`] error carrying stderr.
    fn run(&self, command: &str) -> Result<String, ControlError> {
        self.run_timeout(command, self.default_timeout())
    }

    /// [`Remote::run`] with an explicit timeout.
    fn run_timeout(&self, command: &str, timeout: Duration) -> Result<String, ControlError> {
        let out = self.exec_timeout(command, timeout)?;
        if out.success() {
            Ok(out.stdout)
        } else {
            Err(ControlError::new(
                self.node(),
                command,
                ErrorKind::Exit {
                    status: out.status,
                    stderr: tail(&out.stderr, 2000),
                },
            ))
        }
    }
}

/// Runs `f` on every item on its own thread and returns the results in the
/// items' order. Used to run one blocking SSH call per node at once.
pub fn parallel<I, T, F>(items: &[I], f: F) -> Vec<T>
where
    I: Sync,
    T: Send,
    F: Fn(&I) -> T + Sync,
{
    if items.len() == 1 {
        return vec![f(&items[0])];
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .iter()
            .map(|item| {
                let f = &f;
                scope.spawn(move || f(item))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| match h.join() {
                Ok(v) => v,
                // A panic in `f` is a bug in the caller's closure; carry it on.
                Err(p) => std::panic::resume_unwind(p),
            })
            .collect()
    })
}

/// Quotes `s` for a POSIX shell, so it reaches the command as one word.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@%+".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The last `max` bytes of `s` (at a character boundary).
pub(crate) fn tail(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &s[start..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_node_and_command() {
        let e = ControlError::new("n2", "hostname", ErrorKind::Timeout(Duration::from_secs(2)));
        let msg = e.to_string();
        assert!(msg.contains("n2") && msg.contains("hostname") && msg.contains("timed out"));
        assert!(e.is_timeout());
        let e = ControlError::new(
            "n1",
            "false",
            ErrorKind::Exit {
                status: 1,
                stderr: "boom\n".into(),
            },
        );
        assert_eq!(e.to_string(), "n1: `false`: exited with status 1: boom");
    }

    #[test]
    fn long_commands_are_shortened_at_char_boundary() {
        let cmd = "é".repeat(400);
        let e = ControlError::new("n1", &cmd, ErrorKind::Session("x".into()));
        assert!(e.command.len() < 310);
        assert!(e.command.ends_with('…'));
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("abc/d-e.f"), "abc/d-e.f");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("$(rm -rf /)"), "'$(rm -rf /)'");
    }

    #[test]
    fn parallel_keeps_order() {
        let items = [3u64, 1, 2];
        let out = parallel(&items, |&n| {
            std::thread::sleep(Duration::from_millis(n * 10));
            n * 2
        });
        assert_eq!(out, vec![6, 2, 4]);
    }

    #[test]
    fn jump_hosts_parse_like_openssh_dash_j() {
        let j: JumpHost = "admin@bastion.example:2222".parse().unwrap();
        assert_eq!(
            j,
            JumpHost {
                user: Some("admin".into()),
                host: "bastion.example".into(),
                port: 2222
            }
        );
        assert_eq!(j.to_string(), "admin@bastion.example:2222");
        let j: JumpHost = "10.0.0.1".parse().unwrap();
        assert_eq!((j.user, j.host.as_str(), j.port), (None, "10.0.0.1", 22));
        let j: JumpHost = "[fd00::1]:23".parse().unwrap();
        assert_eq!((j.host.as_str(), j.port), ("fd00::1", 23));
        assert_eq!(j.to_string(), "[fd00::1]:23");
        let j: JumpHost = "fd00::1".parse().unwrap();
        assert_eq!((j.host.as_str(), j.port), ("fd00::1", 22));
        for bad in [
            "", "@h", "u@", "h:0", "h:99999", "h:x", "a b", "[::1", "u;rm@h",
        ] {
            let err = bad.parse::<JumpHost>().unwrap_err();
            assert!(err.contains("[USER@]HOST[:PORT]"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_record_of_a_login_holds_no_password() {
        let opts = SshOptions {
            user: "ops".into(),
            key: Some("/k/id".into()),
            password: Some(Password::new("hunter2-secret")),
            proxy_jump: Some("jump.example".parse().unwrap()),
            sudo: true,
            ..SshOptions::default()
        };
        let record = serde_json::to_string(&opts.record()).unwrap();
        assert!(!record.contains("hunter2-secret"), "{record}");
        assert!(!format!("{opts:?}").contains("hunter2-secret"));
        assert_eq!(opts.record().auth, ["key", "password"]);
        assert_eq!(opts.record().proxy_jump.as_deref(), Some("jump.example:22"));
        assert!(opts.record().sudo);
    }

    #[test]
    fn tail_keeps_the_end() {
        assert_eq!(tail("abcdef", 3), "…def");
        assert_eq!(tail("ab", 3), "ab");
    }
}
