//! What a load run asks for, as pure generators: the YCSB core workloads
//! A–F and the course harness's put/get mix as operation mixes, and the key
//! distributions (uniform, YCSB's scrambled zipfian with θ = 0.99, and
//! "latest").
//!
//! Everything here is deterministic given its random inputs (a uniform
//! `u` in `[0, 1)` or a roll in `0..100`), so the mixes and distributions
//! are tested without a network.
//!
//! kvs has no scan, so YCSB's workload E (95% short scans, 5% inserts) is
//! mapped to 95% reads and 5% inserts with uniform keys; its numbers say
//! nothing about scans.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// YCSB's zipfian constant.
pub const ZIPFIAN_THETA: f64 = 0.99;

/// The item count of YCSB's scrambled zipfian: draws come from a zipfian
/// over this many items and are then hashed onto the key space.
const SCRAMBLED_ITEMS: u64 = 10_000_000_000;

/// ζ(10¹⁰, 0.99), precomputed by YCSB (`ScrambledZipfianGenerator.ZETAN`).
const SCRAMBLED_ZETAN: f64 = 26.469_028_201_783_02;

/// A named input that is not one of ours.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("unknown workload {0:?} (expected a, b, c, d, e, f or harness)")]
    Workload(String),
    #[error("unknown distribution {0:?} (expected uniform, zipfian or latest)")]
    Distribution(String),
}

/// One operation of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpKind {
    /// `get` of an existing key.
    Read,
    /// `put` to an existing key.
    Update,
    /// `put` to a new key past every key written so far.
    Insert,
    /// `get` then `put` of the same key, timed as one operation.
    ReadModifyWrite,
}

impl OpKind {
    pub const ALL: [OpKind; 4] = [OpKind::Read, OpKind::Update, OpKind::Insert, OpKind::ReadModifyWrite];

    pub fn name(self) -> &'static str {
        match self {
            OpKind::Read => "read",
            OpKind::Update => "update",
            OpKind::Insert => "insert",
            OpKind::ReadModifyWrite => "rmw",
        }
    }
}

/// How keys are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Distribution {
    Uniform,
    /// YCSB's scrambled zipfian (θ = 0.99): a few hot keys spread over the key space.
    Zipfian,
    /// Skewed towards the most recently inserted keys (YCSB's "latest").
    Latest,
}

impl fmt::Display for Distribution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Distribution::Uniform => "uniform",
            Distribution::Zipfian => "zipfian",
            Distribution::Latest => "latest",
        })
    }
}

impl FromStr for Distribution {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "uniform" => Ok(Distribution::Uniform),
            "zipfian" | "zipf" => Ok(Distribution::Zipfian),
            "latest" => Ok(Distribution::Latest),
            _ => Err(ParseError::Distribution(s.to_owned())),
        }
    }
}

/// A workload: which operations, in which proportions, on which keys by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// YCSB A: 50% reads, 50% updates, zipfian.
    A,
    /// YCSB B: 95% reads, 5% updates, zipfian.
    B,
    /// YCSB C: reads only, zipfian.
    C,
    /// YCSB D: 95% reads, 5% inserts, latest.
    D,
    /// YCSB E without scans: 95% reads, 5% inserts, uniform (see the module doc).
    E,
    /// YCSB F: 50% reads, 50% read-modify-writes, zipfian.
    F,
    /// The course harness's mix: `put_percent`% updates, the rest reads, uniform.
    Harness { put_percent: u8 },
}

impl Workload {
    /// The operation proportions.
    pub fn mix(self) -> Mix {
        match self {
            Workload::A => Mix::new(50, 50, 0, 0),
            Workload::B => Mix::new(95, 5, 0, 0),
            Workload::C => Mix::new(100, 0, 0, 0),
            Workload::D | Workload::E => Mix::new(95, 0, 5, 0),
            Workload::F => Mix::new(50, 0, 0, 50),
            Workload::Harness { put_percent } => {
                let put = u32::from(put_percent.min(100));
                Mix::new(100 - put, put, 0, 0)
            }
        }
    }

