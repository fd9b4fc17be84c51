//! The replication protocol, top to bottom.
//!
//! 1. **Order.** `put` appends the write to the [`ReplicationLog`] under one
//!    short lock, which gives it the next sequence number (its version).
//!    Every server applies writes with their versions and keeps the highest
//!    per key, so all replicas agree on each key's order.
//! 2. **Ship.** Each member server has one replicator task. It waits for
//!    entries past what the server has acknowledged, sends them, up to
//!    `max_batch` at a time, in one `applyBatch` call, and records the
//!    acknowledgement. Servers are fed in parallel and a busy log turns into
//!    large batches on its own. A server that is already ahead of the commit
//!    point waits for it before it is sent more (lockstep), so with many
//!    servers each call carries every write that arrived in one commit
//!    round. The servers the commit point waits for may have up to
//!    `pipeline` calls in flight; acknowledgements are taken in send order. Once a server has its
//!    snapshot, each call also tells it the *stable point*: everything it has
//!    acknowledged (it has then applied every write up to there), which lets
//!    it drop the versions of settled pairs.
//! 3. **Commit.** The commit point is the lowest acknowledgement among the
//!    *active* servers. Entries up to it are applied, in order, to the
//!    [`Committed`] state (which serves reads) and their `put`s return. So a
//!    put is acknowledged only when every active server holds it, and a read
//!    never sees a write that is not on every active server.
//! 4. **Fail.** A server whose call (or heartbeat, see
//!    [`crate::failure_detector`]) fails or times out leaves the membership at
//!    once and is remembered as lost; the commit point is recomputed without
//!    it, so pending puts complete on the others. If no active server is
//!    left, pending puts fail (their writes were not stored) and new puts are
//!    refused. With `--data-dir`, every membership change is recorded durably
//!    *before* the commit point moves on without the server, so a restarted
//!    frontend knows which servers hold every acknowledged write.
//! 5. **Join.** `addServer` registers the server as joining at the current
//!    commit point `C`, so the log keeps every entry after `C` for it and its
//!    replicator starts shipping them; meanwhile [`crate::catch_up`] sends a
//!    snapshot of the committed state (which holds everything up to `C`).
//!    Once the snapshot is in and the server has acknowledged the commit
//!    point, it becomes active. A lost server that answers again rejoins the
//!    same way.
//!    A lost server that comes back still holding what it had (paused, cut
//!    off, or durable and restarted) *rejoins by delta* instead, when it
//!    can: it forgets what it holds above its stable point `S` (writes that
//!    may never have committed), is registered at `S` so the log ships it
//!    every write after `S`, and is sent the committed pairs of the keys it
//!    forgot in place of a snapshot. That needs the log to still hold every
//!    write after `S`, and `S` to be above the last abort (step 4: an
//!    aborted write the server took would otherwise stay on it).
//! 6. **Truncate.** Entries that every member has acknowledged, and that are
//!    committed, are dropped, but for the last `rejoin_tail` committed ones
//!    (kept for rejoins by delta), so the log holds the writes in flight and
//!    that bounded tail.
//! 7. **Fence.** Every call carries this frontend's [`Fence`]. A read is
//!    answered only under a lease: every active server accepted a call sent
//!    less than [`READ_LEASE`] ago (a server then accepts no newer frontend
//!    for longer than that; see [`kvs_proto::fence`]). With no active
//!    server no read is answered: nothing confirms this frontend still
//!    leads. A server that says a newer epoch leads, or a newer epoch in the data
//!    folder, *supersedes* this frontend: pending and new puts and reads
//!    fail with fault `SUPERSEDED`, replication and probes stop, and
//!    nothing more is recorded.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt::Display;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use kvs_proto::fence::READ_LEASE;
use kvs_proto::metrics::{LatencyFamily, latency_histogram};
use kvs_proto::{Entry, Fence, Key, RpcError, ServerId, Value, fault};
use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use thiserror::Error;
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;

use crate::committed::Committed;
use crate::durable::{ClusterRecord, DurableError, RecordStore};
use crate::membership::{Member, Membership, Phase};
use crate::signal::Signal;
use crate::tasks::Tasks;
use crate::transport::ReplicaHandle;

/// Why a write was not acknowledged.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum WriteError {
    #[error("no active server: the write was not acknowledged")]
    NoActiveServer,
    #[error("this frontend has been superseded by a newer one: the write was not acknowledged here")]
    Superseded,
    #[error(
        "the data folder cannot record the membership ({0}): writes are refused, and those in flight wait, \
         until it can"
    )]
    Unrecorded(String),
}

/// Why a read was not answered.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ReadError {
    #[error("this frontend has been superseded by a newer one: it answers no reads")]
    Superseded,
    #[error("no lease: the active servers have not confirmed this frontend within {0:?}")]
    NoLease(std::time::Duration),
    #[error("no active server confirms this frontend still leads: no read is answered")]
    NoActiveServer,
}

