//! `kvs-client`: the client proxy the course harness talks to.
//!
//! Started as `kvs-client -i ID` (or `CLIENT_ID=ID`), it listens on
//! `7000 + ID` and forwards `put` and `get` to the frontend, many at once
//! (the course proxy is single-threaded). Replies and faults pass through
//! unchanged; a frontend that cannot be reached is a fault too. Every option
//! also comes from an environment variable, as a container or pod sets them.

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use dxr::Fault;
use kvs_process::limits::Limits;
use kvs_process::{self as process, ProcessError};
use kvs_proto::addr::{CLIENT_PORT_BASE, DEFAULT_FRONTEND_URL};
use kvs_proto::api::proxy::{Get, Put};
use kvs_proto::serve::{Handle, Methods};
use kvs_proto::{FrontendClient, RpcError, fault};
use thiserror::Error;

/// The kvs client proxy.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// This client's id; it listens on 7000 + id unless --port is given.
    #[arg(short = 'i', long = "id", env = "CLIENT_ID")]
    id: i32,
    /// Address to listen on (0.0.0.0 in a container).
    #[arg(long, default_value = "127.0.0.1", env = "KVS_BIND")]
    bind: IpAddr,
    /// Port to listen on [default: 7000 + id].
    #[arg(long, env = "KVS_CLIENT_PORT")]
    port: Option<u16>,
    /// The frontend's URL.
    #[arg(long, default_value = DEFAULT_FRONTEND_URL, env = "KVS_FRONTEND_URL")]
    frontend: String,
    /// A forwarded call that takes longer than this fails with a fault.
    #[arg(long, default_value_t = 30_000, value_name = "MS", env = "KVS_TIMEOUT_MS")]
    timeout_ms: u64,
    #[command(flatten)]
    limits: Limits,
}

/// Forwards calls to the frontend.
struct Proxy {
    frontend: FrontendClient,
}

impl Handle<Put> for Proxy {
    async fn handle(&self, call: Put) -> Result<String, Fault> {
        self.frontend.put(call.key, call.value).await.map_err(pass_through)
    }
}

impl Handle<Get> for Proxy {
    async fn handle(&self, call: Get) -> Result<String, Fault> {
        self.frontend.get(call.key).await.map_err(pass_through)
    }
}

/// The frontend's fault as is; anything else as a fault saying what failed.
fn pass_through(error: RpcError) -> Fault {
    match error {
        RpcError::Fault(fault) => fault,
        other => Fault::new(fault::SERVER_UNREACHABLE, format!("frontend: {other}")),
    }
}

/// Why the proxy could not start or stopped serving.
#[derive(Debug, Error)]
enum ProxyError {
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error("cannot use frontend {url}: {source}")]
    Frontend { url: String, source: RpcError },
}

#[tokio::main]
async fn main() -> ExitCode {
    process::init_logging();
    process::exit_code(run(Args::parse()).await)
}

async fn run(args: Args) -> Result<(), ProxyError> {
    let port = process::port_or_default(args.port, CLIENT_PORT_BASE, args.id, "client")?;
    let frontend =
        FrontendClient::new(&args.frontend, Some(Duration::from_millis(args.timeout_ms))).map_err(|source| {
            ProxyError::Frontend {
                url: args.frontend.clone(),
                source,
            }
        })?;
    let proxy = Arc::new(Proxy { frontend });
    let router = Methods::new()
        .method::<Put, _>(&proxy)
        .method::<Get, _>(&proxy)
        .into_router();
    let addr = SocketAddr::new(args.bind, port);
    let listener = process::listen(addr).await?;
    tracing::info!(id = args.id, %addr, frontend = %args.frontend, "client proxy listening");
    process::serve_until(listener, router, &args.limits, process::shutdown_signal()).await?;
    Ok(())
}
