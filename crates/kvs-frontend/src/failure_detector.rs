//! Heartbeats: finding failed servers when no write is in flight, and
//! readmitting lost servers that answer again.
//!
//! Every `--heartbeat-interval-ms` the frontend probes each member and each
//! lost server with `heartbeat`, at most one probe per server at a time. A
//! member that does not answer within `--heartbeat-timeout-ms` leaves the
//! active set (like one that fails a replication call), and so does one
//! that answers with another boot id than it was admitted with: it
//! restarted between two probes and holds nothing. A lost server that
//! answers — resumed after a pause, restarted under its id, reconnected —
//! goes through a fresh [`CatchUp`] and becomes active again. An accepted
//! heartbeat renews the member's read lease; one refused because a newer
//! frontend leads supersedes this one, and probing stops.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use kvs_proto::{ServerId, fault, reply};
use parking_lot::Mutex;
use tokio::time::{Instant, MissedTickBehavior};

use crate::catch_up::CatchUp;
use crate::replication::{Readmission, ReplicationLog};
use crate::transport::ReplicaHandle;

/// The heartbeat loop and its bookkeeping.
pub struct FailureDetector {
    log: Arc<ReplicationLog>,
    catch_up: Arc<CatchUp>,
    interval: Duration,
    timeout: Duration,
    /// Servers with a probe (or a readmission) under way.
    busy: Mutex<HashSet<ServerId>>,
}

impl FailureDetector {
    pub fn new(log: Arc<ReplicationLog>, catch_up: Arc<CatchUp>, interval: Duration, timeout: Duration) -> Arc<Self> {
        Arc::new(FailureDetector {
            log,
            catch_up,
            interval,
            timeout,
            busy: Mutex::new(HashSet::new()),
        })
    }

    /// Probes every server each interval, until the frontend's tasks stop.
    pub async fn run(self: Arc<Self>) {
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
        loop {
            ticker.tick().await;
            self.probe_all();
        }
    }

    fn probe_all(self: &Arc<Self>) {
        if self.log.is_superseded() {
            return;
        }
        self.log.retry_record();
        let (members, lost) = self.log.probe_targets();
        for (id, incarnation, client) in members {
            if self.claim(id) {
                self.log
                    .tasks()
                    .spawn(Arc::clone(self).probe_member(id, incarnation, client));
            }
        }
        for (id, client) in lost {
            if self.claim(id) {
                self.log.tasks().spawn(Arc::clone(self).probe_lost(id, client));
            }
        }
    }

    async fn probe_member(self: Arc<Self>, id: ServerId, incarnation: u64, client: ReplicaHandle) {
        let sent_at = Instant::now();
        match tokio::time::timeout(self.timeout, client.heartbeat()).await {
            Ok(Ok(alive)) => {
                if self.log.same_boot(id, incarnation, reply::boot_of(&alive)) {
                    self.log.renew(id, incarnation, sent_at);
                } else {
                    self.log.fail(
                        id,
                        incarnation,
                        &"the server restarted since it was admitted: its state is gone",
                    );
                }
            }
            Ok(Err(error)) => self.log.refused(id, incarnation, &error),
            Err(_) => self
                .log
                .fail(id, incarnation, &format!("no heartbeat within {:?}", self.timeout)),
        }
        self.release(id);
    }

    async fn probe_lost(self: Arc<Self>, id: ServerId, client: ReplicaHandle) {
        match tokio::time::timeout(self.timeout, client.heartbeat()).await {
            Ok(Ok(alive)) => {
                let boot = reply::boot_of(&alive);
                let outcome = match self.log.readmission(id, boot) {
                    Readmission::CatchUp => {
                        tracing::info!(server = id, "lost server answers again; readmitting it");
                        self.catch_up.add(id, client, false).await
                    }
                    Readmission::Revive => {
                        tracing::info!(server = id, "lost server answers again; reviving it");
                        self.catch_up.revive(id, client, boot.map(str::to_owned)).await
                    }
                    Readmission::Wait => {
                        tracing::debug!(
                            server = id,
                            "another server holding every acknowledged write comes back first"
                        );
                        self.release(id);
                        return;
                    }
                };
                match outcome {
                    Ok(()) => tracing::info!(server = id, "server readmitted"),
                    Err(error) => tracing::warn!(server = id, %error, "readmission failed"),
                }
            }
            Ok(Err(error)) if error.fault().is_some_and(|f| f.code() == fault::SUPERSEDED) => {
                self.log.supersede(&format!("lost server {id}: {error}"));
            }
            _ => {}
        }
        self.release(id);
    }

    fn claim(&self, id: ServerId) -> bool {
        self.busy.lock().insert(id)
    }

    fn release(&self, id: ServerId) {
        self.busy.lock().remove(&id);
    }
}
