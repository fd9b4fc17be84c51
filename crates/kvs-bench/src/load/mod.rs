//! The load generator: a load phase that writes every key, then a run phase
//! of a [`Workload`] over N connections (each its own client, so its own
//! keep-alive connection), bounded in time and optionally in count.
//!
//! - **Closed loop** (the default): every connection issues its next
//!   operation as soon as the previous one returns; latency is measured from
//!   the moment the operation is sent.
//! - **Open loop** (`rate`): a pacing thread ([`crate::load::pacer`]) releases
//!   intended start times at a fixed rate and the connections take them in
//!   order; latency is
//!   measured from the *intended* start, so a server that falls behind is
//!   charged for the queueing it causes (no coordinated omission).
//!
//! Each connection talks through kvs-proto's [`FrontendClient`] (the
//! default) or the leaner [`RawClient`] ([`ClientKind`]).
//!
//! Latencies go into HdrHistograms (µs, 3 significant digits), per operation
//! type and overall. A `get` of a key that is not there (fault 1) counts as a
//! served operation and is reported as `not_found`; any other failure is an
//! error and is not timed. Works against any frontend URL speaking the
//! course's wire (kvs, the Python seed design, the floor responder).

pub mod cpu;
pub mod pacer;
pub mod raw_client;
pub mod workload;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use kvs_proto::fault::KEY_NOT_FOUND;
use kvs_proto::{FrontendClient, Key, RpcError, Value};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::load::cpu::CpuUse;
use crate::load::raw_client::{RawClient, RawError};
use crate::load::workload::{Distribution, InsertSequence, KeyChooser, Mix, OpKind, Workload};

/// A failed connection pauses this long before its next operation, so a dead
/// target does not turn the generator into a busy loop.
const ERROR_PAUSE: Duration = Duration::from_millis(10);

/// Keys are XML-RPC `int`s: every generated key is folded into `0..2³¹`.
const KEY_SPACE: u64 = 1 << 31;

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Concurrent connections, each with its own client.
    pub connections: usize,
    pub workload: Workload,
    /// Key distribution; `None` takes the workload's own.
    pub distribution: Option<Distribution>,
    /// Keys `0..record_count` are written by the load phase.
    pub record_count: u64,
    /// Whether [`run`] writes every key first.
    pub load_phase: bool,
    /// How long the run phase issues operations (after the warm-up).
    pub duration: Duration,
    /// At most this many measured operations, if set.
    pub operations: Option<u64>,
    /// Operations issued during this first stretch are not measured.
    pub warmup: Duration,
    /// Open loop at this many operations per second; `None` is closed loop.
    pub rate: Option<f64>,
    /// Per-call timeout.
    pub timeout: Duration,
    /// The load phase fails if it takes longer than this.
    pub load_limit: Duration,
    /// Seeds every connection's choices.
    pub seed: u64,
    /// Which client each connection uses.
    pub client: ClientKind,
}

impl Default for LoadSpec {
    fn default() -> Self {
        LoadSpec {
            connections: 32,
            workload: Workload::Harness { put_percent: 50 },
            distribution: None,
            record_count: 1000,
            load_phase: true,
            duration: Duration::from_secs(10),
            operations: None,
            warmup: Duration::ZERO,
            rate: None,
            timeout: Duration::from_secs(10),
            load_limit: Duration::from_secs(120),
            seed: 0,
            client: ClientKind::Dxr,
        }
    }
}

impl LoadSpec {
    /// The key distribution in force.
    pub fn distribution(&self) -> Distribution {
        self.distribution
            .unwrap_or_else(|| self.workload.default_distribution())
    }

    fn validate(&self) -> Result<(), LoadError> {
        if self.record_count == 0 || self.record_count > i32::MAX as u64 {
            return Err(LoadError::Invalid(format!(
                "record count {} is not in 1..=2147483647",
                self.record_count
            )));
        }
        if let Some(rate) = self.rate
            && !(rate.is_finite() && rate > 0.0)
        {
            return Err(LoadError::Invalid(format!("rate {rate} is not a positive number")));
        }
        Ok(())
    }
}

