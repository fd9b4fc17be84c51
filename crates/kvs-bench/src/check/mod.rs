//! `kvs-bench check`: run clients against a cluster (local processes or
//! containers) while injecting faults, record every operation, and check
//! the history.
//!
//! N clients, each with its own connection, pick a key from a small key
//! space (so keys collide) and put a value never used before or get, back to
//! back, recording invocation and completion times. A put that fails or times
//! out is recorded as possibly applied; a get that fails is not recorded. A
//! [`FaultInjector`] seeded from `seed` meanwhile applies faults at random
//! intervals. The history is then checked per key for linearizability
//! ([`crate::check::checker`]).

pub mod checker;
pub mod containers;
pub mod faults;
pub mod history;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kvs_proto::{FrontendClient, Key, RpcError, fault as fault_code, reply};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use thiserror::Error;

use crate::check::containers::ContainerCluster;
use crate::check::faults::{Fault, FaultInjector, FaultKind, FaultTarget};
use crate::check::history::{Call, History, HistoryRecorder, Operation, Outcome};
use kvs_cluster::local::{Binaries, ClusterError, LocalCluster};

/// What to run.
#[derive(Debug, Clone)]
pub struct CheckSpec {
    pub duration: Duration,
    pub clients: usize,
    pub keys: Key,
    pub servers: usize,
    pub kinds: Vec<FaultKind>,
    pub seed: u64,
    /// Mean pause between faults.
    pub fault_interval: Duration,
    /// Per-call timeout of the clients.
    pub timeout: Duration,
    /// Servers keep their pairs in data folders (local backend).
    pub durable: bool,
}

/// What a run produced.
pub struct CheckRun {
    pub history: History,
    pub faults: Vec<(Duration, Fault)>,
}

/// Why a run could not be carried out (not a verdict on kvs).
#[derive(Debug, Error)]
pub enum CheckRunError {
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error(transparent)]
    Rpc(#[from] RpcError),
    #[error("cannot create the frontend's data folder: {0}")]
    DataDir(std::io::Error),
    #[error("a client task still holds the history recorder")]
    RecorderShared,
}

/// Live counters for a progress display.
#[derive(Debug, Default)]
pub struct CheckCounters {
    pub operations: AtomicU64,
    pub faults: AtomicU64,
}

/// Where the cluster of a run lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// Local processes on a loopback address of their own.
    Local,
    /// Docker containers on a network of their own (images of `docker/build.sh`).
    Docker,
}

/// Runs `spec` on a fresh cluster of `backend`.
pub async fn run(
    backend: Backend,
    bins: Binaries,
    spec: &CheckSpec,
    progress: Arc<CheckCounters>,
) -> Result<CheckRun, CheckRunError> {
    match backend {
        Backend::Local => {
            let data_dir = scratch_dir(spec.seed)?;
            let data_arg = data_dir.to_string_lossy().into_owned();
            let mut cluster = LocalCluster::new(bins).with_frontend_args(&["--data-dir", &data_arg]);
            if spec.durable {
                cluster = cluster.with_server_data(data_dir.join("servers"));
            }
            let run = run_on(cluster, spec, progress).await;
            let _ = std::fs::remove_dir_all(&data_dir);
            run
        }
        Backend::Docker => run_on(ContainerCluster::create().await?, spec, progress).await,
    }
}

/// Runs `spec` on `cluster` (nothing started yet), which is dropped (and so
/// cleaned up) before the history is returned.
pub async fn run_on(
    mut cluster: impl FaultTarget,
    spec: &CheckSpec,
    progress: Arc<CheckCounters>,
) -> Result<CheckRun, CheckRunError> {
    cluster.start_frontend().await?;
    for _ in 0..spec.servers.max(1) {
        cluster.add_server().await?;
    }

    let fleet = ClientFleet::start(&[cluster.frontend_url()], spec, Arc::clone(&progress))?;
    let faults = inject_until(&mut cluster, spec, &progress).await;
    let history = fleet.finish().await;
    drop(cluster);
    Ok(CheckRun {
        history: history?,
        faults: faults?,
    })
}

