//! Charts as SVG files: the training loss over the steps ([`loss_chart`]), the fitted line over
//! the data ([`fit_chart`]) and the benchmark's time per step over the batch size
//! ([`bench_chart`]).
//!
//! SVG only: a PNG needs its text rasterised, and plotters can do that only with system font
//! libraries (or a bundled font). In SVG the viewer lays the text out; plotters' own estimate
//! of text widths, used to place the legend, is rough, so labels are kept short.
//!
//! Each chart is drawn in memory and written with [`write_atomically`]: an existing file is
//! replaced whole or, on error, left as it was. In the SVG every series is one `<polyline>` in
//! its own colour (the axes and tick marks are black polylines, the grid is `<line>`s); its
//! legend entry is a filled `<rect>` swatch in that colour and a `<text>` with its name;
//! markers and data points are `<circle>`s.

use std::ops::Range;
use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::coord::combinators::{BindKeyPoints, LogCoord, WithKeyPoints};
use plotters::coord::ranged1d::{Ranged, ValueFormatter};
use plotters::prelude::*;
use serde::Deserialize;

use crate::checkpoint::{check_destination, write_atomically};
use crate::error::{Error, Result};
use crate::metrics_log::{MetricsRow, VAL_LOSS};

/// The size of every chart, in pixels.
pub const CHART_SIZE: (u32, u32) = (900, 560);

/// The most data points [`fit_chart`] draws; more are thinned to this many.
pub const FIT_SAMPLE: usize = 2000;

/// At most about this many vertices per loss line (two per pixel of the plot's width and then
/// some): a longer series keeps the lowest and the highest loss of each stretch of steps, so a
/// spike or a dip still shows and a million logged steps do not make a 30 MB picture.
pub const LOSS_POINTS: usize = 2000;

/// Series colours, in order (Tableau 10): a chart with more series reuses them.
pub const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

/// The colour of the data points in [`fit_chart`].
const DATA_COLOR: RGBColor = RGBColor(110, 110, 110);

/// One named line of a chart.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// The legend's label, e.g. `train`, `validation`, `wgpu fused`.
    pub name: String,
    /// `(x, y)` points, drawn in this order.
    pub points: Vec<(f64, f64)>,
}

impl Series {
    /// A series named `name`.
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Self {
            name: name.into(),
            points,
        }
    }
}

/// Fails early, before any work, when `path` cannot receive a chart: not a `.svg` name, or a
/// destination [`check_destination`] refuses.
pub fn check_svg_path(path: &Path, force: bool) -> Result<()> {
    check_extension(path)?;
    check_destination(path, force)
}

/// Draws the loss over the steps: x = step, y = loss on a log scale, one line per series (e.g.
/// `train` and `validation`, see [`loss_series`]), with a legend.
///
/// Points with a NaN or infinite coordinate are left out (a diverged step). A loss of 0 or
/// below, which a log scale cannot show (an exact fit), is drawn at the smallest positive loss
/// of the chart, so the line stays visible and ends at the bottom. A series without points is
/// left out; when no series has one, or no loss is above 0, the error is "nothing to plot".
pub fn loss_chart(series: &[Series], out: &Path, force: bool) -> Result<()> {
    check_extension(out)?;
    let lines = finite_lines(series, |_| true);
    let floor = lines
        .iter()
        .flat_map(|s| &s.points)
        .map(|&(_, y)| y)
        .filter(|&y| y > 0.0)
        .fold(f64::INFINITY, f64::min);
    if lines.is_empty() || !floor.is_finite() {
        return Err(nothing_to_plot(
            out,
            "no finite loss above 0 (a log scale shows only those)",
        ));
    }
    let lines: Vec<Series> = lines
        .into_iter()
        .map(|s| Series::new(s.name, envelope(&clamp_below(s.points, floor), LOSS_POINTS)))
        .collect();
    let (x, y) = (bounds(&lines, |p| p.0), bounds(&lines, |p| p.1));
    let svg = render(|root| {
        let mut chart = chart_builder(root, "training loss")
            .build_cartesian_2d(padded_linear(x), log_axis(padded_log(y), 14))?;
        draw_axes(&mut chart, "step", "loss (MSE, log scale)")?;
        draw_lines(&mut chart, &lines, 0)?;
        // A loss falls: the upper right is where the lines are not.
        draw_legend(&mut chart, SeriesLabelPosition::UpperRight)
    })
    .map_err(|message| drawing_failed(out, message))?;
    write_atomically(out, svg.as_bytes(), force)
}

