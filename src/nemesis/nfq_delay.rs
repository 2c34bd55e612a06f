//! The NFQUEUE packet program behind `faultline nfq-packet`: it reads the
//! packets iptables sends to a queue (everything a node sends to its peers)
//! and, per packet, delays, duplicates, reorders, corrupts or drops it over
//! a rate. It is faultline's one mechanism for packet faults other than
//! loss on kernels without netem (the local cluster's), run on the node by
//! [`PacketNemesis`](super::net::PacketNemesis), which reads back what it
//! counted ([`Stats`]) when the fault stops.
//!
//! The rules use `--queue-bypass`, and the queue is opened fail-open, so
//! killing this program (which heal does) or overflowing the queue lets
//! traffic through instead of cutting it. Duplicates are sent through a raw
//! socket with [`DUP_MARK`], which the rules skip, so a copy is not queued
//! again.

use std::collections::VecDeque;
use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nfq::{Queue, Verdict};
use rand::Rng;

use super::nfq_stats::{Stats, DUP_MARK};

/// How many packets the kernel may hold for us: at 100 ms this allows
/// ~80k packets/s before the queue overflows (and, fail-open, lets the rest
/// through undelayed).
const QUEUE_MAX_LEN: u32 = 8192;

/// The longest a packet picked for reordering waits for a later one to
/// overtake it; when none comes, it goes out in order (and is not counted).
pub const REORDER_MAX_HOLD: Duration = Duration::from_millis(50);

/// How often the counters are written to the stats file.
const STATS_EVERY: Duration = Duration::from_millis(100);

/// What to do to the queued packets. Probabilities are in (0, 1].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Modes {
    /// Hold every packet this long.
    pub delay: Duration,
    /// Send this fraction twice.
    pub duplicate: Option<f64>,
    /// Hold this fraction back until a later packet has gone out.
    pub reorder: Option<f64>,
    /// Flip one bit of this fraction, past the IP header, so the receiver's
    /// checksum rejects them.
    pub corrupt: Option<f64>,
    /// Let through at most this many kilobits per second (a token bucket
    /// holding 10 ms of it, at least one full-sized packet); drop the rest.
    pub rate_kbit: Option<u64>,
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_term(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// A packet on its way: when it is due out, and whether it was picked to be
/// overtaken.
struct Held {
    due: Instant,
    msg: nfq::Message,
    /// `Some(n)`: held for reordering when `n` packets had gone out.
    reorder_mark: Option<u64>,
}

/// Sends copies of IPv4 packets, marked [`DUP_MARK`].
struct Duplicator {
    fd: libc::c_int,
}

impl Duplicator {
    fn open() -> io::Result<Duplicator> {
        // SAFETY: plain socket(2); the result is checked.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let d = Duplicator { fd };
        let mark: libc::c_int = DUP_MARK as libc::c_int;
        // SAFETY: setsockopt(2) with a pointer to a live c_int and its size.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_MARK,
                &mark as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(d)
    }

    /// Sends `packet` (a whole IPv4 packet, header included) again.
    fn send(&self, packet: &[u8]) -> io::Result<()> {
        let dst = ipv4_dst(packet)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "not an IPv4 packet"))?;
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes(dst.octets()),
            },
            sin_zero: [0; 8],
        };
        // SAFETY: sendto(2) with a live buffer and sockaddr_in of their sizes.
        let rc = unsafe {
            libc::sendto(
                self.fd,
                packet.as_ptr() as *const libc::c_void,
                packet.len(),
                0,
                &addr as *const libc::sockaddr_in as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl Drop for Duplicator {
    fn drop(&mut self) {
        // SAFETY: closes the descriptor this value owns, once.
        unsafe { libc::close(self.fd) };
    }
}

/// The destination of an IPv4 packet.
fn ipv4_dst(p: &[u8]) -> Option<Ipv4Addr> {
    if p.len() < 20 || p[0] >> 4 != 4 {
        return None;
    }
    Some(Ipv4Addr::new(p[16], p[17], p[18], p[19]))
}

/// The byte to corrupt in `p`: past the IP header and the first 8 bytes of
/// the transport header (ports, UDP length) when the packet is long
/// enough, so the packet still reaches the peer's transport layer and is
/// dropped there for its checksum; `None` for a packet with no payload.
pub fn corrupt_at(p: &[u8], pick: usize) -> Option<usize> {
    if p.len() < 20 {
        return None;
    }
    let ihl = usize::from(p[0] & 0x0f) * 4;
    if ihl < 20 || p.len() <= ihl {
        return None;
    }
    let first = if p.len() > ihl + 8 { ihl + 8 } else { ihl };
    Some(first + pick % (p.len() - first))
}

/// A token bucket in bytes.
struct Bucket {
    rate_bytes_s: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn new(rate_kbit: u64) -> Bucket {
        let rate_bytes_s = rate_kbit as f64 * 1000.0 / 8.0;
        let burst = (rate_bytes_s / 100.0).max(1514.0);
        Bucket {
            rate_bytes_s,
            burst,
            tokens: burst,
            at: Instant::now(),
        }
    }

    /// Whether a packet of `len` bytes may go now (taking its tokens).
    fn take(&mut self, len: usize, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + dt * self.rate_bytes_s).min(self.burst);
        // A packet larger than the bucket passes when the bucket is full.
        if self.tokens >= (len as f64).min(self.burst) {
            self.tokens -= len as f64;
            true
        } else {
            false
        }
    }
}

fn write_stats(path: &Path, stats: &Stats) -> io::Result<()> {
    let tmp: PathBuf = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec(stats).map_err(io::Error::other)?)?;
    std::fs::rename(&tmp, path)
}

