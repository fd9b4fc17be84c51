//! The arithmetic of `kvs-bench compare`, kept pure: medians over repeats,
//! the ratios kvs/baseline, kvs/floor and durable/in-memory, the issue's
//! targets as verdicts, and the plain-text tables.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::load::PhaseReport;
use crate::load::cpu::CpuUse;

/// What was measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum System {
    /// kvs's own binaries.
    Kvs,
    /// kvs with durable servers (`kvs-server --data-dir`: a write-ahead log
    /// synced before every acknowledgement).
    #[serde(rename = "kvs-durable")]
    KvsDurable,
    /// The Python seed design.
    Baseline,
    /// The constant-body XML-RPC responder.
    Floor,
}

impl System {
    pub fn name(self) -> &'static str {
        match self {
            System::Kvs => "kvs",
            System::KvsDurable => "kvs-durable",
            System::Baseline => "baseline",
            System::Floor => "floor",
        }
    }
}

/// One kind of measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Bench {
    /// The harness mix with 100% puts, uniform keys.
    Put,
    /// YCSB C: gets only, zipfian keys.
    Get,
    /// The harness mix with 50% puts, uniform keys.
    Mix,
}

impl Bench {
    pub const ALL: [Bench; 3] = [Bench::Put, Bench::Get, Bench::Mix];

    pub fn name(self) -> &'static str {
        match self {
            Bench::Put => "put",
            Bench::Get => "get",
            Bench::Mix => "mix",
        }
    }
}

/// One measurement of one repeat.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sample {
    pub system: System,
    /// Server count (0 for the floor, which has none).
    pub servers: usize,
    pub bench: Bench,
    /// Which repeat (0-based).
    pub round: usize,
    pub report: PhaseReport,
}

/// The median over repeats of each figure, taken separately.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stat {
    pub throughput: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    /// Errors summed over the repeats.
    pub errors: u64,
    pub runs: usize,
    /// Median cores used, if measured.
    pub cpu: Option<CpuUse>,
}

impl Stat {
    /// Medians of `reports`.
    pub fn of<'a>(reports: impl IntoIterator<Item = &'a PhaseReport>) -> Stat {
        let reports: Vec<&PhaseReport> = reports.into_iter().collect();
        let pick = |f: &dyn Fn(&PhaseReport) -> f64| median(reports.iter().map(|r| f(r)).collect());
        Stat {
            throughput: pick(&|r| r.throughput),
            p50_us: pick(&|r| r.latency.p50_us as f64),
            p99_us: pick(&|r| r.latency.p99_us as f64),
            p999_us: pick(&|r| r.latency.p999_us as f64),
            errors: reports.iter().map(|r| r.errors).sum(),
            runs: reports.len(),
            cpu: median_cpu(reports.iter().filter_map(|r| r.cpu)),
        }
    }
}

/// Medians of each share, or `None` if there is none.
fn median_cpu(uses: impl Iterator<Item = CpuUse>) -> Option<CpuUse> {
    let uses: Vec<CpuUse> = uses.collect();
    (!uses.is_empty()).then(|| CpuUse {
        generator: median(uses.iter().map(|u| u.generator).collect()),
        target: median(uses.iter().map(|u| u.target).collect()),
        other: median(uses.iter().map(|u| u.other).collect()),
        steal: uses.iter().map(|u| u.steal).collect::<Option<Vec<f64>>>().map(median),
    })
}

/// The median (the mean of the middle two for an even count; 0 when empty).
pub fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// Medians per (system, servers, bench).
pub type Medians = BTreeMap<(System, usize, Bench), Stat>;

/// Groups `samples` and takes the medians of each group.
pub fn medians(samples: &[Sample]) -> Medians {
    let mut groups: BTreeMap<(System, usize, Bench), Vec<&PhaseReport>> = BTreeMap::new();
    for sample in samples {
        groups
            .entry((sample.system, sample.servers, sample.bench))
            .or_default()
            .push(&sample.report);
    }
    groups
        .into_iter()
        .map(|(key, reports)| (key, Stat::of(reports)))
        .collect()
}

/// A median row, for JSON (whose maps need string keys).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MedianRow {
    pub system: System,
    pub servers: usize,
    pub bench: Bench,
    #[serde(flatten)]
    pub stat: Stat,
}

