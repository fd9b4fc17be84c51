//! `kvs-frontend`: the primary of the kvs cluster, as a library the binary
//! (and a simulator) runs.
//!
//! It orders every write, replicates it to every active server and
//! acknowledges it once all of them hold it ([`replication`]); it answers
//! reads from the committed state ([`committed`]); it admits new servers
//! with a snapshot ([`catch_up`]); it finds failed servers by heartbeat and
//! readmits them when they answer again ([`failure_detector`]); with
//! `--data-dir` it survives its own crash ([`durable`], [`recovery`]; the
//! [`gate`] holds calls off until it has); it
//! compares the servers with the committed state and rebuilds any that
//! diverged ([`scrub`]). [`run`]
//! wires the parts: it listens on 8001 by default and returns cleanly on
//! SIGTERM or SIGINT. Servers are reached only through [`transport`].

pub mod catch_up;
pub mod committed;
pub mod config;
pub mod durable;
pub mod failure_detector;
pub mod gate;
pub mod membership;
pub mod recovery;
pub mod replication;
pub mod scrub;
pub mod service;
pub mod signal;
pub mod tasks;
pub mod transport;

use std::net::SocketAddr;
use std::sync::Arc;

use kvs_process::{self as process, ProcessError};
use kvs_proto::Fence;
use thiserror::Error;

use crate::committed::Committed;
use crate::config::Config;
use crate::durable::{DataDir, DurableError};
use crate::gate::Gate;
use crate::recovery::RecoveryError;
use crate::service::Frontend;

/// A random, non-zero cluster id (0 marks a record without one).
pub fn new_cluster_id() -> u64 {
    rand::random::<u64>().max(1)
}

/// Why the frontend could not start or stopped serving.
#[derive(Debug, Error)]
pub enum FrontendError {
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error(transparent)]
    DataDir(#[from] DurableError),
    #[error(transparent)]
    Recovery(#[from] RecoveryError),
    #[error(transparent)]
    Secret(#[from] kvs_proto::auth::SecretError),
}

/// Runs a frontend with `config` until SIGTERM or SIGINT: listens at once
/// (behind a shut [`Gate`]), recovers from the data folder if one is given,
/// opens the gate, probes and scrubs the servers, and stops what it started
/// before returning.
pub async fn run(config: Config) -> Result<(), FrontendError> {
    let config = config.load_secret()?;
    let addr = SocketAddr::new(config.bind, config.port);
    // The folder first: a second frontend on it fails before it listens.
    let data = match &config.data_dir {
        Some(dir) => Some(Arc::new(DataDir::open(dir)?)),
        None => None,
    };
    let listener = process::listen(addr).await?;
    let gate = Gate::new();
    let router = gate.router(config.secret.clone());
    tracing::info!(%addr, servers = %config.server_url, guarded = config.secret.is_some(), "frontend listening");

    let mut failed = None;
    let stop = async {
        let opening = open(&gate, config.clone(), data);
        let opened = tokio::select! {
            opened = opening => opened,
            () = process::shutdown_signal() => return,
        };
        match opened {
            Ok(()) => process::shutdown_signal().await,
            Err(error) => failed = Some(error),
        }
        tracing::info!("shutting down");
    };
    let served = process::serve_until(listener, router, &config.limits, stop).await;
    if let Some(frontend) = gate.frontend() {
        frontend.shutdown().await;
    }
    served?;
    if let Some(error) = failed {
        return Err(error);
    }
    tracing::info!("frontend stopped");
    Ok(())
}

/// Brings the frontend up — recovered from `data`, or new without one —
/// starts its background work and opens `gate` to it.
async fn open(gate: &Gate, config: Config, data: Option<Arc<DataDir>>) -> Result<(), FrontendError> {
    let connector = Arc::new(config.connector());
    let frontend = match data {
        Some(data) => Frontend::recover(config, connector, data, gate.wait()).await?,
        None => {
            // No data folder: a cluster of its own for this process's life.
            let fence = Fence::new(new_cluster_id(), 0);
            Frontend::new(config, connector, fence, Arc::new(Committed::default()), None)
        }
    };
    let frontend = Arc::new(frontend);
    frontend.start();
    gate.open(frontend);
    tracing::info!("frontend serving");
    Ok(())
}
