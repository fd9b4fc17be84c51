//! The `kvs-server` binary: one replica of the key-value store (the
//! replica itself is the library, [`kvs_server`]).
//!
//! Started as `kvs-server -i ID` (or `SERVER_ID=ID`), it listens on
//! `9000 + ID` and answers the frontend's replication calls and the course
//! skeleton's methods, and the frontend's replication stream on the same
//! port (`kvs_proto::stream`). It exits cleanly on `shutdownServer`, SIGTERM or SIGINT.
//! With `--join URL` it enrols itself with the frontend there, and leaves on
//! SIGTERM (`kvs_server::enrolment`). With `--data-dir DIR` its pairs
//! survive a restart (`kvs_server::data_dir`). Every option also comes from an environment
//! variable, as a container or pod sets them.

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use kvs_process::limits::Limits;
use kvs_process::{self as process, ProcessError, SidePort};
use kvs_proto::ClusterSecret;
use kvs_proto::RpcError;
use kvs_proto::addr::SERVER_PORT_BASE;
use kvs_proto::auth::{SecretArgs, SecretError};
use kvs_proto::metrics::metrics;
use kvs_proto::serve::Probes;
use kvs_proto::stream::{self, StreamBounds};
use prometheus_client::metrics::gauge::Gauge;
use thiserror::Error;

use kvs_server::data_dir::{DataDir, DataDirError, SyncError};
use kvs_server::enrolment::Enrolment;
use kvs_server::service::{self, ReplicaService};

/// Why the server could not start or stopped serving.
#[derive(Debug, Error)]
enum ServerError {
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error("cannot use --join {url}: {source}")]
    Join { url: String, source: RpcError },
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    #[error("stopped: {0}")]
    Log(#[from] SyncError),
}

/// A kvs replica server.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// This server's id; it listens on 9000 + id unless --port is given.
    #[arg(short = 'i', long = "id", env = "SERVER_ID")]
    id: i32,
    /// Address to listen on (0.0.0.0 in a container).
    #[arg(long, default_value = "127.0.0.1", env = "KVS_BIND")]
    bind: IpAddr,
    /// Port to listen on [default: 9000 + id].
    #[arg(long, env = "KVS_SERVER_PORT")]
    port: Option<u16>,
    /// The frontend's URL: ask it to admit this server once listening (and
    /// retry until it does), ask it to remove this server on SIGTERM, and be
    /// ready (`/readyz`) once it lists this server as active.
    #[arg(long, env = "KVS_JOIN", value_name = "URL")]
    join: Option<String>,
    /// Runtime worker threads. One is enough for a replica fed by one
    /// frontend, and several servers on a small machine then do not
    /// contend with each other's threads.
    #[arg(long, default_value_t = 1, env = "KVS_WORKER_THREADS")]
    worker_threads: usize,
    /// Keep the pairs here, durably: every change is logged and synced
    /// before it is acknowledged, and a restarted server recovers them.
    /// Without it the pairs live in memory only.
    #[arg(long, env = "KVS_DATA_DIR", value_name = "DIR")]
    data_dir: Option<std::path::PathBuf>,
    /// With --data-dir: snapshot the store once the current log file has
    /// grown past this many bytes.
    #[arg(long, default_value_t = 64 << 20, env = "KVS_SNAPSHOT_BYTES", value_name = "BYTES")]
    snapshot_bytes: u64,
    #[command(flatten)]
    secret: SecretArgs,
    #[command(flatten)]
    limits: Limits,
}

fn main() -> ExitCode {
    process::init_logging();
    let args = Args::parse();
    let runtime = match args.worker_threads {
        0 | 1 => tokio::runtime::Builder::new_current_thread().enable_all().build(),
        threads => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build(),
    };
    process::exit_code(
        runtime
            .map_err(|e| ServerError::Process(ProcessError::Runtime(e)))
            .and_then(|runtime| runtime.block_on(run(args))),
    )
}

async fn run(args: Args) -> Result<(), ServerError> {
    let port = process::port_or_default(args.port, SERVER_PORT_BASE, args.id, "server")?;
    let addr = SocketAddr::new(args.bind, port);
    let secret = args.secret.secret()?;
    let enrolment = match &args.join {
        Some(url) => Some(Arc::new(Enrolment::new(args.id, url, secret.as_ref()).map_err(
            |source| ServerError::Join {
                url: url.clone(),
                source,
            },
        )?)),
        None => None,
    };
    let service = Arc::new(match &args.data_dir {
        Some(dir) => ReplicaService::durable(args.id, DataDir::open(dir, args.snapshot_bytes)?),
        None => ReplicaService::new(args.id),
    });
    let listener = process::listen(addr).await?;
    let keys = Gauge::<i64>::default();
    metrics().register("store_keys", "Keys this replica holds", keys.clone());
    let probes = {
        let service = Arc::clone(&service);
        Probes::default().metrics(move || {
            keys.set(i64::try_from(service.key_count()).unwrap_or(i64::MAX));
        })
    };
    let probes = match &enrolment {
        Some(enrolment) => probes.readiness(enrolment),
        None => probes,
    };
    let guarded = secret.is_some();
    let stream = replication_stream(&service, secret.clone(), &args.limits);
    let router = service::methods(&service, secret).into_router_with(probes);
    tracing::info!(id = args.id, %addr, join = ?args.join, guarded, "server listening");

    let joining = enrolment.as_ref().map(|enrolment| {
        let enrolment = Arc::clone(enrolment);
        tokio::spawn(async move { enrolment.join().await })
    });
    let stop = {
        let service = Arc::clone(&service);
        async move {
            tokio::select! {
                () = process::shutdown_signal() => {
                    tracing::info!("signal received, shutting down");
                    if let Some(joining) = joining {
                        joining.abort();
                    }
                    if let Some(enrolment) = enrolment {
                        enrolment.leave().await;
                    }
                }
                () = service.shutdown_requested() => match service.failure() {
                    Some(error) => tracing::error!(%error, "stopping: the log failed"),
                    None => tracing::info!("shutdownServer received, shutting down"),
                },
            }
        }
    };
    process::serve_until_with(listener, router, Some(stream), &args.limits, stop).await?;
    if let Some(error) = service.failure() {
        return Err(error.into());
    }
    tracing::info!(id = args.id, "server stopped");
    Ok(())
}

/// The replication stream on the server's port (see [`kvs_proto::stream`]),
/// within the same time bounds as an HTTP caller.
fn replication_stream(service: &Arc<ReplicaService>, secret: Option<ClusterSecret>, limits: &Limits) -> SidePort {
    let service = Arc::clone(service);
    let secret = secret.map(Arc::new);
    let bounds = StreamBounds {
        idle: limits.header_timeout(),
        call: limits.body_timeout(),
    };
    SidePort::new(stream::PREAMBLE, move |tcp| {
        stream::serve(tcp, Arc::clone(&service), secret.clone(), bounds)
    })
}
