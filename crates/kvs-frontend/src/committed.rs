//! The committed state: every pair whose write is on every active server.
//!
//! The frontend applies a write here only once it has committed (see
//! [`crate::replication`]), in sequence order, and answers every `get` from
//! it, so a read never sees a write before that write is fully replicated
//! and never sees an older value after a newer one was acknowledged. It is
//! also the source of the snapshot a joining server receives.

use std::collections::BTreeMap;

use dashmap::DashMap;
use kvs_proto::digest::Digests;
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

    /// Keeps `entry` if it is newer than what the key holds (rebuilding the
    /// state from several servers after a frontend restart).
    pub fn merge(&self, entry: &Entry) {
        self.pairs
            .entry(entry.key)
            .and_modify(|current| {
                if entry.version > current.1 {
                    *current = (entry.value, entry.version);
                }
            })
            .or_insert((entry.value, entry.version));
    }

    pub fn get(&self, key: Key) -> Option<Value> {
        self.pairs.get(&key).map(|pair| pair.0)
    }

    /// The digests of every committed pair by key range (for the scrub).
    pub fn digests(&self) -> Digests {
        let mut digests = Digests::default();
        for pair in &self.pairs {
            digests.add(*pair.key(), pair.value().0);
        }
        digests
    }

    /// The committed pairs with keys in `first ..= last`.
    pub fn range(&self, first: Key, last: Key) -> BTreeMap<Key, (Value, u64)> {
        self.pairs
            .iter()
            .filter(|pair| (first..=last).contains(pair.key()))
            .map(|pair| (*pair.key(), *pair.value()))
            .collect()
    }

    /// The committed pairs of `keys` (those that hold one), as versioned entries.
    pub fn entries_of(&self, keys: &[Key]) -> Vec<Entry> {
        keys.iter()
            .filter_map(|key| {
                let pair = self.pairs.get(key)?;
                let (value, version) = *pair;
                Some(Entry {
                    key: *key,
                    value,
                    version,
                })
            })
            .collect()
    }

    /// How many keys hold a committed value.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether no key holds a committed value.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Every committed pair as a versioned entry, for a joining server,
    /// ordered by key: the same chunks whatever the hash order, so a
    /// simulation replays a catch-up exactly.
    pub fn snapshot(&self) -> Vec<Entry> {
        let mut entries: Vec<Entry> = self
            .pairs
            .iter()
            .map(|pair| Entry {
                key: *pair.key(),
                value: pair.value().0,
                version: pair.value().1,
            })
            .collect();
        entries.sort_unstable_by_key(|entry| entry.key);
        entries
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

    #[test]
    fn merge_keeps_the_newest_version() {
        let committed = Committed::default();
        committed.merge(&Entry {
            key: 1,
            value: 10,
            version: 9,
        });
        committed.merge(&Entry {
            key: 1,
            value: 11,
            version: 5,
        });
        committed.merge(&Entry {
            key: 2,
            value: 20,
            version: 1,
        });
        assert_eq!(committed.get(1), Some(10));
        assert_eq!(committed.get(2), Some(20));
    }
}