/// The client every connection uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientKind {
    /// kvs-proto's [`FrontendClient`]: dxr over reqwest, as kvs's processes talk.
    Dxr,
    /// [`RawClient`]: hand-written requests, replies checked only for faults.
    Raw,
}

impl fmt::Display for ClientKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ClientKind::Dxr => "dxr",
            ClientKind::Raw => "raw",
        })
    }
}

impl FromStr for ClientKind {
    type Err = LoadError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "dxr" => Ok(ClientKind::Dxr),
            "raw" => Ok(ClientKind::Raw),
            _ => Err(LoadError::Invalid(format!(
                "unknown client {s:?} (expected dxr or raw)"
            ))),
        }
    }
}

/// Why one call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum CallFailure {
    /// Fault 1: the key is not there.
    NotFound,
    Other(String),
}

/// One connection's client.
enum Client {
    Dxr(FrontendClient),
    Raw(RawClient),
}

impl Client {
    fn new(kind: ClientKind, url: &str, timeout: Duration) -> Result<Client, LoadError> {
        Ok(match kind {
            ClientKind::Dxr => Client::Dxr(FrontendClient::new(url, Some(timeout))?),
            ClientKind::Raw => {
                Client::Raw(RawClient::new(url, timeout).map_err(|e| LoadError::Invalid(e.to_string()))?)
            }
        })
    }

    async fn get(&mut self, key: Key) -> Result<(), CallFailure> {
        match self {
            Client::Dxr(client) => client.get(key).await.map(drop).map_err(dxr_failure),
            Client::Raw(client) => client.get(key).await.map_err(raw_failure),
        }
    }

    async fn put(&mut self, key: Key, value: Value) -> Result<(), CallFailure> {
        match self {
            Client::Dxr(client) => client.put(key, value).await.map(drop).map_err(dxr_failure),
            Client::Raw(client) => client.put(key, value).await.map_err(raw_failure),
        }
    }
}

fn dxr_failure(error: RpcError) -> CallFailure {
    match error {
        RpcError::Fault(fault) if fault.code() == KEY_NOT_FOUND => CallFailure::NotFound,
        other => CallFailure::Other(other.to_string()),
    }
}

fn raw_failure(error: RawError) -> CallFailure {
    match error {
        RawError::Fault(KEY_NOT_FOUND) => CallFailure::NotFound,
        other => CallFailure::Other(other.to_string()),
    }
}

/// Counters a progress display may read while a run goes on.
#[derive(Debug, Default)]
pub struct LoadCounters {
    /// Operations completed so far (load and run phases, measured or not).
    pub operations: AtomicU64,
    /// Operations that failed so far.
    pub errors: AtomicU64,
}

/// Latency percentiles of one operation type (or all), in microseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub count: u64,
    pub mean_us: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

impl LatencySummary {
    fn of(hist: &Histogram<u64>) -> Self {
        if hist.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: hist.len(),
            mean_us: hist.mean(),
            p50_us: hist.value_at_quantile(0.5),
            p99_us: hist.value_at_quantile(0.99),
            p999_us: hist.value_at_quantile(0.999),
            max_us: hist.max(),
        }
    }
}

/// What one phase measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PhaseReport {
    /// Measured operations that were served (`not_found` included).
    pub operations: u64,
    /// Measured operations that failed (not timed).
    pub errors: u64,
    /// Reads that found no value (fault 1).
    pub not_found: u64,
    /// From the start of measurement to the last measured completion.
    pub elapsed_secs: f64,
    /// `operations / elapsed_secs`.
    pub throughput: f64,
    pub latency: LatencySummary,
    pub per_op: BTreeMap<OpKind, LatencySummary>,
    /// The first failure, for the report.
    pub first_error: Option<String>,
    /// Where the CPU went, when the caller measured it ([`crate::compare`] does).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuUse>,
}

/// What a run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadReport {
    pub frontend: String,
    pub workload: String,
    pub distribution: Distribution,
    pub connections: usize,
    pub record_count: u64,
    /// Open-loop rate, if any.
    pub rate: Option<f64>,
    /// The load phase, if it ran.
    pub load: Option<PhaseReport>,
    pub run: PhaseReport,
}