pub fn median_rows(medians: &Medians) -> Vec<MedianRow> {
    medians
        .iter()
        .map(|((system, servers, bench), stat)| MedianRow {
            system: *system,
            servers: *servers,
            bench: *bench,
            stat: stat.clone(),
        })
        .collect()
}

/// `a / b`, if both were measured and `b` is not zero.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

/// kvs against the baseline and the floor for one server count and bench.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RatioRow {
    pub servers: usize,
    pub bench: Bench,
    pub kvs: Option<f64>,
    pub baseline: Option<f64>,
    pub floor: Option<f64>,
    /// kvs / baseline throughput.
    pub vs_baseline: Option<f64>,
    /// kvs / floor throughput.
    pub vs_floor: Option<f64>,
}

fn throughput_of(medians: &Medians, system: System, servers: usize, bench: Bench) -> Option<f64> {
    medians.get(&(system, servers, bench)).map(|s| s.throughput)
}

/// One row per server count and bench that kvs was measured at.
pub fn ratios(medians: &Medians, servers: &[usize]) -> Vec<RatioRow> {
    let mut rows = Vec::new();
    for &n in servers {
        for bench in Bench::ALL {
            let kvs = throughput_of(medians, System::Kvs, n, bench);
            if kvs.is_none() {
                continue;
            }
            let baseline = throughput_of(medians, System::Baseline, n, bench);
            let floor = throughput_of(medians, System::Floor, 0, bench);
            rows.push(RatioRow {
                servers: n,
                bench,
                kvs,
                baseline,
                floor,
                vs_baseline: ratio(kvs, baseline),
                vs_floor: ratio(kvs, floor),
            });
        }
    }
    rows
}

/// The open-loop measurement: kvs, 1 server, the 50% mix at half the peak.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OpenLoop {
    /// The closed-loop peak it is half of (ops/s).
    pub peak: f64,
    /// The scheduled rate (ops/s).
    pub rate: f64,
    pub stat: Stat,
    pub samples: Vec<PhaseReport>,
}

impl OpenLoop {
    /// How many runs had a p99 at or below `p99_us`.
    pub fn runs_within(&self, p99_us: f64) -> usize {
        self.samples
            .iter()
            .filter(|sample| sample.latency.p99_us as f64 <= p99_us)
            .count()
    }

    /// Each run's steal in cores, in run order (`a / b / c`), if every run
    /// measured it.
    pub fn steals(&self) -> Option<String> {
        let steals = self
            .samples
            .iter()
            .map(|sample| sample.cpu.and_then(|cpu| cpu.steal).map(|steal| format!("{steal:.2}")))
            .collect::<Option<Vec<_>>>()?;
        Some(steals.join(" / "))
    }

    /// Each run's p99 in ms, in run order: `a / b / c`.
    pub fn p99s_ms(&self) -> String {
        self.samples
            .iter()
            .map(|sample| format!("{:.2}", sample.latency.p99_us as f64 / 1000.0))
            .collect::<Vec<_>>()
            .join(" / ")
    }
}

/// Half the peak of kvs with 1 server on the put+get mix: the measured 50%
/// mix if there is one, else the mix estimated from the put and get runs
/// (each operation taking its own run's mean time).
pub fn half_peak(medians: &Medians) -> Option<f64> {
    let peak = throughput_of(medians, System::Kvs, 1, Bench::Mix).or_else(|| {
        let put = throughput_of(medians, System::Kvs, 1, Bench::Put)?;
        let get = throughput_of(medians, System::Kvs, 1, Bench::Get)?;
        (put > 0.0 && get > 0.0).then(|| 1.0 / (0.5 / put + 0.5 / get))
    })?;
    (peak > 0.0).then_some(peak / 2.0)
}

/// One of the targets, judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JudgedTarget {
    pub target: String,
    /// `None` when it could not be measured in this run.
    pub met: Option<bool>,
    pub detail: String,
}

impl JudgedTarget {
    fn unmeasured(target: &str) -> JudgedTarget {
        JudgedTarget {
            target: target.to_owned(),
            met: None,
            detail: "not measured".to_owned(),
        }
    }

    pub fn label(&self) -> &'static str {
        match self.met {
            Some(true) => "met",
            Some(false) => "NOT met",
            None => "not measured",
        }
    }
}

/// Minimum target ratios from the issue.
pub const PUT_GET_VS_BASELINE: f64 = 25.0;
pub const GET_VS_FLOOR: f64 = 0.70;
pub const PUT_VS_FLOOR_1: f64 = 0.35;
pub const PUT_VS_FLOOR_8: f64 = 0.25;
pub const OPEN_LOOP_P99_US: f64 = 2000.0;

