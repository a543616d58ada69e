//! Plots of a run, each written as PNG and SVG with the same content.
//!
//! - `states`: one panel per state component over time, in the task's units, with its success
//!   band or target value (a shaded band or a dashed line, in the legend);
//! - `controls`: one panel per control (zero-order hold) with the bounds;
//! - `cost`: stage cost and cumulative cost over time;
//! - `diagnostics`: ESS, temperature `λ`, log-likelihood estimate, KL step, M-step gap,
//!   contraction and planning time; a series that is constant or never measured gets no
//!   panel, its value is stated under the title instead;
//! - `path` (planar tasks only): obstacles, goal, track, the executed path coloured by time
//!   (colour bar, direction arrows), sampled rollouts and plans captured during the run.
//!
//! Axes are labelled `quantity [unit]`; every axis has explicit ticks (decades and 2, 5
//! subdivisions on log axes, so at least 3 are labelled) in one format per axis. Text uses
//! the embedded DejaVu Sans (no system fonts are needed).
//!
//! Files: [`chart`] (panel figures: ranges, bands, legends), [`ticks`] (axis ticks and their
//! format), [`scene`] (the planar path figure and the scene drawing the animation shares),
//! [`episode`] (the figures of a run), [`theory`] (the figures of `mppi theory` and the line
//! plots of the benchmarks).

mod chart;
mod episode;
pub(crate) mod scene;
mod theory;
mod ticks;

use std::ops::Range;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow};
use plotters::coord::Shift;
use plotters::coord::combinators::LogCoord;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

pub use episode::{rollout_interval, write_plots};
pub use theory::{PlotLine, write_line_plot, write_line_plot_with_bars, write_theory_plots};

/// The embedded font.
static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
/// Font family name the plots use.
pub(crate) const FAMILY: &str = "sans-serif";

/// Line colors (the "tab10" palette).
pub(crate) const PALETTE: [RGBColor; 10] = [
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
pub(crate) const BOUND: RGBColor = RGBColor(200, 30, 30);
pub(crate) const GRID_LIGHT: RGBColor = RGBColor(242, 242, 242);
pub(crate) const GRID_BOLD: RGBColor = RGBColor(215, 215, 215);
pub(crate) const TEXT: RGBColor = RGBColor(40, 40, 40);
/// Success bands and target values.
pub(crate) const BAND: RGBColor = RGBColor(44, 160, 44);

/// Make the embedded font available to the bitmap backend. Call once before plotting.
pub fn register_font() -> anyhow::Result<()> {
    plotters::style::register_font(FAMILY, FontStyle::Normal, FONT)
        .map_err(|_| anyhow!("the embedded plot font could not be loaded"))
}

/// A point of a plot in data coordinates.
pub(crate) type Point = (f64, f64);

/// A stroke style.
pub(crate) fn style(color: RGBColor, width: u32) -> ShapeStyle {
    ShapeStyle {
        color: color.to_rgba(),
        filled: false,
        stroke_width: width,
    }
}

/// `name [unit]`, or `name` without a unit.
pub(crate) fn with_unit(name: &str, unit: &str) -> String {
    crate::output::with_unit(name, unit)
}

/// An axis with explicit major (labelled) and minor (light grid) ticks over a linear or log
/// coordinate; its labels are always formatted by the chart's formatter.
pub(crate) struct Ticked<R> {
    inner: R,
    major: Vec<f64>,
    minor: Vec<f64>,
}

impl Ticked<RangedCoordf64> {
    /// A linear axis over `range`.
    pub fn linear(range: Range<f64>, major: Vec<f64>, minor: Vec<f64>) -> Self {
        Ticked {
            inner: range.into(),
            major,
            minor,
        }
    }
}

impl Ticked<LogCoord<f64>> {
    /// A logarithmic axis over `range` (positive).
    pub fn log(range: Range<f64>, major: Vec<f64>, minor: Vec<f64>) -> Self {
        Ticked {
            inner: range.log_scale().into(),
            major,
            minor,
        }
    }
}

impl<R: Ranged<ValueType = f64>> Ranged for Ticked<R> {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.inner.map(value, limit)
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            self.minor.clone()
        } else {
            self.major.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.inner.range()
    }

    fn axis_pixel_range(&self, limit: (i32, i32)) -> Range<i32> {
        self.inner.axis_pixel_range(limit)
    }
}

/// A figure that can be drawn on any backend.
#[derive(Debug, Clone)]
enum Figure {
    Panels(chart::PanelFigure),
    Path(scene::PathFigure),
}

impl Figure {
    /// Pixel size.
    fn size(&self) -> (u32, u32) {
        match self {
            Figure::Panels(f) => f.size(),
            Figure::Path(f) => f.size(),
        }
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()>
    where
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE)?;
        match self {
            Figure::Panels(f) => chart::draw_panels(root, f),
            Figure::Path(f) => scene::draw_path(root, f),
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
