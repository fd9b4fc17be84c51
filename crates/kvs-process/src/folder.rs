//! A process's data folder (`--data-dir`), as the frontend and the servers
//! keep one: opened for one process at a time (an exclusive lock on `lock`
//! in it, released when the process ends, however it ends), and files in
//! it replaced atomically and durably (write a temporary file, sync it,
//! rename it over the old one, sync the folder).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use thiserror::Error;

const LOCK_FILE: &str = "lock";
/// The running kernel's boot id (Linux).
const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";

/// Why the folder could not be opened or a file in it written.
#[derive(Debug, Error)]
pub enum FolderError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path} is locked: another process uses this data folder")]
    Locked { path: PathBuf },
}

impl FolderError {
    /// An I/O error about `path`, as a closure for `map_err`.
    pub fn io(path: &Path) -> impl FnOnce(io::Error) -> FolderError + use<> {
        let path = path.to_owned();
        move |source| FolderError::Io { path, source }
    }
}

/// A data folder, locked for this process.
#[derive(Debug, Clone)]
pub struct LockedFolder {
    dir: PathBuf,
    /// Held open for the lock it carries.
    _lock: Arc<File>,
}

impl LockedFolder {
    /// Opens (creating if needed) the folder and locks it, or fails at once
    /// if another process holds it.
    pub fn open(dir: &Path) -> Result<Self, FolderError> {
        fs::create_dir_all(dir).map_err(FolderError::io(dir))?;
        let path = dir.join(LOCK_FILE);
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(FolderError::io(&path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(FolderError::Locked { path }),
            Err(fs::TryLockError::Error(source)) => return Err(FolderError::Io { path, source }),
        }
        Ok(LockedFolder {
            dir: dir.to_owned(),
            _lock: Arc::new(lock),
        })
    }

    /// Who holds this folder's lock: the running kernel's boot id and the
    /// folder's device and inode. Two processes get the same answer only if
    /// they locked this very folder under this very kernel, where a lock is
    /// released only when its holder ends: a process holding the lock that
    /// finds its predecessor's answer equal to its own knows that
    /// predecessor has ended. `None` where the boot id cannot be read.
    pub fn holder(&self) -> Option<String> {
        use std::os::unix::fs::MetadataExt;
        let boot = fs::read_to_string(BOOT_ID).ok()?;
        let folder = fs::metadata(&self.dir).ok()?;
        Some(format!("{}/{}:{}", boot.trim(), folder.dev(), folder.ino()))
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The path of `name` in the folder.
    pub fn join(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Replaces `name` with `bytes`, atomically and durably: after a crash
    /// at any moment the file is either the old one or the new one, whole.
    pub fn replace(&self, name: &str, bytes: &[u8]) -> Result<(), FolderError> {
        let tmp = self.dir.join(format!("{name}.tmp"));
        let path = self.dir.join(name);
        let mut file = File::create(&tmp).map_err(FolderError::io(&tmp))?;
        file.write_all(bytes).map_err(FolderError::io(&tmp))?;
        file.sync_all().map_err(FolderError::io(&tmp))?;
        fs::rename(&tmp, &path).map_err(FolderError::io(&path))?;
        self.sync()
    }

    /// Makes the folder's entries (files created, renamed or removed) durable.
    pub fn sync(&self) -> Result<(), FolderError> {
        File::open(&self.dir)
            .and_then(|dir| dir.sync_all())
            .map_err(FolderError::io(&self.dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_process_at_a_time_and_whole_replacements() -> Result<(), FolderError> {
        let dir = std::env::temp_dir().join(format!("kvs-folder-test-{}", std::process::id()));
        let folder = LockedFolder::open(&dir)?;
        assert!(matches!(LockedFolder::open(&dir), Err(FolderError::Locked { .. })));
        folder.replace("f", b"one")?;
        folder.replace("f", b"two")?;
        assert_eq!(fs::read(folder.join("f")).map_err(FolderError::io(&dir))?, b"two");
        assert!(!folder.join("f.tmp").exists(), "no temporary file is left");
        drop(folder);
        let again = LockedFolder::open(&dir)?;
        drop(again);
        let _ = fs::remove_dir_all(&dir);
        Ok(())
    }
}
