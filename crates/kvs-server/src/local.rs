//! A replica in the caller's own process: the real [`ReplicaService`]
//! reached by calling its method handlers directly, with the same fence
//! checks, batch encoding and faults as over the network, but no HTTP.
//! The frontend's protocol tests and the simulator use it as their
//! [`Replica`]; whatever network faults they want, they add around it.

use std::sync::Arc;

use async_trait::async_trait;
use kvs_proto::api::server::{
    ApplyBatch, Digest, DumpState, Heartbeat, PrintKvPairs, Rejoin as RejoinCall, ResetStore, ShutdownServer,
};
use kvs_proto::batch::Rejoin;
use kvs_proto::digest::Digests;
use kvs_proto::replica::Replica;
use kvs_proto::serve::Handle;
use kvs_proto::{Entry, Fence, Key, RpcError, batch};

use crate::service::ReplicaService;

/// The replica `service`, called as the frontend with `fence`.
#[derive(Debug, Clone)]
pub struct LocalReplica {
    service: Arc<ReplicaService>,
    fence: String,
    address: String,
}

impl LocalReplica {
    /// Calls `service` (server `id`) as the frontend with `fence`.
    pub fn new(id: i32, service: Arc<ReplicaService>, fence: Fence) -> Self {
        LocalReplica {
            service,
            fence: fence.to_wire(),
            address: format!("local server {id}"),
        }
    }

    /// The replica this calls.
    pub fn service(&self) -> &Arc<ReplicaService> {
        &self.service
    }

    fn bad_reply(&self, reason: impl ToString) -> RpcError {
        RpcError::BadReply {
            url: self.address.clone(),
            reason: reason.to_string(),
        }
    }
}

#[async_trait]
impl Replica for LocalReplica {
    fn address(&self) -> &str {
        &self.address
    }

    async fn apply_batch(&self, stable: u64, entries: &[Entry]) -> Result<i32, RpcError> {
        let call = ApplyBatch {
            fence: self.fence.clone(),
            entries: batch::encode_batch(stable, entries),
        };
        Ok(self.service.handle(call).await?)
    }

    async fn heartbeat(&self) -> Result<String, RpcError> {
        let fence = self.fence.clone();
        Ok(self.service.handle(Heartbeat { fence }).await?)
    }

    async fn reset_store(&self, force: bool, serial: i32) -> Result<i32, RpcError> {
        let fence = self.fence.clone();
        Ok(self.service.handle(ResetStore { fence, force, serial }).await?)
    }

    async fn rejoin(&self, serial: i32) -> Result<Rejoin, RpcError> {
        let fence = self.fence.clone();
        let bytes = self.service.handle(RejoinCall { fence, serial }).await?;
        Rejoin::decode(&bytes).map_err(|e| self.bad_reply(e))
    }

    async fn dump_page(&self, start_key: Key, limit: i32) -> Result<Vec<Entry>, RpcError> {
        let call = DumpState {
            fence: self.fence.clone(),
            start_key,
            limit,
        };
        let bytes = self.service.handle(call).await?;
        batch::decode(&bytes).map_err(|e| self.bad_reply(e))
    }

    async fn digest(&self) -> Result<Digests, RpcError> {
        let fence = self.fence.clone();
        let bytes = self.service.handle(Digest { fence }).await?;
        Digests::decode(&bytes).map_err(|e| self.bad_reply(e))
    }

    async fn print_kv_pairs(&self) -> Result<String, RpcError> {
        Ok(self.service.handle(PrintKvPairs {}).await?)
    }

    async fn shutdown(&self) -> Result<String, RpcError> {
        Ok(self.service.handle(ShutdownServer {}).await?)
    }
}
