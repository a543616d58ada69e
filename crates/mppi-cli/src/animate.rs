//! `episode.gif`: an animation of a run (`mppi run <task> --out DIR`, unless
//! `--no-animation`).
//!
//! - A task that draws itself ([`Task::body_segments`]: pendulum, cart-pole, acrobot, a
//!   MuJoCo model, ...) is drawn as thick capsules in metres with equal aspect, the axis
//!   limits covering every frame, with the trail of its last segment's tip and, where the
//!   task has success bands on angles, the system posed at the band's edges (or its target)
//!   as a green ghost.
//! - A planar task ([`Task::scene`]) shows its scene (track, obstacles, goal), the path
//!   driven so far, and the plan and the best sampled rollouts captured at that step; a
//!   task that is both (the quadrotor) also draws its body.
//!
//! Every frame carries the time (`t = 1.23 s`). At most [`MAX_FRAMES`] frames, drawn from the
//! episode's bounded record and the rollout captures `mppi run` takes for the animation (one
//! per frame, [`capture_interval`]), so memory and time stay bounded on long episodes.

use std::ops::Range;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use mppi_tasks::{BodySegment, Episode, RolloutSnapshot, Scene, Task};
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::plots::scene::{
    GOAL, PATH, PLAN, ROLLOUT, SceneCoord, capture_points, clip_polyline, draw_scene, plane_point,
    scene_chart, scene_extent, state_axis_label,
};
use crate::plots::{BAND, FAMILY, Point, TEXT, style};

mod gif;

/// Most frames of a GIF.
pub const MAX_FRAMES: usize = 150;
/// Width of a GIF in pixels.
const WIDTH: u32 = 480;
/// Height of the strip above the chart (time label) and below it (legend).
const TOP: u32 = 26;
const BOTTOM: u32 = 24;
/// Body colour.
const BODY: RGBColor = RGBColor(31, 72, 140);

/// Steps between frames for an episode of `steps` steps (at most [`MAX_FRAMES`] frames).
#[must_use]
pub fn frame_stride(steps: usize) -> usize {
    steps.div_ceil(MAX_FRAMES).max(1)
}

/// How often `mppi run` captures plans and rollouts: every frame when the animation is
/// drawn, otherwise as often as the path plot needs.
#[must_use]
pub fn capture_interval(steps: usize, animation: bool) -> usize {
    if animation {
        frame_stride(steps)
    } else {
        crate::plots::rollout_interval(steps)
    }
}

/// One frame: the control step, the state drawn and the capture taken there (if any).
struct Frame<'a> {
    step: usize,
    /// Index of the state row in the episode's record.
    row: usize,
    capture: Option<&'a RolloutSnapshot>,
}

/// The kept row at or before `step` (the record's rows are ascending).
fn row_at(episode: &Episode, step: usize) -> usize {
    episode
        .kept_steps
        .partition_point(|&k| k <= step)
        .saturating_sub(1)
}

/// The frames of an episode: one per capture when there are captures (planar tasks), else
/// evenly spaced kept rows; always the final state last; at most [`MAX_FRAMES`] + 1.
fn frames(episode: &Episode, use_captures: bool) -> Vec<Frame<'_>> {
    let rows = episode.states.len();
    if rows == 0 {
        return vec![];
    }
    let mut out: Vec<Frame<'_>> = if use_captures && !episode.rollouts.is_empty() {
        let stride = episode.rollouts.len().div_ceil(MAX_FRAMES).max(1);
        episode
            .rollouts
            .iter()
            .step_by(stride)
            .map(|r| Frame {
                step: r.step,
                row: row_at(episode, r.step),
                capture: Some(r),
            })
            .collect()
    } else {
        let stride = (rows - 1).div_ceil(MAX_FRAMES).max(1);
        (0..rows - 1)
            .step_by(stride)
            .map(|row| Frame {
                step: episode.kept_steps.get(row).copied().unwrap_or(row),
                row,
                capture: None,
            })
            .collect()
    };
    out.push(Frame {
        step: episode.steps,
        row: rows - 1,
        capture: None,
    });
    out
}