/// The series of a metrics file for [`loss_chart`]: `train` from the `loss` column and, when
/// any row has one, `validation` from [`VAL_LOSS`].
pub fn loss_series(rows: &[MetricsRow]) -> Vec<Series> {
    let train = rows.iter().map(|r| (r.step as f64, f64::from(r.loss)));
    let validation: Vec<(f64, f64)> = rows
        .iter()
        .filter_map(|r| Some((r.step as f64, r.get(VAL_LOSS)?)))
        .collect();
    let mut series = vec![Series::new("train", train.collect())];
    if !validation.is_empty() {
        series.push(Series::new("validation", validation));
    }
    series
}

/// Draws the data and the fitted line `y = w·x + b` (`fitted` is `(w, b)`), with the true line
/// when known, and a legend giving each line's `w` and `b`.
///
/// At most [`FIT_SAMPLE`] points are drawn: more are thinned evenly by index (every k-th),
/// while the lines span the x range of all of them. Points with a NaN or infinite coordinate
/// are left out, and so is a line whose `w` or `b` is not finite; without any finite point the
/// error is "nothing to plot".
pub fn fit_chart(
    points: &[(f64, f64)],
    fitted: (f64, f64),
    truth: Option<(f64, f64)>,
    out: &Path,
    force: bool,
) -> Result<()> {
    check_extension(out)?;
    let data: Vec<(f64, f64)> = points.iter().copied().filter(is_finite).collect();
    if data.is_empty() {
        return Err(nothing_to_plot(out, "no data point with finite x and y"));
    }
    let sample = thin(&data, FIT_SAMPLE);
    let (x_low, x_high) = bounds_of(data.iter().map(|p| p.0));
    let line = |name: &str, (w, b): (f64, f64)| {
        let ends = vec![(x_low, w * x_low + b), (x_high, w * x_high + b)];
        ends.iter()
            .all(is_finite)
            .then(|| Series::new(format!("{name}: w = {}, b = {}", short(w), short(b)), ends))
    };
    // The true line first, so that the fitted one is drawn over it.
    let lines: Vec<Series> = [truth.and_then(|t| line("truth", t)), line("fit", fitted)]
        .into_iter()
        .flatten()
        .collect();
    let y = bounds_of(
        data.iter()
            .chain(lines.iter().flat_map(|l| &l.points))
            .map(|p| p.1),
    );
    let data_label = if sample.len() < data.len() {
        format!("data ({} of {} points)", sample.len(), data.len())
    } else {
        "data".to_owned()
    };
    let svg = render(|root| {
        let mut chart = chart_builder(root, "fitted line")
            .build_cartesian_2d(padded_linear((x_low, x_high)), padded_linear(y))?;
        draw_axes(&mut chart, "x", "y")?;
        chart
            .draw_series(
                sample
                    .iter()
                    .map(|&p| Circle::new(p, 2, DATA_COLOR.mix(0.35).filled())),
            )?
            .label(data_label)
            .legend(|(x, y)| Circle::new((x + 9, y), 3, DATA_COLOR.filled()));
        // Truth, when drawn, takes the second colour: the fit keeps the first in every chart.
        let colors = if lines.len() == 2 {
            [PALETTE[1], PALETTE[0]]
        } else {
            [PALETTE[0], PALETTE[1]]
        };
        // The truth wide and below, so that a fit right on it still shows both.
        let widths = if lines.len() == 2 { [5, 2] } else { [2, 2] };
        for ((line, color), width) in lines.iter().zip(colors).zip(widths) {
            draw_line(&mut chart, line, color.stroke_width(width), 0)?;
        }
        // In the corner the fitted line moves away from.
        let corner = if fitted.0 >= 0.0 {
            SeriesLabelPosition::UpperLeft
        } else {
            SeriesLabelPosition::UpperRight
        };
        draw_legend(&mut chart, corner)
    })
    .map_err(|message| drawing_failed(out, message))?;
    write_atomically(out, svg.as_bytes(), force)
}