    /// The key distribution YCSB (or the harness) uses for it.
    pub fn default_distribution(self) -> Distribution {
        match self {
            Workload::A | Workload::B | Workload::C | Workload::F => Distribution::Zipfian,
            Workload::D => Distribution::Latest,
            Workload::E | Workload::Harness { .. } => Distribution::Uniform,
        }
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Workload::A => f.write_str("a"),
            Workload::B => f.write_str("b"),
            Workload::C => f.write_str("c"),
            Workload::D => f.write_str("d"),
            Workload::E => f.write_str("e"),
            Workload::F => f.write_str("f"),
            Workload::Harness { put_percent } => write!(f, "harness-put{put_percent}"),
        }
    }
}

impl FromStr for Workload {
    type Err = ParseError;

    /// `a`…`f`, `harness` (50% puts) or `harness-putP`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.to_ascii_lowercase();
        let workload = match lower.as_str() {
            "a" => Workload::A,
            "b" => Workload::B,
            "c" => Workload::C,
            "d" => Workload::D,
            "e" => Workload::E,
            "f" => Workload::F,
            "harness" => Workload::Harness { put_percent: 50 },
            other => {
                let percent = other
                    .strip_prefix("harness-put")
                    .and_then(|p| p.parse::<u8>().ok())
                    .filter(|p| *p <= 100)
                    .ok_or_else(|| ParseError::Workload(s.to_owned()))?;
                Workload::Harness { put_percent: percent }
            }
        };
        Ok(workload)
    }
}

/// Operation proportions in percent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Mix {
    pub read: u32,
    pub update: u32,
    pub insert: u32,
    pub read_modify_write: u32,
}

impl Mix {
    pub const fn new(read: u32, update: u32, insert: u32, read_modify_write: u32) -> Self {
        Mix {
            read,
            update,
            insert,
            read_modify_write,
        }
    }

    /// The sum of the weights (100 for every workload above).
    pub fn total(&self) -> u32 {
        self.read + self.update + self.insert + self.read_modify_write
    }

    /// The operation for a roll drawn uniformly from `0..self.total()`.
    pub fn choose(&self, roll: u32) -> OpKind {
        let mut left = roll;
        for (kind, weight) in [
            (OpKind::Read, self.read),
            (OpKind::Update, self.update),
            (OpKind::Insert, self.insert),
        ] {
            if left < weight {
                return kind;
            }
            left -= weight;
        }
        if self.read_modify_write > 0 {
            OpKind::ReadModifyWrite
        } else {
            OpKind::Read
        }
    }
}

/// YCSB's `ZipfianGenerator` (Gray et al., "Quickly generating billion-record
/// synthetic databases"): item 0 is the most popular, item i has weight
/// 1/(i+1)^θ.
#[derive(Debug, Clone)]
pub struct Zipfian {
    items: u64,
    theta: f64,
    alpha: f64,
    zetan: f64,
    eta: f64,
}

impl Zipfian {
    /// A zipfian over `0..items` (at least one item); computes ζ(items, θ)
    /// by summation, so keep `items` to a few million.
    pub fn new(items: u64, theta: f64) -> Self {
        let items = items.max(1);
        Zipfian::with_zetan(items, theta, zeta(items, theta))
    }

    /// A zipfian whose ζ(items, θ) is already known.
    pub fn with_zetan(items: u64, theta: f64, zetan: f64) -> Self {
        let items = items.max(1);
        let zeta2theta = zeta(2, theta);
        let alpha = 1.0 / (1.0 - theta);
        let eta = (1.0 - (2.0 / items as f64).powf(1.0 - theta)) / (1.0 - zeta2theta / zetan);
        Zipfian {
            items,
            theta,
            alpha,
            zetan,
            eta,
        }
    }

