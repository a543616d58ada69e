//! The figures of a run: states, controls, cost, diagnostics and (planar tasks) the path.

use std::ops::Range;
use std::path::{Path, PathBuf};

use mppi::{DiagnosticsLevel, MppiConfig, TemperatureConfig};
use mppi_tasks::{Episode, Task};

use super::chart::{Band, Panel, PanelFigure, Series, uninformative};
use super::{BOUND, Figure, PALETTE, Point, save, scene, with_unit};
use crate::output::{control_names, control_units, state_names, state_units};

/// Label of the time axis.
const TIME: &str = "time [s]";

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

/// The task's bands of state component `i`, as drawn over `values`: a band on an angle (unit
/// `rad`) is repeated at every whole turn the unwrapped series visits.
fn state_bands(task: &dyn Task, i: usize, values: &[Point]) -> Vec<Band> {
    let (lo, hi) = values
        .iter()
        .map(|p| p.1)
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    let angle = task.state_units().get(i) == Some(&"rad");
    task.reference_bands()
        .into_iter()
        .filter(|b| b.state == i && b.low.is_finite() && b.high.is_finite())
        .map(|b| Band {
            label: b.label.to_string(),
            spans: if angle {
                b.wrapped_copies(lo, hi)
            } else {
                vec![(b.low, b.high)]
            },
        })
        .collect()
}

pub(super) fn states_figure(task: &dyn Task, episode: &Episode) -> PanelFigure {
    let n = episode.states.first().map_or(0, Vec::len);
    let names = state_names(task, n);
    let units = state_units(task, n);
    let panels: Vec<Panel> = names
        .iter()
        .zip(&units)
        .enumerate()
        .map(|(i, (name, unit))| {
            let points: Vec<Point> = episode
                .states
                .iter()
                .enumerate()
                .map(|(k, x)| (row_time(episode, k), x[i]))
                .collect();
            let bands = state_bands(task, i, &points);
            Panel {
                bands,
                ..Panel::new(
                    with_unit(name, unit),
                    vec![Series::line("", points, PALETTE[i % PALETTE.len()])],
                )
            }
        })
        .collect();
    PanelFigure {
        columns: if panels.len() > 4 { 2 } else { 1 },
        ..PanelFigure::new(
            format!("{}: states{}", task.name(), decimation_note(episode)),
            TIME,
            x_range(episode),
            panels,
        )
    }
}

/// The bound of dimension `j`, if finite (`v` has 1 entry, broadcast, or one per dimension).
fn bound(v: Option<&Vec<f64>>, j: usize) -> Option<f64> {
    let v = v?;
    let b = if v.len() == 1 { v[0] } else { *v.get(j)? };
    b.is_finite().then_some(b)
}

fn controls_figure(task: &dyn Task, config: &MppiConfig, episode: &Episode) -> PanelFigure {
    let m = episode.controls.first().map_or(0, Vec::len);
    let names = control_names(task, m);
    let units = control_units(task, m);
    let (t0, t1) = (x_range(episode).start, x_range(episode).end);
    let panels: Vec<Panel> = names
        .iter()
        .zip(&units)
        .enumerate()
        .map(|(j, (name, unit))| {
            // zero-order hold: u_k applies on [t_k, t_{k+1})
            let mut held = Vec::with_capacity(2 * episode.controls.len());
            for (i, u) in episode.controls.iter().enumerate() {
                let t = row_time(episode, i);
                held.push((t, u[j]));
                held.push((t + episode.dt, u[j]));
            }
            let mut series = vec![Series::line(
                format!("{name} (applied)"),
                held,
                PALETTE[j % PALETTE.len()],
            )];
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
            Panel::new(with_unit(name, unit), series)
        })
        .collect();
    PanelFigure {
        columns: if panels.len() > 4 { 2 } else { 1 },
        ..PanelFigure::new(
            format!(
                "{}: applied controls{}",
                task.name(),
                decimation_note(episode)
            ),
            TIME,
            x_range(episode),
            panels,
        )
    }
}

