//! Coming back after a crash: rebuild the committed state from the servers.
//!
//! With `--data-dir`, a starting frontend reads its [`ClusterRecord`], bumps
//! the epoch (and stores it before anything else, so every version it
//! assigns is above every version it assigned before), then reads the state
//! of every server the record lists as active with `dumpState`, keeping per
//! key the highest version. Each of those servers held every acknowledged
//! write when the old frontend died (membership changes are recorded before
//! commits move on without a server), so one reachable server is enough —
//! provided it is the same process: the record keeps each active server's
//! boot id (a durable server's is its data folder's identity, kept across
//! restarts), and one that answers with another has restarted empty and is
//! not read from (it is readmitted by catch-up later). If every server that
//! held the acknowledged writes restarted empty while the old frontend
//! lived, they were in its memory only, and its record says so
//! ([`ClusterRecord::unheld`]): recovery then waits as below.
//!
//! **Never a silent empty store.** Until one such server answers, the
//! frontend serves nothing from the data: every method answers fault
//! [`kvs_proto::fault::NOT_RECOVERED`] with what it waits for (also on
//! `/readyz`), and after `--recovery-timeout-ms` it says so in its log as
//! an error. It waits as long as it takes — unless an operator calls
//! `acceptDataLoss` ([`RecoveryWait::accept`]): then it rebuilds, best
//! effort, from every server of the record that answers, and serves that.
//!
//! **Read once, resend only what differs.** The first such server's state
//! is read whole; every other one is asked for its digests by key range
//! ([`kvs_proto::digest`]) and only the ranges where it differs from the
//! first are read from it. After the merge, each server is sent the merged
//! pairs of the ranges where what it held differs from them (versions make
//! that safe on top of what it holds) — servers that agree, the usual
//! case, are sent nothing — and becomes active again at once; every
//! other server is remembered as lost and is readmitted by a fresh catch-up
//! as soon as it answers a heartbeat.
//!
//! The guarantee: an acknowledged write survives a crash of the frontend
//! (even `kill -9`, at any moment) as long as `--data-dir` survives and at
//! least one server that was active at the time of the crash comes back
//! with what it held (it kept running, or it is durable). Writes that were
//! in flight (never acknowledged) may or may not survive.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

use kvs_proto::digest::{Digests, range_bounds};
use kvs_proto::{Entry, Fence, RpcError, ServerId, reply};
use thiserror::Error;

use crate::committed::Committed;
use crate::config::Config;
use crate::durable::{ClusterRecord, DurableError, RecordStore};
use crate::transport::{ConnectError, Connector, Replica, ReplicaHandle};

