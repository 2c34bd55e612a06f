//! The tunnel through a jump host (`--ssh-proxy-jump`, OpenSSH's `-J`).
//!
//! [`super::SshRemote`] logs in to the jump host, opens a `direct-tcpip`
//! channel from there to the node's SSH port, and runs the node's own SSH
//! session over that channel. libssh2 drives a session over a file
//! descriptor, not over another session's channel, so the channel is
//! bridged to one end of a Unix socket pair (no port to pick, nothing else
//! can connect to it) and the node's session gets the other end. A thread
//! per tunnel ([`spawn`]) owns the jump host's session and pumps bytes both
//! ways, waiting with `poll` on both sockets.
//!
//! It ends, and closes its end of the pair (so the node's session sees the
//! connection close instead of waiting), when the node's session is dropped
//! (its end reads EOF), when the node closes the channel, or when the jump
//! host's session fails; then [`Tunnel::failure`] says why, for the error
//! of the command that was running. It never blocks without a bound: every
//! wait is a `poll` of at most a second, between which the jump host's
//! session sends its keepalives.

use std::io::{ErrorKind as IoKind, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ssh2::{BlockDirections, Channel, Session};

/// The node's side of a tunnel: why it ended, once it has.
pub(super) struct Tunnel {
    ended: Arc<Mutex<Option<String>>>,
}

impl Tunnel {
    /// Why the tunnel ended on the jump host's side (its session failed, or
    /// the node closed the channel), if it has.
    pub(super) fn failure(&self) -> Option<String> {
        match self.ended.lock() {
            Ok(e) => e.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// Starts the pump between `channel` (opened on the jump host's `session`,
/// whose socket is `jump_fd`) and a new socket pair; returns the end the
/// node's session runs over. `jump` names the jump host in what the tunnel
/// reports.
pub(super) fn spawn(
    session: Session,
    channel: Channel,
    jump_fd: RawFd,
    jump: String,
    keepalive: Duration,
) -> std::io::Result<(UnixStream, Tunnel)> {
    let (node_end, pump_end) = UnixStream::pair()?;
    pump_end.set_nonblocking(true)?;
    session.set_blocking(false);
    let ended = Arc::new(Mutex::new(None));
    let record = Arc::clone(&ended);
    std::thread::Builder::new()
        .name(format!("ssh-jump-{jump}"))
        .spawn(move || {
            let mut pump = Pump {
                local: pump_end,
                session,
                channel,
                jump_fd,
                keepalive,
            };
            if let Some(why) = pump.run() {
                tracing::debug!("tunnel through jump host {jump} ended: {why}");
                match record.lock() {
                    Ok(mut e) => *e = Some(why),
                    Err(poisoned) => *poisoned.into_inner() = Some(why),
                }
            }
            // Freed in blocking mode with a short timeout: in non-blocking
            // mode libssh2 may give up half-way and leak the session. The
            // pair's end goes first (the fields' order), so the node's
            // session reads EOF at once.
            pump.session.set_blocking(true);
            pump.session.set_timeout(300);
        })?;
    Ok((node_end, Tunnel { ended }))
}

/// What a tunnel's thread owns. Fields drop in this order: the pair's end
/// first.
struct Pump {
    local: UnixStream,
    channel: Channel,
    session: Session,
    jump_fd: RawFd,
    keepalive: Duration,
}

impl Pump {
    /// Carries bytes both ways until one side ends. Returns why it ended,
    /// unless it ended because the node's session was dropped (the normal
    /// end).
    fn run(&mut self) -> Option<String> {
        let mut to_channel: Vec<u8> = Vec::new();
        let mut to_local: Vec<u8> = Vec::new();
        let mut buf = vec![0u8; 32 * 1024];
        self.session
            .set_keepalive(true, self.keepalive.as_secs().max(1) as u32);
        let mut next_keepalive = Instant::now() + self.keepalive;
        loop {
            let mut progressed = false;
            // The node's session → the channel.
            if to_channel.is_empty() {
                match self.local.read(&mut buf) {
                    Ok(0) => {
                        // The node's session is gone: nothing more to carry.
                        let _ = self.channel.send_eof();
                        let _ = self.channel.close();
                        return None;
                    }
                    Ok(n) => {
                        to_channel.extend_from_slice(&buf[..n]);
                        progressed = true;
                    }
                    Err(e) if would_block(&e) => {}
                    Err(_) => return None,
                }
            }
            if !to_channel.is_empty() {
                match self.channel.write(&to_channel) {
                    Ok(n) => {
                        to_channel.drain(..n);
                        progressed |= n > 0;
                    }
                    Err(e) if would_block(&e) => {}
                    Err(e) => return Some(format!("the jump host's session failed: {e}")),
                }
            }
            // The channel → the node's session.
            if to_local.is_empty() {
                match self.channel.read(&mut buf) {
                    // libssh2 may say 0 without an EOF: only an EOF ends it.
                    Ok(0) if self.channel.eof() => {
                        return Some("the connection to the node was closed".into())
                    }
                    Ok(0) => {}
                    Ok(n) => {
                        to_local.extend_from_slice(&buf[..n]);
                        progressed = true;
                    }
                    Err(e) if would_block(&e) => {}
                    Err(e) => return Some(format!("the jump host's session failed: {e}")),
                }
            }
            if !to_local.is_empty() {
                match self.local.write(&to_local) {
                    Ok(n) => {
                        to_local.drain(..n);
                        progressed |= n > 0;
                    }
                    Err(e) if would_block(&e) => {}
                    Err(_) => return None,
                }
            }
            if progressed {
                continue;
            }
            let now = Instant::now();
            if now >= next_keepalive {
                match self.session.keepalive_send() {
                    Ok(secs) => next_keepalive = now + Duration::from_secs(u64::from(secs.max(1))),
                    Err(e) if e.code() == ssh2::ErrorCode::Session(-37) => {
                        next_keepalive = now + Duration::from_secs(1)
                    }
                    Err(e) => return Some(format!("the jump host's session failed: {e}")),
                }
            }
            let wait = next_keepalive
                .saturating_duration_since(Instant::now())
                .clamp(Duration::from_millis(1), Duration::from_secs(1));
            let want = Want {
                read_local: to_channel.is_empty(),
                write_local: !to_local.is_empty(),
                read_channel: to_local.is_empty(),
            };
            if let Some(why) = self.wait(want, wait) {
                return why;
            }
        }
    }

    /// Waits until either socket can move what `want` says, or `wait`
    /// passes. `Some` ends the pump: a socket hung up with nothing left to
    /// read. Only what can be moved is waited for, so a side that cannot
    /// take more never makes the wait return at once, over and over.
    fn wait(&self, want: Want, wait: Duration) -> Option<Option<String>> {
        let mut jump_events = 0;
        match self.session.block_directions() {
            BlockDirections::Outbound => jump_events |= libc::POLLOUT,
            BlockDirections::Both => jump_events |= libc::POLLOUT | libc::POLLIN,
            BlockDirections::Inbound => jump_events |= libc::POLLIN,
            BlockDirections::None => {}
        }
        if want.read_channel {
            jump_events |= libc::POLLIN;
        }
        let mut local_events = 0;
        if want.read_local {
            local_events |= libc::POLLIN;
        }
        if want.write_local {
            local_events |= libc::POLLOUT;
        }
        let mut fds = [
            libc::pollfd {
                fd: self.jump_fd,
                events: jump_events,
                revents: 0,
            },
            libc::pollfd {
                fd: self.local.as_raw_fd(),
                events: local_events,
                revents: 0,
            },
        ];
        // SAFETY: `fds` is a valid array of two pollfds for the call; both
        // fds belong to sockets this pump owns (the jump host's session
        // holds its TCP stream), alive as long as `self`.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, wait.as_millis().max(1) as libc::c_int) };
        if n <= 0 {
            return None;
        }
        let hung = libc::POLLHUP | libc::POLLERR;
        // A hang-up with data still to read is read first, on the next turn.
        if fds[1].revents & hung != 0 && fds[1].revents & libc::POLLIN == 0 {
            return Some(None);
        }
        if fds[0].revents & hung != 0 && fds[0].revents & libc::POLLIN == 0 {
            return Some(Some("the connection to the jump host was lost".into()));
        }
        None
    }
}

/// What a pump waits for.
struct Want {
    /// The node's session may send (nothing is waiting for the channel).
    read_local: bool,
    /// Bytes from the node wait for the node's session.
    write_local: bool,
    /// The channel may deliver (nothing is waiting for the node's session).
    read_channel: bool,
}

fn would_block(e: &std::io::Error) -> bool {
    matches!(e.kind(), IoKind::WouldBlock | IoKind::Interrupted)
}