fn cost_figure(task: &dyn Task, episode: &Episode) -> PanelFigure {
    let stage: Vec<Point> = episode
        .stage_costs
        .iter()
        .enumerate()
        .map(|(i, c)| (row_time(episode, i), *c))
        .collect();
    // the cumulative cost after step k, exact even when the rows are decimated
    let cumulative: Vec<Point> = episode
        .cumulative_costs
        .iter()
        .enumerate()
        .map(|(i, c)| (row_time(episode, i) + episode.dt, *c))
        .collect();
    PanelFigure::new(
        format!(
            "{}: cost (total {:.4}){}",
            task.name(),
            episode.total_cost(),
            decimation_note(episode)
        ),
        TIME,
        x_range(episode),
        vec![
            Panel::new("stage cost", vec![Series::line("", stage, PALETTE[3])]),
            Panel::new(
                "cumulative cost",
                vec![Series::line("", cumulative, PALETTE[0])],
            ),
        ],
    )
}

/// Whether the positive finite `y` values span more than `ratio` (then a log axis reads
/// better); false when there are none.
fn wide_positive_range(points: &[Point], ratio: f64) -> bool {
    let (lo, hi) = points
        .iter()
        .map(|p| p.1)
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    lo.is_finite() && hi / lo > ratio
}

