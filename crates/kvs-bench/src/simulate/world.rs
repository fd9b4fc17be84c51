//! One simulated cluster: the real frontend code (`kvs_frontend::Frontend`)
//! on a [`MemoryDisk`], the real replica code behind a simulated
//! [`Network`], clients that put and get, and a nemesis that crashes,
//! pauses, partitions, removes and adds servers, fails the disk and
//! crashes the frontend — all on one thread, in tokio's simulated time,
//! every choice drawn from one seeded generator.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use kvs_frontend::config::Config;
use kvs_frontend::durable::{ClusterRecord, RecordStore};
use kvs_frontend::recovery::RecoveryWait;
use kvs_frontend::service::Frontend;
use kvs_frontend::signal::Signal;
use kvs_frontend::transport::Connector;
use kvs_proto::api::frontend::{AddServer, ClusterStatus, Get, Put, ShutdownServer};
use kvs_proto::serve::Handle;
use kvs_proto::{ServerId, fault, reply};
use parking_lot::Mutex;
use rand::Rng;
use rand::rngs::StdRng;
use tokio::time::Instant;

use super::disk::MemoryDisk;
use super::network::{Network, SimConnector, Status};
use super::{FaultKind, SimSpec};
use crate::check::history::{Call, Operation, Outcome};

/// How long a client waits for a reply before it gives up.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between a failed frontend recovery and the next try.
const RECOVERY_RETRY: Duration = Duration::from_millis(500);
/// How long a frontend keeps trying to recover before the schedule is
/// given up as unrecoverable (every server that held the acknowledged
/// writes lost them: the frontend rightly refuses to start).
const RECOVERY_LIMIT: Duration = Duration::from_secs(30);

/// The frontend now running, and the switch its crash flips.
#[derive(Clone)]
struct Running {
    frontend: Arc<Frontend>,
    /// Raised to 1 when it crashes.
    crashed: Arc<Signal>,
}

/// Everything one schedule runs on.
pub struct World {
    spec: SimSpec,
    config: Config,
    rng: Arc<Mutex<StdRng>>,
    network: Arc<Network>,
    connector: Arc<dyn Connector>,
    disk: Arc<MemoryDisk>,
    running: Mutex<Option<Running>>,
    started: Instant,
    /// Faults injected, by kind.
    pub faults: Mutex<Vec<FaultKind>>,
    /// Raised to 1 if the frontend could not recover within [`RECOVERY_LIMIT`].
    pub unrecoverable: Signal,
}

impl World {
    pub fn new(spec: SimSpec, config: Config, rng: Arc<Mutex<StdRng>>) -> Arc<Self> {
        let ids = 0..ServerId::try_from(spec.servers + spec.spare_servers).unwrap_or(ServerId::MAX);
        let network = Network::new(ids, Arc::clone(&rng), spec.weather, config.rpc_timeout());
        let disk = Arc::new(MemoryDisk::default());
        // A fixed cluster id, so nothing is drawn outside the seed.
        let _ = disk.store(&ClusterRecord {
            cluster: 0x5eed,
            ..ClusterRecord::default()
        });
        Arc::new(World {
            spec,
            config,
            rng,
            connector: Arc::new(SimConnector(Arc::clone(&network))),
            network,
            disk,
            running: Mutex::new(None),
            started: Instant::now(),
            faults: Mutex::new(Vec::new()),
            unrecoverable: Signal::new(0),
        })
    }

