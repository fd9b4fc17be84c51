//! The faults `kvs-bench check` injects into a cluster, and a seeded
//! schedule of them, so a failing run can be replayed with the same seed.
//!
//! Each kind is a real action on real processes or containers, through a
//! [`FaultTarget`] (local processes: [`LocalCluster`]; containers:
//! [`crate::check::containers::ContainerCluster`]): SIGKILL a server, start a
//! killed one again under its id, `addServer` a new one, `shutdownServer`
//! one, freeze a server and thaw it later (SIGSTOP/SIGCONT, `docker pause`),
//! cut a server off the network and reconnect it (containers only), SIGKILL
//! the frontend and start it again on the same data folder, and cut the
//! power: SIGKILL every process at once and start them all again on their
//! data folders (durable servers only). Apart from the power cut, the
//! injector never takes down more than `servers - 1` servers at once, so at
//! least one server keeps every acknowledged write (the frontend's recovery
//! guarantee needs one, unless the servers are durable).

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use kvs_proto::{FrontendClient, ServerId};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

use kvs_cluster::local::{ClusterError, LocalCluster};

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
    /// Cut a server off the network, reconnect it some time later
    /// (containers only).
    Partition,
    /// SIGKILL the frontend and every server at once, then start them all
    /// again on their data folders (durable servers only).
    Power,
}

impl FaultKind {
    /// Every kind a container cluster supports.
    pub const ALL: [FaultKind; 7] = [
        FaultKind::Kill,
        FaultKind::Restart,
        FaultKind::Add,
        FaultKind::Shutdown,
        FaultKind::Pause,
        FaultKind::Frontend,
        FaultKind::Partition,
    ];
    /// Every kind a local cluster of in-memory servers supports (durable
    /// servers take [`FaultKind::Power`] too).
    pub const LOCAL: [FaultKind; 6] = [
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
    Partitioned { server: ServerId, for_ms: u64 },
    PowerCut { servers: Vec<ServerId>, down_ms: u64 },
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Killed(id) => write!(f, "SIGKILL server {id}"),
            Fault::Restarted(id) => write!(f, "restart server {id}"),
            Fault::Added(id) => write!(f, "addServer {id}"),
            Fault::ShutDown(id) => write!(f, "shutdownServer {id}"),
            Fault::Paused { server, for_ms } => write!(f, "freeze server {server} for {for_ms} ms"),
            Fault::Partitioned { server, for_ms } => write!(f, "cut server {server} off the network for {for_ms} ms"),
            Fault::FrontendRestarted { down_ms } => write!(f, "SIGKILL frontend, restart after {down_ms} ms"),
            Fault::PowerCut { servers, down_ms } => write!(
                f,
                "power cut: SIGKILL frontend and servers {servers:?}, restart all after {down_ms} ms"
            ),
        }
    }
}

/// What the injector needs of a cluster: real actions on its processes or
/// containers. Generic code drives it from one task, so its futures need
/// not be `Send`.
#[allow(async_fn_in_trait)]
pub trait FaultTarget {
    /// Where clients reach the frontend.
    fn frontend_url(&self) -> String;
    /// Ids of the servers still running (killed or shut down ones are not).
    fn running_servers(&self) -> Vec<ServerId>;
    /// Whether [`FaultTarget::partition_server`] is possible here.
    fn can_partition(&self) -> bool {
        false
    }
    /// Starts (or restarts) the frontend; returns once it answers.
    async fn start_frontend(&mut self) -> Result<(), ClusterError>;
    /// SIGKILLs the frontend.
    async fn kill_frontend(&mut self) -> Result<(), ClusterError>;
    /// Starts the next server id and adds it through the frontend.
    async fn add_server(&mut self) -> Result<ServerId, ClusterError>;
    /// Starts server `id` again (after a kill), without telling the frontend.
    async fn restart_server(&mut self, id: ServerId) -> Result<(), ClusterError>;
    /// SIGKILLs server `id` (a crash: the frontend is not told).
    async fn kill_server(&mut self, id: ServerId) -> Result<(), ClusterError>;
    /// Waits (bounded) for server `id` to exit by itself; true if it did.
    async fn wait_server_exit(&mut self, id: ServerId, limit: Duration) -> Result<bool, ClusterError>;
    /// Freezes server `id`: it keeps its connections but answers nothing.
    async fn pause_server(&mut self, id: ServerId) -> Result<(), ClusterError>;
    /// Thaws a frozen server.
    async fn resume_server(&mut self, id: ServerId) -> Result<(), ClusterError>;
    /// Cuts server `id` off the network.
    async fn partition_server(&mut self, id: ServerId) -> Result<(), ClusterError> {
        Err(ClusterError::NoSuchProcess(format!(
            "partition of server {id}: not on this cluster"
        )))
    }
    /// SIGKILLs the frontend and every running server at once, waits
    /// `down`, and starts them all again on their data folders; returns
    /// the servers it restarted. Only for durable servers.
    async fn power_cut(&mut self, down: Duration) -> Result<Vec<ServerId>, ClusterError> {
        let _ = down;
        Err(ClusterError::NoSuchProcess("power cut: not on this cluster".to_owned()))
    }
    /// Reconnects a server cut off by [`FaultTarget::partition_server`].
    async fn heal_server(&mut self, id: ServerId) -> Result<(), ClusterError> {
        Err(ClusterError::NoSuchProcess(format!(
            "heal of server {id}: not on this cluster"
        )))
    }
    /// A typed client of the frontend.
    fn frontend(&self) -> Result<FrontendClient, ClusterError> {
        Ok(FrontendClient::new(
            &self.frontend_url(),
            Some(Duration::from_secs(30)),
        )?)
    }
    /// Waits (bounded) until the frontend reports server `id` active.
    async fn wait_active(&self, id: ServerId, limit: Duration) -> Result<(), ClusterError> {
        kvs_cluster::local::wait_active(&self.frontend()?, id, limit).await
    }
}

