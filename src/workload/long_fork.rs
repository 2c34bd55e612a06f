//! The long-fork workload (Jepsen's `long-fork`): keys come in groups of
//! `group_size` (group `g` holds keys `g·n .. g·n+n-1`); each key is
//! written exactly once, by a transaction `[["w", k, 1]]`, and reads read
//! a whole group in one transaction, `[["r", k, null], ...]`, keys in
//! random order. `active_groups` groups are in play at once; a group whose
//! keys are all written is replaced by the next. The `long-fork` checker
//! (`check::long_fork`) looks for two reads that saw two writes in
//! opposite orders.

use crate::generator::{Context, Emit, Generator, OpSpec};
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

/// The `[long_fork]` table of a workload file.
#[derive(Clone, Debug, PartialEq)]
pub struct LongForkSpec {
    /// Keys per group.
    pub group_size: u64,
    /// Groups written and read at once.
    pub active_groups: usize,
    /// Probability that an operation is a read of a group.
    pub read_fraction: f64,
}

impl Default for LongForkSpec {
    fn default() -> Self {
        LongForkSpec {
            group_size: 3,
            active_groups: 2,
            read_fraction: 0.5,
        }
    }
}

/// One group in play: its number and its keys not yet written, in the
/// (shuffled) order they will be.
struct Group {
    id: u64,
    unwritten: Vec<u64>,
}

/// Writes of fresh keys and reads of whole groups.
pub struct LongForkGen {
    spec: LongForkSpec,
    groups: Vec<Group>,
    next_group: u64,
    rng: ChaCha8Rng,
}

impl LongForkGen {
    /// A generator from `spec`, drawing from `rng`.
    pub fn new(spec: LongForkSpec, rng: ChaCha8Rng) -> LongForkGen {
        let mut g = LongForkGen {
            spec,
            groups: Vec::new(),
            next_group: 0,
            rng,
        };
        for _ in 0..g.spec.active_groups.max(1) {
            let group = g.fresh();
            g.groups.push(group);
        }
        g
    }

    fn fresh(&mut self) -> Group {
        let n = self.spec.group_size.max(1);
        let id = self.next_group;
        self.next_group += 1;
        let mut unwritten: Vec<u64> = (id * n..id * n + n).collect();
        unwritten.shuffle(&mut self.rng);
        Group { id, unwritten }
    }

    /// The next transaction.
    pub fn draw(&mut self) -> Value {
        let slot = self.rng.random_range(0..self.groups.len());
        let read = self
            .rng
            .random_bool(self.spec.read_fraction.clamp(0.0, 1.0));
        if read {
            let n = self.spec.group_size.max(1);
            let id = self.groups[slot].id;
            let mut keys: Vec<u64> = (id * n..id * n + n).collect();
            keys.shuffle(&mut self.rng);
            return Value::Array(keys.iter().map(|k| json!(["r", k, null])).collect());
        }
        let Some(k) = self.groups[slot].unwritten.pop() else {
            // Not reached: a group is replaced as soon as it is written.
            return json!([]);
        };
        if self.groups[slot].unwritten.is_empty() {
            self.groups[slot] = self.fresh();
        }
        json!([["w", k, 1]])
    }
}

impl Generator for LongForkGen {
    fn next(&mut self, _ctx: &Context) -> Emit {
        Emit::Invoke(OpSpec::new("txn", self.draw()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_key_is_written_once_and_reads_cover_a_group() {
        let spec = LongForkSpec::default();
        let mut g = LongForkGen::new(spec, crate::generator::rng(5, 1));
        let mut written = HashSet::new();
        let mut reads = 0;
        for _ in 0..2000 {
            let t = g.draw();
            let mops = t.as_array().unwrap();
            if mops[0][0] == "w" {
                assert_eq!(mops.len(), 1);
                assert!(written.insert(mops[0][1].as_u64().unwrap()), "{t}");
                continue;
            }
            reads += 1;
            let mut keys: Vec<u64> = mops.iter().map(|m| m[1].as_u64().unwrap()).collect();
            keys.sort_unstable();
            assert_eq!(keys.len(), 3);
            assert_eq!(keys[0] % 3, 0, "a group starts at a multiple of its size");
            assert_eq!(keys, vec![keys[0], keys[0] + 1, keys[0] + 2]);
        }
        assert!(reads > 800 && written.len() > 800);
    }
}
