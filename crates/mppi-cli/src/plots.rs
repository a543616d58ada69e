//! Plots of a run, each written as PNG and SVG with the same content.
//!
//! - `states`: one panel per state component over time;
//! - `controls`: one panel per control (zero-order hold) with the bounds;
//! - `cost`: stage cost and cumulative cost over time;
//! - `diagnostics`: ESS, temperature `λ`, log-likelihood estimate and planning time;
//! - `path` (planar tasks only): obstacles, goal, track, executed path, sampled rollouts and
//!   plans captured during the run.
//!
//! Text uses the embedded DejaVu Sans (no system fonts are needed).

use std::ops::Range;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow};
use mppi::{DiagnosticsLevel, MppiConfig, TemperatureConfig};
use mppi_tasks::{Circle as Disk, Episode, Scene, Task};
use mppi_theory::experiments::{
    AccelerationResult, ContractionResult, EssResult, FamiliesResult, FamilyRow, FullCovResult,
    IncreaseStep, TheoryReport,
};
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::output::{control_names, state_names};

/// The embedded font.
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
/// Font family name the plots use.
const FAMILY: &str = "sans-serif";

/// Line colors (the "tab10" palette).
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];
const BOUND: RGBColor = RGBColor(200, 30, 30);
const GRID_LIGHT: RGBColor = RGBColor(242, 242, 242);
const GRID_BOLD: RGBColor = RGBColor(215, 215, 215);
const TEXT: RGBColor = RGBColor(40, 40, 40);
const TRACK_FILL: RGBColor = RGBColor(222, 222, 222);
const TRACK_EDGE: RGBColor = RGBColor(90, 90, 90);
const OBSTACLE: RGBColor = RGBColor(120, 120, 130);
const GOAL: RGBColor = RGBColor(44, 160, 44);
const ROLLOUT: RGBColor = RGBColor(150, 150, 150);
const PLAN: RGBColor = RGBColor(255, 127, 14);
const PATH: RGBColor = RGBColor(31, 119, 180);

/// Make the embedded font available to the bitmap backend. Call once before plotting.
pub fn register_font() -> anyhow::Result<()> {
    plotters::style::register_font(FAMILY, FontStyle::Normal, FONT)
        .map_err(|_| anyhow!("the embedded plot font could not be loaded"))
}

/// A point of a plot in data coordinates.
type Point = (f64, f64);

/// A rollout capture in plane coordinates: control step, plan, sampled rollouts.
type Capture = (usize, Vec<Point>, Vec<Vec<Point>>);

/// One line of a panel.
#[derive(Debug, Clone)]
struct Series {
    label: String,
    points: Vec<(f64, f64)>,
    color: RGBColor,
    width: u32,
    dashed: bool,
    /// Draw the points as dots instead of a line.
    marker: bool,
}

impl Series {
    fn line(label: impl Into<String>, points: Vec<(f64, f64)>, color: RGBColor) -> Self {
        Series {
            label: label.into(),
            points,
            color,
            width: 2,
            dashed: false,
            marker: false,
        }
    }

    fn dots(label: impl Into<String>, points: Vec<(f64, f64)>, color: RGBColor) -> Self {
        Series {
            label: label.into(),
            points,
            color,
            width: 2,
            dashed: false,
            marker: true,
        }
    }

    fn dashed(label: impl Into<String>, points: Vec<(f64, f64)>, color: RGBColor) -> Self {
        Series {
            label: label.into(),
            points,
            color,
            width: 2,
            dashed: true,
            marker: false,
        }
    }
}

/// One chart of a panel figure.
#[derive(Debug, Clone)]
struct Panel {
    y_label: String,
    series: Vec<Series>,
    log_y: bool,
}

/// Panels sharing a time axis, in a grid.
#[derive(Debug, Clone)]
struct PanelFigure {
    title: String,
    x_label: String,
    x_range: Range<f64>,
    columns: usize,
    panels: Vec<Panel>,
    /// Logarithmic `x` axis (points with `x ≤ 0` are not drawn).
    log_x: bool,
    /// Names of the integer `x` positions `0, 1, ...` (a categorical axis) when not empty.
    x_names: Vec<String>,
}

/// The planar path figure.
#[derive(Debug, Clone)]
struct PathFigure {
    title: String,
    scene: Scene,
    path: Vec<(f64, f64)>,
    /// Captured `(step, plan, samples)`.
    rollouts: Vec<Capture>,
    x_range: Range<f64>,
    y_range: Range<f64>,
    x_label: String,
    y_label: String,
}

/// A figure that can be drawn on any backend.
#[derive(Debug, Clone)]
enum Figure {
    Panels(PanelFigure),
    Path(PathFigure),
}

impl Figure {
    /// Pixel size.
    fn size(&self) -> (u32, u32) {
        match self {
            Figure::Panels(f) => {
                let rows = f.panels.len().div_ceil(f.columns.max(1)).max(1) as u32;
                let width = if f.columns > 1 { 1400 } else { 1000 };
                let row_height = if rows == 1 { 330 } else { 230 };
                (width, 50 + rows * row_height)
            }
            Figure::Path(f) => {
                // equal aspect: the plotting area is the figure less the legend column, the
                // axis label areas, the title and the margins
                let w = (f.x_range.end - f.x_range.start).max(1e-9);
                let h = (f.y_range.end - f.y_range.start).max(1e-9);
                let width = 1150;
                let plot_w = f64::from(width - PATH_LEGEND_WIDTH - 90);
                let plot_h = plot_w * h / w;
                (width, (plot_h + 105.0).round() as u32)
            }
        }
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()>
    where
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE)?;
        match self {
            Figure::Panels(f) => draw_panels(root, f),
            Figure::Path(f) => draw_path(root, f),
        }
    }
}

/// Write `figure` to `dir/stem.png` and `dir/stem.svg`.
fn save(figure: &Figure, dir: &Path, stem: &str) -> anyhow::Result<Vec<PathBuf>> {
    let size = figure.size();
    let png = dir.join(format!("{stem}.png"));
    let svg = dir.join(format!("{stem}.svg"));
    {
        let root = BitMapBackend::new(&png, size).into_drawing_area();
        figure
            .draw(&root)
            .and_then(|()| root.present().map_err(anyhow::Error::from))
            .with_context(|| format!("cannot draw `{}`", png.display()))?;
    }
    {
        let root = SVGBackend::new(&svg, size).into_drawing_area();
        figure
            .draw(&root)
            .and_then(|()| root.present().map_err(anyhow::Error::from))
            .with_context(|| format!("cannot draw `{}`", svg.display()))?;
    }
    Ok(vec![png, svg])
}

