//! The server's data folder (`--data-dir`): what makes a replica durable.
//!
//! - **Log.** Every change to the store (a replicated batch, a local put, a
//!   reset) is appended to the current log file `log-NNNNNNNNNNNNNNNN`
//!   (framing in [`crate::wal`]) by one writer thread, which syncs
//!   (`fdatasync`) once for everything queued while it last synced: group
//!   commit. A change is acknowledged to the frontend only once its record
//!   is synced; a failed write or sync stops the server (nothing more is
//!   acknowledged).
//! - **Snapshots.** Once the current log file passes a size, the store's
//!   image and a log switch are taken under the store's lock, so the image
//!   holds exactly the records of the files before the switch. A second
//!   thread writes the image to `snapshot` (temporary file, sync, rename,
//!   sync the folder; see [`crate::snapshot`]) and only then deletes those
//!   files.
//! - **Recovery.** At start the server loads `snapshot` (if any), replays
//!   every log file from the one it names, and drops a torn tail of the
//!   last one (a record cut short or failing its checksum was never
//!   acknowledged). It refuses to start rather than come up with less than
//!   it acknowledged: a damaged snapshot, damage before the last file's
//!   tail, or log files missing.
//! - **Identity.** `identity` holds a name drawn when the folder was
//!   created. The server answers heartbeats with it instead of a per-run
//!   boot id, so a frontend sees a restarted durable server as the same
//!   replica, holding what it held (see `kvs_proto::reply::alive`).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::Instant;

use kvs_process::folder::{FolderError, LockedFolder};
use kvs_proto::metrics::{latency_histogram, metrics};
use prometheus_client::metrics::histogram::Histogram;
use thiserror::Error;
use tokio::sync::oneshot;

use crate::snapshot::{Snapshot, SnapshotError};
use crate::store::{Store, StoreImage};
#[cfg(test)]
use crate::wal::Record;
use crate::wal::{self, FrameError};

const SNAPSHOT_FILE: &str = "snapshot";
const IDENTITY_FILE: &str = "identity";
const LOG_PREFIX: &str = "log-";

/// Why the data folder could not be opened or recovered.
#[derive(Debug, Error)]
pub enum DataDirError {
    #[error(transparent)]
    Folder(#[from] FolderError),
    #[error("{path} is damaged ({source}); refusing to start without what it held")]
    Snapshot { path: PathBuf, source: SnapshotError },
    #[error("{path} is damaged at byte {at} ({source}), before the last log file's tail; refusing to start")]
    Log {
        path: PathBuf,
        at: usize,
        source: FrameError,
    },
    #[error(
        "log file {missing} is missing from {dir} (the snapshot or a log file was removed); refusing to start \
         without what it held"
    )]
    Missing { dir: PathBuf, missing: u64 },
}

/// The write-ahead log could not be made durable: the server stops.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("the write-ahead log cannot be made durable: {0}")]
pub struct SyncError(String);

impl SyncError {
    /// The writer thread is gone (it only ends with the server).
    pub fn stopped() -> Self {
        SyncError("the log writer has stopped".to_owned())
    }
}

/// Resolves once a logged record is synced (or never will be).
pub type Synced = oneshot::Receiver<Result<(), SyncError>>;

/// An open, recovered data folder.
pub struct Opened {
    pub data: DataDir,
    /// The store as the folder kept it.
    pub store: Store,
    /// The folder's identity (see the module doc).
    pub identity: String,
}

/// Work for the writer thread, in log order.
enum Job {
    Append(Vec<u8>, oneshot::Sender<Result<(), SyncError>>),
    /// Switch to a new log file, then snapshot this image of the store
    /// (which holds every record appended before).
    Snapshot(StoreImage),
}

/// The data folder's handle: queue records, take snapshots.
#[derive(Debug)]
pub struct DataDir {
    jobs: mpsc::Sender<Job>,
    writer: thread::JoinHandle<()>,
    /// Set by the writer when the current log file has grown past the
    /// snapshot size and no snapshot is being written.
    wants_snapshot: Arc<AtomicBool>,
}

