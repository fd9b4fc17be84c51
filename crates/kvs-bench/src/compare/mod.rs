//! `kvs-bench compare`: kvs, the Python seed design and the floor responder,
//! measured in one run with the same generator settings.
//!
//! Each repeat ("round") goes over every target in turn — the floor, kvs
//! with 1, 2, 4 and 8 servers, the baseline with as many — and for each
//! starts it fresh, writes every key (the load phase), runs the put-heavy
//! harness mix (100% puts), the get-only YCSB C and (by default) the
//! harness's 50% mix, and stops it. Interleaving the targets within a round
//! spreads the machine's drift over all of them; the figures reported are
//! medians over the rounds. Last, kvs with 1 server runs the 50% mix open
//! loop at half its measured peak, for the p99 target.
//!
//! With `durable`, each in-memory kvs target is followed by kvs with as
//! many durable servers (`--data-dir` in a scratch folder, fresh for every
//! start), which runs the put bench only (gets do not touch the disk); and
//! the disk's sync latency is measured once, in the same scratch folder.
//!
//! Every process is a child started with `kill_on_drop`, killed and reaped
//! after its target's measurements; every phase is bounded in time and
//! every call by a timeout.

pub mod baseline;
pub mod durable;
pub mod floor;
pub mod footprint;
#[cfg(feature = "cli")]
pub mod plot;
pub mod restart;
pub mod results;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kvs_proto::addr::FRONTEND_PORT;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::process::Command;

use crate::load::cpu;
use crate::load::workload::Workload;
use crate::load::{self, ClientKind, LoadCounters, LoadError, LoadSpec, PhaseReport};
use baseline::{BaselineError, PythonBaseline};
use durable::ScratchDir;
use kvs_cluster::{Binaries, ClusterError, LocalCluster, unique_loopback};
use kvs_cluster::{Process, StartError, ensure_free};
use results::{Bench, Durable, JudgedTarget, MedianRow, Medians, OpenLoop, RatioRow, Sample, Stat, System};

/// How long killed cluster processes may take to disappear.
const GONE_TIMEOUT: Duration = Duration::from_secs(5);

/// A run during which the rest of the machine kept more cores than this
/// busy is reported as noisy.
pub const NOISY_CORES: f64 = 0.25;

/// How long one look at the machine's idleness lasts.
const QUIET_WINDOW: Duration = Duration::from_millis(500);

/// What to compare, and how long to measure each.
#[derive(Debug, Clone)]
pub struct CompareSpec {
    /// Server counts for kvs and the baseline.
    pub servers: Vec<usize>,
    /// Rounds; each figure is the median over them.
    pub repeat: usize,
    pub connections: usize,
    /// Keys written by the load phase and addressed by the runs.
    pub record_count: u64,
    /// Measured time of each kvs and floor run.
    pub duration: Duration,
    /// Measured time of each baseline run (it does ~1k ops/s).
    pub baseline_duration: Duration,
    /// Unmeasured lead-in of every run.
    pub warmup: Duration,
    /// Measured time of each open-loop run.
    pub open_loop_duration: Duration,
    /// Also run the harness's 50% mix.
    pub mix: bool,
    pub baseline: bool,
    pub floor: bool,
    pub open_loop: bool,
    /// Also measure kvs with durable servers (puts only) and the disk's sync latency.
    pub durable: bool,
    pub timeout: Duration,
    /// Before starting each target, wait up to this long for the rest of the
    /// machine to use less than [`NOISY_CORES`] (a shared machine's builds
    /// and tests otherwise land in the figures)...
    pub quiet_wait: Duration,
    /// ...and at most this long in all.
    pub quiet_budget: Duration,
    pub seed: u64,
    /// The generator's client.
    pub client: ClientKind,
    pub bins: Binaries,
    /// The folder of the Python seed design (located if `None`).
    pub baseline_dir: Option<PathBuf>,
    /// This program, run as `floor` for the floor responder.
    pub floor_exe: PathBuf,
}

impl CompareSpec {
    /// The default run: about 8 minutes on 2 cores.
    pub fn standard(bins: Binaries, floor_exe: PathBuf) -> Self {
        CompareSpec {
            servers: vec![1, 2, 4, 8],
            repeat: 3,
            connections: 32,
            record_count: 1000,
            duration: Duration::from_secs(5),
            baseline_duration: Duration::from_secs(3),
            warmup: Duration::from_millis(500),
            open_loop_duration: Duration::from_secs(5),
            mix: true,
            baseline: true,
            floor: true,
            open_loop: true,
            durable: false,
            timeout: Duration::from_secs(10),
            quiet_wait: Duration::from_secs(15),
            quiet_budget: Duration::from_secs(120),
            seed: 0,
            client: ClientKind::Dxr,
            bins,
            baseline_dir: None,
            floor_exe,
        }
    }

