//! The replica's key-value pairs, kept dense: 8 bytes per settled pair.
//!
//! Every replicated write carries a version (the frontend's sequence
//! number), and a key keeps the highest-versioned value it has seen, so
//! snapshot chunks and live writes may arrive in any order during a
//! catch-up. Versions only matter while such reorderings are possible. The
//! frontend therefore tells the server a *stable point* with each batch: the
//! server has now been sent every write at or below it, and never will be
//! sent an older one again. The store keeps two parts:
//!
//! - `settled`: pairs whose last write is at or below the stable point, as a
//!   key-sorted `Vec<(Key, Value)>` with no version (their version is only
//!   known to be ≤ `stable`);
//! - `recent`: pairs written above the stable point (or before any stable
//!   point is known, i.e. during a catch-up), with their versions.
//!
//! A write to a settled key with a version at or below `stable` is older
//! than what the key holds (the server has had every write up to `stable`)
//! and is dropped. Once `recent` grows past a fraction of `settled`, its
//! entries at or below `stable` are merged into `settled`. `dumpState`
//! reports settled pairs with `stable` as their version — an upper bound
//! that is still correct for the highest-version-wins merge of a frontend
//! recovering from several servers, because a server whose stable point is
//! `s` holds the newest write of every key among all writes up to `s`.

use std::collections::HashMap;

use kvs_proto::batch::Batch;
use kvs_proto::digest::Digests;
use kvs_proto::{Entry, Key, Value};

use crate::wal::Record;

/// `recent` is merged into `settled` once it holds more than this many
/// pairs and more than [`MERGE_FRACTION`] of `settled`.
const MERGE_MIN: usize = 4096;
/// See [`MERGE_MIN`]: `recent` may hold up to `settled / MERGE_FRACTION`.
const MERGE_FRACTION: usize = 16;

/// The store's contents as a snapshot keeps them (see [`crate::snapshot`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreImage {
    /// Pairs at or below the stable point, ordered by key, keys distinct.
    pub settled: Vec<(Key, Value)>,
    /// Pairs written above it (or before it was known), with their versions.
    pub recent: Vec<Entry>,
    /// Every write at or below this version had been received.
    pub stable: u64,
    /// A local write changed the store since it was last emptied.
    pub local_writes: bool,
}

/// The replica's state.
#[derive(Debug, Default)]
pub struct Store {
    settled: Vec<(Key, Value)>,
    recent: HashMap<Key, (Value, u64)>,
    /// Every write at or below this version has been received.
    stable: u64,
    /// `stable` at the last merge, so a merge is tried only when it can move something.
    merged_at: u64,
    /// A local write (not from the frontend) changed the store since it was
    /// last emptied: it no longer holds exactly what the frontend sent.
    local_writes: bool,
}

impl Store {
    /// Applies one replicated write if it is newer than what the key holds.
    pub fn apply(&mut self, entry: Entry) {
        if let Some(current) = self.recent.get_mut(&entry.key) {
            if entry.version > current.1 {
                *current = (entry.value, entry.version);
            }
            return;
        }
        if self.settled_index(entry.key).is_ok() && entry.version <= self.stable {
            return;
        }
        self.recent.insert(entry.key, (entry.value, entry.version));
    }

    /// Applies a replicated batch: its writes, then its stable point.
    pub fn apply_batch(&mut self, batch: Batch) {
        for entry in batch.entries {
            self.apply(entry);
        }
        self.settle(batch.stable);
    }

    /// Forgets every key written above `stable` (such a write may never
    /// have been committed), from both parts, so that whatever is sent for
    /// it next is taken; returns the keys, ordered. Everything at or below
    /// `stable` stays: the store had every such write.
    pub fn forget_above(&mut self, stable: u64) -> Vec<Key> {
        if stable == 0 {
            // No stable point: nothing to rejoin from, nothing forgotten.
            return Vec::new();
        }
        let mut forgotten: Vec<Key> = self
            .recent
            .iter()
            .filter(|(_, (_, version))| *version > stable)
            .map(|(key, _)| *key)
            .collect();
        forgotten.sort_unstable();
        for key in &forgotten {
            self.recent.remove(key);
        }
        if !forgotten.is_empty() {
            self.settled.retain(|(key, _)| forgotten.binary_search(key).is_err());
        }
        forgotten
    }