impl DataDir {
    /// Opens the folder (locking it for this process), recovers the store
    /// it holds and starts the writer. A snapshot is taken once the current
    /// log file passes `snapshot_bytes`.
    pub fn open(dir: &Path, snapshot_bytes: u64) -> Result<Opened, DataDirError> {
        let folder = LockedFolder::open(dir)?;
        let identity = identity(&folder)?;
        let tmp = folder.join(&format!("{SNAPSHOT_FILE}.tmp"));
        if tmp.exists() {
            tracing::warn!(path = %tmp.display(), "dropping a snapshot that was never completed");
            fs::remove_file(&tmp).map_err(FolderError::io(&tmp))?;
        }
        let snapshot = load_snapshot(&folder)?;
        let first_log = snapshot.as_ref().map_or(1, |s| s.first_log);
        let mut store = snapshot.map(|s| Store::from_image(s.image)).unwrap_or_default();
        let logs = log_files(&folder, first_log)?;
        let mut records = 0;
        for (index, &number) in logs.iter().enumerate() {
            let path = log_path(&folder, number);
            let bytes = fs::read(&path).map_err(FolderError::io(&path))?;
            let replay = wal::read(&bytes);
            records += replay.records.len();
            replay.records.into_iter().for_each(|record| store.replay(record));
            if let Some(source) = replay.stopped {
                if index + 1 < logs.len() {
                    return Err(DataDirError::Log {
                        path,
                        at: replay.valid,
                        source,
                    });
                }
                tracing::warn!(path = %path.display(), dropped = bytes.len() - replay.valid, reason = %source,
                    "dropping the log's torn tail (never acknowledged)");
                let file = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(FolderError::io(&path))?;
                file.set_len(replay.valid as u64)
                    .and_then(|()| file.sync_all())
                    .map_err(FolderError::io(&path))?;
            }
        }
        let number = logs.last().copied().unwrap_or(first_log);
        let path = log_path(&folder, number);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(FolderError::io(&path))?;
        folder.sync()?;
        let bytes = file.metadata().map_err(FolderError::io(&path))?.len();
        tracing::info!(dir = %dir.display(), keys = store.len(), stable = store.stable(), records,
            log_files = logs.len(), "data folder recovered");

        let wants_snapshot = Arc::new(AtomicBool::new(false));
        let (jobs, queue) = mpsc::channel();
        let writer = Writer {
            folder,
            file,
            number,
            bytes,
            snapshot_bytes,
            wants_snapshot: Arc::clone(&wants_snapshot),
            snapshotting: Arc::new(AtomicBool::new(false)),
            failed: None,
            sync_seconds: latency_histogram(),
        };
        metrics().register(
            "wal_sync_seconds",
            "Time one write-and-sync of the log took",
            writer.sync_seconds.clone(),
        );
        let writer = thread::Builder::new()
            .name("kvs-wal".to_owned())
            .spawn(move || writer.run(queue))
            .map_err(FolderError::io(dir))?;
        Ok(Opened {
            data: DataDir {
                jobs,
                writer,
                wants_snapshot,
            },
            store,
            identity,
        })
    }

    /// Queues a record's frame; the receiver resolves once it is synced.
    /// Call it while holding the store's lock, in the order the changes
    /// were applied.
    pub fn append(&self, frame: Vec<u8>) -> Synced {
        let (done, synced) = oneshot::channel();
        if let Err(mpsc::SendError(Job::Append(_, done))) = self.jobs.send(Job::Append(frame, done)) {
            let _ = done.send(Err(SyncError::stopped()));
        }
        synced
    }

    /// Whether a snapshot is due (asked once: the caller then takes it).
    pub fn snapshot_due(&self) -> bool {
        self.wants_snapshot.swap(false, Ordering::AcqRel)
    }

    /// Switches the log and snapshots `image`; call it while holding the
    /// store's lock, with the image of the store as it is.
    pub fn snapshot(&self, image: StoreImage) {
        let _ = self.jobs.send(Job::Snapshot(image));
    }

    /// Waits for every queued record to be written, then lets the folder
    /// go (its lock is released once a snapshot being written is done).
    pub fn close(self) {
        drop(self.jobs);
        let _ = self.writer.join();
    }
}

/// The writer thread's state.
struct Writer {
    folder: LockedFolder,
    file: File,
    /// The current log file's number and size.
    number: u64,
    bytes: u64,
    snapshot_bytes: u64,
    wants_snapshot: Arc<AtomicBool>,
    snapshotting: Arc<AtomicBool>,
    /// Once a write or sync failed, nothing more is written.
    failed: Option<SyncError>,
    sync_seconds: Histogram,
}

impl Writer {
    /// Takes every job queued, appends and syncs them as one, replies,
    /// and again, until the server drops its handle.
    fn run(mut self, queue: mpsc::Receiver<Job>) {
        let mut pending = Vec::new();
        let mut waiters = Vec::new();
        while let Ok(first) = queue.recv() {
            let mut next = Some(first);
            while let Some(job) = next {
                match job {
                    Job::Append(frame, done) => {
                        pending.extend_from_slice(&frame);
                        waiters.push(done);
                    }
                    Job::Snapshot(image) => {
                        self.commit(&mut pending, &mut waiters);
                        self.switch_and_snapshot(image);
                    }
                }
                next = queue.try_recv().ok();
            }
            self.commit(&mut pending, &mut waiters);
        }
    }

