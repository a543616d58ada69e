//! `mppi run <task> --realtime`: the real-time plant loop ([`mppi_tasks::realtime`]) and its
//! outputs: the timing lines printed after the summary and, with `--out DIR`, the usual
//! trajectory files and plots (from an [`mppi_tasks::Episode`] built from the real-time
//! record) plus `timing.csv`, `timing.json` and the timing plot `timing.png` / `.svg`.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use mppi::{MppiConfig, MppiError};
use mppi_tasks::{
    Episode, RealtimeError, RealtimeOptions, RealtimeRun, StepRecord, Task, TaskController,
    TimingStats, run_realtime_with,
};
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

use crate::cli::RunArgs;
use crate::error::CliError;
use crate::output::{CsvWriter, RunSummary, write_data_files};
use crate::plots::write_plots;

/// Font family of the plot (the embedded font `register_font` loads).
const FAMILY: &str = "sans-serif";

/// Milliseconds from a flag to a duration (the flags are checked finite and in range).
fn duration_ms(ms: f64) -> Result<Duration, CliError> {
    Duration::try_from_secs_f64(ms / 1e3)
        .map_err(|_| CliError::usage(format!("{ms} ms is not a representable duration")))
}

/// The loop's options from the command line: `--steps` ticks, `--rate`, `--deadline` (else
/// the config's `deadline_ms`), `--latency`.
pub(crate) fn options(
    args: &RunArgs,
    config: &MppiConfig,
    ticks: usize,
) -> Result<RealtimeOptions, CliError> {
    let deadline = match (args.deadline, config.deadline_ms) {
        (Some(ms), _) | (None, Some(ms)) => Some(duration_ms(ms)?),
        (None, None) => None,
    };
    Ok(RealtimeOptions {
        ticks,
        rate_hz: args.rate,
        deadline,
        latency: args.latency.map(duration_ms).transpose()?,
        ..RealtimeOptions::default()
    })
}

fn realtime_error(e: RealtimeError) -> CliError {
    match e {
        RealtimeError::Options(m) => CliError::usage(format!("--realtime: {m}")),
        RealtimeError::Mppi(e @ MppiError::InvalidConfig { .. }) => CliError::usage(e.to_string()),
        other => CliError::runtime(format!("the real-time run failed: {other}")),
    }
}

/// `mppi run <task> --realtime`: run, print the summary and the timing, write the files.
pub(crate) fn run(
    task: &dyn Task,
    ctrl: TaskController,
    config: &MppiConfig,
    args: &RunArgs,
    ticks: usize,
    out: Option<&Path>,
) -> Result<(), CliError> {
    let options = options(args, config, ticks)?;
    // bad options are usage errors before anything runs
    options
        .resolve(task.dt(), ctrl.planner().horizon())
        .map_err(realtime_error)?;
    let started = Instant::now();
    let run = run_realtime_with(task, ctrl, &options).map_err(realtime_error)?;
    let wall = started.elapsed().as_secs_f64();
    let episode = run.to_episode(task);
    let outcome = task.success(&episode);
    let mut summary = RunSummary::new(task, config, &episode, &outcome, wall);
    // planning time per plan made while the clock ran, not per tick
    let times: Vec<f64> = run
        .plans
        .iter()
        .skip(1)
        .map(|p| p.planning_time_ms)
        .collect();
    summary.planning_time = crate::output::TimingStats::from_samples(&times);
    summary.out_of_time_steps = run.stats.out_of_time_steps;
    if let Some(dir) = out {
        super::create_out_dir(dir)?;
        write_trajectory(dir, task, &episode).map_err(|e| CliError::from_anyhow(&e))?;
        write_data_files(dir, &episode, &summary).map_err(|e| CliError::from_anyhow(&e))?;
        write_plots(dir, task, config, &episode).map_err(|e| CliError::from_anyhow(&e))?;
        if !args.no_animation {
            // the bodies (or the path and plans) as they moved; no sampled rollouts in real time
            crate::animate::write_animation(dir, task, &episode)
                .map_err(|e| CliError::from_anyhow(&e))?;
        }
        write_timing_files(dir, task, &run).map_err(|e| CliError::from_anyhow(&e))?;
    }
    let mut text = summary.render(out);
    text.push_str(&timing_lines(&run.timing, run.dt));
    super::print_stdout(&text)?;
    if args.require_success && !outcome.success {
        return Err(CliError::runtime(format!(
            "task `{}` did not meet its success criterion (--require-success): {}",
            task.name(),
            outcome.message
        )));
    }
    Ok(())
}