/// Split a polyline at non-finite points (and, for log axes, non-positive `y`).
fn segments(points: &[(f64, f64)], positive_y: bool) -> Vec<Vec<(f64, f64)>> {
    let mut out = vec![];
    let mut current = vec![];
    for &(x, y) in points {
        if x.is_finite() && y.is_finite() && (!positive_y || y > 0.0) {
            current.push((x, y));
        } else if !current.is_empty() {
            out.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Number of labelled series of a panel; a legend is drawn when there are two or more.
fn legend_entries(panel: &Panel) -> usize {
    panel.series.iter().filter(|s| !s.label.is_empty()).count()
}

/// A padded `y` range covering every drawable value of the panel, with headroom for the
/// legend (drawn in the upper right corner of a plot `plot_px` pixels tall) when there is one.
fn y_range(panel: &Panel, plot_px: f64) -> Range<f64> {
    let range = data_y_range(panel);
    let entries = legend_entries(panel);
    if entries < 2 {
        return range;
    }
    // legend height: about 19 px per entry plus borders, and a little air below it
    let legend = ((19 * entries + 22) as f64 / plot_px.max(1.0)).min(0.6);
    let headroom = legend / (1.0 - legend);
    if panel.log_y {
        range.start..range.end * (range.end / range.start).powf(headroom)
    } else {
        range.start..range.end + headroom * (range.end - range.start)
    }
}

/// A padded `y` range covering every drawable value of the panel.
fn data_y_range(panel: &Panel) -> Range<f64> {
    let values = panel
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .filter(|y| y.is_finite() && (!panel.log_y || *y > 0.0));
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), y| {
        (lo.min(y), hi.max(y))
    });
    if !(lo.is_finite() && hi.is_finite()) {
        return if panel.log_y { 0.1..10.0 } else { 0.0..1.0 };
    }
    if panel.log_y {
        let (lo, hi) = if hi / lo < 1.01 {
            (lo / 2.0, hi * 2.0)
        } else {
            (lo, hi)
        };
        let pad = (hi / lo).powf(0.05);
        lo / pad..hi * pad
    } else {
        let span = hi - lo;
        // never zoom into noise far below the values' magnitude (or into a constant)
        let min_span = (0.02 * lo.abs().max(hi.abs())).max(1e-9);
        if span < min_span {
            let mid = 0.5 * (lo + hi);
            let half = if span <= 1e-12 * (1.0 + mid.abs()) {
                (0.1 * mid.abs()).max(1e-3)
            } else {
                0.5 * min_span
            };
            mid - half..mid + half
        } else {
            lo - 0.06 * span..hi + 0.06 * span
        }
    }
}

fn style(color: RGBColor, width: u32) -> ShapeStyle {
    ShapeStyle {
        color: color.to_rgba(),
        filled: false,
        stroke_width: width,
    }
}

/// Series with more points than this are drawn 1 px wide (no miter joins).
const DENSE_POINTS: usize = 1500;

/// Draw the series of a panel and its legend on an already built chart (any y coordinate).
macro_rules! draw_panel_body {
    ($chart:expr, $panel:expr, $x_label:expr, $log:expr, $fig:expr) => {{
        let chart = $chart;
        let names = &$fig.x_names;
        let x_fmt = |v: &f64| x_tick(*v, names);
        chart
            .configure_mesh()
            .x_desc($x_label)
            .y_desc($panel.y_label.as_str())
            .label_style((FAMILY, 14).into_font().color(&TEXT))
            .axis_desc_style((FAMILY, 16).into_font().color(&TEXT))
            .light_line_style(GRID_LIGHT)
            .bold_line_style(GRID_BOLD)
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&fmt_tick)
            .x_labels(if names.is_empty() { 12 } else { names.len() })
            .y_labels(6)
            .draw()?;
        let labelled = legend_entries($panel) >= 2;
        for s in &$panel.series {
            let points: Vec<(f64, f64)> = s
                .points
                .iter()
                .copied()
                .filter(|p| !$fig.log_x || p.0 > 0.0)
                .collect();
            // thick polylines join segments with miters, which shoot far out of the panel
            // where a dense, jagged series (e.g. a long decimated episode) turns sharply
            let width = if points.len() > DENSE_POINTS {
                1
            } else {
                s.width
            };
            let st = style(s.color, width);
            if s.marker {
                let color = s.color;
                let dots: Vec<(f64, f64)> = segments(&points, $log).into_iter().flatten().collect();
                let anno = chart
                    .draw_series(dots.into_iter().map(|p| Circle::new(p, 5, color.filled())))?;
                if labelled && !s.label.is_empty() {
                    anno.label(s.label.as_str())
                        .legend(move |(x, y)| Circle::new((x + 12, y), 5, color.filled()));
                }
                continue;
            }
            for (i, seg) in segments(&points, $log).into_iter().enumerate() {
                let anno = if s.dashed {
                    chart.draw_series(DashedLineSeries::new(seg, 10, 6, st))?
                } else {
                    chart.draw_series(LineSeries::new(seg, st))?
                };
                if i == 0 && labelled && !s.label.is_empty() {
                    let dashed = s.dashed;
                    anno.label(s.label.as_str()).legend(move |(x, y)| {
                        if dashed {
                            DashedPathElement::new(vec![(x, y), (x + 24, y)], 7, 4, st).into_dyn()
                        } else {
                            PathElement::new(vec![(x, y), (x + 24, y)], st).into_dyn()
                        }
                    });
                }
            }
        }
        if labelled {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(GRID_BOLD)
                .label_font((FAMILY, 14).into_font().color(&TEXT))
                .draw()?;
        }
    }};
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    panel: &Panel,
    fig: &PanelFigure,
    x_label: &str,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    // plot height: the area minus the x label area and the margins
    let plot_px = f64::from(area.dim_in_pixel().1) - 42.0 - 16.0;
    let yr = y_range(panel, plot_px);
    let mut builder = ChartBuilder::on(area);
    builder
        .margin(8)
        .margin_right(24)
        .x_label_area_size(42)
        .y_label_area_size(84);
    let x_range = fig.x_range.clone();
    match (fig.log_x, panel.log_y) {
        (false, true) => {
            let mut chart = builder.build_cartesian_2d(x_range, yr.log_scale())?;
            draw_panel_body!(&mut chart, panel, x_label, true, fig);
        }
        (false, false) => {
            let mut chart = builder.build_cartesian_2d(x_range, yr)?;
            draw_panel_body!(&mut chart, panel, x_label, false, fig);
        }
        (true, true) => {
            let mut chart = builder.build_cartesian_2d(x_range.log_scale(), yr.log_scale())?;
            draw_panel_body!(&mut chart, panel, x_label, true, fig);
        }
        (true, false) => {
            let mut chart = builder.build_cartesian_2d(x_range.log_scale(), yr)?;
            draw_panel_body!(&mut chart, panel, x_label, false, fig);
        }
    }
    Ok(())
}

