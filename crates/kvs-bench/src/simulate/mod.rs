//! Deterministic simulation of the replication protocol.
//!
//! A *schedule* is one seed: the real frontend and replica code, a
//! simulated network, clients and a nemesis ([`world`]), run on one thread
//! in tokio's simulated time (hours of timeouts pass in microseconds), with
//! every random choice — message delays, losses, duplicates, which fault
//! when, client operations — drawn from one generator seeded by the seed.
//! The same seed therefore replays the same interleaving exactly. Every
//! schedule's history goes through the linearizability checker
//! ([`crate::check::checker`]); a failure names the seed and the smallest
//! offending history the checker found.

pub mod disk;
pub mod network;
pub mod world;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use kvs_frontend::config::Config;
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use thiserror::Error;
use tokio::time::Instant;

use crate::check::checker::{self, CheckError};
use crate::check::history::{History, Operation};
use network::Weather;
use world::World;

/// What the nemesis may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
pub enum FaultKind {
    /// A server process dies and comes back empty.
    CrashServer,
    /// A server stops (SIGSTOP) and resumes.
    PauseServer,
    /// A server is cut off from the frontend and reconnected.
    PartitionServer,
    /// The frontend dies and restarts from its data folder.
    CrashFrontend,
    /// The frontend's disk refuses writes for a while.
    FailDisk,
    /// `shutdownServer` of a member.
    RemoveServer,
    /// `addServer` of a server that is not a member.
    AddServer,
}

impl FaultKind {
    pub const ALL: [FaultKind; 7] = [
        FaultKind::CrashServer,
        FaultKind::PauseServer,
        FaultKind::PartitionServer,
        FaultKind::CrashFrontend,
        FaultKind::FailDisk,
        FaultKind::RemoveServer,
        FaultKind::AddServer,
    ];
}

/// The shape of every schedule.
#[derive(Debug, Clone)]
pub struct SimSpec {
    /// Servers added at the start.
    pub servers: usize,
    /// Servers that exist but are not members at the start (for `addServer`).
    pub spare_servers: usize,
    pub clients: usize,
    /// Keys the clients use (few, so operations contend).
    pub keys: u64,
    /// Simulated time the clients run.
    pub duration: Duration,
    /// Longest pause between two operations of a client.
    pub think_ms: u64,
    pub faults: Vec<FaultKind>,
    /// Time between two faults, and how long one lasts (ms ranges).
    pub fault_gap_ms: std::ops::Range<u64>,
    pub fault_length_ms: std::ops::Range<u64>,
    pub weather: Weather,
}

impl Default for SimSpec {
    fn default() -> Self {
        SimSpec {
            servers: 3,
            spare_servers: 1,
            clients: 4,
            keys: 6,
            duration: Duration::from_secs(6),
            think_ms: 20,
            faults: FaultKind::ALL.to_vec(),
            fault_gap_ms: 200..1_200,
            fault_length_ms: 100..2_500,
            weather: Weather {
                max_delay: Duration::from_millis(3),
                loss: 0.005,
                duplication: 0.01,
            },
        }
    }
}

impl SimSpec {
    /// The frontend's settings for one schedule: short timeouts, and
    /// batching, pipelining and snapshot chunks drawn from the seed, so the
    /// rare paths run.
    pub fn frontend_config(&self, rng: &mut StdRng) -> Result<Config, clap::Error> {
        let max_batch = [1, 2, 8, 1024][rng.random_range(0..4)];
        let pipeline = rng.random_range(1..=3);
        let chunk = [1, 3, 4096][rng.random_range(0..3)];
        let args = [
            "kvs-frontend".to_owned(),
            "--rpc-timeout-ms=500".to_owned(),
            "--heartbeat-interval-ms=100".to_owned(),
            "--heartbeat-timeout-ms=400".to_owned(),
            "--recovery-timeout-ms=3000".to_owned(),
            "--add-server-wait-ms=1000".to_owned(),
            "--scrub-interval-ms=700".to_owned(),
            format!("--max-batch={max_batch}"),
            format!("--pipeline={pipeline}"),
            format!("--snapshot-chunk={chunk}"),
        ];
        <Config as clap::Parser>::try_parse_from(args)
    }
}

/// What one schedule did and whether its history is linearizable.
#[derive(Debug)]
pub struct Schedule {
    pub seed: u64,
    pub history: History,
    pub faults: usize,
    /// The frontend could not recover: every server holding the
    /// acknowledged writes had lost them (see `world::RECOVERY_LIMIT`).
    pub unrecoverable: bool,
    pub verdict: Result<(), Box<Failure>>,
}

