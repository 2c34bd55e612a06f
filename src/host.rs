//! Facts about the machine this process runs on, read from `/proc`: the
//! memory budget callers give the checkers (the checker core never reads
//! the machine itself), this process's resident memory (the reader the
//! linearizability search polls to hold the whole process to that
//! budget) and its peak memory.

/// Half of the machine's available memory (`MemAvailable` in
/// /proc/meminfo), at most 16 GiB; the checker's default
/// ([`crate::check::linear::DEFAULT_MEMORY_LIMIT`]) when it cannot be read.
pub fn memory_limit() -> usize {
    let avail_kib = std::fs::read_to_string("/proc/meminfo").ok().and_then(|s| {
        s.lines()
            .find(|l| l.starts_with("MemAvailable:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse::<usize>().ok())
    });
    match avail_kib {
        Some(k) => (k * 1024 / 2).min(16 << 30),
        None => crate::check::linear::DEFAULT_MEMORY_LIMIT,
    }
}

/// This process's resident memory now (VmRSS), in bytes. Cheap enough
/// to poll every few thousand search steps.
pub fn resident_bytes() -> Option<usize> {
    status_kib("VmRSS:").map(|k| k * 1024)
}

/// A `kB` field of /proc/self/status.
fn status_kib(field: &str) -> Option<usize> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Peak resident memory of this process (VmHWM), in MiB.
pub fn peak_rss_mib() -> Option<u64> {
    status_kib("VmHWM:").map(|k| k as u64 / 1024)
}

#[cfg(test)]
mod tests {
    #[test]
    fn memory_limit_is_positive_and_at_most_16_gib() {
        let m = super::memory_limit();
        assert!(m > 0 && m <= 16 << 30, "{m}");
    }

    #[test]
    fn resident_memory_grows_with_a_touched_allocation() {
        let before = super::resident_bytes().expect("statm readable");
        let block = vec![1u8; 64 << 20];
        let after = super::resident_bytes().expect("statm readable");
        assert!(
            after >= before + (48 << 20),
            "{before} -> {after} with {} bytes touched",
            block.iter().map(|b| *b as usize).sum::<usize>()
        );
    }
}
