//! The `kvs-frontend` binary: parses its settings and runs the frontend
//! (see the library, [`kvs_frontend`]).

use std::process::ExitCode;

use clap::Parser;
use kvs_frontend::FrontendError;
use kvs_frontend::config::Config;
use kvs_process::{self as process, ProcessError};

/// mimalloc: the request path allocates a little per call (hyper, XML-RPC
/// values); it is measurably cheaper than the system allocator there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    process::init_logging();
    let config = Config::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.runtime_threads())
        .enable_all()
        .build()
        .map_err(|e| FrontendError::Process(ProcessError::Runtime(e)));
    process::exit_code(runtime.and_then(|runtime| runtime.block_on(kvs_frontend::run(config))))
}
