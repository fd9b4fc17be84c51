//! kvs's measuring and fault-injecting tools, as a library so the
//! integration tests drive real clusters with the same code.
//!
//! - [`cluster`]: starts the real `kvs-frontend`, `kvs-server` and
//!   `kvs-client` binaries as local processes, and kills, stops or shuts
//!   them down with real signals;
//! - [`load`]: the load generator (YCSB A–F and the course mix over
//!   [`workload`]'s generators, closed or open loop, over kvs-proto's client
//!   or the leaner [`raw_client`]; open loop paced by [`pacer`]);
//! - [`floor`]: the constant-body XML-RPC responder, the floor to compare with;
//! - [`compare`]: kvs vs the Python seed design ([`baseline`]) vs the floor,
//!   with [`results`] (medians, ratios, verdicts, tables), [`cpu`] (where
//!   the CPU went) and [`plot`]; [`procs`] runs their child processes;
//! - [`commands`]: the `load`, `floor` and `compare` command lines;
//! - [`faults`]: the fault kinds, a seeded schedule of them, and what a
//!   cluster must offer to be broken ([`faults::FaultTarget`]);
//! - [`containers`]: the same cluster as Docker containers on a network of
//!   their own (kills, pauses and partitions of containers);
//! - [`footprint`]: memory per key and catch-up time at 1M keys;
//! - [`check`]: a fault-injection run whose history is checked for
//!   linearizability ([`history`], [`checker`]);
//! - [`simulate`]: the real frontend and replica code in simulated time,
//!   under a seeded scheduler of network and process faults, every history
//!   checked the same way.

pub mod baseline;
pub mod check;
pub mod checker;
pub mod cluster;
pub mod commands;
pub mod compare;
pub mod containers;
pub mod cpu;
pub mod faults;
pub mod floor;
pub mod footprint;
pub mod history;
pub mod load;
pub mod pacer;
pub mod plot;
pub mod procs;
pub mod raw_client;
pub mod results;
pub mod simulate;
pub mod workload;