    /// A smoke version of about a minute: one round, short runs, no 50% mix
    /// (the open-loop peak is then estimated from the put and get runs).
    pub fn quick(self) -> Self {
        CompareSpec {
            repeat: 1,
            duration: Duration::from_millis(1500),
            baseline_duration: Duration::from_secs(1),
            warmup: Duration::from_millis(250),
            open_loop_duration: Duration::from_secs(2),
            mix: false,
            quiet_wait: Duration::from_secs(3),
            quiet_budget: Duration::from_secs(20),
            ..self
        }
    }

    /// The benches every target runs (but durable kvs, see [`Self::benches_of`]).
    pub fn benches(&self) -> Vec<Bench> {
        Bench::ALL
            .into_iter()
            .filter(|b| self.mix || *b != Bench::Mix)
            .collect()
    }

    /// The benches `system` runs: durable kvs only puts (gets do not touch
    /// the disk, so they would measure in-memory kvs again).
    pub fn benches_of(&self, system: System) -> Vec<Bench> {
        match system {
            System::KvsDurable => vec![Bench::Put],
            _ => self.benches(),
        }
    }

    /// The targets of one round, in order.
    pub fn targets(&self) -> Vec<(System, usize)> {
        let mut targets = Vec::new();
        if self.floor {
            targets.push((System::Floor, 0));
        }
        for &n in &self.servers {
            targets.push((System::Kvs, n));
            if self.durable {
                targets.push((System::KvsDurable, n));
            }
            if self.baseline {
                targets.push((System::Baseline, n));
            }
        }
        targets
    }

    /// Measurements in all (for a progress bar).
    pub fn steps(&self) -> u64 {
        let per_round: usize = self
            .targets()
            .iter()
            .map(|(system, _)| self.benches_of(*system).len())
            .sum();
        let open = if self.open_loop { self.repeat } else { 0 };
        (self.repeat * per_round + open) as u64
    }

    fn run_duration(&self, system: System) -> Duration {
        match system {
            System::Baseline => self.baseline_duration,
            System::Kvs | System::KvsDurable | System::Floor => self.duration,
        }
    }

    fn load_spec(&self, workload: Workload, duration: Duration, round: usize) -> LoadSpec {
        LoadSpec {
            connections: self.connections,
            workload,
            distribution: None,
            record_count: self.record_count,
            load_phase: false,
            duration,
            operations: None,
            warmup: self.warmup,
            rate: None,
            timeout: self.timeout,
            load_limit: Duration::from_secs(120),
            seed: self.seed.wrapping_add(round as u64),
            client: self.client,
        }
    }

    fn settings(&self) -> Settings {
        Settings {
            servers: self.servers.clone(),
            repeat: self.repeat,
            connections: self.connections,
            record_count: self.record_count,
            duration_secs: self.duration.as_secs_f64(),
            baseline_duration_secs: self.baseline_duration.as_secs_f64(),
            warmup_secs: self.warmup.as_secs_f64(),
            open_loop_duration_secs: self.open_loop_duration.as_secs_f64(),
            benches: self.benches(),
            seed: self.seed,
            client: self.client,
            durable: self.durable,
        }
    }
}

fn workload_of(bench: Bench) -> Workload {
    match bench {
        Bench::Put => Workload::Harness { put_percent: 100 },
        Bench::Get => Workload::C,
        Bench::Mix => Workload::Harness { put_percent: 50 },
    }
}

/// The run's settings, for the JSON report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    pub servers: Vec<usize>,
    pub repeat: usize,
    pub connections: usize,
    pub record_count: u64,
    pub duration_secs: f64,
    pub baseline_duration_secs: f64,
    pub warmup_secs: f64,
    pub open_loop_duration_secs: f64,
    pub benches: Vec<Bench>,
    pub seed: u64,
    pub client: ClientKind,
    /// Whether kvs with durable servers was measured too (absent from older reports).
    #[serde(default)]
    pub durable: bool,
}

/// The machine the run was on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    pub cores: usize,
    pub cpu_model: String,
    pub memory_gib: f64,
}

impl Machine {
    /// From `std` and Linux's `/proc` (unknown fields stay empty).
    pub fn detect() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        Machine {
            cores: std::thread::available_parallelism().map_or(0, usize::from),
            cpu_model: proc_field(&cpuinfo, "model name").unwrap_or_default(),
            memory_gib: proc_field(&meminfo, "MemTotal")
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
                .map_or(0.0, |kib| kib / (1024.0 * 1024.0)),
        }
    }
}