    /// Writes and syncs `pending` in one go, then answers its waiters.
    fn commit(&mut self, pending: &mut Vec<u8>, waiters: &mut Vec<oneshot::Sender<Result<(), SyncError>>>) {
        if waiters.is_empty() {
            return;
        }
        if self.failed.is_none() {
            let started = Instant::now();
            match self.file.write_all(pending).and_then(|()| self.file.sync_data()) {
                Ok(()) => {
                    self.sync_seconds.observe(started.elapsed().as_secs_f64());
                    self.bytes += pending.len() as u64;
                    if self.bytes >= self.snapshot_bytes && !self.snapshotting.load(Ordering::Acquire) {
                        self.wants_snapshot.store(true, Ordering::Release);
                    }
                }
                Err(error) => self.fail(format!("log file {}: {error}", self.number)),
            }
        }
        let outcome = self.failed.clone().map_or(Ok(()), Err);
        pending.clear();
        for waiter in waiters.drain(..) {
            let _ = waiter.send(outcome.clone());
        }
    }

    fn fail(&mut self, reason: String) {
        tracing::error!(%reason, "the write-ahead log failed: nothing more is acknowledged");
        self.failed = Some(SyncError(reason));
    }

    /// Starts the next log file, then has another thread write the
    /// snapshot and delete the files it covers.
    fn switch_and_snapshot(&mut self, image: StoreImage) {
        if self.failed.is_some() || self.snapshotting.swap(true, Ordering::AcqRel) {
            return;
        }
        let next = self.number + 1;
        let path = log_path(&self.folder, next);
        let opened = File::create(&path)
            .map_err(FolderError::io(&path))
            .and_then(|file| self.folder.sync().map(|()| file));
        match opened {
            Ok(file) => {
                self.file = file;
                self.number = next;
                self.bytes = 0;
            }
            Err(error) => {
                self.snapshotting.store(false, Ordering::Release);
                self.fail(error.to_string());
                return;
            }
        }
        let folder = self.folder.clone();
        let snapshotting = Arc::clone(&self.snapshotting);
        let spawned = thread::Builder::new().name("kvs-snapshot".to_owned()).spawn(move || {
            let snapshot = Snapshot { first_log: next, image };
            match write_snapshot(&folder, &snapshot) {
                Ok(deleted) => tracing::info!(
                    keys = snapshot.image.settled.len() + snapshot.image.recent.len(),
                    first_log = next,
                    deleted,
                    "snapshot written"
                ),
                Err(error) => {
                    tracing::warn!(%error, "snapshot failed; the log keeps everything and it is tried again later")
                }
            }
            snapshotting.store(false, Ordering::Release);
        });
        if let Err(error) = spawned {
            tracing::warn!(%error, "cannot start the snapshot thread");
            self.snapshotting.store(false, Ordering::Release);
        }
    }
}

/// Writes `snapshot` durably, then deletes the log files it covers;
/// returns how many it deleted.
fn write_snapshot(folder: &LockedFolder, snapshot: &Snapshot) -> Result<usize, FolderError> {
    folder.replace(SNAPSHOT_FILE, &snapshot.encode())?;
    let covered: Vec<u64> = log_numbers(folder)?
        .into_iter()
        .filter(|number| *number < snapshot.first_log)
        .collect();
    for number in &covered {
        let path = log_path(folder, *number);
        fs::remove_file(&path).map_err(FolderError::io(&path))?;
    }
    folder.sync()?;
    Ok(covered.len())
}

/// The folder's identity, drawn and stored on first use.
fn identity(folder: &LockedFolder) -> Result<String, FolderError> {
    let path = folder.join(IDENTITY_FILE);
    match fs::read_to_string(&path) {
        Ok(identity) if !identity.trim().is_empty() => return Ok(identity.trim().to_owned()),
        Ok(_) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(source) => return Err(FolderError::Io { path, source }),
    }
    let identity = format!("durable-{}", crate::service::boot_id());
    folder.replace(IDENTITY_FILE, identity.as_bytes())?;
    Ok(identity)
}

fn load_snapshot(folder: &LockedFolder) -> Result<Option<Snapshot>, DataDirError> {
    let path = folder.join(SNAPSHOT_FILE);
    match fs::read(&path) {
        Ok(bytes) => Snapshot::decode(&bytes)
            .map(Some)
            .map_err(|source| DataDirError::Snapshot { path, source }),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(FolderError::Io { path, source }.into()),
    }
}

