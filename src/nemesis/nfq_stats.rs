//! What the NFQUEUE packet program (`faultline nfq-packet`,
//! `nfq_delay`) counts and writes to its stats file, and the mark
//! of the duplicates it sends: shared by the program and by the packet
//! nemesis, which reads the counters back on any build (the program itself
//! needs the `nfq` feature).

use serde::{Deserialize, Serialize};

/// The firewall mark of the duplicates the program sends itself; the
/// queue rules skip packets carrying it, so a copy is not queued again.
pub const DUP_MARK: u32 = 0x464c;

/// What the program did, as it writes it to its stats file: counts since
/// it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Seconds since the program started.
    pub elapsed_s: f64,
    /// Packets read from the queue.
    pub packets: u64,
    /// Packets held for the delay.
    pub delayed: u64,
    /// Copies sent.
    pub duplicated: u64,
    /// Packets held back that a later packet overtook.
    pub reordered: u64,
    /// Packets with a bit flipped.
    pub corrupted: u64,
    /// Packets dropped over the rate.
    pub rate_dropped: u64,
}

impl Stats {
    /// Each count divided by the seconds the program ran: what the fault
    /// did per second (`packets`, `duplicated`, ...).
    pub fn per_second(&self) -> serde_json::Value {
        let s = self.elapsed_s.max(1e-3);
        let r = |n: u64| ((n as f64 / s) * 10.0).round() / 10.0;
        serde_json::json!({
            "packets": r(self.packets),
            "delayed": r(self.delayed),
            "duplicated": r(self.duplicated),
            "reordered": r(self.reordered),
            "corrupted": r(self.corrupted),
            "rate_dropped": r(self.rate_dropped),
        })
    }
}

/// Reads a stats file the program wrote; `None` when it does not parse.
pub fn read_stats(text: &str) -> Option<Stats> {
    serde_json::from_str(text.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_round_trip_and_rates() {
        let s = Stats {
            elapsed_s: 2.0,
            packets: 100,
            duplicated: 30,
            ..Stats::default()
        };
        let back = read_stats(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        assert_eq!(s.per_second()["duplicated"], serde_json::json!(15.0));
        assert_eq!(s.per_second()["packets"], serde_json::json!(50.0));
        assert_eq!(read_stats("garbage"), None);
    }
}
