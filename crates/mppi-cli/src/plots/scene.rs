//! The planar path figure, and the scene drawing (track, obstacles, goal) it shares with the
//! animation.

use std::ops::Range;

use mppi_tasks::{Circle as Disk, Episode, RolloutSnapshot, Scene, Task};
use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::chart::{segments, short};
use super::ticks::{TickFormat, linear_ticks};
use super::{FAMILY, GRID_BOLD, GRID_LIGHT, PALETTE, Point, TEXT, Ticked, style, with_unit};

const TRACK_FILL: RGBColor = RGBColor(222, 222, 222);
const TRACK_EDGE: RGBColor = RGBColor(90, 90, 90);
const OBSTACLE: RGBColor = RGBColor(120, 120, 130);
const OBSTACLE_EDGE: RGBColor = RGBColor(70, 70, 80);
pub(crate) const GOAL: RGBColor = RGBColor(44, 160, 44);
pub(crate) const ROLLOUT: RGBColor = RGBColor(150, 150, 150);
pub(crate) const PLAN: RGBColor = RGBColor(255, 127, 14);
pub(crate) const PATH: RGBColor = RGBColor(31, 119, 180);

/// The coordinates of a scene chart: metres on both axes, explicit ticks.
pub(crate) type SceneCoord = Cartesian2d<Ticked<RangedCoordf64>, Ticked<RangedCoordf64>>;

/// A rollout capture in plane coordinates: control step, plan, sampled rollouts.
pub(crate) type Capture = (usize, Vec<Point>, Vec<Vec<Point>>);

/// The planar path figure.
#[derive(Debug, Clone)]
pub(crate) struct PathFigure {
    title: String,
    scene: Scene,
    path: Vec<Point>,
    /// Time of each point of `path` in seconds.
    times: Vec<f64>,
    /// Captured `(step, plan, samples)`.
    rollouts: Vec<Capture>,
    dt: f64,
    x_range: Range<f64>,
    y_range: Range<f64>,
    x_label: String,
    y_label: String,
}

/// Width of the legend column right of the path plot, in pixels.
const PATH_LEGEND_WIDTH: u32 = 210;

impl PathFigure {
    /// Pixel size: equal aspect, the plotting area being the figure less the legend column,
    /// the axis label areas, the title and the margins.
    pub fn size(&self) -> (u32, u32) {
        let w = (self.x_range.end - self.x_range.start).max(1e-9);
        let h = (self.y_range.end - self.y_range.start).max(1e-9);
        let width = 1150;
        let plot_w = f64::from(width - PATH_LEGEND_WIDTH - 90);
        let plot_h = plot_w * h / w;
        // room for the legend and the colour bar
        (width, (plot_h + 105.0).round().max(520.0) as u32)
    }
}

