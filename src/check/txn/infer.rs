//! What inference hands to the graph: dependency edges with the reason for
//! each, and the anomalies found without any cycle.

/// A kind of dependency between two transactions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Kind {
    /// Write-write: the second overwrote (or appended after) the first.
    Ww = 0,
    /// Write-read: the second read what the first wrote.
    Wr = 1,
    /// Read-write (anti-dependency): the first read a version the second
    /// then overwrote.
    Rw = 2,
    /// Same process, one after the other.
    Process = 3,
    /// The first completed before the second was invoked.
    Realtime = 4,
}

impl Kind {
    /// Every kind, by bit position.
    pub(crate) const ALL: [Kind; 5] = [Kind::Ww, Kind::Wr, Kind::Rw, Kind::Process, Kind::Realtime];

    /// This kind's bit in a kind mask.
    pub(crate) fn bit(self) -> u8 {
        1 << (self as u8)
    }

    /// `ww`, `wr`, `rw`, `process` or `realtime`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Ww => "ww",
            Kind::Wr => "wr",
            Kind::Rw => "rw",
            Kind::Process => "process",
            Kind::Realtime => "realtime",
        }
    }
}

/// Why a data edge exists: the key and the versions involved. For `ww`,
/// `v1` is what the first wrote and `v2` what the second wrote; for `wr`,
/// `v1` is what the first wrote and the second read; for `rw`, `v1` is the
/// version the first read (for list-append: the last element it saw, or
/// [`NIL`](super::parse::NIL) for an empty list) and `v2` what the second
/// wrote next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Why {
    pub key: u32,
    pub v1: u32,
    pub v2: u32,
}

/// An anomaly found without a cycle. Its text names transactions `T1`,
/// `T2`, ... in the order of `txns`.
#[derive(Clone, Debug)]
pub(crate) struct Found {
    pub name: &'static str,
    pub txns: Vec<u32>,
    pub key: Option<u32>,
    pub text: String,
}

/// The outcome of version-order inference.
#[derive(Default)]
pub(crate) struct Inferred {
    /// Data edges `(from, to, kind, why)`, possibly repeated.
    pub edges: Vec<(u32, u32, Kind, Why)>,
    /// Non-cycle anomalies (at most `MAX_PER_NAME` of each name).
    pub found: Vec<Found>,
    /// How many of each name were found, kept or not.
    pub counts: rustc_hash::FxHashMap<&'static str, usize>,
}

/// Caps how many anomalies of one name inference keeps, so that a badly
/// broken history yields a readable report rather than millions of entries.
pub(crate) const MAX_PER_NAME: usize = 64;

impl Inferred {
    /// Records an anomaly unless `MAX_PER_NAME` of its name are already kept;
    /// `counts` tallies every occurrence either way.
    pub(crate) fn push(&mut self, f: Found) {
        let n = self.counts.entry(f.name).or_insert(0);
        *n += 1;
        if *n <= MAX_PER_NAME {
            self.found.push(f);
        }
    }
}

/// Renders a list of interned values as `[1 2 3]`.
pub(crate) fn show_list(atoms: &super::parse::Interner, xs: &[u32]) -> String {
    let parts: Vec<String> = xs.iter().map(|&x| atoms.show(x)).collect();
    format!("[{}]", parts.join(" "))
}
