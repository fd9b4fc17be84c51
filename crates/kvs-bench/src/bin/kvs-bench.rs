//! `kvs-bench`: measure a running kvs (or any frontend speaking its wire).
//!
//! `kvs-bench load --frontend URL` writes every key, then runs a YCSB core
//! workload (A–F) or the course harness's mix, closed or open loop, and
//! prints throughput and latency percentiles per operation type.
//!
//! `kvs-bench floor` serves one constant XML-RPC reply to every POST: the
//! floor of XML-RPC over HTTP/1.1 on this machine.
//!
//! `kvs-bench compare` measures kvs, the Python seed design and the floor in
//! one run and writes a table, JSON and plots.
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
use kvs_bench::check::checker::{self, CheckError};
use kvs_bench::check::faults::FaultKind;
use kvs_bench::check::{self, Backend, CheckCounters, CheckSpec};
use kvs_bench::commands;
use kvs_cluster::local::Binaries;

#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Load a frontend: YCSB A–F or the course mix, closed or open loop.
    Load(commands::LoadArgs),
    /// The run phase alone, on keys an earlier `load` wrote (`load --no-load`).
    Run(commands::LoadArgs),
    /// Serve a constant XML-RPC reply to every POST: the floor of XML-RPC here.
    Floor(commands::FloorArgs),
    /// kvs (1, 2, 4, 8 servers) vs the Python seed design vs the floor, in one run.
    Compare(commands::CompareArgs),
    /// Fault-injection run on a local cluster, with a linearizability verdict.
    Check(CheckArgs),
    /// Memory per key of the frontend and a server, and catch-up time, at KEYS keys.
    Footprint(FootprintArgs),
    /// Time from killing the frontend (SIGKILL) to its first correct read
    /// after a restart on its data folder, at KEYS keys.
    Restart(RestartArgs),
    /// The real frontend and replica code in simulated time under seeded faults,
    /// every history checked for linearizability.
    Simulate(SimulateArgs),
}

#[derive(Debug, clap::Args)]
struct SimulateArgs {
    /// How many schedules (seeds FIRST_SEED, FIRST_SEED + 1, …).
    #[arg(long, default_value_t = 1000)]
    seeds: u64,
    /// The first seed.
    #[arg(long, default_value_t = 1)]
    first_seed: u64,
    /// Replay this one schedule and print its whole history (with
    /// `RUST_LOG=kvs_bench::simulate=info,kvs_frontend=info`, also the
    /// nemesis's faults at their simulated times and the frontend's log).
    #[arg(long, conflicts_with_all = ["seeds", "first_seed"])]
    seed: Option<u64>,
    /// Start no schedule after the first that fails (the lowest failing
    /// seed is then the first in order, however many threads run).
    #[arg(long)]
    until_violation: bool,
    /// Threads running schedules [default: the cores here].
    #[arg(long)]
    threads: Option<usize>,
    /// Fault kinds the nemesis may inject [default: all].
    #[arg(long, value_delimiter = ',')]
    faults: Option<Vec<kvs_bench::simulate::FaultKind>>,
    /// Simulated seconds the clients run in each schedule.
    #[arg(long, default_value_t = 6)]
    duration: u64,
}

#[derive(Debug, clap::Args)]
struct FootprintArgs {
    /// Distinct keys to write.
    #[arg(long, default_value_t = 1_000_000)]
    keys: u32,
    /// Concurrent writers.
    #[arg(long, default_value_t = 32)]
    connections: u32,
}

