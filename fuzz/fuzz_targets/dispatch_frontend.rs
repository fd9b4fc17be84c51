//! The frontend's dispatch: the real `kvs-frontend` methods (its own
//! modules, compiled here by path: the crate has no library) behind the
//! router, readiness probe and body guard it serves, fed arbitrary requests.
//! Setup byte bit 0: a cluster secret is configured.
//!
//! The frontend has no data folder and no server, and its servers' address
//! template is not a URL: `addServer` and its kin fail before any network
//! call or change, writes and reads are refused (no active server), and
//! everything else answers from memory. Such a frontend does not change
//! from one input to the next, so one is built per secret setting and kept
//! (a frontend registers its metrics in the process-wide registry when
//! built: one per input would grow it, and leak checks, without end).
//!
//! The modules are those `crates/kvs-frontend/src/main.rs` declares (see
//! `fuzz/build.rs`); what they use from `main.rs` itself is repeated below,
//! and a new dependency of theirs goes in `fuzz/Cargo.toml`.

#![no_main]
#![allow(dead_code)]

include!(concat!(env!("OUT_DIR"), "/frontend_modules.rs"));

use std::sync::{Arc, OnceLock};

use axum::Router;
use clap::Parser;
use kvs_proto::Fence;
use kvs_proto::serve::Probes;
use libfuzzer_sys::fuzz_target;

use crate::committed::Committed;
use crate::config::Config;
use crate::service::Frontend;

/// As `kvs-frontend`'s `main.rs` has it (the recovery module calls it).
fn new_cluster_id() -> u64 {
    rand::random::<u64>().max(1)
}

/// The frontend's options: no server it could reach, no waiting for one.
fn config(secret: bool) -> Config {
    let mut args = vec![
        "kvs-frontend",
        "--server-url",
        "http://no server/{id}",
        "--add-server-wait-ms",
        "0",
    ];
    if secret {
        args.extend(["--cluster-secret", kvs_fuzz::SECRET]);
    }
    Config::try_parse_from(args)
        .expect("valid frontend options")
        .load_secret()
        .expect("a valid secret")
}

/// The router as kvs-frontend's main builds it without `--data-dir` (what
/// it refreshes before a metrics scrape is left out: that reads no input).
fn router(secret: bool) -> Router {
    let fence = Fence { cluster: 1, epoch: 0 };
    let frontend = Arc::new(Frontend::new(
        config(secret),
        fence,
        Arc::new(Committed::default()),
        None,
    ));
    let probes = Probes::default().readiness(&frontend);
    kvs_fuzz::as_served(service::methods(&frontend).into_router_with(probes))
}

fuzz_target!(|data: &[u8]| {
    static ROUTERS: [OnceLock<Router>; 2] = [OnceLock::new(), OnceLock::new()];
    let (setup, requests) = kvs_fuzz::split_setup(data);
    let secret = usize::from(setup & 1);
    kvs_fuzz::runtime().block_on(async {
        let router = ROUTERS[secret].get_or_init(|| router(secret == 1));
        // The frontend keeps nothing between calls here: it is its own twin.
        kvs_fuzz::serve_all(router, router, requests, &kvs_fuzz::secret()).await;
    });
});
