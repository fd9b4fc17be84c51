//! What the frontend keeps on disk (`--data-dir`) to survive its own crash.
//!
//! Only metadata, never the data: the epoch (bumped at every start, so a
//! restarted frontend's versions are higher than any it wrote before) and
//! the membership (which servers were active, which were lost). The data
//! itself lives on the servers; a restarted frontend rebuilds its committed
//! state from the servers that were active (see [`crate::recovery`]). The
//! record is replaced atomically (write, fsync, rename, fsync the folder;
//! see [`kvs_process::folder`]).
//!
//! One frontend at a time: opening the folder takes an exclusive lock on
//! `lock` in it (released when the process ends, however it ends), and a
//! record is never replaced by one with an older epoch — a frontend that
//! finds a newer epoch on disk has been superseded.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use kvs_process::folder::{FolderError, LockedFolder};
use kvs_proto::ServerId;
use serde::{Deserialize, Serialize};
use thiserror::Error;

const RECORD_FILE: &str = "cluster.json";

/// The durable cluster record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterRecord {
    /// The cluster's id, drawn at random on first start (0 in a record from
    /// before clusters had ids: one is drawn then); see [`kvs_proto::fence`].
    #[serde(default)]
    pub cluster: u64,
    /// The frontend's incarnation; versions it assigns start at `epoch << 40`.
    pub epoch: u64,
    /// Servers holding every acknowledged write.
    pub active: Vec<ServerId>,
    /// Servers that failed or were still catching up: to be readmitted.
    pub lost: Vec<ServerId>,
    /// The boot id (see `kvs_proto::reply::alive`) of each active server,
    /// where known: a server that answers with another one restarted and
    /// lost what it held, so recovery must not read from it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub boots: BTreeMap<ServerId, String>,
    /// No server holds the acknowledged writes: the last ones that did
    /// restarted empty, or were emptied for a catch-up, while none was
    /// active, so only the frontend that wrote this record had them (in
    /// memory). A restarted frontend must then refuse to serve, never start
    /// empty as if no write had been acknowledged (`active` is empty then).
    #[serde(default, skip_serializing_if = "is_false")]
    pub unheld: bool,
    /// Where the frontend of `epoch` held the data folder (see
    /// [`RecordStore::holder`]): a successor that finds its own holder here
    /// knows that frontend has ended, and need not wait out its lease.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// Why the record could not be read or written.
#[derive(Debug, Error)]
pub enum DurableError {
    #[error(transparent)]
    Folder(#[from] FolderError),
    #[error("{path} is not a valid cluster record: {source}")]
    Corrupt { path: PathBuf, source: serde_json::Error },
    #[error("{path} holds epoch {on_disk}, newer than this frontend's {ours}: it has been superseded")]
    Superseded { path: PathBuf, on_disk: u64, ours: u64 },
}

/// Where the record is kept: a [`DataDir`] in production, memory (that
/// may be made to fail) in a simulation.
pub trait RecordStore: Send + Sync {
    /// The stored record, or an empty one on first start.
    fn load(&self) -> Result<ClusterRecord, DurableError>;
    /// Replaces the record atomically and durably, unless the stored one
    /// has a newer epoch ([`DurableError::Superseded`]).
    fn store(&self, record: &ClusterRecord) -> Result<(), DurableError>;
    /// Who holds the store, told apart well enough that a process finding
    /// its predecessor's holder equal to its own knows that predecessor has
    /// ended ([`LockedFolder::holder`]); `None` where that cannot be told.
    fn holder(&self) -> Option<String> {
        None
    }
}

/// The frontend's data folder, locked for this process.
#[derive(Debug, Clone)]
pub struct DataDir {
    folder: LockedFolder,
}

impl DataDir {
    /// Opens (creating if needed) the folder and locks it, or fails at once
    /// if another process holds it.
    pub fn open(dir: &Path) -> Result<Self, DurableError> {
        Ok(DataDir {
            folder: LockedFolder::open(dir)?,
        })
    }
}

impl RecordStore for DataDir {
    fn load(&self) -> Result<ClusterRecord, DurableError> {
        let path = self.folder.join(RECORD_FILE);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| DurableError::Corrupt { path, source }),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(ClusterRecord::default()),
            Err(source) => Err(FolderError::Io { path, source }.into()),
        }
    }

    fn store(&self, record: &ClusterRecord) -> Result<(), DurableError> {
        let on_disk = self.load()?.epoch;
        let path = self.folder.join(RECORD_FILE);
        if on_disk > record.epoch {
            return Err(DurableError::Superseded {
                path,
                on_disk,
                ours: record.epoch,
            });
        }
        let bytes = serde_json::to_vec_pretty(record).map_err(|source| DurableError::Corrupt { path, source })?;
        Ok(self.folder.replace(RECORD_FILE, &bytes)?)
    }

    fn holder(&self) -> Option<String> {
        self.folder.holder()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips_and_starts_empty() -> Result<(), DurableError> {
        let dir = std::env::temp_dir().join(format!("kvs-durable-test-{}", std::process::id()));
        let data = DataDir::open(&dir)?;
        assert_eq!(data.load()?, ClusterRecord::default());
        let record = ClusterRecord {
            cluster: 9,
            epoch: 3,
            active: vec![0, 2],
            lost: vec![1],
            boots: BTreeMap::from([(0, "b0".to_owned())]),
            unheld: false,
            holder: Some("boot/1:2".to_owned()),
        };
        data.store(&record)?;
        assert_eq!(data.load()?, record);
        drop(data);
        assert_eq!(DataDir::open(&dir)?.load()?, record);
        let _ = fs::remove_dir_all(&dir);
        Ok(())
    }

    #[test]
    fn one_frontend_per_folder_and_no_older_epoch() -> Result<(), DurableError> {
        let dir = std::env::temp_dir().join(format!("kvs-durable-lock-{}", std::process::id()));
        let data = DataDir::open(&dir)?;
        assert!(matches!(
            DataDir::open(&dir),
            Err(DurableError::Folder(FolderError::Locked { .. }))
        ));
        let newer = ClusterRecord {
            epoch: 5,
            ..ClusterRecord::default()
        };
        data.store(&newer)?;
        let older = ClusterRecord {
            epoch: 4,
            ..ClusterRecord::default()
        };
        assert!(matches!(
            data.store(&older),
            Err(DurableError::Superseded { on_disk: 5, .. })
        ));
        assert_eq!(data.load()?, newer);
        drop(data);
        assert!(DataDir::open(&dir).is_ok(), "the lock goes with the process's handle");
        let _ = fs::remove_dir_all(&dir);
        Ok(())
    }
}
