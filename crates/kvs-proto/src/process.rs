//! What every kvs process shares around serving: logging set-up, the
//! shutdown signals, the listening socket, serving a router until told to
//! stop, and the exit code of a process that failed.

use std::fmt::Display;
use std::future::Future;
use std::io::{self, IsTerminal};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use axum::Router;
use axum::serve::ListenerExt;
use thiserror::Error;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

use crate::addr::port_for;

/// Why a process could not start, or stopped serving.
#[derive(Debug, Error)]
pub enum ProcessError {
    #[error("{role} id {id} gives no valid port; pass --port")]
    NoPort { role: &'static str, id: i32 },
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: io::Error },
    #[error("cannot start the runtime: {0}")]
    Runtime(io::Error),
    #[error("serving failed: {0}")]
    Serve(io::Error),
}

/// `port` if given, else `base + id` (a `role` such as "server" names the
/// id in the error).
pub fn port_or_default(port: Option<u16>, base: u16, id: i32, role: &'static str) -> Result<u16, ProcessError> {
    match port {
        Some(port) => Ok(port),
        None => port_for(base, id).ok_or(ProcessError::NoPort { role, id }),
    }
}

/// Binds the listening socket.
pub async fn listen(addr: SocketAddr) -> Result<TcpListener, ProcessError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ProcessError::Listen { addr, source })
}

/// The exit code of a process that ran to `outcome`; a failure is logged.
pub fn exit_code(outcome: Result<(), impl Display>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error}");
            ExitCode::FAILURE
        }
    }
}

/// How long in-flight requests may take to finish once shutdown begins.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Logs to stderr; `RUST_LOG` overrides the default level (`info`).
pub fn init_logging() {
    init_logging_with_default("info");
}

/// Logs to stderr at `level` unless `RUST_LOG` says otherwise.
pub fn init_logging_with_default(level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Serves `router` on `listener` until `stop` resolves, then lets in-flight
/// requests finish for at most [`SHUTDOWN_GRACE`].
pub async fn serve_until(
    listener: TcpListener,
    router: Router,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ProcessError> {
    let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel::<()>();
    let stop = async move {
        stop.await;
        let _ = stopped_tx.send(());
    };
    // Replies are small and callers wait on each one: never hold them back (Nagle).
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let server = axum::serve(listener, router).with_graceful_shutdown(stop);
    let deadline = async move {
        if stopped_rx.await.is_ok() {
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        result = server => result.map_err(ProcessError::Serve),
        () = deadline => Ok(()),
    }
}