/// Why a run could not be carried out.
#[derive(Debug, Error)]
pub enum LoadError {
    #[error(transparent)]
    Rpc(#[from] RpcError),
    #[error("histogram: {0}")]
    Histogram(String),
    #[error("a load task panicked: {0}")]
    Task(String),
    #[error("invalid load: {0}")]
    Invalid(String),
    #[error("the load phase wrote only {written} of {total} keys within {limit:?}")]
    LoadTooSlow { written: u64, total: u64, limit: Duration },
}

/// Runs `spec` against the frontend at `url`: the load phase (if asked),
/// then the run phase.
pub async fn run(url: &str, spec: &LoadSpec) -> Result<LoadReport, LoadError> {
    run_with_progress(url, spec, Arc::new(LoadCounters::default())).await
}

/// [`run`], counting completed operations into `progress` as it goes.
pub async fn run_with_progress(
    url: &str,
    spec: &LoadSpec,
    progress: Arc<LoadCounters>,
) -> Result<LoadReport, LoadError> {
    spec.validate()?;
    let load = if spec.load_phase {
        Some(write_all_keys(connect(url, spec)?, spec, &progress).await?)
    } else {
        None
    };
    let run = measure(connect(url, spec)?, spec, &progress).await?;
    Ok(LoadReport {
        frontend: url.to_owned(),
        workload: spec.workload.to_string(),
        distribution: spec.distribution(),
        connections: spec.connections.max(1),
        record_count: spec.record_count,
        rate: spec.rate,
        load,
        run,
    })
}

/// The load phase alone: writes keys `0..record_count` over the spec's connections.
pub async fn load_phase(url: &str, spec: &LoadSpec, progress: Arc<LoadCounters>) -> Result<PhaseReport, LoadError> {
    spec.validate()?;
    write_all_keys(connect(url, spec)?, spec, &progress).await
}

/// The run phase alone (the keys are assumed loaded).
pub async fn run_phase(url: &str, spec: &LoadSpec, progress: Arc<LoadCounters>) -> Result<PhaseReport, LoadError> {
    spec.validate()?;
    measure(connect(url, spec)?, spec, &progress).await
}

fn connect(url: &str, spec: &LoadSpec) -> Result<Vec<Client>, LoadError> {
    (0..spec.connections.max(1))
        .map(|_| Client::new(spec.client, url, spec.timeout))
        .collect()
}

fn new_histogram() -> Result<Histogram<u64>, LoadError> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).map_err(|e| LoadError::Histogram(e.to_string()))
}

/// Folds a generated key into the XML-RPC int range.
fn to_key(key: u64) -> Key {
    (key % KEY_SPACE) as Key
}

/// A non-negative random value.
fn random_value(rng: &mut SmallRng) -> Value {
    rng.random_range(0..=Value::MAX)
}

fn elapsed_us(from: Instant, to: Instant) -> u64 {
    u64::try_from(to.saturating_duration_since(from).as_micros()).unwrap_or(u64::MAX)
}

/// How one operation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Completion {
    Served,
    NotFound,
    Failed(String),
}

impl Completion {
    fn of_read(result: Result<(), CallFailure>) -> Completion {
        match result {
            Ok(()) => Completion::Served,
            Err(CallFailure::NotFound) => Completion::NotFound,
            Err(CallFailure::Other(error)) => Completion::Failed(error),
        }
    }

    fn of_write(result: Result<(), CallFailure>) -> Completion {
        match result {
            Ok(()) => Completion::Served,
            Err(CallFailure::NotFound) => Completion::Failed(format!("fault {KEY_NOT_FOUND} on a put")),
            Err(CallFailure::Other(error)) => Completion::Failed(error),
        }
    }
}

/// One connection's measurements, merged at the end.
struct Measurements {
    overall: Histogram<u64>,
    per_op: BTreeMap<OpKind, Histogram<u64>>,
    served: u64,
    errors: u64,
    not_found: u64,
    last_done: Option<Instant>,
    first_error: Option<String>,
}

impl Measurements {
    fn new() -> Result<Self, LoadError> {
        let mut per_op = BTreeMap::new();
        for kind in OpKind::ALL {
            per_op.insert(kind, new_histogram()?);
        }
        Ok(Measurements {
            overall: new_histogram()?,
            per_op,
            served: 0,
            errors: 0,
            not_found: 0,
            last_done: None,
            first_error: None,
        })
    }

