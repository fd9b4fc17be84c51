//! The simulated network and the servers behind it.
//!
//! Each server is the real replica logic (`kvs_server::ReplicaService`),
//! reached through [`SimReplica`], the frontend's [`Replica`] in the
//! simulation. Every call is a message: it is delivered after a random
//! delay (so calls overtake each other), sometimes lost, sometimes
//! delivered twice; its reply comes back after another delay, or is lost.
//! A caller that hears nothing gives up after the RPC timeout, as a real
//! HTTP client does. What happens to a message depends on the server's
//! [`Status`] when it arrives: a down server refuses it (the caller learns
//! at once, as from a refused connection), a partitioned one never sees
//! it, a paused one takes it when it resumes. A crash loses the server's
//! state: it comes back empty, with a new boot id, and messages sent to
//! the old process are lost.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kvs_frontend::signal::Signal;
use kvs_frontend::transport::{ConnectError, Connector, ReplicaHandle};
use kvs_proto::batch::Rejoin;
use kvs_proto::digest::Digests;
use kvs_proto::replica::Replica;
use kvs_proto::{Entry, Fence, Key, RpcError, ServerId, Value};
use kvs_server::LocalReplica;
use kvs_server::service::ReplicaService;
use parking_lot::Mutex;
use rand::Rng;
use rand::rngs::StdRng;
use tokio::sync::oneshot;

/// What a server is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Up,
    /// Not running: calls are refused at once.
    Down,
    /// Stopped (SIGSTOP): calls wait until it resumes.
    Paused,
    /// Cut off: calls and replies are lost.
    Partitioned,
}

/// How unreliable the network is, whatever the servers do.
#[derive(Debug, Clone, Copy)]
pub struct Weather {
    /// Longest delay of a message, each way.
    pub max_delay: Duration,
    /// Chance that a message (call or reply) is lost.
    pub loss: f64,
    /// Chance that a call is delivered a second time, later.
    pub duplication: f64,
}

/// One server: the process now running (if any) and what it is doing.
struct Node {
    service: Arc<ReplicaService>,
    /// Which process this is: bumped at every restart.
    incarnation: u64,
    status: Status,
    /// Counts status changes; paused messages wait on it.
    changes: Arc<Signal>,
}

/// The servers and the messages between them and the frontend.
pub struct Network {
    nodes: Mutex<BTreeMap<ServerId, Node>>,
    rng: Arc<Mutex<StdRng>>,
    weather: Weather,
    rpc_timeout: Duration,
    /// Calls made and messages lost or duplicated, for the summary.
    pub counts: Mutex<NetworkCounts>,
}

/// What the network did.
#[derive(Debug, Default, Clone, Copy)]
pub struct NetworkCounts {
    pub calls: u64,
    pub lost: u64,
    pub duplicated: u64,
}

/// One call, runnable once per copy of the message that arrives.
type Call<T> = Arc<dyn Fn(LocalReplica) -> Pin<Box<dyn Future<Output = Result<T, RpcError>> + Send>> + Send + Sync>;

impl Network {
    /// Servers `ids`, up and empty.
    pub fn new(
        ids: impl IntoIterator<Item = ServerId>,
        rng: Arc<Mutex<StdRng>>,
        weather: Weather,
        rpc_timeout: Duration,
    ) -> Arc<Self> {
        let nodes = ids
            .into_iter()
            .map(|id| {
                let node = Node {
                    service: Arc::new(ReplicaService::with_boot(id, format!("sim-{id}-0"))),
                    incarnation: 0,
                    status: Status::Up,
                    changes: Arc::new(Signal::new(0)),
                };
                (id, node)
            })
            .collect();
        Arc::new(Network {
            nodes: Mutex::new(nodes),
            rng,
            weather,
            rpc_timeout,
            counts: Mutex::new(NetworkCounts::default()),
        })
    }

    /// Every server id.
    pub fn ids(&self) -> Vec<ServerId> {
        self.nodes.lock().keys().copied().collect()
    }

    /// What server `id` is doing.
    pub fn status(&self, id: ServerId) -> Option<Status> {
        self.nodes.lock().get(&id).map(|node| node.status)
    }

