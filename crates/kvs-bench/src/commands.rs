//! The `load`, `floor` and `compare` subcommands of `kvs-bench`: their
//! command lines, progress bars and printed output (the measuring itself is
//! in [`crate::load`], [`crate::compare::floor`] and [`crate::compare`]).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::compare::plot::{self, PlotData};
use crate::compare::results::{self, Medians};
use crate::compare::{self, CompareProgress, CompareReport, CompareSpec, Machine, Settings, read_report, with_summary};
use crate::load::workload::{Distribution, Workload};
use crate::load::{self, ClientKind, LatencySummary, LoadCounters, LoadReport, LoadSpec, PhaseReport};
use kvs_cluster::local::Binaries;

/// `kvs-bench load`.
#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// The frontend to load (kvs, the Python seed design, or the floor).
    #[arg(long, default_value = kvs_proto::addr::DEFAULT_FRONTEND_URL)]
    frontend: String,
    /// Concurrent connections, each with its own client.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// YCSB core workload a–f (e has no scans here: 95% reads, 5% inserts,
    /// uniform), or `harness` for the course mix (see --put-ratio).
    #[arg(long, default_value = "harness")]
    workload: Workload,
    /// The course harness's mix with this percentage of puts (uniform keys);
    /// overrides --workload.
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=100))]
    put_ratio: Option<u8>,
    /// Key distribution: uniform, zipfian (θ = 0.99, scrambled) or latest
    /// [default: the workload's own].
    #[arg(long)]
    distribution: Option<Distribution>,
    /// Keys written by the load phase (0..N).
    #[arg(long, alias = "keys", default_value_t = 1000)]
    record_count: u64,
    /// Skip the load phase (the keys are already there).
    #[arg(long)]
    no_load: bool,
    /// Length of the measured run phase, in seconds.
    #[arg(long, default_value_t = 10.0)]
    duration_secs: f64,
    /// Stop after this many measured operations (if sooner).
    #[arg(long)]
    operations: Option<u64>,
    /// Unmeasured lead-in, in seconds.
    #[arg(long, default_value_t = 0.0)]
    warmup_secs: f64,
    /// Open loop at this many operations per second (latency counted from
    /// each operation's intended start); closed loop without it.
    #[arg(long)]
    rate: Option<f64>,
    /// Per-call timeout in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
    /// Also write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Seed of the key and operation choices [default: drawn at random].
    #[arg(long)]
    seed: Option<u64>,
    /// The generator's client: dxr (kvs-proto's FrontendClient) or raw (a
    /// lean hand-written one that leaves more CPU to the server).
    #[arg(long, default_value = "dxr")]
    client: ClientKind,
}

impl LoadArgs {
    fn spec(&self) -> Result<LoadSpec, String> {
        let seconds = |name: &str, value: f64| {
            Duration::try_from_secs_f64(value).map_err(|_| format!("--{name} {value} is not a number of seconds"))
        };
        Ok(LoadSpec {
            connections: self.connections,
            workload: self
                .put_ratio
                .map_or(self.workload, |put_percent| Workload::Harness { put_percent }),
            distribution: self.distribution,
            record_count: self.record_count,
            load_phase: !self.no_load,
            duration: seconds("duration-secs", self.duration_secs)?,
            operations: self.operations,
            warmup: seconds("warmup-secs", self.warmup_secs)?,
            rate: self.rate,
            timeout: Duration::from_millis(self.timeout_ms),
            load_limit: Duration::from_secs(300),
            seed: self.seed.unwrap_or_else(rand::random),
            client: self.client,
        })
    }
}

impl LoadArgs {
    /// The same load without its load phase (`kvs-bench run`).
    pub fn run_phase_only(self) -> Self {
        LoadArgs { no_load: true, ..self }
    }
}

