//! The committed state: every pair whose write is on every active server.
//!
//! The frontend applies a write here only once it has committed (see
//! [`crate::replication`]), in sequence order, and answers every `get` from
//! it, so a read never sees a write before that write is fully replicated
//! and never sees an older value after a newer one was acknowledged. It is
//! also the source of the snapshot a joining server receives.
//!
//! It is kept dense, like a server's store (`kvs_server::store`), in two
//! parts:
//!
//! - `settled`: key-sorted chunks of `(Key, Value)` pairs, 8 bytes a pair,
//!   with one version for all of them, `upto`: no settled pair's write is
//!   newer than `upto`, and every write newer than `upto` that has
//!   committed is in `recent`;
//! - `recent`: the pairs committed since, with their versions. A key in
//!   `recent` shadows its settled pair.
//!
//! Once `recent` holds more than 1/[`MERGE_FRACTION`] of `settled` (and at
//! least [`MERGE_MIN`] pairs), a background thread merges it into
//! `settled`: it copies `recent`, raises `upto`, merges each chunk into a
//! scratch buffer and copies it back in place under a short write lock (a
//! chunk keeps its allocation, so a merge needs no second array and the
//! allocator sees little churn), and only then removes from `recent` the pairs it copied that no
//! newer commit replaced. Readers look in `recent` first and `settled`
//! second, so a pair is always found in one of them.
//!
//! A settled pair is reported with version `upto`, an upper bound of its
//! own. That is enough wherever versions leave this state: a joining
//! server keeps the highest version per key, and every write that is newer
//! than the pair but at or below `upto` has committed, so it is in
//! `recent` and shadows the pair.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use dashmap::DashMap;
use kvs_proto::digest::{Digests, range_bounds};
use kvs_proto::{Entry, Key, Value};
use parking_lot::{Mutex, RwLock};

/// `recent` is merged once it holds more than this many pairs and more
/// than 1/[`MERGE_FRACTION`] of `settled`.
const MERGE_MIN: usize = 4096;
/// See [`MERGE_MIN`].
const MERGE_FRACTION: usize = 32;
/// Pairs in a chunk built from scratch; a chunk that grows past twice this
/// is split.
const CHUNK: usize = 4096;

/// Committed pairs, dense, with versions only for recent writes.
#[derive(Debug, Default)]
pub struct Committed {
    parts: Arc<Parts>,
}

/// What the state and its merge thread share.
#[derive(Debug, Default)]
struct Parts {
    recent: DashMap<Key, (Value, u64)>,
    /// How many pairs `recent` holds (`DashMap::len` locks every shard).
    recent_len: AtomicUsize,
    settled: RwLock<Settled>,
    /// Held while a merge runs: one at a time.
    merging: Mutex<()>,
    /// A merge thread has been started and has not finished.
    merge_started: AtomicBool,
}

/// The settled pairs and the version that bounds them.
#[derive(Debug, Default)]
struct Settled {
    /// Non-empty, each ordered by key, each chunk's keys below the next's.
    chunks: Vec<Vec<(Key, Value)>>,
    /// How many pairs the chunks hold.
    len: usize,
    upto: u64,
}

impl Settled {
    /// Index of the chunk `key` belongs in (the last whose first key is
    /// at or below it; the first for a smaller key).
    fn chunk_of(&self, key: Key) -> usize {
        self.chunks.partition_point(|chunk| chunk[0].0 <= key).saturating_sub(1)
    }

    fn get(&self, key: Key) -> Option<Value> {
        let chunk = self.chunks.get(self.chunk_of(key))?;
        let index = chunk.binary_search_by_key(&key, |pair| pair.0).ok()?;
        Some(chunk[index].1)
    }