    /// Sets what server `id` does; going down loses its state, coming up
    /// from down starts an empty process.
    pub fn set_status(&self, id: ServerId, status: Status) {
        let mut nodes = self.nodes.lock();
        let Some(node) = nodes.get_mut(&id) else { return };
        let before = node.status;
        if before == Status::Down && status != Status::Down {
            node.incarnation += 1;
            node.service = Arc::new(ReplicaService::with_boot(id, format!("sim-{id}-{}", node.incarnation)));
        }
        if before != Status::Down && status == Status::Down {
            // Messages on their way to the old process are lost with it.
            node.incarnation += 1;
        }
        node.status = status;
        tracing::info!(target: "kvs_bench::simulate", server = id, ?status, "server status");
        node.changes.raise(node.changes.get() + 1);
    }

    /// The pairs server `id` holds, by key.
    pub fn pairs(&self, id: ServerId) -> Vec<(Key, Value)> {
        self.nodes
            .lock()
            .get(&id)
            .map(|node| node.service.pairs())
            .unwrap_or_default()
    }

    fn chance(&self, p: f64) -> bool {
        p > 0.0 && self.rng.lock().random_bool(p.min(1.0))
    }

    fn delay(&self) -> Duration {
        let max = u64::try_from(self.weather.max_delay.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(self.rng.lock().random_range(0..=max))
    }

    /// Sends one call to server `id` as the frontend with `fence`, and
    /// waits for the reply or the RPC timeout.
    async fn call<T: Send + 'static>(
        self: &Arc<Self>,
        id: ServerId,
        fence: Fence,
        call: Call<T>,
    ) -> Result<T, RpcError> {
        self.counts.lock().calls += 1;
        let unreachable = |reason: &str| RpcError::Unreachable {
            url: format!("sim server {id}"),
            reason: reason.to_owned(),
        };
        let sent_to = {
            let nodes = self.nodes.lock();
            let Some(node) = nodes.get(&id) else {
                return Err(unreachable("no such server"));
            };
            node.incarnation
        };
        let deadline = tokio::time::Instant::now() + self.rpc_timeout;
        let (reply_tx, reply_rx) = oneshot::channel();
        let duplicate = self.chance(self.weather.duplication);
        let network = Arc::clone(self);
        // The message travels on its own: a caller that gives up does not
        // take it back.
        tokio::spawn(async move {
            let copies = if duplicate { 2 } else { 1 };
            if duplicate {
                network.counts.lock().duplicated += 1;
            }
            let mut reply_tx = Some(reply_tx);
            for _ in 0..copies {
                tokio::time::sleep(network.delay()).await;
                let replica = match network.arrive(id, sent_to, fence).await {
                    Arrival::Lost => continue,
                    Arrival::Refused => {
                        if let Some(tx) = reply_tx.take() {
                            let _ = tx.send(Err(Refused));
                        }
                        continue;
                    }
                    Arrival::Delivered(replica) => replica,
                };
                let result = call(replica).await;
                tokio::time::sleep(network.delay()).await;
                if network.chance(network.weather.loss) || network.status(id) == Some(Status::Partitioned) {
                    network.counts.lock().lost += 1;
                    continue;
                }
                if let Some(tx) = reply_tx.take() {
                    let _ = tx.send(Ok(result));
                }
            }
        });
        match tokio::time::timeout_at(deadline, reply_rx).await {
            Ok(Ok(Ok(result))) => result,
            Ok(Ok(Err(Refused))) => Err(unreachable("connection refused")),
            Ok(Err(_)) => {
                // Lost on the way: the caller hears nothing until its timeout.
                tokio::time::sleep_until(deadline).await;
                Err(unreachable("timed out"))
            }
            Err(_) => Err(unreachable("timed out")),
        }
    }