/// Runs `kvs-bench load`; fails if any operation failed.
pub async fn load(args: LoadArgs) -> ExitCode {
    let spec = match args.spec() {
        Ok(spec) => spec,
        Err(message) => return fail(&message),
    };
    let progress = Arc::new(LoadCounters::default());
    let bar = load_bar(&spec, Arc::clone(&progress));
    let result = load::run_with_progress(&args.frontend, &spec, progress).await;
    bar.finish_and_clear();
    let report = match result {
        Ok(report) => report,
        Err(error) => return fail(&error.to_string()),
    };
    print!("{}", render_load(&report, spec.seed));
    if let Some(path) = &args.json
        && let Err(message) = write_json(path, &report)
    {
        return fail(&message);
    }
    let failed = report.run.errors + report.load.as_ref().map_or(0, |l| l.errors);
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("kvs-bench: {message}");
    ExitCode::FAILURE
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<(), String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let json = serde_json::to_string_pretty(value).map_err(|e| format!("cannot encode the report: {e}"))?;
    std::fs::write(path, json + "\n").map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// A bar over the run's time bound, with operations and errors so far
/// (drawn only on a terminal).
fn load_bar(spec: &LoadSpec, progress: Arc<LoadCounters>) -> ProgressBar {
    let total = (spec.warmup + spec.duration).as_secs().max(1);
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} s  {msg}") {
        bar.set_style(style);
    }
    let ticker = bar.clone();
    tokio::spawn(async move {
        let started = Instant::now();
        while !ticker.is_finished() {
            ticker.set_position(started.elapsed().as_secs().min(total));
            ticker.set_message(format!(
                "{} ops, {} errors",
                progress.operations.load(Ordering::Relaxed),
                progress.errors.load(Ordering::Relaxed)
            ));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    bar
}

fn latency_row(name: &str, s: &LatencySummary) -> String {
    format!(
        "  {name:<8} {:>10} {:>9} {:>9} {:>9} {:>9}\n",
        s.count,
        results::millis(s.p50_us as f64),
        results::millis(s.p99_us as f64),
        results::millis(s.p999_us as f64),
        results::millis(s.max_us as f64)
    )
}

fn render_phase(title: &str, phase: &PhaseReport) -> String {
    let mut out = format!(
        "{title}: {} ops in {:.2} s = {} ops/s; errors {}; not found {}\n",
        phase.operations,
        phase.elapsed_secs,
        results::thousands(phase.throughput),
        phase.errors,
        phase.not_found
    );
    out.push_str("  op            count    p50 ms    p99 ms  p99.9 ms    max ms\n");
    out.push_str(&latency_row("all", &phase.latency));
    for (kind, summary) in &phase.per_op {
        out.push_str(&latency_row(kind.name(), summary));
    }
    if let Some(error) = &phase.first_error {
        out.push_str(&format!("  first error: {error}\n"));
    }
    out
}

fn render_load(report: &LoadReport, seed: u64) -> String {
    let mode = report
        .rate
        .map_or_else(|| "closed loop".to_owned(), |r| format!("open loop at {r:.0} ops/s"));
    let mut out = format!(
        "load: {} workload {} ({} keys), {} records, {} connections, {mode}, seed {seed}\n",
        report.frontend, report.workload, report.distribution, report.record_count, report.connections
    );
    if let Some(phase) = &report.load {
        out.push_str(&render_phase("load phase", phase));
    }
    out.push_str(&render_phase("run phase", &report.run));
    out
}

/// `kvs-bench floor`.
#[derive(Debug, clap::Args)]
pub struct FloorArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Port to listen on.
    #[arg(long, default_value_t = kvs_proto::addr::FRONTEND_PORT)]
    port: u16,
}

/// Runs the constant-body responder until SIGTERM or SIGINT.
pub async fn floor(args: FloorArgs) -> ExitCode {
    match crate::compare::floor::serve(args.bind, args.port).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&error.to_string()),
    }
}

