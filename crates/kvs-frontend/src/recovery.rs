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
//! boot id, and one that answers with another has restarted empty and is
//! not read from (it is readmitted by catch-up later); the
//! frontend waits up to `--recovery-timeout-ms` for one and refuses to start
//! without one rather than come up with acknowledged writes missing.
//!
//! The servers it read from are sent the merged state (versions make that
//! safe on top of what they hold) and become active again at once; every
//! other server is remembered as lost and is readmitted by a fresh catch-up
//! as soon as it answers a heartbeat. Until then the frontend does not
//! listen, so no client sees a partial state.
//!
//! The guarantee: an acknowledged write survives a crash of the frontend
//! (even `kill -9`, at any moment) as long as `--data-dir` survives and at
//! least one server that was active at the time of the crash is reachable
//! when the frontend restarts. Writes that were in flight (never
//! acknowledged) may or may not survive.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use kvs_proto::{Fence, ServerId, reply};
use thiserror::Error;

use crate::committed::Committed;
use crate::config::Config;
use crate::durable::{ClusterRecord, DurableError, RecordStore};
use crate::transport::{ConnectError, Connector, ReplicaHandle};

/// Pairs fetched per `dumpState` call.
const DUMP_PAGE: i32 = 65_536;
/// Pause between rounds of trying to reach a recovery source.
const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// Why the frontend could not recover.
#[derive(Debug, Error)]
pub enum RecoveryError {
    #[error(transparent)]
    Durable(#[from] DurableError),
    #[error(
        "none of the servers that were active ({ids:?}) answered within {waited:?}; refusing to start without \
         the acknowledged writes they hold (start them, or move the data folder away to start empty)"
    )]
    NoSource { ids: Vec<ServerId>, waited: Duration },
    #[error(transparent)]
    Connect(#[from] ConnectError),
}

/// What recovery found.
pub struct Recovered {
    /// The cluster's id and the new epoch.
    pub fence: Fence,
    pub committed: Arc<Committed>,
    /// Servers whose state was read (with their boot ids): they hold every
    /// acknowledged write.
    pub sources: Vec<(ServerId, ReplicaHandle, Option<String>)>,
    /// Every other server of the record, to readmit when it answers.
    pub others: Vec<(ServerId, ReplicaHandle)>,
}

/// Reads the record, bumps the epoch and rebuilds the committed state.
pub async fn recover(
    config: &Config,
    connector: &dyn Connector,
    data: &dyn RecordStore,
) -> Result<Recovered, RecoveryError> {
    let mut record: ClusterRecord = data.load()?;
    record.epoch += 1;
    if record.cluster == 0 {
        record.cluster = crate::new_cluster_id();
    }
    data.store(&record)?;
    let fence = Fence {
        cluster: record.cluster,
        epoch: record.epoch,
    };
    tracing::info!(epoch = record.epoch, active = ?record.active, lost = ?record.lost, "recovering");

    let mut clients = BTreeMap::new();
    for id in record.active.iter().chain(&record.lost) {
        clients.insert(*id, connector.connect(*id, fence)?);
    }

    let committed = Arc::new(Committed::default());
    let mut sources = Vec::new();
    let started = Instant::now();
    let mut boots = BTreeMap::new();
    while !record.active.is_empty() && sources.is_empty() {
        for id in &record.active {
            let client = &clients[id];
            let boot = match client.heartbeat().await {
                Ok(alive) => reply::boot_of(&alive).map(str::to_owned),
                Err(error) => {
                    tracing::warn!(server = id, %error, "does not answer yet");
                    continue;
                }
            };
            if let (Some(recorded), Some(seen)) = (record.boots.get(id), &boot)
                && recorded != seen
            {
                tracing::warn!(
                    server = id,
                    "restarted since it was active: it holds nothing to recover from"
                );
                continue;
            }
            match client.dump_state(DUMP_PAGE).await {
                Ok(entries) => {
                    entries.iter().for_each(|entry| committed.merge(entry));
                    tracing::info!(server = id, pairs = entries.len(), "state read");
                    sources.push(*id);
                    if let Some(boot) = boot {
                        boots.insert(*id, boot);
                    }
                }
                Err(error) => tracing::warn!(server = id, %error, "cannot read its state yet"),
            }
        }
        if sources.is_empty() {
            if started.elapsed() >= config.recovery_timeout() {
                return Err(RecoveryError::NoSource {
                    ids: record.active.clone(),
                    waited: started.elapsed(),
                });
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }

    if record.active.is_empty() && !record.lost.is_empty() {
        // No server was active at the crash, so no write was acknowledged
        // since the last one failed: rebuild, best effort, from what the
        // lost servers hold.
        for id in &record.lost {
            if let Ok(entries) = clients[id].dump_state(DUMP_PAGE).await {
                entries.iter().for_each(|entry| committed.merge(entry));
                tracing::warn!(
                    server = id,
                    pairs = entries.len(),
                    "no active server was recorded; state read from a lost server"
                );
            }
        }
    }

    let (sources, others): (Vec<_>, Vec<_>) = clients.into_iter().partition(|(id, _)| sources.contains(id));
    let sources = sources
        .into_iter()
        .map(|(id, client)| (id, client, boots.remove(&id)))
        .collect();
    Ok(Recovered {
        fence,
        committed,
        sources,
        others,
    })
}
