//! Closed-loop episodes in bounded memory.
//!
//! [`run_episode_with`] closes the loop and hands every control step to an [`EpisodeSink`]
//! as it happens (the `mppi` command streams them to CSV files); the [`Episode`] it returns
//! keeps exact statistics of every step ([`EpisodeStats`], the task's [`Outcome`]) but only a
//! bounded record of the rows themselves: every row while the episode has at most
//! [`EpisodeOptions::record_rows`] rows, evenly spaced rows (always the first and the last)
//! beyond that. Memory therefore does not grow with the number of steps.

use std::convert::Infallible;
use std::fmt;

use mppi::{MppiConfig, MppiError, StepReport};
use serde::Serialize;

use crate::{Outcome, Task, TaskController, controller};

/// Rows an [`Episode`] keeps by default (about 3.5 MB for a small task).
pub const DEFAULT_RECORD_ROWS: usize = 10_000;

/// Sampled rollouts captured at one control step, for plots.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RolloutSnapshot {
    /// Control step at which they were captured.
    pub step: usize,
    /// States along the optimized plan (`T + 1` rows).
    pub plan: Vec<Vec<f64>>,
    /// States along the sampled rollouts of the largest weights, heaviest first (each `T + 1`
    /// rows).
    pub samples: Vec<Vec<Vec<f64>>>,
}

/// Options of [`run_episode`].
#[derive(Debug, Clone, PartialEq)]
pub struct EpisodeOptions {
    /// Number of control steps.
    pub steps: usize,
    /// Capture sampled rollouts every this many steps (0 = never).
    pub rollout_every: usize,
    /// How many sampled rollouts per capture (those of the largest weights).
    pub rollouts_per_capture: usize,
    /// Initial state; `None` uses the task's.
    pub initial_state: Option<Vec<f64>>,
    /// Most rows (visited states with their controls, costs and reports) the [`Episode`]
    /// keeps; longer episodes keep evenly spaced rows. At least 2 (the first and the last
    /// state) are kept whatever it is set to.
    pub record_rows: usize,
}

impl Default for EpisodeOptions {
    fn default() -> Self {
        EpisodeOptions {
            steps: 100,
            rollout_every: 0,
            rollouts_per_capture: 8,
            initial_state: None,
            record_rows: DEFAULT_RECORD_ROWS,
        }
    }
}

/// Exact statistics of every step of an episode, kept as running aggregates (they do not
/// depend on which rows the [`Episode`] keeps).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct EpisodeStats {
    /// Sum of the stage costs.
    pub total_cost: f64,
    /// EM iterations over every step.
    pub iterations: usize,
    /// Sum of the effective sample size over every EM iteration.
    pub ess_sum: f64,
    /// EM iterations in which every sampled cost was non-finite (the plan was kept).
    pub kept_plan_iterations: usize,
    /// Largest finite `|ΔQ̂ − KL|` (the M-step gap, [`mppi::IterStats::mstep_gap`]) over every
    /// EM iteration (`None` if none was measured, e.g. without full diagnostics).
    pub max_mstep_gap: Option<f64>,
    /// Sum of the finite KL steps over every EM iteration.
    pub kl_step_sum: f64,
    /// Number of EM iterations with a finite KL step.
    pub kl_step_count: usize,
    /// Planning time summed over every step, in seconds.
    pub planning_time_total_s: f64,
    /// Longest planning time of a step, in seconds.
    pub planning_time_max_s: f64,
    /// Control steps whose loop stopped at the deadline (`deadline_ms`) before running every
    /// iteration.
    pub out_of_time_steps: usize,
}

impl EpisodeStats {
    /// Fold in one control step.
    fn add(&mut self, stage_cost: f64, report: &StepReport) {
        self.total_cost += stage_cost;
        let t = report.planning_time.as_secs_f64();
        self.planning_time_total_s += t;
        self.planning_time_max_s = self.planning_time_max_s.max(t);
        self.out_of_time_steps += usize::from(report.status == mppi::Status::OutOfTime);
        for it in &report.iterations {
            self.iterations += 1;
            self.ess_sum += it.weights.ess;
            self.kept_plan_iterations += usize::from(it.kept_plan);
            if it.mstep_gap.is_finite() {
                let g = it.mstep_gap.abs();
                self.max_mstep_gap = Some(self.max_mstep_gap.map_or(g, |v| v.max(g)));
            }
            if it.kl_step.is_finite() {
                self.kl_step_sum += it.kl_step;
                self.kl_step_count += 1;
            }
        }
    }