/// Why a server could not be registered as joining.
#[derive(Debug, Error)]
pub enum JoinError {
    #[error("server {0} is already a member")]
    AlreadyMember(ServerId),
}

/// A write waiting in the log, and the `put` waiting for it.
struct Slot {
    entry: Entry,
    waiter: Option<oneshot::Sender<Result<(), WriteError>>>,
}

/// Everything the log lock guards.
struct LogState {
    /// Entries `first_seq ..= last_seq`, oldest first.
    slots: VecDeque<Slot>,
    first_seq: u64,
    last_seq: u64,
    /// Every entry up to here is committed (or, if no server was left, aborted).
    commit: u64,
    members: Membership,
    /// The membership as last written to the data folder.
    recorded: ClusterRecord,
    /// The servers known to hold every acknowledged write, with their boot
    /// ids where known: the active ones, or, while none is active (no write
    /// can be acknowledged then), the last active ones that have been
    /// neither reset nor removed since. The record lists these as `active`,
    /// the servers a restarted frontend recovers from.
    holders: BTreeMap<ServerId, Option<String>>,
    /// The last holders lost what they held (restarted empty, or emptied
    /// for a catch-up) while none was active: only this frontend has the
    /// acknowledged writes, and the record says so while `holders` is empty.
    unheld: bool,
    /// Why the current membership could not be written, while it cannot:
    /// the commit point then stays where it is (see step 4).
    unrecorded: Option<String>,
    /// The last sequence number of the latest abort (step 4), or the
    /// epoch's base: only a stable point above it allows a rejoin by delta.
    delta_floor: u64,
    /// Servers found holding what the frontend never sent them (the
    /// scrub): their next admission empties them, whatever their stable point.
    distrusted: BTreeSet<ServerId>,
}

impl LogState {
    fn slot_mut(&mut self, seq: u64) -> Option<&mut Slot> {
        let index = usize::try_from(seq.checked_sub(self.first_seq)?).ok()?;
        self.slots.get_mut(index)
    }

    /// Entries after `acked`, at most `max` of them.
    fn entries_after(&self, acked: u64, max: usize) -> Vec<Entry> {
        let skip = usize::try_from(acked.saturating_add(1).saturating_sub(self.first_seq)).unwrap_or(usize::MAX);
        self.slots.iter().skip(skip).take(max).map(|slot| slot.entry).collect()
    }
}

/// The ordered log of writes and the membership that replicates it.
pub struct ReplicationLog {
    state: Mutex<LogState>,
    /// The last appended sequence number; replicators wait on it.
    appended: Signal,
    /// The commit point; replicators ahead of it wait on it.
    commits: Signal,
    committed: Arc<Committed>,
    max_batch: usize,
    /// Most replication calls in flight to one server.
    pipeline: usize,
    /// Committed entries kept for rejoins by delta (step 6).
    rejoin_tail: u64,
    fence: Fence,
    durable: Option<Arc<dyn RecordStore>>,
    shipped: Shipped,
    leases: Leases,
    /// Set once a newer frontend has taken over (see step 7).
    superseded: AtomicBool,
    /// The replicators, and every other task of this frontend.
    tasks: Tasks,
}

/// Until when reads may be answered (step 7), readable without the lock.
struct Leases {
    origin: Instant,
    /// Nanoseconds after `origin`; [`NO_SERVERS`] when no server is active.
    until: AtomicU64,
    renewed: Notify,
}

/// `Leases::until` when no server is active: reads are refused at once.
const NO_SERVERS: u64 = u64::MAX;

/// How writes are shipped to each server.
#[derive(Debug, Clone, Copy)]
pub struct Shipping {
    /// Most writes in one replication call.
    pub max_batch: usize,
    /// Most replication calls in flight to one server.
    pub pipeline: usize,
    /// Committed writes kept for rejoins by delta.
    pub rejoin_tail: usize,
}