    /// Applies a logged change again (recovery from the data folder).
    pub fn replay(&mut self, record: Record) {
        match record {
            Record::Batch(batch) => self.apply_batch(batch),
            Record::LocalPut { key, value } => self.put_local(key, value),
            Record::Reset => {
                self.clear();
            }
            Record::ForgetAbove(stable) => {
                self.forget_above(stable);
            }
        }
    }

    /// Records that every write at or below `stable` has been received, and
    /// merges settled writes out of `recent` when it has grown.
    pub fn settle(&mut self, stable: u64) {
        self.stable = self.stable.max(stable);
        let limit = MERGE_MIN.max(self.settled.len() / MERGE_FRACTION);
        if self.recent.len() > limit && self.stable > self.merged_at {
            self.merge();
        }
    }

    /// A local write (the course skeleton's `put`): it keeps the key's
    /// version, so any later replicated write still replaces it.
    pub fn put_local(&mut self, key: Key, value: Value) {
        self.local_writes = true;
        if let Some(current) = self.recent.get_mut(&key) {
            current.0 = value;
        } else if let Ok(index) = self.settled_index(key) {
            self.settled[index].1 = value;
        } else {
            self.recent.insert(key, (value, 0));
        }
    }

    pub fn get(&self, key: Key) -> Option<Value> {
        match self.recent.get(&key) {
            Some((value, _)) => Some(*value),
            None => self.settled_index(key).ok().map(|index| self.settled[index].1),
        }
    }

    /// How many keys the store holds (a recent write may shadow a settled pair).
    pub fn len(&self) -> usize {
        let shadowing = self
            .recent
            .keys()
            .filter(|key| self.settled_index(**key).is_ok())
            .count();
        self.settled.len() + self.recent.len() - shadowing
    }

    /// Whether the store holds no pair.
    pub fn is_empty(&self) -> bool {
        self.settled.is_empty() && self.recent.is_empty()
    }

    /// Drops every pair and forgets the stable point (a catch-up follows);
    /// returns how many pairs there were.
    pub fn clear(&mut self) -> usize {
        let dropped = self.len();
        *self = Store::default();
        dropped
    }

    /// Up to `limit` versioned pairs with key ≥ `start`, ordered by key.
    pub fn page_from(&self, start: Key, limit: usize) -> Vec<Entry> {
        let first = self.settled.partition_point(|(key, _)| *key < start);
        let settled = self.settled[first..].iter().take(limit).map(|&(key, value)| Entry {
            key,
            value,
            version: self.stable,
        });
        let mut recent: Vec<Entry> = self
            .recent
            .iter()
            .filter(|(key, _)| **key >= start)
            .map(|(&key, &(value, version))| Entry { key, value, version })
            .collect();
        if recent.len() > limit {
            // Keep the `limit` smallest keys without sorting the rest.
            recent.select_nth_unstable_by_key(limit, |entry| entry.key);
            recent.truncate(limit);
        }
        recent.sort_unstable_by_key(|entry| entry.key);
        let mut page = merge_sorted(settled, recent.into_iter(), |entry| entry.key);
        page.truncate(limit);
        page
    }

    /// Every pair, ordered by key.
    pub fn sorted_pairs(&self) -> Vec<(Key, Value)> {
        let recent = self.sorted_recent().into_iter().map(|(key, (value, _))| (key, value));
        merge_sorted(self.settled.iter().copied(), recent, |(key, _)| *key)
    }

    /// The digests of every pair by key range (a recent write shadows the
    /// settled pair of its key), without sorting anything.
    pub fn digests(&self) -> Digests {
        let mut digests = Digests::default();
        for (key, value) in &self.settled {
            if !self.recent.contains_key(key) {
                digests.add(*key, *value);
            }
        }
        for (key, (value, _)) in &self.recent {
            digests.add(*key, *value);
        }
        digests
    }

    /// Every write at or below this version has been received.
    pub fn stable(&self) -> u64 {
        self.stable
    }

    /// The point a rejoin by delta may start from: the stable point, or 0
    /// (none) once a local write made the store more than what the frontend
    /// sent.
    pub fn rejoin_point(&self) -> u64 {
        if self.local_writes { 0 } else { self.stable }
    }

