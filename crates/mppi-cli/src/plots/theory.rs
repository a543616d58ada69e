//! The figures of `mppi theory`, and the one-panel line plots of the benchmarks.

use std::path::{Path, PathBuf};

use mppi_theory::experiments::{
    AccelerationResult, ContractionResult, EssResult, FamiliesResult, FamilyRow, FullCovResult,
    IncreaseStep, TheoryReport,
};

use super::chart::{Panel, PanelFigure, Series};
use super::{BOUND, Figure, PALETTE, save};

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
        note: String::new(),
        title: format!(
            "Contraction along the slowest mode: ‖μ_k − u*‖ (C.4 quadratic, N = {})",
            r.samples
        ),
        x_label: "EM iteration k".into(),
        x_range: -0.2..x_end + 0.2,
        columns: 1,
        panels: vec![Panel {
            bands: vec![],
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
        note: String::new(),
        title: format!(
            "Sufficient increase ΔL ≥ KL(p_k+1 ‖ p_k), fresh samples (N_em = {}, {} × {})",
            r.samples, r.pairs, r.eval_samples
        ),
        x_label: "family (one dot per EM step)".into(),
        x_range: -0.5..n - 0.5,
        columns: 1,
        panels: vec![
            Panel {
                bands: vec![],
                y_label: "(ΔL̂ − KL + b + o)/SE".into(),
                series: vec![
                    Series::dots("standardized excess z", steps(IncreaseStep::z), PALETTE[0]),
                    Series::dashed(format!("−q = {:.2} (check: z ≥ −q)", -q), threshold, BOUND),
                    Series::dashed("0", zero, PALETTE[7]),
                ],
                log_y: false,
            },
            Panel {
                bands: vec![],
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
        note: String::new(),
        title: format!(
            "Full-covariance EM is O(1/k), fixed covariance linear (λ = {})",
            r.lambda
        ),
        x_label: "EM iteration k (log)".into(),
        x_range: 0.9..k_end * 1.1,
        columns: 1,
        panels: vec![Panel {
            bands: vec![],
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
            bands: vec![],
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
        note: String::new(),
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
        note: String::new(),
        title: format!(
            "ESS/N: expected E[w]²/E[w²] vs measured (N = {}, mean of {} runs)",
            r.samples, r.repetitions
        ),
        x_label: "expected ESS/N".into(),
        x_range: lo..hi,
        columns: 1,
        panels: vec![Panel {
            bands: vec![],
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
    write_line_plot_with_bars(dir, stem, title, x_label, y_label, log_log, lines, &[])
}

/// [`write_line_plot`] with vertical error bars: `bars[i]` holds the `(x, low, high)` of
/// `lines[i]` (missing or empty: none).
pub fn write_line_plot_with_bars(
    dir: &Path,
    stem: &str,
    title: &str,
    x_label: &str,
    y_label: &str,
    log_log: bool,
    lines: &[PlotLine],
    bars: &[Vec<(f64, f64, f64)>],
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
            series.push(Series {
                bars: bars.get(i).cloned().unwrap_or_default(),
                ..Series::dots(String::new(), line.points.clone(), color)
            });
        }
    }
    let figure = Figure::Panels(PanelFigure {
        note: String::new(),
        title: title.to_string(),
        x_label: x_label.to_string(),
        x_range,
        columns: 1,
        panels: vec![Panel {
            bands: vec![],
            y_label: y_label.to_string(),
            series,
            log_y: log_log,
        }],
        log_x: log_log,
        x_names: vec![],
    });
    save(&figure, dir, stem)
}