/// Replication calls made, entries they carried and their round trips, for `/metrics`.
#[derive(Debug)]
pub struct Shipped {
    pub calls: Counter,
    pub entries: Counter,
    /// Round trip of an acknowledged `applyBatch`, by server.
    pub round_trip: LatencyFamily<[(&'static str, String); 1]>,
}

impl Default for Shipped {
    fn default() -> Self {
        Shipped {
            calls: Counter::default(),
            entries: Counter::default(),
            round_trip: LatencyFamily::new_with_constructor(latency_histogram as fn() -> Histogram),
        }
    }
}

/// How a lost server that answers again comes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readmission {
    /// Emptied and sent the committed state ([`crate::catch_up`]).
    CatchUp,
    /// No server is active and this one still holds every acknowledged
    /// write: its state is merged into the committed state, as a restarted
    /// frontend's recovery does, and it is active again at once. (Emptying
    /// it would leave the record no server to recover from.)
    Revive,
    /// No server is active, and another one holds every acknowledged
    /// write: that one comes back first.
    Wait,
}

/// A joining member's registration: where its snapshot must start.
pub struct Registration {
    pub incarnation: u64,
    pub promoted: oneshot::Receiver<()>,
}

impl ReplicationLog {
    /// An empty log whose versions start above `fence.epoch << 40`;
    /// membership changes are recorded in `durable` if given.
    pub fn new(
        committed: Arc<Committed>,
        shipping: Shipping,
        fence: Fence,
        durable: Option<Arc<dyn RecordStore>>,
    ) -> Arc<Self> {
        let base = fence.base_version();
        Arc::new(ReplicationLog {
            state: Mutex::new(LogState {
                slots: VecDeque::new(),
                first_seq: base + 1,
                last_seq: base,
                commit: base,
                members: Membership::default(),
                recorded: ClusterRecord {
                    cluster: fence.cluster,
                    epoch: fence.epoch,
                    ..ClusterRecord::default()
                },
                holders: BTreeMap::new(),
                unheld: false,
                unrecorded: None,
                delta_floor: base,
                distrusted: BTreeSet::new(),
            }),
            appended: Signal::new(base),
            commits: Signal::new(base),
            committed,
            max_batch: shipping.max_batch.max(1),
            pipeline: shipping.pipeline.max(1),
            rejoin_tail: shipping.rejoin_tail as u64,
            fence,
            durable,
            shipped: Shipped::default(),
            leases: Leases {
                origin: Instant::now(),
                until: AtomicU64::new(NO_SERVERS),
                renewed: Notify::new(),
            },
            superseded: AtomicBool::new(false),
            tasks: Tasks::default(),
        })
    }

    /// This frontend's identity on the wire.
    pub fn fence(&self) -> Fence {
        self.fence
    }

    // ----- 1. order -------------------------------------------------------

    /// Orders a write and waits until every active server holds it.
    pub async fn put(&self, key: Key, value: Value) -> Result<(), WriteError> {
        let (waiter, done) = oneshot::channel();
        let seq = {
            let mut state = self.state.lock();
            if self.is_superseded() {
                return Err(WriteError::Superseded);
            }
            if state.members.active_count() == 0 {
                return Err(WriteError::NoActiveServer);
            }
            if let Some(reason) = &state.unrecorded {
                return Err(WriteError::Unrecorded(reason.clone()));
            }
            state.last_seq += 1;
            let version = state.last_seq;
            state.slots.push_back(Slot {
                entry: Entry { key, value, version },
                waiter: Some(waiter),
            });
            version
        };
        self.appended.raise(seq);
        // A dropped sender means the log itself went away: the write is not known to be stored.
        done.await.unwrap_or(Err(WriteError::NoActiveServer))
    }

    // ----- 2. ship --------------------------------------------------------

    /// Feeds one member until it fails or leaves: up to `pipeline` calls in
    /// flight, acknowledged strictly in the order they were sent.
    async fn replicate(self: Arc<Self>, id: ServerId, incarnation: u64, client: ReplicaHandle, changed: Arc<Notify>) {
        let mut appended = self.appended.watch();
        let mut commits = self.commits.watch();
        let mut in_flight = FuturesOrdered::new();
        // The last version sent (in flight or acknowledged).
        let mut sent = 0;
        // Whether the server has been told a stable point since it joined.
        let mut told_stable = false;
        let mut lingered = false;
        loop {
            // Mark the current values seen first, so a change after the look
            // at the log below wakes the wait at the bottom.
            appended.mark_seen();
            commits.mark_seen();
            let (batch, ahead, stable) = {
                let state = self.state.lock();
                if self.is_superseded() {
                    return;
                }
                let Some(member) = state.members.get(id).filter(|m| m.incarnation == incarnation) else {
                    return;
                };
                sent = sent.max(member.acked);
                let batch = state.entries_after(sent, self.max_batch);
                // Once its snapshot is in, the server is sent every write in
                // order, so every write it has acknowledged is stable. (Not
                // what is in flight: calls may arrive in any order.)
                let stable = if member.has_snapshot() { member.acked } else { 0 };
                (batch, member.acked > state.commit, stable)
            };
            // Lockstep: a server that already holds writes the slowest active
            // server lacks gets no more until the commit point catches up,
            // unless a batch is full: sending now would not commit anything
            // sooner, and waiting turns many small calls into one large call
            // per server per commit round. The servers the commit point waits
            // for may have up to `pipeline` calls in flight.
            let hold = ahead && batch.len() < self.max_batch;
            if !batch.is_empty() && !hold && in_flight.len() < self.pipeline {
                if batch.len() < self.max_batch && !lingered {
                    // Let the puts already accepted by this process append
                    // theirs first: one call then carries them all.
                    lingered = true;
                    tokio::task::yield_now().await;
                    continue;
                }
                lingered = false;
                let last = batch.last().map_or(sent, |entry| entry.version);
                sent = last;
                told_stable |= stable > 0;
                self.shipped.calls.inc();
                self.shipped.entries.inc_by(batch.len() as u64);
                in_flight.push_back(ship(Arc::clone(&client), stable, batch, last));
                continue;
            }
            if in_flight.is_empty() && batch.is_empty() && !told_stable && stable > 0 {
                // Idle after a catch-up or recovery: tell the stable point
                // alone, so the server can settle what it holds.
                told_stable = true;
                in_flight.push_back(ship(Arc::clone(&client), stable, Vec::new(), 0));
                continue;
            }
            // Biased: acknowledgements first, and the same choice on every
            // run (a simulation replays a seed exactly).
            tokio::select! {
                biased;
                Some((result, last, sent_at)) = in_flight.next(), if !in_flight.is_empty() => match result {
                    Ok(_) => {
                        self.shipped
                            .round_trip
                            .get_or_create(&[("server", id.to_string())])
                            .observe(sent_at.elapsed().as_secs_f64());
                        self.acknowledge(id, incarnation, last, sent_at);
                    }
                    Err(error) => {
                        self.refused(id, incarnation, &error);
                        return;
                    }
                },
                () = appended.changed(), if !hold => {}
                () = commits.changed(), if hold => {}
                () = changed.notified() => {}
            }
        }
    }

