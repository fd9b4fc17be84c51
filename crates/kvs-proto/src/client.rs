//! Typed async XML-RPC clients for the frontend, a server and a client proxy.
//!
//! Each wraps one pooled HTTP/1.1 client (keep-alive, so a busy caller reuses
//! its connections) with an optional per-call timeout. Plain calls and
//! replies are written and read by [`crate::fast_path`]; dxr (through
//! `dxr_client`'s helpers) handles every other shape, faults among them. Calls take the method
//! types of [`crate::api`]; faults come back as [`RpcError::Fault`], so a
//! caller can tell "the peer said no" from "the peer did not answer".

use std::time::Duration;

use dxr::{Fault, MethodCall, TryFromValue};
use dxr_client::utils::{request_to_body, response_to_result};
use thiserror::Error;

use crate::api::{frontend, server};
use crate::auth::ClusterSecret;
use crate::batch::{self, Entry, Rejoin};
use crate::digest::Digests;
use crate::fast_path;
use crate::fence::Fence;
use crate::rpc::Rpc;
use crate::stream::BatchStream;
use crate::{Key, ServerId, Value};

/// Why a call did not return a reply.
#[derive(Debug, Error)]
pub enum RpcError {
    /// The peer answered with an XML-RPC fault.
    #[error("fault {}: {}", .0.code(), .0.string())]
    Fault(Fault),
    /// The peer could not be reached, or did not answer in time.
    #[error("cannot reach {url}: {reason}")]
    Unreachable {
        /// The peer's address.
        url: String,
        /// What the HTTP client said.
        reason: String,
    },
    /// The peer answered with something that is not the expected reply.
    #[error("bad reply from {url}: {reason}")]
    BadReply {
        /// The peer's address.
        url: String,
        /// What was wrong with the reply.
        reason: String,
    },
    /// The address is not a valid URL.
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl {
        /// The address given.
        url: String,
        /// Why it is not a URL.
        reason: String,
    },
}

/// A fault answered in-process (see `kvs_server::LocalReplica`) reaches
/// the caller as one answered over HTTP would.
impl From<Fault> for RpcError {
    fn from(fault: Fault) -> Self {
        RpcError::Fault(fault)
    }
}

impl RpcError {
    /// The fault, if the peer answered with one.
    pub fn fault(&self) -> Option<&Fault> {
        match self {
            RpcError::Fault(fault) => Some(fault),
            _ => None,
        }
    }
}

/// One peer's address and a pooled connection to it.
#[derive(Debug)]
pub struct RpcClient {
    url: String,
    parsed: reqwest::Url,
    http: reqwest::Client,
    /// The `Authorization` header showing the cluster secret, if one is set.
    auth: Option<reqwest::header::HeaderValue>,
    /// How long a call may take, if bounded.
    timeout: Option<Duration>,
}