/// `spec.clients` clients putting and getting (see the module doc) until
/// [`ClientFleet::finish`], each recording into one shared history.
pub struct ClientFleet {
    recorder: Arc<HistoryRecorder>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl ClientFleet {
    /// Starts the clients; client `i` talks to `frontends[i % len]` (tests
    /// aim clients at two frontends at once).
    pub fn start(frontends: &[String], spec: &CheckSpec, progress: Arc<CheckCounters>) -> Result<Self, CheckRunError> {
        let recorder = Arc::new(HistoryRecorder::new());
        let stop = Arc::new(AtomicBool::new(false));
        let next_value = Arc::new(AtomicI32::new(1));
        let mut tasks = Vec::new();
        for (client, url) in (0..spec.clients.max(1)).zip(frontends.iter().cycle()) {
            let worker = ClientWorker {
                client,
                frontend: FrontendClient::new(url, Some(spec.timeout))?,
                keys: spec.keys.max(1),
                rng: StdRng::seed_from_u64(spec.seed.wrapping_add(client as u64 + 1)),
                recorder: Arc::clone(&recorder),
                stop: Arc::clone(&stop),
                next_value: Arc::clone(&next_value),
                progress: Arc::clone(&progress),
            };
            tasks.push(tokio::spawn(worker.run()));
        }
        Ok(ClientFleet { recorder, stop, tasks })
    }

    /// Stops the clients and returns what they recorded.
    pub async fn finish(self) -> Result<History, CheckRunError> {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            let _ = task.await;
        }
        Ok(Arc::try_unwrap(self.recorder)
            .map_err(|_| CheckRunError::RecorderShared)?
            .into_history())
    }
}

/// Injects faults until the run's duration is over.
async fn inject_until(
    cluster: &mut impl FaultTarget,
    spec: &CheckSpec,
    progress: &CheckCounters,
) -> Result<Vec<(Duration, Fault)>, CheckRunError> {
    let started = Instant::now();
    let deadline = started + spec.duration;
    let mut injector = FaultInjector::new(spec.seed, &spec.kinds, spec.servers);
    let mut faults = Vec::new();
    loop {
        let pause = injector.next_pause(spec.fault_interval);
        if Instant::now() + pause >= deadline || spec.kinds.is_empty() {
            tokio::time::sleep(deadline.saturating_duration_since(Instant::now())).await;
            return Ok(faults);
        }
        tokio::time::sleep(pause).await;
        if let Some(fault) = injector.inject(cluster).await? {
            tracing::info!(%fault, "fault injected");
            faults.push((started.elapsed(), fault));
            progress.faults.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn scratch_dir(seed: u64) -> Result<PathBuf, CheckRunError> {
    let dir = std::env::temp_dir().join(format!("kvs-check-{}-{seed}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(CheckRunError::DataDir)?;
    Ok(dir)
}

/// One client: puts and gets until told to stop.
struct ClientWorker {
    client: usize,
    frontend: FrontendClient,
    keys: Key,
    rng: StdRng,
    recorder: Arc<HistoryRecorder>,
    stop: Arc<AtomicBool>,
    next_value: Arc<AtomicI32>,
    progress: Arc<CheckCounters>,
}

impl ClientWorker {
    async fn run(mut self) {
        let frontend = &self.frontend;
        while !self.stop.load(Ordering::Relaxed) {
            let key = self.rng.random_range(0..self.keys);
            let is_put = self.rng.random_bool(0.5);
            let invoked_ns = self.recorder.now_ns();
            let (call, outcome) = if is_put {
                let value = self.next_value.fetch_add(1, Ordering::Relaxed);
                (Call::Put(value), put_outcome(frontend.put(key, value).await))
            } else {
                match get_outcome(key, frontend.get(key).await) {
                    Some(outcome) => (Call::Get, outcome),
                    None => {
                        // No answer: nothing learned. Back off while the cluster recovers.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                }
            };
            let completed_ns = (outcome != Outcome::Unknown).then(|| self.recorder.now_ns());
            self.recorder.record(Operation {
                client: self.client,
                key,
                call,
                outcome,
                invoked_ns,
                completed_ns,
            });
            self.progress.operations.fetch_add(1, Ordering::Relaxed);
            if outcome == Outcome::Unknown {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

fn put_outcome(result: Result<String, RpcError>) -> Outcome {
    match result {
        Ok(_) => Outcome::Written,
        // Refused or lost on the way: it may still have been applied.
        Err(_) => Outcome::Unknown,
    }
}

/// A get's outcome, or `None` if it taught nothing (no answer).
fn get_outcome(key: Key, result: Result<String, RpcError>) -> Option<Outcome> {
    match result {
        Ok(text) => match reply::parse_pair(&text) {
            Some((k, value)) if k == key => Some(Outcome::Read(Some(value))),
            // A malformed or mismatched reply: record an impossible read so the checker flags it.
            _ => Some(Outcome::Read(Some(i32::MIN))),
        },
        Err(RpcError::Fault(fault)) if fault.code() == fault_code::KEY_NOT_FOUND => Some(Outcome::Read(None)),
        Err(_) => None,
    }
}