    // ----- 3. commit ------------------------------------------------------

    /// Records that member `id` holds every entry up to `seq`, and accepted
    /// a call sent at `sent_at`.
    fn acknowledge(&self, id: ServerId, incarnation: u64, seq: u64, sent_at: Instant) {
        let mut state = self.state.lock();
        let commit = state.commit;
        let Some(member) = state.members.get_mut(id, incarnation) else {
            return;
        };
        member.acked = member.acked.max(seq);
        member.lease_from = member.lease_from.max(Some(sent_at));
        if Self::promote_if_current(member, commit, id) {
            self.record(&mut state);
        }
        self.refresh_lease(&state);
        self.advance_commit(&mut state);
    }

    /// Commits every entry all active members hold, then truncates; not
    /// while the membership is not on disk (step 4).
    fn advance_commit(&self, state: &mut LogState) {
        if state.unrecorded.is_some() {
            return;
        }
        let Some(point) = state.members.commit_point() else {
            return;
        };
        while state.commit < point {
            let seq = state.commit + 1;
            if let Some(slot) = state.slot_mut(seq) {
                self.committed.apply(&slot.entry);
                if let Some(waiter) = slot.waiter.take() {
                    let _ = waiter.send(Ok(()));
                }
            }
            state.commit = seq;
        }
        self.publish_commit(state.commit);
        self.truncate(state);
    }

    // ----- 4. fail --------------------------------------------------------

    /// A call to member `id` failed: the member fails, or, if the server
    /// says a newer frontend leads, this frontend is superseded.
    pub fn refused(&self, id: ServerId, incarnation: u64, error: &RpcError) {
        if error.fault().is_some_and(|f| f.code() == fault::SUPERSEDED) {
            self.supersede(&format!("server {id}: {error}"));
        } else {
            self.fail(id, incarnation, error);
        }
    }

    /// Server `id` holds what the frontend never sent it: its next
    /// admission empties it (no rejoin by delta).
    pub fn distrust(&self, id: ServerId) {
        self.state.lock().distrusted.insert(id);
    }

    /// Takes a member that failed a call or a heartbeat out of the
    /// membership (if it is still that incarnation); it is remembered as lost.
    pub fn fail(&self, id: ServerId, incarnation: u64, reason: &dyn Display) {
        let mut state = self.state.lock();
        if state.members.lose(id, Some(incarnation)) {
            tracing::warn!(server = id, %reason, "server failed; it leaves the active set");
            self.after_removal(&mut state);
        }
    }

    /// Forgets server `id` on request (`shutdownServer`), member or lost;
    /// returns its client. If it was the last active server it stays among
    /// the holders (no write can be acknowledged without an active server,
    /// so it still holds every one): a restarted frontend then recovers
    /// from it — a durable server leaving on SIGTERM keeps its folder — or
    /// says it cannot, rather than start empty.
    pub fn remove(&self, id: ServerId) -> Option<ReplicaHandle> {
        let mut state = self.state.lock();
        let client = state.members.forget(id)?;
        tracing::info!(server = id, "server removed from the cluster");
        self.after_removal(&mut state);
        Some(client)
    }

    /// Takes out a joining member whose catch-up failed; it is remembered as lost.
    pub fn abandon_join(&self, id: ServerId, incarnation: u64) {
        let mut state = self.state.lock();
        if state.members.lose(id, Some(incarnation)) {
            self.after_removal(&mut state);
        }
    }

