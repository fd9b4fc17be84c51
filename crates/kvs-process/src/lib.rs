//! What every kvs process shares around serving: logging set-up, the
//! shutdown signals, the listening socket, serving a router until told to
//! stop (HTTP/1.1, within the bounds of [`limits`], with an optional
//! [`SidePort`] protocol on the same port), and the exit code of a
//! process that failed. None of it is the wire (that is `kvs-proto`): this
//! is how a process runs.

use std::fmt::Display;
use std::future::Future;
use std::io::{self, IsTerminal};
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use thiserror::Error;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tracing_subscriber::EnvFilter;

use kvs_proto::addr::port_for;
pub mod folder;
pub mod limits;

use crate::limits::Limits;

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

/// Logs to stderr at `level` unless `RUST_LOG` says otherwise; one JSON
/// object per line when `KVS_LOG_FORMAT=json` (for log collectors).
pub fn init_logging_with_default(level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_target(false);
    let _ = if std::env::var("KVS_LOG_FORMAT").is_ok_and(|format| format.eq_ignore_ascii_case("json")) {
        logs.json().try_init()
    } else {
        logs.with_ansi(io::stderr().is_terminal()).try_init()
    };
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

/// Serves `router` on `listener` until `stop` resolves, within `limits`,
/// then lets in-flight requests finish for at most [`SHUTDOWN_GRACE`].
pub async fn serve_until(
    listener: TcpListener,
    router: Router,
    limits: &Limits,
    stop: impl Future<Output = ()>,
) -> Result<(), ProcessError> {
    serve_until_with(listener, router, None, limits, stop).await
}

/// A protocol served on the same port as HTTP: a connection whose first
/// byte is `first` (a byte no HTTP request starts with) is handed to
/// `serve` instead of the router, within the same connection cap.
#[derive(Clone)]
pub struct SidePort {
    first: u8,
    serve: Arc<dyn Fn(TcpStream) -> SideConnection + Send + Sync>,
}

/// One connection of a [`SidePort`], served to its end.
type SideConnection = Pin<Box<dyn Future<Output = ()> + Send>>;

impl SidePort {
    /// Connections starting with `first` go to `serve`.
    pub fn new<F>(first: u8, serve: impl Fn(TcpStream) -> F + Send + Sync + 'static) -> Self
    where
        F: Future<Output = ()> + Send + 'static,
    {
        SidePort {
            first,
            serve: Arc::new(move |tcp| Box::pin(serve(tcp))),
        }
    }
}

/// [`serve_until`], with connections that start with `side`'s byte served
/// by it rather than by the router.
pub async fn serve_until_with(
    listener: TcpListener,
    router: Router,
    side: Option<SidePort>,
    limits: &Limits,
    stop: impl Future<Output = ()>,
) -> Result<(), ProcessError> {
    let files = limits::raise_file_limit();
    let cap = limits.connections_within(files);
    if cap < limits.max_connections {
        tracing::warn!(files, cap, "the file limit caps connections below --max-connections");
    }
    let router = router.layer(axum::middleware::from_fn_with_state(
        limits.body_guard(),
        limits::guard_body,
    ));
    let connections = Arc::new(Semaphore::new(cap));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout())
        .keep_alive(true);
    let header_timeout = limits.header_timeout();
    let graceful = GracefulShutdown::new();
    tokio::pin!(stop);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stop => break,
        };
        let tcp = match accepted {
            Ok((tcp, _peer)) => tcp,
            Err(error) => {
                // Out of descriptors or memory for a moment: let connections end.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(ACCEPT_RETRY).await;
                continue;
            }
        };
        // Replies are small and callers wait on each one: never hold them back (Nagle).
        let _ = tcp.set_nodelay(true);
        let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
            kvs_proto::metrics::metrics().refused("too_many_connections");
            tokio::spawn(refuse_connection(tcp));
            continue;
        };
        let watcher = graceful.watcher();
        let (http, router, side) = (http.clone(), router.clone(), side.clone());
        tokio::spawn(async move {
            if let Some(side) = side {
                match opening(&tcp, header_timeout).await {
                    Opening::Starts(byte) if byte == side.first => (side.serve)(tcp).await,
                    Opening::Starts(_) => serve_http(&http, tcp, router, watcher).await,
                    Opening::Ended => {}
                    Opening::Silent => kvs_proto::metrics::metrics().refused("header_timeout"),
                }
            } else {
                serve_http(&http, tcp, router, watcher).await;
            }
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(SHUTDOWN_GRACE) => {}
    }
    Ok(())
}

/// Serves HTTP/1.1 on `tcp` until the client or the server ends it.
async fn serve_http(http: &hyper::server::conn::http1::Builder, tcp: TcpStream, router: Router, watcher: Watcher) {
    let connection = watcher.watch(http.serve_connection(TokioIo::new(tcp), TowerToHyperService::new(router)));
    if let Err(error) = connection.await {
        if error.is_timeout() {
            kvs_proto::metrics::metrics().refused("header_timeout");
        }
        tracing::debug!(%error, "connection ended");
    }
}

/// How a connection opened.
enum Opening {
    /// With this byte (not yet taken).
    Starts(u8),
    /// Closed, or failed, before sending anything.
    Ended,
    /// Nothing sent within the header timeout.
    Silent,
}

/// Peeks at the first byte the client sends, for at most `timeout`.
async fn opening(tcp: &TcpStream, timeout: Duration) -> Opening {
    let mut first = [0u8; 1];
    match tokio::time::timeout(timeout, tcp.peek(&mut first)).await {
        Ok(Ok(1)) => Opening::Starts(first[0]),
        Ok(_) => Opening::Ended,
        Err(_) => Opening::Silent,
    }
}

/// Pause after a failed `accept` (e.g. no descriptor left).
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// Answers a connection over the cap with HTTP 503 and closes it.
async fn refuse_connection(mut tcp: TcpStream) {
    const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-type: text/plain\r\n\
                          content-length: 46\r\n\r\nserver busy: too many connections open; retry\n";
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = tcp.write_all(BUSY).await;
        let _ = tcp.shutdown().await;
    })
    .await;
}