/// The value of the first `name: value` line.
fn proc_field(text: &str, name: &str) -> Option<String> {
    text.lines()
        .find(|line| line.starts_with(name))
        .and_then(|line| line.split_once(':'))
        .map(|(_, value)| value.trim().to_owned())
}

/// Everything a comparison measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompareReport {
    /// The commit the run was made at (`git rev-parse --short HEAD` in the
    /// working folder, `+` if it had changes), when known.
    #[serde(default)]
    pub revision: Option<String>,
    /// When the run ended (UTC, `YYYY-MM-DD`), when known.
    #[serde(default)]
    pub date: Option<String>,
    pub machine: Machine,
    pub settings: Settings,
    pub wall_secs: f64,
    pub samples: Vec<Sample>,
    pub medians: Vec<MedianRow>,
    pub ratios: Vec<RatioRow>,
    pub open_loop: Option<OpenLoop>,
    pub verdicts: Vec<JudgedTarget>,
    /// Failed writes of all load phases.
    pub load_phase_errors: u64,
    /// Durable kvs against in-memory kvs, and the disk's sync latency, if
    /// measured (absent from older reports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub durable: Option<Durable>,
    #[serde(skip)]
    pub median_map: Medians,
}

impl CompareReport {
    /// The tables and verdicts as Markdown.
    pub fn render(&self) -> String {
        let benches = &self.settings.benches;
        let mut out = format!(
            "Medians of {} run(s); throughput in ops/s, latency in ms.\n\n",
            self.settings.repeat
        );
        out.push_str(&results::format_medians(&self.median_map, benches));
        out.push('\n');
        out.push_str(&results::format_ratios(&self.ratios, benches));
        if let Some(durable) = &self.durable {
            out.push_str(
                "\nDurable servers (`--data-dir`: every server syncs its log before it acknowledges), puts:\n\n",
            );
            out.push_str(&results::format_durable(durable));
        }
        out.push_str("\nCPU cores used during the runs (medians):\n\n");
        out.push_str(&results::format_cpu(&self.median_map, benches));
        let noisy = self
            .samples
            .iter()
            .filter(|s| s.report.cpu.is_some_and(|c| c.other > NOISY_CORES))
            .count();
        let stolen = self
            .samples
            .iter()
            .filter(|s| {
                s.report
                    .cpu
                    .and_then(|c| c.steal)
                    .is_some_and(|steal| steal > NOISY_CORES)
            })
            .count();
        let measured_steal = self
            .samples
            .iter()
            .any(|s| s.report.cpu.is_some_and(|c| c.steal.is_some()));
        let of_which = if measured_steal {
            format!(" ({stolen} of them lost more than {NOISY_CORES} cores to the hypervisor's steal)")
        } else {
            String::new()
        };
        out.push_str(&format!(
            "\n{noisy} of {} runs shared the machine with more than {NOISY_CORES} cores of other work{of_which}.\n",
            self.samples.len()
        ));
        if self.load_phase_errors > 0 {
            out.push_str(&format!(
                "{} writes of the load phases failed (see the per-run errors in the JSON).\n",
                self.load_phase_errors
            ));
        }
        if let Some(open) = &self.open_loop {
            out.push_str(&format!(
                "\nOpen loop, kvs 1 server, 50% mix at {} ops/s (half of {}): achieved {} ops/s, p50 {} ms, p99 {} ms (each run: {} ms), p99.9 {} ms, {} errors\n",
                results::thousands(open.rate),
                results::thousands(open.peak),
                results::thousands(open.stat.throughput),
                results::millis(open.stat.p50_us),
                results::millis(open.stat.p99_us),
                open.p99s_ms(),
                results::millis(open.stat.p999_us),
                open.stat.errors
            ));
            if let Some(steals) = open.steals() {
                out.push_str(&format!(
                    "Cores lost to the hypervisor's steal during each open-loop run: {steals}.\n"
                ));
            }
        }
        out.push('\n');
        out.push_str(&results::format_verdicts(&self.verdicts));
        out
    }
}

/// Where the README's summary of a written report begins (the path of its
/// JSON follows, then ` -->`) and ends.
pub const SUMMARY_BEGIN: &str = "<!-- kvs-bench compare summary of ";
/// See [`SUMMARY_BEGIN`].
pub const SUMMARY_END: &str = "<!-- end of summary -->";