fn draw_panels<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    fig: &PanelFigure,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let body = root.titled(&fig.title, (FAMILY, 24).into_font().color(&TEXT))?;
    let columns = fig.columns.max(1);
    let rows = fig.panels.len().div_ceil(columns).max(1);
    let areas = body.split_evenly((rows, columns));
    for (i, (panel, area)) in fig.panels.iter().zip(&areas).enumerate() {
        let bottom = i + columns >= fig.panels.len();
        let label = if bottom { fig.x_label.as_str() } else { "" };
        draw_panel(area, panel, fig, label)?;
    }
    Ok(())
}

/// Clip the segment `a`–`b` to the rectangle (Liang–Barsky); `None` if it lies outside.
fn clip_segment(
    a: (f64, f64),
    b: (f64, f64),
    xr: &Range<f64>,
    yr: &Range<f64>,
) -> Option<((f64, f64), (f64, f64))> {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let (mut t0, mut t1) = (0.0f64, 1.0f64);
    for (p, q) in [
        (-dx, a.0 - xr.start),
        (dx, xr.end - a.0),
        (-dy, a.1 - yr.start),
        (dy, yr.end - a.1),
    ] {
        if p == 0.0 {
            if q < 0.0 {
                return None;
            }
        } else {
            let r = q / p;
            if p < 0.0 {
                t0 = t0.max(r);
            } else {
                t1 = t1.min(r);
            }
        }
    }
    (t0 <= t1).then_some((
        (a.0 + t0 * dx, a.1 + t0 * dy),
        (a.0 + t1 * dx, a.1 + t1 * dy),
    ))
}

/// The parts of a polyline inside the rectangle (non-finite points also break it).
fn clip_polyline(points: &[(f64, f64)], xr: &Range<f64>, yr: &Range<f64>) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = vec![];
    for seg in segments(points, false) {
        if seg.len() == 1 {
            let p = seg[0];
            if xr.contains(&p.0) && yr.contains(&p.1) {
                out.push(seg);
            }
            continue;
        }
        let mut current: Vec<(f64, f64)> = vec![];
        for w in seg.windows(2) {
            match clip_segment(w[0], w[1], xr, yr) {
                Some((p, q)) => {
                    if current.last() != Some(&p) {
                        if !current.is_empty() {
                            out.push(std::mem::take(&mut current));
                        }
                        current.push(p);
                    }
                    current.push(q);
                }
                None => {
                    if !current.is_empty() {
                        out.push(std::mem::take(&mut current));
                    }
                }
            }
        }
        if !current.is_empty() {
            out.push(current);
        }
    }
    out
}

/// An `x` tick label: the name of an integer position on a categorical axis (empty between
/// positions), otherwise [`fmt_tick`].
fn x_tick(v: f64, names: &[String]) -> String {
    if names.is_empty() {
        return fmt_tick(&v);
    }
    let i = v.round();
    if (v - i).abs() < 1e-6 && i >= 0.0 {
        names.get(i as usize).cloned().unwrap_or_default()
    } else {
        String::new()
    }
}

/// Tick label: short, no `-0`, scientific notation for very small or large magnitudes.
fn fmt_tick(v: &f64) -> String {
    let v = *v;
    let a = v.abs();
    if !v.is_finite() {
        return v.to_string();
    }
    if a < 1e-12 {
        return "0".into();
    }
    if !(1e-3..1e6).contains(&a) {
        return format!("{v:.2e}");
    }
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.to_string() }
}

/// Points of a circle, as a closed polygon.
fn circle_points(c: &Disk, n: usize) -> Vec<(f64, f64)> {
    (0..=n)
        .map(|i| {
            let a = 2.0 * std::f64::consts::PI * i as f64 / n as f64;
            (c.x + c.r * a.cos(), c.y + c.r * a.sin())
        })
        .collect()
}

/// Left and right edges of a closed track: the centerline offset by `half_width` along the
/// normal (both closed: the first point is repeated at the end).
fn track_edges(center: &[Point], half_width: f64) -> (Vec<Point>, Vec<Point>) {
    let n = center.len();
    let mut left = Vec::with_capacity(n + 1);
    let mut right = Vec::with_capacity(n + 1);
    for i in 0..n {
        let (px, py) = center[(i + n - 1) % n];
        let (nx, ny) = center[(i + 1) % n];
        let (tx, ty) = (nx - px, ny - py);
        let len = (tx * tx + ty * ty).sqrt();
        let (ox, oy) = if len > 0.0 {
            (-ty / len * half_width, tx / len * half_width)
        } else {
            (0.0, 0.0)
        };
        let (cx, cy) = center[i];
        left.push((cx + ox, cy + oy));
        right.push((cx - ox, cy - oy));
    }
    if n > 0 {
        left.push(left[0]);
        right.push(right[0]);
    }
    (left, right)
}

/// What a legend entry of the path plot looks like.
#[derive(Debug, Clone, Copy)]
enum Swatch {
    Line(ShapeStyle),
    Dashed(ShapeStyle),
    Area(RGBAColor, RGBColor),
    Dot(RGBColor),
    Triangle(RGBColor),
}

/// Draw a legend (swatches and labels) at the top of `area`, in pixel coordinates.
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[(Swatch, &str)],
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    if entries.is_empty() {
        return Ok(());
    }
    let row = 24;
    let (x0, y0) = (4, 12);
    let height = row * entries.len() as i32 + 12;
    let width = i32::try_from(area.dim_in_pixel().0).unwrap_or(170) - 12;
    area.draw(&Rectangle::new(
        [(x0, y0), (x0 + width, y0 + height)],
        WHITE.filled(),
    ))?;
    area.draw(&Rectangle::new(
        [(x0, y0), (x0 + width, y0 + height)],
        style(GRID_BOLD, 1),
    ))?;
    let font = (FAMILY, 15).into_font().color(&TEXT);
    for (i, (swatch, label)) in entries.iter().enumerate() {
        let y = y0 + 18 + row * i as i32;
        let (sx, ex) = (x0 + 10, x0 + 38);
        match *swatch {
            Swatch::Line(st) => area.draw(&PathElement::new(vec![(sx, y), (ex, y)], st))?,
            Swatch::Dashed(st) => {
                area.draw(&DashedPathElement::new(vec![(sx, y), (ex, y)], 6, 4, st))?;
            }
            Swatch::Area(fill, edge) => {
                area.draw(&Rectangle::new([(sx, y - 7), (ex, y + 7)], fill.filled()))?;
                area.draw(&Rectangle::new([(sx, y - 7), (ex, y + 7)], style(edge, 1)))?;
            }
            Swatch::Dot(c) => area.draw(&Circle::new(((sx + ex) / 2, y), 6, c.filled()))?,
            Swatch::Triangle(c) => {
                area.draw(&TriangleMarker::new(((sx + ex) / 2, y), 8, c.filled()))?;
            }
        }
        area.draw(&Text::new(
            (*label).to_string(),
            (ex + 10, y),
            font.clone().pos(Pos::new(HPos::Left, VPos::Center)),
        ))?;
    }
    Ok(())
}

