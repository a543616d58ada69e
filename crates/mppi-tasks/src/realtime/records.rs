//! What a real-time run records: per-tick and per-plan records, timing statistics, the run.

use super::*;

/// The timing of one tick of the plant loop.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TickRecord {
    /// When the tick was due, seconds after the first tick was due.
    pub scheduled_s: f64,
    /// When it ran, on the same clock.
    pub actual_s: f64,
    /// Index of the plan in use ([`RealtimeRun::plans`]).
    pub plan: usize,
    /// Ticks since the plan in use starts: the entry of the plan applied.
    pub age: usize,
    /// The plan due for this tick had not arrived: the shifted previous plan ran.
    pub miss: bool,
}

impl TickRecord {
    /// `actual − scheduled` in milliseconds (how late the tick ran).
    #[must_use]
    pub fn jitter_ms(&self) -> f64 {
        (self.actual_s - self.scheduled_s) * 1e3
    }
}

/// One published plan.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PlanRecord {
    /// The tick whose measured state the plan was made from.
    pub measured_tick: usize,
    /// The tick its first control is for (`measured_tick + latency_ticks`).
    pub start_tick: usize,
    /// When planning started, seconds after the first tick was due (negative for the initial
    /// plan, made before the clock started).
    pub started_s: f64,
    /// When the plan was published, on the same clock.
    pub published_s: f64,
    /// Wall-clock time of `Controller::act` (shift and EM iterations), ms.
    pub planning_time_ms: f64,
    /// Why planning stopped (`OutOfTime`: at the deadline).
    pub status: Status,
    /// EM iterations run.
    pub iterations: usize,
    /// Statistics of the last EM iteration.
    pub last: IterStats,
    /// The planning time exceeded the deadline.
    pub overrun: bool,
}

/// Timing statistics of a real-time run. Planning statistics cover the plans made while the
/// clock ran (not the initial plan, made before it).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct TimingStats {
    /// Ticks run.
    pub ticks: usize,
    /// The rate asked for, Hz.
    pub target_rate_hz: f64,
    /// Ticks per second achieved: `(ticks − 1)` over the time from the first tick to the last.
    pub achieved_rate_hz: f64,
    /// The control period, ms.
    pub period_ms: f64,
    /// The planning budget per plan, ms.
    pub deadline_ms: f64,
    /// The latency asked for, ms.
    pub latency_ms: f64,
    /// The latency compensated, in ticks.
    pub latency_ticks: usize,
    /// Simulated seconds per wall-clock second.
    pub real_time_factor: f64,
    /// Plans made while the clock ran.
    pub plans: usize,
    /// Mean planning time per plan, ms.
    pub planning_mean_ms: f64,
    /// Median planning time, ms.
    pub planning_p50_ms: f64,
    /// 95th percentile (nearest rank) of the planning time, ms.
    pub planning_p95_ms: f64,
    /// Longest planning time, ms.
    pub planning_max_ms: f64,
    /// Plans whose planning time exceeded the deadline.
    pub overruns: usize,
    /// `overruns / plans` (0 without plans).
    pub overrun_fraction: f64,
    /// Ticks that ran the shifted previous plan because the plan due had not arrived.
    pub missed: usize,
    /// `missed / ticks`.
    pub missed_fraction: f64,
    /// Oldest plan entry applied, in ticks.
    pub max_plan_age: usize,
    /// Mean `|actual − scheduled|` tick time, ms.
    pub jitter_mean_abs_ms: f64,
    /// 95th percentile (nearest rank) of `|actual − scheduled|`, ms.
    pub jitter_p95_ms: f64,
    /// Largest `|actual − scheduled|`, ms.
    pub jitter_max_ms: f64,
}

/// Nearest-rank percentile of sorted, non-empty data (0 when empty).
pub(super) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

impl TimingStats {
    /// The statistics of per-tick and per-plan records (`plans[0]`, the initial plan, is not
    /// counted in the planning statistics).
    #[must_use]
    pub fn from_records(
        settings: &RealtimeSettings,
        ticks: &[TickRecord],
        plans: &[PlanRecord],
    ) -> Self {
        let loop_plans = plans.get(1..).unwrap_or(&[]);
        let mut times: Vec<f64> = loop_plans.iter().map(|p| p.planning_time_ms).collect();
        times.sort_by(f64::total_cmp);
        let mut jitter: Vec<f64> = ticks.iter().map(|t| t.jitter_ms().abs()).collect();
        jitter.sort_by(f64::total_cmp);
        let n = ticks.len();
        let achieved = match (ticks.first(), ticks.last()) {
            (Some(a), Some(b)) if n >= 2 && b.actual_s > a.actual_s => {
                (n - 1) as f64 / (b.actual_s - a.actual_s)
            }
            _ => settings.rate_hz,
        };
        let overruns = loop_plans.iter().filter(|p| p.overrun).count();
        let missed = ticks.iter().filter(|t| t.miss).count();
        let mean = |v: &[f64]| {
            if v.is_empty() {
                0.0
            } else {
                v.iter().sum::<f64>() / v.len() as f64
            }
        };
        TimingStats {
            ticks: n,
            target_rate_hz: settings.rate_hz,
            achieved_rate_hz: achieved,
            period_ms: settings.period.as_secs_f64() * 1e3,
            deadline_ms: settings.deadline.as_secs_f64() * 1e3,
            latency_ms: settings.latency.as_secs_f64() * 1e3,
            latency_ticks: settings.latency_ticks,
            real_time_factor: settings.real_time_factor,
            plans: loop_plans.len(),
            planning_mean_ms: mean(&times),
            planning_p50_ms: percentile(&times, 50.0),
            planning_p95_ms: percentile(&times, 95.0),
            planning_max_ms: times.last().copied().unwrap_or(0.0),
            overruns,
            overrun_fraction: if times.is_empty() {
                0.0
            } else {
                overruns as f64 / times.len() as f64
            },
            missed,
            missed_fraction: if n == 0 {
                0.0
            } else {
                missed as f64 / n as f64
            },
            max_plan_age: ticks.iter().map(|t| t.age).max().unwrap_or(0),
            jitter_mean_abs_ms: mean(&jitter),
            jitter_p95_ms: percentile(&jitter, 95.0),
            jitter_max_ms: jitter.last().copied().unwrap_or(0.0),
        }
    }
}

