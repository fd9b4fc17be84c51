//! `kvs-frontend`: the primary of the kvs cluster.
//!
//! It orders every write, replicates it to every active server and
//! acknowledges it once all of them hold it ([`replication`]); it answers
//! reads from the committed state ([`committed`]); it admits new servers
//! with a snapshot ([`catch_up`]); it finds failed servers by heartbeat and
//! readmits them when they answer again ([`failure_detector`]); with
//! `--data-dir` it survives its own crash ([`durable`], [`recovery`]); it
//! compares the servers with the committed state and rebuilds any that
//! diverged ([`scrub`]). It
//! listens on 8001 by default and exits cleanly on SIGTERM or SIGINT.

mod catch_up;
mod committed;
mod config;
mod durable;
mod failure_detector;
mod membership;
mod recovery;
mod replication;
mod scrub;
mod service;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use kvs_proto::process::{self, ProcessError};
use kvs_proto::serve::Probes;
use thiserror::Error;

use crate::committed::Committed;
use crate::config::Config;
use crate::durable::{DataDir, DurableError};
use crate::recovery::RecoveryError;
use crate::service::Frontend;
use kvs_proto::Fence;
use tokio::sync::Notify;

/// A random, non-zero cluster id (0 marks a record without one).
fn new_cluster_id() -> u64 {
    rand::random::<u64>().max(1)
}

/// mimalloc: the request path allocates a little per call (hyper, XML-RPC
/// values); it is measurably cheaper than the system allocator there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Why the frontend could not start or stopped serving.
#[derive(Debug, Error)]
enum FrontendError {
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error(transparent)]
    DataDir(#[from] DurableError),
    #[error(transparent)]
    Recovery(#[from] RecoveryError),
    #[error(transparent)]
    Secret(#[from] kvs_proto::auth::SecretError),
}

#[tokio::main]
async fn main() -> ExitCode {
    process::init_logging();
    process::exit_code(run(Config::parse()).await)
}

async fn run(config: Config) -> Result<(), FrontendError> {
    let config = config.load_secret()?;
    let addr = SocketAddr::new(config.bind, config.port);
    let frontend = match &config.data_dir {
        Some(dir) => {
            let data = DataDir::open(dir)?;
            tokio::select! {
                recovered = Frontend::recover(config.clone(), data) => recovered?,
                () = process::shutdown_signal() => return Ok(()),
            }
        }
        None => {
            // No data folder: a cluster of its own for this process's life.
            let fence = Fence {
                cluster: new_cluster_id(),
                epoch: 0,
            };
            Frontend::new(config.clone(), fence, Arc::new(Committed::default()), None)
        }
    };
    let frontend = Arc::new(frontend);
    let listener = process::listen(addr).await?;
    tracing::info!(%addr, servers = %config.server_url, guarded = config.secret.is_some(), "frontend listening");

    let stop = Arc::new(Notify::new());
    let detector = {
        let (frontend, stop) = (Arc::clone(&frontend), Arc::clone(&stop));
        tokio::spawn(async move { frontend.watch_servers(stop.notified()).await })
    };
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
    stop.notify_one();
    let _ = detector.await;
    served?;
    tracing::info!("frontend stopped");
    Ok(())
}