/// Width of the legend column right of the path plot, in pixels.
const PATH_LEGEND_WIDTH: u32 = 190;

fn draw_path<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    fig: &PathFigure,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let body = root.titled(&fig.title, (FAMILY, 24).into_font().color(&TEXT))?;
    let (plot_area, legend_area) = body.split_horizontally(
        i32::try_from(body.dim_in_pixel().0.saturating_sub(PATH_LEGEND_WIDTH)).unwrap_or(0),
    );
    let mut chart = ChartBuilder::on(&plot_area)
        .margin(10)
        .margin_right(20)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(fig.x_range.clone(), fig.y_range.clone())?;
    chart
        .configure_mesh()
        .x_desc(fig.x_label.as_str())
        .y_desc(fig.y_label.as_str())
        .label_style((FAMILY, 14).into_font().color(&TEXT))
        .axis_desc_style((FAMILY, 16).into_font().color(&TEXT))
        .light_line_style(GRID_LIGHT)
        .bold_line_style(GRID_BOLD)
        .x_label_formatter(&fmt_tick)
        .y_label_formatter(&fmt_tick)
        .draw()?;
    let scene = &fig.scene;
    let mut legend: Vec<(Swatch, &str)> = vec![];

    if let Some((center, half_width)) = &scene.track
        && center.len() >= 3
    {
        let (left, right) = track_edges(center, *half_width);
        let fill = TRACK_FILL.filled();
        let quads = (0..left.len() - 1)
            .map(|i| Polygon::new(vec![left[i], left[i + 1], right[i + 1], right[i]], fill));
        chart.draw_series(quads)?;
        let edge = style(TRACK_EDGE, 2);
        for e in [left, right] {
            for seg in clip_polyline(&e, &fig.x_range, &fig.y_range) {
                chart.draw_series(LineSeries::new(seg, edge))?;
            }
        }
        let mut closed = center.clone();
        closed.push(center[0]);
        let dashed = style(TRACK_EDGE, 1);
        for seg in clip_polyline(&closed, &fig.x_range, &fig.y_range) {
            chart.draw_series(DashedLineSeries::new(seg, 8, 8, dashed))?;
        }
        legend.push((Swatch::Area(TRACK_FILL.to_rgba(), TRACK_EDGE), "track"));
        legend.push((Swatch::Dashed(dashed), "centerline"));
    }

    let obstacle_edge = RGBColor(70, 70, 80);
    for c in &scene.obstacles {
        let pts = circle_points(c, 72);
        chart.draw_series(std::iter::once(Polygon::new(
            pts.clone(),
            OBSTACLE.mix(0.75).filled(),
        )))?;
        chart.draw_series(LineSeries::new(pts, style(obstacle_edge, 1)))?;
    }
    if !scene.obstacles.is_empty() {
        legend.push((Swatch::Area(OBSTACLE.mix(0.75), obstacle_edge), "obstacle"));
    }

    if let Some(goal) = &scene.goal {
        let pts = circle_points(goal, 72);
        chart.draw_series(std::iter::once(Polygon::new(
            pts.clone(),
            GOAL.mix(0.25).filled(),
        )))?;
        chart.draw_series(LineSeries::new(pts, style(GOAL, 2)))?;
        chart.draw_series(std::iter::once(Cross::new(
            (goal.x, goal.y),
            6,
            style(GOAL, 2),
        )))?;
        legend.push((Swatch::Area(GOAL.mix(0.25), GOAL), "goal"));
    }

    let sample_style = ShapeStyle {
        color: ROLLOUT.mix(0.55),
        filled: false,
        stroke_width: 1,
    };
    let plan_style = style(PLAN, 2);
    for (_, plan, samples) in &fig.rollouts {
        for sample in samples {
            for seg in clip_polyline(sample, &fig.x_range, &fig.y_range) {
                chart.draw_series(LineSeries::new(seg, sample_style))?;
            }
        }
        for seg in clip_polyline(plan, &fig.x_range, &fig.y_range) {
            chart.draw_series(LineSeries::new(seg, plan_style))?;
        }
    }
    if !fig.rollouts.is_empty() {
        legend.push((Swatch::Line(style(ROLLOUT, 1)), "sampled rollouts"));
        legend.push((Swatch::Line(plan_style), "optimized plan"));
    }
    // mark where each captured plan starts
    let starts = fig
        .rollouts
        .iter()
        .filter_map(|(_, plan, _)| plan.first().copied())
        .filter(|p| fig.x_range.contains(&p.0) && fig.y_range.contains(&p.1));
    chart.draw_series(starts.map(|p| Circle::new(p, 4, PLAN.filled())))?;

    let path_style = style(PATH, 3);
    for seg in clip_polyline(&fig.path, &fig.x_range, &fig.y_range) {
        chart.draw_series(LineSeries::new(seg, path_style))?;
    }
    legend.push((Swatch::Line(path_style), "executed path"));
    if let Some(&start) = fig.path.first() {
        chart.draw_series(std::iter::once(Circle::new(start, 7, PALETTE[2].filled())))?;
        legend.push((Swatch::Dot(PALETTE[2]), "start"));
    }
    if let Some(&end) = fig.path.last() {
        chart.draw_series(std::iter::once(TriangleMarker::new(
            end,
            8,
            PALETTE[3].filled(),
        )))?;
        legend.push((Swatch::Triangle(PALETTE[3]), "end"));
    }
    draw_legend(&legend_area, &legend)
}

/// Time of sample `k`.
fn time(k: usize, dt: f64) -> f64 {
    k as f64 * dt
}

/// End of the time axis.
fn x_range(episode: &Episode) -> Range<f64> {
    let end = time(episode.steps.max(1), episode.dt);
    if end.is_finite() && end > 0.0 {
        0.0..end
    } else {
        0.0..1.0
    }
}

/// `""`, or which rows a plot of a decimated episode draws (for its title).
fn decimation_note(episode: &Episode) -> String {
    if episode.is_complete() {
        String::new()
    } else {
        format!(
            " ({} of {} states drawn)",
            episode.states.len(),
            episode.steps + 1
        )
    }
}

/// Time of kept row `i`.
fn row_time(episode: &Episode, i: usize) -> f64 {
    time(episode.kept_steps.get(i).copied().unwrap_or(i), episode.dt)
}

