//! The comparison as a picture, in SVG and PNG: throughput against server
//! count for kvs and the baseline with the floor as flat lines (log scale),
//! and the latency percentiles of the put and get runs.
//!
//! Drawn with `plotters` without system fonts: text is laid out (and, for
//! the PNG, rasterised) with DejaVu Sans embedded from the `dejavu` crate,
//! so nothing needs to be installed.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;
use thiserror::Error;

use crate::compare::results::{Bench, Medians, Stat, System};

/// Picture size in pixels.
const SIZE: (u32, u32) = (1200, 900);
/// The family the embedded font is registered under.
const FONT: &str = "sans-serif";

/// Why a plot could not be written.
#[derive(Debug, Error)]
pub enum PlotError {
    #[error("the embedded font could not be loaded")]
    Font,
    #[error("cannot create {0}: {1}")]
    Dir(PathBuf, std::io::Error),
    #[error("drawing {0} failed: {1}")]
    Draw(PathBuf, String),
}

/// What the plot shows.
pub struct PlotData<'a> {
    pub medians: &'a Medians,
    pub servers: &'a [usize],
    pub benches: &'a [Bench],
    /// A subtitle (machine, date).
    pub note: String,
}

/// One line of a panel.
struct Line {
    label: String,
    color: RGBColor,
    dashed: bool,
    points: Vec<(i32, f64)>,
}

/// Writes `STEM.svg` and `STEM.png` into `dir`; returns their paths.
pub fn write(data: &PlotData<'_>, dir: &Path, stem: &str) -> Result<Vec<PathBuf>, PlotError> {
    register_font()?;
    std::fs::create_dir_all(dir).map_err(|e| PlotError::Dir(dir.to_path_buf(), e))?;
    let svg = dir.join(format!("{stem}.svg"));
    let png = dir.join(format!("{stem}.png"));
    let failed = |path: &Path| {
        let path = path.to_path_buf();
        move |e: String| PlotError::Draw(path, e)
    };
    draw(SVGBackend::new(&svg, SIZE).into_drawing_area(), data).map_err(failed(&svg))?;
    draw(BitMapBackend::new(&png, SIZE).into_drawing_area(), data).map_err(failed(&png))?;
    Ok(vec![svg, png])
}

fn register_font() -> Result<(), PlotError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = REGISTERED
        .get_or_init(|| plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular()).is_ok());
    if *ok { Ok(()) } else { Err(PlotError::Font) }
}

fn text_err<E: std::fmt::Display>(error: E) -> String {
    error.to_string()
}

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, data: &PlotData<'_>) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(text_err)?;
    let root = root
        .titled(
            &format!("kvs vs the Python seed design vs the floor — {}", data.note),
            (FONT, 20),
        )
        .map_err(text_err)?;
    let (top, bottom) = root.split_vertically(SIZE.1 * 45 / 100);
    let (left, right) = bottom.split_horizontally(SIZE.0 / 2);
    let throughput = Panel {
        title: "Throughput (closed loop, median)",
        unit: "ops/s",
        headroom: 2.0,
        legend: SeriesLabelPosition::MiddleRight,
    };
    panel(&top, &throughput, &throughput_lines(data))?;
    let latency = |title| Panel {
        title,
        unit: "ms",
        headroom: 30.0,
        legend: SeriesLabelPosition::UpperRight,
    };
    panel(
        &left,
        &latency("put latency (median)"),
        &latency_lines(data, Bench::Put),
    )?;
    panel(
        &right,
        &latency("get latency (median)"),
        &latency_lines(data, Bench::Get),
    )?;
    root.present().map_err(text_err)
}

fn stat<'a>(data: &'a PlotData<'_>, system: System, servers: usize, bench: Bench) -> Option<&'a Stat> {
    data.medians.get(&(system, servers, bench))
}

/// One line per (system, servers) over the server counts.
fn series(data: &PlotData<'_>, system: System, bench: Bench, value: fn(&Stat) -> f64) -> Vec<(i32, f64)> {
    data.servers
        .iter()
        .filter_map(|&n| {
            let s = stat(data, system, n, bench)?;
            Some((i32::try_from(n).ok()?, value(s)))
        })
        .collect()
}

fn bench_color(system: System, bench: Bench) -> RGBColor {
    match (system, bench) {
        (System::Kvs, Bench::Put) => RGBColor(31, 119, 180),
        (System::Kvs, Bench::Get) => RGBColor(23, 190, 207),
        (System::Kvs, Bench::Mix) => RGBColor(148, 103, 189),
        (System::KvsDurable, Bench::Put) => RGBColor(44, 160, 44),
        (System::KvsDurable, Bench::Get) => RGBColor(152, 223, 138),
        (System::KvsDurable, Bench::Mix) => RGBColor(188, 189, 34),
        (System::Baseline, Bench::Put) => RGBColor(214, 39, 40),
        (System::Baseline, Bench::Get) => RGBColor(255, 127, 14),
        (System::Baseline, Bench::Mix) => RGBColor(140, 86, 75),
        (System::Floor, Bench::Put) => RGBColor(90, 90, 90),
        (System::Floor, Bench::Get) => RGBColor(150, 150, 150),
        (System::Floor, Bench::Mix) => RGBColor(190, 190, 190),
    }
}