    /// Remembers a server a restarted frontend could not reach, so the
    /// failure detector readmits it when it answers.
    pub fn add_lost(&self, id: ServerId, client: ReplicaHandle) {
        let mut state = self.state.lock();
        state.members.add_lost(id, client);
        self.record(&mut state);
    }

    /// The membership shrank: record it durably first, then let the commit
    /// point move on without the server.
    fn after_removal(&self, state: &mut LogState) {
        self.record(state);
        self.refresh_lease(state);
        if state.members.active_count() == 0 {
            self.abort_uncommitted(state);
        } else {
            self.advance_commit(state);
        }
    }

    /// No active server is left: nothing uncommitted can be stored. Fail the
    /// waiting puts, drop their entries and every joining member (which was
    /// fed from them), and start the log afresh after them.
    fn abort_uncommitted(&self, state: &mut LogState) {
        for slot in &mut state.slots {
            if let Some(waiter) = slot.waiter.take() {
                let _ = waiter.send(Err(WriteError::NoActiveServer));
            }
        }
        if state.last_seq > state.commit {
            tracing::warn!(
                writes = state.last_seq - state.commit,
                "no active server left: pending writes failed"
            );
        }
        state.members.lose_joining();
        self.record(state);
        state.delta_floor = state.last_seq;
        state.slots.clear();
        state.commit = state.last_seq;
        state.first_seq = state.last_seq + 1;
        self.publish_commit(state.commit);
    }

    /// Wakes the replicators waiting for the commit point to reach them.
    fn publish_commit(&self, commit: u64) {
        self.commits.raise(commit);
    }

    // ----- 5. join --------------------------------------------------------

    /// Registers server `id` as joining at the current commit point and
    /// starts its replicator. The caller must then send it a snapshot of
    /// [`Committed`] and call [`ReplicationLog::snapshot_sent`].
    /// `boot` is the boot id the server answered with before it was reset.
    pub fn register(
        self: &Arc<Self>,
        id: ServerId,
        client: ReplicaHandle,
        boot: Option<String>,
    ) -> Result<Registration, JoinError> {
        // At the commit point a registration always happens.
        self.register_from(id, client, boot, None)?
            .ok_or(JoinError::AlreadyMember(id))
    }

    /// Registers server `id`, which holds every write up to its stable
    /// point `stable` and nothing above it, as joining at `stable`: the log
    /// ships it every write after that. `None` if the log no longer holds
    /// them all, or an abort came after `stable` (see step 5): the server
    /// must then be emptied and sent a snapshot instead.
    pub fn register_at(
        self: &Arc<Self>,
        id: ServerId,
        client: ReplicaHandle,
        boot: Option<String>,
        stable: u64,
    ) -> Result<Option<Registration>, JoinError> {
        self.register_from(id, client, boot, Some(stable))
    }

    /// [`ReplicationLog::register`] at the commit point (`from` `None`), or
    /// [`ReplicationLog::register_at`] a stable point.
    fn register_from(
        self: &Arc<Self>,
        id: ServerId,
        client: ReplicaHandle,
        boot: Option<String>,
        from: Option<u64>,
    ) -> Result<Option<Registration>, JoinError> {
        let (promoted_tx, promoted) = oneshot::channel();
        let changed = Arc::new(Notify::new());
        let incarnation = {
            let mut state = self.state.lock();
            if state.members.contains(id) {
                return Err(JoinError::AlreadyMember(id));
            }
            let acked = match from {
                None => {
                    state.distrusted.remove(&id);
                    state.commit
                }
                Some(_) if state.distrusted.contains(&id) => return Ok(None),
                Some(stable)
                    if stable > state.delta_floor && stable + 1 >= state.first_seq && stable <= state.last_seq =>
                {
                    stable
                }
                Some(_) => return Ok(None),
            };
            state.members.found(id);
            let incarnation = state.members.next_incarnation();
            let phase = Phase::Joining {
                snapshot_done: false,
                promoted: Some(promoted_tx),
            };
            let member = Member {
                client: Arc::clone(&client),
                incarnation,
                boot,
                acked,
                lease_from: None,
                phase,
                changed: Arc::clone(&changed),
            };
            state.members.insert(id, member);
            incarnation
        };
        self.tasks
            .spawn(Arc::clone(self).replicate(id, incarnation, client, changed));
        Ok(Some(Registration { incarnation, promoted }))
    }

    /// Makes server `id` active at once: a restarted frontend's recovery
    /// source, which holds every acknowledged write and has been sent the
    /// recovered state (see [`crate::recovery`]).
    /// `boot` is the boot id it answered recovery with.
    pub fn admit_recovered(self: &Arc<Self>, id: ServerId, client: ReplicaHandle, boot: Option<String>) {
        let changed = Arc::new(Notify::new());
        let incarnation = {
            let mut state = self.state.lock();
            state.members.found(id);
            let incarnation = state.members.next_incarnation();
            let member = Member {
                client: Arc::clone(&client),
                incarnation,
                boot,
                acked: state.commit,
                lease_from: None,
                phase: Phase::Active,
                changed: Arc::clone(&changed),
            };
            state.members.insert(id, member);
            self.record(&mut state);
            self.refresh_lease(&state);
            incarnation
        };
        self.tasks
            .spawn(Arc::clone(self).replicate(id, incarnation, client, changed));
    }