fn states_figure(task: &dyn Task, episode: &Episode) -> Figure {
    let n = episode.states.first().map_or(0, Vec::len);
    let names = state_names(task, n);
    let panels: Vec<Panel> = names
        .iter()
        .enumerate()
        .map(|(i, name)| Panel {
            y_label: name.clone(),
            series: vec![Series::line(
                "",
                episode
                    .states
                    .iter()
                    .enumerate()
                    .map(|(k, x)| (row_time(episode, k), x[i]))
                    .collect(),
                PALETTE[i % PALETTE.len()],
            )],
            log_y: false,
        })
        .collect();
    Figure::Panels(PanelFigure {
        title: format!("{}: states{}", task.name(), decimation_note(episode)),
        x_label: "time (s)".into(),
        x_range: x_range(episode),
        columns: if panels.len() > 4 { 2 } else { 1 },
        panels,
        log_x: false,
        x_names: vec![],
    })
}

/// The bound of dimension `j`, if finite (`v` has 1 entry, broadcast, or one per dimension).
fn bound(v: Option<&Vec<f64>>, j: usize) -> Option<f64> {
    let v = v?;
    let b = if v.len() == 1 { v[0] } else { *v.get(j)? };
    b.is_finite().then_some(b)
}

fn controls_figure(task: &dyn Task, config: &MppiConfig, episode: &Episode) -> Figure {
    let m = episode.controls.first().map_or(0, Vec::len);
    let names = control_names(task, m);
    let (t0, t1) = (x_range(episode).start, x_range(episode).end);
    let panels: Vec<Panel> = names
        .iter()
        .enumerate()
        .map(|(j, name)| {
            // zero-order hold: u_k applies on [t_k, t_{k+1})
            let mut held = Vec::with_capacity(2 * episode.controls.len());
            for (i, u) in episode.controls.iter().enumerate() {
                let t = row_time(episode, i);
                held.push((t, u[j]));
                held.push((t + episode.dt, u[j]));
            }
            let mut series = vec![Series::line(name.clone(), held, PALETTE[j % PALETTE.len()])];
            if let Some(hi) = bound(config.u_max.as_ref(), j) {
                series.push(Series::dashed("u_max", vec![(t0, hi), (t1, hi)], BOUND));
            }
            if let Some(lo) = bound(config.u_min.as_ref(), j) {
                series.push(Series::dashed(
                    "u_min",
                    vec![(t0, lo), (t1, lo)],
                    PALETTE[4],
                ));
            }
            Panel {
                y_label: name.clone(),
                series,
                log_y: false,
            }
        })
        .collect();
    Figure::Panels(PanelFigure {
        title: format!(
            "{}: applied controls{}",
            task.name(),
            decimation_note(episode)
        ),
        x_label: "time (s)".into(),
        x_range: x_range(episode),
        columns: if panels.len() > 4 { 2 } else { 1 },
        panels,
        log_x: false,
        x_names: vec![],
    })
}

fn cost_figure(task: &dyn Task, episode: &Episode) -> Figure {
    let stage: Vec<(f64, f64)> = episode
        .stage_costs
        .iter()
        .enumerate()
        .map(|(i, c)| (row_time(episode, i), *c))
        .collect();
    // the cumulative cost after step k, exact even when the rows are decimated
    let cumulative: Vec<(f64, f64)> = episode
        .cumulative_costs
        .iter()
        .enumerate()
        .map(|(i, c)| (row_time(episode, i) + episode.dt, *c))
        .collect();
    Figure::Panels(PanelFigure {
        title: format!(
            "{}: cost (total {:.4}){}",
            task.name(),
            episode.total_cost(),
            decimation_note(episode)
        ),
        x_label: "time (s)".into(),
        x_range: x_range(episode),
        columns: 1,
        panels: vec![
            Panel {
                y_label: "stage cost".into(),
                series: vec![Series::line("", stage, PALETTE[3])],
                log_y: false,
            },
            Panel {
                y_label: "cumulative cost".into(),
                series: vec![Series::line("", cumulative, PALETTE[0])],
                log_y: false,
            },
        ],
        log_x: false,
        x_names: vec![],
    })
}

fn diagnostics_figure(task: &dyn Task, config: &MppiConfig, episode: &Episode) -> Figure {
    let dt = episode.dt;
    let mut ess = vec![];
    let mut lambda = vec![];
    let mut loglik = vec![];
    let mut kl = vec![];
    let mut gap = vec![];
    let mut contraction = vec![];
    for report in &episode.reports {
        let iters = report.iterations.len().max(1) as f64;
        for it in &report.iterations {
            let t = (it.step as f64 + it.iteration as f64 / iters) * dt;
            ess.push((t, it.weights.ess));
            lambda.push((t, it.weights.lambda));
            loglik.push((t, it.weights.log_likelihood));
            kl.push((t, it.kl_step));
            gap.push((t, it.mstep_gap));
            contraction.push((t, it.contraction));
        }
    }
    let planning: Vec<(f64, f64)> = episode
        .reports
        .iter()
        .map(|r| (r.step as f64 * dt, r.planning_time.as_secs_f64() * 1e3))
        .collect();
    let (t0, t1) = (x_range(episode).start, x_range(episode).end);
    let mut ess_series = vec![Series::line("ESS", ess, PALETTE[0])];
    if let TemperatureConfig::EssTarget { target } = config.weighting.temperature {
        let target = target * config.samples as f64;
        ess_series.push(Series::dashed(
            "target",
            vec![(t0, target), (t1, target)],
            BOUND,
        ));
    }
    let log_lambda = wide_positive_range(&lambda, 20.0);
    let mut panels = vec![
        Panel {
            y_label: format!("ESS (of {})", config.samples),
            series: ess_series,
            log_y: false,
        },
        Panel {
            y_label: if log_lambda {
                "temperature λ (log)".into()
            } else {
                "temperature λ".into()
            },
            series: vec![Series::line("", lambda, PALETTE[1])],
            log_y: log_lambda,
        },
        Panel {
            y_label: "log-likelihood estimate".into(),
            series: vec![Series::line("", loglik, PALETTE[2])],
            log_y: false,
        },
    ];
    if config.diagnostics == DiagnosticsLevel::Full {
        let log_kl = wide_positive_range(&kl, 100.0);
        panels.push(Panel {
            y_label: if log_kl {
                "KL step (log)".into()
            } else {
                "KL step".into()
            },
            series: vec![Series::line("", kl, PALETTE[5])],
            log_y: log_kl,
        });
        panels.push(Panel {
            y_label: "M-step gap ΔQ̂ − KL".into(),
            series: vec![
                Series::line(
                    "M-step gain − KL step (0 for an exact M-step; floors and priors move it)",
                    gap,
                    PALETTE[6],
                ),
                Series::dashed("zero", vec![(t0, 0.0), (t1, 0.0)], BOUND),
            ],
            log_y: false,
        });
        let log_contraction = wide_positive_range(&contraction, 100.0);
        let measured = contraction.iter().any(|p| p.1.is_finite());
        panels.push(Panel {
            y_label: if measured {
                "contraction ‖Δθ_k‖/‖Δθ_k−1‖".into()
            } else {
                "contraction (needs ≥ 2 iter/step)".into()
            },
            series: vec![Series::line("", contraction, PALETTE[9])],
            log_y: log_contraction,
        });
    }
    panels.push(Panel {
        y_label: "planning time (ms)".into(),
        series: vec![Series::line("", planning, PALETTE[4])],
        log_y: false,
    });
    Figure::Panels(PanelFigure {
        title: format!(
            "{}: planner diagnostics (N = {}, T = {}, {} EM iter/step, temperature {}){}",
            task.name(),
            config.samples,
            config.horizon,
            config.iterations,
            config.weighting.temperature.name(),
            decimation_note(episode)
        ),
        x_label: "time (s)".into(),
        x_range: x_range(episode),
        columns: 1,
        panels,
        log_x: false,
        x_names: vec![],
    })
}