/// Milliseconds per frame: the simulated time between frames (so the GIF plays in about
/// real time), between 40 and 250 ms.
fn frame_delay_ms(frames: &[Frame<'_>], dt: f64) -> u32 {
    let gap = match frames {
        [a, b, ..] => b.step.saturating_sub(a.step).max(1),
        _ => 1,
    };
    let ms = (gap as f64 * dt * 1e3).round();
    if ms.is_finite() {
        (ms as u32).clamp(40, 250)
    } else {
        100
    }
}

/// The outline of a capsule (a segment thickened by its radius, round ends), as a polygon.
fn capsule(s: &BodySegment) -> Vec<Point> {
    let ([ax, ay], [bx, by]) = (s.from, s.to);
    let (dx, dy) = (bx - ax, by - ay);
    let base = dy.atan2(dx);
    let r = s.radius;
    let half = 10;
    let mut pts = Vec::with_capacity(2 * half + 2);
    for (cx, cy, start) in [
        (bx, by, base - std::f64::consts::FRAC_PI_2),
        (ax, ay, base + std::f64::consts::FRAC_PI_2),
    ] {
        for k in 0..=half {
            let a = start + std::f64::consts::PI * k as f64 / half as f64;
            pts.push((cx + r * a.cos(), cy + r * a.sin()));
        }
    }
    pts
}

/// The bounding box of segments (with their radii) over every frame, padded by 8% and at
/// least 0.5 m wide.
fn body_extent<'a>(segments: impl Iterator<Item = &'a BodySegment>) -> (Range<f64>, Range<f64>) {
    let (mut x0, mut x1, mut y0, mut y1) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    for s in segments {
        for p in [s.from, s.to] {
            if p.iter().all(|v| v.is_finite()) {
                x0 = x0.min(p[0] - s.radius);
                x1 = x1.max(p[0] + s.radius);
                y0 = y0.min(p[1] - s.radius);
                y1 = y1.max(p[1] + s.radius);
            }
        }
    }
    if !(x0.is_finite() && y0.is_finite()) {
        return (-1.0..1.0, -1.0..1.0);
    }
    let pad = 0.08 * (x1 - x0).max(y1 - y0).max(0.5);
    let (cx, cy) = (0.5 * (x0 + x1), 0.5 * (y0 + y1));
    let hw = (0.5 * (x1 - x0) + pad).max(0.25);
    let hh = (0.5 * (y1 - y0) + pad).max(0.25);
    (cx - hw..cx + hw, cy - hh..cy + hh)
}

/// Widen one axis so that `xr × yr` has the aspect (height / width) of `plot` pixels.
fn equal_aspect(xr: Range<f64>, yr: Range<f64>, plot: (f64, f64)) -> (Range<f64>, Range<f64>) {
    let (w, h) = (xr.end - xr.start, yr.end - yr.start);
    let want = plot.1 / plot.0.max(1.0);
    if h / w < want {
        let extra = 0.5 * (want * w - h);
        (xr, yr.start - extra..yr.end + extra)
    } else {
        let extra = 0.5 * (h / want - w);
        (xr.start - extra..xr.end + extra, yr)
    }
}

/// Plot area of the chart inside a GIF of `size`: less the label areas and margins.
const LABEL_AREA: (u32, u32) = (34, 48);

fn plot_px((w, h): (u32, u32)) -> (f64, f64) {
    (
        f64::from(w.saturating_sub(LABEL_AREA.1 + 8 + 16)),
        f64::from(h.saturating_sub(TOP + BOTTOM + LABEL_AREA.0 + 16)),
    )
}

/// The system posed at the edges of its success bands on angles (or at its target angles):
/// the band's `low` and `high` put into `x` for every such band at once.
fn ghost_states(task: &dyn Task, x: &[f64]) -> Vec<Vec<f64>> {
    let units = task.state_units();
    let bands: Vec<_> = task
        .reference_bands()
        .into_iter()
        .filter(|b| b.state < x.len() && units.get(b.state) == Some(&"rad"))
        .collect();
    if bands.is_empty() {
        return vec![];
    }
    let pose = |high: bool| {
        let mut g = x.to_vec();
        for b in &bands {
            g[b.state] = if high { b.high } else { b.low };
        }
        g
    };
    if bands.iter().all(|b| b.is_target()) {
        vec![pose(false)]
    } else {
        vec![pose(false), pose(true)]
    }
}