/// The lowest of `ratio` over the server counts, with where it occurred;
/// `None` unless every server count has one.
fn lowest(
    rows: &[RatioRow],
    servers: &[usize],
    bench: Bench,
    pick: fn(&RatioRow) -> Option<f64>,
) -> Option<(f64, usize)> {
    let mut low: Option<(f64, usize)> = None;
    for &n in servers {
        let row = rows.iter().find(|r| r.servers == n && r.bench == bench)?;
        let value = pick(row)?;
        if low.is_none_or(|(v, _)| value < v) {
            low = Some((value, n));
        }
    }
    low
}

fn vs_baseline_verdict(rows: &[RatioRow], servers: &[usize], bench: Bench) -> JudgedTarget {
    let target = format!(
        "{} throughput ≥ {PUT_GET_VS_BASELINE}× baseline at every server count",
        bench.name()
    );
    match lowest(rows, servers, bench, |r| r.vs_baseline) {
        Some((low, at)) => JudgedTarget {
            met: Some(low >= PUT_GET_VS_BASELINE),
            detail: format!("lowest {low:.1}× at {at} server(s)"),
            target,
        },
        None => JudgedTarget::unmeasured(&target),
    }
}

fn vs_floor_verdict(rows: &[RatioRow], servers: &[usize], bench: Bench, minimum: f64) -> JudgedTarget {
    let counts: Vec<String> = servers.iter().map(ToString::to_string).collect();
    let target = format!(
        "{} throughput ≥ {:.0}% of the floor with {} server(s)",
        bench.name(),
        minimum * 100.0,
        counts.join(", ")
    );
    match lowest(rows, servers, bench, |r| r.vs_floor) {
        Some((low, at)) => JudgedTarget {
            met: Some(low >= minimum),
            detail: format!("lowest {:.0}% at {at} server(s)", low * 100.0),
            target,
        },
        None => JudgedTarget::unmeasured(&target),
    }
}

fn open_loop_verdict(open_loop: Option<&OpenLoop>) -> JudgedTarget {
    let target = format!(
        "p99 ≤ {:.0} ms at half the peak mix rate, 1 server, open loop, on every run",
        OPEN_LOOP_P99_US / 1000.0
    );
    match open_loop {
        Some(run) if run.stat.runs > 0 => JudgedTarget {
            // Every run, not only the median: a tail that holds holds each time.
            met: Some(run.runs_within(OPEN_LOOP_P99_US) == run.samples.len() && run.stat.errors == 0),
            detail: format!(
                "p99 within on {} of {} runs ({} ms), median {:.2} ms at {:.0} ops/s (peak {:.0}){}",
                run.runs_within(OPEN_LOOP_P99_US),
                run.samples.len(),
                run.p99s_ms(),
                run.stat.p99_us / 1000.0,
                run.rate,
                run.peak,
                if run.stat.errors > 0 {
                    format!(", {} errors", run.stat.errors)
                } else {
                    String::new()
                }
            ),
            target,
        },
        _ => JudgedTarget::unmeasured(&target),
    }
}

/// The throughput and latency targets (memory and catch-up are measured elsewhere).
pub fn verdicts(rows: &[RatioRow], servers: &[usize], open_loop: Option<&OpenLoop>) -> Vec<JudgedTarget> {
    let has = |n: usize| servers.contains(&n);
    let mut out = vec![
        vs_baseline_verdict(rows, servers, Bench::Put),
        vs_baseline_verdict(rows, servers, Bench::Get),
        vs_floor_verdict(rows, servers, Bench::Get, GET_VS_FLOOR),
    ];
    if has(1) {
        out.push(vs_floor_verdict(rows, &[1], Bench::Put, PUT_VS_FLOOR_1));
    }
    if has(8) {
        out.push(vs_floor_verdict(rows, &[8], Bench::Put, PUT_VS_FLOOR_8));
    }
    out.push(open_loop_verdict(open_loop));
    out
}

/// The minimum of durable put throughput over in-memory put throughput...
pub const DURABLE_VS_MEMORY: f64 = 0.50;
/// ...with these server counts (those of them a run measured)...
pub const DURABLE_SERVER_COUNTS: [usize; 2] = [1, 8];
/// ...and this many connections.
pub const DURABLE_CONNECTIONS: usize = 64;

