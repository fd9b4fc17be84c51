//! Fault codes kvs answers with, beyond those dxr itself produces.
//!
//! The first three are HTTP-like codes for calls that never reached a
//! method (dxr's own for an unknown method; the router's for wrong
//! parameters and a reply that cannot be written); kvs's own refusals use
//! the small codes below, so a caller can tell them apart without parsing
//! the message. Code 7 is retired (it was never sent) and is not reused.

/// Wrong arity or argument types for the method called.
pub const INVALID_PARAMS: i32 = 400;
/// No such method (dxr's code, answered by its dispatch).
pub const UNKNOWN_METHOD: i32 = 404;
/// The reply could not be written as XML-RPC (never expected).
pub const INTERNAL_ERROR: i32 = 500;

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
/// The frontend has restarted and has not found a server holding the
/// acknowledged writes: it answers nothing from the data until one answers
/// or an operator accepts the loss (`acceptDataLoss`).
pub const NOT_RECOVERED: i32 = 14;
/// A `resetStore` or `rejoin` whose serial is not above the last such call
/// the server ran from that frontend: a late or repeated delivery, not run.
pub const STALE_CALL: i32 = 15;