    /// A message for process `sent_to` of server `id` arrives (once the
    /// server resumes, if it is paused).
    async fn arrive(&self, id: ServerId, sent_to: u64, fence: Fence) -> Arrival {
        if self.chance(self.weather.loss) {
            self.counts.lock().lost += 1;
            return Arrival::Lost;
        }
        let Some(changes) = self.nodes.lock().get(&id).map(|node| Arc::clone(&node.changes)) else {
            return Arrival::Refused;
        };
        let mut changed = changes.watch();
        loop {
            let Some(now) = self.status(id) else {
                return Arrival::Refused;
            };
            match now {
                Status::Down => return Arrival::Refused,
                Status::Partitioned => {
                    self.counts.lock().lost += 1;
                    return Arrival::Lost;
                }
                Status::Paused => changed.changed().await,
                Status::Up => {
                    let nodes = self.nodes.lock();
                    return match nodes.get(&id) {
                        Some(node) if node.incarnation == sent_to => {
                            Arrival::Delivered(LocalReplica::new(id, Arc::clone(&node.service), fence))
                        }
                        // Sent to a process that has since died.
                        _ => Arrival::Lost,
                    };
                }
            }
        }
    }
}

/// What became of a message.
enum Arrival {
    Lost,
    Refused,
    Delivered(LocalReplica),
}

/// The server's host answered that nothing listens (a crashed process):
/// the caller hears it at once rather than at its timeout.
struct Refused;

/// Server `id` as the frontend with `fence` reaches it, over the network.
#[derive(Clone)]
pub struct SimReplica {
    id: ServerId,
    fence: Fence,
    address: String,
    network: Arc<Network>,
}

impl std::fmt::Debug for SimReplica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.address)
    }
}

/// Sends `$body` (run on the replica the message reaches) as one call;
/// the listed captures are cloned into every copy of the message.
macro_rules! sim_call {
    ($self:ident, [$($capture:ident),*], |$replica:ident| $body:expr) => {{
        let call: Call<_> = Arc::new(move |$replica: LocalReplica| {
            $(let $capture = $capture.clone();)*
            Box::pin(async move { $body })
        });
        $self.network.call($self.id, $self.fence, call).await
    }};
}

#[async_trait]
impl Replica for SimReplica {
    fn address(&self) -> &str {
        &self.address
    }
    async fn apply_batch(&self, stable: u64, entries: &[Entry]) -> Result<i32, RpcError> {
        let entries: Arc<[Entry]> = entries.into();
        sim_call!(self, [entries], |replica| replica.apply_batch(stable, &entries).await)
    }
    async fn heartbeat(&self) -> Result<String, RpcError> {
        sim_call!(self, [], |replica| replica.heartbeat().await)
    }
    async fn reset_store(&self, force: bool, serial: i32) -> Result<i32, RpcError> {
        sim_call!(self, [], |replica| replica.reset_store(force, serial).await)
    }
    async fn rejoin(&self, serial: i32) -> Result<Rejoin, RpcError> {
        sim_call!(self, [], |replica| replica.rejoin(serial).await)
    }
    async fn dump_page(&self, start_key: Key, limit: i32) -> Result<Vec<Entry>, RpcError> {
        sim_call!(self, [], |replica| replica.dump_page(start_key, limit).await)
    }
    async fn digest(&self) -> Result<Digests, RpcError> {
        sim_call!(self, [], |replica| replica.digest().await)
    }
    async fn print_kv_pairs(&self) -> Result<String, RpcError> {
        sim_call!(self, [], |replica| replica.print_kv_pairs().await)
    }
    async fn shutdown(&self) -> Result<String, RpcError> {
        let reply = sim_call!(self, [], |replica| replica.shutdown().await);
        if reply.is_ok() {
            // The process exits once it has answered.
            self.network.set_status(self.id, Status::Down);
        }
        reply
    }
}

/// Gives the frontend a [`SimReplica`] for any server id.
pub struct SimConnector(pub Arc<Network>);

impl Connector for SimConnector {
    fn connect(&self, id: ServerId, fence: Fence) -> Result<ReplicaHandle, ConnectError> {
        Ok(Arc::new(SimReplica {
            id,
            fence,
            address: format!("sim server {id}"),
            network: Arc::clone(&self.0),
        }))
    }
}
