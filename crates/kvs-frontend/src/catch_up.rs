//! Bringing a new server up to date before it counts as active.
//!
//! `addServer(id)`: check the server answers, register it as joining (the
//! log starts shipping it every write after the current commit point), send
//! it the committed state in chunks, then wait until it has acknowledged the
//! commit point and the log promotes it. Writes go on throughout; a version
//! on every pair lets snapshot chunks and live writes arrive in any order.

use std::sync::Arc;

use kvs_proto::{RpcError, ServerClient, ServerId};
use thiserror::Error;

use crate::committed::Committed;
use crate::replication::{JoinError, ReplicationLog};

/// Why a server could not be added.
#[derive(Debug, Error)]
pub enum CatchUpError {
    #[error(transparent)]
    Join(#[from] JoinError),
    #[error("server {id} does not answer: {source}")]
    Unreachable { id: ServerId, source: RpcError },
    #[error("snapshot transfer to server {id} failed: {source}")]
    Transfer { id: ServerId, source: RpcError },
    #[error("server {0} failed while catching up, or no active server was left")]
    Dropped(ServerId),
}

/// The `addServer` procedure.
pub struct CatchUp {
    log: Arc<ReplicationLog>,
    committed: Arc<Committed>,
    chunk: usize,
}

impl CatchUp {
    pub fn new(log: Arc<ReplicationLog>, committed: Arc<Committed>, chunk: usize) -> Self {
        CatchUp {
            log,
            committed,
            chunk: chunk.max(1),
        }
    }

    /// Admits server `id`, reachable through `client`; returns once it is active.
    pub async fn add(&self, id: ServerId, client: ServerClient) -> Result<(), CatchUpError> {
        client
            .heartbeat()
            .await
            .map_err(|source| CatchUpError::Unreachable { id, source })?;
        let client = Arc::new(client);
        let registration = self.log.register(id, Arc::clone(&client))?;
        let snapshot = self.committed.snapshot();
        for chunk in snapshot.chunks(self.chunk) {
            if let Err(source) = client.apply_batch(chunk).await {
                self.log.abandon_join(id, registration.incarnation);
                return Err(CatchUpError::Transfer { id, source });
            }
        }
        tracing::info!(server = id, pairs = snapshot.len(), "snapshot sent");
        self.log.snapshot_sent(id, registration.incarnation);
        registration.promoted.await.map_err(|_| CatchUpError::Dropped(id))
    }
}
