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
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ssh2::{BlockDirections, CheckResult, ErrorCode, KnownHostFileKind, Session};

use super::jump::{self, Tunnel};
use super::{
    shell_quote, ControlError, ErrorKind, HostKeyPolicy, JumpHost, Output, Remote, SshOptions,
};

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

/// One authenticated session and the socket under it (with the tunnel
/// that socket is bridged to, when the node is reached through a jump
/// host).
struct Conn {
    session: Session,
    fd: RawFd,
    last_used: Instant,
    tunnel: Option<Tunnel>,
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
    /// With sudo, it also checks that `sudo -n` works (see
    /// [`ErrorKind::Sudo`]).
    pub fn connect(&self) -> Result<(), ControlError> {
        let conn = self.open("(connect)", Instant::now() + self.opts.connect_timeout)?;
        self.give_back(conn);
        self.check_sudo()
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

    /// TCP connect (directly, or through the jump host), SSH handshake,
    /// host key check and authentication, all within the connect timeout
    /// (and the caller's deadline).
    fn open(&self, command: &str, deadline: Instant) -> Result<Conn, ControlError> {
        let deadline = deadline.min(Instant::now() + self.opts.connect_timeout);
        let target = format!("{}:{}", self.host, self.opts.port);
        let (session, fd, tunnel) = match &self.opts.proxy_jump {
            None => {
                let tcp = self.tcp_connect(&self.host, self.opts.port, deadline, command)?;
                let fd = tcp.as_raw_fd();
                (self.handshake(tcp, &target, deadline, command)?, fd, None)
            }
            Some(jump) => {
                let (stream, tunnel) = self
                    .tunnel(jump, deadline, command)
                    .map_err(|e| through(jump, e))?;
                let fd = stream.as_raw_fd();
                let session =
                    self.handshake(stream, &target, deadline, command)
                        .map_err(|mut e| {
                            if let (ErrorKind::Connect(m), Some(why)) =
                                (&mut e.kind, tunnel.failure())
                            {
                                m.push_str(&format!(" (through jump host {jump}: {why})"));
                            }
                            e
                        })?;
                (session, fd, Some(tunnel))
            }
        };
        self.check_host_key(&session, &self.host, self.opts.port, command)?;
        self.authenticate(&session, &self.opts.user, command)?;
        session.set_keepalive(true, self.opts.keepalive.as_secs().max(1) as u32);
        session.set_blocking(false);
        Ok(Conn {
            session,
            fd,
            last_used: Instant::now(),
            tunnel,
        })
    }

    /// A TCP connection to `host:port` within `deadline`.
    fn tcp_connect(
        &self,
        host: &str,
        port: u16,
        deadline: Instant,
        command: &str,
    ) -> Result<TcpStream, ControlError> {
        let connect = |m: String| self.err(command, ErrorKind::Connect(m));
        let target = format!("{host}:{port}");
        let addrs: Vec<_> = (host, port)
            .to_socket_addrs()
            .map_err(|e| connect(format!("cannot resolve {target}: {e}")))?
            .collect();
        let mut last = format!("{target} resolves to no address");
        for addr in addrs {
            let left = remaining(deadline)
                .ok_or_else(|| self.err(command, ErrorKind::Timeout(self.opts.connect_timeout)))?;
            match TcpStream::connect_timeout(&addr, left) {
                Ok(tcp) => {
                    // Commands are small request/response exchanges: Nagle
                    // would add tens of milliseconds to each.
                    let _ = tcp.set_nodelay(true);
                    return Ok(tcp);
                }
                Err(e) => last = format!("{addr}: {e}"),
            }
        }
        Err(connect(last))
    }

    /// An SSH session over `stream`, handshaken with `target` (for
    /// messages) within `deadline`, in blocking mode.
    fn handshake<S: AsRawFd + 'static>(
        &self,
        stream: S,
        target: &str,
        deadline: Instant,
        command: &str,
    ) -> Result<Session, ControlError> {
        let connect = |m: String| self.err(command, ErrorKind::Connect(m));
        let mut session = Session::new().map_err(|e| connect(e.to_string()))?;
        session.set_tcp_stream(stream);
        session.set_blocking(true);
        session.set_timeout(millis(remaining(deadline).unwrap_or_default()));
        session
            .handshake()
            .map_err(|e| connect(format!("SSH handshake with {target}: {e}")))?;
        Ok(session)
    }

    /// Logs in to the jump host, opens a channel from there to this node's
    /// SSH port and bridges it to a local socket (`jump.rs`), which the
    /// node's session then runs over.
    fn tunnel(
        &self,
        jump: &JumpHost,
        deadline: Instant,
        command: &str,
    ) -> Result<(UnixStream, Tunnel), ControlError> {
        let tcp = self.tcp_connect(&jump.host, jump.port, deadline, command)?;
        let jump_fd = tcp.as_raw_fd();
        let session = self.handshake(
            tcp,
            &format!("{}:{}", jump.host, jump.port),
            deadline,
            command,
        )?;
        self.check_host_key(&session, &jump.host, jump.port, command)?;
        let user = jump.user.as_deref().unwrap_or(&self.opts.user);
        self.authenticate(&session, user, command)?;
        session.set_timeout(millis(remaining(deadline).unwrap_or_default()));
        let channel = session
            .channel_direct_tcpip(&self.host, self.opts.port, None)
            .map_err(|e| {
                self.err(
                    command,
                    ErrorKind::Connect(format!(
                        "it could not open a connection to {}:{}: {e}",
                        self.host, self.opts.port
                    )),
                )
            })?;
        session.set_timeout(0);
        jump::spawn(
            session,
            channel,
            jump_fd,
            jump.to_string(),
            self.opts.keepalive,
        )
        .map_err(|e| {
            self.err(
                command,
                ErrorKind::Connect(format!("cannot start the tunnel: {e}")),
            )
        })
    }

