//! The `kvs-frontend` binary: parses its settings and runs the frontend
//! (see the library, [`kvs_frontend`]).

use std::process::ExitCode;

use clap::Parser;
use kvs_frontend::config::Config;
use kvs_process as process;

/// mimalloc: the request path allocates a little per call (hyper, XML-RPC
/// values); it is measurably cheaper than the system allocator there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    process::init_logging();
    process::exit_code(kvs_frontend::run(Config::parse()).await)
}
