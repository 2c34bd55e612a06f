//! The NFQUEUE delay program behind `faultline nfq-delay`: it reads the
//! packets iptables sends to a queue and lets each one go after a fixed
//! delay. It is faultline's stand-in for netem on kernels without it (the
//! local cluster's), run on the node by [`PacketNemesis`](super::net::PacketNemesis).
//!
//! The rules use `--queue-bypass`, and the queue is opened fail-open, so
//! killing this program (which heal does) or overflowing the queue lets
//! traffic through instead of cutting it.

use std::collections::VecDeque;
use std::io;
use std::time::{Duration, Instant};

use nfq::{Queue, Verdict};

/// How many packets the kernel may hold for us: at 100 ms this allows
/// ~80k packets/s before the queue overflows (and, fail-open, lets the rest
/// through undelayed).
const QUEUE_MAX_LEN: u32 = 8192;

/// Binds queue `queue_num` and delays every packet on it by `delay`, until
/// killed or the queue fails. Needs CAP_NET_ADMIN in the node's network
/// namespace.
pub fn run(queue_num: u16, delay: Duration) -> io::Result<()> {
    let mut q = Queue::open()?;
    q.bind(queue_num)?;
    q.set_queue_max_len(queue_num, QUEUE_MAX_LEN)?;
    q.set_fail_open(queue_num, true)?;
    // Polled, because the crate offers no receive timeout: held packets
    // must go out on time even when nothing new arrives.
    q.set_nonblocking(true);
    let mut held = VecDeque::new();
    loop {
        let now = Instant::now();
        while held
            .front()
            .is_some_and(|(due, _): &(Instant, nfq::Message)| *due <= now)
        {
            if let Some((_, mut msg)) = held.pop_front() {
                msg.set_verdict(Verdict::Accept);
                q.verdict(msg)?;
            }
        }
        match q.recv() {
            Ok(msg) => held.push_back((Instant::now() + delay, msg)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let wait = held
                    .front()
                    .map(|(due, _)| due.saturating_duration_since(now))
                    .unwrap_or(Duration::from_millis(1))
                    .min(Duration::from_millis(1));
                std::thread::sleep(wait);
            }
            Err(e) => return Err(e),
        }
    }
}
