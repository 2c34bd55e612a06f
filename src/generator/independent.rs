//! Independent keys: one small generator per key, a few keys at a time.
//!
//! Checking linearizability costs time exponential in the number of
//! operations that overlap on one key, so Jepsen spreads a workload over
//! many keys, each with a bounded number of operations and only a few keys
//! in flight at once (`independent/concurrent-generator`). Each key's
//! history is then small and is checked on its own.

use super::{Context, Emit, Generator};
use crate::history::{Op, OpType};
use serde_json::Value;

/// A per-key generator factory: given a key and its position in the key
/// sequence, the generator of that key's operations (usually an
/// [`OpMix`](super::OpMix) seeded from the test seed and the key number,
/// under a [`limit`](super::limit)).
pub type MakeKeyGen = Box<dyn FnMut(u64, &Value) -> Box<dyn Generator> + Send>;

struct Slot {
    key: Value,
    gen: Box<dyn Generator>,
    /// Operations invoked on this key whose completion we have not heard.
    outstanding: usize,
}

/// Runs one generator per key over a sequence of keys, with at most
/// `in_flight` keys active at once; a key is retired when its generator is
/// done and the next key takes its place. Every operation carries its key.
pub struct Independent {
    keys: Box<dyn Iterator<Item = Value> + Send>,
    next_key_number: u64,
    make: MakeKeyGen,
    in_flight: usize,
    per_key_concurrency: Option<usize>,
    slots: Vec<Slot>,
    cursor: usize,
}

impl Independent {
    /// Over `keys` in order, `in_flight` (at least 1) at a time, each key's
    /// operations from `make(key_number, &key)`.
    pub fn new(
        keys: Box<dyn Iterator<Item = Value> + Send>,
        in_flight: usize,
        make: MakeKeyGen,
    ) -> Independent {
        Independent {
            keys,
            next_key_number: 0,
            make,
            in_flight: in_flight.max(1),
            per_key_concurrency: None,
            slots: Vec::new(),
            cursor: 0,
        }
    }

    /// Keys `0, 1, ..., count-1` as JSON integers.
    pub fn integer_keys(count: u64, in_flight: usize, make: MakeKeyGen) -> Independent {
        Independent::new(Box::new((0..count).map(Value::from)), in_flight, make)
    }

    /// Caps the operations in flight on one key at `cap` (at least 1).
    /// Note this makes the interleaving of keys depend on timing; each
    /// key's own operations stay the same for a given seed.
    pub fn per_key_concurrency(mut self, cap: usize) -> Independent {
        self.per_key_concurrency = Some(cap.max(1));
        self
    }

    fn refill(&mut self) {
        while self.slots.len() < self.in_flight {
            let Some(key) = self.keys.next() else { break };
            let gen = (self.make)(self.next_key_number, &key);
            self.next_key_number += 1;
            self.slots.push(Slot {
                key,
                gen,
                outstanding: 0,
            });
        }
    }
}

impl Generator for Independent {
    fn next(&mut self, ctx: &Context) -> Emit {
        self.refill();
        let mut until = None;
        let mut asked = 0;
        let mut retired = 0;
        // Round-robin over the active keys so that they advance together.
        while asked < self.slots.len() {
            let i = self.cursor % self.slots.len();
            let slot = &mut self.slots[i];
            if self
                .per_key_concurrency
                .is_some_and(|cap| slot.outstanding >= cap)
            {
                self.cursor = i + 1;
                asked += 1;
                continue;
            }
            match slot.gen.next(ctx) {
                Emit::Invoke(op) => {
                    slot.outstanding += 1;
                    let op = op.with_key(slot.key.clone());
                    self.cursor = i + 1;
                    return Emit::Invoke(op);
                }
                Emit::Pending(t) => {
                    until = Emit::earliest(until, t);
                    self.cursor = i + 1;
                    asked += 1;
                }
                Emit::Done => {
                    // Retire the key; its successor (if any) takes the slot
                    // and is asked next without counting as asked.
                    self.slots.swap_remove(i);
                    retired += 1;
                    if retired > 1024 {
                        // Many keys in a row with no operation at all: let
                        // the runner breathe rather than spin here.
                        return Emit::Pending(None);
                    }
                    self.refill();
                    if self.slots.is_empty() {
                        return Emit::Done;
                    }
                    self.cursor = i;
                }
            }
        }
        if self.slots.is_empty() {
            Emit::Done
        } else {
            Emit::Pending(until)
        }
    }

    fn update(&mut self, ctx: &Context, event: &Op) {
        let Some(key) = &event.key else { return };
        if let Some(slot) = self.slots.iter_mut().find(|s| &s.key == key) {
            // Any completion frees the place, `info` included: the process
            // has moved on, and holding the place for ever would stall the
            // key. (For checking, the `info` op stays concurrent anyway.)
            if event.kind != OpType::Invoke {
                slot.outstanding = slot.outstanding.saturating_sub(1);
            }
            slot.gen.update(ctx, event);
        }
    }
}