/// What the animation draws, fixed over its frames.
struct View {
    size: (u32, u32),
    x_range: Range<f64>,
    y_range: Range<f64>,
    labels: (String, String),
    scene: Option<Scene>,
    /// Legend text of the ghost (the bands on angles).
    ghost_label: Option<String>,
}

fn view(task: &dyn Task, episode: &Episode, frames: &[Frame<'_>]) -> View {
    let band_labels: Vec<&str> = task
        .reference_bands()
        .iter()
        .filter(|b| task.state_units().get(b.state) == Some(&"rad"))
        .map(|b| b.label)
        .collect();
    let ghost_label = (!band_labels.is_empty()).then(|| band_labels.join("; "));
    if let Some(scene) = task.scene() {
        let path = episode.states.iter().map(|x| plane_point(&scene, x));
        let bodies: Vec<BodySegment> = frames
            .iter()
            .flat_map(|f| task.body_segments(&episode.states[f.row]))
            .collect();
        let body_points = bodies
            .iter()
            .flat_map(|s| [(s.from[0], s.from[1]), (s.to[0], s.to[1])]);
        let (xr, yr) = scene_extent(&scene, path.chain(body_points), (0.5, 1.25));
        let aspect = (yr.end - yr.start) / (xr.end - xr.start);
        let plot_w = plot_px((WIDTH, 0)).0;
        let height = (plot_w * aspect).round() as u32 + TOP + BOTTOM + LABEL_AREA.0 + 16;
        let size = (WIDTH, height);
        let (xr, yr) = equal_aspect(xr, yr, plot_px(size));
        let (ix, iy) = scene.position;
        View {
            size,
            x_range: xr,
            y_range: yr,
            labels: (
                state_axis_label(task, ix, "x"),
                state_axis_label(task, iy, "y"),
            ),
            scene: Some(scene),
            ghost_label: None,
        }
    } else {
        let segments: Vec<BodySegment> = frames
            .iter()
            .flat_map(|f| task.body_segments(&episode.states[f.row]))
            .collect();
        let (xr, yr) = body_extent(segments.iter());
        let size = (WIDTH, WIDTH);
        let (xr, yr) = equal_aspect(xr, yr, plot_px(size));
        View {
            size,
            x_range: xr,
            y_range: yr,
            labels: ("x [m]".into(), "y [m]".into()),
            scene: None,
            ghost_label,
        }
    }
}

/// Draw the capsules of `segments` filled with `color`.
fn draw_bodies<DB: DrawingBackend>(
    chart: &mut ChartContext<'_, DB, SceneCoord>,
    segments: &[BodySegment],
    color: RGBColor,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    for s in segments {
        if !(s.from.iter().chain(&s.to).all(|v| v.is_finite()) && s.radius.is_finite()) {
            continue;
        }
        if s.radius > 0.0 {
            chart.draw_series(std::iter::once(Polygon::new(capsule(s), color.filled())))?;
        } else {
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(s.from[0], s.from[1]), (s.to[0], s.to[1])],
                style(color, 2),
            )))?;
        }
    }
    Ok(())
}

/// What an inline legend entry looks like.
enum Key {
    Line(RGBColor, u32),
    Dashed(RGBColor),
    Fill(RGBAColor),
}

/// Draw the legend in one line across `area`.
fn draw_keys<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    keys: &[(Key, String)],
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let font = (FAMILY, 12).into_font().color(&TEXT);
    let y = i32::try_from(BOTTOM / 2).unwrap_or(12);
    let mut x = 10;
    for (key, label) in keys {
        match key {
            Key::Line(c, w) => {
                area.draw(&PathElement::new(vec![(x, y), (x + 20, y)], style(*c, *w)))?
            }
            Key::Dashed(c) => {
                area.draw(&DashedPathElement::new(
                    vec![(x, y), (x + 20, y)],
                    5,
                    3,
                    style(*c, 2),
                ))?;
            }
            Key::Fill(c) => {
                area.draw(&Rectangle::new([(x, y - 5), (x + 20, y + 5)], c.filled()))?
            }
        }
        area.draw(&Text::new(
            label.clone(),
            (x + 25, y),
            font.clone().pos(Pos::new(HPos::Left, VPos::Center)),
        ))?;
        let (w, _) = area.estimate_text_size(label, &font)?;
        x += 25 + i32::try_from(w).unwrap_or(60) + 14;
    }
    Ok(())
}