    /// Mean effective sample size over every EM iteration (0 if there were none).
    #[must_use]
    pub fn mean_ess(&self) -> f64 {
        if self.iterations == 0 {
            0.0
        } else {
            self.ess_sum / self.iterations as f64
        }
    }

    /// Mean finite KL step over every EM iteration (`None` if none was measured).
    #[must_use]
    pub fn mean_kl_step(&self) -> Option<f64> {
        (self.kl_step_count > 0).then(|| self.kl_step_sum / self.kl_step_count as f64)
    }
}

/// A finished closed-loop episode: exact statistics and verdict, and a bounded record of its
/// rows.
///
/// Row `i` of the record is control step `kept_steps[i]`: the state visited there, and (except
/// for the final state) the control applied, its stage cost and the planner's report. While
/// the episode has at most [`EpisodeOptions::record_rows`] rows the record holds every row,
/// so `states` has `steps + 1` rows and `controls` `steps`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Episode {
    /// Plant time step in seconds.
    pub dt: f64,
    /// Control steps taken.
    pub steps: usize,
    /// The step of each kept row, ascending: evenly spaced from 0, and always `steps` (the
    /// final state) last.
    pub kept_steps: Vec<usize>,
    /// Visited states at the kept steps (the last row is the final state).
    pub states: Vec<Vec<f64>>,
    /// Applied controls at the kept steps (one row fewer than `states`).
    pub controls: Vec<Vec<f64>>,
    /// Stage cost at the kept steps (one per control row).
    pub stage_costs: Vec<f64>,
    /// Sum of the stage costs of every step up to and including each kept step (one per
    /// control row), for cumulative-cost plots.
    pub cumulative_costs: Vec<f64>,
    /// The planner's report at the kept steps (one per control row).
    pub reports: Vec<StepReport>,
    /// Captured rollouts (empty unless requested).
    pub rollouts: Vec<RolloutSnapshot>,
    /// Exact statistics of every step.
    pub stats: EpisodeStats,
    /// The task's verdict, judged on every step as the episode ran.
    pub outcome: Outcome,
}

impl Episode {
    /// Sum of the stage costs of every step.
    #[must_use]
    pub fn total_cost(&self) -> f64 {
        self.stats.total_cost
    }

    /// True when the record holds every row (the episode was not decimated).
    #[must_use]
    pub fn is_complete(&self) -> bool {
        self.kept_steps.len() == self.steps + 1
    }

    /// The final state.
    #[must_use]
    pub fn final_state(&self) -> Option<&[f64]> {
        self.states.last().map(Vec::as_slice)
    }
}

/// Progress of an episode, passed to the callback of [`run_episode`] after every step.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    /// Steps done so far.
    pub done: usize,
    /// Steps in the episode.
    pub total: usize,
    /// The report of the step just taken.
    pub report: &'a StepReport,
}

/// One control step, as handed to an [`EpisodeSink`].
#[derive(Debug, Clone, Copy)]
pub struct StepRecord<'a> {
    /// Index of the step (0 for the first).
    pub step: usize,
    /// Steps in the episode.
    pub total: usize,
    /// Plant time step in seconds.
    pub dt: f64,
    /// The state the step started from.
    pub state: &'a [f64],
    /// The control applied.
    pub control: &'a [f64],
    /// The stage cost of the step.
    pub stage_cost: f64,
    /// The planner's report of the step.
    pub report: &'a StepReport,
}

