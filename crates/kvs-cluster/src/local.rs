//! A kvs cluster of local processes: the real binaries, real ports, real signals.
//!
//! Each cluster binds its own loopback address (`127.x.y.1`, derived from the
//! process id and a counter), so several clusters run at once on the course's
//! default ports. Every process is started with `kill_on_drop`, and dropping
//! the [`LocalCluster`] kills whatever is still running, so a failing test
//! leaves nothing behind.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use kvs_proto::addr::{CLIENT_PORT_BASE, FRONTEND_PORT, SERVER_PORT_BASE, port_for};
use kvs_proto::{ClusterSecret, FrontendClient, ProxyClient, RpcError, ServerId};
use thiserror::Error;
use tokio::process::Command;

use crate::process::{Process, StartError};

/// What went wrong while running a cluster.
#[derive(Debug, Error)]
pub enum ClusterError {
    /// A binary is not where [`Binaries`] looks.
    #[error("binary {0} not found; build it with `cargo build --release --bins` (or set KVS_BIN_DIR)")]
    MissingBinary(PathBuf),
    /// A process did not start, or did not start listening.
    #[error(transparent)]
    Start(#[from] StartError),
    /// The cluster runs no such process (never started, or already killed).
    #[error("no such process: {0}")]
    NoSuchProcess(String),
    /// A signal could not be sent.
    #[error("signal to {what} failed: {source}")]
    Signal {
        /// The process's name.
        what: String,
        /// What sending it gave.
        source: std::io::Error,
    },
    /// A call to a process failed.
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// An id with no port under the course's numbering.
    #[error("port for id {0} out of range")]
    BadId(i32),
    /// The cluster secret given is not usable.
    #[error("invalid cluster secret: {0}")]
    Secret(String),
    /// A `docker` command failed (container clusters, see `kvs-bench`).
    #[error("{0}")]
    Docker(String),
    /// A restarted frontend did not recover in time.
    #[error("the frontend did not recover within {limit:?}: {status}")]
    NotRecovered {
        /// How long it was given.
        limit: Duration,
        /// What it answered last.
        status: String,
    },
    /// A server was not reported active in time.
    #[error("server {id} did not become active within {limit:?} (last status: {status})")]
    NotActive {
        /// The server.
        id: ServerId,
        /// How long it was given.
        limit: Duration,
        /// The frontend's last `clusterStatus` reply.
        status: String,
    },
}

/// Where the kvs binaries are: `$KVS_BIN_DIR`, else beside the running
/// executable (or one level up, for test executables in `deps/`).
#[derive(Debug, Clone)]
pub struct Binaries {
    dir: PathBuf,
}

impl Binaries {
    /// `$KVS_BIN_DIR`, else the running executable's folder (its parent for a test in `deps/`).
    pub fn locate() -> Self {
        if let Some(dir) = std::env::var_os("KVS_BIN_DIR") {
            return Binaries {
                dir: PathBuf::from(dir),
            };
        }
        let exe = std::env::current_exe().unwrap_or_default();
        let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
        if dir.ends_with("deps") {
            dir.pop();
        }
        Binaries { dir }
    }

    /// The binaries in `dir`.
    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        Binaries { dir: dir.into() }
    }

    /// The path of binary `name`, if it is there.
    pub fn path(&self, name: &str) -> Result<PathBuf, ClusterError> {
        let path = self.dir.join(name);
        if path.is_file() {
            Ok(path)
        } else {
            Err(ClusterError::MissingBinary(path))
        }
    }
}

/// A loopback address no other cluster of this machine is using right now.
pub fn unique_loopback() -> Ipv4Addr {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = std::process::id()
        .wrapping_mul(16)
        .wrapping_add(COUNTER.fetch_add(1, Ordering::Relaxed));
    // 127.{2..=253}.{0..=253}.1: skips 127.0.x.x and 127.1.x.x, which other tools like.
    let a = 2 + (n % 252) as u8;
    let b = ((n / 252) % 254) as u8;
    Ipv4Addr::new(127, a, b, 1)
}

/// A frontend, its servers and client proxies, as local processes.
pub struct LocalCluster {
    host: Ipv4Addr,
    bins: Binaries,
    frontend: Option<Process>,
    servers: BTreeMap<ServerId, Process>,
    clients: BTreeMap<i32, Process>,
    next_server: ServerId,
    next_client: i32,
    frontend_args: Vec<String>,
    /// Servers keep their pairs in `DIR/server-ID` (`--data-dir`), if set.
    server_data: Option<PathBuf>,
    /// The cluster secret every process is started with, if any.
    secret: Option<(String, ClusterSecret)>,
}