/// `kvs-bench compare`.
#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// Server counts for kvs and the baseline.
    #[arg(long, value_delimiter = ',', default_values_t = vec![1, 2, 4, 8])]
    servers: Vec<usize>,
    /// Rounds; each figure is the median over them [default: 3; 1 with --quick].
    #[arg(long)]
    repeat: Option<usize>,
    /// Concurrent connections of the generator.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Keys written by each load phase.
    #[arg(long, default_value_t = 1000)]
    record_count: u64,
    /// Measured seconds of each kvs and floor run [default: 5; 1.5 with --quick].
    #[arg(long)]
    duration_secs: Option<f64>,
    /// Measured seconds of each baseline run [default: 3; 1 with --quick].
    #[arg(long)]
    baseline_duration_secs: Option<f64>,
    /// Measured seconds of each open-loop run [default: 5; 2 with --quick].
    #[arg(long)]
    open_loop_secs: Option<f64>,
    /// Skip the harness's 50% mix (the default runs it; --quick skips it).
    #[arg(long)]
    no_mix: bool,
    /// Skip the Python seed design.
    #[arg(long)]
    no_baseline: bool,
    /// Skip the floor responder.
    #[arg(long)]
    no_floor: bool,
    /// Skip the open-loop latency run.
    #[arg(long)]
    no_open_loop: bool,
    /// Also measure kvs with durable servers (`--data-dir` in a scratch
    /// folder under $TMPDIR or /tmp, removed afterwards): puts only, right
    /// after in-memory kvs with as many servers, against the target of 50% of
    /// its put throughput; and the sync latency of the disk there.
    #[arg(long)]
    durable: bool,
    /// A ~1-minute smoke run: 1 round, short runs, no 50% mix.
    #[arg(long)]
    quick: bool,
    /// Per-call timeout in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
    /// Before each target, wait up to this many seconds for the rest of the
    /// machine to go (nearly) idle; 0 never waits [default: 15; total at most 120].
    #[arg(long)]
    quiet_wait_secs: Option<f64>,
    /// Seed of the generator's choices (the same for every target).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The generator's client: dxr (kvs-proto's FrontendClient) or raw (a
    /// lean hand-written one that leaves more CPU to the server).
    #[arg(long, default_value = "dxr")]
    client: ClientKind,
    /// Where the table, JSON and plots go.
    #[arg(long, default_value = "target/compare")]
    out: PathBuf,
    /// Write the JSON report here instead of OUT/compare.json.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Where the kvs binaries are [default: beside this one, or $KVS_BIN_DIR].
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// The Python seed design's folder [default: $KVS_BASELINE_DIR, or <repo>/../shared/baseline].
    #[arg(long)]
    baseline_dir: Option<PathBuf>,
    /// Measure nothing: write the tables (STEM.md) and plots (STEM.svg,
    /// STEM.png) of this written report (STEM.json) again into OUT.
    #[arg(long)]
    replot: Option<PathBuf>,
    /// With --replot: also rewrite the summary of that report in this
    /// Markdown file (between `<!-- kvs-bench compare summary of PATH -->`
    /// and `<!-- end of summary -->`).
    #[arg(long, requires = "replot")]
    readme: Option<PathBuf>,
}

impl CompareArgs {
    fn spec(&self) -> Result<CompareSpec, String> {
        let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
        let bins = self.bin_dir.clone().map_or_else(Binaries::locate, Binaries::in_dir);
        let mut spec = CompareSpec::standard(bins, exe);
        if self.quick {
            spec = spec.quick();
        }
        let seconds = |name: &str, value: Option<f64>, default: Duration| match value {
            None => Ok(default),
            Some(v) => Duration::try_from_secs_f64(v).map_err(|_| format!("--{name} {v} is not a number of seconds")),
        };
        Ok(CompareSpec {
            servers: self.servers.clone(),
            repeat: self.repeat.unwrap_or(spec.repeat).max(1),
            connections: self.connections,
            record_count: self.record_count,
            duration: seconds("duration-secs", self.duration_secs, spec.duration)?,
            baseline_duration: seconds(
                "baseline-duration-secs",
                self.baseline_duration_secs,
                spec.baseline_duration,
            )?,
            open_loop_duration: seconds("open-loop-secs", self.open_loop_secs, spec.open_loop_duration)?,
            mix: spec.mix && !self.no_mix,
            baseline: !self.no_baseline,
            floor: !self.no_floor,
            open_loop: !self.no_open_loop,
            durable: self.durable,
            timeout: Duration::from_millis(self.timeout_ms),
            quiet_wait: seconds("quiet-wait-secs", self.quiet_wait_secs, spec.quiet_wait)?,
            seed: self.seed,
            client: self.client,
            baseline_dir: self.baseline_dir.clone(),
            ..spec
        })
    }
}

/// Runs `kvs-bench compare`: prints the tables and verdicts, writes the JSON
/// report and the plots.
pub async fn compare(args: CompareArgs) -> ExitCode {
    if let Some(json) = &args.replot {
        let written = read_report(json).and_then(|report| {
            let stem = json.file_stem().and_then(|s| s.to_str()).unwrap_or("compare");
            let mut paths = write_tables_and_plots(&report, &args.out, stem)?;
            if let Some(readme) = &args.readme {
                paths.push(rewrite_summary(readme, json, &report)?);
            }
            Ok(paths)
        });
        return match written {
            Ok(paths) => wrote(&paths),
            Err(message) => fail(&message),
        };
    }
    let spec = match args.spec() {
        Ok(spec) => spec,
        Err(message) => return fail(&message),
    };
    println!(
        "compare: servers {:?}, {} round(s), {} connections, {} keys, runs of {:.1} s (baseline {:.1} s), benches {}{}",
        spec.servers,
        spec.repeat,
        spec.connections,
        spec.record_count,
        spec.duration.as_secs_f64(),
        spec.baseline_duration.as_secs_f64(),
        spec.benches().iter().map(|b| b.name()).collect::<Vec<_>>().join(", "),
        if spec.durable { "; durable kvs: put" } else { "" }
    );
    let progress = Arc::new(CompareProgress::default());
    let bar = compare_bar(spec.steps(), Arc::clone(&progress));
    // On SIGINT or SIGTERM the run is dropped, which kills every process it started.
    let result = tokio::select! {
        result = compare::run(&spec, &progress) => result,
        () = kvs_process::shutdown_signal() => {
            bar.finish_and_clear();
            return fail("interrupted; every process it started was killed");
        }
    };
    bar.finish_and_clear();
    let report = match result {
        Ok(report) => report,
        Err(error) => return fail(&format!("compare failed: {error}")),
    };
    print!("{}", report.render());
    match write_compare_outputs(&report, &args) {
        Ok(paths) => wrote(&paths),
        Err(message) => fail(&message),
    }
}

