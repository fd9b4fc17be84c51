//! A kvs cluster of local processes for tests and tools: the real
//! `kvs-frontend`, `kvs-server` and `kvs-client` binaries on their own
//! loopback address, started, signalled, killed and reaped by id.
//!
//! - [`process`]: one child process ([`Process`]), the only process type;
//! - [`local`]: a whole cluster ([`LocalCluster`]) and where its binaries are.

#![warn(missing_docs)]

pub mod local;
pub mod process;

pub use local::{Binaries, ClusterError, LocalCluster, resident_kib, unique_loopback, wait_active};
pub use process::{Process, StartError, ensure_free};