/// Draws the time per step over the batch size, both on log scales: one line with a marker
/// per point for each series (e.g. `flex autodiff`, `wgpu fused`, `autograd`, `torch cuda`;
/// see [`bench_series`]), with a legend.
///
/// Points with x or y not above 0 or not finite (a skipped row) are left out, the others are
/// drawn in order of x; a series without points is left out, and without any the error is
/// "nothing to plot".
pub fn bench_chart(series: &[Series], out: &Path, force: bool) -> Result<()> {
    check_extension(out)?;
    let mut lines = finite_lines(series, |&(x, y)| x > 0.0 && y > 0.0);
    if lines.is_empty() {
        return Err(nothing_to_plot(
            out,
            "no timed row (batch and µs per step above 0)",
        ));
    }
    for line in &mut lines {
        line.points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    let (x, y) = (bounds(&lines, |p| p.0), bounds(&lines, |p| p.1));
    let svg = render(|root| {
        let mut chart = chart_builder(root, "time per training step")
            .build_cartesian_2d(log_axis(padded_log(x), 8), log_axis(padded_log(y), 14))?;
        draw_axes(
            &mut chart,
            "batch size (log scale)",
            "µs per step (log scale)",
        )?;
        draw_lines(&mut chart, &lines, 3)?;
        // Time per step grows with the batch: the upper left is where the lines are not.
        draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)
    })
    .map_err(|message| drawing_failed(out, message))?;
    write_atomically(out, svg.as_bytes(), force)
}

/// The series of a benchmark's JSON file for [`bench_chart`]: `burnfit bench --json` or
/// `benches/torch_reference.py --json`, which both hold `{"machine": …, "rows": [{"system",
/// "batch", "us_per_step", …}]}`. One series per system, in order of first appearance, named
/// after it without `burnfit/` and with `/` as a space (`burnfit/wgpu/fused` → `wgpu fused`,
/// `torch/cuda` → `torch cuda`); x = batch, y = µs per step. A skipped row (`us_per_step` is
/// null) has no point.
pub fn bench_series(path: &Path) -> Result<Vec<Series>> {
    let text = crate::input::read_regular_file(path, 64 << 20).map_err(|message| Error::Plot {
        path: path.to_owned(),
        message,
    })?;
    bench_series_from_json(&text, path)
}

/// [`bench_series`] of a benchmark JSON already in memory; `path` names it in errors.
pub fn bench_series_from_json(text: &[u8], path: &Path) -> Result<Vec<Series>> {
    #[derive(Deserialize)]
    struct BenchFile {
        rows: Vec<BenchFileRow>,
    }
    #[derive(Deserialize)]
    struct BenchFileRow {
        system: String,
        batch: f64,
        us_per_step: Option<f64>,
    }
    let fail = |message: String| Error::Plot {
        path: path.to_owned(),
        message,
    };
    let file: BenchFile = serde_json::from_slice(text).map_err(|e| {
        fail(format!(
            "not the JSON of `burnfit bench --json` or torch_reference.py --json: {e}"
        ))
    })?;
    let mut series: Vec<Series> = Vec::new();
    for row in file.rows {
        let name = row
            .system
            .strip_prefix("burnfit/")
            .unwrap_or(&row.system)
            .replace('/', " ");
        let index = match series.iter().position(|s| s.name == name) {
            Some(index) => index,
            None => {
                series.push(Series::new(name, Vec::new()));
                series.len() - 1
            }
        };
        if let Some(us) = row.us_per_step {
            series[index].points.push((row.batch, us));
        }
    }
    Ok(series)
}

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type DrawResult<DB> =
    std::result::Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;
/// What drawing on an [`SVGBackend`] can fail with (in practice never: it writes to a string).
type SvgResult = std::result::Result<(), DrawingAreaErrorKind<std::io::Error>>;

/// Draws on a white SVG canvas of [`CHART_SIZE`] and returns the document.
fn render(draw: impl FnOnce(&Area<'_>) -> SvgResult) -> std::result::Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, CHART_SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        draw(&root).map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

fn chart_builder<'a, 'b>(
    root: &'a Area<'b>,
    caption: &str,
) -> ChartBuilder<'a, 'b, SVGBackend<'b>> {
    let mut builder = ChartBuilder::on(root);
    builder
        .caption(caption, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72);
    builder
}

/// The mesh, ticks labelled by [`tick`], and the axis descriptions.
fn draw_axes<DB, X, Y>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<X, Y>>,
    x_desc: &str,
    y_desc: &str,
) -> DrawResult<DB>
where
    DB: DrawingBackend,
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_label_formatter(&|v| tick(*v))
        .y_label_formatter(&|v| tick(*v))
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .light_line_style(BLACK.mix(0.04))
        .bold_line_style(BLACK.mix(0.12))
        .draw()
}