impl FaultTarget for LocalCluster {
    fn frontend_url(&self) -> String {
        LocalCluster::frontend_url(self)
    }
    fn running_servers(&self) -> Vec<ServerId> {
        LocalCluster::running_servers(self)
    }
    async fn start_frontend(&mut self) -> Result<(), ClusterError> {
        LocalCluster::start_frontend(self).await
    }
    async fn kill_frontend(&mut self) -> Result<(), ClusterError> {
        LocalCluster::kill_frontend(self).await
    }
    async fn add_server(&mut self) -> Result<ServerId, ClusterError> {
        LocalCluster::add_server(self).await
    }
    async fn restart_server(&mut self, id: ServerId) -> Result<(), ClusterError> {
        self.start_server_id(id).await.map(|_| ())
    }
    async fn kill_server(&mut self, id: ServerId) -> Result<(), ClusterError> {
        LocalCluster::kill_server(self, id).await
    }
    async fn wait_server_exit(&mut self, id: ServerId, limit: Duration) -> Result<bool, ClusterError> {
        Ok(LocalCluster::wait_server_exit(self, id, limit).await?.is_some())
    }
    async fn pause_server(&mut self, id: ServerId) -> Result<(), ClusterError> {
        self.signal_server(id, "STOP")
    }
    async fn resume_server(&mut self, id: ServerId) -> Result<(), ClusterError> {
        self.signal_server(id, "CONT")
    }
    async fn power_cut(&mut self, down: Duration) -> Result<Vec<ServerId>, ClusterError> {
        if !self.durable_servers() {
            return Err(ClusterError::NoSuchProcess(
                "power cut: the servers have no data folders".to_owned(),
            ));
        }
        let servers = LocalCluster::running_servers(self);
        LocalCluster::kill_frontend(self).await?;
        for id in &servers {
            LocalCluster::kill_server(self, *id).await?;
        }
        tokio::time::sleep(down).await;
        for id in &servers {
            self.start_server_id(*id).await?;
        }
        LocalCluster::start_frontend(self).await?;
        Ok(servers)
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
    pub async fn inject(&mut self, cluster: &mut impl FaultTarget) -> Result<Option<Fault>, ClusterError> {
        let running = cluster.running_servers();
        let can_take_one_down = running.len() > 1 && self.killed.len() < self.max_down;
        let applicable: Vec<FaultKind> = self
            .kinds
            .iter()
            .copied()
            .filter(|kind| match kind {
                FaultKind::Kill | FaultKind::Shutdown | FaultKind::Pause => can_take_one_down,
                FaultKind::Partition => can_take_one_down && cluster.can_partition(),
                FaultKind::Restart => !self.killed.is_empty(),
                FaultKind::Add | FaultKind::Frontend | FaultKind::Power => true,
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
                cluster.restart_server(id).await?;
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
                cluster.pause_server(server).await?;
                tokio::time::sleep(Duration::from_millis(for_ms)).await;
                cluster.resume_server(server).await?;
                Fault::Paused { server, for_ms }
            }
            FaultKind::Partition => {
                let server = self.pick(&running)?;
                let for_ms = self.rng.random_range(300..=3000);
                cluster.partition_server(server).await?;
                tokio::time::sleep(Duration::from_millis(for_ms)).await;
                cluster.heal_server(server).await?;
                Fault::Partitioned { server, for_ms }
            }
            FaultKind::Frontend => {
                let down_ms = self.rng.random_range(50..=800);
                cluster.kill_frontend().await?;
                tokio::time::sleep(Duration::from_millis(down_ms)).await;
                cluster.start_frontend().await?;
                Fault::FrontendRestarted { down_ms }
            }
            FaultKind::Power => {
                let down_ms = self.rng.random_range(50..=800);
                let servers = cluster.power_cut(Duration::from_millis(down_ms)).await?;
                for id in &servers {
                    cluster.wait_active(*id, Duration::from_secs(15)).await?;
                }
                Fault::PowerCut { servers, down_ms }
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
