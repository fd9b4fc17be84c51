//! The frontend's data folder in memory: the cluster record, kept across
//! frontend crashes, on a disk the simulation can make fail.

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use kvs_frontend::durable::{ClusterRecord, DurableError, RecordStore};
use kvs_process::folder::FolderError;
use parking_lot::Mutex;

/// A record store in memory, with the same refusal of an older epoch as
/// the real data folder.
#[derive(Debug, Default)]
pub struct MemoryDisk {
    record: Mutex<ClusterRecord>,
    failing: AtomicBool,
    /// What [`RecordStore::holder`] says: with one, a restarted frontend
    /// knows its crashed predecessor has ended (as on a real folder on the
    /// same machine); without, it waits out the lease.
    holder: Option<String>,
}

impl MemoryDisk {
    /// A disk that names its holder (`true`) or cannot.
    pub fn new(names_holder: bool) -> Self {
        MemoryDisk {
            holder: names_holder.then(|| "simulated disk".to_owned()),
            ..MemoryDisk::default()
        }
    }

    /// Makes every write fail (`true`) or succeed again.
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// The record as last stored.
    pub fn record(&self) -> ClusterRecord {
        self.record.lock().clone()
    }

    fn path() -> PathBuf {
        PathBuf::from("simulated disk")
    }
}

impl RecordStore for MemoryDisk {
    fn load(&self) -> Result<ClusterRecord, DurableError> {
        Ok(self.record.lock().clone())
    }

    fn store(&self, record: &ClusterRecord) -> Result<(), DurableError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(FolderError::Io {
                path: Self::path(),
                source: io::Error::other("simulated disk failure"),
            }
            .into());
        }
        let mut stored = self.record.lock();
        if stored.epoch > record.epoch {
            return Err(DurableError::Superseded {
                path: Self::path(),
                on_disk: stored.epoch,
                ours: record.epoch,
            });
        }
        *stored = record.clone();
        Ok(())
    }

    fn holder(&self) -> Option<String> {
        self.holder.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_epoch_and_fails_when_told() -> Result<(), DurableError> {
        let disk = MemoryDisk::default();
        let record = |epoch| ClusterRecord {
            epoch,
            ..ClusterRecord::default()
        };
        disk.store(&record(2))?;
        assert!(matches!(disk.store(&record(1)), Err(DurableError::Superseded { .. })));
        disk.set_failing(true);
        assert!(matches!(
            disk.store(&record(3)),
            Err(DurableError::Folder(FolderError::Io { .. }))
        ));
        disk.set_failing(false);
        disk.store(&record(3))?;
        assert_eq!(disk.load()?.epoch, 3);
        Ok(())
    }
}
