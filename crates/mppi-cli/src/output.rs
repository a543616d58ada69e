//! Results of a run: the summary statistics and the CSV / JSON files written by `--out`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use mppi::MppiConfig;
use mppi_tasks::{Episode, Outcome, Task};
use serde::Serialize;

/// Planning-time statistics over the control steps, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct TimingStats {
    /// Median planning time per step.
    pub median_ms: f64,
    /// 99th percentile (nearest rank).
    pub p99_ms: f64,
    /// Mean.
    pub mean_ms: f64,
    /// Maximum.
    pub max_ms: f64,
    /// Sum over the episode.
    pub total_ms: f64,
}

impl TimingStats {
    /// Statistics of `times_ms` (all zero when empty).
    #[must_use]
    pub fn from_samples(times_ms: &[f64]) -> Self {
        if times_ms.is_empty() {
            return TimingStats::default();
        }
        let mut sorted = times_ms.to_vec();
        sorted.sort_by(f64::total_cmp);
        let total: f64 = sorted.iter().sum();
        TimingStats {
            median_ms: percentile(&sorted, 50.0),
            p99_ms: percentile(&sorted, 99.0),
            mean_ms: total / sorted.len() as f64,
            max_ms: sorted[sorted.len() - 1],
            total_ms: total,
        }
    }
}

/// Nearest-rank percentile of sorted, non-empty data; the median of an even count is the mean
/// of the two middle values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let n = sorted.len();
    if p == 50.0 {
        return if n % 2 == 1 {
            sorted[n / 2]
        } else {
            0.5 * (sorted[n / 2 - 1] + sorted[n / 2])
        };
    }
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    sorted[rank.clamp(1, n) - 1]
}

/// Everything `mppi run` reports (printed, and written as `summary.json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSummary {
    /// Task name.
    pub task: String,
    /// Task description.
    pub description: String,
    /// The config the planner ran with (task defaults plus overrides).
    pub config: MppiConfig,
    /// Control steps taken.
    pub steps: usize,
    /// Plant time step in seconds.
    pub dt: f64,
    /// Sum of the stage costs.
    pub total_cost: f64,
    /// Did the episode meet the task's criterion?
    pub success: bool,
    /// The task's explanation of the verdict.
    pub outcome: String,
    /// Planning time per control step.
    pub planning_time: TimingStats,
    /// Mean effective sample size over every EM iteration.
    pub mean_ess: f64,
    /// `mean_ess / samples`.
    pub mean_ess_fraction: f64,
    /// EM iterations (over all steps) in which every sampled cost was non-finite.
    pub kept_plan_iterations: usize,
    /// Smallest sufficient-increase margin `ΔL̂ − ΔQ̂` over every EM iteration (`≥ 0` by
    /// theory); `None` without full diagnostics.
    pub min_increase_margin: Option<f64>,
    /// Mean `KL(p_{θ_EM} ‖ p_{θ_k})` over every EM iteration; `None` without full diagnostics
    /// (or for a family without a closed-form KL).
    pub mean_kl_step: Option<f64>,
    /// Final state of the plant.
    pub final_state: Vec<f64>,
    /// Wall-clock time of the whole episode (planning, plant, captures) in seconds.
    pub wall_time_s: f64,
}

impl RunSummary {
    /// Collect the summary of a finished episode.
    #[must_use]
    pub fn new(
        task: &dyn Task,
        config: &MppiConfig,
        episode: &Episode,
        outcome: &Outcome,
        wall_time_s: f64,
    ) -> Self {
        let times: Vec<f64> = episode
            .reports
            .iter()
            .map(|r| r.planning_time.as_secs_f64() * 1e3)
            .collect();
        let ess: Vec<f64> = episode
            .reports
            .iter()
            .flat_map(|r| r.iterations.iter().map(|it| it.weights.ess))
            .collect();
        let mean_ess = if ess.is_empty() {
            0.0
        } else {
            ess.iter().sum::<f64>() / ess.len() as f64
        };
        let all = || episode.reports.iter().flat_map(|r| &r.iterations);
        let margins: Vec<f64> = all()
            .map(|it| it.increase_margin)
            .filter(|v| v.is_finite())
            .collect();
        let kls: Vec<f64> = all()
            .map(|it| it.kl_step)
            .filter(|v| v.is_finite())
            .collect();
        RunSummary {
            min_increase_margin: margins.iter().copied().reduce(f64::min),
            mean_kl_step: (!kls.is_empty()).then(|| kls.iter().sum::<f64>() / kls.len() as f64),
            task: task.name().to_string(),
            description: task.description().to_string(),
            config: config.clone(),
            steps: episode.controls.len(),
            dt: episode.dt,
            total_cost: episode.total_cost(),
            success: outcome.success,
            outcome: outcome.message.clone(),
            planning_time: TimingStats::from_samples(&times),
            mean_ess,
            mean_ess_fraction: mean_ess / config.samples.max(1) as f64,
            kept_plan_iterations: episode
                .reports
                .iter()
                .flat_map(|r| &r.iterations)
                .filter(|it| it.kept_plan)
                .count(),
            final_state: episode.states.last().cloned().unwrap_or_default(),
            wall_time_s,
        }
    }

