//! The key-value operations the etcd, ZooKeeper and Redis clients share:
//! what a workload's keys hold ([`DataKind`]).

/// What a workload's keys hold, which decides what `read` means.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DataKind {
    /// Registers: `read`, `write`, `cas` (one key of the store per faultline key).
    #[default]
    Register,
    /// Sets: `add` an element, `read` the whole set.
    Set,
    /// Lists of the `list-append` workload: `txn` of `append` and `r`.
    List,
    /// Registers of the `rw-register` workload: `txn` of `w` and `r`.
    RwRegister,
    /// Counters: `add` (a compare-and-set loop), `read` (see `classic.rs`).
    Counter,
    /// An id source: `generate` (a put's revision; see `classic.rs`).
    UniqueIds,
}

impl DataKind {
    /// The kind a checker model works on: sets for `set`, lists for
    /// `list-append`, transactional registers for `rw-register`, counters
    /// for `counter`, ids for `unique-ids`, registers otherwise (as
    /// `system::memory`'s `MemoryDb::for_model`).
    pub fn for_model(model: &str) -> DataKind {
        match model {
            "set" => DataKind::Set,
            "list-append" => DataKind::List,
            "rw-register" => DataKind::RwRegister,
            "counter" => DataKind::Counter,
            "unique-ids" => DataKind::UniqueIds,
            _ => DataKind::Register,
        }
    }
}
