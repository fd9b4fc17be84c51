//! `kvs-bench`: measure a running kvs (or any frontend speaking its wire).
//!
//! `kvs-bench load --frontend URL` runs a closed-loop put/get load and prints
//! throughput and latency percentiles.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use kvs_bench::load::{self, LoadSpec};

#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Closed-loop put/get load against a frontend.
    Load {
        /// The frontend to load.
        #[arg(long, default_value = kvs_proto::addr::DEFAULT_FRONTEND_URL)]
        frontend: String,
        /// Concurrent connections.
        #[arg(long, default_value_t = 32)]
        connections: usize,
        /// Operations in all.
        #[arg(long, default_value_t = 100_000)]
        operations: u64,
        /// Key space size.
        #[arg(long, default_value_t = 10_000)]
        keys: i32,
        /// Percentage of puts.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u8).range(0..=100))]
        put_ratio: u8,
        /// Per-call timeout in milliseconds.
        #[arg(long, default_value_t = 10_000)]
        timeout_ms: u64,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Load {
            frontend,
            connections,
            operations,
            keys,
            put_ratio,
            timeout_ms,
        } => {
            let spec = LoadSpec {
                connections,
                operations,
                keys,
                put_percent: put_ratio,
                timeout: Duration::from_millis(timeout_ms),
            };
            match load::run(&frontend, &spec).await {
                Ok(report) => {
                    let h = &report.latency_us;
                    println!(
                        "load: {} ops in {:.2} s = {:.0} ops/s; errors {}; latency us p50 {} p99 {} p99.9 {} max {}",
                        report.operations,
                        report.elapsed.as_secs_f64(),
                        report.throughput(),
                        report.errors,
                        h.value_at_quantile(0.5),
                        h.value_at_quantile(0.99),
                        h.value_at_quantile(0.999),
                        h.max()
                    );
                    if report.errors == 0 {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    }
                }
                Err(error) => {
                    eprintln!("kvs-bench: {error}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
