//! The frontend's methods (port 8001), exactly as the course harness calls them.

use super::rpc_method;
use crate::{Key, ServerId, Value};

rpc_method! {
    /// Writes `key = value`; replies [`crate::reply::SUCCESS`] once every
    /// active server holds it.
    Put = "put"(key: Key, value: Value) -> String
}
rpc_method! {
    /// Reads a key; the reply is `"KEY:VALUE"` (see [`crate::reply::pair`]).
    Get = "get"(key: Key) -> String
}
rpc_method! {
    /// One server's pairs, one `key:value` per line, ordered by key.
    PrintKvPairs = "printKVPairs"(server_id: ServerId) -> String
}
rpc_method! {
    /// Admits a running server: it catches up, then counts as active.
    /// Replies [`crate::reply::SUCCESS`].
    guarded AddServer = "addServer"(server_id: ServerId) -> String
}
rpc_method! {
    /// kvs's own: like `addServer`, for a server that follows another
    /// cluster's frontend (an operator's deliberate takeover): it is emptied
    /// and follows this frontend from then on.
    guarded AdoptServer = "adoptServer"(server_id: ServerId) -> String
}
rpc_method! {
    /// kvs's own: compares every active server with the committed state now
    /// (see the frontend's `scrub`) and readmits any that diverged; replies
    /// what it found, e.g. `"checked 3 servers; 0 diverged"`.
    guarded Scrub = "scrub"() -> String
}
rpc_method! {
    /// kvs's own: tells a restarted frontend that finds no server holding
    /// the acknowledged writes (they all restarted empty, or do not answer)
    /// to stop waiting and serve what the reachable servers hold now,
    /// accepting the loss of the rest. Replies what it did; a frontend that
    /// is not waiting answers that there is nothing to accept.
    guarded AcceptDataLoss = "acceptDataLoss"() -> String
}
rpc_method! {
    /// The member ids as one string, `"0, 1, 2"`.
    ListServer = "listServer"() -> String
}
rpc_method! {
    /// Removes a server from the membership, then makes it exit.
    guarded ShutdownServer = "shutdownServer"(server_id: ServerId) -> String
}
rpc_method! {
    /// kvs's own: who is active, joining and lost, e.g.
    /// `"active: 0, 1; joining: 2; lost: 3"` (see [`crate::reply::cluster_status`]).
    ClusterStatus = "clusterStatus"() -> String
}
