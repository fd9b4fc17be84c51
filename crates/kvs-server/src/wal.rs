//! The write-ahead log's records on disk: framing, checksums, reading back.
//!
//! A log file is a run of frames, each `[length u32][crc32 u32][payload]`
//! (little-endian; the checksum covers the payload). A payload is a tag
//! byte and the record's body:
//!
//! - `1` [`Record::Batch`]: an `applyBatch` payload exactly as the wire
//!   carries it (stable point, then versioned entries; see
//!   [`kvs_proto::batch`]), so logging a batch copies its bytes once;
//! - `2` [`Record::LocalPut`]: the course skeleton's local `put`;
//! - `3` [`Record::Reset`]: `resetStore` emptied the store;
//! - `4` [`Record::ForgetAbove`]: `rejoin` forgot the writes above a stable
//!   point (8 bytes).
//!
//! Reading stops at the first frame that is cut short or fails its
//! checksum: after a crash that is the torn tail of the last write, which
//! was never acknowledged (a record is acknowledged only once synced).

use kvs_proto::batch::{self, Batch};
use kvs_proto::{Key, Value};
use thiserror::Error;

const HEADER_BYTES: usize = 8;
const TAG_BATCH: u8 = 1;
const TAG_LOCAL_PUT: u8 = 2;
const TAG_RESET: u8 = 3;
const TAG_FORGET_ABOVE: u8 = 4;

/// One logged change to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A replicated batch and its stable point.
    Batch(Batch),
    /// A local, unversioned write.
    LocalPut { key: Key, value: Value },
    /// The store was emptied.
    Reset,
    /// The writes above this stable point were forgotten.
    ForgetAbove(u64),
}

/// Why a frame could not be read.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("{0} bytes at the end are too few for a frame")]
    Short(usize),
    #[error("a frame of {length} bytes runs past the end ({available} bytes left)")]
    Truncated { length: usize, available: usize },
    #[error("checksum mismatch")]
    Checksum,
    #[error("payload does not decode: {0}")]
    Payload(String),
}

/// The frame of a batch whose wire payload is `payload` (see [`kvs_proto::batch::encode_batch`]).
pub fn batch_frame(payload: &[u8]) -> Vec<u8> {
    frame(TAG_BATCH, payload)
}

/// The frame of a record.
pub fn encode(record: &Record) -> Vec<u8> {
    match record {
        Record::Batch(b) => batch_frame(&batch::encode_batch(b.stable, &b.entries)),
        Record::LocalPut { key, value } => {
            let mut body = key.to_le_bytes().to_vec();
            body.extend_from_slice(&value.to_le_bytes());
            frame(TAG_LOCAL_PUT, &body)
        }
        Record::Reset => frame(TAG_RESET, &[]),
        Record::ForgetAbove(stable) => frame(TAG_FORGET_ABOVE, &stable.to_le_bytes()),
    }
}

fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
    let length = u32::try_from(body.len() + 1).unwrap_or(u32::MAX);
    let mut bytes = Vec::with_capacity(HEADER_BYTES + 1 + body.len());
    bytes.extend_from_slice(&length.to_le_bytes());
    bytes.extend_from_slice(&[0; 4]);
    bytes.push(tag);
    bytes.extend_from_slice(body);
    let crc = crc32fast::hash(&bytes[HEADER_BYTES..]);
    bytes[4..HEADER_BYTES].copy_from_slice(&crc.to_le_bytes());
    bytes
}

/// What reading a log file gave.
#[derive(Debug)]
pub struct Replay {
    /// Every whole, intact record, in order.
    pub records: Vec<Record>,
    /// Bytes taken by those records: the file's valid prefix.
    pub valid: usize,
    /// Why reading stopped before the end, if it did.
    pub stopped: Option<FrameError>,
}

/// Reads the records of a log file's contents, up to the first bad frame.
pub fn read(bytes: &[u8]) -> Replay {
    let mut records = Vec::new();
    let mut at = 0;
    let stopped = loop {
        if at == bytes.len() {
            break None;
        }
        match read_frame(&bytes[at..]) {
            Ok((record, used)) => {
                records.push(record);
                at += used;
            }
            Err(error) => break Some(error),
        }
    };
    Replay {
        records,
        valid: at,
        stopped,
    }
}