/// A finished real-time run: every tick's state, control, stage cost and timing, every plan's
/// record, and the statistics.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RealtimeRun {
    /// Plant time step (simulated seconds per tick).
    pub dt: f64,
    /// State dimension `n`.
    pub state_dim: usize,
    /// Control dimension `m`.
    pub control_dim: usize,
    /// Planner horizon `T`.
    pub horizon: usize,
    /// The loop's timing.
    pub settings: RealtimeSettings,
    /// Visited states, row-major, `ticks + 1` rows of `n` (the last is the final state).
    pub states: Vec<f64>,
    /// Applied controls, row-major, `ticks` rows of `m`.
    pub controls: Vec<f64>,
    /// Stage cost of every tick.
    pub stage_costs: Vec<f64>,
    /// Timing of every tick.
    pub ticks: Vec<TickRecord>,
    /// Every published plan, in order; `plans[0]` is the initial plan, made from the initial
    /// state before the clock started.
    pub plans: Vec<PlanRecord>,
    /// With [`RealtimeOptions::record_plans`]: every plan's controls (`T·m` each, in order).
    pub plan_controls: Vec<f64>,
    /// With [`RealtimeOptions::record_plans`]: the state every plan was made from (the
    /// prediction at its start tick; `n` each, in order).
    pub plan_states: Vec<f64>,
    /// Planning aggregates over every plan (iterations, ESS, KL, planning time, out-of-time
    /// plans) and the total stage cost.
    pub stats: EpisodeStats,
    /// Timing statistics.
    pub timing: TimingStats,
}

impl RealtimeRun {
    /// The state at tick `k` (`k = ticks` is the final state).
    #[must_use]
    pub fn state(&self, k: usize) -> &[f64] {
        &self.states[k * self.state_dim..(k + 1) * self.state_dim]
    }
    /// The control applied at tick `k`.
    #[must_use]
    pub fn control(&self, k: usize) -> &[f64] {
        &self.controls[k * self.control_dim..(k + 1) * self.control_dim]
    }
    /// Plan `p`'s controls (`T·m`), if plans were recorded.
    #[must_use]
    pub fn plan(&self, p: usize) -> Option<&[f64]> {
        let d = self.horizon * self.control_dim;
        self.plan_controls.get(p * d..(p + 1) * d)
    }
    /// The state plan `p` was made from, if plans were recorded.
    #[must_use]
    pub fn plan_state(&self, p: usize) -> Option<&[f64]> {
        let n = self.state_dim;
        self.plan_states.get(p * n..(p + 1) * n)
    }
    /// Sum of the stage costs.
    #[must_use]
    pub fn total_cost(&self) -> f64 {
        self.stats.total_cost
    }

    /// The run as an [`Episode`] (for the writers and plots of lock-step episodes): every
    /// tick a row, each with the report of the plan in use (its planning time, status and last
    /// EM iteration), the task's verdict on every state.
    #[must_use]
    pub fn to_episode(&self, task: &dyn Task) -> Episode {
        let ticks = self.ticks.len();
        let states: Vec<Vec<f64>> = (0..=ticks).map(|k| self.state(k).to_vec()).collect();
        let controls: Vec<Vec<f64>> = (0..ticks).map(|k| self.control(k).to_vec()).collect();
        let mut total = 0.0;
        let cumulative_costs = self
            .stage_costs
            .iter()
            .map(|c| {
                total += c;
                total
            })
            .collect();
        let reports = self
            .ticks
            .iter()
            .map(|t| {
                let p = &self.plans[t.plan];
                StepReport {
                    step: t.plan as u64,
                    status: p.status,
                    iterations: vec![p.last],
                    planning_time: Duration::from_secs_f64(p.planning_time_ms.max(0.0) / 1e3),
                }
            })
            .collect();
        let outcome: Outcome = judge(task, &states, &controls);
        Episode {
            dt: self.dt,
            steps: ticks,
            kept_steps: (0..=ticks).collect(),
            states,
            controls,
            stage_costs: self.stage_costs.clone(),
            cumulative_costs,
            reports,
            rollouts: Vec::new(),
            stats: self.stats.clone(),
            outcome,
        }
    }
}