/// The timing lines printed after the summary.
#[must_use]
pub(crate) fn timing_lines(t: &TimingStats, dt: f64) -> String {
    let pct = |f: f64| 100.0 * f;
    let rows = [
        (
            "real time",
            format!(
                "{:.2} Hz achieved of {:.2} Hz asked over {} ticks (one tick: {:.3} ms wall, \
                 dt {dt} s simulated; real-time factor {:.2})",
                t.achieved_rate_hz, t.target_rate_hz, t.ticks, t.period_ms, t.real_time_factor
            ),
        ),
        (
            "plan time",
            format!(
                "p50 {:.3} ms, p95 {:.3} ms, max {:.3} ms over {} plans (deadline {:.3} ms, \
                 period {:.3} ms); {} over the deadline ({:.1}%)",
                t.planning_p50_ms,
                t.planning_p95_ms,
                t.planning_max_ms,
                t.plans,
                t.deadline_ms,
                t.period_ms,
                t.overruns,
                pct(t.overrun_fraction)
            ),
        ),
        (
            "missed",
            format!(
                "{} of {} ticks ({:.1}%) ran the shifted previous plan; oldest entry applied: \
                 {} ticks",
                t.missed,
                t.ticks,
                pct(t.missed_fraction),
                t.max_plan_age
            ),
        ),
        (
            "jitter",
            format!(
                "tick time - schedule: mean |.| {:.3} ms, p95 {:.3} ms, max {:.3} ms",
                t.jitter_mean_abs_ms, t.jitter_p95_ms, t.jitter_max_ms
            ),
        ),
        (
            "latency",
            format!(
                "{:.3} ms compensated as {} tick{}",
                t.latency_ms,
                t.latency_ticks,
                if t.latency_ticks == 1 { "" } else { "s" }
            ),
        ),
    ];
    let mut s = String::new();
    for (k, v) in rows {
        let _ = writeln!(s, "{k:<13}  {v}");
    }
    s
}

fn create(dir: &Path, name: &str) -> anyhow::Result<BufWriter<File>> {
    let path = dir.join(name);
    File::create(&path)
        .map(BufWriter::new)
        .with_context(|| format!("cannot create `{}`", path.display()))
}

/// `trajectory.csv` with the lock-step writer (every tick a row). There is no
/// `diagnostics.csv`: plans do not map one-to-one to ticks; `timing.csv` and `timing.json`
/// describe them.
fn write_trajectory(dir: &Path, task: &dyn Task, episode: &Episode) -> anyhow::Result<()> {
    let (n, m) = (
        episode.states.first().map_or(0, Vec::len),
        episode.controls.first().map_or(0, Vec::len),
    );
    let trajectory: Box<dyn Write> = Box::new(create(dir, "trajectory.csv")?);
    let mut csv = CsvWriter::new(trajectory, Box::new(std::io::sink()), task, n, m)
        .context("cannot write trajectory.csv")?;
    for (k, x) in episode.states.iter().take(episode.steps).enumerate() {
        csv.step(&StepRecord {
            step: k,
            total: episode.steps,
            dt: episode.dt,
            state: x,
            control: &episode.controls[k],
            stage_cost: episode.stage_costs[k],
            report: &episode.reports[k],
        })
        .context("cannot write trajectory.csv")?;
    }
    let last = episode.final_state().unwrap_or(&[]);
    csv.finish(episode.steps, episode.dt, last)
        .context("cannot write trajectory.csv")
}

/// Header of `timing.csv`.
pub(crate) const TIMING_HEADER: &str = "tick,scheduled_time [s],actual_time [s],jitter [ms],\
plan,plan_age [ticks],miss,planning_time [ms],deadline [ms],period [ms]";