/// Receives an episode as it runs, e.g. to stream every row to a file. Every method does
/// nothing by default; an error from any of them stops the episode.
pub trait EpisodeSink {
    /// What the sink's methods can fail with.
    type Error;
    /// The controller was built and the episode starts from `initial_state` (called once,
    /// before the first step; not called if the controller cannot be built).
    fn start(&mut self, _initial_state: &[f64]) -> Result<(), Self::Error> {
        Ok(())
    }
    /// A control step was taken (called once per step, in order).
    fn step(&mut self, _record: &StepRecord<'_>) -> Result<(), Self::Error> {
        Ok(())
    }
    /// The episode ended in `final_state` after `steps` steps (called once, last).
    fn finish(&mut self, _steps: usize, _final_state: &[f64]) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// The sink that does nothing.
impl EpisodeSink for () {
    type Error = Infallible;
}

/// Why [`run_episode_with`] stopped.
#[derive(Debug)]
pub enum EpisodeError<E> {
    /// The planner or the plant failed (invalid config, non-finite state, ...).
    Mppi(MppiError),
    /// The sink failed.
    Sink(E),
}

impl<E> From<MppiError> for EpisodeError<E> {
    fn from(e: MppiError) -> Self {
        EpisodeError::Mppi(e)
    }
}

impl<E: fmt::Display> fmt::Display for EpisodeError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EpisodeError::Mppi(e) => e.fmt(f),
            EpisodeError::Sink(e) => e.fmt(f),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for EpisodeError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            EpisodeError::Mppi(e) => Some(e),
            EpisodeError::Sink(e) => Some(e),
        }
    }
}

/// The sink behind [`run_episode`]: calls the progress callback after every step.
struct ProgressSink<F>(F);

impl<F: FnMut(Progress<'_>)> EpisodeSink for ProgressSink<F> {
    type Error = Infallible;
    fn step(&mut self, record: &StepRecord<'_>) -> Result<(), Infallible> {
        (self.0)(Progress {
            done: record.step + 1,
            total: record.total,
            report: record.report,
        });
        Ok(())
    }
}

/// Run `task` in closed loop for `options.steps` steps with `config`, calling `on_step` after
/// every step. See [`run_episode_with`] for what the [`Episode`] keeps.
///
/// Errors on an invalid config, or if the plant reaches a non-finite state.
pub fn run_episode(
    task: &dyn Task,
    config: &MppiConfig,
    options: &EpisodeOptions,
    on_step: impl FnMut(Progress<'_>),
) -> Result<Episode, MppiError> {
    run_episode_with(task, config, options, &mut ProgressSink(on_step)).map_err(|e| match e {
        EpisodeError::Mppi(e) => e,
        EpisodeError::Sink(never) => match never {},
    })
}

/// Run `task` in closed loop for `options.steps` steps with `config`, handing every step to
/// `sink` as it happens.
///
/// The returned [`Episode`] keeps exact statistics of every step and the task's verdict
/// (its [`crate::Criterion`] sees every state), and a record of at most
/// [`EpisodeOptions::record_rows`] rows: all of them for a short episode, evenly spaced ones
/// (always the first and the last) for a longer one. Memory does not grow with the number of
/// steps.
///
/// Errors on an invalid config, if the plant reaches a non-finite state, or if the sink
/// fails; the sink is started only once the controller was built.
pub fn run_episode_with<S: EpisodeSink + ?Sized>(
    task: &dyn Task,
    config: &MppiConfig,
    options: &EpisodeOptions,
    sink: &mut S,
) -> Result<Episode, EpisodeError<S::Error>> {
    let mut ctrl = controller(task, config)?;
    if let Some(plan) = task.initial_plan(config.horizon) {
        ctrl.set_plan(&plan)?;
    }
    run_controller_episode(task, ctrl, options, sink)
}

/// [`run_episode_with`] with a controller built by the caller (a proposal or stages of your
/// own around the task's model, e.g. a trained denoiser).
pub fn run_controller_episode<S: EpisodeSink + ?Sized>(
    task: &dyn Task,
    mut ctrl: TaskController,
    options: &EpisodeOptions,
    sink: &mut S,
) -> Result<Episode, EpisodeError<S::Error>> {
    let x0 = options
        .initial_state
        .clone()
        .unwrap_or_else(|| task.initial_state());
    let n = task.dynamics().state_dim();
    if x0.len() != n {
        return Err(MppiError::DimensionMismatch {
            what: "initial state",
            expected: n,
            got: x0.len(),
        }
        .into());
    }
    sink.start(&x0).map_err(EpisodeError::Sink)?;
    let horizon = ctrl.planner().horizon();
    let dt = task.dt();
    let mut criterion = task.criterion();
    let mut record = Record::new(options.record_rows);
    let mut stats = EpisodeStats::default();
    let mut rollouts = Vec::new();
    let mut x = x0;
    let mut next = vec![0.0; n];
    let mut buf = vec![0.0; (horizon + 1) * n];
    for k in 0..options.steps {
        let u = ctrl.act(&x)?.to_vec();
        if options.rollout_every > 0 && k % options.rollout_every == 0 {
            let rows = |b: &[f64]| b.chunks_exact(n).map(<[f64]>::to_vec).collect::<Vec<_>>();
            ctrl.objective().rollout(ctrl.plan(), &mut buf)?;
            let plan = rows(&buf);
            let count = options
                .rollouts_per_capture
                .min(ctrl.planner().num_samples());
            let mut samples = Vec::with_capacity(count);
            for i in heaviest(ctrl.planner().weights(), count) {
                ctrl.sample_rollout(i, &mut buf)?;
                samples.push(rows(&buf));
            }
            rollouts.push(RolloutSnapshot {
                step: k,
                plan,
                samples,
            });
        }
        let stage_cost = task.stage_cost(&x, &u);
        task.plant_step(&x, &u, &mut next);
        if let Some(index) = next.iter().position(|v| !v.is_finite()) {
            return Err(MppiError::NonFinite {
                what: "plant state",
                index,
            }
            .into());
        }
        let report = ctrl.report();
        criterion.observe(k, &x, Some(&u));
        stats.add(stage_cost, report);
        record.push_step(k, &x, u, stage_cost, stats.total_cost, report);
        sink.step(&StepRecord {
            step: k,
            total: options.steps,
            dt,
            state: &x,
            control: record.last_control(),
            stage_cost,
            report,
        })
        .map_err(EpisodeError::Sink)?;
        x.copy_from_slice(&next);
    }
    criterion.observe(options.steps, &x, None);
    sink.finish(options.steps, &x).map_err(EpisodeError::Sink)?;
    record.push_final(options.steps, x);
    let Record { rows, .. } = record;
    Ok(Episode {
        dt,
        steps: options.steps,
        kept_steps: rows.steps,
        states: rows.states,
        controls: rows.controls,
        stage_costs: rows.stage_costs,
        cumulative_costs: rows.cumulative_costs,
        reports: rows.reports,
        rollouts,
        stats,
        outcome: criterion.outcome(),
    })
}

/// Indices of the `count` largest weights, heaviest first (ties and NaN by index); the first
/// `count` indices when there are no weights.
fn heaviest(weights: &[f64], count: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|&a, &b| weights[b].total_cmp(&weights[a]).then(a.cmp(&b)));
    order.truncate(count);
    order
}