/// Puts with durable servers against puts with in-memory ones, at one server count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DurableRow {
    pub servers: usize,
    /// In-memory kvs, put ops/s.
    pub in_memory: Option<f64>,
    /// Durable kvs, put ops/s.
    pub durable: Option<f64>,
    /// durable / in_memory.
    pub ratio: Option<f64>,
    /// In-memory kvs, put p99 (µs).
    pub in_memory_p99_us: Option<f64>,
    /// Durable kvs, put p99 (µs).
    pub durable_p99_us: Option<f64>,
}

/// One row per server count that durable kvs was measured at.
pub fn durable_rows(medians: &Medians, servers: &[usize]) -> Vec<DurableRow> {
    servers
        .iter()
        .filter_map(|&n| {
            let durable = medians.get(&(System::KvsDurable, n, Bench::Put))?;
            let in_memory = medians.get(&(System::Kvs, n, Bench::Put));
            let in_memory_put = in_memory.map(|s| s.throughput);
            Some(DurableRow {
                servers: n,
                in_memory: in_memory_put,
                durable: Some(durable.throughput),
                ratio: ratio(Some(durable.throughput), in_memory_put),
                in_memory_p99_us: in_memory.map(|s| s.p99_us),
                durable_p99_us: Some(durable.p99_us),
            })
        })
        .collect()
}

/// The durable target: put throughput with every server syncing at least
/// [`DURABLE_VS_MEMORY`] of the in-memory figure, judged at the server
/// counts of [`DURABLE_SERVER_COUNTS`] the run measured (at every one it
/// measured if none of those).
pub fn durable_verdict(rows: &[DurableRow], servers: &[usize], connections: usize) -> JudgedTarget {
    let mut judged: Vec<usize> = servers
        .iter()
        .copied()
        .filter(|n| DURABLE_SERVER_COUNTS.contains(n))
        .collect();
    if judged.is_empty() {
        judged = servers.to_vec();
    }
    let counts: Vec<String> = judged.iter().map(ToString::to_string).collect();
    let target = format!(
        "durable put throughput ≥ {:.0}% of in-memory with {} server(s), {connections} connections",
        DURABLE_VS_MEMORY * 100.0,
        counts.join(", ")
    );
    let mut low: Option<(f64, usize)> = None;
    for &n in &judged {
        let Some(value) = rows.iter().find(|r| r.servers == n).and_then(|r| r.ratio) else {
            return JudgedTarget::unmeasured(&target);
        };
        if low.is_none_or(|(v, _)| value < v) {
            low = Some((value, n));
        }
    }
    match low {
        Some((low, at)) => JudgedTarget {
            met: Some(low >= DURABLE_VS_MEMORY),
            detail: format!(
                "lowest {:.0}% at {at} server(s){}",
                low * 100.0,
                if connections == DURABLE_CONNECTIONS {
                    String::new()
                } else {
                    format!("; the issue states it at {DURABLE_CONNECTIONS} connections")
                }
            ),
            target,
        },
        None => JudgedTarget::unmeasured(&target),
    }
}

/// The disk's sync latency: appends of `write_bytes` each followed by
/// `fdatasync`, in a scratch file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncLatency {
    /// The folder the scratch file was in (its file system is what was measured).
    pub dir: String,
    pub writes: usize,
    pub write_bytes: usize,
    pub median_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
}

impl SyncLatency {
    /// From the time of each append + sync, in µs.
    pub fn of(dir: String, write_bytes: usize, samples_us: Vec<f64>) -> SyncLatency {
        SyncLatency {
            dir,
            writes: samples_us.len(),
            write_bytes,
            median_us: median(samples_us.clone()),
            p99_us: percentile(samples_us.clone(), 0.99),
            max_us: samples_us.into_iter().fold(0.0, f64::max),
        }
    }
}

