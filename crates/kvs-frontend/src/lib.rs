//! `kvs-frontend`: the primary of the kvs cluster, as a library the binary
//! (and a simulator) runs.
//!
//! It orders every write, replicates it to every active server and
//! acknowledges it once all of them hold it ([`replication`]); it answers
//! reads from the committed state ([`committed`]); it admits new servers
//! with a snapshot ([`catch_up`]); it finds failed servers by heartbeat and
//! readmits them when they answer again ([`failure_detector`]); with
//! `--data-dir` it survives its own crash ([`durable`], [`recovery`],
//! answering only [`recovering`] until it has); it
//! compares the servers with the committed state and rebuilds any that
//! diverged ([`scrub`]). [`run`]
//! wires the parts: it listens on 8001 by default and returns cleanly on
//! SIGTERM or SIGINT. Servers are reached only through [`transport`].

pub mod catch_up;
pub mod committed;
pub mod config;
pub mod durable;
pub mod failure_detector;
pub mod membership;
pub mod recovering;
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
use kvs_proto::serve::Probes;
use thiserror::Error;

use crate::committed::Committed;
use crate::config::Config;
use crate::durable::{DataDir, DurableError};
use crate::recovery::{RecoveryError, RecoveryWait};
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

/// Runs a frontend with `config` until SIGTERM or SIGINT: recovers from
/// the data folder if one is given (answering [`recovering`] meanwhile),
/// serves the XML-RPC methods, probes and scrubs the servers, and stops
/// what it started before returning.
pub async fn run(config: Config) -> Result<(), FrontendError> {
    let config = config.load_secret()?;
    let addr = SocketAddr::new(config.bind, config.port);
    let connector = Arc::new(config.connector());
    let listener = process::listen(addr).await?;
    let frontend = match &config.data_dir {
        Some(dir) => {
            let data = Arc::new(DataDir::open(dir)?);
            let wait = Arc::new(RecoveryWait::default());
            let recovering = recovering::router(&wait, config.secret.clone());
            tracing::info!(%addr, "frontend recovering");
            let mut outcome = None;
            let recovery = async {
                tokio::select! {
                    recovered = Frontend::recover(config.clone(), connector, data, &wait) => outcome = Some(recovered),
                    () = process::shutdown_signal() => {}
                }
            };
            process::serve_while(&listener, recovering, &config.limits, recovery).await?;
            match outcome {
                Some(recovered) => recovered?,
                None => return Ok(()),
            }
        }
        None => {
            // No data folder: a cluster of its own for this process's life.
            let fence = Fence {
                cluster: new_cluster_id(),
                epoch: 0,
            };
            Frontend::new(config.clone(), connector, fence, Arc::new(Committed::default()), None)
        }
    };
    let frontend = Arc::new(frontend);
    tracing::info!(%addr, servers = %config.server_url, guarded = config.secret.is_some(), "frontend listening");

    frontend.start();
    let metrics = {
        let frontend = Arc::clone(&frontend);
        move || frontend.refresh_metrics()
    };
    let probes = Probes::default().metrics(metrics).readiness(&frontend);
    let router = service::methods(&frontend).into_router_with(probes);
    let served = process::serve_until(listener, router, &config.limits, async {
        process::shutdown_signal().await;
        tracing::info!("signal received, shutting down");
    })
    .await;
    frontend.shutdown().await;
    served?;
    tracing::info!("frontend stopped");
    Ok(())
}
