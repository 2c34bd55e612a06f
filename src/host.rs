//! Facts about the machine this process runs on, read from `/proc`: the
//! memory budget callers give the checkers (the checker core never reads
//! the machine itself) and this process's peak memory.

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

/// Peak resident memory of this process (VmHWM), in MiB.
pub fn peak_rss_mib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace()
        .nth(1)?
        .parse::<u64>()
        .ok()
        .map(|k| k / 1024)
}

#[cfg(test)]
mod tests {
    #[test]
    fn memory_limit_is_positive_and_at_most_16_gib() {
        let m = super::memory_limit();
        assert!(m > 0 && m <= 16 << 30, "{m}");
    }
}
