//! kvs's measuring and fault-injecting tools, as a library so the
//! integration tests drive real clusters with the same code.
//!
//! - [`cluster`]: starts the real `kvs-frontend`, `kvs-server` and
//!   `kvs-client` binaries as local processes, and kills, stops or shuts
//!   them down with real signals;
//! - [`load`]: a closed-loop load generator over the typed frontend client;
//! - [`faults`]: the fault kinds and a seeded schedule of them;
//! - [`check`]: a fault-injection run whose history is checked for
//!   linearizability ([`history`], [`checker`]).

pub mod check;
pub mod checker;
pub mod cluster;
pub mod faults;
pub mod history;
pub mod load;