/// One frame at the start of `bytes`, and how many bytes it took.
fn read_frame(bytes: &[u8]) -> Result<(Record, usize), FrameError> {
    let (header, rest) = bytes
        .split_first_chunk::<HEADER_BYTES>()
        .ok_or(FrameError::Short(bytes.len()))?;
    let [l0, l1, l2, l3, c0, c1, c2, c3] = *header;
    let length = u32::from_le_bytes([l0, l1, l2, l3]) as usize;
    let payload = rest.get(..length).ok_or(FrameError::Truncated {
        length,
        available: rest.len(),
    })?;
    if crc32fast::hash(payload) != u32::from_le_bytes([c0, c1, c2, c3]) {
        return Err(FrameError::Checksum);
    }
    let (tag, body) = payload
        .split_first()
        .ok_or_else(|| FrameError::Payload("empty payload".to_owned()))?;
    let record = match *tag {
        TAG_BATCH => Record::Batch(batch::decode_batch(body).map_err(|e| FrameError::Payload(e.to_string()))?),
        TAG_LOCAL_PUT => match body {
            [k0, k1, k2, k3, v0, v1, v2, v3] => Record::LocalPut {
                key: Key::from_le_bytes([*k0, *k1, *k2, *k3]),
                value: Value::from_le_bytes([*v0, *v1, *v2, *v3]),
            },
            _ => return Err(FrameError::Payload(format!("a local put of {} bytes", body.len()))),
        },
        TAG_RESET if body.is_empty() => Record::Reset,
        TAG_FORGET_ABOVE => match <[u8; 8]>::try_from(body) {
            Ok(stable) => Record::ForgetAbove(u64::from_le_bytes(stable)),
            Err(_) => return Err(FrameError::Payload(format!("a forget of {} bytes", body.len()))),
        },
        other => return Err(FrameError::Payload(format!("tag {other} with {} bytes", body.len()))),
    };
    Ok((record, HEADER_BYTES + length))
}

#[cfg(test)]
mod tests {
    use kvs_proto::Entry;

    use super::*;

    fn records() -> Vec<Record> {
        vec![
            Record::Batch(Batch {
                stable: 7,
                entries: vec![
                    Entry {
                        key: 1,
                        value: 10,
                        version: 8,
                    },
                    Entry {
                        key: -2,
                        value: 20,
                        version: 9,
                    },
                ],
            }),
            Record::LocalPut { key: 3, value: -3 },
            Record::ForgetAbove(7),
            Record::Reset,
            Record::Batch(Batch {
                stable: 0,
                entries: Vec::new(),
            }),
        ]
    }

    fn log_of(records: &[Record]) -> Vec<u8> {
        records.iter().flat_map(encode).collect()
    }

    #[test]
    fn records_read_back_in_order() {
        let bytes = log_of(&records());
        let replay = read(&bytes);
        assert_eq!(replay.records, records());
        assert_eq!(replay.valid, bytes.len());
        assert_eq!(replay.stopped, None);
    }

    #[test]
    fn a_torn_last_record_is_dropped_at_every_cut() {
        let whole = log_of(&records());
        let last = records().len() - 1;
        let before_last = log_of(&records()[..last]).len();
        for cut in before_last + 1..whole.len() {
            let replay = read(&whole[..cut]);
            assert_eq!(replay.records, records()[..last], "cut at {cut}");
            assert_eq!(replay.valid, before_last);
            assert!(replay.stopped.is_some());
        }
    }

    #[test]
    fn a_flipped_bit_stops_reading_at_its_record() {
        let whole = log_of(&records());
        let first = encode(&records()[0]).len();
        for at in first..first + encode(&records()[1]).len() {
            let mut bytes = whole.clone();
            bytes[at] ^= 0x10;
            let replay = read(&bytes);
            assert_eq!(replay.records, records()[..1], "flip at {at}");
            assert_eq!(replay.valid, first);
        }
    }

    #[test]
    fn zeroed_space_after_the_last_record_is_a_torn_tail() {
        let mut bytes = log_of(&records());
        let valid = bytes.len();
        bytes.extend_from_slice(&[0; 100]);
        let replay = read(&bytes);
        assert_eq!(replay.valid, valid);
        assert!(replay.stopped.is_some());
    }
}
