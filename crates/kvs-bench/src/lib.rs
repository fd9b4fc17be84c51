//! kvs's measuring and fault-finding tools, as a library so the tests
//! drive them with the same code. One folder per command:
//!
//! - [`load`]: the load generator (YCSB A–F and the course mix, closed or
//!   open loop, over kvs-proto's client or the leaner raw client);
//! - [`compare`]: kvs vs the Python seed design vs the floor responder, with
//!   the tables, verdicts, CPU accounting and plots of a run, and the
//!   memory and catch-up footprint at 1M keys;
//! - [`check`]: a fault-injection run against real processes or containers,
//!   its recorded history, and the linearizability checker;
//! - [`simulate`]: the real frontend and replica code in simulated time,
//!   under a seeded scheduler of network and process faults, every history
//!   checked the same way;
//! - `commands`: the `load`, `floor` and `compare` command lines, with
//!   their progress bars and plots (feature `cli`, on by default: the
//!   product crates' tests use the library without it).
//!
//! Local clusters of the real binaries come from the `kvs-cluster` crate.

pub mod check;
#[cfg(feature = "cli")]
pub mod commands;
pub mod compare;
pub mod load;
pub mod simulate;
