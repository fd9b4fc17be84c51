//! A server's API as the frontend's protocol uses it, as a trait: the seam
//! between the replication protocol and the network. [`ServerClient`] is
//! the real replica (XML-RPC over HTTP); `kvs_server::LocalReplica` is a
//! server in the same process, for tests and the simulator.

use async_trait::async_trait;

use crate::batch::Rejoin;
use crate::client::{RpcError, ServerClient};
use crate::digest::Digests;
use crate::{Entry, Key};

/// One server, as the frontend calls it. Replication calls carry the
/// frontend's fence, given when the replica was made.
#[async_trait]
pub trait Replica: Send + Sync + std::fmt::Debug {
    /// Where the server is, for logs and messages.
    fn address(&self) -> &str;
    /// Ships versioned writes and the stable point; replies how many
    /// entries the server took.
    async fn apply_batch(&self, stable: u64, entries: &[Entry]) -> Result<i32, RpcError>;
    /// Checks the server answers and follows this frontend; replies
    /// `alive BOOT` (see `kvs_proto::reply::alive`).
    async fn heartbeat(&self) -> Result<String, RpcError>;
    /// Empties the server; with `force` it follows this frontend whatever
    /// it followed before. Replies how many pairs it dropped. `serial`
    /// numbers this call among the frontend's `reset_store` and `rejoin`
    /// calls, increasing (see `kvs_proto::api::server::ResetStore`).
    async fn reset_store(&self, force: bool, serial: i32) -> Result<i32, RpcError>;
    /// Forgets the pairs written above the server's stable point; replies
    /// that point and the keys forgotten (a rejoin by delta starts so).
    /// `serial` as for [`Replica::reset_store`].
    async fn rejoin(&self, serial: i32) -> Result<Rejoin, RpcError>;
    /// Up to `limit` versioned pairs with key ≥ `start_key`, by key.
    async fn dump_page(&self, start_key: Key, limit: i32) -> Result<Vec<Entry>, RpcError>;
    /// The server's digests by key range.
    async fn digest(&self) -> Result<Digests, RpcError>;
    /// The server's pairs as the course's `printKVPairs` shows them.
    async fn print_kv_pairs(&self) -> Result<String, RpcError>;
    /// Tells the server to exit.
    async fn shutdown(&self) -> Result<String, RpcError>;

    /// The server's versioned pairs with keys in `first ..= last`, by key,
    /// fetched `page` at a time.
    async fn dump_range(&self, first: Key, last: Key, page: i32) -> Result<Vec<Entry>, RpcError> {
        let page = page.max(1);
        let mut entries = Vec::new();
        let mut start_key = first;
        loop {
            let chunk = self.dump_page(start_key, page).await?;
            let full = chunk.len() >= page as usize;
            let next = chunk.last().map(|entry| entry.key);
            entries.extend(chunk.into_iter().take_while(|entry| entry.key <= last));
            match next {
                Some(key) if full && key < last => start_key = key + 1,
                _ => return Ok(entries),
            }
        }
    }

    /// Every versioned pair the server holds, fetched `page` at a time.
    async fn dump_state(&self, page: i32) -> Result<Vec<Entry>, RpcError> {
        self.dump_range(Key::MIN, Key::MAX, page).await
    }
}

#[async_trait]
impl Replica for ServerClient {
    fn address(&self) -> &str {
        self.url()
    }
    async fn apply_batch(&self, stable: u64, entries: &[Entry]) -> Result<i32, RpcError> {
        ServerClient::apply_batch(self, stable, entries).await
    }
    async fn heartbeat(&self) -> Result<String, RpcError> {
        ServerClient::heartbeat(self).await
    }
    async fn reset_store(&self, force: bool, serial: i32) -> Result<i32, RpcError> {
        ServerClient::reset_store(self, force, serial).await
    }
    async fn rejoin(&self, serial: i32) -> Result<Rejoin, RpcError> {
        ServerClient::rejoin(self, serial).await
    }
    async fn dump_page(&self, start_key: Key, limit: i32) -> Result<Vec<Entry>, RpcError> {
        ServerClient::dump_page(self, start_key, limit).await
    }
    async fn digest(&self) -> Result<Digests, RpcError> {
        ServerClient::digest(self).await
    }
    async fn print_kv_pairs(&self) -> Result<String, RpcError> {
        ServerClient::print_kv_pairs(self).await
    }
    async fn shutdown(&self) -> Result<String, RpcError> {
        ServerClient::shutdown(self).await
    }
}
