//! The kvs wire, spelled once.
//!
//! Everything another process can observe lives here: default ports and
//! address templates ([`addr`]), the XML-RPC methods as command types with
//! their argument and reply types ([`api`]), the reply formats the course
//! harness parses ([`reply`]), the binary replication batch ([`batch`]),
//! digests by key range for scrubbing ([`digest`]),
//! the cluster secret guarded methods need ([`auth`]), fencing ([`fence`]),
//! the metrics every process exposes ([`metrics`]),
//! fault codes ([`fault`]), typed async clients ([`client`]), the axum
//! router that serves a set of methods on `/` and `/RPC2` ([`serve`]) and
//! its fast path for plain calls ([`fast_path`]), and the binary
//! replication stream beside it on a server's port ([`stream`]).

#![warn(missing_docs)]

pub mod addr;
pub mod api;
pub mod auth;
pub mod batch;
pub mod client;
pub mod digest;
pub mod fast_path;
pub mod fault;
pub mod fence;
pub mod metrics;
pub mod replica;
pub mod reply;
pub mod rpc;
pub mod serve;
pub mod stream;

pub use auth::ClusterSecret;
pub use batch::Entry;
pub use client::{FrontendClient, ProxyClient, RpcError, ServerClient};
pub use fence::Fence;
pub use rpc::Rpc;

/// A key as it travels on the wire (Python marshals ints as signed 32-bit).
pub type Key = i32;
/// A value as it travels on the wire.
pub type Value = i32;
/// A server id as handed out by the harness (0, 1, 2, …).
pub type ServerId = i32;