/// Reads a report `kvs-bench compare` wrote.
pub fn read_report(json: &Path) -> Result<CompareReport, String> {
    let text = std::fs::read_to_string(json).map_err(|e| format!("cannot read {}: {e}", json.display()))?;
    CompareReport::from_json(&text).map_err(|e| format!("{} is not a compare report: {e}", json.display()))
}

/// `readme`'s text with the summary block of `json` regenerated; an error if
/// the block is missing.
pub fn with_summary(readme: &str, json: &Path, summary: &str) -> Result<String, String> {
    let begin = format!("{SUMMARY_BEGIN}{} -->\n", json.display());
    let start = readme
        .find(&begin)
        .ok_or_else(|| format!("no line `{}` to write the summary after", begin.trim_end()))?
        + begin.len();
    let end = readme[start..]
        .find(SUMMARY_END)
        .ok_or_else(|| format!("no `{SUMMARY_END}` after `{}`", begin.trim_end()))?
        + start;
    Ok(format!("{}{summary}{}", &readme[..start], &readme[end..]))
}

impl CompareReport {
    /// A report as `kvs-bench compare` wrote it (`compare.json`).
    pub fn from_json(text: &str) -> Result<CompareReport, serde_json::Error> {
        let mut report: CompareReport = serde_json::from_str(text)?;
        report.median_map = report
            .medians
            .iter()
            .map(|row| ((row.system, row.servers, row.bench), row.stat.clone()))
            .collect();
        Ok(report)
    }

    /// The few lines a README carries: the machine, the ratios (which
    /// travel between machines better than throughput), kvs's throughput
    /// range and the open-loop tail. Generated, so it cannot drift from the
    /// JSON (see `kvs-bench compare --readme`).
    pub fn summary(&self) -> String {
        let benches = &self.settings.benches;
        let when: Vec<String> = [
            self.revision.as_ref().map(|r| format!("commit `{r}`")),
            self.date.clone(),
        ]
        .into_iter()
        .flatten()
        .collect();
        let when = if when.is_empty() {
            String::new()
        } else {
            when.join(", ") + "; "
        };
        let mut out = format!(
            "{when}{} cores ({}), {} client, {} connections, medians of {} round(s):\n\n",
            self.machine.cores,
            self.machine.cpu_model,
            self.settings.client,
            self.settings.connections,
            self.settings.repeat
        );
        out.push_str(&results::format_ratios(&self.ratios, benches));
        let kvs: Vec<String> = benches
            .iter()
            .filter_map(|&bench| {
                let rates: Vec<f64> = self
                    .settings
                    .servers
                    .iter()
                    .filter_map(|&n| self.median_map.get(&(System::Kvs, n, bench)).map(|s| s.throughput))
                    .collect();
                let low = rates.iter().copied().reduce(f64::min)?;
                let high = rates.iter().copied().reduce(f64::max)?;
                Some(format!(
                    "{} {}–{}",
                    bench.name(),
                    results::thousands(low),
                    results::thousands(high)
                ))
            })
            .collect();
        if !kvs.is_empty() {
            out.push_str(&format!(
                "\nkvs ops/s over {:?} servers: {}.\n",
                self.settings.servers,
                kvs.join("; ")
            ));
        }
        if let Some(open) = &self.open_loop {
            out.push_str(&format!(
                "Open loop at half of kvs's 1-server mix peak ({} ops/s): p99 {} ms.\n",
                results::thousands(open.rate),
                results::millis(open.stat.p99_us)
            ));
        }
        if let Some(durable) = &self.durable {
            out.push_str(&durable_summary(durable));
        }
        out
    }
}

/// The README's lines on durable servers: puts per server count against
/// in-memory, and the disk's sync latency.
fn durable_summary(durable: &Durable) -> String {
    let rows: Vec<String> = durable
        .rows
        .iter()
        .map(|row| {
            format!(
                "{} server(s) {} ops/s ({} of in-memory, p99 {} ms)",
                row.servers,
                row.durable.map_or_else(|| "-".to_owned(), results::thousands),
                row.ratio
                    .map_or_else(|| "-".to_owned(), |r| format!("{:.0}%", r * 100.0)),
                row.durable_p99_us.map_or_else(|| "-".to_owned(), results::millis),
            )
        })
        .collect();
    format!(
        "Durable servers, puts: {}. Disk sync (4 KiB append + fdatasync) median {} ms, p99 {} ms.\n",
        rows.join("; "),
        results::millis(durable.sync.median_us),
        results::millis(durable.sync.p99_us)
    )
}

