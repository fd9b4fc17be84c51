//! `kvs-server`: one replica of the key-value store, as a library.
//!
//! The [`store`] keeps the pairs (durably with a [`data_dir`]: a
//! [`wal`] and [`snapshot`]s), [`following`] decides which frontend's
//! calls are accepted, [`service`] answers the XML-RPC methods, and
//! [`enrolment`] joins and leaves a cluster on the server's own initiative.
//! [`LocalReplica`] is a replica in the caller's own process: the frontend's
//! tests and the simulator drive the real replica logic through it, with no
//! network in between.

pub mod data_dir;
pub mod enrolment;
pub mod following;
pub mod local;
pub mod service;
pub mod snapshot;
pub mod store;
pub mod wal;

pub use local::LocalReplica;