    /// The human-readable summary printed at the end of `mppi run`.
    #[must_use]
    pub fn render(&self, out_dir: Option<&Path>) -> String {
        let mut s = String::new();
        let verdict = if self.success { "yes" } else { "NO" };
        let rows: Vec<(&str, String)> = vec![
            ("task", format!("{} — {}", self.task, self.description)),
            (
                "steps",
                format!(
                    "{} ({:.2} s simulated, {:.2} s wall)",
                    self.steps,
                    self.steps as f64 * self.dt,
                    self.wall_time_s
                ),
            ),
            ("total cost", format!("{:.4}", self.total_cost)),
            ("success", format!("{verdict} ({})", self.outcome)),
            (
                "planning time",
                format!(
                    "median {:.3} ms, p99 {:.3} ms per step ({} samples x {} horizon x {} iter, {} thread{})",
                    self.planning_time.median_ms,
                    self.planning_time.p99_ms,
                    self.config.samples,
                    self.config.horizon,
                    self.config.iterations,
                    self.config.threads,
                    if self.config.threads == 1 { "" } else { "s" }
                ),
            ),
            (
                "mean ESS",
                format!(
                    "{:.1} ({:.1}% of {} samples)",
                    self.mean_ess,
                    100.0 * self.mean_ess_fraction,
                    self.config.samples
                ),
            ),
        ];
        let mut rows = rows;
        if let Some(margin) = self.min_increase_margin {
            let kl = self
                .mean_kl_step
                .map(|kl| format!(", mean KL step {}", crate::theory::num(kl)))
                .unwrap_or_default();
            rows.push((
                "min increase margin",
                format!(
                    "{} (ΔL̂ − ΔQ̂, ≥ 0 by theory{kl})",
                    crate::theory::num(margin)
                ),
            ));
        }
        if self.kept_plan_iterations > 0 {
            rows.push((
                "warning",
                format!(
                    "{} iterations had no finite sampled cost (plan kept)",
                    self.kept_plan_iterations
                ),
            ));
        }
        if let Some(dir) = out_dir {
            rows.push(("output", dir.display().to_string()));
        }
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        for (k, v) in rows {
            let _ = writeln!(s, "{k:<width$}  {v}");
        }
        s
    }
}

/// Name of component `i` from a task's name list, or `prefix{i}` if the list is short.
fn component_name(names: &[&str], prefix: &str, i: usize) -> String {
    names
        .get(i)
        .map_or_else(|| format!("{prefix}{i}"), |n| (*n).to_string())
}

/// Names of the `n` state components.
#[must_use]
pub fn state_names(task: &dyn Task, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| component_name(task.state_names(), "x", i))
        .collect()
}

/// Names of the `m` control components.
#[must_use]
pub fn control_names(task: &dyn Task, m: usize) -> Vec<String> {
    (0..m)
        .map(|i| component_name(task.control_names(), "u", i))
        .collect()
}

/// Quote a CSV field if needed.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// `trajectory.csv`: one row per visited state (`steps + 1` rows): `step, time`, the state
/// components, the controls applied at that state and the stage cost (both empty on the last
/// row, the final state).
#[must_use]
pub fn trajectory_csv(task: &dyn Task, episode: &Episode) -> String {
    let n = episode.states.first().map_or(0, Vec::len);
    let m = episode
        .controls
        .first()
        .map_or(task.control_names().len(), Vec::len);
    let mut header = vec!["step".to_string(), "time".to_string()];
    header.extend(state_names(task, n));
    header.extend(control_names(task, m));
    header.push("stage_cost".to_string());
    let mut s = header
        .iter()
        .map(|h| csv_field(h))
        .collect::<Vec<_>>()
        .join(",");
    s.push('\n');
    for (k, x) in episode.states.iter().enumerate() {
        let _ = write!(s, "{k},{}", k as f64 * episode.dt);
        for v in x {
            let _ = write!(s, ",{v}");
        }
        match (episode.controls.get(k), episode.stage_costs.get(k)) {
            (Some(u), Some(c)) => {
                for v in u {
                    let _ = write!(s, ",{v}");
                }
                let _ = write!(s, ",{c}");
            }
            _ => s.push_str(&",".repeat(m + 1)),
        }
        s.push('\n');
    }
    s
}

