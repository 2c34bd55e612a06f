//! Collapsing repeated warnings: while a node is down every worker on it
//! fails to open its client again and again with the same error, and a
//! line each would bury the run's output. The first of each (node, error)
//! is logged at once; the repeats are counted and logged once, with the
//! count, when the workers stop.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Counts of warnings by (node, error), shared by a run's workers.
#[derive(Debug, Default)]
pub struct Collapsed {
    seen: Mutex<BTreeMap<(String, String), u64>>,
}

impl Collapsed {
    /// Counts one occurrence of `error` on `node`; true when it is the
    /// first (the caller logs it).
    pub fn first(&self, node: &str, error: &str) -> bool {
        let Ok(mut seen) = self.seen.lock() else {
            return true;
        };
        let n = seen
            .entry((node.to_string(), error.to_string()))
            .or_insert(0);
        *n += 1;
        *n == 1
    }

    /// Each (node, error) that happened more than once, with its count, in
    /// node then error order.
    pub fn repeated(&self) -> Vec<(String, String, u64)> {
        let Ok(seen) = self.seen.lock() else {
            return Vec::new();
        };
        seen.iter()
            .filter(|(_, &n)| n > 1)
            .map(|((node, error), &n)| (node.clone(), error.clone(), n))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::Collapsed;

    #[test]
    fn the_first_of_each_node_and_error_is_shown_and_repeats_are_counted() {
        let c = Collapsed::default();
        assert!(c.first("n1", "connection refused"));
        for _ in 0..36 {
            assert!(!c.first("n1", "connection refused"));
        }
        assert!(c.first("n2", "connection refused"));
        assert!(c.first("n1", "timeout"));
        assert!(!c.first("n1", "timeout"));
        assert_eq!(
            c.repeated(),
            vec![
                ("n1".to_string(), "connection refused".to_string(), 37),
                ("n1".to_string(), "timeout".to_string(), 2),
            ]
        );
    }
}