    /// The snapshot reached member `id`: it becomes active as soon as it has
    /// acknowledged the commit point (now, or on a later acknowledgement).
    pub fn snapshot_sent(&self, id: ServerId, incarnation: u64) {
        let mut state = self.state.lock();
        let commit = state.commit;
        let Some(member) = state.members.get_mut(id, incarnation) else {
            return;
        };
        if let Phase::Joining { snapshot_done, .. } = &mut member.phase {
            *snapshot_done = true;
            member.changed.notify_one();
        }
        if Self::promote_if_current(member, commit, id) {
            self.record(&mut state);
            self.refresh_lease(&state);
        }
        self.advance_commit(&mut state);
    }

    /// Makes a joining member active if it has the snapshot and the commit
    /// point; says whether it did.
    fn promote_if_current(member: &mut Member, commit: u64, id: ServerId) -> bool {
        let Phase::Joining {
            snapshot_done: true,
            promoted,
        } = &mut member.phase
        else {
            return false;
        };
        if member.acked < commit {
            return false;
        }
        if let Some(promoted) = promoted.take() {
            let _ = promoted.send(());
        }
        member.phase = Phase::Active;
        tracing::info!(server = id, acked = member.acked, "server caught up and is active");
        true
    }

    // ----- durability -------------------------------------------------------

    /// Writes the membership to the data folder if it changed. While a
    /// write fails, the commit point stays where it is and new puts are
    /// refused ([`WriteError::Unrecorded`]): a restart must never trust a
    /// record that lists a server as holding writes it lacks. A newer epoch
    /// on disk supersedes this frontend.
    fn record(&self, state: &mut LogState) {
        let Some(durable) = &self.durable else { return };
        if self.is_superseded() {
            return;
        }
        let (active, lost) = state.members.record_ids();
        if !active.is_empty() {
            let boots = state.members.active_boots();
            state.holders = active.iter().map(|id| (*id, boots.get(id).cloned())).collect();
        }
        state.unheld &= state.holders.is_empty();
        let record = ClusterRecord {
            cluster: self.fence.cluster,
            epoch: self.fence.epoch,
            active: state.holders.keys().copied().collect(),
            lost: lost.into_iter().filter(|id| !state.holders.contains_key(id)).collect(),
            boots: state
                .holders
                .iter()
                .filter_map(|(id, boot)| Some((*id, boot.clone()?)))
                .collect(),
            unheld: state.unheld,
            holder: state.recorded.holder.clone(),
        };
        if record == state.recorded {
            state.unrecorded = None;
            return;
        }
        match durable.store(&record) {
            Ok(()) => {
                if state.unrecorded.take().is_some() {
                    tracing::info!("the membership is recorded again: commits go on");
                }
                state.recorded = record;
            }
            Err(error @ DurableError::Superseded { .. }) => self.supersede_locked(state, &error),
            Err(error) => {
                if state.unrecorded.is_none() {
                    tracing::error!(%error, "cannot record the membership: commits stop and puts are refused until it can");
                }
                state.unrecorded = Some(error.to_string());
            }
        }
    }

    /// A restarted frontend's recovery sources: they hold every
    /// acknowledged write (see [`crate::recovery`]).
    /// `recorded` is the record on disk as recovery left it.
    pub fn set_holders(&self, holders: BTreeMap<ServerId, Option<String>>, recorded: ClusterRecord) {
        let mut state = self.state.lock();
        state.holders = holders;
        state.recorded = recorded;
    }

    /// Writes the membership to the data folder now if it differs from
    /// what is there; the error while it cannot.
    pub fn record_now(&self) -> Result<(), String> {
        let mut state = self.state.lock();
        self.record(&mut state);
        match &state.unrecorded {
            Some(error) => Err(error.clone()),
            None => Ok(()),
        }
    }

    /// Server `id` is about to be emptied for a catch-up: it stops counting
    /// as holding every acknowledged write, on disk first (the record on
    /// disk may lag the membership while the disk fails). False if the
    /// record on disk still lists it: the server must not be emptied then.
    pub fn release_holder(&self, id: ServerId) -> bool {
        let mut state = self.state.lock();
        let held = state.holders.remove(&id);
        if held.is_none() && !state.recorded.active.contains(&id) {
            return true;
        }
        state.unheld |= state.holders.is_empty();
        self.record(&mut state);
        let released = !state.recorded.active.contains(&id);
        if let (false, Some(boot)) = (released, held) {
            state.holders.insert(id, boot);
        }
        released
    }

