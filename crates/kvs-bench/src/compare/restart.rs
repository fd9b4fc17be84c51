//! How long a killed frontend takes to serve again (`kvs-bench restart`).
//!
//! Starts a local cluster whose frontend keeps a data folder (in a scratch
//! folder), adds `servers` servers and writes `keys` distinct keys
//! (value = key). Then, `repeats` times: kills the frontend with SIGKILL,
//! starts it again on the same folder and times how long until a `get` of
//! a key written last answers that key's value — recovery (reading the
//! servers, resending what differs), taking the servers over, and the
//! first read lease included. Each restart's time is reported; the median
//! is the figure.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use kvs_cluster::local::{Binaries, ClusterError, LocalCluster};
use kvs_proto::{RpcError, reply};
use thiserror::Error;

use super::footprint::{FootprintError, write_keys, writers};

/// How long one restart may take before the measurement gives up.
const RESTART_LIMIT: Duration = Duration::from_secs(120);
/// Pause between two tries of the first read.
const POLL: Duration = Duration::from_millis(5);

/// What was measured.
#[derive(Debug, Clone)]
pub struct Restarts {
    pub keys: u32,
    pub servers: usize,
    /// From the kill to the first correct read, for each restart.
    pub times: Vec<Duration>,
}

impl Restarts {
    /// The median restart time.
    pub fn median(&self) -> Duration {
        let mut times = self.times.clone();
        times.sort_unstable();
        times.get(times.len() / 2).copied().unwrap_or_default()
    }
}

/// Why the measurement could not be made.
#[derive(Debug, Error)]
pub enum RestartError {
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error(transparent)]
    Rpc(#[from] RpcError),
    #[error(transparent)]
    Load(#[from] FootprintError),
    #[error("the restarted frontend did not serve within {0:?}")]
    TooSlow(Duration),
    #[error("the restarted frontend answered {got:?} for key {key}, not its value")]
    WrongValue { key: i32, got: String },
}

/// Measures `repeats` restarts of a frontend leading `servers` servers that
/// hold `keys` keys; the frontend's data folder is a scratch one, removed
/// at the end.
pub async fn measure(
    bins: Binaries,
    keys: u32,
    servers: usize,
    repeats: usize,
    connections: u32,
) -> Result<Restarts, RestartError> {
    let data = scratch();
    // The cluster (and its processes) ends with this block, before the
    // folder is removed.
    let outcome = async {
        let data_arg = data.to_string_lossy().into_owned();
        let mut cluster = LocalCluster::new(bins).with_frontend_args(&["--data-dir", &data_arg]);
        cluster.start_frontend().await?;
        for _ in 0..servers {
            cluster.add_server().await?;
        }
        let writers = writers(&cluster.frontend_url(), connections.max(1))?;
        write_keys(&writers, 0..keys).await?;
        drop(writers);
        let probe_key = i32::try_from(keys.saturating_sub(1)).unwrap_or(i32::MAX);
        let expected = reply::pair(probe_key, probe_key);
        let mut times = Vec::new();
        for _ in 0..repeats.max(1) {
            let killed = Instant::now();
            cluster.kill_frontend().await?;
            cluster.spawn_frontend().await?;
            let frontend = cluster.frontend()?;
            loop {
                match frontend.get(probe_key).await {
                    Ok(got) if got == expected => break,
                    Ok(got) => return Err(RestartError::WrongValue { key: probe_key, got }),
                    // Not recovered yet, or no read lease yet: try again.
                    Err(error) if error.fault().is_some() => {}
                    Err(error) => return Err(error.into()),
                }
                if killed.elapsed() > RESTART_LIMIT {
                    return Err(RestartError::TooSlow(RESTART_LIMIT));
                }
                tokio::time::sleep(POLL).await;
            }
            times.push(killed.elapsed());
        }
        Ok(Restarts { keys, servers, times })
    }
    .await;
    let _ = std::fs::remove_dir_all(&data);
    outcome
}

/// A fresh scratch folder for the frontend's data.
fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kvs-bench-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}
