//! What `kvs-bench compare --durable` needs beyond the other targets: a
//! scratch folder for the durable servers' data folders, removed however
//! the run ends, and the sync latency of the disk under it.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use super::results::SyncLatency;

/// Appends timed by [`sync_latency`]...
pub const SYNC_WRITES: usize = 200;
/// ...of this many bytes each.
pub const SYNC_WRITE_BYTES: usize = 4096;

/// A folder under the system's temporary folder (`$TMPDIR`, else `/tmp`),
/// removed with everything in it when dropped.
#[derive(Debug)]
pub struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    /// A fresh, empty `kvs-compare-PID-N` folder.
    pub fn create() -> std::io::Result<ScratchDir> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("kvs-compare-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)?;
        Ok(ScratchDir { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Times `writes` appends of `write_bytes` bytes to a new file in `dir`,
/// each followed by `fdatasync` (`File::sync_data`), as a durable server's
/// log writer does per group of batches; the file is removed afterwards.
pub fn sync_latency(dir: &Path, writes: usize, write_bytes: usize) -> std::io::Result<SyncLatency> {
    let path = dir.join("sync-latency");
    let result = time_syncs(&path, writes, write_bytes);
    let _ = std::fs::remove_file(&path);
    let shown = dir.parent().unwrap_or(dir).display().to_string();
    Ok(SyncLatency::of(shown, write_bytes, result?))
}

fn time_syncs(path: &Path, writes: usize, write_bytes: usize) -> std::io::Result<Vec<f64>> {
    let mut file = std::fs::OpenOptions::new().create_new(true).append(true).open(path)?;
    let block = vec![0x5a_u8; write_bytes];
    let mut samples = Vec::with_capacity(writes);
    for _ in 0..writes {
        let started = Instant::now();
        file.write_all(&block)?;
        file.sync_data()?;
        samples.push(started.elapsed().as_secs_f64() * 1e6);
    }
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scratch_folder_goes_with_its_guard() -> std::io::Result<()> {
        let scratch = ScratchDir::create()?;
        let path = scratch.path().to_path_buf();
        std::fs::create_dir_all(path.join("server-0"))?;
        std::fs::write(path.join("server-0/log"), b"x")?;
        let sync = sync_latency(&path, 5, 512)?;
        assert_eq!((sync.writes, sync.write_bytes), (5, 512));
        assert!(sync.median_us > 0.0 && sync.median_us <= sync.p99_us && sync.p99_us <= sync.max_us);
        assert!(!path.join("sync-latency").exists());
        drop(scratch);
        assert!(!path.exists());
        Ok(())
    }
}
