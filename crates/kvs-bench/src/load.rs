//! A closed-loop load generator: N connections, each issuing its share of
//! puts and gets back to back against a frontend, with latencies recorded
//! in an HdrHistogram.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use kvs_proto::{FrontendClient, Key, RpcError};
use rand::{Rng, SeedableRng};
use thiserror::Error;

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Concurrent connections, each with its own client.
    pub connections: usize,
    /// Operations in all.
    pub operations: u64,
    /// Keys are drawn uniformly from `0..keys`.
    pub keys: Key,
    /// Percentage of operations that are puts.
    pub put_percent: u8,
    /// Per-call timeout.
    pub timeout: Duration,
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct LoadReport {
    pub operations: u64,
    pub errors: u64,
    pub elapsed: Duration,
    /// Latencies in microseconds.
    pub latency_us: Histogram<u64>,
}

impl LoadReport {
    pub fn throughput(&self) -> f64 {
        self.operations as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }
}

/// Why a run could not start.
#[derive(Debug, Error)]
pub enum LoadError {
    #[error(transparent)]
    Rpc(#[from] RpcError),
    #[error("histogram: {0}")]
    Histogram(String),
    #[error("a load task panicked: {0}")]
    Task(String),
}

fn new_histogram() -> Result<Histogram<u64>, LoadError> {
    Histogram::new_with_bounds(1, 60_000_000, 3).map_err(|e| LoadError::Histogram(e.to_string()))
}

/// Runs `spec` against the frontend at `url`.
pub async fn run(url: &str, spec: &LoadSpec) -> Result<LoadReport, LoadError> {
    let connections = spec.connections.max(1);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(connections);
    for worker in 0..connections {
        let share =
            spec.operations / connections as u64 + u64::from((worker as u64) < spec.operations % connections as u64);
        let client = FrontendClient::new(url, Some(spec.timeout))?;
        let spec = spec.clone();
        tasks.push(tokio::spawn(async move { worker_loop(client, share, spec).await }));
    }
    let mut latency_us = new_histogram()?;
    let (mut operations, mut errors) = (0, 0);
    for task in tasks {
        let (hist, ok, failed) = task.await.map_err(|e| LoadError::Task(e.to_string()))??;
        latency_us.add(hist).map_err(|e| LoadError::Histogram(e.to_string()))?;
        operations += ok;
        errors += failed;
    }
    Ok(LoadReport {
        operations,
        errors,
        elapsed: started.elapsed(),
        latency_us,
    })
}

async fn worker_loop(
    client: FrontendClient,
    share: u64,
    spec: LoadSpec,
) -> Result<(Histogram<u64>, u64, u64), LoadError> {
    let mut hist = new_histogram()?;
    let (mut ok, mut failed) = (0, 0);
    let mut rng = rand::rngs::SmallRng::from_os_rng();
    for _ in 0..share {
        let key = rng.random_range(0..spec.keys.max(1));
        let is_put = rng.random_range(0..100u8) < spec.put_percent;
        let started = Instant::now();
        let result = if is_put {
            client.put(key, rng.random()).await
        } else {
            client.get(key).await
        };
        match result {
            // A get of a key never written is a fault but still a served request.
            Ok(_) | Err(RpcError::Fault(_)) if !is_put => ok += 1,
            Ok(_) => ok += 1,
            Err(_) => failed += 1,
        }
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        hist.saturating_record(micros.max(1));
    }
    Ok((hist, ok, failed))
}
