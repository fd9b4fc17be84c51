//! `kvs-frontend`: the primary of the kvs cluster.
//!
//! It orders every write, replicates it to every active server and
//! acknowledges it once all of them hold it ([`replication`]); it answers
//! reads from the committed state ([`committed`]); it admits new servers
//! with a snapshot ([`catch_up`]). It listens on 8001 by default and exits
//! cleanly on SIGTERM or SIGINT.

mod catch_up;
mod committed;
mod config;
mod membership;
mod replication;
mod service;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use kvs_proto::process;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::service::Frontend;

#[tokio::main]
async fn main() -> ExitCode {
    process::init_logging();
    let config = Config::parse();
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> Result<(), String> {
    let addr = SocketAddr::new(config.bind, config.port);
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    tracing::info!(%addr, servers = %config.server_url, "frontend listening");
    let frontend = Arc::new(Frontend::new(config));
    let router = service::methods(&frontend).into_router();
    process::serve_until(listener, router, async {
        process::shutdown_signal().await;
        tracing::info!("signal received, shutting down");
    })
    .await
    .map_err(|e| format!("serving failed: {e}"))?;
    tracing::info!("frontend stopped");
    Ok(())
}