/// Draw frame `k` of the animation on `root`.
fn draw_frame<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    task: &dyn Task,
    episode: &Episode,
    view: &View,
    frames: &[Frame<'_>],
    k: usize,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let frame = &frames[k];
    let x = &episode.states[frame.row];
    let (top, rest) = root.split_vertically(TOP);
    let height = rest.dim_in_pixel().1;
    let (area, bottom) = rest.split_vertically(height.saturating_sub(BOTTOM));
    let t = frame.step as f64 * episode.dt;
    top.draw(&Text::new(
        format!("{}   t = {t:.2} s", task.name()),
        (10, i32::try_from(TOP / 2).unwrap_or(13)),
        (FAMILY, 16)
            .into_font()
            .color(&TEXT)
            .pos(Pos::new(HPos::Left, VPos::Center)),
    ))?;
    let (xr, yr) = (&view.x_range, &view.y_range);
    let mut chart = scene_chart(
        &area,
        (xr, yr),
        (&view.labels.0, &view.labels.1),
        (12, LABEL_AREA),
    )?;
    let mut keys = vec![];
    let bodies = task.body_segments(x);
    if let Some(scene) = &view.scene {
        draw_scene(&mut chart, scene, (xr, yr))?;
        if scene.goal.is_some() {
            keys.push((Key::Fill(GOAL.mix(0.3)), "goal".to_string()));
        }
        if let Some(capture) = frame.capture {
            let (_, plan, samples) = capture_points(scene, capture);
            let sample_style = ShapeStyle {
                color: ROLLOUT.mix(0.7),
                filled: false,
                stroke_width: 1,
            };
            for sample in &samples {
                for seg in clip_polyline(sample, xr, yr) {
                    chart.draw_series(LineSeries::new(seg, sample_style))?;
                }
            }
            for seg in clip_polyline(&plan, xr, yr) {
                chart.draw_series(LineSeries::new(seg, style(PLAN, 2)))?;
            }
        }
        if frames.iter().any(|f| f.capture.is_some()) {
            keys.push((Key::Line(ROLLOUT, 1), "best rollouts".into()));
            keys.push((Key::Line(PLAN, 2), "plan".into()));
        }
        let path: Vec<Point> = episode.states[..=frame.row]
            .iter()
            .map(|s| plane_point(scene, s))
            .collect();
        for seg in clip_polyline(&path, xr, yr) {
            chart.draw_series(LineSeries::new(seg, style(PATH, 2)))?;
        }
        keys.push((Key::Line(PATH, 2), "path".into()));
        let here = plane_point(scene, x);
        if bodies.is_empty() && xr.contains(&here.0) && yr.contains(&here.1) {
            chart.draw_series(std::iter::once(Circle::new(here, 5, BODY.filled())))?;
        }
    } else {
        for ghost in ghost_states(task, x) {
            for s in task.body_segments(&ghost) {
                chart.draw_series(std::iter::once(DashedPathElement::new(
                    vec![(s.from[0], s.from[1]), (s.to[0], s.to[1])],
                    6,
                    4,
                    style(BAND, 2),
                )))?;
            }
        }
        if let Some(label) = &view.ghost_label {
            keys.push((Key::Dashed(BAND), label.clone()));
        }
        // the trail of the last segment's tip
        let trail: Vec<Point> = frames[..=k]
            .iter()
            .filter_map(|f| task.body_segments(&episode.states[f.row]).last().copied())
            .map(|s| (s.to[0], s.to[1]))
            .collect();
        for seg in clip_polyline(&trail, xr, yr) {
            chart.draw_series(LineSeries::new(seg, PATH.mix(0.5)))?;
        }
        keys.push((Key::Line(PATH, 1), "tip path".into()));
    }
    draw_bodies(&mut chart, &bodies, BODY)?;
    draw_keys(&bottom, &keys)
}

