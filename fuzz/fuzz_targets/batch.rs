//! The replication batch decoder: what decodes re-encodes to the same
//! bytes, and exactly the torn payloads are refused.

#![no_main]

use kvs_proto::batch::{self, ENTRY_BYTES, STABLE_BYTES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match batch::decode(data) {
        Ok(entries) => {
            assert!(data.len().is_multiple_of(ENTRY_BYTES));
            assert_eq!(entries.len(), data.len() / ENTRY_BYTES);
            assert_eq!(batch::encode(&entries), data, "entries do not round-trip");
        }
        Err(error) => {
            assert!(
                !data.len().is_multiple_of(ENTRY_BYTES),
                "a whole number of entries refused"
            );
            assert_eq!((error.len, error.header), (data.len(), 0));
        }
    }
    match batch::decode_batch(data) {
        Ok(decoded) => {
            let (stable, records) = data.split_at(STABLE_BYTES);
            assert_eq!(decoded.stable.to_le_bytes(), stable);
            assert_eq!(batch::decode(records).as_ref(), Ok(&decoded.entries));
            assert_eq!(
                batch::encode_batch(decoded.stable, &decoded.entries),
                data,
                "a batch does not round-trip"
            );
        }
        Err(error) => {
            assert!(
                data.len() < STABLE_BYTES || !(data.len() - STABLE_BYTES).is_multiple_of(ENTRY_BYTES),
                "a well-sized batch refused"
            );
            assert_eq!((error.len, error.header), (data.len(), STABLE_BYTES));
        }
    }
});