    /// Every settled pair, ordered by key.
    fn pairs(&self) -> impl Iterator<Item = (Key, Value)> + '_ {
        self.chunks.iter().flat_map(|chunk| chunk.iter().copied())
    }

    /// The settled pairs with keys in `first ..= last`, ordered by key.
    fn pairs_in(&self, first: Key, last: Key) -> impl Iterator<Item = (Key, Value)> + '_ {
        let chunks = self.chunks.get(self.chunk_of(first)..).unwrap_or_default();
        chunks
            .iter()
            .flat_map(|chunk| chunk.iter().copied())
            .skip_while(move |pair| pair.0 < first)
            .take_while(move |pair| pair.0 <= last)
    }
}

impl Committed {
    /// Records a committed write. Commits arrive in sequence order, so the
    /// newest always lands last.
    pub fn apply(&self, entry: &Entry) {
        let parts = &self.parts;
        if parts.recent.insert(entry.key, (entry.value, entry.version)).is_none() {
            parts.recent_len.fetch_add(1, Ordering::Relaxed);
            if parts.wants_merge() {
                self.merge_in_background();
            }
        }
    }

    /// Starts a merge on a thread of its own, unless one is under way.
    /// (The thread ends with the merge: its allocator heap is collected
    /// as it exits, which keeps the frontend's resident memory near what
    /// the state holds.)
    fn merge_in_background(&self) {
        let parts = &self.parts;
        if parts.merge_started.swap(true, Ordering::AcqRel) {
            return;
        }
        let shared = Arc::clone(parts);
        let started = std::thread::Builder::new()
            .name("kvs-committed-merge".into())
            .spawn(move || {
                // Commits go on meanwhile: merge again while they refilled `recent`.
                while shared.wants_merge() {
                    shared.merge_recent();
                }
                shared.merge_started.store(false, Ordering::Release);
            });
        if let Err(error) = started {
            // The state stays correct, only larger: the next commit tries again.
            parts.merge_started.store(false, Ordering::Release);
            tracing::warn!(%error, "cannot start the committed state's merge thread");
        }
    }

    /// Merges pairs read from servers (a restarted frontend's recovery, or
    /// a server revived while none was active) in one go: per key, the
    /// highest version wins, over what the state holds too. The result is
    /// settled, bounded by the highest version seen, so every write made
    /// after this must have a higher version than all of `entries`.
    pub fn merge(&self, entries: &[Entry]) {
        let parts = &self.parts;
        let _one_at_a_time = parts.merging.lock();
        let mut incoming = entries.to_vec();
        incoming.sort_unstable_by(|a, b| a.key.cmp(&b.key).then(b.version.cmp(&a.version)));
        let recent = parts.sorted_recent();
        let (ours, upto) = {
            let settled = parts.settled.read();
            (
                merge_versioned(settled.pairs(), settled.len, settled.upto, &recent),
                settled.upto,
            )
        };
        let upto = incoming
            .iter()
            .chain(&ours)
            .map(|entry| entry.version)
            .fold(upto, u64::max);
        let mut pairs: Vec<(Key, Value)> = Vec::with_capacity(ours.len().max(incoming.len()));
        let mut taken = incoming.iter().peekable();
        for entry in ours {
            while let Some(other) = taken.next_if(|other| other.key < entry.key) {
                push_first_of_key(&mut pairs, other);
            }
            match taken.next_if(|other| other.key == entry.key) {
                Some(other) if other.version > entry.version => push_first_of_key(&mut pairs, other),
                _ => push_first_of_key(&mut pairs, &entry),
            }
            while taken.next_if(|other| other.key == entry.key).is_some() {}
        }
        taken.for_each(|other| push_first_of_key(&mut pairs, other));
        let len = pairs.len();
        let chunks = pairs.chunks(CHUNK).map(<[_]>::to_vec).collect();
        drop(pairs);
        *parts.settled.write() = Settled { chunks, len, upto };
        parts.forget_recent(&recent);
    }

    pub fn get(&self, key: Key) -> Option<Value> {
        self.versioned(key).map(|(value, _)| value)
    }