impl LocalCluster {
    /// A cluster on a fresh loopback address; nothing runs yet.
    pub fn new(bins: Binaries) -> Self {
        LocalCluster {
            host: unique_loopback(),
            bins,
            frontend: None,
            servers: BTreeMap::new(),
            clients: BTreeMap::new(),
            next_server: 0,
            next_client: 0,
            frontend_args: Vec::new(),
            server_data: None,
            secret: None,
        }
    }

    /// Starts every server durable, with its data folder `dir/server-ID`
    /// (kept across its restarts).
    pub fn with_server_data(mut self, dir: impl Into<PathBuf>) -> Self {
        self.server_data = Some(dir.into());
        self
    }

    /// Whether servers are started with data folders.
    pub fn durable_servers(&self) -> bool {
        self.server_data.is_some()
    }

    /// Starts every process with `secret` (`KVS_CLUSTER_SECRET`), and shows
    /// it on the cluster's own calls to the frontend.
    pub fn with_secret(mut self, secret: &str) -> Result<Self, ClusterError> {
        let parsed = ClusterSecret::new(secret).map_err(|e| ClusterError::Secret(e.to_string()))?;
        self.secret = Some((secret.to_owned(), parsed));
        Ok(self)
    }

    /// Extra arguments for the frontend (e.g. `--rpc-timeout-ms 300`).
    pub fn with_frontend_args(mut self, args: &[&str]) -> Self {
        self.frontend_args = args.iter().map(|a| (*a).to_owned()).collect();
        self
    }

    /// Starts the frontend, then `servers` servers (each added with
    /// `addServer`), then `clients` client proxies.
    pub async fn start(bins: Binaries, servers: usize, clients: usize) -> Result<Self, ClusterError> {
        let mut cluster = LocalCluster::new(bins);
        cluster.start_frontend().await?;
        for _ in 0..servers {
            cluster.add_server().await?;
        }
        for _ in 0..clients {
            cluster.add_client().await?;
        }
        Ok(cluster)
    }

    /// The loopback address every process of this cluster binds.
    pub fn host(&self) -> Ipv4Addr {
        self.host
    }

    /// The frontend's address (`http://HOST:8001`).
    pub fn frontend_url(&self) -> String {
        format!("http://{}:{FRONTEND_PORT}", self.host)
    }

    /// Server `id`'s address (port 9000 + id).
    pub fn server_url(&self, id: ServerId) -> Result<String, ClusterError> {
        let port = port_for(SERVER_PORT_BASE, id).ok_or(ClusterError::BadId(id))?;
        Ok(format!("http://{}:{port}", self.host))
    }

    /// Client proxy `id`'s address (port 7000 + id).
    pub fn client_url(&self, id: i32) -> Result<String, ClusterError> {
        let port = port_for(CLIENT_PORT_BASE, id).ok_or(ClusterError::BadId(id))?;
        Ok(format!("http://{}:{port}", self.host))
    }

    /// A typed client of the frontend (showing the cluster secret, if set).
    pub fn frontend(&self) -> Result<FrontendClient, ClusterError> {
        let secret = self.secret.as_ref().map(|(_, secret)| secret);
        Ok(FrontendClient::new(&self.frontend_url(), Some(Duration::from_secs(30)))?.with_secret(secret))
    }

    /// A typed client of client proxy `id`.
    pub fn proxy(&self, id: i32) -> Result<ProxyClient, ClusterError> {
        Ok(ProxyClient::new(&self.client_url(id)?, Some(Duration::from_secs(30)))?)
    }

    /// Starts (or restarts) the frontend; returns once it has recovered
    /// (see [`wait_recovered`]), for at most [`RECOVERY_WAIT`].
    pub async fn start_frontend(&mut self) -> Result<(), ClusterError> {
        self.spawn_frontend().await?;
        wait_recovered(&self.frontend()?, RECOVERY_WAIT).await
    }

    /// Starts (or restarts) the frontend; returns once it listens, which a
    /// restarted one does while it still recovers.
    pub async fn spawn_frontend(&mut self) -> Result<(), ClusterError> {
        let host = self.host.to_string();
        let template = format!("http://{host}:{{port}}");
        let mut args = vec!["--bind".to_owned(), host, "--server-url".to_owned(), template];
        args.extend(self.frontend_args.iter().cloned());
        let addr = SocketAddr::new(IpAddr::V4(self.host), FRONTEND_PORT);
        let process = self.spawn("kvs-frontend", "frontend", &args, addr).await?;
        self.frontend = Some(process);
        Ok(())
    }