    pub fn items(&self) -> u64 {
        self.items
    }

    /// The item for a uniform `u` in `[0, 1)`.
    pub fn sample(&self, u: f64) -> u64 {
        let uz = u * self.zetan;
        if uz < 1.0 {
            return 0;
        }
        if uz < 1.0 + 0.5f64.powf(self.theta) {
            return 1.min(self.items - 1);
        }
        let spread = self.items as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha);
        (spread as u64).min(self.items - 1)
    }
}

/// ζ(n, θ) = Σ_{i=1..n} 1/i^θ.
fn zeta(n: u64, theta: f64) -> f64 {
    (1..=n).map(|i| 1.0 / (i as f64).powf(theta)).sum()
}

/// YCSB's `ScrambledZipfianGenerator`: a zipfian draw over 10¹⁰ items,
/// hashed (FNV-1a, 64 bits) onto `0..items`, so the hot keys are scattered
/// instead of being the lowest ones.
#[derive(Debug, Clone)]
pub struct ScrambledZipfian {
    items: u64,
    inner: Zipfian,
}

impl ScrambledZipfian {
    pub fn new(items: u64) -> Self {
        ScrambledZipfian {
            items: items.max(1),
            inner: Zipfian::with_zetan(SCRAMBLED_ITEMS, ZIPFIAN_THETA, SCRAMBLED_ZETAN),
        }
    }

    /// The item for a uniform `u` in `[0, 1)`.
    pub fn sample(&self, u: f64) -> u64 {
        fnv1a_64(self.inner.sample(u)) % self.items
    }
}

/// YCSB's `Utils.fnvhash64`: FNV-1a over the 8 little-endian bytes, made non-negative.
pub fn fnv1a_64(value: u64) -> u64 {
    const OFFSET_BASIS: u64 = 0xCBF2_9CE4_8422_2325;
    const PRIME: u64 = 1_099_511_628_211;
    let hash = value
        .to_le_bytes()
        .iter()
        .fold(OFFSET_BASIS, |hash, byte| (hash ^ u64::from(*byte)).wrapping_mul(PRIME));
    (hash as i64).unsigned_abs()
}

/// Picks keys in `0..existing` by a [`Distribution`]; `existing` grows as
/// inserts complete.
#[derive(Debug, Clone)]
pub struct KeyChooser {
    distribution: Distribution,
    scrambled: ScrambledZipfian,
    recency: Zipfian,
}

impl KeyChooser {
    /// A chooser for a key space loaded with `record_count` keys.
    pub fn new(distribution: Distribution, record_count: u64) -> Self {
        KeyChooser {
            distribution,
            scrambled: ScrambledZipfian::new(record_count),
            // YCSB's "latest" draws offsets back from the newest key; the
            // offsets' zipfian is fixed at the loaded size here (YCSB grows it).
            recency: Zipfian::new(
                if distribution == Distribution::Latest {
                    record_count
                } else {
                    1
                },
                ZIPFIAN_THETA,
            ),
        }
    }

    pub fn distribution(&self) -> Distribution {
        self.distribution
    }

    /// A key in `0..existing` (0 if nothing exists) for a uniform `u` in `[0, 1)`.
    pub fn pick(&self, u: f64, existing: u64) -> u64 {
        if existing == 0 {
            return 0;
        }
        match self.distribution {
            Distribution::Uniform => ((u * existing as f64) as u64).min(existing - 1),
            Distribution::Zipfian => self.scrambled.sample(u).min(existing - 1),
            Distribution::Latest => (existing - 1).saturating_sub(self.recency.sample(u)),
        }
    }
}

