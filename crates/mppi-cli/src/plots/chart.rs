//! Panel figures: series over a shared `x` axis in a grid of charts, with success bands,
//! legends, explicit ticks and one tick format per axis.

use std::ops::Range;

use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::ticks::{TickFormat, linear_ticks, log_ticks};
use super::{BAND, FAMILY, GRID_BOLD, GRID_LIGHT, Point, TEXT, Ticked, style};

/// One line of a panel.
#[derive(Debug, Clone)]
pub(crate) struct Series {
    pub label: String,
    pub points: Vec<Point>,
    pub color: RGBColor,
    pub width: u32,
    pub dashed: bool,
    /// Draw the points as dots instead of a line.
    pub marker: bool,
    /// Vertical error bars `(x, low, high)` (none for most series).
    pub bars: Vec<(f64, f64, f64)>,
}

impl Series {
    pub fn line(label: impl Into<String>, points: Vec<Point>, color: RGBColor) -> Self {
        Series {
            label: label.into(),
            points,
            color,
            width: 2,
            dashed: false,
            marker: false,
            bars: vec![],
        }
    }

    pub fn dots(label: impl Into<String>, points: Vec<Point>, color: RGBColor) -> Self {
        Series {
            marker: true,
            ..Series::line(label, points, color)
        }
    }

    pub fn dashed(label: impl Into<String>, points: Vec<Point>, color: RGBColor) -> Self {
        Series {
            dashed: true,
            ..Series::line(label, points, color)
        }
    }
}

/// A horizontal success band `[low, high]` across the whole panel (a dashed target line when
/// `low == high`); every copy in `spans` is drawn, the legend names it once.
#[derive(Debug, Clone)]
pub(crate) struct Band {
    pub label: String,
    pub spans: Vec<(f64, f64)>,
}

/// One chart of a panel figure.
#[derive(Debug, Clone)]
pub(crate) struct Panel {
    pub y_label: String,
    pub series: Vec<Series>,
    pub bands: Vec<Band>,
    pub log_y: bool,
}

impl Panel {
    pub fn new(y_label: impl Into<String>, series: Vec<Series>) -> Self {
        Panel {
            y_label: y_label.into(),
            series,
            bands: vec![],
            log_y: false,
        }
    }

    pub fn log(self, log_y: bool) -> Self {
        Panel { log_y, ..self }
    }
}

/// Panels sharing an `x` axis, in a grid.
#[derive(Debug, Clone)]
pub(crate) struct PanelFigure {
    pub title: String,
    /// A second, smaller line under the title (empty for none).
    pub note: String,
    pub x_label: String,
    pub x_range: Range<f64>,
    pub columns: usize,
    pub panels: Vec<Panel>,
    /// Logarithmic `x` axis (points with `x ≤ 0` are not drawn).
    pub log_x: bool,
    /// Names of the integer `x` positions `0, 1, ...` (a categorical axis) when not empty.
    pub x_names: Vec<String>,
}

impl PanelFigure {
    /// A figure of one column over a linear `x` axis.
    pub fn new(title: String, x_label: &str, x_range: Range<f64>, panels: Vec<Panel>) -> Self {
        PanelFigure {
            title,
            note: String::new(),
            x_label: x_label.to_string(),
            x_range,
            columns: 1,
            panels,
            log_x: false,
            x_names: vec![],
        }
    }

    /// Pixel size.
    pub fn size(&self) -> (u32, u32) {
        let rows = self.panels.len().div_ceil(self.columns.max(1)).max(1) as u32;
        let width = if self.columns > 1 { 1400 } else { 1000 };
        let row_height = if rows == 1 { 330 } else { 230 };
        let note = if self.note.is_empty() { 0 } else { 22 };
        (width, 50 + note + rows * row_height)
    }
}