/// The kept rows, column by column; the control columns are one row shorter once the final
/// state is in.
#[derive(Debug, Default)]
struct Rows {
    steps: Vec<usize>,
    states: Vec<Vec<f64>>,
    controls: Vec<Vec<f64>>,
    stage_costs: Vec<f64>,
    cumulative_costs: Vec<f64>,
    reports: Vec<StepReport>,
}

/// A decimating record of at most `cap` rows: rows at multiples of `stride`, plus always the
/// latest row. When it overflows the stride doubles and every other row goes, so the kept
/// rows stay evenly spaced and the cost is amortized O(1) per row.
struct Record {
    cap: usize,
    stride: usize,
    rows: Rows,
}

impl Record {
    fn new(cap: usize) -> Self {
        Record {
            cap: cap.max(2),
            stride: 1,
            rows: Rows::default(),
        }
    }

    /// The control of the latest row.
    fn last_control(&self) -> &[f64] {
        self.rows.controls.last().map_or(&[], Vec::as_slice)
    }

    /// Drop the latest row if it was kept only for being the latest (off the stride).
    fn drop_off_stride_latest(&mut self) {
        let r = &mut self.rows;
        if r.steps.last().is_some_and(|&k| k % self.stride != 0) {
            r.steps.pop();
            r.states.pop();
            r.controls.pop();
            r.stage_costs.pop();
            r.cumulative_costs.pop();
            r.reports.pop();
        }
    }

    /// Keep step `k` (for now); thin the record if it overflows.
    fn push_step(
        &mut self,
        k: usize,
        x: &[f64],
        u: Vec<f64>,
        stage_cost: f64,
        cumulative_cost: f64,
        report: &StepReport,
    ) {
        self.drop_off_stride_latest();
        let r = &mut self.rows;
        r.steps.push(k);
        r.states.push(x.to_vec());
        r.controls.push(u);
        r.stage_costs.push(stage_cost);
        r.cumulative_costs.push(cumulative_cost);
        r.reports.push(report.clone());
        self.thin();
    }