    /// Server `id`, a holder, is about to be revived while no server is
    /// active: its pairs will be merged into the committed state (any
    /// write it holds that failed then becomes readable), so from here on
    /// it alone is known to hold everything readable — on disk first. False
    /// if the record on disk cannot say so: the server must not be revived
    /// then (a restarted frontend could recover from another holder that
    /// lacks what the revival made readable).
    pub fn keep_only_holder(&self, id: ServerId) -> bool {
        if self.durable.is_none() {
            return true;
        }
        let mut state = self.state.lock();
        let Some(boot) = state.holders.get(&id).cloned() else {
            return false;
        };
        let before = std::mem::replace(&mut state.holders, BTreeMap::from([(id, boot)]));
        self.record(&mut state);
        let kept = state.recorded.active == [id];
        if !kept {
            state.holders = before;
        }
        kept
    }

    /// How lost server `id`, answering with `boot`, is to be readmitted.
    pub fn readmission(&self, id: ServerId, boot: Option<&str>) -> Readmission {
        let mut state = self.state.lock();
        if state.members.active_count() > 0 {
            return Readmission::CatchUp;
        }
        if let Some(recorded) = state.holders.get(&id) {
            if recorded.is_none() || recorded.as_deref() == boot {
                // The other members (joining) were fed from a state the
                // revival will change: let them fail first.
                return if state.members.ids().next().is_none() {
                    Readmission::Revive
                } else {
                    Readmission::Wait
                };
            }
            tracing::warn!(
                server = id,
                "a server holding every acknowledged write restarted: it holds nothing now"
            );
            state.holders.remove(&id);
            state.unheld |= state.holders.is_empty();
            self.record(&mut state);
        }
        // Holders that were removed are not probed and never come back on
        // their own; this frontend holds every acknowledged write itself.
        if state.holders.keys().all(|holder| !state.members.knows(*holder)) {
            Readmission::CatchUp
        } else {
            Readmission::Wait
        }
    }

    /// Tries again to record a membership that could not be stored; once
    /// it is, the commit point moves on. Called at every heartbeat round.
    pub fn retry_record(&self) {
        let mut state = self.state.lock();
        if state.unrecorded.is_some() {
            self.record(&mut state);
            self.advance_commit(&mut state);
        }
    }

    // ----- 7. fence ---------------------------------------------------------

    /// Member `id` accepted a heartbeat sent at `sent_at`.
    pub fn renew(&self, id: ServerId, incarnation: u64, sent_at: Instant) {
        let mut state = self.state.lock();
        if let Some(member) = state.members.get_mut(id, incarnation) {
            member.lease_from = member.lease_from.max(Some(sent_at));
            self.refresh_lease(&state);
        }
    }

    /// Recomputes until when reads may be answered, after a lease or the
    /// active set changed.
    fn refresh_lease(&self, state: &LogState) {
        let until = match state.members.oldest_active_lease() {
            None => NO_SERVERS,
            Some(None) => 0,
            Some(Some(from)) => {
                let nanos = (from + READ_LEASE)
                    .saturating_duration_since(self.leases.origin)
                    .as_nanos();
                u64::try_from(nanos).unwrap_or(NO_SERVERS - 1)
            }
        };
        if self.leases.until.swap(until, Ordering::AcqRel) != until {
            self.leases.renewed.notify_waiters();
        }
    }

    /// Waits (at most [`READ_LEASE`]) until a read may be answered: this
    /// frontend still leads and holds a lease.
    pub async fn read_barrier(&self) -> Result<(), ReadError> {
        let deadline = Instant::now() + READ_LEASE;
        loop {
            let renewed = self.leases.renewed.notified();
            tokio::pin!(renewed);
            renewed.as_mut().enable();
            if self.is_superseded() {
                return Err(ReadError::Superseded);
            }
            let until = self.leases.until.load(Ordering::Acquire);
            let now = Instant::now().saturating_duration_since(self.leases.origin).as_nanos();
            if until == NO_SERVERS {
                return Err(ReadError::NoActiveServer);
            }
            if u128::from(until) > now {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, renewed).await.is_err() {
                return Err(ReadError::NoLease(READ_LEASE));
            }
        }
    }

    /// The frontend's background tasks (see [`Tasks`]).
    pub fn tasks(&self) -> &Tasks {
        &self.tasks
    }

    /// Whether a newer frontend has taken over.
    pub fn is_superseded(&self) -> bool {
        self.superseded.load(Ordering::Acquire)
    }

    /// A newer frontend has taken over: stop acknowledging anything.
    pub fn supersede(&self, reason: &dyn Display) {
        let mut state = self.state.lock();
        self.supersede_locked(&mut state, reason);
    }