/// Split a polyline at non-finite points (and, for log axes, non-positive `y`).
pub(crate) fn segments(points: &[Point], positive_y: bool) -> Vec<Vec<Point>> {
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

/// Number of legend entries of a panel (labelled series and bands); a legend is drawn when
/// there are two or more, or a band (a lone series needs none: the axis names it).
fn legend_entries(panel: &Panel) -> usize {
    let entries = panel.series.iter().filter(|s| !s.label.is_empty()).count()
        + panel.bands.iter().filter(|b| !b.label.is_empty()).count();
    if entries >= 2 || panel.bands.iter().any(|b| !b.label.is_empty()) {
        entries
    } else {
        0
    }
}

/// A padded `y` range covering every drawable value and band of the panel, with headroom for
/// the legend (drawn in the upper right corner of a plot `plot_px` pixels tall).
pub(crate) fn y_range(panel: &Panel, plot_px: f64) -> Range<f64> {
    let range = data_y_range(panel);
    let entries = legend_entries(panel);
    if entries == 0 {
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

/// A padded `y` range covering every drawable value and band of the panel; a constant gets a
/// small symmetric range around it.
fn data_y_range(panel: &Panel) -> Range<f64> {
    let values = panel
        .series
        .iter()
        .flat_map(|s| {
            let bars = s.bars.iter().flat_map(|b| [b.1, b.2]);
            s.points.iter().map(|p| p.1).chain(bars)
        })
        .chain(
            panel
                .bands
                .iter()
                .flat_map(|b| b.spans.iter().flat_map(|s| [s.0, s.1])),
        )
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
                // a constant: ±10% of it, at least ±1
                (0.1 * mid.abs()).max(1.0)
            } else {
                0.5 * min_span
            };
            mid - half..mid + half
        } else {
            lo - 0.06 * span..hi + 0.06 * span
        }
    }
}

/// Ticks and their format for an axis.
struct Axis {
    major: Vec<f64>,
    minor: Vec<f64>,
    format: TickFormat,
}

impl Axis {
    fn new(range: &Range<f64>, log: bool, target: usize) -> Self {
        if log {
            let (major, minor) = log_ticks(range);
            let format = if major.len() >= 3 && major.iter().all(|v| *v > 0.0) {
                TickFormat::log(&major)
            } else {
                TickFormat::linear(&major)
            };
            Axis {
                major,
                minor,
                format,
            }
        } else {
            let (major, minor) = linear_ticks(range, target);
            let format = TickFormat::linear(&major);
            Axis {
                major,
                minor,
                format,
            }
        }
    }

    /// Categorical axis: the integer positions.
    fn names(count: usize) -> Self {
        Axis {
            major: (0..count).map(|i| i as f64).collect(),
            minor: vec![],
            format: TickFormat::Fixed(0),
        }
    }
}

/// An `x` tick label: the name of an integer position on a categorical axis, otherwise the
/// axis format.
fn x_tick(v: f64, names: &[String], format: TickFormat) -> String {
    if names.is_empty() {
        return format.label(v);
    }
    let i = v.round();
    if (v - i).abs() < 1e-6 && i >= 0.0 {
        names.get(i as usize).cloned().unwrap_or_default()
    } else {
        String::new()
    }
}

/// Series with more points than this are drawn 1 px wide (no miter joins).
const DENSE_POINTS: usize = 1500;

