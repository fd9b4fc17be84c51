//! The replica's key-value pairs, each with the version that wrote it.
//!
//! Writes from the frontend carry versions (its sequence numbers) and a key
//! keeps the highest-versioned value it has seen, so the order in which
//! batches and snapshot chunks arrive does not matter. Sharded (DashMap), so
//! concurrent batches and reads do not serialise on one lock.

use dashmap::DashMap;
use kvs_proto::{Entry, Key, Value};

/// A value and the version of the write that set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Versioned {
    value: Value,
    version: u64,
}

/// The replica's state.
#[derive(Debug, Default)]
pub struct Store {
    pairs: DashMap<Key, Versioned>,
}

impl Store {
    /// Applies one replicated write if it is newer than what the key holds.
    pub fn apply(&self, entry: Entry) {
        let incoming = Versioned {
            value: entry.value,
            version: entry.version,
        };
        self.pairs
            .entry(entry.key)
            .and_modify(|current| {
                if incoming.version > current.version {
                    *current = incoming;
                }
            })
            .or_insert(incoming);
    }

    /// A local write (the course skeleton's `put`): it keeps the key's
    /// version, so any later replicated write still replaces it.
    pub fn put_local(&self, key: Key, value: Value) {
        self.pairs
            .entry(key)
            .and_modify(|current| current.value = value)
            .or_insert(Versioned { value, version: 0 });
    }

    pub fn get(&self, key: Key) -> Option<Value> {
        self.pairs.get(&key).map(|v| v.value)
    }

    /// Drops every pair; returns how many there were.
    pub fn clear(&self) -> usize {
        let dropped = self.pairs.len();
        self.pairs.clear();
        dropped
    }

    /// Up to `limit` versioned pairs with key ≥ `start`, ordered by key.
    pub fn page_from(&self, start: Key, limit: usize) -> Vec<Entry> {
        let mut page: Vec<Entry> = self
            .pairs
            .iter()
            .filter(|pair| *pair.key() >= start)
            .map(|pair| Entry {
                key: *pair.key(),
                value: pair.value().value,
                version: pair.value().version,
            })
            .collect();
        if page.len() > limit {
            // Keep the `limit` smallest keys without sorting the rest.
            page.select_nth_unstable_by_key(limit, |entry| entry.key);
            page.truncate(limit);
        }
        page.sort_unstable_by_key(|entry| entry.key);
        page
    }

    /// Every pair, ordered by key.
    pub fn sorted_pairs(&self) -> Vec<(Key, Value)> {
        let mut pairs: Vec<(Key, Value)> = self.pairs.iter().map(|e| (*e.key(), e.value().value)).collect();
        pairs.sort_unstable_by_key(|(key, _)| *key);
        pairs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: Key, value: Value, version: u64) -> Entry {
        Entry { key, value, version }
    }

    #[test]
    fn newer_version_wins_whatever_the_arrival_order() {
        let store = Store::default();
        store.apply(entry(1, 20, 2));
        store.apply(entry(1, 10, 1));
        assert_eq!(store.get(1), Some(20));
        store.apply(entry(1, 30, 3));
        assert_eq!(store.get(1), Some(30));
    }

    #[test]
    fn local_put_is_replaced_by_a_replicated_write() {
        let store = Store::default();
        store.put_local(5, 1);
        assert_eq!(store.get(5), Some(1));
        store.apply(entry(5, 2, 1));
        assert_eq!(store.get(5), Some(2));
    }

    #[test]
    fn pages_cover_every_pair_once() {
        let store = Store::default();
        for key in (0..10).rev() {
            store.apply(entry(key, key, 7));
        }
        let first = store.page_from(i32::MIN, 4);
        assert_eq!(first.iter().map(|e| e.key).collect::<Vec<_>>(), vec![0, 1, 2, 3]);
        let rest = store.page_from(4, 100);
        assert_eq!(rest.len(), 6);
        assert!(rest.iter().all(|e| e.version == 7));
        assert_eq!(store.clear(), 10);
        assert!(store.page_from(i32::MIN, 10).is_empty());
    }

    #[test]
    fn pairs_come_out_ordered() {
        let store = Store::default();
        for key in [3, -1, 2] {
            store.apply(entry(key, key * 10, 1));
        }
        assert_eq!(store.sorted_pairs(), vec![(-1, -10), (2, 20), (3, 30)]);
        assert_eq!(store.get(9), None);
    }
}
