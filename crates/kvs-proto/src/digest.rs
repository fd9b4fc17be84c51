//! Digests of a store by key range, for scrubbing (see the frontend's
//! `scrub` module).
//!
//! The key space is cut into [`RANGES`] contiguous ranges (by the top bits of
//! the key). A range's digest is the number of pairs in it and the wrapping
//! sum of a 64-bit mix of each (key, value): independent of order, so the
//! frontend (from a hash map) and a server (from its sorted array and its
//! recent writes) compute the same digest for the same pairs. `digest`
//! replies all of them at once, 16 bytes each, little-endian.

use thiserror::Error;

use crate::Key;

/// How many ranges the key space is cut into.
pub const RANGES: usize = 64;
const RANGE_SHIFT: u32 = 32 - RANGES.trailing_zeros();
const RANGE_BYTES: usize = 16;

/// One range's digest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RangeDigest {
    /// How many pairs the range holds.
    pub count: u64,
    /// The wrapping sum of the pairs' hashes (order does not matter).
    pub sum: u64,
}

/// Every range's digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests(pub [RangeDigest; RANGES]);

/// A reply that is not [`RANGES`] digests.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("a digest reply of {0} bytes is not {RANGES} ranges of {RANGE_BYTES} bytes")]
pub struct DigestError(pub usize);

impl Default for Digests {
    fn default() -> Self {
        Digests([RangeDigest::default(); RANGES])
    }
}

/// The range `key` falls in.
pub fn range_of(key: Key) -> usize {
    // The bits of the key as unsigned: each range is one contiguous run of
    // keys, as signed numbers too (the sign bit is constant within a range).
    (u32::from_ne_bytes(key.to_ne_bytes()) >> RANGE_SHIFT) as usize
}

/// The first and last key of range `range`.
pub fn range_bounds(range: usize) -> (Key, Key) {
    let first = (range as u32) << RANGE_SHIFT;
    let last = first | ((1u32 << RANGE_SHIFT) - 1);
    (
        i32::from_ne_bytes(first.to_ne_bytes()),
        i32::from_ne_bytes(last.to_ne_bytes()),
    )
}

/// The mix of one pair (splitmix64's finaliser).
fn mix(key: Key, value: i32) -> u64 {
    let key = u64::from(u32::from_ne_bytes(key.to_ne_bytes()));
    let value = u64::from(u32::from_ne_bytes(value.to_ne_bytes()));
    let mut z = (key << 32 | value).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Digests {
    /// Counts a pair in.
    pub fn add(&mut self, key: Key, value: i32) {
        let range = &mut self.0[range_of(key)];
        range.count += 1;
        range.sum = range.sum.wrapping_add(mix(key, value));
    }

    /// The digests of `pairs`.
    pub fn of(pairs: impl IntoIterator<Item = (Key, i32)>) -> Self {
        let mut digests = Digests::default();
        for (key, value) in pairs {
            digests.add(key, value);
        }
        digests
    }

    /// The ranges where `self` and `other` differ.
    pub fn differing(&self, other: &Digests) -> Vec<usize> {
        (0..RANGES).filter(|range| self.0[*range] != other.0[*range]).collect()
    }

    /// The wire form.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(RANGES * RANGE_BYTES);
        for range in &self.0 {
            bytes.extend_from_slice(&range.count.to_le_bytes());
            bytes.extend_from_slice(&range.sum.to_le_bytes());
        }
        bytes
    }

    /// Reads the wire form.
    pub fn decode(bytes: &[u8]) -> Result<Self, DigestError> {
        if bytes.len() != RANGES * RANGE_BYTES {
            return Err(DigestError(bytes.len()));
        }
        let mut digests = Digests::default();
        for (range, chunk) in digests.0.iter_mut().zip(bytes.chunks_exact(RANGE_BYTES)) {
            let (count, sum) = chunk.split_at(8);
            let word = |half: &[u8]| {
                half.try_into()
                    .map(u64::from_le_bytes)
                    .map_err(|_| DigestError(bytes.len()))
            };
            range.count = word(count)?;
            range.sum = word(sum)?;
        }
        Ok(digests)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_the_key_space_in_order() {
        assert_eq!(range_bounds(0).0, 0);
        assert_eq!(range_bounds(RANGES - 1).1, -1);
        assert_eq!(range_bounds(RANGES / 2).0, i32::MIN);
        for range in 0..RANGES {
            let (first, last) = range_bounds(range);
            assert!(first <= last);
            assert_eq!(range_of(first), range);
            assert_eq!(range_of(last), range);
        }
    }

    #[test]
    fn digests_ignore_order_and_see_every_change() {
        let a = Digests::of([(1, 10), (2, 20), (-5, 7)]);
        let b = Digests::of([(-5, 7), (2, 20), (1, 10)]);
        assert_eq!(a, b);
        assert!(a.differing(&b).is_empty());
        let changed = Digests::of([(1, 11), (2, 20), (-5, 7)]);
        assert_eq!(a.differing(&changed), vec![range_of(1)]);
        let extra = Digests::of([(1, 10), (2, 20), (-5, 7), (i32::MIN, 0)]);
        assert_eq!(a.differing(&extra), vec![range_of(i32::MIN)]);
        assert_eq!(Digests::decode(&a.encode()), Ok(a));
        assert!(Digests::decode(&[0; 15]).is_err());
    }
}
