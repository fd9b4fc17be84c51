//! The client proxy's dispatch. The proxy (`kvs-client`) lives in its
//! `main.rs` and forwards every call to a frontend over the network, so this
//! serves the proxy's method table (`kvs_proto::api::proxy`, as its `main`
//! registers it) with a stand-in service that answers locally.

#![no_main]

use std::sync::Arc;

use dxr::Fault;
use kvs_proto::api::proxy::{Get, Put};
use kvs_proto::serve::{Handle, Methods};
use kvs_proto::{fault, reply};
use libfuzzer_sys::fuzz_target;

/// Answers as a frontend holding only key 0 would.
struct StandIn;

impl Handle<Put> for StandIn {
    async fn handle(&self, _call: Put) -> Result<String, Fault> {
        Ok(reply::SUCCESS.to_owned())
    }
}

impl Handle<Get> for StandIn {
    async fn handle(&self, call: Get) -> Result<String, Fault> {
        match call.key {
            0 => Ok(reply::pair(0, 0)),
            key => Err(Fault::new(fault::KEY_NOT_FOUND, format!("key {key} not found"))),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let (_setup, requests) = kvs_fuzz::split_setup(data);
    let secret = kvs_fuzz::secret();
    kvs_fuzz::runtime().block_on(async {
        let proxy = Arc::new(StandIn);
        let router = Methods::new()
            .method::<Put, _>(&proxy)
            .method::<Get, _>(&proxy)
            .into_router();
        let router = kvs_fuzz::as_served(router);
        // The stand-in keeps nothing between calls: it is its own twin.
        kvs_fuzz::serve_all(&router, &router, requests, &secret).await;
    });
});
