//! Memory per key and catch-up time at scale (`kvs-bench footprint`).
//!
//! Starts a local cluster with one server, writes `keys` distinct keys
//! (value = key) over many connections, then reads the resident memory of the
//! frontend and the server (Linux `/proc`), and times `addServer` of a fresh
//! server: the full catch-up of every pair. The new server's resident memory
//! is read right after and again a second later, when it has settled what it
//! received; then its pair count is read back with `dumpState` to make sure
//! the catch-up was complete.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kvs_proto::{FrontendClient, RpcError, ServerClient};
use thiserror::Error;

use kvs_cluster::local::{Binaries, ClusterError, LocalCluster, resident_kib};

/// Bytes of one raw pair on the wire: a 32-bit key and a 32-bit value.
pub const RAW_PAIR_BYTES: f64 = 8.0;

/// How long after its catch-up the added server is measured again.
pub const SETTLE_WAIT: Duration = Duration::from_secs(1);

/// What was measured.
#[derive(Debug, Clone)]
pub struct Footprint {
    pub keys: u32,
    pub load_time: Duration,
    /// Resident memory before any write and after all writes, KiB.
    pub frontend_kib: (u64, u64),
    pub server_kib: (u64, u64),
    /// Resident memory after the first tenth of the keys and after all of
    /// them, each read [`SETTLE_WAIT`] after its writes, with the writers'
    /// connections still open: the frontend and the server.
    pub frontend_marginal_kib: (u64, u64),
    pub server_marginal_kib: (u64, u64),
    /// Resident memory of the added server right after its catch-up, and
    /// [`SETTLE_WAIT`] later (once it has been told the stable point and
    /// has dropped the versions it needed during the catch-up), KiB.
    pub added_server_kib: (u64, u64),
    pub catch_up: Duration,
}

impl Footprint {
    /// Bytes per key added by the writes, for (idle, loaded) KiB figures.
    pub fn bytes_per_key(&self, (idle, loaded): (u64, u64)) -> f64 {
        loaded.saturating_sub(idle) as f64 * 1024.0 / f64::from(self.keys.max(1))
    }

    /// Bytes per key from a tenth of the keys to all of them, for
    /// (tenth, all) KiB figures: what one more key costs, without the
    /// fixed cost of serving a load (connections, buffers, the log's
    /// bounded tail).
    pub fn marginal_bytes_per_key(&self, (tenth, all): (u64, u64)) -> f64 {
        let added = self.keys - self.keys / 10;
        all.saturating_sub(tenth) as f64 * 1024.0 / f64::from(added.max(1))
    }
}

/// Why the measurement could not be made.
#[derive(Debug, Error)]
pub enum FootprintError {
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error(transparent)]
    Rpc(#[from] RpcError),
    #[error("cannot read the resident memory of {0}")]
    NoMemoryFigure(&'static str),
    #[error("the added server holds {held} pairs, not {expected}")]
    IncompleteCatchUp { held: usize, expected: u32 },
    #[error("a writer task failed: {0}")]
    Task(String),
}

/// Measures memory per key and catch-up time with `keys` keys.
pub async fn measure(bins: Binaries, keys: u32, connections: u32) -> Result<Footprint, FootprintError> {
    let mut cluster = LocalCluster::start(bins, 1, 0).await?;
    let frontend_pid = cluster
        .frontend_pid()
        .ok_or(FootprintError::NoMemoryFigure("the frontend"))?;
    let server_pid = cluster
        .server_pid(0)
        .ok_or(FootprintError::NoMemoryFigure("server 0"))?;
    let rss = |pid, what| resident_kib(pid).ok_or(FootprintError::NoMemoryFigure(what));
    let idle = (rss(frontend_pid, "the frontend")?, rss(server_pid, "server 0")?);

    let started = Instant::now();
    let writers = writers(&cluster.frontend_url(), connections.max(1))?;
    write_keys(&writers, 0..keys / 10).await?;
    tokio::time::sleep(SETTLE_WAIT).await;
    let tenth = (rss(frontend_pid, "the frontend")?, rss(server_pid, "server 0")?);
    write_keys(&writers, keys / 10..keys).await?;
    let load_time = started.elapsed().saturating_sub(SETTLE_WAIT);
    let loaded = (rss(frontend_pid, "the frontend")?, rss(server_pid, "server 0")?);
    tokio::time::sleep(SETTLE_WAIT).await;
    let all = (rss(frontend_pid, "the frontend")?, rss(server_pid, "server 0")?);
    drop(writers);

    let id = cluster.start_server().await?;
    let started = Instant::now();
    cluster.frontend()?.add_server(id).await?;
    let catch_up = started.elapsed();
    let added_pid = cluster
        .server_pid(id)
        .ok_or(FootprintError::NoMemoryFigure("the added server"))?;
    let just_added = rss(added_pid, "the added server")?;
    tokio::time::sleep(SETTLE_WAIT).await;
    let added_server_kib = (just_added, rss(added_pid, "the added server")?);
    let added = ServerClient::new(&cluster.server_url(id)?, Some(Duration::from_secs(60)))?;
    // printKVPairs: a plain read (dumpState is for the frontend that leads it).
    let held = added.print_kv_pairs().await?.lines().count();
    if held != keys as usize {
        return Err(FootprintError::IncompleteCatchUp { held, expected: keys });
    }
    Ok(Footprint {
        keys,
        load_time,
        frontend_kib: (idle.0, loaded.0),
        server_kib: (idle.1, loaded.1),
        frontend_marginal_kib: (tenth.0, all.0),
        server_marginal_kib: (tenth.1, all.1),
        added_server_kib,
        catch_up,
    })
}

/// One client per connection of the writers.
pub(crate) fn writers(url: &str, connections: u32) -> Result<Vec<Arc<FrontendClient>>, FootprintError> {
    (0..connections)
        .map(|_| Ok(Arc::new(FrontendClient::new(url, Some(Duration::from_secs(30)))?)))
        .collect()
}

/// Writes keys `keys` (value = key), split over the writers.
pub(crate) async fn write_keys(
    writers: &[Arc<FrontendClient>],
    keys: std::ops::Range<u32>,
) -> Result<(), FootprintError> {
    let count = u32::try_from(writers.len()).unwrap_or(u32::MAX);
    let mut tasks = Vec::new();
    for (writer, frontend) in (0..count).zip(writers) {
        let frontend = Arc::clone(frontend);
        let keys = keys.clone();
        tasks.push(tokio::spawn(async move {
            let mut key = keys.start + writer;
            while key < keys.end {
                let key_i32 = i32::try_from(key).unwrap_or(i32::MAX);
                frontend.put(key_i32, key_i32).await?;
                key += count;
            }
            Ok::<_, RpcError>(())
        }));
    }
    for task in tasks {
        task.await.map_err(|e| FootprintError::Task(e.to_string()))??;
    }
    Ok(())
}