/// Insert sequence numbers: handed out in order, acknowledged in any order;
/// only the longest fully acknowledged prefix counts as existing (YCSB's
/// `AcknowledgedCounterGenerator`), so reads of "the latest keys" never ask
/// for a key whose insert is still in flight.
#[derive(Debug, Default)]
pub struct InsertSequence {
    next: AtomicU64,
    contiguous: AtomicU64,
    /// Acknowledged numbers past the prefix.
    pending: Mutex<BTreeSet<u64>>,
}

impl InsertSequence {
    /// The next sequence number (0, 1, 2, …).
    pub fn next(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// Marks `number` done (succeeded or given up on).
    pub fn acknowledge(&self, number: u64) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending.insert(number);
        let mut contiguous = self.contiguous.load(Ordering::Relaxed);
        while pending.remove(&contiguous) {
            contiguous += 1;
        }
        self.contiguous.store(contiguous, Ordering::Relaxed);
    }

    /// How many numbers from 0 on are all acknowledged.
    pub fn acknowledged(&self) -> u64 {
        self.contiguous.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` evenly spread uniforms, deterministic.
    fn uniforms(n: u32) -> impl Iterator<Item = f64> {
        (0..n).map(move |i| (f64::from(i) + 0.5) / f64::from(n))
    }

    fn counts(items: u64, draws: impl Iterator<Item = u64>) -> Vec<u64> {
        let mut counts = vec![0u64; items as usize];
        for item in draws {
            counts[item as usize] += 1;
        }
        counts
    }

    #[test]
    fn zipfian_stays_in_range_and_favours_low_items() {
        let zipf = Zipfian::new(1000, ZIPFIAN_THETA);
        let counts = counts(1000, uniforms(100_000).map(|u| zipf.sample(u)));
        assert_eq!(counts.iter().sum::<u64>(), 100_000);
        // P(0) = 1/ζ(1000, 0.99) ≈ 13%, and popularity falls with rank.
        let share0 = counts[0] as f64 / 100_000.0;
        assert!((0.11..0.16).contains(&share0), "share of item 0: {share0}");
        assert!(counts[0] > counts[1] && counts[1] > counts[10] && counts[10] > counts[500]);
        // The first 10% of the items carry most of the draws.
        let head: u64 = counts[..100].iter().sum();
        assert!(head > 60_000, "head {head}");
    }

    #[test]
    fn zipfian_extremes_are_in_range() {
        for items in [1, 2, 3, 1000] {
            let zipf = Zipfian::new(items, ZIPFIAN_THETA);
            for u in [0.0, 0.5, 0.999_999_999] {
                assert!(zipf.sample(u) < items, "items {items}, u {u}");
            }
        }
    }

    #[test]
    fn scrambled_zipfian_is_skewed_but_scattered() {
        let zipf = ScrambledZipfian::new(1000);
        let mut counts = counts(1000, uniforms(200_000).map(|u| zipf.sample(u)));
        // The hottest key is not key 0: hashing scatters the hot items.
        let hottest = (0..1000).max_by_key(|k| counts[*k]).unwrap_or(0);
        assert_ne!(hottest, 0);
        counts.sort_unstable_by(|a, b| b.cmp(a));
        let top10: u64 = counts[..10].iter().sum();
        let top100: u64 = counts[..100].iter().sum();
        // Uniform would give 1% and 10%.
        assert!(top10 as f64 / 200_000.0 > 0.10, "top 10 keys: {top10}");
        assert!(top100 as f64 / 200_000.0 > 0.25, "top 100 keys: {top100}");
    }

    #[test]
    fn fnv_matches_ycsb() {
        // FNV-1a of eight zero bytes is 0xA8C7_F832_281A_39C5, negative as a Java long.
        assert_eq!(fnv1a_64(0), 6_284_781_860_667_377_211);
    }

    #[test]
    fn key_chooser_ranges() {
        for distribution in [Distribution::Uniform, Distribution::Zipfian, Distribution::Latest] {
            let chooser = KeyChooser::new(distribution, 100);
            for u in uniforms(1000) {
                assert!(chooser.pick(u, 100) < 100);
                assert!(chooser.pick(u, 150) < 150);
            }
            assert_eq!(chooser.pick(0.3, 0), 0);
        }
    }

    #[test]
    fn latest_favours_the_newest_keys() {
        let chooser = KeyChooser::new(Distribution::Latest, 1000);
        let newest = uniforms(10_000).filter(|u| chooser.pick(*u, 1200) >= 1190).count();
        assert!(newest > 3_000, "draws among the 10 newest keys: {newest}");
    }

    #[test]
    fn only_the_acknowledged_prefix_of_inserts_exists() {
        let sequence = InsertSequence::default();
        let numbers: Vec<u64> = (0..4).map(|_| sequence.next()).collect();
        assert_eq!(numbers, [0, 1, 2, 3]);
        sequence.acknowledge(1);
        sequence.acknowledge(3);
        assert_eq!(sequence.acknowledged(), 0);
        sequence.acknowledge(0);
        assert_eq!(sequence.acknowledged(), 2);
        sequence.acknowledge(2);
        assert_eq!(sequence.acknowledged(), 4);
    }

    #[test]
    fn workload_mixes_add_up() {
        for workload in [
            Workload::A,
            Workload::B,
            Workload::C,
            Workload::D,
            Workload::E,
            Workload::F,
            Workload::Harness { put_percent: 0 },
            Workload::Harness { put_percent: 37 },
            Workload::Harness { put_percent: 100 },
        ] {
            assert_eq!(workload.mix().total(), 100, "{workload}");
        }
    }

    fn proportions(mix: Mix) -> [u32; 4] {
        let mut seen = [0u32; 4];
        for roll in 0..mix.total() {
            let index = OpKind::ALL.iter().position(|k| *k == mix.choose(roll)).unwrap_or(0);
            seen[index] += 1;
        }
        seen
    }

    #[test]
    fn workload_mix_proportions() {
        assert_eq!(proportions(Workload::A.mix()), [50, 50, 0, 0]);
        assert_eq!(proportions(Workload::B.mix()), [95, 5, 0, 0]);
        assert_eq!(proportions(Workload::C.mix()), [100, 0, 0, 0]);
        assert_eq!(proportions(Workload::D.mix()), [95, 0, 5, 0]);
        assert_eq!(proportions(Workload::E.mix()), [95, 0, 5, 0]);
        assert_eq!(proportions(Workload::F.mix()), [50, 0, 0, 50]);
        assert_eq!(
            proportions(Workload::Harness { put_percent: 100 }.mix()),
            [0, 100, 0, 0]
        );
        assert_eq!(proportions(Workload::Harness { put_percent: 30 }.mix()), [70, 30, 0, 0]);
    }

    #[test]
    fn default_distributions_follow_ycsb() {
        assert_eq!(Workload::A.default_distribution(), Distribution::Zipfian);
        assert_eq!(Workload::C.default_distribution(), Distribution::Zipfian);
        assert_eq!(Workload::D.default_distribution(), Distribution::Latest);
        assert_eq!(Workload::E.default_distribution(), Distribution::Uniform);
        assert_eq!(
            Workload::Harness { put_percent: 50 }.default_distribution(),
            Distribution::Uniform
        );
    }

    #[test]
    fn names_parse_back() {
        for name in ["a", "b", "c", "d", "e", "f", "harness-put50", "harness-put100"] {
            let workload: Workload = name.parse().unwrap_or(Workload::C);
            assert_eq!(workload.to_string(), name);
        }
        assert_eq!("harness".parse(), Ok(Workload::Harness { put_percent: 50 }));
        assert!("g".parse::<Workload>().is_err());
        assert!("harness-put101".parse::<Workload>().is_err());
        assert_eq!("zipfian".parse(), Ok(Distribution::Zipfian));
        assert!("normal".parse::<Distribution>().is_err());
    }
}