/// Each series in the next colour of [`PALETTE`], with `marker`-pixel dots when not 0.
fn draw_lines<DB, X, Y>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<X, Y>>,
    lines: &[Series],
    marker: u32,
) -> DrawResult<DB>
where
    DB: DrawingBackend,
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    for (i, line) in lines.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        draw_line(chart, line, color.stroke_width(2), marker)?;
    }
    Ok(())
}

/// One series: a single polyline in `style` (a lone point gets a dot, or it would not show),
/// and its legend entry, a swatch of its colour.
fn draw_line<DB, X, Y>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<X, Y>>,
    line: &Series,
    style: ShapeStyle,
    marker: u32,
) -> DrawResult<DB>
where
    DB: DrawingBackend,
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    let marker = if line.points.len() == 1 {
        marker.max(3)
    } else {
        marker
    };
    chart
        .draw_series(
            // Filled: the markers are dots; the line itself is never filled.
            LineSeries::new(line.points.iter().copied(), style.filled()).point_size(marker),
        )?
        .label(line.name.as_str())
        .legend(move |(x, y)| Rectangle::new([(x, y - 1), (x + 18, y + 2)], style.color.filled()));
    Ok(())
}

fn draw_legend<'a, DB, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    position: SeriesLabelPosition,
) -> DrawResult<DB>
where
    DB: DrawingBackend + 'a,
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    chart
        .configure_series_labels()
        .position(position)
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()
}

/// A tick label: 4 significant digits, plain from 0.001 to 99999, else `1.049e6`.
fn tick(value: f64) -> String {
    significant(value, 4)
}

/// A parameter in a legend: 5 significant digits, plain from 0.001 to 99999.
fn short(value: f64) -> String {
    significant(value, 5)
}

/// `value` to `digits` significant digits, trailing zeros dropped.
fn significant(value: f64, digits: usize) -> String {
    let text = format!("{value:.*e}", digits - 1);
    let Some((mantissa, exponent)) = text.split_once('e') else {
        return text; // NaN, inf
    };
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if value == 0.0 || (-3..5).contains(&exponent) {
        let decimals = (digits as i32 - 1 - exponent).max(0) as usize;
        trim_zeros(format!("{value:.decimals$}"))
    } else {
        format!("{}e{exponent}", trim_zeros(mantissa.to_owned()))
    }
}