/// `timing.csv` (one row per tick), `timing.json` (statistics, settings, every plan) and the
/// timing plot.
fn write_timing_files(
    dir: &Path,
    task: &dyn Task,
    run: &RealtimeRun,
) -> anyhow::Result<Vec<PathBuf>> {
    let mut csv = create(dir, "timing.csv")?;
    let t = &run.timing;
    let mut text = format!("{TIMING_HEADER}\n");
    for (j, tick) in run.ticks.iter().enumerate() {
        let _ = writeln!(
            text,
            "{j},{},{},{},{},{},{},{},{},{}",
            tick.scheduled_s,
            tick.actual_s,
            tick.jitter_ms(),
            tick.plan,
            tick.age,
            u8::from(tick.miss),
            run.plans[tick.plan].planning_time_ms,
            t.deadline_ms,
            t.period_ms
        );
    }
    csv.write_all(text.as_bytes())
        .and_then(|()| csv.flush())
        .context("cannot write timing.csv")?;
    let json = serde_json::json!({
        "timing": run.timing,
        "settings": run.settings,
        "plans": run.plans,
    });
    let path = dir.join("timing.json");
    let mut s = serde_json::to_string_pretty(&json).context("cannot serialize the timing")?;
    s.push('\n');
    std::fs::write(&path, s).with_context(|| format!("cannot write `{}`", path.display()))?;
    let mut written = vec![dir.join("timing.csv"), path];
    written.extend(write_timing_plot(dir, task, run)?);
    Ok(written)
}

/// `timing.png` and `timing.svg`.
fn write_timing_plot(
    dir: &Path,
    task: &dyn Task,
    run: &RealtimeRun,
) -> anyhow::Result<Vec<PathBuf>> {
    let size = (1100, 720);
    let png = dir.join("timing.png");
    let svg = dir.join("timing.svg");
    {
        let root = BitMapBackend::new(&png, size).into_drawing_area();
        draw_timing(&root, task, run)
            .and_then(|()| root.present().map_err(anyhow::Error::from))
            .with_context(|| format!("cannot draw `{}`", png.display()))?;
    }
    {
        let root = SVGBackend::new(&svg, size).into_drawing_area();
        draw_timing(&root, task, run)
            .and_then(|()| root.present().map_err(anyhow::Error::from))
            .with_context(|| format!("cannot draw `{}`", svg.display()))?;
    }
    Ok(vec![png, svg])
}

const BLUE: RGBColor = RGBColor(31, 119, 180);
const ORANGE: RGBColor = RGBColor(255, 127, 14);
const RED: RGBColor = RGBColor(214, 39, 40);
const GREY: RGBColor = RGBColor(110, 110, 110);
const TEXT: RGBColor = RGBColor(40, 40, 40);
const GRID_LIGHT: RGBColor = RGBColor(242, 242, 242);
const GRID_BOLD: RGBColor = RGBColor(215, 215, 215);

/// `[0, hi]` padded above, never empty.
fn up_to(hi: f64) -> std::ops::Range<f64> {
    let hi = if hi.is_finite() && hi > 0.0 { hi } else { 1.0 };
    0.0..hi * 1.25
}