#[derive(Debug, clap::Args)]
struct RestartArgs {
    /// Distinct keys written before the restarts.
    #[arg(long, default_value_t = 1_000_000)]
    keys: u32,
    /// Servers the frontend leads.
    #[arg(long, default_value_t = 2)]
    servers: usize,
    /// Restarts measured (the median is the figure).
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// Concurrent writers of the keys.
    #[arg(long, default_value_t = 32)]
    connections: u32,
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
    /// Where the cluster runs: local processes, or Docker containers (the
    /// images of docker/build.sh) on a network of their own.
    #[arg(long, value_enum, default_value_t = Backend::Local)]
    backend: Backend,
    /// Fault kinds to inject (comma-separated); none for a fault-free run
    /// [default: every kind the backend supports; partition needs docker,
    /// power needs durable servers].
    #[arg(long, value_delimiter = ',')]
    faults: Option<Vec<FaultKind>>,
    /// Servers keep their pairs in data folders (`kvs-server --data-dir`),
    /// and power faults become possible (implied by `--faults …power…`).
    #[arg(long)]
    durable: bool,
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

/// The same allocator as kvs-frontend and kvs-server, so the floor responder
/// is measured on equal terms.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // A simulation's processes log in simulated time, thousands of times:
    // silent unless RUST_LOG asks.
    let quiet = matches!(cli.command, Command::Simulate(_));
    kvs_process::init_logging_with_default(if quiet { "off" } else { "warn" });
    match cli.command {
        Command::Check(args) => run_check(args).await,
        Command::Load(args) => commands::load(args).await,
        Command::Run(args) => commands::load(args.run_phase_only()).await,
        Command::Floor(args) => commands::floor(args).await,
        Command::Compare(args) => commands::compare(args).await,
        Command::Footprint(args) => run_footprint(args).await,
        Command::Restart(args) => run_restart(args).await,
        Command::Simulate(args) => match tokio::task::spawn_blocking(move || run_simulate(args)).await {
            Ok(code) => code,
            Err(error) => {
                eprintln!("simulate: {error}");
                ExitCode::from(2)
            }
        },
    }
}

fn run_simulate(args: SimulateArgs) -> ExitCode {
    use kvs_bench::simulate::{self, SimSpec};
    let mut spec = SimSpec {
        duration: Duration::from_secs(args.duration),
        ..SimSpec::default()
    };
    if let Some(faults) = args.faults {
        spec.faults = faults;
    }
    if let Some(seed) = args.seed {
        return match simulate::run_schedule(seed, &spec) {
            Ok(schedule) => {
                for operation in &schedule.history.operations {
                    println!("{operation}");
                }
                println!(
                    "schedule {seed}: {} operations, {} faults,{} {}",
                    schedule.history.len(),
                    schedule.faults,
                    if schedule.unrecoverable { " unrecoverable," } else { "" },
                    match &schedule.verdict {
                        Ok(()) => "linearizable".to_owned(),
                        Err(failure) => failure.to_string(),
                    }
                );
                verdict_code(schedule.verdict.is_ok())
            }
            Err(error) => {
                eprintln!("simulate: {error}");
                ExitCode::from(2)
            }
        };
    }
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    let started = std::time::Instant::now();
    let stop = if args.until_violation {
        simulate::Stop::AtFirstViolation
    } else {
        simulate::Stop::Never
    };
    match simulate::run_seeds(args.first_seed, args.seeds, threads, &spec, stop) {
        Ok(summary) => {
            for (seed, failure) in &summary.failures {
                println!("seed {seed} failed (replay with --seed {seed}):\n{failure}");
            }
            println!(
                "{} operations in {:.1} s on {threads} threads; {} schedules unrecoverable (every server holding \
                 the acknowledged writes lost them){}",
                summary.operations,
                started.elapsed().as_secs_f64(),
                summary.unrecoverable.len(),
                if summary.unrecoverable.is_empty() {
                    String::new()
                } else {
                    format!(": seeds {:?}", summary.unrecoverable)
                }
            );
            println!("{summary}");
            verdict_code(summary.failures.is_empty())
        }
        Err(error) => {
            eprintln!("simulate: {error}");
            ExitCode::from(2)
        }
    }
}

