//! The bank workload (Jepsen's `bank`): `accounts` accounts start with
//! `total` between them; `transfer` moves a random amount between two
//! distinct accounts, `read` reads every balance. The `bank` checker
//! (`check::bank`) holds every read to the total.

use crate::check::bank::BankOptions;
use crate::generator::{Context, Emit, Generator, OpMix, OpSpec};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

/// The `[bank]` table of a workload file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BankSpec {
    /// Accounts `0..accounts`.
    pub accounts: u64,
    /// The money in the bank, split evenly at the start (the remainder in
    /// account 0).
    pub total: i64,
    /// Each transfer moves `1..=max_transfer`.
    pub max_transfer: i64,
    /// Balances may go below zero (otherwise a transfer that would
    /// overdraw fails).
    pub negative_balances: bool,
}

impl Default for BankSpec {
    fn default() -> Self {
        BankSpec {
            accounts: 5,
            total: 100,
            max_transfer: 5,
            negative_balances: false,
        }
    }
}

impl BankSpec {
    /// The opening balance of each account.
    pub fn initial_balances(&self) -> Vec<i64> {
        let n = self.accounts.max(1) as i64;
        let mut b = vec![self.total / n; n as usize];
        b[0] += self.total % n;
        b
    }

    /// What the checker needs to know.
    pub fn check_options(&self) -> BankOptions {
        BankOptions {
            total: Some(self.total),
            negative_balances: self.negative_balances,
        }
    }
}

/// Transfers and reads, in the proportions of the workload's `[ops]`.
pub struct BankGen {
    spec: BankSpec,
    mix: OpMix,
    rng: ChaCha8Rng,
}

impl BankGen {
    /// Draws functions from `mix` (whose values are ignored) and transfers
    /// from `rng`.
    pub fn new(spec: BankSpec, mix: OpMix, rng: ChaCha8Rng) -> BankGen {
        BankGen { spec, mix, rng }
    }

    /// The next operation.
    pub fn draw(&mut self) -> OpSpec {
        let mut op = self.mix.draw();
        if op.f == "transfer" {
            let n = self.spec.accounts.max(2);
            let from = self.rng.random_range(0..n);
            // Any account but `from`.
            let to = (from + self.rng.random_range(1..n)) % n;
            let amount = self.rng.random_range(1..=self.spec.max_transfer.max(1));
            op.value = json!({"from": from, "to": to, "amount": amount});
        } else {
            op.value = serde_json::Value::Null;
        }
        op
    }
}

impl Generator for BankGen {
    fn next(&mut self, _ctx: &Context) -> Emit {
        Emit::Invoke(self.draw())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generator::{rng, Dist, ValueShape};

    #[test]
    fn transfers_are_between_distinct_accounts_within_bounds() {
        let spec = BankSpec {
            accounts: 3,
            ..BankSpec::default()
        };
        let mix = OpMix::new(
            vec![
                ("transfer".into(), 3, ValueShape::Null),
                ("read".into(), 1, ValueShape::Null),
            ],
            Dist::Uniform { n: 1 },
            rng(1, 2),
        )
        .unwrap();
        let mut g = BankGen::new(spec, mix, rng(1, 3));
        let (mut transfers, mut reads) = (0, 0);
        for _ in 0..1000 {
            let op = g.draw();
            if op.f == "read" {
                reads += 1;
                assert!(op.value.is_null());
                continue;
            }
            transfers += 1;
            let (from, to, amount) = (
                op.value["from"].as_u64().unwrap(),
                op.value["to"].as_u64().unwrap(),
                op.value["amount"].as_i64().unwrap(),
            );
            assert!(from < 3 && to < 3 && from != to, "{}", op.value);
            assert!((1..=5).contains(&amount));
        }
        assert!(transfers > 600 && reads > 150, "{transfers} {reads}");
    }

    #[test]
    fn initial_balances_add_up() {
        let s = BankSpec {
            accounts: 3,
            total: 100,
            ..BankSpec::default()
        };
        assert_eq!(s.initial_balances(), vec![34, 33, 33]);
        assert_eq!(s.check_options().total, Some(100));
    }
}