/// Binds queue `queue_num` and applies `modes` to every packet on it, until
/// SIGTERM (which lets every held packet go and writes the counters last)
/// or SIGKILL, or the queue fails. Writes its counters to `stats` every
/// 100 ms when given. Needs CAP_NET_ADMIN (and CAP_NET_RAW for duplicates)
/// in the node's network namespace.
pub fn run(queue_num: u16, modes: Modes, stats_path: Option<&Path>) -> io::Result<()> {
    // SAFETY: installs a handler that only stores to an atomic.
    unsafe {
        libc::signal(
            libc::SIGTERM,
            on_term as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
    }
    let dup = match modes.duplicate {
        Some(_) => Some(Duplicator::open()?),
        None => None,
    };
    let mut q = Queue::open()?;
    q.bind(queue_num)?;
    q.set_queue_max_len(queue_num, QUEUE_MAX_LEN)?;
    q.set_fail_open(queue_num, true)?;
    // Polled, because the crate offers no receive timeout: held packets
    // must go out on time even when nothing new arrives.
    q.set_nonblocking(true);
    let mut rng = rand::rng();
    let mut bucket = modes.rate_kbit.map(Bucket::new);
    let started = Instant::now();
    let mut stats = Stats::default();
    let mut written = started;
    // In arrival order, each due `delay` after arrival: FIFO by due time.
    let mut held: VecDeque<Held> = VecDeque::new();
    // Picked for reordering: out after the next packet, or at their due.
    let mut back: VecDeque<Held> = VecDeque::new();
    // Packets let out so far, to tell whether a held one was overtaken.
    let mut sent: u64 = 0;
    let mut release = |q: &mut Queue, h: Held, sent: &mut u64, stats: &mut Stats| {
        let copy = dup.as_ref().and_then(|_| {
            let p = modes.duplicate?;
            rng.random_bool(p).then(|| h.msg.get_payload().to_vec())
        });
        if let Some(mark) = h.reorder_mark {
            if *sent > mark {
                stats.reordered += 1;
            }
        }
        let mut msg = h.msg;
        msg.set_verdict(Verdict::Accept);
        q.verdict(msg)?;
        *sent += 1;
        if let (Some(d), Some(p)) = (&dup, copy) {
            if d.send(&p).is_ok() {
                stats.duplicated += 1;
            }
        }
        Ok::<_, io::Error>(())
    };
    let mut pick = rand::rng();
    loop {
        let now = Instant::now();
        let stopping = STOP.load(Ordering::SeqCst);
        while held.front().is_some_and(|h| h.due <= now || stopping) {
            if let Some(h) = held.pop_front() {
                release(&mut q, h, &mut sent, &mut stats)?;
                // A packet went out: those held back behind it follow.
                while let Some(b) = back.pop_front() {
                    release(&mut q, b, &mut sent, &mut stats)?;
                }
            }
        }
        while back.front().is_some_and(|b| b.due <= now || stopping) {
            if let Some(b) = back.pop_front() {
                release(&mut q, b, &mut sent, &mut stats)?;
            }
        }
        if let Some(path) = stats_path {
            if stopping || now.duration_since(written) >= STATS_EVERY {
                stats.elapsed_s = now.duration_since(started).as_secs_f64();
                write_stats(path, &stats)?;
                written = now;
            }
        }
        if stopping {
            return Ok(());
        }
        match q.recv() {
            Ok(mut msg) => {
                stats.packets += 1;
                if let Some(b) = &mut bucket {
                    if !b.take(msg.get_payload().len(), now) {
                        stats.rate_dropped += 1;
                        msg.set_verdict(Verdict::Drop);
                        q.verdict(msg)?;
                        continue;
                    }
                }
                if modes.corrupt.is_some_and(|p| pick.random_bool(p)) {
                    let at = corrupt_at(msg.get_payload(), pick.random::<u32>() as usize);
                    if let Some(i) = at {
                        let bit = 1u8 << pick.random_range(0..8);
                        msg.get_payload_mut()[i] ^= bit;
                        stats.corrupted += 1;
                    }
                }
                if modes.reorder.is_some_and(|p| pick.random_bool(p)) {
                    back.push_back(Held {
                        due: now + modes.delay + REORDER_MAX_HOLD,
                        msg,
                        reorder_mark: Some(sent),
                    });
                } else if modes.delay.is_zero() && back.is_empty() {
                    release(
                        &mut q,
                        Held {
                            due: now,
                            msg,
                            reorder_mark: None,
                        },
                        &mut sent,
                        &mut stats,
                    )?;
                } else {
                    if !modes.delay.is_zero() {
                        stats.delayed += 1;
                    }
                    held.push_back(Held {
                        due: now + modes.delay,
                        msg,
                        reorder_mark: None,
                    });
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let next = held
                    .front()
                    .map(|h| h.due)
                    .into_iter()
                    .chain(back.front().map(|b| b.due))
                    .min();
                let wait = next
                    .map(|due| due.saturating_duration_since(now))
                    .unwrap_or(Duration::from_millis(1))
                    .min(Duration::from_millis(1));
                std::thread::sleep(wait);
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corruption_lands_past_the_headers_it_would_misroute() {
        // A 20-byte IP header, an 8-byte UDP header, 4 bytes of data.
        let mut p = vec![0u8; 32];
        p[0] = 0x45;
        for pick in 0..100 {
            let at = corrupt_at(&p, pick).unwrap();
            assert!((28..32).contains(&at), "{at}");
        }
        // No data past the transport header's first 8 bytes: anywhere in it.
        let short = &p[..28];
        assert!((20..28).contains(&corrupt_at(short, 3).unwrap()));
        // An IP header alone, or no IPv4 at all: nothing to corrupt.
        assert_eq!(corrupt_at(&p[..20], 0), None);
        assert_eq!(corrupt_at(&p[..10], 0), None);
    }

    #[test]
    fn the_bucket_passes_the_rate_and_drops_the_rest() {
        // 80 kbit/s = 10 000 bytes/s; bucket: one full-sized packet.
        let mut b = Bucket::new(80);
        let t0 = b.at;
        let mut passed = 0;
        // 1000 packets of 100 bytes over one second: 100 000 bytes offered.
        for i in 0..1000u64 {
            if b.take(100, t0 + Duration::from_millis(i)) {
                passed += 1;
            }
        }
        // 10 000 bytes/s plus the initial 1514-byte bucket.
        assert!((100..=116).contains(&passed), "{passed}");
    }
}