/// Draw the bands, series and legend of a panel on an already built chart (any coordinates).
macro_rules! draw_panel_body {
    ($chart:expr, $panel:expr, $x_label:expr, $log:expr, $fig:expr, $xa:expr, $ya:expr) => {{
        let chart = $chart;
        let names = &$fig.x_names;
        let (xf, yf) = ($xa.format, $ya.format);
        let x_fmt = |v: &f64| x_tick(*v, names, xf);
        let y_fmt = |v: &f64| yf.label(*v);
        chart
            .configure_mesh()
            .x_desc($x_label)
            .y_desc($panel.y_label.as_str())
            .label_style((FAMILY, 14).into_font().color(&TEXT))
            .axis_desc_style((FAMILY, 16).into_font().color(&TEXT))
            .light_line_style(GRID_LIGHT)
            .bold_line_style(GRID_BOLD)
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt)
            .draw()?;
        let labelled = legend_entries($panel) >= 1;
        let (x0, x1) = ($fig.x_range.start, $fig.x_range.end);
        for band in &$panel.bands {
            let fill = BAND.mix(0.15);
            let edge = style(BAND, 1);
            let line = style(BAND, 2);
            let mut first = true;
            for &(lo, hi) in &band.spans {
                if $log && (lo <= 0.0 || hi <= 0.0) {
                    continue;
                }
                let anno = if lo == hi {
                    chart.draw_series(DashedLineSeries::new(
                        vec![(x0, lo), (x1, lo)],
                        10,
                        6,
                        line,
                    ))?
                } else {
                    chart.draw_series(std::iter::once(Rectangle::new(
                        [(x0, lo), (x1, hi)],
                        fill.filled(),
                    )))?;
                    for v in [lo, hi] {
                        chart.draw_series(DashedLineSeries::new(
                            vec![(x0, v), (x1, v)],
                            6,
                            4,
                            edge,
                        ))?;
                    }
                    chart.draw_series(std::iter::empty::<Rectangle<(f64, f64)>>())?
                };
                if first && !band.label.is_empty() {
                    let target = lo == hi;
                    anno.label(band.label.as_str()).legend(move |(x, y)| {
                        if target {
                            DashedPathElement::new(vec![(x, y), (x + 24, y)], 7, 4, line).into_dyn()
                        } else {
                            Rectangle::new([(x, y - 6), (x + 24, y + 6)], fill.filled()).into_dyn()
                        }
                    });
                }
                first = false;
            }
        }
        for s in &$panel.series {
            let points: Vec<Point> = s
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
            let bars = s.bars.iter().filter(|b| {
                b.1.is_finite()
                    && b.2.is_finite()
                    && (!$log || b.1 > 0.0)
                    && (!$fig.log_x || b.0 > 0.0)
            });
            let bar_style = style(s.color, 1);
            for &(x, lo, hi) in bars {
                chart.draw_series(std::iter::once(PathElement::new(
                    vec![(x, lo), (x, hi)],
                    bar_style,
                )))?;
                // caps, 10 px wide
                chart.draw_series([lo, hi].into_iter().map(|y| {
                    EmptyElement::at((x, y)) + PathElement::new(vec![(-5, 0), (5, 0)], bar_style)
                }))?;
            }
            if s.marker {
                let color = s.color;
                let dots: Vec<Point> = segments(&points, $log).into_iter().flatten().collect();
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
    let (width_px, height_px) = area.dim_in_pixel();
    let plot_px = f64::from(height_px) - 42.0 - 16.0;
    let yr = y_range(panel, plot_px);
    let x_range = fig.x_range.clone();
    let xa = if fig.x_names.is_empty() {
        // about one label per 90 px
        Axis::new(&x_range, fig.log_x, (width_px / 90).clamp(4, 14) as usize)
    } else {
        Axis::names(fig.x_names.len())
    };
    let ya = Axis::new(&yr, panel.log_y, 5);
    let mut builder = ChartBuilder::on(area);
    builder
        .margin(8)
        .margin_right(24)
        .x_label_area_size(42)
        .y_label_area_size(84);
    let xk = |r: Range<f64>| Ticked::linear(r, xa.major.clone(), xa.minor.clone());
    let xl = |r: Range<f64>| Ticked::log(r, xa.major.clone(), xa.minor.clone());
    let yk = |r: Range<f64>| Ticked::linear(r, ya.major.clone(), ya.minor.clone());
    let yl = |r: Range<f64>| Ticked::log(r, ya.major.clone(), ya.minor.clone());
    match (fig.log_x, panel.log_y) {
        (false, true) => {
            let mut chart = builder.build_cartesian_2d(xk(x_range), yl(yr))?;
            draw_panel_body!(&mut chart, panel, x_label, true, fig, xa, ya);
        }
        (false, false) => {
            let mut chart = builder.build_cartesian_2d(xk(x_range), yk(yr))?;
            draw_panel_body!(&mut chart, panel, x_label, false, fig, xa, ya);
        }
        (true, true) => {
            let mut chart = builder.build_cartesian_2d(xl(x_range), yl(yr))?;
            draw_panel_body!(&mut chart, panel, x_label, true, fig, xa, ya);
        }
        (true, false) => {
            let mut chart = builder.build_cartesian_2d(xl(x_range), yk(yr))?;
            draw_panel_body!(&mut chart, panel, x_label, false, fig, xa, ya);
        }
    }
    Ok(())
}

pub(crate) fn draw_panels<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    fig: &PanelFigure,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let mut body = root.titled(&fig.title, (FAMILY, 24).into_font().color(&TEXT))?;
    if !fig.note.is_empty() {
        let (top, rest) = body.split_vertically(22);
        let w = i32::try_from(top.dim_in_pixel().0).unwrap_or(0);
        top.draw(&Text::new(
            fig.note.clone(),
            (w / 2, 9),
            (FAMILY, 15)
                .into_font()
                .color(&TEXT)
                .pos(Pos::new(HPos::Center, VPos::Center)),
        ))?;
        body = rest;
    }
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

/// A short number: up to 4 decimals without trailing zeros, scientific for magnitudes below
/// 10⁻³ or from 10⁵.
pub(crate) fn short(v: f64) -> String {
    if v != 0.0 && v.is_finite() && !(1e-3..1e5).contains(&v.abs()) {
        return format!("{v:.3e}");
    }
    TickFormat::Plain.label((v * 1e4).round() / 1e4)
}

/// What a series shows: `None` if it has finite values that vary, otherwise why it needs no
/// panel (`"not measured"` when no value is finite, `"= v (constant)"` when all are equal).
pub(crate) fn uninformative(points: &[Point]) -> Option<String> {
    let (lo, hi) = points
        .iter()
        .map(|p| p.1)
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !lo.is_finite() {
        return Some("not measured".into());
    }
    let big = lo.abs().max(hi.abs());
    if big <= 1e-9 {
        return Some(format!("≈ 0 (every |value| ≤ {big:.1e})"));
    }
    if hi - lo <= 1e-12 * (1.0 + big) {
        let v = 0.5 * (lo + hi);
        return Some(format!("= {} (constant)", short(v)));
    }
    None
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
    fn y_range_is_never_empty_and_a_constant_gets_a_symmetric_one() {
        let flat = Panel::new(
            "",
            vec![Series::line("", vec![(0.0, 2.0), (1.0, 2.0)], TEXT)],
        );
        let r = y_range(&flat, 200.0);
        assert!(r.start < 2.0 && r.end > 2.0);
        assert!(((r.start + r.end) / 2.0 - 2.0).abs() < 1e-12, "{r:?}");
        assert!(r.end - r.start >= 2.0, "{r:?}");
        let zero = Panel::new(
            "",
            vec![Series::line("", vec![(0.0, 0.0), (1.0, 0.0)], TEXT)],
        );
        let r = y_range(&zero, 200.0);
        assert!(
            (r.start + 1.0).abs() < 1e-12 && (r.end - 1.0).abs() < 1e-12,
            "{r:?}"
        );
        let empty = Panel::new("", vec![]);
        let r = y_range(&empty, 200.0);
        assert!(r.start < r.end);
        let log = Panel::new(
            "",
            vec![Series::line("", vec![(0.0, 1.0), (1.0, 1.0)], TEXT)],
        )
        .log(true);
        let r = y_range(&log, 200.0);
        assert!(r.start > 0.0 && r.start < 1.0 && r.end > 1.0);
        // a band widens the range to show it
        let mut banded = flat.clone();
        banded.bands.push(Band {
            label: "goal".into(),
            spans: vec![(5.0, 6.0)],
        });
        let r = y_range(&banded, 200.0);
        assert!(r.start < 2.0 && r.end > 6.0, "{r:?}");
        // and error bars to show them whole
        let mut barred = flat.clone();
        barred.series[0].bars = vec![(0.0, -3.0, 9.0)];
        let r = y_range(&barred, 200.0);
        assert!(r.start < -3.0 && r.end > 9.0, "{r:?}");
    }

    #[test]
    fn uninformative_series_are_recognised() {
        assert_eq!(
            uninformative(&[(0.0, f64::NAN), (1.0, f64::NAN)]).as_deref(),
            Some("not measured")
        );
        assert!(
            uninformative(&[(0.0, 1.0), (1.0, 1.0), (2.0, f64::NAN)])
                .is_some_and(|s| s.contains("constant"))
        );
        assert_eq!(uninformative(&[(0.0, 1.0), (1.0, 1.5)]), None);
        assert!(
            uninformative(&[(0.0, 1e-15), (1.0, -2e-15)]).is_some_and(|s| s.starts_with("≈ 0")),
        );
        assert_eq!(uninformative(&[]).as_deref(), Some("not measured"));
        assert_eq!(short(1.0), "1");
        assert_eq!(short(-0.25), "-0.25");
        assert_eq!(short(2.5e-7), "2.500e-7");
    }
}