    fn record(&mut self, kind: OpKind, started: Instant, done: Instant, outcome: Completion) {
        self.last_done = self.last_done.max(Some(done));
        match outcome {
            Completion::Failed(error) => {
                self.errors += 1;
                self.first_error.get_or_insert(error);
                return;
            }
            Completion::NotFound => self.not_found += 1,
            Completion::Served => {}
        }
        self.served += 1;
        let micros = elapsed_us(started, done).max(1);
        self.overall.saturating_record(micros);
        if let Some(hist) = self.per_op.get_mut(&kind) {
            hist.saturating_record(micros);
        }
    }

    fn merge(&mut self, other: Measurements) -> Result<(), LoadError> {
        let add = |to: &mut Histogram<u64>, from: &Histogram<u64>| {
            to.add(from).map_err(|e| LoadError::Histogram(e.to_string()))
        };
        add(&mut self.overall, &other.overall)?;
        for (kind, hist) in &other.per_op {
            if let Some(mine) = self.per_op.get_mut(kind) {
                add(mine, hist)?;
            }
        }
        self.served += other.served;
        self.errors += other.errors;
        self.not_found += other.not_found;
        self.last_done = self.last_done.max(other.last_done);
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        Ok(())
    }

    fn report(&self, measure_from: Instant) -> PhaseReport {
        let elapsed_secs = self
            .last_done
            .map_or(0.0, |done| done.saturating_duration_since(measure_from).as_secs_f64());
        let per_op = self
            .per_op
            .iter()
            .filter(|(_, hist)| !hist.is_empty())
            .map(|(kind, hist)| (*kind, LatencySummary::of(hist)))
            .collect();
        PhaseReport {
            operations: self.served,
            errors: self.errors,
            not_found: self.not_found,
            elapsed_secs,
            throughput: throughput(self.served, elapsed_secs),
            latency: LatencySummary::of(&self.overall),
            per_op,
            first_error: self.first_error.clone(),
            cpu: None,
        }
    }
}

/// Operations per second, 0 for an empty window.
pub fn throughput(operations: u64, secs: f64) -> f64 {
    if secs > 0.0 { operations as f64 / secs } else { 0.0 }
}

async fn join_all(
    tasks: Vec<tokio::task::JoinHandle<Result<Measurements, LoadError>>>,
) -> Result<Measurements, LoadError> {
    let mut total = Measurements::new()?;
    for task in tasks {
        total.merge(task.await.map_err(|e| LoadError::Task(e.to_string()))??)?;
    }
    Ok(total)
}

/// The load phase: connections take the next unwritten key until all are written.
async fn write_all_keys(
    clients: Vec<Client>,
    spec: &LoadSpec,
    progress: &Arc<LoadCounters>,
) -> Result<PhaseReport, LoadError> {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + spec.load_limit;
    let mut tasks = Vec::with_capacity(clients.len());
    for (index, mut client) in clients.into_iter().enumerate() {
        let (next, progress) = (Arc::clone(&next), Arc::clone(progress));
        let (total, seed) = (spec.record_count, worker_seed(spec.seed, index));
        tasks.push(tokio::spawn(async move {
            let mut rng = SmallRng::seed_from_u64(seed);
            let mut recorder = Measurements::new()?;
            while Instant::now() < deadline {
                let key = next.fetch_add(1, Ordering::Relaxed);
                if key >= total {
                    break;
                }
                let sent = Instant::now();
                let outcome = Completion::of_write(client.put(to_key(key), random_value(&mut rng)).await);
                count_progress(&progress, &outcome);
                recorder.record(OpKind::Insert, sent, Instant::now(), outcome);
            }
            Ok(recorder)
        }));
    }
    let recorder = join_all(tasks).await?;
    let written = recorder.served + recorder.errors;
    if written < spec.record_count {
        return Err(LoadError::LoadTooSlow {
            written,
            total: spec.record_count,
            limit: spec.load_limit,
        });
    }
    Ok(recorder.report(started))
}