    /// A copy of the contents, for a snapshot (`recent` ordered by key).
    pub fn image(&self) -> StoreImage {
        StoreImage {
            settled: self.settled.clone(),
            recent: self
                .sorted_recent()
                .into_iter()
                .map(|(key, (value, version))| Entry { key, value, version })
                .collect(),
            stable: self.stable,
            local_writes: self.local_writes,
        }
    }

    /// The store a snapshot kept (its `settled` pairs ordered by key).
    pub fn from_image(image: StoreImage) -> Store {
        Store {
            settled: image.settled,
            recent: image
                .recent
                .into_iter()
                .map(|entry| (entry.key, (entry.value, entry.version)))
                .collect(),
            stable: image.stable,
            merged_at: image.stable,
            local_writes: image.local_writes,
        }
    }

    fn settled_index(&self, key: Key) -> Result<usize, usize> {
        self.settled.binary_search_by_key(&key, |(k, _)| *k)
    }

    fn sorted_recent(&self) -> Vec<(Key, (Value, u64))> {
        let mut recent: Vec<_> = self.recent.iter().map(|(k, v)| (*k, *v)).collect();
        recent.sort_unstable_by_key(|(key, _)| *key);
        recent
    }

    /// Moves every recent pair at or below the stable point into `settled`.
    fn merge(&mut self) {
        let stable = self.stable;
        let mut moving: Vec<(Key, Value)> = Vec::new();
        self.recent.retain(|&key, &mut (value, version)| {
            let settles = version <= stable;
            if settles {
                moving.push((key, value));
            }
            !settles
        });
        moving.sort_unstable_by_key(|(key, _)| *key);
        let old = std::mem::take(&mut self.settled);
        // A key in both comes from `moving` (recent is newer than settled).
        let mut merged = Vec::with_capacity(old.len() + moving.len());
        let mut old = old.into_iter().peekable();
        for pair in moving {
            while let Some(settled) = old.next_if(|(key, _)| *key < pair.0) {
                merged.push(settled);
            }
            old.next_if(|(key, _)| *key == pair.0);
            merged.push(pair);
        }
        merged.extend(old);
        self.settled = merged;
        self.recent.shrink_to_fit();
        self.merged_at = stable;
    }
}