/// The nearest-rank `q` quantile (0 when empty).
pub fn percentile(mut values: Vec<f64>, q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let rank = (q.clamp(0.0, 1.0) * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

/// What the durable servers gave: puts per server count, and the disk's sync latency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Durable {
    pub rows: Vec<DurableRow>,
    pub sync: SyncLatency,
}

/// The durable rows as a Markdown table, then the disk's sync latency.
pub fn format_durable(durable: &Durable) -> String {
    let mut out = String::from(
        "| servers | put ops/s in-memory | put ops/s durable | durable/in-memory | put p99 in-memory | put p99 durable |\n\
         |---:|---:|---:|---:|---:|---:|\n",
    );
    let ops = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), thousands);
    let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), millis);
    for row in &durable.rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            row.servers,
            ops(row.in_memory),
            ops(row.durable),
            percent(row.ratio),
            ms(row.in_memory_p99_us),
            ms(row.durable_p99_us)
        );
    }
    let sync = &durable.sync;
    let _ = writeln!(
        out,
        "\nDisk sync latency in {} ({} × {} KiB append + fdatasync): median {} ms, p99 {} ms, max {} ms.",
        sync.dir,
        sync.writes,
        sync.write_bytes / 1024,
        millis(sync.median_us),
        millis(sync.p99_us),
        millis(sync.max_us)
    );
    out
}

/// `12345.6` as `12,346`.
pub fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Microseconds as milliseconds with two decimals.
pub fn millis(us: f64) -> String {
    format!("{:.2}", us / 1000.0)
}

fn times(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}×"))
}

fn percent(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{:.0}%", v * 100.0))
}

/// The medians as a Markdown table: one row per system and server count,
/// throughput and p50/p99/p99.9 (ms) per bench.
pub fn format_medians(medians: &Medians, benches: &[Bench]) -> String {
    let columns = |b: &str| {
        vec![
            format!("{b} ops/s"),
            format!("{b} p50"),
            format!("{b} p99"),
            format!("{b} p99.9"),
        ]
    };
    per_system_table(medians, benches, columns, |stat| match stat {
        Some(s) => {
            let errors = if s.errors > 0 {
                format!(" ({} err)", s.errors)
            } else {
                String::new()
            };
            vec![
                format!("{}{errors}", thousands(s.throughput)),
                millis(s.p50_us),
                millis(s.p99_us),
                millis(s.p999_us),
            ]
        }
        None => vec!["-".to_owned(); 4],
    })
}

/// A Markdown table with one row per (system, server count) and, for each
/// bench, the columns `columns(bench name)` filled by `cells(its median)`.
fn per_system_table(
    medians: &Medians,
    benches: &[Bench],
    columns: impl Fn(&str) -> Vec<String>,
    cells: impl Fn(Option<&Stat>) -> Vec<String>,
) -> String {
    let mut out = String::from("| system | servers |");
    let mut rule = String::from("|---|---:|");
    for bench in benches {
        for column in columns(bench.name()) {
            let _ = write!(out, " {column} |");
            rule.push_str("---:|");
        }
    }
    out.push('\n');
    out.push_str(&rule);
    out.push('\n');
    let mut rows: Vec<(System, usize)> = medians.keys().map(|(s, n, _)| (*s, *n)).collect();
    rows.dedup();
    for (system, servers) in rows {
        let count = if system == System::Floor {
            "-".to_owned()
        } else {
            servers.to_string()
        };
        let _ = write!(out, "| {} | {count} |", system.name());
        for bench in benches {
            for cell in cells(medians.get(&(system, servers, *bench))) {
                let _ = write!(out, " {cell} |");
            }
        }
        out.push('\n');
    }
    out
}

/// The ratios as a Markdown table, one row per server count.
pub fn format_ratios(rows: &[RatioRow], benches: &[Bench]) -> String {
    let mut out = String::from("| servers |");
    let mut rule = String::from("|---:|");
    for bench in benches {
        let _ = write!(out, " {0} kvs/baseline | {0} kvs/floor |", bench.name());
        rule.push_str("---:|---:|");
    }
    out.push('\n');
    out.push_str(&rule);
    out.push('\n');
    let mut counts: Vec<usize> = rows.iter().map(|r| r.servers).collect();
    counts.dedup();
    for n in counts {
        let _ = write!(out, "| {n} |");
        for bench in benches {
            let row = rows.iter().find(|r| r.servers == n && r.bench == *bench);
            let _ = write!(
                out,
                " {} | {} |",
                times(row.and_then(|r| r.vs_baseline)),
                percent(row.and_then(|r| r.vs_floor))
            );
        }
        out.push('\n');
    }
    out
}

