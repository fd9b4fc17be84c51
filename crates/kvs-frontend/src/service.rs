//! The frontend's XML-RPC methods, each a [`Handle`] impl.

use std::sync::Arc;

use dxr::Fault;
use kvs_proto::api::frontend::{
    AddServer, AdoptServer, ClusterStatus, Get, ListServer, PrintKvPairs, Put, Scrub as ScrubNow, ShutdownServer,
};
use kvs_proto::metrics::metrics;
use kvs_proto::serve::{Handle, Methods, Readiness};
use kvs_proto::{Fence, RpcError, ServerId, fault, reply};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use crate::catch_up::{CatchUp, CatchUpError};
use crate::committed::Committed;
use crate::config::Config;
use crate::durable::RecordStore;
use crate::failure_detector::FailureDetector;
use crate::recovery::{self, RecoveryError, RecoveryWait};
use crate::replication::{JoinError, ReadError, ReplicationLog, Shipping, WriteError};
use crate::scrub::Scrub;
use crate::transport::{Connector, ReplicaHandle};

/// The frontend: the log that orders and replicates writes, the committed
/// state that serves reads, the catch-up procedure for new servers and the
/// failure detector.
pub struct Frontend {
    config: Config,
    connector: Arc<dyn Connector>,
    log: Arc<ReplicationLog>,
    committed: Arc<Committed>,
    catch_up: Arc<CatchUp>,
    detector: Arc<FailureDetector>,
    scrub: Arc<Scrub>,
    gauges: Gauges,
}