/// Two panels over wall-clock time: the planning time of the plan in use at every tick with
/// the deadline and the period (missed ticks marked), and the tick jitter.
fn draw_timing<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    task: &dyn Task,
    run: &RealtimeRun,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let t = &run.timing;
    root.fill(&WHITE)?;
    let title = format!(
        "{}: real-time loop at {:.1} Hz (achieved {:.1} Hz), {} of {} ticks missed",
        task.name(),
        t.target_rate_hz,
        t.achieved_rate_hz,
        t.missed,
        t.ticks
    );
    let body = root.titled(&title, (FAMILY, 22).into_font().color(&TEXT))?;
    let (top, bottom) = body.split_vertically(body.dim_in_pixel().1 * 58 / 100);
    let last = run
        .ticks
        .last()
        .map_or(1.0, |k| k.actual_s.max(k.scheduled_s));
    let x_range = 0.0..(last * 1.02).max(1e-3);
    let x_label = "wall-clock time since the first tick [s]";

    // planning time of the plan in use, per tick
    let planning: Vec<(f64, f64)> = run
        .ticks
        .iter()
        .map(|k| (k.scheduled_s, run.plans[k.plan].planning_time_ms))
        .collect();
    let misses: Vec<(f64, f64)> = run
        .ticks
        .iter()
        .zip(&planning)
        .filter(|(k, _)| k.miss)
        .map(|(_, p)| *p)
        .collect();
    let hi = planning
        .iter()
        .map(|p| p.1)
        .fold(t.deadline_ms.max(t.period_ms), f64::max);
    let mut chart = ChartBuilder::on(&top)
        .margin(10)
        .margin_right(24)
        .x_label_area_size(44)
        .y_label_area_size(80)
        .build_cartesian_2d(x_range.clone(), up_to(hi))?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc("planning time [ms]")
        .label_style((FAMILY, 14).into_font().color(&TEXT))
        .axis_desc_style((FAMILY, 16).into_font().color(&TEXT))
        .light_line_style(GRID_LIGHT)
        .bold_line_style(GRID_BOLD)
        .draw()?;
    let (x0, x1) = (x_range.start, x_range.end);
    chart
        .draw_series(LineSeries::new(planning.clone(), BLUE.stroke_width(2)))?
        .label("planning time of the plan in use")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], BLUE.stroke_width(2)));
    chart
        .draw_series(DashedLineSeries::new(
            vec![(x0, t.deadline_ms), (x1, t.deadline_ms)],
            10,
            6,
            ORANGE.stroke_width(2),
        ))?
        .label(format!("deadline {:.3} ms", t.deadline_ms))
        .legend(|(x, y)| {
            DashedPathElement::new(vec![(x, y), (x + 24, y)], 6, 4, ORANGE.stroke_width(2))
        });
    chart
        .draw_series(DashedLineSeries::new(
            vec![(x0, t.period_ms), (x1, t.period_ms)],
            4,
            4,
            GREY.stroke_width(2),
        ))?
        .label(format!("period {:.3} ms", t.period_ms))
        .legend(|(x, y)| {
            DashedPathElement::new(vec![(x, y), (x + 24, y)], 6, 4, GREY.stroke_width(2))
        });
    chart
        .draw_series(
            misses
                .iter()
                .map(|p| Cross::new(*p, 5, RED.stroke_width(2))),
        )?
        .label(format!("missed tick ({})", t.missed))
        .legend(|(x, y)| Cross::new((x + 12, y), 5, RED.stroke_width(2)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(GRID_BOLD)
        .label_font((FAMILY, 14).into_font().color(&TEXT))
        .draw()?;

    // jitter
    let jitter: Vec<(f64, f64)> = run
        .ticks
        .iter()
        .map(|k| (k.scheduled_s, k.jitter_ms()))
        .collect();
    let lo = jitter.iter().map(|p| p.1).fold(0.0, f64::min);
    let hi = jitter.iter().map(|p| p.1).fold(t.jitter_p95_ms, f64::max);
    let y = up_to(hi);
    let mut chart = ChartBuilder::on(&bottom)
        .margin(10)
        .margin_right(24)
        .x_label_area_size(44)
        .y_label_area_size(80)
        .build_cartesian_2d(x_range, lo.min(0.0) * 1.25..y.end)?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc("tick jitter [ms]")
        .label_style((FAMILY, 14).into_font().color(&TEXT))
        .axis_desc_style((FAMILY, 16).into_font().color(&TEXT))
        .light_line_style(GRID_LIGHT)
        .bold_line_style(GRID_BOLD)
        .draw()?;
    chart
        .draw_series(LineSeries::new(jitter, BLUE.stroke_width(1)))?
        .label("actual - scheduled tick time")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], BLUE.stroke_width(2)));
    chart
        .draw_series(DashedLineSeries::new(
            vec![(x0, t.jitter_p95_ms), (x1, t.jitter_p95_ms)],
            10,
            6,
            ORANGE.stroke_width(2),
        ))?
        .label(format!("p95 {:.3} ms", t.jitter_p95_ms))
        .legend(|(x, y)| {
            DashedPathElement::new(vec![(x, y), (x + 24, y)], 6, 4, ORANGE.stroke_width(2))
        });
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(GRID_BOLD)
        .label_font((FAMILY, 14).into_font().color(&TEXT))
        .draw()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timing_lines_name_every_statistic() {
        let t = TimingStats {
            ticks: 200,
            target_rate_hz: 100.0,
            achieved_rate_hz: 99.9,
            period_ms: 10.0,
            deadline_ms: 8.0,
            latency_ticks: 1,
            latency_ms: 10.0,
            missed: 3,
            missed_fraction: 0.015,
            ..TimingStats::default()
        };
        let s = timing_lines(&t, 0.05);
        for needle in [
            "99.90 Hz achieved of 100.00 Hz asked",
            "p50",
            "p95",
            "max",
            "3 of 200 ticks (1.5%)",
            "jitter",
            "1 tick\n",
        ] {
            assert!(s.contains(needle), "`{needle}` missing from:\n{s}");
        }
        assert_eq!(TIMING_HEADER.split(',').count(), 10);
        assert!(TIMING_HEADER.contains("planning_time [ms]"));
    }
}
