//! `kvs-bench`: measure a running kvs (or any frontend speaking its wire).
//!
//! `kvs-bench load --frontend URL` runs a closed-loop put/get load and prints
//! throughput and latency percentiles.
//!
//! `kvs-bench check` starts a local cluster, runs clients against it while
//! injecting faults drawn from a seed, and checks the recorded history for
//! linearizability; its last line is `check: N ops, K keys, F faults, V violations`
//! and it exits non-zero on a violation.

use std::process::ExitCode;
use std::time::Duration;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use kvs_bench::check::{self, CheckSpec, Progress};
use kvs_bench::checker::{self, CheckError};
use kvs_bench::cluster::Binaries;
use kvs_bench::faults::FaultKind;
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
    /// Fault-injection run on a local cluster, with a linearizability verdict.
    Check(CheckArgs),
}

#[derive(Debug, clap::Args)]
struct CheckArgs {
    /// How long clients run, in seconds.
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Key space size (small, so keys collide).
    #[arg(long, default_value_t = 8)]
    keys: i32,
    /// Servers at the start.
    #[arg(long, default_value_t = 3)]
    servers: usize,
    /// Fault kinds to inject (comma-separated); none for a fault-free run.
    #[arg(long, value_delimiter = ',', default_values_t = FaultKind::ALL.to_vec())]
    faults: Vec<FaultKind>,
    /// Seed of the fault schedule and the clients' choices [default: drawn at random].
    #[arg(long)]
    seed: Option<u64>,
    /// Mean pause between faults, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    fault_interval_ms: u64,
    /// Per-call timeout of the clients, in milliseconds.
    #[arg(long, default_value_t = 3000)]
    timeout_ms: u64,
    /// Where the kvs binaries are [default: beside this one, or $KVS_BIN_DIR].
    #[arg(long)]
    bin_dir: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    kvs_proto::process::init_logging_with_default("warn");
    match Cli::parse().command {
        Command::Check(args) => run_check(args).await,
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

async fn run_check(args: CheckArgs) -> ExitCode {
    let seed = args.seed.unwrap_or_else(rand::random);
    let kinds: Vec<String> = args.faults.iter().map(ToString::to_string).collect();
    println!(
        "check: seed {seed}, {} s, {} clients, {} keys, {} servers, faults [{}] (replay with --seed {seed})",
        args.duration,
        args.clients,
        args.keys,
        args.servers,
        kinds.join(","),
    );
    let spec = CheckSpec {
        duration: Duration::from_secs(args.duration),
        clients: args.clients,
        keys: args.keys,
        servers: args.servers,
        kinds: args.faults,
        seed,
        fault_interval: Duration::from_millis(args.fault_interval_ms),
        timeout: Duration::from_millis(args.timeout_ms),
    };
    let bins = args.bin_dir.map(Binaries::in_dir).unwrap_or_else(Binaries::locate);
    let progress = Arc::new(Progress::default());
    let bar = progress_bar(spec.duration, Arc::clone(&progress));
    let run = check::run(bins, &spec, progress).await;
    bar.finish_and_clear();
    let run = match run {
        Ok(run) => run,
        Err(error) => {
            eprintln!("check: the run itself failed: {error}");
            return ExitCode::from(2);
        }
    };
    for (at, fault) in &run.faults {
        println!("  {:>7.2} s  {fault}", at.as_secs_f64());
    }
    let (ops, keys, faults) = (run.history.len(), run.history.keys(), run.faults.len());
    match checker::check(&run.history) {
        Ok(_) => {
            println!("check: {ops} ops, {keys} keys, {faults} faults, 0 violations");
            ExitCode::SUCCESS
        }
        Err(CheckError::NotLinearizable(violation)) => {
            println!("{violation}");
            println!("check: {ops} ops, {keys} keys, {faults} faults, 1 violations (seed {seed})");
            ExitCode::FAILURE
        }
        Err(error) => {
            println!("check: {ops} ops, {keys} keys, {faults} faults; no verdict: {error} (seed {seed})");
            ExitCode::from(2)
        }
    }
}

/// A bar over the run's duration showing operations and faults so far
/// (drawn only on a terminal).
fn progress_bar(duration: Duration, progress: Arc<Progress>) -> ProgressBar {
    let bar = ProgressBar::new(duration.as_secs().max(1));
    if let Ok(style) = ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} s  {msg}") {
        bar.set_style(style);
    }
    let ticker = bar.clone();
    tokio::spawn(async move {
        let started = std::time::Instant::now();
        while !ticker.is_finished() {
            ticker.set_position(started.elapsed().as_secs());
            ticker.set_message(format!(
                "{} ops, {} faults",
                progress.operations.load(Ordering::Relaxed),
                progress.faults.load(Ordering::Relaxed)
            ));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    bar
}