/// The values `/metrics` reads from the frontend's state at each scrape.
#[derive(Debug, Default)]
struct Gauges {
    log_entries: Gauge,
    committed_keys: Gauge,
    commit: Gauge,
    last: Gauge,
    active: Gauge,
    joining: Gauge,
    lost: Gauge,
    superseded: Gauge,
    lag: Family<[(&'static str, String); 1], Gauge>,
}

impl Frontend {
    /// A frontend with identity `fence` and `committed` as its state,
    /// reaching servers through `connector`.
    pub fn new(
        config: Config,
        connector: Arc<dyn Connector>,
        fence: Fence,
        committed: Arc<Committed>,
        durable: Option<Arc<dyn RecordStore>>,
    ) -> Self {
        let shipping = Shipping {
            max_batch: config.max_batch,
            pipeline: config.pipeline,
            rejoin_tail: config.rejoin_tail,
        };
        let log = ReplicationLog::new(Arc::clone(&committed), shipping, fence, durable);
        let catch_up = Arc::new(CatchUp::new(
            Arc::clone(&log),
            Arc::clone(&committed),
            config.snapshot_chunk,
        ));
        let detector = FailureDetector::new(
            Arc::clone(&log),
            Arc::clone(&catch_up),
            config.heartbeat_interval(),
            config.heartbeat_timeout(),
        );
        let scrub = Arc::new(Scrub::new(Arc::clone(&log), Arc::clone(&committed)));
        let frontend = Frontend {
            config,
            connector,
            log,
            committed,
            catch_up,
            detector,
            scrub,
            gauges: Gauges::default(),
        };
        frontend.register_metrics();
        frontend
    }

    /// Rebuilds a frontend from its data folder and the servers (see
    /// [`crate::recovery`]), saying in `wait` what it waits for.
    pub async fn recover(
        config: Config,
        connector: Arc<dyn Connector>,
        data: Arc<dyn RecordStore>,
        wait: &RecoveryWait,
    ) -> Result<Self, RecoveryError> {
        let recovered = recovery::recover(&config, connector.as_ref(), data.as_ref(), wait).await?;
        let frontend = Frontend::new(config, connector, recovered.fence, recovered.committed, Some(data));
        frontend.log.set_holders(
            recovered
                .sources
                .iter()
                .map(|source| (source.id, source.boot.clone()))
                .collect(),
            recovered.record,
        );
        for source in recovered.sources {
            let (id, client) = (source.id, source.client);
            match frontend.catch_up.send_differing(client.as_ref(), &source.held).await {
                Ok(pairs) => {
                    tracing::info!(
                        server = id,
                        pairs,
                        "recovered state sent where it differed; server active"
                    );
                    frontend.log.admit_recovered(id, client, source.boot);
                }
                Err(error) => {
                    tracing::warn!(server = id, %error, "could not send the recovered state; server lost");
                    frontend.log.add_lost(id, client);
                }
            }
        }
        for (id, client) in recovered.others {
            frontend.log.add_lost(id, client);
        }
        // The merged state may hold writes that failed (a source had them):
        // once readable, they must be on every server a later recovery may
        // read from. So nothing is served until the record names only the
        // servers that hold the merged state.
        while let Err(error) = frontend.log.record_now() {
            wait.set_status(format!(
                "recovering: the data folder cannot record which servers hold the recovered state ({error}); \
                 serving nothing until it can"
            ));
            tracing::warn!(%error, "cannot record the recovered membership; retrying");
            tokio::time::sleep(recovery::RETRY_PAUSE).await;
        }
        Ok(frontend)
    }

    /// Registers the frontend's own metrics (see [`kvs_proto::metrics`]).
    fn register_metrics(&self) {
        let registry = metrics();
        let shipped = self.log.shipped();
        let counts = &self.scrub.counts;
        for (name, help, counter) in [
            (
                "replication_calls",
                "applyBatch calls made to servers (one per server per batch)",
                &shipped.calls,
            ),
            (
                "replicated_entries",
                "Writes carried by those calls, counted once per server",
                &shipped.entries,
            ),
            ("scrub_passes", "Scrub passes over every active server", &counts.passes),
            (
                "scrub_ranges_differing",
                "Key ranges whose digest differed from the committed state (looked at key by key)",
                &counts.ranges_differing,
            ),
            (
                "scrub_diverged",
                "Servers found diverged from the committed state, and readmitted to be rebuilt",
                &counts.diverged,
            ),
        ] {
            registry.register(name, help, counter.clone());
        }
        registry.register(
            "replication_round_trip_seconds",
            "Round trip of an acknowledged applyBatch call, by server",
            shipped.round_trip.clone(),
        );
        registry.register(
            "catch_ups",
            "Servers admitted by catch-up (addServer and readmissions), by outcome",
            self.catch_up.outcomes().clone(),
        );
        registry.register(
            "catch_up_pairs",
            "Pairs sent to joining servers outside the log: whole snapshots, or the forgotten keys of a rejoin by delta",
            self.catch_up.sent().clone(),
        );
        registry.register(
            "rejoin_delta_writes",
            "Writes that servers rejoining by delta had missed, shipped to them from the log",
            self.catch_up.delta_writes().clone(),
        );
        let gauges = &self.gauges;
        for (name, help, gauge) in [
            (
                "log_entries",
                "Writes held in the replication log (in flight or not yet acknowledged by all)",
                &gauges.log_entries,
            ),
            ("committed_keys", "Keys with a committed value", &gauges.committed_keys),
            (
                "commit_sequence",
                "Sequence number of the last committed write",
                &gauges.commit,
            ),
            (
                "last_sequence",
                "Sequence number of the last write ordered",
                &gauges.last,
            ),
            ("servers_active", "Active servers", &gauges.active),
            ("servers_joining", "Servers catching up", &gauges.joining),
            (
                "servers_lost",
                "Servers that failed and are probed for readmission",
                &gauges.lost,
            ),
            (
                "superseded",
                "1 once a newer frontend has taken over: this one answers nothing more",
                &gauges.superseded,
            ),
        ] {
            registry.register(name, help, gauge.clone());
        }
        registry.register(
            "replication_lag_writes",
            "Ordered writes a member has not acknowledged yet, by server",
            gauges.lag.clone(),
        );
    }

    /// Updates the values read rather than counted, before a scrape.
    pub fn refresh_metrics(&self) {
        let (log_entries, commit, last) = self.log.progress();
        let [active, joining, lost] = self.log.status_ids();
        let gauges = &self.gauges;
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        let sequence = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        gauges.log_entries.set(count(log_entries));
        gauges.committed_keys.set(count(self.committed.len()));
        gauges.commit.set(sequence(commit));
        gauges.last.set(sequence(last));
        gauges.active.set(count(active.len()));
        gauges.joining.set(count(joining.len()));
        gauges.lost.set(count(lost.len()));
        gauges.superseded.set(i64::from(self.log.is_superseded()));
        gauges.lag.clear();
        for (id, lag) in self.log.lags() {
            gauges
                .lag
                .get_or_create(&[("server", id.to_string())])
                .set(sequence(lag));
        }
    }

    /// The catch-up procedure and its counters (for tests).
    pub fn catch_up(&self) -> &CatchUp {
        &self.catch_up
    }

    /// The replication log (for tests and the simulator).
    pub fn log(&self) -> &Arc<ReplicationLog> {
        &self.log
    }

    /// Starts the heartbeat loop and the periodic scrub.
    pub fn start(&self) {
        let tasks = self.log.tasks();
        tasks.spawn(Arc::clone(&self.detector).run());
        tasks.spawn(Arc::clone(&self.scrub).run(self.config.scrub_interval()));
    }

    /// Stops every background task (replicators, probes, catch-ups, the
    /// scrub) and waits until they have ended.
    pub async fn shutdown(&self) {
        self.log.tasks().shutdown().await;
    }

    fn member(&self, id: ServerId) -> Result<ReplicaHandle, Fault> {
        self.log.client_of(id).ok_or_else(|| unknown_server(id))
    }
}

/// Every method of the frontend but `acceptDataLoss` (see
/// [`crate::gate::Gate::router`]), answered by `service`.
pub(crate) fn every_method<S>(methods: Methods, service: &Arc<S>) -> Methods
where
    S: Handle<Put>
        + Handle<Get>
        + Handle<PrintKvPairs>
        + Handle<AddServer>
        + Handle<AdoptServer>
        + Handle<ListServer>
        + Handle<ShutdownServer>
        + Handle<ClusterStatus>
        + Handle<ScrubNow>,
{
    methods
        .method::<Put, _>(service)
        .method::<Get, _>(service)
        .method::<PrintKvPairs, _>(service)
        .method::<AddServer, _>(service)
        .method::<AdoptServer, _>(service)
        .method::<ListServer, _>(service)
        .method::<ShutdownServer, _>(service)
        .method::<ClusterStatus, _>(service)
        .method::<ScrubNow, _>(service)
}

/// Ready once recovered (the frontend listens only then) and with at least
/// one active server: before that every write would be refused.
impl Readiness for Frontend {
    async fn ready(&self) -> Result<(), String> {
        if self.log.is_superseded() {
            return Err("superseded by a newer frontend".to_owned());
        }
        let [active, joining, lost] = self.log.status_ids();
        if active.is_empty() {
            return Err(format!(
                "no active server ({} joining, {} lost)",
                joining.len(),
                lost.len()
            ));
        }
        Ok(())
    }
}

impl Handle<Put> for Frontend {
    async fn handle(&self, call: Put) -> Result<String, Fault> {
        self.log.put(call.key, call.value).await?;
        Ok(reply::SUCCESS.to_owned())
    }
}

impl Handle<Get> for Frontend {
    async fn handle(&self, call: Get) -> Result<String, Fault> {
        self.log.read_barrier().await?;
        match self.committed.get(call.key) {
            Some(value) => Ok(reply::pair(call.key, value)),
            None => Err(Fault::new(fault::KEY_NOT_FOUND, format!("key {} not found", call.key))),
        }
    }
}

impl Handle<PrintKvPairs> for Frontend {
    async fn handle(&self, call: PrintKvPairs) -> Result<String, Fault> {
        let client = self.member(call.server_id)?;
        client
            .print_kv_pairs()
            .await
            .map_err(|e| server_fault(call.server_id, &e))
    }
}

impl Handle<AddServer> for Frontend {
    async fn handle(&self, call: AddServer) -> Result<String, Fault> {
        self.admit(call.server_id, false).await
    }
}

impl Handle<AdoptServer> for Frontend {
    async fn handle(&self, call: AdoptServer) -> Result<String, Fault> {
        self.admit(call.server_id, true).await
    }
}

impl Frontend {
    /// `addServer` (and, with `force`, `adoptServer`): waits for the server
    /// to answer, then catches it up.
    async fn admit(&self, id: ServerId, force: bool) -> Result<String, Fault> {
        if id < 0 {
            return Err(Fault::new(
                fault::INVALID_REQUEST,
                format!("server id {id} is negative"),
            ));
        }
        let client = self
            .connector
            .connect(id, self.log.fence())
            .map_err(|e| Fault::new(fault::INVALID_REQUEST, e.to_string()))?;
        self.catch_up
            .wait_until_answering(id, client.as_ref(), self.config.add_server_wait())
            .await?;
        let address = client.address().to_owned();
        self.catch_up.add(id, client, force).await?;
        tracing::info!(server = id, %address, adopted = force, "server added");
        Ok(reply::SUCCESS.to_owned())
    }
}

impl Handle<ScrubNow> for Frontend {
    async fn handle(&self, _call: ScrubNow) -> Result<String, Fault> {
        Ok(self.scrub.pass().await.to_string())
    }
}

impl Handle<ListServer> for Frontend {
    async fn handle(&self, _call: ListServer) -> Result<String, Fault> {
        Ok(reply::member_list(self.log.member_ids()))
    }
}

impl Handle<ClusterStatus> for Frontend {
    async fn handle(&self, _call: ClusterStatus) -> Result<String, Fault> {
        let [active, joining, lost] = self.log.status_ids();
        Ok(reply::cluster_status(&active, &joining, &lost))
    }
}

impl Handle<ShutdownServer> for Frontend {
    async fn handle(&self, call: ShutdownServer) -> Result<String, Fault> {
        let client = self
            .log
            .remove(call.server_id)
            .ok_or_else(|| unknown_server(call.server_id))?;
        client.shutdown().await.map_err(|e| server_fault(call.server_id, &e))
    }
}

fn unknown_server(id: ServerId) -> Fault {
    Fault::new(
        fault::UNKNOWN_SERVER,
        format!("server {id} is not a member of the cluster"),
    )
}

fn server_fault(id: ServerId, error: &RpcError) -> Fault {
    match error.fault() {
        Some(fault) => fault.clone(),
        None => Fault::new(fault::SERVER_UNREACHABLE, format!("server {id}: {error}")),
    }
}

impl From<WriteError> for Fault {
    fn from(error: WriteError) -> Self {
        match &error {
            WriteError::NoActiveServer => Fault::new(fault::NO_ACTIVE_SERVER, error.to_string()),
            WriteError::Superseded => Fault::new(fault::SUPERSEDED, error.to_string()),
            WriteError::Unrecorded(_) => Fault::new(fault::NOT_RECORDED, error.to_string()),
        }
    }
}

impl From<ReadError> for Fault {
    fn from(error: ReadError) -> Self {
        let code = match error {
            ReadError::Superseded => fault::SUPERSEDED,
            ReadError::NoLease(_) => fault::SERVER_UNREACHABLE,
            ReadError::NoActiveServer => fault::NO_ACTIVE_SERVER,
        };
        Fault::new(code, error.to_string())
    }
}

impl From<CatchUpError> for Fault {
    fn from(error: CatchUpError) -> Self {
        // The server's own refusal (fenced, unauthorised) is passed on as is.
        let passed_on = error.fault_code().filter(|code| {
            [
                fault::SUPERSEDED,
                fault::OTHER_CLUSTER,
                fault::LEASE_HELD,
                fault::UNAUTHORIZED,
            ]
            .contains(code)
        });
        let code = passed_on.unwrap_or(match &error {
            CatchUpError::Join(JoinError::AlreadyMember(_)) => fault::ALREADY_MEMBER,
            CatchUpError::Unreachable { .. } | CatchUpError::Transfer { .. } | CatchUpError::Dropped(_) => {
                fault::SERVER_UNREACHABLE
            }
            CatchUpError::Unrecorded(_) | CatchUpError::RevivalUnrecorded(_) => fault::NOT_RECORDED,
        });
        Fault::new(code, error.to_string())
    }
}