/// A colour ramp for time, from dark purple through teal and green to yellow-green (viridis
/// up to 0.9, readable on white), at `f ∈ [0, 1]`.
pub(crate) fn ramp(f: f64) -> RGBColor {
    const STOPS: [(f64, (f64, f64, f64)); 5] = [
        (0.0, (68.0, 1.0, 84.0)),
        (0.25, (59.0, 82.0, 139.0)),
        (0.5, (33.0, 145.0, 140.0)),
        (0.75, (94.0, 201.0, 98.0)),
        (1.0, (170.0, 220.0, 50.0)),
    ];
    let f = if f.is_finite() {
        f.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let i = STOPS.iter().rposition(|s| s.0 <= f).unwrap_or(0).min(3);
    let (f0, a) = STOPS[i];
    let (f1, b) = STOPS[i + 1];
    let t = (f - f0) / (f1 - f0);
    let mix = |x: f64, y: f64| (x + t * (y - x)).round().clamp(0.0, 255.0) as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Clip the segment `a`–`b` to the rectangle (Liang–Barsky); `None` if it lies outside.
fn clip_segment(a: Point, b: Point, xr: &Range<f64>, yr: &Range<f64>) -> Option<(Point, Point)> {
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
pub(crate) fn clip_polyline(points: &[Point], xr: &Range<f64>, yr: &Range<f64>) -> Vec<Vec<Point>> {
    let mut out: Vec<Vec<Point>> = vec![];
    for seg in segments(points, false) {
        if seg.len() == 1 {
            let p = seg[0];
            if xr.contains(&p.0) && yr.contains(&p.1) {
                out.push(seg);
            }
            continue;
        }
        let mut current: Vec<Point> = vec![];
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

/// Points of a circle, as a closed polygon.
fn circle_points(c: &Disk, n: usize) -> Vec<Point> {
    (0..=n)
        .map(|i| {
            let a = 2.0 * std::f64::consts::PI * i as f64 / n as f64;
            (c.x + c.r * a.cos(), c.y + c.r * a.sin())
        })
        .collect()
}

/// Left and right edges of a closed track: the centerline offset by `half_width` along the
/// normal (both closed: the first point is repeated at the end).
pub(crate) fn track_edges(center: &[Point], half_width: f64) -> (Vec<Point>, Vec<Point>) {
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
pub(crate) enum Swatch {
    Line(ShapeStyle),
    Dashed(ShapeStyle),
    Area(RGBAColor, RGBColor),
    Dot(RGBColor),
    Ring(RGBColor),
    Triangle(RGBColor),
}

/// Draw a legend (swatches and labels) at `(x0, y0)` of `area`, in pixel coordinates, with
/// rows of `row` pixels and text of `font_px`; returns its bottom edge.
pub(crate) fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    (x0, y0): (i32, i32),
    width: i32,
    (row, font_px): (i32, u32),
    entries: &[(Swatch, String)],
) -> anyhow::Result<i32>
where
    DB::ErrorType: 'static,
{
    if entries.is_empty() {
        return Ok(y0);
    }
    let height = row * entries.len() as i32 + row / 2;
    let frame = [(x0, y0), (x0 + width, y0 + height)];
    area.draw(&Rectangle::new(frame, WHITE.mix(0.9).filled()))?;
    area.draw(&Rectangle::new(frame, style(GRID_BOLD, 1)))?;
    let font = (FAMILY, font_px).into_font().color(&TEXT);
    let half = row / 4;
    for (i, (swatch, label)) in entries.iter().enumerate() {
        let y = y0 + (3 * row) / 4 + row * i as i32;
        let (sx, ex) = (x0 + 8, x0 + 8 + row + half);
        let mid = (sx + ex) / 2;
        match *swatch {
            Swatch::Line(st) => area.draw(&PathElement::new(vec![(sx, y), (ex, y)], st))?,
            Swatch::Dashed(st) => {
                area.draw(&DashedPathElement::new(vec![(sx, y), (ex, y)], 6, 4, st))?;
            }
            Swatch::Area(fill, edge) => {
                area.draw(&Rectangle::new(
                    [(sx, y - half), (ex, y + half)],
                    fill.filled(),
                ))?;
                area.draw(&Rectangle::new(
                    [(sx, y - half), (ex, y + half)],
                    style(edge, 1),
                ))?;
            }
            Swatch::Dot(c) => area.draw(&Circle::new((mid, y), half.max(3), c.filled()))?,
            Swatch::Ring(c) => {
                area.draw(&Circle::new((mid, y), half.max(3), WHITE.filled()))?;
                area.draw(&Circle::new((mid, y), half.max(3), style(c, 2)))?;
            }
            Swatch::Triangle(c) => {
                area.draw(&TriangleMarker::new((mid, y), half + 2, c.filled()))?;
            }
        }
        area.draw(&Text::new(
            label.clone(),
            (ex + 8, y),
            font.clone().pos(Pos::new(HPos::Left, VPos::Center)),
        ))?;
    }
    Ok(y0 + height)
}

/// Build a chart over `xr × yr` (metres) on `area` with a light grid and labelled axes.
pub(crate) fn scene_chart<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    (xr, yr): (&Range<f64>, &Range<f64>),
    (x_label, y_label): (&str, &str),
    (font_px, label_area): (u32, (u32, u32)),
) -> anyhow::Result<ChartContext<'a, DB, SceneCoord>>
where
    DB::ErrorType: 'static,
{
    let (w, h) = area.dim_in_pixel();
    let (xt, xm) = linear_ticks(xr, (w / 90).clamp(3, 12) as usize);
    let (yt, ym) = linear_ticks(yr, (h / 70).clamp(3, 12) as usize);
    let (xf, yf) = (TickFormat::linear(&xt), TickFormat::linear(&yt));
    let mut chart = ChartBuilder::on(area)
        .margin(8)
        .margin_right(16)
        .x_label_area_size(label_area.0)
        .y_label_area_size(label_area.1)
        .build_cartesian_2d(
            Ticked::linear(xr.clone(), xt, xm),
            Ticked::linear(yr.clone(), yt, ym),
        )?;
    let x_fmt = |v: &f64| xf.label(*v);
    let y_fmt = |v: &f64| yf.label(*v);
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .label_style((FAMILY, font_px).into_font().color(&TEXT))
        .axis_desc_style((FAMILY, font_px + 2).into_font().color(&TEXT))
        .light_line_style(GRID_LIGHT)
        .bold_line_style(GRID_BOLD)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .draw()?;
    Ok(chart)
}

/// Draw the track, obstacles and goal of `scene`; returns their legend entries.
pub(crate) fn draw_scene<DB: DrawingBackend>(
    chart: &mut ChartContext<'_, DB, SceneCoord>,
    scene: &Scene,
    (xr, yr): (&Range<f64>, &Range<f64>),
) -> anyhow::Result<Vec<(Swatch, String)>>
where
    DB::ErrorType: 'static,
{
    let mut legend = vec![];
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
            for seg in clip_polyline(&e, xr, yr) {
                chart.draw_series(LineSeries::new(seg, edge))?;
            }
        }
        let mut closed = center.clone();
        closed.push(center[0]);
        let dashed = style(TRACK_EDGE, 1);
        for seg in clip_polyline(&closed, xr, yr) {
            chart.draw_series(DashedLineSeries::new(seg, 8, 8, dashed))?;
        }
        legend.push((
            Swatch::Area(TRACK_FILL.to_rgba(), TRACK_EDGE),
            "track".into(),
        ));
        legend.push((Swatch::Dashed(dashed), "centerline".into()));
    }
    for c in &scene.obstacles {
        let pts = circle_points(c, 72);
        chart.draw_series(std::iter::once(Polygon::new(
            pts.clone(),
            OBSTACLE.mix(0.75).filled(),
        )))?;
        chart.draw_series(LineSeries::new(pts, style(OBSTACLE_EDGE, 1)))?;
    }
    if !scene.obstacles.is_empty() {
        legend.push((
            Swatch::Area(OBSTACLE.mix(0.75), OBSTACLE_EDGE),
            "obstacle".into(),
        ));
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
        legend.push((
            Swatch::Area(GOAL.mix(0.25), GOAL),
            format!("goal (radius {} m)", short(goal.r)),
        ));
    }
    Ok(legend)
}

/// Cumulative arc length along a polyline (0 at the first point; non-finite steps add 0).
fn arc_lengths(path: &[Point]) -> Vec<f64> {
    let mut s = 0.0;
    let mut out = Vec::with_capacity(path.len());
    for (i, p) in path.iter().enumerate() {
        if i > 0 {
            let q = path[i - 1];
            let d = (p.0 - q.0).hypot(p.1 - q.1);
            if d.is_finite() {
                s += d;
            }
        }
        out.push(s);
    }
    out
}

/// Where to put direction arrows on a path: `(index, point, unit direction)` at every
/// `spacing` of arc length (the first half a spacing in).
pub(crate) fn arrow_positions(path: &[Point], spacing: f64) -> Vec<(usize, Point, Point)> {
    let s = arc_lengths(path);
    let mut out = vec![];
    if !(spacing.is_finite() && spacing > 0.0) || path.len() < 2 {
        return out;
    }
    let mut next = 0.5 * spacing;
    for i in 1..path.len() {
        while s[i] >= next {
            let (a, b) = (path[i - 1], path[i]);
            let len = (b.0 - a.0).hypot(b.1 - a.1);
            if len > 0.0 && len.is_finite() {
                let t = ((next - s[i - 1]) / len).clamp(0.0, 1.0);
                let p = (a.0 + t * (b.0 - a.0), a.1 + t * (b.1 - a.1));
                out.push((i, p, ((b.0 - a.0) / len, (b.1 - a.1) / len)));
            }
            next += spacing;
        }
    }
    out
}

/// An arrowhead at `p` pointing along the unit vector `d`, `size` long (data units).
pub(crate) fn arrowhead(p: Point, d: Point, size: f64) -> Vec<Point> {
    let (nx, ny) = (-d.1, d.0);
    let tip = (p.0 + 0.6 * size * d.0, p.1 + 0.6 * size * d.1);
    let back = (p.0 - 0.4 * size * d.0, p.1 - 0.4 * size * d.1);
    vec![
        tip,
        (back.0 + 0.45 * size * nx, back.1 + 0.45 * size * ny),
        (back.0 - 0.45 * size * nx, back.1 - 0.45 * size * ny),
    ]
}

/// Draw a vertical colour bar of the time ramp from `0` to `t_end` seconds into `area` at
/// `(x0, y0)`, `h` pixels tall.
fn draw_colour_bar<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    (x0, y0): (i32, i32),
    h: i32,
    t_end: f64,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let font = (FAMILY, 15).into_font().color(&TEXT);
    area.draw(&Text::new(
        "time [s]".to_string(),
        (x0, y0),
        font.clone().pos(Pos::new(HPos::Left, VPos::Top)),
    ))?;
    let (top, bar_w) = (y0 + 24, 18);
    let steps = 48;
    for k in 0..steps {
        // time runs upwards
        let f = 1.0 - (k as f64 + 0.5) / steps as f64;
        let ya = top + h * k / steps;
        let yb = top + h * (k + 1) / steps;
        area.draw(&Rectangle::new(
            [(x0, ya), (x0 + bar_w, yb)],
            ramp(f).filled(),
        ))?;
    }
    area.draw(&Rectangle::new(
        [(x0, top), (x0 + bar_w, top + h)],
        style(GRID_BOLD, 1),
    ))?;
    let (ticks, _) = linear_ticks(&(0.0..t_end.max(1e-9)), 4);
    let format = TickFormat::linear(&ticks);
    for t in ticks {
        let y = top + h - (f64::from(h) * t / t_end.max(1e-9)).round() as i32;
        area.draw(&PathElement::new(
            vec![(x0 + bar_w, y), (x0 + bar_w + 4, y)],
            style(TEXT, 1),
        ))?;
        area.draw(&Text::new(
            format.label(t),
            (x0 + bar_w + 8, y),
            font.clone().pos(Pos::new(HPos::Left, VPos::Center)),
        ))?;
    }
    Ok(())
}

pub(crate) fn draw_path<DB: DrawingBackend>(
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
    let (xr, yr) = (&fig.x_range, &fig.y_range);
    let mut chart = scene_chart(
        &plot_area,
        (xr, yr),
        (&fig.x_label, &fig.y_label),
        (14, (45, 60)),
    )?;
    let mut legend = draw_scene(&mut chart, &fig.scene, (xr, yr))?;

    let sample_style = ShapeStyle {
        color: ROLLOUT.mix(0.55),
        filled: false,
        stroke_width: 1,
    };
    let plan_style = style(PLAN, 2);
    for (_, plan, samples) in &fig.rollouts {
        for sample in samples {
            for seg in clip_polyline(sample, xr, yr) {
                chart.draw_series(LineSeries::new(seg, sample_style))?;
            }
        }
        for seg in clip_polyline(plan, xr, yr) {
            chart.draw_series(LineSeries::new(seg, plan_style))?;
        }
    }
    if !fig.rollouts.is_empty() {
        legend.push((
            Swatch::Line(style(ROLLOUT, 1)),
            "sampled rollouts (best)".into(),
        ));
        legend.push((Swatch::Line(plan_style), "optimized plan".into()));
    }

    // the executed path, coloured by time, in chunks of one colour each
    let t_end = fig.times.last().copied().unwrap_or(0.0).max(fig.dt);
    let n = fig.path.len();
    let chunks = 96.min(n.saturating_sub(1)).max(1);
    for c in 0..chunks {
        let (a, b) = (
            c * (n - 1) / chunks,
            ((c + 1) * (n - 1) / chunks).min(n - 1),
        );
        if b <= a && n > 1 {
            continue;
        }
        let color = ramp(fig.times.get(a).copied().unwrap_or(0.0) / t_end);
        for seg in clip_polyline(&fig.path[a..=b.max(a)], xr, yr) {
            chart.draw_series(LineSeries::new(seg, style(color, 3)))?;
        }
    }
    // direction arrows about every twelfth of the plot's width of path
    let size = 0.022 * (xr.end - xr.start);
    let total = arc_lengths(&fig.path).last().copied().unwrap_or(0.0);
    let spacing = (total / 12.0).max(4.0 * size);
    let arrows = arrow_positions(&fig.path, spacing)
        .into_iter()
        .filter(|(_, p, _)| xr.contains(&p.0) && yr.contains(&p.1))
        .map(|(i, p, d)| {
            let color = ramp(fig.times.get(i).copied().unwrap_or(0.0) / t_end);
            Polygon::new(arrowhead(p, d, size), color.filled())
        });
    chart.draw_series(arrows)?;
    legend.push((
        Swatch::Line(style(ramp(0.5), 3)),
        "executed path (by time)".into(),
    ));

    // where each captured plan starts, with its time
    let font = (FAMILY, 13).into_font().color(&PLAN);
    for (step, plan, _) in &fig.rollouts {
        if let Some(&p) = plan.first()
            && xr.contains(&p.0)
            && yr.contains(&p.1)
        {
            chart.draw_series(std::iter::once(Circle::new(p, 5, PLAN.filled())))?;
            let t = *step as f64 * fig.dt;
            // a few pixels right of and above the dot
            let label = EmptyElement::at(p)
                + Text::new(
                    format!("{} s", short(t)),
                    (7, -3),
                    font.clone().pos(Pos::new(HPos::Left, VPos::Bottom)),
                );
            chart.draw_series(std::iter::once(label))?;
        }
    }
    if !fig.rollouts.is_empty() {
        legend.push((Swatch::Dot(PLAN), "plan start (capture time)".into()));
    }
    if let Some(&start) = fig.path.first() {
        chart.draw_series(std::iter::once(Circle::new(start, 7, WHITE.filled())))?;
        chart.draw_series(std::iter::once(Circle::new(start, 7, style(TEXT, 2))))?;
        legend.push((Swatch::Ring(TEXT), "start".into()));
    }
    if let Some(&end) = fig.path.last() {
        chart.draw_series(std::iter::once(TriangleMarker::new(
            end,
            8,
            PALETTE[3].filled(),
        )))?;
        legend.push((Swatch::Triangle(PALETTE[3]), "end".into()));
    }
    let width = i32::try_from(legend_area.dim_in_pixel().0).unwrap_or(190) - 12;
    let bottom = draw_legend(&legend_area, (4, 12), width, (24, 15), &legend)?;
    let bar_h =
        (i32::try_from(legend_area.dim_in_pixel().1).unwrap_or(400) - bottom - 90).clamp(60, 260);
    draw_colour_bar(&legend_area, (14, bottom + 20), bar_h, t_end)
}

/// Grow `range` by `fraction` of its span on both sides.
fn padded(lo: f64, hi: f64, fraction: f64) -> Range<f64> {
    let span = (hi - lo).max(1e-9);
    lo - fraction * span..hi + fraction * span
}

/// The plot extent of a scene: its own, grown to hold `points`, padded, then widened on one
/// axis to keep the height between `min_aspect` and `max_aspect` times the width.
pub(crate) fn scene_extent(
    scene: &Scene,
    points: impl Iterator<Item = Point>,
    (min_aspect, max_aspect): (f64, f64),
) -> (Range<f64>, Range<f64>) {
    let ((mut x0, mut x1), (mut y0, mut y1)) = scene.extent;
    if !(x0.is_finite() && x1.is_finite() && x0 < x1) {
        (x0, x1) = (f64::INFINITY, f64::NEG_INFINITY);
    }
    if !(y0.is_finite() && y1.is_finite() && y0 < y1) {
        (y0, y1) = (f64::INFINITY, f64::NEG_INFINITY);
    }
    for (x, y) in points.filter(|p| p.0.is_finite() && p.1.is_finite()) {
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
    let (w, h) = (xr.end - xr.start, yr.end - yr.start);
    if h / w < min_aspect {
        let extra = 0.5 * (min_aspect * w - h);
        yr = yr.start - extra..yr.end + extra;
    } else if h / w > max_aspect {
        let extra = 0.5 * (h / max_aspect - w);
        xr = xr.start - extra..xr.end + extra;
    }
    (xr, yr)
}

/// The planar point of a state row (NaN where the row is too short).
pub(crate) fn plane_point(scene: &Scene, x: &[f64]) -> Point {
    let (ix, iy) = scene.position;
    (
        x.get(ix).copied().unwrap_or(f64::NAN),
        x.get(iy).copied().unwrap_or(f64::NAN),
    )
}

/// A capture in plane coordinates.
pub(crate) fn capture_points(scene: &Scene, r: &RolloutSnapshot) -> Capture {
    let xy = |x: &Vec<f64>| plane_point(scene, x);
    (
        r.step,
        r.plan.iter().map(xy).collect(),
        r.samples
            .iter()
            .map(|s| s.iter().map(xy).collect())
            .collect(),
    )
}

/// Axis label of state component `i` with its unit (`fallback` without a name).
pub(crate) fn state_axis_label(task: &dyn Task, i: usize, fallback: &str) -> String {
    let name = task.state_names().get(i).copied().unwrap_or(fallback);
    let unit = task.state_units().get(i).copied().unwrap_or("");
    with_unit(name, unit)
}

/// The captures the path plot draws: about five, evenly spaced among those taken.
pub(crate) fn plotted_captures(rollouts: &[RolloutSnapshot]) -> Vec<&RolloutSnapshot> {
    let stride = rollouts.len().div_ceil(5).max(1);
    rollouts.iter().step_by(stride).collect()
}

pub(crate) fn path_figure(task: &dyn Task, scene: Scene, episode: &Episode) -> PathFigure {
    let path: Vec<Point> = episode
        .states
        .iter()
        .map(|x| plane_point(&scene, x))
        .collect();
    let times: Vec<f64> = (0..path.len())
        .map(|i| episode.kept_steps.get(i).copied().unwrap_or(i) as f64 * episode.dt)
        .collect();
    let shown = plotted_captures(&episode.rollouts);
    let rollouts: Vec<Capture> = shown.iter().map(|r| capture_points(&scene, r)).collect();
    let (xr, yr) = scene_extent(&scene, path.iter().copied(), (0.45, 1.3));
    let captured = match shown.as_slice() {
        [a, b, ..] => format!(", plans and rollouts every {} steps", b.step - a.step),
        [_] => ", plan and rollouts at the start".to_string(),
        [] => String::new(),
    };
    let (ix, iy) = scene.position;
    PathFigure {
        title: format!("{}: path{captured}", task.name()),
        x_label: state_axis_label(task, ix, "x"),
        y_label: state_axis_label(task, iy, "y"),
        scene,
        path,
        times,
        rollouts,
        dt: episode.dt,
        x_range: xr,
        y_range: yr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn arrows_follow_the_path_direction() {
        // right along y = 0, then up along x = 10
        let path = [(0.0, 0.0), (10.0, 0.0), (10.0, 10.0)];
        let arrows = arrow_positions(&path, 5.0);
        assert_eq!(arrows.len(), 4);
        assert_eq!(arrows[0].1, (2.5, 0.0));
        assert_eq!(arrows[0].2, (1.0, 0.0));
        assert_eq!(arrows[3].1, (10.0, 7.5));
        assert_eq!(arrows[3].2, (0.0, 1.0));
        let head = arrowhead((0.0, 0.0), (1.0, 0.0), 1.0);
        assert!(head[0].0 > 0.0 && head[1].0 < 0.0 && head[1].1 > 0.0 && head[2].1 < 0.0);
        assert!(arrow_positions(&[(0.0, 0.0)], 1.0).is_empty());
    }

    #[test]
    fn ramp_runs_from_dark_to_light() {
        let lum =
            |c: RGBColor| 0.3 * f64::from(c.0) + 0.59 * f64::from(c.1) + 0.11 * f64::from(c.2);
        let mut last = -1.0;
        for k in 0..=10 {
            let l = lum(ramp(f64::from(k) / 10.0));
            assert!(l > last, "{k}");
            last = l;
        }
        assert_eq!(ramp(f64::NAN), ramp(0.0));
        assert_eq!(ramp(2.0), ramp(1.0));
    }

    #[test]
    fn the_plot_draws_about_five_captures() {
        let snap = |step| RolloutSnapshot {
            step,
            plan: vec![],
            samples: vec![],
        };
        let many: Vec<RolloutSnapshot> = (0..100).map(|k| snap(2 * k)).collect();
        let shown = plotted_captures(&many);
        assert_eq!(shown.len(), 5);
        assert_eq!(shown[1].step, 40);
        assert_eq!(plotted_captures(&many[..3]).len(), 3);
    }
}
