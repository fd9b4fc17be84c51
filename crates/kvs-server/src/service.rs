//! The server's XML-RPC methods, each a [`Handle`] impl over the [`Store`].
//! `applyBatch` also comes over the replication stream
//! ([`kvs_proto::stream`]), to the same handler.
//! The replication methods first check the caller's fence ([`Following`]);
//! a batch is checked whole before any of it is applied. With a data folder
//! ([`DataDir`]) every change is logged in the order it is applied, and
//! acknowledged only once the log has it on disk.

use std::sync::Arc;

use dxr::Fault;
use kvs_proto::api::server::{
    ApplyBatch, Digest, DumpState, Get, Heartbeat, PrintKvPairs, Put, Rejoin, ResetStore, ShutdownServer,
};
use kvs_proto::metrics::metrics;
use kvs_proto::serve::{Handle, Methods};
use kvs_proto::{ClusterSecret, Fence, batch, fault, reply};
use parking_lot::{Mutex, RwLock};
use tokio::sync::Notify;

use crate::data_dir::{DataDir, Opened, SyncError};
use crate::following::{Following, LastReset, Refusal};
use crate::store::Store;
use crate::wal::{self, Record};

/// The replica: its store, its data folder if any, and the switch
/// `shutdownServer` (or a failed log) flips.
#[derive(Debug)]
pub struct ReplicaService {
    id: i32,
    /// Tells this run of the process apart from earlier ones (see
    /// [`reply::alive`]); a durable replica's folder identity instead.
    boot: String,
    following: Following,
    /// Held across a `resetStore` or `rejoin`, so they run in serial order.
    resets: tokio::sync::Mutex<LastReset>,
    store: RwLock<Store>,
    data: Option<DataDir>,
    shutdown: Notify,
    /// Why the replica stopped on its own, if it did.
    failure: Mutex<Option<SyncError>>,
}

impl ReplicaService {
    /// A replica with an empty store and a fresh boot id.
    pub fn new(id: i32) -> Self {
        Self::with_boot(id, boot_id())
    }

    /// A replica that answers heartbeats with `boot` (a simulation's
    /// restarted replica gets a new one of its choosing).
    pub fn with_boot(id: i32, boot: String) -> Self {
        Self::build(id, boot, Store::default(), None)
    }

    /// A durable replica: the store its data folder recovered, which it
    /// logs every change to, and the folder's identity as its boot id.
    pub fn durable(id: i32, opened: Opened) -> Self {
        Self::build(id, opened.identity, opened.store, Some(opened.data))
    }

    fn build(id: i32, boot: String, store: Store, data: Option<DataDir>) -> Self {
        ReplicaService {
            id,
            boot,
            following: Following::default(),
            resets: tokio::sync::Mutex::new(LastReset::default()),
            store: RwLock::new(store),
            data,
            shutdown: Notify::new(),
            failure: Mutex::new(None),
        }
    }

    /// Applies `apply` to the store and logs the record `frame` makes of
    /// what it gave, in the same order, then waits until the record is on disk. A log that
    /// fails stops the replica: the change is not acknowledged.
    async fn change<T>(
        &self,
        frame: impl FnOnce(&T) -> Vec<u8>,
        apply: impl FnOnce(&mut Store) -> T,
    ) -> Result<T, Fault> {
        let (out, synced) = {
            let mut store = self.store.write();
            let out = apply(&mut store);
            let synced = self.data.as_ref().map(|data| {
                let synced = data.append(frame(&out));
                if data.snapshot_due() {
                    data.snapshot(store.image());
                }
                synced
            });
            (out, synced)
        };
        if let Some(synced) = synced {
            let outcome = synced.await.unwrap_or_else(|_| Err(SyncError::stopped()));
            if let Err(error) = outcome {
                let message = format!("server {}: {error}", self.id);
                self.failure.lock().get_or_insert(error);
                self.shutdown.notify_one();
                return Err(Fault::new(fault::INTERNAL_ERROR, message));
            }
        }
        Ok(out)
    }