/// Pairs fetched per `dumpState` call.
const DUMP_PAGE: i32 = 65_536;
/// Pause between rounds of trying to reach a recovery source.
pub const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// Why the frontend could not recover.
#[derive(Debug, Error)]
pub enum RecoveryError {
    #[error(transparent)]
    Durable(#[from] DurableError),
    #[error(transparent)]
    Connect(#[from] ConnectError),
}

/// What a recovering frontend waits for, shared with what it answers
/// meanwhile (see [`crate::gate`]), and the operator's word that the
/// acknowledged writes are lost.
#[derive(Debug)]
pub struct RecoveryWait {
    status: Mutex<String>,
    accepted: AtomicBool,
    recovered: AtomicBool,
    changed: Notify,
}

impl Default for RecoveryWait {
    fn default() -> Self {
        RecoveryWait {
            status: Mutex::new("recovering: reading the data folder".to_owned()),
            accepted: AtomicBool::new(false),
            recovered: AtomicBool::new(false),
            changed: Notify::new(),
        }
    }
}

impl RecoveryWait {
    /// What recovery is doing or waiting for.
    pub fn status(&self) -> String {
        self.status.lock().clone()
    }

    pub fn set_status(&self, status: String) {
        *self.status.lock() = status;
    }

    /// The operator accepts that the acknowledged writes no reachable
    /// server holds are lost: recovery stops waiting for them.
    pub fn accept(&self) {
        self.accepted.store(true, Ordering::SeqCst);
        self.changed.notify_one();
    }

    fn is_accepted(&self) -> bool {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Recovery is over: there is nothing left to accept.
    pub fn recovered(&self) {
        self.recovered.store(true, Ordering::SeqCst);
    }

    /// Whether recovery is over.
    pub fn is_recovered(&self) -> bool {
        self.recovered.load(Ordering::SeqCst)
    }
}

/// What recovery found.
pub struct Recovered {
    /// The cluster's id and the new epoch.
    pub fence: Fence,
    pub committed: Arc<Committed>,
    /// Servers whose state was read: they hold every acknowledged write.
    pub sources: Vec<Source>,
    /// Every other server of the record, to readmit when it answers.
    pub others: Vec<(ServerId, ReplicaHandle)>,
    /// The record as it is on disk now (the new epoch's).
    pub record: ClusterRecord,
}

/// A server recovery read from.
pub struct Source {
    pub id: ServerId,
    pub client: ReplicaHandle,
    /// Its boot id, where it gave one.
    pub boot: Option<String>,
    /// The digests of what it held.
    pub held: Digests,
}

/// Reads a source's state into `gathered`: whole if it is the first
/// (`first` is `None`), else only the key ranges where its digests differ
/// from `first`'s. Returns the digests of what it holds.
async fn read_source(
    client: &dyn Replica,
    first: Option<&Digests>,
    gathered: &mut Vec<Entry>,
) -> Result<Digests, RpcError> {
    let Some(first) = first else {
        let entries = client.dump_state(DUMP_PAGE).await?;
        let digests = Digests::of(entries.iter().map(|entry| (entry.key, entry.value)));
        gathered.extend(entries);
        return Ok(digests);
    };
    let digests = client.digest().await?;
    for range in first.differing(&digests) {
        let (low, high) = range_bounds(range);
        gathered.extend(client.dump_range(low, high, DUMP_PAGE).await?);
    }
    Ok(digests)
}

/// Reads the record, bumps the epoch and rebuilds the committed state,
/// waiting (and saying so in `wait`) until a server holding the
/// acknowledged writes answers or the loss is accepted.
pub async fn recover(
    config: &Config,
    connector: &dyn Connector,
    data: &dyn RecordStore,
    wait: &RecoveryWait,
) -> Result<Recovered, RecoveryError> {
    let mut record: ClusterRecord = data.load()?;
    let holder = data.holder();
    // The previous frontend held this store where this one does: it has ended.
    let ended = (record.epoch > 0 && holder.is_some() && record.holder == holder).then_some(record.epoch);
    record.epoch += 1;
    record.holder = holder;
    if record.cluster == 0 {
        record.cluster = crate::new_cluster_id();
    }
    data.store(&record)?;
    let fence = Fence {
        ended,
        ..Fence::new(record.cluster, record.epoch)
    };
    tracing::info!(epoch = record.epoch, active = ?record.active, lost = ?record.lost, predecessor_ended = ended.is_some(), "recovering");

    let mut clients = BTreeMap::new();
    for id in record.active.iter().chain(&record.lost) {
        clients.insert(*id, connector.connect(*id, fence)?);
    }

    let committed = Arc::new(Committed::default());
    // Every source's pairs, merged once at the end (highest version wins).
    let mut gathered = Vec::new();
    let mut sources = Vec::new();
    // The digests of what each source held (the first was read whole).
    let mut held = BTreeMap::new();
    let started = Instant::now();
    let mut boots = BTreeMap::new();
    let mut said = false;
    while (!record.active.is_empty() || record.unheld) && sources.is_empty() && !wait.is_accepted() {
        let mut missing = Vec::new();
        if record.unheld {
            missing.push(
                "every server that held them restarted empty before the last frontend copied them back; it had \
                 the only copy"
                    .to_owned(),
            );
        }
        for id in &record.active {
            let client = &clients[id];
            let boot = match client.heartbeat().await {
                Ok(alive) => reply::boot_of(&alive).map(str::to_owned),
                Err(error) => {
                    missing.push(format!("server {id} does not answer ({error})"));
                    continue;
                }
            };
            if let (Some(recorded), Some(seen)) = (record.boots.get(id), &boot)
                && recorded != seen
            {
                missing.push(format!(
                    "server {id} restarted since it was active and holds none of the acknowledged writes"
                ));
                continue;
            }
            let before = gathered.len();
            let first = sources.first().and_then(|first| held.get(first));
            match read_source(client.as_ref(), first, &mut gathered).await {
                Ok(digests) => {
                    tracing::info!(server = id, pairs = gathered.len() - before, "state read");
                    held.insert(*id, digests);
                    sources.push(*id);
                    if let Some(boot) = boot {
                        boots.insert(*id, boot);
                    }
                }
                Err(error) => missing.push(format!("server {id}: its state cannot be read ({error})")),
            }
        }
        if sources.is_empty() {
            let status = format!(
                "recovering: no server holding the acknowledged writes answers ({}); serving nothing until one \
                 does, or an operator calls acceptDataLoss",
                missing.join("; ")
            );
            if !said && started.elapsed() >= config.recovery_timeout() {
                said = true;
                tracing::error!(waited = ?started.elapsed(), "{status}");
            } else {
                tracing::warn!("{status}");
            }
            wait.set_status(status);
            tokio::select! {
                () = tokio::time::sleep(RETRY_PAUSE) => {}
                () = wait.changed.notified() => {}
            }
        }
    }

    if sources.is_empty() && !(record.active.is_empty() && record.lost.is_empty()) {
        // Either no server has been active yet (so no write was
        // acknowledged), or the operator accepted the loss: rebuild, best
        // effort, from what every server holds.
        if wait.is_accepted() {
            tracing::error!(active = ?record.active, "the operator accepted the loss of the acknowledged writes: \
                rebuilding from what the servers hold now");
        }
        for id in record.active.iter().chain(&record.lost) {
            if let Ok(entries) = clients[id].dump_state(DUMP_PAGE).await {
                tracing::warn!(server = id, pairs = entries.len(), "best-effort state read");
                gathered.extend(entries);
            }
        }
    }
    committed.merge(&gathered);
    drop(gathered);

    let (sources, others): (Vec<_>, Vec<_>) = clients.into_iter().partition(|(id, _)| sources.contains(id));
    let sources = sources
        .into_iter()
        .map(|(id, client)| Source {
            id,
            client,
            boot: boots.remove(&id),
            held: held.remove(&id).unwrap_or_default(),
        })
        .collect();
    Ok(Recovered {
        fence,
        committed,
        sources,
        others,
        record,
    })
}