    /// The value of `key` and its version (for a settled pair, the bound
    /// `upto`).
    fn versioned(&self, key: Key) -> Option<(Value, u64)> {
        let parts = &self.parts;
        if let Some(pair) = parts.recent.get(&key) {
            return Some(*pair);
        }
        let settled = parts.settled.read();
        settled.get(key).map(|value| (value, settled.upto))
    }

    /// The digests of every committed pair by key range (for the scrub).
    pub fn digests(&self) -> Digests {
        let mut digests = Digests::default();
        for entry in self.parts.sorted_entries() {
            digests.add(entry.key, entry.value);
        }
        digests
    }

    /// The committed pairs with keys in `first ..= last`.
    pub fn range(&self, first: Key, last: Key) -> BTreeMap<Key, (Value, u64)> {
        self.parts
            .sorted_entries_in(first, last)
            .into_iter()
            .map(|entry| (entry.key, (entry.value, entry.version)))
            .collect()
    }

    /// The committed pairs in the digest ranges `ranges` (see
    /// [`kvs_proto::digest`]), as versioned entries ordered by key.
    pub fn entries_in(&self, ranges: &[usize]) -> Vec<Entry> {
        let mut entries: Vec<Entry> = ranges
            .iter()
            .flat_map(|range| {
                let (first, last) = range_bounds(*range);
                self.parts.sorted_entries_in(first, last)
            })
            .collect();
        entries.sort_unstable_by_key(|entry| entry.key);
        entries
    }