    /// Accepts a replication call from the frontend that sent `fence`, or
    /// refuses it (see [`Following`]).
    fn admit(&self, fence: &str, force: bool) -> Result<Fence, Fault> {
        let fence = Fence::parse(fence).map_err(|e| Fault::new(fault::INVALID_REQUEST, e.to_string()))?;
        self.admit_parsed(fence, force)?;
        Ok(fence)
    }

    fn admit_parsed(&self, fence: Fence, force: bool) -> Result<(), Fault> {
        self.following
            .admit(fence, force)
            .map_err(|refusal| self.refused(&refusal))
    }

    /// `applyBatch(fence, entries)`, over XML-RPC or the replication stream:
    /// the whole batch is checked, then the caller admitted, then it is
    /// applied and logged.
    async fn apply_batch(&self, fence: &str, entries: Vec<u8>) -> Result<i32, Fault> {
        let invalid = |message: String| Fault::new(fault::INVALID_REQUEST, message);
        let fence = Fence::parse(fence).map_err(|e| invalid(e.to_string()))?;
        let batch = batch::decode_batch(&entries).map_err(|e| invalid(e.to_string()))?;
        let count = i32::try_from(batch.entries.len()).map_err(|e| invalid(e.to_string()))?;
        if !fence.could_produce(batch.stable) {
            metrics().refused("impossible_version");
            return Err(invalid(format!(
                "stable point {:#x} belongs to a later epoch than the sender's ({fence})",
                batch.stable
            )));
        }
        if let Some(entry) = batch.entries.iter().find(|entry| !fence.could_produce(entry.version)) {
            metrics().refused("impossible_version");
            return Err(invalid(format!(
                "version {:#x} of key {} belongs to a later epoch than the sender's ({fence})",
                entry.version, entry.key
            )));
        }
        self.admit_parsed(fence, false)?;
        self.change(|_| wal::batch_frame(&entries), |store| store.apply_batch(batch))
            .await?;
        Ok(count)
    }

    /// The fault answering `refusal`, counted in `/metrics`.
    fn refused(&self, refusal: &Refusal) -> Fault {
        let (code, reason) = match refusal {
            Refusal::Superseded { .. } => (fault::SUPERSEDED, "superseded"),
            Refusal::OtherCluster { .. } => (fault::OTHER_CLUSTER, "other_cluster"),
            Refusal::LeaseHeld { .. } => (fault::LEASE_HELD, "lease_held"),
            Refusal::StaleCall { .. } => (fault::STALE_CALL, "stale_call"),
        };
        metrics().refused(reason);
        Fault::new(code, format!("server {}: {refusal}", self.id))
    }

    /// Every pair the replica holds, by key.
    pub fn pairs(&self) -> Vec<(kvs_proto::Key, kvs_proto::Value)> {
        self.store.read().sorted_pairs()
    }

    /// How many keys the replica holds (for `/metrics`).
    pub fn key_count(&self) -> usize {
        self.store.read().len()
    }

    /// Resolves once `shutdownServer` has been called, or the log failed
    /// (see [`ReplicaService::failure`]).
    pub async fn shutdown_requested(&self) {
        self.shutdown.notified().await;
    }

    /// Why the replica stopped on its own: its log failed.
    pub fn failure(&self) -> Option<SyncError> {
        self.failure.lock().clone()
    }
}

/// A boot id unlikely to repeat: the start time in nanoseconds and the
/// process id, in hex.
pub(crate) fn boot_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|since| since.as_nanos())
        .unwrap_or_default();
    format!("{nanos:x}-{:x}", std::process::id())
}

/// Every method the server answers; the guarded ones need `secret`, if set.
pub fn methods(service: &Arc<ReplicaService>, secret: Option<ClusterSecret>) -> Methods {
    Methods::with_secret(secret)
        .method::<Put, _>(service)
        .method::<Get, _>(service)
        .method::<PrintKvPairs, _>(service)
        .method::<ShutdownServer, _>(service)
        .method::<ApplyBatch, _>(service)
        .method::<Heartbeat, _>(service)
        .method::<ResetStore, _>(service)
        .method::<Rejoin, _>(service)
        .method::<DumpState, _>(service)
        .method::<Digest, _>(service)
}

