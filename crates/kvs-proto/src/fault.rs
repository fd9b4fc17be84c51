//! Fault codes kvs answers with, beyond those dxr itself produces.
//!
//! dxr answers an unknown method with 404 and a wrong arity or argument type
//! with its own invalid-parameter code; kvs's own refusals use the codes
//! below, so a caller can tell them apart without parsing the message.

/// The key was never written (frontend and server `get`).
pub const KEY_NOT_FOUND: i32 = 1;
/// The server id is not a member of the cluster.
pub const UNKNOWN_SERVER: i32 = 2;
/// No active server could take the write: it was not stored.
pub const NO_ACTIVE_SERVER: i32 = 3;
/// The server id is already a member (`addServer`).
pub const ALREADY_MEMBER: i32 = 4;
/// A server could not be reached or did not answer in time.
pub const SERVER_UNREACHABLE: i32 = 5;
/// The request was well formed but cannot be carried out (bad batch, bad id).
pub const INVALID_REQUEST: i32 = 6;
/// The process is shutting down.
pub const SHUTTING_DOWN: i32 = 7;
/// The request body was not a valid XML-RPC call.
pub const PARSE_ERROR: i32 = 8;
/// The method changes data or membership and the call did not show the
/// cluster secret (see [`crate::auth`]).
pub const UNAUTHORIZED: i32 = 9;
/// A newer frontend of the same cluster leads: the caller (or, from the
/// frontend, this frontend) has been superseded and no longer serves.
pub const SUPERSEDED: i32 = 10;
/// The server follows another cluster's frontend; `adoptServer` takes it over.
pub const OTHER_CLUSTER: i32 = 11;
/// The server's current frontend holds a lease on it: a newer one retries.
pub const LEASE_HELD: i32 = 12;
/// The frontend's data folder cannot record a membership change: it
/// commits nothing and refuses puts until it can (a disk full, read-only
/// or failing). Puts in flight wait; reads are still answered.
pub const NOT_RECORDED: i32 = 13;
