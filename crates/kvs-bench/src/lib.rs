//! kvs's measuring and fault-injecting tools, as a library so the
//! integration tests drive real clusters with the same code.
//!
//! - [`cluster`]: starts the real `kvs-frontend`, `kvs-server` and
//!   `kvs-client` binaries as local processes, and kills, stops or shuts
//!   them down with real signals;
//! - [`load`]: a closed-loop load generator over the typed frontend client.

pub mod cluster;
pub mod load;