impl Handle<Put> for ReplicaService {
    async fn handle(&self, call: Put) -> Result<String, Fault> {
        let record = Record::LocalPut {
            key: call.key,
            value: call.value,
        };
        self.change(|_| wal::encode(&record), |store| store.put_local(call.key, call.value))
            .await?;
        Ok(reply::server_put(self.id, call.key, call.value))
    }
}

impl Handle<Get> for ReplicaService {
    async fn handle(&self, call: Get) -> Result<String, Fault> {
        let value = self.store.read().get(call.key);
        match value {
            Some(value) => Ok(reply::pair(call.key, value)),
            None => Err(Fault::new(
                fault::KEY_NOT_FOUND,
                format!("key {} not found on server {}", call.key, self.id),
            )),
        }
    }
}

impl Handle<PrintKvPairs> for ReplicaService {
    async fn handle(&self, _call: PrintKvPairs) -> Result<String, Fault> {
        Ok(reply::pair_lines(self.store.read().sorted_pairs()))
    }
}

impl Handle<ShutdownServer> for ReplicaService {
    async fn handle(&self, _call: ShutdownServer) -> Result<String, Fault> {
        self.shutdown.notify_one();
        Ok(reply::server_shutting_down(self.id))
    }
}

impl Handle<ApplyBatch> for ReplicaService {
    async fn handle(&self, call: ApplyBatch) -> Result<i32, Fault> {
        self.apply_batch(&call.fence, call.entries).await
    }
}

/// The replication stream's calls are `applyBatch` calls.
impl kvs_proto::stream::BatchSink for ReplicaService {
    async fn apply(&self, fence: &str, entries: Vec<u8>) -> Result<i32, Fault> {
        self.apply_batch(fence, entries).await
    }
}

impl Handle<Heartbeat> for ReplicaService {
    async fn handle(&self, call: Heartbeat) -> Result<String, Fault> {
        self.admit(&call.fence, false)?;
        Ok(reply::alive(&self.boot))
    }
}

impl Handle<ResetStore> for ReplicaService {
    async fn handle(&self, call: ResetStore) -> Result<i32, Fault> {
        let fence = self.admit(&call.fence, call.force)?;
        let mut last = self.resets.lock().await;
        last.advance(fence, call.serial, call.force)
            .map_err(|refusal| self.refused(&refusal))?;
        let dropped = self.change(|_| wal::encode(&Record::Reset), Store::clear).await?;
        tracing::info!(id = self.id, dropped, "store reset for catch-up");
        Ok(i32::try_from(dropped).unwrap_or(i32::MAX))
    }
}

impl Handle<Rejoin> for ReplicaService {
    async fn handle(&self, call: Rejoin) -> Result<Vec<u8>, Fault> {
        let fence = self.admit(&call.fence, false)?;
        let mut last = self.resets.lock().await;
        last.advance(fence, call.serial, false)
            .map_err(|refusal| self.refused(&refusal))?;
        let rejoin = self
            .change(
                |rejoin: &batch::Rejoin| wal::encode(&Record::ForgetAbove(rejoin.stable)),
                |store| {
                    // After a local write nothing can be trusted (point 0): a snapshot follows.
                    let stable = store.rejoin_point();
                    let forgotten = store.forget_above(stable);
                    batch::Rejoin { stable, forgotten }
                },
            )
            .await?;
        if !rejoin.forgotten.is_empty() {
            tracing::info!(
                id = self.id,
                stable = rejoin.stable,
                forgotten = rejoin.forgotten.len(),
                "rejoining: writes above the stable point forgotten"
            );
        }
        Ok(rejoin.encode())
    }
}

impl Handle<DumpState> for ReplicaService {
    async fn handle(&self, call: DumpState) -> Result<Vec<u8>, Fault> {
        self.admit(&call.fence, false)?;
        let limit = usize::try_from(call.limit)
            .ok()
            .filter(|limit| *limit > 0)
            .ok_or_else(|| Fault::new(fault::INVALID_REQUEST, format!("limit {} must be positive", call.limit)))?;
        Ok(batch::encode(&self.store.read().page_from(call.start_key, limit)))
    }
}

impl Handle<Digest> for ReplicaService {
    async fn handle(&self, call: Digest) -> Result<Vec<u8>, Fault> {
        self.admit(&call.fence, false)?;
        Ok(self.store.read().digests().encode())
    }
}
