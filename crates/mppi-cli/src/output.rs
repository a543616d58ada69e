//! Results of a run: the summary statistics and the CSV / JSON files written by `--out`.
//!
//! `trajectory.csv` and `diagnostics.csv` are streamed row by row while the episode runs
//! ([`CsvWriter`]), so they hold every step of an episode of any length; `summary.json` and
//! `episode.json` are written at the end from the [`Episode`] (exact statistics, and a record
//! of at most [`mppi_tasks::DEFAULT_RECORD_ROWS`] evenly spaced rows).

use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use mppi::{MppiConfig, StepReport};
use mppi_tasks::{Episode, Outcome, StepRecord, Task};
use serde::Serialize;

/// Planning-time statistics over the control steps, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct TimingStats {
    /// Median planning time per step (of the kept rows when the episode was longer than its
    /// record: an evenly spaced sample of the steps).
    pub median_ms: f64,
    /// 99th percentile (nearest rank; of the kept rows, like the median).
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

    /// Statistics of an episode: mean, maximum and total over every step (exact), median and
    /// 99th percentile over the kept rows (every step unless the episode was decimated).
    #[must_use]
    pub fn from_episode(episode: &Episode) -> Self {
        let times: Vec<f64> = episode
            .reports
            .iter()
            .map(|r| r.planning_time.as_secs_f64() * 1e3)
            .collect();
        let kept = TimingStats::from_samples(&times);
        if episode.is_complete() {
            return kept;
        }
        let stats = &episode.stats;
        TimingStats {
            mean_ms: stats.planning_time_total_s * 1e3 / episode.steps.max(1) as f64,
            max_ms: stats.planning_time_max_s * 1e3,
            total_ms: stats.planning_time_total_s * 1e3,
            ..kept
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
    /// Rows (visited states) kept in memory for the plots and `episode.json`: `steps + 1`
    /// unless the episode was longer than the record (the CSV files have every row).
    pub kept_rows: usize,
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
    /// Control steps whose loop stopped at `deadline_ms` before every iteration ran.
    pub out_of_time_steps: usize,
    /// Largest `|ΔQ̂ − KL|` (the M-step gap) over every EM iteration: 0 for an exact
    /// exponential-family M-step, the size of the floors' and priors' correction otherwise;
    /// `None` without full diagnostics.
    pub max_mstep_gap: Option<f64>,
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
        let stats = &episode.stats;
        let mean_ess = stats.mean_ess();
        RunSummary {
            max_mstep_gap: stats.max_mstep_gap,
            mean_kl_step: stats.mean_kl_step(),
            task: task.name().to_string(),
            description: task.description().to_string(),
            config: config.clone(),
            steps: episode.steps,
            kept_rows: episode.states.len(),
            dt: episode.dt,
            total_cost: episode.total_cost(),
            success: outcome.success,
            outcome: outcome.message.clone(),
            planning_time: TimingStats::from_episode(episode),
            mean_ess,
            mean_ess_fraction: mean_ess / config.samples.max(1) as f64,
            kept_plan_iterations: stats.kept_plan_iterations,
            out_of_time_steps: stats.out_of_time_steps,
            final_state: episode
                .final_state()
                .map(<[f64]>::to_vec)
                .unwrap_or_default(),
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
        if let Some(gap) = self.max_mstep_gap {
            let kl = self
                .mean_kl_step
                .map(|kl| format!(", mean KL step {}", crate::theory::num(kl)))
                .unwrap_or_default();
            rows.push((
                "max M-step gap",
                format!(
                    "{} (|ΔQ̂ − KL|: 0 for an exact M-step, else what floors and priors moved{kl})",
                    crate::theory::num(gap)
                ),
            ));
        }
        if let Some(ms) = self.config.deadline_ms {
            rows.push((
                "deadline",
                format!(
                    "{ms} ms per step: {} of {} steps stopped early (out of time)",
                    self.out_of_time_steps, self.steps
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
        if self.kept_rows < self.steps + 1 {
            rows.push((
                "record",
                format!(
                    "plots and episode.json show {} of {} states (evenly spaced); the CSV files \
                     have every step",
                    self.kept_rows,
                    self.steps + 1
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

/// Unit of component `i` from a task's unit list (`""` when unknown or dimensionless).
fn component_unit(units: &[&'static str], i: usize) -> &'static str {
    units.get(i).copied().unwrap_or("")
}

/// Units of the `n` state components (`""` when unknown or dimensionless).
#[must_use]
pub fn state_units(task: &dyn Task, n: usize) -> Vec<&'static str> {
    (0..n)
        .map(|i| component_unit(task.state_units(), i))
        .collect()
}

/// Units of the `m` control components (`""` when unknown or dimensionless).
#[must_use]
pub fn control_units(task: &dyn Task, m: usize) -> Vec<&'static str> {
    (0..m)
        .map(|i| component_unit(task.control_units(), i))
        .collect()
}

/// `name [unit]`, or `name` without a unit.
#[must_use]
pub fn with_unit(name: &str, unit: &str) -> String {
    if unit.is_empty() {
        name.to_string()
    } else {
        format!("{name} [{unit}]")
    }
}

/// Quote a CSV field if needed.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Header of `trajectory.csv` for a task with `n` states and `m` controls: a column with a
/// unit is `name [unit]` (`time [s]`, `theta [rad]`), a dimensionless one just `name`.
#[must_use]
pub fn trajectory_header(task: &dyn Task, n: usize, m: usize) -> String {
    let mut header = vec!["step".to_string(), "time [s]".to_string()];
    let states = state_names(task, n).into_iter().zip(state_units(task, n));
    let controls = control_names(task, m)
        .into_iter()
        .zip(control_units(task, m));
    header.extend(
        states
            .chain(controls)
            .map(|(name, unit)| with_unit(&name, unit)),
    );
    header.push("stage_cost".to_string());
    header
        .iter()
        .map(|h| csv_field(h))
        .collect::<Vec<_>>()
        .join(",")
}

/// Header of `diagnostics.csv`.
pub const DIAGNOSTICS_HEADER: &str = "step,iteration,lambda,log_likelihood,ess,min_cost,mean_cost,max_weight,nonfinite,truncated,kept_plan,update_norm,fell_back,kl_step,surrogate_gain,q_gain,mstep_gap,contraction,planning_time_ms";

/// Writes `trajectory.csv` and `diagnostics.csv` row by row as an episode runs.
///
/// `trajectory.csv`: one row per visited state (`steps + 1` rows): `step, time`, the state
/// components, the controls applied at that state and the stage cost (both empty on the last
/// row, the final state).
///
/// `diagnostics.csv`: one row per EM iteration with every [`mppi::IterStats`] field;
/// `planning_time_ms` is that of the whole control step (repeated on each of its iterations).
/// The full-diagnostics columns (`kl_step` .. `contraction`) are `NaN` when the run used
/// `diagnostics = "basic"` (and `contraction` on the first iteration of each step).
#[derive(Debug)]
pub struct CsvWriter<W: Write> {
    trajectory: W,
    diagnostics: W,
    /// Control components (the width of the empty cells of the final row).
    controls: usize,
    /// Reused row buffer.
    line: String,
}

impl<W: Write> CsvWriter<W> {
    /// Write both headers for a task with `n` states and `m` controls.
    pub fn new(
        mut trajectory: W,
        mut diagnostics: W,
        task: &dyn Task,
        n: usize,
        m: usize,
    ) -> std::io::Result<Self> {
        writeln!(trajectory, "{}", trajectory_header(task, n, m))?;
        writeln!(diagnostics, "{DIAGNOSTICS_HEADER}")?;
        Ok(CsvWriter {
            trajectory,
            diagnostics,
            controls: m,
            line: String::new(),
        })
    }

    /// Write the rows of one control step (its trajectory row and one diagnostics row per EM
    /// iteration).
    pub fn step(&mut self, record: &StepRecord<'_>) -> std::io::Result<()> {
        self.line.clear();
        push_state(&mut self.line, record.step, record.dt, record.state);
        for v in record.control {
            let _ = write!(self.line, ",{v}");
        }
        let _ = writeln!(self.line, ",{}", record.stage_cost);
        self.trajectory.write_all(self.line.as_bytes())?;
        self.line.clear();
        push_diagnostics(&mut self.line, record.report);
        self.diagnostics.write_all(self.line.as_bytes())
    }

    /// Write the final state's row (at step `steps`) and flush both files.
    pub fn finish(&mut self, steps: usize, dt: f64, state: &[f64]) -> std::io::Result<()> {
        self.line.clear();
        push_state(&mut self.line, steps, dt, state);
        self.line.push_str(&",".repeat(self.controls + 1));
        self.line.push('\n');
        self.trajectory.write_all(self.line.as_bytes())?;
        self.flush()
    }

    /// Flush both files (e.g. after the episode failed midway).
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.trajectory.flush()?;
        self.diagnostics.flush()
    }

    /// The two writers, `(trajectory, diagnostics)`.
    #[cfg(test)]
    pub fn into_inner(self) -> (W, W) {
        (self.trajectory, self.diagnostics)
    }
}

/// `step,time,x...` of a trajectory row.
fn push_state(line: &mut String, step: usize, dt: f64, state: &[f64]) {
    let _ = write!(line, "{step},{}", step as f64 * dt);
    for v in state {
        let _ = write!(line, ",{v}");
    }
}

/// The diagnostics rows of one control step.
fn push_diagnostics(line: &mut String, report: &StepReport) {
    let ms = report.planning_time.as_secs_f64() * 1e3;
    for it in &report.iterations {
        let w = &it.weights;
        let _ = writeln!(
            line,
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
            it.mstep_gap,
            it.contraction,
            ms
        );
    }
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

/// Write the JSON files of a run into `dir` (which must exist; the CSV files were streamed
/// there by a [`CsvWriter`] while the episode ran).
pub fn write_data_files(
    dir: &Path,
    episode: &Episode,
    summary: &RunSummary,
) -> anyhow::Result<Vec<PathBuf>> {
    Ok(vec![
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
    fn headers_carry_units() {
        for task in mppi_tasks::all_tasks() {
            let d = task.dynamics();
            let (n, m) = (d.state_dim(), d.control_dim());
            let header = trajectory_header(task.as_ref(), n, m);
            let cols: Vec<&str> = header.split(',').collect();
            assert_eq!(cols.len(), 2 + n + m + 1, "{header}");
            assert_eq!(&cols[..2], ["step", "time [s]"]);
            assert_eq!(cols[cols.len() - 1], "stage_cost");
            for (i, col) in cols[2..2 + n].iter().enumerate() {
                let unit = task.state_units()[i];
                assert_eq!(*col, with_unit(task.state_names()[i], unit), "{header}");
                assert_eq!(col.ends_with(']'), !unit.is_empty(), "{header}");
            }
        }
        let cartpole = mppi_tasks::task_by_name("cartpole").expect("cartpole");
        assert_eq!(
            trajectory_header(cartpole.as_ref(), 4, 1),
            "step,time [s],x [m],theta [rad],x_dot [m/s],theta_dot [rad/s],force [N],stage_cost"
        );
        // a column past the task's names and units: a generic name, no unit
        let header = trajectory_header(cartpole.as_ref(), 5, 1);
        assert!(header.contains(",x4,force [N],"), "{header}");
        assert_eq!(with_unit("k", ""), "k");
    }

    /// Run `steps` steps of a small pendulum, streaming the CSV rows into memory.
    fn streamed(steps: usize, record_rows: usize) -> (Episode, String, String) {
        let task = mppi_tasks::task_by_name("pendulum").expect("pendulum exists");
        let mut config = task.default_config();
        config.samples = 16;
        config.horizon = 5;
        config.iterations = 2;
        let options = mppi_tasks::EpisodeOptions {
            steps,
            record_rows,
            ..Default::default()
        };
        struct Sink(CsvWriter<Vec<u8>>, f64);
        impl mppi_tasks::EpisodeSink for Sink {
            type Error = std::io::Error;
            fn step(&mut self, record: &StepRecord<'_>) -> std::io::Result<()> {
                self.0.step(record)
            }
            fn finish(&mut self, steps: usize, state: &[f64]) -> std::io::Result<()> {
                self.0.finish(steps, self.1, state)
            }
        }
        let writer = CsvWriter::new(Vec::new(), Vec::new(), task.as_ref(), 2, 1).expect("headers");
        let mut sink = Sink(writer, task.dt());
        let episode = mppi_tasks::run_episode_with(task.as_ref(), &config, &options, &mut sink)
            .expect("runs");
        let (traj, diag) = sink.0.into_inner();
        let text = |b: Vec<u8>| String::from_utf8(b).expect("UTF-8");
        (episode, text(traj), text(diag))
    }

    #[test]
    fn csv_row_counts() {
        let (episode, traj, diag) = streamed(4, 100);
        let lines: Vec<&str> = traj.lines().collect();
        assert_eq!(lines.len(), 1 + 5);
        assert_eq!(
            lines[0],
            "step,time [s],theta [rad],theta_dot [rad/s],torque [N·m],stage_cost"
        );
        assert!(lines[1].starts_with("0,0,3.14159"), "{}", lines[1]);
        assert!(lines[5].starts_with("4,0.2,"), "{}", lines[5]);
        assert!(lines[5].ends_with(",,"), "{}", lines[5]);
        // the rows are the episode's
        for (i, x) in episode.states.iter().enumerate() {
            let cells: Vec<f64> = lines[1 + i]
                .split(',')
                .skip(2)
                .take(2)
                .map(|c| c.parse().expect("number"))
                .collect();
            assert_eq!(&cells, x);
        }
        assert_eq!(diag.lines().count(), 1 + 4 * 2);
        let cols = DIAGNOSTICS_HEADER.split(',').count();
        assert!(diag.lines().all(|l| l.split(',').count() == cols));
    }

    #[test]
    fn csv_files_have_every_row_when_the_record_is_decimated() {
        let (episode, traj, diag) = streamed(300, 20);
        assert!(!episode.is_complete());
        assert!(episode.states.len() <= 20, "{}", episode.states.len());
        assert_eq!(traj.lines().count(), 1 + 301);
        assert_eq!(diag.lines().count(), 1 + 300 * 2);
        // the summary is exact: it agrees with the full record of the same (seeded) episode
        let (full, full_traj, _) = streamed(300, 1000);
        assert!(full.is_complete());
        assert_eq!(traj, full_traj);
        let task = mppi_tasks::task_by_name("pendulum").expect("pendulum exists");
        let config = task.default_config();
        let summary = |e: &Episode| RunSummary::new(task.as_ref(), &config, e, &e.outcome, 0.0);
        let (a, b) = (summary(&episode), summary(&full));
        assert_eq!(a.total_cost, b.total_cost);
        assert_eq!(a.mean_ess, b.mean_ess);
        assert_eq!(a.max_mstep_gap, b.max_mstep_gap);
        assert_eq!(a.final_state, b.final_state);
        assert_eq!(a.outcome, b.outcome);
        assert_eq!((a.kept_rows, b.kept_rows), (episode.states.len(), 301));
        assert!(a.render(None).contains("the CSV files have every step"));
        assert!(!b.render(None).contains("the CSV files have every step"));
    }
}