    /// The committed pairs of `keys` (those that hold one), as versioned entries.
    pub fn entries_of(&self, keys: &[Key]) -> Vec<Entry> {
        keys.iter()
            .filter_map(|key| {
                let (value, version) = self.versioned(*key)?;
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
        let parts = &self.parts;
        // `recent` first: a pair a merge moves is then counted in both.
        let recent: Vec<Key> = parts.recent.iter().map(|pair| *pair.key()).collect();
        let settled = parts.settled.read();
        let shadowing = recent.iter().filter(|key| settled.get(**key).is_some()).count();
        settled.len + recent.len() - shadowing
    }

    /// Whether no key holds a committed value.
    pub fn is_empty(&self) -> bool {
        self.parts.recent.is_empty() && self.parts.settled.read().len == 0
    }

    /// Every committed pair as a versioned entry, for a joining server,
    /// ordered by key: the same chunks whatever the hash order, so a
    /// simulation replays a catch-up exactly.
    pub fn snapshot(&self) -> Vec<Entry> {
        self.parts.sorted_entries()
    }

    /// Waits for a merge under way (tests).
    #[cfg(test)]
    fn settle(&self) {
        while self.parts.merge_started.load(Ordering::Acquire) {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}

impl Parts {
    /// Whether `recent` has grown enough to be merged.
    fn wants_merge(&self) -> bool {
        let settled = self.settled.read().len;
        self.recent_len.load(Ordering::Relaxed) > MERGE_MIN.max(settled / MERGE_FRACTION)
    }

    /// Moves `recent` into `settled`, a chunk at a time (see the module doc).
    fn merge_recent(&self) {
        let _one_at_a_time = self.merging.lock();
        let moved = self.sorted_recent();
        let Some(highest) = moved.iter().map(|entry| entry.version).max() else {
            return;
        };
        // First raise the bound: every moved pair is still in `recent`.
        let mut settled = self.settled.write();
        settled.upto = settled.upto.max(highest);
        let mut rest = moved.as_slice();
        if settled.chunks.is_empty() {
            let pairs: Vec<(Key, Value)> = moved.iter().map(|entry| (entry.key, entry.value)).collect();
            settled.chunks = pairs.chunks(CHUNK).map(<[_]>::to_vec).collect();
            settled.len = pairs.len();
            rest = &[];
        }
        drop(settled);
        // Each chunk is merged into `scratch` under a read lock (readers go
        // on), then copied back in place under a short write lock: its
        // allocation is kept (or grown), so a merge allocates almost nothing.
        let mut scratch = Vec::with_capacity(2 * CHUNK);
        let mut index = 0;
        while !rest.is_empty() {
            let settled = self.settled.read();
            let Some(chunk) = settled.chunks.get(index) else {
                break;
            };
            let next_first = settled.chunks.get(index + 1).map(|next| next[0].0);
            let split = next_first.map_or(rest.len(), |next| rest.partition_point(|entry| entry.key < next));
            let (into, after) = rest.split_at(split);
            rest = after;
            if into.is_empty() {
                index += 1;
                continue;
            }
            let new = into.iter().map(|entry| (entry.key, entry.value));
            merge_sorted(chunk.iter().copied(), new, &mut scratch);
            drop(settled);
            let mut settled = self.settled.write();
            settled.len = settled.len + scratch.len() - settled.chunks[index].len();
            if scratch.len() <= 2 * CHUNK {
                let chunk = &mut settled.chunks[index];
                chunk.clear();
                chunk.reserve_exact(scratch.len());
                chunk.extend_from_slice(&scratch);
                index += 1;
            } else {
                let pieces = scratch.len().div_ceil(CHUNK);
                let size = scratch.len().div_ceil(pieces);
                let replacement: Vec<Vec<(Key, Value)>> = scratch.chunks(size).map(<[_]>::to_vec).collect();
                let count = replacement.len();
                settled.chunks.splice(index..=index, replacement);
                index += count;
            }
        }
        self.forget_recent(&moved);
        self.recent.shrink_to_fit();
    }

    /// Removes from `recent` each of `moved` that no newer commit replaced
    /// (after `settled` holds them).
    fn forget_recent(&self, moved: &[Entry]) {
        for entry in moved {
            let removed = self
                .recent
                .remove_if(&entry.key, |_, current| current.1 == entry.version)
                .is_some();
            if removed {
                self.recent_len.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// The pairs of `recent`, versioned, ordered by key.
    fn sorted_recent(&self) -> Vec<Entry> {
        self.sorted_recent_in(Key::MIN, Key::MAX)
    }

    /// The pairs of `recent` with keys in `first ..= last`, versioned,
    /// ordered by key.
    fn sorted_recent_in(&self, first: Key, last: Key) -> Vec<Entry> {
        let mut recent: Vec<Entry> = self
            .recent
            .iter()
            .filter(|pair| (first..=last).contains(pair.key()))
            .map(|pair| Entry {
                key: *pair.key(),
                value: pair.value().0,
                version: pair.value().1,
            })
            .collect();
        recent.sort_unstable_by_key(|entry| entry.key);
        recent
    }

    /// Every pair, versioned, ordered by key (`recent` read first, so a
    /// pair a merge moves meanwhile is found in `settled`).
    fn sorted_entries(&self) -> Vec<Entry> {
        self.sorted_entries_in(Key::MIN, Key::MAX)
    }

    /// The pairs with keys in `first ..= last`, versioned, ordered by key
    /// (read as [`Parts::sorted_entries`] reads them).
    fn sorted_entries_in(&self, first: Key, last: Key) -> Vec<Entry> {
        let recent = self.sorted_recent_in(first, last);
        let settled = self.settled.read();
        let whole = (first, last) == (Key::MIN, Key::MAX);
        let capacity = if whole { settled.len } else { 0 };
        merge_versioned(settled.pairs_in(first, last), capacity, settled.upto, &recent)
    }
}

#[cfg(test)]
fn count_pairs(chunks: &[Vec<(Key, Value)>]) -> usize {
    chunks.iter().map(|chunk| chunk.len()).sum()
}

/// Settled pairs (versioned `upto`; about `capacity` of them) and
/// `recent`, which shadows them, as one key-sorted run.
fn merge_versioned(
    settled: impl Iterator<Item = (Key, Value)>,
    capacity: usize,
    upto: u64,
    recent: &[Entry],
) -> Vec<Entry> {
    let mut entries = Vec::with_capacity(capacity + recent.len());
    let mut newer = recent.iter().copied().peekable();
    for (key, value) in settled {
        while let Some(entry) = newer.next_if(|entry| entry.key < key) {
            entries.push(entry);
        }
        match newer.next_if(|entry| entry.key == key) {
            Some(entry) => entries.push(entry),
            None => entries.push(Entry {
                key,
                value,
                version: upto,
            }),
        }
    }
    entries.extend(newer);
    entries
}

/// Two key-sorted runs of distinct keys merged into `merged` (emptied
/// first); `new` wins a tie.
fn merge_sorted(
    old: impl Iterator<Item = (Key, Value)>,
    new: impl Iterator<Item = (Key, Value)>,
    merged: &mut Vec<(Key, Value)>,
) {
    merged.clear();
    let mut new = new.peekable();
    for (key, value) in old {
        while let Some(pair) = new.next_if(|pair| pair.0 < key) {
            merged.push(pair);
        }
        match new.next_if(|pair| pair.0 == key) {
            Some(pair) => merged.push(pair),
            None => merged.push((key, value)),
        }
    }
    merged.extend(new);
}

/// Appends `entry`'s pair unless its key was just appended.
fn push_first_of_key(pairs: &mut Vec<(Key, Value)>, entry: &Entry) {
    if pairs.last().is_none_or(|last| last.0 != entry.key) {
        pairs.push((entry.key, entry.value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: Key, value: Value, version: u64) -> Entry {
        Entry { key, value, version }
    }

    /// The settled chunks: counted right, none empty or oversized, keys
    /// strictly increasing across them.
    fn assert_chunks_well_formed(committed: &Committed) {
        let settled = committed.parts.settled.read();
        assert_eq!(settled.len, count_pairs(&settled.chunks));
        assert!(
            settled
                .chunks
                .iter()
                .all(|chunk| !chunk.is_empty() && chunk.len() <= 2 * CHUNK)
        );
        let pairs: Vec<(Key, Value)> = settled.pairs().collect();
        assert!(pairs.windows(2).all(|pair| pair[0].0 < pair[1].0));
    }

    #[test]
    fn snapshot_carries_versions() {
        let committed = Committed::default();
        committed.apply(&entry(1, 10, 4));
        committed.apply(&entry(1, 11, 5));
        assert_eq!(committed.get(1), Some(11));
        assert_eq!(committed.snapshot(), vec![entry(1, 11, 5)]);
    }

    #[test]
    fn merge_keeps_the_newest_version() {
        let committed = Committed::default();
        // Two sources: key 1 newer in the first, key 2 in the second.
        committed.merge(&[
            entry(1, 10, 9),
            entry(2, 20, 1),
            entry(1, 12, 8),
            entry(2, 21, 3),
            entry(0, 5, 2),
        ]);
        assert_eq!(committed.get(0), Some(5));
        assert_eq!(committed.get(1), Some(10));
        assert_eq!(committed.get(2), Some(21));
        assert_eq!(committed.len(), 3);
        // Merged pairs are settled, reported with the highest version seen.
        assert!(committed.snapshot().iter().all(|entry| entry.version == 9));
        // A later write wins.
        committed.apply(&entry(2, 22, 10));
        assert_eq!(committed.get(2), Some(22));
        assert_eq!(committed.entries_of(&[2, 7]), vec![entry(2, 22, 10)]);
    }

    #[test]
    fn merge_of_an_older_pair_keeps_a_recent_write() {
        let committed = Committed::default();
        committed.apply(&entry(1, 10, 7));
        committed.merge(&[entry(1, 9, 6), entry(3, 30, 2)]);
        assert_eq!(committed.get(1), Some(10));
        assert_eq!(committed.get(3), Some(30));
    }

    #[test]
    fn a_large_state_is_merged_dense_and_reads_stay_right() {
        let committed = Committed::default();
        let keys = 50_000;
        let mut version = 0;
        for round in 0..3 {
            for key in 0..keys {
                version += 1;
                committed.apply(&entry(key, key * 10 + round, version));
            }
        }
        committed.settle();
        assert!(
            committed.parts.recent_len.load(Ordering::Relaxed) < keys as usize,
            "most pairs are settled"
        );
        assert_eq!(
            committed.parts.recent.len(),
            committed.parts.recent_len.load(Ordering::Relaxed)
        );
        assert_eq!(committed.len(), keys as usize);
        for key in 0..keys {
            assert_eq!(committed.get(key), Some(key * 10 + 2), "key {key}");
        }
        let snapshot = committed.snapshot();
        assert_eq!(snapshot.len(), keys as usize);
        assert!(snapshot.windows(2).all(|pair| pair[0].key < pair[1].key));
        // Every reported version is at least the pair's own (the last round's).
        for entry in &snapshot {
            let own = 2 * keys as u64 + entry.key as u64 + 1;
            assert!(entry.version >= own, "{entry:?}");
            assert_eq!(entry.value, entry.key * 10 + 2);
        }
        assert_chunks_well_formed(&committed);
        let digests = committed.digests();
        let mut expected = Digests::default();
        (0..keys).for_each(|key| expected.add(key, key * 10 + 2));
        assert!(digests.differing(&expected).is_empty());
        assert_eq!(committed.range(10, 12).len(), 3);
    }

    #[test]
    fn keys_below_and_between_the_chunks_are_merged_in_order() {
        let committed = Committed::default();
        let mut version = 0;
        // Settle every even key from 100_000 up, then write keys below, between and above them.
        for key in (100_000..140_000).step_by(2) {
            version += 1;
            committed.apply(&entry(key, 1, version));
        }
        committed.settle();
        for key in (0..150_000).rev().step_by(3) {
            version += 1;
            committed.apply(&entry(key, 2, version));
        }
        committed.settle();
        assert_chunks_well_formed(&committed);
        for key in 0..150_000 {
            let expected = if (150_000 - 1 - key) % 3 == 0 {
                Some(2)
            } else if (100_000..140_000).contains(&key) && key % 2 == 0 {
                Some(1)
            } else {
                None
            };
            assert_eq!(committed.get(key), expected, "key {key}");
        }
        assert_eq!(committed.len(), committed.snapshot().len());
        // A range read across chunk boundaries matches the whole snapshot's slice.
        let slice: Vec<Key> = committed
            .snapshot()
            .iter()
            .map(|entry| entry.key)
            .filter(|key| (99_990..=120_010).contains(key))
            .collect();
        let range: Vec<Key> = committed.range(99_990, 120_010).into_keys().collect();
        assert_eq!(range, slice);
    }

    #[test]
    fn reads_during_merges_see_every_committed_write() {
        let committed = Arc::new(Committed::default());
        let keys = 20_000;
        let writer = {
            let committed = Arc::clone(&committed);
            std::thread::spawn(move || {
                let mut version = 0;
                for round in 1..=20 {
                    for key in 0..keys {
                        version += 1;
                        committed.apply(&entry(key, round, version));
                    }
                }
            })
        };
        // A read never goes back: each key's value only grows.
        let mut seen = vec![0; keys as usize];
        while !writer.is_finished() {
            for key in (0..keys).step_by(7) {
                let value = committed.get(key).unwrap_or(0);
                assert!(value >= seen[key as usize], "key {key} went back");
                seen[key as usize] = value;
            }
        }
        writer.join().expect("writer");
        committed.settle();
        assert!((0..keys).all(|key| committed.get(key) == Some(20)));
    }
}
