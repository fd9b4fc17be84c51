//! Bringing a new server up to date before it counts as active.
//!
//! `addServer(id)`, and the readmission of a lost server that answers again:
//! check the server answers, empty it (whatever it held may be stale),
//! register it as joining (the log starts shipping it every write after the
//! current commit point), send it the committed state in chunks, then wait
//! until it has acknowledged the commit point and the log promotes it. Writes
//! go on throughout; a version on every pair lets snapshot chunks and live
//! writes arrive in any order. The server serves nothing to clients until it
//! is active (reads are answered by the frontend). A server that follows
//! another cluster's frontend is refused, unless an operator adopts it
//! (`force`): then it is told to follow this frontend first.
//!
//! A server that still holds what it had — paused, cut off, or durable and
//! restarted — is not emptied when it can *rejoin by delta* instead (see
//! [`crate::replication`], step 5): it forgets its writes above its stable
//! point, the log ships it every write after that point, and it is sent the
//! committed pairs of the keys it forgot in place of a snapshot.
//!
//! A server is admitted by one procedure at a time, and never while it is a
//! member: `addServer` of a member is refused before anything is sent to
//! it (emptying it would lose what an active member holds).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use kvs_proto::digest::Digests;
use kvs_proto::{RpcError, ServerId, fault, reply};
use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use thiserror::Error;
use tokio::sync::oneshot;

use crate::committed::Committed;
use crate::replication::{JoinError, ReplicationLog};
use crate::transport::{Replica, ReplicaHandle};

/// Pairs fetched per `dumpState` call from a revived server.
const REVIVE_PAGE: i32 = 65_536;

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
    #[error("server {0} holds every acknowledged write and the data folder cannot record that it is emptied")]
    Unrecorded(ServerId),
    #[error(
        "server {0} holds every acknowledged write, but the data folder cannot record that it alone serves them: \
         not revived until it can"
    )]
    RevivalUnrecorded(ServerId),
}

impl CatchUpError {
    /// The fault the server answered with, if it answered with one.
    pub fn fault_code(&self) -> Option<i32> {
        match self {
            CatchUpError::Unreachable { source, .. } | CatchUpError::Transfer { source, .. } => {
                source.fault().map(|f| f.code())
            }
            CatchUpError::Join(_)
            | CatchUpError::Dropped(_)
            | CatchUpError::Unrecorded(_)
            | CatchUpError::RevivalUnrecorded(_) => None,
        }
    }
}

/// The `addServer` procedure.
pub struct CatchUp {
    log: Arc<ReplicationLog>,
    committed: Arc<Committed>,
    chunk: usize,
    /// Servers an admission (catch-up or revival) is under way for.
    admitting: Mutex<HashSet<ServerId>>,
    /// Catch-ups by outcome (`done`, `failed`), for `/metrics`.
    outcomes: Family<[(&'static str, &'static str); 1], Counter>,
    /// Pairs sent outside the log, by kind of catch-up (`snapshot`,
    /// `delta`), and the writes rejoins by delta missed (shipped by the log).
    sent: Family<[(&'static str, &'static str); 1], Counter>,
    delta_writes: Counter,
    /// The serial of the last `resetStore` or `rejoin` sent (to any server):
    /// each gets the next, so a server can refuse one delivered late or twice.
    serials: AtomicI32,
}

impl CatchUp {
    pub fn new(log: Arc<ReplicationLog>, committed: Arc<Committed>, chunk: usize) -> Self {
        CatchUp {
            log,
            committed,
            chunk: chunk.max(1),
            admitting: Mutex::default(),
            outcomes: Family::default(),
            sent: Family::default(),
            delta_writes: Counter::default(),
            serials: AtomicI32::new(0),
        }
    }