    fn supersede_locked(&self, state: &mut LogState, reason: &dyn Display) {
        if self.superseded.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::error!(%reason, fence = %self.fence, "superseded by a newer frontend: no more writes or reads are answered here");
        for slot in &mut state.slots {
            if let Some(waiter) = slot.waiter.take() {
                let _ = waiter.send(Err(WriteError::Superseded));
            }
        }
        for (_, member) in state.members.members() {
            member.changed.notify_one();
        }
        self.leases.renewed.notify_waiters();
    }

    // ----- 6. truncate ----------------------------------------------------

    /// Drops entries that are committed and acknowledged by every member.
    fn truncate(&self, state: &mut LogState) {
        let keep_after = state
            .members
            .lowest_acked()
            .unwrap_or(state.commit)
            .min(state.commit.saturating_sub(self.rejoin_tail));
        while state.first_seq <= keep_after && state.slots.pop_front().is_some() {
            state.first_seq += 1;
        }
    }

    // ----- queries ----------------------------------------------------------

    /// (entries held in the log, commit point, last sequence number assigned).
    pub fn progress(&self) -> (usize, u64, u64) {
        let state = self.state.lock();
        (state.slots.len(), state.commit, state.last_seq)
    }

    /// Replication calls made, entries they carried, round trips.
    pub fn shipped(&self) -> &Shipped {
        &self.shipped
    }

    /// How many ordered writes each member has not acknowledged yet.
    pub fn lags(&self) -> Vec<(ServerId, u64)> {
        let state = self.state.lock();
        state
            .members
            .members()
            .map(|(id, m)| (id, state.last_seq.saturating_sub(m.acked)))
            .collect()
    }

    /// Active, joining and lost server ids.
    pub fn status_ids(&self) -> [Vec<ServerId>; 3] {
        self.state.lock().members.status_ids()
    }

    /// Whether server `id` is a member (active or joining; not lost).
    pub fn is_member(&self, id: ServerId) -> bool {
        self.state.lock().members.contains(id)
    }

    /// The member ids, ascending.
    pub fn member_ids(&self) -> Vec<ServerId> {
        self.state.lock().members.ids().collect()
    }

    /// Every member (id, incarnation, client) and every lost server (id,
    /// client), for the failure detector.
    #[allow(clippy::type_complexity)]
    pub fn probe_targets(&self) -> (Vec<(ServerId, u64, ReplicaHandle)>, Vec<(ServerId, ReplicaHandle)>) {
        let state = self.state.lock();
        let members = state
            .members
            .members()
            .map(|(id, m)| (id, m.incarnation, Arc::clone(&m.client)))
            .collect();
        let lost = state.members.lost().map(|(id, c)| (id, Arc::clone(c))).collect();
        (members, lost)
    }

    /// Checks the boot id a heartbeat of member `id` (this incarnation)
    /// answered with against the one it was admitted as, and records it if
    /// none was known. False if they differ: the process restarted, and
    /// whatever it was sent is gone.
    pub fn same_boot(&self, id: ServerId, incarnation: u64, boot: Option<&str>) -> bool {
        let mut state = self.state.lock();
        let Some(member) = state.members.get_mut(id, incarnation) else {
            return true;
        };
        match (&member.boot, boot) {
            (Some(known), Some(seen)) => known == seen,
            (None, Some(seen)) => {
                member.boot = Some(seen.to_owned());
                self.record(&mut state);
                true
            }
            (_, None) => true,
        }
    }

    /// Every active member (id, incarnation, client), for the scrub.
    pub fn active_members(&self) -> Vec<(ServerId, u64, ReplicaHandle)> {
        let state = self.state.lock();
        state
            .members
            .members()
            .filter(|(_, m)| m.is_active())
            .map(|(id, m)| (id, m.incarnation, Arc::clone(&m.client)))
            .collect()
    }

    /// For each (key, upto) asked: the newest write to the key still in the
    /// log with a version at or below `upto` (every uncommitted write is in
    /// the log), in one pass over it.
    pub fn latest_pending(&self, asked: &HashMap<Key, u64>) -> HashMap<Key, Entry> {
        let state = self.state.lock();
        let mut found = HashMap::new();
        for entry in state.slots.iter().rev().map(|slot| slot.entry) {
            if found.len() == asked.len() {
                break;
            }
            if asked.get(&entry.key).is_some_and(|upto| entry.version <= *upto) {
                found.entry(entry.key).or_insert(entry);
            }
        }
        found
    }

    /// The client of server `id`, member or lost.
    pub fn client_of(&self, id: ServerId) -> Option<ReplicaHandle> {
        self.state.lock().members.client_of(id).map(Arc::clone)
    }
}

/// One replication call; yields its outcome, the last version it carried
/// and when it was sent.
async fn ship(
    client: ReplicaHandle,
    stable: u64,
    batch: Vec<Entry>,
    last: u64,
) -> (Result<i32, RpcError>, u64, Instant) {
    let sent_at = Instant::now();
    (client.apply_batch(stable, &batch).await, last, sent_at)
}