    /// Starts the next server id and adds it through the frontend.
    pub async fn add_server(&mut self) -> Result<ServerId, ClusterError> {
        let id = self.start_server().await?;
        self.frontend()?.add_server(id).await?;
        Ok(id)
    }

    /// Starts the next server id without telling the frontend.
    pub async fn start_server(&mut self) -> Result<ServerId, ClusterError> {
        let id = self.next_server;
        self.start_server_id(id).await?;
        Ok(id)
    }

    /// Starts server `id` (again, after a kill) without telling the frontend.
    pub async fn start_server_id(&mut self, id: ServerId) -> Result<ServerId, ClusterError> {
        self.start_server_with(id, &[]).await
    }

    /// Starts server `id` with `extra` arguments (e.g. `--join URL`)
    /// without telling the frontend.
    pub async fn start_server_with(&mut self, id: ServerId, extra: &[&str]) -> Result<ServerId, ClusterError> {
        self.next_server = self.next_server.max(id + 1);
        let port = port_for(SERVER_PORT_BASE, id).ok_or(ClusterError::BadId(id))?;
        let mut args = vec![
            "--id".to_owned(),
            id.to_string(),
            "--bind".to_owned(),
            self.host.to_string(),
        ];
        if let Some(dir) = &self.server_data {
            args.push("--data-dir".to_owned());
            args.push(dir.join(format!("server-{id}")).to_string_lossy().into_owned());
        }
        args.extend(extra.iter().map(|arg| (*arg).to_owned()));
        let addr = SocketAddr::new(IpAddr::V4(self.host), port);
        let process = self.spawn("kvs-server", &format!("server {id}"), &args, addr).await?;
        self.servers.insert(id, process);
        Ok(id)
    }

    /// Starts the next client proxy id.
    pub async fn add_client(&mut self) -> Result<i32, ClusterError> {
        let id = self.next_client;
        self.next_client += 1;
        let port = port_for(CLIENT_PORT_BASE, id).ok_or(ClusterError::BadId(id))?;
        let args = vec![
            "--id".to_owned(),
            id.to_string(),
            "--bind".to_owned(),
            self.host.to_string(),
            "--frontend".to_owned(),
            self.frontend_url(),
        ];
        let addr = SocketAddr::new(IpAddr::V4(self.host), port);
        let process = self.spawn("kvs-client", &format!("client {id}"), &args, addr).await?;
        self.clients.insert(id, process);
        Ok(id)
    }

