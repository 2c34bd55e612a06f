//! [`SshRemote`]: the [`Remote`] over ssh2 (libssh2).
//!
//! A node keeps a small pool of authenticated sessions; normally there is one,
//! reused for every command. A command borrows a session for its duration, so
//! concurrent commands on one node get extra sessions instead of sharing one
//! socket between threads (libssh2 sessions are not meant to be driven from
//! two threads at once).
//!
//! Commands run with the session in non-blocking mode: stdout and stderr are
//! drained together, waiting on the socket with `poll` in between, so a large
//! stderr cannot stall a reader waiting for stdout, and the command's deadline
//! is checked on every turn. File transfers switch the session to blocking
//! mode with libssh2's own timeout.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ssh2::{BlockDirections, CheckResult, ErrorCode, KnownHostFileKind, Session};

use super::{shell_quote, ControlError, ErrorKind, HostKeyPolicy, Output, Remote, SshOptions};

/// libssh2's "operation would block" code.
const EAGAIN: i32 = -37;
/// At most this many idle sessions are kept per node.
const MAX_IDLE: usize = 4;
/// Output beyond this many bytes per stream is read and dropped.
const MAX_OUTPUT: usize = 64 << 20;

/// A [`Remote`] reached over SSH. Cheap to share behind an `Arc`.
pub struct SshRemote {
    name: String,
    host: String,
    opts: SshOptions,
    idle: Mutex<Vec<Conn>>,
}

impl std::fmt::Debug for SshRemote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshRemote")
            .field("name", &self.name)
            .field("host", &self.host)
            .field("user", &self.opts.user)
            .field("port", &self.opts.port)
            .finish()
    }
}

/// One authenticated session and the socket under it.
struct Conn {
    session: Session,
    fd: RawFd,
    last_used: Instant,
}

/// How a command attempt failed: before the command was started (safe to
/// retry on a fresh session) or after (never retried: it may have run).
enum Failure {
    BeforeStart(ErrorKind),
    AfterStart(ErrorKind),
}

