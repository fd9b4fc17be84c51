//! How the frontend reaches its replicas: the seam between the protocol and
//! the network.
//!
//! Every call the protocol makes to a server goes through kvs-proto's
//! [`Replica`] trait, and every replica comes from a [`Connector`].
//! [`HttpConnector`] is the real one: XML-RPC over HTTP through
//! [`ServerClient`], and writes over each server's replication stream. Tests and the simulator give the same frontend code
//! in-process servers instead (`kvs_server::LocalReplica`), with faults of
//! their choosing, in simulated time.

use std::sync::Arc;
use std::time::Duration;

use kvs_proto::auth::ClusterSecret;
pub use kvs_proto::replica::Replica;
use kvs_proto::{Fence, RpcError, ServerClient, ServerId};
use thiserror::Error;

/// A replica shared by the tasks that call it.
pub type ReplicaHandle = Arc<dyn Replica>;

/// Why server `id` cannot be connected to.
#[derive(Debug, Error)]
pub enum ConnectError {
    #[error("server id {0} gives no valid address")]
    BadId(ServerId),
    #[error("server {id}: {source}")]
    Client { id: ServerId, source: RpcError },
}

/// Gives the replica of a server id, calling as `fence`.
pub trait Connector: Send + Sync {
    fn connect(&self, id: ServerId, fence: Fence) -> Result<ReplicaHandle, ConnectError>;
}

/// How `applyBatch` reaches a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BatchTransport {
    /// The server's replication stream (`kvs_proto::stream`).
    Stream,
    /// One XML-RPC call per batch.
    XmlRpc,
}

/// Servers over XML-RPC: server `id` listens on `port_base + id` at the
/// host of `server_url`; batches go as `batch_transport` says.
#[derive(Debug, Clone)]
pub struct HttpConnector {
    pub server_url: String,
    pub port_base: u16,
    pub timeout: Duration,
    pub secret: Option<ClusterSecret>,
    pub batch_transport: BatchTransport,
}

impl HttpConnector {
    /// The URL of server `id`, if the id maps to a valid port.
    pub fn url_of(&self, id: ServerId) -> Option<String> {
        kvs_proto::addr::server_url(&self.server_url, self.port_base, id)
    }
}

impl Connector for HttpConnector {
    fn connect(&self, id: ServerId, fence: Fence) -> Result<ReplicaHandle, ConnectError> {
        let url = self.url_of(id).ok_or(ConnectError::BadId(id))?;
        let client = ServerClient::new(&url, Some(self.timeout))
            .map_err(|source| ConnectError::Client { id, source })?
            .with_secret(self.secret.as_ref())
            .with_fence(fence);
        let client = match self.batch_transport {
            BatchTransport::Stream => client
                .with_batch_stream()
                .map_err(|source| ConnectError::Client { id, source })?,
            BatchTransport::XmlRpc => client,
        };
        Ok(Arc::new(client))
    }
}
