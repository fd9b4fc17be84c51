//! The replication batch: versioned writes in a compact binary form.
//!
//! `applyBatch` carries one XML-RPC `<base64>` parameter: an 8-byte
//! little-endian *stable point* (see [`Batch::stable`]) followed by a run of
//! 16-byte little-endian records: key (i32), value (i32), version (u64).
//! `dumpState` replies with records only. The version is the frontend's
//! write sequence number; a server keeps, per key, the value with the
//! highest version, so batches and snapshot chunks may arrive in any order
//! and every replica still converges to the same state.

use thiserror::Error;

use crate::{Key, Value};

/// Size of one encoded entry.
pub const ENTRY_BYTES: usize = 16;
/// Size of the stable point in front of an `applyBatch` payload.
pub const STABLE_BYTES: usize = 8;

/// What one `applyBatch` call carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The frontend promises the server has now been sent every write with
    /// a version at or below this, and will never again be sent an older
    /// one (until it is reset). 0 promises nothing (during a catch-up).
    pub stable: u64,
    /// The writes, in the order they were encoded.
    pub entries: Vec<Entry>,
}

/// One versioned write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The key written.
    pub key: Key,
    /// The value written.
    pub value: Value,
    /// The frontend's sequence number for this write; higher wins.
    pub version: u64,
}

/// A batch that is not a stable point and a whole number of entries.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("a payload of {len} bytes is not a {header}-byte header and a multiple of {ENTRY_BYTES}")]
pub struct BatchError {
    /// The payload's length in bytes.
    pub len: usize,
    /// The header length the decoder expected.
    pub header: usize,
}

/// Encodes an `applyBatch` payload.
pub fn encode_batch(stable: u64, entries: &[Entry]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(batch_len(entries.len()));
    append_batch(stable, entries, &mut bytes);
    bytes
}

/// The length of an `applyBatch` payload of `entries` writes.
pub fn batch_len(entries: usize) -> usize {
    STABLE_BYTES + entries * ENTRY_BYTES
}

/// Appends an `applyBatch` payload to `bytes` (behind a frame header, say).
pub fn append_batch(stable: u64, entries: &[Entry], bytes: &mut Vec<u8>) {
    bytes.extend_from_slice(&stable.to_le_bytes());
    append(entries, bytes);
}

/// Decodes an `applyBatch` payload.
pub fn decode_batch(bytes: &[u8]) -> Result<Batch, BatchError> {
    let error = BatchError {
        len: bytes.len(),
        header: STABLE_BYTES,
    };
    let (stable, records) = bytes.split_first_chunk::<STABLE_BYTES>().ok_or(error.clone())?;
    let entries = decode(records).map_err(|_| error)?;
    Ok(Batch {
        stable: u64::from_le_bytes(*stable),
        entries,
    })
}

/// Encodes entries (a `dumpState` page).
pub fn encode(entries: &[Entry]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(entries.len() * ENTRY_BYTES);
    append(entries, &mut bytes);
    bytes
}

/// What `rejoin` replies: an 8-byte little-endian stable point, then the
/// forgotten keys, 4 bytes each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rejoin {
    /// Every write at or below this version had reached the server.
    pub stable: u64,
    /// The keys it held a write above `stable` for, now forgotten.
    pub forgotten: Vec<Key>,
}

impl Rejoin {
    /// The reply's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(STABLE_BYTES + self.forgotten.len() * 4);
        bytes.extend_from_slice(&self.stable.to_le_bytes());
        for key in &self.forgotten {
            bytes.extend_from_slice(&key.to_le_bytes());
        }
        bytes
    }

    /// Reads a reply.
    pub fn decode(bytes: &[u8]) -> Result<Rejoin, BatchError> {
        let error = BatchError {
            len: bytes.len(),
            header: STABLE_BYTES,
        };
        let (stable, keys) = bytes.split_first_chunk::<STABLE_BYTES>().ok_or(error.clone())?;
        let keys = keys.chunks_exact(4);
        if !keys.remainder().is_empty() {
            return Err(error);
        }
        Ok(Rejoin {
            stable: u64::from_le_bytes(*stable),
            forgotten: keys
                .map(|key| Key::from_le_bytes([key[0], key[1], key[2], key[3]]))
                .collect(),
        })
    }
}

fn append(entries: &[Entry], bytes: &mut Vec<u8>) {
    for entry in entries {
        bytes.extend_from_slice(&entry.key.to_le_bytes());
        bytes.extend_from_slice(&entry.value.to_le_bytes());
        bytes.extend_from_slice(&entry.version.to_le_bytes());
    }
}

/// Decodes entries (a `dumpState` page).
pub fn decode(bytes: &[u8]) -> Result<Vec<Entry>, BatchError> {
    let records = bytes.chunks_exact(ENTRY_BYTES);
    if !records.remainder().is_empty() {
        return Err(BatchError {
            len: bytes.len(),
            header: 0,
        });
    }
    Ok(records.map(decode_record).collect())
}

fn decode_record(record: &[u8]) -> Entry {
    let mut key = [0u8; 4];
    let mut value = [0u8; 4];
    let mut version = [0u8; 8];
    key.copy_from_slice(&record[0..4]);
    value.copy_from_slice(&record[4..8]);
    version.copy_from_slice(&record[8..16]);
    Entry {
        key: i32::from_le_bytes(key),
        value: i32::from_le_bytes(value),
        version: u64::from_le_bytes(version),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let entries = vec![
            Entry {
                key: -1,
                value: i32::MAX,
                version: u64::MAX,
            },
            Entry {
                key: 7,
                value: 0,
                version: 1,
            },
        ];
        let bytes = encode(&entries);
        assert_eq!(bytes.len(), 32);
        assert_eq!(decode(&bytes), Ok(entries.clone()));
        let rejoin = Rejoin {
            stable: 5,
            forgotten: vec![-3, 9],
        };
        assert_eq!(Rejoin::decode(&rejoin.encode()), Ok(rejoin));
        assert!(Rejoin::decode(&[0; 10]).is_err());
        let payload = encode_batch(99, &entries);
        assert_eq!(payload.len(), STABLE_BYTES + 32);
        assert_eq!(decode_batch(&payload), Ok(Batch { stable: 99, entries }));
    }

    #[test]
    fn torn_batch_is_refused() {
        assert_eq!(decode(&[0; 17]), Err(BatchError { len: 17, header: 0 }));
        assert_eq!(decode(&[]), Ok(vec![]));
        assert_eq!(decode_batch(&[0; 7]), Err(BatchError { len: 7, header: 8 }));
        assert_eq!(decode_batch(&[0; 25]), Err(BatchError { len: 25, header: 8 }));
        assert_eq!(decode_batch(&[0; 8]).map(|b| b.entries.len()), Ok(0));
    }
}