async fn run_footprint(args: FootprintArgs) -> ExitCode {
    use kvs_bench::compare::footprint::{self, RAW_PAIR_BYTES};
    match footprint::measure(Binaries::locate(), args.keys, args.connections).await {
        Ok(f) => {
            let frontend = f.bytes_per_key(f.frontend_kib);
            let server = f.bytes_per_key(f.server_kib);
            println!(
                "footprint: {} keys written in {:.1} s",
                f.keys,
                f.load_time.as_secs_f64()
            );
            println!(
                "  frontend: {} -> {} KiB resident, {frontend:.1} bytes/key ({:.1}x the {RAW_PAIR_BYTES} raw bytes)",
                f.frontend_kib.0,
                f.frontend_kib.1,
                frontend / RAW_PAIR_BYTES
            );
            println!(
                "  server:   {} -> {} KiB resident, {server:.1} bytes/key ({:.1}x raw)",
                f.server_kib.0,
                f.server_kib.1,
                server / RAW_PAIR_BYTES
            );
            println!(
                "  per key from {} to {} keys, {:.0} s after the writes: frontend {:.1} bytes/key ({} -> {} KiB), server {:.1} bytes/key ({} -> {} KiB)",
                f.keys / 10,
                f.keys,
                footprint::SETTLE_WAIT.as_secs_f64(),
                f.marginal_bytes_per_key(f.frontend_marginal_kib),
                f.frontend_marginal_kib.0,
                f.frontend_marginal_kib.1,
                f.marginal_bytes_per_key(f.server_marginal_kib),
                f.server_marginal_kib.0,
                f.server_marginal_kib.1,
            );
            println!(
                "  catch-up: addServer of an empty server took {:.2} s; it then held all {} pairs ({} KiB resident, {} KiB {:.0} s later)",
                f.catch_up.as_secs_f64(),
                f.keys,
                f.added_server_kib.0,
                f.added_server_kib.1,
                footprint::SETTLE_WAIT.as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("footprint: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run_restart(args: RestartArgs) -> ExitCode {
    use kvs_bench::compare::restart;
    match restart::measure(
        Binaries::locate(),
        args.keys,
        args.servers,
        args.repeats,
        args.connections,
    )
    .await
    {
        Ok(r) => {
            let each: Vec<String> = r.times.iter().map(|t| format!("{:.3}", t.as_secs_f64())).collect();
            println!(
                "restart: {} keys, {} servers: killed frontend serving again after {:.3} s (median of {}: {} s)",
                r.keys,
                r.servers,
                r.median().as_secs_f64(),
                r.times.len(),
                each.join(", ")
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("restart: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run_check(args: CheckArgs) -> ExitCode {
    let seed = args.seed.unwrap_or_else(rand::random);
    let durable = args.durable || args.faults.as_ref().is_some_and(|f| f.contains(&FaultKind::Power));
    let faults = args.faults.unwrap_or_else(|| match args.backend {
        Backend::Local if durable => [&FaultKind::LOCAL[..], &[FaultKind::Power]].concat(),
        Backend::Local => FaultKind::LOCAL.to_vec(),
        Backend::Docker => FaultKind::ALL.to_vec(),
    });
    if args.backend == Backend::Local && faults.contains(&FaultKind::Partition) {
        eprintln!("check: partition faults need --backend docker");
        return ExitCode::from(2);
    }
    if args.backend == Backend::Docker && durable {
        eprintln!("check: durable servers and power faults run on --backend local");
        return ExitCode::from(2);
    }
    let kinds: Vec<String> = faults.iter().map(ToString::to_string).collect();
    println!(
        "check: seed {seed}, {:?} backend, {} s, {} clients, {} keys, {} {}servers, faults [{}] (replay with --seed {seed})",
        args.backend,
        args.duration,
        args.clients,
        args.keys,
        args.servers,
        if durable { "durable " } else { "" },
        kinds.join(","),
    );
    let spec = CheckSpec {
        duration: Duration::from_secs(args.duration),
        clients: args.clients,
        keys: args.keys,
        servers: args.servers,
        kinds: faults,
        seed,
        fault_interval: Duration::from_millis(args.fault_interval_ms),
        timeout: Duration::from_millis(args.timeout_ms),
        durable,
    };
    let bins = args.bin_dir.map(Binaries::in_dir).unwrap_or_else(Binaries::locate);
    let progress = Arc::new(CheckCounters::default());
    let bar = progress_bar(spec.duration, Arc::clone(&progress));
    let run = check::run(args.backend, bins, &spec, progress).await;
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
fn progress_bar(duration: Duration, progress: Arc<CheckCounters>) -> ProgressBar {
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

/// The exit code of a checking command that ran: 0 when it found nothing
/// wrong, 1 when it found a violation (2, set elsewhere: it could not run).
fn verdict_code(clean: bool) -> ExitCode {
    if clean { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