impl RpcClient {
    /// A client for the XML-RPC endpoint at `url`; every call gives up after
    /// `timeout` if one is set.
    pub fn new(url: &str, timeout: Option<Duration>) -> Result<Self, RpcError> {
        let invalid = |reason: String| RpcError::InvalidUrl {
            url: url.to_owned(),
            reason,
        };
        let parsed = reqwest::Url::parse(url).map_err(|e| invalid(e.to_string()))?;
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::CONTENT_TYPE,
            reqwest::header::HeaderValue::from_static("text/xml"),
        );
        let mut builder = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(concat!("kvs/", env!("CARGO_PKG_VERSION")))
            .tcp_nodelay(true)
            // Well under the servers' idle keep-alive limit (10 s by
            // default, see `kvs_process::limits`), so a pooled connection is not
            // reused just as the server closes it.
            .pool_idle_timeout(Duration::from_secs(5));
        if let Some(timeout) = timeout {
            builder = builder.timeout(timeout).connect_timeout(timeout);
        }
        let http = builder.build().map_err(|e| invalid(e.to_string()))?;
        Ok(RpcClient {
            url: url.to_owned(),
            parsed,
            http,
            auth: None,
            timeout,
        })
    }

    /// Shows `secret` with every call (see [`crate::auth`]); `None` sends none.
    pub fn with_secret(mut self, secret: Option<&ClusterSecret>) -> Self {
        self.auth = secret.and_then(|secret| {
            let mut value = reqwest::header::HeaderValue::from_str(secret.header_value()).ok()?;
            value.set_sensitive(true);
            Some(value)
        });
        self
    }

    /// The peer's address.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The `Authorization` value this client shows, if any.
    fn credentials(&self) -> Option<&str> {
        self.auth.as_ref().and_then(|value| value.to_str().ok())
    }

    /// Sends one call and waits for its reply. Plain calls and replies (see
    /// [`crate::fast_path`]) skip the general XML (de)serialiser; anything
    /// else goes through dxr's.
    pub async fn call<C: Rpc>(&self, call: &C) -> Result<C::Reply, RpcError> {
        let params = call.to_params().map_err(|e| self.bad_reply(e.to_string()))?;
        let body = match fast_path::write_call(C::METHOD, &params) {
            Some(body) => body,
            None => request_to_body(&MethodCall {
                name: C::METHOD.into(),
                params,
            })
            .map_err(|e| self.bad_reply(e.to_string()))?,
        };
        let unreachable = |error: reqwest::Error| RpcError::Unreachable {
            url: self.url.clone(),
            reason: describe_net_error(&error),
        };
        let mut request = self.http.post(self.parsed.clone()).body(body);
        if let Some(auth) = &self.auth {
            request = request.header(reqwest::header::AUTHORIZATION, auth.clone());
        }
        let response = request.send().await.map_err(unreachable)?;
        let text = response.text().await.map_err(unreachable)?;
        let value = match fast_path::parse_response(&text) {
            Some(value) => value,
            None => match response_to_result(&text) {
                Ok(Ok(response)) => response.value,
                Ok(Err(fault)) => return Err(RpcError::Fault(fault.fault)),
                Err(error) => return Err(self.bad_reply(error.to_string())),
            },
        };
        C::Reply::try_from_value(&value).map_err(|e| self.bad_reply(e.to_string()))
    }

    pub(crate) fn bad_reply(&self, reason: String) -> RpcError {
        RpcError::BadReply {
            url: self.url.clone(),
            reason,
        }
    }
}

/// An operator's probe of the process at `base_url` (e.g. `http://host:8001`):
/// `GET` of `path` (one of [`crate::serve`]'s `/livez`, `/readyz`,
/// `/health`, `/metrics`), returning the HTTP status and body.
pub async fn probe(base_url: &str, path: &str, timeout: Duration) -> Result<(u16, String), RpcError> {
    let url = format!("{}{path}", base_url.trim_end_matches('/'));
    let unreachable = |error: reqwest::Error| RpcError::Unreachable {
        url: url.clone(),
        reason: describe_net_error(&error),
    };
    let http = reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(|e| RpcError::InvalidUrl {
            url: url.clone(),
            reason: e.to_string(),
        })?;
    let response = http.get(&url).send().await.map_err(unreachable)?;
    let status = response.status().as_u16();
    let body = response.text().await.map_err(unreachable)?;
    Ok((status, body))
}

fn describe_net_error(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "connection refused or failed".to_owned()
    } else {
        error.to_string()
    }
}

/// The frontend's API.
#[derive(Debug)]
pub struct FrontendClient(RpcClient);

