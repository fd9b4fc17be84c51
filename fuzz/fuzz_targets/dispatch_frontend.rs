//! The frontend's dispatch: the real `kvs-frontend` methods (its library)
//! behind the router, readiness probe and body guard it serves, fed
//! arbitrary requests.
//! Setup byte bit 0: a cluster secret is configured.
//!
//! The frontend has no data folder and no server, and its servers' address
//! template is not a URL: `addServer` and its kin fail before any network
//! call or change, writes and reads are refused (no active server), and
//! everything else answers from memory. Such a frontend does not change
//! from one input to the next, so one is built per secret setting and kept
//! (a frontend registers its metrics in the process-wide registry when
//! built: one per input would grow it, and leak checks, without end).

#![no_main]

use std::sync::{Arc, OnceLock};

use axum::Router;
use clap::Parser;
use kvs_proto::Fence;
use libfuzzer_sys::fuzz_target;

use kvs_frontend::committed::Committed;
use kvs_frontend::config::Config;
use kvs_frontend::gate::Gate;
use kvs_frontend::service::Frontend;

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

/// The router as `kvs_frontend::run` builds it once the frontend (without
/// `--data-dir`) is up.
fn router(secret: bool) -> Router {
    let fence = Fence::new(1, 0);
    let config = config(secret);
    let configured = config.secret.clone();
    let connector = Arc::new(config.connector());
    let frontend = Arc::new(Frontend::new(
        config,
        connector,
        fence,
        Arc::new(Committed::default()),
        None,
    ));
    let gate = Gate::new();
    gate.open(frontend);
    kvs_fuzz::as_served(gate.router(configured))
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