/// Live state for a progress display.
#[derive(Debug, Default)]
pub struct CompareProgress {
    /// Measurements finished.
    pub steps: AtomicU64,
    /// What runs now.
    pub current: std::sync::Mutex<String>,
    /// Operations of the current phase.
    pub load: Arc<LoadCounters>,
    /// Failed writes of the load phases (their keys may then be missing).
    pub load_phase_errors: AtomicU64,
}

impl CompareProgress {
    fn begin(&self, label: String) {
        if let Ok(mut current) = self.current.lock() {
            *current = label;
        }
    }

    fn finish_step(&self) {
        self.steps.fetch_add(1, Ordering::Relaxed);
    }
}

/// Why a comparison could not be carried out.
#[derive(Debug, Error)]
pub enum CompareError {
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error(transparent)]
    Baseline(#[from] BaselineError),
    #[error(transparent)]
    Process(#[from] StartError),
    #[error("{what}: {source}")]
    Load { what: String, source: LoadError },
    #[error("no kvs server count to measure")]
    Nothing,
    #[error("the durable servers' scratch folder: {0}")]
    Scratch(std::io::Error),
}

/// A target while it runs.
enum Running {
    Kvs(LocalCluster),
    Baseline(PythonBaseline),
    Floor { proc: Process, url: String },
}

impl Running {
    /// Starts `system` with `servers` servers; durable kvs keeps its
    /// servers' data folders in `data` (a fresh folder).
    async fn start(
        spec: &CompareSpec,
        system: System,
        servers: usize,
        data: Option<&Path>,
    ) -> Result<Running, CompareError> {
        Ok(match system {
            System::Kvs => Running::Kvs(LocalCluster::start(spec.bins.clone(), servers, 0).await?),
            System::KvsDurable => {
                let data = data
                    .ok_or_else(|| CompareError::Scratch(std::io::Error::other("durable kvs needs a data folder")))?;
                let mut cluster = LocalCluster::new(spec.bins.clone()).with_server_data(data);
                cluster.start_frontend().await?;
                for _ in 0..servers {
                    cluster.add_server().await?;
                }
                Running::Kvs(cluster)
            }
            System::Baseline => {
                let dir = match &spec.baseline_dir {
                    Some(dir) => dir.clone(),
                    None => baseline::locate_dir()?,
                };
                Running::Baseline(PythonBaseline::start(&dir, servers).await?)
            }
            System::Floor => start_floor(&spec.floor_exe).await?,
        })
    }

    /// The target's processes.
    fn pids(&self) -> Vec<u32> {
        match self {
            Running::Kvs(cluster) => cluster.pids(),
            Running::Baseline(baseline) => baseline.pids(),
            Running::Floor { proc, .. } => proc.id().into_iter().collect(),
        }
    }

    fn url(&self) -> String {
        match self {
            Running::Kvs(cluster) => cluster.frontend_url(),
            Running::Baseline(baseline) => baseline.frontend_url(),
            Running::Floor { url, .. } => url.clone(),
        }
    }

    async fn stop(self) {
        match self {
            Running::Kvs(cluster) => {
                let pids = cluster.pids();
                drop(cluster);
                wait_gone(&pids).await;
            }
            Running::Baseline(baseline) => baseline.stop().await,
            Running::Floor { mut proc, .. } => {
                let _ = proc.kill().await;
            }
        }
    }
}

/// Runs this program's `floor` subcommand on a fresh loopback address.
async fn start_floor(exe: &Path) -> Result<Running, StartError> {
    let host = unique_loopback();
    let addr = SocketAddr::new(IpAddr::V4(host), FRONTEND_PORT);
    let mut command = Command::new(exe);
    command.args([
        "floor",
        "--bind",
        &host.to_string(),
        "--port",
        &FRONTEND_PORT.to_string(),
    ]);
    let proc = Process::spawn_listening(command, "floor responder", addr).await?;
    Ok(Running::Floor {
        proc,
        url: format!("http://{addr}"),
    })
}

/// Waits (bounded) until none of `pids` runs (gone, or a zombie awaiting reaping).
async fn wait_gone(pids: &[u32]) {
    let deadline = Instant::now() + GONE_TIMEOUT;
    while Instant::now() < deadline && pids.iter().any(|pid| running(*pid)) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .is_some_and(|zombie| !zombie)
}

/// Runs the whole comparison.
pub async fn run(spec: &CompareSpec, progress: &CompareProgress) -> Result<CompareReport, CompareError> {
    if spec.servers.is_empty() {
        return Err(CompareError::Nothing);
    }
    let started = Instant::now();
    preflight(spec)?;
    // Removed when dropped: at the end, on an error, or if the run is cancelled.
    let scratch = if spec.durable {
        Some(ScratchDir::create().map_err(CompareError::Scratch)?)
    } else {
        None
    };
    let sync = match &scratch {
        Some(scratch) => {
            progress.begin("the disk's sync latency".to_owned());
            let dir = scratch.path().to_path_buf();
            let measured = tokio::task::spawn_blocking(move || {
                durable::sync_latency(&dir, durable::SYNC_WRITES, durable::SYNC_WRITE_BYTES)
            })
            .await
            .map_err(|e| CompareError::Scratch(std::io::Error::other(e)))?;
            Some(measured.map_err(CompareError::Scratch)?)
        }
        None => None,
    };
    let mut quiet = spec.quiet_budget;
    let mut samples = Vec::new();
    for round in 0..spec.repeat {
        for (system, servers) in spec.targets() {
            wait_for_quiet(spec, &mut quiet, progress).await;
            let data = scratch
                .as_ref()
                .map(|s| s.path().join(format!("round-{round}-{servers}-servers")));
            samples.extend(measure_target(spec, system, servers, round, data.as_deref(), progress).await?);
        }
    }
    drop(scratch);
    let median_map = results::medians(&samples);
    let open_loop = match (spec.open_loop, results::half_peak(&median_map)) {
        (true, Some(rate)) => Some(measure_open_loop(spec, rate, &mut quiet, progress).await?),
        _ => None,
    };
    let ratios = results::ratios(&median_map, &spec.servers);
    let mut verdicts = results::verdicts(&ratios, &spec.servers, open_loop.as_ref());
    let durable = sync.map(|sync| Durable {
        rows: results::durable_rows(&median_map, &spec.servers),
        sync,
    });
    if let Some(durable) = &durable {
        verdicts.push(results::durable_verdict(&durable.rows, &spec.servers, spec.connections));
    }
    Ok(CompareReport {
        revision: revision(),
        date: today(),
        machine: Machine::detect(),
        settings: spec.settings(),
        wall_secs: started.elapsed().as_secs_f64(),
        medians: results::median_rows(&median_map),
        samples,
        ratios,
        open_loop,
        verdicts,
        load_phase_errors: progress.load_phase_errors.load(Ordering::Relaxed),
        durable,
        median_map,
    })
}

/// The output of a command, trimmed, if it ran and succeeded.
fn command_output(program: &str, args: &[&str]) -> Option<String> {
    std::process::Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The current commit, `+` marking uncommitted changes, if git can tell.
fn revision() -> Option<String> {
    let commit = command_output("git", &["rev-parse", "--short", "HEAD"])?;
    let dirty =
        command_output("git", &["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    Some(if dirty { format!("{commit}+") } else { commit })
}

/// Today's date (UTC) as `YYYY-MM-DD`.
fn today() -> Option<String> {
    command_output("date", &["-u", "+%F"])
}

/// Waits until the machine (nothing of ours runs now) keeps fewer than
/// [`NOISY_CORES`] busy, for at most `spec.quiet_wait` and what is left of
/// `budget`.
async fn wait_for_quiet(spec: &CompareSpec, budget: &mut Duration, progress: &CompareProgress) {
    let limit = spec.quiet_wait.min(*budget);
    let started = Instant::now();
    while started.elapsed() < limit {
        let before = (cpu::Snapshot::take(&[]), Instant::now());
        tokio::time::sleep(QUIET_WINDOW).await;
        let busy = before
            .0
            .until(&cpu::Snapshot::take(&[]), before.1.elapsed().as_secs_f64());
        if busy.other < NOISY_CORES {
            break;
        }
        progress.begin(format!(
            "waiting for the machine to calm down ({:.1} cores busy)",
            busy.other
        ));
    }
    *budget = budget.saturating_sub(started.elapsed());
}

/// Fails early, before any measurement, if the baseline cannot run.
fn preflight(spec: &CompareSpec) -> Result<(), CompareError> {
    if spec.baseline {
        if spec.baseline_dir.is_none() {
            baseline::locate_dir()?;
        }
        ensure_free(SocketAddr::new(IpAddr::V4(baseline::HOST), FRONTEND_PORT))?;
    }
    Ok(())
}

fn target_label(system: System, servers: usize) -> String {
    match system {
        System::Floor => "floor".to_owned(),
        _ => format!("{} {servers} server(s)", system.name()),
    }
}

/// Starts a target, loads it, runs its benches once, and stops it; durable
/// kvs keeps its data in `data` (a folder of the scratch folder), which is
/// removed afterwards.
async fn measure_target(
    spec: &CompareSpec,
    system: System,
    servers: usize,
    round: usize,
    data: Option<&Path>,
    progress: &CompareProgress,
) -> Result<Vec<Sample>, CompareError> {
    let label = target_label(system, servers);
    progress.begin(format!("round {}: {label}: starting", round + 1));
    let data = data.filter(|_| system == System::KvsDurable);
    let result = match Running::start(spec, system, servers, data).await {
        Ok(running) => {
            let result = run_benches(spec, &running, system, round, &label, progress).await;
            running.stop().await;
            result
        }
        Err(error) => Err(error),
    };
    if let Some(data) = data {
        let _ = std::fs::remove_dir_all(data);
    }
    let reports = result?;
    Ok(reports
        .into_iter()
        .map(|(bench, report)| Sample {
            system,
            servers,
            bench,
            round,
            report,
        })
        .collect())
}

async fn run_benches(
    spec: &CompareSpec,
    running: &Running,
    system: System,
    round: usize,
    label: &str,
    progress: &CompareProgress,
) -> Result<Vec<(Bench, PhaseReport)>, CompareError> {
    let (url, pids) = (running.url(), running.pids());
    let duration = spec.run_duration(system);
    progress.begin(format!("round {}: {label}: load phase", round + 1));
    let load_spec = spec.load_spec(workload_of(Bench::Put), duration, round);
    let loaded = load::load_phase(&url, &load_spec, Arc::clone(&progress.load))
        .await
        .map_err(|source| CompareError::Load {
            what: format!("{label}, load phase"),
            source,
        })?;
    progress.load_phase_errors.fetch_add(loaded.errors, Ordering::Relaxed);
    let mut reports = Vec::new();
    for bench in spec.benches_of(system) {
        progress.begin(format!("round {}: {label}: {}", round + 1, bench.name()));
        let bench_spec = spec.load_spec(workload_of(bench), duration, round);
        let report = measured_run(&url, &pids, &bench_spec, progress)
            .await
            .map_err(|source| CompareError::Load {
                what: format!("{label}, {}", bench.name()),
                source,
            })?;
        progress.finish_step();
        reports.push((bench, report));
    }
    Ok(reports)
}

/// One run phase, with the CPU use of the generator and of `pids` over it.
async fn measured_run(
    url: &str,
    pids: &[u32],
    spec: &LoadSpec,
    progress: &CompareProgress,
) -> Result<PhaseReport, LoadError> {
    let before = (cpu::Snapshot::take(pids), Instant::now());
    let mut report = load::run_phase(url, spec, Arc::clone(&progress.load)).await?;
    let after = cpu::Snapshot::take(pids);
    report.cpu = Some(before.0.until(&after, before.1.elapsed().as_secs_f64()));
    Ok(report)
}

/// kvs with 1 server, the 50% mix open loop at `rate`, `repeat` times.
async fn measure_open_loop(
    spec: &CompareSpec,
    rate: f64,
    quiet: &mut Duration,
    progress: &CompareProgress,
) -> Result<OpenLoop, CompareError> {
    let mut samples = Vec::new();
    for round in 0..spec.repeat {
        wait_for_quiet(spec, quiet, progress).await;
        let what = format!("open loop {}/{} at {rate:.0} ops/s", round + 1, spec.repeat);
        progress.begin(what.clone());
        let running = Running::start(spec, System::Kvs, 1, None).await?;
        let (url, pids) = (running.url(), running.pids());
        let mut run_spec = spec.load_spec(workload_of(Bench::Mix), spec.open_loop_duration, round);
        run_spec.rate = Some(rate);
        let result = async {
            let loaded = load::load_phase(&url, &run_spec, Arc::clone(&progress.load)).await?;
            progress.load_phase_errors.fetch_add(loaded.errors, Ordering::Relaxed);
            measured_run(&url, &pids, &run_spec, progress).await
        }
        .await;
        running.stop().await;
        samples.push(result.map_err(|source| CompareError::Load { what, source })?);
        progress.finish_step();
    }
    Ok(OpenLoop {
        peak: rate * 2.0,
        rate,
        stat: Stat::of(&samples),
        samples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> CompareSpec {
        CompareSpec::standard(Binaries::in_dir("/nonexistent"), PathBuf::from("/nonexistent"))
    }

    #[test]
    fn a_round_interleaves_kvs_and_baseline_after_the_floor() {
        let targets = spec().targets();
        assert_eq!(targets.first(), Some(&(System::Floor, 0)));
        assert_eq!(targets.len(), 9);
        assert_eq!(targets[1..3], [(System::Kvs, 1), (System::Baseline, 1)]);
    }

    #[test]
    fn quick_drops_the_mix_and_repeats() {
        let quick = spec().quick();
        assert_eq!(quick.benches(), vec![Bench::Put, Bench::Get]);
        assert_eq!(quick.steps(), 9 * 2 + 1);
        assert_eq!(spec().steps(), 3 * 9 * 3 + 3);
    }

    #[test]
    fn durable_kvs_follows_in_memory_kvs_of_each_server_count() {
        let durable = CompareSpec {
            durable: true,
            ..spec()
        };
        let targets = durable.targets();
        assert_eq!(targets.len(), 13);
        assert_eq!(targets[0], (System::Floor, 0));
        for (i, n) in [1, 2, 4, 8].into_iter().enumerate() {
            assert_eq!(
                targets[1 + 3 * i..4 + 3 * i],
                [(System::Kvs, n), (System::KvsDurable, n), (System::Baseline, n)]
            );
        }
        let bare = CompareSpec {
            durable: true,
            baseline: false,
            floor: false,
            servers: vec![1, 8],
            ..spec()
        };
        assert_eq!(
            bare.targets(),
            [
                (System::Kvs, 1),
                (System::KvsDurable, 1),
                (System::Kvs, 8),
                (System::KvsDurable, 8)
            ]
        );
        // Durable kvs runs puts only.
        assert_eq!(bare.benches_of(System::KvsDurable), vec![Bench::Put]);
        assert_eq!(bare.benches_of(System::Kvs), Bench::ALL.to_vec());
        // 3 rounds of 2 in-memory targets × 3 benches and 2 durable × 1, and 3 open-loop runs.
        assert_eq!(bare.steps(), 3 * (2 * 3 + 2) + 3);
        assert_eq!(durable.quick().steps(), 9 * 2 + 4 + 1);
    }

    /// A report of before durable servers, kept as it was written.
    const OLD_REPORT: &str = include_str!("../../../../docs/history/2026-11-26-749c0aa.json");

    #[test]
    fn reports_without_durable_servers_still_parse_and_render_the_same() -> Result<(), serde_json::Error> {
        let old = CompareReport::from_json(OLD_REPORT)?;
        assert!(old.durable.is_none());
        assert!(!old.settings.durable);
        assert!(!old.render().contains("Durable"));
        assert!(!old.summary().contains("Durable"));
        // Written again, it carries no durable section and renders the same.
        let json = serde_json::to_string(&old)?;
        assert!(!json.contains("\"sync\""));
        let again = CompareReport::from_json(&json)?;
        assert_eq!(again.render(), old.render());
        assert_eq!(again.summary(), old.summary());
        Ok(())
    }

    #[test]
    fn a_report_with_durable_servers_renders_them() -> Result<(), serde_json::Error> {
        let mut report = CompareReport::from_json(OLD_REPORT)?;
        let in_memory = report.median_map.get(&(System::Kvs, 1, Bench::Put)).cloned();
        let in_memory = in_memory.map_or(0.0, |s| s.throughput);
        report.durable = Some(Durable {
            rows: vec![results::DurableRow {
                servers: 1,
                in_memory: Some(in_memory),
                durable: Some(in_memory * 0.6),
                ratio: Some(0.6),
                in_memory_p99_us: Some(2000.0),
                durable_p99_us: Some(5000.0),
            }],
            sync: results::SyncLatency::of("/tmp".to_owned(), 4096, vec![1000.0, 3000.0]),
        });
        let json = serde_json::to_string(&report)?;
        let again = CompareReport::from_json(&json)?;
        assert_eq!(again.durable, report.durable);
        let text = again.render();
        assert!(text.contains("Durable servers (`--data-dir`"), "{text}");
        assert!(text.contains("| 60% | 2.00 | 5.00 |"), "{text}");
        let summary = again.summary();
        assert!(
            summary.ends_with(
                "(60% of in-memory, p99 5.00 ms). Disk sync (4 KiB append + fdatasync) median 2.00 ms, p99 3.00 ms.\n"
            ),
            "{summary}"
        );
        Ok(())
    }

    #[test]
    fn proc_fields_are_read() {
        let meminfo = "MemTotal:       24576000 kB\nMemFree: 1 kB\n";
        assert_eq!(proc_field(meminfo, "MemTotal").as_deref(), Some("24576000 kB"));
        assert_eq!(
            proc_field("model name\t: AMD EPYC\n", "model name").as_deref(),
            Some("AMD EPYC")
        );
    }
}
