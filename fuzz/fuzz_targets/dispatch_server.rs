//! A server's dispatch: the real `kvs-server` methods (its library) behind
//! the router and body guard it serves, fed arbitrary requests. Each input gets a fresh
//! replica and a twin of it (see `kvs_fuzz`: the twin is sent each call
//! down dxr's path); the requests run in order, so sequences such as a
//! batch after a reset are reached too. Setup byte bit 0: a cluster secret
//! is configured.

#![no_main]

use std::sync::Arc;

use kvs_proto::serve::Probes;
use libfuzzer_sys::fuzz_target;

use kvs_server::service::{self, ReplicaService};

fuzz_target!(|data: &[u8]| {
    let (setup, requests) = kvs_fuzz::split_setup(data);
    let secret = kvs_fuzz::secret();
    kvs_fuzz::runtime().block_on(async {
        // As kvs-server's main builds it (a server without --join; what it
        // refreshes before a metrics scrape is left out: that reads no input).
        let replica = || {
            let service = Arc::new(ReplicaService::new(0));
            let configured = (setup & 1 != 0).then(|| secret.clone());
            kvs_fuzz::as_served(service::methods(&service, configured).into_router_with(Probes::default()))
        };
        kvs_fuzz::serve_all(&replica(), &replica(), requests, &secret).await;
    });
});