/// Header of `diagnostics.csv`.
pub const DIAGNOSTICS_HEADER: &str = "step,iteration,lambda,log_likelihood,ess,min_cost,mean_cost,max_weight,nonfinite,truncated,kept_plan,update_norm,fell_back,kl_step,surrogate_gain,q_gain,increase_margin,contraction,planning_time_ms";

/// `diagnostics.csv`: one row per EM iteration with every [`mppi::IterStats`] field;
/// `planning_time_ms` is that of the whole control step (repeated on each of its iterations).
/// The full-diagnostics columns (`kl_step` .. `contraction`) are `NaN` when the run used
/// `diagnostics = "basic"` (and `contraction` on the first iteration of each step).
#[must_use]
pub fn diagnostics_csv(episode: &Episode) -> String {
    let mut s = String::from(DIAGNOSTICS_HEADER);
    s.push('\n');
    for report in &episode.reports {
        let ms = report.planning_time.as_secs_f64() * 1e3;
        for it in &report.iterations {
            let w = &it.weights;
            let _ = writeln!(
                s,
                "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                it.step,
                it.iteration,
                w.lambda,
                w.log_likelihood,
                w.ess,
                w.min_cost,
                w.mean_cost,
                w.max_weight,
                w.nonfinite,
                w.truncated,
                it.kept_plan,
                it.update_norm,
                it.fell_back,
                it.kl_step,
                it.surrogate_gain,
                it.q_gain,
                it.increase_margin,
                it.contraction,
                ms
            );
        }
    }
    s
}

/// Write `contents` to `dir/name`, returning the path.
fn write_file(dir: &Path, name: &str, contents: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join(name);
    std::fs::write(&path, contents)
        .with_context(|| format!("cannot write `{}`", path.display()))?;
    Ok(path)
}

/// Pretty JSON of `value`.
fn to_json<T: Serialize + ?Sized>(value: &T, what: &str) -> anyhow::Result<String> {
    let mut s =
        serde_json::to_string_pretty(value).with_context(|| format!("cannot serialize {what}"))?;
    s.push('\n');
    Ok(s)
}

/// Write the CSV and JSON files of a run into `dir` (which must exist).
pub fn write_data_files(
    dir: &Path,
    task: &dyn Task,
    episode: &Episode,
    summary: &RunSummary,
) -> anyhow::Result<Vec<PathBuf>> {
    Ok(vec![
        write_file(dir, "trajectory.csv", &trajectory_csv(task, episode))?,
        write_file(dir, "diagnostics.csv", &diagnostics_csv(episode))?,
        write_file(dir, "summary.json", &to_json(summary, "the summary")?)?,
        write_file(dir, "episode.json", &to_json(episode, "the episode")?)?,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let t = TimingStats::from_samples(&[3.0, 1.0, 2.0, 4.0]);
        assert_eq!(t.median_ms, 2.5);
        assert_eq!(t.p99_ms, 4.0);
        assert_eq!(t.max_ms, 4.0);
        assert_eq!(t.mean_ms, 2.5);
        let many: Vec<f64> = (1..=200).map(f64::from).collect();
        let t = TimingStats::from_samples(&many);
        assert_eq!(t.p99_ms, 198.0);
        assert_eq!(t.median_ms, 100.5);
        assert_eq!(TimingStats::from_samples(&[]), TimingStats::default());
    }

    #[test]
    fn csv_quoting() {
        assert_eq!(csv_field("a"), "a");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn csv_row_counts() {
        let task = mppi_tasks::task_by_name("pendulum").expect("pendulum exists");
        let mut config = task.default_config();
        config.samples = 16;
        config.horizon = 5;
        config.iterations = 2;
        let options = mppi_tasks::EpisodeOptions {
            steps: 4,
            ..Default::default()
        };
        let episode =
            mppi_tasks::run_episode(task.as_ref(), &config, &options, |_| {}).expect("runs");
        let traj = trajectory_csv(task.as_ref(), &episode);
        let lines: Vec<&str> = traj.lines().collect();
        assert_eq!(lines.len(), 1 + 5);
        assert_eq!(lines[0], "step,time,theta,theta_dot,torque,stage_cost");
        assert!(lines[5].ends_with(",,"), "{}", lines[5]);
        let diag = diagnostics_csv(&episode);
        assert_eq!(diag.lines().count(), 1 + 4 * 2);
        let cols = DIAGNOSTICS_HEADER.split(',').count();
        assert!(diag.lines().all(|l| l.split(',').count() == cols));
    }
}