    /// Checks that the user may become root with `sudo -n`, so a sudo that
    /// wants a password is refused before anything runs, naming the host,
    /// the user and the fix, rather than at some command in the middle of a
    /// run.
    fn check_sudo(&self) -> Result<(), ControlError> {
        if !(self.opts.sudo && self.opts.user != "root") {
            return Ok(());
        }
        let command = "sudo -n true";
        let out = self.exec_timeout("true", self.opts.command_timeout)?;
        if out.success() {
            return Ok(());
        }
        let user = &self.opts.user;
        let host = &self.host;
        let said = out.stderr.trim();
        let fix = format!(
            "faultline runs every command of a user other than root through `sudo -n`: \
             add `{user} ALL=(ALL) NOPASSWD: ALL` to /etc/sudoers.d/{user} on {host} \
             (visudo -f /etc/sudoers.d/{user}), or log in as root"
        );
        let why = if said.contains("password is required") {
            format!("{user} needs a password for sudo on {host} ({said}); {fix}")
        } else if said.contains("not in the sudoers") || said.contains("may not run sudo") {
            format!("{user} may not use sudo on {host} ({said}); {fix}")
        } else if said.contains("sudo: not found") || said.contains("sudo: command not found") {
            format!(
                "sudo is not installed on {host} ({said}): install it (apt-get install sudo) \
                 and {fix}"
            )
        } else {
            format!(
                "`sudo -n true` as {user} on {host} exited with status {}: {said}",
                out.status
            )
        };
        Err(self.err(command, ErrorKind::Sudo(why)))
    }

    fn check_host_key(
        &self,
        session: &Session,
        host: &str,
        port: u16,
        command: &str,
    ) -> Result<(), ControlError> {
        let fail = |m: String| self.err(command, ErrorKind::HostKey(m));
        let (file, accept_new) = match &self.opts.host_keys {
            HostKeyPolicy::Insecure => return Ok(()),
            HostKeyPolicy::Verify(f) => (f, false),
            HostKeyPolicy::AcceptNew(f) => (f, true),
        };
        if host.contains('\0') {
            return Err(fail(format!("{host:?} is not a host name")));
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
        match known.check_port(host, port, key) {
            CheckResult::Match => Ok(()),
            CheckResult::Mismatch => Err(fail(format!(
                "the key of {} differs from the one in {}: possible man-in-the-middle, \
                 or the host was reinstalled (remove its line to accept the new key)",
                host,
                file.display()
            ))),
            CheckResult::NotFound if accept_new => {
                let entry = if port == 22 {
                    host.to_string()
                } else {
                    format!("[{}]:{}", host, port)
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
                host,
                file.display()
            ))),
            CheckResult::Failure => Err(fail(format!("cannot check against {}", file.display()))),
        }
    }

    fn authenticate(
        &self,
        session: &Session,
        user: &str,
        command: &str,
    ) -> Result<(), ControlError> {
        let mut tried = Vec::new();
        for key in &self.opts.key_files() {
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
            // libssh2's message never carries the password itself.
            match session.userauth_password(user, password.expose()) {
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

    /// A session error on a node reached through a jump host, with why the
    /// tunnel ended (when it did), naming the jump host.
    fn with_tunnel_failure(&self, conn: &Conn, kind: ErrorKind) -> ErrorKind {
        let (Some(tunnel), Some(jump)) = (&conn.tunnel, &self.opts.proxy_jump) else {
            return kind;
        };
        match (kind, tunnel.failure()) {
            (ErrorKind::Session(m), Some(why)) => {
                ErrorKind::Session(format!("{m} (through jump host {jump}: {why})"))
            }
            (kind, _) => kind,
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
                    let kind = self.with_tunnel_failure(&conn, kind);
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

/// An error met on the way to or at the jump host, saying so: the jump host
/// is named, and a timeout there is a failure to connect (the node itself
/// was never reached).
fn through(jump: &JumpHost, e: ControlError) -> ControlError {
    let at = |m: String| format!("jump host {jump}: {m}");
    let kind = match e.kind {
        ErrorKind::Connect(m) => ErrorKind::Connect(at(m)),
        ErrorKind::HostKey(m) => ErrorKind::HostKey(at(m)),
        ErrorKind::Auth(m) => ErrorKind::Auth(at(m)),
        ErrorKind::Timeout(d) => {
            ErrorKind::Connect(at(format!("no answer within {:.1} s", d.as_secs_f64())))
        }
        kind => kind,
    };
    ControlError { kind, ..e }
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