/// Write `dir/episode.gif` for `task`'s `episode`; `None` (nothing written) for a task that
/// neither draws itself nor has a scene, or an empty episode.
pub fn write_animation(
    dir: &Path,
    task: &dyn Task,
    episode: &Episode,
) -> anyhow::Result<Option<PathBuf>> {
    let Some(first) = episode.states.first() else {
        return Ok(None);
    };
    let planar = task.scene().is_some();
    if !planar && task.body_segments(first).is_empty() {
        return Ok(None);
    }
    let frames = frames(episode, planar);
    let view = view(task, episode, &frames);
    let path = dir.join("episode.gif");
    let delay = frame_delay_ms(&frames, episode.dt);
    let (w, h) = view.size;
    let mut pixels = vec![0u8; 3 * w as usize * h as usize];
    let render = |k: usize, pixels: &mut Vec<u8>| -> anyhow::Result<()> {
        let root = BitMapBackend::with_buffer(pixels, view.size).into_drawing_area();
        draw_frame(&root, task, episode, &view, &frames, k)?;
        root.present()?;
        Ok(())
    };
    let mut draw = || -> anyhow::Result<()> {
        // the palette: the most frequent colours of the first, middle and last frames
        let mut samples = vec![];
        for k in [0, frames.len() / 2, frames.len() - 1] {
            render(k, &mut pixels)?;
            samples.push(pixels.clone());
        }
        let refs: Vec<&[u8]> = samples.iter().map(Vec::as_slice).collect();
        let mut palette = gif::Palette::from_frames(&refs);
        drop(samples);
        let file = std::io::BufWriter::new(std::fs::File::create(&path)?);
        let size = (u16::try_from(w)?, u16::try_from(h)?);
        let mut gif = gif::GifWriter::new(file, size, delay, &palette)?;
        for k in 0..frames.len() {
            render(k, &mut pixels)?;
            gif.frame(&palette.indices(&pixels))?;
        }
        gif.finish()?;
        Ok(())
    };
    draw().with_context(|| format!("cannot draw `{}`", path.display()))?;
    Ok(Some(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mppi_tasks::EpisodeOptions;

    /// Run a short episode of `name` with the captures `mppi run` takes for the animation.
    fn run(name: &str, steps: usize) -> (Box<dyn Task>, Episode) {
        let task = mppi_tasks::task_by_name(name).expect("task");
        let mut config = task.default_config();
        config.samples = 64;
        config.horizon = config.horizon.min(20);
        let options = EpisodeOptions {
            steps,
            rollout_every: if task.scene().is_some() {
                capture_interval(steps, true)
            } else {
                0
            },
            rollouts_per_capture: 10,
            ..Default::default()
        };
        let episode =
            mppi_tasks::run_episode(task.as_ref(), &config, &options, |_| {}).expect("runs");
        (task, episode)
    }

    fn gif_of(name: &str, steps: usize) -> Vec<u8> {
        crate::plots::register_font().expect("font");
        let (task, episode) = run(name, steps);
        let dir = std::env::temp_dir().join(format!("mppi-animate-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = write_animation(&dir, task.as_ref(), &episode)
            .expect("draws")
            .expect("a GIF");
        let bytes = std::fs::read(&path).expect("written");
        let _ = std::fs::remove_dir_all(&dir);
        bytes
    }

    #[test]
    fn pendulum_gif_is_written() {
        let bytes = gif_of("pendulum", 40);
        assert!(bytes.len() > 1000, "{} bytes", bytes.len());
        assert_eq!(&bytes[..6], b"GIF89a");
    }

    /// The frames of a GIF written by [`gif::GifWriter`], decoded: `(width, height, frames of
    /// palette indices)`.
    fn decode(bytes: &[u8]) -> (usize, usize, Vec<Vec<u8>>) {
        assert_eq!(&bytes[..6], b"GIF89a");
        let w = usize::from(u16::from_le_bytes([bytes[6], bytes[7]]));
        let h = usize::from(u16::from_le_bytes([bytes[8], bytes[9]]));
        assert_eq!(bytes[10], 0xF7, "a global palette of 256 colours");
        let mut pos = 13 + 3 * 256;
        let mut frames = vec![];
        loop {
            match bytes[pos] {
                0x3B => break,
                0x21 => {
                    // extension: label, then sub-blocks
                    pos += 2;
                    while bytes[pos] != 0 {
                        pos += 1 + usize::from(bytes[pos]);
                    }
                    pos += 1;
                }
                0x2C => {
                    let field = |i: usize| {
                        usize::from(u16::from_le_bytes([
                            bytes[pos + 1 + 2 * i],
                            bytes[pos + 2 + 2 * i],
                        ]))
                    };
                    let (left, top, rw, rh) = (field(0), field(1), field(2), field(3));
                    assert!(left + rw <= w && top + rh <= h);
                    assert_eq!(bytes[pos + 10], 8, "LZW minimum code size");
                    pos += 11;
                    let mut data = vec![];
                    while bytes[pos] != 0 {
                        let n = usize::from(bytes[pos]);
                        data.extend_from_slice(&bytes[pos + 1..pos + 1 + n]);
                        pos += 1 + n;
                    }
                    pos += 1;
                    let rect = gif::tests::unlzw(&data);
                    assert_eq!(rect.len(), rw * rh);
                    // drawn over the previous frame
                    let mut canvas = frames.last().cloned().unwrap_or_else(|| vec![0u8; w * h]);
                    for (r, row) in rect.chunks_exact(rw.max(1)).enumerate() {
                        let at = (top + r) * w + left;
                        canvas[at..at + rw].copy_from_slice(row);
                    }
                    frames.push(canvas);
                }
                b => panic!("unexpected block {b:#x} at {pos}"),
            }
        }
        (w, h, frames)
    }

    #[test]
    fn gif_writer_round_trips_frames() {
        let (w, h) = (37usize, 23usize);
        let frame = |k: usize| -> Vec<u8> {
            (0..w * h)
                .flat_map(|i| {
                    let (x, y) = (i % w, i / w);
                    let on = x / 5 == k % 7 || (y == 3 && x > k);
                    if on { [200, 30, 30] } else { [255, 255, 255] }
                })
                .collect()
        };
        let frames: Vec<Vec<u8>> = (0..6).map(frame).collect();
        let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
        let mut palette = gif::Palette::from_frames(&refs);
        let mut bytes = vec![];
        let mut writer =
            gif::GifWriter::new(&mut bytes, (w as u16, h as u16), 50, &palette).expect("header");
        let mut expected = vec![];
        for f in &frames {
            let indices = palette.indices(f);
            writer.frame(&indices).expect("frame");
            expected.push(indices);
        }
        // an unchanged frame is one pixel
        writer.frame(&expected[5].clone()).expect("frame");
        expected.push(expected[5].clone());
        writer.finish().expect("trailer");
        let (dw, dh, decoded) = decode(&bytes);
        assert_eq!((dw, dh), (w, h));
        assert_eq!(decoded, expected);
    }

    #[test]
    fn gif_frames_decode_to_whole_images() {
        let bytes = gif_of("cartpole", 12);
        let (w, h, frames) = decode(&bytes);
        assert_eq!((w, h), (WIDTH as usize, WIDTH as usize));
        assert_eq!(frames.len(), 13, "one per step and the final state");
        for f in &frames {
            assert_eq!(f.len(), w * h);
        }
        // the frames differ (the system moves)
        assert_ne!(frames[0], frames[12]);
    }

    #[test]
    fn planar_gifs_are_written() {
        for name in ["double_integrator", "quadrotor"] {
            let bytes = gif_of(name, 30);
            assert!(bytes.len() > 1000, "{name}: {} bytes", bytes.len());
            assert_eq!(&bytes[..6], b"GIF89a", "{name}");
        }
    }

    /// Frames drawn as PNG look like the GIF's (set `MPPI_KEEP_FRAMES=1` to keep them in the
    /// temporary directory and look at them).
    #[test]
    fn frames_render_as_png() {
        crate::plots::register_font().expect("font");
        let dir = std::env::temp_dir().join(format!("mppi-frames-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        for (name, steps) in [
            ("pendulum", 60),
            ("cartpole", 60),
            ("acrobot", 60),
            ("quadrotor", 40),
            ("racing", 60),
        ] {
            let (task, episode) = run(name, steps);
            let planar = task.scene().is_some();
            let frames = frames(&episode, planar);
            let view = view(task.as_ref(), &episode, &frames);
            let k = frames.len() / 2;
            let path = dir.join(format!("{name}.png"));
            {
                let root = BitMapBackend::new(&path, view.size).into_drawing_area();
                draw_frame(&root, task.as_ref(), &episode, &view, &frames, k).expect("draws");
                root.present().expect("written");
            }
            assert!(std::fs::metadata(&path).expect("written").len() > 1000);
        }
        if std::env::var_os("MPPI_KEEP_FRAMES").is_none() {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }

    #[test]
    fn a_task_that_draws_nothing_gets_no_gif() {
        // racing has a scene; a task without scene or bodies gets none (none built in, so
        // check the pieces: frames of an empty episode)
        let (_, mut episode) = run("pendulum", 3);
        episode.states.clear();
        let task = mppi_tasks::task_by_name("pendulum").expect("pendulum");
        let dir = std::env::temp_dir();
        assert!(
            write_animation(&dir, task.as_ref(), &episode)
                .expect("nothing to do")
                .is_none()
        );
    }

    #[test]
    fn frames_are_bounded_and_end_at_the_final_state() {
        let (_, episode) = run("pendulum", 400);
        let f = frames(&episode, false);
        assert!(f.len() <= MAX_FRAMES + 1, "{}", f.len());
        assert!(f.len() > MAX_FRAMES / 2, "{}", f.len());
        assert_eq!(f.last().map(|f| f.step), Some(400));
        assert!(f.windows(2).all(|w| w[0].step < w[1].step));
        assert_eq!(frame_stride(400), 3);
        assert_eq!(frame_stride(10), 1);
        let (_, episode) = run("double_integrator", 400);
        assert!(
            episode.rollouts.len() <= MAX_FRAMES,
            "{}",
            episode.rollouts.len()
        );
        let f = frames(&episode, true);
        assert!(f.len() <= MAX_FRAMES + 1);
        assert!(f[..f.len() - 1].iter().all(|f| f.capture.is_some()));
        // the best rollouts, at most 10 per capture
        assert!(episode.rollouts.iter().all(|r| r.samples.len() == 10));
    }

    #[test]
    fn capsules_surround_their_segment() {
        let s = BodySegment::new([0.0, 0.0], [1.0, 0.0], 0.1);
        let pts = capsule(&s);
        for (x, y) in &pts {
            let d = if *x < 0.0 {
                x.hypot(*y)
            } else if *x > 1.0 {
                (x - 1.0).hypot(*y)
            } else {
                y.abs()
            };
            assert!((d - 0.1).abs() < 1e-9, "({x}, {y})");
        }
        let (xr, yr) = body_extent([s].iter());
        assert!(xr.start < -0.1 && xr.end > 1.1 && yr.start < -0.1 && yr.end > 0.1);
        let (xr, yr) = equal_aspect(0.0..2.0, 0.0..1.0, (400.0, 400.0));
        assert_eq!((xr, yr), (0.0..2.0, -0.5..1.5));
    }

    #[test]
    fn ghosts_pose_the_pendulum_at_its_band_edges() {
        let task = mppi_tasks::task_by_name("pendulum").expect("pendulum");
        let ghosts = ghost_states(task.as_ref(), &[3.0, 1.0]);
        assert_eq!(ghosts, vec![vec![-0.1, 1.0], vec![0.1, 1.0]]);
        let acrobot = mppi_tasks::task_by_name("acrobot").expect("acrobot");
        let ghosts = ghost_states(acrobot.as_ref(), &[0.3, 0.2, 0.0, 0.0]);
        assert_eq!(ghosts, vec![vec![std::f64::consts::PI, 0.0, 0.0, 0.0]]);
    }
}