impl FrontendClient {
    /// A client of the frontend at `url`; `timeout` bounds each call.
    pub fn new(url: &str, timeout: Option<Duration>) -> Result<Self, RpcError> {
        RpcClient::new(url, timeout).map(FrontendClient)
    }
    /// Shows `secret` with every call, for the guarded methods.
    pub fn with_secret(self, secret: Option<&ClusterSecret>) -> Self {
        FrontendClient(self.0.with_secret(secret))
    }
    /// `put(key, value)`: the replicated write (see [`frontend::Put`]).
    pub async fn put(&self, key: Key, value: Value) -> Result<String, RpcError> {
        self.0.call(&frontend::Put { key, value }).await
    }
    /// `get(key)`: the linearizable read (see [`frontend::Get`]).
    pub async fn get(&self, key: Key) -> Result<String, RpcError> {
        self.0.call(&frontend::Get { key }).await
    }
    /// `printKVPairs(serverId)`: one server's pairs, as the server prints them.
    pub async fn print_kv_pairs(&self, server_id: ServerId) -> Result<String, RpcError> {
        self.0.call(&frontend::PrintKvPairs { server_id }).await
    }
    /// `addServer(serverId)`: admits a server (guarded).
    pub async fn add_server(&self, server_id: ServerId) -> Result<String, RpcError> {
        self.0.call(&frontend::AddServer { server_id }).await
    }
    /// `listServer()`: the active servers, as the course prints them.
    pub async fn list_server(&self) -> Result<String, RpcError> {
        self.0.call(&frontend::ListServer {}).await
    }
    /// `shutdownServer(serverId)`: removes a server and stops it (guarded).
    pub async fn shutdown_server(&self, server_id: ServerId) -> Result<String, RpcError> {
        self.0.call(&frontend::ShutdownServer { server_id }).await
    }
    /// `adoptServer(serverId)`: admits a server that follows another frontend (guarded).
    pub async fn adopt_server(&self, server_id: ServerId) -> Result<String, RpcError> {
        self.0.call(&frontend::AdoptServer { server_id }).await
    }
    /// `scrub()`: compares every active server with the committed state now.
    pub async fn scrub(&self) -> Result<String, RpcError> {
        self.0.call(&frontend::Scrub {}).await
    }
    /// `clusterStatus()`: epoch, commit point and every member's state.
    pub async fn cluster_status(&self) -> Result<String, RpcError> {
        self.0.call(&frontend::ClusterStatus {}).await
    }
    /// `acceptDataLoss()`: a restarted frontend waiting for the
    /// acknowledged writes serves what the servers hold now instead.
    pub async fn accept_data_loss(&self) -> Result<String, RpcError> {
        self.0.call(&frontend::AcceptDataLoss {}).await
    }
}

/// A server's API, as the frontend uses it. The replication calls carry
/// the client's [`Fence`] (see [`ServerClient::with_fence`]); `applyBatch`
/// goes over the server's replication stream if asked
/// ([`ServerClient::with_batch_stream`]).
#[derive(Debug)]
pub struct ServerClient {
    rpc: RpcClient,
    /// The caller's identity, in wire form.
    fence: String,
    /// Where `applyBatch` goes instead of XML-RPC, if anywhere.
    stream: Option<BatchStream>,
}