/// Whether the positive finite `y` values span more than `ratio` (then a log axis reads
/// better); false when there are none.
fn wide_positive_range(points: &[(f64, f64)], ratio: f64) -> bool {
    let (lo, hi) = points
        .iter()
        .map(|p| p.1)
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    lo.is_finite() && hi / lo > ratio
}

/// Grow `range` by `fraction` of its span on both sides.
fn padded(lo: f64, hi: f64, fraction: f64) -> Range<f64> {
    let span = (hi - lo).max(1e-9);
    lo - fraction * span..hi + fraction * span
}

fn path_figure(task: &dyn Task, scene: Scene, episode: &Episode, every: usize) -> Figure {
    let (ix, iy) = scene.position;
    let xy = |x: &Vec<f64>| -> (f64, f64) {
        (
            x.get(ix).copied().unwrap_or(f64::NAN),
            x.get(iy).copied().unwrap_or(f64::NAN),
        )
    };
    let path: Vec<(f64, f64)> = episode.states.iter().map(xy).collect();
    let rollouts = episode
        .rollouts
        .iter()
        .map(|r| {
            (
                r.step,
                r.plan.iter().map(xy).collect(),
                r.samples
                    .iter()
                    .map(|s| s.iter().map(xy).collect())
                    .collect(),
            )
        })
        .collect();

    // extent: the scene's, grown to hold the executed path, then to equal aspect
    let ((mut x0, mut x1), (mut y0, mut y1)) = scene.extent;
    if !(x0.is_finite() && x1.is_finite() && x0 < x1) {
        (x0, x1) = (f64::INFINITY, f64::NEG_INFINITY);
    }
    if !(y0.is_finite() && y1.is_finite() && y0 < y1) {
        (y0, y1) = (f64::INFINITY, f64::NEG_INFINITY);
    }
    for &(x, y) in path.iter().filter(|p| p.0.is_finite() && p.1.is_finite()) {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if !(x0.is_finite() && x1.is_finite()) {
        (x0, x1) = (-1.0, 1.0);
    }
    if !(y0.is_finite() && y1.is_finite()) {
        (y0, y1) = (-1.0, 1.0);
    }
    let mut xr = padded(x0, x1, 0.03);
    let mut yr = padded(y0, y1, 0.03);
    // keep the figure between 0.45 and 1.3 times as tall as wide by widening the other axis
    let (w, h) = (xr.end - xr.start, yr.end - yr.start);
    if h / w < 0.45 {
        let extra = 0.5 * (0.45 * w - h);
        yr = yr.start - extra..yr.end + extra;
    } else if h / w > 1.3 {
        let extra = 0.5 * (h / 1.3 - w);
        xr = xr.start - extra..xr.end + extra;
    }
    let names = task.state_names();
    let label = |i: usize, fallback: &str| {
        names
            .get(i)
            .map_or_else(|| fallback.to_string(), |n| (*n).to_string())
    };
    let captured = if episode.rollouts.is_empty() {
        String::new()
    } else {
        format!(", rollouts every {every} steps")
    };
    Figure::Path(PathFigure {
        title: format!("{}: path{captured}", task.name()),
        scene,
        path,
        rollouts,
        x_range: xr,
        y_range: yr,
        x_label: label(ix, "x"),
        y_label: label(iy, "y"),
    })
}

/// How often to capture rollouts for the path plot of an episode of `steps` steps.
#[must_use]
pub fn rollout_interval(steps: usize) -> usize {
    (steps / 5).max(1)
}

/// Write every plot of a run into `dir` (PNG and SVG each); returns the files written.
pub fn write_plots(
    dir: &Path,
    task: &dyn Task,
    config: &MppiConfig,
    episode: &Episode,
) -> anyhow::Result<Vec<PathBuf>> {
    let mut figures = vec![
        ("states", states_figure(task, episode)),
        ("controls", controls_figure(task, config, episode)),
        ("cost", cost_figure(task, episode)),
        ("diagnostics", diagnostics_figure(task, config, episode)),
    ];
    if let Some(scene) = task.scene() {
        let every = rollout_interval(episode.steps);
        figures.push(("path", path_figure(task, scene, episode, every)));
    }
    let mut written = vec![];
    for (stem, figure) in &figures {
        written.extend(save(figure, dir, stem)?);
    }
    Ok(written)
}

/// `(x, y)` pairs with `x` from 1 (drops `k = 0` for log-`x` plots).
fn from_one(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    points.iter().copied().filter(|p| p.0 >= 1.0).collect()
}

fn contraction_plot(r: &ContractionResult) -> Figure {
    let mut series = vec![];
    let mut x_end: f64 = 1.0;
    for (i, run) in r.runs.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        x_end = x_end.max(run.theory.last().map_or(1.0, |p| p.0));
        series.push(Series::dashed(
            format!("theory ρ = {:.4} (λ = {})", run.rate_theory, run.lambda),
            run.theory.clone(),
            color,
        ));
        series.push(Series::dots(
            format!(
                "planner, mean of {} runs (λ = {})",
                r.repetitions, run.lambda
            ),
            run.measured.clone(),
            color,
        ));
    }
    Figure::Panels(PanelFigure {
        title: format!(
            "Contraction along the slowest mode: ‖μ_k − u*‖ (C.4 quadratic, N = {})",
            r.samples
        ),
        x_label: "EM iteration k".into(),
        x_range: -0.2..x_end + 0.2,
        columns: 1,
        panels: vec![Panel {
            y_label: "error ‖μ_k − u*‖ (log)".into(),
            series,
            log_y: true,
        }],
        log_x: false,
        x_names: vec![],
    })
}

/// Move every point right by `dx` (side by side dots on a categorical axis).
fn shifted(points: Vec<(f64, f64)>, dx: f64) -> Vec<(f64, f64)> {
    points.into_iter().map(|(x, y)| (x + dx, y)).collect()
}

