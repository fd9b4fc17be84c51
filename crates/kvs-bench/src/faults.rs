//! The faults `kvs-bench check` injects into a local cluster, and a seeded
//! schedule of them, so a failing run can be replayed with the same seed.
//!
//! Each kind is a real action on real processes: SIGKILL a server, start a
//! killed one again under its id, `addServer` a new one, `shutdownServer`
//! one, SIGSTOP a server and SIGCONT it later, SIGKILL the frontend and start
//! it again on the same data folder. The injector never takes down more than
//! `servers - 1` servers at once, so at least one server keeps every
//! acknowledged write (the frontend's recovery guarantee needs one).

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use kvs_proto::ServerId;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

use crate::cluster::{ClusterError, LocalCluster};

/// A kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum FaultKind {
    /// SIGKILL a server (a crash).
    Kill,
    /// Start a killed server again under its id (it comes back empty).
    Restart,
    /// Start a server with a new id and `addServer` it.
    Add,
    /// `shutdownServer` a server.
    Shutdown,
    /// SIGSTOP a server, SIGCONT it some time later.
    Pause,
    /// SIGKILL the frontend and start it again.
    Frontend,
}

impl FaultKind {
    /// Every kind a local cluster supports.
    pub const ALL: [FaultKind; 6] = [
        FaultKind::Kill,
        FaultKind::Restart,
        FaultKind::Add,
        FaultKind::Shutdown,
        FaultKind::Pause,
        FaultKind::Frontend,
    ];
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use clap::ValueEnum;
        match self.to_possible_value() {
            Some(value) => f.write_str(value.get_name()),
            None => write!(f, "{self:?}"),
        }
    }
}

/// A fault as it was injected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    Killed(ServerId),
    Restarted(ServerId),
    Added(ServerId),
    ShutDown(ServerId),
    Paused { server: ServerId, for_ms: u64 },
    FrontendRestarted { down_ms: u64 },
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Killed(id) => write!(f, "SIGKILL server {id}"),
            Fault::Restarted(id) => write!(f, "restart server {id} (empty)"),
            Fault::Added(id) => write!(f, "addServer {id}"),
            Fault::ShutDown(id) => write!(f, "shutdownServer {id}"),
            Fault::Paused { server, for_ms } => write!(f, "SIGSTOP server {server} for {for_ms} ms"),
            Fault::FrontendRestarted { down_ms } => write!(f, "SIGKILL frontend, restart after {down_ms} ms"),
        }
    }
}

/// Draws faults from a seeded generator and applies them.
pub struct FaultInjector {
    rng: StdRng,
    kinds: Vec<FaultKind>,
    /// Servers killed and not restarted: candidates for `Restart`.
    killed: BTreeSet<ServerId>,
    /// At most this many servers down (killed or shut down) at once.
    max_down: usize,
}

impl FaultInjector {
    /// An injector for a cluster that started with `servers` servers.
    pub fn new(seed: u64, kinds: &[FaultKind], servers: usize) -> Self {
        let mut kinds = kinds.to_vec();
        kinds.sort_unstable();
        kinds.dedup();
        FaultInjector {
            rng: StdRng::seed_from_u64(seed),
            kinds,
            killed: BTreeSet::new(),
            max_down: servers.saturating_sub(1),
        }
    }

    /// The pause before the next fault: uniform in [mean/2, 3·mean/2].
    pub fn next_pause(&mut self, mean: Duration) -> Duration {
        let mean = mean.as_millis().max(2) as u64;
        Duration::from_millis(self.rng.random_range(mean / 2..=mean + mean / 2))
    }

    /// Applies one fault the cluster can take now, if any.
    pub async fn inject(&mut self, cluster: &mut LocalCluster) -> Result<Option<Fault>, ClusterError> {
        let running = cluster.running_servers();
        let can_take_one_down = running.len() > 1 && self.killed.len() < self.max_down;
        let applicable: Vec<FaultKind> = self
            .kinds
            .iter()
            .copied()
            .filter(|kind| match kind {
                FaultKind::Kill | FaultKind::Shutdown | FaultKind::Pause => can_take_one_down,
                FaultKind::Restart => !self.killed.is_empty(),
                FaultKind::Add | FaultKind::Frontend => true,
            })
            .collect();
        let Some(kind) = applicable.choose(&mut self.rng).copied() else {
            return Ok(None);
        };
        let fault = match kind {
            FaultKind::Kill => {
                let id = self.pick(&running)?;
                cluster.kill_server(id).await?;
                self.killed.insert(id);
                Fault::Killed(id)
            }
            FaultKind::Restart => {
                let id = self.pick(&self.killed.iter().copied().collect::<Vec<_>>())?;
                cluster.start_server_id(id).await?;
                self.killed.remove(&id);
                // Readmitted by the frontend's failure detector; wait so the
                // next fault does not find it still catching up.
                cluster.wait_active(id, Duration::from_secs(15)).await?;
                Fault::Restarted(id)
            }
            FaultKind::Add => Fault::Added(cluster.add_server().await?),
            FaultKind::Shutdown => {
                let id = self.pick(&running)?;
                cluster.frontend()?.shutdown_server(id).await?;
                cluster.wait_server_exit(id, Duration::from_secs(5)).await?;
                // Shut down for good: it counts as down, but is never restarted.
                self.max_down = self.max_down.saturating_sub(1);
                Fault::ShutDown(id)
            }
            FaultKind::Pause => {
                let server = self.pick(&running)?;
                let for_ms = self.rng.random_range(300..=2500);
                cluster.signal_server(server, "STOP")?;
                tokio::time::sleep(Duration::from_millis(for_ms)).await;
                cluster.signal_server(server, "CONT")?;
                Fault::Paused { server, for_ms }
            }
            FaultKind::Frontend => {
                let down_ms = self.rng.random_range(50..=800);
                cluster.kill_frontend().await?;
                tokio::time::sleep(Duration::from_millis(down_ms)).await;
                cluster.start_frontend().await?;
                Fault::FrontendRestarted { down_ms }
            }
        };
        Ok(Some(fault))
    }

    fn pick(&mut self, ids: &[ServerId]) -> Result<ServerId, ClusterError> {
        ids.choose(&mut self.rng)
            .copied()
            .ok_or_else(|| ClusterError::NoSuchProcess("no server to pick".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_pauses() {
        let mut a = FaultInjector::new(7, &FaultKind::ALL, 3);
        let mut b = FaultInjector::new(7, &FaultKind::ALL, 3);
        let mean = Duration::from_millis(1000);
        for _ in 0..10 {
            let pause = a.next_pause(mean);
            assert_eq!(pause, b.next_pause(mean));
            assert!(pause >= Duration::from_millis(500) && pause <= Duration::from_millis(1500));
        }
    }
}
