//! The replication batch: versioned writes in a compact binary form.
//!
//! `applyBatch` carries one XML-RPC `<base64>` parameter holding a run of
//! 16-byte little-endian records: key (i32), value (i32), version (u64). The
//! version is the frontend's write sequence number; a server keeps, per key,
//! the value with the highest version, so batches and snapshot chunks may
//! arrive in any order and every replica still converges to the same state.

use thiserror::Error;

use crate::{Key, Value};

/// Size of one encoded entry.
pub const ENTRY_BYTES: usize = 16;

/// One versioned write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub key: Key,
    pub value: Value,
    /// The frontend's sequence number for this write; higher wins.
    pub version: u64,
}

/// A batch that is not a whole number of entries.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("a batch of {len} bytes is not a multiple of {ENTRY_BYTES}")]
pub struct BatchError {
    pub len: usize,
}

/// Encodes entries for `applyBatch`.
pub fn encode(entries: &[Entry]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(entries.len() * ENTRY_BYTES);
    for entry in entries {
        bytes.extend_from_slice(&entry.key.to_le_bytes());
        bytes.extend_from_slice(&entry.value.to_le_bytes());
        bytes.extend_from_slice(&entry.version.to_le_bytes());
    }
    bytes
}

/// Decodes an `applyBatch` payload.
pub fn decode(bytes: &[u8]) -> Result<Vec<Entry>, BatchError> {
    let records = bytes.chunks_exact(ENTRY_BYTES);
    if !records.remainder().is_empty() {
        return Err(BatchError { len: bytes.len() });
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
        assert_eq!(decode(&bytes), Ok(entries));
    }

    #[test]
    fn torn_batch_is_refused() {
        assert_eq!(decode(&[0; 17]), Err(BatchError { len: 17 }));
        assert_eq!(decode(&[]), Ok(vec![]));
    }
}