impl SshRemote {
    /// A remote for the node `name`, reached at `host` (a name or an address).
    /// Nothing is connected until the first call; use [`SshRemote::connect`]
    /// to fail early.
    pub fn new(name: &str, host: &str, opts: SshOptions) -> Self {
        SshRemote {
            name: name.to_string(),
            host: host.to_string(),
            opts,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Opens and authenticates a session now, so an unreachable node or a
    /// bad key shows up at once rather than at the first command.
    pub fn connect(&self) -> Result<(), ControlError> {
        let conn = self.open("(connect)", Instant::now() + self.opts.connect_timeout)?;
        self.give_back(conn);
        Ok(())
    }

    /// The host (name or address) this remote connects to.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The SSH options in use.
    pub fn options(&self) -> &SshOptions {
        &self.opts
    }

    /// Drops every idle session; the next call reconnects.
    pub fn disconnect(&self) {
        let conns = match self.idle.lock() {
            Ok(mut idle) => std::mem::take(&mut *idle),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        for c in conns {
            let _ = c.session.disconnect(None, "bye", None);
        }
    }

    fn err(&self, command: &str, kind: ErrorKind) -> ControlError {
        ControlError::new(&self.name, command, kind)
    }

    /// Wraps a command for sudo when configured.
    ///
    /// The command first reports its shell's pid on stderr (stripped from
    /// the output again), so a command that overruns its timeout can be
    /// killed on the node instead of running on unseen. Under sudo that
    /// shell is made a session (and group) leader with `setsid -w`, as sshd
    /// makes the shell of a command run as root: sudo leaves it in the
    /// login shell's group, where killing its group would miss everything
    /// it started.
    fn wrap(&self, command: &str) -> String {
        let tagged = format!("printf '{PID_TAG_PRINTF}%s\\n' \"$$\" >&2; {command}");
        if self.opts.sudo && self.opts.user != "root" {
            format!("sudo -n -- setsid -w sh -c {}", shell_quote(&tagged))
        } else {
            tagged
        }
    }

    /// Kills, in the background and on a fresh connection, the process group
    /// of a command that overran its timeout. Best effort: the node may be
    /// the reason it overran.
    fn kill_overrun(&self, pid: u32) {
        let opts = SshOptions {
            connect_timeout: self.opts.connect_timeout.min(Duration::from_secs(5)),
            command_timeout: Duration::from_secs(5),
            ..self.opts.clone()
        };
        let remote = SshRemote::new(&self.name, &self.host, opts);
        // sshd makes the command's shell a session (and group) leader, so
        // the negative pid reaches everything it started in the foreground
        // or background; daemons started with setsid are left alone.
        // No `--`: dash's kill (the `sh` that sudo runs) takes it for a
        // pid and fails, which left the group alive.
        let kill = format!("kill -KILL -{pid} 2>/dev/null || kill -KILL {pid} 2>/dev/null; true");
        let spawned = std::thread::Builder::new()
            .name(format!("kill-overrun-{}", self.name))
            .spawn(move || {
                if let Err(e) = remote.exec(&kill) {
                    tracing::debug!("could not kill an overrun command: {e}");
                }
            });
        if let Err(e) = spawned {
            tracing::debug!("could not start the overrun killer: {e}");
        }
    }

    /// Takes an idle session or opens a new one. Returns whether the session
    /// was reused (a reused one may have died while idle).
    fn take(&self, command: &str, deadline: Instant) -> Result<(Conn, bool), ControlError> {
        let reused = match self.idle.lock() {
            Ok(mut idle) => idle.pop(),
            Err(poisoned) => poisoned.into_inner().pop(),
        };
        if let Some(conn) = reused {
            return Ok((conn, true));
        }
        Ok((self.open(command, deadline)?, false))
    }

    fn give_back(&self, mut conn: Conn) {
        conn.last_used = Instant::now();
        let mut idle = match self.idle.lock() {
            Ok(idle) => idle,
            Err(poisoned) => poisoned.into_inner(),
        };
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }

    /// Drops the idle sessions: after one session died, the others (opened to
    /// the same node) most likely did too.
    fn forget_idle(&self) {
        match self.idle.lock() {
            Ok(mut idle) => idle.clear(),
            Err(poisoned) => poisoned.into_inner().clear(),
        }
    }

    /// TCP connect, SSH handshake, host key check and authentication, all
    /// within the connect timeout (and the caller's deadline).
    fn open(&self, command: &str, deadline: Instant) -> Result<Conn, ControlError> {
        let deadline = deadline.min(Instant::now() + self.opts.connect_timeout);
        let connect = |m: String| self.err(command, ErrorKind::Connect(m));
        let target = format!("{}:{}", self.host, self.opts.port);
        let addrs: Vec<_> = (self.host.as_str(), self.opts.port)
            .to_socket_addrs()
            .map_err(|e| connect(format!("cannot resolve {target}: {e}")))?
            .collect();
        let mut last = format!("{target} resolves to no address");
        let mut tcp = None;
        for addr in addrs {
            let left = remaining(deadline)
                .ok_or_else(|| self.err(command, ErrorKind::Timeout(self.opts.connect_timeout)))?;
            match TcpStream::connect_timeout(&addr, left) {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = format!("{addr}: {e}"),
            }
        }
        let tcp = tcp.ok_or_else(|| connect(last))?;
        // Commands are small request/response exchanges: Nagle would add
        // tens of milliseconds to each.
        let _ = tcp.set_nodelay(true);
        let fd = tcp.as_raw_fd();
        let mut session = Session::new().map_err(|e| connect(e.to_string()))?;
        session.set_tcp_stream(tcp);
        session.set_blocking(true);
        session.set_timeout(millis(remaining(deadline).unwrap_or_default()));
        session
            .handshake()
            .map_err(|e| connect(format!("SSH handshake with {target}: {e}")))?;
        self.check_host_key(&session, command)?;
        self.authenticate(&session, command)?;
        session.set_keepalive(true, self.opts.keepalive.as_secs().max(1) as u32);
        session.set_blocking(false);
        Ok(Conn {
            session,
            fd,
            last_used: Instant::now(),
        })
    }

    fn check_host_key(&self, session: &Session, command: &str) -> Result<(), ControlError> {
        let fail = |m: String| self.err(command, ErrorKind::HostKey(m));
        let (file, accept_new) = match &self.opts.host_keys {
            HostKeyPolicy::Insecure => return Ok(()),
            HostKeyPolicy::Verify(f) => (f, false),
            HostKeyPolicy::AcceptNew(f) => (f, true),
        };
        if self.host.contains('\0') {
            return Err(fail(format!("{:?} is not a host name", self.host)));
        }
        let (key, key_type) = session
            .host_key()
            .ok_or_else(|| fail("the server sent no host key".into()))?;
        let mut known = session.known_hosts().map_err(|e| fail(e.to_string()))?;
        if file.exists() {
            known
                .read_file(file, KnownHostFileKind::OpenSSH)
                .map_err(|e| fail(format!("cannot read {}: {e}", file.display())))?;
        }
        match known.check_port(&self.host, self.opts.port, key) {
            CheckResult::Match => Ok(()),
            CheckResult::Mismatch => Err(fail(format!(
                "the key of {} differs from the one in {}: possible man-in-the-middle, \
                 or the host was reinstalled (remove its line to accept the new key)",
                self.host,
                file.display()
            ))),
            CheckResult::NotFound if accept_new => {
                let entry = if self.opts.port == 22 {
                    self.host.clone()
                } else {
                    format!("[{}]:{}", self.host, self.opts.port)
                };
                known
                    .add(&entry, key, "added by faultline", key_type.into())
                    .map_err(|e| fail(e.to_string()))?;
                if let Some(dir) = file.parent() {
                    let _ = std::fs::create_dir_all(dir);
                }
                known
                    .write_file(file, KnownHostFileKind::OpenSSH)
                    .map_err(|e| fail(format!("cannot write {}: {e}", file.display())))?;
                tracing::info!(node = %self.name, "accepted new host key for {entry}");
                Ok(())
            }
            CheckResult::NotFound => Err(fail(format!(
                "{} is not in {} (connect once with ssh, or pass --accept-new-host-keys)",
                self.host,
                file.display()
            ))),
            CheckResult::Failure => Err(fail(format!("cannot check against {}", file.display()))),
        }
    }

    fn authenticate(&self, session: &Session, command: &str) -> Result<(), ControlError> {
        let user = &self.opts.user;
        let mut tried = Vec::new();
        let keys: Vec<PathBuf> = match &self.opts.key {
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
        };
        for key in &keys {
            if !key.exists() {
                tried.push(format!("key {} does not exist", key.display()));
                continue;
            }
            match session.userauth_pubkey_file(user, None, key, None) {
                Ok(()) if session.authenticated() => return Ok(()),
                Ok(()) => tried.push(format!("key {} not accepted", key.display())),
                Err(e) => tried.push(format!("key {}: {e}", key.display())),
            }
        }
        if let Some(password) = &self.opts.password {
            match session.userauth_password(user, password) {
                Ok(()) if session.authenticated() => return Ok(()),
                Ok(()) => tried.push("password not accepted".into()),
                Err(e) => tried.push(format!("password: {e}")),
            }
        }
        if tried.is_empty() {
            tried.push("no key file and no password to try".into());
        }
        Err(self.err(
            command,
            ErrorKind::Auth(format!("as {user}: {}", tried.join("; "))),
        ))
    }

    /// One attempt at running `command` on `conn`.
    /// `remote_pid` receives the command's shell pid as soon as it is known.
    fn exec_on(
        &self,
        conn: &Conn,
        command: &str,
        deadline: Instant,
        remote_pid: &mut Option<u32>,
    ) -> Result<Output, Failure> {
        let sess = &conn.session;
        // A session idle past the keepalive interval may have died quietly;
        // a keepalive flushes that out before the command is committed.
        if conn.last_used.elapsed() >= self.opts.keepalive {
            if let Err(e) = sess.keepalive_send() {
                if e.code() != ErrorCode::Session(EAGAIN) {
                    return Err(Failure::BeforeStart(ErrorKind::Session(e.to_string())));
                }
            }
        }
        let mut channel =
            again(conn, deadline, || sess.channel_session()).map_err(Failure::BeforeStart)?;
        again(conn, deadline, || channel.exec(command)).map_err(Failure::BeforeStart)?;
        // From here on the command may be running: never retried.
        again(conn, deadline, || channel.send_eof()).map_err(Failure::AfterStart)?;

        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let mut buf = vec![0u8; 32 * 1024];
        let (mut out_done, mut err_done) = (false, false);
        while !(out_done && err_done) {
            let mut progressed = false;
            for (stream_id, sink, done) in [
                (0, &mut stdout, &mut out_done),
                (1, &mut stderr, &mut err_done),
            ] {
                if *done {
                    continue;
                }
                let mut stream = channel.stream(stream_id);
                // A bounded number of reads per turn, so a stream that never
                // runs dry cannot starve the other one or the deadline.
                for _ in 0..16 {
                    match stream.read(&mut buf) {
                        Ok(0) => {
                            *done = true;
                            break;
                        }
                        Ok(n) => {
                            progressed = true;
                            if sink.len() < MAX_OUTPUT {
                                sink.extend_from_slice(&buf[..n]);
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(e) => {
                            return Err(Failure::AfterStart(ErrorKind::Session(e.to_string())))
                        }
                    }
                }
            }
            if remote_pid.is_none() {
                *remote_pid = take_pid_tag(&mut stderr);
            }
            if out_done && err_done {
                break;
            }
            // Checked on every turn, not only when idle: a command that
            // never stops writing must time out too.
            let Some(left) = remaining(deadline) else {
                return Err(Failure::AfterStart(ErrorKind::Timeout(Duration::ZERO)));
            };
            if !progressed {
                wait_socket(conn, left);
            }
        }
        again(conn, deadline, || channel.close()).map_err(Failure::AfterStart)?;
        again(conn, deadline, || channel.wait_close()).map_err(Failure::AfterStart)?;
        let status = channel
            .exit_status()
            .map_err(|e| Failure::AfterStart(ErrorKind::Session(e.to_string())))?;
        let signal = channel
            .exit_signal()
            .ok()
            .and_then(|s| s.exit_signal)
            .filter(|s| !s.is_empty());
        if remote_pid.is_none() {
            *remote_pid = take_pid_tag(&mut stderr);
        }
        Ok(Output {
            status: if signal.is_some() { -1 } else { status },
            signal,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        })
    }

    /// Runs `f` with a session in blocking mode (SFTP), reconnecting once if
    /// the idle session turned out dead before anything was transferred.
    fn with_blocking<T>(
        &self,
        what: &str,
        timeout: Duration,
        f: impl Fn(&Session) -> Result<T, String>,
    ) -> Result<T, ControlError> {
        let deadline = Instant::now() + timeout;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (conn, reused) = self.take(what, deadline)?;
            let left =
                remaining(deadline).ok_or_else(|| self.err(what, ErrorKind::Timeout(timeout)))?;
            conn.session.set_blocking(true);
            conn.session.set_timeout(millis(left));
            let result = f(&conn.session);
            conn.session.set_timeout(0);
            conn.session.set_blocking(false);
            match result {
                Ok(v) => {
                    self.give_back(conn);
                    return Ok(v);
                }
                Err(m) => {
                    // The session's state after a failed transfer is unknown.
                    discard(conn);
                    if Instant::now() >= deadline {
                        return Err(self.err(what, ErrorKind::Timeout(timeout)));
                    }
                    if reused && attempt == 1 {
                        // Transfers write to a temporary name: safe to redo
                        // on a fresh session if the kept one had died.
                        self.forget_idle();
                        continue;
                    }
                    return Err(self.err(what, ErrorKind::Transfer(m)));
                }
            }
        }
    }

    /// A temporary path next to `remote`, for writing a file and renaming it.
    fn temp_name(remote: &str) -> String {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        format!("{remote}.faultline-{}-{nanos}", std::process::id())
    }

    /// Timeout for a transfer of `bytes`: the command timeout plus a second
    /// per 10 MB, so large binaries are not cut off on slow links.
    fn transfer_timeout(&self, bytes: u64) -> Duration {
        self.opts.command_timeout + Duration::from_secs(bytes / (10 << 20))
    }
}

impl Remote for SshRemote {
    fn node(&self) -> &str {
        &self.name
    }

    fn default_timeout(&self) -> Duration {
        self.opts.command_timeout
    }

    fn exec_timeout(&self, command: &str, timeout: Duration) -> Result<Output, ControlError> {
        let wrapped = self.wrap(command);
        let deadline = Instant::now() + timeout;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (conn, reused) = self.take(command, deadline)?;
            let mut remote_pid = None;
            match self.exec_on(&conn, &wrapped, deadline, &mut remote_pid) {
                Ok(out) => {
                    self.give_back(conn);
                    return Ok(out);
                }
                Err(Failure::BeforeStart(kind))
                    if reused && attempt == 1 && !matches!(kind, ErrorKind::Timeout(_)) =>
                {
                    // The kept session died while idle (node restarted,
                    // network blip): reconnect once. Nothing ran yet.
                    tracing::debug!(node = %self.name, "session lost ({kind}); reconnecting");
                    discard(conn);
                    self.forget_idle();
                }
                Err(Failure::BeforeStart(kind)) | Err(Failure::AfterStart(kind)) => {
                    // A session that failed mid-command is not reused: its
                    // channel state is unknown.
                    discard(conn);
                    if let (ErrorKind::Timeout(_), Some(pid)) = (&kind, remote_pid) {
                        self.kill_overrun(pid);
                    }
                    let kind = match kind {
                        ErrorKind::Timeout(_) => ErrorKind::Timeout(timeout),
                        k => k,
                    };
                    return Err(self.err(command, kind));
                }
            }
        }
    }

    fn upload(&self, local: &Path, remote: &str, mode: i32) -> Result<(), ControlError> {
        let what = format!("upload {} to {remote}", local.display());
        let mut file = std::fs::File::open(local).map_err(|e| {
            self.err(
                &what,
                ErrorKind::Transfer(format!("cannot open {}: {e}", local.display())),
            )
        })?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let mut data = Vec::with_capacity(size as usize);
        file.read_to_end(&mut data).map_err(|e| {
            self.err(
                &what,
                ErrorKind::Transfer(format!("cannot read {}: {e}", local.display())),
            )
        })?;
        let via_sudo = self.opts.sudo && self.opts.user != "root";
        // Write next to the target and rename, so a reader (or a running
        // binary being replaced) never sees half a file. With sudo the user
        // may not write there: go through /tmp and `install` as root.
        let temp = if via_sudo {
            Self::temp_name("/tmp/faultline-upload")
        } else {
            Self::temp_name(remote)
        };
        self.with_blocking(&what, self.transfer_timeout(size), |sess| {
            let sftp = sess.sftp().map_err(|e| format!("SFTP: {e}"))?;
            let mut f = sftp
                .create(Path::new(&temp))
                .map_err(|e| format!("cannot create {temp}: {e}"))?;
            f.write_all(&data)
                .map_err(|e| format!("writing {temp}: {e}"))?;
            drop(f);
            if !via_sudo {
                let stat = ssh2::FileStat {
                    size: None,
                    uid: None,
                    gid: None,
                    perm: Some(mode as u32),
                    atime: None,
                    mtime: None,
                };
                sftp.setstat(Path::new(&temp), stat)
                    .map_err(|e| format!("chmod {temp}: {e}"))?;
            }
            Ok(())
        })?;
        let finish = if via_sudo {
            format!(
                "install -m {mode:o} {t} {r} && rm -f {t}",
                t = shell_quote(&temp),
                r = shell_quote(remote)
            )
        } else {
            format!("mv -f {} {}", shell_quote(&temp), shell_quote(remote))
        };
        self.run(&finish).map(|_| ())
    }

    fn download(&self, remote: &str, local: &Path) -> Result<(), ControlError> {
        let what = format!("download {remote} to {}", local.display());
        let via_sudo = self.opts.sudo && self.opts.user != "root";
        let source = if via_sudo {
            // The file may be readable by root only: copy it out first.
            let temp = Self::temp_name("/tmp/faultline-download");
            let user = shell_quote(&self.opts.user);
            self.run(&format!(
                "install -m 600 -o {user} {} {}",
                shell_quote(remote),
                shell_quote(&temp)
            ))?;
            temp
        } else {
            remote.to_string()
        };
        let result = self.with_blocking(&what, self.opts.command_timeout, |sess| {
            let sftp = sess.sftp().map_err(|e| format!("SFTP: {e}"))?;
            let mut f = sftp
                .open(Path::new(&source))
                .map_err(|e| format!("cannot open {source}: {e}"))?;
            let mut data = Vec::new();
            f.read_to_end(&mut data)
                .map_err(|e| format!("reading {source}: {e}"))?;
            Ok(data)
        });
        if via_sudo {
            let _ = self.exec(&format!("rm -f {}", shell_quote(&source)));
        }
        let data = result?;
        if let Some(dir) = local.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(|e| {
                    self.err(
                        &what,
                        ErrorKind::Transfer(format!("cannot create {}: {e}", dir.display())),
                    )
                })?;
            }
        }
        std::fs::write(local, data).map_err(|e| {
            self.err(
                &what,
                ErrorKind::Transfer(format!("cannot write {}: {e}", local.display())),
            )
        })
    }
}

impl Drop for SshRemote {
    fn drop(&mut self) {
        self.disconnect();
    }
}

/// The tag before the pid a wrapped command prints on stderr: a control
/// character no ordinary output starts with, in printf's octal notation and
/// as bytes.
const PID_TAG_PRINTF: &str = "\\036faultline-pid:";
const PID_TAG: &[u8] = b"\x1efaultline-pid:";

/// Removes the pid tag line from the start of `stderr` and returns the pid,
/// once the whole line has arrived.
fn take_pid_tag(stderr: &mut Vec<u8>) -> Option<u32> {
    if !stderr.starts_with(PID_TAG) {
        return None;
    }
    let end = stderr.iter().position(|&b| b == b'\n')?;
    let pid = std::str::from_utf8(&stderr[PID_TAG.len()..end])
        .ok()
        .and_then(|s| s.trim().parse().ok());
    stderr.drain(..=end);
    pid
}

/// Drops a session that failed. In non-blocking mode libssh2 may give up
/// freeing it half-way ("would block"), leaking it; in blocking mode with a
/// short timeout it frees it, waiting at most that long on a dead peer.
fn discard(conn: Conn) {
    conn.session.set_blocking(true);
    conn.session.set_timeout(300);
    drop(conn);
}

/// Retries a non-blocking libssh2 call until it stops saying "would block",
/// waiting on the socket in between, up to `deadline`.
fn again<T>(
    conn: &Conn,
    deadline: Instant,
    mut f: impl FnMut() -> Result<T, ssh2::Error>,
) -> Result<T, ErrorKind> {
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(e) if e.code() == ErrorCode::Session(EAGAIN) => {
                let Some(left) = remaining(deadline) else {
                    return Err(ErrorKind::Timeout(Duration::ZERO));
                };
                wait_socket(conn, left);
            }
            Err(e) => return Err(ErrorKind::Session(e.to_string())),
        }
    }
}

