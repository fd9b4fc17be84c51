//! The committed state: every pair whose write is on every active server.
//!
//! The frontend applies a write here only once it has committed (see
//! [`crate::replication`]), in sequence order, and answers every `get` from
//! it, so a read never sees a write before that write is fully replicated
//! and never sees an older value after a newer one was acknowledged. It is
//! also the source of the snapshot a joining server receives.

use dashmap::DashMap;
use kvs_proto::{Entry, Key, Value};

/// Committed pairs with the version (sequence number) of the write that set them.
#[derive(Debug, Default)]
pub struct Committed {
    pairs: DashMap<Key, (Value, u64)>,
}

impl Committed {
    /// Records a committed write. Commits arrive in sequence order, so the
    /// newest always lands last.
    pub fn apply(&self, entry: &Entry) {
        self.pairs.insert(entry.key, (entry.value, entry.version));
    }

    pub fn get(&self, key: Key) -> Option<Value> {
        self.pairs.get(&key).map(|pair| pair.0)
    }

    /// Every committed pair as a versioned entry, for a joining server.
    pub fn snapshot(&self) -> Vec<Entry> {
        self.pairs
            .iter()
            .map(|pair| Entry {
                key: *pair.key(),
                value: pair.value().0,
                version: pair.value().1,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_carries_versions() {
        let committed = Committed::default();
        committed.apply(&Entry {
            key: 1,
            value: 10,
            version: 4,
        });
        committed.apply(&Entry {
            key: 1,
            value: 11,
            version: 5,
        });
        assert_eq!(committed.get(1), Some(11));
        assert_eq!(
            committed.snapshot(),
            vec![Entry {
                key: 1,
                value: 11,
                version: 5
            }]
        );
    }
}