    async fn spawn(
        &self,
        binary: &str,
        what: &str,
        args: &[String],
        addr: SocketAddr,
    ) -> Result<Process, ClusterError> {
        let path = self.bins.path(binary)?;
        let mut command = Command::new(path);
        command.args(args).env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".to_owned()),
        );
        if let Some((secret, _)) = &self.secret {
            command.env("KVS_CLUSTER_SECRET", secret);
        }
        Ok(Process::spawn_listening(command, what, addr).await?)
    }

    /// Kills server `id` with SIGKILL (a crash: the frontend is not told).
    pub async fn kill_server(&mut self, id: ServerId) -> Result<(), ClusterError> {
        let mut process = self
            .servers
            .remove(&id)
            .ok_or_else(|| ClusterError::NoSuchProcess(format!("server {id}")))?;
        process.kill().await.map_err(|source| signal_failed(&process, source))
    }

    /// Whether the frontend process is running (not yet killed).
    pub fn has_frontend(&self) -> bool {
        self.frontend.is_some()
    }

    /// Kills the frontend with SIGKILL.
    pub async fn kill_frontend(&mut self) -> Result<(), ClusterError> {
        let mut process = self
            .frontend
            .take()
            .ok_or_else(|| ClusterError::NoSuchProcess("frontend".into()))?;
        process.kill().await.map_err(|source| signal_failed(&process, source))
    }

    /// Sends a signal by name (`STOP`, `CONT`, …) to the frontend.
    pub fn signal_frontend(&self, signal: &str) -> Result<(), ClusterError> {
        let process = self
            .frontend
            .as_ref()
            .ok_or_else(|| ClusterError::NoSuchProcess("frontend".into()))?;
        process.signal(signal).map_err(|source| signal_failed(process, source))
    }

    /// Sends SIGTERM to server `id` and waits (bounded) for it to exit.
    pub async fn terminate_server(&mut self, id: ServerId) -> Result<Option<ExitStatus>, ClusterError> {
        let mut process = self
            .servers
            .remove(&id)
            .ok_or_else(|| ClusterError::NoSuchProcess(format!("server {id}")))?;
        process
            .signal("TERM")
            .map_err(|source| signal_failed(&process, source))?;
        Ok(process.wait_exit(Duration::from_secs(5)).await)
    }

    /// Waits (bounded) for server `id` to exit on its own, e.g. after `shutdownServer`.
    pub async fn wait_server_exit(
        &mut self,
        id: ServerId,
        limit: Duration,
    ) -> Result<Option<ExitStatus>, ClusterError> {
        let mut process = self
            .servers
            .remove(&id)
            .ok_or_else(|| ClusterError::NoSuchProcess(format!("server {id}")))?;
        let status = process.wait_exit(limit).await;
        if status.is_none() {
            self.servers.insert(id, process);
        }
        Ok(status)
    }

    /// Sends a signal by name (`STOP`, `CONT`, `TERM`, …) to server `id`.
    pub fn signal_server(&self, id: ServerId, signal: &str) -> Result<(), ClusterError> {
        let process = self
            .servers
            .get(&id)
            .ok_or_else(|| ClusterError::NoSuchProcess(format!("server {id}")))?;
        process.signal(signal).map_err(|source| signal_failed(process, source))
    }

    /// Waits (bounded) until the frontend reports server `id` active.
    pub async fn wait_active(&self, id: ServerId, limit: Duration) -> Result<(), ClusterError> {
        wait_active(&self.frontend()?, id, limit).await
    }

    /// Ids of the server processes this cluster still runs.
    pub fn running_servers(&self) -> Vec<ServerId> {
        self.servers.keys().copied().collect()
    }

    /// Server `id`'s process id, if it runs.
    pub fn server_pid(&self, id: ServerId) -> Option<u32> {
        self.servers.get(&id).and_then(|p| p.id())
    }

    /// The frontend's process id, if it runs.
    pub fn frontend_pid(&self) -> Option<u32> {
        self.frontend.as_ref().and_then(|p| p.id())
    }

    /// Process ids of everything still running (for leak checks).
    pub fn pids(&self) -> Vec<u32> {
        self.frontend
            .iter()
            .chain(self.servers.values())
            .chain(self.clients.values())
            .filter_map(|p| p.id())
            .collect()
    }
}

/// A failed kill or signal of `process`, as a cluster error.
fn signal_failed(process: &Process, source: std::io::Error) -> ClusterError {
    ClusterError::Signal {
        what: process.name().to_owned(),
        source,
    }
}

/// How long [`LocalCluster::start_frontend`] waits for a restarted
/// frontend to recover.
pub const RECOVERY_WAIT: Duration = Duration::from_secs(60);

/// Waits (bounded) until `frontend` answers without fault
/// [`NOT_RECOVERED`](kvs_proto::fault::NOT_RECOVERED): a restarted frontend
/// has then found the acknowledged writes (or its operator accepted their loss).
pub async fn wait_recovered(frontend: &FrontendClient, limit: Duration) -> Result<(), ClusterError> {
    let started = tokio::time::Instant::now();
    loop {
        match frontend.cluster_status().await {
            Ok(_) => return Ok(()),
            Err(error)
                if error
                    .fault()
                    .is_some_and(|f| f.code() == kvs_proto::fault::NOT_RECOVERED) =>
            {
                if started.elapsed() >= limit {
                    return Err(ClusterError::NotRecovered {
                        limit,
                        status: error.to_string(),
                    });
                }
            }
            Err(error) => return Err(error.into()),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits (bounded) until `frontend` reports server `id` active.
pub async fn wait_active(frontend: &FrontendClient, id: ServerId, limit: Duration) -> Result<(), ClusterError> {
    let started = tokio::time::Instant::now();
    loop {
        let status = frontend.cluster_status().await?;
        let active = kvs_proto::reply::parse_cluster_status(&status).is_some_and(|[active, _, _]| active.contains(&id));
        if active {
            return Ok(());
        }
        if started.elapsed() >= limit {
            return Err(ClusterError::NotActive { id, limit, status });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Resident memory of a process in KiB (Linux `/proc`), if it can be read.
pub fn resident_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