    /// The serial of the next `resetStore` or `rejoin`.
    fn next_serial(&self) -> i32 {
        self.serials.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Catch-ups by outcome.
    pub fn outcomes(&self) -> &Family<[(&'static str, &'static str); 1], Counter> {
        &self.outcomes
    }

    /// Pairs sent to joining servers outside the log, by kind of catch-up.
    pub fn sent(&self) -> &Family<[(&'static str, &'static str); 1], Counter> {
        &self.sent
    }

    /// Writes the servers that rejoined by delta had missed.
    pub fn delta_writes(&self) -> &Counter {
        &self.delta_writes
    }

    /// Waits up to `limit` for server `id` to answer at all: `addServer` may
    /// come before the server listens (Kubernetes reports a pod running
    /// before its process has bound its port). A reply of any kind, a fault
    /// included, ends the wait; only a failure to reach it is retried.
    pub async fn wait_until_answering(
        &self,
        id: ServerId,
        client: &dyn Replica,
        limit: Duration,
    ) -> Result<(), CatchUpError> {
        const RETRY: Duration = Duration::from_millis(200);
        let deadline = Instant::now() + limit;
        loop {
            match client.heartbeat().await {
                Ok(_) => return Ok(()),
                Err(error) if error.fault().is_some() => return Ok(()),
                Err(source) if Instant::now() >= deadline => {
                    return Err(CatchUpError::Unreachable { id, source });
                }
                Err(error) => tracing::debug!(server = id, %error, "server does not answer yet; waiting"),
            }
            tokio::time::sleep(RETRY.min(deadline.saturating_duration_since(Instant::now()))).await;
        }
    }

    /// Admits server `id`, reachable through `client`; returns once it is
    /// active. `force` takes the server over from whatever frontend it
    /// followed (see [`kvs_proto::fence`]).
    pub async fn add(&self, id: ServerId, client: ReplicaHandle, force: bool) -> Result<(), CatchUpError> {
        let outcome = match self.claim(id) {
            Ok(_claim) => self.admit(id, client, force).await,
            Err(error) => Err(error),
        };
        let label = if outcome.is_ok() { "done" } else { "failed" };
        self.outcomes.get_or_create(&[("outcome", label)]).inc();
        outcome
    }

    async fn admit(&self, id: ServerId, client: ReplicaHandle, force: bool) -> Result<(), CatchUpError> {
        if force {
            client
                .reset_store(true, self.next_serial())
                .await
                .map_err(|source| self.refused(CatchUpError::Unreachable { id, source }))?;
            tracing::warn!(server = id, "server adopted: it follows this frontend now");
        }
        let alive = client
            .heartbeat()
            .await
            .map_err(|source| self.refused(CatchUpError::Unreachable { id, source }))?;
        let boot = reply::boot_of(&alive).map(str::to_owned);
        if !self.log.release_holder(id) {
            return Err(CatchUpError::Unrecorded(id));
        }
        if !force && let Some(rejoined) = self.rejoin(id, &client, boot.clone()).await? {
            return self.until_promoted(id, rejoined).await;
        }
        let dropped = client
            .reset_store(false, self.next_serial())
            .await
            .map_err(|source| self.refused(CatchUpError::Transfer { id, source }))?;
        if dropped > 0 {
            tracing::info!(server = id, dropped, "stale pairs dropped before catch-up");
        }
        let registration = self.log.register(id, Arc::clone(&client), boot)?;
        if let Err(source) = self.send_snapshot(client.as_ref()).await {
            self.log.abandon_join(id, registration.incarnation);
            return Err(CatchUpError::Transfer { id, source });
        }
        tracing::info!(
            server = id,
            "snapshot sent; waiting for the server to reach the commit point"
        );
        self.sent
            .get_or_create(&[("kind", "snapshot")])
            .inc_by(self.committed.len() as u64);
        self.log.snapshot_sent(id, registration.incarnation);
        self.until_promoted(id, registration.promoted).await
    }

    /// Waits until the log promotes server `id`; it is dropped if it fails
    /// first, or if this frontend stops (its replicator stops with it).
    async fn until_promoted(&self, id: ServerId, promoted: oneshot::Receiver<()>) -> Result<(), CatchUpError> {
        tokio::select! {
            promoted = promoted => promoted.map_err(|_| CatchUpError::Dropped(id)),
            () = self.log.tasks().stopping() => Err(CatchUpError::Dropped(id)),
        }
    }

    /// Tries a rejoin by delta (see the module doc): the server forgets its
    /// writes above its stable point and, if the log still holds every
    /// write after that point, is registered there and sent the committed
    /// pairs of the keys it forgot. Returns what resolves once it is
    /// active, or `None` if it needs a snapshot after all.
    async fn rejoin(
        &self,
        id: ServerId,
        client: &ReplicaHandle,
        boot: Option<String>,
    ) -> Result<Option<oneshot::Receiver<()>>, CatchUpError> {
        let rejoin = match client.rejoin(self.next_serial()).await {
            Ok(rejoin) => rejoin,
            Err(error) if error.fault().is_some_and(|f| f.code() == fault::UNKNOWN_METHOD) => return Ok(None),
            Err(source) => return Err(self.refused(CatchUpError::Transfer { id, source })),
        };
        let Some(registration) = self.log.register_at(id, Arc::clone(client), boot, rejoin.stable)? else {
            return Ok(None);
        };
        let missed = self.log.progress().2.saturating_sub(rejoin.stable);
        let pairs = self.committed.entries_of(&rejoin.forgotten);
        for chunk in pairs.chunks(self.chunk) {
            // Stable point 0: these and live writes still race.
            if let Err(source) = client.apply_batch(0, chunk).await {
                self.log.abandon_join(id, registration.incarnation);
                return Err(CatchUpError::Transfer { id, source });
            }
        }
        tracing::info!(
            server = id,
            stable = rejoin.stable,
            missed,
            forgotten = rejoin.forgotten.len(),
            "rejoining by delta: the log ships what it missed"
        );
        self.sent.get_or_create(&[("kind", "delta")]).inc_by(pairs.len() as u64);
        self.delta_writes.inc_by(missed);
        self.log.snapshot_sent(id, registration.incarnation);
        Ok(Some(registration.promoted))
    }

    /// Passes `error` on, superseding this frontend first if the server
    /// said a newer one leads.
    fn refused(&self, error: CatchUpError) -> CatchUpError {
        if error.fault_code() == Some(fault::SUPERSEDED) {
            self.log.supersede(&error);
        }
        error
    }

    /// Brings back server `id`, which still holds every acknowledged write,
    /// while no server is active (see [`crate::replication::Readmission`]):
    /// its pairs are merged into the committed state (highest version
    /// wins, as in a restarted frontend's recovery), the merged state is
    /// sent to it, and it is active at once.
    pub async fn revive(&self, id: ServerId, client: ReplicaHandle, boot: Option<String>) -> Result<(), CatchUpError> {
        let _claim = self.claim(id)?;
        if !self.log.keep_only_holder(id) {
            return Err(self.refused(CatchUpError::RevivalUnrecorded(id)));
        }
        let held = client
            .dump_state(REVIVE_PAGE)
            .await
            .map_err(|source| self.refused(CatchUpError::Transfer { id, source }))?;
        self.committed.merge(&held);
        self.send_snapshot(client.as_ref())
            .await
            .map_err(|source| self.refused(CatchUpError::Transfer { id, source }))?;
        tracing::info!(
            server = id,
            pairs = held.len(),
            "server revived: it held every acknowledged write"
        );
        self.log.admit_recovered(id, client, boot);
        Ok(())
    }

    /// Claims the admission of server `id`: refused while it is a member or
    /// another admission of it is under way; released when the claim drops.
    fn claim(&self, id: ServerId) -> Result<Claim<'_>, CatchUpError> {
        let mut admitting = self.admitting.lock();
        if self.log.is_member(id) || !admitting.insert(id) {
            return Err(CatchUpError::Join(JoinError::AlreadyMember(id)));
        }
        Ok(Claim { catch_up: self, id })
    }

    /// Sends the committed pairs of every key range where they differ from
    /// `held` (the digests of what the server holds), in chunks; returns
    /// how many pairs were sent.
    pub async fn send_differing(&self, client: &dyn Replica, held: &Digests) -> Result<usize, RpcError> {
        let ranges = self.committed.digests().differing(held);
        if ranges.is_empty() {
            return Ok(0);
        }
        let entries = self.committed.entries_in(&ranges);
        for chunk in entries.chunks(self.chunk) {
            // Stable point 0: promises nothing (as for a snapshot).
            client.apply_batch(0, chunk).await?;
        }
        Ok(entries.len())
    }

    /// Sends every committed pair, in chunks.
    pub async fn send_snapshot(&self, client: &dyn Replica) -> Result<usize, RpcError> {
        let snapshot = self.committed.snapshot();
        for chunk in snapshot.chunks(self.chunk) {
            // Stable point 0: snapshot chunks and live writes still race.
            client.apply_batch(0, chunk).await?;
        }
        Ok(snapshot.len())
    }
}

/// An admission under way (see [`CatchUp::claim`]).
struct Claim<'a> {
    catch_up: &'a CatchUp,
    id: ServerId,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.catch_up.admitting.lock().remove(&self.id);
    }
}
