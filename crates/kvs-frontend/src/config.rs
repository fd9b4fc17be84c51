//! The frontend's settings, from its command line or, for every option,
//! an environment variable (`KVS_*`, as a container or pod sets them).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use kvs_process::limits::Limits;
use kvs_proto::ClusterSecret;
use kvs_proto::addr::{DEFAULT_SERVER_URL_TEMPLATE, FRONTEND_PORT, SERVER_PORT_BASE};
use kvs_proto::auth::{SecretArgs, SecretError};

use crate::transport::{BatchTransport, HttpConnector};

/// The kvs frontend: orders writes, replicates them, serves reads.
#[derive(Debug, Clone, Parser)]
#[command(name = "kvs-frontend", version, about)]
pub struct Config {
    /// Address to listen on (0.0.0.0 in a container).
    #[arg(long, default_value = "127.0.0.1", env = "KVS_BIND")]
    pub bind: IpAddr,
    /// Port to listen on.
    #[arg(long, default_value_t = FRONTEND_PORT, env = "KVS_FRONTEND_PORT")]
    pub port: u16,
    /// Runtime worker threads; 0: half the cores this process may use, at
    /// least one. On a 2-core machine shared with the servers and clients,
    /// one thread did 13–15% more puts with 8 servers than two (fewer
    /// cross-thread wake-ups), but two held the open-loop tail better.
    #[arg(long, default_value_t = 0, env = "KVS_WORKER_THREADS")]
    pub worker_threads: usize,
    /// How to reach server {id}: `{id}` and `{port}` (= server-port-base + id) are substituted.
    #[arg(long, default_value = DEFAULT_SERVER_URL_TEMPLATE, env = "KVS_SERVER_URL")]
    pub server_url: String,
    /// Server {id} listens on this base + id.
    #[arg(long, default_value_t = SERVER_PORT_BASE, env = "KVS_SERVER_PORT_BASE")]
    pub server_port_base: u16,
    /// A call to a server that takes longer than this fails, and the server leaves the active set.
    #[arg(long, default_value_t = 1000, value_name = "MS", env = "KVS_RPC_TIMEOUT_MS")]
    pub rpc_timeout_ms: u64,
    /// How often every server is probed.
    #[arg(long, default_value_t = 200, value_name = "MS", env = "KVS_HEARTBEAT_INTERVAL_MS")]
    pub heartbeat_interval_ms: u64,
    /// A server that does not answer a probe within this leaves the active set.
    #[arg(long, default_value_t = 1000, value_name = "MS", env = "KVS_HEARTBEAT_TIMEOUT_MS")]
    pub heartbeat_timeout_ms: u64,
    /// Keep the epoch and membership here, and recover from the servers after a restart.
    #[arg(long, env = "KVS_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// How long a restarted frontend waits for a server holding the acknowledged writes before it logs,
    /// as an error, that it serves nothing until one answers or an operator calls `acceptDataLoss`.
    #[arg(long, default_value_t = 30_000, value_name = "MS", env = "KVS_RECOVERY_TIMEOUT_MS")]
    pub recovery_timeout_ms: u64,
    /// Most writes shipped to a server in one replication call.
    #[arg(long, default_value_t = 1024, env = "KVS_MAX_BATCH")]
    pub max_batch: usize,
    /// Most replication calls in flight to a server the commit point waits
    /// for (servers ahead of it wait for the commit point). More than 1
    /// measured slower with 8 servers on 2 cores, hence the default.
    #[arg(long, default_value_t = 1, env = "KVS_PIPELINE")]
    pub pipeline: usize,
    /// How writes reach the servers: `stream`, the binary replication
    /// stream on each server's port (see `kvs_proto::stream`), or
    /// `xml-rpc`, an `applyBatch` XML-RPC call per batch. Every other call
    /// is XML-RPC either way.
    #[arg(long, value_enum, default_value_t = BatchTransport::Stream, env = "KVS_BATCH_TRANSPORT")]
    pub batch_transport: BatchTransport,
    /// Committed writes the log keeps beyond what every member holds, so a
    /// server that comes back (a durable one after a restart, any after a
    /// pause or a partition) is sent only what it missed instead of a full
    /// snapshot. 0 always sends the snapshot.
    #[arg(long, default_value_t = 100_000, value_name = "WRITES", env = "KVS_REJOIN_TAIL")]
    pub rejoin_tail: usize,
    /// Pairs per snapshot chunk sent to a joining server.
    #[arg(long, default_value_t = 4096, env = "KVS_SNAPSHOT_CHUNK")]
    pub snapshot_chunk: usize,
    /// How long `addServer` waits for a server that does not answer yet
    /// (still starting: Kubernetes reports a pod running before its process
    /// listens). 0 fails at once.
    #[arg(long, default_value_t = 10_000, value_name = "MS", env = "KVS_ADD_SERVER_WAIT_MS")]
    pub add_server_wait_ms: u64,
    /// How often every active server is compared with the committed state
    /// (see `scrub`); 0 scrubs only on demand.
    #[arg(long, default_value_t = 60_000, value_name = "MS", env = "KVS_SCRUB_INTERVAL_MS")]
    pub scrub_interval_ms: u64,
    #[command(flatten)]
    pub secret_args: SecretArgs,
    #[command(flatten)]
    pub limits: Limits,
    /// The secret read from `secret_args` (see [`Config::load_secret`]).
    #[arg(skip)]
    pub secret: Option<ClusterSecret>,
}

impl Config {
    /// The runtime's worker threads (see `--worker-threads`).
    pub fn runtime_threads(&self) -> usize {
        match self.worker_threads {
            0 => std::thread::available_parallelism().map_or(1, |cores| (cores.get() / 2).max(1)),
            threads => threads,
        }
    }

    /// Reads the cluster secret the options name, once, at start.
    pub fn load_secret(mut self) -> Result<Self, SecretError> {
        self.secret = self.secret_args.secret()?;
        Ok(self)
    }

    pub fn rpc_timeout(&self) -> Duration {
        Duration::from_millis(self.rpc_timeout_ms)
    }

    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_millis(self.heartbeat_interval_ms.max(1))
    }

    pub fn heartbeat_timeout(&self) -> Duration {
        Duration::from_millis(self.heartbeat_timeout_ms)
    }

    pub fn add_server_wait(&self) -> Duration {
        Duration::from_millis(self.add_server_wait_ms)
    }

    pub fn scrub_interval(&self) -> Duration {
        Duration::from_millis(self.scrub_interval_ms)
    }

    pub fn recovery_timeout(&self) -> Duration {
        Duration::from_millis(self.recovery_timeout_ms)
    }

    /// The servers over XML-RPC (and their replication streams): calls
    /// time out after `--rpc-timeout-ms` and show the cluster secret.
    pub fn connector(&self) -> HttpConnector {
        HttpConnector {
            server_url: self.server_url.clone(),
            port_base: self.server_port_base,
            timeout: self.rpc_timeout(),
            secret: self.secret.clone(),
            batch_transport: self.batch_transport,
        }
    }
}