fn families_plot(r: &FamiliesResult) -> Figure {
    let names: Vec<String> = r.rows.iter().map(|row| row.family.clone()).collect();
    let at = |f: fn(&FamilyRow) -> f64| -> Vec<(f64, f64)> {
        r.rows
            .iter()
            .enumerate()
            .map(|(i, row)| (i as f64, f(row)))
            .collect()
    };
    // every step of every family, spread around the family's slot
    let steps = |f: fn(&IncreaseStep) -> f64| -> Vec<(f64, f64)> {
        r.rows
            .iter()
            .enumerate()
            .flat_map(|(i, row)| {
                let n = row.steps.len().max(1) as f64;
                // a mixture re-seeding is not an EM step (left out of the check)
                row.steps
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| !s.reseeded)
                    .map(move |(k, s)| (i as f64 - 0.3 + 0.6 * (k as f64 + 0.5) / n, f(s)))
            })
            .collect()
    };
    let n = names.len().max(1) as f64;
    let q = r
        .rows
        .iter()
        .flat_map(|row| row.steps.iter().map(|s| s.quantile))
        .fold(f64::NAN, f64::max);
    let threshold = vec![(-0.5, -q), (n - 0.5, -q)];
    let zero = vec![(-0.5, 0.0), (n - 0.5, 0.0)];
    Figure::Panels(PanelFigure {
        title: format!(
            "Sufficient increase ΔL ≥ KL(p_k+1 ‖ p_k), fresh samples (N_em = {}, {} × {})",
            r.samples, r.pairs, r.eval_samples
        ),
        x_label: "family (one dot per EM step)".into(),
        x_range: -0.5..n - 0.5,
        columns: 1,
        panels: vec![
            Panel {
                y_label: "(ΔL̂ − KL + b + o)/SE".into(),
                series: vec![
                    Series::dots("standardized excess z", steps(IncreaseStep::z), PALETTE[0]),
                    Series::dashed(format!("−q = {:.2} (check: z ≥ −q)", -q), threshold, BOUND),
                    Series::dashed("0", zero, PALETTE[7]),
                ],
                log_y: false,
            },
            Panel {
                y_label: "mean KL step, M-step gain".into(),
                series: vec![
                    Series::dots(
                        "mean KL(p_k+1 ‖ p_k) (mixture: complete-data KL)",
                        shifted(at(|row| row.mean_kl), -0.12),
                        PALETTE[2],
                    ),
                    Series::dots(
                        "mean M-step gain ΔQ̂ (= KL for an exact M-step)",
                        shifted(at(|row| row.mean_q_gain), 0.12),
                        PALETTE[1],
                    ),
                ],
                log_y: false,
            },
        ],
        log_x: false,
        x_names: names,
    })
}

fn full_covariance_plot(r: &FullCovResult) -> Figure {
    let mut series = vec![
        Series::line(
            "full-covariance EM, exact: (I + kΣ₀H/λ)⁻¹e₀",
            from_one(&r.full_exact),
            PALETTE[0],
        ),
        Series::dashed(
            "asymptote ‖λ(Σ₀H)⁻¹e₀‖ / k",
            r.one_over_k.clone(),
            PALETTE[7],
        ),
        Series::line(
            "fixed-covariance EM, exact: A^k e₀",
            from_one(&r.fixed_exact),
            PALETTE[1],
        ),
    ];
    if !r.full_measured.is_empty() {
        series.push(Series::dots(
            format!("gaussian_full planner (N = {})", r.samples),
            from_one(&r.full_measured),
            PALETTE[3],
        ));
    }
    let k_end = r.full_exact.last().map_or(10.0, |p| p.0);
    Figure::Panels(PanelFigure {
        title: format!(
            "Full-covariance EM is O(1/k), fixed covariance linear (λ = {})",
            r.lambda
        ),
        x_label: "EM iteration k (log)".into(),
        x_range: 0.9..k_end * 1.1,
        columns: 1,
        panels: vec![Panel {
            y_label: "error ‖μ_k − u*‖ (log)".into(),
            series,
            log_y: true,
        }],
        log_x: true,
        x_names: vec![],
    })
}

fn acceleration_plot(r: &AccelerationResult) -> Figure {
    let mut panels = vec![];
    let mut x_end: f64 = 1.0;
    for (i, run) in r.runs.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        x_end = x_end.max(run.exact.last().map_or(1.0, |p| p.0));
        // the theory slope, anchored at the last exact point
        let (k_end, e_end) = run.exact.last().copied().unwrap_or((0.0, 1.0));
        panels.push(Panel {
            y_label: format!("{} error (log)", run.scheme.replace('_', "-")),
            series: vec![
                Series::line("exact E-steps", run.exact.clone(), color),
                Series::dashed(
                    format!("theory slope {:.3}^k (D.3)", run.rate_theory),
                    run.exact
                        .iter()
                        .map(|p| (p.0, e_end * run.rate_theory.powf(p.0 - k_end)))
                        .collect(),
                    PALETTE[7],
                ),
                Series::dots(
                    format!(
                        "planner, α = {:.2}, β = {:.2} (floor after k = {})",
                        run.alpha, run.beta, run.window
                    ),
                    run.measured.clone(),
                    color,
                ),
            ],
            log_y: true,
        });
    }
    Figure::Panels(PanelFigure {
        title: format!(
            "Acceleration: error ‖μ_k − u*‖ (λ = {}, s ∈ [{:.3}, {:.3}], N = {})",
            r.lambda, r.s_min, r.s_max, r.samples
        ),
        x_label: "iteration k".into(),
        x_range: -0.2..x_end + 0.2,
        columns: 1,
        panels,
        log_x: false,
        x_names: vec![],
    })
}

fn ess_plot(r: &EssResult) -> Figure {
    let mut series = vec![];
    let mut lambdas: Vec<f64> = r.points.iter().map(|p| p.lambda).collect();
    lambdas.dedup();
    let (lo, hi) = r.points.iter().fold((1.0f64, 0.0f64), |(lo, hi), p| {
        (
            lo.min(p.expected).min(p.measured),
            hi.max(p.expected).max(p.measured),
        )
    });
    let (lo, hi) = ((lo - 0.05).max(0.0), (hi + 0.05).min(1.0));
    series.push(Series::dashed(
        "y = x",
        vec![(lo, lo), (hi, hi)],
        PALETTE[7],
    ));
    for (i, lambda) in lambdas.iter().enumerate() {
        series.push(Series::dots(
            format!("λ = {lambda} (offsets 0, 1, 2 in the Σ⁻¹-norm)"),
            r.points
                .iter()
                .filter(|p| p.lambda == *lambda)
                .map(|p| (p.expected, p.measured))
                .collect(),
            PALETTE[i % PALETTE.len()],
        ));
    }
    Figure::Panels(PanelFigure {
        title: format!(
            "ESS/N: expected E[w]²/E[w²] vs measured (N = {}, mean of {} runs)",
            r.samples, r.repetitions
        ),
        x_label: "expected ESS/N".into(),
        x_range: lo..hi,
        columns: 1,
        panels: vec![Panel {
            y_label: "measured ESS/N".into(),
            series,
            log_y: false,
        }],
        log_x: false,
        x_names: vec![],
    })
}