/// The log files to replay, from `first` on, in order: older ones (left by
/// a crash after a snapshot was written) are deleted, and a gap is refused.
fn log_files(folder: &LockedFolder, first: u64) -> Result<Vec<u64>, DataDirError> {
    let mut logs = log_numbers(folder)?;
    for stale in logs.iter().filter(|number| **number < first) {
        let path = log_path(folder, *stale);
        fs::remove_file(&path).map_err(FolderError::io(&path))?;
    }
    logs.retain(|number| *number >= first);
    for (expected, found) in (first..).zip(&logs) {
        if expected != *found {
            return Err(DataDirError::Missing {
                dir: folder.path().to_owned(),
                missing: expected,
            });
        }
    }
    Ok(logs)
}

/// Every log file's number, in order.
fn log_numbers(folder: &LockedFolder) -> Result<Vec<u64>, FolderError> {
    let dir = folder.path();
    let mut numbers = Vec::new();
    for entry in fs::read_dir(dir).map_err(FolderError::io(dir))? {
        let entry = entry.map_err(FolderError::io(dir))?;
        if let Some(number) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.strip_prefix(LOG_PREFIX))
            .and_then(|hex| u64::from_str_radix(hex, 16).ok())
        {
            numbers.push(number);
        }
    }
    numbers.sort_unstable();
    Ok(numbers)
}

fn log_path(folder: &LockedFolder, number: u64) -> PathBuf {
    folder.join(&format!("{LOG_PREFIX}{number:016x}"))
}

#[cfg(test)]
mod tests {
    use kvs_proto::batch::Batch;
    use kvs_proto::{Entry, Key, Value};

    use super::*;

    const NEVER: u64 = u64::MAX;

    fn batch(stable: u64, writes: &[(Key, Value, u64)]) -> Record {
        Record::Batch(Batch {
            stable,
            entries: writes
                .iter()
                .map(|&(key, value, version)| Entry { key, value, version })
                .collect(),
        })
    }

    fn records() -> Vec<Record> {
        vec![
            batch(0, &[(1, 10, 1), (2, 20, 2)]),
            Record::LocalPut { key: 3, value: 30 },
            batch(2, &[(1, 11, 3)]),
            batch(3, &[(4, 40, 4), (2, 21, 5)]),
        ]
    }

    /// The store the first `n` records make.
    fn expected(n: usize) -> Vec<(Key, Value)> {
        let mut store = Store::default();
        records().into_iter().take(n).for_each(|record| store.replay(record));
        store.sorted_pairs()
    }

    fn frames(records: &[Record]) -> Vec<u8> {
        records.iter().flat_map(wal::encode).collect()
    }

    fn write(dir: &Path, name: &str, bytes: &[u8]) {
        fs::write(dir.join(name), bytes).expect("write a test file");
    }

    fn log_name(number: u64) -> String {
        format!("{LOG_PREFIX}{number:016x}")
    }

    /// Opens `dir`, returns the pairs it recovered and lets it go.
    fn recover(dir: &Path) -> Result<Vec<(Key, Value)>, DataDirError> {
        let opened = DataDir::open(dir, NEVER)?;
        let pairs = opened.store.sorted_pairs();
        opened.data.close();
        Ok(pairs)
    }

    #[test]
    fn a_torn_last_record_recovers_what_came_before_at_every_cut() {
        let whole = frames(&records());
        let before_last = frames(&records()[..3]).len();
        for cut in before_last..whole.len() {
            let dir = tempfile::tempdir().expect("tempdir");
            write(dir.path(), &log_name(1), &whole[..cut]);
            assert_eq!(recover(dir.path()).expect("recovers"), expected(3), "cut at {cut}");
            let kept = fs::metadata(dir.path().join(log_name(1))).expect("log").len();
            assert_eq!(kept, before_last as u64, "the torn tail is cut off the file");
        }
    }

    #[test]
    fn a_checksum_failure_in_the_last_record_recovers_what_came_before() {
        let whole = frames(&records());
        let before_last = frames(&records()[..3]).len();
        for at in before_last..whole.len() {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut bytes = whole.clone();
            bytes[at] ^= 0x40;
            write(dir.path(), &log_name(1), &bytes);
            assert_eq!(recover(dir.path()).expect("recovers"), expected(3), "flip at {at}");
        }
    }