    fn now_ns(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn random_range(&self, range: std::ops::Range<u64>) -> u64 {
        self.rng.lock().random_range(range)
    }

    fn millis(&self, range: std::ops::Range<u64>) -> Duration {
        Duration::from_millis(self.random_range(range))
    }

    /// The frontend now running, if one is.
    pub fn frontend(&self) -> Option<Arc<Frontend>> {
        self.current().map(|running| running.frontend)
    }

    /// The servers and the network to them.
    pub fn network(&self) -> &Arc<Network> {
        &self.network
    }

    /// The frontend's disk.
    pub fn disk(&self) -> &MemoryDisk {
        &self.disk
    }

    fn current(&self) -> Option<Running> {
        self.running.lock().clone()
    }

    /// Starts (or restarts) the frontend from the disk, retrying until it
    /// recovers or [`RECOVERY_LIMIT`] passes.
    pub async fn start_frontend(&self) {
        let give_up = Instant::now() + RECOVERY_LIMIT;
        loop {
            if Instant::now() >= give_up || self.unrecoverable.get() > 0 {
                self.unrecoverable.raise(1);
                return;
            }
            // A frontend waits for the acknowledged writes as long as it
            // takes; a schedule gives it until `give_up`.
            let wait = RecoveryWait::default();
            let recovered = tokio::time::timeout(
                give_up.saturating_duration_since(Instant::now()),
                Frontend::recover(
                    self.config.clone(),
                    Arc::clone(&self.connector),
                    Arc::clone(&self.disk) as Arc<dyn RecordStore>,
                    &wait,
                ),
            )
            .await;
            match recovered {
                Err(_elapsed) => {
                    self.unrecoverable.raise(1);
                    return;
                }
                Ok(Ok(frontend)) => {
                    let frontend = Arc::new(frontend);
                    frontend.start();
                    let crashed = Arc::new(Signal::new(0));
                    *self.running.lock() = Some(Running { frontend, crashed });
                    return;
                }
                Ok(Err(_)) => tokio::time::sleep(RECOVERY_RETRY).await,
            }
        }
    }

    /// Kills the frontend: its tasks stop, calls in flight to it get no
    /// answer, and only the disk and the servers remain.
    pub async fn crash_frontend(&self) {
        let Some(running) = self.running.lock().take() else {
            return;
        };
        running.crashed.raise(1);
        tracing::info!(target: "kvs_bench::simulate", at_ms = self.now_ns() / 1_000_000, "frontend crashed");
        running.frontend.shutdown().await;
    }

    /// Adds the first `spec.servers` servers, as `run_cluster.py` does.
    pub async fn add_initial_servers(&self) {
        let Some(running) = self.current() else { return };
        for id in 0..self.spec.servers {
            let server_id = ServerId::try_from(id).unwrap_or(0);
            let _ = running.frontend.handle(AddServer { server_id }).await;
        }
    }

    /// One client's loop until `until`: random puts (of values no one else
    /// writes) and gets on a few keys.
    pub async fn client(self: Arc<Self>, client: usize, until: Instant) -> Vec<Operation> {
        let mut operations = Vec::new();
        let mut written = 0;
        while Instant::now() < until && self.unrecoverable.get() == 0 {
            tokio::time::sleep(self.millis(0..self.spec.think_ms + 1)).await;
            let Some(running) = self.current() else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let key = i32::try_from(self.random_range(0..self.spec.keys)).unwrap_or(0);
            let call = if self.random_range(0..2) == 0 {
                written += 1;
                let value = i32::try_from(client * 1_000_000 + written).unwrap_or(i32::MAX);
                Call::Put(value)
            } else {
                Call::Get
            };
            if let Some(operation) = self.invoke(&running, client, key, call).await {
                operations.push(operation);
            }
        }
        operations
    }

    /// One call through the frontend's own handlers; `None` for a get that
    /// got no answer (it had no effect).
    async fn invoke(&self, running: &Running, client: usize, key: i32, call: Call) -> Option<Operation> {
        let invoked_ns = self.now_ns();
        let crashed = Arc::clone(&running.crashed);
        let mut crash = crashed.watch();
        let frontend = Arc::clone(&running.frontend);
        let answer = async move {
            match call {
                Call::Put(value) => frontend.handle(Put { key, value }).await.map(|_| None),
                Call::Get => frontend
                    .handle(Get { key })
                    .await
                    .map(|text| reply::parse_pair(&text).map(|(_, value)| value)),
            }
        };
        let answer = tokio::select! {
            biased;
            () = crash.changed() => None,
            answer = tokio::time::timeout(CLIENT_TIMEOUT, answer) => answer.ok(),
        };
        let completed_ns = Some(self.now_ns());
        let outcome = match (call, answer) {
            (Call::Put(_), Some(Ok(_))) => Outcome::Written,
            (Call::Put(_), _) => Outcome::Unknown,
            (Call::Get, Some(Ok(value))) => Outcome::Read(value),
            (Call::Get, Some(Err(refusal))) if refusal.code() == fault::KEY_NOT_FOUND => Outcome::Read(None),
            (Call::Get, _) => return None,
        };
        Some(Operation {
            client,
            key,
            call,
            completed_ns: if outcome == Outcome::Unknown {
                None
            } else {
                completed_ns
            },
            outcome,
            invoked_ns,
        })
    }

    /// Injects faults until `until`, then heals everything.
    pub async fn nemesis(self: Arc<Self>, until: Instant) {
        let mut healing = tokio::task::JoinSet::new();
        while Instant::now() < until && self.unrecoverable.get() == 0 {
            tokio::time::sleep(self.millis(self.spec.fault_gap_ms.clone())).await;
            if self.spec.faults.is_empty() || Instant::now() >= until {
                break;
            }
            let pick = usize::try_from(self.random_range(0..self.spec.faults.len() as u64)).unwrap_or(0);
            let kind = self.spec.faults[pick];
            if let Some(heal) = self.inject(kind).await {
                tracing::info!(target: "kvs_bench::simulate", at_ms = self.now_ns() / 1_000_000, fault = ?kind, "fault injected");
                self.faults.lock().push(kind);
                healing.spawn(heal);
            }
        }
        while healing.join_next().await.is_some() {}
        for id in self.network.ids() {
            if self.network.status(id) != Some(Status::Up) {
                self.network.set_status(id, Status::Up);
            }
        }
        self.disk.set_failing(false);
        if self.current().is_none() {
            self.start_frontend().await;
        }
    }

    /// Servers whose process is up and reachable.
    fn healthy(&self) -> Vec<ServerId> {
        self.network
            .ids()
            .into_iter()
            .filter(|id| self.network.status(*id) == Some(Status::Up))
            .collect()
    }

    /// The frontend's members (active and joining), if one runs.
    async fn members(&self) -> Option<(Arc<Frontend>, Vec<ServerId>)> {
        let running = self.current()?;
        let status = running.frontend.handle(ClusterStatus {}).await.ok()?;
        let [active, joining, _lost] = reply::parse_cluster_status(&status)?;
        Some((running.frontend, active.into_iter().chain(joining).collect()))
    }

    fn pick<T: Copy>(&self, among: &[T]) -> Option<T> {
        if among.is_empty() {
            return None;
        }
        let index = usize::try_from(self.random_range(0..among.len() as u64)).unwrap_or(0);
        among.get(index).copied()
    }

    /// Starts fault `kind` now; returns what heals it, or `None` if it
    /// could not be injected now.
    async fn inject(self: &Arc<Self>, kind: FaultKind) -> Option<Pin<Box<dyn Future<Output = ()> + Send>>> {
        let lasting = self.millis(self.spec.fault_length_ms.clone());
        let world = Arc::clone(self);
        // Never more than all but one server out at once.
        let healthy = self.healthy();
        let server_fault = |status: Status| -> Option<Pin<Box<dyn Future<Output = ()> + Send>>> {
            if healthy.len() <= 1 {
                return None;
            }
            let id = self.pick(&healthy)?;
            self.network.set_status(id, status);
            let world = Arc::clone(self);
            Some(Box::pin(async move {
                tokio::time::sleep(lasting).await;
                world.network.set_status(id, Status::Up);
            }))
        };
        match kind {
            FaultKind::CrashServer => server_fault(Status::Down),
            FaultKind::PauseServer => server_fault(Status::Paused),
            FaultKind::PartitionServer => server_fault(Status::Partitioned),
            FaultKind::CrashFrontend => {
                self.current()?;
                self.crash_frontend().await;
                Some(Box::pin(async move {
                    tokio::time::sleep(lasting / 4).await;
                    world.start_frontend().await;
                }))
            }
            FaultKind::FailDisk => {
                self.disk.set_failing(true);
                Some(Box::pin(async move {
                    tokio::time::sleep(lasting).await;
                    world.disk.set_failing(false);
                }))
            }
            FaultKind::RemoveServer => {
                let (frontend, members) = self.members().await?;
                if members.len() <= 1 {
                    return None;
                }
                let id = self.pick(&members)?;
                Some(Box::pin(async move {
                    let _ = frontend.handle(ShutdownServer { server_id: id }).await;
                }))
            }
            FaultKind::AddServer => {
                let (frontend, members) = self.members().await?;
                // Now and then an operator re-adds a member by mistake: it
                // must be refused without anything sent to the server.
                let everyone = self.network.ids();
                let outside: Vec<ServerId> = everyone.iter().copied().filter(|id| !members.contains(id)).collect();
                let id = if self.random_range(0..4) == 0 {
                    self.pick(&everyone)?
                } else {
                    self.pick(&outside)?
                };
                if self.network.status(id) == Some(Status::Down) {
                    self.network.set_status(id, Status::Up);
                }
                Some(Box::pin(async move {
                    let _ = frontend.handle(AddServer { server_id: id }).await;
                }))
            }
        }
    }

    /// Stops everything left running.
    pub async fn stop(&self) {
        self.crash_frontend().await;
    }
}