/// A candidate panel of the diagnostics: its short name (for the note when it is dropped)
/// and the panel, whose first series is what it shows.
type Candidate = (&'static str, Panel);

/// Keep the panels whose first series varies; say what the others held (`name = v
/// (constant)`, `name not measured`), joined into one note.
pub(super) fn informative_panels(candidates: Vec<Candidate>) -> (Vec<Panel>, String) {
    let mut kept = vec![];
    let mut notes = vec![];
    for (name, panel) in candidates {
        let why = panel.series.first().map_or_else(
            || Some("not measured".to_string()),
            |s| uninformative(&s.points),
        );
        match why {
            None => kept.push(panel),
            Some(why) if why.starts_with(['=', '≈']) => notes.push(format!("{name} {why}")),
            Some(why) => notes.push(format!("{name}: {why}")),
        }
    }
    (kept, notes.join("; "))
}

fn diagnostics_figure(task: &dyn Task, config: &MppiConfig, episode: &Episode) -> PanelFigure {
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
    let planning: Vec<Point> = episode
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
    let log_label = |name: &str, log: bool| {
        if log {
            format!("{name} (log)")
        } else {
            name.to_string()
        }
    };
    let mut candidates: Vec<Candidate> = vec![
        (
            "ESS",
            Panel::new(format!("ESS (of {})", config.samples), ess_series),
        ),
        (
            "λ",
            Panel::new(
                log_label("temperature λ", log_lambda),
                vec![Series::line("", lambda, PALETTE[1])],
            )
            .log(log_lambda),
        ),
        (
            "log-likelihood",
            Panel::new(
                "log-likelihood estimate",
                vec![Series::line("", loglik, PALETTE[2])],
            ),
        ),
    ];
    if config.diagnostics == DiagnosticsLevel::Full {
        let log_kl = wide_positive_range(&kl, 100.0);
        candidates.push((
            "KL step",
            Panel::new(
                log_label("KL step", log_kl),
                vec![Series::line("", kl, PALETTE[5])],
            )
            .log(log_kl),
        ));
        candidates.push((
            "M-step gap ΔQ̂ − KL",
            Panel::new(
                "M-step gap ΔQ̂ − KL",
                vec![
                    Series::line(
                        "M-step gain − KL step (0 for an exact M-step; floors and priors move it)",
                        gap,
                        PALETTE[6],
                    ),
                    Series::dashed("zero", vec![(t0, 0.0), (t1, 0.0)], BOUND),
                ],
            ),
        ));
        let log_contraction = wide_positive_range(&contraction, 100.0);
        let name = if config.iterations < 2 {
            "contraction (needs ≥ 2 iterations per step)"
        } else {
            "contraction"
        };
        candidates.push((
            name,
            Panel::new(
                log_label("contraction ‖Δθ_k‖/‖Δθ_k−1‖", log_contraction),
                vec![Series::line("", contraction, PALETTE[9])],
            )
            .log(log_contraction),
        ));
    }
    candidates.push((
        "planning time",
        Panel::new(
            "planning time [ms]",
            vec![Series::line("", planning, PALETTE[4])],
        ),
    ));
    let (panels, note) = informative_panels(candidates);
    PanelFigure {
        note,
        ..PanelFigure::new(
            format!(
                "{}: planner diagnostics (N = {}, T = {}, {} EM iter/step, temperature {}){}",
                task.name(),
                config.samples,
                config.horizon,
                config.iterations,
                config.weighting.temperature.name(),
                decimation_note(episode)
            ),
            TIME,
            x_range(episode),
            panels,
        )
    }
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
        ("states", Figure::Panels(states_figure(task, episode))),
        (
            "controls",
            Figure::Panels(controls_figure(task, config, episode)),
        ),
        ("cost", Figure::Panels(cost_figure(task, episode))),
        (
            "diagnostics",
            Figure::Panels(diagnostics_figure(task, config, episode)),
        ),
    ];
    if let Some(s) = task.scene() {
        figures.push(("path", Figure::Path(scene::path_figure(task, s, episode))));
    }
    let mut written = vec![];
    for (stem, figure) in &figures {
        written.extend(save(figure, dir, stem)?);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_broadcast() {
        assert_eq!(bound(Some(&vec![2.0]), 3), Some(2.0));
        assert_eq!(bound(Some(&vec![1.0, 2.0]), 1), Some(2.0));
        assert_eq!(bound(Some(&vec![f64::INFINITY]), 0), None);
        assert_eq!(bound(None, 0), None);
    }

    #[test]
    fn diagnostics_drop_constant_and_unmeasured_series() {
        let line = |ys: &[f64]| {
            let pts = ys.iter().enumerate().map(|(i, y)| (i as f64, *y)).collect();
            vec![Series::line("", pts, PALETTE[0])]
        };
        let (kept, note) = informative_panels(vec![
            ("ESS", Panel::new("ESS", line(&[10.0, 12.0, 9.0]))),
            ("λ", Panel::new("λ", line(&[1.0, 1.0, 1.0]))),
            ("contraction", Panel::new("c", line(&[f64::NAN, f64::NAN]))),
        ]);
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].y_label, "ESS");
        assert!(note.contains("λ = 1 (constant)"), "{note}");
        assert!(note.contains("contraction: not measured"), "{note}");
    }

    /// A short episode of `task` with full diagnostics.
    fn episode(task: &dyn Task, steps: usize, iterations: usize) -> (MppiConfig, Episode) {
        let mut config = task.default_config();
        config.samples = 32;
        config.horizon = 8;
        config.iterations = iterations;
        config.diagnostics = DiagnosticsLevel::Full;
        let options = mppi_tasks::EpisodeOptions {
            steps,
            ..Default::default()
        };
        let episode = mppi_tasks::run_episode(task, &config, &options, |_| {}).expect("runs");
        (config, episode)
    }

    #[test]
    fn one_iteration_per_step_has_no_contraction_panel() {
        let task = mppi_tasks::task_by_name("pendulum").expect("pendulum");
        let (config, ep) = episode(task.as_ref(), 6, 1);
        let fig = diagnostics_figure(task.as_ref(), &config, &ep);
        assert!(
            fig.panels
                .iter()
                .all(|p| !p.y_label.contains("contraction")),
            "{:?}",
            fig.panels.iter().map(|p| &p.y_label).collect::<Vec<_>>()
        );
        assert!(fig.note.contains("contraction"), "{}", fig.note);
        // fixed λ: a constant, stated in the note
        assert!(fig.note.contains("λ = 1 (constant)"), "{}", fig.note);
        assert!(fig.panels.iter().any(|p| p.y_label == "planning time [ms]"));
        let (config, ep) = episode(task.as_ref(), 6, 3);
        let fig = diagnostics_figure(task.as_ref(), &config, &ep);
        assert!(fig.panels.iter().any(|p| p.y_label.contains("contraction")));
    }

    #[test]
    fn state_panels_carry_units_and_bands() {
        let task = mppi_tasks::task_by_name("pendulum").expect("pendulum");
        let (_, ep) = episode(task.as_ref(), 4, 1);
        let fig = states_figure(task.as_ref(), &ep);
        assert_eq!(fig.x_label, "time [s]");
        assert_eq!(fig.panels[0].y_label, "theta [rad]");
        assert_eq!(fig.panels[1].y_label, "theta_dot [rad/s]");
        let band = &fig.panels[0].bands[0];
        assert!(band.label.contains("0.1 rad"), "{}", band.label);
        assert_eq!(band.spans, vec![(-0.1, 0.1)]);
        // an unwrapped angle that went once around: the band at 0 and at 2π
        let turned = [(0.0, 3.0), (1.0, 6.3)];
        let bands = state_bands(task.as_ref(), 0, &turned);
        assert_eq!(bands[0].spans.len(), 1);
        assert!((bands[0].spans[0].0 - (std::f64::consts::TAU - 0.1)).abs() < 1e-12);
    }
}