/// Write the plots of `mppi theory` into `dir` (PNG and SVG each); returns the files written.
pub fn write_theory_plots(dir: &Path, report: &TheoryReport) -> anyhow::Result<Vec<PathBuf>> {
    let figures = [
        ("theory_contraction", contraction_plot(&report.contraction)),
        (
            "theory_sufficient_increase",
            families_plot(&report.sufficient_increase),
        ),
        (
            "theory_full_covariance",
            full_covariance_plot(&report.full_covariance),
        ),
        (
            "theory_acceleration",
            acceleration_plot(&report.acceleration),
        ),
        ("theory_ess", ess_plot(&report.ess)),
    ];
    let mut written = vec![];
    for (stem, figure) in &figures {
        written.extend(save(figure, dir, stem)?);
    }
    Ok(written)
}

/// One line of [`write_line_plot`]: measured points (dots joined by a line) or a dashed
/// reference line.
#[derive(Debug, Clone)]
pub struct PlotLine {
    /// Legend text.
    pub label: String,
    /// `(x, y)` points.
    pub points: Vec<(f64, f64)>,
    /// Dashed reference (e.g. a fitted or ideal line) instead of measured dots.
    pub reference: bool,
}

/// Write a one-panel line plot (`dir/stem.png` and `.svg`), both axes logarithmic when
/// `log_log`; lines take the palette's colors in order. Returns the files written.
pub fn write_line_plot(
    dir: &Path,
    stem: &str,
    title: &str,
    x_label: &str,
    y_label: &str,
    log_log: bool,
    lines: &[PlotLine],
) -> anyhow::Result<Vec<PathBuf>> {
    let xs = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.0))
        .filter(|x| x.is_finite() && (!log_log || *x > 0.0));
    let (lo, hi) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
        (lo.min(x), hi.max(x))
    });
    let x_range = if !(lo.is_finite() && hi.is_finite()) {
        if log_log { 1.0..10.0 } else { 0.0..1.0 }
    } else if log_log {
        let pad = (hi / lo).max(1.01).powf(0.04);
        lo / pad..hi * pad
    } else {
        let pad = 0.04 * (hi - lo).max(1e-9);
        lo - pad..hi + pad
    };
    let mut series = vec![];
    for (i, line) in lines.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        if line.reference {
            series.push(Series::dashed(
                line.label.clone(),
                line.points.clone(),
                color,
            ));
        } else {
            series.push(Series::line(line.label.clone(), line.points.clone(), color));
            series.push(Series::dots(String::new(), line.points.clone(), color));
        }
    }
    let figure = Figure::Panels(PanelFigure {
        title: title.to_string(),
        x_label: x_label.to_string(),
        x_range,
        columns: 1,
        panels: vec![Panel {
            y_label: y_label.to_string(),
            series,
            log_y: log_log,
        }],
        log_x: log_log,
        x_names: vec![],
    });
    save(&figure, dir, stem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_split_at_non_finite() {
        let pts = [(0.0, 1.0), (1.0, f64::NAN), (2.0, 3.0), (3.0, 4.0)];
        assert_eq!(
            segments(&pts, false),
            vec![vec![(0.0, 1.0)], vec![(2.0, 3.0), (3.0, 4.0)]]
        );
        assert_eq!(
            segments(&[(0.0, -1.0), (1.0, 2.0)], true),
            vec![vec![(1.0, 2.0)]]
        );
    }

    #[test]
    fn y_range_is_never_empty() {
        let flat = Panel {
            y_label: String::new(),
            series: vec![Series::line("", vec![(0.0, 2.0), (1.0, 2.0)], BOUND)],
            log_y: false,
        };
        let r = y_range(&flat, 200.0);
        assert!(r.start < 2.0 && r.end > 2.0);
        let empty = Panel {
            series: vec![],
            ..flat.clone()
        };
        let r = y_range(&empty, 200.0);
        assert!(r.start < r.end);
        let log = Panel {
            series: vec![Series::line("", vec![(0.0, 1.0), (1.0, 1.0)], BOUND)],
            log_y: true,
            ..flat
        };
        let r = y_range(&log, 200.0);
        assert!(r.start > 0.0 && r.start < 1.0 && r.end > 1.0);
    }

    #[test]
    fn track_edges_are_offset_by_half_width() {
        let square = [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)];
        let (left, right) = track_edges(&square, 0.1);
        assert_eq!(left.len(), 5);
        assert_eq!(left[0], left[4]);
        for ((l, r), c) in left.iter().zip(&right).zip(&square) {
            let dl = ((l.0 - c.0).powi(2) + (l.1 - c.1).powi(2)).sqrt();
            let dr = ((r.0 - c.0).powi(2) + (r.1 - c.1).powi(2)).sqrt();
            assert!((dl - 0.1).abs() < 1e-12 && (dr - 0.1).abs() < 1e-12);
        }
    }

    #[test]
    fn clipping_cuts_lines_at_the_frame() {
        let (xr, yr) = (0.0..1.0, 0.0..1.0);
        let parts = clip_polyline(&[(0.5, 0.5), (1.5, 0.5), (1.5, 0.8), (0.5, 0.8)], &xr, &yr);
        assert_eq!(
            parts,
            vec![vec![(0.5, 0.5), (1.0, 0.5)], vec![(1.0, 0.8), (0.5, 0.8)]]
        );
        assert!(clip_polyline(&[(2.0, 2.0), (3.0, 3.0)], &xr, &yr).is_empty());
        assert_eq!(
            clip_polyline(&[(0.1, 0.1), (0.2, 0.2), (0.3, 0.3)], &xr, &yr),
            vec![vec![(0.1, 0.1), (0.2, 0.2), (0.3, 0.3)]]
        );
    }

    #[test]
    fn tick_labels() {
        assert_eq!(fmt_tick(&-0.0), "0");
        assert_eq!(fmt_tick(&-1e-17), "0");
        assert_eq!(fmt_tick(&200.0), "200");
        assert_eq!(fmt_tick(&0.25), "0.25");
        assert_eq!(fmt_tick(&-2.5), "-2.5");
        assert_eq!(fmt_tick(&1e-5), "1.00e-5");
    }

    #[test]
    fn bounds_broadcast() {
        assert_eq!(bound(Some(&vec![2.0]), 3), Some(2.0));
        assert_eq!(bound(Some(&vec![1.0, 2.0]), 1), Some(2.0));
        assert_eq!(bound(Some(&vec![f64::INFINITY]), 0), None);
        assert_eq!(bound(None, 0), None);
    }
}