    #[test]
    fn damage_before_the_last_file_refuses_to_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut first = frames(&records()[..2]);
        first[10] ^= 0x01;
        write(dir.path(), &log_name(1), &first);
        write(dir.path(), &log_name(2), &frames(&records()[2..]));
        assert!(matches!(recover(dir.path()), Err(DataDirError::Log { .. })));
    }

    #[test]
    fn a_snapshot_never_completed_is_ignored_and_the_logs_replayed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let half = Snapshot {
            first_log: 2,
            image: Store::default().image(),
        }
        .encode();
        write(dir.path(), "snapshot.tmp", &half[..half.len() / 2]);
        write(dir.path(), &log_name(1), &frames(&records()[..2]));
        write(dir.path(), &log_name(2), &frames(&records()[2..]));
        assert_eq!(recover(dir.path()).expect("recovers"), expected(4));
        assert!(!dir.path().join("snapshot.tmp").exists());
    }

    #[test]
    fn a_snapshot_and_the_logs_after_it_recover_and_older_logs_go() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = Store::default();
        records().into_iter().take(2).for_each(|record| store.replay(record));
        let snapshot = Snapshot {
            first_log: 3,
            image: store.image(),
        };
        write(dir.path(), SNAPSHOT_FILE, &snapshot.encode());
        // A crash after the snapshot was renamed left log 2 behind; its
        // records are in the snapshot.
        write(dir.path(), &log_name(2), &frames(&records()[..2]));
        write(dir.path(), &log_name(3), &frames(&records()[2..]));
        assert_eq!(recover(dir.path()).expect("recovers"), expected(4));
        assert!(!dir.path().join(log_name(2)).exists());
    }

    #[test]
    fn a_missing_snapshot_or_log_refuses_to_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), &log_name(3), &frames(&records()[2..]));
        assert!(
            matches!(recover(dir.path()), Err(DataDirError::Missing { missing: 1, .. })),
            "logs 1 and 2 were folded into a snapshot that is gone"
        );
        write(dir.path(), &log_name(1), &frames(&records()[..2]));
        assert!(matches!(
            recover(dir.path()),
            Err(DataDirError::Missing { missing: 2, .. })
        ));
    }

    #[test]
    fn a_damaged_snapshot_refuses_to_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut bytes = Snapshot::default().encode();
        bytes[9] ^= 0x01;
        write(dir.path(), SNAPSHOT_FILE, &bytes);
        assert!(matches!(recover(dir.path()), Err(DataDirError::Snapshot { .. })));
    }

    #[test]
    fn appended_records_survive_a_restart_through_snapshots() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A snapshot after every commit of more than 64 bytes.
        let opened = DataDir::open(dir.path(), 64).expect("open");
        let identity = opened.identity.clone();
        let mut store = opened.store;
        let data = opened.data;
        for (n, record) in records().into_iter().enumerate() {
            let synced = data.append(wal::encode(&record));
            store.replay(record);
            assert_eq!(synced.blocking_recv().expect("answered"), Ok(()), "record {n}");
            if data.snapshot_due() {
                data.snapshot(store.image());
            }
        }
        data.close();
        // The lock goes once a snapshot in flight is written.
        let reopened = loop {
            match DataDir::open(dir.path(), NEVER) {
                Err(DataDirError::Folder(FolderError::Locked { .. })) => {
                    thread::sleep(std::time::Duration::from_millis(5))
                }
                other => break other.expect("reopen"),
            }
        };
        assert_eq!(reopened.identity, identity, "the identity stays with the folder");
        assert_eq!(reopened.store.sorted_pairs(), expected(4));
        assert!(dir.path().join(SNAPSHOT_FILE).exists(), "a snapshot was taken");
        reopened.data.close();
    }

    #[test]
    fn a_failed_write_answers_every_waiter_with_an_error_and_stays_failed() {
        let dir = tempfile::tempdir().expect("tempdir");
        // /dev/full refuses every write (ENOSPC), as a full disk does.
        let file = OpenOptions::new().append(true).open("/dev/full").expect("/dev/full");
        let writer = Writer {
            folder: LockedFolder::open(dir.path()).expect("folder"),
            file,
            number: 1,
            bytes: 0,
            snapshot_bytes: NEVER,
            wants_snapshot: Arc::default(),
            snapshotting: Arc::default(),
            failed: None,
            sync_seconds: latency_histogram(),
        };
        let (jobs, queue) = mpsc::channel();
        let mut answers = Vec::new();
        for record in records() {
            let (done, synced) = oneshot::channel();
            jobs.send(Job::Append(wal::encode(&record), done)).expect("queued");
            answers.push(synced);
        }
        drop(jobs);
        writer.run(queue);
        for synced in answers {
            let answer = synced.blocking_recv().expect("answered");
            assert!(
                matches!(answer, Err(SyncError(ref reason)) if reason.contains("No space")),
                "{answer:?}"
            );
        }
    }
}