/// Cores used by the generator, the target and everything else during each
/// run (medians), as a Markdown table.
pub fn format_cpu(medians: &Medians, benches: &[Bench]) -> String {
    let columns = |b: &str| {
        vec![
            format!("{b} generator / target / other"),
            format!("{b} target CPU µs/op"),
        ]
    };
    per_system_table(medians, benches, columns, |stat| {
        let cores = match stat.and_then(|s| s.cpu) {
            Some(c) => format!("{:.2} / {:.2} / {:.2}", c.generator, c.target, c.other),
            None => "-".to_owned(),
        };
        let per_op = match stat.and_then(|s| Some((s.cpu?, s.throughput))) {
            Some((c, throughput)) if throughput > 0.0 => format!("{:.1}", cpu_us_per_op(c.target, throughput)),
            _ => "-".to_owned(),
        };
        vec![cores, per_op]
    })
}

/// CPU time, in µs, that `cores` busy cores spend on each of `throughput`
/// operations a second: for kvs, every process of the cluster (the
/// frontend and all servers, from `/proc`).
pub fn cpu_us_per_op(cores: f64, throughput: f64) -> f64 {
    cores * 1e6 / throughput
}

/// The verdicts, one line each.
pub fn format_verdicts(verdicts: &[JudgedTarget]) -> String {
    verdicts
        .iter()
        .map(|v| format!("- {}: **{}** ({})\n", v.target, v.label(), v.detail))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::LatencySummary;

    fn report(throughput: f64, p99_us: u64) -> PhaseReport {
        PhaseReport {
            throughput,
            latency: LatencySummary {
                p50_us: p99_us / 2,
                p99_us,
                p999_us: p99_us * 2,
                ..LatencySummary::default()
            },
            ..PhaseReport::default()
        }
    }

    fn sample(system: System, servers: usize, bench: Bench, round: usize, throughput: f64) -> Sample {
        Sample {
            system,
            servers,
            bench,
            round,
            report: report(throughput, 1000),
        }
    }

    #[test]
    fn median_odd_even_empty() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(vec![]), 0.0);
    }

    #[test]
    fn medians_group_by_target_and_bench() {
        let samples = vec![
            sample(System::Kvs, 1, Bench::Put, 0, 100.0),
            sample(System::Kvs, 1, Bench::Put, 1, 300.0),
            sample(System::Kvs, 1, Bench::Put, 2, 200.0),
            sample(System::Baseline, 1, Bench::Put, 0, 10.0),
        ];
        let medians = medians(&samples);
        assert_eq!(medians.len(), 2);
        let kvs = &medians[&(System::Kvs, 1, Bench::Put)];
        assert_eq!((kvs.throughput, kvs.runs), (200.0, 3));
        assert_eq!(kvs.p99_us, 1000.0);
    }

    fn grid() -> Medians {
        let mut samples = vec![
            sample(System::Floor, 0, Bench::Put, 0, 1000.0),
            sample(System::Floor, 0, Bench::Get, 0, 1000.0),
        ];
        for (n, kvs_put, kvs_get, base) in [(1, 400.0, 800.0, 10.0), (8, 200.0, 690.0, 20.0)] {
            samples.push(sample(System::Kvs, n, Bench::Put, 0, kvs_put));
            samples.push(sample(System::Kvs, n, Bench::Get, 0, kvs_get));
            samples.push(sample(System::Baseline, n, Bench::Put, 0, base));
            samples.push(sample(System::Baseline, n, Bench::Get, 0, base));
        }
        medians(&samples)
    }

    #[test]
    fn ratio_arithmetic() {
        assert_eq!(ratio(Some(50.0), Some(2.0)), Some(25.0));
        assert_eq!(ratio(Some(50.0), Some(0.0)), None);
        assert_eq!(ratio(None, Some(2.0)), None);
        let rows = ratios(&grid(), &[1, 8]);
        let put8 = rows.iter().find(|r| r.servers == 8 && r.bench == Bench::Put);
        assert_eq!(put8.and_then(|r| r.vs_baseline), Some(10.0));
        assert_eq!(put8.and_then(|r| r.vs_floor), Some(0.2));
        // No mix was measured, so no mix rows.
        assert!(rows.iter().all(|r| r.bench != Bench::Mix));
    }

    #[test]
    fn verdicts_judge_each_target() {
        let rows = ratios(&grid(), &[1, 8]);
        let open = OpenLoop {
            peak: 600.0,
            rate: 300.0,
            stat: Stat::of([&report(300.0, 1500)]),
            samples: vec![report(300.0, 1500)],
        };
        let verdicts = verdicts(&rows, &[1, 8], Some(&open));
        let met: Vec<Option<bool>> = verdicts.iter().map(|v| v.met).collect();
        // put vs baseline: 40× and 10× → not met; get: 80× and 34.5× → met;
        // get vs floor: 80% and 69% → not met; put vs floor at 1: 40% → met;
        // at 8: 20% → not met; open loop p99 1.5 ms → met.
        assert_eq!(
            met,
            vec![
                Some(false),
                Some(true),
                Some(false),
                Some(true),
                Some(false),
                Some(true)
            ]
        );
        assert!(verdicts[0].detail.contains("10.0× at 8"));
        assert!(verdicts[2].detail.contains("69% at 8"));
    }

    #[test]
    fn the_open_loop_target_needs_every_run_within() {
        let samples = vec![report(300.0, 1500), report(300.0, 2500), report(300.0, 1800)];
        let open = OpenLoop {
            peak: 600.0,
            rate: 300.0,
            stat: Stat::of(&samples),
            samples,
        };
        // The median p99 (1.8 ms) is within 2 ms; the second run is not.
        assert_eq!(open.runs_within(OPEN_LOOP_P99_US), 2);
        let verdict = open_loop_verdict(Some(&open));
        assert_eq!(verdict.met, Some(false));
        assert!(
            verdict.detail.contains("on 2 of 3 runs (1.50 / 2.50 / 1.80 ms)"),
            "{}",
            verdict.detail
        );
        assert!((cpu_us_per_op(0.5, 25_000.0) - 20.0).abs() < 1e-9);
    }

    #[test]
    fn verdicts_without_a_baseline_are_unmeasured() {
        let mut medians = grid();
        medians.retain(|(system, _, _), _| *system != System::Baseline);
        let verdicts = verdicts(&ratios(&medians, &[1, 8]), &[1, 8], None);
        assert_eq!(verdicts[0].met, None);
        assert_eq!(verdicts[5].label(), "not measured");
    }

    #[test]
    fn half_peak_prefers_the_measured_mix() {
        let mut medians = grid();
        // put 400, get 800 → estimated mix 533.3, half 266.7.
        let estimated = half_peak(&medians).unwrap_or_default();
        assert!((estimated - 266.666).abs() < 0.01, "{estimated}");
        medians.insert((System::Kvs, 1, Bench::Mix), Stat::of([&report(700.0, 1)]));
        assert_eq!(half_peak(&medians), Some(350.0));
    }

    fn with_durable(puts: &[(usize, f64)]) -> Medians {
        let mut samples: Vec<Sample> = Vec::new();
        for &(n, put) in puts {
            samples.push(Sample {
                report: report(put, 4000),
                ..sample(System::KvsDurable, n, Bench::Put, 0, put)
            });
        }
        let mut medians = grid();
        medians.extend(super::medians(&samples));
        medians
    }

    #[test]
    fn durable_rows_divide_by_in_memory_puts() {
        // In-memory puts: 400 at 1 server, 200 at 8.
        let rows = durable_rows(&with_durable(&[(1, 300.0), (8, 90.0)]), &[1, 8]);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].ratio, Some(0.75));
        assert_eq!(rows[1].ratio, Some(0.45));
        assert_eq!((rows[1].in_memory, rows[1].durable), (Some(200.0), Some(90.0)));
        assert_eq!(
            (rows[1].in_memory_p99_us, rows[1].durable_p99_us),
            (Some(1000.0), Some(4000.0))
        );
        // Nothing durable measured, no rows.
        assert!(durable_rows(&grid(), &[1, 8]).is_empty());
    }

    #[test]
    fn the_durable_verdict_takes_the_lowest_of_1_and_8_servers() {
        let verdict = |puts: &[(usize, f64)], servers: &[usize], connections| {
            let medians = with_durable(puts);
            durable_verdict(&durable_rows(&medians, servers), servers, connections)
        };
        let met = verdict(&[(1, 300.0), (8, 100.0)], &[1, 8], 64);
        assert_eq!(met.met, Some(true));
        assert_eq!(met.detail, "lowest 50% at 8 server(s)");
        assert!(
            met.target
                .contains("≥ 50% of in-memory with 1, 8 server(s), 64 connections")
        );
        let not_met = verdict(&[(1, 150.0), (8, 190.0)], &[1, 8], 32);
        assert_eq!(not_met.met, Some(false));
        assert_eq!(
            not_met.detail,
            "lowest 38% at 1 server(s); the issue states it at 64 connections"
        );
        // A server count of 1 or 8 without a durable figure: not measured.
        assert_eq!(verdict(&[(1, 300.0)], &[1, 8], 64).met, None);
        // Other server counts are judged only when neither 1 nor 8 was run.
        let mut medians = with_durable(&[(1, 300.0)]);
        medians.insert((System::Kvs, 2, Bench::Put), Stat::of([&report(100.0, 1)]));
        medians.insert((System::KvsDurable, 2, Bench::Put), Stat::of([&report(10.0, 1)]));
        let rows = durable_rows(&medians, &[1, 2]);
        assert_eq!(durable_verdict(&rows, &[1, 2], 64).met, Some(true));
        let only_two = durable_verdict(&rows, &[2], 64);
        assert_eq!(
            (only_two.met, only_two.detail.as_str()),
            (Some(false), "lowest 10% at 2 server(s)")
        );
    }

    #[test]
    fn sync_latency_percentiles() {
        let samples: Vec<f64> = (1..=200).rev().map(f64::from).collect();
        let sync = SyncLatency::of("/tmp".to_owned(), 4096, samples);
        assert_eq!(
            (sync.writes, sync.median_us, sync.p99_us, sync.max_us),
            (200, 100.5, 198.0, 200.0)
        );
        assert_eq!(percentile(vec![], 0.99), 0.0);
        assert_eq!(percentile(vec![7.0], 0.99), 7.0);
        assert_eq!(percentile(vec![1.0, 2.0, 3.0, 4.0], 0.5), 2.0);
    }

    #[test]
    fn durable_kvs_is_named_kvs_durable() -> Result<(), serde_json::Error> {
        assert_eq!(serde_json::to_string(&System::KvsDurable)?, "\"kvs-durable\"");
        assert_eq!(serde_json::from_str::<System>("\"kvs\"")?, System::Kvs);
        assert_eq!(System::KvsDurable.name(), "kvs-durable");
        Ok(())
    }

    #[test]
    fn the_durable_table_and_sync_line() {
        let durable = Durable {
            rows: durable_rows(&with_durable(&[(1, 300.0), (8, 90.0)]), &[1, 8]),
            sync: SyncLatency::of("/tmp".to_owned(), 4096, vec![1500.0, 2500.0]),
        };
        let text = format_durable(&durable);
        assert!(text.contains("| 1 | 400 | 300 | 75% | 1.00 | 4.00 |"), "{text}");
        assert!(text.contains("| 8 | 200 | 90 | 45% | 1.00 | 4.00 |"), "{text}");
        assert!(
            text.contains("in /tmp (2 × 4 KiB append + fdatasync): median 2.00 ms, p99 2.50 ms, max 2.50 ms."),
            "{text}"
        );
        // The medians table gains a kvs-durable row per server count, after kvs.
        let table = format_medians(&with_durable(&[(1, 300.0), (8, 90.0)]), &[Bench::Put, Bench::Get]);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[4].starts_with("| kvs-durable | 1 | 300 |"), "{table}");
        assert!(lines[4].ends_with("| - | - | - | - |"), "{table}");
    }

    #[test]
    fn number_formats() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1234.0), "1,234");
        assert_eq!(thousands(1_234_567.8), "1,234,568");
        assert_eq!(millis(1234.0), "1.23");
        assert_eq!(times(Some(25.04)), "25.0×");
        assert_eq!(percent(Some(0.351)), "35%");
        assert_eq!(percent(None), "-");
    }

    #[test]
    fn tables_have_one_row_per_target() {
        let medians = grid();
        let table = format_medians(&medians, &[Bench::Put, Bench::Get]);
        let lines: Vec<&str> = table.lines().collect();
        // header, rule, kvs 1, kvs 8, baseline 1, baseline 8, floor.
        assert_eq!(lines.len(), 7, "{table}");
        assert!(lines[2].starts_with("| kvs | 1 | 400 |"), "{}", lines[2]);
        assert!(lines[6].starts_with("| floor | - | 1,000 |"), "{}", lines[6]);
        let ratios = format_ratios(&ratios(&medians, &[1, 8]), &[Bench::Put, Bench::Get]);
        assert!(ratios.contains("| 1 | 40.0× | 40% | 80.0× | 80% |"), "{ratios}");
    }
}