fn throughput_lines(data: &PlotData<'_>) -> Vec<Line> {
    let mut lines = Vec::new();
    // The floor's lines run on past the last server count, leaving room for the legend there.
    let right = data.servers.iter().max().copied().unwrap_or(8) as i32 + 4;
    for &bench in data.benches {
        // Durable kvs runs only puts; lines without points are left out.
        for system in [System::Kvs, System::KvsDurable, System::Baseline] {
            lines.push(Line {
                label: format!("{} {}", system.name(), bench.name()),
                color: bench_color(system, bench),
                dashed: false,
                points: series(data, system, bench, |s| s.throughput),
            });
        }
        if let Some(floor) = stat(data, System::Floor, 0, bench) {
            lines.push(Line {
                label: format!("floor {}", bench.name()),
                color: bench_color(System::Floor, bench),
                dashed: true,
                points: vec![(0, floor.throughput), (right, floor.throughput)],
            });
        }
    }
    lines
}

/// A percentile's name and how to read it (in ms) from a [`Stat`].
type Percentile = (&'static str, fn(&Stat) -> f64);

fn latency_lines(data: &PlotData<'_>, bench: Bench) -> Vec<Line> {
    let percentiles: [Percentile; 3] = [
        ("p50", |s| s.p50_us / 1000.0),
        ("p99", |s| s.p99_us / 1000.0),
        ("p99.9", |s| s.p999_us / 1000.0),
    ];
    let shades = |system: System| match system {
        System::Baseline => [RGBColor(252, 146, 114), RGBColor(222, 45, 38), RGBColor(120, 0, 10)],
        System::KvsDurable => [RGBColor(116, 196, 118), RGBColor(35, 139, 69), RGBColor(0, 68, 27)],
        _ => [RGBColor(107, 174, 214), RGBColor(33, 113, 181), RGBColor(8, 48, 107)],
    };
    let mut lines = Vec::new();
    for system in [System::Kvs, System::KvsDurable, System::Baseline] {
        for ((name, value), color) in percentiles.iter().zip(shades(system)) {
            lines.push(Line {
                label: format!("{} {name}", system.name()),
                color,
                dashed: system == System::Baseline,
                points: series(data, system, bench, *value),
            });
        }
    }
    lines
}

/// The y range covering every value on a log scale, with `headroom` times
/// the largest value above it (room for the legend).
fn y_range(lines: &[Line], headroom: f64) -> (f64, f64) {
    let values = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .filter(|v| *v > 0.0);
    let (lo, hi) = values.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi {
        (1.0, 10.0)
    } else {
        (lo / 2.0, hi * headroom)
    }
}

/// How one chart looks.
struct Panel {
    title: &'static str,
    unit: &'static str,
    headroom: f64,
    legend: SeriesLabelPosition,
}

fn panel<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, look: &Panel, lines: &[Line]) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let right = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.0))
        .max()
        .unwrap_or(8)
        .max(2);
    let (lo, hi) = y_range(lines, look.headroom);
    let mut chart = ChartBuilder::on(area)
        .caption(look.title, (FONT, 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0..right, (lo..hi).log_scale())
        .map_err(text_err)?;
    chart
        .configure_mesh()
        .x_desc("servers")
        .y_desc(look.unit)
        .x_labels(right as usize + 1)
        .x_label_formatter(&|x| {
            if [1, 2, 4, 8, 16].contains(x) {
                x.to_string()
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|y| short_number(*y))
        .label_style((FONT, 14))
        .draw()
        .map_err(text_err)?;
    for line in lines.iter().filter(|l| !l.points.is_empty()) {
        draw_line(&mut chart, line)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT, 13))
        .position(look.legend.clone())
        .draw()
        .map_err(text_err)
}

type Chart<'a, DB> = ChartContext<
    'a,
    DB,
    Cartesian2d<plotters::coord::types::RangedCoordi32, plotters::coord::combinators::LogCoord<f64>>,
>;

fn draw_line<DB: DrawingBackend>(chart: &mut Chart<'_, DB>, line: &Line) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let style = line.color.stroke_width(2);
    let color = line.color;
    let annotation = if line.dashed {
        chart
            .draw_series(DashedLineSeries::new(line.points.clone(), 8, 5, style))
            .map_err(text_err)?
    } else {
        chart
            .draw_series(LineSeries::new(line.points.clone(), style))
            .map_err(text_err)?
    };
    annotation
        .label(line.label.as_str())
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    if !line.dashed || line.points.len() > 2 {
        chart
            .draw_series(line.points.iter().map(|p| Circle::new(*p, 3, color.filled())))
            .map_err(text_err)?;
    }
    Ok(())
}

/// `12000` as `12k`, `0.25` as `0.25`.
fn short_number(value: f64) -> String {
    if value >= 1_000_000.0 {
        format!("{:.0}M", value / 1_000_000.0)
    } else if value >= 1000.0 {
        format!("{:.0}k", value / 1000.0)
    } else if value >= 1.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_numbers() {
        assert_eq!(short_number(12_345.0), "12k");
        assert_eq!(short_number(2_000_000.0), "2M");
        assert_eq!(short_number(0.25), "0.25");
        assert_eq!(short_number(3.0), "3");
    }

    #[test]
    fn y_range_covers_the_values() {
        let line = Line {
            label: String::new(),
            color: BLACK,
            dashed: false,
            points: vec![(1, 10.0), (2, 1000.0)],
        };
        assert_eq!(y_range(&[line], 2.0), (5.0, 2000.0));
        assert_eq!(y_range(&[], 2.0), (1.0, 10.0));
    }
}
