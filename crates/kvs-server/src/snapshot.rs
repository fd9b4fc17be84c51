//! The snapshot file: the whole store at one point of the log.
//!
//! Layout (little-endian): the magic `KVSSNAP2`; the number of the first
//! log file *not* folded into it (`first_log`); the stable point; whether
//! local writes changed the store (0 or 1); the counts of settled and
//! recent pairs; the settled pairs (key i32, value
//! i32), strictly ordered by key; the recent pairs (key, value, version
//! u64); and a crc32 of everything before it. A snapshot that fails any
//! check is refused whole: it was written to a temporary file, synced and
//! renamed into place, so a bad one means the disk lost data.

use kvs_proto::batch::{self, ENTRY_BYTES};
use kvs_proto::{Entry, Key, Value};
use thiserror::Error;

use crate::store::StoreImage;

const MAGIC: &[u8; 8] = b"KVSSNAP2";
const HEADER_BYTES: usize = 8 + 5 * 8;
const PAIR_BYTES: usize = 8;
const CRC_BYTES: usize = 4;

/// A snapshot: the store, and where the log takes over.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Log files numbered from this one on hold what came after.
    pub first_log: u64,
    pub image: StoreImage,
}

/// Why a snapshot file was refused.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum SnapshotError {
    #[error("not a kvs snapshot (bad magic)")]
    Magic,
    #[error("{0} bytes is the wrong size for the pair counts it declares")]
    Size(usize),
    #[error("checksum mismatch")]
    Checksum,
    #[error("settled pairs are not strictly ordered by key")]
    Order,
}

impl Snapshot {
    /// The file's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let image = &self.image;
        let mut bytes = Vec::with_capacity(
            HEADER_BYTES + image.settled.len() * PAIR_BYTES + image.recent.len() * ENTRY_BYTES + CRC_BYTES,
        );
        bytes.extend_from_slice(MAGIC);
        for field in [
            self.first_log,
            image.stable,
            u64::from(image.local_writes),
            image.settled.len() as u64,
            image.recent.len() as u64,
        ] {
            bytes.extend_from_slice(&field.to_le_bytes());
        }
        for (key, value) in &image.settled {
            bytes.extend_from_slice(&key.to_le_bytes());
            bytes.extend_from_slice(&value.to_le_bytes());
        }
        bytes.extend_from_slice(&batch::encode(&image.recent));
        let crc = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&crc.to_le_bytes());
        bytes
    }

    /// Reads a snapshot file's bytes, checking every part of it.
    pub fn decode(bytes: &[u8]) -> Result<Snapshot, SnapshotError> {
        let size = SnapshotError::Size(bytes.len());
        let (body, crc) = bytes.split_last_chunk::<CRC_BYTES>().ok_or(size.clone())?;
        let (magic, rest) = body.split_first_chunk::<8>().ok_or(size.clone())?;
        if magic != MAGIC {
            return Err(SnapshotError::Magic);
        }
        if crc32fast::hash(body) != u32::from_le_bytes(*crc) {
            return Err(SnapshotError::Checksum);
        }
        let mut fields = rest.chunks_exact(8).take(5).map(|chunk| {
            let mut word = [0; 8];
            word.copy_from_slice(chunk);
            u64::from_le_bytes(word)
        });
        let mut field = || fields.next().ok_or(size.clone());
        let (first_log, stable, local_writes, settled, recent) = (field()?, field()?, field()?, field()?, field()?);
        let settled_bytes = usize::try_from(settled).ok().and_then(|n| n.checked_mul(PAIR_BYTES));
        let recent_bytes = usize::try_from(recent).ok().and_then(|n| n.checked_mul(ENTRY_BYTES));
        let pairs = rest.get(HEADER_BYTES - MAGIC.len()..).ok_or(size.clone())?;
        let (Some(settled_bytes), Some(recent_bytes)) = (settled_bytes, recent_bytes) else {
            return Err(size);
        };
        if settled_bytes.checked_add(recent_bytes) != Some(pairs.len()) {
            return Err(size);
        }
        let (settled_part, recent_part) = pairs.split_at(settled_bytes);
        let settled: Vec<(Key, Value)> = settled_part
            .chunks_exact(PAIR_BYTES)
            .map(|pair| {
                let key = Key::from_le_bytes([pair[0], pair[1], pair[2], pair[3]]);
                let value = Value::from_le_bytes([pair[4], pair[5], pair[6], pair[7]]);
                (key, value)
            })
            .collect();
        if settled.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(SnapshotError::Order);
        }
        let recent: Vec<Entry> = batch::decode(recent_part).map_err(|_| size)?;
        Ok(Snapshot {
            first_log,
            image: StoreImage {
                settled,
                recent,
                stable,
                local_writes: local_writes != 0,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> Snapshot {
        Snapshot {
            first_log: 4,
            image: StoreImage {
                settled: (0..100).map(|k| (k * 3, -k)).collect(),
                recent: vec![Entry {
                    key: 1,
                    value: 11,
                    version: 90,
                }],
                stable: 80,
                local_writes: true,
            },
        }
    }

    #[test]
    fn a_snapshot_reads_back() {
        assert_eq!(Snapshot::decode(&snapshot().encode()), Ok(snapshot()));
        assert_eq!(Snapshot::decode(&Snapshot::default().encode()), Ok(Snapshot::default()));
    }

    #[test]
    fn any_damage_is_refused() {
        let bytes = snapshot().encode();
        for cut in 0..bytes.len() {
            assert!(Snapshot::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        for at in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x01;
            assert!(Snapshot::decode(&damaged).is_err(), "flip at {at}");
        }
    }
}