fn trim_zeros(text: String) -> String {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

fn is_finite(point: &(f64, f64)) -> bool {
    point.0.is_finite() && point.1.is_finite()
}

/// The series with only their finite points that `keep` accepts, those left with none dropped.
fn finite_lines(series: &[Series], keep: impl Fn(&(f64, f64)) -> bool) -> Vec<Series> {
    series
        .iter()
        .map(|s| {
            let points = s
                .points
                .iter()
                .copied()
                .filter(|p| is_finite(p) && keep(p))
                .collect();
            Series::new(s.name.clone(), points)
        })
        .filter(|s| !s.points.is_empty())
        .collect()
}

fn clamp_below(points: Vec<(f64, f64)>, floor: f64) -> Vec<(f64, f64)> {
    points.into_iter().map(|(x, y)| (x, y.max(floor))).collect()
}

/// The smallest and largest of one coordinate over all points of `lines` (not empty).
fn bounds(lines: &[Series], coordinate: impl Fn(&(f64, f64)) -> f64) -> (f64, f64) {
    bounds_of(lines.iter().flat_map(|s| &s.points).map(coordinate))
}

fn bounds_of(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values.fold((f64::INFINITY, f64::NEG_INFINITY), |(low, high), v| {
        (low.min(v), high.max(v))
    })
}

/// A log axis over `range` (above 0) with its own ticks: plotters' own start only at a power
/// of the base, leaving a range within one decade unlabelled. Labelled: 1, 2 and 5 times the
/// powers of 10 in range, or only powers (every k-th) when those would be more than `max`, or
/// every digit when 1-2-5 would label fewer than 2. Grid lines: every digit, or the powers.
fn log_axis(range: Range<f64>, max: usize) -> WithKeyPoints<LogCoord<f64>> {
    let low = range.start.log10().floor() as i32;
    let high = range.end.log10().ceil() as i32;
    let ticks = |mantissas: &[f64], every: i32| -> Vec<f64> {
        (low..=high)
            .filter(|e| e.rem_euclid(every) == 0)
            .flat_map(|e| {
                // Dividing by an exact power keeps 0.001 exact where multiplying by 1e-3 would not.
                mantissas.iter().map(move |m| {
                    if e >= 0 {
                        m * 10f64.powi(e)
                    } else {
                        m / 10f64.powi(-e)
                    }
                })
            })
            .filter(|v| range.contains(v) || *v == range.end)
            .collect()
    };
    const DIGITS: [f64; 9] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
    let mut labelled = ticks(&[1.0, 2.0, 5.0], 1);
    if labelled.len() < 2 {
        labelled = ticks(&DIGITS, 1);
    }
    let mut every = 1;
    while labelled.len() > max {
        labelled = ticks(&[1.0], every);
        every += 1;
    }
    let mut grid = ticks(&DIGITS, 1);
    if grid.len() > 8 * max {
        grid = ticks(&[1.0], 1);
    }
    range
        .log_scale()
        .with_key_points(labelled)
        .with_light_points(grid)
}

/// A linear axis range with a little room around the data; a single value gets ±1 (or ±10%).
fn padded_linear((low, high): (f64, f64)) -> Range<f64> {
    if high > low {
        let pad = (high - low) * 0.03;
        low - pad..high + pad
    } else {
        let pad = (low.abs() * 0.1).max(1.0);
        low - pad..high + pad
    }
}

/// A log axis range (values above 0) with a little room around the data; a single value gets
/// a factor of 2 either side.
fn padded_log((low, high): (f64, f64)) -> Range<f64> {
    if high > low {
        low / 1.15..high * 1.15
    } else {
        low / 2.0..high * 2.0
    }
}

/// `points` reduced to at most `max` + 2: the first and the last, and between them, for each
/// run of consecutive points, the one with the lowest and the one with the highest y, in their
/// order. Fewer than `max` points are kept as they are.
fn envelope(points: &[(f64, f64)], max: usize) -> Vec<(f64, f64)> {
    if points.len() <= max.max(2) {
        return points.to_vec();
    }
    let inner = &points[1..points.len() - 1];
    let run = inner.len().div_ceil((max / 2).max(1));
    let mut kept = vec![points[0]];
    for chunk in inner.chunks(run) {
        let by_y = |a: &&(f64, f64), b: &&(f64, f64)| a.1.total_cmp(&b.1);
        let low = chunk.iter().enumerate().min_by(|a, b| by_y(&a.1, &b.1));
        let high = chunk.iter().enumerate().max_by(|a, b| by_y(&a.1, &b.1));
        if let (Some((i, &lo)), Some((j, &hi))) = (low, high) {
            match i.cmp(&j) {
                std::cmp::Ordering::Less => kept.extend([lo, hi]),
                std::cmp::Ordering::Greater => kept.extend([hi, lo]),
                std::cmp::Ordering::Equal => kept.push(lo),
            }
        }
    }
    kept.push(points[points.len() - 1]);
    kept
}

/// At most `max` of `points`, evenly spread by index.
fn thin(points: &[(f64, f64)], max: usize) -> Vec<(f64, f64)> {
    let stride = points.len().div_ceil(max.max(1)).max(1);
    points.iter().step_by(stride).copied().collect()
}

fn check_extension(path: &Path) -> Result<()> {
    let is_svg = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("svg"));
    if is_svg {
        Ok(())
    } else {
        Err(plot_error(
            path,
            "only .svg is supported (PNG needs system font libraries)".into(),
        ))
    }
}

fn nothing_to_plot(path: &Path, why: &str) -> Error {
    plot_error(path, format!("nothing to plot: {why}"))
}

fn drawing_failed(path: &Path, message: String) -> Error {
    plot_error(path, format!("drawing the chart failed: {message}"))
}

fn plot_error(path: &Path, message: String) -> Error {
    Error::Plot {
        path: PathBuf::from(path),
        message,
    }
}

#[cfg(test)]
mod tests;