fn worker_seed(seed: u64, worker: usize) -> u64 {
    seed ^ (worker as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

fn count_progress(progress: &LoadCounters, outcome: &Completion) {
    progress.operations.fetch_add(1, Ordering::Relaxed);
    if matches!(outcome, Completion::Failed(_)) {
        progress.errors.fetch_add(1, Ordering::Relaxed);
    }
}

/// What every connection of a run phase shares.
struct Shared {
    mix: Mix,
    keys: KeyChooser,
    record_count: u64,
    inserts: InsertSequence,
    /// Measured operations still allowed (`u64::MAX` without a count bound).
    budget: AtomicU64,
    measure_from: Instant,
    end: Instant,
    /// Open loop: queued operations not started by then are dropped as errors.
    drain_deadline: Instant,
    progress: Arc<LoadCounters>,
}

impl Shared {
    fn new(spec: &LoadSpec, progress: Arc<LoadCounters>) -> Self {
        let start = Instant::now();
        let measure_from = start + spec.warmup;
        let end = measure_from + spec.duration;
        Shared {
            mix: spec.workload.mix(),
            keys: KeyChooser::new(spec.distribution(), spec.record_count),
            record_count: spec.record_count,
            inserts: InsertSequence::default(),
            budget: AtomicU64::new(spec.operations.unwrap_or(u64::MAX)),
            measure_from,
            end,
            drain_deadline: end + spec.timeout,
            progress,
        }
    }

    /// Takes one unit of the count bound; false once it is spent.
    fn take_budget(&self) -> bool {
        self.budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| left.checked_sub(1))
            .is_ok()
    }

    /// Keys that exist: the loaded ones and every insert up to the first one in flight.
    fn existing(&self) -> u64 {
        self.record_count + self.inserts.acknowledged()
    }

    fn choose(&self, rng: &mut SmallRng) -> OpKind {
        self.mix.choose(rng.random_range(0..self.mix.total().max(1)))
    }

    fn pick_key(&self, rng: &mut SmallRng) -> Key {
        to_key(self.keys.pick(rng.random::<f64>(), self.existing()))
    }

    async fn execute(&self, client: &mut Client, kind: OpKind, rng: &mut SmallRng) -> Completion {
        match kind {
            OpKind::Read => Completion::of_read(client.get(self.pick_key(rng)).await),
            OpKind::Update => Completion::of_write(client.put(self.pick_key(rng), random_value(rng)).await),
            OpKind::Insert => {
                let number = self.inserts.next();
                let key = self.record_count + number;
                let outcome = Completion::of_write(client.put(to_key(key), random_value(rng)).await);
                // A failed insert is acknowledged too, or no later insert would ever count.
                self.inserts.acknowledge(number);
                outcome
            }
            OpKind::ReadModifyWrite => {
                let key = self.pick_key(rng);
                match Completion::of_read(client.get(key).await) {
                    Completion::Failed(error) => Completion::Failed(error),
                    _ => Completion::of_write(client.put(key, random_value(rng)).await),
                }
            }
        }
    }

    /// Runs one operation whose latency counts from `started` (the send
    /// time in closed loop, the intended time in open loop).
    async fn one(&self, client: &mut Client, rng: &mut SmallRng, started: Instant, recorder: &mut Measurements) {
        let kind = self.choose(rng);
        let outcome = self.execute(client, kind, rng).await;
        let done = Instant::now();
        count_progress(&self.progress, &outcome);
        let failed = matches!(outcome, Completion::Failed(_));
        if started >= self.measure_from {
            recorder.record(kind, started, done, outcome);
        }
        if failed {
            tokio::time::sleep(ERROR_PAUSE).await;
        }
    }
}

/// The run phase, closed or open loop.
async fn measure(
    clients: Vec<Client>,
    spec: &LoadSpec,
    progress: &Arc<LoadCounters>,
) -> Result<PhaseReport, LoadError> {
    let shared = Arc::new(Shared::new(spec, Arc::clone(progress)));
    let recorder = match spec.rate {
        None => closed_loop(clients, spec, &shared).await?,
        Some(rate) => open_loop(clients, spec, &shared, rate).await?,
    };
    Ok(recorder.report(shared.measure_from))
}

async fn closed_loop(clients: Vec<Client>, spec: &LoadSpec, shared: &Arc<Shared>) -> Result<Measurements, LoadError> {
    let mut tasks = Vec::with_capacity(clients.len());
    for (index, mut client) in clients.into_iter().enumerate() {
        let (shared, seed) = (Arc::clone(shared), worker_seed(spec.seed, index));
        tasks.push(tokio::spawn(async move {
            let mut rng = SmallRng::seed_from_u64(seed);
            let mut recorder = Measurements::new()?;
            loop {
                let sent = Instant::now();
                if sent >= shared.end || (sent >= shared.measure_from && !shared.take_budget()) {
                    break;
                }
                shared.one(&mut client, &mut rng, sent, &mut recorder).await;
            }
            Ok(recorder)
        }));
    }
    join_all(tasks).await
}

async fn open_loop(
    clients: Vec<Client>,
    spec: &LoadSpec,
    shared: &Arc<Shared>,
    rate: f64,
) -> Result<Measurements, LoadError> {
    let admit = {
        let shared = Arc::clone(shared);
        move |intended: Instant| intended < shared.end && (intended < shared.measure_from || shared.take_budget())
    };
    let (pacer, pacing) = pacer::spawn(rate, clients.len(), admit);
    let mut tasks = Vec::with_capacity(clients.len());
    for (index, mut client) in clients.into_iter().enumerate() {
        let (shared, pacer) = (Arc::clone(shared), Arc::clone(&pacer));
        let seed = worker_seed(spec.seed, index);
        tasks.push(tokio::spawn(async move {
            let mut rng = SmallRng::seed_from_u64(seed);
            let mut recorder = Measurements::new()?;
            while let Some(intended) = pacer.next().await {
                if Instant::now() >= shared.drain_deadline {
                    let missed = Completion::Failed("not started before the deadline (target too slow)".into());
                    recorder.record(OpKind::Read, intended, Instant::now(), missed);
                    continue;
                }
                shared.one(&mut client, &mut rng, intended, &mut recorder).await;
            }
            Ok(recorder)
        }));
    }
    let recorder = join_all(tasks).await;
    pacing
        .join()
        .map_err(|_| LoadError::Task("the pacing thread panicked".into()))?;
    recorder
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_fold_into_the_int_range() {
        assert_eq!(to_key(0), 0);
        assert_eq!(to_key(i32::MAX as u64), i32::MAX);
        assert_eq!(to_key(1 << 31), 0);
    }

    #[test]
    fn throughput_of_an_empty_window_is_zero() {
        assert_eq!(throughput(10, 0.0), 0.0);
        assert!((throughput(500, 2.0) - 250.0).abs() < 1e-9);
    }

    #[test]
    fn recorder_counts_and_times() -> Result<(), LoadError> {
        let mut recorder = Measurements::new()?;
        let t0 = Instant::now();
        recorder.record(OpKind::Read, t0, t0 + Duration::from_micros(100), Completion::Served);
        recorder.record(OpKind::Read, t0, t0 + Duration::from_micros(300), Completion::NotFound);
        recorder.record(
            OpKind::Update,
            t0,
            t0 + Duration::from_micros(900),
            Completion::Failed("x".into()),
        );
        let report = recorder.report(t0);
        assert_eq!((report.operations, report.not_found, report.errors), (2, 1, 1));
        assert_eq!(report.first_error.as_deref(), Some("x"));
        assert_eq!(report.per_op.len(), 1);
        assert!((report.elapsed_secs - 0.0009).abs() < 1e-9);
        assert!(report.latency.max_us >= 300 && report.latency.max_us < 302);
        Ok(())
    }

    #[test]
    fn invalid_specs_are_refused() {
        let bad_rate = LoadSpec {
            rate: Some(0.0),
            ..LoadSpec::default()
        };
        assert!(bad_rate.validate().is_err());
        let no_keys = LoadSpec {
            record_count: 0,
            ..LoadSpec::default()
        };
        assert!(no_keys.validate().is_err());
        assert!(LoadSpec::default().validate().is_ok());
    }

    #[test]
    fn budget_is_spent_exactly() {
        let spec = LoadSpec {
            operations: Some(2),
            ..LoadSpec::default()
        };
        let shared = Shared::new(&spec, Arc::new(LoadCounters::default()));
        assert!(shared.take_budget() && shared.take_budget());
        assert!(!shared.take_budget());
    }
}