/// Merges two key-sorted runs with distinct keys within each; on a tie the
/// item from `b` wins.
fn merge_sorted<T, K: Ord>(a: impl Iterator<Item = T>, b: impl Iterator<Item = T>, key: impl Fn(&T) -> K) -> Vec<T> {
    let mut out = Vec::new();
    let mut a = a.peekable();
    for item in b {
        while let Some(earlier) = a.next_if(|x| key(x) < key(&item)) {
            out.push(earlier);
        }
        a.next_if(|x| key(x) == key(&item));
        out.push(item);
    }
    out.extend(a);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: Key, value: Value, version: u64) -> Entry {
        Entry { key, value, version }
    }

    /// A store whose keys `0..n` are settled at `stable`.
    fn settled_store(n: i32, stable: u64) -> Store {
        let mut store = Store::default();
        for key in 0..n {
            store.apply(entry(key, key, stable));
        }
        store.settle(stable);
        store
    }

    #[test]
    fn newer_version_wins_whatever_the_arrival_order() {
        let mut store = Store::default();
        store.apply(entry(1, 20, 2));
        store.apply(entry(1, 10, 1));
        assert_eq!(store.get(1), Some(20));
        store.apply(entry(1, 30, 3));
        assert_eq!(store.get(1), Some(30));
    }

    #[test]
    fn large_recent_part_is_merged_and_stays_readable() {
        let store = settled_store(10_000, 50);
        assert!(store.recent.is_empty(), "everything at or below 50 settled");
        assert_eq!(store.settled.len(), 10_000);
        assert_eq!(store.get(9_999), Some(9_999));
        assert_eq!(store.get(10_000), None);
    }

    #[test]
    fn settled_key_ignores_older_and_takes_newer_writes() {
        let mut store = settled_store(5_000, 50);
        store.apply(entry(7, -1, 40));
        assert_eq!(store.get(7), Some(7), "a write below the stable point is older");
        store.apply(entry(7, 700, 60));
        assert_eq!(store.get(7), Some(700));
        store.apply(entry(7, 650, 55));
        assert_eq!(store.get(7), Some(700));
    }

    #[test]
    fn writes_above_the_stable_point_stay_versioned_through_a_merge() {
        let mut store = settled_store(5_000, 50);
        for key in 0..5_000 {
            store.apply(entry(key, key + 1, 100 + key as u64));
        }
        store.settle(2_000);
        assert_eq!(store.recent.len(), 3_099, "versions above 2000 stay versioned");
        assert_eq!(store.get(1_899), Some(1_900));
        assert_eq!(store.get(4_999), Some(5_000));
        store.apply(entry(4_999, 0, 1_000));
        assert_eq!(store.get(4_999), Some(5_000), "still compared by version");
    }

    #[test]
    fn local_put_is_replaced_by_a_replicated_write() {
        let mut store = Store::default();
        store.put_local(5, 1);
        assert_eq!(store.get(5), Some(1));
        store.apply(entry(5, 2, 1));
        assert_eq!(store.get(5), Some(2));
        let mut store = settled_store(5_000, 50);
        store.put_local(5, -5);
        assert_eq!(store.get(5), Some(-5));
        assert_eq!(store.rejoin_point(), 0, "a local write leaves nothing to rejoin from");
        store.clear();
        store.settle(60);
        assert_eq!(store.rejoin_point(), 60);
    }

    #[test]
    fn pages_cover_every_pair_once_across_both_parts() {
        let mut store = settled_store(5_000, 50);
        store.apply(entry(-3, 3, 60));
        store.apply(entry(10, 100, 61));
        store.apply(entry(9_000, 9, 62));
        let mut seen = Vec::new();
        let mut start = Key::MIN;
        loop {
            let page = store.page_from(start, 777);
            seen.extend(page.iter().map(|e| (e.key, e.value, e.version)));
            match page.last() {
                Some(last) if page.len() == 777 => start = last.key + 1,
                _ => break,
            }
        }
        assert_eq!(seen.len(), 5_002);
        assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "ordered, no repeats");
        assert!(seen.contains(&(-3, 3, 60)));
        assert!(seen.contains(&(10, 100, 61)));
        assert!(seen.contains(&(11, 11, 50)), "settled pairs report the stable point");
        assert_eq!(store.sorted_pairs().len(), 5_002);
        assert_eq!(store.clear(), 5_002);
        assert!(store.page_from(Key::MIN, 10).is_empty());
        store.apply(entry(10, 1, 1));
        assert_eq!(store.get(10), Some(1), "a cleared store forgets its stable point");
    }

    #[test]
    fn forgetting_above_the_stable_point_clears_both_parts_of_those_keys() {
        let mut store = settled_store(5_000, 50);
        store.apply(entry(7, 700, 60));
        store.apply(entry(9_000, 9, 61));
        store.apply(entry(9_001, 800, 45));
        assert_eq!(store.forget_above(50), vec![7, 9_000]);
        assert_eq!(store.get(7), None, "the settled value of a forgotten key goes too");
        assert_eq!(store.get(9_000), None);
        assert_eq!(
            store.get(9_001),
            Some(800),
            "a write at or below the stable point stays"
        );
        assert_eq!(store.get(8), Some(8));
        store.apply(entry(7, 70, 20));
        assert_eq!(store.get(7), Some(70), "whatever is sent next for it is taken");
        assert!(store.forget_above(u64::MAX).is_empty());
    }

    #[test]
    fn an_image_gives_back_the_same_store() {
        let mut store = settled_store(5_000, 50);
        store.apply(entry(7, 700, 60));
        store.apply(entry(9_000, 9, 61));
        let image = store.image();
        let back = Store::from_image(image.clone());
        assert_eq!(back.image(), image);
        assert_eq!(back.sorted_pairs(), store.sorted_pairs());
        assert_eq!(back.stable(), 50);
        assert_eq!(back.page_from(Key::MIN, 10_000), store.page_from(Key::MIN, 10_000));
    }

    #[test]
    fn pairs_come_out_ordered() {
        let mut store = Store::default();
        for key in [3, -1, 2] {
            store.apply(entry(key, key * 10, 1));
        }
        assert_eq!(store.sorted_pairs(), vec![(-1, -10), (2, 20), (3, 30)]);
        assert_eq!(store.get(9), None);
    }
}