impl ServerClient {
    /// A client with the fence `0:0`: a tool's or a test's, not a frontend's.
    pub fn new(url: &str, timeout: Option<Duration>) -> Result<Self, RpcError> {
        Ok(ServerClient {
            rpc: RpcClient::new(url, timeout)?,
            fence: Fence::new(0, 0).to_wire(),
            stream: None,
        })
    }
    /// Shows `secret` with every call, for the guarded methods.
    pub fn with_secret(self, secret: Option<&ClusterSecret>) -> Self {
        ServerClient {
            rpc: self.rpc.with_secret(secret),
            stream: self.stream.map(BatchStream::unconnected),
            ..self
        }
    }
    /// Sends `applyBatch` over the server's replication stream
    /// ([`crate::stream`]) rather than as an XML-RPC call.
    pub fn with_batch_stream(self) -> Result<Self, RpcError> {
        let stream = BatchStream::new(self.rpc.url(), self.rpc.timeout)?;
        Ok(ServerClient {
            stream: Some(stream),
            ..self
        })
    }
    /// Sends `fence` with every replication call.
    pub fn with_fence(self, fence: Fence) -> Self {
        ServerClient {
            fence: fence.to_wire(),
            stream: self.stream.map(BatchStream::unconnected),
            ..self
        }
    }
    /// The server's address.
    pub fn url(&self) -> &str {
        self.rpc.url()
    }
    /// Ships versioned writes and the stable point (see
    /// [`batch::Batch::stable`]); replies how many entries the server decoded.
    pub async fn apply_batch(&self, stable: u64, entries: &[Entry]) -> Result<i32, RpcError> {
        if let Some(stream) = &self.stream {
            return stream
                .apply_batch(&self.fence, self.rpc.credentials(), stable, entries)
                .await;
        }
        let entries = batch::encode_batch(stable, entries);
        let fence = self.fence.clone();
        self.rpc.call(&server::ApplyBatch { fence, entries }).await
    }
    /// `heartbeat(fence)`: liveness and lease renewal; `alive BOOT`.
    pub async fn heartbeat(&self) -> Result<String, RpcError> {
        let fence = self.fence.clone();
        self.rpc.call(&server::Heartbeat { fence }).await
    }
    /// Empties the server; replies how many pairs it dropped. With `force`
    /// the server follows this client's fence whatever it followed before.
    pub async fn reset_store(&self, force: bool, serial: i32) -> Result<i32, RpcError> {
        let fence = self.fence.clone();
        self.rpc.call(&server::ResetStore { fence, force, serial }).await
    }
    /// Forgets the pairs above the server's stable point; replies that
    /// point and the keys forgotten (the first step of a rejoin by delta).
    pub async fn rejoin(&self, serial: i32) -> Result<Rejoin, RpcError> {
        let fence = self.fence.clone();
        let bytes = self.rpc.call(&server::Rejoin { fence, serial }).await?;
        Rejoin::decode(&bytes).map_err(|e| self.rpc.bad_reply(e.to_string()))
    }
    /// The server's digests by key range.
    pub async fn digest(&self) -> Result<Digests, RpcError> {
        let fence = self.fence.clone();
        let bytes = self.rpc.call(&server::Digest { fence }).await?;
        Digests::decode(&bytes).map_err(|e| self.rpc.bad_reply(e.to_string()))
    }
    /// Up to `limit` versioned pairs with key ≥ `start_key`, ordered by
    /// key (one `dumpState` call; see [`crate::replica::Replica::dump_range`]
    /// for all pairs in a range).
    pub async fn dump_page(&self, start_key: Key, limit: i32) -> Result<Vec<Entry>, RpcError> {
        let call = server::DumpState {
            fence: self.fence.clone(),
            start_key,
            limit,
        };
        let bytes = self.rpc.call(&call).await?;
        batch::decode(&bytes).map_err(|e| self.rpc.bad_reply(e.to_string()))
    }
    /// `put(key, value)` on this replica alone (guarded; not replicated).
    pub async fn put(&self, key: Key, value: Value) -> Result<String, RpcError> {
        self.rpc.call(&server::Put { key, value }).await
    }
    /// `get(key)` from this replica alone.
    pub async fn get(&self, key: Key) -> Result<String, RpcError> {
        self.rpc.call(&server::Get { key }).await
    }
    /// `printKVPairs()`: this replica's pairs, one `key:value` per line.
    pub async fn print_kv_pairs(&self) -> Result<String, RpcError> {
        self.rpc.call(&server::PrintKvPairs {}).await
    }
    /// `shutdownServer()`: the server replies, then exits (guarded).
    pub async fn shutdown(&self) -> Result<String, RpcError> {
        self.rpc.call(&server::ShutdownServer {}).await
    }
}

/// A client proxy's API.
#[derive(Debug)]
pub struct ProxyClient(RpcClient);

impl ProxyClient {
    /// A client of the proxy at `url`; `timeout` bounds each call.
    pub fn new(url: &str, timeout: Option<Duration>) -> Result<Self, RpcError> {
        RpcClient::new(url, timeout).map(ProxyClient)
    }
    /// `put(key, value)`, passed on to the frontend.
    pub async fn put(&self, key: Key, value: Value) -> Result<String, RpcError> {
        self.0.call(&frontend::Put { key, value }).await
    }
    /// `get(key)`, passed on to the frontend.
    pub async fn get(&self, key: Key) -> Result<String, RpcError> {
        self.0.call(&frontend::Get { key }).await
    }
}