/// Why a schedule failed.
#[derive(Debug, Error)]
pub enum Failure {
    #[error("{0}")]
    Check(CheckError),
}

/// Runs schedule `seed` on a fresh single-threaded runtime in simulated time.
pub fn run_schedule(seed: u64, spec: &SimSpec) -> std::io::Result<Schedule> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()?;
    let spec = spec.clone();
    let (history, faults, unrecoverable) = runtime.block_on(async move {
        let mut rng = StdRng::seed_from_u64(seed);
        let config = spec.frontend_config(&mut rng).map_err(std::io::Error::other)?;
        let world = World::new(spec.clone(), config, Arc::new(Mutex::new(rng)));
        world.start_frontend().await;
        world.add_initial_servers().await;
        let until = Instant::now() + spec.duration;
        let nemesis = tokio::spawn(Arc::clone(&world).nemesis(until));
        let mut clients = tokio::task::JoinSet::new();
        for client in 0..spec.clients {
            clients.spawn(Arc::clone(&world).client(client, until));
        }
        let mut operations: Vec<Operation> = Vec::new();
        while let Some(done) = clients.join_next().await {
            operations.extend(done.unwrap_or_default());
        }
        let _ = nemesis.await;
        world.stop().await;
        operations.sort_by_key(|op| (op.invoked_ns, op.client));
        let faults = world.faults.lock().len();
        let unrecoverable = world.unrecoverable.get() > 0;
        Ok::<_, std::io::Error>((History::from(operations), faults, unrecoverable))
    })?;
    // Dropping the runtime drops every task still parked (messages in flight).
    drop(runtime);
    let verdict = checker::check(&history)
        .map(|_| ())
        .map_err(|error| Box::new(Failure::Check(error)));
    Ok(Schedule {
        seed,
        history,
        faults,
        unrecoverable,
        verdict,
    })
}

/// What a run of many schedules found.
#[derive(Debug, Default)]
pub struct Summary {
    pub schedules: usize,
    pub faults: usize,
    pub operations: usize,
    /// Schedules whose frontend could not recover, by seed.
    pub unrecoverable: Vec<u64>,
    /// The failed schedules, seed first.
    pub failures: Vec<(u64, String)>,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "simulation: {} schedules, {} faults, {} violations",
            self.schedules,
            self.faults,
            self.failures.len()
        )
    }
}

/// Whether [`run_seeds`] goes on after a violation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Run every seed.
    Never,
    /// Start no seed after the first that fails. Seeds are started in
    /// order, so every seed below a failing one has run: the lowest failure
    /// reported is the first failing seed, however many threads ran.
    AtFirstViolation,
}

/// Runs schedules `first .. first + count` on `threads` threads.
pub fn run_seeds(first: u64, count: u64, threads: usize, spec: &SimSpec, stop: Stop) -> std::io::Result<Summary> {
    let end = first.saturating_add(count);
    let next = AtomicU64::new(first);
    // The lowest failing seed so far, when stopping at the first.
    let failed_at = AtomicU64::new(u64::MAX);
    let summary = Mutex::new(Summary::default());
    let work = || -> std::io::Result<()> {
        loop {
            let seed = next.fetch_add(1, Ordering::Relaxed);
            if seed >= end || seed > failed_at.load(Ordering::Relaxed) {
                return Ok(());
            }
            let schedule = run_schedule(seed, spec)?;
            if schedule.verdict.is_err() && stop == Stop::AtFirstViolation {
                failed_at.fetch_min(seed, Ordering::Relaxed);
            }
            let mut summary = summary.lock();
            summary.schedules += 1;
            summary.faults += schedule.faults;
            summary.operations += schedule.history.len();
            if schedule.unrecoverable {
                summary.unrecoverable.push(seed);
            }
            if let Err(failure) = schedule.verdict {
                summary.failures.push((seed, failure.to_string()));
            }
        }
    };
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads.max(1)).map(|_| scope.spawn(work)).collect();
        workers.into_iter().try_for_each(|worker| {
            worker
                .join()
                .map_err(|_| std::io::Error::other("a simulation thread panicked"))?
        })
    })?;
    let mut summary = summary.into_inner();
    summary.failures.sort_by_key(|(seed, _)| *seed);
    summary.unrecoverable.sort_unstable();
    Ok(summary)
}