fn wrote(paths: &[PathBuf]) -> ExitCode {
    for path in paths {
        println!("wrote {}", path.display());
    }
    ExitCode::SUCCESS
}

/// Rewrites the summary of `report` (read from `json`) in the Markdown file `readme`.
fn rewrite_summary(readme: &Path, json: &Path, report: &CompareReport) -> Result<PathBuf, String> {
    let text = std::fs::read_to_string(readme).map_err(|e| format!("cannot read {}: {e}", readme.display()))?;
    let updated = with_summary(&text, json, &report.summary())?;
    std::fs::write(readme, updated).map_err(|e| format!("cannot write {}: {e}", readme.display()))?;
    Ok(readme.to_path_buf())
}

fn plot_data<'a>(machine: &Machine, settings: &'a Settings, medians: &'a Medians) -> PlotData<'a> {
    PlotData {
        medians,
        servers: &settings.servers,
        benches: &settings.benches,
        note: format!(
            "{} cores, {}, {} client, median of {}",
            machine.cores, machine.cpu_model, settings.client, settings.repeat
        ),
    }
}

fn write_compare_outputs(report: &CompareReport, args: &CompareArgs) -> Result<Vec<PathBuf>, String> {
    let json = args.json.clone().unwrap_or_else(|| args.out.join("compare.json"));
    write_json(&json, report)?;
    let mut paths = vec![json];
    paths.extend(write_tables_and_plots(report, &args.out, "compare")?);
    Ok(paths)
}

/// `STEM.md` (the tables) and the plots `STEM.svg`, `STEM.png` in `out`.
fn write_tables_and_plots(report: &CompareReport, out: &Path, stem: &str) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let table = out.join(format!("{stem}.md"));
    std::fs::write(&table, report.render()).map_err(|e| format!("cannot write {}: {e}", table.display()))?;
    let data = plot_data(&report.machine, &report.settings, &report.median_map);
    let mut paths = vec![table];
    paths.extend(plot::write(&data, out, stem).map_err(|e| e.to_string())?);
    Ok(paths)
}

/// A bar over the measurements, showing the current one (drawn only on a terminal).
fn compare_bar(steps: u64, progress: Arc<CompareProgress>) -> ProgressBar {
    let bar = ProgressBar::new(steps);
    if let Ok(style) = ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len}  {msg}") {
        bar.set_style(style);
    }
    let ticker = bar.clone();
    tokio::spawn(async move {
        while !ticker.is_finished() {
            ticker.set_position(progress.steps.load(Ordering::Relaxed));
            let current = progress.current.lock().map(|c| c.clone()).unwrap_or_default();
            ticker.set_message(format!(
                "{current} ({} ops)",
                progress.load.operations.load(Ordering::Relaxed)
            ));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    bar
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        load: LoadArgs,
    }

    #[test]
    fn put_ratio_selects_the_harness_mix() -> Result<(), String> {
        let cli = Cli::try_parse_from(["x", "--put-ratio", "100", "--workload", "c"]).map_err(|e| e.to_string())?;
        assert_eq!(cli.load.spec()?.workload, Workload::Harness { put_percent: 100 });
        let cli = Cli::try_parse_from(["x", "--workload", "d", "--keys", "50"]).map_err(|e| e.to_string())?;
        let spec = cli.load.spec()?;
        assert_eq!((spec.workload, spec.record_count), (Workload::D, 50));
        assert_eq!(spec.distribution(), Distribution::Latest);
        Ok(())
    }

    #[test]
    fn bad_durations_are_refused() -> Result<(), String> {
        let cli = Cli::try_parse_from(["x", "--duration-secs=-1"]).map_err(|e| e.to_string())?;
        assert!(cli.load.spec().is_err());
        Ok(())
    }
}