    /// Keep the final state at step `k`.
    fn push_final(&mut self, k: usize, x: Vec<f64>) {
        self.drop_off_stride_latest();
        self.rows.steps.push(k);
        self.rows.states.push(x);
        self.thin();
    }

    /// While over the cap: double the stride and keep the rows on it (and the latest).
    fn thin(&mut self) {
        while self.rows.steps.len() > self.cap {
            self.stride = self.stride.saturating_mul(2);
            let last = self.rows.steps.len() - 1;
            let keep: Vec<bool> = self
                .rows
                .steps
                .iter()
                .enumerate()
                .map(|(i, &k)| i == last || k % self.stride == 0)
                .collect();
            let r = &mut self.rows;
            retain_rows(&mut r.steps, &keep);
            retain_rows(&mut r.states, &keep);
            retain_rows(&mut r.controls, &keep);
            retain_rows(&mut r.stage_costs, &keep);
            retain_rows(&mut r.cumulative_costs, &keep);
            retain_rows(&mut r.reports, &keep);
        }
    }
}

/// Keep the entries `i` of `v` with `keep[i]` (`v` may be shorter than `keep`).
fn retain_rows<T>(v: &mut Vec<T>, keep: &[bool]) {
    let mut i = 0;
    v.retain(|_| {
        i += 1;
        keep[i - 1]
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record_of(steps: usize, cap: usize) -> Rows {
        let mut record = Record::new(cap);
        let report = StepReport::default();
        let mut total = 0.0;
        for k in 0..steps {
            total += k as f64;
            record.push_step(k, &[k as f64], vec![-(k as f64)], k as f64, total, &report);
            assert!(record.rows.steps.len() <= cap.max(2));
        }
        record.push_final(steps, vec![steps as f64]);
        record.rows
    }

    #[test]
    fn captures_take_the_heaviest_samples() {
        assert_eq!(heaviest(&[0.1, 0.5, 0.2, 0.2], 3), vec![1, 2, 3]);
        assert_eq!(heaviest(&[0.1, 0.5], 5), vec![1, 0]);
        assert!(heaviest(&[], 3).is_empty());
    }

    #[test]
    fn short_records_keep_every_row() {
        let rows = record_of(9, 10);
        assert_eq!(rows.steps, (0..=9).collect::<Vec<_>>());
        assert_eq!(rows.states.len(), 10);
        assert_eq!(rows.controls.len(), 9);
        assert_eq!(rows.cumulative_costs[8], 36.0);
    }

    #[test]
    fn long_records_are_bounded_evenly_spaced_and_keep_both_ends() {
        for (steps, cap) in [(10, 10), (1000, 10), (12_345, 100), (5, 2), (100, 3)] {
            let rows = record_of(steps, cap);
            let n = rows.steps.len();
            assert!(n <= cap.max(2), "{steps} steps, cap {cap}: {n} rows");
            assert_eq!(rows.steps[0], 0);
            assert_eq!(rows.steps[n - 1], steps);
            assert_eq!(rows.controls.len(), n - 1);
            assert_eq!(rows.reports.len(), n - 1);
            // evenly spaced except the final state
            if n > 2 {
                let stride = rows.steps[1];
                assert!(stride.is_power_of_two(), "{:?}", rows.steps);
                for w in rows.steps[..n - 1].windows(2) {
                    assert_eq!(w[1] - w[0], stride, "{:?}", rows.steps);
                }
                if cap >= 4 {
                    assert!(n > cap / 2 - 1, "{steps} steps, cap {cap}: only {n} rows");
                }
            }
            // every column belongs to its step
            for (i, &k) in rows.steps.iter().enumerate() {
                assert_eq!(rows.states[i], vec![k as f64]);
                if let Some(u) = rows.controls.get(i) {
                    assert_eq!(u, &vec![-(k as f64)]);
                    assert_eq!(rows.stage_costs[i], k as f64);
                    assert_eq!(rows.cumulative_costs[i], (k * (k + 1) / 2) as f64);
                }
            }
        }
    }
}