/// Waits until the socket is ready in the direction libssh2 is blocked on, or
/// `left` passes (at most 100 ms, so deadlines are checked often).
fn wait_socket(conn: &Conn, left: Duration) {
    let events = match conn.session.block_directions() {
        BlockDirections::Outbound => libc::POLLOUT,
        BlockDirections::Both => libc::POLLIN | libc::POLLOUT,
        _ => libc::POLLIN,
    };
    let mut pfd = libc::pollfd {
        fd: conn.fd,
        events,
        revents: 0,
    };
    let ms = left.min(Duration::from_millis(100)).as_millis().max(1) as libc::c_int;
    // SAFETY: `pfd` is a valid pollfd for the duration of the call and the
    // fd belongs to the socket the session owns (alive as long as `conn`).
    unsafe {
        libc::poll(&mut pfd, 1, ms);
    }
}

fn remaining(deadline: Instant) -> Option<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
}

fn millis(d: Duration) -> u32 {
    d.as_millis().clamp(1, u32::MAX as u128) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_tag_is_stripped_once_complete() {
        let mut partial = b"\x1efaultline-pid:12".to_vec();
        assert_eq!(take_pid_tag(&mut partial), None);
        assert_eq!(partial.len(), 17, "an incomplete tag is kept for later");
        let mut full = b"\x1efaultline-pid:1234\nreal error\n".to_vec();
        assert_eq!(take_pid_tag(&mut full), Some(1234));
        assert_eq!(full, b"real error\n");
        let mut plain = b"no tag\n".to_vec();
        assert_eq!(take_pid_tag(&mut plain), None);
        assert_eq!(plain, b"no tag\n");
    }

    #[test]
    fn wrapped_command_prints_the_tag_then_runs() {
        let remote = SshRemote::new("n1", "localhost", SshOptions::default());
        let wrapped = remote.wrap("echo hi");
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&wrapped)
            .output()
            .unwrap();
        let mut stderr = out.stderr.clone();
        assert!(take_pid_tag(&mut stderr).is_some(), "{wrapped}");
        assert!(stderr.is_empty());
        assert_eq!(out.stdout, b"hi\n");
    }
}
