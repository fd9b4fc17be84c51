//! A server's methods (port 9000+id).
//!
//! `put`, `get`, `printKVPairs` and `shutdownServer` are the course
//! skeleton's. The rest belong to kvs's replication protocol, which the
//! frontend drives: `applyBatch` carries ordered, versioned writes (and the
//! chunks of a snapshot) in the binary form of [`crate::batch`];
//! `heartbeat` is a liveness probe; `resetStore` empties a server before it
//! catches up; `dumpState` pages through a server's versioned pairs when a
//! restarted frontend rebuilds its state. Each of these carries the
//! caller's fence first (`CLUSTER:EPOCH`, see [`crate::fence`]).

use super::rpc_method;
use crate::{Key, Value};

rpc_method! {
    /// Writes the local replica only (course skeleton; not replicated).
    guarded Put = "put"(key: Key, value: Value) -> String
}
rpc_method! {
    /// Reads the local replica: `"KEY:VALUE"`, or a fault if absent.
    Get = "get"(key: Key) -> String
}
rpc_method! {
    /// The local replica, one `key:value` per line, ordered by key.
    PrintKvPairs = "printKVPairs"() -> String
}
rpc_method! {
    /// Replies, then the server stops serving and exits.
    guarded ShutdownServer = "shutdownServer"() -> String
}
rpc_method! {
    /// Applies a batch of versioned writes and records its stable point (see
    /// [`crate::batch`]); each entry replaces the key's value only if its
    /// version is newer. Replies the number of entries decoded.
    guarded ApplyBatch = "applyBatch"(fence: String, entries: Vec<u8>) -> i32
}
rpc_method! {
    /// Liveness probe, and the renewal of the caller's lease; replies
    /// `"alive BOOT"` (see `reply::alive`). Guarded: a newer epoch's
    /// heartbeat takes the server over, which fences out its frontend.
    guarded Heartbeat = "heartbeat"(fence: String) -> String
}
rpc_method! {
    /// Drops every pair (the first step of a catch-up). Replies how many
    /// were dropped. With `force`, the server follows the caller whatever
    /// frontend it followed before (an operator's `adoptServer`). `serial`
    /// numbers the call among the caller's `resetStore` and `rejoin` calls,
    /// increasing: one that is not above the last such call the server ran
    /// from that frontend is a late or repeated delivery, and is refused
    /// ([`crate::fault::STALE_CALL`]) rather than undo what followed it.
    guarded ResetStore = "resetStore"(fence: String, force: bool, serial: i32) -> i32
}
rpc_method! {
    /// The first step of a rejoin by delta: the server forgets every pair
    /// written above its stable point (such a write may never have been
    /// committed), and replies its stable point and the keys it forgot, in
    /// the binary form of [`crate::batch::Rejoin`]. `serial` as for
    /// `resetStore`.
    guarded Rejoin = "rejoin"(fence: String, serial: i32) -> Vec<u8>
}
rpc_method! {
    /// Up to `limit` versioned pairs with key ≥ `start_key`, ordered by key,
    /// in the binary form of [`crate::batch`].
    guarded DumpState = "dumpState"(fence: String, start_key: Key, limit: i32) -> Vec<u8>
}
rpc_method! {
    /// The digests of the server's pairs by key range (see [`crate::digest`]),
    /// for the frontend's scrub.
    guarded Digest = "digest"(fence: String) -> Vec<u8>
}
